/*
 * memcheck: a guest program whose memory must survive save/restore and live
 * migration intact, for tests/system/migration-debian.sh.
 *
 *   memcheck [-s MiB] [-r PAGES-PER-SECOND] [-i MILLISECONDS] [-n ROUNDS]
 *
 * It owns a region of -s MiB (default 64) and a table of what each 4 KiB page
 * of it must hold. It rewrites the pages in turn, at -r pages a second (default
 * 0: as fast as it can): each write takes the next value of a global counter
 * (the page's generation) and fills the page with its index, that generation
 * and pseudo-random words derived from both; the table records the
 * generation and a running checksum of the region is updated. Every -i
 * milliseconds (default 1000) it checks the whole region against the table
 * and the checksum (each page is also checked just before it is rewritten)
 * and prints
 *   memcheck: gen=N writes=W ok
 * (N counts the checks, W the page writes so far), or
 *   memcheck: MISMATCH page P ...
 * and exits 1. A region restored from mixed points in time (a page older or
 * newer than the table says, a table entry older than its page) is caught,
 * since every page names the generation it was written with. With -n it
 * exits 0 after that many checks; otherwise it runs until killed.
 *
 * Only CLOCK_MONOTONIC paces it, and a jump of the clock (a restore much
 * later) just brings the next check forward. Bad arguments: one line naming
 * the option, exit 2.
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
#define WORDS (PAGE / sizeof(uint64_t))
#define BATCH 64u /* pages written between looks at the clock */

struct state {
    uint64_t *region;
    uint64_t *table; /* the generation each page must hold */
    uint64_t *hashes; /* and the page_hash of its content */
    uint64_t pages;
    uint64_t counter; /* the last generation handed out */
    uint64_t next; /* the next page to rewrite */
    uint64_t sum; /* running checksum: sum of page_hash over the region */
};

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Word W (>= 2) of page P at generation G. */
static uint64_t word(uint64_t p, uint64_t g, uint64_t w)
{
    return mix((p << 40) ^ (g << 12) ^ w);
}

static uint64_t page_hash(const uint64_t *page)
{
    uint64_t h = 0;
    for (unsigned w = 0; w < WORDS; w++)
        h = (h ^ page[w]) * 0x100000001b3ull + w;
    return h;
}

static void mismatch(const struct state *s, uint64_t p, const char *what, uint64_t w, uint64_t found,
                     uint64_t want) __attribute__((noreturn));

/* A page is checked before it is overwritten too: a stale page would
 * otherwise vanish unnoticed if its turn to be rewritten came before the
 * next full check. */
static void write_page(struct state *s, uint64_t p)
{
    uint64_t *page = s->region + p * WORDS;
    uint64_t old = page_hash(page);
    if (s->table[p] && old != s->hashes[p])
        mismatch(s, p, "content hash before rewrite,", 0, old, s->hashes[p]);
    uint64_t g = ++s->counter;
    page[0] = p;
    page[1] = g;
    for (unsigned w = 2; w < WORDS; w++)
        page[w] = word(p, g, w);
    s->hashes[p] = page_hash(page);
    s->sum += s->hashes[p] - old;
    s->table[p] = g;
}

static void mismatch(const struct state *s, uint64_t p, const char *what, uint64_t w, uint64_t found,
                     uint64_t want)
{
    printf("memcheck: MISMATCH page %llu (table gen %llu, page says gen %llu, counter %llu): %s word %llu "
           "is %#llx, want %#llx\n",
           (unsigned long long)p, (unsigned long long)s->table[p], (unsigned long long)s->region[p * WORDS + 1],
           (unsigned long long)s->counter, what, (unsigned long long)w, (unsigned long long)found,
           (unsigned long long)want);
    fflush(stdout);
    exit(1);
}

static void verify(const struct state *s)
{
    uint64_t sum = 0;
    for (uint64_t p = 0; p < s->pages; p++) {
        const uint64_t *page = s->region + p * WORDS;
        uint64_t g = s->table[p];
        if (g == 0 || g > s->counter)
            mismatch(s, p, "table entry out of range,", 0, g, s->counter);
        if (page[0] != p)
            mismatch(s, p, "index", 0, page[0], p);
        if (page[1] != g)
            mismatch(s, p, "generation", 1, page[1], g);
        for (unsigned w = 2; w < WORDS; w++)
            if (page[w] != word(p, g, w))
                mismatch(s, p, "data", w, page[w], word(p, g, w));
        sum += page_hash(page);
    }
    if (sum != s->sum) {
        printf("memcheck: MISMATCH checksum %#llx, running checksum %#llx\n", (unsigned long long)sum,
               (unsigned long long)s->sum);
        fflush(stdout);
        exit(1);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long number(char opt, const char *arg, unsigned long min, unsigned long max)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max) {
        fprintf(stderr, "memcheck: -%c %s: expected a number from %lu to %lu\n", opt, arg, min, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    unsigned long mib = 64, rate = 0, interval_ms = 1000, rounds = 0;
    int opt;
    while ((opt = getopt(argc, argv, "s:r:i:n:")) != -1) {
        switch (opt) {
        case 's': mib = number('s', optarg, 1, 1ul << 20); break;
        case 'r': rate = number('r', optarg, 0, 1ul << 30); break;
        case 'i': interval_ms = number('i', optarg, 1, 3600000); break;
        case 'n': rounds = number('n', optarg, 1, ~0ul); break;
        default:
            fprintf(stderr, "memcheck: usage: memcheck [-s MiB] [-r PAGES-PER-SECOND] [-i MILLISECONDS] [-n ROUNDS]\n");
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "memcheck: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct state s = { .pages = (uint64_t)mib << 20 >> 12 };
    s.region = mmap(NULL, s.pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    s.table = calloc(s.pages, sizeof(*s.table));
    s.hashes = calloc(s.pages, sizeof(*s.hashes));
    if (s.region == MAP_FAILED || !s.table || !s.hashes) {
        fprintf(stderr, "memcheck: -s %lu: cannot allocate %lu MiB\n", mib, mib);
        return 2;
    }
    for (uint64_t p = 0; p < s.pages; p++) /* mmap gave zeros: hash them in, then write */
        s.sum += page_hash(s.region + p * WORDS);
    for (uint64_t p = 0; p < s.pages; p++)
        write_page(&s, p);
    printf("memcheck: start pages=%llu rate=%lu interval=%lums\n", (unsigned long long)s.pages, rate, interval_ms);

    double start = now(), last_check = start, paced_from = start;
    uint64_t paced = 0; /* writes since paced_from */
    unsigned long gen = 0;
    for (;;) {
        double t = now();
        uint64_t n = BATCH;
        if (rate) {
            double due = (t - paced_from) * rate - paced;
            if (due > 10.0 * rate) { /* the clock jumped (a restore): do not catch up */
                paced_from = t;
                paced = 0;
                due = 0;
            }
            n = due < BATCH ? (uint64_t)due : BATCH;
        }
        for (uint64_t i = 0; i < n; i++) {
            write_page(&s, s.next);
            s.next = (s.next + 1) % s.pages;
        }
        paced += n;
        if (t - last_check >= interval_ms / 1000.0) {
            verify(&s);
            printf("memcheck: gen=%lu writes=%llu ok\n", ++gen, (unsigned long long)s.counter);
            last_check = now();
            if (rounds && gen >= rounds)
                return 0;
        } else if (n == 0) {
            /* Sleep until a whole batch is due (or the next check): one
             * timer a batch, not one a millisecond, which a nested guest
             * pays for in exits. */
            double wait = (BATCH - ((t - paced_from) * rate - paced)) / rate;
            double to_check = last_check + interval_ms / 1000.0 - t;
            if (to_check < wait)
                wait = to_check;
            if (wait > 0) {
                struct timespec pause = { (time_t)wait, (long)((wait - (time_t)wait) * 1e9) };
                nanosleep(&pause, NULL);
            }
        }
    }
}
