/*
** test_locks.c: the lock order (docs/design.md, "Locks") seen from a C
** hook, the one place where user code runs while the library holds the
** writer's locks (wmu and the flock on LOCK).  The API promises that a
** hook calling back into its own store gets BUSY, never a deadlock.
**
** Each hook call runs in a forked child with an alarm, so a deadlock
** fails the test instead of hanging the suite.
*/
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_SECONDS 30

static int setup(void **state) {
    mmfs_options o = mmfs_test_options(1u << 20);
    return mmfs_test_fx_setup(state, "locks", &o, &o);
}

/* What the hook does with its own store, and what it saw. */
typedef struct probe {
    mmfs_db *db;
    int (*call)(mmfs_db *db);
    int rc;
    int ran;
} probe;

static int hook(void *ud, mmfs_command *cmd, mmfs_batch *tx) {
    (void)tx;
    probe *p = ud;
    if (cmd->type != MMFS_CMD_SET_KV || p->ran) return MMFS_OK;
    p->ran = 1;
    p->rc = p->call(p->db);
    return MMFS_OK;
}

/* In a child: opens DIR, installs the hook, commits one set_kv whose hook
** calls CALL on the store; exits 0 if CALL gave WANT (or any of OK/BUSY
** when WANT < 0) and the commit went through, 1 otherwise, and is killed
** by the alarm if it never returns. */
static void run_in_child(const char *dir, int (*call)(mmfs_db *), int want, const char *what) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(CHILD_SECONDS);
        mmfs_options o = mmfs_test_options(1u << 20);
        mmfs_db *db = NULL;
        if (mmfs_open(dir, &o, &db) != MMFS_OK) _exit(2);
        probe p = {db, call, -1, 0};
        if (mmfs_set_hook(db, hook, &p) != MMFS_OK) _exit(2);
        int rc = mmfs_set_kv(db, mmfs_str("k"), mmfs_str("v"));
        int ok = rc == MMFS_OK && p.ran && (want >= 0 ? p.rc == want : (p.rc == MMFS_OK || p.rc == MMFS_BUSY));
        if (!ok)
            fprintf(stderr, "%s from a hook: commit %s, call %s\n", what, mmfs_err_name(rc), mmfs_err_name(p.rc));
        mmfs_close(db);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        fail_msg("%s from a C hook on its own store never returned (signal %d after %d s): a deadlock",
                 what, WTERMSIG(st), CHILD_SECONDS);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("%s from a C hook: wrong result (see above)", what);
}

static int c_set_kv(mmfs_db *db) { return mmfs_set_kv(db, mmfs_str("x"), mmfs_str("y")); }
static int c_set_hook(mmfs_db *db) { return mmfs_set_hook(db, NULL, NULL); }
static int c_get_kv(mmfs_db *db) {
    mmfs_slice v;
    int rc = mmfs_get_kv(db, mmfs_str("before"), &v);
    return rc;
}
static int c_search(mmfs_db *db) {
    mmfs_memories *l = NULL;
    int rc = mmfs_search_memory(db, mmfs_str("tea"), NULL, &l);
    if (rc == MMFS_OK && l->count != 1) rc = MMFS_CORRUPT; /* the memory made before */
    mmfs_free(l);
    return rc;
}
static int c_refresh(mmfs_db *db) { return mmfs_refresh(db); }
static int c_sync(mmfs_db *db) { return mmfs_sync(db); }
static int c_stats(mmfs_db *db) {
    mmfs_store_stats st;
    return mmfs_stats(db, &st);
}
static int c_verify(mmfs_db *db) { return mmfs_verify(db); }

/* Writes and set_hook are BUSY; reads, searches, refresh and sync work:
** they take the engine's read side, the index locks and smu, which come
** after wmu and the flock. */
static void test_hook_calls(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("before"), mmfs_str("1")));
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str("green tea"), NULL, 0, NULL, NULL));
    MMFS_OK_OR_FAIL(mmfs_close(f->db));
    f->db = NULL;
    run_in_child(f->dir, c_set_kv, MMFS_BUSY, "mmfs_set_kv");
    run_in_child(f->dir, c_set_hook, MMFS_BUSY, "mmfs_set_hook");
    run_in_child(f->dir, c_get_kv, MMFS_OK, "mmfs_get_kv");
    run_in_child(f->dir, c_search, MMFS_OK, "mmfs_search_memory");
    run_in_child(f->dir, c_refresh, MMFS_OK, "mmfs_refresh");
    run_in_child(f->dir, c_sync, MMFS_OK, "mmfs_sync");
    f->db = mmfs_test_fx_open(f);
}

/* mmfs_stats and mmfs_verify from a hook used to take wmu without
** checking whether this thread held it, and waited for themselves. */
static void test_hook_stats_verify(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_close(f->db));
    f->db = NULL;
    run_in_child(f->dir, c_stats, -1, "mmfs_stats");
    run_in_child(f->dir, c_verify, -1, "mmfs_verify");
    f->db = mmfs_test_fx_open(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hook_calls, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_hook_stats_verify, setup, mmfs_test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
