/*
 * The migration stream (docs/migration-stream.md): a header with magic,
 * version and the machine fingerprint, then sections each carrying its own
 * CRC-32C, then an end marker. Writers and readers work over a file
 * descriptor (file, pipe, socket: every migration channel is one) or, for
 * tests and fuzzing, over memory.
 */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define MIG_STREAM_MAGIC "VIREOVM\n"
#define MIG_STREAM_VERSION 1
/* No section is larger: a corrupt length cannot make the reader allocate more. */
#define MIG_SECTION_MAX (64u << 20)

typedef enum {
    MIG_SECTION_DEVICE = 1, /* a vmstate description: name, instance, version */
    MIG_SECTION_RAM = 2,    /* guest pages, see migration/ram.c */
    MIG_SECTION_END = 0xff,
} MigSectionKind;

typedef struct MigWriter MigWriter;
typedef struct MigReader MigReader;

/* Write to @fd (not closed by the writer), or to memory when @fd < 0 (mig_writer_data). */
MigWriter *mig_writer_new(int fd);
void mig_writer_free(MigWriter *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigWriter, mig_writer_free)
void mig_write_header(MigWriter *w, const char *fingerprint);
void mig_write_section(MigWriter *w, MigSectionKind kind, const char *name, uint32_t instance, uint32_t version,
                       const void *payload, size_t len);
/* The same with the payload in pieces, written without copying them where it is large. */
void mig_write_section_iov(MigWriter *w, MigSectionKind kind, const char *name, uint32_t instance,
                           uint32_t version, const struct iovec *payload, unsigned n);
/*
 * A section whose CRC the caller computes as it produces the payload (guest
 * pages copied out of a running guest: the CRC must be of the copy that is
 * sent, not of memory the guest may change meanwhile). mig_section_begin
 * builds the header for @len payload bytes and returns the CRC over it;
 * continue that CRC over the payload in order, then mig_section_write.
 */
typedef struct MigSectionHeader {
    uint8_t bytes[2 + 255 + 12];
    unsigned len;
} MigSectionHeader;
uint32_t mig_section_begin(MigSectionHeader *h, MigSectionKind kind, const char *name, uint32_t instance,
                           uint32_t version, size_t len);
void mig_section_write(MigWriter *w, const MigSectionHeader *h, const struct iovec *payload, unsigned n,
                       uint32_t crc);
/* Sections a memory writer framed earlier (mig_writer_data), appended as they are. */
void mig_write_sections(MigWriter *w, GBytes *sections);
void mig_write_end(MigWriter *w);
/*
 * A writer to a regular file maps it (mig_writer_new): mig_writer_reserve
 * then takes the stream's next @len bytes for the caller to fill, from any
 * thread, before the next flush; NULL after a write error (sticky).
 */
bool mig_writer_is_mapped(const MigWriter *w);
uint8_t *mig_writer_reserve(MigWriter *w, size_t len);
/*
 * A mapped stream's next @ahead bytes (a size known roughly), allocated
 * in the file in one go: where they are mapped, for the caller to fault
 * in before threads reserve there (the kernel clears each new page, which
 * then need not happen under a vCPU waiting for a copy); NULL if there is
 * no room. What the stream does not use is cut off after its end marker
 * (mig_write_end).
 */
uint8_t *mig_writer_allocate(MigWriter *w, size_t ahead);
/* Push buffered bytes out; false with the first write error (sticky) naming the channel. */
bool mig_writer_flush(MigWriter *w, GError **err);
uint64_t mig_writer_bytes(const MigWriter *w);
GBytes *mig_writer_data(MigWriter *w); /* memory writers only */
/* A memory writer's bytes so far, leaving it empty; whole sections, if taken between them. */
GBytes *mig_writer_take(MigWriter *w);
/* Bytes buffered and not yet written (for a memory writer: not yet taken). */
size_t mig_writer_pending(const MigWriter *w);

typedef struct MigSection {
    MigSectionKind kind;
    char *name;
    uint32_t instance, version;
    uint32_t len;    /* payload bytes */
    GBytes *payload; /* mig_read_section only */
} MigSection;
void mig_section_clear(MigSection *s);

MigReader *mig_reader_new_fd(int fd);
MigReader *mig_reader_new_bytes(GBytes *data);
void mig_reader_free(MigReader *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigReader, mig_reader_free)
/* Check magic, version and that the stream's fingerprint is @fingerprint. */
bool mig_read_header(MigReader *r, const char *fingerprint, GError **err);
/* The next section with its payload, its CRC checked; an END section ends the stream. */
bool mig_read_section(MigReader *r, MigSection *s, GError **err);
/*
 * The same in steps, for a payload that goes straight where it belongs
 * (guest RAM): the header, then exactly s->len bytes in pieces, then the end
 * (which checks every byte was read and the CRC). What the pieces were
 * read into is only trustworthy once mig_read_section_end succeeded.
 */
bool mig_read_section_header(MigReader *r, MigSection *s, GError **err);
/* After the header: the whole payload into s->payload, and the end. */
bool mig_read_section_payload(MigReader *r, MigSection *s, GError **err);
bool mig_read_payload(MigReader *r, const MigSection *s, void *p, size_t len, GError **err);
bool mig_read_payload_iov(MigReader *r, const MigSection *s, const struct iovec *iov, unsigned n, GError **err);
bool mig_read_section_end(MigReader *r, const MigSection *s, GError **err);
uint64_t mig_reader_bytes(const MigReader *r);
/*
 * A reader from a regular file maps it (mig_reader_new_fd): its sections
 * can then be handed to other threads. mig_reader_fork: an independent
 * reader at the same place (inside a section, after its header: the fork
 * reads the rest of it, the original skips it). mig_reader_peek: the next
 * @len bytes of the current section without reading them, or NULL.
 */
bool mig_reader_is_mapped(const MigReader *r);
MigReader *mig_reader_fork(const MigReader *r);
const uint8_t *mig_reader_peek(const MigReader *r, size_t len);
/* Past the rest of the current section and its CRC, unchecked (a fork checks them). */
bool mig_reader_skip_section(MigReader *r, const MigSection *s, GError **err);
