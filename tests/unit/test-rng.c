/* Entropy backends: -object rng-random and rng-builtin feeding a consumer through the main loop. */
#include "hw/virtio/rng-backend.h"
#include "main-loop-wait.h"
#include <glib/gstdio.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    GByteArray *got;
    unsigned calls;
} Sink;

static void sink_receive(void *opaque, const uint8_t *buf, size_t len)
{
    Sink *s = opaque;
    g_assert_cmpuint(len, >, 0);
    g_byte_array_append(s->got, buf, len);
    s->calls++;
}

/* The first -object of a parsed command line. */
static VmConfig *parse_object(const char *arg)
{
    VmConfig *cfg = vm_config_new();
    char *argv[] = { "vireo", "-object", (char *)arg, NULL };
    g_assert_true(vm_config_parse(cfg, 3, argv, NULL));
    return cfg;
}

/* 64 bytes, as many requests as it takes, and not all the same byte. */
static void fetch_64(RngBackend *rng)
{
    Sink s = { .got = g_byte_array_new() };
    while (s.got->len < 64) {
        unsigned calls = s.calls;
        rng_backend_request(rng, 64 - s.got->len, sink_receive, &s);
        g_assert_cmpuint(s.calls, ==, calls); /* never from inside the request */
        ITERATE_UNTIL(s.calls > calls);
        g_assert_cmpuint(s.calls, >, calls);
    }
    g_assert_cmpuint(s.got->len, ==, 64);
    unsigned same = 0;
    for (guint i = 1; i < s.got->len; i++) {
        same += s.got->data[i] == s.got->data[0];
    }
    g_assert_cmpuint(same, <, 63);
    g_byte_array_unref(s.got);
}

static void test_random_default(void)
{
    g_autoptr(VmConfig) cfg = parse_object("rng-random,id=r0");
    g_autoptr(GError) err = NULL;
    g_autoptr(RngBackend) rng = rng_backend_new(cfg->objects->pdata[0], &err);
    g_assert_no_error(err);
    fetch_64(rng);
}

static void test_builtin(void)
{
    g_autoptr(VmConfig) cfg = parse_object("rng-builtin,id=b0");
    g_autoptr(GError) err = NULL;
    g_autoptr(RngBackend) rng = rng_backend_new(cfg->objects->pdata[0], &err);
    g_assert_no_error(err);
    fetch_64(rng);
    g_autoptr(RngBackend) implicit = rng_backend_new_builtin();
    fetch_64(implicit);
}

/* A FIFO: nothing until a writer comes, then exactly what it wrote; cancel forgets the request. */
static void test_fifo(void)
{
    g_autofree char *dir = g_dir_make_tmp("vireo-rng-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "fifo", NULL);
    g_autofree char *arg = g_strdup_printf("rng-random,id=f,filename=%s", path);
    g_assert_cmpint(mkfifo(path, 0600), ==, 0);
    g_autoptr(VmConfig) cfg = parse_object(arg);
    g_autoptr(GError) err = NULL;
    RngBackend *rng = rng_backend_new(cfg->objects->pdata[0], &err);
    g_assert_no_error(err);
    int w = open(path, O_WRONLY | O_NONBLOCK);
    g_assert_cmpint(w, >=, 0);

    Sink s = { .got = g_byte_array_new() };
    rng_backend_request(rng, 100, sink_receive, &s);
    for (int i = 0; i < 20; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
    g_assert_cmpuint(s.calls, ==, 0);
    g_assert_cmpint(write(w, "abcdef", 6), ==, 6);
    ITERATE_UNTIL(s.calls == 1);
    g_assert_cmpmem(s.got->data, s.got->len, "abcdef", 6);

    /* At most what was asked for; the rest waits for the next request. */
    g_assert_cmpint(write(w, "0123456789", 10), ==, 10);
    rng_backend_request(rng, 4, sink_receive, &s);
    ITERATE_UNTIL(s.calls == 2);
    g_assert_cmpmem(s.got->data + 6, s.got->len - 6, "0123", 4);
    rng_backend_request(rng, 100, sink_receive, &s);
    rng_backend_cancel(rng);
    for (int i = 0; i < 20; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
    g_assert_cmpuint(s.calls, ==, 2);
    rng_backend_request(rng, 100, sink_receive, &s);
    ITERATE_UNTIL(s.calls == 3);
    g_assert_cmpmem(s.got->data + 10, s.got->len - 10, "456789", 6);

    /* The writer goes: one warning, and no more callbacks. */
    close(w);
    g_test_expect_message("rng", G_LOG_LEVEL_WARNING, "*end of file; no more entropy*");
    rng_backend_request(rng, 100, sink_receive, &s);
    for (int i = 0; i < 20; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
    g_test_assert_expected_messages();
    g_assert_cmpuint(s.calls, ==, 3);
    rng_backend_free(rng);
    g_byte_array_unref(s.got);
    g_unlink(path);
    g_rmdir(dir);
}

/* Bad -object lines: one line naming the -object and what is wrong. */
static void test_errors(void)
{
    static const struct { const char *arg, *msg; } cases[] = {
        { "rng-random,id=r,filename=/nonexistent-vireo/rng",
          "-object rng-random,id=r,filename=/nonexistent-vireo/rng: cannot open '/nonexistent-vireo/rng': No such file" },
        { "rng-builtin,id=b,filename=/dev/urandom", "-object rng-builtin,id=b,filename=/dev/urandom: -object: unknown parameter 'filename'" },
        { "rng-egd,id=e,chardev=c", "-object rng-egd,id=e,chardev=c: 'rng-egd' is not an entropy backend" },
        { "rng-random,id=r,size=4", "unknown parameter 'size'" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(VmConfig) cfg = parse_object(cases[i].arg);
        g_autoptr(GError) err = NULL;
        g_assert_null(rng_backend_new(cfg->objects->pdata[0], &err));
        g_assert_nonnull(err);
        if (!g_str_has_prefix(err->message, cases[i].msg) && !strstr(err->message, cases[i].msg)) {
            g_error("'%s': '%s' does not say '%s'", cases[i].arg, err->message, cases[i].msg);
        }
        g_assert_null(strchr(err->message, '\n'));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/rng/random-default", test_random_default);
    g_test_add_func("/rng/builtin", test_builtin);
    g_test_add_func("/rng/fifo", test_fifo);
    g_test_add_func("/rng/errors", test_errors);
    return g_test_run();
}
