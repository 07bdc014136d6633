/*
** db.h: the store handle, shared by the files of store/: db.c (open,
** close, read access), read_*.c (the public reads), recover.c (replay and
** verify), batch.c, hook.c and write.c (writes), watch.c, ckpt*.c and
** compact*.c.  The log layer's part of the handle is db->log, an
** mmfs__log (log/log.h: segments, MANIFEST, durability), which log/ works
** on without seeing the rest; LOCK's functions (lock.c) are wrapped here
** with the handle's fields.
**
** Locks (docs/design.md, "Locks", has the full table).  A thread takes a
** lock only while holding locks before it in this order:
**
**   [flock(log/compact.lock) ->] [flock(ckpt/lock) ->] cpmu -> wmu -> flock(LOCK) -> smu
**                                                           -> rw -> state.mu
**                                                                 -> mems.ixlock -> mems.qmu
**                                                                 -> mems.qmu
**
**   flock(ckpt/lock)  one checkpoint writer per store (ckpt.c), taken
**                before cpmu (after compact.lock when compaction ends with
**                a checkpoint); the automatic one does not wait for it.
**   cpmu         one checkpoint at a time per handle (ckpt.c); it holds
**                wmu only to pick the LSN, then rw's read side while it
**                copies.  A switch to a newer checkpoint (recover.c)
**                holds it too, so that no checkpoint of this handle reads
**                an engine being replaced; catch-up only try-locks it.  cmu: the checkpointer thread's start and end,
**                innermost.
**
**   flock(log/compact.lock)  one compaction per store (compact.c), held
**                from its start to its end; its copy takes only rw read.
**
**   wmu          one appender per handle, from catch-up to publish (policy
**                and hooks included); log.segs and MANIFEST's values in
**                log, next_lsn, scratch, policy, hook.  Also a reader's
**                catch-up, verify, stats, set_hook.
**   flock(LOCK)  one appender per store across processes: bytes past the
**                written end, new segments, the seal, cutting a torn tail;
**                the written end and state version in LOCK's page.
**   rw           the engine: read by every public read (mmfs__read_begin),
**                the watcher and the index drain; written by apply and by
**                an engine swap (rebuild, checkpoint switch), inside wmu.
**                A wmu holder may read the engine without it.  Nothing
**                holds an engine pointer past its rw section but
**                subscriptions (state.c), which keep a replaced engine's
**                state part alive.
**   smu (+scond, fcond)  log.smu: durability (log.written_*, durable_*,
**                syncing, sync_failed), the flusher, the watcher's flags
**                and the background compaction's; never held while taking
**                another lock, nor across an fdatasync.
**   mems.ixlock  the full-text indexes of memories and documents
**                (engine.h, mmfs__mems): written by the index drain, read
**                by searches; never by apply.  mems.qmu: the queue of
**                their index work (one, in log order), innermost.
**   state.mu (+cv)  notified and the subscribers (state.c); taken by
**                apply inside rw; never held while taking rw.
**   atomics      shm->written (release after the frame is applied; acquire
**                before catching up), shm->durable (CAS to a maximum after
**                an fdatasync), shm->state_version, applied, broken,
**                committers, mmfs__fork_gen.
**
** ixlock and qmu are also taken with nothing held (the drain after a
** commit or a catch-up).  write.c's tl_writer turns a hook's write to its
** own store into BUSY; stats and verify do not check it yet, so a C hook
** calling them waits for itself on wmu.
*/
#ifndef MMFS_DB_H
#define MMFS_DB_H

#include "log.h"
#include "ztext.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

struct mmfs_db {
    char *dir;
    mmfs_options opt;
    /* The log (log/log.h): MANIFEST's values, the segments (under wmu),
    ** LOCK's page, durability (under log.smu).  log/ works on this alone. */
    mmfs__log log;
    /* The engines a switch of the log left behind (compact.c,
    ** mmfs__reload), kept until close so readers already handed out stay
    ** valid; the segments they point into are log.old_segs. */
    mmfs__engine **old_engs;
    size_t nold_engs;
    /* What checkpoint switches (recover.c) could not free yet of the
    ** engines they replaced: the state part of one with subscriptions on
    ** it, all of one an index drain was inside (mmfs__engine_retire);
    ** retired again at the next switch.  Under wmu (and cpmu). */
    mmfs__engine **husks;
    size_t nhusks;
    _Atomic int compacting;   /* a compaction runs through this handle */
    /* compaction.when (compact.c): when it was last asked (coarse ms), and
    ** the background compaction thread (bg_* under log.smu). */
    _Atomic uint64_t when_ms;
    pthread_t bg;
    int bg_on, bg_done, bg_stop;
    int no_manifest;          /* opening a log whose MANIFEST is missing: cut nothing */
    unsigned fork_gen;        /* mmfs__fork_gen at open: a child refuses */

    int lock_fd;
    int flock_held;           /* this handle holds flock(LOCK) now (under wmu) */

    /* Writer side: one appender in the process, then flock across them. */
    pthread_mutex_t wmu;
    uint64_t next_lsn;        /* under wmu */
    uint64_t rec_bytes;       /* bytes of records applied from the log, under wmu (stats' dead_bytes) */
    _Atomic uint64_t applied; /* position the engine has applied up to */
    uint8_t *scratch;         /* frame buffer, under wmu */
    size_t scratch_cap;
    mmfs__zwriter zw;         /* compress = "zstd": dictionary and frames, under wmu */

    /* The engine: readers take the read side, apply takes the write side. */
    pthread_rwlock_t rw;
    mmfs__engine *eng;
    _Atomic int broken;       /* an apply failed (NOMEM): refuse work */

    _Atomic int committers; /* threads in an "always" commit, up to its sync */
    /* Policy (hook.c): the VM built from the POLICY record at policy_lsn
    ** (0: none), and this handle's C hook.  Under wmu. */
    void *policy;
    uint64_t policy_lsn;
    mmfs_hook_fn hook;
    void *hook_ud;
    /* state watcher thread (watch.c), under log.smu */
    pthread_t watcher;
    int watch_on, watch_stop;
    /* Checkpoints (ckpt.c).  last_frame: position of the last frame the
    ** engine applied (under wmu, 0: none).  ckpt_lsn: the checkpoint open
    ** used (0: none).  ckpt_pos: where the newest checkpoint this handle
    ** used or wrote ends (for checkpoint_bytes).  cpmu: one checkpoint at a
    ** time per handle, taken before wmu.  The automatic checkpointer: a
    ** thread started by the commit that finds one due (mmfs__ckpt_maybe),
    ** ending after it; under cmu (innermost): ckpt_running (it runs),
    ** ckpt_on (ckpter is to be joined), ckpt_stop (closing: start none). */
    uint64_t last_frame;
    uint64_t ckpt_lsn;
    _Atomic uint64_t ckpt_pos;
    /* The value of LOCK's checkpoint_lsn this handle last acted on: a
    ** catch-up looks for a newer checkpoint only when the page differs
    ** (two loads per read, no readdir).  Written under cpmu and wmu. */
    _Atomic uint64_t ckpt_seen;
    pthread_mutex_t cpmu;
    pthread_mutex_t cmu;
    pthread_t ckpter;
    int ckpt_on, ckpt_stop, ckpt_running;
    /* The indexer (indexer.c): a thread a commit wakes (or starts) to
    ** drain the index queue; under imu (innermost): ix_work (a commit
    ** queued work since it looked), ix_running, ix_on (ixer is to be
    ** joined), ix_stop (closing: start none). */
    pthread_mutex_t imu;
    pthread_cond_t icv;
    pthread_t ixer;
    int ix_locks, ix_work, ix_running, ix_on, ix_stop;
};

/* A generation bumped in every forked child (pthread_atfork). */
extern _Atomic unsigned mmfs__fork_gen;

/* db.c: MMFS_CLOSED in a forked child, MMFS_NOMEM once broken. */
int mmfs__usable(mmfs_db *db);

/* db.c: read access for the public read functions (read_kv.c,
** read_memory.c, ...): mmfs__read_begin fails with MMFS_CLOSED in a forked
** child, catches up with frames other processes appended, then takes the
** engine's read side and gives the engine.  Every successful begin is
** paired with an end. */
int mmfs__read_begin(mmfs_db *db, mmfs__engine **eng);
void mmfs__read_end(mmfs_db *db);

/* The body of a public read made of one engine step: returns CALL's code
** (an expression over the engine `e`) evaluated between mmfs__read_begin
** and mmfs__read_end of DB, or read_begin's error. */
#define MMFS__READ_RETURN(db, call)                                                                \
    do {                                                                                           \
        mmfs__engine *e;                                                                           \
        int rc_ = mmfs__read_begin((db), &e);                                                      \
        if (rc_ == MMFS_OK) {                                                                      \
            rc_ = (call);                                                                          \
            mmfs__read_end(db);                                                                    \
        }                                                                                          \
        return rc_;                                                                                \
    } while (0)

/* Applies frames other processes appended (no-op when none), and
** switches to a newer checkpoint when LOCK's page announces one (no-op
** when none; a failed switch keeps the engine).  Takes the writer mutex
** and the engine's write side briefly. */
int mmfs__catch_up(mmfs_db *db);
/* The switch alone, without waiting for cpmu or wmu (busy: the next read
** or commit tries again): for a read that is not behind, and for a writer
** after its commit (WRITER: see mmfs__ckpt_switch_due). */
void mmfs__ckpt_follow(mmfs_db *db, int writer);
/* Does the index work queued in the engine (engine.h, mmfs__mems) under
** the engine's read side: a switch frees the engine it replaced under the
** write side, so nothing touches an engine without holding one of them. */
int mmfs__index_drain(mmfs_db *db);

/* write.c: 1 if this thread is DB's writer now, i.e. the call comes from a
** hook (C or policy) running inside DB's commit: it already holds db->wmu
** and the LOCK, so it must neither take them again nor wait for itself. */
int mmfs__in_own_writer(const mmfs_db *db);
/* Compiles policy SOURCE under DB's limits and drops it (hook.c): a policy
** that fails reaches neither the log nor, from open, the disk.  OK for an
** empty SOURCE; INVALID, LIMIT or NOMEM as mmfs_set_policy. */
int mmfs__policy_check(mmfs_db *db, mmfs_slice source);



/* compact.c: after a commit, outside the writer lock: asks the policy's
** compaction.when (at most once a second) and, when it says yes, starts a
** compaction in a thread of the handle. */
void mmfs__compact_maybe(mmfs_db *db);
/* Waits for the background compaction (close). */
void mmfs__compact_join(mmfs_db *db);
/* compact.c: takes log/compact.lock (flock, not waiting), held by a
** compaction from start to end: its .cseg files are not leftovers while
** it is held.  *fd is closed to release it.  Errors: MMFS_BUSY, MMFS_IO. */
int mmfs__compact_lock(const mmfs_db *db, int *fd);

/* LOCK (log/lock.c, mmfs__lockf_*) with the handle's fields: lock_fd,
** shm, flock_held. */
static inline int mmfs__lock_open(mmfs_db *db, int *created) {
    void *page;
    int rc = mmfs__lockf_open(db->dir, db->opt.readonly, &db->lock_fd, &page, created);
    if (rc == MMFS_OK) db->log.shm = page;
    return rc;
}
/* flock with lock_timeout_ms: MMFS_BUSY */
static inline int mmfs__lock_acquire(mmfs_db *db) {
    int rc = mmfs__lockf_take(db->lock_fd, db->dir, db->opt.lock_timeout_ms);
    if (rc == MMFS_OK) db->flock_held = 1;
    return rc;
}
static inline void mmfs__lock_release(mmfs_db *db) {
    db->flock_held = 0;
    mmfs__lockf_drop(db->lock_fd);
}
/* MMFS_IO if LOCK was removed, replaced or truncated since it was opened
** (call under the flock, before the shared page is read). */
static inline int mmfs__lock_check(mmfs_db *db) { return mmfs__lockf_check(db->lock_fd, db->dir); }
static inline void mmfs__lock_close(mmfs_db *db) {
    mmfs__lockf_close(db->lock_fd, db->log.shm);
    db->log.shm = NULL;
    db->lock_fd = -1;
}

/* recover.c */
/* Replays the whole log into the engine (under the writer flock unless
** read-only), cutting a torn tail of the last segment. */
int mmfs__recover(mmfs_db *db);
/* The lowest segment number in log/ (0: none) and its header, for
** reopening a log whose MANIFEST is lost.  Errors: MMFS_IO, MMFS_CORRUPT. */
int mmfs__log_first_segment(mmfs_db *db, uint32_t *first, uint8_t hdr[MMFS__SEG_HDR]);
/* Applies frames from db->applied up to TARGET (another process's
** writes); when MANIFEST's first segment moved (a compaction switched the
** log), rebuilds the engine first (mmfs__reload).  Caller holds wmu. */
int mmfs__catch_up_locked(mmfs_db *db, uint64_t target);
/* Rebuilds the engine from the log MANIFEST names now, up to the written
** end in LOCK's page: what open does after the lock, without cutting
** anything.  The segments and engine used before are kept until close.
** Caller holds wmu.  Errors: MMFS_CORRUPT, MMFS_IO, MMFS_NOMEM. */
int mmfs__reload(mmfs_db *db);

/* compact_copy.c: calls FN(ud, r) for every record of the N segments SEGS, in
** log order (their frames up to each one's end, LAST_END in the last;
** seals end a segment).  Stops at FN's first non-zero return and returns
** it.  Errors: MMFS_CORRUPT (a frame or record that does not check). */
int mmfs__each_record(const mmfs__seg *segs, size_t n, uint64_t last_end, const mmfs__sum *sum,
                      int (*fn)(void *ud, const mmfs__rec *r), void *ud);
/* The same without re-reading MANIFEST: a new engine from the log that
** db's fields name, replayed to the end of its frames.  Caller holds wmu
** and the flock.  On failure the handle is unusable (broken). */
int mmfs__rebuild(mmfs_db *db);
/* Wakes the subscriptions made on engines this handle replaced (they
** stay there) with the current state version.  Caller holds wmu. */
void mmfs__announce_old(mmfs_db *db);
/* The next memory id the writer gives: past every id applied and the
** compaction floor. */
uint64_t mmfs__next_memory_id(const mmfs_db *db);
/* recover.c: when LOCK's page names a checkpoint newer than the one the
** engine holds and this handle has applied up to its LSN, switches to it
** (mmfs__ckpt_switch).  WRITER: called from a write path (after a commit,
** or by the checkpoint's own writer), where a switch whose tail would
** cost more than it frees waits for a later checkpoint.  Caller holds
** cpmu and wmu.  Errors: those of the switch (the engine stays as it
** was). */
int mmfs__ckpt_switch_due(mmfs_db *db, int writer);
/* recover.c: loads checkpoint LSN (at or below the last LSN applied) into
** a new engine, replays the frames after it up to db->applied, does its
** index work with wmu released (the frames applied meanwhile are replayed
** after), checks that its counts agree with the engine's, and swaps
** engines under the write side.  The engine replaced is freed, but for
** its state part while subscriptions are on it, and whole while an index
** drain is inside it (db->husks, retired again at the next switch, woken
** by mmfs__announce_old).  Caller holds cpmu and wmu (held again on
** return).  Errors: MMFS_CORRUPT (a damaged, stale or missing file, or
** one that does not add up), MMFS_NOMEM, MMFS_BUSY (a rebuild replaced
** the engine meanwhile): the engine and stats are as they were. */
int mmfs__ckpt_switch(mmfs_db *db, uint64_t lsn);


/* ckpt_load.c: where a loaded checkpoint leaves the log. */
typedef struct mmfs__ckpt_at {
    uint64_t lsn;        /* the checkpoint's */
    size_t start;        /* index in log.segs of its anchor's segment */
    uint64_t from;       /* offset there past the anchor: replay goes on here */
    uint64_t rec_bytes;  /* bytes of records applied up to LSN (stats) */
    uint64_t last_frame; /* the anchor's position */
} mmfs__ckpt_at;

/* ckpt.c */
/* At open, after every segment is opened and before any is scanned: maps
** the newest valid checkpoint, loads the engine from it and sets *START
** (index in segs) and *FROM (offset) where replay goes on.  Without a
** usable checkpoint, *START = 0 and *FROM = MMFS__SEG_HDR and the engine is
** untouched.  Errors: only MMFS_NOMEM (a bad checkpoint is skipped). */
int mmfs__ckpt_load(mmfs_db *db, size_t *start, uint64_t *from);
/* Loads checkpoint LSN into a new engine (*OUT) with the same checks,
** without touching db->eng or any field of the handle; *AT says where the
** log goes on.  Caller holds wmu (the segment table).  Errors:
** MMFS_CORRUPT (damaged, stale, pruned), MMFS_NOMEM; *OUT is NULL then. */
int mmfs__ckpt_load_into(mmfs_db *db, uint64_t lsn, mmfs__engine **out, mmfs__ckpt_at *at);
/* The automatic checkpointer (checkpoint_bytes): nothing to start at
** open; mmfs__ckpt_maybe, after each commit, starts the thread that writes
** one when the log grew past checkpoint_bytes since the newest checkpoint
** this handle knows; stop (at close) waits for it. */
int mmfs__ckpt_auto_start(mmfs_db *db);
void mmfs__ckpt_maybe(mmfs_db *db);
void mmfs__ckpt_auto_stop(mmfs_db *db);

/* indexer.c: after a commit, has the index work it queued done on the
** handle's indexer thread (started if none runs), or here when the queue
** is long; mmfs__indexer_stop ends the thread (close).  init/free: its
** lock and condition (free is safe after a failed or no init). */
void mmfs__indexer_kick(mmfs_db *db);
void mmfs__indexer_stop(mmfs_db *db);
int mmfs__indexer_init(mmfs_db *db);
void mmfs__indexer_free(mmfs_db *db);

/* watch.c: start (idempotent) and stop the thread that catches up when
** another process changes the state, so subscribers wake. */
int mmfs__watch_start(mmfs_db *db);
void mmfs__watch_stop(mmfs_db *db);


#endif
