/* testutil.h: helpers shared by the C tests (cmocka). */
#ifndef MMFS_TESTUTIL_H
#define MMFS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

#include "memmapfs.h"

/* ---------------------------------------------------------------------
** Temporary directories.
*/

/* A fresh, empty directory for one test, under $MMFS_TEST_TMP (or the
** system temporary directory).  NAME is a readable label.  The returned
** path is malloc'd; free it with mmfs_test_rmdir(). */
char *mmfs_test_dir(const char *name);

/* Removes directory PATH recursively and frees it. */
void mmfs_test_rmdir(char *path);

/* ---------------------------------------------------------------------
** Assertions.
*/

/* Asserts that expression E is MMFS_OK, printing mmfs_errmsg otherwise. */
#define MMFS_OK_OR_FAIL(e)                                                     \
    do {                                                                      \
        int rc_ = (e);                                                        \
        if (rc_ != MMFS_OK)                                                   \
            fail_msg("%s -> %s: %s", #e, mmfs_err_name(rc_), mmfs_errmsg(NULL)); \
    } while (0)

/* Asserts that expression E gives status WANT (any MMFS_* code, MMFS_OK
** included), printing both names and mmfs_errmsg otherwise. */
#define MMFS_ASSERT_STATUS(e, want)                                                \
    do {                                                                           \
        int rc_ = (e);                                                             \
        if (rc_ != (want))                                                         \
            fail_msg("%s -> %s, want %s (%s)", #e, mmfs_err_name(rc_),             \
                     mmfs_err_name(want), mmfs_errmsg(NULL));                      \
    } while (0)

/* Asserts that slice GOT holds exactly the WLEN bytes at WANT (length
** first, then contents); the failure message shows both as text. */
void mmfs_test_assert_slice(mmfs_slice got, const void *want, size_t wlen);

/* Asserts that slice S holds exactly the C string STR (without its NUL). */
#define MMFS_ASSERT_SLICE_STR(s, str) mmfs_test_assert_slice((s), (str), strlen(str))

/* Asserts that texts A and B (dumps of two handles' answers) are equal;
** the failure names WHAT and shows the first line where they differ. */
void mmfs_test_assert_same_text(const char *a, const char *b, const char *what);

/* ---------------------------------------------------------------------
** Whole files (checkpoints and segments damaged on purpose).
*/

/* Reads file PATH whole into *BUF (malloc'd) and its size into *LEN. */
void mmfs_test_read_file(const char *path, uint8_t **buf, size_t *len);

/* Writes LEN bytes at BUF as file PATH (created or truncated). */
void mmfs_test_write_file(const char *path, const uint8_t *buf, size_t len);

/* ---------------------------------------------------------------------
** Slices and stats.
*/

/* The slice of the N bytes at P (binary-safe, unlike mmfs_str). */
mmfs_slice mmfs_test_slice(const void *p, size_t n);

/* The stats of DB; fails the test if mmfs_stats does. */
mmfs_store_stats mmfs_test_stats(mmfs_db *db);

/* The last LSN applied by DB (mmfs_test_stats(db).lsn). */
uint64_t mmfs_test_lsn(mmfs_db *db);

/* ---------------------------------------------------------------------
** Opening stores.
*/

/* Options the tests open with: mmfs_options_init's defaults, but sync
** MMFS_SYNC_NONE and, unless SEGMENT_SIZE is 0, that segment size. */
mmfs_options mmfs_test_options(uint64_t segment_size);

/* Opens the store in DIR with O (NULL: the library defaults); fails the
** test unless that gives MMFS_OK and a handle. */
mmfs_db *mmfs_test_open(const char *dir, const mmfs_options *o);

/* mmfs_test_open(DIR, &O) with O = mmfs_test_options(SEGMENT_SIZE). */
mmfs_db *mmfs_test_open_sync_none(const char *dir, uint64_t segment_size);

/* ---------------------------------------------------------------------
** The fixture most test files use: a fresh temporary directory with a
** store open in it.  Each file wraps mmfs_test_fx_setup in a setup with
** its own name and options; tests get the fixture from *state:
**
**     static int setup(void **state) {
**         mmfs_options o = mmfs_test_options(4u << 20);
**         return mmfs_test_fx_setup(state, "kv", &o, &o);
**     }
**     ...
**     cmocka_unit_test_setup_teardown(test_x, setup, mmfs_test_fx_teardown),
*/
typedef struct mmfs_test_fx {
    char *dir;   /* the temporary directory (mmfs_test_dir) */
    mmfs_db *db; /* the handle open on it */
    /* What mmfs_test_reopen opens with: &reopen_opts, or NULL for the
    ** library defaults.  Set by mmfs_test_fx_setup. */
    const mmfs_options *reopen_with;
    mmfs_options reopen_opts;
} mmfs_test_fx;

/* A cmocka setup body: allocates the fixture, makes a temporary directory
** labelled NAME, opens a store there with OPEN_OPTS (NULL: the library
** defaults) and keeps REOPEN_OPTS (copied; NULL: the library defaults) for
** mmfs_test_reopen.  Returns 0, or -1 (after printing the error) if the
** open fails. */
int mmfs_test_fx_setup(void **state, const char *name, const mmfs_options *open_opts,
                       const mmfs_options *reopen_opts);

/* The matching cmocka teardown: closes the handle, removes the directory
** and frees the fixture; returns -1 if mmfs_close fails. */
int mmfs_test_fx_teardown(void **state);

/* Opens another handle on F's directory with the reopen options given to
** mmfs_test_fx_setup; fails the test if that does not give MMFS_OK. */
mmfs_db *mmfs_test_fx_open(const mmfs_test_fx *f);

/* Closes F's handle (asserting MMFS_OK) and opens the directory again with
** mmfs_test_fx_open. */
void mmfs_test_reopen(mmfs_test_fx *f);

/* ---------------------------------------------------------------------
** Child processes.
*/

/* Forks a child that reports to the parent through a pipe; fails the test
** if pipe or fork does.  In the child (0 returned) PFD[1] is the write
** end and PFD[0] is closed; in the parent (the child's pid returned)
** PFD[0] is the read end and PFD[1] is closed. */
pid_t mmfs_test_fork_piped(int pfd[2]);

/* Waits for child PID (asserting that waitpid returns it) and returns its
** wait status. */
int mmfs_test_wait(pid_t pid);

/* ---------------------------------------------------------------------
** Seeded random runs (the model tests: B+tree, hash map).
*/

/* The next number of the xorshift64* generator at *STATE (never 0): the
** same sequence on every machine, so a failure's seed reproduces it. */
uint32_t mmfs_test_rand(uint64_t *state);

/* $MMFS_TEST_SEED (rerun a model test with that seed), or DFLT when it is
** unset or empty. */
unsigned mmfs_test_env_seed(unsigned dflt);

#endif
