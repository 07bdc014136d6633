/*
** test_indexer.c: the index work of commits done on the handle's indexer
** thread (store/indexer.c): done without a search, seen by the search
** that follows a commit, bounded while a writer outruns it, and dropped
** cleanly at close.
*/
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "engine.h"

/* Sync none, 4 MiB segments, no automatic checkpoints (whose segment
** copy drains the queue too). */
static int setup(void **state) {
    mmfs_options o = mmfs_test_options(4u << 20);
    o.checkpoint_bytes = 0;
    return mmfs_test_fx_setup(state, "indexer", &o, &o);
}

static uint64_t append(mmfs_db *db, const char *text) {
    uint64_t id = 0;
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str(text), NULL, 0, NULL, &id));
    return id;
}

static size_t hits(mmfs_db *db, const char *q) {
    mmfs_memories *r = NULL;
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 10;
    MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str(q), &f, &r));
    size_t n = r->count;
    mmfs_free(r);
    return n;
}

/* Commits are indexed without any search or drain of the caller's: the
** indexer thread does it (polled, up to 10 s). */
static void test_indexed_in_background(void **state) {
    mmfs_test_fx *f = *state;
    char text[64];
    for (int i = 0; i < 500; i++) {
        snprintf(text, sizeof text, "background word%d", i);
        append(f->db, text);
    }
    const mmfs__engine *e = f->db->eng;
    struct timespec nap = {0, 1000000};
    for (int i = 0; i < 10000 && mmfs__engine_index_pending(f->db->eng); i++) nanosleep(&nap, NULL);
    assert_int_equal(mmfs__engine_index_pending(f->db->eng), 0);
    assert_int_equal(mmfs__index_count(e->mems.ix), 500);
}

/* A search right after each commit sees it, whether the indexer has got
** to it, is in the middle of it, or has not started. */
static void test_search_sees_each_commit(void **state) {
    mmfs_test_fx *f = *state;
    char text[64], q[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(text, sizeof text, "filler filler filler uniq%d filler", i);
        append(f->db, text);
        snprintf(q, sizeof q, "uniq%d", i);
        if (hits(f->db, q) != 1) fail_msg("commit %d not found by the search after it", i);
    }
    assert_int_equal(hits(f->db, "filler"), 10); /* the limit */
}

/* Holds the memories' index lock's read side for about two seconds, as a
** long search would, so that no drain can run meanwhile. */
typedef struct holder {
    mmfs__engine *e;
    _Atomic int held;
} holder;

static void *hold_ixlock(void *arg) {
    holder *h = arg;
    pthread_rwlock_rdlock(&h->e->mems.ixlock);
    atomic_store(&h->held, 1);
    struct timespec t = {2, 0};
    nanosleep(&t, NULL);
    pthread_rwlock_unlock(&h->e->mems.ixlock);
    return NULL;
}

/* While the indexer cannot keep up (kept out by a reader of the index),
** the queue stops growing past its bound: the commit that finds it long
** drains it itself, waiting for that reader.  Without the bound, 40,000
** ops would wait at the end of the commits (they take well under the
** two seconds). */
static void test_queue_bounded(void **state) {
    mmfs_test_fx *f = *state;
    holder h = {.e = f->db->eng};
    atomic_init(&h.held, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_ixlock, &h), 0);
    struct timespec nap = {0, 1000000};
    while (!atomic_load(&h.held)) nanosleep(&nap, NULL);
    char text[64];
    size_t most = 0;
    for (int k = 0; k < 40; k++) {
        mmfs_batch *b = NULL;
        MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
        for (int i = 0; i < 1000; i++) {
            snprintf(text, sizeof text, "bulk%d item%d", k, i);
            MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str(text), NULL, 0, NULL));
        }
        MMFS_OK_OR_FAIL(mmfs_batch_commit(b, NULL, NULL));
        size_t n = mmfs__engine_index_pending(f->db->eng);
        if (n > most) most = n;
    }
    pthread_join(t, NULL);
    /* 16,384 waiting at most before a commit drains, plus that commit's */
    if (most > 16384 + 1000) fail_msg("index queue grew to %zu", most);
    assert_true(most > 16384 - 1000); /* the reader did keep the indexer out */
    assert_int_equal(hits(f->db, "bulk39"), 10);
}

/* Close with work still queued (the indexer stopped): nothing leaks, and
** the reopened store finds every memory (the index is rebuilt). */
static void test_close_with_work_queued(void **state) {
    mmfs_test_fx *f = *state;
    char text[64];
    for (int i = 0; i < 300; i++) {
        snprintf(text, sizeof text, "closing note%d", i);
        append(f->db, text);
    }
    mmfs_test_reopen(f);
    assert_int_equal(hits(f->db, "note299"), 1);
    assert_int_equal(hits(f->db, "note0"), 1);
}

/* A child forked while the handle's indexer waits for work closes the
** handle it inherited (as a test child or a pre-fork server may): that
** must not wait for the parent's thread, which the child does not have
** (glibc's pthread_cond_destroy waits for a condition's waiters: it hung). */
static void test_fork_while_indexer_waits(void **state) {
    mmfs_test_fx *f = *state;
    append(f->db, "forked while waiting");
    struct timespec nap = {0, 20000000}; /* the indexer is waiting on its condition now */
    nanosleep(&nap, NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        mmfs_close(f->db); /* in a child: frees only */
        _exit(0);
    }
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 1000 && (got = waitpid(pid, &st, WNOHANG)) == 0; i++) nanosleep(&nap, NULL);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fail_msg("the child's close hung");
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(hits(f->db, "forked"), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_indexed_in_background, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_search_sees_each_commit, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_bounded, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_with_work_queued, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_fork_while_indexer_waits, setup, mmfs_test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
