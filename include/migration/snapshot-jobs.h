/*
 * QEMU's snapshot jobs (snapshot-save, snapshot-load, snapshot-delete,
 * query-jobs, job-dismiss, JOB_STATUS_CHANGE) over background snapshots.
 *
 * Unlike QEMU, snapshot-save does not stop the guest: it takes a
 * background snapshot. Until qcow2 internal snapshots exist, a tag is a
 * directory TAG in the -snapshot-dir directory holding the VM state
 * ("vmstate", a migration stream) and a copy of each raw disk named in
 * devices as it was at the pause ("NODE.raw"). The directory appears under
 * its name only once complete and synced.
 *
 * Everything here runs on the main loop with the big lock held, except the
 * hooks the migration thread calls (see snapshot-jobs.c).
 */
#pragma once
#include "migration/migration.h"
#include <json-glib/json-glib.h>

/* What the jobs need of the VM (the runtime). */
typedef struct SnapshotJobsHostOps {
    /* The raw file of drive or block node @node, or NULL when there is none. */
    char *(*drive_file)(void *opaque, const char *node);
    /* Stop, reset, @load, run again if it ran (runtime_reload). */
    bool (*reload)(void *opaque, bool (*load)(void *ctx, GError **err), void *ctx, GError **err);
    /* A QMP event; takes @data. */
    void (*event)(void *opaque, const char *name, JsonObject *data);
} SnapshotJobsHostOps;

typedef struct SnapshotJobs SnapshotJobs;

/* @dir: -snapshot-dir, or NULL (the commands then refuse). */
SnapshotJobs *snapshot_jobs_new(Migration *ms, const char *dir, const SnapshotJobsHostOps *ops, void *opaque);
void snapshot_jobs_free(SnapshotJobs *jobs);

/*
 * The commands. As in QEMU, a bad job id fails the command; anything else
 * wrong (tag, devices, a migration in progress) fails the job, whose
 * query-jobs entry then carries the error. @vmstate is NULL for delete.
 */
bool snapshot_jobs_save(SnapshotJobs *jobs, const char *job_id, const char *tag, const char *vmstate,
                        const char *const *devices, GError **err);
bool snapshot_jobs_load(SnapshotJobs *jobs, const char *job_id, const char *tag, const char *vmstate,
                        const char *const *devices, GError **err);
bool snapshot_jobs_delete(SnapshotJobs *jobs, const char *job_id, const char *tag, const char *const *devices,
                          GError **err);
JsonArray *snapshot_jobs_query(SnapshotJobs *jobs);
bool snapshot_jobs_dismiss(SnapshotJobs *jobs, const char *id, GError **err);
