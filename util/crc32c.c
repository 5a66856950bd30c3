/*
 * CRC-32C. The SSE4.2 crc32 instruction computes it 8 bytes at a time where
 * the CPU has it (every x86-64 host KVM runs on in practice); a table-driven
 * version covers the rest. Both give the standard check value 0xe3069283
 * for "123456789".
 */
#include "util/crc32c.h"
#include <glib.h>
#include <string.h>

#define POLY_REFLECTED 0x82f63b78u

static uint32_t table[256];

static gpointer build_table(gpointer unused)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ POLY_REFLECTED : c >> 1;
        }
        table[i] = c;
    }
    return NULL;
}

static uint32_t crc32c_table(uint32_t crc, const uint8_t *p, size_t len)
{
    static GOnce once = G_ONCE_INIT;
    g_once(&once, build_table, NULL);
    while (len--) {
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
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
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) {
        return ~crc32c_sse42(crc, buf, len);
    }
#endif
    return ~crc32c_table(crc, buf, len);
}
