/*
 * The QMP server without a VM: clients on socketpairs (and one real unix
 * socket), a fake VM behind MonitorVmOps, and the main context iterated by
 * hand while a client waits for its answer.
 */
#include "monitor/json-stream.h"
#include "monitor/monitor.h"
#include <glib-unix.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct {
    const char *status;
    int stops, conts, resets, powerdowns, quits;
    uint64_t saved_addr, saved_size;
} FakeVm;

static const char *fake_status(void *vm) { return ((FakeVm *)vm)->status; }
static void fake_stop(void *vm) { ((FakeVm *)vm)->stops++; ((FakeVm *)vm)->status = "paused"; }
static void fake_cont(void *vm) { ((FakeVm *)vm)->conts++; ((FakeVm *)vm)->status = "running"; }
static void fake_reset(void *vm) { ((FakeVm *)vm)->resets++; }
static bool fake_powerdown(void *vm, GError **err) { ((FakeVm *)vm)->powerdowns++; return true; }
static void fake_quit(void *vm) { ((FakeVm *)vm)->quits++; }
static const char *fake_name(void *vm) { return "fake"; }
static unsigned fake_cpu_count(void *vm) { return 2; }

static void fake_cpu_info(void *vm, unsigned i, MonitorCpu *out)
{
    *out = (MonitorCpu){ .tid = 1000 + i, .socket = i, .core = 0, .thread = 0 };
}

static bool fake_pmemsave(void *vm, uint64_t addr, uint64_t size, const char *file, GError **err)
{
    ((FakeVm *)vm)->saved_addr = addr;
    ((FakeVm *)vm)->saved_size = size;
    return true;
}

static bool fake_registers(void *vm, unsigned cpu, GString *out, GError **err)
{
    g_string_append_printf(out, "RIP=%016x\nCPU=%u\n", 0x1000, cpu);
    return true;
}

static bool fake_disassemble(void *vm, unsigned cpu, bool at_pc, uint64_t addr, unsigned count, GString *out,
                             GError **err)
{
    if (!at_pc && addr == 0xdead) {
        g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "Cannot access memory at 0x%x", 0xdead);
        return false;
    }
    for (unsigned i = 0; i < count; i++) {
        g_string_append_printf(out, "0x%llx: hlt\n", (unsigned long long)(at_pc ? 0x1000 : addr) + i);
    }
    return true;
}

static const char *fake_serial(void *vm, unsigned index)
{
    return index == 0 ? "stdio" : NULL;
}

static const MonitorVmOps fake_ops = {
    fake_status, fake_stop, fake_cont, fake_reset, fake_powerdown, fake_quit,
    fake_name, fake_cpu_count, fake_cpu_info, fake_pmemsave,
    fake_registers, fake_disassemble, fake_serial,
};

typedef struct {
    FakeVm vm;
    MonitorServer *s;
} Fixture;

static void setup(Fixture *f, gconstpointer data)
{
    f->vm = (FakeVm){ .status = "running" };
    f->s = monitor_server_new(&fake_ops, &f->vm);
}

static void teardown(Fixture *f, gconstpointer data)
{
    monitor_server_free(f->s);
}

typedef struct {
    int fd;
    GString *in; /* received, not yet returned as lines */
    bool eof;
} Client;

static void pump(void)
{
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}

static Client *client_new_fd(int fd)
{
    Client *c = g_new0(Client, 1);
    c->fd = fd;
    c->in = g_string_new(NULL);
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    return c;
}

static Client *client_new(Fixture *f)
{
    int sv[2];
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    monitor_server_add_client(f->s, sv[0]);
    return client_new_fd(sv[1]);
}

static void client_free(Client *c)
{
    close(c->fd);
    g_string_free(c->in, TRUE);
    g_free(c);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Client, client_free)

/* Send everything, letting the server run whenever the socket is full. */
static bool client_send_len(Client *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) {
            pump();
            g_usleep(100);
            continue;
        }
        if (n < 0) {
            return false; /* the server closed the connection */
        }
        data += n;
        len -= n;
    }
    return true;
}

static void client_send(Client *c, const char *text)
{
    g_assert_true(client_send_len(c, text, strlen(text)));
}

/* The next line (without "\r\n"), or NULL at end of stream; fails after 10 s. */
static char *client_line(Client *c)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    for (;;) {
        char *nl = strstr(c->in->str, "\r\n");
        if (nl) {
            char *line = g_strndup(c->in->str, nl - c->in->str);
            g_string_erase(c->in, 0, nl - c->in->str + 2);
            return line;
        }
        if (c->eof) {
            return NULL;
        }
        pump();
        char buf[4096];
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            g_string_append_len(c->in, buf, n);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->eof = true;
        } else {
            g_assert_cmpint(g_get_monotonic_time(), <, deadline);
            g_usleep(100);
        }
    }
}

/* The next line parsed; it must end with "\r\n" and be an object. */
static JsonObject *client_read(Client *c)
{
    g_autofree char *line = client_line(c);
    g_assert_nonnull(line);
    g_autoptr(JsonParser) p = json_parser_new();
    g_assert_true(json_parser_load_from_data(p, line, -1, NULL));
    g_assert_true(JSON_NODE_HOLDS_OBJECT(json_parser_get_root(p)));
    return json_object_ref(json_node_get_object(json_parser_get_root(p)));
}

static JsonObject *client_cmd(Client *c, const char *text)
{
    client_send(c, text);
    return client_read(c);
}

/* Check an error reply: class and description. */
static void expect_error(JsonObject *reply, const char *class, const char *desc_prefix)
{
    g_assert_true(json_object_has_member(reply, "error"));
    JsonObject *e = json_object_get_object_member(reply, "error");
    g_assert_cmpstr(json_object_get_string_member(e, "class"), ==, class);
    const char *desc = json_object_get_string_member(e, "desc");
    if (!g_str_has_prefix(desc, desc_prefix)) {
        g_error("error '%s' does not start with '%s'", desc, desc_prefix);
    }
}

static void cmd_error(Client *c, const char *text, const char *class, const char *desc_prefix)
{
    g_autoptr(JsonObject) r = client_cmd(c, text);
    expect_error(r, class, desc_prefix);
}

static JsonNode *cmd_return(Client *c, const char *text)
{
    g_autoptr(JsonObject) r = client_cmd(c, text);
    if (!json_object_has_member(r, "return")) {
        g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), r);
        g_autofree char *s = json_to_string(n, FALSE);
        g_error("%s: no return: %s", text, s);
    }
    return json_node_copy(json_object_get_member(r, "return"));
}

/* A client past its greeting and negotiation. */
static Client *client_ready(Fixture *f)
{
    Client *c = client_new(f);
    g_autoptr(JsonObject) greeting = client_read(c);
    g_autoptr(JsonNode) r = cmd_return(c, "{\"execute\": \"qmp_capabilities\"}");
    return c;
}

static void test_greeting(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) c = client_new(f);
    g_autofree char *line = client_line(c);
    g_assert_cmpstr(line, ==,
                    "{\"QMP\":{\"version\":{\"qemu\":{\"micro\":0,\"minor\":0,\"major\":10},"
                    "\"package\":\"vireo " VIREO_VERSION "\"},\"capabilities\":[]}}");
}

static void test_negotiation(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) c = client_new(f);
    g_autoptr(JsonObject) greeting = client_read(c);
    cmd_error(c, "{\"execute\": \"query-status\"}", "CommandNotFound",
              "Expecting capabilities negotiation with 'qmp_capabilities'");
    cmd_error(c, "{\"execute\": \"no-such\"}", "CommandNotFound", "Expecting capabilities negotiation");
    g_assert_cmpint(f->vm.stops, ==, 0);
    cmd_error(c, "{\"execute\": \"stop\"}", "CommandNotFound", "Expecting capabilities negotiation");
    g_assert_cmpint(f->vm.stops, ==, 0);
    g_autoptr(JsonNode) r = cmd_return(c, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": []}}");
    cmd_error(c, "{\"execute\": \"qmp_capabilities\"}", "CommandNotFound",
              "Capabilities negotiation is already complete, command ignored");
    g_autoptr(JsonNode) st = cmd_return(c, "{\"execute\": \"query-status\"}");
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(st), "status"), ==, "running");
}

static void test_id(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) c = client_new(f);
    g_autoptr(JsonObject) greeting = client_read(c);
    static const char *const ids[] = { "1", "\"abc\"", "[1,{\"x\":null}]", "{\"a\":true}", "null", "-2.5" };
    for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
        /* Before negotiation (an error) and after (a return): id echoed both ways. */
        for (int k = 0; k < 2; k++) {
            g_autofree char *cmd = g_strdup_printf("{\"id\": %s, \"execute\": \"%s\"}", ids[i],
                                                   k ? "query-kvm" : "query-kvm");
            g_autoptr(JsonObject) r = client_cmd(c, cmd);
            JsonNode *id = json_object_get_member(r, "id");
            g_assert_nonnull(id);
            g_autofree char *got = json_to_string(id, FALSE);
            g_autoptr(JsonNode) want = json_from_string(ids[i], NULL);
            g_autofree char *want_s = json_to_string(want, FALSE);
            g_assert_cmpstr(got, ==, want_s);
            if (i == 0 && k == 0) {
                g_autoptr(JsonNode) ok = cmd_return(c, "{\"execute\": \"qmp_capabilities\"}");
            }
        }
    }
    g_autoptr(JsonObject) r = client_cmd(c, "{\"execute\": \"query-kvm\"}");
    g_assert_false(json_object_has_member(r, "id"));
}

static void test_errors(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) c = client_ready(f);
    cmd_error(c, "{\"execute\": \"no-such\"}", "CommandNotFound", "The command no-such has not been found");
    cmd_error(c, "{\"execute\": \"device_del\", \"arguments\": {\"id\": \"net0\"}}", "DeviceNotFound",
              "Device 'net0' not found");
    cmd_error(c, "{\"arguments\": {}}", "GenericError", "QMP input lacks member 'execute'");
    cmd_error(c, "{\"execute\": 42}", "GenericError", "QMP input member 'execute' must be a string");
    cmd_error(c, "{\"execute\": null}", "GenericError", "QMP input member 'execute' must be a string");
    cmd_error(c, "{\"execute\": \"stop\", \"arguments\": 1}", "GenericError",
              "QMP input member 'arguments' must be an object");
    cmd_error(c, "{\"execute\": \"stop\", \"extra\": 1}", "GenericError", "QMP input member 'extra' is unexpected");
    cmd_error(c, "[1, 2]", "GenericError", "QMP input must be a JSON object");
    cmd_error(c, "\"execute\"", "GenericError", "QMP input must be a JSON object");
    cmd_error(c, "42 ", "GenericError", "QMP input must be a JSON object");
    g_assert_cmpint(f->vm.stops, ==, 0);
}

static void test_args(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) c = client_ready(f);
    cmd_error(c, "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 0, \"size\": 1}}", "GenericError",
              "Parameter 'filename' is missing");
    cmd_error(c, "{\"execute\": \"pmemsave\"}", "GenericError", "Parameter 'val' is missing");
    cmd_error(c, "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": \"0\", \"size\": 1, \"filename\": \"f\"}}",
              "GenericError", "Parameter 'val' expects integer");
    cmd_error(c, "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 1.5, \"size\": 1, \"filename\": \"f\"}}",
              "GenericError", "Parameter 'val' expects integer");
    cmd_error(c, "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 0, \"size\": 1, \"filename\": 3}}",
              "GenericError", "Parameter 'filename' expects string");
    cmd_error(c, "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 0, \"size\": 1, \"filename\": \"f\", \"x\": 1}}",
              "GenericError", "Parameter 'x' is unexpected");
    cmd_error(c, "{\"execute\": \"stop\", \"arguments\": {\"force\": true}}", "GenericError",
              "Parameter 'force' is unexpected");
    g_assert_cmpint(f->vm.stops, ==, 0);
    g_autoptr(JsonNode) r = cmd_return(c, "{\"execute\": \"pmemsave\", \"arguments\": "
                                          "{\"val\": 4096, \"size\": 512, \"filename\": \"f\"}}");
    g_assert_cmpuint(f->vm.saved_addr, ==, 4096);
    g_assert_cmpuint(f->vm.saved_size, ==, 512);
}

static void test_commands(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) c = client_ready(f);
    g_autoptr(JsonNode) st = cmd_return(c, "{\"execute\": \"stop\"}");
    g_assert_cmpint(f->vm.stops, ==, 1);
    g_autoptr(JsonNode) q = cmd_return(c, "{\"execute\": \"query-status\"}");
    JsonObject *qo = json_node_get_object(q);
    g_assert_cmpstr(json_object_get_string_member(qo, "status"), ==, "paused");
    g_assert_false(json_object_get_boolean_member(qo, "running"));
    g_assert_false(json_object_get_boolean_member(qo, "singlestep"));
    g_autoptr(JsonNode) co = cmd_return(c, "{\"execute\": \"cont\"}");
    g_autoptr(JsonNode) rs = cmd_return(c, "{\"execute\": \"system_reset\"}");
    g_autoptr(JsonNode) pd = cmd_return(c, "{\"execute\": \"system_powerdown\"}");
    g_assert_cmpint(f->vm.conts + f->vm.resets + f->vm.powerdowns, ==, 3);
    g_autoptr(JsonNode) nm = cmd_return(c, "{\"execute\": \"query-name\"}");
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(nm), "name"), ==, "fake");
    g_autoptr(JsonNode) cpus = cmd_return(c, "{\"execute\": \"query-cpus-fast\"}");
    JsonArray *ca = json_node_get_array(cpus);
    g_assert_cmpuint(json_array_get_length(ca), ==, 2);
    JsonObject *c1 = json_array_get_object_element(ca, 1);
    g_assert_cmpint(json_object_get_int_member(c1, "cpu-index"), ==, 1);
    g_assert_cmpint(json_object_get_int_member(c1, "thread-id"), ==, 1001);
    g_assert_cmpstr(json_object_get_string_member(c1, "qom-path"), ==, "/machine/unattached/device[1]");
    g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(c1, "props"), "socket-id"), ==, 1);
    g_autoptr(JsonNode) ms = cmd_return(c, "{\"execute\": \"query-machines\"}");
    JsonObject *pc = json_array_get_object_element(json_node_get_array(ms), 0);
    g_assert_cmpstr(json_object_get_string_member(pc, "name"), ==, "pc");
    g_assert_true(json_object_get_boolean_member(pc, "is-default"));
    g_autoptr(JsonNode) v = cmd_return(c, "{\"execute\": \"query-version\"}");
    g_assert_cmpint(json_object_get_int_member(json_object_get_object_member(json_node_get_object(v), "qemu"),
                                               "major"), ==, 10);
    g_autoptr(JsonNode) qu = cmd_return(c, "{\"execute\": \"quit\"}");
    g_assert_cmpint(f->vm.quits, ==, 1);
}

/* query-commands and query-qmp-schema come from the same table. */
static void test_schema(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) c = client_ready(f);
    g_autoptr(JsonNode) cmds = cmd_return(c, "{\"execute\": \"query-commands\"}");
    g_autoptr(JsonNode) schema = cmd_return(c, "{\"execute\": \"query-qmp-schema\"}");
    g_autoptr(GHashTable) entries = g_hash_table_new(g_str_hash, g_str_equal);
    JsonArray *sa = json_node_get_array(schema);
    for (guint i = 0; i < json_array_get_length(sa); i++) {
        JsonObject *e = json_array_get_object_element(sa, i);
        const char *name = json_object_get_string_member(e, "name");
        g_assert_false(g_hash_table_contains(entries, name));
        g_hash_table_insert(entries, (gpointer)name, e);
    }
    JsonArray *ca = json_node_get_array(cmds);
    g_assert_cmpuint(json_array_get_length(ca), >=, 16);
    unsigned commands = 0;
    for (guint i = 0; i < json_array_get_length(ca); i++) {
        const char *name = json_object_get_string_member(json_array_get_object_element(ca, i), "name");
        JsonObject *e = g_hash_table_lookup(entries, name);
        g_assert_nonnull(e);
        g_assert_cmpstr(json_object_get_string_member(e, "meta-type"), ==, "command");
        JsonObject *arg = g_hash_table_lookup(entries, json_object_get_string_member(e, "arg-type"));
        g_assert_nonnull(arg);
        g_assert_cmpstr(json_object_get_string_member(arg, "meta-type"), ==, "object");
        /* Every member's type is described too. */
        JsonArray *members = json_object_get_array_member(arg, "members");
        for (guint k = 0; k < json_array_get_length(members); k++) {
            const char *t = json_object_get_string_member(json_array_get_object_element(members, k), "type");
            g_assert_nonnull(g_hash_table_lookup(entries, t));
        }
        g_assert_nonnull(g_hash_table_lookup(entries, json_object_get_string_member(e, "ret-type")));
        commands++;
    }
    for (guint i = 0; i < json_array_get_length(sa); i++) {
        JsonObject *e = json_array_get_object_element(sa, i);
        commands -= strcmp(json_object_get_string_member(e, "meta-type"), "command") == 0;
    }
    g_assert_cmpuint(commands, ==, 0);
    JsonObject *pm = g_hash_table_lookup(entries, "pmemsave-arg");
    JsonArray *members = json_object_get_array_member(pm, "members");
    g_assert_cmpuint(json_array_get_length(members), ==, 3);
    g_assert_cmpstr(json_object_get_string_member(json_array_get_object_element(members, 0), "type"), ==, "int");
    JsonObject *ev = g_hash_table_lookup(entries, "SHUTDOWN");
    g_assert_cmpstr(json_object_get_string_member(ev, "meta-type"), ==, "event");
}

static void test_malformed(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) c = client_ready(f);
    cmd_error(c, "{\"execute\": }", "GenericError", "JSON parse error, ");
    cmd_error(c, "{\"execute\": \"stop\" \"x\"}", "GenericError", "JSON parse error, ");
    cmd_error(c, "{\"execute\": \"stop\",}", "GenericError", "JSON parse error, ");
    cmd_error(c, "}", "GenericError", "JSON parse error, ");
    cmd_error(c, "nonsense ", "GenericError", "JSON parse error, ");
    /* Two values in one write, the first broken: the second still runs. */
    client_send(c, "{\"execute\" \"x\"}\n{\"execute\": \"query-kvm\", \"id\": 7}");
    g_autoptr(JsonObject) bad = client_read(c);
    expect_error(bad, "GenericError", "JSON parse error, ");
    g_autoptr(JsonObject) good = client_read(c);
    g_assert_cmpint(json_object_get_int_member(good, "id"), ==, 7);
    /* Whitespace of every JSON kind around and inside. */
    g_autoptr(JsonNode) r = cmd_return(c, "\r\n\t {\r\n\"execute\"\t:\n\"query-target\" }\n");
    g_assert_cmpstr(json_object_get_string_member(json_node_get_object(r), "arch"), ==, "x86_64");
    g_assert_cmpint(f->vm.stops, ==, 0);
}

/* After a limit: one error, then the connection closes; others carry on. */
static void expect_limit_close(Client *c, const char *why)
{
    g_autoptr(JsonObject) r = client_read(c);
    expect_error(r, "GenericError", "JSON parse error, ");
    g_assert_nonnull(strstr(json_object_get_string_member(json_object_get_object_member(r, "error"), "desc"), why));
    g_autofree char *eof = client_line(c);
    g_assert_null(eof);
}

static void test_too_large(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) other = client_ready(f);
    g_autoptr(Client) c = client_ready(f);
    const size_t chunk = 1 << 20;
    g_autofree char *a = g_malloc(chunk);
    memset(a, 'a', chunk);
    client_send(c, "{\"execute\": \"");
    bool open = true;
    for (size_t sent = 0; sent <= JSON_STREAM_MAX_SIZE && open; sent += chunk) {
        open = client_send_len(c, a, chunk);
    }
    expect_limit_close(c, "too large");
    pump();
    g_assert_cmpuint(monitor_server_client_count(f->s), ==, 1);
    g_autoptr(JsonNode) r = cmd_return(other, "{\"execute\": \"query-kvm\"}");
}

static void test_too_deep(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) other = client_ready(f);
    g_autoptr(Client) c = client_ready(f);
    g_autofree char *deep = g_malloc(100000 + 1);
    memset(deep, '[', 100000);
    deep[100000] = 0;
    client_send_len(c, deep, 100000); /* may fail half-way: the server hung up */
    expect_limit_close(c, "too deep");
    g_autoptr(JsonNode) r = cmd_return(other, "{\"execute\": \"query-kvm\"}");

    /* 1024 levels are still accepted (and then refused as not an object). */
    g_autoptr(Client) d = client_ready(f);
    GString *s = g_string_new(NULL);
    for (int i = 0; i < 1024; i++) {
        g_string_append_c(s, '[');
    }
    for (int i = 0; i < 1024; i++) {
        g_string_append_c(s, ']');
    }
    cmd_error(d, s->str, "GenericError", "QMP input must be a JSON object");
    g_string_free(s, TRUE);
}

static void test_garbage(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) other = client_ready(f);
    g_autoptr(GRand) rand = g_rand_new_with_seed(42);
    for (int round = 0; round < 20; round++) {
        g_autoptr(Client) c = client_ready(f);
        char buf[4096];
        for (size_t i = 0; i < sizeof(buf); i++) {
            buf[i] = (char)g_rand_int_range(rand, 0, 256);
        }
        client_send_len(c, buf, sizeof(buf));
        /* Drain whatever errors it earned; the connection may stay open. */
        pump();
        char drain[65536];
        while (recv(c->fd, drain, sizeof(drain), 0) > 0) {
        }
    }
    pump();
    g_autoptr(JsonNode) r = cmd_return(other, "{\"execute\": \"query-kvm\"}");
    g_assert_cmpint(f->vm.stops + f->vm.quits + f->vm.resets, ==, 0);
}

static void test_vanish(Fixture *f, gconstpointer data)
{
    Client *c = client_ready(f);
    client_send(c, "{\"execute\": \"query-st"); /* half a command */
    client_free(c);
    pump();
    g_assert_cmpuint(monitor_server_client_count(f->s), ==, 0);

    /* A whole command whose answer finds nobody. */
    c = client_ready(f);
    client_send(c, "{\"execute\": \"query-qmp-schema\"}{\"execute\": \"stop\"}");
    client_free(c);
    pump();
    g_assert_cmpuint(monitor_server_client_count(f->s), ==, 0);
    monitor_server_emit_event(f->s, "STOP", NULL);
}

static void test_events(Fixture *f, gconstpointer unused)
{
    g_autoptr(Client) a = client_ready(f);
    g_autoptr(Client) b = client_ready(f);
    g_autoptr(Client) raw = client_new(f); /* not negotiated: gets no events */
    g_autoptr(JsonObject) greeting = client_read(raw);
    g_autoptr(JsonObject) data = json_object_new();
    json_object_set_boolean_member(data, "guest", false);
    json_object_set_string_member(data, "reason", "host-qmp-system-reset");
    gint64 before = g_get_real_time() / G_USEC_PER_SEC;
    monitor_server_emit_event(f->s, "RESET", data);
    for (Client *c = a; c; c = c == a ? b : NULL) {
        g_autoptr(JsonObject) ev = client_read(c);
        g_assert_cmpstr(json_object_get_string_member(ev, "event"), ==, "RESET");
        JsonObject *d = json_object_get_object_member(ev, "data");
        g_assert_cmpstr(json_object_get_string_member(d, "reason"), ==, "host-qmp-system-reset");
        JsonObject *ts = json_object_get_object_member(ev, "timestamp");
        g_assert_cmpint(json_object_get_int_member(ts, "seconds"), >=, before);
        g_assert_cmpint(json_object_get_int_member(ts, "microseconds"), <, 1000000);
    }
    monitor_server_emit_event(f->s, "STOP", NULL);
    g_autoptr(JsonObject) stop = client_read(b);
    g_assert_cmpstr(json_object_get_string_member(stop, "event"), ==, "STOP");
    g_assert_false(json_object_has_member(stop, "data"));
    g_autoptr(JsonObject) r = client_cmd(raw, "{\"execute\": \"qmp_capabilities\", \"id\": 1}");
    g_assert_true(json_object_has_member(r, "return"));
}

static void test_listen_unix(Fixture *f, gconstpointer data)
{
    g_autofree char *dir = g_dir_make_tmp("test-qmp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", path);
    g_autoptr(GError) err = NULL;
    g_assert_true(monitor_server_listen(f->s, spec, &err));
    g_assert_no_error(err);
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
        g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
        g_autoptr(Client) c = client_new_fd(fd);
        g_autoptr(JsonObject) greeting = client_read(c);
        g_assert_true(json_object_has_member(greeting, "QMP"));
    }
    monitor_server_free(f->s);
    f->s = monitor_server_new(&fake_ops, &f->vm);
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    g_rmdir(dir);
}

/* Send @text with @fd attached (SCM_RIGHTS), as a client of getfd does. */
static void client_send_fd(Client *c, const char *text, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control = { 0 };
    struct iovec iov = { (void *)text, strlen(text) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof(control.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    g_assert_cmpint(sendmsg(c->fd, &msg, 0), ==, (ssize_t)strlen(text));
}

static void test_getfd(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) c = client_ready(f);
    cmd_error(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"a\"}}", "GenericError",
              "No file descriptor supplied via SCM_RIGHTS");
    cmd_error(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"a\"}}", "GenericError",
              "File descriptor named 'a' not found");

    int p1[2], p2[2];
    g_assert_cmpint(pipe(p1), ==, 0);
    g_assert_cmpint(pipe(p2), ==, 0);
    client_send_fd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"a\"}}", p1[1]);
    g_autoptr(JsonObject) r1 = client_read(c);
    g_assert_true(json_object_has_member(r1, "return"));
    close(p1[1]);
    /* A second getfd of the same name closes the first descriptor. */
    client_send_fd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"a\"}}", p2[1]);
    g_autoptr(JsonObject) r2 = client_read(c);
    g_assert_true(json_object_has_member(r2, "return"));
    close(p2[1]);
    char byte;
    g_assert_cmpint(read(p1[0], &byte, 1), ==, 0); /* every write end is closed */

    /* The server holds p2's write end: taking it gives a working descriptor. */
    int fd = monitor_take_fd(f->s, "a");
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, "x", 1), ==, 1);
    g_assert_cmpint(read(p2[0], &byte, 1), ==, 1);
    g_assert_cmpint(monitor_take_fd(f->s, "a"), ==, -1);
    close(fd);

    /* closefd closes it: the pipe sees end of file. */
    int p3[2];
    g_assert_cmpint(pipe(p3), ==, 0);
    client_send_fd(c, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"b\"}}", p3[1]);
    g_autoptr(JsonObject) r3 = client_read(c);
    g_assert_true(json_object_has_member(r3, "return"));
    close(p3[1]);
    g_autoptr(JsonNode) cl = cmd_return(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"b\"}}");
    g_assert_cmpint(read(p3[0], &byte, 1), ==, 0);
    cmd_error(c, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"b\"}}", "GenericError",
              "File descriptor named 'b' not found");
    close(p1[0]);
    close(p2[0]);
    close(p3[0]);
}

static char *hmp(Client *c, const char *line)
{
    g_autoptr(JsonObject) args = json_object_new();
    json_object_set_string_member(args, "command-line", line);
    g_autoptr(JsonObject) req = json_object_new();
    json_object_set_string_member(req, "execute", "human-monitor-command");
    json_object_set_object_member(req, "arguments", json_object_ref(args));
    g_autoptr(JsonNode) n = json_node_init_object(json_node_alloc(), req);
    g_autofree char *text = json_to_string(n, FALSE);
    g_autoptr(JsonNode) r = cmd_return(c, text);
    return g_strdup(json_node_get_string(r));
}

static void test_hmp(Fixture *f, gconstpointer data)
{
    g_autoptr(Client) c = client_ready(f);
    g_autofree char *st = hmp(c, "info status");
    g_assert_cmpstr(st, ==, "VM status: running\r\n");
    f->vm.status = "paused";
    g_autofree char *st2 = hmp(c, "  info   status ");
    g_assert_cmpstr(st2, ==, "VM status: paused\r\n");
    g_autofree char *regs = hmp(c, "info registers");
    g_assert_cmpstr(regs, ==, "RIP=0000000000001000\r\nCPU=0\r\n");
    g_autoptr(JsonNode) r1 = cmd_return(c, "{\"execute\": \"human-monitor-command\", \"arguments\": "
                                           "{\"command-line\": \"info registers\", \"cpu-index\": 1}}");
    g_assert_cmpstr(json_node_get_string(r1), ==, "RIP=0000000000001000\r\nCPU=1\r\n");
    cmd_error(c, "{\"execute\": \"human-monitor-command\", \"arguments\": "
                 "{\"command-line\": \"info registers\", \"cpu-index\": 2}}", "GenericError",
              "Parameter 'cpu-index'");
    g_autofree char *x = hmp(c, "x/2i $pc");
    g_assert_cmpstr(x, ==, "0x1000: hlt\r\n0x1001: hlt\r\n");
    g_autofree char *x2 = hmp(c, "x/1i 0x2000");
    g_assert_cmpstr(x2, ==, "0x2000: hlt\r\n");
    g_autofree char *x3 = hmp(c, "x/1i 0xdead");
    g_assert_cmpstr(x3, ==, "Cannot access memory at 0xdead\r\n");
    g_autofree char *x4 = hmp(c, "x/1i nowhere");
    g_assert_true(g_str_has_prefix(x4, "x: invalid address"));
    g_autofree char *u = hmp(c, "frobnicate 1 2");
    g_assert_cmpstr(u, ==, "unknown command: 'frobnicate'\r\n");
    g_autofree char *h = hmp(c, "help");
    g_assert_nonnull(strstr(h, "info "));
    g_autofree char *i = hmp(c, "info");
    g_assert_nonnull(strstr(i, "info registers"));
}

static void test_chardev_block(Fixture *f, gconstpointer data)
{
    g_autofree char *dir = g_dir_make_tmp("test-qmp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
    g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", path);
    g_autoptr(GError) err = NULL;
    g_assert_true(monitor_server_listen(f->s, spec, &err));
    g_autoptr(Client) c = client_ready(f);
    g_autoptr(JsonNode) cd = cmd_return(c, "{\"execute\": \"query-chardev\"}");
    JsonArray *a = json_node_get_array(cd);
    g_assert_cmpuint(json_array_get_length(a), ==, 2);
    JsonObject *s0 = json_array_get_object_element(a, 0);
    g_assert_cmpstr(json_object_get_string_member(s0, "label"), ==, "serial0");
    g_assert_cmpstr(json_object_get_string_member(s0, "filename"), ==, "stdio");
    g_assert_true(json_object_get_boolean_member(s0, "frontend-open"));
    JsonObject *m0 = json_array_get_object_element(a, 1);
    g_assert_cmpstr(json_object_get_string_member(m0, "label"), ==, "compat_monitor0");
    g_autofree char *fn = g_strdup_printf("unix:%s,server=on", path);
    g_assert_cmpstr(json_object_get_string_member(m0, "filename"), ==, fn);
    g_autoptr(JsonNode) blk = cmd_return(c, "{\"execute\": \"query-block\"}");
    g_assert_cmpuint(json_array_get_length(json_node_get_array(blk)), ==, 0);
    monitor_server_free(f->s);
    f->s = monitor_server_new(&fake_ops, &f->vm);
    g_rmdir(dir);
}

/* -chardev socket,fd=N: only a listening socket is accepted, and then served. */
static void test_listen_fd(Fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    int p[2];
    g_assert_cmpint(pipe(p), ==, 0);
    g_assert_false(monitor_server_listen_fd(f->s, "c", p[0], &err));
    g_assert_nonnull(strstr(err->message, "not a socket"));
    g_clear_error(&err);
    close(p[0]);
    close(p[1]);
    int sv[2];
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    g_assert_false(monitor_server_listen_fd(f->s, "c", sv[0], &err));
    g_assert_nonnull(strstr(err->message, "not listening"));
    g_clear_error(&err);
    close(sv[0]);
    close(sv[1]);

    g_autofree char *dir = g_dir_make_tmp("test-qmp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(bind(l, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(l, 1), ==, 0);
    g_assert_true(monitor_server_listen_fd(f->s, "c", l, &err));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_autoptr(Client) c = client_new_fd(fd);
    g_autoptr(JsonObject) greeting = client_read(c);
    g_assert_true(json_object_has_member(greeting, "QMP"));
    monitor_server_free(f->s);
    f->s = monitor_server_new(&fake_ops, &f->vm);
    g_unlink(path);
    g_rmdir(dir);
}

static void test_addresses(void)
{
    static const char *const good[] = {
        "unix:/tmp/x,server=on,wait=off", "unix:/tmp/a,server,nowait", "tcp:localhost:4444,server=on,wait=off",
        "tcp:[::1]:4444,server=on,wait=off", "tcp::4444,server=on,wait=off",
    };
    static const char *const bad[] = {
        "stdio", "unix:/tmp/x", "unix:/tmp/x,server=on", "unix:/tmp/x,server=off,wait=off",
        "unix:,server=on,wait=off", "tcp:localhost,server=on,wait=off", "tcp:host:99999,server=on,wait=off",
        "unix:/tmp/x,server=on,wait=off,bogus=1", "unix:/tmp/x,server=maybe,wait=off",
    };
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        g_autoptr(GError) err = NULL;
        if (!monitor_address_check(good[i], &err)) {
            g_error("%s: %s", good[i], err->message);
        }
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        g_assert_false(monitor_address_check(bad[i], &err));
        g_assert_nonnull(err);
        g_assert_null(strchr(err->message, '\n'));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define T(path, fn) g_test_add("/qmp/" path, Fixture, NULL, setup, fn, teardown)
    T("greeting", test_greeting);
    T("negotiation", test_negotiation);
    T("id", test_id);
    T("errors", test_errors);
    T("args", test_args);
    T("commands", test_commands);
    T("schema", test_schema);
    T("malformed", test_malformed);
    T("too-large", test_too_large);
    T("too-deep", test_too_deep);
    T("garbage", test_garbage);
    T("vanish", test_vanish);
    T("events", test_events);
    T("listen-unix", test_listen_unix);
    T("getfd", test_getfd);
    T("hmp", test_hmp);
    T("chardev-block", test_chardev_block);
    T("listen-fd", test_listen_fd);
#undef T
    g_test_add_func("/qmp/addresses", test_addresses);
    return g_test_run();
}
