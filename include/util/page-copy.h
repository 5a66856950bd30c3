/*
 * Copying guest pages. glibc's memcpy moves a 4 KiB page with `rep movsb`,
 * which hardware runs at full speed but the test rig's emulated CPU runs
 * byte by byte: 27 MiB/s there, against 1300 MiB/s for a loop of 32-byte
 * vector moves (build/micro measurements in docs/migration.md).
 */
#pragma once
#include <stddef.h>

/* Copy @len bytes (a multiple of 128) between non-overlapping buffers. */
void page_copy(void *dst, const void *src, size_t len);
/* Any length: page_copy where @len allows, memcpy for the odd rest of a stream's small records. */
void buffer_copy(void *dst, const void *src, size_t len);
