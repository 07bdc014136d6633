/*
** stream.c: append-only streams in the engine, and what their public
** reads find in it (the public functions and the readers, with their
** locking: store/read_stream.c).
**
** Invariants: a stream, once created, lives as long as the engine (there
** is no stream delete) and only grows.  Its chunk array may be moved by
** realloc on append, so it is read under the engine's read lock only; a
** chunk's bytes are in the log and never move.  Chunks are never empty;
** chunk i covers [start_i, start_{i+1}) and the last one ends at size.  A
** chunk costs 16 bytes.  With a checkpoint (tab, mapped: tabck.c) the
** streams it has are read from its tables: streams holds only the streams
** appended to since (their checkpoint part, [0, ck_size), stays in the
** mapped chunk table) and those it does not have, so heap grows with the
** changes since the checkpoint, not with history.
*/
#include "engine.h"

#include <stdlib.h>
#include <string.h>

static mmfs_slice stream_key(const void *ctx, uintptr_t v) {
    (void)ctx;
    return ((const mmfs__stream *)v)->name;
}

int mmfs__stream_init(mmfs__engine *e) {
    mmfs__hmap_init(&e->streams, stream_key, NULL);
    return MMFS_OK;
}

void mmfs__stream_free(mmfs__engine *e) {
    if (e->streams.slots)
        for (size_t i = 0; i <= e->streams.mask; i++) {
            mmfs__stream *st = (mmfs__stream *)e->streams.slots[i].val;
            if (st) {
                free(st->chunks);
                free(st);
            }
        }
    mmfs__hmap_free(&e->streams);
}

/* ------------------------------------------------- the checkpoint's table */

/* Entry I of the checkpoint's streams (32 bytes), or NULL when its bytes
** fail their checksum. */
static const uint8_t *ck_ent(const mmfs__engine *e, uint64_t i) {
    const uint8_t *p = e->tab.t_ents + 32 * i;
    return i < e->tab.t_n && mmfs__ckf_ok(e->kv.ck.ckf, p, 32) ? p : NULL;
}

/* The key of a checkpoint stream slot: the name in its first record. */
static int ck_slot_key(const mmfs__engine *e, const uint8_t *slot, mmfs_slice *key) {
    const uint8_t *ent = ck_ent(e, mmfs__ld64(slot + 8) - 1);
    const uint8_t *raw = ent ? mmfs__tabck_rec(e, mmfs__ld64(ent), MMFS__R_STREAM_APPEND, NULL) : NULL;
    if (raw) *key = mmfs__raw_key(raw);
    return raw != NULL;
}

/* The checkpoint's stream KEY described in *ST, or 0. */
static int ck_find(const mmfs__engine *e, mmfs_slice key, mmfs__stream *st) {
    if (!e->tab.t_n) return 0;
    const uint8_t *slot = mmfs__tabck_probe(e, e->tab.t_slots, e->tab.t_mask, 16, key, ck_slot_key);
    const uint8_t *ent = slot ? ck_ent(e, mmfs__ld64(slot + 8) - 1) : NULL;
    if (!ent) return 0;
    memset(st, 0, sizeof *st);
    st->name = key;
    st->size = st->ck_size = mmfs__ld64(ent + 8);
    st->ck_at = mmfs__ld64(ent + 16);
    st->ck_n = mmfs__ld64(ent + 24);
    st->ck_first = mmfs__ld64(ent);
    /* Open does not read every entry: each one's range is checked here. */
    if (st->ck_at > e->tab.t_nchunks || st->ck_n > e->tab.t_nchunks - st->ck_at || (st->ck_size && !st->ck_n))
        return 0;
    return 1;
}

int mmfs__stream_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs_slice key = r->u.stream.key, bytes = r->u.stream.bytes;
    mmfs_assert(mmfs__slice_eq(key, mmfs__raw_key(r->raw)), "stream: key is not the first field");
    uint64_t h = mmfs__hash(key);
    mmfs__stream *st = (mmfs__stream *)mmfs__hmap_get(&e->streams, key, h);
    int fresh = !st, rc;
    mmfs__stream ck;
    int inck = fresh && ck_find(e, key, &ck);
    if (fresh && inck && !bytes.len) {
        /* The checkpoint's stream, unchanged: nothing to keep in heap. */
        e->live_bytes += r->raw_len;
        return MMFS_OK;
    }
    if (fresh) {
        st = calloc(1, sizeof *st);
        if (!st) return mmfs__err(MMFS_NOMEM, "streams: out of memory");
        if (inck) *st = ck;
        st->name = key;
        if ((rc = mmfs__hmap_reserve(&e->streams, 1))) {
            free(st);
            return rc;
        }
    }
    if (bytes.len) {
        void *arr = st->chunks;
        if ((rc = mmfs__grow(&arr, &st->cap, st->n + 1, sizeof *st->chunks))) {
            if (fresh) free(st);
            return rc;
        }
        st->chunks = arr;
        st->chunks[st->n].ptr = bytes.ptr;
        st->chunks[st->n].start = st->size;
        st->n++;
        st->size += bytes.len;
    }
    if (fresh) {
        mmfs__hmap_put(&e->streams, key, h, (uintptr_t)st, NULL); /* reserved */
        if (!inck) e->streams_new++;
    }
    e->live_bytes += r->raw_len;
    return MMFS_OK;
}

const mmfs__stream *mmfs__stream_find(const mmfs__engine *e, mmfs_slice key, mmfs__stream *buf) {
    const mmfs__stream *st = (const mmfs__stream *)mmfs__hmap_get(&e->streams, key, mmfs__hash(key));
    if (st) return st;
    return ck_find(e, key, buf) ? buf : NULL;
}

/* The checkpoint's chunk holding POS (< st->ck_size) of ST. */
static const uint8_t *ck_chunk(const mmfs__engine *e, const mmfs__stream *st, uint64_t pos, uint64_t *start,
                               uint64_t *end) {
    const uint8_t *c = e->tab.t_chunks + 16 * st->ck_at;
    mmfs__ckfile *f = e->kv.ck.ckf;
    size_t lo = 0, hi = (size_t)st->ck_n; /* last chunk with start <= pos */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (!mmfs__ckf_ok(f, c + 16 * mid, 16)) return NULL;
        if (mmfs__ld64(c + 16 * mid + 8) <= pos)
            lo = mid;
        else
            hi = mid;
    }
    if (!mmfs__ckf_ok(f, c + 16 * lo, 16) || (lo + 1 < st->ck_n && !mmfs__ckf_ok(f, c + 16 * (lo + 1), 16)))
        return NULL;
    *start = mmfs__ld64(c + 16 * lo + 8);
    *end = lo + 1 < st->ck_n ? mmfs__ld64(c + 16 * (lo + 1) + 8) : st->ck_size;
    mmfs__rec r;
    /* A chunk must hold exactly its range: never hand out other bytes. */
    if (*start > pos || *end <= pos ||
        !mmfs__tabck_rec(e, mmfs__ld64(c + 16 * lo), MMFS__R_STREAM_APPEND, &r) ||
        !mmfs__slice_eq(r.u.stream.key, st->name) || r.u.stream.bytes.len != *end - *start)
        return NULL;
    return r.u.stream.bytes.ptr;
}

const uint8_t *mmfs__stream_chunk(const mmfs__engine *e, const mmfs__stream *st, uint64_t pos, uint64_t *start,
                                  uint64_t *end) {
    if (pos < st->ck_size) return ck_chunk(e, st, pos, start, end);
    const mmfs__chunk *c = st->chunks;
    size_t lo = 0, hi = st->n; /* last chunk with start <= pos */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (c[mid].start <= pos)
            lo = mid;
        else
            hi = mid;
    }
    *end = lo + 1 < st->n ? c[lo + 1].start : st->size;
    *start = c[lo].start;
    return c[lo].ptr;
}
