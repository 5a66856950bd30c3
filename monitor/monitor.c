#define G_LOG_DOMAIN "monitor"
/*
 * QMP sessions over sockets. Input goes through the JSON splitter to the
 * command table; output (replies, events) is queued per client and written
 * without blocking, so a slow or vanished client never stalls the main loop
 * that also runs the VM's devices.
 */
#include "monitor-internal.h"
#include "monitor/json-stream.h"
#include "util/keyval.h"
#include <gio/gunixsocketaddress.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536
/* A client that does not read its events is dropped past this much backlog. */
#define MAX_BACKLOG (16u << 20)
#define FLUSH_TIMEOUT_S 2
/* Descriptors a client may have waiting for getfd; more are closed unread. */
#define MAX_PASSED_FDS 16

typedef struct {
    char *unix_path;
    char *host, *port;
} MonitorAddress;

static void address_clear(MonitorAddress *a)
{
    g_free(a->unix_path);
    g_free(a->host);
    g_free(a->port);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(MonitorAddress, address_clear)

static bool address_parse(const char *spec, MonitorAddress *a, GError **err)
{
    const char *rest;
    bool is_unix = g_str_has_prefix(spec, "unix:");
    if (is_unix || g_str_has_prefix(spec, "tcp:")) {
        rest = strchr(spec, ':') + 1;
    } else {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC,
                    "expected unix:PATH,server=on,wait=off or tcp:HOST:PORT,server=on,wait=off");
        return false;
    }
    g_autoptr(GHashTable) kv = keyval_parse(rest, "addr", err);
    if (!kv) {
        return false;
    }
    static const char *const known[] = { "addr", "server", "wait", "nowait", NULL };
    if (!keyval_check_keys(kv, known, "-qmp", err)) {
        return false;
    }
    const char *addr = g_hash_table_lookup(kv, "addr");
    if (!addr || !*addr) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "no %s given", is_unix ? "path" : "HOST:PORT");
        return false;
    }
    gboolean server = FALSE, wait = TRUE, nowait = FALSE;
    const char *v;
    if ((v = g_hash_table_lookup(kv, "server")) && !keyval_bool("server", v, &server, err)) {
        return false;
    }
    if ((v = g_hash_table_lookup(kv, "wait")) && !keyval_bool("wait", v, &wait, err)) {
        return false;
    }
    if ((v = g_hash_table_lookup(kv, "nowait")) && !keyval_bool("nowait", v, &nowait, err)) {
        return false;
    }
    if (!server) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC,
                    "only server=on is supported (Vireo does not connect out)");
        return false;
    }
    if (wait && !nowait) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC,
                    "wait=on is not supported yet: add wait=off");
        return false;
    }
    if (is_unix) {
        a->unix_path = g_strdup(addr);
        return true;
    }
    const char *colon = strrchr(addr, ':');
    guint64 port;
    if (!colon || !g_ascii_string_to_unsigned(colon + 1, 10, 0, 65535, &port, NULL)) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "'%s' is not HOST:PORT", addr);
        return false;
    }
    /* "[::1]:4444": the brackets only delimit the IPv6 address. */
    if (addr[0] == '[' && colon[-1] == ']') {
        a->host = g_strndup(addr + 1, colon - addr - 2);
    } else {
        a->host = g_strndup(addr, colon - addr);
    }
    if (!*a->host) {
        g_free(a->host);
        a->host = g_strdup("0.0.0.0"); /* "tcp::PORT": every address, as QEMU */
    }
    a->port = g_strdup(colon + 1);
    return true;
}

bool monitor_address_check(const char *spec, GError **err)
{
    g_auto(MonitorAddress) a = { 0 };
    return address_parse(spec, &a, err);
}

/* Sessions */

static void client_free(Monitor *m)
{
    if (m->in_source) {
        g_source_destroy(m->in_source);
        g_source_unref(m->in_source);
    }
    if (m->out_source) {
        g_source_destroy(m->out_source);
        g_source_unref(m->out_source);
    }
    g_socket_close(m->sock, NULL);
    g_object_unref(m->sock);
    json_stream_free(m->stream);
    g_string_free(m->out, TRUE);
    for (guint i = 0; i < m->passed_fds->len; i++) {
        close(g_array_index(m->passed_fds, int, i));
    }
    g_array_unref(m->passed_fds);
    g_free(m);
}

/* Free the clients marked closing, unless one is inside its own callback. */
static void reap(MonitorServer *s)
{
    for (guint i = s->clients->len; i-- > 0;) {
        Monitor *m = s->clients->pdata[i];
        if (m->closing && !m->busy) {
            g_debug("client %p gone", (void *)m);
            g_ptr_array_remove_index(s->clients, i);
            client_free(m);
        }
    }
}

static gboolean on_writable(GSocket *sock, GIOCondition cond, gpointer data);

static void flush(Monitor *m)
{
    while (m->out->len > 0 && !m->closing) {
        g_autoptr(GError) err = NULL;
        gssize n = g_socket_send(m->sock, m->out->str, m->out->len, NULL, &err);
        if (n < 0) {
            if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
                break;
            }
            m->closing = true;
            return;
        }
        g_string_erase(m->out, 0, n);
    }
    if (m->out->len > 0 && !m->out_source && !m->closing) {
        m->out_source = g_socket_create_source(m->sock, G_IO_OUT, NULL);
        g_source_set_callback(m->out_source, G_SOURCE_FUNC(on_writable), m, NULL);
        g_source_attach(m->out_source, NULL);
    }
}

static gboolean on_writable(GSocket *sock, GIOCondition cond, gpointer data)
{
    Monitor *m = data;
    g_source_unref(m->out_source);
    m->out_source = NULL;
    flush(m);
    reap(m->server);
    return G_SOURCE_REMOVE;
}

/* Queue @obj (taken) as one line ending in "\r\n", as QEMU does. */
static void send_object(Monitor *m, JsonObject *obj)
{
    if (m->closing) {
        json_object_unref(obj);
        return;
    }
    g_autoptr(JsonNode) root = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(root, obj);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    json_generator_set_root(gen, root);
    gsize len;
    g_autofree char *text = json_generator_to_data(gen, &len);
    if (m->out->len + len > MAX_BACKLOG) {
        g_warning("dropping a QMP client that does not read its output");
        m->closing = true;
        return;
    }
    g_string_append_len(m->out, text, len);
    g_string_append(m->out, "\r\n");
    flush(m);
}

static void send_error(Monitor *m, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void send_error(Monitor *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *desc = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    JsonObject *e = json_object_new();
    json_object_set_string_member(e, "class", "GenericError");
    /* The text may quote client input (a parser message): keep the reply valid UTF-8. */
    g_autofree char *valid = g_utf8_make_valid(desc, -1);
    json_object_set_string_member(e, "desc", valid);
    JsonObject *r = json_object_new();
    json_object_set_object_member(r, "error", e);
    send_object(m, r);
}

static bool on_value(const char *text, size_t len, const char *why, void *opaque)
{
    Monitor *m = opaque;
    if (!text) {
        /* Past a limit the stream cannot find the next value: give up on it. */
        send_error(m, "JSON parse error, %s", why);
        g_debug("closing a client: %s", why);
        m->closing = true;
        return false;
    }
    g_autoptr(JsonParser) parser = json_parser_new_immutable();
    g_autoptr(GError) err = NULL;
    if (!json_parser_load_from_data(parser, text, len, &err)) {
        send_error(m, "JSON parse error, %s", err->message);
        return !m->closing;
    }
    JsonNode *root = json_parser_get_root(parser);
    if (!root) {
        return true; /* nothing but whitespace */
    }
    send_object(m, qmp_dispatch(m, root));
    return !m->closing;
}

int monitor_take_passed_fd(Monitor *m)
{
    if (m->passed_fds->len == 0) {
        return -1;
    }
    int fd = g_array_index(m->passed_fds, int, 0);
    g_array_remove_index(m->passed_fds, 0);
    return fd;
}

/*
 * recvmsg rather than GSocket's receive: on a unix socket a command may come
 * with descriptors (SCM_RIGHTS, for getfd), which are queued on the client
 * until a command takes them. Other sockets simply carry none.
 */
static gssize receive(Monitor *m, char *buf, size_t len)
{
    union {
        char buf[CMSG_SPACE(MAX_PASSED_FDS * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { buf, len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                          .msg_controllen = sizeof(control.buf) };
    gssize n;
    do {
        n = recvmsg(g_socket_get_fd(m->sock), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return n;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfds; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
            if (m->passed_fds->len >= MAX_PASSED_FDS) {
                close(fd); /* nobody takes them: do not let a client hoard descriptors */
            } else {
                g_array_append_val(m->passed_fds, fd);
            }
        }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        g_warning("a QMP client passed more than %d descriptors at once; the rest were dropped", MAX_PASSED_FDS);
    }
    return n;
}

static gboolean on_readable(GSocket *sock, GIOCondition cond, gpointer data)
{
    Monitor *m = data;
    g_autofree char *buf = g_malloc(READ_CHUNK);
    gssize n = receive(m, buf, READ_CHUNK);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        m->closing = true; /* hung up, or reset mid-command */
    } else {
        m->busy = true;
        json_stream_feed(m->stream, buf, n);
        m->busy = false;
    }
    if (m->closing) {
        /* The source is freed with the client; keep it alive until then. */
        MonitorServer *s = m->server;
        reap(s);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void add_client(MonitorServer *s, GSocket *sock)
{
    Monitor *m = g_new0(Monitor, 1);
    m->server = s;
    m->sock = sock;
    m->out = g_string_new(NULL);
    m->passed_fds = g_array_new(FALSE, FALSE, sizeof(int));
    m->stream = json_stream_new(JSON_STREAM_MAX_SIZE, JSON_STREAM_MAX_DEPTH, on_value, m);
    g_socket_set_blocking(sock, FALSE);
    m->in_source = g_socket_create_source(sock, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
    g_source_set_callback(m->in_source, G_SOURCE_FUNC(on_readable), m, NULL);
    g_source_attach(m->in_source, NULL);
    g_ptr_array_add(s->clients, m);

    JsonObject *qmp = json_object_new();
    json_object_set_object_member(qmp, "version", qmp_version_info());
    json_object_set_array_member(qmp, "capabilities", json_array_new());
    JsonObject *greeting = json_object_new();
    json_object_set_object_member(greeting, "QMP", qmp);
    send_object(m, greeting);
    reap(s);
}

void monitor_server_add_client(MonitorServer *s, int fd)
{
    g_autoptr(GError) err = NULL;
    GSocket *sock = g_socket_new_from_fd(fd, &err);
    if (!sock) {
        g_warning("QMP client socket: %s", err->message);
        close(fd);
        return;
    }
    add_client(s, sock);
}

unsigned monitor_server_client_count(MonitorServer *s)
{
    return s->clients->len;
}

static gboolean on_accept(GSocket *sock, GIOCondition cond, gpointer data)
{
    MonitorListener *l = data;
    g_autoptr(GError) err = NULL;
    GSocket *client = g_socket_accept(sock, NULL, &err);
    if (!client) {
        if (!g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
            g_warning("QMP accept: %s", err->message);
        }
        return G_SOURCE_CONTINUE;
    }
    add_client(l->server, client);
    return G_SOURCE_CONTINUE;
}

static void listener_free(gpointer data)
{
    MonitorListener *l = data;
    g_source_destroy(l->source);
    g_source_unref(l->source);
    g_socket_close(l->sock, NULL);
    g_object_unref(l->sock);
    if (l->unix_path) {
        unlink(l->unix_path);
        g_free(l->unix_path);
    }
    g_free(l->label);
    g_free(l->filename);
    g_free(l);
}

static void add_listener(MonitorServer *s, GSocket *sock, const char *unix_path, const char *label,
                         const char *filename)
{
    g_socket_set_blocking(sock, FALSE);
    MonitorListener *l = g_new0(MonitorListener, 1);
    l->server = s;
    l->sock = sock;
    l->unix_path = g_strdup(unix_path);
    l->label = g_strdup(label);
    l->filename = g_strdup(filename);
    l->source = g_socket_create_source(l->sock, G_IO_IN, NULL);
    g_source_set_callback(l->source, G_SOURCE_FUNC(on_accept), l, NULL);
    g_source_attach(l->source, NULL);
    g_ptr_array_add(s->listeners, l);
}

static bool listen_on(MonitorServer *s, GSocketAddress *sa, const char *unix_path, const char *label,
                      GError **err)
{
    g_autoptr(GSocket) sock = g_socket_new(g_socket_address_get_family(sa), G_SOCKET_TYPE_STREAM,
                                           G_SOCKET_PROTOCOL_DEFAULT, err);
    if (!sock) {
        return false;
    }
    if (unix_path) {
        unlink(unix_path); /* a stale socket from an earlier run */
    }
    if (!g_socket_bind(sock, sa, TRUE, err) || !g_socket_listen(sock, err)) {
        return false;
    }
    /* QEMU's socket chardev filename: "unix:PATH,server=on", "tcp:HOST:PORT,server=on". */
    g_autofree char *filename = NULL;
    if (unix_path) {
        filename = g_strdup_printf("unix:%s,server=on", unix_path);
    } else {
        g_autoptr(GSocketAddress) local = g_socket_get_local_address(sock, NULL);
        g_autofree char *host = local ? g_inet_address_to_string(
                                            g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(local)))
                                      : g_strdup("?");
        filename = g_strdup_printf("tcp:%s:%u,server=on", host,
                                   local ? g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local)) : 0);
    }
    add_listener(s, g_steal_pointer(&sock), unix_path, label, filename);
    return true;
}

bool monitor_server_listen(MonitorServer *s, const char *spec, GError **err)
{
    g_autofree char *label = g_strdup_printf("compat_monitor%u", s->compat_count);
    if (!monitor_server_listen_as(s, label, spec, err)) {
        return false;
    }
    s->compat_count++;
    return true;
}

bool monitor_server_listen_fd(MonitorServer *s, const char *label, int fd, GError **err)
{
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0) {
        int e = errno;
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "file descriptor %d is not a socket: %s", fd,
                    g_strerror(e));
        return false;
    }
    if (!listening) {
        g_set_error(err, MONITOR_ERROR, MONITOR_ERROR_GENERIC, "socket %d is not listening", fd);
        return false;
    }
    GSocket *sock = g_socket_new_from_fd(fd, err);
    if (!sock) {
        return false;
    }
    g_autofree char *filename = g_strdup_printf("fd:%d,server=on", fd);
    add_listener(s, sock, NULL, label, filename);
    return true;
}

bool monitor_server_listen_as(MonitorServer *s, const char *label, const char *spec, GError **err)
{
    g_auto(MonitorAddress) a = { 0 };
    if (!address_parse(spec, &a, err)) {
        return false;
    }
    if (a.unix_path) {
        g_autoptr(GSocketAddress) sa = g_unix_socket_address_new(a.unix_path);
        return listen_on(s, sa, a.unix_path, label, err);
    }
    /* A name such as localhost may stand for ::1 and 127.0.0.1: serve every address it has. */
    g_autoptr(GResolver) resolver = g_resolver_get_default();
    GList *addrs = g_resolver_lookup_by_name(resolver, a.host, NULL, err);
    if (!addrs) {
        return false;
    }
    guint16 port = (guint16)g_ascii_strtoull(a.port, NULL, 10);
    g_autoptr(GError) first_err = NULL;
    bool any = false;
    for (GList *l = addrs; l; l = l->next) {
        g_autoptr(GSocketAddress) sa = g_inet_socket_address_new(l->data, port);
        g_autoptr(GError) local = NULL;
        if (listen_on(s, sa, NULL, label, &local)) {
            any = true;
        } else if (!first_err) {
            first_err = g_steal_pointer(&local);
        }
    }
    g_resolver_free_addresses(addrs);
    if (!any) {
        g_propagate_error(err, g_steal_pointer(&first_err));
    }
    return any;
}

MonitorServer *monitor_server_new(const MonitorVmOps *ops, void *vm)
{
    MonitorServer *s = g_new0(MonitorServer, 1);
    s->ops = ops;
    s->vm = vm;
    s->listeners = g_ptr_array_new_with_free_func(listener_free);
    s->clients = g_ptr_array_new();
    s->named_fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return s;
}

void monitor_server_free(MonitorServer *s)
{
    if (!s) {
        return;
    }
    /* Replies such as quit's must reach the client before the process ends. */
    for (guint i = 0; i < s->clients->len; i++) {
        Monitor *m = s->clients->pdata[i];
        if (m->out->len && !m->closing) {
            g_socket_set_blocking(m->sock, TRUE);
            g_socket_set_timeout(m->sock, FLUSH_TIMEOUT_S);
            flush(m);
        }
        client_free(m);
    }
    g_ptr_array_unref(s->clients);
    g_ptr_array_unref(s->listeners);
    GHashTableIter it;
    gpointer fd;
    g_hash_table_iter_init(&it, s->named_fds);
    while (g_hash_table_iter_next(&it, NULL, &fd)) {
        close(GPOINTER_TO_INT(fd));
    }
    g_hash_table_unref(s->named_fds);
    g_free(s);
}

int monitor_take_fd(MonitorServer *s, const char *name)
{
    gpointer key, fd;
    if (!g_hash_table_steal_extended(s->named_fds, name, &key, &fd)) {
        return -1;
    }
    g_free(key);
    return GPOINTER_TO_INT(fd);
}

void monitor_server_emit_event(MonitorServer *s, const char *name, JsonObject *data)
{
    gint64 now = g_get_real_time();
    for (guint i = 0; i < s->clients->len; i++) {
        Monitor *m = s->clients->pdata[i];
        if (!m->negotiated) {
            continue;
        }
        JsonObject *ts = json_object_new();
        json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
        json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
        JsonObject *ev = json_object_new();
        json_object_set_string_member(ev, "event", name);
        if (data) {
            json_object_set_object_member(ev, "data", json_object_ref(data));
        }
        json_object_set_object_member(ev, "timestamp", ts);
        send_object(m, ev);
    }
    reap(s);
}
