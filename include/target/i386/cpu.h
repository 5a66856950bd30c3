/* x86 vCPU setup on KVM: CPUID, MSRs and the register state a loader asks for. */
#pragma once
#include "accel/kvm.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct X86Topology {
    unsigned cpus, sockets, cores, threads;
} X86Topology;

/* CPU models -cpu accepts; "host" is the only one: the host's CPUID as KVM offers it. */
extern const char *const x86_cpu_models[];

/* CPUID (host model, KVM paravirt leaves, topology for @index) and initial MSRs. */
bool x86_cpu_setup(KvmVcpu *vcpu, const X86Topology *topo, GError **err);

typedef enum {
    X86_BOOT_LONG_MODE, /* Linux 64-bit boot protocol: paging on, flat 64-bit CS */
    X86_BOOT_FLAT32,    /* PVH: protected mode, paging off, flat 32-bit segments */
} X86BootMode;

typedef struct X86BootState {
    X86BootMode mode;
    uint64_t rip, rsi, rbx, rsp;
    uint64_t cr3;             /* X86_BOOT_LONG_MODE: the PML4 */
    uint64_t gdt_base;        /* a GDT the loader wrote with code at 0x10, data at 0x18 */
    uint16_t gdt_limit;
} X86BootState;

/* Put the boot vCPU in the state a loader describes. */
bool x86_cpu_set_boot_state(KvmVcpu *vcpu, const X86BootState *boot, GError **err);
