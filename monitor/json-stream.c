/*
 * The splitter behind QMP input. It works byte by byte with a small state
 * (depth, inside a string, after a backslash), so values may arrive in any
 * chunks. Top-level scalars ("42", a stray "}") are cut too, at the next
 * delimiter, so that garbage gets its own parse error instead of swallowing
 * the command after it.
 */
#include "monitor/json-stream.h"
#include <string.h>

struct JsonStream {
    size_t max_size;
    unsigned max_depth;
    JsonStreamFn fn;
    void *opaque;

    GString *buf;       /* the value being collected */
    unsigned depth;     /* open braces and brackets */
    bool in_string, escape;
    bool in_scalar;     /* a top-level number, literal or garbage */
    bool dead;          /* a limit was exceeded: ignore everything */
};

JsonStream *json_stream_new(size_t max_size, unsigned max_depth, JsonStreamFn fn, void *opaque)
{
    JsonStream *js = g_new0(JsonStream, 1);
    js->max_size = max_size;
    js->max_depth = max_depth;
    js->fn = fn;
    js->opaque = opaque;
    js->buf = g_string_new(NULL);
    return js;
}

void json_stream_free(JsonStream *js)
{
    if (js) {
        g_string_free(js->buf, TRUE);
        g_free(js);
    }
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool emit(JsonStream *js)
{
    bool go_on = js->fn(js->buf->str, js->buf->len, NULL, js->opaque);
    /* Give back the memory of a huge value rather than keep it per client. */
    if (js->buf->allocated_len > 65536) {
        g_string_free(js->buf, TRUE);
        js->buf = g_string_new(NULL);
    } else {
        g_string_truncate(js->buf, 0);
    }
    js->in_string = js->escape = js->in_scalar = false;
    js->depth = 0;
    return go_on;
}

static bool fail(JsonStream *js, const char *why)
{
    js->dead = true;
    g_string_free(js->buf, TRUE);
    js->buf = g_string_new(NULL);
    return js->fn(NULL, 0, why, js->opaque);
}

void json_stream_feed(JsonStream *js, const char *data, size_t len)
{
    for (size_t i = 0; i < len && !js->dead; i++) {
        char c = data[i];

        if (js->in_scalar && (is_space(c) || c == '{' || c == '[' || c == '"')) {
            if (!emit(js)) {
                return;
            }
        }
        if (js->buf->len == 0 && is_space(c)) {
            continue; /* whitespace between values */
        }
        if (js->buf->len >= js->max_size) {
            fail(js, "message too large");
            return;
        }
        g_string_append_c(js->buf, c);

        bool done = false;
        if (js->in_string) {
            if (js->escape) {
                js->escape = false;
            } else if (c == '\\') {
                js->escape = true;
            } else if (c == '"') {
                js->in_string = false;
                done = js->depth == 0;
            }
        } else if (c == '"') {
            js->in_string = true;
        } else if (c == '{' || c == '[') {
            if (++js->depth > js->max_depth) {
                fail(js, "nesting too deep");
                return;
            }
        } else if (c == '}' || c == ']') {
            if (js->depth > 0) {
                js->depth--;
            }
            done = js->depth == 0; /* a stray closer at top level is cut alone */
        } else if (js->depth == 0) {
            js->in_scalar = true;
        }
        if (done && !emit(js)) {
            return;
        }
    }
}
