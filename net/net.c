/*
 * Network clients: the backend table, opening a -netdev or -nic, frames
 * held while the NIC has no room, the -nic shorthand and QEMU's "has no
 * peer" warning.
 */
#define G_LOG_DOMAIN "net"
#include "net-internal.h"
#include "util/iov.h"
#include "util/keyval.h"
#include <string.h>

/* Frames held for a NIC without room; past this the backend drops (TCP recovers). */
#define NET_HELD_MAX 256

static const NetBackendType *const backend_types[] = {
    &net_user_type,
    &net_tap_type,
    NULL,
};

/* -nic model= values that mean the one NIC Vireo has. */
static const char *const nic_models[] = { "virtio-net-pci", "virtio", NULL };
#define NIC_DEVICE "virtio-net-pci"

static const NetBackendType *backend_find(const char *name)
{
    for (size_t i = 0; backend_types[i]; i++) {
        if (strcmp(backend_types[i]->name, name) == 0) {
            return backend_types[i];
        }
    }
    return NULL;
}

static char *nic_id(const VmOpt *nic, guint index)
{
    const char *id = vm_opt_get(nic, "id");
    return id ? g_strdup(id) : g_strdup_printf("__nic%u", index);
}

static bool is_nic_none(const VmOpt *nic)
{
    return g_strcmp0(vm_opt_get(nic, "type"), "none") == 0;
}

NetClient *net_client_new(const VmOpt *opt, const char *id, GError **err)
{
    const char *type = vm_opt_get(opt, "type");
    if (!type || !*type) {
        return vm_opt_error(opt, err, "no backend type given (user or tap)"), NULL;
    }
    const NetBackendType *bt = backend_find(type);
    if (!bt) {
        return vm_opt_error(opt, err, "network backend '%s' is not supported (Vireo has: user, tap)", type),
               NULL;
    }
    bool nic = strcmp(opt->option, "nic") == 0;
    g_autoptr(GPtrArray) keys = g_ptr_array_new();
    g_ptr_array_add(keys, "type");
    g_ptr_array_add(keys, "id");
    if (nic) {
        g_ptr_array_add(keys, "model");
        g_ptr_array_add(keys, "mac");
    }
    for (size_t i = 0; bt->keys[i]; i++) {
        g_ptr_array_add(keys, (gpointer)bt->keys[i]);
    }
    g_ptr_array_add(keys, NULL);
    if (!vm_opt_check_keys(opt, (const char *const *)keys->pdata, err)) {
        return NULL;
    }
    if (!id) {
        return vm_opt_error(opt, err, "id= is required"), NULL;
    }
    if (!id_wellformed(id) && !(nic && g_str_has_prefix(id, "__nic"))) {
        return vm_opt_error(opt, err, "id '%s' is not well formed (a letter, then letters, digits, '-', '.' or '_')",
                            id),
               NULL;
    }
    return bt->open(opt, id, err);
}

void net_client_init(NetClient *nc, const NetBackendType *type, const char *id)
{
    nc->type = type;
    nc->id = g_strdup(id);
    nc->link_up = true;
    g_queue_init(&nc->held);
}

void net_client_free(NetClient *nc)
{
    if (!nc) {
        return;
    }
    g_queue_clear_full(&nc->held, (GDestroyNotify)g_bytes_unref);
    g_free(nc->id);
    nc->type->free(nc);
}

const char *net_client_id(const NetClient *nc)
{
    return nc->id;
}

const char *net_client_type(const NetClient *nc)
{
    return nc->type->name;
}

bool net_client_link_up(const NetClient *nc)
{
    return nc->link_up;
}

bool net_client_takes_large_segments(const NetClient *nc)
{
    return nc->type->large_segments;
}

uint64_t net_client_dropped(const NetClient *nc)
{
    return nc->dropped;
}

void net_client_attach(NetClient *nc, const NetPeerOps *ops, void *opaque)
{
    nc->peer = ops;
    nc->peer_opaque = opaque;
    nc->blocked = false;
}

void net_client_detach(NetClient *nc)
{
    nc->peer = NULL;
    nc->peer_opaque = NULL;
    nc->blocked = false;
    g_queue_clear_full(&nc->held, (GDestroyNotify)g_bytes_unref);
}

bool net_client_can_deliver(NetClient *nc)
{
    if (!nc->peer) {
        return true; /* read and drop, as a cable to nowhere */
    }
    if (nc->blocked || !g_queue_is_empty(&nc->held)) {
        return false;
    }
    return !nc->peer->can_receive || nc->peer->can_receive(nc->peer_opaque);
}

static void hold(NetClient *nc, const uint8_t *frame, size_t len)
{
    if (g_queue_get_length(&nc->held) >= NET_HELD_MAX) {
        nc->dropped++;
        return;
    }
    g_queue_push_tail(&nc->held, g_bytes_new(frame, len));
}

void net_client_deliver(NetClient *nc, const uint8_t *frame, size_t len)
{
    if (!nc->peer) {
        return;
    }
    if (nc->blocked || !g_queue_is_empty(&nc->held)) {
        hold(nc, frame, len);
        return;
    }
    if (!nc->peer->receive(nc->peer_opaque, frame, len)) {
        nc->blocked = true;
        hold(nc, frame, len);
    }
}

void net_client_rx_ready(NetClient *nc)
{
    if (!nc->peer) {
        return;
    }
    nc->blocked = false;
    GBytes *b;
    while ((b = g_queue_peek_head(&nc->held))) {
        gsize len;
        const uint8_t *frame = g_bytes_get_data(b, &len);
        if (!nc->peer->receive(nc->peer_opaque, frame, len)) {
            nc->blocked = true;
            return;
        }
        g_bytes_unref(g_queue_pop_head(&nc->held));
    }
    if (nc->type->rx_resume) {
        nc->type->rx_resume(nc);
    }
}

bool net_client_send(NetClient *nc, const struct iovec *iov, unsigned cnt)
{
    size_t len = iov_size(iov, cnt);
    if (len == 0 || len > NET_FRAME_MAX || !nc->link_up) {
        nc->dropped++;
        return false;
    }
    if (!nc->type->send(nc, iov, cnt, len)) {
        nc->dropped++;
        return false;
    }
    return true;
}

const VmOpt *net_netdev_find(const VmConfig *cfg, const char *id)
{
    const VmOpt *o = vm_opt_find(cfg->netdevs, "id", id);
    if (o) {
        return o;
    }
    for (guint i = 0; i < cfg->nics->len; i++) {
        const VmOpt *nic = cfg->nics->pdata[i];
        g_autofree char *nid = nic_id(nic, i);
        if (!is_nic_none(nic) && strcmp(nid, id) == 0) {
            return nic;
        }
    }
    return NULL;
}

GPtrArray *net_nic_device_opts(const VmConfig *cfg, GError **err)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(vm_opt_free);
    for (guint i = 0; i < cfg->nics->len; i++) {
        const VmOpt *nic = cfg->nics->pdata[i];
        if (is_nic_none(nic)) {
            continue;
        }
        const char *model = vm_opt_get(nic, "model");
        if (model && !g_strv_contains(nic_models, model)) {
            vm_opt_error(nic, err, "NIC model '%s' is not supported (Vireo has: " NIC_DEVICE ")", model);
            return NULL;
        }
        VmOpt *dev = vm_opt_new_implied(nic, NIC_DEVICE);
        g_autofree char *id = nic_id(nic, i);
        vm_opt_set(dev, "netdev", id);
        vm_opt_set(dev, "mac", vm_opt_get(nic, "mac"));
        g_ptr_array_add(out, dev);
    }
    return g_steal_pointer(&out);
}

static bool netdev_used(const VmConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->devices->len; i++) {
        if (g_strcmp0(vm_opt_get(cfg->devices->pdata[i], "netdev"), id) == 0) {
            return true;
        }
    }
    return false;
}

GPtrArray *net_open_unused(const VmConfig *cfg, GError **err)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify)net_client_free);
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; i < cfg->nics->len; i++) {
        if (!is_nic_none(cfg->nics->pdata[i])) {
            g_hash_table_add(seen, nic_id(cfg->nics->pdata[i], i));
        }
    }
    for (guint i = 0; i < cfg->netdevs->len; i++) {
        const VmOpt *opt = cfg->netdevs->pdata[i];
        const char *id = vm_opt_get(opt, "id");
        if (id && g_hash_table_contains(seen, id)) {
            vm_opt_error(opt, err, "duplicate id '%s'", id);
            return NULL;
        }
        if (id) {
            g_hash_table_add(seen, g_strdup(id));
        }
        if (id && netdev_used(cfg, id)) {
            continue;
        }
        NetClient *nc = net_client_new(opt, id, err);
        if (!nc) {
            return NULL;
        }
        g_warning("warning: netdev %s has no peer", id);
        g_ptr_array_add(out, nc);
    }
    return g_steal_pointer(&out);
}

bool net_parse_mac(const char *s, uint8_t mac[NET_MAC_LEN])
{
    for (unsigned i = 0; i < NET_MAC_LEN; i++) {
        const char *p = s + 3 * i;
        if (!g_ascii_isxdigit(p[0]) || !g_ascii_isxdigit(p[1])) {
            return false;
        }
        char sep = p[2];
        if (i < NET_MAC_LEN - 1 ? (sep != ':' && sep != '-') : sep != '\0') {
            return false;
        }
        mac[i] = g_ascii_xdigit_value(p[0]) << 4 | g_ascii_xdigit_value(p[1]);
    }
    return !(mac[0] & 1); /* a NIC's own address is never multicast */
}
