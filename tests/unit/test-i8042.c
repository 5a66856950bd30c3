/* The 8042 keyboard controller with nothing plugged in, driven like Linux's i8042 driver. */
#include "hw/input/i8042.h"

#define STAT_OBF 0x01
#define STAT_SYS 0x04
#define STAT_AUX 0x20
#define STAT_TIMEOUT 0x40

typedef struct {
    Machine m;
    I8042 *kbc;
    unsigned resets;
    ShutdownCause cause;
    bool kbd_level, aux_level;
} Fixture;

static void record_reset(Machine *m, ShutdownCause cause)
{
    Fixture *f = (Fixture *)m;
    f->resets++;
    f->cause = cause;
}

static void record_shutdown(Machine *m, ShutdownCause cause)
{
    g_assert_not_reached();
}

static void set_level(void *opaque, unsigned line, bool level)
{
    Fixture *f = opaque;
    g_assert_true(line == 1 || line == 12);
    *(line == 1 ? &f->kbd_level : &f->aux_level) = level;
}

static void setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    f->m.pio = io_map_new("pio");
    f->m.request_reset = record_reset;
    f->m.request_shutdown = record_shutdown;
    f->kbc = i8042_new(&f->m, (IrqLine){ set_level, f, 1 }, (IrqLine){ set_level, f, 12 }, &err);
    g_assert_no_error(err);
}

static void teardown(Fixture *f, gconstpointer data)
{
    i8042_free(f->kbc);
    io_map_free(f->m.pio);
}

static uint8_t inb(Fixture *f, uint16_t port)
{
    uint8_t v;
    g_assert_true(io_map_dispatch(f->m.pio, port, &v, 1, false));
    return v;
}

static void outb(Fixture *f, uint16_t port, uint8_t v)
{
    g_assert_true(io_map_dispatch(f->m.pio, port, &v, 1, true));
}

static void command(Fixture *f, uint8_t cmd)
{
    outb(f, 0x64, cmd);
}

/* Poll for a reply the way a driver does; -1 if the buffer stays empty. */
static int reply(Fixture *f)
{
    return inb(f, 0x64) & STAT_OBF ? inb(f, 0x60) : -1;
}

static void test_status_after_reset(Fixture *f, gconstpointer data)
{
    uint8_t st = inb(f, 0x64);
    g_assert_cmphex(st & (STAT_OBF | 0x02), ==, 0); /* nothing to read, ready for input */
    g_assert_cmphex(st & STAT_SYS, ==, STAT_SYS);
    g_assert_false(f->kbd_level);
    g_assert_false(f->aux_level);
}

static void test_self_tests(Fixture *f, gconstpointer data)
{
    command(f, 0xaa);
    g_assert_true(f->kbd_level); /* the command byte enables the keyboard interrupt */
    g_assert_cmpint(reply(f), ==, 0x55);
    g_assert_false(f->kbd_level);
    g_assert_cmpint(reply(f), ==, -1);
    command(f, 0xab);
    g_assert_cmpint(reply(f), ==, 0x00);
    command(f, 0xa9);
    g_assert_cmpint(reply(f), ==, 0x00);
    g_assert_cmphex(inb(f, 0x64) & STAT_SYS, ==, STAT_SYS);
}

static void test_command_byte(Fixture *f, gconstpointer data)
{
    command(f, 0x20);
    int ctr = reply(f);
    g_assert_cmphex(ctr, ==, 0x45);

    /* No interrupts: replies are polled. */
    command(f, 0x60);
    outb(f, 0x60, 0x64);
    command(f, 0x20);
    g_assert_false(f->kbd_level);
    g_assert_cmphex(reply(f), ==, 0x64);

    /* Enable/disable commands flip their bits. */
    command(f, 0xa8);
    command(f, 0xae);
    command(f, 0x20);
    g_assert_cmphex(reply(f), ==, 0x44);
    command(f, 0xa7);
    command(f, 0xad);
    command(f, 0x20);
    g_assert_cmphex(reply(f), ==, 0x74);

    /* SYS in the command byte shows in the status register. */
    command(f, 0x60);
    outb(f, 0x60, 0x00);
    g_assert_cmphex(inb(f, 0x64) & STAT_SYS, ==, 0);

    /* Internal RAM beyond byte 0. */
    command(f, 0x65);
    outb(f, 0x60, 0xab);
    command(f, 0x25);
    g_assert_cmphex(reply(f), ==, 0xab);
}

static void test_absent_devices(Fixture *f, gconstpointer data)
{
    /* atkbd's GETID: an absent keyboard answers at once with 0xfe and a timeout. */
    outb(f, 0x60, 0xf2);
    g_assert_true(f->kbd_level);
    uint8_t st = inb(f, 0x64);
    g_assert_cmphex(st & (STAT_OBF | STAT_AUX | STAT_TIMEOUT), ==, STAT_OBF | STAT_TIMEOUT);
    g_assert_cmphex(inb(f, 0x60), ==, 0xfe);
    g_assert_false(f->kbd_level);
    g_assert_cmphex(inb(f, 0x64) & STAT_TIMEOUT, ==, 0);

    /* Same for the mouse, on IRQ 12 once the command byte enables it. */
    command(f, 0x60);
    outb(f, 0x60, 0x47);
    command(f, 0xd4);
    outb(f, 0x60, 0xff);
    g_assert_true(f->aux_level);
    g_assert_false(f->kbd_level);
    st = inb(f, 0x64);
    g_assert_cmphex(st & (STAT_OBF | STAT_AUX | STAT_TIMEOUT), ==,
                    STAT_OBF | STAT_AUX | STAT_TIMEOUT);
    g_assert_cmphex(inb(f, 0x60), ==, 0xfe);
    g_assert_false(f->aux_level);

    /* Loopback commands echo as if the device sent it. */
    command(f, 0xd3);
    outb(f, 0x60, 0x5a);
    g_assert_true(f->aux_level);
    g_assert_cmphex(inb(f, 0x64) & (STAT_AUX | STAT_TIMEOUT), ==, STAT_AUX);
    g_assert_cmphex(reply(f), ==, 0x5a);
    command(f, 0xd2);
    outb(f, 0x60, 0xa5);
    g_assert_true(f->kbd_level);
    g_assert_cmphex(reply(f), ==, 0xa5);
    g_assert_false(f->kbd_level);
}

static void test_reset_by_pulse(Fixture *f, gconstpointer data)
{
    command(f, 0xff); /* pulse nothing */
    g_assert_cmpuint(f->resets, ==, 0);
    command(f, 0xfe);
    g_assert_cmpuint(f->resets, ==, 1);
    g_assert_cmpint(f->cause, ==, SHUTDOWN_CAUSE_GUEST_RESET);
}

static void test_output_port(Fixture *f, gconstpointer data)
{
    command(f, 0xd0);
    int out = reply(f);
    g_assert_cmphex(out & 0x03, ==, 0x03); /* running, A20 on */

    command(f, 0xd1);
    outb(f, 0x60, 0x01); /* A20 off, CPU still running */
    g_assert_cmpuint(f->resets, ==, 0);
    command(f, 0xd0);
    g_assert_cmphex(reply(f) & 0x03, ==, 0x01);

    command(f, 0xd1);
    outb(f, 0x60, 0x02); /* reset line low */
    g_assert_cmpuint(f->resets, ==, 1);
    g_assert_cmpint(f->cause, ==, SHUTDOWN_CAUSE_GUEST_RESET);

    /* A command that was waiting for data is abandoned by the next command. */
    command(f, 0xd1);
    command(f, 0x20);
    g_assert_cmphex(reply(f), ==, 0x45);
    outb(f, 0x60, 0x00); /* goes to the absent keyboard, not the output port */
    g_assert_cmpuint(f->resets, ==, 1);
    g_assert_cmphex(reply(f), ==, 0xfe);

    i8042_reset(f->kbc);
    command(f, 0xd0);
    g_assert_cmphex(reply(f) & 0x03, ==, 0x03);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/i8042/" name, Fixture, NULL, setup, fn, teardown)
    ADD("status-after-reset", test_status_after_reset);
    ADD("self-tests", test_self_tests);
    ADD("command-byte", test_command_byte);
    ADD("absent-devices", test_absent_devices);
    ADD("reset-by-pulse", test_reset_by_pulse);
    ADD("output-port", test_output_port);
#undef ADD
    return g_test_run();
}
