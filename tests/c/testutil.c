/* testutil.c: temporary directories, assertions and the store fixture
** shared by the C tests (see testutil.h). */
#include "testutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

void mmfs_test_assert_slice(mmfs_slice got, const void *want, size_t wlen) {
    if (got.len != wlen)
        fail_msg("slice \"%.*s\" (%zu bytes), want \"%.*s\" (%zu bytes)", (int)got.len,
                 got.ptr ? (const char *)got.ptr : "", got.len, (int)wlen,
                 want ? (const char *)want : "", wlen);
    if (wlen) assert_memory_equal(got.ptr, want, wlen);
}

mmfs_slice mmfs_test_slice(const void *p, size_t n) {
    mmfs_slice s = {p, n};
    return s;
}

mmfs_store_stats mmfs_test_stats(mmfs_db *db) {
    mmfs_store_stats st;
    MMFS_OK_OR_FAIL(mmfs_stats(db, &st));
    return st;
}

uint64_t mmfs_test_lsn(mmfs_db *db) { return mmfs_test_stats(db).lsn; }

mmfs_options mmfs_test_options(uint64_t segment_size) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_NONE;
    if (segment_size) o.segment_size = segment_size;
    return o;
}

mmfs_db *mmfs_test_open(const char *dir, const mmfs_options *o) {
    mmfs_db *db = NULL;
    MMFS_OK_OR_FAIL(mmfs_open(dir, o, &db));
    assert_non_null(db);
    return db;
}

mmfs_db *mmfs_test_open_sync_none(const char *dir, uint64_t segment_size) {
    mmfs_options o = mmfs_test_options(segment_size);
    return mmfs_test_open(dir, &o);
}

int mmfs_test_fx_setup(void **state, const char *name, const mmfs_options *open_opts,
                       const mmfs_options *reopen_opts) {
    mmfs_test_fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    if (reopen_opts) {
        f->reopen_opts = *reopen_opts;
        f->reopen_with = &f->reopen_opts;
    }
    f->dir = mmfs_test_dir(name);
    int rc = mmfs_open(f->dir, open_opts, &f->db);
    if (rc != MMFS_OK) {
        print_error("mmfs_open: %s: %s\n", mmfs_err_name(rc), mmfs_errmsg(NULL));
        mmfs_test_rmdir(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

int mmfs_test_fx_teardown(void **state) {
    mmfs_test_fx *f = *state;
    if (!f) return 0;
    int rc = mmfs_close(f->db);
    mmfs_test_rmdir(f->dir);
    free(f);
    *state = NULL;
    return rc == MMFS_OK ? 0 : -1;
}

mmfs_db *mmfs_test_fx_open(const mmfs_test_fx *f) { return mmfs_test_open(f->dir, f->reopen_with); }

void mmfs_test_reopen(mmfs_test_fx *f) {
    MMFS_OK_OR_FAIL(mmfs_close(f->db));
    f->db = NULL;
    f->db = mmfs_test_fx_open(f);
}

pid_t mmfs_test_fork_piped(int pfd[2]) {
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    close(pid == 0 ? pfd[0] : pfd[1]);
    return pid;
}

int mmfs_test_wait(pid_t pid) {
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

uint32_t mmfs_test_rand(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (uint32_t)((x * 2685821657736338717ull) >> 32);
}

unsigned mmfs_test_env_seed(unsigned dflt) {
    const char *s = getenv("MMFS_TEST_SEED");
    return s && *s ? (unsigned)strtoul(s, NULL, 10) : dflt;
}

void mmfs_test_assert_same_text(const char *a, const char *b, const char *what) {
    if (strcmp(a, b) == 0) return;
    size_t line = 1, i = 0, start = 0;
    while (a[i] && a[i] == b[i]) {
        if (a[i] == '\n') {
            line++;
            start = i + 1;
        }
        i++;
    }
    fail_msg("%s: line %zu differs:\n  %.300s\nvs\n  %.300s", what, line, a + start, b + start);
}

void mmfs_test_read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(*len);
    assert_int_equal(fread(*buf, 1, *len, f), *len);
    fclose(f);
}

void mmfs_test_write_file(const char *path, const uint8_t *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}
