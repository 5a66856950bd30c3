/* Migration channels by URI: include/migration/channel.h. */
#define G_LOG_DOMAIN "migration"
#include "migration/channel.h"
#include "util/error.h"
#include "util/sockets.h"
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct MigChannel {
    char *uri;
    MigChannelDirection dir;
    int fd;
    int listen_fd;    /* incoming tcp:/unix: until accepted */
    char *unix_path;  /* incoming unix: the socket file to remove */
    GPid child;       /* exec: */
    char *tmp_path;   /* outgoing file: */
    char *final_path;
};

static bool fail(GError **err, MigChannel *ch, const char *what, int e)
{
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "%s: %s: %s", ch->uri, what, g_strerror(e));
    return false;
}

/* "PATH[,offset=N]", as QEMU's file: URI. */
static bool parse_file(MigChannel *ch, const char *spec, char **path, uint64_t *offset, GError **err)
{
    const char *comma = strstr(spec, ",offset=");
    *offset = 0;
    if (comma) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(comma + strlen(",offset="), &end, 0);
        if (errno || *end || end == comma + strlen(",offset=")) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "%s: offset is not a number", ch->uri);
            return false;
        }
        *offset = v;
    }
    *path = comma ? g_strndup(spec, comma - spec) : g_strdup(spec);
    if (!**path) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "%s: no file name", ch->uri);
        return false;
    }
    return true;
}

/*
 * A temporary file beside PATH; with an offset, the bytes before it are
 * those of the existing PATH (a caller's header), as writing into PATH in
 * place would have kept them.
 */
static bool open_file_out(MigChannel *ch, const char *spec, GError **err)
{
    g_autofree char *path = NULL;
    uint64_t offset;
    if (!parse_file(ch, spec, &path, &offset, err)) {
        return false;
    }
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* A device or a pipe (file:/dev/null) is written in place: renaming over it would replace it. */
        ch->fd = open(path, O_WRONLY | O_CLOEXEC);
        if (ch->fd < 0 || (offset && lseek(ch->fd, offset, SEEK_SET) < 0 && errno != ESPIPE)) {
            return fail(err, ch, "cannot open", errno);
        }
        return true;
    }
    g_autofree char *dir = g_path_get_dirname(path);
    g_autofree char *base = g_path_get_basename(path);
    ch->tmp_path = g_strdup_printf("%s/.%s.vireo-XXXXXX", dir, base);
    /* Read too: the stream writer maps a regular file (mig_writer_new). */
    ch->fd = g_mkstemp_full(ch->tmp_path, O_RDWR | O_CLOEXEC, 0644);
    if (ch->fd < 0) {
        int e = errno;
        g_clear_pointer(&ch->tmp_path, g_free);
        return fail(err, ch, "cannot create a file in its directory", e);
    }
    ch->final_path = g_steal_pointer(&path);
    if (offset) {
        int old = open(ch->final_path, O_RDONLY | O_CLOEXEC);
        if (old >= 0) {
            g_autofree char *buf = g_malloc(65536);
            uint64_t done = 0;
            ssize_t n;
            while (done < offset && (n = read(old, buf, MIN(65536, offset - done))) > 0) {
                if (write(ch->fd, buf, n) != n) {
                    close(old);
                    return fail(err, ch, "cannot copy the bytes before the offset", errno);
                }
                done += n;
            }
            close(old);
        }
        if (lseek(ch->fd, offset, SEEK_SET) < 0) {
            return fail(err, ch, "cannot seek to the offset", errno);
        }
    }
    return true;
}

static bool open_file_in(MigChannel *ch, const char *spec, GError **err)
{
    g_autofree char *path = NULL;
    uint64_t offset;
    if (!parse_file(ch, spec, &path, &offset, err)) {
        return false;
    }
    ch->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ch->fd < 0) {
        return fail(err, ch, "cannot open", errno);
    }
    if (offset && lseek(ch->fd, offset, SEEK_SET) < 0) {
        return fail(err, ch, "cannot seek to the offset", errno);
    }
    return true;
}

/* sh -c CMD with the stream on its stdin (outgoing) or stdout (incoming). */
static bool open_exec(MigChannel *ch, const char *cmd, GError **err)
{
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    int fd = -1;
    g_autoptr(GError) local = NULL;
    bool out = ch->dir == MIG_CHANNEL_OUT;
    if (!g_spawn_async_with_pipes(NULL, (char **)argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &ch->child,
                                  out ? &fd : NULL, out ? NULL : &fd, NULL, &local)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "%s: %s", ch->uri, local->message);
        return false;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    ch->fd = fd;
    return true;
}

static bool open_socket(MigChannel *ch, bool tcp, const char *addr, GError **err)
{
    g_autoptr(GError) local = NULL;
    g_autofree char *host = NULL, *port = NULL;
    int fd;
    if (tcp && !socket_split_host_port(addr, &host, &port, &local)) {
        fd = -1;
    } else if (ch->dir == MIG_CHANNEL_OUT) {
        fd = tcp ? socket_connect_tcp(host, port, &local) : socket_connect_unix(addr, &local);
    } else {
        fd = tcp ? socket_listen_tcp(host, port, &local) : socket_listen_unix(addr, &local);
        if (fd >= 0 && !tcp) {
            ch->unix_path = g_strdup(addr);
        }
    }
    if (fd < 0) {
        g_set_error(err, VIREO_ERROR, local->code, "%s: %s", ch->uri, local->message);
        return false;
    }
    if (ch->dir == MIG_CHANNEL_OUT) {
        ch->fd = fd;
    } else {
        ch->listen_fd = fd;
    }
    return true;
}

MigChannel *mig_channel_open(const char *uri, MigChannelDirection dir, int fd, GError **err)
{
    MigChannel *ch = g_new0(MigChannel, 1);
    ch->uri = g_strdup(uri);
    ch->dir = dir;
    ch->fd = ch->listen_fd = -1;
    bool ok;
    if (g_str_has_prefix(uri, "file:")) {
        ok = dir == MIG_CHANNEL_OUT ? open_file_out(ch, uri + 5, err) : open_file_in(ch, uri + 5, err);
    } else if (g_str_has_prefix(uri, "exec:")) {
        ok = open_exec(ch, uri + 5, err);
    } else if (g_str_has_prefix(uri, "tcp:")) {
        ok = open_socket(ch, true, uri + 4, err);
    } else if (g_str_has_prefix(uri, "unix:")) {
        ok = open_socket(ch, false, uri + 5, err);
    } else if (g_str_has_prefix(uri, "fd:")) {
        ch->fd = fd;
        ok = fd >= 0;
        if (!ok) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "%s: no file descriptor by that name", uri);
        }
    } else {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "'%s': unknown migration protocol (file:, exec:, fd:, tcp:, unix:)", uri);
        ok = false;
    }
    if (!ok) {
        mig_channel_close(ch, false, NULL);
        return NULL;
    }
    return ch;
}

bool mig_channel_accept(MigChannel *ch, GError **err)
{
    if (ch->listen_fd < 0) {
        return true;
    }
    /* The listener is non-blocking (it was opened on the main loop): wait for the source here. */
    fcntl(ch->listen_fd, F_SETFL, fcntl(ch->listen_fd, F_GETFL) & ~O_NONBLOCK);
    int fd;
    do {
        fd = accept4(ch->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return fail(err, ch, "accept failed", errno);
    }
    close(ch->listen_fd);
    ch->listen_fd = -1;
    ch->fd = fd;
    return true;
}

int mig_channel_fd(MigChannel *ch)
{
    return ch->fd;
}

const char *mig_channel_uri(MigChannel *ch)
{
    return ch->uri;
}

void mig_channel_shutdown(MigChannel *ch)
{
    /* Sockets wake at once; a pipe or file write fails or finishes soon enough. */
    if (ch->fd >= 0) {
        shutdown(ch->fd, SHUT_RDWR);
    }
    if (ch->listen_fd >= 0) {
        shutdown(ch->listen_fd, SHUT_RDWR);
    }
}

static bool finish_file(MigChannel *ch, GError **err)
{
    if (fsync(ch->fd) < 0) {
        return fail(err, ch, "fsync failed", errno);
    }
    if (rename(ch->tmp_path, ch->final_path) < 0) {
        return fail(err, ch, "cannot rename the finished file into place", errno);
    }
    g_clear_pointer(&ch->tmp_path, g_free);
    /* The rename itself must survive a crash too. */
    g_autofree char *dir = g_path_get_dirname(ch->final_path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return true;
}

static bool wait_child(MigChannel *ch, bool complete, GError **err)
{
    int status;
    if (!complete) {
        kill(ch->child, SIGTERM);
    }
    while (waitpid(ch->child, &status, 0) < 0 && errno == EINTR) {
    }
    g_spawn_close_pid(ch->child);
    if (complete && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "%s: the command %s %d", ch->uri,
                    WIFEXITED(status) ? "exited with status" : "was killed by signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return false;
    }
    return true;
}

bool mig_channel_close(MigChannel *ch, bool complete, GError **err)
{
    if (!ch) {
        return true;
    }
    bool ok = true;
    if (ch->tmp_path && complete) {
        ok = finish_file(ch, err);
    }
    if (ch->tmp_path) {
        g_unlink(ch->tmp_path);
    }
    /* fd: channels are ours too: QEMU closes the descriptor a migration used. */
    if (ch->fd >= 0) {
        close(ch->fd);
    }
    if (ch->listen_fd >= 0) {
        close(ch->listen_fd);
    }
    if (ch->unix_path) {
        g_unlink(ch->unix_path);
    }
    if (ch->child) {
        ok = wait_child(ch, complete && ok, ok ? err : NULL) && ok;
    }
    g_free(ch->uri);
    g_free(ch->tmp_path);
    g_free(ch->final_path);
    g_free(ch->unix_path);
    g_free(ch);
    return ok;
}
