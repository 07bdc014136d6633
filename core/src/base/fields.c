/*
** fields.c: the one walker of the session field encoding (memmapfs.h):
** mmfs_fields_next and mmfs_fields_skip, and the engine's check of what a
** caller hands in (mmfs__fields_check).  The Lua codec (lua/fields.c) and
** the policy VM's schema check walk the encoding through these.
**
** Invariants: no length is trusted; every read is checked against the
** buffer's end, and nesting is bounded (MMFS_FIELDS_MAXDEPTH), so hostile
** bytes give MMFS_CORRUPT, never a read out of bounds or a deep recursion.
*/
#include "internal.h"

int mmfs_fields_next(mmfs_slice buf, size_t *pos, mmfs_field *out) {
    const uint8_t *p = (const uint8_t *)buf.ptr + *pos, *end = (const uint8_t *)buf.ptr + buf.len;
    if (*pos >= buf.len) return MMFS_CORRUPT;
    memset(out, 0, sizeof *out);
    out->type = (char)*p++;
    switch (out->type) {
    case 'f':
    case 't': break;
    case 'i':
    case 'd':
        if (end - p < 8) return MMFS_CORRUPT;
        out->i = (int64_t)mmfs__ld64(p);
        memcpy(&out->d, p, 8);
        p += 8;
        break;
    case 's':
    case 'T': {
        if (end - p < 4) return MMFS_CORRUPT;
        uint32_t n = mmfs__ld32(p);
        p += 4;
        if (out->type == 'T') {
            out->n = n;
            break;
        }
        if ((size_t)(end - p) < n) return MMFS_CORRUPT;
        out->s.ptr = p;
        out->s.len = n;
        p += n;
        break;
    }
    default: return MMFS_CORRUPT;
    }
    *pos = (size_t)(p - (const uint8_t *)buf.ptr);
    return MMFS_OK;
}

static int skip(mmfs_slice buf, size_t *pos, int depth) {
    mmfs_field v;
    if (depth > MMFS_FIELDS_MAXDEPTH || mmfs_fields_next(buf, pos, &v) != MMFS_OK) return MMFS_CORRUPT;
    for (uint32_t i = 0; v.type == 'T' && i < v.n; i++)
        if (skip(buf, pos, depth + 1) || skip(buf, pos, depth + 1)) return MMFS_CORRUPT;
    return MMFS_OK;
}

int mmfs_fields_skip(mmfs_slice buf, size_t *pos) { return skip(buf, pos, 0); }

int mmfs__fields_check(mmfs_slice buf) {
    size_t pos = 0;
    if (buf.len == 0) return MMFS_OK;
    if (*(const uint8_t *)buf.ptr != 'T' || mmfs_fields_skip(buf, &pos) != MMFS_OK || pos != buf.len)
        return mmfs__err(MMFS_INVALID, "session fields: not a well-formed encoded table");
    return MMFS_OK;
}
