/*
 * RAM sections (include/migration/ram.h). Payload: u64 first page, u32
 * count, then count records: u8 kind (0 zero, 1 data) followed, for data, by
 * the page's RAM_PAGE_SIZE bytes.
 */
#include "migration/ram.h"
#include "util/error.h"
#include <string.h>

enum { PAGE_ZERO = 0, PAGE_DATA = 1 };

bool ram_page_is_zero(const uint8_t *page)
{
    const uint64_t *w = (const uint64_t *)page;
    for (unsigned i = 0; i < RAM_PAGE_SIZE / 8; i += 8) {
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) {
            return false;
        }
    }
    return true;
}

static void put_le(GByteArray *a, uint64_t v, unsigned n)
{
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++) {
        b[i] = v >> (8 * i);
    }
    g_byte_array_append(a, b, n);
}

void ram_save_pages(MigWriter *w, const RamBlock *block, uint64_t first, unsigned count, RamStats *stats)
{
    g_assert(count <= RAM_SECTION_PAGES && (first + count) * RAM_PAGE_SIZE <= block->size);
    g_autoptr(GByteArray) p = g_byte_array_sized_new(12 + count * (RAM_PAGE_SIZE + 1));
    put_le(p, first, 8);
    put_le(p, count, 4);
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *page = block->host + (first + i) * RAM_PAGE_SIZE;
        bool zero = ram_page_is_zero(page);
        put_le(p, zero ? PAGE_ZERO : PAGE_DATA, 1);
        if (!zero) {
            g_byte_array_append(p, page, RAM_PAGE_SIZE);
        }
        if (stats) {
            stats->pages++;
            stats->zero_pages += zero;
        }
    }
    if (stats) {
        stats->bytes += p->len;
    }
    mig_write_section(w, MIG_SECTION_RAM, block->name, 0, 1, p->data, p->len);
}

void ram_save_all(MigWriter *w, GPtrArray *blocks, RamStats *stats)
{
    for (guint b = 0; b < blocks->len; b++) {
        const RamBlock *block = g_ptr_array_index(blocks, b);
        uint64_t pages = block->size / RAM_PAGE_SIZE;
        for (uint64_t first = 0; first < pages; first += RAM_SECTION_PAGES) {
            ram_save_pages(w, block, first, MIN(RAM_SECTION_PAGES, pages - first), stats);
        }
    }
}

bool ram_load_section(const MigSection *s, GPtrArray *blocks, RamStats *stats, GError **err)
{
    const RamBlock *block = NULL;
    for (guint b = 0; blocks && b < blocks->len && !block; b++) {
        const RamBlock *candidate = g_ptr_array_index(blocks, b);
        block = strcmp(candidate->name, s->name) == 0 ? candidate : NULL;
    }
    if (!block) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "the migration stream has RAM block '%s', this VM has not",
                    s->name);
        return false;
    }
    if (s->version != 1) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "RAM section version %u, this Vireo reads version 1",
                    s->version);
        return false;
    }
    gsize len;
    const uint8_t *p = g_bytes_get_data(s->payload, &len);
    uint64_t first = 0, count = 0;
    if (len < 12) {
        goto malformed;
    }
    for (unsigned i = 0; i < 8; i++) {
        first |= (uint64_t)p[i] << (8 * i);
    }
    for (unsigned i = 0; i < 4; i++) {
        count |= (uint64_t)p[8 + i] << (8 * i);
    }
    p += 12;
    len -= 12;
    uint64_t pages = block->size / RAM_PAGE_SIZE;
    if (count > RAM_SECTION_PAGES || first > pages || count > pages - first) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "RAM block '%s': pages %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " lie outside its %" G_GUINT64_FORMAT
                    " pages", s->name, first, count, pages);
        return false;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (len < 1) {
            goto malformed;
        }
        uint8_t kind = *p++;
        len--;
        uint8_t *page = block->host + (first + i) * RAM_PAGE_SIZE;
        if (kind == PAGE_DATA) {
            if (len < RAM_PAGE_SIZE) {
                goto malformed;
            }
            memcpy(page, p, RAM_PAGE_SIZE);
            p += RAM_PAGE_SIZE;
            len -= RAM_PAGE_SIZE;
        } else if (kind == PAGE_ZERO) {
            /* Reading a page the destination never touched maps the shared zero page: no memory used. */
            if (!ram_page_is_zero(page)) {
                memset(page, 0, RAM_PAGE_SIZE);
            }
        } else {
            goto malformed;
        }
        if (stats) {
            stats->pages++;
            stats->zero_pages += kind == PAGE_ZERO;
        }
    }
    if (len == 0) {
        return true;
    }
malformed:
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "RAM block '%s': malformed section", s->name);
    return false;
}
