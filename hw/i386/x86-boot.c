#include "hw/i386/x86-boot.h"
#include "util/error.h"
#include <string.h>

bool x86_kernel_check(const char *path, GBytes *kernel, GError **err)
{
    if (bzimage_probe(kernel) || pvh_probe(kernel)) {
        return true;
    }
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                "-kernel %s: not a Linux bzImage, nor an ELF image with a PVH entry", path);
    return false;
}

bool x86_load_kernel(const X86BootInfo *info, X86BootState *boot, GError **err)
{
    if (!x86_kernel_check(info->kernel_path, info->kernel, err)) {
        return false;
    }
    return bzimage_probe(info->kernel) ? bzimage_load(info, boot, err) : pvh_load(info, boot, err);
}

bool x86_boot_write(const X86BootInfo *info, uint64_t gpa, const void *data, size_t len, GError **err)
{
    Machine *m = info->machine;
    void *hva = m->gpa_to_hva(m, gpa, len);
    if (!hva) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "kernel '%s': [0x%" G_GINT64_MODIFIER "x, +0x%zx) is outside guest RAM",
                    info->kernel_path, gpa, len);
        return false;
    }
    memcpy(hva, data, len);
    return true;
}

bool x86_boot_write_gdt(const X86BootInfo *info, bool long_mode, X86BootState *boot, GError **err)
{
    const uint64_t gdt[4] = {
        0,
        0,
        long_mode ? 0x00af9b000000ffffULL   /* 0x10: 64-bit code, present, readable */
                  : 0x00cf9b000000ffffULL,  /* 0x10: 32-bit flat code */
        0x00cf93000000ffffULL,              /* 0x18: flat data, writable */
    };
    boot->gdt_base = X86_BOOT_GDT;
    boot->gdt_limit = sizeof(gdt) - 1;
    return x86_boot_write(info, X86_BOOT_GDT, gdt, sizeof(gdt), err);
}

bool x86_boot_write_page_tables(const X86BootInfo *info, X86BootState *boot, GError **err)
{
    enum { PDPT = X86_BOOT_PML4 + 0x1000, PD = X86_BOOT_PML4 + 0x2000, PRESENT_RW = 0x3, HUGE = 0x80 };
    uint64_t pml4[512] = { PDPT | PRESENT_RW };
    uint64_t pdpt[512] = { 0 };
    g_autofree uint64_t *pd = g_new0(uint64_t, 4 * 512);

    for (unsigned i = 0; i < 4; i++) {
        pdpt[i] = (PD + i * 0x1000) | PRESENT_RW;
    }
    for (unsigned i = 0; i < 4 * 512; i++) {
        pd[i] = ((uint64_t)i << 21) | PRESENT_RW | HUGE;
    }
    boot->cr3 = X86_BOOT_PML4;
    return x86_boot_write(info, X86_BOOT_PML4, pml4, sizeof(pml4), err) &&
           x86_boot_write(info, PDPT, pdpt, sizeof(pdpt), err) &&
           x86_boot_write(info, PD, pd, 4 * 512 * sizeof(uint64_t), err);
}

bool x86_boot_place_initrd(const X86BootInfo *info, uint64_t floor, uint64_t limit, uint64_t *addr,
                           GError **err)
{
    gsize size = g_bytes_get_size(info->initrd);
    uint64_t top = MIN(limit, info->ram_below_4g);
    if (size > top || ((top - size) & ~0xfffULL) < floor) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "initrd of %zu bytes does not fit in guest RAM below 0x%" G_GINT64_MODIFIER
                    "x after the kernel (try a larger -m)", size, top);
        return false;
    }
    *addr = (top - size) & ~0xfffULL;
    return true;
}
