#define G_LOG_DOMAIN "runtime"
#include "system/runtime.h"
#include "accel/kvm.h"
#include "block/block.h"
#include "migration/vmstate.h"
#include "util/error.h"
#include <glib-unix.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>

/* Exit statuses of the process, as QEMU's. */
#define EXIT_OK 0
#define EXIT_GUEST_ERROR 1

struct Runtime {
    const MachineType *type;
    Machine *m;
    const VmConfig *cfg;
    RunState state;
    unsigned nr_vcpus;
    GThread **threads;

    /* Guarded by m->lock. */
    bool vcpus_should_run;
    unsigned generation; /* bumped by every resume */
    unsigned *halted_generation; /* per vCPU: stopped itself (error, triple fault) in this generation */
    unsigned vcpus_inside;       /* threads between leaving the lock and coming back from KVM_RUN */
    GCond cond;
    int *tids;                   /* per vCPU: Linux thread id, 0 until the thread runs */

    RuntimeEventFn event_fn;
    void *event_opaque;
    GThread *main_thread; /* events from other threads are passed to it */

    Migration *migration;
    SnapshotJobs *snapshot_jobs;
    RunState state_before_migration; /* to go back to when a switch-over fails */
    /*
     * Migrated as section "runstate": whether the source's vCPUs ran when
     * it stopped them for the switch-over. As in QEMU, a destination goes
     * on running only if the source was.
     */
    bool migrated_running;
    bool autostart; /* 'cont' during an incoming migration: run once it is loaded */

    bool quit;
    int exit_status;
};

typedef struct {
    Runtime *rt;
    unsigned index;
} VcpuThreadArgs;

static GMutex *poll_lock;

/* QEMU's ShutdownCause names, and whether the guest caused it (events' "guest"). */
static const struct {
    const char *reason;
    bool guest;
} causes[] = {
    [SHUTDOWN_CAUSE_NONE] = { "none", false },
    [SHUTDOWN_CAUSE_GUEST_SHUTDOWN] = { "guest-shutdown", true },
    [SHUTDOWN_CAUSE_GUEST_RESET] = { "guest-reset", true },
    [SHUTDOWN_CAUSE_HOST_QMP_QUIT] = { "host-qmp-quit", false },
    [SHUTDOWN_CAUSE_HOST_SIGNAL] = { "host-signal", false },
    [SHUTDOWN_CAUSE_GUEST_PANIC] = { "guest-panic", true },
    [SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET] = { "host-qmp-system-reset", false },
};

typedef struct {
    Runtime *rt;
    char *name;
    JsonObject *data;
} PassedEvent;

static void emit(Runtime *rt, const char *name, JsonObject *data);

static gboolean emit_passed(gpointer p)
{
    PassedEvent *e = p;
    emit(e->rt, e->name, e->data);
    g_free(e->name);
    g_free(e);
    return G_SOURCE_REMOVE;
}

/* Takes @data. From a thread other than the main loop's (a migration's), the main loop emits it. */
static void emit(Runtime *rt, const char *name, JsonObject *data)
{
    if (rt->main_thread && g_thread_self() != rt->main_thread) {
        PassedEvent *e = g_new(PassedEvent, 1);
        *e = (PassedEvent){ rt, g_strdup(name), data };
        g_idle_add(emit_passed, e);
        return;
    }
    if (rt->event_fn) {
        rt->event_fn(name, data, rt->event_opaque);
    }
    if (data) {
        json_object_unref(data);
    }
}

/* SHUTDOWN and RESET carry the same data. */
static void emit_cause(Runtime *rt, const char *name, ShutdownCause cause)
{
    g_assert(cause < G_N_ELEMENTS(causes));
    JsonObject *data = json_object_new();
    json_object_set_boolean_member(data, "guest", causes[cause].guest);
    json_object_set_string_member(data, "reason", causes[cause].reason);
    emit(rt, name, data);
}

void runtime_set_event_handler(Runtime *rt, RuntimeEventFn fn, void *opaque)
{
    rt->event_fn = fn;
    rt->event_opaque = opaque;
}

/* The main loop holds the big lock except while it waits in poll(). */
static gint unlocked_poll(GPollFD *fds, guint nfds, gint timeout)
{
    g_mutex_unlock(poll_lock);
    gint r = g_poll(fds, nfds, timeout);
    g_mutex_lock(poll_lock);
    return r;
}

static gpointer vcpu_thread(gpointer data)
{
    g_autofree VcpuThreadArgs *args = data;
    Runtime *rt = args->rt;
    Machine *m = rt->m;
    unsigned i = args->index;

    kvm_vcpu_thread_init();
    g_mutex_lock(&m->lock);
    rt->tids[i] = gettid();
    g_cond_broadcast(&rt->cond);
    for (;;) {
        while (!rt->vcpus_should_run || rt->halted_generation[i] == rt->generation) {
            g_cond_wait(&rt->cond, &m->lock);
        }
        KvmVcpu *vcpu = rt->type->vcpu(m, i);
        rt->vcpus_inside++;
        g_mutex_unlock(&m->lock);
        KvmVcpuStop why = kvm_vcpu_run(vcpu);
        g_mutex_lock(&m->lock);
        rt->vcpus_inside--;
        g_cond_broadcast(&rt->cond);
        if (why == KVM_VCPU_SHUTDOWN) {
            rt->halted_generation[i] = rt->generation;
            m->request_reset(m, SHUTDOWN_CAUSE_GUEST_RESET);
        } else if (why == KVM_VCPU_ERROR) {
            rt->halted_generation[i] = rt->generation;
            m->request_shutdown(m, SHUTDOWN_CAUSE_GUEST_PANIC);
        }
    }
    return NULL;
}

/* Park every vCPU outside KVM_RUN. Called with the big lock held. */
static void stop_vcpus(Runtime *rt)
{
    rt->vcpus_should_run = false;
    for (unsigned i = 0; i < rt->nr_vcpus; i++) {
        kvm_vcpu_kick(rt->type->vcpu(rt->m, i));
    }
    while (rt->vcpus_inside > 0) {
        g_cond_wait(&rt->cond, &rt->m->lock);
    }
}

static void start_vcpus(Runtime *rt)
{
    machine_vcpus_resuming(rt->m);
    rt->generation++;
    rt->vcpus_should_run = true;
    g_cond_broadcast(&rt->cond);
}

void runtime_with_vcpus_parked(Runtime *rt, void (*fn)(Runtime *rt, void *opaque), void *opaque)
{
    bool were_running = rt->vcpus_should_run;
    if (were_running) {
        stop_vcpus(rt);
    }
    fn(rt, opaque);
    if (were_running) {
        /*
         * Not start_vcpus(): the generation stays, so a vCPU that halted
         * itself (triple fault, error) in this run stays halted.
         */
        rt->vcpus_should_run = true;
        g_cond_broadcast(&rt->cond);
    }
}

void runtime_pause(Runtime *rt)
{
    if (rt->state == RUN_STATE_RUNNING) {
        stop_vcpus(rt);
        rt->state = RUN_STATE_PAUSED;
        emit(rt, "STOP", NULL);
    }
}

void runtime_resume(Runtime *rt)
{
    if (rt->state == RUN_STATE_INMIGRATE) {
        rt->autostart = true; /* as QEMU: the VM runs once the stream is loaded */
        return;
    }
    if (rt->state == RUN_STATE_PAUSED || rt->state == RUN_STATE_PRELAUNCH || rt->state == RUN_STATE_POSTMIGRATE) {
        rt->state = RUN_STATE_RUNNING;
        start_vcpus(rt);
        emit(rt, "RESUME", NULL);
    }
}

RunState runtime_state(Runtime *rt)
{
    return rt->state;
}

static void finish(Runtime *rt, int status)
{
    rt->quit = true;
    rt->exit_status = status;
}

static void handle_requests(Runtime *rt)
{
    ShutdownCause shutdown = machine_take_shutdown_request(rt->m);
    ShutdownCause reset = machine_take_reset_request(rt->m);

    if (shutdown != SHUTDOWN_CAUSE_NONE) {
        stop_vcpus(rt);
        emit_cause(rt, "SHUTDOWN", shutdown);
        if (shutdown == SHUTDOWN_CAUSE_GUEST_PANIC) {
            rt->state = RUN_STATE_INTERNAL_ERROR;
            finish(rt, EXIT_GUEST_ERROR);
        } else if (shutdown == SHUTDOWN_CAUSE_GUEST_SHUTDOWN && rt->cfg->no_shutdown) {
            if (rt->state == RUN_STATE_RUNNING) {
                emit(rt, "STOP", NULL);
            }
            rt->state = RUN_STATE_SHUTDOWN;
        } else {
            finish(rt, EXIT_OK);
        }
        return;
    }
    if (reset != SHUTDOWN_CAUSE_NONE) {
        /* As in QEMU, -no-reboot turns every reset, QMP's too, into an exit. */
        if (rt->cfg->no_reboot) {
            stop_vcpus(rt);
            emit_cause(rt, "SHUTDOWN", reset);
            finish(rt, EXIT_OK);
            return;
        }
        stop_vcpus(rt);
        g_autoptr(GError) err = NULL;
        if (!rt->type->reset(rt->m, &err)) {
            fprintf(stderr, "vireo-system-x86_64: reset failed: %s\n", err->message);
            finish(rt, EXIT_GUEST_ERROR);
            return;
        }
        emit_cause(rt, "RESET", reset);
        if (rt->state == RUN_STATE_RUNNING) {
            start_vcpus(rt);
        }
    }
}

/* ---- what the migration asks of the VM (big lock held, migration thread) ---- */

static const VMStateField runstate_fields[] = {
    VMSTATE_BOOL(Runtime, migrated_running),
    VMSTATE_END,
};

static const VMStateDescription runstate_vmsd = {
    .name = "runstate",
    .version = 1,
    .minimum_version = 1,
    .fields = runstate_fields,
};

static bool migration_stop(void *opaque)
{
    Runtime *rt = opaque;
    bool was_running = rt->state == RUN_STATE_RUNNING;
    rt->migrated_running = was_running;
    stop_vcpus(rt);
    rt->state_before_migration = rt->state;
    rt->state = RUN_STATE_FINISH_MIGRATE;
    if (was_running) {
        emit(rt, "STOP", NULL);
    }
    return was_running;
}

static bool migration_vcpus_running(void *opaque)
{
    Runtime *rt = opaque;
    return rt->vcpus_should_run;
}

static void migration_resume(void *opaque)
{
    Runtime *rt = opaque;
    rt->state = rt->state_before_migration;
    if (rt->state == RUN_STATE_RUNNING) {
        start_vcpus(rt);
        emit(rt, "RESUME", NULL);
    }
}

static void migration_outgoing_done(void *opaque, bool completed, bool resume)
{
    Runtime *rt = opaque;
    if (rt->state != RUN_STATE_FINISH_MIGRATE) {
        return; /* it ended before the switch-over: the VM was never stopped */
    }
    if (completed) {
        rt->state = RUN_STATE_POSTMIGRATE;
    } else if (resume) {
        rt->state = RUN_STATE_RUNNING;
        start_vcpus(rt);
        emit(rt, "RESUME", NULL);
    } else {
        rt->state = rt->state_before_migration;
    }
}

static void migration_incoming_done(void *opaque, const GError *err)
{
    Runtime *rt = opaque;
    if (err) {
        /* As QEMU: the destination gives up, saying why, and exits non-zero. */
        fprintf(stderr, "vireo-system-x86_64: load of migration failed: %s\n", err->message);
        finish(rt, EXIT_GUEST_ERROR);
        g_main_context_wakeup(NULL);
        return;
    }
    rt->state = RUN_STATE_PAUSED;
    if ((!rt->cfg->start_paused && rt->migrated_running) || rt->autostart) {
        runtime_resume(rt);
    }
}

static void migration_event(void *opaque, const char *name, JsonObject *data)
{
    emit(opaque, name, data ? json_object_ref(data) : NULL);
}

static const MigrationHostOps migration_host_ops = {
    .stop = migration_stop,
    .vcpus_running = migration_vcpus_running,
    .resume = migration_resume,
    .outgoing_done = migration_outgoing_done,
    .incoming_done = migration_incoming_done,
    .event = migration_event,
};

Migration *runtime_migration(Runtime *rt)
{
    return rt->migration;
}

/* ---- what the snapshot jobs ask of the VM (main loop, big lock held) ---- */

static char *jobs_drive_file(void *opaque, const char *node)
{
    Runtime *rt = opaque;
    return block_drive_filename(rt->cfg, node);
}

static bool jobs_reload(void *opaque, bool (*load)(void *ctx, GError **err), void *ctx, GError **err)
{
    return runtime_reload(opaque, load, ctx, err);
}

static void jobs_event(void *opaque, const char *name, JsonObject *data)
{
    emit(opaque, name, data);
}

static const SnapshotJobsHostOps snapshot_jobs_host_ops = {
    .drive_file = jobs_drive_file,
    .reload = jobs_reload,
    .event = jobs_event,
};

SnapshotJobs *runtime_snapshot_jobs(Runtime *rt)
{
    return rt->snapshot_jobs;
}

/* -incoming URI: "fd:N" is an inherited descriptor; other URIs open themselves. */
static bool start_incoming(Runtime *rt, GError **err)
{
    const char *uri = rt->cfg->incoming;
    int fd = -1;
    if (g_str_has_prefix(uri, "fd:")) {
        char *end;
        long n = strtol(uri + 3, &end, 10);
        if (*end || end == uri + 3 || n < 0 || n > INT_MAX) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "-incoming %s: fd: expects a descriptor number", uri);
            return false;
        }
        fd = (int)n;
    }
    if (!migration_incoming(rt->migration, uri, fd, err)) {
        g_prefix_error(err, "-incoming: ");
        return false;
    }
    return true;
}

static gboolean on_signal(gpointer data)
{
    Runtime *rt = data;
    rt->m->request_shutdown(rt->m, SHUTDOWN_CAUSE_HOST_SIGNAL);
    return G_SOURCE_CONTINUE;
}

Runtime *runtime_new(const MachineType *type, Machine *m, const VmConfig *cfg, GError **err)
{
    Runtime *rt = g_new0(Runtime, 1);
    rt->type = type;
    rt->m = m;
    rt->cfg = cfg;
    rt->state = RUN_STATE_PRELAUNCH;
    rt->nr_vcpus = type->vcpu_count(m);
    rt->halted_generation = g_new0(unsigned, rt->nr_vcpus);
    rt->tids = g_new0(int, rt->nr_vcpus);
    g_cond_init(&rt->cond);
    g_autofree char *config = g_strdup_printf("vireo machine=%s cpu=%s smp=%u,sockets=%u,cores=%u,threads=%u",
                                              type->name, cfg->cpu, cfg->smp_cpus, cfg->sockets, cfg->cores,
                                              cfg->threads);
    vmstate_register(m, "runstate", 0, &runstate_vmsd, rt);
    rt->migration = migration_new(m, config, &migration_host_ops, rt);
    rt->snapshot_jobs = snapshot_jobs_new(rt->migration, cfg->snapshot_dir, &snapshot_jobs_host_ops, rt);

    poll_lock = &m->lock;
    g_main_context_set_poll_func(NULL, unlocked_poll);
    g_unix_signal_add(SIGINT, on_signal, rt);
    g_unix_signal_add(SIGTERM, on_signal, rt);
    g_unix_signal_add(SIGHUP, on_signal, rt);

    /* vCPU threads must not take the kick signal's default action. */
    rt->threads = g_new0(GThread *, rt->nr_vcpus);
    for (unsigned i = 0; i < rt->nr_vcpus; i++) {
        VcpuThreadArgs *args = g_new(VcpuThreadArgs, 1);
        *args = (VcpuThreadArgs){ rt, i };
        g_autofree char *name = g_strdup_printf("CPU %u/KVM", i);
        rt->threads[i] = g_thread_try_new(name, vcpu_thread, args, err);
        if (!rt->threads[i]) {
            g_free(args);
            return NULL; /* the process exits; threads already made are parked */
        }
    }
    /* query-cpus-fast reports the thread ids: have them before any client asks. */
    g_mutex_lock(&m->lock);
    for (unsigned i = 0; i < rt->nr_vcpus; i++) {
        while (!rt->tids[i]) {
            g_cond_wait(&rt->cond, &m->lock);
        }
    }
    g_mutex_unlock(&m->lock);
    return rt;
}

KvmVcpu *runtime_vcpu(Runtime *rt, unsigned index)
{
    g_assert(index < rt->nr_vcpus);
    return rt->type->vcpu(rt->m, index);
}

Machine *runtime_machine(Runtime *rt)
{
    return rt->m;
}

const VmConfig *runtime_config(Runtime *rt)
{
    return rt->cfg;
}

unsigned runtime_vcpu_count(Runtime *rt)
{
    return rt->nr_vcpus;
}

int runtime_vcpu_tid(Runtime *rt, unsigned index)
{
    g_assert(index < rt->nr_vcpus);
    return rt->tids[index];
}

bool runtime_reload(Runtime *rt, bool (*load)(void *opaque, GError **err), void *opaque, GError **err)
{
    bool was_running = rt->state == RUN_STATE_RUNNING;
    stop_vcpus(rt);
    if (was_running) {
        rt->state = RUN_STATE_PAUSED;
        emit(rt, "STOP", NULL);
    }
    if (!rt->type->reset(rt->m, err) || !load(opaque, err)) {
        return false; /* as QEMU after a failed load: the VM stays stopped */
    }
    if (was_running) {
        runtime_resume(rt);
    }
    return true;
}

void runtime_system_reset(Runtime *rt)
{
    rt->m->request_reset(rt->m, SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
}

void runtime_quit(Runtime *rt)
{
    rt->m->request_shutdown(rt->m, SHUTDOWN_CAUSE_HOST_QMP_QUIT);
}

bool runtime_powerdown(Runtime *rt, GError **err)
{
    if (!rt->type->powerdown) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED, "machine '%s' has no power button",
                    rt->type->name);
        return false;
    }
    rt->type->powerdown(rt->m);
    emit(rt, "POWERDOWN", NULL);
    return true;
}

int runtime_run(Runtime *rt)
{
    rt->main_thread = g_thread_self();
    g_mutex_lock(&rt->m->lock);
    if (rt->cfg->incoming) {
        rt->state = RUN_STATE_INMIGRATE;
        g_autoptr(GError) err = NULL;
        if (strcmp(rt->cfg->incoming, "defer") != 0 && !start_incoming(rt, &err)) {
            fprintf(stderr, "vireo-system-x86_64: %s\n", err->message);
            g_mutex_unlock(&rt->m->lock);
            return EXIT_GUEST_ERROR;
        }
    } else if (!rt->cfg->start_paused) {
        runtime_resume(rt);
    }
    while (!rt->quit) {
        g_main_context_iteration(NULL, TRUE);
        handle_requests(rt);
    }
    g_mutex_unlock(&rt->m->lock);
    return rt->exit_status;
}
