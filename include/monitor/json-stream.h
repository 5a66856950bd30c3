/*
 * Cutting a byte stream into top-level JSON values without parsing them:
 * brace and bracket depth is counted outside strings, so a value ends where
 * its depth returns to zero. Each cut value is then parsed on its own, which
 * lets a reader recover from a malformed value at the next one.
 */
#pragma once
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

/* QEMU's limits for one QMP message. */
#define JSON_STREAM_MAX_SIZE (64u << 20)
#define JSON_STREAM_MAX_DEPTH 1024

typedef struct JsonStream JsonStream;

/*
 * Called once per top-level value (@text, @len; not NUL-terminated inside the
 * stream's buffer, but text[len] is a NUL) or, with @text NULL, once when a
 * limit is exceeded: @why says which. After a limit the stream discards all
 * further input. Return false to stop feeding the rest of the current chunk.
 */
typedef bool (*JsonStreamFn)(const char *text, size_t len, const char *why, void *opaque);

JsonStream *json_stream_new(size_t max_size, unsigned max_depth, JsonStreamFn fn, void *opaque);
void json_stream_free(JsonStream *js);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(JsonStream, json_stream_free)

/* Feed bytes; calls the callback for each value completed by them. */
void json_stream_feed(JsonStream *js, const char *data, size_t len);
