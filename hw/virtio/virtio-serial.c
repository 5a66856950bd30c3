/*
 * virtio-serial-pci (the virtio console device) and virtconsole, the port
 * that connects it to a chardev. Without VIRTIO_CONSOLE_F_MULTIPORT the
 * device has exactly one port, port 0, which Linux makes its console hvc0:
 * queue 0 carries input to the guest, queue 1 the guest's output. So one
 * virtconsole per virtio-serial-pci; a second is refused.
 *
 * Everything runs on the main loop with the big lock held (queue_notify and
 * chardev callbacks). Guest output never blocks: when the chardev is full
 * the chain is kept, and sent on when the chardev says it is writable again;
 * the guest's driver waits for its buffer meanwhile, as with any slow host.
 */
#define G_LOG_DOMAIN "virtio-serial"
#include "hw/virtio/virtio-serial.h"
#include "chardev/chardev.h"
#include "hw/virtio/virtio-pci.h"
#include "hw/virtio/virtio.h"
#include "migration/vmstate.h"
#include "util/container-of.h"
#include <linux/virtio_console.h>
#include <stddef.h>
#include <string.h>

#define CONSOLE_QUEUE_SIZE 128
#define PCI_CLASS_COMMUNICATION_OTHER 0x078000 /* as QEMU's virtio-serial-pci */

enum { RX_QUEUE, TX_QUEUE, NUM_QUEUES };

typedef struct VirtioSerial {
    VirtioDevice vdev;
    VirtioPci *pci;
    struct VirtConsole *port; /* the virtconsole on port 0, or NULL */
    Chardev *chr;             /* the port's chardev, or NULL: output is dropped, no input */
    VirtQueueElement *rx;     /* popped for input that has not come yet */
    VirtQueueElement *tx;     /* guest output the chardev has not taken all of */
    size_t tx_off;            /* bytes of @tx already written */
    bool tx_waiting;          /* the chardev calls back when writable */
    /* Bytes of the next chain popped already written, by the source of a migration. */
    uint64_t tx_resume;
    uint64_t mig_tx_off;      /* tx_off as migrated (the chain itself goes back to the ring) */
} VirtioSerial;

typedef struct VirtConsole {
    VirtioSerial *serial;
    Chardev *chr;
} VirtConsole;

static VirtioSerial *serial_of(VirtioDevice *vdev)
{
    return container_of(vdev, VirtioSerial, vdev);
}

static uint64_t serial_features(VirtioDevice *vdev)
{
    return 1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE;
}

static void serial_config_read(VirtioDevice *vdev, unsigned off, uint8_t *buf, unsigned len)
{
    /* No size (F_SIZE not offered), one port; emerg_wr reads as 0. */
    struct virtio_console_config cfg = { .max_nr_ports = GUINT32_TO_LE(1) };
    memcpy(buf, (const uint8_t *)&cfg + off, len);
}

/* Emergency write: one character, before (or instead of) the queues. */
static void serial_config_write(VirtioDevice *vdev, unsigned off, const uint8_t *buf, unsigned len)
{
    VirtioSerial *s = serial_of(vdev);
    if (off == offsetof(struct virtio_console_config, emerg_wr) && len >= 1) {
        chardev_write_nonblocking(s->chr, buf, 1);
    }
}

/* ---- guest output ---- */

static void tx_flush(VirtioSerial *s);

static void tx_writable(void *opaque)
{
    VirtioSerial *s = opaque;
    s->tx_waiting = false;
    tx_flush(s);
}

/* Write the current chain on from tx_off; false when the chardev is full. */
static bool tx_write(VirtioSerial *s)
{
    VirtQueueElement *e = s->tx;
    size_t skip = s->tx_off;
    for (unsigned i = 0; i < e->out_num; i++) {
        const struct iovec *v = &e->out[i];
        if (skip >= v->iov_len) {
            skip -= v->iov_len;
            continue;
        }
        size_t want = v->iov_len - skip;
        size_t n = chardev_write_nonblocking(s->chr, (const uint8_t *)v->iov_base + skip, want);
        s->tx_off += n;
        if (n < want) {
            return false;
        }
        skip = 0;
    }
    return true;
}

static void tx_flush(VirtioSerial *s)
{
    VirtQueue *vq = virtio_queue(&s->vdev, TX_QUEUE);
    bool pushed = false;
    while (!s->tx_waiting) {
        if (!s->tx) {
            s->tx = virtqueue_pop(vq);
            s->tx_off = s->tx ? s->tx_resume : 0;
            s->tx_resume = s->tx ? 0 : s->tx_resume;
            if (!s->tx) {
                break;
            }
        }
        if (!tx_write(s)) {
            s->tx_waiting = true;
            chardev_notify_writable(s->chr, tx_writable, s);
            break;
        }
        virtqueue_push(vq, g_steal_pointer(&s->tx), 0);
        pushed = true;
    }
    if (pushed) {
        virtqueue_notify(vq);
    }
}

/* ---- guest input ---- */

/* Room for input: the in-buffers of one chain, popped when input may come. */
static size_t rx_can_receive(void *opaque)
{
    VirtioSerial *s = opaque;
    if (!s->vdev.started || virtio_device_is_broken(&s->vdev)) {
        return 0;
    }
    while (!s->rx) {
        s->rx = virtqueue_pop(virtio_queue(&s->vdev, RX_QUEUE));
        if (!s->rx) {
            return 0; /* the guest's next buffer (queue_notify) lets input flow again */
        }
        if (s->rx->in_len == 0) {
            virtqueue_push(virtio_queue(&s->vdev, RX_QUEUE), g_steal_pointer(&s->rx), 0);
        }
    }
    return s->rx->in_len;
}

static void rx_receive(void *opaque, const uint8_t *buf, size_t len)
{
    VirtioSerial *s = opaque;
    VirtQueue *vq = virtio_queue(&s->vdev, RX_QUEUE);
    /* One chain per delivery: the backend never gives more than rx_can_receive() allowed. */
    while (len > 0 && rx_can_receive(s) > 0) {
        size_t n = iov_from_buf(s->rx->in, s->rx->in_num, 0, buf, len);
        virtqueue_push(vq, g_steal_pointer(&s->rx), n);
        buf += n;
        len -= n;
    }
    if (len > 0) {
        g_debug("%s: no receive buffer, %zu bytes of input dropped", s->vdev.name, len);
    }
    virtqueue_notify(vq);
}

/* ---- device ---- */

static void serial_start(VirtioDevice *vdev)
{
    VirtioSerial *s = serial_of(vdev);
    chardev_accept_input(s->chr);
    tx_flush(s);
}

static void serial_stop(VirtioDevice *vdev)
{
    VirtioSerial *s = serial_of(vdev);
    if (s->tx_waiting) {
        chardev_notify_writable(s->chr, NULL, NULL);
        s->tx_waiting = false;
    }
    /* Their buffers belong to the driver that is going away. */
    s->tx_resume = 0;
    g_clear_pointer(&s->tx, g_free);
    g_clear_pointer(&s->rx, g_free);
}

static void serial_queue_notify(VirtioDevice *vdev, VirtQueue *vq)
{
    VirtioSerial *s = serial_of(vdev);
    if (virtqueue_index(vq) == RX_QUEUE) {
        chardev_accept_input(s->chr);
    } else {
        tx_flush(s);
    }
}

static const VirtioDeviceOps serial_ops = {
    .device_id = VIRTIO_ID_CONSOLE,
    .features = serial_features,
    .config_read = serial_config_read,
    .config_write = serial_config_write,
    .start = serial_start,
    .stop = serial_stop,
    .queue_notify = serial_queue_notify,
};

/* ---- migration ---- */

/*
 * Everything runs on the main loop, which the migration holds in its last
 * phase: nothing to quiesce. Chains held (input not come yet, output the
 * chardev has not taken all of) go back to the ring in the stream; how much
 * of the output chain went out already travels here, so the destination
 * does not print it twice.
 */
static bool serial_pre_save(void *opaque, GError **err)
{
    VirtioSerial *s = opaque;
    s->mig_tx_off = s->tx ? s->tx_off : s->tx_resume;
    return true;
}

static bool serial_post_load(void *opaque, int version, GError **err)
{
    VirtioSerial *s = opaque;
    s->tx_resume = s->mig_tx_off;
    return virtio_device_resume(&s->vdev, err);
}

static const VMStateField serial_fields[] = {
    VMSTATE_STRUCT(VirtioSerial, vdev, virtio_device_vmsd, VirtioDevice),
    VMSTATE_UINT64(VirtioSerial, mig_tx_off),
    VMSTATE_END,
};

static const VMStateDescription serial_vmsd = {
    .name = "virtio-serial",
    .version = 1,
    .minimum_version = 1,
    .fields = serial_fields,
    .pre_save = serial_pre_save,
    .post_load = serial_post_load,
};

static void *serial_create(const DeviceContext *ctx, const VmOpt *opt, uint8_t devfn, GError **err)
{
    g_autofree VirtioSerial *s = g_new0(VirtioSerial, 1);
    virtio_device_init(&s->vdev, &serial_ops, ctx->machine, "virtio-serial-pci",
                       sizeof(struct virtio_console_config), NUM_QUEUES, CONSOLE_QUEUE_SIZE);
    s->pci = virtio_pci_new(ctx, devfn, &s->vdev, "virtio-serial-pci", PCI_CLASS_COMMUNICATION_OTHER, err);
    if (!s->pci) {
        virtio_device_cleanup(&s->vdev);
        return NULL;
    }
    virtio_pci_register_state(s->pci, &serial_vmsd, s);
    return g_steal_pointer(&s);
}

static void serial_destroy(void *dev)
{
    VirtioSerial *s = dev;
    g_assert(!s->port); /* destroyed last first: its virtconsole went before it */
    virtio_pci_free(s->pci);
    virtio_device_cleanup(&s->vdev);
    g_free(s);
}

const DeviceType virtio_serial_pci_device = {
    .name = "virtio-serial-pci",
    .desc = "virtio console device (one port: add -device virtconsole,chardev=ID after it)",
    .props = (const char *const[]){ NULL },
    .pci = true,
    .create = serial_create,
    .destroy = serial_destroy,
};

/* ---- virtconsole ---- */

static void *console_create(const DeviceContext *ctx, const VmOpt *opt, uint8_t devfn, GError **err)
{
    DeviceInstance *bus = device_find_last(ctx, "virtio-serial-pci");
    if (!bus) {
        vm_opt_error(opt, err, "no virtio-serial-pci to attach to (add -device virtio-serial-pci before it)");
        return NULL;
    }
    VirtioSerial *s = bus->dev;
    if (s->port) {
        vm_opt_error(opt, err, "virtio-serial-pci%s%s already has its console (one virtconsole per virtio-serial-pci)",
                     bus->id ? " " : "", bus->id ? bus->id : "");
        return NULL;
    }
    const char *id = vm_opt_get(opt, "chardev");
    Chardev *chr = NULL;
    if (id) {
        /* vm_config_parse made sure it exists and serves nobody else. */
        chr = chardev_open(vm_config_find_chardev(ctx->cfg, id), err);
        if (!chr) {
            return NULL;
        }
    }
    VirtConsole *c = g_new0(VirtConsole, 1);
    c->serial = s;
    c->chr = chr;
    s->port = c;
    s->chr = chr;
    if (chr) {
        chardev_set_input_full(chr, rx_receive, rx_can_receive, s);
    }
    return c;
}

static void console_destroy(void *dev)
{
    VirtConsole *c = dev;
    VirtioSerial *s = c->serial;
    serial_stop(&s->vdev); /* drops chains and the writability callback */
    if (c->chr) {
        chardev_set_input(c->chr, NULL, NULL);
    }
    s->chr = NULL;
    s->port = NULL;
    chardev_free(c->chr);
    g_free(c);
}

const DeviceType virtconsole_device = {
    .name = "virtconsole",
    .desc = "the console port (hvc0) of the last virtio-serial-pci, on chardev=ID",
    .props = (const char *const[]){ "chardev", NULL },
    .create = console_create,
    .destroy = console_destroy,
};
