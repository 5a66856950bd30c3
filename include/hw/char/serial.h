/*
 * A 16550A UART on port I/O, as the PC's COM ports. Transmission is
 * instantaneous (THR straight to the chardev); received bytes wait in the
 * 16-byte FIFO and the chardev is held back while it is full.
 */
#pragma once
#include "chardev/chardev.h"
#include "hw/core/irq.h"
#include "hw/core/machine.h"
#include <glib.h>
#include <stdint.h>

/* The PC convention; the machine decides. */
#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ 4
#define SERIAL_COM2_BASE 0x2f8
#define SERIAL_COM2_IRQ 3
#define SERIAL_NPORTS 8

typedef struct Serial Serial;

/*
 * Claim ports [@io_base, @io_base + 8) on m->pio and take input from @chr
 * (may be NULL: output is discarded). @chr stays the caller's; free the
 * Serial before it. Fails if the ports are taken.
 */
Serial *serial_new(Machine *m, uint16_t io_base, IrqLine irq, Chardev *chr, GError **err);
/* Power-on state (MR pin): registers cleared, FIFO emptied, IRQ lowered. */
void serial_reset(Serial *s);
void serial_free(Serial *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Serial, serial_free)

/* Received bytes lost because the FIFO was full (each also set LSR.OE). */
uint64_t serial_rx_dropped(const Serial *s);
