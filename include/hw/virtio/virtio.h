/*
 * virtio 1.x device core: feature negotiation, device status, split
 * virtqueues, and notifications in both directions. The transport
 * (hw/virtio/virtio-pci.c) maps the guest's register accesses onto this; a
 * device model (virtio-blk, -net, -console, -rng) describes itself with
 * VirtioDeviceOps and processes its queues with virtqueue_pop/push.
 *
 * Threads: transport callbacks and ops run with the big lock held. A queue
 * may be processed on another thread (virtio-blk's I/O thread) between
 * ops->start and the return of ops->stop: virtqueue_pop on one thread at a
 * time per queue, virtqueue_push/virtqueue_notify from any thread (they
 * lock the queue), virtio_device_set_broken from any thread.
 */
#pragma once
#include "hw/core/machine.h"
#include "util/iov.h"
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define VIRTIO_QUEUE_MAX_SIZE 1024
#define VIRTIO_NO_VECTOR 0xffff
/* Interrupt status bits (the ISR register of the PCI transport). */
#define VIRTIO_ISR_QUEUE 0x1
#define VIRTIO_ISR_CONFIG 0x2

typedef struct VirtioDevice VirtioDevice;
typedef struct VirtQueue VirtQueue;

/*
 * One descriptor chain, popped from the available ring: @out are the
 * buffers the driver filled (device reads), @in the ones the device fills.
 * The iovecs point into guest RAM.
 */
typedef struct VirtQueueElement {
    uint16_t head;
    unsigned out_num, in_num;
    struct iovec *out, *in; /* into iov[] */
    size_t out_len, in_len; /* total bytes of each */
    struct iovec iov[];
} VirtQueueElement;

typedef struct VirtioDeviceOps {
    uint16_t device_id; /* VIRTIO_ID_* */
    /* Feature bits the device offers besides the core's (VERSION_1, ring features). */
    uint64_t (*features)(VirtioDevice *vdev);
    /* The guest's config space access; @buf is little-endian, @off + @len inside config_size. */
    void (*config_read)(VirtioDevice *vdev, unsigned off, uint8_t *buf, unsigned len);
    void (*config_write)(VirtioDevice *vdev, unsigned off, const uint8_t *buf, unsigned len);
    /*
     * The driver set DRIVER_OK: the negotiated features are in
     * vdev->features and the enabled queues are ready. Begin processing.
     */
    void (*start)(VirtioDevice *vdev);
    /*
     * Stop processing (device reset, or the machine going away): when this
     * returns no thread touches a queue or guest memory for this device, and
     * requests in flight have completed or been dropped.
     */
    void (*stop)(VirtioDevice *vdev);
    /*
     * The guest notified queue @vq (main loop, big lock). Devices that take
     * a queue's notify eventfd themselves (virtqueue_notify_fd) get no
     * callback for it. NULL: no callbacks at all.
     */
    void (*queue_notify)(VirtioDevice *vdev, VirtQueue *vq);
} VirtioDeviceOps;

/* How the core reaches the transport. */
typedef struct VirtioTransportOps {
    /* Raise MSI-X @vector (or INTx with ISR bit @isr when MSI-X is off); any thread. */
    void (*notify)(VirtioDevice *vdev, uint16_t vector, uint8_t isr);
} VirtioTransportOps;

struct VirtioDevice {
    const VirtioDeviceOps *ops;
    const VirtioTransportOps *transport;
    void *transport_opaque;
    Machine *machine;
    const char *name; /* for log lines, e.g. "virtio-blk-pci 00:03.0" */
    uint64_t host_features;  /* offered */
    uint64_t guest_features; /* what the driver wrote */
    uint64_t features;       /* negotiated (valid from FEATURES_OK) */
    uint8_t status;
    uint16_t config_vector;
    unsigned config_size;
    unsigned nqueues;
    VirtQueue *queues;
    bool started; /* between ops->start and ops->stop */
    gint broken;  /* NEEDS_RESET set; atomic */
    gint config_generation;
};

/* Set up @vdev for @nqueues queues of at most @max_size entries each. */
void virtio_device_init(VirtioDevice *vdev, const VirtioDeviceOps *ops, Machine *m, const char *name,
                        unsigned config_size, unsigned nqueues, uint16_t max_size);
void virtio_device_cleanup(VirtioDevice *vdev);
/* Status register write from the driver (0 resets the device). */
void virtio_device_set_status(VirtioDevice *vdev, uint8_t status);
void virtio_device_reset(VirtioDevice *vdev);
bool virtio_has_feature(const VirtioDevice *vdev, unsigned bit);
/*
 * The guest broke the protocol (malformed chain, bad request): log one line
 * naming the device and @why, set NEEDS_RESET, stop taking requests and
 * tell the driver with a config interrupt. The VM keeps running.
 */
void virtio_device_set_broken(VirtioDevice *vdev, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
bool virtio_device_is_broken(VirtioDevice *vdev);
/* The device's config space changed (e.g. link status): bump the generation and interrupt. */
void virtio_device_config_changed(VirtioDevice *vdev);

/* Queue @index of @vdev, or NULL. */
VirtQueue *virtio_queue(VirtioDevice *vdev, unsigned index);
unsigned virtqueue_index(const VirtQueue *vq);
VirtioDevice *virtqueue_device(const VirtQueue *vq);
/* The driver enabled the queue (and the device has not been reset since). */
bool virtqueue_ready(const VirtQueue *vq);
/*
 * The eventfd the guest's notifications arrive on (an ioeventfd where KVM
 * has them). A device that reads it itself calls virtqueue_take_notify_fd()
 * once at creation: the core then neither watches it nor calls queue_notify.
 */
int virtqueue_notify_fd(VirtQueue *vq);
void virtqueue_take_notify_fd(VirtQueue *vq);

/*
 * The next chain from the available ring, or NULL when there is none or the
 * device is broken. A malformed chain (a loop, a buffer outside RAM, more
 * than the queue size, a write-only buffer before a read-only one) breaks
 * the device and returns NULL. Free the result with virtqueue_push (or
 * g_free, to drop it without returning it, e.g. at stop).
 */
VirtQueueElement *virtqueue_pop(VirtQueue *vq);
/*
 * Give @elem back through the used ring with @len bytes written into its
 * in-buffers, and free it. Does not interrupt: call virtqueue_notify after
 * a batch.
 */
void virtqueue_push(VirtQueue *vq, VirtQueueElement *elem, uint32_t len);
/* Interrupt the driver if it wants one for what was pushed (event index, NO_INTERRUPT). */
void virtqueue_notify(VirtQueue *vq);
/*
 * Ask the driver not to notify (while the device is busy polling) or to
 * notify again; after re-enabling, check for buffers once more. Returns
 * whether the ring is empty.
 */
bool virtqueue_set_notification(VirtQueue *vq, bool enable);
bool virtqueue_empty(VirtQueue *vq);


/* ---- migration ---- */
typedef struct VMStateDescription VMStateDescription;
/* One queue (opaque: the VirtQueue): its layout, indices and notification state; loading maps the rings. */
extern const VMStateDescription virtqueue_vmsd;
/*
 * The core's registers (opaque: the VirtioDevice), for nesting in a device's
 * own description: VMSTATE_STRUCT(VirtioBlk, vdev, virtio_device_vmsd, VirtioDevice).
 */
extern const VMStateDescription virtio_device_vmsd;
/*
 * The last step of loading a device, once its queues and its own state are
 * in: if the driver had set DRIVER_OK, start it (ops->start), so the
 * device's threads and backends take up where the source left off.
 */
bool virtio_device_resume(VirtioDevice *vdev, GError **err);
/* A post_load for devices with no state of their own and their VirtioDevice first. */
bool virtio_device_post_load(void *opaque, int version, GError **err);

/* For the transport. */
typedef struct VirtQueueConfig {
    uint16_t size;
    uint16_t vector;
    bool enabled;
    uint64_t desc, avail, used; /* guest-physical */
} VirtQueueConfig;
VirtQueueConfig *virtqueue_config(VirtQueue *vq); /* what the common config registers read and write */
uint16_t virtqueue_max_size(const VirtQueue *vq);
/* The driver wrote queue_enable = 1: checks the rings lie in RAM (breaks the device otherwise). */
void virtqueue_enable(VirtQueue *vq);
/* A notification for @vq arrived (eventfd or a trapped write): main loop, big lock. */
void virtqueue_handle_notify(VirtQueue *vq);
