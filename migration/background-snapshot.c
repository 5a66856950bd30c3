/* The background snapshot engine: see include/migration/background-snapshot.h. */
#define G_LOG_DOMAIN "migration"
#include "migration/background-snapshot.h"
#include "util/error.h"
#include "util/userfaultfd.h"
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/*
 * The walk saves this many pages between two looks at the faults: a vCPU
 * that writes a protected page waits at most about that long.
 */
#define WALK_PAGES 64u
/*
 * A fault saves the unsaved pages of the aligned group around it, so a
 * guest writing along a buffer waits once per group rather than per page.
 */
#define FAULT_GROUP_PAGES 16u
#define FAULT_BATCH 64

struct BgSnapshot {
    int uffd;
    GPtrArray *blocks; /* RamBlock */
    guint protected;   /* blocks registered and protected so far */
    uint64_t **zero;   /* per block: a bit per page never touched at the instant (so zero) */
    uint64_t **saved;  /* per block: a bit per page in the stream, or zero */
    uint8_t *scratch;  /* RAM_SECTION_BYTES */
    BgSnapshotStats stats;
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
        b->saved[i] = g_memdup2(b->zero[i], words * 8);
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
 * Write the pages of [lo, hi) not yet in the stream, push them out of our
 * buffer, then drop the protection of the whole range.
 */
static bool save_range(BgSnapshot *b, MigWriter *w, guint bi, uint64_t lo, uint64_t hi, RamStats *ram,
                       GError **err)
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
        ram_save_pages(w, rb, p, (unsigned)(q - p), b->zero[bi], b->scratch, ram);
        p = q;
    }
    return mig_writer_flush(w, err) &&
           uffd_write_protect(b->uffd, rb->host + lo * RAM_PAGE_SIZE, (hi - lo) * RAM_PAGE_SIZE, false, err);
}

/* Save what the pending write faults wait for. */
static bool serve_faults(BgSnapshot *b, MigWriter *w, RamStats *ram, GError **err)
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
            uint64_t hi = MIN(lo + FAULT_GROUP_PAGES, block_pages(rb));
            uint64_t before = ram->pages;
            /* A page saved already was unprotected then, which woke its writer; this cannot hurt. */
            if (!save_range(b, w, bi, lo, hi, ram, err)) {
                return false;
            }
            b->stats.faults++;
            b->stats.fault_pages += ram->pages - before;
        }
    }
    return n == 0;
}

/* Hold off for @us (max-bandwidth), serving faults meanwhile. */
static bool wait_serving(BgSnapshot *b, MigWriter *w, int64_t us, RamStats *ram, GError **err)
{
    int64_t deadline = g_get_monotonic_time() + us;
    for (int64_t left = us; left > 0; left = deadline - g_get_monotonic_time()) {
        struct pollfd pfd = { .fd = b->uffd, .events = POLLIN };
        if (poll(&pfd, 1, (int)((left + 999) / 1000)) > 0 && !serve_faults(b, w, ram, err)) {
            return false;
        }
    }
    return true;
}

bool bgsnap_save(BgSnapshot *b, MigWriter *w, const BgSnapshotOps *ops, void *opaque, RamStats *ram,
                 GError **err)
{
    for (guint bi = 0; bi < b->blocks->len; bi++) {
        uint64_t pages = block_pages(g_ptr_array_index(b->blocks, bi));
        for (uint64_t first = 0; first < pages; first += WALK_PAGES) {
            if (ops->cancelled(opaque)) {
                g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "cancelled");
                return false;
            }
            if (!serve_faults(b, w, ram, err) ||
                !save_range(b, w, bi, first, MIN(first + WALK_PAGES, pages), ram, err)) {
                return false;
            }
            for (int64_t us; (us = ops->pace(opaque, ram)) > 0;) {
                if (!wait_serving(b, w, us, ram, err)) {
                    return false;
                }
            }
        }
    }
    return true;
}

void bgsnap_stats(const BgSnapshot *b, BgSnapshotStats *stats)
{
    *stats = b->stats;
}

void bgsnap_end(BgSnapshot *b)
{
    if (!b) {
        return;
    }
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
    g_free(b->zero);
    g_free(b->saved);
    g_free(b->scratch);
    if (b->blocks) {
        g_ptr_array_unref(b->blocks);
    }
    g_free(b);
}
