/*
** read_stream.c: the public stream reads (mmfs_stream_size,
** mmfs_open_read, mmfs_reader_*): the handle's read entry (fork check,
** catch-up, the engine's read side) around what engine/stream.c finds.
**
** A reader sees the stream as it was at open: the first SIZE bytes.  It
** keeps the stream's key, not a pointer into the engine, and caches the
** chunk holding its position, so sequential reads take the read lock once
** per chunk, not per call; since it finds chunks by offset, it does not
** depend on how the bytes are cut into chunks (compaction may merge them).
*/
#include "db.h"
#include "engine.h"

#include <stdlib.h>
#include <string.h>

int mmfs_stream_size(mmfs_db *db, mmfs_slice key, uint64_t *size) {
    if (!db || !size) return mmfs__err(MMFS_INVALID, "stream_size: db and size must not be NULL");
    *size = 0;
    mmfs__engine *e;
    int rc = mmfs__read_begin(db, &e);
    if (rc) return rc;
    mmfs__stream buf;
    const mmfs__stream *st = mmfs__stream_find(e, key, &buf);
    if (mmfs__tabck_bad(e))
        rc = mmfs__err(MMFS_CORRUPT, "stream_size: the checkpoint is damaged (dropped: reopen to read from the log)");
    else if (st) *size = st->size;
    mmfs__read_end(db);
    return rc;
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
    mmfs__stream buf;
    const mmfs__stream *st = mmfs__stream_find(e, key, &buf);
    mmfs_reader *r = NULL;
    if (mmfs__tabck_bad(e)) {
        rc = mmfs__err(MMFS_CORRUPT, "open_read: the checkpoint is damaged (dropped: reopen to read from the log)");
    } else if (!st) {
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
    mmfs__stream buf;
    const mmfs__stream *st = mmfs__stream_find(e, key, &buf);
    if (!st || st->size < r->size) {
        mmfs__read_end(r->db);
        return mmfs__err(MMFS_CORRUPT, "reader: the stream lost bytes it had at open");
    }
    uint64_t start, end;
    r->cptr = mmfs__stream_chunk(e, st, r->pos, &start, &end);
    if (!r->cptr || mmfs__tabck_bad(e)) {
        r->cptr = NULL;
        mmfs__read_end(r->db);
        return mmfs__err(MMFS_CORRUPT, "reader: the checkpoint is damaged (dropped: reopen to read from the log)");
    }
    r->cstart = start;
    r->clen = (end < r->size ? end : r->size) - start;
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
