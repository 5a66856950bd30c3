/*
 * Stream sockets by address: "HOST:PORT" (TCP, HOST may be empty or an
 * [IPv6] literal) or a unix path. Errors name the address. Every socket is
 * close-on-exec; listeners are non-blocking, connected sockets blocking.
 */
#pragma once
#include <glib.h>
#include <stdbool.h>

/* Split "HOST:PORT" at the last colon, removing [] around an IPv6 host. */
bool socket_split_host_port(const char *addr, char **host, char **port, GError **err);
int socket_listen_tcp(const char *host, const char *port, GError **err);
/* Replaces a stale socket file at @path; refuses any other file there. */
int socket_listen_unix(const char *path, GError **err);
int socket_connect_tcp(const char *host, const char *port, GError **err);
int socket_connect_unix(const char *path, GError **err);
