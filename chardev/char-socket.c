/*
 * -chardev socket,...,server=on,wait=off as a data channel: listen on a unix
 * path, a TCP host:port or an inherited listening fd, and serve one client at
 * a time. While a client is connected the listener is not polled, so a
 * second client waits in the backlog until the first leaves (as in QEMU).
 * With no client, output is dropped and there is no input.
 */
#define G_LOG_DOMAIN "chardev"
#include "char-internal.h"
#include "util/error.h"
#include "util/sockets.h"
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int listen_fd;
    guint listen_watch;
    char *unix_path; /* ours to unlink at the end */
    int client_fd;   /* -1: no client */
} SocketState;

static gboolean socket_accept(gint fd, GIOCondition cond, gpointer data);

static void listen_watch_start(Chardev *chr)
{
    SocketState *s = chr->backend;
    if (!s->listen_watch) {
        s->listen_watch = g_unix_fd_add(s->listen_fd, G_IO_IN, socket_accept, chr);
    }
}

static gboolean socket_accept(gint fd, GIOCondition cond, gpointer data)
{
    Chardev *chr = data;
    SocketState *s = chr->backend;
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            g_warning("chardev '%s': accept failed: %s", chr->spec, g_strerror(errno));
        }
        return G_SOURCE_CONTINUE;
    }
    g_debug("chardev '%s': client connected", chr->spec);
    s->listen_watch = 0;
    s->client_fd = c;
    chr->in_fd = chr->out_fd = c;
    chr->out_socket = true;
    chr->in_eof = false;
    chardev_input_watch_start(chr);
    return G_SOURCE_REMOVE; /* one client at a time */
}

static void drop_client(Chardev *chr)
{
    SocketState *s = chr->backend;
    chardev_input_watch_stop(chr);
    chardev_output_gone(chr);
    if (s->client_fd >= 0) {
        close(s->client_fd);
        s->client_fd = -1;
    }
    chr->in_fd = chr->out_fd = -1;
    chr->out_socket = false;
}

static void socket_hangup(Chardev *chr)
{
    g_debug("chardev '%s': client disconnected", chr->spec);
    drop_client(chr);
    listen_watch_start(chr);
}

static void socket_close(Chardev *chr)
{
    SocketState *s = chr->backend;
    drop_client(chr);
    if (s->listen_watch) {
        g_source_remove(s->listen_watch);
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    if (s->unix_path) {
        unlink(s->unix_path);
        g_free(s->unix_path);
    }
    g_free(s);
    chr->backend = NULL;
}

/* The listeners themselves are util/sockets.c's; errors get the chardev's name in front. */
static bool listen_unix(Chardev *chr, SocketState *s, const char *path, GError **err)
{
    s->listen_fd = socket_listen_unix(path, err);
    if (s->listen_fd < 0) {
        g_prefix_error(err, "chardev '%s': ", chr->spec);
        return false;
    }
    s->unix_path = g_strdup(path);
    return true;
}

/* The first address of @host (empty: every address) that takes a listener, as QEMU does. */
static bool listen_tcp(Chardev *chr, SocketState *s, const char *host, const char *port, GError **err)
{
    s->listen_fd = socket_listen_tcp(host, port, err);
    if (s->listen_fd < 0) {
        g_prefix_error(err, "chardev '%s': ", chr->spec);
        return false;
    }
    return true;
}

/* An inherited socket must already listen (a supervisor bound it); it is ours once accepted. */
static bool listen_fd(Chardev *chr, SocketState *s, int fd, GError **err)
{
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "chardev '%s': file descriptor %d is not a socket: %s",
                    chr->spec, fd, g_strerror(errno));
        return false;
    }
    if (!listening) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "chardev '%s': socket %d is not listening", chr->spec,
                    fd);
        return false;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    s->listen_fd = fd;
    return true;
}

bool chardev_socket_open(Chardev *chr, const char *unix_path, const char *host, const char *port, int fd,
                         GError **err)
{
    g_autofree SocketState *s = g_new0(SocketState, 1);
    s->listen_fd = -1;
    s->client_fd = -1;
    bool ok = unix_path ? listen_unix(chr, s, unix_path, err)
              : port    ? listen_tcp(chr, s, host ? host : "", port, err)
                        : listen_fd(chr, s, fd, err);
    if (!ok) {
        return false;
    }
    chr->backend = g_steal_pointer(&s);
    chr->hangup = socket_hangup;
    chr->close = socket_close;
    listen_watch_start(chr);
    return true;
}

/* The port a TCP socket chardev listens on (for tests that ask for port 0), or -1. */
int chardev_socket_port(Chardev *chr)
{
    SocketState *s = chr->backend;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (chr->close != socket_close || getsockname(s->listen_fd, (struct sockaddr *)&ss, &len) < 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return -1;
}
