/*
** state.c: the agent's state (latest STATE record and its version) and
** the engine's side of its subscriptions: the list apply wakes, each
** sub's seen version and descriptor (the public functions, with the
** catch-up and the watcher: store/read_state.c).
**
** Invariants: state.raw/version change only in apply (engine write side).
** state.mu guards state.notified (the newest version apply announced in
** this process), the subscriber list and each sub's seen and fd; it is
** never held while taking the engine's lock, so apply (which holds the
** write side and then takes mu) cannot deadlock with a waiter.  A waiter
** checks notified under mu before sleeping, so an apply between its check
** under the read lock and its wait is never missed.  A sub's descriptor
** turns readable when this process applies a newer version (or at
** mmfs_sub_fd if one is already there).
*/
#include "engine.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

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

int mmfs__state_get(const mmfs__engine *e, mmfs_slice *value, uint64_t *version) {
    mmfs__rec r;
    int rc = MMFS_OK;
    if (e->state.raw && (rc = mmfs__raw_decode(e->state.raw, &r)) == MMFS_OK) {
        *value = r.u.state.value;
        *version = e->state.version;
    }
    return rc;
}

void mmfs__state_sub_add(mmfs__engine *e, mmfs_sub *sub) {
    pthread_mutex_lock(&e->state.mu);
    sub->next = e->state.subs;
    if (sub->next) sub->next->prev = sub;
    e->state.subs = sub;
    pthread_mutex_unlock(&e->state.mu);
}

void mmfs__state_sub_seen(mmfs_sub *s, uint64_t v) {
    mmfs__state *st = &s->e->state;
    pthread_mutex_lock(&st->mu);
    s->seen = v;
    if (s->fd >= 0) {
        fd_drain(s->fd);
        if (st->notified > v) fd_signal(s->fd);
    }
    pthread_mutex_unlock(&st->mu);
}

void mmfs__state_sub_wait(mmfs_sub *s, const struct timespec *ts) {
    mmfs__state *st = &s->e->state;
    pthread_mutex_lock(&st->mu);
    if (st->notified <= s->seen) pthread_cond_timedwait(&st->cv, &st->mu, ts);
    pthread_mutex_unlock(&st->mu);
}

int mmfs__state_sub_fd(mmfs_sub *s) {
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

void mmfs__state_sub_remove(mmfs_sub *s) {
    mmfs__state *st = &s->e->state;
    pthread_mutex_lock(&st->mu);
    if (s->prev)
        s->prev->next = s->next;
    else
        st->subs = s->next;
    if (s->next) s->next->prev = s->prev;
    pthread_mutex_unlock(&st->mu);
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
