/*
** ztext_crash_test.c: kill -9 loops on a store made with compress = "zstd".
** A child opens the store (sync = always, small segments, a checkpoint
** every 256 KiB of log) and appends memories in batches of 1 to 300 (the
** first one 3,900, close to the dictionary's training), the
** text of memory ID being text(ID); after each batch that returned MMFS_OK
** it reports the new total to the parent through a pipe.  The parent
** kills it after a random 0..80 ms (every third cycle 0.3..0.8 s), reopens
** the store and checks that it
** holds memories 1..N with exactly their texts, N the last total reported
** or that plus the batch in flight (all or nothing), that verify passes
** and that the newest memory is found by search.  The loops cross the
** dictionary's training (4,000 memories), so kills land before it, in its
** frame and after it, and in checkpoints of compressed texts.  Every fifth
** cycle MANIFEST is removed after the check: the next open rebuilds it
** from the log, which must keep the store compressed.
**
** Bounded run: 40 cycles; --cycles N or MMFS_CRASH_CYCLES; --seed N or
** MMFS_CRASH_SEED.
*/
#include "crashutil.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "engine.h"

static const char *const words[] = {"toukd",  "glaibroyye", "stoubrofhs", "kovugouji", "ducinao", "faveubh",
                                    "maidc",  "raikv",      "taivd",      "hanaibj",   "gaicd",   "naicud",
                                    "haroua", "koub",       "rohiw",      "naigec",    "tea",     "绿茶"};

/* The text of memory ID (the same in every process). */
static size_t text(uint64_t id, char *out, size_t cap) {
    ct_rng r = {id * 0x9e3779b97f4a7c15ull + 7};
    size_t n = (size_t)snprintf(out, cap, "m%" PRIu64, id), k = 4 + ct_below(&r, 40);
    for (size_t i = 0; i < k && n + 24 < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, " %s", words[ct_below(&r, sizeof words / sizeof *words)]);
    return n;
}

#define FIRST 3900 /* memories of the first batch */

static mmfs_options options(void) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_ALWAYS;
    o.segment_size = 256 << 10;
    o.checkpoint_bytes = 256 << 10;
    o.compress = "zstd";
    return o;
}

static void child_main(const char *dir, int wfd, uint64_t seed) {
    mmfs_options o = options();
    mmfs_db *db;
    if (mmfs_open(dir, &o, &db) != MMFS_OK) {
        fprintf(stderr, "child: open: %s\n", mmfs_errmsg(NULL));
        _exit(3);
    }
    mmfs_store_stats st;
    if (mmfs_stats(db, &st) != MMFS_OK) _exit(3);
    uint64_t next = st.memories + 1; /* only appends: ids are dense from 1 */
    ct_rng r = {seed};
    char buf[1024];
    for (;;) {
        mmfs_batch *b;
        if (mmfs_batch_begin(db, &b) != MMFS_OK) _exit(3);
        /* the first batch fills the store close to the training threshold */
        uint64_t k = next == 1 ? FIRST : 1 + ct_below(&r, 300);
        for (uint64_t i = 0; i < k; i++) {
            size_t n = text(next + i, buf, sizeof buf);
            if (mmfs_batch_append_memory(b, (mmfs_slice){buf, n}, NULL, 0, NULL) != MMFS_OK) _exit(3);
        }
        if (mmfs_batch_commit(b, NULL, NULL) != MMFS_OK) {
            fprintf(stderr, "child: commit: %s\n", mmfs_errmsg(NULL));
            _exit(3);
        }
        next += k;
        uint64_t total = next - 1;
        if (write(wfd, &total, sizeof total) != sizeof total) _exit(0);
    }
}

/* Checks DB holds memories 1..N as written; 0 when it does. */
static int check_store(mmfs_db *db, uint64_t n, long cycle) {
    char buf[1024];
    mmfs_store_stats st;
    CHECK_OK(mmfs_stats(db, &st));
    if (st.memories != n) return 1;
    for (uint64_t id = 1; id <= n; id++) {
        mmfs_memory *m = NULL;
        size_t len = text(id, buf, sizeof buf);
        int rc = mmfs_get_memory(db, id, &m);
        CHECK(rc == MMFS_OK && m->text.len == len && memcmp(m->text.ptr, buf, len) == 0,
              "cycle %ld: memory %" PRIu64 " is not as written (%s)", cycle, id, mmfs_err_name(rc));
        mmfs_free(m);
        if (rc) return 0; /* reported */
    }
    if (n) {
        mmfs_memories *ms = NULL;
        snprintf(buf, sizeof buf, "m%" PRIu64, n);
        CHECK_OK(mmfs_search_memory(db, mmfs_str(buf), NULL, &ms));
        CHECK(ms && ms->count == 1 && ms->items[0].id == n, "cycle %ld: search for %s", cycle, buf);
        mmfs_free(ms);
    }
    return 0;
}

int main(int argc, char **argv) {
    long cycles = ct_opt(argc, argv, "cycles", "MMFS_CRASH_CYCLES", 40);
    uint64_t seed = (uint64_t)ct_opt(argc, argv, "seed", "MMFS_CRASH_SEED", (long)(ct_now_ms() % 100000));
    printf("ztext_crash_test: %ld cycles, seed %" PRIu64 "\n", cycles, seed);
    fflush(stdout);
    signal(SIGPIPE, SIG_IGN);
    char *root = ct_tmpdir("ztext-crash");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/store", root);
    ct_rng delays = {seed ^ 0x5eed};
    uint64_t acked = 0;
    long landed = 0;
    for (long cycle = 0; cycle < cycles && !ct_failures(); cycle++) {
        int fds[2];
        if (pipe(fds) < 0) ct_fatal(__FILE__, __LINE__, "pipe: %s", strerror(errno));
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) ct_fatal(__FILE__, __LINE__, "fork: %s", strerror(errno));
        if (pid == 0) {
            close(fds[0]);
            child_main(dir, fds[1], seed * 1000003u + (uint64_t)cycle);
        }
        close(fds[1]);
        /* mostly short lives; every third a long one, so that training
        ** (a fraction of a second) can finish and commits pile up */
        uint64_t life = cycle % 3 == 2 ? 300 + ct_below(&delays, 500) : ct_below(&delays, 81);
        uint64_t deadline = ct_now_ms() + life, got;
        int killed = 0;
        for (;;) {
            uint64_t now = ct_now_ms();
            if (!killed && now >= deadline) {
                kill(pid, SIGKILL);
                killed = 1;
            }
            struct pollfd p = {fds[0], POLLIN, 0};
            if (poll(&p, 1, killed ? -1 : (int)(deadline - now)) <= 0) continue;
            ssize_t r = read(fds[0], &got, sizeof got);
            if (r < 0 && errno == EINTR) continue;
            if (r != (ssize_t)sizeof got) break;
            acked = got;
        }
        close(fds[0]);
        int wst;
        waitpid(pid, &wst, 0);
        CHECK(WIFSIGNALED(wst), "cycle %ld: the child ended by itself (status %d)", cycle, wst);

        mmfs_options o = options();
        mmfs_db *db;
        int rc = mmfs_open(dir, &o, &db);
        if (rc) ct_fatal(__FILE__, __LINE__, "cycle %ld: reopen: %s: %s", cycle, mmfs_err_name(rc), mmfs_errmsg(NULL));
        CHECK(mmfs_verify(db) == MMFS_OK, "cycle %ld: verify: %s", cycle, mmfs_errmsg(NULL));
        mmfs_store_stats st;
        CHECK_OK(mmfs_stats(db, &st));
        /* the batch in flight: all of it or none (at most 300) */
        CHECK(st.memories >= acked && st.memories <= acked + (acked ? 300 : FIRST), "cycle %ld: %" PRIu64 " memories, %" PRIu64 " acked",
              cycle, st.memories, acked);
        if (st.memories > acked) landed++;
        acked = st.memories;
        check_store(db, acked, cycle);
        if (acked > 4400) { /* past the dictionary: the newest long text is compressed */
            char buf[1024];
            uint64_t id = acked;
            while (text(id, buf, sizeof buf) < 120) id--;
            mmfs__rec r;
            CHECK(mmfs__engine_get_memory(db->eng, id, &r) == MMFS_OK && (r.flags & MMFS__RF_ZTEXT),
                  "cycle %ld: memory %" PRIu64 " is not compressed", cycle, id);
        }
        CHECK_OK(mmfs_close(db));
        if (cycle % 5 == 4) {
            char path[4300];
            snprintf(path, sizeof path, "%s/MANIFEST", dir);
            CHECK(unlink(path) == 0, "cycle %ld: unlink MANIFEST", cycle);
        }
    }
    printf("ztext_crash_test: %" PRIu64 " memories acknowledged, %ld batches in flight landed, %d failures\n",
           acked, landed, ct_failures());
    if (!ct_failures()) ct_rmrf(root);
    free(root);
    return ct_failures() ? 1 : 0;
}
