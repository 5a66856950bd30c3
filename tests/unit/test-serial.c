/* The 16550A driven through port I/O as a guest driver would. */
#include "chardev/chardev.h"
#include "hw/char/serial.h"
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define BASE 0x3f8
#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

typedef struct {
    Machine m;
    char *dir, *path;
    Chardev *chr;
    Serial *s;
    bool level;
    unsigned edges;
} Fixture;

static void set_level(void *opaque, unsigned line, bool level)
{
    Fixture *f = opaque;
    g_assert_cmpuint(line, ==, 4);
    if (level && !f->level) {
        f->edges++;
    }
    f->level = level;
}

static void outb(Fixture *f, unsigned reg, uint8_t v)
{
    g_assert_true(io_map_dispatch(f->m.pio, BASE + reg, &v, 1, true));
}

static uint8_t inb(Fixture *f, unsigned reg)
{
    uint8_t v;
    g_assert_true(io_map_dispatch(f->m.pio, BASE + reg, &v, 1, false));
    return v;
}

static void rx(Fixture *f, const char *s)
{
    chardev_inject_input(f->chr, (const uint8_t *)s, strlen(s));
}

static void setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *spec = NULL;

    f->m.pio = io_map_new("pio");
    f->dir = g_dir_make_tmp("vireo-serial-XXXXXX", &err);
    g_assert_no_error(err);
    f->path = g_build_filename(f->dir, "out", NULL);
    spec = g_strdup_printf("file:%s", f->path);
    f->chr = chardev_new(spec, &err);
    g_assert_no_error(err);
    f->s = serial_new(&f->m, BASE, (IrqLine){ set_level, f, 4 }, f->chr, &err);
    g_assert_no_error(err);
}

static void teardown(Fixture *f, gconstpointer data)
{
    serial_free(f->s);
    chardev_free(f->chr);
    io_map_free(f->m.pio);
    g_unlink(f->path);
    g_rmdir(f->dir);
    g_free(f->path);
    g_free(f->dir);
}

static void test_reset_state(Fixture *f, gconstpointer data)
{
    g_assert_cmphex(inb(f, IER), ==, 0);
    g_assert_cmphex(inb(f, IIR), ==, 0x01);
    g_assert_cmphex(inb(f, LCR), ==, 0);
    g_assert_cmphex(inb(f, MCR), ==, 0);
    g_assert_cmphex(inb(f, LSR), ==, 0x60);
    g_assert_cmphex(inb(f, MSR), ==, 0xb0);
    g_assert_false(f->level);
}

static void test_divisor_and_lcr(Fixture *f, gconstpointer data)
{
    outb(f, IER, 0x05);
    outb(f, LCR, 0x83); /* DLAB, 8N1 */
    outb(f, DLL, 0x01);
    outb(f, DLM, 0x02);
    g_assert_cmphex(inb(f, DLL), ==, 0x01);
    g_assert_cmphex(inb(f, DLM), ==, 0x02);
    g_assert_cmphex(inb(f, LCR), ==, 0x83);
    outb(f, LCR, 0x03);
    g_assert_cmphex(inb(f, IER), ==, 0x05); /* IER untouched by the divisor writes */
    outb(f, LCR, 0x80);
    g_assert_cmphex(inb(f, DLL), ==, 0x01);
    g_assert_cmphex(inb(f, DLM), ==, 0x02);
    outb(f, LCR, 0x1b);
    g_assert_cmphex(inb(f, LCR), ==, 0x1b);
    outb(f, SCR, 0xa5);
    g_assert_cmphex(inb(f, SCR), ==, 0xa5);
    /* Only 1-byte accesses reach the device; a word write is split per port. */
    uint8_t w[2] = { 0x00, 0x0f };
    g_assert_true(io_map_dispatch(f->m.pio, BASE + LCR - 1, w, 2, true));
    g_assert_cmphex(inb(f, LCR), ==, 0x0f);
}

static void test_thr_output(Fixture *f, gconstpointer data)
{
    g_autofree char *contents = NULL;
    gsize len;

    for (const char *p = "hello, guest\n"; *p; p++) {
        g_assert_cmphex(inb(f, LSR) & 0x60, ==, 0x60);
        outb(f, THR, *p);
    }
    g_assert_true(g_file_get_contents(f->path, &contents, &len, NULL));
    g_assert_cmpstr(contents, ==, "hello, guest\n");
}

static void test_thre_interrupt(Fixture *f, gconstpointer data)
{
    outb(f, MCR, 0x0b); /* DTR, RTS, OUT2 */
    g_assert_false(f->level);

    /* Enabling ETBEI with THR empty raises THRE at once. */
    outb(f, IER, 0x02);
    g_assert_true(f->level);
    g_assert_cmphex(inb(f, IIR), ==, 0x02);
    /* Reading IIR while THRE was the reported source acknowledged it. */
    g_assert_false(f->level);
    g_assert_cmphex(inb(f, IIR), ==, 0x01);

    /* Rewriting IER without a 0->1 change does not re-raise. */
    outb(f, IER, 0x02);
    g_assert_false(f->level);

    /* Each THR write empties at once and raises THRE again. */
    outb(f, THR, 'a');
    g_assert_true(f->level);
    outb(f, THR, 'b'); /* writing THR clears and, once sent, re-raises */
    g_assert_true(f->level);
    g_assert_cmphex(inb(f, IIR), ==, 0x02);
    g_assert_false(f->level);

    /* Toggling ETBEI off and on raises it again (Linux's THRE bug probe). */
    outb(f, IER, 0x00);
    outb(f, IER, 0x02);
    g_assert_true(f->level);

    /* Disabling ETBEI masks a pending THRE. */
    outb(f, IER, 0x00);
    g_assert_false(f->level);
    g_assert_cmphex(inb(f, IIR), ==, 0x01);
}

static void test_rx_fifo_triggers(Fixture *f, gconstpointer data)
{
    static const struct {
        uint8_t fcr;
        unsigned trigger;
    } cases[] = { { 0x01, 1 }, { 0x41, 4 }, { 0x81, 8 }, { 0xc1, 14 } };

    outb(f, MCR, 0x08);
    outb(f, IER, 0x01);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        outb(f, FCR, cases[i].fcr | 0x06); /* and clear both FIFOs */
        g_assert_cmphex(inb(f, IIR), ==, 0xc1);
        for (unsigned n = 1; n <= 16; n++) {
            rx(f, "x");
            uint8_t iir = inb(f, IIR);
            /* Below the trigger a burst has ended: the character timeout reports it. */
            g_assert_cmphex(iir, ==, n >= cases[i].trigger ? 0xc4 : 0xcc);
            g_assert_true(f->level);
            g_assert_cmphex(inb(f, LSR), ==, 0x61);
        }
        /* The 17th byte overflows: dropped, counted, OE set. */
        uint64_t dropped = serial_rx_dropped(f->s);
        rx(f, "y");
        g_assert_cmpuint(serial_rx_dropped(f->s), ==, dropped + 1);
        g_assert_cmphex(inb(f, LSR), ==, 0x63);
        g_assert_cmphex(inb(f, LSR), ==, 0x61); /* OE cleared by the read */
        for (unsigned n = 0; n < 16; n++) {
            g_assert_cmphex(inb(f, RBR), ==, 'x');
        }
        g_assert_cmphex(inb(f, LSR), ==, 0x60);
        g_assert_cmphex(inb(f, IIR), ==, 0xc1);
        g_assert_false(f->level);
    }

    /* FCR clear empties the FIFO. */
    rx(f, "abc");
    outb(f, FCR, 0xc3);
    g_assert_cmphex(inb(f, LSR), ==, 0x60);

    /* Order is preserved. */
    outb(f, FCR, 0x01);
    rx(f, "xyz");
    g_assert_cmphex(inb(f, RBR), ==, 'x');
    g_assert_cmphex(inb(f, RBR), ==, 'y');
    g_assert_cmphex(inb(f, RBR), ==, 'z');

    /* Without FIFOs there is a single holding register. */
    outb(f, FCR, 0x00);
    rx(f, "pq");
    g_assert_cmphex(inb(f, IIR), ==, 0x04);
    g_assert_cmphex(inb(f, LSR), ==, 0x63);
    g_assert_cmphex(inb(f, RBR), ==, 'p');
    g_assert_cmphex(inb(f, LSR), ==, 0x60);
}

static void test_iir_priority(Fixture *f, gconstpointer data)
{
    outb(f, MCR, 0x08);
    outb(f, FCR, 0x01);
    outb(f, IER, 0x0f);
    /* Enabling gave THRE; OUT2 going up gave no modem delta (inputs unchanged). */
    g_assert_cmphex(inb(f, IIR), ==, 0xc2);
    g_assert_cmphex(inb(f, IIR), ==, 0xc1);

    /* Fill the FIFO past capacity: line status (overrun) beats data. */
    for (int i = 0; i < 17; i++) {
        rx(f, "d");
    }
    outb(f, THR, '!'); /* THRE pending too */
    g_assert_cmphex(inb(f, IIR), ==, 0xc6);
    g_assert_cmphex(inb(f, IIR), ==, 0xc6); /* reading IIR does not clear line status */
    inb(f, LSR);
    g_assert_cmphex(inb(f, IIR), ==, 0xc4);
    for (int i = 0; i < 16; i++) {
        inb(f, RBR);
    }
    g_assert_cmphex(inb(f, IIR), ==, 0xc2);
    g_assert_cmphex(inb(f, IIR), ==, 0xc1);
    g_assert_false(f->level);
}

static void test_loopback(Fixture *f, gconstpointer data)
{
    g_autofree char *contents = NULL;
    gsize len;

    /* Linux's 8250 probe: loopback with RTS and OUT2 must show CTS and DCD. */
    outb(f, MCR, 0x1a);
    g_assert_cmphex(inb(f, MSR) & 0xf0, ==, 0x90);
    outb(f, MCR, 0x1f);
    g_assert_cmphex(inb(f, MSR) & 0xf0, ==, 0xf0);
    outb(f, MCR, 0x10);
    /* RI fell: TERI; CTS/DSR/DCD changed: deltas. */
    g_assert_cmphex(inb(f, MSR), ==, 0x0f);
    g_assert_cmphex(inb(f, MSR), ==, 0x00);

    /* THR comes back through RBR and never reaches the chardev. */
    outb(f, FCR, 0x01);
    outb(f, THR, 'L');
    g_assert_cmphex(inb(f, LSR), ==, 0x61);
    g_assert_cmphex(inb(f, RBR), ==, 'L');
    /* Input from the line is cut off in loopback. */
    rx(f, "z");
    g_assert_cmphex(inb(f, LSR), ==, 0x60);

    outb(f, MCR, 0x0b);
    g_assert_cmphex(inb(f, MSR), ==, 0xbb); /* back to a connected peer, with deltas */
    g_assert_true(g_file_get_contents(f->path, &contents, &len, NULL));
    g_assert_cmpuint(len, ==, 0);
}

static void test_out2_gates_irq(Fixture *f, gconstpointer data)
{
    outb(f, IER, 0x01);
    rx(f, "a");
    g_assert_cmphex(inb(f, IIR), ==, 0x04);
    g_assert_false(f->level); /* OUT2 low: pending but not on the bus */
    outb(f, MCR, 0x08);
    g_assert_true(f->level);
    outb(f, MCR, 0x18); /* loopback forces the OUT2 pin inactive */
    g_assert_false(f->level);
    outb(f, MCR, 0x08);
    g_assert_true(f->level);
    outb(f, MCR, 0x00);
    g_assert_false(f->level);
    outb(f, MCR, 0x08);
    inb(f, RBR);
    g_assert_false(f->level);
    g_assert_cmpuint(f->edges, ==, 3);
}

static void test_modem_status_interrupt(Fixture *f, gconstpointer data)
{
    outb(f, IER, 0x08);
    outb(f, MCR, 0x08);
    g_assert_false(f->level);
    outb(f, MCR, 0x19); /* loopback with DTR and OUT2: CTS falls (IRQ gated meanwhile) */
    outb(f, MCR, 0x08);
    /* OUT2 pin is back on; the deltas from loopback are pending. */
    g_assert_true(f->level);
    g_assert_cmphex(inb(f, IIR), ==, 0x00);
    inb(f, MSR);
    g_assert_cmphex(inb(f, IIR), ==, 0x01);
    g_assert_false(f->level);
}

static void test_reset(Fixture *f, gconstpointer data)
{
    outb(f, MCR, 0x08);
    outb(f, IER, 0x03);
    rx(f, "q");
    g_assert_true(f->level);
    serial_reset(f->s);
    g_assert_false(f->level);
    g_assert_cmphex(inb(f, LSR), ==, 0x60);
    g_assert_cmphex(inb(f, IER), ==, 0);
    g_assert_cmphex(inb(f, IIR), ==, 0x01);
}

static void test_ports_taken(void)
{
    Machine m = { .pio = io_map_new("pio") };
    g_autoptr(GError) err = NULL;
    Serial *a = serial_new(&m, BASE, (IrqLine){ 0 }, NULL, &err);
    g_assert_no_error(err);
    Serial *b = serial_new(&m, BASE + 4, (IrqLine){ 0 }, NULL, &err);
    g_assert_null(b);
    g_assert_nonnull(err);
    /* NULL chardev: output discarded without fuss. */
    uint8_t v = 'x';
    io_map_dispatch(m.pio, BASE, &v, 1, true);
    serial_free(a);
    io_map_free(m.pio);
}

/*
 * A backend that stops taking output (a terminal nobody reads: here a full
 * pipe) holds the bytes in the UART: THR stays busy, Vireo never blocks,
 * and once the reader drains the pipe the main loop sends the rest and THRE
 * comes back with its interrupt.
 */
static void test_stalled_output(void)
{
    Machine m = { .pio = io_map_new("pio") };
    Fixture f = { .m = m };
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("vireo-serial-XXXXXX", &err);
    g_autofree char *fifo = g_build_filename(dir, "fifo", NULL);
    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    int reader = open(fifo, O_RDONLY | O_NONBLOCK);
    g_assert_cmpint(reader, >=, 0);
    g_autofree char *spec = g_strdup_printf("file:%s", fifo);
    Chardev *chr = chardev_new(spec, &err);
    g_assert_no_error(err);
    f.chr = chr;
    f.s = serial_new(&f.m, BASE, (IrqLine){ set_level, &f, 4 }, chr, &err);
    g_assert_no_error(err);
    outb(&f, FCR, 0x01);                    /* FIFO on */
    outb(&f, MCR, 0x08);                    /* OUT2: interrupts reach the line */

    /* Fill the pipe until the UART reports THR busy. */
    unsigned written = 0;
    while ((inb(&f, LSR) & 0x60) == 0x60) {
        outb(&f, THR, 'x');
        written++;
        g_assert_cmpuint(written, <, 1u << 24);
    }
    g_assert_cmpuint(inb(&f, LSR) & 0x60, ==, 0);  /* neither THRE nor TEMT */
    outb(&f, IER, 0x02);                    /* THRE interrupt wanted, but THR is busy */
    g_assert_false(f.level);

    /* The reader drains everything; the main loop delivers the held bytes. */
    char buf[65536];
    size_t got = 0;
    for (int i = 0; i < 1000 && got < written; i++) {
        ssize_t n = read(reader, buf, sizeof(buf));
        got += n > 0 ? (size_t)n : 0;
        while (g_main_context_iteration(NULL, FALSE)) {
        }
    }
    g_assert_cmpuint(got, ==, written);
    g_assert_cmpuint(inb(&f, LSR) & 0x60, ==, 0x60);
    g_assert_true(f.level);                 /* THRE interrupt raised when THR emptied */

    serial_free(f.s);
    chardev_free(chr);
    close(reader);
    io_map_free(f.m.pio);
    g_unlink(fifo);
    g_rmdir(dir);
}


int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

#define ADD(name, fn) g_test_add("/serial/" name, Fixture, NULL, setup, fn, teardown)
    ADD("reset-state", test_reset_state);
    ADD("divisor-lcr", test_divisor_and_lcr);
    ADD("thr-output", test_thr_output);
    ADD("thre-interrupt", test_thre_interrupt);
    ADD("rx-fifo-triggers", test_rx_fifo_triggers);
    ADD("iir-priority", test_iir_priority);
    ADD("loopback", test_loopback);
    ADD("out2-gates-irq", test_out2_gates_irq);
    ADD("modem-status-interrupt", test_modem_status_interrupt);
    ADD("reset", test_reset);
#undef ADD
    g_test_add_func("/serial/ports-taken", test_ports_taken);
    g_test_add_func("/serial/stalled-output", test_stalled_output);
    return g_test_run();
}
