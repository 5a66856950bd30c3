/*
 * Interrupt fast paths: the GSI routing table (irqchip pins and MSI routes),
 * irqfd, MSI injection and ioeventfd.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table, so the VM keeps its own copy
 * and gives all of it back on every change. Changes come with the big lock
 * held (a guest programming MSI-X), so the copy needs no lock of its own.
 */
#define G_LOG_DOMAIN "kvm"
#include "accel/kvm-internal.h"
#include "util/error.h"
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#define BITS_PER_LONG (8 * sizeof(unsigned long))

void kvm_vm_irq_init(KvmVm *vm)
{
    /* KVM_CAP_IRQ_ROUTING answers the largest GSI count a table may hold. */
    vm->max_gsi = MAX(kvm_vm_check_extension(vm, KVM_CAP_IRQ_ROUTING), 24);
    vm->max_routes = vm->max_gsi + 16;
    vm->routes = g_new0(struct kvm_irq_routing_entry, vm->max_routes);
    vm->gsi_used = g_new0(unsigned long, (vm->max_gsi + BITS_PER_LONG - 1) / BITS_PER_LONG);
}

void kvm_vm_route_append(KvmVm *vm, struct kvm_irq_routing_entry e)
{
    g_assert(vm->nr_routes < vm->max_routes);
    vm->routes[vm->nr_routes++] = e;
}

void kvm_vm_gsi_claim(KvmVm *vm, unsigned gsi)
{
    vm->gsi_used[gsi / BITS_PER_LONG] |= 1UL << (gsi % BITS_PER_LONG);
}

static void gsi_release(KvmVm *vm, unsigned gsi)
{
    vm->gsi_used[gsi / BITS_PER_LONG] &= ~(1UL << (gsi % BITS_PER_LONG));
}

static int gsi_find_free(KvmVm *vm)
{
    for (unsigned gsi = 0; gsi < vm->max_gsi; gsi++) {
        if (!(vm->gsi_used[gsi / BITS_PER_LONG] & (1UL << (gsi % BITS_PER_LONG)))) {
            return gsi;
        }
    }
    return -1;
}

bool kvm_vm_routes_commit(KvmVm *vm, GError **err)
{
    g_autofree struct kvm_irq_routing *r = g_malloc0(sizeof(*r) + vm->nr_routes * sizeof(r->entries[0]));
    r->nr = vm->nr_routes;
    memcpy(r->entries, vm->routes, vm->nr_routes * sizeof(r->entries[0]));
    if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, r) < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "KVM: KVM_SET_GSI_ROUTING failed: %s", g_strerror(errno));
        return false;
    }
    return true;
}

static struct kvm_irq_routing_entry msi_entry(int gsi, uint64_t addr, uint32_t data)
{
    return (struct kvm_irq_routing_entry){
        .gsi = gsi,
        .type = KVM_IRQ_ROUTING_MSI,
        .u.msi = { .address_lo = (uint32_t)addr, .address_hi = addr >> 32, .data = data },
    };
}

static struct kvm_irq_routing_entry *find_msi_route(KvmVm *vm, int gsi)
{
    for (unsigned i = 0; i < vm->nr_routes; i++) {
        if (vm->routes[i].gsi == (unsigned)gsi && vm->routes[i].type == KVM_IRQ_ROUTING_MSI) {
            return &vm->routes[i];
        }
    }
    return NULL;
}

int kvm_vm_msi_route_add(KvmVm *vm, uint64_t addr, uint32_t data, GError **err)
{
    int gsi = gsi_find_free(vm);
    if (gsi < 0 || vm->nr_routes >= vm->max_routes) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "KVM: no free GSI for an MSI route (%u in use)",
                    vm->nr_routes);
        return -1;
    }
    kvm_vm_route_append(vm, msi_entry(gsi, addr, data));
    if (!kvm_vm_routes_commit(vm, err)) {
        vm->nr_routes--;
        return -1;
    }
    kvm_vm_gsi_claim(vm, gsi);
    return gsi;
}

bool kvm_vm_msi_route_update(KvmVm *vm, int gsi, uint64_t addr, uint32_t data, GError **err)
{
    struct kvm_irq_routing_entry *e = find_msi_route(vm, gsi);
    g_assert(e);
    struct kvm_irq_routing_entry want = msi_entry(gsi, addr, data);
    if (memcmp(e, &want, sizeof(want)) == 0) {
        return true;
    }
    *e = want;
    return kvm_vm_routes_commit(vm, err);
}

void kvm_vm_msi_route_remove(KvmVm *vm, int gsi)
{
    struct kvm_irq_routing_entry *e = find_msi_route(vm, gsi);
    g_assert(e);
    *e = vm->routes[--vm->nr_routes];
    gsi_release(vm, gsi);
    g_autoptr(GError) err = NULL;
    if (!kvm_vm_routes_commit(vm, &err)) {
        g_warning("%s", err->message);
    }
}

bool kvm_vm_irqfd(KvmVm *vm, int fd, int gsi, bool assign, GError **err)
{
    struct kvm_irqfd irqfd = { .fd = fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };
    if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "KVM: KVM_IRQFD (gsi %d, %s) failed: %s", gsi,
                    assign ? "assign" : "deassign", g_strerror(errno));
        return false;
    }
    return true;
}

void kvm_vm_signal_msi(KvmVm *vm, uint64_t addr, uint32_t data)
{
    struct kvm_msi msi = { .address_lo = (uint32_t)addr, .address_hi = addr >> 32, .data = data };
    /* 0 means the guest's LAPIC filtered it out (e.g. masked): not an error. */
    if (ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0) {
        g_warning("KVM_SIGNAL_MSI address 0x%" G_GINT64_MODIFIER "x data 0x%x: %s", addr, data, g_strerror(errno));
    }
}

bool kvm_vm_ioeventfd(KvmVm *vm, int fd, uint64_t addr, unsigned len, bool assign, GError **err)
{
    struct kvm_ioeventfd ioe = {
        .addr = addr,
        .len = len,
        .fd = fd,
        .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
    };
    if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &ioe) < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "KVM: KVM_IOEVENTFD at 0x%" G_GINT64_MODIFIER "x (%s) failed: %s",
                    addr, assign ? "assign" : "deassign", g_strerror(errno));
        return false;
    }
    return true;
}
