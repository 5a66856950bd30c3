/*
 * One trap signature and one lookup for port I/O and MMIO: a sorted table of
 * regions, each with the access sizes it implements. The vCPU loop hands
 * every PIO/MMIO exit to io_map_dispatch().
 */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct IoRegionOps {
    /* @offset is relative to the region's base; @size is 1, 2, 4 or 8. */
    uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
    void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned size);
    /*
     * Sizes the handlers implement (0 means 1 and 8). A wider guest access
     * is split into several of max_size; a narrower one is widened to
     * min_size (read-modify-write for writes), so a handler never sees a
     * size outside [min_size, max_size].
     */
    unsigned min_size, max_size;
} IoRegionOps;

typedef struct IoMap IoMap;

IoMap *io_map_new(const char *name);
void io_map_free(IoMap *map);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(IoMap, io_map_free)

/* Claim [base, base+size). Overlapping an existing region is an error naming both. */
bool io_map_add(IoMap *map, uint64_t base, uint64_t size, const IoRegionOps *ops, void *opaque,
                const char *name, GError **err);
/* Release the region that starts at @base (no-op if none). */
void io_map_remove(IoMap *map, uint64_t base);

/*
 * Perform a guest access of @len bytes (1..8) at @addr; @data is
 * little-endian. Returns false if no region claims the address: reads then
 * return all ones, writes are dropped, and the first such access to each
 * address is logged (rate-limited), never fatal.
 */
bool io_map_dispatch(IoMap *map, uint64_t addr, uint8_t *data, unsigned len, bool is_write);
