/*
 * The snapshot jobs' state machine and refusals, without a VM: a host whose
 * only drive is "disk0" (a file in a temporary directory) and which records
 * the events. Saves and loads that reach the VM are the functional test's.
 */
#include "migration/snapshot-jobs.h"
#include <glib/gstdio.h>
#include <string.h>

typedef struct {
    char *dir, *snapdir, *disk;
    GPtrArray *events; /* "ID:STATUS" */
    SnapshotJobs *jobs;
} Fixture;

static char *drive_file(void *opaque, const char *node)
{
    Fixture *f = opaque;
    return strcmp(node, "disk0") == 0 ? g_strdup(f->disk) : NULL;
}

static bool reload(void *opaque, bool (*load)(void *ctx, GError **err), void *ctx, GError **err)
{
    g_assert_not_reached(); /* every load here is refused before it touches the VM */
}

static void event(void *opaque, const char *name, JsonObject *data)
{
    Fixture *f = opaque;
    g_assert_cmpstr(name, ==, "JOB_STATUS_CHANGE");
    g_ptr_array_add(f->events, g_strdup_printf("%s:%s", json_object_get_string_member(data, "id"),
                                               json_object_get_string_member(data, "status")));
    json_object_unref(data);
}

static const SnapshotJobsHostOps host_ops = { .drive_file = drive_file, .reload = reload, .event = event };
static const char *const disk0[] = { "disk0", NULL };

static void setup(Fixture *f, gconstpointer data)
{
    f->dir = g_dir_make_tmp("snapshot-jobs-XXXXXX", NULL);
    f->snapdir = g_build_filename(f->dir, "snapshots", NULL);
    f->disk = g_build_filename(f->dir, "disk.raw", NULL);
    g_assert_cmpint(g_mkdir(f->snapdir, 0700), ==, 0);
    g_assert_true(g_file_set_contents(f->disk, "disk", 4, NULL));
    f->events = g_ptr_array_new_with_free_func(g_free);
    f->jobs = snapshot_jobs_new(NULL, data ? NULL : f->snapdir, &host_ops, f);
}

static void teardown(Fixture *f, gconstpointer data)
{
    snapshot_jobs_free(f->jobs);
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);
    g_assert_cmpint(system(cmd), ==, 0);
    g_ptr_array_unref(f->events);
    g_free(f->dir);
    g_free(f->snapdir);
    g_free(f->disk);
}

static char *events(Fixture *f)
{
    g_ptr_array_add(f->events, NULL);
    char *s = g_strjoinv(" ", (char **)f->events->pdata);
    g_ptr_array_set_size(f->events, 0);
    return s;
}

/* The one job's query-jobs error, or NULL. */
static char *job_error(Fixture *f, const char *id)
{
    g_autoptr(JsonArray) a = snapshot_jobs_query(f->jobs);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonObject *o = json_array_get_object_element(a, i);
        if (strcmp(json_object_get_string_member(o, "id"), id) == 0) {
            return g_strdup(json_object_get_string_member_with_default(o, "error", NULL));
        }
    }
    g_assert_not_reached();
}

static void drain(void)
{
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

static void test_no_dir(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_assert_false(snapshot_jobs_save(f->jobs, "j", "t", "disk0", disk0, &err));
    g_assert_cmpstr(err->message, ==, "snapshot-save: no place to keep snapshots: start Vireo with -snapshot-dir DIR");
    g_autoptr(JsonArray) a = snapshot_jobs_query(f->jobs);
    g_assert_cmpuint(json_array_get_length(a), ==, 0);
}

static void test_job_ids(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_assert_false(snapshot_jobs_delete(f->jobs, "1x", "t", disk0, &err));
    g_assert_cmpstr(err->message, ==, "Invalid job ID '1x'");
    g_clear_error(&err);
    g_assert_true(snapshot_jobs_delete(f->jobs, "d1", "missing", disk0, &err));
    g_assert_false(snapshot_jobs_delete(f->jobs, "d1", "missing", disk0, &err));
    g_assert_cmpstr(err->message, ==, "Job ID 'd1' already in use");
    g_clear_error(&err);
    /* Not concluded yet: its work waits for the main loop. */
    g_assert_false(snapshot_jobs_dismiss(f->jobs, "d1", &err));
    g_assert_cmpstr(err->message, ==, "Job 'd1' in state 'running' cannot accept command verb 'dismiss'");
    g_clear_error(&err);
    drain();
    g_assert_true(snapshot_jobs_dismiss(f->jobs, "d1", &err));
    g_autofree char *ev = events(f);
    g_assert_cmpstr(ev, ==, "d1:created d1:running d1:aborting d1:concluded d1:null");
    g_assert_false(snapshot_jobs_dismiss(f->jobs, "d1", &err));
    g_assert_cmpstr(err->message, ==, "Job not found");
}

static void test_save_refused(Fixture *f, gconstpointer data)
{
    static const char *const unknown[] = { "disk0", "nodisk", NULL };
    static const struct {
        const char *tag, *vmstate;
        const char *const *devices;
        const char *error;
    } cases[] = {
        { "old", "disk0", disk0, "Snapshot 'old' already exists in one or more devices" },
        { "a/b", "disk0", disk0, "Parameter 'tag' expects a name without '/' that does not start with '.' (got 'a/b')" },
        { ".hidden", "disk0", disk0, "Parameter 'tag' expects a name without '/' that does not start with '.' (got '.hidden')" },
        { "", "disk0", disk0, "Parameter 'tag' expects a name without '/' that does not start with '.' (got '')" },
        { "t", "disk0", unknown, "No block device node 'nodisk'" },
        { "t", "disk1", disk0, "vmstate block device 'disk1' does not exist in 'devices'" },
    };
    g_autofree char *old = g_build_filename(f->snapdir, "old", NULL);
    g_assert_cmpint(g_mkdir(old, 0700), ==, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *id = g_strdup_printf("s%zu", i);
        g_assert_true(snapshot_jobs_save(f->jobs, id, cases[i].tag, cases[i].vmstate, cases[i].devices, NULL));
        g_autofree char *error = job_error(f, id);
        g_assert_cmpstr(error, ==, cases[i].error);
        g_autofree char *ev = events(f);
        g_autofree char *want = g_strdup_printf("%s:created %s:running %s:aborting %s:concluded", id, id, id, id);
        g_assert_cmpstr(ev, ==, want);
    }
    g_autoptr(GDir) d = g_dir_open(f->snapdir, 0, NULL);
    g_assert_cmpstr(g_dir_read_name(d), ==, "old");
    g_assert_null(g_dir_read_name(d)); /* nothing left behind */
}

static void test_delete(Fixture *f, gconstpointer data)
{
    g_autofree char *tag = g_build_filename(f->snapdir, "t1", NULL);
    g_autofree char *copy = g_build_filename(tag, "disk0.raw", NULL);
    g_autofree char *state = g_build_filename(tag, "vmstate", NULL);
    g_assert_cmpint(g_mkdir(tag, 0700), ==, 0);
    g_assert_true(g_file_set_contents(copy, "x", 1, NULL));
    g_assert_true(g_file_set_contents(state, "x", 1, NULL));
    g_assert_true(snapshot_jobs_delete(f->jobs, "d", "t1", disk0, NULL));
    drain();
    g_autofree char *ev = events(f);
    g_assert_cmpstr(ev, ==, "d:created d:running d:waiting d:pending d:concluded");
    g_autofree char *error = job_error(f, "d");
    g_assert_null(error);
    g_autoptr(GDir) d = g_dir_open(f->snapdir, 0, NULL);
    g_assert_null(g_dir_read_name(d));
    /* A load of it now fails before reaching the VM. */
    g_assert_true(snapshot_jobs_load(f->jobs, "l", "t1", "disk0", disk0, NULL));
    drain();
    g_autofree char *lerror = job_error(f, "l");
    g_assert_cmpstr(lerror, ==, "Snapshot 't1' does not exist in one or more devices");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/snapshot-jobs/no-dir", Fixture, "no dir", setup, test_no_dir, teardown);
    g_test_add("/snapshot-jobs/job-ids", Fixture, NULL, setup, test_job_ids, teardown);
    g_test_add("/snapshot-jobs/save-refused", Fixture, NULL, setup, test_save_refused, teardown);
    g_test_add("/snapshot-jobs/delete", Fixture, NULL, setup, test_delete, teardown);
    return g_test_run();
}
