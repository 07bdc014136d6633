/*
** compact_crash_test.c: kill -9 at random moments of compaction, with a
** second process writing and reading throughout.  Each cycle forks two
** writers on one store (sync = always): A sets, deletes and appends
** memories and compacts after every few operations; B sets and deletes
** keys of its own and reads back what it set.  Both report every
** acknowledged operation through a pipe.  After both are killed the store
** is reopened: verify is clean, no compaction leftover (.cseg) remains,
** every acknowledged operation is there (the one in flight may or may
** not be), every acknowledged memory keeps its id, and a new memory gets
** an id past every id ever given.
**
**   compact_crash_test [--cycles N] [--seed N] [--soak]
*/
#include "crashutil.h"

#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SEG (64u << 10)
#define MAXOPS 200000

/* One acknowledged operation, as the writer reports it. */
typedef struct ack {
    uint32_t n;   /* the writer's operation number */
    uint32_t bad; /* B: a read gave a wrong answer */
    uint64_t id;  /* the memory id of an append, else 0 */
} ack;

static mmfs_db *open_store(const char *dir) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_ALWAYS;
    o.segment_size = SEG;
    mmfs_db *db = NULL;
    int rc = mmfs_open(dir, &o, &db);
    if (rc != MMFS_OK) ct_fatal(__FILE__, __LINE__, "open: %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
    return db;
}

/* Operation N of writer W in cycle C: 0 set key N, 1 set key N, 2 delete
** key N-2, 3 append a memory (A only; B reads key N-1 instead). */
static void key_name(char *b, size_t len, long c, int w, uint32_t n) {
    snprintf(b, len, "c%ld-w%d-%u", c, w, n);
}

static void writer(const char *dir, long c, int w, int fd) {
    mmfs_db *db = open_store(dir);
    for (uint32_t n = 0;; n++) {
        char k[64];
        ack a = {n, 0, 0};
        int rc = MMFS_OK;
        switch (n % 4) {
        case 0:
        case 1:
            key_name(k, sizeof k, c, w, n);
            rc = mmfs_set_kv(db, mmfs_str(k), mmfs_str(k));
            break;
        case 2:
            key_name(k, sizeof k, c, w, n - 2);
            rc = mmfs_delete_kv(db, mmfs_str(k), NULL);
            break;
        case 3:
            if (w == 0) {
                key_name(k, sizeof k, c, w, n);
                rc = mmfs_append_memory(db, mmfs_str(k), NULL, 0, NULL, &a.id);
            } else {
                mmfs_slice v;
                key_name(k, sizeof k, c, w, n - 2); /* set at n - 2, never deleted */
                rc = mmfs_get_kv(db, mmfs_str(k), &v);
                a.bad = rc != MMFS_OK || v.len != strlen(k) || memcmp(v.ptr, k, v.len) != 0;
                rc = MMFS_OK;
            }
            break;
        }
        if (rc != MMFS_OK) _exit(3);
        if (write(fd, &a, sizeof a) != (ssize_t)sizeof a) _exit(4);
        if (w == 0 && n % 4 == 3 && mmfs_compact(db, NULL, NULL) != MMFS_OK) _exit(5);
    }
}

/* Reads a writer's acknowledgements; returns how many. */
static size_t read_acks(int fd, ack *v) {
    size_t n = 0;
    ssize_t r;
    while (n < MAXOPS && (r = read(fd, &v[n], sizeof *v)) == (ssize_t)sizeof *v) n++;
    return n;
}

static int cseg_files(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/log", dir);
    DIR *d = opendir(p);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".cseg")) n++;
    closedir(d);
    return n;
}

typedef struct model {
    uint64_t *ids; /* every acknowledged memory id, kept forever */
    size_t nids, cap;
    uint64_t max_id;
} model;

/* Checks cycle C's operations of writer W (NACK acknowledged). */
static void check_writer(mmfs_db *db, long c, int w, const ack *acks, size_t nack, model *m) {
    for (size_t i = 0; i < nack; i++) {
        uint32_t n = acks[i].n;
        CHECK(n == i, "cycle %ld writer %d: ack %zu is op %u", c, w, i, n);
        CHECK(!acks[i].bad, "cycle %ld writer %d: op %u read a wrong value", c, w, n);
        if (acks[i].id) {
            if (m->nids == m->cap) {
                m->cap = m->cap ? m->cap * 2 : 256;
                m->ids = realloc(m->ids, m->cap * sizeof *m->ids);
            }
            m->ids[m->nids++] = acks[i].id;
            if (acks[i].id > m->max_id) m->max_id = acks[i].id;
        }
    }
    /* Each key: set at n (n % 4 in 0, 1); key n % 4 == 0 deleted at n + 2.
    ** The op in flight (number nack) may or may not have happened. */
    for (uint32_t n = 0; n < nack + 2; n++) {
        if (n % 4 > 1) continue;
        char k[64];
        key_name(k, sizeof k, c, w, n);
        mmfs_slice v;
        int present = mmfs_get_kv(db, mmfs_str(k), &v) == MMFS_OK;
        int set = n < nack, unsure = n == nack;
        int deleted = n % 4 == 0 && n + 2 < nack, del_unsure = n % 4 == 0 && n + 2 == nack;
        if (unsure || del_unsure) continue;
        int want = set && !deleted;
        CHECK(present == want, "cycle %ld writer %d: key %s is %s, want %s (%zu acked)", c, w, k,
              present ? "there" : "missing", want ? "there" : "gone", nack);
        if (present)
            CHECK(v.len == strlen(k) && memcmp(v.ptr, k, v.len) == 0, "cycle %ld: key %s: wrong value", c, k);
    }
}

static void check_store(const char *dir, model *m, long c) {
    mmfs_db *db = open_store(dir);
    CHECK_OK(mmfs_verify(db));
    CHECK(cseg_files(dir) == 0, "cycle %ld: compaction leftovers after open", c);
    for (size_t i = 0; i < m->nids; i++) {
        mmfs_memory *mem = NULL;
        int rc = mmfs_get_memory(db, m->ids[i], &mem);
        CHECK(rc == MMFS_OK, "cycle %ld: acknowledged memory %" PRIu64 " is gone (%s)", c, m->ids[i],
              mmfs_err_name(rc));
        if (mem) mmfs_free(mem);
    }
    uint64_t id = 0;
    CHECK_OK(mmfs_append_memory(db, mmfs_str("probe"), NULL, 0, NULL, &id));
    CHECK(id > m->max_id, "cycle %ld: new memory id %" PRIu64 " not past %" PRIu64, c, id, m->max_id);
    int del = 0;
    CHECK_OK(mmfs_delete_memory(db, id, &del));
    m->max_id = id; /* deleted, but never to be given again */
    CHECK_OK(mmfs_close(db));
}

int main(int argc, char **argv) {
    int soak = ct_soak(argc, argv);
    long cycles = ct_opt(argc, argv, "--cycles", "MMFS_COMPACT_CRASH_CYCLES", soak ? 1000 : 40);
    long seed = ct_opt(argc, argv, "--seed", "MMFS_CRASH_SEED", (long)time(NULL));
    printf("compact_crash_test: %ld cycles, seed %ld\n", cycles, seed);
    ct_rng rng = {(uint64_t)seed};
    char *dir = ct_tmpdir("compact-crash");
    model m = {NULL, 0, 0, 0};
    long mid = 0;
    {
        /* a store worth compacting: dead and live records over segments */
        mmfs_db *db = open_store(dir);
        for (int i = 0; i < 3000; i++) {
            char k[32];
            snprintf(k, sizeof k, "base%d", i % 500);
            REQUIRE_OK(mmfs_set_kv(db, mmfs_str(k), mmfs_str("some value that takes room")));
        }
        REQUIRE_OK(mmfs_close(db));
    }
    for (long c = 0; c < cycles && !ct_failures(); c++) {
        int p[2][2];
        pid_t pid[2];
        for (int w = 0; w < 2; w++) {
            if (pipe(p[w]) < 0) ct_fatal(__FILE__, __LINE__, "pipe failed");
            pid[w] = fork();
            if (pid[w] < 0) ct_fatal(__FILE__, __LINE__, "fork failed");
            if (pid[w] == 0) {
                close(p[w][0]);
                writer(dir, c, w, p[w][1]);
            }
            close(p[w][1]);
        }
        struct timespec ts = {0, (long)(5 + ct_below(&rng, 120)) * 1000000L};
        nanosleep(&ts, NULL);
        for (int w = 0; w < 2; w++) kill(pid[w], SIGKILL);
        mmfs_db *db = NULL;
        size_t nack[2];
        ack *both[2];
        for (int w = 0; w < 2; w++) {
            int status;
            waitpid(pid[w], &status, 0);
            CHECK(WIFSIGNALED(status), "cycle %ld: writer %d ended by itself (status %d)", c, w,
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            both[w] = malloc(MAXOPS * sizeof *both[w]);
            nack[w] = read_acks(p[w][0], both[w]);
            close(p[w][0]);
        }
        if (cseg_files(dir) > 0) mid++; /* killed inside a compaction */
        db = open_store(dir);
        CHECK(cseg_files(dir) == 0, "cycle %ld: compaction leftovers after open", c);
        for (int w = 0; w < 2; w++) {
            check_writer(db, c, w, both[w], nack[w], &m);
            free(both[w]);
        }
        CHECK_OK(mmfs_close(db));
        check_store(dir, &m, c);
        if (c % 10 == 9 || ct_failures())
            printf("cycle %ld: %zu + %zu acknowledged, %zu memories\n", c, nack[0], nack[1], m.nids);
    }
    check_store(dir, &m, cycles);
    printf("compact_crash_test: %ld cycles (%ld killed inside a compaction), %zu memories, %d failed checks\n",
           cycles, mid, m.nids, ct_failures());
    free(m.ids);
    ct_rmrf(dir);
    free(dir);
    return ct_failures() ? 1 : 0;
}
