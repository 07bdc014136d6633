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
**
** Documents: map key -> docno; recs[docno] -> DOC_INDEX record.  Each
** (re)index takes a new docno, so recs grows by 8 bytes per index call;
** a replaced docno's slot is NULL and it is gone from the index.
**
** What the public reads find (mmfs__mem_get, mmfs__mem_list,
** mmfs__mem_search, mmfs__doc_search; the public functions, with their
** locking, catch-up and index drain: store/read_memory.c).  Lists are one
** malloc block (released by mmfs_free).
*/
#include "engine.h"

#include <stdlib.h>
#include <string.h>

static const mmfs_slice DEFAULT_ROUTE = {"default", 7};

/* by_time order: PROBE is a const struct time_key *. */
struct time_key {
    int64_t created;
    uint64_t id;
};

static int time_cmp(const void *probe, const uint8_t *rec) {
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
    return mmfs__raw_key(e->docs.recs[v]);
}

int mmfs__mem_init(mmfs__engine *e) {
    mmfs__bt_init(&e->mems.by_time, time_cmp);
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

/* The checkpoint's entry of ID, copied into *BUF, or NULL (not there, or
** not resolving to this id's MEMORY record: never a wrong memory). */
static const mmfs__mem_ent *ck_ent(const mmfs__engine *e, uint64_t id, mmfs__mem_ent *buf) {
    const mmfs__memck *ck = &e->mems.ck;
    if (id < ck->base || id - ck->base >= ck->n) return NULL;
    uint64_t i = id - ck->base;
    const uint8_t *p = ck->ents + i * 16;
    const uint8_t *raw = mmfs__ck_rec(&e->kv.ck, mmfs__ld64(p));
    if (!raw || raw[4] != MMFS__R_MEMORY || mmfs__raw_len(raw) < MMFS__REC_HDR + 16 || mmfs__raw_mem_id(raw) != id ||
        mmfs__ld32(p + 8) >= e->mems.nroutes)
        return NULL;
    buf->raw = raw;
    buf->route = mmfs__ld32(p + 8);
    buf->deleted = (mmfs__ld32(p + 12) & 1) || (ck->dead && (ck->dead[i >> 3] >> (i & 7) & 1));
    return buf;
}

/* The entry of ID, newer ents first, then the checkpoint's (into *BUF). */
static const mmfs__mem_ent *mem_get(const mmfs__engine *e, uint64_t id, mmfs__mem_ent *buf) {
    const mmfs__mem_ent *ent = mem_ent(e, id);
    return ent ? ent : ck_ent(e, id, buf);
}

static const mmfs__mem_ent *mem_live(const mmfs__engine *e, uint64_t id, mmfs__mem_ent *buf) {
    const mmfs__mem_ent *ent = mem_get(e, id, buf);
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
    if (name.len == 0) name = DEFAULT_ROUTE;
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

static mmfs__tag *tag_find(const mmfs__engine *e, mmfs_slice name) {
    return (mmfs__tag *)mmfs__hmap_get(&e->mems.tags, name, mmfs__hash(name));
}

/* T's ids, the checkpoint's then the newer: how many, and the I-th. */
static size_t tag_count(const mmfs__tag *t) { return t->ck_n + t->n; }
static uint64_t tag_id(const mmfs__tag *t, size_t i) {
    return i < t->ck_n ? mmfs__ld64(t->ck_ids + i * 8) : t->ids[i - t->ck_n];
}

/* 1 if ID is in T's list (live or not). */
static int tag_has(const mmfs__tag *t, uint64_t id) {
    if (t->ck_n && id <= mmfs__ld64(t->ck_ids + (t->ck_n - 1) * 8)) {
        size_t lo = 0, hi = t->ck_n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (mmfs__ld64(t->ck_ids + mid * 8) < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo < t->ck_n && mmfs__ld64(t->ck_ids + lo * 8) == id;
    }
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
    if (tag_has(t, id)) return MMFS_OK; /* a tag given twice */
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
        if (mem_live(e, t->ids[i], &b)) t->ids[j++] = t->ids[i];
    t->n = j;
    t->dead = 0;
    if (j == 0 && !t->ck_n) {
        mmfs__hmap_del(&e->mems.tags, name, h);
        free(t->ids);
        free(t);
    }
}

/* The index work of one memory: done now, or queued (see mmfs__mems). */
static int index_op(mmfs__engine *e, uint32_t docno, int add, mmfs_slice text) {
    mmfs__mems *m = &e->mems;
    if (!m->defer) {
        if (add) return mmfs__index_add(m->ix, docno, text.ptr, text.len);
        mmfs__index_remove(m->ix, docno);
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
    if (rc == MMFS_OK) m->q[m->qn++] = (mmfs__ixop){docno, (uint32_t)add, text.ptr, text.len};
    pthread_mutex_unlock(&m->qmu);
    return rc;
}

/* memory.c, below: the index work of one memory of a checkpoint's table. */
static int ck_index(mmfs__engine *e, uint64_t id);

void mmfs__engine_defer_index(mmfs__engine *e) { e->mems.defer = 1; }

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
        if (op.add == MMFS__IX_CKPT) { /* one memory of the checkpoint's table at a time */
            if ((rc = ck_index(e, op.docno))) break;
            pthread_mutex_lock(&m->qmu);
            m->q[m->qhead].docno++;
            if (--m->q[m->qhead].len == 0) m->qhead++;
            pthread_mutex_unlock(&m->qmu);
            continue;
        }
        if (op.add) rc = mmfs__index_add(m->ix, op.docno, op.text, op.len);
        else mmfs__index_remove(m->ix, op.docno);
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
    const mmfs__mem_ent *ent = ck_ent(e, id, &b);
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
    if (!(r->flags & MMFS__RF_NOINDEX) && id <= MMFS__MEM_ID_MAX &&
        (rc = index_op(e, (uint32_t)id, 1, r->u.mem.text)))
        return rc;
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
    return mem_live(e, id, &b) != NULL;
}

int mmfs__engine_get_memory(const mmfs__engine *e, uint64_t id, mmfs__rec *rec) {
    mmfs__mem_ent b;
    const mmfs__mem_ent *ent = mem_live(e, id, &b);
    return ent ? mmfs__raw_decode(ent->raw, rec) : MMFS_NOTFOUND;
}

/* --------------------------------------------------------------- reads */

/* Fills *M from decoded memory record R; its tags go to TAGS. */
static void mem_fill(mmfs_memory *m, const mmfs__rec *r, mmfs_slice *tags) {
    m->id = r->u.mem.id;
    m->created_at = r->u.mem.created_at;
    m->score = 0;
    m->text = r->u.mem.text;
    m->route = r->u.mem.route.len ? r->u.mem.route : DEFAULT_ROUTE;
    m->ntags = r->u.mem.ntags;
    m->tags = m->ntags ? tags : NULL;
    const uint8_t *p = r->u.mem.tags.ptr;
    for (uint32_t i = 0; i < r->u.mem.ntags; i++) tags[i] = mmfs__tag_next(&p);
}

int mmfs__mem_get(const mmfs__engine *e, uint64_t id, mmfs_memory **out) {
    int rc;
    mmfs__mem_ent b;
    const mmfs__mem_ent *ent = mem_live(e, id, &b);
    mmfs__rec r;
    if (!ent) {
        rc = mmfs__err(MMFS_NOTFOUND, "get_memory: no memory %llu", (unsigned long long)id);
    } else if ((rc = mmfs__raw_decode(ent->raw, &r)) == MMFS_OK) {
        mmfs_memory *m = malloc(sizeof *m + (size_t)r.u.mem.ntags * sizeof(mmfs_slice));
        if (!m) {
            rc = mmfs__err(MMFS_NOMEM, "get_memory: out of memory");
        } else {
            mem_fill(m, &r, (mmfs_slice *)(m + 1));
            *out = m;
        }
    }
    return rc;
}

/* Builds the one-block list of memories IDS[0..N) (scores SCORES, may be
** NULL) into *OUT. */
static int mem_list(const mmfs__engine *e, const uint64_t *ids, const double *scores, size_t n,
                    mmfs_memories **out) {
    size_t ntags = 0;
    mmfs__rec r;
    mmfs__mem_ent b;
    int rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = mmfs__raw_decode(mem_get(e, ids[i], &b)->raw, &r))) return rc;
        ntags += r.u.mem.ntags;
    }
    size_t sz = sizeof(mmfs_memories) + n * sizeof(mmfs_memory) + ntags * sizeof(mmfs_slice);
    mmfs_memories *l = malloc(sz);
    if (!l) return mmfs__err(MMFS_NOMEM, "memories: out of memory (%zu hits)", n);
    l->count = n;
    l->items = (mmfs_memory *)(l + 1);
    mmfs_slice *tags = (mmfs_slice *)(l->items + n);
    for (size_t i = 0; i < n; i++) {
        mmfs__raw_decode(mem_get(e, ids[i], &b)->raw, &r); /* decoded fine above */
        mem_fill(&l->items[i], &r, tags);
        if (scores) l->items[i].score = scores[i];
        tags += r.u.mem.ntags;
    }
    *out = l;
    return MMFS_OK;
}

/* A caller's filter, resolved against the engine. */
typedef struct mem_filter {
    const mmfs__engine *e;
    int any_route;
    uint32_t route;
    const mmfs__tag **tags;
    size_t ntags;
    const mmfs__tag **any; /* the known tags of tags_any */
    size_t nany;
    int has_any;           /* tags_any was given (nany may be 0: nothing passes) */
    int has_since, has_before;
    int64_t since, before;
} mem_filter;

/* Resolves F (may be NULL).  *none = 1 when nothing can match (unknown
** route or tag).  Errors: MMFS_INVALID, MMFS_NOMEM.  Free with
** filter_done. */
static int filter_init(mem_filter *mf, const mmfs__engine *e, const mmfs_filter *f, int *none) {
    memset(mf, 0, sizeof *mf);
    mf->e = e;
    mf->any_route = 1;
    *none = 0;
    if (!f) return MMFS_OK;
    if ((f->ntags && !f->tags) || (f->ntags_any && !f->tags_any) || (f->route.len && !f->route.ptr))
        return mmfs__err(MMFS_INVALID, "filter: tags, tags_any or route is NULL with a non-zero length");
    mf->has_since = f->has_since;
    mf->since = f->since;
    mf->has_before = f->has_before;
    mf->before = f->before;
    if (f->route.len) {
        uintptr_t v = mmfs__hmap_get(&e->mems.routes, f->route, mmfs__hash(f->route));
        if (!v) *none = 1;
        mf->any_route = 0;
        mf->route = (uint32_t)(v - 1);
    }
    if (f->ntags) {
        mf->tags = malloc(f->ntags * sizeof *mf->tags);
        if (!mf->tags) return mmfs__err(MMFS_NOMEM, "filter: out of memory");
        mf->ntags = f->ntags;
        for (size_t i = 0; i < f->ntags; i++)
            if (!(mf->tags[i] = tag_find(e, f->tags[i]))) *none = 1;
    }
    if (f->ntags_any) { /* an empty tags_any is no filter: nothing to pick from */
        mf->any = malloc(f->ntags_any * sizeof *mf->any);
        if (!mf->any) return mmfs__err(MMFS_NOMEM, "filter: out of memory");
        mf->has_any = 1;
        for (size_t i = 0; i < f->ntags_any; i++) {
            const mmfs__tag *t = tag_find(e, f->tags_any[i]);
            if (t) mf->any[mf->nany++] = t;
        }
        if (!mf->nany) *none = 1;
    }
    if (mf->has_since && mf->has_before && mf->since >= mf->before) *none = 1;
    return MMFS_OK;
}

static void filter_done(mem_filter *mf) {
    free(mf->tags);
    free(mf->any);
}

static int filter_pass(const mem_filter *mf, uint64_t id) {
    mmfs__mem_ent b;
    const mmfs__mem_ent *ent = mem_live(mf->e, id, &b);
    if (!ent) return 0;
    if (!mf->any_route && ent->route != mf->route) return 0;
    int64_t c = mmfs__raw_mem_created(ent->raw);
    if (mf->has_since && c < mf->since) return 0;
    if (mf->has_before && c >= mf->before) return 0;
    for (size_t i = 0; i < mf->ntags; i++)
        if (!tag_has(mf->tags[i], id)) return 0;
    if (mf->has_any) {
        size_t i = 0;
        while (i < mf->nany && !tag_has(mf->any[i], id)) i++;
        if (i == mf->nany) return 0;
    }
    return 1;
}

/* A walk of the memories by time: by_time (newer memories) and the
** checkpoint's order merged.  Entries of the checkpoint deleted since come
** out too: callers check each id (filter_pass). */
typedef struct time_walk {
    const mmfs__engine *e;
    mmfs__bt_pos pos;
    const uint8_t *d; /* by_time's current record, or NULL */
    size_t ci;        /* the checkpoint's current index */
    const uint8_t *c; /* its record, or NULL at the end */
    int from_ck;      /* the last record returned was c */
} time_walk;

/* The record of the checkpoint's I-th memory by time, or NULL. */
static const uint8_t *ck_time_rec(const mmfs__engine *e, size_t i) {
    mmfs__mem_ent b;
    const mmfs__mem_ent *ent = ck_ent(e, mmfs__ld64(e->mems.ck.time + i * 8), &b);
    return ent ? ent->raw : NULL;
}

/* Moves the checkpoint's side to the first resolvable record at or after ci. */
static void tw_settle(time_walk *w) {
    w->c = NULL;
    for (; w->ci < w->e->mems.ck.ntime; w->ci++)
        if ((w->c = ck_time_rec(w->e, w->ci))) return;
}

/* The earlier of the two sides in time order. */
static const uint8_t *tw_cur(time_walk *w) {
    if (w->c && w->d) {
        struct time_key k = {mmfs__raw_mem_created(w->c), mmfs__raw_mem_id(w->c)};
        w->from_ck = time_cmp(&k, w->d) < 0;
    } else {
        w->from_ck = w->c != NULL;
    }
    return w->from_ck ? w->c : w->d;
}

/* Starts at the first memory at or after K in time order (NULL: the newest). */
static const uint8_t *tw_seek(time_walk *w, const mmfs__engine *e, const struct time_key *k) {
    w->e = e;
    w->d = k ? mmfs__bt_seek(&e->mems.by_time, k, 0, &w->pos) : mmfs__bt_first(&e->mems.by_time, &w->pos);
    size_t lo = 0, hi = k ? e->mems.ck.ntime : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint8_t *raw = ck_time_rec(e, mid);
        if (!raw || time_cmp(k, raw) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    w->ci = lo;
    tw_settle(w);
    return tw_cur(w);
}

static const uint8_t *tw_next(time_walk *w) {
    if (w->from_ck) {
        w->ci++;
        tw_settle(w);
    } else {
        w->d = mmfs__bt_next(&w->pos);
    }
    return tw_cur(w);
}

/* ----------------------------------------------- a checkpoint's table */

int mmfs__mem_ck_attach(mmfs__engine *e, const mmfs__memck *ck, const uint8_t *routes, size_t routes_len,
                        size_t nroutes, const uint8_t *tags, size_t tags_len, uint64_t live, uint64_t next_id) {
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
    for (off = 0; off < tags_len;) {
        if (tags_len - off < 16) return mmfs__err(MMFS_CORRUPT, "checkpoint: malformed tag table");
        uint32_t nlen = mmfs__ld32(tags + off);
        uint64_t n = mmfs__ld64(tags + off + 8);
        size_t name_sz = ((size_t)nlen + 7) & ~(size_t)7;
        if (name_sz > tags_len - off - 16 || n > (tags_len - off - 16 - name_sz) / 8)
            return mmfs__err(MMFS_CORRUPT, "checkpoint: malformed tag table");
        mmfs_slice name = {tags + off + 16, nlen};
        uint64_t h = mmfs__hash(name);
        if (mmfs__hmap_get(&m->tags, name, h)) return mmfs__err(MMFS_CORRUPT, "checkpoint: a tag twice");
        mmfs__tag *t = calloc(1, sizeof *t);
        if (!t) return mmfs__err(MMFS_NOMEM, "memory: out of memory (tag)");
        t->name = name;
        t->ck_ids = tags + off + 16 + name_sz;
        t->ck_n = (size_t)n;
        if ((rc = mmfs__hmap_put(&m->tags, name, h, (uintptr_t)t, NULL))) {
            free(t);
            return rc;
        }
        off += 16 + name_sz + (size_t)n * 8;
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
    const mmfs__memck *ck = &e->mems.ck;
    const uint8_t *p = ck->ents + (id - ck->base) * 16;
    if (mmfs__ld32(p + 12) & 1) return MMFS_OK;
    const uint8_t *raw = mmfs__ck_rec(&e->kv.ck, mmfs__ld64(p));
    mmfs__rec r;
    if (!raw || raw[4] != MMFS__R_MEMORY || (raw[5] & MMFS__RF_NOINDEX) ||
        mmfs__rec_decode(raw, mmfs__raw_len(raw), &r) != MMFS_OK || r.u.mem.id != id)
        return MMFS_OK;
    return mmfs__index_add(e->mems.ix, (uint32_t)id, r.u.mem.text.ptr, r.u.mem.text.len);
}

/* qsort order of ids: created_at desc, then id desc. */
static int cmp_newest(const void *a, const void *b, void *ud) {
    const mmfs__engine *e = ud;
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    mmfs__mem_ent buf;
    int64_t cx = mmfs__raw_mem_created(mem_get(e, x, &buf)->raw);
    int64_t cy = mmfs__raw_mem_created(mem_get(e, y, &buf)->raw);
    if (cx != cy) return cx > cy ? -1 : 1;
    return x > y ? -1 : x < y;
}

int mmfs__mem_list(mmfs__engine *e, const mmfs_filter *f, mmfs_memories **out) {
    size_t limit = f && f->limit ? f->limit : MMFS__DEFAULT_LIMIT;
    size_t offset = f ? f->offset : 0;
    size_t want = offset + limit < offset ? SIZE_MAX : offset + limit;
    int rc;
    mem_filter mf;
    int none;
    uint64_t *ids = NULL;
    size_t n = 0, cap = 0;
    if ((rc = filter_init(&mf, e, f, &none)) || none) goto done;

    /* The smallest tag list, if any. */
    const mmfs__tag *small = NULL;
    for (size_t i = 0; i < mf.ntags; i++)
        if (!small || tag_count(mf.tags[i]) < tag_count(small)) small = mf.tags[i];
    /* Walking a tag list costs its length; walking by time costs about
    ** want * total / length entries.  Take the cheaper. */
    double total = (double)e->mems.live + 1;
    if (small && (double)tag_count(small) * (double)tag_count(small) <= (double)want * total * 2 + 1024) {
        for (size_t i = 0; i < tag_count(small); i++) {
            if (!filter_pass(&mf, tag_id(small, i))) continue;
            void *arr = ids;
            if ((rc = mmfs__grow(&arr, &cap, n + 1, sizeof *ids))) goto done;
            ids = arr;
            ids[n++] = tag_id(small, i);
        }
        size_t from = offset < n ? offset : n;
        size_t cnt = n - from < limit ? n - from : limit;
        if (cnt) {
            qsort_r(ids, n, sizeof *ids, cmp_newest, e);
            memmove(ids, ids + from, cnt * sizeof *ids);
        }
        n = cnt;
    } else {
        time_walk tw;
        const uint8_t *raw;
        if (mf.has_before) {
            if (mf.before == INT64_MIN) goto done;
            struct time_key k = {mf.before - 1, UINT64_MAX};
            raw = tw_seek(&tw, e, &k);
        } else {
            raw = tw_seek(&tw, e, NULL);
        }
        size_t skipped = 0;
        for (; raw && n < limit; raw = tw_next(&tw)) {
            if (mf.has_since && mmfs__raw_mem_created(raw) < mf.since) break;
            uint64_t id = mmfs__raw_mem_id(raw);
            if (!filter_pass(&mf, id)) continue;
            if (skipped < offset) {
                skipped++;
                continue;
            }
            void *arr = ids;
            if ((rc = mmfs__grow(&arr, &cap, n + 1, sizeof *ids))) goto done;
            ids = arr;
            ids[n++] = id;
        }
    }
done:
    if (rc == MMFS_OK) rc = mem_list(e, ids, NULL, n, out);
    filter_done(&mf);
    free(ids);
    return rc;
}

/* Search callbacks: UD is the mem_filter. */
static int mem_field_cb(void *ud, uint32_t docno, mmfs_slice field, mmfs_slice value) {
    const mem_filter *mf = ud;
    mmfs__mem_ent b;
    const mmfs__mem_ent *ent = mem_live(mf->e, docno, &b);
    if (!ent) return 0;
    if (mmfs__slice_eq(field, mmfs_str("tag"))) {
        const mmfs__tag *t = tag_find(mf->e, value);
        return t && tag_has(t, docno);
    }
    if (mmfs__slice_eq(field, mmfs_str("route")))
        return mmfs__slice_eq(mf->e->mems.route_names[ent->route], value);
    return 0;
}

static int mem_accept_cb(void *ud, uint32_t docno) { return filter_pass(ud, docno); }

static int mem_reject_cb(void *ud, uint32_t docno) {
    (void)ud;
    (void)docno;
    return 0;
}

int mmfs__mem_search(mmfs__engine *e, mmfs_slice query, const mmfs_filter *f, mmfs_memories **out) {
    size_t limit = f && f->limit ? f->limit : MMFS__DEFAULT_LIMIT;
    int rc;
    mem_filter mf;
    int none;
    mmfs__hit *hits = NULL;
    uint64_t *ids = NULL;
    double *scores = NULL;
    size_t n = 0;
    int ixlocked = 0;
    if ((rc = filter_init(&mf, e, f, &none))) goto done;
    pthread_rwlock_rdlock(&e->mems.ixlock);
    ixlocked = 1;
    /* Run the search even when nothing can match, so that a malformed
    ** query is reported. */
    uint64_t live = mmfs__index_count(e->mems.ix);
    size_t k = none ? 1 : limit < live ? limit : (size_t)live;
    if (k == 0) k = 1;
    hits = malloc(k * sizeof *hits);
    ids = malloc(k * sizeof *ids);
    scores = malloc(k * sizeof *scores);
    if (!hits || !ids || !scores) {
        rc = mmfs__err(MMFS_NOMEM, "search_memory: out of memory");
        goto done;
    }
    mmfs__search_cb cb = {&mf, mem_field_cb, none ? mem_reject_cb : mem_accept_cb};
    if ((rc = mmfs__index_search(e->mems.ix, query, &cb, k, hits, &n))) goto done;
    size_t m = 0;
    for (size_t i = 0; i < n && !none; i++) {
        mmfs__mem_ent b;
        if (!mem_live(e, hits[i].docno, &b)) continue; /* the index and ents agree; be safe */
        ids[m] = hits[i].docno;
        scores[m++] = hits[i].score;
    }
    n = m;
done:
    if (ixlocked) pthread_rwlock_unlock(&e->mems.ixlock);
    if (rc == MMFS_OK) rc = mem_list(e, ids, scores, n, out);
    filter_done(&mf);
    free(hits);
    free(ids);
    free(scores);
    return rc;
}

/* ----------------------------------------------------------- documents */

int mmfs__doc_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs__docs *d = &e->docs;
    mmfs_slice key = r->u.doc.key;
    mmfs_assert(mmfs__slice_eq(key, mmfs__raw_key(r->raw)), "doc: key is not the first field");
    uint64_t h = mmfs__hash(key);
    uintptr_t old = mmfs__hmap_get(&d->map, key, h);
    int rc;
    if (r->type == MMFS__R_DOC_INDEX) {
        if (d->next >= UINT32_MAX) return mmfs__err(MMFS_NOMEM, "documents: docnos exhausted");
        void *arr = d->recs;
        if ((rc = mmfs__grow(&arr, &d->cap, d->next + 1, sizeof *d->recs))) return rc;
        d->recs = arr;
        if (!old && (rc = mmfs__hmap_reserve(&d->map, 1))) return rc;
        uint32_t docno = (uint32_t)d->next;
        d->recs[docno] = r->raw;
        if ((rc = mmfs__index_add(d->ix, docno, r->u.doc.text.ptr, r->u.doc.text.len))) {
            d->recs[docno] = NULL;
            return rc;
        }
        d->next++;
        mmfs__hmap_put(&d->map, key, h, docno, NULL); /* reserved: cannot fail */
        e->live_bytes += r->raw_len;
    } else {
        if (!old) return MMFS_OK;
        mmfs__hmap_del(&d->map, key, h);
    }
    if (old) {
        mmfs__index_remove(d->ix, (uint32_t)old);
        e->live_bytes -= mmfs__raw_len(d->recs[old]);
        d->recs[old] = NULL;
    }
    return MMFS_OK;
}

int mmfs__engine_has_doc(const mmfs__engine *e, mmfs_slice key) {
    return mmfs__hmap_get(&e->docs.map, key, mmfs__hash(key)) != 0;
}

int mmfs__doc_search(mmfs__engine *e, mmfs_slice query, size_t limit, mmfs_doc_hits **out) {
    int rc;
    if (limit == 0) limit = MMFS__DEFAULT_LIMIT;
    uint64_t live = mmfs__index_count(e->docs.ix);
    size_t k = limit < live ? limit : (size_t)live, n = 0;
    if (k == 0) k = 1;
    mmfs__hit *hits = malloc(k * sizeof *hits);
    if (!hits) {
        rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
        goto done;
    }
    mmfs__search_cb cb = {e, NULL, NULL};
    if ((rc = mmfs__index_search(e->docs.ix, query, &cb, k, hits, &n))) goto done;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (hits[i].docno < e->docs.next && e->docs.recs[hits[i].docno]) hits[m++] = hits[i];
    mmfs_doc_hits *l = malloc(sizeof *l + m * sizeof(mmfs_doc_hit));
    if (!l) {
        rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
        goto done;
    }
    l->count = m;
    l->items = (mmfs_doc_hit *)(l + 1);
    for (size_t i = 0; i < m; i++) {
        l->items[i].key = mmfs__raw_key(e->docs.recs[hits[i].docno]);
        l->items[i].score = hits[i].score;
    }
    *out = l;
done:
    free(hits);
    return rc;
}
