/*
** watch.c: waking subscribers for updates made by other processes.  While
** a handle has subscriptions, one thread watches the log directory with
** inotify (a pwrite to a segment raises IN_MODIFY) and, at least every
** 50 ms where inotify is missing or silent, compares the state version in
** LOCK's shared page with the engine's; when they differ it catches up,
** and applying the STATE record wakes the subscribers.
*/
#include "db.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

static void *watcher(void *arg) {
    mmfs_db *db = arg;
    int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ino >= 0 && inotify_add_watch(ino, db->log.log_dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO) < 0) {
        close(ino);
        ino = -1;
    }
    char buf[4096];
    for (;;) {
        pthread_mutex_lock(&db->log.smu);
        int stop = db->watch_stop;
        pthread_mutex_unlock(&db->log.smu);
        if (stop) break;
        if (ino >= 0) {
            struct pollfd p = {ino, POLLIN, 0};
            if (poll(&p, 1, 50) > 0)
                while (read(ino, buf, sizeof buf) > 0) {
                }
        } else {
            usleep(50000);
        }
        uint64_t shared = atomic_load_explicit(&db->log.shm->state_version, memory_order_acquire);
        pthread_rwlock_rdlock(&db->rw);
        uint64_t mine = mmfs__engine_state_version(db->eng);
        pthread_rwlock_unlock(&db->rw);
        if (shared != mine) mmfs__catch_up(db);
    }
    if (ino >= 0) close(ino);
    return NULL;
}

int mmfs__watch_start(mmfs_db *db) {
    pthread_mutex_lock(&db->log.smu);
    int rc = MMFS_OK;
    if (!db->watch_on) {
        db->watch_stop = 0;
        if (pthread_create(&db->watcher, NULL, watcher, db) == 0)
            db->watch_on = 1;
        else
            rc = mmfs__err(MMFS_NOMEM, "cannot start the state watcher thread");
    }
    pthread_mutex_unlock(&db->log.smu);
    return rc;
}

void mmfs__watch_stop(mmfs_db *db) {
    pthread_mutex_lock(&db->log.smu);
    int on = db->watch_on;
    db->watch_stop = 1;
    pthread_mutex_unlock(&db->log.smu);
    if (on) pthread_join(db->watcher, NULL);
    db->watch_on = 0;
}
