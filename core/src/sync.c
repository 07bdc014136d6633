/*
** sync.c: durability.  Frames are written under the writer lock; making
** them durable happens outside it: one fdatasync covers every frame
** written so far (group commit), so concurrent callers in "always" mode
** share one sync, and a writer never waits for another's fsync while it
** holds the lock.  After a failed fsync the handle refuses writes for good
** (READONLY): the kernel may have dropped the dirty pages, so a retry that
** succeeded would lie.  A write whose own frame that sync was to cover
** gets MMFS_IO saying it may be present after reopen (write.c).  After
** each sync that succeeded, the segment's durable stamp is moved on.
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
        if (rc == 0 && !db->opt.readonly) mmfs__seg_stamp(fd, MMFS__POS_OFF(target));
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

int mmfs_sync(mmfs_db *db) {
    int rc = mmfs__usable(db);
    if (rc) return rc;
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
