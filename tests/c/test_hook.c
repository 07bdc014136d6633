/* test_hook.c: C-level hooks (mmfs_set_hook): edit, reject, add commands,
** re-entry gives BUSY, and a rejected commit leaves nothing behind. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void assert_kv(mmfs_db *db, const char *key, const char *want) {
    mmfs_slice v;
    int rc = mmfs_get_kv(db, mmfs_str(key), &v);
    if (!want) {
        assert_int_equal(rc, MMFS_NOTFOUND);
        return;
    }
    MMFS_OK_OR_FAIL(rc);
    assert_int_equal(v.len, strlen(want));
    assert_memory_equal(v.ptr, want, v.len);
}

typedef struct seen {
    int calls;
    int types[16];
    mmfs_db *db;
    int reentry_rc;
    char upper[64];
} seen;

/* Upper-cases set_kv values, tags memories routed "secret", audits deletes
** into kv, and rejects keys starting with "deny". */
static int editing_hook(void *ud, mmfs_command *cmd, mmfs_batch *tx) {
    seen *s = ud;
    if (s->calls < 16) s->types[s->calls] = cmd->type;
    s->calls++;
    switch (cmd->type) {
    case MMFS_CMD_SET_KV: {
        if (cmd->key.len >= 4 && memcmp(cmd->key.ptr, "deny", 4) == 0)
            return mmfs_reject("key '%.*s' is not allowed", (int)cmd->key.len, (const char *)cmd->key.ptr);
        size_t n = cmd->value.len < sizeof s->upper ? cmd->value.len : sizeof s->upper;
        for (size_t i = 0; i < n; i++) {
            char c = ((const char *)cmd->value.ptr)[i];
            s->upper[i] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
        }
        cmd->value.ptr = s->upper; /* lives until the commit returns */
        cmd->value.len = n;
        return MMFS_OK;
    }
    case MMFS_CMD_APPEND_MEMORY:
        cmd->route = mmfs_str("secret");
        return MMFS_OK;
    case MMFS_CMD_DELETE_KV: {
        char audit[80];
        int n = snprintf(audit, sizeof audit, "deleted %.*s", (int)cmd->key.len, (const char *)cmd->key.ptr);
        mmfs_slice v = {audit, (size_t)n};
        return mmfs_batch_set_kv(tx, mmfs_str("audit"), v);
    }
    default:
        return MMFS_OK;
    }
}

static void test_hook_edits_and_adds(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("hook-edit");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    seen s;
    memset(&s, 0, sizeof s);
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, editing_hook, &s));

    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("greeting"), mmfs_str("hello")));
    assert_kv(db, "greeting", "HELLO");
    assert_int_equal(s.types[0], MMFS_CMD_SET_KV);

    uint64_t id = 0;
    mmfs_slice tags[1] = {mmfs_str("t")};
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("a hooked memory"), tags, 1, NULL, &id));
    mmfs_memory *m = NULL;
    MMFS_OK_OR_FAIL(mmfs_get_memory(db, id, &m));
    assert_int_equal(m->route.len, 6);
    assert_memory_equal(m->route.ptr, "secret", 6);
    assert_int_equal(m->ntags, 1);
    mmfs_free(m);

    /* A command the hook adds goes into the same frame: one more LSN. */
    mmfs_store_stats before, after;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &before));
    int deleted = 0;
    MMFS_OK_OR_FAIL(mmfs_delete_kv(db, mmfs_str("greeting"), &deleted));
    assert_int_equal(deleted, 1);
    MMFS_OK_OR_FAIL(mmfs_stats(db, &after));
    assert_int_equal(after.lsn, before.lsn + 2);
    assert_kv(db, "greeting", NULL);
    assert_kv(db, "audit", "deleted greeting"); /* added commands are not hooked again */
    MMFS_OK_OR_FAIL(mmfs_close(db));

    /* What the hook made is in the log: a reopen without the hook sees it. */
    db = mmfs_test_open_sync_none(dir, 0);
    assert_kv(db, "audit", "deleted greeting");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

static void test_hook_rejects_whole_commit(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("hook-reject");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    seen s;
    memset(&s, 0, sizeof s);
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, editing_hook, &s));
    mmfs_store_stats before, after;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &before));

    int rc = mmfs_set_kv(db, mmfs_str("deny-me"), mmfs_str("x"));
    assert_int_equal(rc, MMFS_REJECTED);
    assert_non_null(strstr(mmfs_errmsg(db), "key 'deny-me' is not allowed"));

    /* In a batch, one rejected command rejects all of it, ids included. */
    mmfs_batch *b = NULL;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(db, &b));
    MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str("never"), NULL, 0, NULL));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("ok"), mmfs_str("fine")));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("deny-too"), mmfs_str("x")));
    assert_int_equal(mmfs_batch_commit(b, NULL, NULL), MMFS_REJECTED);

    MMFS_OK_OR_FAIL(mmfs_stats(db, &after));
    assert_int_equal(after.lsn, before.lsn);
    assert_int_equal(after.log_bytes, before.log_bytes);
    assert_kv(db, "ok", NULL);
    assert_kv(db, "deny-me", NULL);

    /* The next memory still gets id 1: the rejected one consumed nothing. */
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, NULL, NULL));
    uint64_t id = 0;
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("first"), NULL, 0, NULL, &id));
    assert_int_equal(id, 1);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* Calls back into its own store: must get BUSY, not deadlock. */
static int reentrant_hook(void *ud, mmfs_command *cmd, mmfs_batch *tx) {
    (void)cmd;
    seen *s = ud;
    s->calls++;
    s->reentry_rc = mmfs_set_kv(s->db, mmfs_str("inner"), mmfs_str("x"));
    /* The hook's tx belongs to the commit: committing it is refused. */
    if (mmfs_batch_commit(tx, NULL, NULL) != MMFS_INVALID) return mmfs_reject("tx commit was allowed");
    /* Reads are fine inside a hook. */
    mmfs_slice v;
    int rc = mmfs_get_kv(s->db, mmfs_str("outer"), &v);
    if (rc != MMFS_NOTFOUND && rc != MMFS_OK) return mmfs_reject("read inside hook failed: %d", rc);
    return MMFS_OK;
}

static void test_hook_reentry_busy(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("hook-busy");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    seen s;
    memset(&s, 0, sizeof s);
    s.db = db;
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, reentrant_hook, &s));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("outer"), mmfs_str("v")));
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.reentry_rc, MMFS_BUSY);
    assert_kv(db, "outer", "v");
    assert_kv(db, "inner", NULL);
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, NULL, NULL));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("inner"), mmfs_str("later")));
    assert_kv(db, "inner", "later");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* A hook returning something other than OK or REJECTED rejects too. */
static int failing_hook(void *ud, mmfs_command *cmd, mmfs_batch *tx) {
    (void)ud;
    (void)cmd;
    (void)tx;
    return MMFS_IO;
}

static void test_hook_failure_rejects(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("hook-fail");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, failing_hook, NULL));
    assert_int_equal(mmfs_update_state(db, mmfs_str("s"), NULL), MMFS_REJECTED);
    assert_non_null(strstr(mmfs_errmsg(db), "IO"));
    mmfs_slice v;
    uint64_t ver = 99;
    MMFS_OK_OR_FAIL(mmfs_get_state(db, &v, &ver));
    assert_int_equal(ver, 0);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hook_edits_and_adds),
        cmocka_unit_test(test_hook_rejects_whole_commit),
        cmocka_unit_test(test_hook_reentry_busy),
        cmocka_unit_test(test_hook_failure_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
