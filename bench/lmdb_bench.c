/*
** lmdb_bench.c: the LMDB peer (Debian's liblmdb), default flags (a durable
** sync at every commit), one environment directory per store.
**
**   lmdb_bench w1   DIR MEMFILE COUNT         mdb_put of one memory per transaction
**   lmdb_bench w1g  DIR MEMFILE THREADS PER   the same from THREADS threads, own txns
**   lmdb_bench w1p  DIR MEMFILE PROCS PER     the same from PROCS processes, an env each
**   lmdb_bench w4   DIR KVFILE N              N sets (1,000 per txn), N random gets
**   lmdb_bench w5prep DIR MEMFILE NMEM KVFILE NKV   the W5 environment (not timed)
**   lmdb_bench w5   DIR KEY                   env open + first get
**
** Memories are stored as id (8 bytes, big-endian) -> the corpus line, in
** the database "mem"; kv pairs in "kv".  LMDB has no full-text index: it is
** the peer for durable puts and point reads only.
*/
#include "benchutil.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHECK(rc, what)                                                 \
    do {                                                                \
        int rc_ = (rc);                                                 \
        if (rc_) bu_die("lmdb %s: %s", (what), mdb_strerror(rc_));      \
    } while (0)

static MDB_env *open_env(const char *dir, int fresh) {
    if (fresh) bu_rmtree(dir);
    mkdir(dir, 0755);
    MDB_env *env;
    CHECK(mdb_env_create(&env), "env_create");
    CHECK(mdb_env_set_mapsize(env, (size_t)32 << 30), "set_mapsize");
    CHECK(mdb_env_set_maxdbs(env, 4), "set_maxdbs");
    CHECK(mdb_env_open(env, dir, 0, 0644), dir);
    return env;
}

static MDB_dbi open_dbi(MDB_env *env, const char *name) {
    MDB_txn *txn;
    MDB_dbi dbi;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn), "txn_begin");
    CHECK(mdb_dbi_open(txn, name, MDB_CREATE, &dbi), "dbi_open");
    CHECK(mdb_txn_commit(txn), "commit");
    return dbi;
}

static void id_key(uint64_t id, unsigned char k[8]) {
    for (int i = 7; i >= 0; i--, id >>= 8) k[i] = (unsigned char)id;
}

static void put_one(MDB_env *env, MDB_dbi dbi, uint64_t id, const char *line) {
    unsigned char kb[8];
    id_key(id, kb);
    MDB_val k = {8, kb}, v = {strlen(line), (void *)line};
    MDB_txn *txn;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn), "txn_begin");
    CHECK(mdb_put(txn, dbi, &k, &v, 0), "put");
    CHECK(mdb_txn_commit(txn), "commit");
}

static void w1(const char *dir, const char *memfile, long count) {
    MDB_env *env = open_env(dir, 1);
    MDB_dbi dbi = open_dbi(env, "mem");
    size_t n;
    char **lines = bu_load_lines(memfile, (size_t)count, &n);
    if ((long)n < count) bu_die("%s: only %zu lines", memfile, n);
    double t0 = bu_now();
    for (size_t i = 0; i < n; i++) put_one(env, dbi, i + 1, lines[i]);
    double dt = bu_now() - t0;
    mdb_env_close(env);
    bu_free_lines(lines, n);
    bu_result("W1", "lmdb", "appends_per_s", (double)count / dt, "ops/s");
}

/* W1p: each process opens the environment itself (after fork, as LMDB
** requires), before the clock starts. */
struct w1p_ctx {
    const char *dir;
    char **lines;
    long per;
    MDB_env *env;
    MDB_dbi dbi;
};

static void w1p_setup(int i, void *ud) {
    (void)i;
    struct w1p_ctx *c = ud;
    c->env = open_env(c->dir, 0);
    c->dbi = open_dbi(c->env, "mem");
}

static void w1p_work(int i, void *ud) {
    struct w1p_ctx *c = ud;
    long base = (long)i * c->per;
    for (long k = 0; k < c->per; k++) put_one(c->env, c->dbi, (uint64_t)(base + k + 1), c->lines[base + k]);
    mdb_env_close(c->env);
}

static void w1p(const char *dir, const char *memfile, int procs, long per) {
    MDB_env *env = open_env(dir, 1);
    open_dbi(env, "mem");
    mdb_env_close(env);
    size_t n;
    char **lines = bu_load_lines(memfile, (size_t)(procs * per), &n);
    if ((long)n < procs * per) bu_die("%s: only %zu lines", memfile, n);
    struct w1p_ctx c = {dir, lines, per, NULL, 0};
    double dt = bu_fork_run(procs, w1p_setup, w1p_work, &c);
    bu_free_lines(lines, n);
    bu_result("W1p", "lmdb", "appends_per_s", (double)(procs * per) / dt, "ops/s");
}

struct w1g_arg {
    MDB_env *env;
    MDB_dbi dbi;
    char **lines;
    long per, base;
};

static void *w1g_thread(void *p) {
    struct w1g_arg *a = p;
    for (long i = 0; i < a->per; i++) put_one(a->env, a->dbi, (uint64_t)(a->base + i + 1), a->lines[i]);
    return NULL;
}

static void w1g(const char *dir, const char *memfile, int threads, long per) {
    MDB_env *env = open_env(dir, 1);
    MDB_dbi dbi = open_dbi(env, "mem");
    size_t n;
    char **lines = bu_load_lines(memfile, (size_t)(threads * per), &n);
    if ((long)n < threads * per) bu_die("%s: only %zu lines", memfile, n);
    if (threads > 64) bu_die("too many threads");
    pthread_t tid[64];
    struct w1g_arg args[64];
    double t0 = bu_now();
    for (int t = 0; t < threads; t++) {
        args[t] = (struct w1g_arg){env, dbi, lines + t * per, per, t * per};
        pthread_create(&tid[t], NULL, w1g_thread, &args[t]);
    }
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    double dt = bu_now() - t0;
    mdb_env_close(env);
    bu_free_lines(lines, n);
    bu_result("W1g", "lmdb", "appends_per_s", (double)(threads * per) / dt, "ops/s");
}

static void load_kv(MDB_env *env, MDB_dbi dbi, const char *kvfile, long n) {
    bu_lines l;
    bu_lines_open(&l, kvfile);
    char *line;
    size_t len;
    long i = 0;
    MDB_txn *txn;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn), "txn_begin");
    while (i < n && (line = bu_lines_next(&l, &len))) {
        char *tab = strchr(line, '\t');
        if (!tab) bu_die("malformed kv line");
        MDB_val k = {(size_t)(tab - line), line};
        MDB_val v = {len - (size_t)(tab + 1 - line), tab + 1};
        CHECK(mdb_put(txn, dbi, &k, &v, 0), "put");
        if (++i % 1000 == 0) {
            CHECK(mdb_txn_commit(txn), "commit");
            CHECK(mdb_txn_begin(env, NULL, 0, &txn), "txn_begin");
        }
    }
    CHECK(mdb_txn_commit(txn), "commit");
    bu_lines_close(&l);
    if (i < n) bu_die("%s: only %ld lines", kvfile, i);
}

static void w4(const char *dir, const char *kvfile, long n) {
    char *keys = bu_random_keys((size_t)n, n);
    uint64_t rss0, anon0, rss1, anon1;
    bu_rss(&rss0, &anon0);
    double t0 = bu_now();
    MDB_env *env = open_env(dir, 1);
    MDB_dbi dbi = open_dbi(env, "kv");
    load_kv(env, dbi, kvfile, n);
    double dt_set = bu_now() - t0;
    MDB_txn *txn;
    uint64_t sink = 0;
    t0 = bu_now();
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "txn_begin");
    for (long i = 0; i < n; i++) {
        MDB_val k = {BU_KEYLEN, keys + i * BU_KEYLEN}, v;
        CHECK(mdb_get(txn, dbi, &k, &v), "get");
        sink += ((unsigned char *)v.mv_data)[0] + v.mv_size;
    }
    mdb_txn_abort(txn);
    double dt_get = bu_now() - t0;
    bu_rss(&rss1, &anon1);
    fprintf(stderr, "lmdb w4 sink %llu\n", (unsigned long long)sink);
    bu_result("W4", "lmdb", "sets_per_s", (double)n / dt_set, "ops/s");
    bu_result("W4", "lmdb", "gets_per_s", (double)n / dt_get, "ops/s");
    bu_result("W4", "lmdb", "rss_per_entry", (double)(rss1 - rss0) / (double)n, "bytes");
    bu_result("W4", "lmdb", "rss_anon_per_entry", (double)(anon1 > anon0 ? anon1 - anon0 : 0) / (double)n,
              "bytes");
    mdb_env_close(env);
    free(keys);
}

static void w5prep(const char *dir, const char *memfile, long nmem, const char *kvfile, long nkv) {
    MDB_env *env = open_env(dir, 1);
    MDB_dbi mem = open_dbi(env, "mem"), kv = open_dbi(env, "kv");
    bu_lines l;
    bu_lines_open(&l, memfile);
    char *line;
    long i = 0;
    MDB_txn *txn;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn), "txn_begin");
    while (i < nmem && (line = bu_lines_next(&l, NULL))) {
        unsigned char kb[8];
        id_key((uint64_t)++i, kb);
        MDB_val k = {8, kb}, v = {strlen(line), line};
        CHECK(mdb_put(txn, mem, &k, &v, 0), "put");
    }
    CHECK(mdb_txn_commit(txn), "commit");
    bu_lines_close(&l);
    load_kv(env, kv, kvfile, nkv);
    mdb_env_close(env);
}

static void w5(const char *dir, const char *key) {
    double t0 = bu_now();
    MDB_env *env = open_env(dir, 0);
    MDB_txn *txn;
    MDB_dbi dbi;
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "txn_begin");
    CHECK(mdb_dbi_open(txn, "kv", 0, &dbi), "dbi_open");
    MDB_val k = {strlen(key), (void *)key}, v;
    CHECK(mdb_get(txn, dbi, &k, &v), "get");
    double dt = bu_now() - t0;
    mdb_txn_abort(txn);
    mdb_env_close(env);
    bu_result("W5", "lmdb", "open_first_get_ms", dt * 1e3, "ms");
}

int main(int argc, char **argv) {
    const char *w = argc > 1 ? argv[1] : "";
    if (!strcmp(w, "w1") && argc == 5) w1(argv[2], argv[3], atol(argv[4]));
    else if (!strcmp(w, "w1g") && argc == 6) w1g(argv[2], argv[3], atoi(argv[4]), atol(argv[5]));
    else if (!strcmp(w, "w1p") && argc == 6) w1p(argv[2], argv[3], atoi(argv[4]), atol(argv[5]));
    else if (!strcmp(w, "w4") && argc == 5) w4(argv[2], argv[3], atol(argv[4]));
    else if (!strcmp(w, "w5prep") && argc == 7) w5prep(argv[2], argv[3], atol(argv[4]), argv[5], atol(argv[6]));
    else if (!strcmp(w, "w5") && argc == 4) w5(argv[2], argv[3]);
    else {
        fprintf(stderr, "usage: see the comment at the top of lmdb_bench.c\n");
        return 2;
    }
    return 0;
}
