/*
 * Command-line options as one table: each row names the option, says whether
 * it takes an argument, and points at the function that stores it.
 */
#include "system/options.h"
#include "hw/core/machine.h"
#include "monitor/monitor.h"
#include "util/error.h"
#include "util/keyval.h"
#include "util/size.h"
#include <string.h>

#define DEFAULT_RAM_SIZE (128ULL << 20) /* as QEMU's pc machine */

typedef gboolean (*OptionFn)(VmConfig *cfg, const char *opt, const char *arg, GError **err);

typedef struct {
    const char *name;
    const char *arg_name; /* NULL: the option takes no argument */
    OptionFn fn;
    const char *help;
} OptionDesc;

static gboolean bad(GError **err, const char *opt, const char *arg, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static gboolean bad(GError **err, const char *opt, const char *arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "-%s %s: %s", opt, arg, why);
    return FALSE;
}

static void set_str(char **field, const char *value)
{
    g_free(*field);
    *field = g_strdup(value);
}

/*
 * Parse "-OPT ARG" as key=val pairs (@implied names a leading bare value) and
 * refuse keys not in @known; errors quote the option as typed, its argument,
 * and @what (the option's canonical name).
 */
static GHashTable *parse_opts(const char *opt, const char *arg, const char *implied,
                              const char *const *known, const char *what, GError **err)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(GHashTable) kv = keyval_parse(arg, implied, &local);
    if (!kv || !keyval_check_keys(kv, known, what, &local)) {
        bad(err, opt, arg, "%s", local->message);
        return NULL;
    }
    return g_steal_pointer(&kv);
}

static gboolean opt_accel(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(GHashTable) kv = keyval_parse(arg, "accel", &local);
    if (!kv) {
        return bad(err, opt, arg, "%s", local->message);
    }
    const char *accel = g_hash_table_lookup(kv, "accel");
    if (g_strcmp0(accel, "kvm") != 0) {
        return bad(err, opt, arg, "accelerator '%s' is not available (Vireo runs on KVM only)",
                   accel ? accel : "");
    }
    static const char *const known[] = { "accel", NULL };
    if (!keyval_check_keys(kv, known, "-accel", &local)) {
        return bad(err, opt, arg, "%s", local->message);
    }
    set_str(&cfg->accel, accel);
    return TRUE;
}

static gboolean opt_enable_kvm(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    set_str(&cfg->accel, "kvm");
    return TRUE;
}

static gboolean opt_machine(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    static const char *const known[] = { "type", "accel", NULL };
    g_autoptr(GHashTable) kv = parse_opts(opt, arg, "type", known, "-machine", err);
    if (!kv) {
        return FALSE;
    }
    if (g_hash_table_contains(kv, "accel") && !opt_accel(cfg, opt, g_hash_table_lookup(kv, "accel"), err)) {
        return FALSE;
    }
    if (g_hash_table_contains(kv, "type")) {
        set_str(&cfg->machine, g_hash_table_lookup(kv, "type"));
    }
    return TRUE;
}

static gboolean opt_cpu(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    set_str(&cfg->cpu, arg);
    return TRUE;
}

static gboolean opt_m(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    g_autoptr(GError) local = NULL;
    static const char *const known[] = { "size", NULL };
    g_autoptr(GHashTable) kv = parse_opts(opt, arg, "size", known, "-m", err);
    if (!kv) {
        return FALSE;
    }
    const char *size = g_hash_table_lookup(kv, "size");
    uint64_t bytes;
    if (!size || !size_parse(size, 1ULL << 20, &bytes, &local)) {
        return bad(err, opt, arg, "%s", local ? local->message : "no size given");
    }
    if (bytes == 0) {
        return bad(err, opt, arg, "memory size must be greater than 0");
    }
    if (bytes % 4096) {
        return bad(err, opt, arg, "memory size must be a multiple of 4 KiB");
    }
    cfg->ram_size = bytes;
    return TRUE;
}

static gboolean smp_number(const char *opt, const char *arg, const char *key, const char *value,
                           unsigned *out, GError **err)
{
    guint64 n;
    if (!g_ascii_string_to_unsigned(value, 10, 1, MACHINE_MAX_CPUS, &n, NULL)) {
        return bad(err, opt, arg, "%s must be a number from 1 to %u, not '%s'", key, MACHINE_MAX_CPUS, value);
    }
    *out = n;
    return TRUE;
}

static gboolean opt_smp(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    static const char *const known[] = { "cpus", "sockets", "cores", "threads", "maxcpus", NULL };
    g_autoptr(GHashTable) kv = parse_opts(opt, arg, "cpus", known, "-smp", err);
    if (!kv) {
        return FALSE;
    }
    static const char *const keys[] = { "cpus", "sockets", "cores", "threads", "maxcpus" };
    unsigned v[G_N_ELEMENTS(keys)] = { 0 };
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
        const char *s = g_hash_table_lookup(kv, keys[i]);
        if (s && !smp_number(opt, arg, keys[i], s, &v[i], err)) {
            return FALSE;
        }
    }
    unsigned cpus = v[0], sockets = v[1], cores = v[2], threads = v[3], maxcpus = v[4];
    /* Missing topology numbers are derived as QEMU does: sockets first. */
    threads = threads ? threads : 1;
    cores = cores ? cores : 1;
    if (!sockets) {
        unsigned total = cpus ? cpus : (maxcpus ? maxcpus : 1);
        sockets = MAX(1u, total / (cores * threads));
    }
    unsigned topology = sockets * cores * threads;
    cpus = cpus ? cpus : topology;
    if (maxcpus && maxcpus != cpus) {
        return bad(err, opt, arg, "CPU hotplug (maxcpus different from cpus) is not supported");
    }
    if (topology != cpus) {
        return bad(err, opt, arg, "sockets (%u) * cores (%u) * threads (%u) != cpus (%u)",
                   sockets, cores, threads, cpus);
    }
    cfg->smp_cpus = cpus;
    cfg->sockets = sockets;
    cfg->cores = cores;
    cfg->threads = threads;
    return TRUE;
}

static gboolean opt_kernel(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    set_str(&cfg->kernel, arg);
    return TRUE;
}

static gboolean opt_initrd(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    set_str(&cfg->initrd, arg);
    return TRUE;
}

static gboolean opt_append(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    set_str(&cfg->append, arg);
    return TRUE;
}

static gboolean opt_serial(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    if (strcmp(arg, "stdio") != 0 && strcmp(arg, "null") != 0 && strcmp(arg, "none") != 0 &&
        !(g_str_has_prefix(arg, "file:") && arg[5]) && !(g_str_has_prefix(arg, "chardev:") && arg[8])) {
        return bad(err, opt, arg, "serial backend must be stdio, file:PATH, chardev:ID, null or none");
    }
    g_ptr_array_add(cfg->serials, g_strdup(arg));
    return TRUE;
}

static gboolean opt_display(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    if (strcmp(arg, "none") != 0) {
        return bad(err, opt, arg, "only '-display none' is supported");
    }
    set_str(&cfg->display, arg);
    return TRUE;
}

#define FLAG_OPTION(fn_name, field)                                                     \
    static gboolean fn_name(VmConfig *cfg, const char *opt, const char *arg, GError **err) \
    {                                                                                   \
        cfg->field = TRUE;                                                              \
        return TRUE;                                                                    \
    }
FLAG_OPTION(opt_nographic, nographic)
FLAG_OPTION(opt_nodefaults, nodefaults)
FLAG_OPTION(opt_no_reboot, no_reboot)
FLAG_OPTION(opt_no_shutdown, no_shutdown)
FLAG_OPTION(opt_S, start_paused)

static gboolean opt_name(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    static const char *const known[] = { "guest", "process", "debug-threads", NULL };
    g_autoptr(GHashTable) kv = parse_opts(opt, arg, "guest", known, "-name", err);
    if (!kv) {
        return FALSE;
    }
    set_str(&cfg->name, g_hash_table_lookup(kv, "guest"));
    return TRUE;
}

static gboolean opt_pidfile(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    set_str(&cfg->pidfile, arg);
    return TRUE;
}

/* The URI is checked when the channel opens (migration/channel.c): its errors name it. */
static gboolean opt_incoming(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    if (!*arg) {
        return bad(err, opt, arg, "expects a URI (file:, exec:, fd:, tcp:, unix:) or 'defer'");
    }
    set_str(&cfg->incoming, arg);
    return TRUE;
}

/* A Vireo extension: where snapshot-save keeps its tags until qcow2 internal snapshots exist. */
static gboolean opt_snapshot_dir(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    if (!*arg || !g_file_test(arg, G_FILE_TEST_IS_DIR)) {
        return bad(err, opt, arg, "expects an existing directory");
    }
    set_str(&cfg->snapshot_dir, arg);
    return TRUE;
}

static gboolean opt_qmp(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    g_autoptr(GError) local = NULL;
    if (!monitor_address_check(arg, &local)) {
        return bad(err, opt, arg, "%s", local->message);
    }
    g_ptr_array_add(cfg->qmp, g_strdup(arg));
    return TRUE;
}

static void vm_chardev_free(VmChardev *c)
{
    g_free(c->id);
    g_free(c->path);
    g_free(c->host);
    g_free(c->port);
    g_free(c);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmChardev, vm_chardev_free)

static void mon_free(gpointer p)
{
    VmMonitor *m = p;
    g_free(m->chardev);
    g_free(m);
}

const VmChardev *vm_config_find_chardev(const VmConfig *cfg, const char *id)
{
    for (guint i = 0; i < cfg->chardevs->len; i++) {
        const VmChardev *c = cfg->chardevs->pdata[i];
        if (strcmp(c->id, id) == 0) {
            return c;
        }
    }
    return NULL;
}

/* The -chardev backends and the keys each takes besides backend and id. */
static const struct {
    const char *name;
    VmChardevBackend backend;
    const char *const *keys;
} chardev_backends[] = {
    { "socket", VM_CHARDEV_SOCKET, (const char *const[]){ "path", "host", "port", "fd", "server", "wait", NULL } },
    { "stdio", VM_CHARDEV_STDIO, (const char *const[]){ NULL } },
    { "file", VM_CHARDEV_FILE, (const char *const[]){ "path", NULL } },
    { "null", VM_CHARDEV_NULL, (const char *const[]){ NULL } },
};

/* socket: exactly one of path=, host=/port=, fd=; only a listening server that does not wait. */
static gboolean chardev_socket(VmChardev *c, GHashTable *kv, const char *opt, const char *arg, GError **err)
{
    g_autoptr(GError) local = NULL;
    const char *fd = g_hash_table_lookup(kv, "fd");
    const char *host = g_hash_table_lookup(kv, "host");
    const char *port = g_hash_table_lookup(kv, "port");
    if (!!c->path + !!fd + !!(host || port) != 1) {
        return bad(err, opt, arg, "give exactly one of path=PATH, host=HOST,port=PORT or fd=N");
    }
    if (c->path && !*c->path) {
        return bad(err, opt, arg, "path= is empty");
    }
    guint64 n = 0;
    if (fd && !g_ascii_string_to_unsigned(fd, 10, 0, G_MAXINT, &n, NULL)) {
        return bad(err, opt, arg, "fd=%s is not a file descriptor number", fd);
    }
    c->fd = fd ? (int)n : -1;
    if (host || port) {
        if (!port || !g_ascii_string_to_unsigned(port, 10, 0, 65535, &n, NULL)) {
            return bad(err, opt, arg, "port=%s: expected a TCP port number (0 to 65535)", port ? port : "");
        }
        c->host = g_strdup(host ? host : "");
        c->port = g_strdup(port);
    }
    gboolean server = FALSE, wait = TRUE;
    const char *v;
    if ((v = g_hash_table_lookup(kv, "server")) && !keyval_bool("server", v, &server, &local)) {
        return bad(err, opt, arg, "%s", local->message);
    }
    if ((v = g_hash_table_lookup(kv, "wait")) && !keyval_bool("wait", v, &wait, &local)) {
        return bad(err, opt, arg, "%s", local->message);
    }
    if (!server || wait) {
        return bad(err, opt, arg, "only server=on,wait=off is supported");
    }
    return TRUE;
}

static gboolean opt_chardev(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    g_autoptr(GError) local = NULL;
    g_autoptr(GHashTable) kv = keyval_parse(arg, "backend", &local);
    if (!kv) {
        return bad(err, opt, arg, "%s", local->message);
    }
    const char *name = g_hash_table_lookup(kv, "backend");
    size_t b = 0;
    while (b < G_N_ELEMENTS(chardev_backends) && g_strcmp0(name, chardev_backends[b].name) != 0) {
        b++;
    }
    if (b == G_N_ELEMENTS(chardev_backends)) {
        return bad(err, opt, arg, "unknown backend '%s' (expected socket, stdio, file or null)", name ? name : "");
    }
    g_autoptr(GPtrArray) known = g_ptr_array_new();
    g_ptr_array_add(known, "backend");
    g_ptr_array_add(known, "id");
    for (const char *const *k = chardev_backends[b].keys; *k; k++) {
        g_ptr_array_add(known, (gpointer)*k);
    }
    g_ptr_array_add(known, NULL);
    if (!keyval_check_keys(kv, (const char *const *)known->pdata, "-chardev", &local)) {
        return bad(err, opt, arg, "%s", local->message);
    }
    const char *id = g_hash_table_lookup(kv, "id");
    if (!id || !*id) {
        return bad(err, opt, arg, "no id given");
    }
    if (vm_config_find_chardev(cfg, id)) {
        return bad(err, opt, arg, "duplicate chardev id '%s'", id);
    }
    g_autoptr(VmChardev) c = g_new0(VmChardev, 1);
    c->id = g_strdup(id);
    c->backend = chardev_backends[b].backend;
    c->path = g_strdup(g_hash_table_lookup(kv, "path"));
    c->fd = -1;
    switch (c->backend) {
    case VM_CHARDEV_SOCKET:
        if (!chardev_socket(c, kv, opt, arg, err)) {
            return FALSE;
        }
        break;
    case VM_CHARDEV_FILE:
        if (!c->path || !*c->path) {
            return bad(err, opt, arg, "no path given (file,id=ID,path=PATH)");
        }
        break;
    case VM_CHARDEV_STDIO:
    case VM_CHARDEV_NULL:
        break;
    }
    g_ptr_array_add(cfg->chardevs, g_steal_pointer(&c));
    return TRUE;
}

static gboolean opt_mon(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    static const char *const known[] = { "chardev", "mode", "pretty", NULL };
    g_autoptr(GHashTable) kv = parse_opts(opt, arg, "chardev", known, "-mon", err);
    if (!kv) {
        return FALSE;
    }
    const char *chardev = g_hash_table_lookup(kv, "chardev");
    const char *mode = g_hash_table_lookup(kv, "mode");
    if (!chardev || !*chardev) {
        return bad(err, opt, arg, "no chardev given");
    }
    /* QEMU's default is the human monitor (readline), which Vireo does not serve on a chardev. */
    if (g_strcmp0(mode, "control") != 0) {
        return bad(err, opt, arg, "only mode=control (QMP) is supported");
    }
    VmMonitor *m = g_new0(VmMonitor, 1);
    m->chardev = g_strdup(chardev);
    g_ptr_array_add(cfg->mons, m);
    return TRUE;
}

void vm_opt_free(gpointer p)
{
    VmOpt *o = p;
    g_free(o->option);
    g_free(o->text);
    g_hash_table_unref(o->kv);
    g_free(o);
}

VmOpt *vm_opt_new_implied(const VmOpt *from, const char *driver)
{
    VmOpt *o = g_new0(VmOpt, 1);
    o->option = g_strdup(from->option);
    o->text = g_strdup(from->text);
    o->kv = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    vm_opt_set(o, "driver", driver);
    return o;
}

void vm_opt_set(VmOpt *opt, const char *key, const char *value)
{
    if (value) {
        g_hash_table_insert(opt->kv, g_strdup(key), g_strdup(value));
    }
}

bool vm_opt_error(const VmOpt *opt, GError **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "-%s %s: %s", opt->option, opt->text, why);
    return false;
}

bool vm_opt_check_keys(const VmOpt *opt, const char *const *known, GError **err)
{
    g_autoptr(GError) local = NULL;
    g_autofree char *what = g_strdup_printf("-%s", opt->option);
    if (!keyval_check_keys(opt->kv, known, what, &local)) {
        return vm_opt_error(opt, err, "%s", local->message);
    }
    return true;
}

const char *vm_opt_get(const VmOpt *opt, const char *key)
{
    return g_hash_table_lookup(opt->kv, key);
}

bool vm_opt_get_bool(const VmOpt *opt, const char *key, bool def, bool *out, GError **err)
{
    const char *v = vm_opt_get(opt, key);
    gboolean b = def;
    g_autoptr(GError) local = NULL;
    if (v && !keyval_bool(key, v, &b, &local)) {
        return vm_opt_error(opt, err, "%s", local->message);
    }
    *out = b;
    return true;
}

const VmOpt *vm_opt_find(GPtrArray *list, const char *key, const char *value)
{
    for (guint i = 0; i < list->len; i++) {
        const VmOpt *o = list->pdata[i];
        if (g_strcmp0(vm_opt_get(o, key), value) == 0) {
            return o;
        }
    }
    return NULL;
}

/* Options whose keys their consumer checks: only the syntax is checked here. */
static gboolean collect(GPtrArray *list, const char *implied, const char *opt, const char *arg, GError **err)
{
    g_autoptr(GError) local = NULL;
    GHashTable *kv = keyval_parse(arg, implied, &local);
    if (!kv) {
        return bad(err, opt, arg, "%s", local->message);
    }
    VmOpt *o = g_new0(VmOpt, 1);
    o->option = g_strdup(opt);
    o->text = g_strdup(arg);
    o->kv = kv;
    g_ptr_array_add(list, o);
    return TRUE;
}

#define COLLECT_OPTION(fn_name, field, implied)                                         \
    static gboolean fn_name(VmConfig *cfg, const char *opt, const char *arg, GError **err) \
    {                                                                                   \
        return collect(cfg->field, implied, opt, arg, err);                             \
    }
COLLECT_OPTION(opt_device, devices, "driver")
COLLECT_OPTION(opt_drive, drives, NULL)
COLLECT_OPTION(opt_blockdev, blockdevs, NULL)
COLLECT_OPTION(opt_netdev, netdevs, "type")
COLLECT_OPTION(opt_nic, nics, "type")
COLLECT_OPTION(opt_object, objects, "qom-type")

static gboolean opt_version(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    cfg->action = VM_ACTION_VERSION;
    return TRUE;
}

static gboolean opt_help(VmConfig *cfg, const char *opt, const char *arg, GError **err)
{
    cfg->action = VM_ACTION_HELP;
    return TRUE;
}

static const OptionDesc options[] = {
    { "accel", "kvm", opt_accel, "use the KVM accelerator (the only one)" },
    { "enable-kvm", NULL, opt_enable_kvm, "same as -accel kvm" },
    { "machine", "[type=]NAME", opt_machine, "machine type (pc; 'help' lists them)" },
    { "M", "NAME", opt_machine, "same as -machine" },
    { "cpu", "MODEL", opt_cpu, "CPU model (host; 'help' lists them)" },
    { "m", "SIZE[k|M|G]", opt_m, "guest RAM (MiB without a suffix; default 128M)" },
    { "smp", "N[,sockets=S,cores=C,threads=T]", opt_smp, "number of vCPUs and their topology" },
    { "kernel", "FILE", opt_kernel, "Linux kernel (bzImage) to boot" },
    { "initrd", "FILE", opt_initrd, "initial ramdisk" },
    { "append", "CMDLINE", opt_append, "kernel command line" },
    { "nographic", NULL, opt_nographic, "no display; serial port on stdio" },
    { "serial", "stdio|file:PATH|chardev:ID|null", opt_serial, "backend of the next serial port" },
    { "display", "none", opt_display, "display backend" },
    { "nodefaults", NULL, opt_nodefaults, "create no default devices" },
    { "no-reboot", NULL, opt_no_reboot, "exit instead of rebooting" },
    { "no-shutdown", NULL, opt_no_shutdown, "stop, rather than exit, when the guest powers off" },
    { "name", "NAME", opt_name, "guest name" },
    { "pidfile", "FILE", opt_pidfile, "write the process id to FILE" },
    { "qmp", "unix:PATH|tcp:HOST:PORT,server=on,wait=off", opt_qmp, "serve QMP there (may be repeated)" },
    { "chardev", "socket|stdio|file|null,id=ID[,...]", opt_chardev,
      "a character device for -mon, -serial chardev:ID or virtconsole (socket: path=PATH|host=H,port=N|fd=N,server=on,wait=off; file: path=PATH)" },
    { "mon", "chardev=ID,mode=control", opt_mon, "serve QMP on chardev ID" },
    { "device", "DRIVER[,prop=value...]", opt_device, "add a device (virtio-blk-pci, virtio-net-pci, ...)" },
    { "drive", "file=FILE[,if=virtio|none][,format=raw][,id=ID][,readonly=on][,cache=...]", opt_drive,
      "a disk image, and with if=virtio its device" },
    { "blockdev", "driver=raw|file,node-name=NAME,...", opt_blockdev, "a block node for -device ...,drive=NAME" },
    { "netdev", "user|tap,id=ID[,...]", opt_netdev, "a network backend for -device ...,netdev=ID" },
    { "nic", "user|tap[,model=virtio-net-pci][,...]", opt_nic, "a network backend and its NIC" },
    { "object", "TYPE,id=ID[,...]", opt_object, "a backend object (rng-random)" },
    { "S", NULL, opt_S, "do not start the vCPUs until 'cont'" },
    { "incoming", "URI|defer", opt_incoming,
      "load the VM from a migration stream (file:PATH, exec:CMD, fd:N, tcp:HOST:PORT, unix:PATH), or wait for migrate-incoming" },
    { "snapshot-dir", "DIR", opt_snapshot_dir,
      "keep snapshot-save's snapshots (tagged VM state and disk copies) in DIR (a Vireo extension)" },
    { "version", NULL, opt_version, "print the version and exit" },
    { "h", NULL, opt_help, "print this help and exit" },
    { "help", NULL, opt_help, "print this help and exit" },
};

static const OptionDesc *find_option(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(options); i++) {
        if (strcmp(options[i].name, name) == 0) {
            return &options[i];
        }
    }
    return NULL;
}

VmConfig *vm_config_new(void)
{
    VmConfig *cfg = g_new0(VmConfig, 1);
    cfg->accel = g_strdup("kvm");
    cfg->machine = g_strdup("pc");
    cfg->cpu = g_strdup("host");
    cfg->ram_size = DEFAULT_RAM_SIZE;
    cfg->smp_cpus = cfg->sockets = cfg->cores = cfg->threads = 1;
    cfg->serials = g_ptr_array_new_with_free_func(g_free);
    cfg->qmp = g_ptr_array_new_with_free_func(g_free);
    cfg->chardevs = g_ptr_array_new_with_free_func((GDestroyNotify)vm_chardev_free);
    cfg->mons = g_ptr_array_new_with_free_func(mon_free);
    GPtrArray **lists[] = { &cfg->devices, &cfg->drives, &cfg->blockdevs, &cfg->netdevs, &cfg->nics, &cfg->objects };
    for (size_t i = 0; i < G_N_ELEMENTS(lists); i++) {
        *lists[i] = g_ptr_array_new_with_free_func(vm_opt_free);
    }
    return cfg;
}

void vm_config_free(VmConfig *cfg)
{
    if (!cfg) {
        return;
    }
    g_free(cfg->accel);
    g_free(cfg->machine);
    g_free(cfg->cpu);
    g_free(cfg->kernel);
    g_free(cfg->initrd);
    g_free(cfg->append);
    g_ptr_array_unref(cfg->serials);
    g_ptr_array_unref(cfg->qmp);
    g_ptr_array_unref(cfg->chardevs);
    g_ptr_array_unref(cfg->mons);
    GPtrArray *lists[] = { cfg->devices, cfg->drives, cfg->blockdevs, cfg->netdevs, cfg->nics, cfg->objects };
    for (size_t i = 0; i < G_N_ELEMENTS(lists); i++) {
        g_ptr_array_unref(lists[i]);
    }
    g_free(cfg->display);
    g_free(cfg->name);
    g_free(cfg->pidfile);
    g_free(cfg->incoming);
    g_free(cfg->snapshot_dir);
    g_free(cfg);
}

/* One reference to a chardev from a frontend, for the checks after parsing. */
typedef struct {
    const char *user; /* "-mon", "-serial", "-device virtconsole" */
    const char *id;
    char *text;       /* the frontend option as typed, for errors */
} ChardevRef;

static void chardev_ref_clear(gpointer p)
{
    g_free(((ChardevRef *)p)->text);
}

/* Every frontend reference to a chardev, in no particular order. */
static GArray *chardev_refs(const VmConfig *cfg)
{
    GArray *refs = g_array_new(FALSE, TRUE, sizeof(ChardevRef));
    g_array_set_clear_func(refs, chardev_ref_clear);
    for (guint i = 0; i < cfg->mons->len; i++) {
        const VmMonitor *m = cfg->mons->pdata[i];
        ChardevRef r = { "-mon", m->chardev, g_strdup_printf("-mon chardev=%s", m->chardev) };
        g_array_append_val(refs, r);
    }
    for (guint i = 0; i < cfg->serials->len; i++) {
        const char *spec = cfg->serials->pdata[i];
        if (g_str_has_prefix(spec, "chardev:")) {
            ChardevRef r = { "-serial", spec + 8, g_strdup_printf("-serial %s", spec) };
            g_array_append_val(refs, r);
        }
    }
    /* Any device with chardev=: the device model checks whether it takes one. */
    for (guint i = 0; i < cfg->devices->len; i++) {
        const VmOpt *o = cfg->devices->pdata[i];
        const char *id = vm_opt_get(o, "chardev");
        if (id) {
            ChardevRef r = { "-device", id, g_strdup_printf("-device %s", o->text) };
            g_array_append_val(refs, r);
        }
    }
    return refs;
}

const char *vm_config_chardev_user(const VmConfig *cfg, const char *id)
{
    g_autoptr(GArray) refs = chardev_refs(cfg);
    for (guint i = 0; i < refs->len; i++) {
        const ChardevRef *r = &g_array_index(refs, ChardevRef, i);
        if (strcmp(r->id, id) == 0) {
            return r->user; /* a string literal: outlives @refs */
        }
    }
    return NULL;
}

/*
 * Frontends may come before their -chardev, so references are checked once
 * everything is parsed: each names an existing chardev, no chardev serves two
 * frontends, and a QMP monitor sits on a socket.
 */
static gboolean check_chardev_users(const VmConfig *cfg, GError **err)
{
    g_autoptr(GArray) refs = chardev_refs(cfg);
    for (guint i = 0; i < refs->len; i++) {
        const ChardevRef *r = &g_array_index(refs, ChardevRef, i);
        const VmChardev *c = vm_config_find_chardev(cfg, r->id);
        if (!c) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "%s: chardev '%s' not found", r->text, r->id);
            return FALSE;
        }
        for (guint j = 0; j < i; j++) {
            const ChardevRef *first = &g_array_index(refs, ChardevRef, j);
            if (strcmp(first->id, r->id) == 0) {
                g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                            "%s: chardev '%s' is already used by %s (a chardev serves one frontend)", r->text,
                            r->id, first->text);
                return FALSE;
            }
        }
        if (strcmp(r->user, "-mon") == 0 && c->backend != VM_CHARDEV_SOCKET) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "%s: chardev '%s' is not a socket (QMP monitors are served on socket chardevs)", r->text,
                        r->id);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean vm_config_parse(VmConfig *cfg, int argc, char **argv, GError **err)
{
    for (int i = 1; i < argc; i++) {
        const char *word = argv[i];
        if (word[0] != '-' || word[1] == '\0') {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "%s: unexpected argument (disk images are given with -drive)", word);
            return FALSE;
        }
        const char *name = word + (word[1] == '-' ? 2 : 1);
        const OptionDesc *o = find_option(name);
        if (!o) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "-%s: invalid option", name);
            return FALSE;
        }
        const char *arg = NULL;
        if (o->arg_name) {
            if (i + 1 >= argc) {
                g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                            "-%s: requires an argument (%s)", name, o->arg_name);
                return FALSE;
            }
            arg = argv[++i];
        }
        if (!o->fn(cfg, name, arg, err)) {
            return FALSE;
        }
    }
    return check_chardev_users(cfg, err);
}

char *vm_config_help(const char *prog)
{
    GString *s = g_string_new(NULL);
    g_string_append_printf(s, "usage: %s [options]\n\n", prog);
    for (size_t i = 0; i < G_N_ELEMENTS(options); i++) {
        g_autofree char *left = g_strdup_printf("-%s%s%s", options[i].name,
                                                options[i].arg_name ? " " : "",
                                                options[i].arg_name ? options[i].arg_name : "");
        g_string_append_printf(s, "  %-40s %s\n", left, options[i].help);
    }
    return g_string_free(s, FALSE);
}
