/* State shared by the files of accel/kvm/ only. */
#pragma once
#include "accel/kvm.h"
#include <pthread.h>

struct KvmVm {
    Machine *machine;
    int sys_fd, vm_fd;
    int run_size;
    unsigned nr_slots, max_slots;
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

/* Print registers and the instructions at RIP (capstone) to stderr. */
void kvm_vcpu_dump_state(KvmVcpu *vcpu, const char *why);
