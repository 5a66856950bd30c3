/*
 * -drive and -blockdev: from QEMU's options to a BlockConfig, and the
 * virtio-blk-pci devices that -drive if=virtio implies.
 */
#define G_LOG_DOMAIN "block"
#include "block/block.h"
#include "util/error.h"
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* QEMU's cache modes, as the three switches they stand for. */
static const struct {
    const char *name;
    bool direct, writethrough, no_flush;
} cache_modes[] = {
    { "writeback", false, false, false },  { "none", true, false, false },
    { "writethrough", false, true, false }, { "directsync", true, true, false },
    { "unsafe", false, false, true },
};

static const char *const drive_keys[] = {
    "file", "if", "format", "id", "readonly", "read-only", "cache", "cache.direct", "cache.no-flush", "serial",
    "discard", "media", "aio", "addr", NULL,
};

/* How deep -blockdev file= references may nest before Vireo calls it a loop. */
#define MAX_NODE_DEPTH 8

static bool discard_unmap(const VmOpt *opt, const char *key, const char *v, bool *out, GError **err)
{
    if (!strcmp(v, "unmap") || !strcmp(v, "on")) {
        *out = true;
    } else if (!strcmp(v, "ignore") || !strcmp(v, "off")) {
        *out = false;
    } else {
        return vm_opt_error(opt, err, "%s=%s: expected unmap or ignore", key, v);
    }
    return true;
}

static bool check_aio(const VmOpt *opt, const char *key, GError **err)
{
    const char *aio = vm_opt_get(opt, key);
    if (aio && strcmp(aio, "threads") != 0 && strcmp(aio, "native") != 0 && strcmp(aio, "io_uring") != 0) {
        return vm_opt_error(opt, err, "%s=%s: expected threads, native or io_uring", key, aio);
    }
    return true;
}

/* The id a -drive is known by: id=, or QEMU's name for an unnamed one ("virtio0", ...). */
static char *drive_id(const VmConfig *cfg, guint index)
{
    const VmOpt *opt = cfg->drives->pdata[index];
    const char *id = vm_opt_get(opt, "id");
    if (id) {
        return g_strdup(id);
    }
    const char *iface = vm_opt_get(opt, "if");
    if (g_strcmp0(iface, "virtio") != 0) {
        return NULL;
    }
    unsigned n = 0;
    for (guint i = 0; i < index; i++) {
        const VmOpt *o = cfg->drives->pdata[i];
        n += g_strcmp0(vm_opt_get(o, "if"), "virtio") == 0;
    }
    return g_strdup_printf("virtio%u", n);
}

static bool drive_check(const VmOpt *opt, GError **err)
{
    if (!vm_opt_check_keys(opt, drive_keys, err) || !check_aio(opt, "aio", err)) {
        return false;
    }
    const char *iface = vm_opt_get(opt, "if");
    if (!iface) {
        return vm_opt_error(opt, err, "no if= given, and QEMU's default (ide) is not available: use if=virtio or if=none");
    }
    if (strcmp(iface, "virtio") != 0 && strcmp(iface, "none") != 0) {
        return vm_opt_error(opt, err, "if=%s is not available: use if=virtio or if=none", iface);
    }
    if (!strcmp(iface, "none") && !vm_opt_get(opt, "id")) {
        return vm_opt_error(opt, err, "if=none needs an id= for -device ...,drive=ID");
    }
    if (vm_opt_get(opt, "addr") && strcmp(iface, "virtio") != 0) {
        return vm_opt_error(opt, err, "addr= is only for if=virtio");
    }
    const char *format = vm_opt_get(opt, "format");
    if (format && strcmp(format, "raw") != 0) {
        return vm_opt_error(opt, err, "format=%s is not supported: Vireo reads raw images only", format);
    }
    const char *media = vm_opt_get(opt, "media");
    if (media && strcmp(media, "disk") != 0) {
        return vm_opt_error(opt, err, "media=%s is not supported (only disk)", media);
    }
    if (!vm_opt_get(opt, "file") || !*vm_opt_get(opt, "file")) {
        return vm_opt_error(opt, err, "no file= given (an empty drive is not supported)");
    }
    return true;
}

/* Without format=, QEMU probes; Vireo only makes sure it is not handing a qcow2 image to the guest as raw. */
static bool not_qcow2(const VmOpt *opt, const char *path, GError **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char magic[4] = { 0 };
    bool qcow2 = fd >= 0 && pread(fd, magic, sizeof(magic), 0) == sizeof(magic) && !memcmp(magic, "QFI\xfb", 4);
    if (fd >= 0) {
        close(fd);
    }
    if (qcow2) {
        return vm_opt_error(opt, err, "'%s' is a qcow2 image: Vireo reads raw images only", path);
    }
    return true;
}

static BlockBackend *drive_open(const VmOpt *opt, const char *id, GError **err)
{
    if (!drive_check(opt, err)) {
        return NULL;
    }
    BlockConfig conf = { .id = id, .filename = vm_opt_get(opt, "file"), .serial = vm_opt_get(opt, "serial") };
    bool ro_a, ro_b;
    if (!vm_opt_get_bool(opt, "readonly", false, &ro_a, err) || !vm_opt_get_bool(opt, "read-only", false, &ro_b, err)) {
        return NULL;
    }
    conf.read_only = ro_a || ro_b;
    const char *cache = vm_opt_get(opt, "cache");
    if (cache) {
        size_t i = 0;
        while (i < G_N_ELEMENTS(cache_modes) && strcmp(cache_modes[i].name, cache) != 0) {
            i++;
        }
        if (i == G_N_ELEMENTS(cache_modes)) {
            vm_opt_error(opt, err, "cache=%s: expected none, writeback, writethrough, directsync or unsafe", cache);
            return NULL;
        }
        conf.direct = cache_modes[i].direct;
        conf.writethrough = cache_modes[i].writethrough;
        conf.no_flush = cache_modes[i].no_flush;
    }
    if (!vm_opt_get_bool(opt, "cache.direct", conf.direct, &conf.direct, err) ||
        !vm_opt_get_bool(opt, "cache.no-flush", conf.no_flush, &conf.no_flush, err)) {
        return NULL;
    }
    const char *discard = vm_opt_get(opt, "discard");
    if (discard && !discard_unmap(opt, "discard", discard, &conf.discard_unmap, err)) {
        return NULL;
    }
    if (!vm_opt_get(opt, "format") && !not_qcow2(opt, conf.filename, err)) {
        return NULL;
    }
    g_autofree char *what = g_strdup_printf("-%s %s", opt->option, opt->text);
    return block_backend_open(&conf, what, err);
}

/* One -blockdev node: the keys of @opt under @prefix ("" or "file."). */
typedef struct Node {
    const VmOpt *opt;
    const char *prefix;
    GPtrArray *known; /* keys of @opt seen so far, for the check at the end */
} Node;

static const char *node_get(const Node *n, const char *key)
{
    char *k = g_strconcat(n->prefix, key, NULL);
    g_ptr_array_add(n->known, k);
    return vm_opt_get(n->opt, k);
}

static bool node_bool(const Node *n, const char *key, bool def, bool *out, GError **err)
{
    node_get(n, key);
    return vm_opt_get_bool(n->opt, n->known->pdata[n->known->len - 1], def, out, err);
}

static bool node_resolve(const VmConfig *cfg, const Node *n, BlockConfig *conf, unsigned depth, GError **err);

/* A node of its own (a -blockdev named by file=NODE): its keys are checked once it is read. */
static bool node_resolve_opt(const VmConfig *cfg, const VmOpt *opt, BlockConfig *conf, unsigned depth, GError **err)
{
    g_autoptr(GPtrArray) known = g_ptr_array_new_with_free_func(g_free);
    Node n = { opt, "", known };
    node_get(&n, "node-name");
    if (!node_resolve(cfg, &n, conf, depth, err)) {
        return false;
    }
    g_ptr_array_add(known, NULL);
    return vm_opt_check_keys(opt, (const char *const *)known->pdata, err);
}

/*
 * Options a node sets pass to the nodes below it unless those set their
 * own, as in QEMU; read-only anywhere on the way makes the drive read-only.
 */
static bool node_resolve(const VmConfig *cfg, const Node *n, BlockConfig *conf, unsigned depth, GError **err)
{
    if (depth > MAX_NODE_DEPTH) {
        return vm_opt_error(n->opt, err, "file= references nest too deep (a loop?)");
    }
    bool ro;
    if (!node_bool(n, "read-only", false, &ro, err) || !node_bool(n, "auto-read-only", false, &(bool){ 0 }, err) ||
        !node_bool(n, "cache.direct", conf->direct, &conf->direct, err) ||
        !node_bool(n, "cache.no-flush", conf->no_flush, &conf->no_flush, err)) {
        return false;
    }
    conf->read_only |= ro;
    const char *discard = node_get(n, "discard");
    if (discard && !discard_unmap(n->opt, n->known->pdata[n->known->len - 1], discard, &conf->discard_unmap, err)) {
        return false;
    }
    node_get(n, "detect-zeroes");
    const char *driver = node_get(n, "driver");
    if (!driver) {
        return vm_opt_error(n->opt, err, "no %sdriver= given", n->prefix);
    }
    if (!strcmp(driver, "file") || !strcmp(driver, "host_device")) {
        g_autofree char *aio = g_strconcat(n->prefix, "aio", NULL);
        node_get(n, "aio");
        node_get(n, "locking");
        if (!check_aio(n->opt, aio, err)) {
            return false;
        }
        conf->filename = node_get(n, "filename");
        if (!conf->filename || !*conf->filename) {
            return vm_opt_error(n->opt, err, "driver=%s needs %sfilename=", driver, n->prefix);
        }
        return true;
    }
    if (strcmp(driver, "raw") != 0) {
        return vm_opt_error(n->opt, err, "%sdriver=%s is not supported: Vireo has raw, file and host_device", n->prefix,
                            driver);
    }
    const char *file = node_get(n, "file");
    g_autofree char *child_prefix = g_strconcat(n->prefix, "file.", NULL);
    g_autofree char *child_driver = g_strconcat(child_prefix, "driver", NULL);
    if (file && vm_opt_get(n->opt, child_driver)) {
        return vm_opt_error(n->opt, err, "give %sfile= or %sfile.driver=, not both", n->prefix, n->prefix);
    }
    if (file) {
        const VmOpt *child = vm_opt_find(cfg->blockdevs, "node-name", file);
        if (!child) {
            return vm_opt_error(n->opt, err, "%sfile=%s: no -blockdev with node-name=%s", n->prefix, file, file);
        }
        return node_resolve_opt(cfg, child, conf, depth + 1, err);
    }
    if (!vm_opt_get(n->opt, child_driver)) {
        return vm_opt_error(n->opt, err, "driver=raw needs %sfile=NODE or %sfile.driver=file,%sfile.filename=F",
                            n->prefix, n->prefix, n->prefix);
    }
    Node child = { n->opt, child_prefix, n->known };
    node_get(&child, "node-name");
    return node_resolve(cfg, &child, conf, depth + 1, err);
}

static BlockBackend *blockdev_open(const VmConfig *cfg, const VmOpt *opt, const char *id, GError **err)
{
    BlockConfig conf = { .id = id };
    if (!node_resolve_opt(cfg, opt, &conf, 0, err)) {
        return NULL;
    }
    g_autofree char *what = g_strdup_printf("-%s %s", opt->option, opt->text);
    return block_backend_open(&conf, what, err);
}

BlockBackend *block_backend_open_by_id(const VmConfig *cfg, const VmOpt *user, const char *id, GError **err)
{
    for (guint i = 0; i < cfg->drives->len; i++) {
        g_autofree char *did = drive_id(cfg, i);
        if (g_strcmp0(did, id) == 0) {
            return drive_open(cfg->drives->pdata[i], id, err);
        }
    }
    const VmOpt *node = vm_opt_find(cfg->blockdevs, "node-name", id);
    if (node) {
        return blockdev_open(cfg, node, id, err);
    }
    vm_opt_error(user, err, "drive '%s' not found (no -drive id=%s or -blockdev node-name=%s)", id, id, id);
    return NULL;
}

char *block_drive_filename(const VmConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->drives->len; i++) {
        g_autofree char *did = drive_id(cfg, i);
        if (g_strcmp0(did, id) == 0) {
            return g_strdup(vm_opt_get(cfg->drives->pdata[i], "file"));
        }
    }
    const VmOpt *node = vm_opt_find(cfg->blockdevs, "node-name", id);
    BlockConfig conf = { .id = id };
    if (node && node_resolve_opt(cfg, node, &conf, 0, NULL)) {
        return g_strdup(conf.filename);
    }
    return NULL;
}

GPtrArray *block_drive_implied_devices(const VmConfig *cfg, GError **err)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(vm_opt_free);
    for (guint i = 0; i < cfg->drives->len; i++) {
        const VmOpt *drive = cfg->drives->pdata[i];
        if (!drive_check(drive, err)) {
            return NULL;
        }
        if (strcmp(vm_opt_get(drive, "if"), "virtio") != 0) {
            continue;
        }
        VmOpt *dev = vm_opt_new_implied(drive, "virtio-blk-pci");
        g_autofree char *id = drive_id(cfg, i);
        vm_opt_set(dev, "drive", id);
        vm_opt_set(dev, "addr", vm_opt_get(drive, "addr"));
        g_ptr_array_add(out, dev);
    }
    return g_steal_pointer(&out);
}
