/*
 * virtio-blk against rings a test writes the way Linux's driver does, on a
 * real image file: the device's own thread takes the kick from the notify
 * eventfd, the block workers complete into the used ring. Read/write,
 * flush, GET_ID, discard and write-zeroes, requests a guest gets wrong
 * (IOERR, UNSUPP, a broken device), a host I/O error, a read-only drive.
 */
#include "hw/virtio/virtio-blk.h"
#include "util/container-of.h"
#include <glib/gstdio.h>
#include <errno.h>
#include <linux/virtio_blk.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define RAM_SIZE (1 << 20)
#define QSIZE 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define HDR 0x4000
#define STATUS 0x4100
#define DATA 0x10000
#define DISK_SIZE (1 << 20)

typedef struct T T;
static T *current; /* the test's device, for the transport's notify */

struct T {
    Machine m;
    uint8_t *ram;
    VirtioDevice *vdev;
    char *dir, *path;
    uint16_t next_used;
    gint config_irqs;
};

static void *gpa_to_hva(Machine *m, uint64_t gpa, uint64_t len)
{
    T *t = container_of(m, T, m);
    return gpa + len >= gpa && gpa + len <= RAM_SIZE ? t->ram + gpa : NULL;
}

static void record_notify(VirtioDevice *vdev, uint16_t vector, uint8_t isr)
{
    T *t = current;
    if (isr & VIRTIO_ISR_CONFIG) {
        g_atomic_int_inc(&t->config_irqs);
    }
}

static const VirtioTransportOps transport = { .notify = record_notify };

static struct vring_desc *desc(T *t)
{
    return (struct vring_desc *)(t->ram + DESC);
}

static struct vring_avail *avail(T *t)
{
    return (struct vring_avail *)(t->ram + AVAIL);
}

static struct vring_used *used(T *t)
{
    return (struct vring_used *)(t->ram + USED);
}

/* A disk of DISK_SIZE bytes filled with @fill, its device started by a driver that accepted every feature. */
static void setup(T *t, int fill, bool read_only, const char *serial)
{
    memset(t, 0, sizeof(*t));
    current = t;
    t->ram = g_malloc0(RAM_SIZE);
    t->m.gpa_to_hva = gpa_to_hva;
    t->dir = g_dir_make_tmp("vireo-vblk-XXXXXX", NULL);
    t->path = g_build_filename(t->dir, "disk.img", NULL);
    g_autofree char *buf = g_malloc(DISK_SIZE);
    memset(buf, fill, DISK_SIZE);
    g_assert_true(g_file_set_contents(t->path, buf, DISK_SIZE, NULL));
    BlockConfig bc = { .id = "d0", .filename = t->path, .read_only = read_only, .discard_unmap = true };
    g_autoptr(GError) err = NULL;
    BlockBackend *blk = block_backend_open(&bc, "-drive test", &err);
    g_assert_no_error(err);
    VirtioBlkConf conf = { .serial = serial, .queue_size = QSIZE, .discard = true, .write_zeroes = true };
    t->vdev = virtio_blk_new(&t->m, blk, &conf);
    t->vdev->transport = &transport;
    t->vdev->guest_features = t->vdev->host_features;
    virtio_device_set_status(t->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                          VIRTIO_CONFIG_S_FEATURES_OK);
    g_assert_true(t->vdev->status & VIRTIO_CONFIG_S_FEATURES_OK);
    VirtQueueConfig *q = virtqueue_config(virtio_queue(t->vdev, 0));
    *q = (VirtQueueConfig){ .size = QSIZE, .vector = 1, .desc = DESC, .avail = AVAIL, .used = USED };
    virtqueue_enable(virtio_queue(t->vdev, 0));
    virtio_device_set_status(t->vdev, t->vdev->status | VIRTIO_CONFIG_S_DRIVER_OK);
}

static void teardown(T *t)
{
    virtio_blk_free(t->vdev);
    g_unlink(t->path);
    g_rmdir(t->dir);
    g_free(t->path);
    g_free(t->dir);
    g_free(t->ram);
}

static void kick(T *t)
{
    uint64_t one = 1;
    g_assert_cmpint(write(virtqueue_notify_fd(virtio_queue(t->vdev, 0)), &one, sizeof(one)), ==, sizeof(one));
}

/* Wait for the device to use the next chain; its used length. */
static uint32_t wait_used(T *t)
{
    for (unsigned i = 0; __atomic_load_n(&used(t)->idx, __ATOMIC_ACQUIRE) == t->next_used; i++) {
        g_assert_cmpuint(i, <, 100000); /* 100 s: the device lost the request */
        g_usleep(1000);
    }
    struct vring_used_elem e = used(t)->ring[t->next_used % QSIZE];
    t->next_used++;
    g_assert_cmpuint(e.id, ==, 0);
    return e.len;
}

/* One request: header, @len bytes of data at DATA (device-writable if @in), status. Returns the status byte. */
static uint8_t request(T *t, uint32_t type, uint64_t sector, uint32_t len, bool in, uint32_t *used_len)
{
    struct virtio_blk_outhdr hdr = { .type = type, .sector = sector };
    memcpy(t->ram + HDR, &hdr, sizeof(hdr));
    t->ram[STATUS] = 0xff;
    unsigned n = 0;
    desc(t)[n] = (struct vring_desc){ HDR, sizeof(hdr), VRING_DESC_F_NEXT, (uint16_t)(n + 1) };
    n++;
    if (len) {
        desc(t)[n] = (struct vring_desc){ DATA, len, VRING_DESC_F_NEXT | (in ? VRING_DESC_F_WRITE : 0),
                                          (uint16_t)(n + 1) };
        n++;
    }
    desc(t)[n] = (struct vring_desc){ STATUS, 1, VRING_DESC_F_WRITE, 0 };
    avail(t)->ring[avail(t)->idx % QSIZE] = 0;
    __atomic_store_n(&avail(t)->idx, avail(t)->idx + 1, __ATOMIC_RELEASE);
    kick(t);
    uint32_t u = wait_used(t);
    if (used_len) {
        *used_len = u;
    }
    return t->ram[STATUS];
}

static char *file_contents(T *t)
{
    char *c = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(t->path, &c, &len, NULL));
    g_assert_cmpuint(len, ==, DISK_SIZE);
    return c;
}

static void test_features_and_config(void)
{
    T t;
    setup(&t, 0, false, NULL);
    uint64_t f = t.vdev->host_features;
    g_assert_true(f & (1ULL << VIRTIO_BLK_F_FLUSH));
    g_assert_true(f & (1ULL << VIRTIO_BLK_F_SEG_MAX));
    g_assert_true(f & (1ULL << VIRTIO_BLK_F_BLK_SIZE));
    g_assert_true(f & (1ULL << VIRTIO_BLK_F_DISCARD));
    g_assert_true(f & (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
    g_assert_false(f & (1ULL << VIRTIO_BLK_F_RO));
    struct virtio_blk_config c;
    t.vdev->ops->config_read(t.vdev, 0, (uint8_t *)&c, sizeof(c));
    g_assert_cmpuint(c.capacity, ==, DISK_SIZE / 512);
    g_assert_cmpuint(c.seg_max, ==, QSIZE - 2);
    g_assert_cmpuint(c.blk_size, ==, 512);
    g_assert_cmpuint(c.max_discard_seg, ==, 1);
    teardown(&t);
}

static void test_read_write(void)
{
    T t;
    setup(&t, 0x5a, false, NULL);
    uint32_t ulen;
    for (int i = 0; i < 1024; i++) {
        t.ram[DATA + i] = (uint8_t)(i * 3);
    }
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_OUT, 3, 1024, false, &ulen), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpuint(ulen, ==, 1);
    g_autofree char *c = file_contents(&t);
    g_assert_cmpmem(c + 3 * 512, 1024, t.ram + DATA, 1024);
    g_assert_cmpint(c[3 * 512 - 1], ==, 0x5a);
    g_assert_cmpint(c[5 * 512], ==, 0x5a);

    memset(t.ram + DATA, 0, 2048);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_IN, 2, 2048, true, &ulen), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpuint(ulen, ==, 2048 + 1);
    g_assert_cmpint(t.ram[DATA], ==, 0x5a);
    g_assert_cmpmem(t.ram + DATA + 512, 1024, c + 3 * 512, 1024);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), ==, VIRTIO_BLK_S_OK);
    teardown(&t);
}

/* What a guest gets wrong is answered, not obeyed: past the end, partial sectors, unknown types. */
static void test_bad_requests(void)
{
    T t;
    setup(&t, 0x5a, false, NULL);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_IN, DISK_SIZE / 512 - 1, 1024, true, NULL), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_OUT, UINT64_MAX, 512, false, NULL), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_OUT, 0, 100, false, NULL), ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(request(&t, 0x42, 0, 512, true, NULL), ==, VIRTIO_BLK_S_UNSUPP);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_SCSI_CMD, 0, 512, true, NULL), ==, VIRTIO_BLK_S_UNSUPP);
    /* Discard with a flag it does not know, or two segments. */
    struct virtio_blk_discard_write_zeroes seg[2] = { { 0, 8, 1 }, { 8, 8, 0 } };
    memcpy(t.ram + DATA, seg, sizeof(seg));
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_DISCARD, 0, sizeof(seg[0]), false, NULL), ==, VIRTIO_BLK_S_UNSUPP);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_DISCARD, 0, sizeof(seg), false, NULL), ==, VIRTIO_BLK_S_UNSUPP);
    /* The device still works. */
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_IN, 0, 512, true, NULL), ==, VIRTIO_BLK_S_OK);
    g_assert_false(virtio_device_is_broken(t.vdev));
    teardown(&t);
}

/* A request without a whole header breaks the device (one line, NEEDS_RESET); a reset mends it. */
static void test_malformed_header(void)
{
    T t;
    setup(&t, 0, false, NULL);
    g_test_expect_message("virtio", G_LOG_LEVEL_WARNING, "virtio-blk: the guest driver broke the device (*header*");
    desc(&t)[0] = (struct vring_desc){ HDR, 8, VRING_DESC_F_NEXT, 1 };
    desc(&t)[1] = (struct vring_desc){ STATUS, 1, VRING_DESC_F_WRITE, 0 };
    avail(&t)->ring[0] = 0;
    __atomic_store_n(&avail(&t)->idx, 1, __ATOMIC_RELEASE);
    kick(&t);
    for (unsigned i = 0; !virtio_device_is_broken(t.vdev); i++) {
        g_assert_cmpuint(i, <, 100000);
        g_usleep(1000);
    }
    virtio_device_set_status(t.vdev, 0); /* the driver's reset: stops the I/O thread */
    g_test_assert_expected_messages();
    g_assert_cmpint(g_atomic_int_get(&t.config_irqs), ==, 1);
    g_assert_cmpuint(used(&t)->idx, ==, 0);
    teardown(&t);
}

static void test_get_id(void)
{
    T t;
    setup(&t, 0, false, "VIREO-0123456789-ABCDEF");
    uint32_t ulen;
    memset(t.ram + DATA, 0xee, 64);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, true, &ulen), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpuint(ulen, ==, VIRTIO_BLK_ID_BYTES + 1);
    g_assert_cmpmem(t.ram + DATA, VIRTIO_BLK_ID_BYTES, "VIREO-0123456789-ABC", VIRTIO_BLK_ID_BYTES);
    teardown(&t);
    setup(&t, 0, false, "short");
    memset(t.ram + DATA, 0xee, 64);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, true, NULL), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpstr((char *)t.ram + DATA, ==, "short");
    teardown(&t);
}

static void test_discard_write_zeroes(void)
{
    T t;
    setup(&t, 0x5a, false, NULL);
    struct virtio_blk_discard_write_zeroes seg = { .sector = 8, .num_sectors = 16, .flags = 0 };
    memcpy(t.ram + DATA, &seg, sizeof(seg));
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_WRITE_ZEROES, 0, sizeof(seg), false, NULL), ==, VIRTIO_BLK_S_OK);
    seg = (struct virtio_blk_discard_write_zeroes){ .sector = 64, .num_sectors = 64 };
    memcpy(t.ram + DATA, &seg, sizeof(seg));
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_DISCARD, 0, sizeof(seg), false, NULL), ==, VIRTIO_BLK_S_OK);
    seg = (struct virtio_blk_discard_write_zeroes){ .sector = DISK_SIZE / 512 - 1, .num_sectors = 2 };
    memcpy(t.ram + DATA, &seg, sizeof(seg));
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_WRITE_ZEROES, 0, sizeof(seg), false, NULL), ==, VIRTIO_BLK_S_IOERR);
    g_autofree char *c = file_contents(&t);
    g_assert_cmpint(c[8 * 512 - 1], ==, 0x5a);
    for (int i = 8 * 512; i < 24 * 512; i++) {
        g_assert_cmpint(c[i], ==, 0);
    }
    g_assert_cmpint(c[24 * 512], ==, 0x5a);
    g_assert_cmpint(c[64 * 512], ==, 0); /* discard=unmap: a hole */
    g_assert_cmpint(c[128 * 512], ==, 0x5a);
    teardown(&t);
}

/* A host write error (here the process's file size limit, EFBIG) becomes IOERR; the device carries on. */
static void test_host_error(void)
{
    T t;
    setup(&t, 0, false, NULL);
    struct rlimit old, lim;
    g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &old), ==, 0);
    lim = (struct rlimit){ 4096, old.rlim_max };
    signal(SIGXFSZ, SIG_IGN);
    g_test_expect_message("virtio-blk", G_LOG_LEVEL_WARNING, "virtio-blk: host I/O error on '*': File too large (*");
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &lim), ==, 0);
    uint8_t bad2 = request(&t, VIRTIO_BLK_T_OUT, 128, 512, false, NULL);
    uint8_t bad = request(&t, VIRTIO_BLK_T_OUT, 64, 512, false, NULL);
    uint8_t good = request(&t, VIRTIO_BLK_T_OUT, 0, 512, false, NULL);
    g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &old), ==, 0);
    g_test_assert_expected_messages();
    g_assert_cmpuint(bad, ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(bad2, ==, VIRTIO_BLK_S_IOERR);
    g_assert_cmpuint(good, ==, VIRTIO_BLK_S_OK);
    g_assert_false(virtio_device_is_broken(t.vdev));
    teardown(&t);
}

static void test_read_only(void)
{
    T t;
    setup(&t, 0x5a, true, NULL);
    g_assert_true(t.vdev->host_features & (1ULL << VIRTIO_BLK_F_RO));
    g_assert_false(t.vdev->host_features & (1ULL << VIRTIO_BLK_F_DISCARD));
    memset(t.ram + DATA, 0x11, 512);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_OUT, 0, 512, false, NULL), ==, VIRTIO_BLK_S_IOERR);
    struct virtio_blk_discard_write_zeroes seg = { .sector = 0, .num_sectors = 1 };
    memcpy(t.ram + DATA, &seg, sizeof(seg));
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_WRITE_ZEROES, 0, sizeof(seg), false, NULL), ==, VIRTIO_BLK_S_UNSUPP);
    g_assert_cmpuint(request(&t, VIRTIO_BLK_T_IN, 0, 512, true, NULL), ==, VIRTIO_BLK_S_OK);
    g_assert_cmpint(t.ram[DATA], ==, 0x5a);
    g_autofree char *c = file_contents(&t);
    g_assert_cmpint(c[0], ==, 0x5a);
    teardown(&t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-blk/features-config", test_features_and_config);
    g_test_add_func("/virtio-blk/read-write", test_read_write);
    g_test_add_func("/virtio-blk/bad-requests", test_bad_requests);
    g_test_add_func("/virtio-blk/malformed-header", test_malformed_header);
    g_test_add_func("/virtio-blk/get-id", test_get_id);
    g_test_add_func("/virtio-blk/discard-write-zeroes", test_discard_write_zeroes);
    g_test_add_func("/virtio-blk/host-error", test_host_error);
    g_test_add_func("/virtio-blk/read-only", test_read_only);
    return g_test_run();
}
