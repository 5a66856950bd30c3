/*
 * CRC-32C. Two implementations: the SSE4.2 crc32 instruction, 8 bytes at a
 * time, and slicing-by-8 over tables. On hardware the instruction is several
 * times faster; under an emulator (the test rig's software x86, whose crc32
 * is a bit-by-bit loop) the tables are, by more than that. So the first call
 * times both over the same buffer and keeps the faster, as Linux picks its
 * RAID xor routine at boot. Both give the check value 0xe3069283 for
 * "123456789".
 */
#include "util/crc32c.h"
#include <glib.h>
#include <string.h>

#define POLY_REFLECTED 0x82f63b78u
#define CALIBRATION_BYTES (64 * 1024)

typedef uint32_t (*Crc32cFn)(uint32_t crc, const uint8_t *p, size_t len);
typedef uint32_t (*Crc32cCopyFn)(uint32_t crc, uint8_t *dst, const uint8_t *p, size_t len);

/* One implementation: the checksum alone, and fused with a copy (one pass over the source). */
typedef struct {
    Crc32cFn crc;
    Crc32cCopyFn copy;
} Crc32cImpl;

static uint32_t table[8][256]; /* table[k][b]: b followed by k zero bytes */

static void build_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ POLY_REFLECTED : c >> 1;
        }
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int k = 1; k < 8; k++) {
            table[k][i] = (table[k - 1][i] >> 8) ^ table[0][table[k - 1][i] & 0xff];
        }
    }
}

static inline uint32_t tables_step(uint32_t crc, uint64_t v)
{
    v = GUINT64_FROM_LE(v) ^ crc;
    return table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
           table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
           table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
}

static uint32_t crc32c_tables_copy(uint32_t crc, uint8_t *dst, const uint8_t *p, size_t len)
{
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        memcpy(dst, &v, 8);
        crc = tables_step(crc, v);
        p += 8;
        dst += 8;
        len -= 8;
    }
    while (len--) {
        *dst++ = *p;
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

static uint32_t crc32c_tables(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v = GUINT64_FROM_LE(v) ^ crc;
        crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
              table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
              table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
        p += 8;
        len -= 8;
    }
    while (len--) {
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--) {
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    }
    return c32;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42_copy(uint32_t crc, uint8_t *dst, const uint8_t *p,
                                                                    size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        memcpy(dst, &v, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        dst += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--) {
        *dst++ = *p;
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    }
    return c32;
}
#endif

static const Crc32cImpl tables_impl = { crc32c_tables, crc32c_tables_copy };

static gint64 time_one(Crc32cFn fn, const uint8_t *buf)
{
    gint64 best = G_MAXINT64;
    for (int i = 0; i < 3; i++) {
        gint64 t = g_get_monotonic_time();
        volatile uint32_t sink = fn(0, buf, CALIBRATION_BYTES);
        (void)sink;
        best = MIN(best, g_get_monotonic_time() - t);
    }
    return best;
}

static gpointer choose(gpointer unused)
{
#if defined(__x86_64__)
    static const Crc32cImpl sse42_impl = { crc32c_sse42, crc32c_sse42_copy };
    if (__builtin_cpu_supports("sse4.2")) {
        g_autofree uint8_t *buf = g_malloc(CALIBRATION_BYTES);
        for (size_t i = 0; i < CALIBRATION_BYTES; i++) {
            buf[i] = (uint8_t)(i * 131 + 7);
        }
        return (gpointer)(time_one(crc32c_sse42, buf) <= time_one(crc32c_tables, buf) ? &sse42_impl : &tables_impl);
    }
#endif
    return (gpointer)&tables_impl;
}

static const Crc32cImpl *impl(void)
{
    static GOnce once = G_ONCE_INIT;
    crc32c_portable(0, NULL, 0); /* the tables, which choose() times */
    return g_once(&once, choose, NULL);
}

static gpointer tables_ready(gpointer unused)
{
    build_tables();
    return NULL;
}

uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    static GOnce once = G_ONCE_INIT;
    g_once(&once, tables_ready, NULL);
    return ~crc32c_tables(~crc, buf, len);
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    return ~impl()->crc(~crc, buf, len);
}

uint32_t crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len)
{
    return ~impl()->copy(~crc, dst, src, len);
}
