/*
 * The QMP command table. Each row names a command, declares its arguments
 * and points at its handler; arguments are checked against the row before
 * the handler runs, and the same rows answer query-commands and
 * query-qmp-schema, so the three can never disagree.
 */
#include "monitor-internal.h"
#include "hw/core/machine.h"
#include <string.h>
#include <unistd.h>

G_DEFINE_QUARK(vireo-monitor-error-quark, monitor_error)

typedef enum { ARG_STR, ARG_INT, ARG_BOOL, ARG_ARRAY, ARG_ANY } ArgType;

/* Per type: schema name, the JSON type query-qmp-schema gives it, and how errors say it. */
static const struct {
    const char *name, *json_type, *desc;
} arg_types[] = {
    [ARG_STR] = { "str", "string", "string" },
    [ARG_INT] = { "int", "int", "integer" },
    [ARG_BOOL] = { "bool", "boolean", "boolean" },
    [ARG_ARRAY] = { "[str]", "array", "array" },
    [ARG_ANY] = { "any", "value", "value" },
};

typedef struct {
    const char *name;
    ArgType type;
    bool optional;
} QmpArg;

static bool arg_has_type(JsonNode *n, ArgType t);

typedef bool (*QmpHandler)(Monitor *m, JsonObject *args, JsonNode **ret, GError **err);

typedef struct {
    const char *name;
    QmpHandler fn;
    const QmpArg *args; /* terminated by a row with a NULL name; NULL for none */
    bool before_negotiation; /* allowed before qmp_capabilities (QEMU's allow-preconfig is different) */
} QmpCommand;

static JsonNode *empty_object(void)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, json_object_new());
    return n;
}

static JsonNode *object_node(JsonObject *o)
{
    JsonNode *n = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(n, o);
    return n;
}

static const MonitorVmOps *ops(Monitor *m)
{
    return m->server->ops;
}

static bool qmp_capabilities(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    if (m->negotiated) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_COMMAND_NOT_FOUND,
                    "Capabilities negotiation is already complete, command ignored");
        return false;
    }
    if (args && json_object_has_member(args, "enable")) {
        /* No optional capability (oob) is offered, so none may be enabled. */
        JsonNode *en = json_object_get_member(args, "enable");
        if (!JSON_NODE_HOLDS_ARRAY(en) || json_array_get_length(json_node_get_array(en)) > 0) {
            g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC,
                        "Parameter 'enable' names a capability this server does not offer");
            return false;
        }
    }
    m->negotiated = true;
    *ret = empty_object();
    return true;
}

JsonObject *qmp_version_info(void)
{
    /*
     * Clients such as libvirt gate features on the QEMU version they see and
     * refuse versions older than they support, so Vireo claims a recent
     * QEMU (10.0.0) whose QMP contract it follows; "package" says who it
     * really is.
     */
    JsonObject *q = json_object_new();
    json_object_set_int_member(q, "micro", 0);
    json_object_set_int_member(q, "minor", 0);
    json_object_set_int_member(q, "major", 10);
    JsonObject *v = json_object_new();
    json_object_set_object_member(v, "qemu", q);
    json_object_set_string_member(v, "package", "vireo " VIREO_VERSION);
    return v;
}

static bool query_version(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    *ret = object_node(qmp_version_info());
    return true;
}

static bool query_commands(Monitor *m, JsonObject *args, JsonNode **ret, GError **err);

static bool query_qmp_schema(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    *ret = qmp_schema();
    return true;
}

static bool query_status(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    const char *status = ops(m)->status(m->server->vm);
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "status", status);
    json_object_set_boolean_member(o, "running", strcmp(status, "running") == 0);
    json_object_set_boolean_member(o, "singlestep", false);
    *ret = object_node(o);
    return true;
}

static bool stop(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    ops(m)->stop(m->server->vm);
    *ret = empty_object();
    return true;
}

static bool cont(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    ops(m)->cont(m->server->vm);
    *ret = empty_object();
    return true;
}

static bool system_reset(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    ops(m)->system_reset(m->server->vm);
    *ret = empty_object();
    return true;
}

static bool system_powerdown(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    if (!ops(m)->system_powerdown(m->server->vm, err)) {
        return false;
    }
    *ret = empty_object();
    return true;
}

static bool quit(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    ops(m)->quit(m->server->vm);
    *ret = empty_object();
    return true;
}

static bool query_kvm(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    JsonObject *o = json_object_new();
    json_object_set_boolean_member(o, "enabled", true);
    json_object_set_boolean_member(o, "present", true);
    *ret = object_node(o);
    return true;
}

static bool query_target(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "arch", "x86_64");
    *ret = object_node(o);
    return true;
}

static bool query_machines(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    JsonArray *a = json_array_new();
    for (const MachineType *const *t = machine_types; *t; t++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", (*t)->name);
        if (t == machine_types) {
            json_object_set_boolean_member(o, "is-default", true);
        }
        json_object_set_int_member(o, "cpu-max", MACHINE_MAX_CPUS);
        json_object_set_boolean_member(o, "deprecated", false);
        json_array_add_object_element(a, o);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, a);
    return true;
}

static bool query_name(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    JsonObject *o = json_object_new();
    const char *name = ops(m)->name(m->server->vm);
    if (name) {
        json_object_set_string_member(o, "name", name);
    }
    *ret = object_node(o);
    return true;
}

static bool query_uuid(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "UUID", "00000000-0000-0000-0000-000000000000");
    *ret = object_node(o);
    return true;
}

static bool query_cpus_fast(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    JsonArray *a = json_array_new();
    unsigned n = ops(m)->cpu_count(m->server->vm);
    for (unsigned i = 0; i < n; i++) {
        MonitorCpu cpu = { 0 };
        ops(m)->cpu_info(m->server->vm, i, &cpu);
        JsonObject *props = json_object_new();
        json_object_set_int_member(props, "core-id", cpu.core);
        json_object_set_int_member(props, "thread-id", cpu.thread);
        json_object_set_int_member(props, "socket-id", cpu.socket);
        g_autofree char *path = g_strdup_printf("/machine/unattached/device[%u]", i);
        JsonObject *o = json_object_new();
        json_object_set_int_member(o, "cpu-index", i);
        json_object_set_string_member(o, "qom-path", path);
        json_object_set_int_member(o, "thread-id", cpu.tid);
        json_object_set_object_member(o, "props", props);
        json_object_set_string_member(o, "target", "x86_64");
        json_array_add_object_element(a, o);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, a);
    return true;
}

static bool pmemsave(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    gint64 addr = json_object_get_int_member(args, "val");
    gint64 size = json_object_get_int_member(args, "size");
    if (size < 0) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "Parameter 'size' must not be negative");
        return false;
    }
    if (!ops(m)->pmemsave(m->server->vm, (uint64_t)addr, (uint64_t)size,
                          json_object_get_string_member(args, "filename"), err)) {
        return false;
    }
    *ret = empty_object();
    return true;
}

/* The descriptor arrived with this command's bytes (SCM_RIGHTS), and is queued on the client. */
static bool getfd(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    int fd = monitor_take_passed_fd(m);
    if (fd < 0) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "No file descriptor supplied via SCM_RIGHTS");
        return false;
    }
    const char *name = json_object_get_string_member(args, "fdname");
    int old = monitor_take_fd(m->server, name);
    if (old >= 0) {
        close(old);
    }
    g_hash_table_insert(m->server->named_fds, g_strdup(name), GINT_TO_POINTER(fd));
    *ret = empty_object();
    return true;
}

static bool closefd(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    const char *name = json_object_get_string_member(args, "fdname");
    int fd = monitor_take_fd(m->server, name);
    if (fd < 0) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "File descriptor named '%s' not found", name);
        return false;
    }
    close(fd);
    *ret = empty_object();
    return true;
}

/*
 * Built-in devices have no ids and none can be added yet, so every id names
 * no device: QEMU's answer for an unknown id.
 */
static bool device_del(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_DEVICE_NOT_FOUND, "Device '%s' not found",
                json_object_get_string_member(args, "id"));
    return false;
}

/* HMP errors are part of the text, as in QEMU: only a bad cpu-index is a QMP error. */
static bool human_monitor_command(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    gint64 cpu = json_object_has_member(args, "cpu-index") ? json_object_get_int_member(args, "cpu-index") : 0;
    unsigned n = ops(m)->cpu_count(m->server->vm);
    if (cpu < 0 || cpu >= n) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "Parameter 'cpu-index' expects a CPU from 0 to %u",
                    n ? n - 1 : 0);
        return false;
    }
    g_autofree char *out = hmp_run(m, json_object_get_string_member(args, "command-line"), (unsigned)cpu);
    *ret = json_node_init_string(json_node_alloc(), out);
    return true;
}

static JsonObject *chardev_info(const char *label, const char *filename)
{
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "label", label);
    json_object_set_string_member(o, "filename", filename);
    json_object_set_boolean_member(o, "frontend-open", true);
    return o;
}

static bool query_chardev(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    JsonArray *a = json_array_new();
    const char *serial;
    for (unsigned i = 0; ops(m)->serial_filename && (serial = ops(m)->serial_filename(m->server->vm, i)); i++) {
        g_autofree char *label = g_strdup_printf("serial%u", i);
        json_array_add_object_element(a, chardev_info(label, serial));
    }
    /* A tcp: monitor on a name with several addresses is one chardev: report its first listener. */
    const char *last = NULL;
    for (guint i = 0; i < m->server->listeners->len; i++) {
        MonitorListener *l = m->server->listeners->pdata[i];
        if (g_strcmp0(last, l->label) != 0) {
            json_array_add_object_element(a, chardev_info(l->label, l->filename));
        }
        last = l->label;
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, a);
    return true;
}

/* No block devices exist yet; clients such as libvirt still ask. */
static bool query_block(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, json_array_new());
    return true;
}

/* ---- migration ---- */

static Migration *migration_of(Monitor *m, GError **err)
{
    Migration *ms = ops(m)->migration ? ops(m)->migration(m->server->vm) : NULL;
    if (!ms) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "this VM cannot migrate");
    }
    return ms;
}

/* fd:NAME is a descriptor passed with getfd; the migration owns it from here. */
static int migration_fd(Monitor *m, const char *uri)
{
    return g_str_has_prefix(uri, "fd:") ? monitor_take_fd(m->server, uri + 3) : -1;
}

static bool migrate(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    Migration *ms = migration_of(m, err);
    const char *uri = json_object_get_string_member_with_default(args, "uri", NULL);
    if (!ms) {
        return false;
    }
    if (!uri) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "Parameter 'uri' is missing");
        return false;
    }
    if (strcmp(ops(m)->status(m->server->vm), "inmigrate") == 0) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "Guest is waiting for an incoming migration");
        return false;
    }
    if (!migration_start(ms, uri, migration_fd(m, uri), err)) {
        return false;
    }
    *ret = empty_object();
    return true;
}

static bool migrate_cancel(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    Migration *ms = migration_of(m, err);
    if (!ms) {
        return false;
    }
    migration_cancel(ms);
    *ret = empty_object();
    return true;
}

static bool migrate_incoming(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    Migration *ms = migration_of(m, err);
    const char *uri = json_object_get_string_member_with_default(args, "uri", NULL);
    if (!ms) {
        return false;
    }
    if (strcmp(ops(m)->status(m->server->vm), "inmigrate") != 0) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC,
                    "'-incoming' was not specified on the command line");
        return false;
    }
    if (!uri) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "Parameter 'uri' is missing");
        return false;
    }
    if (!migration_incoming(ms, uri, migration_fd(m, uri), err)) {
        return false;
    }
    *ret = empty_object();
    return true;
}

static bool query_migrate(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    Migration *ms = migration_of(m, err);
    if (!ms) {
        return false;
    }
    *ret = object_node(migration_query(ms));
    return true;
}

static bool migrate_set_capabilities(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    Migration *ms = migration_of(m, err);
    JsonNode *caps = json_object_get_member(args, "capabilities");
    if (!ms) {
        return false;
    }
    if (!JSON_NODE_HOLDS_ARRAY(caps)) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "Parameter 'capabilities' expects an array");
        return false;
    }
    if (!migration_set_capabilities(ms, json_node_get_array(caps), err)) {
        return false;
    }
    *ret = empty_object();
    return true;
}

static bool query_migrate_capabilities(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    Migration *ms = migration_of(m, err);
    if (!ms) {
        return false;
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, migration_query_capabilities(ms));
    return true;
}

static bool migrate_set_parameters(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    Migration *ms = migration_of(m, err);
    if (!ms || !migration_set_parameters(ms, args, err)) {
        return false;
    }
    *ret = empty_object();
    return true;
}

static bool query_migrate_parameters(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    Migration *ms = migration_of(m, err);
    if (!ms) {
        return false;
    }
    *ret = object_node(migration_query_parameters(ms));
    return true;
}

/* ---- snapshot jobs ---- */

static SnapshotJobs *snapshot_jobs_of(Monitor *m, GError **err)
{
    SnapshotJobs *jobs = ops(m)->snapshot_jobs ? ops(m)->snapshot_jobs(m->server->vm) : NULL;
    if (!jobs) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "this VM has no snapshots");
    }
    return jobs;
}

/* A ['str'] argument as a NULL-terminated vector, or NULL with @err naming it. */
static GStrv strv_arg(JsonObject *args, const char *name, GError **err)
{
    JsonArray *a = json_object_get_array_member(args, name);
    g_autoptr(GStrvBuilder) b = g_strv_builder_new();
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonNode *n = json_array_get_element(a, i);
        if (!arg_has_type(n, ARG_STR)) {
            g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "Parameter '%s[%u]' expects string", name, i);
            return NULL;
        }
        g_strv_builder_add(b, json_node_get_string(n));
    }
    return g_strv_builder_end(b);
}

typedef enum { SNAPSHOT_SAVE, SNAPSHOT_LOAD, SNAPSHOT_DELETE } SnapshotVerb;

static bool snapshot_command(Monitor *m, JsonObject *args, JsonNode **ret, SnapshotVerb verb, GError **err)
{
    SnapshotJobs *jobs = snapshot_jobs_of(m, err);
    g_auto(GStrv) devices = jobs ? strv_arg(args, "devices", err) : NULL;
    if (!devices) {
        return false;
    }
    const char *id = json_object_get_string_member(args, "job-id");
    const char *tag = json_object_get_string_member(args, "tag");
    const char *vmstate = json_object_get_string_member_with_default(args, "vmstate", NULL);
    const char *const *devs = (const char *const *)devices;
    bool ok = verb == SNAPSHOT_SAVE   ? snapshot_jobs_save(jobs, id, tag, vmstate, devs, err)
              : verb == SNAPSHOT_LOAD ? snapshot_jobs_load(jobs, id, tag, vmstate, devs, err)
                                      : snapshot_jobs_delete(jobs, id, tag, devs, err);
    if (ok) {
        *ret = empty_object();
    }
    return ok;
}

static bool snapshot_save(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    return snapshot_command(m, args, ret, SNAPSHOT_SAVE, err);
}

static bool snapshot_load(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    return snapshot_command(m, args, ret, SNAPSHOT_LOAD, err);
}

static bool snapshot_delete(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    return snapshot_command(m, args, ret, SNAPSHOT_DELETE, err);
}

static bool query_jobs(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    SnapshotJobs *jobs = ops(m)->snapshot_jobs ? ops(m)->snapshot_jobs(m->server->vm) : NULL;
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, jobs ? snapshot_jobs_query(jobs) : json_array_new());
    return true;
}

static bool job_dismiss(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    SnapshotJobs *jobs = snapshot_jobs_of(m, err);
    if (!jobs || !snapshot_jobs_dismiss(jobs, json_object_get_string_member(args, "id"), err)) {
        return false;
    }
    *ret = empty_object();
    return true;
}

static const QmpArg snapshot_args[] = {
    { "job-id", ARG_STR }, { "tag", ARG_STR }, { "vmstate", ARG_STR }, { "devices", ARG_ARRAY }, { NULL },
};
static const QmpArg snapshot_delete_args[] = {
    { "job-id", ARG_STR }, { "tag", ARG_STR }, { "devices", ARG_ARRAY }, { NULL },
};

static const QmpArg migrate_args[] = {
    { "uri", ARG_STR, true }, { "detach", ARG_BOOL, true }, { "resume", ARG_BOOL, true }, { NULL },
};
static const QmpArg incoming_args[] = { { "uri", ARG_STR, true }, { "exit-on-error", ARG_BOOL, true }, { NULL } };
static const QmpArg set_capabilities_args[] = { { "capabilities", ARG_ANY }, { NULL } };
/* Checked by the migration's own parameter table, which names what it does not implement. */
static const QmpArg set_parameters_args[] = {
    { "max-bandwidth", ARG_INT, true }, { "downtime-limit", ARG_INT, true }, { NULL },
};

static const QmpArg fdname_args[] = { { "fdname", ARG_STR }, { NULL } };
static const QmpArg id_args[] = { { "id", ARG_STR }, { NULL } };
static const QmpArg hmp_args[] = { { "command-line", ARG_STR }, { "cpu-index", ARG_INT, true }, { NULL } };
static const QmpArg pmemsave_args[] = {
    { "val", ARG_INT }, { "size", ARG_INT }, { "filename", ARG_STR }, { NULL },
};
static const QmpArg capabilities_args[] = { { "enable", ARG_ANY, true }, { NULL } };

static const QmpCommand commands[] = {
    { "qmp_capabilities", qmp_capabilities, capabilities_args, true },
    { "query-version", query_version },
    { "query-commands", query_commands },
    { "query-qmp-schema", query_qmp_schema },
    { "query-status", query_status },
    { "stop", stop },
    { "cont", cont },
    { "system_reset", system_reset },
    { "system_powerdown", system_powerdown },
    { "quit", quit },
    { "query-kvm", query_kvm },
    { "query-target", query_target },
    { "query-machines", query_machines },
    { "query-name", query_name },
    { "query-uuid", query_uuid },
    { "query-cpus-fast", query_cpus_fast },
    { "pmemsave", pmemsave, pmemsave_args },
    { "getfd", getfd, fdname_args },
    { "closefd", closefd, fdname_args },
    { "human-monitor-command", human_monitor_command, hmp_args },
    { "query-chardev", query_chardev },
    { "query-block", query_block },
    { "device_del", device_del, id_args },
    { "migrate", migrate, migrate_args },
    { "migrate_cancel", migrate_cancel },
    { "migrate-incoming", migrate_incoming, incoming_args },
    { "query-migrate", query_migrate },
    { "migrate-set-capabilities", migrate_set_capabilities, set_capabilities_args },
    { "query-migrate-capabilities", query_migrate_capabilities },
    { "migrate-set-parameters", migrate_set_parameters, set_parameters_args },
    { "query-migrate-parameters", query_migrate_parameters },
    { "snapshot-save", snapshot_save, snapshot_args },
    { "snapshot-load", snapshot_load, snapshot_args },
    { "snapshot-delete", snapshot_delete, snapshot_delete_args },
    { "query-jobs", query_jobs },
    { "job-dismiss", job_dismiss, id_args },
    { NULL },
};

static bool query_commands(Monitor *m, JsonObject *args, JsonNode **ret, GError **err)
{
    JsonArray *a = json_array_new();
    for (const QmpCommand *c = commands; c->name; c++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", c->name);
        json_array_add_object_element(a, o);
    }
    *ret = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(*ret, a);
    return true;
}

static const QmpCommand *find_command(const char *name)
{
    for (const QmpCommand *c = commands; c->name; c++) {
        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}

/* Events and their data members, for query-qmp-schema (monitor.c emits them). */
static const QmpArg shutdown_data[] = { { "guest", ARG_BOOL }, { "reason", ARG_STR }, { NULL } };
static const QmpArg migration_data[] = { { "status", ARG_STR }, { NULL } };
static const QmpArg migration_pass_data[] = { { "pass", ARG_INT }, { NULL } };
static const QmpArg job_status_data[] = { { "id", ARG_STR }, { "status", ARG_STR }, { NULL } };
static const struct {
    const char *name;
    const QmpArg *data;
} events[] = {
    { "SHUTDOWN", shutdown_data },
    { "RESET", shutdown_data },
    { "POWERDOWN", NULL },
    { "STOP", NULL },
    { "RESUME", NULL },
    { "MIGRATION", migration_data },
    { "MIGRATION_PASS", migration_pass_data },
    { "JOB_STATUS_CHANGE", job_status_data },
};

static bool arg_has_type(JsonNode *n, ArgType t)
{
    switch (t) {
    case ARG_STR:
        return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING;
    case ARG_INT:
        return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_INT64;
    case ARG_BOOL:
        return JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_BOOLEAN;
    case ARG_ARRAY:
        return JSON_NODE_HOLDS_ARRAY(n);
    case ARG_ANY:
        return true;
    }
    return false;
}

static bool check_args(const QmpCommand *c, JsonObject *args, GError **err)
{
    for (const QmpArg *a = c->args; a && a->name; a++) {
        JsonNode *n = args ? json_object_get_member(args, a->name) : NULL;
        if (!n) {
            if (!a->optional) {
                g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "Parameter '%s' is missing", a->name);
                return false;
            }
        } else if (!arg_has_type(n, a->type)) {
            g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "Parameter '%s' expects %s", a->name,
                        arg_types[a->type].desc);
            return false;
        }
    }
    if (!args) {
        return true;
    }
    g_autoptr(GList) members = json_object_get_members(args);
    for (GList *l = members; l; l = l->next) {
        bool known = false;
        for (const QmpArg *a = c->args; a && a->name && !known; a++) {
            known = strcmp(a->name, l->data) == 0;
        }
        if (!known) {
            g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "Parameter '%s' is unexpected",
                        (const char *)l->data);
            return false;
        }
    }
    return true;
}

const char *monitor_error_class(const GError *err)
{
    static const char *const classes[] = {
        [MONITOR_ERROR_COMMAND_NOT_FOUND] = "CommandNotFound",
        [MONITOR_ERROR_DEVICE_NOT_FOUND] = "DeviceNotFound",
    };
    if (err->domain == MONITOR_ERROR && err->code >= 0 && (size_t)err->code < G_N_ELEMENTS(classes) &&
        classes[err->code]) {
        return classes[err->code];
    }
    return "GenericError";
}

static JsonObject *error_reply(const GError *err)
{
    JsonObject *e = json_object_new();
    json_object_set_string_member(e, "class", monitor_error_class(err));
    /* Messages may quote what the client sent (a command or parameter name). */
    g_autofree char *desc = g_utf8_make_valid(err->message, -1);
    json_object_set_string_member(e, "desc", desc);
    JsonObject *r = json_object_new();
    json_object_set_object_member(r, "error", e);
    return r;
}

/* Validate the request's shape and run the command; errors per the QMP spec's wording. */
static JsonNode *run(Monitor *m, JsonNode *request, GError **err)
{
    if (!JSON_NODE_HOLDS_OBJECT(request)) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "QMP input must be a JSON object");
        return NULL;
    }
    JsonObject *req = json_node_get_object(request);
    JsonNode *exec = json_object_get_member(req, "execute");
    JsonNode *args_node = json_object_get_member(req, "arguments");
    g_autoptr(GList) members = json_object_get_members(req);
    for (GList *l = members; l; l = l->next) {
        if (strcmp(l->data, "execute") && strcmp(l->data, "arguments") && strcmp(l->data, "id")) {
            g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "QMP input member '%s' is unexpected",
                        (const char *)l->data);
            return NULL;
        }
    }
    if (!exec) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "QMP input lacks member 'execute'");
        return NULL;
    }
    if (!JSON_NODE_HOLDS_VALUE(exec) || json_node_get_value_type(exec) != G_TYPE_STRING) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "QMP input member 'execute' must be a string");
        return NULL;
    }
    if (args_node && !JSON_NODE_HOLDS_OBJECT(args_node)) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "QMP input member 'arguments' must be an object");
        return NULL;
    }
    const char *name = json_node_get_string(exec);
    const QmpCommand *c = find_command(name);
    if (c && !m->negotiated && !c->before_negotiation) {
        c = NULL; /* QEMU answers as if it did not exist */
    }
    if (!c) {
        if (!m->negotiated) {
            g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_COMMAND_NOT_FOUND,
                        "Expecting capabilities negotiation with 'qmp_capabilities'");
        } else {
            g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_COMMAND_NOT_FOUND, "The command %s has not been found",
                        name);
        }
        return NULL;
    }
    /* Handlers always get an object, empty when the client sent no arguments. */
    g_autoptr(JsonObject) none = args_node ? NULL : json_object_new();
    JsonObject *args = args_node ? json_node_get_object(args_node) : none;
    if (!check_args(c, args, err)) {
        return NULL;
    }
    JsonNode *ret = NULL;
    if (!c->fn(m, args, &ret, err)) {
        g_assert(!ret);
        return NULL;
    }
    return ret;
}

JsonObject *qmp_dispatch(Monitor *m, JsonNode *request)
{
    g_autoptr(GError) err = NULL;
    JsonNode *ret = run(m, request, &err);
    JsonObject *reply;
    if (ret) {
        reply = json_object_new();
        json_object_set_member(reply, "return", ret);
    } else {
        reply = error_reply(err);
    }
    JsonNode *id = JSON_NODE_HOLDS_OBJECT(request) ? json_object_get_member(json_node_get_object(request), "id")
                                                   : NULL;
    if (id) {
        json_object_set_member(reply, "id", json_node_copy(id));
    }
    return reply;
}

/*
 * query-qmp-schema in QEMU's SchemaInfo shape. QEMU hides type names behind
 * numbers; here they are readable: NAME-arg is a command's or event's
 * argument object, and every return is "any" because the return types are
 * not described yet (an honest "value", not a made-up structure).
 */
static void add_object_type(JsonArray *a, const char *name, const QmpArg *members)
{
    JsonArray *ms = json_array_new();
    for (const QmpArg *arg = members; arg && arg->name; arg++) {
        JsonObject *mo = json_object_new();
        json_object_set_string_member(mo, "name", arg->name);
        json_object_set_string_member(mo, "type", arg_types[arg->type].name);
        if (arg->optional) {
            json_object_set_null_member(mo, "default");
        }
        json_array_add_object_element(ms, mo);
    }
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "name", name);
    json_object_set_string_member(o, "meta-type", "object");
    json_object_set_array_member(o, "members", ms);
    json_array_add_object_element(a, o);
}

static void add_entity(JsonArray *a, const char *meta, const char *name, const QmpArg *args)
{
    g_autofree char *arg_type = g_strdup_printf("%s-arg", name);
    JsonObject *o = json_object_new();
    json_object_set_string_member(o, "name", name);
    json_object_set_string_member(o, "meta-type", meta);
    json_object_set_string_member(o, "arg-type", arg_type);
    if (strcmp(meta, "command") == 0) {
        json_object_set_string_member(o, "ret-type", "any");
    }
    json_array_add_object_element(a, o);
    add_object_type(a, arg_type, args);
}

JsonNode *qmp_schema(void)
{
    JsonArray *a = json_array_new();
    for (const QmpCommand *c = commands; c->name; c++) {
        add_entity(a, "command", c->name, c->args);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(events); i++) {
        add_entity(a, "event", events[i].name, events[i].data);
    }
    for (size_t t = 0; t < G_N_ELEMENTS(arg_types); t++) {
        JsonObject *o = json_object_new();
        json_object_set_string_member(o, "name", arg_types[t].name);
        if (t == ARG_ARRAY) { /* QEMU's shape for a list type */
            json_object_set_string_member(o, "meta-type", "array");
            json_object_set_string_member(o, "element-type", arg_types[ARG_STR].name);
        } else {
            json_object_set_string_member(o, "meta-type", "builtin");
            json_object_set_string_member(o, "json-type", arg_types[t].json_type);
        }
        json_array_add_object_element(a, o);
    }
    JsonNode *n = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(n, a);
    return n;
}
