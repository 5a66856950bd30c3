/*
 * The 8042 keyboard controller at ports 0x60 (data) and 0x64 (status and
 * command), with no keyboard or mouse behind it: the controller's own
 * commands work (self-test, command byte, output port, reset pulse) and
 * bytes sent to either device come back as "no answer" (0xfe with the
 * timeout bit), so a guest driver gives up at once instead of waiting.
 */
#pragma once
#include "hw/core/irq.h"
#include "hw/core/machine.h"
#include <glib.h>
#include <stdint.h>

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64
#define I8042_KBD_ISA_IRQ 1
#define I8042_AUX_ISA_IRQ 12

typedef struct I8042 I8042;

I8042 *i8042_new(Machine *m, IrqLine kbd_irq, IrqLine aux_irq, GError **err);
void i8042_reset(I8042 *kbc);
void i8042_free(I8042 *kbc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(I8042, i8042_free)
