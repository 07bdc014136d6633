/*
** memory.c: the two tenants of the full-text engine.
**
** Memories: ents[id - base] holds the MEMORY record, its interned route
** and a deleted flag (16 bytes per id); by_time orders the live records by
** created_at desc then id desc (8 bytes / fill); each tag has a list of
** ids, increasing, that may still hold deleted ids (counted in dead and
** swept once they are half the list); routes are interned (the name is a
** slice into the first record that used it, the empty route is
** "default").  The index holds the live memories as docno = (uint32_t)id.
** After a checkpoint (mems.ck, mapped) the ids it holds are read from its
** table, ents holds only newer ids, by_time only newer memories (walks
** merge it with the checkpoint's order), each tag's checkpoint ids are
** mapped beside its newer ones, and deleting a checkpoint id sets a bit.
** The mapped table is compact (checkpoint format 2: about 4 bytes per
** id, runs for the time order, varint gaps for tags) and every read of
** it asks ck_verify.c first: bytes whose checksum fails read as absent,
** and the reads of memory_read.c then fail with MMFS_CORRUPT.
**
** Documents: map key -> docno; recs[docno] -> DOC_INDEX record.  Each
** (re)index takes a new docno, so recs grows by 8 bytes per index call;
** a replaced docno's slot is NULL and it is gone from the index once the
** drain removed it.  Their index work goes through the memories' queue
** (one queue, in log order, drained under ixlock): the same concurrency
** for both tenants.
**
** What the reads find (mmfs__mem_get, mmfs__mem_list, mmfs__mem_search,
** mmfs__doc_search) is memory_read.c; mems.h is what the two share.
*/
#include "mems.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

const mmfs_slice mmfs__default_route = {"default", 7};

int mmfs__mem_time_cmp(const void *probe, const uint8_t *rec) {
    const struct time_key *p = probe;
    int64_t c = mmfs__raw_mem_created(rec);
    uint64_t id = mmfs__raw_mem_id(rec);
    if (p->created != c) return p->created > c ? -1 : 1;
    if (p->id != id) return p->id > id ? -1 : 1;
    return 0;
}

static mmfs_slice tag_key(const void *ctx, uintptr_t v) {
    (void)ctx;
    return ((const mmfs__tag *)v)->name;
}

static mmfs_slice route_key(const void *ctx, uintptr_t v) {
    const mmfs__engine *e = ctx;
    return e->mems.route_names[v - 1];
}

static mmfs_slice doc_key(const void *ctx, uintptr_t v) {
    const mmfs__engine *e = ctx;
    return mmfs__raw_key(e->docs.recs[v - e->docs.ck_n]);
}

int mmfs__mem_init(mmfs__engine *e) {
    mmfs__bt_init(&e->mems.by_time, mmfs__mem_time_cmp);
    mmfs__hmap_init(&e->mems.tags, tag_key, e);
    mmfs__hmap_init(&e->mems.routes, route_key, e);
    mmfs__hmap_init(&e->docs.map, doc_key, e);
    e->docs.next = 1;
    pthread_rwlock_init(&e->mems.ixlock, NULL);
    pthread_mutex_init(&e->mems.qmu, NULL);
    e->mems.locks = 1;
    e->mems.ix = mmfs__index_new();
    e->docs.ix = mmfs__index_new();
    if (!e->mems.ix || !e->docs.ix) return mmfs__err(MMFS_NOMEM, "engine: cannot make the search index");
    return MMFS_OK;
}

int mmfs__engine_set_tokenizer(mmfs__engine *e, int version, const char *lang) {
    int rc = mmfs__index_set_tokenizer(e->mems.ix, version, lang);
    return rc ? rc : mmfs__index_set_tokenizer(e->docs.ix, version, lang);
}

void mmfs__mem_free(mmfs__engine *e) {
    mmfs__mems *m = &e->mems;
    free(m->segl);
    if (m->tags.slots)
        for (size_t i = 0; i <= m->tags.mask; i++) {
            mmfs__tag *t = (mmfs__tag *)m->tags.slots[i].val;
            if (t) {
                free(t->ids);
                free(t);
            }
        }
    mmfs__hmap_free(&m->tags);
    mmfs__hmap_free(&m->routes);
    mmfs__bt_free(&m->by_time);
    free(m->ents);
    free(m->ck.dead);
    free(m->route_names);
    if (m->ix) mmfs__index_free(m->ix);
    free(m->q);
    if (m->locks) { /* not when an earlier module's init failed */
        pthread_rwlock_destroy(&m->ixlock);
        pthread_mutex_destroy(&m->qmu);
    }
    mmfs__hmap_free(&e->docs.map);
    free(e->docs.recs);
    free(e->docs.ck_dead);
    if (e->docs.ix) mmfs__index_free(e->docs.ix);
    memset(m, 0, sizeof *m);
    memset(&e->docs, 0, sizeof e->docs);
}

/* ------------------------------------------------------------ memories */

/* The entry of ID, or NULL if the id was never seen. */
static mmfs__mem_ent *mem_ent(const mmfs__engine *e, uint64_t id) {
    const mmfs__mems *m = &e->mems;
    if (id < m->base || id - m->base >= m->n) return NULL;
    mmfs__mem_ent *ent = &m->ents[id - m->base];
    return ent->raw ? ent : NULL;
}

static uint32_t ld_width(const uint8_t *p, unsigned w) {
    return w == 1 ? p[0] : w == 2 ? (uint32_t)(p[0] | p[1] << 8) : mmfs__ld32(p);
}

/* The log position of ID in checkpoint table CK and its route in *ROUTE;
** 0 when the table has no such id or its bytes fail their checksum. */
static uint64_t memck_pos(const mmfs__memck *ck, uint64_t id, uint32_t *route) {
    if (id < ck->base || id - ck->base >= ck->n) return 0;
    uint64_t i = id - ck->base;
    const uint8_t *d = ck->dir + (i / MMFS__MEM_BLOCK) * 16;
    if (!mmfs__ckf_ok(ck->f, d, 16)) return 0;
    uint64_t base = mmfs__ld64(d), at = mmfs__ld64(d + 8), pos;
    unsigned kind = (unsigned)(at & 3); /* 0: u32 deltas, 1: u64 positions, 2: empty, 3: u16 deltas */
    size_t k = (size_t)(i % MMFS__MEM_BLOCK), w = kind == 1 ? 8 : kind == 3 ? 2 : 4;
    at &= ~(uint64_t)3;
    if (kind == 2 || at > ck->pos_len || (ck->pos_len - at) / w <= k) return 0;
    const uint8_t *p = ck->pos + at + w * k;
    if (!mmfs__ckf_ok(ck->f, p, w)) return 0;
    if (w == 8) {
        pos = mmfs__ld64(p);
    } else if (w == 4) {
        uint32_t delta = mmfs__ld32(p);
        pos = delta == UINT32_MAX ? 0 : base + delta;
    } else {
        uint32_t delta = (uint32_t)(p[0] | p[1] << 8);
        pos = delta == 0xffff ? 0 : base + delta;
    }
    if (!pos) return 0;
    uint32_t r = 0;
    if (ck->rwidth) {
        const uint8_t *q = ck->route + i * ck->rwidth;
        if (!mmfs__ckf_ok(ck->f, q, ck->rwidth)) return 0;
        r = ld_width(q, ck->rwidth);
    }
    *route = r;
    return pos;
}

const uint8_t *mmfs__memck_rec(const mmfs__memck *ck, const mmfs__kvck *kv, uint64_t id, uint32_t *route) {
    uint32_t r;
    uint64_t pos = memck_pos(ck, id, &r);
    if (!pos) return NULL;
    const uint8_t *raw = mmfs__ck_rec(kv, pos);
    if (!raw || raw[4] != MMFS__R_MEMORY || mmfs__raw_len(raw) < MMFS__REC_HDR + 16 || mmfs__raw_mem_id(raw) != id)
        return NULL;
    *route = r;
    return raw;
}

uint64_t mmfs__memck_time_id(const mmfs__memck *ck, size_t i) {
    /* The last run starting at or before I (run nruns is the sentinel). */
    size_t lo = 0, hi = ck->nruns;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (!mmfs__ckf_ok(ck->f, ck->time + 16 * mid, 8)) return 0;
        if (mmfs__ld64(ck->time + 16 * mid) <= i)
            lo = mid;
        else
            hi = mid;
    }
    const uint8_t *r = ck->time + 16 * lo;
    if (!ck->nruns || !mmfs__ckf_ok(ck->f, r, 16) || mmfs__ld64(r) > i) return 0;
    uint64_t off = i - mmfs__ld64(r), v = mmfs__ld64(r + 8);
    if (!(v >> 63)) return off < v ? v - off : 0;
    v &= ~((uint64_t)1 << 63);
    if (v > ck->ntids || off >= ck->ntids - v) return 0;
    const uint8_t *q = ck->tids + 4 * (v + off);
    return mmfs__ckf_ok(ck->f, q, 4) ? ck->base + mmfs__ld32(q) : 0;
}

size_t mmfs__tag_ck_block(const mmfs__memck *ck, const mmfs__tag *t, size_t k, uint64_t *out) {
    size_t nblk = (t->ck_n + MMFS__TAG_BLOCK - 1) / MMFS__TAG_BLOCK;
    if (k >= nblk) return 0;
    const uint8_t *sk = t->ck_skip + 8 * k;
    int more = k + 1 < nblk;
    if (!mmfs__ckf_ok(ck->f, sk, more ? 16 : 8)) return 0;
    size_t off = mmfs__ld32(sk + 4), end = more ? mmfs__ld32(sk + 12) : t->ck_datalen;
    size_t cnt = more ? MMFS__TAG_BLOCK : t->ck_n - k * MMFS__TAG_BLOCK;
    if (off > end || end > t->ck_datalen || !mmfs__ckf_ok(ck->f, t->ck_data + off, end - off)) return 0;
    const uint8_t *p = t->ck_data + off, *pe = t->ck_data + end;
    uint64_t id = ck->base + mmfs__ld32(sk);
    out[0] = id;
    for (size_t j = 1; j < cnt; j++) {
        uint64_t gap = 0;
        for (unsigned sh = 0;; sh += 7) { /* LEB128 */
            if (p == pe || sh > 35) return 0;
            gap |= (uint64_t)(*p & 0x7f) << sh;
            if (!(*p++ & 0x80)) break;
        }
        if (gap == 0) return 0;
        out[j] = id += gap;
    }
    return p == pe ? cnt : 0;
}

/* The checkpoint's entry of ID, copied into *BUF, or NULL (not there, or
** not resolving to this id's MEMORY record: never a wrong memory). */
const mmfs__mem_ent *mmfs__mem_ck_ent(const mmfs__engine *e, uint64_t id, mmfs__mem_ent *buf) {
    const mmfs__memck *ck = &e->mems.ck;
    uint32_t route;
    const uint8_t *raw = mmfs__memck_rec(ck, &e->kv.ck, id, &route);
    if (!raw || route >= e->mems.nroutes) return NULL;
    uint64_t i = id - ck->base;
    buf->raw = raw;
    buf->route = route;
    buf->deleted = ck->dead && (ck->dead[i >> 3] >> (i & 7) & 1);
    return buf;
}

/* The entry of ID, newer ents first, then the checkpoint's (into *BUF). */
const mmfs__mem_ent *mmfs__mem_ent_get(const mmfs__engine *e, uint64_t id, mmfs__mem_ent *buf) {
    const mmfs__mem_ent *ent = mem_ent(e, id);
    return ent ? ent : mmfs__mem_ck_ent(e, id, buf);
}

const mmfs__mem_ent *mmfs__mem_ent_live(const mmfs__engine *e, uint64_t id, mmfs__mem_ent *buf) {
    const mmfs__mem_ent *ent = mmfs__mem_ent_get(e, id, buf);
    return ent && !ent->deleted ? ent : NULL;
}

/* Makes ents cover ID and returns its entry (zeroed if new). */
static int mem_slot(mmfs__engine *e, uint64_t id, mmfs__mem_ent **out) {
    mmfs__mems *m = &e->mems;
    if (m->n == 0) m->base = id;
    if (id < m->base) { /* ids only grow in the log; stay correct anyway */
        uint64_t shift = m->base - id;
        if (shift > SIZE_MAX / sizeof(mmfs__mem_ent) - m->n)
            return mmfs__err(MMFS_NOMEM, "memory: id %llu out of range", (unsigned long long)id);
        void *arr = m->ents;
        int rc = mmfs__grow(&arr, &m->cap, m->n + (size_t)shift, sizeof(mmfs__mem_ent));
        if (rc) return rc;
        m->ents = arr;
        memmove(m->ents + shift, m->ents, m->n * sizeof(mmfs__mem_ent));
        memset(m->ents, 0, (size_t)shift * sizeof(mmfs__mem_ent));
        m->n += (size_t)shift;
        m->base = id;
    }
    uint64_t i = id - m->base;
    if (i >= m->n) {
        if (i >= SIZE_MAX / sizeof(mmfs__mem_ent))
            return mmfs__err(MMFS_NOMEM, "memory: id %llu out of range", (unsigned long long)id);
        void *arr = m->ents;
        int rc = mmfs__grow(&arr, &m->cap, (size_t)i + 1, sizeof(mmfs__mem_ent));
        if (rc) return rc;
        m->ents = arr;
        memset(m->ents + m->n, 0, ((size_t)i + 1 - m->n) * sizeof(mmfs__mem_ent));
        m->n = (size_t)i + 1;
    }
    *out = &m->ents[i];
    return MMFS_OK;
}

static int route_intern(mmfs__engine *e, mmfs_slice name, uint32_t *idx) {
    mmfs__mems *m = &e->mems;
    if (name.len == 0) name = mmfs__default_route;
    uint64_t h = mmfs__hash(name);
    uintptr_t v = mmfs__hmap_get(&m->routes, name, h);
    if (v) {
        *idx = (uint32_t)(v - 1);
        return MMFS_OK;
    }
    if (m->nroutes >= UINT32_MAX - 1) return mmfs__err(MMFS_NOMEM, "memory: too many routes");
    void *arr = m->route_names;
    int rc = mmfs__grow(&arr, &m->route_cap, m->nroutes + 1, sizeof(mmfs_slice));
    if (rc) return rc;
    m->route_names = arr;
    m->route_names[m->nroutes] = name;
    if ((rc = mmfs__hmap_put(&m->routes, name, h, m->nroutes + 1, NULL))) return rc;
    *idx = (uint32_t)m->nroutes++;
    return MMFS_OK;
}

/* 1 if ID is in T's checkpoint list (0 also when its bytes fail their
** checksum: the read then fails as a whole). */
static int ck_tag_has(const mmfs__tag *t, uint64_t id) {
    const mmfs__memck *ck = t->ck;
    if (id < ck->base) return 0;
    size_t lo = 0, hi = (t->ck_n + MMFS__TAG_BLOCK - 1) / MMFS__TAG_BLOCK;
    while (hi - lo > 1) { /* the last block whose first id is <= id */
        size_t mid = lo + (hi - lo) / 2;
        if (!mmfs__ckf_ok(ck->f, t->ck_skip + 8 * mid, 4)) return 0;
        if (ck->base + mmfs__ld32(t->ck_skip + 8 * mid) <= id)
            lo = mid;
        else
            hi = mid;
    }
    uint64_t ids[MMFS__TAG_BLOCK];
    size_t n = mmfs__tag_ck_block(ck, t, lo, ids);
    lo = 0;
    hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo] == id;
}

/* 1 if ID is in T's list (live or not). */
int mmfs__tag_has(const mmfs__tag *t, uint64_t id) {
    if (t->ck_n && id <= t->ck_last) return ck_tag_has(t, id);
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->n && t->ids[lo] == id;
}

static int tag_add(mmfs__engine *e, mmfs_slice name, uint64_t id) {
    uint64_t h = mmfs__hash(name);
    mmfs__tag *t = (mmfs__tag *)mmfs__hmap_get(&e->mems.tags, name, h);
    int rc;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return mmfs__err(MMFS_NOMEM, "memory: out of memory (tag)");
        t->name = name;
        if ((rc = mmfs__hmap_put(&e->mems.tags, name, h, (uintptr_t)t, NULL))) {
            free(t);
            return rc;
        }
    }
    if (mmfs__tag_has(t, id)) return MMFS_OK; /* a tag given twice */
    void *arr = t->ids;
    if ((rc = mmfs__grow(&arr, &t->cap, t->n + 1, sizeof(uint64_t)))) return rc;
    t->ids = arr;
    size_t pos = t->n;
    while (pos > 0 && t->ids[pos - 1] > id) pos--; /* ids come in order: no move */
    memmove(t->ids + pos + 1, t->ids + pos, (t->n - pos) * sizeof(uint64_t));
    t->ids[pos] = id;
    t->n++;
    return MMFS_OK;
}

/* Notes that a memory with tag NAME was deleted; sweeps the list when
** half of it is dead (amortised O(1) per delete) and drops an empty tag. */
static void tag_dead(mmfs__engine *e, mmfs_slice name) {
    uint64_t h = mmfs__hash(name);
    mmfs__tag *t = (mmfs__tag *)mmfs__hmap_get(&e->mems.tags, name, h);
    if (!t) return;
    t->dead++;
    if (t->dead * 2 < t->n) return;
    size_t j = 0;
    mmfs__mem_ent b;
    for (size_t i = 0; i < t->n; i++)
        if (mmfs__mem_ent_live(e, t->ids[i], &b)) t->ids[j++] = t->ids[i];
    t->n = j;
    t->dead = 0;
    if (j == 0 && !t->ck_n) {
        mmfs__hmap_del(&e->mems.tags, name, h);
        free(t->ids);
        free(t);
    }
}

/* The index work of one memory, or of one document (DOC): done now, or
** queued (see mmfs__mems). */
static int queue_op(mmfs__engine *e, int doc, uint32_t docno, int add, mmfs_slice text) {
    mmfs__mems *m = &e->mems;
    if (!m->defer) {
        mmfs__index *ix = doc ? e->docs.ix : m->ix;
        if (add) return mmfs__index_add(ix, docno, text.ptr, text.len);
        mmfs__index_remove(ix, docno);
        return MMFS_OK;
    }
    int rc = MMFS_OK;
    pthread_mutex_lock(&m->qmu);
    if (m->qn == m->qcap && m->qhead > 0) { /* slide the waiting ops down */
        memmove(m->q, m->q + m->qhead, (m->qn - m->qhead) * sizeof *m->q);
        m->qn -= m->qhead;
        m->qhead = 0;
    }
    if (m->qn == m->qcap) rc = mmfs__grow((void **)&m->q, &m->qcap, m->qn + 1, sizeof *m->q);
    if (rc == MMFS_OK) m->q[m->qn++] = (mmfs__ixop){docno, (uint16_t)add, (uint16_t)doc, text.ptr, text.len};
    pthread_mutex_unlock(&m->qmu);
    return rc;
}

static int index_op(mmfs__engine *e, uint32_t docno, int add, mmfs_slice text) {
    return queue_op(e, 0, docno, add, text);
}

/* Adds memory record RAW, whose text is compressed, to IX as DOCNO. */
static int index_ztext(const mmfs__engine *e, mmfs__index *ix, uint32_t docno, const uint8_t *raw) {
    mmfs__rec r;
    mmfs_slice t;
    int rc;
    if ((rc = mmfs__raw_decode(raw, &r)) || (rc = mmfs__mem_text(e, &r, &t))) return rc;
    return mmfs__index_add(ix, docno, t.ptr, t.len);
}

/* The index work of adding memory record R as DOCNO.  A compressed text
** is queued as its record and decompressed by the drain, outside the
** writer's lock (ztext.c). */
static int index_mem(mmfs__engine *e, uint32_t docno, const mmfs__rec *r) {
    if (!(r->flags & MMFS__RF_ZTEXT)) return index_op(e, docno, 1, r->u.mem.text);
    if (!e->mems.defer) return index_ztext(e, e->mems.ix, docno, r->raw);
    return queue_op(e, 0, docno, MMFS__IX_ZTEXT, (mmfs_slice){r->raw, 0});
}

/* memory.c, below: the index work of one memory of a checkpoint's table. */
static int ck_index(mmfs__engine *e, uint64_t id);
static void ck_unindex(mmfs__engine *e, uint32_t id);
static int doc_ck_index(mmfs__engine *e, uint32_t docno);

void mmfs__engine_defer_index(mmfs__engine *e) { e->mems.defer = 1; }

size_t mmfs__engine_index_pending(mmfs__engine *e) {
    pthread_mutex_lock(&e->mems.qmu);
    size_t n = e->mems.qn - e->mems.qhead;
    pthread_mutex_unlock(&e->mems.qmu);
    return n;
}

int mmfs__engine_index_drain(mmfs__engine *e) {
    mmfs__mems *m = &e->mems;
    int rc = MMFS_OK;
    pthread_mutex_lock(&m->qmu);
    int idle = m->qhead == m->qn;
    pthread_mutex_unlock(&m->qmu);
    if (idle) return MMFS_OK;
    pthread_rwlock_wrlock(&m->ixlock);
    for (;;) {
        /* One drainer at a time (ixlock), so the head is ours; apply may
        ** append and move q meanwhile, so copy the op under qmu. */
        pthread_mutex_lock(&m->qmu);
        if (m->qhead == m->qn) {
            m->qhead = m->qn = 0;
            pthread_mutex_unlock(&m->qmu);
            break;
        }
        mmfs__ixop op = m->q[m->qhead];
        pthread_mutex_unlock(&m->qmu);
        if (op.doc && op.add == MMFS__IX_CKPT) { /* one document of the checkpoint's table at a time */
            if ((rc = doc_ck_index(e, op.docno))) break;
            pthread_mutex_lock(&m->qmu);
            m->q[m->qhead].docno++;
            if (--m->q[m->qhead].len == 0) m->qhead++;
            pthread_mutex_unlock(&m->qmu);
            continue;
        }
        uint32_t segs_end = mmfs__index_segments_end(m->ix);
        if (op.add == MMFS__IX_CKPT && op.docno < segs_end) {
            /* ids the mapped segments hold: only their deletes, at once */
            uint32_t stop = op.len < segs_end - op.docno ? op.docno + (uint32_t)op.len : segs_end;
            uint32_t scan = m->segs_fresh < op.docno ? op.docno : m->segs_fresh < stop ? m->segs_fresh : stop;
            for (uint32_t id = op.docno; id < scan; id++) ck_unindex(e, id);
            pthread_mutex_lock(&m->qmu);
            m->q[m->qhead].docno = stop;
            if ((m->q[m->qhead].len -= stop - op.docno) == 0) m->qhead++;
            pthread_mutex_unlock(&m->qmu);
            continue;
        }
        if (op.add == MMFS__IX_CKPT) { /* one memory of the checkpoint's table at a time */
            if ((rc = ck_index(e, op.docno))) break;
            pthread_mutex_lock(&m->qmu);
            m->q[m->qhead].docno++;
            if (--m->q[m->qhead].len == 0) m->qhead++;
            pthread_mutex_unlock(&m->qmu);
            continue;
        }
        mmfs__index *ix = op.doc ? e->docs.ix : m->ix;
        if (op.add == MMFS__IX_ZTEXT) rc = index_ztext(e, ix, op.docno, (const uint8_t *)op.text);
        else if (op.add) rc = mmfs__index_add(ix, op.docno, op.text, op.len);
        else mmfs__index_remove(ix, op.docno);
        if (rc) break; /* left at the head: the next drain tries again */
        pthread_mutex_lock(&m->qmu);
        m->qhead++;
        pthread_mutex_unlock(&m->qmu);
    }
    pthread_rwlock_unlock(&m->ixlock);
    return rc;
}

static void mem_delete(mmfs__engine *e, mmfs__mem_ent *ent) {
    mmfs__rec r;
    ent->deleted = 1; /* first: tag_dead's sweep must see it dead */
    e->mems.live--;
    e->live_bytes -= mmfs__raw_len(ent->raw);
    struct time_key k = {mmfs__raw_mem_created(ent->raw), mmfs__raw_mem_id(ent->raw)};
    mmfs__bt_del(&e->mems.by_time, &k);
    /* Out of memory to queue the removal leaves the memory in the index,
    ** where searches skip it (they check each hit against its entry). */
    if (k.id <= MMFS__MEM_ID_MAX) (void)index_op(e, (uint32_t)k.id, 0, (mmfs_slice){"", 0});
    if (mmfs__raw_decode(ent->raw, &r) != MMFS_OK) return;
    const uint8_t *p = r.u.mem.tags.ptr;
    for (uint32_t i = 0; i < r.u.mem.ntags; i++) tag_dead(e, mmfs__tag_next(&p));
}

/* Deletes ID of the checkpoint's table, if live: a bit, since the table
** is mapped; its tags keep it (reads check each id). */
static int ck_delete(mmfs__engine *e, uint64_t id) {
    mmfs__mem_ent b;
    const mmfs__mem_ent *ent = mmfs__mem_ck_ent(e, id, &b);
    if (!ent || ent->deleted) return MMFS_OK;
    mmfs__memck *ck = &e->mems.ck;
    if (!ck->dead && !(ck->dead = calloc((ck->n + 7) / 8, 1)))
        return mmfs__err(MMFS_NOMEM, "memory: out of memory (deleted ids)");
    uint64_t i = id - ck->base;
    ck->dead[i >> 3] |= (uint8_t)(1u << (i & 7));
    e->mems.live--;
    e->live_bytes -= mmfs__raw_len(ent->raw);
    if (id <= MMFS__MEM_ID_MAX) (void)index_op(e, (uint32_t)id, 0, (mmfs_slice){"", 0});
    return MMFS_OK;
}

int mmfs__mem_apply(mmfs__engine *e, const mmfs__rec *r) {
    if (r->type == MMFS__R_DEL_MEMORY) {
        mmfs__mem_ent *ent = mem_ent(e, r->u.del_mem.id);
        if (ent && !ent->deleted) mem_delete(e, ent);
        return ent ? MMFS_OK : ck_delete(e, r->u.del_mem.id);
    }
    uint64_t id = r->u.mem.id;
    mmfs_assert(id == mmfs__raw_mem_id(r->raw), "memory: id is not the first field");
    mmfs_assert(r->u.mem.created_at == mmfs__raw_mem_created(r->raw), "memory: created_at");
    if (id == 0) return MMFS_OK; /* ids start at 1; the writer never gives 0 */
    mmfs__mem_ent *ent = NULL;
    uint32_t route = 0;
    int rc;
    if ((rc = mem_slot(e, id, &ent))) return rc;
    if (ent->raw && !ent->deleted) mem_delete(e, ent); /* an id is never reused */
    if ((rc = route_intern(e, r->u.mem.route, &route))) return rc;
    struct time_key k = {r->u.mem.created_at, id};
    if ((rc = mmfs__bt_put(&e->mems.by_time, &k, r->raw, NULL))) return rc;
    const uint8_t *p = r->u.mem.tags.ptr;
    for (uint32_t i = 0; i < r->u.mem.ntags; i++)
        if ((rc = tag_add(e, mmfs__tag_next(&p), id))) return rc;
    /* A route with index = false keeps its memories out of search; the
    ** writer decided it under the policy in force and marked the record. */
    /* An id past the bound (never written by this library: the writer
    ** refuses it) stays out of the index rather than under a wrong docno. */
    if (!(r->flags & MMFS__RF_NOINDEX) && id <= MMFS__MEM_ID_MAX && (rc = index_mem(e, (uint32_t)id, r)))
        return rc;
    if (!(r->flags & MMFS__RF_ZTEXT)) e->z.raw_bytes += r->u.mem.text.len; /* ztext.c's trigger */
    ent->raw = r->raw;
    ent->route = route;
    ent->deleted = 0;
    e->mems.live++;
    e->live_bytes += r->raw_len;
    if (id > e->mems.max_id) e->mems.max_id = id;
    return MMFS_OK;
}

uint64_t mmfs__engine_next_memory_id(const mmfs__engine *e) { return e->mems.max_id + 1; }

int mmfs__mem_id_ok(uint64_t id) {
    if (id <= MMFS__MEM_ID_MAX) return MMFS_OK;
    return mmfs__err(MMFS_LIMIT,
                     "append_memory: memory id %llu is past %llu, the most the search index can number",
                     (unsigned long long)id, (unsigned long long)MMFS__MEM_ID_MAX);
}

int mmfs__engine_has_memory(const mmfs__engine *e, uint64_t id) {
    mmfs__mem_ent b;
    return mmfs__mem_ent_live(e, id, &b) != NULL;
}

int mmfs__engine_get_memory(const mmfs__engine *e, uint64_t id, mmfs__rec *rec) {
    mmfs__mem_ent b;
    const mmfs__mem_ent *ent = mmfs__mem_ent_live(e, id, &b);
    return ent ? mmfs__raw_decode(ent->raw, rec) : MMFS_NOTFOUND;
}

/* ----------------------------------------------- a checkpoint's table */

int mmfs__mem_ck_attach(mmfs__engine *e, const mmfs__memck *ck, const uint8_t *routes, size_t routes_len,
                        size_t nroutes, const uint8_t *tags, size_t tags_len, const uint8_t *tag_ids,
                        size_t tag_ids_len, uint64_t live, uint64_t next_id) {
    mmfs__mems *m = &e->mems;
    mmfs_assert(m->defer && m->nroutes == 0 && m->n == 0, "memory: a checkpoint attaches to a new engine");
    int rc;
    size_t off = 0;
    for (size_t i = 0; i < nroutes; i++) {
        uint32_t idx = 0;
        if (routes_len - off < 4 || mmfs__ld32(routes + off) > routes_len - off - 4)
            return mmfs__err(MMFS_CORRUPT, "checkpoint: malformed route table");
        mmfs_slice name = {routes + off + 4, mmfs__ld32(routes + off)};
        if ((rc = route_intern(e, name, &idx))) return rc;
        if (idx != i) return mmfs__err(MMFS_CORRUPT, "checkpoint: a route twice");
        off += (4 + name.len + 7) & ~(size_t)7;
        if (off > routes_len) off = routes_len;
    }
    /* Per tag: u32 name length, u32 0, u64 n, u64 offset and u64 length of
    ** its ids in TAG_IDS (skip points, then gaps), u64 its last id, the
    ** name padded to 8. */
    for (off = 0; off < tags_len;) {
        if (tags_len - off < 40) return mmfs__err(MMFS_CORRUPT, "checkpoint: malformed tag table");
        uint32_t nlen = mmfs__ld32(tags + off);
        uint64_t n = mmfs__ld64(tags + off + 8), at = mmfs__ld64(tags + off + 16), len = mmfs__ld64(tags + off + 24);
        uint64_t last = mmfs__ld64(tags + off + 32), nblk = (n + MMFS__TAG_BLOCK - 1) / MMFS__TAG_BLOCK;
        size_t name_sz = ((size_t)nlen + 7) & ~(size_t)7;
        if (name_sz > tags_len - off - 40 || at > tag_ids_len || len > tag_ids_len - at || nblk > len / 8 ||
            (n && (last < ck->base || last - ck->base >= ck->n)))
            return mmfs__err(MMFS_CORRUPT, "checkpoint: malformed tag table");
        mmfs_slice name = {tags + off + 40, nlen};
        uint64_t h = mmfs__hash(name);
        if (mmfs__hmap_get(&m->tags, name, h)) return mmfs__err(MMFS_CORRUPT, "checkpoint: a tag twice");
        mmfs__tag *t = calloc(1, sizeof *t);
        if (!t) return mmfs__err(MMFS_NOMEM, "memory: out of memory (tag)");
        t->name = name;
        t->ck_skip = tag_ids + at;
        t->ck_data = tag_ids + at + nblk * 8;
        t->ck_datalen = (size_t)(len - nblk * 8);
        t->ck_n = (size_t)n;
        t->ck_last = last;
        t->ck = &m->ck;
        if ((rc = mmfs__hmap_put(&m->tags, name, h, (uintptr_t)t, NULL))) {
            free(t);
            return rc;
        }
        off += 40 + name_sz;
    }
    m->ck = *ck;
    m->ck.dead = NULL;
    m->live = live;
    m->max_id = next_id - 1;
    /* Its index work, as one queued op the drain walks (texts are read
    ** then, not now). */
    if (ck->n && ck->base <= MMFS__MEM_ID_MAX) {
        uint64_t n = ck->n < MMFS__MEM_ID_MAX - ck->base + 1 ? ck->n : MMFS__MEM_ID_MAX - ck->base + 1;
        if ((rc = index_op(e, (uint32_t)ck->base, (int)MMFS__IX_CKPT, (mmfs_slice){NULL, (size_t)n}))) return rc;
    }
    return MMFS_OK;
}

/* Indexes memory ID of the checkpoint's table if it was live there.  Runs
** in the drain, without the engine's lock: it reads only the mapped table
** (deletes since are queued after this op). */
static int ck_index(mmfs__engine *e, uint64_t id) {
    uint32_t route;
    const uint8_t *raw = mmfs__memck_rec(&e->mems.ck, &e->kv.ck, id, &route);
    mmfs__rec r;
    if (!raw || (raw[5] & MMFS__RF_NOINDEX) || mmfs__rec_decode(raw, mmfs__raw_len(raw), &r) != MMFS_OK ||
        r.u.mem.id != id)
        return MMFS_OK;
    mmfs_slice t;
    int rc = mmfs__mem_text(e, &r, &t);
    return rc ? rc : mmfs__index_add(e->mems.ix, (uint32_t)id, t.ptr, t.len);
}

/* Memory ID of the checkpoint's table is in a mapped index segment: takes
** it out of the index unless it was live there.  (A segment holds what
** the checkpoint that listed it first saw live; a later one, or its
** compaction, may have deleted or dropped it since.) */
static void ck_unindex(mmfs__engine *e, uint32_t id) {
    uint32_t route;
    /* format 2: a memory deleted before the checkpoint is no id of its
    ** table (only the position is read: no page of the log is touched) */
    if (memck_pos(&e->mems.ck, id, &route)) return;
    mmfs__index_remove(e->mems.ix, id);
}

int mmfs__mem_reindex(mmfs__engine *e) {
    mmfs__mems *m = &e->mems;
    int rc = MMFS_OK;
    pthread_rwlock_wrlock(&m->ixlock);
    if (!mmfs__index_segments(m->ix)) goto out; /* another search did it */
    mmfs__index *nx = mmfs__index_new_like(m->ix), *old = m->ix;
    if (!nx) {
        rc = mmfs__err(MMFS_NOMEM, "memory: out of memory (index)");
        goto out;
    }
    m->ix = nx; /* ck_index adds into m->ix */
    const mmfs__memck *ck = &m->ck;
    for (size_t i = 0; i < ck->n && rc == MMFS_OK; i++) {
        uint64_t id = ck->base + i;
        if (id > MMFS__MEM_ID_MAX) break;
        if (ck->dead && (ck->dead[i >> 3] >> (i & 7) & 1)) continue;
        rc = ck_index(e, id);
    }
    for (size_t i = 0; i < m->n && rc == MMFS_OK; i++) {
        const mmfs__mem_ent *me = &m->ents[i];
        uint64_t id = m->base + i;
        mmfs__rec r;
        if (!me->raw || me->deleted || (me->raw[5] & MMFS__RF_NOINDEX) || id > MMFS__MEM_ID_MAX ||
            mmfs__rec_decode(me->raw, mmfs__raw_len(me->raw), &r) != MMFS_OK)
            continue;
        mmfs_slice t;
        if ((rc = mmfs__mem_text(e, &r, &t)) == MMFS_OK) rc = mmfs__index_add(nx, (uint32_t)id, t.ptr, t.len);
    }
    if (rc) {
        m->ix = old;
        mmfs__index_free(nx);
        goto out;
    }
    mmfs__index_free(old);
    atomic_store(&m->seg_bad, 2);
out:
    pthread_rwlock_unlock(&m->ixlock);
    return rc;
}

/* Takes out of the mapped index segments the ids below the checkpoint's
** table (a compaction dropped them).  At open, before other threads. */
void mmfs__mem_segs_below(mmfs__engine *e) {
    uint32_t end = mmfs__index_segments_end(e->mems.ix);
    uint64_t stop = e->mems.ck.n ? e->mems.ck.base : end;
    for (uint64_t id = 1; id < stop && id < end; id++) mmfs__index_remove(e->mems.ix, (uint32_t)id);
}

/* ----------------------------------------------------------- documents */

/* Entry I of the checkpoint's documents: its DOC_INDEX record (decoded
** into *R, may be NULL), or NULL when its bytes fail their checksum. */
static const uint8_t *doc_ck_at(const mmfs__engine *e, uint64_t i, mmfs__rec *r) {
    int ok = 1;
    if (i >= e->tab.d_n) return NULL;
    uint64_t pos = mmfs__tabck_u64(e, e->tab.d_recs + 8 * i, &ok);
    return ok ? mmfs__tabck_rec(e, pos, MMFS__R_DOC_INDEX, r) : NULL;
}

static int doc_slot_key(const mmfs__engine *e, const uint8_t *slot, mmfs_slice *key) {
    const uint8_t *raw = doc_ck_at(e, mmfs__ld64(slot + 8) - 1, NULL);
    if (raw) *key = mmfs__raw_key(raw);
    return raw != NULL;
}

static int doc_ck_dead(const mmfs__docs *d, uint64_t i) { return d->ck_dead && (d->ck_dead[i >> 3] >> (i & 7) & 1); }

/* The checkpoint's index (docno - 1) of KEY while it is live there, or -1. */
static int64_t doc_ck_find(const mmfs__engine *e, mmfs_slice key) {
    if (!e->tab.d_n) return -1;
    const uint8_t *slot = mmfs__tabck_probe(e, e->tab.d_slots, e->tab.d_mask, 16, key, doc_slot_key);
    if (!slot) return -1;
    uint64_t i = mmfs__ld64(slot + 8) - 1;
    return doc_ck_dead(&e->docs, i) ? -1 : (int64_t)i;
}

int mmfs__doc_ck_attach(mmfs__engine *e) {
    mmfs__docs *d = &e->docs;
    d->ck_n = e->tab.d_n;
    d->next = d->ck_n + 1;
    d->live = d->ck_n;
    /* Their index work waits for the first search (or write): open does
    ** not tokenize history. */
    if (d->ck_n && e->mems.defer) return queue_op(e, 1, 1, (int)MMFS__IX_CKPT, (mmfs_slice){NULL, d->ck_n});
    int rc = MMFS_OK;
    for (size_t i = 1; i <= d->ck_n && rc == MMFS_OK; i++) rc = doc_ck_index(e, (uint32_t)i);
    return rc;
}

/* Indexes the checkpoint's document DOCNO, unless its bytes fail (a search
** then says CORRUPT: mmfs__tabck_bad). */
static int doc_ck_index(mmfs__engine *e, uint32_t docno) {
    mmfs__rec r;
    if (!doc_ck_at(e, docno - 1, &r)) return MMFS_OK;
    return mmfs__index_add(e->docs.ix, docno, r.u.doc.text.ptr, r.u.doc.text.len);
}

const uint8_t *mmfs__doc_rec(const mmfs__engine *e, uint32_t docno) {
    const mmfs__docs *d = &e->docs;
    if (docno == 0 || docno >= d->next) return NULL;
    if (docno > d->ck_n) return d->recs[docno - d->ck_n];
    return doc_ck_dead(d, docno - 1) ? NULL : doc_ck_at(e, docno - 1, NULL);
}

const uint8_t *mmfs__doc_find(const mmfs__engine *e, mmfs_slice key) {
    uintptr_t docno = mmfs__hmap_get(&e->docs.map, key, mmfs__hash(key));
    if (docno) return e->docs.recs[docno - e->docs.ck_n];
    int64_t i = doc_ck_find(e, key);
    return i < 0 ? NULL : doc_ck_at(e, (uint64_t)i, NULL);
}

int mmfs__doc_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs__docs *d = &e->docs;
    mmfs_slice key = r->u.doc.key;
    mmfs_assert(mmfs__slice_eq(key, mmfs__raw_key(r->raw)), "doc: key is not the first field");
    uint64_t h = mmfs__hash(key);
    uintptr_t old = mmfs__hmap_get(&d->map, key, h);
    int64_t ckold = old ? -1 : doc_ck_find(e, key);
    const uint8_t *ckraw = ckold >= 0 ? doc_ck_at(e, (uint64_t)ckold, NULL) : NULL;
    int rc;
    /* The checkpoint's deleted bits, made at the first: before anything
    ** changes, so NOMEM changes nothing. */
    if (ckold >= 0 && !d->ck_dead && !(d->ck_dead = calloc((d->ck_n + 7) / 8, 1)))
        return mmfs__err(MMFS_NOMEM, "documents: out of memory");
    if (r->type == MMFS__R_DOC_INDEX) {
        if (d->next >= UINT32_MAX) return mmfs__err(MMFS_NOMEM, "documents: docnos exhausted");
        void *arr = d->recs;
        if ((rc = mmfs__grow(&arr, &d->cap, d->next - d->ck_n + 1, sizeof *d->recs))) return rc;
        d->recs = arr;
        if (!old && (rc = mmfs__hmap_reserve(&d->map, 1))) return rc;
        uint32_t docno = (uint32_t)d->next;
        /* Queued (or, during recovery, indexed) first: a failure leaves
        ** the documents as they were. */
        if ((rc = queue_op(e, 1, docno, 1, r->u.doc.text))) return rc;
        d->recs[docno - d->ck_n] = r->raw;
        d->next++;
        mmfs__hmap_put(&d->map, key, h, docno, NULL); /* reserved: cannot fail */
        e->live_bytes += r->raw_len;
        d->live++;
    } else {
        if (!old && ckold < 0) return MMFS_OK;
        if (old) mmfs__hmap_del(&d->map, key, h);
    }
    if (old || ckold >= 0) {
        /* Out of memory to queue the removal leaves the old docno in the
        ** index, where searches skip it (its recs slot is NULL, or its
        ** deleted bit is set). */
        uint32_t was = old ? (uint32_t)old : (uint32_t)ckold + 1;
        (void)queue_op(e, 1, was, 0, (mmfs_slice){"", 0});
        if (old) {
            e->live_bytes -= mmfs__raw_len(d->recs[old - d->ck_n]);
            d->recs[old - d->ck_n] = NULL;
        } else {
            d->ck_dead[ckold >> 3] |= (uint8_t)(1u << (ckold & 7));
            if (ckraw) e->live_bytes -= mmfs__raw_len(ckraw);
        }
        d->live--;
    }
    return MMFS_OK;
}

int mmfs__engine_has_doc(const mmfs__engine *e, mmfs_slice key) { return mmfs__doc_find(e, key) != NULL; }
