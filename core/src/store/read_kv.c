/*
** read_kv.c: the public kv reads (mmfs_get_kv, mmfs_kv_iter_*): the
** handle's read entry (fork check, catch-up, the engine's read side)
** around what engine/kv.c finds.
**
** Invariants: iterators hold no pointer into the engine between calls:
** they keep a copy of the last key they returned and seek past it under
** the read lock, so they survive any concurrent write.
*/
#include "db.h"
#include "engine.h"

#include <stdlib.h>
#include <string.h>

int mmfs_get_kv(mmfs_db *db, mmfs_slice key, mmfs_slice *value) {
    if (!db || !value) return mmfs__err(MMFS_INVALID, "get_kv: db and value must not be NULL");
    value->ptr = NULL;
    value->len = 0;
    MMFS__READ_RETURN(db, mmfs__kv_get(e, key, value));
}

/* ------------------------------------------------------------ iterator */

struct mmfs_kv_iter {
    mmfs_db *db;
    uint8_t *prefix; /* own copy */
    size_t plen;
    uint8_t *last; /* copy of the last key returned */
    size_t llen, lcap;
    int started, done;
};

int mmfs_kv_iter_open(mmfs_db *db, mmfs_slice prefix, mmfs_kv_iter **out) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "kv_iter_open: db and out must not be NULL");
    *out = NULL;
    if (prefix.len && !prefix.ptr) return mmfs__err(MMFS_INVALID, "kv_iter_open: prefix is NULL");
    /* Fail now on a closed or forked handle rather than at the first next. */
    mmfs__engine *e;
    int rc = mmfs__read_begin(db, &e);
    if (rc) return rc;
    mmfs__read_end(db);
    mmfs_kv_iter *it = calloc(1, sizeof *it);
    if (!it) return mmfs__err(MMFS_NOMEM, "kv_iter_open: out of memory");
    if (prefix.len) {
        it->prefix = malloc(prefix.len);
        if (!it->prefix) {
            free(it);
            return mmfs__err(MMFS_NOMEM, "kv_iter_open: out of memory");
        }
        memcpy(it->prefix, prefix.ptr, prefix.len);
    }
    it->plen = prefix.len;
    it->db = db;
    *out = it;
    return MMFS_OK;
}

int mmfs_kv_iter_next(mmfs_kv_iter *it, mmfs_slice *key, mmfs_slice *value) {
    if (!it || !key || !value)
        return mmfs__err(MMFS_INVALID, "kv_iter_next: it, key and value must not be NULL");
    if (it->done) return mmfs__err(MMFS_NOTFOUND, "kv_iter_next: no more keys");
    mmfs__engine *e;
    int rc = mmfs__read_begin(it->db, &e);
    if (rc) return rc;
    mmfs_slice probe;
    if (it->started) {
        probe.ptr = it->last;
        probe.len = it->llen;
    } else {
        probe.ptr = it->prefix;
        probe.len = it->plen;
    }
    const uint8_t *raw = mmfs__kv_seek(e, probe, it->started);
    mmfs_slice k = raw ? mmfs__raw_key(raw) : (mmfs_slice){NULL, 0};
    mmfs__rec r;
    if (mmfs__ckf_bad(e->kv.ck.ckf)) {
        rc = mmfs__err(MMFS_CORRUPT, "kv_iter_next: the checkpoint is damaged (dropped: reopen to read from the log)");
    } else if (!raw || k.len < it->plen || (it->plen && memcmp(k.ptr, it->prefix, it->plen) != 0)) {
        it->done = 1;
        rc = mmfs__err(MMFS_NOTFOUND, "kv_iter_next: no more keys");
    } else if ((rc = mmfs__raw_decode(raw, &r)) == MMFS_OK) {
        void *buf = it->last;
        if ((rc = mmfs__grow(&buf, &it->lcap, k.len ? k.len : 1, 1)) == MMFS_OK) {
            it->last = buf;
            if (k.len) memcpy(it->last, k.ptr, k.len);
            it->llen = k.len;
            it->started = 1;
            *key = r.u.kv.key;
            *value = r.u.kv.value;
        }
    }
    mmfs__read_end(it->db);
    return rc;
}

void mmfs_kv_iter_close(mmfs_kv_iter *it) {
    if (!it) return;
    free(it->prefix);
    free(it->last);
    free(it);
}
