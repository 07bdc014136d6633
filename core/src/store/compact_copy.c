/*
** compact_copy.c: what compaction's copy keeps.  Every record of the
** snapshot is read in log order (mmfs__each_record) and stays when the
** engine still needs it (mmfs__engine_is_live, the command table's live
** column); a live memory is then forgotten when its route's ttl passed or
** the policy's compaction.keep says no.  keep's third argument (per tag,
** how many newer live memories have it) needs a first pass counting tags.
**
** Invariant: the copy runs without the writer lock; each liveness check
** takes the engine's read side alone.
*/
#include "compact.h"
#include "engine.h"
#include "hmap.h"

#include <stdio.h>
#include <stdlib.h>

/* Per tag, the live memories with it (for compaction.keep's third
** argument): TOTAL from a first pass, SEEN so far in the copy. */
typedef struct tagcount {
    mmfs_slice name;
    uint64_t total, seen;
} tagcount;

typedef struct tags {
    mmfs__hmap map; /* name -> index + 1 */
    tagcount *v;
    size_t n, cap;
    uint64_t *newer; /* scratch: one memory's counts */
    size_t newer_cap;
} tags;

static mmfs_slice tag_key(const void *ctx, uintptr_t v) { return ((const tags *)ctx)->v[v - 1].name; }

/* The count of tag NAME, made if ADD. */
static int tag_get(tags *t, mmfs_slice name, int add, tagcount **out) {
    uint64_t h = mmfs__hash(name);
    uintptr_t i = mmfs__hmap_get(&t->map, name, h);
    *out = NULL;
    if (i) {
        *out = &t->v[i - 1];
        return MMFS_OK;
    }
    if (!add) return MMFS_OK;
    void *v = t->v;
    int rc = mmfs__grow(&v, &t->cap, t->n + 1, sizeof *t->v);
    if (rc) return rc;
    t->v = v;
    t->v[t->n] = (tagcount){name, 0, 0};
    rc = mmfs__hmap_put(&t->map, name, h, t->n + 1, NULL);
    if (rc) return rc;
    *out = &t->v[t->n++];
    return MMFS_OK;
}

int mmfs__each_record(const mmfs__seg *segs, size_t n, uint64_t last_end, const mmfs__sum *sum,
                      int (*fn)(void *ud, const mmfs__rec *r), void *ud) {
    for (size_t i = 0; i < n; i++) {
        const mmfs__seg *s = &segs[i];
        uint64_t off = MMFS__SEG_HDR, end = i + 1 == n ? last_end : s->end;
        while (off < end) {
            mmfs__frame f;
            const char *why;
            if (!mmfs__frame_check(s->map + off, s->size - off, 0, sum, &f, &why))
                return mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset %llu: %s (run verify)", s->no,
                                 (unsigned long long)off, why);
            if (f.flags & MMFS__FRAME_SEAL) break;
            const uint8_t *q = f.body, *fend = f.body + f.body_len;
            for (uint32_t k = 0; k < f.count; k++) {
                mmfs__rec r;
                if (mmfs__rec_decode(q, (size_t)(fend - q), &r) != MMFS_OK)
                    return mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset %llu: malformed record", s->no,
                                     (unsigned long long)off);
                q += r.raw_len;
                int rc = fn(ud, &r);
                if (rc) return rc;
            }
            off += f.frame_len;
        }
    }
    return MMFS_OK;
}

typedef struct copy_ctx {
    mmfs_db *db;
    out *o;
    mmfs__policy *p;
    int64_t now;
    tags *t; /* NULL: no keep function, nothing counted */
} copy_ctx;

/* Whether the engine still needs R.  The copy runs without the writer
** lock: the engine's read side guards against this process's writers, and
** db->eng is read under it (a rebuild swaps it under the write side). */
static int live(mmfs_db *db, const mmfs__rec *r) {
    pthread_rwlock_rdlock(&db->rw);
    int l = mmfs__engine_is_live(db->eng, r);
    pthread_rwlock_unlock(&db->rw);
    return l;
}

static int count_tags(void *ud, const mmfs__rec *r) {
    copy_ctx *c = ud;
    if (r->type != MMFS__R_MEMORY || !live(c->db, r)) return MMFS_OK;
    const uint8_t *q = r->u.mem.tags.ptr;
    for (uint32_t i = 0; i < r->u.mem.ntags; i++) {
        tagcount *tc;
        int rc = tag_get(c->t, mmfs__tag_next(&q), 1, &tc);
        if (rc) return rc;
        tc->total++;
    }
    return MMFS_OK;
}

/* Decides whether memory record R (live in the engine) stays: its route's
** ttl, then compaction.keep. */
static int keep_memory(copy_ctx *c, const mmfs__rec *r, int *keep) {
    *keep = 1;
#ifdef MMFS_HAVE_POLICY
    if (!c->p) return MMFS_OK;
    int64_t ttl;
    const uint64_t *newer = NULL;
    if (c->t) { /* counted first, so a memory forgotten by ttl still counts */
        tags *t = c->t;
        if (r->u.mem.ntags > t->newer_cap) {
            uint64_t *n = realloc(t->newer, r->u.mem.ntags * sizeof *n);
            if (!n) return mmfs__err(MMFS_NOMEM, "compact: out of memory");
            t->newer = n;
            t->newer_cap = r->u.mem.ntags;
        }
        const uint8_t *q = r->u.mem.tags.ptr;
        for (uint32_t i = 0; i < r->u.mem.ntags; i++) {
            tagcount *tc;
            (void)tag_get(t, mmfs__tag_next(&q), 0, &tc);
            t->newer[i] = tc && tc->total > tc->seen ? tc->total - tc->seen - 1 : 0;
            if (tc) tc->seen++;
        }
        newer = t->newer;
    }
    if (mmfs__policy_route_ttl(c->p, r->u.mem.route, &ttl) && r->u.mem.created_at <= c->now - ttl) {
        *keep = 0;
        return MMFS_OK;
    }
    if (!c->t) return MMFS_OK;
    mmfs__rec plain; /* keep sees the plain text (ztext.c); the copy keeps it compressed */
    pthread_rwlock_rdlock(&c->db->rw);
    int rc = mmfs__mem_plain(c->db->eng, r, &plain);
    pthread_rwlock_unlock(&c->db->rw);
    return rc ? rc : mmfs__policy_keep(c->p, &plain, c->now, newer, keep);
#else
    (void)c, (void)r;
    return MMFS_OK;
#endif
}

static int copy_record(void *ud, const mmfs__rec *r) {
    copy_ctx *c = ud;
    int keep = live(c->db, r), rc;
    if (keep && r->type == MMFS__R_MEMORY && (rc = keep_memory(c, r, &keep)) != MMFS_OK) return rc;
    if (!keep) {
        out *o = c->o;
        o->dropped++;
        if (r->type == MMFS__R_MEMORY && live(c->db, r)) {
            void *v = o->forgot;
            if ((rc = mmfs__grow(&v, &o->capforgot, o->nforgot + 1, sizeof *o->forgot)) != MMFS_OK) return rc;
            o->forgot = v;
            o->forgot[o->nforgot++] = r->u.mem.id;
        }
        return MMFS_OK;
    }
    return mmfs__cout_add(c->o, r);
}

/* Copies the live records of the snapshot SN of DB into O. */
int mmfs__compact_copy(mmfs_db *db, const snap *sn, out *o, mmfs__policy *p, int64_t now) {
    tags t;
    memset(&t, 0, sizeof t);
    mmfs__hmap_init(&t.map, tag_key, &t);
    copy_ctx c = {db, o, p, now, NULL};
#ifdef MMFS_HAVE_POLICY
    if (p && mmfs__policy_has_keep(p)) c.t = &t;
#endif
    uint64_t last_end = MMFS__POS_OFF(sn->end);
    int rc = c.t ? mmfs__each_record(sn->segs, sn->n, last_end, &db->log.sum, count_tags, &c) : MMFS_OK;
    if (rc == MMFS_OK) rc = mmfs__each_record(sn->segs, sn->n, last_end, &db->log.sum, copy_record, &c);
    mmfs__hmap_free(&t.map);
    free(t.v);
    free(t.newer);
    return rc;
}

/* Builds a VM of the policy in force, for ttl and keep (NULL: none). */
int mmfs__compact_policy(mmfs_db *db, mmfs__policy **out) {
    *out = NULL;
#ifdef MMFS_HAVE_POLICY
    mmfs_slice src;
    uint64_t lsn;
    mmfs__engine_policy(db->eng, &src, &lsn);
    if (!src.len) return MMFS_OK;
    mmfs__policy_limits lim;
    lim.hook_budget = db->opt.hook_budget ? db->opt.hook_budget : MMFS__DEFAULT_HOOK_BUDGET;
    lim.batch_budget = lim.hook_budget * MMFS__BATCH_BUDGET_FACTOR;
    lim.mem_limit = MMFS__POLICY_MEM_LIMIT;
    int rc = mmfs__policy_new(src.ptr, src.len, &lim, out);
    if (rc) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", mmfs_errmsg(NULL));
        return mmfs__err(rc, "compact: the policy in force fails here: %s", msg);
    }
    return MMFS_OK;
#else
    mmfs_slice src;
    uint64_t lsn;
    mmfs__engine_policy(db->eng, &src, &lsn);
    return src.len ? mmfs__err(MMFS_INVALID, "compact: the store has a policy, and this build has no policy VM")
                   : MMFS_OK;
#endif
}
