/*
** test_session.c: sessions (put, get, delete, list, list by intent) and
** the field encoding check, as memmapfs.h documents them.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sync none, 1 MiB segments; reopen with the library defaults. */
static int setup(void **state) {
    mmfs_options o = mmfs_test_options(1u << 20);
    return mmfs_test_fx_setup(state, "session", &o, NULL);
}

/* A small encoder for the field encoding of memmapfs.h. */
typedef struct enc {
    unsigned char b[2048];
    size_t n;
} enc;

static void put_u32(enc *e, uint32_t v) {
    for (int i = 0; i < 4; i++) e->b[e->n++] = (unsigned char)(v >> (8 * i));
}
static void put_u64(enc *e, uint64_t v) {
    for (int i = 0; i < 8; i++) e->b[e->n++] = (unsigned char)(v >> (8 * i));
}
static void put_str(enc *e, const char *s) {
    e->b[e->n++] = 's';
    put_u32(e, (uint32_t)strlen(s));
    memcpy(e->b + e->n, s, strlen(s));
    e->n += strlen(s);
}
static void put_int(enc *e, int64_t v) {
    e->b[e->n++] = 'i';
    put_u64(e, (uint64_t)v);
}
static void put_dbl(enc *e, double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    e->b[e->n++] = 'd';
    put_u64(e, v);
}
static void put_tab(enc *e, uint32_t n) {
    e->b[e->n++] = 'T';
    put_u32(e, n);
}
static mmfs_slice enc_slice(const enc *e) {
    mmfs_slice s = {e->b, e->n};
    return s;
}

/* {status = "open", n = 42, ratio = 0.5, ok = true, nested = {[1] = "x", off = false}} */
static void sample_fields(enc *e) {
    e->n = 0;
    put_tab(e, 5);
    put_str(e, "status");
    put_str(e, "open");
    put_str(e, "n");
    put_int(e, 42);
    put_str(e, "ratio");
    put_dbl(e, 0.5);
    put_str(e, "ok");
    e->b[e->n++] = 't';
    put_str(e, "nested");
    put_tab(e, 2);
    put_int(e, 1);
    put_str(e, "x");
    put_str(e, "off");
    e->b[e->n++] = 'f';
}

static mmfs_session sess(const char *id, const char *intent, int64_t created_at, const char *payload) {
    mmfs_session s;
    memset(&s, 0, sizeof s);
    s.id = mmfs_str(id);
    if (intent) {
        s.has_intent = 1;
        s.intent_id = mmfs_str(intent);
    }
    if (created_at) {
        s.has_created_at = 1;
        s.created_at = created_at;
    }
    if (payload) {
        s.has_payload = 1;
        s.payload = mmfs_str(payload);
    }
    return s;
}

static void put(mmfs_db *db, const char *id, const char *intent, int64_t t, const char *payload) {
    mmfs_session s = sess(id, intent, t, payload);
    MMFS_OK_OR_FAIL(mmfs_put_session(db, &s));
}

static void assert_list(const mmfs_sessions *ss, const char *const *ids, size_t n) {
    char got[512] = "";
    size_t gl = 0;
    for (size_t i = 0; i < ss->count && gl < 400; i++)
        gl += (size_t)snprintf(got + gl, sizeof got - gl, "%.*s ", (int)ss->items[i].id.len,
                               (const char *)ss->items[i].id.ptr);
    int ok = ss->count == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = ss->items[i].id.len == strlen(ids[i]) && memcmp(ss->items[i].id.ptr, ids[i], strlen(ids[i])) == 0;
    if (!ok) {
        char exp[512] = "";
        size_t el = 0;
        for (size_t i = 0; i < n && el < 400; i++) el += (size_t)snprintf(exp + el, sizeof exp - el, "%s ", ids[i]);
        fail_msg("sessions [%s], want [%s]", got, exp);
    }
}

/* ------------------------------------------------------------------ */

static void test_put_get_all_fields(void **state) {
    mmfs_test_fx *f = *state;
    enc e;
    sample_fields(&e);
    mmfs_session s = sess("s1", "i1", 1700000000, "hello\0world");
    s.payload.len = 11; /* binary payload with a zero byte */
    s.fields = enc_slice(&e);
    MMFS_OK_OR_FAIL(mmfs_put_session(f->db, &s));

    for (int round = 0; round < 2; round++) {
        mmfs_session g;
        memset(&g, 0xab, sizeof g);
        MMFS_OK_OR_FAIL(mmfs_get_session(f->db, mmfs_str("s1"), &g));
        MMFS_ASSERT_SLICE_STR(g.id, "s1");
        assert_int_equal(g.has_intent, 1);
        MMFS_ASSERT_SLICE_STR(g.intent_id, "i1");
        assert_int_equal(g.created_at, 1700000000);
        assert_int_equal(g.has_payload, 1);
        mmfs_test_assert_slice(g.payload, "hello\0world", 11);
        /* Stored as given. */
        mmfs_test_assert_slice(g.fields, e.b, e.n);
        mmfs_test_reopen(f);
    }
}

static void test_optional_parts(void **state) {
    mmfs_test_fx *f = *state;
    time_t t0 = time(NULL);
    mmfs_session s = sess("bare", NULL, 0, NULL);
    MMFS_OK_OR_FAIL(mmfs_put_session(f->db, &s));
    time_t t1 = time(NULL);
    mmfs_session g;
    MMFS_OK_OR_FAIL(mmfs_get_session(f->db, mmfs_str("bare"), &g));
    MMFS_ASSERT_SLICE_STR(g.id, "bare");
    assert_int_equal(g.has_intent, 0);
    assert_int_equal(g.has_payload, 0);
    assert_int_equal(g.fields.len, 0);
    assert_in_range(g.created_at, t0, t1); /* default: now */

    /* An empty payload is a payload. */
    s = sess("emptypayload", "i", 5, "");
    MMFS_OK_OR_FAIL(mmfs_put_session(f->db, &s));
    mmfs_test_reopen(f);
    MMFS_OK_OR_FAIL(mmfs_get_session(f->db, mmfs_str("emptypayload"), &g));
    assert_int_equal(g.has_payload, 1);
    assert_int_equal(g.payload.len, 0);
    assert_int_equal(g.created_at, 5);
    MMFS_OK_OR_FAIL(mmfs_get_session(f->db, mmfs_str("bare"), &g));
    assert_int_equal(g.has_intent, 0);
    assert_int_equal(g.has_payload, 0);

    MMFS_ASSERT_STATUS(mmfs_get_session(f->db, mmfs_str("absent"), &g), MMFS_NOTFOUND);
}

static void test_replace(void **state) {
    mmfs_test_fx *f = *state;
    put(f->db, "s", "i1", 100, "first");
    put(f->db, "s", "i2", 200, "second");
    mmfs_session g;
    MMFS_OK_OR_FAIL(mmfs_get_session(f->db, mmfs_str("s"), &g));
    MMFS_ASSERT_SLICE_STR(g.intent_id, "i2");
    MMFS_ASSERT_SLICE_STR(g.payload, "second");
    assert_int_equal(g.created_at, 200);
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(f->db, &st));
    assert_int_equal(st.sessions, 1);
    /* The replaced one left its old intent's list. */
    mmfs_sessions *ss = NULL;
    MMFS_OK_OR_FAIL(mmfs_list_by_intent(f->db, mmfs_str("i1"), 0, &ss));
    assert_int_equal(ss->count, 0);
    mmfs_free(ss);
    MMFS_OK_OR_FAIL(mmfs_list_by_intent(f->db, mmfs_str("i2"), 0, &ss));
    static const char *const w[] = {"s"};
    assert_list(ss, w, 1);
    mmfs_free(ss);
    mmfs_test_reopen(f);
    MMFS_OK_OR_FAIL(mmfs_get_session(f->db, mmfs_str("s"), &g));
    MMFS_ASSERT_SLICE_STR(g.payload, "second");
}

static void test_delete(void **state) {
    mmfs_test_fx *f = *state;
    put(f->db, "a", "i", 1, NULL);
    put(f->db, "b", "i", 2, NULL);
    int deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_delete_session(f->db, mmfs_str("a"), &deleted));
    assert_int_equal(deleted, 1);
    mmfs_session g;
    MMFS_ASSERT_STATUS(mmfs_get_session(f->db, mmfs_str("a"), &g), MMFS_NOTFOUND);
    uint64_t lsn = mmfs_test_lsn(f->db);
    deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_delete_session(f->db, mmfs_str("a"), &deleted));
    assert_int_equal(deleted, 0);
    MMFS_OK_OR_FAIL(mmfs_delete_session(f->db, mmfs_str("zz"), NULL));
    assert_int_equal(mmfs_test_lsn(f->db), lsn);
    mmfs_sessions *ss = NULL;
    MMFS_OK_OR_FAIL(mmfs_list_by_intent(f->db, mmfs_str("i"), 0, &ss));
    static const char *const w[] = {"b"};
    assert_list(ss, w, 1);
    mmfs_free(ss);
    mmfs_test_reopen(f);
    MMFS_ASSERT_STATUS(mmfs_get_session(f->db, mmfs_str("a"), &g), MMFS_NOTFOUND);
    MMFS_OK_OR_FAIL(mmfs_list_sessions(f->db, 0, &ss));
    assert_list(ss, w, 1);
    mmfs_free(ss);
}

static void test_lists(void **state) {
    mmfs_test_fx *f = *state;
    put(f->db, "s1", "A", 100, NULL);
    put(f->db, "s2", "B", 300, NULL);
    put(f->db, "s3", "A", 200, NULL);
    put(f->db, "s4", "A", 300, NULL); /* ties with s2: later put first */
    put(f->db, "s5", NULL, 50, NULL);

    for (int round = 0; round < 2; round++) {
        mmfs_sessions *ss = NULL;
        MMFS_OK_OR_FAIL(mmfs_list_sessions(f->db, 0, &ss));
        static const char *const all[] = {"s4", "s2", "s3", "s1", "s5"};
        assert_list(ss, all, 5);
        assert_int_equal(ss->items[0].created_at, 300);
        MMFS_ASSERT_SLICE_STR(ss->items[0].intent_id, "A");
        mmfs_free(ss);
        MMFS_OK_OR_FAIL(mmfs_list_sessions(f->db, 2, &ss));
        assert_list(ss, all, 2);
        mmfs_free(ss);
        MMFS_OK_OR_FAIL(mmfs_list_by_intent(f->db, mmfs_str("A"), 0, &ss));
        static const char *const a[] = {"s4", "s3", "s1"};
        assert_list(ss, a, 3);
        mmfs_free(ss);
        MMFS_OK_OR_FAIL(mmfs_list_by_intent(f->db, mmfs_str("A"), 1, &ss));
        assert_list(ss, a, 1);
        mmfs_free(ss);
        MMFS_OK_OR_FAIL(mmfs_list_by_intent(f->db, mmfs_str("nope"), 0, &ss));
        assert_int_equal(ss->count, 0);
        mmfs_free(ss);
        mmfs_test_reopen(f);
    }
}

static void test_invalid(void **state) {
    mmfs_test_fx *f = *state;
    uint64_t lsn = mmfs_test_lsn(f->db);
    mmfs_session s = sess("", "i", 1, "p");
    MMFS_ASSERT_STATUS(mmfs_put_session(f->db, &s), MMFS_INVALID);

    enc e;
    /* Malformed field encodings. */
    const unsigned char *bads[8];
    size_t badlens[8];
    size_t nb = 0;
    static const unsigned char b_int[] = {'i', 1, 0, 0, 0, 0, 0, 0, 0}; /* not a table */
    static const unsigned char b_short[] = {'T', 1, 0, 0, 0, 's', 1, 0, 0, 0, 'k'}; /* value missing */
    static const unsigned char b_type[] = {'T', 1, 0, 0, 0, 's', 1, 0, 0, 0, 'k', 'x'};
    static const unsigned char b_len[] = {'T', 1, 0, 0, 0, 's', 0xff, 0xff, 0, 0, 'k', 't'};
    static const unsigned char b_trail[] = {'T', 0, 0, 0, 0, 't'};
    static const unsigned char b_cut[] = {'T', 0, 0};
    static const unsigned char b_dbl[] = {'T', 1, 0, 0, 0, 'd', 0, 0, 0, 0, 0, 0, 0, 0, 'i', 1, 2, 3};
    bads[nb] = b_int, badlens[nb++] = sizeof b_int;
    bads[nb] = b_short, badlens[nb++] = sizeof b_short;
    bads[nb] = b_type, badlens[nb++] = sizeof b_type;
    bads[nb] = b_len, badlens[nb++] = sizeof b_len;
    bads[nb] = b_trail, badlens[nb++] = sizeof b_trail;
    bads[nb] = b_cut, badlens[nb++] = sizeof b_cut;
    bads[nb] = b_dbl, badlens[nb++] = sizeof b_dbl;
    for (size_t i = 0; i < nb; i++) {
        s = sess("x", "i", 1, NULL);
        s.fields.ptr = bads[i];
        s.fields.len = badlens[i];
        int rc = mmfs_put_session(f->db, &s);
        if (rc != MMFS_INVALID) fail_msg("malformed fields #%zu -> %s, want INVALID", i, mmfs_err_name(rc));
    }
    /* Nothing was written. */
    assert_int_equal(mmfs_test_lsn(f->db), lsn);
    mmfs_session g;
    MMFS_ASSERT_STATUS(mmfs_get_session(f->db, mmfs_str("x"), &g), MMFS_NOTFOUND);

    /* The well-formed empty table is fine. */
    e.n = 0;
    put_tab(&e, 0);
    s = sess("x", "i", 1, NULL);
    s.fields = enc_slice(&e);
    MMFS_OK_OR_FAIL(mmfs_put_session(f->db, &s));
    MMFS_OK_OR_FAIL(mmfs_get_session(f->db, mmfs_str("x"), &g));
    mmfs_test_assert_slice(g.fields, e.b, e.n);
}

static void test_binary_ids(void **state) {
    mmfs_test_fx *f = *state;
    static const char id1[] = {'s', 0, '1'};
    static const char id2[] = {'s', 0, '2'};
    mmfs_session s = sess("x", "i", 10, "one");
    s.id.ptr = id1;
    s.id.len = 3;
    MMFS_OK_OR_FAIL(mmfs_put_session(f->db, &s));
    s.id.ptr = id2;
    s.payload = mmfs_str("two");
    MMFS_OK_OR_FAIL(mmfs_put_session(f->db, &s));
    mmfs_slice k = {id1, 3};
    mmfs_session g;
    MMFS_OK_OR_FAIL(mmfs_get_session(f->db, k, &g));
    MMFS_ASSERT_SLICE_STR(g.payload, "one");
    k.ptr = id2;
    MMFS_OK_OR_FAIL(mmfs_get_session(f->db, k, &g));
    MMFS_ASSERT_SLICE_STR(g.payload, "two");
    k.len = 1; /* "s" */
    MMFS_ASSERT_STATUS(mmfs_get_session(f->db, k, &g), MMFS_NOTFOUND);
}

/* mmfs_fields_next walks the encoding value by value (a table's pairs
** after its header), mmfs_fields_skip steps over a whole value, and both
** refuse what is cut short, of no known type or nested too deep. */
static void test_fields_walker(void **state) {
    (void)state;
    enc e;
    sample_fields(&e);
    mmfs_slice buf = enc_slice(&e);
    mmfs_field v;
    size_t pos = 0;
    MMFS_OK_OR_FAIL(mmfs_fields_next(buf, &pos, &v));
    assert_int_equal(v.type, 'T');
    assert_int_equal(v.n, 5);
    assert_int_equal(pos, 5);
    MMFS_OK_OR_FAIL(mmfs_fields_next(buf, &pos, &v)); /* key "status" */
    assert_int_equal(v.type, 's');
    MMFS_ASSERT_SLICE_STR(v.s, "status");
    MMFS_OK_OR_FAIL(mmfs_fields_next(buf, &pos, &v)); /* value "open" */
    MMFS_ASSERT_SLICE_STR(v.s, "open");
    MMFS_OK_OR_FAIL(mmfs_fields_next(buf, &pos, &v)); /* key "n" */
    MMFS_OK_OR_FAIL(mmfs_fields_next(buf, &pos, &v));
    assert_int_equal(v.type, 'i');
    assert_int_equal(v.i, 42);
    pos = 0;
    MMFS_OK_OR_FAIL(mmfs_fields_skip(buf, &pos));
    assert_int_equal(pos, buf.len);
    MMFS_ASSERT_STATUS(mmfs_fields_next(buf, &pos, &v), MMFS_CORRUPT); /* at the end */

    for (size_t cut = 1; cut < buf.len; cut++) { /* every prefix is cut short */
        mmfs_slice c = {buf.ptr, cut};
        pos = 0;
        MMFS_ASSERT_STATUS(mmfs_fields_skip(c, &pos), MMFS_CORRUPT);
    }
    e.n = 0;
    e.b[e.n++] = 'x';
    pos = 0;
    MMFS_ASSERT_STATUS(mmfs_fields_next(enc_slice(&e), &pos, &v), MMFS_CORRUPT);

    e.n = 0; /* {{...{}...}}: MMFS_FIELDS_MAXDEPTH + 1 tables inside the outer one */
    for (int d = 0; d <= MMFS_FIELDS_MAXDEPTH + 1; d++) {
        put_tab(&e, d <= MMFS_FIELDS_MAXDEPTH ? 1 : 0);
        if (d <= MMFS_FIELDS_MAXDEPTH) put_int(&e, 1);
    }
    pos = 0;
    MMFS_ASSERT_STATUS(mmfs_fields_skip(enc_slice(&e), &pos), MMFS_CORRUPT);
    e.n = 0; /* one level less passes */
    for (int d = 0; d <= MMFS_FIELDS_MAXDEPTH; d++) {
        put_tab(&e, d < MMFS_FIELDS_MAXDEPTH ? 1 : 0);
        if (d < MMFS_FIELDS_MAXDEPTH) put_int(&e, 1);
    }
    pos = 0;
    MMFS_OK_OR_FAIL(mmfs_fields_skip(enc_slice(&e), &pos));
    assert_int_equal(pos, e.n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_all_fields, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_optional_parts, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_replace, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_lists, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_binary_ids, setup, mmfs_test_fx_teardown),
        cmocka_unit_test(test_fields_walker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
