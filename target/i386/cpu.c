#define G_LOG_DOMAIN "cpu"
#include "target/i386/cpu.h"
#include "util/error.h"
#include <asm/kvm_para.h>
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT (1u << 28)
#define MSR_IA32_MISC_ENABLE 0x1a0
#define CPUID_80000007_EDX_INVTSC (1u << 8)
#define MISC_ENABLE_FAST_STRING 1

const char *const x86_cpu_models[] = { "host", NULL };

static bool fail_errno(GError **err, unsigned index, const char *what)
{
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "vCPU %u: %s failed: %s", index, what,
                g_strerror(errno));
    return false;
}

static struct kvm_cpuid2 *supported_cpuid(KvmVcpu *vcpu, GError **err)
{
    for (unsigned n = 64;; n *= 2) {
        struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + n * sizeof(c->entries[0]));
        c->nent = n;
        if (ioctl(kvm_sys_fd(kvm_vcpu_vm(vcpu)), KVM_GET_SUPPORTED_CPUID, c) == 0) {
            return c;
        }
        g_free(c);
        if (errno != E2BIG || n > 4096) {
            fail_errno(err, kvm_vcpu_index(vcpu), "KVM_GET_SUPPORTED_CPUID");
            return NULL;
        }
    }
}

static unsigned bits_for(unsigned count)
{
    unsigned bits = 0;
    while ((1u << bits) < count) {
        bits++;
    }
    return bits;
}

static void set_topology_leaf(struct kvm_cpuid_entry2 *e, const X86Topology *t, unsigned apic_id)
{
    unsigned thread_bits = bits_for(t->threads);
    unsigned core_bits = bits_for(t->cores) + thread_bits;
    e->edx = apic_id;
    switch (e->index) {
    case 0: /* SMT level */
        e->eax = thread_bits;
        e->ebx = t->threads;
        e->ecx = (1 << 8) | 0;
        break;
    case 1: /* core level */
        e->eax = core_bits;
        e->ebx = t->cores * t->threads;
        e->ecx = (2 << 8) | 1;
        break;
    default: /* no more levels */
        e->eax = e->ebx = 0;
        e->ecx = e->index;
        break;
    }
}

static void adjust_cpuid(struct kvm_cpuid2 *c, const X86Topology *t, unsigned index)
{
    unsigned apic_id = index;
    unsigned per_package = t->cores * t->threads;

    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        switch (e->function) {
        case 1:
            e->ebx = (e->ebx & 0x0000ffff) | (apic_id << 24) | (MIN(255u, 1u << bits_for(per_package)) << 16);
            e->ecx |= CPUID_1_ECX_HYPERVISOR;
            if (per_package > 1) {
                e->edx |= CPUID_1_EDX_HTT;
            } else {
                e->edx &= ~CPUID_1_EDX_HTT;
            }
            break;
        case 4: /* Intel deterministic cache: cores per package in EAX[31:26] */
            if (e->eax & 0x1f) {
                e->eax = (e->eax & 0x03ffffff) | ((per_package - 1) << 26);
            }
            break;
        case 0xb:
        case 0x1f:
            set_topology_leaf(e, t, apic_id);
            break;
        case 0x80000007:
            /*
             * No invariant TSC, as QEMU's migratable "host" model: a guest
             * that relies on it would misbehave after migrating to a host
             * whose TSC runs at another rate.
             */
            e->edx &= ~CPUID_80000007_EDX_INVTSC;
            break;
        case 0x80000008: /* AMD: logical processors per package */
            e->ecx = (e->ecx & ~0xf0ffu) | (bits_for(per_package) << 12) | (per_package - 1);
            break;
        case KVM_CPUID_SIGNATURE:
            e->eax = MAX(e->eax, (uint32_t)KVM_CPUID_FEATURES);
            break;
        case KVM_CPUID_FEATURES:
            /* Extended destination IDs need the x2APIC API, which Vireo does not enable. */
            e->eax &= ~(1u << KVM_FEATURE_MSI_EXT_DEST_ID);
            break;
        }
    }
}

bool x86_cpu_setup(KvmVcpu *vcpu, const X86Topology *topo, GError **err)
{
    unsigned index = kvm_vcpu_index(vcpu);
    g_autofree struct kvm_cpuid2 *cpuid = supported_cpuid(vcpu, err);
    if (!cpuid) {
        return false;
    }
    adjust_cpuid(cpuid, topo, index);
    if (ioctl(kvm_vcpu_fd(vcpu), KVM_SET_CPUID2, cpuid) < 0) {
        return fail_errno(err, index, "KVM_SET_CPUID2");
    }
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry entries[1];
    } msrs = { .hdr.nmsrs = 1, .entries = { { .index = MSR_IA32_MISC_ENABLE, .data = MISC_ENABLE_FAST_STRING } } };
    if (ioctl(kvm_vcpu_fd(vcpu), KVM_SET_MSRS, &msrs) != 1) {
        return fail_errno(err, index, "KVM_SET_MSRS");
    }
    return true;
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64, bool db)
{
    return (struct kvm_segment){
        .base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
        .present = 1, .dpl = 0, .db = db, .s = 1, .l = code64, .g = 1,
    };
}

bool x86_cpu_set_boot_state(KvmVcpu *vcpu, const X86BootState *boot, GError **err)
{
    unsigned index = kvm_vcpu_index(vcpu);
    struct kvm_sregs sregs;
    if (ioctl(kvm_vcpu_fd(vcpu), KVM_GET_SREGS, &sregs) < 0) {
        return fail_errno(err, index, "KVM_GET_SREGS");
    }
    bool long_mode = boot->mode == X86_BOOT_LONG_MODE;
    sregs.cs = flat_segment(0x10, 0xb, long_mode, !long_mode);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat_segment(0x18, 0x3, false, true);
    sregs.gdt.base = boot->gdt_base;
    sregs.gdt.limit = boot->gdt_limit;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = 0x11; /* PE | ET */
    sregs.cr4 = 0;
    sregs.efer = 0;
    if (long_mode) {
        sregs.cr0 |= 0x80000000u;      /* PG */
        sregs.cr3 = boot->cr3;
        sregs.cr4 = 0x20;              /* PAE */
        sregs.efer = 0x500;            /* LME | LMA */
    }
    if (ioctl(kvm_vcpu_fd(vcpu), KVM_SET_SREGS, &sregs) < 0) {
        return fail_errno(err, index, "KVM_SET_SREGS");
    }
    struct kvm_regs regs = {
        .rip = boot->rip, .rsi = boot->rsi, .rbx = boot->rbx, .rsp = boot->rsp, .rflags = 2,
    };
    if (ioctl(kvm_vcpu_fd(vcpu), KVM_SET_REGS, &regs) < 0) {
        return fail_errno(err, index, "KVM_SET_REGS");
    }
    return true;
}
