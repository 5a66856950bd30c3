#define G_LOG_DOMAIN "acpi"
#include "hw/acpi/aml.h"
#include "hw/acpi/acpi-table.h"
#include <string.h>

/* Opcodes and prefixes (ACPI 6.x, 20.2). */
enum {
    AML_ZERO = 0x00,
    AML_ONE = 0x01,
    AML_NAME = 0x08,
    AML_BYTE_PREFIX = 0x0a,
    AML_WORD_PREFIX = 0x0b,
    AML_DWORD_PREFIX = 0x0c,
    AML_STRING_PREFIX = 0x0d,
    AML_QWORD_PREFIX = 0x0e,
    AML_SCOPE = 0x10,
    AML_BUFFER = 0x11,
    AML_PACKAGE = 0x12,
    AML_METHOD = 0x14,
    AML_DUAL_NAME_PREFIX = 0x2e,
    AML_MULTI_NAME_PREFIX = 0x2f,
    AML_EXT_PREFIX = 0x5b,
    AML_DEVICE = 0x82, /* after AML_EXT_PREFIX */
    AML_ROOT_CHAR = '\\',
    AML_PARENT_PREFIX = '^',
    AML_LOCAL0 = 0x60,
    AML_ARG0 = 0x68,
    AML_AND = 0x7b,
    AML_NOTIFY = 0x86,
    AML_LEQUAL = 0x93,
    AML_IF = 0xa0,
    AML_RETURN = 0xa4,
    AML_ONES = 0xff,
};

/* Resource descriptor tags (6.4). */
enum {
    AML_RES_TAG_IRQ_NOFLAGS = 0x22, /* small item 0x4, length 2 */
    AML_RES_TAG_IO = 0x47,          /* small item 0x8, length 7 */
    AML_RES_TAG_END = 0x79,         /* small item 0xf, length 1 */
    AML_RES_TAG_MEMORY32_FIXED = 0x86, /* large item 0x6, length 9 */
    AML_RES_TAG_DWORD_ADDR = 0x87,
    AML_RES_TAG_WORD_ADDR = 0x88,
    AML_RES_TAG_QWORD_ADDR = 0x8a,
};

/* Address space descriptor general flags: fixed minimum and maximum. */
#define AML_RES_MIN_MAX_FIXED 0x0c

static void put8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

static void insert_bytes(GByteArray *b, gsize at, const uint8_t *bytes, unsigned n)
{
    gsize old = b->len;
    g_assert(at <= old);
    g_byte_array_set_size(b, old + n);
    memmove(b->data + at + n, b->data + at, old - at);
    memcpy(b->data + at, bytes, n);
}

unsigned aml_pkglength_encode(uint8_t out[4], gsize body_len)
{
    /* One byte holds 6 bits; each extra byte adds 8 to a 4-bit lead nibble. */
    if (body_len + 1 <= 0x3f) {
        out[0] = body_len + 1;
        return 1;
    }
    for (unsigned extra = 1; extra <= 3; extra++) {
        gsize total = body_len + 1 + extra;
        if (total < (1u << (4 + 8 * extra))) {
            out[0] = (extra << 6) | (total & 0x0f);
            for (unsigned i = 0; i < extra; i++) {
                out[1 + i] = total >> (4 + 8 * i);
            }
            return 1 + extra;
        }
    }
    g_assert_not_reached();
}

void aml_end(GByteArray *b, gsize mark)
{
    uint8_t enc[4];
    g_assert(mark <= b->len);
    unsigned n = aml_pkglength_encode(enc, b->len - mark);
    insert_bytes(b, mark, enc, n);
}

void aml_integer(GByteArray *b, uint64_t v)
{
    static const struct { uint64_t max; uint8_t prefix; unsigned size; } forms[] = {
        { UINT8_MAX, AML_BYTE_PREFIX, 1 },
        { UINT16_MAX, AML_WORD_PREFIX, 2 },
        { UINT32_MAX, AML_DWORD_PREFIX, 4 },
    };
    if (v == 0 || v == 1) {
        put8(b, v == 0 ? AML_ZERO : AML_ONE);
        return;
    }
    /* Vireo's definition blocks are revision 2: Ones is 64 bits wide. */
    if (v == UINT64_MAX) {
        put8(b, AML_ONES);
        return;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(forms); i++) {
        if (v <= forms[i].max) {
            put8(b, forms[i].prefix);
            acpi_put_le(b, v, forms[i].size);
            return;
        }
    }
    put8(b, AML_QWORD_PREFIX);
    acpi_put_le(b, v, 8);
}

void aml_string(GByteArray *b, const char *s)
{
    put8(b, AML_STRING_PREFIX);
    g_byte_array_append(b, (const guint8 *)s, strlen(s) + 1);
}

void aml_eisaid(GByteArray *b, const char *id)
{
    /* Three letters in 5 bits each, then four hex digits, stored big-endian. */
    g_assert(strlen(id) == 7);
    uint32_t v = 0;
    for (int i = 0; i < 3; i++) {
        g_assert(id[i] >= 'A' && id[i] <= 'Z');
        v = (v << 5) | (id[i] - 'A' + 1);
    }
    for (int i = 3; i < 7; i++) {
        g_assert(g_ascii_isxdigit(id[i]));
        v = (v << 4) | g_ascii_xdigit_value(id[i]);
    }
    put8(b, AML_DWORD_PREFIX);
    acpi_put_le(b, GUINT32_SWAP_LE_BE(v), 4);
}

static void put_nameseg(GByteArray *b, const char *seg, size_t len)
{
    g_assert(len >= 1 && len <= 4);
    g_assert(seg[0] == '_' || g_ascii_isupper(seg[0]));
    for (size_t i = 0; i < 4; i++) {
        char c = i < len ? seg[i] : '_';
        g_assert(c == '_' || g_ascii_isupper(c) || g_ascii_isdigit(c));
        put8(b, c);
    }
}

void aml_name_string(GByteArray *b, const char *path)
{
    if (*path == AML_ROOT_CHAR) {
        put8(b, *path++);
    } else {
        while (*path == AML_PARENT_PREFIX) {
            put8(b, *path++);
        }
    }
    if (!*path) {
        put8(b, AML_ZERO); /* NullName */
        return;
    }
    g_auto(GStrv) segs = g_strsplit(path, ".", -1);
    guint n = g_strv_length(segs);
    g_assert(n <= 255);
    if (n == 2) {
        put8(b, AML_DUAL_NAME_PREFIX);
    } else if (n > 2) {
        put8(b, AML_MULTI_NAME_PREFIX);
        put8(b, n);
    }
    for (guint i = 0; i < n; i++) {
        put_nameseg(b, segs[i], strlen(segs[i]));
    }
}

void aml_name(GByteArray *b, const char *name)
{
    put8(b, AML_NAME);
    aml_name_string(b, name);
}

void aml_name_int(GByteArray *b, const char *name, uint64_t v)
{
    aml_name(b, name);
    aml_integer(b, v);
}

void aml_name_str(GByteArray *b, const char *name, const char *s)
{
    aml_name(b, name);
    aml_string(b, s);
}

void aml_name_eisaid(GByteArray *b, const char *name, const char *id)
{
    aml_name(b, name);
    aml_eisaid(b, id);
}

/* Opcode, then the mark where the PkgLength goes, then the name. */
static gsize begin_named(GByteArray *b, const uint8_t *op, unsigned oplen, const char *path)
{
    g_byte_array_append(b, op, oplen);
    gsize mark = b->len;
    aml_name_string(b, path);
    return mark;
}

gsize aml_scope_begin(GByteArray *b, const char *path)
{
    static const uint8_t op[] = { AML_SCOPE };
    return begin_named(b, op, sizeof(op), path);
}

gsize aml_device_begin(GByteArray *b, const char *path)
{
    static const uint8_t op[] = { AML_EXT_PREFIX, AML_DEVICE };
    return begin_named(b, op, sizeof(op), path);
}

gsize aml_method_begin(GByteArray *b, const char *path, unsigned nargs, bool serialized)
{
    static const uint8_t op[] = { AML_METHOD };
    g_assert(nargs <= 7);
    gsize mark = begin_named(b, op, sizeof(op), path);
    put8(b, nargs | (serialized ? 1 << 3 : 0));
    return mark;
}

gsize aml_package_begin(GByteArray *b, unsigned nelems)
{
    g_assert(nelems <= 255);
    put8(b, AML_PACKAGE);
    gsize mark = b->len;
    put8(b, nelems);
    return mark;
}

gsize aml_if_begin(GByteArray *b)
{
    put8(b, AML_IF);
    return b->len;
}

gsize aml_buffer_begin(GByteArray *b)
{
    put8(b, AML_BUFFER);
    return b->len;
}

void aml_buffer_end(GByteArray *b, gsize mark)
{
    g_autoptr(GByteArray) size = g_byte_array_new();
    g_assert(mark <= b->len);
    aml_integer(size, b->len - mark);
    insert_bytes(b, mark, size->data, size->len);
    aml_end(b, mark);
}

void aml_notify(GByteArray *b, const char *path, uint64_t value)
{
    put8(b, AML_NOTIFY);
    aml_name_string(b, path);
    aml_integer(b, value);
}

void aml_return(GByteArray *b)
{
    put8(b, AML_RETURN);
}

void aml_lequal(GByteArray *b)
{
    put8(b, AML_LEQUAL);
}

void aml_and(GByteArray *b)
{
    put8(b, AML_AND);
}

void aml_null_target(GByteArray *b)
{
    put8(b, AML_ZERO);
}

void aml_arg(GByteArray *b, unsigned n)
{
    g_assert(n <= 6);
    put8(b, AML_ARG0 + n);
}

void aml_local(GByteArray *b, unsigned n)
{
    g_assert(n <= 7);
    put8(b, AML_LOCAL0 + n);
}

gsize aml_resource_template_begin(GByteArray *b)
{
    return aml_buffer_begin(b);
}

void aml_resource_template_end(GByteArray *b, gsize mark)
{
    /* A zero checksum means "treat the template as valid". */
    put8(b, AML_RES_TAG_END);
    put8(b, 0);
    aml_buffer_end(b, mark);
}

void aml_res_address(GByteArray *b, unsigned width, AmlResType type, uint8_t type_flags,
                     uint64_t min, uint64_t max)
{
    static const struct { unsigned width; uint8_t tag; } forms[] = {
        { 16, AML_RES_TAG_WORD_ADDR },
        { 32, AML_RES_TAG_DWORD_ADDR },
        { 64, AML_RES_TAG_QWORD_ADDR },
    };
    size_t i = 0;
    while (i < G_N_ELEMENTS(forms) && forms[i].width != width) {
        i++;
    }
    g_assert(i < G_N_ELEMENTS(forms));
    unsigned field = width / 8;
    g_assert(min <= max && (width == 64 || max >> width == 0));
    uint64_t len = max - min + 1;
    g_assert(len != 0); /* a full 64-bit range has no representable length */

    put8(b, forms[i].tag);
    acpi_put_le(b, 3 + 5 * field, 2); /* bytes after the length field */
    put8(b, type);
    put8(b, AML_RES_MIN_MAX_FIXED);
    put8(b, type_flags);
    acpi_put_le(b, 0, field); /* granularity: byte-granular decode */
    acpi_put_le(b, min, field);
    acpi_put_le(b, max, field);
    acpi_put_le(b, 0, field); /* translation offset */
    acpi_put_le(b, len, field);
}

void aml_res_io(GByteArray *b, uint16_t base, uint8_t len)
{
    put8(b, AML_RES_TAG_IO);
    put8(b, 1); /* decodes 16 address bits */
    acpi_put_le(b, base, 2);
    acpi_put_le(b, base, 2);
    put8(b, 1); /* alignment */
    put8(b, len);
}

void aml_res_irq(GByteArray *b, unsigned irq)
{
    g_assert(irq < 16);
    put8(b, AML_RES_TAG_IRQ_NOFLAGS);
    acpi_put_le(b, 1u << irq, 2);
}

void aml_res_memory32_fixed(GByteArray *b, uint32_t base, uint32_t len, bool writable)
{
    put8(b, AML_RES_TAG_MEMORY32_FIXED);
    acpi_put_le(b, 9, 2);
    put8(b, writable ? 1 : 0);
    acpi_put_le(b, base, 4);
    acpi_put_le(b, len, 4);
}
