/*
 * The QMP server: listening sockets, one session per client, the command
 * table, and events broadcast to every client that finished negotiation.
 * It reaches the VM only through MonitorVmOps, so tests can run it alone.
 * Everything here runs on the main loop with the big lock held.
 */
#pragma once
#include "migration/migration.h"
#include "migration/snapshot-jobs.h"
#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

/* One vCPU as query-cpus-fast reports it. */
typedef struct MonitorCpu {
    int tid; /* Linux thread id of the vCPU thread */
    unsigned socket, core, thread;
} MonitorCpu;

typedef struct MonitorVmOps {
    /* QEMU's RunState name: "running", "paused", "prelaunch", ... */
    const char *(*status)(void *vm);
    void (*stop)(void *vm);
    void (*cont)(void *vm);
    void (*system_reset)(void *vm);
    bool (*system_powerdown)(void *vm, GError **err);
    /* Ask the VM to end; the server flushes its replies before the exit. */
    void (*quit)(void *vm);
    const char *(*name)(void *vm); /* -name, or NULL */
    unsigned (*cpu_count)(void *vm);
    void (*cpu_info)(void *vm, unsigned index, MonitorCpu *out);
    /* Guest-physical [addr, addr+size) into a new @file. */
    bool (*pmemsave)(void *vm, uint64_t addr, uint64_t size, const char *file, GError **err);
    /*
     * HMP's view of vCPU @cpu (NULL in a VM without vCPUs to look at):
     * "info registers" text, and @count instructions disassembled at the
     * guest-linear @addr (or at CS:RIP when @at_pc), appended to @out.
     */
    bool (*cpu_registers)(void *vm, unsigned cpu, GString *out, GError **err);
    bool (*cpu_disassemble)(void *vm, unsigned cpu, bool at_pc, uint64_t addr, unsigned count, GString *out,
                            GError **err);
    /* query-chardev's entry for serial port @index, or NULL past the last one. */
    const char *(*serial_filename)(void *vm, unsigned index);
    /* The VM's migration (QMP migrate and friends); NULL: commands refuse. */
    Migration *(*migration)(void *vm);
    /* Its snapshot jobs (snapshot-save and friends); NULL: commands refuse. */
    SnapshotJobs *(*snapshot_jobs)(void *vm);
} MonitorVmOps;

typedef struct MonitorServer MonitorServer;

MonitorServer *monitor_server_new(const MonitorVmOps *ops, void *vm);
/* Flushes pending output (bounded in time), closes clients and listeners. */
void monitor_server_free(MonitorServer *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MonitorServer, monitor_server_free)

/*
 * Check a -qmp value: "unix:PATH,server=on,wait=off" or
 * "tcp:HOST:PORT,server=on,wait=off". The error names what is wrong.
 */
bool monitor_address_check(const char *spec, GError **err);
/*
 * Listen as @spec says; clients are served from the default main context.
 * query-chardev calls it "compat_monitorN", as QEMU calls its -qmp monitors.
 */
bool monitor_server_listen(MonitorServer *s, const char *spec, GError **err);
/* The same for "-chardev socket,id=@label,..." used by "-mon chardev=@label,mode=control". */
bool monitor_server_listen_as(MonitorServer *s, const char *label, const char *spec, GError **err);
/*
 * Serve on @fd, an inherited socket that must already be listening
 * (-chardev socket,fd=N); @fd is taken only on success.
 */
bool monitor_server_listen_fd(MonitorServer *s, const char *label, int fd, GError **err);
/* Serve an already connected socket (tests; later -chardev socket,fd=N). */
void monitor_server_add_client(MonitorServer *s, int fd);
unsigned monitor_server_client_count(MonitorServer *s);

/*
 * Take the descriptor a client passed with "getfd" as @name: the caller owns
 * the result and the name is free again. -1 when there is none by that name.
 */
int monitor_take_fd(MonitorServer *s, const char *name);

/* Broadcast event @name with @data (may be NULL; not taken) to negotiated clients. */
void monitor_server_emit_event(MonitorServer *s, const char *name, JsonObject *data);
