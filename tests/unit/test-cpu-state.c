/*
 * x86 vCPU and in-kernel device state through real KVM: what one VM saves,
 * a second VM loads, and reads back the same registers, MSRs, IOAPIC and
 * PIT state. Skipped where /dev/kvm cannot be opened.
 */
#include "accel/kvm.h"
#include "target/i386/cpu-state.h"
#include "target/i386/cpu.h"
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define RAM (2 << 20)
#define MSR_LSTAR 0xc0000082
#define MSR_TSC_AUX 0xc0000103

typedef struct {
    Machine m;
    KvmVm *vm;
    KvmVcpu *vcpu;
    void *ram;
} Vm;

static bool vm_new(Vm *v)
{
    memset(v, 0, sizeof(*v));
    machine_init(&v->m);
    g_autoptr(GError) err = NULL;
    v->vm = kvm_vm_new(&v->m, NULL, 0, &err);
    if (!v->vm) {
        machine_cleanup(&v->m);
        return false;
    }
    v->ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(kvm_vm_create_x86_irqchip(v->vm, &err));
    g_assert_true(kvm_vm_add_ram(v->vm, 0, RAM, v->ram, &err));
    v->vcpu = kvm_vcpu_new(v->vm, 0, &err);
    g_assert_nonnull(v->vcpu);
    X86Topology topo = { 1, 1, 1, 1 };
    g_assert_true(x86_cpu_setup(v->vcpu, &topo, &err));
    g_assert_no_error(err);
    return true;
}

static void vm_free(Vm *v)
{
    kvm_vcpu_free(v->vcpu);
    kvm_vm_free(v->vm);
    munmap(v->ram, RAM);
    machine_cleanup(&v->m);
}

static uint64_t get_msr(KvmVcpu *vcpu, uint32_t index)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } b = { .hdr.nmsrs = 1, .e.index = index };
    g_assert_cmpint(ioctl(kvm_vcpu_fd(vcpu), KVM_GET_MSRS, &b), ==, 1);
    return b.e.data;
}

static void set_msr(KvmVcpu *vcpu, uint32_t index, uint64_t value)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } b = { .hdr.nmsrs = 1, .e = { .index = index, .data = value } };
    g_assert_cmpint(ioctl(kvm_vcpu_fd(vcpu), KVM_SET_MSRS, &b), ==, 1);
}

static void test_cpu_and_devices_round_trip(void)
{
    Vm a, b;
    if (!vm_new(&a)) {
        g_test_skip("no usable /dev/kvm");
        return;
    }
    g_assert_true(vm_new(&b));
    g_autoptr(GError) err = NULL;

    X86BootState boot = { .mode = X86_BOOT_LONG_MODE, .rip = 0x100000, .rsp = 0x8000, .cr3 = 0x9000,
                          .gdt_base = 0x500, .gdt_limit = 0x1f };
    g_assert_true(x86_cpu_set_boot_state(a.vcpu, &boot, &err));
    struct kvm_regs regs;
    g_assert_cmpint(ioctl(kvm_vcpu_fd(a.vcpu), KVM_GET_REGS, &regs), ==, 0);
    regs.rax = 0x1122334455667788ULL;
    regs.r15 = 0xdeadbeef;
    g_assert_cmpint(ioctl(kvm_vcpu_fd(a.vcpu), KVM_SET_REGS, &regs), ==, 0);
    set_msr(a.vcpu, MSR_LSTAR, 0xffffffff81a00000ULL);
    set_msr(a.vcpu, MSR_TSC_AUX, 7);
    /* An IOAPIC redirection entry and a PIT channel programmed by "the guest". */
    struct kvm_irqchip ioapic = { .chip_id = KVM_IRQCHIP_IOAPIC };
    g_assert_cmpint(ioctl(kvm_vm_fd(a.vm), KVM_GET_IRQCHIP, &ioapic), ==, 0);
    ioapic.chip.ioapic.redirtbl[4].bits = 0x0100000000000034ULL;
    g_assert_cmpint(ioctl(kvm_vm_fd(a.vm), KVM_SET_IRQCHIP, &ioapic), ==, 0);
    struct kvm_pit_state2 pit;
    g_assert_cmpint(ioctl(kvm_vm_fd(a.vm), KVM_GET_PIT2, &pit), ==, 0);
    pit.channels[0].count = 0x2e9c;
    pit.channels[0].mode = 2;
    g_assert_cmpint(ioctl(kvm_vm_fd(a.vm), KVM_SET_PIT2, &pit), ==, 0);

    g_autofree X86CpuState *sa = g_new0(X86CpuState, 1);
    g_autofree X86KvmDevicesState *da = g_new0(X86KvmDevicesState, 1);
    sa->vcpu = a.vcpu;
    da->vm = a.vm;
    g_autoptr(GByteArray) cpu = g_byte_array_new();
    g_autoptr(GByteArray) devs = g_byte_array_new();
    g_assert_true(vmstate_save(&x86_cpu_vmsd, sa, cpu, &err));
    g_assert_true(vmstate_save(&x86_kvm_devices_vmsd, da, devs, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(sa->nmsrs, >=, 10);

    g_autofree X86CpuState *sb = g_new0(X86CpuState, 1);
    g_autofree X86KvmDevicesState *db = g_new0(X86KvmDevicesState, 1);
    sb->vcpu = b.vcpu;
    db->vm = b.vm;
    g_assert_true(vmstate_load(&x86_kvm_devices_vmsd, db, 1, devs->data, devs->len, &err));
    vmstate_load(&x86_cpu_vmsd, sb, 1, cpu->data, cpu->len, &err);
    g_assert_no_error(err);
    g_assert_no_error(err);

    struct kvm_regs rb;
    struct kvm_sregs srb;
    g_assert_cmpint(ioctl(kvm_vcpu_fd(b.vcpu), KVM_GET_REGS, &rb), ==, 0);
    g_assert_cmpint(ioctl(kvm_vcpu_fd(b.vcpu), KVM_GET_SREGS, &srb), ==, 0);
    g_assert_cmphex(rb.rax, ==, 0x1122334455667788ULL);
    g_assert_cmphex(rb.r15, ==, 0xdeadbeef);
    g_assert_cmphex(rb.rip, ==, 0x100000);
    g_assert_cmphex(srb.cr3, ==, 0x9000);
    g_assert_cmphex(srb.efer & 0x500, ==, 0x500);
    g_assert_true(srb.cs.l);
    g_assert_cmphex(get_msr(b.vcpu, MSR_LSTAR), ==, 0xffffffff81a00000ULL);
    g_assert_cmphex(get_msr(b.vcpu, MSR_TSC_AUX), ==, 7);
    struct kvm_irqchip ib = { .chip_id = KVM_IRQCHIP_IOAPIC };
    g_assert_cmpint(ioctl(kvm_vm_fd(b.vm), KVM_GET_IRQCHIP, &ib), ==, 0);
    g_assert_cmphex(ib.chip.ioapic.redirtbl[4].bits, ==, 0x0100000000000034ULL);
    struct kvm_pit_state2 pb;
    g_assert_cmpint(ioctl(kvm_vm_fd(b.vm), KVM_GET_PIT2, &pb), ==, 0);
    g_assert_cmpuint(pb.channels[0].count, ==, 0x2e9c);

    /* A stream whose chip ids were altered is refused, naming why. */
    devs->data[0] ^= 1; /* pic_master.chip_id */
    g_assert_false(vmstate_load(&x86_kvm_devices_vmsd, db, 1, devs->data, devs->len, &err));
    g_assert_cmpstr(err->message, ==, "interrupt controller state with the wrong chip ids");
    vm_free(&a);
    vm_free(&b);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cpu-state/round-trip", test_cpu_and_devices_round_trip);
    return g_test_run();
}
