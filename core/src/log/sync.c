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
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

void mmfs__sync_written(mmfs__log *lg, uint64_t pos, uint64_t lsn, int fd) {
    pthread_mutex_lock(&lg->smu);
    if (pos > lg->written_pos) {
        lg->written_pos = pos;
        lg->written_lsn = lsn;
        lg->written_fd = fd;
    }
    pthread_mutex_unlock(&lg->smu);
}

int mmfs__sync_check(mmfs__log *lg) {
    pthread_mutex_lock(&lg->smu);
    int failed = lg->sync_failed;
    pthread_mutex_unlock(&lg->smu);
    if (failed)
        return mmfs__err(MMFS_READONLY, "writes refused since an fsync failed (%s); reopen the store",
                         lg->sync_err);
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
static void stamp(mmfs__log *lg, int fd, uint64_t target) {
    if (target > lg->synced_pos) lg->synced_pos = target;
    if (lg->opt->readonly || target <= lg->stamp_pos) return;
    uint64_t t = now_ns();
    if (lg->opt->sync == MMFS_SYNC_ALWAYS && t - lg->stamp_ns < (uint64_t)MMFS__STAMP_MS * 1000000u &&
        MMFS__POS_SEG(target) == MMFS__POS_SEG(lg->stamp_pos))
        return;
    mmfs__seg_stamp(fd, MMFS__POS_OFF(target));
    lg->stamp_pos = target;
    lg->stamp_ns = t;
}

void mmfs__sync_stamp_final(mmfs__log *lg) {
    pthread_mutex_lock(&lg->smu);
    /* only what this handle's own syncs covered: frames it merely found
    ** in the file at open may never have reached the disk */
    uint64_t pos = lg->synced_pos;
    int fd = lg->written_fd, own = MMFS__POS_SEG(pos) == MMFS__POS_SEG(lg->written_pos);
    pthread_mutex_unlock(&lg->smu);
    /* written_fd holds synced_pos only when both are in one segment */
    if (!lg->opt->readonly && own && fd >= 0 && pos > lg->stamp_pos) {
        mmfs__seg_stamp(fd, MMFS__POS_OFF(pos));
        if (fdatasync(fd) == 0) lg->stamp_pos = pos;
    }
}

int mmfs__sync_wait(mmfs__log *lg, uint64_t pos) {
    pthread_mutex_lock(&lg->smu);
    while (lg->durable_pos < pos) {
        if (lg->sync_failed) break;
        uint64_t shared = atomic_load_explicit(&lg->shm->durable, memory_order_acquire);
        if (shared >= pos && shared <= lg->written_pos) {
            /* Another process's fdatasync covered our frames. */
            lg->durable_pos = shared;
            break;
        }
        if (lg->syncing) {
            pthread_cond_wait(&lg->scond, &lg->smu);
            continue;
        }
        lg->syncing = 1;
        uint64_t target = lg->written_pos, lsn = lg->written_lsn;
        int fd = lg->written_fd;
        pthread_mutex_unlock(&lg->smu);
        int rc = fdatasync(fd), e = errno;
        /* Still the only syncer here: stamps grow in this process. */
        if (rc == 0) stamp(lg, fd, target);
        pthread_mutex_lock(&lg->smu);
        lg->syncing = 0;
        if (rc < 0) {
            lg->sync_failed = 1;
            snprintf(lg->sync_err, sizeof lg->sync_err, "fdatasync of %s/log: %s", lg->dir, strerror(e));
        } else if (target > lg->durable_pos) {
            lg->durable_pos = target;
            lg->durable_lsn = lsn;
            if (!lg->opt->readonly) {
                uint64_t cur = atomic_load(&lg->shm->durable);
                while (cur < target && !atomic_compare_exchange_weak(&lg->shm->durable, &cur, target)) {
                }
            }
        }
        pthread_cond_broadcast(&lg->scond);
    }
    int failed = lg->sync_failed && lg->durable_pos < pos;
    pthread_mutex_unlock(&lg->smu);
    if (failed)
        return mmfs__err(MMFS_READONLY, "writes refused since an fsync failed (%s); reopen the store",
                         lg->sync_err);
    return MMFS_OK;
}

int mmfs__sync_all(mmfs__log *lg) {
    if (lg->opt->readonly) return MMFS_OK;
    pthread_mutex_lock(&lg->smu);
    uint64_t pos = lg->written_pos;
    pthread_mutex_unlock(&lg->smu);
    return mmfs__sync_wait(lg, pos);
}

/* The batch-mode flusher: makes what was written durable at most sync_ms
** after it was written. */
static void *flusher(void *arg) {
    mmfs__log *lg = arg;
    pthread_mutex_lock(&lg->smu);
    while (!lg->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)lg->opt->sync_ms * 1000000L;
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&lg->fcond, &lg->smu, &ts);
        if (lg->stopping || lg->sync_failed) continue;
        if (lg->written_pos > lg->durable_pos) {
            uint64_t pos = lg->written_pos;
            pthread_mutex_unlock(&lg->smu);
            mmfs__sync_wait(lg, pos);
            pthread_mutex_lock(&lg->smu);
        }
    }
    pthread_mutex_unlock(&lg->smu);
    return NULL;
}

int mmfs__flusher_start(mmfs__log *lg) {
    if (pthread_cond_init(&lg->fcond, NULL)) return mmfs__err(MMFS_NOMEM, "cannot make a condition");
    lg->stopping = 0;
    if (pthread_create(&lg->flusher, NULL, flusher, lg)) {
        pthread_cond_destroy(&lg->fcond);
        return mmfs__err(MMFS_NOMEM, "cannot start the sync thread");
    }
    lg->flusher_on = 1;
    return MMFS_OK;
}

void mmfs__flusher_stop(mmfs__log *lg) {
    if (!lg->flusher_on) return;
    pthread_mutex_lock(&lg->smu);
    lg->stopping = 1;
    pthread_cond_signal(&lg->fcond);
    pthread_mutex_unlock(&lg->smu);
    pthread_join(lg->flusher, NULL);
    pthread_cond_destroy(&lg->fcond);
    lg->flusher_on = 0;
}
