/*
 * KVM's dirty page log, for live migration. With manual protection
 * (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) reading the log does not re-protect
 * pages; we clear exactly the pages we read, so the kernel never walks a
 * slot's whole bitmap to re-protect what did not change.
 */
#define G_LOG_DOMAIN "kvm"
#include "accel/kvm.h"
#include "accel/kvm-internal.h"
#include "util/error.h"
#include <errno.h>
#include <sys/ioctl.h>

static bool set_slot_flags(KvmVm *vm, unsigned index, uint32_t flags, GError **err)
{
    KvmSlot slot = vm->slots[index];
    slot.flags = flags;
    if (!kvm_vm_slot_set(vm, index, &slot, err)) {
        g_prefix_error(err, "dirty logging of slot %u: ", index);
        return false;
    }
    vm->slots[index].flags = flags;
    return true;
}

bool kvm_vm_dirty_log_start(KvmVm *vm, GError **err)
{
    if (!vm->manual_protect && kvm_vm_check_extension(vm, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)) {
        struct kvm_enable_cap cap = {
            .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
            .args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE,
        };
        vm->manual_protect = ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
    }
    for (unsigned i = 0; i < vm->nr_slots; i++) {
        if (!set_slot_flags(vm, i, vm->slots[i].flags | KVM_MEM_LOG_DIRTY_PAGES, err)) {
            kvm_vm_dirty_log_stop(vm);
            return false;
        }
    }
    return true;
}

void kvm_vm_dirty_log_stop(KvmVm *vm)
{
    for (unsigned i = 0; i < vm->nr_slots; i++) {
        g_autoptr(GError) err = NULL;
        if ((vm->slots[i].flags & KVM_MEM_LOG_DIRTY_PAGES) &&
            !set_slot_flags(vm, i, vm->slots[i].flags & ~KVM_MEM_LOG_DIRTY_PAGES, &err)) {
            g_warning("%s", err->message);
        }
    }
}

bool kvm_vm_dirty_log_sync(KvmVm *vm, MachineDirtyFn fn, void *opaque, GError **err)
{
    for (unsigned i = 0; i < vm->nr_slots; i++) {
        KvmSlot *s = &vm->slots[i];
        if (!(s->flags & KVM_MEM_LOG_DIRTY_PAGES)) {
            continue;
        }
        uint64_t pages = s->size / 4096;
        g_autofree uint64_t *bitmap = g_new0(uint64_t, (pages + 63) / 64);
        struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = bitmap };
        if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "KVM: KVM_GET_DIRTY_LOG of slot %u: %s", i,
                        g_strerror(errno));
            return false;
        }
        if (vm->manual_protect) {
            /* Protect again what we are about to send: a write after this shows in the next read. */
            struct kvm_clear_dirty_log clear = {
                .slot = i, .first_page = 0, .num_pages = (uint32_t)pages, .dirty_bitmap = bitmap,
            };
            if (ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clear) < 0) {
                g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "KVM: KVM_CLEAR_DIRTY_LOG of slot %u: %s", i,
                            g_strerror(errno));
                return false;
            }
        }
        fn(s->hva, pages, bitmap, opaque);
    }
    return true;
}
