#define G_LOG_DOMAIN "rtc"
#include "hw/timer/rtc.h"
#include "migration/vmstate.h"
#include "util/error.h"
#include <string.h>
#include <time.h>

enum {
    REG_SEC = 0x00,
    REG_SEC_ALARM = 0x01,
    REG_MIN = 0x02,
    REG_MIN_ALARM = 0x03,
    REG_HOUR = 0x04,
    REG_HOUR_ALARM = 0x05,
    REG_WDAY = 0x06,
    REG_MDAY = 0x07,
    REG_MON = 0x08,
    REG_YEAR = 0x09,
    REG_A = 0x0a,
    REG_B = 0x0b,
    REG_C = 0x0c,
    REG_D = 0x0d,
    REG_NVRAM = 0x0e,
};

#define A_UIP 0x80
#define A_RS 0x0f
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_SQWE 0x08
#define B_DM_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40 /* the C flags line up with their B enables */
#define C_AF 0x20
#define C_UF 0x10
#define C_FLAGS 0x70
#define D_VRT 0x80
#define HOUR_PM 0x80
#define ALARM_DONT_CARE 0xc0

#define UIP_WINDOW_US 244 /* the update cycle's 244 us warning before each second */
#define US 1000000LL

struct Rtc {
    Machine *m;
    IrqLine irq;
    uint8_t cmos[RTC_CMOS_SIZE]; /* time bytes are live only while B.SET freezes the clock */
    uint8_t index;
    bool nmi_masked;
    gint64 offset;  /* guest seconds minus host UTC seconds */
    gint64 last_us; /* host time up to which register C has been brought */
    guint timer;    /* armed while an enabled interrupt is due and IRQF is clear */
    bool irq_level;
};

/* The clock's own registers; the alarm registers between them are plain storage. */
static bool is_time_reg(unsigned reg)
{
    bool alarm = reg == REG_SEC_ALARM || reg == REG_MIN_ALARM || reg == REG_HOUR_ALARM;
    return (reg <= REG_YEAR && !alarm) || reg == RTC_REG_CENTURY;
}

/* ---- register format (register B: DM and 24/12) ---- */

static uint8_t to_reg(const Rtc *rtc, int v)
{
    return rtc->cmos[REG_B] & B_DM_BINARY ? v : ((v / 10) << 4) | (v % 10);
}

static int from_reg(const Rtc *rtc, uint8_t r)
{
    return rtc->cmos[REG_B] & B_DM_BINARY ? r : (r >> 4) * 10 + (r & 0x0f);
}

static uint8_t hour_to_reg(const Rtc *rtc, int h)
{
    if (rtc->cmos[REG_B] & B_24H) {
        return to_reg(rtc, h);
    }
    return to_reg(rtc, h % 12 ? h % 12 : 12) | (h >= 12 ? HOUR_PM : 0);
}

static int hour_from_reg(const Rtc *rtc, uint8_t r)
{
    if (rtc->cmos[REG_B] & B_24H) {
        return from_reg(rtc, r);
    }
    return from_reg(rtc, r & ~HOUR_PM) % 12 + (r & HOUR_PM ? 12 : 0);
}

/* ---- the clock ---- */

static gint64 host_now_us(void)
{
    return g_get_real_time();
}

static void guest_tm(const Rtc *rtc, gint64 host_us, struct tm *tm)
{
    time_t t = host_us / US + rtc->offset;
    if (!gmtime_r(&t, tm)) {
        memset(tm, 0, sizeof(*tm));
    }
}

static uint8_t time_reg_encode(const Rtc *rtc, unsigned reg, const struct tm *tm)
{
    int year = tm->tm_year + 1900;

    switch (reg) {
    case REG_SEC:
        return to_reg(rtc, MIN(tm->tm_sec, 59));
    case REG_MIN:
        return to_reg(rtc, tm->tm_min);
    case REG_HOUR:
        return hour_to_reg(rtc, tm->tm_hour);
    case REG_WDAY:
        return to_reg(rtc, tm->tm_wday + 1); /* 1 = Sunday */
    case REG_MDAY:
        return to_reg(rtc, tm->tm_mday);
    case REG_MON:
        return to_reg(rtc, tm->tm_mon + 1);
    case REG_YEAR:
        return to_reg(rtc, year % 100);
    case RTC_REG_CENTURY:
        return to_reg(rtc, year / 100);
    }
    g_assert_not_reached();
}

/* Apply one guest-format time byte to @tm (the day of week follows the date). */
static void time_reg_decode(const Rtc *rtc, unsigned reg, uint8_t v, struct tm *tm)
{
    int year = tm->tm_year + 1900;

    switch (reg) {
    case REG_SEC:
        tm->tm_sec = from_reg(rtc, v);
        break;
    case REG_MIN:
        tm->tm_min = from_reg(rtc, v);
        break;
    case REG_HOUR:
        tm->tm_hour = hour_from_reg(rtc, v);
        break;
    case REG_MDAY:
        tm->tm_mday = from_reg(rtc, v);
        break;
    case REG_MON:
        tm->tm_mon = from_reg(rtc, v) - 1;
        break;
    case REG_YEAR:
        tm->tm_year = year / 100 * 100 + from_reg(rtc, v) - 1900;
        break;
    case RTC_REG_CENTURY:
        tm->tm_year = from_reg(rtc, v) * 100 + year % 100 - 1900;
        break;
    }
}

static void set_guest_time(Rtc *rtc, struct tm *tm, gint64 host_us)
{
    rtc->offset = (gint64)timegm(tm) - host_us / US;
}

static const unsigned time_regs[] = { REG_SEC, REG_MIN, REG_HOUR, REG_WDAY, REG_MDAY,
                                      REG_MON, REG_YEAR, RTC_REG_CENTURY };

/* SET went on: the guest now sees (and edits) a snapshot. */
static void freeze_time(Rtc *rtc, gint64 host_us)
{
    struct tm tm;
    guest_tm(rtc, host_us, &tm);
    for (size_t i = 0; i < G_N_ELEMENTS(time_regs); i++) {
        rtc->cmos[time_regs[i]] = time_reg_encode(rtc, time_regs[i], &tm);
    }
}

/* SET went off: whatever the guest wrote becomes an offset from the host clock. */
static void thaw_time(Rtc *rtc, gint64 host_us)
{
    struct tm tm = { .tm_year = 0 };
    for (size_t i = 0; i < G_N_ELEMENTS(time_regs); i++) {
        time_reg_decode(rtc, time_regs[i], rtc->cmos[time_regs[i]], &tm);
    }
    set_guest_time(rtc, &tm, host_us);
}

/* ---- register C: flags accrued lazily from the clock ---- */

/* Periodic rate from RS, as a power of two of 1/32768 s (the 32.768 kHz divider taps). */
static unsigned periodic_shift(const Rtc *rtc)
{
    unsigned rs = rtc->cmos[REG_A] & A_RS;
    return rs <= 2 ? rs + 6 : rs - 1;
}

static gint64 ticks_32k(gint64 us)
{
    return us / US * 32768 + us % US * 32768 / US;
}

static gint64 ticks_32k_to_us(gint64 ticks)
{
    return ticks / 32768 * US + (ticks % 32768 * US + 32767) / 32768;
}

static bool alarm_field_matches(const Rtc *rtc, uint8_t alarm, int value, bool hour)
{
    if ((alarm & ALARM_DONT_CARE) == ALARM_DONT_CARE) {
        return true;
    }
    return (hour ? hour_from_reg(rtc, alarm) : from_reg(rtc, alarm)) == value;
}

/*
 * Did any second in (s0, s1] match the alarm? A day covers every pattern,
 * and UTC seconds split into h:m:s by plain arithmetic (no leap seconds).
 */
static bool alarm_hit(const Rtc *rtc, gint64 s0, gint64 s1)
{
    for (gint64 t = MAX(s0 + 1, s1 - 86399); t <= s1; t++) {
        gint64 day = ((t % 86400) + 86400) % 86400;
        if (alarm_field_matches(rtc, rtc->cmos[REG_SEC_ALARM], day % 60, false) &&
            alarm_field_matches(rtc, rtc->cmos[REG_MIN_ALARM], day / 60 % 60, false) &&
            alarm_field_matches(rtc, rtc->cmos[REG_HOUR_ALARM], day / 3600, true)) {
            return true;
        }
    }
    return false;
}

static void update_irq(Rtc *rtc)
{
    bool level = rtc->cmos[REG_C] & C_IRQF;
    if (level != rtc->irq_level) {
        rtc->irq_level = level;
        irq_set(&rtc->irq, level);
    }
}

/* Bring register C up to @now: updates, alarms and periodic ticks since last time. */
static void account(Rtc *rtc, gint64 now)
{
    gint64 last = rtc->last_us;
    uint8_t *c = &rtc->cmos[REG_C];

    if (now > last) {
        if (!(rtc->cmos[REG_B] & B_SET)) {
            gint64 s0 = last / US + rtc->offset, s1 = now / US + rtc->offset;
            if (s1 > s0) {
                *c |= C_UF;
                if (!(*c & C_AF) && alarm_hit(rtc, s0, s1)) {
                    *c |= C_AF;
                }
            }
        }
        if ((rtc->cmos[REG_A] & A_RS) &&
            ticks_32k(now) >> periodic_shift(rtc) != ticks_32k(last) >> periodic_shift(rtc)) {
            *c |= C_PF;
        }
    }
    rtc->last_us = now; /* a host clock stepping back just restarts the accounting */
    if (*c & rtc->cmos[REG_B] & C_FLAGS) {
        *c |= C_IRQF;
    }
    update_irq(rtc);
}

static gboolean rtc_timer_fired(gpointer opaque);

/* Wake up for the next event that could raise IRQF; nothing to do while it is up. */
static void rearm(Rtc *rtc)
{
    uint8_t b = rtc->cmos[REG_B];
    gint64 now = host_now_us(), next = G_MAXINT64;

    if (rtc->timer) {
        g_source_remove(rtc->timer);
        rtc->timer = 0;
    }
    if (rtc->cmos[REG_C] & C_IRQF) {
        return;
    }
    if ((b & (B_UIE | B_AIE)) && !(b & B_SET)) {
        next = (now / US + 1) * US;
    }
    if ((b & B_PIE) && (rtc->cmos[REG_A] & A_RS)) {
        unsigned shift = periodic_shift(rtc);
        gint64 tick = ((ticks_32k(now) >> shift) + 1) << shift;
        next = MIN(next, ticks_32k_to_us(tick));
    }
    if (next != G_MAXINT64) {
        guint ms = MAX(1, (next - now + 999) / 1000);
        rtc->timer = g_timeout_add_full(G_PRIORITY_DEFAULT, ms, rtc_timer_fired, rtc, NULL);
    }
}

static gboolean rtc_timer_fired(gpointer opaque)
{
    Rtc *rtc = opaque;

    if (g_source_is_destroyed(g_main_current_source())) {
        return G_SOURCE_REMOVE;
    }
    rtc->timer = 0;
    account(rtc, host_now_us());
    rearm(rtc);
    return G_SOURCE_REMOVE;
}

/* ---- guest access ---- */

static uint8_t cmos_read(Rtc *rtc, unsigned reg)
{
    gint64 now = host_now_us();
    uint8_t v;

    if (is_time_reg(reg) && !(rtc->cmos[REG_B] & B_SET)) {
        struct tm tm;
        guest_tm(rtc, now, &tm);
        return time_reg_encode(rtc, reg, &tm);
    }
    switch (reg) {
    case REG_A:
        v = rtc->cmos[REG_A];
        if (!(rtc->cmos[REG_B] & B_SET) && now % US >= US - UIP_WINDOW_US) {
            v |= A_UIP;
        }
        return v;
    case REG_C:
        account(rtc, now);
        v = rtc->cmos[REG_C];
        rtc->cmos[REG_C] = 0;
        update_irq(rtc);
        rearm(rtc);
        return v;
    case REG_D:
        return D_VRT;
    }
    return rtc->cmos[reg];
}

static void write_reg_b(Rtc *rtc, uint8_t v, gint64 now)
{
    uint8_t old = rtc->cmos[REG_B];

    account(rtc, now);
    if ((old & B_SET) && !(v & B_SET)) {
        thaw_time(rtc, now); /* decoded in the format the guest wrote them in */
    }
    if (v & B_SET) {
        v &= ~B_UIE; /* the update-ended interrupt cannot happen while frozen */
    }
    rtc->cmos[REG_B] = v;
    if (!(old & B_SET) && (v & B_SET)) {
        freeze_time(rtc, now);
    }
    account(rtc, now);
    rearm(rtc);
}

static void cmos_write(Rtc *rtc, unsigned reg, uint8_t v)
{
    gint64 now = host_now_us();

    if (is_time_reg(reg)) {
        if (rtc->cmos[REG_B] & B_SET) {
            rtc->cmos[reg] = v;
        } else if (reg != REG_WDAY) {
            struct tm tm;
            account(rtc, now);
            guest_tm(rtc, now, &tm);
            time_reg_decode(rtc, reg, v, &tm);
            set_guest_time(rtc, &tm, now);
            rearm(rtc);
        }
        return;
    }
    switch (reg) {
    case REG_A:
        account(rtc, now);
        rtc->cmos[REG_A] = v & ~A_UIP;
        rearm(rtc);
        return;
    case REG_B:
        write_reg_b(rtc, v, now);
        return;
    case REG_C:
    case REG_D:
        return; /* read-only */
    }
    rtc->cmos[reg] = v;
}

static uint64_t rtc_io_read(void *opaque, uint64_t offset, unsigned size)
{
    Rtc *rtc = opaque;
    return offset == 0 ? 0xff : cmos_read(rtc, rtc->index); /* the index port is write-only */
}

static void rtc_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    Rtc *rtc = opaque;

    if (offset == 0) {
        rtc->index = value & 0x7f;
        rtc->nmi_masked = value & 0x80;
    } else {
        cmos_write(rtc, rtc->index, value);
    }
}

static const IoRegionOps rtc_ops = {
    .read = rtc_io_read,
    .write = rtc_io_write,
    .min_size = 1,
    .max_size = 1,
};

/* ---- migration ---- */

/*
 * The guest's clock is the host's UTC plus @offset, on the source and on the
 * destination alike, so it keeps running through the migration; flags due
 * in between accrue from @last_us at the destination's first look.
 */
static bool rtc_post_load(void *opaque, int version, GError **err)
{
    Rtc *rtc = opaque;
    if (rtc->index >= RTC_CMOS_SIZE) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "device state 'rtc', field index: %u is not a CMOS register",
                    rtc->index);
        rtc->index = 0; /* nothing half-loaded stays */
        return false;
    }
    rtc->cmos[REG_A] &= ~A_UIP;
    /* The destination's line starts low: drive it to what register C says. */
    rtc->irq_level = !(rtc->cmos[REG_C] & C_IRQF);
    update_irq(rtc);
    rearm(rtc);
    return true;
}

static const VMStateField rtc_fields[] = {
    VMSTATE_UINT8_ARRAY(Rtc, cmos),
    VMSTATE_UINT8(Rtc, index),
    VMSTATE_BOOL(Rtc, nmi_masked),
    VMSTATE_UINT64(Rtc, offset),
    VMSTATE_UINT64(Rtc, last_us),
    VMSTATE_END,
};

static const VMStateDescription rtc_vmsd = {
    .name = "rtc",
    .version = 1,
    .minimum_version = 1,
    .fields = rtc_fields,
    .post_load = rtc_post_load,
};

/* ---- lifecycle ---- */

void rtc_reset(Rtc *rtc)
{
    rtc->cmos[REG_B] &= ~(B_PIE | B_AIE | B_UIE | B_SQWE);
    rtc->cmos[REG_C] = 0;
    rtc->last_us = host_now_us();
    rtc->irq_level = false;
    irq_set(&rtc->irq, false);
    rearm(rtc);
}

Rtc *rtc_new(Machine *m, IrqLine irq, GError **err)
{
    Rtc *rtc = g_new0(Rtc, 1);

    rtc->m = m;
    rtc->irq = irq;
    if (!io_map_add(m->pio, RTC_IO_BASE, 2, &rtc_ops, rtc, "rtc", err)) {
        g_free(rtc);
        return NULL;
    }
    /* What PC firmware leaves: 32.768 kHz divider, 1024 Hz rate, BCD, 24-hour. */
    rtc->cmos[REG_A] = 0x26;
    rtc->cmos[REG_B] = B_24H;
    rtc_reset(rtc);
    vmstate_register(m, "rtc", 0, &rtc_vmsd, rtc);
    return rtc;
}

void rtc_free(Rtc *rtc)
{
    if (!rtc) {
        return;
    }
    vmstate_unregister(rtc->m, rtc);
    if (rtc->timer) {
        g_source_remove(rtc->timer);
    }
    io_map_remove(rtc->m->pio, RTC_IO_BASE);
    g_free(rtc);
}

void rtc_cmos_set(Rtc *rtc, uint8_t index, uint8_t value)
{
    g_assert(index >= REG_NVRAM && index < RTC_CMOS_SIZE && index != RTC_REG_CENTURY);
    rtc->cmos[index] = value;
}

uint8_t rtc_cmos_get(const Rtc *rtc, uint8_t index)
{
    g_assert(index >= REG_NVRAM && index < RTC_CMOS_SIZE && index != RTC_REG_CENTURY);
    return rtc->cmos[index];
}

bool rtc_nmi_masked(const Rtc *rtc)
{
    return rtc->nmi_masked;
}
