/* test_search.c: core/src/search (tokenizer, postings, query parser, BM25). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "search/search.h"

/* ------------------------------------------------------------ corpus
** The owner side of a test index: texts and tags by docno. */
#define MAXDOC 20000

typedef struct corpus {
    mmfs__index *ix;
    char *text[MAXDOC];
    char *tags[MAXDOC]; /* space-separated */
    uint32_t min_docno; /* accept(): docno >= min_docno */
} corpus;

static int cb_field(void *ud, uint32_t d, mmfs_slice field, mmfs_slice value) {
    corpus *c = ud;
    if (field.len != 3 || memcmp(field.ptr, "tag", 3) != 0 || d >= MAXDOC || !c->tags[d]) return 0;
    const char *p = c->tags[d];
    while (*p) {
        size_t n = strcspn(p, " ");
        if (n == value.len && memcmp(p, value.ptr, n) == 0) return 1;
        p += n;
        while (*p == ' ') p++;
    }
    return 0;
}

static int cb_accept(void *ud, uint32_t d) { return d >= ((corpus *)ud)->min_docno; }

static corpus *corpus_new(void) {
    corpus *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->ix = mmfs__index_new();
    assert_non_null(c->ix);
    return c;
}

static void corpus_free(corpus *c) {
    for (int i = 0; i < MAXDOC; i++) {
        free(c->text[i]);
        free(c->tags[i]);
    }
    mmfs__index_free(c->ix);
    free(c);
}

static void add(corpus *c, uint32_t d, const char *text, const char *tags) {
    free(c->text[d]);
    free(c->tags[d]);
    c->text[d] = strdup(text);
    c->tags[d] = tags ? strdup(tags) : NULL;
    assert_int_equal(mmfs__index_add(c->ix, d, text, strlen(text)), MMFS_OK);
}

static const mmfs__search_cb *cbs(corpus *c) {
    static mmfs__search_cb cb;
    cb.ud = c;
    cb.field = cb_field;
    cb.accept = cb_accept;
    return &cb;
}

/* Runs QUERY and writes the docnos of the hits as "3 1 2" into BUF. */
static int search_k(corpus *c, const char *query, size_t k, char *buf, mmfs__hit *hits, size_t *n) {
    mmfs__hit local[64];
    size_t ln;
    if (!hits) {
        hits = local;
        n = &ln;
        assert_true(k <= 64);
    }
    int rc = mmfs__index_search(c->ix, mmfs_str(query), cbs(c), k, hits, n);
    buf[0] = 0;
    if (rc) return rc;
    size_t off = 0;
    for (size_t i = 0; i < *n; i++)
        off += (size_t)snprintf(buf + off, 512 - off, "%s%u", i ? " " : "", hits[i].docno);
    return rc;
}

static void expect(corpus *c, const char *query, const char *want) {
    char got[512];
    int rc = search_k(c, query, 20, got, NULL, NULL);
    if (rc) fail_msg("query [%s] failed: %s", query, mmfs_errmsg(NULL));
    if (strcmp(got, want) != 0) fail_msg("query [%s]: got [%s], want [%s]", query, got, want);
}

static void expect_invalid(corpus *c, const char *query, const char *msg) {
    char got[512];
    int rc = search_k(c, query, 20, got, NULL, NULL);
    if (rc != MMFS_INVALID) fail_msg("query [%s]: rc %d, hits [%s]", query, rc, got);
    if (!strstr(mmfs_errmsg(NULL), msg))
        fail_msg("query [%s]: message [%s], want [%s]", query, mmfs_errmsg(NULL), msg);
}

/* ---------------------------------------------------------- tokenizer */

static void tokens(const char *s, size_t len, char *out) {
    mmfs__tok t;
    mmfs__tok_init(&t, s, len);
    out[0] = 0;
    size_t off = 0;
    while (mmfs__tok_next(&t)) {
        if (off) out[off++] = '|';
        memcpy(out + off, t.buf, t.n);
        off += t.n;
        out[off] = 0;
    }
}

/* The tokens of S under tokenizer version 1 with LANG, "a|b|c" into OUT;
** STARTS gets each token's source byte range as "s-e s-e". */
static void tokens1(const char *lang, const char *s, char *out, char *starts) {
    mmfs__tokcfg cfg = {.version = 1};
    snprintf(cfg.lang, sizeof cfg.lang, "%s", lang);
    mmfs__tokz z;
    assert_int_equal(mmfs__tokz_open(&z, &cfg), MMFS_OK);
    mmfs__tok t;
    mmfs__tok_init_z(&t, &z, s, strlen(s));
    size_t off = 0, so = 0;
    out[0] = 0;
    if (starts) starts[0] = 0;
    while (mmfs__tok_next(&t)) {
        if (off) out[off++] = '|';
        memcpy(out + off, t.buf, t.n);
        off += t.n;
        out[off] = 0;
        if (starts) so += (size_t)sprintf(starts + so, "%s%zu-%zu", so ? " " : "", t.start, t.end);
    }
    mmfs__tokz_close(&z);
}

static void expect_tokens1(const char *lang, const char *s, const char *want) {
    char got[1024];
    tokens1(lang, s, got, NULL);
    if (strcmp(got, want)) fail_msg("%s [%s]: got [%s], want [%s]", lang, s, got, want);
}

static void test_tokenizer_v1(void **state) {
    (void)state;
    /* NFKC + case fold: composed and decomposed, fullwidth, ligatures */
    expect_tokens1("none", "Caf\xc3\xa9 CAFE\xcc\x81", "caf\xc3\xa9|caf\xc3\xa9");
    expect_tokens1("none", "\xef\xbc\xa1\xef\xbd\x82\xef\xbd\x83 \xef\xac\x81ne", "abc|fine");
    expect_tokens1("none", "Stra\xc3\x9f" "e \xce\xa3\xce\x99\xce\xa3", "strasse|\xcf\x83\xce\xb9\xcf\x83");
    /* a soft hyphen joins, punctuation separates */
    expect_tokens1("none", "co\xc2\xadop e-mail", "coop|e|mail");
    /* CJK: overlapping bigrams, a lone character alone, runs end at
    ** other scripts and spaces */
    expect_tokens1("none", "\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2", /* 我喜欢 */
                   "\xe6\x88\x91\xe5\x96\x9c|\xe5\x96\x9c\xe6\xac\xa2");
    expect_tokens1("none", "\xe8\x8c\xb6 tea", "\xe8\x8c\xb6|tea"); /* 茶 tea */
    expect_tokens1("none", "\xeb\x85\xb9\xec\xb0\xa8\xeb\xa5\xbc", /* 녹차를 */
                   "\xeb\x85\xb9\xec\xb0\xa8|\xec\xb0\xa8\xeb\xa5\xbc");
    expect_tokens1("none", "\xe6\x9d\xb1\xe4\xba\xacTokyo\xe3\x81\xab", /* 東京Tokyoに */
                   "\xe6\x9d\xb1\xe4\xba\xac|tokyo|\xe3\x81\xab");
    /* decomposed Hangul (jamo) composes to the syllables */
    expect_tokens1("none", "\xe1\x84\x82\xe1\x85\xa9\xe1\x86\xa8\xe1\x84\x8e\xe1\x85\xa1",
                   "\xeb\x85\xb9\xec\xb0\xa8");
    /* stemming, per language */
    expect_tokens1("english", "She was running; runs", "she|was|run|run");
    expect_tokens1("german", "Die H\xc3\xa4user", "die|haus");
    expect_tokens1("french", "les chanteuses", "le|chanteux");
    expect_tokens1("spanish", "las canciones", "las|cancion");
    expect_tokens1("russian", "\xd0\x9a\xd0\xbd\xd0\xb8\xd0\xb3\xd0\xb8", /* Книги */
                   "\xd0\xba\xd0\xbd\xd0\xb8\xd0\xb3");
    /* source ranges: what snippets mark */
    char got[256], starts[256];
    tokens1("english", "a \xe7\xbb\xbf\xe8\x8c\xb6 running", got, starts);
    assert_string_equal(starts, "0-1 2-8 9-16");
    /* a long word is cut at a code point boundary, never past the cap */
    char longw[400];
    memset(longw, 0, sizeof longw);
    for (int i = 0; i < 100; i++) memcpy(longw + 2 * i, "\xc3\xa9", 2);
    tokens1("none", longw, got, NULL);
    assert_int_equal(strlen(got), MMFS__TOK_MAX);
    /* the ASCII fast path and the general path agree: the same words,
    ** followed by ASCII or by non-ASCII separators (em dash, no-break
    ** space), give the same tokens; a combining mark after an ASCII
    ** letter composes with it */
    expect_tokens1("english", "Running, dogs! THE 42nd e-mail", "run|dog|the|42nd|e|mail");
    expect_tokens1("english", "Running\xe2\x80\x94" "dogs\xc2\xa0" "THE\xe2\x80\x94" "42nd\xc2\xa0" "e\xe2\x80\x94" "mail",
                   "run|dog|the|42nd|e|mail");
    expect_tokens1("none", "cafe\xcc\x81, cafe \xcc\x81x", "caf\xc3\xa9|cafe|\xcc\x81x");
    /* an ASCII word past the cap is cut alike on both paths */
    char lw[200], lwant[200];
    memset(lw, 'A', 70);
    strcpy(lw + 70, " b");
    memset(lwant, 'a', MMFS__TOK_MAX);
    strcpy(lwant + MMFS__TOK_MAX, "|b");
    expect_tokens1("none", lw, lwant);
    strcpy(lw + 70, "\xe2\x80\x94" "b");
    expect_tokens1("none", lw, lwant);
    /* invalid UTF-8 separates */
    expect_tokens1("none", "ab\xff" "cd\xc3", "ab|cd");
    /* unknown language */
    mmfs__tokcfg bad = {.version = 1, .lang = "klingon"};
    mmfs__tokz z;
    assert_int_equal(mmfs__tokz_open(&z, &bad), MMFS_INVALID);
}

/* An index with tokenizer version 1: stemmed, CJK and normalised queries,
** phrases and prefixes. */
static void test_search_v1(void **state) {
    (void)state;
    corpus *c = corpus_new();
    assert_int_equal(mmfs__index_set_tokenizer(c->ix, 1, "english"), MMFS_OK);
    add(c, 1, "She was running to the park", NULL);
    add(c, 2, "\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\xe7\xbb\xbf\xe8\x8c\xb6", NULL); /* 我喜欢喝绿茶 */
    add(c, 3, "\xe6\x9d\xb1\xe4\xba\xac\xe3\x81\xab\xe8\xa1\x8c\xe3\x81\x8d\xe3\x81\xbe\xe3\x81\x97\xe3\x81\x9f", NULL); /* 東京に行きました */
    add(c, 4, "\xeb\x85\xb9\xec\xb0\xa8\xeb\xa5\xbc \xeb\xa7\x88\xec\x85\xa8\xec\x9a\x94", NULL); /* 녹차를 마셨요 */
    add(c, 5, "cafe\xcc\x81 au lait", NULL); /* decomposed */
    add(c, 6, "the runners ran", NULL);
    expect(c, "run", "1");
    expect(c, "RUNS", "1");
    expect(c, "\"was running\"", "1");  /* phrases are stemmed like terms */
    expect(c, "\"was runs\"", "1");
    expect(c, "\"running was\"", "");
    expect(c, "\xe7\xbb\xbf\xe8\x8c\xb6", "2");            /* 绿茶 */
    expect(c, "\"\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\"", "2"); /* "喜欢喝" */
    expect(c, "\"\xe6\xac\xa2\xe5\x96\x9c\"", "");       /* "欢喜": not in order */
    expect(c, "\xe6\x9d\xb1\xe4\xba\xac", "3");            /* 東京 */
    expect(c, "\xeb\x85\xb9\xec\xb0\xa8", "4");            /* 녹차 */
    expect(c, "caf\xc3\xa9", "5");                          /* composed query */
    expect(c, "CAF\xc3\x89", "5");
    expect(c, "runner*", "6"); /* a prefix is not stemmed: runner matches runners' stem */
    expect(c, "run*", "6 1");
    /* OR queries drop English stopwords beside other optional terms */
    add(c, 7, "what did she do", NULL);
    add(c, 8, "we eat rice", NULL);
    expect(c, "what did she eat", "8");
    expect(c, "what did", "7");          /* only stopwords: kept */
    expect(c, "+what eat", "7");         /* required: kept */
    expect(c, "\"did she\" eat", "7 8"); /* in a phrase: kept */
    expect(c, "eat AND (what OR did)", "");
    corpus_free(c);
}

/* Filters combine with AND, OR, NOT and parentheses like terms, in every
** position, and never change a score. */
static void test_filters_boolean(void **state) {
    (void)state;
    corpus *c = corpus_new();
    add(c, 1, "run", "a");
    add(c, 2, "tea", "b");
    add(c, 3, "run tea", "c");
    add(c, 4, "coffee", "a d");
    add(c, 5, "run", "d");
    expect(c, "(run OR tea) AND (tag:a OR tag:c)", "3 1");
    expect(c, "(tag:a OR tag:c) AND (run OR tea)", "3 1");
    expect(c, "(tag:b OR tag:d) AND NOT tag:d", "2");
    expect(c, "tag:a OR tag:b", "4 2 1");
    expect(c, "tag:a OR tag:b OR tag:zzz", "4 2 1");
    expect(c, "run tag:a", "1");          /* juxtaposed: narrows, as before */
    expect(c, "tag:a run", "1");
    expect(c, "run AND tag:d", "5");
    expect(c, "run OR tag:b", "5 1 3 2"); /* the filter-only match scores 0 */
    expect(c, "NOT (tag:a OR tag:b)", "5 3");
    expect(c, "-tag:a -tag:b", "5 3");
    expect(c, "tea -tag:c", "2");
    expect(c, "tea NOT tag:c", "2");
    expect(c, "(run AND tag:a) OR tag:b", "1 2");
    expect(c, "((tag:a OR tag:c) AND run) OR (tag:b AND tea)", "2 1 3"); /* tea is rarer */
    expect(c, "\"run tea\" AND (tag:c OR tag:a)", "3");
    /* scores: the same with or without filters */
    mmfs__hit h1[8], h2[8];
    size_t n1, n2;
    char buf[512];
    assert_int_equal(search_k(c, "run tea", 8, buf, h1, &n1), MMFS_OK);
    assert_int_equal(search_k(c, "(run tea) AND (tag:a OR tag:c OR tag:d)", 8, buf, h2, &n2), MMFS_OK);
    assert_int_equal(n1, 4);
    assert_int_equal(n2, 3);
    for (size_t i = 0; i < n2; i++)
        for (size_t j = 0; j < n1; j++)
            if (h1[j].docno == h2[i].docno) assert_true(h1[j].score == h2[i].score);
    corpus_free(c);
}

/* snippet(QUERY, TEXT) with marks "<" ">" and BYTES. */
static void expect_snippet(mmfs__index *ix, const char *query, const char *text, size_t bytes,
                           const char *want) {
    uint8_t *out = NULL;
    size_t n = 0;
    int rc = mmfs__index_snippet(ix, mmfs_str(query), mmfs_str(text), mmfs_str("<"), mmfs_str(">"),
                                 bytes, &out, &n);
    if (rc) fail_msg("snippet [%s]: %s", query, mmfs_errmsg(NULL));
    assert_int_equal(strlen((char *)out), n);
    if (strcmp((char *)out, want)) fail_msg("snippet [%s]: got [%s], want [%s]", query, out, want);
    free(out);
}

static void test_snippet(void **state) {
    (void)state;
    mmfs__index *ix = mmfs__index_new();
    assert_int_equal(mmfs__index_set_tokenizer(ix, 1, "english"), MMFS_OK);
    const char *t = "Alice went running in the park. Later she drank green tea with Bob at home.";
    /* start, middle, end of the text; cut at word boundaries */
    expect_snippet(ix, "alice", t, 20, "<Alice> went running");
    expect_snippet(ix, "green", t, 20, "drank <green> tea");
    expect_snippet(ix, "home", t, 20, "with Bob at <home>.");
    /* stemmed matches, several terms, the window with the most terms */
    expect_snippet(ix, "run park tea", t, 30, "went <running> in the <park>");
    expect_snippet(ix, "\"green tea\" -alice", t, 25, "drank <green> <tea> with");
    expect_snippet(ix, "alice", t, 500, "<Alice> went running in the park. Later she drank green tea with Bob at home.");
    /* no match: the beginning */
    expect_snippet(ix, "zebra", t, 16, "Alice went");
    expect_snippet(ix, "tag:x", t, 16, "Alice went");
    /* multi-byte: composed/decomposed, accents, a cut never splits a
    ** character */
    expect_snippet(ix, "caf\xc3\xa9", "d\xc3\xa9j\xc3\xa0 vu au cafe\xcc\x81 pr\xc3\xa8s d'ici", 16,
                   "au <cafe\xcc\x81>"); /* the window ends inside "pr\xc3\xa8s": dropped */
    /* CJK: overlapping bigrams share one pair of marks */
    expect_snippet(ix, "\"\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\"", "\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\xe7\xbb\xbf\xe8\x8c\xb6", 160,
                   "\xe6\x88\x91<\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d>\xe7\xbb\xbf\xe8\x8c\xb6");
    /* a window inside a long CJK run ends on a character boundary */
    expect_snippet(ix, "\xe7\xbb\xbf\xe8\x8c\xb6", "\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\xe7\xbb\xbf\xe8\x8c\xb6\xe5\x92\x8c\xe7\xba\xa2\xe8\x8c\xb6", 9,
                   "<\xe7\xbb\xbf\xe8\x8c\xb6>"); /* both ends fell mid-character */
    /* malformed query */
    uint8_t *out = NULL;
    size_t n;
    assert_int_equal(mmfs__index_snippet(ix, mmfs_str("(x"), mmfs_str(t), mmfs_str("["), mmfs_str("]"), 10, &out, &n),
                     MMFS_INVALID);
    assert_null(out);
    mmfs__index_free(ix);
}

static void test_tokenizer(void **state) {
    (void)state;
    char out[1024];
    const char *s = "Hello, WORLD! it's 42abc x_y 3.14";
    tokens(s, strlen(s), out);
    assert_string_equal(out, "hello|world|it|s|42abc|x|y|3|14");

    s = "Café CAFÉ Ünïcödé straße ŁÓDŹ Ĳssel";
    tokens(s, strlen(s), out);
    assert_string_equal(out, "café|café|ünïcödé|straße|łódź|ĳssel");

    s = "ΣΟΦΊΑ σοφίας Москва ЁЛКА «quoted» — dash…end";
    tokens(s, strlen(s), out);
    assert_string_equal(out, "σοφία|σοφίασ|москва|ёлка|quoted|dash|end");

    s = "emoji🙂inside tab\there\nnewline";
    tokens(s, strlen(s), out);
    assert_string_equal(out, "emoji|inside|tab|here|newline");

    /* invalid UTF-8 separates; a truncated sequence at the end too */
    const char bad[] = "ab\xff" "cd\xc3";
    tokens(bad, sizeof bad - 1, out);
    assert_string_equal(out, "ab|cd");

    /* long tokens are cut at MMFS__TOK_MAX bytes, on a code point */
    char longw[200];
    memset(longw, 'A', 150);
    longw[150] = 0;
    tokens(longw, 150, out);
    assert_int_equal(strlen(out), MMFS__TOK_MAX);
    char longu[200] = "a";
    for (int i = 0; i < 40; i++) strcat(longu, "é");
    tokens(longu, strlen(longu), out);
    assert_int_equal(strlen(out), 63); /* 'a' + 31 two-byte letters */

    /* token offsets in the input */
    mmfs__tok t;
    mmfs__tok_init(&t, "  (foo)  bär", 13);
    assert_true(mmfs__tok_next(&t));
    assert_int_equal(t.start, 3);
    assert_int_equal(t.end, 6);
    assert_true(mmfs__tok_next(&t));
    assert_int_equal(t.start, 9);
    assert_int_equal(t.end, 13);
    assert_false(mmfs__tok_next(&t));
}

/* --------------------------------------------------------------- BM25 */

static void tiny(corpus *c) {
    add(c, 1, "coffee coffee coffee", "work");
    add(c, 2, "Coffee, tea.", "home");
    add(c, 3, "tea time", "work home");
    add(c, 4, "morning coffee with milk and sugar and more words here", NULL);
}

static void test_bm25_order(void **state) {
    (void)state;
    corpus *c = corpus_new();
    tiny(c);
    assert_int_equal(mmfs__index_count(c->ix), 4);
    /* one term: more occurrences and shorter documents first */
    expect(c, "coffee", "1 2 4");
    /* tea is rarer (higher idf): doc 2 has both, doc 3 only tea */
    expect(c, "coffee tea", "2 3 1 4");
    expect(c, "COFFEE OR tea", "2 3 1 4");
    expect(c, "nothing", "");
    expect(c, "nothing coffee", "1 2 4");

    /* the score is the formula (N=4, avgdl=17/4) */
    mmfs__hit hits[4];
    size_t n;
    char buf[512];
    assert_int_equal(search_k(c, "tea", 4, buf, hits, &n), MMFS_OK);
    assert_int_equal(n, 2);
    double idf = log(1 + (4 - 2 + 0.5) / (2 + 0.5));
    double want = idf * 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * 2 / (17.0 / 4)));
    assert_true(fabs(hits[0].score - want) < 1e-12);
    /* docs 2 and 3 have the same length and tf: a tie, higher docno first */
    assert_true(hits[0].score == hits[1].score);
    assert_int_equal(hits[0].docno, 3);
    assert_int_equal(hits[1].docno, 2);
    corpus_free(c);
}

static void test_ties_and_k(void **state) {
    (void)state;
    corpus *c = corpus_new();
    for (uint32_t d = 10; d < 20; d++) add(c, d, "same text here", NULL);
    add(c, 5, "other", NULL);
    expect(c, "same", "19 18 17 16 15 14 13 12 11 10");
    char buf[512];
    mmfs__hit hits[3];
    size_t n;
    assert_int_equal(search_k(c, "same", 3, buf, hits, &n), MMFS_OK);
    assert_string_equal(buf, "19 18 17");
    assert_int_equal(search_k(c, "+same text", 3, buf, hits, &n), MMFS_OK);
    assert_string_equal(buf, "19 18 17");
    assert_int_equal(search_k(c, "same", 0, buf, hits, &n), MMFS_OK);
    assert_int_equal(n, 0);
    /* k smaller than matches keeps the best ones */
    add(c, 3, "same same same", NULL);
    assert_int_equal(search_k(c, "same", 2, buf, hits, &n), MMFS_OK);
    assert_string_equal(buf, "3 19");
    corpus_free(c);
}

/* -------------------------------------------------------- query forms */

static void test_query_forms(void **state) {
    (void)state;
    corpus *c = corpus_new();
    tiny(c);
    add(c, 5, "decaf coffee in the morning", "work");
    add(c, 6, "the coffee maker makes morning coffee", NULL);
    add(c, 7, "café au lait", NULL);
    add(c, 8, "and or not", NULL);

    expect(c, "+coffee tea", "2 1 6 5 4");
    expect(c, "coffee AND tea", "2");
    expect(c, "tea AND coffee", "2");
    expect(c, "+tea +coffee", "2");
    expect(c, "coffee -decaf", "1 2 6 4");
    expect(c, "coffee NOT decaf", "1 2 6 4");
    expect(c, "coffee AND NOT decaf", "1 2 6 4");
    expect(c, "\"morning coffee\"", "6 4");
    expect(c, "\"coffee morning\"", "");
    expect(c, "\"MORNING, coffee!\"", "6 4");
    expect(c, "-\"morning coffee\" coffee", "1 2 5");
    expect(c, "coffee-maker", "6");
    expect(c, "caf*", "7");
    expect(c, "CAFÉ", "7");
    expect(c, "co*", "1 2 6 5 4");
    expect(c, "mak*", "6");
    expect(c, "\"coffee mak*\"", "6");
    expect(c, "zzz*", "");
    expect(c, "(tea OR decaf) AND coffee", "2 5");
    expect(c, "(tea decaf) AND (coffee)", "2 5");
    expect(c, "tea OR (decaf AND morning)", "5 3 2");
    expect(c, "tea ((decaf AND morning))", "5 3 2");
    /* AND binds tighter than OR */
    expect(c, "time OR tea AND coffee", "3 2");
    /* lower-case operators are terms */
    expect(c, "and", "8 4");
    expect(c, "not", "8");
    expect(c, "tea and", "3 2 8 4");
    /* words without tokens match nothing */
    expect(c, "!!!", "");
    expect(c, "!!! tea", "3 2");
    expect(c, "tea AND !!!", "");
    /* filters */
    expect(c, "coffee tag:work", "1 5");
    expect(c, "tea +tag:home", "3 2");
    expect(c, "coffee -tag:work", "2 6 4");
    expect(c, "tag:work", "5 3 1");
    expect(c, "tag:\"work\"", "5 3 1");
    expect(c, "tag:nope", "");
    /* only exclusions: every other live doc, score 0, newest first */
    expect(c, "-coffee", "8 7 3");
    expect(c, "NOT coffee -tea", "8 7");
    expect(c, "-tag:work -tag:home", "8 7 6 4");
    /* accept() filters candidates */
    c->min_docno = 3;
    expect(c, "coffee", "6 5 4");
    expect(c, "-coffee", "8 7 3");
    c->min_docno = 0;
    corpus_free(c);
}

/* Phrases come from word positions in the index: no text is read (the
** callbacks have none to give), repeated and overlapping words count
** each position once. */
static void test_phrase_positions(void **state) {
    (void)state;
    corpus *c = corpus_new();
    add(c, 1, "red apple green pear", NULL);
    add(c, 2, "green apple red pear", NULL);
    add(c, 3, "a red car", NULL);
    add(c, 4, "tea tea", NULL);
    add(c, 5, "tea and tea tea", NULL);
    add(c, 6, "b a b a b", NULL);
    expect(c, "\"red apple\"", "1");
    expect(c, "\"apple red\"", "2");
    expect(c, "\"red apple\" OR \"red pear\"", "2 1");
    expect(c, "car OR \"green pear\"", "1 3");
    expect(c, "\"red\"", "3 2 1");
    expect(c, "\"pear red\"", "");       /* both words, not adjacent */
    expect(c, "\"red apple green pear\"", "1");
    expect(c, "\"red apple pear\"", ""); /* a gap in the middle */
    expect(c, "\"apple green pear red\"", "");
    /* repeated words: each position stands for one word */
    expect(c, "\"tea tea\"", "4 5");
    expect(c, "\"tea tea tea\"", "");
    expect(c, "\"and tea tea\"", "5");
    expect(c, "\"a b a b\"", "6"); /* overlapping matches */
    expect(c, "\"b a b a b\"", "6");
    expect(c, "\"b a b a b a\"", "");
    expect(c, "\"a b a b a\"", "");
    /* prefixes inside phrases: any term of the prefix at the spot */
    expect(c, "\"red app*\"", "1");
    expect(c, "\"gre* a*\"", "2");
    expect(c, "\"a* r*\"", "3 2"); /* "a red", "apple red" */
    /* with phrases, required words and exclusions together */
    expect(c, "+\"red pear\" apple", "2");
    expect(c, "apple -\"red apple\"", "2");
    /* no callbacks at all: phrases still work */
    mmfs__hit hits[4];
    size_t n;
    assert_int_equal(mmfs__index_search(c->ix, mmfs_str("\"green pear\""), NULL, 4, hits, &n), MMFS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hits[0].docno, 1);
    corpus_free(c);
}

/* Phrases across stemming and in CJK text (bigram positions), and after
** deletes, re-adds and out-of-order adds. */
static void test_phrase_positions_v1(void **state) {
    (void)state;
    corpus *c = corpus_new();
    assert_int_equal(mmfs__index_set_tokenizer(c->ix, 1, "english"), MMFS_OK);
    add(c, 1, "She was running quickly", NULL);
    add(c, 2, "the dogs runs quickly home", NULL);
    add(c, 3, "\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\xe7\xbb\xbf\xe8\x8c\xb6", NULL); /* 我喜欢喝绿茶 */
    add(c, 4, "\xe7\xbb\xbf\xe8\x8c\xb6\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2", NULL); /* 绿茶我喜欢 */
    add(c, 5, "\xeb\x85\xb9\xec\xb0\xa8\xeb\xa5\xbc \xeb\xa7\x88\xec\x85\xa8\xec\x9a\x94", NULL); /* 녹차를 마셨요 */
    expect(c, "\"runs quickly\"", "1 2"); /* running, runs: one stem */
    expect(c, "\"RAN quickly\"", "");    /* ran is not stemmed to run */
    expect(c, "\"was runs quick\"", "1");
    expect(c, "\"dog run quick\"", "2");
    expect(c, "\"quickly running\"", "");
    /* CJK: a phrase is its bigrams at adjacent positions */
    expect(c, "\"\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\"", "3");             /* 喜欢喝 */
    expect(c, "\"\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2\"", "4 3");           /* 我喜欢 */
    expect(c, "\"\xe8\x8c\xb6\xe6\x88\x91\xe5\x96\x9c\"", "4");             /* 茶我喜 */
    expect(c, "\"\xe5\x96\x9c\xe6\xac\xa2\xe7\xbb\xbf\xe8\x8c\xb6\"", ""); /* 喜欢绿茶: not adjacent */
    expect(c, "\"\xe7\xbb\xbf\xe8\x8c\xb6\"", "4 3");                           /* 绿茶 */
    expect(c, "\"\xeb\x85\xb9\xec\xb0\xa8\xeb\xa5\xbc \xeb\xa7\x88\xec\x85\xa8\"", "5"); /* 녹차를 마셨 */
    /* after a delete, a re-add under the same docno, an out-of-order add */
    mmfs__index_remove(c->ix, 2);
    expect(c, "\"runs quickly\"", "1");
    add(c, 1, "quickly she was running", NULL);
    expect(c, "\"runs quickly\"", "");
    expect(c, "\"quickly she\"", "1");
    add(c, 2, "runs quickly, again", NULL); /* a deleted docno re-added */
    expect(c, "\"runs quickly\"", "2");
    add(c, 0, "she runs quickly", NULL); /* below every docno so far */
    expect(c, "\"runs quickly\"", "2 0"); /* a tie: higher docno first */
    expect(c, "\"she runs\"", "0");
    corpus_free(c);
}

static void test_errors(void **state) {
    (void)state;
    corpus *c = corpus_new();
    tiny(c);
    expect_invalid(c, "coffee (tea", "query: position 8: unclosed parenthesis");
    expect_invalid(c, "coffee tea)", "query: position 11: unmatched ')'");
    expect_invalid(c, "\"morning coffee", "query: position 1: unclosed quote");
    expect_invalid(c, "a \"b", "query: position 3: unclosed quote");
    expect_invalid(c, "coffee AND", "query: position 8: dangling AND");
    expect_invalid(c, "OR tea", "query: position 1: dangling OR");
    expect_invalid(c, "a AND OR b", "query: position 3: dangling AND");
    expect_invalid(c, "(a OR) b", "query: position 4: dangling OR");
    expect_invalid(c, "coffee NOT", "query: position 8: dangling NOT");
    expect_invalid(c, "NOT AND a", "query: position 1: dangling NOT");
    expect_invalid(c, "", "query: position 1: empty query");
    expect_invalid(c, "   ", "query: position 1: empty query");
    expect_invalid(c, "coffee - tea", "query: position 8: '-' without a term");
    expect_invalid(c, "tea -", "query: position 5: '-' without a term");
    expect_invalid(c, "+ tea", "query: position 1: '+' without a term");
    expect_invalid(c, "*", "query: position 1: '*' without a prefix");
    expect_invalid(c, "tea **", "query: position 5: '*' without a prefix");
    expect_invalid(c, "tag:", "query: position 1: filter 'tag:' without a value");
    expect_invalid(c, "coffee route:", "query: position 8: filter 'route:' without a value");
    expect_invalid(c, "tag:\"\"", "without a value");
    expect_invalid(c, "tag:\"x", "query: position 5: unclosed quote");
    expect_invalid(c, "()", "query: position 1: empty parentheses");
    expect_invalid(c, "\"\"", "query: position 1: empty phrase");
    expect_invalid(c, "\"!!\"", "query: position 1: empty phrase");
    /* positions count characters, not bytes */
    expect_invalid(c, "ünï (x", "query: position 5: unclosed parenthesis");
    char deep[200];
    memset(deep, '(', 100);
    strcpy(deep + 100, "a");
    expect_invalid(c, deep, "nested too deeply");

    /* no field callback: filters are invalid */
    mmfs__search_cb cb = {.ud = c};
    mmfs__hit hits[4];
    size_t n;
    assert_int_equal(mmfs__index_search(c->ix, mmfs_str("coffee tag:work"), &cb, 4, hits, &n),
                     MMFS_INVALID);
    assert_non_null(strstr(mmfs_errmsg(NULL), "position 8"));
    /* no callbacks at all: plain queries still work */
    assert_int_equal(mmfs__index_search(c->ix, mmfs_str("coffee"), NULL, 4, hits, &n), MMFS_OK);
    assert_int_equal(n, 3);
    corpus_free(c);
}

static void test_delete(void **state) {
    (void)state;
    corpus *c = corpus_new();
    tiny(c);
    mmfs__index_remove(c->ix, 1);
    mmfs__index_remove(c->ix, 1); /* no-op */
    mmfs__index_remove(c->ix, 99);
    assert_int_equal(mmfs__index_count(c->ix), 3);
    expect(c, "coffee", "2 4");
    expect(c, "-tea", "4");
    expect(c, "\"coffee coffee\"", "");
    /* re-adding a docno replaces it (old postings purged) */
    add(c, 1, "tea tea", NULL);
    assert_int_equal(mmfs__index_count(c->ix), 4);
    expect(c, "coffee", "2 4");
    expect(c, "tea", "1 3 2");
    add(c, 2, "biscuits", NULL); /* live docno re-added */
    expect(c, "tea", "1 3");
    expect(c, "biscuits", "2");
    for (uint32_t d = 1; d <= 4; d++) mmfs__index_remove(c->ix, d);
    assert_int_equal(mmfs__index_count(c->ix), 0);
    expect(c, "tea", "");
    expect(c, "-tea", "");
    corpus_free(c);
}

/* ------------------------------------------------- brute-force compare */

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

#define VOCAB 400

static uint32_t zipf_word(void) {
    double u = (double)(rnd() % 1000000) / 1000000.0;
    return (uint32_t)(u * u * u * VOCAB);
}

typedef struct bf {
    uint32_t docno;
    double score;
} bf;

static int bf_cmp(const void *a, const void *b) {
    const bf *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->docno < y->docno ? 1 : -1;
}

/* Term frequency of word W in document text (words "wN" split by space). */
static uint32_t tf_of(const char *text, uint32_t w) {
    char word[16];
    snprintf(word, sizeof word, "w%u", w);
    size_t wl = strlen(word);
    uint32_t tf = 0;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, " ");
        if (n == wl && memcmp(p, word, n) == 0) tf++;
        p += n;
        while (*p == ' ') p++;
    }
    return tf;
}

static uint32_t len_of(const char *text) {
    uint32_t n = 0;
    for (const char *p = text; *p;) {
        size_t k = strcspn(p, " ");
        n += k > 0;
        p += k;
        while (*p == ' ') p++;
    }
    return n;
}

static void compare(corpus *c, const int *live, const uint32_t *qw, size_t nq, int req_first,
                    size_t k) {
    /* statistics: df counts deleted documents until compaction */
    double N = 0, total = 0;
    double df[8] = {0};
    for (uint32_t d = 0; d < MAXDOC; d++) {
        if (!c->text[d]) continue;
        for (size_t i = 0; i < nq; i++) df[i] += tf_of(c->text[d], qw[i]) > 0;
        if (!live[d]) continue;
        N++;
        total += len_of(c->text[d]);
    }
    double avgdl = total / N;
    bf *all = malloc(MAXDOC * sizeof *all);
    size_t na = 0;
    for (uint32_t d = 0; d < MAXDOC; d++) {
        if (!c->text[d] || !live[d]) continue;
        double dl = len_of(c->text[d]), s = 0;
        int any = 0;
        if (req_first && !tf_of(c->text[d], qw[0])) continue;
        for (size_t i = 0; i < nq; i++) {
            uint32_t tf = tf_of(c->text[d], qw[i]);
            if (!tf) continue;
            any = 1;
            double dfe = df[i] < N ? df[i] : N;
            double w = log(1.0 + (N - dfe + 0.5) / (dfe + 0.5)) * 2.2;
            s += w * tf / (tf + (1.2 * 0.25 + 1.2 * 0.75 / avgdl * dl));
        }
        if (any) all[na++] = (bf){d, s};
    }
    qsort(all, na, sizeof *all, bf_cmp);
    char query[128];
    size_t off = 0;
    for (size_t i = 0; i < nq; i++)
        off += (size_t)snprintf(query + off, sizeof query - off, "%s%sw%u", i ? " " : "",
                                i == 0 && req_first ? "+" : "", qw[i]);
    mmfs__hit hits[16];
    size_t n;
    assert_int_equal(mmfs__index_search(c->ix, mmfs_str(query), cbs(c), k, hits, &n), MMFS_OK);
    size_t want = na < k ? na : k;
    if (n != want) fail_msg("[%s]: %zu hits, want %zu", query, n, want);
    for (size_t i = 0; i < n; i++) {
        if (fabs(hits[i].score - all[i].score) > 1e-9 * (1 + all[i].score))
            fail_msg("[%s] rank %zu: score %.17g (doc %u), want %.17g (doc %u)", query, i,
                     hits[i].score, hits[i].docno, all[i].score, all[i].docno);
        if (hits[i].docno != all[i].docno) {
            /* only a near tie may swap documents */
            int tie = (i > 0 && fabs(all[i - 1].score - all[i].score) < 1e-9) ||
                      (i + 1 < na && fabs(all[i + 1].score - all[i].score) < 1e-9);
            if (!tie)
                fail_msg("[%s] rank %zu: doc %u, want %u", query, i, hits[i].docno, all[i].docno);
        }
    }
    free(all);
}

static void test_brute_force(void **state) {
    (void)state;
    corpus *c = corpus_new();
    static int live[MAXDOC];
    memset(live, 0, sizeof live);
    /* 4000 docs on sparse docnos; every fifth added late (out of order) */
    uint32_t late[1000];
    size_t nlate = 0;
    char text[1024];
    for (uint32_t i = 0; i < 4000; i++) {
        uint32_t d = i * 3 + (i % 2);
        uint32_t len = 3 + rnd() % 40;
        size_t off = 0;
        for (uint32_t j = 0; j < len; j++)
            off += (size_t)snprintf(text + off, sizeof text - off, "%sw%u", j ? " " : "", zipf_word());
        if (i % 5 == 2) {
            c->text[d] = strdup(text);
            late[nlate++] = d;
            continue;
        }
        add(c, d, text, NULL);
        live[d] = 1;
    }
    for (size_t i = nlate; i-- > 0;) { /* newest first: worst order */
        char *t = c->text[late[i]];
        c->text[late[i]] = NULL;
        add(c, late[i], t, NULL);
        free(t);
        live[late[i]] = 1;
    }
    for (int round = 0; round < 2; round++) {
        for (int q = 0; q < 40; q++) {
            uint32_t qw[4];
            size_t nq = 1 + rnd() % 4;
            for (size_t i = 0; i < nq; i++) qw[i] = rnd() % 3 ? zipf_word() : rnd() % VOCAB;
            compare(c, live, qw, nq, 0, 10);
            compare(c, live, qw, nq, 0, 3);
            compare(c, live, qw, nq, 1, 10);
        }
        /* delete a tenth, re-index a few under the same docno */
        for (uint32_t d = 0; d < MAXDOC; d++) {
            if (!live[d]) continue;
            if (rnd() % 10 == 0) {
                mmfs__index_remove(c->ix, d);
                live[d] = 0;
            } else if (rnd() % 50 == 0) {
                snprintf(text, sizeof text, "w%u w%u w%u", zipf_word(), zipf_word(), rnd() % VOCAB);
                add(c, d, text, NULL);
            }
        }
    }
    corpus_free(c);
}

/* Does TEXT (words "wN" split by spaces) hold Q[0..nq) as adjacent words? */
static int has_phrase(const char *text, const uint32_t *q, size_t nq) {
    uint32_t w[128];
    size_t n = 0;
    for (const char *p = text; *p && n < 128;) {
        w[n++] = (uint32_t)strtoul(p + 1, NULL, 10);
        p += strcspn(p, " ");
        while (*p == ' ') p++;
    }
    for (size_t i = 0; i + nq <= n; i++) {
        size_t j = 0;
        while (j < nq && w[i + j] == q[j]) j++;
        if (j == nq) return 1;
    }
    return 0;
}

/* Random phrases against a brute-force scan of the texts, over postings of
** many blocks (seeks jump blocks, so positions restart at skip entries),
** through out-of-order adds, deletes and re-adds. */
static void test_phrase_brute_force(void **state) {
    (void)state;
    corpus *c = corpus_new();
    static int live[MAXDOC];
    memset(live, 0, sizeof live);
    char text[1024];
    const uint32_t nv = 24;
    for (uint32_t i = 0; i < 3000; i++) {
        /* docnos 1 mod 3 in order; every seventh 2 mod 3, below the
        ** last 20 added (an out-of-order add into a closed block) */
        uint32_t d = i >= 20 && i % 7 == 3 ? i * 3 + 2 - 60 : i * 3 + 1, len = 1 + rnd() % 30;
        size_t off = 0;
        for (uint32_t j = 0; j < len; j++) {
            uint32_t w = rnd() % 4 ? (uint32_t)((double)(rnd() % 1000) / 1000.0 * (rnd() % 1000) / 1000.0 * nv) : nv + rnd() % 200;
            off += (size_t)snprintf(text + off, sizeof text - off, "%sw%u", j ? " " : "", w);
        }
        add(c, d, text, NULL);
        live[d] = 1;
    }
    static mmfs__hit hits[MAXDOC];
    static char want[MAXDOC];
    for (int round = 0; round < 3; round++) {
        for (int q = 0; q < 60; q++) {
            uint32_t qw[4];
            size_t nq = 2 + rnd() % 3;
            for (size_t i = 0; i < nq; i++) qw[i] = rnd() % 5 ? rnd() % 6 : rnd() % (nv + 20);
            if (q % 4 == 0) qw[1] = qw[0]; /* a repeated word */
            char query[128];
            size_t off = (size_t)snprintf(query, sizeof query, "\"");
            for (size_t i = 0; i < nq; i++)
                off += (size_t)snprintf(query + off, sizeof query - off, "%sw%u", i ? " " : "", qw[i]);
            snprintf(query + off, sizeof query - off, "\"");
            size_t nwant = 0;
            for (uint32_t d = 0; d < MAXDOC; d++) {
                want[d] = live[d] && c->text[d] && has_phrase(c->text[d], qw, nq);
                nwant += (size_t)want[d];
            }
            size_t n;
            assert_int_equal(mmfs__index_search(c->ix, mmfs_str(query), NULL, MAXDOC, hits, &n), MMFS_OK);
            if (n != nwant) fail_msg("[%s] round %d: %zu hits, want %zu", query, round, n, nwant);
            for (size_t i = 0; i < n; i++)
                if (!want[hits[i].docno]) fail_msg("[%s]: doc %u is no match", query, hits[i].docno);
            /* a small k (pruned by score before positions) gives the same head */
            mmfs__hit top[5];
            size_t nt;
            assert_int_equal(mmfs__index_search(c->ix, mmfs_str(query), NULL, 5, top, &nt), MMFS_OK);
            assert_int_equal(nt, n < 5 ? n : 5);
            for (size_t i = 0; i < nt; i++)
                if (top[i].docno != hits[i].docno || top[i].score != hits[i].score)
                    fail_msg("[%s] k=5, rank %zu: doc %u, want %u", query, i, top[i].docno, hits[i].docno);
        }
        /* delete a tenth, re-add some under their docno with new text */
        for (uint32_t d = 0; d < MAXDOC; d++) {
            if (!live[d]) continue;
            uint32_t r = rnd() % 20;
            if (r < 2) {
                mmfs__index_remove(c->ix, d);
                live[d] = 0;
            } else if (r == 2) {
                snprintf(text, sizeof text, "w%u w%u w%u w%u", rnd() % 6, rnd() % 6, rnd() % 6, rnd() % 6);
                add(c, d, text, NULL);
            }
        }
    }
    corpus_free(c);
}

/* Checks that IX holds TEXT as DOCNO exactly as the tokenizer of CFG,
** stemming every word itself, gives it: each token's term has a posting
** for DOCNO with that token's position, and the length is the count. */
static void check_doc_tokens(mmfs__index *ix, const mmfs__tokcfg *cfg, uint32_t docno, const char *text,
                             size_t len) {
    mmfs__tokz z;
    assert_int_equal(mmfs__tokz_open(&z, cfg), MMFS_OK);
    mmfs__tok tk;
    mmfs__tok_init_z(&tk, &z, text, len);
    uint32_t p = 0, pos[256];
    while (mmfs__tok_next(&tk)) {
        const mmfs__term *t = mmfs__term_find(ix, tk.buf, tk.n);
        if (!t) fail_msg("doc %u token %u [%.*s]: no such term", docno, p, (int)tk.n, (char *)tk.buf);
        mmfs__part part;
        mmfs__term_part(ix, t, 0, &part);
        mmfs__xterm xt = {.df = t->df, .npart = 1, .part = &part};
        mmfs__cur c;
        mmfs__cur_init(&c, &xt);
        if (mmfs__cur_seek(&c, docno) != docno)
            fail_msg("doc %u token %u [%.*s]: no posting", docno, p, (int)tk.n, (char *)tk.buf);
        assert_true(c.tf <= 256);
        mmfs__cur_positions(&c, pos);
        uint32_t i = 0;
        while (i < c.tf && pos[i] != p) i++;
        if (i == c.tf) fail_msg("doc %u token %u [%.*s]: position missing", docno, p, (int)tk.n, (char *)tk.buf);
        p++;
    }
    assert_int_equal(mmfs__doc_len(ix, docno), p);
    mmfs__tokz_close(&z);
}

/* The writer stems each distinct word once (a map of the words it has
** seen to their terms): the index must hold exactly the tokens that
** stemming every word gives, for words seen before, new words, words
** met twice in one text, CJK and cut long words.  MMFS_DEV_SPLIT=FILE (a
** memories.tsv: text in the 5th column) checks that file's texts too. */
static void test_stem_once_identity(void **state) {
    (void)state;
    static const char *texts[] = {
        "She was running; he runs. They ran to the runners' running club",
        "Connections connected connecting: the connection connects",
        "Caf\xc3\xa9s and CAFE\xcc\x81S, generously generous generosity",
        "running running RUNNING Running runs",
        "\xe6\x88\x91\xe5\x96\x9c\xe6\xac\xa2\xe5\x96\x9d\xe7\xbb\xbf\xe8\x8c\xb6 and tea-drinking teas",
        "antidisestablishmentarianismantidisestablishmentarianismantidisestablishmentarianisms",
        "antidisestablishmentarianismantidisestablishmentarianismantidisestablishmentarianism",
        "the organizations organized an organizational reorganization",
        "generously running connections, caf\xc3\xa9s: organizational",
    };
    /* the map serves every tokenizer: words to stem, and tokens that are
    ** their own term (no stemmer, the first tokenizer, CJK) */
    static const mmfs__tokcfg cfgs[] = {{.version = 1, .lang = "english"},
                                        {.version = 1, .lang = "none"},
                                        {.version = 0}};
    mmfs__tokcfg cfg = cfgs[0];
    mmfs__index *ix;
    size_t nt = sizeof texts / sizeof *texts;
    for (size_t c = 0; c < sizeof cfgs / sizeof *cfgs; c++) {
        ix = mmfs__index_new();
        assert_non_null(ix);
        assert_int_equal(mmfs__index_set_tokenizer(ix, cfgs[c].version, cfgs[c].lang), MMFS_OK);
        for (int round = 0; round < 2; round++) /* new words, then known ones */
            for (size_t i = 0; i < nt; i++) {
                uint32_t d = (uint32_t)(round * nt + i);
                assert_int_equal(mmfs__index_add(ix, d, texts[i], strlen(texts[i])), MMFS_OK);
            }
        for (size_t d = 0; d < 2 * nt; d++)
            check_doc_tokens(ix, &cfgs[c], (uint32_t)d, texts[d % nt], strlen(texts[d % nt]));
        if (c == 0) { /* the stem is what queries find: all of a word's forms, one term */
            mmfs__hit hits[16];
            size_t n;
            assert_int_equal(mmfs__index_search(ix, mmfs_str("\"connected connection\""), NULL, 16, hits, &n),
                             MMFS_OK);
            assert_int_equal(n, 2);
        }
        mmfs__index_free(ix);
    }

    const char *dev = getenv("MMFS_DEV_SPLIT");
    if (!dev) return;
    FILE *f = fopen(dev, "r");
    assert_non_null(f);
    ix = mmfs__index_new();
    assert_int_equal(mmfs__index_set_tokenizer(ix, 1, "english"), MMFS_OK);
    char line[8192];
    static char *dtext[20000];
    uint32_t nd = 0;
    while (nd < 20000 && fgets(line, sizeof line, f)) {
        char *t = line;
        for (int col = 0; col < 4 && t; col++) {
            t = strchr(t, '\t');
            if (t) t++;
        }
        if (!t) continue;
        t[strcspn(t, "\n")] = 0;
        dtext[nd] = strdup(t);
        assert_int_equal(mmfs__index_add(ix, nd, dtext[nd], strlen(dtext[nd])), MMFS_OK);
        nd++;
    }
    fclose(f);
    for (uint32_t d = 0; d < nd; d++) {
        check_doc_tokens(ix, &cfg, d, dtext[d], strlen(dtext[d]));
        free(dtext[d]);
    }
    printf("stem once: %u texts of %s hold the same tokens\n", nd, dev);
    mmfs__index_free(ix);
}

/* A quick speed check, reported, not asserted (MMFS_SEARCH_BENCH=n docs).
** Times are thread CPU time, so a busy machine does not skew them. */
static void test_bench(void **state) {
    (void)state;
    const char *env = getenv("MMFS_SEARCH_BENCH");
    if (!env) skip();
    size_t ndocs = strtoul(env, NULL, 10);
    static const char *words[] = {"the", "a", "coffee", "tea", "agent", "memory", "user",
                                  "likes", "morning", "meeting"};
    mmfs__index *ix = mmfs__index_new();
    /* generate first: only indexing is timed */
    size_t cap = ndocs * 400 + 1024, bytes = 0;
    char *all = malloc(cap);
    size_t *ends = malloc(ndocs * sizeof *ends);
    assert_non_null(all);
    assert_non_null(ends);
    for (size_t d = 0; d < ndocs; d++) {
        uint32_t len = 20 + rnd() % 41;
        for (uint32_t j = 0; j < len; j++) {
            uint32_t r = rnd() % 100;
            if (r < 30)
                bytes += (size_t)snprintf(all + bytes, cap - bytes, "%s ", words[rnd() % 10]);
            else
                bytes += (size_t)snprintf(all + bytes, cap - bytes, "w%u ",
                                          (uint32_t)(pow((double)(rnd() % 100000) / 100000.0, 3) * 200000));
        }
        ends[d] = bytes;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (size_t d = 0; d < ndocs; d++) {
        size_t start = d ? ends[d - 1] : 0;
        assert_int_equal(mmfs__index_add(ix, (uint32_t)d, all + start, ends[d] - start), MMFS_OK);
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    free(all);
    free(ends);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    size_t postings = 0, pbytes = 0;
    for (uint32_t i = 0; i < ix->nterms; i++) {
        postings += ix->terms[i].df;
        pbytes += ix->terms[i].post.len;
    }
    printf("bench: %zu docs (%.1f MB text) indexed in %.3f s: %.0f docs/s; %u terms, %zu postings, "
           "%.2f bytes/posting\n",
           ndocs, bytes / 1e6, secs, ndocs / secs, ix->nterms, postings, (double)pbytes / postings);
    static const char *queries[] = {"coffee tea", "agent memory user", "w1 w2", "w100 coffee",
                                    "w5000 w7000 w9", "+coffee morning", "\"morning coffee\"", "w1*"};
    for (size_t q = 0; q < sizeof queries / sizeof *queries; q++) {
        mmfs__hit hits[10];
        size_t n = 0;
        int reps = 20;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        for (int r = 0; r < reps; r++) {
            int rc = mmfs__index_search(ix, mmfs_str(queries[q]), NULL, 10, hits, &n);
            assert_int_equal(rc, MMFS_OK);
        }
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
        secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        printf("bench: top-10 [%s]: %.3f ms (%zu hits)\n", queries[q], secs * 1e3 / reps, n);
    }
    mmfs__index_free(ix);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenizer),
        cmocka_unit_test(test_bm25_order),
        cmocka_unit_test(test_ties_and_k),
        cmocka_unit_test(test_query_forms),
        cmocka_unit_test(test_phrase_positions),
        cmocka_unit_test(test_phrase_positions_v1),
        cmocka_unit_test(test_phrase_brute_force),
        cmocka_unit_test(test_stem_once_identity),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_tokenizer_v1),
        cmocka_unit_test(test_search_v1),
        cmocka_unit_test(test_filters_boolean),
        cmocka_unit_test(test_snippet),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_brute_force),
        cmocka_unit_test(test_bench),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
