/*
 * reset: the guest resets the machine through the ACPI reset register
 * (port 0xcf9, value 6, as the FADT says) and boots again. RAM is kept
 * across a reset, so a word outside the image tells the two boots apart.
 */
#include "libguest.h"

const char guest_name[] = "reset";

#define MARK_ADDR 0x300000u /* above the image and its stack, inside 16 MiB */
#define MARK 0x52534554u    /* "TESR" */
#define RESET_WAIT_LOOPS 100000000u

int main(const struct hvm_start_info *si)
{
    volatile uint32_t *mark = (volatile uint32_t *)(uintptr_t)phys(MARK_ADDR);

    (void)si;
    if (*mark != MARK) {
        *mark = MARK;
        guest_log("first boot: resetting through port 0xcf9");
        outb(0xcf9, 0x06);
        /* The reset is asynchronous: give the VMM time, but not forever. */
        for (volatile uint32_t i = 0; i < RESET_WAIT_LOOPS; i++) {
        }
        guest_log("reset did not happen");
        return 1;
    }
    *mark = 0;
    guest_log("second boot after the reset");
    return 0;
}
