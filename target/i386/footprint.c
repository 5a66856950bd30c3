/*
 * Where a paused x86 guest writes first when it runs again, read from its
 * vCPUs' registers: the background snapshot saves those chunks of RAM
 * before the rest, so that the guest, back from the pause, finds them
 * unprotected instead of faulting on them one after the other (1.5-5 ms
 * each in the test rig, while the vCPU waits; docs/migration.md).
 *
 * In the rig the first 14 or so write faults after a snapshot's pause
 * came, every time, before any program ran: the per-CPU area (the chunk
 * of the GS base, GDT and TSS, where KVM's steal-time area lies too), the
 * page tables (CR3), the 2 MiB chunks of the kernel's data around its IDT,
 * which KASLR puts anywhere, and the stack of the program that was
 * running; then slab memory, which no register names. KVM's paravirtual
 * areas are added because KVM itself writes them as the vCPU enters.
 */
#define G_LOG_DOMAIN "cpu"
#include "target/i386/cpu.h"
#include <asm/kvm_para.h>
#include <string.h>
#include <sys/ioctl.h>

#define MSR_LSTAR 0xc0000082
#define MSR_GS_BASE 0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102
#define CR0_PG 0x80000000u
#define CR4_LA57 (1u << 12)
#define EFER_LMA (1u << 10)
#define PTE_PRESENT 1ull
#define PTE_LARGE 0x80ull
#define PTE_ADDR 0x000ffffffffff000ull
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
    KvmVcpu *vcpu;
    struct kvm_sregs s;
    GuestSpan *out;
    unsigned max, n;
} Footprint;

/* One 8-byte word of guest RAM, 0 where there is none. */
static uint64_t read_word(Machine *m, uint64_t gpa)
{
    uint64_t v = 0;
    const void *p = m->gpa_to_hva(m, gpa, 8);
    if (p) {
        memcpy(&v, p, 8);
    }
    return v;
}

/*
 * @linear through the vCPU's page tables. In long mode by walking them
 * here, permissions aside: KVM_TRANSLATE walks as a supervisor access, which
 * SMAP refuses for user pages (the stack of a program the vCPU was running
 * did not translate in the test rig). Otherwise KVM_TRANSLATE.
 */
static bool translate(Footprint *f, uint64_t linear, uint64_t *gpa)
{
    if (!(f->s.efer & EFER_LMA)) {
        struct kvm_translation tr = { .linear_address = linear };
        if (ioctl(kvm_vcpu_fd(f->vcpu), KVM_TRANSLATE, &tr) < 0 || !tr.valid) {
            return false;
        }
        *gpa = tr.physical_address;
        return true;
    }
    uint64_t table = f->s.cr3 & PTE_ADDR;
    for (unsigned level = f->s.cr4 & CR4_LA57 ? 5 : 4; level >= 1; level--) {
        unsigned shift = 12 + 9 * (level - 1);
        uint64_t entry = read_word(f->m, table + ((linear >> shift) & 511) * 8);
        if (!(entry & PTE_PRESENT)) {
            return false;
        }
        if (level == 1 || ((level == 2 || level == 3) && (entry & PTE_LARGE))) {
            uint64_t offset = linear & ((1ull << shift) - 1);
            *gpa = (entry & PTE_ADDR & ~((1ull << shift) - 1)) | offset;
            return true;
        }
        table = entry & PTE_ADDR;
    }
    return false;
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

/* One MSR, 0 if KVM has none by that index. */
static uint64_t read_msr(int fd, uint32_t index)
{
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } msr = { .hdr.nmsrs = 1, .e.index = index };
    return ioctl(fd, KVM_GET_MSRS, &msr) == 1 ? msr.e.data : 0;
}

unsigned x86_vcpu_footprint(Machine *m, KvmVcpu *vcpu, GuestSpan *out, unsigned max)
{
    /* KVM's paravirtual areas (guest-physical, bit 0 "on"): KVM itself writes them as the vCPU runs. */
    static const uint32_t paravirt[] = { MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_SYSTEM_TIME, MSR_KVM_STEAL_TIME,
                                         MSR_KVM_PV_EOI_EN, MSR_KVM_ASYNC_PF_EN };
    int fd = kvm_vcpu_fd(vcpu);
    Footprint f = { .m = m, .vcpu = vcpu, .out = out, .max = max };
    struct kvm_regs r;
    if (ioctl(fd, KVM_GET_SREGS, &f.s) < 0 || ioctl(fd, KVM_GET_REGS, &r) < 0) {
        return 0; /* nothing to say: the snapshot just walks in order */
    }
    bool paging = f.s.cr0 & CR0_PG;
    if (paging) {
        add_linear(&f, read_msr(fd, MSR_GS_BASE));
        add_linear(&f, read_msr(fd, MSR_KERNEL_GS_BASE));
        add_linear(&f, f.s.gdt.base);
        add_linear(&f, f.s.tr.base);
        add(&f, f.s.cr3 & PAGE_MASK_4K, PAGE_4K);
        /* The stack the vCPU enters the kernel on (RSP0, byte 4 of the 64-bit TSS), and the one it is on. */
        uint64_t tss_rsp0;
        if (translate(&f, f.s.tr.base + 4, &tss_rsp0)) {
            uint64_t rsp0 = read_word(m, tss_rsp0);
            if (rsp0) {
                add_linear(&f, rsp0 - 8);
            }
        }
        add_linear(&f, r.rsp - 8);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(paravirt); i++) {
        uint64_t v = read_msr(fd, paravirt[i]);
        if (v & 1) {
            add(&f, v & PAGE_MASK_4K, PAGE_4K);
        }
    }
    if (!paging) {
        return f.n; /* a boot loader, not a kernel */
    }
    uint64_t idt, entry = 0, lstar = read_msr(fd, MSR_LSTAR);
    if (translate(&f, f.s.idt.base, &idt)) {
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
