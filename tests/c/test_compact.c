/*
** test_compact.c: mmfs_compact (core/src/compact.c).  Per kind, what
** compaction keeps and drops, seen through get, search, list and scan,
** before and after a reopen; ids and LSNs never given again; another
** handle in this process and another process reading and writing while
** the log is switched (slices handed out before stay valid); ttl and
** compaction.keep; a keep that raises, loops or allocates without bound
** leaves the store unchanged and usable; dead_bytes counts only records.
*/
#include "testutil.h"

#include "db.h" /* LOCK's page, to replay a race (test_segment_gone) */

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SMALL_SEG (64u << 10)

static mmfs_slice S(const char *s) { return mmfs_str(s); }

static uint64_t add_mem(mmfs_db *db, const char *text, const char *tag) {
    mmfs_slice t = S(tag);
    uint64_t id = 0;
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, S(text), &t, tag[0] ? 1 : 0, NULL, &id));
    return id;
}

static void set(mmfs_db *db, const char *k, const char *v) { MMFS_OK_OR_FAIL(mmfs_set_kv(db, S(k), S(v))); }

static void expect_kv(mmfs_db *db, const char *k, const char *v) {
    mmfs_slice got;
    if (!v) {
        MMFS_ASSERT_STATUS(mmfs_get_kv(db, S(k), &got), MMFS_NOTFOUND);
        return;
    }
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, S(k), &got));
    MMFS_ASSERT_SLICE_STR(got, v);
}

static size_t search_count(mmfs_db *db, const char *q) {
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 100000;
    mmfs_memories *m = NULL;
    MMFS_OK_OR_FAIL(mmfs_search_memory(db, S(q), &f, &m));
    size_t n = m->count;
    mmfs_free(m);
    return n;
}

static size_t list_count(mmfs_db *db) {
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 100000;
    mmfs_memories *m = NULL;
    MMFS_OK_OR_FAIL(mmfs_list_memories(db, &f, &m));
    size_t n = m->count;
    mmfs_free(m);
    return n;
}

static int has_memory(mmfs_db *db, uint64_t id) {
    mmfs_memory *m = NULL;
    int rc = mmfs_get_memory(db, id, &m);
    if (rc == MMFS_OK) mmfs_free(m);
    else MMFS_ASSERT_STATUS(rc, MMFS_NOTFOUND);
    return rc == MMFS_OK;
}

static size_t scan_count(mmfs_db *db, const char *prefix) {
    mmfs_kv_iter *it;
    mmfs_slice k, v;
    size_t n = 0;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_open(db, S(prefix), &it));
    while (mmfs_kv_iter_next(it, &k, &v) == MMFS_OK) n++;
    mmfs_kv_iter_close(it);
    return n;
}

/* Files in DIR/log with suffix SUFFIX. */
static int count_files(const char *dir, const char *suffix) {
    char p[4096];
    snprintf(p, sizeof p, "%s/log", dir);
    DIR *d = opendir(p);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (l > sl && !strcmp(e->d_name + l - sl, suffix)) n++;
    }
    closedir(d);
    return n;
}

/* A store with every kind, half of it dead. */
static void fill(mmfs_db *db, uint64_t *ids, size_t n) {
    char b[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(b, sizeof b, "memory %zu about coffee", i);
        ids[i] = add_mem(db, b, i % 2 ? "odd" : "even");
    }
    for (size_t i = 0; i < n; i += 2) {
        int del = 0;
        MMFS_OK_OR_FAIL(mmfs_delete_memory(db, ids[i], &del));
        assert_true(del);
    }
    for (size_t i = 0; i < 200; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "key%03zu", i);
        snprintf(v, sizeof v, "one%zu", i);
        set(db, k, v);
        snprintf(v, sizeof v, "two%zu", i);
        set(db, k, v);
    }
    for (size_t i = 0; i < 50; i++) {
        char k[32];
        snprintf(k, sizeof k, "key%03zu", i);
        MMFS_OK_OR_FAIL(mmfs_delete_kv(db, S(k), NULL));
    }
    MMFS_OK_OR_FAIL(mmfs_update_state(db, S("state one"), NULL));
    MMFS_OK_OR_FAIL(mmfs_update_state(db, S("state two"), NULL));
    MMFS_OK_OR_FAIL(mmfs_append_stream(db, S("st"), S("hello ")));
    MMFS_OK_OR_FAIL(mmfs_append_stream(db, S("st"), S("world")));
    MMFS_OK_OR_FAIL(mmfs_index(db, S("doc"), S("first text")));
    MMFS_OK_OR_FAIL(mmfs_index(db, S("doc"), S("second text")));
    MMFS_OK_OR_FAIL(mmfs_index(db, S("gone"), S("gone text")));
    MMFS_OK_OR_FAIL(mmfs_unindex(db, S("gone"), NULL));
    mmfs_session s;
    memset(&s, 0, sizeof s);
    s.id = S("s1");
    s.has_payload = 1;
    s.payload = S("p1");
    MMFS_OK_OR_FAIL(mmfs_put_session(db, &s));
    s.payload = S("p2");
    MMFS_OK_OR_FAIL(mmfs_put_session(db, &s));
    s.id = S("s2");
    MMFS_OK_OR_FAIL(mmfs_put_session(db, &s));
    MMFS_OK_OR_FAIL(mmfs_delete_session(db, S("s2"), NULL));
}

static void check_filled(mmfs_db *db, const uint64_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) assert_int_equal(has_memory(db, ids[i]), i % 2 == 1);
    assert_int_equal(search_count(db, "coffee"), n / 2);
    assert_int_equal(search_count(db, "tag:even"), 0);
    assert_int_equal(list_count(db), n / 2);
    assert_int_equal(scan_count(db, "key"), 150);
    expect_kv(db, "key010", NULL);
    expect_kv(db, "key150", "two150");
    mmfs_slice v;
    uint64_t ver;
    MMFS_OK_OR_FAIL(mmfs_get_state(db, &v, &ver));
    MMFS_ASSERT_SLICE_STR(v, "state two");
    assert_int_equal(ver, 2);
    uint64_t sz;
    MMFS_OK_OR_FAIL(mmfs_stream_size(db, S("st"), &sz));
    assert_int_equal(sz, 11);
    mmfs_doc_hits *h = NULL;
    MMFS_OK_OR_FAIL(mmfs_search(db, S("text"), 10, &h));
    assert_int_equal(h->count, 1);
    MMFS_ASSERT_SLICE_STR(h->items[0].key, "doc");
    mmfs_free(h);
    mmfs_session s;
    MMFS_OK_OR_FAIL(mmfs_get_session(db, S("s1"), &s));
    MMFS_ASSERT_SLICE_STR(s.payload, "p2");
    MMFS_ASSERT_STATUS(mmfs_get_session(db, S("s2"), &s), MMFS_NOTFOUND);
    MMFS_OK_OR_FAIL(mmfs_verify(db));
}

static void test_compact_every_kind(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_kinds");
    mmfs_db *db = mmfs_test_open_sync_none(dir, SMALL_SEG);
    uint64_t ids[1000];
    fill(db, ids, 1000);
    check_filled(db, ids, 1000);
    mmfs_store_stats before = mmfs_test_stats(db);
    assert_true(before.segments > 2);
    mmfs_compact_result r;
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, &r));
    assert_int_equal(r.bytes_before, before.log_bytes);
    assert_true(r.bytes_after < before.log_bytes / 2);
    assert_true(r.kept > 0 && r.dropped > 0);
    mmfs_store_stats after = mmfs_test_stats(db);
    assert_int_equal(after.log_bytes, r.bytes_after);
    assert_int_equal(after.dead_bytes, 0);
    assert_int_equal(after.lsn, before.lsn);
    assert_int_equal(after.memories, 500);
    assert_int_equal(after.compacting, 0);
    check_filled(db, ids, 1000);
    /* the old segments are gone, the output renamed into place */
    assert_int_equal(count_files(dir, ".seg"), (int)after.segments);
    assert_int_equal(count_files(dir, ".cseg"), 0);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open_sync_none(dir, SMALL_SEG);
    check_filled(db, ids, 1000);
    /* and again: compacting a compacted log drops nothing more */
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, &r));
    assert_int_equal(r.dropped, 0);
    check_filled(db, ids, 1000);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* The newest memories and records deleted: after compaction and reopen,
** neither an id nor an LSN is given twice. */
static void test_ids_never_reused(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_ids");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    uint64_t ids[10];
    for (int i = 0; i < 10; i++) ids[i] = add_mem(db, "some text", "");
    for (int i = 7; i < 10; i++) MMFS_OK_OR_FAIL(mmfs_delete_memory(db, ids[i], NULL));
    set(db, "k", "v");
    MMFS_OK_OR_FAIL(mmfs_delete_kv(db, S("k"), NULL));
    uint64_t lsn = mmfs_test_lsn(db);
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, NULL));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open_sync_none(dir, 0);
    assert_int_equal(mmfs_test_lsn(db), lsn);
    assert_int_equal(add_mem(db, "after", ""), ids[9] + 1);
    assert_int_equal(mmfs_test_lsn(db), lsn + 1);
    assert_false(has_memory(db, ids[9]));
    MMFS_OK_OR_FAIL(mmfs_verify(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open_sync_none(dir, 0);
    assert_int_equal(add_mem(db, "after two", ""), ids[9] + 2);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* Another handle of this process: it rebuilds when it next reads; a value
** it handed out before stays readable; its writes land in the new log. */
static void test_other_handle(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_other");
    mmfs_db *a = mmfs_test_open_sync_none(dir, SMALL_SEG);
    mmfs_db *b = mmfs_test_open_sync_none(dir, SMALL_SEG);
    uint64_t ids[200];
    fill(a, ids, 200);
    mmfs_slice held;
    MMFS_OK_OR_FAIL(mmfs_get_kv(b, S("key100"), &held));
    MMFS_OK_OR_FAIL(mmfs_compact(a, NULL, NULL));
    check_filled(b, ids, 200);
    MMFS_ASSERT_SLICE_STR(held, "two100"); /* the old mapping is still there */
    set(b, "from_b", "yes");
    expect_kv(a, "from_b", "yes");
    uint64_t id = add_mem(b, "written by b", "");
    assert_int_equal(id, ids[199] + 1);
    MMFS_OK_OR_FAIL(mmfs_compact(b, NULL, NULL)); /* and the other way */
    expect_kv(a, "from_b", "yes");
    assert_true(has_memory(a, id));
    MMFS_OK_OR_FAIL(mmfs_close(a));
    MMFS_OK_OR_FAIL(mmfs_close(b));
    a = mmfs_test_open_sync_none(dir, SMALL_SEG);
    expect_kv(a, "from_b", "yes");
    MMFS_OK_OR_FAIL(mmfs_verify(a));
    MMFS_OK_OR_FAIL(mmfs_close(a));
    mmfs_test_rmdir(dir);
}

/* A child process writes and reads throughout while the parent compacts
** again and again: every write the child had acknowledged is there. */
static void test_other_process(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_proc");
    mmfs_db *db = mmfs_test_open_sync_none(dir, SMALL_SEG);
    uint64_t ids[100];
    fill(db, ids, 100);
    int pfd[2];
    pid_t pid = mmfs_test_fork_piped(pfd);
    if (pid == 0) {
        mmfs_close(db); /* the parent's handle: a child only frees it (valgrind counts it lost) */
        mmfs_options o = mmfs_test_options(SMALL_SEG);
        o.lock_timeout_ms = 120000; /* valgrind on a busy machine: compactions are slow */
        mmfs_db *c = NULL;
        if (mmfs_open(dir, &o, &c) != MMFS_OK) {
            fprintf(stderr, "child open: %s\n", mmfs_errmsg(NULL));
            _exit(2);
        }
        int n = 0;
        for (; n < 600; n++) {
            char k[32];
            snprintf(k, sizeof k, "child%04d", n);
            if (mmfs_set_kv(c, S(k), S(k)) != MMFS_OK) {
                fprintf(stderr, "child write: %s\n", mmfs_errmsg(NULL));
                break;
            }
            mmfs_slice v;
            if (mmfs_get_kv(c, S("key150"), &v) != MMFS_OK || v.len != 6 || memcmp(v.ptr, "two150", 6)) {
                fprintf(stderr, "child read: %s\n", mmfs_errmsg(NULL));
                break;
            }
        }
        mmfs_close(c);
        if (write(pfd[1], &n, sizeof n) != (ssize_t)sizeof n) _exit(3);
        _exit(0);
    }
    for (int i = 0; i < 15; i++) {
        MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, NULL));
        check_filled(db, ids, 100);
        usleep(2000);
    }
    int n = -1;
    assert_int_equal(read(pfd[0], &n, sizeof n), (ssize_t)sizeof n);
    close(pfd[0]);
    int st = mmfs_test_wait(pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child: %s %d (2: open failed, 3: pipe)", WIFEXITED(st) ? "exit" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    assert_int_equal(n, 600);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open_sync_none(dir, SMALL_SEG);
    assert_int_equal(scan_count(db, "child"), 600);
    check_filled(db, ids, 100);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* A handle that looked at LOCK's page just before a compaction switched
** (so it saw the old first segment) and then finds a segment of the old
** log gone re-reads MANIFEST and catches up with the new log, instead of
** failing IO.  The race is replayed by putting the old first segment back
** into the page after the switch. */
static void test_segment_gone(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_gone");
    mmfs_db *a = mmfs_test_open_sync_none(dir, SMALL_SEG);
    mmfs_db *b = mmfs_test_open_sync_none(dir, SMALL_SEG);
    set(a, "first", "1");
    expect_kv(b, "first", "1"); /* b has applied segment 1 */
    static char big[4096];
    memset(big, 'y', sizeof big);
    for (int i = 0; i < 60; i++) { /* segments 2, 3, 4...: b has not opened them */
        char k[32];
        snprintf(k, sizeof k, "big%02d", i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(a, S(k), mmfs_test_slice(big, sizeof big)));
    }
    uint32_t old_first = b->log.first_seg;
    MMFS_OK_OR_FAIL(mmfs_compact(a, NULL, NULL));
    atomic_store(&b->log.shm->first_segment, old_first);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(b, S("big59"), &v));
    mmfs_test_assert_slice(v, big, sizeof big);
    assert_int_equal(b->log.first_seg, a->log.first_seg);
    set(b, "after", "b writes on");
    expect_kv(a, "after", "b writes on");
    MMFS_OK_OR_FAIL(mmfs_close(a));
    MMFS_OK_OR_FAIL(mmfs_close(b));
    mmfs_test_rmdir(dir);
}

/* A state subscription of a handle that rebuilt after another handle's
** compaction still wakes: its descriptor turns readable and next returns
** the new version, for states others write and for its own. */
static void expect_woken(mmfs_sub *sub, const char *want, uint64_t version) {
    struct pollfd p = {mmfs_sub_fd(sub), POLLIN, 0};
    assert_true(p.fd >= 0);
    if (poll(&p, 1, 10000) != 1) fail_msg("the subscription's descriptor did not turn readable (want %s)", want);
    mmfs_slice v;
    uint64_t ver = 0;
    MMFS_OK_OR_FAIL(mmfs_sub_next(sub, 0, &v, &ver));
    assert_int_equal(ver, version);
    MMFS_ASSERT_SLICE_STR(v, want);
}

static void test_subscription_survives(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_sub");
    mmfs_db *a = mmfs_test_open_sync_none(dir, 0);
    mmfs_db *b = mmfs_test_open_sync_none(dir, 0);
    MMFS_OK_OR_FAIL(mmfs_update_state(a, S("one"), NULL));
    mmfs_sub *sub = NULL;
    MMFS_OK_OR_FAIL(mmfs_subscribe_state(b, &sub));
    assert_true(mmfs_sub_fd(sub) >= 0);
    set(a, "k", "1");
    set(a, "k", "2");
    MMFS_OK_OR_FAIL(mmfs_compact(a, NULL, NULL));
    MMFS_OK_OR_FAIL(mmfs_update_state(a, S("two"), NULL));
    expect_woken(sub, "two", 2); /* b's watcher rebuilt, then applied it */
    assert_int_equal(b->log.first_seg, a->log.first_seg);
    MMFS_OK_OR_FAIL(mmfs_update_state(b, S("three"), NULL));
    expect_woken(sub, "three", 3);
    mmfs_sub_close(sub);
    MMFS_OK_OR_FAIL(mmfs_close(a));
    MMFS_OK_OR_FAIL(mmfs_close(b));
    mmfs_test_rmdir(dir);
}

/* dead_bytes: records only, never frame overhead. */
static void test_dead_bytes(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_dead");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    for (int i = 0; i < 50; i++) add_mem(db, "text", "t");
    mmfs_store_stats st = mmfs_test_stats(db);
    assert_int_equal(st.dead_bytes, 0);
    assert_true(st.log_bytes > st.live_bytes);
    set(db, "k", "first value");
    st = mmfs_test_stats(db);
    uint64_t live = st.live_bytes;
    set(db, "k", "second value");
    st = mmfs_test_stats(db);
    /* the first KV_SET: 16-byte header, two length-prefixed strings */
    assert_int_equal(st.dead_bytes, 16 + 4 + 1 + 4 + strlen("first value"));
    assert_int_equal(st.live_bytes, live + 1);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open_sync_none(dir, 0);
    assert_int_equal(mmfs_test_stats(db).dead_bytes, 16 + 4 + 1 + 4 + strlen("first value"));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

#ifdef MMFS_HAVE_POLICY
static const char *const TTL_KEEP =
    "return { route = function(mem) return mem.tags.scratch and 'scratch' or 'default' end,\n"
    "  routes = { default = {}, scratch = { ttl = 60 } },\n"
    "  compaction = { keep = function(mem, now)\n"
    "    return mem.tags.pinned or mem.tags[1] == 'scratch' or now - mem.created_at < 1000 end } }\n";

static uint64_t add_at(mmfs_db *db, const char *tag, int64_t at) {
    mmfs_slice t = S(tag);
    mmfs_memory_opts o;
    memset(&o, 0, sizeof o);
    o.has_created_at = 1;
    o.created_at = at;
    uint64_t id;
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, S("remember this"), &t, 1, &o, &id));
    return id;
}

static void test_ttl_and_keep(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_policy");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    MMFS_OK_OR_FAIL(mmfs_set_policy(db, S(TTL_KEEP)));
    const int64_t now = 1700000000;
    uint64_t fresh_scratch = add_at(db, "scratch", now - 30);
    uint64_t old_scratch = add_at(db, "scratch", now - 61);
    uint64_t pinned = add_at(db, "pinned", now - 5000);
    uint64_t old = add_at(db, "other", now - 5000);
    uint64_t young = add_at(db, "other", now - 10);
    mmfs_compact_opts o;
    mmfs_compact_opts_init(&o);
    o.now = now;
    mmfs_compact_result r;
    MMFS_OK_OR_FAIL(mmfs_compact(db, &o, &r));
    assert_int_equal(r.dropped, 2);
    assert_true(has_memory(db, fresh_scratch));
    assert_false(has_memory(db, old_scratch));
    assert_true(has_memory(db, pinned));
    assert_false(has_memory(db, old));
    assert_true(has_memory(db, young));
    assert_int_equal(search_count(db, "remember"), 3);
    assert_int_equal(list_count(db), 3);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open_sync_none(dir, 0);
    assert_false(has_memory(db, old));
    assert_int_equal(list_count(db), 3);
    assert_int_equal(add_at(db, "other", now), young + 1);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* Writes go on while the compaction copies (the copy holds no lock): a
** thread writes through the same handle meanwhile, enough to make new
** segments, so the output is numbered after them; every write is there
** after the switch and after a reopen. */
typedef struct online_arg {
    mmfs_db *db;
    volatile int done;
    int written, during;
} online_arg;

static void *online_writer(void *p) {
    online_arg *a = p;
    static char big[2048];
    memset(big, 'x', sizeof big);
    while (!a->done && a->written < 20000) {
        char k[32];
        snprintf(k, sizeof k, "online%05d", a->written);
        if (mmfs_set_kv(a->db, S(k), mmfs_test_slice(big, sizeof big)) != MMFS_OK) break;
        a->written++;
        mmfs_store_stats st;
        if (mmfs_stats(a->db, &st) == MMFS_OK && st.compacting) a->during++;
    }
    return NULL;
}

static void test_online_writes(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_online");
    mmfs_db *db = mmfs_test_open_sync_none(dir, SMALL_SEG);
    /* a keep that takes its time, so the copy lasts */
    MMFS_OK_OR_FAIL(mmfs_set_policy(db, S("return { compaction = { keep = function(mem)\n"
                                          "  local x = 0 for i = 1, 20000 do x = x + i end return x > 0 end } }")));
    uint64_t ids[1000];
    fill(db, ids, 1000);
    online_arg a = {db, 0, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, online_writer, &a), 0);
    while (a.written < 10) usleep(1000);
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, NULL));
    a.done = 1;
    pthread_join(t, NULL);
    if (a.during < 40) fail_msg("only %d writes while compacting: the copy held the writer lock?", a.during);
    check_filled(db, ids, 1000);
    assert_int_equal(scan_count(db, "online"), (size_t)a.written);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open_sync_none(dir, SMALL_SEG);
    check_filled(db, ids, 1000);
    assert_int_equal(scan_count(db, "online"), (size_t)a.written);
    assert_int_equal(count_files(dir, ".cseg"), 0);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* compaction.when: asked after commits, at most once a second; when it
** says yes a thread of the handle compacts.  One that loops says no and
** costs the commits nothing but its budget. */
static void test_when(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_when");
    mmfs_db *db = mmfs_test_open_sync_none(dir, SMALL_SEG);
    MMFS_OK_OR_FAIL(mmfs_set_policy(db, S("return { compaction = { when = function(s)\n"
                                          "  return s.dead_bytes > s.live_bytes end } }")));
    for (int i = 0; i < 40; i++) set(db, "k", i % 2 ? "odd value" : "even value");
    mmfs_store_stats before = mmfs_test_stats(db);
    assert_true(before.dead_bytes > before.live_bytes);
    mmfs_store_stats st = before;
    for (int tries = 0; tries < 100 && st.dead_bytes > 0; tries++) {
        usleep(100000);
        set(db, "k", "last value"); /* a commit: when may be asked */
        do {
            usleep(10000);
            st = mmfs_test_stats(db);
        } while (st.compacting);
    }
    assert_true(st.dead_bytes < before.dead_bytes);
    assert_true(st.log_bytes < before.log_bytes);
    expect_kv(db, "k", "last value");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open_sync_none(dir, SMALL_SEG);
    expect_kv(db, "k", "last value");
    MMFS_OK_OR_FAIL(mmfs_set_policy(db, S("return { compaction = { when = function() while true do end end } }")));
    for (int i = 0; i < 15; i++) {
        set(db, "k", "again");
        usleep(100000);
    }
    assert_int_equal(mmfs_test_stats(db).compacting, 0);
    expect_kv(db, "k", "again");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* A keep that raises, loops or allocates without bound: the compaction
** fails with a clear error, and nothing on disk or in the handle changed. */
static void test_hostile_keep(void **state) {
    (void)state;
    static const struct {
        const char *body;
        int status;
        const char *says;
    } cases[] = {
        {"error('no thanks')", MMFS_REJECTED, "no thanks"},
        {"while true do end", MMFS_LIMIT, "compaction.keep"},
        {"local t = {} while true do t[#t + 1] = string.rep('x', 4096) .. #t end", MMFS_LIMIT, "compaction.keep"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *dir = mmfs_test_dir("compact_hostile");
        mmfs_options opts = mmfs_test_options(0);
        opts.hook_budget = 100000;
        mmfs_db *db = mmfs_test_open(dir, &opts);
        char src[512];
        snprintf(src, sizeof src, "return { compaction = { keep = function(mem, now) %s end } }", cases[c].body);
        MMFS_OK_OR_FAIL(mmfs_set_policy(db, S(src)));
        uint64_t ids[20];
        fill(db, ids, 20);
        mmfs_store_stats before = mmfs_test_stats(db);
        MMFS_ASSERT_STATUS(mmfs_compact(db, NULL, NULL), cases[c].status);
        if (!strstr(mmfs_errmsg(NULL), cases[c].says)) fail_msg("message: %s", mmfs_errmsg(NULL));
        mmfs_store_stats after = mmfs_test_stats(db);
        assert_int_equal(after.log_bytes, before.log_bytes);
        assert_int_equal(after.segments, before.segments);
        assert_int_equal(count_files(dir, ".cseg"), 0);
        check_filled(db, ids, 20);
        /* usable: writes go on, and a sane policy compacts */
        set(db, "after", "ok");
        MMFS_OK_OR_FAIL(mmfs_set_policy(db, S("return { compaction = { keep = function() return true end } }")));
        MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, NULL));
        check_filled(db, ids, 20);
        expect_kv(db, "after", "ok");
        MMFS_OK_OR_FAIL(mmfs_close(db));
        mmfs_test_rmdir(dir);
    }
}

/* Every file of DIR as "name size hash" lines, recursively: equal
** strings, equal bytes.  Not the lock files: LOCK's page holds live
** positions, and log/compact.lock is made empty by the first compaction. */
static void tree_digest(const char *dir, const char *rel, char **out, size_t *len, size_t *cap) {
    char p[4096];
    snprintf(p, sizeof p, "%s%s%s", dir, rel[0] ? "/" : "", rel);
    struct dirent **names = NULL;
    int n = scandir(p, &names, NULL, alphasort);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        char sub[4096], full[8300];
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", nm);
        snprintf(full, sizeof full, "%s/%s", dir, sub);
        struct stat st;
        if (strcmp(nm, ".") && strcmp(nm, "..") && strcmp(sub, "LOCK") && strcmp(sub, "log/compact.lock") && stat(full, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                tree_digest(dir, sub, out, len, cap);
            } else {
                FILE *f = fopen(full, "rb");
                assert_non_null(f);
                uint64_t h = 1469598103934665603ull;
                int c;
                while ((c = fgetc(f)) != EOF) h = (h ^ (uint64_t)c) * 1099511628211ull;
                fclose(f);
                if (*len + 8600 > *cap) {
                    *cap = (*cap + 8600) * 2;
                    *out = realloc(*out, *cap);
                    assert_non_null(*out);
                }
                *len += (size_t)snprintf(*out + *len, *cap - *len, "%s %lld %llx\n", sub, (long long)st.st_size,
                                         (unsigned long long)h);
            }
        }
        free(names[i]);
    }
    free(names);
}

static char *files_of(const char *dir) {
    char *out = calloc(1, 1);
    size_t len = 0, cap = 1;
    tree_digest(dir, "", &out, &len, &cap);
    return out;
}

/* What the store answers: every memory by get, list and two searches,
** every key. */
static char *answers(mmfs_db *db) {
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    b[0] = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        if (len + 512 > cap) b = realloc(b, cap *= 2);                                             \
        len += (size_t)snprintf(b + len, cap - len, __VA_ARGS__);                                  \
    } while (0)
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 100000;
    const char *qs[] = {NULL, "coffee", "tea OR odd"};
    for (size_t q = 0; q < 3; q++) {
        mmfs_memories *m = NULL;
        MMFS_OK_OR_FAIL(qs[q] ? mmfs_search_memory(db, S(qs[q]), &f, &m) : mmfs_list_memories(db, &f, &m));
        ADD("%s:", qs[q] ? qs[q] : "list");
        for (size_t i = 0; i < m->count; i++)
            ADD(" %llu:%.*s", (unsigned long long)m->items[i].id, (int)m->items[i].text.len,
                (const char *)m->items[i].text.ptr);
        ADD("\n");
        mmfs_free(m);
    }
    for (uint64_t id = 1; id < 300; id++) ADD("%d", has_memory(db, id));
    mmfs_kv_iter *it;
    mmfs_slice k, v;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_open(db, S(""), &it));
    while (mmfs_kv_iter_next(it, &k, &v) == MMFS_OK)
        ADD("\n%.*s=%.*s", (int)k.len, (const char *)k.ptr, (int)v.len, (const char *)v.ptr);
    mmfs_kv_iter_close(it);
#undef ADD
    return b;
}

/* More hostile keeps, on a store whose output spans segments (so some
** refuse only after output was written) and that has checkpoints: each
** fails naming compaction.keep; every file of the store keeps its bytes
** and every answer stays the same; the store takes writes, and a sane
** keep then compacts it. */
static void test_hostile_keep_unchanged(void **state) {
    (void)state;
    static const struct {
        const char *body;
        int status, alt;
    } cases[] = {
        /* raises late: output already written */
        {"if mem.id > 150 then error('late refusal') end return true", MMFS_REJECTED, MMFS_REJECTED},
        {"error({})", MMFS_REJECTED, MMFS_REJECTED},
        {"error()", MMFS_REJECTED, MMFS_REJECTED},
        /* one allocation past the limit, inside a library function */
        {"return string.rep('x', 1 << 40)", MMFS_LIMIT, MMFS_LIMIT},
        {"return #string.rep(mem.text, 1 << 30) > 0", MMFS_LIMIT, MMFS_LIMIT},
        /* catching its own limit errors to go on */
        {"while true do pcall(function() while true do end end) end", MMFS_LIMIT, MMFS_LIMIT},
        {"while true do pcall(string.rep, 'x', 1 << 30) end", MMFS_LIMIT, MMFS_LIMIT},
        /* unbounded recursion: the budget or the stack, whichever first */
        {"local function f(n) return f(n + 1) + 1 end return f(1)", MMFS_LIMIT, MMFS_REJECTED},
        /* a late loop */
        {"if mem.id > 150 then while true do end end return true", MMFS_LIMIT, MMFS_LIMIT},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *dir = mmfs_test_dir("compact_hostile2");
        mmfs_options opts = mmfs_test_options(SMALL_SEG);
        opts.hook_budget = 100000;
        opts.checkpoint_bytes = 1u << 20;
        mmfs_db *db = mmfs_test_open(dir, &opts);
        char src[512];
        snprintf(src, sizeof src, "return { compaction = { keep = function(mem, now) %s end } }", cases[c].body);
        MMFS_OK_OR_FAIL(mmfs_set_policy(db, S(src)));
        uint64_t ids[400];
        fill(db, ids, 400);
        char big[2048];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        for (int i = 0; i < 200; i++) set(db, "big", big); /* several segments of dead bytes */
        MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
        MMFS_OK_OR_FAIL(mmfs_sync(db));
        char *files = files_of(dir), *said = answers(db);
        mmfs_store_stats before = mmfs_test_stats(db);
        int rc = mmfs_compact(db, NULL, NULL);
        if (rc != cases[c].status && rc != cases[c].alt)
            fail_msg("keep %s: compact -> %s (%s)", cases[c].body, mmfs_err_name(rc), mmfs_errmsg(NULL));
        if (!strstr(mmfs_errmsg(NULL), "compaction.keep"))
            fail_msg("keep %s: the message does not name compaction.keep: %s", cases[c].body, mmfs_errmsg(NULL));
        char *files2 = files_of(dir), *said2 = answers(db);
        assert_string_equal(files, files2);
        assert_string_equal(said, said2);
        mmfs_store_stats after = mmfs_test_stats(db);
        assert_int_equal(after.lsn, before.lsn);
        assert_int_equal(after.log_bytes, before.log_bytes);
        assert_int_equal(after.compacting, 0);
        check_filled(db, ids, 400);
        /* usable: a write, a sane keep compacts, a reopen agrees */
        set(db, "after", "ok");
        MMFS_OK_OR_FAIL(mmfs_set_policy(db, S("return { compaction = { keep = function(mem) return true end } }")));
        mmfs_compact_result res;
        MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, &res));
        assert_true(res.bytes_after < res.bytes_before);
        check_filled(db, ids, 400);
        expect_kv(db, "after", "ok");
        MMFS_OK_OR_FAIL(mmfs_close(db));
        db = mmfs_test_open(dir, &opts);
        check_filled(db, ids, 400);
        expect_kv(db, "after", "ok");
        MMFS_OK_OR_FAIL(mmfs_close(db));
        free(files);
        free(files2);
        free(said);
        free(said2);
        mmfs_test_rmdir(dir);
    }
}
#endif

/* A crash after the output was written but before MANIFEST switched
** leaves .cseg files: the next open removes them and the store is as
** before.  (tests/crash kills compactions at random moments.) */
static void test_leftovers_removed(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_leftover");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    uint64_t ids[40];
    fill(db, ids, 40);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char p[4096];
    snprintf(p, sizeof p, "%s/log/00000002.cseg", dir);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs("half a compaction", f);
    fclose(f);
    db = mmfs_test_open_sync_none(dir, 0);
    assert_int_equal(count_files(dir, ".cseg"), 0);
    check_filled(db, ids, 40);
    /* and a compaction removes those it finds while the store is open */
    snprintf(p, sizeof p, "%s/log/00000077.cseg", dir);
    f = fopen(p, "wb");
    assert_non_null(f);
    fputs("another half", f);
    fclose(f);
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, NULL));
    assert_int_equal(count_files(dir, ".cseg"), 0);
    check_filled(db, ids, 40);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

static void test_refusals(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_refuse");
    mmfs_db *db = mmfs_test_open_sync_none(dir, 0);
    set(db, "k", "v");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_options o = mmfs_test_options(0);
    o.readonly = 1;
    db = mmfs_test_open(dir, &o);
    MMFS_ASSERT_STATUS(mmfs_compact(db, NULL, NULL), MMFS_READONLY);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open_sync_none(dir, 0);
    mmfs_compact_opts co;
    mmfs_compact_opts_init(&co);
    co.now = -1;
    MMFS_ASSERT_STATUS(mmfs_compact(db, &co, NULL), MMFS_INVALID);
    expect_kv(db, "k", "v");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* An output of several segments: each full one ends with a seal whose LSN
** follows the last frame written before it (not the frame that did not
** fit), so the handle, verify and a reopen all read it whole. */
static void test_output_spans_segments(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("compact_spans");
    mmfs_db *db = mmfs_test_open_sync_none(dir, SMALL_SEG);
    size_t n = 30000;
    uint64_t *ids = malloc(n * sizeof *ids);
    assert_non_null(ids);
    fill(db, ids, n);
    mmfs_store_stats st;
    mmfs_compact_result res;
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, &res));
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    if (st.segments < 2) fail_msg("the output fit one segment (%llu bytes): the test needs more", (unsigned long long)res.bytes_after);
    check_filled(db, ids, n);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open_sync_none(dir, SMALL_SEG);
    check_filled(db, ids, n);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(ids);
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compact_every_kind),
        cmocka_unit_test(test_ids_never_reused),
        cmocka_unit_test(test_other_handle),
        cmocka_unit_test(test_other_process),
        cmocka_unit_test(test_segment_gone),
        cmocka_unit_test(test_subscription_survives),
        cmocka_unit_test(test_dead_bytes),
#ifdef MMFS_HAVE_POLICY
        cmocka_unit_test(test_ttl_and_keep),
        cmocka_unit_test(test_hostile_keep),
        cmocka_unit_test(test_hostile_keep_unchanged),
        cmocka_unit_test(test_online_writes),
        cmocka_unit_test(test_output_spans_segments),
        cmocka_unit_test(test_when),
#endif
        cmocka_unit_test(test_leftovers_removed),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
