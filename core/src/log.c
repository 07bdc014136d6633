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
    case MMFS__R_MEMORY: {
        out->u.mem.id = rd64(&r);
        out->u.mem.created_at = (int64_t)rd64(&r);
        out->u.mem.route = rdstr(&r);
        out->u.mem.text = rdstr(&r);
        out->u.mem.ntags = rd32(&r);
        const uint8_t *t0 = r.p;
        for (uint32_t i = 0; i < out->u.mem.ntags && !r.bad; i++) rdstr(&r);
        out->u.mem.tags.ptr = t0;
        out->u.mem.tags.len = (size_t)(r.p - t0);
        break;
    }
    case MMFS__R_DEL_MEMORY:
        out->u.del_mem.id = rd64(&r);
        break;
    case MMFS__R_KV_SET:
        out->u.kv.key = rdstr(&r);
        out->u.kv.value = rdstr(&r);
        break;
    case MMFS__R_KV_DEL:
        out->u.kv.key = rdstr(&r);
        break;
    case MMFS__R_SESSION_PUT: {
        out->u.sess.id = rdstr(&r);
        uint8_t has = rd8(&r);
        out->u.sess.has_intent = has & 1;
        out->u.sess.has_payload = (has >> 1) & 1;
        out->u.sess.created_at = (int64_t)rd64(&r);
        out->u.sess.intent_id = rdstr(&r);
        out->u.sess.payload = rdstr(&r);
        out->u.sess.fields = rdstr(&r);
        break;
    }
    case MMFS__R_SESSION_DEL:
        out->u.sess.id = rdstr(&r);
        break;
    case MMFS__R_STREAM_APPEND:
        out->u.stream.key = rdstr(&r);
        out->u.stream.bytes = rdstr(&r);
        break;
    case MMFS__R_DOC_INDEX:
        out->u.doc.key = rdstr(&r);
        out->u.doc.text = rdstr(&r);
        break;
    case MMFS__R_DOC_UNINDEX:
        out->u.doc.key = rdstr(&r);
        break;
    case MMFS__R_STATE:
        out->u.state.version = rd64(&r);
        out->u.state.value = rdstr(&r);
        break;
    case MMFS__R_POLICY:
        out->u.policy.source = rdstr(&r);
        break;
    default:
        return MMFS_CORRUPT;
    }
    if (r.bad || r.p != r.end) return MMFS_CORRUPT;
    return MMFS_OK;
}

/* ------------------------------------------------------------ encoding */

static size_t str_size(mmfs_slice s) { return 4 + s.len; }

size_t mmfs__rec_size(const mmfs__rec *r) {
    size_t n = MMFS__REC_HDR;
    switch (r->type) {
    case MMFS__R_MEMORY:
        n += 16 + str_size(r->u.mem.route) + str_size(r->u.mem.text) + 4 + r->u.mem.tags.len;
        break;
    case MMFS__R_DEL_MEMORY:
        n += 8;
        break;
    case MMFS__R_KV_SET:
        n += str_size(r->u.kv.key) + str_size(r->u.kv.value);
        break;
    case MMFS__R_KV_DEL:
        n += str_size(r->u.kv.key);
        break;
    case MMFS__R_SESSION_PUT:
        n += str_size(r->u.sess.id) + 1 + 8 + str_size(r->u.sess.intent_id) +
             str_size(r->u.sess.payload) + str_size(r->u.sess.fields);
        break;
    case MMFS__R_SESSION_DEL:
        n += str_size(r->u.sess.id);
        break;
    case MMFS__R_STREAM_APPEND:
        n += str_size(r->u.stream.key) + str_size(r->u.stream.bytes);
        break;
    case MMFS__R_DOC_INDEX:
        n += str_size(r->u.doc.key) + str_size(r->u.doc.text);
        break;
    case MMFS__R_DOC_UNINDEX:
        n += str_size(r->u.doc.key);
        break;
    case MMFS__R_STATE:
        n += 8 + str_size(r->u.state.value);
        break;
    case MMFS__R_POLICY:
        n += str_size(r->u.policy.source);
        break;
    }
    return n;
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
    case MMFS__R_MEMORY:
        p = wr64(p, r->u.mem.id);
        p = wr64(p, (uint64_t)r->u.mem.created_at);
        p = wrstr(p, r->u.mem.route);
        p = wrstr(p, r->u.mem.text);
        p = wr32(p, r->u.mem.ntags);
        if (r->u.mem.tags.len) memcpy(p, r->u.mem.tags.ptr, r->u.mem.tags.len);
        p += r->u.mem.tags.len;
        break;
    case MMFS__R_DEL_MEMORY:
        p = wr64(p, r->u.del_mem.id);
        break;
    case MMFS__R_KV_SET:
        p = wrstr(p, r->u.kv.key);
        p = wrstr(p, r->u.kv.value);
        break;
    case MMFS__R_KV_DEL:
        p = wrstr(p, r->u.kv.key);
        break;
    case MMFS__R_SESSION_PUT:
        p = wrstr(p, r->u.sess.id);
        *p++ = (uint8_t)((r->u.sess.has_intent ? 1 : 0) | (r->u.sess.has_payload ? 2 : 0));
        p = wr64(p, (uint64_t)r->u.sess.created_at);
        p = wrstr(p, r->u.sess.intent_id);
        p = wrstr(p, r->u.sess.payload);
        p = wrstr(p, r->u.sess.fields);
        break;
    case MMFS__R_SESSION_DEL:
        p = wrstr(p, r->u.sess.id);
        break;
    case MMFS__R_STREAM_APPEND:
        p = wrstr(p, r->u.stream.key);
        p = wrstr(p, r->u.stream.bytes);
        break;
    case MMFS__R_DOC_INDEX:
        p = wrstr(p, r->u.doc.key);
        p = wrstr(p, r->u.doc.text);
        break;
    case MMFS__R_DOC_UNINDEX:
        p = wrstr(p, r->u.doc.key);
        break;
    case MMFS__R_STATE:
        p = wr64(p, r->u.state.version);
        p = wrstr(p, r->u.state.value);
        break;
    case MMFS__R_POLICY:
        p = wrstr(p, r->u.policy.source);
        break;
    }
    mmfs_assert((size_t)(p - out) == len, "record size and encoding agree");
    (void)p;
}

/* ------------------------------------------------------ session fields */

/* Checks one value at R; DEPTH bounds nesting so hostile input cannot
** exhaust the stack. */
static int check_value(rd *r, int depth) {
    if (depth > 64) return 0;
    switch (rd8(r)) {
    case 'f':
    case 't':
        return !r->bad;
    case 'i':
    case 'd':
        rd64(r);
        return !r->bad;
    case 's':
        rdstr(r);
        return !r->bad;
    case 'T': {
        uint32_t n = rd32(r);
        for (uint32_t i = 0; i < n && !r->bad; i++)
            if (!check_value(r, depth + 1) || !check_value(r, depth + 1)) return 0;
        return !r->bad;
    }
    default:
        return 0;
    }
}

int mmfs__fields_check(mmfs_slice buf) {
    if (buf.len == 0) return MMFS_OK;
    rd r = {buf.ptr, (const uint8_t *)buf.ptr + buf.len, 0};
    if (*r.p != 'T' || !check_value(&r, 0) || r.p != r.end)
        return mmfs__err(MMFS_INVALID, "session fields: not a well-formed encoded table");
    return MMFS_OK;
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
