/* QEMU-style "key=val,key2=val2" option strings. */
#pragma once
#include <glib.h>
#include <stdbool.h>

/*
 * Parse @str into a table of key -> value (both owned by the table).
 * ",," stands for a literal comma inside a value. If @implied_key is set, a
 * first element without '=' is its value ("file.img,format=raw"); any other
 * bare element "key" means "key=on". A later duplicate key wins.
 * On a malformed string returns NULL and sets @err naming the bad part.
 */
GHashTable *keyval_parse(const char *str, const char *implied_key, GError **err);

/* "on"/"yes"/"true" -> TRUE, "off"/"no"/"false" -> FALSE, else error naming @key. */
gboolean keyval_bool(const char *key, const char *value, gboolean *out, GError **err);

/* Fails naming the first key of @kv not in the NULL-terminated @known, if any. */
gboolean keyval_check_keys(GHashTable *kv, const char *const *known, const char *what, GError **err);

/* Whether @id follows QEMU's rule for ids: a letter, then letters, digits, '-', '.', '_'. */
bool id_wellformed(const char *id);
