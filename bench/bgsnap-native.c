/*
 * bench/bgsnap-native: the background snapshot engine on the host, no VM.
 *
 * N GiB of anonymous memory (mapped and advised like Vireo's guest RAM in
 * hw/i386/pc.c) is filled with data, registered as one RamBlock and
 * snapshotted by bgsnap_begin / bgsnap_save / bgsnap_end to a file (tmpfs
 * by default) while W writer threads store one word per page, in
 * sequential or random page order. Measured:
 *
 * - fault service latency: each writer times its first store to each page
 *   after the instant (only such a store can hit a protected page, since a
 *   page once unprotected stays so); one that took longer than the
 *   threshold (1 us) waited on a write fault. p50 / p99 / max over all
 *   writers. Stalls over the threshold on other stores are counted apart:
 *   they are the scheduler's noise floor, not faults.
 * - the writers' store rate during the snapshot against just before it;
 * - snapshot throughput (GiB of RAM saved per second) without and with
 *   writers, against a plain memcpy of the same memory into a buffer and a
 *   plain write() of it to the same target;
 * - the bare uffd-wp round trip on this host ("floor", on a 256 MiB
 *   mapping of its own): one writer, one
 *   handler thread that unprotects each faulting page at once and saves
 *   nothing. This is the figure that compares with the 2.676 us per page
 *   anchor (sequential writes, 2022 COW-PTE measurements); the engine's
 *   latency is that plus the wait for its walk to look at the faults.
 *
 * Speed is only printed here, never asserted.
 */
#define G_LOG_DOMAIN "bench"
#include "migration/background-snapshot.h"
#include "util/userfaultfd.h"
#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GIB (1ull << 30)
/* The writers look at the main thread's command every this many stores. */
#define WRITER_BATCH 256u
/* Pages the floor measurement writes: enough for a stable p99, short. */
#define FLOOR_PAGES 65536u

typedef enum { CMD_RUN, CMD_PAUSE, CMD_STOP } WriterCmd;

typedef struct Bench Bench;

typedef struct Writer {
    Bench *bench;
    unsigned id;
    bool random;
    uint64_t lo, hi;          /* the pages a sequential writer walks */
    _Atomic uint64_t stores;  /* published every batch */
    uint64_t *touched;        /* a bit per page stored to since the instant */
    uint32_t *stall_ns;       /* first stores that took over the threshold */
    size_t nstall;
    uint64_t other_stalls;    /* over the threshold on a page already written: noise */
    GThread *thread;
} Writer;

struct Bench {
    uint8_t *mem;
    uint64_t size, pages;
    uint64_t threshold_ns;
    _Atomic int cmd;
    _Atomic unsigned paused;
    _Atomic bool tracking; /* writers classify stores (a snapshot runs) */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static gpointer writer_main(gpointer opaque)
{
    Writer *w = opaque;
    Bench *b = w->bench;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (w->id + 1), page = w->lo, stores = 0;
    uint64_t prev = now_ns();
    for (;;) {
        int cmd = atomic_load_explicit(&b->cmd, memory_order_acquire);
        if (cmd == CMD_STOP) {
            break;
        }
        if (cmd == CMD_PAUSE) {
            /* Like a paused vCPU: nothing may write while the engine protects. */
            atomic_fetch_add(&b->paused, 1);
            while (atomic_load_explicit(&b->cmd, memory_order_acquire) == CMD_PAUSE) {
                g_usleep(20);
            }
            atomic_fetch_sub(&b->paused, 1);
            prev = now_ns();
            continue;
        }
        bool tracking = atomic_load_explicit(&b->tracking, memory_order_acquire);
        for (unsigned k = 0; k < WRITER_BATCH; k++) {
            if (w->random) {
                page = xorshift(&rng) % b->pages;
            } else if (++page >= w->hi) {
                page = w->lo;
            }
            bool first = tracking && !(w->touched[page / 64] >> (page % 64) & 1);
            /* Each writer its own word of the page: the writers never share a line. */
            volatile uint64_t *word = (volatile uint64_t *)(b->mem + page * RAM_PAGE_SIZE) + w->id;
            *word = stores;
            uint64_t t = now_ns(), gap = t - prev;
            prev = t;
            if (first) {
                w->touched[page / 64] |= 1ull << (page % 64);
                if (gap > b->threshold_ns) {
                    w->stall_ns[w->nstall++] = (uint32_t)MIN(gap, UINT32_MAX);
                }
            } else if (gap > b->threshold_ns) {
                w->other_stalls++;
            }
            stores++;
        }
        atomic_store_explicit(&w->stores, stores, memory_order_relaxed);
    }
    return NULL;
}

static uint64_t total_stores(Writer *ws, unsigned n)
{
    uint64_t s = 0;
    for (unsigned i = 0; i < n; i++) {
        s += atomic_load_explicit(&ws[i].stores, memory_order_relaxed);
    }
    return s;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

typedef struct Latency {
    uint64_t count;
    double p50_us, p99_us, max_us;
} Latency;

static Latency latency_of(uint32_t *ns, size_t n)
{
    Latency l = { .count = n };
    if (n) {
        qsort(ns, n, sizeof(*ns), cmp_u32);
        l.p50_us = ns[n / 2] / 1e3;
        l.p99_us = ns[MIN(n - 1, n * 99 / 100)] / 1e3;
        l.max_us = ns[n - 1] / 1e3;
    }
    return l;
}

static int open_target(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        g_printerr("bgsnap-native: %s: %s\n", path, g_strerror(errno));
        exit(1);
    }
    return fd;
}

static bool never_cancelled(void *opaque)
{
    return false;
}

static int64_t no_pacing(void *opaque, const RamStats *ram)
{
    return 0;
}

static const BgSnapshotOps bench_ops = { .cancelled = never_cancelled, .pace = no_pacing };

typedef struct SnapResult {
    double begin_ms, save_s, end_ms, pause_ms, gib_s;
    BgSnapshotStats engine;
    RamStats ram;
} SnapResult;

/* One snapshot of the whole memory to @target; the caller pauses writers around begin. */
static SnapResult snapshot(Bench *b, GPtrArray *blocks, const char *target, Writer *ws, unsigned nw)
{
    SnapResult r = { 0 };
    int fd = open_target(target);
    g_autoptr(MigWriter) mw = mig_writer_new(fd);
    g_autoptr(GError) err = NULL;
    BgSnapshot *s = bgsnap_new(blocks, mw, &err); /* registers, outside the pause as Vireo does */
    uint64_t t0 = now_ns();
    if (nw) {
        atomic_store(&b->cmd, CMD_PAUSE);
        while (atomic_load(&b->paused) < nw) {
            g_usleep(10);
        }
        for (unsigned i = 0; i < nw; i++) {
            memset(ws[i].touched, 0, (b->pages + 63) / 64 * 8);
        }
        atomic_store(&b->tracking, true);
    }
    uint64_t t1 = now_ns();
    if (!s || !bgsnap_begin(s, &err)) {
        g_printerr("bgsnap-native: bgsnap_begin: %s\n", err->message);
        exit(1);
    }
    uint64_t t2 = now_ns();
    if (nw) {
        atomic_store(&b->cmd, CMD_RUN);
    }
    uint64_t t3 = now_ns();
    if (!bgsnap_save(s, &bench_ops, NULL, &r.ram, &err) || !mig_writer_flush(mw, &err)) {
        g_printerr("bgsnap-native: bgsnap_save: %s\n", err->message);
        exit(1);
    }
    uint64_t t4 = now_ns();
    bgsnap_stats(s, &r.engine);
    bgsnap_end(s);
    uint64_t t5 = now_ns();
    atomic_store(&b->tracking, false);
    close(fd);
    r.pause_ms = (t3 - t0) / 1e6;
    r.begin_ms = (t2 - t1) / 1e6;
    r.save_s = secs(t4 - t3);
    r.end_ms = (t5 - t4) / 1e6;
    r.gib_s = (double)b->size / GIB / r.save_s;
    return r;
}

typedef struct FloorResult {
    Latency lat;
    uint64_t faults;
} FloorResult;

typedef struct FloorHandler {
    int uffd;
    _Atomic bool stop;
    uint64_t served;
} FloorHandler;

/* Unprotect each faulting page at once: the kernel's round trip alone. */
static gpointer floor_handler(gpointer opaque)
{
    FloorHandler *h = opaque;
    while (!atomic_load(&h->stop)) {
        struct pollfd pfd = { .fd = h->uffd, .events = POLLIN };
        if (poll(&pfd, 1, 10) <= 0) {
            continue;
        }
        uint64_t addrs[64];
        int n = uffd_read_wp_faults(h->uffd, addrs, 64, NULL);
        for (int i = 0; i < n; i++) {
            void *page = (void *)(uintptr_t)(addrs[i] & ~(uint64_t)(RAM_PAGE_SIZE - 1));
            uffd_write_protect(h->uffd, page, RAM_PAGE_SIZE, false, NULL);
            h->served++;
        }
    }
    return NULL;
}

/* Anonymous memory advised as Vireo's guest RAM is, every page data. */
static uint8_t *map_filled(uint64_t size, bool thp)
{
    uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
        g_printerr("bgsnap-native: %" G_GUINT64_FORMAT " MiB: %s\n", size >> 20, g_strerror(errno));
        exit(1);
    }
    if (thp) {
        madvise(mem, size, MADV_HUGEPAGE);
    }
    for (uint64_t p = 0; p < size / RAM_PAGE_SIZE; p++) {
        memset(mem + p * RAM_PAGE_SIZE, (int)(p % 255) + 1, RAM_PAGE_SIZE);
    }
    return mem;
}

/* MiB of this process's anonymous memory mapped by huge pages. */
static uint64_t anon_huge_mib(void)
{
    g_autofree char *text = NULL;
    if (!g_file_get_contents("/proc/self/smaps_rollup", &text, NULL, NULL)) {
        return 0;
    }
    const char *line = strstr(text, "AnonHugePages:");
    return line ? g_ascii_strtoull(line + strlen("AnonHugePages:"), NULL, 10) / 1024 : 0;
}

/*
 * On a mapping of its own: unprotecting page by page splits huge pages,
 * which would change what the snapshots after it measure.
 */
static FloorResult floor_measure(bool thp)
{
    uint64_t pages = FLOOR_PAGES;
    uint8_t *mem = map_filled(pages * RAM_PAGE_SIZE, thp);
    g_autoptr(GError) err = NULL;
    FloorHandler h = { .uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, &err) };
    if (h.uffd < 0 || !uffd_register_wp(h.uffd, mem, pages * RAM_PAGE_SIZE, &err) ||
        !uffd_write_protect(h.uffd, mem, pages * RAM_PAGE_SIZE, true, &err)) {
        g_printerr("bgsnap-native: floor: %s\n", err->message);
        exit(1);
    }
    GThread *t = g_thread_new("floor", floor_handler, &h);
    g_autofree uint32_t *ns = g_new(uint32_t, pages);
    for (uint64_t p = 0; p < pages; p++) {
        volatile uint64_t *word = (volatile uint64_t *)(mem + p * RAM_PAGE_SIZE);
        uint64_t t0 = now_ns();
        *word = p;
        ns[p] = (uint32_t)MIN(now_ns() - t0, UINT32_MAX);
    }
    atomic_store(&h.stop, true);
    g_thread_join(t);
    uffd_write_protect(h.uffd, mem, pages * RAM_PAGE_SIZE, false, NULL);
    uffd_unregister(h.uffd, mem, pages * RAM_PAGE_SIZE, NULL);
    close(h.uffd);
    munmap(mem, pages * RAM_PAGE_SIZE);
    return (FloorResult){ .lat = latency_of(ns, pages), .faults = h.served };
}

static double memcpy_gib_s(Bench *b)
{
    uint8_t *dst = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g_assert(dst != MAP_FAILED);
    madvise(dst, b->size, MADV_HUGEPAGE);
    /* Fault the buffer in first: the snapshot's scratch and file pages are not what is compared. */
    memset(dst, 1, b->size);
    uint64_t t0 = now_ns();
    memcpy(dst, b->mem, b->size);
    uint64_t t1 = now_ns();
    munmap(dst, b->size);
    return (double)b->size / GIB / secs(t1 - t0);
}

static double write_gib_s(Bench *b, const char *target)
{
    int fd = open_target(target);
    uint64_t t0 = now_ns();
    /* In pieces of the migration writer's buffer (1 MiB), as it drains. */
    for (uint64_t off = 0; off < b->size;) {
        ssize_t n = write(fd, b->mem + off, MIN(b->size - off, 1u << 20));
        if (n <= 0) {
            g_printerr("bgsnap-native: write %s: %s\n", target, n < 0 ? g_strerror(errno) : "short");
            exit(1);
        }
        off += (uint64_t)n;
    }
    uint64_t t1 = now_ns();
    close(fd);
    return (double)b->size / GIB / secs(t1 - t0);
}

typedef struct Run {
    unsigned writers;
    bool random;
    SnapResult snap;
    Latency lat;
    uint64_t other_stalls;
    double rate_before, rate_during; /* stores per second, all writers */
} Run;

static Run run_with_writers(Bench *b, GPtrArray *blocks, const char *target, unsigned nw, bool random,
                            unsigned before_ms)
{
    Run r = { .writers = nw, .random = random };
    Writer *ws = g_new0(Writer, nw);
    atomic_store(&b->cmd, CMD_RUN);
    for (unsigned i = 0; i < nw; i++) {
        ws[i] = (Writer){ .bench = b, .id = i, .random = random };
        ws[i].lo = b->pages * i / nw;
        ws[i].hi = b->pages * (i + 1) / nw;
        ws[i].touched = g_new0(uint64_t, (b->pages + 63) / 64);
        /* A writer's first store to a page happens at most once per page. */
        ws[i].stall_ns = g_new(uint32_t, b->pages);
        ws[i].thread = g_thread_new("writer", writer_main, &ws[i]);
    }
    g_usleep(50000); /* past thread start-up */
    uint64_t s0 = total_stores(ws, nw), t0 = now_ns();
    g_usleep(before_ms * 1000);
    uint64_t s1 = total_stores(ws, nw), t1 = now_ns();
    r.rate_before = (double)(s1 - s0) / secs(t1 - t0);
    uint64_t s2 = total_stores(ws, nw);
    r.snap = snapshot(b, blocks, target, ws, nw);
    uint64_t s3 = total_stores(ws, nw);
    /* The stores of the pause are few; the rate is over the save. */
    r.rate_during = (double)(s3 - s2) / r.snap.save_s;
    atomic_store(&b->cmd, CMD_STOP);
    size_t total = 0;
    for (unsigned i = 0; i < nw; i++) {
        g_thread_join(ws[i].thread);
        total += ws[i].nstall;
        r.other_stalls += ws[i].other_stalls;
    }
    g_autofree uint32_t *all = g_new(uint32_t, MAX(total, 1));
    for (unsigned i = 0, at = 0; i < nw; i++) {
        memcpy(all + at, ws[i].stall_ns, ws[i].nstall * sizeof(uint32_t));
        at += ws[i].nstall;
        g_free(ws[i].touched);
        g_free(ws[i].stall_ns);
    }
    r.lat = latency_of(all, total);
    g_free(ws);
    return r;
}

static void json_snap(JsonBuilder *j, const SnapResult *s)
{
    json_builder_set_member_name(j, "save_s");
    json_builder_add_double_value(j, s->save_s);
    json_builder_set_member_name(j, "gib_per_s");
    json_builder_add_double_value(j, s->gib_s);
    json_builder_set_member_name(j, "begin_ms");
    json_builder_add_double_value(j, s->begin_ms);
    json_builder_set_member_name(j, "pause_ms");
    json_builder_add_double_value(j, s->pause_ms);
    json_builder_set_member_name(j, "end_ms");
    json_builder_add_double_value(j, s->end_ms);
    json_builder_set_member_name(j, "pages");
    json_builder_add_int_value(j, (gint64)s->ram.pages);
    json_builder_set_member_name(j, "zero_pages");
    json_builder_add_int_value(j, (gint64)s->ram.zero_pages);
    json_builder_set_member_name(j, "engine_faults");
    json_builder_add_int_value(j, (gint64)s->engine.faults);
    json_builder_set_member_name(j, "engine_fault_pages");
    json_builder_add_int_value(j, (gint64)s->engine.fault_pages);
}

static void json_latency(JsonBuilder *j, const char *name, const Latency *l)
{
    json_builder_set_member_name(j, name);
    json_builder_begin_object(j);
    json_builder_set_member_name(j, "count");
    json_builder_add_int_value(j, (gint64)l->count);
    json_builder_set_member_name(j, "p50_us");
    json_builder_add_double_value(j, l->p50_us);
    json_builder_set_member_name(j, "p99_us");
    json_builder_add_double_value(j, l->p99_us);
    json_builder_set_member_name(j, "max_us");
    json_builder_add_double_value(j, l->max_us);
    json_builder_end_object(j);
}

int main(int argc, char **argv)
{
    gint size_gib = 1, before_ms = 300, threshold_ns = 1000;
    g_autofree char *writers_opt = NULL, *orders_opt = NULL, *target = NULL, *json_path = NULL;
    gboolean no_thp = FALSE;
    GOptionEntry entries[] = {
        { "size", 's', 0, G_OPTION_ARG_INT, &size_gib, "GiB of memory (default 1)", "N" },
        { "writers", 'w', 0, G_OPTION_ARG_STRING, &writers_opt, "writer thread counts, comma-separated (default 2)",
          "W[,W...]" },
        { "orders", 'o', 0, G_OPTION_ARG_STRING, &orders_opt, "seq, random or both (default seq,random)", "LIST" },
        { "target", 't', 0, G_OPTION_ARG_FILENAME, &target,
          "file the snapshot and the write() baseline go to (default /dev/shm/bgsnap-native.img; /dev/null works)",
          "PATH" },
        { "before-ms", 0, 0, G_OPTION_ARG_INT, &before_ms, "writer rate measured this long before (default 300)",
          "MS" },
        { "threshold-ns", 0, 0, G_OPTION_ARG_INT, &threshold_ns, "a first store slower than this waited on a fault "
          "(default 1000)", "NS" },
        { "no-thp", 0, 0, G_OPTION_ARG_NONE, &no_thp, "do not advise huge pages (Vireo does)", NULL },
        { "json", 'j', 0, G_OPTION_ARG_FILENAME, &json_path, "also write the results as JSON", "FILE" },
        { NULL },
    };
    g_autoptr(GOptionContext) ctx = g_option_context_new("- the background snapshot engine on the host");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_autoptr(GError) err = NULL;
    if (!g_option_context_parse(ctx, &argc, &argv, &err) || size_gib < 1 || before_ms < 1 || threshold_ns < 1) {
        g_printerr("bgsnap-native: %s\n", err ? err->message : "--size, --before-ms and --threshold-ns must be >= 1");
        return 2;
    }
    if (!bgsnap_supported(&err)) {
        g_printerr("bgsnap-native: %s\n", err->message);
        return 77;
    }
    g_auto(GStrv) wlist = g_strsplit(writers_opt ? writers_opt : "2", ",", -1);
    g_auto(GStrv) olist = g_strsplit(orders_opt ? orders_opt : "seq,random", ",", -1);
    for (char **o = olist; *o; o++) {
        if (strcmp(*o, "seq") && strcmp(*o, "random")) {
            g_printerr("bgsnap-native: --orders: '%s' is neither seq nor random\n", *o);
            return 2;
        }
    }
    const char *tgt = target ? target : "/dev/shm/bgsnap-native.img";

    Bench b = { .size = (uint64_t)size_gib * GIB, .threshold_ns = (uint64_t)threshold_ns };
    b.pages = b.size / RAM_PAGE_SIZE;
    /* Every page data, none zero: the engine copies, checksums and writes them all. */
    b.mem = map_filled(b.size, !no_thp);
    RamBlock block = { .name = "pc.ram", .host = b.mem, .size = b.size };
    g_autoptr(GPtrArray) blocks = g_ptr_array_new();
    g_ptr_array_add(blocks, &block);

    g_debug("filled");
    double memcpy_rate = memcpy_gib_s(&b);
    g_debug("memcpy done");
    double write_rate = write_gib_s(&b, tgt);
    g_debug("write() done");
    FloorResult floor = floor_measure(!no_thp);
    g_debug("floor done");
    uint64_t huge_before = anon_huge_mib();
    SnapResult idle = snapshot(&b, blocks, tgt, NULL, 0);
    uint64_t huge_after = anon_huge_mib();
    g_debug("idle snapshot done");
    GArray *runs = g_array_new(FALSE, FALSE, sizeof(Run));
    for (char **w = wlist; *w; w++) {
        unsigned nw = (unsigned)g_ascii_strtoull(*w, NULL, 10);
        if (nw < 1 || nw > 64) {
            g_printerr("bgsnap-native: --writers: '%s' is not 1-64\n", *w);
            return 2;
        }
        for (char **o = olist; *o; o++) {
            Run r = run_with_writers(&b, blocks, tgt, nw, strcmp(*o, "random") == 0, (unsigned)before_ms);
            g_array_append_val(runs, r);
            g_debug("W=%u %s done", nw, *o);
        }
    }
    unlink(tgt);

    printf("bgsnap-native: %d GiB, THP %s, target %s, %u online CPUs, fault = first store to a page > %d ns\n",
           size_gib, no_thp ? "off" : "advised", tgt, g_get_num_processors(), threshold_ns);
    printf("  memcpy of the memory           %6.2f GiB/s\n", memcpy_rate);
    printf("  write() of it to the target    %6.2f GiB/s\n", write_rate);
    printf("  snapshot, no writers           %6.2f GiB/s (save %.2f s, begin %.1f ms, end %.1f ms)\n", idle.gib_s,
           idle.save_s, idle.begin_ms, idle.end_ms);
    printf("  huge pages of the memory       %" G_GUINT64_FORMAT " MiB before the first snapshot, %" G_GUINT64_FORMAT
           " MiB after it\n", huge_before, huge_after);
    printf("  bare uffd-wp round trip, seq   p50 %.2f us  p99 %.2f us  max %.0f us over %" G_GUINT64_FORMAT
           " faults   <- compare with the anchor 2.676 us\n",
           floor.lat.p50_us, floor.lat.p99_us, floor.lat.max_us, floor.faults);
    printf("\n  W order   GiB/s  save_s begin_ms pause_ms  faults  p50_us  p99_us   max_us  noise  engine_faults/pages  "
           "rate_before  rate_during  ratio\n");
    for (guint i = 0; i < runs->len; i++) {
        const Run *r = &g_array_index(runs, Run, i);
        printf("  %u %-6s %6.2f %7.2f %8.1f %8.1f %7" G_GUINT64_FORMAT " %7.1f %7.1f %8.0f %6" G_GUINT64_FORMAT
               "  %8" G_GUINT64_FORMAT "/%-9" G_GUINT64_FORMAT "  %9.1fM/s  %9.1fM/s  %5.3f\n",
               r->writers, r->random ? "random" : "seq", r->snap.gib_s, r->snap.save_s, r->snap.begin_ms, r->snap.pause_ms,
               r->lat.count, r->lat.p50_us, r->lat.p99_us, r->lat.max_us, r->other_stalls, r->snap.engine.faults,
               r->snap.engine.fault_pages, r->rate_before / 1e6, r->rate_during / 1e6,
               r->rate_during / r->rate_before);
    }
    printf("  (faults/p50/p99/max: the writers' fault service latency, the engine's wait included; noise: stalls\n"
           "   over the threshold on pages already written, i.e. scheduling, not faults; pause_ms: writers stopped,\n"
           "   begin_ms of it in bgsnap_begin; rates: stores/s of all writers before and during the save)\n");

    if (json_path) {
        g_autoptr(JsonBuilder) j = json_builder_new();
        json_builder_begin_object(j);
        json_builder_set_member_name(j, "size_gib");
        json_builder_add_int_value(j, size_gib);
        json_builder_set_member_name(j, "thp");
        json_builder_add_boolean_value(j, !no_thp);
        json_builder_set_member_name(j, "target");
        json_builder_add_string_value(j, tgt);
        json_builder_set_member_name(j, "cpus");
        json_builder_add_int_value(j, g_get_num_processors());
        json_builder_set_member_name(j, "threshold_ns");
        json_builder_add_int_value(j, threshold_ns);
        json_builder_set_member_name(j, "memcpy_gib_per_s");
        json_builder_add_double_value(j, memcpy_rate);
        json_builder_set_member_name(j, "write_gib_per_s");
        json_builder_add_double_value(j, write_rate);
        json_builder_set_member_name(j, "anon_huge_mib_before");
        json_builder_add_int_value(j, (gint64)huge_before);
        json_builder_set_member_name(j, "anon_huge_mib_after_first_snapshot");
        json_builder_add_int_value(j, (gint64)huge_after);
        json_builder_set_member_name(j, "anchor_us");
        json_builder_add_double_value(j, 2.676);
        json_builder_set_member_name(j, "floor");
        json_builder_begin_object(j);
        json_latency(j, "latency", &floor.lat);
        json_builder_set_member_name(j, "note");
        json_builder_add_string_value(j, "bare uffd-wp round trip, sequential: compares with anchor_us");
        json_builder_end_object(j);
        json_builder_set_member_name(j, "idle");
        json_builder_begin_object(j);
        json_snap(j, &idle);
        json_builder_end_object(j);
        json_builder_set_member_name(j, "runs");
        json_builder_begin_array(j);
        for (guint i = 0; i < runs->len; i++) {
            const Run *r = &g_array_index(runs, Run, i);
            json_builder_begin_object(j);
            json_builder_set_member_name(j, "writers");
            json_builder_add_int_value(j, r->writers);
            json_builder_set_member_name(j, "order");
            json_builder_add_string_value(j, r->random ? "random" : "seq");
            json_snap(j, &r->snap);
            json_latency(j, "fault_latency", &r->lat);
            json_builder_set_member_name(j, "noise_stalls");
            json_builder_add_int_value(j, (gint64)r->other_stalls);
            json_builder_set_member_name(j, "stores_per_s_before");
            json_builder_add_double_value(j, r->rate_before);
            json_builder_set_member_name(j, "stores_per_s_during");
            json_builder_add_double_value(j, r->rate_during);
            json_builder_end_object(j);
        }
        json_builder_end_array(j);
        json_builder_end_object(j);
        g_autoptr(JsonGenerator) gen = json_generator_new();
        g_autoptr(JsonNode) root = json_builder_get_root(j);
        json_generator_set_root(gen, root);
        json_generator_set_pretty(gen, TRUE);
        if (!json_generator_to_file(gen, json_path, &err)) {
            g_printerr("bgsnap-native: %s: %s\n", json_path, err->message);
            return 1;
        }
    }
    g_array_unref(runs);
    munmap(b.mem, b.size);
    return 0;
}
