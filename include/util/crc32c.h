/* CRC-32C (Castagnoli), as iSCSI and ext4 use it: detects corruption in migration streams. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Continue @crc (start with 0) over @len bytes of @buf. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/*
 * Copy @len bytes from @src to @dst (not overlapping) and continue @crc
 * over them: in one pass where the fastest implementation can (each byte
 * read once), else a vector copy and then the CRC of the copy.
 */
uint32_t crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len);
/* For tests: how many implementations this CPU has (crc32c() uses the fastest), and each by number, also copying. */
unsigned crc32c_implementations(void);
uint32_t crc32c_with(unsigned impl, uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_copy_with(unsigned impl, uint32_t crc, void *dst, const void *src, size_t len);
