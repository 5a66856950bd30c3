/* The background snapshot engine: see include/migration/background-snapshot.h. */
#define G_LOG_DOMAIN "migration"
#include "migration/background-snapshot.h"
#include "util/error.h"
#include "util/page-copy.h"
#include "util/userfaultfd.h"
#include <linux/userfaultfd.h>
#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <string.h>
#include <unistd.h>

/*
 * The unit of saving, for the walk and a fault alike: 2 MiB, a huge page.
 * Dropping the protection of less would split the huge page under it, and
 * KVM could then map guest RAM only 4 KiB at a time: in the test rig a
 * guest that rewrites memory ran at one nested page fault per page, 20x
 * slower, until long after the snapshot.
 */
#define CHUNK_PAGES 512u
#define CHUNK_BYTES ((size_t)CHUNK_PAGES * RAM_PAGE_SIZE)
#define FAULT_BATCH 64
/*
 * To a pipe or socket (a writer that is not mapped), room for the chunks
 * copied ahead of the walk and not written yet: half of RAM, within these
 * bounds (a guest rewriting a quarter of its RAM made 290 MiB of faults,
 * and a full pool makes a fault wait for a write).
 * Copying into new memory runs at the speed of the kernel clearing it
 * (210 MiB/s a thread in the test rig, against 1300 MiB/s into memory in
 * use), and a guest rewriting its memory faults on most of its hot chunks
 * at once, so all of the pool is faulted in before the pause, a thread per
 * CPU. bench/bgsnap (1 GiB guest, 256 MiB hot) in the test rig: with 64
 * MiB faulted in first and the rest by a thread during the snapshot, the
 * writer ran at 0.41-0.59 of its speed; with half first, 0.75-1.0 but the
 * walk took 2 s longer; with all, 0.73-0.91, in 1.8-4.4 s before the pause.
 */
#define POOL_MIN (64u << 20)
#define POOL_MAX (1024u << 20)
#define POOL_THREADS 4
/*
 * Priorities (nice), see set_thread_nice: the walk and the filling of
 * memory ahead (pool or file) give way to the vCPUs; the fault thread,
 * which a vCPU waits for, goes first where Vireo may raise it.
 */
#define WALK_NICE 10
#define FILL_NICE 10
#define FAULT_NICE (-10)

/* A chunk to save before the walk's turn (bgsnap_save_first). */
typedef struct FirstChunk {
    guint block;
    uint64_t chunk;
} FirstChunk;

/* A chunk the fault thread saved: a copy for the walk to write out. */
typedef struct ChunkCopy {
    guint block;
    uint64_t first; /* page */
    unsigned count;
    uint8_t *data; /* a slot of the pool: the pages not untouched at the instant, in order */
} ChunkCopy;

/*
 * The userfaultfd and what it has registered outlive a snapshot: closing
 * it or unregistering clears the protection bits over the whole range,
 * which makes KVM drop every mapping it has of guest RAM at once.
 * Registering again is a no-op, so every snapshot just does.
 */
static GMutex uffd_lock;
static int uffd = -1;

struct BgSnapshot {
    GPtrArray *blocks; /* RamBlock */
    guint protected;   /* blocks protected so far */
    uint64_t **zero;   /* per block: a bit per page never touched at the instant (so zero) */
    /*
     * Per block: a bit per chunk that one of the two saving threads has
     * taken on, set atomically. Whoever sets it copies the chunk and then
     * drops its protection, which wakes a writer waiting in it; so a vCPU
     * waits for a copy of its pages, never for the disk, and never for a
     * lock the other thread holds while it works.
     */
    uint64_t **claimed;
    uint8_t *walk_copy; /* CHUNK_PAGES pages: the walk's copy of a chunk (pool mode) */
    MigWriter *w;       /* the walk's alone, except that both threads reserve in a mapped one */
    bool direct;        /* @w is mapped: chunks are copied straight into it, no pool */
    RamStats *ram;      /* the walk's alone */
    bool complete;      /* every chunk saved, so unprotected */

    GMutex lock; /* the members up to stopping */
    GCond drained;
    GCond begun_cond;
    bool begun;           /* RAM is protected: the threads may go */
    GQueue copies;        /* ChunkCopy, for the walk to write out */
    GQueue free;          /* ChunkCopy, each with a slot of @pool */
    GError *fault_error;  /* the fault thread's, which ends the snapshot */
    RamStats fault_ram;   /* direct: what the fault thread wrote, for the walk to count */
    /*
     * Direct: sections copied and unprotected, their CRC still to take
     * (RamSectionOut). Both threads leave it for after the walk, when
     * nothing is protected any more: a fault is then served with a copy
     * and an unprotect (with the CRC as well, the slowest part under the
     * test rig's emulated CPU at 350 MiB/s, a guest faulting on chunk after
     * chunk waited 5-9 ms for each), and the walk unprotects all of RAM
     * sooner (bench/bgsnap: 15-27 faults served where there were 90-140).
     */
    GQueue unsealed;
    BgSnapshotStats stats;
    int64_t protected_us; /* when all of RAM was protected, for the faults' debug lines */
    gint stopping;
    /* Where a writer is likely to fault next (the chunk after the last fault's), for the walk to save first. */
    bool ahead;
    guint ahead_block;
    uint64_t ahead_chunk;

    /*
     * Chunks to save first, in order: what the vCPUs write as soon as
     * they run again. The walk takes from them before its own turn and, to
     * a mapped writer, so does a thread of their own (first_thread); each
     * takes the next (@first_next, atomic) and claims it.
     */
    GArray *first; /* FirstChunk */
    guint first_next;
    GThread *first_thread;

    ChunkCopy *slots;
    uint8_t *pool;
    size_t pool_size;
    GThread *fault_thread;
    int stop_fd; /* eventfd: ends the fault thread */
};

static gpointer fault_thread(gpointer p);
static gpointer first_thread(gpointer p);

/*
 * The helper threads start before the pause: for it not to wait for them
 * (0.5-0.7 ms in the test rig), and for the fault thread to serve faults
 * from the first (started at the pause, it was up 0.8-1.4 ms after the
 * protection went on).
 */
static void start_threads(BgSnapshot *b)
{
    b->fault_thread = g_thread_new("snapshot-faults", fault_thread, b);
    if (b->direct) {
        b->first_thread = g_thread_new("snapshot-first", first_thread, b);
    }
}

static uint64_t block_pages(const RamBlock *rb)
{
    return rb->size / RAM_PAGE_SIZE;
}

static uint64_t block_chunks(const RamBlock *rb)
{
    return (block_pages(rb) + CHUNK_PAGES - 1) / CHUNK_PAGES;
}

static bool bit(const uint64_t *map, uint64_t i)
{
    return map[i / 64] >> (i % 64) & 1;
}

/* Take on chunk @c of block @bi: false if the other thread has. */
static bool claim(BgSnapshot *b, guint bi, uint64_t c)
{
    uint64_t mask = 1ULL << (c % 64);
    return !(__atomic_fetch_or(&b->claimed[bi][c / 64], mask, __ATOMIC_ACQ_REL) & mask);
}

bool bgsnap_supported(GError **err)
{
    uint64_t features;
    if (!uffd_features(&features, err)) {
        g_prefix_error(err, "background-snapshot needs userfaultfd: ");
        return false;
    }
    if (!(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "background-snapshot needs userfaultfd write-protection (UFFD_FEATURE_PAGEFAULT_FLAG_WP, "
                    "Linux 5.7), which this kernel lacks");
        return false;
    }
    return true;
}

/*
 * Set the calling thread's priority: the snapshot's own work gives way to
 * the vCPUs, which would otherwise share a CPU with it (bench/bgsnap's
 * writer: 0.65-0.75 of its speed at the same priority, 0.82-0.91 below it),
 * and the fault thread comes before them (the longest fault took 13-28 ms
 * at the same priority, 4-13 ms above). Raising needs CAP_SYS_NICE: without
 * it the fault thread stays as it is.
 */
static void set_thread_nice(int nice)
{
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), nice) < 0) {
        g_debug("background snapshot: cannot set a thread's priority to %d: %s", nice, g_strerror(errno));
    }
}

typedef struct Span {
    uint8_t *start;
    size_t len;
} Span;

static gpointer fault_in_span(gpointer p)
{
    Span *span = p;
    set_thread_nice(FILL_NICE);
    madvise(span->start, span->len, MADV_POPULATE_WRITE);
    return NULL;
}

/* Fault in the pages of [start, start + len) for writing, a thread per CPU (up to POOL_THREADS), in whole chunks. */
static void fault_in(uint8_t *start, size_t len)
{
    uint8_t *base = (uint8_t *)((uintptr_t)start / RAM_PAGE_SIZE * RAM_PAGE_SIZE);
    len += (size_t)(start - base);
    unsigned n = MIN(g_get_num_processors(), POOL_THREADS);
    size_t per = ((len + CHUNK_BYTES - 1) / CHUNK_BYTES + n - 1) / n * CHUNK_BYTES;
    Span spans[POOL_THREADS];
    GThread *threads[POOL_THREADS] = { 0 };
    for (unsigned i = 0; i < n && i * per < len; i++) {
        spans[i] = (Span){ base + i * per, MIN(per, len - i * per) };
        threads[i] = g_thread_new("snapshot-fill", fault_in_span, &spans[i]);
    }
    for (unsigned i = 0; i < n && threads[i]; i++) {
        g_thread_join(threads[i]);
    }
}

BgSnapshot *bgsnap_new(GPtrArray *blocks, MigWriter *w, GError **err)
{
    if (!bgsnap_supported(err)) {
        return NULL;
    }
    g_mutex_lock(&uffd_lock);
    if (uffd < 0) {
        uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, err);
    }
    g_mutex_unlock(&uffd_lock);
    if (uffd < 0) {
        return NULL;
    }
    g_autoptr(BgSnapshot) b = g_new0(BgSnapshot, 1);
    g_mutex_init(&b->lock);
    g_cond_init(&b->drained);
    g_cond_init(&b->begun_cond);
    g_queue_init(&b->copies);
    g_queue_init(&b->free);
    g_queue_init(&b->unsealed);
    b->first = g_array_new(FALSE, FALSE, sizeof(FirstChunk));
    b->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (b->stop_fd < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "eventfd: %s", g_strerror(errno));
        return NULL;
    }
    b->w = w;
    b->direct = mig_writer_is_mapped(w);
    b->blocks = g_ptr_array_ref(blocks);
    b->zero = g_new0(uint64_t *, blocks->len);
    b->claimed = g_new0(uint64_t *, blocks->len);
    uint64_t ram = 0;
    for (guint i = 0; i < blocks->len; i++) {
        RamBlock *rb = g_ptr_array_index(blocks, i);
        ram += rb->size;
        b->zero[i] = g_new0(uint64_t, (block_pages(rb) + 63) / 64);
        b->claimed[i] = g_new0(uint64_t, (block_chunks(rb) + 63) / 64);
        if (!uffd_register_wp(uffd, rb->host, rb->size, err)) {
            g_prefix_error(err, "RAM block '%s': ", rb->name);
            return NULL;
        }
    }
    if (b->direct) {
        /*
         * No pool: the file itself, allocated and faulted in for what the
         * guest has touched so far, so that the copies a vCPU waits for
         * never wait for the file system or for the kernel to clear
         * memory (bench/bgsnap: faults took 15-50 ms with the file faulted
         * in by a thread during the snapshot). This is work the save
         * needs anyway. Short of room, the stream is allocated as it is
         * written, and a full file system fails then.
         */
        uint64_t touched = 0;
        for (guint i = 0; i < blocks->len; i++) {
            RamBlock *rb = g_ptr_array_index(blocks, i);
            ram_untouched_pages(rb->host, block_pages(rb), b->zero[i]);
            uint64_t untouched = 0; /* a few too many, maybe: the last word's bits past the block */
            for (uint64_t wd = 0; wd < (block_pages(rb) + 63) / 64; wd++) {
                untouched += (uint64_t)__builtin_popcountll(b->zero[i][wd]);
            }
            touched += block_pages(rb) - MIN(untouched, block_pages(rb));
        }
        size_t room = touched * RAM_PAGE_SIZE + touched / RAM_SECTION_PAGES * 1024;
        uint8_t *ahead = mig_writer_allocate(w, room);
        if (ahead) {
            fault_in(ahead, room);
        }
        start_threads(b);
        return g_steal_pointer(&b);
    }
    /* Never more than RAM itself: a small VM's setup stays short, and so its instant near the command. */
    b->walk_copy = g_malloc(CHUNK_PAGES * RAM_PAGE_SIZE);
    size_t ram_chunks = (ram + CHUNK_BYTES - 1) / CHUNK_BYTES;
    b->pool_size = MIN(CLAMP(ram / 2, POOL_MIN, POOL_MAX) / CHUNK_BYTES, ram_chunks) * CHUNK_BYTES;
    b->pool = mmap(NULL, b->pool_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b->pool == MAP_FAILED) {
        b->pool = NULL;
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "cannot map %zu MiB for the snapshot's copies: %s",
                    b->pool_size >> 20, g_strerror(errno));
        return NULL;
    }
    /* Best effort, both. Small pages: finding huge ones could compact memory, guest RAM's too, under the guest. */
    madvise(b->pool, b->pool_size, MADV_NOHUGEPAGE);
    fault_in(b->pool, b->pool_size);
    b->slots = g_new(ChunkCopy, b->pool_size / CHUNK_BYTES);
    for (size_t i = 0; i < b->pool_size / CHUNK_BYTES; i++) {
        b->slots[i] = (ChunkCopy){ .data = b->pool + i * CHUNK_BYTES };
        g_queue_push_tail(&b->free, &b->slots[i]);
    }
    start_threads(b);
    return g_steal_pointer(&b);
}

bool bgsnap_begin(BgSnapshot *b, GError **err)
{
    for (guint i = 0; i < b->blocks->len; i++) {
        RamBlock *rb = g_ptr_array_index(b->blocks, i);
        int64_t t0 = g_get_monotonic_time();
        /* Untouched now means zero at the instant; what the guest writes there later needs no saving. */
        ram_untouched_pages(rb->host, block_pages(rb), b->zero[i]);
        int64_t t1 = g_get_monotonic_time();
        b->protected++;
        if (!uffd_write_protect(uffd, rb->host, rb->size, true, err)) {
            g_prefix_error(err, "RAM block '%s': ", rb->name);
            return false;
        }
        g_debug("background snapshot: RAM block '%s': pagemap %" G_GINT64_FORMAT " us, protect %" G_GINT64_FORMAT
                " us", rb->name, t1 - t0, g_get_monotonic_time() - t1);
    }
    b->protected_us = g_get_monotonic_time();
    g_mutex_lock(&b->lock);
    b->begun = true;
    g_cond_broadcast(&b->begun_cond);
    g_mutex_unlock(&b->lock);
    return true;
}

void bgsnap_save_first(BgSnapshot *b, const void *host, uint64_t len)
{
    guint bi;
    RamBlock *rb = ram_block_containing(b->blocks, host, &bi);
    if (!rb || !len) {
        return;
    }
    uint64_t offset = (uint64_t)((const uint8_t *)host - rb->host);
    uint64_t end = MIN(offset + len, rb->size);
    for (uint64_t c = offset / CHUNK_BYTES; c * CHUNK_BYTES < end; c++) {
        FirstChunk f = { bi, c };
        bool known = false;
        for (guint i = 0; i < b->first->len && !known; i++) {
            const FirstChunk *g = &g_array_index(b->first, FirstChunk, i);
            known = g->block == bi && g->chunk == c;
        }
        if (!known) {
            g_array_append_val(b->first, f);
        }
    }
}

/* Pages [*first, *first + *count) of chunk @c of block @bi. Whether any of them was touched at the instant. */
static bool chunk_pages(BgSnapshot *b, guint bi, uint64_t c, uint64_t *first, unsigned *count)
{
    RamBlock *rb = g_ptr_array_index(b->blocks, bi);
    *first = c * CHUNK_PAGES;
    *count = (unsigned)MIN(CHUNK_PAGES, block_pages(rb) - *first);
    for (unsigned i = 0; i < *count; i += 64) {
        if (~b->zero[bi][(*first + i) / 64]) {
            return true;
        }
    }
    return false;
}

static bool unprotect(BgSnapshot *b, guint bi, uint64_t first, unsigned count, GError **err)
{
    RamBlock *rb = g_ptr_array_index(b->blocks, bi);
    return uffd_write_protect(uffd, rb->host + first * RAM_PAGE_SIZE, (uint64_t)count * RAM_PAGE_SIZE, false, err);
}

/* Copy the pages of [first, first + count) of block @bi touched at the instant to @dst, in order; how many. */
static unsigned copy_touched(BgSnapshot *b, guint bi, uint64_t first, unsigned count, uint8_t *dst)
{
    RamBlock *rb = g_ptr_array_index(b->blocks, bi);
    unsigned copied = 0;
    for (unsigned p = 0; p < count;) {
        unsigned q = p;
        while (q < count && !bit(b->zero[bi], first + q)) {
            q++;
        }
        if (q > p) {
            page_copy(dst + (size_t)copied * RAM_PAGE_SIZE, rb->host + (first + p) * RAM_PAGE_SIZE,
                      (size_t)(q - p) * RAM_PAGE_SIZE);
            copied += q - p;
        }
        p = q + 1;
    }
    return copied;
}

/* Point the walk at the chunk after @c of block @bi. Lock held. */
static void look_ahead(BgSnapshot *b, guint bi, uint64_t c)
{
    RamBlock *rb = g_ptr_array_index(b->blocks, bi);
    b->ahead = c + 1 < block_chunks(rb);
    b->ahead_block = bi;
    b->ahead_chunk = c + 1;
}

/* Checksum the sections copied so far (direct), or with @abandon just free them. */
static void seal_unsealed(BgSnapshot *b, bool abandon)
{
    g_mutex_lock(&b->lock);
    GQueue unsealed = b->unsealed;
    g_queue_init(&b->unsealed);
    g_mutex_unlock(&b->lock);
    for (RamSectionOut *o; (o = g_queue_pop_head(&unsealed));) {
        (abandon ? ram_section_discard : ram_section_close)(o);
    }
}

/*
 * Save chunk @c of block @bi, claimed, straight into the mapped stream:
 * its sections' room taken, the pages copied there, the protection
 * dropped (waking whoever waits); the CRCs come at the end (@unsealed).
 */
static bool save_direct(BgSnapshot *b, guint bi, uint64_t c, RamStats *stats, GError **err)
{
    RamBlock *rb = g_ptr_array_index(b->blocks, bi);
    uint64_t first;
    unsigned count, n = 0;
    bool touched = chunk_pages(b, bi, c, &first, &count);
    RamSectionOut *out[CHUNK_PAGES / RAM_SECTION_PAGES];
    int64_t t0 = g_get_monotonic_time();
    for (unsigned done = 0; done < count; done += RAM_SECTION_PAGES, n++) {
        out[n] = ram_section_open(b->w, rb, first + done, MIN(RAM_SECTION_PAGES, count - done), b->zero[bi], stats);
        if (!out[n]) {
            break;
        }
        ram_section_copy(out[n]);
    }
    int64_t t1 = g_get_monotonic_time();
    /* After a write error too: bgsnap_end would drop it anyway, and the writer waiting on it goes on now. */
    bool ok = !touched || unprotect(b, bi, first, count, err);
    int64_t t2 = g_get_monotonic_time();
    g_mutex_lock(&b->lock);
    for (unsigned i = 0; i < n; i++) {
        g_queue_push_tail(&b->unsealed, out[i]);
    }
    b->stats.copy_max_us = MAX(b->stats.copy_max_us, t1 - t0);
    b->stats.unprotect_max_us = MAX(b->stats.unprotect_max_us, t2 - t1);
    g_mutex_unlock(&b->lock);
    return ok && mig_writer_flush(b->w, err);
}

/*
 * Save chunk @c of block @bi, claimed, ahead of the walk: for a fault
 * (@fault, the fault thread) or the chunk after one (the walk). Direct:
 * into the stream (@stats accumulates). Else copy it into a slot of the
 * pool, drop its protection, queue the copy for the walk to write; with
 * the pool full, a fault waits for a slot, the walk gets 0 (and saves the
 * chunk otherwise). 1 when saved, -1 on error.
 */
static int copy_ahead(BgSnapshot *b, guint bi, uint64_t c, bool fault, RamStats *stats, GError **err)
{
    if (b->direct) {
        bool ok = save_direct(b, bi, c, stats, err);
        g_mutex_lock(&b->lock);
        look_ahead(b, bi, c);
        g_mutex_unlock(&b->lock);
        return ok ? 1 : -1;
    }
    uint64_t first;
    unsigned count;
    chunk_pages(b, bi, c, &first, &count);
    g_mutex_lock(&b->lock);
    ChunkCopy *copy;
    int64_t t0 = g_get_monotonic_time();
    while (!(copy = g_queue_pop_head(&b->free)) && fault && !b->stopping) {
        g_cond_wait(&b->drained, &b->lock);
    }
    b->stats.slot_wait_max_us = MAX(b->stats.slot_wait_max_us, g_get_monotonic_time() - t0);
    g_mutex_unlock(&b->lock);
    if (!copy) {
        return 0;
    }
    *copy = (ChunkCopy){ .block = bi, .first = first, .count = count, .data = copy->data };
    int64_t t1 = g_get_monotonic_time();
    copy_touched(b, bi, first, count, copy->data);
    int64_t t2 = g_get_monotonic_time();
    bool ok = unprotect(b, bi, first, count, err);
    int64_t t3 = g_get_monotonic_time();
    g_mutex_lock(&b->lock);
    b->stats.copy_max_us = MAX(b->stats.copy_max_us, t2 - t1);
    b->stats.unprotect_max_us = MAX(b->stats.unprotect_max_us, t3 - t2);
    g_queue_push_tail(ok ? &b->copies : &b->free, copy);
    look_ahead(b, bi, c);
    g_mutex_unlock(&b->lock);
    return ok ? 1 : -1;
}

/* Claim the next chunk to save first that nobody has yet; false when there is none left. */
static bool take_first(BgSnapshot *b, guint *bi, uint64_t *c)
{
    for (guint i; (i = __atomic_fetch_add(&b->first_next, 1, __ATOMIC_RELAXED)) < b->first->len;) {
        const FirstChunk *f = &g_array_index(b->first, FirstChunk, i);
        if (claim(b, f->block, f->chunk)) {
            *bi = f->block;
            *c = f->chunk;
            return true;
        }
    }
    return false;
}

/* A helper thread's error, for the walk to stop with (the first one counts). */
static void thread_failed(BgSnapshot *b, GError *err)
{
    g_mutex_lock(&b->lock);
    if (b->fault_error) {
        g_error_free(err);
    } else {
        b->fault_error = err;
    }
    g_mutex_unlock(&b->lock);
}

/* Save the chunks the pending write faults wait for. */
static bool serve_faults(BgSnapshot *b, GError **err)
{
    uint64_t addrs[FAULT_BATCH];
    int n;
    while ((n = uffd_read_wp_faults(uffd, addrs, FAULT_BATCH, err)) > 0) {
        int64_t read_us = g_get_monotonic_time();
        for (int i = 0; i < n; i++) {
            guint bi;
            RamBlock *rb = ram_block_containing(b->blocks, (void *)(uintptr_t)addrs[i], &bi);
            uint64_t c = rb ? (addrs[i] - (uintptr_t)rb->host) / RAM_PAGE_SIZE / CHUNK_PAGES : 0;
            /* Not ours: the walk takes it on, copies, and unprotects, which wakes its writer. */
            if (!rb || !claim(b, bi, c)) {
                continue;
            }
            RamStats written = { 0 };
            int saved = copy_ahead(b, bi, c, true, &written, err);
            if (saved < 0) {
                return false;
            }
            if (!saved) {
                return true; /* stopping: bgsnap_end unprotects what is left */
            }
            uint64_t first;
            unsigned count;
            chunk_pages(b, bi, c, &first, &count);
            g_mutex_lock(&b->lock);
            ram_stats_add(&b->fault_ram, written.pages, written.zero_pages, written.bytes);
            b->stats.faults++;
            b->stats.fault_pages += count;
            int64_t us = g_get_monotonic_time() - read_us;
            b->stats.fault_max_us = MAX(b->stats.fault_max_us, us);
            b->stats.fault_total_us += us;
            g_mutex_unlock(&b->lock);
            g_debug("background snapshot: write fault in chunk %" G_GUINT64_FORMAT " of RAM block '%s', %" G_GINT64_FORMAT
                    " us after protection, served in %" G_GINT64_FORMAT " us",
                    c, rb->name, read_us - b->protected_us, us);
        }
    }
    return n == 0;
}

/* Serves faults as they come, so a writer waits only for a copy of its own chunk. */
static gpointer fault_thread(gpointer p)
{
    BgSnapshot *b = p;
    set_thread_nice(FAULT_NICE);
    struct pollfd fds[] = { { .fd = uffd, .events = POLLIN }, { .fd = b->stop_fd, .events = POLLIN } };
    for (;;) {
        GError *err = NULL;
        if (poll(fds, G_N_ELEMENTS(fds), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            g_set_error(&err, VIREO_ERROR, VIREO_ERROR_FAILED, "polling userfaultfd: %s", g_strerror(errno));
        } else if (fds[1].revents) {
            return NULL;
        } else if (serve_faults(b, &err)) {
            continue;
        }
        thread_failed(b, err);
        return NULL; /* the walk stops at its next step; bgsnap_end wakes the waiting writers */
    }
}

/* Saves the chunks to save first, straight into the mapped stream, beside the walk. */
static gpointer first_thread(gpointer p)
{
    BgSnapshot *b = p;
    guint bi;
    uint64_t c;
    g_mutex_lock(&b->lock);
    while (!b->begun && !b->stopping) {
        g_cond_wait(&b->begun_cond, &b->lock);
    }
    g_mutex_unlock(&b->lock);
    while (!g_atomic_int_get(&b->stopping) && take_first(b, &bi, &c)) {
        RamStats written = { 0 };
        GError *err = NULL;
        bool ok = save_direct(b, bi, c, &written, &err);
        g_mutex_lock(&b->lock);
        ram_stats_add(&b->fault_ram, written.pages, written.zero_pages, written.bytes);
        g_mutex_unlock(&b->lock);
        if (!ok) {
            thread_failed(b, err);
            break;
        }
    }
    return NULL;
}

static void stop_fault_thread(BgSnapshot *b)
{
    if (b->fault_thread) {
        g_mutex_lock(&b->lock);
        g_atomic_int_set(&b->stopping, 1);
        g_cond_broadcast(&b->drained);
        g_mutex_unlock(&b->lock);
        uint64_t one = 1;
        if (write(b->stop_fd, &one, sizeof(one)) != sizeof(one)) {
            g_warning("background snapshot: cannot stop the fault thread: %s", g_strerror(errno));
        }
        g_thread_join(g_steal_pointer(&b->fault_thread));
    }
}

/* After the walk, or to stop: the chunks it is saving are claimed, and must be saved or dropped before the end. */
static void join_first_thread(BgSnapshot *b)
{
    if (b->first_thread) {
        g_mutex_lock(&b->lock);
        g_cond_broadcast(&b->begun_cond); /* one still waiting for the protection: stopping is set */
        g_mutex_unlock(&b->lock);
        g_thread_join(g_steal_pointer(&b->first_thread));
    }
}

/*
 * Write pages [first, first + count) of block @bi as sections: @data holds
 * those not untouched at the instant, in order (a copy, or guest RAM still
 * protected).
 */
static void write_pages(BgSnapshot *b, guint bi, uint64_t first, unsigned count, const uint8_t *data)
{
    RamBlock *rb = g_ptr_array_index(b->blocks, bi);
    for (unsigned done = 0; done < count;) {
        unsigned n = MIN(RAM_SECTION_PAGES, count - done), pieces = 0;
        uint8_t kinds[RAM_SECTION_PAGES];
        struct iovec iov[RAM_SECTION_PAGES];
        for (unsigned i = 0; i < n; i++) {
            uint64_t page = first + done + i;
            const uint8_t *bytes = NULL;
            if (!bit(b->zero[bi], page)) {
                bytes = data;
                data += RAM_PAGE_SIZE;
            }
            kinds[i] = !bytes || ram_page_is_zero(bytes) ? RAM_PAGE_ZERO : RAM_PAGE_DATA;
            if (kinds[i] == RAM_PAGE_ZERO) {
                continue;
            }
            if (pieces && (const uint8_t *)iov[pieces - 1].iov_base + iov[pieces - 1].iov_len == bytes) {
                iov[pieces - 1].iov_len += RAM_PAGE_SIZE;
            } else {
                iov[pieces++] = (struct iovec){ (void *)bytes, RAM_PAGE_SIZE };
            }
        }
        ram_write_section(b->w, rb, first + done, n, kinds, iov, pieces, b->ram);
        done += n;
    }
}

/* Write out what the fault thread saved, or false with what failed there. */
static bool drain_copies(BgSnapshot *b, GError **err)
{
    g_mutex_lock(&b->lock);
    GQueue copies = b->copies;
    g_queue_init(&b->copies);
    GError *fault_error = g_steal_pointer(&b->fault_error);
    ram_stats_add(b->ram, b->fault_ram.pages, b->fault_ram.zero_pages, b->fault_ram.bytes);
    b->fault_ram = (RamStats){ 0 };
    g_mutex_unlock(&b->lock);
    for (ChunkCopy *c; (c = g_queue_pop_head(&copies));) {
        write_pages(b, c->block, c->first, c->count, c->data);
        /* A slot at a time: with the pool full, a fault waits for one chunk's write, not for all of them. */
        g_mutex_lock(&b->lock);
        g_queue_push_tail(&b->free, c);
        g_cond_signal(&b->drained);
        g_mutex_unlock(&b->lock);
    }
    if (fault_error) {
        g_propagate_error(err, fault_error);
        return false;
    }
    return true;
}

/*
 * Save chunk @c of block @bi, claimed, in the walk: copied, unprotected,
 * written from the copy. A chunk never touched is all zero and was never
 * protected.
 */
static bool walk_chunk(BgSnapshot *b, guint bi, uint64_t c, GError **err)
{
    if (b->direct) {
        return save_direct(b, bi, c, b->ram, err);
    }
    uint64_t first;
    unsigned count;
    if (chunk_pages(b, bi, c, &first, &count)) {
        copy_touched(b, bi, first, count, b->walk_copy);
        if (!unprotect(b, bi, first, count, err)) {
            return false;
        }
    }
    write_pages(b, bi, first, count, b->walk_copy);
    return true;
}

/* Claim the chunk after the last one saved ahead, if nobody has it yet. */
static bool take_ahead(BgSnapshot *b, guint *bi, uint64_t *c)
{
    g_mutex_lock(&b->lock);
    bool ahead = b->ahead;
    *bi = b->ahead_block;
    *c = b->ahead_chunk;
    b->ahead = false;
    g_mutex_unlock(&b->lock);
    return ahead && claim(b, *bi, *c);
}

/* Save chunk @c of block @bi, claimed by the walk out of its turn: into the pool as a fault's is, else (pool full) as the walk saves its own. */
static bool save_out_of_turn(BgSnapshot *b, guint bi, uint64_t c, GError **err)
{
    int saved = copy_ahead(b, bi, c, false, b->ram, err);
    return saved > 0 || (saved == 0 && walk_chunk(b, bi, c, err));
}

/*
 * One walk step: the next chunk to save first; else the chunk after the
 * last one saved ahead, if nobody has it yet (a guest writing along its
 * memory then finds its next chunks saved, two threads copying them);
 * either copied into the pool as a fault's would be. Else chunk *@c of
 * block @bi, and *@c advances. Then what is in the pool is written out.
 */
static bool walk_step(BgSnapshot *b, guint bi, uint64_t *c, GError **err)
{
    guint obi;
    uint64_t oc;
    bool ok;
    if (take_first(b, &obi, &oc) || take_ahead(b, &obi, &oc)) {
        ok = save_out_of_turn(b, obi, oc, err);
    } else {
        ok = !claim(b, bi, (*c)++) || walk_chunk(b, bi, *c - 1, err);
    }
    return ok && drain_copies(b, err) && mig_writer_flush(b->w, err);
}

bool bgsnap_save(BgSnapshot *b, const BgSnapshotOps *ops, void *opaque, RamStats *ram, GError **err)
{
    b->ram = ram;
    set_thread_nice(WALK_NICE);
    if (b->first->len) { /* here, not in the pause, where a debug line costs a write */
        g_autoptr(GString) list = g_string_new(NULL);
        for (guint i = 0; i < b->first->len; i++) {
            const FirstChunk *f = &g_array_index(b->first, FirstChunk, i);
            g_string_append_printf(list, " %u:%" G_GUINT64_FORMAT, f->block, f->chunk);
        }
        g_debug("background snapshot: %u chunks to save first (block:chunk):%s", b->first->len, list->str);
    }
    bool ok = true;
    for (guint bi = 0; ok && bi < b->blocks->len; bi++) {
        uint64_t chunks = block_chunks(g_ptr_array_index(b->blocks, bi));
        for (uint64_t c = 0; ok && c < chunks;) {
            if (ops->cancelled(opaque)) {
                g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "cancelled");
                ok = false;
                break;
            }
            ok = walk_step(b, bi, &c, err);
            for (int64_t us = 1; ok && us > 0;) {
                us = ops->pace(opaque, ram);
                if (us > 0) {
                    g_usleep(us); /* not g_usleep(0): with timer slack that costs ~60 us a step */
                }
            }
        }
    }
    if (!ok) {
        g_atomic_int_set(&b->stopping, 1);
    }
    join_first_thread(b);
    stop_fault_thread(b);
    /* Every chunk is claimed by now: what the fault thread copied last is all that is left. */
    if (ok && drain_copies(b, err)) {
        seal_unsealed(b, false); /* nothing is protected any more */
        b->complete = mig_writer_flush(b->w, err);
    }
    return b->complete;
}

void bgsnap_stats(BgSnapshot *b, BgSnapshotStats *stats)
{
    g_mutex_lock(&b->lock);
    *stats = b->stats;
    g_mutex_unlock(&b->lock);
}

void bgsnap_end(BgSnapshot *b)
{
    if (!b) {
        return;
    }
    g_atomic_int_set(&b->stopping, 1);
    join_first_thread(b);
    stop_fault_thread(b);
    seal_unsealed(b, true); /* after a failure: the stream is abandoned */
    /*
     * After a complete snapshot nothing is protected; otherwise drop what
     * is, which also wakes whoever waits on it. Not more: any change of
     * protection makes KVM drop its mappings of the range.
     */
    for (guint i = 0; !b->complete && i < b->protected; i++) {
        RamBlock *rb = g_ptr_array_index(b->blocks, i);
        g_autoptr(GError) err = NULL;
        if (!uffd_write_protect(uffd, rb->host, rb->size, false, &err)) {
            g_warning("background snapshot: RAM block '%s': %s", rb->name, err->message);
        }
    }
    for (guint i = 0; b->blocks && i < b->blocks->len; i++) {
        g_free(b->zero[i]);
        g_free(b->claimed[i]);
    }
    if (b->stop_fd >= 0) {
        close(b->stop_fd);
    }
    g_clear_error(&b->fault_error);
    g_queue_clear(&b->copies);
    g_queue_clear(&b->free);
    if (b->first) {
        g_array_unref(b->first);
    }
    g_free(b->slots);
    if (b->pool) {
        munmap(b->pool, b->pool_size);
    }
    g_mutex_clear(&b->lock);
    g_cond_clear(&b->drained);
    g_cond_clear(&b->begun_cond);
    g_free(b->zero);
    g_free(b->claimed);
    g_free(b->walk_copy);
    if (b->blocks) {
        g_ptr_array_unref(b->blocks);
    }
    g_free(b);
}
