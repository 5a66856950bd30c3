/* See include/util/page-copy.h. */
#include "util/page-copy.h"
#include <glib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"))) static void copy_avx2(void *dst, const void *src, size_t len)
{
    __m256i *d = dst;
    const __m256i *s = src;
    for (size_t i = 0; i < len / 32; i += 4) {
        __m256i a = _mm256_loadu_si256(s + i), b = _mm256_loadu_si256(s + i + 1);
        __m256i c = _mm256_loadu_si256(s + i + 2), e = _mm256_loadu_si256(s + i + 3);
        _mm256_storeu_si256(d + i, a);
        _mm256_storeu_si256(d + i + 1, b);
        _mm256_storeu_si256(d + i + 2, c);
        _mm256_storeu_si256(d + i + 3, e);
    }
}

static void copy_sse2(void *dst, const void *src, size_t len)
{
    __m128i *d = dst;
    const __m128i *s = src;
    for (size_t i = 0; i < len / 16; i += 4) {
        __m128i a = _mm_loadu_si128(s + i), b = _mm_loadu_si128(s + i + 1);
        __m128i c = _mm_loadu_si128(s + i + 2), e = _mm_loadu_si128(s + i + 3);
        _mm_storeu_si128(d + i, a);
        _mm_storeu_si128(d + i + 1, b);
        _mm_storeu_si128(d + i + 2, c);
        _mm_storeu_si128(d + i + 3, e);
    }
}

void page_copy(void *dst, const void *src, size_t len)
{
    static void (*copy)(void *, const void *, size_t);
    void (*chosen)(void *, const void *, size_t) = __atomic_load_n(&copy, __ATOMIC_RELAXED);
    if (G_UNLIKELY(!chosen)) {
        chosen = __builtin_cpu_supports("avx2") ? copy_avx2 : copy_sse2;
        __atomic_store_n(&copy, chosen, __ATOMIC_RELAXED);
    }
    g_assert(len % 128 == 0);
    chosen(dst, src, len);
}
#else
void page_copy(void *dst, const void *src, size_t len)
{
    memcpy(dst, src, len);
}
#endif

void buffer_copy(void *dst, const void *src, size_t len)
{
    if (len % 128 == 0) {
        page_copy(dst, src, len);
    } else {
        memcpy(dst, src, len);
    }
}
