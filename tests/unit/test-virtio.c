/*
 * The virtqueue core against rings a test writes the way a driver does:
 * chains in and out, event-index interrupt suppression, and every kind of
 * malformed chain breaking the device (NEEDS_RESET, a config interrupt)
 * rather than Vireo.
 */
#include "hw/virtio/virtio.h"
#include "util/container-of.h"
#include <string.h>

#define RAM_SIZE (1 << 20)
#define QSIZE 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define BUF 0x10000
#define CONFIG_VECTOR 0
#define QUEUE_VECTOR 1

typedef struct {
    Machine m;
    uint8_t *ram;
    VirtioDevice vdev;
    unsigned notifies[2]; /* by vector */
} T;

static void *gpa_to_hva(Machine *m, uint64_t gpa, uint64_t len)
{
    T *t = (T *)m;
    return gpa + len >= gpa && gpa + len <= RAM_SIZE ? t->ram + gpa : NULL;
}

static void record_notify(VirtioDevice *vdev, uint16_t vector, uint8_t isr)
{
    T *t = container_of(vdev, T, vdev);
    g_assert_cmpuint(vector, <, 2);
    t->notifies[vector]++;
}

static const VirtioTransportOps transport = { .notify = record_notify };
static const VirtioDeviceOps ops = { .device_id = 4 };

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

/* A driver that negotiated @features and enabled queue 0. */
static void setup(T *t, uint64_t features)
{
    memset(t, 0, sizeof(*t));
    t->ram = g_malloc0(RAM_SIZE);
    t->m.gpa_to_hva = gpa_to_hva;
    virtio_device_init(&t->vdev, &ops, &t->m, "test-dev", 0, 1, QSIZE);
    t->vdev.transport = &transport;
    t->vdev.guest_features = features | (1ULL << VIRTIO_F_VERSION_1);
    virtio_device_set_status(&t->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                           VIRTIO_CONFIG_S_FEATURES_OK);
    g_assert_true(t->vdev.status & VIRTIO_CONFIG_S_FEATURES_OK);
    t->vdev.config_vector = CONFIG_VECTOR;
    VirtQueueConfig *q = virtqueue_config(virtio_queue(&t->vdev, 0));
    q->size = QSIZE;
    q->vector = QUEUE_VECTOR;
    q->desc = DESC;
    q->avail = AVAIL;
    q->used = USED;
    virtqueue_enable(virtio_queue(&t->vdev, 0));
    virtio_device_set_status(&t->vdev, t->vdev.status | VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_true(virtqueue_ready(virtio_queue(&t->vdev, 0)));
}

static void teardown(T *t)
{
    virtio_device_cleanup(&t->vdev);
    g_free(t->ram);
}

static void put_desc(T *t, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    desc(t)[i] = (struct vring_desc){ addr, len, flags, next };
}

static void make_available(T *t, uint16_t head)
{
    avail(t)->ring[avail(t)->idx % QSIZE] = head;
    avail(t)->idx++;
}

/* The device logs exactly one line naming itself. */
static void expect_broken_line(void)
{
    g_test_expect_message("virtio", G_LOG_LEVEL_WARNING, "test-dev: the guest driver broke the device (*");
}

static void assert_broken(T *t)
{
    VirtQueue *vq = virtio_queue(&t->vdev, 0);
    expect_broken_line();
    g_assert_null(virtqueue_pop(vq));
    g_test_assert_expected_messages();
    g_assert_true(virtio_device_is_broken(&t->vdev));
    g_assert_true(t->vdev.status & VIRTIO_CONFIG_S_NEEDS_RESET);
    g_assert_cmpuint(t->notifies[CONFIG_VECTOR], ==, 1);
    /* Broken stays broken (no second log line, no second interrupt) until a reset. */
    make_available(t, 0);
    g_assert_null(virtqueue_pop(vq));
    g_assert_cmpuint(t->notifies[CONFIG_VECTOR], ==, 1);
    virtio_device_set_status(&t->vdev, 0);
    g_assert_false(virtio_device_is_broken(&t->vdev));
    g_assert_cmpuint(t->vdev.status, ==, 0);
}

static void test_chain_round_trip(void)
{
    T t;
    setup(&t, 0);
    VirtQueue *vq = virtio_queue(&t.vdev, 0);
    memcpy(t.ram + BUF, "request", 7);
    put_desc(&t, 0, BUF, 7, VRING_DESC_F_NEXT, 1);
    put_desc(&t, 1, BUF + 0x100, 16, VRING_DESC_F_WRITE, 0);
    make_available(&t, 0);
    VirtQueueElement *e = virtqueue_pop(vq);
    g_assert_nonnull(e);
    g_assert_cmpuint(e->out_num, ==, 1);
    g_assert_cmpuint(e->in_num, ==, 1);
    g_assert_cmpuint(e->out_len, ==, 7);
    g_assert_cmpuint(e->in_len, ==, 16);
    char buf[8] = { 0 };
    g_assert_cmpuint(iov_to_buf(e->out, e->out_num, 0, buf, 7), ==, 7);
    g_assert_cmpstr(buf, ==, "request");
    g_assert_cmpuint(iov_from_buf(e->in, e->in_num, 0, "reply", 5), ==, 5);
    virtqueue_push(vq, e, 5);
    virtqueue_notify(vq);
    g_assert_cmpuint(used(&t)->idx, ==, 1);
    g_assert_cmpuint(used(&t)->ring[0].id, ==, 0);
    g_assert_cmpuint(used(&t)->ring[0].len, ==, 5);
    g_assert_cmpmem(t.ram + BUF + 0x100, 5, "reply", 5);
    g_assert_cmpuint(t.notifies[QUEUE_VECTOR], ==, 1);
    g_assert_null(virtqueue_pop(vq));
    g_assert_false(virtio_device_is_broken(&t.vdev));
    teardown(&t);
}

static void test_indirect(void)
{
    T t;
    setup(&t, 1ULL << VIRTIO_RING_F_INDIRECT_DESC);
    struct vring_desc *table = (struct vring_desc *)(t.ram + 0x8000);
    table[0] = (struct vring_desc){ BUF, 4, VRING_DESC_F_NEXT, 1 };
    table[1] = (struct vring_desc){ BUF + 4, 4, VRING_DESC_F_NEXT, 2 };
    table[2] = (struct vring_desc){ BUF + 8, 4, VRING_DESC_F_WRITE, 0 };
    put_desc(&t, 3, 0x8000, 3 * sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, 0);
    make_available(&t, 3);
    VirtQueueElement *e = virtqueue_pop(virtio_queue(&t.vdev, 0));
    g_assert_nonnull(e);
    g_assert_cmpuint(e->head, ==, 3);
    g_assert_cmpuint(e->out_num, ==, 2);
    g_assert_cmpuint(e->in_num, ==, 1);
    g_free(e);
    teardown(&t);
}

static void test_event_idx_suppresses(void)
{
    T t;
    setup(&t, 1ULL << VIRTIO_RING_F_EVENT_IDX);
    VirtQueue *vq = virtio_queue(&t.vdev, 0);
    for (unsigned i = 0; i < 3; i++) {
        put_desc(&t, i, BUF, 1, VRING_DESC_F_WRITE, 0);
        make_available(&t, i);
    }
    /* The driver wants an interrupt only once the used index passes 2. */
    avail(&t)->ring[QSIZE] = 2;
    for (unsigned i = 0; i < 3; i++) {
        virtqueue_push(vq, virtqueue_pop(vq), 1);
        virtqueue_notify(vq);
    }
    /* The first push always interrupts; then only the one that crosses used_event. */
    g_assert_cmpuint(t.notifies[QUEUE_VECTOR], ==, 2);
    /* The device published how far it has read. */
    uint16_t avail_event;
    memcpy(&avail_event, &used(&t)->ring[QSIZE], sizeof(avail_event));
    g_assert_cmpuint(avail_event, ==, 3);
    teardown(&t);
}

static void test_event_idx_quiet_while_busy(void)
{
    T t;
    setup(&t, 1ULL << VIRTIO_RING_F_EVENT_IDX);
    VirtQueue *vq = virtio_queue(&t.vdev, 0);
    for (unsigned i = 0; i < 2; i++) {
        put_desc(&t, i, BUF, 1, VRING_DESC_F_WRITE, 0);
        make_available(&t, i);
    }
    uint16_t avail_event;
    /* While the device processes with notifications off, it asks for no kick... */
    virtqueue_set_notification(vq, false);
    g_free(virtqueue_pop(vq));
    g_free(virtqueue_pop(vq));
    memcpy(&avail_event, &used(&t)->ring[QSIZE], sizeof(avail_event));
    g_assert_cmpuint(avail_event, ==, 0);
    /* ...and asks for the next one when it turns them back on. */
    g_assert_true(virtqueue_set_notification(vq, true));
    memcpy(&avail_event, &used(&t)->ring[QSIZE], sizeof(avail_event));
    g_assert_cmpuint(avail_event, ==, 2);
    teardown(&t);
}

static void test_no_interrupt_flag(void)
{
    T t;
    setup(&t, 0);
    VirtQueue *vq = virtio_queue(&t.vdev, 0);
    avail(&t)->flags = VRING_AVAIL_F_NO_INTERRUPT;
    put_desc(&t, 0, BUF, 1, VRING_DESC_F_WRITE, 0);
    make_available(&t, 0);
    virtqueue_push(vq, virtqueue_pop(vq), 1);
    virtqueue_notify(vq);
    g_assert_cmpuint(t.notifies[QUEUE_VECTOR], ==, 0);
    teardown(&t);
}

static void test_loop(void)
{
    T t;
    setup(&t, 0);
    put_desc(&t, 0, BUF, 1, VRING_DESC_F_NEXT, 1);
    put_desc(&t, 1, BUF, 1, VRING_DESC_F_NEXT, 0);
    make_available(&t, 0);
    assert_broken(&t);
    teardown(&t);
}

static void test_outside_ram(void)
{
    T t;
    setup(&t, 0);
    put_desc(&t, 0, 1ULL << 46, 512, 0, 0);
    make_available(&t, 0);
    assert_broken(&t);
    teardown(&t);
}

static void test_wrapping_buffer(void)
{
    T t;
    setup(&t, 0);
    put_desc(&t, 0, UINT64_MAX - 10, 512, 0, 0);
    make_available(&t, 0);
    assert_broken(&t);
    teardown(&t);
}

static void test_oversized_indirect(void)
{
    T t;
    setup(&t, 1ULL << VIRTIO_RING_F_INDIRECT_DESC);
    /* More descriptors than any chain may have. */
    put_desc(&t, 0, 0x8000, (VIRTIO_QUEUE_MAX_SIZE + 1) * sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, 0);
    make_available(&t, 0);
    assert_broken(&t);
    teardown(&t);
}

static void test_indirect_loop(void)
{
    T t;
    setup(&t, 1ULL << VIRTIO_RING_F_INDIRECT_DESC);
    struct vring_desc *table = (struct vring_desc *)(t.ram + 0x8000);
    for (unsigned i = 0; i < 4; i++) {
        table[i] = (struct vring_desc){ BUF, 1, VRING_DESC_F_NEXT, (i + 1) % 4 };
    }
    put_desc(&t, 0, 0x8000, 4 * sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, 0);
    make_available(&t, 0);
    assert_broken(&t);
    teardown(&t);
}

static void test_indirect_not_negotiated(void)
{
    T t;
    setup(&t, 0);
    put_desc(&t, 0, 0x8000, sizeof(struct vring_desc), VRING_DESC_F_INDIRECT, 0);
    make_available(&t, 0);
    assert_broken(&t);
    teardown(&t);
}

static void test_read_after_write(void)
{
    T t;
    setup(&t, 0);
    put_desc(&t, 0, BUF, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    put_desc(&t, 1, BUF, 1, 0, 0);
    make_available(&t, 0);
    assert_broken(&t);
    teardown(&t);
}

static void test_bad_head_and_index(void)
{
    T t;
    setup(&t, 0);
    make_available(&t, QSIZE + 3);
    assert_broken(&t);
    teardown(&t);
    setup(&t, 0);
    avail(&t)->idx = QSIZE + 1; /* more new entries than the ring holds */
    assert_broken(&t);
    teardown(&t);
}

static void test_rings_outside_ram(void)
{
    T t;
    setup(&t, 0);
    virtio_device_set_status(&t.vdev, 0);
    t.vdev.guest_features = 1ULL << VIRTIO_F_VERSION_1;
    virtio_device_set_status(&t.vdev, VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    t.vdev.config_vector = CONFIG_VECTOR;
    VirtQueueConfig *q = virtqueue_config(virtio_queue(&t.vdev, 0));
    q->desc = RAM_SIZE - 16;
    expect_broken_line();
    virtqueue_enable(virtio_queue(&t.vdev, 0));
    g_test_assert_expected_messages();
    g_assert_false(virtqueue_ready(virtio_queue(&t.vdev, 0)));
    g_assert_true(virtio_device_is_broken(&t.vdev));
    teardown(&t);
}

static void test_features_refused(void)
{
    T t;
    setup(&t, 0);
    virtio_device_set_status(&t.vdev, 0);
    t.vdev.guest_features = 1ULL << 60; /* not offered, and no VERSION_1 */
    virtio_device_set_status(&t.vdev, VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
    g_assert_false(t.vdev.status & VIRTIO_CONFIG_S_FEATURES_OK);
    teardown(&t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio/chain-round-trip", test_chain_round_trip);
    g_test_add_func("/virtio/indirect", test_indirect);
    g_test_add_func("/virtio/event-idx", test_event_idx_suppresses);
    g_test_add_func("/virtio/event-idx-quiet-while-busy", test_event_idx_quiet_while_busy);
    g_test_add_func("/virtio/no-interrupt-flag", test_no_interrupt_flag);
    g_test_add_func("/virtio/broken/loop", test_loop);
    g_test_add_func("/virtio/broken/outside-ram", test_outside_ram);
    g_test_add_func("/virtio/broken/wrapping-buffer", test_wrapping_buffer);
    g_test_add_func("/virtio/broken/oversized-indirect", test_oversized_indirect);
    g_test_add_func("/virtio/broken/indirect-loop", test_indirect_loop);
    g_test_add_func("/virtio/broken/indirect-not-negotiated", test_indirect_not_negotiated);
    g_test_add_func("/virtio/broken/read-after-write", test_read_after_write);
    g_test_add_func("/virtio/broken/bad-head-and-index", test_bad_head_and_index);
    g_test_add_func("/virtio/broken/rings-outside-ram", test_rings_outside_ram);
    g_test_add_func("/virtio/features-refused", test_features_refused);
    return g_test_run();
}
