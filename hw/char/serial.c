#define G_LOG_DOMAIN "serial"
#include "hw/char/serial.h"
#include "migration/vmstate.h"
#include "util/error.h"
#include <string.h>

/* Register offsets; DLAB (LCR bit 7) turns 0 and 1 into the divisor latch. */
enum { REG_RBR_THR = 0, REG_IER, REG_IIR_FCR, REG_LCR, REG_MCR, REG_LSR, REG_MSR, REG_SCR };

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI 0x04  /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */

#define IIR_NONE 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_CTI 0x0c
#define IIR_FIFO_BITS 0xc0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define FCR_KEEP 0xc9 /* enable, DMA mode, trigger level: the bits that stick */

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_ERRORS 0x1e /* OE, PE, FE, BI: cleared by reading LSR */
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_DELTAS 0x0f
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

#define FIFO_SIZE 16

struct Serial {
    Machine *m;
    uint16_t base;
    IrqLine irq;
    Chardev *chr;

    uint16_t divisor;
    uint8_t ier, fcr, lcr, mcr, msr, scr;
    uint8_t lsr_errors;   /* latched LSR error bits */
    bool thre_pending;    /* THRE interrupt not yet acknowledged */
    uint8_t rx[FIFO_SIZE];
    unsigned rx_head, rx_count;
    /*
     * Bytes the guest wrote that the backend has not taken yet. THR (and the
     * FIFO) read as empty only once they are all out, so a guest that waits
     * for THRE waits for a slow or stopped terminal, as on real hardware,
     * instead of Vireo blocking a vCPU under the big lock.
     */
    uint8_t tx[FIFO_SIZE];
    unsigned tx_count;
    bool tx_waiting;      /* the chardev will call back when writable */
    uint64_t tx_dropped;
    uint8_t rbr;          /* last byte read, returned again when the FIFO is empty */
    uint64_t rx_dropped;
    bool irq_level;
};

static bool fifo_enabled(const Serial *s)
{
    return s->fcr & FCR_ENABLE;
}

/* Without FIFOs the 16550A behaves as a 16450: one holding register. */
static unsigned rx_capacity(const Serial *s)
{
    return fifo_enabled(s) ? FIFO_SIZE : 1;
}

static unsigned rx_trigger(const Serial *s)
{
    static const unsigned levels[4] = { 1, 4, 8, 14 };
    return levels[s->fcr >> 6];
}

static void rx_push(Serial *s, uint8_t byte)
{
    if (s->rx_count == rx_capacity(s)) {
        s->lsr_errors |= LSR_OE;
        if (s->rx_dropped++ == 0) {
            g_debug("0x%x: receive FIFO overrun, dropping input", s->base);
        }
        return;
    }
    s->rx[(s->rx_head + s->rx_count) % FIFO_SIZE] = byte;
    s->rx_count++;
}

static void rx_clear(Serial *s)
{
    s->rx_head = 0;
    s->rx_count = 0;
}

/*
 * The highest-priority pending, enabled interrupt as IIR bits 3:0. Input
 * arrives in whole bursts under the big lock, so once a burst has been
 * delivered the line is idle: a FIFO below its trigger level has timed out.
 */
static uint8_t pending_iir(const Serial *s)
{
    if ((s->ier & IER_ELSI) && s->lsr_errors) {
        return IIR_RLSI;
    }
    if ((s->ier & IER_ERBFI) && s->rx_count) {
        if (!fifo_enabled(s) || s->rx_count >= rx_trigger(s)) {
            return IIR_RDI;
        }
        return IIR_CTI;
    }
    if ((s->ier & IER_ETBEI) && s->thre_pending) {
        return IIR_THRI;
    }
    if ((s->ier & IER_EDSSI) && (s->msr & MSR_DELTAS)) {
        return IIR_MSI;
    }
    return IIR_NONE;
}

/*
 * On a PC the INTR pin reaches the ISA bus through a buffer enabled by OUT2;
 * loopback mode forces the OUT2 pin inactive, so it silences the IRQ too.
 */
static void update_irq(Serial *s)
{
    bool level = pending_iir(s) != IIR_NONE && (s->mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2;
    if (level != s->irq_level) {
        s->irq_level = level;
        irq_set(&s->irq, level);
    }
}

/* The modem inputs: a connected, ready peer; in loopback, our own outputs. */
static void update_msr(Serial *s)
{
    uint8_t in = MSR_CTS | MSR_DSR | MSR_DCD;
    uint8_t old = s->msr & 0xf0, changed;

    if (s->mcr & MCR_LOOP) {
        in = (s->mcr & MCR_RTS ? MSR_CTS : 0) | (s->mcr & MCR_DTR ? MSR_DSR : 0) |
             (s->mcr & MCR_OUT1 ? MSR_RI : 0) | (s->mcr & MCR_OUT2 ? MSR_DCD : 0);
    }
    changed = old ^ in;
    s->msr = in | (s->msr & MSR_DELTAS);
    s->msr |= (changed & MSR_CTS ? MSR_DCTS : 0) | (changed & MSR_DSR ? MSR_DDSR : 0) |
              (changed & MSR_DCD ? MSR_DDCD : 0);
    if ((old & MSR_RI) && !(in & MSR_RI)) { /* TERI fires on the trailing edge only */
        s->msr |= MSR_TERI;
    }
}

static unsigned tx_capacity(const Serial *s)
{
    return fifo_enabled(s) ? FIFO_SIZE : 1;
}

static void tx_writable(void *opaque);

/* Hand what the backend takes now to it; THR is empty again once all is out. */
static void tx_flush(Serial *s)
{
    size_t n = chardev_write_nonblocking(s->chr, s->tx, s->tx_count);
    memmove(s->tx, s->tx + n, s->tx_count - n);
    s->tx_count -= n;
    if (s->tx_count == 0) {
        if (n) {
            s->thre_pending = true; /* the transmitter just went empty */
        }
    } else if (!s->tx_waiting) {
        s->tx_waiting = true;
        chardev_notify_writable(s->chr, tx_writable, s);
    }
}

static void tx_writable(void *opaque)
{
    Serial *s = opaque;
    s->tx_waiting = false;
    tx_flush(s);
    update_irq(s);
}

/* The receiver may have room again: let the backend resume. */
static void rx_space_changed(Serial *s)
{
    chardev_accept_input(s->chr);
}

static uint64_t serial_read(void *opaque, uint64_t offset, unsigned size)
{
    Serial *s = opaque;
    uint8_t v = 0;

    switch (offset) {
    case REG_RBR_THR:
        if (s->lcr & LCR_DLAB) {
            return s->divisor & 0xff;
        }
        if (s->rx_count) {
            s->rbr = s->rx[s->rx_head];
            s->rx_head = (s->rx_head + 1) % FIFO_SIZE;
            s->rx_count--;
            rx_space_changed(s);
        }
        v = s->rbr;
        break;
    case REG_IER:
        return s->lcr & LCR_DLAB ? s->divisor >> 8 : s->ier;
    case REG_IIR_FCR:
        v = pending_iir(s);
        if (v == IIR_THRI) {
            s->thre_pending = false; /* reading IIR acknowledges THRE */
        }
        v |= fifo_enabled(s) ? IIR_FIFO_BITS : 0;
        break;
    case REG_LCR:
        return s->lcr;
    case REG_MCR:
        return s->mcr;
    case REG_LSR:
        v = s->lsr_errors | (s->tx_count ? 0 : LSR_THRE | LSR_TEMT) | (s->rx_count ? LSR_DR : 0);
        s->lsr_errors = 0;
        break;
    case REG_MSR:
        v = s->msr;
        s->msr &= ~MSR_DELTAS;
        break;
    case REG_SCR:
        return s->scr;
    }
    update_irq(s);
    return v;
}

static void serial_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    Serial *s = opaque;
    uint8_t v = value;

    switch (offset) {
    case REG_RBR_THR:
        if (s->lcr & LCR_DLAB) {
            s->divisor = (s->divisor & 0xff00) | v;
            return;
        }
        s->thre_pending = false; /* writing THR acknowledges THRE */
        if (s->mcr & MCR_LOOP) {
            rx_push(s, v);
            s->thre_pending = true; /* looped back at once: THR is empty again */
        } else {
            if (s->tx_count < tx_capacity(s)) {
                s->tx[s->tx_count++] = v;
            } else {
                s->tx_dropped++; /* the guest did not wait for THRE */
            }
            tx_flush(s);
        }
        break;
    case REG_IER:
        if (s->lcr & LCR_DLAB) {
            s->divisor = (s->divisor & 0x00ff) | (uint16_t)v << 8;
            return;
        }
        if (!(s->ier & IER_ETBEI) && (v & IER_ETBEI) && s->tx_count == 0) {
            s->thre_pending = true; /* enabling THRE with THR empty raises it */
        }
        s->ier = v & 0x0f;
        break;
    case REG_IIR_FCR:
        if ((v ^ s->fcr) & FCR_ENABLE || (v & FCR_CLEAR_RX)) {
            rx_clear(s);
        }
        if ((v ^ s->fcr) & FCR_ENABLE || (v & FCR_CLEAR_TX)) {
            s->tx_count = 0;
        }
        s->fcr = v & FCR_ENABLE ? v & FCR_KEEP : 0;
        rx_space_changed(s);
        break;
    case REG_LCR:
        s->lcr = v;
        return;
    case REG_MCR:
        s->mcr = v & 0x1f;
        update_msr(s);
        rx_space_changed(s);
        break;
    case REG_LSR:
    case REG_MSR:
        return; /* factory test writes: ignored */
    case REG_SCR:
        s->scr = v;
        return;
    }
    update_irq(s);
}

static const IoRegionOps serial_ops = {
    .read = serial_read,
    .write = serial_write,
    .min_size = 1,
    .max_size = 1,
};

static size_t serial_can_receive(void *opaque)
{
    Serial *s = opaque;
    /* In loopback the receiver is cut off from the line: keep input waiting. */
    return s->mcr & MCR_LOOP ? 0 : rx_capacity(s) - s->rx_count;
}

static void serial_receive(void *opaque, const uint8_t *buf, size_t len)
{
    Serial *s = opaque;

    if (s->mcr & MCR_LOOP) {
        return;
    }
    for (size_t i = 0; i < len; i++) {
        rx_push(s, buf[i]);
    }
    update_irq(s);
}

/* ---- migration ---- */

void serial_reset(Serial *s);

static bool serial_post_load(void *opaque, int version, GError **err)
{
    Serial *s = opaque;
    if (s->rx_head >= FIFO_SIZE || s->rx_count > FIFO_SIZE || s->tx_count > FIFO_SIZE) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "device state 'serial', field %s: FIFO indices out of range (rx %u+%u, tx %u)",
                    s->tx_count > FIFO_SIZE ? "tx_count" : s->rx_count > FIFO_SIZE ? "rx_count" : "rx_head",
                    s->rx_head, s->rx_count, s->tx_count);
        serial_reset(s); /* nothing half-loaded stays */
        return false;
    }
    s->ier &= 0x0f;
    s->mcr &= 0x1f;
    /* The destination's line starts low: drive it to what the registers say. */
    s->irq_level = !(pending_iir(s) != IIR_NONE && (s->mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2);
    update_irq(s);
    if (s->tx_count && !s->tx_waiting) {
        tx_flush(s); /* what the source's terminal had not taken yet */
    }
    rx_space_changed(s);
    return true;
}

static const VMStateField serial_fields[] = {
    VMSTATE_UINT16(Serial, divisor),
    VMSTATE_UINT8(Serial, ier),
    VMSTATE_UINT8(Serial, fcr),
    VMSTATE_UINT8(Serial, lcr),
    VMSTATE_UINT8(Serial, mcr),
    VMSTATE_UINT8(Serial, msr),
    VMSTATE_UINT8(Serial, scr),
    VMSTATE_UINT8(Serial, lsr_errors),
    VMSTATE_BOOL(Serial, thre_pending),
    VMSTATE_UINT8_ARRAY(Serial, rx),
    VMSTATE_UINT32(Serial, rx_head),
    VMSTATE_UINT32(Serial, rx_count),
    VMSTATE_UINT8_ARRAY(Serial, tx),
    VMSTATE_UINT32(Serial, tx_count),
    VMSTATE_UINT8(Serial, rbr),
    VMSTATE_END,
};

static const VMStateDescription serial_vmsd = {
    .name = "serial",
    .version = 1,
    .minimum_version = 1,
    .fields = serial_fields,
    .post_load = serial_post_load,
};

/* COM1..COM4 are serial instances 0..3, as QEMU numbers them. */
static uint32_t serial_instance(uint16_t base)
{
    static const uint16_t com[] = { 0x3f8, 0x2f8, 0x3e8, 0x2e8 };
    for (uint32_t i = 0; i < G_N_ELEMENTS(com); i++) {
        if (com[i] == base) {
            return i;
        }
    }
    return base;
}

void serial_reset(Serial *s)
{
    s->divisor = 12; /* 9600 baud, what firmware would leave */
    s->ier = 0;
    s->fcr = 0;
    s->lcr = 0;
    s->mcr = 0;
    s->scr = 0;
    s->lsr_errors = 0;
    s->thre_pending = false;
    s->tx_count = 0;
    s->rbr = 0;
    rx_clear(s);
    s->msr = 0;
    update_msr(s);
    s->msr &= ~MSR_DELTAS;
    s->irq_level = false;
    irq_set(&s->irq, false);
    rx_space_changed(s);
}

Serial *serial_new(Machine *m, uint16_t io_base, IrqLine irq, Chardev *chr, GError **err)
{
    Serial *s = g_new0(Serial, 1);
    g_autofree char *name = g_strdup_printf("serial@0x%x", io_base);

    s->m = m;
    s->base = io_base;
    s->irq = irq;
    s->chr = chr;
    if (!io_map_add(m->pio, io_base, SERIAL_NPORTS, &serial_ops, s, name, err)) {
        g_free(s);
        return NULL;
    }
    serial_reset(s);
    if (chr) {
        chardev_set_input_full(chr, serial_receive, serial_can_receive, s);
    }
    vmstate_register(m, "serial", serial_instance(io_base), &serial_vmsd, s);
    return s;
}

void serial_free(Serial *s)
{
    if (!s) {
        return;
    }
    vmstate_unregister(s->m, s);
    if (s->chr) {
        chardev_set_input(s->chr, NULL, NULL);
        if (s->tx_waiting) {
            chardev_notify_writable(s->chr, NULL, NULL);
        }
    }
    io_map_remove(s->m->pio, s->base);
    g_free(s);
}

uint64_t serial_rx_dropped(const Serial *s)
{
    return s->rx_dropped;
}
