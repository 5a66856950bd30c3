/*
 * virtio-net: one receive and one transmit queue on a NetClient backend,
 * processed on the main loop (the backends live there too).
 *
 * Receive: each frame from the backend goes into one buffer chain the
 * driver posted, after a 12-byte virtio-net header. With no buffer posted
 * the backend is told "no room" and holds its frames until the driver
 * kicks the receive queue. Transmit: each chain is a header and a frame;
 * with VIRTIO_NET_F_CSUM the device completes a checksum the driver left
 * partial, and with VIRTIO_NET_F_HOST_TSO4 (on backends that take them)
 * passes 64 KiB TCP segments on whole.
 */
#define G_LOG_DOMAIN "virtio-net"
#include "hw/virtio/virtio-net.h"
#include "hw/virtio/virtio-pci.h"
#include "migration/vmstate.h"
#include "util/container-of.h"
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <string.h>

enum { RXQ, TXQ, NQUEUES };
#define QUEUE_SIZE 256
/* VERSION_1 headers always carry num_buffers. */
#define HDR_LEN sizeof(struct virtio_net_hdr_v1)
/* Up to and with max_virtqueue_pairs (read only with MQ, which is not offered). */
#define CONFIG_SIZE offsetof(struct virtio_net_config, mtu)
#define PCI_CLASS_ETHERNET 0x020000
/* Transmitted chains between interrupts while draining a busy queue. */
#define TX_BATCH 64

#define FEATURES                                                                                    \
    ((1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_STATUS) | (1ULL << VIRTIO_NET_F_MRG_RXBUF) | \
     (1ULL << VIRTIO_NET_F_CSUM))

struct VirtioNet {
    VirtioDevice vdev;
    VirtioPci *pci;
    NetClient *nc;
    char *netdev; /* the backend's id */
    uint8_t mac[NET_MAC_LEN];
    bool default_mac;
    /* A receive chain popped but not used (the frame was too long for it): the next frame's. */
    VirtQueueElement *rx_spare;
    uint64_t rx_too_long, tx_bad_csum, tx_bad_gso;
    uint8_t *txbuf;           /* a frame whose checksum the device completes */
    struct iovec *tx_iov;     /* a chain's buffers past the header */
};

static const char *const virtio_net_props[] = { "netdev", "mac", NULL };

/* ---- receive ---- */

static bool rx_active(VirtioNet *n)
{
    return n->vdev.started && !virtio_device_is_broken(&n->vdev) && virtqueue_ready(virtio_queue(&n->vdev, RXQ));
}

static bool virtio_net_can_receive(void *opaque)
{
    VirtioNet *n = opaque;
    /* Without a driver, frames are taken and dropped, as a card that is down does. */
    return !rx_active(n) || n->rx_spare || !virtqueue_empty(virtio_queue(&n->vdev, RXQ));
}

static bool virtio_net_receive(void *opaque, const uint8_t *frame, size_t len)
{
    VirtioNet *n = opaque;
    if (!rx_active(n)) {
        return true;
    }
    VirtQueue *vq = virtio_queue(&n->vdev, RXQ);
    VirtQueueElement *e = g_steal_pointer(&n->rx_spare);
    if (!e) {
        e = virtqueue_pop(vq);
    }
    if (!e) {
        /* The driver's next receive kick (queue_notify) calls net_client_rx_ready. */
        return false;
    }
    if (e->in_len < HDR_LEN + len) {
        /*
         * Linux's buffers (1518 bytes of frame and more) take any frame of a
         * 1500-byte MTU; a longer one (a jumbo frame from a tap) is dropped
         * rather than spread over several buffers.
         */
        if (n->rx_too_long++ == 0) {
            g_message("%s: dropping a %zu-byte frame longer than the receive buffer (%zu bytes)", n->vdev.name,
                      len, e->in_len - MIN(e->in_len, HDR_LEN));
        }
        n->rx_spare = e;
        return true;
    }
    struct virtio_net_hdr_v1 hdr = { .num_buffers = GUINT16_TO_LE(1) };
    iov_from_buf(e->in, e->in_num, 0, &hdr, HDR_LEN);
    iov_from_buf(e->in, e->in_num, HDR_LEN, frame, len);
    virtqueue_push(vq, e, HDR_LEN + len);
    virtqueue_notify(vq);
    return true;
}

static const NetPeerOps virtio_net_peer_ops = {
    .can_receive = virtio_net_can_receive,
    .receive = virtio_net_receive,
};

/* ---- transmit ---- */

/* Fill in the Internet checksum the driver left partial: over [start, len), stored at start + off. */
static bool csum_complete(uint8_t *f, size_t len, size_t start, size_t off)
{
    if (start + off + 2 > len) {
        return false;
    }
    uint64_t sum = 0;
    size_t i = start;
    for (; i + 1 < len; i += 2) {
        sum += f[i] << 8 | f[i + 1];
    }
    if (i < len) {
        sum += f[i] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    uint16_t c = ~sum;
    if (c == 0) {
        c = 0xffff; /* a UDP checksum of 0 would mean "none"; the two are equal in one's complement */
    }
    f[start + off] = c >> 8;
    f[start + off + 1] = c;
    return true;
}

/* The buffers of @e past the first @skip bytes, into n->tx_iov; returns how many. */
static unsigned iov_skip(VirtioNet *n, const VirtQueueElement *e, size_t skip)
{
    unsigned cnt = 0;
    for (unsigned i = 0; i < e->out_num; i++) {
        size_t l = e->out[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        n->tx_iov[cnt++] = (struct iovec){ (uint8_t *)e->out[i].iov_base + skip, l - skip };
        skip = 0;
    }
    return cnt;
}

/* One chain: header, then frame. False if it broke the device. */
static bool tx_one(VirtioNet *n, const VirtQueueElement *e)
{
    struct virtio_net_hdr_v1 hdr;
    if (e->out_len < HDR_LEN || e->in_num) {
        virtio_device_set_broken(&n->vdev, "queue %u: a transmit chain must be %zu header bytes and a frame, all "
                                           "device-readable", TXQ, HDR_LEN);
        return false;
    }
    if (!n->nc) {
        return true;
    }
    iov_to_buf(e->out, e->out_num, 0, &hdr, HDR_LEN);
    size_t len = e->out_len - HDR_LEN;
    if (hdr.gso_type != VIRTIO_NET_HDR_GSO_NONE &&
        (hdr.gso_type != VIRTIO_NET_HDR_GSO_TCPV4 || !virtio_has_feature(&n->vdev, VIRTIO_NET_F_HOST_TSO4))) {
        n->tx_bad_gso++; /* a segmentation the device did not offer: the frame is lost */
        return true;
    }
    if ((hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && virtio_has_feature(&n->vdev, VIRTIO_NET_F_CSUM) &&
        len <= NET_FRAME_MAX) {
        iov_to_buf(e->out, e->out_num, HDR_LEN, n->txbuf, len);
        if (!csum_complete(n->txbuf, len, GUINT16_FROM_LE(hdr.csum_start), GUINT16_FROM_LE(hdr.csum_offset))) {
            n->tx_bad_csum++;
            return true;
        }
        struct iovec v = { n->txbuf, len };
        net_client_send(n->nc, &v, 1);
        return true;
    }
    net_client_send(n->nc, n->tx_iov, iov_skip(n, e, HDR_LEN));
    return true;
}

static void tx_drain(VirtioNet *n)
{
    VirtQueue *vq = virtio_queue(&n->vdev, TXQ);
    unsigned batch = 0;
    do {
        VirtQueueElement *e;
        while ((e = virtqueue_pop(vq))) {
            if (!tx_one(n, e)) {
                g_free(e);
                return;
            }
            virtqueue_push(vq, e, 0);
            if (++batch == TX_BATCH) {
                virtqueue_notify(vq);
                batch = 0;
            }
        }
    } while (!virtio_device_is_broken(&n->vdev) && !virtqueue_set_notification(vq, true));
    if (batch) {
        virtqueue_notify(vq);
    }
}

/* ---- the device ---- */

static uint64_t virtio_net_features(VirtioDevice *vdev)
{
    VirtioNet *n = container_of(vdev, VirtioNet, vdev);
    /*
     * A backend that takes oversized TCP segments whole (slirp) lets the
     * driver hand over 64 KiB TCP/IPv4 segments: one frame, one checksum
     * and one trip through slirp instead of forty-odd.
     */
    bool tso = n->nc && net_client_takes_large_segments(n->nc);
    return FEATURES | (tso ? 1ULL << VIRTIO_NET_F_HOST_TSO4 : 0);
}

static void virtio_net_config_read(VirtioDevice *vdev, unsigned off, uint8_t *buf, unsigned len)
{
    VirtioNet *n = container_of(vdev, VirtioNet, vdev);
    struct virtio_net_config cfg = {
        .status = GUINT16_TO_LE(!n->nc || net_client_link_up(n->nc) ? VIRTIO_NET_S_LINK_UP : 0),
        .max_virtqueue_pairs = GUINT16_TO_LE(1),
    };
    memcpy(cfg.mac, n->mac, NET_MAC_LEN);
    memcpy(buf, (uint8_t *)&cfg + off, len);
}

/* The MAC is read-only to a virtio 1.x driver (it changes it through the control queue, not offered). */
static void virtio_net_config_write(VirtioDevice *vdev, unsigned off, const uint8_t *buf, unsigned len)
{
}

static void virtio_net_start(VirtioDevice *vdev)
{
    VirtioNet *n = container_of(vdev, VirtioNet, vdev);
    if (n->nc) {
        net_client_rx_ready(n->nc);
    }
    tx_drain(n);
}

static void virtio_net_stop(VirtioDevice *vdev)
{
    VirtioNet *n = container_of(vdev, VirtioNet, vdev);
    g_clear_pointer(&n->rx_spare, g_free);
}

static void virtio_net_queue_notify(VirtioDevice *vdev, VirtQueue *vq)
{
    VirtioNet *n = container_of(vdev, VirtioNet, vdev);
    if (virtqueue_index(vq) == TXQ) {
        tx_drain(n);
    } else if (n->nc) {
        net_client_rx_ready(n->nc);
    }
}

static const VirtioDeviceOps virtio_net_ops = {
    .device_id = VIRTIO_ID_NET,
    .features = virtio_net_features,
    .config_read = virtio_net_config_read,
    .config_write = virtio_net_config_write,
    .start = virtio_net_start,
    .stop = virtio_net_stop,
    .queue_notify = virtio_net_queue_notify,
};

/* ---- migration ---- */

/*
 * Receive and transmit run on the main loop, which the migration holds in
 * its last phase: nothing to quiesce. A receive chain held back for the
 * next frame goes back to the ring in the stream (see virtqueue_vmsd).
 */
static const VMStateField virtio_net_fields[] = {
    VMSTATE_STRUCT(VirtioNet, vdev, virtio_device_vmsd, VirtioDevice),
    VMSTATE_END,
};

G_STATIC_ASSERT(offsetof(VirtioNet, vdev) == 0); /* for virtio_device_post_load */

/* The MAC and the link come from the command line and the backend. */
static const VMStateDescription virtio_net_vmsd = {
    .name = "virtio-net",
    .version = 1,
    .minimum_version = 1,
    .fields = virtio_net_fields,
    .post_load = virtio_device_post_load,
};

VirtioNet *virtio_net_new(Machine *m, NetClient *nc, const uint8_t mac[NET_MAC_LEN])
{
    VirtioNet *n = g_new0(VirtioNet, 1);
    n->nc = nc;
    memcpy(n->mac, mac, NET_MAC_LEN);
    n->txbuf = g_malloc(NET_FRAME_MAX);
    n->tx_iov = g_new(struct iovec, VIRTIO_QUEUE_MAX_SIZE);
    virtio_device_init(&n->vdev, &virtio_net_ops, m, "virtio-net", CONFIG_SIZE, NQUEUES, QUEUE_SIZE);
    if (nc) {
        net_client_attach(nc, &virtio_net_peer_ops, n);
    }
    return n;
}

VirtioDevice *virtio_net_vdev(VirtioNet *n)
{
    return &n->vdev;
}

void virtio_net_free(VirtioNet *n)
{
    if (!n) {
        return;
    }
    virtio_pci_free(n->pci); /* stops the device */
    virtio_device_cleanup(&n->vdev);
    net_client_free(n->nc);
    g_free(n->netdev);
    g_free(n->txbuf);
    g_free(n->tx_iov);
    g_free(n);
}

/* ---- -device virtio-net-pci ---- */

/* QEMU's default MACs: 52:54:00:12:34:56 for the first NIC without mac=, then :57, ... */
static void default_mac(const DeviceContext *ctx, uint8_t mac[NET_MAC_LEN])
{
    static const uint8_t first[NET_MAC_LEN] = NET_DEFAULT_MAC;
    unsigned index = 0;
    for (guint i = 0; i < ctx->created->len; i++) {
        const DeviceInstance *d = ctx->created->pdata[i];
        if (d->type == &virtio_net_pci_type && ((VirtioNet *)d->dev)->default_mac) {
            index++;
        }
    }
    memcpy(mac, first, NET_MAC_LEN);
    mac[NET_MAC_LEN - 1] += index;
}

static void *virtio_net_pci_create(const DeviceContext *ctx, const VmOpt *opt, uint8_t devfn, GError **err)
{
    const char *macstr = vm_opt_get(opt, "mac");
    const char *netdev = vm_opt_get(opt, "netdev");
    uint8_t mac[NET_MAC_LEN];
    if (macstr && !net_parse_mac(macstr, mac)) {
        return vm_opt_error(opt, err, "mac=%s: expected a unicast address like 52:54:00:12:34:56", macstr), NULL;
    }
    if (!macstr) {
        default_mac(ctx, mac);
    }
    g_autoptr(NetClient) nc = NULL;
    if (netdev) {
        const VmOpt *nd = net_netdev_find(ctx->cfg, netdev);
        if (!nd) {
            return vm_opt_error(opt, err, "netdev '%s' not found (give it with -netdev ...,id=%s)", netdev, netdev),
                   NULL;
        }
        for (guint i = 0; i < ctx->created->len; i++) {
            const DeviceInstance *d = ctx->created->pdata[i];
            if (d->type == &virtio_net_pci_type && g_strcmp0(((VirtioNet *)d->dev)->netdev, netdev) == 0) {
                return vm_opt_error(opt, err, "netdev '%s' is already used by another NIC", netdev), NULL;
            }
        }
        nc = net_client_new(nd, netdev, err);
        if (!nc) {
            return NULL;
        }
    }
    VirtioNet *n = virtio_net_new(ctx->machine, g_steal_pointer(&nc), mac);
    n->default_mac = !macstr;
    n->netdev = g_strdup(netdev);
    n->pci = virtio_pci_new(ctx, devfn, &n->vdev, "virtio-net-pci", PCI_CLASS_ETHERNET, err);
    if (!n->pci) {
        virtio_net_free(n);
        return NULL;
    }
    virtio_pci_register_state(n->pci, &virtio_net_vmsd, n);
    if (!netdev) {
        g_warning("warning: nic %s has no peer", n->vdev.name);
    }
    return n;
}

static void virtio_net_pci_destroy(void *dev)
{
    virtio_net_free(dev);
}

const DeviceType virtio_net_pci_type = {
    .name = "virtio-net-pci",
    .desc = "virtio network card (netdev=ID, mac=52:54:00:12:34:56)",
    .props = virtio_net_props,
    .pci = true,
    .create = virtio_net_pci_create,
    .destroy = virtio_net_pci_destroy,
};
