/*
 * -netdev tap: frames to and from a host tap interface (/dev/net/tun, one
 * frame per read or write, no packet-information header). Vireo runs no
 * ifup/ifdown scripts: the interface is set up by whoever made it (or given
 * ready as fd=N, as libvirt does).
 */
#define G_LOG_DOMAIN "net-tap"
#include "net-internal.h"
#include "util/container-of.h"
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Frames read per wake-up before the main loop gets a turn at other sources. */
#define TAP_BURST 64

typedef struct NetTap {
    NetClient nc;
    int fd;
    guint watch;
    char ifname[IFNAMSIZ];
    uint8_t *buf;
} NetTap;

static const char *const tap_keys[] = { "ifname", "script", "downscript", "fd", NULL };

static gboolean tap_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    NetTap *t = opaque;
    for (unsigned i = 0; i < TAP_BURST; i++) {
        if (!net_client_can_deliver(&t->nc)) {
            t->watch = 0; /* until net_client_rx_ready */
            return G_SOURCE_REMOVE;
        }
        ssize_t n = read(fd, t->buf, NET_FRAME_MAX);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            break;
        }
        if (n <= 0) {
            g_warning("tap %s: %s; no more frames from it", t->ifname, n ? g_strerror(errno) : "end of file");
            t->watch = 0;
            return G_SOURCE_REMOVE;
        }
        net_client_deliver(&t->nc, t->buf, n);
    }
    return G_SOURCE_CONTINUE;
}

static void tap_rx_resume(NetClient *nc)
{
    NetTap *t = container_of(nc, NetTap, nc);
    if (!t->watch) {
        t->watch = g_unix_fd_add(t->fd, G_IO_IN, tap_readable, t);
    }
}

static bool tap_send(NetClient *nc, const struct iovec *iov, unsigned cnt, size_t len)
{
    NetTap *t = container_of(nc, NetTap, nc);
    ssize_t n;
    do {
        n = writev(t->fd, iov, cnt);
    } while (n < 0 && errno == EINTR);
    /* A full queue (EAGAIN) or a downed interface (EIO): the frame is lost, as on a wire. */
    return n == (ssize_t)len;
}

static void tap_free(NetClient *nc)
{
    NetTap *t = container_of(nc, NetTap, nc);
    if (t->watch) {
        g_source_remove(t->watch);
    }
    if (t->fd >= 0) {
        close(t->fd);
    }
    g_free(t->buf);
    g_free(t);
}

static bool tap_check_scripts(const VmOpt *opt, GError **err)
{
    static const char *const keys[] = { "script", "downscript" };
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        const char *v = vm_opt_get(opt, keys[i]);
        /* Without script=, QEMU would run /etc/qemu-ifup: say so rather than act differently. */
        if (i == 0 && !v) {
            return vm_opt_error(opt, err, "script=no is required (Vireo runs no interface scripts: "
                                          "set the tap interface up beforehand)");
        }
        if (v && strcmp(v, "no") != 0) {
            return vm_opt_error(opt, err, "%s=%s: Vireo runs no interface scripts (give %s=no and set the "
                                          "tap interface up beforehand)", keys[i], v, keys[i]);
        }
    }
    return true;
}

static int tap_open_fd(const VmOpt *opt, char ifname[IFNAMSIZ], GError **err)
{
    const char *fdstr = vm_opt_get(opt, "fd");
    const char *name = vm_opt_get(opt, "ifname");
    if (fdstr) {
        char *end;
        long fd = strtol(fdstr, &end, 10);
        if (name) {
            return vm_opt_error(opt, err, "fd= and ifname= exclude each other"), -1;
        }
        if (!*fdstr || *end || fd < 0 || fd > G_MAXINT || fcntl(fd, F_GETFD) < 0) {
            return vm_opt_error(opt, err, "fd=%s: not an open file descriptor", fdstr), -1;
        }
        struct ifreq ifr = { 0 };
        if (ioctl(fd, TUNGETIFF, &ifr) < 0 || !(ifr.ifr_flags & IFF_TAP)) {
            return vm_opt_error(opt, err, "fd=%s: not a tap device", fdstr), -1;
        }
        if (!(ifr.ifr_flags & IFF_NO_PI) || (ifr.ifr_flags & IFF_VNET_HDR)) {
            return vm_opt_error(opt, err, "fd=%s: the tap device must have IFF_NO_PI and no IFF_VNET_HDR", fdstr),
                   -1;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        g_strlcpy(ifname, ifr.ifr_name, IFNAMSIZ);
        return fd;
    }
    if (name && (!*name || strlen(name) >= IFNAMSIZ)) {
        return vm_opt_error(opt, err, "ifname=%s: an interface name has 1 to %d characters", name, IFNAMSIZ - 1),
               -1;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return vm_opt_error(opt, err, "cannot open /dev/net/tun: %s (is the tun module loaded?)", g_strerror(e)),
               -1;
    }
    struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
    if (name) {
        g_strlcpy(ifr.ifr_name, name, IFNAMSIZ);
    }
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        const char *hint = e == EPERM  ? " (creating or attaching a tap interface needs CAP_NET_ADMIN)"
                           : e == EBUSY ? " (another process has it open)"
                           : e == EINVAL ? " (an interface of that name exists and is not a tap)"
                                         : "";
        return vm_opt_error(opt, err, "tap interface '%s': %s%s", name ? name : "(new)", g_strerror(e), hint), -1;
    }
    g_strlcpy(ifname, ifr.ifr_name, IFNAMSIZ);
    return fd;
}

static NetClient *tap_open(const VmOpt *opt, const char *id, GError **err)
{
    char ifname[IFNAMSIZ];
    if (!tap_check_scripts(opt, err)) {
        return NULL;
    }
    int fd = tap_open_fd(opt, ifname, err);
    if (fd < 0) {
        return NULL;
    }
    NetTap *t = g_new0(NetTap, 1);
    net_client_init(&t->nc, &net_tap_type, id);
    t->fd = fd;
    t->buf = g_malloc(NET_FRAME_MAX);
    memcpy(t->ifname, ifname, IFNAMSIZ);
    g_debug("netdev %s: tap interface %s", id, ifname);
    tap_rx_resume(&t->nc);
    return &t->nc;
}

const char *net_tap_ifname(const NetClient *nc)
{
    g_assert(nc->type == &net_tap_type);
    return container_of(nc, const NetTap, nc)->ifname;
}

const NetBackendType net_tap_type = {
    .name = "tap",
    .keys = tap_keys,
    .open = tap_open,
    .send = tap_send,
    .rx_resume = tap_rx_resume,
    .free = tap_free,
};
