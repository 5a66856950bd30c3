/*
 * Where a paused x86 guest writes first when it runs again, read from the
 * vCPU state just saved: the background snapshot saves those chunks of RAM
 * before the rest, so that the guest, back from the pause, finds them
 * unprotected instead of faulting on them one after the other (1-3 ms
 * each in the test rig, while the vCPU waits; docs/migration.md).
 *
 * In the rig the first write faults after a snapshot's pause came, every
 * time, before any program ran: the per-CPU area (the chunk of the GS
 * base, GDT and TSS, where KVM's steal-time area lies too), the page
 * tables (CR3), the 2 MiB chunks of the kernel's data around its IDT,
 * which KASLR puts anywhere, the stack and data of the program that was
 * running; then slab memory, which no register names. KVM's paravirtual
 * areas are added because KVM itself writes them as the vCPU enters.
 *
 * The slab chunks can be found through the pointers in the per-CPU area:
 * all of them were among the chunks its first 256 KiB point into. But
 * there were some 30 of those, and with them in the list (and the scan
 * in the pause) bench/bgsnap's worst stall doubled (median 48 ms against
 * 23, 5 rounds each, alternated in one rig run): the guest got to the ones
 * it wrote before the snapshot's threads did either way.
 */
#define G_LOG_DOMAIN "cpu"
#include "target/i386/cpu-state.h"
#include "target/i386/page-walk.h"
#include <asm/kvm_para.h>
#include <string.h>

#define MSR_LSTAR 0xc0000082
#define MSR_KERNEL_GS_BASE 0xc0000102
#define CR0_PG 0x80000000u
#define PAGE_4K 4096ull
#define PAGE_MASK_4K (~(PAGE_4K - 1))
#define CHUNK (2ull << 20)
/*
 * Linux's .data and .bss around its IDT: the rig's faults right after the
 * pause fell from 7 chunks below the IDT's to 3 above it; its text, lower
 * down, is never written. Chunks of 2 MiB, the snapshot's unit.
 */
#define IMAGE_BELOW 8
#define IMAGE_ABOVE 4

typedef struct Footprint {
    Machine *m;
    const X86CpuState *s;
    GuestSpan *out;
    unsigned max, n;
} Footprint;

static uint64_t saved_msr(const X86CpuState *s, uint32_t index)
{
    for (unsigned i = 0; i < s->nmsrs; i++) {
        if (s->msrs[i].index == index) {
            return s->msrs[i].value;
        }
    }
    return 0;
}

/* x86_translate with the saved registers (a state read from no vCPU can only be walked). */
static bool translate(Footprint *f, uint64_t linear, uint64_t *gpa)
{
    return x86_translate(f->m, f->s->vcpu ? kvm_vcpu_fd(f->s->vcpu) : -1, &f->s->sregs, linear, gpa);
}

static void add(Footprint *f, uint64_t gpa, uint64_t len)
{
    if (f->n < f->max) {
        f->out[f->n++] = (GuestSpan){ gpa, len };
    }
}

static void add_linear(Footprint *f, uint64_t linear)
{
    uint64_t gpa;
    if (linear && translate(f, linear, &gpa)) {
        add(f, gpa & PAGE_MASK_4K, PAGE_4K);
    }
}

unsigned x86_vcpu_footprint(Machine *m, const X86CpuState *s, GuestSpan *out, unsigned max)
{
    /* KVM's paravirtual areas (guest-physical, bit 0 "on"): KVM itself writes them as the vCPU runs. */
    static const uint32_t paravirt[] = { MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_SYSTEM_TIME, MSR_KVM_STEAL_TIME,
                                         MSR_KVM_PV_EOI_EN, MSR_KVM_ASYNC_PF_EN };
    Footprint f = { .m = m, .s = s, .out = out, .max = max };
    const struct kvm_regs *r = &s->regs;
    bool paging = s->sregs.cr0 & CR0_PG;
    if (paging) {
        add_linear(&f, s->sregs.gs.base);
        add_linear(&f, saved_msr(s, MSR_KERNEL_GS_BASE));
        add_linear(&f, s->sregs.gdt.base);
        add_linear(&f, s->sregs.tr.base);
        add(&f, s->sregs.cr3 & PAGE_MASK_4K, PAGE_4K);
        /* The stack the vCPU enters the kernel on (RSP0, byte 4 of the 64-bit TSS), and the one it is on. */
        uint64_t tss_rsp0;
        if (translate(&f, s->sregs.tr.base + 4, &tss_rsp0)) {
            uint64_t rsp0 = x86_guest_u64(m, tss_rsp0);
            if (rsp0) {
                add_linear(&f, rsp0 - 8);
            }
        }
        add_linear(&f, r->rsp - 8);
        /* What the program or kernel was working on: a writer's buffer, in bench/bgsnap. */
        const uint64_t gprs[] = { r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rbp, r->r8,
                                  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15 };
        for (unsigned i = 0; i < G_N_ELEMENTS(gprs); i++) {
            add_linear(&f, gprs[i]);
        }
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(paravirt); i++) {
        uint64_t v = saved_msr(s, paravirt[i]);
        if (v & 1) {
            add(&f, v & PAGE_MASK_4K, PAGE_4K);
        }
    }
    if (!paging) {
        return f.n; /* a boot loader, not a kernel */
    }
    uint64_t idt, entry = 0, lstar = saved_msr(s, MSR_LSTAR);
    if (translate(&f, s->sregs.idt.base, &idt)) {
        /* From the IDT's chunk up, then down towards the system-call entry (the image's text). */
        uint64_t base = idt / CHUNK * CHUNK;
        uint64_t floor = lstar && translate(&f, lstar, &entry) && entry <= base ? entry / CHUNK * CHUNK : 0;
        for (unsigned i = 0; i < IMAGE_ABOVE; i++) {
            add(&f, base + i * CHUNK, CHUNK);
        }
        for (unsigned i = 1; i <= IMAGE_BELOW && base >= floor + i * CHUNK; i++) {
            add(&f, base - i * CHUNK, CHUNK);
        }
    }
    return f.n;
}
