/*
** test_threads.c: one handle shared by threads (and two handles on one
** directory in one process): concurrent appends and reads lose nothing,
** ids are unique, dense and increasing in each thread's observation,
** batches stay atomic for concurrent readers, group commit under
** MMFS_SYNC_ALWAYS returns for everyone.
**
** Worker threads never call cmocka asserts (they longjmp): they record
** the first failure in their own struct and the main thread reports it.
*/
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { NT = 4, PER = 1000 };

typedef struct worker {
    mmfs_db *db;
    int t;
    int n;
    uint64_t *ids;
    char err[256];
} worker;

#define WFAIL(w, ...)                                                          \
    do {                                                                       \
        if (!(w)->err[0]) snprintf((w)->err, sizeof (w)->err, __VA_ARGS__);    \
        return NULL;                                                           \
    } while (0)

static mmfs_db *open_dir(const char *dir, mmfs_sync_mode sync) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = sync;
    o.segment_size = 1u << 20; /* several roll-overs under load */
    mmfs_db *db = NULL;
    int rc = mmfs_open(dir, &o, &db);
    if (rc != MMFS_OK) fail_msg("mmfs_open: %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
    return db;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void *writer_reader(void *arg) {
    worker *w = arg;
    char key[48], val[64], text[64], tag[32];
    snprintf(tag, sizeof tag, "thread:%d", w->t);
    mmfs_slice tg = mmfs_str(tag);
    uint64_t last = 0;
    for (int i = 0; i < w->n; i++) {
        snprintf(text, sizeof text, "thread %d note %d", w->t, i);
        uint64_t id = 0;
        int rc = mmfs_append_memory(w->db, mmfs_str(text), &tg, 1, NULL, &id);
        if (rc) WFAIL(w, "t%d append_memory %d: %s: %s", w->t, i, mmfs_err_name(rc), mmfs_errmsg(w->db));
        if (id <= last) WFAIL(w, "t%d: id %llu after %llu", w->t, (unsigned long long)id, (unsigned long long)last);
        last = id;
        w->ids[i] = id;

        snprintf(key, sizeof key, "t%d/%05d", w->t, i);
        snprintf(val, sizeof val, "value %d of thread %d", i, w->t);
        rc = mmfs_set_kv(w->db, mmfs_str(key), mmfs_str(val));
        if (rc) WFAIL(w, "t%d set_kv %s: %s: %s", w->t, key, mmfs_err_name(rc), mmfs_errmsg(w->db));

        /* Read back what this thread wrote. */
        mmfs_slice v;
        rc = mmfs_get_kv(w->db, mmfs_str(key), &v);
        if (rc || v.len != strlen(val) || memcmp(v.ptr, val, v.len) != 0)
            WFAIL(w, "t%d get_kv %s: %s", w->t, key, mmfs_err_name(rc));
        mmfs_memory *m = NULL;
        rc = mmfs_get_memory(w->db, id, &m);
        if (rc || m->text.len != strlen(text) || memcmp(m->text.ptr, text, m->text.len) != 0) {
            mmfs_free(m);
            WFAIL(w, "t%d get_memory %llu: %s", w->t, (unsigned long long)id, mmfs_err_name(rc));
        }
        mmfs_free(m);

        /* And what the others are writing. */
        if (i % 25 == 0) {
            int other = (w->t + 1) % NT;
            snprintf(key, sizeof key, "t%d/%05d", other, i / 2);
            rc = mmfs_get_kv(w->db, mmfs_str(key), &v);
            if (rc == MMFS_OK) {
                snprintf(val, sizeof val, "value %d of thread %d", i / 2, other);
                if (v.len != strlen(val) || memcmp(v.ptr, val, v.len) != 0)
                    WFAIL(w, "t%d read t%d's %s: wrong value", w->t, other, key);
            } else if (rc != MMFS_NOTFOUND) {
                WFAIL(w, "t%d get_kv other %s: %s", w->t, key, mmfs_err_name(rc));
            }
            mmfs_store_stats st;
            rc = mmfs_stats(w->db, &st);
            if (rc) WFAIL(w, "t%d stats: %s", w->t, mmfs_err_name(rc));
            if (st.memories < (uint64_t)i + 1 || st.kv < (uint64_t)i + 1)
                WFAIL(w, "t%d: stats memories %llu kv %llu after %d own writes", w->t,
                      (unsigned long long)st.memories, (unsigned long long)st.kv, i + 1);
            mmfs_memories *ms = NULL;
            mmfs_filter flt;
            memset(&flt, 0, sizeof flt);
            flt.tags = &tg;
            flt.ntags = 1;
            flt.limit = 5;
            rc = mmfs_list_memories(w->db, &flt, &ms);
            if (rc) WFAIL(w, "t%d list_memories: %s", w->t, mmfs_err_name(rc));
            /* Own memories are newest first: the newest is the last appended. */
            if (ms->count < 1 || ms->items[0].id != id) {
                unsigned long long got = ms->count ? (unsigned long long)ms->items[0].id : 0;
                mmfs_free(ms);
                WFAIL(w, "t%d list: newest %llu, want %llu", w->t, got, (unsigned long long)id);
            }
            mmfs_free(ms);
            /* Search sees every memory of this thread so far (read your
            ** writes through the index, which others index concurrently);
            ** now and then, as it is slow under valgrind. */
            flt.limit = (size_t)i + 10;
            rc = mmfs_search_memory(w->db, mmfs_str("note"), i % 250 == 0 ? &flt : NULL, &ms);
            if (rc) WFAIL(w, "t%d search: %s", w->t, mmfs_err_name(rc));
            if (i % 250 == 0 && ms->count != (size_t)i + 1) {
                size_t got = ms->count;
                mmfs_free(ms);
                WFAIL(w, "t%d search: %zu of its %d memories", w->t, got, i + 1);
            }
            mmfs_free(ms);
        }
    }
    return NULL;
}

/* Checks the ids of all workers: unique and exactly FIRST..FIRST+n-1. */
static void check_ids(worker *ws, int nw, int per, uint64_t first) {
    uint64_t *all = malloc(sizeof *all * (size_t)(nw * per));
    assert_non_null(all);
    for (int t = 0; t < nw; t++) memcpy(all + t * per, ws[t].ids, sizeof *all * (size_t)per);
    qsort(all, (size_t)(nw * per), sizeof *all, cmp_u64);
    for (int i = 0; i < nw * per; i++)
        if (all[i] != first + (uint64_t)i)
            fail_msg("sorted ids[%d] = %llu, want %llu (duplicate or gap)", i, (unsigned long long)all[i],
                     (unsigned long long)(first + (uint64_t)i));
    free(all);
}

static void check_final(mmfs_db *db, int nw, int per) {
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    assert_int_equal(st.memories, (uint64_t)(nw * per));
    assert_int_equal(st.kv, (uint64_t)(nw * per));
    for (int t = 0; t < nw; t++) {
        char tag[32];
        snprintf(tag, sizeof tag, "thread:%d", t);
        mmfs_slice tg = mmfs_str(tag);
        mmfs_filter flt;
        memset(&flt, 0, sizeof flt);
        flt.tags = &tg;
        flt.ntags = 1;
        flt.limit = (size_t)per + 10;
        mmfs_memories *ms = NULL;
        MMFS_OK_OR_FAIL(mmfs_list_memories(db, &flt, &ms));
        assert_int_equal(ms->count, per);
        mmfs_free(ms);
        MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str("thread note"), &flt, &ms));
        assert_int_equal(ms->count, per);
        mmfs_free(ms);
        /* Every key of the thread, in order, by a prefix scan. */
        char prefix[16], key[48];
        snprintf(prefix, sizeof prefix, "t%d/", t);
        mmfs_kv_iter *it = NULL;
        MMFS_OK_OR_FAIL(mmfs_kv_iter_open(db, mmfs_str(prefix), &it));
        mmfs_slice k, v;
        int n = 0;
        while (mmfs_kv_iter_next(it, &k, &v) == MMFS_OK) {
            snprintf(key, sizeof key, "t%d/%05d", t, n);
            if (k.len != strlen(key) || memcmp(k.ptr, key, k.len) != 0)
                fail_msg("scan of %s: item %d is \"%.*s\", want \"%s\"", prefix, n, (int)k.len,
                         (const char *)k.ptr, key);
            n++;
        }
        mmfs_kv_iter_close(it);
        assert_int_equal(n, per);
    }
}

static void run_workers(mmfs_db **dbs, int ndb, worker *ws, int per) {
    pthread_t th[NT];
    for (int t = 0; t < NT; t++) {
        memset(&ws[t], 0, sizeof ws[t]);
        ws[t].db = dbs[t % ndb];
        ws[t].t = t;
        ws[t].n = per;
        ws[t].ids = calloc((size_t)per, sizeof(uint64_t));
        assert_non_null(ws[t].ids);
        assert_int_equal(pthread_create(&th[t], NULL, writer_reader, &ws[t]), 0);
    }
    for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < NT; t++)
        if (ws[t].err[0]) fail_msg("worker %d: %s", t, ws[t].err);
}

/* ------------------------------------------------------------------ */

static void test_shared_handle(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("threads-shared");
    mmfs_db *db = open_dir(dir, MMFS_SYNC_NONE);
    worker ws[NT];
    run_workers(&db, 1, ws, PER);
    check_ids(ws, NT, PER, 1);
    check_final(db, NT, PER);
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));

    db = open_dir(dir, MMFS_SYNC_NONE);
    check_final(db, NT, PER);
    /* Each memory is where its id says. */
    for (int t = 0; t < NT; t++) {
        for (int i = 0; i < PER; i += 97) {
            mmfs_memory *m = NULL;
            MMFS_OK_OR_FAIL(mmfs_get_memory(db, ws[t].ids[i], &m));
            char text[64];
            snprintf(text, sizeof text, "thread %d note %d", t, i);
            assert_int_equal(m->text.len, strlen(text));
            assert_memory_equal(m->text.ptr, text, strlen(text));
            mmfs_free(m);
        }
        free(ws[t].ids);
    }
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* Two handles on one directory, two threads on each: the writer lock and
** catch-up keep ids unique across handles. */
static void test_two_handles(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("threads-two");
    mmfs_db *dbs[2] = {open_dir(dir, MMFS_SYNC_NONE), open_dir(dir, MMFS_SYNC_NONE)};
    worker ws[NT];
    run_workers(dbs, 2, ws, PER / 2);
    check_ids(ws, NT, PER / 2, 1);
    check_final(dbs[0], NT, PER / 2);
    check_final(dbs[1], NT, PER / 2);
    MMFS_OK_OR_FAIL(mmfs_close(dbs[0]));
    MMFS_OK_OR_FAIL(mmfs_close(dbs[1]));
    mmfs_db *db = open_dir(dir, MMFS_SYNC_NONE);
    check_final(db, NT, PER / 2);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    for (int t = 0; t < NT; t++) free(ws[t].ids);
    mmfs_test_rmdir(dir);
}

/* Group commit: concurrent MMFS_SYNC_ALWAYS writers all return, durable. */
static void test_sync_always_concurrent(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("threads-always");
    mmfs_db *db = open_dir(dir, MMFS_SYNC_ALWAYS);
    worker ws[NT];
    run_workers(&db, 1, ws, 25);
    check_ids(ws, NT, 25, 1);
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    assert_int_equal(st.durable_lsn, st.lsn);
    check_final(db, NT, 25);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    for (int t = 0; t < NT; t++) free(ws[t].ids);
    mmfs_test_rmdir(dir);
}

/* ---------------------------------------------------------- batches */

enum { NB = 300, BK = 8 };

typedef struct bworker {
    mmfs_db *db;
    int t;
    char err[256];
    atomic_int *done;
} bworker;

static void *batch_writer(void *arg) {
    bworker *w = arg;
    for (int i = 0; i < NB; i++) {
        mmfs_batch *b = NULL;
        int rc = mmfs_batch_begin(w->db, &b);
        if (rc) WFAIL(w, "batch_begin: %s", mmfs_err_name(rc));
        char key[48];
        for (int j = 0; j < BK; j++) {
            snprintf(key, sizeof key, "b%d/%04d/%d", w->t, i, j);
            rc = mmfs_batch_set_kv(b, mmfs_str(key), mmfs_str("x"));
            if (rc) WFAIL(w, "batch_set_kv: %s", mmfs_err_name(rc));
        }
        rc = mmfs_batch_append_memory(b, mmfs_str("batched"), NULL, 0, NULL);
        if (rc) WFAIL(w, "batch_append_memory: %s", mmfs_err_name(rc));
        rc = mmfs_batch_commit(b, NULL, NULL);
        if (rc) WFAIL(w, "batch_commit: %s: %s", mmfs_err_name(rc), mmfs_errmsg(w->db));
    }
    return NULL;
}

/* Readers check atomicity: once the first key of a batch is visible, the
** last one is too (batches only add). */
static void *batch_reader(void *arg) {
    bworker *w = arg;
    unsigned seed = (unsigned)w->t * 7919u + 1;
    long checks = 0;
    while (!atomic_load(w->done) || checks < 100) {
        seed = seed * 1103515245u + 12345u;
        int t = (int)((seed >> 8) % 2), i = (int)((seed >> 12) % NB);
        char k0[48], kl[48];
        snprintf(k0, sizeof k0, "b%d/%04d/0", t, i);
        snprintf(kl, sizeof kl, "b%d/%04d/%d", t, i, BK - 1);
        mmfs_slice v;
        int rc = mmfs_get_kv(w->db, mmfs_str(k0), &v);
        if (rc == MMFS_OK) {
            rc = mmfs_get_kv(w->db, mmfs_str(kl), &v);
            if (rc != MMFS_OK) WFAIL(w, "saw %s but %s -> %s: batch not atomic", k0, kl, mmfs_err_name(rc));
        } else if (rc != MMFS_NOTFOUND) {
            WFAIL(w, "get %s: %s", k0, mmfs_err_name(rc));
        }
        /* A scan of one batch's prefix sees all of it or nothing. */
        if (checks % 16 == 0) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "b%d/%04d/", t, i);
            mmfs_kv_iter *it = NULL;
            rc = mmfs_kv_iter_open(w->db, mmfs_str(prefix), &it);
            if (rc) WFAIL(w, "iter_open: %s", mmfs_err_name(rc));
            mmfs_slice k;
            int n = 0;
            while (mmfs_kv_iter_next(it, &k, &v) == MMFS_OK) n++;
            mmfs_kv_iter_close(it);
            if (n != 0 && n != BK) WFAIL(w, "scan of %s saw %d of %d keys", prefix, n, BK);
        }
        checks++;
    }
    return NULL;
}

static void test_batches_atomic_for_readers(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("threads-batch");
    mmfs_db *db = open_dir(dir, MMFS_SYNC_NONE);
    atomic_int done = 0;
    bworker ws[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        memset(&ws[i], 0, sizeof ws[i]);
        ws[i].db = db;
        ws[i].t = i;
        ws[i].done = &done;
    }
    assert_int_equal(pthread_create(&th[2], NULL, batch_reader, &ws[2]), 0);
    assert_int_equal(pthread_create(&th[3], NULL, batch_reader, &ws[3]), 0);
    assert_int_equal(pthread_create(&th[0], NULL, batch_writer, &ws[0]), 0);
    assert_int_equal(pthread_create(&th[1], NULL, batch_writer, &ws[1]), 0);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    atomic_store(&done, 1);
    pthread_join(th[2], NULL);
    pthread_join(th[3], NULL);
    for (int i = 0; i < 4; i++)
        if (ws[i].err[0]) fail_msg("thread %d: %s", i, ws[i].err);
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    assert_int_equal(st.kv, 2 * NB * BK);
    assert_int_equal(st.memories, 2 * NB);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* Concurrent overwrites of one key: the final value is one that was
** written, and the store agrees with itself after reopen. */
typedef struct owriter {
    mmfs_db *db;
    int t;
    char err[256];
} owriter;

static void *overwriter(void *arg) {
    owriter *w = arg;
    char val[32];
    for (int i = 0; i < 500; i++) {
        snprintf(val, sizeof val, "t%d-%d", w->t, i);
        int rc = mmfs_set_kv(w->db, mmfs_str("hot"), mmfs_str(val));
        if (rc) WFAIL(w, "set_kv: %s", mmfs_err_name(rc));
        uint64_t ver;
        rc = mmfs_update_state(w->db, mmfs_str(val), &ver);
        if (rc) WFAIL(w, "update_state: %s", mmfs_err_name(rc));
    }
    return NULL;
}

static void test_hot_key(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("threads-hot");
    mmfs_db *db = open_dir(dir, MMFS_SYNC_NONE);
    owriter ws[NT];
    pthread_t th[NT];
    for (int t = 0; t < NT; t++) {
        memset(&ws[t], 0, sizeof ws[t]);
        ws[t].db = db;
        ws[t].t = t;
        assert_int_equal(pthread_create(&th[t], NULL, overwriter, &ws[t]), 0);
    }
    for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < NT; t++)
        if (ws[t].err[0]) fail_msg("thread %d: %s", t, ws[t].err);
    mmfs_slice v, s;
    uint64_t ver;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("hot"), &v));
    MMFS_OK_OR_FAIL(mmfs_get_state(db, &s, &ver));
    assert_int_equal(ver, NT * 500);
    /* Every thread's last write ends in -499; the winner is one of them. */
    assert_true(v.len >= 6 && memcmp((const char *)v.ptr + v.len - 4, "-499", 4) == 0);
    char saved_v[32], saved_s[32];
    size_t vl = v.len, sl = s.len;
    memcpy(saved_v, v.ptr, vl);
    memcpy(saved_s, s.ptr, sl);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = open_dir(dir, MMFS_SYNC_NONE);
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("hot"), &v));
    assert_int_equal(v.len, vl);
    assert_memory_equal(v.ptr, saved_v, vl);
    MMFS_OK_OR_FAIL(mmfs_get_state(db, &s, &ver));
    assert_int_equal(ver, NT * 500);
    assert_int_equal(s.len, sl);
    assert_memory_equal(s.ptr, saved_s, sl);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* ---------------------------------------------------------- processes */

/* A child process appends through its own handle while the parent does:
** ids stay unique and dense, nothing is lost, both see everything. */
static int child_writes(const char *dir, int n) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_NONE;
    mmfs_db *db = NULL;
    if (mmfs_open(dir, &o, &db) != MMFS_OK) return 10;
    uint64_t last = 0;
    char key[32];
    for (int i = 0; i < n; i++) {
        uint64_t id;
        if (mmfs_append_memory(db, mmfs_str("from the child"), NULL, 0, NULL, &id) != MMFS_OK) return 11;
        if (id <= last) return 12;
        last = id;
        snprintf(key, sizeof key, "child/%05d", i);
        if (mmfs_set_kv(db, mmfs_str(key), mmfs_str("c")) != MMFS_OK) return 13;
    }
    return mmfs_close(db) == MMFS_OK ? 0 : 14;
}

static void test_two_processes(void **state) {
    (void)state;
    enum { N = 500 };
    char *dir = mmfs_test_dir("threads-procs");
    /* Create the store first so both sides open an existing one. */
    mmfs_db *db = open_dir(dir, MMFS_SYNC_NONE);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(child_writes(dir, N));
    db = open_dir(dir, MMFS_SYNC_NONE);
    uint64_t *mine = calloc(N, sizeof *mine);
    assert_non_null(mine);
    char key[32];
    for (int i = 0; i < N; i++) {
        MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("from the parent"), NULL, 0, NULL, &mine[i]));
        if (i) assert_true(mine[i] > mine[i - 1]);
        snprintf(key, sizeof key, "parent/%05d", i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(key), mmfs_str("p")));
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) fail_msg("child failed with code %d", WEXITSTATUS(status));
    /* The parent's handle sees the child's writes without reopening. */
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    assert_int_equal(st.memories, 2 * N);
    assert_int_equal(st.kv, 2 * N);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("child/00499"), &v));
    /* Ids 1..2N each name exactly one memory. */
    for (uint64_t id = 1; id <= 2 * N; id++) {
        mmfs_memory *m = NULL;
        int rc = mmfs_get_memory(db, id, &m);
        if (rc) fail_msg("memory %llu: %s", (unsigned long long)id, mmfs_err_name(rc));
        mmfs_free(m);
    }
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = open_dir(dir, MMFS_SYNC_NONE);
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    assert_int_equal(st.memories, 2 * N);
    assert_int_equal(st.kv, 2 * N);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(mine);
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_handle),
        cmocka_unit_test(test_two_handles),
        cmocka_unit_test(test_sync_always_concurrent),
        cmocka_unit_test(test_batches_atomic_for_readers),
        cmocka_unit_test(test_hot_key),
        cmocka_unit_test(test_two_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
