/*
 * Device state tables and the stream format: what is saved loads back
 * identically, older versions and optional subsections are honoured, and a
 * truncated, corrupted or foreign stream is refused with a clear error
 * at every byte position.
 */
#include "migration/ram.h"
#include "migration/stream.h"
#include "migration/vmstate.h"
#include "util/crc32c.h"
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    uint16_t lo;
    uint64_t hi;
} Pair;

typedef struct {
    uint8_t a;
    uint16_t b;
    uint32_t c;
    uint64_t d;
    bool flag;
    uint32_t regs[4];
    uint8_t blob[5];
    Pair pairs[2];
    uint32_t added_in_v2;
    bool extra_needed;
    uint64_t extra;
    int post_loads;
} Dev;

static const VMStateField pair_fields[] = {
    VMSTATE_UINT16(Pair, lo),
    VMSTATE_UINT64(Pair, hi),
    VMSTATE_END,
};
static const VMStateDescription pair_vmsd = { .name = "pair", .version = 1, .fields = pair_fields };

static bool extra_needed(void *opaque)
{
    return ((Dev *)opaque)->extra_needed;
}

static const VMStateField extra_fields[] = {
    VMSTATE_UINT64(Dev, extra),
    VMSTATE_END,
};
static const VMStateDescription extra_vmsd = {
    .name = "dev/extra", .version = 1, .fields = extra_fields, .needed = extra_needed,
};

static bool dev_post_load(void *opaque, int version, GError **err)
{
    ((Dev *)opaque)->post_loads++;
    return true;
}

static const VMStateField dev_fields[] = {
    VMSTATE_UINT8(Dev, a),
    VMSTATE_UINT16(Dev, b),
    VMSTATE_UINT32(Dev, c),
    VMSTATE_UINT64(Dev, d),
    VMSTATE_BOOL(Dev, flag),
    VMSTATE_UINT32_ARRAY(Dev, regs),
    VMSTATE_BUFFER(Dev, blob),
    VMSTATE_STRUCT_ARRAY(Dev, pairs, pair_vmsd, Pair),
    VMSTATE_UINT32_V(Dev, added_in_v2, 2),
    VMSTATE_END,
};
static const VMStateDescription *const dev_subsections[] = { &extra_vmsd, NULL };
static const VMStateDescription dev_vmsd = {
    .name = "dev", .version = 2, .minimum_version = 1, .fields = dev_fields,
    .subsections = dev_subsections, .post_load = dev_post_load,
};

static Dev sample(void)
{
    return (Dev){
        .a = 0x11, .b = 0x2233, .c = 0x44556677, .d = 0x8899aabbccddeeffULL, .flag = true,
        .regs = { 1, 2, 3, 4 }, .blob = "blob", .pairs = { { 5, 6 }, { 7, 8 } },
        .added_in_v2 = 99, .extra_needed = true, .extra = 0x1234,
    };
}

static GByteArray *save(Dev *d)
{
    GByteArray *out = g_byte_array_new();
    g_autoptr(GError) err = NULL;
    g_assert_true(vmstate_save(&dev_vmsd, d, out, &err));
    g_assert_no_error(err);
    return out;
}

static void test_crc32c(void)
{
    /* Every implementation this CPU has (crc32c() picks one), across the fast paths and every alignment. */
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(i * 37 + 11);
    }
    const char *s = "The quick brown fox jumps over the lazy dog";
    for (unsigned k = 0; k < crc32c_implementations(); k++) {
        g_assert_cmphex(crc32c_with(k, 0, "123456789", 9), ==, 0xe3069283);
        g_assert_cmphex(crc32c_with(k, crc32c_with(k, 0, s, 13), s + 13, strlen(s) - 13), ==,
                        crc32c_with(k, 0, s, strlen(s)));
        for (size_t off = 0; off < 40; off++) {
            for (size_t len = 0; len < 100; len += 7) {
                g_assert_cmphex(crc32c_with(k, 5, buf + off, len), ==, crc32c_with(0, 5, buf + off, len));
            }
            g_assert_cmphex(crc32c_with(k, 0, buf + off, sizeof(buf) - off), ==,
                            crc32c_with(0, 0, buf + off, sizeof(buf) - off));
        }
    }
    g_assert_cmphex(crc32c(0, buf, sizeof(buf)), ==, crc32c_with(0, 0, buf, sizeof(buf)));
    /* A copy and its CRC, by each implementation and as chosen: the same CRC, the same bytes, nothing written past them. */
    for (unsigned impl = 0; impl <= crc32c_implementations(); impl++) {
        for (size_t off = 0; off < 40; off += 3) {
            for (size_t len = 0; len + off <= sizeof(buf); len += 61) {
                uint8_t dst[sizeof(buf) + 1];
                memset(dst, 0xa5, sizeof(dst));
                uint32_t crc = impl < crc32c_implementations() ? crc32c_copy_with(impl, 9, dst, buf + off, len)
                                                                : crc32c_copy(9, dst, buf + off, len);
                g_assert_cmphex(crc, ==, crc32c_with(0, 9, buf + off, len));
                g_assert_cmpmem(dst, len, buf + off, len);
                g_assert_cmpuint(dst[len], ==, 0xa5);
            }
        }
    }
}

static void test_round_trip(void)
{
    Dev in = sample(), out = { 0 };
    g_autoptr(GByteArray) b = save(&in);
    g_autoptr(GError) err = NULL;
    g_assert_true(vmstate_load(&dev_vmsd, &out, 2, b->data, b->len, &err));
    g_assert_no_error(err);
    g_assert_cmpint(out.post_loads, ==, 1);
    out.post_loads = 0;
    out.extra_needed = true; /* not itself migrated */
    g_assert_cmpmem(&in, sizeof(in), &out, sizeof(out));
}

static void test_subsection_optional(void)
{
    Dev in = sample(), out = { .extra = 7 };
    in.extra_needed = false;
    g_autoptr(GByteArray) b = save(&in);
    g_autoptr(GError) err = NULL;
    g_assert_true(vmstate_load(&dev_vmsd, &out, 2, b->data, b->len, &err));
    g_assert_cmpuint(out.extra, ==, 7); /* untouched */
}

static void test_older_version(void)
{
    /* A version 1 stream has no added_in_v2: build one by hand from a v2 save. */
    Dev in = sample(), out = { .added_in_v2 = 5 };
    in.extra_needed = false;
    g_autoptr(GByteArray) b = save(&in);
    /* v2 layout: ... pairs, added_in_v2 (4 bytes), end-of-subsections (1 byte). */
    g_byte_array_remove_range(b, b->len - 5, 4);
    g_autoptr(GError) err = NULL;
    g_assert_true(vmstate_load(&dev_vmsd, &out, 1, b->data, b->len, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(out.added_in_v2, ==, 5);
    g_assert_cmpuint(out.c, ==, in.c);
    g_assert_false(vmstate_load(&dev_vmsd, &out, 3, b->data, b->len, &err));
    g_assert_nonnull(strstr(err->message, "version 3, this Vireo loads versions 1 to 2"));
}

static void test_vmstate_truncated_everywhere(void)
{
    Dev in = sample();
    g_autoptr(GByteArray) b = save(&in);
    for (guint len = 0; len < b->len; len++) {
        Dev out = { 0 };
        g_autoptr(GError) err = NULL;
        g_assert_false(vmstate_load(&dev_vmsd, &out, 2, b->data, len, &err));
        g_assert_nonnull(strstr(err->message, "device state '"));
    }
    /* And one byte too many. */
    g_byte_array_append(b, (const uint8_t *)"x", 1);
    Dev out = { 0 };
    g_autoptr(GError) err = NULL;
    g_assert_false(vmstate_load(&dev_vmsd, &out, 2, b->data, b->len, &err));
    g_assert_nonnull(strstr(err->message, "left over"));
}

static void test_bad_bool_and_subsection(void)
{
    Dev in = sample();
    g_autoptr(GByteArray) b = save(&in);
    Dev out = { 0 };
    g_autoptr(GError) err = NULL;
    b->data[1 + 2 + 4 + 8] = 2; /* the flag */
    g_assert_false(vmstate_load(&dev_vmsd, &out, 2, b->data, b->len, &err));
    g_assert_cmpstr(err->message, ==, "device state 'dev', field flag: boolean with value 2");
    g_clear_error(&err);
    b->data[1 + 2 + 4 + 8] = 1;
    /* The subsection's name starts after the marker and length bytes. */
    /* marker, name length, name, version, length, extra, its terminator, ours */
    guint at = b->len - (1 + 1 + 9 + 4 + 4 + 8 + 1 + 1) + 2;
    g_assert_cmpmem(b->data + at, 9, "dev/extra", 9);
    b->data[at] = 'X';
    g_assert_false(vmstate_load(&dev_vmsd, &out, 2, b->data, b->len, &err));
    g_assert_cmpstr(err->message, ==, "device state 'dev': unknown subsection 'Xev/extra'");
}

static GBytes *sample_stream(void)
{
    g_autoptr(MigWriter) w = mig_writer_new(-1);
    mig_write_header(w, "machine=pc ram:pc.ram=4096");
    mig_write_section(w, MIG_SECTION_DEVICE, "serial", 0, 1, "abc", 3);
    mig_write_section(w, MIG_SECTION_RAM, "ram", 0, 1, "", 0);
    mig_write_end(w);
    g_autoptr(GError) err = NULL;
    g_assert_true(mig_writer_flush(w, &err));
    return mig_writer_data(w);
}

/* Read all of @data; returns the number of sections, or -1 with @err. */
static int read_all(GBytes *data, const char *fingerprint, GError **err)
{
    g_autoptr(MigReader) r = mig_reader_new_bytes(data);
    if (!mig_read_header(r, fingerprint, err)) {
        return -1;
    }
    for (int n = 0;; n++) {
        MigSection s;
        if (!mig_read_section(r, &s, err)) {
            return -1;
        }
        bool end = s.kind == MIG_SECTION_END;
        mig_section_clear(&s);
        if (end) {
            return n;
        }
    }
}

static void test_stream_round_trip(void)
{
    g_autoptr(GBytes) data = sample_stream();
    g_autoptr(MigReader) r = mig_reader_new_bytes(data);
    g_autoptr(GError) err = NULL;
    g_assert_true(mig_read_header(r, "machine=pc ram:pc.ram=4096", &err));
    MigSection s;
    g_assert_true(mig_read_section(r, &s, &err));
    g_assert_cmpint(s.kind, ==, MIG_SECTION_DEVICE);
    g_assert_cmpstr(s.name, ==, "serial");
    g_assert_cmpuint(s.version, ==, 1);
    g_assert_cmpmem(g_bytes_get_data(s.payload, NULL), g_bytes_get_size(s.payload), "abc", 3);
    mig_section_clear(&s);
    g_assert_cmpint(read_all(data, "machine=pc ram:pc.ram=4096", &err), ==, 2);
}

static void test_stream_truncated_everywhere(void)
{
    g_autoptr(GBytes) data = sample_stream();
    for (gsize len = 0; len < g_bytes_get_size(data); len++) {
        g_autoptr(GBytes) part = g_bytes_new_from_bytes(data, 0, len);
        g_autoptr(GError) err = NULL;
        g_assert_cmpint(read_all(part, "machine=pc ram:pc.ram=4096", &err), ==, -1);
        g_assert_nonnull(err);
        /* Too short to hold the magic reads as truncated, never as "not a stream". */
        g_assert_nonnull(strstr(err->message, "truncated"));
    }
}

static void test_stream_every_bit_flip_detected(void)
{
    g_autoptr(GBytes) data = sample_stream();
    gsize size;
    const uint8_t *orig = g_bytes_get_data(data, &size);
    for (gsize i = 0; i < size; i++) {
        for (int bit = 0; bit < 8; bit++) {
            g_autofree uint8_t *copy = g_memdup2(orig, size);
            copy[i] ^= 1 << bit;
            g_autoptr(GBytes) bad = g_bytes_new(copy, size);
            g_autoptr(GError) err = NULL;
            g_assert_cmpint(read_all(bad, "machine=pc ram:pc.ram=4096", &err), ==, -1);
        }
    }
}

static void test_stream_foreign(void)
{
    g_autoptr(GBytes) data = sample_stream();
    g_autoptr(GError) err = NULL;
    g_assert_cmpint(read_all(data, "machine=pc ram:pc.ram=8192", &err), ==, -1);
    g_assert_cmpstr(err->message, ==,
                    "the migration stream is from a different machine configuration: it has "
                    "ram:pc.ram=4096, this VM has ram:pc.ram=8192");
    g_clear_error(&err);
    g_autoptr(GBytes) junk = g_bytes_new_static("QFI\xfb\0\0\0\3xxxxxxxxxxxxxxxxxx", 26);
    g_assert_cmpint(read_all(junk, "x", &err), ==, -1);
    g_assert_cmpstr(err->message, ==, "not a Vireo migration stream (bad magic)");
}

/* A block list as a machine keeps it (the blocks stay the caller's). */
static GPtrArray *blocks_of(RamBlock *b)
{
    GPtrArray *a = g_ptr_array_new();
    g_ptr_array_add(a, b);
    return a;
}

static void test_ram_round_trip(void)
{
    enum { PAGES = 600 }; /* three sections, the last partial */
    g_autofree uint8_t *src = g_malloc0(PAGES * RAM_PAGE_SIZE);
    for (unsigned i = 0; i < PAGES; i += 3) {
        memset(src + i * RAM_PAGE_SIZE + (i % RAM_PAGE_SIZE), i & 0xff ? i & 0xff : 1, 1);
    }
    RamBlock from = { "pc.ram", src, PAGES * RAM_PAGE_SIZE };
    g_autoptr(MigWriter) w = mig_writer_new(-1);
    RamStats saved = { 0 };
    g_autoptr(GPtrArray) from_blocks = blocks_of(&from);
    ram_save_all(w, from_blocks, &saved);
    mig_write_end(w);
    g_assert_cmpuint(saved.pages, ==, PAGES);
    g_assert_cmpuint(saved.zero_pages, ==, PAGES - PAGES / 3);
    g_autoptr(GBytes) data = mig_writer_data(w);
    /* Zero pages cost a byte: the stream is about a third of the RAM. */
    g_assert_cmpuint(g_bytes_get_size(data), <, PAGES / 3 * RAM_PAGE_SIZE + 4096);

    /* Into zeroed memory (a fresh destination) and into memory that holds something else. */
    for (int fresh = 0; fresh < 2; fresh++) {
        g_autofree uint8_t *dst = g_malloc(PAGES * RAM_PAGE_SIZE);
        memset(dst, fresh ? 0 : 0xaa, PAGES * RAM_PAGE_SIZE);
        RamBlock to = { "pc.ram", dst, PAGES * RAM_PAGE_SIZE };
        g_autoptr(GPtrArray) to_blocks = blocks_of(&to);
        g_autoptr(MigReader) r = mig_reader_new_bytes(data);
        MigSection sec;
        g_autoptr(GError) err = NULL;
        unsigned sections = 0;
        while (mig_read_section_header(r, &sec, &err) && sec.kind == MIG_SECTION_RAM) {
            g_assert_true(ram_load_section(r, &sec, to_blocks, NULL, &err));
            mig_section_clear(&sec);
            sections++;
        }
        g_assert_no_error(err);
        g_assert_cmpuint(sections, ==, 3);
        g_assert_cmpmem(src, PAGES * RAM_PAGE_SIZE, dst, PAGES * RAM_PAGE_SIZE);
    }
}

static void test_ram_refusals(void)
{
    uint8_t small[4 * RAM_PAGE_SIZE] = { 1 };
    RamBlock big = { "pc.ram", g_malloc0(8 * RAM_PAGE_SIZE), 8 * RAM_PAGE_SIZE };
    g_autoptr(MigWriter) w = mig_writer_new(-1);
    g_autofree uint8_t *scratch = g_malloc(RAM_SECTION_BYTES);
    ram_save_pages(w, &big, 4, 4, NULL, scratch, NULL);
    g_autoptr(GBytes) data = mig_writer_data(w);
    g_free(big.host);
    MigSection sec;
    g_autoptr(GError) err = NULL;
    g_autoptr(MigReader) r = mig_reader_new_bytes(data);
    g_assert_true(mig_read_section_header(r, &sec, &err));
    RamBlock to = { "pc.ram", small, sizeof(small) };
    g_autoptr(GPtrArray) to_blocks = blocks_of(&to);
    g_assert_false(ram_load_section(r, &sec, to_blocks, NULL, &err));
    g_assert_cmpstr(err->message, ==, "RAM block 'pc.ram': pages 4+4 lie outside its 4 pages");
    g_clear_error(&err);
    RamBlock other = { "other", small, sizeof(small) };
    g_autoptr(GPtrArray) other_blocks = blocks_of(&other);
    g_assert_false(ram_load_section(r, &sec, other_blocks, NULL, &err));
    g_assert_cmpstr(err->message, ==, "the migration stream has RAM block 'pc.ram', this VM has not");
    mig_section_clear(&sec);
}

/* Load every RAM section of @r through a RamLoader; false with @err. */
static bool load_with_loader(MigReader *r, GPtrArray *blocks, RamStats *stats, GError **err)
{
    RamLoader *l = ram_loader_new(blocks, r);
    MigSection sec;
    bool ok;
    while ((ok = mig_read_section_header(r, &sec, err)) && sec.kind == MIG_SECTION_RAM) {
        ok = ram_loader_add(l, r, &sec, err);
        mig_section_clear(&sec);
        if (!ok) {
            break;
        }
    }
    mig_section_clear(&sec);
    g_autoptr(GError) ram_err = NULL;
    if (!ram_loader_finish(l, stats, &ram_err)) {
        g_clear_error(err);
        g_propagate_error(err, g_steal_pointer(&ram_err));
        return false;
    }
    return ok;
}

/*
 * A stream in a file (mapped, its RAM loaded on threads) at an offset: a
 * page sent twice, as a live migration's later pass does, ends as sent
 * last, also where a section overlaps two earlier ones; a corrupt section
 * gives the same error as reading it inline.
 */
static void test_ram_loader_from_file(void)
{
    enum { PAGES = 3 * 2048 + 100 };
    const size_t size = (size_t)PAGES * RAM_PAGE_SIZE;
    g_autofree uint8_t *src = g_malloc0(size);
    for (unsigned i = 0; i < PAGES; i += 2) {
        memset(src + (size_t)i * RAM_PAGE_SIZE, (i % 251) + 1, 64);
    }
    RamBlock from = { "pc.ram", src, size };
    g_autoptr(GPtrArray) from_blocks = blocks_of(&from);
    g_autofree uint8_t *scratch = g_malloc(RAM_SECTION_BYTES);
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp("test-migration-XXXXXX", &path, NULL);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, "offset!", 7), ==, 7);
    {
        g_autoptr(MigWriter) w = mig_writer_new(fd);
        ram_save_all(w, from_blocks, NULL);
        /* A second pass: pages 100..300 and, across the first window's end, 2040..2055. */
        memset(src + 100 * RAM_PAGE_SIZE, 0xb2, 200 * RAM_PAGE_SIZE);
        ram_save_pages(w, &from, 100, 200, NULL, scratch, NULL);
        memset(src + 2040 * RAM_PAGE_SIZE, 0xc3, 16 * RAM_PAGE_SIZE);
        memset(src + 2041 * RAM_PAGE_SIZE, 0, RAM_PAGE_SIZE);
        ram_save_pages(w, &from, 2040, 16, NULL, scratch, NULL);
        mig_write_end(w);
        g_autoptr(GError) err = NULL;
        g_assert_true(mig_writer_flush(w, &err));
    }
    g_autofree uint8_t *dst = g_malloc(size);
    memset(dst, 0xaa, size);
    RamBlock to = { "pc.ram", dst, size };
    g_autoptr(GPtrArray) to_blocks = blocks_of(&to);
    g_assert_cmpint(lseek(fd, 7, SEEK_SET), ==, 7);
    {
        g_autoptr(MigReader) r = mig_reader_new_fd(fd);
        g_assert_true(mig_reader_is_mapped(r));
        g_autoptr(GError) err = NULL;
        RamStats stats = { 0 };
        g_assert_true(load_with_loader(r, to_blocks, &stats, &err));
        g_assert_no_error(err);
        g_assert_cmpuint(stats.pages, ==, PAGES + 200 + 16);
    }
    g_assert_true(memcmp(src, dst, size) == 0);

    /* A byte of a section loaded on a thread flipped: the error is the inline reader's. */
    g_autofree char *contents = NULL;
    gsize len;
    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    contents[len / 3] ^= 1;
    g_assert_true(g_file_set_contents(path, contents, len, NULL));
    close(fd);
    fd = open(path, O_RDONLY);
    g_assert_cmpint(lseek(fd, 7, SEEK_SET), ==, 7);
    g_autoptr(GError) mapped_err = NULL, inline_err = NULL;
    {
        g_autoptr(MigReader) r = mig_reader_new_fd(fd);
        g_assert_false(load_with_loader(r, to_blocks, NULL, &mapped_err));
    }
    {
        g_autoptr(GBytes) data = g_bytes_new(contents + 7, len - 7);
        g_autoptr(MigReader) r = mig_reader_new_bytes(data);
        g_assert_false(load_with_loader(r, to_blocks, NULL, &inline_err));
    }
    g_assert_nonnull(strstr(mapped_err->message, "checksum mismatch in section 'pc.ram'"));
    g_assert_cmpstr(mapped_err->message, ==, inline_err->message);
    close(fd);
    unlink(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/migration/crc32c", test_crc32c);
    g_test_add_func("/migration/vmstate/round-trip", test_round_trip);
    g_test_add_func("/migration/vmstate/subsection-optional", test_subsection_optional);
    g_test_add_func("/migration/vmstate/older-version", test_older_version);
    g_test_add_func("/migration/vmstate/truncated-everywhere", test_vmstate_truncated_everywhere);
    g_test_add_func("/migration/vmstate/bad-bool-and-subsection", test_bad_bool_and_subsection);
    g_test_add_func("/migration/stream/round-trip", test_stream_round_trip);
    g_test_add_func("/migration/stream/truncated-everywhere", test_stream_truncated_everywhere);
    g_test_add_func("/migration/stream/every-bit-flip-detected", test_stream_every_bit_flip_detected);
    g_test_add_func("/migration/stream/foreign", test_stream_foreign);
    g_test_add_func("/migration/ram/round-trip", test_ram_round_trip);
    g_test_add_func("/migration/ram/refusals", test_ram_refusals);
    g_test_add_func("/migration/ram/loader-from-file", test_ram_loader_from_file);
    return g_test_run();
}
