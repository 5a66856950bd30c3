/* What all machines share: their base setup, request posting, and the type table. */
#include "hw/core/machine.h"
#include "hw/i386/pc.h"
#include <string.h>

const MachineType *const machine_types[] = { &pc_machine_type, NULL };

const MachineType *machine_type_find(const char *name)
{
    for (const MachineType *const *t = machine_types; *t; t++) {
        if (strcmp((*t)->name, name) == 0) {
            return *t;
        }
    }
    return NULL;
}

/* Requests are posted, never acted on in the caller: a device asks from a vCPU thread. */
static void post_shutdown(Machine *m, ShutdownCause cause)
{
    g_atomic_int_compare_and_exchange(&m->pending_shutdown, SHUTDOWN_CAUSE_NONE, cause);
    g_main_context_wakeup(NULL);
}

static void post_reset(Machine *m, ShutdownCause cause)
{
    g_atomic_int_compare_and_exchange(&m->pending_reset, SHUTDOWN_CAUSE_NONE, cause);
    g_main_context_wakeup(NULL);
}

void machine_init(Machine *m)
{
    g_mutex_init(&m->lock);
    m->pio = io_map_new("pio");
    m->mmio = io_map_new("mmio");
    m->request_shutdown = post_shutdown;
    m->request_reset = post_reset;
}

void machine_cleanup(Machine *m)
{
    g_clear_pointer(&m->pio, io_map_free);
    g_clear_pointer(&m->mmio, io_map_free);
    g_clear_pointer(&m->vmstate_entries, g_ptr_array_unref);
    g_clear_pointer(&m->ram_blocks, g_ptr_array_unref);
    g_mutex_clear(&m->lock);
}

ShutdownCause machine_take_shutdown_request(Machine *m)
{
    return g_atomic_int_and(&m->pending_shutdown, 0);
}

ShutdownCause machine_take_reset_request(Machine *m)
{
    return g_atomic_int_and(&m->pending_reset, 0);
}

bool machine_vcpu_log_start(Machine *m, GError **err)
{
    if (m->vcpu_log || !m->dirty_log_start) {
        return true;
    }
    m->vcpu_log = m->dirty_log_start(m, err);
    return m->vcpu_log;
}

void machine_vcpu_log_stop(Machine *m)
{
    if (m->vcpu_log && m->dirty_log_stop) {
        m->dirty_log_stop(m);
    }
    m->vcpu_log = m->vcpu_log_failed = false;
}

void machine_vcpus_resuming(Machine *m)
{
    g_autoptr(GError) err = NULL;
    if (g_atomic_int_get(&m->dirty_tracking) && !machine_vcpu_log_start(m, &err)) {
        g_warning("%s", err->message);
        m->vcpu_log_failed = true;
    }
}
