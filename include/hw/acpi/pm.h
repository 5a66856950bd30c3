/*
 * The ACPI power-management registers of the x86 pc machine: PM1 event and
 * control blocks, the PM timer and GPE0. The guest powers off by writing the
 * S5 sleep type to PM1_CNT; the power button is GPE0 bit 0.
 *
 * Every entry point runs under the big lock; the device takes no lock.
 */
#pragma once
#include "hw/core/irq.h"
#include "hw/core/machine.h"
#include <glib.h>

/* Port addresses and sizes the FADT describes. */
#define ACPI_PM_EVT_PORT 0x600 /* PM1a_EVT_BLK: STS (16 bits), EN (16 bits) */
#define ACPI_PM_EVT_LEN 4
#define ACPI_PM_CNT_PORT 0x604 /* PM1a_CNT_BLK */
#define ACPI_PM_CNT_LEN 2
#define ACPI_PM_TMR_PORT 0x608 /* PM_TMR_BLK, 32-bit counter */
#define ACPI_PM_TMR_LEN 4
#define ACPI_PM_GPE0_PORT 0xafe0 /* GPE0_BLK: STS (16 bits), EN (16 bits) */
#define ACPI_PM_GPE0_LEN 4
#define ACPI_PM_SCI_IRQ 9
#define ACPI_PM_TIMER_HZ 3579545

/* The SLP_TYP the DSDT's _S5 object declares. */
#define ACPI_PM_SLP_TYP_S5 5
/* GPE0 bit that signals \_SB.PWRB (the DSDT's \_GPE._E00). */
#define ACPI_PM_GPE_PWRBTN 0

typedef struct AcpiPm AcpiPm;

/* Claims the four port blocks on @m->pio; @sci is driven level-high. */
AcpiPm *acpi_pm_new(Machine *m, IrqLine sci, GError **err);
void acpi_pm_free(AcpiPm *pm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AcpiPm, acpi_pm_free)

/* Machine reset: clears status, enables and sleep type, lowers the SCI. */
void acpi_pm_reset(AcpiPm *pm);
/* Latch the power-button GPE and raise the SCI if the guest enabled it. */
void acpi_pm_press_power_button(AcpiPm *pm);
