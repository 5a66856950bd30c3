/* CRC-32C (Castagnoli), as iSCSI and ext4 use it: detects corruption in migration streams. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Continue @crc (start with 0) over @len bytes of @buf. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The same while copying @src to @dst, in one pass: the checksum is of exactly what @dst got. */
uint32_t crc32c_copy(uint32_t crc, void *dst, const void *src, size_t len);
/* The table-driven implementation crc32c() uses where it beats the CPU's instruction (tests check both). */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);
