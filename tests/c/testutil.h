/* testutil.h: helpers shared by the C tests (cmocka). */
#ifndef MMFS_TESTUTIL_H
#define MMFS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "memmapfs.h"

/* A fresh, empty directory for one test, under $MMFS_TEST_TMP (or the
** system temporary directory).  NAME is a readable label.  The returned
** path is malloc'd; free it with mmfs_test_rmdir(). */
char *mmfs_test_dir(const char *name);

/* Removes directory PATH recursively and frees it. */
void mmfs_test_rmdir(char *path);

/* Asserts that expression E is MMFS_OK, printing mmfs_errmsg otherwise. */
#define MMFS_OK_OR_FAIL(e)                                                     \
    do {                                                                      \
        int rc_ = (e);                                                        \
        if (rc_ != MMFS_OK)                                                   \
            fail_msg("%s -> %s: %s", #e, mmfs_err_name(rc_), mmfs_errmsg(NULL)); \
    } while (0)

#endif
