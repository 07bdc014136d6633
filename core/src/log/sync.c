/*
** sync.c: durability.  Frames are written under the writer lock; making
** them durable happens outside it: one fdatasync covers every frame
** written so far (group commit), so concurrent callers in "always" mode
** share one sync, and a writer never waits for another's fsync while it
** holds the lock.  After a failed fsync the handle refuses writes for good
** (READONLY): the kernel may have dropped the dirty pages, so a retry that
** succeeded would lie.  A write whose own frame that sync was to cover
** gets MMFS_IO saying it may be present after reopen (write.c).  After
** a sync that succeeded, the segment's durable stamp is moved on (see
** stamp() for how often).
**
** Invariant: durable_pos <= written_pos; both only grow.
*/
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

void mmfs__sync_written(mmfs_db *db, uint64_t pos, uint64_t lsn, int fd) {
    pthread_mutex_lock(&db->smu);
    if (pos > db->written_pos) {
        db->written_pos = pos;
        db->written_lsn = lsn;
        db->written_fd = fd;
    }
    pthread_mutex_unlock(&db->smu);
}

int mmfs__sync_check(mmfs_db *db) {
    pthread_mutex_lock(&db->smu);
    int failed = db->sync_failed;
    pthread_mutex_unlock(&db->smu);
    if (failed)
        return mmfs__err(MMFS_READONLY, "writes refused since an fsync failed (%s); reopen the store",
                         db->sync_err);
    return MMFS_OK;
}

/* How often "always" mode moves the durable stamp on.  A stamp dirties the
** segment's header page, a second block for the next fdatasync to write:
** stamping after every sync took W1 (durable single appends) from about
** 8,700 to 5,400 per second, 7 alternated rounds on one machine.  Held
** back to this interval, a truncation can take the frames synced in the
** last MMFS__STAMP_MS before it unnoticed (they read as a torn tail); the
** rest is CORRUPT at open.  Batch and none modes sync at most every
** sync_ms and stamp every time. */
#define MMFS__STAMP_MS 100

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* After a sync of FD that covered TARGET.  Caller: the one syncer. */
static void stamp(mmfs_db *db, int fd, uint64_t target) {
    if (target > db->synced_pos) db->synced_pos = target;
    if (db->opt.readonly || target <= db->stamp_pos) return;
    uint64_t t = now_ns();
    if (db->opt.sync == MMFS_SYNC_ALWAYS && t - db->stamp_ns < (uint64_t)MMFS__STAMP_MS * 1000000u &&
        MMFS__POS_SEG(target) == MMFS__POS_SEG(db->stamp_pos))
        return;
    mmfs__seg_stamp(fd, MMFS__POS_OFF(target));
    db->stamp_pos = target;
    db->stamp_ns = t;
}

void mmfs__sync_stamp_final(mmfs_db *db) {
    pthread_mutex_lock(&db->smu);
    /* only what this handle's own syncs covered: frames it merely found
    ** in the file at open may never have reached the disk */
    uint64_t pos = db->synced_pos;
    int fd = db->written_fd, own = MMFS__POS_SEG(pos) == MMFS__POS_SEG(db->written_pos);
    pthread_mutex_unlock(&db->smu);
    /* written_fd holds synced_pos only when both are in one segment */
    if (!db->opt.readonly && own && fd >= 0 && pos > db->stamp_pos) {
        mmfs__seg_stamp(fd, MMFS__POS_OFF(pos));
        if (fdatasync(fd) == 0) db->stamp_pos = pos;
    }
}

int mmfs__sync_wait(mmfs_db *db, uint64_t pos) {
    pthread_mutex_lock(&db->smu);
    while (db->durable_pos < pos) {
        if (db->sync_failed) break;
        uint64_t shared = atomic_load_explicit(&db->shm->durable, memory_order_acquire);
        if (shared >= pos && shared <= db->written_pos) {
            /* Another process's fdatasync covered our frames. */
            db->durable_pos = shared;
            break;
        }
        if (db->syncing) {
            pthread_cond_wait(&db->scond, &db->smu);
            continue;
        }
        db->syncing = 1;
        uint64_t target = db->written_pos, lsn = db->written_lsn;
        int fd = db->written_fd;
        pthread_mutex_unlock(&db->smu);
        int rc = fdatasync(fd), e = errno;
        /* Still the only syncer here: stamps grow in this process. */
        if (rc == 0) stamp(db, fd, target);
        pthread_mutex_lock(&db->smu);
        db->syncing = 0;
        if (rc < 0) {
            db->sync_failed = 1;
            snprintf(db->sync_err, sizeof db->sync_err, "fdatasync of %s/log: %s", db->dir, strerror(e));
        } else if (target > db->durable_pos) {
            db->durable_pos = target;
            db->durable_lsn = lsn;
            if (!db->opt.readonly) {
                uint64_t cur = atomic_load(&db->shm->durable);
                while (cur < target && !atomic_compare_exchange_weak(&db->shm->durable, &cur, target)) {
                }
            }
        }
        pthread_cond_broadcast(&db->scond);
    }
    int failed = db->sync_failed && db->durable_pos < pos;
    pthread_mutex_unlock(&db->smu);
    if (failed)
        return mmfs__err(MMFS_READONLY, "writes refused since an fsync failed (%s); reopen the store",
                         db->sync_err);
    return MMFS_OK;
}

int mmfs__sync_all(mmfs_db *db) {
    if (db->opt.readonly) return MMFS_OK;
    pthread_mutex_lock(&db->smu);
    uint64_t pos = db->written_pos;
    pthread_mutex_unlock(&db->smu);
    return mmfs__sync_wait(db, pos);
}

/* The batch-mode flusher: makes what was written durable at most sync_ms
** after it was written. */
static void *flusher(void *arg) {
    mmfs_db *db = arg;
    pthread_mutex_lock(&db->smu);
    while (!db->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)db->opt.sync_ms * 1000000L;
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&db->fcond, &db->smu, &ts);
        if (db->stopping || db->sync_failed) continue;
        if (db->written_pos > db->durable_pos) {
            uint64_t pos = db->written_pos;
            pthread_mutex_unlock(&db->smu);
            mmfs__sync_wait(db, pos);
            pthread_mutex_lock(&db->smu);
        }
    }
    pthread_mutex_unlock(&db->smu);
    return NULL;
}

int mmfs__flusher_start(mmfs_db *db) {
    if (pthread_cond_init(&db->fcond, NULL)) return mmfs__err(MMFS_NOMEM, "cannot make a condition");
    db->stopping = 0;
    if (pthread_create(&db->flusher, NULL, flusher, db)) {
        pthread_cond_destroy(&db->fcond);
        return mmfs__err(MMFS_NOMEM, "cannot start the sync thread");
    }
    db->flusher_on = 1;
    return MMFS_OK;
}

void mmfs__flusher_stop(mmfs_db *db) {
    if (!db->flusher_on) return;
    pthread_mutex_lock(&db->smu);
    db->stopping = 1;
    pthread_cond_signal(&db->fcond);
    pthread_mutex_unlock(&db->smu);
    pthread_join(db->flusher, NULL);
    pthread_cond_destroy(&db->fcond);
    db->flusher_on = 0;
}
