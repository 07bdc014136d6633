/*
** ckpt_tables.c: a checkpoint's sessions, streams and documents (format
** 3, section 15; docs/format.md): what the snapshot copies of them under
** the engine's read side, the tables it makes after (merged with the
** mapped checkpoint's), writing them, and checking and attaching them at
** open (the engine reads them through mmap: session.c, stream.c,
** memory.c, over tabck.c).
**
** Section 15 starts with a directory: u64 the number of tables (NTAB),
** then per table (u64 file offset, u64 count), then the tables, each
** 8-aligned:
**   0 S_SLOTS  (u64 hash, u64 pos): session id -> its SESSION_PUT
**   1 S_TIME   u64 pos: the sessions by created_at desc, then LSN desc
**   2 I_SLOTS  (u64 hash, u64 at + 1, u64 n): intent -> I_RECS[at, at + n)
**   3 I_RECS   u64 pos: the sessions with an intent, by intent, then time
**   4 T_SLOTS  (u64 hash, u64 index + 1): stream key -> T_ENTS entry
**   5 T_ENTS   (u64 first pos, u64 size, u64 chunk at, u64 nchunks)
**   6 T_CHUNKS (u64 pos, u64 start): the STREAM_APPEND holding the bytes
**              [start, next start) (the last: up to size) of a stream
**   7 D_SLOTS  (u64 hash, u64 index + 1): document key -> D_RECS entry
**   8 D_RECS   u64 pos: the live DOC_INDEX records, in log order
** Slot tables: XXH3-64 of the key, linear probing, a power-of-two count
** of slots (0 when the table is empty), load <= 0.5.
**
** Invariants:
** - The snapshot holds pointers into the log and the mapped checkpoint,
**   never copies of records; only what changed since the checkpoint is
**   copied under the lock (its size is the changes', not the store's),
**   the mapped tables are read after it (they do not change).
** - Open reads only the directory (its block checked): the tables are
**   checked a block at a time when first read, as sections 2 and 3.
*/
#include "ckpt.h"

#include <stdlib.h>
#include <string.h>

enum { T_SSLOTS, T_STIME, T_ISLOTS, T_IRECS, T_TSLOTS, T_TENTS, T_TCHUNKS, T_DSLOTS, T_DRECS, NTAB };
static const size_t tab_esz[NTAB] = {16, 8, 24, 8, 16, 32, 16, 16, 8};
#define DIR_LEN (8 + 16 * NTAB)

/* A stream as the snapshot copies it from the engine's heap. */
struct hstream {
    mmfs_slice name;
    const uint8_t *first; /* its first record (NULL: the checkpoint's ck_first) */
    uint64_t ck_first, ck_at, ck_n, ck_size, size;
    size_t at, n; /* its newer chunks: hraw/hstart[at, at + n) */
};

/* A stream as the file holds it. */
struct ostream {
    const uint8_t *first;
    uint64_t size;
    size_t at, n; /* craw/cstart[at, at + n) */
};

struct cktab {
    const mmfs__engine *e;
    /* Copied under the lock. */
    const uint8_t **sx; /* every newer session record (puts and deletes) */
    size_t nsx, sxcap;
    struct hstream *hs;
    size_t nhs, hscap;
    const uint8_t **hraw;
    uint64_t *hstart;
    size_t nh, hcap, hstartcap;
    const uint8_t **dnew; /* the newer live documents, by docno */
    size_t ndnew, dnewcap;
    uint8_t *ck_dead;
    /* Made after it. */
    const uint8_t **time; /* live sessions by time */
    size_t ntime, timecap;
    struct irec {
        const uint8_t *raw;
        mmfs_slice intent;
        size_t rank; /* its index in time */
    } *irecs; /* the sessions with an intent, by intent then time */
    size_t nirecs;
    size_t nintents;
    struct ostream *os;
    size_t nos, oscap;
    const uint8_t **craw;
    uint64_t *cstart;
    size_t nc, ccap, cstartcap;
    const uint8_t **docs;
    size_t ndocs, docscap;
    uint64_t cnt[NTAB];
};

static int push(const uint8_t ***arr, size_t *n, size_t *cap, const uint8_t *raw) {
    void *a = *arr;
    int rc = mmfs__grow(&a, cap, *n + 1, sizeof **arr);
    if (rc) return rc;
    *arr = a;
    (*arr)[(*n)++] = raw;
    return MMFS_OK;
}

/* Appends a chunk (RAW, START) to *RAWS / *STARTS (N, capacities). */
static int push_chunk(const uint8_t ***raws, uint64_t **starts, size_t *n, size_t *cap, size_t *scap,
                      const uint8_t *raw, uint64_t start) {
    size_t n0 = *n;
    int rc = push(raws, n, cap, raw);
    if (rc) return rc;
    void *a = *starts;
    if ((rc = mmfs__grow(&a, scap, n0 + 1, sizeof **starts))) {
        *n = n0;
        return rc;
    }
    *starts = a;
    (*starts)[n0] = start;
    return MMFS_OK;
}

void mmfs__ckpt_tables_free(snap *s) {
    struct cktab *t = s->tab;
    if (!t) return;
    free(t->sx);
    free(t->hs);
    free(t->hraw);
    free(t->hstart);
    free(t->dnew);
    free(t->ck_dead);
    free(t->time);
    free(t->irecs);
    free(t->os);
    free(t->craw);
    free(t->cstart);
    free(t->docs);
    free(t);
    s->tab = NULL;
}

/* ------------------------------------------------------ under the lock */

int mmfs__ckpt_tables_take(const mmfs__engine *e, snap *s) {
    struct cktab *t = calloc(1, sizeof *t);
    if (!t) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
    s->tab = t;
    t->e = e;
    int rc = MMFS_OK;
    const mmfs__hmap *h = &e->sess.map;
    for (size_t i = 0; h->slots && i <= h->mask && rc == MMFS_OK; i++)
        if (h->slots[i].val) rc = push(&t->sx, &t->nsx, &t->sxcap, (const uint8_t *)h->slots[i].val);
    h = &e->streams;
    for (size_t i = 0; h->slots && i <= h->mask && rc == MMFS_OK; i++) {
        const mmfs__stream *st = (const mmfs__stream *)h->slots[i].val;
        if (!st) continue;
        void *a = t->hs;
        if ((rc = mmfs__grow(&a, &t->hscap, t->nhs + 1, sizeof *t->hs))) break;
        t->hs = a;
        struct hstream *hs = &t->hs[t->nhs++];
        memset(hs, 0, sizeof *hs);
        hs->name = st->name;
        hs->ck_first = st->ck_first;
        hs->ck_at = st->ck_at;
        hs->ck_n = st->ck_n;
        hs->ck_size = st->ck_size;
        hs->size = st->size;
        /* Not in the checkpoint: the name points into the stream's first
        ** record (header, str key). */
        if (!st->ck_first) {
            hs->first = (const uint8_t *)st->name.ptr - MMFS__REC_HDR - 4;
            mmfs_assert(hs->first[4] == MMFS__R_STREAM_APPEND, "ckpt: a stream name outside its record");
        }
        hs->at = t->nh;
        /* a chunk points at the bytes of its STREAM_APPEND (header, str
        ** key, u32 length, bytes) */
        for (size_t c = 0; c < st->n && rc == MMFS_OK; c++) {
            const uint8_t *raw = st->chunks[c].ptr - MMFS__REC_HDR - 8 - st->name.len;
            mmfs_assert(raw[4] == MMFS__R_STREAM_APPEND, "ckpt: a chunk outside its record");
            rc = push_chunk(&t->hraw, &t->hstart, &t->nh, &t->hcap, &t->hstartcap, raw, st->chunks[c].start);
        }
        hs->n = t->nh - hs->at;
    }
    const mmfs__docs *d = &e->docs;
    for (size_t i = d->ck_n + 1; i < d->next && rc == MMFS_OK; i++)
        if (d->recs[i - d->ck_n]) rc = push(&t->dnew, &t->ndnew, &t->dnewcap, d->recs[i - d->ck_n]);
    if (rc == MMFS_OK && d->ck_dead) {
        if (!(t->ck_dead = malloc((d->ck_n + 7) / 8))) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
        memcpy(t->ck_dead, d->ck_dead, (d->ck_n + 7) / 8);
    }
    return rc;
}

/* ------------------------------------------------------- after the lock */

static int damaged(void) {
    return mmfs__err(MMFS_CORRUPT, "checkpoint: the mapped checkpoint is damaged (reopen to read from the log)");
}

static int cmp_key(const void *a, const void *b) {
    return mmfs__slice_cmp(mmfs__raw_key(*(const uint8_t *const *)a), mmfs__raw_key(*(const uint8_t *const *)b));
}

/* Session order: created_at desc, then LSN desc. */
static int sess_before(const uint8_t *a, const uint8_t *b) {
    int64_t ca = mmfs__raw_sess_created(a), cb = mmfs__raw_sess_created(b);
    if (ca != cb) return ca > cb;
    return mmfs__raw_lsn(a) > mmfs__raw_lsn(b);
}

static int cmp_time(const void *a, const void *b) {
    const uint8_t *x = *(const uint8_t *const *)a, *y = *(const uint8_t *const *)b;
    return sess_before(x, y) ? -1 : sess_before(y, x) ? 1 : 0;
}

/* By intent, then time. */
static int cmp_intent(const void *a, const void *b) {
    const struct irec *x = a, *y = b;
    int c = mmfs__slice_cmp(x->intent, y->intent);
    return c ? c : (x->rank > y->rank) - (x->rank < y->rank);
}

/* 1 if a record with KEY is among the sorted records V[0, N). */
static int has_key(const uint8_t *const *v, size_t n, mmfs_slice key) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = mmfs__slice_cmp(mmfs__raw_key(v[mid]), key);
        if (c == 0) return 1;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

static int merge_sessions(struct cktab *t) {
    const mmfs__engine *e = t->e;
    if (t->nsx) qsort(t->sx, t->nsx, sizeof *t->sx, cmp_key);
    const uint8_t **nw = malloc((t->nsx ? t->nsx : 1) * sizeof *nw);
    if (!nw) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
    size_t nn = 0;
    for (size_t i = 0; i < t->nsx; i++)
        if (t->sx[i][4] == MMFS__R_SESSION_PUT) nw[nn++] = t->sx[i];
    if (nn) qsort(nw, nn, sizeof *nw, cmp_time);
    int rc = MMFS_OK;
    size_t ci = 0, j = 0;
    const uint8_t *c = NULL;
    for (;;) {
        while (!c && ci < e->tab.s_n) {
            int ok = 1;
            uint64_t pos = mmfs__tabck_u64(e, e->tab.s_time + 8 * ci++, &ok);
            if (!ok || !(c = mmfs__tabck_rec(e, pos, MMFS__R_SESSION_PUT, NULL))) {
                rc = damaged();
                goto out;
            }
            if (has_key(t->sx, t->nsx, mmfs__raw_key(c))) c = NULL; /* hidden */
        }
        const uint8_t *d = j < nn ? nw[j] : NULL;
        if (!c && !d) break;
        const uint8_t *r = d && (!c || sess_before(d, c)) ? d : c;
        if (r == d) j++;
        else c = NULL;
        if ((rc = push(&t->time, &t->ntime, &t->timecap, r))) goto out;
    }
    if (!(t->irecs = malloc((t->ntime ? t->ntime : 1) * sizeof *t->irecs))) {
        rc = mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->ntime; i++) {
        mmfs__rec r;
        if ((rc = mmfs__raw_decode(t->time[i], &r))) goto out;
        if (r.u.sess.has_intent) t->irecs[t->nirecs++] = (struct irec){t->time[i], r.u.sess.intent_id, i};
    }
    if (t->nirecs) qsort(t->irecs, t->nirecs, sizeof *t->irecs, cmp_intent);
out:
    free(nw);
    return rc;
}

static int cmp_hs(const void *a, const void *b) {
    return mmfs__slice_cmp(((const struct hstream *)a)->name, ((const struct hstream *)b)->name);
}

/* The heap copy of the stream NAME, or NULL. */
static const struct hstream *find_hs(const struct cktab *t, mmfs_slice name) {
    size_t lo = 0, hi = t->nhs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = mmfs__slice_cmp(t->hs[mid].name, name);
        if (c == 0) return &t->hs[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Adds a stream to the file's list: its first record FIRST (or the
** checkpoint's at FIRST_POS), the checkpoint's chunks [AT, AT + N), then
** the heap's HS (may be NULL), SIZE bytes in all. */
static int add_stream(struct cktab *t, const uint8_t *first, uint64_t first_pos, uint64_t at, uint64_t n,
                      const struct hstream *hs, uint64_t size) {
    const mmfs__engine *e = t->e;
    if (!first && !(first = mmfs__tabck_rec(e, first_pos, MMFS__R_STREAM_APPEND, NULL))) return damaged();
    void *a = t->os;
    int rc = mmfs__grow(&a, &t->oscap, t->nos + 1, sizeof *t->os);
    if (rc) return rc;
    t->os = a;
    struct ostream *o = &t->os[t->nos++];
    o->first = first;
    o->size = size;
    o->at = t->nc;
    if (at > e->tab.t_nchunks || n > e->tab.t_nchunks - at) return damaged();
    for (uint64_t i = 0; i < n && rc == MMFS_OK; i++) {
        const uint8_t *p = e->tab.t_chunks + 16 * (at + i);
        const uint8_t *raw;
        if (!mmfs__ckf_ok(e->kv.ck.ckf, p, 16) ||
            !(raw = mmfs__tabck_rec(e, mmfs__ld64(p), MMFS__R_STREAM_APPEND, NULL)))
            return damaged();
        rc = push_chunk(&t->craw, &t->cstart, &t->nc, &t->ccap, &t->cstartcap, raw, mmfs__ld64(p + 8));
    }
    for (size_t i = 0; hs && i < hs->n && rc == MMFS_OK; i++)
        rc = push_chunk(&t->craw, &t->cstart, &t->nc, &t->ccap, &t->cstartcap, t->hraw[hs->at + i],
                        t->hstart[hs->at + i]);
    o->n = t->nc - o->at;
    return rc;
}

static int merge_streams(struct cktab *t) {
    const mmfs__engine *e = t->e;
    if (t->nhs) qsort(t->hs, t->nhs, sizeof *t->hs, cmp_hs);
    int rc = MMFS_OK;
    /* The checkpoint's streams not appended to since, as they are. */
    for (size_t i = 0; i < e->tab.t_n && rc == MMFS_OK; i++) {
        const uint8_t *p = e->tab.t_ents + 32 * i;
        if (!mmfs__ckf_ok(e->kv.ck.ckf, p, 32)) return damaged();
        const uint8_t *first = mmfs__tabck_rec(e, mmfs__ld64(p), MMFS__R_STREAM_APPEND, NULL);
        if (!first) return damaged();
        if (find_hs(t, mmfs__raw_key(first))) continue;
        rc = add_stream(t, first, 0, mmfs__ld64(p + 16), mmfs__ld64(p + 24), NULL, mmfs__ld64(p + 8));
    }
    /* The others: the checkpoint's part, if any, then the newer chunks. */
    for (size_t i = 0; i < t->nhs && rc == MMFS_OK; i++) {
        const struct hstream *hs = &t->hs[i];
        rc = add_stream(t, hs->first, hs->ck_first, hs->ck_at, hs->ck_first ? hs->ck_n : 0, hs, hs->size);
    }
    return rc;
}

static int merge_docs(struct cktab *t) {
    const mmfs__engine *e = t->e;
    int rc = MMFS_OK;
    /* The checkpoint's live ones come first in log order, then the newer
    ** ones by docno (their log order): the file keeps that order, so a
    ** store reopened from it gives the same docnos' order. */
    for (uint64_t i = 0; i < e->tab.d_n && rc == MMFS_OK; i++) {
        if (t->ck_dead && (t->ck_dead[i >> 3] >> (i & 7) & 1)) continue;
        int ok = 1;
        uint64_t pos = mmfs__tabck_u64(e, e->tab.d_recs + 8 * i, &ok);
        const uint8_t *raw = ok ? mmfs__tabck_rec(e, pos, MMFS__R_DOC_INDEX, NULL) : NULL;
        if (!raw) return damaged();
        rc = push(&t->docs, &t->ndocs, &t->docscap, raw);
    }
    for (size_t i = 0; i < t->ndnew && rc == MMFS_OK; i++) rc = push(&t->docs, &t->ndocs, &t->docscap, t->dnew[i]);
    return rc;
}

/* The count of slots for N keys: load <= 0.5. */
static uint64_t slots_for(size_t n) {
    if (!n) return 0;
    uint64_t k = 16;
    while (k < 2 * (uint64_t)n) k *= 2;
    return k;
}

int mmfs__ckpt_tables_merge(snap *s) {
    struct cktab *t = s->tab;
    int rc = merge_sessions(t);
    if (rc == MMFS_OK) rc = merge_streams(t);
    if (rc == MMFS_OK) rc = merge_docs(t);
    if (rc) return rc;
    for (size_t i = 0; i < t->nirecs; i++)
        if (!i || !mmfs__slice_eq(t->irecs[i].intent, t->irecs[i - 1].intent)) t->nintents++;
    uint64_t c[NTAB] = {slots_for(t->ntime), t->ntime, slots_for(t->nintents), t->nirecs, slots_for(t->nos),
                        t->nos, t->nc, slots_for(t->ndocs), t->ndocs};
    memcpy(t->cnt, c, sizeof c);
    return MMFS_OK;
}

size_t mmfs__ckpt_tables_size(const snap *s) {
    size_t n = DIR_LEN;
    for (int k = 0; k < NTAB; k++) n += (size_t)s->tab->cnt[k] * tab_esz[k];
    return (n + 7) & ~(size_t)7;
}

/* Puts (H, V, W) into the slot table at P (MASK + 1 slots of ESZ bytes). */
static void slot_put(uint8_t *p, uint64_t mask, size_t esz, uint64_t h, uint64_t v, uint64_t w) {
    uint64_t j = h & mask;
    while (mmfs__ld64(p + esz * j + 8)) j = (j + 1) & mask;
    mmfs__st64(p + esz * j, h);
    mmfs__st64(p + esz * j + 8, v);
    if (esz > 16) mmfs__st64(p + esz * j + 16, w);
}

int mmfs__ckpt_tables_put(snap *s, uint8_t *b, uint64_t off) {
    struct cktab *t = s->tab;
    uint8_t *at[NTAB];
    uint64_t o = off + DIR_LEN;
    mmfs__st64(b + off, NTAB);
    for (int k = 0; k < NTAB; k++) {
        mmfs__st64(b + off + 8 + 16 * k, o);
        mmfs__st64(b + off + 16 + 16 * k, t->cnt[k]);
        at[k] = b + o;
        o += t->cnt[k] * tab_esz[k];
    }
    uint64_t pos;
#define POS_OR_FAIL(raw)                                                                             \
    do {                                                                                             \
        if (!(pos = mmfs__ckpt_pos_of(s, (raw))))                                                    \
            return mmfs__err(MMFS_CORRUPT, "checkpoint: a record outside the log");                  \
    } while (0)
    for (size_t i = 0; i < t->ntime; i++) {
        POS_OR_FAIL(t->time[i]);
        mmfs__st64(at[T_STIME] + 8 * i, pos);
        slot_put(at[T_SSLOTS], t->cnt[T_SSLOTS] - 1, 16, mmfs__hash(mmfs__raw_key(t->time[i])), pos, 0);
    }
    for (size_t i = 0; i < t->nirecs;) {
        mmfs_slice intent = t->irecs[i].intent;
        size_t j = i;
        for (; j < t->nirecs && mmfs__slice_eq(t->irecs[j].intent, intent); j++) {
            POS_OR_FAIL(t->irecs[j].raw);
            mmfs__st64(at[T_IRECS] + 8 * j, pos);
        }
        slot_put(at[T_ISLOTS], t->cnt[T_ISLOTS] - 1, 24, mmfs__hash(intent), i + 1, j - i);
        i = j;
    }
    for (size_t i = 0; i < t->nos; i++) {
        const struct ostream *os = &t->os[i];
        uint8_t *p = at[T_TENTS] + 32 * i;
        POS_OR_FAIL(os->first);
        mmfs__st64(p, pos);
        mmfs__st64(p + 8, os->size);
        mmfs__st64(p + 16, os->at);
        mmfs__st64(p + 24, os->n);
        slot_put(at[T_TSLOTS], t->cnt[T_TSLOTS] - 1, 16, mmfs__hash(mmfs__raw_key(os->first)), i + 1, 0);
    }
    for (size_t i = 0; i < t->nc; i++) {
        POS_OR_FAIL(t->craw[i]);
        mmfs__st64(at[T_TCHUNKS] + 16 * i, pos);
        mmfs__st64(at[T_TCHUNKS] + 16 * i + 8, t->cstart[i]);
    }
    for (size_t i = 0; i < t->ndocs; i++) {
        POS_OR_FAIL(t->docs[i]);
        mmfs__st64(at[T_DRECS] + 8 * i, pos);
        slot_put(at[T_DSLOTS], t->cnt[T_DSLOTS] - 1, 16, mmfs__hash(mmfs__raw_key(t->docs[i])), i + 1, 0);
    }
#undef POS_OR_FAIL
    return MMFS_OK;
}

/* ----------------------------------------------------------------- open */

int mmfs__ckpt_tables_load(mmfs__engine *e, const uint8_t *b, uint64_t body_end) {
    uint64_t off = mmfs__ld64(b + H_TABLES), len = mmfs__ld64(b + H_TABLES_LEN);
    if (off % 8 || off < CK_HDR || off > body_end || len > body_end - off || len < DIR_LEN ||
        !mmfs__ckf_ok(e->kv.ck.ckf, b + off, DIR_LEN) || mmfs__ld64(b + off) != NTAB)
        return MMFS_CORRUPT;
    const uint8_t *p[NTAB];
    uint64_t c[NTAB];
    for (int k = 0; k < NTAB; k++) {
        uint64_t o = mmfs__ld64(b + off + 8 + 16 * k);
        c[k] = mmfs__ld64(b + off + 16 + 16 * k);
        if (o % 8 || o < off + DIR_LEN || o > off + len || c[k] > (off + len - o) / tab_esz[k]) return MMFS_CORRUPT;
        p[k] = b + o;
    }
    /* Slot tables: a power of two, at least twice their keys (so a probe
    ** meets an empty slot); the lists as long as their tables say. */
    const int slots[] = {T_SSLOTS, T_ISLOTS, T_TSLOTS, T_DSLOTS};
    for (int i = 0; i < 4; i++)
        if (c[slots[i]] & (c[slots[i]] - 1)) return MMFS_CORRUPT;
    if (c[T_SSLOTS] < 2 * c[T_STIME] || (c[T_STIME] && !c[T_SSLOTS]) || c[T_IRECS] > c[T_STIME] ||
        (c[T_IRECS] && !c[T_ISLOTS]) ||
        c[T_TSLOTS] < 2 * c[T_TENTS] || (c[T_TENTS] && !c[T_TSLOTS]) || c[T_DSLOTS] < 2 * c[T_DRECS] ||
        (c[T_DRECS] && !c[T_DSLOTS]) || c[T_DRECS] >= UINT32_MAX / 2)
        return MMFS_CORRUPT;
    mmfs__tabck tab;
    memset(&tab, 0, sizeof tab);
    if (c[T_STIME]) {
        tab.s_slots = p[T_SSLOTS];
        tab.s_mask = (size_t)c[T_SSLOTS] - 1;
        tab.s_time = p[T_STIME];
        tab.s_n = (size_t)c[T_STIME];
    }
    if (c[T_IRECS]) {
        tab.i_slots = p[T_ISLOTS];
        tab.i_mask = (size_t)c[T_ISLOTS] - 1;
        tab.i_recs = p[T_IRECS];
        tab.i_n = (size_t)c[T_IRECS];
    }
    if (c[T_TENTS]) {
        tab.t_slots = p[T_TSLOTS];
        tab.t_mask = (size_t)c[T_TSLOTS] - 1;
        tab.t_ents = p[T_TENTS];
        tab.t_n = (size_t)c[T_TENTS];
        tab.t_chunks = p[T_TCHUNKS];
        tab.t_nchunks = (size_t)c[T_TCHUNKS];
    }
    if (c[T_DRECS]) {
        tab.d_slots = p[T_DSLOTS];
        tab.d_mask = (size_t)c[T_DSLOTS] - 1;
        tab.d_recs = p[T_DRECS];
        tab.d_n = (size_t)c[T_DRECS];
    }
    return mmfs__tabck_attach(e, &tab);
}
