/*
** kv.c: the key-value part of the engine, and what its public reads
** find in it (the public functions and the iterator, with their locking:
** store/read_kv.c).
**
** Invariants: without a checkpoint, kv.map and kv.order hold the same set
** of records, the latest KV_SET of each key that has not been deleted
** since.  With one (kv.ck, mapped by ckpt.c), they hold only what came
** after it: map has the latest KV_SET of a key, or the KV_DEL that hides a
** key of the checkpoint; order has the KV_SETs; a checkpoint entry counts
** only while map has no record for its key.  So a lookup asks map first,
** then the checkpoint, and heap grows with the changes since the
** checkpoint, not with history.  A key costs one hash slot (16 bytes /
** load) plus one B+tree entry (8 bytes / fill) and no copy of the key or
** value.
*/
#include "engine.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
    mmfs__kvck *ck = &e->kv.ck;
    if (ck->file) munmap(ck->file, ck->file_size);
    mmfs__ckf_free(ck->ckf);
    free(ck->seg_map);
    free(ck->seg_end);
    memset(ck, 0, sizeof *ck);
}

/* ------------------------------------------------- the checkpoint's table */

const uint8_t *mmfs__ck_rec(const mmfs__kvck *ck, uint64_t pos) {
    uint32_t seg = (uint32_t)(pos >> 40);
    uint64_t off = pos & (((uint64_t)1 << 40) - 1);
    if (seg < ck->first || seg - ck->first >= ck->nsegs) return NULL;
    uint64_t end = ck->seg_end[seg - ck->first];
    if (off < 64 || off + MMFS__REC_HDR > end) return NULL;
    const uint8_t *raw = ck->seg_map[seg - ck->first] + off;
    uint32_t len = mmfs__raw_len(raw);
    return len >= MMFS__REC_HDR && len <= end - off ? raw : NULL;
}

const uint8_t *mmfs__kvck_rec(const mmfs__kvck *ck, uint64_t pos) {
    const uint8_t *raw = mmfs__ck_rec(ck, pos);
    /* A KV_SET holds its header and two string lengths. */
    if (!raw || raw[4] != MMFS__R_KV_SET) return NULL;
    uint32_t len = mmfs__raw_len(raw);
    if (len < MMFS__REC_HDR + 8) return NULL;
    uint32_t klen = mmfs__ld32(raw + MMFS__REC_HDR);
    if ((uint64_t)klen + 8 + MMFS__REC_HDR > len) return NULL;
    uint32_t vlen = mmfs__ld32(raw + MMFS__REC_HDR + 4 + klen);
    if ((uint64_t)klen + vlen + 8 + MMFS__REC_HDR > len) return NULL;
    return raw;
}

/* The checkpoint's record for KEY (hash H), or NULL.  A slot whose
** position does not resolve is skipped (never expected once its block's
** checksum checked); a slot whose block fails it ends the probe, and
** the checkpoint is bad (kv_value then says MMFS_CORRUPT). */
static const uint8_t *ck_get(const mmfs__kvck *ck, mmfs_slice key, uint64_t h) {
    if (!ck->n) return NULL;
    for (size_t i = h & ck->mask;; i = (i + 1) & ck->mask) {
        const uint8_t *slot = ck->slots + i * 16;
        if (!mmfs__ckf_ok(ck->ckf, slot, 16)) return NULL;
        uint64_t pos = mmfs__ld64(slot + 8);
        if (!pos) return NULL;
        if (mmfs__ld64(slot) != h) continue;
        const uint8_t *raw = mmfs__kvck_rec(ck, pos);
        if (raw && mmfs__slice_eq(mmfs__raw_key(raw), key)) return raw;
    }
}

/* The checkpoint's I-th record in key order (NULL if it does not resolve). */
static const uint8_t *ck_at(const mmfs__kvck *ck, size_t i) {
    if (!mmfs__ckf_ok(ck->ckf, ck->order + i * 8, 8)) return NULL;
    return mmfs__kvck_rec(ck, mmfs__ld64(ck->order + i * 8));
}

/* The first index in ck's order whose key is >= KEY (> KEY when STRICT). */
static size_t ck_lower(const mmfs__kvck *ck, mmfs_slice key, int strict) {
    size_t lo = 0, hi = ck->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint8_t *raw = ck_at(ck, mid);
        int c = raw ? mmfs__slice_cmp(key, mmfs__raw_key(raw)) : 1;
        if (strict ? c < 0 : c <= 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* The live KV_SET record of KEY, or NULL: the newer map first. */
static const uint8_t *kv_find(const mmfs__engine *e, mmfs_slice key) {
    uint64_t h = mmfs__hash(key);
    const uint8_t *raw = (const uint8_t *)mmfs__hmap_get(&e->kv.map, key, h);
    if (raw) return raw[4] == MMFS__R_KV_SET ? raw : NULL;
    return ck_get(&e->kv.ck, key, h);
}

const uint8_t *mmfs__kv_find(const mmfs__engine *e, mmfs_slice key) { return kv_find(e, key); }

/* The next live record of the checkpoint at or after index *I (moved past
** entries that map hides), or NULL at the end. */
static const uint8_t *ck_next_live(const mmfs__engine *e, size_t *i) {
    for (; *i < e->kv.ck.n; (*i)++) {
        const uint8_t *raw = ck_at(&e->kv.ck, *i);
        if (!raw) continue;
        mmfs_slice k = mmfs__raw_key(raw);
        if (!mmfs__hmap_get(&e->kv.map, k, mmfs__hash(k))) return raw;
    }
    return NULL;
}

int mmfs__kv_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs_slice key = r->u.kv.key;
    mmfs_assert(mmfs__slice_eq(key, mmfs__raw_key(r->raw)), "kv: key is not the first field");
    uint64_t h = mmfs__hash(key);
    const uint8_t *old = (const uint8_t *)mmfs__hmap_get(&e->kv.map, key, h);
    const uint8_t *ckold = ck_get(&e->kv.ck, key, h);
    /* The record this one replaces, if live: map's, else the checkpoint's. */
    const uint8_t *prev = old ? (old[4] == MMFS__R_KV_SET ? old : NULL) : ckold;
    int rc;
    if (r->type == MMFS__R_KV_DEL) {
        if (!prev) return MMFS_OK;
        if (ckold) {
            /* The checkpoint still has the key: map keeps the KV_DEL to
            ** hide it.  The slot is reserved first, so NOMEM changes
            ** nothing. */
            if (!old && (rc = mmfs__hmap_reserve(&e->kv.map, 1))) return rc;
            mmfs__hmap_put(&e->kv.map, key, h, (uintptr_t)r->raw, NULL);
        } else {
            mmfs__hmap_del(&e->kv.map, key, h);
        }
        if (old && old == prev) mmfs__bt_del(&e->kv.order, &key);
        e->live_bytes -= mmfs__raw_len(prev);
        e->kv.live--;
        return MMFS_OK;
    }
    /* Order matters for NOMEM: reserve the hash slot, then change the
    ** tree (which may fail), then the map (which cannot fail any more). */
    if (!old && (rc = mmfs__hmap_reserve(&e->kv.map, 1))) return rc;
    if ((rc = mmfs__bt_put(&e->kv.order, &key, r->raw, NULL))) return rc;
    mmfs__hmap_put(&e->kv.map, key, h, (uintptr_t)r->raw, NULL);
    if (prev) e->live_bytes -= mmfs__raw_len(prev);
    else e->kv.live++;
    e->live_bytes += r->raw_len;
    return MMFS_OK;
}

int mmfs__engine_has_kv(const mmfs__engine *e, mmfs_slice key) { return kv_find(e, key) != NULL; }

/* KEY's value (pointing into the log), or MMFS_NOTFOUND with no message. */
static int kv_value(const mmfs__engine *e, mmfs_slice key, mmfs_slice *value) {
    const uint8_t *raw = kv_find(e, key);
    if (!raw && mmfs__ckf_bad(e->kv.ck.ckf))
        return mmfs__err(MMFS_CORRUPT, "get_kv: the checkpoint is damaged (dropped: reopen to read from the log)");
    if (!raw) return MMFS_NOTFOUND;
    /* KV_SET: header, str key, str value; the frame was checked when it
    ** was applied, so the lengths are within the record. */
    const uint8_t *v = raw + MMFS__REC_HDR + 4 + mmfs__ld32(raw + MMFS__REC_HDR);
    value->len = mmfs__ld32(v);
    value->ptr = v + 4;
    return MMFS_OK;
}

int mmfs__engine_get_kv(const mmfs__engine *e, mmfs_slice key, mmfs_slice *value) { return kv_value(e, key, value); }

int mmfs__kv_get(const mmfs__engine *e, mmfs_slice key, mmfs_slice *value) {
    int rc = kv_value(e, key, value);
    return rc == MMFS_NOTFOUND ? mmfs__err(MMFS_NOTFOUND, "get_kv: no such key") : rc;
}

const uint8_t *mmfs__kv_seek(const mmfs__engine *e, mmfs_slice probe, int strict) {
    mmfs__bt_pos pos;
    /* The smaller of the next newer record and the next live one of the
    ** checkpoint (a key is never in both). */
    const uint8_t *raw = mmfs__bt_seek(&e->kv.order, &probe, strict, &pos);
    size_t ci = e->kv.ck.n ? ck_lower(&e->kv.ck, probe, strict) : 0;
    const uint8_t *c = ck_next_live(e, &ci);
    if (c && (!raw || mmfs__slice_cmp(mmfs__raw_key(c), mmfs__raw_key(raw)) < 0)) raw = c;
    return raw;
}
