/*
 * virtio-rng-pci: one queue of guest buffers, filled from an entropy backend
 * (-object rng-random/rng-builtin named by rng=; without it an rng-builtin,
 * QEMU's default since 4.2). Optional rate limit as QEMU's: at most
 * max-bytes per period milliseconds.
 *
 * Main loop, big lock: the backend delivers bytes asynchronously into the
 * chain at the head of the queue; the next request goes out as soon as a
 * chain is filled, until the queue or the quota is empty.
 */
#define G_LOG_DOMAIN "virtio-rng"
#include "hw/virtio/virtio-rng.h"
#include "hw/virtio/rng-backend.h"
#include "hw/virtio/virtio-pci.h"
#include "hw/virtio/virtio.h"
#include "migration/vmstate.h"
#include "util/container-of.h"
#include <linux/virtio_ids.h>
#include <string.h>

#define RNG_QUEUE_SIZE 8
#define PCI_CLASS_OTHERS 0xff0000          /* as QEMU's virtio-rng-pci */
#define RNG_DEFAULT_MAX_BYTES INT64_MAX    /* QEMU's defaults: no limit in practice */
#define RNG_DEFAULT_PERIOD_MS (1u << 16)

typedef struct VirtioRng {
    VirtioDevice vdev;
    VirtioPci *pci;
    RngBackend *rng;
    VirtQueueElement *elem; /* the chain the outstanding request fills */
    bool requested;
    uint64_t max_bytes;     /* per period */
    uint32_t period_ms;
    uint64_t quota;         /* left in this period */
    guint period_timer;     /* running while a period is open */
} VirtioRng;

static VirtioRng *rng_of(VirtioDevice *vdev)
{
    return container_of(vdev, VirtioRng, vdev);
}

static void rng_fill(VirtioRng *r);

static void rng_receive(void *opaque, const uint8_t *buf, size_t len)
{
    VirtioRng *r = opaque;
    VirtQueue *vq = virtio_queue(&r->vdev, 0);
    r->requested = false;
    if (!r->elem) {
        return;
    }
    size_t n = iov_from_buf(r->elem->in, r->elem->in_num, 0, buf, len);
    r->quota -= MIN(r->quota, n);
    virtqueue_push(vq, g_steal_pointer(&r->elem), n);
    virtqueue_notify(vq);
    rng_fill(r);
}

static gboolean period_over(gpointer opaque)
{
    VirtioRng *r = opaque;
    r->period_timer = 0;
    r->quota = r->max_bytes;
    rng_fill(r);
    return G_SOURCE_REMOVE;
}

/* Ask the backend for the next chain's worth, within the quota. */
static void rng_fill(VirtioRng *r)
{
    if (r->requested || !r->vdev.started || virtio_device_is_broken(&r->vdev)) {
        return;
    }
    if (r->max_bytes != RNG_DEFAULT_MAX_BYTES && !r->period_timer) {
        /* A period opens with the first request after the last one closed. */
        r->period_timer = g_timeout_add(r->period_ms, period_over, r);
    }
    if (r->quota == 0) {
        return; /* period_over starts again */
    }
    while (!r->elem) {
        r->elem = virtqueue_pop(virtio_queue(&r->vdev, 0));
        if (!r->elem) {
            return; /* the guest's next buffer brings us back (queue_notify) */
        }
        if (r->elem->in_len == 0) {
            virtqueue_push(virtio_queue(&r->vdev, 0), g_steal_pointer(&r->elem), 0);
        }
    }
    r->requested = true;
    rng_backend_request(r->rng, MIN(r->elem->in_len, r->quota), rng_receive, r);
}

static void rng_start(VirtioDevice *vdev)
{
    rng_fill(rng_of(vdev));
}

static void rng_stop(VirtioDevice *vdev)
{
    VirtioRng *r = rng_of(vdev);
    rng_backend_cancel(r->rng);
    r->requested = false;
    g_clear_pointer(&r->elem, g_free);
}

static void rng_queue_notify(VirtioDevice *vdev, VirtQueue *vq)
{
    rng_fill(rng_of(vdev));
}

static const VirtioDeviceOps rng_ops = {
    .device_id = VIRTIO_ID_RNG,
    .start = rng_start,
    .stop = rng_stop,
    .queue_notify = rng_queue_notify,
};

/* ---- migration ---- */

/*
 * The backend delivers on the main loop, which the migration holds in its
 * last phase: nothing to quiesce. The chain an outstanding request was to
 * fill goes back to the ring in the stream and is filled on the destination.
 * The rate limit's period starts afresh there.
 */
static const VMStateField rng_fields[] = {
    VMSTATE_STRUCT(VirtioRng, vdev, virtio_device_vmsd, VirtioDevice),
    VMSTATE_END,
};

G_STATIC_ASSERT(offsetof(VirtioRng, vdev) == 0); /* for virtio_device_post_load */

static const VMStateDescription rng_vmsd = {
    .name = "virtio-rng",
    .version = 1,
    .minimum_version = 1,
    .fields = rng_fields,
    .post_load = virtio_device_post_load,
};

/* max-bytes=N (1 to 2^63-1) and period=MS (1 to 2^32-1), as QEMU spells them. */
static bool rng_limits(VirtioRng *r, const VmOpt *opt, GError **err)
{
    const char *max = vm_opt_get(opt, "max-bytes");
    const char *period = vm_opt_get(opt, "period");
    guint64 n;
    r->max_bytes = RNG_DEFAULT_MAX_BYTES;
    r->period_ms = RNG_DEFAULT_PERIOD_MS;
    if (max) {
        if (!g_ascii_string_to_unsigned(max, 10, 1, INT64_MAX, &n, NULL)) {
            return vm_opt_error(opt, err, "max-bytes=%s: expected a number of bytes from 1 to 2^63-1", max);
        }
        r->max_bytes = n;
    }
    if (period) {
        if (!g_ascii_string_to_unsigned(period, 10, 1, UINT32_MAX, &n, NULL)) {
            return vm_opt_error(opt, err, "period=%s: expected milliseconds from 1 to 2^32-1", period);
        }
        r->period_ms = n;
    }
    r->quota = r->max_bytes;
    return true;
}

static void *rng_create(const DeviceContext *ctx, const VmOpt *opt, uint8_t devfn, GError **err)
{
    g_autofree VirtioRng *r = g_new0(VirtioRng, 1);
    if (!rng_limits(r, opt, err)) {
        return NULL;
    }
    const char *id = vm_opt_get(opt, "rng");
    if (id) {
        const VmOpt *object = vm_opt_find(ctx->cfg->objects, "id", id);
        if (!object) {
            vm_opt_error(opt, err, "rng backend '%s' not found (-object rng-random,id=%s or rng-builtin,id=%s)", id,
                         id, id);
            return NULL;
        }
        r->rng = rng_backend_new(object, err); /* its errors name the -object */
        if (!r->rng) {
            return NULL;
        }
    } else {
        r->rng = rng_backend_new_builtin();
    }
    virtio_device_init(&r->vdev, &rng_ops, ctx->machine, "virtio-rng-pci", 0, 1, RNG_QUEUE_SIZE);
    r->pci = virtio_pci_new(ctx, devfn, &r->vdev, "virtio-rng-pci", PCI_CLASS_OTHERS, err);
    if (!r->pci) {
        virtio_device_cleanup(&r->vdev);
        rng_backend_free(r->rng);
        return NULL;
    }
    virtio_pci_register_state(r->pci, &rng_vmsd, r);
    return g_steal_pointer(&r);
}

static void rng_destroy(void *dev)
{
    VirtioRng *r = dev;
    virtio_pci_free(r->pci);
    virtio_device_cleanup(&r->vdev);
    if (r->period_timer) {
        g_source_remove(r->period_timer);
    }
    rng_backend_free(r->rng);
    g_free(r);
}

const DeviceType virtio_rng_pci_device = {
    .name = "virtio-rng-pci",
    .desc = "virtio entropy device (rng=ID of an -object rng-random/rng-builtin; max-bytes=, period=)",
    .props = (const char *const[]){ "rng", "max-bytes", "period", NULL },
    .pci = true,
    .create = rng_create,
    .destroy = rng_destroy,
};
