/*
** segment.c: log segment files.  A segment file has its full size from the
** start (ftruncate: sparse) and is mapped read-only once, never shrunk or
** unmapped while the handle lives (slices point into it).  Ahead of the
** written end, the writer keeps about 1 MiB of the file allocated and
** written with real zeros (mmfs__seg_zero_ahead): an fdatasync of frames
** written there then flushes data only, where a frame written into a
** preallocated-but-unwritten extent would also cost a journal commit for
** the extent's conversion, and a store takes the space it uses plus 1 MiB,
** not the whole segment.  A new segment is made under a temporary name and
** linked into place once its header is durable, so a crash never leaves a
** half-made segment under a real name; link(), unlike rename(), fails when
** the name exists, so no mistake about which segments exist (a directory
** read that failed, a second process) can put an empty segment over a full
** one.  The directory is fsynced after the link, and MANIFEST then records
** the new last segment, before the first frame in it can be acknowledged.
**
** The durable stamp (header bytes 32..43): after an fdatasync covered the
** log up to offset D of a segment, the writer stamps D there (u64, then
** the CRC32C of those 8 bytes).  The stamp is made durable by the next
** sync, so it never claims more than what was synced.  Recovery refuses a
** segment whose frames end before its stamp: acknowledged, synced frames
** were lost (a truncated file, a tampered last frame in a keyed store).
** The header checksum at 60 covers bytes 0..31 with 32..59 taken as
** zeros, which is what format-1 segments (no stamp) always had.
*/
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void mmfs__seg_path(const mmfs__log *lg, uint32_t no, char *buf, size_t len) {
    snprintf(buf, len, "%s/%08u.seg", lg->log_dir, no);
}

void mmfs__cseg_path(const mmfs__log *lg, uint32_t no, char *buf, size_t len) {
    snprintf(buf, len, "%s/%08u.cseg", lg->log_dir, no);
}

mmfs__seg *mmfs__seg_find(mmfs__log *lg, uint32_t no) {
    if (lg->nsegs == 0 || no < lg->segs[0].no) return NULL;
    size_t i = no - lg->segs[0].no;
    return i < lg->nsegs ? &lg->segs[i] : NULL;
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

/* The header checksum: bytes 0..31, then 28 zeros in place of the stamp. */
static uint32_t header_crc(const uint8_t *h) {
    static const uint8_t zeros[28];
    return mmfs__crc32c(mmfs__crc32c(0, h, 32), zeros, sizeof zeros);
}

static void make_header(uint8_t h[MMFS__SEG_HDR], int sumtype, uint32_t no, uint64_t size) {
    memset(h, 0, MMFS__SEG_HDR);
    memcpy(h, "MMFSLOG", 8);
    mmfs__st32(h + 8, MMFS__SEG_FORMAT);
    mmfs__st32(h + 12, (uint32_t)sumtype);
    mmfs__st64(h + 16, no);
    mmfs__st64(h + 24, size);
    mmfs__st32(h + 60, header_crc(h));
}

int mmfs__seg_write_header(int fd, int sumtype, uint32_t no, uint64_t size) {
    uint8_t h[MMFS__SEG_HDR];
    make_header(h, sumtype, no, size);
    return pwrite(fd, h, sizeof h, 0) == (ssize_t)sizeof h ? 0 : (errno ? errno : EIO);
}

/* The durable stamp in header H, or 0 when there is none (format-1
** segments, a segment never synced, a stamp whose write was torn). */
static uint64_t stamp_of(const uint8_t *h) {
    uint64_t d = mmfs__ld64(h + 32);
    return mmfs__ld32(h + 40) == mmfs__crc32c(0, h + 32, 8) ? d : 0;
}

void mmfs__seg_stamp(int fd, uint64_t off) {
    uint8_t b[12];
    mmfs__st64(b, off);
    mmfs__st32(b + 8, mmfs__crc32c(0, b, 8));
    /* A stamp that fails to be written only weakens the check at open. */
    (void)!pwrite(fd, b, sizeof b, 32);
}

static int push_seg(mmfs__log *lg, const mmfs__seg *s) {
    if (lg->nsegs == lg->capsegs) {
        size_t cap = lg->capsegs ? lg->capsegs * 2 : 8;
        mmfs__seg *n = realloc(lg->segs, cap * sizeof *n);
        if (!n) return mmfs__err(MMFS_NOMEM, "out of memory for the segment table");
        lg->segs = n;
        lg->capsegs = cap;
    }
    lg->segs[lg->nsegs++] = *s;
    return MMFS_OK;
}

int mmfs__seg_open(mmfs__log *lg, uint32_t no) {
    char path[4096];
    mmfs__seg_path(lg, no, path, sizeof path);
    int fd = open(path, (lg->opt->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && no <= lg->compact_seg) {
        /* MANIFEST switched to a compaction's output, whose renames from
        ** .cseg a crash (or the compacting handle, right now) left undone:
        ** the file under its first name is the same segment. */
        mmfs__cseg_path(lg, no, path, sizeof path);
        fd = open(path, (lg->opt->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) mmfs__seg_path(lg, no, path, sizeof path);
    }
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
    uint64_t want = mmfs__ld64(hdr + 24), stamp = stamp_of(hdr);
    /* (Repair goes on: recovery then cuts there, keeping the rest.) */
    if (header_crc(hdr) == mmfs__ld32(hdr + 60) && stamp > (uint64_t)st.st_size && !lg->opt->repair) {
        close(fd);
        return mmfs__err(MMFS_CORRUPT,
                         "log/%08u.seg: offset %lld: the file ends here, but it was synced up to offset "
                         "%llu: acknowledged writes are lost (was the file truncated?)",
                         no, (long long)st.st_size, (unsigned long long)stamp);
    }
    if (header_crc(hdr) == mmfs__ld32(hdr + 60) && want > (uint64_t)st.st_size &&
        want <= MMFS__SEGMENT_MAX && !lg->opt->readonly) {
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
    else if (mmfs__ld32(h + 60) != header_crc(h))
        why = "segment header checksum mismatch";
    else if (mmfs__ld32(h + 8) != MMFS__SEG_FORMAT)
        why = "unsupported segment format";
    else if (mmfs__ld64(h + 16) != no)
        why = "segment number does not match its file name";
    else if ((int)mmfs__ld32(h + 12) != lg->sum.type)
        why = "segment checksum type differs from MANIFEST";
    else if (mmfs__ld64(h + 24) < (uint64_t)st.st_size)
        why = "segment larger than its header says";
    if (why) {
        munmap(map, (size_t)st.st_size);
        close(fd);
        return mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset 0: %s", no, why);
    }
    mmfs__seg s = {no, fd, map, (size_t)st.st_size, MMFS__SEG_HDR, 0, 0, stamp};
    int rc = push_seg(lg, &s);
    if (rc) {
        munmap(map, (size_t)st.st_size);
        close(fd);
    }
    return rc;
}

#define ZERO_AHEAD ((uint64_t)1 << 20)

/* Allocates [FROM, TO) of FD and writes zeros there.  Returns 0 or errno. */
static int zero_fill(int fd, uint64_t from, uint64_t to) {
    static const uint8_t zeros[65536];
    if (from >= to) return 0;
    /* Reserve first, so a full disk is told before any byte is written;
    ** file systems without fallocate allocate on the writes below. */
    int e = posix_fallocate(fd, (off_t)from, (off_t)(to - from));
    if (e && e != EOPNOTSUPP && e != EINVAL) return e;
    while (from < to) {
        size_t n = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
        ssize_t w = pwrite(fd, zeros, n, (off_t)from);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        from += (uint64_t)w;
    }
    return 0;
}

int mmfs__seg_zero_ahead(mmfs__log *lg, mmfs__seg *s, uint64_t upto) {
    if (s->zeroed >= upto) return MMFS_OK;
    uint64_t from = s->zeroed > s->end ? s->zeroed : s->end;
    uint64_t to = (upto + ZERO_AHEAD + 4095) & ~(uint64_t)4095;
    if (to > s->size) to = s->size;
    int e = zero_fill(s->fd, from, to);
    if (e) {
        char path[4096];
        mmfs__seg_path(lg, s->no, path, sizeof path);
        return mmfs__err_sys(e, "allocate", path);
    }
    s->zeroed = to;
    return MMFS_OK;
}

int mmfs__seg_create(mmfs__log *lg, uint32_t no, uint64_t size) {
    char path[4096], tmp[4100];
    mmfs__seg_path(lg, no, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* A leftover temporary file is only ever an interrupted creation
    ** (creation runs under the writer lock): nothing refers to it. */
    if (unlink(tmp) < 0 && errno != ENOENT) return mmfs__err_sys(errno, "remove", tmp);
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return mmfs__err_sys(errno, "create", tmp);
    uint8_t h[MMFS__SEG_HDR];
    make_header(h, lg->sum.type, no, size);
    uint64_t zeroed = (MMFS__SEG_HDR + ZERO_AHEAD) < size ? MMFS__SEG_HDR + ZERO_AHEAD : size;
    int rc, e = ftruncate(fd, (off_t)size) < 0 ? errno : zero_fill(fd, MMFS__SEG_HDR, zeroed);
    if (e) {
        rc = mmfs__err_sys(e, "allocate", tmp);
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
    if (link(tmp, path) < 0) {
        if (errno == EEXIST)
            rc = mmfs__err(MMFS_CORRUPT,
                           "log/%08u.seg: offset 0: the segment exists although the log ended before it; "
                           "refusing to replace it (reopen the store)",
                           no);
        else
            rc = mmfs__err_sys(errno, "link", tmp);
        goto fail;
    }
    close(fd);
    unlink(tmp);
    if ((rc = mmfs__fsync_dir(lg->log_dir)) != MMFS_OK) return rc;
    if ((rc = mmfs__seg_open(lg, no)) != MMFS_OK) {
        /* Nothing was written in it (the writer lock is held): take it
        ** back, so that the next try can make it again. */
        if (unlink(path) == 0) (void)mmfs__fsync_dir(lg->log_dir);
        return rc;
    }
    mmfs__seg_last(lg)->zeroed = zeroed;
    /* MANIFEST's last segment is a lower bound: a crash (or a failure
    ** here) between the link and this write leaves it one behind, which
    ** open accepts; it never names a segment that was not made. */
    if (no > lg->last_seg) {
        uint32_t old = lg->last_seg;
        lg->last_seg = no;
        if ((rc = mmfs__manifest_write(lg)) != MMFS_OK) lg->last_seg = old;
    }
    return rc;
fail:
    close(fd);
    unlink(tmp);
    return rc;
}

int mmfs__seg_retire_all(mmfs__log *lg) {
    mmfs__seg *n = realloc(lg->old_segs, (lg->nold_segs + lg->nsegs + 1) * sizeof *n);
    if (!n) return mmfs__err(MMFS_NOMEM, "out of memory for the segment table");
    lg->old_segs = n;
    if (lg->nsegs) memcpy(n + lg->nold_segs, lg->segs, lg->nsegs * sizeof *n);
    lg->nold_segs += lg->nsegs;
    lg->nsegs = 0;
    return MMFS_OK;
}

void mmfs__seg_close_all(mmfs__log *lg) {
    for (size_t i = 0; i < lg->nsegs; i++) {
        munmap((void *)lg->segs[i].map, lg->segs[i].size);
        close(lg->segs[i].fd);
    }
    for (size_t i = 0; i < lg->nold_segs; i++) {
        munmap((void *)lg->old_segs[i].map, lg->old_segs[i].size);
        close(lg->old_segs[i].fd);
    }
    free(lg->segs);
    free(lg->old_segs);
    lg->segs = lg->old_segs = NULL;
    lg->nsegs = lg->capsegs = lg->nold_segs = 0;
}
