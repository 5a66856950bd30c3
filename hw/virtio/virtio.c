/*
 * The virtio device core: see include/hw/virtio/virtio.h.
 *
 * Split virtqueues are shared with the guest, which may change them at any
 * moment: every index and address read from a ring is checked before use,
 * and a chain that breaks the rules breaks the device (NEEDS_RESET), never
 * Vireo. Ring accesses use acquire/release ordering where the virtio spec
 * puts its memory barriers.
 */
#define G_LOG_DOMAIN "virtio"
#include "hw/virtio/virtio.h"
#include "migration/ram.h"
#include "migration/vmstate.h"
#include "util/error.h"
#include <errno.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct VirtQueue {
    VirtioDevice *vdev;
    unsigned index;
    uint16_t max_size;
    VirtQueueConfig cfg;
    /* Host views of the rings, valid while cfg.enabled. */
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    uint16_t last_avail_idx; /* next chain to pop */
    uint16_t used_idx;       /* next used slot */
    uint16_t signalled_used; /* used_idx when the driver was last interrupted */
    bool signalled_used_valid;
    bool notification; /* the device wants kicks (see virtqueue_set_notification) */
    gint inflight;     /* chains popped and not pushed yet */
    uint16_t mig_last_avail_idx; /* last_avail_idx as migrated: less the chains still held */
    int notify_fd;
    bool notify_fd_taken;
    guint watch;
    GMutex lock; /* the used ring and the interrupt decision */
};

#define CORE_FEATURES                                                                             \
    ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |                       \
     (1ULL << VIRTIO_RING_F_EVENT_IDX))

static void queue_reset(VirtQueue *vq)
{
    vq->cfg = (VirtQueueConfig){ .size = vq->max_size, .vector = VIRTIO_NO_VECTOR };
    vq->desc = NULL;
    vq->avail = NULL;
    vq->used = NULL;
    vq->last_avail_idx = vq->used_idx = vq->signalled_used = 0;
    vq->signalled_used_valid = false;
    vq->notification = true;
    g_atomic_int_set(&vq->inflight, 0);
    uint64_t n;
    while (read(vq->notify_fd, &n, sizeof(n)) == sizeof(n)) {
    }
}

void virtio_device_init(VirtioDevice *vdev, const VirtioDeviceOps *ops, Machine *m, const char *name,
                        unsigned config_size, unsigned nqueues, uint16_t max_size)
{
    g_assert(max_size && max_size <= VIRTIO_QUEUE_MAX_SIZE && !(max_size & (max_size - 1)));
    vdev->ops = ops;
    vdev->machine = m;
    vdev->name = name;
    vdev->config_size = config_size;
    vdev->nqueues = nqueues;
    vdev->queues = g_new0(VirtQueue, nqueues);
    vdev->host_features = CORE_FEATURES | (ops->features ? ops->features(vdev) : 0);
    for (unsigned i = 0; i < nqueues; i++) {
        VirtQueue *vq = &vdev->queues[i];
        vq->vdev = vdev;
        vq->index = i;
        vq->max_size = max_size;
        vq->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        g_assert(vq->notify_fd >= 0);
        g_mutex_init(&vq->lock);
        queue_reset(vq);
    }
    vdev->status = 0;
    vdev->config_vector = VIRTIO_NO_VECTOR;
}

void virtio_device_cleanup(VirtioDevice *vdev)
{
    virtio_device_reset(vdev);
    for (unsigned i = 0; i < vdev->nqueues; i++) {
        close(vdev->queues[i].notify_fd);
        g_mutex_clear(&vdev->queues[i].lock);
    }
    g_clear_pointer(&vdev->queues, g_free);
}

bool virtio_has_feature(const VirtioDevice *vdev, unsigned bit)
{
    return vdev->features & (1ULL << bit);
}

static gboolean notify_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    VirtQueue *vq = opaque;
    uint64_t n;
    if (read(fd, &n, sizeof(n)) == sizeof(n)) {
        virtqueue_handle_notify(vq);
    }
    return G_SOURCE_CONTINUE;
}

static void start(VirtioDevice *vdev)
{
    vdev->started = true;
    for (unsigned i = 0; i < vdev->nqueues && vdev->ops->queue_notify; i++) {
        VirtQueue *vq = &vdev->queues[i];
        if (!vq->notify_fd_taken) {
            vq->watch = g_unix_fd_add(vq->notify_fd, G_IO_IN, notify_ready, vq);
        }
    }
    if (vdev->ops->start) {
        vdev->ops->start(vdev);
    }
}

static void stop(VirtioDevice *vdev)
{
    if (!vdev->started) {
        return;
    }
    for (unsigned i = 0; i < vdev->nqueues; i++) {
        if (vdev->queues[i].watch) {
            g_source_remove(vdev->queues[i].watch);
            vdev->queues[i].watch = 0;
        }
    }
    if (vdev->ops->stop) {
        vdev->ops->stop(vdev);
    }
    vdev->started = false;
}

void virtio_device_reset(VirtioDevice *vdev)
{
    stop(vdev);
    for (unsigned i = 0; i < vdev->nqueues; i++) {
        queue_reset(&vdev->queues[i]);
    }
    vdev->status = 0;
    vdev->guest_features = vdev->features = 0;
    vdev->config_vector = VIRTIO_NO_VECTOR;
    g_atomic_int_set(&vdev->broken, 0);
}

void virtio_device_set_status(VirtioDevice *vdev, uint8_t status)
{
    if (status == 0) {
        virtio_device_reset(vdev);
        return;
    }
    uint8_t old = vdev->status;
    if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
        /* Refuse (leave FEATURES_OK clear) features not offered, and a driver without VERSION_1. */
        if ((vdev->guest_features & ~vdev->host_features) ||
            !(vdev->guest_features & (1ULL << VIRTIO_F_VERSION_1))) {
            status &= ~VIRTIO_CONFIG_S_FEATURES_OK;
        } else {
            vdev->features = vdev->guest_features;
        }
    }
    /* NEEDS_RESET is the device's to set and only a reset clears it. */
    status = (status & ~VIRTIO_CONFIG_S_NEEDS_RESET) | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
    __atomic_store_n(&vdev->status, status, __ATOMIC_RELEASE);
    if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !vdev->started && !virtio_device_is_broken(vdev)) {
        start(vdev);
    }
}

bool virtio_device_is_broken(VirtioDevice *vdev)
{
    return g_atomic_int_get(&vdev->broken);
}

void virtio_device_config_changed(VirtioDevice *vdev)
{
    g_atomic_int_inc(&vdev->config_generation);
    if (vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) {
        vdev->transport->notify(vdev, vdev->config_vector, VIRTIO_ISR_CONFIG);
    }
}

void virtio_device_set_broken(VirtioDevice *vdev, const char *fmt, ...)
{
    if (!g_atomic_int_compare_and_exchange(&vdev->broken, 0, 1)) {
        return; /* one line per breakage */
    }
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_warning("%s: the guest driver broke the device (%s); it needs a reset", vdev->name, why);
    __atomic_fetch_or(&vdev->status, VIRTIO_CONFIG_S_NEEDS_RESET, __ATOMIC_ACQ_REL);
    virtio_device_config_changed(vdev);
}

VirtQueue *virtio_queue(VirtioDevice *vdev, unsigned index)
{
    return index < vdev->nqueues ? &vdev->queues[index] : NULL;
}

unsigned virtqueue_index(const VirtQueue *vq)
{
    return vq->index;
}

VirtioDevice *virtqueue_device(const VirtQueue *vq)
{
    return vq->vdev;
}

bool virtqueue_ready(const VirtQueue *vq)
{
    return vq->cfg.enabled && vq->desc;
}

int virtqueue_notify_fd(VirtQueue *vq)
{
    return vq->notify_fd;
}

void virtqueue_take_notify_fd(VirtQueue *vq)
{
    g_assert(!vq->vdev->started);
    vq->notify_fd_taken = true;
}

VirtQueueConfig *virtqueue_config(VirtQueue *vq)
{
    return &vq->cfg;
}

uint16_t virtqueue_max_size(const VirtQueue *vq)
{
    return vq->max_size;
}

void virtqueue_enable(VirtQueue *vq)
{
    VirtioDevice *vdev = vq->vdev;
    Machine *m = vdev->machine;
    uint16_t n = vq->cfg.size;
    if (!n || n > vq->max_size || (n & (n - 1))) {
        virtio_device_set_broken(vdev, "queue %u: size %u is not a power of two up to %u", vq->index, n,
                                 vq->max_size);
        return;
    }
    /* The event index words sit after each ring; they are always mapped. */
    vq->desc = m->gpa_to_hva(m, vq->cfg.desc, 16ULL * n);
    vq->avail = m->gpa_to_hva(m, vq->cfg.avail, 6 + 2ULL * n);
    vq->used = m->gpa_to_hva(m, vq->cfg.used, 6 + 8ULL * n);
    if (!vq->desc || !vq->avail || !vq->used || (vq->cfg.desc & 15) || (vq->cfg.avail & 1) ||
        (vq->cfg.used & 3)) {
        vq->desc = NULL;
        virtio_device_set_broken(vdev, "queue %u: rings at 0x%" G_GINT64_MODIFIER "x/0x%" G_GINT64_MODIFIER
                                 "x/0x%" G_GINT64_MODIFIER "x are not aligned guest RAM",
                                 vq->index, vq->cfg.desc, vq->cfg.avail, vq->cfg.used);
        return;
    }
    vq->cfg.enabled = true;
    vq->last_avail_idx = vq->used_idx = vq->signalled_used = 0;
    vq->signalled_used_valid = false;
    vq->notification = true;
    g_atomic_int_set(&vq->inflight, 0);
}

void virtqueue_handle_notify(VirtQueue *vq)
{
    VirtioDevice *vdev = vq->vdev;
    if (vdev->started && vdev->ops->queue_notify && !virtio_device_is_broken(vdev)) {
        vdev->ops->queue_notify(vdev, vq);
    }
}

/* ---- the rings ---- */

static uint16_t avail_idx(VirtQueue *vq)
{
    return __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
}

/* used_event (the driver's) follows the avail ring, avail_event (ours) the used ring. */
static uint16_t *used_event(VirtQueue *vq)
{
    return &vq->avail->ring[vq->cfg.size];
}

static uint16_t *avail_event(VirtQueue *vq)
{
    return (uint16_t *)&vq->used->ring[vq->cfg.size];
}

/* The device wrote its ring (flags, an entry, the index, avail_event): a migration sends it again. */
static void used_ring_written(VirtQueue *vq)
{
    ram_mark_dirty(vq->vdev->machine, vq->used, 6 + 8ULL * vq->cfg.size);
}

bool virtqueue_empty(VirtQueue *vq)
{
    return !virtqueue_ready(vq) || avail_idx(vq) == vq->last_avail_idx;
}

bool virtqueue_set_notification(VirtQueue *vq, bool enable)
{
    if (!virtqueue_ready(vq)) {
        return true;
    }
    vq->notification = enable;
    if (virtio_has_feature(vq->vdev, VIRTIO_RING_F_EVENT_IDX)) {
        /* Disabled: avail_event stays behind what we have read, so the driver does not kick. */
        if (enable) {
            __atomic_store_n(avail_event(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
        }
    } else {
        __atomic_store_n(&vq->used->flags, enable ? 0 : VRING_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
    }
    used_ring_written(vq);
    /* Publish the request before looking at the ring again (the driver does the mirror image). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return virtqueue_empty(vq);
}

typedef struct {
    VirtQueue *vq;
    struct iovec iov[VIRTIO_QUEUE_MAX_SIZE];
    unsigned out, in;
    uint64_t out_len, in_len;
} ChainWalk;

/* Append descriptor @d of the chain; false (device broken) if it breaks a rule. */
static bool walk_desc(ChainWalk *w, const struct vring_desc *d)
{
    VirtioDevice *vdev = w->vq->vdev;
    uint64_t addr = d->addr;
    uint32_t len = d->len;
    bool writable = d->flags & VRING_DESC_F_WRITE;
    if (!writable && w->in) {
        virtio_device_set_broken(vdev, "queue %u: a read-only buffer after a write-only one", w->vq->index);
        return false;
    }
    if (w->out + w->in >= VIRTIO_QUEUE_MAX_SIZE) {
        virtio_device_set_broken(vdev, "queue %u: a chain of more than %u buffers", w->vq->index,
                                 VIRTIO_QUEUE_MAX_SIZE);
        return false;
    }
    if (len == 0) {
        return true;
    }
    void *p = vdev->machine->gpa_to_hva(vdev->machine, addr, len);
    if (!p) {
        virtio_device_set_broken(vdev, "queue %u: buffer 0x%" G_GINT64_MODIFIER "x+%u is outside guest RAM",
                                 w->vq->index, addr, len);
        return false;
    }
    uint64_t *total = writable ? &w->in_len : &w->out_len;
    *total += len;
    if (*total > UINT32_MAX) {
        virtio_device_set_broken(vdev, "queue %u: a chain of more than 4 GiB", w->vq->index);
        return false;
    }
    w->iov[w->out + w->in] = (struct iovec){ p, len };
    if (writable) {
        w->in++;
    } else {
        w->out++;
    }
    return true;
}

/* Follow a chain through @table of @n descriptors from @i. */
static bool walk_table(ChainWalk *w, const struct vring_desc *table, unsigned n, unsigned i, bool indirect)
{
    VirtioDevice *vdev = w->vq->vdev;
    for (unsigned steps = 0;; steps++) {
        if (i >= n) {
            virtio_device_set_broken(vdev, "queue %u: descriptor index %u out of range (%u)", w->vq->index, i, n);
            return false;
        }
        if (steps >= n) {
            virtio_device_set_broken(vdev, "queue %u: the descriptor chain loops", w->vq->index);
            return false;
        }
        struct vring_desc d;
        memcpy(&d, &table[i], sizeof(d)); /* one snapshot: the guest may be rewriting it */
        if (d.flags & VRING_DESC_F_INDIRECT) {
            if (indirect || !virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC) || (d.flags & VRING_DESC_F_NEXT)) {
                virtio_device_set_broken(vdev, "queue %u: an indirect descriptor where none is allowed",
                                         w->vq->index);
                return false;
            }
            if (d.len == 0 || d.len % sizeof(struct vring_desc) || d.len / sizeof(struct vring_desc) > VIRTIO_QUEUE_MAX_SIZE) {
                virtio_device_set_broken(vdev, "queue %u: indirect table of %u bytes", w->vq->index, d.len);
                return false;
            }
            const struct vring_desc *sub = vdev->machine->gpa_to_hva(vdev->machine, d.addr, d.len);
            if (!sub) {
                virtio_device_set_broken(vdev, "queue %u: indirect table 0x%" G_GINT64_MODIFIER "x+%u is outside guest RAM",
                                         w->vq->index, (uint64_t)d.addr, d.len);
                return false;
            }
            return walk_table(w, sub, d.len / sizeof(struct vring_desc), 0, true);
        }
        if (!walk_desc(w, &d)) {
            return false;
        }
        if (!(d.flags & VRING_DESC_F_NEXT)) {
            return true;
        }
        i = d.next;
    }
}

VirtQueueElement *virtqueue_pop(VirtQueue *vq)
{
    VirtioDevice *vdev = vq->vdev;
    if (virtio_device_is_broken(vdev) || !virtqueue_ready(vq)) {
        return NULL;
    }
    uint16_t idx = avail_idx(vq);
    if (idx == vq->last_avail_idx) {
        return NULL;
    }
    if ((uint16_t)(idx - vq->last_avail_idx) > vq->cfg.size) {
        virtio_device_set_broken(vdev, "queue %u: available index moved by %u, more than the queue size %u",
                                 vq->index, (uint16_t)(idx - vq->last_avail_idx), vq->cfg.size);
        return NULL;
    }
    uint16_t head = __atomic_load_n(&vq->avail->ring[vq->last_avail_idx % vq->cfg.size], __ATOMIC_RELAXED);
    vq->last_avail_idx++;
    g_atomic_int_inc(&vq->inflight);
    if (vq->notification && virtio_has_feature(vdev, VIRTIO_RING_F_EVENT_IDX)) {
        __atomic_store_n(avail_event(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
        used_ring_written(vq);
    }
    g_autofree ChainWalk *w = g_new(ChainWalk, 1);
    w->vq = vq;
    w->out = w->in = 0;
    w->out_len = w->in_len = 0;
    if (!walk_table(w, vq->desc, vq->cfg.size, head, false)) {
        return NULL;
    }
    unsigned n = w->out + w->in;
    VirtQueueElement *elem = g_malloc(sizeof(*elem) + n * sizeof(struct iovec));
    elem->head = head;
    elem->out_num = w->out;
    elem->in_num = w->in;
    elem->out_len = w->out_len;
    elem->in_len = w->in_len;
    memcpy(elem->iov, w->iov, n * sizeof(struct iovec));
    elem->out = elem->iov;
    elem->in = elem->iov + w->out;
    return elem;
}

void virtqueue_push(VirtQueue *vq, VirtQueueElement *elem, uint32_t len)
{
    /* What the device wrote into the in-buffers: KVM's dirty log sees only the vCPUs' writes. */
    size_t left = len;
    for (unsigned i = 0; i < elem->in_num && left; i++) {
        size_t n = MIN(left, elem->in[i].iov_len);
        ram_mark_dirty(vq->vdev->machine, elem->in[i].iov_base, n);
        left -= n;
    }
    g_mutex_lock(&vq->lock);
    if (virtqueue_ready(vq)) {
        struct vring_used_elem *u = &vq->used->ring[vq->used_idx % vq->cfg.size];
        u->id = elem->head;
        u->len = len;
        vq->used_idx++;
        __atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
        used_ring_written(vq);
        g_atomic_int_add(&vq->inflight, -1);
    }
    g_mutex_unlock(&vq->lock);
    g_free(elem);
}

void virtqueue_notify(VirtQueue *vq)
{
    VirtioDevice *vdev = vq->vdev;
    bool need;
    g_mutex_lock(&vq->lock);
    if (!virtqueue_ready(vq)) {
        g_mutex_unlock(&vq->lock);
        return;
    }
    /* The used index must be visible before we read what the driver asked for. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (virtio_has_feature(vdev, VIRTIO_RING_F_EVENT_IDX)) {
        uint16_t event = __atomic_load_n(used_event(vq), __ATOMIC_RELAXED);
        uint16_t old = vq->signalled_used, new = vq->used_idx;
        need = !vq->signalled_used_valid || (uint16_t)(new - event - 1) < (uint16_t)(new - old);
        vq->signalled_used = new;
        vq->signalled_used_valid = true;
    } else {
        need = !(__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED) & VRING_AVAIL_F_NO_INTERRUPT);
    }
    uint16_t vector = vq->cfg.vector;
    g_mutex_unlock(&vq->lock);
    if (need) {
        vdev->transport->notify(vdev, vector, VIRTIO_ISR_QUEUE);
    }
}

/* ---- migration ---- */

static bool load_error(GError **err, const char *what, const char *field, const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static bool load_error(GError **err, const char *what, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "device state '%s', field %s: %s", what, field, why);
    return false;
}

/*
 * A chain the device popped but has not used yet (a receive buffer waiting
 * for input) goes back to the ring in the stream: the destination pops it
 * again. Devices hold at most their latest chains; virtio-blk's in-flight
 * requests complete in its quiesce hook before this.
 */
static bool vq_pre_save(void *opaque, GError **err)
{
    VirtQueue *vq = opaque;
    vq->mig_last_avail_idx = vq->last_avail_idx - (uint16_t)g_atomic_int_get(&vq->inflight);
    return true;
}

static bool vq_post_load(void *opaque, int version, GError **err)
{
    VirtQueue *vq = opaque;
    VirtioDevice *vdev = vq->vdev;
    Machine *m = vdev->machine;
    g_autofree char *what = g_strdup_printf("%s queue %u", vdev->name, vq->index);
    bool enabled = vq->cfg.enabled;
    uint16_t n = vq->cfg.size;
    /* Until every check passed the queue is not ready (no host view of the rings). */
    vq->cfg.enabled = false;
    vq->desc = NULL;
    vq->avail = NULL;
    vq->used = NULL;
    g_atomic_int_set(&vq->inflight, 0);
    vq->last_avail_idx = vq->mig_last_avail_idx;
    if (!enabled) {
        return true;
    }
    if (!n || n > vq->max_size || (n & (n - 1))) {
        return load_error(err, what, "size", "%u is not a power of two up to %u", n, vq->max_size);
    }
    if ((uint16_t)(vq->last_avail_idx - vq->used_idx) > n) {
        return load_error(err, what, "used_idx", "%u is more than the queue size behind the available index %u",
                          vq->used_idx, vq->last_avail_idx);
    }
    struct vring_desc *desc = m->gpa_to_hva(m, vq->cfg.desc, 16ULL * n);
    struct vring_avail *avail = m->gpa_to_hva(m, vq->cfg.avail, 6 + 2ULL * n);
    struct vring_used *used = m->gpa_to_hva(m, vq->cfg.used, 6 + 8ULL * n);
    if (!desc || !avail || !used || (vq->cfg.desc & 15) || (vq->cfg.avail & 1) || (vq->cfg.used & 3)) {
        return load_error(err, what, "cfg", "rings at 0x%" G_GINT64_MODIFIER "x/0x%" G_GINT64_MODIFIER
                          "x/0x%" G_GINT64_MODIFIER "x are not aligned guest RAM",
                          vq->cfg.desc, vq->cfg.avail, vq->cfg.used);
    }
    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    vq->cfg.enabled = true;
    return true;
}

static const VMStateField vq_config_fields[] = {
    VMSTATE_UINT16(VirtQueueConfig, size),
    VMSTATE_UINT16(VirtQueueConfig, vector),
    VMSTATE_BOOL(VirtQueueConfig, enabled),
    VMSTATE_UINT64(VirtQueueConfig, desc),
    VMSTATE_UINT64(VirtQueueConfig, avail),
    VMSTATE_UINT64(VirtQueueConfig, used),
    VMSTATE_END,
};

static const VMStateDescription vq_config_vmsd = {
    .name = "virtqueue/config",
    .version = 1,
    .minimum_version = 1,
    .fields = vq_config_fields,
};

static const VMStateField vq_fields[] = {
    VMSTATE_STRUCT(VirtQueue, cfg, vq_config_vmsd, VirtQueueConfig),
    VMSTATE_UINT16(VirtQueue, mig_last_avail_idx),
    VMSTATE_UINT16(VirtQueue, used_idx),
    VMSTATE_UINT16(VirtQueue, signalled_used),
    VMSTATE_BOOL(VirtQueue, signalled_used_valid),
    VMSTATE_BOOL(VirtQueue, notification),
    VMSTATE_END,
};

const VMStateDescription virtqueue_vmsd = {
    .name = "virtqueue",
    .version = 1,
    .minimum_version = 1,
    .fields = vq_fields,
    .pre_save = vq_pre_save,
    .post_load = vq_post_load,
};

static bool vdev_post_load(void *opaque, int version, GError **err)
{
    VirtioDevice *vdev = opaque;
    bool ok = true;
    if (vdev->features & ~vdev->host_features) {
        ok = load_error(err, vdev->name, "features",
                        "0x%" G_GINT64_MODIFIER "x has bits this device does not offer (0x%" G_GINT64_MODIFIER "x)",
                        vdev->features, vdev->host_features);
    } else if ((uint32_t)vdev->broken > 1) {
        ok = load_error(err, vdev->name, "broken", "%d is not a boolean", vdev->broken);
    }
    if (!ok) {
        /* Not started, and nothing half-loaded stays for a driver to see. */
        vdev->status = 0;
        vdev->guest_features = vdev->features = 0;
        vdev->broken = 0;
    }
    return ok;
}

static const VMStateField vdev_fields[] = {
    VMSTATE_UINT8(VirtioDevice, status),
    VMSTATE_UINT64(VirtioDevice, guest_features),
    VMSTATE_UINT64(VirtioDevice, features),
    VMSTATE_UINT16(VirtioDevice, config_vector),
    VMSTATE_UINT32(VirtioDevice, config_generation),
    VMSTATE_UINT32(VirtioDevice, broken),
    VMSTATE_END,
};

const VMStateDescription virtio_device_vmsd = {
    .name = "virtio",
    .version = 1,
    .minimum_version = 1,
    .fields = vdev_fields,
    .post_load = vdev_post_load,
};

bool virtio_device_resume(VirtioDevice *vdev, GError **err)
{
    if ((vdev->status & VIRTIO_CONFIG_S_DRIVER_OK) && !vdev->started && !virtio_device_is_broken(vdev)) {
        start(vdev);
    }
    return true;
}

bool virtio_device_post_load(void *opaque, int version, GError **err)
{
    return virtio_device_resume(opaque, err);
}
