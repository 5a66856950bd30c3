/* vireo-system-x86_64: parse the command line, build the machine, run it. */
#include "chardev/chardev.h"
#include "hw/core/machine.h"
#include "hw/virtio/rng-backend.h"
#include "monitor/runtime-vm.h"
#include "system/options.h"
#include "system/runtime.h"
#include "target/i386/cpu.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "vireo-system-x86_64"

static int error_exit(const char *msg)
{
    fprintf(stderr, PROG ": %s\n", msg);
    return 1;
}

static void list_machines(void)
{
    printf("Supported machines are:\n");
    for (const MachineType *const *t = machine_types; *t; t++) {
        printf("%-20s %s%s\n", (*t)->name, (*t)->desc, t == machine_types ? " (default)" : "");
    }
}

static void list_cpus(void)
{
    printf("Available CPUs:\n");
    for (const char *const *c = x86_cpu_models; *c; c++) {
        printf("  %s\n", *c);
    }
}

static bool write_pidfile(const char *path, GError **err)
{
    g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());
    if (!g_file_set_contents(path, pid, -1, err)) {
        return false;
    }
    return true;
}

/* One plain line per message: "vireo-system-x86_64: DOMAIN: text". */
static GLogWriterOutput log_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data)
{
    const char *domain = NULL, *message = NULL;
    for (gsize i = 0; i < n; i++) {
        if (strcmp(fields[i].key, "GLIB_DOMAIN") == 0) {
            domain = fields[i].value;
        } else if (strcmp(fields[i].key, "MESSAGE") == 0) {
            message = fields[i].value;
        }
    }
    if (g_log_writer_default_would_drop(level, domain)) {
        return G_LOG_WRITER_HANDLED;
    }
    fprintf(stderr, PROG ": %s%s%s\n", domain ? domain : "", domain ? ": " : "", message ? message : "");
    return G_LOG_WRITER_HANDLED;
}

static void quit_from_console(void *opaque)
{
    Machine *m = opaque;
    m->request_shutdown(m, SHUTDOWN_CAUSE_HOST_QMP_QUIT);
}

int main(int argc, char **argv)
{
    g_autoptr(VmConfig) cfg = vm_config_new();
    g_autoptr(GError) err = NULL;

    g_log_set_writer_func(log_writer, NULL, NULL);
    /* A closed stdout must not kill the VM: the chardev reports it instead. */
    signal(SIGPIPE, SIG_IGN);
    if (!vm_config_parse(cfg, argc, argv, &err)) {
        return error_exit(err->message);
    }
    switch (cfg->action) {
    case VM_ACTION_VERSION:
        printf("Vireo version " VIREO_VERSION " (QEMU-compatible command line)\n");
        return 0;
    case VM_ACTION_HELP: {
        g_autofree char *help = vm_config_help(PROG);
        fputs(help, stdout);
        return 0;
    }
    case VM_ACTION_RUN:
        break;
    }
    if (strcmp(cfg->machine, "help") == 0) {
        list_machines();
        return 0;
    }
    if (strcmp(cfg->cpu, "help") == 0) {
        list_cpus();
        return 0;
    }
    const MachineType *type = machine_type_find(cfg->machine);
    if (!type) {
        g_autofree char *msg = g_strdup_printf("-machine %s: unknown machine type ('-machine help' lists them)",
                                               cfg->machine);
        return error_exit(msg);
    }
    if (!g_strv_contains(x86_cpu_models, cfg->cpu)) {
        g_autofree char *msg = g_strdup_printf("-cpu %s: unknown CPU model ('-cpu help' lists them)", cfg->cpu);
        return error_exit(msg);
    }
    if (cfg->pidfile && !write_pidfile(cfg->pidfile, &err)) {
        g_autofree char *msg = g_strdup_printf("-pidfile %s: %s", cfg->pidfile, err->message);
        return error_exit(msg);
    }
    atexit(chardev_restore_terminal);
    /* As QEMU, an entropy backend is checked even when no device uses it (a missing file, a bad key). */
    for (guint i = 0; i < cfg->objects->len; i++) {
        const VmOpt *o = cfg->objects->pdata[i];
        if (g_str_has_prefix(vm_opt_get(o, "qom-type") ? vm_opt_get(o, "qom-type") : "", "rng-")) {
            g_autoptr(RngBackend) rng = rng_backend_new(o, &err);
            if (!rng) {
                return error_exit(err->message);
            }
        }
    }

    Machine *m = type->create(cfg, &err);
    if (!m) {
        return error_exit(err->message);
    }
    Runtime *rt = runtime_new(type, m, cfg, &err);
    if (!rt) {
        return error_exit(err->message);
    }
    g_autoptr(MonitorServer) mon = monitor_server_for_runtime(rt);
    for (guint i = 0; i < cfg->qmp->len; i++) {
        const char *spec = cfg->qmp->pdata[i];
        if (!monitor_server_listen(mon, spec, &err)) {
            g_autofree char *msg = g_strdup_printf("-qmp %s: %s", spec, err->message);
            return error_exit(msg);
        }
    }
    for (guint i = 0; i < cfg->mons->len; i++) {
        const VmMonitor *mo = cfg->mons->pdata[i];
        const VmChardev *c = vm_config_find_chardev(cfg, mo->chardev); /* a socket: vm_config_parse checked */
        g_autofree char *spec = c->path   ? g_strdup_printf("unix:%s,server=on,wait=off", c->path)
                                : c->port ? g_strdup_printf("tcp:%s:%s,server=on,wait=off", c->host, c->port)
                                          : NULL;
        bool ok = spec ? monitor_server_listen_as(mon, c->id, spec, &err)
                       : monitor_server_listen_fd(mon, c->id, c->fd, &err);
        if (!ok) {
            g_autofree char *msg = g_strdup_printf("-chardev id=%s: %s", c->id, err->message);
            return error_exit(msg);
        }
    }
    /* QEMU opens a chardev nothing uses too: its socket listens, its file is created. */
    g_autoptr(GPtrArray) unused = g_ptr_array_new_with_free_func((GDestroyNotify)chardev_free);
    for (guint i = 0; i < cfg->chardevs->len; i++) {
        const VmChardev *c = cfg->chardevs->pdata[i];
        if (!vm_config_chardev_user(cfg, c->id)) {
            Chardev *chr = chardev_open(c, &err);
            if (!chr) {
                return error_exit(err->message); /* "chardev 'ID': ..." */
            }
            g_ptr_array_add(unused, chr);
        }
    }
    chardev_set_quit_handler(quit_from_console, m);
    int status = runtime_run(rt);
    /* Flushes what is queued for QMP clients: quit's reply, the SHUTDOWN event. */
    g_clear_pointer(&mon, monitor_server_free);
    if (cfg->pidfile) {
        unlink(cfg->pidfile);
    }
    chardev_restore_terminal();
    /* vCPU threads are parked; exiting here is the quickest clean teardown. */
    fflush(stdout);
    _exit(status);
}
