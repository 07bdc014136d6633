/*
** state.c: the agent's state (latest STATE record and its version) and
** its subscriptions (mmfs_get_state, mmfs_subscribe_state, mmfs_sub_*).
**
** Invariants: state.raw/version change only in apply (engine write side).
** state.mu guards state.notified (the newest version apply announced in
** this process), the subscriber list and each sub's seen and fd; it is
** never held while taking the engine's lock, so apply (which holds the
** write side and then takes mu) cannot deadlock with a waiter.  A waiter
** checks notified under mu before sleeping, so an apply between its check
** under the read lock and its wait is never missed.
**
** Other processes' updates reach this process when it catches up: the
** watcher thread (watch.c, started at subscribe) does so when the shared
** state version moves, and mmfs_sub_next catches up (through
** mmfs__read_begin) at least every 50 ms while it waits.  A sub's
** descriptor turns readable when this process applies a newer version
** (or at mmfs_sub_fd if one is already there).
**
** Subscriptions keep the db and engine pointers: close them before
** mmfs_close (the same holds for readers and kv iterators).
*/
#include "engine.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define SUB_POLL_MS 50

struct mmfs_sub {
    mmfs_db *db;
    mmfs__engine *e;
    uint64_t seen; /* written by sub_next under mu */
    int fd;        /* eventfd, -1 until mmfs_sub_fd */
    struct mmfs_sub *prev, *next;
};

int mmfs__state_init(mmfs__engine *e) {
    mmfs__state *s = &e->state;
    pthread_condattr_t ca;
    if (pthread_mutex_init(&s->mu, NULL)) return mmfs__err(MMFS_NOMEM, "state: cannot make a mutex");
    if (pthread_condattr_init(&ca)) {
        pthread_mutex_destroy(&s->mu);
        return mmfs__err(MMFS_NOMEM, "state: cannot make a condition");
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int bad = pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (bad) {
        pthread_mutex_destroy(&s->mu);
        return mmfs__err(MMFS_NOMEM, "state: cannot make a condition");
    }
    return MMFS_OK;
}

void mmfs__state_free(mmfs__engine *e) {
    /* Subscriptions still open here dangle (see the top of this file). */
    pthread_cond_destroy(&e->state.cv);
    pthread_mutex_destroy(&e->state.mu);
}

static void fd_signal(int fd) {
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof one); /* non-blocking; a full counter is still readable */
    (void)w;
}

static void fd_drain(int fd) {
    uint64_t v;
    ssize_t got = read(fd, &v, sizeof v);
    (void)got;
}

int mmfs__state_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs__state *s = &e->state;
    if (s->raw) e->live_bytes -= mmfs__raw_len(s->raw);
    s->raw = r->raw;
    s->version = r->u.state.version;
    e->live_bytes += r->raw_len;
    pthread_mutex_lock(&s->mu);
    if (s->version > s->notified) {
        s->notified = s->version;
        pthread_cond_broadcast(&s->cv);
        for (struct mmfs_sub *sub = s->subs; sub; sub = sub->next)
            if (sub->fd >= 0 && s->version > sub->seen) fd_signal(sub->fd);
    }
    pthread_mutex_unlock(&s->mu);
    return MMFS_OK;
}

uint64_t mmfs__engine_state_version(const mmfs__engine *e) { return e->state.version; }

int mmfs_get_state(mmfs_db *db, mmfs_slice *value, uint64_t *version) {
    if (!db || !value || !version)
        return mmfs__err(MMFS_INVALID, "get_state: db, value and version must not be NULL");
    value->ptr = NULL;
    value->len = 0;
    *version = 0;
    mmfs__engine *e;
    int rc = mmfs__read_begin(db, &e);
    if (rc) return rc;
    mmfs__rec r;
    if (e->state.raw && (rc = mmfs__raw_decode(e->state.raw, &r)) == MMFS_OK) {
        *value = r.u.state.value;
        *version = e->state.version;
    }
    mmfs__read_end(db);
    return rc;
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
    mmfs__read_end(db);
    /* Updates from other processes must wake this subscription (and make
    ** its descriptor readable) without any call: see watch.c. */
    if ((rc = mmfs__watch_start(db))) {
        free(sub);
        return rc;
    }
    pthread_mutex_lock(&e->state.mu);
    sub->next = e->state.subs;
    if (sub->next) sub->next->prev = sub;
    e->state.subs = sub;
    pthread_mutex_unlock(&e->state.mu);
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
    mmfs__state *st = &s->e->state;
    for (;;) {
        mmfs__engine *e;
        int rc = mmfs__read_begin(s->db, &e); /* catches up with other processes */
        if (rc) return rc;
        if (e->state.version > s->seen) {
            mmfs__rec r;
            uint64_t v = e->state.version;
            if ((rc = mmfs__raw_decode(e->state.raw, &r)) == MMFS_OK) {
                *value = r.u.state.value;
                *version = v;
            }
            mmfs__read_end(s->db);
            if (rc) return rc;
            pthread_mutex_lock(&st->mu);
            s->seen = v;
            if (s->fd >= 0) {
                fd_drain(s->fd);
                if (st->notified > v) fd_signal(s->fd);
            }
            pthread_mutex_unlock(&st->mu);
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
        pthread_mutex_lock(&st->mu);
        if (st->notified <= s->seen) pthread_cond_timedwait(&st->cv, &st->mu, &ts);
        pthread_mutex_unlock(&st->mu);
    }
}

int mmfs_sub_fd(mmfs_sub *s) {
    if (!s) return mmfs__err(MMFS_INVALID, "sub_fd: sub is NULL"), -1;
    mmfs__catch_up(s->db); /* so that an update already made elsewhere shows */
    mmfs__state *st = &s->e->state;
    pthread_mutex_lock(&st->mu);
    if (s->fd < 0) {
        s->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s->fd < 0) {
            int err = errno;
            pthread_mutex_unlock(&st->mu);
            mmfs__err_sys(err, "eventfd", "subscription");
            return -1;
        }
        if (st->notified > s->seen) fd_signal(s->fd);
    }
    int fd = s->fd;
    pthread_mutex_unlock(&st->mu);
    return fd;
}

void mmfs_sub_close(mmfs_sub *s) {
    if (!s) return;
    mmfs__state *st = &s->e->state;
    pthread_mutex_lock(&st->mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        st->subs = s->next;
    if (s->next) s->next->prev = s->prev;
    pthread_mutex_unlock(&st->mu);
    if (s->fd >= 0) close(s->fd);
    free(s);
}

void mmfs__state_announce(mmfs__engine *e, uint64_t version) {
    mmfs__state *s = &e->state;
    pthread_mutex_lock(&s->mu);
    if (version > s->notified) {
        s->notified = version;
        pthread_cond_broadcast(&s->cv);
        for (struct mmfs_sub *sub = s->subs; sub; sub = sub->next)
            if (sub->fd >= 0 && version > sub->seen) fd_signal(sub->fd);
    }
    pthread_mutex_unlock(&s->mu);
}
