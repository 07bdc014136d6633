/*
** compact_out.c: compaction's output, log/NNNNNNNN.cseg files numbered
** after the last segment: compacted frames (MMFS__FRAME_COMPACT, their
** records keeping their LSNs), a seal ending each full segment, the frames
** appended during the copy carried over as they are, and the renumbering
** when writers made segments meanwhile.  Each segment is fdatasynced when
** it ends; the last one compact.c syncs and stamps.
**
** Invariant: frames are written in LSN order, and seal_lsn is always the
** LSN a reader expects after the last frame written.
*/
#include "compact.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Body bytes per compacted frame: big enough that frame overhead is
** noise, small enough for the scratch buffer. */
#define BODY_TARGET ((size_t)1 << 20)

int mmfs__cout_err(out *o, int e, const char *what) {
    char path[4096];
    mmfs__cseg_path(&o->db->log, o->no, path, sizeof path);
    return mmfs__err_sys(e, what, path);
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off) {
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Ends segment O->no: SEAL a seal frame (the log goes on in the next),
** then fdatasync and close. */
static int seg_end(out *o, int seal) {
    int e = 0;
    uint64_t *v = realloc(o->ends, (o->nends + 1) * sizeof *v);
    if (!v) return mmfs__err(MMFS_NOMEM, "compact: out of memory");
    o->ends = v;
    o->ends[o->nends++] = o->off;
    if (seal) {
        uint8_t b[64];
        size_t n = mmfs__frame_size(0, &o->db->log.sum);
        /* Not next_lsn: that counts the records of a frame still to come. */
        mmfs__frame_finish(b, o->seal_lsn, 0, MMFS__FRAME_SEAL, 0, &o->db->log.sum);
        e = pwrite_all(o->fd, b, n, o->off);
        o->off += n;
    }
    if (!e && fdatasync(o->fd) < 0) e = errno;
    close(o->fd);
    o->fd = -1;
    return e ? mmfs__cout_err(o, e, seal ? "write" : "fdatasync") : MMFS_OK;
}

/* Starts output segment NO of at least NEED bytes. */
static int seg_start(out *o, uint32_t no, uint64_t need) {
    char path[4096];
    o->no = no;
    mmfs__cseg_path(&o->db->log, no, path, sizeof path);
    (void)unlink(path); /* a leftover: MANIFEST never named it */
    o->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (o->fd < 0) return mmfs__err_sys(errno, "create", path);
    o->size = o->db->log.segment_size;
    if (need > o->size) o->size = (need + 4095) & ~(uint64_t)4095;
    int e = ftruncate(o->fd, (off_t)o->size) < 0 ? errno : 0;
    if (!e) e = mmfs__seg_write_header(o->fd, o->db->log.sum.type, no, o->size);
    o->off = MMFS__SEG_HDR;
    return e ? mmfs__cout_err(o, e, "allocate") : MMFS_OK;
}

/* Writes the frame being built (COUNT records, or none: a marker). */
int mmfs__cout_flush(out *o, uint64_t first_lsn) {
    if (!o->buf) {
        if (!(o->buf = malloc(BODY_TARGET + 4096))) return mmfs__err(MMFS_NOMEM, "compact: out of memory");
        o->cap = BODY_TARGET + 4096;
    }
    const mmfs__sum *s = &o->db->log.sum;
    size_t flen = mmfs__frame_size(o->body, s), seal = mmfs__frame_size(0, s);
    int rc;
    if (o->fd >= 0 && o->off + flen + seal > o->size) {
        if ((rc = seg_end(o, 1)) != MMFS_OK) return rc;
        if ((rc = seg_start(o, o->no + 1, MMFS__SEG_HDR + flen + seal)) != MMFS_OK) return rc;
    } else if (o->fd < 0 && (rc = seg_start(o, o->first, MMFS__SEG_HDR + flen + seal)) != MMFS_OK) {
        return rc;
    }
    mmfs__frame_finish(o->buf, first_lsn, o->count, MMFS__FRAME_COMPACT, o->body, s);
    int e = pwrite_all(o->fd, o->buf, flen, o->off);
    if (e) return mmfs__cout_err(o, e, "write");
    o->last_frame = MMFS__POS(o->no, o->off);
    o->off += flen;
    if (!o->count) o->next_lsn = first_lsn; /* a marker: the log goes on there */
    o->seal_lsn = o->next_lsn;
    o->body = 0;
    o->count = 0;
    return MMFS_OK;
}

/* Appends record R (encoded at R->raw) to the output. */
int mmfs__cout_add(out *o, const mmfs__rec *r) {
    size_t need = MMFS__FRAME_HDR + o->body + r->raw_len + 64;
    int rc;
    if (o->count && o->body + r->raw_len > BODY_TARGET) {
        if ((rc = mmfs__cout_flush(o, o->first_lsn)) != MMFS_OK) return rc;
        need = MMFS__FRAME_HDR + r->raw_len + 64;
    }
    if (need > o->cap) {
        size_t cap = o->cap ? o->cap : BODY_TARGET + 4096;
        while (cap < need) cap *= 2;
        uint8_t *b = realloc(o->buf, cap);
        if (!b) return mmfs__err(MMFS_NOMEM, "compact: out of memory for a frame");
        o->buf = b;
        o->cap = cap;
    }
    if (o->count == 0) o->first_lsn = r->lsn;
    memcpy(o->buf + MMFS__FRAME_HDR + o->body, r->raw, r->raw_len);
    o->body += r->raw_len;
    o->count++;
    o->next_lsn = r->lsn + 1;
    o->kept++;
    o->kept_bytes += r->raw_len;
    return MMFS_OK;
}

/* Appends frame F (checked, not a seal; its bytes at P) as it is: a frame
** does not depend on where it lies. */
static int carry_frame(out *o, const mmfs__frame *f, const uint8_t *p) {
    const mmfs__sum *s = &o->db->log.sum;
    size_t seal = mmfs__frame_size(0, s);
    int rc;
    if (o->off + f->frame_len + seal > o->size) {
        if ((rc = seg_end(o, 1)) != MMFS_OK) return rc;
        if ((rc = seg_start(o, o->no + 1, MMFS__SEG_HDR + f->frame_len + seal)) != MMFS_OK) return rc;
    }
    int e = pwrite_all(o->fd, p, f->frame_len, o->off);
    if (e) return mmfs__cout_err(o, e, "write");
    o->off += f->frame_len;
    o->next_lsn = o->seal_lsn = f->first_lsn + f->count;
    o->kept += f->count;
    o->kept_bytes += f->body_len;
    return MMFS_OK;
}

/* Carries over the frames of DB's log from position FROM to its end
** (appended while the copy ran; caller holds the writer lock). */
int mmfs__cout_carry(mmfs_db *db, out *o, uint64_t from) {
    uint64_t pos = from, to = atomic_load(&db->applied);
    while (pos < to) {
        mmfs__seg *s = mmfs__seg_find(&db->log, MMFS__POS_SEG(pos));
        uint64_t off = MMFS__POS_OFF(pos);
        if (!s) return mmfs__err(MMFS_CORRUPT, "compact: log/%08u.seg is not open here", MMFS__POS_SEG(pos));
        mmfs__frame f;
        const char *why;
        if (off >= s->end) {
            pos = MMFS__POS(s->no + 1, MMFS__SEG_HDR); /* past its seal */
            continue;
        }
        if (!mmfs__frame_check(s->map + off, s->size - off, 0, &db->log.sum, &f, &why))
            return mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset %llu: %s (run verify)", s->no,
                             (unsigned long long)off, why);
        int rc = carry_frame(o, &f, s->map + off);
        if (rc) return rc;
        pos += f.frame_len;
    }
    return MMFS_OK;
}

/* Gives the output segments numbers from NEW_FIRST on (writers made
** segments up to NEW_FIRST - 1 while the copy ran): each header is
** rewritten and the file renamed, the last first so no name is taken. */
int mmfs__cout_renumber(out *o, uint32_t new_first) {
    uint32_t shift = new_first - o->first, last = o->no;
    for (uint32_t no = last + 1; no-- > o->first;) {
        char from[4096], to[4096];
        mmfs__cseg_path(&o->db->log, no, from, sizeof from);
        mmfs__cseg_path(&o->db->log, no + shift, to, sizeof to);
        int fd = no == last ? o->fd : open(from, O_RDWR | O_CLOEXEC), e = 0;
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) e = errno ? errno : EIO;
        if (!e) e = mmfs__seg_write_header(fd, o->db->log.sum.type, no + shift, (uint64_t)st.st_size);
        if (!e && no != last && fdatasync(fd) < 0) e = errno;
        if (fd >= 0 && no != last) close(fd);
        if (!e && rename(from, to) < 0) e = errno;
        if (e) return mmfs__err_sys(e, "renumber", from);
    }
    o->first += shift;
    o->no += shift;
    return MMFS_OK;
}

/* Removes output segments FIRST..LAST under either name (a failed run). */
void mmfs__cout_remove(mmfs_db *db, uint32_t first, uint32_t last) {
    char path[4096];
    for (uint32_t no = first; no && no <= last; no++) {
        mmfs__cseg_path(&db->log, no, path, sizeof path);
        (void)unlink(path);
    }
    (void)mmfs__fsync_dir(db->log.log_dir);
}
