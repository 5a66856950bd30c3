/* The qemu-system command line, parsed into a machine configuration. */
#pragma once
#include <glib.h>
#include <stdint.h>

typedef enum {
    VM_ACTION_RUN,
    VM_ACTION_VERSION,
    VM_ACTION_HELP,
} VmAction;

/* -chardev socket,id=ID,path=PATH|fd=N,server=on,wait=off: only QMP monitors use them. */
typedef struct VmChardev {
    char *id;
    char *path; /* or NULL, and then: */
    int fd;     /* an inherited listening socket */
} VmChardev;

/* -mon chardev=ID,mode=control */
typedef struct VmMonitor {
    char *chardev;
} VmMonitor;

typedef struct VmConfig {
    VmAction action;
    char *accel;        /* "kvm" */
    char *machine;      /* "pc"; "help" lists machines */
    char *cpu;          /* "host"; "help" lists models */
    uint64_t ram_size;  /* bytes */
    unsigned smp_cpus, sockets, cores, threads;
    char *kernel, *initrd, *append;
    GPtrArray *serials; /* "stdio", "file:PATH", "null"; empty = default */
    char *display;      /* "none" */
    gboolean nographic, nodefaults, no_reboot, no_shutdown, start_paused;
    char *name, *pidfile;
    GPtrArray *qmp;     /* -qmp addresses, checked by monitor_address_check() */
    GPtrArray *chardevs; /* VmChardev */
    GPtrArray *mons;    /* VmMonitor, each naming one of @chardevs (checked after parsing) */
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

const VmChardev *vm_config_find_chardev(const VmConfig *cfg, const char *id);

/* The -h text. */
char *vm_config_help(const char *prog);
