/* The guest runtime: start, the pass/fail markers, poweroff. */
#include "libguest.h"

static const struct hvm_start_info *start_info;

void *memset(void *s, int c, size_t n)
{
    uint8_t *p = s;
    while (n--) {
        *p++ = (uint8_t)c;
    }
    return s;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (; n; n--, x++, y++) {
        if (*x != *y) {
            return *x - *y;
        }
    }
    return 0;
}

void guest_halt(void)
{
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}

void guest_poweroff(void)
{
    struct acpi_info ai;
    const char *err = acpi_probe(start_info, &ai);

    if (err) {
        guest_log("acpi: %s", err);
    } else {
        acpi_poweroff(&ai);
    }
    guest_log("poweroff failed");
    guest_halt();
}

void guest_fail(const char *fmt, ...)
{
    va_list ap;
    printf("@guest: fail ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    guest_poweroff();
}

/* Called by _start with the %ebx of the PVH entry. */
__attribute__((noreturn)) void guest_entry(const struct hvm_start_info *si);
void guest_entry(const struct hvm_start_info *si)
{
    serial_init();
    /* Firmware may have left a partial line on the port: start afresh. */
    printf("\n");
    guest_log("start %s", guest_name);
    if (!si || si->magic != HVM_START_MAGIC) {
        guest_fail("bad start_info at %p (magic 0x%08x)", (const void *)si,
                   si ? si->magic : 0);
    }
    start_info = si;

    int rc = main(si);
    if (rc) {
        guest_fail("main returned %d", rc);
    }
    guest_log("pass");
    guest_poweroff();
}
