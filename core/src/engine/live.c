/*
** live.c: which records of the log the engine still needs, asked by
** compaction (compact.c) for each record it reads.  A record is live when
** the engine's current entry for its target is that very record (same
** LSN): the latest KV_SET of a key, a memory not deleted, the current
** SESSION_PUT of an id and DOC_INDEX of a key, the latest STATE, the
** latest POLICY unless it removed the policy, and every STREAM_APPEND.
** Deletes are never live: what they deleted is gone from the compacted
** log, so nothing is left for them to delete.
**
** Invariant: the records counted live here are exactly those counted in
** the engine's live_bytes (engine.h), so stats' dead_bytes is what a
** compaction would reclaim before ttl and keep forget anything.
*/
#include "engine.h"

static uint64_t lsn_of(const uint8_t *raw) { return raw ? mmfs__raw_lsn(raw) : 0; }

int mmfs__engine_is_live(const mmfs__engine *e, const mmfs__rec *r) {
    switch (r->type) {
    case MMFS__R_MEMORY: {
        mmfs__rec m;
        return mmfs__engine_get_memory(e, r->u.mem.id, &m) == MMFS_OK && m.lsn == r->lsn;
    }
    case MMFS__R_KV_SET: {
        mmfs_slice key = r->u.kv.key;
        return lsn_of(mmfs__kv_find(e, key)) == r->lsn; /* the checkpoint's too */
    }
    case MMFS__R_SESSION_PUT: {
        mmfs_slice id = r->u.sess.id;
        return lsn_of((const uint8_t *)mmfs__hmap_get(&e->sess.map, id, mmfs__hash(id))) == r->lsn;
    }
    case MMFS__R_DOC_INDEX: {
        mmfs_slice key = r->u.doc.key;
        uintptr_t docno = mmfs__hmap_get(&e->docs.map, key, mmfs__hash(key));
        return docno && lsn_of(e->docs.recs[docno]) == r->lsn;
    }
    case MMFS__R_STREAM_APPEND:
        return 1;
    case MMFS__R_STATE:
        return lsn_of(e->state.raw) == r->lsn;
    case MMFS__R_POLICY:
        return r->u.policy.source.len > 0 && lsn_of(e->policy) == r->lsn;
    default: /* the deletes */
        return 0;
    }
}
