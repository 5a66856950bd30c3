/*
 * hotwriter: a guest program that writes as fast as it can and times
 * itself, for bench/bgsnap: how much a snapshot taken meanwhile slows it.
 *
 *   hotwriter [-s MiB] [-i MILLISECONDS]
 *
 * It rewrites one word in every 4 KiB page of a -s MiB region (default
 * 256), page after page, round after round, and times each write. Every
 * -i milliseconds (default 500) it prints
 *   hotwriter: t=SECONDS pages=N rate=PAGES/s max=US p99=US
 * where max and p99 are of the time each write took in that interval: a
 * write to a page the VMM has write-protected waits until the VMM has
 * saved the page, and shows there. Bad arguments: one line, exit 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
/* Write times: 1 us buckets below 1 ms, 1 ms buckets up to 10 s. */
#define FINE 1000u
#define BUCKETS (FINE + 10000u)

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned bucket(uint64_t ns)
{
    uint64_t us = ns / 1000;
    if (us < FINE)
        return (unsigned)us;
    uint64_t ms = us / 1000;
    return ms < BUCKETS - FINE ? (unsigned)(FINE + ms) : BUCKETS - 1;
}

static uint64_t bucket_us(unsigned b)
{
    return b < FINE ? b : (uint64_t)(b - FINE) * 1000;
}

static unsigned long number(char opt, const char *arg, unsigned long min, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max) {
        fprintf(stderr, "hotwriter: -%c %s: expected a number from %lu to %lu\n", opt, arg, min, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    unsigned long mib = 256, interval_ms = 500;
    int opt;
    while ((opt = getopt(argc, argv, "s:i:")) != -1) {
        switch (opt) {
        case 's': mib = number('s', optarg, 1, 1ul << 20); break;
        case 'i': interval_ms = number('i', optarg, 10, 3600000); break;
        default:
            fprintf(stderr, "hotwriter: usage: hotwriter [-s MiB] [-i MILLISECONDS]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t pages = (uint64_t)mib << 20 >> 12;
    volatile uint64_t *region = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    static uint64_t hist[BUCKETS];
    if (region == MAP_FAILED) {
        fprintf(stderr, "hotwriter: -s %lu: cannot allocate %lu MiB\n", mib, mib);
        return 2;
    }
    printf("hotwriter: start pages=%llu interval=%lums\n", (unsigned long long)pages, interval_ms);
    uint64_t start = now_ns(), interval_start = start, prev = start, written = 0, seq = 0;
    for (uint64_t p = 0;; p = (p + 1) % pages) {
        region[p * (PAGE / 8)] = ++seq;
        uint64_t t = now_ns();
        hist[bucket(t - prev)]++;
        prev = t;
        written++;
        if (t - interval_start < interval_ms * 1000000ull)
            continue;
        unsigned max = 0, p99 = 0;
        uint64_t below = 0;
        for (unsigned b = 0; b < BUCKETS; b++) {
            if (!hist[b])
                continue;
            max = b;
            if (below < written * 99 / 100)
                p99 = b;
            below += hist[b];
        }
        printf("hotwriter: t=%.3f pages=%llu rate=%.0f max=%llu p99=%llu\n", (t - start) / 1e9,
               (unsigned long long)written, written * 1e9 / (t - interval_start),
               (unsigned long long)bucket_us(max), (unsigned long long)bucket_us(p99));
        memset(hist, 0, sizeof(hist));
        written = 0;
        interval_start = prev = now_ns();
    }
}
