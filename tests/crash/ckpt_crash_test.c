/*
** ckpt_crash_test.c: kill -9 at random moments of checkpointing, with a
** second process writing and reading throughout.  Each cycle forks a
** checkpointer (mmfs_checkpoint in a loop) and a writer (sync = always:
** sets and deletes keys, appends memories, and reads each of its writes
** back), kills both after 5..60 ms, then checks the store as the next open
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

/* Operation I of the writer: a memory every 5th, a delete every 7th, else
** a set of key I % NKEYS to "vI". */
enum { OP_SET, OP_DEL, OP_MEM };
static int op_kind(long i) { return i % 5 == 0 ? OP_MEM : i % 7 == 0 ? OP_DEL : OP_SET; }

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

/* The kv contents and memory count after operations 1..N. */
typedef struct model {
    long val[NKEYS]; /* 0: absent */
    long mems;
} model;

static void model_at(model *m, long n) {
    memset(m, 0, sizeof *m);
    for (long i = 1; i <= n; i++) {
        int kind = op_kind(i);
        if (kind == OP_MEM) m->mems++;
        else m->val[i % NKEYS] = kind == OP_DEL ? 0 : i;
    }
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
    return n == live && (long)st.kv == live;
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
        model m;
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
    ct_rmrf(dir);
    free(dir);
    return ct_failures() ? 1 : 0;
}
