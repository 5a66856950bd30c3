/* Block backends: a raw file and the worker threads that do its I/O. */
#define G_LOG_DOMAIN "block"
#include "block/block.h"
#include "util/iov.h"
#include "util/error.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Enough threads that a queue of requests to a real disk overlaps, few
 * enough for a small host; GLib starts them as requests arrive.
 */
#define BLOCK_WORKERS 8
/* The largest piece written at a time when zeroes are written out. */
#define ZERO_CHUNK (1u << 20)

typedef enum { BLOCK_OP_READ, BLOCK_OP_WRITE, BLOCK_OP_FLUSH, BLOCK_OP_DISCARD, BLOCK_OP_ZEROES } BlockOp;

typedef struct BlockRequest {
    BlockOp op;
    bool may_unmap;
    uint64_t offset, len;
    const struct iovec *iov;
    unsigned cnt;
    BlockCompletionFunc *cb;
    void *opaque;
} BlockRequest;

struct BlockBackend {
    char *id, *filename, *serial;
    int fd;
    uint64_t size;
    BlockConfig conf;
    /* O_DIRECT: offsets, lengths and buffers must be multiples of this. */
    unsigned align;
    GThreadPool *pool;
    GMutex lock;
    GCond idle;
    unsigned inflight;
};

static const char *open_hint(int e, const BlockConfig *conf)
{
    if (e == EINVAL && conf->direct) {
        return " (the file system does not support O_DIRECT, which cache=none and cache.direct=on ask for)";
    }
    if ((e == EACCES || e == EROFS || e == EPERM) && !conf->read_only) {
        return " (readonly=on or read-only=on opens it read-only)";
    }
    return "";
}

/* With O_DIRECT, some devices want 4096-byte units: find out with one aligned read. */
static unsigned probe_align(int fd)
{
    void *buf = NULL;
    if (posix_memalign(&buf, 4096, 4096) != 0) {
        return 4096;
    }
    unsigned align = 512;
    if (pread(fd, buf, 512, 0) < 0 && errno == EINVAL) {
        align = 4096;
    }
    free(buf);
    return align;
}

static void block_worker(gpointer data, gpointer user_data);

BlockBackend *block_backend_open(const BlockConfig *conf, const char *what, GError **err)
{
    int flags = O_CLOEXEC | (conf->read_only ? O_RDONLY : O_RDWR);
    flags |= conf->direct ? O_DIRECT : 0;
    flags |= conf->writethrough ? O_DSYNC : 0;
    int fd = open(conf->filename, flags);
    if (fd < 0) {
        int e = errno;
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "%s: could not open '%s': %s%s", what, conf->filename,
                    g_strerror(e), open_hint(e, conf));
        return NULL;
    }
    struct stat st;
    off_t end = -1;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        errno = EISDIR;
    } else {
        end = lseek(fd, 0, SEEK_END);
    }
    if (end < 0) {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "%s: '%s': %s", what, conf->filename, g_strerror(errno));
        close(fd);
        return NULL;
    }
    BlockBackend *blk = g_new0(BlockBackend, 1);
    blk->fd = fd;
    blk->size = (uint64_t)end;
    blk->conf = *conf;
    blk->filename = g_strdup(conf->filename);
    blk->id = g_strdup(conf->id);
    blk->serial = g_strdup(conf->serial);
    blk->conf.filename = blk->filename;
    blk->conf.id = blk->id;
    blk->conf.serial = blk->serial;
    blk->align = conf->direct ? probe_align(fd) : 1;
    g_mutex_init(&blk->lock);
    g_cond_init(&blk->idle);
    blk->pool = g_thread_pool_new(block_worker, blk, BLOCK_WORKERS, FALSE, NULL);
    return blk;
}

void block_backend_drain(BlockBackend *blk)
{
    g_mutex_lock(&blk->lock);
    while (blk->inflight) {
        g_cond_wait(&blk->idle, &blk->lock);
    }
    g_mutex_unlock(&blk->lock);
}

void block_backend_close(BlockBackend *blk)
{
    if (!blk) {
        return;
    }
    block_backend_drain(blk);
    g_thread_pool_free(blk->pool, FALSE, TRUE);
    close(blk->fd);
    g_mutex_clear(&blk->lock);
    g_cond_clear(&blk->idle);
    g_free(blk->id);
    g_free(blk->filename);
    g_free(blk->serial);
    g_free(blk);
}

uint64_t block_backend_size(const BlockBackend *blk)
{
    return blk->size;
}

unsigned block_backend_block_size(const BlockBackend *blk)
{
    return MAX(blk->align, 512u);
}

bool block_backend_read_only(const BlockBackend *blk)
{
    return blk->conf.read_only;
}

bool block_backend_writeback(const BlockBackend *blk)
{
    return !blk->conf.writethrough;
}

const char *block_backend_id(const BlockBackend *blk)
{
    return blk->id;
}

const char *block_backend_filename(const BlockBackend *blk)
{
    return blk->filename;
}

const char *block_backend_serial(const BlockBackend *blk)
{
    return blk->serial;
}

/* The whole of @iov at @offset, retrying short transfers; a read past the end of the file reads zeroes. */
static int full_io(BlockBackend *blk, bool write, uint64_t offset, const struct iovec *iov, unsigned cnt)
{
    g_autofree struct iovec *v = g_memdup2(iov, sizeof(*iov) * cnt);
    unsigned i = 0;
    while (i < cnt) {
        if (v[i].iov_len == 0) {
            i++;
            continue;
        }
        int n = (int)MIN(cnt - i, (unsigned)IOV_MAX);
        ssize_t r = write ? pwritev(blk->fd, v + i, n, (off_t)offset) : preadv(blk->fd, v + i, n, (off_t)offset);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            if (write) {
                return -EIO;
            }
            for (; i < cnt; i++) {
                memset(v[i].iov_base, 0, v[i].iov_len);
            }
            return 0;
        }
        offset += (uint64_t)r;
        for (size_t left = (size_t)r; left > 0;) {
            size_t step = MIN(left, v[i].iov_len);
            v[i].iov_base = (char *)v[i].iov_base + step;
            v[i].iov_len -= step;
            left -= step;
            if (v[i].iov_len == 0) {
                i++;
            }
        }
    }
    return 0;
}

static bool iov_aligned(const struct iovec *iov, unsigned cnt, unsigned align)
{
    for (unsigned i = 0; i < cnt; i++) {
        if ((uintptr_t)iov[i].iov_base % align || iov[i].iov_len % align) {
            return false;
        }
    }
    return true;
}

/* O_DIRECT wants aligned buffers; a guest's need not be, so such requests go through an aligned copy. */
static int rw(BlockBackend *blk, bool write, uint64_t offset, uint64_t len, const struct iovec *iov, unsigned cnt)
{
    if (blk->align == 1 || iov_aligned(iov, cnt, blk->align)) {
        return full_io(blk, write, offset, iov, cnt);
    }
    if (offset % blk->align || len % blk->align) {
        return -EINVAL;
    }
    void *bounce = NULL;
    if (posix_memalign(&bounce, 4096, MAX(len, 1)) != 0) {
        return -ENOMEM;
    }
    if (write) {
        iov_to_buf(iov, cnt, 0, bounce, len);
    }
    struct iovec one = { bounce, len };
    int ret = full_io(blk, write, offset, &one, 1);
    if (ret == 0 && !write) {
        iov_from_buf(iov, cnt, 0, bounce, len);
    }
    free(bounce);
    return ret;
}

static int punch_hole(BlockBackend *blk, uint64_t offset, uint64_t len)
{
    return fallocate(blk->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len) ? -errno : 0;
}

static bool not_supported(int ret)
{
    return ret == -EOPNOTSUPP || ret == -ENOTSUP || ret == -ENOSYS || ret == -EINVAL;
}

static int write_zeroes(BlockBackend *blk, uint64_t offset, uint64_t len, bool may_unmap)
{
    int ret = -EOPNOTSUPP;
    if (may_unmap && blk->conf.discard_unmap) {
        ret = punch_hole(blk, offset, len);
    }
    if (ret != 0) {
        ret = fallocate(blk->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)len) ? -errno : 0;
    }
    if (ret == 0) {
        /* fallocate bypasses O_DSYNC: writethrough still owes the guest a durable result. */
        return blk->conf.writethrough && fdatasync(blk->fd) ? -errno : 0;
    }
    if (!not_supported(ret)) {
        return ret;
    }
    void *zero = NULL;
    size_t chunk = (size_t)MIN(len, (uint64_t)ZERO_CHUNK);
    if (posix_memalign(&zero, 4096, MAX(chunk, 1)) != 0) {
        return -ENOMEM;
    }
    memset(zero, 0, chunk);
    ret = 0;
    while (ret == 0 && len > 0) {
        size_t n = (size_t)MIN(len, (uint64_t)chunk);
        struct iovec one = { zero, n };
        ret = full_io(blk, true, offset, &one, 1);
        offset += n;
        len -= n;
    }
    free(zero);
    return ret;
}

static int execute(BlockBackend *blk, const BlockRequest *req)
{
    bool writes = req->op == BLOCK_OP_WRITE || req->op == BLOCK_OP_DISCARD || req->op == BLOCK_OP_ZEROES;
    if (writes && blk->conf.read_only) {
        return -EROFS;
    }
    if (req->op != BLOCK_OP_FLUSH && (req->offset > blk->size || req->len > blk->size - req->offset)) {
        return -EIO;
    }
    switch (req->op) {
    case BLOCK_OP_READ:
        return rw(blk, false, req->offset, req->len, req->iov, req->cnt);
    case BLOCK_OP_WRITE:
        return rw(blk, true, req->offset, req->len, req->iov, req->cnt);
    case BLOCK_OP_FLUSH:
        return blk->conf.no_flush || blk->conf.read_only || fdatasync(blk->fd) == 0 ? 0 : -errno;
    case BLOCK_OP_DISCARD: {
        /* A discard is a hint: where holes cannot be punched, nothing is lost by ignoring it. */
        int ret = blk->conf.discard_unmap ? punch_hole(blk, req->offset, req->len) : 0;
        return not_supported(ret) ? 0 : ret;
    }
    case BLOCK_OP_ZEROES:
        return write_zeroes(blk, req->offset, req->len, req->may_unmap);
    }
    g_assert_not_reached();
}

static void block_worker(gpointer data, gpointer user_data)
{
    BlockBackend *blk = user_data;
    BlockRequest *req = data;
    int ret = execute(blk, req);
    req->cb(req->opaque, ret);
    g_free(req);
    g_mutex_lock(&blk->lock);
    if (--blk->inflight == 0) {
        g_cond_broadcast(&blk->idle);
    }
    g_mutex_unlock(&blk->lock);
}

static void submit(BlockBackend *blk, BlockRequest *req)
{
    g_mutex_lock(&blk->lock);
    blk->inflight++;
    g_mutex_unlock(&blk->lock);
    g_thread_pool_push(blk->pool, req, NULL);
}

static BlockRequest *request_new(BlockOp op, uint64_t offset, uint64_t len, BlockCompletionFunc *cb, void *opaque)
{
    BlockRequest *req = g_new0(BlockRequest, 1);
    *req = (BlockRequest){ .op = op, .offset = offset, .len = len, .cb = cb, .opaque = opaque };
    return req;
}

static void submit_rw(BlockBackend *blk, BlockOp op, uint64_t offset, const struct iovec *iov, unsigned cnt,
                      BlockCompletionFunc *cb, void *opaque)
{
    BlockRequest *req = request_new(op, offset, iov_size(iov, cnt), cb, opaque);
    req->iov = iov;
    req->cnt = cnt;
    submit(blk, req);
}

void block_backend_preadv(BlockBackend *blk, uint64_t offset, const struct iovec *iov, unsigned cnt,
                          BlockCompletionFunc *cb, void *opaque)
{
    submit_rw(blk, BLOCK_OP_READ, offset, iov, cnt, cb, opaque);
}

void block_backend_pwritev(BlockBackend *blk, uint64_t offset, const struct iovec *iov, unsigned cnt,
                           BlockCompletionFunc *cb, void *opaque)
{
    submit_rw(blk, BLOCK_OP_WRITE, offset, iov, cnt, cb, opaque);
}

void block_backend_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque)
{
    submit(blk, request_new(BLOCK_OP_FLUSH, 0, 0, cb, opaque));
}

void block_backend_discard(BlockBackend *blk, uint64_t offset, uint64_t len, BlockCompletionFunc *cb, void *opaque)
{
    submit(blk, request_new(BLOCK_OP_DISCARD, offset, len, cb, opaque));
}

void block_backend_write_zeroes(BlockBackend *blk, uint64_t offset, uint64_t len, bool may_unmap,
                                BlockCompletionFunc *cb, void *opaque)
{
    BlockRequest *req = request_new(BLOCK_OP_ZEROES, offset, len, cb, opaque);
    req->may_unmap = may_unmap;
    submit(blk, req);
}
