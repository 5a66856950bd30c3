/*
 * virtio-blk-pci: a disk on a block backend. The request queue is read by
 * the device's own I/O thread (woken by the queue's notify eventfd, never
 * the big lock); requests run on the backend's workers, which complete
 * them into the used ring and interrupt the guest.
 */
#define G_LOG_DOMAIN "virtio-blk"
#include "hw/virtio/virtio-blk.h"
#include "block/block.h"
#include "hw/virtio/virtio-pci.h"
#include "migration/vmstate.h"
#include "util/container-of.h"
#include <errno.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SECTOR_SIZE 512u
#define PCI_CLASS_STORAGE_SCSI 0x010000 /* what QEMU's virtio-blk-pci reports */
/* One segment per discard or write-zeroes request, as in QEMU; a large range in one. */
#define MAX_DISCARD_SECTORS (UINT32_MAX / SECTOR_SIZE)

typedef struct VirtioBlk {
    VirtioDevice vdev;
    VirtioPci *pci;
    BlockBackend *blk;
    char *serial;
    bool discard, write_zeroes;
    struct virtio_blk_config config;
    GThread *thread;
    int stop_fd; /* eventfd: ops->stop wakes the I/O thread to end it */
    gint io_error_logged;
} VirtioBlk;

typedef struct BlkRequest {
    VirtioBlk *s;
    VirtQueue *vq;
    VirtQueueElement *elem;
    uint8_t *status;
    uint32_t used_len;
    unsigned cnt;
    struct iovec iov[]; /* the data, without header and status byte */
} BlkRequest;

static VirtioBlk *blk_of(VirtioDevice *vdev)
{
    return container_of(vdev, VirtioBlk, vdev);
}

static uint64_t virtio_blk_features(VirtioDevice *vdev)
{
    VirtioBlk *s = blk_of(vdev);
    uint64_t f = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH);
    if (block_backend_read_only(s->blk)) {
        return f | (1ULL << VIRTIO_BLK_F_RO);
    }
    f |= s->discard ? 1ULL << VIRTIO_BLK_F_DISCARD : 0;
    f |= s->write_zeroes ? 1ULL << VIRTIO_BLK_F_WRITE_ZEROES : 0;
    return f;
}

static void virtio_blk_config_read(VirtioDevice *vdev, unsigned off, uint8_t *buf, unsigned len)
{
    memcpy(buf, (const uint8_t *)&blk_of(vdev)->config + off, len);
}

static void virtio_blk_config_write(VirtioDevice *vdev, unsigned off, const uint8_t *buf, unsigned len)
{
    /* Nothing the driver may change is offered (no CONFIG_WCE). */
}

static void complete(BlkRequest *req, uint8_t status)
{
    *req->status = status;
    virtqueue_push(req->vq, req->elem, req->used_len);
    virtqueue_notify(req->vq);
    g_free(req);
}

static void request_done(void *opaque, int ret)
{
    BlkRequest *req = opaque;
    /* The guest sees IOERR for each; the host's log gets the first, not a flood. */
    if (ret < 0 && g_atomic_int_compare_and_exchange(&req->s->io_error_logged, 0, 1)) {
        g_warning("%s: host I/O error on '%s': %s (the guest gets an I/O error; further ones are not logged)",
                  req->s->vdev.name, block_backend_filename(req->s->blk), g_strerror(-ret));
    }
    complete(req, ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

/* The iovecs of @iov covering [@skip, @skip + @len) into @out; their number. */
static unsigned iov_slice(const struct iovec *iov, unsigned cnt, size_t skip, size_t len, struct iovec *out)
{
    unsigned n = 0;
    for (unsigned i = 0; i < cnt && len > 0; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t take = MIN(iov[i].iov_len - skip, len);
        out[n++] = (struct iovec){ (char *)iov[i].iov_base + skip, take };
        len -= take;
        skip = 0;
    }
    return n;
}

static bool in_range(VirtioBlk *s, uint64_t sector, uint64_t sectors)
{
    uint64_t capacity = GUINT64_FROM_LE(s->config.capacity);
    return sector <= capacity && sectors <= capacity - sector;
}

/* DISCARD and WRITE_ZEROES: one segment {sector, num_sectors, flags} after the header. */
static void discard_or_zeroes(VirtioBlk *s, BlkRequest *req, uint32_t type)
{
    VirtQueueElement *elem = req->elem;
    struct virtio_blk_discard_write_zeroes seg;
    size_t len = elem->out_len - sizeof(struct virtio_blk_outhdr);
    bool zeroes = type == VIRTIO_BLK_T_WRITE_ZEROES;
    if (!virtio_has_feature(&s->vdev, zeroes ? VIRTIO_BLK_F_WRITE_ZEROES : VIRTIO_BLK_F_DISCARD) ||
        len != sizeof(seg)) {
        complete(req, VIRTIO_BLK_S_UNSUPP);
        return;
    }
    iov_to_buf(elem->out, elem->out_num, sizeof(struct virtio_blk_outhdr), &seg, sizeof(seg));
    uint64_t sector = GUINT64_FROM_LE(seg.sector);
    uint32_t num = GUINT32_FROM_LE(seg.num_sectors), flags = GUINT32_FROM_LE(seg.flags);
    uint32_t allowed = zeroes ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
    if (flags & ~allowed || num > MAX_DISCARD_SECTORS) {
        complete(req, VIRTIO_BLK_S_UNSUPP);
        return;
    }
    if (block_backend_read_only(s->blk) || !in_range(s, sector, num)) {
        complete(req, VIRTIO_BLK_S_IOERR);
        return;
    }
    if (zeroes) {
        block_backend_write_zeroes(s->blk, sector * SECTOR_SIZE, (uint64_t)num * SECTOR_SIZE,
                                   flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, request_done, req);
    } else {
        block_backend_discard(s->blk, sector * SECTOR_SIZE, (uint64_t)num * SECTOR_SIZE, request_done, req);
    }
}

static void handle_request(VirtioBlk *s, VirtQueue *vq, VirtQueueElement *elem)
{
    struct virtio_blk_outhdr hdr;
    if (elem->out_len < sizeof(hdr) || elem->in_len < 1) {
        virtio_device_set_broken(&s->vdev, "a request of %zu bytes out and %zu in has no header or status byte",
                                 elem->out_len, elem->in_len);
        g_free(elem);
        return;
    }
    iov_to_buf(elem->out, elem->out_num, 0, &hdr, sizeof(hdr));
    uint32_t type = GUINT32_FROM_LE(hdr.type);
    uint64_t sector = GUINT64_FROM_LE(hdr.sector);

    /* The status is the last byte the device writes. */
    unsigned last = elem->in_num;
    while (last > 0 && elem->in[last - 1].iov_len == 0) {
        last--;
    }
    BlkRequest *req = g_malloc(sizeof(*req) + (elem->out_num + elem->in_num) * sizeof(struct iovec));
    *req = (BlkRequest){ .s = s, .vq = vq, .elem = elem, .used_len = 1 };
    req->status = (uint8_t *)elem->in[last - 1].iov_base + elem->in[last - 1].iov_len - 1;
    size_t in_data = elem->in_len - 1, out_data = elem->out_len - sizeof(hdr);

    switch (type & ~VIRTIO_BLK_T_BARRIER) {
    case VIRTIO_BLK_T_IN:
        req->cnt = iov_slice(elem->in, elem->in_num, 0, in_data, req->iov);
        if (in_data % SECTOR_SIZE || !in_range(s, sector, in_data / SECTOR_SIZE)) {
            complete(req, VIRTIO_BLK_S_IOERR);
            return;
        }
        req->used_len = (uint32_t)in_data + 1;
        block_backend_preadv(s->blk, sector * SECTOR_SIZE, req->iov, req->cnt, request_done, req);
        return;
    case VIRTIO_BLK_T_OUT:
        req->cnt = iov_slice(elem->out, elem->out_num, sizeof(hdr), out_data, req->iov);
        if (out_data % SECTOR_SIZE || !in_range(s, sector, out_data / SECTOR_SIZE) ||
            block_backend_read_only(s->blk)) {
            complete(req, VIRTIO_BLK_S_IOERR);
            return;
        }
        block_backend_pwritev(s->blk, sector * SECTOR_SIZE, req->iov, req->cnt, request_done, req);
        return;
    case VIRTIO_BLK_T_FLUSH:
        block_backend_flush(s->blk, request_done, req);
        return;
    case VIRTIO_BLK_T_GET_ID: {
        char id[VIRTIO_BLK_ID_BYTES] = { 0 };
        if (s->serial) {
            /* Not NUL-terminated when 20 long, as the spec has it. */
            memcpy(id, s->serial, MIN(strlen(s->serial), sizeof(id)));
        }
        size_t n = MIN(in_data, sizeof(id));
        iov_from_buf(elem->in, elem->in_num, 0, id, n);
        req->used_len = (uint32_t)n + 1;
        complete(req, VIRTIO_BLK_S_OK);
        return;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        discard_or_zeroes(s, req, type);
        return;
    default:
        complete(req, VIRTIO_BLK_S_UNSUPP);
        return;
    }
}

/* Everything on the ring, then notifications back on and one more look (the driver may have raced us). */
static void process_queue(VirtioBlk *s, VirtQueue *vq)
{
    do {
        virtqueue_set_notification(vq, false);
        VirtQueueElement *elem;
        while ((elem = virtqueue_pop(vq))) {
            handle_request(s, vq, elem);
        }
        if (virtio_device_is_broken(&s->vdev)) {
            return;
        }
    } while (!virtqueue_set_notification(vq, true));
}

static gpointer io_thread(gpointer opaque)
{
    VirtioBlk *s = opaque;
    VirtQueue *vq = virtio_queue(&s->vdev, 0);
    struct pollfd fds[] = { { virtqueue_notify_fd(vq), POLLIN, 0 }, { s->stop_fd, POLLIN, 0 } };
    process_queue(s, vq); /* anything queued before DRIVER_OK */
    for (;;) {
        if (poll(fds, G_N_ELEMENTS(fds), -1) < 0) {
            g_assert(errno == EINTR);
            continue;
        }
        if (fds[1].revents) {
            return NULL;
        }
        uint64_t n;
        if (read(fds[0].fd, &n, sizeof(n)) == sizeof(n)) {
            process_queue(s, vq);
        }
    }
}

static void virtio_blk_start(VirtioDevice *vdev)
{
    VirtioBlk *s = blk_of(vdev);
    s->thread = g_thread_new("virtio-blk", io_thread, s);
}

static void stop_thread(VirtioBlk *s)
{
    if (s->thread) {
        uint64_t one = 1;
        g_assert(write(s->stop_fd, &one, sizeof(one)) == sizeof(one));
        g_thread_join(g_steal_pointer(&s->thread));
        g_assert(read(s->stop_fd, &one, sizeof(one)) == sizeof(one));
    }
}

static void virtio_blk_stop(VirtioDevice *vdev)
{
    VirtioBlk *s = blk_of(vdev);
    stop_thread(s);
    /* Requests in flight complete into the ring the driver is about to lose; that is what they may touch. */
    block_backend_drain(s->blk);
}

static const VirtioDeviceOps virtio_blk_ops = {
    .device_id = VIRTIO_ID_BLOCK,
    .features = virtio_blk_features,
    .config_read = virtio_blk_config_read,
    .config_write = virtio_blk_config_write,
    .start = virtio_blk_start,
    .stop = virtio_blk_stop,
};

/* ---- migration ---- */

/*
 * The vCPUs are stopped: take the requests the guest queued whose kick the
 * I/O thread has not got to, and wait until every request has completed
 * into the used ring, so guest memory is final. The thread runs on
 * afterwards (a cancelled migration resumes the guest); with the vCPUs
 * stopped nothing new arrives.
 */
static void virtio_blk_quiesce(void *opaque)
{
    VirtioBlk *s = opaque;
    if (!s->thread) {
        block_backend_drain(s->blk);
        return;
    }
    stop_thread(s);
    process_queue(s, virtio_queue(&s->vdev, 0));
    block_backend_drain(s->blk);
    virtio_blk_start(&s->vdev);
}

static const VMStateField virtio_blk_fields[] = {
    VMSTATE_STRUCT(VirtioBlk, vdev, virtio_device_vmsd, VirtioDevice),
    VMSTATE_END,
};

G_STATIC_ASSERT(offsetof(VirtioBlk, vdev) == 0); /* for virtio_device_post_load */

/* Everything else (capacity, serial, features offered) comes from the command line. */
static const VMStateDescription virtio_blk_vmsd = {
    .name = "virtio-blk",
    .version = 1,
    .minimum_version = 1,
    .fields = virtio_blk_fields,
    .post_load = virtio_device_post_load,
    .quiesce = virtio_blk_quiesce,
};

VirtioDevice *virtio_blk_new(Machine *m, BlockBackend *blk, const VirtioBlkConf *conf)
{
    g_assert(conf->queue_size >= 4 && conf->queue_size <= VIRTIO_QUEUE_MAX_SIZE);
    VirtioBlk *s = g_new0(VirtioBlk, 1);
    s->blk = blk;
    s->discard = conf->discard;
    s->write_zeroes = conf->write_zeroes;
    s->serial = g_strdup(conf->serial ? conf->serial : block_backend_serial(blk));
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    g_assert(s->stop_fd >= 0);
    s->config = (struct virtio_blk_config){
        .capacity = GUINT64_TO_LE(block_backend_size(blk) / SECTOR_SIZE),
        .seg_max = GUINT32_TO_LE(conf->queue_size - 2), /* the header and the status take a descriptor each */
        .blk_size = GUINT32_TO_LE(block_backend_block_size(blk)), /* sectors stay 512 bytes in requests */
        .num_queues = GUINT16_TO_LE(1),
        .max_discard_sectors = GUINT32_TO_LE(MAX_DISCARD_SECTORS),
        .max_discard_seg = GUINT32_TO_LE(1),
        .discard_sector_alignment = GUINT32_TO_LE(1),
        .max_write_zeroes_sectors = GUINT32_TO_LE(MAX_DISCARD_SECTORS),
        .max_write_zeroes_seg = GUINT32_TO_LE(1),
        .write_zeroes_may_unmap = 1,
    };
    virtio_device_init(&s->vdev, &virtio_blk_ops, m, "virtio-blk", sizeof(s->config), 1,
                       (uint16_t)conf->queue_size);
    virtqueue_take_notify_fd(virtio_queue(&s->vdev, 0));
    return &s->vdev;
}

void virtio_blk_free(VirtioDevice *vdev)
{
    VirtioBlk *s = blk_of(vdev);
    virtio_device_cleanup(&s->vdev);
    block_backend_close(s->blk);
    close(s->stop_fd);
    g_free(s->serial);
    g_free(s);
}

static void virtio_blk_destroy(void *opaque)
{
    VirtioBlk *s = opaque;
    virtio_pci_free(s->pci);
    virtio_blk_free(&s->vdev);
}

static bool parse_queue_size(const VmOpt *opt, unsigned *out, GError **err)
{
    const char *v = vm_opt_get(opt, "queue-size");
    if (!v) {
        return true;
    }
    char *end;
    unsigned long n = strtoul(v, &end, 0);
    if (end == v || *end || n < 4 || n > VIRTIO_QUEUE_MAX_SIZE || (n & (n - 1))) {
        return vm_opt_error(opt, err, "queue-size=%s: expected a power of two from 4 to %u", v,
                            VIRTIO_QUEUE_MAX_SIZE);
    }
    *out = (unsigned)n;
    return true;
}

static void *virtio_blk_create(const DeviceContext *ctx, const VmOpt *opt, uint8_t devfn, GError **err)
{
    const char *drive = vm_opt_get(opt, "drive");
    if (!drive || !*drive) {
        vm_opt_error(opt, err, "drive= is required");
        return NULL;
    }
    for (guint i = 0; i < ctx->created->len; i++) {
        const DeviceInstance *d = ctx->created->pdata[i];
        if (d->type == &virtio_blk_pci_type && !strcmp(block_backend_id(((VirtioBlk *)d->dev)->blk), drive)) {
            vm_opt_error(opt, err, "drive '%s' is already in use by another device", drive);
            return NULL;
        }
    }
    VirtioBlkConf conf = { .serial = vm_opt_get(opt, "serial"), .queue_size = VIRTIO_BLK_DEFAULT_QUEUE_SIZE };
    if (!parse_queue_size(opt, &conf.queue_size, err) || !vm_opt_get_bool(opt, "discard", true, &conf.discard, err) ||
        !vm_opt_get_bool(opt, "write-zeroes", true, &conf.write_zeroes, err)) {
        return NULL;
    }
    BlockBackend *blk = block_backend_open_by_id(ctx->cfg, opt, drive, err);
    if (!blk) {
        return NULL;
    }
    VirtioBlk *s = blk_of(virtio_blk_new(ctx->machine, blk, &conf));
    s->pci = virtio_pci_new(ctx, devfn, &s->vdev, "virtio-blk-pci", PCI_CLASS_STORAGE_SCSI, err);
    if (!s->pci) {
        virtio_blk_free(&s->vdev);
        return NULL;
    }
    virtio_pci_register_state(s->pci, &virtio_blk_vmsd, s);
    return s;
}

static const char *const virtio_blk_props[] = {
    "drive", "serial", "queue-size", "discard", "write-zeroes", "bootindex", NULL,
};

const DeviceType virtio_blk_pci_type = {
    .name = "virtio-blk-pci",
    .desc = "virtio disk (drive=ID of a -drive or -blockdev)",
    .props = virtio_blk_props,
    .pci = true,
    .create = virtio_blk_create,
    .destroy = virtio_blk_destroy,
};
