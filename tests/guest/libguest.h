/*
 * libguest: the runtime shared by the freestanding test guests.
 *
 * A guest defines guest_name and main(); the runtime brings up COM1,
 * prints "@guest: start <name>", calls main() and turns its result into
 * "@guest: pass" or "@guest: fail <reason>" before powering off through
 * ACPI.  Only gcc's freestanding headers are used.
 */
#ifndef LIBGUEST_H
#define LIBGUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HVM_START_MAGIC 0x336ec578u

/* struct hvm_start_info of the Xen PVH boot ABI (version 1 layout). */
struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;      /* version >= 1 */
    uint32_t memmap_entries;    /* version >= 1 */
    uint32_t reserved;
};
_Static_assert(offsetof(struct hvm_start_info, rsdp_paddr) == 32, "start_info layout");
_Static_assert(sizeof(struct hvm_start_info) == 56, "start_info layout");

/* Defined by each guest. */
extern const char guest_name[];
/* Returns 0 for pass; any other value fails with "main returned N". */
int main(const struct hvm_start_info *si);

/* Port I/O. */
static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

struct cpuid_regs {
    uint32_t eax, ebx, ecx, edx;
};

static inline struct cpuid_regs cpuid(uint32_t leaf, uint32_t subleaf)
{
    struct cpuid_regs r;
    __asm__ volatile("cpuid"
                     : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
                     : "a"(leaf), "c"(subleaf));
    return r;
}

/*
 * A physical address as a pointer: paging is off.  The empty asm hides the
 * constant from gcc, which otherwise takes low addresses for null-pointer
 * arithmetic (-Warray-bounds).
 */
static inline const void *phys(uint32_t addr)
{
    __asm__("" : "+r"(addr));
    return (const void *)(uintptr_t)addr;
}

/* serial.c: COM1 at 115200 8N1, polled. */
void serial_init(void);
void serial_putc(char c);

/* printf.c: %s %d %u %x %X %p %c %%, with optional '0' flag and width. */
int vprintf(const char *fmt, va_list ap);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One marker line: "@guest: " + text + newline. */
void guest_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* guest.c */
void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
__attribute__((noreturn)) void guest_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void guest_poweroff(void);
__attribute__((noreturn)) void guest_halt(void);

/* acpi.c */
struct acpi_info {
    uint32_t rsdp;              /* physical address of the RSDP */
    const char *rsdp_source;    /* "start_info" or "scan" */
    uint8_t rsdp_revision;
    uint32_t fadt;
    uint32_t dsdt;
    bool mmio;                  /* the register below is in memory space */
    uint32_t pm1a_cnt;          /* PM1a_CNT, or 0 on hardware-reduced ACPI */
    uint32_t sleep_control;     /* hardware-reduced ACPI's sleep control */
    uint16_t pm_tmr;            /* I/O port of the PM timer, or 0 */
    uint8_t slp_typ;            /* SLP_TYPa of \_S5 */
};

/*
 * Find the RSDP (start_info first, then the BIOS areas), walk the XSDT or
 * RSDT to the FADT and the DSDT, and read PM1a_CNT and \_S5.  Returns NULL
 * on success, or what went wrong.  Later calls return the first result.
 */
const char *acpi_probe(const struct hvm_start_info *si, struct acpi_info *ai);
/*
 * Enter S5.  Returns only if the machine is still running about two seconds
 * later (timed with the PM timer when there is one): a VMM may finish the
 * poweroff a little after the write that requested it.
 */
void acpi_poweroff(const struct acpi_info *ai);

#endif
