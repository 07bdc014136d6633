/*
** log.h: commit frames (log.c), segments (segment.c) and the log as a
** whole.  Shared by log.c, segment.c, recover.c, write.c and db.c.
*/
#ifndef MMFS_LOG_H
#define MMFS_LOG_H

#include "checksum.h"
#include "internal.h"

/* A commit frame: one call or one atomic batch, in the log whole or not at
** all.  Layout (little-endian):
**
**   0  u32 magic        MMFS__FRAME_MAGIC
**   4  u32 frame_len    whole frame incl. checksum and padding; multiple of 8
**   8  u64 first_lsn    LSN of the first record; records count up from it
**   16 u32 count        records in the frame
**   20 u32 flags        MMFS__FRAME_SEAL: the last frame of a full segment
**   24 u32 body_len     bytes of records
**   28 u32 hdr_crc      CRC32C of bytes 0..27, so a torn length is caught
**   32 records, then the checksum (4 or 16 bytes) of bytes [0, 32+body_len),
**   then zeros up to frame_len.
*/
#define MMFS__FRAME_MAGIC 0x52464d4du /* "MMFR" */
#define MMFS__FRAME_HDR 32
#define MMFS__FRAME_SEAL 1u
/* A frame compaction wrote (compact.c): its records keep their original
** LSNs, increasing but with gaps, and it may start past the LSN expected;
** recovery accepts one only in segments MANIFEST says compaction wrote. */
#define MMFS__FRAME_COMPACT 2u
#define MMFS__FRAME_MAX ((size_t)2 << 30)

/* Segment header: 64 bytes at offset 0 of every segment file.
**   0 "MMFSLOG\0"  8 u32 format  12 u32 checksum type  16 u64 segment number
**   24 u64 file size  32 u64 durable stamp  40 u32 CRC32C of the stamp
**   44..59 zero  60 u32 CRC32C of bytes 0..31 and 28 zeros (segment.c) */
#define MMFS__SEG_HDR 64
#define MMFS__SEG_FORMAT 1
/* MANIFEST format: 2 adds last_segment (format-1 stores open as they are);
** 3 adds compacted (written only by a store that was compacted). */
#define MMFS__FORMAT 3

typedef struct mmfs__frame {
    uint64_t first_lsn;
    uint32_t count;
    uint32_t flags;
    uint32_t body_len;
    uint32_t frame_len;
    const uint8_t *body;
} mmfs__frame;

static inline size_t mmfs__frame_size(size_t body_len, const mmfs__sum *s) {
    return (MMFS__FRAME_HDR + body_len + s->len + 7) & ~(size_t)7;
}

/* Fills the header of the frame in BUF (body already at BUF+32) and its
** checksum and padding.  BUF has mmfs__frame_size(body_len) bytes. */
void mmfs__frame_finish(uint8_t *buf, uint64_t first_lsn, uint32_t count, uint32_t flags,
                        size_t body_len, const mmfs__sum *s);

/* Checks the frame at P (AVAIL bytes to the end of the segment's data):
** header, checksum, records.  EXPECT_LSN: its first LSN must be this (0:
** any).  Returns 1 and fills *f when valid, else 0 with *why set. */
int mmfs__frame_check(const uint8_t *p, size_t avail, uint64_t expect_lsn, const mmfs__sum *s,
                      mmfs__frame *f, const char **why);

/* 1 if the 32 bytes at P are a header whose CRC checks (a candidate). */
int mmfs__frame_header_ok(const uint8_t *p);

/* lock.c: ROOT/LOCK of the store in DIR, for the handle (store/db.h's
** mmfs__lock_* wrap these with the handle's fields).
** mmfs__lockf_open: opens LOCK (creates and sizes it unless RO) and maps
**   its first page shared (read-only when RO) into *PAGE; *CREATED = 1 when
**   it had to be sized.  Errors: MMFS_NOTFOUND (RO and no store), MMFS_IO.
** mmfs__lockf_take: flock(LOCK_EX), polled up to TIMEOUT_MS (0: one try).
**   Errors: MMFS_BUSY, MMFS_IO.  mmfs__lockf_drop releases it.
** mmfs__lockf_check: MMFS_IO if LOCK was removed, replaced or truncated
**   since it was opened (call under the flock, before the page is read).
** mmfs__lockf_close: unmaps PAGE (may be NULL), closes LOCK_FD (may be -1). */
int mmfs__lockf_open(const char *dir, int ro, int *lock_fd, void **page, int *created);
int mmfs__lockf_take(int lock_fd, const char *dir, int timeout_ms);
void mmfs__lockf_drop(int lock_fd);
int mmfs__lockf_check(int lock_fd, const char *dir);
void mmfs__lockf_close(int lock_fd, void *page);

#endif
