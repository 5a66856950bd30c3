/*
 * -netdev user: a user-mode network stack (libslirp) with its DHCP and DNS
 * servers and host port forwards.
 *
 * libslirp asks the application to poll its sockets and run its timers. A
 * custom GSource on the default main context does both: prepare asks slirp
 * which sockets it wants polled and how long it may sleep, dispatch hands
 * slirp the results. While the NIC has no room, reading (POLLIN) is left out,
 * so data waits in the host's socket buffers instead of being dropped.
 */
#define G_LOG_DOMAIN "net-user"
#include "net-internal.h"
#include "util/container-of.h"
#include "util/iov.h"
#include <slirp/libslirp.h>
#include <errno.h>
#include <string.h>

typedef struct HostFwd {
    bool udp;
    struct in_addr host_addr, guest_addr; /* guest_addr 0: dhcpstart */
    int host_port, guest_port;
    const char *text;
} HostFwd;

typedef struct UserConfig {
    struct in_addr net, dns, host, dhcp;
    uint32_t mask; /* host order */
    bool restricted, ipv4, ipv6;
    const char *hostname, *domainname;
    GArray *fwds; /* HostFwd */
    GPtrArray *fwd_texts;
} UserConfig;

/* One socket slirp asked to poll: its GSource tag, kept across rounds. */
typedef struct PollEntry {
    gpointer tag;
    GIOCondition cond;
    unsigned round;
    int index; /* in polled[] this round */
} PollEntry;

typedef struct NetUser {
    NetClient nc;
    Slirp *slirp;
    GSource *source;
    GHashTable *fds;   /* fd -> PollEntry */
    GPtrArray *polled; /* this round's entries, by the index given to slirp */
    unsigned round;
    bool reading;     /* this round polls for input */
    gint64 deadline;  /* monotonic µs when slirp's timers want a round, or -1 */
    uint8_t *txbuf;   /* a guest frame made contiguous for slirp_input */
} NetUser;

typedef struct UserSource {
    GSource source;
    NetUser *nu;
} UserSource;

typedef struct UserTimer {
    NetUser *nu;
    SlirpTimerCb cb; /* or slirp_handle_timer(@id) */
    SlirpTimerId id;
    void *cb_opaque;
    guint source;
} UserTimer;

static const char *const user_keys[] = {
    "net", "host", "dns", "dhcpstart", "hostfwd", "restrict", "hostname", "domainname", "ipv4", "ipv6", NULL,
};

/* ---- options ---- */

static bool parse_ipv4(const char *s, struct in_addr *a)
{
    return inet_pton(AF_INET, s, a) == 1;
}

static char *ipv4_str(struct in_addr a)
{
    char buf[INET_ADDRSTRLEN];
    return g_strdup(inet_ntop(AF_INET, &a, buf, sizeof(buf)));
}

static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    if (!g_ascii_isdigit(s[0])) {
        return false;
    }
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* net=ADDR[/PREFIX|/NETMASK]; without a mask, the address's class decides (as QEMU). */
static bool parse_net(const VmOpt *opt, const char *v, UserConfig *c, GError **err)
{
    g_autofree char *addr = g_strdup(v);
    char *slash = strchr(addr, '/');
    if (slash) {
        *slash++ = '\0';
    }
    if (!parse_ipv4(addr, &c->net)) {
        return vm_opt_error(opt, err, "net=%s: '%s' is not an IPv4 address", v, addr);
    }
    uint32_t a = ntohl(c->net.s_addr);
    unsigned long bits;
    struct in_addr m;
    if (!slash) {
        c->mask = !(a & 0x80000000u) ? 0xff000000u : !(a & 0x40000000u) ? 0xffff0000u : 0xffffff00u;
    } else if (parse_uint(slash, 0, 32, &bits)) {
        c->mask = bits ? ~0u << (32 - bits) : 0;
    } else if (parse_ipv4(slash, &m) && ((~ntohl(m.s_addr) + 1) & ~ntohl(m.s_addr)) == 0) {
        c->mask = ntohl(m.s_addr); /* ones then zeros: ~mask + 1 is a power of two */
    } else {
        return vm_opt_error(opt, err, "net=%s: the mask must be a prefix length (0 to 32) or a netmask", v);
    }
    if (c->mask == 0 || ~c->mask < 3) {
        return vm_opt_error(opt, err, "net=%s: the network has no room for the guest and the host", v);
    }
    c->net.s_addr = htonl(a & c->mask);
    return true;
}

/* Whether @a is an address of a host inside the network (not the network or broadcast address). */
static bool in_net(const UserConfig *c, struct in_addr a)
{
    uint32_t h = ntohl(a.s_addr);
    return (h & c->mask) == ntohl(c->net.s_addr) && (h & ~c->mask) != 0 && (h & ~c->mask) != ~c->mask;
}

/* host=, dns=, dhcpstart=: a given address, else the network's .2, .3 and .15 (as QEMU). */
static bool parse_addr_in_net(const VmOpt *opt, const char *key, uint32_t def, const UserConfig *c,
                              struct in_addr *out, GError **err)
{
    const char *v = vm_opt_get(opt, key);
    if (!v) {
        out->s_addr = htonl(ntohl(c->net.s_addr) | (def & ~c->mask));
    } else if (!parse_ipv4(v, out)) {
        return vm_opt_error(opt, err, "%s=%s: not an IPv4 address", key, v);
    }
    if (!in_net(c, *out)) {
        g_autofree char *a = ipv4_str(*out), *n = ipv4_str(c->net);
        return vm_opt_error(opt, err, "%s=%s: not a host address inside the network %s/%d", key, a, n,
                            32 - __builtin_ctz(c->mask));
    }
    return true;
}

/* QEMU's [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT; NULL or why it is wrong. */
static char *hostfwd_parse(const char *s, HostFwd *f)
{
    static const char syntax[] = "expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT";
    g_autofree char *copy = g_strdup(s);
    char *proto = copy;
    char *haddr = strchr(proto, ':');
    char *hport = haddr ? strchr(++haddr, ':') : NULL;
    char *gaddr = hport ? strchr(++hport, '-') : NULL;
    char *gport = gaddr ? strchr(++gaddr, ':') : NULL;
    if (!gport) {
        return g_strdup(syntax);
    }
    haddr[-1] = hport[-1] = gaddr[-1] = '\0';
    gport++[0] = '\0';
    unsigned long port;
    *f = (HostFwd){ .text = s };
    if (strcmp(proto, "udp") == 0) {
        f->udp = true;
    } else if (*proto && strcmp(proto, "tcp") != 0) {
        return g_strdup_printf("protocol '%s' is neither tcp nor udp", proto);
    }
    if (*haddr && !parse_ipv4(haddr, &f->host_addr)) {
        return g_strdup_printf("host address '%s' is not an IPv4 address", haddr);
    }
    if (!parse_uint(hport, 0, 65535, &port)) {
        return g_strdup_printf("host port '%s' is not a number from 0 to 65535", hport);
    }
    f->host_port = port;
    if (*gaddr && !parse_ipv4(gaddr, &f->guest_addr)) {
        return g_strdup_printf("guest address '%s' is not an IPv4 address", gaddr);
    }
    if (!parse_uint(gport, 1, 65535, &port)) {
        return g_strdup_printf("guest port '%s' is not a number from 1 to 65535", gport);
    }
    f->guest_port = port;
    return NULL;
}

/*
 * Every value of @key in the option text: hostfwd= may be repeated, and the
 * key=value table keeps only the last.
 */
static GPtrArray *opt_values(const char *text, const char *key)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    size_t klen = strlen(key);
    const char *p = text;
    while (*p) {
        g_autoptr(GString) elem = g_string_new(NULL);
        for (; *p && !(*p == ',' && p[1] != ','); p++) {
            if (*p == ',') {
                p++; /* ",," is a comma */
            }
            g_string_append_c(elem, *p);
        }
        if (*p == ',') {
            p++;
        }
        if (strncmp(elem->str, key, klen) == 0 && elem->str[klen] == '=') {
            g_ptr_array_add(out, g_strdup(elem->str + klen + 1));
        }
    }
    return out;
}

static void user_config_clear(UserConfig *c)
{
    g_clear_pointer(&c->fwds, g_array_unref);
    g_clear_pointer(&c->fwd_texts, g_ptr_array_unref);
}

static bool user_config_parse(const VmOpt *opt, UserConfig *c, GError **err)
{
    *c = (UserConfig){ .fwds = g_array_new(FALSE, TRUE, sizeof(HostFwd)) };
    const char *net = vm_opt_get(opt, "net");
    if (!parse_net(opt, net ? net : "10.0.2.0/24", c, err) ||
        !parse_addr_in_net(opt, "host", 0x0202, c, &c->host, err) ||
        !parse_addr_in_net(opt, "dns", 0x0203, c, &c->dns, err) ||
        !parse_addr_in_net(opt, "dhcpstart", 0x020f, c, &c->dhcp, err) ||
        !vm_opt_get_bool(opt, "restrict", false, &c->restricted, err) ||
        !vm_opt_get_bool(opt, "ipv4", true, &c->ipv4, err) ||
        !vm_opt_get_bool(opt, "ipv6", true, &c->ipv6, err)) {
        return false;
    }
    if (!c->ipv4 && !c->ipv6) {
        return vm_opt_error(opt, err, "ipv4=off and ipv6=off leave the network without a protocol");
    }
    c->hostname = vm_opt_get(opt, "hostname");
    if (c->hostname && strlen(c->hostname) > 255) {
        return vm_opt_error(opt, err, "hostname= is longer than 255 characters");
    }
    c->domainname = vm_opt_get(opt, "domainname");
    c->fwd_texts = opt_values(opt->text, "hostfwd");
    for (guint i = 0; i < c->fwd_texts->len; i++) {
        HostFwd f;
        g_autofree char *why = hostfwd_parse(c->fwd_texts->pdata[i], &f);
        if (!why && f.guest_addr.s_addr && !in_net(c, f.guest_addr)) {
            why = g_strdup("the guest address is not inside the network");
        }
        if (why) {
            return vm_opt_error(opt, err, "hostfwd=%s: %s", (const char *)c->fwd_texts->pdata[i], why);
        }
        g_array_append_val(c->fwds, f);
    }
    return true;
}

/* ---- slirp's callbacks ---- */

static ssize_t user_send_packet(const void *buf, size_t len, void *opaque)
{
    NetUser *nu = opaque;
    net_client_deliver(&nu->nc, buf, len);
    return len;
}

static void user_guest_error(const char *msg, void *opaque)
{
    g_debug("guest error: %s", msg);
}

static int64_t user_clock_ns(void *opaque)
{
    return g_get_monotonic_time() * 1000;
}

static gboolean user_timer_fire(gpointer p)
{
    UserTimer *t = p;
    t->source = 0;
    if (t->cb) {
        t->cb(t->cb_opaque);
    } else {
        slirp_handle_timer(t->nu->slirp, t->id, t->cb_opaque);
    }
    return G_SOURCE_REMOVE;
}

static void *user_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
    UserTimer *t = g_new0(UserTimer, 1);
    *t = (UserTimer){ .nu = opaque, .cb = cb, .cb_opaque = cb_opaque };
    return t;
}

static void *user_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    UserTimer *t = g_new0(UserTimer, 1);
    *t = (UserTimer){ .nu = opaque, .id = id, .cb_opaque = cb_opaque };
    return t;
}

static void user_timer_free(void *timer, void *opaque)
{
    UserTimer *t = timer;
    if (t->source) {
        g_source_remove(t->source);
    }
    g_free(t);
}

static void user_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
    UserTimer *t = timer;
    if (t->source) {
        g_source_remove(t->source);
    }
    int64_t delay = expire_ms - user_clock_ns(NULL) / 1000000;
    t->source = g_timeout_add(CLAMP(delay, 0, G_MAXUINT), user_timer_fire, t);
}

static void user_poll_fd_nop(int fd, void *opaque)
{
}

/* slirp has more room for data a guest-forward carries; only wakes the loop. */
static void user_notify(void *opaque)
{
    g_main_context_wakeup(NULL);
}

static const SlirpCb user_callbacks = {
    .send_packet = user_send_packet,
    .guest_error = user_guest_error,
    .clock_get_ns = user_clock_ns,
    .timer_new = user_timer_new,
    .timer_free = user_timer_free,
    .timer_mod = user_timer_mod,
    .register_poll_fd = user_poll_fd_nop,
    .unregister_poll_fd = user_poll_fd_nop,
    .notify = user_notify,
    .timer_new_opaque = user_timer_new_opaque,
};

/* ---- the main-loop source ---- */

static const struct {
    int slirp;
    GIOCondition glib;
} poll_flags[] = {
    { SLIRP_POLL_IN, G_IO_IN }, { SLIRP_POLL_OUT, G_IO_OUT }, { SLIRP_POLL_PRI, G_IO_PRI },
    { SLIRP_POLL_ERR, G_IO_ERR }, { SLIRP_POLL_HUP, G_IO_HUP },
};

static int user_add_poll(int fd, int events, void *opaque)
{
    NetUser *nu = opaque;
    GIOCondition cond = 0;
    if (!nu->reading) {
        events &= ~(SLIRP_POLL_IN | SLIRP_POLL_PRI);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(poll_flags); i++) {
        if (events & poll_flags[i].slirp) {
            cond |= poll_flags[i].glib;
        }
    }
    PollEntry *e = g_hash_table_lookup(nu->fds, GINT_TO_POINTER(fd));
    if (!e) {
        e = g_new0(PollEntry, 1);
        e->tag = g_source_add_unix_fd(nu->source, fd, cond);
        e->cond = cond;
        g_hash_table_insert(nu->fds, GINT_TO_POINTER(fd), e);
    } else if (e->round == nu->round) {
        cond |= e->cond; /* asked twice this round */
    }
    if (e->cond != cond) {
        g_source_modify_unix_fd(nu->source, e->tag, cond);
        e->cond = cond;
    }
    if (e->round != nu->round) {
        e->round = nu->round;
        e->index = nu->polled->len;
        g_ptr_array_add(nu->polled, e);
    }
    return e->index;
}

static int user_get_revents(int idx, void *opaque)
{
    NetUser *nu = opaque;
    if (idx < 0 || (guint)idx >= nu->polled->len) {
        return 0;
    }
    PollEntry *e = nu->polled->pdata[idx];
    GIOCondition r = g_source_query_unix_fd(nu->source, e->tag);
    int events = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(poll_flags); i++) {
        if (r & poll_flags[i].glib) {
            events |= poll_flags[i].slirp;
        }
    }
    return events;
}

static gboolean user_prepare(GSource *s, gint *timeout)
{
    NetUser *nu = ((UserSource *)s)->nu;
    uint32_t ms = UINT32_MAX;
    nu->round++;
    g_ptr_array_set_size(nu->polled, 0);
    nu->reading = net_client_can_deliver(&nu->nc);
    slirp_pollfds_fill(nu->slirp, &ms, user_add_poll, nu);
    /* Sockets slirp closed since the last round. */
    GHashTableIter it;
    PollEntry *e;
    g_hash_table_iter_init(&it, nu->fds);
    while (g_hash_table_iter_next(&it, NULL, (gpointer *)&e)) {
        if (e->round != nu->round) {
            g_source_remove_unix_fd(s, e->tag);
            g_hash_table_iter_remove(&it);
        }
    }
    if (ms == UINT32_MAX) {
        nu->deadline = -1;
        *timeout = -1;
    } else {
        nu->deadline = g_get_monotonic_time() + (gint64)ms * 1000;
        *timeout = MIN(ms, (uint32_t)G_MAXINT);
    }
    return ms == 0;
}

static gboolean user_check(GSource *s)
{
    NetUser *nu = ((UserSource *)s)->nu;
    for (guint i = 0; i < nu->polled->len; i++) {
        PollEntry *e = nu->polled->pdata[i];
        if (g_source_query_unix_fd(s, e->tag)) {
            return TRUE;
        }
    }
    return nu->deadline >= 0 && g_get_monotonic_time() >= nu->deadline;
}

static gboolean user_dispatch(GSource *s, GSourceFunc cb, gpointer data)
{
    NetUser *nu = ((UserSource *)s)->nu;
    slirp_pollfds_poll(nu->slirp, 0, user_get_revents, nu);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs user_source_funcs = {
    .prepare = user_prepare,
    .check = user_check,
    .dispatch = user_dispatch,
};

/* ---- the backend ---- */

static bool user_send(NetClient *nc, const struct iovec *iov, unsigned cnt, size_t len)
{
    NetUser *nu = container_of(nc, NetUser, nc);
    const uint8_t *frame = iov[0].iov_base;
    if (cnt > 1) {
        iov_to_buf(iov, cnt, 0, nu->txbuf, len);
        frame = nu->txbuf;
    }
    slirp_input(nu->slirp, frame, len);
    return true;
}

/* The next round polls for input again; wake the loop in case it sleeps in poll. */
static void user_rx_resume(NetClient *nc)
{
    g_main_context_wakeup(NULL);
}

static void user_free(NetClient *nc)
{
    NetUser *nu = container_of(nc, NetUser, nc);
    if (nu->slirp) {
        slirp_cleanup(nu->slirp);
    }
    if (nu->source) {
        g_source_destroy(nu->source);
        g_source_unref(nu->source);
    }
    g_hash_table_unref(nu->fds);
    g_ptr_array_unref(nu->polled);
    g_free(nu->txbuf);
    g_free(nu);
}

static NetClient *user_open(const VmOpt *opt, const char *id, GError **err)
{
    UserConfig c;
    if (!user_config_parse(opt, &c, err)) {
        user_config_clear(&c);
        return NULL;
    }
    NetUser *nu = g_new0(NetUser, 1);
    net_client_init(&nu->nc, &net_user_type, id);
    nu->fds = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    nu->polled = g_ptr_array_new();
    nu->txbuf = g_malloc(NET_FRAME_MAX);
    nu->deadline = -1;

    /* QEMU's IPv6 defaults: the site-local prefix fec0::/64, host ::2, DNS ::3. */
    struct in6_addr prefix6 = { .s6_addr = { 0xfe, 0xc0 } }, host6 = prefix6, dns6 = prefix6;
    host6.s6_addr[15] = 2;
    dns6.s6_addr[15] = 3;
    SlirpConfig sc = {
        .version = 4,
        .restricted = c.restricted,
        .in_enabled = c.ipv4,
        .vnetwork = c.net,
        .vnetmask = { htonl(c.mask) },
        .vhost = c.host,
        .in6_enabled = c.ipv6,
        .vprefix_addr6 = prefix6,
        .vprefix_len = 64,
        .vhost6 = host6,
        .vhostname = c.hostname,
        .vdhcp_start = c.dhcp,
        .vnameserver = c.dns,
        .vnameserver6 = dns6,
        .vdomainname = c.domainname,
    };
    nu->slirp = slirp_new(&sc, &user_callbacks, nu);
    if (!nu->slirp) {
        vm_opt_error(opt, err, "libslirp refused this network configuration");
        goto fail;
    }
    UserSource *us = (UserSource *)g_source_new(&user_source_funcs, sizeof(UserSource));
    us->nu = nu;
    nu->source = &us->source;
    g_source_set_name(nu->source, "net-user");
    g_source_attach(nu->source, NULL);

    for (guint i = 0; i < c.fwds->len; i++) {
        const HostFwd *f = &g_array_index(c.fwds, HostFwd, i);
        errno = 0;
        if (slirp_add_hostfwd(nu->slirp, f->udp, f->host_addr, f->host_port, f->guest_addr, f->guest_port) < 0) {
            int e = errno;
            vm_opt_error(opt, err, "hostfwd=%s: cannot listen on host port %d: %s", f->text, f->host_port,
                         e ? g_strerror(e) : "libslirp refused the forward");
            goto fail;
        }
    }
    user_config_clear(&c);
    return &nu->nc;

fail:
    user_config_clear(&c);
    net_client_free(&nu->nc);
    return NULL;
}

const NetBackendType net_user_type = {
    .name = "user",
    .keys = user_keys,
    /* slirp_input takes any IP packet up to 64 KiB; its TCP takes what fits the window. */
    .large_segments = true,
    .open = user_open,
    .send = user_send,
    .rx_resume = user_rx_resume,
    .free = user_free,
};
