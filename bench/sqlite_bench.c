/*
** sqlite_bench.c: the SQLite peers (Debian's libsqlite3, FTS5 compiled in).
**
**   sqlite_bench w1   DB MEMFILE COUNT          one INSERT per transaction, FTS5
**   sqlite_bench w1g  DB MEMFILE THREADS PER    the same from THREADS connections
**   sqlite_bench w1p  DB MEMFILE PROCS PER      the same from PROCS processes
**   sqlite_bench w2   DB MEMFILE N LABEL        bulk ingest, 1,000 rows per txn
**   sqlite_bench w3   DB QFILE LABEL [PASSES]   top-10 OR queries: a warm-up pass,
**                                               then PASSES timed ones (default 1)
**   sqlite_bench w4   DB KVFILE N               kv table: N sets (1,000 per txn), N random gets
**   sqlite_bench w5prep DB MEMFILE NMEM KVFILE NKV   the W5 database (not timed)
**   sqlite_bench w5   DB KEY                    open + first kv answer
**
** Every database runs journal_mode=WAL, synchronous=FULL (durable commits,
** as memmapfs's sync="always" / sync()).  The memories table is
** fts5(text, tags UNINDEXED, created_at UNINDEXED, tokenize='unicode61'):
** tags and time are kept like memmapfs keeps them, only the text is indexed.
** FTS5_TOKENIZE=porter in the environment makes it tokenize='porter
** unicode61' (stemmed, as memmapfs's english stores are); its results
** are then reported as system "sqlite-fts5-porter".
*/
#include "benchutil.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECK(db, rc, what)                                                             \
    do {                                                                                \
        if ((rc) != SQLITE_OK && (rc) != SQLITE_DONE && (rc) != SQLITE_ROW)             \
            bu_die("sqlite %s: %s", (what), (db) ? sqlite3_errmsg(db) : sqlite3_errstr(rc)); \
    } while (0)

static void exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) bu_die("sqlite %s: %s", sql, err);
}

static sqlite3 *open_db(const char *path) {
    sqlite3 *db;
    int rc = sqlite3_open(path, &db);
    CHECK(db, rc, path);
    sqlite3_busy_timeout(db, 60000);
    exec(db, "PRAGMA journal_mode=WAL");
    exec(db, "PRAGMA synchronous=FULL");
    return db;
}

static int porter(void) {
    const char *t = getenv("FTS5_TOKENIZE");
    return t && !strcmp(t, "porter");
}

/* The system name results are reported under. */
static const char *sysname(void) { return porter() ? "sqlite-fts5-porter" : "sqlite-fts5"; }

static void create_mem(sqlite3 *db) {
    exec(db, porter() ? "CREATE VIRTUAL TABLE IF NOT EXISTS mem USING fts5(text, tags UNINDEXED, "
                        "created_at UNINDEXED, tokenize='porter unicode61')"
                      : "CREATE VIRTUAL TABLE IF NOT EXISTS mem USING fts5(text, tags UNINDEXED, "
                        "created_at UNINDEXED, tokenize='unicode61')");
}

static void fresh(const char *path) {
    char p[4096];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* Binds a memories.tsv line to INS (text, tags, created_at) and runs it. */
static void insert_line(sqlite3 *db, sqlite3_stmt *ins, char *line) {
    bu_memline m;
    if (bu_parse_memline(line, &m)) bu_die("malformed memories line");
    char tags[64];
    snprintf(tags, sizeof tags, "%.*s%s%.*s", (int)m.tag_len[0], m.tags[0], m.ntags > 1 ? "," : "",
             m.ntags > 1 ? (int)m.tag_len[1] : 0, m.ntags > 1 ? m.tags[1] : "");
    sqlite3_bind_text(ins, 1, m.text, (int)m.text_len, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, tags, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 3, (sqlite3_int64)time(NULL));
    int rc = sqlite3_step(ins);
    CHECK(db, rc, "insert");
    sqlite3_reset(ins);
}

static const char *INS_SQL = "INSERT INTO mem(text, tags, created_at) VALUES(?,?,?)";

static void w1(const char *path, const char *memfile, long count) {
    fresh(path);
    sqlite3 *db = open_db(path);
    create_mem(db);
    size_t n;
    char **lines = bu_load_lines(memfile, (size_t)count, &n);
    if ((long)n < count) bu_die("%s: only %zu lines", memfile, n);
    sqlite3_stmt *ins;
    CHECK(db, sqlite3_prepare_v2(db, INS_SQL, -1, &ins, NULL), "prepare");
    double t0 = bu_now();
    for (size_t i = 0; i < n; i++) insert_line(db, ins, lines[i]); /* autocommit: 1 txn each */
    double dt = bu_now() - t0;
    sqlite3_finalize(ins);
    sqlite3_close(db);
    bu_free_lines(lines, n);
    bu_result("W1", "sqlite-fts5", "appends_per_s", (double)count / dt, "ops/s");
}

struct w1g_arg {
    const char *path;
    char **lines;
    long per;
};

static void *w1g_thread(void *p) {
    struct w1g_arg *a = p;
    sqlite3 *db = open_db(a->path);
    sqlite3_stmt *ins;
    CHECK(db, sqlite3_prepare_v2(db, INS_SQL, -1, &ins, NULL), "prepare");
    for (long i = 0; i < a->per; i++) {
        /* BEGIN IMMEDIATE: take the write lock up front so a busy writer is
        ** waited for (busy_timeout) instead of failing on lock upgrade. */
        exec(db, "BEGIN IMMEDIATE");
        insert_line(db, ins, a->lines[i]);
        exec(db, "COMMIT");
    }
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return NULL;
}

static void w1g(const char *path, const char *memfile, int threads, long per) {
    fresh(path);
    sqlite3 *db = open_db(path);
    create_mem(db);
    size_t n;
    char **lines = bu_load_lines(memfile, (size_t)(threads * per), &n);
    if ((long)n < threads * per) bu_die("%s: only %zu lines", memfile, n);
    pthread_t tid[64];
    struct w1g_arg args[64];
    if (threads > 64) bu_die("too many threads");
    double t0 = bu_now();
    for (int t = 0; t < threads; t++) {
        args[t] = (struct w1g_arg){path, lines + t * per, per};
        pthread_create(&tid[t], NULL, w1g_thread, &args[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    double dt = bu_now() - t0;
    sqlite3_close(db);
    bu_free_lines(lines, n);
    bu_result("W1g", "sqlite-fts5", "appends_per_s", (double)(threads * per) / dt, "ops/s");
}

/* W1p: a connection per process, opened before the clock starts. */
struct w1p_ctx {
    const char *path;
    char **lines;
    long per;
    sqlite3 *db;
    sqlite3_stmt *ins;
};

static void w1p_setup(int i, void *ud) {
    (void)i;
    struct w1p_ctx *c = ud;
    c->db = open_db(c->path);
    CHECK(c->db, sqlite3_prepare_v2(c->db, INS_SQL, -1, &c->ins, NULL), "prepare");
}

static void w1p_work(int i, void *ud) {
    struct w1p_ctx *c = ud;
    char **lines = c->lines + (long)i * c->per;
    for (long k = 0; k < c->per; k++) {
        exec(c->db, "BEGIN IMMEDIATE");
        insert_line(c->db, c->ins, lines[k]);
        exec(c->db, "COMMIT");
    }
    sqlite3_finalize(c->ins);
    sqlite3_close(c->db);
}

static void w1p(const char *path, const char *memfile, int procs, long per) {
    fresh(path);
    sqlite3 *db = open_db(path);
    create_mem(db);
    sqlite3_close(db);
    size_t n;
    char **lines = bu_load_lines(memfile, (size_t)(procs * per), &n);
    if ((long)n < procs * per) bu_die("%s: only %zu lines", memfile, n);
    struct w1p_ctx c = {path, lines, per, NULL, NULL};
    double dt = bu_fork_run(procs, w1p_setup, w1p_work, &c);
    bu_free_lines(lines, n);
    bu_result("W1p", "sqlite-fts5", "appends_per_s", (double)(procs * per) / dt, "ops/s");
}

static void ingest(sqlite3 *db, const char *memfile, long n) {
    sqlite3_stmt *ins;
    CHECK(db, sqlite3_prepare_v2(db, INS_SQL, -1, &ins, NULL), "prepare");
    bu_lines l;
    bu_lines_open(&l, memfile);
    char *line;
    long i = 0;
    exec(db, "BEGIN");
    while (i < n && (line = bu_lines_next(&l, NULL))) {
        insert_line(db, ins, line);
        if (++i % 1000 == 0) {
            exec(db, "COMMIT");
            exec(db, "BEGIN");
        }
    }
    exec(db, "COMMIT");
    bu_lines_close(&l);
    sqlite3_finalize(ins);
    if (i < n) bu_die("%s: only %ld lines", memfile, i);
}

static void w2(const char *path, const char *memfile, long n, const char *label) {
    fresh(path);
    double t0 = bu_now();
    sqlite3 *db = open_db(path);
    create_mem(db);
    ingest(db, memfile, n);
    CHECK(db, sqlite3_close(db), "close");
    double dt = bu_now() - t0;
    char m[64];
    snprintf(m, sizeof m, "ingest_per_s_%s", label);
    bu_result("W2", sysname(), m, (double)n / dt, "memories/s");
    snprintf(m, sizeof m, "disk_bytes_%s", label);
    bu_result("W2", sysname(), m, (double)bu_disk_bytes(path, NULL), "bytes");
    snprintf(m, sizeof m, "peak_rss_%s", label);
    bu_result("W2", sysname(), m, (double)bu_peak_rss(), "bytes");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *SEARCH_SQL =
    "SELECT rowid, text, tags, created_at FROM mem WHERE mem MATCH ? ORDER BY rank LIMIT 10";

static long run_query(sqlite3 *db, sqlite3_stmt *q, const char *query) {
    sqlite3_bind_text(q, 1, query, -1, SQLITE_STATIC);
    long hits = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        (void)sqlite3_column_text(q, 1);
        hits++;
    }
    CHECK(db, rc, query);
    sqlite3_reset(q);
    return hits;
}

/* One warm-up pass, then PASSES timed passes over the queries: each timed
** pass is one run of W3 (p50 and p99 of its 1,000 latencies). */
static void w3(const char *path, const char *qfile, const char *label, int passes) {
    sqlite3 *db = open_db(path);
    size_t n;
    char **lines = bu_load_lines(qfile, 100000, &n);
    char (*qs)[256] = malloc(n * sizeof *qs);
    if (!qs || !n) bu_die("no queries");
    for (size_t i = 0; i < n; i++) bu_or_query(lines[i], qs[i], sizeof qs[i]);
    sqlite3_stmt *q;
    CHECK(db, sqlite3_prepare_v2(db, SEARCH_SQL, -1, &q, NULL), "prepare");
    for (size_t i = 0; i < n; i++) run_query(db, q, qs[i]); /* warm-up pass */
    double *lat = malloc(n * sizeof *lat);
    for (int pass = 0; pass < passes; pass++) {
        long hits = 0;
        for (size_t i = 0; i < n; i++) {
            double t0 = bu_now();
            hits += run_query(db, q, qs[i]);
            lat[i] = (bu_now() - t0) * 1e6;
        }
        qsort(lat, n, sizeof *lat, cmp_double);
        char m[64];
        snprintf(m, sizeof m, "p50_us_%s", label);
        bu_result("W3", sysname(), m, lat[(n - 1) / 2], "us");
        snprintf(m, sizeof m, "p99_us_%s", label);
        bu_result("W3", sysname(), m, lat[(size_t)((double)(n - 1) * 0.99)], "us");
        fprintf(stderr, "sqlite w3: %.2f hits/query\n", (double)hits / (double)n);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    bu_free_lines(lines, n);
    free(qs);
    free(lat);
}

static void create_kv(sqlite3 *db) {
    exec(db, "CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID");
}

static void load_kv(sqlite3 *db, const char *kvfile, long n) {
    sqlite3_stmt *set;
    CHECK(db, sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv(k, v) VALUES(?,?)", -1, &set, NULL),
          "prepare");
    bu_lines l;
    bu_lines_open(&l, kvfile);
    char *line;
    size_t len;
    long i = 0;
    exec(db, "BEGIN");
    while (i < n && (line = bu_lines_next(&l, &len))) {
        char *tab = strchr(line, '\t');
        if (!tab) bu_die("malformed kv line");
        sqlite3_bind_text(set, 1, line, (int)(tab - line), SQLITE_STATIC);
        sqlite3_bind_blob(set, 2, tab + 1, (int)(len - (size_t)(tab + 1 - line)), SQLITE_STATIC);
        CHECK(db, sqlite3_step(set), "set");
        sqlite3_reset(set);
        if (++i % 1000 == 0) {
            exec(db, "COMMIT");
            exec(db, "BEGIN");
        }
    }
    exec(db, "COMMIT");
    bu_lines_close(&l);
    sqlite3_finalize(set);
    if (i < n) bu_die("%s: only %ld lines", kvfile, i);
}

static void w4(const char *path, const char *kvfile, long n) {
    fresh(path);
    char *keys = bu_random_keys((size_t)n, n);
    uint64_t rss0, anon0, rss1, anon1;
    bu_rss(&rss0, &anon0);
    double t0 = bu_now();
    sqlite3 *db = open_db(path);
    create_kv(db);
    load_kv(db, kvfile, n);
    double dt_set = bu_now() - t0;
    sqlite3_stmt *get;
    CHECK(db, sqlite3_prepare_v2(db, "SELECT v FROM kv WHERE k = ?", -1, &get, NULL), "prepare");
    uint64_t sink = 0;
    t0 = bu_now();
    for (long i = 0; i < n; i++) {
        sqlite3_bind_text(get, 1, keys + i * BU_KEYLEN, BU_KEYLEN, SQLITE_STATIC);
        if (sqlite3_step(get) != SQLITE_ROW) bu_die("get: key missing");
        const unsigned char *v = sqlite3_column_blob(get, 0);
        sink += v[0] + (uint64_t)sqlite3_column_bytes(get, 0);
        sqlite3_reset(get);
    }
    double dt_get = bu_now() - t0;
    bu_rss(&rss1, &anon1);
    fprintf(stderr, "sqlite w4 sink %llu\n", (unsigned long long)sink);
    bu_result("W4", "sqlite", "sets_per_s", (double)n / dt_set, "ops/s");
    bu_result("W4", "sqlite", "gets_per_s", (double)n / dt_get, "ops/s");
    bu_result("W4", "sqlite", "rss_per_entry", (double)(rss1 - rss0) / (double)n, "bytes");
    bu_result("W4", "sqlite", "rss_anon_per_entry", (double)(anon1 > anon0 ? anon1 - anon0 : 0) / (double)n,
              "bytes");
    sqlite3_finalize(get);
    sqlite3_close(db);
    free(keys);
}

static void w5prep(const char *path, const char *memfile, long nmem, const char *kvfile, long nkv) {
    fresh(path);
    sqlite3 *db = open_db(path);
    create_mem(db);
    create_kv(db);
    ingest(db, memfile, nmem);
    load_kv(db, kvfile, nkv);
    CHECK(db, sqlite3_close(db), "close");
}

static void w5(const char *path, const char *key) {
    double t0 = bu_now();
    sqlite3 *db;
    CHECK(NULL, sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), path);
    sqlite3_stmt *get;
    CHECK(db, sqlite3_prepare_v2(db, "SELECT v FROM kv WHERE k = ?", -1, &get, NULL), "prepare");
    sqlite3_bind_text(get, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(get) != SQLITE_ROW) bu_die("w5: key %s missing", key);
    double dt = bu_now() - t0;
    sqlite3_finalize(get);
    sqlite3_close(db);
    bu_result("W5", "sqlite", "open_first_get_ms", dt * 1e3, "ms");
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    if (!strcmp(w, "w1") && argc == 5) w1(argv[2], argv[3], atol(argv[4]));
    else if (!strcmp(w, "w1g") && argc == 6) w1g(argv[2], argv[3], atoi(argv[4]), atol(argv[5]));
    else if (!strcmp(w, "w1p") && argc == 6) w1p(argv[2], argv[3], atoi(argv[4]), atol(argv[5]));
    else if (!strcmp(w, "w2") && argc == 6) w2(argv[2], argv[3], atol(argv[4]), argv[5]);
    else if (!strcmp(w, "w3") && (argc == 5 || argc == 6))
        w3(argv[2], argv[3], argv[4], argc == 6 ? atoi(argv[5]) : 1);
    else if (!strcmp(w, "w4") && argc == 5) w4(argv[2], argv[3], atol(argv[4]));
    else if (!strcmp(w, "w5prep") && argc == 7) w5prep(argv[2], argv[3], atol(argv[4]), argv[5], atol(argv[6]));
    else if (!strcmp(w, "w5") && argc == 4) w5(argv[2], argv[3]);
    else {
        fprintf(stderr, "usage: see the comment at the top of sqlite_bench.c\n");
        return 2;
    }
    return 0;
}
