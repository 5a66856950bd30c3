#include "util/size.h"

static void test_good(void)
{
    static const struct { const char *in; uint64_t unit, out; } cases[] = {
        { "512M", 1 << 20, 512ULL << 20 },
        { "5G", 1 << 20, 5ULL << 30 },
        { "1.5G", 1 << 20, 3ULL << 29 },
        { "128", 1 << 20, 128ULL << 20 },
        { "4096", 1, 4096 },
        { "64k", 1, 64 << 10 },
        { "2T", 1, 2ULL << 40 },
        { "0", 1 << 20, 0 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        uint64_t v = 1;
        g_autoptr(GError) err = NULL;
        g_assert_true(size_parse(cases[i].in, cases[i].unit, &v, &err));
        g_assert_no_error(err);
        g_assert_cmpuint(v, ==, cases[i].out);
    }
}

static void test_bad(void)
{
    static const char *const bad[] = { "", "M", "12X", "1.5", "-1", "1GG", "99999999999999999999",
                                       "20000000E", " 1G" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        uint64_t v = 7;
        g_autoptr(GError) err = NULL;
        g_assert_false(size_parse(bad[i], 1 << 20, &v, &err));
        g_assert_nonnull(err);
        g_assert_nonnull(strstr(err->message, bad[i]));
        g_assert_cmpuint(v, ==, 7);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/size/good", test_good);
    g_test_add_func("/size/bad", test_bad);
    return g_test_run();
}
