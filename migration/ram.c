/*
 * RAM sections (include/migration/ram.h). Payload: u64 first page, u32
 * count, then count records: u8 kind (0 zero, 1 data) followed, for data, by
 * the page's RAM_PAGE_SIZE bytes.
 */
#include "migration/ram.h"
#include "util/error.h"
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

enum { PAGE_ZERO = 0, PAGE_DATA = 1 };
#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)

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

/*
 * Which of @count pages from @host the process never touched: neither in
 * memory nor swapped out (/proc/self/pagemap). Such a page is zero without
 * looking; reading it to find out would fault each one in, which on a big,
 * mostly idle guest is most of a save's and a restore's time. A bit per
 * page in @untouched; none set when pagemap cannot be read.
 */
static void untouched_pages(const uint8_t *host, unsigned count, uint64_t *untouched)
{
    static gsize once;
    static int fd = -1;
    if (g_once_init_enter(&once)) {
        fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        g_once_init_leave(&once, 1);
    }
    memset(untouched, 0, (count + 63) / 64 * 8);
    uint64_t entries[RAM_SECTION_PAGES];
    g_assert(count <= RAM_SECTION_PAGES);
    if (fd < 0 || (uintptr_t)host % RAM_PAGE_SIZE || pread(fd, entries, count * 8, (off_t)((uintptr_t)host / RAM_PAGE_SIZE * 8)) != (ssize_t)(count * 8)) {
        return;
    }
    for (unsigned i = 0; i < count; i++) {
        if (!(entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED))) {
            untouched[i / 64] |= 1ULL << (i % 64);
        }
    }
}

void ram_save_pages(MigWriter *w, const RamBlock *block, uint64_t first, unsigned count, RamStats *stats)
{
    g_assert(count <= RAM_SECTION_PAGES && (first + count) * RAM_PAGE_SIZE <= block->size);
    /* The pages go to the channel from guest RAM; only the small parts are built here. */
    uint8_t head[12], kinds[RAM_SECTION_PAGES];
    struct iovec iov[1 + 2 * RAM_SECTION_PAGES];
    unsigned n = 0, zeros = 0;
    size_t len = sizeof(head);
    uint64_t untouched[RAM_SECTION_PAGES / 64];
    const uint8_t *base = block->host + first * RAM_PAGE_SIZE;
    untouched_pages(base, count, untouched);
    for (unsigned i = 0; i < 8; i++) {
        head[i] = first >> (8 * i);
    }
    for (unsigned i = 0; i < 4; i++) {
        head[8 + i] = count >> (8 * i);
    }
    iov[n++] = (struct iovec){ head, sizeof(head) };
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *page = base + (size_t)i * RAM_PAGE_SIZE;
        bool zero = (untouched[i / 64] >> (i % 64) & 1) || ram_page_is_zero(page);
        kinds[i] = zero ? PAGE_ZERO : PAGE_DATA;
        /* Runs of kind bytes and pages: consecutive kind bytes share one piece. */
        if (n > 1 && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == &kinds[i]) {
            iov[n - 1].iov_len++;
        } else {
            iov[n++] = (struct iovec){ &kinds[i], 1 };
        }
        len++;
        if (!zero) {
            iov[n++] = (struct iovec){ (void *)page, RAM_PAGE_SIZE };
            len += RAM_PAGE_SIZE;
        }
        zeros += zero;
    }
    if (stats) {
        stats->pages += count;
        stats->zero_pages += zeros;
        stats->bytes += len;
    }
    mig_write_section_iov(w, MIG_SECTION_RAM, block->name, 0, 1, iov, n);
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
    uint64_t untouched[RAM_SECTION_PAGES / 64];
    untouched_pages(block->host + first * RAM_PAGE_SIZE, (unsigned)count, untouched);
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
            /* A page the destination never touched is zero already; others may hold its boot image. */
            if (!(untouched[i / 64] >> (i % 64) & 1) && !ram_page_is_zero(page)) {
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
