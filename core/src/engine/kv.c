/*
** kv.c: the key-value part of the engine and its public reads
** (mmfs_get_kv, mmfs_kv_iter_*).
**
** Invariants: kv.map and kv.order hold the same set of records, the latest
** KV_SET of each key that has not been deleted since; a key costs one hash
** slot (16 bytes / load) plus one B+tree entry (8 bytes / fill) and no
** copy of the key or value.  Iterators hold no pointer into the engine
** between calls: they keep a copy of the last key they returned and seek
** past it under the read lock, so they survive any concurrent write.
*/
#include "engine.h"

#include <stdlib.h>
#include <string.h>

/* B+tree order: PROBE is a const mmfs_slice * key. */
static int kv_cmp(const void *probe, const uint8_t *rec) {
    return mmfs__slice_cmp(*(const mmfs_slice *)probe, mmfs__raw_key(rec));
}

int mmfs__kv_init(mmfs__engine *e) {
    mmfs__hmap_init(&e->kv.map, mmfs__hkey_raw, NULL);
    mmfs__bt_init(&e->kv.order, kv_cmp);
    return MMFS_OK;
}

void mmfs__kv_free(mmfs__engine *e) {
    mmfs__hmap_free(&e->kv.map);
    mmfs__bt_free(&e->kv.order);
}

int mmfs__kv_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs_slice key = r->u.kv.key;
    mmfs_assert(mmfs__slice_eq(key, mmfs__raw_key(r->raw)), "kv: key is not the first field");
    uint64_t h = mmfs__hash(key);
    const uint8_t *old = (const uint8_t *)mmfs__hmap_get(&e->kv.map, key, h);
    if (r->type == MMFS__R_KV_DEL) {
        if (!old) return MMFS_OK;
        mmfs__hmap_del(&e->kv.map, key, h);
        mmfs__bt_del(&e->kv.order, &key);
        e->live_bytes -= mmfs__raw_len(old);
        return MMFS_OK;
    }
    /* Order matters for NOMEM: reserve the hash slot, then change the
    ** tree (which may fail), then the map (which cannot fail any more). */
    int rc;
    if (!old && (rc = mmfs__hmap_reserve(&e->kv.map, 1))) return rc;
    if ((rc = mmfs__bt_put(&e->kv.order, &key, r->raw, NULL))) return rc;
    mmfs__hmap_put(&e->kv.map, key, h, (uintptr_t)r->raw, NULL);
    if (old) e->live_bytes -= mmfs__raw_len(old);
    e->live_bytes += r->raw_len;
    return MMFS_OK;
}

int mmfs__engine_has_kv(const mmfs__engine *e, mmfs_slice key) {
    return mmfs__hmap_get(&e->kv.map, key, mmfs__hash(key)) != 0;
}

int mmfs__engine_get_kv(const mmfs__engine *e, mmfs_slice key, mmfs_slice *value) {
    const uint8_t *raw = (const uint8_t *)mmfs__hmap_get(&e->kv.map, key, mmfs__hash(key));
    mmfs__rec r;
    if (!raw) return MMFS_NOTFOUND;
    int rc = mmfs__raw_decode(raw, &r);
    if (rc == MMFS_OK) *value = r.u.kv.value;
    return rc;
}

int mmfs_get_kv(mmfs_db *db, mmfs_slice key, mmfs_slice *value) {
    if (!db || !value) return mmfs__err(MMFS_INVALID, "get_kv: db and value must not be NULL");
    value->ptr = NULL;
    value->len = 0;
    mmfs__engine *e;
    int rc = mmfs__read_begin(db, &e);
    if (rc) return rc;
    const uint8_t *raw = (const uint8_t *)mmfs__hmap_get(&e->kv.map, key, mmfs__hash(key));
    if (!raw) {
        rc = mmfs__err(MMFS_NOTFOUND, "get_kv: no such key");
    } else {
        /* KV_SET: header, str key, str value; the frame was checked when it
        ** was applied, so the lengths are within the record. */
        const uint8_t *v = raw + MMFS__REC_HDR + 4 + mmfs__ld32(raw + MMFS__REC_HDR);
        value->len = mmfs__ld32(v);
        value->ptr = v + 4;
    }
    mmfs__read_end(db);
    return rc;
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
    mmfs__bt_pos pos;
    mmfs_slice probe;
    const uint8_t *raw;
    if (it->started) {
        probe.ptr = it->last;
        probe.len = it->llen;
        raw = mmfs__bt_seek(&e->kv.order, &probe, 1, &pos);
    } else {
        probe.ptr = it->prefix;
        probe.len = it->plen;
        raw = mmfs__bt_seek(&e->kv.order, &probe, 0, &pos);
    }
    mmfs_slice k = raw ? mmfs__raw_key(raw) : (mmfs_slice){NULL, 0};
    mmfs__rec r;
    if (!raw || k.len < it->plen || (it->plen && memcmp(k.ptr, it->prefix, it->plen) != 0)) {
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
