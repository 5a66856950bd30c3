/* The MC146818 RTC/CMOS driven through ports 0x70/0x71. */
#include "hw/timer/rtc.h"
#include <time.h>

typedef struct {
    Machine m;
    Rtc *rtc;
    bool level;
} Fixture;

static void set_level(void *opaque, unsigned line, bool level)
{
    Fixture *f = opaque;
    g_assert_cmpuint(line, ==, 8);
    f->level = level;
}

static void setup(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    f->m.pio = io_map_new("pio");
    f->rtc = rtc_new(&f->m, (IrqLine){ set_level, f, 8 }, &err);
    g_assert_no_error(err);
}

static void teardown(Fixture *f, gconstpointer data)
{
    rtc_free(f->rtc);
    io_map_free(f->m.pio);
}

static uint8_t cmos_read(Fixture *f, uint8_t index)
{
    uint8_t v = index;
    g_assert_true(io_map_dispatch(f->m.pio, 0x70, &v, 1, true));
    g_assert_true(io_map_dispatch(f->m.pio, 0x71, &v, 1, false));
    return v;
}

static void cmos_write(Fixture *f, uint8_t index, uint8_t value)
{
    g_assert_true(io_map_dispatch(f->m.pio, 0x70, &index, 1, true));
    g_assert_true(io_map_dispatch(f->m.pio, 0x71, &value, 1, true));
}

static int dec(uint8_t v, bool bcd)
{
    return bcd ? (v >> 4) * 10 + (v & 0xf) : v;
}

static uint8_t enc(int v, bool bcd)
{
    return bcd ? ((v / 10) << 4) | (v % 10) : v;
}

/* The guest's view of the time, decoded the way Linux does it. */
static time_t read_guest_time(Fixture *f, struct tm *out)
{
    uint8_t b = cmos_read(f, 0x0b);
    bool bcd = !(b & 0x04), h24 = b & 0x02;
    struct tm tm = { 0 };
    uint8_t hour, sec;
    int wday;

    do { /* as Linux: retry if a second boundary fell between the reads */
        while (cmos_read(f, 0x0a) & 0x80) {
            /* update in progress: at most 244 us */
        }
        sec = cmos_read(f, 0x00);
        tm.tm_sec = dec(sec, bcd);
        tm.tm_min = dec(cmos_read(f, 0x02), bcd);
        hour = cmos_read(f, 0x04);
        tm.tm_hour = h24 ? dec(hour, bcd) : dec(hour & 0x7f, bcd) % 12 + (hour & 0x80 ? 12 : 0);
        tm.tm_mday = dec(cmos_read(f, 0x07), bcd);
        wday = dec(cmos_read(f, 0x06), bcd);
        tm.tm_mon = dec(cmos_read(f, 0x08), bcd) - 1;
        tm.tm_year = dec(cmos_read(f, RTC_REG_CENTURY), bcd) * 100 + dec(cmos_read(f, 0x09), bcd) -
                     1900;
    } while (cmos_read(f, 0x00) != sec);
    time_t t = timegm(&tm);
    g_assert_cmpint(wday, ==, tm.tm_wday + 1); /* timegm filled in the weekday */
    if (out) {
        *out = tm;
    }
    return t;
}

static void assert_near_host(time_t t)
{
    time_t host = time(NULL);
    g_assert_cmpint(t, >=, host - 2);
    g_assert_cmpint(t, <=, host + 2);
}

static void test_host_time_bcd(Fixture *f, gconstpointer data)
{
    g_assert_cmphex(cmos_read(f, 0x0b), ==, 0x02); /* BCD, 24-hour */
    assert_near_host(read_guest_time(f, NULL));
}

static void test_host_time_binary(Fixture *f, gconstpointer data)
{
    cmos_write(f, 0x0b, 0x06);
    assert_near_host(read_guest_time(f, NULL));
}

static void test_host_time_12h(Fixture *f, gconstpointer data)
{
    for (uint8_t b = 0x00; b <= 0x04; b += 0x04) { /* BCD, then binary; 12-hour */
        cmos_write(f, 0x0b, b);
        assert_near_host(read_guest_time(f, NULL));
        uint8_t hour = cmos_read(f, 0x04);
        int h = dec(hour & 0x7f, b == 0);
        g_assert_cmpint(h, >=, 1);
        g_assert_cmpint(h, <=, 12);
    }
}

static void test_register_a_d(Fixture *f, gconstpointer data)
{
    g_assert_cmphex(cmos_read(f, 0x0d), ==, 0x80);
    cmos_write(f, 0x0d, 0x00);
    g_assert_cmphex(cmos_read(f, 0x0d), ==, 0x80);
    g_assert_cmphex(cmos_read(f, 0x0a) & 0x7f, ==, 0x26);
    cmos_write(f, 0x0a, 0xa3); /* UIP is read-only */
    g_assert_cmphex(cmos_read(f, 0x0a) & 0x7f, ==, 0x23);
}

static void test_cmos_storage(Fixture *f, gconstpointer data)
{
    for (unsigned i = 0x0e; i < 0x80; i++) {
        if (i != RTC_REG_CENTURY) {
            cmos_write(f, i, i ^ 0x5a);
        }
    }
    for (unsigned i = 0x0e; i < 0x80; i++) {
        if (i != RTC_REG_CENTURY) {
            g_assert_cmphex(cmos_read(f, i), ==, i ^ 0x5a);
            g_assert_cmphex(rtc_cmos_get(f->rtc, i), ==, i ^ 0x5a);
        }
    }
    rtc_cmos_set(f->rtc, 0x34, 0x12);
    rtc_cmos_set(f->rtc, 0x35, 0x34);
    g_assert_cmphex(cmos_read(f, 0x34), ==, 0x12);
    g_assert_cmphex(cmos_read(f, 0x35), ==, 0x34);
    rtc_reset(f->rtc); /* NVRAM is battery-backed */
    g_assert_cmphex(cmos_read(f, 0x35), ==, 0x34);
}

static void test_index_masking(Fixture *f, gconstpointer data)
{
    uint8_t v = 0x80 | 0x0d;
    rtc_cmos_set(f->rtc, 0x40, 0x77);
    g_assert_true(io_map_dispatch(f->m.pio, 0x70, &v, 1, true));
    g_assert_true(rtc_nmi_masked(f->rtc));
    g_assert_true(io_map_dispatch(f->m.pio, 0x71, &v, 1, false));
    g_assert_cmphex(v, ==, 0x80);
    v = 0xc0; /* 0x40 with NMI masked */
    io_map_dispatch(f->m.pio, 0x70, &v, 1, true);
    io_map_dispatch(f->m.pio, 0x71, &v, 1, false);
    g_assert_cmphex(v, ==, 0x77);
    v = 0x40;
    io_map_dispatch(f->m.pio, 0x70, &v, 1, true);
    g_assert_false(rtc_nmi_masked(f->rtc));
    /* A word access writes the index and the data in one go. */
    uint8_t w[2] = { 0x41, 0x99 };
    g_assert_true(io_map_dispatch(f->m.pio, 0x70, w, 2, true));
    g_assert_cmphex(rtc_cmos_get(f->rtc, 0x41), ==, 0x99);
}

static void test_alarm_registers(Fixture *f, gconstpointer data)
{
    time_t before = read_guest_time(f, NULL);
    /* Plain storage: reading them is fine, writing them leaves the clock alone. */
    for (uint8_t reg = 0x01; reg <= 0x05; reg += 2) {
        cmos_read(f, reg);
        cmos_write(f, reg, 0x12 + reg);
        g_assert_cmphex(cmos_read(f, reg), ==, 0x12 + reg);
    }
    time_t after = read_guest_time(f, NULL);
    g_assert_cmpint(after - before, >=, 0);
    g_assert_cmpint(after - before, <=, 2);
}

static void set_time_frozen(Fixture *f, bool bcd, int year, int mon, int mday, int h, int m, int s)
{
    uint8_t b = cmos_read(f, 0x0b);
    cmos_write(f, 0x0b, b | 0x80);
    /* The day goes in before the month: Feb 31 must not be normalised meanwhile. */
    cmos_write(f, 0x00, enc(s, bcd));
    cmos_write(f, 0x02, enc(m, bcd));
    cmos_write(f, 0x04, enc(h, bcd));
    cmos_write(f, 0x07, enc(mday, bcd));
    cmos_write(f, 0x08, enc(mon, bcd));
    cmos_write(f, 0x09, enc(year % 100, bcd));
    cmos_write(f, RTC_REG_CENTURY, enc(year / 100, bcd));
    /* Frozen: reads give back what was written. */
    g_assert_cmphex(cmos_read(f, 0x07), ==, enc(mday, bcd));
    g_usleep(2000);
    g_assert_cmphex(cmos_read(f, 0x00), ==, enc(s, bcd));
    cmos_write(f, 0x0b, b & ~0x80);
}

static void test_set_time(Fixture *f, gconstpointer data)
{
    struct tm tm;
    time_t want;

    set_time_frozen(f, true, 2001, 3, 31, 4, 5, 6);
    struct tm ref = { .tm_year = 101, .tm_mon = 2, .tm_mday = 31, .tm_hour = 4, .tm_min = 5,
                      .tm_sec = 6 };
    want = timegm(&ref);
    time_t got = read_guest_time(f, &tm);
    g_assert_cmpint(got, >=, want);
    g_assert_cmpint(got, <=, want + 2);

    /* The offset keeps running with the host clock. */
    cmos_write(f, 0x0b, 0x06);
    set_time_frozen(f, false, 2099, 12, 31, 23, 59, 50);
    struct tm ref2 = { .tm_year = 199, .tm_mon = 11, .tm_mday = 31, .tm_hour = 23, .tm_min = 59,
                       .tm_sec = 50 };
    got = read_guest_time(f, &tm);
    g_assert_cmpint(got, >=, timegm(&ref2));
    g_assert_cmpint(got, <=, timegm(&ref2) + 2);

    /* One field written while running shifts just that field. */
    cmos_write(f, 0x09, 50);
    read_guest_time(f, &tm);
    g_assert_cmpint(tm.tm_year + 1900, ==, 2050);
    g_assert_cmpint(tm.tm_mon, ==, 11);
}

static void test_register_c_lazy(Fixture *f, gconstpointer data)
{
    cmos_read(f, 0x0c);
    g_usleep(3000); /* three ticks of the default 1024 Hz rate */
    uint8_t c = cmos_read(f, 0x0c);
    g_assert_cmphex(c & 0xc0, ==, 0x40); /* PF without PIE: no IRQF */
    g_assert_false(f->level);
    cmos_write(f, 0x0a, 0x20); /* rate 0: no periodic flag */
    cmos_read(f, 0x0c);
    g_usleep(3000);
    g_assert_cmphex(cmos_read(f, 0x0c) & 0x40, ==, 0);
}

static bool wait_for_irq(Fixture *f, gint64 timeout_us)
{
    gint64 end = g_get_monotonic_time() + timeout_us;
    while (!f->level && g_get_monotonic_time() < end) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(200);
    }
    return f->level;
}

static void test_periodic_irq(Fixture *f, gconstpointer data)
{
    cmos_read(f, 0x0c);
    cmos_write(f, 0x0b, 0x42); /* PIE */
    g_assert_true(wait_for_irq(f, G_USEC_PER_SEC));
    g_assert_cmphex(cmos_read(f, 0x0c) & 0xc0, ==, 0xc0);
    g_assert_false(f->level);
    /* It keeps coming while enabled. */
    g_assert_true(wait_for_irq(f, G_USEC_PER_SEC));
    rtc_reset(f->rtc); /* clears PIE and the flags */
    g_assert_false(f->level);
    g_assert_cmphex(cmos_read(f, 0x0b), ==, 0x02);
}

static void test_update_and_alarm_irq(Fixture *f, gconstpointer data)
{
    cmos_write(f, 0x01, 0xc0); /* alarm: any second, any minute, any hour */
    cmos_write(f, 0x03, 0xc0);
    cmos_write(f, 0x05, 0xc0);
    cmos_write(f, 0x0a, 0x20); /* no periodic ticks */
    cmos_read(f, 0x0c);
    cmos_write(f, 0x0b, 0x32); /* AIE, UIE */
    g_assert_true(wait_for_irq(f, 2 * G_USEC_PER_SEC));
    g_assert_cmphex(cmos_read(f, 0x0c), ==, 0xb0);
    g_assert_false(f->level);

    /* SET stops updates and clears UIE. */
    cmos_write(f, 0x0b, 0x92);
    g_assert_cmphex(cmos_read(f, 0x0b), ==, 0x82);
    cmos_write(f, 0x0b, 0x02);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(name, fn) g_test_add("/rtc/" name, Fixture, NULL, setup, fn, teardown)
    ADD("host-time-bcd", test_host_time_bcd);
    ADD("host-time-binary", test_host_time_binary);
    ADD("host-time-12h", test_host_time_12h);
    ADD("register-a-d", test_register_a_d);
    ADD("cmos-storage", test_cmos_storage);
    ADD("index-masking", test_index_masking);
    ADD("alarm-registers", test_alarm_registers);
    ADD("set-time", test_set_time);
    ADD("register-c-lazy", test_register_c_lazy);
    ADD("periodic-irq", test_periodic_irq);
    ADD("update-alarm-irq", test_update_and_alarm_irq);
#undef ADD
    return g_test_run();
}
