/*
** policy_crash_test.c: a policy hook that adds commands to its command's
** frame, killed at random moments: after each reopen, every key the child
** set has all of its hook's additions (a stream entry and a memory) and no
** addition exists without its key.  All of a frame is in the log or none.
**
**   policy_crash_test [--cycles N] [--seed N] [--soak]
*/
#include "crashutil.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char policy[] =
    "return { hooks = { set_kv = function(cmd, tx)\n"
    "  tx:append_stream('trail', cmd.key .. ';')\n"
    "  tx:append_memory('trail of ' .. cmd.key, { 'trail' })\n"
    "end } }\n";

static mmfs_db *open_store(const char *dir) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_ALWAYS;
    o.policy = mmfs_str(policy);
    mmfs_db *db = NULL;
    int rc = mmfs_open(dir, &o, &db);
    if (rc != MMFS_OK) ct_fatal(__FILE__, __LINE__, "open: %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
    return db;
}

/* The child: set keys k<base>, k<base+1>, ... until killed. */
static void child(const char *dir, int base) {
    mmfs_db *db = open_store(dir);
    for (int i = base;; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%d", i);
        if (mmfs_set_kv(db, mmfs_str(k), mmfs_str("v")) != MMFS_OK) _exit(3);
    }
}

/* Checks the store: returns the number of keys set. */
static int check(const char *dir, int expect_at_least) {
    mmfs_db *db = open_store(dir);
    CHECK_OK(mmfs_verify(db));
    /* The trail stream, split at ';'. */
    uint64_t size = 0;
    CHECK_OK(mmfs_stream_size(db, mmfs_str("trail"), &size));
    char *trail = malloc(size + 1);
    size_t got = 0;
    if (size) {
        mmfs_reader *r = NULL;
        REQUIRE_OK(mmfs_open_read(db, mmfs_str("trail"), &r));
        CHECK_OK(mmfs_reader_read(r, trail, size, &got));
        mmfs_reader_close(r);
    }
    trail[got] = 0;
    CHECK(got == size, "trail: read %zu of %" PRIu64 " bytes", got, size);
    int entries = 0;
    for (char *p = trail, *semi; (semi = strchr(p, ';')); p = semi + 1) {
        *semi = 0;
        /* The key of each trail entry is set, and so is its memory. */
        mmfs_slice v;
        CHECK(mmfs_get_kv(db, mmfs_str(p), &v) == MMFS_OK, "trail entry %s without its key", p);
        entries++;
        mmfs_memory *m = NULL;
        CHECK_OK(mmfs_get_memory(db, (uint64_t)entries, &m));
        if (m) {
            char want[48];
            snprintf(want, sizeof want, "trail of %s", p);
            CHECK(m->text.len == strlen(want) && memcmp(m->text.ptr, want, m->text.len) == 0,
                  "memory %d: '%.*s', want '%s'", entries, (int)m->text.len, (const char *)m->text.ptr, want);
            mmfs_free(m);
        }
    }
    /* And every key has its trail entry: as many keys as entries and
    ** memories, no more. */
    mmfs_store_stats st;
    CHECK_OK(mmfs_stats(db, &st));
    CHECK(st.kv == (uint64_t)entries, "%" PRIu64 " keys but %d trail entries", st.kv, entries);
    CHECK(st.memories == (uint64_t)entries, "%" PRIu64 " memories but %d trail entries", st.memories,
          entries);
    CHECK(entries >= expect_at_least, "%d keys, fewer than the %d acknowledged before", entries,
          expect_at_least);
    free(trail);
    CHECK_OK(mmfs_close(db));
    return entries;
}

int main(int argc, char **argv) {
    int soak = ct_soak(argc, argv);
    long cycles = ct_opt(argc, argv, "--cycles", "MMFS_POLICY_CRASH_CYCLES", soak ? 2000 : 60);
    long seed = ct_opt(argc, argv, "--seed", "MMFS_CRASH_SEED", (long)time(NULL));
    printf("policy_crash_test: %ld cycles, seed %ld\n", cycles, seed);
    ct_rng rng = {(uint64_t)seed};
    char *dir = ct_tmpdir("policy-crash");
    int keys = check(dir, 0); /* installs the policy, writes its record */
    for (long c = 0; c < cycles; c++) {
        pid_t pid = fork();
        if (pid < 0) ct_fatal(__FILE__, __LINE__, "fork failed");
        if (pid == 0) child(dir, 1000000 * (int)(c + 1));
        struct timespec ts = {0, (long)(2 + ct_below(&rng, 25)) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status), "cycle %ld: the child ended by itself (status %d)", c, status);
        keys = check(dir, keys);
        if (ct_failures()) break;
    }
    printf("policy_crash_test: %d keys after %ld cycles, %d failed checks\n", keys, cycles, ct_failures());
    ct_rmrf(dir);
    free(dir);
    return ct_failures() ? 1 : 0;
}
