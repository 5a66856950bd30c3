/*
 * The migratable state of an x86 vCPU and of the in-kernel x86 devices
 * (PIC, IOAPIC, PIT, kvmclock). Each is a vmstate description over a
 * snapshot struct: pre_save reads the state from KVM into the struct,
 * post_load writes it back, in the order KVM needs (the LAPIC before the
 * TSC deadline, which only exists in TSC-deadline mode).
 */
#pragma once
#include "accel/kvm.h"
#include "migration/vmstate.h"

#define X86_SAVED_MSRS_MAX 64

typedef struct X86SavedMsr {
    uint32_t index;
    uint64_t value;
} X86SavedMsr;

typedef struct X86CpuState {
    KvmVcpu *vcpu; /* set by the owner before a save or load */
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_xsave xsave;
    struct kvm_xcrs xcrs;
    struct kvm_debugregs debugregs;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp_state;
    struct kvm_lapic_state lapic;
    uint32_t nmsrs;
    X86SavedMsr msrs[X86_SAVED_MSRS_MAX];
} X86CpuState;

extern const VMStateDescription x86_cpu_vmsd;

/*
 * The guest-physical memory a stopped vCPU's kernel writes first when it
 * runs again, from the state @s its last save read
 * (target/i386/footprint.c): up to @max spans into @out, how many.
 * With paging off, only KVM's paravirtual areas.
 */
unsigned x86_vcpu_footprint(Machine *m, const X86CpuState *s, GuestSpan *out, unsigned max);

typedef struct X86KvmDevicesState {
    KvmVm *vm;
    struct kvm_irqchip pic_master, pic_slave, ioapic;
    struct kvm_pit_state2 pit;
    struct kvm_clock_data clock;
} X86KvmDevicesState;

extern const VMStateDescription x86_kvm_devices_vmsd;
