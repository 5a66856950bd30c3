/* Polled output on the 16550 UART at COM1. */
#include "libguest.h"

#define COM1 0x3f8
#define UART_THR 0          /* transmit holding register */
#define UART_DLL 0          /* divisor latch, low byte (DLAB = 1) */
#define UART_IER 1
#define UART_DLM 1          /* divisor latch, high byte (DLAB = 1) */
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LCR_DLAB 0x80
#define UART_LCR_8N1 0x03
#define UART_LSR_THRE 0x20

/* Bound on the wait for THRE, so a dead UART cannot hang the guest. */
#define THRE_POLLS 100000

void serial_init(void)
{
    outb(COM1 + UART_IER, 0);
    outb(COM1 + UART_LCR, UART_LCR_DLAB);
    outb(COM1 + UART_DLL, 1);               /* 115200 baud */
    outb(COM1 + UART_DLM, 0);
    outb(COM1 + UART_LCR, UART_LCR_8N1);
    outb(COM1 + UART_FCR, 0x07);            /* enable and clear FIFOs */
    outb(COM1 + UART_MCR, 0x03);            /* DTR, RTS */
}

void serial_putc(char c)
{
    for (int i = 0; i < THRE_POLLS; i++) {
        if (inb(COM1 + UART_LSR) & UART_LSR_THRE) {
            break;
        }
    }
    outb(COM1 + UART_THR, (uint8_t)c);
}
