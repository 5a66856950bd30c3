/*
 * Inside the chardev layer: the Chardev object and what a backend file
 * (char-socket.c) needs from the core in char.c. Frontends use
 * include/chardev/chardev.h only.
 */
#pragma once
#include "chardev/chardev.h"

struct Chardev {
    char *spec;          /* for log lines: the -serial spec or "-chardev id=ID" */
    int out_fd;          /* -1: output is discarded */
    bool close_out;      /* out_fd is ours */
    bool out_socket;     /* out_fd is a non-blocking socket of ours: send() whole buffers */
    int in_fd;           /* -1: no input */
    bool in_eof;
    guint in_watch;      /* 0 while there is no frontend, input is held back, or after EOF */
    bool stdio;
    bool got_escape;     /* the previous input byte was Ctrl-a */
    bool write_failed;   /* output stopped after a hard error (warned once) */
    guint out_watch;     /* armed by chardev_notify_writable */
    void (*writable_fn)(void *opaque);
    void *writable_opaque;
    ChardevInputFn input_fn;
    ChardevCanReadFn can_read_fn;
    void *input_opaque;
    /*
     * Backend hooks, NULL for the plain fd backends. @hangup: the peer went
     * away (end of input, or a write error on the connection); without it
     * input just stops and output is dropped for good. @close: release
     * what the backend holds, from chardev_free().
     */
    void (*hangup)(Chardev *chr);
    void (*close)(Chardev *chr);
    void *backend; /* the backend's own state */
};

Chardev *chardev_alloc(const char *spec);
void chardev_input_watch_start(Chardev *chr);
void chardev_input_watch_stop(Chardev *chr);
/*
 * The output fd is about to go (or has gone): drop its writability watch
 * and, if a frontend waits for one, call it back soon from the main loop;
 * output is discarded until a new fd comes.
 */
void chardev_output_gone(Chardev *chr);

/* socket,...,server=on,wait=off: listen on a unix path, host:port or an inherited fd. */
bool chardev_socket_open(Chardev *chr, const char *unix_path, const char *host, const char *port, int fd,
                         GError **err);
