/* fuzz_store.c: see fuzz_store.h.  Uses the library's own encoders
** (log.h, internal.h), so frames are exactly what a writer makes. */
#include "fuzz_store.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

static const mmfs__sum *crc_sum(void) {
    static mmfs__sum s;
    static int done;
    if (!done) {
        mmfs__sum_init(&s, MMFS_CHECKSUM_CRC32C, NULL, 0);
        done = 1;
    }
    return &s;
}

void fz_seg_header(uint8_t *h, uint32_t no) {
    memset(h, 0, 64);
    memcpy(h, "MMFSLOG", 8);
    mmfs__st32(h + 8, MMFS__FORMAT);
    mmfs__st32(h + 12, MMFS_CHECKSUM_CRC32C);
    mmfs__st64(h + 16, no);
    mmfs__st64(h + 24, FZ_SEG_SIZE);
    mmfs__st32(h + 60, mmfs__crc32c(0, h, 60));
}

/* Closes the frame whose body is at OUT + 32 (BODY bytes, COUNT records). */
static size_t finish(uint8_t *out, size_t cap, size_t body, uint32_t count, uint64_t first) {
    const mmfs__sum *s = crc_sum();
    size_t flen = mmfs__frame_size(body, s);
    if (flen > cap) return 0;
    mmfs__frame_finish(out, first, count, 0, body, s);
    return flen;
}

size_t fz_frame_list(const uint8_t *d, size_t n, uint8_t *out, size_t cap, uint64_t *lsn) {
    const mmfs__sum *s = crc_sum();
    size_t used = 0, body = 0;
    uint32_t count = 0;
    uint64_t first = *lsn;
    size_t i = 0;
    for (;;) {
        int end = i >= n;
        if (end || d[i] == 0xff) {
            if (count) {
                size_t f = finish(out + used, cap - used, body, count, first);
                if (!f) return used; /* no room: drop the frame */
                used += f;
                *lsn = first + count;
            }
            if (end) return used;
            i++;
            body = 0;
            count = 0;
            first = *lsn;
            continue;
        }
        uint8_t type = d[i++];
        size_t len = 0;
        if (i + 2 <= n) len = (size_t)d[i] | (size_t)d[i + 1] << 8;
        i += 2;
        if (i > n) i = n;
        if (len > n - i) len = n - i;
        if (used + MMFS__FRAME_HDR + body + MMFS__REC_HDR + len + s->len + 8 > cap) {
            i += len;
            continue; /* would not fit: skip the record */
        }
        uint8_t *r = out + used + MMFS__FRAME_HDR + body;
        memset(r, 0, MMFS__REC_HDR);
        mmfs__st32(r, (uint32_t)(MMFS__REC_HDR + len));
        r[4] = type;
        mmfs__st64(r + 8, first + count);
        memcpy(r + MMFS__REC_HDR, d + i, len);
        i += len;
        body += MMFS__REC_HDR + len;
        count++;
    }
}

size_t fz_seal(uint8_t *out, size_t cap, uint64_t lsn) {
    const mmfs__sum *s = crc_sum();
    size_t flen = mmfs__frame_size(0, s);
    if (flen > cap) return 0;
    mmfs__frame_finish(out, lsn, 0, MMFS__FRAME_SEAL, 0, s);
    return flen;
}

/* Appends record R to the list at OUT (without its 16-byte header). */
static size_t add(uint8_t *out, size_t cap, size_t used, const mmfs__rec *r) {
    uint8_t tmp[4096];
    size_t n = mmfs__rec_size(r);
    if (n > sizeof tmp || used + 3 + n - MMFS__REC_HDR > cap) return used;
    mmfs__rec_encode(r, tmp);
    size_t body = n - MMFS__REC_HDR;
    out[used] = (uint8_t)r->type;
    out[used + 1] = (uint8_t)body;
    out[used + 2] = (uint8_t)(body >> 8);
    memcpy(out + used + 3, tmp + MMFS__REC_HDR, body);
    return used + 3 + body;
}

static mmfs_slice S(const char *s) { return mmfs_str(s); }

size_t fz_sample_list(uint8_t *out, size_t cap, unsigned v) {
    size_t u = 0;
    mmfs__rec r;
    char text[64], key[16];
    uint8_t tags[64], fields[64];
    snprintf(text, sizeof text, "the agent remembers crash %u and torn tails", v);
    snprintf(key, sizeof key, "k%u", v % 4);
    /* tags: u32 len + bytes each */
    mmfs__st32(tags, 10);
    memcpy(tags + 4, "speaker:An", 10);
    mmfs__st32(tags + 14, 3);
    memcpy(tags + 18, "x:y", 3);
    /* fields: T 1 { s "n" -> i v } */
    size_t fl = 0;
    fields[fl++] = 'T';
    mmfs__st32(fields + fl, 1);
    fl += 4;
    fields[fl++] = 's';
    mmfs__st32(fields + fl, 1);
    fl += 4;
    fields[fl++] = 'n';
    fields[fl++] = 'i';
    mmfs__st64(fields + fl, v);
    fl += 8;

    memset(&r, 0, sizeof r);
    r.type = MMFS__R_MEMORY;
    r.u.mem.id = 1 + v;
    r.u.mem.created_at = 1700000000 + v;
    r.u.mem.route = S(v & 1 ? "episodic" : "default");
    r.u.mem.text = S(text);
    r.u.mem.ntags = v & 2 ? 2 : 1;
    r.u.mem.tags = (mmfs_slice){tags, v & 2 ? 21 : 14};
    u = add(out, cap, u, &r);

    memset(&r, 0, sizeof r);
    r.type = MMFS__R_KV_SET;
    r.u.kv.key = S(key);
    r.u.kv.value = S(text + (v % 8));
    u = add(out, cap, u, &r);
    if (v % 3 == 0) {
        if (u < cap) out[u++] = 0xff;
        memset(&r, 0, sizeof r);
        r.type = MMFS__R_KV_DEL;
        r.u.kv.key = S(key);
        u = add(out, cap, u, &r);
    }
    memset(&r, 0, sizeof r);
    r.type = MMFS__R_SESSION_PUT;
    r.u.sess.id = S(key);
    r.u.sess.has_intent = 1;
    r.u.sess.intent_id = S("plan");
    r.u.sess.has_payload = v & 1;
    r.u.sess.payload = S(v & 1 ? "payload" : "");
    r.u.sess.created_at = 1700000000 + v;
    r.u.sess.fields = (mmfs_slice){fields, v & 4 ? 0 : fl};
    u = add(out, cap, u, &r);
    if (u < cap) out[u++] = 0xff;

    memset(&r, 0, sizeof r);
    r.type = MMFS__R_STREAM_APPEND;
    r.u.stream.key = S("stream");
    r.u.stream.bytes = S(text);
    u = add(out, cap, u, &r);
    memset(&r, 0, sizeof r);
    r.type = MMFS__R_DOC_INDEX;
    r.u.doc.key = S(key);
    r.u.doc.text = S(text);
    u = add(out, cap, u, &r);
    memset(&r, 0, sizeof r);
    r.type = MMFS__R_STATE;
    r.u.state.version = 1 + v;
    r.u.state.value = S("state");
    u = add(out, cap, u, &r);
    if (u < cap) out[u++] = 0xff;
    if (v % 2) {
        memset(&r, 0, sizeof r);
        r.type = MMFS__R_DOC_UNINDEX;
        r.u.doc.key = S(key);
        u = add(out, cap, u, &r);
        memset(&r, 0, sizeof r);
        r.type = MMFS__R_DEL_MEMORY;
        r.u.del_mem.id = 1 + v;
        u = add(out, cap, u, &r);
        memset(&r, 0, sizeof r);
        r.type = MMFS__R_SESSION_DEL;
        r.u.sess.id = S(key);
        u = add(out, cap, u, &r);
    }
    return u;
}

size_t fz_memory_item(uint8_t *out, size_t cap, uint64_t id) {
    mmfs__rec r;
    memset(&r, 0, sizeof r);
    r.type = MMFS__R_MEMORY;
    r.u.mem.id = id;
    r.u.mem.created_at = 1700000000;
    r.u.mem.route = S("default");
    r.u.mem.text = S("a memory with an id far beyond the dense range");
    return add(out, cap, 0, &r);
}
