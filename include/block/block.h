/*
 * Block backends: a raw image file opened for one device, with its I/O
 * done asynchronously on a pool of worker threads (preadv/pwritev,
 * fdatasync, fallocate), never under the big lock.
 *
 * A device finds its backend by the id it names in drive= (a -drive id, or
 * the node-name of a -blockdev) with block_backend_open_by_id(). Each
 * request completes by calling its callback on a worker thread with 0 or
 * -errno; the iovecs must stay valid until then.
 */
#pragma once
#include "system/options.h"
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct BlockBackend BlockBackend;

/* What the options ask for, after -drive/-blockdev have been read. */
typedef struct BlockConfig {
    const char *id;     /* what devices name in drive= */
    const char *filename;
    const char *serial; /* -drive serial=, or NULL */
    bool read_only;
    bool direct;        /* O_DIRECT (cache=none, directsync, cache.direct=on) */
    bool writethrough;  /* every write reaches the disk before it completes (O_DSYNC) */
    bool no_flush;      /* flushes do nothing (cache=unsafe, cache.no-flush=on) */
    bool discard_unmap; /* discard=unmap punches holes; otherwise discards are ignored */
} BlockConfig;

typedef void BlockCompletionFunc(void *opaque, int ret);

/* Open @conf->filename; one line naming @what (the option) on failure. */
BlockBackend *block_backend_open(const BlockConfig *conf, const char *what, GError **err);
/*
 * Open the backend @id of @cfg for the device @user (its -device option): a
 * -drive with that id (or the id QEMU gives an unnamed one, e.g. "virtio0")
 * or a -blockdev node-name. Errors name the -drive or -blockdev that was
 * wrong, or @user when there is no such drive.
 */
BlockBackend *block_backend_open_by_id(const VmConfig *cfg, const VmOpt *user, const char *id, GError **err);
/* Wait for requests in flight, then close the file. */
void block_backend_close(BlockBackend *blk);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlockBackend, block_backend_close)

uint64_t block_backend_size(const BlockBackend *blk); /* bytes */
/* The smallest unit of I/O: 512, or 4096 for O_DIRECT on a device with 4 KiB sectors. */
unsigned block_backend_block_size(const BlockBackend *blk);
bool block_backend_read_only(const BlockBackend *blk);
/* The write cache is on (writeback); off for writethrough and directsync. */
bool block_backend_writeback(const BlockBackend *blk);
const char *block_backend_id(const BlockBackend *blk);
const char *block_backend_filename(const BlockBackend *blk);
/* -drive serial=, or NULL. */
const char *block_backend_serial(const BlockBackend *blk);

void block_backend_preadv(BlockBackend *blk, uint64_t offset, const struct iovec *iov, unsigned cnt,
                          BlockCompletionFunc *cb, void *opaque);
/* -EROFS on a read-only backend. */
void block_backend_pwritev(BlockBackend *blk, uint64_t offset, const struct iovec *iov, unsigned cnt,
                           BlockCompletionFunc *cb, void *opaque);
void block_backend_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque);
/* Completes with 0 without doing anything unless discard=unmap. */
void block_backend_discard(BlockBackend *blk, uint64_t offset, uint64_t len, BlockCompletionFunc *cb, void *opaque);
/* Zero the range; with @may_unmap (and discard=unmap) by punching a hole. */
void block_backend_write_zeroes(BlockBackend *blk, uint64_t offset, uint64_t len, bool may_unmap,
                                BlockCompletionFunc *cb, void *opaque);
/* Wait until no request is in flight (their callbacks have returned). */
void block_backend_drain(BlockBackend *blk);

/*
 * Check every -drive's keys and interface, and return the devices
 * -drive if=virtio implies: one virtio-blk-pci VmOpt per such drive (keys
 * driver, drive, and addr if given) whose errors name the -drive. NULL with
 * one line in @err on a bad -drive.
 */
/* The file of the -drive (by id or QEMU's name for it) or -blockdev node-name @id, or NULL. */
char *block_drive_filename(const VmConfig *cfg, const char *id);
GPtrArray *block_drive_implied_devices(const VmConfig *cfg, GError **err);
