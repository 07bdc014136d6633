/*
** segment.c: log segment files.  A segment is preallocated at its full
** size, written with pwrite, mapped read-only once and never shrunk or
** unmapped while the handle lives (slices point into it).  A new segment
** is made under a temporary name and renamed into place once its header is
** durable, so a crash never leaves a half-made segment under a real name;
** the directory is fsynced after the rename, before the first frame in it
** can be acknowledged.
*/
#include "db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void mmfs__seg_path(const mmfs_db *db, uint32_t no, char *buf, size_t len) {
    snprintf(buf, len, "%s/%08u.seg", db->log_dir, no);
}

mmfs__seg *mmfs__seg_find(mmfs_db *db, uint32_t no) {
    if (db->nsegs == 0 || no < db->segs[0].no) return NULL;
    size_t i = no - db->segs[0].no;
    return i < db->nsegs ? &db->segs[i] : NULL;
}

int mmfs__fsync_dir(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return mmfs__err_sys(errno, "open directory", path);
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc < 0 && e != EINVAL) return mmfs__err_sys(e, "fsync directory", path);
    return MMFS_OK;
}

static void make_header(uint8_t h[MMFS__SEG_HDR], int sumtype, uint32_t no, uint64_t size) {
    memset(h, 0, MMFS__SEG_HDR);
    memcpy(h, "MMFSLOG", 8);
    mmfs__st32(h + 8, MMFS__FORMAT);
    mmfs__st32(h + 12, (uint32_t)sumtype);
    mmfs__st64(h + 16, no);
    mmfs__st64(h + 24, size);
    mmfs__st32(h + 60, mmfs__crc32c(0, h, 60));
}

static int push_seg(mmfs_db *db, const mmfs__seg *s) {
    if (db->nsegs == db->capsegs) {
        size_t cap = db->capsegs ? db->capsegs * 2 : 8;
        mmfs__seg *n = realloc(db->segs, cap * sizeof *n);
        if (!n) return mmfs__err(MMFS_NOMEM, "out of memory for the segment table");
        db->segs = n;
        db->capsegs = cap;
    }
    db->segs[db->nsegs++] = *s;
    return MMFS_OK;
}

int mmfs__seg_open(mmfs_db *db, uint32_t no) {
    char path[4096];
    mmfs__seg_path(db, no, path, sizeof path);
    int fd = open(path, (db->opt.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) return mmfs__err_sys(errno, "open", path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return mmfs__err_sys(e, "fstat", path);
    }
    if ((uint64_t)st.st_size < MMFS__SEG_HDR) {
        close(fd);
        return mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset 0: segment too short (%lld bytes)", no,
                         (long long)st.st_size);
    }
    uint8_t hdr[MMFS__SEG_HDR];
    if (pread(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
        int e = errno ? errno : EIO;
        close(fd);
        return mmfs__err_sys(e, "read", path);
    }
    /* A file shorter than its header says lost its tail (a copy, a file
    ** system that dropped preallocated blocks): the missing bytes read as
    ** zeros, which recovery treats like any torn tail. */
    uint64_t want = mmfs__ld64(hdr + 24);
    if (mmfs__ld32(hdr + 60) == mmfs__crc32c(0, hdr, 60) && want > (uint64_t)st.st_size &&
        want <= ((uint64_t)1 << 38) && !db->opt.readonly) {
        if (ftruncate(fd, (off_t)want) < 0) {
            int e = errno;
            close(fd);
            return mmfs__err_sys(e, "extend", path);
        }
        st.st_size = (off_t)want;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        close(fd);
        return mmfs__err_sys(e, "mmap", path);
    }
    const uint8_t *h = map;
    const char *why = NULL;
    if (memcmp(h, "MMFSLOG", 8) != 0)
        why = "not a memmapfs log segment";
    else if (mmfs__ld32(h + 60) != mmfs__crc32c(0, h, 60))
        why = "segment header checksum mismatch";
    else if (mmfs__ld32(h + 8) != MMFS__FORMAT)
        why = "unsupported segment format";
    else if (mmfs__ld64(h + 16) != no)
        why = "segment number does not match its file name";
    else if ((int)mmfs__ld32(h + 12) != db->sum.type)
        why = "segment checksum type differs from MANIFEST";
    else if (mmfs__ld64(h + 24) < (uint64_t)st.st_size)
        why = "segment larger than its header says";
    if (why) {
        munmap(map, (size_t)st.st_size);
        close(fd);
        return mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset 0: %s", no, why);
    }
    mmfs__seg s = {no, fd, map, (size_t)st.st_size, MMFS__SEG_HDR, 0};
    int rc = push_seg(db, &s);
    if (rc) {
        munmap(map, (size_t)st.st_size);
        close(fd);
    }
    return rc;
}

/* Preallocates LEN bytes of FD; falls back to ftruncate where the file
** system has no fallocate (the file is then sparse). */
static int prealloc(int fd, uint64_t len) {
    int rc = posix_fallocate(fd, 0, (off_t)len);
    if (rc == EOPNOTSUPP || rc == EINVAL) {
        if (ftruncate(fd, (off_t)len) < 0) return errno;
        return 0;
    }
    return rc;
}

int mmfs__seg_create(mmfs_db *db, uint32_t no, uint64_t size) {
    char path[4096], tmp[4100];
    mmfs__seg_path(db, no, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return mmfs__err_sys(errno, "create", tmp);
    uint8_t h[MMFS__SEG_HDR];
    make_header(h, db->sum.type, no, size);
    int rc, e = prealloc(fd, size);
    if (e) {
        rc = mmfs__err_sys(e, "fallocate", tmp);
        goto fail;
    }
    if (pwrite(fd, h, sizeof h, 0) != (ssize_t)sizeof h) {
        rc = mmfs__err_sys(errno ? errno : EIO, "write", tmp);
        goto fail;
    }
    if (fdatasync(fd) < 0) {
        rc = mmfs__err_sys(errno, "fdatasync", tmp);
        goto fail;
    }
    if (rename(tmp, path) < 0) {
        rc = mmfs__err_sys(errno, "rename", tmp);
        goto fail;
    }
    close(fd);
    if ((rc = mmfs__fsync_dir(db->log_dir)) != MMFS_OK) return rc;
    return mmfs__seg_open(db, no);
fail:
    close(fd);
    unlink(tmp);
    return rc;
}

void mmfs__seg_close_all(mmfs_db *db) {
    for (size_t i = 0; i < db->nsegs; i++) {
        munmap((void *)db->segs[i].map, db->segs[i].size);
        close(db->segs[i].fd);
    }
    free(db->segs);
    db->segs = NULL;
    db->nsegs = db->capsegs = 0;
}
