/*
** read_state.c: the public state reads and subscriptions
** (mmfs_get_state, mmfs_subscribe_state, mmfs_sub_*): the handle's read
** entry (fork check, catch-up, the engine's read side) and the watcher
** around the engine's state and subscriber list (engine/state.c).
**
** Other processes' updates reach this process when it catches up: the
** watcher thread (watch.c, started at subscribe) does so when the shared
** state version moves, and mmfs_sub_next catches up (through
** mmfs__read_begin) at least every 50 ms while it waits.
**
** Subscriptions keep the db and engine pointers: close them before
** mmfs_close (the same holds for readers and kv iterators).
*/
#include "db.h"
#include "engine.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SUB_POLL_MS 50

int mmfs_get_state(mmfs_db *db, mmfs_slice *value, uint64_t *version) {
    if (!db || !value || !version)
        return mmfs__err(MMFS_INVALID, "get_state: db, value and version must not be NULL");
    value->ptr = NULL;
    value->len = 0;
    *version = 0;
    MMFS__READ_RETURN(db, mmfs__state_get(e, value, version));
}

int mmfs_subscribe_state(mmfs_db *db, mmfs_sub **out) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "subscribe_state: db and out must not be NULL");
    *out = NULL;
    mmfs_sub *sub = calloc(1, sizeof *sub);
    if (!sub) return mmfs__err(MMFS_NOMEM, "subscribe_state: out of memory");
    mmfs__engine *e;
    int rc = mmfs__read_begin(db, &e); /* first: fails on a closed or forked handle */
    if (rc) {
        free(sub);
        return rc;
    }
    sub->db = db;
    sub->e = e;
    sub->fd = -1;
    sub->seen = e->state.version;
    /* Linked while E is the handle's engine: a checkpoint switch frees the
    ** engine it replaces unless a subscription is on it (engine.c). */
    mmfs__state_sub_add(e, sub);
    mmfs__read_end(db);
    /* Updates from other processes must wake this subscription (and make
    ** its descriptor readable) without any call: see watch.c. */
    if ((rc = mmfs__watch_start(db))) {
        mmfs__state_sub_remove(sub);
        free(sub);
        return rc;
    }
    *out = sub;
    return MMFS_OK;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mmfs_sub_next(mmfs_sub *s, int timeout_ms, mmfs_slice *value, uint64_t *version) {
    if (!s || !value || !version)
        return mmfs__err(MMFS_INVALID, "sub_next: sub, value and version must not be NULL");
    value->ptr = NULL;
    value->len = 0;
    *version = 0;
    int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;
    for (;;) {
        mmfs__engine *e;
        int rc = mmfs__read_begin(s->db, &e); /* catches up with other processes */
        if (rc) return rc;
        if (e->state.version > s->seen) {
            uint64_t v = e->state.version;
            rc = mmfs__state_get(e, value, version);
            mmfs__read_end(s->db);
            if (rc) return rc;
            mmfs__state_sub_seen(s, v);
            return MMFS_OK;
        }
        mmfs__read_end(s->db);
        int64_t wait = SUB_POLL_MS;
        if (timeout_ms >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0) return mmfs__err(MMFS_TIMEOUT, "sub_next: no new state within %d ms", timeout_ms);
            if (left < wait) wait = left;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        mmfs__state_sub_wait(s, &ts);
    }
}

int mmfs_sub_fd(mmfs_sub *s) {
    if (!s) return mmfs__err(MMFS_INVALID, "sub_fd: sub is NULL"), -1;
    mmfs__catch_up(s->db); /* so that an update already made elsewhere shows */
    return mmfs__state_sub_fd(s);
}

void mmfs_sub_close(mmfs_sub *s) {
    if (!s) return;
    mmfs__state_sub_remove(s);
    if (s->fd >= 0) close(s->fd);
    free(s);
}
