/* Snapshot jobs: see include/migration/snapshot-jobs.h. */
#define G_LOG_DOMAIN "snapshot-jobs"
#include "migration/snapshot-jobs.h"
#include "util/error.h"
#include "util/keyval.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define VMSTATE_FILE "vmstate"
#define DISK_SUFFIX ".raw"

typedef enum { JOB_SAVE, JOB_LOAD, JOB_DELETE } JobKind;
static const char *const kind_names[] = {
    [JOB_SAVE] = "snapshot-save", [JOB_LOAD] = "snapshot-load", [JOB_DELETE] = "snapshot-delete"
};

/* QEMU's JobStatus values these jobs go through. */
typedef enum { JOB_CREATED, JOB_RUNNING, JOB_WAITING, JOB_PENDING, JOB_ABORTING, JOB_CONCLUDED } JobStatus;
static const char *const status_names[] = {
    [JOB_CREATED] = "created", [JOB_RUNNING] = "running",   [JOB_WAITING] = "waiting",
    [JOB_PENDING] = "pending", [JOB_ABORTING] = "aborting", [JOB_CONCLUDED] = "concluded",
};

struct SnapshotJobs {
    Migration *ms;
    char *dir;
    const SnapshotJobsHostOps *ops;
    void *opaque;
    GPtrArray *jobs; /* Job, in creation order */
};

typedef struct Job {
    SnapshotJobs *owner;
    JobKind kind;
    char *id;
    JobStatus status;
    char *error; /* why it failed, once concluded */
    char *tag;
    char *vmstate;
    GStrv devices;
    GStrv disk_files; /* per device: the drive's raw file */
    char *tmp_dir;    /* save: the tag's directory until it is complete */
    GError *result;   /* save: set by the migration thread before it hands the job back */
} Job;

static void job_free(gpointer p)
{
    Job *job = p;
    g_free(job->id);
    g_free(job->error);
    g_free(job->tag);
    g_free(job->vmstate);
    g_strfreev(job->devices);
    g_strfreev(job->disk_files);
    g_free(job->tmp_dir);
    g_clear_error(&job->result);
    g_free(job);
}

SnapshotJobs *snapshot_jobs_new(Migration *ms, const char *dir, const SnapshotJobsHostOps *ops, void *opaque)
{
    SnapshotJobs *jobs = g_new0(SnapshotJobs, 1);
    jobs->ms = ms;
    jobs->dir = g_strdup(dir);
    jobs->ops = ops;
    jobs->opaque = opaque;
    jobs->jobs = g_ptr_array_new_with_free_func(job_free);
    return jobs;
}

void snapshot_jobs_free(SnapshotJobs *jobs)
{
    if (jobs) {
        /* A save still running would outlive us: the process is exiting, and it dies with it. */
        g_free(jobs->dir);
        g_ptr_array_unref(jobs->jobs);
        g_free(jobs);
    }
}

/* ---- status ---- */

static void job_set_status(Job *job, JobStatus status)
{
    job->status = status;
    JsonObject *data = json_object_new();
    json_object_set_string_member(data, "id", job->id);
    json_object_set_string_member(data, "status", status_names[status]);
    job->owner->ops->event(job->owner->opaque, "JOB_STATUS_CHANGE", data);
}

/* The end of a job, as QEMU's with auto-finalize on and auto-dismiss off. */
static void job_conclude(Job *job, const GError *err)
{
    if (err) {
        job->error = g_strdup(err->message);
        job_set_status(job, JOB_ABORTING);
    } else {
        job_set_status(job, JOB_WAITING);
        job_set_status(job, JOB_PENDING);
    }
    job_set_status(job, JOB_CONCLUDED);
}

static Job *find_job(SnapshotJobs *jobs, const char *id)
{
    for (guint i = 0; i < jobs->jobs->len; i++) {
        Job *job = g_ptr_array_index(jobs->jobs, i);
        if (strcmp(job->id, id) == 0) {
            return job;
        }
    }
    return NULL;
}

static Job *job_create(SnapshotJobs *jobs, JobKind kind, const char *id, GError **err)
{
    if (!jobs->dir) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "%s: no place to keep snapshots: start Vireo with -snapshot-dir DIR", kind_names[kind]);
        return NULL;
    }
    if (!id_wellformed(id)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "Invalid job ID '%s'", id);
        return NULL;
    }
    if (find_job(jobs, id)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "Job ID '%s' already in use", id);
        return NULL;
    }
    Job *job = g_new0(Job, 1);
    job->owner = jobs;
    job->kind = kind;
    job->id = g_strdup(id);
    g_ptr_array_add(jobs->jobs, job);
    job_set_status(job, JOB_CREATED);
    job_set_status(job, JOB_RUNNING);
    return job;
}

/* ---- files ---- */

static bool fail_errno(GError **err, const char *what, const char *path)
{
    int e = errno;
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "%s '%s': %s", what, path, g_strerror(e));
    return false;
}

static bool sync_path(const char *path, GError **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        fail_errno(err, "cannot sync", path);
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    close(fd);
    return true;
}

/*
 * Make @dst_fd hold what @src holds: a reflink where the filesystem shares
 * blocks (instant, whatever the size), a copy otherwise; then synced.
 */
static bool copy_contents(const char *src, int dst_fd, const char *dst, GError **err)
{
    int src_fd = open(src, O_RDONLY | O_CLOEXEC);
    if (src_fd < 0) {
        return fail_errno(err, "cannot open", src);
    }
    struct stat st;
    bool ok = fstat(src_fd, &st) == 0;
    if (ok && ioctl(dst_fd, FICLONE, src_fd) < 0) {
        off_t in = 0, out = 0;
        while (ok && in < st.st_size) {
            ssize_t n = copy_file_range(src_fd, &in, dst_fd, &out, (size_t)(st.st_size - in), 0);
            ok = n > 0 || (n < 0 && errno == EINTR);
        }
    }
    ok = ok && ftruncate(dst_fd, st.st_size) == 0 && fsync(dst_fd) == 0;
    if (!ok) {
        fail_errno(err, "cannot copy to", dst);
    }
    close(src_fd);
    return ok;
}

static bool remove_tree(const char *dir, GError **err)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    for (const char *name; d && (name = g_dir_read_name(d));) {
        g_autofree char *path = g_build_filename(dir, name, NULL);
        if (unlink(path) < 0) {
            return fail_errno(err, "cannot remove", path);
        }
    }
    if (rmdir(dir) < 0) {
        return fail_errno(err, "cannot remove", dir);
    }
    return true;
}

static char *tag_dir(SnapshotJobs *jobs, const char *tag)
{
    return g_build_filename(jobs->dir, tag, NULL);
}

static char *disk_copy(const char *dir, const char *node)
{
    g_autofree char *name = g_strconcat(node, DISK_SUFFIX, NULL);
    return g_build_filename(dir, name, NULL);
}

/* ---- arguments (checked inside the job, as QEMU does) ---- */

static bool check_tag(const char *tag, GError **err)
{
    if (!*tag || strchr(tag, '/') || tag[0] == '.') {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "Parameter 'tag' expects a name without '/' that does not start with '.' (got '%s')", tag);
        return false;
    }
    return true;
}

/* Every node in @devices is a raw drive of this VM; and @vmstate one of them. */
static bool check_devices(Job *job, GError **err)
{
    SnapshotJobs *jobs = job->owner;
    guint n = g_strv_length(job->devices);
    job->disk_files = g_new0(char *, n + 1);
    for (guint i = 0; i < n; i++) {
        const char *node = job->devices[i];
        job->disk_files[i] = strchr(node, '/') ? NULL : jobs->ops->drive_file(jobs->opaque, node);
        if (!job->disk_files[i]) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "No block device node '%s'", node);
            return false;
        }
    }
    if (job->vmstate && !g_strv_contains((const char *const *)job->devices, job->vmstate)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "vmstate block device '%s' does not exist in 'devices'", job->vmstate);
        return false;
    }
    return true;
}

static bool tag_exists(SnapshotJobs *jobs, const char *tag)
{
    g_autofree char *dir = tag_dir(jobs, tag);
    return g_file_test(dir, G_FILE_TEST_IS_DIR);
}

static Job *start(SnapshotJobs *jobs, JobKind kind, const char *job_id, const char *tag, const char *vmstate,
                  const char *const *devices, GError **err)
{
    Job *job = job_create(jobs, kind, job_id, err);
    if (job) {
        job->tag = g_strdup(tag);
        job->vmstate = g_strdup(vmstate);
        job->devices = g_strdupv((char **)devices);
    }
    return job;
}

/* ---- snapshot-save ---- */

/* In the pause (migration thread, big lock held): the disks as they are now. */
static bool save_paused(void *opaque, GError **err)
{
    Job *job = opaque;
    for (guint i = 0; job->devices[i]; i++) {
        g_autofree char *dst = disk_copy(job->tmp_dir, job->devices[i]);
        int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            return fail_errno(err, "cannot create", dst);
        }
        bool ok = copy_contents(job->disk_files[i], fd, dst, err);
        close(fd);
        if (!ok) {
            return false;
        }
    }
    return true;
}

static gboolean save_finished(gpointer p)
{
    Job *job = p;
    job_conclude(job, job->result);
    return G_SOURCE_REMOVE;
}

/* Migration thread, big lock not held: publish the tag, or leave nothing behind. */
static void save_done(void *opaque, bool ok, const GError *err)
{
    Job *job = opaque;
    g_autofree char *dir = tag_dir(job->owner, job->tag);
    GError *e = NULL;
    if (!ok) {
        e = g_error_copy(err);
    } else if (sync_path(job->tmp_dir, &e)) {
        /* Not rename(): a tag saved meanwhile by another process is not replaced. */
        if (renameat2(AT_FDCWD, job->tmp_dir, AT_FDCWD, dir, RENAME_NOREPLACE) < 0) {
            fail_errno(&e, "cannot rename to", dir);
        } else {
            sync_path(job->owner->dir, &e);
        }
    }
    if (e && g_file_test(job->tmp_dir, G_FILE_TEST_IS_DIR)) {
        remove_tree(job->tmp_dir, NULL);
    }
    job->result = e;
    g_idle_add(save_finished, job);
}

static const MigrationSnapshotHooks save_hooks = { .paused = save_paused, .done = save_done };

static bool save_begin(Job *job, GError **err)
{
    SnapshotJobs *jobs = job->owner;
    if (!check_tag(job->tag, err) || !check_devices(job, err)) {
        return false;
    }
    if (tag_exists(jobs, job->tag)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "Snapshot '%s' already exists in one or more devices",
                    job->tag);
        return false;
    }
    if (migration_is_active(jobs->ms)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "There's a migration process in progress");
        return false;
    }
    g_autofree char *tmpl = g_strdup_printf(".%s.XXXXXX", job->tag);
    job->tmp_dir = g_build_filename(jobs->dir, tmpl, NULL);
    if (!g_mkdtemp(job->tmp_dir)) {
        return fail_errno(err, "cannot create", job->tmp_dir);
    }
    g_autofree char *vmstate = g_build_filename(job->tmp_dir, VMSTATE_FILE, NULL);
    if (!migration_snapshot_to_file(jobs->ms, vmstate, &save_hooks, job, err)) {
        remove_tree(job->tmp_dir, NULL);
        return false;
    }
    return true;
}

bool snapshot_jobs_save(SnapshotJobs *jobs, const char *job_id, const char *tag, const char *vmstate,
                        const char *const *devices, GError **err)
{
    Job *job = start(jobs, JOB_SAVE, job_id, tag, vmstate, devices, err);
    if (!job) {
        return false;
    }
    g_autoptr(GError) why = NULL;
    if (!save_begin(job, &why)) {
        job_conclude(job, why);
    }
    return true;
}

/* ---- snapshot-load and snapshot-delete (on the main loop, after the command's reply) ---- */

/* Inside runtime_reload: vCPUs stopped, machine reset. */
static bool load_into_vm(void *opaque, GError **err)
{
    Job *job = opaque;
    g_autofree char *dir = tag_dir(job->owner, job->tag);
    migration_quiesce(job->owner->ms);
    for (guint i = 0; job->devices[i]; i++) {
        g_autofree char *src = disk_copy(dir, job->devices[i]);
        int fd = open(job->disk_files[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            return fail_errno(err, "cannot open", job->disk_files[i]);
        }
        bool ok = copy_contents(src, fd, job->disk_files[i], err);
        close(fd);
        if (!ok) {
            return false;
        }
    }
    g_autofree char *vmstate = g_build_filename(dir, VMSTATE_FILE, NULL);
    return migration_load_file(job->owner->ms, vmstate, err);
}

/* Every file the job needs of the tag is there, before anything is touched. */
static bool check_tag_files(Job *job, GError **err)
{
    SnapshotJobs *jobs = job->owner;
    if (!check_tag(job->tag, err) || !check_devices(job, err)) {
        return false;
    }
    g_autofree char *dir = tag_dir(jobs, job->tag);
    bool there = tag_exists(jobs, job->tag);
    for (guint i = 0; there && job->devices[i]; i++) {
        g_autofree char *copy = disk_copy(dir, job->devices[i]);
        there = g_file_test(copy, G_FILE_TEST_IS_REGULAR);
    }
    if (!there) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "Snapshot '%s' does not exist in one or more devices",
                    job->tag);
        return false;
    }
    return true;
}

static bool load_run(Job *job, GError **err)
{
    SnapshotJobs *jobs = job->owner;
    if (!check_tag_files(job, err)) {
        return false;
    }
    if (migration_is_active(jobs->ms)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "There's a migration process in progress");
        return false;
    }
    return jobs->ops->reload(jobs->opaque, load_into_vm, job, err);
}

static bool delete_run(Job *job, GError **err)
{
    SnapshotJobs *jobs = job->owner;
    if (!check_tag_files(job, err)) {
        return false;
    }
    /* Out of sight first, so a crash halfway never leaves a tag missing some of its files. */
    g_autofree char *dir = tag_dir(jobs, job->tag);
    g_autofree char *tmpl = g_strdup_printf(".%s.XXXXXX", job->tag);
    g_autofree char *doomed = g_build_filename(jobs->dir, tmpl, NULL);
    if (!g_mkdtemp(doomed) || rename(dir, doomed) < 0) {
        return fail_errno(err, "cannot remove", dir);
    }
    return sync_path(jobs->dir, err) && remove_tree(doomed, err);
}

static gboolean run_job(gpointer p)
{
    Job *job = p;
    g_autoptr(GError) err = NULL;
    bool ok = job->kind == JOB_LOAD ? load_run(job, &err) : delete_run(job, &err);
    job_conclude(job, ok ? NULL : err);
    return G_SOURCE_REMOVE;
}

bool snapshot_jobs_load(SnapshotJobs *jobs, const char *job_id, const char *tag, const char *vmstate,
                        const char *const *devices, GError **err)
{
    Job *job = start(jobs, JOB_LOAD, job_id, tag, vmstate, devices, err);
    if (job) {
        g_idle_add(run_job, job);
    }
    return job != NULL;
}

bool snapshot_jobs_delete(SnapshotJobs *jobs, const char *job_id, const char *tag, const char *const *devices,
                          GError **err)
{
    Job *job = start(jobs, JOB_DELETE, job_id, tag, NULL, devices, err);
    if (job) {
        g_idle_add(run_job, job);
    }
    return job != NULL;
}

/* ---- query-jobs, job-dismiss ---- */

JsonArray *snapshot_jobs_query(SnapshotJobs *jobs)
{
    JsonArray *a = json_array_new();
    for (guint i = 0; i < jobs->jobs->len; i++) {
        const Job *job = g_ptr_array_index(jobs->jobs, i);
        JsonObject *o = json_object_new();
        bool done = job->status == JOB_CONCLUDED && !job->error;
        json_object_set_string_member(o, "id", job->id);
        json_object_set_string_member(o, "type", kind_names[job->kind]);
        json_object_set_string_member(o, "status", status_names[job->status]);
        json_object_set_int_member(o, "current-progress", done ? 1 : 0);
        json_object_set_int_member(o, "total-progress", 1);
        if (job->error) {
            json_object_set_string_member(o, "error", job->error);
        }
        json_array_add_object_element(a, o);
    }
    return a;
}

bool snapshot_jobs_dismiss(SnapshotJobs *jobs, const char *id, GError **err)
{
    Job *job = find_job(jobs, id);
    if (!job) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "Job not found");
        return false;
    }
    if (job->status != JOB_CONCLUDED) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "Job '%s' in state '%s' cannot accept command verb 'dismiss'",
                    id, status_names[job->status]);
        return false;
    }
    JsonObject *data = json_object_new();
    json_object_set_string_member(data, "id", job->id);
    json_object_set_string_member(data, "status", "null");
    jobs->ops->event(jobs->opaque, "JOB_STATUS_CHANGE", data);
    g_ptr_array_remove(jobs->jobs, job);
    return true;
}
