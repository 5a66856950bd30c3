#define G_LOG_DOMAIN "kvm"
#include "accel/kvm-internal.h"
#include "util/error.h"
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* The signal that knocks a vCPU thread out of KVM_RUN. */
#define KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
    /* Nothing: its only job is to make KVM_RUN return EINTR. */
}

void kvm_vcpu_thread_init(void)
{
    struct sigaction sa = { .sa_handler = kick_handler }; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(KICK_SIGNAL, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

KvmVcpu *kvm_vcpu_new(KvmVm *vm, unsigned index, GError **err)
{
    g_autofree KvmVcpu *vcpu = g_new0(KvmVcpu, 1);
    vcpu->vm = vm;
    vcpu->index = index;
    vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (vcpu->fd < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "KVM: cannot create vCPU %u: %s", index,
                    g_strerror(errno));
        return NULL;
    }
    vcpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
    if (vcpu->run == MAP_FAILED) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "KVM: cannot map vCPU %u's run area: %s", index,
                    g_strerror(errno));
        close(vcpu->fd);
        return NULL;
    }
    return g_steal_pointer(&vcpu);
}

void kvm_vcpu_free(KvmVcpu *vcpu)
{
    if (!vcpu) {
        return;
    }
    munmap(vcpu->run, vcpu->vm->run_size);
    close(vcpu->fd);
    g_free(vcpu);
}

int kvm_vcpu_fd(KvmVcpu *vcpu)
{
    return vcpu->fd;
}

unsigned kvm_vcpu_index(KvmVcpu *vcpu)
{
    return vcpu->index;
}

KvmVm *kvm_vcpu_vm(KvmVcpu *vcpu)
{
    return vcpu->vm;
}

void kvm_vcpu_kick(KvmVcpu *vcpu)
{
    vcpu->stop = true;
    /* immediate_exit covers a kick that lands just before KVM_RUN is entered. */
    __atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (vcpu->thread_known) {
        pthread_kill(vcpu->thread, KICK_SIGNAL);
    }
}

static void handle_io(KvmVcpu *vcpu)
{
    struct kvm_run *run = vcpu->run;
    Machine *m = vcpu->vm->machine;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    bool is_write = run->io.direction == KVM_EXIT_IO_OUT;

    g_mutex_lock(&m->lock);
    for (uint32_t i = 0; i < run->io.count; i++) {
        io_map_dispatch(m->pio, run->io.port, data + i * run->io.size, run->io.size, is_write);
    }
    g_mutex_unlock(&m->lock);
}

static void handle_mmio(KvmVcpu *vcpu)
{
    struct kvm_run *run = vcpu->run;
    Machine *m = vcpu->vm->machine;

    g_mutex_lock(&m->lock);
    io_map_dispatch(m->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len, run->mmio.is_write);
    g_mutex_unlock(&m->lock);
}

/*
 * KVM stops with KVM_INTERNAL_ERROR_DELIVERY_EV when an exit that needs its
 * instruction emulator (MMIO) reports an event being delivered at the same
 * time. The rig's emulated SVM reports that now and then for an ordinary
 * MMIO store (a virtio kick) while an interrupt is injected. KVM has put the
 * event back in its queue and the instruction was not executed, so entering
 * again delivers the event and retries the store. A guest that really does
 * MMIO while delivering an event (an IDT in MMIO) keeps failing: after a few
 * tries in a row it is the internal error it always was.
 */
#define DELIVERY_EV_RETRIES 8

KvmVcpuStop kvm_vcpu_run(KvmVcpu *vcpu)
{
    struct kvm_run *run = vcpu->run;
    unsigned delivery_retries = 0;

    vcpu->thread = pthread_self();
    __atomic_store_n(&vcpu->thread_known, true, __ATOMIC_SEQ_CST);
    for (;;) {
        if (vcpu->stop) {
            vcpu->stop = false;
            __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
            return KVM_VCPU_STOPPED;
        }
        if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            g_autofree char *why = g_strdup_printf("KVM_RUN failed: %s", g_strerror(errno));
            kvm_vcpu_dump_state(vcpu, why);
            return KVM_VCPU_ERROR;
        }
        if (run->exit_reason != KVM_EXIT_INTERNAL_ERROR) {
            delivery_retries = 0;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            handle_io(vcpu);
            break;
        case KVM_EXIT_MMIO:
            handle_mmio(vcpu);
            break;
        case KVM_EXIT_SHUTDOWN:
            return KVM_VCPU_SHUTDOWN;
        case KVM_EXIT_SYSTEM_EVENT:
            if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ||
                run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
                return KVM_VCPU_SHUTDOWN;
            }
            g_message("vCPU %u: system event %u ignored", vcpu->index, run->system_event.type);
            break;
        case KVM_EXIT_INTR:
            break;
        case KVM_EXIT_INTERNAL_ERROR: {
            if (run->internal.suberror == KVM_INTERNAL_ERROR_DELIVERY_EV &&
                delivery_retries++ < DELIVERY_EV_RETRIES) {
                g_debug("vCPU %u: KVM could not emulate during event delivery; entering again", vcpu->index);
                break;
            }
            g_autofree char *why = g_strdup_printf("KVM internal error, suberror %u",
                                                   run->internal.suberror);
            kvm_vcpu_dump_state(vcpu, why);
            return KVM_VCPU_ERROR;
        }
        case KVM_EXIT_FAIL_ENTRY: {
            g_autofree char *why = g_strdup_printf(
                "KVM entry failed, hardware reason 0x%llx",
                (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            kvm_vcpu_dump_state(vcpu, why);
            return KVM_VCPU_ERROR;
        }
        default: {
            g_autofree char *why = g_strdup_printf("unexpected KVM exit %u", run->exit_reason);
            kvm_vcpu_dump_state(vcpu, why);
            return KVM_VCPU_ERROR;
        }
        }
    }
}
