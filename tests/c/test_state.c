/*
** test_state.c: the versioned agent state and its subscriptions: versions
** from 1, latest value, waits that time out or wake, descriptors that turn
** readable, and wakeups across two handles on one directory.
*/
#include "testutil.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Sync none, 1 MiB segments; reopened with the same options. */
static int setup(void **state) {
    mmfs_options o = mmfs_test_options(1u << 20);
    return mmfs_test_fx_setup(state, "state", &o, &o);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ */

static void test_versions(void **state) {
    mmfs_test_fx *f = *state;
    mmfs_slice v = {"junk", 4};
    uint64_t ver = 77;
    MMFS_OK_OR_FAIL(mmfs_get_state(f->db, &v, &ver));
    assert_null(v.ptr);
    assert_int_equal(v.len, 0);
    assert_int_equal(ver, 0);

    uint64_t got = 0;
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("one"), &got));
    assert_int_equal(got, 1);
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("two"), &got));
    assert_int_equal(got, 2);
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("three"), NULL));
    MMFS_OK_OR_FAIL(mmfs_get_state(f->db, &v, &ver));
    MMFS_ASSERT_SLICE_STR(v, "three");
    assert_int_equal(ver, 3);

    /* Binary and empty states. */
    static const char bin[] = {0, 1, 0, 2};
    mmfs_slice b = {bin, 4};
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, b, &got));
    assert_int_equal(got, 4);
    MMFS_OK_OR_FAIL(mmfs_get_state(f->db, &v, &ver));
    mmfs_test_assert_slice(v, bin, 4);
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str(""), &got));
    assert_int_equal(got, 5);
    MMFS_OK_OR_FAIL(mmfs_get_state(f->db, &v, &ver));
    assert_int_equal(v.len, 0);
    assert_int_equal(ver, 5);

    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("last"), NULL));
    MMFS_OK_OR_FAIL(mmfs_close(f->db));
    f->db = mmfs_test_fx_open(f);
    MMFS_OK_OR_FAIL(mmfs_get_state(f->db, &v, &ver));
    MMFS_ASSERT_SLICE_STR(v, "last");
    assert_int_equal(ver, 6);
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("after reopen"), &got));
    assert_int_equal(got, 7);
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(f->db, &st));
    assert_int_equal(st.state_version, 7);
}

static void test_sub_timeout_then_change(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("before"), NULL));
    mmfs_sub *s = NULL;
    MMFS_OK_OR_FAIL(mmfs_subscribe_state(f->db, &s));
    assert_non_null(s);
    mmfs_slice v;
    uint64_t ver;
    /* Nothing newer than what it remembered. */
    MMFS_ASSERT_STATUS(mmfs_sub_next(s, 0, &v, &ver), MMFS_TIMEOUT);
    double t0 = now_ms();
    MMFS_ASSERT_STATUS(mmfs_sub_next(s, 60, &v, &ver), MMFS_TIMEOUT);
    double dt = now_ms() - t0;
    if (dt < 50 || dt > 3000) fail_msg("sub_next(60 ms) returned after %.1f ms", dt);

    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("v2"), NULL));
    MMFS_OK_OR_FAIL(mmfs_sub_next(s, 1000, &v, &ver));
    MMFS_ASSERT_SLICE_STR(v, "v2");
    assert_int_equal(ver, 2);
    /* Seen: no repeat. */
    MMFS_ASSERT_STATUS(mmfs_sub_next(s, 0, &v, &ver), MMFS_TIMEOUT);

    /* Intermediate versions may be skipped: the latest comes back. */
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("v3"), NULL));
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("v4"), NULL));
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("v5"), NULL));
    MMFS_OK_OR_FAIL(mmfs_sub_next(s, 1000, &v, &ver));
    MMFS_ASSERT_SLICE_STR(v, "v5");
    assert_int_equal(ver, 5);
    MMFS_ASSERT_STATUS(mmfs_sub_next(s, 0, &v, &ver), MMFS_TIMEOUT);
    mmfs_sub_close(s);
}

/* A subscription made before any update remembers version 0. */
static void test_sub_from_nothing(void **state) {
    mmfs_test_fx *f = *state;
    mmfs_sub *s = NULL;
    MMFS_OK_OR_FAIL(mmfs_subscribe_state(f->db, &s));
    mmfs_slice v;
    uint64_t ver;
    MMFS_ASSERT_STATUS(mmfs_sub_next(s, 0, &v, &ver), MMFS_TIMEOUT);
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("first"), NULL));
    MMFS_OK_OR_FAIL(mmfs_sub_next(s, 0, &v, &ver));
    assert_int_equal(ver, 1);
    MMFS_ASSERT_SLICE_STR(v, "first");
    mmfs_sub_close(s);
}

static void test_sub_fd_readable(void **state) {
    mmfs_test_fx *f = *state;
    mmfs_sub *s = NULL;
    MMFS_OK_OR_FAIL(mmfs_subscribe_state(f->db, &s));
    int fd = mmfs_sub_fd(s);
    assert_true(fd >= 0);
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 0), 0);
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("x"), NULL));
    p.revents = 0;
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_true(p.revents & POLLIN);
    mmfs_slice v;
    uint64_t ver;
    MMFS_OK_OR_FAIL(mmfs_sub_next(s, 0, &v, &ver));
    assert_int_equal(ver, 1);
    /* Seen: no longer readable. */
    p.revents = 0;
    assert_int_equal(poll(&p, 1, 0), 0);
    /* The same descriptor serves again. */
    assert_int_equal(mmfs_sub_fd(s), fd);
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("y"), NULL));
    p.revents = 0;
    assert_int_equal(poll(&p, 1, 2000), 1);
    mmfs_sub_close(s);
}

typedef struct waiter {
    mmfs_sub *sub;
    int rc;
    uint64_t version;
    char value[32];
    size_t len;
} waiter;

static void *wait_thread(void *arg) {
    waiter *w = arg;
    mmfs_slice v;
    w->rc = mmfs_sub_next(w->sub, 5000, &v, &w->version);
    if (w->rc == MMFS_OK) {
        w->len = v.len < sizeof w->value ? v.len : sizeof w->value;
        memcpy(w->value, v.ptr, w->len);
    }
    return NULL;
}

/* A waiting thread is woken by an update from another thread. */
static void test_sub_wakes_waiter(void **state) {
    mmfs_test_fx *f = *state;
    waiter w[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        memset(&w[i], 0, sizeof w[i]);
        MMFS_OK_OR_FAIL(mmfs_subscribe_state(f->db, &w[i].sub));
        assert_int_equal(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
    }
    sleep_ms(50);
    double t0 = now_ms();
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("wake"), NULL));
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    double dt = now_ms() - t0;
    for (int i = 0; i < 3; i++) {
        if (w[i].rc != MMFS_OK) fail_msg("waiter %d: %s", i, mmfs_err_name(w[i].rc));
        assert_int_equal(w[i].version, 1);
        assert_int_equal(w[i].len, 4);
        assert_memory_equal(w[i].value, "wake", 4);
        mmfs_sub_close(w[i].sub);
    }
    if (dt > 2000) fail_msg("waiters woke %.0f ms after the update", dt);
}

/* Updates through another handle on the same directory reach subscribers
** (the path other processes take). */
static void test_sub_other_handle(void **state) {
    mmfs_test_fx *f = *state;
    mmfs_db *other = mmfs_test_fx_open(f);
    waiter w;
    memset(&w, 0, sizeof w);
    MMFS_OK_OR_FAIL(mmfs_subscribe_state(f->db, &w.sub));
    int fd = mmfs_sub_fd(w.sub);
    assert_true(fd >= 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
    sleep_ms(50);
    MMFS_OK_OR_FAIL(mmfs_update_state(other, mmfs_str("remote"), NULL));
    pthread_join(t, NULL);
    if (w.rc != MMFS_OK) fail_msg("waiter: %s", mmfs_err_name(w.rc));
    assert_int_equal(w.version, 1);
    assert_int_equal(w.len, 6);
    assert_memory_equal(w.value, "remote", 6);

    /* And the descriptor turns readable for a remote update. */
    MMFS_OK_OR_FAIL(mmfs_update_state(other, mmfs_str("remote2"), NULL));
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 3000), 1);
    mmfs_slice v;
    uint64_t ver;
    MMFS_OK_OR_FAIL(mmfs_sub_next(w.sub, 0, &v, &ver));
    assert_int_equal(ver, 2);
    MMFS_ASSERT_SLICE_STR(v, "remote2");
    mmfs_sub_close(w.sub);

    /* The local handle reads it too, and continues the version count. */
    MMFS_OK_OR_FAIL(mmfs_get_state(f->db, &v, &ver));
    assert_int_equal(ver, 2);
    uint64_t nv;
    MMFS_OK_OR_FAIL(mmfs_update_state(f->db, mmfs_str("local"), &nv));
    assert_int_equal(nv, 3);
    MMFS_OK_OR_FAIL(mmfs_get_state(other, &v, &ver));
    assert_int_equal(ver, 3);
    MMFS_ASSERT_SLICE_STR(v, "local");
    MMFS_OK_OR_FAIL(mmfs_close(other));
}

/* An update made by another process wakes a waiting subscriber. */
static void test_sub_other_process(void **state) {
    mmfs_test_fx *f = *state;
    mmfs_sub *s = NULL;
    MMFS_OK_OR_FAIL(mmfs_subscribe_state(f->db, &s));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sleep_ms(100);
        mmfs_options o = mmfs_test_options(0);
        mmfs_db *db = NULL;
        if (mmfs_open(f->dir, &o, &db) != MMFS_OK) _exit(10);
        uint64_t ver = 0;
        if (mmfs_update_state(db, mmfs_str("from child"), &ver) != MMFS_OK) _exit(11);
        if (ver != 1) _exit(12);
        _exit(mmfs_close(db) == MMFS_OK ? 0 : 13);
    }
    mmfs_slice v;
    uint64_t ver = 0;
    double t0 = now_ms();
    int rc = mmfs_sub_next(s, 5000, &v, &ver);
    double dt = now_ms() - t0;
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) fail_msg("child failed with code %d", WEXITSTATUS(status));
    if (rc != MMFS_OK) fail_msg("sub_next after a child's update: %s", mmfs_err_name(rc));
    assert_int_equal(ver, 1);
    MMFS_ASSERT_SLICE_STR(v, "from child");
    if (dt > 3000) fail_msg("woke %.0f ms after the child started", dt);
    mmfs_sub_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_versions, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_timeout_then_change, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_from_nothing, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_fd_readable, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_wakes_waiter, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_other_handle, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_other_process, setup, mmfs_test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
