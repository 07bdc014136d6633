/*
** crashutil.h: helpers shared by the crash, power-loss, multi-process and
** fault-injection tests (tests/crash/).  No test framework: these tests
** fork, kill and reopen, so each is a plain program that counts failed
** checks and exits non-zero when there was one.
*/
#ifndef MMFS_CRASHUTIL_H
#define MMFS_CRASHUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "memmapfs.h"

/* Records a failed check (file, line, message) and counts it; does not
** stop the test, so one run reports every broken scenario. */
void ct_fail(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Like ct_fail, then exits: for checks after which nothing makes sense. */
void ct_fatal(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4), noreturn))
#endif
    ;

/* Failed checks so far. */
int ct_failures(void);

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) ct_fail(__FILE__, __LINE__, __VA_ARGS__);                \
    } while (0)

/* E must give STATUS WANT; otherwise the failure names both codes and the
** library's message. */
#define CHECK_RC(e, want)                                                     \
    do {                                                                      \
        int rc_ = (e), want_ = (want);                                        \
        if (rc_ != want_)                                                     \
            ct_fail(__FILE__, __LINE__, "%s -> %s, want %s (%s)", #e,         \
                    mmfs_err_name(rc_), mmfs_err_name(want_),                 \
                    mmfs_errmsg(NULL));                                       \
    } while (0)

#define CHECK_OK(e) CHECK_RC(e, MMFS_OK)

/* E must be MMFS_OK or the test stops. */
#define REQUIRE_OK(e)                                                         \
    do {                                                                      \
        int rc_ = (e);                                                        \
        if (rc_ != MMFS_OK)                                                   \
            ct_fatal(__FILE__, __LINE__, "%s -> %s: %s", #e,                  \
                     mmfs_err_name(rc_), mmfs_errmsg(NULL));                  \
    } while (0)

/* Deterministic random numbers (splitmix64): a test's run is fixed by its
** seed, which every test prints so a failure can be replayed. */
typedef struct ct_rng {
    uint64_t s;
} ct_rng;

static inline uint64_t ct_next(ct_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t ct_below(ct_rng *r, uint64_t n) { return ct_next(r) % n; }

/* Fills BUF with N random bytes. */
void ct_fill(ct_rng *r, void *buf, size_t n);

/* A new empty directory for one test under $MMFS_TEST_TMP (else $TMPDIR,
** else /tmp); malloc'd. */
char *ct_tmpdir(const char *name);

/* rm -rf PATH (PATH itself stays allocated). */
void ct_rmrf(const char *path);

/* Copies the tree SRC to DST (DST must not exist): regular files and
** directories only, which is what a store holds. */
int ct_copy_tree(const char *src, const char *dst);

/* Reads the whole file PATH (malloc'd, *len set); NULL on error. */
uint8_t *ct_read_file(const char *path, size_t *len);

/* Writes LEN bytes of BUF at OFF of the existing file PATH; 0 on success. */
int ct_pwrite_file(const char *path, const void *buf, size_t len, uint64_t off);

/* Soak mode: --soak on the command line or MMFS_SOAK=1 in the environment. */
int ct_soak(int argc, char **argv);

/* The integer value of option NAME ("--cycles=N" or "--cycles N"), else of
** environment variable ENV, else DEF. */
long ct_opt(int argc, char **argv, const char *name, const char *env, long def);

/* Milliseconds from a monotonic clock. */
uint64_t ct_now_ms(void);

#endif
