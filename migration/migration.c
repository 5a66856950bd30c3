/* Migration state machine, threads and QMP side: see include/migration/migration.h. */
#define G_LOG_DOMAIN "migration"
#include "migration/migration.h"
#include "migration/background-snapshot.h"
#include "migration/channel.h"
#include "migration/ram.h"
#include "migration/stream.h"
#include "migration/vmstate.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define WORD_PAGES 64
/* QEMU's defaults: 128 MiB/s and 300 ms. */
#define DEFAULT_MAX_BANDWIDTH (128ULL << 20)
#define DEFAULT_DOWNTIME_LIMIT_MS 300
#define MAX_DOWNTIME_LIMIT_MS 2000000
#define RATE_WINDOW_US 100000
/* Sections handed to the RAM saver between two updates of the stats (and pacing checks), with no bandwidth limit. */
#define SAVE_BATCH 32

static const char *const status_names[] = {
    [MIGRATION_STATUS_NONE] = "none",           [MIGRATION_STATUS_SETUP] = "setup",
    [MIGRATION_STATUS_CANCELLING] = "cancelling", [MIGRATION_STATUS_CANCELLED] = "cancelled",
    [MIGRATION_STATUS_ACTIVE] = "active",       [MIGRATION_STATUS_DEVICE] = "device",
    [MIGRATION_STATUS_COMPLETED] = "completed", [MIGRATION_STATUS_FAILED] = "failed",
};

/*
 * QEMU's capabilities, so query-migrate-capabilities lists what clients
 * expect; enabling one Vireo does not implement is refused by name.
 */
enum { CAP_EVENTS, CAP_BACKGROUND_SNAPSHOT, CAP_COUNT_SUPPORTED };
static const char *const capability_names[] = {
    "events", "background-snapshot", /* the ones implemented */
    "xbzrle", "rdma-pin-all", "auto-converge", "postcopy-ram", "x-colo", "release-ram", "return-path",
    "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime", "late-block-activate",
    "x-ignore-shared", "validate-uuid", "zero-copy-send", "postcopy-preempt", "switchover-ack", "dirty-limit",
    "mapped-ram",
};
/* What QEMU refuses together with background-snapshot. */
static const char *const background_incompatible[] = {
    "postcopy-ram", "dirty-bitmaps", "postcopy-blocktime", "late-block-activate", "return-path", "multifd",
    "pause-before-switchover", "auto-converge", "release-ram", "rdma-pin-all", "xbzrle", "x-colo",
    "validate-uuid", "zero-copy-send",
};

typedef struct MigrationStats {
    int64_t start_us, setup_us, total_us, downtime_us, expected_downtime_ms;
    uint64_t transferred, normal, duplicate, remaining, total, dirty_syncs, precopy_bytes, downtime_bytes;
    double mbps, pages_per_second, dirty_pages_rate;
} MigrationStats;

struct Migration {
    Machine *m;
    const MigrationHostOps *ops;
    void *opaque;
    char *fingerprint;
    bool caps[G_N_ELEMENTS(capability_names)];
    uint64_t max_bandwidth;  /* bytes/s; 0 unlimited */
    uint64_t downtime_limit; /* ms */

    GMutex mutex; /* status, error and stats: the thread writes, query-migrate reads */
    MigrationStatus status;
    MigrationStatus shown; /* what query-migrate says: set_status */
    bool incoming; /* the status is of an incoming migration */
    char *error;
    MigrationStats stats;

    GThread *thread;
    MigChannel *channel;
    char *uri; /* of the last outgoing migration */
    gint cancel; /* atomic */
    /* A snapshot job's background snapshot (migration_snapshot_to_file), else NULL. */
    const MigrationSnapshotHooks *hooks;
    void *hooks_opaque;
};

/* The outgoing thread's view of the RAM it still has to send. */
typedef struct Sender {
    Migration *ms;
    MigWriter *w;
    GPtrArray *blocks;  /* RamBlock, the machine's */
    uint64_t **to_send; /* per block: a bit per page */
    RamStats ram;
    RamSaver *saver;
    int64_t window_us;
    uint64_t window_bytes;
} Sender;

const char *migration_status_name(MigrationStatus status)
{
    return status_names[status];
}

static int64_t now_us(void)
{
    return g_get_monotonic_time();
}

/* ---- status and events ---- */

/* Takes @data. The host passes events from the migration thread to the main loop, in order. */
static void post_event(Migration *ms, const char *name, JsonObject *data)
{
    if (ms->caps[CAP_EVENTS]) {
        ms->ops->event(ms->opaque, name, data);
    }
    json_object_unref(data);
}

typedef struct StatusShown {
    Migration *ms;
    MigrationStatus status;
} StatusShown;

static gboolean show_status(gpointer p)
{
    StatusShown *c = p;
    g_mutex_lock(&c->ms->mutex);
    c->ms->shown = c->status;
    g_mutex_unlock(&c->ms->mutex);
    g_free(c);
    return G_SOURCE_REMOVE;
}

/*
 * query-migrate shows a status only once its MIGRATION event is out: from
 * a migration thread both go to the main loop, the event first, so a
 * client that reads "completed" has had the event.
 */
static void set_status(Migration *ms, MigrationStatus status)
{
    g_mutex_lock(&ms->mutex);
    ms->status = status;
    g_mutex_unlock(&ms->mutex);
    JsonObject *data = json_object_new();
    json_object_set_string_member(data, "status", status_names[status]);
    post_event(ms, "MIGRATION", data);
    StatusShown *c = g_new(StatusShown, 1);
    *c = (StatusShown){ ms, status };
    if (g_main_context_is_owner(g_main_context_default())) {
        show_status(c);
    } else {
        g_idle_add(show_status, c);
    }
}

MigrationStatus migration_status(Migration *ms)
{
    g_mutex_lock(&ms->mutex);
    MigrationStatus s = ms->status;
    g_mutex_unlock(&ms->mutex);
    return s;
}

bool migration_is_active(Migration *ms)
{
    MigrationStatus s = migration_status(ms);
    return s == MIGRATION_STATUS_SETUP || s == MIGRATION_STATUS_ACTIVE || s == MIGRATION_STATUS_DEVICE ||
           s == MIGRATION_STATUS_CANCELLING;
}

static bool cancelled(Migration *ms)
{
    return g_atomic_int_get(&ms->cancel);
}

/* ---- construction ---- */

Migration *migration_new(Machine *m, const char *config, const MigrationHostOps *ops, void *opaque)
{
    Migration *ms = g_new0(Migration, 1);
    ms->m = m;
    ms->ops = ops;
    ms->opaque = opaque;
    ms->max_bandwidth = DEFAULT_MAX_BANDWIDTH;
    ms->downtime_limit = DEFAULT_DOWNTIME_LIMIT_MS;
    g_mutex_init(&ms->mutex);
    /*
     * The configuration, then every RAM block with its size and every
     * registered section: anything a load depends on that differs shows.
     */
    GString *f = g_string_new(config);
    for (guint i = 0; m->ram_blocks && i < m->ram_blocks->len; i++) {
        const RamBlock *b = g_ptr_array_index(m->ram_blocks, i);
        g_string_append_printf(f, " ram:%s=%" G_GUINT64_FORMAT, b->name, b->size);
    }
    for (guint i = 0; m->vmstate_entries && i < m->vmstate_entries->len; i++) {
        const VMStateEntry *e = g_ptr_array_index(m->vmstate_entries, i);
        g_string_append_printf(f, " %s/%u", e->id, e->instance);
    }
    ms->fingerprint = g_string_free(f, FALSE);
    return ms;
}

void migration_free(Migration *ms)
{
    if (!ms) {
        return;
    }
    /* A running thread would outlive us: the process is exiting, and it dies with it. */
    g_free(ms->fingerprint);
    g_free(ms->error);
    g_free(ms->uri);
    g_free(ms);
}

const char *migration_fingerprint(Migration *ms)
{
    return ms->fingerprint;
}

/* ---- outgoing: RAM ---- */

/* KVM's log of one memory slot, into the pages to send. */
static void take_kvm_dirty(void *hva, uint64_t pages, const uint64_t *bitmap, void *opaque)
{
    Sender *s = opaque;
    guint bi;
    RamBlock *b = ram_block_containing(s->blocks, hva, &bi);
    if (!b) {
        return;
    }
    uint64_t *to_send = s->to_send[bi];
    uint64_t base = (uint64_t)((uint8_t *)hva - b->host) / RAM_PAGE_SIZE;
    for (uint64_t w = 0; w < (pages + 63) / 64; w++) {
        for (uint64_t bits = bitmap[w]; bits; bits &= bits - 1) {
            uint64_t page = base + w * 64 + __builtin_ctzll(bits);
            to_send[page / 64] |= 1ULL << (page % 64);
        }
    }
}

static uint64_t count_to_send(Sender *s)
{
    uint64_t n = 0;
    for (guint i = 0; i < s->blocks->len; i++) {
        const RamBlock *b = g_ptr_array_index(s->blocks, i);
        for (uint64_t w = 0; w < ram_block_words(b); w++) {
            n += __builtin_popcountll(s->to_send[i][w]);
        }
    }
    return n;
}

/*
 * What the vCPUs (KVM's log) and Vireo's devices (ram_mark_dirty) wrote
 * since the last sync. Big lock held: a reset replaces the KVM VM under it.
 */
static bool sync_dirty(Sender *s, GError **err)
{
    Machine *m = s->ms->m;
    if (m->vcpu_log_failed) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED,
                    "the VM was resumed during the migration and KVM's dirty log could not start");
        return false;
    }
    if (m->dirty_log_sync && !m->dirty_log_sync(m, take_kvm_dirty, s, err)) {
        return false;
    }
    for (guint i = 0; i < s->blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(s->blocks, i);
        for (uint64_t w = 0; w < ram_block_words(b); w++) {
            s->to_send[i][w] |= __atomic_exchange_n(&b->written[w], 0, __ATOMIC_RELAXED);
        }
    }
    g_mutex_lock(&s->ms->mutex);
    s->ms->stats.dirty_syncs++;
    s->ms->stats.remaining = count_to_send(s) * RAM_PAGE_SIZE;
    g_mutex_unlock(&s->ms->mutex);
    return true;
}

/*
 * How long to hold off so that what was sent stays within max-bandwidth:
 * 0 to go on, else at most a window (callers ask again, so a cancel or a
 * new max-bandwidth takes effect soon).
 */
static int64_t rate_wait_us(Sender *s)
{
    uint64_t bw = __atomic_load_n(&s->ms->max_bandwidth, __ATOMIC_RELAXED);
    uint64_t sent = mig_writer_bytes(s->w) - s->window_bytes;
    int64_t elapsed = now_us() - s->window_us;
    int64_t owed = bw ? (int64_t)(sent * 1000000 / bw) - elapsed : 0;
    if (owed > 0 && !cancelled(s->ms)) {
        return MIN(owed, RATE_WINDOW_US);
    }
    if (elapsed >= RATE_WINDOW_US) {
        s->window_us = now_us();
        s->window_bytes = mig_writer_bytes(s->w);
    }
    return 0;
}

static void update_ram_stats(Sender *s)
{
    MigrationStats *st = &s->ms->stats;
    g_mutex_lock(&s->ms->mutex);
    st->transferred = mig_writer_bytes(s->w);
    st->duplicate = s->ram.zero_pages;
    st->normal = s->ram.pages - s->ram.zero_pages;
    g_mutex_unlock(&s->ms->mutex);
}

/*
 * What is buffered pushed out and counted; with @wait, every section
 * handed to the saver complete in the stream first. In between, the
 * saver's threads work on while more sections are added (bytes count
 * when their room is taken): waiting after every batch left them idle
 * while the next was prepared.
 */
static bool sync_saver(Sender *s, bool wait, GError **err)
{
    if (wait) {
        ram_saver_wait(s->saver);
    }
    if (!mig_writer_flush(s->w, err)) {
        return false;
    }
    ram_saver_take_stats(s->saver, &s->ram);
    update_ram_stats(s);
    return true;
}

/*
 * Send every page marked in to_send, a section (up to RAM_SECTION_PAGES
 * aligned pages, from the first marked to the last) at a time, clearing
 * the marks. @limited: honour max-bandwidth (not once the vCPUs are stopped).
 */
static bool send_marked(Sender *s, bool limited, GError **err)
{
    const unsigned words = RAM_SECTION_PAGES / WORD_PAGES;
    unsigned batch = 0;
    for (guint bi = 0; bi < s->blocks->len; bi++) {
        const RamBlock *b = g_ptr_array_index(s->blocks, bi);
        uint64_t pages = b->size / RAM_PAGE_SIZE;
        uint64_t *bits = s->to_send[bi];
        for (uint64_t first = 0; first < pages; first += RAM_SECTION_PAGES) {
            uint64_t lo = UINT64_MAX, hi = 0;
            for (unsigned w = 0; w < words && first + w * WORD_PAGES < pages; w++) {
                uint64_t v = bits[first / WORD_PAGES + w];
                if (v) {
                    lo = MIN(lo, first + w * WORD_PAGES + __builtin_ctzll(v));
                    hi = first + w * WORD_PAGES + 63 - __builtin_clzll(v);
                    bits[first / WORD_PAGES + w] = 0;
                }
            }
            if (lo == UINT64_MAX) {
                continue;
            }
            ram_saver_add(s->saver, b, lo, (unsigned)(hi - lo + 1));
            if (cancelled(s->ms)) {
                g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "cancelled");
                return false;
            }
            bool paced = limited && __atomic_load_n(&s->ms->max_bandwidth, __ATOMIC_RELAXED);
            if (++batch < (paced ? 1 : SAVE_BATCH)) {
                continue;
            }
            batch = 0;
            if (!sync_saver(s, false, err)) {
                return false;
            }
            for (int64_t wait; limited && (wait = rate_wait_us(s)) > 0;) {
                g_usleep(wait);
            }
        }
    }
    return sync_saver(s, true, err);
}

static bool save_devices(Migration *ms, MigWriter *w, GError **err)
{
    Machine *m = ms->m;
    for (guint i = 0; m->vmstate_entries && i < m->vmstate_entries->len; i++) {
        const VMStateEntry *e = g_ptr_array_index(m->vmstate_entries, i);
        g_autoptr(GByteArray) buf = g_byte_array_new();
        if (!vmstate_save(e->vmsd, e->opaque, buf, err)) {
            g_prefix_error(err, "saving %s/%u: ", e->id, e->instance);
            return false;
        }
        mig_write_section(w, MIG_SECTION_DEVICE, e->id, e->instance, e->vmsd->version, buf->data, buf->len);
    }
    return true;
}

static void quiesce_devices(Machine *m)
{
    for (guint i = 0; m->vmstate_entries && i < m->vmstate_entries->len; i++) {
        const VMStateEntry *e = g_ptr_array_index(m->vmstate_entries, i);
        if (e->vmsd->quiesce) {
            e->vmsd->quiesce(e->opaque);
        }
    }
}

/* With the big lock held (a reset replaces the KVM VM under it). */
static void stop_tracking(Migration *ms, bool *tracking)
{
    if (*tracking) {
        g_atomic_int_set(&ms->m->dirty_tracking, 0);
        machine_vcpu_log_stop(ms->m);
        *tracking = false;
    }
}

static bool start_tracking(Migration *ms, Sender *s, GError **err)
{
    Machine *m = ms->m;
    g_mutex_lock(&m->lock);
    for (guint i = 0; i < s->blocks->len; i++) {
        RamBlock *b = g_ptr_array_index(s->blocks, i);
        memset(b->written, 0, ram_block_words(b) * 8);
    }
    g_atomic_int_set(&m->dirty_tracking, 1);
    /* A paused VM's vCPUs write nothing; if they are resumed, machine_vcpus_resuming() starts the log. */
    bool ok = !ms->ops->vcpus_running(ms->opaque) || machine_vcpu_log_start(m, err);
    if (!ok) {
        g_atomic_int_set(&m->dirty_tracking, 0);
    }
    g_mutex_unlock(&m->lock);
    return ok;
}

/*
 * The iterations: everything once, then what was written meanwhile, until
 * the rest would go within the downtime limit at the bandwidth just seen
 * and the last pass did not halve it. While passes still shrink the rest
 * that fast, one more costs the guest nothing and the downtime less
 * (bench/migration, a guest writing 2000 pages a second: the first pass
 * within the limit left 1000-3900 pages, 31-89 ms of downtime; the passes
 * after it, 0-254 pages).
 */
static bool precopy(Sender *s, GError **err)
{
    Migration *ms = s->ms;
    uint64_t left_before = UINT64_MAX; /* bytes of RAM the pass before this one left to send */
    for (unsigned pass = 1;; pass++) {
        int64_t t0 = now_us();
        uint64_t b0 = mig_writer_bytes(s->w);
        uint64_t pages0 = s->ram.pages;
        if (!send_marked(s, true, err)) {
            return false;
        }
        g_mutex_lock(&ms->m->lock);
        bool synced = sync_dirty(s, err);
        g_mutex_unlock(&ms->m->lock);
        if (!synced) {
            return false;
        }
        JsonObject *data = json_object_new();
        json_object_set_int_member(data, "pass", pass);
        post_event(ms, "MIGRATION_PASS", data);

        int64_t dt = MAX(now_us() - t0, 1);
        double bytes_per_ms = (double)(mig_writer_bytes(s->w) - b0) * 1000.0 / dt;
        g_mutex_lock(&ms->mutex);
        uint64_t remaining = ms->stats.remaining;
        ms->stats.mbps = bytes_per_ms * 8.0 / 1000.0;
        ms->stats.pages_per_second = (double)(s->ram.pages - pages0) * 1e6 / dt;
        ms->stats.dirty_pages_rate = (double)(remaining / RAM_PAGE_SIZE) * 1e6 / dt;
        ms->stats.expected_downtime_ms = bytes_per_ms > 0 ? (int64_t)(remaining / bytes_per_ms) : 0;
        uint64_t expected = ms->stats.expected_downtime_ms;
        g_mutex_unlock(&ms->mutex);
        if (remaining == 0 ||
            (expected <= __atomic_load_n(&ms->downtime_limit, __ATOMIC_RELAXED) && remaining * 2 > left_before)) {
            return true;
        }
        left_before = remaining;
    }
}

static gboolean reap_thread(gpointer p)
{
    g_thread_join(p);
    return G_SOURCE_REMOVE;
}

static void fail(Migration *ms, const GError *err)
{
    g_mutex_lock(&ms->mutex);
    g_free(ms->error);
    ms->error = g_strdup(err->message);
    g_mutex_unlock(&ms->mutex);
    g_warning("migration to %s failed: %s", ms->uri, err->message);
}

/* The end of an outgoing migration or snapshot, on its thread; @err says why when !@ok. */
static void end_outgoing(Migration *ms, bool ok, const GError *err, bool resume)
{
    bool was_cancelled = cancelled(ms);
    if (!ok && !was_cancelled) {
        fail(ms, err);
    }
    mig_channel_close(g_steal_pointer(&ms->channel), false, NULL);
    g_mutex_lock(&ms->m->lock);
    ms->ops->outgoing_done(ms->opaque, ok, resume);
    g_mutex_unlock(&ms->m->lock);
    g_mutex_lock(&ms->mutex);
    ms->stats.total_us = now_us() - ms->stats.start_us;
    ms->stats.remaining = ok ? 0 : ms->stats.remaining;
    g_mutex_unlock(&ms->mutex);
    set_status(ms, ok ? MIGRATION_STATUS_COMPLETED : was_cancelled ? MIGRATION_STATUS_CANCELLED
                                                                   : MIGRATION_STATUS_FAILED);
    g_idle_add(reap_thread, g_thread_self());
}

static gpointer outgoing_thread(gpointer p)
{
    Migration *ms = p;
    Machine *m = ms->m;
    g_autoptr(GError) err = NULL;
    g_autoptr(MigWriter) w = mig_writer_new(mig_channel_fd(ms->channel));
    Sender s = { .ms = ms, .w = w, .blocks = m->ram_blocks, .saver = ram_saver_new(w), .window_us = now_us() };
    s.to_send = g_new0(uint64_t *, s.blocks->len);
    for (guint i = 0; i < s.blocks->len; i++) {
        const RamBlock *b = g_ptr_array_index(s.blocks, i);
        uint64_t words = ram_block_words(b);
        s.to_send[i] = g_new(uint64_t, words);
        memset(s.to_send[i], 0xff, words * 8);
        if (b->size / RAM_PAGE_SIZE % 64) {
            s.to_send[i][words - 1] = (1ULL << (b->size / RAM_PAGE_SIZE % 64)) - 1;
        }
    }
    bool tracking = false, stopped = false, was_running = false, ok;

    /* Devices write guest RAM even while the vCPUs are paused (a packet arriving): always track. */
    mig_write_header(w, ms->fingerprint);
    ok = start_tracking(ms, &s, &err);
    tracking = ok;
    if (ok) {
        g_mutex_lock(&ms->mutex);
        ms->stats.setup_us = now_us() - ms->stats.start_us;
        g_mutex_unlock(&ms->mutex);
        set_status(ms, MIGRATION_STATUS_ACTIVE);
        ok = precopy(&s, &err);
    }
    if (ok) {
        g_mutex_lock(&m->lock);
        was_running = ms->ops->stop(ms->opaque);
        stopped = true;
        int64_t downtime_start = now_us();
        uint64_t bytes0 = mig_writer_bytes(w);
        set_status(ms, MIGRATION_STATUS_DEVICE);
        quiesce_devices(m);
        /* The parts of the downtime, for VIREO_DEBUG=migration: after quiescing, syncing, RAM, devices, flush. */
        int64_t t[5];
        uint64_t pages0 = s.ram.pages;
        t[0] = now_us();
        ok = sync_dirty(&s, &err);
        t[1] = now_us();
        ok = ok && send_marked(&s, false, &err);
        t[2] = now_us();
        ok = ok && save_devices(ms, w, &err);
        t[3] = now_us();
        if (ok) {
            mig_write_end(w);
            ok = mig_writer_flush(w, &err);
            t[4] = now_us();
            g_debug("migration downtime: quiesce %" G_GINT64_FORMAT " us, dirty sync %" G_GINT64_FORMAT
                    " us, RAM %" G_GINT64_FORMAT " us (%" G_GUINT64_FORMAT " pages), devices %" G_GINT64_FORMAT
                    " us, flush %" G_GINT64_FORMAT " us",
                    t[0] - downtime_start, t[1] - t[0], t[2] - t[1], s.ram.pages - pages0, t[3] - t[2], t[4] - t[3]);
        }
        g_mutex_unlock(&m->lock);
        if (ok) {
            ok = mig_channel_close(g_steal_pointer(&ms->channel), true, &err);
        }
        g_mutex_lock(&ms->mutex);
        ms->stats.downtime_us = now_us() - downtime_start;
        ms->stats.downtime_bytes = mig_writer_bytes(w) - bytes0;
        ms->stats.precopy_bytes = bytes0;
        g_mutex_unlock(&ms->mutex);
    }
    update_ram_stats(&s);
    /* After the downtime: KVM turning its dirty log off took 36 ms in the test rig, and the stream is complete. */
    g_mutex_lock(&m->lock);
    stop_tracking(ms, &tracking);
    g_mutex_unlock(&m->lock);
    for (guint i = 0; i < s.blocks->len; i++) {
        g_free(s.to_send[i]);
    }
    g_free(s.to_send);
    ram_saver_free(s.saver);
    end_outgoing(ms, ok, err, stopped && was_running && !ok);
    return NULL;
}

/* ---- outgoing: background snapshot ---- */

static bool snapshot_cancelled(void *opaque)
{
    Sender *s = opaque;
    return cancelled(s->ms);
}

static int64_t snapshot_pace(void *opaque, const RamStats *ram)
{
    Sender *s = opaque;
    MigrationStats *st = &s->ms->stats;
    update_ram_stats(s);
    g_mutex_lock(&s->ms->mutex);
    st->remaining = st->total - MIN(ram->pages * RAM_PAGE_SIZE, st->total);
    double seconds = MAX(now_us() - st->start_us - st->setup_us, 1) / 1e6;
    st->mbps = (double)st->transferred * 8 / 1e6 / seconds;
    st->pages_per_second = (double)ram->pages / seconds;
    g_mutex_unlock(&s->ms->mutex);
    return rate_wait_us(s);
}

static const BgSnapshotOps snapshot_ops = {
    .cancelled = snapshot_cancelled,
    .pace = snapshot_pace,
};

/* What the paused vCPUs will write first, for the snapshot to save before the rest (at the pause). */
static void save_footprint_first(Machine *m, BgSnapshot *snap)
{
    GuestSpan spans[256];
    unsigned n = m->vcpu_footprint ? m->vcpu_footprint(m, spans, G_N_ELEMENTS(spans)) : 0;
    for (unsigned i = 0; i < n; i++) {
        const void *host = m->gpa_to_hva(m, spans[i].gpa, spans[i].len);
        if (host) {
            bgsnap_save_first(snap, host, spans[i].len);
        }
    }
}

/*
 * Capability background-snapshot: in one short pause the device state is
 * saved to memory and RAM write-protected; then RAM goes out as it was at
 * the pause while the VM runs on, and the device state after it. The
 * source keeps running afterwards, whatever happened.
 */
static gpointer snapshot_thread(gpointer p)
{
    Migration *ms = p;
    Machine *m = ms->m;
    g_autoptr(GError) err = NULL;
    g_autoptr(MigWriter) w = mig_writer_new(mig_channel_fd(ms->channel));
    g_autoptr(MigWriter) devices = mig_writer_new(-1);
    g_autoptr(BgSnapshot) snap = NULL;
    Sender s = { .ms = ms, .w = w, .blocks = m->ram_blocks, .window_us = now_us() };

    mig_write_header(w, ms->fingerprint);
    snap = bgsnap_new(m->ram_blocks, w, &err);
    g_mutex_lock(&m->lock);
    int64_t pause_start = now_us();
    ms->ops->stop(ms->opaque);
    int64_t stopped = now_us();
    quiesce_devices(m);
    int64_t quiet = now_us();
    bool ok = snap && save_devices(ms, devices, &err);
    int64_t saved = now_us();
    if (ok) {
        save_footprint_first(m, snap);
    }
    int64_t pointed = now_us();
    ok = ok && bgsnap_begin(snap, &err);
    int64_t protected = now_us();
    if (ok && ms->hooks) {
        ok = ms->hooks->paused(ms->hooks_opaque, &err);
    }
    ms->ops->resume(ms->opaque);
    g_debug("background snapshot pause: stop %" G_GINT64_FORMAT " us, quiesce %" G_GINT64_FORMAT
            " us, devices %" G_GINT64_FORMAT " us, footprint %" G_GINT64_FORMAT " us, protect %" G_GINT64_FORMAT
            " us, hooks and resume %" G_GINT64_FORMAT " us", stopped - pause_start, quiet - stopped, saved - quiet,
            pointed - saved, protected - pointed, now_us() - protected);
    g_mutex_unlock(&m->lock);
    g_mutex_lock(&ms->mutex);
    ms->stats.downtime_us = now_us() - pause_start;
    ms->stats.setup_us = now_us() - ms->stats.start_us;
    g_mutex_unlock(&ms->mutex);

    if (ok) {
        set_status(ms, MIGRATION_STATUS_ACTIVE);
        ok = bgsnap_save(snap, &snapshot_ops, &s, &s.ram, &err);
    }
    if (snap) {
        BgSnapshotStats st;
        bgsnap_stats(snap, &st);
        g_debug("background snapshot: %" G_GUINT64_FORMAT " write faults served, %" G_GUINT64_FORMAT
                " pages saved for them; longest %" G_GINT64_FORMAT " us, mean %" G_GINT64_FORMAT
                " us; longest wait for the pool %" G_GINT64_FORMAT " us, copy %" G_GINT64_FORMAT " us, unprotect %"
                G_GINT64_FORMAT " us",
                st.faults, st.fault_pages, st.fault_max_us, st.faults ? st.fault_total_us / (int64_t)st.faults : 0,
                st.slot_wait_max_us, st.copy_max_us, st.unprotect_max_us);
    }
    g_clear_pointer(&snap, bgsnap_end); /* the guest writes freely again, whatever happened */
    if (ok) {
        g_autoptr(GBytes) state = mig_writer_data(devices);
        mig_write_sections(w, state);
        mig_write_end(w);
        ok = mig_writer_flush(w, &err) && mig_channel_close(g_steal_pointer(&ms->channel), true, &err);
    }
    update_ram_stats(&s);
    const MigrationSnapshotHooks *hooks = ms->hooks;
    void *hooks_opaque = ms->hooks_opaque;
    if (!ok && !err) {
        g_set_error(&err, VIREO_ERROR, VIREO_ERROR_FAILED, "cancelled");
    }
    end_outgoing(ms, ok, err, false);
    if (hooks) {
        hooks->done(hooks_opaque, ok, err);
    }
    return NULL;
}

/* @hooks: a snapshot job's (background only), else NULL. */
static bool start_outgoing(Migration *ms, const char *uri, int fd, bool background,
                           const MigrationSnapshotHooks *hooks, void *hooks_opaque, GError **err)
{
    if (migration_is_active(ms)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "There's a migration process in progress");
        return false;
    }
    if (background && !bgsnap_supported(err)) {
        return false;
    }
    if (!ms->m->ram_blocks) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED, "this machine has no RAM to migrate");
        return false;
    }
    ms->channel = mig_channel_open(uri, MIG_CHANNEL_OUT, fd, err);
    if (!ms->channel) {
        return false;
    }
    ms->incoming = false;
    ms->hooks = hooks;
    ms->hooks_opaque = hooks_opaque;
    g_atomic_int_set(&ms->cancel, 0);
    g_free(ms->uri);
    ms->uri = g_strdup(uri);
    g_mutex_lock(&ms->mutex);
    g_clear_pointer(&ms->error, g_free);
    ms->stats = (MigrationStats){ .start_us = now_us() };
    for (guint i = 0; i < ms->m->ram_blocks->len; i++) {
        ms->stats.total += ((const RamBlock *)g_ptr_array_index(ms->m->ram_blocks, i))->size;
    }
    ms->stats.remaining = ms->stats.total;
    g_mutex_unlock(&ms->mutex);
    set_status(ms, MIGRATION_STATUS_SETUP);
    ms->thread = background ? g_thread_new("snapshot", snapshot_thread, ms)
                            : g_thread_new("migration", outgoing_thread, ms);
    return true;
}

bool migration_start(Migration *ms, const char *uri, int fd, GError **err)
{
    return start_outgoing(ms, uri, fd, ms->caps[CAP_BACKGROUND_SNAPSHOT], NULL, NULL, err);
}

bool migration_snapshot_to_file(Migration *ms, const char *path, const MigrationSnapshotHooks *hooks, void *opaque,
                                GError **err)
{
    g_autofree char *uri = g_strconcat("file:", path, NULL);
    return start_outgoing(ms, uri, -1, true, hooks, opaque, err);
}

void migration_quiesce(Migration *ms)
{
    quiesce_devices(ms->m);
}

void migration_cancel(Migration *ms)
{
    MigrationStatus s = migration_status(ms);
    if (ms->incoming || (s != MIGRATION_STATUS_SETUP && s != MIGRATION_STATUS_ACTIVE)) {
        return; /* as QEMU: nothing to cancel is no error; the switch-over is too late to stop */
    }
    g_atomic_int_set(&ms->cancel, 1);
    set_status(ms, MIGRATION_STATUS_CANCELLING);
    if (ms->channel) {
        mig_channel_shutdown(ms->channel);
    }
}

/* ---- incoming ---- */

/* The registered entry a device section is for, or NULL with @err naming the section. */
static const VMStateEntry *device_entry(Migration *ms, const MigSection *sec, GError **err)
{
    const VMStateEntry *e = vmstate_find(ms->m, sec->name, sec->instance);
    if (!e) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "the migration stream has state for device '%s' instance %u, which this VM has not", sec->name,
                    sec->instance);
    }
    return e;
}

static bool load_device(Migration *ms, const MigSection *sec, GError **err)
{
    const VMStateEntry *e = device_entry(ms, sec, err);
    if (!e) {
        return false;
    }
    gsize len;
    const uint8_t *p = g_bytes_get_data(sec->payload, &len);
    if (!vmstate_load(e->vmsd, e->opaque, (int)sec->version, p, len, err)) {
        g_prefix_error(err, "device '%s' instance %u: ", sec->name, sec->instance);
        return false;
    }
    return true;
}

/*
 * RAM goes straight into guest memory (ram_loader_*: on threads from a
 * file); device sections are gathered into @devices.
 */
static bool read_sections(Migration *ms, MigReader *r, RamLoader *loader, GPtrArray *devices, GError **err)
{
    for (;;) {
        MigSection sec;
        if (!mig_read_section_header(r, &sec, err)) {
            return false;
        }
        bool ok = true;
        switch (sec.kind) {
        case MIG_SECTION_END:
            mig_section_clear(&sec);
            return true;
        case MIG_SECTION_RAM:
            ok = ram_loader_add(loader, r, &sec, err);
            mig_section_clear(&sec);
            break;
        case MIG_SECTION_DEVICE:
            /* Applied at the end, all together, under the big lock (an unknown one is refused now). */
            ok = device_entry(ms, &sec, err) && mig_read_section_payload(r, &sec, err);
            if (ok) {
                g_ptr_array_add(devices, g_memdup2(&sec, sizeof(sec)));
            } else {
                mig_section_clear(&sec);
            }
            break;
        }
        if (!ok) {
            return false;
        }
    }
}

static bool read_stream(Migration *ms, MigReader *r, GPtrArray *devices, GError **err)
{
    if (!mig_read_header(r, ms->fingerprint, err)) {
        return false;
    }
    RamStats ram = { 0 };
    g_autoptr(GError) read_err = NULL, ram_err = NULL;
    RamLoader *loader = ram_loader_new(ms->m->ram_blocks, r);
    bool read_ok = read_sections(ms, r, loader, devices, &read_err);
    /* A section that failed on a loader thread came before where reading stopped. */
    if (!ram_loader_finish(loader, &ram, &ram_err)) {
        g_propagate_error(err, g_steal_pointer(&ram_err));
        return false;
    }
    if (!read_ok) {
        g_propagate_error(err, g_steal_pointer(&read_err));
        return false;
    }
    g_mutex_lock(&ms->mutex);
    ms->stats.transferred = mig_reader_bytes(r);
    ms->stats.normal = ram.pages - ram.zero_pages;
    ms->stats.duplicate = ram.zero_pages;
    g_mutex_unlock(&ms->mutex);
    return true;
}

static bool load_stream(Migration *ms, GPtrArray *devices, GError **err)
{
    if (!mig_channel_accept(ms->channel, err)) {
        return false;
    }
    set_status(ms, MIGRATION_STATUS_ACTIVE);
    g_autoptr(MigReader) r = mig_reader_new_fd(mig_channel_fd(ms->channel));
    return read_stream(ms, r, devices, err);
}

static void free_section(gpointer p)
{
    mig_section_clear(p);
    g_free(p);
}

static gpointer incoming_thread(gpointer p)
{
    Migration *ms = p;
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) devices = g_ptr_array_new_with_free_func(free_section);
    bool ok = load_stream(ms, devices, &err);

    g_mutex_lock(&ms->m->lock);
    for (guint i = 0; ok && i < devices->len; i++) {
        ok = load_device(ms, g_ptr_array_index(devices, i), &err);
    }
    mig_channel_close(g_steal_pointer(&ms->channel), ok, NULL);
    g_mutex_lock(&ms->mutex);
    ms->stats.total_us = now_us() - ms->stats.start_us;
    if (!ok) {
        ms->error = g_strdup(err->message);
    }
    g_mutex_unlock(&ms->mutex);
    set_status(ms, ok ? MIGRATION_STATUS_COMPLETED : MIGRATION_STATUS_FAILED);
    ms->ops->incoming_done(ms->opaque, ok ? NULL : err);
    g_mutex_unlock(&ms->m->lock);
    g_idle_add(reap_thread, g_thread_self());
    return NULL;
}

bool migration_load_file(Migration *ms, const char *path, GError **err)
{
    if (migration_is_active(ms)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "There's a migration process in progress");
        return false;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "%s: %s", path, g_strerror(errno));
        return false;
    }
    g_autoptr(GPtrArray) devices = g_ptr_array_new_with_free_func(free_section);
    bool ok;
    {
        g_autoptr(MigReader) r = mig_reader_new_fd(fd);
        ok = read_stream(ms, r, devices, err);
    }
    close(fd);
    for (guint i = 0; ok && i < devices->len; i++) {
        ok = load_device(ms, g_ptr_array_index(devices, i), err);
    }
    if (!ok) {
        g_prefix_error(err, "%s: ", path);
    }
    return ok;
}

bool migration_incoming(Migration *ms, const char *uri, int fd, GError **err)
{
    if (migration_status(ms) != MIGRATION_STATUS_NONE) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "The incoming migration has already been started");
        return false;
    }
    ms->channel = mig_channel_open(uri, MIG_CHANNEL_IN, fd, err);
    if (!ms->channel) {
        return false;
    }
    ms->incoming = true;
    ms->stats.start_us = now_us();
    set_status(ms, MIGRATION_STATUS_SETUP);
    ms->thread = g_thread_new("migration-in", incoming_thread, ms);
    return true;
}

/* ---- QMP ---- */

JsonObject *migration_query(Migration *ms)
{
    JsonObject *o = json_object_new();
    g_mutex_lock(&ms->mutex);
    const MigrationStats *st = &ms->stats;
    if (ms->shown != MIGRATION_STATUS_NONE) {
        bool done = ms->shown == MIGRATION_STATUS_COMPLETED;
        json_object_set_string_member(o, "status", status_names[ms->shown]);
        json_object_set_int_member(o, "total-time",
                                   (done || ms->shown == MIGRATION_STATUS_FAILED ||
                                    ms->shown == MIGRATION_STATUS_CANCELLED)
                                       ? st->total_us / 1000
                                       : (now_us() - st->start_us) / 1000);
        json_object_set_int_member(o, "setup-time", st->setup_us / 1000);
        if (done) {
            json_object_set_int_member(o, "downtime", st->downtime_us / 1000);
        } else if (ms->shown == MIGRATION_STATUS_ACTIVE) {
            json_object_set_int_member(o, "expected-downtime", st->expected_downtime_ms);
        }
        JsonObject *ram = json_object_new();
        json_object_set_int_member(ram, "transferred", st->transferred);
        json_object_set_int_member(ram, "remaining", st->remaining);
        json_object_set_int_member(ram, "total", st->total);
        json_object_set_int_member(ram, "duplicate", st->duplicate);
        json_object_set_int_member(ram, "skipped", 0);
        json_object_set_int_member(ram, "normal", st->normal);
        json_object_set_int_member(ram, "normal-bytes", st->normal * RAM_PAGE_SIZE);
        json_object_set_int_member(ram, "dirty-sync-count", st->dirty_syncs);
        json_object_set_int_member(ram, "page-size", RAM_PAGE_SIZE);
        json_object_set_double_member(ram, "mbps", st->mbps);
        json_object_set_double_member(ram, "pages-per-second", st->pages_per_second);
        json_object_set_double_member(ram, "dirty-pages-rate", st->dirty_pages_rate);
        json_object_set_int_member(ram, "precopy-bytes", st->precopy_bytes);
        json_object_set_int_member(ram, "downtime-bytes", st->downtime_bytes);
        json_object_set_int_member(ram, "postcopy-bytes", 0);
        json_object_set_int_member(ram, "multifd-bytes", 0);
        json_object_set_object_member(o, "ram", ram);
        if (ms->error) {
            json_object_set_string_member(o, "error-desc", ms->error);
        }
    }
    g_mutex_unlock(&ms->mutex);
    return o;
}

static int capability_index(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(capability_names); i++) {
        if (strcmp(capability_names[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

bool migration_set_capabilities(Migration *ms, JsonArray *caps, GError **err)
{
    /* As QEMU: not during an outgoing migration; a destination may still set them while it loads. */
    if (migration_is_active(ms) && !ms->incoming) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "There's a migration process in progress");
        return false;
    }
    bool want[G_N_ELEMENTS(capability_names)];
    memcpy(want, ms->caps, sizeof(want));
    for (guint i = 0; i < json_array_get_length(caps); i++) {
        JsonNode *n = json_array_get_element(caps, i);
        JsonObject *o = JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
        JsonNode *name = o ? json_object_get_member(o, "capability") : NULL;
        JsonNode *state = o ? json_object_get_member(o, "state") : NULL;
        if (!name || !state || json_node_get_value_type(name) != G_TYPE_STRING ||
            json_node_get_value_type(state) != G_TYPE_BOOLEAN) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "Parameter 'capabilities[%u]' expects {\"capability\": str, \"state\": bool}", i);
            return false;
        }
        int c = capability_index(json_node_get_string(name));
        if (c < 0) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "Parameter 'capability' does not accept value '%s'", json_node_get_string(name));
            return false;
        }
        want[c] = json_node_get_boolean(state);
    }
    for (size_t c = 0; c < G_N_ELEMENTS(capability_names); c++) {
        if (!want[c]) {
            continue;
        }
        for (size_t i = 0; want[CAP_BACKGROUND_SNAPSHOT] && i < G_N_ELEMENTS(background_incompatible); i++) {
            if (strcmp(capability_names[c], background_incompatible[i]) == 0) {
                g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                            "Background-snapshot is not compatible with %s", capability_names[c]);
                return false;
            }
        }
        if (c >= CAP_COUNT_SUPPORTED) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                        "Migration capability '%s' is not supported by Vireo", capability_names[c]);
            return false;
        }
    }
    if (want[CAP_BACKGROUND_SNAPSHOT] && !ms->caps[CAP_BACKGROUND_SNAPSHOT] && !bgsnap_supported(err)) {
        return false;
    }
    memcpy(ms->caps, want, sizeof(want));
    return true;
}

JsonArray *migration_query_capabilities(Migration *ms)
{
    JsonArray *a = json_array_new();
    for (size_t i = 0; i < G_N_ELEMENTS(capability_names); i++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "capability", capability_names[i]);
        json_object_set_boolean_member(o, "state", ms->caps[i]);
        json_array_add_object_element(a, o);
    }
    return a;
}

/* The parameters Vireo implements: QMP name, field, upper bound. */
static const struct {
    const char *name;
    size_t offset;
    uint64_t max;
} parameters[] = {
    { "max-bandwidth", offsetof(Migration, max_bandwidth), INT64_MAX },
    { "downtime-limit", offsetof(Migration, downtime_limit), MAX_DOWNTIME_LIMIT_MS },
};

bool migration_set_parameters(Migration *ms, JsonObject *params, GError **err)
{
    uint64_t values[G_N_ELEMENTS(parameters)];
    for (size_t i = 0; i < G_N_ELEMENTS(parameters); i++) {
        values[i] = *(uint64_t *)((char *)ms + parameters[i].offset);
    }
    g_autoptr(GList) names = json_object_get_members(params);
    for (GList *l = names; l; l = l->next) {
        size_t i = 0;
        while (i < G_N_ELEMENTS(parameters) && strcmp(parameters[i].name, l->data) != 0) {
            i++;
        }
        if (i == G_N_ELEMENTS(parameters)) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                        "Migration parameter '%s' is not supported by Vireo", (const char *)l->data);
            return false;
        }
        JsonNode *n = json_object_get_member(params, l->data);
        if (!JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64 ||
            json_node_get_int(n) < 0 || (uint64_t)json_node_get_int(n) > parameters[i].max) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "Parameter '%s' expects an integer from 0 to %" G_GUINT64_FORMAT, parameters[i].name,
                        parameters[i].max);
            return false;
        }
        values[i] = (uint64_t)json_node_get_int(n);
    }
    /* Taken by a running migration at its next section. */
    for (size_t i = 0; i < G_N_ELEMENTS(parameters); i++) {
        __atomic_store_n((uint64_t *)((char *)ms + parameters[i].offset), values[i], __ATOMIC_RELAXED);
    }
    return true;
}

JsonObject *migration_query_parameters(Migration *ms)
{
    JsonObject *o = json_object_new();
    for (size_t i = 0; i < G_N_ELEMENTS(parameters); i++) {
        json_object_set_int_member(o, parameters[i].name, *(uint64_t *)((char *)ms + parameters[i].offset));
    }
    return o;
}
