/* Chardev backends: spec parsing, file output, stdio input through the main loop. */
#include "chardev/chardev.h"
#include "main-loop-wait.h"
#include "system/options.h"
#include <glib/gstdio.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
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

/* ---- -chardev: the backends chardev_open() makes from a VmChardev ---- */

static VmChardev vm_chardev(const char *id, VmChardevBackend backend, const char *path)
{
    return (VmChardev){ .id = (char *)id, .backend = backend, .path = (char *)path, .fd = -1 };
}

static void flag_set(void *opaque)
{
    *(bool *)opaque = true;
}

/* Read exactly @len bytes from @fd, giving up after a second without data. */
static char *read_exactly(int fd, size_t len)
{
    char *buf = g_malloc0(len + 1);
    size_t got = 0;
    while (got < len) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 1000) <= 0) {
            break;
        }
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0) {
            break;
        }
        got += n;
    }
    g_assert_cmpuint(got, ==, len);
    return buf;
}

/* Write @s until the frontend has taken all of it (the chardev may not have accepted the client yet). */
static void frontend_write_all(Chardev *chr, const char *s)
{
    size_t len = strlen(s), done = 0;
    gint64 end = g_get_monotonic_time() + G_USEC_PER_SEC;
    while (done < len && g_get_monotonic_time() < end) {
        done += chardev_write_nonblocking(chr, (const uint8_t *)s + done, len - done);
        g_main_context_iteration(NULL, FALSE);
    }
    g_assert_cmpuint(done, ==, len);
}

static bool no_input_for_a_while(Sink *s, guint len)
{
    for (int i = 0; i < 20; i++) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
    return s->got->len == len;
}

/*
 * A unix socket server: output with no client is dropped, the client's bytes
 * reach the frontend under flow control, the frontend's reach the client, a
 * second client waits until the first leaves and then gets the channel.
 */
static void test_socket_unix(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("vireo-chardev-XXXXXX", &err);
    g_autofree char *path = g_build_filename(dir, "c0.sock", NULL);
    VmChardev c = vm_chardev("c0", VM_CHARDEV_SOCKET, path);
    Sink s = { .got = g_byte_array_new(), .room = 3 };
    bool writable = false;

    Chardev *chr = chardev_open(&c, &err);
    g_assert_no_error(err);
    chardev_set_input_full(chr, sink_input, sink_can_read, &s);
    /* Nobody listens yet: output is dropped, and a writability waiter is called back at once. */
    g_assert_cmpuint(chardev_write_nonblocking(chr, (const uint8_t *)"lost", 4), ==, 4);
    chardev_write(chr, (const uint8_t *)"lost too", 8);
    chardev_notify_writable(chr, flag_set, &writable);
    ITERATE_UNTIL(writable);
    g_assert_true(writable);

    int a = unix_client(path);
    g_assert_cmpint(write(a, "hello", 5), ==, 5);
    ITERATE_UNTIL(s.got->len >= 3);
    g_assert_cmpmem(s.got->data, s.got->len, "hel", 3);
    g_assert_true(no_input_for_a_while(&s, 3)); /* the frontend is full */
    s.room = 100;
    chardev_accept_input(chr);
    ITERATE_UNTIL(s.got->len >= 5);
    g_assert_cmpmem(s.got->data, s.got->len, "hello", 5);

    frontend_write_all(chr, "world");
    g_autofree char *w = read_exactly(a, 5);
    g_assert_cmpstr(w, ==, "world");
    chardev_write(chr, (const uint8_t *)"\r\n", 2);
    g_autofree char *crlf = read_exactly(a, 2);
    g_assert_cmpstr(crlf, ==, "\r\n");

    /* A second client is not served while the first is connected. */
    int b = unix_client(path);
    g_assert_cmpint(write(b, "second", 6), ==, 6);
    g_assert_true(no_input_for_a_while(&s, 5));

    /* The first leaves: output is dropped until the chardev notices, then the second is served. */
    close(a);
    ITERATE_UNTIL(s.got->len >= 11);
    g_assert_cmpmem(s.got->data, s.got->len, "hellosecond", 11);
    frontend_write_all(chr, "to b");
    g_autofree char *tob = read_exactly(b, 4);
    g_assert_cmpstr(tob, ==, "to b");

    /* The socket file goes with the chardev. */
    close(b);
    chardev_free(chr);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_byte_array_unref(s.got);
    g_rmdir(dir);
}

/* A client that stops reading: the frontend is told when there is room, or when the client left. */
static void test_socket_backpressure(void)
{
    g_autoptr(GError) err = NULL;
    VmChardev c = { .id = (char *)"t0", .backend = VM_CHARDEV_SOCKET, .host = (char *)"127.0.0.1",
                    .port = (char *)"0", .fd = -1 };
    Sink s = { .got = g_byte_array_new(), .room = 100 };
    g_autoptr(Chardev) chr = chardev_open(&c, &err);
    g_assert_no_error(err);
    int port = chardev_socket_port(chr);
    g_assert_cmpint(port, >, 0);
    chardev_set_input_full(chr, sink_input, sink_can_read, &s);

    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(write(fd, "x", 1), ==, 1);
    ITERATE_UNTIL(s.got->len == 1); /* accepted */
    g_assert_cmpuint(s.got->len, ==, 1);

    /* Fill the socket buffers: a non-blocking write takes less than asked at some point. */
    static uint8_t chunk[65536];
    size_t total = 0, n;
    memset(chunk, 'z', sizeof(chunk));
    for (int i = 0; i < 1000 && (n = chardev_write_nonblocking(chr, chunk, sizeof(chunk))) == sizeof(chunk); i++) {
        total += n;
    }
    g_assert_cmpuint(n, <, sizeof(chunk));
    total += n;
    bool writable = false;
    chardev_notify_writable(chr, flag_set, &writable);
    g_assert_true(no_input_for_a_while(&s, 1));
    g_assert_false(writable);

    /* The client drains what was sent: the waiter runs. */
    g_autofree uint8_t *sink = g_malloc(total);
    size_t got = 0;
    while (got < total) {
        ssize_t r = read(fd, sink + got, total - got);
        g_assert_cmpint(r, >, 0);
        got += r;
        g_main_context_iteration(NULL, FALSE);
    }
    ITERATE_UNTIL(writable);
    g_assert_true(writable);

    /* Full again, then the client leaves: the waiter runs and output is dropped without error. */
    while (chardev_write_nonblocking(chr, chunk, sizeof(chunk)) == sizeof(chunk)) {
    }
    writable = false;
    chardev_notify_writable(chr, flag_set, &writable);
    close(fd);
    ITERATE_UNTIL(writable);
    g_assert_true(writable);
    ITERATE_UNTIL(chardev_write_nonblocking(chr, chunk, sizeof(chunk)) == sizeof(chunk));
    g_assert_cmpuint(chardev_write_nonblocking(chr, chunk, sizeof(chunk)), ==, sizeof(chunk));
    g_byte_array_unref(s.got);
}

static void test_open_file_null(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dir = g_dir_make_tmp("vireo-chardev-XXXXXX", &err);
    g_autofree char *path = g_build_filename(dir, "out", NULL);
    g_autofree char *contents = NULL;
    VmChardev f = vm_chardev("f0", VM_CHARDEV_FILE, path);
    VmChardev n = vm_chardev("n0", VM_CHARDEV_NULL, NULL);

    g_assert_true(g_file_set_contents(path, "old", -1, NULL));
    Chardev *chr = chardev_open(&f, &err);
    g_assert_no_error(err);
    frontend_write_all(chr, "guest says hi\n");
    chardev_free(chr);
    g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
    g_assert_cmpstr(contents, ==, "guest says hi\n");

    chr = chardev_open(&n, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(chardev_write_nonblocking(chr, (const uint8_t *)"gone", 4), ==, 4);
    chardev_free(chr);
    g_unlink(path);
    g_rmdir(dir);
}

/* Host-side failures at open: one line naming the chardev and the reason. */
static void test_open_errors(void)
{
    g_autofree char *dir = g_dir_make_tmp("vireo-chardev-XXXXXX", NULL);
    g_autofree char *plain = g_build_filename(dir, "plain", NULL);
    g_autofree char *long_path = g_strnfill(200, 'x');
    int p[2];
    g_assert_true(g_file_set_contents(plain, "mine", -1, NULL));
    g_assert_cmpint(pipe(p), ==, 0);
    static char nodir[] = "/nonexistent-vireo-dir/x";
    const struct {
        VmChardev c;
        const char *mentions;
    } cases[] = {
        { vm_chardev("f", VM_CHARDEV_FILE, nodir), "chardev 'f': cannot open '/nonexistent-vireo-dir/x'" },
        { vm_chardev("u", VM_CHARDEV_SOCKET, nodir), "chardev 'u': cannot listen on '/nonexistent-vireo-dir/x'" },
        { vm_chardev("r", VM_CHARDEV_SOCKET, plain), "exists and is not a socket" },
        { vm_chardev("l", VM_CHARDEV_SOCKET, long_path), "is longer than" },
        { { .id = (char *)"p", .backend = VM_CHARDEV_SOCKET, .fd = p[0] }, "is not a socket" },
        { { .id = (char *)"h", .backend = VM_CHARDEV_SOCKET, .host = (char *)"no-such-host.invalid",
            .port = (char *)"4444", .fd = -1 }, "cannot resolve 'no-such-host.invalid'" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        g_assert_null(chardev_open(&cases[i].c, &err));
        g_assert_nonnull(err);
        if (!strstr(err->message, cases[i].mentions) || strchr(err->message, '\n')) {
            g_error("case %zu: '%s' does not mention '%s' on one line", i, err->message, cases[i].mentions);
        }
    }
    /* The user's file is left alone. */
    g_autofree char *contents = NULL;
    g_assert_true(g_file_get_contents(plain, &contents, NULL, NULL));
    g_assert_cmpstr(contents, ==, "mine");
    close(p[0]);
    close(p[1]);
    g_unlink(plain);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/chardev/file", test_file);
    g_test_add_func("/chardev/errors", test_errors);
    g_test_add_func("/chardev/null", test_null);
    g_test_add_func("/chardev/inject", test_inject);
    g_test_add_func("/chardev/stdio", test_stdio);
    g_test_add_func("/chardev/socket-unix", test_socket_unix);
    g_test_add_func("/chardev/socket-backpressure", test_socket_backpressure);
    g_test_add_func("/chardev/open-file-null", test_open_file_null);
    g_test_add_func("/chardev/open-errors", test_open_errors);
    return g_test_run();
}
