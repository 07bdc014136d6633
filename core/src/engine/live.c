/*
** live.c: which records of the log the engine still needs, asked by
** compaction (compact_copy.c) for each record it reads.  Each type's
** answer is the LIVE column of record.h's table: deletes NEVER (what they
** deleted is gone from the compacted log, so nothing is left for them to
** delete), stream chunks ALWAYS, and every other type CUR(fn): live while
** the engine's current record for its target is that very record (same
** LSN).  The fn below give that current record: the live MEMORY of an id,
** the latest KV_SET of a key (the checkpoint's too), the current
** SESSION_PUT of an id and DOC_INDEX of a key, the latest STATE, and the
** latest POLICY unless it removed the policy.
**
** Invariant: the records counted live here are exactly those counted in
** the engine's live_bytes (engine.h), so stats' dead_bytes is what a
** compaction would reclaim before ttl and keep forget anything.
*/
#include "engine.h"

static const uint8_t *cur_memory(const mmfs__engine *e, const mmfs__rec *r) {
    mmfs__rec m;
    return mmfs__engine_get_memory(e, r->u.mem.id, &m) == MMFS_OK ? m.raw : NULL;
}

static const uint8_t *cur_kv(const mmfs__engine *e, const mmfs__rec *r) {
    return mmfs__kv_find(e, r->u.kv.key);
}

static const uint8_t *cur_session(const mmfs__engine *e, const mmfs__rec *r) {
    return mmfs__sess_find(e, r->u.sess.id);
}

static const uint8_t *cur_doc(const mmfs__engine *e, const mmfs__rec *r) {
    return mmfs__doc_find(e, r->u.doc.key);
}

static const uint8_t *cur_state(const mmfs__engine *e, const mmfs__rec *r) {
    (void)r;
    return e->state.raw;
}

/* An empty POLICY removed the policy: nothing to keep. */
static const uint8_t *cur_policy(const mmfs__engine *e, const mmfs__rec *r) {
    return r->u.policy.source.len ? e->policy : NULL;
}

static uint64_t lsn_of(const uint8_t *raw) { return raw ? mmfs__raw_lsn(raw) : 0; }

#define LIVE_NEVER 0
#define LIVE_ALWAYS 1
#define LIVE_CUR(fn) (lsn_of(fn(e, r)) == r->lsn)
#define LIVE_CASE(N, code, role, C, m, F, D, apply, L)                                             \
    case MMFS__R_##N:                                                                              \
        return LIVE_##L;

int mmfs__engine_is_live(const mmfs__engine *e, const mmfs__rec *r) {
    switch (r->type) {
        MMFS__RECORDS(LIVE_CASE)
    default:
        return 0; /* a type this engine does not know */
    }
}
