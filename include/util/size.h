/* Sizes as users write them: "512M", "5G", "1.5G", "4096". */
#pragma once
#include <glib.h>
#include <stdint.h>

/*
 * Parse @str into bytes. Suffixes (binary): B, K/k, M, G, T, P, E. Without a
 * suffix the number is multiplied by @default_unit (QEMU's -m means MiB).
 * A fraction is allowed with a suffix ("1.5G"). Overflow, garbage and
 * negative numbers are errors that quote @str.
 */
gboolean size_parse(const char *str, uint64_t default_unit, uint64_t *out, GError **err);
