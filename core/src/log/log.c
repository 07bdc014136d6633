/*
** log.c: the record and frame formats (internal.h and log.h): encoding
** commands into records, decoding records from the mapped log, and
** checking frames.  Decoding never trusts a length: every field is checked
** against the bytes available, so a corrupt log gives MMFS_CORRUPT, never a
** read out of bounds.
*/
#include "log.h"

#include <stdlib.h>

/* ------------------------------------------------------------ decoding */

typedef struct rd {
    const uint8_t *p, *end;
    int bad;
} rd;

static uint64_t rd64(rd *r) {
    if (r->end - r->p < 8) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = mmfs__ld64(r->p);
    r->p += 8;
    return v;
}

static uint32_t rd32(rd *r) {
    if (r->end - r->p < 4) {
        r->bad = 1;
        return 0;
    }
    uint32_t v = mmfs__ld32(r->p);
    r->p += 4;
    return v;
}

static uint8_t rd8(rd *r) {
    if (r->end - r->p < 1) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static mmfs_slice rdstr(rd *r) {
    mmfs_slice s = {NULL, 0};
    uint32_t n = rd32(r);
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return s;
    }
    s.ptr = r->p;
    s.len = n;
    r->p += n;
    return s;
}

/* The tag list of a MEMORY: u32 ntags, then the tags. */
static void rdtags(rd *r, uint32_t *ntags, mmfs_slice *tags) {
    *ntags = rd32(r);
    const uint8_t *t0 = r->p;
    for (uint32_t i = 0; i < *ntags && !r->bad; i++) rdstr(r);
    tags->ptr = t0;
    tags->len = (size_t)(r->p - t0);
}

/* A SESSION_PUT's fields (record.h, kind SESS). */
static void rdsess(rd *r, mmfs__rec *out) {
    out->u.sess.id = rdstr(r);
    uint8_t has = rd8(r);
    out->u.sess.has_intent = has & 1;
    out->u.sess.has_payload = (has >> 1) & 1;
    out->u.sess.created_at = (int64_t)rd64(r);
    out->u.sess.intent_id = rdstr(r);
    out->u.sess.payload = rdstr(r);
    out->u.sess.fields = rdstr(r);
}

/* Decoding each kind of field (record.h) into out->u.F. */
#define DEC_ID(f) out->u.f = rd64(&r);
#define DEC_U64(f) out->u.f = rd64(&r);
#define DEC_TIME(f) out->u.f = (int64_t)rd64(&r);
#define DEC_STR(f) out->u.f = rdstr(&r);
#define DEC_SID(f) DEC_STR(f)
#define DEC_ROUTE(f) DEC_STR(f)
#define DEC_TAGS(f) rdtags(&r, &out->u.f.ntags, &out->u.f.tags);
#define DEC_SESS(f) rdsess(&r, out);
#define DEC_FIELD(kind, f, cf, k, what) DEC_##kind(f)
#define DEC_CASE(N, code, role, C, m, FIELDS, ...)                                                 \
    case MMFS__R_##N:                                                                              \
        FIELDS(DEC_FIELD) break;

int mmfs__rec_decode(const uint8_t *p, size_t avail, mmfs__rec *out) {
    if (avail < MMFS__REC_HDR) return MMFS_CORRUPT;
    uint32_t len = mmfs__ld32(p);
    if (len < MMFS__REC_HDR || len > avail) return MMFS_CORRUPT;
    memset(out, 0, sizeof *out);
    out->type = p[4];
    out->flags = p[5];
    out->lsn = mmfs__ld64(p + 8);
    out->raw = p;
    out->raw_len = len;
    rd r = {p + MMFS__REC_HDR, p + len, 0};
    switch (out->type) {
        MMFS__RECORDS(DEC_CASE)
    default:
        return MMFS_CORRUPT;
    }
    if (r.bad || r.p != r.end) return MMFS_CORRUPT;
    return MMFS_OK;
}

/* ------------------------------------------------------------ encoding */

static size_t str_size(mmfs_slice s) { return 4 + s.len; }

#define SIZE_ID(f) +8
#define SIZE_U64(f) +8
#define SIZE_TIME(f) +8
#define SIZE_STR(f) +str_size(r->u.f)
#define SIZE_SID(f) SIZE_STR(f)
#define SIZE_ROUTE(f) SIZE_STR(f)
#define SIZE_TAGS(f) +4 + r->u.f.tags.len
#define SIZE_SESS(f)                                                                               \
    +str_size(r->u.f.id) + 1 + 8 + str_size(r->u.f.intent_id) + str_size(r->u.f.payload) +         \
        str_size(r->u.f.fields)
#define SIZE_FIELD(kind, f, cf, k, what) SIZE_##kind(f)
#define SIZE_CASE(N, code, role, C, m, FIELDS, ...)                                                \
    case MMFS__R_##N:                                                                              \
        return MMFS__REC_HDR FIELDS(SIZE_FIELD);

size_t mmfs__rec_size(const mmfs__rec *r) {
    switch (r->type) {
        MMFS__RECORDS(SIZE_CASE)
    }
    return MMFS__REC_HDR;
}

static uint8_t *wr64(uint8_t *p, uint64_t v) {
    mmfs__st64(p, v);
    return p + 8;
}

static uint8_t *wr32(uint8_t *p, uint32_t v) {
    mmfs__st32(p, v);
    return p + 4;
}

static uint8_t *wrstr(uint8_t *p, mmfs_slice s) {
    p = wr32(p, (uint32_t)s.len);
    if (s.len) memcpy(p, s.ptr, s.len);
    return p + s.len;
}

static uint8_t *wrtags(uint8_t *p, uint32_t ntags, mmfs_slice tags) {
    p = wr32(p, ntags);
    if (tags.len) memcpy(p, tags.ptr, tags.len);
    return p + tags.len;
}

static uint8_t *wrsess(uint8_t *p, const mmfs__rec *r) {
    p = wrstr(p, r->u.sess.id);
    *p++ = (uint8_t)((r->u.sess.has_intent ? 1 : 0) | (r->u.sess.has_payload ? 2 : 0));
    p = wr64(p, (uint64_t)r->u.sess.created_at);
    p = wrstr(p, r->u.sess.intent_id);
    p = wrstr(p, r->u.sess.payload);
    return wrstr(p, r->u.sess.fields);
}

#define ENC_ID(f) p = wr64(p, r->u.f);
#define ENC_U64(f) p = wr64(p, r->u.f);
#define ENC_TIME(f) p = wr64(p, (uint64_t)r->u.f);
#define ENC_STR(f) p = wrstr(p, r->u.f);
#define ENC_SID(f) ENC_STR(f)
#define ENC_ROUTE(f) ENC_STR(f)
#define ENC_TAGS(f) p = wrtags(p, r->u.f.ntags, r->u.f.tags);
#define ENC_SESS(f) p = wrsess(p, r);
#define ENC_FIELD(kind, f, cf, k, what) ENC_##kind(f)
#define ENC_CASE(N, code, role, C, m, FIELDS, ...)                                                 \
    case MMFS__R_##N:                                                                              \
        FIELDS(ENC_FIELD) break;

void mmfs__rec_encode(const mmfs__rec *r, uint8_t *out) {
    size_t len = mmfs__rec_size(r);
    uint8_t *p = out;
    p = wr32(p, (uint32_t)len);
    *p++ = (uint8_t)r->type;
    *p++ = (uint8_t)r->flags;
    *p++ = 0;
    *p++ = 0;
    p = wr64(p, r->lsn);
    switch (r->type) {
        MMFS__RECORDS(ENC_CASE)
    }
    mmfs_assert((size_t)(p - out) == len, "record size and encoding agree");
    (void)p;
}

/* -------------------------------------------------------------- frames */

void mmfs__frame_finish(uint8_t *buf, uint64_t first_lsn, uint32_t count, uint32_t flags,
                        size_t body_len, const mmfs__sum *s) {
    size_t flen = mmfs__frame_size(body_len, s);
    mmfs__st32(buf, MMFS__FRAME_MAGIC);
    mmfs__st32(buf + 4, (uint32_t)flen);
    mmfs__st64(buf + 8, first_lsn);
    mmfs__st32(buf + 16, count);
    mmfs__st32(buf + 20, flags);
    mmfs__st32(buf + 24, (uint32_t)body_len);
    mmfs__st32(buf + 28, mmfs__crc32c(0, buf, 28));
    size_t end = MMFS__FRAME_HDR + body_len;
    mmfs__sum_compute(s, buf, end, buf + end);
    memset(buf + end + s->len, 0, flen - end - s->len);
}

int mmfs__frame_header_ok(const uint8_t *p) {
    return mmfs__ld32(p) == MMFS__FRAME_MAGIC && mmfs__ld32(p + 28) == mmfs__crc32c(0, p, 28);
}

int mmfs__frame_check(const uint8_t *p, size_t avail, uint64_t expect_lsn, const mmfs__sum *s,
                      mmfs__frame *f, const char **why) {
    if (avail < MMFS__FRAME_HDR) {
        *why = "frame header cut short";
        return 0;
    }
    if (mmfs__ld32(p) != MMFS__FRAME_MAGIC) {
        *why = "bad frame magic";
        return 0;
    }
    if (mmfs__ld32(p + 28) != mmfs__crc32c(0, p, 28)) {
        *why = "frame header checksum mismatch";
        return 0;
    }
    f->frame_len = mmfs__ld32(p + 4);
    f->first_lsn = mmfs__ld64(p + 8);
    f->count = mmfs__ld32(p + 16);
    f->flags = mmfs__ld32(p + 20);
    f->body_len = mmfs__ld32(p + 24);
    f->body = p + MMFS__FRAME_HDR;
    if ((f->frame_len & 7) || f->frame_len > avail || f->frame_len != mmfs__frame_size(f->body_len, s)) {
        *why = "bad frame length";
        return 0;
    }
    int compact = (f->flags & MMFS__FRAME_COMPACT) != 0;
    if (expect_lsn && (compact ? f->first_lsn < expect_lsn : f->first_lsn != expect_lsn)) {
        *why = "frame LSN out of sequence";
        return 0;
    }
    if (!mmfs__sum_check(s, p, MMFS__FRAME_HDR + f->body_len, p + MMFS__FRAME_HDR + f->body_len)) {
        *why = "checksum mismatch";
        return 0;
    }
    /* The checksum held, so what follows is what a writer framed; still
    ** check the records, since a writer bug must not become a crash. */
    const uint8_t *q = f->body, *end = f->body + f->body_len;
    uint64_t lsn = f->first_lsn;
    for (uint32_t i = 0; i < f->count; i++) {
        mmfs__rec r;
        /* dense LSNs, except in a compacted frame: increasing, from first */
        if (mmfs__rec_decode(q, (size_t)(end - q), &r) != MMFS_OK ||
            (compact && i ? r.lsn < lsn : r.lsn != lsn)) {
            *why = "malformed record";
            return 0;
        }
        lsn = r.lsn + 1;
        q += r.raw_len;
    }
    if (q != end) {
        *why = "record count does not match the frame";
        return 0;
    }
    return 1;
}
