/* AML encodings checked byte for byte against ACPI 6.x chapter 20 and 6.4. */
#include "hw/acpi/aml.h"
#include <string.h>

typedef void (*Emit)(GByteArray *b, const void *arg);

static void assert_bytes(const GByteArray *b, const uint8_t *want, size_t len)
{
    g_assert_cmpmem(b->data, b->len, want, len);
}

static void test_pkglength(void)
{
    static const struct { gsize body; uint8_t enc[4]; unsigned n; } cases[] = {
        { 0, { 0x01 }, 1 },
        { 0x3e, { 0x3f }, 1 },                     /* largest one-byte form */
        { 0x3f, { 0x41, 0x04 }, 2 },               /* 0x41 in two bytes */
        { 0xffd, { 0x4f, 0xff }, 2 },              /* 0xfff, largest two-byte form */
        { 0xffe, { 0x81, 0x00, 0x01 }, 3 },        /* 0x1001 */
        { 0xffffc, { 0x8f, 0xff, 0xff }, 3 },      /* 0xfffff */
        { 0xffffd, { 0xc1, 0x00, 0x00, 0x01 }, 4 }, /* 0x100001 */
        { AML_PKGLENGTH_MAX - 4, { 0xcf, 0xff, 0xff, 0xff }, 4 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        uint8_t out[4] = { 0 };
        unsigned n = aml_pkglength_encode(out, cases[i].body);
        g_assert_cmpmem(out, n, cases[i].enc, cases[i].n);
    }
}

static void test_integer(void)
{
    static const struct { uint64_t v; uint8_t enc[9]; unsigned n; } cases[] = {
        { 0, { 0x00 }, 1 }, /* ZeroOp */
        { 1, { 0x01 }, 1 }, /* OneOp */
        { 2, { 0x0a, 0x02 }, 2 },
        { 0xff, { 0x0a, 0xff }, 2 },
        { 0x100, { 0x0b, 0x00, 0x01 }, 3 },
        { 0xffff, { 0x0b, 0xff, 0xff }, 3 },
        { 0x10000, { 0x0c, 0x00, 0x00, 0x01, 0x00 }, 5 },
        { 0xfebfffff, { 0x0c, 0xff, 0xff, 0xbf, 0xfe }, 5 },
        { 0x100000000ull, { 0x0e, 0, 0, 0, 0, 1, 0, 0, 0 }, 9 },
        { 0x123456789abcdef0ull, { 0x0e, 0xf0, 0xde, 0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12 }, 9 },
        { UINT64_MAX, { 0xff }, 1 }, /* OnesOp */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        aml_integer(b, cases[i].v);
        assert_bytes(b, cases[i].enc, cases[i].n);
    }
}

static void test_name_string(void)
{
    static const struct { const char *path; const char *enc; } cases[] = {
        { "_HID", "_HID" },
        { "ISA", "ISA_" },
        { "\\_SB", "\\_SB_" },
        { "\\_SB.PCI0", "\\\x2e_SB_PCI0" },
        { "\\_SB.PCI0.ISA", "\\\x2f\x03_SB_PCI0ISA_" },
        { "^^FOO", "^^FOO_" },
        { "_SB.PWRB", "\x2e_SB_PWRB" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        aml_name_string(b, cases[i].path);
        assert_bytes(b, (const uint8_t *)cases[i].enc, strlen(cases[i].enc));
    }
    g_autoptr(GByteArray) b = g_byte_array_new();
    aml_name_string(b, "\\");
    assert_bytes(b, (const uint8_t *)"\\\0", 2); /* root, NullName */
}

static void test_data_objects(void)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    aml_name_eisaid(b, "_HID", "PNP0A03");
    static const uint8_t eisa[] = { 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03 };
    assert_bytes(b, eisa, sizeof(eisa));

    g_byte_array_set_size(b, 0);
    aml_name_str(b, "_HID", "ACPI0007");
    static const uint8_t str[] = { 0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0', '0',
                                   '0', '7', 0x00 };
    assert_bytes(b, str, sizeof(str));

    /* Name(_S5, Package(){5, 5, 0, 0}) */
    g_byte_array_set_size(b, 0);
    aml_name(b, "_S5");
    gsize pkg = aml_package_begin(b, 4);
    aml_integer(b, 5);
    aml_integer(b, 5);
    aml_integer(b, 0);
    aml_integer(b, 0);
    aml_end(b, pkg);
    static const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
                                  0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00 };
    assert_bytes(b, s5, sizeof(s5));
}

static void test_scope_method(void)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    gsize scope = aml_scope_begin(b, "\\_GPE");
    gsize method = aml_method_begin(b, "_E00", 0, false);
    aml_notify(b, "\\_SB.PWRB", 0x80);
    aml_end(b, method);
    aml_end(b, scope);
    static const uint8_t want[] = {
        0x10, 0x1a, '\\', '_', 'G', 'P', 'E',          /* Scope(\_GPE) */
        0x14, 0x13, '_', 'E', '0', '0', 0x00,          /* Method(_E00, 0, NotSerialized) */
        0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', 0x0a, 0x80, /* Notify */
    };
    assert_bytes(b, want, sizeof(want));

    /* Method(_STA, 1, Serialized) { If (LEqual(And(Arg0, 3, ), 3)) { Return (Local0) } } */
    g_byte_array_set_size(b, 0);
    method = aml_method_begin(b, "_STA", 1, true);
    gsize cond = aml_if_begin(b);
    aml_lequal(b);
    aml_and(b);
    aml_arg(b, 0);
    aml_integer(b, 3);
    aml_null_target(b);
    aml_integer(b, 3);
    aml_return(b);
    aml_local(b, 0);
    aml_end(b, cond);
    aml_end(b, method);
    static const uint8_t sta[] = { 0x14, 0x12, '_', 'S', 'T', 'A', 0x09, 0xa0, 0x0b, 0x93, 0x7b,
                                   0x68, 0x0a, 0x03, 0x00, 0x0a, 0x03, 0xa4, 0x60 };
    assert_bytes(b, sta, sizeof(sta));
}

static void test_device_long_body(void)
{
    /* A body past 63 bytes needs the two-byte PkgLength. */
    g_autoptr(GByteArray) b = g_byte_array_new();
    gsize dev = aml_device_begin(b, "DEV");
    for (int i = 0; i < 10; i++) {
        aml_name_int(b, "_UID", 0x1234); /* 8 bytes each */
    }
    aml_end(b, dev);
    g_assert_cmpuint(b->len, ==, 2 + 2 + 4 + 80);
    g_assert_cmpuint(b->data[0], ==, 0x5b);
    g_assert_cmpuint(b->data[1], ==, 0x82);
    /* 86 = 0x56: lead 0x46, then 0x05 */
    g_assert_cmpuint(b->data[2], ==, 0x46);
    g_assert_cmpuint(b->data[3], ==, 0x05);
    g_assert_cmpmem(b->data + 4, 4, "DEV_", 4);
}

static void test_resources(void)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    gsize crs = aml_resource_template_begin(b);
    aml_res_io(b, 0x3f8, 8);
    aml_res_irq(b, 4);
    aml_resource_template_end(b, crs);
    static const uint8_t com[] = {
        0x11, 0x10, 0x0a, 0x0d,                         /* Buffer(13) */
        0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, /* IO(Decode16, 0x3f8, 0x3f8, 1, 8) */
        0x22, 0x10, 0x00,                               /* IRQNoFlags(){4} */
        0x79, 0x00,                                     /* EndTag */
    };
    assert_bytes(b, com, sizeof(com));

    g_byte_array_set_size(b, 0);
    aml_res_memory32_fixed(b, 0xb0000000, 0x100000, false);
    static const uint8_t fixed[] = { 0x86, 0x09, 0x00, 0x00,   /* Memory32Fixed(ReadOnly, */
                                     0x00, 0x00, 0x00, 0xb0,   /* 0xb0000000, */
                                     0x00, 0x00, 0x10, 0x00 }; /* 0x100000) */
    assert_bytes(b, fixed, sizeof(fixed));

    g_byte_array_set_size(b, 0);
    aml_res_address(b, 16, AML_RES_BUS, 0, 0, 0xff);
    static const uint8_t bus[] = { 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01 };
    assert_bytes(b, bus, sizeof(bus));

    g_byte_array_set_size(b, 0);
    aml_res_address(b, 32, AML_RES_MEMORY, AML_RES_MEM_READ_WRITE, 0xc0000000, 0xfebfffff);
    static const uint8_t mem32[] = { 0x87, 0x17, 0x00, 0x00, 0x0c, 0x01,
                                     0x00, 0x00, 0x00, 0x00, /* granularity */
                                     0x00, 0x00, 0x00, 0xc0, /* min */
                                     0xff, 0xff, 0xbf, 0xfe, /* max */
                                     0x00, 0x00, 0x00, 0x00, /* translation */
                                     0x00, 0x00, 0xc0, 0x3e }; /* length */
    assert_bytes(b, mem32, sizeof(mem32));

    g_byte_array_set_size(b, 0);
    aml_res_address(b, 64, AML_RES_MEMORY, 0, 0x180000000ull, 0x97fffffffull);
    g_assert_cmpuint(b->len, ==, 46);
    g_assert_cmpuint(b->data[0], ==, 0x8a);
    g_assert_cmpuint(b->data[1], ==, 0x2b);
    static const uint8_t len64[] = { 0, 0, 0, 0, 8, 0, 0, 0 }; /* 32 GiB */
    g_assert_cmpmem(b->data + 38, 8, len64, 8);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/aml/pkglength", test_pkglength);
    g_test_add_func("/aml/integer", test_integer);
    g_test_add_func("/aml/name-string", test_name_string);
    g_test_add_func("/aml/data-objects", test_data_objects);
    g_test_add_func("/aml/scope-method", test_scope_method);
    g_test_add_func("/aml/device-long-body", test_device_long_body);
    g_test_add_func("/aml/resources", test_resources);
    return g_test_run();
}
