/*
** engine.c: the in-memory engine's life cycle (new, free), the dispatch of
** applied records to the modules (kv.c, memory.c, session.c, stream.c,
** state.c), the counts for mmfs_stats, and the helpers the modules share
** (record decoding, the record key of a map, array growth).  The ordered
** index they use is base/btree.c.
*/
#include "engine.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

int mmfs__raw_decode(const uint8_t *raw, mmfs__rec *r) {
    if (mmfs__rec_decode(raw, mmfs__raw_len(raw), r) != MMFS_OK)
        return mmfs__err(MMFS_CORRUPT, "engine: record at lsn %llu does not decode",
                         (unsigned long long)mmfs__raw_lsn(raw));
    return MMFS_OK;
}

mmfs_slice mmfs__hkey_raw(const void *ctx, uintptr_t v) {
    (void)ctx;
    return mmfs__raw_key((const uint8_t *)v);
}

int mmfs__grow(void **arr, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return MMFS_OK;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / size) return mmfs__err(MMFS_NOMEM, "engine: array too large");
        ncap *= 2;
    }
    void *p = realloc(*arr, ncap * size);
    if (!p) return mmfs__err(MMFS_NOMEM, "engine: cannot grow an array to %zu entries", ncap);
    *arr = p;
    *cap = ncap;
    return MMFS_OK;
}

/* ------------------------------------------------------------- engine */

int mmfs__engine_new(mmfs__engine **out) {
    if (!out) return mmfs__err(MMFS_INVALID, "engine_new: out is NULL");
    *out = NULL;
    mmfs__engine *e = calloc(1, sizeof *e);
    if (!e) return mmfs__err(MMFS_NOMEM, "engine: out of memory");
    int rc = mmfs__state_init(e);
    if (rc) {
        free(e);
        return rc;
    }
    if ((rc = mmfs__kv_init(e)) || (rc = mmfs__mem_init(e)) || (rc = mmfs__sess_init(e)) ||
        (rc = mmfs__stream_init(e))) {
        mmfs__engine_free(e);
        return rc;
    }
    *out = e;
    return MMFS_OK;
}

void mmfs__engine_free(mmfs__engine *e) {
    if (!e) return;
    mmfs__kv_free(e);
    mmfs__mem_free(e);
    mmfs__sess_free(e);
    mmfs__stream_free(e);
    mmfs__state_free(e);
    mmfs__ztext_free(e);
    free(e);
}

int mmfs__engine_retire(mmfs__engine *e) {
    /* No new subscription or drain can come: both start under the read
    ** side (store/), and E is out of reach of the next one.  A drain
    ** still inside keeps all of E, until a later retire. */
    if (atomic_load_explicit(&e->drainers, memory_order_acquire)) return 1;
    pthread_mutex_lock(&e->state.mu);
    int subs = e->state.subs != NULL;
    pthread_mutex_unlock(&e->state.mu);
    if (!subs) {
        mmfs__engine_free(e);
        return 0;
    }
    /* The heavy parts go now; each free leaves its module as new (zero),
    ** so the final mmfs__engine_free frees nothing twice. */
    mmfs__kv_free(e);
    mmfs__mem_free(e);
    mmfs__sess_free(e);
    mmfs__stream_free(e);
    memset(&e->kv, 0, sizeof e->kv);
    memset(&e->mems, 0, sizeof e->mems);
    memset(&e->docs, 0, sizeof e->docs);
    memset(&e->sess, 0, sizeof e->sess);
    memset(&e->streams, 0, sizeof e->streams);
    e->policy = NULL;
    return 1;
}

/* The latest POLICY record is in force; an empty source removes the
** policy, and such a record is not needed once applied. */
static int policy_apply(mmfs__engine *e, const mmfs__rec *r) {
    if (e->policy && mmfs__ld32(e->policy + MMFS__REC_HDR) > 0)
        e->live_bytes -= mmfs__raw_len(e->policy);
    e->policy = r->raw;
    if (r->u.policy.source.len) e->live_bytes += r->raw_len;
    return MMFS_OK;
}

void mmfs__engine_policy(const mmfs__engine *e, mmfs_slice *source, uint64_t *lsn) {
    mmfs__rec r;
    source->ptr = NULL;
    source->len = 0;
    *lsn = 0;
    if (!e->policy || mmfs__raw_decode(e->policy, &r) != MMFS_OK || !r.u.policy.source.len) return;
    *source = r.u.policy.source;
    *lsn = r.lsn;
}

/* Each type goes to its apply function (record.h's table). */
#define APPLY_CASE(N, code, role, C, m, F, D, apply, ...)                                         \
    case MMFS__R_##N:                                                                              \
        return apply(e, r);

int mmfs__engine_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs_assert(r->raw != NULL, "engine_apply: record without raw bytes");
    mmfs_assert(r->raw_len == mmfs__raw_len(r->raw), "engine_apply: raw_len mismatch");
    mmfs_assert(r->lsn == mmfs__raw_lsn(r->raw), "engine_apply: lsn mismatch");
    switch (r->type) {
        MMFS__RECORDS(APPLY_CASE)
    default:
        return MMFS_OK; /* a type this engine does not know: nothing to apply */
    }
}

void mmfs__engine_stats(const mmfs__engine *e, mmfs_store_stats *st) {
    st->memories = e->mems.live;
    st->kv = e->kv.live;
    st->sessions = e->sess.live;
    st->streams = e->tab.t_n + e->streams_new;
    st->documents = e->docs.live;
    st->live_bytes = e->live_bytes;
    st->state_version = e->state.version;
    st->checkpoint_dropped = (uint64_t)mmfs__ckf_bad(e->kv.ck.ckf);
    /* the index is ixlock's (a damaged segment makes the drain replace it) */
    pthread_rwlock_t *ixl = (pthread_rwlock_t *)&e->mems.ixlock;
    pthread_rwlock_rdlock(ixl);
    st->index_segments = mmfs__index_segments(e->mems.ix);
    pthread_rwlock_unlock(ixl);
}
