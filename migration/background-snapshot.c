/* The background snapshot engine: see include/migration/background-snapshot.h. */
#define G_LOG_DOMAIN "migration"
#include "migration/background-snapshot.h"
#include "util/error.h"
#include "util/userfaultfd.h"
#include <linux/userfaultfd.h>
#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <string.h>
#include <unistd.h>

/* The walk saves this many pages at a time. */
#define WALK_PAGES 64u
/*
 * A fault saves the unsaved pages of the aligned group around it; a fault
 * right where the last one's group ended doubles the group, up to
 * FAULT_GROUP_MAX, so a guest writing along a buffer waits less and less
 * often.
 */
#define FAULT_GROUP_PAGES 16u
#define FAULT_GROUP_MAX 128u
#define FAULT_BATCH 64
/* Saved pages the fault thread leaves for the walk to write out, at most; beyond, it writes them itself. */
#define PENDING_MAX (32u << 20)

struct BgSnapshot {
    int uffd;
    GPtrArray *blocks; /* RamBlock */
    guint protected;   /* blocks registered and protected so far */
    uint64_t **zero;   /* per block: a bit per page never touched at the instant (so zero) */

    /*
     * While bgsnap_save runs, the walk and the fault thread both save
     * pages: each copies them, as stream sections, into @pending and drops
     * their protection at once, so a vCPU waits for a copy, not for a
     * write. Whoever holds write_lock writes @pending out to the stream;
     * RAM sections may go in any order.
     */
    GMutex lock;        /* the members up to write_lock */
    uint64_t **saved;   /* per block: a bit per page saved */
    uint8_t *scratch;   /* RAM_SECTION_BYTES */
    MigWriter *pending; /* memory writer */
    RamStats *ram;
    GError *fault_error; /* the fault thread's, which ends the snapshot */
    guint run_block;     /* the last fault's group: where it ended, and its size */
    uint64_t run_end;
    unsigned group;
    BgSnapshotStats stats;
    GMutex write_lock; /* @w */
    MigWriter *w;

    GThread *fault_thread;
    int stop_fd;       /* eventfd: ends the fault thread */
    gint fault_waiting; /* the fault thread wants the lock: the walk lets it go first */
};

static uint64_t block_pages(const RamBlock *rb)
{
    return rb->size / RAM_PAGE_SIZE;
}

static bool page_saved(const BgSnapshot *b, guint bi, uint64_t page)
{
    return b->saved[bi][page / 64] >> (page % 64) & 1;
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

BgSnapshot *bgsnap_begin(GPtrArray *blocks, GError **err)
{
    if (!bgsnap_supported(err)) {
        return NULL;
    }
    g_autoptr(BgSnapshot) b = g_new0(BgSnapshot, 1);
    g_mutex_init(&b->lock);
    g_mutex_init(&b->write_lock);
    b->pending = mig_writer_new(-1);
    b->stop_fd = -1;
    b->run_end = UINT64_MAX;
    b->group = FAULT_GROUP_PAGES;
    b->blocks = g_ptr_array_ref(blocks);
    b->zero = g_new0(uint64_t *, blocks->len);
    b->saved = g_new0(uint64_t *, blocks->len);
    b->scratch = g_malloc(RAM_SECTION_BYTES);
    b->uffd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP, err);
    if (b->uffd < 0) {
        return NULL;
    }
    for (guint i = 0; i < blocks->len; i++) {
        RamBlock *rb = g_ptr_array_index(blocks, i);
        size_t words = (block_pages(rb) + 63) / 64;
        /* Untouched now means zero at the instant; what the guest writes there later needs no saving. */
        b->zero[i] = g_new(uint64_t, words);
        ram_untouched_pages(rb->host, block_pages(rb), b->zero[i]);
        b->saved[i] = g_new0(uint64_t, words);
        if (!uffd_register_wp(b->uffd, rb->host, rb->size, err)) {
            g_prefix_error(err, "RAM block '%s': ", rb->name);
            return NULL;
        }
        b->protected++;
        if (!uffd_write_protect(b->uffd, rb->host, rb->size, true, err)) {
            g_prefix_error(err, "RAM block '%s': ", rb->name);
            return NULL;
        }
    }
    return g_steal_pointer(&b);
}

/*
 * Copy the pages of [lo, hi) not saved yet into @pending as sections, then
 * drop the protection of the whole range. Lock held.
 */
static bool save_range(BgSnapshot *b, guint bi, uint64_t lo, uint64_t hi, GError **err)
{
    RamBlock *rb = g_ptr_array_index(b->blocks, bi);
    for (uint64_t p = lo; p < hi;) {
        if (page_saved(b, bi, p)) {
            p++;
            continue;
        }
        uint64_t q = p;
        while (q < hi && !page_saved(b, bi, q)) {
            b->saved[bi][q / 64] |= 1ULL << (q % 64);
            q++;
        }
        ram_save_pages(b->pending, rb, p, (unsigned)(q - p), b->zero[bi], b->scratch, b->ram);
        p = q;
    }
    return uffd_write_protect(b->uffd, rb->host + lo * RAM_PAGE_SIZE, (hi - lo) * RAM_PAGE_SIZE, false, err);
}

/* Write what is pending to the stream. Not with the lock held: saving goes on meanwhile. */
static bool write_out(BgSnapshot *b, GError **err)
{
    g_mutex_lock(&b->write_lock);
    g_mutex_lock(&b->lock);
    g_autoptr(GBytes) sections = mig_writer_take(b->pending);
    g_mutex_unlock(&b->lock);
    mig_write_sections(b->w, sections);
    bool ok = mig_writer_flush(b->w, err);
    g_mutex_unlock(&b->write_lock);
    return ok;
}

/* Save what the pending write faults wait for. Lock held. */
static bool serve_faults(BgSnapshot *b, GError **err)
{
    uint64_t addrs[FAULT_BATCH];
    int n;
    while ((n = uffd_read_wp_faults(b->uffd, addrs, FAULT_BATCH, err)) > 0) {
        for (int i = 0; i < n; i++) {
            guint bi;
            RamBlock *rb = ram_block_containing(b->blocks, (void *)(uintptr_t)addrs[i], &bi);
            if (!rb) {
                continue;
            }
            uint64_t page = (addrs[i] - (uintptr_t)rb->host) / RAM_PAGE_SIZE;
            uint64_t lo = page / FAULT_GROUP_PAGES * FAULT_GROUP_PAGES;
            bool sequential = bi == b->run_block && lo == b->run_end;
            b->group = sequential ? MIN(b->group * 2, FAULT_GROUP_MAX) : FAULT_GROUP_PAGES;
            uint64_t hi = MIN(lo + b->group, block_pages(rb));
            b->run_block = bi;
            b->run_end = hi;
            uint64_t before = b->ram->pages;
            /* A page saved already was unprotected then, which woke its writer; this cannot hurt. */
            if (!save_range(b, bi, lo, hi, err)) {
                return false;
            }
            b->stats.faults++;
            b->stats.fault_pages += b->ram->pages - before;
        }
    }
    return n == 0;
}

/*
 * Serves faults as they come, so a writer waits only for its own pages
 * (and at most one walk step), not for the walk to come round.
 */
static gpointer fault_thread(gpointer p)
{
    BgSnapshot *b = p;
    struct pollfd fds[] = { { .fd = b->uffd, .events = POLLIN }, { .fd = b->stop_fd, .events = POLLIN } };
    for (;;) {
        if (poll(fds, G_N_ELEMENTS(fds), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            g_mutex_lock(&b->lock);
            g_set_error(&b->fault_error, VIREO_ERROR, VIREO_ERROR_FAILED, "polling userfaultfd: %s",
                        g_strerror(errno));
            g_mutex_unlock(&b->lock);
            return NULL;
        }
        if (fds[1].revents) {
            return NULL;
        }
        g_atomic_int_inc(&b->fault_waiting);
        g_mutex_lock(&b->lock);
        g_atomic_int_dec_and_test(&b->fault_waiting);
        GError *err = NULL;
        bool ok = serve_faults(b, &err);
        bool full = mig_writer_pending(b->pending) > PENDING_MAX;
        g_mutex_unlock(&b->lock);
        ok = ok && (!full || write_out(b, &err));
        if (!ok) {
            g_mutex_lock(&b->lock);
            g_propagate_error(&b->fault_error, err);
            g_mutex_unlock(&b->lock);
            return NULL; /* the walk stops at its next step; bgsnap_end wakes the waiting writers */
        }
    }
}

static void stop_fault_thread(BgSnapshot *b)
{
    if (b->fault_thread) {
        uint64_t one = 1;
        if (write(b->stop_fd, &one, sizeof(one)) != sizeof(one)) {
            g_warning("background snapshot: cannot stop the fault thread: %s", g_strerror(errno));
        }
        g_thread_join(g_steal_pointer(&b->fault_thread));
    }
}

/* One walk step, or false with what failed (here or in the fault thread). */
static bool walk_step(BgSnapshot *b, guint bi, uint64_t first, uint64_t pages, GError **err)
{
    /* A mutex is not fair: without this the walk could take it back step after step while a vCPU waits. */
    while (g_atomic_int_get(&b->fault_waiting)) {
        g_thread_yield();
    }
    g_mutex_lock(&b->lock);
    bool ok = !b->fault_error && save_range(b, bi, first, MIN(first + WALK_PAGES, pages), err);
    if (b->fault_error) {
        g_propagate_error(err, g_steal_pointer(&b->fault_error));
        ok = false;
    }
    g_mutex_unlock(&b->lock);
    return ok && write_out(b, err);
}

bool bgsnap_save(BgSnapshot *b, MigWriter *w, const BgSnapshotOps *ops, void *opaque, RamStats *ram,
                 GError **err)
{
    b->w = w;
    b->ram = ram;
    b->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (b->stop_fd < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "eventfd: %s", g_strerror(errno));
        return false;
    }
    b->fault_thread = g_thread_new("snapshot-faults", fault_thread, b);
    bool ok = true;
    for (guint bi = 0; ok && bi < b->blocks->len; bi++) {
        uint64_t pages = block_pages(g_ptr_array_index(b->blocks, bi));
        for (uint64_t first = 0; ok && first < pages; first += WALK_PAGES) {
            if (ops->cancelled(opaque)) {
                g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "cancelled");
                ok = false;
                break;
            }
            ok = walk_step(b, bi, first, pages, err);
            for (int64_t us = 1; ok && us > 0;) {
                g_mutex_lock(&b->lock);
                us = ops->pace(opaque, ram);
                g_mutex_unlock(&b->lock);
                if (us > 0) {
                    g_usleep(us); /* not g_usleep(0): with timer slack that costs ~60 us a step */
                }
            }
        }
    }
    stop_fault_thread(b);
    return ok && write_out(b, err); /* what the fault thread saved last */
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
    stop_fault_thread(b);
    for (guint i = 0; i < b->protected; i++) {
        RamBlock *rb = g_ptr_array_index(b->blocks, i);
        g_autoptr(GError) err = NULL;
        /* Unprotect first: unregistering alone would leave waiting writers asleep. */
        if (!uffd_write_protect(b->uffd, rb->host, rb->size, false, &err) ||
            !uffd_unregister(b->uffd, rb->host, rb->size, &err)) {
            g_warning("background snapshot: RAM block '%s': %s", rb->name, err->message);
        }
    }
    for (guint i = 0; b->blocks && i < b->blocks->len; i++) {
        g_free(b->zero[i]);
        g_free(b->saved[i]);
    }
    if (b->uffd >= 0) {
        close(b->uffd);
    }
    if (b->stop_fd >= 0) {
        close(b->stop_fd);
    }
    g_clear_error(&b->fault_error);
    mig_writer_free(b->pending);
    g_mutex_clear(&b->lock);
    g_mutex_clear(&b->write_lock);
    g_free(b->zero);
    g_free(b->saved);
    g_free(b->scratch);
    if (b->blocks) {
        g_ptr_array_unref(b->blocks);
    }
    g_free(b);
}
