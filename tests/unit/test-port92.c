/* System Control Port A. */
#include "hw/misc/port92.h"

typedef struct {
    Machine m;
    unsigned resets;
    ShutdownCause cause;
} TestMachine;

static void record_reset(Machine *m, ShutdownCause cause)
{
    TestMachine *t = (TestMachine *)m;
    t->resets++;
    t->cause = cause;
}

static uint8_t inb(TestMachine *t)
{
    uint8_t v;
    g_assert_true(io_map_dispatch(t->m.pio, 0x92, &v, 1, false));
    return v;
}

static void outb(TestMachine *t, uint8_t v)
{
    g_assert_true(io_map_dispatch(t->m.pio, 0x92, &v, 1, true));
}

static void test_a20_and_reset(void)
{
    TestMachine t = { .m = { .pio = io_map_new("pio"), .request_reset = record_reset } };
    g_autoptr(GError) err = NULL;
    Port92 *p = port92_new(&t.m, &err);
    g_assert_no_error(err);

    g_assert_cmphex(inb(&t) & 0x03, ==, 0x02);
    g_assert_true(port92_a20_enabled(p));
    outb(&t, 0x00);
    g_assert_cmphex(inb(&t) & 0x03, ==, 0x00);
    g_assert_false(port92_a20_enabled(p));
    outb(&t, 0x02);
    g_assert_cmphex(inb(&t) & 0x03, ==, 0x02);
    g_assert_cmpuint(t.resets, ==, 0);

    outb(&t, 0x03);
    g_assert_cmpuint(t.resets, ==, 1);
    g_assert_cmpint(t.cause, ==, SHUTDOWN_CAUSE_GUEST_RESET);
    g_assert_cmphex(inb(&t) & 0x01, ==, 0); /* the reset bit does not stick */
    outb(&t, 0x01);
    g_assert_cmpuint(t.resets, ==, 2);

    outb(&t, 0x00);
    port92_reset(p);
    g_assert_true(port92_a20_enabled(p));

    /* The port is claimed: a second instance fails with a message. */
    Port92 *q = port92_new(&t.m, &err);
    g_assert_null(q);
    g_assert_nonnull(err);
    g_clear_error(&err);

    port92_free(p);
    /* Freed, the port can be claimed again. */
    p = port92_new(&t.m, &err);
    g_assert_no_error(err);
    port92_free(p);
    io_map_free(t.m.pio);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/port92/a20-and-reset", test_a20_and_reset);
    return g_test_run();
}
