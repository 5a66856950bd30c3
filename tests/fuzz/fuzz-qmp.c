/*
 * libFuzzer target for QMP input: the bytes are one client's side of a
 * session. Two checks per input:
 *  1. The JSON splitter cuts the same values whether the bytes arrive at once
 *     or one by one (with small limits, so the limit paths are reached too).
 *  2. A real session (socketpair, greeting, splitter, command table, a fake VM
 *     behind MonitorVmOps) takes the bytes without crashing, leaking or
 *     logging a critical, answers only with lines that are JSON objects, and
 *     lets the client go when it hangs up.
 * ASan/UBSan and LeakSanitizer do the rest.
 */
#include "monitor/json-stream.h"
#include "monitor/monitor.h"
#include <errno.h>
#include <glib-unix.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SMALL_MAX_SIZE 512
#define SMALL_MAX_DEPTH 16

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz-qmp: check failed: %s: ", #cond);          \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* The fake VM: it only records what was asked, as the unit tests' does. */
typedef struct {
    const char *status;
    unsigned calls;
} FakeVm;

static const char *fake_status(void *vm) { return ((FakeVm *)vm)->status; }
static void fake_stop(void *vm) { ((FakeVm *)vm)->status = "paused"; }
static void fake_cont(void *vm) { ((FakeVm *)vm)->status = "running"; }
static void fake_reset(void *vm) { ((FakeVm *)vm)->calls++; }
static bool fake_powerdown(void *vm, GError **err) { ((FakeVm *)vm)->calls++; return true; }
static void fake_quit(void *vm) { ((FakeVm *)vm)->calls++; }
static const char *fake_name(void *vm) { return "fuzz"; }
static unsigned fake_cpu_count(void *vm) { return 2; }

static void fake_cpu_info(void *vm, unsigned i, MonitorCpu *out)
{
    *out = (MonitorCpu){ .tid = 100 + (int)i, .socket = i };
}

/* Never touches the file system: a fuzzer must not write files it names. */
static bool fake_pmemsave(void *vm, uint64_t addr, uint64_t size, const char *file, GError **err)
{
    ((FakeVm *)vm)->calls++;
    return true;
}

static const MonitorVmOps fake_ops = {
    .status = fake_status,
    .stop = fake_stop,
    .cont = fake_cont,
    .system_reset = fake_reset,
    .system_powerdown = fake_powerdown,
    .quit = fake_quit,
    .name = fake_name,
    .cpu_count = fake_cpu_count,
    .cpu_info = fake_cpu_info,
    .pmemsave = fake_pmemsave,
};

/* 1. Splitting does not depend on chunking. */

static bool collect(const char *text, size_t len, const char *why, void *opaque)
{
    GPtrArray *out = opaque;
    if (!text) {
        g_ptr_array_add(out, g_strconcat("limit: ", why, NULL));
        return true;
    }
    CHECK(text[len] == '\0', "value of %zu bytes not NUL-terminated", len);
    g_ptr_array_add(out, g_strndup(text, len));
    return true;
}

static GPtrArray *split(const uint8_t *data, size_t size, size_t chunk)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(JsonStream) js = json_stream_new(SMALL_MAX_SIZE, SMALL_MAX_DEPTH, collect, out);
    for (size_t off = 0; off < size; off += chunk) {
        json_stream_feed(js, (const char *)data + off, MIN(chunk, size - off));
    }
    return out;
}

static void check_splitter(const uint8_t *data, size_t size)
{
    g_autoptr(GPtrArray) whole = split(data, size, size ? size : 1);
    g_autoptr(GPtrArray) bytes = split(data, size, 1);
    CHECK(whole->len == bytes->len, "%u values at once, %u byte by byte", whole->len, bytes->len);
    for (guint i = 0; i < whole->len; i++) {
        CHECK(strcmp(whole->pdata[i], bytes->pdata[i]) == 0, "value %u differs: '%s' vs '%s'", i,
              (char *)whole->pdata[i], (char *)bytes->pdata[i]);
    }
}

/* 2. A session. */

static void pump(void)
{
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

/* Read what the server wrote so far; false at end of stream. */
static bool drain(int fd, GString *out)
{
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            g_string_append_len(out, buf, n);
            continue;
        }
        return n < 0 && (errno == EAGAIN || errno == EINTR);
    }
}

static void check_replies(GString *out)
{
    /*
     * FUZZ_QMP_ALLOW_BAD_UTF8=1 repairs replies before the check, to look past
     * a known finding (error messages echoing invalid UTF-8) while exploring.
     */
    static int allow_bad_utf8 = -1;
    if (allow_bad_utf8 < 0) {
        allow_bad_utf8 = g_getenv("FUZZ_QMP_ALLOW_BAD_UTF8") != NULL;
    }
    if (allow_bad_utf8) {
        g_autofree char *valid = g_utf8_make_valid(out->str, out->len);
        g_string_assign(out, valid);
    }
    char *p = out->str;
    char *nl;
    while ((nl = strstr(p, "\r\n"))) {
        g_autoptr(JsonParser) parser = json_parser_new();
        g_autoptr(GError) err = NULL;
        CHECK(json_parser_load_from_data(parser, p, nl - p, &err), "reply is not JSON (%s): %.*s",
              err->message, (int)(nl - p), p);
        JsonNode *root = json_parser_get_root(parser);
        CHECK(root && JSON_NODE_HOLDS_OBJECT(root), "reply is not an object: %.*s", (int)(nl - p), p);
        p = nl + 2;
    }
    CHECK(*p == '\0', "output ends without \\r\\n: %s", p);
}

static void check_session(const uint8_t *data, size_t size)
{
    FakeVm vm = { .status = "running" };
    MonitorServer *s = monitor_server_new(&fake_ops, &vm);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", g_strerror(errno));
    monitor_server_add_client(s, sv[0]);
    int fd = sv[1];
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    g_autoptr(GString) out = g_string_new(NULL);

    size_t off = 0;
    bool open = true;
    while (off < size && open) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            break; /* the server dropped the client (a limit) */
        }
        pump();
        open = drain(fd, out);
    }
    shutdown(fd, SHUT_WR);
    /* The server must notice the hang-up and free the session. */
    for (int i = 0; i < 1000 && monitor_server_client_count(s) > 0; i++) {
        pump();
        drain(fd, out);
    }
    CHECK(monitor_server_client_count(s) == 0, "the session outlived its client's hang-up");
    drain(fd, out); /* the rest, up to the end of stream */
    monitor_server_free(s);
    close(fd);
    check_replies(out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* A critical is a broken assumption in the code under test: a finding. */
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_splitter(data, size);
    check_session(data, size);
    return 0;
}
