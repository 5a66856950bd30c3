/*
 * Character device backends (-serial stdio|file:PATH|null). A frontend
 * (a UART) writes guest output with chardev_write() and receives input
 * through the callback it installs; input is delivered on the main loop.
 */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Chardev Chardev;

/* Called on the main loop with bytes the user typed; the frontend buffers. */
typedef void (*ChardevInputFn)(void *opaque, const uint8_t *buf, size_t len);

/* "stdio", "file:PATH", "null"; errors name the spec and the reason. */
Chardev *chardev_new(const char *spec, GError **err);
void chardev_free(Chardev *chr);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Chardev, chardev_free)

/* Writes all of @buf (blocking briefly if the backend is full); never fails the guest. */
void chardev_write(Chardev *chr, const uint8_t *buf, size_t len);
void chardev_set_input(Chardev *chr, ChardevInputFn fn, void *opaque);
/* How many more bytes the frontend can accept is its business: input it cannot take is dropped. */
