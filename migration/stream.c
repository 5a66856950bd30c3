/*
 * The stream format: see include/migration/stream.h and
 * docs/migration-stream.md. Every integer is little-endian.
 *
 *   header:  magic[8] u32 version u32 fingerprint_len fingerprint[] u32 crc
 *   section: u8 kind u8 name_len name[] u32 instance u32 version
 *            u32 payload_len payload[] u32 crc      (crc over all before it)
 *   end:     u8 0xff u32 crc
 */
#include "migration/stream.h"
#include "util/crc32c.h"
#include "util/error.h"
#include "util/page-copy.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define WRITE_BUFFER (1u << 20)
#define FINGERPRINT_MAX 65536

struct MigWriter {
    int fd;
    GByteArray *buf;
    uint64_t bytes;
    int error; /* first errno, sticky */
    /* A regular file is written through a mapping (map_out) of this much from file offset @map_off. */
    uint8_t *map;
    size_t map_len;
    off_t map_off;
    off_t size_before;  /* the file's, which the stream never cuts */
    GMutex lock;        /* for threads that reserve: the members from here, and @buf and @bytes */
    size_t end;         /* bytes of the mapping the stream reaches so far */
    size_t allocated;   /* of the mapping allocated in the file, maybe ahead of @end */
    bool ended;         /* the end marker is in: the file is cut back to it on flush */
};

/* The current offset of @fd and its size, if it is a regular file (not a pipe, socket or device). */
static bool regular_file_at(int fd, off_t *pos, off_t *size)
{
    struct stat st;
    *pos = lseek(fd, 0, SEEK_CUR);
    if (*pos < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        return false;
    }
    *size = st.st_size;
    return true;
}

static off_t page_floor(off_t off)
{
    long page = sysconf(_SC_PAGESIZE);
    return off / page * page;
}

/*
 * Virtual room for a mapped stream (address space only; what is written
 * is allocated as it goes): a stream larger than this fails cleanly.
 */
#define MAP_WINDOW (256ull << 30)

/*
 * A regular file from its current offset, mapped for writing: stores are
 * vector copies (write()'s copy ran at 214 MiB/s into tmpfs in the test
 * rig, where the kernel's `rep movsb` is emulated) and threads can fill
 * separate parts at once (mig_writer_reserve). Space is allocated
 * (fallocate) before it is written, so a full file system is an error,
 * never a SIGBUS. False (a plain writer) for pipes and sockets and where
 * the file system cannot allocate ahead.
 */
static bool map_out(MigWriter *w)
{
    off_t pos, size;
    if (!regular_file_at(w->fd, &pos, &size) || fallocate(w->fd, 0, pos, 1) < 0) {
        return false;
    }
    w->size_before = size;
    w->map_off = page_floor(pos);
    w->map_len = MAP_WINDOW;
    w->map = mmap(NULL, w->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, w->fd, w->map_off);
    if (w->map == MAP_FAILED) {
        w->map = NULL;
        return false;
    }
    w->end = w->allocated = (size_t)(pos - w->map_off);
    return true;
}

MigWriter *mig_writer_new(int fd)
{
    MigWriter *w = g_new0(MigWriter, 1);
    w->fd = fd;
    w->buf = g_byte_array_sized_new(fd >= 0 ? WRITE_BUFFER : 4096);
    g_mutex_init(&w->lock);
    if (fd >= 0) {
        map_out(w);
    }
    return w;
}

void mig_writer_free(MigWriter *w)
{
    if (w) {
        if (w->map) {
            munmap(w->map, w->map_len);
        }
        g_byte_array_unref(w->buf);
        g_mutex_clear(&w->lock);
        g_free(w);
    }
}

/* Allocate the mapping's first @upto bytes in the file; errno on failure. Lock held. */
static int allocate(MigWriter *w, size_t upto)
{
    if (upto > w->allocated) {
        if (fallocate(w->fd, 0, w->map_off + (off_t)w->allocated, (off_t)(upto - w->allocated)) < 0) {
            return errno;
        }
        w->allocated = upto;
    }
    return 0;
}

/* The next @len bytes of a mapped stream, allocated in the file; NULL after an error. Lock held. */
static uint8_t *take_room(MigWriter *w, size_t len)
{
    if (w->error) {
        return NULL;
    }
    if (len > w->map_len - w->end) {
        w->error = EFBIG;
        return NULL;
    }
    w->error = allocate(w, w->end + len);
    if (w->error) {
        return NULL;
    }
    uint8_t *p = w->map + w->end;
    w->end += len;
    return p;
}

/* Buffered bytes into the mapped stream. Lock held. */
static void drain_mapped(MigWriter *w)
{
    uint8_t *p = take_room(w, w->buf->len);
    if (p) {
        memcpy(p, w->buf->data, w->buf->len);
    }
    g_byte_array_set_size(w->buf, 0);
}

static void drain(MigWriter *w)
{
    if (w->map) {
        g_mutex_lock(&w->lock);
        drain_mapped(w);
        g_mutex_unlock(&w->lock);
        return;
    }
    size_t done = 0;
    while (!w->error && done < w->buf->len) {
        ssize_t n = write(w->fd, w->buf->data + done, w->buf->len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            w->error = n < 0 ? errno : EIO;
            break;
        }
        done += n;
    }
    g_byte_array_set_size(w->buf, 0);
}

bool mig_writer_is_mapped(const MigWriter *w)
{
    return w->map != NULL;
}

uint8_t *mig_writer_reserve(MigWriter *w, size_t len)
{
    g_assert(w->map);
    g_mutex_lock(&w->lock);
    drain_mapped(w);
    w->bytes += len;
    uint8_t *p = take_room(w, len);
    g_mutex_unlock(&w->lock);
    return p;
}

uint8_t *mig_writer_allocate(MigWriter *w, size_t ahead)
{
    g_assert(w->map);
    g_mutex_lock(&w->lock);
    uint8_t *p = !w->error && !allocate(w, MIN(w->end + ahead, w->map_len)) ? w->map + w->end : NULL;
    g_mutex_unlock(&w->lock);
    return p;
}

static void put(MigWriter *w, const void *p, size_t len)
{
    w->bytes += len;
    if (w->fd >= 0 && w->buf->len + len > WRITE_BUFFER) {
        drain(w);
        if (len >= WRITE_BUFFER) {
            g_byte_array_append(w->buf, p, len);
            drain(w);
            return;
        }
    }
    g_byte_array_append(w->buf, p, len);
}

static void put_le(GByteArray *a, uint64_t v, unsigned n)
{
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++) {
        b[i] = v >> (8 * i);
    }
    g_byte_array_append(a, b, n);
}

/* Write @iov straight from where it lies (guest RAM), after what is buffered. */
static void put_direct(MigWriter *w, struct iovec *iov, unsigned n)
{
    drain(w);
    if (w->map) {
        size_t len = 0;
        for (unsigned i = 0; i < n; i++) {
            len += iov[i].iov_len;
        }
        g_mutex_lock(&w->lock);
        uint8_t *p = take_room(w, len);
        g_mutex_unlock(&w->lock);
        for (unsigned i = 0; p && i < n; p += iov[i].iov_len, i++) {
            buffer_copy(p, iov[i].iov_base, iov[i].iov_len);
        }
        return;
    }
    while (n && !w->error) {
        ssize_t done = writev(w->fd, iov, (int)MIN(n, (unsigned)IOV_MAX));
        if (done < 0 && errno == EINTR) {
            continue;
        }
        if (done <= 0) {
            w->error = done < 0 ? errno : EIO;
            break;
        }
        while (n && (size_t)done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n) {
            iov->iov_base = (uint8_t *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
}

/* A record: its header bytes, the payload pieces, then @crc (of both). */
static void put_record_iov(MigWriter *w, const uint8_t *head, size_t head_len, const struct iovec *payload,
                           unsigned n, uint32_t crc)
{
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        len += payload[i].iov_len;
    }
    uint8_t tail[4] = { crc, crc >> 8, crc >> 16, crc >> 24 };
    if (w->fd < 0 || len < WRITE_BUFFER / 4) {
        put(w, head, head_len);
        for (unsigned i = 0; i < n; i++) {
            put(w, payload[i].iov_base, payload[i].iov_len);
        }
        put(w, tail, 4);
        return;
    }
    /* Large payloads (RAM) go to the kernel from where they are, without another copy. */
    g_autofree struct iovec *all = g_new(struct iovec, n + 2);
    all[0] = (struct iovec){ (void *)head, head_len };
    memcpy(all + 1, payload, n * sizeof(*payload));
    all[n + 1] = (struct iovec){ tail, 4 };
    w->bytes += head_len + len + 4;
    put_direct(w, all, n + 2);
}

static uint32_t crc_iov(uint32_t crc, const struct iovec *iov, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        crc = crc32c(crc, iov[i].iov_base, iov[i].iov_len);
    }
    return crc;
}

static void put_record(MigWriter *w, GByteArray *rec, const void *payload, size_t len)
{
    struct iovec iov = { (void *)payload, len };
    unsigned n = len ? 1 : 0;
    put_record_iov(w, rec->data, rec->len, &iov, n, crc_iov(crc32c(0, rec->data, rec->len), &iov, n));
}

void mig_write_header(MigWriter *w, const char *fingerprint)
{
    g_autoptr(GByteArray) rec = g_byte_array_new();
    g_byte_array_append(rec, (const uint8_t *)MIG_STREAM_MAGIC, 8);
    put_le(rec, MIG_STREAM_VERSION, 4);
    size_t len = strlen(fingerprint);
    g_assert(len <= FINGERPRINT_MAX);
    put_le(rec, len, 4);
    put_record(w, rec, fingerprint, len);
}

void mig_write_section(MigWriter *w, MigSectionKind kind, const char *name, uint32_t instance, uint32_t version,
                       const void *payload, size_t len)
{
    struct iovec iov = { (void *)payload, len };
    mig_write_section_iov(w, kind, name, instance, version, &iov, len ? 1 : 0);
}

uint32_t mig_section_begin(MigSectionHeader *h, MigSectionKind kind, const char *name, uint32_t instance,
                           uint32_t version, size_t len)
{
    size_t name_len = strlen(name);
    g_assert(name_len < 256 && len <= MIG_SECTION_MAX);
    uint8_t *p = h->bytes;
    *p++ = kind;
    *p++ = (uint8_t)name_len;
    memcpy(p, name, name_len);
    p += name_len;
    const uint32_t words[] = { instance, version, (uint32_t)len };
    for (size_t i = 0; i < G_N_ELEMENTS(words); i++) {
        for (unsigned b = 0; b < 4; b++) {
            *p++ = words[i] >> (8 * b);
        }
    }
    h->len = (unsigned)(p - h->bytes);
    return crc32c(0, h->bytes, h->len);
}

void mig_section_write(MigWriter *w, const MigSectionHeader *h, const struct iovec *payload, unsigned n,
                       uint32_t crc)
{
    put_record_iov(w, h->bytes, h->len, payload, n, crc);
}

void mig_write_section_iov(MigWriter *w, MigSectionKind kind, const char *name, uint32_t instance,
                           uint32_t version, const struct iovec *payload, unsigned n)
{
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        len += payload[i].iov_len;
    }
    MigSectionHeader h;
    uint32_t crc = mig_section_begin(&h, kind, name, instance, version, len);
    mig_section_write(w, &h, payload, n, crc_iov(crc, payload, n));
}

void mig_write_sections(MigWriter *w, GBytes *sections)
{
    gsize len;
    const void *p = g_bytes_get_data(sections, &len);
    put(w, p, len);
}

void mig_write_end(MigWriter *w)
{
    g_autoptr(GByteArray) rec = g_byte_array_new();
    put_le(rec, MIG_SECTION_END, 1);
    put_record(w, rec, NULL, 0);
    w->ended = true;
}

bool mig_writer_flush(MigWriter *w, GError **err)
{
    if (w->fd >= 0) {
        drain(w);
    }
    g_mutex_lock(&w->lock);
    off_t keep = MAX(w->map_off + (off_t)w->end, w->size_before);
    if (w->map && w->ended && !w->error && w->map_off + (off_t)w->allocated > keep) {
        /* What was allocated ahead and not written goes: the file ends where the stream does. */
        if (ftruncate(w->fd, keep) < 0) {
            w->error = errno;
        }
        w->allocated = w->end;
    }
    int error = w->error;
    g_mutex_unlock(&w->lock);
    if (error) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "writing the migration stream failed: %s",
                    g_strerror(error));
        return false;
    }
    return true;
}

uint64_t mig_writer_bytes(const MigWriter *w)
{
    GMutex *lock = (GMutex *)&w->lock; /* threads may be reserving */
    g_mutex_lock(lock);
    uint64_t bytes = w->bytes;
    g_mutex_unlock(lock);
    return bytes;
}

GBytes *mig_writer_data(MigWriter *w)
{
    g_assert(w->fd < 0);
    return g_bytes_new(w->buf->data, w->buf->len);
}

GBytes *mig_writer_take(MigWriter *w)
{
    g_assert(w->fd < 0);
    GBytes *data = g_byte_array_free_to_bytes(w->buf);
    w->buf = g_byte_array_new();
    return data;
}

size_t mig_writer_pending(const MigWriter *w)
{
    return w->buf->len;
}

/* ---- reading ---- */

struct MigReader {
    int fd;
    GBytes *data; /* memory readers */
    size_t pos;
    uint64_t bytes;
    int error;
    bool eof;
    uint32_t crc; /* over the current record so far */
    uint32_t left; /* payload bytes of the current section not read yet */
};

typedef struct Mapping {
    void *base;
    size_t len;
} Mapping;

static void unmap(gpointer p)
{
    Mapping *m = p;
    munmap(m->base, m->len);
    g_free(m);
}

/*
 * The rest of a regular file, mapped: read with vector copies (the
 * kernel's copy in read() ran at 230 MiB/s in the test rig, where its
 * `rep movsb` is emulated), and in pieces that threads can load at once.
 * NULL for pipes, sockets and what cannot be mapped.
 */
static GBytes *map_rest(int fd)
{
    off_t pos, size;
    if (!regular_file_at(fd, &pos, &size) || size <= pos) {
        return NULL;
    }
    off_t base = page_floor(pos);
    Mapping *m = g_new(Mapping, 1);
    m->len = (size_t)(size - base);
    m->base = mmap(NULL, m->len, PROT_READ, MAP_SHARED, fd, base);
    if (m->base == MAP_FAILED) {
        g_free(m);
        return NULL;
    }
    madvise(m->base, m->len, MADV_SEQUENTIAL);
    return g_bytes_new_with_free_func((uint8_t *)m->base + (pos - base), (size_t)(size - pos), unmap, m);
}

MigReader *mig_reader_new_fd(int fd)
{
    MigReader *r = g_new0(MigReader, 1);
    r->fd = fd;
    r->data = map_rest(fd);
    return r;
}

MigReader *mig_reader_new_bytes(GBytes *data)
{
    MigReader *r = g_new0(MigReader, 1);
    r->fd = -1;
    r->data = g_bytes_ref(data);
    return r;
}

void mig_reader_free(MigReader *r)
{
    if (r) {
        if (r->data) {
            g_bytes_unref(r->data);
        }
        g_free(r);
    }
}

uint64_t mig_reader_bytes(const MigReader *r)
{
    return r->bytes;
}

bool mig_reader_is_mapped(const MigReader *r)
{
    return r->data && r->fd >= 0; /* a memory reader has no fd */
}

MigReader *mig_reader_fork(const MigReader *r)
{
    g_assert(r->data);
    MigReader *f = g_memdup2(r, sizeof(*r));
    g_bytes_ref(f->data);
    return f;
}

const uint8_t *mig_reader_peek(const MigReader *r, size_t len)
{
    g_assert(r->data);
    size_t size;
    const uint8_t *d = g_bytes_get_data(r->data, &size);
    return len <= r->left && size - r->pos >= len ? d + r->pos : NULL;
}

/* Exactly @len bytes, or false at end of input / on error. */
static bool get(MigReader *r, void *p, size_t len)
{
    if (r->data) {
        size_t size;
        const uint8_t *d = g_bytes_get_data(r->data, &size);
        if (size - r->pos < len) {
            r->eof = true;
            return false;
        }
        r->crc = crc32c_copy(r->crc, p, d + r->pos, len);
        r->pos += len;
        r->bytes += len;
        return true;
    } else {
        size_t done = 0;
        while (done < len) {
            ssize_t n = read(r->fd, (uint8_t *)p + done, len - done);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                r->eof = n == 0;
                r->error = n < 0 ? errno : 0;
                return false;
            }
            done += n;
        }
    }
    r->bytes += len;
    r->crc = crc32c(r->crc, p, len);
    return true;
}

static bool get_le(MigReader *r, unsigned n, uint64_t *v)
{
    uint8_t b[8];
    if (!get(r, b, n)) {
        return false;
    }
    *v = 0;
    for (unsigned i = 0; i < n; i++) {
        *v |= (uint64_t)b[i] << (8 * i);
    }
    return true;
}

static bool short_read(MigReader *r, GError **err, const char *where)
{
    if (r->error) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "reading the migration stream failed %s: %s", where,
                    g_strerror(r->error));
    } else {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "the migration stream is truncated %s (after %" G_GUINT64_FORMAT " bytes)", where, r->bytes);
    }
    return false;
}

static bool check_crc(MigReader *r, GError **err, const char *what)
{
    uint32_t want = r->crc;
    uint64_t got;
    if (!get_le(r, 4, &got)) {
        return short_read(r, err, what);
    }
    if ((uint32_t)got != want) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "the migration stream is corrupt: checksum mismatch in %s (ending at byte %" G_GUINT64_FORMAT ")",
                    what, r->bytes);
        return false;
    }
    return true;
}

/*
 * The first space-separated item where two fingerprints differ, as
 * "it has X, this VM has Y": the whole strings are too long for one line.
 */
static char *fingerprint_difference(const char *theirs, const char *ours)
{
    g_auto(GStrv) a = g_strsplit(theirs, " ", -1);
    g_auto(GStrv) b = g_strsplit(ours, " ", -1);
    unsigned i = 0;
    while (a[i] && b[i] && strcmp(a[i], b[i]) == 0) {
        i++;
    }
    return g_strdup_printf("it has %s, this VM has %s", a[i] ? a[i] : "nothing more", b[i] ? b[i] : "nothing more");
}

bool mig_read_header(MigReader *r, const char *fingerprint, GError **err)
{
    char magic[8];
    uint64_t version, len;
    r->crc = 0;
    if (!get(r, magic, 8)) {
        return short_read(r, err, "in its header");
    }
    if (memcmp(magic, MIG_STREAM_MAGIC, 8) != 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "not a Vireo migration stream (bad magic)");
        return false;
    }
    if (!get_le(r, 4, &version) || !get_le(r, 4, &len)) {
        return short_read(r, err, "in its header");
    }
    if (version != MIG_STREAM_VERSION) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "migration stream version %u, this Vireo reads version %u", (unsigned)version, MIG_STREAM_VERSION);
        return false;
    }
    if (len > FINGERPRINT_MAX) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "the migration stream is corrupt: a %u-byte header",
                    (unsigned)len);
        return false;
    }
    g_autofree char *theirs = g_malloc0(len + 1);
    if (!get(r, theirs, len)) {
        return short_read(r, err, "in its header");
    }
    if (!check_crc(r, err, "the header")) {
        return false;
    }
    if (strcmp(theirs, fingerprint) != 0) {
        g_autofree char *diff = fingerprint_difference(theirs, fingerprint);
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "the migration stream is from a different machine configuration: %s", diff);
        return false;
    }
    return true;
}

void mig_section_clear(MigSection *s)
{
    g_clear_pointer(&s->name, g_free);
    g_clear_pointer(&s->payload, g_bytes_unref);
}

bool mig_read_section_header(MigReader *r, MigSection *s, GError **err)
{
    uint64_t kind, name_len, instance, version, len;
    char name[256];
    *s = (MigSection){ 0 };
    r->crc = 0;
    r->left = 0;
    if (!get_le(r, 1, &kind)) {
        return short_read(r, err, "before its end marker");
    }
    if (kind == MIG_SECTION_END) {
        s->kind = MIG_SECTION_END;
        return check_crc(r, err, "the end marker");
    }
    if (kind != MIG_SECTION_DEVICE && kind != MIG_SECTION_RAM) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "the migration stream is corrupt: unknown section kind %u at byte %" G_GUINT64_FORMAT,
                    (unsigned)kind, r->bytes - 1);
        return false;
    }
    if (!get_le(r, 1, &name_len) || !get(r, name, name_len) || !get_le(r, 4, &instance) ||
        !get_le(r, 4, &version) || !get_le(r, 4, &len)) {
        return short_read(r, err, "in a section header");
    }
    name[name_len] = '\0';
    if (len > MIG_SECTION_MAX) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "the migration stream is corrupt: section '%s' claims %" G_GUINT64_FORMAT " bytes", name, len);
        return false;
    }
    s->kind = kind;
    s->name = g_strdup(name);
    s->instance = instance;
    s->version = version;
    s->len = len;
    r->left = len;
    return true;
}

static bool payload_short(MigReader *r, const MigSection *s, GError **err)
{
    g_autofree char *where = g_strdup_printf("in section '%s'", s->name);
    return short_read(r, err, where);
}

static bool payload_overrun(const MigSection *s, GError **err)
{
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "section '%s' (%u bytes) is malformed: its contents run past its end",
                s->name, s->len);
    return false;
}

bool mig_read_payload(MigReader *r, const MigSection *s, void *p, size_t len, GError **err)
{
    if (len > r->left) {
        return payload_overrun(s, err);
    }
    if (!get(r, p, len)) {
        return payload_short(r, s, err);
    }
    r->left -= len;
    return true;
}

bool mig_read_payload_iov(MigReader *r, const MigSection *s, const struct iovec *iov, unsigned n, GError **err)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        total += iov[i].iov_len;
    }
    if (total > r->left) {
        return payload_overrun(s, err);
    }
    if (r->data) {
        for (unsigned i = 0; i < n; i++) {
            if (!get(r, iov[i].iov_base, iov[i].iov_len)) {
                return payload_short(r, s, err);
            }
        }
        r->left -= total;
        return true;
    }
    /* Straight into place (guest RAM) with readv, then the checksum over what arrived. */
    g_autofree struct iovec *v = g_memdup2(iov, n * sizeof(*iov));
    struct iovec *cur = v;
    unsigned left = n;
    while (left) {
        ssize_t got = readv(r->fd, cur, (int)MIN(left, (unsigned)IOV_MAX));
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            r->eof = got == 0;
            r->error = got < 0 ? errno : 0;
            return payload_short(r, s, err);
        }
        r->bytes += got;
        while (left && (size_t)got >= cur->iov_len) {
            got -= cur->iov_len;
            cur++;
            left--;
        }
        if (left) {
            cur->iov_base = (uint8_t *)cur->iov_base + got;
            cur->iov_len -= got;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        r->crc = crc32c(r->crc, iov[i].iov_base, iov[i].iov_len);
    }
    r->left -= total;
    return true;
}

bool mig_reader_skip_section(MigReader *r, const MigSection *s, GError **err)
{
    g_assert(r->data);
    size_t size;
    g_bytes_get_data(r->data, &size);
    if (size - r->pos < (size_t)r->left + 4) {
        r->eof = true;
        r->bytes += size - r->pos;
        r->pos = size;
        return payload_short(r, s, err);
    }
    r->pos += (size_t)r->left + 4;
    r->bytes += (size_t)r->left + 4;
    r->left = 0;
    return true;
}

bool mig_read_section_end(MigReader *r, const MigSection *s, GError **err)
{
    if (r->left) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "section '%s' is malformed: %u of its %u bytes are not used",
                    s->name, r->left, s->len);
        return false;
    }
    g_autofree char *what = g_strdup_printf("section '%s'", s->name);
    return check_crc(r, err, what);
}

bool mig_read_section(MigReader *r, MigSection *s, GError **err)
{
    if (!mig_read_section_header(r, s, err)) {
        return false;
    }
    return s->kind == MIG_SECTION_END || mig_read_section_payload(r, s, err);
}

bool mig_read_section_payload(MigReader *r, MigSection *s, GError **err)
{
    g_autofree uint8_t *payload = g_malloc(s->len ? s->len : 1);
    if (!mig_read_payload(r, s, payload, s->len, err) || !mig_read_section_end(r, s, err)) {
        mig_section_clear(s);
        return false;
    }
    s->payload = g_bytes_new_take(g_steal_pointer(&payload), s->len);
    return true;
}
