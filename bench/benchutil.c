/*
** benchutil.c: shared helpers of the benchmark programs (see benchutil.h).
*/
#include "benchutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double bu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bu_cpu_now(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0) bu_die("no thread CPU clock");
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void bu_result(const char *workload, const char *system, const char *metric, double value,
               const char *unit) {
    printf("R %s %s %s %.6g %s\n", workload, system, metric, value, unit);
    fflush(stdout);
}

void bu_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("E ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void bu_rss(uint64_t *total, uint64_t *anon) {
    *total = *anon = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    unsigned long long kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) *total = kb * 1024;
        else if (sscanf(line, "RssAnon: %llu kB", &kb) == 1) *anon = kb * 1024;
    }
    fclose(f);
}

uint64_t bu_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024;
}

static void walk(const char *path, uint64_t *blocks, uint64_t *size, int rm) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                size_t n = strlen(path) + strlen(e->d_name) + 2;
                char *sub = malloc(n);
                if (!sub) bu_die("out of memory");
                snprintf(sub, n, "%s/%s", path, e->d_name);
                walk(sub, blocks, size, rm);
                free(sub);
            }
            closedir(d);
        }
        if (rm) rmdir(path);
    } else if (rm) {
        unlink(path);
    }
    if (!rm) {
        *blocks += (uint64_t)st.st_blocks * 512;
        if (!S_ISDIR(st.st_mode)) *size += (uint64_t)st.st_size;
    }
}

uint64_t bu_disk_bytes(const char *path, uint64_t *apparent) {
    uint64_t blocks = 0, size = 0;
    walk(path, &blocks, &size, 0);
    if (apparent) *apparent = size;
    return blocks;
}

void bu_rmtree(const char *path) {
    uint64_t b = 0, s = 0;
    walk(path, &b, &s, 1);
}

int bu_parse_memline(char *line, bu_memline *m) {
    char *t1 = strchr(line, '\t');
    if (!t1) return -1;
    char *t2 = strchr(t1 + 1, '\t');
    if (!t2) return -1;
    *t2 = 0;
    m->text = t2 + 1;
    m->text_len = strcspn(m->text, "\r\n");
    m->text[m->text_len] = 0;
    m->ntags = 0;
    char *p = t1 + 1;
    while (*p && m->ntags < 8) {
        size_t n = strcspn(p, ",");
        m->tags[m->ntags] = p;
        m->tag_len[m->ntags++] = n;
        if (!p[n]) break;
        p[n] = 0;
        p += n + 1;
    }
    return 0;
}

void bu_lines_open(bu_lines *l, const char *path) {
    l->f = fopen(path, "r");
    if (!l->f) bu_die("%s: %s", path, strerror(errno));
    l->buf = NULL;
    l->cap = 0;
}

char *bu_lines_next(bu_lines *l, size_t *len) {
    ssize_t n = getline(&l->buf, &l->cap, l->f);
    if (n < 0) return NULL;
    if (n > 0 && l->buf[n - 1] == '\n') l->buf[--n] = 0;
    if (len) *len = (size_t)n;
    return l->buf;
}

void bu_lines_close(bu_lines *l) {
    if (l->f) fclose(l->f);
    free(l->buf);
    l->f = NULL;
    l->buf = NULL;
}

char **bu_load_lines(const char *path, size_t max, size_t *n) {
    bu_lines l;
    bu_lines_open(&l, path);
    char **out = calloc(max ? max : 1, sizeof *out);
    if (!out) bu_die("out of memory");
    size_t k = 0, len;
    char *s;
    while (k < max && (s = bu_lines_next(&l, &len))) {
        out[k] = malloc(len + 1);
        if (!out[k]) bu_die("out of memory");
        memcpy(out[k++], s, len + 1);
    }
    bu_lines_close(&l);
    *n = k;
    return out;
}

void bu_free_lines(char **lines, size_t n) {
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

void bu_or_query(const char *line, char *out, size_t cap) {
    const char *p = strchr(line, '\t');
    p = p ? p + 1 : line;
    size_t o = 0;
    out[0] = 0;
    if (*p == '"') {
        snprintf(out, cap, "%.*s", (int)strcspn(p, "\r\n"), p);
        return;
    }
    while (*p) {
        while (*p == ' ') p++;
        size_t n = strcspn(p, " \r\n");
        if (!n) break;
        int w = snprintf(out + o, cap - o, "%s%.*s", o ? " OR " : "", (int)n, p);
        if (w < 0 || (size_t)w >= cap - o) break;
        o += (size_t)w;
        p += n;
    }
}

uint64_t bu_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

char *bu_random_keys(size_t n, long nkeys) {
    char *keys = malloc(n * BU_KEYLEN + 1);
    if (!keys) bu_die("out of memory");
    uint64_t st = 12345;
    char tmp[32];
    for (size_t i = 0; i < n; i++) {
        long k = (long)(bu_rand(&st) % (uint64_t)nkeys);
        snprintf(tmp, sizeof tmp, "key:%08ld", k);
        memcpy(keys + i * BU_KEYLEN, tmp, BU_KEYLEN);
    }
    return keys;
}

uint64_t bu_consume(const void *p, size_t len) {
    const unsigned char *b = p;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, w[4];
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        memcpy(w, b + i, 32);
        s0 += w[0];
        s1 += w[1];
        s2 += w[2];
        s3 += w[3];
    }
    for (; i < len; i++) s0 += b[i];
    return s0 ^ s1 ^ s2 ^ s3;
}

double bu_fork_run(int procs, void (*setup)(int i, void *ud), void (*work)(int i, void *ud), void *ud) {
    int ready[2], go[2];
    if (procs < 1 || procs > 64) bu_die("bu_fork_run: 1..64 processes");
    if (pipe(ready) || pipe(go)) bu_die("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid[64];
    for (int i = 0; i < procs; i++) {
        pid[i] = fork();
        if (pid[i] < 0) bu_die("fork: %s", strerror(errno));
        if (pid[i] == 0) {
            close(ready[0]);
            close(go[1]);
            setup(i, ud);
            char c = 1, g;
            if (write(ready[1], &c, 1) != 1) bu_die("child %d: write: %s", i, strerror(errno));
            /* released when the parent closes its end of GO (EOF) */
            while (read(go[0], &g, 1) < 0 && errno == EINTR) {
            }
            work(i, ud);
            fflush(NULL);
            _exit(0);
        }
    }
    close(ready[1]);
    close(go[0]);
    for (int n = 0; n < procs;) {
        char c;
        ssize_t r = read(ready[0], &c, 1);
        if (r == 1) n++;
        else if (r == 0) bu_die("a child process failed before it was ready");
        else if (errno != EINTR) bu_die("read: %s", strerror(errno));
    }
    double t0 = bu_now();
    close(go[1]);
    int failed = 0;
    for (int i = 0; i < procs; i++) {
        int st;
        while (waitpid(pid[i], &st, 0) < 0)
            if (errno != EINTR) bu_die("waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) failed++;
    }
    double dt = bu_now() - t0;
    close(ready[0]);
    if (failed) bu_die("%d of %d child processes failed", failed, procs);
    return dt;
}
