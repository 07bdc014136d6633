/*
** memory_read.c: what the reads of the full-text engine's two tenants
** find: a memory by id, lists of memories (a caller's filter resolved
** against routes and tags, a walk by time that merges the newer
** memories with the checkpoint's order), memory and document searches.
** The public functions, with their locking, catch-up and index drain,
** are store/read_memory.c.
**
** Invariants:
** - Reads only: nothing here changes the engine; the caller holds its
**   read side (and ixlock's for a search, taken here).
** - Every id found in a tag list, the checkpoint's order or the index is
**   checked against its entry (mmfs__mem_ent_live) before it is
**   returned: those may still hold deleted ids.
** - A list is one malloc block (released by mmfs_free); the texts of a
**   compressed store are decompressed into it (engine/ztext.c), raw ones
**   are slices into the log.
*/
#include "mems.h"

#include <stdlib.h>
#include <string.h>

static mmfs__tag *tag_find(const mmfs__engine *e, mmfs_slice name) {
    return (mmfs__tag *)mmfs__hmap_get(&e->mems.tags, name, mmfs__hash(name));
}

/* T's ids, the checkpoint's then the newer: how many. */
static size_t tag_count(const mmfs__tag *t) { return t->ck_n + t->n; }

/* RC, or MMFS_CORRUPT once the checkpoint is damaged and the answer may
** miss what it holds (parts that fail their checksum read as absent): a
** NOTFOUND, or a list (FOUND 0).  A memory found was read from good
** bytes (FOUND 1). */
static int ck_check(const mmfs__engine *e, int rc, int found) {
    if (rc == MMFS_NOTFOUND || (rc == MMFS_OK && !found))
        if (mmfs__ckf_bad(e->mems.ck.f))
            return mmfs__err(MMFS_CORRUPT, "memories: the checkpoint is damaged (dropped: reopen to read from the log)");
    return rc;
}

/* The bytes a result needs for R's text beside the record: 0 for a raw
** text (the result points into the log), else its plain length. */
static int text_extra(const mmfs__rec *r, size_t *extra) {
    *extra = 0;
    return r->flags & MMFS__RF_ZTEXT ? mmfs__mem_text_len(r, extra) : MMFS_OK;
}

/* Fills *M from decoded memory record R; its tags go to TAGS.  A
** compressed text is decompressed to *BUF (text_extra bytes), which
** moves past it. */
static int mem_fill(const mmfs__engine *e, mmfs_memory *m, const mmfs__rec *r, mmfs_slice *tags, uint8_t **buf) {
    m->id = r->u.mem.id;
    m->created_at = r->u.mem.created_at;
    m->score = 0;
    m->text = r->u.mem.text;
    if (r->flags & MMFS__RF_ZTEXT) {
        size_t n;
        int rc;
        if ((rc = mmfs__mem_text_len(r, &n)) || (rc = mmfs__mem_text_into(e, r, *buf))) return rc;
        m->text.ptr = *buf;
        m->text.len = n;
        *buf += n;
    }
    m->route = r->u.mem.route.len ? r->u.mem.route : mmfs__default_route;
    m->ntags = r->u.mem.ntags;
    m->tags = m->ntags ? tags : NULL;
    const uint8_t *p = r->u.mem.tags.ptr;
    for (uint32_t i = 0; i < r->u.mem.ntags; i++) tags[i] = mmfs__tag_next(&p);
    return MMFS_OK;
}

int mmfs__mem_get(const mmfs__engine *e, uint64_t id, mmfs_memory **out) {
    int rc;
    mmfs__mem_ent b;
    const mmfs__mem_ent *ent = mmfs__mem_ent_live(e, id, &b);
    mmfs__rec r;
    if (!ent) {
        rc = mmfs__err(MMFS_NOTFOUND, "get_memory: no memory %llu", (unsigned long long)id);
    } else if ((rc = mmfs__raw_decode(ent->raw, &r)) == MMFS_OK) {
        size_t extra;
        mmfs_memory *m = NULL;
        if ((rc = text_extra(&r, &extra)) == MMFS_OK &&
            !(m = malloc(sizeof *m + (size_t)r.u.mem.ntags * sizeof(mmfs_slice) + extra)))
            rc = mmfs__err(MMFS_NOMEM, "get_memory: out of memory");
        uint8_t *buf = m ? (uint8_t *)((mmfs_slice *)(m + 1) + r.u.mem.ntags) : NULL;
        if (m && (rc = mem_fill(e, m, &r, (mmfs_slice *)(m + 1), &buf)) != MMFS_OK) {
            free(m);
            m = NULL;
        }
        if (m) *out = m;
    }
    return ck_check(e, rc, 1); /* only a NOTFOUND may be the damage's */
}

/* Builds the one-block list of memories IDS[0..N) (scores SCORES, may be
** NULL) into *OUT. */
static int mem_list(const mmfs__engine *e, const uint64_t *ids, const double *scores, size_t n,
                    mmfs_memories **out) {
    size_t ntags = 0, texts = 0, extra;
    mmfs__rec r;
    mmfs__mem_ent b;
    int rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = mmfs__raw_decode(mmfs__mem_ent_get(e, ids[i], &b)->raw, &r))) return rc;
        if ((rc = text_extra(&r, &extra))) return rc;
        ntags += r.u.mem.ntags;
        texts += extra;
    }
    /* compressed texts are decompressed after the tags: the list stays one block */
    size_t sz = sizeof(mmfs_memories) + n * sizeof(mmfs_memory) + ntags * sizeof(mmfs_slice) + texts;
    mmfs_memories *l = malloc(sz);
    if (!l) return mmfs__err(MMFS_NOMEM, "memories: out of memory (%zu hits)", n);
    l->count = n;
    l->items = (mmfs_memory *)(l + 1);
    mmfs_slice *tags = (mmfs_slice *)(l->items + n);
    uint8_t *buf = (uint8_t *)(tags + ntags);
    for (size_t i = 0; i < n; i++) {
        mmfs__raw_decode(mmfs__mem_ent_get(e, ids[i], &b)->raw, &r); /* decoded fine above */
        if ((rc = mem_fill(e, &l->items[i], &r, tags, &buf))) {
            free(l);
            return rc;
        }
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
    const mmfs__mem_ent *ent = mmfs__mem_ent_live(mf->e, id, &b);
    if (!ent) return 0;
    if (!mf->any_route && ent->route != mf->route) return 0;
    int64_t c = mmfs__raw_mem_created(ent->raw);
    if (mf->has_since && c < mf->since) return 0;
    if (mf->has_before && c >= mf->before) return 0;
    for (size_t i = 0; i < mf->ntags; i++)
        if (!mmfs__tag_has(mf->tags[i], id)) return 0;
    if (mf->has_any) {
        size_t i = 0;
        while (i < mf->nany && !mmfs__tag_has(mf->any[i], id)) i++;
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
    const mmfs__mem_ent *ent = mmfs__mem_ck_ent(e, mmfs__memck_time_id(&e->mems.ck, i), &b);
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
        w->from_ck = mmfs__mem_time_cmp(&k, w->d) < 0;
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
        if (!raw || mmfs__mem_time_cmp(k, raw) > 0)
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

/* qsort order of ids: created_at desc, then id desc. */
static int cmp_newest(const void *a, const void *b, void *ud) {
    const mmfs__engine *e = ud;
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    mmfs__mem_ent buf;
    int64_t cx = mmfs__raw_mem_created(mmfs__mem_ent_get(e, x, &buf)->raw);
    int64_t cy = mmfs__raw_mem_created(mmfs__mem_ent_get(e, y, &buf)->raw);
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
        /* The checkpoint's ids a block at a time, then the newer ones. */
        uint64_t blk[MMFS__TAG_BLOCK];
        size_t nblk = (small->ck_n + MMFS__TAG_BLOCK - 1) / MMFS__TAG_BLOCK;
        for (size_t k = 0; k <= nblk; k++) {
            const uint64_t *v = k < nblk ? blk : small->ids;
            size_t cnt = k < nblk ? mmfs__tag_ck_block(&e->mems.ck, small, k, blk) : small->n;
            for (size_t i = 0; i < cnt; i++) {
                if (!filter_pass(&mf, v[i])) continue;
                void *arr = ids;
                if ((rc = mmfs__grow(&arr, &cap, n + 1, sizeof *ids))) goto done;
                ids = arr;
                ids[n++] = v[i];
            }
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
    if ((rc = ck_check(e, rc, 0)) == MMFS_OK) rc = mem_list(e, ids, NULL, n, out);
    filter_done(&mf);
    free(ids);
    return rc;
}

/* Search callbacks: UD is the mem_filter. */
static int mem_field_cb(void *ud, uint32_t docno, mmfs_slice field, mmfs_slice value) {
    const mem_filter *mf = ud;
    mmfs__mem_ent b;
    const mmfs__mem_ent *ent = mmfs__mem_ent_live(mf->e, docno, &b);
    if (!ent) return 0;
    if (mmfs__slice_eq(field, mmfs_str("tag"))) {
        const mmfs__tag *t = tag_find(mf->e, value);
        return t && mmfs__tag_has(t, docno);
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
    rc = mmfs__index_search(e->mems.ix, query, &cb, k, hits, &n);
    if (rc == MMFS_CORRUPT && mmfs__index_segments(e->mems.ix)) {
        /* a damaged block of a mapped index segment: never an answer from
        ** it; the memories are indexed from the log, then asked again */
        pthread_rwlock_unlock(&e->mems.ixlock);
        ixlocked = 0;
        if ((rc = mmfs__mem_reindex(e))) goto done;
        pthread_rwlock_rdlock(&e->mems.ixlock);
        ixlocked = 1;
        rc = mmfs__index_search(e->mems.ix, query, &cb, k, hits, &n);
    }
    if (rc) goto done;
    size_t m = 0;
    for (size_t i = 0; i < n && !none; i++) {
        mmfs__mem_ent b;
        if (!mmfs__mem_ent_live(e, hits[i].docno, &b)) continue; /* the index and ents agree; be safe */
        ids[m] = hits[i].docno;
        scores[m++] = hits[i].score;
    }
    n = m;
done:
    if (ixlocked) pthread_rwlock_unlock(&e->mems.ixlock);
    if ((rc = ck_check(e, rc, 0)) == MMFS_OK) rc = mem_list(e, ids, scores, n, out);
    filter_done(&mf);
    free(hits);
    free(ids);
    free(scores);
    return rc;
}

int mmfs__doc_search(mmfs__engine *e, mmfs_slice query, size_t limit, mmfs_doc_hits **out) {
    int rc;
    if (limit == 0) limit = MMFS__DEFAULT_LIMIT;
    /* docs.ix is the drain's to write: read it under ixlock, as memories */
    pthread_rwlock_rdlock(&e->mems.ixlock);
    uint64_t live = mmfs__index_count(e->docs.ix);
    size_t k = limit < live ? limit : (size_t)live, n = 0;
    if (k == 0) k = 1;
    mmfs__hit *hits = malloc(k * sizeof *hits);
    mmfs__search_cb cb = {e, NULL, NULL};
    if (!hits)
        rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
    else
        rc = mmfs__index_search(e->docs.ix, query, &cb, k, hits, &n);
    pthread_rwlock_unlock(&e->mems.ixlock);
    if (rc) goto done;
    size_t m = 0;
    const uint8_t **recs = malloc((n ? n : 1) * sizeof *recs);
    if (!recs) {
        rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if ((recs[m] = mmfs__doc_rec(e, hits[i].docno))) hits[m++] = hits[i];
    if (mmfs__tabck_bad(e)) {
        free(recs);
        rc = mmfs__err(MMFS_CORRUPT, "search: the checkpoint is damaged (dropped: reopen to read from the log)");
        goto done;
    }
    mmfs_doc_hits *l = malloc(sizeof *l + m * sizeof(mmfs_doc_hit));
    if (!l) {
        free(recs);
        rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
        goto done;
    }
    l->count = m;
    l->items = (mmfs_doc_hit *)(l + 1);
    for (size_t i = 0; i < m; i++) {
        l->items[i].key = mmfs__raw_key(recs[i]);
        l->items[i].score = hits[i].score;
    }
    free(recs);
    *out = l;
done:
    free(hits);
    return rc;
}
