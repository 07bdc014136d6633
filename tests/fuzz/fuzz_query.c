/*
** fuzz_query.c: a libFuzzer target for the query language.  Each input is
** a query, run through the public C API only (mmfs_search_memory with and
** without filters, mmfs_search over documents) against a small store made
** once per process: the parser is reached through its one entry point, so
** the target holds whatever the grammar grows into.
**
** Beside "no crash, no hang, no sanitizer report", every answer is checked
** against what memmapfs.h and API.md promise:
** - a query either succeeds or fails with MMFS_INVALID, and the message
**   gives the position of the problem;
** - hits are live (never a deleted memory or an unindexed document), each
**   once, at most the limit, with finite scores best first, and a memory
**   hit carries the text and tags it was appended with;
** - a filtered search returns only memories that pass the filter;
** - wrapping a valid query in parentheses changes nothing.
**
** Built two ways (tests/fuzz/CMakeLists.txt): with clang
** -fsanitize=fuzzer,address,undefined for the bounded libFuzzer run, and
** with replay_main.c and the sanitizers to replay the seed corpus
** (tests/fuzz/query_seeds/) with any compiler.  The store lives under
** $MMFS_FUZZ_DIR, else /dev/shm when writable, else $TMPDIR or /tmp.
*/
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memmapfs.h"

#define LIMIT 8

/* The memories of the store; a NULL text ends the list.  Tags are one
** string, split at spaces.  Varied scripts, compounds, digits, repeats. */
static const struct {
    const char *text, *tags, *route;
} MEMS[] = {
    {"Ann prefers green tea in the morning", "speaker:Ann pref", NULL},
    {"Bob drinks coffee, black, no sugar", "speaker:Bob pref", NULL},
    {"The coffee-maker broke on Tuesday; e.g. the heater", "event", "episodic"},
    {"Café au lait at the café near the station", "pref speaker:Ann", NULL},
    {"Morning coffee and morning tea, every morning", "habit", "episodic"},
    {"Ελληνικά: καφές και τσάι το πρωί", "lang:el", NULL},
    {"Русский текст: кофе и чай утром", "lang:ru", NULL},
    {"東京で朝にお茶を飲む", "lang:ja", NULL},
    {"plan trip to Lisbon in May 2024, budget 1200 EUR", "plan", "work"},
    {"AND OR NOT are words here: and or not", "ops", NULL},
    {"decaf only after 4pm", "pref", NULL},
    {"tag:literal route:literal text with colons: a:b:c", "colon", NULL},
    {"Straße STRASSE strasse İstanbul ıi", "fold", NULL},
    {"repeat repeat repeat repeat repeat", "habit", NULL},
    {"deleted memory about coffee", "gone", NULL},
    {"another deleted one, tea", "gone", "episodic"},
    {"", "empty", NULL},
    {NULL, NULL, NULL},
};

static const char *DOCS[][2] = {
    {"readme", "memmapfs keeps memories and documents in one full-text engine"},
    {"coffee", "coffee beans, grinders and the coffee-maker manual"},
    {"tea", "green tea, black tea, morning tea"},
    {"gone", "this document is unindexed at setup"},
    {"again", "first text, replaced at setup"},
    {"cafe", "café crème"},
    {NULL, NULL},
};

#define NMEM_MAX 32
static mmfs_db *db;
static uint64_t ids[NMEM_MAX]; /* ids[i]: the id of MEMS[i] */
static int deleted[NMEM_MAX];
static size_t nmems;
static char top[4096];

static void die(const char *what) {
    fprintf(stderr, "fuzz_query: %s: %s\n", what, mmfs_errmsg(NULL));
    abort();
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void) {
    if (db) mmfs_close(db);
    db = NULL;
    if (top[0]) nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Splits TAGS at spaces into OUT (slices into TAGS). */
static size_t split_tags(const char *tags, mmfs_slice *out, size_t max) {
    size_t n = 0;
    for (const char *p = tags; *p && n < max;) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        out[n].ptr = p;
        out[n++].len = len;
        p += len + (e ? 1 : 0);
    }
    return n;
}

static void setup(void) {
    const char *base = getenv("MMFS_FUZZ_DIR");
    if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL;
    if (!base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char tmpl[4000], dir[4100];
    snprintf(tmpl, sizeof tmpl, "%s/mmfs-fuzzq-XXXXXX", base);
    if (!mkdtemp(tmpl)) die("mkdtemp");
    snprintf(top, sizeof top, "%s", tmpl);
    atexit(cleanup);
    snprintf(dir, sizeof dir, "%s/store", tmpl);
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_NONE;
    o.segment_size = 1 << 20;
    if (mmfs_open(dir, &o, &db) != MMFS_OK) die("create the store");
    for (nmems = 0; MEMS[nmems].text; nmems++) {
        mmfs_slice tags[8];
        size_t nt = split_tags(MEMS[nmems].tags, tags, 8);
        mmfs_memory_opts mo = {1, 1700000000 + (int64_t)(nmems % 5), mmfs_str(MEMS[nmems].route)};
        if (mmfs_append_memory(db, mmfs_str(MEMS[nmems].text), tags, nt, &mo, &ids[nmems]) != MMFS_OK)
            die("append a memory");
    }
    for (size_t i = 0; i < nmems; i++) {
        if (strcmp(MEMS[i].tags, "gone") != 0) continue;
        int d = 0;
        if (mmfs_delete_memory(db, ids[i], &d) != MMFS_OK || !d) die("delete a memory");
        deleted[i] = 1;
    }
    for (size_t i = 0; DOCS[i][0]; i++)
        if (mmfs_index(db, mmfs_str(DOCS[i][0]), mmfs_str(DOCS[i][1])) != MMFS_OK) die("index a document");
    int d = 0;
    if (mmfs_unindex(db, mmfs_str("gone"), &d) != MMFS_OK || !d) die("unindex a document");
    if (mmfs_index(db, mmfs_str("again"), mmfs_str("second text: morning coffee")) != MMFS_OK)
        die("re-index a document");
}

static void fail(const char *q, size_t n, const char *what) {
    fprintf(stderr, "fuzz_query: %s\nquery (%zu bytes): \"%.*s\"\nlast message: %s\n", what, n,
            (int)(n > 300 ? 300 : n), q, mmfs_errmsg(NULL));
    abort();
}

/* A failed search: INVALID, with the position in the message. */
static void check_failure(int rc, const char *q, size_t n) {
    if (rc != MMFS_INVALID) fail(q, n, "a query failed with another code than INVALID");
    if (!strstr(mmfs_errmsg(NULL), "position")) fail(q, n, "INVALID without the position of the problem");
}

static int has_tag(const mmfs_memory *m, const char *tag) {
    for (size_t i = 0; i < m->ntags; i++)
        if (m->tags[i].len == strlen(tag) && memcmp(m->tags[i].ptr, tag, m->tags[i].len) == 0) return 1;
    return 0;
}

/* The hits of a memory search, against the store as setup made it. */
static void check_memories(const mmfs_memories *l, const mmfs_filter *f, const char *q, size_t n) {
    size_t limit = f && f->limit ? f->limit : 20;
    if (l->count > limit) fail(q, n, "more memory hits than the limit");
    for (size_t i = 0; i < l->count; i++) {
        const mmfs_memory *m = &l->items[i];
        size_t k = 0;
        while (k < nmems && ids[k] != m->id) k++;
        if (k == nmems) fail(q, n, "a hit with an id that was never given");
        if (deleted[k]) fail(q, n, "a deleted memory was found");
        if (m->text.len != strlen(MEMS[k].text) || memcmp(m->text.ptr, MEMS[k].text, m->text.len) != 0)
            fail(q, n, "a hit's text is not its memory's");
        mmfs_slice tags[8];
        if (m->ntags != split_tags(MEMS[k].tags, tags, 8)) fail(q, n, "a hit's tags are not its memory's");
        if (!isfinite(m->score) || m->score < 0) fail(q, n, "a memory score is not a finite number >= 0");
        if (i > 0 && m->score > l->items[i - 1].score) fail(q, n, "memory hits are not best first");
        for (size_t j = 0; j < i; j++)
            if (l->items[j].id == m->id) fail(q, n, "a memory found twice");
        if (f && f->ntags && !has_tag(m, "pref")) fail(q, n, "a hit that the tag filter excludes");
        if (f && f->has_since && m->created_at < f->since) fail(q, n, "a hit that the since filter excludes");
    }
}

static void check_docs(const mmfs_doc_hits *l, const char *q, size_t n) {
    if (l->count > LIMIT) fail(q, n, "more document hits than the limit");
    for (size_t i = 0; i < l->count; i++) {
        mmfs_slice k = l->items[i].key;
        if (k.len == 4 && memcmp(k.ptr, "gone", 4) == 0) fail(q, n, "an unindexed document was found");
        size_t d = 0;
        while (DOCS[d][0] && !(strlen(DOCS[d][0]) == k.len && memcmp(DOCS[d][0], k.ptr, k.len) == 0)) d++;
        if (!DOCS[d][0]) fail(q, n, "a document hit with a key never indexed");
        if (!isfinite(l->items[i].score) || l->items[i].score < 0) fail(q, n, "a document score is not finite");
        if (i > 0 && l->items[i].score > l->items[i - 1].score) fail(q, n, "document hits are not best first");
        for (size_t j = 0; j < i; j++)
            if (l->items[j].key.len == k.len && memcmp(l->items[j].key.ptr, k.ptr, k.len) == 0)
                fail(q, n, "a document found twice");
    }
}

static int same_hits(const mmfs_memories *a, const mmfs_memories *b) {
    if (a->count != b->count) return 0;
    for (size_t i = 0; i < a->count; i++)
        if (a->items[i].id != b->items[i].id || a->items[i].score != b->items[i].score) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!db) setup();
    const char *q = (const char *)data;
    mmfs_slice query = {size ? data : (const uint8_t *)"", size};

    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = LIMIT;
    mmfs_memories *plain = NULL;
    int rc = mmfs_search_memory(db, query, &f, &plain);
    if (rc == MMFS_OK)
        check_memories(plain, &f, q, size);
    else
        check_failure(rc, q, size);

    /* The same query, filtered: a tag and a time bound. */
    mmfs_slice tag = mmfs_str("pref");
    mmfs_filter g = f;
    g.tags = &tag;
    g.ntags = 1;
    g.has_since = 1;
    g.since = 1700000001;
    mmfs_memories *filtered = NULL;
    int rc2 = mmfs_search_memory(db, query, &g, &filtered);
    if (rc2 != rc) fail(q, size, "a filter changed whether the query is valid");
    if (rc2 == MMFS_OK) check_memories(filtered, &g, q, size);
    mmfs_free(filtered);

    /* Parentheses around a valid query change nothing (the count of '('
    ** keeps the wrapped query within any sane nesting bound). */
    size_t opens = 0;
    for (size_t i = 0; i < size; i++) opens += data[i] == '(';
    if (rc == MMFS_OK && opens < 32) {
        uint8_t *w = malloc(size + 2);
        if (!w) die("malloc");
        w[0] = '(';
        if (size) memcpy(w + 1, data, size);
        w[size + 1] = ')';
        mmfs_memories *wrapped = NULL;
        int rc3 = mmfs_search_memory(db, (mmfs_slice){w, size + 2}, &f, &wrapped);
        if (rc3 != MMFS_OK) fail(q, size, "a valid query fails inside parentheses");
        if (!same_hits(plain, wrapped)) fail(q, size, "parentheses around the query changed its hits");
        mmfs_free(wrapped);
        free(w);
    }
    mmfs_free(plain);

    mmfs_doc_hits *docs = NULL;
    rc = mmfs_search(db, query, LIMIT, &docs);
    if (rc == MMFS_OK)
        check_docs(docs, q, size);
    else
        check_failure(rc, q, size);
    mmfs_free(docs);
    return 0;
}
