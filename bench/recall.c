/*
** recall.c: W9, retrieval quality on the LoCoMo dev split (WORKLOADS.md),
** memmapfs and SQLite FTS5 (unicode61, porter unicode61) in the same run.
**
**   recall DATA_DIR [--sweep]
**
** DATA_DIR holds memories.tsv and queries.tsv (its README: every dialog
** turn a memory, each conversation its own store, every question's words
** OR-ed).  Every system gets the same query words: the question lower-cased,
** cut into ASCII letter/digit runs (an apostrophe ends a word), one-letter
** words dropped.  Prints result lines (benchutil.h) for recall@5, @10 and
** hit@5, @10 per system, and the slowest memmapfs search in ms.
**
** memmapfs is measured through the public API (a store per conversation,
** search_memory) with the tokenizer a new store gets.  --sweep also ranks
** with other settings through the index directly (same engine, same
** scoring code): k1, b, stemming, the first tokenizer, and whether OR
** queries drop stopwords; those rows are named "memmapfs:<setting>".
*/
#include "benchutil.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memmapfs.h"

#define MAXCONV 16

typedef struct mem {
    int conv;
    char *dia; /* "D1:3" */
    char *text;
} mem;

typedef struct qry {
    int conv;
    char **ev; /* evidence dia ids */
    int nev;
    char words[1024]; /* "w1 w2 ..." */
} qry;

static mem *mems;
static size_t nmem;
static qry *qs;
static size_t nq;

static char *xstrdup(const char *s) {
    char *p = strdup(s);
    if (!p) bu_die("out of memory");
    return p;
}

/* Splits LINE at tabs into F[0..max); returns the count. */
static int split(char *line, char **f, int max) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') {
            *p = 0;
            f[n++] = p + 1;
        }
    return n;
}

/* The query words of QUESTION (see above) into OUT, space-separated. */
static void words(const char *q, char *out, size_t cap) {
    size_t o = 0;
    out[0] = 0;
    for (const char *p = q; *p;) {
        while (*p && !(((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9'))) p++;
        const char *s = p;
        while (((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9')) p++;
        size_t n = (size_t)(p - s);
        if (n >= 2 && o + n + 2 < cap) {
            if (o) out[o++] = ' ';
            for (size_t i = 0; i < n; i++) out[o++] = (char)(s[i] | (s[i] >= 'A' && s[i] <= 'Z' ? 0x20 : 0));
            out[o] = 0;
        }
        if (*p == '\'') { /* an apostrophe ends the word and its tail */
            p++;
            while (((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9')) p++;
        }
    }
}

static void load(const char *dir) {
    char path[4096];
    size_t n;
    snprintf(path, sizeof path, "%s/memories.tsv", dir);
    char **lines = bu_load_lines(path, 1000000, &n);
    mems = calloc(n, sizeof *mems);
    for (size_t i = 0; i < n; i++) {
        char *f[5];
        if (split(lines[i], f, 5) != 5) bu_die("%s: line %zu: 5 fields expected", path, i + 1);
        mems[nmem++] = (mem){atoi(f[0]), xstrdup(f[1]), xstrdup(f[4])};
    }
    bu_free_lines(lines, n);
    snprintf(path, sizeof path, "%s/queries.tsv", dir);
    lines = bu_load_lines(path, 1000000, &n);
    qs = calloc(n, sizeof *qs);
    for (size_t i = 0; i < n; i++) {
        char *f[5];
        if (split(lines[i], f, 5) != 5) bu_die("%s: line %zu: 5 fields expected", path, i + 1);
        qry *q = &qs[nq++];
        q->conv = atoi(f[0]);
        q->ev = calloc(64, sizeof *q->ev);
        for (char *tok = strtok(f[3], ","); tok && q->nev < 64; tok = strtok(NULL, ","))
            q->ev[q->nev++] = xstrdup(tok);
        words(f[4], q->words, sizeof q->words);
    }
    bu_free_lines(lines, n);
}

/* Scores of one system: sums over the questions. */
typedef struct score {
    double r5, r10, h5, h10;
    double max_ms;
} score;

/* Adds question Q's figures for the hits HIT[0..n) (indexes into mems). */
static void tally(score *s, const qry *q, const size_t *hit, size_t n) {
    int f5 = 0, f10 = 0;
    for (int e = 0; e < q->nev; e++)
        for (size_t i = 0; i < n && i < 10; i++)
            if (mems[hit[i]].conv == q->conv && !strcmp(mems[hit[i]].dia, q->ev[e])) {
                f10++;
                if (i < 5) f5++;
                break;
            }
    s->r5 += (double)f5 / q->nev;
    s->r10 += (double)f10 / q->nev;
    s->h5 += f5 > 0;
    s->h10 += f10 > 0;
}

static void report(const char *sys, const score *s) {
    bu_result("W9", sys, "recall@5", s->r5 / (double)nq, "fraction");
    bu_result("W9", sys, "recall@10", s->r10 / (double)nq, "fraction");
    bu_result("W9", sys, "hit@5", s->h5 / (double)nq, "fraction");
    bu_result("W9", sys, "hit@10", s->h10 / (double)nq, "fraction");
    fprintf(stderr, "%-28s recall@5 %.4f recall@10 %.4f hit@5 %.4f hit@10 %.4f\n", sys,
            s->r5 / (double)nq, s->r10 / (double)nq, s->h5 / (double)nq, s->h10 / (double)nq);
}

/* ------------------------------------------------------------- SQLite */

static void fts5(const char *sys, const char *tokenize) {
    score s = {0};
    for (int c = 0; c < MAXCONV; c++) {
        sqlite3 *db;
        char sql[256];
        if (sqlite3_open(":memory:", &db) != SQLITE_OK) bu_die("sqlite3_open");
        snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE t USING fts5(text, tokenize='%s')", tokenize);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) bu_die("%s", sqlite3_errmsg(db));
        sqlite3_stmt *ins, *sel;
        sqlite3_prepare_v2(db, "INSERT INTO t(rowid, text) VALUES (?, ?)", -1, &ins, NULL);
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        int any = 0;
        for (size_t i = 0; i < nmem; i++) {
            if (mems[i].conv != c) continue;
            any = 1;
            sqlite3_bind_int64(ins, 1, (sqlite3_int64)i + 1);
            sqlite3_bind_text(ins, 2, mems[i].text, -1, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE) bu_die("%s", sqlite3_errmsg(db));
            sqlite3_reset(ins);
        }
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (sqlite3_prepare_v2(db, "SELECT rowid FROM t WHERE t MATCH ? ORDER BY rank LIMIT 10", -1,
                               &sel, NULL) != SQLITE_OK)
            bu_die("%s", sqlite3_errmsg(db));
        for (size_t k = 0; any && k < nq; k++) {
            if (qs[k].conv != c) continue;
            char m[4096];
            size_t o = 0;
            m[0] = 0;
            char w[1024];
            strcpy(w, qs[k].words);
            for (char *t = strtok(w, " "); t; t = strtok(NULL, " "))
                o += (size_t)snprintf(m + o, sizeof m - o, "%s\"%s\"", o ? " OR " : "", t);
            size_t hit[10], n = 0;
            if (o) {
                sqlite3_bind_text(sel, 1, m, -1, SQLITE_STATIC);
                while (sqlite3_step(sel) == SQLITE_ROW && n < 10)
                    hit[n++] = (size_t)sqlite3_column_int64(sel, 0) - 1;
                sqlite3_reset(sel);
            }
            tally(&s, &qs[k], hit, n);
        }
        sqlite3_finalize(ins);
        sqlite3_finalize(sel);
        sqlite3_close(db);
    }
    report(sys, &s);
}

/* ----------------------------------------------------------- memmapfs */

/* The OR query of Q's words: "w1" OR "w2" ... */
static void or_query(const qry *q, char *out, size_t cap) {
    char w[1024];
    size_t o = 0;
    out[0] = 0;
    strcpy(w, q->words);
    for (char *t = strtok(w, " "); t; t = strtok(NULL, " "))
        o += (size_t)snprintf(out + o, cap - o, "%s\"%s\"", o ? " OR " : "", t);
}

/* A new directory under $TMPDIR (or /tmp), malloc'd. */
static char *bu_tmpdir(const char *label) {
    const char *t = getenv("TMPDIR");
    char *p = malloc(4096);
    if (!p) bu_die("out of memory");
    snprintf(p, 4096, "%s/mmfs-%s-XXXXXX", t && *t ? t : "/tmp", label);
    if (!mkdtemp(p)) bu_die("mkdtemp %s", p);
    return p;
}

/* Through the public API: a store per conversation, as a user would. */
static void run_api(const char *sys, const char *lang) {
    score s = {0};
    char *dir = bu_tmpdir("recall");
    for (int c = 0; c < MAXCONV; c++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/c%d", dir, c);
        mmfs_options o;
        mmfs_options_init(&o);
        o.sync = MMFS_SYNC_NONE;
        o.language = lang;
        mmfs_db *db = NULL;
        int any = 0;
        for (size_t i = 0; i < nmem; i++) {
            if (mems[i].conv != c) continue;
            if (!db && mmfs_open(path, &o, &db)) bu_die("open: %s", mmfs_errmsg(NULL));
            any = 1;
            mmfs_memory_opts mo = {0};
            mo.has_created_at = 1;
            mo.created_at = (int64_t)i; /* the id order is the memory order */
            uint64_t id;
            if (mmfs_append_memory(db, mmfs_str(mems[i].text), NULL, 0, &mo, &id))
                bu_die("append: %s", mmfs_errmsg(db));
        }
        if (!any) continue;
        size_t base = 0;
        while (mems[base].conv != c) base++;
        for (size_t k = 0; k < nq; k++) {
            if (qs[k].conv != c) continue;
            char m[4096];
            or_query(&qs[k], m, sizeof m);
            mmfs_filter f = {0};
            f.limit = 10;
            mmfs_memories *ms = NULL;
            double t0 = bu_now();
            if (mmfs_search_memory(db, mmfs_str(m), &f, &ms)) bu_die("search: %s", mmfs_errmsg(db));
            double ms_ = (bu_now() - t0) * 1e3;
            if (ms_ > s.max_ms) s.max_ms = ms_;
            size_t hit[10], n = 0;
            for (size_t i = 0; i < ms->count && n < 10; i++) hit[n++] = base + (size_t)ms->items[i].id - 1;
            mmfs_free(ms);
            tally(&s, &qs[k], hit, n);
        }
        mmfs_close(db);
    }
    bu_rmtree(dir);
    free(dir);
    report(sys, &s);
    bu_result("W9", sys, "max_search", s.max_ms, "ms");
}

/* Through the index: tokenizer VERSION/LANG, K1, B, stopwords. */
static void run_index(const char *sys, int version, const char *lang, double k1, double b, int stop) {
    score s = {0};
    for (int c = 0; c < MAXCONV; c++) {
        mmfs__index *ix = mmfs__index_new();
        if (!ix || mmfs__index_set_tokenizer(ix, version, lang)) bu_die("index: %s", mmfs_errmsg(NULL));
        mmfs__index_tune(ix, k1, b, stop); /* after the tokenizer, which sets b */
        size_t base = SIZE_MAX;
        for (size_t i = 0; i < nmem; i++) {
            if (mems[i].conv != c) continue;
            if (base == SIZE_MAX) base = i;
            if (mmfs__index_add(ix, (uint32_t)(i - base + 1), mems[i].text, strlen(mems[i].text)))
                bu_die("add: %s", mmfs_errmsg(NULL));
        }
        for (size_t k = 0; base != SIZE_MAX && k < nq; k++) {
            if (qs[k].conv != c) continue;
            char m[4096];
            or_query(&qs[k], m, sizeof m);
            mmfs__hit h[10];
            size_t n = 0, hit[10];
            if (mmfs__index_search(ix, mmfs_str(m), NULL, 10, h, &n)) bu_die("search: %s", mmfs_errmsg(NULL));
            for (size_t i = 0; i < n; i++) hit[i] = base + h[i].docno - 1;
            tally(&s, &qs[k], hit, n);
        }
        mmfs__index_free(ix);
    }
    report(sys, &s);
}

int main(int argc, char **argv) {
    if (argc < 2) bu_die("usage: recall DATA_DIR [--sweep]");
    load(argv[1]);
    fprintf(stderr, "%zu memories, %zu questions\n", nmem, nq);
    fts5("fts5_unicode61", "unicode61");
    fts5("fts5_porter", "porter unicode61");
    run_api("memmapfs", NULL);
    if (argc > 2 && !strcmp(argv[2], "--sweep")) {
        run_index("memmapfs:v0", 0, NULL, MMFS__K1, MMFS__B_V0, 0);
        run_index("memmapfs:v1,none,b=0.75", 1, "none", MMFS__K1, MMFS__B_V0, 0);
        run_index("memmapfs:v1,english,b=0.75", 1, "english", MMFS__K1, MMFS__B_V0, 0);
        run_index("memmapfs:v1,english,b=0.75+stop", 1, "english", MMFS__K1, MMFS__B_V0, 1);
        run_index("memmapfs:v1,english,b=0.3", 1, "english", MMFS__K1, MMFS__B, 0);
        run_index("memmapfs:v1,none,b=0.3", 1, "none", MMFS__K1, MMFS__B, 1);
        run_index("memmapfs:v1,english,b=0.3+stop", 1, "english", MMFS__K1, MMFS__B, 1);
        static const double k1s[] = {0.6, 0.9, 1.2, 1.5, 2.0}, bs[] = {0.1, 0.3, 0.5, 0.75, 1.0};
        for (int stop = 0; stop < 2; stop++)
            for (int i = 0; i < 5; i++)
                for (int j = 0; j < 5; j++) {
                    char name[64];
                    snprintf(name, sizeof name, "memmapfs:k1=%.1f,b=%.2f%s", k1s[i], bs[j],
                             stop ? "+stop" : "");
                    run_index(name, 1, "english", k1s[i], bs[j], stop);
                }
    }
    return 0;
}
