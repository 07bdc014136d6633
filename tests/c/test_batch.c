/*
** test_batch.c: atomic batches: one frame, all or nothing, ids in command
** order, abort and empty batches write nothing, dropped deletes, reads
** during a batch see only committed contents, and a batch frame torn at
** any byte recovers to none of its commands.
*/
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Sync none, 64 KiB segments; reopened with the same options. */
static int setup(void **state) {
    mmfs_options o = mmfs_test_options(64u << 10);
    return mmfs_test_fx_setup(state, "batch", &o, &o);
}

/* ------------------------------------------------------------------ */

static void test_commit_all_kinds(void **state) {
    mmfs_test_fx *f = *state;
    uint64_t pre;
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str("before the batch"), NULL, 0, NULL, &pre));
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("gone"), mmfs_str("soon")));
    MMFS_OK_OR_FAIL(mmfs_index(f->db, mmfs_str("olddoc"), mmfs_str("obsolete")));
    mmfs_store_stats s0 = mmfs_test_stats(f->db);

    mmfs_batch *b = NULL;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    assert_non_null(b);
    mmfs_slice tag = mmfs_str("batch");
    MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str("first in batch"), &tag, 1, NULL));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("k1"), mmfs_str("v1")));
    MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str("second in batch"), NULL, 0, NULL));
    MMFS_OK_OR_FAIL(mmfs_batch_delete_kv(b, mmfs_str("gone")));
    mmfs_session s;
    memset(&s, 0, sizeof s);
    s.id = mmfs_str("s1");
    s.has_created_at = 1;
    s.created_at = 10;
    MMFS_OK_OR_FAIL(mmfs_batch_put_session(b, &s));
    MMFS_OK_OR_FAIL(mmfs_batch_append_stream(b, mmfs_str("st"), mmfs_str("xy")));
    MMFS_OK_OR_FAIL(mmfs_batch_append_stream(b, mmfs_str("st"), mmfs_str("z")));
    MMFS_OK_OR_FAIL(mmfs_batch_index(b, mmfs_str("doc"), mmfs_str("batched document")));
    MMFS_OK_OR_FAIL(mmfs_batch_unindex(b, mmfs_str("olddoc")));
    MMFS_OK_OR_FAIL(mmfs_batch_update_state(b, mmfs_str("st1")));
    MMFS_OK_OR_FAIL(mmfs_batch_update_state(b, mmfs_str("st2")));
    MMFS_OK_OR_FAIL(mmfs_batch_delete_memory(b, pre));
    MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str("third in batch"), NULL, 0, NULL));

    uint64_t *ids = NULL;
    size_t nids = 99;
    MMFS_OK_OR_FAIL(mmfs_batch_commit(b, &ids, &nids));
    assert_int_equal(nids, 3);
    assert_non_null(ids);
    assert_int_equal(ids[0], pre + 1);
    assert_int_equal(ids[1], pre + 2);
    assert_int_equal(ids[2], pre + 3);

    for (int round = 0; round < 2; round++) {
        mmfs_memory *m = NULL;
        MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, ids[0], &m));
        MMFS_ASSERT_SLICE_STR(m->text, "first in batch");
        assert_int_equal(m->ntags, 1);
        mmfs_free(m);
        MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, ids[2], &m));
        MMFS_ASSERT_SLICE_STR(m->text, "third in batch");
        mmfs_free(m);
        MMFS_ASSERT_STATUS(mmfs_get_memory(f->db, pre, &m), MMFS_NOTFOUND);
        mmfs_slice v;
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("k1"), &v));
        MMFS_ASSERT_SLICE_STR(v, "v1");
        MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("gone"), &v), MMFS_NOTFOUND);
        mmfs_session g;
        MMFS_OK_OR_FAIL(mmfs_get_session(f->db, mmfs_str("s1"), &g));
        assert_int_equal(g.created_at, 10);
        uint64_t sz;
        MMFS_OK_OR_FAIL(mmfs_stream_size(f->db, mmfs_str("st"), &sz));
        assert_int_equal(sz, 3);
        uint64_t ver;
        MMFS_OK_OR_FAIL(mmfs_get_state(f->db, &v, &ver));
        MMFS_ASSERT_SLICE_STR(v, "st2");
        assert_int_equal(ver, 2);
        mmfs_doc_hits *h = NULL;
        MMFS_OK_OR_FAIL(mmfs_search(f->db, mmfs_str("batched"), 0, &h));
        assert_int_equal(h->count, 1);
        mmfs_free(h);
        MMFS_OK_OR_FAIL(mmfs_search(f->db, mmfs_str("obsolete"), 0, &h));
        assert_int_equal(h->count, 0);
        mmfs_free(h);
        mmfs_store_stats s1 = mmfs_test_stats(f->db);
        assert_int_equal(s1.memories, s0.memories + 3 - 1);
        assert_int_equal(s1.kv, 1);
        assert_int_equal(s1.documents, 1);
        /* One LSN per record: 13 commands. */
        assert_int_equal(s1.lsn, s0.lsn + 13);
        mmfs_test_reopen(f);
    }
    mmfs_free(ids);
}

static void test_abort_and_empty(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("k"), mmfs_str("v")));
    mmfs_store_stats s0 = mmfs_test_stats(f->db);

    mmfs_batch *b = NULL;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("k"), mmfs_str("aborted")));
    MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str("aborted"), NULL, 0, NULL));
    mmfs_batch_abort(b);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("k"), &v));
    MMFS_ASSERT_SLICE_STR(v, "v");
    mmfs_store_stats s1 = mmfs_test_stats(f->db);
    assert_int_equal(s1.lsn, s0.lsn);
    assert_int_equal(s1.log_bytes, s0.log_bytes);
    assert_int_equal(s1.memories, 0);

    /* An empty batch writes nothing and assigns nothing. */
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    uint64_t *ids = (uint64_t *)&s0;
    size_t nids = 99;
    MMFS_OK_OR_FAIL(mmfs_batch_commit(b, &ids, &nids));
    assert_null(ids);
    assert_int_equal(nids, 0);
    s1 = mmfs_test_stats(f->db);
    assert_int_equal(s1.lsn, s0.lsn);
    assert_int_equal(s1.log_bytes, s0.log_bytes);

    /* Deletes of missing entries are dropped: a batch of only those is
    ** empty. */
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    MMFS_OK_OR_FAIL(mmfs_batch_delete_kv(b, mmfs_str("no-such-key")));
    MMFS_OK_OR_FAIL(mmfs_batch_delete_memory(b, 12345));
    MMFS_OK_OR_FAIL(mmfs_batch_delete_session(b, mmfs_str("no-such-session")));
    MMFS_OK_OR_FAIL(mmfs_batch_unindex(b, mmfs_str("no-such-doc")));
    MMFS_OK_OR_FAIL(mmfs_batch_commit(b, NULL, NULL));
    s1 = mmfs_test_stats(f->db);
    assert_int_equal(s1.lsn, s0.lsn);
    assert_int_equal(s1.log_bytes, s0.log_bytes);

    /* Mixed with a real command: only that one is written. */
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    MMFS_OK_OR_FAIL(mmfs_batch_delete_kv(b, mmfs_str("no-such-key")));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("k2"), mmfs_str("v2")));
    MMFS_OK_OR_FAIL(mmfs_batch_commit(b, &ids, &nids));
    assert_int_equal(nids, 0);
    assert_null(ids);
    s1 = mmfs_test_stats(f->db);
    assert_int_equal(s1.lsn, s0.lsn + 1);

    mmfs_batch_abort(NULL);
}

/* The batch is not visible before commit; reads in between see the
** committed store. */
static void test_invisible_until_commit(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("k"), mmfs_str("committed")));
    mmfs_batch *b = NULL;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("k"), mmfs_str("pending")));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("new"), mmfs_str("pending")));
    MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str("pending memory"), NULL, 0, NULL));
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("k"), &v));
    MMFS_ASSERT_SLICE_STR(v, "committed");
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("new"), &v), MMFS_NOTFOUND);
    mmfs_memory *m = NULL;
    MMFS_ASSERT_STATUS(mmfs_get_memory(f->db, 1, &m), MMFS_NOTFOUND);
    /* Single writes go on meanwhile. */
    uint64_t id;
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str("single"), NULL, 0, NULL, &id));
    assert_int_equal(id, 1);
    uint64_t *ids = NULL;
    size_t nids = 0;
    MMFS_OK_OR_FAIL(mmfs_batch_commit(b, &ids, &nids));
    assert_int_equal(nids, 1);
    /* Ids are assigned at commit. */
    assert_int_equal(ids[0], 2);
    mmfs_free(ids);
    MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("k"), &v));
    MMFS_ASSERT_SLICE_STR(v, "pending");
    MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("new"), &v));
    MMFS_ASSERT_SLICE_STR(v, "pending");
}

/* The batch copies its arguments. */
static void test_batch_copies(void **state) {
    mmfs_test_fx *f = *state;
    char k[8] = "key", val[8] = "value";
    mmfs_batch *b = NULL;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str(k), mmfs_str(val)));
    strcpy(k, "XXX");
    strcpy(val, "YYYYY");
    MMFS_OK_OR_FAIL(mmfs_batch_commit(b, NULL, NULL));
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("key"), &v));
    MMFS_ASSERT_SLICE_STR(v, "value");
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("XXX"), &v), MMFS_NOTFOUND);
}

/* A bad command makes the whole batch fail: nothing of it is written and
** no id is consumed. */
static void test_invalid_command_commits_nothing(void **state) {
    mmfs_test_fx *f = *state;
    mmfs_store_stats s0 = mmfs_test_stats(f->db);
    mmfs_batch *b = NULL;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("k"), mmfs_str("v")));
    MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str("m"), NULL, 0, NULL));
    mmfs_session s;
    memset(&s, 0, sizeof s);
    s.id = mmfs_str(""); /* invalid: empty id */
    int rc = mmfs_batch_put_session(b, &s);
    if (rc == MMFS_OK) {
        /* Not checked until commit: then the commit fails as a whole. */
        MMFS_ASSERT_STATUS(mmfs_batch_commit(b, NULL, NULL), MMFS_INVALID);
    } else {
        MMFS_ASSERT_STATUS(rc, MMFS_INVALID);
        mmfs_batch_abort(b);
    }
    mmfs_store_stats s1 = mmfs_test_stats(f->db);
    assert_int_equal(s1.lsn, s0.lsn);
    mmfs_slice v;
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("k"), &v), MMFS_NOTFOUND);
    uint64_t id;
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str("after"), NULL, 0, NULL, &id));
    assert_int_equal(id, 1);

    /* Malformed session fields likewise. */
    static const unsigned char badf[] = {'T', 1, 0, 0, 0, 'x'};
    s.id = mmfs_str("s");
    s.fields.ptr = badf;
    s.fields.len = sizeof badf;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("k"), mmfs_str("v")));
    rc = mmfs_batch_put_session(b, &s);
    if (rc == MMFS_OK) {
        MMFS_ASSERT_STATUS(mmfs_batch_commit(b, NULL, NULL), MMFS_INVALID);
    } else {
        MMFS_ASSERT_STATUS(rc, MMFS_INVALID);
        mmfs_batch_abort(b);
    }
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("k"), &v), MMFS_NOTFOUND);
    mmfs_test_reopen(f);
    MMFS_ASSERT_STATUS(mmfs_get_kv(f->db, mmfs_str("k"), &v), MMFS_NOTFOUND);
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str("after2"), NULL, 0, NULL, &id));
    assert_int_equal(id, 2);
}

/* A large batch: many commands, one commit. */
static void test_large_batch(void **state) {
    mmfs_test_fx *f = *state;
    enum { N = 2000 };
    mmfs_batch *b = NULL;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    char k[32], t[64];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof k, "bk%05d", i);
        MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str(k), mmfs_str(k)));
        if (i % 4 == 0) {
            snprintf(t, sizeof t, "batch memory %d", i);
            MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str(t), NULL, 0, NULL));
        }
    }
    uint64_t *ids = NULL;
    size_t nids = 0;
    MMFS_OK_OR_FAIL(mmfs_batch_commit(b, &ids, &nids));
    assert_int_equal(nids, N / 4);
    for (size_t i = 0; i < nids; i++) assert_int_equal(ids[i], i + 1);
    mmfs_free(ids);
    mmfs_test_reopen(f);
    mmfs_store_stats st = mmfs_test_stats(f->db);
    assert_int_equal(st.kv, N);
    assert_int_equal(st.memories, N / 4);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("bk01999"), &v));
    MMFS_ASSERT_SLICE_STR(v, "bk01999");
}

/* ---------------------------------------------------------- torn batch */

static uint32_t ld32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A batch frame cut at any byte recovers to none of its commands: the
** commands before it all survive, none of the batch does. */
static void test_torn_batch_all_or_nothing(void **state) {
    mmfs_test_fx *f = *state;
    MMFS_OK_OR_FAIL(mmfs_set_kv(f->db, mmfs_str("before"), mmfs_str("1")));
    mmfs_batch *b = NULL;
    MMFS_OK_OR_FAIL(mmfs_batch_begin(f->db, &b));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("b1"), mmfs_str("x")));
    MMFS_OK_OR_FAIL(mmfs_batch_append_memory(b, mmfs_str("batch memory"), NULL, 0, NULL));
    MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str("b2"), mmfs_str("y")));
    MMFS_OK_OR_FAIL(mmfs_batch_update_state(b, mmfs_str("batch state")));
    MMFS_OK_OR_FAIL(mmfs_batch_commit(b, NULL, NULL));
    MMFS_OK_OR_FAIL(mmfs_close(f->db));
    f->db = NULL;

    size_t plen = strlen(f->dir) + 32;
    char *seg = malloc(plen);
    assert_non_null(seg);
    snprintf(seg, plen, "%s/log/00000001.seg", f->dir);
    FILE *fp = fopen(seg, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    size_t n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *img = malloc(n), *work = malloc(n);
    assert_non_null(img);
    assert_non_null(work);
    assert_int_equal(fread(img, 1, n, fp), n);
    fclose(fp);
    /* Clear the segment's durable stamp: a frame can only be torn when no
    ** sync covered it yet. */
    memset(img + 32, 0, 12);

    /* The last frame is the batch: one frame with 4 records. */
    size_t off = 64, last = 0;
    while (off + 32 <= n && ld32(img + off) != 0) {
        last = off;
        off += ld32(img + off + 4);
    }
    assert_true(last > 0);
    assert_int_equal(ld32(img + last + 16), 4);
    size_t end = off;

    for (size_t cut = last; cut < end; cut++) {
        /* Zeroing bytes that are zero already (padding, or a checksum that
        ** happens to end in zero bytes: it depends on created_at) damages
        ** nothing: not a cut. */
        size_t z = cut;
        while (z < end && img[z] == 0) z++;
        if (z == end) continue;
        memcpy(work, img, n);
        memset(work + cut, 0, end - cut);
        int fd = open(seg, O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, work, n, 0), (ssize_t)n);
        close(fd);
        int orc = mmfs_open(f->dir, f->reopen_with, &f->db);
        if (orc != MMFS_OK || !f->db)
            fail_msg("batch frame cut at %zu: open failed: %s: %s", cut, mmfs_err_name(orc), mmfs_errmsg(NULL));
        mmfs_slice v;
        MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("before"), &v));
        int r1 = mmfs_get_kv(f->db, mmfs_str("b1"), &v);
        int r2 = mmfs_get_kv(f->db, mmfs_str("b2"), &v);
        mmfs_memory *m = NULL;
        int r3 = mmfs_get_memory(f->db, 1, &m);
        uint64_t ver = 9;
        MMFS_OK_OR_FAIL(mmfs_get_state(f->db, &v, &ver));
        if (r1 != MMFS_NOTFOUND || r2 != MMFS_NOTFOUND || r3 != MMFS_NOTFOUND || ver != 0)
            fail_msg("batch frame cut at %zu: partly applied (b1 %s, b2 %s, memory %s, state v%llu)", cut,
                     mmfs_err_name(r1), mmfs_err_name(r2), mmfs_err_name(r3), (unsigned long long)ver);
        MMFS_OK_OR_FAIL(mmfs_close(f->db));
        f->db = NULL;
    }
    /* Whole again: all of it. */
    int fd = open(seg, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, img, n, 0), (ssize_t)n);
    close(fd);
    f->db = mmfs_test_fx_open(f);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(f->db, mmfs_str("b2"), &v));
    MMFS_ASSERT_SLICE_STR(v, "y");
    free(img);
    free(work);
    free(seg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_all_kinds, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_abort_and_empty, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_invisible_until_commit, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_batch_copies, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_command_commits_nothing, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_large_batch, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_torn_batch_all_or_nothing, setup, mmfs_test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
