/* Scatter-gather lists (struct iovec): their size, and copies to and from a flat buffer. */
#pragma once
#include <stddef.h>
#include <sys/uio.h>

size_t iov_size(const struct iovec *iov, unsigned cnt);
/* Copy between a buffer and an iovec array, starting @offset bytes into the array; return bytes copied. */
size_t iov_from_buf(const struct iovec *iov, unsigned cnt, size_t offset, const void *buf, size_t len);
size_t iov_to_buf(const struct iovec *iov, unsigned cnt, size_t offset, void *buf, size_t len);
