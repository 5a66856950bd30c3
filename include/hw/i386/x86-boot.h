/*
 * Loading a kernel into a PC's memory: Linux bzImage (64-bit boot protocol)
 * or an ELF with a PVH entry note. The machine describes memory; the loader
 * writes the image, its boot structures, a GDT and (for 64-bit entry) page
 * tables, and says how the boot vCPU must start.
 */
#pragma once
#include "hw/core/machine.h"
#include "target/i386/cpu.h"
#include <glib.h>

enum { E820_RAM = 1, E820_RESERVED = 2, E820_ACPI = 3 };

typedef struct E820Entry {
    uint64_t addr, size;
    uint32_t type;
} E820Entry;

typedef struct X86BootInfo {
    Machine *machine;
    const E820Entry *e820;
    unsigned e820_entries;
    uint64_t ram_below_4g; /* end of RAM below 4 GiB: images and structures go below it */
    uint64_t rsdp_gpa;
    const char *kernel_path; /* for messages */
    GBytes *kernel;
    GBytes *initrd;          /* NULL: none */
    const char *cmdline;     /* "" if none */
} X86BootInfo;

/* Is @kernel a format the loaders know? The error names the file. */
bool x86_kernel_check(const char *path, GBytes *kernel, GError **err);
/* Dispatch on the image format; errors name the kernel file and what is wrong. */
bool x86_load_kernel(const X86BootInfo *info, X86BootState *boot, GError **err);

/* The two formats (hw/i386/bzimage.c, hw/i386/pvh.c). */
bool bzimage_probe(GBytes *kernel);
bool bzimage_load(const X86BootInfo *info, X86BootState *boot, GError **err);
bool pvh_probe(GBytes *kernel);
bool pvh_load(const X86BootInfo *info, X86BootState *boot, GError **err);

/* Shared by the loaders: fixed low-memory places of the boot structures. */
#define X86_BOOT_GDT 0x500
#define X86_BOOT_STACK_TOP 0x6ff0
#define X86_BOOT_INFO 0x7000       /* boot_params or hvm_start_info */
#define X86_BOOT_PML4 0x9000       /* then PDPT 0xa000 and four PDs 0xb000-0xefff */
#define X86_BOOT_CMDLINE 0x20000
#define X86_BOOT_CMDLINE_MAX 0x10000
#define X86_KERNEL_LOAD 0x100000

/* Write @len bytes at @gpa; an error names the range if it is not RAM. */
bool x86_boot_write(const X86BootInfo *info, uint64_t gpa, const void *data, size_t len, GError **err);
/* A GDT with a code segment at 0x10 (64-bit or 32-bit) and data at 0x18. */
bool x86_boot_write_gdt(const X86BootInfo *info, bool long_mode, X86BootState *boot, GError **err);
/* Identity-mapped page tables for the first 4 GiB (2 MiB pages). */
bool x86_boot_write_page_tables(const X86BootInfo *info, X86BootState *boot, GError **err);
/* Where an initrd of @size goes: the highest page-aligned place below @limit above @floor. */
bool x86_boot_place_initrd(const X86BootInfo *info, uint64_t floor, uint64_t limit, uint64_t *addr,
                           GError **err);
