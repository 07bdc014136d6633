/* test_hook.c: C-level hooks (mmfs_set_hook): edit, reject, add commands,
** re-entry gives BUSY, and a rejected commit leaves nothing behind. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* Every call a C hook makes on its own store either works or returns BUSY,
** never deadlocks (issue 13 item 5: mmfs_stats and mmfs_verify took the
** writer mutex the hook's writer holds).  A watchdog turns a hang into a
** failure instead of a stuck suite. */
typedef struct calls {
    mmfs_db *db;
    int n;
    const char *name[40];
    int rc[40];
} calls;

#define CALL(c, what, expr)          \
    do {                             \
        (c)->name[(c)->n] = (what);  \
        (c)->rc[(c)->n++] = (expr);  \
    } while (0)

static int calling_hook(void *ud, mmfs_command *cmd, mmfs_batch *tx) {
    calls *c = ud;
    mmfs_db *db = c->db;
    mmfs_store_stats st;
    mmfs_slice v;
    uint64_t u;
    mmfs_memories *ms = NULL;
    mmfs_sessions *ss = NULL;
    mmfs_doc_hits *dh = NULL;
    mmfs_memory *m = NULL;
    mmfs_session se;
    mmfs_reader *r = NULL;
    mmfs_sub *sub = NULL;
    mmfs_kv_iter *it = NULL;
    mmfs_batch *b = NULL;
    (void)tx;
    if (cmd->type != MMFS_CMD_SET_KV || cmd->key.len != 4 || memcmp(cmd->key.ptr, "call", 4) != 0) return MMFS_OK;
    CALL(c, "stats", mmfs_stats(db, &st));
    CALL(c, "verify", mmfs_verify(db));
    CALL(c, "refresh", mmfs_refresh(db));
    CALL(c, "get_kv", mmfs_get_kv(db, mmfs_str("a"), &v));
    CALL(c, "get_memory", mmfs_get_memory(db, 1, &m));
    mmfs_free(m);
    CALL(c, "search_memory", mmfs_search_memory(db, mmfs_str("tea"), NULL, &ms));
    mmfs_free(ms);
    ms = NULL;
    CALL(c, "list_memories", mmfs_list_memories(db, NULL, &ms));
    mmfs_free(ms);
    CALL(c, "search", mmfs_search(db, mmfs_str("tea"), 5, &dh));
    mmfs_free(dh);
    CALL(c, "get_session", mmfs_get_session(db, mmfs_str("s"), &se));
    CALL(c, "list_sessions", mmfs_list_sessions(db, 0, &ss));
    mmfs_free(ss);
    ss = NULL;
    CALL(c, "list_by_intent", mmfs_list_by_intent(db, mmfs_str("i"), 0, &ss));
    mmfs_free(ss);
    CALL(c, "stream_size", mmfs_stream_size(db, mmfs_str("st"), &u));
    CALL(c, "open_read", mmfs_open_read(db, mmfs_str("st"), &r));
    if (r) mmfs_reader_close(r);
    CALL(c, "kv_iter_open", mmfs_kv_iter_open(db, mmfs_str(""), &it));
    if (it) mmfs_kv_iter_close(it);
    CALL(c, "get_state", mmfs_get_state(db, &v, &u));
    CALL(c, "subscribe_state", mmfs_subscribe_state(db, &sub));
    if (sub) mmfs_sub_close(sub);
    CALL(c, "get_policy", mmfs_get_policy(db, &v));
    CALL(c, "sync", mmfs_sync(db));
    CALL(c, "set_kv", mmfs_set_kv(db, mmfs_str("x"), mmfs_str("y")));
    CALL(c, "set_policy", mmfs_set_policy(db, mmfs_str("return {}")));
    CALL(c, "set_hook", mmfs_set_hook(db, NULL, NULL));
    CALL(c, "batch_begin", mmfs_batch_begin(db, &b));
    if (b) {
        uint64_t *ids = NULL;
        size_t nids = 0;
        CALL(c, "batch_commit", mmfs_batch_commit(b, &ids, &nids));
        free(ids);
    }
    CALL(c, "close", mmfs_close(db));
    return MMFS_OK;
}

static void test_hook_calls_back(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("hook-calls");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    calls c;
    memset(&c, 0, sizeof c);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("a"), mmfs_str("b")));
    c.db = db;
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, calling_hook, &c));
    alarm(60); /* a deadlock fails the test (SIGALRM) instead of hanging the suite */
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("call"), mmfs_str("v")));
    alarm(0);
    assert_true(c.n > 20);
#ifndef MMFS_HAVE_POLICY
    /* without Lua policies, set_policy refuses any source before anything else */
    for (int i = 0; i < c.n; i++)
        if (!strcmp(c.name[i], "set_policy") && c.rc[i] == MMFS_INVALID) c.rc[i] = MMFS_BUSY;
#endif
    for (int i = 0; i < c.n; i++) {
        int ok = c.rc[i] == MMFS_OK || c.rc[i] == MMFS_NOTFOUND || c.rc[i] == MMFS_BUSY;
        if (!ok) fail_msg("%s from inside a hook: %s", c.name[i], mmfs_err_name(c.rc[i]));
    }
    /* the ones that write, or would wait for this writer, are BUSY */
    for (int i = 0; i < c.n; i++)
        if (!strcmp(c.name[i], "set_kv") || !strcmp(c.name[i], "set_policy") || !strcmp(c.name[i], "close") ||
            !strcmp(c.name[i], "set_hook"))
            assert_int_equal(c.rc[i], MMFS_BUSY);
    /* and the ones that only read work */
    for (int i = 0; i < c.n; i++)
        if (!strcmp(c.name[i], "stats") || !strcmp(c.name[i], "verify") || !strcmp(c.name[i], "get_kv"))
            assert_int_equal(c.rc[i], MMFS_OK);
    assert_kv(db, "call", "v");
    assert_kv(db, "x", NULL);
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, NULL, NULL));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("after"), mmfs_str("ok")));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* A commit has a size limit, counting what hooks add (issue 13 item 4):
** a hook adding 65 MiB to a 1 GiB value fails LIMIT, nothing written.
** The 1 GiB value is untouched anonymous memory (zero pages, never made
** resident): the limit is checked before the frame is built. */
static int growing_hook(void *ud, mmfs_command *cmd, mmfs_batch *tx) {
    (void)cmd;
    mmfs_slice extra = {ud, (size_t)65 << 20};
    return mmfs_batch_set_kv(tx, mmfs_str("extra"), extra);
}

static void test_commit_size_limit(void **state) {
    (void)state;
    size_t big = (size_t)1 << 30;
    void *huge = mmap(NULL, big, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(huge != MAP_FAILED);
    char *extra = calloc(1, (size_t)65 << 20);
    assert_non_null(extra);
    char *dir = mmfs_test_dir("hook-commit-limit");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, growing_hook, extra));
    mmfs_store_stats before, after;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &before));
    mmfs_slice v = {huge, big};
    assert_int_equal(mmfs_set_kv(db, mmfs_str("big"), v), MMFS_LIMIT);
    assert_non_null(strstr(mmfs_errmsg(db), "over the limit"));
    MMFS_OK_OR_FAIL(mmfs_stats(db, &after));
    assert_int_equal(before.lsn, after.lsn);
    assert_int_equal(before.log_bytes, after.log_bytes);
    assert_kv(db, "big", NULL);
    assert_kv(db, "extra", NULL);
    /* a commit under the limit with the same hook goes through */
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("small"), mmfs_str("v")));
    assert_kv(db, "small", "v");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
    free(extra);
    munmap(huge, big);
}

/* How many documents QUERY finds in DB. */
static size_t doc_count(mmfs_db *db, const char *query) {
    mmfs_doc_hits *hits = NULL;
    MMFS_OK_OR_FAIL(mmfs_search(db, mmfs_str(query), 10, &hits));
    size_t n = hits->count;
    mmfs_free(hits);
    return n;
}

/* Lets every command through unchanged, counting them by type. */
static int passing_hook(void *ud, mmfs_command *cmd, mmfs_batch *tx) {
    (void)tx;
    int *count = ud;
    if (cmd->type >= 1 && cmd->type <= 10) count[cmd->type]++;
    return MMFS_OK;
}

/* Every command type goes to the C hook and back (record -> mmfs_command
** -> record, made from the command table) and is written as it came. */
static void test_hook_passes_every_type(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("hook-every");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    int count[11] = {0};
    MMFS_OK_OR_FAIL(mmfs_set_hook(db, passing_hook, count));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("gone"), mmfs_str("x")));
    MMFS_OK_OR_FAIL(mmfs_index(db, mmfs_str("gonedoc"), mmfs_str("old words")));
    mmfs_session gone = {mmfs_str("gone"), 0, {"", 0}, 0, 0, 0, {"", 0}, {"", 0}};
    MMFS_OK_OR_FAIL(mmfs_put_session(db, &gone));

    static const unsigned char fields[] = {'T', 1, 0, 0, 0, 's', 1, 0, 0, 0, 'k', 'i', 7, 0, 0, 0, 0, 0, 0, 0};
    mmfs_session sess = {mmfs_str("s1"), 1, mmfs_str("i1"), 1, 1234, 1, mmfs_str("pay"),
                         {fields, sizeof fields}};
    mmfs_slice tags[2] = {mmfs_str("a"), mmfs_str("b c")};
    mmfs_memory_opts mo = {1, 99, mmfs_str("notes")};
    mmfs_batch *b;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(db, &b));
    MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str("first words"), tags, 2, &mo));
    MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str("second"), NULL, 0, NULL));
    MMFS_OK_OR_FAIL(mmfs_batch_delete_memory(b, 2)); /* the second, given id 2 in this frame */
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("k"), mmfs_str("v")));
    MMFS_OK_OR_FAIL(mmfs_batch_delete_kv(b, mmfs_str("gone")));
    MMFS_OK_OR_FAIL(mmfs_batch_put_session(b, &sess));
    MMFS_OK_OR_FAIL(mmfs_batch_delete_session(b, mmfs_str("gone")));
    MMFS_OK_OR_FAIL(mmfs_batch_append_stream(b, mmfs_str("log"), mmfs_test_slice("bytes\0here", 10)));
    MMFS_OK_OR_FAIL(mmfs_batch_index(b, mmfs_str("doc"), mmfs_str("searchable text")));
    MMFS_OK_OR_FAIL(mmfs_batch_unindex(b, mmfs_str("gonedoc")));
    MMFS_OK_OR_FAIL(mmfs_batch_update_state(b, mmfs_str("st")));
    MMFS_OK_OR_FAIL(mmfs_batch_commit(b, NULL, NULL));
    for (int t = 1; t <= 10; t++) assert_true(count[t] >= 1);

    for (int pass = 0; pass < 2; pass++) { /* as applied, then as replayed from the log */
        mmfs_memory *m = NULL;
        MMFS_OK_OR_FAIL(mmfs_get_memory(db, 1, &m));
        MMFS_ASSERT_SLICE_STR(m->text, "first words");
        MMFS_ASSERT_SLICE_STR(m->route, "notes");
        assert_int_equal(m->created_at, 99);
        assert_int_equal(m->ntags, 2);
        MMFS_ASSERT_SLICE_STR(m->tags[1], "b c");
        mmfs_free(m);
        MMFS_ASSERT_STATUS(mmfs_get_memory(db, 2, &m), MMFS_NOTFOUND);
        assert_kv(db, "k", "v");
        assert_kv(db, "gone", NULL);
        mmfs_session g;
        MMFS_OK_OR_FAIL(mmfs_get_session(db, mmfs_str("s1"), &g));
        MMFS_ASSERT_SLICE_STR(g.intent_id, "i1");
        MMFS_ASSERT_SLICE_STR(g.payload, "pay");
        assert_int_equal(g.created_at, 1234);
        mmfs_test_assert_slice(g.fields, fields, sizeof fields);
        MMFS_ASSERT_STATUS(mmfs_get_session(db, mmfs_str("gone"), &g), MMFS_NOTFOUND);
        mmfs_reader *rd = NULL;
        char bytes[16];
        size_t got = 0;
        MMFS_OK_OR_FAIL(mmfs_open_read(db, mmfs_str("log"), &rd));
        MMFS_OK_OR_FAIL(mmfs_reader_read(rd, bytes, sizeof bytes, &got));
        mmfs_reader_close(rd);
        mmfs_test_assert_slice(mmfs_test_slice(bytes, got), "bytes\0here", 10);
        assert_int_equal(doc_count(db, "searchable"), 1);
        assert_int_equal(doc_count(db, "old"), 0);
        mmfs_slice st;
        uint64_t version = 0;
        MMFS_OK_OR_FAIL(mmfs_get_state(db, &st, &version));
        MMFS_ASSERT_SLICE_STR(st, "st");
        assert_int_equal(version, 1);
        MMFS_OK_OR_FAIL(mmfs_close(db));
        db = mmfs_test_open_sync_none(dir, 0);
    }
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hook_edits_and_adds),
        cmocka_unit_test(test_hook_rejects_whole_commit),
        cmocka_unit_test(test_hook_reentry_busy),
        cmocka_unit_test(test_hook_failure_rejects),
        cmocka_unit_test(test_hook_calls_back),
        cmocka_unit_test(test_commit_size_limit),
        cmocka_unit_test(test_hook_passes_every_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
