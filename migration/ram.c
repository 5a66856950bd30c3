/*
 * RAM sections (include/migration/ram.h). Payload: u64 first page, u32
 * count, count kind bytes (0 zero, 1 data), then the RAM_PAGE_SIZE bytes of
 * each data page in order. The pages come last and together so both sides
 * move them between the channel and guest RAM in one writev/readv, never
 * through a buffer of ours.
 */
#include "migration/ram.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/page-copy.h"
#include "compat/linux-uapi.h"
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)

bool ram_page_is_zero(const uint8_t *page)
{
    const uint64_t *w = (const uint64_t *)page;
    for (unsigned i = 0; i < RAM_PAGE_SIZE / 8; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) {
            return false;
        }
    }
    return true;
}

/*
 * The pages of [host, host + pages) in memory or swapped out, by
 * PAGEMAP_SCAN (Linux 6.7): a list of ranges, where reading pagemap itself
 * returns 8 bytes a page (2 MiB for 1 GiB, 26 ms in the test rig, in a
 * background snapshot's pause). Clears their bits in @untouched; false if
 * the kernel has no PAGEMAP_SCAN.
 */
static bool scan_touched(int fd, const uint8_t *host, uint64_t pages, uint64_t *untouched)
{
    uintptr_t start = (uintptr_t)host, end = start + pages * RAM_PAGE_SIZE;
    struct page_region regions[128];
    while (start < end) {
        struct pm_scan_arg arg = {
            .size = sizeof(arg),
            .start = start,
            .end = end,
            .vec = (uintptr_t)regions,
            .vec_len = G_N_ELEMENTS(regions),
            .category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            .return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        };
        int n = ioctl(fd, PAGEMAP_SCAN, &arg);
        if (n < 0) {
            return false;
        }
        for (int i = 0; i < n; i++) {
            for (uint64_t p = (regions[i].start - (uintptr_t)host) / RAM_PAGE_SIZE;
                 p < (regions[i].end - (uintptr_t)host) / RAM_PAGE_SIZE; p++) {
                untouched[p / 64] &= ~(1ULL << (p % 64));
            }
        }
        start = arg.walk_end;
    }
    return true;
}

/* Reading a page to find out it is zero would fault it in: on a big, mostly idle guest that is most of a save's and a restore's time. */
void ram_untouched_pages(const uint8_t *host, uint64_t pages, uint64_t *untouched)
{
    static gsize once;
    static int fd = -1;
    static gint scan = 1; /* PAGEMAP_SCAN works, until it fails once */
    if (g_once_init_enter(&once)) {
        fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        g_once_init_leave(&once, 1);
    }
    size_t words = (pages + 63) / 64;
    if (fd >= 0 && (uintptr_t)host % RAM_PAGE_SIZE == 0 && g_atomic_int_get(&scan)) {
        memset(untouched, 0xff, words * 8);
        if (scan_touched(fd, host, pages, untouched)) {
            return;
        }
        g_atomic_int_set(&scan, 0);
    }
    memset(untouched, 0, words * 8);
    uint64_t entries[RAM_SECTION_PAGES];
    for (uint64_t done = 0; done < pages; done += RAM_SECTION_PAGES) {
        unsigned count = (unsigned)MIN(RAM_SECTION_PAGES, pages - done);
        uintptr_t page = (uintptr_t)host / RAM_PAGE_SIZE + done;
        if (fd < 0 || (uintptr_t)host % RAM_PAGE_SIZE ||
            pread(fd, entries, count * 8, (off_t)(page * 8)) != (ssize_t)(count * 8)) {
            memset(untouched, 0, words * 8);
            return;
        }
        for (unsigned i = 0; i < count; i++) {
            if (!(entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED))) {
                untouched[(done + i) / 64] |= 1ULL << ((done + i) % 64);
            }
        }
    }
}

#define RAM_HEAD_LEN 12

static void put_head(uint8_t *head, uint64_t first, unsigned count)
{
    for (unsigned i = 0; i < 8; i++) {
        head[i] = first >> (8 * i);
    }
    for (unsigned i = 0; i < 4; i++) {
        head[8 + i] = count >> (8 * i);
    }
}

static void get_head(const uint8_t *head, uint64_t *first, uint64_t *count)
{
    *first = *count = 0;
    for (unsigned i = 0; i < 8; i++) {
        *first |= (uint64_t)head[i] << (8 * i);
    }
    for (unsigned i = 0; i < 4; i++) {
        *count |= (uint64_t)head[8 + i] << (8 * i);
    }
}

void ram_write_section(MigWriter *w, const RamBlock *block, uint64_t first, unsigned count, const uint8_t *kinds,
                       const struct iovec *data, unsigned n, RamStats *stats)
{
    g_assert(count <= RAM_SECTION_PAGES && (first + count) * RAM_PAGE_SIZE <= block->size);
    uint8_t head[RAM_HEAD_LEN];
    put_head(head, first, count);
    size_t data_len = 0;
    for (unsigned i = 0; i < n; i++) {
        data_len += data[i].iov_len;
    }
    MigSectionHeader h;
    size_t len = sizeof(head) + count + data_len;
    uint32_t crc = mig_section_begin(&h, MIG_SECTION_RAM, block->name, 0, RAM_SECTION_VERSION, len);
    crc = crc32c(crc32c(crc, head, sizeof(head)), kinds, count);
    struct iovec iov[2 + RAM_SECTION_PAGES] = { { head, sizeof(head) }, { (void *)kinds, count } };
    g_assert(n <= RAM_SECTION_PAGES);
    for (unsigned i = 0; i < n; i++) {
        crc = crc32c(crc, data[i].iov_base, data[i].iov_len);
        iov[2 + i] = data[i];
    }
    mig_section_write(w, &h, iov, 2 + n, crc);
    ram_stats_add(stats, count, count - data_len / RAM_PAGE_SIZE, len);
}

/* The kind of each page of [first, first + count) into @kinds; the number of data pages. */
static unsigned page_kinds(const RamBlock *block, uint64_t first, unsigned count, const uint64_t *zero, uint8_t *kinds)
{
    uint64_t untouched[RAM_SECTION_PAGES / 64];
    const uint8_t *base = block->host + first * RAM_PAGE_SIZE;
    if (zero) {
        memset(untouched, 0, sizeof(untouched));
        for (unsigned i = 0; i < count; i++) {
            untouched[i / 64] |= (zero[(first + i) / 64] >> ((first + i) % 64) & 1) << (i % 64);
        }
    } else {
        ram_untouched_pages(base, count, untouched);
    }
    unsigned data = 0;
    for (unsigned i = 0; i < count; i++) {
        bool is_zero = (untouched[i / 64] >> (i % 64) & 1) || ram_page_is_zero(base + (size_t)i * RAM_PAGE_SIZE);
        kinds[i] = is_zero ? RAM_PAGE_ZERO : RAM_PAGE_DATA;
        data += !is_zero;
    }
    return data;
}

void ram_save_pages(MigWriter *w, const RamBlock *block, uint64_t first, unsigned count, const uint64_t *zero,
                    uint8_t *scratch, RamStats *stats)
{
    g_assert(count <= RAM_SECTION_PAGES && (first + count) * RAM_PAGE_SIZE <= block->size);
    uint8_t kinds[RAM_SECTION_PAGES];
    page_kinds(block, first, count, zero, kinds);
    /*
     * The guest may be running: the pages are copied out first and the
     * checksum taken of the copy, so what is sent is exactly what the CRC
     * covers. A page written meanwhile is sent again: the dirty log has it.
     */
    uint8_t *out = scratch;
    for (unsigned i = 0; i < count; i++) {
        if (kinds[i] == RAM_PAGE_DATA) {
            page_copy(out, block->host + (first + i) * RAM_PAGE_SIZE, RAM_PAGE_SIZE);
            out += RAM_PAGE_SIZE;
        }
    }
    struct iovec data = { scratch, (size_t)(out - scratch) };
    ram_write_section(w, block, first, count, kinds, &data, data.iov_len ? 1 : 0, stats);
}

/* ---- sections straight into a mapped stream ---- */

struct RamSectionOut {
    const RamBlock *block;
    uint64_t first;
    unsigned count;
    uint8_t *dst;      /* the section's room in the stream */
    unsigned head_len; /* of its header, in @dst already */
    uint32_t crc;      /* of that header */
    size_t len;        /* of its payload */
    uint8_t kinds[RAM_SECTION_PAGES];
};

RamSectionOut *ram_section_open(MigWriter *w, const RamBlock *block, uint64_t first, unsigned count,
                                const uint64_t *zero, RamStats *stats)
{
    g_assert(count <= RAM_SECTION_PAGES && (first + count) * RAM_PAGE_SIZE <= block->size);
    RamSectionOut *o = g_new(RamSectionOut, 1);
    *o = (RamSectionOut){ .block = block, .first = first, .count = count };
    unsigned data = page_kinds(block, first, count, zero, o->kinds);
    size_t len = RAM_HEAD_LEN + count + (size_t)data * RAM_PAGE_SIZE;
    MigSectionHeader h;
    o->crc = mig_section_begin(&h, MIG_SECTION_RAM, block->name, 0, RAM_SECTION_VERSION, len);
    o->head_len = h.len;
    o->len = len;
    o->dst = mig_writer_reserve(w, h.len + len + 4);
    if (!o->dst) {
        g_free(o);
        return NULL;
    }
    memcpy(o->dst, h.bytes, h.len);
    put_head(o->dst + h.len, first, count);
    memcpy(o->dst + h.len + RAM_HEAD_LEN, o->kinds, count);
    ram_stats_add(stats, count, count - data, len);
    return o;
}

static uint8_t *section_payload(const RamSectionOut *o)
{
    return o->dst + o->head_len;
}

/* Copy the section's data pages into its room, a run of consecutive ones at a time; with @crc, continue it over them. */
static void copy_pages(RamSectionOut *o, uint32_t *crc)
{
    uint8_t *p = section_payload(o) + RAM_HEAD_LEN + o->count;
    for (unsigned i = 0; i < o->count;) {
        unsigned run = 0;
        while (i + run < o->count && o->kinds[i + run] == RAM_PAGE_DATA) {
            run++;
        }
        if (run) {
            const uint8_t *src = o->block->host + (o->first + i) * RAM_PAGE_SIZE;
            size_t len = (size_t)run * RAM_PAGE_SIZE;
            if (crc) {
                *crc = crc32c_copy(*crc, p, src, len);
            } else {
                page_copy(p, src, len);
            }
            p += len;
        }
        i += run + 1;
    }
}

/* Write the section's CRC after its payload, and free. */
static void seal(RamSectionOut *o, uint32_t crc)
{
    uint8_t *end = section_payload(o) + o->len;
    for (unsigned b = 0; b < 4; b++) {
        end[b] = crc >> (8 * b);
    }
    g_free(o);
}

void ram_section_copy(RamSectionOut *o)
{
    copy_pages(o, NULL);
}

void ram_section_discard(RamSectionOut *o)
{
    g_free(o);
}

void ram_section_close(RamSectionOut *o)
{
    seal(o, crc32c(o->crc, section_payload(o), o->len));
}

void ram_section_fill(RamSectionOut *o)
{
    /*
     * The room faulted in with one call rather than a fault a page (a save
     * of 602 MiB in the test rig: 3.3 s against 3.9, medians of 4 runs
     * each, alternated). Only a hint: where it fails, the copy faults the
     * pages in.
     */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), start = (uintptr_t)o->dst / page * page;
    madvise((void *)start, (uintptr_t)(section_payload(o) + o->len + 4) - start, MADV_POPULATE_WRITE);
    uint32_t crc = crc32c(o->crc, section_payload(o), RAM_HEAD_LEN + o->count);
    copy_pages(o, &crc);
    seal(o, crc);
}

/* ---- saving on threads ---- */

/*
 * Sections queued at most, per thread: enough that a thread never waits
 * for the next, few enough that the bytes counted (at a section's room
 * taken) trail what was added by a few MiB, for max-bandwidth.
 */
#define SAVER_QUEUE 4

struct RamSaver {
    MigWriter *w;
    GThreadPool *pool; /* NULL: sections are saved inline */
    unsigned limit;    /* of @pending */
    uint8_t *scratch;  /* a plain writer's copy of a section's pages */
    GMutex lock;
    GCond done;        /* a section is complete */
    unsigned pending;  /* sections added and not complete */
    RamStats stats;    /* of the sections saved, for ram_saver_take_stats */
};

typedef struct SaveJob {
    const RamBlock *block;
    uint64_t first;
    unsigned count;
} SaveJob;

/*
 * A whole section on a thread, its pages' kinds included (a read of every
 * page the process has touched), rather than the kinds found for every
 * section in turn on the thread that adds them. Sections of one pass never
 * share a page, so their order in the stream does not matter
 * (ram_saver_wait between passes).
 */
static void save_job(gpointer data, gpointer user)
{
    SaveJob *j = data;
    RamSaver *s = user;
    RamStats stats = { 0 };
    RamSectionOut *o = ram_section_open(s->w, j->block, j->first, j->count, NULL, &stats);
    if (o) {
        ram_section_fill(o);
    }
    g_free(j);
    g_mutex_lock(&s->lock);
    ram_stats_add(&s->stats, stats.pages, stats.zero_pages, stats.bytes);
    s->pending--;
    g_cond_broadcast(&s->done);
    g_mutex_unlock(&s->lock);
}

RamSaver *ram_saver_new(MigWriter *w)
{
    RamSaver *s = g_new0(RamSaver, 1);
    s->w = w;
    g_mutex_init(&s->lock);
    g_cond_init(&s->done);
    unsigned cpus = g_get_num_processors();
    if (!mig_writer_is_mapped(w)) {
        s->scratch = g_malloc(RAM_SECTION_BYTES);
    } else if (cpus > 1) {
        unsigned threads = MIN(cpus, RAM_THREADS);
        s->pool = g_thread_pool_new(save_job, s, threads, TRUE, NULL);
        s->limit = threads * SAVER_QUEUE;
    }
    return s;
}

/* Until at most @n sections are pending. */
static void wait_pending(RamSaver *s, unsigned n)
{
    g_mutex_lock(&s->lock);
    while (s->pending > n) {
        g_cond_wait(&s->done, &s->lock);
    }
    g_mutex_unlock(&s->lock);
}

void ram_saver_add(RamSaver *s, const RamBlock *block, uint64_t first, unsigned count)
{
    if (s->scratch) {
        ram_save_pages(s->w, block, first, count, NULL, s->scratch, &s->stats);
        return;
    }
    SaveJob *j = g_new(SaveJob, 1);
    *j = (SaveJob){ block, first, count };
    if (s->pool) {
        wait_pending(s, s->limit - 1);
    }
    g_mutex_lock(&s->lock);
    s->pending++;
    g_mutex_unlock(&s->lock);
    if (s->pool) {
        g_thread_pool_push(s->pool, j, NULL);
    } else {
        save_job(j, s);
    }
}

void ram_saver_wait(RamSaver *s)
{
    wait_pending(s, 0);
}

void ram_saver_take_stats(RamSaver *s, RamStats *into)
{
    g_mutex_lock(&s->lock);
    ram_stats_add(into, s->stats.pages, s->stats.zero_pages, s->stats.bytes);
    s->stats = (RamStats){ 0 };
    g_mutex_unlock(&s->lock);
}

void ram_saver_free(RamSaver *s)
{
    if (s->pool) {
        g_thread_pool_free(s->pool, FALSE, TRUE);
    }
    ram_saver_wait(s);
    g_free(s->scratch);
    g_mutex_clear(&s->lock);
    g_cond_clear(&s->done);
    g_free(s);
}

void ram_save_all(MigWriter *w, GPtrArray *blocks, RamStats *stats)
{
    RamSaver *s = ram_saver_new(w);
    for (guint b = 0; b < blocks->len; b++) {
        const RamBlock *block = g_ptr_array_index(blocks, b);
        uint64_t pages = block->size / RAM_PAGE_SIZE;
        for (uint64_t first = 0; first < pages; first += RAM_SECTION_PAGES) {
            ram_saver_add(s, block, first, MIN(RAM_SECTION_PAGES, pages - first));
        }
    }
    ram_saver_wait(s);
    ram_saver_take_stats(s, stats);
    ram_saver_free(s);
}

/* The block of @blocks (RamBlock, may be NULL) named @name, and its @index; NULL if none. */
static const RamBlock *block_named(GPtrArray *blocks, const char *name, guint *index)
{
    for (guint b = 0; blocks && b < blocks->len; b++) {
        const RamBlock *block = g_ptr_array_index(blocks, b);
        if (strcmp(block->name, name) == 0) {
            *index = b;
            return block;
        }
    }
    return NULL;
}

static bool malformed(const MigSection *s, GError **err)
{
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "RAM block '%s': malformed section", s->name);
    return false;
}

bool ram_load_section(MigReader *r, const MigSection *s, GPtrArray *blocks, RamStats *stats, GError **err)
{
    guint index;
    const RamBlock *block = block_named(blocks, s->name, &index);
    if (!block) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "the migration stream has RAM block '%s', this VM has not",
                    s->name);
        return false;
    }
    if (s->version != RAM_SECTION_VERSION) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "RAM section version %u, this Vireo reads version %u",
                    s->version, RAM_SECTION_VERSION);
        return false;
    }
    uint8_t head[RAM_HEAD_LEN], kinds[RAM_SECTION_PAGES];
    if (s->len < sizeof(head)) {
        return malformed(s, err);
    }
    if (!mig_read_payload(r, s, head, sizeof(head), err)) {
        return false;
    }
    uint64_t first, count;
    get_head(head, &first, &count);
    uint64_t pages = block->size / RAM_PAGE_SIZE;
    if (count > RAM_SECTION_PAGES || first > pages || count > pages - first) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "RAM block '%s': pages %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " lie outside its %" G_GUINT64_FORMAT
                    " pages", s->name, first, count, pages);
        return false;
    }
    if (!mig_read_payload(r, s, kinds, count, err)) {
        return false;
    }
    uint8_t *base = block->host + first * RAM_PAGE_SIZE;
    uint64_t untouched[RAM_SECTION_PAGES / 64];
    ram_untouched_pages(base, count, untouched);
    struct iovec iov[RAM_SECTION_PAGES];
    unsigned n = 0, data = 0;
    for (unsigned i = 0; i < count; i++) {
        uint8_t *page = base + (size_t)i * RAM_PAGE_SIZE;
        if (kinds[i] == RAM_PAGE_DATA) {
            if (n && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == page) {
                iov[n - 1].iov_len += RAM_PAGE_SIZE;
            } else {
                iov[n++] = (struct iovec){ page, RAM_PAGE_SIZE };
            }
            data++;
        } else if (kinds[i] != RAM_PAGE_ZERO) {
            return malformed(s, err);
        } else if (!(untouched[i / 64] >> (i % 64) & 1) && !ram_page_is_zero(page)) {
            /* A page the destination never touched is zero already; others may hold its boot image. */
            memset(page, 0, RAM_PAGE_SIZE);
        }
    }
    if (s->len != sizeof(head) + count + (uint64_t)data * RAM_PAGE_SIZE) {
        return malformed(s, err);
    }
    if (!mig_read_payload_iov(r, s, iov, n, err) || !mig_read_section_end(r, s, err)) {
        return false;
    }
    ram_stats_add(stats, count, count - data, 0);
    return true;
}

/* ---- loading on threads ---- */

typedef struct RamJob {
    MigReader *r; /* a fork, inside the section */
    MigSection s;
    uint64_t offset; /* of the section in the stream, to report the earliest failure */
} RamJob;

static RamJob stop_job;

/*
 * The threads take sections from one queue as they come free: a section's
 * cost varies with its data pages and with how much of guest RAM it first
 * touches (the kernel clears that), and a section per thread by address
 * left one thread of two with 70% of a restore's work in the test rig.
 * Sections in flight never share a page, so a page sent twice lands as sent
 * last: one that would waits until the threads are idle (@seen, a bit per
 * page of each block, is cleared then).
 */
struct RamLoader {
    GPtrArray *blocks;
    unsigned threads; /* 0: inline */
    GThread *worker[RAM_THREADS];
    GAsyncQueue *queue;
    uint64_t **seen; /* per block: pages of the sections queued since the threads were last idle */
    GMutex lock;
    GCond idle;
    unsigned pending; /* jobs queued or running */
    RamStats stats;
    GError *error; /* of the earliest section failed on a thread */
    uint64_t error_offset;
    gint failed;
};

static gpointer loader_thread(gpointer p)
{
    RamLoader *l = p;
    for (RamJob *job; (job = g_async_queue_pop(l->queue)) != &stop_job;) {
        RamStats stats = { 0 };
        GError *err = NULL;
        bool ok = g_atomic_int_get(&l->failed) || ram_load_section(job->r, &job->s, l->blocks, &stats, &err);
        g_mutex_lock(&l->lock);
        ram_stats_add(&l->stats, stats.pages, stats.zero_pages, 0);
        if (!ok && (!l->error || job->offset < l->error_offset)) {
            g_clear_error(&l->error);
            l->error = g_steal_pointer(&err);
            l->error_offset = job->offset;
            g_atomic_int_set(&l->failed, 1);
        }
        if (--l->pending == 0) {
            g_cond_broadcast(&l->idle);
        }
        g_mutex_unlock(&l->lock);
        g_clear_error(&err);
        mig_reader_free(job->r);
        mig_section_clear(&job->s);
        g_free(job);
    }
    return NULL;
}

RamLoader *ram_loader_new(GPtrArray *blocks, const MigReader *r)
{
    RamLoader *l = g_new0(RamLoader, 1);
    l->blocks = blocks;
    g_mutex_init(&l->lock);
    g_cond_init(&l->idle);
    unsigned cpus = g_get_num_processors();
    l->threads = r && mig_reader_is_mapped(r) && cpus > 1 ? MIN(cpus, RAM_THREADS) : 0;
    if (l->threads) {
        l->queue = g_async_queue_new();
        l->seen = g_new0(uint64_t *, blocks->len);
        for (guint b = 0; b < blocks->len; b++) {
            l->seen[b] = g_new0(uint64_t, ram_block_words(g_ptr_array_index(blocks, b)));
        }
    }
    for (unsigned i = 0; i < l->threads; i++) {
        l->worker[i] = g_thread_new("ram-load", loader_thread, l);
    }
    return l;
}

static void wait_idle(RamLoader *l)
{
    g_mutex_lock(&l->lock);
    while (l->pending) {
        g_cond_wait(&l->idle, &l->lock);
    }
    g_mutex_unlock(&l->lock);
    for (guint b = 0; l->seen && b < l->blocks->len; b++) {
        memset(l->seen[b], 0, ram_block_words(g_ptr_array_index(l->blocks, b)) * 8);
    }
}

/* Mark pages [first, first + count) of block @b seen; false (and none marked) if one was already. */
static bool see_pages(RamLoader *l, guint b, uint64_t first, uint64_t count)
{
    uint64_t *seen = l->seen[b];
    for (uint64_t p = first; p < first + count; p++) {
        if (seen[p / 64] >> (p % 64) & 1) {
            return false;
        }
    }
    for (uint64_t p = first; p < first + count; p++) {
        seen[p / 64] |= 1ULL << (p % 64);
    }
    return true;
}

static bool failed_already(RamLoader *l, GError **err)
{
    g_mutex_lock(&l->lock);
    g_propagate_error(err, g_error_copy(l->error));
    g_mutex_unlock(&l->lock);
    return false;
}

bool ram_loader_add(RamLoader *l, MigReader *r, const MigSection *s, GError **err)
{
    if (g_atomic_int_get(&l->failed)) {
        return failed_already(l, err);
    }
    const uint8_t *head = l->threads ? mig_reader_peek(r, RAM_HEAD_LEN) : NULL;
    guint b;
    uint64_t first = 0, count = 0;
    if (head) {
        get_head(head, &first, &count);
    }
    const RamBlock *block = head ? block_named(l->blocks, s->name, &b) : NULL;
    uint64_t pages = block ? block->size / RAM_PAGE_SIZE : 0;
    if (!block || count == 0 || count > MIN(RAM_SECTION_PAGES, pages) || first > pages - count) {
        /* Inline (or malformed): here, once the threads are done with what came before it. */
        wait_idle(l);
        if (g_atomic_int_get(&l->failed)) {
            return failed_already(l, err);
        }
        return ram_load_section(r, s, l->blocks, &l->stats, err); /* the threads are idle: l->stats is ours */
    }
    if (!see_pages(l, b, first, count)) {
        wait_idle(l); /* a page sent again: after the sections before it */
        see_pages(l, b, first, count);
    }
    RamJob *job = g_new0(RamJob, 1);
    job->offset = mig_reader_bytes(r);
    job->r = mig_reader_fork(r);
    job->s = *s;
    job->s.name = g_strdup(s->name);
    job->s.payload = NULL;
    g_mutex_lock(&l->lock);
    l->pending++;
    g_mutex_unlock(&l->lock);
    g_async_queue_push(l->queue, job);
    return mig_reader_skip_section(r, s, err);
}

bool ram_loader_finish(RamLoader *l, RamStats *stats, GError **err)
{
    for (unsigned i = 0; i < l->threads; i++) {
        g_async_queue_push(l->queue, &stop_job);
    }
    for (unsigned i = 0; i < l->threads; i++) {
        g_thread_join(l->worker[i]);
    }
    if (l->threads) {
        g_async_queue_unref(l->queue);
        for (guint b = 0; b < l->blocks->len; b++) {
            g_free(l->seen[b]);
        }
        g_free(l->seen);
    }
    bool ok = !l->error;
    if (!ok) {
        g_propagate_error(err, g_steal_pointer(&l->error));
    }
    ram_stats_add(stats, l->stats.pages, l->stats.zero_pages, 0);
    g_mutex_clear(&l->lock);
    g_cond_clear(&l->idle);
    g_free(l);
    return ok;
}
