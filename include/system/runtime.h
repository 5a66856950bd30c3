/*
 * The running VM: vCPU threads, the main loop, and the run state. It turns
 * the requests devices make (power off, reset) into actions on the machine.
 */
#pragma once
#include "hw/core/machine.h"
#include "migration/migration.h"
#include "migration/snapshot-jobs.h"
#include "system/options.h"
#include <json-glib/json-glib.h>

typedef enum {
    RUN_STATE_PRELAUNCH, /* -S: built, vCPUs not started */
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,
    RUN_STATE_SHUTDOWN,  /* guest powered off with -no-shutdown */
    RUN_STATE_INTERNAL_ERROR,
    RUN_STATE_INMIGRATE,      /* -incoming: waiting for or loading a migration stream */
    RUN_STATE_FINISH_MIGRATE, /* vCPUs stopped for a migration's switch-over */
    RUN_STATE_POSTMIGRATE,    /* migrated away: stays paused unless 'cont' */
} RunState;

typedef struct Runtime Runtime;

/* Take over @m (built from @type): wire its requests, create the vCPU threads. */
Runtime *runtime_new(const MachineType *type, Machine *m, const VmConfig *cfg, GError **err);
/* Run the main loop until the VM ends; returns the process exit status. */
int runtime_run(Runtime *rt);

RunState runtime_state(Runtime *rt);
/* QMP's stop/cont (called on the main loop with the big lock held). */
void runtime_pause(Runtime *rt);
void runtime_resume(Runtime *rt);

/* Called on the main loop with the big lock held. */
void runtime_system_reset(Runtime *rt);   /* QMP system_reset: post a reset */
void runtime_quit(Runtime *rt);
/*
 * snapshot-load: stop the vCPUs, reset the machine, run @load, and run
 * again if the VM was running. A failed load leaves the VM paused.
 */
bool runtime_reload(Runtime *rt, bool (*load)(void *opaque, GError **err), void *opaque, GError **err);           /* QMP quit: post a shutdown */
bool runtime_powerdown(Runtime *rt, GError **err); /* press the power button */

/*
 * Run @fn with every vCPU thread outside KVM_RUN (so their registers can be
 * read), then let them go on: the run state does not change and no event is
 * emitted. Called on the main loop with the big lock held.
 */
void runtime_with_vcpus_parked(Runtime *rt, void (*fn)(Runtime *rt, void *opaque), void *opaque);

Machine *runtime_machine(Runtime *rt);
Migration *runtime_migration(Runtime *rt);
SnapshotJobs *runtime_snapshot_jobs(Runtime *rt);
KvmVcpu *runtime_vcpu(Runtime *rt, unsigned index);
const VmConfig *runtime_config(Runtime *rt);
unsigned runtime_vcpu_count(Runtime *rt);
int runtime_vcpu_tid(Runtime *rt, unsigned index); /* Linux thread id of vCPU @index */

/*
 * Run-state events (QEMU's STOP, RESUME, RESET, SHUTDOWN, POWERDOWN) go to
 * one handler, which the monitor installs: @data (may be NULL) is borrowed.
 */
typedef void (*RuntimeEventFn)(const char *name, JsonObject *data, void *opaque);
void runtime_set_event_handler(Runtime *rt, RuntimeEventFn fn, void *opaque);
