/*
** write.c: the writer's steps.  Every write (a single call is a batch of
** one command, batch.c) commits as one frame, in steps that are separate
** functions (DESIGN.md, "Writing"):
**
**   writer_enter   in-process mutex, then flock on LOCK, then catch up
**   policy step    the Lua policy, then the C hook (hook.c), under the lock
**   prepare        drop deletes of missing entries, assign ids, versions,
**                  LSNs
**   write_frame    encode, roll the segment if full, pwrite
**   publish        apply to the engine, publish the written end
**   writer_leave   release flock and mutex
**   then durability outside the lock (sync.c).
**
** Invariant: nothing is published (engine, LOCK page) before the whole
** frame is written, and a frame whose write failed is zeroed again under
** the lock, so a failed write leaves nothing behind, not even after a
** crash.  A frame is only ever written where the shared page says the log
** ends and where no frame is (a second writer beside this one, through a
** replaced LOCK, is refused rather than overwritten).
*/
#include "batch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The handle whose writer lock this thread holds, so that a hook calling
** back into its own store gets BUSY instead of a deadlock. */
static _Thread_local mmfs_db *tl_writer;

/* ------------------------------------------------------- writer steps */

static int writer_enter(mmfs_db *db) {
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if (tl_writer == db)
        return mmfs__err(MMFS_BUSY, "%s: a hook called back into its own store", db->dir);
    if (db->opt.readonly) return mmfs__err(MMFS_READONLY, "%s: opened read-only", db->dir);
    if ((rc = mmfs__sync_check(&db->log)) != MMFS_OK) return rc;
    /* lock_timeout_ms = 0 promises an event loop no wait, also not for
    ** another thread of this process in the middle of its write. */
    if (db->opt.lock_timeout_ms == 0) {
        if (pthread_mutex_trylock(&db->wmu) != 0)
            return mmfs__err(MMFS_BUSY, "%s: another thread is writing "
                                        "(lock_timeout_ms = 0: not waiting)", db->dir);
    } else {
        pthread_mutex_lock(&db->wmu);
    }
    if ((rc = mmfs__lock_acquire(db)) != MMFS_OK) {
        pthread_mutex_unlock(&db->wmu);
        return rc;
    }
    rc = mmfs__lock_check(db);
    if (rc == MMFS_OK)
        rc = mmfs__catch_up_locked(db, atomic_load_explicit(&db->log.shm->written, memory_order_acquire));
    if (rc) {
        mmfs__lock_release(db);
        pthread_mutex_unlock(&db->wmu);
    } else {
        tl_writer = db;
    }
    return rc;
}

int mmfs__in_own_writer(const mmfs_db *db) { return tl_writer == db; }

static void writer_leave(mmfs_db *db) {
    tl_writer = NULL;
    mmfs__lock_release(db);
    pthread_mutex_unlock(&db->wmu);
}

/* Equal keys: memory ids, or byte strings. */
static int u64_eq(uint64_t a, uint64_t b) { return a == b; }
#define KEY_EQ(a, b) _Generic((a), mmfs_slice: mmfs__slice_eq, default: u64_eq)((a), (b))

/* The type each delete removes an entry of (0: not a delete). */
#define TARGET_OF_DEL(T, k, tk, has) MMFS__R_##T
#define TARGET_OF_NODEL 0
#define TARGET_ROW(N, code, role, C, m, F, D, ...) [MMFS__R_##N] = TARGET_OF_##D,
static const uint8_t target_of[MMFS__R_MAX + 1] = {MMFS__RECORDS(TARGET_ROW)};

static int is_delete(int type) { return type > 0 && type <= MMFS__R_MAX && target_of[type] != 0; }

/* Does command A act on the entry that delete B removes? */
#define SAME_DEL(T, k, tk, has)                                                                    \
    (a->type == b->type && KEY_EQ(a->u.k, b->u.k)) || (a->type == MMFS__R_##T && KEY_EQ(a->u.tk, b->u.k))
#define SAME_CASE(N, code, role, C, m, F, D, ...) MMFS__IF_DEL_##D(case MMFS__R_##N : return SAME_##D;)
static int same_target(const mmfs__rec *a, const mmfs__rec *b) {
    switch (b->type) { /* prepare gave earlier appends their ids already */
        MMFS__RECORDS(SAME_CASE)
    }
    return 0;
}

/* Does the target of delete C exist, given the kept commands before it? */
#define HAS_DEL(T, k, tk, has) has(db->eng, c->u.k)
#define HAS_CASE(N, code, role, C, m, F, D, ...) MMFS__IF_DEL_##D(case MMFS__R_##N : return HAS_##D;)
static int delete_finds(mmfs_db *db, mmfs__rec *cmds, const char *keep, size_t i) {
    const mmfs__rec *c = &cmds[i];
    for (size_t j = i; j-- > 0;)
        if (keep[j] && same_target(&cmds[j], c)) return !is_delete(cmds[j].type);
    switch (c->type) {
        MMFS__RECORDS(HAS_CASE)
    }
    return 1;
}

/* Decides which commands are written and gives them ids, versions and
** LSNs.  KEEP[i] is set for the kept ones; returns their count. */
static size_t prepare(mmfs_db *db, mmfs__rec *cmds, size_t n, char *keep) {
    uint64_t id = mmfs__next_memory_id(db); /* past compaction's floor too */
    uint64_t version = mmfs__engine_state_version(db->eng);
    uint64_t lsn = db->next_lsn;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        mmfs__rec *c = &cmds[i];
        keep[i] = !is_delete(c->type) || delete_finds(db, cmds, keep, i);
        if (!keep[i]) continue;
        if (c->type == MMFS__R_MEMORY) c->u.mem.id = id++;
        if (c->type == MMFS__R_STATE) c->u.state.version = ++version;
        c->lsn = lsn++;
        kept++;
    }
    return kept;
}

static int grow_scratch(mmfs_db *db, size_t need) {
    if (db->scratch_cap >= need) return MMFS_OK;
    size_t cap = db->scratch_cap ? db->scratch_cap : 65536;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(db->scratch, cap);
    if (!p) return mmfs__err(MMFS_NOMEM, "out of memory for a %zu-byte frame", need);
    db->scratch = p;
    db->scratch_cap = cap;
    return MMFS_OK;
}

/* Zeroes [OFF, OFF+LEN) of S after a frame write that failed part way,
** so nothing of it stays behind (not even for a crash before the next
** write), and the append position reads as free again.  0 or errno. */
static int undo_write(const mmfs__seg *s, uint64_t off, size_t len) {
    static const uint8_t zeros[65536];
    while (len) {
        size_t n = len < sizeof zeros ? len : sizeof zeros;
        ssize_t w = pwrite(s->fd, zeros, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        off += (uint64_t)w;
        len -= (size_t)w;
    }
    return 0;
}

static int pwrite_all(mmfs_db *db, const mmfs__seg *s, const uint8_t *buf, size_t len, uint64_t off) {
    while (len) {
        ssize_t w = pwrite(s->fd, buf, len, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            char path[4096];
            mmfs__seg_path(&db->log, s->no, path, sizeof path);
            return mmfs__err_sys(w < 0 ? errno : EIO, "write", path);
        }
        buf += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return MMFS_OK;
}

/* Makes room for a frame of FLEN bytes: seals a full segment (the seal is
** synced before the next segment exists, so a sealed segment is whole) and
** starts the next one. */
static int ensure_space(mmfs_db *db, size_t flen) {
    size_t seal = mmfs__frame_size(0, &db->log.sum);
    mmfs__seg *s = mmfs__seg_last(&db->log);
    if (!s->sealed && s->end + flen + seal <= s->size) return MMFS_OK;
    int rc;
    if (!s->sealed) {
        uint8_t buf[64];
        mmfs__frame_finish(buf, db->next_lsn, 0, MMFS__FRAME_SEAL, 0, &db->log.sum);
        if ((rc = pwrite_all(db, s, buf, seal, s->end)) != MMFS_OK) return rc;
        if (fdatasync(s->fd) < 0) {
            char path[4096];
            mmfs__seg_path(&db->log, s->no, path, sizeof path);
            rc = mmfs__err_sys(errno, "fdatasync", path);
            pthread_mutex_lock(&db->log.smu);
            db->log.sync_failed = 1;
            snprintf(db->log.sync_err, sizeof db->log.sync_err, "%s", mmfs_errmsg(NULL));
            pthread_mutex_unlock(&db->log.smu);
            return rc;
        }
        s->sealed = 1;
    }
    uint64_t size = db->log.segment_size, need = MMFS__SEG_HDR + flen + seal;
    if (need > size) size = (need + 4095) & ~(uint64_t)4095;
    return mmfs__seg_create(&db->log, s->no + 1, size);
}

/* A lone writer in "always" mode starts writing its frame's pages at once,
** so that the device works while the engine applies the frame and the
** fdatasync only waits for it and flushes (W1: about a tenth more appends/s).
** Not when other threads of this process commit too: their frames land in
** the same page, which would then be written twice, the second write
** waiting for the first (W1g: nearly a third fewer appends/s).  Only a hint: an
** I/O error surfaces from the fdatasync. */
static void start_writeback(mmfs_db *db, const mmfs__seg *s, uint64_t off, size_t len) {
#ifdef SYNC_FILE_RANGE_WRITE
    if (db->opt.sync == MMFS_SYNC_ALWAYS && atomic_load_explicit(&db->committers, memory_order_relaxed) == 1)
        (void)sync_file_range(s->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
#else
    (void)db, (void)s, (void)off, (void)len;
#endif
}

/* Encodes the kept commands into one frame and writes it at the end of the
** log.  *pos gets the position past the frame. */
static int write_frame(mmfs_db *db, const mmfs__rec *cmds, size_t n, const char *keep, size_t kept,
                       uint64_t *pos, mmfs__seg **seg, uint64_t *off) {
    size_t body = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i]) body += mmfs__rec_size(&cmds[i]);
    if (body > MMFS__FRAME_MAX - 4096)
        return mmfs__err(MMFS_INVALID, "batch: %zu bytes is over the frame limit", body);
    size_t flen = mmfs__frame_size(body, &db->log.sum);
    int rc;
    if ((rc = grow_scratch(db, flen)) != MMFS_OK) return rc;
    uint8_t *p = db->scratch + MMFS__FRAME_HDR;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i]) continue;
        mmfs__rec_encode(&cmds[i], p);
        p += mmfs__rec_size(&cmds[i]);
    }
    mmfs__frame_finish(db->scratch, db->next_lsn, (uint32_t)kept, 0, body, &db->log.sum);
    if ((rc = ensure_space(db, flen)) != MMFS_OK) return rc;
    mmfs__seg *s = mmfs__seg_last(&db->log);
    if ((rc = mmfs__seg_zero_ahead(&db->log, s, s->end + flen)) != MMFS_OK) return rc;
    /* Never write over a frame: the append position must be where the
    ** shared page says the log ends, and hold no frame.  Either failing
    ** means another writer got in beside this one (LOCK replaced). */
    if (atomic_load_explicit(&db->log.shm->written, memory_order_acquire) != atomic_load(&db->applied))
        return mmfs__err(MMFS_IO, "%s/LOCK: its shared page does not say the log ends where this handle "
                                  "is (log/%08u.seg offset %llu); refusing to write (was LOCK replaced? "
                                  "reopen the store)",
                         db->dir, s->no, (unsigned long long)s->end);
    if (s->end + MMFS__FRAME_HDR <= s->size && mmfs__frame_header_ok(s->map + s->end))
        return mmfs__err(MMFS_IO, "log/%08u.seg: offset %llu: a frame this handle did not write is at the "
                                  "append position; refusing to write over it (was LOCK replaced? reopen "
                                  "the store)",
                         s->no, (unsigned long long)s->end);
    if ((rc = pwrite_all(db, s, db->scratch, flen, s->end)) != MMFS_OK) {
        if (undo_write(s, s->end, flen)) { /* the bytes stay: no write may follow them */
            pthread_mutex_lock(&db->log.smu);
            db->log.sync_failed = 1;
            snprintf(db->log.sync_err, sizeof db->log.sync_err, "%s (and undoing it failed)", mmfs_errmsg(NULL));
            pthread_mutex_unlock(&db->log.smu);
        }
        return rc;
    }
    start_writeback(db, s, s->end, flen);
    *seg = s;
    *off = s->end;
    *pos = MMFS__POS(s->no, s->end + flen);
    if (db->scratch_cap > ((size_t)4 << 20)) { /* don't keep a huge buffer */
        free(db->scratch);
        db->scratch = NULL;
        db->scratch_cap = 0;
    }
    return MMFS_OK;
}

/* Applies the written frame to the engine (from the mapped log, so the
** engine's pointers are into the map) and publishes the new written end. */
static int publish(mmfs_db *db, mmfs__seg *s, uint64_t off, uint64_t pos) {
    mmfs__frame f;
    const char *why;
    if (!mmfs__frame_check(s->map + off, s->size - off, db->next_lsn, &db->log.sum, &f, &why)) {
        int rc = mmfs__err(MMFS_IO, "log/%08u.seg: offset %llu: the frame just written reads back bad (%s)",
                           s->no, (unsigned long long)off, why);
        if (undo_write(s, off, (size_t)(MMFS__POS_OFF(pos) - off))) {
            pthread_mutex_lock(&db->log.smu);
            db->log.sync_failed = 1;
            snprintf(db->log.sync_err, sizeof db->log.sync_err, "%s (and undoing it failed)", mmfs_errmsg(NULL));
            pthread_mutex_unlock(&db->log.smu);
        }
        return rc;
    }
    int rc = MMFS_OK;
    pthread_rwlock_wrlock(&db->rw);
    const uint8_t *p = f.body, *end = f.body + f.body_len;
    for (uint32_t i = 0; i < f.count && rc == MMFS_OK; i++) {
        mmfs__rec r;
        mmfs__rec_decode(p, (size_t)(end - p), &r);
        rc = mmfs__engine_apply(db->eng, &r);
        db->rec_bytes += r.raw_len; /* stats' dead_bytes */
        p += r.raw_len;
    }
    if (rc) {
        /* Out of memory part way: this handle's engine is broken (every
        ** call refuses until reopened, so nothing reads the frame), and the
        ** frame is taken back before anyone else can see it, so that the
        ** failed write does not come back at reopen. */
        atomic_store(&db->broken, 1);
        pthread_rwlock_unlock(&db->rw);
        char cause[400];
        snprintf(cause, sizeof cause, "%s", mmfs_errmsg(NULL));
        int u = undo_write(s, off, (size_t)(MMFS__POS_OFF(pos) - off));
        return mmfs__err(rc, "%s; the write was %s; reopen the store", cause,
                         u ? "written and could not be taken back: it may be present after reopen"
                           : "taken back");
    }
    s->end = MMFS__POS_OFF(pos);
    db->next_lsn = f.first_lsn + f.count;
    db->last_frame = MMFS__POS(s->no, off); /* a checkpoint's anchor (ckpt.c) */
    atomic_store(&db->applied, pos);
    pthread_rwlock_unlock(&db->rw);
    mmfs__announce_old(db); /* subscriptions on an engine a rebuild replaced */
    atomic_store_explicit(&db->log.shm->state_version, mmfs__engine_state_version(db->eng), memory_order_relaxed);
    atomic_store_explicit(&db->log.shm->written, pos, memory_order_release);
    mmfs__sync_written(&db->log, pos, db->next_lsn - 1, s->fd);
    return rc;
}

/* compress = "zstd" (engine/ztext.c): once the store holds enough raw
** text and no dictionary, trains one from it and commits it as a DICT
** record in a frame of its own (applied like any frame, so this engine and
** every other process load it in log order); then compresses the memory
** texts of CMDS with the newest dictionary.  After the policy: hooks and
** routes saw the plain text. */
static int compress_step(mmfs_db *db, mmfs__rec *cmds, size_t n) {
    size_t i = 0;
    while (i < n && cmds[i].type != MMFS__R_MEMORY) i++;
    if (i == n) return MMFS_OK;
    if (mmfs__zw_due(&db->zw, db->eng)) {
        mmfs__rec d;
        uint8_t *dict;
        memset(&d, 0, sizeof d);
        int rc = mmfs__zw_train(&db->zw, db->eng, &dict, &d.u.dict.bytes.len, &d.u.dict.id);
        if (rc == MMFS_OK) {
            d.type = MMFS__R_DICT;
            d.lsn = db->next_lsn;
            d.u.dict.bytes.ptr = dict;
            char keep = 1;
            uint64_t pos = 0, off = 0;
            mmfs__seg *s = NULL;
            rc = write_frame(db, &d, 1, &keep, 1, &pos, &s, &off);
            if (rc == MMFS_OK) rc = publish(db, s, off, pos);
            free(dict);
        }
        if (rc && rc != MMFS_NOTFOUND) return rc; /* NOTFOUND: no dictionary yet, texts stay raw */
    }
    return mmfs__zw_pack(&db->zw, db->eng, cmds, n);
}

/* Commits N commands as one frame.  KEEP (N bytes) reports which of the
** caller's commands were written; IDS (may be NULL, N entries) gets the
** memory id given to each caller's append_memory and the version given to
** each update_state. */
int mmfs__commit(mmfs_db *db, mmfs__rec *cmds, size_t n, char *keep, uint64_t *ids) {
    memset(keep, 0, n);
    mmfs_batch work;
    memset(&work, 0, sizeof work);
    int always = db->opt.sync == MMFS_SYNC_ALWAYS;
    if (always) atomic_fetch_add_explicit(&db->committers, 1, memory_order_relaxed);
    int rc = writer_enter(db);
    if (rc) {
        if (always) atomic_fetch_sub_explicit(&db->committers, 1, memory_order_relaxed);
        return rc;
    }
    mmfs__rec *list;
    size_t m;
    char *k2 = NULL;
    uint64_t pos = 0;
    size_t kept = 0;
    if ((rc = mmfs__run_policy(db, cmds, n, &work, &list, &m)) != MMFS_OK) goto leave;
    if (db->log.compress && (rc = compress_step(db, list, m)) != MMFS_OK) goto leave;
    k2 = list == cmds ? keep : malloc(m ? m : 1);
    if (!k2) {
        rc = mmfs__err(MMFS_NOMEM, "out of memory");
        goto leave;
    }
    kept = prepare(db, list, m, k2);
    for (size_t i = 0; i < m; i++) /* before anything is written: no id is consumed */
        if (k2[i] && list[i].type == MMFS__R_MEMORY && (rc = mmfs__mem_id_ok(list[i].u.mem.id))) goto leave;
    if (kept) {
        mmfs__seg *s = NULL;
        uint64_t off = 0;
        rc = write_frame(db, list, m, k2, kept, &pos, &s, &off);
        if (rc == MMFS_OK) rc = publish(db, s, off, pos);
    }
    if (rc == MMFS_OK) {
        for (size_t i = 0; i < m; i++) {
            if (list != cmds && list[i].origin && k2[i]) keep[list[i].origin - 1] = 1;
            if (ids && list[i].origin && list[i].type == MMFS__R_MEMORY) ids[list[i].origin - 1] = list[i].u.mem.id;
            if (ids && list[i].origin && list[i].type == MMFS__R_STATE)
                ids[list[i].origin - 1] = list[i].u.state.version;
        }
    }
leave:
    writer_leave(db);
    /* Index what was applied outside the writer's lock, on the indexer
    ** thread: this caller and the next writer need not wait for it.
    ** Failing there loses nothing: it stays queued, and the next search
    ** drains again and reports. */
    if (rc == MMFS_OK) mmfs__indexer_kick(db);
    if (rc == MMFS_OK) mmfs__ckpt_follow(db, 1); /* a newer checkpoint: two loads unless there is one */
    if (rc == MMFS_OK) mmfs__compact_maybe(db); /* compaction.when, rate-limited */
    if (rc == MMFS_OK) mmfs__ckpt_maybe(db); /* checkpoint_bytes: two loads unless due */
    if (k2 && k2 != keep) free(k2);
    if (work.cmds != cmds) free(work.cmds);
    work.cmds = NULL;
    for (block *b = work.blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    if (rc == MMFS_OK && kept && always && (rc = mmfs__sync_wait(&db->log, pos)) != MMFS_OK) {
        /* The frame is in the file, but whether it reached the disk cannot
        ** be known: the caller must take the write neither as done nor as
        ** failed (a retry could make two). */
        char cause[512];
        snprintf(cause, sizeof cause, "%s", mmfs_errmsg(NULL));
        rc = mmfs__err(MMFS_IO, "%s: this write may be present after reopen", cause);
    }
    if (always) atomic_fetch_sub_explicit(&db->committers, 1, memory_order_relaxed);
    return rc;
}

int mmfs_sync(mmfs_db *db) {
    int rc = mmfs__usable(db);
    return rc ? rc : mmfs__sync_all(&db->log);
}
