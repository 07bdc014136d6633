/*
** lock.c: ROOT/LOCK.  flock() on it makes one appender at a time across
** processes; its first page, mapped shared, publishes the written end, the
** durable end and the state version to every process with the store open.
**
** LOCK must stay the file this handle opened, whole, for as long as the
** store is open (as with LMDB's lock.mdb or SQLite's -shm): a LOCK that is
** removed, replaced or truncated while a process has the store open lets a
** second writer in beside it.  Writers check at entry, under the flock and
** before they touch the shared page (mmfs__lock_check); a reader of a LOCK
** truncated under it still gets SIGBUS from the mapped page.
**
** These functions take the store's directory and LOCK's descriptor, not
** the handle: store/db.h's mmfs__lock_* keep the handle's fields.
*/
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

int mmfs__lockf_open(const char *dir, int ro, int *lock_fd, void **page, int *created) {
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    *created = 0;
    int fd = open(path, (ro ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (ro && errno == ENOENT) return mmfs__err(MMFS_NOTFOUND, "%s: no store here", dir);
        return mmfs__err_sys(errno, "open", path);
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return mmfs__err_sys(e, "fstat", path);
    }
    if (st.st_size < PAGE) {
        if (ro) {
            close(fd);
            return mmfs__err(MMFS_NOTFOUND, "%s: no store here (LOCK is incomplete)", dir);
        }
        /* Size it under the flock, so two creators cannot race. */
        if (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0 ||
            (st.st_size < PAGE && ftruncate(fd, PAGE) < 0)) {
            int e = errno;
            close(fd);
            return mmfs__err_sys(e, "size", path);
        }
        flock(fd, LOCK_UN);
        *created = 1;
    }
    void *m = mmap(NULL, PAGE, ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        close(fd);
        return mmfs__err_sys(e, "mmap", path);
    }
    *lock_fd = fd;
    *page = m;
    return MMFS_OK;
}

int mmfs__lockf_take(int lock_fd, const char *dir, int timeout_ms) {
    if (flock(lock_fd, LOCK_EX | LOCK_NB) == 0) return MMFS_OK;
    if (errno != EWOULDBLOCK) return mmfs__err_sys(errno, "flock", dir);
    /* 0 is for event loops (nginx, Neovim): one try, no sleep at all. */
    if (timeout_ms == 0)
        return mmfs__err(MMFS_BUSY, "%s/LOCK: another process holds the writer lock "
                                    "(lock_timeout_ms = 0: not waiting)", dir);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long sleep_us = 50;
    for (;;) {
        struct timespec ts = {0, sleep_us * 1000};
        nanosleep(&ts, NULL);
        if (sleep_us < 5000) sleep_us *= 2;
        if (flock(lock_fd, LOCK_EX | LOCK_NB) == 0) return MMFS_OK;
        if (errno != EWOULDBLOCK) return mmfs__err_sys(errno, "flock", dir);
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= timeout_ms)
            return mmfs__err(MMFS_BUSY, "%s/LOCK: another process held the writer lock for %d ms",
                             dir, timeout_ms);
    }
}

int mmfs__lockf_check(int lock_fd, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    struct stat mine, now;
    if (fstat(lock_fd, &mine) < 0) return mmfs__err_sys(errno, "fstat", path);
    if (mine.st_size < PAGE)
        return mmfs__err(MMFS_IO, "%s: truncated while the store was open; writes refused: close and "
                                  "reopen the store (and never truncate LOCK)", path);
    if (stat(path, &now) < 0) {
        if (errno == ENOENT)
            return mmfs__err(MMFS_IO, "%s: removed while the store was open; writes refused: close and "
                                      "reopen the store (never remove LOCK of an open store)", path);
        return mmfs__err_sys(errno, "stat", path);
    }
    if (now.st_dev != mine.st_dev || now.st_ino != mine.st_ino)
        return mmfs__err(MMFS_IO, "%s: removed and replaced by another file while the store was open; writes refused: "
                                  "close and reopen the store", path);
    return MMFS_OK;
}

void mmfs__lockf_drop(int lock_fd) { flock(lock_fd, LOCK_UN); }

void mmfs__lockf_close(int lock_fd, void *page) {
    if (page) munmap(page, PAGE);
    if (lock_fd >= 0) close(lock_fd);
}
