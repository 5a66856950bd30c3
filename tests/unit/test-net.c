/*
 * Network backends: option errors, the -nic shorthand, and real traffic
 * through libslirp (a DHCP exchange, a host port forward) and a real tap
 * interface (when this process may create one).
 */
#include "net/net.h"
#include "net-frames.h"
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static VmConfig *parse(GError **err, ...)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    va_list ap;
    g_ptr_array_add(argv, "vireo-system-x86_64");
    va_start(ap, err);
    for (const char *a; (a = va_arg(ap, const char *));) {
        g_ptr_array_add(argv, (gpointer)a);
    }
    va_end(ap);
    VmConfig *cfg = vm_config_new();
    g_assert_true(vm_config_parse(cfg, argv->len, (char **)argv->pdata, err));
    return cfg;
}

/* Open the one -netdev of @arg; NULL with @err set on failure. */
static NetClient *open_netdev(const char *arg, GError **err)
{
    g_autoptr(VmConfig) cfg = parse(NULL, "-netdev", arg, NULL);
    const VmOpt *opt = cfg->netdevs->pdata[0];
    return net_client_new(opt, vm_opt_get(opt, "id"), err);
}

static void test_option_errors(void)
{
    static const struct {
        const char *arg, *msg;
    } cases[] = {
        { "user,id=n0,hostfwd=tcp::x-:22",
          "-netdev user,id=n0,hostfwd=tcp::x-:22: hostfwd=tcp::x-:22: host port 'x' is not a number from 0 to 65535" },
        { "user,id=n0,hostfwd=tcp::2222:22",
          "-netdev user,id=n0,hostfwd=tcp::2222:22: hostfwd=tcp::2222:22: "
          "expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT" },
        { "user,id=n0,hostfwd=sctp::1-:2",
          "-netdev user,id=n0,hostfwd=sctp::1-:2: hostfwd=sctp::1-:2: protocol 'sctp' is neither tcp nor udp" },
        { "user,id=n0,hostfwd=tcp:1.2.3:1-:2",
          "-netdev user,id=n0,hostfwd=tcp:1.2.3:1-:2: hostfwd=tcp:1.2.3:1-:2: host address '1.2.3' is not an IPv4 "
          "address" },
        { "user,id=n0,hostfwd=udp::1-:0",
          "-netdev user,id=n0,hostfwd=udp::1-:0: hostfwd=udp::1-:0: guest port '0' is not a number from 1 to 65535" },
        { "user,id=n0,hostfwd=tcp::1-10.0.3.15:22",
          "-netdev user,id=n0,hostfwd=tcp::1-10.0.3.15:22: hostfwd=tcp::1-10.0.3.15:22: the guest address is not "
          "inside the network" },
        /* The second of two forwards is checked too. */
        { "user,id=n0,hostfwd=tcp::2000-:22,hostfwd=tcp::70000-:80",
          "-netdev user,id=n0,hostfwd=tcp::2000-:22,hostfwd=tcp::70000-:80: hostfwd=tcp::70000-:80: host port "
          "'70000' is not a number from 0 to 65535" },
        { "user,id=n0,net=10.0.3.0/24,host=10.0.2.2",
          "-netdev user,id=n0,net=10.0.3.0/24,host=10.0.2.2: host=10.0.2.2: not a host address inside the network "
          "10.0.3.0/24" },
        { "user,id=n0,net=10.0.3.0/33",
          "-netdev user,id=n0,net=10.0.3.0/33: net=10.0.3.0/33: the mask must be a prefix length (0 to 32) or a "
          "netmask" },
        { "user,id=n0,dhcpstart=10.0.2.255",
          "-netdev user,id=n0,dhcpstart=10.0.2.255: dhcpstart=10.0.2.255: not a host address inside the network "
          "10.0.2.0/24" },
        { "user,id=n0,restrict=maybe",
          "-netdev user,id=n0,restrict=maybe: parameter 'restrict' expects 'on' or 'off', not 'maybe'" },
        { "user,id=n0,smb=/tmp", "-netdev user,id=n0,smb=/tmp: -netdev: unknown parameter 'smb'" },
        { "user,id=n0,ipv4=off,ipv6=off",
          "-netdev user,id=n0,ipv4=off,ipv6=off: ipv4=off and ipv6=off leave the network without a protocol" },
        { "user", "-netdev user: id= is required" },
        { "user,id=0n", "-netdev user,id=0n: id '0n' is not well formed (a letter, then letters, digits, '-', '.' "
                        "or '_')" },
        { "socket,id=s0", "-netdev socket,id=s0: network backend 'socket' is not supported (Vireo has: user, tap)" },
        { "tap,id=t0,ifname=tap9",
          "-netdev tap,id=t0,ifname=tap9: script=no is required (Vireo runs no interface scripts: set the tap "
          "interface up beforehand)" },
        { "tap,id=t0,script=/etc/qemu-ifup",
          "-netdev tap,id=t0,script=/etc/qemu-ifup: script=/etc/qemu-ifup: Vireo runs no interface scripts (give "
          "script=no and set the tap interface up beforehand)" },
        { "tap,id=t0,script=no,downscript=/bin/true",
          "-netdev tap,id=t0,script=no,downscript=/bin/true: downscript=/bin/true: Vireo runs no interface scripts "
          "(give downscript=no and set the tap interface up beforehand)" },
        { "tap,id=t0,script=no,ifname=abcdefghijklmnopq",
          "-netdev tap,id=t0,script=no,ifname=abcdefghijklmnopq: ifname=abcdefghijklmnopq: an interface name has 1 "
          "to 15 characters" },
        { "tap,id=t0,script=no,fd=12345",
          "-netdev tap,id=t0,script=no,fd=12345: fd=12345: not an open file descriptor" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(NetClient) nc = open_netdev(cases[i].arg, &err);
        g_assert_null(nc);
        g_assert_nonnull(err);
        g_assert_cmpstr(err->message, ==, cases[i].msg);
    }
}

static void test_hostfwd_in_use(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    g_assert_cmpint(bind(s, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(listen(s, 1), ==, 0);
    g_assert_cmpint(getsockname(s, (struct sockaddr *)&a, &alen), ==, 0);
    g_autofree char *arg = g_strdup_printf("user,id=n0,hostfwd=tcp:127.0.0.1:%u-:22", ntohs(a.sin_port));
    g_autofree char *want = g_strdup_printf("-netdev %s: hostfwd=tcp:127.0.0.1:%u-:22: cannot listen on host port "
                                            "%u: %s", arg, ntohs(a.sin_port), ntohs(a.sin_port),
                                            g_strerror(EADDRINUSE));
    g_autoptr(GError) err = NULL;
    g_autoptr(NetClient) nc = open_netdev(arg, &err);
    g_assert_null(nc);
    g_assert_cmpstr(err->message, ==, want);
    close(s);
}

static void test_mac(void)
{
    uint8_t mac[6];
    g_assert_true(net_parse_mac("52:54:00:12:34:56", mac));
    g_assert_cmpmem(mac, 6, guest_mac, 6);
    g_assert_true(net_parse_mac("02-00-00-AB-cd-ef", mac));
    g_assert_cmpuint(mac[3], ==, 0xab);
    g_assert_false(net_parse_mac("01:00:5e:00:00:01", mac)); /* multicast */
    g_assert_false(net_parse_mac("52:54:00:12:34", mac));
    g_assert_false(net_parse_mac("52:54:00:12:34:567", mac));
    g_assert_false(net_parse_mac("52:54:00:12:34:5g", mac));
    g_assert_false(net_parse_mac("", mac));
}

static void test_nic_shorthand(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(VmConfig) cfg = parse(NULL, "-nic", "user,mac=52:54:00:00:00:01,hostfwd=tcp::0-:22", "-nic", "none",
                                    "-nic", "tap,id=t1,model=virtio,script=no", "-netdev", "user,id=n0", NULL);
    g_autoptr(GPtrArray) devs = net_nic_device_opts(cfg, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(devs->len, ==, 2);
    const VmOpt *d0 = devs->pdata[0], *d1 = devs->pdata[1];
    g_assert_cmpstr(vm_opt_get(d0, "driver"), ==, "virtio-net-pci");
    g_assert_cmpstr(vm_opt_get(d0, "netdev"), ==, "__nic0");
    g_assert_cmpstr(vm_opt_get(d0, "mac"), ==, "52:54:00:00:00:01");
    g_assert_cmpstr(d0->option, ==, "nic"); /* errors name the -nic */
    g_assert_cmpstr(vm_opt_get(d1, "netdev"), ==, "t1");
    g_assert_null(vm_opt_get(d1, "mac"));
    g_assert_true(net_netdev_find(cfg, "__nic0") == cfg->nics->pdata[0]);
    g_assert_true(net_netdev_find(cfg, "t1") == cfg->nics->pdata[2]);
    g_assert_true(net_netdev_find(cfg, "n0") == cfg->netdevs->pdata[0]);
    g_assert_null(net_netdev_find(cfg, "__nic1")); /* -nic none */

    g_autoptr(VmConfig) bad = parse(NULL, "-nic", "user,model=e1000", NULL);
    g_autoptr(GPtrArray) none = net_nic_device_opts(bad, &err);
    g_assert_null(none);
    g_assert_cmpstr(err->message, ==,
                    "-nic user,model=e1000: NIC model 'e1000' is not supported (Vireo has: virtio-net-pci)");
}

static void test_unused_netdev(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(VmConfig) cfg = parse(NULL, "-netdev", "user,id=used", "-netdev", "user,id=spare", "-device",
                                    "virtio-net-pci,netdev=used", NULL);
    g_test_expect_message("net", G_LOG_LEVEL_WARNING, "warning: netdev spare has no peer");
    g_autoptr(GPtrArray) opened = net_open_unused(cfg, &err);
    g_test_assert_expected_messages();
    g_assert_no_error(err);
    g_assert_cmpuint(opened->len, ==, 1);
    g_assert_cmpstr(net_client_id(opened->pdata[0]), ==, "spare");

    g_autoptr(VmConfig) dup = parse(NULL, "-netdev", "user,id=a", "-nic", "user,id=a", NULL);
    g_autoptr(GPtrArray) none = net_open_unused(dup, &err);
    g_assert_null(none);
    g_assert_cmpstr(err->message, ==, "-netdev user,id=a: duplicate id 'a'");
}

/* ---- frames ---- */

typedef struct Peer {
    GPtrArray *frames; /* GBytes */
    bool full;         /* answer "no room" */
} Peer;

static bool peer_can_receive(void *opaque)
{
    return !((Peer *)opaque)->full;
}

static bool peer_receive(void *opaque, const uint8_t *frame, size_t len)
{
    Peer *p = opaque;
    if (p->full) {
        return false;
    }
    g_ptr_array_add(p->frames, g_bytes_new(frame, len));
    return true;
}

static const NetPeerOps peer_ops = { peer_can_receive, peer_receive };

static void send_frame(NetClient *nc, uint8_t *f, size_t len)
{
    /* In two pieces, as a NIC's descriptor chain may hand it over. */
    struct iovec iov[2] = { { f, 20 }, { f + 20, len - 20 } };
    g_assert_true(net_client_send(nc, iov, 2));
}

static void run_dhcp(const char *arg, const char *expect)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(NetClient) nc = open_netdev(arg, &err);
    g_assert_no_error(err);
    Peer peer = { g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref) };
    net_client_attach(nc, &peer_ops, &peer);
    uint8_t f[1024];
    uint32_t xid = g_random_int();
    send_frame(nc, f, dhcp_discover(f, xid));
    for (unsigned i = 0; i < 10; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
    uint32_t offered = 0;
    for (guint i = 0; i < peer.frames->len && !offered; i++) {
        offered = dhcp_offer(peer.frames->pdata[i], xid);
    }
    char buf[INET_ADDRSTRLEN];
    g_assert_cmpstr(inet_ntop(AF_INET, &offered, buf, sizeof(buf)), ==, expect);
    g_ptr_array_unref(peer.frames);
}

static void test_dhcp_offer(void)
{
    run_dhcp("user,id=n0", "10.0.2.15");
    run_dhcp("user,id=n0,net=192.168.76.0/24,dhcpstart=192.168.76.9,hostname=vm1", "192.168.76.9");
}

/* With no room at the NIC, frames wait (and reading stops) until it says it has room. */
static void test_flow_control(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(NetClient) nc = open_netdev("user,id=n0", &err);
    g_assert_no_error(err);
    Peer peer = { g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref), .full = true };
    net_client_attach(nc, &peer_ops, &peer);
    uint8_t f[1024];
    uint32_t xid = g_random_int();
    size_t len = dhcp_discover(f, xid);
    send_frame(nc, f, len);
    send_frame(nc, f, len);
    g_main_context_iteration(NULL, FALSE);
    g_assert_cmpuint(peer.frames->len, ==, 0);
    peer.full = false;
    net_client_rx_ready(nc);
    g_assert_cmpuint(peer.frames->len, ==, 2);
    g_assert_cmpuint(dhcp_offer(peer.frames->pdata[0], xid), !=, 0);
    g_assert_cmpuint(dhcp_offer(peer.frames->pdata[1], xid), !=, 0);
    g_assert_cmpuint(net_client_dropped(nc), ==, 0);
    g_ptr_array_unref(peer.frames);
}

static uint16_t free_tcp_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    g_assert_cmpint(bind(s, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    g_assert_cmpint(getsockname(s, (struct sockaddr *)&a, &alen), ==, 0);
    close(s);
    return ntohs(a.sin_port);
}

/* An ARP request from slirp for @target (network order), i.e. slirp reaching for the guest. */
static bool is_arp_request_for(GBytes *frame, uint32_t target)
{
    gsize len;
    const uint8_t *f = g_bytes_get_data(frame, &len);
    return len >= ETH_HDR + 28 && get16(f + 12) == ETHERTYPE_ARP && get16(f + ETH_HDR + 6) == 1 &&
           memcmp(f + ETH_HDR + 24, &target, 4) == 0;
}

static void test_hostfwd_listens(void)
{
    uint16_t port = free_tcp_port();
    g_autofree char *arg = g_strdup_printf("user,id=n0,hostfwd=udp::%u-:53,hostfwd=tcp:127.0.0.1:%u-:22", port,
                                           port);
    g_autoptr(GError) err = NULL;
    g_autoptr(NetClient) nc = open_netdev(arg, &err);
    g_assert_no_error(err);
    Peer peer = { g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref) };
    net_client_attach(nc, &peer_ops, &peer);

    /* A client on the host connects; slirp accepts and goes looking for the guest at 10.0.2.15. */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    g_assert_cmpint(connect(c, (struct sockaddr *)&a, sizeof(a)), ==, 0);
    uint32_t guest;
    inet_pton(AF_INET, "10.0.2.15", &guest);
    bool found = false;
    /* Each round sleeps at most slirp's timer interval; the accept is the first poll result. */
    for (unsigned i = 0; i < 50 && !found; i++) {
        g_main_context_iteration(NULL, TRUE);
        for (guint j = 0; j < peer.frames->len && !found; j++) {
            found = is_arp_request_for(peer.frames->pdata[j], guest);
        }
    }
    g_assert_true(found);
    close(c);
    g_ptr_array_unref(peer.frames);
}

/* ---- tap ---- */

static int if_set_up(const char *ifname)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = { 0 };
    g_strlcpy(ifr.ifr_name, ifname, IFNAMSIZ);
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    return r;
}

static void test_tap(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(NetClient) nc = open_netdev("tap,id=t0,script=no,downscript=no", &err);
    if (!nc) {
        g_test_skip(err->message); /* no CAP_NET_ADMIN or no /dev/net/tun here */
        return;
    }
    const char *ifname = net_tap_ifname(nc);
    unsigned ifindex = if_nametoindex(ifname);
    g_assert_cmpuint(ifindex, !=, 0);
    g_assert_cmpint(if_set_up(ifname), ==, 0);
    Peer peer = { g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref) };
    net_client_attach(nc, &peer_ops, &peer);

    /* A packet socket on the interface sees what the guest sends and sends what the guest receives. */
    int ps = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    g_assert_cmpint(ps, >=, 0);
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = ifindex };
    g_assert_cmpint(bind(ps, (struct sockaddr *)&sll, sizeof(sll)), ==, 0);

    uint8_t f[1024];
    uint32_t xid = 0x12345678;
    size_t len = dhcp_discover(f, xid);
    send_frame(nc, f, len);
    uint8_t got[2048];
    bool seen = false;
    for (unsigned i = 0; i < 100 && !seen; i++) {
        ssize_t n = recv(ps, got, sizeof(got), 0);
        seen = n == (ssize_t)len && memcmp(got, f, len) == 0;
        if (n < 0) {
            g_usleep(10000);
        }
    }
    g_assert_true(seen);

    /* The host sends a frame out of the interface: the guest side receives it. */
    f[ETH_HDR + IP_HDR + UDP_HDR + 4] = 0x42; /* another xid */
    g_assert_cmpint(send(ps, f, len, 0), ==, (ssize_t)len);
    bool delivered = false;
    for (unsigned i = 0; i < 100 && !delivered; i++) {
        g_main_context_iteration(NULL, FALSE);
        for (guint j = 0; j < peer.frames->len && !delivered; j++) {
            gsize flen;
            const uint8_t *fr = g_bytes_get_data(peer.frames->pdata[j], &flen);
            delivered = flen == len && memcmp(fr, f, len) == 0;
        }
        if (!delivered) {
            g_usleep(10000);
        }
    }
    g_assert_true(delivered);
    close(ps);
    g_ptr_array_unref(peer.frames);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/net/option-errors", test_option_errors);
    g_test_add_func("/net/hostfwd-in-use", test_hostfwd_in_use);
    g_test_add_func("/net/mac", test_mac);
    g_test_add_func("/net/nic-shorthand", test_nic_shorthand);
    g_test_add_func("/net/unused-netdev", test_unused_netdev);
    g_test_add_func("/net/user/dhcp-offer", test_dhcp_offer);
    g_test_add_func("/net/user/flow-control", test_flow_control);
    g_test_add_func("/net/user/hostfwd-listens", test_hostfwd_listens);
    g_test_add_func("/net/tap/frames", test_tap);
    return g_test_run();
}
