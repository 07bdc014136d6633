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
** chunk costs 16 bytes.
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

int mmfs__stream_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs_slice key = r->u.stream.key, bytes = r->u.stream.bytes;
    mmfs_assert(mmfs__slice_eq(key, mmfs__raw_key(r->raw)), "stream: key is not the first field");
    uint64_t h = mmfs__hash(key);
    mmfs__stream *st = (mmfs__stream *)mmfs__hmap_get(&e->streams, key, h);
    int fresh = !st, rc;
    if (fresh) {
        st = calloc(1, sizeof *st);
        if (!st) return mmfs__err(MMFS_NOMEM, "streams: out of memory");
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
    if (fresh) mmfs__hmap_put(&e->streams, key, h, (uintptr_t)st, NULL); /* reserved */
    e->live_bytes += r->raw_len;
    return MMFS_OK;
}

const mmfs__stream *mmfs__stream_find(const mmfs__engine *e, mmfs_slice key) {
    return (const mmfs__stream *)mmfs__hmap_get(&e->streams, key, mmfs__hash(key));
}

const uint8_t *mmfs__stream_chunk(const mmfs__stream *st, uint64_t pos, uint64_t *start, uint64_t *end) {
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
