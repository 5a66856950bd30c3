#define G_LOG_DOMAIN "iomap"
#include "hw/core/iomap.h"
#include "util/error.h"
#include <string.h>

#define UNCLAIMED_LOG_LIMIT 64 /* distinct unclaimed addresses logged per map */

typedef struct {
    uint64_t base, size;
    const IoRegionOps *ops;
    void *opaque;
    char *name;
} IoRegion;

struct IoMap {
    char *name;
    GArray *regions; /* IoRegion, sorted by base, non-overlapping */
    GHashTable *unclaimed_seen;
    GMutex lock;     /* guards the table; handlers run outside it */
};

IoMap *io_map_new(const char *name)
{
    IoMap *map = g_new0(IoMap, 1);
    map->name = g_strdup(name);
    map->regions = g_array_new(FALSE, FALSE, sizeof(IoRegion));
    map->unclaimed_seen = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    g_mutex_init(&map->lock);
    return map;
}

void io_map_free(IoMap *map)
{
    if (!map) {
        return;
    }
    for (guint i = 0; i < map->regions->len; i++) {
        g_free(g_array_index(map->regions, IoRegion, i).name);
    }
    g_array_free(map->regions, TRUE);
    g_hash_table_destroy(map->unclaimed_seen);
    g_mutex_clear(&map->lock);
    g_free(map->name);
    g_free(map);
}

/* Index of the first region whose end is above @addr. */
static guint lower_bound(IoMap *map, uint64_t addr)
{
    guint lo = 0, hi = map->regions->len;
    while (lo < hi) {
        guint mid = (lo + hi) / 2;
        IoRegion *r = &g_array_index(map->regions, IoRegion, mid);
        if (r->base + r->size <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

bool io_map_add(IoMap *map, uint64_t base, uint64_t size, const IoRegionOps *ops, void *opaque,
                const char *name, GError **err)
{
    g_assert(size > 0 && base + size - 1 >= base && ops);
    g_mutex_lock(&map->lock);
    guint i = lower_bound(map, base);
    if (i < map->regions->len) {
        IoRegion *r = &g_array_index(map->regions, IoRegion, i);
        if (r->base < base + size) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "%s: region %s [0x%" G_GINT64_MODIFIER "x, +0x%" G_GINT64_MODIFIER
                        "x) overlaps %s at 0x%" G_GINT64_MODIFIER "x",
                        map->name, name, base, size, r->name, r->base);
            g_mutex_unlock(&map->lock);
            return false;
        }
    }
    IoRegion nr = { base, size, ops, opaque, g_strdup(name) };
    g_array_insert_val(map->regions, i, nr);
    g_mutex_unlock(&map->lock);
    return true;
}

void io_map_remove(IoMap *map, uint64_t base)
{
    g_mutex_lock(&map->lock);
    guint i = lower_bound(map, base);
    if (i < map->regions->len && g_array_index(map->regions, IoRegion, i).base == base) {
        g_free(g_array_index(map->regions, IoRegion, i).name);
        g_array_remove_index(map->regions, i);
    }
    g_mutex_unlock(&map->lock);
}

static bool lookup(IoMap *map, uint64_t addr, IoRegion *out)
{
    bool found = false;
    g_mutex_lock(&map->lock);
    guint i = lower_bound(map, addr);
    if (i < map->regions->len) {
        IoRegion *r = &g_array_index(map->regions, IoRegion, i);
        if (r->base <= addr) {
            *out = *r;
            found = true;
        }
    }
    g_mutex_unlock(&map->lock);
    return found;
}

static void log_unclaimed(IoMap *map, uint64_t addr, unsigned len, bool is_write)
{
    gint64 key = (gint64)addr;
    bool first;
    g_mutex_lock(&map->lock);
    first = g_hash_table_size(map->unclaimed_seen) < UNCLAIMED_LOG_LIMIT &&
            g_hash_table_add(map->unclaimed_seen, g_memdup2(&key, sizeof(key)));
    g_mutex_unlock(&map->lock);
    if (first) {
        g_message("%s: unclaimed %u-byte %s at 0x%" G_GINT64_MODIFIER "x", map->name, len,
                  is_write ? "write" : "read", addr);
    }
}

/* One access of @size within one region; sizes already legal for it. */
static void region_access(const IoRegion *r, uint64_t off, uint8_t *data, unsigned size, bool is_write)
{
    uint64_t v = 0;
    if (is_write) {
        memcpy(&v, data, size);
        if (r->ops->write) {
            r->ops->write(r->opaque, off, v, size);
        }
    } else {
        v = r->ops->read ? r->ops->read(r->opaque, off, size) : ~0ULL;
        memcpy(data, &v, size);
    }
}

bool io_map_dispatch(IoMap *map, uint64_t addr, uint8_t *data, unsigned len, bool is_write)
{
    IoRegion r;
    if (!lookup(map, addr, &r) || addr + len > r.base + r.size) {
        if (!is_write) {
            memset(data, 0xff, len);
        }
        log_unclaimed(map, addr, len, is_write);
        return false;
    }
    unsigned min = r.ops->min_size ? r.ops->min_size : 1;
    unsigned max = r.ops->max_size ? r.ops->max_size : 8;
    uint64_t off = addr - r.base;

    if (len >= min && len <= max) {
        region_access(&r, off, data, len, is_write);
    } else if (len > max) {
        for (unsigned done = 0; done < len; done += max) {
            region_access(&r, off + done, data + done, MIN(max, len - done), is_write);
        }
    } else {
        /* Widen to min: read the aligned unit, patch our bytes, write back. */
        uint64_t base = off & ~(uint64_t)(min - 1);
        unsigned shift = off - base;
        uint8_t unit[8] = { 0 };
        region_access(&r, base, unit, min, false);
        if (is_write) {
            memcpy(unit + shift, data, len);
            region_access(&r, base, unit, min, true);
        } else {
            memcpy(data, unit + shift, len);
        }
    }
    return true;
}
