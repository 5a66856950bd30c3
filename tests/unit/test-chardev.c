/* Chardev backends: spec parsing, file output, stdio input through the main loop. */
#include "chardev/chardev.h"
#include <glib/gstdio.h>
#include <fcntl.h>
#include <unistd.h>

typedef struct {
    GByteArray *got;
    size_t room; /* what the can-read hook reports */
    unsigned quits;
} Sink;

static void sink_input(void *opaque, const uint8_t *buf, size_t len)
{
    Sink *s = opaque;
    g_byte_array_append(s->got, buf, len);
    s->room -= MIN(s->room, len);
}

static size_t sink_can_read(void *opaque)
{
    Sink *s = opaque;
    return s->room;
}

static void sink_quit(void *opaque)
{
    Sink *s = opaque;
    s->quits++;
}

static void test_file(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("vireo-chardev-XXXXXX", &err);
    g_autofree char *path = g_build_filename(dir, "log", NULL);
    g_autofree char *spec = g_strdup_printf("file:%s", path);
    g_autofree char *contents = NULL;
    GStatBuf st;
    gsize len;

    g_assert_true(g_file_set_contents(path, "old contents", -1, NULL));
    Chardev *chr = chardev_new(spec, &err);
    g_assert_no_error(err);
    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    g_assert_cmpuint(len, ==, 0); /* truncated */
    g_clear_pointer(&contents, g_free);

    chardev_write(chr, (const uint8_t *)"abc", 3);
    chardev_write(chr, (const uint8_t *)"", 0);
    chardev_write(chr, (const uint8_t *)"\0\n", 2);
    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    g_assert_cmpuint(len, ==, 5);
    g_assert_cmpmem(contents, len, "abc\0\n", 5);
    chardev_free(chr);

    /* Created 0644 (under the usual umask). */
    g_unlink(path);
    mode_t old = umask(022);
    chr = chardev_new(spec, &err);
    umask(old);
    g_assert_no_error(err);
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    g_assert_cmpuint(st.st_mode & 0777, ==, 0644);
    chardev_free(chr);
    g_unlink(path);
    g_rmdir(dir);
}

static void test_errors(void)
{
    static const struct {
        const char *spec;
        const char *mentions;
    } bad[] = {
        { "file:/nonexistent-vireo-dir/x.log", "/nonexistent-vireo-dir/x.log" },
        { "file:", "file:PATH" },
        { "file", "file:PATH" },
        { "null:x", "null:x" },
        { "stdio:foo", "stdio:foo" },
        { "tcp:localhost:4444", "'tcp'" },
        { "", "unknown backend" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        Chardev *chr = chardev_new(bad[i].spec, &err);
        g_assert_null(chr);
        g_assert_nonnull(err);
        if (!strstr(err->message, bad[i].mentions)) {
            g_error("'%s': message '%s' does not mention '%s'", bad[i].spec, err->message,
                    bad[i].mentions);
        }
    }
    g_autoptr(GError) err = NULL;
    g_assert_null(chardev_new("file:/nonexistent-vireo-dir/x.log", &err));
    g_assert_nonnull(strstr(err->message, "No such file or directory"));
}

static void test_null(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(Chardev) chr = chardev_new("null", &err);
    g_assert_no_error(err);
    chardev_write(chr, (const uint8_t *)"dropped", 7);
    chardev_set_input(chr, NULL, NULL);
    chardev_accept_input(chr);
    /* A NULL chardev is a valid sink too. */
    chardev_write(NULL, (const uint8_t *)"x", 1);
}

static void test_inject(void)
{
    Sink s = { .got = g_byte_array_new() };
    g_autoptr(Chardev) chr = chardev_new("null", NULL);

    chardev_inject_input(chr, (const uint8_t *)"lost", 4); /* no frontend yet */
    chardev_set_input(chr, sink_input, &s);
    chardev_inject_input(chr, (const uint8_t *)"a\001b", 3);
    g_assert_cmpmem(s.got->data, s.got->len, "a\001b", 3);
    g_byte_array_unref(s.got);
}

/* Spin the default main context until @cond holds or a second passes. */
#define ITERATE_UNTIL(cond)                                                  \
    do {                                                                     \
        gint64 end_ = g_get_monotonic_time() + G_USEC_PER_SEC;               \
        while (!(cond) && g_get_monotonic_time() < end_) {                   \
            g_main_context_iteration(NULL, FALSE);                           \
            g_usleep(1000);                                                  \
        }                                                                    \
    } while (0)

/* stdio with stdin and stdout swapped for a pipe and a file. */
static void test_stdio(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("vireo-chardev-XXXXXX", &err);
    g_autofree char *path = g_build_filename(dir, "stdout", NULL);
    g_autofree char *contents = NULL;
    Sink s = { .got = g_byte_array_new(), .room = 4 };
    int fds[2], saved_in = dup(STDIN_FILENO), saved_out = dup(STDOUT_FILENO);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    gsize len;

    g_assert_cmpint(pipe(fds), ==, 0);
    g_assert_cmpint(out, >=, 0);
    fflush(stdout);
    dup2(fds[0], STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    close(fds[0]);
    close(out);

    Chardev *chr = chardev_new("stdio", &err);
    g_assert_no_error(err);
    g_autoptr(GError) err2 = NULL;
    g_assert_null(chardev_new("stdio", &err2)); /* there is only one stdin */
    g_assert_nonnull(err2);

    chardev_set_quit_handler(sink_quit, &s);
    chardev_set_input_full(chr, sink_input, sink_can_read, &s);
    chardev_write(chr, (const uint8_t *)"to stdout", 9);

    /* Ctrl-a Ctrl-a is one Ctrl-a; Ctrl-a x quits; other Ctrl-a commands vanish. */
    static const char typed[] = "ab\001\001c\001xd\001zefgh";
    g_assert_cmpint(write(fds[1], typed, sizeof(typed) - 1), ==, sizeof(typed) - 1);
    ITERATE_UNTIL(s.got->len >= 4);
    g_assert_cmpmem(s.got->data, s.got->len, "ab\001c", 4);
    /* The frontend is full: input waits in the pipe until it has room. */
    for (int i = 0; i < 20; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
    g_assert_cmpuint(s.got->len, ==, 4);
    s.room = 100;
    chardev_accept_input(chr);
    ITERATE_UNTIL(s.got->len >= 9);
    g_assert_cmpmem(s.got->data, s.got->len, "ab\001cdefgh", 9);
    g_assert_cmpuint(s.quits, ==, 1);

    /* End of input stops the watch without fuss. */
    close(fds[1]);
    for (int i = 0; i < 5; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
    chardev_free(chr);
    chardev_set_quit_handler(NULL, NULL);
    chardev_restore_terminal(); /* harmless without a terminal, and twice */

    fflush(stdout);
    dup2(saved_in, STDIN_FILENO);
    dup2(saved_out, STDOUT_FILENO);
    close(saved_in);
    close(saved_out);

    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    g_assert_cmpstr(contents, ==, "to stdout");
    g_byte_array_unref(s.got);
    g_unlink(path);
    g_rmdir(dir);

    /* stdio is free again once released. */
    g_autoptr(Chardev) again = chardev_new("stdio", &err);
    g_assert_no_error(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/chardev/file", test_file);
    g_test_add_func("/chardev/errors", test_errors);
    g_test_add_func("/chardev/null", test_null);
    g_test_add_func("/chardev/inject", test_inject);
    g_test_add_func("/chardev/stdio", test_stdio);
    return g_test_run();
}
