/*
 * What every machine offers its devices: the two address spaces, guest RAM
 * access, and the run-state requests a device can make (power off, reset).
 * Devices get a Machine pointer at creation and use nothing else of it.
 */
#pragma once
#include "hw/core/iomap.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SHUTDOWN_CAUSE_NONE,
    SHUTDOWN_CAUSE_GUEST_SHUTDOWN, /* ACPI S5, as QEMU's "guest-shutdown" */
    SHUTDOWN_CAUSE_GUEST_RESET,    /* reset register, i8042, port 0x92, triple fault */
    SHUTDOWN_CAUSE_HOST_QMP_QUIT,
    SHUTDOWN_CAUSE_HOST_SIGNAL,
    SHUTDOWN_CAUSE_GUEST_PANIC,
    SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET,
} ShutdownCause;

/* The -smp limit, for now the same for every machine type (query-machines' cpu-max). */
#define MACHINE_MAX_CPUS 1024

typedef struct Machine Machine;
typedef struct KvmVcpu KvmVcpu;
typedef void (*MachineDirtyFn)(void *hva, uint64_t pages, const uint64_t *bitmap, void *opaque);
typedef struct VmConfig VmConfig;

/* A range of guest-physical memory. */
typedef struct GuestSpan {
    uint64_t gpa, len;
} GuestSpan;

struct Machine {
    /*
     * The big lock: held by a vCPU thread while it emulates a device and by
     * the main loop while it dispatches, so device code needs no locks.
     */
    GMutex lock;
    IoMap *pio;  /* port I/O, 0..0xffff */
    IoMap *mmio; /* everything in guest-physical space that is not RAM */
    /*
     * Ask the main loop to power off or reset (safe from any thread). Set by
     * machine_init() to post the request; tests may substitute their own.
     */
    void (*request_shutdown)(Machine *m, ShutdownCause cause);
    void (*request_reset)(Machine *m, ShutdownCause cause);
    /* Host pointer for [gpa, gpa+len) if it is all RAM, else NULL. */
    void *(*gpa_to_hva)(Machine *m, uint64_t gpa, uint64_t len);
    /*
     * Interrupt and notification fast paths; NULL where the machine has none.
     * msi_bind makes every write of eventfd @fd deliver the MSI message
     * (@addr, @data) without leaving the kernel and returns a handle for
     * msi_rebind/msi_unbind (-1 on failure). ioeventfd makes guest writes of
     * @len bytes (0: any width) at MMIO @addr signal @fd instead of trapping. Called with
     * the big lock held; send_msi from any thread.
     */
    int (*msi_bind)(Machine *m, int fd, uint64_t addr, uint32_t data, GError **err);
    bool (*msi_rebind)(Machine *m, int handle, uint64_t addr, uint32_t data, GError **err);
    void (*msi_unbind)(Machine *m, int handle, int fd);
    void (*send_msi)(Machine *m, uint64_t addr, uint32_t data);
    bool (*ioeventfd)(Machine *m, int fd, uint64_t addr, unsigned len, bool assign, GError **err);
    /*
     * Guest-physical memory the stopped vCPUs' state points at, which the
     * guest writes first when it runs again (a background snapshot saves
     * it first, in this order): up to @max spans into @out, how many.
     * Read from the state just saved, so called right after a save of the
     * device state. NULL where unknown.
     */
    unsigned (*vcpu_footprint)(Machine *m, GuestSpan *out, unsigned max);
    /*
     * The log of guest pages the vCPUs write, for live migration (NULL
     * where there is none). sync calls @fn for each piece of RAM with a bit
     * per 4 KiB page written since the last sync, from host address @hva.
     */
    bool (*dirty_log_start)(Machine *m, GError **err);
    bool (*dirty_log_sync)(Machine *m, MachineDirtyFn fn, void *opaque, GError **err);
    void (*dirty_log_stop)(Machine *m);
    gint pending_shutdown, pending_reset; /* posted ShutdownCause, NONE if none */
    /* What a migration saves (include/migration/vmstate.h, ram.h). */
    GPtrArray *vmstate_entries; /* VMStateEntry, in save order */
    GPtrArray *ram_blocks;      /* RamBlock */
    gint dirty_tracking;        /* a migration wants ram_mark_dirty's pages; atomic */
    /*
     * KVM's log of the vCPUs' writes is on (dirty_log_start); it runs only
     * while tracking and the vCPUs may run. vcpu_log_failed: it could not
     * start when they were resumed, so the migration must fail. Big lock.
     */
    bool vcpu_log, vcpu_log_failed;
};

/* Base setup every machine type does first: lock, address spaces, requests. */
void machine_init(Machine *m);
void machine_cleanup(Machine *m);
/* The main loop takes posted requests (each is returned once). */
ShutdownCause machine_take_shutdown_request(Machine *m);
ShutdownCause machine_take_reset_request(Machine *m);
/*
 * KVM's log of vCPU writes on for a migration that tracks them (idempotent)
 * and off again, big lock held. Starting costs (96 ms on 1 GiB in the test
 * rig, 36 ms to stop), so a migration of a paused VM starts it only if the
 * vCPUs are resumed meanwhile: machine_vcpus_resuming().
 */
bool machine_vcpu_log_start(Machine *m, GError **err);
void machine_vcpu_log_stop(Machine *m);
void machine_vcpus_resuming(Machine *m);

/* A machine type (-machine NAME): how to build, reset and tear one down. */
typedef struct MachineType {
    const char *name;
    const char *desc;
    Machine *(*create)(const VmConfig *cfg, GError **err);
    /* Back to power-on state (the vCPUs are parked); false leaves the VM unusable. */
    bool (*reset)(Machine *m, GError **err);
    void (*destroy)(Machine *m);
    unsigned (*vcpu_count)(Machine *m);
    KvmVcpu *(*vcpu)(Machine *m, unsigned index);
    /* Press the power button (QMP system_powerdown); NULL if there is none. */
    void (*powerdown)(Machine *m);
} MachineType;

/* The machine types this binary offers, NULL-terminated. */
extern const MachineType *const machine_types[];
const MachineType *machine_type_find(const char *name);
