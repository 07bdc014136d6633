/*
** ckpt_snap.c: a checkpoint's snapshot (the snap of ckpt.h): what it
** copies of the engine under the locks, and the tables it makes of that
** after them, merged with the mapped checkpoint's; ckpt.c writes them.
**
** Invariants:
** - Written holding the writer mutex only while picking the LSN (catch
**   up, note the anchor), and the engine's read side while copying
**   record pointers; sorting and merging hold no lock: the mapped tables
**   and the records in the log do not change.
** - The snapshot holds pointers into the log and the mapped checkpoint,
**   never copies of records; only the deleted bits of the mapped memory
**   table are copied (they change under apply).
*/
#include "ckpt.h"

#include <stdlib.h>
#include <string.h>

static int push(const uint8_t ***arr, size_t *n, size_t *cap, const uint8_t *raw) {
    void *a = *arr;
    int rc = mmfs__grow(&a, cap, *n + 1, sizeof **arr);
    if (rc) return rc;
    *arr = a;
    (*arr)[(*n)++] = raw;
    return MMFS_OK;
}

static int push64(uint64_t **arr, size_t *n, size_t *cap, uint64_t v) {
    void *a = *arr;
    int rc = mmfs__grow(&a, cap, *n + 1, sizeof **arr);
    if (rc) return rc;
    *arr = a;
    (*arr)[(*n)++] = v;
    return MMFS_OK;
}

/* Copies pointers to the live records section 4 holds: the latest state
** and policy, the zstd dictionaries (sessions, streams and documents are section 15's:
** ckpt_tables.c).  Caller holds the engine's read side. */
static int take_records(const mmfs__engine *e, snap *s) {
    int rc = MMFS_OK;
    if (e->state.raw) rc = push(&s->recs, &s->nrecs, &s->reccap, e->state.raw);
    if (rc == MMFS_OK && e->policy) rc = push(&s->recs, &s->nrecs, &s->reccap, e->policy);
    /* the zstd dictionaries: a memory's text may need one (ztext.c) */
    for (size_t i = 0; i < atomic_load(&e->z.n) && rc == MMFS_OK; i++)
        rc = push(&s->recs, &s->nrecs, &s->reccap, e->z.dicts[i].raw);
    return rc;
}

/* The kv records since the checkpoint (kv.c: order has the KV_SETs, map
** every key they touched).  Caller holds the engine's read side. */
static int take_kv(const mmfs__engine *e, snap *s) {
    int rc = MMFS_OK;
    s->kvck = &e->kv.ck;
    mmfs__bt_pos pos;
    for (const uint8_t *r = mmfs__bt_first(&e->kv.order, &pos); r && rc == MMFS_OK; r = mmfs__bt_next(&pos))
        rc = push(&s->dset, &s->ndset, &s->dsetcap, r);
    const mmfs__hmap *h = &e->kv.map;
    if (s->kvck->n && h->slots)
        for (size_t i = 0; i <= h->mask && rc == MMFS_OK; i++)
            if (h->slots[i].val) rc = push(&s->dkeys, &s->ndkeys, &s->dkeycap, (const uint8_t *)h->slots[i].val);
    return rc;
}

/* The memory table since the checkpoint: the newer ents, by_time and tag
** ids, the checkpoint's deleted bits, routes and tag names.  Caller holds
** the engine's read side. */
static int take_memories(const mmfs__engine *e, snap *s) {
    const mmfs__mems *m = &e->mems;
    s->mem_live = m->live;
    s->mck = m->ck;
    s->mck.dead = NULL;
    if (m->ck.dead) {
        if (!(s->mck.dead = malloc((m->ck.n + 7) / 8))) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
        memcpy(s->mck.dead, m->ck.dead, (m->ck.n + 7) / 8);
    }
    s->dbase = m->base;
    s->ndents = m->n;
    if (m->n && !(s->dents = malloc(m->n * sizeof *s->dents)))
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (memory table)");
    if (m->n) memcpy(s->dents, m->ents, m->n * sizeof *s->dents);
    int rc = MMFS_OK;
    mmfs__bt_pos pos;
    for (const uint8_t *r = mmfs__bt_first(&m->by_time, &pos); r && rc == MMFS_OK; r = mmfs__bt_next(&pos))
        rc = push(&s->dtime, &s->ndtime, &s->dtimecap, r);
    if (rc) return rc;
    s->nroutes = m->nroutes;
    if (s->nroutes && !(s->routes = malloc(s->nroutes * sizeof *s->routes)))
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (routes)");
    if (s->nroutes) memcpy(s->routes, m->route_names, s->nroutes * sizeof *s->routes);
    size_t ntags = m->tags.count;
    s->tag_names = malloc((ntags + 1) * sizeof *s->tag_names);
    s->tag_ckt = malloc((ntags + 1) * sizeof *s->tag_ckt);
    s->tag_in_at = malloc((ntags + 1) * sizeof *s->tag_in_at);
    if (!s->tag_names || !s->tag_ckt || !s->tag_in_at)
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (tags)");
    s->tag_in_at[0] = 0;
    for (size_t i = 0; m->tags.slots && i <= m->tags.mask && rc == MMFS_OK; i++) {
        const mmfs__tag *t = (const mmfs__tag *)m->tags.slots[i].val;
        if (!t) continue;
        s->tag_names[s->ntags] = t->name;
        s->tag_ckt[s->ntags] = *t;
        s->tag_ckt[s->ntags].ck = &s->mck;
        for (size_t j = 0; j < t->n && rc == MMFS_OK; j++) rc = push64(&s->tag_in, &s->ntag_in, &s->tag_incap, t->ids[j]);
        s->tag_in_at[++s->ntags] = s->ntag_in;
    }
    return rc;
}

void mmfs__ckpt_snap_free(snap *s) {
    free(s->logrecs);
    free(s->loglsn);
    free(s->segs);
    free(s->recs);
    free(s->dset);
    free(s->dkeys);
    free(s->mck.dead);
    free(s->dents);
    free(s->dtime);
    free(s->routes);
    free(s->tag_names);
    free(s->tag_ckt);
    free(s->tag_in_at);
    free(s->tag_in);
    free(s->kv);
    free(s->ents);
    free(s->time);
    free(s->tag_at);
    free(s->tag_ids);
    free(s->ixl);
    mmfs__ckpt_tables_free(s);
}

static int cmp_rec_key(const void *a, const void *b) {
    return mmfs__slice_cmp(mmfs__raw_key(*(const uint8_t *const *)a), mmfs__raw_key(*(const uint8_t *const *)b));
}

/* The live kv records in key order: the checkpoint's, but those whose key
** a newer record has, merged with the newer KV_SETs.  No lock: the mapped
** tables and the records in the log do not change. */
static int merge_kv(snap *s) {
    const mmfs__kvck *ck = s->kvck;
    if (s->ndkeys) qsort(s->dkeys, s->ndkeys, sizeof *s->dkeys, cmp_rec_key);
    size_t i = 0, j = 0, k = 0;
    const uint8_t *c = NULL;
    for (;;) {
        while (!c && i < ck->n) {
            const uint8_t *at = ck->order + 8 * i++;
            if (!mmfs__ckf_ok(ck->ckf, at, 8) || !(c = mmfs__kvck_rec(ck, mmfs__ld64(at)))) continue;
            mmfs_slice key = mmfs__raw_key(c);
            while (k < s->ndkeys && mmfs__slice_cmp(mmfs__raw_key(s->dkeys[k]), key) < 0) k++;
            if (k < s->ndkeys && mmfs__slice_eq(mmfs__raw_key(s->dkeys[k]), key)) c = NULL; /* hidden */
        }
        const uint8_t *d = j < s->ndset ? s->dset[j] : NULL;
        if (!c && !d) return MMFS_OK;
        int rc;
        if (d && (!c || mmfs__slice_cmp(mmfs__raw_key(d), mmfs__raw_key(c)) < 0)) {
            rc = push(&s->kv, &s->nkv, &s->kvcap, d);
            j++;
        } else {
            rc = push(&s->kv, &s->nkv, &s->kvcap, c);
            c = NULL;
        }
        if (rc) return rc;
    }
}

/* The checkpoint's entry of ID as it was when copied (a NULL raw: none). */
static mmfs__mem_ent ck_mem(const snap *s, uint64_t id) {
    mmfs__mem_ent ent = {NULL, 0, 0};
    const mmfs__memck *ck = &s->mck;
    ent.raw = mmfs__memck_rec(ck, s->kvck, id, &ent.route);
    if (ent.raw) {
        uint64_t i = id - ck->base;
        ent.deleted = ck->dead && (ck->dead[i >> 3] >> (i & 7) & 1);
    }
    return ent;
}

/* The entry of ID, newer ents first. */
static mmfs__mem_ent snap_mem(const snap *s, uint64_t id) {
    if (id >= s->dbase && id - s->dbase < s->ndents && s->dents[id - s->dbase].raw) return s->dents[id - s->dbase];
    return ck_mem(s, id);
}

/* 1 if the record A sorts before B by time (created_at desc, id desc). */
static int time_before(const uint8_t *a, const uint8_t *b) {
    int64_t ca = mmfs__raw_mem_created(a), cb = mmfs__raw_mem_created(b);
    if (ca != cb) return ca > cb;
    return mmfs__raw_mem_id(a) > mmfs__raw_mem_id(b);
}

/* The memory table as the file holds it: every entry, the live ids by
** time (the checkpoint's order merged with the newer by_time), each tag's
** live ids.  No lock, as merge_kv. */
static int merge_memories(snap *s) {
    uint64_t first = s->mck.n ? s->mck.base : s->ndents ? s->dbase : s->next_mem;
    s->mem_base = first;
    s->nents = (size_t)(s->next_mem - first);
    if (s->nents && !(s->ents = calloc(s->nents, sizeof *s->ents)))
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (memory table)");
    for (size_t i = 0; i < s->nents; i++) s->ents[i] = snap_mem(s, first + i);
    int rc = MMFS_OK;
    size_t ci = 0, di = 0;
    const uint8_t *c = NULL;
    for (;;) {
        while (!c && ci < s->mck.ntime) {
            mmfs__mem_ent ent = ck_mem(s, mmfs__memck_time_id(&s->mck, ci++));
            if (ent.raw && !ent.deleted) c = ent.raw;
        }
        const uint8_t *d = di < s->ndtime ? s->dtime[di] : NULL;
        if (!c && !d) break;
        const uint8_t *r = d && (!c || time_before(d, c)) ? d : c;
        if (r == d) di++;
        else c = NULL;
        if ((rc = push64(&s->time, &s->ntime, &s->timecap, mmfs__raw_mem_id(r)))) return rc;
    }
    if (!(s->tag_at = malloc((s->ntags + 1) * sizeof *s->tag_at)))
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (tags)");
    s->tag_at[0] = 0;
    for (size_t t = 0; t < s->ntags && rc == MMFS_OK; t++) {
        const mmfs__tag *tc = &s->tag_ckt[t];
        uint64_t blk[MMFS__TAG_BLOCK];
        for (size_t k = 0; k * MMFS__TAG_BLOCK < tc->ck_n && rc == MMFS_OK; k++) {
            size_t n = mmfs__tag_ck_block(&s->mck, tc, k, blk);
            for (size_t j = 0; j < n && rc == MMFS_OK; j++) {
                const mmfs__memck *ck = &s->mck;
                uint64_t i = blk[j] - ck->base;
                if (ck->dead && (ck->dead[i >> 3] >> (i & 7) & 1)) continue;
                rc = push64(&s->tag_ids, &s->ntag_ids, &s->tag_idcap, blk[j]);
            }
        }
        for (size_t j = s->tag_in_at[t]; j < s->tag_in_at[t + 1] && rc == MMFS_OK; j++) {
            mmfs__mem_ent ent = snap_mem(s, s->tag_in[j]);
            if (ent.raw && !ent.deleted) rc = push64(&s->tag_ids, &s->ntag_ids, &s->tag_idcap, s->tag_in[j]);
        }
        s->tag_at[t + 1] = s->ntag_ids;
    }
    return rc;
}

/* Picks the LSN (under wmu), copies what changed since the mapped
** checkpoint (under rw's read side), then merges the mapped tables in (no
** lock).  *EMPTY: the log has no frame yet (nothing to write). */
int mmfs__ckpt_snap_take(mmfs_db *db, snap *s, int *empty) {
    pthread_mutex_lock(&db->wmu);
    int rc = mmfs__catch_up_locked(db, atomic_load_explicit(&db->log.shm->written, memory_order_acquire));
    *empty = db->last_frame == 0;
    if (rc || *empty) {
        pthread_mutex_unlock(&db->wmu);
        return rc;
    }
    s->lsn = db->next_lsn - 1;
    s->anchor = db->last_frame;
    s->rec_bytes = db->rec_bytes;
    s->first_seg = db->log.first_seg;
    uint32_t aseg = MMFS__POS_SEG(s->anchor);
    s->segs = calloc(db->log.nsegs, sizeof *s->segs);
    if (!s->segs) {
        pthread_mutex_unlock(&db->wmu);
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
    }
    for (size_t i = 0; i < db->log.nsegs && db->log.segs[i].no <= aseg; i++) {
        const mmfs__seg *g = &db->log.segs[i];
        s->segs[i] = (struct sseg){g->no, g->fd, g->map, g->size, g->end};
        s->nsegs++;
    }
    /* The anchor frame's first LSN, read while the log cannot move. */
    const mmfs__seg *as = &db->log.segs[s->nsegs - 1];
    const uint8_t *fr = as->map + MMFS__POS_OFF(s->anchor);
    s->anchor_lsn = mmfs__ld64(fr + 8);
    memcpy(s->anchor_sum, fr + MMFS__FRAME_HDR + mmfs__ld32(fr + 24), db->log.sum.len);
    pthread_rwlock_rdlock(&db->rw);
    pthread_mutex_unlock(&db->wmu);
    s->next_mem = mmfs__engine_next_memory_id(db->eng);
    s->live_bytes = db->eng->live_bytes;
    rc = take_kv(db->eng, s);
    if (rc == MMFS_OK) rc = take_records(db->eng, s);
    if (rc == MMFS_OK) rc = take_memories(db->eng, s);
    if (rc == MMFS_OK) rc = mmfs__ckpt_tables_take(db->eng, s);
    pthread_rwlock_unlock(&db->rw);
    if (rc == MMFS_OK) rc = merge_kv(s);
    if (rc == MMFS_OK) rc = merge_memories(s);
    if (rc == MMFS_OK) rc = mmfs__ckpt_tables_merge(s);
    /* A part of the mapped checkpoint that failed its checksum was read
    ** as absent: never write that down as the state. */
    if (rc == MMFS_OK && (mmfs__ckf_bad(s->kvck->ckf) || mmfs__ckf_bad(s->mck.f)))
        rc = mmfs__err(MMFS_CORRUPT, "checkpoint: the mapped checkpoint is damaged (reopen to read from the log)");
    return rc;
}
