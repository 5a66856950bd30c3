/*
 * idle: says it is up, then halts with interrupts off forever, so a test
 * can drive the VM from outside (QMP) while it costs no CPU time.
 */
#include "libguest.h"

const char guest_name[] = "idle";

int main(const struct hvm_start_info *si __attribute__((unused)))
{
    guest_log("idling");
    guest_halt();
}
