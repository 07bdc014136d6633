/*
** internal.h: what the modules of core/src share and nothing else does.
** Internal non-static names use the mmfs__ prefix.  Nothing here is part
** of the public API.
*/
#ifndef MMFS_INTERNAL_H
#define MMFS_INTERNAL_H

#include "memmapfs.h"
#include "bounds.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#ifdef NDEBUG
#define mmfs_assert(cond, msg) ((void)0)
#else
#include <assert.h>
#define mmfs_assert(cond, msg) assert((cond) && (msg))
#endif


/* ---------------------------------------------------------------- err.c */

/* Records a message for this thread (printf-style) and returns CODE. */
int mmfs__err(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Maps ERRNUM from a failed system call WHAT on PATH to a status (ENOSPC
** and EDQUOT -> NOSPACE, ENOMEM -> NOMEM, EROFS/EACCES -> IO...), records
** "PATH: WHAT: strerror" and returns the status. */
int mmfs__err_sys(int errnum, const char *what, const char *path);

/* ------------------------------------------------ little-endian helpers */

static inline uint32_t mmfs__ld32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v; /* the on-disk format is little-endian; so is every target */
}
static inline uint64_t mmfs__ld64(const void *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline void mmfs__st32(void *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void mmfs__st64(void *p, uint64_t v) { memcpy(p, &v, 8); }

static inline int mmfs__slice_eq(mmfs_slice a, mmfs_slice b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Byte-order comparison, shorter first on a common prefix. */
static inline int mmfs__slice_cmp(mmfs_slice a, mmfs_slice b) {
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

/* Records and commands: their one table, struct and codec. */
#include "record.h"

/* ------------------------------------------------------------- engine
** The in-memory engine (engine.c, kv.c, memory.c, session.c, stream.c,
** state.c): maps from keys and ids to records in the mapped log.  Records
** handed to mmfs__engine_apply stay mapped for the engine's whole life, so
** the engine keeps pointers (rec.raw) instead of copies: RAM per entry is a
** few dozen bytes plus (at most) the key, never the value.
**
** Locking is the caller's: db.c holds the engine's write side around
** apply, readers hold the read side (mmfs__read_begin).  Writers (who hold
** db's writer mutex) may call the const queries below without the read
** lock, since only writers change the engine.
*/
typedef struct mmfs__engine mmfs__engine;

int mmfs__engine_new(mmfs__engine **out);

/* Sets the tokenizer of both search indexes (memory.c), before anything is
** applied.  Errors: MMFS_INVALID, MMFS_NOMEM. */
int mmfs__engine_set_tokenizer(mmfs__engine *e, int version, const char *lang);
void mmfs__engine_free(mmfs__engine *e);
/* E, replaced by another engine (no reader can reach it any more), is
** freed and 0 returned; but while subscriptions are on it (they wait on
** its condition), only its state part is kept, as a husk, and while an
** index drain is inside it, all of it: 1, and the caller calls retire
** again later (or mmfs__engine_free at close). */
int mmfs__engine_retire(mmfs__engine *e);

/* Applies one decoded record (R->raw set).  Errors: MMFS_NOMEM (the engine
** is then unusable; db.c refuses further work). */
int mmfs__engine_apply(mmfs__engine *e, const mmfs__rec *r);

/* Writer-side queries. */
uint64_t mmfs__engine_next_memory_id(const mmfs__engine *e); /* 1 + highest id */

/* Memory ids are u64, but the search index numbers documents with 32
** bits (docno = id): ids past this bound cannot be indexed. */
#define MMFS__MEM_ID_MAX ((uint64_t)UINT32_MAX - 1)

/* MMFS_OK, or MMFS_LIMIT (with a message) for an id past MMFS__MEM_ID_MAX:
** the writer refuses such a memory rather than index it under another id. */
int mmfs__mem_id_ok(uint64_t id);
/* From now on memories and documents are indexed by
** mmfs__engine_index_drain, not by apply (call once, after recovery,
** before other threads use E). */
void mmfs__engine_defer_index(mmfs__engine *e);
/* Indexes the memories and documents applied so far, in log order; any
** thread, without the engine's lock.  Errors: MMFS_NOMEM (what failed
** stays queued). */
int mmfs__engine_index_drain(mmfs__engine *e);
/* The index work queued and not yet done (ops), any thread. */
size_t mmfs__engine_index_pending(mmfs__engine *e);
int mmfs__engine_has_memory(const mmfs__engine *e, uint64_t id);
int mmfs__engine_has_kv(const mmfs__engine *e, mmfs_slice key);
int mmfs__engine_has_session(const mmfs__engine *e, mmfs_slice id);
int mmfs__engine_has_doc(const mmfs__engine *e, mmfs_slice key);
uint64_t mmfs__engine_state_version(const mmfs__engine *e);

/* Writer-side reads for policy hooks (tx:get_kv...), without the read lock
** (the caller holds the writer mutex).  the record and value slices point into the log.
** MMFS_NOTFOUND when missing. */
int mmfs__engine_get_kv(const mmfs__engine *e, mmfs_slice key, mmfs_slice *value);
int mmfs__engine_get_memory(const mmfs__engine *e, uint64_t id, mmfs__rec *rec);
int mmfs__engine_get_session(const mmfs__engine *e, mmfs_slice id, mmfs__rec *rec);

/* state.c: wakes E's subscribers as if version VERSION had been applied
** to E: for an engine a handle replaced (mmfs__reload), whose
** subscriptions stay on it while the new engine applies the states. */
void mmfs__state_announce(mmfs__engine *e, uint64_t version);

/* live.c: 1 if decoded record R (with its LSN) is one the engine still
** needs, so compaction keeps it; deletes never are. */
int mmfs__engine_is_live(const mmfs__engine *e, const mmfs__rec *r);

/* The policy in force: its source (into the log) and the LSN of its
** POLICY record; *lsn = 0 and an empty source when the store has none. */
void mmfs__engine_policy(const mmfs__engine *e, mmfs_slice *source, uint64_t *lsn);

/* Fills the count fields of *st (memories, kv, sessions, streams,
** documents, live_bytes, state_version). */
void mmfs__engine_stats(const mmfs__engine *e, mmfs_store_stats *st);

/* ------------------------------------------------------------- search
** core/src/search/: the full-text engine shared by memories and documents
** (one mmfs__index instance each).  Documents are numbered by the caller
** (docno).  Add and remove run under the engine's write side; search runs
** under the read side and must not change the index.
*/
typedef struct mmfs__index mmfs__index;

typedef struct mmfs__hit {
    uint32_t docno;
    double score;
} mmfs__hit;

/* Callbacks into the owner of the documents, for one search. */
typedef struct mmfs__search_cb {
    void *ud;
    /* Query filters "field:value" (tag:work, route:episodic): 1 if DOCNO
    ** passes.  NULL: such filters are MMFS_INVALID. */
    int (*field)(void *ud, uint32_t docno, mmfs_slice field, mmfs_slice value);
    /* The caller's own filter (options); NULL: every document passes. */
    int (*accept)(void *ud, uint32_t docno);
} mmfs__search_cb;

mmfs__index *mmfs__index_new(void);
void mmfs__index_free(mmfs__index *ix);

/* 1 if NAME is "none" or a language libstemmer knows (tokenize.c). */
int mmfs__tok_lang_ok(const char *name);

/* BM25 parameters, chosen on the LoCoMo dev split (docs/bench/recall.md):
** b for tokenizer version 1; the first tokenizer keeps b = 0.75. */
#define MMFS__K1 1.2
#define MMFS__B 0.3
#define MMFS__B_V0 0.75

/* Sets the BM25 parameters of IX and whether OR queries drop stopwords
** (bench/recall.c measures other settings than the defaults). */
void mmfs__index_tune(mmfs__index *ix, double k1, double b, int stopwords);

/* Sets the tokenizer of an empty index: VERSION 0 (stores made before the
** tokenizer was recorded) or 1 with LANG ("none" or a Snowball language).
** Errors: MMFS_INVALID (unknown language or version), MMFS_NOMEM. */
int mmfs__index_set_tokenizer(mmfs__index *ix, int version, const char *lang);

/* Tokenizes TEXT and adds it as DOCNO (not present).  Errors: MMFS_NOMEM. */
int mmfs__index_add(mmfs__index *ix, uint32_t docno, const char *text, size_t len);

/* A snippet of TEXT for QUERY (snippet.c): about BYTES bytes around the
** best matches, matched terms between OPEN and CLOSE.  *out is malloc'd
** (NUL-terminated; *outlen without it).  Errors: MMFS_INVALID (query),
** MMFS_NOMEM. */
int mmfs__index_snippet(const mmfs__index *ix, mmfs_slice query, mmfs_slice text, mmfs_slice open,
                        mmfs_slice close, size_t bytes, uint8_t **out, size_t *outlen);

/* Removes DOCNO from results and statistics (no-op if absent). */
void mmfs__index_remove(mmfs__index *ix, uint32_t docno);

/* Number of live documents. */
uint64_t mmfs__index_count(const mmfs__index *ix);

/* An index segment (search/segfile.c; a checkpoint's section 5 lists
** them): the file ROOT/index/<lo>-<lsn>.idx, docnos [lo, hi), the CRC of
** its header. */
typedef struct mmfs__ixent {
    uint32_t lo, hi;
    uint64_t lsn;
    uint32_t crc;
} mmfs__ixent;

/* Writes the documents of IX as segment LSN in directory DIR (an fd),
** durably; what a checkpoint lists of it into *OUT.  Errors:
** MMFS_INVALID (no document), MMFS_IO, MMFS_NOMEM. */
int mmfs__index_write_segment(const mmfs__index *ix, int dir, uint64_t lsn, mmfs__ixent *out);
/* What mmfs__index_extract does with one document of its range. */
enum { MMFS__EX_OUT, MMFS__EX_LIVE, MMFS__EX_DELETED };
/* A new in-memory index (*OUT) holding the documents of [LO, HI) of SRC
** (*SRCP, read under LOCK: its owner may replace it; its mapped segments
** and its in-memory part alike) as mmfs__index_add would have made them,
** without tokenizing: their postings, positions, lengths.  KEEP[d - LO] says which
** to take and whether deleted (MMFS__EX_*); NULL: those SRC holds, as
** SRC flags them.  SRC is only read, under LOCK's read side (NULL: the
** caller's), let go between terms now and then: meanwhile SRC may only
** gain documents at or above HI, and deletes, or be replaced (then
** MMFS_NOTFOUND).  Errors:
** MMFS_NOTFOUND (an empty range, or KEEP wants a document SRC lacks:
** tokenize instead), MMFS_CORRUPT (a damaged segment block), MMFS_NOMEM. */
int mmfs__index_extract(mmfs__index *const *srcp, pthread_rwlock_t *lock, uint32_t lo, uint32_t hi,
                        const uint8_t *keep, mmfs__index **out);
/* Maps segment ENT of directory DIR below the documents of IX (which
** holds none in memory yet), after checking it is that file.  Errors:
** MMFS_NOTFOUND, MMFS_CORRUPT, MMFS_INVALID (newer format), MMFS_NOMEM. */
int mmfs__index_map_segment(mmfs__index *ix, int dir, const mmfs__ixent *ent);
/* The documents (live and flagged deleted) segment ENT of directory DIR
** holds, from its header (checked against ENT's checksum) into *N.
** Errors: MMFS_NOTFOUND, MMFS_CORRUPT (not that segment), MMFS_IO. */
int mmfs__index_segment_docs(int dir, const mmfs__ixent *ent, uint64_t *n);
/* An empty index with the tokenizer and tuning of IX, or NULL (NOMEM). */
mmfs__index *mmfs__index_new_like(const mmfs__index *ix);
/* The number of segments mapped under IX. */
uint32_t mmfs__index_segments(const mmfs__index *ix);
/* The first docno past IX's mapped segments (0: none). */
uint32_t mmfs__index_segments_end(const mmfs__index *ix);

/* Top K hits for QUERY (API.md query language), best first, ties by
** higher docno first.  OUT has room for K.  Errors: MMFS_INVALID (message
** with the position), MMFS_NOMEM. */
int mmfs__index_search(const mmfs__index *ix, mmfs_slice query, const mmfs__search_cb *cb,
                       size_t k, mmfs__hit *out, size_t *n);

#endif /* MMFS_INTERNAL_H */
