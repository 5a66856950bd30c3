/* userfaultfd write-protection: see include/util/userfaultfd.h. */
#include "util/userfaultfd.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>


static int open_raw(GError **err)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
        return fd;
    }
    int sys_errno = errno;
    /* Without CAP_SYS_PTRACE the system call may be refused; the device node is the other way in. */
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        close(dev);
        if (fd >= 0) {
            return fd;
        }
    }
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED, "userfaultfd is not available: %s",
                g_strerror(sys_errno));
    return -1;
}

/* The UFFDIO_API handshake, which a descriptor takes once. */
static bool handshake(int fd, uint64_t want, uint64_t *got, GError **err)
{
    struct uffdio_api api = { .api = UFFD_API, .features = want };
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "userfaultfd refused features 0x%" G_GINT64_MODIFIER "x: %s", want, g_strerror(errno));
        return false;
    }
    *got = api.features;
    return true;
}

bool uffd_features(uint64_t *features, GError **err)
{
    int fd = open_raw(err);
    if (fd < 0) {
        return false;
    }
    bool ok = handshake(fd, 0, features, err);
    close(fd);
    return ok;
}

int uffd_open(uint64_t features, GError **err)
{
    int fd = open_raw(err);
    uint64_t got;
    if (fd >= 0 && !handshake(fd, features, &got, err)) {
        close(fd);
        return -1;
    }
    return fd;
}

bool uffd_register_wp(int fd, void *addr, uint64_t len, GError **err)
{
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)addr, .len = len },
        .mode = UFFDIO_REGISTER_MODE_WP,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "userfaultfd cannot write-protect this memory (UFFDIO_REGISTER: %s)", g_strerror(errno));
        return false;
    }
    if (!(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
        uffd_unregister(fd, addr, len, NULL);
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_UNSUPPORTED,
                    "the kernel offers no UFFDIO_WRITEPROTECT for this memory");
        return false;
    }
    return true;
}

bool uffd_unregister(int fd, void *addr, uint64_t len, GError **err)
{
    struct uffdio_range range = { .start = (uintptr_t)addr, .len = len };
    if (ioctl(fd, UFFDIO_UNREGISTER, &range) < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "UFFDIO_UNREGISTER: %s", g_strerror(errno));
        return false;
    }
    return true;
}

bool uffd_write_protect(int fd, void *addr, uint64_t len, bool protect, GError **err)
{
    struct uffdio_writeprotect wp = {
        .range = { .start = (uintptr_t)addr, .len = len },
        .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
    };
    while (ioctl(fd, UFFDIO_WRITEPROTECT, &wp) < 0) {
        if (errno != EAGAIN && errno != EINTR) { /* EAGAIN: the mm changed under it; again */
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "UFFDIO_WRITEPROTECT (%s): %s",
                        protect ? "protect" : "unprotect", g_strerror(errno));
            return false;
        }
    }
    return true;
}

int uffd_read_wp_faults(int fd, uint64_t *addrs, int max, GError **err)
{
    struct uffd_msg msgs[64];
    int n = 0;
    while (n < max) {
        size_t want = sizeof(msgs[0]) * (size_t)MIN(max - n, (int)G_N_ELEMENTS(msgs));
        ssize_t r = read(fd, msgs, want);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                break;
            }
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "reading userfaultfd: %s", g_strerror(errno));
            return -1;
        }
        for (size_t i = 0; i < (size_t)r / sizeof(msgs[0]); i++) {
            if (msgs[i].event == UFFD_EVENT_PAGEFAULT && (msgs[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
                addrs[n++] = msgs[i].arg.pagefault.address;
            }
        }
        if ((size_t)r < want) {
            break;
        }
    }
    return n;
}
