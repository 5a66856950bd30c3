#define G_LOG_DOMAIN "chardev"
#include "char-internal.h"
#include "system/options.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define ESCAPE_CHAR 0x01     /* Ctrl-a, as QEMU's -nographic */
#define INPUT_CHUNK 256
#define WRITE_STALL_MS 1000  /* how long a full backend may hold up a vCPU */

/* Process-wide on purpose: there is one stdin and one controlling terminal. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_saved;
static bool stdio_in_use;
static void (*quit_fn)(void *opaque);
static void *quit_opaque;

/* ---- stdio: raw terminal, escapes ---- */

void chardev_restore_terminal(void)
{
    if (tty_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
        tty_saved = 0;
    }
}

/*
 * Every key goes to the guest: no echo, no line editing, and ^C/^Z/^\ are
 * bytes rather than signals (Ctrl-a x is the way out). Output processing is
 * left alone so the host terminal still renders the guest's text.
 */
static void stdio_enter_raw(void)
{
    struct termios tty;

    /* A background job touching the terminal would be stopped by SIGTTOU. */
    if (!isatty(STDIN_FILENO) || tcgetpgrp(STDIN_FILENO) != getpgrp() ||
        tcgetattr(STDIN_FILENO, &saved_tty) < 0) {
        return;
    }
    tty = saved_tty;
    tty.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    tty.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    tty.c_cflag = (tty.c_cflag & ~(tcflag_t)(CSIZE | PARENB)) | CS8;
    tty.c_cc[VMIN] = 1;
    tty.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &tty) == 0) {
        tty_saved = 1;
    }
}

void chardev_set_quit_handler(void (*fn)(void *opaque), void *opaque)
{
    quit_fn = fn;
    quit_opaque = opaque;
}

static void stdio_print_help(Chardev *chr)
{
    static const char help[] = "\r\n"
                               "C-a h    print this help\r\n"
                               "C-a x    exit\r\n"
                               "C-a C-a  send C-a\r\n";
    chardev_write(chr, (const uint8_t *)help, sizeof(help) - 1);
}

/* Strip Ctrl-a commands from @buf in place; returns the bytes left for the guest. */
static size_t stdio_escapes(Chardev *chr, uint8_t *buf, size_t len)
{
    size_t out = 0;

    for (size_t i = 0; i < len; i++) {
        uint8_t c = buf[i];
        if (chr->got_escape) {
            chr->got_escape = false;
            switch (c) {
            case ESCAPE_CHAR:
                buf[out++] = c;
                break;
            case 'x':
                if (quit_fn) {
                    quit_fn(quit_opaque);
                } else {
                    g_message("Ctrl-a x: no quit handler installed");
                }
                break;
            case 'h':
            case '?':
                stdio_print_help(chr);
                break;
            default: /* unknown commands are swallowed, as in QEMU */
                break;
            }
        } else if (c == ESCAPE_CHAR) {
            chr->got_escape = true;
        } else {
            buf[out++] = c;
        }
    }
    return out;
}

/* ---- input ---- */

static void deliver(Chardev *chr, const uint8_t *buf, size_t len)
{
    if (len && chr->input_fn) {
        chr->input_fn(chr->input_opaque, buf, len);
    }
}

static gboolean input_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    uint8_t buf[INPUT_CHUNK];
    size_t want = sizeof(buf);
    ssize_t n;

    if (g_source_is_destroyed(g_main_current_source())) {
        return G_SOURCE_REMOVE;
    }
    if (chr->can_read_fn) {
        want = MIN(want, chr->can_read_fn(chr->input_opaque));
        if (want == 0) {
            /* Stop polling until the frontend has room (chardev_accept_input). */
            chr->in_watch = 0;
            return G_SOURCE_REMOVE;
        }
    }
    n = read(fd, buf, want);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        chr->in_watch = 0;
        if (chr->hangup) {
            chr->hangup(chr); /* a socket client left: the next one gets the input */
            return G_SOURCE_REMOVE;
        }
        if (n < 0) {
            g_warning("chardev '%s': read failed: %s; input stopped", chr->spec, g_strerror(errno));
        }
        chr->in_eof = true;
        return G_SOURCE_REMOVE;
    }
    if (chr->stdio) {
        n = stdio_escapes(chr, buf, n);
    }
    deliver(chr, buf, n);
    return G_SOURCE_CONTINUE;
}

void chardev_input_watch_start(Chardev *chr)
{
    if (chr->in_fd >= 0 && !chr->in_eof && !chr->in_watch && chr->input_fn) {
        chr->in_watch = g_unix_fd_add_full(G_PRIORITY_DEFAULT, chr->in_fd,
                                           G_IO_IN | G_IO_HUP | G_IO_ERR, input_readable, chr,
                                           NULL);
    }
}

void chardev_input_watch_stop(Chardev *chr)
{
    if (chr->in_watch) {
        g_source_remove(chr->in_watch);
        chr->in_watch = 0;
    }
}

void chardev_set_input_full(Chardev *chr, ChardevInputFn fn, ChardevCanReadFn can_read,
                            void *opaque)
{
    chardev_input_watch_stop(chr);
    chr->input_fn = fn;
    chr->can_read_fn = can_read;
    chr->input_opaque = opaque;
    chardev_input_watch_start(chr);
}

void chardev_set_input(Chardev *chr, ChardevInputFn fn, void *opaque)
{
    chardev_set_input_full(chr, fn, NULL, opaque);
}

void chardev_accept_input(Chardev *chr)
{
    if (chr) {
        chardev_input_watch_start(chr);
    }
}

void chardev_inject_input(Chardev *chr, const uint8_t *buf, size_t len)
{
    deliver(chr, buf, len);
}

/* ---- output ---- */

/* Sockets get send(): a client that went away must not raise SIGPIPE in a test or library user. */
static ssize_t out_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    return chr->out_socket ? send(chr->out_fd, buf, len, MSG_NOSIGNAL) : write(chr->out_fd, buf, len);
}

/* A hard write error: a connection ends (its backend waits for the next), anything else stops output. */
static void out_failed(Chardev *chr, ssize_t n)
{
    if (chr->hangup) {
        g_debug("chardev '%s': write failed: %s; client dropped", chr->spec,
                n < 0 ? g_strerror(errno) : "no progress");
        chr->hangup(chr);
        return;
    }
    g_warning("chardev '%s': write failed: %s; further output dropped", chr->spec,
              n < 0 ? g_strerror(errno) : "no progress");
    chr->write_failed = true;
}

void chardev_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    if (!chr || chr->out_fd < 0 || chr->write_failed) {
        return;
    }
    while (len > 0) {
        ssize_t n = out_write(chr, buf, len);
        if (n > 0) {
            buf += n;
            len -= n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* A non-blocking fd (a shared terminal, a socket): wait a little. */
            struct pollfd pfd = { .fd = chr->out_fd, .events = POLLOUT };
            int r = poll(&pfd, 1, WRITE_STALL_MS);
            if (r > 0 || (r < 0 && errno == EINTR)) {
                continue;
            }
            g_debug("chardev '%s': output stalled, dropped %zu bytes", chr->spec, len);
            return;
        }
        out_failed(chr, n);
        return;
    }
}

/* Can a one-byte write go through now? (A tty or pipe may be full.) */
static bool out_ready(Chardev *chr)
{
    struct pollfd pfd = { .fd = chr->out_fd, .events = POLLOUT };
    return poll(&pfd, 1, 0) > 0 && pfd.revents;
}

size_t chardev_write_nonblocking(Chardev *chr, const uint8_t *buf, size_t len)
{
    if (!chr || chr->out_fd < 0 || chr->write_failed) {
        return len;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n;
        if (chr->out_socket) {
            /* Our own non-blocking socket: EAGAIN says when it is full. */
            n = out_write(chr, buf + done, len - done);
        } else if (out_ready(chr)) {
            /* One byte per readiness check: room for one is all poll() promises on a blocking fd. */
            n = out_write(chr, buf + done, 1);
        } else {
            break;
        }
        if (n > 0) {
            done += n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else if (!(n < 0 && errno == EINTR)) {
            out_failed(chr, n);
            return len;
        }
    }
    return done;
}

static void fire_writable(Chardev *chr)
{
    void (*fn)(void *) = chr->writable_fn;

    chr->out_watch = 0;
    chr->writable_fn = NULL;
    if (fn) {
        fn(chr->writable_opaque);
    }
}

static gboolean out_writable(gint fd, GIOCondition cond, gpointer data)
{
    fire_writable(data);
    return G_SOURCE_REMOVE;
}

static gboolean out_discarding(gpointer data)
{
    fire_writable(data);
    return G_SOURCE_REMOVE;
}

static void out_watch_stop(Chardev *chr)
{
    if (chr->out_watch) {
        g_source_remove(chr->out_watch);
        chr->out_watch = 0;
    }
}

void chardev_notify_writable(Chardev *chr, void (*fn)(void *opaque), void *opaque)
{
    chr->writable_fn = fn;
    chr->writable_opaque = opaque;
    if (!fn) {
        out_watch_stop(chr);
        return;
    }
    if (chr->out_watch) {
        return;
    }
    if (chr->out_fd < 0 || chr->write_failed) {
        /* Output is discarded, so it can be taken at once; still call back from the main loop. */
        chr->out_watch = g_idle_add(out_discarding, chr);
    } else {
        chr->out_watch = g_unix_fd_add(chr->out_fd, G_IO_OUT | G_IO_ERR | G_IO_HUP, out_writable, chr);
    }
}

void chardev_output_gone(Chardev *chr)
{
    out_watch_stop(chr);
    if (chr->writable_fn) {
        chr->out_watch = g_idle_add(out_discarding, chr);
    }
}

/* ---- backends ---- */

static bool stdio_open(Chardev *chr, const char *arg, GError **err)
{
    if (stdio_in_use) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "chardev '%s': stdio is already used by another chardev", chr->spec);
        return false;
    }
    stdio_in_use = true;
    chr->stdio = true;
    chr->out_fd = STDOUT_FILENO;
    /* A closed stdin simply means no input. */
    chr->in_fd = fcntl(STDIN_FILENO, F_GETFD) >= 0 ? STDIN_FILENO : -1;
    if (chr->in_fd >= 0) {
        stdio_enter_raw();
    }
    return true;
}

static bool file_open(Chardev *chr, const char *path, GError **err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_FAILED, "chardev '%s': cannot open '%s': %s",
                    chr->spec, path, g_strerror(errno));
        return false;
    }
    chr->out_fd = fd;
    chr->close_out = true;
    return true;
}

static bool null_open(Chardev *chr, const char *arg, GError **err)
{
    return true;
}

static const struct {
    const char *name;
    bool takes_arg;
    bool (*open)(Chardev *chr, const char *arg, GError **err);
} backends[] = {
    { "stdio", false, stdio_open },
    { "file", true, file_open },
    { "null", false, null_open },
};

Chardev *chardev_alloc(const char *spec)
{
    Chardev *chr = g_new0(Chardev, 1);
    chr->spec = g_strdup(spec);
    chr->out_fd = -1;
    chr->in_fd = -1;
    return chr;
}

Chardev *chardev_new(const char *spec, GError **err)
{
    const char *colon = strchr(spec, ':');
    g_autofree char *name = colon ? g_strndup(spec, colon - spec) : g_strdup(spec);
    const char *arg = colon ? colon + 1 : NULL;
    Chardev *chr;

    for (size_t i = 0; i < G_N_ELEMENTS(backends); i++) {
        if (strcmp(name, backends[i].name) != 0) {
            continue;
        }
        if (backends[i].takes_arg && (!arg || !*arg)) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "chardev '%s': missing path (expected %s:PATH)", spec, name);
            return NULL;
        }
        if (!backends[i].takes_arg && arg) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "chardev '%s': %s takes no argument", spec, name);
            return NULL;
        }
        chr = chardev_alloc(spec);
        if (!backends[i].open(chr, arg, err)) {
            chardev_free(chr);
            return NULL;
        }
        return chr;
    }
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                "chardev '%s': unknown backend '%s' (expected stdio, file:PATH or null)", spec,
                name);
    return NULL;
}

Chardev *chardev_open(const VmChardev *c, GError **err)
{
    g_autoptr(Chardev) chr = chardev_alloc(c->id);
    bool ok = false;
    switch (c->backend) {
    case VM_CHARDEV_SOCKET:
        ok = chardev_socket_open(chr, c->path, c->host, c->port, c->fd, err);
        break;
    case VM_CHARDEV_STDIO:
        ok = stdio_open(chr, NULL, err);
        break;
    case VM_CHARDEV_FILE:
        ok = file_open(chr, c->path, err);
        break;
    case VM_CHARDEV_NULL:
        ok = true;
        break;
    }
    return ok ? g_steal_pointer(&chr) : NULL;
}

void chardev_free(Chardev *chr)
{
    if (!chr) {
        return;
    }
    chardev_input_watch_stop(chr);
    chardev_notify_writable(chr, NULL, NULL);
    if (chr->stdio) {
        chardev_restore_terminal();
        stdio_in_use = false;
    }
    if (chr->close) {
        chr->close(chr);
    }
    if (chr->close_out) {
        close(chr->out_fd);
    }
    g_free(chr->spec);
    g_free(chr);
}
