/*
** test_memory.c: memories (append, get, delete, list, search) as
** memmapfs.h documents them: dense increasing ids never reused, tags
** exact and ordered, created_at and route, filters, newest-first lists.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checksum.h"
#include "db.h"

/* Sync none, 4 MiB segments; reopen: sync none, default segment size. */
static int setup(void **state) {
    mmfs_options o = mmfs_test_options(4u << 20);
    mmfs_options r = mmfs_test_options(0);
    return mmfs_test_fx_setup(state, "memory", &o, &r);
}

/* Appends TEXT with the NULL-terminated tag list and options. */
static uint64_t add(mmfs_db *db, const char *text, const char *const *tags, int64_t created_at,
                    const char *route) {
    mmfs_slice ts[16];
    size_t n = 0;
    for (; tags && tags[n]; n++) ts[n] = mmfs_str(tags[n]);
    mmfs_memory_opts o;
    memset(&o, 0, sizeof o);
    if (created_at) {
        o.has_created_at = 1;
        o.created_at = created_at;
    }
    if (route) o.route = mmfs_str(route);
    uint64_t id = 0;
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str(text), n ? ts : NULL, n, &o, &id));
    return id;
}

static void assert_ids(const mmfs_memories *ms, const uint64_t *want, size_t n) {
    char got[512] = "", exp[512] = "";
    size_t gl = 0, el = 0;
    for (size_t i = 0; i < ms->count && gl < 400; i++)
        gl += (size_t)snprintf(got + gl, sizeof got - gl, "%llu ", (unsigned long long)ms->items[i].id);
    for (size_t i = 0; i < n && el < 400; i++)
        el += (size_t)snprintf(exp + el, sizeof exp - el, "%llu ", (unsigned long long)want[i]);
    if (ms->count != n) fail_msg("ids [%s], want [%s]", got, exp);
    for (size_t i = 0; i < n; i++)
        if (ms->items[i].id != want[i]) fail_msg("ids [%s], want [%s]", got, exp);
}

static mmfs_memories *list(mmfs_db *db, const mmfs_filter *flt) {
    mmfs_memories *ms = NULL;
    MMFS_OK_OR_FAIL(mmfs_list_memories(db, flt, &ms));
    assert_non_null(ms);
    return ms;
}

static mmfs_memories *search(mmfs_db *db, const char *q, const mmfs_filter *flt) {
    mmfs_memories *ms = NULL;
    int rc = mmfs_search_memory(db, mmfs_str(q), flt, &ms);
    if (rc != MMFS_OK) fail_msg("search_memory(\"%s\") -> %s: %s", q, mmfs_err_name(rc), mmfs_errmsg(db));
    assert_non_null(ms);
    return ms;
}

/* ------------------------------------------------------------------ */

static void test_ids_dense_increasing(void **state) {
    mmfs_test_fx *f = *state;
    for (uint64_t i = 1; i <= 10; i++) {
        uint64_t id = add(f->db, "some text", NULL, 0, NULL);
        assert_int_equal(id, i);
    }
    /* *id may be NULL. */
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str("no id wanted"), NULL, 0, NULL, NULL));
    assert_int_equal(add(f->db, "twelve", NULL, 0, NULL), 12);
    mmfs_test_reopen(f);
    assert_int_equal(add(f->db, "thirteen", NULL, 0, NULL), 13);
}

static void test_get_fields(void **state) {
    mmfs_test_fx *f = *state;
    static const char *const tags[] = {"speaker:Ann", "work", "b", "a", NULL};
    time_t before = time(NULL);
    uint64_t id1 = add(f->db, "Ann said the meeting moved to Friday", tags, 0, NULL);
    time_t after = time(NULL);
    uint64_t id2 = add(f->db, "imported", NULL, 1600000000, "episodic");

    for (int round = 0; round < 2; round++) {
        mmfs_memory *m = NULL;
        MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, id1, &m));
        assert_non_null(m);
        assert_int_equal(m->id, id1);
        MMFS_ASSERT_SLICE_STR(m->text, "Ann said the meeting moved to Friday");
        assert_int_equal(m->ntags, 4);
        /* Tags come back as given, in order, case kept. */
        for (size_t i = 0; i < 4; i++) MMFS_ASSERT_SLICE_STR(m->tags[i], tags[i]);
        MMFS_ASSERT_SLICE_STR(m->route, "default");
        assert_in_range(m->created_at, before, after);
        assert_true(m->score == 0.0);
        mmfs_free(m);

        m = NULL;
        MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, id2, &m));
        assert_int_equal(m->id, id2);
        MMFS_ASSERT_SLICE_STR(m->text, "imported");
        assert_int_equal(m->ntags, 0);
        MMFS_ASSERT_SLICE_STR(m->route, "episodic");
        assert_int_equal(m->created_at, 1600000000);
        mmfs_free(m);
        mmfs_test_reopen(f);
    }

    mmfs_memory *m = NULL;
    MMFS_ASSERT_STATUS(mmfs_get_memory(f->db, 0, &m), MMFS_NOTFOUND);
    MMFS_ASSERT_STATUS(mmfs_get_memory(f->db, 3, &m), MMFS_NOTFOUND);
    MMFS_ASSERT_STATUS(mmfs_get_memory(f->db, UINT64_MAX, &m), MMFS_NOTFOUND);
}

/* Negative and zero-ish times are still times (history before 1970 is
** unlikely, but created_at is an int64). */
static void test_created_at_extremes(void **state) {
    mmfs_test_fx *f = *state;
    mmfs_memory_opts o;
    memset(&o, 0, sizeof o);
    o.has_created_at = 1;
    o.created_at = -5;
    uint64_t id;
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str("old"), NULL, 0, &o, &id));
    o.created_at = INT64_C(4102444800); /* 2100 */
    uint64_t id2;
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str("future"), NULL, 0, &o, &id2));
    mmfs_test_reopen(f);
    mmfs_memory *m;
    MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, id, &m));
    assert_true(m->created_at == -5);
    mmfs_free(m);
    MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, id2, &m));
    assert_true(m->created_at == INT64_C(4102444800));
    mmfs_free(m);
}

static void test_delete_never_reuses(void **state) {
    mmfs_test_fx *f = *state;
    uint64_t a = add(f->db, "first", NULL, 0, NULL);
    uint64_t b = add(f->db, "second", NULL, 0, NULL);
    uint64_t c = add(f->db, "third", NULL, 0, NULL);
    int deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_delete_memory(f->db, c, &deleted));
    assert_int_equal(deleted, 1);
    mmfs_memory *m = NULL;
    MMFS_ASSERT_STATUS(mmfs_get_memory(f->db, c, &m), MMFS_NOTFOUND);
    deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_delete_memory(f->db, c, &deleted));
    assert_int_equal(deleted, 0);
    deleted = -1;
    MMFS_OK_OR_FAIL(mmfs_delete_memory(f->db, 999, &deleted));
    assert_int_equal(deleted, 0);
    MMFS_OK_OR_FAIL(mmfs_delete_memory(f->db, a, NULL));

    /* The highest id (deleted) is not given again, even after reopen. */
    uint64_t d = add(f->db, "fourth", NULL, 0, NULL);
    assert_int_equal(d, c + 1);
    mmfs_test_reopen(f);
    MMFS_ASSERT_STATUS(mmfs_get_memory(f->db, a, &m), MMFS_NOTFOUND);
    MMFS_ASSERT_STATUS(mmfs_get_memory(f->db, c, &m), MMFS_NOTFOUND);
    MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, b, &m));
    MMFS_ASSERT_SLICE_STR(m->text, "second");
    mmfs_free(m);
    MMFS_OK_OR_FAIL(mmfs_delete_memory(f->db, d, NULL));
    mmfs_test_reopen(f);
    assert_int_equal(add(f->db, "fifth", NULL, 0, NULL), d + 1);
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(f->db, &st));
    assert_int_equal(st.memories, 2);
}

static void test_list_newest_first(void **state) {
    mmfs_test_fx *f = *state;
    uint64_t i1 = add(f->db, "t=100 a", NULL, 100, NULL);
    uint64_t i2 = add(f->db, "t=300", NULL, 300, NULL);
    uint64_t i3 = add(f->db, "t=200", NULL, 200, NULL);
    uint64_t i4 = add(f->db, "t=100 b", NULL, 100, NULL); /* tie with i1: newer id first */
    uint64_t i5 = add(f->db, "t=300 b", NULL, 300, NULL);

    mmfs_memories *ms = list(f->db, NULL);
    uint64_t want[] = {i5, i2, i3, i4, i1};
    assert_ids(ms, want, 5);
    MMFS_ASSERT_SLICE_STR(ms->items[0].text, "t=300 b");
    assert_int_equal(ms->items[0].created_at, 300);
    MMFS_ASSERT_SLICE_STR(ms->items[4].text, "t=100 a");
    mmfs_free(ms);

    mmfs_filter flt;
    memset(&flt, 0, sizeof flt);
    flt.limit = 2;
    ms = list(f->db, &flt);
    assert_ids(ms, want, 2);
    mmfs_free(ms);
    flt.offset = 2;
    ms = list(f->db, &flt);
    assert_ids(ms, want + 2, 2);
    mmfs_free(ms);
    flt.offset = 4;
    ms = list(f->db, &flt);
    assert_ids(ms, want + 4, 1);
    mmfs_free(ms);
    flt.offset = 5;
    ms = list(f->db, &flt);
    assert_int_equal(ms->count, 0);
    mmfs_free(ms);

    /* Deleted memories leave lists. */
    MMFS_OK_OR_FAIL(mmfs_delete_memory(f->db, i2, NULL));
    ms = list(f->db, NULL);
    uint64_t want2[] = {i5, i3, i4, i1};
    assert_ids(ms, want2, 4);
    mmfs_free(ms);
    mmfs_test_reopen(f);
    ms = list(f->db, NULL);
    assert_ids(ms, want2, 4);
    mmfs_free(ms);
}

static void test_list_default_limit(void **state) {
    mmfs_test_fx *f = *state;
    for (int i = 1; i <= 25; i++) add(f->db, "x", NULL, 1000 + i, NULL);
    mmfs_memories *ms = list(f->db, NULL);
    assert_int_equal(ms->count, 20);
    assert_int_equal(ms->items[0].id, 25);
    assert_int_equal(ms->items[19].id, 6);
    mmfs_free(ms);
    mmfs_filter flt;
    memset(&flt, 0, sizeof flt);
    flt.limit = 100;
    ms = list(f->db, &flt);
    assert_int_equal(ms->count, 25);
    mmfs_free(ms);
}

static void test_list_filters(void **state) {
    mmfs_test_fx *f = *state;
    static const char *const t_work[] = {"work", NULL};
    static const char *const t_work_ann[] = {"work", "speaker:Ann", NULL};
    static const char *const t_ann[] = {"speaker:Ann", NULL};
    static const char *const t_ann_lower[] = {"speaker:ann", NULL};
    uint64_t a = add(f->db, "a", t_work, 100, NULL);
    uint64_t b = add(f->db, "b", t_work_ann, 200, "episodic");
    uint64_t c = add(f->db, "c", t_ann, 300, "episodic");
    uint64_t d = add(f->db, "d", t_ann_lower, 400, NULL);
    uint64_t e = add(f->db, "e", NULL, 500, "semantic");

    mmfs_filter flt;
    mmfs_memories *ms;
    mmfs_slice tg[2];

    memset(&flt, 0, sizeof flt);
    tg[0] = mmfs_str("work");
    flt.tags = tg;
    flt.ntags = 1;
    ms = list(f->db, &flt);
    uint64_t w1[] = {b, a};
    assert_ids(ms, w1, 2);
    mmfs_free(ms);

    /* All tags must match; tags are case-sensitive. */
    tg[1] = mmfs_str("speaker:Ann");
    flt.ntags = 2;
    ms = list(f->db, &flt);
    uint64_t w2[] = {b};
    assert_ids(ms, w2, 1);
    mmfs_free(ms);
    tg[0] = mmfs_str("speaker:ann");
    flt.ntags = 1;
    ms = list(f->db, &flt);
    uint64_t w3[] = {d};
    assert_ids(ms, w3, 1);
    mmfs_free(ms);
    tg[0] = mmfs_str("nosuchtag");
    ms = list(f->db, &flt);
    assert_int_equal(ms->count, 0);
    mmfs_free(ms);

    memset(&flt, 0, sizeof flt);
    flt.route = mmfs_str("episodic");
    ms = list(f->db, &flt);
    uint64_t w4[] = {c, b};
    assert_ids(ms, w4, 2);
    mmfs_free(ms);
    flt.route = mmfs_str("default");
    ms = list(f->db, &flt);
    uint64_t w5[] = {d, a};
    assert_ids(ms, w5, 2);
    mmfs_free(ms);

    memset(&flt, 0, sizeof flt);
    flt.has_since = 1;
    flt.since = 300; /* inclusive */
    ms = list(f->db, &flt);
    uint64_t w6[] = {e, d, c};
    assert_ids(ms, w6, 3);
    mmfs_free(ms);
    flt.has_before = 1;
    flt.before = 500; /* exclusive */
    ms = list(f->db, &flt);
    uint64_t w7[] = {d, c};
    assert_ids(ms, w7, 2);
    mmfs_free(ms);
    flt.has_since = 0;
    ms = list(f->db, &flt);
    uint64_t w8[] = {d, c, b, a};
    assert_ids(ms, w8, 4);
    mmfs_free(ms);

    /* Everything at once. */
    memset(&flt, 0, sizeof flt);
    tg[0] = mmfs_str("speaker:Ann");
    flt.tags = tg;
    flt.ntags = 1;
    flt.route = mmfs_str("episodic");
    flt.has_since = 1;
    flt.since = 250;
    ms = list(f->db, &flt);
    uint64_t w9[] = {c};
    assert_ids(ms, w9, 1);
    mmfs_free(ms);
}

static void test_search_basic(void **state) {
    mmfs_test_fx *f = *state;
    static const char *const t_work[] = {"work", NULL};
    uint64_t a = add(f->db, "I drink coffee every morning", t_work, 100, NULL);
    uint64_t b = add(f->db, "Tea is better than Coffee", NULL, 200, "episodic");
    uint64_t c = add(f->db, "The cat sleeps on the sofa", NULL, 300, NULL);
    (void)c;

    mmfs_memories *ms = search(f->db, "coffee", NULL);
    assert_int_equal(ms->count, 2);
    for (size_t i = 0; i < ms->count; i++) {
        assert_true(ms->items[i].id == a || ms->items[i].id == b);
        assert_true(ms->items[i].score > 0.0);
        /* Hits carry the whole memory. */
        if (ms->items[i].id == b) {
            MMFS_ASSERT_SLICE_STR(ms->items[i].text, "Tea is better than Coffee");
            MMFS_ASSERT_SLICE_STR(ms->items[i].route, "episodic");
            assert_int_equal(ms->items[i].created_at, 200);
        } else {
            assert_int_equal(ms->items[i].ntags, 1);
            MMFS_ASSERT_SLICE_STR(ms->items[i].tags[0], "work");
        }
    }
    assert_true(ms->items[0].score >= ms->items[1].score);
    mmfs_free(ms);

    /* Case folding. */
    ms = search(f->db, "COFFEE", NULL);
    assert_int_equal(ms->count, 2);
    mmfs_free(ms);

    ms = search(f->db, "nothing-matches-this", NULL);
    assert_int_equal(ms->count, 0);
    mmfs_free(ms);

    ms = search(f->db, "+coffee tea", NULL);
    uint64_t w1[] = {b, a}; /* b has both terms */
    assert_ids(ms, w1, 2);
    mmfs_free(ms);
    ms = search(f->db, "coffee -tea", NULL);
    uint64_t w2[] = {a};
    assert_ids(ms, w2, 1);
    mmfs_free(ms);
    ms = search(f->db, "\"every morning\"", NULL);
    assert_ids(ms, w2, 1);
    mmfs_free(ms);
    ms = search(f->db, "\"morning every\"", NULL);
    assert_int_equal(ms->count, 0);
    mmfs_free(ms);
    ms = search(f->db, "sof*", NULL);
    uint64_t w3[] = {c};
    assert_ids(ms, w3, 1);
    mmfs_free(ms);
    ms = search(f->db, "coffee tag:work", NULL);
    assert_ids(ms, w2, 1);
    mmfs_free(ms);
    ms = search(f->db, "coffee route:episodic", NULL);
    uint64_t w4[] = {b};
    assert_ids(ms, w4, 1);
    mmfs_free(ms);

    /* Filters from the options. */
    mmfs_filter flt;
    memset(&flt, 0, sizeof flt);
    flt.route = mmfs_str("episodic");
    ms = search(f->db, "coffee", &flt);
    assert_ids(ms, w4, 1);
    mmfs_free(ms);
    memset(&flt, 0, sizeof flt);
    mmfs_slice tg = mmfs_str("work");
    flt.tags = &tg;
    flt.ntags = 1;
    ms = search(f->db, "coffee", &flt);
    assert_ids(ms, w2, 1);
    mmfs_free(ms);
    memset(&flt, 0, sizeof flt);
    flt.has_before = 1;
    flt.before = 200;
    ms = search(f->db, "coffee", &flt);
    assert_ids(ms, w2, 1);
    mmfs_free(ms);
    flt.has_before = 0;
    flt.has_since = 1;
    flt.since = 200;
    ms = search(f->db, "coffee", &flt);
    assert_ids(ms, w4, 1);
    mmfs_free(ms);
    memset(&flt, 0, sizeof flt);
    flt.limit = 1;
    ms = search(f->db, "coffee", &flt);
    assert_int_equal(ms->count, 1);
    mmfs_free(ms);

    /* Deleted memories leave search; the index survives reopen. */
    MMFS_OK_OR_FAIL(mmfs_delete_memory(f->db, a, NULL));
    ms = search(f->db, "coffee", NULL);
    assert_ids(ms, w4, 1);
    mmfs_free(ms);
    mmfs_test_reopen(f);
    ms = search(f->db, "coffee", NULL);
    assert_ids(ms, w4, 1);
    mmfs_free(ms);
    ms = search(f->db, "cat", NULL);
    assert_ids(ms, w3, 1);
    mmfs_free(ms);
}

static void test_search_ranking_and_ties(void **state) {
    mmfs_test_fx *f = *state;
    uint64_t weak = add(f->db, "zebra lion tiger bear wolf fox owl hawk eagle", NULL, 0, NULL);
    uint64_t strong = add(f->db, "zebra zebra zebra", NULL, 0, NULL);
    mmfs_memories *ms = search(f->db, "zebra", NULL);
    uint64_t w[] = {strong, weak};
    assert_ids(ms, w, 2);
    assert_true(ms->items[0].score > ms->items[1].score);
    mmfs_free(ms);

    /* Equal scores: newer id first. */
    uint64_t t1 = add(f->db, "identical giraffe text", NULL, 0, NULL);
    uint64_t t2 = add(f->db, "identical giraffe text", NULL, 0, NULL);
    uint64_t t3 = add(f->db, "identical giraffe text", NULL, 0, NULL);
    ms = search(f->db, "giraffe", NULL);
    uint64_t wt[] = {t3, t2, t1};
    assert_ids(ms, wt, 3);
    mmfs_free(ms);
}

static void test_search_malformed_query(void **state) {
    mmfs_test_fx *f = *state;
    add(f->db, "some text", NULL, 0, NULL);
    static const char *const bad[] = {"\"unterminated", "(a OR b", "a AND"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mmfs_memories *ms = NULL;
        int rc = mmfs_search_memory(f->db, mmfs_str(bad[i]), NULL, &ms);
        if (rc != MMFS_INVALID)
            fail_msg("search_memory(\"%s\") -> %s, want INVALID", bad[i], mmfs_err_name(rc));
        const char *msg = mmfs_errmsg(f->db);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        mmfs_free(ms);
    }
}

static void test_many_tags_roundtrip(void **state) {
    mmfs_test_fx *f = *state;
    char buf[16][24];
    mmfs_slice tags[16];
    for (int i = 0; i < 16; i++) {
        snprintf(buf[i], sizeof buf[i], "tag-%02d", 15 - i);
        tags[i] = mmfs_str(buf[i]);
    }
    /* Tags are binary-safe strings: one with a zero byte, one with high bytes. */
    static const char zt[] = {'z', 0, 't'};
    mmfs_slice zs = {zt, 3};
    tags[3] = zs;
    tags[5] = mmfs_str("\xc3\xa9t\xc3\xa9");
    uint64_t id;
    MMFS_OK_OR_FAIL(mmfs_append_memory(f->db, mmfs_str("tagged"), tags, 16, NULL, &id));
    mmfs_test_reopen(f);
    mmfs_memory *m = NULL;
    MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, id, &m));
    assert_int_equal(m->ntags, 16);
    for (int i = 0; i < 16; i++) mmfs_test_assert_slice(m->tags[i], tags[i].ptr, tags[i].len);
    mmfs_free(m);

    mmfs_filter flt;
    memset(&flt, 0, sizeof flt);
    flt.tags = &zs;
    flt.ntags = 1;
    mmfs_memories *ms = list(f->db, &flt);
    assert_int_equal(ms->count, 1);
    mmfs_free(ms);
}

/* ------------------------------------------------------------ tokenizer */

/* The hit ids of QUERY as "3 1" (for short checks). */
static void expect_search(mmfs_db *db, const char *query, const char *want) {
    mmfs_memories *ms = NULL;
    MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str(query), NULL, &ms));
    char got[256] = "";
    size_t off = 0;
    for (size_t i = 0; i < ms->count; i++)
        off += (size_t)snprintf(got + off, sizeof got - off, "%s%llu", i ? " " : "",
                                (unsigned long long)ms->items[i].id);
    mmfs_free(ms);
    if (strcmp(got, want)) fail_msg("[%s]: got [%s], want [%s]", query, got, want);
}

static void read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* A new store records its tokenizer; the language decides the stemming;
** reopening with another language is refused and changes nothing. */
static void test_language(void **state) {
    mmfs_test_fx *f = *state;
    add(f->db, "She was running", NULL, 0, NULL);                         /* 1 */
    add(f->db, "\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\xe7\xbb\xbf\xe8\x8c\xb6", NULL, 0, NULL); /* 2 我喜欢喝绿茶 */
    add(f->db, "\xeb\x85\xb9\xec\xb0\xa8\xeb\xa5\xbc", NULL, 0, NULL);    /* 3 녹차를 */
    add(f->db, "cafe\xcc\x81", NULL, 0, NULL);                            /* 4 decomposed */
    expect_search(f->db, "run", "1");
    expect_search(f->db, "\xe7\xbb\xbf\xe8\x8c\xb6", "2");
    expect_search(f->db, "\xeb\x85\xb9\xec\xb0\xa8", "3");
    expect_search(f->db, "caf\xc3\xa9", "4");
    char path[4096], buf[2048];
    snprintf(path, sizeof path, "%s/MANIFEST", f->dir);
    read_file(path, buf, sizeof buf);
    assert_non_null(strstr(buf, "\ntokenizer 1 english\n"));

    mmfs_options o = mmfs_test_options(0);
    o.language = "german";
    mmfs_db *db2 = NULL;
    MMFS_ASSERT_STATUS(mmfs_open(f->dir, &o, &db2), MMFS_INVALID);
    assert_non_null(strstr(mmfs_errmsg(NULL), "'english'"));
    assert_null(db2);
    o.language = "english"; /* its own language is fine */
    MMFS_OK_OR_FAIL(mmfs_open(f->dir, &o, &db2));
    expect_search(db2, "runs", "1");
    MMFS_OK_OR_FAIL(mmfs_close(db2));

    /* an unknown language: refused before anything is made */
    char *dir = mmfs_test_dir("language");
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/store", dir);
    o.language = "klingon";
    MMFS_ASSERT_STATUS(mmfs_open(sub, &o, &db2), MMFS_INVALID);
    assert_non_null(strstr(mmfs_errmsg(NULL), "klingon"));
    FILE *x = fopen(sub, "r");
    assert_null(x);
    /* "none": normalised and case folded, not stemmed */
    o.language = "none";
    MMFS_OK_OR_FAIL(mmfs_open(sub, &o, &db2));
    add(db2, "She was RUNNING", NULL, 0, NULL);
    expect_search(db2, "run", "");
    expect_search(db2, "running", "1");
    MMFS_OK_OR_FAIL(mmfs_close(db2));
    mmfs_test_rmdir(dir);
}

/* Rewrites DIR/MANIFEST as the library wrote it before the tokenizer
** line existed: the same lines without it, a new crc line. */
static void make_pre_tokenizer_manifest(const char *dir) {
    char path[4096], buf[2048], out[2048];
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    read_file(path, buf, sizeof buf);
    char *tl = strstr(buf, "tokenizer ");
    char *crc = strstr(buf, "crc ");
    assert_non_null(tl);
    assert_non_null(crc);
    size_t n = (size_t)(tl - buf);
    memcpy(out, buf, n);
    n += (size_t)snprintf(out + n, sizeof out - n, "crc %08x\n", mmfs__crc32c(0, out, n));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(out, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* A store made before the tokenizer was recorded keeps the old tokenizer
** exactly: no stemming, no normalisation, a CJK run one token. */
static void test_store_before_tokenizer(void **state) {
    mmfs_test_fx *f = *state;
    add(f->db, "She was running", NULL, 0, NULL);                         /* 1 */
    add(f->db, "\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\xe7\xbb\xbf\xe8\x8c\xb6", NULL, 0, NULL); /* 2 */
    add(f->db, "cafe\xcc\x81", NULL, 0, NULL);                            /* 3 */
    MMFS_OK_OR_FAIL(mmfs_close(f->db));
    f->db = NULL;
    make_pre_tokenizer_manifest(f->dir);
    f->db = mmfs_test_fx_open(f);
    add(f->db, "they keep running", NULL, 0, NULL);                       /* 4 */
    expect_search(f->db, "run", "");
    expect_search(f->db, "running", "4 1");
    expect_search(f->db, "\xe7\xbb\xbf\xe8\x8c\xb6", "");
    expect_search(f->db, "\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\xe7\xbb\xbf\xe8\x8c\xb6", "2");
    expect_search(f->db, "caf\xc3\xa9", "");
    expect_search(f->db, "cafe\xcc\x81", "3");
    mmfs_test_reopen(f);
    expect_search(f->db, "run", "");
    char path[4096], buf[2048];
    snprintf(path, sizeof path, "%s/MANIFEST", f->dir);
    read_file(path, buf, sizeof buf);
    assert_null(strstr(buf, "tokenizer"));
    /* a language cannot be given to it */
    mmfs_options o = mmfs_test_options(0);
    o.language = "english";
    mmfs_db *db2 = NULL;
    MMFS_ASSERT_STATUS(mmfs_open(f->dir, &o, &db2), MMFS_INVALID);
    assert_non_null(strstr(mmfs_errmsg(NULL), "first tokenizer"));
}

/* tags_any: at least one; with tags: both hold; in search and list. */
static void test_tags_any(void **state) {
    mmfs_test_fx *f = *state;
    add(f->db, "tea one", (const char *const[]){"a", NULL}, 100, NULL);      /* 1 */
    add(f->db, "tea two", (const char *const[]){"b", NULL}, 200, NULL);      /* 2 */
    add(f->db, "tea three", (const char *const[]){"c", "a", NULL}, 300, "r"); /* 3 */
    add(f->db, "coffee", (const char *const[]){"a", "b", NULL}, 400, NULL);  /* 4 */
    mmfs_slice any[] = {mmfs_str("a"), mmfs_str("b"), mmfs_str("nope")};
    mmfs_slice all[] = {mmfs_str("a")};
    mmfs_filter fl;
    memset(&fl, 0, sizeof fl);
    fl.tags_any = any;
    fl.ntags_any = 2;
    mmfs_memories *ms = NULL;
    MMFS_OK_OR_FAIL(mmfs_list_memories(f->db, &fl, &ms));
    assert_ids(ms, (const uint64_t[]){4, 3, 2, 1}, 4);
    mmfs_free(ms);
    MMFS_OK_OR_FAIL(mmfs_search_memory(f->db, mmfs_str("tea"), &fl, &ms));
    assert_int_equal(ms->count, 3);
    mmfs_free(ms);
    fl.tags_any = any + 1; /* b, nope */
    MMFS_OK_OR_FAIL(mmfs_list_memories(f->db, &fl, &ms));
    assert_ids(ms, (const uint64_t[]){4, 2}, 2);
    mmfs_free(ms);
    fl.tags = all; /* a and one of (b, nope) */
    fl.ntags = 1;
    MMFS_OK_OR_FAIL(mmfs_list_memories(f->db, &fl, &ms));
    assert_ids(ms, (const uint64_t[]){4}, 1);
    mmfs_free(ms);
    fl.tags_any = any + 2; /* only unknown tags: nothing */
    fl.ntags_any = 1;
    MMFS_OK_OR_FAIL(mmfs_search_memory(f->db, mmfs_str("tea"), &fl, &ms));
    assert_int_equal(ms->count, 0);
    mmfs_free(ms);
    /* the same through the query language */
    expect_search(f->db, "tea AND (tag:b OR tag:c)", "3 2");
    expect_search(f->db, "(tag:b OR route:r) AND NOT tag:a", "2");
    fl.ntags_any = 1;
    fl.tags_any = NULL;
    MMFS_ASSERT_STATUS(mmfs_list_memories(f->db, &fl, &ms), MMFS_INVALID);
}

/* Memory ids are u64, the index numbers documents with 32 bits: the
** writer refuses an id past the bound with LIMIT (no id consumed, nothing
** written), and a record past it (not written by this library) is never
** found under a wrong id. */
static void test_docno_bound(void **state) {
    mmfs_test_fx *f = *state;
    /* Put the store's highest id just below the bound, as 4 billion
    ** appends would: apply a memory record to the engine directly. */
    static uint8_t raw[256], raw2[256];
    mmfs__rec r;
    memset(&r, 0, sizeof r);
    r.type = MMFS__R_MEMORY;
    r.lsn = 1000000;
    r.u.mem.id = MMFS__MEM_ID_MAX - 1;
    r.u.mem.created_at = 1;
    r.u.mem.text = mmfs_str("near the bound");
    assert_true(mmfs__rec_size(&r) <= sizeof raw);
    mmfs__rec_encode(&r, raw);
    mmfs__rec d;
    assert_int_equal(mmfs__rec_decode(raw, sizeof raw, &d), MMFS_OK);
    MMFS_OK_OR_FAIL(mmfs__engine_apply(f->db->eng, &d));
    uint64_t id = add(f->db, "the last one", NULL, 0, NULL);
    assert_int_equal(id, MMFS__MEM_ID_MAX);
    char want[64];
    snprintf(want, sizeof want, "%llu", (unsigned long long)MMFS__MEM_ID_MAX);
    expect_search(f->db, "last", want);
    /* the next is refused, nothing consumed or written */
    uint64_t lsn = mmfs_test_stats(f->db).lsn;
    uint64_t got = 0;
    MMFS_ASSERT_STATUS(mmfs_append_memory(f->db, mmfs_str("one too many"), NULL, 0, NULL, &got), MMFS_LIMIT);
    assert_non_null(strstr(mmfs_errmsg(NULL), "past"));
    MMFS_ASSERT_STATUS(mmfs_append_memory(f->db, mmfs_str("still too many"), NULL, 0, NULL, &got), MMFS_LIMIT);
    assert_int_equal(mmfs_test_stats(f->db).lsn, lsn);
    expect_search(f->db, "many", "");
    /* a record past the bound (another writer's) is kept out of the index
    ** instead of being found as id & 0xffffffff */
    r.u.mem.id = (uint64_t)1 << 32 | 7;
    r.u.mem.text = mmfs_str("beyond");
    r.lsn++;
    mmfs__rec_encode(&r, raw2);
    assert_int_equal(mmfs__rec_decode(raw2, sizeof raw2, &d), MMFS_OK);
    MMFS_OK_OR_FAIL(mmfs__engine_apply(f->db->eng, &d));
    expect_search(f->db, "beyond", "");
    mmfs_memory *m = NULL;
    MMFS_OK_OR_FAIL(mmfs_get_memory(f->db, r.u.mem.id, &m));
    MMFS_ASSERT_SLICE_STR(m->text, "beyond");
    mmfs_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ids_dense_increasing, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_get_fields, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_created_at_extremes, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_never_reuses, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_list_newest_first, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_list_default_limit, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_list_filters, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_search_basic, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_search_ranking_and_ties, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_search_malformed_query, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_many_tags_roundtrip, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_language, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_store_before_tokenizer, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_tags_any, setup, mmfs_test_fx_teardown),
        cmocka_unit_test_setup_teardown(test_docno_bound, setup, mmfs_test_fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
