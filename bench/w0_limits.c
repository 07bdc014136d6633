/*
** w0_limits.c: W0, the machine's limits every other figure is divided by.
**
**   w0_limits fsync DIR COUNT   4 KiB append + fdatasync, and 4 KiB pwrite into
**                               a preallocated file + fdatasync (preallocated by
**                               fallocate, and by writing it), COUNT each, in DIR
**                               (the filesystem of the stores)
**   w0_limits memcpy MIB        memcpy bandwidth over MIB-sized buffers
**   w0_limits mmap FILE BYTES   sequential read of a warm mmap'd file (created
**                               with BYTES of data when missing or of another size),
**                               through a populated mapping, and through a fresh one
**   w0_limits cat FILE          `cat FILE > /dev/null` on the warm file (a W7 peer)
**   w0_limits gcommit DIR THREADS PER
**                               textbook group commit (context for W1g): THREADS
**                               threads, PER durable 400-byte commits each, into a
**                               file in DIR preallocated by writing it
**
** The fastest fsync loop is the limit: it is what one durable commit per call
** can reach on this filesystem.  (A file preallocated with fallocate holds
** unwritten extents: the first write to each block costs a metadata commit,
** so that loop is reported but is rarely the limit.)
**
** The group commit is the least a store can do to share fdatasyncs between
** threads, in a few lines: each commit pwrites its record at the end under
** a mutex, then waits until an fdatasync started after its write has ended;
** when no sync is running, that waiter becomes the leader: it syncs
** everything written so far, then wakes every waiter.  On a machine where
** waking a thread on another CPU costs a sizeable part of an fdatasync, this
** stays well short of THREADS times the fsync limit; W1g is compared with it.
*/
#include "benchutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLK 4096
#define REC 400 /* a group commit record: about one corpus memory and its frame */
#define MAXTHREADS 64

enum { GROW, FALLOCATED, PREWRITTEN };

/* COUNT 4 KiB writes, each followed by fdatasync, into PATH:
** GROW appends (every sync also commits the new size and block),
** FALLOCATED overwrites a posix_fallocate'd range (on ext4/xfs: unwritten
** extents, so every sync also commits an extent conversion),
** PREWRITTEN overwrites blocks already written and synced (data only: the
** least a durable write can cost on this filesystem). */
static double fsync_loop(const char *path, long count, int mode) {
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd < 0) bu_die("%s: %s", path, strerror(errno));
    char buf[BLK];
    if (mode == FALLOCATED) {
        int rc = posix_fallocate(fd, 0, (off_t)count * BLK);
        if (rc) bu_die("fallocate %s: %s", path, strerror(rc));
    } else if (mode == PREWRITTEN) {
        memset(buf, 0, sizeof buf);
        for (long i = 0; i < count; i++)
            if (write(fd, buf, BLK) != BLK) bu_die("write %s: %s", path, strerror(errno));
    }
    if (fsync(fd)) bu_die("fsync %s: %s", path, strerror(errno));
    int prealloc = mode != GROW;
    memset(buf, 'x', sizeof buf);
    double t0 = bu_now();
    for (long i = 0; i < count; i++) {
        ssize_t w = prealloc ? pwrite(fd, buf, BLK, (off_t)i * BLK) : write(fd, buf, BLK);
        if (w != BLK) bu_die("write %s: %s", path, strerror(errno));
        if (fdatasync(fd)) bu_die("fdatasync %s: %s", path, strerror(errno));
    }
    double dt = bu_now() - t0;
    close(fd);
    unlink(path);
    return (double)count / dt;
}

static void do_fsync(const char *dir, long count) {
    char a[4096], p[4096];
    snprintf(a, sizeof a, "%s/w0-append.dat", dir);
    snprintf(p, sizeof p, "%s/w0-pwrite.dat", dir);
    double ra = fsync_loop(a, count, GROW);
    double rf = fsync_loop(p, count, FALLOCATED);
    double rp = fsync_loop(p, count, PREWRITTEN);
    double lim = ra > rp ? ra : rp;
    if (rf > lim) lim = rf;
    bu_result("W0", "machine", "fsync_append_per_s", ra, "ops/s");
    bu_result("W0", "machine", "fsync_pwrite_fallocated_per_s", rf, "ops/s");
    bu_result("W0", "machine", "fsync_pwrite_per_s", rp, "ops/s");
    bu_result("W0", "machine", "fsync_limit_per_s", lim, "ops/s");
}

/* The group commit: the file, the end of what was written, and how far it
** is known to be durable; SYNCING while a leader is in fdatasync. */
struct gcommit {
    int fd;
    const char *path;
    pthread_mutex_t mu;
    pthread_cond_t synced_cv;
    off_t written, durable;
    int syncing;
    long syncs;
};

struct gc_thread {
    struct gcommit *g;
    long per;
    char rec[REC];
};

static void gc_lock(struct gcommit *g) {
    int rc = pthread_mutex_lock(&g->mu);
    if (rc) bu_die("pthread_mutex_lock: %s", strerror(rc));
}

static void gc_unlock(struct gcommit *g) {
    int rc = pthread_mutex_unlock(&g->mu);
    if (rc) bu_die("pthread_mutex_unlock: %s", strerror(rc));
}

/* One durable commit of REC: returns once an fdatasync that started after
** the record was written has completed. */
static void gc_commit(struct gcommit *g, const char *rec) {
    gc_lock(g);
    if (pwrite(g->fd, rec, REC, g->written) != REC) bu_die("pwrite %s: %s", g->path, strerror(errno));
    g->written += REC;
    off_t mine = g->written;
    while (g->durable < mine) {
        if (g->syncing) {
            int rc = pthread_cond_wait(&g->synced_cv, &g->mu);
            if (rc) bu_die("pthread_cond_wait: %s", strerror(rc));
            continue;
        }
        g->syncing = 1; /* the leader: syncs every record written so far */
        off_t upto = g->written;
        gc_unlock(g);
        if (fdatasync(g->fd)) bu_die("fdatasync %s: %s", g->path, strerror(errno));
        gc_lock(g);
        g->syncing = 0;
        g->durable = upto;
        g->syncs++;
        int rc = pthread_cond_broadcast(&g->synced_cv);
        if (rc) bu_die("pthread_cond_broadcast: %s", strerror(rc));
    }
    gc_unlock(g);
}

static void *gc_thread_main(void *p) {
    struct gc_thread *t = p;
    for (long i = 0; i < t->per; i++) gc_commit(t->g, t->rec);
    return NULL;
}

/* THREADS threads, PER commits each, into a file of DIR preallocated by
** writing zeros (and synced), so the commits overwrite written blocks as in
** the fastest fsync loop; timed from starting the threads to joining them,
** as mmfs_bench's W1g. */
static void do_gcommit(const char *dir, int threads, long per) {
    if (threads < 1 || threads > MAXTHREADS || per < 1)
        bu_die("gcommit: THREADS must be 1..%d and PER at least 1", MAXTHREADS);
    char path[4096];
    snprintf(path, sizeof path, "%s/w0-gcommit.dat", dir);
    struct gcommit g = {.path = path};
    g.fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (g.fd < 0) bu_die("%s: %s", path, strerror(errno));
    off_t bytes = (off_t)threads * per * REC;
    char zero[BLK];
    memset(zero, 0, sizeof zero);
    for (off_t off = 0; off < bytes; off += BLK)
        if (write(g.fd, zero, BLK) != BLK) bu_die("write %s: %s", path, strerror(errno));
    if (fsync(g.fd)) bu_die("fsync %s: %s", path, strerror(errno));
    int rc = pthread_mutex_init(&g.mu, NULL);
    if (rc) bu_die("pthread_mutex_init: %s", strerror(rc));
    rc = pthread_cond_init(&g.synced_cv, NULL);
    if (rc) bu_die("pthread_cond_init: %s", strerror(rc));

    pthread_t tid[MAXTHREADS];
    struct gc_thread targ[MAXTHREADS];
    for (int t = 0; t < threads; t++) {
        targ[t].g = &g;
        targ[t].per = per;
        memset(targ[t].rec, 'a' + t % 26, REC);
    }
    double t0 = bu_now();
    for (int t = 0; t < threads; t++) {
        rc = pthread_create(&tid[t], NULL, gc_thread_main, &targ[t]);
        if (rc) bu_die("pthread_create: %s", strerror(rc));
    }
    for (int t = 0; t < threads; t++) {
        rc = pthread_join(tid[t], NULL);
        if (rc) bu_die("pthread_join: %s", strerror(rc));
    }
    double dt = bu_now() - t0;
    long commits = (long)threads * per;
    if (g.written != bytes || g.durable != bytes)
        bu_die("gcommit: %lld bytes written, %lld durable, want %lld", (long long)g.written,
               (long long)g.durable, (long long)bytes);
    if (close(g.fd)) bu_die("close %s: %s", path, strerror(errno));
    if (unlink(path)) bu_die("unlink %s: %s", path, strerror(errno));
    pthread_cond_destroy(&g.synced_cv);
    pthread_mutex_destroy(&g.mu);
    fprintf(stderr, "gcommit %d threads: %ld commits, %ld fdatasyncs, %.3f s\n", threads, commits, g.syncs, dt);
    char metric[64];
    snprintf(metric, sizeof metric, "group_commit_%dt_per_s", threads);
    bu_result("W0", "machine", metric, (double)commits / dt, "ops/s");
    snprintf(metric, sizeof metric, "group_commit_%dt_commits_per_sync", threads);
    bu_result("W0", "machine", metric, (double)commits / (double)g.syncs, "commits");
}

static void do_memcpy(long mib) {
    size_t n = (size_t)mib << 20;
    char *src = malloc(n), *dst = malloc(n);
    if (!src || !dst) bu_die("out of memory");
    memset(src, 1, n);
    memset(dst, 2, n);
    int reps = (int)(4096 / mib);
    if (reps < 2) reps = 2;
    double t0 = bu_now();
    for (int i = 0; i < reps; i++) {
        src[i] = (char)i;
        memcpy(dst, src, n);
    }
    double dt = bu_now() - t0;
    uint64_t sink = bu_consume(dst, 64);
    fprintf(stderr, "memcpy sink %llu\n", (unsigned long long)sink);
    bu_result("W0", "machine", "memcpy_gb_per_s", (double)n * reps / dt / 1e9, "GB/s");
    free(src);
    free(dst);
}

/* Makes FILE hold exactly BYTES of non-zero data, then reads it once so the
** page cache is warm. */
static void prepare_file(const char *file, uint64_t bytes) {
    struct stat st;
    if (stat(file, &st) != 0 || (uint64_t)st.st_size != bytes) {
        int fd = open(file, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        if (fd < 0) bu_die("%s: %s", file, strerror(errno));
        static char buf[1 << 20];
        uint64_t seed = 7;
        for (size_t i = 0; i < sizeof buf; i += 8) {
            uint64_t r = bu_rand(&seed);
            memcpy(buf + i, &r, 8);
        }
        for (uint64_t off = 0; off < bytes;) {
            size_t n = bytes - off < sizeof buf ? (size_t)(bytes - off) : sizeof buf;
            if (write(fd, buf, n) != (ssize_t)n) bu_die("write %s: %s", file, strerror(errno));
            off += n;
        }
        close(fd);
    }
    int fd = open(file, O_RDONLY);
    if (fd < 0) bu_die("%s: %s", file, strerror(errno));
    static char buf[1 << 20];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
}

/* Two sequential reads of the warm file through mmap:
** mmap_read_gb_per_s, the limit: the mapping is populated before the clock
** starts (MAP_POPULATE), so only reading memory through it is timed;
** mmap_fault_read_gb_per_s, for context: mmap + first touch (page faults)
** + munmap, all timed, as a reader of a fresh mapping pays. */
static void do_mmap(const char *file, uint64_t bytes) {
    prepare_file(file, bytes);
    int fd = open(file, O_RDONLY);
    if (fd < 0) bu_die("%s: %s", file, strerror(errno));

    double t0 = bu_now();
    void *p = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) bu_die("mmap %s: %s", file, strerror(errno));
    uint64_t sink = bu_consume(p, bytes);
    munmap(p, bytes);
    double dt_fault = bu_now() - t0;

    p = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) bu_die("mmap %s: %s", file, strerror(errno));
    t0 = bu_now();
    sink += bu_consume(p, bytes);
    double dt = bu_now() - t0;
    munmap(p, bytes);
    close(fd);
    fprintf(stderr, "mmap sink %llu\n", (unsigned long long)sink);
    bu_result("W0", "machine", "mmap_read_gb_per_s", (double)bytes / dt / 1e9, "GB/s");
    bu_result("W0", "machine", "mmap_fault_read_gb_per_s", (double)bytes / dt_fault / 1e9, "GB/s");
}

static void do_cat(const char *file) {
    struct stat st;
    if (stat(file, &st) != 0) bu_die("%s: %s", file, strerror(errno));
    prepare_file(file, (uint64_t)st.st_size); /* warm, like the mmap read */
    double t0 = bu_now();
    pid_t pid = fork();
    if (pid < 0) bu_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        if (nul < 0 || dup2(nul, 1) < 0) _exit(127);
        execlp("cat", "cat", file, (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
        bu_die("cat %s failed", file);
    double dt = bu_now() - t0;
    bu_result("W7", "cat", "read_gb_per_s", (double)st.st_size / dt / 1e9, "GB/s");
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "fsync")) do_fsync(argv[2], atol(argv[3]));
    else if (argc >= 3 && !strcmp(argv[1], "memcpy")) do_memcpy(atol(argv[2]));
    else if (argc >= 4 && !strcmp(argv[1], "mmap")) do_mmap(argv[2], strtoull(argv[3], NULL, 10));
    else if (argc >= 3 && !strcmp(argv[1], "cat")) do_cat(argv[2]);
    else if (argc >= 5 && !strcmp(argv[1], "gcommit")) do_gcommit(argv[2], atoi(argv[3]), atol(argv[4]));
    else {
        fprintf(stderr, "usage: w0_limits fsync DIR COUNT | memcpy MIB | mmap FILE BYTES | cat FILE"
                        " | gcommit DIR THREADS PER\n");
        return 2;
    }
    return 0;
}
