/*
 * Linux's x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry:
 * the protected-mode kernel is loaded at 1 MiB and entered at +0x200 in long
 * mode with identity-mapped page tables and %rsi pointing at boot_params.
 */
#include "hw/i386/x86-boot.h"
#include "util/error.h"
#include <string.h>

/* Offsets in the image's first sector and in boot_params (the "zero page"). */
enum {
    HDR_SETUP_SECTS = 0x1f1,
    HDR_VID_MODE = 0x1fa,
    HDR_BOOT_FLAG = 0x1fe,
    HDR_JUMP = 0x200,
    HDR_MAGIC = 0x202,
    HDR_VERSION = 0x206,
    HDR_TYPE_OF_LOADER = 0x210,
    HDR_LOADFLAGS = 0x211,
    HDR_RAMDISK_IMAGE = 0x218,
    HDR_RAMDISK_SIZE = 0x21c,
    HDR_CMD_LINE_PTR = 0x228,
    HDR_INITRD_ADDR_MAX = 0x22c,
    HDR_XLOADFLAGS = 0x236,
    HDR_CMDLINE_SIZE = 0x238,
    HDR_INIT_SIZE = 0x260,
    BP_ACPI_RSDP_ADDR = 0x070,
    BP_EXT_RAMDISK_IMAGE = 0x0c0,
    BP_EXT_RAMDISK_SIZE = 0x0c4,
    BP_EXT_CMD_LINE_PTR = 0x0c8,
    BP_E820_ENTRIES = 0x1e8,
    BP_E820_TABLE = 0x2d0,
    BP_E820_MAX = 128,
    BP_SIZE = 4096,
};

#define LOADFLAGS_LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x01
#define MIN_VERSION 0x020c /* 2.12: xloadflags and the 64-bit entry */

static uint32_t rd32(const uint8_t *p, size_t off)
{
    uint32_t v;
    memcpy(&v, p + off, 4);
    return GUINT32_FROM_LE(v);
}

static uint16_t rd16(const uint8_t *p, size_t off)
{
    uint16_t v;
    memcpy(&v, p + off, 2);
    return GUINT16_FROM_LE(v);
}

static void wr32(uint8_t *p, size_t off, uint32_t v)
{
    v = GUINT32_TO_LE(v);
    memcpy(p + off, &v, 4);
}

static void wr64(uint8_t *p, size_t off, uint64_t v)
{
    v = GUINT64_TO_LE(v);
    memcpy(p + off, &v, 8);
}

bool bzimage_probe(GBytes *kernel)
{
    gsize len;
    const uint8_t *k = g_bytes_get_data(kernel, &len);
    return len > 0x300 && memcmp(k + HDR_MAGIC, "HdrS", 4) == 0 && rd16(k, HDR_BOOT_FLAG) == 0xaa55;
}

bool bzimage_load(const X86BootInfo *info, X86BootState *boot, GError **err)
{
    gsize len;
    const uint8_t *k = g_bytes_get_data(info->kernel, &len);
    const char *path = info->kernel_path;
    uint16_t version = rd16(k, HDR_VERSION);

    if (version < MIN_VERSION || !(k[HDR_XLOADFLAGS] & XLF_KERNEL_64) || !(k[HDR_LOADFLAGS] & LOADFLAGS_LOADED_HIGH)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "kernel '%s': boot protocol %u.%02u without a 64-bit entry point (need 2.12+, a 64-bit kernel)",
                    path, version >> 8, version & 0xff);
        return false;
    }
    unsigned setup_sects = k[HDR_SETUP_SECTS] ? k[HDR_SETUP_SECTS] : 4;
    size_t setup_size = (setup_sects + 1) * 512;
    size_t hdr_end = HDR_JUMP + 2 + k[HDR_JUMP + 1];
    if (setup_size >= len || hdr_end > 0x300) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "kernel '%s' is truncated or its setup header is corrupt",
                    path);
        return false;
    }
    size_t kernel_size = len - setup_size;
    uint64_t kernel_end = X86_KERNEL_LOAD + MAX((uint64_t)rd32(k, HDR_INIT_SIZE), kernel_size);
    if (kernel_end > info->ram_below_4g) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "kernel '%s' needs %" G_GUINT64_FORMAT " MiB of RAM to unpack; give the guest more with -m", path,
                    kernel_end >> 20);
        return false;
    }
    if (!x86_boot_write(info, X86_KERNEL_LOAD, k + setup_size, kernel_size, err)) {
        return false;
    }

    g_autofree uint8_t *bp = g_malloc0(BP_SIZE);
    memcpy(bp + HDR_SETUP_SECTS, k + HDR_SETUP_SECTS, hdr_end - HDR_SETUP_SECTS);
    bp[HDR_TYPE_OF_LOADER] = 0xff;
    bp[HDR_VID_MODE] = 0xff;
    bp[HDR_VID_MODE + 1] = 0xff;

    size_t cmdline_len = strlen(info->cmdline) + 1;
    size_t cmdline_max = version >= 0x0206 ? rd32(k, HDR_CMDLINE_SIZE) + 1 : 256;
    if (cmdline_len > MIN(cmdline_max, (size_t)X86_BOOT_CMDLINE_MAX)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "-append: the kernel command line is %zu bytes; kernel '%s' accepts %zu", cmdline_len - 1,
                    path, MIN(cmdline_max, (size_t)X86_BOOT_CMDLINE_MAX) - 1);
        return false;
    }
    if (!x86_boot_write(info, X86_BOOT_CMDLINE, info->cmdline, cmdline_len, err)) {
        return false;
    }
    wr32(bp, HDR_CMD_LINE_PTR, X86_BOOT_CMDLINE);
    wr32(bp, BP_EXT_CMD_LINE_PTR, 0);

    if (info->initrd) {
        uint64_t addr, limit = (uint64_t)rd32(k, HDR_INITRD_ADDR_MAX) + 1;
        if (!x86_boot_place_initrd(info, kernel_end, limit, &addr, err) ||
            !x86_boot_write(info, addr, g_bytes_get_data(info->initrd, NULL), g_bytes_get_size(info->initrd), err)) {
            return false;
        }
        wr32(bp, HDR_RAMDISK_IMAGE, addr);
        wr32(bp, HDR_RAMDISK_SIZE, g_bytes_get_size(info->initrd));
        wr32(bp, BP_EXT_RAMDISK_IMAGE, addr >> 32);
        wr32(bp, BP_EXT_RAMDISK_SIZE, (uint64_t)g_bytes_get_size(info->initrd) >> 32);
    }

    wr64(bp, BP_ACPI_RSDP_ADDR, info->rsdp_gpa);
    g_assert(info->e820_entries <= BP_E820_MAX);
    bp[BP_E820_ENTRIES] = info->e820_entries;
    for (unsigned i = 0; i < info->e820_entries; i++) {
        uint8_t *e = bp + BP_E820_TABLE + i * 20;
        wr64(e, 0, info->e820[i].addr);
        wr64(e, 8, info->e820[i].size);
        wr32(e, 16, info->e820[i].type);
    }
    if (!x86_boot_write(info, X86_BOOT_INFO, bp, BP_SIZE, err) ||
        !x86_boot_write_gdt(info, true, boot, err) || !x86_boot_write_page_tables(info, boot, err)) {
        return false;
    }
    boot->mode = X86_BOOT_LONG_MODE;
    boot->rip = X86_KERNEL_LOAD + 0x200;
    boot->rsi = X86_BOOT_INFO;
    boot->rsp = X86_BOOT_STACK_TOP;
    return true;
}
