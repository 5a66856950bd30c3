/* For unit tests that drive devices through the GLib main loop. */
#pragma once
#include <glib.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Spin the default main context until @cond holds or a second passes. */
#define ITERATE_UNTIL(cond)                                                  \
    do {                                                                     \
        gint64 end_ = g_get_monotonic_time() + G_USEC_PER_SEC;               \
        while (!(cond) && g_get_monotonic_time() < end_) {                   \
            g_main_context_iteration(NULL, FALSE);                           \
            g_usleep(500);                                                   \
        }                                                                    \
    } while (0)

/* A client of the unix socket at @path (a socket chardev), connected. */
static inline int unix_client(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    g_assert_cmpint(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    return fd;
}

/* Read up to @max bytes, running the main loop meanwhile; stop after @ms milliseconds without data. */
static inline size_t client_read(int fd, uint8_t *buf, size_t max, int ms)
{
    size_t got = 0;
    gint64 idle_until = g_get_monotonic_time() + ms * 1000LL;
    while (got < max && g_get_monotonic_time() < idle_until) {
        g_main_context_iteration(NULL, FALSE);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 1) <= 0) {
            continue;
        }
        ssize_t n = read(fd, buf + got, max - got);
        if (n <= 0) {
            break;
        }
        got += n;
        idle_until = g_get_monotonic_time() + ms * 1000LL;
    }
    return got;
}
