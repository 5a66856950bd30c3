/* The QMP input splitter: where values are cut, and its two limits. */
#include "monitor/json-stream.h"
#include <string.h>

typedef struct {
    GPtrArray *values;
    char *why;
} Cut;

static bool collect(const char *text, size_t len, const char *why, void *opaque)
{
    Cut *c = opaque;
    if (!text) {
        c->why = g_strdup(why);
        return false;
    }
    g_assert_cmpuint(text[len], ==, 0);
    g_ptr_array_add(c->values, g_strndup(text, len));
    return true;
}

/* Feed @in whole and then byte by byte; both must cut it into @want. */
static void check_cuts(const char *in, const char *const *want)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        Cut c = { g_ptr_array_new_with_free_func(g_free), NULL };
        g_autoptr(JsonStream) js = json_stream_new(1024, 8, collect, &c);
        if (bytewise) {
            for (size_t i = 0; in[i]; i++) {
                json_stream_feed(js, in + i, 1);
            }
        } else {
            json_stream_feed(js, in, strlen(in));
        }
        g_assert_null(c.why);
        g_assert_cmpuint(c.values->len, ==, g_strv_length((char **)want));
        for (guint i = 0; i < c.values->len; i++) {
            g_assert_cmpstr(c.values->pdata[i], ==, want[i]);
        }
        g_ptr_array_unref(c.values);
    }
}

static void test_cuts(void)
{
    check_cuts("{}", (const char *const[]){ "{}", NULL });
    check_cuts(" \r\n\t{ \"a\" :\n[1, 2] }\n\n{}", (const char *const[]){ "{ \"a\" :\n[1, 2] }", "{}", NULL });
    /* Braces and escaped quotes inside strings do not count. */
    check_cuts("{\"a\": \"}{\\\"]\"}{}", (const char *const[]){ "{\"a\": \"}{\\\"]\"}", "{}", NULL });
    check_cuts("{\"a\\\\\": 1}", (const char *const[]){ "{\"a\\\\\": 1}", NULL });
    /* Top-level scalars and strays are cut on their own. */
    check_cuts("42 {} \"s\"} true{}", (const char *const[]){ "42", "{}", "\"s\"", "}", "true", "{}", NULL });
    check_cuts("[[]] []", (const char *const[]){ "[[]]", "[]", NULL });
}

static void test_depth_limit(void)
{
    Cut c = { g_ptr_array_new_with_free_func(g_free), NULL };
    g_autoptr(JsonStream) js = json_stream_new(1024, 8, collect, &c);
    json_stream_feed(js, "[[[[[[[[]]]]]]]]", 16); /* exactly 8: fine */
    g_assert_cmpuint(c.values->len, ==, 1);
    json_stream_feed(js, "{\"a\":[[[[[[[[", 13);
    g_assert_cmpstr(c.why, ==, "nesting too deep");
    /* After a limit everything is dropped. */
    json_stream_feed(js, "]]]]]]]]}{}", 11);
    g_assert_cmpuint(c.values->len, ==, 1);
    g_ptr_array_unref(c.values);
    g_free(c.why);
}

static void test_size_limit(void)
{
    Cut c = { g_ptr_array_new_with_free_func(g_free), NULL };
    g_autoptr(JsonStream) js = json_stream_new(16, 8, collect, &c);
    json_stream_feed(js, "{\"a\":\"0123456\"}", 15); /* 15 bytes */
    g_assert_cmpuint(c.values->len, ==, 1);
    json_stream_feed(js, "{\"a\":\"01234567\"}", 16); /* 16: still fine */
    g_assert_cmpuint(c.values->len, ==, 2);
    g_assert_null(c.why);
    json_stream_feed(js, "{\"a\":\"012345678\"}", 17);
    g_assert_cmpstr(c.why, ==, "message too large");
    g_ptr_array_unref(c.values);
    g_free(c.why);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/json-stream/cuts", test_cuts);
    g_test_add_func("/json-stream/depth-limit", test_depth_limit);
    g_test_add_func("/json-stream/size-limit", test_size_limit);
    return g_test_run();
}
