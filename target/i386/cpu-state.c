/* Saving and restoring x86 vCPUs and in-kernel devices: see include/target/i386/cpu-state.h. */
#define G_LOG_DOMAIN "cpu"
#include "target/i386/cpu-state.h"
#include "util/error.h"
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#define MSR_IA32_TSC_DEADLINE 0x6e0

/*
 * The MSRs a guest's running state lives in, beyond what the register
 * ioctls carry. Those this KVM cannot read are left out of the stream:
 * KVM_GET_MSR_INDEX_LIST is no guide, as it omits some KVM does emulate
 * (TSC_AUX and the MTRRs, on some hosts).
 */
static const uint32_t candidate_msrs[] = {
    0x10,                                                   /* TSC */
    0x3b,                                                   /* TSC_ADJUST */
    0x48,                                                   /* SPEC_CTRL */
    0x174, 0x175, 0x176,                                    /* SYSENTER CS/ESP/EIP */
    0x1a0,                                                  /* MISC_ENABLE */
    0x277,                                                  /* PAT */
    0x2ff, 0x250, 0x258, 0x259,                             /* MTRR default, fixed */
    0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f, /* MTRR fixed 4K */
    0x200, 0x201, 0x202, 0x203, 0x204, 0x205, 0x206, 0x207, /* MTRR variable */
    0x208, 0x209, 0x20a, 0x20b, 0x20c, 0x20d, 0x20e, 0x20f,
    0xda0,                                                  /* XSS */
    0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,         /* STAR, LSTAR, CSTAR, SFMASK */
    0xc0000102, 0xc0000103,                                 /* KERNEL_GS_BASE, TSC_AUX */
    0x11, 0x12,                                             /* kvmclock (old) */
    0x4b564d00, 0x4b564d01, 0x4b564d02, 0x4b564d03,         /* kvmclock, async PF, steal time */
    0x4b564d04, 0x4b564d05, 0x4b564d06,                     /* PV EOI, poll control, async PF int */
    MSR_IA32_TSC_DEADLINE,                                  /* last: after the LAPIC on load */
};

static bool fail_errno(GError **err, KvmVcpu *vcpu, const char *what)
{
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "vCPU %u: %s failed: %s", vcpu ? kvm_vcpu_index(vcpu) : 0,
                what, g_strerror(errno));
    return false;
}

typedef struct {
    struct kvm_msrs hdr;
    struct kvm_msr_entry e[X86_SAVED_MSRS_MAX];
} MsrBuf;

static bool cpu_pre_save(void *opaque, GError **err)
{
    X86CpuState *s = opaque;
    int fd = kvm_vcpu_fd(s->vcpu);
    struct {
        unsigned long req;
        void *p;
        const char *name;
    } gets[] = {
        { KVM_GET_REGS, &s->regs, "KVM_GET_REGS" },
        { KVM_GET_SREGS, &s->sregs, "KVM_GET_SREGS" },
        { KVM_GET_XSAVE, &s->xsave, "KVM_GET_XSAVE" },
        { KVM_GET_XCRS, &s->xcrs, "KVM_GET_XCRS" },
        { KVM_GET_DEBUGREGS, &s->debugregs, "KVM_GET_DEBUGREGS" },
        { KVM_GET_VCPU_EVENTS, &s->events, "KVM_GET_VCPU_EVENTS" },
        { KVM_GET_MP_STATE, &s->mp_state, "KVM_GET_MP_STATE" },
        { KVM_GET_LAPIC, &s->lapic, "KVM_GET_LAPIC" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(gets); i++) {
        if (ioctl(fd, gets[i].req, gets[i].p) < 0) {
            return fail_errno(err, s->vcpu, gets[i].name);
        }
    }
    const uint32_t *idx = candidate_msrs;
    unsigned n = G_N_ELEMENTS(candidate_msrs);
    G_STATIC_ASSERT(G_N_ELEMENTS(candidate_msrs) <= X86_SAVED_MSRS_MAX);
    /* KVM stops at the first MSR it cannot read: skip that one and go on. */
    s->nmsrs = 0;
    memset(s->msrs, 0, sizeof(s->msrs));
    g_autofree MsrBuf *b = g_new0(MsrBuf, 1);
    for (unsigned next = 0; next < n;) {
        b->hdr.nmsrs = n - next;
        for (unsigned i = next; i < n; i++) {
            b->e[i - next] = (struct kvm_msr_entry){ .index = idx[i] };
        }
        int got = ioctl(fd, KVM_GET_MSRS, b);
        if (got < 0) {
            return fail_errno(err, s->vcpu, "KVM_GET_MSRS");
        }
        for (int i = 0; i < got; i++) {
            s->msrs[s->nmsrs++] = (X86SavedMsr){ b->e[i].index, b->e[i].data };
        }
        next += got + 1;
    }
    return true;
}

static bool put_msrs(X86CpuState *s, bool deadline, GError **err)
{
    g_autofree MsrBuf *all = g_new0(MsrBuf, 1);
    for (unsigned i = 0; i < s->nmsrs; i++) {
        if ((s->msrs[i].index == MSR_IA32_TSC_DEADLINE) == deadline) {
            all->e[all->hdr.nmsrs++] = (struct kvm_msr_entry){ .index = s->msrs[i].index, .data = s->msrs[i].value };
        }
    }
    g_autofree MsrBuf *b = g_new0(MsrBuf, 1);
    for (unsigned next = 0; next < all->hdr.nmsrs;) {
        b->hdr.nmsrs = all->hdr.nmsrs - next;
        memcpy(b->e, &all->e[next], b->hdr.nmsrs * sizeof(b->e[0]));
        int put = ioctl(kvm_vcpu_fd(s->vcpu), KVM_SET_MSRS, b);
        if (put < 0) {
            return fail_errno(err, s->vcpu, "KVM_SET_MSRS");
        }
        next += put;
        if (next == all->hdr.nmsrs) {
            break;
        }
        /*
         * KVM reads some MSRs a guest's CPUID does not have (XSS without
         * XSAVES) but refuses to write them; zero is their reset value.
         */
        if (all->e[next].data != 0) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "vCPU %u: KVM refused MSR 0x%x = 0x%" G_GINT64_MODIFIER "x from the stream",
                        kvm_vcpu_index(s->vcpu), all->e[next].index, (uint64_t)all->e[next].data);
            return false;
        }
        next++;
    }
    return true;
}

static bool cpu_post_load(void *opaque, int version, GError **err)
{
    X86CpuState *s = opaque;
    int fd = kvm_vcpu_fd(s->vcpu);
    if (s->nmsrs > X86_SAVED_MSRS_MAX) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "vCPU %u: %u MSRs in the stream, at most %u",
                    kvm_vcpu_index(s->vcpu), s->nmsrs, X86_SAVED_MSRS_MAX);
        return false;
    }
    s->events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
    struct {
        unsigned long req;
        void *p;
        const char *name;
    } before_msrs[] = {
        { KVM_SET_REGS, &s->regs, "KVM_SET_REGS" },
        { KVM_SET_XSAVE, &s->xsave, "KVM_SET_XSAVE" },
        { KVM_SET_XCRS, &s->xcrs, "KVM_SET_XCRS" },
        { KVM_SET_SREGS, &s->sregs, "KVM_SET_SREGS" },
    }, after_msrs[] = {
        { KVM_SET_VCPU_EVENTS, &s->events, "KVM_SET_VCPU_EVENTS" },
        { KVM_SET_MP_STATE, &s->mp_state, "KVM_SET_MP_STATE" },
        { KVM_SET_LAPIC, &s->lapic, "KVM_SET_LAPIC" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(before_msrs); i++) {
        if (ioctl(fd, before_msrs[i].req, before_msrs[i].p) < 0) {
            return fail_errno(err, s->vcpu, before_msrs[i].name);
        }
    }
    if (!put_msrs(s, false, err)) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(after_msrs); i++) {
        if (ioctl(fd, after_msrs[i].req, after_msrs[i].p) < 0) {
            return fail_errno(err, s->vcpu, after_msrs[i].name);
        }
    }
    if (!put_msrs(s, true, err)) {
        return false;
    }
    if (ioctl(fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0) {
        return fail_errno(err, s->vcpu, "KVM_SET_DEBUGREGS");
    }
    return true;
}

static const VMStateField msr_fields[] = {
    VMSTATE_UINT32(X86SavedMsr, index),
    VMSTATE_UINT64(X86SavedMsr, value),
    VMSTATE_END,
};
static const VMStateDescription msr_vmsd = { .name = "msr", .version = 1, .fields = msr_fields };

static const VMStateField cpu_fields[] = {
    VMSTATE_BUFFER(X86CpuState, regs),
    VMSTATE_BUFFER(X86CpuState, sregs),
    VMSTATE_BUFFER(X86CpuState, xsave),
    VMSTATE_BUFFER(X86CpuState, xcrs),
    VMSTATE_BUFFER(X86CpuState, debugregs),
    VMSTATE_BUFFER(X86CpuState, events),
    VMSTATE_BUFFER(X86CpuState, mp_state),
    VMSTATE_BUFFER(X86CpuState, lapic),
    VMSTATE_UINT32(X86CpuState, nmsrs),
    VMSTATE_STRUCT_ARRAY(X86CpuState, msrs, msr_vmsd, X86SavedMsr),
    VMSTATE_END,
};

const VMStateDescription x86_cpu_vmsd = {
    .name = "cpu",
    .version = 1,
    .minimum_version = 1,
    .fields = cpu_fields,
    .pre_save = cpu_pre_save,
    .post_load = cpu_post_load,
};

/* ---- PIC, IOAPIC, PIT, kvmclock ---- */

static bool devices_pre_save(void *opaque, GError **err)
{
    X86KvmDevicesState *s = opaque;
    int fd = kvm_vm_fd(s->vm);
    s->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
    s->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
    s->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
    struct kvm_irqchip *chips[] = { &s->pic_master, &s->pic_slave, &s->ioapic };
    for (size_t i = 0; i < G_N_ELEMENTS(chips); i++) {
        if (ioctl(fd, KVM_GET_IRQCHIP, chips[i]) < 0) {
            return fail_errno(err, NULL, "KVM_GET_IRQCHIP");
        }
    }
    if (ioctl(fd, KVM_GET_PIT2, &s->pit) < 0) {
        return fail_errno(err, NULL, "KVM_GET_PIT2");
    }
    if (ioctl(fd, KVM_GET_CLOCK, &s->clock) < 0) {
        return fail_errno(err, NULL, "KVM_GET_CLOCK");
    }
    return true;
}

static bool devices_post_load(void *opaque, int version, GError **err)
{
    X86KvmDevicesState *s = opaque;
    int fd = kvm_vm_fd(s->vm);
    if (s->pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER || s->pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
        s->ioapic.chip_id != KVM_IRQCHIP_IOAPIC) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "interrupt controller state with the wrong chip ids");
        return false;
    }
    struct kvm_irqchip *chips[] = { &s->pic_master, &s->pic_slave, &s->ioapic };
    for (size_t i = 0; i < G_N_ELEMENTS(chips); i++) {
        if (ioctl(fd, KVM_SET_IRQCHIP, chips[i]) < 0) {
            return fail_errno(err, NULL, "KVM_SET_IRQCHIP");
        }
    }
    if (ioctl(fd, KVM_SET_PIT2, &s->pit) < 0) {
        return fail_errno(err, NULL, "KVM_SET_PIT2");
    }
    /* The guest's clock continues from where it stopped; only the value is given back. */
    struct kvm_clock_data clock = { .clock = s->clock.clock };
    if (ioctl(fd, KVM_SET_CLOCK, &clock) < 0) {
        return fail_errno(err, NULL, "KVM_SET_CLOCK");
    }
    return true;
}

static const VMStateField devices_fields[] = {
    VMSTATE_BUFFER(X86KvmDevicesState, pic_master),
    VMSTATE_BUFFER(X86KvmDevicesState, pic_slave),
    VMSTATE_BUFFER(X86KvmDevicesState, ioapic),
    VMSTATE_BUFFER(X86KvmDevicesState, pit),
    VMSTATE_BUFFER(X86KvmDevicesState, clock),
    VMSTATE_END,
};

const VMStateDescription x86_kvm_devices_vmsd = {
    .name = "kvm-x86-devices",
    .version = 1,
    .minimum_version = 1,
    .fields = devices_fields,
    .pre_save = devices_pre_save,
    .post_load = devices_post_load,
};
