/*
** compact.c: compaction (mmfs_compact): its steps, the switch, and
** compaction.when.  The live records of the log are copied, in log order
** and with their own LSNs, into new segments numbered after the current
** last one (compact_copy.c decides what stays, compact_out.c writes);
** MANIFEST then switches to them and the old segment files are removed.
**
** Steps (the writer lock, wmu then the flock, is held for 1 and again
** for the carry-over and 3-4; the copy holds only the engine's read side,
** per record, so writers go on meanwhile):
**   1. catch up; build a private policy VM from the policy in force (a
**      hostile compaction.keep cannot damage the writers' VM)
**   2. write output segments as log/NNNNNNNN.cseg: compacted frames
**      (MMFS__FRAME_COMPACT: LSN gaps allowed), a seal at the end of each
**      full one, and in the last one a compacted frame with no record whose
**      first LSN is the next LSN of the store; fdatasync each, stamp the
**      last as durable, fsync log/
**   3. LOCK's page gets the new first segment, then MANIFEST is replaced
**      (first_segment, last_segment and "compacted SEG NEXT_LSN NEXT_ID":
**      the switch, atomic by rename), then the .cseg files are renamed to
**      .seg and log/ fsynced
**   4. this handle moves its engine over to the new log without a replay
**      (rebase: the engine already holds what the output holds), publishes
**      the new written end, and unlinks the old files
**
** Crash safety: before the MANIFEST rename, MANIFEST names the old log and
** the .cseg files are leftovers that the next open (or compaction)
** removes; after it, open renames what is left of them (or reads them
** under their first name when read-only) and removes the old segments.
** Other handles see the page's first segment differ from theirs, take the
** flock (so they see the switch whole or not at all), re-read MANIFEST
** and rebuild (recover.c, mmfs__reload).
**
** Invariant: the output holds exactly the records the engine counts live
** (live.c), minus memories ttl or keep forget; ids and LSNs never go back
** (MANIFEST's floors, the trailing empty frame).
*/
#include "compact.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void mmfs_compact_opts_init(mmfs_compact_opts *o) {
    if (o) memset(o, 0, sizeof *o);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t log_bytes(const mmfs_db *db) {
    uint64_t n = 0;
    for (size_t i = 0; i < db->log.nsegs; i++) n += db->log.segs[i].end - MMFS__SEG_HDR;
    return n;
}

/* This handle reads the new log without a replay: its engine already
** holds exactly the output's records (they point into the old mappings,
** which stay until close), less the memories ttl and keep forgot, which
** are deleted from it here.  Other handles rebuild (mmfs__reload). */
static int rebase(mmfs_db *db, const out *o, uint32_t last, uint64_t end) {
    int rc = mmfs__seg_retire_all(&db->log);
    if (rc) return rc;
    for (uint32_t no = o->first; no <= last; no++) {
        if ((rc = mmfs__seg_open(&db->log, no)) != MMFS_OK) break;
        mmfs__seg *s = mmfs__seg_last(&db->log);
        size_t i = no - o->first;
        s->end = no == last ? end : o->ends[i];
        s->sealed = no != last;
        s->stamp = no == last ? end : s->stamp;
    }
    if (rc) {
        atomic_store(&db->broken, 1);
        return rc;
    }
    pthread_rwlock_wrlock(&db->rw);
    for (size_t i = 0; i < o->nforgot && rc == MMFS_OK; i++) {
        /* A delete made here for the engine alone (it keeps no pointer to
        ** a delete record); the LSN only has to match its own header. */
        mmfs__rec d;
        uint8_t buf[64];
        memset(&d, 0, sizeof d);
        d.type = MMFS__R_DEL_MEMORY;
        d.lsn = db->next_lsn;
        d.u.del_mem.id = o->forgot[i];
        d.raw_len = (uint32_t)mmfs__rec_size(&d);
        mmfs__rec_encode(&d, buf);
        d.raw = buf;
        rc = mmfs__engine_apply(db->eng, &d);
    }
    db->rec_bytes = o->kept_bytes;
    db->last_frame = o->last_frame; /* the closing marker: what a checkpoint anchors on */
    atomic_store(&db->applied, MMFS__POS(last, end));
    pthread_rwlock_unlock(&db->rw);
    if (rc) atomic_store(&db->broken, 1);
    return rc;
}

/* Takes the writer lock as a write does (wmu, the flock) and catches up.
** Errors: MMFS_BUSY (lock_timeout_ms), MMFS_IO, MMFS_CORRUPT. */
static int enter(mmfs_db *db) {
    pthread_mutex_lock(&db->wmu);
    int rc = mmfs__sync_check(&db->log);
    if (rc == MMFS_OK && (rc = mmfs__lock_acquire(db)) == MMFS_OK) {
        if ((rc = mmfs__lock_check(db)) == MMFS_OK)
            rc = mmfs__catch_up_locked(db, atomic_load_explicit(&db->log.shm->written, memory_order_acquire));
        if (rc) mmfs__lock_release(db);
    }
    if (rc) pthread_mutex_unlock(&db->wmu);
    return rc;
}

static void leave(mmfs_db *db) {
    mmfs__lock_release(db);
    pthread_mutex_unlock(&db->wmu);
}

static int switch_to(mmfs_db *db, out *o, uint32_t last, uint64_t end, mmfs_compact_result *res);

/* Step 1 (see the top), under the writer lock: what the copy reads. */
static int take_snapshot(mmfs_db *db, snap *sn, out *o, mmfs__policy **p, mmfs_compact_result *res) {
    sn->segs = malloc(db->log.nsegs * sizeof *sn->segs);
    if (!sn->segs) return mmfs__err(MMFS_NOMEM, "compact: out of memory");
    memcpy(sn->segs, db->log.segs, db->log.nsegs * sizeof *sn->segs);
    sn->n = db->log.nsegs;
    sn->end = atomic_load(&db->applied);
    sn->next_lsn = db->next_lsn;
    sn->first = db->log.first_seg;
    o->first = mmfs__seg_last(&db->log)->no + 1;
    res->bytes_before = log_bytes(db);
    return mmfs__compact_policy(db, p);
}

int mmfs__compact_lock(const mmfs_db *db, int *fd) {
    char path[4096];
    snprintf(path, sizeof path, "%s/compact.lock", db->log.log_dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return mmfs__err_sys(errno, "open", path);
    if (flock(*fd, LOCK_EX | LOCK_NB) == 0) return MMFS_OK;
    int e = errno;
    close(*fd);
    *fd = -1;
    if (e == EWOULDBLOCK) return mmfs__err(MMFS_BUSY, "%s: another compaction runs", db->dir);
    return mmfs__err_sys(e, "flock", path);
}

/* Removes the .cseg files of compactions that died before their switch
** (MANIFEST does not name them).  Caller holds compact.lock, so none is
** being written; what open would roll forward (named ones) is left. */
static void sweep_leftovers(mmfs_db *db) {
    DIR *d = opendir(db->log.log_dir);
    if (!d) return;
    struct dirent *e;
    int removed = 0;
    while ((e = readdir(d))) {
        unsigned no;
        char tail[16], path[4200];
        if (sscanf(e->d_name, "%8u.%15s", &no, tail) != 2 || strcmp(tail, "cseg") != 0) continue;
        if (db->log.compact_seg && no >= db->log.first_seg && no <= db->log.compact_seg) continue;
        snprintf(path, sizeof path, "%s/%s", db->log.log_dir, e->d_name);
        removed += unlink(path) == 0;
    }
    closedir(d);
    if (removed) (void)mmfs__fsync_dir(db->log.log_dir);
}

/* Steps 2 to 4 (see the top). */
static int compact(mmfs_db *db, int64_t now, mmfs_compact_result *res) {
    int lockfd;
    int rc0 = mmfs__compact_lock(db, &lockfd);
    if (rc0) return rc0;
    snap sn;
    memset(&sn, 0, sizeof sn);
    out o;
    memset(&o, 0, sizeof o);
    o.db = db;
    o.fd = -1;
    mmfs__policy *p = NULL;
    int rc = enter(db), locked = rc == MMFS_OK;
    if (rc == MMFS_OK) sweep_leftovers(db);
    if (rc == MMFS_OK) rc = take_snapshot(db, &sn, &o, &p, res);
    if (locked) leave(db);
    locked = 0;

    /* The copy, without the writer lock: writers in every process go on. */
    if (rc == MMFS_OK) rc = mmfs__compact_copy(db, &sn, &o, p, now);
#ifdef MMFS_HAVE_POLICY
    if (p) mmfs__policy_free(p);
#endif
    if (rc == MMFS_OK && o.count) rc = mmfs__cout_flush(&o, o.first_lsn);
    /* A marker: what follows (the frames carried over) starts at the LSN
    ** the snapshot ended with. */
    if (rc == MMFS_OK) rc = mmfs__cout_flush(&o, sn.next_lsn);

    /* The writer lock again, briefly: what was appended meanwhile, then the
    ** switch. */
    if (rc == MMFS_OK && (rc = enter(db)) == MMFS_OK) locked = 1;
    if (rc == MMFS_OK && db->log.first_seg != sn.first)
        rc = mmfs__err(MMFS_BUSY, "%s: another handle compacted the store meanwhile; nothing changed", db->dir);
    if (rc == MMFS_OK && mmfs__seg_last(&db->log)->no >= o.first)
        rc = mmfs__cout_renumber(&o, mmfs__seg_last(&db->log)->no + 1);
    if (rc == MMFS_OK) rc = mmfs__cout_carry(db, &o, sn.end);
    if (rc == MMFS_OK) rc = mmfs__cout_flush(&o, db->next_lsn);
    uint64_t end = o.off;
    if (rc == MMFS_OK) {
        /* Synced first, then stamped (and synced again): everything up to
        ** END is durable, so a damaged compacted frame is never a tail. */
        int e = fdatasync(o.fd) < 0 ? errno : 0;
        if (!e) {
            mmfs__seg_stamp(o.fd, end);
            if (fdatasync(o.fd) < 0) e = errno;
        }
        if (e) rc = mmfs__cout_err(&o, e, "fdatasync");
    }
    if (o.fd >= 0) close(o.fd);
    o.fd = -1;
    free(o.buf);
    free(sn.segs);
    uint32_t last = o.no;
    if (rc == MMFS_OK) rc = mmfs__fsync_dir(db->log.log_dir);
    if (rc == MMFS_OK) rc = switch_to(db, &o, last, end, res);
    else if (o.first) mmfs__cout_remove(db, o.first, last);
    free(o.ends);
    free(o.forgot);
    if (locked) leave(db);
    close(lockfd); /* releases compact.lock */
    return rc;
}

/* Step 3 and 4 (see the top), under the writer lock, the output durable. */
static int switch_to(mmfs_db *db, out *o, uint32_t last, uint64_t end, mmfs_compact_result *res) {
    int rc;
    uint32_t old_first = db->log.first_seg, old_last = mmfs__seg_last(&db->log)->no, old_mlast = db->log.last_seg,
             old_cseg = db->log.compact_seg;
    uint64_t old_lf = db->log.lsn_floor, old_if = db->log.id_floor;
    atomic_store(&db->log.shm->first_segment, o->first);
    db->log.id_floor = mmfs__next_memory_id(db);
    db->log.lsn_floor = db->next_lsn;
    db->log.first_seg = o->first;
    db->log.last_seg = last;
    db->log.compact_seg = last;
    if ((rc = mmfs__manifest_write(&db->log)) != MMFS_OK) {
        /* Only a failed fsync of ROOT may come after the rename: ask. */
        char msg[600];
        snprintf(msg, sizeof msg, "%s", mmfs_errmsg(NULL));
        int switched = mmfs__manifest_reread(&db->log) == MMFS_OK && db->log.first_seg == o->first;
        if (!switched) {
            db->log.first_seg = old_first;
            db->log.last_seg = old_mlast;
            db->log.compact_seg = old_cseg;
            db->log.lsn_floor = old_lf;
            db->log.id_floor = old_if;
            atomic_store(&db->log.shm->first_segment, old_first);
            mmfs__cout_remove(db, o->first, last);
            return mmfs__err(rc, "compact: %s (the store is unchanged)", msg);
        }
    }
    char from[4096], to[4096];
    for (uint32_t no = o->first; no <= last; no++) {
        mmfs__cseg_path(&db->log, no, from, sizeof from);
        mmfs__seg_path(&db->log, no, to, sizeof to);
        (void)rename(from, to); /* what fails here, open finishes */
    }
    (void)mmfs__fsync_dir(db->log.log_dir);

    /* This handle now reads the new log. */
    if ((rc = rebase(db, o, last, end)) != MMFS_OK) return rc;
    uint64_t pos = atomic_load(&db->applied);
    pthread_mutex_lock(&db->log.smu);
    db->log.written_pos = db->log.durable_pos = db->log.synced_pos = db->log.stamp_pos = pos;
    db->log.written_lsn = db->log.durable_lsn = db->next_lsn - 1;
    db->log.written_fd = mmfs__seg_last(&db->log)->fd;
    pthread_mutex_unlock(&db->log.smu);
    atomic_store(&db->log.shm->durable, pos);
    atomic_store_explicit(&db->log.shm->written, pos, memory_order_release);

    for (uint32_t no = old_first; no <= old_last; no++) {
        mmfs__seg_path(&db->log, no, from, sizeof from);
        (void)unlink(from); /* what is left, open removes (below first_segment) */
    }
    (void)mmfs__fsync_dir(db->log.log_dir);
    res->bytes_after = log_bytes(db);
    res->kept = o->kept;
    res->dropped = o->dropped;
    return MMFS_OK;
}

int mmfs_compact(mmfs_db *db, const mmfs_compact_opts *opts, mmfs_compact_result *out) {
    mmfs_compact_result res;
    memset(&res, 0, sizeof res);
    if (out) memset(out, 0, sizeof *out);
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if (db->opt.readonly) return mmfs__err(MMFS_READONLY, "%s: opened read-only: cannot compact", db->dir);
    if (mmfs__in_own_writer(db)) return mmfs__err(MMFS_BUSY, "%s: a hook called back into its own store (compact)", db->dir);
    if (opts && opts->now < 0) return mmfs__err(MMFS_INVALID, "compact: now: negative");
    if (atomic_exchange(&db->compacting, 1)) return mmfs__err(MMFS_BUSY, "%s: a compaction already runs", db->dir);
    uint64_t t0 = now_ms();
    int64_t now = opts && opts->now ? opts->now : (int64_t)time(NULL);
    rc = compact(db, now, &res);
    /* Checkpoints made before point into the old segments (stale now), so
    ** the next open would replay the whole compacted log: write one of the
    ** new log, unless checkpoints are off.  It is derived data: if it
    ** cannot be written, the compaction still stands. */
    if (rc == MMFS_OK && db->opt.checkpoint_bytes) (void)mmfs_checkpoint(db);
    atomic_store(&db->compacting, 0);
    res.ms = now_ms() - t0;
    if (rc == MMFS_OK && out) *out = res;
    return rc;
}

/* ------------------------------------------------- compaction.when */

/* How often, at most, a handle asks compaction.when after its commits: a
** commit then pays one atomic load and a coarse clock read (W6). */
#define WHEN_EVERY_MS 1000

#ifdef MMFS_HAVE_POLICY
static uint64_t coarse_ms(void) {
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *background(void *ud) {
    mmfs_db *db = ud;
    (void)mmfs_compact(db, NULL, NULL); /* BUSY when the caller compacts: fine */
    pthread_mutex_lock(&db->log.smu);
    db->bg_done = 1;
    pthread_mutex_unlock(&db->log.smu);
    return NULL;
}
#endif

void mmfs__compact_join(mmfs_db *db) {
    pthread_mutex_lock(&db->log.smu);
    int on = db->bg_on;
    db->bg_on = 0;
    db->bg_stop = 1;
    pthread_mutex_unlock(&db->log.smu);
    if (on) pthread_join(db->bg, NULL);
}

void mmfs__compact_maybe(mmfs_db *db) {
#ifdef MMFS_HAVE_POLICY
    uint64_t t = coarse_ms(), last = atomic_load_explicit(&db->when_ms, memory_order_relaxed);
    if (t - last < WHEN_EVERY_MS || atomic_load_explicit(&db->compacting, memory_order_relaxed)) return;
    if (!atomic_compare_exchange_strong(&db->when_ms, &last, t)) return; /* another thread asks */
    if (pthread_mutex_trylock(&db->wmu) != 0) return; /* a writer is in: next time */
    int yes = 0;
    if (db->policy) {
        mmfs_store_stats st;
        memset(&st, 0, sizeof st);
        mmfs__engine_stats(db->eng, &st); /* a wmu holder reads the engine without rw */
        st.log_bytes = log_bytes(db);
        st.segments = db->log.nsegs;
        st.lsn = db->next_lsn - 1;
        st.dead_bytes = db->rec_bytes > st.live_bytes ? db->rec_bytes - st.live_bytes : 0;
        /* A when that raises or runs out of budget says no. */
        (void)mmfs__policy_when(db->policy, &st, &yes);
    }
    pthread_mutex_unlock(&db->wmu);
    if (!yes) return;
    pthread_mutex_lock(&db->log.smu);
    if (db->bg_on && db->bg_done) { /* the last one ended: reap it */
        pthread_t old = db->bg;
        db->bg_on = 0;
        pthread_mutex_unlock(&db->log.smu);
        pthread_join(old, NULL);
        pthread_mutex_lock(&db->log.smu);
    }
    if (!db->bg_on && !db->bg_stop) {
        db->bg_done = 0;
        if (pthread_create(&db->bg, NULL, background, db) == 0) db->bg_on = 1;
    }
    pthread_mutex_unlock(&db->log.smu);
#else
    (void)db;
#endif
}
