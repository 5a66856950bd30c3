#include "util/keyval.h"
#include <string.h>
#include "util/error.h"

GHashTable *keyval_parse(const char *str, const char *implied_key, GError **err)
{
    g_autoptr(GHashTable) kv = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    const char *p = str;
    gboolean first = TRUE;

    while (*p) {
        g_autoptr(GString) key = g_string_new(NULL);
        g_autoptr(GString) val = NULL;

        /* A key runs to '=' or ','; a value runs to a ',' that is not ",,". */
        while (*p && *p != '=' && *p != ',') {
            g_string_append_c(key, *p++);
        }
        if (*p == '=') {
            p++;
            val = g_string_new(NULL);
            while (*p) {
                if (*p == ',') {
                    if (p[1] != ',') {
                        break;
                    }
                    p++;
                }
                g_string_append_c(val, *p++);
            }
        }
        if (*p == ',') {
            p++;
            if (*p == '\0') {
                g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "'%s': trailing comma", str);
                return NULL;
            }
        }
        if (key->len == 0) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "'%s': empty parameter name", str);
            return NULL;
        }
        if (!val) {
            if (first && implied_key) {
                val = g_string_new(key->str);
                g_string_assign(key, implied_key);
            } else {
                val = g_string_new("on");
            }
        }
        g_hash_table_insert(kv, g_string_free(g_steal_pointer(&key), FALSE),
                            g_string_free(g_steal_pointer(&val), FALSE));
        first = FALSE;
    }
    return g_steal_pointer(&kv);
}

gboolean keyval_bool(const char *key, const char *value, gboolean *out, GError **err)
{
    static const char *const yes[] = { "on", "yes", "true", NULL };
    static const char *const no[] = { "off", "no", "false", NULL };

    if (g_strv_contains(yes, value)) {
        *out = TRUE;
    } else if (g_strv_contains(no, value)) {
        *out = FALSE;
    } else {
        g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                    "parameter '%s' expects 'on' or 'off', not '%s'", key, value);
        return FALSE;
    }
    return TRUE;
}

gboolean keyval_check_keys(GHashTable *kv, const char *const *known, const char *what, GError **err)
{
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init(&it, kv);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        if (!g_strv_contains(known, key)) {
            g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                        "%s: unknown parameter '%s'", what, (const char *)key);
            return FALSE;
        }
    }
    return TRUE;
}

/* QEMU's rule for ids (netdev, job, ...): a letter, then letters, digits, '-', '.', '_'. */
bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}
