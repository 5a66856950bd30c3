/* Block backends on real files: I/O through the workers, the options that open them, the errors. */
#include "block/block.h"
#include <glib/gstdio.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024 * 1024)

/* A tmpfs of a few KiB for the out-of-space test, when this process may mount one. */
static char *tiny_dir;

typedef struct {
    GMutex lock;
    GCond cond;
    unsigned done;
    int ret;
    GThread *thread;
} Waiter;

static void waiter_cb(void *opaque, int ret)
{
    Waiter *w = opaque;
    g_mutex_lock(&w->lock);
    w->done++;
    w->ret = ret;
    w->thread = g_thread_self();
    g_cond_signal(&w->cond);
    g_mutex_unlock(&w->lock);
}

/* Wait for @n completions; the last one's result. */
static int waiter_wait(Waiter *w, unsigned n)
{
    g_mutex_lock(&w->lock);
    while (w->done < n) {
        g_cond_wait(&w->cond, &w->lock);
    }
    w->done = 0;
    int ret = w->ret;
    g_mutex_unlock(&w->lock);
    return ret;
}

static char *make_file(const char *dir, const char *name, size_t size, int fill)
{
    char *path = g_build_filename(dir, name, NULL);
    g_autofree char *buf = g_malloc(size);
    memset(buf, fill, size);
    g_assert_true(g_file_set_contents(path, buf, (gssize)size, NULL));
    return path;
}

static char *tmpdir(void)
{
    char *dir = g_dir_make_tmp("vireo-block-XXXXXX", NULL);
    g_assert_nonnull(dir);
    return dir;
}

static void rm_rf(const char *dir)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    g_assert_cmpint(system(cmd), ==, 0);
}

static BlockBackend *open_conf(BlockConfig conf)
{
    g_autoptr(GError) err = NULL;
    BlockBackend *blk = block_backend_open(&conf, "-drive test", &err);
    g_assert_no_error(err);
    return blk;
}

static int do_rw(BlockBackend *blk, bool write, uint64_t off, struct iovec *iov, unsigned cnt)
{
    Waiter w = { 0 };
    (write ? block_backend_pwritev : block_backend_preadv)(blk, off, iov, cnt, waiter_cb, &w);
    int ret = waiter_wait(&w, 1);
    g_assert_true(w.thread != g_thread_self());
    return ret;
}

static void test_read_write(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = make_file(dir, "disk.img", MiB, 0xaa);
    g_autoptr(BlockBackend) blk = open_conf((BlockConfig){ .filename = path });
    g_assert_cmpuint(block_backend_size(blk), ==, MiB);
    g_assert_false(block_backend_read_only(blk));

    char a[1000], b[3096];
    memset(a, 'A', sizeof(a));
    memset(b, 'B', sizeof(b));
    struct iovec wv[] = { { a, sizeof(a) }, { b, sizeof(b) } };
    g_assert_cmpint(do_rw(blk, true, 8192, wv, 2), ==, 0);

    g_autofree char *contents = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    g_assert_cmpuint(len, ==, MiB);
    g_assert_cmpint(contents[8191], ==, (char)0xaa);
    g_assert_cmpint(contents[8192], ==, 'A');
    g_assert_cmpint(contents[8192 + 999], ==, 'A');
    g_assert_cmpint(contents[8192 + 1000], ==, 'B');
    g_assert_cmpint(contents[8192 + 4095], ==, 'B');
    g_assert_cmpint(contents[8192 + 4096], ==, (char)0xaa);

    char r1[4000], r2[96 + 512];
    struct iovec rv[] = { { r1, sizeof(r1) }, { r2, sizeof(r2) } };
    g_assert_cmpint(do_rw(blk, false, 8192, rv, 2), ==, 0);
    g_assert_cmpint(memcmp(r1, a, 1000), ==, 0);
    g_assert_cmpint(r1[1000], ==, 'B');
    g_assert_cmpint(r2[95], ==, 'B');
    g_assert_cmpint(r2[96], ==, (char)0xaa);

    /* Beyond the end of the disk: an error, not a longer file. */
    g_assert_cmpint(do_rw(blk, true, MiB - 512, wv, 2), ==, -EIO);
    g_assert_cmpint(do_rw(blk, false, MiB, rv, 1), ==, -EIO);

    Waiter w = { 0 };
    block_backend_flush(blk, waiter_cb, &w);
    g_assert_cmpint(waiter_wait(&w, 1), ==, 0);
    g_clear_pointer(&blk, block_backend_close);
    rm_rf(dir);
}

static uint64_t allocated(const char *path)
{
    struct stat st;
    g_assert_cmpint(stat(path, &st), ==, 0);
    return (uint64_t)st.st_blocks * 512;
}

static void test_discard_and_zeroes(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = make_file(dir, "disk.img", 4 * MiB, 0x55);
    Waiter w = { 0 };
    char buf[4096];
    struct iovec v = { buf, sizeof(buf) };

    /* discard=ignore (QEMU's default): the data stays. */
    BlockBackend *blk = open_conf((BlockConfig){ .filename = path });
    block_backend_discard(blk, 0, MiB, waiter_cb, &w);
    g_assert_cmpint(waiter_wait(&w, 1), ==, 0);
    g_assert_cmpint(do_rw(blk, false, 0, &v, 1), ==, 0);
    g_assert_cmpint(buf[0], ==, 0x55);
    /* Write-zeroes zeroes regardless. */
    block_backend_write_zeroes(blk, 4096, 8192, false, waiter_cb, &w);
    g_assert_cmpint(waiter_wait(&w, 1), ==, 0);
    g_assert_cmpint(do_rw(blk, false, 4096, &v, 1), ==, 0);
    g_assert_cmpint(buf[0], ==, 0);
    g_assert_cmpint(buf[4095], ==, 0);
    g_assert_cmpint(do_rw(blk, false, 12288, &v, 1), ==, 0);
    g_assert_cmpint(buf[0], ==, 0x55);
    block_backend_close(blk);

    /* discard=unmap: holes, which read as zeroes and free the space. */
    uint64_t before = allocated(path);
    blk = open_conf((BlockConfig){ .filename = path, .discard_unmap = true });
    block_backend_discard(blk, MiB, MiB, waiter_cb, &w);
    g_assert_cmpint(waiter_wait(&w, 1), ==, 0);
    block_backend_write_zeroes(blk, 2 * MiB, MiB, true, waiter_cb, &w);
    g_assert_cmpint(waiter_wait(&w, 1), ==, 0);
    g_assert_cmpuint(allocated(path), <=, before - 2 * MiB);
    g_assert_cmpint(do_rw(blk, false, MiB + 4096, &v, 1), ==, 0);
    g_assert_cmpint(buf[0], ==, 0);
    g_assert_cmpint(do_rw(blk, false, 3 * MiB, &v, 1), ==, 0);
    g_assert_cmpint(buf[0], ==, 0x55);
    block_backend_close(blk);
    rm_rf(dir);
}

static void test_read_only(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = make_file(dir, "disk.img", 65536, 0x11);
    g_assert_cmpint(chmod(path, 0444), ==, 0);
    g_autoptr(BlockBackend) blk = open_conf((BlockConfig){ .filename = path, .read_only = true, .discard_unmap = true });
    g_assert_true(block_backend_read_only(blk));
    char buf[512];
    memset(buf, 0x22, sizeof(buf));
    struct iovec v = { buf, sizeof(buf) };
    Waiter w = { 0 };
    g_assert_cmpint(do_rw(blk, true, 0, &v, 1), ==, -EROFS);
    block_backend_discard(blk, 0, 4096, waiter_cb, &w);
    g_assert_cmpint(waiter_wait(&w, 1), ==, -EROFS);
    block_backend_write_zeroes(blk, 0, 4096, true, waiter_cb, &w);
    g_assert_cmpint(waiter_wait(&w, 1), ==, -EROFS);
    block_backend_flush(blk, waiter_cb, &w);
    g_assert_cmpint(waiter_wait(&w, 1), ==, 0);
    g_assert_cmpint(do_rw(blk, false, 0, &v, 1), ==, 0);
    g_assert_cmpint(buf[0], ==, 0x11);
    g_clear_pointer(&blk, block_backend_close);
    rm_rf(dir);
}

/* cache=none: O_DIRECT, with guest buffers that are not aligned going through a bounce buffer. */
static void test_direct_unaligned(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = make_file(dir, "disk.img", MiB, 0);
    g_autoptr(GError) err = NULL;
    BlockConfig conf = { .filename = path, .direct = true };
    BlockBackend *blk = block_backend_open(&conf, "-drive test", &err);
    if (!blk) {
        g_test_skip(err->message);
        rm_rf(dir);
        return;
    }
    g_autofree char *mem = g_malloc(8192 + 1);
    char *odd = mem + 1;
    for (int i = 0; i < 8192; i++) {
        odd[i] = (char)(i * 7);
    }
    struct iovec v[] = { { odd, 1000 }, { odd + 1000, 7192 } };
    g_assert_cmpint(do_rw(blk, true, 4096, v, 2), ==, 0);
    g_autofree char *back = g_malloc0(8192 + 3);
    struct iovec r = { back + 3, 8192 };
    g_assert_cmpint(do_rw(blk, false, 4096, &r, 1), ==, 0);
    g_assert_cmpint(memcmp(back + 3, odd, 8192), ==, 0);
    /* An aligned request goes straight through. */
    void *al = NULL;
    g_assert_cmpint(posix_memalign(&al, 4096, 4096), ==, 0);
    struct iovec a = { al, 4096 };
    g_assert_cmpint(do_rw(blk, false, 8192, &a, 1), ==, 0);
    g_assert_cmpint(memcmp(al, odd + 4096, 4096), ==, 0);
    free(al);
    block_backend_close(blk);
    rm_rf(dir);
}

/* A host I/O error reaches the callback as -errno: a file size limit (EFBIG). */
static void test_error_fsize(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = g_build_filename(dir, "disk.img", NULL);
    int fd = open(path, O_CREAT | O_RDWR, 0644);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, 4 * MiB), ==, 0);
    close(fd);
    g_autoptr(BlockBackend) blk = open_conf((BlockConfig){ .filename = path });
    struct rlimit old, lim = { MiB, MiB };
    g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &old), ==, 0);
    lim.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &lim), ==, 0);
    char buf[4096] = { 1 };
    struct iovec v = { buf, sizeof(buf) };
    int ret = do_rw(blk, true, 2 * MiB, &v, 1);
    int ok = do_rw(blk, true, 0, &v, 1);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &old), ==, 0);
    g_assert_cmpint(ret, ==, -EFBIG);
    g_assert_cmpint(ok, ==, 0);
    g_clear_pointer(&blk, block_backend_close);
    rm_rf(dir);
}

/* The disk is bigger than the file system under it: writes past its space fail with ENOSPC. */
static void test_error_nospace(void)
{
    if (!tiny_dir) {
        g_test_skip("no tiny tmpfs (needs a mount namespace)");
        return;
    }
    g_autofree char *path = g_build_filename(tiny_dir, "disk.img", NULL);
    int fd = open(path, O_CREAT | O_RDWR, 0644);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, 16 * MiB), ==, 0);
    close(fd);
    g_autoptr(BlockBackend) blk = open_conf((BlockConfig){ .filename = path });
    g_autofree char *buf = g_malloc0(MiB);
    struct iovec v = { buf, MiB };
    int ret = 0;
    for (unsigned i = 0; i < 16 && ret == 0; i++) {
        ret = do_rw(blk, true, (uint64_t)i * MiB, &v, 1);
    }
    g_assert_cmpint(ret, ==, -ENOSPC);
    g_clear_pointer(&blk, block_backend_close);
    g_unlink(path);
}

static void count_cb(void *opaque, int ret)
{
    g_assert_cmpint(ret, ==, 0);
    g_atomic_int_inc((gint *)opaque);
}

/* Close waits for every request in flight. */
static void test_drain(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = make_file(dir, "disk.img", MiB, 0);
    BlockBackend *blk = open_conf((BlockConfig){ .filename = path, .writethrough = true });
    g_assert_false(block_backend_writeback(blk));
    static char buf[64][4096];
    static struct iovec v[64];
    gint done = 0;
    for (int i = 0; i < 64; i++) {
        memset(buf[i], i, sizeof(buf[i]));
        v[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
        block_backend_pwritev(blk, (uint64_t)i * 4096, &v[i], 1, count_cb, &done);
    }
    block_backend_flush(blk, count_cb, &done);
    block_backend_close(blk);
    g_assert_cmpint(g_atomic_int_get(&done), ==, 65);
    g_autofree char *contents = NULL;
    g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
    for (int i = 0; i < 64; i++) {
        g_assert_cmpint(contents[i * 4096 + 100], ==, i);
    }
    rm_rf(dir);
}

/* Command-line helpers: a VmConfig from words, and the -device that asks for a drive. */
static VmConfig *parse(const char *const *words)
{
    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, "vireo");
    for (size_t i = 0; words[i]; i++) {
        g_ptr_array_add(argv, (gpointer)words[i]);
    }
    VmConfig *cfg = vm_config_new();
    g_autoptr(GError) err = NULL;
    g_assert_true(vm_config_parse(cfg, (int)argv->len, (char **)argv->pdata, &err));
    g_ptr_array_unref(argv);
    return cfg;
}

static BlockBackend *open_id(const char *const *words, const char *id, GError **err)
{
    g_autoptr(VmConfig) cfg = parse(words);
    VmOpt user = { "device", "virtio-blk-pci,drive=x", NULL };
    return block_backend_open_by_id(cfg, &user, id, err);
}

static void test_options(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = make_file(dir, "disk.img", 65536, 0);
    g_autofree char *drive = g_strdup_printf("file=%s,if=none,id=d0,format=raw,readonly=on,serial=SN1,cache=none",
                                             path);
    g_autoptr(GError) err = NULL;
    BlockBackend *blk = open_id((const char *[]){ "-drive", drive, NULL }, "d0", &err);
    g_assert_no_error(err);
    g_assert_true(block_backend_read_only(blk));
    g_assert_cmpstr(block_backend_serial(blk), ==, "SN1");
    g_assert_cmpstr(block_backend_id(blk), ==, "d0");
    g_assert_cmpuint(block_backend_size(blk), ==, 65536);
    block_backend_close(blk);

    /* Unnamed if=virtio drives are virtio0, virtio1, ... as in QEMU. */
    g_autofree char *v1 = g_strdup_printf("file=%s,if=virtio", path);
    g_autofree char *v2 = g_strdup_printf("file=%s,if=virtio,cache=writethrough,addr=5", path);
    const char *const two[] = { "-drive", v1, "-drive", v2, NULL };
    blk = open_id(two, "virtio1", &err);
    g_assert_no_error(err);
    g_assert_false(block_backend_writeback(blk));
    block_backend_close(blk);
    g_autoptr(VmConfig) cfg = parse(two);
    g_autoptr(GPtrArray) devs = block_drive_implied_devices(cfg, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(devs->len, ==, 2);
    const VmOpt *d1 = devs->pdata[1];
    g_assert_cmpstr(vm_opt_get(d1, "driver"), ==, "virtio-blk-pci");
    g_assert_cmpstr(vm_opt_get(d1, "drive"), ==, "virtio1");
    g_assert_cmpstr(vm_opt_get(d1, "addr"), ==, "5");
    g_assert_cmpstr(d1->option, ==, "drive");

    /* -blockdev, dotted and chained. */
    g_autofree char *dotted =
        g_strdup_printf("driver=raw,node-name=disk,file.driver=file,file.filename=%s,read-only=on,discard=unmap", path);
    blk = open_id((const char *[]){ "-blockdev", dotted, NULL }, "disk", &err);
    g_assert_no_error(err);
    g_assert_true(block_backend_read_only(blk));
    g_assert_cmpstr(block_backend_filename(blk), ==, path);
    block_backend_close(blk);
    g_autofree char *f0 = g_strdup_printf("driver=file,node-name=f0,filename=%s,cache.direct=on,aio=threads", path);
    const char *const chained[] = { "-blockdev", f0, "-blockdev", "driver=raw,node-name=disk,file=f0", NULL };
    blk = open_id(chained, "disk", &err);
    g_assert_no_error(err);
    g_assert_false(block_backend_read_only(blk));
    block_backend_close(blk);
    blk = open_id(chained, "f0", &err); /* a file node used directly */
    g_assert_no_error(err);
    block_backend_close(blk);
    rm_rf(dir);
}

/* Each bad option gives one line naming it. */
static void test_option_errors(void)
{
    g_autofree char *dir = tmpdir();
    g_autofree char *path = make_file(dir, "disk.img", 65536, 0);
    g_autofree char *qcow = make_file(dir, "disk.qcow2", 65536, 0);
    g_assert_true(g_file_set_contents(qcow, "QFI\xfb\0\0\0\3", 8, NULL));
    g_autofree char *missing = g_build_filename(dir, "missing.img", NULL);
    struct {
        const char *opt, *arg, *id, *want;
    } cases[] = {
        { "-drive", "file=%s,if=none,id=d,format=qcow2", "d", "format=qcow2 is not supported" },
        { "-drive", "file=%s,id=d", "d", "QEMU's default (ide) is not available" },
        { "-drive", "file=%s,if=scsi,id=d", "d", "if=scsi is not available" },
        { "-drive", "file=%s,if=none,id=d,cache=fast", "d", "cache=fast: expected" },
        { "-drive", "file=%s,if=none,id=d,bogus=1", "d", "bogus" },
        { "-drive", "file=%s,if=none,id=d,readonly=maybe", "d", "readonly" },
        { "-drive", "file=%s,if=none,id=d,discard=sometimes", "d", "discard=sometimes" },
        { "-drive", "file=%s,if=none,id=d", "e", "drive 'e' not found" },
        { "-blockdev", "driver=qcow2,node-name=d,file.driver=file,file.filename=%s", "d", "driver=qcow2 is not supported" },
        { "-blockdev", "driver=raw,node-name=d,file.driver=file,file.filename=%s,file.bogus=1", "d", "file.bogus" },
        { "-blockdev", "driver=raw,node-name=d,file=nope,x=%s", "d", "file=nope: no -blockdev" },
        { "-blockdev", "driver=raw,node-name=d,file=d,x=%s", "d", "nest too deep" },
        { "-blockdev", "driver=raw,node-name=d,x=%s", "d", "driver=raw needs" },
        { "-blockdev", "driver=file,node-name=d,x=%s", "d", "needs filename=" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(GStrv) parts = g_strsplit(cases[i].arg, "%s", 2);
        g_autofree char *arg = g_strjoinv(path, parts);
        g_autoptr(GError) err = NULL;
        BlockBackend *blk = open_id((const char *[]){ cases[i].opt, arg, NULL }, cases[i].id, &err);
        g_assert_null(blk);
        g_assert_nonnull(err);
        g_test_message("%s", err->message);
        g_assert_nonnull(strstr(err->message, cases[i].want));
        g_assert_null(strchr(err->message, '\n'));
    }
    /* A qcow2 image without format= and a missing file. */
    const char *files[][2] = { { qcow, "is a qcow2 image" }, { missing, "No such file or directory" } };
    for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
        g_autofree char *arg = g_strdup_printf("file=%s,if=virtio", files[i][0]);
        g_autoptr(GError) err = NULL;
        g_assert_null(open_id((const char *[]){ "-drive", arg, NULL }, "virtio0", &err));
        g_test_message("%s", err->message);
        g_assert_nonnull(strstr(err->message, files[i][1]));
        g_assert_true(g_str_has_prefix(err->message, "-drive file="));
    }
    rm_rf(dir);
}

int main(int argc, char **argv)
{
    /* Before any thread exists: a private mount namespace with a 256 KiB tmpfs, if allowed (root). */
    if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0) {
        char *dir = g_dir_make_tmp("vireo-block-tiny-XXXXXX", NULL);
        if (dir && mount("vireo-tiny", dir, "tmpfs", 0, "size=256k") == 0) {
            tiny_dir = dir;
        }
    }
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/block/read-write", test_read_write);
    g_test_add_func("/block/discard-zeroes", test_discard_and_zeroes);
    g_test_add_func("/block/read-only", test_read_only);
    g_test_add_func("/block/direct-unaligned", test_direct_unaligned);
    g_test_add_func("/block/error-fsize", test_error_fsize);
    g_test_add_func("/block/error-nospace", test_error_nospace);
    g_test_add_func("/block/drain", test_drain);
    g_test_add_func("/block/options", test_options);
    g_test_add_func("/block/option-errors", test_option_errors);
    int ret = g_test_run();
    if (tiny_dir) {
        umount(tiny_dir);
        g_rmdir(tiny_dir);
    }
    return ret;
}
