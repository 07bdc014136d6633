/*
** ckpt_crash_test.c: kill -9 at random moments of checkpointing, with a
** second process writing and reading throughout.  Each cycle forks a
** checkpointer (mmfs_checkpoint in a loop) and a writer (sync = always:
** sets and deletes keys, appends memories, puts and deletes sessions,
** appends to streams, indexes documents, and reads its kv writes back),
** kills both after 5..60 ms, then checks the store as the next open
** sees it (from the newest checkpoint it finds) against a model of the
** acknowledged operations, and against an open of the log alone.
**
**   ckpt_crash_test [--cycles N] [--seed N] [--soak]
*/
#include "crashutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NKEYS 300
#define NSESS 50
#define NSTREAMS 4
#define NDOCS 30
#define NWORDS 5

/* Operation I of the writer: a memory every 5th; a session put (id
** I % NSESS, payload "vI") every 11th, a session delete every 13th, an
** append of "vI;" to stream I % NSTREAMS every 17th, an index of document
** I % NDOCS as "wI%NWORDS vI" every 19th; a delete of key I % NKEYS every
** 7th; else a set of it to "vI". */
enum { OP_SET, OP_DEL, OP_MEM, OP_SESS, OP_SDEL, OP_APPEND, OP_DOC };
static int op_kind(long i) {
    return i % 5 == 0    ? OP_MEM
           : i % 11 == 0 ? OP_SESS
           : i % 13 == 0 ? OP_SDEL
           : i % 17 == 0 ? OP_APPEND
           : i % 19 == 0 ? OP_DOC
           : i % 7 == 0  ? OP_DEL
                         : OP_SET;
}

static mmfs_db *open_store(const char *dir, int readonly) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_ALWAYS;
    o.segment_size = 256 << 10; /* several segments, some sealed under a checkpoint */
    o.checkpoint_bytes = 0;
    o.readonly = readonly;
    mmfs_db *db = NULL;
    int rc = mmfs_open(dir, &o, &db);
    if (rc != MMFS_OK) ct_fatal(__FILE__, __LINE__, "open: %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
    return db;
}

/* The writer: operations FROM, FROM + 1, ... until killed; *ACKED is the
** last one acknowledged. */
static void writer(const char *dir, long from, _Atomic long *acked) {
    mmfs_db *db = open_store(dir, 0);
    char k[32], v[32];
    for (long i = from;; i++) {
        snprintf(k, sizeof k, "k%03ld", i % NKEYS);
        snprintf(v, sizeof v, "v%ld", i);
        mmfs_slice got;
        int rc;
        switch (op_kind(i)) {
        case OP_MEM:
            rc = mmfs_append_memory(db, mmfs_str(v), NULL, 0, NULL, NULL);
            break;
        case OP_SESS: {
            char id[16], in[16];
            snprintf(id, sizeof id, "s%02ld", i % NSESS);
            snprintf(in, sizeof in, "i%ld", i % 3);
            mmfs_session s;
            memset(&s, 0, sizeof s);
            s.id = mmfs_str(id);
            s.has_intent = 1;
            s.intent_id = mmfs_str(in);
            s.has_created_at = 1;
            s.created_at = 1000 + i % 7;
            s.has_payload = 1;
            s.payload = mmfs_str(v);
            rc = mmfs_put_session(db, &s);
            break;
        }
        case OP_SDEL: {
            char id[16];
            snprintf(id, sizeof id, "s%02ld", i % NSESS);
            rc = mmfs_delete_session(db, mmfs_str(id), NULL);
            break;
        }
        case OP_APPEND: {
            char name[16], b[40];
            snprintf(name, sizeof name, "st%ld", i % NSTREAMS);
            snprintf(b, sizeof b, "v%ld;", i);
            rc = mmfs_append_stream(db, mmfs_str(name), mmfs_str(b));
            break;
        }
        case OP_DOC: {
            char key[16], text[48];
            snprintf(key, sizeof key, "d%02ld", i % NDOCS);
            snprintf(text, sizeof text, "w%ld v%ld", i % NWORDS, i);
            rc = mmfs_index(db, mmfs_str(key), mmfs_str(text));
            break;
        }
        case OP_DEL:
            rc = mmfs_delete_kv(db, mmfs_str(k), NULL);
            if (rc == MMFS_OK && mmfs_get_kv(db, mmfs_str(k), &got) != MMFS_NOTFOUND) _exit(4);
            break;
        default:
            rc = mmfs_set_kv(db, mmfs_str(k), mmfs_str(v));
            if (rc == MMFS_OK && (mmfs_get_kv(db, mmfs_str(k), &got) != MMFS_OK || got.len != strlen(v) ||
                                  memcmp(got.ptr, v, got.len) != 0))
                _exit(4); /* a read of its own write went wrong */
        }
        if (rc != MMFS_OK) _exit(3);
        atomic_store(acked, i);
    }
}

/* The checkpointer: checkpoints until killed. */
static void checkpointer(const char *dir) {
    mmfs_db *db = open_store(dir, 0);
    for (;;)
        if (mmfs_checkpoint(db) != MMFS_OK) _exit(3);
}

/* The store after operations 1..N: kv, memory count, sessions (the op of
** their put, 0: none), streams (their bytes), documents (the op that
** indexed them). */
typedef struct model {
    long val[NKEYS]; /* 0: absent */
    long mems;
    long sess[NSESS];
    char *stream[NSTREAMS];
    size_t slen[NSTREAMS];
    long doc[NDOCS];
} model;

static void model_free(model *m) {
    for (int j = 0; j < NSTREAMS; j++) free(m->stream[j]);
}

static void model_at(model *m, long n) {
    model_free(m);
    memset(m, 0, sizeof *m);
    for (long i = 1; i <= n; i++) {
        int kind = op_kind(i);
        if (kind == OP_MEM) {
            m->mems++;
        } else if (kind == OP_SESS) {
            m->sess[i % NSESS] = i;
        } else if (kind == OP_SDEL) {
            m->sess[i % NSESS] = 0;
        } else if (kind == OP_DOC) {
            m->doc[i % NDOCS] = i;
        } else if (kind == OP_APPEND) {
            char b[40];
            int len = snprintf(b, sizeof b, "v%ld;", i);
            long j = i % NSTREAMS;
            m->stream[j] = realloc(m->stream[j], m->slen[j] + (size_t)len + 1);
            if (!m->stream[j]) ct_fatal(__FILE__, __LINE__, "out of memory");
            memcpy(m->stream[j] + m->slen[j], b, (size_t)len + 1);
            m->slen[j] += (size_t)len;
        } else {
            m->val[i % NKEYS] = kind == OP_DEL ? 0 : i;
        }
    }
}

/* 1 if DB's sessions, streams and documents are M's. */
static int matches_tables(mmfs_db *db, const model *m, const mmfs_store_stats *st) {
    long live = 0;
    for (int j = 0; j < NSESS; j++) {
        char id[16], v[32];
        snprintf(id, sizeof id, "s%02d", j);
        mmfs_session s;
        int rc = mmfs_get_session(db, mmfs_str(id), &s);
        if (!m->sess[j]) {
            if (rc != MMFS_NOTFOUND) return 0;
            continue;
        }
        live++;
        snprintf(v, sizeof v, "v%ld", m->sess[j]);
        if (rc != MMFS_OK || s.payload.len != strlen(v) || memcmp(s.payload.ptr, v, s.payload.len) != 0) return 0;
    }
    mmfs_sessions *ss;
    if ((long)st->sessions != live || mmfs_list_sessions(db, 0, &ss) != MMFS_OK) return 0;
    size_t listed = ss->count;
    mmfs_free(ss);
    size_t by_intent = 0;
    for (int j = 0; j < 3; j++) {
        char in[8];
        snprintf(in, sizeof in, "i%d", j);
        if (mmfs_list_by_intent(db, mmfs_str(in), 0, &ss) != MMFS_OK) return 0;
        by_intent += ss->count;
        mmfs_free(ss);
    }
    if ((long)listed != live || (long)by_intent != live) return 0;
    long streams = 0;
    for (int j = 0; j < NSTREAMS; j++) {
        char name[16];
        snprintf(name, sizeof name, "st%d", j);
        mmfs_reader *r;
        int rc = mmfs_open_read(db, mmfs_str(name), &r);
        if (!m->stream[j]) {
            if (rc != MMFS_NOTFOUND) return 0;
            continue;
        }
        streams++;
        if (rc != MMFS_OK) return 0;
        char *b = malloc(m->slen[j] + 1);
        size_t got = 0;
        int ok = b && mmfs_reader_size(r) == m->slen[j] && mmfs_reader_read(r, b, m->slen[j] + 1, &got) == MMFS_OK &&
                 got == m->slen[j] && memcmp(b, m->stream[j], got) == 0;
        free(b);
        mmfs_reader_close(r);
        if (!ok) return 0;
    }
    long docs = 0;
    for (int j = 0; j < NDOCS; j++) docs += m->doc[j] != 0;
    if ((long)st->streams != streams || (long)st->documents != docs) return 0;
    for (int w = 0; w < NWORDS; w++) {
        char q[8];
        snprintf(q, sizeof q, "w%d", w);
        mmfs_doc_hits *h;
        if (mmfs_search(db, mmfs_str(q), 1000, &h) != MMFS_OK) return 0;
        long want = 0;
        for (int j = 0; j < NDOCS; j++) want += m->doc[j] && m->doc[j] % NWORDS == w;
        int ok = (long)h->count == want;
        for (size_t x = 0; ok && x < h->count; x++) {
            const char *k = h->items[x].key.ptr; /* "dNN" */
            int j = h->items[x].key.len == 3 ? (k[1] - '0') * 10 + (k[2] - '0') : -1;
            ok = j >= 0 && j < NDOCS && m->doc[j] && m->doc[j] % NWORDS == w;
        }
        mmfs_free(h);
        if (!ok) return 0;
    }
    return 1;
}

/* 1 if DB holds exactly M. */
static int matches(mmfs_db *db, const model *m) {
    mmfs_store_stats st;
    if (mmfs_stats(db, &st) != MMFS_OK || (long)st.memories != m->mems) return 0;
    long live = 0;
    for (int j = 0; j < NKEYS; j++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "k%03d", j);
        mmfs_slice got;
        int rc = mmfs_get_kv(db, mmfs_str(k), &got);
        if (!m->val[j]) {
            if (rc != MMFS_NOTFOUND) return 0;
            continue;
        }
        live++;
        snprintf(v, sizeof v, "v%ld", m->val[j]);
        if (rc != MMFS_OK || got.len != strlen(v) || memcmp(got.ptr, v, got.len) != 0) return 0;
    }
    /* A scan sees the same keys, in order. */
    mmfs_kv_iter *it;
    if (mmfs_kv_iter_open(db, mmfs_str("k"), &it) != MMFS_OK) return 0;
    mmfs_slice key, val;
    long n = 0;
    char last[32] = "";
    while (mmfs_kv_iter_next(it, &key, &val) == MMFS_OK) {
        char k[32];
        snprintf(k, sizeof k, "%.*s", (int)key.len, (const char *)key.ptr);
        if (strcmp(k, last) <= 0) n = -1000000;
        snprintf(last, sizeof last, "%s", k);
        n++;
    }
    mmfs_kv_iter_close(it);
    return n == live && (long)st.kv == live && matches_tables(db, m, &st);
}

static int count_ckpts(const char *dir, int *tmps) {
    char p[4200];
    snprintf(p, sizeof p, "%s/ckpt", dir);
    DIR *d = opendir(p);
    int n = 0;
    *tmps = 0;
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strstr(e->d_name, ".tmp.")) (*tmps)++;
        else if (strstr(e->d_name, ".ckpt")) n++;
    }
    closedir(d);
    return n;
}

int main(int argc, char **argv) {
    int soak = ct_soak(argc, argv);
    long cycles = ct_opt(argc, argv, "--cycles", "MMFS_CKPT_CRASH_CYCLES", soak ? 1000 : 150);
    long seed = ct_opt(argc, argv, "--seed", "MMFS_CRASH_SEED", (long)time(NULL));
    printf("ckpt_crash_test: %ld cycles, seed %ld\n", cycles, seed);
    ct_rng rng = {(uint64_t)seed};
    char *dir = ct_tmpdir("ckpt-crash");
    _Atomic long *acked = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (acked == MAP_FAILED) ct_fatal(__FILE__, __LINE__, "mmap failed");
    long done = 0; /* operations in the store */
    model m;
    memset(&m, 0, sizeof m);
    int from_ckpt = 0;
    for (long c = 0; c < cycles && !ct_failures(); c++) {
        atomic_store(acked, done);
        pid_t w = fork();
        if (w == 0) writer(dir, done + 1, acked);
        pid_t k = fork();
        if (k == 0) checkpointer(dir);
        if (w < 0 || k < 0) ct_fatal(__FILE__, __LINE__, "fork failed");
        struct timespec ts = {0, (long)(5 + ct_below(&rng, 56)) * 1000000L};
        nanosleep(&ts, NULL);
        /* Either may die first: the checkpointer mid-file, the writer
        ** mid-frame. */
        if (ct_below(&rng, 2)) {
            kill(k, SIGKILL);
            kill(w, SIGKILL);
        } else {
            kill(w, SIGKILL);
            kill(k, SIGKILL);
        }
        int sw, sk;
        waitpid(w, &sw, 0);
        waitpid(k, &sk, 0);
        CHECK(WIFSIGNALED(sw), "cycle %ld: the writer ended by itself (status %d)", c, sw);
        CHECK(WIFSIGNALED(sk), "cycle %ld: the checkpointer ended by itself (status %d)", c, sk);
        long n = atomic_load(acked);
        /* The store as the next open sees it: every acknowledged operation,
        ** and the one in flight whole or not at all. */
        mmfs_db *db = open_store(dir, 0);
        mmfs_store_stats st;
        CHECK_OK(mmfs_stats(db, &st));
        if (st.checkpoint_lsn) from_ckpt++;
        CHECK_OK(mmfs_verify(db));
        model_at(&m, n);
        if (matches(db, &m)) {
            done = n;
        } else {
            model_at(&m, n + 1);
            CHECK(matches(db, &m), "cycle %ld: the store is neither after op %ld nor after op %ld "
                                   "(checkpoint lsn %" PRIu64 ")", c, n, n + 1, st.checkpoint_lsn);
            done = n + 1;
        }
        CHECK_OK(mmfs_close(db));
        /* The log alone says the same. */
        char ck[4200], off[4200];
        snprintf(ck, sizeof ck, "%s/ckpt", dir);
        snprintf(off, sizeof off, "%s/ckpt.off", dir);
        if (rename(ck, off) == 0) {
            db = open_store(dir, 1);
            CHECK(matches(db, &m), "cycle %ld: the log alone disagrees with the checkpoint", c);
            CHECK_OK(mmfs_close(db));
            CHECK(rename(off, ck) == 0, "cycle %ld: cannot put ckpt/ back", c);
        }
    }
    /* A kill between rename and pruning leaves an extra file; the next
    ** checkpoint that completes prunes to two, and removes temporaries of
    ** the processes that were killed. */
    int tmps, n = count_ckpts(dir, &tmps);
    mmfs_db *db = open_store(dir, 0);
    CHECK_OK(mmfs_checkpoint(db));
    CHECK_OK(mmfs_close(db));
    int tmps2, n2 = count_ckpts(dir, &tmps2);
    CHECK(n2 == 2 && tmps2 == 0, "after a last checkpoint: %d files, %d temporaries (want 2 and 0)", n2, tmps2);
    CHECK(cycles < 10 || from_ckpt > 0, "no open used a checkpoint in %ld cycles", cycles);
    printf("ckpt_crash_test: %ld operations, %d of %ld opens from a checkpoint, %d files, %d temporaries, "
           "%d failed checks\n",
           done, from_ckpt, cycles, n, tmps, ct_failures());
    model_free(&m);
    ct_rmrf(dir);
    free(dir);
    return ct_failures() ? 1 : 0;
}
