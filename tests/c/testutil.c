/* testutil.c: temporary directories for the C tests. */
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

char *mmfs_test_dir(const char *name) {
    const char *base = getenv("MMFS_TEST_TMP");
    if (!base || !*base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    mkdir(base, 0755);
    size_t n = strlen(base) + strlen(name) + 32;
    char *tmpl = malloc(n);
    assert_non_null(tmpl);
    snprintf(tmpl, n, "%s/%s-XXXXXX", base, name);
    assert_non_null(mkdtemp(tmpl));
    return tmpl;
}

void mmfs_test_rmdir(char *path) {
    if (!path) return;
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}
