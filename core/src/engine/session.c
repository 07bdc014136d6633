/*
** session.c: sessions in the engine, and what their public reads find
** in it (the public functions, with their locking: store/read_session.c).
**
** Invariants: map (id -> SESSION_PUT record), by_time and the intents'
** lists hold the same records: the current put of each id not deleted
** since.  by_time orders them by created_at desc, then LSN desc (a later
** put first on a tie).  An intent exists while it has a session; its name
** is a slice into one of its records.  A session costs one hash slot, one
** B+tree entry and, with an intent, one pointer in its list; no copies.
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
    e->live_bytes -= mmfs__raw_len(raw);
}

int mmfs__sess_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs_slice id = r->u.sess.id;
    mmfs_assert(mmfs__slice_eq(id, mmfs__raw_key(r->raw)), "session: id is not the first field");
    uint64_t h = mmfs__hash(id);
    const uint8_t *old = (const uint8_t *)mmfs__hmap_get(&e->sess.map, id, h);
    if (r->type == MMFS__R_SESSION_DEL) {
        if (!old) return MMFS_OK;
        mmfs__hmap_del(&e->sess.map, id, h);
        sess_unlink(e, old);
        return MMFS_OK;
    }
    mmfs_assert(r->u.sess.created_at == mmfs__raw_sess_created(r->raw), "session: created_at");
    int rc;
    if (!old && (rc = mmfs__hmap_reserve(&e->sess.map, 1))) return rc;
    struct sess_key k = {r->u.sess.created_at, r->lsn};
    if ((rc = mmfs__bt_put(&e->sess.by_time, &k, r->raw, NULL))) return rc;
    if (r->u.sess.has_intent && (rc = intent_add(e, r->u.sess.intent_id, r->raw))) {
        mmfs__bt_del(&e->sess.by_time, &k);
        return rc;
    }
    if (old) sess_unlink(e, old);
    mmfs__hmap_put(&e->sess.map, id, h, (uintptr_t)r->raw, NULL); /* cannot fail now */
    e->live_bytes += r->raw_len;
    return MMFS_OK;
}

int mmfs__engine_has_session(const mmfs__engine *e, mmfs_slice id) {
    return mmfs__hmap_get(&e->sess.map, id, mmfs__hash(id)) != 0;
}

int mmfs__engine_get_session(const mmfs__engine *e, mmfs_slice id, mmfs__rec *rec) {
    const uint8_t *raw = (const uint8_t *)mmfs__hmap_get(&e->sess.map, id, mmfs__hash(id));
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

int mmfs__sess_get(const mmfs__engine *e, mmfs_slice id, mmfs_session *out) {
    const uint8_t *raw = (const uint8_t *)mmfs__hmap_get(&e->sess.map, id, mmfs__hash(id));
    return raw ? sess_fill(out, raw) : mmfs__err(MMFS_NOTFOUND, "get_session: no such session");
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

int mmfs__sess_list(const mmfs__engine *e, size_t limit, mmfs_sessions **out) {
    int rc;
    size_t n = e->sess.by_time.count;
    if (limit && limit < n) n = limit;
    const uint8_t **recs = malloc((n ? n : 1) * sizeof *recs);
    if (!recs) {
        rc = mmfs__err(MMFS_NOMEM, "list_sessions: out of memory");
    } else {
        mmfs__bt_pos pos;
        size_t i = 0;
        for (const uint8_t *raw = mmfs__bt_first(&e->sess.by_time, &pos); raw && i < n;
             raw = mmfs__bt_next(&pos))
            recs[i++] = raw;
        rc = sess_list(recs, i, out);
    }
    free(recs);
    return rc;
}

int mmfs__sess_by_intent(const mmfs__engine *e, mmfs_slice intent_id, size_t limit, mmfs_sessions **out) {
    int rc;
    const mmfs__intent *in =
        (const mmfs__intent *)mmfs__hmap_get(&e->sess.intents, intent_id, mmfs__hash(intent_id));
    size_t n = in ? in->n : 0;
    const uint8_t **recs = malloc((n ? n : 1) * sizeof *recs);
    if (!recs) {
        rc = mmfs__err(MMFS_NOMEM, "list_by_intent: out of memory");
    } else {
        if (n) memcpy(recs, in->recs, n * sizeof *recs);
        qsort(recs, n, sizeof *recs, sess_qcmp);
        rc = sess_list(recs, limit && limit < n ? limit : n, out);
    }
    free(recs);
    return rc;
}
