#define G_LOG_DOMAIN "kvm"
#include "accel/kvm.h"
#include "accel/kvm-internal.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define KVM_API_VERSION_EXPECTED 12
/* Intel VMX needs these two pages below 4 GiB; the e820 map reserves them. */
#define KVM_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define KVM_TSS_ADDR 0xfeffd000ULL
#define IOAPIC_PINS 24

static bool fail_errno(GError **err, const char *what)
{
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "KVM: %s failed: %s", what, g_strerror(errno));
    return false;
}

KvmVm *kvm_vm_new(Machine *machine, const char *dev_path, unsigned long type, GError **err)
{
    g_autofree KvmVm *vm = g_new0(KvmVm, 1);
    const char *path = dev_path ? dev_path : "/dev/kvm";

    vm->machine = machine;
    vm->sys_fd = open(path, O_RDWR | O_CLOEXEC);
    if (vm->sys_fd < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED, "cannot open %s: %s%s", path,
                    g_strerror(errno), errno == ENOENT ? " (is the kvm module loaded?)" : "");
        return NULL;
    }
    int api = ioctl(vm->sys_fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION_EXPECTED) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED, "%s: KVM API version %d, need %d", path,
                    api, KVM_API_VERSION_EXPECTED);
        close(vm->sys_fd);
        return NULL;
    }
    vm->vm_fd = ioctl(vm->sys_fd, KVM_CREATE_VM, type);
    if (vm->vm_fd < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED, "KVM: cannot create a VM of type %lu: %s",
                    type, g_strerror(errno));
        close(vm->sys_fd);
        return NULL;
    }
    vm->run_size = ioctl(vm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (vm->run_size <= 0) {
        fail_errno(err, "KVM_GET_VCPU_MMAP_SIZE");
        kvm_vm_free(g_steal_pointer(&vm));
        return NULL;
    }
    vm->max_slots = MAX(kvm_vm_check_extension(vm, KVM_CAP_NR_MEMSLOTS), 32);
    kvm_vm_irq_init(vm);
    return g_steal_pointer(&vm);
}

void kvm_vm_free(KvmVm *vm)
{
    if (!vm) {
        return;
    }
    if (vm->vm_fd >= 0) {
        close(vm->vm_fd);
    }
    if (vm->sys_fd >= 0) {
        close(vm->sys_fd);
    }
    g_free(vm->routes);
    g_free(vm->gsi_used);
    g_free(vm);
}

int kvm_sys_fd(KvmVm *vm)
{
    return vm->sys_fd;
}

int kvm_vm_fd(KvmVm *vm)
{
    return vm->vm_fd;
}

int kvm_vm_check_extension(KvmVm *vm, unsigned cap)
{
    int r = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, cap);
    if (r < 0) {
        r = ioctl(vm->sys_fd, KVM_CHECK_EXTENSION, cap);
    }
    return r < 0 ? 0 : r;
}

bool kvm_vm_add_ram(KvmVm *vm, uint64_t gpa, uint64_t size, void *hva, GError **err)
{
    if (vm->nr_slots >= MIN(vm->max_slots, KVM_MAX_RAM_SLOTS)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "KVM: out of memory slots (%u)",
                    MIN(vm->max_slots, KVM_MAX_RAM_SLOTS));
        return false;
    }
    KvmSlot slot = { gpa, size, hva, 0 };
    if (!kvm_vm_slot_set(vm, vm->nr_slots, &slot, err)) {
        return false;
    }
    vm->slots[vm->nr_slots++] = slot;
    return true;
}

bool kvm_vm_slot_set(KvmVm *vm, unsigned index, const KvmSlot *slot, GError **err)
{
    struct kvm_userspace_memory_region region = {
        .slot = index,
        .flags = slot->flags,
        .guest_phys_addr = slot->gpa,
        .memory_size = slot->size,
        .userspace_addr = (uintptr_t)slot->hva,
    };
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        return fail_errno(err, "KVM_SET_USER_MEMORY_REGION");
    }
    return true;
}

/*
 * GSI layout of a PC: GSIs 0-15 reach the PICs (except 2, the cascade) and
 * the IOAPIC; ISA IRQ 0 (the PIT) arrives at IOAPIC pin 2, as the MADT's
 * interrupt source override says; GSIs 16-23 are IOAPIC-only (PCI).
 */
static bool set_pc_gsi_routing(KvmVm *vm, GError **err)
{
    for (unsigned gsi = 0; gsi < 16; gsi++) {
        if (gsi == 2) {
            continue;
        }
        kvm_vm_route_append(vm, (struct kvm_irq_routing_entry){
            .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                           .pin = gsi % 8 },
        });
    }
    for (unsigned gsi = 0; gsi < IOAPIC_PINS; gsi++) {
        if (gsi == 2) {
            continue;
        }
        kvm_vm_route_append(vm, (struct kvm_irq_routing_entry){
            .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi == 0 ? 2 : gsi },
        });
    }
    for (unsigned gsi = 0; gsi < IOAPIC_PINS; gsi++) {
        kvm_vm_gsi_claim(vm, gsi);
    }
    return kvm_vm_routes_commit(vm, err);
}

bool kvm_vm_create_x86_irqchip(KvmVm *vm, GError **err)
{
    if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){ KVM_IDENTITY_MAP_ADDR }) < 0) {
        return fail_errno(err, "KVM_SET_IDENTITY_MAP_ADDR");
    }
    if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
        return fail_errno(err, "KVM_SET_TSS_ADDR");
    }
    if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        return fail_errno(err, "KVM_CREATE_IRQCHIP");
    }
    if (!set_pc_gsi_routing(vm, err)) {
        return false;
    }
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        return fail_errno(err, "KVM_CREATE_PIT2");
    }
    return true;
}

void kvm_vm_set_irq(KvmVm *vm, unsigned gsi, bool level)
{
    struct kvm_irq_level irq = { .irq = gsi, .level = level };
    if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0) {
        g_warning("KVM_IRQ_LINE gsi %u level %d: %s", gsi, level, g_strerror(errno));
    }
}
