/*
** session.c: sessions in the engine, and what their public reads find
** in it (the public functions, with their locking: store/read_session.c).
**
** Invariants: without a checkpoint, map (id -> SESSION_PUT record),
** by_time and the intents' lists hold the same records: the current put
** of each id not deleted since.  With one (tab, mapped: tabck.c), they
** hold only what came after it, as kv.c does: map has the latest put of
** an id or the SESSION_DEL that hides an id of the checkpoint, by_time
** and intents the newer puts; a checkpoint session counts only while map
** has no record for its id.  So a get asks map, then the checkpoint's
** slots; a list merges the checkpoint's time order (or its intent's) with
** the newer records; heap grows with the changes since the checkpoint.
** Both orders are created_at desc, then LSN desc (a later put first on a
** tie).  An intent exists while it has a session; its name is a slice
** into one of its records.  A session costs one hash slot, one B+tree
** entry and, with an intent, one pointer in its list; no copies.
*/
#include "engine.h"

#include <stdlib.h>
#include <string.h>

struct sess_key {
    int64_t created;
    uint64_t lsn;
};

static int sess_cmp(const void *probe, const uint8_t *rec) {
    const struct sess_key *p = probe;
    int64_t c = mmfs__raw_sess_created(rec);
    uint64_t lsn = mmfs__raw_lsn(rec);
    if (p->created != c) return p->created > c ? -1 : 1;
    if (p->lsn != lsn) return p->lsn > lsn ? -1 : 1;
    return 0;
}

/* The same order for qsort over record pointers. */
static int sess_qcmp(const void *a, const void *b) {
    const uint8_t *ra = *(const uint8_t *const *)a, *rb = *(const uint8_t *const *)b;
    struct sess_key k = {mmfs__raw_sess_created(ra), mmfs__raw_lsn(ra)};
    return sess_cmp(&k, rb);
}

static mmfs_slice intent_key(const void *ctx, uintptr_t v) {
    (void)ctx;
    return ((const mmfs__intent *)v)->name;
}

int mmfs__sess_init(mmfs__engine *e) {
    mmfs__hmap_init(&e->sess.map, mmfs__hkey_raw, NULL);
    mmfs__bt_init(&e->sess.by_time, sess_cmp);
    mmfs__hmap_init(&e->sess.intents, intent_key, NULL);
    return MMFS_OK;
}

void mmfs__sess_free(mmfs__engine *e) {
    mmfs__sessions *s = &e->sess;
    if (s->intents.slots)
        for (size_t i = 0; i <= s->intents.mask; i++) {
            mmfs__intent *in = (mmfs__intent *)s->intents.slots[i].val;
            if (in) {
                free(in->recs);
                free(in);
            }
        }
    mmfs__hmap_free(&s->intents);
    mmfs__hmap_free(&s->map);
    mmfs__bt_free(&s->by_time);
}

static int intent_add(mmfs__engine *e, mmfs_slice name, const uint8_t *raw) {
    uint64_t h = mmfs__hash(name);
    mmfs__intent *in = (mmfs__intent *)mmfs__hmap_get(&e->sess.intents, name, h);
    int rc;
    int fresh = !in;
    if (fresh) {
        in = calloc(1, sizeof *in);
        if (!in) return mmfs__err(MMFS_NOMEM, "sessions: out of memory (intent)");
        in->name = name;
        if ((rc = mmfs__hmap_reserve(&e->sess.intents, 1))) {
            free(in);
            return rc;
        }
    }
    void *arr = in->recs;
    if ((rc = mmfs__grow(&arr, &in->cap, in->n + 1, sizeof *in->recs))) {
        if (fresh) free(in);
        return rc;
    }
    in->recs = arr;
    if (fresh) mmfs__hmap_put(&e->sess.intents, name, h, (uintptr_t)in, NULL); /* reserved */
    in->recs[in->n++] = raw;
    return MMFS_OK;
}

static void intent_remove(mmfs__engine *e, mmfs_slice name, const uint8_t *raw) {
    uint64_t h = mmfs__hash(name);
    mmfs__intent *in = (mmfs__intent *)mmfs__hmap_get(&e->sess.intents, name, h);
    if (!in) return;
    for (size_t i = 0; i < in->n; i++)
        if (in->recs[i] == raw) {
            in->recs[i] = in->recs[--in->n];
            break;
        }
    if (in->n == 0) {
        mmfs__hmap_del(&e->sess.intents, name, h);
        free(in->recs);
        free(in);
    }
}

/* Drops session record RAW from by_time and its intent (not from map). */
static void sess_unlink(mmfs__engine *e, const uint8_t *raw) {
    struct sess_key k = {mmfs__raw_sess_created(raw), mmfs__raw_lsn(raw)};
    mmfs__bt_del(&e->sess.by_time, &k);
    mmfs__rec r;
    if (mmfs__raw_decode(raw, &r) == MMFS_OK && r.u.sess.has_intent)
        intent_remove(e, r.u.sess.intent_id, raw);
}

/* The key of a checkpoint session slot: its record's id. */
static int ck_slot_key(const mmfs__engine *e, const uint8_t *slot, mmfs_slice *key) {
    const uint8_t *raw = mmfs__tabck_rec(e, mmfs__ld64(slot + 8), MMFS__R_SESSION_PUT, NULL);
    if (raw) *key = mmfs__raw_key(raw);
    return raw != NULL;
}

/* The checkpoint's SESSION_PUT of ID, or NULL (hidden or not: map decides). */
static const uint8_t *ck_get(const mmfs__engine *e, mmfs_slice id) {
    if (!e->tab.s_n) return NULL;
    const uint8_t *slot = mmfs__tabck_probe(e, e->tab.s_slots, e->tab.s_mask, 16, id, ck_slot_key);
    return slot ? mmfs__tabck_rec(e, mmfs__ld64(slot + 8), MMFS__R_SESSION_PUT, NULL) : NULL;
}

const uint8_t *mmfs__sess_find(const mmfs__engine *e, mmfs_slice id) {
    const uint8_t *raw = (const uint8_t *)mmfs__hmap_get(&e->sess.map, id, mmfs__hash(id));
    if (raw) return raw[4] == MMFS__R_SESSION_PUT ? raw : NULL;
    return ck_get(e, id);
}

int mmfs__sess_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs_slice id = r->u.sess.id;
    mmfs_assert(mmfs__slice_eq(id, mmfs__raw_key(r->raw)), "session: id is not the first field");
    uint64_t h = mmfs__hash(id);
    const uint8_t *old = (const uint8_t *)mmfs__hmap_get(&e->sess.map, id, h);
    const uint8_t *ckold = old ? NULL : ck_get(e, id);
    int oldput = old && old[4] == MMFS__R_SESSION_PUT;
    /* The record this one replaces, if live: map's, else the checkpoint's.
    ** (A map record over a checkpoint id hides it for good: puts and
    ** deletes of that id then keep a record in map.) */
    const uint8_t *prev = old ? (oldput ? old : NULL) : ckold;
    int hides = ckold || (old && ck_get(e, id));
    int rc;
    if (r->type == MMFS__R_SESSION_DEL) {
        if (!prev) return MMFS_OK;
        if (hides) {
            /* The slot is reserved first, so NOMEM changes nothing. */
            if (!old && (rc = mmfs__hmap_reserve(&e->sess.map, 1))) return rc;
            mmfs__hmap_put(&e->sess.map, id, h, (uintptr_t)r->raw, NULL);
        } else {
            mmfs__hmap_del(&e->sess.map, id, h);
        }
        if (oldput) sess_unlink(e, old);
        e->live_bytes -= mmfs__raw_len(prev);
        e->sess.live--;
        return MMFS_OK;
    }
    mmfs_assert(r->u.sess.created_at == mmfs__raw_sess_created(r->raw), "session: created_at");
    if (!old && (rc = mmfs__hmap_reserve(&e->sess.map, 1))) return rc;
    struct sess_key k = {r->u.sess.created_at, r->lsn};
    if ((rc = mmfs__bt_put(&e->sess.by_time, &k, r->raw, NULL))) return rc;
    if (r->u.sess.has_intent && (rc = intent_add(e, r->u.sess.intent_id, r->raw))) {
        mmfs__bt_del(&e->sess.by_time, &k);
        return rc;
    }
    if (oldput) sess_unlink(e, old);
    mmfs__hmap_put(&e->sess.map, id, h, (uintptr_t)r->raw, NULL); /* cannot fail now */
    if (prev) e->live_bytes -= mmfs__raw_len(prev);
    else e->sess.live++;
    e->live_bytes += r->raw_len;
    return MMFS_OK;
}

int mmfs__engine_has_session(const mmfs__engine *e, mmfs_slice id) { return mmfs__sess_find(e, id) != NULL; }

int mmfs__engine_get_session(const mmfs__engine *e, mmfs_slice id, mmfs__rec *rec) {
    const uint8_t *raw = mmfs__sess_find(e, id);
    return raw ? mmfs__raw_decode(raw, rec) : MMFS_NOTFOUND;
}

/* --------------------------------------------------------------- reads */

static int sess_fill(mmfs_session *s, const uint8_t *raw) {
    mmfs__rec r;
    int rc = mmfs__raw_decode(raw, &r);
    if (rc) return rc;
    memset(s, 0, sizeof *s);
    s->id = r.u.sess.id;
    s->has_intent = r.u.sess.has_intent;
    if (s->has_intent) s->intent_id = r.u.sess.intent_id;
    s->has_created_at = 1;
    s->created_at = r.u.sess.created_at;
    s->has_payload = r.u.sess.has_payload;
    if (s->has_payload) s->payload = r.u.sess.payload;
    s->fields = r.u.sess.fields;
    return MMFS_OK;
}

/* Builds the one-block list of the N sessions RECS into *OUT. */
static int sess_list(const uint8_t *const *recs, size_t n, mmfs_sessions **out) {
    mmfs_sessions *l = malloc(sizeof *l + n * sizeof(mmfs_session));
    if (!l) return mmfs__err(MMFS_NOMEM, "sessions: out of memory (%zu sessions)", n);
    l->count = n;
    l->items = (mmfs_session *)(l + 1);
    for (size_t i = 0; i < n; i++) {
        int rc = sess_fill(&l->items[i], recs[i]);
        if (rc) {
            free(l);
            return rc;
        }
    }
    *out = l;
    return MMFS_OK;
}

/* The error of a read that needs the checkpoint once it was found bad. */
static int ck_damaged(const char *what) {
    return mmfs__err(MMFS_CORRUPT, "%s: the checkpoint is damaged (dropped: reopen to read from the log)", what);
}

int mmfs__sess_get(const mmfs__engine *e, mmfs_slice id, mmfs_session *out) {
    const uint8_t *raw = mmfs__sess_find(e, id);
    if (mmfs__tabck_bad(e)) return ck_damaged("get_session");
    return raw ? sess_fill(out, raw) : mmfs__err(MMFS_NOTFOUND, "get_session: no such session");
}

/* A walk of the checkpoint's u64 positions P[0, N) of SESSION_PUT records
** in time order, skipping those map hides. */
struct ck_walk {
    const uint8_t *p;
    size_t i, n;
};

/* The walk's next live record, or NULL at its end or when its bytes fail
** (*BAD is set then). */
static const uint8_t *ck_walk_next(const mmfs__engine *e, struct ck_walk *w, int *bad) {
    while (w->i < w->n) {
        int ok = 1;
        uint64_t pos = mmfs__tabck_u64(e, w->p + 8 * w->i++, &ok);
        const uint8_t *raw = ok ? mmfs__tabck_rec(e, pos, MMFS__R_SESSION_PUT, NULL) : NULL;
        if (!raw) {
            *bad = 1;
            return NULL;
        }
        mmfs_slice id = mmfs__raw_key(raw);
        if (!mmfs__hmap_get(&e->sess.map, id, mmfs__hash(id))) return raw;
    }
    return NULL;
}

/* Merges the checkpoint's walk W with the newer records NEW[0, NNEW) (both
** in time order) into a list of at most LIMIT (0: all) in *OUT. */
static int merge_list(const mmfs__engine *e, struct ck_walk *w, const uint8_t *const *nw, size_t nnew, size_t limit,
                      const char *what, mmfs_sessions **out) {
    size_t total = nnew + w->n;
    if (limit && limit < total) total = limit;
    const uint8_t **recs = malloc((total ? total : 1) * sizeof *recs);
    if (!recs) return mmfs__err(MMFS_NOMEM, "%s: out of memory", what);
    size_t i = 0, j = 0;
    int bad = 0;
    const uint8_t *c = ck_walk_next(e, w, &bad);
    while (i < total && !bad && (c || j < nnew)) {
        if (j < nnew && (!c || sess_qcmp(&nw[j], &c) < 0)) {
            recs[i++] = nw[j++];
        } else {
            recs[i++] = c;
            c = ck_walk_next(e, w, &bad);
        }
    }
    int rc = bad || mmfs__tabck_bad(e) ? ck_damaged(what) : sess_list(recs, i, out);
    free(recs);
    return rc;
}

int mmfs__sess_list(const mmfs__engine *e, size_t limit, mmfs_sessions **out) {
    size_t n = e->sess.by_time.count;
    if (limit && limit < n) n = limit;
    const uint8_t **nw = malloc((n ? n : 1) * sizeof *nw);
    if (!nw) return mmfs__err(MMFS_NOMEM, "list_sessions: out of memory");
    mmfs__bt_pos pos;
    size_t i = 0;
    for (const uint8_t *raw = mmfs__bt_first(&e->sess.by_time, &pos); raw && i < n; raw = mmfs__bt_next(&pos))
        nw[i++] = raw;
    struct ck_walk w = {e->tab.s_time, 0, e->tab.s_n};
    int rc = merge_list(e, &w, nw, i, limit, "list_sessions", out);
    free(nw);
    return rc;
}

/* The key of a checkpoint intent slot: the intent of its first record. */
static int ck_intent_key(const mmfs__engine *e, const uint8_t *slot, mmfs_slice *key) {
    int ok = 1;
    uint64_t at = mmfs__ld64(slot + 8) - 1;
    if (at >= e->tab.i_n) return 0;
    uint64_t pos = mmfs__tabck_u64(e, e->tab.i_recs + 8 * at, &ok);
    mmfs__rec r;
    if (!ok || !mmfs__tabck_rec(e, pos, MMFS__R_SESSION_PUT, &r) || !r.u.sess.has_intent) return 0;
    *key = r.u.sess.intent_id;
    return 1;
}

int mmfs__sess_by_intent(const mmfs__engine *e, mmfs_slice intent_id, size_t limit, mmfs_sessions **out) {
    const mmfs__intent *in =
        (const mmfs__intent *)mmfs__hmap_get(&e->sess.intents, intent_id, mmfs__hash(intent_id));
    size_t n = in ? in->n : 0;
    const uint8_t **nw = malloc((n ? n : 1) * sizeof *nw);
    if (!nw) return mmfs__err(MMFS_NOMEM, "list_by_intent: out of memory");
    if (n) memcpy(nw, in->recs, n * sizeof *nw);
    qsort(nw, n, sizeof *nw, sess_qcmp);
    /* The checkpoint's group: its slot (hash, at + 1, n) of i_recs. */
    struct ck_walk w = {NULL, 0, 0};
    const uint8_t *slot =
        e->tab.i_n ? mmfs__tabck_probe(e, e->tab.i_slots, e->tab.i_mask, 24, intent_id, ck_intent_key) : NULL;
    if (slot) {
        uint64_t at = mmfs__ld64(slot + 8) - 1, cnt = mmfs__ld64(slot + 16);
        if (cnt <= e->tab.i_n - at) { /* at < i_n: ck_intent_key checked it */
            w.p = e->tab.i_recs + 8 * at;
            w.n = (size_t)cnt;
        }
    }
    int rc = merge_list(e, &w, nw, n, limit, "list_by_intent", out);
    free(nw);
    return rc;
}
