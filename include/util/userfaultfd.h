/*
 * userfaultfd write-protection, as a background snapshot uses it: register
 * ranges for write-protect faults, protect and unprotect them, read the
 * faults. Descriptors are non-blocking and close-on-exec; errors name the
 * kernel feature or the ioctl that failed.
 */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * The features this kernel's userfaultfd offers (UFFD_FEATURE_*), or false
 * with @err saying why userfaultfd cannot be used at all.
 */
bool uffd_features(uint64_t *features, GError **err);
/* A new descriptor with @features enabled; -1 and @err if the kernel refuses. */
int uffd_open(uint64_t features, GError **err);
/* Register [@addr, @addr+@len) for write-protect faults. */
bool uffd_register_wp(int fd, void *addr, uint64_t len, GError **err);
bool uffd_unregister(int fd, void *addr, uint64_t len, GError **err);
/*
 * Protect or unprotect [@addr, @addr+@len). Unprotecting wakes the threads
 * that wait on a fault in the range.
 */
bool uffd_write_protect(int fd, void *addr, uint64_t len, bool protect, GError **err);
/*
 * The addresses of up to @max pending write-protect faults, without
 * blocking: how many (0 if none), or -1 with @err.
 */
int uffd_read_wp_faults(int fd, uint64_t *addrs, int max, GError **err);
