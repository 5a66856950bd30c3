/*
 * PVH boot of an ELF image: PT_LOAD segments at their physical addresses,
 * entered in flat 32-bit protected mode at the address of the
 * XEN_ELFNOTE_PHYS32_ENTRY note, with %ebx pointing at a hvm_start_info.
 */
#include "hw/i386/x86-boot.h"
#include "util/error.h"
#include <elf.h>
#include <string.h>
#include <xen/xen.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/elfnote.h>

#define START_INFO X86_BOOT_INFO
#define MODLIST (X86_BOOT_INFO + 0x100)
#define MEMMAP (X86_BOOT_INFO + 0x200)

/* The parts of an ELF header PVH needs, from either class. */
typedef struct {
    bool is64;
    uint64_t phoff;
    unsigned phnum, phentsize;
} ElfInfo;

typedef struct {
    uint32_t type;
    uint64_t offset, paddr, filesz, memsz;
} Segment;

bool pvh_probe(GBytes *kernel)
{
    gsize len;
    const uint8_t *k = g_bytes_get_data(kernel, &len);
    return len >= sizeof(Elf32_Ehdr) && memcmp(k, ELFMAG, SELFMAG) == 0;
}

static bool bad(GError **err, const char *path, const char *why)
{
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "kernel '%s': %s", path, why);
    return false;
}

static bool elf_header(const uint8_t *k, gsize len, ElfInfo *e, const char *path, GError **err)
{
    if (k[EI_DATA] != ELFDATA2LSB) {
        return bad(err, path, "ELF image is not little-endian");
    }
    if (k[EI_CLASS] == ELFCLASS64 && len >= sizeof(Elf64_Ehdr)) {
        const Elf64_Ehdr *h = (const void *)k;
        *e = (ElfInfo){ true, h->e_phoff, h->e_phnum, h->e_phentsize };
    } else if (k[EI_CLASS] == ELFCLASS32) {
        const Elf32_Ehdr *h = (const void *)k;
        *e = (ElfInfo){ false, h->e_phoff, h->e_phnum, h->e_phentsize };
    } else {
        return bad(err, path, "ELF header is truncated or of an unknown class");
    }
    size_t want = e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    if (e->phentsize != want || e->phoff > len || (uint64_t)e->phnum * want > len - e->phoff) {
        return bad(err, path, "ELF program headers are corrupt");
    }
    return true;
}

static Segment segment(const uint8_t *k, const ElfInfo *e, unsigned i)
{
    if (e->is64) {
        Elf64_Phdr p;
        memcpy(&p, k + e->phoff + i * sizeof(p), sizeof(p));
        return (Segment){ p.p_type, p.p_offset, p.p_paddr, p.p_filesz, p.p_memsz };
    }
    Elf32_Phdr p;
    memcpy(&p, k + e->phoff + i * sizeof(p), sizeof(p));
    return (Segment){ p.p_type, p.p_offset, p.p_paddr, p.p_filesz, p.p_memsz };
}

/* Find the PHYS32_ENTRY value in a PT_NOTE segment, if there. */
static bool find_entry(const uint8_t *note, uint64_t size, uint64_t *entry)
{
    uint64_t off = 0;
    while (off + 12 <= size) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, note + off, 4);
        memcpy(&descsz, note + off + 4, 4);
        memcpy(&type, note + off + 8, 4);
        uint64_t name = off + 12, desc = name + ((namesz + 3) & ~3u);
        uint64_t next = desc + ((descsz + 3) & ~3u);
        if (next > size || next <= off) {
            return false;
        }
        if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && memcmp(note + name, "Xen", 4) == 0 &&
            (descsz == 4 || descsz == 8)) {
            uint64_t v = 0;
            memcpy(&v, note + desc, descsz);
            *entry = v;
            return true;
        }
        off = next;
    }
    return false;
}

bool pvh_load(const X86BootInfo *info, X86BootState *boot, GError **err)
{
    gsize len;
    const uint8_t *k = g_bytes_get_data(info->kernel, &len);
    const char *path = info->kernel_path;
    ElfInfo e;
    uint64_t entry = 0, image_end = 0;
    bool have_entry = false;

    if (!elf_header(k, len, &e, path, err)) {
        return false;
    }
    for (unsigned i = 0; i < e.phnum; i++) {
        Segment s = segment(k, &e, i);
        if ((s.type == PT_LOAD || s.type == PT_NOTE) && (s.offset > len || s.filesz > len - s.offset)) {
            return bad(err, path, "an ELF segment lies outside the file");
        }
        if (s.type == PT_NOTE && !have_entry) {
            have_entry = find_entry(k + s.offset, s.filesz, &entry);
        } else if (s.type == PT_LOAD && s.memsz) {
            if (s.filesz > s.memsz) {
                return bad(err, path, "an ELF segment's file size exceeds its memory size");
            }
            g_autofree uint8_t *buf = g_malloc0(s.memsz);
            memcpy(buf, k + s.offset, s.filesz);
            if (!x86_boot_write(info, s.paddr, buf, s.memsz, err)) {
                return false;
            }
            image_end = MAX(image_end, s.paddr + s.memsz);
        }
    }
    if (!have_entry) {
        return bad(err, path, "ELF image has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
    }

    struct hvm_start_info si = {
        .magic = XEN_HVM_START_MAGIC_VALUE,
        .version = 1,
        .rsdp_paddr = info->rsdp_gpa,
        .cmdline_paddr = X86_BOOT_CMDLINE,
        .memmap_paddr = MEMMAP,
        .memmap_entries = info->e820_entries,
    };
    size_t cmdline_len = strlen(info->cmdline) + 1;
    if (cmdline_len > X86_BOOT_CMDLINE_MAX) {
        return bad(err, path, "-append: the kernel command line is too long");
    }
    if (!x86_boot_write(info, X86_BOOT_CMDLINE, info->cmdline, cmdline_len, err)) {
        return false;
    }
    if (info->initrd) {
        uint64_t addr;
        if (!x86_boot_place_initrd(info, MAX(image_end, (uint64_t)X86_KERNEL_LOAD), info->ram_below_4g, &addr,
                                   err) ||
            !x86_boot_write(info, addr, g_bytes_get_data(info->initrd, NULL), g_bytes_get_size(info->initrd), err)) {
            return false;
        }
        struct hvm_modlist_entry mod = { .paddr = addr, .size = g_bytes_get_size(info->initrd) };
        if (!x86_boot_write(info, MODLIST, &mod, sizeof(mod), err)) {
            return false;
        }
        si.nr_modules = 1;
        si.modlist_paddr = MODLIST;
    }
    g_autofree struct hvm_memmap_table_entry *map = g_new0(struct hvm_memmap_table_entry, info->e820_entries);
    for (unsigned i = 0; i < info->e820_entries; i++) {
        map[i] = (struct hvm_memmap_table_entry){ info->e820[i].addr, info->e820[i].size, info->e820[i].type, 0 };
    }
    if (!x86_boot_write(info, MEMMAP, map, info->e820_entries * sizeof(*map), err) ||
        !x86_boot_write(info, START_INFO, &si, sizeof(si), err) || !x86_boot_write_gdt(info, false, boot, err)) {
        return false;
    }
    boot->mode = X86_BOOT_FLAT32;
    boot->rip = entry;
    boot->rbx = START_INFO;
    boot->rsp = X86_BOOT_STACK_TOP;
    return true;
}
