/*
 * The KVM accelerator: a VM (memory slots, in-kernel irqchip, interrupt
 * lines) and its vCPUs (run loop, register state). Devices never call this;
 * machines do.
 */
#pragma once
#include "hw/core/machine.h"
#include <glib.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct KvmVm KvmVm;
typedef struct KvmVcpu KvmVcpu;

/* Opens /dev/kvm (path overridable for tests) and creates a VM of @type. */
KvmVm *kvm_vm_new(Machine *machine, const char *dev_path, unsigned long type, GError **err);
void kvm_vm_free(KvmVm *vm);
int kvm_sys_fd(KvmVm *vm);
/* The VM file descriptor, for target/ code that saves and restores in-kernel state. */
int kvm_vm_fd(KvmVm *vm);
/* KVM_CHECK_EXTENSION on the VM (falls back to /dev/kvm); <0 is 0. */
int kvm_vm_check_extension(KvmVm *vm, unsigned cap);

/* Map @size bytes of host memory at @hva as guest-physical @gpa. */
bool kvm_vm_add_ram(KvmVm *vm, uint64_t gpa, uint64_t size, void *hva, GError **err);

/*
 * Dirty page logging of every RAM slot (live migration). sync calls @fn
 * for each slot with the pages written since the last sync (a bit per 4 KiB
 * page from @hva) and protects them again, so later writes show next time.
 */
bool kvm_vm_dirty_log_start(KvmVm *vm, GError **err);
bool kvm_vm_dirty_log_sync(KvmVm *vm, MachineDirtyFn fn, void *opaque, GError **err);
void kvm_vm_dirty_log_stop(KvmVm *vm);

/* x86: in-kernel PIC + IOAPIC + PIT, with ISA IRQ 0 routed to IOAPIC pin 2. */
bool kvm_vm_create_x86_irqchip(KvmVm *vm, GError **err);
/* Drive a GSI (level-triggered lines stay set until lowered). */
void kvm_vm_set_irq(KvmVm *vm, unsigned gsi, bool level);

/*
 * MSI delivery. A route gives an MSI message a GSI, which an irqfd binds to
 * an eventfd: every write of the eventfd then injects the message in the
 * kernel, without a userspace exit (and from any thread).
 */
int kvm_vm_msi_route_add(KvmVm *vm, uint64_t addr, uint32_t data, GError **err); /* the GSI, or -1 */
bool kvm_vm_msi_route_update(KvmVm *vm, int gsi, uint64_t addr, uint32_t data, GError **err);
void kvm_vm_msi_route_remove(KvmVm *vm, int gsi);
bool kvm_vm_irqfd(KvmVm *vm, int fd, int gsi, bool assign, GError **err);
/* Inject one MSI now (KVM_SIGNAL_MSI). */
void kvm_vm_signal_msi(KvmVm *vm, uint64_t addr, uint32_t data);
/*
 * Guest writes of @len bytes (1, 2, 4 or 8; 0 for any width, where KVM has
 * KVM_CAP_IOEVENTFD_ANY_LENGTH) to MMIO @addr signal @fd instead
 * of exiting to userspace (ioeventfd). Fails if KVM refuses (e.g. the address
 * is already taken).
 */
bool kvm_vm_ioeventfd(KvmVm *vm, int fd, uint64_t addr, unsigned len, bool assign, GError **err);

typedef enum {
    KVM_VCPU_STOPPED,  /* kicked: the caller asked it to stop */
    KVM_VCPU_SHUTDOWN, /* triple fault: the machine resets (or exits with -no-reboot) */
    KVM_VCPU_ERROR,    /* internal error, failed entry: registers were printed */
} KvmVcpuStop;

KvmVcpu *kvm_vcpu_new(KvmVm *vm, unsigned index, GError **err);
void kvm_vcpu_free(KvmVcpu *vcpu);
int kvm_vcpu_fd(KvmVcpu *vcpu);
unsigned kvm_vcpu_index(KvmVcpu *vcpu);
KvmVm *kvm_vcpu_vm(KvmVcpu *vcpu);
/*
 * Run until the vCPU must stop. Port and MMIO exits are dispatched to the
 * machine's maps with the big lock held. Returns why it stopped.
 */
KvmVcpuStop kvm_vcpu_run(KvmVcpu *vcpu);
/* Make a running (or about to run) kvm_vcpu_run return KVM_VCPU_STOPPED. Any thread. */
void kvm_vcpu_kick(KvmVcpu *vcpu);
/*
 * With the vCPU outside KVM_RUN: its registers as text in QEMU's "info
 * registers" layout, and @count instructions disassembled at guest-linear
 * @addr (CS:RIP when @at_pc), in the mode the vCPU is in.
 */
bool kvm_vcpu_format_registers(KvmVcpu *vcpu, GString *out, GError **err);
bool kvm_vcpu_disassemble(KvmVcpu *vcpu, bool at_pc, uint64_t addr, unsigned count, GString *out, GError **err);
/* Must be called once per thread that runs vCPUs, before kvm_vcpu_run. */
void kvm_vcpu_thread_init(void);
