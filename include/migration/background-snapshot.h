/*
 * The background snapshot engine: guest RAM as it was at one instant,
 * written to a migration stream while the vCPUs keep running.
 *
 * At the instant (vCPUs stopped, devices quiet) every RAM block is
 * write-protected with userfaultfd in one range each, and
 * the pages the process never touched are noted as zero: they need no
 * protection, so neither prefaulting nor UFFD_FEATURE_WP_UNPOPULATED's page
 * tables for them, and a guest's first write to one never waits. From then
 * on a thread serves write faults as they come, saving the faulting pages
 * ahead of the walk, while the caller's thread walks RAM in steps, both
 * 2 MiB at a time; the chunks the vCPUs will write first
 * (bgsnap_save_first) go before the walk's turn. Each chunk is taken on by
 * one thread (an atomic bit), copied, and its protection dropped right
 * after, which wakes the writer that waited for it: a vCPU waits for a
 * copy of its chunk, never for the disk or for a lock. Into a regular
 * file (a mapped writer), faulted in before the pause, all copy straight
 * into the stream, and a third thread saves the chunks to save first
 * beside the walk; otherwise the fault thread copies into a pool faulted
 * in before the pause, and the walk checksums and writes out its copies
 * and the fault thread's (a bounded queue).
 *
 * Anything that writes guest RAM, vCPUs and Vireo's own devices alike,
 * waits in the kernel on a protected page until the engine has saved it;
 * the engine's threads must never wait for them (no big lock while saving).
 */
#pragma once
#include "migration/ram.h"

typedef struct BgSnapshot BgSnapshot;

typedef struct BgSnapshotOps {
    bool (*cancelled)(void *opaque);
    /*
     * After each section: how many microseconds to hold off before the
     * next (max-bandwidth). Faults are still served meanwhile.
     */
    int64_t (*pace)(void *opaque, const RamStats *ram);
} BgSnapshotOps;

typedef struct BgSnapshotStats {
    uint64_t faults;      /* write faults served out of order */
    uint64_t fault_pages; /* pages saved for them */
    int64_t fault_max_us, fault_total_us; /* the longest and all together: from reading a fault to its chunk unprotected */
    int64_t slot_wait_max_us; /* the longest wait for room in the pool */
    int64_t copy_max_us, unprotect_max_us; /* the longest copy of a chunk, and unprotect */
} BgSnapshotStats;

/*
 * Whether this kernel can snapshot anonymous guest RAM in the background;
 * false with @err naming the missing feature.
 */
bool bgsnap_supported(GError **err);
/*
 * Get ready to snapshot @blocks (RamBlock) to @w: register them with
 * userfaultfd (outside the pause; they stay registered, see
 * background-snapshot.c), and for a writer that is not mapped fault in the
 * pool of copies.
 */
BgSnapshot *bgsnap_new(GPtrArray *blocks, MigWriter *w, GError **err);
/*
 * Save the chunks of [host, host + len) before the rest (in calls' order):
 * memory the guest writes first when it runs again. At the pause, before
 * bgsnap_begin.
 */
void bgsnap_save_first(BgSnapshot *b, const void *host, uint64_t len);
/*
 * The instant of the snapshot: protect the blocks, and start serving
 * faults (and saving the chunks to save first). Nothing may write the
 * blocks during the call.
 */
bool bgsnap_begin(BgSnapshot *b, GError **err);
/*
 * Write every page as it was at bgsnap_begin to @w as RAM sections,
 * serving write faults as they come. Fails on a write error or cancel.
 */
bool bgsnap_save(BgSnapshot *b, const BgSnapshotOps *ops, void *opaque, RamStats *ram, GError **err);
void bgsnap_stats(BgSnapshot *b, BgSnapshotStats *stats);
/* Drop every protection left (waking whoever waits on one) and free. */
void bgsnap_end(BgSnapshot *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BgSnapshot, bgsnap_end)
