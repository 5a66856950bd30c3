/*
 * Entropy backends: -object rng-random,id=ID[,filename=FILE] (default
 * /dev/urandom) and -object rng-builtin,id=ID (the host's getrandom()).
 * A device asks for bytes and gets them later on the main loop, so a source
 * that has nothing to give (a FIFO, a slow hardware RNG) never stalls a vCPU.
 */
#pragma once
#include "system/options.h"
#include <glib.h>
#include <stddef.h>
#include <stdint.h>

typedef struct RngBackend RngBackend;

/* Receives 1 to the requested number of bytes; main loop, big lock held. */
typedef void (*RngReceiveFn)(void *opaque, const uint8_t *buf, size_t len);

/*
 * Open the backend -object @object describes. Its keys are checked here;
 * errors name the -object ("cannot open '/dev/nope': ...").
 */
RngBackend *rng_backend_new(const VmOpt *object, GError **err);
/* An rng-builtin nobody named: what virtio-rng uses without rng=, as QEMU does. */
RngBackend *rng_backend_new_builtin(void);
void rng_backend_free(RngBackend *rng);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(RngBackend, rng_backend_free)

/*
 * Ask for up to @len bytes for @fn. One request at a time: a new one
 * replaces the one outstanding. @fn is never called from inside this call.
 */
void rng_backend_request(RngBackend *rng, size_t len, RngReceiveFn fn, void *opaque);
/* Forget the outstanding request, if any. */
void rng_backend_cancel(RngBackend *rng);
