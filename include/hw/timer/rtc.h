/*
 * MC146818 real-time clock and CMOS RAM at ports 0x70 (index; bit 7 masks
 * NMI) and 0x71 (data). The time is the host's UTC clock plus an offset the
 * guest sets; interrupts (update-ended, alarm, periodic) need the GLib main
 * loop to run, while register C flags are also computed when it is read.
 */
#pragma once
#include "hw/core/irq.h"
#include "hw/core/machine.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define RTC_IO_BASE 0x70
#define RTC_ISA_IRQ 8
#define RTC_CMOS_SIZE 128
#define RTC_REG_CENTURY 0x32 /* kept in step with the clock: point FADT.century here */

typedef struct Rtc Rtc;

Rtc *rtc_new(Machine *m, IrqLine irq, GError **err);
/* The RESET pin: interrupt enables and flags cleared; time and NVRAM kept. */
void rtc_reset(Rtc *rtc);
void rtc_free(Rtc *rtc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Rtc, rtc_free)

/* NVRAM bytes 0x0e..0x7f except the century byte (e.g. memory sizes at 0x34/0x35, 0x5b..0x5d). */
void rtc_cmos_set(Rtc *rtc, uint8_t index, uint8_t value);
uint8_t rtc_cmos_get(const Rtc *rtc, uint8_t index);
/* Whether the guest last wrote port 0x70 with bit 7 set. */
bool rtc_nmi_masked(const Rtc *rtc);
