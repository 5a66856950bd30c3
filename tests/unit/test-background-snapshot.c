/*
 * The background snapshot engine on plain memory: a thread rewrites every
 * page while the engine saves, and the stream must hold the memory exactly
 * as it was at bgsnap_begin, in memory (through the pool of copies) and in
 * a file (copied straight into it).
 */
#include "migration/background-snapshot.h"
#include "util/error.h"
#include <glib/gstdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { PAGES = 8192, TOUCHED = 4096 }; /* 16 of the engine's 2 MiB chunks, half of them touched */

typedef struct Writer {
    uint8_t *mem;
    gint stop;
    gint passes;
} Writer;

static void fill(uint8_t *page, uint64_t index, uint64_t gen)
{
    for (unsigned i = 0; i < RAM_PAGE_SIZE / 8; i++) {
        ((uint64_t *)page)[i] = index * 1000003 + gen * 7919 + i;
    }
}

/* Rewrite every page, in order then from the far end, until told to stop. */
static gpointer writer(gpointer p)
{
    Writer *wr = p;
    while (!g_atomic_int_get(&wr->stop)) {
        for (uint64_t i = 0; i < PAGES; i++) {
            uint64_t page = g_atomic_int_get(&wr->passes) % 2 ? PAGES - 1 - i : i;
            fill(wr->mem + page * RAM_PAGE_SIZE, page, 2);
        }
        g_atomic_int_inc(&wr->passes);
    }
    return NULL;
}

typedef struct Pacer {
    unsigned steps, cancel_after;
} Pacer;

static bool pacer_cancelled(void *opaque)
{
    Pacer *p = opaque;
    return p->cancel_after && p->steps >= p->cancel_after;
}

/* A slow walk (1 ms a step), so the writer gets ahead of it and faults. */
static int64_t pacer_pace(void *opaque, const RamStats *ram)
{
    Pacer *p = opaque;
    return p->steps++ % 2 ? 0 : 1000;
}

static const BgSnapshotOps pacer_ops = { .cancelled = pacer_cancelled, .pace = pacer_pace };

static uint8_t *guest_memory(void)
{
    uint8_t *mem = mmap(NULL, PAGES * RAM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert_true(mem != MAP_FAILED);
    for (uint64_t i = 0; i < TOUCHED; i++) {
        fill(mem + i * RAM_PAGE_SIZE, i, 1);
    }
    return mem;
}

static bool host_can(void)
{
    g_autoptr(GError) err = NULL;
    if (!bgsnap_supported(&err)) {
        g_test_skip(err->message);
        return false;
    }
    return true;
}

/* Guest memory as one RAM block, its snapshot begun, if this host can snapshot it. */
typedef struct Fixture {
    RamBlock block;
    GPtrArray *blocks;
    BgSnapshot *snap;
    MigWriter *w;
    char *path; /* the stream's file, or NULL: in memory */
    int fd;
} Fixture;

static bool setup(Fixture *f, bool to_file, bool save_first)
{
    if (!host_can()) {
        return false;
    }
    f->block = (RamBlock){ "pc.ram", guest_memory(), PAGES * RAM_PAGE_SIZE };
    f->blocks = g_ptr_array_new();
    g_ptr_array_add(f->blocks, &f->block);
    g_autoptr(GError) err = NULL;
    f->path = NULL;
    f->fd = to_file ? g_file_open_tmp("vireo-bgsnap-XXXXXX", &f->path, &err) : -1;
    g_assert_no_error(err);
    f->w = mig_writer_new(f->fd);
    g_assert_true(mig_writer_is_mapped(f->w) == to_file);
    f->snap = bgsnap_new(f->blocks, f->w, &err);
    g_assert_no_error(err);
    if (save_first) {
        /* As the vCPUs' registers would name them: a page, a range over two chunks, an untouched chunk, again. */
        const size_t chunk = 2u << 20;
        bgsnap_save_first(f->snap, f->block.host + 3 * chunk + 100, 1);
        bgsnap_save_first(f->snap, f->block.host + 8 * chunk - RAM_PAGE_SIZE, 2 * RAM_PAGE_SIZE);
        bgsnap_save_first(f->snap, f->block.host + 12 * chunk, chunk);
        bgsnap_save_first(f->snap, f->block.host + 3 * chunk, RAM_PAGE_SIZE);
        bgsnap_save_first(f->snap, f->block.host + PAGES * RAM_PAGE_SIZE, RAM_PAGE_SIZE); /* not RAM: ignored */
    }
    g_assert_true(bgsnap_begin(f->snap, &err));
    g_assert_no_error(err);
    return true;
}

static void teardown(Fixture *f)
{
    mig_writer_free(f->w);
    if (f->path) {
        close(f->fd);
        g_unlink(f->path);
        g_free(f->path);
    }
    munmap(f->block.host, PAGES * RAM_PAGE_SIZE);
    g_ptr_array_unref(f->blocks);
}

/* The stream written so far, ended. */
static GBytes *stream_data(Fixture *f)
{
    mig_write_end(f->w);
    if (!f->path) {
        return mig_writer_data(f->w);
    }
    g_autoptr(GError) err = NULL;
    g_assert_true(mig_writer_flush(f->w, &err));
    char *data;
    gsize len;
    g_assert_true(g_file_get_contents(f->path, &data, &len, &err));
    return g_bytes_new_take(data, len);
}

static void one_point_in_time(bool to_file, bool save_first)
{
    Fixture f;
    if (!setup(&f, to_file, save_first)) {
        return;
    }
    uint8_t *mem = f.block.host;
    BgSnapshot *snap = f.snap;
    g_autoptr(GError) err = NULL;

    Writer wr = { .mem = mem };
    GThread *t = g_thread_new("writer", writer, &wr);
    RamStats ram = { 0 };
    Pacer pacer = { 0 };
    g_assert_true(bgsnap_save(snap, &pacer_ops, &pacer, &ram, &err));
    g_assert_no_error(err);
    BgSnapshotStats stats;
    bgsnap_stats(snap, &stats);
    bgsnap_end(snap);
    while (g_atomic_int_get(&wr.passes) < 2) {
        g_usleep(1000); /* every page writable again: the writer finishes passes */
    }
    g_atomic_int_set(&wr.stop, 1);
    g_thread_join(t);
    g_assert_cmpuint(ram.pages, ==, PAGES);
    g_assert_cmpuint(stats.faults, >, 0);
    g_test_message("%" G_GUINT64_FORMAT " faults, %" G_GUINT64_FORMAT " pages saved for them", stats.faults,
                   stats.fault_pages);

    /* Loaded, the stream is the memory at bgsnap_begin: the first pass's pages, the rest zero. */
    g_autoptr(GBytes) data = stream_data(&f);
    g_autofree uint8_t *dst = g_malloc0(PAGES * RAM_PAGE_SIZE);
    RamBlock to = { "pc.ram", dst, PAGES * RAM_PAGE_SIZE };
    g_autoptr(GPtrArray) to_blocks = g_ptr_array_new();
    g_ptr_array_add(to_blocks, &to);
    g_autoptr(MigReader) r = mig_reader_new_bytes(data);
    MigSection sec;
    while (mig_read_section_header(r, &sec, &err) && sec.kind == MIG_SECTION_RAM) {
        g_assert_true(ram_load_section(r, &sec, to_blocks, NULL, &err));
        mig_section_clear(&sec);
    }
    g_assert_no_error(err);
    g_assert_cmpint(sec.kind, ==, MIG_SECTION_END);
    mig_section_clear(&sec);
    g_assert_cmpuint(mig_reader_bytes(r), ==, g_bytes_get_size(data)); /* nothing after the end */
    g_autofree uint8_t *want = g_malloc0(RAM_PAGE_SIZE);
    for (uint64_t i = 0; i < PAGES; i++) {
        memset(want, 0, RAM_PAGE_SIZE);
        if (i < TOUCHED) {
            fill(want, i, 1);
        }
        if (memcmp(dst + i * RAM_PAGE_SIZE, want, RAM_PAGE_SIZE)) {
            g_error("page %" G_GUINT64_FORMAT " is not as it was at the snapshot's start", i);
        }
    }
    teardown(&f);
}

static void test_one_point_in_time(void)
{
    one_point_in_time(false, false);
}

static void test_one_point_in_time_file(void)
{
    one_point_in_time(true, false);
}

/* Chunks saved first (the walk takes them before its turn; to a file, a thread of their own too). */
static void test_first_chunks(void)
{
    one_point_in_time(false, true);
}

static void test_first_chunks_file(void)
{
    one_point_in_time(true, true);
}

/* A cancel midway fails the save, and bgsnap_end leaves nothing protected. */
static void test_cancel(void)
{
    Fixture f;
    if (!setup(&f, false, false)) {
        return;
    }
    uint8_t *mem = f.block.host;
    BgSnapshot *snap = f.snap;
    g_autoptr(GError) err = NULL;
    RamStats ram = { 0 };
    Pacer pacer = { .cancel_after = 4 };
    g_assert_false(bgsnap_save(snap, &pacer_ops, &pacer, &ram, &err));
    g_assert_error(err, VIREO_ERROR, VIREO_ERROR_FAILED);
    g_assert_cmpuint(ram.pages, <, PAGES);
    bgsnap_end(snap);
    Writer wr = { .mem = mem };
    wr.stop = 0;
    GThread *t = g_thread_new("writer", writer, &wr);
    while (g_atomic_int_get(&wr.passes) < 1) {
        g_usleep(1000);
    }
    g_atomic_int_set(&wr.stop, 1);
    g_thread_join(t);
    teardown(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/background-snapshot/one-point-in-time", test_one_point_in_time);
    g_test_add_func("/background-snapshot/one-point-in-time-file", test_one_point_in_time_file);
    g_test_add_func("/background-snapshot/first-chunks", test_first_chunks);
    g_test_add_func("/background-snapshot/first-chunks-file", test_first_chunks_file);
    g_test_add_func("/background-snapshot/cancel", test_cancel);
    return g_test_run();
}
