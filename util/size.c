#include "util/size.h"
#include "util/error.h"
#include <math.h>

static uint64_t suffix_unit(char c)
{
    switch (c) {
    case 'B': case 'b': return 1;
    case 'K': case 'k': return 1ULL << 10;
    case 'M': case 'm': return 1ULL << 20;
    case 'G': case 'g': return 1ULL << 30;
    case 'T': case 't': return 1ULL << 40;
    case 'P': case 'p': return 1ULL << 50;
    case 'E': case 'e': return 1ULL << 60;
    default: return 0;
    }
}

gboolean size_parse(const char *str, uint64_t default_unit, uint64_t *out, GError **err)
{
    const char *p = str;
    uint64_t whole = 0, unit = default_unit;
    double frac = 0;
    gboolean digits = FALSE;

    while (g_ascii_isdigit(*p)) {
        unsigned d = *p++ - '0';
        if (whole > (UINT64_MAX - d) / 10) {
            goto too_big;
        }
        whole = whole * 10 + d;
        digits = TRUE;
    }
    if (*p == '.') {
        double scale = 0.1;
        p++;
        while (g_ascii_isdigit(*p)) {
            frac += (*p++ - '0') * scale;
            scale /= 10;
            digits = TRUE;
        }
    }
    if (!digits) {
        goto invalid;
    }
    if (*p) {
        unit = suffix_unit(*p++);
        if (!unit || *p) {
            goto invalid;
        }
    } else if (frac != 0) {
        goto invalid; /* "1.5" alone: fraction of what? */
    }
    if (whole > UINT64_MAX / unit) {
        goto too_big;
    }
    double extra = floor(frac * (double)unit);
    if ((double)(UINT64_MAX - whole * unit) < extra) {
        goto too_big;
    }
    *out = whole * unit + (uint64_t)extra;
    return TRUE;

invalid:
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID,
                "'%s' is not a size (a number with an optional K, M, G, T suffix)", str);
    return FALSE;
too_big:
    g_set_error(err, VIREO_ERROR, VIREO_ERROR_INVALID, "size '%s' is too large", str);
    return FALSE;
}
