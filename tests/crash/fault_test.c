/*
** fault_test.c: injected I/O faults (libfiu).  Run under libfiu's POSIX
** preload (`fiu-run -x fault_test`, as ctest and fault-run.sh do); the test
** turns failure points on and off itself through libfiu's control API:
**
**   posix/io/rw/pwrite, posix/io/rw/pwrite/reduce, posix/io/sync/fdatasync,
**   posix/mm/mmap, posix/io/oc/open, posix/io/dir/rename,
**   posix/io/rw/ftruncate, posix/io/dir/readdir, posix/io/dir/opendir, and
**   mmfs-test/posix_fallocate (libfiu does not wrap posix_fallocate: this
**   file does, below).
**
** For each: the failing call returns a non-OK status of the right kind with
** a message that carries the cause; the process goes on; everything
** acknowledged before the fault survives a reopen without faults; a write
** that failed is absent or whole, never half there; after a failed
** fdatasync the handle refuses writes with MMFS_READONLY (reads go on),
** while after a failed pwrite/open/mmap/rename/fallocate the next write
** works once the fault is gone.  Then rounds of random faults on all those
** points at once, each round checked by a reopen (--soak or MMFS_SOAK=1:
** 2000 rounds, else 60; --rounds N); every fifth round starts with
** MANIFEST removed, which open must rebuild from the log.  And outside
** interference: LOCK removed while the store is open, after which another
** process opens it and writes.
*/
#define FIU_ENABLE 1
#include "crashutil.h"

#include <dlfcn.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <fiu.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* posix_fallocate with a failure point.  The store calls it when it makes
** a segment; defined here, it is the one the (static) library links to.
** Like the real one it returns an error number and leaves errno alone. */
int posix_fallocate(int fd, off_t offset, off_t len) {
    static int (*real)(int, off_t, off_t);
    if (fiu_fail("mmfs-test/posix_fallocate")) return (int)(long)fiu_failinfo();
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "posix_fallocate");
    if (!real) return ENOSYS;
    return real(fd, offset, len);
}

static const char *const all_points[] = {
    "posix/io/rw/pwrite", "posix/io/rw/pwrite/reduce", "posix/io/sync/fdatasync", "posix/io/sync/fsync",
    "posix/mm/mmap",      "posix/io/oc/open",          "posix/io/dir/rename",     "posix/io/rw/ftruncate",
    "mmfs-test/posix_fallocate", "posix/io/dir/readdir", "posix/io/dir/opendir"};

static void faults_off(void) {
    for (size_t i = 0; i < sizeof all_points / sizeof *all_points; i++) fiu_disable(all_points[i]);
}

static void fault_on(const char *point, int err, int once) {
    fiu_enable(point, 1, (void *)(long)err, once ? FIU_ONETIME : 0);
}

static char *root;
static int scen_no;

static void new_dir(char *out, size_t len, const char *name) {
    snprintf(out, len, "%s/%02d-%s", root, ++scen_no, name);
}

static mmfs_options opts(mmfs_sync_mode sync) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = sync;
    o.sync_ms = 5;
    o.segment_size = 64 << 10;
    return o;
}

/* ------------------------------------------------------- a kv model */

#define NK 64

typedef struct kvm {
    int has[NK];       /* acknowledged value known */
    size_t len[NK];
    uint8_t val[NK][9000];
    int unsure[NK];    /* a write failed: the old value or the new one */
    size_t ulen[NK];
    uint8_t uval[NK][9000];
} kvm;

static kvm *M;

static void key_of(int k, char out[16]) { snprintf(out, 16, "key%02d", k); }

static size_t value_of(uint64_t seed, size_t maxlen, uint8_t *out) {
    ct_rng r = {seed};
    size_t n = 1 + ct_below(&r, maxlen);
    ct_fill(&r, out, n);
    return n;
}

/* Sets key K to a value from SEED; updates the model by the outcome. */
static int model_set(mmfs_db *db, int k, uint64_t seed, size_t maxlen) {
    char name[16];
    key_of(k, name);
    uint8_t v[9000];
    size_t n = value_of(seed, maxlen, v);
    int rc = mmfs_set_kv(db, mmfs_str(name), (mmfs_slice){v, n});
    if (rc == MMFS_OK) {
        M->has[k] = 1;
        M->unsure[k] = 0;
        M->len[k] = n;
        memcpy(M->val[k], v, n);
    } else if (rc == MMFS_READONLY) {
        /* refused before anything was written: an earlier failed write
        ** to K (IO after a failed fsync) may still be present */
    } else {
        M->unsure[k] = 1;
        M->ulen[k] = n;
        memcpy(M->uval[k], v, n);
    }
    return rc;
}

/* Reopens DIR without faults and checks it against the model; the model
** then takes what the store has for keys that were unsure. */
static void check_reopen(const char *dir, const char *what) {
    faults_off();
    mmfs_options o = opts(MMFS_SYNC_ALWAYS);
    mmfs_db *db;
    int rc = mmfs_open(dir, &o, &db);
    if (rc) {
        ct_fail(__FILE__, __LINE__, "%s: reopen without faults: %s: %s", what, mmfs_err_name(rc), mmfs_errmsg(NULL));
        return;
    }
    CHECK(mmfs_verify(db) == MMFS_OK, "%s: verify after reopen: %s", what, mmfs_errmsg(NULL));
    for (int k = 0; k < NK; k++) {
        char name[16];
        key_of(k, name);
        mmfs_slice v;
        rc = mmfs_get_kv(db, mmfs_str(name), &v);
        int is_old = M->has[k] ? rc == MMFS_OK && v.len == M->len[k] && !memcmp(v.ptr, M->val[k], v.len)
                               : rc == MMFS_NOTFOUND;
        int is_new = M->unsure[k] && rc == MMFS_OK && v.len == M->ulen[k] && !memcmp(v.ptr, M->uval[k], v.len);
        if (!is_old && !is_new) {
            ct_fail(__FILE__, __LINE__, "%s: %s after reopen is %s (%zu bytes); want %s%s", what, name,
                    rc == MMFS_OK ? "a value" : mmfs_err_name(rc), rc == MMFS_OK ? v.len : 0,
                    M->has[k] ? "the acknowledged value" : "no value",
                    M->unsure[k] ? " or the whole failed write" : "");
            continue;
        }
        if (is_new && !is_old) {
            M->has[k] = 1;
            M->len[k] = M->ulen[k];
            memcpy(M->val[k], M->uval[k], M->ulen[k]);
        }
        M->unsure[k] = 0;
    }
    /* and the store takes writes again */
    CHECK_OK(model_set(db, NK - 1, 0xabcdef ^ (uint64_t)scen_no, 100));
    CHECK_OK(mmfs_close(db));
}

static void reset_model(void) { memset(M, 0, sizeof *M); }

/* Opens DIR (fresh) and writes N acknowledged keys. */
static mmfs_db *base_store(const char *dir, mmfs_sync_mode sync, int n) {
    reset_model();
    faults_off();
    mmfs_options o = opts(sync);
    mmfs_db *db;
    REQUIRE_OK(mmfs_open(dir, &o, &db));
    for (int k = 0; k < n; k++) REQUIRE_OK(model_set(db, k, (uint64_t)k + 1, 300));
    if (sync != MMFS_SYNC_ALWAYS) REQUIRE_OK(mmfs_sync(db));
    return db;
}

/* The message of the last failure carries the cause. */
static void check_msg(const char *what, int err, const char *also) {
    const char *m = mmfs_errmsg(NULL);
    CHECK(m && *m, "%s: no error message", what);
    if (!m) return;
    CHECK(strstr(m, strerror(err)) != NULL, "%s: message '%s' does not give the cause '%s'", what, m, strerror(err));
    if (also) CHECK(strstr(m, also) != NULL, "%s: message '%s' does not mention '%s'", what, m, also);
}

static int want_code(int err) {
    switch (err) {
    case ENOSPC:
        return MMFS_NOSPACE;
    case ENOMEM:
        return MMFS_NOMEM;
    default:
        return MMFS_IO;
    }
}

/* ----------------------------------------------------------- scenarios */

/* A single write's pwrite fails: the write fails with the mapped code and
** leaves nothing; the handle goes on. */
static void pwrite_fault(int err) {
    char dir[4200], what[96];
    new_dir(dir, sizeof dir, "pwrite");
    snprintf(what, sizeof what, "pwrite %s", strerror(err));
    mmfs_db *db = base_store(dir, MMFS_SYNC_ALWAYS, 20);
    fault_on("posix/io/rw/pwrite", err, 1);
    int rc = model_set(db, 30, 99, 2000);
    faults_off();
    CHECK(rc == want_code(err), "%s: set_kv gives %s, want %s", what, mmfs_err_name(rc), mmfs_err_name(want_code(err)));
    if (rc) check_msg(what, err, "write");
    /* a failed write leaves nothing behind: not in this handle either */
    mmfs_slice v;
    CHECK_RC(mmfs_get_kv(db, mmfs_str("key30"), &v), MMFS_NOTFOUND);
    M->unsure[30] = 0; /* and not after a reopen: the bytes never went */
    CHECK_OK(model_set(db, 31, 100, 2000));
    CHECK_OK(mmfs_close(db));
    check_reopen(dir, what);
}

/* pwrite writes less than asked once: the frame must still end up whole. */
static void short_write(void) {
    char dir[4200];
    new_dir(dir, sizeof dir, "short");
    mmfs_db *db = base_store(dir, MMFS_SYNC_ALWAYS, 5);
    for (int i = 0; i < 8; i++) {
        fiu_enable("posix/io/rw/pwrite/reduce", 1, NULL, FIU_ONETIME);
        int rc = model_set(db, 10 + i, 200 + (uint64_t)i, 8000);
        faults_off();
        if (rc) {
            CHECK(mmfs_errmsg(NULL)[0] != 0, "short write: error without a message");
            continue; /* a clear error is allowed; then the value must be absent or whole */
        }
        mmfs_slice v;
        char name[16];
        key_of(10 + i, name);
        CHECK(mmfs_get_kv(db, mmfs_str(name), &v) == MMFS_OK && v.len == M->len[10 + i] &&
                  !memcmp(v.ptr, M->val[10 + i], v.len),
              "short write: %s reads back wrong", name);
    }
    CHECK_OK(mmfs_close(db));
    check_reopen(dir, "short pwrite");
}

/* fdatasync fails under sync = always: that call fails, and the handle
** then refuses every write with MMFS_READONLY; reads go on. */
static void fdatasync_fault_always(int err) {
    char dir[4200], what[96];
    new_dir(dir, sizeof dir, "fdatasync");
    snprintf(what, sizeof what, "fdatasync %s (sync=always)", strerror(err));
    mmfs_db *db = base_store(dir, MMFS_SYNC_ALWAYS, 20);
    fault_on("posix/io/sync/fdatasync", err, 1);
    int rc = model_set(db, 30, 7, 500);
    faults_off();
    /* The frame is in the file; whether it is on the disk cannot be
    ** known: IO saying so (a retry could make two), never READONLY. */
    CHECK(rc == MMFS_IO, "%s: set_kv gives %s, want IO", what, mmfs_err_name(rc));
    if (rc) check_msg(what, err, "may be present after reopen");
    CHECK_RC(model_set(db, 31, 8, 500), MMFS_READONLY);
    check_msg("write after a failed fdatasync", err, "fdatasync");
    uint64_t id = 0;
    CHECK_RC(mmfs_append_memory(db, mmfs_str("after the fault"), NULL, 0, NULL, &id), MMFS_READONLY);
    CHECK_RC(mmfs_update_state(db, mmfs_str("s"), NULL), MMFS_READONLY);
    mmfs_batch *b;
    if (mmfs_batch_begin(db, &b) == MMFS_OK) {
        CHECK_OK(mmfs_batch_set_kv(b, mmfs_str("key32"), mmfs_str("v")));
        CHECK_RC(mmfs_batch_commit(b, NULL, NULL), MMFS_READONLY);
    } else
        CHECK(0, "%s: batch_begin after the fault: %s", what, mmfs_errmsg(NULL));
    CHECK_RC(mmfs_sync(db), MMFS_READONLY);
    /* still refused later: a failed fsync is never retried into success */
    CHECK_RC(model_set(db, 33, 9, 500), MMFS_READONLY);
    M->unsure[31] = M->unsure[33] = 0; /* refused before writing anything */
    mmfs_slice v;
    CHECK_RC(mmfs_get_kv(db, mmfs_str("key05"), &v), MMFS_OK);
    int crc = mmfs_close(db);
    (void)crc; /* may report the failed sync; the handle is freed either way */
    check_reopen(dir, what);
}

/* The batch-mode flusher's fdatasync fails: mmfs_sync and every later
** write give MMFS_READONLY. */
static void fdatasync_fault_batch(void) {
    char dir[4200];
    const char *what = "fdatasync EIO (sync=batch)";
    new_dir(dir, sizeof dir, "fdatasync-batch");
    mmfs_db *db = base_store(dir, MMFS_SYNC_BATCH, 20);
    fault_on("posix/io/sync/fdatasync", EIO, 0);
    int rc = model_set(db, 30, 11, 500); /* written: acknowledged in batch mode */
    CHECK(rc == MMFS_OK, "%s: set_kv before any sync: %s", what, mmfs_err_name(rc));
    M->unsure[30] = 1; /* acked while the disk failed: absent or whole */
    M->ulen[30] = M->len[30];
    memcpy(M->uval[30], M->val[30], M->len[30]);
    M->has[30] = 0;
    CHECK_RC(mmfs_sync(db), MMFS_READONLY);
    check_msg(what, EIO, "fdatasync");
    faults_off();
    CHECK_RC(model_set(db, 31, 12, 500), MMFS_READONLY);
    M->unsure[31] = 0;
    mmfs_close(db);
    check_reopen(dir, what);
}

/* A fault while opening an existing store: open fails cleanly. */
static void open_fault(const char *point, int err) {
    char dir[4200], what[96];
    new_dir(dir, sizeof dir, "open");
    snprintf(what, sizeof what, "mmfs_open with %s %s", point, strerror(err));
    mmfs_db *db = base_store(dir, MMFS_SYNC_ALWAYS, 10);
    CHECK_OK(mmfs_close(db));
    mmfs_options o = opts(MMFS_SYNC_ALWAYS);
    fault_on(point, err, 0);
    db = (mmfs_db *)1;
    int rc = mmfs_open(dir, &o, &db);
    faults_off();
    CHECK(rc != MMFS_OK, "%s: open gives OK", what);
    CHECK(db == NULL, "%s: *out not NULL after a failed open", what);
    if (rc) check_msg(what, err, NULL);
    if (rc == MMFS_OK) mmfs_close(db);
    check_reopen(dir, what);
}

/* A fault while creating a new store. */
static void create_fault(const char *point, int err) {
    char dir[4200], what[96];
    new_dir(dir, sizeof dir, "create");
    snprintf(what, sizeof what, "creating a store with %s %s", point, strerror(err));
    reset_model();
    mmfs_options o = opts(MMFS_SYNC_ALWAYS);
    mmfs_db *db = NULL;
    fault_on(point, err, 0);
    int rc = mmfs_open(dir, &o, &db);
    faults_off();
    CHECK(rc != MMFS_OK, "%s: open gives OK", what);
    if (rc) check_msg(what, err, NULL);
    if (rc == MMFS_OK) mmfs_close(db);
    check_reopen(dir, what); /* creates it now, and takes a write */
}

/* A fault while the log rolls to a new segment (64 KiB segments, 6 KiB
** values: a roll every ten writes).  With the fault on for good, writes go
** on until one needs a new segment and fails; once the fault is gone the
** next write makes the segment.  WANT: the status expected (-1: any error;
** MMFS_READONLY afterwards when the fault was an fsync). */
static void roll_fault(const char *point, int err, int want, mmfs_sync_mode sync, const char *also, int also_err) {
    char dir[4200], what[128];
    new_dir(dir, sizeof dir, "roll");
    snprintf(what, sizeof what, "segment roll with %s %s", point, strerror(err));
    mmfs_db *db = base_store(dir, sync, 2);
    fault_on(point, err, 0);
    if (also) fault_on(also, also_err, 0);
    int rc = MMFS_OK, k;
    for (k = 2; k < 40 && rc == MMFS_OK; k++) rc = model_set(db, k, 1000 + (uint64_t)k, 6000);
    faults_off();
    k--;
    CHECK(rc != MMFS_OK, "%s: 38 writes of 6 KiB went through 64 KiB segments", what);
    if (rc == MMFS_OK) {
        mmfs_close(db);
        return;
    }
    if (want >= 0) CHECK(rc == want, "%s: the write gives %s, want %s", what, mmfs_err_name(rc), mmfs_err_name(want));
    check_msg(what, err, NULL);
    int is_sync = strstr(point, "sync") != NULL;
    rc = model_set(db, k + 1, 5000, 6000);
    if (is_sync) {
        CHECK(rc == MMFS_READONLY, "%s: write after the failed fsync gives %s, want READONLY", what,
              mmfs_err_name(rc));
        M->unsure[k + 1] = 0;
    } else
        CHECK(rc == MMFS_OK, "%s: write after the fault is gone gives %s (%s), want OK", what, mmfs_err_name(rc),
              mmfs_errmsg(NULL));
    if (!is_sync) {
        mmfs_store_stats st;
        CHECK_OK(mmfs_stats(db, &st));
        CHECK(st.segments >= 2, "%s: no new segment after the fault (%" PRIu64 ")", what, st.segments);
    }
    mmfs_close(db);
    check_reopen(dir, what);
}

/* LOCK removed (or REPLACE: replaced by a new file) while a handle has the
** store open, then another process
** opens the store (making a new LOCK) and writes: the first handle's next
** write must be refused, and the other process's acknowledged writes
** survive (they used to be written over). */
static void lock_removed_by_other(int replace) {
    char dir[4200], lock[4300], other[4300];
    const char *what = replace ? "LOCK replaced, another process writes" : "LOCK removed, another process writes";
    new_dir(dir, sizeof dir, replace ? "lock-replaced" : "lock-removed");
    mmfs_db *db = base_store(dir, MMFS_SYNC_ALWAYS, 10);
    snprintf(lock, sizeof lock, "%s/LOCK", dir);
    snprintf(other, sizeof other, "%s/LOCK.other", dir);
    if (replace) {
        int fd = open(other, O_RDWR | O_CREAT | O_EXCL, 0644);
        CHECK(fd >= 0 && ftruncate(fd, 4096) == 0 && close(fd) == 0 && rename(other, lock) == 0,
              "%s: replace: %s", what, strerror(errno));
    } else
        CHECK(unlink(lock) == 0, "%s: unlink: %s", what, strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        mmfs_options o = opts(MMFS_SYNC_ALWAYS);
        mmfs_db *other;
        if (mmfs_open(dir, &o, &other) != MMFS_OK) _exit(2);
        for (int k = 40; k < 45; k++) {
            char name[16];
            key_of(k, name);
            if (mmfs_set_kv(other, mmfs_str(name), mmfs_str("from the other process")) != MMFS_OK) _exit(3);
        }
        _exit(mmfs_close(other) == MMFS_OK ? 0 : 4);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "%s: the other process failed (status %d)", what, status);
    for (int k = 40; k < 45; k++) {
        M->has[k] = 1;
        M->unsure[k] = 0;
        M->len[k] = strlen("from the other process");
        memcpy(M->val[k], "from the other process", M->len[k]);
    }
    int rc = model_set(db, 30, 77, 500);
    CHECK(rc == MMFS_IO, "%s: the first handle's write gives %s, want IO", what, mmfs_err_name(rc));
    if (rc) M->unsure[30] = 0; /* refused before writing */
    mmfs_close(db);
    check_reopen(dir, what);
}

/* While armed, the allocations libfiu sees fail from the Nth on (libfiu
** calls this for each malloc, calloc and realloc). */
static long alloc_count, alloc_fail_at;

static int nth_alloc(const char *name, int *failnum, void **failinfo, unsigned int *flags) {
    (void)name, (void)failnum, (void)failinfo, (void)flags;
    return alloc_count++ >= alloc_fail_at;
}

/* Every allocation of a write failed in turn, until the write needs no
** more: each failed write returns an error and leaves nothing behind, not
** even after a reopen (a frame written before the engine ran out of
** memory used to come back). */
static void nomem_sweep(void) {
    static const char *const pts[] = {"libc/mm/malloc", "libc/mm/calloc", "libc/mm/realloc"};
    char dir[4200];
    const char *what = "allocation failure in a write";
    new_dir(dir, sizeof dir, "nomem");
    mmfs_db *db = base_store(dir, MMFS_SYNC_ALWAYS, 5);
    long failed = 0, n, mems = 0;
    /* Most writes allocate nothing (the engine grows its tables now and
    ** then): write new keys with allocations failing from the Nth on, for
    ** N = 0, 1, 2, 0, ..., so that the growths hit every step. */
    for (n = 0; n < 1500; n++) {
        int k = 20 + (int)(n % 40);
        char name[16];
        key_of(k, name);
        alloc_count = 0;
        alloc_fail_at = n % 3;
        for (size_t i = 0; i < 3; i++) fiu_enable_external(pts[i], 1, NULL, 0, nth_alloc);
        int rc = n % 2 ? model_set(db, k, 500 + (uint64_t)n, 300)
                       : mmfs_append_memory(db, mmfs_str("a memory to index"), NULL, 0, NULL, NULL);
        for (size_t i = 0; i < 3; i++) fiu_disable(pts[i]);
        if (rc == MMFS_OK) {
            mems += n % 2 == 0;
            continue;
        }
        failed++;
        CHECK(mmfs_errmsg(NULL)[0] != 0, "%s %ld: %s without a message", what, n, mmfs_err_name(rc));
        int maybe = strstr(mmfs_errmsg(NULL), "may be present") != NULL;
        if (n % 2 && !maybe) M->unsure[k] = 0; /* must be absent */
        mmfs_close(db);
        check_reopen(dir, what);
        mmfs_options o = opts(MMFS_SYNC_ALWAYS);
        REQUIRE_OK(mmfs_open(dir, &o, &db));
        mmfs_store_stats st;
        CHECK_OK(mmfs_stats(db, &st));
        if (n % 2 == 0 && maybe && st.memories == (uint64_t)mems + 1) mems++;
        CHECK(st.memories == (uint64_t)mems, "%s %ld: %" PRIu64 " memories after reopen, want %ld (a failed append came back)",
              what, n, st.memories, mems);
        if (ct_failures() > 10) break;
    }
    printf("fault: nomem: %ld writes, %ld failed for want of memory\n", n, failed);
    CHECK(failed > 0, "%s: no write ever failed: the allocation faults did not fire", what);
    mmfs_close(db);
    check_reopen(dir, what);
}

/* Random faults on every point at once, checked by a reopen each round. */
static void random_rounds(long rounds, uint64_t seed) {
    char dir[4200];
    new_dir(dir, sizeof dir, "random");
    reset_model();
    ct_rng r = {seed};
    long errors = 0, readonly = 0, ops = 0;
    static const struct {
        const char *point;
        int err;
        float p;
    } pts[] = {{"posix/io/rw/pwrite", ENOSPC, 0.03f},
               {"posix/io/rw/pwrite/reduce", 0, 0.05f},   {"posix/io/sync/fdatasync", EIO, 0.01f},
               {"posix/mm/mmap", ENOMEM, 0.1f},            {"posix/io/oc/open", EIO, 0.1f},
               {"posix/io/dir/rename", EIO, 0.1f},         {"mmfs-test/posix_fallocate", ENOSPC, 0.1f},
               {"posix/io/rw/ftruncate", EIO, 0.1f}};
    fiu_set_prng_seed((unsigned)seed);
    for (long round = 0; round < rounds; round++) {
        faults_off();
        if (round % 5 == 4) {
            char m[4300];
            snprintf(m, sizeof m, "%s/MANIFEST", dir);
            CHECK(unlink(m) == 0, "random round %ld: remove MANIFEST: %s", round, strerror(errno));
        }
        mmfs_options o = opts(ct_below(&r, 2) ? MMFS_SYNC_ALWAYS : MMFS_SYNC_NONE);
        mmfs_db *db;
        int rc = mmfs_open(dir, &o, &db);
        if (rc) {
            ct_fail(__FILE__, __LINE__, "random round %ld: open without faults: %s: %s", round, mmfs_err_name(rc),
                    mmfs_errmsg(NULL));
            break;
        }
        for (size_t i = 0; i < sizeof pts / sizeof *pts; i++)
            fiu_enable_random(pts[i].point, 1, pts[i].err ? (void *)(long)pts[i].err : NULL, 0, pts[i].p);
        for (int i = 0; i < 30; i++) {
            ops++;
            rc = model_set(db, (int)ct_below(&r, NK - 1), ct_next(&r), ct_below(&r, 4) ? 500 : 8000);
            if (rc == MMFS_OK) continue;
            errors++;
            if (!mmfs_errmsg(NULL)[0]) ct_fail(__FILE__, __LINE__, "random round %ld: %s without a message", round,
                                               mmfs_err_name(rc));
            if (rc == MMFS_READONLY) {
                readonly++;
                break;
            }
        }
        faults_off();
        /* sync = none too: the process lives on, so what was written is
        ** in the page cache and must be read back */
        mmfs_close(db);
        char what[64];
        snprintf(what, sizeof what, "random faults, round %ld", round);
        check_reopen(dir, what);
        if (ct_failures() > 20) break;
    }
    printf("fault: random: %ld rounds, %ld writes, %ld failed clearly, %ld turned the handle read-only\n", rounds, ops,
           errors, readonly);
}

int main(int argc, char **argv) {
    int soak = ct_soak(argc, argv);
    long rounds = ct_opt(argc, argv, "--rounds", "MMFS_FAULT_ROUNDS", soak ? 2000 : 60);
    uint64_t seed = (uint64_t)ct_opt(argc, argv, "--seed", "MMFS_FAULT_SEED", (long)(ct_now_ms() & 0xffffff));
    uint64_t t0 = ct_now_ms();
    fiu_init(0);
    /* Under libfiu's POSIX preload?  Else no fault below could fire. */
    fault_on("posix/io/oc/open", EACCES, 0);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    faults_off();
    if (fd >= 0) {
        close(fd);
        fprintf(stderr, "fault_test: libfiu's POSIX preload is not active: run it as `fiu-run -x %s`\n", argv[0]);
        return 1;
    }
    M = calloc(1, sizeof *M);
    root = ct_tmpdir("fault");
    printf("fault_test: seed %" PRIu64 "\n", seed);

    pwrite_fault(EIO);
    pwrite_fault(ENOSPC);
    short_write();
    fdatasync_fault_always(EIO);
    fdatasync_fault_always(ENOSPC);
    fdatasync_fault_batch();
    open_fault("posix/mm/mmap", ENOMEM);
    open_fault("posix/io/oc/open", EACCES);
    open_fault("posix/io/oc/open", EIO);
    /* a directory read that fails is not the end of log/ (it was, and the
    ** first write then made segment 1 anew over the real one) */
    open_fault("posix/io/dir/readdir", EIO);
    open_fault("posix/io/dir/opendir", EIO);
    create_fault("posix/io/dir/rename", EIO);
    create_fault("posix/io/oc/open", ENOSPC);
    create_fault("posix/io/sync/fsync", EIO);
    create_fault("mmfs-test/posix_fallocate", ENOSPC);
    roll_fault("posix/mm/mmap", ENOMEM, MMFS_NOMEM, MMFS_SYNC_ALWAYS, NULL, 0);
    roll_fault("posix/io/oc/open", ENOSPC, MMFS_NOSPACE, MMFS_SYNC_ALWAYS, NULL, 0);
    roll_fault("posix/io/dir/rename", EIO, MMFS_IO, MMFS_SYNC_ALWAYS, NULL, 0);
    roll_fault("mmfs-test/posix_fallocate", ENOSPC, MMFS_NOSPACE, MMFS_SYNC_ALWAYS, NULL, 0);
    /* no fallocate on this file system: the ftruncate fallback fails */
    roll_fault("posix/io/rw/ftruncate", EIO, MMFS_IO, MMFS_SYNC_ALWAYS, "mmfs-test/posix_fallocate", EOPNOTSUPP);
    /* sync = none: the only fdatasync is the seal's, at the roll */
    roll_fault("posix/io/sync/fdatasync", EIO, -1, MMFS_SYNC_NONE, NULL, 0);
    lock_removed_by_other(0);
    lock_removed_by_other(1);
    nomem_sweep();
    random_rounds(rounds, seed);

    faults_off();
    printf("fault_test: %d scenarios, %.1f s, %d failed checks\n", scen_no, (double)(ct_now_ms() - t0) / 1000.0,
           ct_failures());
    ct_rmrf(root);
    free(root);
    free(M);
    return ct_failures() ? 1 : 0;
}
