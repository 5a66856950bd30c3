/* The qemu-system command line, parsed into a machine configuration. */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    VM_ACTION_RUN,
    VM_ACTION_VERSION,
    VM_ACTION_HELP,
} VmAction;

/*
 * -chardev BACKEND,id=ID,...: checked here, opened by the one frontend that
 * claims it (-mon, -device virtconsole,chardev=ID, -serial chardev:ID) with
 * chardev_open(), or by main() when nothing does (QEMU opens those too).
 */
typedef enum {
    VM_CHARDEV_SOCKET, /* path=PATH | host=HOST,port=PORT | fd=N; server=on,wait=off */
    VM_CHARDEV_STDIO,
    VM_CHARDEV_FILE,   /* path=PATH */
    VM_CHARDEV_NULL,
} VmChardevBackend;

typedef struct VmChardev {
    char *id;
    VmChardevBackend backend;
    char *path;        /* file, or a unix socket */
    char *host, *port; /* a TCP socket (host may be empty: every address) */
    int fd;            /* an inherited listening socket, or -1 */
} VmChardev;

/* -mon chardev=ID,mode=control */
typedef struct VmMonitor {
    char *chardev;
} VmMonitor;

/*
 * An option whose keys belong to the subsystem that consumes it (-device,
 * -drive, -blockdev, -netdev, -nic, -object): the command line only splits
 * it into key=val pairs; the consumer checks them when the machine is built
 * and names the option in its errors with vm_opt_error().
 */
typedef struct VmOpt {
    char *option; /* "device", without the dash */
    char *text;   /* the argument as typed */
    GHashTable *kv;
} VmOpt;

typedef struct VmConfig {
    VmAction action;
    char *accel;        /* "kvm" */
    char *machine;      /* "pc"; "help" lists machines */
    char *cpu;          /* "host"; "help" lists models */
    uint64_t ram_size;  /* bytes */
    unsigned smp_cpus, sockets, cores, threads;
    char *kernel, *initrd, *append;
    GPtrArray *serials; /* "stdio", "file:PATH", "null", "chardev:ID"; empty = default */
    char *display;      /* "none" */
    gboolean nographic, nodefaults, no_reboot, no_shutdown, start_paused;
    char *name, *pidfile;
    char *incoming;     /* -incoming URI or "defer" */
    char *snapshot_dir; /* -snapshot-dir DIR: where snapshot-save keeps its tags, or NULL */
    GPtrArray *qmp;     /* -qmp addresses, checked by monitor_address_check() */
    GPtrArray *chardevs; /* VmChardev */
    GPtrArray *mons;    /* VmMonitor, each naming one of @chardevs (checked after parsing) */
    /* VmOpt lists, in command-line order. */
    GPtrArray *devices;   /* -device DRIVER,... (key "driver") */
    GPtrArray *drives;    /* -drive */
    GPtrArray *blockdevs; /* -blockdev */
    GPtrArray *netdevs;   /* -netdev TYPE,... (key "type") */
    GPtrArray *nics;      /* -nic TYPE,... (key "type") */
    GPtrArray *objects;   /* -object TYPE,... (key "qom-type") */
} VmConfig;

VmConfig *vm_config_new(void);
void vm_config_free(VmConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VmConfig, vm_config_free)

/*
 * Parse argv (argv[0] is the program). Options take QEMU's "-opt" or
 * "--opt" spelling. On error returns FALSE with one line in @err naming the
 * option and the value that was wrong.
 */
gboolean vm_config_parse(VmConfig *cfg, int argc, char **argv, GError **err);

/*
 * Fail with one line: "-OPTION TEXT: WHY". Always returns false, so a
 * consumer can write `return vm_opt_error(opt, err, "...")`.
 */
bool vm_opt_error(const VmOpt *opt, GError **err, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Check @opt's keys against the NULL-terminated @known; false with vm_opt_error() otherwise. */
bool vm_opt_check_keys(const VmOpt *opt, const char *const *known, GError **err);
/* The value of @key, or NULL. */
const char *vm_opt_get(const VmOpt *opt, const char *key);
/* @key as on/off (absent: @def); false with an error naming the option. */
bool vm_opt_get_bool(const VmOpt *opt, const char *key, bool def, bool *out, GError **err);
/*
 * A device another option implies (-drive if=virtio, -nic): its errors name
 * @from as typed; it starts with driver=@driver and gets keys with vm_opt_set.
 */
VmOpt *vm_opt_new_implied(const VmOpt *from, const char *driver);
/* Set @key to @value (copied); a NULL @value leaves the option as it is. */
void vm_opt_set(VmOpt *opt, const char *key, const char *value);
void vm_opt_free(gpointer opt);
/* The first VmOpt of @list whose @key is @value, or NULL (e.g. a -netdev by id). */
const VmOpt *vm_opt_find(GPtrArray *list, const char *key, const char *value);

const VmChardev *vm_config_find_chardev(const VmConfig *cfg, const char *id);
/*
 * What claims chardev @id ("-mon", "-serial" or "-device"), or NULL
 * when nothing does. vm_config_parse() has made sure there is at most one.
 */
const char *vm_config_chardev_user(const VmConfig *cfg, const char *id);

/* The -h text. */
char *vm_config_help(const char *prog);
