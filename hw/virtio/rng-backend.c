/*
 * The entropy backends. They live next to virtio-rng, their only consumer:
 * Vireo's promised top level has no backends/ folder as QEMU's does, and
 * system/ holds the command line and the process, not device backends.
 */
#define G_LOG_DOMAIN "rng"
#include "hw/virtio/rng-backend.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define RNG_DEFAULT_FILE "/dev/urandom" /* as QEMU's rng-random */
#define RNG_CHUNK 4096                  /* the most one callback gets */

struct RngBackend {
    char *name;         /* "rng-random 'r0'", for log lines */
    int fd;             /* rng-random; -1 for rng-builtin */
    bool exhausted;     /* the file ended or failed (warned once) */
    guint source;       /* the fd watch or idle serving the request, 0 without one */
    size_t want;
    RngReceiveFn fn;
    void *opaque;
};

static void deliver(RngBackend *rng, const uint8_t *buf, size_t len)
{
    RngReceiveFn fn = rng->fn;
    rng->fn = NULL;
    rng->source = 0;
    fn(rng->opaque, buf, len); /* may ask again */
}

/* The source failed for good: say so once and give the guest nothing more. */
static gboolean exhausted(RngBackend *rng, const char *why)
{
    g_warning("%s: %s; no more entropy from it", rng->name, why);
    rng->exhausted = true;
    rng->source = 0;
    rng->fn = NULL;
    return G_SOURCE_REMOVE;
}

static gboolean random_readable(gint fd, GIOCondition cond, gpointer data)
{
    RngBackend *rng = data;
    uint8_t buf[RNG_CHUNK];
    ssize_t n = read(fd, buf, MIN(rng->want, sizeof(buf)));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        /* A regular file runs out: the guest simply gets no more, as from a drained hardware RNG. */
        return exhausted(rng, n < 0 ? g_strerror(errno) : "end of file");
    }
    deliver(rng, buf, n);
    return G_SOURCE_REMOVE;
}

static gboolean builtin_fill(gpointer data)
{
    RngBackend *rng = data;
    uint8_t buf[RNG_CHUNK];
    ssize_t n = getrandom(buf, MIN(rng->want, sizeof(buf)), 0);
    if (n < 0) {
        if (errno == EINTR) {
            return G_SOURCE_CONTINUE;
        }
        g_autofree char *why = g_strdup_printf("getrandom: %s", g_strerror(errno));
        return exhausted(rng, why);
    }
    deliver(rng, buf, n);
    return G_SOURCE_REMOVE;
}

void rng_backend_request(RngBackend *rng, size_t len, RngReceiveFn fn, void *opaque)
{
    g_assert(fn && len > 0);
    rng->want = len;
    rng->fn = fn;
    rng->opaque = opaque;
    if (rng->source || rng->exhausted) {
        return;
    }
    rng->source = rng->fd >= 0 ? g_unix_fd_add(rng->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, random_readable, rng)
                               : g_idle_add(builtin_fill, rng);
}

void rng_backend_cancel(RngBackend *rng)
{
    if (rng->source) {
        g_source_remove(rng->source);
        rng->source = 0;
    }
    rng->fn = NULL;
}

static RngBackend *rng_alloc(const char *type, const char *id)
{
    RngBackend *rng = g_new0(RngBackend, 1);
    rng->name = g_strdup_printf("%s '%s'", type, id ? id : "default");
    rng->fd = -1;
    return rng;
}

RngBackend *rng_backend_new_builtin(void)
{
    return rng_alloc("rng-builtin", NULL);
}

RngBackend *rng_backend_new(const VmOpt *object, GError **err)
{
    static const char *const random_keys[] = { "qom-type", "id", "filename", NULL };
    static const char *const builtin_keys[] = { "qom-type", "id", NULL };
    const char *type = vm_opt_get(object, "qom-type");
    const char *id = vm_opt_get(object, "id");
    bool is_random = g_strcmp0(type, "rng-random") == 0;

    if (!is_random && g_strcmp0(type, "rng-builtin") != 0) {
        vm_opt_error(object, err, "'%s' is not an entropy backend (rng-random or rng-builtin)", type ? type : "");
        return NULL;
    }
    if (!vm_opt_check_keys(object, is_random ? random_keys : builtin_keys, err)) {
        return NULL;
    }
    g_autoptr(RngBackend) rng = rng_alloc(type, id);
    if (is_random) {
        const char *file = vm_opt_get(object, "filename");
        file = file ? file : RNG_DEFAULT_FILE;
        rng->fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (rng->fd < 0) {
            vm_opt_error(object, err, "cannot open '%s': %s", file, g_strerror(errno));
            return NULL;
        }
    }
    return g_steal_pointer(&rng);
}

void rng_backend_free(RngBackend *rng)
{
    if (!rng) {
        return;
    }
    rng_backend_cancel(rng);
    if (rng->fd >= 0) {
        close(rng->fd);
    }
    g_free(rng->name);
    g_free(rng);
}
