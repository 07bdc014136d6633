/*
** engine.h: what the engine's files (engine.c, kv.c, memory.c,
** memory_read.c, session.c, stream.c, state.c, tabck.c) share: the struct mmfs__engine and helpers that read
** fields of encoded records.  The ordered index is base/btree.h.
**
** Invariants of the whole engine:
** - Every record pointer kept here points at an encoded record in the
**   mapped log, which stays mapped and unchanged for the engine's life.  So
**   the engine stores pointers, never values; keys are slices into records.
** - Only mmfs__engine_apply (the write side) changes anything, but for
**   the full-text indexes of memories and documents, which
**   mmfs__engine_index_drain fills under ixlock.
**   The read steps (mmfs__kv_get, mmfs__mem_search, ...) take the engine
**   alone, run under the read side that their callers in store/ hold, and
**   never write to the engine, not even to a cache.  No engine file takes
**   a lock of the handle or catches up.
** - live_bytes is the sum of the raw lengths of the records still needed:
**   the latest value of each kv key, live memories, current sessions and
**   documents, every stream chunk, the latest state and the latest policy
**   (unless it removed the policy).
*/
#ifndef MMFS_ENGINE_H
#define MMFS_ENGINE_H

#include "btree.h"
#include "hmap.h"
#include "internal.h"
#include "ztext.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* ------------------------------------------------------- record fields
** Direct reads of fields of an encoded record (layout in internal.h).
** They avoid a full decode in hot paths (hash probes, B+tree compares);
** apply checks them against mmfs__rec_decode in debug builds. */

/* The whole record's length. */
static inline uint32_t mmfs__raw_len(const uint8_t *raw) { return mmfs__ld32(raw); }

/* The record's LSN. */
static inline uint64_t mmfs__raw_lsn(const uint8_t *raw) { return mmfs__ld64(raw + 8); }

/* The first string of the body: the key of KV_SET, KV_DEL, STREAM_APPEND,
** DOC_INDEX, DOC_UNINDEX, the id of SESSION_PUT, SESSION_DEL. */
static inline mmfs_slice mmfs__raw_key(const uint8_t *raw) {
    mmfs_slice s;
    s.len = mmfs__ld32(raw + MMFS__REC_HDR);
    s.ptr = raw + MMFS__REC_HDR + 4;
    return s;
}

/* MEMORY: id and created_at. */
static inline uint64_t mmfs__raw_mem_id(const uint8_t *raw) {
    return mmfs__ld64(raw + MMFS__REC_HDR);
}
static inline int64_t mmfs__raw_mem_created(const uint8_t *raw) {
    return (int64_t)mmfs__ld64(raw + MMFS__REC_HDR + 8);
}

/* SESSION_PUT: created_at (after str id and u8 has). */
static inline int64_t mmfs__raw_sess_created(const uint8_t *raw) {
    uint32_t idlen = mmfs__ld32(raw + MMFS__REC_HDR);
    return (int64_t)mmfs__ld64(raw + MMFS__REC_HDR + 4 + idlen + 1);
}

/* Decodes the record at RAW (its own length).  Errors: MMFS_CORRUPT with a
** message (cannot happen for records that apply accepted). */
int mmfs__raw_decode(const uint8_t *raw, mmfs__rec *r);

/* ------------------------------------------------------------- modules */

/* A mapped checkpoint file's checksums, checked when a part is first read
** (ck_verify.c), not at open: bytes [lo, hi) of map are in blocks of
** 1 << shift bytes, block j's checksum at sums + 16 j.  verified: a bit
** per block, set once it checked (never cleared: the file is immutable).
** bad: a block failed; from then on every read that needs the checkpoint
** fails with MMFS_CORRUPT rather than answer without it, and path (the
** file; NULL for a read-only handle) is unlinked so that the next open
** falls back to an older checkpoint or the log. */
typedef struct mmfs__ckfile {
    const uint8_t *map;
    size_t lo, hi;
    unsigned shift;
    const uint8_t *sums;
    const struct mmfs__sum *sum;
    _Atomic uint64_t *verified;
    _Atomic int bad;
    char *path;
} mmfs__ckfile;

/* ck_verify.c: 1 if bytes [P, P + LEN) of F's map are in blocks whose
** checksums check (checking those not checked yet), 0 if one fails (F
** is then bad) or the range is outside [lo, hi).  F NULL: 1. */
int mmfs__ckf_ok(mmfs__ckfile *f, const void *p, size_t len);
/* ck_verify.c: 1 once F was found bad (F NULL: 0). */
int mmfs__ckf_bad(const mmfs__ckfile *f);
/* ck_verify.c: frees F (not its map). */
void mmfs__ckf_free(mmfs__ckfile *f);

/* A checkpoint's kv tables, mapped read-only (ckpt.c makes and checks the
** file; kv.c reads it).  Entries are log positions (segment << 40 |
** offset) of KV_SET records; seg_map/seg_end resolve them for segments
** first .. first + nsegs - 1 (maps of the handle's own segments, which
** stay mapped for the engine's life).  slots: (u64 hash, u64 pos) x
** (mask + 1), pos 0 = empty, linear probing; order: u64 pos x n, by key. */
typedef struct mmfs__kvck {
    void *file; /* the mapped checkpoint file (munmap'd by mmfs__kv_free) */
    size_t file_size;
    mmfs__ckfile *ckf; /* its checksums (freed by mmfs__kv_free) */
    const uint8_t *slots;
    size_t mask;
    const uint8_t *order;
    size_t n;
    const uint8_t **seg_map;
    uint64_t *seg_end;
    uint32_t first, nsegs;
} mmfs__kvck;

/* kv.c: key -> latest KV_SET record, and the same records in key order.
** With a checkpoint (ck.n > 0) map and order hold only what came after
** it: map the latest KV_SET, or a KV_DEL that hides a key of ck; order
** the KV_SETs.  A key of ck is live unless map has it. */
typedef struct mmfs__kv {
    mmfs__hmap map;    /* key -> record */
    mmfs__btree order; /* records by key (mmfs__slice_cmp) */
    mmfs__kvck ck;
    size_t live;       /* live keys, in ck and map together */
} mmfs__kv;

/* memory.c: one entry per id from base. */
typedef struct mmfs__mem_ent {
    const uint8_t *raw; /* the MEMORY record; NULL: no such id */
    uint32_t route;     /* index into routes */
    uint32_t deleted;
} mmfs__mem_ent;

typedef struct mmfs__tag {
    mmfs_slice name; /* into the first record that had the tag, or the checkpoint */
    uint64_t *ids;   /* increasing; may hold deleted ids (dead of them) */
    size_t n, cap, dead;
    /* The checkpoint's ids of the tag (increasing, all below ids[0]; some
    ** may have been deleted since), mapped: ck_n ids in blocks of
    ** MMFS__TAG_BLOCK, ck_skip has (u32 first id - base, u32 offset into
    ** ck_data) per block, ck_data the varint gaps after each block's
    ** first; ck_last is the highest.  ck_n = 0 without one. */
    const uint8_t *ck_skip, *ck_data;
    size_t ck_n, ck_datalen;
    uint64_t ck_last;
    const struct mmfs__memck *ck; /* the table the ids are of */
} mmfs__tag;

/* The checkpoint's memory table, mapped (ckpt.c checks the file, memory.c
** reads it; docs/format.md, checkpoint format 3, sections 6, 7, 10, 11,
** 12).  Ids base .. base + n - 1, in blocks of MMFS__MEM_BLOCK ids: dir
** has (u64 base position, u64 at) per block, at the offset into pos of
** its entries with their kind in its two low bits: 3, u16 deltas from the
** base position (0xffff: none); 0, u32 deltas (UINT32_MAX: none); 1, u64
** positions (0: none); 2, no id at all.  A
** memory deleted before the checkpoint is no such id.  route: rwidth
** bytes per id (0: every route is 0).  time: the live ids by created_at
** desc then id desc, as runs (u64 first index, u64 v) ending with a
** sentinel (first index = ntime): v with bit 63 clear is the first of ids
** descending by one, else the index of the first of its u32 ids (id -
** base) in tids.  dead: one bit per id deleted since (heap, made at the
** first such delete).  Route numbers are those of mmfs__mems.routes, which
** the checkpoint's routes are interned into first. */
typedef struct mmfs__memck {
    mmfs__ckfile *f;
    const uint8_t *dir, *pos, *route, *time, *tids;
    size_t pos_len, ntids, nruns;
    unsigned rwidth;
    uint64_t base;
    size_t n;
    size_t ntime;
    uint8_t *dead;
} mmfs__memck;

typedef struct mmfs__mems {
    mmfs__memck ck;      /* ids below ents' are here (n = 0: no checkpoint) */
    mmfs__mem_ent *ents; /* ents[i] is id base + i */
    uint64_t base;
    size_t n, cap;
    uint64_t max_id; /* highest id applied, 0 = none */
    uint64_t live;
    mmfs__btree by_time;     /* MEMORY records, created_at desc then id desc */
    mmfs__hmap tags;         /* name -> mmfs__tag * */
    mmfs__hmap routes;       /* name -> index + 1 */
    mmfs_slice *route_names; /* interned route names (into the log) */
    size_t nroutes, route_cap;
    mmfs__index *ix; /* docno = (uint32_t)id */
    /* Deferred indexing (once mmfs__engine_defer_index is called, after
    ** recovery): apply, under the engine's write lock, only queues the
    ** index work of a memory or a document, in log order, here (one queue
    ** for both indexes); mmfs__engine_index_drain does it later, outside
    ** the writer's lock, under ixlock alone.  So ix and docs.ix are
    ** guarded by ixlock (searches read under it), the queue by qmu; apply
    ** never waits for ixlock.  An index may lag the entries, never lead:
    ** searches drain first and check each hit against its entry. */
    int defer;
    int locks; /* ixlock and qmu are initialised */
    pthread_rwlock_t ixlock;
    pthread_mutex_t qmu;
    struct mmfs__ixop *q; /* q[qhead, qn) wait; under qmu */
    size_t qhead, qn, qcap;
    /* The index segments the newest checkpoint this engine loaded or its
    ** handle wrote lists (the next checkpoint starts from them; cpmu or
    ** open).  seg_bad: 1 when one listed at open could not be mapped, 2
    ** when a search found one damaged (the next checkpoint then lists
    ** none of these and writes its segments afresh). */
    mmfs__ixent *segl;
    size_t nsegl;
    _Atomic int seg_bad;
    /* mapped segments from this docno on were written by the checkpoint
    ** loaded (nothing deleted since: the drain skips them) */
    uint32_t segs_fresh;
} mmfs__mems;

/* A checkpoint's session, stream and document tables, mapped (format 3,
** section 15: docs/format.md; store/ckpt_tables.c checks their bounds and
** attaches them).  Entries are log positions that kv.ck resolves; every
** read asks kv.ck.ckf for its bytes first.  Slot tables are open
** addressing (XXH3-64 of the key, linear probing, a power-of-two count of
** slots, load <= 0.5, second word 0 = empty).  n = 0 and NULL: none. */
typedef struct mmfs__tabck {
    const uint8_t *s_slots, *s_time; /* (u64 hash, u64 pos); u64 pos by created_at desc, LSN desc */
    size_t s_mask, s_n;
    const uint8_t *i_slots, *i_recs; /* (u64 hash, u64 at, u64 n) -> i_recs[at, at + n): u64 pos by time */
    size_t i_mask, i_n;
    const uint8_t *t_slots, *t_ents, *t_chunks; /* (u64 hash, u64 index + 1); (u64 first pos, u64 size,
                                                ** u64 chunk at, u64 nchunks); (u64 pos, u64 start) */
    size_t t_mask, t_n, t_nchunks;
    const uint8_t *d_slots, *d_recs; /* (u64 hash, u64 index + 1); u64 pos in log order, docno index + 1 */
    size_t d_mask, d_n;
} mmfs__tabck;

/* memory.c too: documents, the other tenant of the full-text engine.
** With a checkpoint (tab.d_n > 0) its documents are docnos 1 .. ck_n
** (read from the mapped table; ck_dead has a bit per one replaced or
** removed since, made at the first), and map and recs hold only newer
** ones: docno d > ck_n is recs[d - ck_n]. */
typedef struct mmfs__docs {
    mmfs__hmap map;       /* key -> docno (> ck_n) */
    const uint8_t **recs; /* docno - ck_n -> DOC_INDEX record, NULL once replaced */
    size_t next, cap;     /* next docno to give (docno 0 is never used) */
    size_t ck_n;          /* the checkpoint's documents */
    uint8_t *ck_dead;
    size_t live;          /* live documents, in the checkpoint and map together */
    mmfs__index *ix;      /* under mems.ixlock, filled through mems' queue */
} mmfs__docs;

/* session.c */
typedef struct mmfs__intent {
    mmfs_slice name;      /* into one of its records */
    const uint8_t **recs; /* its current SESSION_PUT records, unordered */
    size_t n, cap;
} mmfs__intent;

/* With a checkpoint (tab.s_n > 0), as kv: map, by_time and intents hold
** only what came after it; map has the latest SESSION_PUT of an id, or
** the SESSION_DEL that hides an id of the checkpoint; a checkpoint
** session counts only while map has no record for its id. */
typedef struct mmfs__sessions {
    mmfs__hmap map;      /* id -> SESSION_PUT (or SESSION_DEL) record */
    mmfs__btree by_time; /* newer puts, created_at desc then LSN desc */
    mmfs__hmap intents;  /* intent_id -> mmfs__intent * (newer puts) */
    size_t live;         /* live sessions, in the checkpoint and map together */
} mmfs__sessions;

/* stream.c */
typedef struct mmfs__chunk {
    const uint8_t *ptr; /* the bytes, in the log; chunks are never empty */
    uint64_t start;     /* offset in the stream; len = next start - start */
} mmfs__chunk;

/* A stream: its bytes [0, ck_size) are chunks [ck_at, ck_at + ck_n) of
** the checkpoint's chunk table (none without one), the rest are chunks. */
typedef struct mmfs__stream {
    mmfs_slice name; /* into one of its records */
    mmfs__chunk *chunks;
    size_t n, cap;
    uint64_t size;
    uint64_t ck_at, ck_n, ck_size;
    uint64_t ck_first; /* the checkpoint's first record of it (a position), 0: not there */
} mmfs__stream;

/* state.c */
typedef struct mmfs__state {
    const uint8_t *raw; /* latest STATE record, or NULL */
    uint64_t version;
    /* Subscribers: mu guards notified, subs and each sub's seen/fd.  mu
    ** is never held while taking the engine's lock. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; broadcast when notified grows */
    uint64_t notified; /* the version apply last announced */
    struct mmfs_sub *subs;
} mmfs__state;

struct mmfs__engine {
    /* Index drains inside this engine (store/db.c counts them): one that
    ** a checkpoint switch replaced is freed only once none is left. */
    _Atomic int drainers;
    mmfs__kv kv;
    mmfs__mems mems;
    mmfs__docs docs;
    mmfs__sessions sess;
    mmfs__hmap streams; /* key -> mmfs__stream * (with a checkpoint: those appended to since) */
    size_t streams_new; /* streams the checkpoint does not have */
    mmfs__tabck tab;    /* the checkpoint's sessions, streams and documents */
    mmfs__state state;
    const uint8_t *policy; /* latest POLICY record, or NULL */
    uint64_t live_bytes;
    mmfs__ztext z; /* zstd dictionaries (ztext.c) */
};

/* Each module: init (everything zero before; on error the engine is freed
** with the module frees below, which accept a partly made module), free,
** and apply for its record types. */
int mmfs__kv_init(mmfs__engine *e);
void mmfs__kv_free(mmfs__engine *e);
int mmfs__kv_apply(mmfs__engine *e, const mmfs__rec *r);
/* The engine's side of mmfs_get_kv (store/read_kv.c): *value points at
** KEY's value in the log.  Errors: MMFS_NOTFOUND (*value unchanged). */
int mmfs__kv_get(const mmfs__engine *e, mmfs_slice key, mmfs_slice *value);
/* The first live KV_SET record whose key is >= PROBE (> PROBE when
** STRICT), the checkpoint's and the newer ones merged, or NULL: a kv
** iterator's step.  Caller holds the read side. */
const uint8_t *mmfs__kv_seek(const mmfs__engine *e, mmfs_slice probe, int strict);
/* The record at log position POS of the checkpoint's table, or NULL when
** POS is not a KV_SET record inside a segment the table knows. */
const uint8_t *mmfs__kvck_rec(const mmfs__kvck *ck, uint64_t pos);

/* Index work, queued: add TEXT as docno (add = 1), remove docno (0), or
** add the memories of the checkpoint's table from id docno on, len of them
** (MMFS__IX_CKPT: the drain reads their texts).  doc: in the documents'
** index (docs.ix) instead of the memories' (mems.ix). */
typedef struct mmfs__ixop {
    uint32_t docno;
    uint16_t add;
    uint16_t doc;
    const char *text;
    size_t len;
} mmfs__ixop;
#define MMFS__IX_CKPT 2u
/* add = MMFS__IX_ZTEXT: add memory record text (a compressed one), its
** text decompressed by the drain. */
#define MMFS__IX_ZTEXT 3u

int mmfs__mem_init(mmfs__engine *e);
void mmfs__mem_free(mmfs__engine *e);
int mmfs__mem_apply(mmfs__engine *e, const mmfs__rec *r);
int mmfs__doc_apply(mmfs__engine *e, const mmfs__rec *r);
/* The engine's side of mmfs_get_memory, mmfs_list_memories,
** mmfs_search_memory and mmfs_search (store/read_memory.c): the caller
** holds the read side (and has drained the index queue before
** mmfs__mem_search and mmfs__doc_search, which take ixlock's read side);
** results and errors as those functions document. */
int mmfs__mem_get(const mmfs__engine *e, uint64_t id, mmfs_memory **out);
int mmfs__mem_list(mmfs__engine *e, const mmfs_filter *f, mmfs_memories **out);
int mmfs__mem_search(mmfs__engine *e, mmfs_slice query, const mmfs_filter *f, mmfs_memories **out);
/* memory.c: replaces the memories' index by one without mapped segments,
** built from the memory table and the log (a segment turned out damaged).
** Caller holds the engine's read side, not ixlock.  Errors: MMFS_NOMEM
** (the index stays as it was). */
int mmfs__mem_reindex(mmfs__engine *e);
int mmfs__doc_search(mmfs__engine *e, mmfs_slice query, size_t limit, mmfs_doc_hits **out);

/* Attaches a checkpoint's mapped memory table (ckpt.c checked its bounds
** and the checksums of ROUTES and TAGS): interns ROUTES (NROUTES names)
** in order, makes a tag for each entry of TAGS (docs/format.md, section 9;
** their ids stay in TAG_IDS, section 14, read when used), queues the
** index work of its memories, sets live and the next id.
** Errors: MMFS_NOMEM, MMFS_CORRUPT (a malformed table). */
int mmfs__mem_ck_attach(mmfs__engine *e, const mmfs__memck *ck, const uint8_t *routes, size_t routes_len,
                        size_t nroutes, const uint8_t *tags, size_t tags_len, const uint8_t *tag_ids,
                        size_t tag_ids_len, uint64_t live, uint64_t next_id);
/* Ids per block of a checkpoint's memory table and of its tag lists. */
#define MMFS__MEM_BLOCK 128u
#define MMFS__TAG_BLOCK 128u
/* memory.c: the MEMORY record of ID in checkpoint table CK (positions
** resolved by KV), its route in *ROUTE; NULL when the table has no such id,
** or its bytes fail their checksum (CK's file is then bad). */
const uint8_t *mmfs__memck_rec(const mmfs__memck *ck, const mmfs__kvck *kv, uint64_t id, uint32_t *route);
/* memory.c: the I-th id of CK's time order (I < ntime), 0 if its bytes
** fail their checksum. */
uint64_t mmfs__memck_time_id(const mmfs__memck *ck, size_t i);
/* memory.c: the ids of block K of T's checkpoint list into OUT (room for
** MMFS__TAG_BLOCK), in increasing order; returns how many, 0 if its bytes
** fail their checksum or do not decode. */
size_t mmfs__tag_ck_block(const mmfs__memck *ck, const mmfs__tag *t, size_t k, uint64_t *out);

/* memory.c: takes the ids below the attached checkpoint's table out of the
** memories' mapped index segments (at open, after mapping them). */
void mmfs__mem_segs_below(mmfs__engine *e);
/* The record at log position POS of a checkpoint (kv.ck resolves), or NULL
** when POS is not a whole record inside a segment the checkpoint knows. */
const uint8_t *mmfs__ck_rec(const mmfs__kvck *ck, uint64_t pos);

/* kv.c: the live KV_SET record of KEY (changes first, then the mapped
** checkpoint), or NULL. */
const uint8_t *mmfs__kv_find(const mmfs__engine *e, mmfs_slice key);

int mmfs__sess_init(mmfs__engine *e);
void mmfs__sess_free(mmfs__engine *e);
int mmfs__sess_apply(mmfs__engine *e, const mmfs__rec *r);
/* The engine's side of mmfs_get_session, mmfs_list_sessions and
** mmfs_list_by_intent (store/read_session.c): the caller holds the read
** side; results and errors as those functions document. */
int mmfs__sess_get(const mmfs__engine *e, mmfs_slice id, mmfs_session *out);
int mmfs__sess_list(const mmfs__engine *e, size_t limit, mmfs_sessions **out);
int mmfs__sess_by_intent(const mmfs__engine *e, mmfs_slice intent_id, size_t limit, mmfs_sessions **out);

/* session.c: the current SESSION_PUT record of ID (changes first, then
** the mapped checkpoint), or NULL. */
const uint8_t *mmfs__sess_find(const mmfs__engine *e, mmfs_slice id);

int mmfs__stream_init(mmfs__engine *e);
void mmfs__stream_free(mmfs__engine *e);
int mmfs__stream_apply(mmfs__engine *e, const mmfs__rec *r);
/* The stream KEY, or NULL (store/read_stream.c reads under the read side):
** the engine's, or one of the checkpoint's described in *BUF. */
const mmfs__stream *mmfs__stream_find(const mmfs__engine *e, mmfs_slice key, mmfs__stream *buf);
/* The chunk of ST holding offset POS (< st->size): returns its bytes and
** sets its range [*start, *end) in the stream; NULL when the checkpoint's
** bytes holding it fail their checksum or do not resolve. */
const uint8_t *mmfs__stream_chunk(const mmfs__engine *e, const mmfs__stream *st, uint64_t pos, uint64_t *start,
                                  uint64_t *end);

/* tabck.c: the record at log position POS of the checkpoint, if it is a
** whole record of TYPE that decodes (into *R, may be NULL), else NULL. */
const uint8_t *mmfs__tabck_rec(const mmfs__engine *e, uint64_t pos, int type, mmfs__rec *r);
/* tabck.c: the slot of KEY in the slot table SLOTS (MASK + 1 slots of
** ESZ bytes: u64 hash, u64 value (0: empty), ...), whose key KEYOF gives,
** or NULL.  A slot whose bytes fail their checksum ends the search (NULL;
** the checkpoint is then bad). */
const uint8_t *mmfs__tabck_probe(const mmfs__engine *e, const uint8_t *slots, size_t mask, size_t esz,
                                 mmfs_slice key,
                                 int (*keyof)(const mmfs__engine *e, const uint8_t *slot, mmfs_slice *key));
/* tabck.c: the u64 at P (in the checkpoint), or 0 when its bytes fail
** their checksum (*OK = 0 then). */
uint64_t mmfs__tabck_u64(const mmfs__engine *e, const uint8_t *p, int *ok);
/* tabck.c: 1 when the engine reads sessions, streams or documents from a
** checkpoint that was found damaged: their reads then fail (CORRUPT),
** since changes applied over it may have missed what it held. */
int mmfs__tabck_bad(const mmfs__engine *e);
/* Attaches TAB (ckpt_tables.c checked its bounds) to the engine:
** counts, the documents' docnos and the queued index work of the
** checkpoint's documents.  Errors: MMFS_NOMEM. */
int mmfs__tabck_attach(mmfs__engine *e, const mmfs__tabck *tab);
/* memory.c: the documents' part of mmfs__tabck_attach. */
int mmfs__doc_ck_attach(mmfs__engine *e);
/* memory.c: the current DOC_INDEX record of KEY, or NULL. */
const uint8_t *mmfs__doc_find(const mmfs__engine *e, mmfs_slice key);
/* memory.c: the DOC_INDEX record of live docno D, or NULL (replaced,
** removed, or the checkpoint's bytes fail their checksum). */
const uint8_t *mmfs__doc_rec(const mmfs__engine *e, uint32_t d);

int mmfs__state_init(mmfs__engine *e);
void mmfs__state_free(mmfs__engine *e);
int mmfs__state_apply(mmfs__engine *e, const mmfs__rec *r);

/* A state subscription (made by store/read_state.c).  The engine links it
** into state.subs and signals its descriptor from apply; seen and fd are
** guarded by state.mu. */
struct mmfs_sub {
    mmfs_db *db;
    mmfs__engine *e;
    uint64_t seen; /* written by sub_next under mu */
    int fd;        /* eventfd, -1 until mmfs_sub_fd */
    struct mmfs_sub *prev, *next;
};

/* The engine's side of mmfs_get_state: the latest state and its version
** (left as they are when there is none).  Caller holds the read side.
** Errors: MMFS_CORRUPT. */
int mmfs__state_get(const mmfs__engine *e, mmfs_slice *value, uint64_t *version);
/* Under state.mu: links SUB into E's subscribers; records that S has seen
** version V (and re-arms its descriptor when a newer one is announced);
** waits on the condition until TS (CLOCK_MONOTONIC) unless a version newer
** than S's seen one is announced; gives S's descriptor (made at the first
** call, readable at once when a newer version is there; -1 and an error
** message when eventfd fails); unlinks S. */
void mmfs__state_sub_add(mmfs__engine *e, mmfs_sub *sub);
void mmfs__state_sub_seen(mmfs_sub *s, uint64_t v);
void mmfs__state_sub_wait(mmfs_sub *s, const struct timespec *ts);
int mmfs__state_sub_fd(mmfs_sub *s);
void mmfs__state_sub_remove(mmfs_sub *s);

/* Key function for maps whose values are records keyed by their first
** string (mmfs__raw_key). */
mmfs_slice mmfs__hkey_raw(const void *ctx, uintptr_t v);

/* Grows *ARR (elements of SIZE bytes, capacity *CAP) to hold at least
** NEED elements.  Errors: MMFS_NOMEM (unchanged). */
int mmfs__grow(void **arr, size_t *cap, size_t need, size_t size);

#endif /* MMFS_ENGINE_H */
