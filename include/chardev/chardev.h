/*
 * Character device backends: -serial stdio|file:PATH|null and -chardev
 * stdio|file|null|socket. A frontend (a UART, a virtio console) writes guest
 * output with chardev_write() or chardev_write_nonblocking() and receives
 * input through the callback it installs; input is delivered on the main
 * loop.
 *
 * A socket chardev listens and serves one client at a time (the next one
 * waits in the backlog until it leaves). Output while no client is connected
 * is dropped, as QEMU drops it; input flows from the client.
 */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Chardev Chardev;
typedef struct VmChardev VmChardev;

/* Called on the main loop with bytes the user typed; the frontend buffers. */
typedef void (*ChardevInputFn)(void *opaque, const uint8_t *buf, size_t len);
/* How many bytes the frontend can take right now (0: hold input back). */
typedef size_t (*ChardevCanReadFn)(void *opaque);

/* "stdio", "file:PATH", "null"; errors name the spec and the reason. */
Chardev *chardev_new(const char *spec, GError **err);
/* A -chardev as the command line described it; errors name its id. */
Chardev *chardev_open(const VmChardev *c, GError **err);
void chardev_free(Chardev *chr);
/* The TCP port a socket chardev listens on (port=0 picks one), or -1. */
int chardev_socket_port(Chardev *chr);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Chardev, chardev_free)

/* Writes all of @buf (blocking briefly if the backend is full); never fails the guest. */
void chardev_write(Chardev *chr, const uint8_t *buf, size_t len);

/*
 * Write without ever blocking: returns how much of @buf the backend took
 * now (all of it where output is discarded or has failed). Less than @len
 * means the backend is full: chardev_notify_writable() says when it is not.
 * A device must use this from a vCPU, which holds the big lock: a terminal
 * that stops reading would otherwise stall the whole VM.
 */
size_t chardev_write_nonblocking(Chardev *chr, const uint8_t *buf, size_t len);
/*
 * Call @fn once, on the main loop with the big lock held, when the backend
 * can take output again; @fn NULL cancels. One watcher per chardev.
 */
void chardev_notify_writable(Chardev *chr, void (*fn)(void *opaque), void *opaque);
void chardev_set_input(Chardev *chr, ChardevInputFn fn, void *opaque);
/* How many more bytes the frontend can accept is its business: input it cannot take is dropped. */

/*
 * Flow control for frontends with small buffers: the backend reads no more
 * than @can_read allows and stops reading while it says 0; the frontend
 * calls chardev_accept_input() once it has room again (any thread holding
 * the big lock).
 */
void chardev_set_input_full(Chardev *chr, ChardevInputFn fn, ChardevCanReadFn can_read,
                            void *opaque);
void chardev_accept_input(Chardev *chr);

/*
 * Hand @buf to the frontend as if the backend had read it, bypassing flow
 * control and the Ctrl-a escapes: for tests and in-process producers.
 */
void chardev_inject_input(Chardev *chr, const uint8_t *buf, size_t len);

/*
 * "stdio" interprets QEMU's -nographic escapes on input: Ctrl-a x calls the
 * quit handler, Ctrl-a Ctrl-a sends one Ctrl-a, Ctrl-a h prints help.
 * The handler runs on the main loop with the big lock held.
 */
void chardev_set_quit_handler(void (*fn)(void *opaque), void *opaque);

/*
 * Put the terminal back the way "stdio" found it. Async-signal-safe and
 * idempotent, so system/ may call it from atexit() or a fatal-signal path;
 * chardev_free() does it too.
 */
void chardev_restore_terminal(void);
