#include "util/keyval.h"

static void test_implied_and_pairs(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GHashTable) kv = keyval_parse("disk.img,format=raw,readonly", "file", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(g_hash_table_lookup(kv, "file"), ==, "disk.img");
    g_assert_cmpstr(g_hash_table_lookup(kv, "format"), ==, "raw");
    g_assert_cmpstr(g_hash_table_lookup(kv, "readonly"), ==, "on");
    g_assert_cmpuint(g_hash_table_size(kv), ==, 3);
}

static void test_comma_escape(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GHashTable) kv = keyval_parse("path=a,,b,,,x=1", NULL, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(g_hash_table_lookup(kv, "path"), ==, "a,b,");
    g_assert_cmpstr(g_hash_table_lookup(kv, "x"), ==, "1");
}

static void test_errors(void)
{
    static const char *const bad[] = { "a=1,", ",a=1", "a=1,,=2x,=3", "=x" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(GHashTable) kv = keyval_parse(bad[i], NULL, &err);
        g_assert_null(kv);
        g_assert_nonnull(err);
        g_assert_nonnull(strstr(err->message, bad[i]));
    }
}

static void test_bool_and_keys(void)
{
    gboolean b = FALSE;
    g_autoptr(GError) err = NULL;
    g_assert_true(keyval_bool("readonly", "on", &b, NULL) && b);
    g_assert_true(keyval_bool("readonly", "off", &b, NULL) && !b);
    g_assert_false(keyval_bool("readonly", "maybe", &b, &err));
    g_assert_nonnull(strstr(err->message, "readonly"));
    g_clear_error(&err);

    g_autoptr(GHashTable) kv = keyval_parse("cpus=2,bogus=1", NULL, NULL);
    static const char *const known[] = { "cpus", NULL };
    g_assert_false(keyval_check_keys(kv, known, "-smp", &err));
    g_assert_cmpstr(err->message, ==, "-smp: unknown parameter 'bogus'");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/keyval/implied-and-pairs", test_implied_and_pairs);
    g_test_add_func("/keyval/comma-escape", test_comma_escape);
    g_test_add_func("/keyval/errors", test_errors);
    g_test_add_func("/keyval/bool-and-keys", test_bool_and_keys);
    return g_test_run();
}
