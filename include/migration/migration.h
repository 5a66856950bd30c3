/*
 * Migration: QEMU's state machine and QMP contract over Vireo's stream.
 *
 * Outgoing (QMP migrate): a thread writes the stream header, sends all of
 * RAM while the vCPUs run with dirty logging on, then the pages written
 * since, pass after pass, until what is left fits the downtime limit at the
 * measured bandwidth. It then stops the vCPUs, lets devices finish what
 * would still write guest memory, sends the last pages and every device's
 * state, and ends the stream. On success the source stays paused
 * (postmigrate); on failure or cancel it runs again if it was running.
 *
 * Incoming (-incoming URI, migrate-incoming): a thread reads the stream into
 * guest RAM; device state is applied on the main loop at the end marker.
 *
 * Everything here is called on the main loop with the big lock held, except
 * where a comment says otherwise.
 */
#pragma once
#include "hw/core/machine.h"
#include <json-glib/json-glib.h>

typedef enum {
    MIGRATION_STATUS_NONE,
    MIGRATION_STATUS_SETUP,
    MIGRATION_STATUS_CANCELLING,
    MIGRATION_STATUS_CANCELLED,
    MIGRATION_STATUS_ACTIVE,
    MIGRATION_STATUS_DEVICE, /* vCPUs stopped: the last pages and device state */
    MIGRATION_STATUS_COMPLETED,
    MIGRATION_STATUS_FAILED,
} MigrationStatus;

/* What the migration needs of the VM that owns it (the runtime). */
typedef struct MigrationHostOps {
    /*
     * Stop the vCPUs for the switch-over (run state "finish-migrate").
     * Called from the migration thread with the big lock held. Returns
     * whether they were running.
     */
    bool (*stop)(void *opaque);
    /* Whether the vCPUs run now (big lock held). */
    bool (*vcpus_running)(void *opaque);
    /*
     * A background snapshot's pause is over: back to the run state before
     * stop (running again if it was). Big lock held, migration thread.
     */
    void (*resume)(void *opaque);
    /*
     * An outgoing migration ended. @completed: the VM stays paused
     * ("postmigrate"). Otherwise it runs again if @resume.
     */
    void (*outgoing_done)(void *opaque, bool completed, bool resume);
    /* The incoming stream is loaded (@err NULL) or failed. */
    void (*incoming_done)(void *opaque, const GError *err);
    /*
     * A QMP event; @data is borrowed. Called from the migration threads
     * too: the host emits on its main loop, keeping the order of calls.
     */
    void (*event)(void *opaque, const char *name, JsonObject *data);
} MigrationHostOps;

typedef struct Migration Migration;

/*
 * @config names what the machine was built from beyond its registered
 * state (machine type, CPU model); the stream fingerprint is made of it,
 * the RAM blocks and the registered device sections, so a stream from a
 * differently configured VM is refused.
 */
Migration *migration_new(Machine *m, const char *config, const MigrationHostOps *ops, void *opaque);
void migration_free(Migration *ms);
/* The fingerprint a stream for this machine carries. */
const char *migration_fingerprint(Migration *ms);
MigrationStatus migration_status(Migration *ms);
const char *migration_status_name(MigrationStatus status);
/* An outgoing migration is between setup and its end. */
bool migration_is_active(Migration *ms);

/* QMP. @fd is the descriptor an fd: URI names (the monitor looks it up), else -1. */
bool migration_start(Migration *ms, const char *uri, int fd, GError **err);
void migration_cancel(Migration *ms);
bool migration_incoming(Migration *ms, const char *uri, int fd, GError **err);
JsonObject *migration_query(Migration *ms);
bool migration_set_capabilities(Migration *ms, JsonArray *caps, GError **err);
JsonArray *migration_query_capabilities(Migration *ms);
bool migration_set_parameters(Migration *ms, JsonObject *params, GError **err);
JsonObject *migration_query_parameters(Migration *ms);

/*
 * A snapshot job's background snapshot (whatever the background-snapshot
 * capability says) to the file @path, written atomically. @paused runs in
 * the pause (migration thread, big lock held, vCPUs stopped, devices
 * quiesced): its failure ends the snapshot. @done runs on the migration
 * thread when the file is complete (@ok) or not, without the big lock.
 */
typedef struct MigrationSnapshotHooks {
    bool (*paused)(void *opaque, GError **err);
    void (*done)(void *opaque, bool ok, const GError *err);
} MigrationSnapshotHooks;
bool migration_snapshot_to_file(Migration *ms, const char *path, const MigrationSnapshotHooks *hooks, void *opaque,
                                GError **err);
/* Let devices finish what would still touch guest memory or disks (vCPUs stopped, big lock held). */
void migration_quiesce(Migration *ms);
/*
 * Load a stream from the file @path into this running process's machine,
 * vCPUs stopped and big lock held (snapshot-load). Errors name the file.
 */
bool migration_load_file(Migration *ms, const char *path, GError **err);
