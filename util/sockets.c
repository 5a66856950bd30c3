/* Stream sockets by address (include/util/sockets.h). */
#include "util/sockets.h"
#include "util/error.h"
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

bool socket_split_host_port(const char *addr, char **host, char **port, GError **err)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1]) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "'%s' is not HOST:PORT", addr);
        return false;
    }
    const char *h = addr;
    size_t hlen = colon - addr;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    *host = g_strndup(h, hlen);
    *port = g_strdup(colon + 1);
    return true;
}

static int tcp_socket(const char *host, const char *port, bool listening, GError **err)
{
    struct addrinfo hints = { .ai_flags = listening ? AI_PASSIVE : 0, .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int r = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (r != 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "cannot resolve '%s': %s", host, gai_strerror(r));
        return -1;
    }
    int e = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | (listening ? SOCK_NONBLOCK : 0),
                        ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int on = 1;
        if (listening) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        }
        if (listening ? bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1) == 0
                      : connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            freeaddrinfo(res);
            return fd;
        }
        e = errno;
        close(fd);
    }
    freeaddrinfo(res);
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "cannot %s %s:%s: %s", listening ? "listen on" : "connect to",
                host, port, g_strerror(e));
    return -1;
}

int socket_listen_tcp(const char *host, const char *port, GError **err)
{
    return tcp_socket(host, port, true, err);
}

int socket_connect_tcp(const char *host, const char *port, GError **err)
{
    return tcp_socket(host, port, false, err);
}

static bool unix_address(const char *path, struct sockaddr_un *sa, GError **err)
{
    *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa->sun_path)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "socket path '%s' is longer than %zu bytes", path,
                    sizeof(sa->sun_path) - 1);
        return false;
    }
    memcpy(sa->sun_path, path, strlen(path));
    return true;
}

int socket_listen_unix(const char *path, GError **err)
{
    struct sockaddr_un sa;
    struct stat st;
    if (!unix_address(path, &sa, err)) {
        return -1;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "'%s' exists and is not a socket", path);
            return -1;
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        int e = errno;
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "cannot listen on '%s': %s", path, g_strerror(e));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

int socket_connect_unix(const char *path, GError **err)
{
    struct sockaddr_un sa;
    if (!unix_address(path, &sa, err)) {
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "cannot connect to '%s': %s", path, g_strerror(e));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}
