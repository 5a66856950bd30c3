/*
 * kvm-probe: what /dev/kvm offers, checked against what Vireo's features
 * need. Prints one line per check and exits 1 if a required one fails.
 *   kvm-probe [--sw-protected=require|skip]
 * With "skip" (the rig runs Debian's packaged kernel) the SW-protected VM
 * check is reported as skipped instead of run.
 */
#include "compat/linux-uapi.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int failures;

static void check(const char *what, int ok, const char *detail)
{
    printf("%s: %s (%s)\n", ok ? "ok" : "FAIL", what, detail);
    failures += !ok;
}

int main(int argc, char **argv)
{
    int require_sw_protected = 1;
    char detail[128];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sw-protected=skip") == 0) {
            require_sw_protected = 0;
        } else if (strcmp(argv[i], "--sw-protected=require") != 0) {
            fprintf(stderr, "kvm-probe: %s: unknown argument\n", argv[i]);
            return 2;
        }
    }
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        printf("FAIL: open /dev/kvm (%s)\n", strerror(errno));
        return 1;
    }
    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    snprintf(detail, sizeof(detail), "version %d", api);
    check("KVM API version 12", api == 12, detail);

    int xen = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_XEN_HVM);
    int xen_need = KVM_XEN_HVM_CONFIG_HYPERCALL_MSR | KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL |
                   KVM_XEN_HVM_CONFIG_SHARED_INFO;
    snprintf(detail, sizeof(detail), "KVM_CAP_XEN_HVM = 0x%x, need 0x%x", xen < 0 ? 0 : xen, xen_need);
    check("Xen HVM: HYPERCALL_MSR, INTERCEPT_HCALL, SHARED_INFO", xen > 0 && (xen & xen_need) == xen_need,
          detail);

    int gmem = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD);
    snprintf(detail, sizeof(detail), "KVM_CAP_GUEST_MEMFD = %d", gmem);
    check("guest_memfd", gmem > 0, detail);

    int types = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
    printf("info: KVM_CAP_VM_TYPES = 0x%x, KVM_CAP_GUEST_MEMFD_FLAGS = 0x%x, "
           "KVM_CAP_USER_MEMORY2 = %d, KVM_CAP_NR_VCPUS = %d\n",
           types < 0 ? 0 : types, ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS),
           ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY2),
           ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS));

    if (!require_sw_protected) {
        printf("skipped: SW-protected VM (type 1): the rig runs Debian's packaged kernel, "
               "which lacks CONFIG_KVM_SW_PROTECTED_VM\n");
    } else {
        int vm = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
        int saved = errno;
        snprintf(detail, sizeof(detail), "%s", vm >= 0 ? "created" : strerror(saved));
        check("SW-protected VM (type 1) can be created", vm >= 0, detail);
        if (vm >= 0) {
            int attrs = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_ATTRIBUTES);
            snprintf(detail, sizeof(detail), "KVM_CAP_MEMORY_ATTRIBUTES = 0x%x", attrs < 0 ? 0 : attrs);
            check("private memory attribute on the SW-protected VM",
                  attrs > 0 && (attrs & KVM_MEMORY_ATTRIBUTE_PRIVATE), detail);
            struct kvm_create_guest_memfd g = { .size = 2 << 20 };
            int fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &g);
            snprintf(detail, sizeof(detail), "%s", fd >= 0 ? "2 MiB" : strerror(errno));
            check("guest_memfd created on the SW-protected VM", fd >= 0, detail);
            if (fd >= 0) {
                close(fd);
            }
            close(vm);
        }
    }
    close(kvm);
    printf("%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
