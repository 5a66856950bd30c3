/* The monitor's view of a running VM: MonitorVmOps over a Runtime. */
#include "monitor/runtime-vm.h"
#include "accel/kvm.h"
#include "util/error.h"
#include <string.h>

static const char *const state_names[] = {
    [RUN_STATE_PRELAUNCH] = "prelaunch",
    [RUN_STATE_RUNNING] = "running",
    [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_SHUTDOWN] = "shutdown",
    [RUN_STATE_INTERNAL_ERROR] = "internal-error",
    [RUN_STATE_INMIGRATE] = "inmigrate",
    [RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
    [RUN_STATE_POSTMIGRATE] = "postmigrate",
};

static const char *vm_status(void *vm)
{
    RunState s = runtime_state(vm);
    g_assert(s < G_N_ELEMENTS(state_names));
    return state_names[s];
}

static void vm_stop(void *vm)
{
    runtime_pause(vm);
}

static void vm_cont(void *vm)
{
    runtime_resume(vm);
}

static void vm_reset(void *vm)
{
    runtime_system_reset(vm);
}

static bool vm_powerdown(void *vm, GError **err)
{
    return runtime_powerdown(vm, err);
}

static void vm_quit(void *vm)
{
    runtime_quit(vm);
}

static const char *vm_name(void *vm)
{
    return runtime_config(vm)->name;
}

static unsigned vm_cpu_count(void *vm)
{
    return runtime_vcpu_count(vm);
}

/* vCPU i's place in the -smp topology: threads vary fastest, as in QEMU. */
static void vm_cpu_info(void *vm, unsigned i, MonitorCpu *out)
{
    const VmConfig *cfg = runtime_config(vm);
    out->tid = runtime_vcpu_tid(vm, i);
    out->thread = i % cfg->threads;
    out->core = (i / cfg->threads) % cfg->cores;
    out->socket = i / (cfg->threads * cfg->cores);
}

/* Only RAM can be saved: a range touching MMIO or a hole is refused whole. */
static bool vm_pmemsave(void *vm, uint64_t addr, uint64_t size, const char *file, GError **err)
{
    Machine *m = runtime_machine(vm);
    const void *p = size ? m->gpa_to_hva(m, addr, size) : "";
    if (!p) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "Invalid addr 0x%016" G_GINT64_MODIFIER "x/size %" G_GUINT64_FORMAT " specified",
                    addr, size);
        return false;
    }
    return g_file_set_contents(file, p, size, err);
}

/* One look at a parked vCPU: registers, or code when @count is non-zero. */
typedef struct {
    unsigned cpu;
    bool at_pc;
    uint64_t addr;
    unsigned count;
    GString *out;
    GError **err;
    bool ok;
} CpuLook;

static void look_at_cpu(Runtime *rt, void *opaque)
{
    CpuLook *l = opaque;
    KvmVcpu *vcpu = runtime_vcpu(rt, l->cpu);
    if (l->count) {
        l->ok = kvm_vcpu_disassemble(vcpu, l->at_pc, l->addr, l->count, l->out, l->err);
    } else {
        l->ok = kvm_vcpu_format_registers(vcpu, l->out, l->err);
    }
}

static bool vm_cpu_registers(void *vm, unsigned cpu, GString *out, GError **err)
{
    CpuLook l = { .cpu = cpu, .out = out, .err = err };
    runtime_with_vcpus_parked(vm, look_at_cpu, &l);
    return l.ok;
}

static bool vm_cpu_disassemble(void *vm, unsigned cpu, bool at_pc, uint64_t addr, unsigned count, GString *out,
                               GError **err)
{
    CpuLook l = { .cpu = cpu, .at_pc = at_pc, .addr = addr, .count = count ? count : 1, .out = out, .err = err };
    runtime_with_vcpus_parked(vm, look_at_cpu, &l);
    return l.ok;
}

/* The board realizes only the first -serial (COM1); its spec as pc.c picks it. */
static const char *vm_serial_filename(void *vm, unsigned index)
{
    const VmConfig *cfg = runtime_config(vm);
    const char *spec = cfg->serials->len > 0 ? g_ptr_array_index(cfg->serials, 0)
                       : cfg->nographic && !cfg->nodefaults ? "stdio"
                                                            : NULL;
    if (index > 0 || !spec || strcmp(spec, "none") == 0) {
        return NULL;
    }
    return spec;
}

static Migration *vm_migration(void *vm)
{
    return runtime_migration(vm);
}

static SnapshotJobs *vm_snapshot_jobs(void *vm)
{
    return runtime_snapshot_jobs(vm);
}

static const MonitorVmOps runtime_vm_ops = {
    .migration = vm_migration,
    .snapshot_jobs = vm_snapshot_jobs,
    .status = vm_status,
    .stop = vm_stop,
    .cont = vm_cont,
    .system_reset = vm_reset,
    .system_powerdown = vm_powerdown,
    .quit = vm_quit,
    .name = vm_name,
    .cpu_count = vm_cpu_count,
    .cpu_info = vm_cpu_info,
    .pmemsave = vm_pmemsave,
    .cpu_registers = vm_cpu_registers,
    .cpu_disassemble = vm_cpu_disassemble,
    .serial_filename = vm_serial_filename,
};

static void forward_event(const char *name, JsonObject *data, void *opaque)
{
    monitor_server_emit_event(opaque, name, data);
}

MonitorServer *monitor_server_for_runtime(Runtime *rt)
{
    MonitorServer *s = monitor_server_new(&runtime_vm_ops, rt);
    runtime_set_event_handler(rt, forward_event, s);
    return s;
}
