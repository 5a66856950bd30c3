/*
 * x86_vcpu_footprint over a guest laid out here: long-mode page tables
 * with 2 MiB pages for the kernel's direct map and 4 KiB ones for a
 * program, and the saved state of a vCPU paused in that program. What a
 * background snapshot would save first, and the walk (x86_translate) on
 * its own.
 */
#include "hw/core/machine.h"
#include "target/i386/cpu-state.h"
#include "target/i386/page-walk.h"
#include <string.h>

#define RAM_SIZE (64ull << 20)
#define CHUNK (2ull << 20)
#define DIRECT_MAP 0xffff888000000000ull /* PML4 slot 273: guest-physical 0 */
#define PRESENT_RW 3ull
#define LARGE 0x80ull
#define PML4 0x1000ull
#define PDPT_USER 0x2000ull
#define PD_USER 0x3000ull
#define PT_USER 0x4000ull
#define PDPT_KERNEL 0x5000ull
#define PD_KERNEL 0x6000ull
#define PROGRAM 0x400000ull      /* linear, 4 KiB pages from... */
#define PROGRAM_PHYS 0xa00000ull /* ...here, chunk 5 */
#define PER_CPU 0x100000ull      /* chunk 0 */
#define TSS 0x200000ull          /* chunk 1 */
#define KSTACK_TOP 0x600000ull   /* the top of a kernel stack in chunk 2 */

typedef struct {
    Machine m;
    uint8_t *ram;
} Guest;

static void *guest_hva(Machine *m, uint64_t gpa, uint64_t len)
{
    Guest *g = (Guest *)m;
    return gpa < RAM_SIZE && len <= RAM_SIZE - gpa ? g->ram + gpa : NULL;
}

static void put(Guest *g, uint64_t gpa, uint64_t v)
{
    memcpy(g->ram + gpa, &v, 8);
}

static void guest_init(Guest *g, X86CpuState *s)
{
    memset(g, 0, sizeof(*g));
    machine_init(&g->m);
    g->m.gpa_to_hva = guest_hva;
    g->ram = g_malloc0(RAM_SIZE);
    /* The program: linear 0x400000-0x401fff at PROGRAM_PHYS, through a page table. */
    put(g, PML4, PDPT_USER | PRESENT_RW | 4);
    put(g, PDPT_USER, PD_USER | PRESENT_RW | 4);
    put(g, PD_USER + 2 * 8, PT_USER | PRESENT_RW | 4);
    put(g, PT_USER, PROGRAM_PHYS | PRESENT_RW | 4);
    put(g, PT_USER + 8, (PROGRAM_PHYS + 0x1000) | PRESENT_RW | 4);
    /* The direct map: all of RAM in 2 MiB pages. */
    put(g, PML4 + 273 * 8, PDPT_KERNEL | PRESENT_RW);
    put(g, PDPT_KERNEL, PD_KERNEL | PRESENT_RW);
    for (uint64_t i = 0; i < RAM_SIZE / CHUNK; i++) {
        put(g, PD_KERNEL + i * 8, i * CHUNK | PRESENT_RW | LARGE);
    }
    put(g, TSS + 4, DIRECT_MAP + KSTACK_TOP); /* RSP0 */

    memset(s, 0, sizeof(*s));
    s->sregs.cr0 = 0x80000001;
    s->sregs.cr3 = PML4;
    s->sregs.efer = 0x500; /* LME, LMA */
    s->sregs.tr.base = DIRECT_MAP + TSS;
    s->sregs.gs.base = 0; /* in the program: the kernel's GS base is the other one */
    s->nmsrs = 1;
    s->msrs[0] = (X86SavedMsr){ 0xc0000102, DIRECT_MAP + PER_CPU };
    s->regs.rsp = PROGRAM + 0x1ff0;
    s->regs.rax = PROGRAM + 8;
    s->regs.rbx = 7;                     /* no address */
    s->regs.rcx = DIRECT_MAP + RAM_SIZE; /* past RAM */
    s->sregs.idt.base = DIRECT_MAP + 20 * CHUNK + 0x1000;
    s->msrs[s->nmsrs++] = (X86SavedMsr){ 0xc0000082, DIRECT_MAP + 16 * CHUNK }; /* LSTAR: the text, below */
    s->msrs[s->nmsrs++] = (X86SavedMsr){ 0x4b564d03, 0x7000 | 1 };              /* steal time, on */
}

static void guest_free(Guest *g)
{
    g_free(g->ram);
    machine_cleanup(&g->m);
}

static bool has(const GuestSpan *spans, unsigned n, uint64_t gpa, uint64_t len, unsigned *at)
{
    for (unsigned i = 0; i < n; i++) {
        if (spans[i].gpa == gpa && spans[i].len == len) {
            *at = i;
            return true;
        }
    }
    return false;
}

static void test_paused_program(void)
{
    Guest g;
    X86CpuState s;
    guest_init(&g, &s);
    GuestSpan spans[64];
    unsigned n = x86_vcpu_footprint(&g.m, &s, spans, G_N_ELEMENTS(spans)), at = 0;
    const GuestSpan want[] = {
        { PER_CPU, 4096 },                    /* the kernel's GS base */
        { TSS, 4096 },                        /* TR */
        { PML4, 4096 },                       /* CR3 */
        { KSTACK_TOP - 4096, 4096 },          /* the TSS's RSP0 */
        { PROGRAM_PHYS + 0x1000, 4096 },      /* RSP, through the page table */
        { PROGRAM_PHYS, 4096 },               /* RAX */
        { 0x7000, 4096 },                     /* steal time */
        { 20 * CHUNK, CHUNK },                /* the IDT's chunk and the three above */
        { 21 * CHUNK, CHUNK },
        { 22 * CHUNK, CHUNK },
        { 23 * CHUNK, CHUNK },
        { 19 * CHUNK, CHUNK },                /* and below, down to the LSTAR's */
        { 18 * CHUNK, CHUNK },
        { 17 * CHUNK, CHUNK },
        { 16 * CHUNK, CHUNK },
    };
    g_assert_cmpuint(n, ==, G_N_ELEMENTS(want));
    for (unsigned i = 0; i < G_N_ELEMENTS(want); i++) {
        g_assert_true(has(spans, n, want[i].gpa, want[i].len, &at));
        g_assert_cmpuint(at, ==, i);
    }
    guest_free(&g);
}

/* The walk itself: a 1 GiB page, a page table, nothing mapped, and five levels (LA57). */
static void test_walk(void)
{
    Guest g;
    X86CpuState s;
    guest_init(&g, &s);
    put(&g, PDPT_KERNEL + 8, 0 | PRESENT_RW | LARGE); /* DIRECT_MAP + 1 GiB: a 1 GiB page at 0 */
    uint64_t gpa;
    g_assert_true(x86_translate(&g.m, -1, &s.sregs, DIRECT_MAP + (1ull << 30) + 0x123456, &gpa));
    g_assert_cmphex(gpa, ==, 0x123456);
    g_assert_true(x86_translate(&g.m, -1, &s.sregs, PROGRAM + 0x1008, &gpa));
    g_assert_cmphex(gpa, ==, PROGRAM_PHYS + 0x1008);
    g_assert_false(x86_translate(&g.m, -1, &s.sregs, PROGRAM + 0x2000, &gpa));
    g_assert_false(x86_translate(&g.m, -1, &s.sregs, 0x7fff00000000ull, &gpa));
    /* LA57: a fifth level above the same tables. */
    put(&g, 0xb000, PML4 | PRESENT_RW | 4);
    s.sregs.cr3 = 0xb000;
    s.sregs.cr4 |= 1u << 12;
    g_assert_true(x86_translate(&g.m, -1, &s.sregs, PROGRAM + 0x1008, &gpa));
    g_assert_cmphex(gpa, ==, PROGRAM_PHYS + 0x1008);
    guest_free(&g);
}

static void test_paging_off(void)
{
    Guest g;
    X86CpuState s;
    guest_init(&g, &s);
    s.sregs.cr0 = 1;
    GuestSpan spans[8];
    /* A boot loader: only what KVM itself writes. */
    g_assert_cmpuint(x86_vcpu_footprint(&g.m, &s, spans, G_N_ELEMENTS(spans)), ==, 1);
    g_assert_cmpuint(spans[0].gpa, ==, 0x7000);
    guest_free(&g);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/footprint/paused-program", test_paused_program);
    g_test_add_func("/footprint/paging-off", test_paging_off);
    g_test_add_func("/footprint/walk", test_walk);
    return g_test_run();
}
