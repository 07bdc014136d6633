/*
** mmfs_bench.c: the memmapfs rows, through the public C API (memmapfs.h).
**
**   mmfs_bench w1   DIR MEMFILE COUNT         append_memory, sync=always, one thread
**   mmfs_bench w1g  DIR MEMFILE THREADS PER   the same from THREADS threads, one handle
**   mmfs_bench w1p  DIR MEMFILE PROCS PER     the same from PROCS processes, one store
**   mmfs_bench w2   DIR MEMFILE N LABEL       batches of 1,000, sync=batch, then mmfs_sync
**   mmfs_bench w2follow DIR MEMFILE N QFILE  W2's ingest in a forked child while a
**                                             reader opened on the empty store runs a
**                                             W3 query every 10 ms: the reader's
**                                             RssAnon growth once it caught up
**   mmfs_bench w3   DIR QFILE LABEL [PASSES]  top-10 OR queries over the W2 store: a
**                                             warm-up pass, then PASSES timed ones
**   mmfs_bench w4   DIR KVFILE N              N set_kv (1,000 per batch), N random get_kv
**   mmfs_bench w5prep DIR MEMFILE NMEM KVFILE NKV   the W5 store (not timed)
**   mmfs_bench w5   DIR KEY [SYSTEM]          open + first get_kv, and RssAnon after
**   mmfs_bench w5search DIR QUERY QFILE SYSTEM  open + first search, then RssAnon
**                                             after 1,000 W3 queries of QFILE
**   mmfs_bench w5ckpt DIR                     writes a checkpoint (not timed)
**   mmfs_bench w6   DIR MEMFILE N             W2 ingest with no policy, a trivial hook,
**                                             a routing function; N put_session with
**                                             no policy and with routing + a schema:
**                                             CPU time, side by side, batch by batch
**   mmfs_bench w7   DIR BYTES                 a stream in 64 KiB chunks, sync=batch,
**                                             then read back (zero-copy and copying)
**   mmfs_bench w8   DIR MEMFILE NMEM KVFILE NKV   compaction: NMEM memories and NKV
**                                             keys, half the memories deleted, every
**                                             key set twice (not timed); then `cp` of
**                                             a file of the live bytes, and
**                                             mmfs_compact, side by side
**
** Each invocation is a process of its own, so its peak RSS is memmapfs's.
*/
#include "benchutil.h"

#include <malloc.h>
#include <memmapfs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static mmfs_db *g_db;

#define MC(call)                                                                     \
    do {                                                                             \
        int rc_ = (call);                                                            \
        if (rc_ != MMFS_OK)                                                          \
            bu_die("memmapfs %s: %s (%s)", #call, mmfs_errmsg(g_db), mmfs_err_name(rc_)); \
    } while (0)

static mmfs_db *open_store_policy(const char *dir, mmfs_sync_mode sync, int fresh, const char *policy) {
    if (fresh) bu_rmtree(dir);
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = sync;
    if (policy) o.policy = mmfs_str(policy);
    /* a new store's language (what stemming costs: "none" against the default) */
    if (getenv("MMFS_BENCH_LANGUAGE")) o.language = getenv("MMFS_BENCH_LANGUAGE");
    /* a new store's compress ("zstd": memory text with a dictionary) */
    if (getenv("MMFS_BENCH_COMPRESS")) o.compress = getenv("MMFS_BENCH_COMPRESS");
    /* what automatic checkpoints (and their index segments) cost: 0 = off */
    if (getenv("MMFS_BENCH_CHECKPOINT_BYTES"))
        o.checkpoint_bytes = strtoull(getenv("MMFS_BENCH_CHECKPOINT_BYTES"), NULL, 10);
    mmfs_db *db = NULL;
    g_db = NULL;
    MC(mmfs_open(dir, &o, &db));
    g_db = db;
    return db;
}

static mmfs_db *open_store(const char *dir, mmfs_sync_mode sync, int fresh) {
    return open_store_policy(dir, sync, fresh, NULL);
}

static void close_store(mmfs_db *db) {
    MC(mmfs_close(db));
    g_db = NULL;
}

/* A memories.tsv line as the arguments of append_memory. */
typedef struct memargs {
    mmfs_slice text;
    mmfs_slice tags[8];
    size_t ntags;
} memargs;

static void to_args(char *line, memargs *a) {
    bu_memline m;
    if (bu_parse_memline(line, &m)) bu_die("malformed memories line");
    a->text = (mmfs_slice){m.text, m.text_len};
    a->ntags = m.ntags;
    for (size_t i = 0; i < m.ntags; i++) a->tags[i] = (mmfs_slice){m.tags[i], m.tag_len[i]};
}

static void w1(const char *dir, const char *memfile, long count) {
    size_t n;
    char **lines = bu_load_lines(memfile, (size_t)count, &n);
    if ((long)n < count) bu_die("%s: only %zu lines", memfile, n);
    memargs *args = malloc(n * sizeof *args);
    if (!args) bu_die("out of memory");
    for (size_t i = 0; i < n; i++) to_args(lines[i], &args[i]);
    mmfs_db *db = open_store(dir, MMFS_SYNC_ALWAYS, 1);
    double t0 = bu_now();
    for (size_t i = 0; i < n; i++)
        MC(mmfs_append_memory(db, args[i].text, args[i].tags, args[i].ntags, NULL, NULL));
    double dt = bu_now() - t0;
    close_store(db);
    bu_free_lines(lines, n);
    free(args);
    bu_result("W1", "memmapfs-c", "appends_per_s", (double)count / dt, "ops/s");
}

struct w1g_arg {
    mmfs_db *db;
    memargs *args;
    long per;
};

static void *w1g_thread(void *p) {
    struct w1g_arg *a = p;
    for (long i = 0; i < a->per; i++)
        MC(mmfs_append_memory(a->db, a->args[i].text, a->args[i].tags, a->args[i].ntags, NULL, NULL));
    return NULL;
}

static void w1g(const char *dir, const char *memfile, int threads, long per) {
    size_t n;
    char **lines = bu_load_lines(memfile, (size_t)(threads * per), &n);
    if ((long)n < threads * per) bu_die("%s: only %zu lines", memfile, n);
    if (threads > 64) bu_die("too many threads");
    memargs *args = malloc(n * sizeof *args);
    if (!args) bu_die("out of memory");
    for (size_t i = 0; i < n; i++) to_args(lines[i], &args[i]);
    mmfs_db *db = open_store(dir, MMFS_SYNC_ALWAYS, 1);
    pthread_t tid[64];
    struct w1g_arg targ[64];
    double t0 = bu_now();
    for (int t = 0; t < threads; t++) {
        targ[t] = (struct w1g_arg){db, args + t * per, per};
        pthread_create(&tid[t], NULL, w1g_thread, &targ[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    double dt = bu_now() - t0;
    close_store(db);
    bu_free_lines(lines, n);
    free(args);
    bu_result("W1g", "memmapfs-c", "appends_per_s", (double)(threads * per) / dt, "ops/s");
}

/* W1p: PROCS processes, each with its own handle on the same store, PER
** durable appends each; opening is not timed. */
struct w1p_ctx {
    const char *dir;
    memargs *args;
    long per;
    mmfs_db *db; /* the child's own (after fork) */
};

static void w1p_setup(int i, void *ud) {
    (void)i;
    struct w1p_ctx *c = ud;
    c->db = open_store(c->dir, MMFS_SYNC_ALWAYS, 0);
}

static void w1p_work(int i, void *ud) {
    struct w1p_ctx *c = ud;
    memargs *a = c->args + (long)i * c->per;
    for (long k = 0; k < c->per; k++)
        MC(mmfs_append_memory(c->db, a[k].text, a[k].tags, a[k].ntags, NULL, NULL));
    close_store(c->db);
}

static void w1p(const char *dir, const char *memfile, int procs, long per) {
    size_t n;
    char **lines = bu_load_lines(memfile, (size_t)(procs * per), &n);
    if ((long)n < procs * per) bu_die("%s: only %zu lines", memfile, n);
    memargs *args = malloc(n * sizeof *args);
    if (!args) bu_die("out of memory");
    for (size_t i = 0; i < n; i++) to_args(lines[i], &args[i]);
    close_store(open_store(dir, MMFS_SYNC_ALWAYS, 1)); /* create it once */
    struct w1p_ctx c = {dir, args, per, NULL};
    double dt = bu_fork_run(procs, w1p_setup, w1p_work, &c);
    mmfs_db *db = open_store(dir, MMFS_SYNC_BATCH, 0);
    mmfs_store_stats st;
    MC(mmfs_stats(db, &st));
    close_store(db);
    if (st.memories != (uint64_t)(procs * per))
        bu_die("w1p: %llu memories in the store, want %ld", (unsigned long long)st.memories, procs * per);
    bu_free_lines(lines, n);
    free(args);
    bu_result("W1p", "memmapfs-c", "appends_per_s", (double)(procs * per) / dt, "ops/s");
}

/* Appends the first N memories of MEMFILE in batches of 1,000. */
static void ingest(mmfs_db *db, const char *memfile, long n) {
    bu_lines l;
    bu_lines_open(&l, memfile);
    char *line;
    long i = 0;
    mmfs_batch *b = NULL;
    while (i < n && (line = bu_lines_next(&l, NULL))) {
        memargs a;
        to_args(line, &a);
        if (!b) MC(mmfs_batch_begin(db, &b));
        MC(mmfs_batch_append_memory(b, a.text, a.tags, a.ntags, NULL));
        if (++i % 1000 == 0) {
            MC(mmfs_batch_commit(b, NULL, NULL));
            b = NULL;
        }
    }
    if (b) MC(mmfs_batch_commit(b, NULL, NULL));
    bu_lines_close(&l);
    if (i < n) bu_die("%s: only %ld lines", memfile, i);
}

static size_t run_query(mmfs_db *db, const char *q);

static void w2(const char *dir, const char *memfile, long n, const char *label) {
    bu_rmtree(dir);
    double t0 = bu_now();
    mmfs_db *db = open_store(dir, MMFS_SYNC_BATCH, 0);
    ingest(db, memfile, n);
    /* a search: every memory indexed inside the timed part (commits leave
    ** their last index work to the handle's indexer thread) */
    (void)run_query(db, "tea");
    MC(mmfs_sync(db));
    mmfs_store_stats st;
    MC(mmfs_stats(db, &st));
    close_store(db);
    double dt = bu_now() - t0;
    char m[64];
    /* Context for disk_bytes: segments are preallocated (64 MiB each), so
    ** the bytes of frames actually written are reported too. */
    snprintf(m, sizeof m, "log_bytes_%s", label);
    bu_result("W2", "memmapfs-c", m, (double)st.log_bytes, "bytes");
    snprintf(m, sizeof m, "ingest_per_s_%s", label);
    bu_result("W2", "memmapfs-c", m, (double)n / dt, "memories/s");
    snprintf(m, sizeof m, "disk_bytes_%s", label);
    bu_result("W2", "memmapfs-c", m, (double)bu_disk_bytes(dir, NULL), "bytes");
    snprintf(m, sizeof m, "peak_rss_%s", label);
    bu_result("W2", "memmapfs-c", m, (double)bu_peak_rss(), "bytes");
}

static size_t run_query(mmfs_db *db, const char *q);

/* A long-lived reader beside W2's ingest (issue 10: a handle moves to the
** checkpoints the writer makes, so its heap does not grow with what it
** saw).  The writer is a child process (sync=batch, batches of 1,000,
** MMFS_BENCH_CHECKPOINT_BYTES as for w2); the reader is this process. */
static void w2follow(const char *dir, const char *memfile, long n, const char *qfile) {
    bu_rmtree(dir);
    mmfs_db *r = open_store(dir, MMFS_SYNC_BATCH, 0);
    size_t nq;
    char **lines = bu_load_lines(qfile, 1000, &nq);
    char q[256];
    bu_or_query(lines[0], q, sizeof q);
    run_query(r, q); /* the tokenizer and the first allocations, before the baseline */
    uint64_t rss0, anon0, rss1, anon1;
    malloc_trim(0);
    bu_rss(&rss0, &anon0);
    struct mallinfo2 m0 = mallinfo2();
    double t0 = bu_now();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) bu_die("fork failed");
    if (pid == 0) {
        mmfs_db *w = open_store(dir, MMFS_SYNC_BATCH, 0);
        ingest(w, memfile, n);
        MC(mmfs_sync(w));
        close_store(w);
        _exit(0);
    }
    int st = 0;
    size_t i = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        bu_or_query(lines[i++ % nq], q, sizeof q);
        run_query(r, q);
        usleep(10000);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st)) bu_die("w2follow: the writer failed");
    MC(mmfs_refresh(r));
    run_query(r, q);
    double dt = bu_now() - t0;
    malloc_trim(0); /* what malloc keeps but no longer uses is not the reader's */
    bu_rss(&rss1, &anon1);
    struct mallinfo2 m1 = mallinfo2();
    mmfs_store_stats s;
    MC(mmfs_stats(r, &s));
    fprintf(stderr, "memmapfs w2follow: %zu queries in %.1f s; the reader maps checkpoint %llu of lsn %llu\n", i, dt,
            (unsigned long long)s.checkpoint_lsn, (unsigned long long)s.lsn);
    bu_result("W2", "memmapfs-c", "follower_rss_anon_growth_mb", (double)(anon1 - anon0) / 1048576.0, "MiB");
    bu_result("W2", "memmapfs-c", "follower_heap_growth_mb",
              ((double)(m1.uordblks + m1.hblkhd) - (double)(m0.uordblks + m0.hblkhd)) / 1048576.0, "MiB");
    bu_result("W2", "memmapfs-c", "follower_checkpoint_lsn", (double)s.checkpoint_lsn, "lsn");
    bu_free_lines(lines, nq);
    close_store(r);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static size_t run_query(mmfs_db *db, const char *q) {
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 10;
    mmfs_memories *res = NULL;
    MC(mmfs_search_memory(db, mmfs_str(q), &f, &res));
    size_t hits = res->count;
    for (size_t i = 0; i < res->count; i++) (void)*(volatile const char *)res->items[i].text.ptr;
    mmfs_free(res);
    return hits;
}

/* One warm-up pass, then PASSES timed passes over the queries: each timed
** pass is one run of W3 (p50 and p99 of its 1,000 latencies). */
static void w3(const char *dir, const char *qfile, const char *label, int passes) {
    size_t n;
    char **lines = bu_load_lines(qfile, 100000, &n);
    char (*qs)[256] = malloc(n * sizeof *qs);
    if (!qs || !n) bu_die("no queries");
    for (size_t i = 0; i < n; i++) bu_or_query(lines[i], qs[i], sizeof qs[i]);
    mmfs_db *db = open_store(dir, MMFS_SYNC_BATCH, 0);
    for (size_t i = 0; i < n; i++) run_query(db, qs[i]); /* warm-up pass */
    double *lat = malloc(n * sizeof *lat);
    for (int pass = 0; pass < passes; pass++) {
        size_t hits = 0;
        for (size_t i = 0; i < n; i++) {
            double t0 = bu_now();
            hits += run_query(db, qs[i]);
            lat[i] = (bu_now() - t0) * 1e6;
        }
        qsort(lat, n, sizeof *lat, cmp_double);
        char m[64];
        snprintf(m, sizeof m, "p50_us_%s", label);
        bu_result("W3", "memmapfs-c", m, lat[(n - 1) / 2], "us");
        snprintf(m, sizeof m, "p99_us_%s", label);
        bu_result("W3", "memmapfs-c", m, lat[(size_t)((double)(n - 1) * 0.99)], "us");
        fprintf(stderr, "memmapfs w3: %.2f hits/query\n", (double)hits / (double)n);
    }
    close_store(db);
    bu_free_lines(lines, n);
    free(qs);
    free(lat);
}

static void load_kv(mmfs_db *db, const char *kvfile, long n) {
    bu_lines l;
    bu_lines_open(&l, kvfile);
    char *line;
    size_t len;
    long i = 0;
    mmfs_batch *b = NULL;
    while (i < n && (line = bu_lines_next(&l, &len))) {
        char *tab = strchr(line, '\t');
        if (!tab) bu_die("malformed kv line");
        if (!b) MC(mmfs_batch_begin(db, &b));
        MC(mmfs_batch_set_kv(b, (mmfs_slice){line, (size_t)(tab - line)},
                             (mmfs_slice){tab + 1, len - (size_t)(tab + 1 - line)}));
        if (++i % 1000 == 0) {
            MC(mmfs_batch_commit(b, NULL, NULL));
            b = NULL;
        }
    }
    if (b) MC(mmfs_batch_commit(b, NULL, NULL));
    bu_lines_close(&l);
    if (i < n) bu_die("%s: only %ld lines", kvfile, i);
}

static void w4(const char *dir, const char *kvfile, long n) {
    bu_rmtree(dir);
    char *keys = bu_random_keys((size_t)n, n);
    uint64_t rss0, anon0, rss1, anon1;
    bu_rss(&rss0, &anon0);
    double t0 = bu_now();
    mmfs_db *db = open_store(dir, MMFS_SYNC_BATCH, 0);
    load_kv(db, kvfile, n);
    MC(mmfs_sync(db));
    double dt_set = bu_now() - t0;
    uint64_t sink = 0;
    t0 = bu_now();
    for (long i = 0; i < n; i++) {
        mmfs_slice v;
        MC(mmfs_get_kv(db, (mmfs_slice){keys + i * BU_KEYLEN, BU_KEYLEN}, &v));
        sink += ((const unsigned char *)v.ptr)[0] + v.len;
    }
    double dt_get = bu_now() - t0;
    bu_rss(&rss1, &anon1);
    fprintf(stderr, "memmapfs w4 sink %llu\n", (unsigned long long)sink);
    bu_result("W4", "memmapfs-c", "sets_per_s", (double)n / dt_set, "ops/s");
    bu_result("W4", "memmapfs-c", "gets_per_s", (double)n / dt_get, "ops/s");
    bu_result("W4", "memmapfs-c", "rss_per_entry", (double)(rss1 - rss0) / (double)n, "bytes");
    bu_result("W4", "memmapfs-c", "rss_anon_per_entry",
              (double)(anon1 > anon0 ? anon1 - anon0 : 0) / (double)n, "bytes");
    close_store(db);
    free(keys);
}

/* W5 opens a store without a checkpoint and a copy of it with one
** (w5ckpt), so the background checkpointer is off here and in w5 itself:
** it must not write one into the store without. */
static mmfs_db *open_w5(const char *dir, int fresh) {
    if (fresh) bu_rmtree(dir);
    mmfs_options o;
    mmfs_options_init(&o);
    o.checkpoint_bytes = 0;
    mmfs_db *db = NULL;
    g_db = NULL;
    MC(mmfs_open(dir, &o, &db));
    g_db = db;
    return db;
}

static void w5prep(const char *dir, const char *memfile, long nmem, const char *kvfile, long nkv) {
    mmfs_db *db = open_w5(dir, 1);
    ingest(db, memfile, nmem);
    load_kv(db, kvfile, nkv);
    MC(mmfs_sync(db));
    close_store(db);
}

/* Writes a checkpoint of the W5 store (not a W5 figure: its time goes to
** stderr). */
static void w5ckpt(const char *dir) {
    mmfs_db *db = open_w5(dir, 0);
    double t0 = bu_now();
    MC(mmfs_checkpoint(db));
    fprintf(stderr, "memmapfs w5ckpt: checkpoint written in %.1f ms\n", (bu_now() - t0) * 1e3);
    close_store(db);
}

/* W5: open + the first kv get, or open + the first search (QUERY given);
** then the heap (RssAnon) after 1,000 W3 queries from QFILE (with
** QUERY).  SYSTEM names the row: memmapfs-c, or memmapfs-c-ckpt for the
** copy with a checkpoint. */
static void w5(const char *dir, const char *system, const char *key, const char *query, const char *qfile) {
    uint64_t rss0, anon0, rss1, anon1;
    bu_rss(&rss0, &anon0);
    double t0 = bu_now();
    mmfs_db *db = open_w5(dir, 0);
    if (query) {
        run_query(db, query);
    } else {
        mmfs_slice v;
        MC(mmfs_get_kv(db, mmfs_str(key), &v));
    }
    double dt = bu_now() - t0;
    bu_rss(&rss1, &anon1);
    mmfs_store_stats st;
    MC(mmfs_stats(db, &st));
    fprintf(stderr, "memmapfs w5: checkpoint_lsn %llu of lsn %llu\n", (unsigned long long)st.checkpoint_lsn,
            (unsigned long long)st.lsn);
    bu_result("W5", system, query ? "open_first_search_ms" : "open_first_get_ms", dt * 1e3, "ms");
    bu_result("W5", system, query ? "rss_anon_after_open_search_mb" : "rss_anon_after_open_get_mb",
              (double)(anon1 - anon0) / 1048576.0, "MiB");
    if (qfile) {
        size_t n;
        char **lines = bu_load_lines(qfile, 1000, &n);
        char q[256];
        for (size_t i = 0; i < n; i++) {
            bu_or_query(lines[i], q, sizeof q);
            run_query(db, q);
        }
        bu_free_lines(lines, n);
        bu_rss(&rss1, &anon1);
        bu_result("W5", system, "rss_anon_after_1000_w3_mb", (double)(anon1 - anon0) / 1048576.0, "MiB");
    }
    close_store(db);
}

/* W6: the cost a policy adds per command, side by side.  One store per
** variant is open at once, each with its policy, and the same batches of
** 1,000 commands go to every store in turn, the variant that goes first
** rotating from batch to batch.  Each commit (mmfs_batch_begin, the
** commands, mmfs_batch_commit, where the policy runs) is timed in CPU time
** of the calling thread and summed per variant, so a drift of the machine
** hits all variants alike.  Reading and parsing the corpus, building the
** arguments, open, sync and close are not timed. */
static const char *W6_HOOK = "return { hooks = { append_memory = function(cmd, tx) end } }";
static const char *W6_ROUTE =
    "return { route = function(mem) return mem.tags.t01 and \"special\" or \"default\" end,\n"
    "  routes = { default = {}, special = {} } }";
static const char *W6_SCHEMA =
    "return { route = function(mem) return mem.tags.t01 and \"special\" or \"default\" end,\n"
    "  routes = { default = {}, special = {} },\n"
    "  schemas = { session = { id = \"string\", intent_id = \"string\", created_at = \"integer\",\n"
    "    payload = \"string?\", status = { \"open\", \"closed\" } } } }";

#define W6_BATCH 1000

/* One variant: its store under DIR/NAME, opened with POLICY; CPU seconds
** of its commits. */
typedef struct w6_store {
    const char *name;
    const char *policy;
    mmfs_db *db;
    double cpu;
} w6_store;

static void w6_open(const char *dir, w6_store *s, int nv) {
    char path[4096];
    for (int v = 0; v < nv; v++) {
        snprintf(path, sizeof path, "%s/%s", dir, s[v].name);
        s[v].db = open_store_policy(path, MMFS_SYNC_BATCH, 1, s[v].policy);
        s[v].cpu = 0;
    }
}

/* Syncs and closes every store (not timed), checking that each holds
** N memories (SESSIONS 0) or N sessions (SESSIONS 1). */
static void w6_close(w6_store *s, int nv, long n, int sessions) {
    for (int v = 0; v < nv; v++) {
        mmfs_store_stats st;
        g_db = s[v].db;
        MC(mmfs_sync(s[v].db));
        MC(mmfs_stats(s[v].db, &st));
        close_store(s[v].db);
        uint64_t got = sessions ? st.sessions : st.memories;
        if (got != (uint64_t)n)
            bu_die("w6 %s: %llu %s stored, want %ld", s[v].name, (unsigned long long)got,
                   sessions ? "sessions" : "memories", n);
    }
}

/* N memories of MEMFILE, batch by batch, into the stores none, hook and
** route; CPU[v] gets each one's seconds. */
static void w6_memories(const char *dir, const char *memfile, long n, double cpu[3]) {
    w6_store s[3] = {{"none", NULL, NULL, 0}, {"hook", W6_HOOK, NULL, 0}, {"route", W6_ROUTE, NULL, 0}};
    w6_open(dir, s, 3);
    char **lines = malloc(W6_BATCH * sizeof *lines);
    memargs *args = malloc(W6_BATCH * sizeof *args);
    if (!lines || !args) bu_die("out of memory");
    bu_lines l;
    bu_lines_open(&l, memfile);
    long done = 0;
    for (long k = 0; done < n; k++) {
        size_t m = 0, len;
        char *line;
        while (m < W6_BATCH && done + (long)m < n && (line = bu_lines_next(&l, &len))) {
            lines[m] = malloc(len + 1);
            if (!lines[m]) bu_die("out of memory");
            memcpy(lines[m], line, len + 1);
            to_args(lines[m], &args[m]);
            m++;
        }
        if (!m) bu_die("%s: only %ld lines", memfile, done);
        for (int j = 0; j < 3; j++) {
            w6_store *st = &s[(k + j) % 3];
            mmfs_batch *b = NULL;
            g_db = st->db;
            double t0 = bu_cpu_now();
            MC(mmfs_batch_begin(st->db, &b));
            for (size_t i = 0; i < m; i++)
                MC(mmfs_batch_append_memory(b, args[i].text, args[i].tags, args[i].ntags, NULL));
            MC(mmfs_batch_commit(b, NULL, NULL));
            st->cpu += bu_cpu_now() - t0;
        }
        for (size_t i = 0; i < m; i++) free(lines[i]);
        done += (long)m;
    }
    bu_lines_close(&l);
    free(lines);
    free(args);
    w6_close(s, 3, n, 0);
    for (int v = 0; v < 3; v++) cpu[v] = s[v].cpu;
}

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* One put_session's arguments and the bytes they point into. */
typedef struct w6_sess {
    mmfs_session ss;
    char id[32], intent[32], payload[64];
} w6_sess;

/* N sessions (id, intent_id, created_at, payload and a status field: 5
** fields), batch by batch, into the stores none and schema (routing + a
** session schema); CPU[v] gets each one's seconds. */
static void w6_sessions(const char *dir, long n, double cpu[2]) {
    unsigned char fields[32];
    size_t fl = 0;
    fields[fl++] = 'T';
    put32(fields + fl, 1), fl += 4;
    fields[fl++] = 's';
    put32(fields + fl, 6), fl += 4;
    memcpy(fields + fl, "status", 6), fl += 6;
    fields[fl++] = 's';
    put32(fields + fl, 4), fl += 4;
    memcpy(fields + fl, "open", 4), fl += 4;
    w6_store s[2] = {{"snone", NULL, NULL, 0}, {"sschema", W6_SCHEMA, NULL, 0}};
    w6_open(dir, s, 2);
    w6_sess *a = malloc(W6_BATCH * sizeof *a);
    if (!a) bu_die("out of memory");
    long done = 0;
    for (long k = 0; done < n; k++) {
        size_t m = (size_t)(n - done < W6_BATCH ? n - done : W6_BATCH);
        for (size_t j = 0; j < m; j++) {
            long i = done + (long)j;
            w6_sess *e = &a[j];
            memset(&e->ss, 0, sizeof e->ss);
            int il = snprintf(e->id, sizeof e->id, "s%08ld", i);
            int nl = snprintf(e->intent, sizeof e->intent, "intent-%ld", i % 16);
            int pl = snprintf(e->payload, sizeof e->payload, "{\"step\":%ld,\"note\":\"bench\"}", i);
            e->ss.id = (mmfs_slice){e->id, (size_t)il};
            e->ss.has_intent = 1;
            e->ss.intent_id = (mmfs_slice){e->intent, (size_t)nl};
            e->ss.has_created_at = 1;
            e->ss.created_at = 1700000000 + i;
            e->ss.has_payload = 1;
            e->ss.payload = (mmfs_slice){e->payload, (size_t)pl};
            e->ss.fields = (mmfs_slice){fields, fl};
        }
        for (int j = 0; j < 2; j++) {
            w6_store *st = &s[(k + j) % 2];
            mmfs_batch *b = NULL;
            g_db = st->db;
            double t0 = bu_cpu_now();
            MC(mmfs_batch_begin(st->db, &b));
            for (size_t i = 0; i < m; i++) MC(mmfs_batch_put_session(b, &a[i].ss));
            MC(mmfs_batch_commit(b, NULL, NULL));
            st->cpu += bu_cpu_now() - t0;
        }
        done += (long)m;
    }
    free(a);
    w6_close(s, 2, n, 1);
    for (int v = 0; v < 2; v++) cpu[v] = s[v].cpu;
}

static void w6(const char *dir, const char *memfile, long n) {
    double mem[3], ses[2];
    bu_rmtree(dir);
    w6_memories(dir, memfile, n, mem);
    w6_sessions(dir, n, ses);
    bu_rmtree(dir);
    double none = mem[0], hook = mem[1], route = mem[2], snone = ses[0], sschema = ses[1];
    double us = 1e6 / (double)n;
    bu_result("W6", "memmapfs-c", "us_per_append_no_policy", none * us, "us");
    bu_result("W6", "memmapfs-c", "us_per_append_hook", hook * us, "us");
    bu_result("W6", "memmapfs-c", "us_per_append_route", route * us, "us");
    bu_result("W6", "memmapfs-c", "us_per_put_session_no_policy", snone * us, "us");
    bu_result("W6", "memmapfs-c", "us_per_put_session_route_schema", sschema * us, "us");
    bu_result("W6", "memmapfs-c", "added_us_hook", (hook - none) * us, "us");
    bu_result("W6", "memmapfs-c", "added_us_route", (route - none) * us, "us");
    bu_result("W6", "memmapfs-c", "added_us_route_schema", (sschema - snone) * us, "us");
}

#define CHUNK (64 * 1024)

static void w7(const char *dir, uint64_t bytes) {
    static unsigned char chunk[CHUNK];
    uint64_t seed = 7;
    for (size_t i = 0; i < CHUNK; i += 8) {
        uint64_t r = bu_rand(&seed);
        memcpy(chunk + i, &r, 8);
    }
    mmfs_slice key = mmfs_str("w7");
    mmfs_db *db = open_store(dir, MMFS_SYNC_BATCH, 1);
    double t0 = bu_now();
    for (uint64_t off = 0; off < bytes; off += CHUNK) {
        chunk[0] = (unsigned char)(off >> 16); /* chunks differ */
        size_t n = bytes - off < CHUNK ? (size_t)(bytes - off) : CHUNK;
        MC(mmfs_append_stream(db, key, (mmfs_slice){chunk, n}));
    }
    MC(mmfs_sync(db));
    double dt = bu_now() - t0;
    close_store(db);
    bu_result("W7", "memmapfs-c", "write_gb_per_s", (double)bytes / dt / 1e9, "GB/s");

    /* Zero-copy: peek at each chunk where it lies in the mapped log. */
    db = open_store(dir, MMFS_SYNC_BATCH, 0);
    mmfs_reader *r;
    uint64_t sink = 0, got = 0;
    t0 = bu_now();
    MC(mmfs_open_read(db, key, &r));
    for (;;) {
        mmfs_slice c;
        MC(mmfs_reader_peek(r, &c));
        if (!c.len) break;
        sink += bu_consume(c.ptr, c.len);
        got += c.len;
        MC(mmfs_reader_skip(r, c.len));
    }
    mmfs_reader_close(r);
    dt = bu_now() - t0;
    close_store(db);
    if (got != bytes) bu_die("w7: read %llu of %llu bytes", (unsigned long long)got, (unsigned long long)bytes);
    bu_result("W7", "memmapfs-c", "read_gb_per_s", (double)bytes / dt / 1e9, "GB/s");

    /* Copying: mmfs_reader_read into a 64 KiB buffer. */
    db = open_store(dir, MMFS_SYNC_BATCH, 0);
    got = 0;
    t0 = bu_now();
    MC(mmfs_open_read(db, key, &r));
    for (;;) {
        size_t n;
        MC(mmfs_reader_read(r, chunk, CHUNK, &n));
        if (!n) break;
        sink += bu_consume(chunk, n);
        got += n;
    }
    mmfs_reader_close(r);
    dt = bu_now() - t0;
    close_store(db);
    if (got != bytes) bu_die("w7: read %llu of %llu bytes", (unsigned long long)got, (unsigned long long)bytes);
    fprintf(stderr, "memmapfs w7 sink %llu\n", (unsigned long long)sink);
    bu_result("W7", "memmapfs-c", "read_copy_gb_per_s", (double)bytes / dt / 1e9, "GB/s");
}

/* Prints the disk bytes of DIR's log/, index/ and ckpt/ (WHEN: before,
** after), so W8 says where the bytes a compaction leaves are. */
static void w8_dirs(const char *dir, const char *when) {
    static const char *sub[] = {"log", "index", "ckpt"};
    for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, sub[i]);
        uint64_t apparent = 0, used = bu_disk_bytes(p, &apparent);
        fprintf(stderr, "memmapfs w8: %s %s/: %.1f MB on disk, %.1f MB apparent\n", when, sub[i], used / 1e6,
                apparent / 1e6);
    }
}

/* W8: compaction against a copy of the live bytes on the same file
** system.  The store is built (not timed), closed and reopened; a file of
** live_bytes bytes (the start of the log's first segment and on, so real
** data) is copied with cp and then fsynced, since compaction syncs its
** output too; then mmfs_compact runs.  Both are timed wall-clock. */
static void w8(const char *dir, const char *memfile, long nmem, const char *kvfile, long nkv) {
    mmfs_db *db = open_store(dir, MMFS_SYNC_BATCH, 1);
    ingest(db, memfile, nmem);
    load_kv(db, kvfile, nkv);
    load_kv(db, kvfile, nkv); /* every key overwritten once */
    mmfs_batch *b = NULL;
    for (long id = 1; id <= nmem; id += 2) {
        if (!b) MC(mmfs_batch_begin(db, &b));
        MC(mmfs_batch_delete_memory(b, (uint64_t)id));
        if ((id / 2 + 1) % 1000 == 0) {
            MC(mmfs_batch_commit(b, NULL, NULL));
            b = NULL;
        }
    }
    if (b) MC(mmfs_batch_commit(b, NULL, NULL));
    MC(mmfs_sync(db));
    close_store(db);
    db = open_store(dir, MMFS_SYNC_BATCH, 0);
    mmfs_store_stats st;
    MC(mmfs_stats(db, &st));
    uint64_t disk0 = bu_disk_bytes(dir, NULL);
    w8_dirs(dir, "before");

    /* The copy: live_bytes of log data into a file, then cp + fsync. */
    char src[4096], dst[4200], cmd[13000];
    snprintf(src, sizeof src, "%s.live", dir);
    snprintf(dst, sizeof dst, "%s.copy", dir);
    FILE *out = fopen(src, "wb");
    if (!out) bu_die("w8: cannot create %s", src);
    uint64_t left = st.live_bytes;
    for (unsigned seg = 1; left; seg++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/log/%08u.seg", dir, seg);
        FILE *in = fopen(p, "rb");
        if (!in) break;
        char buf[1 << 16];
        size_t n;
        while (left && (n = fread(buf, 1, sizeof buf < left ? sizeof buf : (size_t)left, in)) > 0) {
            fwrite(buf, 1, n, out);
            left -= n;
        }
        fclose(in);
    }
    fclose(out);
    if (left) bu_die("w8: the log holds fewer bytes than live_bytes");
    unlink(dst);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s' && sync -f '%s'", src, dst, dst);
    double t0 = bu_now();
    if (system(cmd) != 0) bu_die("w8: %s failed", cmd);
    double dt_cp = bu_now() - t0;
    unlink(src);
    unlink(dst);

    mmfs_compact_result r;
    t0 = bu_now();
    MC(mmfs_compact(db, NULL, &r));
    double dt = bu_now() - t0;
    close_store(db);
    uint64_t disk1 = bu_disk_bytes(dir, NULL);
    w8_dirs(dir, "after");
    double mb = (double)st.live_bytes / 1e6;
    fprintf(stderr, "memmapfs w8: %llu records kept, %llu dropped\n", (unsigned long long)r.kept,
            (unsigned long long)r.dropped);
    bu_result("W8", "memmapfs-c", "log_bytes_before", (double)r.bytes_before, "bytes");
    bu_result("W8", "memmapfs-c", "log_bytes_after", (double)r.bytes_after, "bytes");
    bu_result("W8", "memmapfs-c", "disk_bytes_before", (double)disk0, "bytes");
    bu_result("W8", "memmapfs-c", "disk_bytes_after", (double)disk1, "bytes");
    bu_result("W8", "memmapfs-c", "compact_mb_per_s", mb / dt, "MB/s");
    bu_result("W8", "cp", "copy_mb_per_s", mb / dt_cp, "MB/s");
    bu_result("W8", "memmapfs-c", "ratio_to_cp", dt_cp / dt, "x");
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    if (!strcmp(w, "w1") && argc == 5) w1(argv[2], argv[3], atol(argv[4]));
    else if (!strcmp(w, "w1g") && argc == 6) w1g(argv[2], argv[3], atoi(argv[4]), atol(argv[5]));
    else if (!strcmp(w, "w1p") && argc == 6) w1p(argv[2], argv[3], atoi(argv[4]), atol(argv[5]));
    else if (!strcmp(w, "w6") && argc == 5) w6(argv[2], argv[3], atol(argv[4]));
    else if (!strcmp(w, "w2") && argc == 6) w2(argv[2], argv[3], atol(argv[4]), argv[5]);
    else if (!strcmp(w, "w2follow") && argc == 6) w2follow(argv[2], argv[3], atol(argv[4]), argv[5]);
    else if (!strcmp(w, "w3") && (argc == 5 || argc == 6))
        w3(argv[2], argv[3], argv[4], argc == 6 ? atoi(argv[5]) : 1);
    else if (!strcmp(w, "w4") && argc == 5) w4(argv[2], argv[3], atol(argv[4]));
    else if (!strcmp(w, "w5prep") && argc == 7) w5prep(argv[2], argv[3], atol(argv[4]), argv[5], atol(argv[6]));
    else if (!strcmp(w, "w5") && argc == 4) w5(argv[2], "memmapfs-c", argv[3], NULL, NULL);
    else if (!strcmp(w, "w5") && argc == 5) w5(argv[2], argv[4], argv[3], NULL, NULL);
    else if (!strcmp(w, "w5search") && argc == 6) w5(argv[2], argv[5], NULL, argv[3], argv[4]);
    else if (!strcmp(w, "w5ckpt") && argc == 3) w5ckpt(argv[2]);
    else if (!strcmp(w, "w7") && argc == 4) w7(argv[2], strtoull(argv[3], NULL, 10));
    else if (!strcmp(w, "w8") && argc == 7) w8(argv[2], argv[3], atol(argv[4]), argv[5], atol(argv[6]));
    else {
        fprintf(stderr, "usage: see the comment at the top of mmfs_bench.c\n");
        return 2;
    }
    return 0;
}
