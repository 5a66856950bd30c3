/* Generic save and load of device state tables: see include/migration/vmstate.h. */
#include "migration/vmstate.h"
#include "util/error.h"
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t left;
} Cursor;

static void put_le(GByteArray *out, uint64_t v, unsigned n)
{
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++) {
        b[i] = v >> (8 * i);
    }
    g_byte_array_append(out, b, n);
}

static uint64_t load_native(const void *p, unsigned n)
{
    switch (n) {
    case 1: return *(const uint8_t *)p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

static void store_native(void *p, uint64_t v, unsigned n)
{
    switch (n) {
    case 1: *(uint8_t *)p = v; break;
    case 2: { uint16_t x = v; memcpy(p, &x, 2); break; }
    case 4: { uint32_t x = v; memcpy(p, &x, 4); break; }
    default: memcpy(p, &v, 8); break;
    }
}

static bool take(Cursor *c, size_t n, const uint8_t **out)
{
    if (c->left < n) {
        return false;
    }
    *out = c->p;
    c->p += n;
    c->left -= n;
    return true;
}

static bool get_le(Cursor *c, unsigned n, uint64_t *v)
{
    const uint8_t *p;
    if (!take(c, n, &p)) {
        return false;
    }
    *v = 0;
    for (unsigned i = 0; i < n; i++) {
        *v |= (uint64_t)p[i] << (8 * i);
    }
    return true;
}

static bool save_fields(const VMStateDescription *vmsd, void *opaque, GByteArray *out, GError **err);

static bool save_field(const VMStateField *f, uint8_t *base, GByteArray *out, GError **err)
{
    for (unsigned i = 0; i < f->count; i++) {
        uint8_t *p = base + f->offset + i * f->size;
        switch (f->type) {
        case VMS_U8:
        case VMS_U16:
        case VMS_U32:
        case VMS_U64:
            put_le(out, load_native(p, f->size), f->size);
            break;
        case VMS_BOOL:
            put_le(out, *(bool *)p ? 1 : 0, 1);
            break;
        case VMS_BUFFER:
            g_byte_array_append(out, p, f->size);
            break;
        case VMS_STRUCT:
            if (!save_fields(f->vmsd, p, out, err)) {
                return false;
            }
            break;
        }
    }
    return true;
}

static bool save_fields(const VMStateDescription *vmsd, void *opaque, GByteArray *out, GError **err)
{
    if (vmsd->pre_save && !vmsd->pre_save(opaque, err)) {
        return false;
    }
    for (const VMStateField *f = vmsd->fields; f && f->name; f++) {
        if (!save_field(f, opaque, out, err)) {
            return false;
        }
    }
    for (const VMStateDescription *const *s = vmsd->subsections; s && *s; s++) {
        const VMStateDescription *sub = *s;
        if (sub->needed && !sub->needed(opaque)) {
            continue;
        }
        size_t name_len = strlen(sub->name);
        g_assert(name_len > 0 && name_len < 256);
        put_le(out, 1, 1);
        put_le(out, name_len, 1);
        g_byte_array_append(out, (const uint8_t *)sub->name, name_len);
        put_le(out, sub->version, 4);
        guint len_at = out->len;
        put_le(out, 0, 4);
        if (!save_fields(sub, opaque, out, err)) {
            return false;
        }
        uint32_t len = out->len - len_at - 4;
        for (unsigned i = 0; i < 4; i++) {
            out->data[len_at + i] = len >> (8 * i);
        }
    }
    put_le(out, 0, 1);
    return true;
}

bool vmstate_save(const VMStateDescription *vmsd, void *opaque, GByteArray *out, GError **err)
{
    return save_fields(vmsd, opaque, out, err);
}

static bool bad(GError **err, const VMStateDescription *vmsd, const char *what, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

static bool bad(GError **err, const VMStateDescription *vmsd, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "device state '%s'%s%s: %s", vmsd->name,
                what ? ", field " : "", what ? what : "", why);
    return false;
}

static bool load_fields(const VMStateDescription *vmsd, void *opaque, int version, Cursor *c, GError **err);

static bool load_field(const VMStateDescription *vmsd, const VMStateField *f, uint8_t *base, Cursor *c,
                       GError **err)
{
    for (unsigned i = 0; i < f->count; i++) {
        uint8_t *p = base + f->offset + i * f->size;
        uint64_t v;
        const uint8_t *raw;
        switch (f->type) {
        case VMS_U8:
        case VMS_U16:
        case VMS_U32:
        case VMS_U64:
            if (!get_le(c, f->size, &v)) {
                return bad(err, vmsd, f->name, "truncated");
            }
            store_native(p, v, f->size);
            break;
        case VMS_BOOL:
            if (!get_le(c, 1, &v)) {
                return bad(err, vmsd, f->name, "truncated");
            }
            if (v > 1) {
                return bad(err, vmsd, f->name, "boolean with value %u", (unsigned)v);
            }
            *(bool *)p = v;
            break;
        case VMS_BUFFER:
            if (!take(c, f->size, &raw)) {
                return bad(err, vmsd, f->name, "truncated");
            }
            memcpy(p, raw, f->size);
            break;
        case VMS_STRUCT:
            if (!load_fields(f->vmsd, p, f->vmsd->version, c, err)) {
                return false;
            }
            break;
        }
    }
    return true;
}

static const VMStateDescription *find_subsection(const VMStateDescription *vmsd, const char *name)
{
    for (const VMStateDescription *const *s = vmsd->subsections; s && *s; s++) {
        if (strcmp((*s)->name, name) == 0) {
            return *s;
        }
    }
    return NULL;
}

static bool load_fields(const VMStateDescription *vmsd, void *opaque, int version, Cursor *c, GError **err)
{
    if (version > vmsd->version || version < vmsd->minimum_version) {
        return bad(err, vmsd, NULL, "version %d, this Vireo loads versions %d to %d", version,
                   vmsd->minimum_version, vmsd->version);
    }
    for (const VMStateField *f = vmsd->fields; f && f->name; f++) {
        if (f->since_version <= version && !load_field(vmsd, f, opaque, c, err)) {
            return false;
        }
    }
    for (;;) {
        uint64_t marker, name_len, sub_version, len;
        const uint8_t *name;
        if (!get_le(c, 1, &marker)) {
            return bad(err, vmsd, NULL, "truncated before the end of its subsections");
        }
        if (marker == 0) {
            break;
        }
        if (marker != 1 || !get_le(c, 1, &name_len) || !take(c, name_len, &name) || !get_le(c, 4, &sub_version) ||
            !get_le(c, 4, &len) || len > c->left) {
            return bad(err, vmsd, NULL, "malformed subsection header");
        }
        g_autofree char *sub_name = g_strndup((const char *)name, name_len);
        const VMStateDescription *sub = find_subsection(vmsd, sub_name);
        if (!sub) {
            return bad(err, vmsd, NULL, "unknown subsection '%s'", sub_name);
        }
        Cursor inner = { c->p, len };
        if (!load_fields(sub, opaque, sub_version, &inner, err)) {
            return false;
        }
        if (inner.left) {
            return bad(err, sub, NULL, "%zu bytes left over", inner.left);
        }
        c->p += len;
        c->left -= len;
    }
    if (vmsd->post_load && !vmsd->post_load(opaque, version, err)) {
        return false;
    }
    return true;
}

bool vmstate_load(const VMStateDescription *vmsd, void *opaque, int version, const uint8_t *buf, size_t len,
                  GError **err)
{
    Cursor c = { buf, len };
    if (!load_fields(vmsd, opaque, version, &c, err)) {
        return false;
    }
    if (c.left) {
        return bad(err, vmsd, NULL, "%zu bytes left over", c.left);
    }
    return true;
}
