/* crashutil.c: see crashutil.h. */
#include "crashutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void vreport(const char *file, int line, const char *fmt, va_list ap) {
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void ct_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(file, line, fmt, ap);
    va_end(ap);
    failures++;
}

void ct_fatal(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(file, line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "stopping after a fatal check (%d failed checks)\n", failures + 1);
    exit(1);
}

int ct_failures(void) { return failures; }

void ct_fill(ct_rng *r, void *buf, size_t n) {
    uint8_t *p = buf;
    while (n) {
        uint64_t v = ct_next(r);
        size_t k = n < 8 ? n : 8;
        memcpy(p, &v, k);
        p += k;
        n -= k;
    }
}

char *ct_tmpdir(const char *name) {
    const char *base = getenv("MMFS_TEST_TMP");
    if (!base || !*base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    mkdir(base, 0755);
    size_t n = strlen(base) + strlen(name) + 32;
    char *t = malloc(n);
    if (!t) ct_fatal(__FILE__, __LINE__, "out of memory");
    snprintf(t, n, "%s/%s-XXXXXX", base, name);
    if (!mkdtemp(t)) ct_fatal(__FILE__, __LINE__, "mkdtemp %s: %s", t, strerror(errno));
    return t;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void ct_rmrf(const char *path) {
    if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int copy_file(const char *src, const char *dst, mode_t mode) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
    if (out < 0) {
        close(in);
        return -1;
    }
    static char buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
        if (write(out, buf, (size_t)n) != n) {
            rc = -1;
            break;
        }
    }
    close(in);
    if (close(out) < 0) rc = -1;
    return rc;
}

int ct_copy_tree(const char *src, const char *dst) {
    struct stat st;
    if (stat(src, &st) < 0) return -1;
    if (S_ISREG(st.st_mode)) return copy_file(src, dst, st.st_mode);
    if (!S_ISDIR(st.st_mode)) return 0;
    if (mkdir(dst, 0755) < 0) return -1;
    int rc = 0;
    DIR *d = opendir(src);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)) && rc == 0) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char s[4096], t[4096];
        snprintf(s, sizeof s, "%s/%s", src, e->d_name);
        snprintf(t, sizeof t, "%s/%s", dst, e->d_name);
        rc = ct_copy_tree(s, t);
    }
    closedir(d);
    return rc;
}

uint8_t *ct_read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return NULL;
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        if (n <= 0) {
            free(buf);
            buf = NULL;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (buf) *len = got;
    return buf;
}

int ct_pwrite_file(const char *path, const void *buf, size_t len, uint64_t off) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = pwrite(fd, buf, len, (off_t)off);
    int rc = (n == (ssize_t)len) ? 0 : -1;
    if (close(fd) < 0) rc = -1;
    return rc;
}

int ct_soak(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--soak")) return 1;
    const char *e = getenv("MMFS_SOAK");
    return e && *e && strcmp(e, "0") != 0;
}

long ct_opt(int argc, char **argv, const char *name, const char *env, long def) {
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], name, n) != 0) continue;
        if (argv[i][n] == '=') return strtol(argv[i] + n + 1, NULL, 0);
        if (argv[i][n] == 0 && i + 1 < argc) return strtol(argv[i + 1], NULL, 0);
    }
    const char *e = env ? getenv(env) : NULL;
    if (e && *e) return strtol(e, NULL, 0);
    return def;
}

uint64_t ct_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
