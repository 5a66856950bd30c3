/* State shared by the files of accel/kvm/ only. */
#pragma once
#include "accel/kvm.h"
#include <pthread.h>

/* A memory slot as last given to KVM. */
typedef struct KvmSlot {
    uint64_t gpa, size;
    void *hva;
    uint32_t flags;
} KvmSlot;

#define KVM_MAX_RAM_SLOTS 8

struct KvmVm {
    Machine *machine;
    int sys_fd, vm_fd;
    int run_size;
    unsigned nr_slots, max_slots;
    KvmSlot slots[KVM_MAX_RAM_SLOTS];
    bool manual_protect; /* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled */
    /* The GSI routing table as last given to KVM: irqchip pins, then MSI routes. */
    struct kvm_irq_routing_entry *routes;
    unsigned nr_routes, max_routes;
    unsigned long *gsi_used; /* bitmap of GSIs with a route of ours */
    unsigned max_gsi;
};

struct KvmVcpu {
    KvmVm *vm;
    unsigned index;
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    bool thread_known;
    volatile bool stop; /* set by kvm_vcpu_kick */
};

/* Give KVM memory slot @index as @slot describes it (KVM_SET_USER_MEMORY_REGION). */
bool kvm_vm_slot_set(KvmVm *vm, unsigned index, const KvmSlot *slot, GError **err);

/* Print registers and the instructions at RIP (capstone) to stderr. */
void kvm_vcpu_dump_state(KvmVcpu *vcpu, const char *why);

/* accel/kvm/kvm-irq.c: the routing table. */
void kvm_vm_irq_init(KvmVm *vm);
void kvm_vm_route_append(KvmVm *vm, struct kvm_irq_routing_entry e);
void kvm_vm_gsi_claim(KvmVm *vm, unsigned gsi);
bool kvm_vm_routes_commit(KvmVm *vm, GError **err);
