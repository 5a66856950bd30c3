/*
 * virtio-net against rings a test writes the way Linux's driver does, on a
 * real -netdev user (libslirp): a DHCP exchange through both queues, frames
 * held while no receive buffer is posted, checksums the device completes,
 * and a malformed transmit chain breaking the device.
 */
#include "hw/virtio/virtio-net.h"
#include "net-frames.h"
#include <arpa/inet.h>
#include <linux/virtio_net.h>
#include <sys/socket.h>
#include <unistd.h>

#define RAM_SIZE (1 << 20)
#define QSIZE 16
#define RING(q) (0x1000 + (q) * 0x3000) /* desc, then avail and used a page apart */
#define RXBUF(i) (0x10000 + (i) * 0x800)
#define TXBUF(i) (0x40000 + (i) * 0x800)
#define RXBUF_LEN 0x800
#define HDR_LEN 12

typedef struct {
    Machine m;
    uint8_t *ram;
    NetClient *nc;
    VirtioNet *net;
    VirtioDevice *vdev;
    uint16_t next_desc[2];
    uint16_t seen_used[2];
    unsigned interrupts;
} T;

static void *gpa_to_hva(Machine *m, uint64_t gpa, uint64_t len)
{
    T *t = (T *)m;
    return gpa + len >= gpa && gpa + len <= RAM_SIZE ? t->ram + gpa : NULL;
}

static T *current;

static void count_notify(VirtioDevice *vdev, uint16_t vector, uint8_t isr)
{
    current->interrupts++;
}

static const VirtioTransportOps transport = { .notify = count_notify };

static struct vring_desc *desc(T *t, unsigned q)
{
    return (struct vring_desc *)(t->ram + RING(q));
}

static struct vring_avail *avail(T *t, unsigned q)
{
    return (struct vring_avail *)(t->ram + RING(q) + 0x1000);
}

static struct vring_used *used(T *t, unsigned q)
{
    return (struct vring_used *)(t->ram + RING(q) + 0x2000);
}

static void setup(T *t, const char *netdev)
{
    memset(t, 0, sizeof(*t));
    current = t;
    t->ram = g_malloc0(RAM_SIZE);
    t->m.gpa_to_hva = gpa_to_hva;
    g_autoptr(GError) err = NULL;
    g_autoptr(VmConfig) cfg = vm_config_new();
    char *argv[] = { "vireo", "-netdev", (char *)netdev, NULL };
    g_assert_true(vm_config_parse(cfg, 3, argv, &err));
    const VmOpt *opt = cfg->netdevs->pdata[0];
    t->nc = net_client_new(opt, vm_opt_get(opt, "id"), &err);
    g_assert_no_error(err);
    t->net = virtio_net_new(&t->m, t->nc, guest_mac);
    t->vdev = virtio_net_vdev(t->net);
    t->vdev->transport = &transport;

    uint64_t want = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_NET_F_MAC) |
                    (1ULL << VIRTIO_NET_F_STATUS) | (1ULL << VIRTIO_NET_F_MRG_RXBUF) | (1ULL << VIRTIO_NET_F_CSUM);
    g_assert_cmpuint(t->vdev->host_features & want, ==, want);
    t->vdev->guest_features = want;
    virtio_device_set_status(t->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                          VIRTIO_CONFIG_S_FEATURES_OK);
    g_assert_true(t->vdev->status & VIRTIO_CONFIG_S_FEATURES_OK);
    for (unsigned q = 0; q < 2; q++) {
        VirtQueueConfig *c = virtqueue_config(virtio_queue(t->vdev, q));
        c->size = QSIZE;
        c->vector = q + 1;
        c->desc = RING(q);
        c->avail = RING(q) + 0x1000;
        c->used = RING(q) + 0x2000;
        virtqueue_enable(virtio_queue(t->vdev, q));
    }
    virtio_device_set_status(t->vdev, t->vdev->status | VIRTIO_CONFIG_S_DRIVER_OK);
    g_assert_true(t->vdev->started);
}

static void teardown(T *t)
{
    virtio_net_free(t->net);
    g_free(t->ram);
}

/* The driver's kick: the queue's notify eventfd, then a few main-loop rounds. */
static void kick(T *t, unsigned q)
{
    uint64_t one = 1;
    g_assert_cmpint(write(virtqueue_notify_fd(virtio_queue(t->vdev, q)), &one, 8), ==, 8);
    for (unsigned i = 0; i < 5; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
}

static void post_chain(T *t, unsigned q, const uint64_t *addr, const uint32_t *len, unsigned n, bool writable)
{
    uint16_t head = t->next_desc[q];
    for (unsigned i = 0; i < n; i++) {
        uint16_t d = (head + i) % QSIZE;
        desc(t, q)[d] = (struct vring_desc){ addr[i], len[i],
                                              (writable ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0),
                                              (d + 1) % QSIZE };
    }
    t->next_desc[q] = (head + n) % QSIZE;
    struct vring_avail *a = avail(t, q);
    a->ring[a->idx % QSIZE] = head;
    __atomic_store_n(&a->idx, a->idx + 1, __ATOMIC_RELEASE);
}

static void post_rx_buffers(T *t, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t addr = RXBUF(avail(t, 0)->idx % QSIZE);
        uint32_t len = RXBUF_LEN;
        post_chain(t, 0, &addr, &len, 1, true);
    }
}

/* Transmit @frame with @hdr, header and frame in separate buffers as Linux does. */
static void transmit(T *t, const struct virtio_net_hdr_v1 *hdr, const uint8_t *frame, size_t len)
{
    unsigned slot = avail(t, 1)->idx % QSIZE;
    memcpy(t->ram + TXBUF(slot), hdr, HDR_LEN);
    memcpy(t->ram + TXBUF(slot) + 0x100, frame, len);
    uint64_t addr[] = { TXBUF(slot), TXBUF(slot) + 0x100 };
    uint32_t lens[] = { HDR_LEN, len };
    post_chain(t, 1, addr, lens, 2, false);
    kick(t, 1);
}

/* The next received frame (without its header), or NULL. */
static GBytes *next_rx(T *t)
{
    struct vring_used *u = used(t, 0);
    if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == t->seen_used[0]) {
        return NULL;
    }
    struct vring_used_elem e = u->ring[t->seen_used[0]++ % QSIZE];
    const uint8_t *buf = t->ram + desc(t, 0)[e.id].addr;
    struct virtio_net_hdr_v1 hdr;
    memcpy(&hdr, buf, HDR_LEN);
    g_assert_cmpuint(hdr.num_buffers, ==, 1);
    g_assert_cmpuint(e.len, >, HDR_LEN);
    return g_bytes_new(buf + HDR_LEN, e.len - HDR_LEN);
}

static void test_config(void)
{
    T t;
    setup(&t, "user,id=n0");
    uint8_t cfg[10];
    t.vdev->ops->config_read(t.vdev, 0, cfg, sizeof(cfg));
    g_assert_cmpmem(cfg, 6, guest_mac, 6);
    g_assert_cmpuint(cfg[6] | cfg[7] << 8, ==, VIRTIO_NET_S_LINK_UP);
    /* slirp takes whole TCP segments: TSO is offered on it, and not without a backend. */
    g_assert_true(t.vdev->host_features & (1ULL << VIRTIO_NET_F_HOST_TSO4));
    VirtioNet *bare = virtio_net_new(&t.m, NULL, guest_mac);
    g_assert_false(virtio_net_vdev(bare)->host_features & (1ULL << VIRTIO_NET_F_HOST_TSO4));
    virtio_net_free(bare);
    teardown(&t);
}

static void test_dhcp_through_rings(void)
{
    T t;
    setup(&t, "user,id=n0");
    post_rx_buffers(&t, 4);
    kick(&t, 0);
    uint8_t f[1024];
    uint32_t xid = g_random_int();
    struct virtio_net_hdr_v1 hdr = { 0 };
    transmit(&t, &hdr, f, dhcp_discover(f, xid));
    g_assert_cmpuint(used(&t, 1)->idx, ==, 1); /* the transmit buffer came back */
    g_autoptr(GBytes) offer = next_rx(&t);
    g_assert_nonnull(offer);
    uint32_t yiaddr = dhcp_offer(offer, xid);
    char buf[INET_ADDRSTRLEN];
    g_assert_cmpstr(inet_ntop(AF_INET, &yiaddr, buf, sizeof(buf)), ==, "10.0.2.15");
    g_assert_cmpuint(t.interrupts, >=, 2);
    teardown(&t);
}

/* No receive buffers: frames wait in the backend until the driver posts some and kicks. */
static void test_rx_flow_control(void)
{
    T t;
    setup(&t, "user,id=n0");
    uint8_t f[1024];
    uint32_t xid = g_random_int();
    struct virtio_net_hdr_v1 hdr = { 0 };
    size_t len = dhcp_discover(f, xid);
    for (unsigned i = 0; i < 3; i++) {
        transmit(&t, &hdr, f, len);
    }
    g_assert_null(next_rx(&t));
    post_rx_buffers(&t, 2);
    kick(&t, 0);
    for (unsigned i = 0; i < 2; i++) {
        g_autoptr(GBytes) offer = next_rx(&t);
        g_assert_nonnull(offer);
        g_assert_cmpuint(dhcp_offer(offer, xid), !=, 0);
    }
    g_assert_null(next_rx(&t));
    post_rx_buffers(&t, 2);
    kick(&t, 0);
    g_autoptr(GBytes) third = next_rx(&t);
    g_assert_nonnull(third);
    g_assert_cmpuint(dhcp_offer(third, xid), !=, 0);
    g_assert_cmpuint(net_client_dropped(t.nc), ==, 0);
    teardown(&t);
}

/* A UDP datagram from the guest to 10.0.2.2:PORT, checksum left to the device. */
static size_t udp_partial(uint8_t *f, uint16_t port, const char *payload, struct virtio_net_hdr_v1 *hdr)
{
    size_t plen = strlen(payload), len = ETH_HDR + IP_HDR + UDP_HDR + plen;
    memset(f, 0, len);
    static const uint8_t slirp_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
    memcpy(f, slirp_mac, 6);
    memcpy(f + 6, guest_mac, 6);
    put16(f + 12, ETHERTYPE_IP);
    uint8_t *ip = f + ETH_HDR;
    ip[0] = 0x45;
    put16(ip + 2, IP_HDR + UDP_HDR + plen);
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    inet_pton(AF_INET, "10.0.2.15", ip + 12);
    inet_pton(AF_INET, "10.0.2.2", ip + 16);
    put16(ip + 10, ip_checksum(ip, IP_HDR));
    uint8_t *udp = ip + IP_HDR;
    put16(udp, 40000);
    put16(udp + 2, port);
    put16(udp + 4, UDP_HDR + plen);
    memcpy(udp + UDP_HDR, payload, plen);
    /* As Linux leaves it: the pseudo-header sum, not complemented, in the checksum field. */
    uint32_t sum = get16(ip + 12) + get16(ip + 14) + get16(ip + 16) + get16(ip + 18) + IPPROTO_UDP + UDP_HDR + plen;
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    put16(udp + 6, sum);
    *hdr = (struct virtio_net_hdr_v1){ .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = ETH_HDR + IP_HDR,
                                       .csum_offset = 6 };
    return len;
}

static void test_tx_checksum(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    g_assert_cmpint(bind(s, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(getsockname(s, (struct sockaddr *)&a, &alen), ==, 0);
    T t;
    setup(&t, "user,id=n0");
    uint8_t f[256];
    struct virtio_net_hdr_v1 hdr;
    size_t len = udp_partial(f, ntohs(a.sin_port), "checksummed by the device", &hdr);
    transmit(&t, &hdr, f, len);
    /* The same datagram with a checksum nobody completes: slirp drops it. */
    len = udp_partial(f, ntohs(a.sin_port), "never completed", &hdr);
    hdr.flags = 0;
    transmit(&t, &hdr, f, len);
    char got[64] = { 0 };
    ssize_t n = -1;
    for (unsigned i = 0; i < 100 && n < 0; i++) {
        n = recv(s, got, sizeof(got) - 1, 0);
        if (n < 0) {
            g_main_context_iteration(NULL, FALSE);
            g_usleep(1000);
        }
    }
    g_assert_cmpstr(got, ==, "checksummed by the device");
    g_assert_cmpint(recv(s, got, sizeof(got), 0), <, 0); /* the bad one never came */
    close(s);
    teardown(&t);
}

static void test_tx_malformed(void)
{
    T t;
    setup(&t, "user,id=n0");
    unsigned slot = avail(&t, 1)->idx % QSIZE;
    uint64_t addr = TXBUF(slot);
    uint32_t len = HDR_LEN - 2;
    post_chain(&t, 1, &addr, &len, 1, false);
    g_test_expect_message("virtio", G_LOG_LEVEL_WARNING, "virtio-net: the guest driver broke the device (queue 1: *");
    kick(&t, 1);
    g_test_assert_expected_messages();
    g_assert_true(t.vdev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
    /* A reset and a fresh start work again. */
    virtio_device_set_status(t.vdev, 0);
    g_assert_false(virtio_device_is_broken(t.vdev));
    teardown(&t);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio-net/config", test_config);
    g_test_add_func("/virtio-net/dhcp-through-rings", test_dhcp_through_rings);
    g_test_add_func("/virtio-net/rx-flow-control", test_rx_flow_control);
    g_test_add_func("/virtio-net/tx-checksum", test_tx_checksum);
    g_test_add_func("/virtio-net/tx-malformed", test_tx_malformed);
    return g_test_run();
}
