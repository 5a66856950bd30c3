/*
 * Guest-linear addresses to guest-physical through an x86 vCPU's page
 * tables as they stand in guest RAM (target/i386/page-walk.c), for what
 * reads a stopped guest's memory: the background snapshot's footprint,
 * HMP's x/i and the register dump.
 */
#pragma once
#include "hw/core/machine.h"
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#define X86_EFER_LMA (1u << 10)

/* One 8-byte word of guest RAM at @gpa, 0 where there is none. */
uint64_t x86_guest_u64(Machine *m, uint64_t gpa);

/*
 * @linear through the page tables of a vCPU whose control registers are
 * @s. In long mode by walking them here, permissions aside: KVM_TRANSLATE
 * walks as a supervisor data access, which SMAP refuses for a program's
 * pages (a program's stack did not translate in the test rig). Otherwise
 * KVM_TRANSLATE on @vcpu_fd. False where nothing is mapped.
 */
bool x86_translate(Machine *m, int vcpu_fd, const struct kvm_sregs *s, uint64_t linear, uint64_t *gpa);
