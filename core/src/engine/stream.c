/*
** stream.c: append-only streams in the engine and their readers
** (mmfs_stream_size, mmfs_open_read, mmfs_reader_*).
**
** Invariants: a stream, once created, lives as long as the engine (there
** is no stream delete) and only grows.  Its chunk array may be moved by
** realloc on append, so it is read under the engine's read lock only; a
** chunk's bytes are in the log and never move.  Chunks are never empty;
** chunk i covers [start_i, start_{i+1}) and the last one ends at size.  A
** chunk costs 16 bytes.
**
** A reader sees the stream as it was at open: the first SIZE bytes.  It
** keeps the stream's key, not a pointer into the engine, and caches the
** chunk holding its position, so sequential reads take the read lock once
** per chunk, not per call; since it finds chunks by offset, it does not
** depend on how the bytes are cut into chunks (compaction may merge them).
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

int mmfs_stream_size(mmfs_db *db, mmfs_slice key, uint64_t *size) {
    if (!db || !size) return mmfs__err(MMFS_INVALID, "stream_size: db and size must not be NULL");
    *size = 0;
    mmfs__engine *e;
    int rc = mmfs__read_begin(db, &e);
    if (rc) return rc;
    const mmfs__stream *st = (const mmfs__stream *)mmfs__hmap_get(&e->streams, key, mmfs__hash(key));
    if (st) *size = st->size;
    mmfs__read_end(db);
    return MMFS_OK;
}

/* -------------------------------------------------------------- reader */

struct mmfs_reader {
    mmfs_db *db;
    uint64_t size; /* size at open */
    uint64_t pos;
    /* The cached chunk (valid when clen > 0): bytes [cstart, cstart+clen). */
    const uint8_t *cptr;
    uint64_t cstart, clen;
    size_t klen;
    uint8_t key[]; /* the stream's key */
};

int mmfs_open_read(mmfs_db *db, mmfs_slice key, mmfs_reader **out) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "open_read: db and out must not be NULL");
    *out = NULL;
    mmfs__engine *e;
    int rc = mmfs__read_begin(db, &e);
    if (rc) return rc;
    const mmfs__stream *st = (const mmfs__stream *)mmfs__hmap_get(&e->streams, key, mmfs__hash(key));
    mmfs_reader *r = NULL;
    if (!st) {
        rc = mmfs__err(MMFS_NOTFOUND, "open_read: no such stream");
    } else if (!(r = calloc(1, sizeof *r + key.len))) {
        rc = mmfs__err(MMFS_NOMEM, "open_read: out of memory");
    } else {
        r->db = db;
        r->size = st->size;
        r->klen = key.len;
        if (key.len) memcpy(r->key, key.ptr, key.len);
        *out = r;
    }
    mmfs__read_end(db);
    return rc;
}

/* Caches the chunk holding r->pos (< r->size). */
static int reader_locate(mmfs_reader *r) {
    mmfs__engine *e;
    int rc = mmfs__read_begin(r->db, &e);
    if (rc) return rc;
    mmfs_slice key = {r->key, r->klen};
    const mmfs__stream *st = (const mmfs__stream *)mmfs__hmap_get(&e->streams, key, mmfs__hash(key));
    if (!st || st->size < r->size) {
        mmfs__read_end(r->db);
        return mmfs__err(MMFS_CORRUPT, "reader: the stream lost bytes it had at open");
    }
    const mmfs__chunk *c = st->chunks;
    size_t lo = 0, hi = st->n; /* last chunk with start <= pos */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (c[mid].start <= r->pos)
            lo = mid;
        else
            hi = mid;
    }
    uint64_t end = lo + 1 < st->n ? c[lo + 1].start : st->size;
    r->cptr = c[lo].ptr;
    r->cstart = c[lo].start;
    r->clen = (end < r->size ? end : r->size) - c[lo].start;
    mmfs__read_end(r->db);
    return MMFS_OK;
}

/* 1 if the cached chunk holds r->pos. */
static int reader_cached(const mmfs_reader *r) {
    return r->clen && r->pos >= r->cstart && r->pos - r->cstart < r->clen;
}

int mmfs_reader_read(mmfs_reader *r, void *buf, size_t n, size_t *got) {
    if (!r || !got || (!buf && n))
        return mmfs__err(MMFS_INVALID, "reader_read: reader, buf and got must not be NULL");
    *got = 0;
    while (*got < n && r->pos < r->size) {
        int rc;
        if (!reader_cached(r) && (rc = reader_locate(r))) return rc;
        uint64_t avail = r->cstart + r->clen - r->pos;
        size_t k = n - *got < avail ? n - *got : (size_t)avail;
        memcpy((uint8_t *)buf + *got, r->cptr + (r->pos - r->cstart), k);
        *got += k;
        r->pos += k;
    }
    return MMFS_OK;
}

int mmfs_reader_peek(mmfs_reader *r, mmfs_slice *chunk) {
    if (!r || !chunk) return mmfs__err(MMFS_INVALID, "reader_peek: reader and chunk must not be NULL");
    chunk->ptr = NULL;
    chunk->len = 0;
    if (r->pos >= r->size) return MMFS_OK;
    int rc;
    if (!reader_cached(r) && (rc = reader_locate(r))) return rc;
    chunk->ptr = r->cptr + (r->pos - r->cstart);
    chunk->len = (size_t)(r->cstart + r->clen - r->pos);
    return MMFS_OK;
}

int mmfs_reader_skip(mmfs_reader *r, uint64_t n) {
    if (!r) return mmfs__err(MMFS_INVALID, "reader_skip: reader is NULL");
    r->pos = n > r->size - r->pos ? r->size : r->pos + n;
    return MMFS_OK;
}

int mmfs_reader_seek(mmfs_reader *r, uint64_t offset) {
    if (!r) return mmfs__err(MMFS_INVALID, "reader_seek: reader is NULL");
    if (offset > r->size)
        return mmfs__err(MMFS_INVALID, "reader_seek: offset %llu is past the end (%llu)",
                         (unsigned long long)offset, (unsigned long long)r->size);
    r->pos = offset;
    return MMFS_OK;
}

uint64_t mmfs_reader_tell(const mmfs_reader *r) { return r ? r->pos : 0; }

uint64_t mmfs_reader_size(const mmfs_reader *r) { return r ? r->size : 0; }

void mmfs_reader_close(mmfs_reader *r) { free(r); }
