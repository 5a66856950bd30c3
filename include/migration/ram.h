/*
 * Guest RAM in the migration stream: RAM sections of up to
 * RAM_SECTION_PAGES pages each, every page either its 4 KiB or a zero
 * marker. The loader writes only non-zero pages, so a restore into fresh
 * (zero) memory never touches the pages the guest never used.
 */
#pragma once
#include "migration/stream.h"

#define RAM_PAGE_SIZE 4096u
#define RAM_SECTION_PAGES 256u
#define RAM_SECTION_VERSION 2
#define RAM_SECTION_BYTES (RAM_SECTION_PAGES * RAM_PAGE_SIZE)

/* One contiguous piece of guest RAM, named so a stream can say which. */
typedef struct RamBlock {
    const char *name;
    uint8_t *host;
    uint64_t size; /* a multiple of RAM_PAGE_SIZE */
    /*
     * While a migration tracks writes (Machine.dirty_tracking): a bit per
     * page that Vireo itself wrote (a device filling a guest buffer), which
     * KVM's dirty log cannot see. Set atomically, from any thread.
     */
    uint64_t *written;
} RamBlock;

/* 64-bit words of a bitmap with a bit per page of @block. */
static inline uint64_t ram_block_words(const RamBlock *block)
{
    return (block->size / RAM_PAGE_SIZE + 63) / 64;
}

typedef struct Machine Machine;

/* Make @size bytes at @host guest RAM block @name of @m, for migration (the machine owns the memory). */
void ram_block_register(Machine *m, const char *name, uint8_t *host, uint64_t size);
/* The block of @blocks (RamBlock) that holds host address @hva, and its @index (may be NULL); NULL if none. */
RamBlock *ram_block_containing(GPtrArray *blocks, const void *hva, guint *index);
/*
 * Devices call this after writing guest memory at @hva (any thread): while
 * a migration runs, those pages go again. Cheap when nothing tracks.
 */
void ram_mark_dirty(Machine *m, const void *hva, size_t len);

typedef struct RamStats {
    uint64_t pages, zero_pages, bytes;
} RamStats;

/* Count into @stats (may be NULL). */
static inline void ram_stats_add(RamStats *stats, uint64_t pages, uint64_t zero_pages, uint64_t bytes)
{
    if (stats) {
        stats->pages += pages;
        stats->zero_pages += zero_pages;
        stats->bytes += bytes;
    }
}

/* A page's kind in a RAM section. */
enum { RAM_PAGE_ZERO = 0, RAM_PAGE_DATA = 1 };

/*
 * Write pages [first, first + count) of @block (count <= RAM_SECTION_PAGES)
 * as one section: @kinds a RAM_PAGE_* per page, @data (n pieces, n <=
 * RAM_SECTION_PAGES) the bytes of the data pages in order, which must not
 * change until the call returns. @stats (may be NULL) accumulates.
 */
void ram_write_section(MigWriter *w, const RamBlock *block, uint64_t first, unsigned count, const uint8_t *kinds,
                       const struct iovec *data, unsigned n, RamStats *stats);
/*
 * Write pages [first, first + count) of @block (count <= RAM_SECTION_PAGES)
 * as one section, copying them through @scratch (RAM_SECTION_BYTES) so a
 * running guest cannot change them between checksum and send. Pages set in
 * @zero (a bit per page of the block) are zero without looking; NULL: the
 * pages the process never touched are. @stats (may be NULL) accumulates.
 */
void ram_save_pages(MigWriter *w, const RamBlock *block, uint64_t first, unsigned count, const uint64_t *zero,
                    uint8_t *scratch, RamStats *stats);
/*
 * A bit per page of [@host, @host + @pages * RAM_PAGE_SIZE) set in
 * @untouched where the process never touched the page: neither in memory
 * nor swapped out (/proc/self/pagemap). Such a page is zero. None set when
 * pagemap cannot be read.
 */
void ram_untouched_pages(const uint8_t *host, uint64_t pages, uint64_t *untouched);
/* Write every page of @blocks (RamBlock). */
void ram_save_all(MigWriter *w, GPtrArray *blocks, RamStats *stats);

/*
 * A RAM section written straight into a mapped writer's room
 * (mig_writer_is_mapped), in steps, from any thread: ram_section_open
 * finds the pages' kinds (pages set in @zero, a bit per page of the block,
 * are zero without looking; NULL: the pages the process never touched
 * are) and takes the room, NULL after a write error (the writer's, for its
 * next flush); ram_section_copy copies the data pages from guest RAM;
 * ram_section_close checksums the copy and frees; ram_section_fill does
 * both in one pass over the pages; ram_section_discard frees a section of
 * an abandoned stream, unchecksummed. The section holds each page as it was
 * at open (zero) or at the copy (data): a running guest's writes meanwhile
 * are the dirty log's to send again. The CRC is always of the copy, so of
 * exactly what is sent.
 */
typedef struct RamSectionOut RamSectionOut;
RamSectionOut *ram_section_open(MigWriter *w, const RamBlock *block, uint64_t first, unsigned count,
                                const uint64_t *zero, RamStats *stats);
void ram_section_copy(RamSectionOut *o);
void ram_section_close(RamSectionOut *o);
void ram_section_discard(RamSectionOut *o);
void ram_section_fill(RamSectionOut *o);

/* Threads at most, to save or load RAM: one per CPU up to this. */
#define RAM_THREADS 4
/*
 * Sections of guest RAM as ram_save_pages writes them. Into a mapped
 * writer (mig_writer_is_mapped) a thread per CPU takes each section
 * whole: finds its pages' kinds, takes its room in the stream, copies the
 * pages straight from guest RAM into the file and checksums the copy, in
 * whatever order the threads get to them; adding waits while a few
 * sections per thread are queued. ram_saver_wait: every section added is
 * complete in the stream (before a flush, and between passes that may
 * send a page again). ram_saver_take_stats adds what the sections saved
 * so far hold to @into. Inline, through a scratch copy, for other writers.
 */
typedef struct RamSaver RamSaver;
RamSaver *ram_saver_new(MigWriter *w);
void ram_saver_add(RamSaver *s, const RamBlock *block, uint64_t first, unsigned count);
void ram_saver_wait(RamSaver *s);
void ram_saver_take_stats(RamSaver *s, RamStats *into);
void ram_saver_free(RamSaver *s);
/*
 * Read the payload of RAM section @s (its header just read from @r) into
 * the block of the same name in @blocks (RamBlock), checking its CRC. Data
 * pages are read straight into guest RAM; a zero page is written only where
 * the destination's page is not already zero, so a restore never touches
 * memory the guest never used. Fails naming the block and page on anything
 * malformed; guest RAM may then hold part of the section.
 */
bool ram_load_section(MigReader *r, const MigSection *s, GPtrArray *blocks, RamStats *stats, GError **err);
/* Whether a page is all zero (fast: word at a time). */
bool ram_page_is_zero(const uint8_t *page);

/*
 * A stream's RAM sections, loaded as they come: from a mapped reader
 * (mig_reader_is_mapped) on a thread per CPU (up to RAM_THREADS),
 * else inline. Sections in flight never share a page, so a page sent
 * twice (a live migration's later pass) ends as sent last.
 */
typedef struct RamLoader RamLoader;
RamLoader *ram_loader_new(GPtrArray *blocks, const MigReader *r);
/* RAM section @s, its header just read from @r: load it, now or on a thread. False with an error seen so far. */
bool ram_loader_add(RamLoader *l, MigReader *r, const MigSection *s, GError **err);
/*
 * Wait for every section and free @l; false with the failure of the
 * earliest section that failed on a thread. @stats (may be NULL) accumulates.
 */
bool ram_loader_finish(RamLoader *l, RamStats *stats, GError **err);
