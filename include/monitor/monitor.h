/*
 * The QMP server: listening sockets, one session per client, the command
 * table, and events broadcast to every client that finished negotiation.
 * It reaches the VM only through MonitorVmOps, so tests can run it alone.
 * Everything here runs on the main loop with the big lock held.
 */
#pragma once
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
/* Listen as @spec says; clients are served from the default main context. */
bool monitor_server_listen(MonitorServer *s, const char *spec, GError **err);
/* Serve an already connected socket (tests; later -chardev socket,fd=N). */
void monitor_server_add_client(MonitorServer *s, int fd);
unsigned monitor_server_client_count(MonitorServer *s);

/* Broadcast event @name with @data (may be NULL; not taken) to negotiated clients. */
void monitor_server_emit_event(MonitorServer *s, const char *name, JsonObject *data);
