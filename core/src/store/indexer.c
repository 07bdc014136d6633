/*
** indexer.c: the index work of commits, on a thread beside the writer
** (mmfs__indexer_kick, mmfs__indexer_stop).
**
** A commit applies its memories and documents to the engine and queues
** their index work (engine.h, mmfs__mems: tokenizing, postings); the
** queue used to be drained by the committing thread itself once it left
** the writer's lock.  Now the commit wakes this handle's indexer and
** returns: the next commit builds its frame while the indexer tokenizes
** the last one's texts, on the other core.
**
** Invariants:
** - Nothing reads an index without draining the queue first (searches,
**   a checkpoint's segment: engine.h), so a search still sees every
**   memory applied before it; the indexer only does that work earlier.
**   The queue is derived state: whatever is left at close is dropped, as
**   an engine's index is (the log and index segments rebuild it).
** - The queue stays short: past IXQ_INLINE ops waiting, a commit drains
**   it itself (what it did before), so a writer faster than indexing
**   waits for it rather than growing the heap without bound.
** - At rest there is no thread: the indexer ends after LINGER_MS
**   without work (like the checkpointer, it is started by a commit).
** - The engine drained is the one in force when the indexer looks
**   (mmfs__index_drain counts itself in it, so a checkpoint switch keeps
**   it whole meanwhile); a drain of an engine replaced meanwhile is
**   wasted work, never a use after free.
** - Lock order: imu is innermost (nothing is taken while holding it but
**   the thread start).
*/
#include "db.h"
#include "engine.h"

#include <errno.h>
#include <time.h>

#define IXQ_INLINE 16384 /* ops waiting past which a commit drains itself */
#define LINGER_MS 200    /* an idle indexer ends after this */

/* The index work waiting in the engine in force (under the read side: a
** switch or a reload frees or replaces it under the write side). */
static size_t pending_now(mmfs_db *db) {
    pthread_rwlock_rdlock(&db->rw);
    size_t n = mmfs__engine_index_pending(db->eng);
    pthread_rwlock_unlock(&db->rw);
    return n;
}

/* The indexer thread: drains while commits wake it, ends when idle or
** closing.  A failed drain leaves the work queued (the next search
** drains again and reports it). */
static void *indexer(void *arg) {
    mmfs_db *db = arg;
    pthread_mutex_lock(&db->imu);
    for (;;) {
        if (!db->ix_work && !db->ix_stop) {
            struct timespec t;
            clock_gettime(CLOCK_MONOTONIC, &t);
            t.tv_nsec += (long)LINGER_MS * 1000000L;
            t.tv_sec += t.tv_nsec / 1000000000L;
            t.tv_nsec %= 1000000000L;
            while (!db->ix_work && !db->ix_stop)
                if (pthread_cond_timedwait(&db->icv, &db->imu, &t) == ETIMEDOUT) break;
        }
        if (db->ix_stop || !db->ix_work) break;
        db->ix_work = 0;
        pthread_mutex_unlock(&db->imu);
        (void)mmfs__index_drain(db);
        pthread_mutex_lock(&db->imu);
    }
    db->ix_running = 0;
    pthread_mutex_unlock(&db->imu);
    return NULL;
}

void mmfs__indexer_kick(mmfs_db *db) {
    size_t n = pending_now(db);
    if (!n) return;
    int inline_drain = n > IXQ_INLINE;
    pthread_mutex_lock(&db->imu);
    if (!inline_drain && !db->ix_stop) {
        db->ix_work = 1;
        if (db->ix_running) {
            pthread_cond_signal(&db->icv);
        } else {
            if (db->ix_on) pthread_join(db->ixer, NULL); /* the last one, ended */
            db->ix_on = 0;
            if (pthread_create(&db->ixer, NULL, indexer, db) == 0) db->ix_on = db->ix_running = 1;
            else inline_drain = 1; /* no thread: index here, as before */
        }
    }
    pthread_mutex_unlock(&db->imu);
    if (inline_drain) (void)mmfs__index_drain(db);
}

void mmfs__indexer_stop(mmfs_db *db) {
    pthread_mutex_lock(&db->imu);
    db->ix_stop = 1;
    int on = db->ix_on;
    db->ix_on = 0;
    pthread_cond_signal(&db->icv);
    pthread_mutex_unlock(&db->imu);
    if (on) pthread_join(db->ixer, NULL);
}

int mmfs__indexer_init(mmfs_db *db) {
    pthread_condattr_t a;
    if (pthread_condattr_init(&a)) return mmfs__err(MMFS_NOMEM, "out of memory");
    int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) || pthread_cond_init(&db->icv, &a);
    pthread_condattr_destroy(&a);
    if (rc) return mmfs__err(MMFS_NOMEM, "out of memory");
    pthread_mutex_init(&db->imu, NULL);
    db->ix_locks = 1;
    return MMFS_OK;
}

void mmfs__indexer_free(mmfs_db *db) {
    if (!db->ix_locks) return;
    /* In a forked child the parent's indexer may be a waiter of icv that
    ** never wakes here: glibc's pthread_cond_destroy would wait for it
    ** for ever.  A child only frees the handle: leave both as they are. */
    if (atomic_load(&mmfs__fork_gen) != db->fork_gen) return;
    pthread_cond_destroy(&db->icv);
    pthread_mutex_destroy(&db->imu);
    db->ix_locks = 0;
}
