/*
** log.h: the log layer: commit frames (log.c), segments (segment.c),
** MANIFEST (manifest.c), durability (sync.c), LOCK (lock.c), and the
** struct mmfs__log they work on.  Included by the store (store/db.h),
** which embeds an mmfs__log in its handle; nothing here sees the handle.
*/
#ifndef MMFS_LOG_H
#define MMFS_LOG_H

#include "checksum.h"
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>

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
** 3 adds compacted (written only by a store that was compacted); 4 adds
** compress (written only by a store made with compress = "zstd"). */
#define MMFS__FORMAT 4

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

/* Positions in the log are packed as (segment number << 40 | offset), so
** that they compare as integers across segments. */
#define MMFS__POS(seg, off) (((uint64_t)(seg) << 40) | (uint64_t)(off))
#define MMFS__POS_SEG(p) ((uint32_t)((p) >> 40))
#define MMFS__POS_OFF(p) ((p) & (((uint64_t)1 << 40) - 1))

/* One log segment file, mapped read-only for the handle's whole life:
** slices handed out point into MAP, so it is unmapped only at close. */
typedef struct mmfs__seg {
    uint32_t no;
    int fd;
    const uint8_t *map;
    size_t size;      /* file size = mapping size */
    uint64_t end;     /* offset past the last valid frame known here */
    int sealed;       /* ends with a seal frame: the log goes on in no + 1 */
    uint64_t zeroed;  /* [0, zeroed) is known allocated and written (0: unknown) */
    uint64_t stamp;   /* durable stamp read at open: frames reach at least here */
} mmfs__seg;

/* LOCK's first page, shared by every process that has the store open.
** Written under the writer flock; read without it.  Recovery never trusts
** it: open resets it from what the log holds. */
typedef struct mmfs__shared {
    uint64_t magic;
    _Atomic uint64_t written;   /* position past the last written frame */
    _Atomic uint64_t durable;   /* position up to which the log is synced */
    _Atomic uint64_t state_version;
    /* MANIFEST's first segment as the last writer saw it: a compaction
    ** moves it up, and every other handle then rebuilds (mmfs__reload).
    ** 0: written by a library before compaction (unknown). */
    _Atomic uint64_t first_segment;
    /* The LSN of the checkpoint last written (ckpt.c stores it once the
    ** file is durable); a handle that maps an older one switches to it
    ** when it next catches up (recover.c).  0: none announced. */
    _Atomic uint64_t checkpoint_lsn;
} mmfs__shared;

#define MMFS__SHARED_MAGIC 0x314b434f4c53464dull /* "MFSLOCK1" */

/* The log of one handle: what log/ (segment.c, manifest.c, sync.c) works
** on, so that it never sees the handle (store/db.h embeds it as db->log).
** Which lock guards what is the handle's story (db.h, docs/design.md
** "Locks"): the segment table and MANIFEST's values change under the
** handle's writer mutex (wmu), the durability fields under smu. */
typedef struct mmfs__log {
    const char *dir;          /* the store's directory (the handle's string) */
    char *log_dir;            /* DIR/log (owned here, freed by the handle) */
    const mmfs_options *opt;  /* the handle's options: readonly, repair, key, sync, sync_ms */
    mmfs__shared *shm;        /* LOCK's page (mapped by the handle, lock.c) */

    /* MANIFEST's values (manifest.c) */
    mmfs__sum sum;
    uint64_t segment_size;
    uint32_t first_seg;
    uint32_t last_seg;    /* the last segment made (0: unknown, format 1) */
    int compress;         /* "compress zstd" (format 4): 1; 0 when absent */
    int tok_version;      /* "tokenizer": 0 when the line is absent */
    char tok_lang[32];    /* version 1: "none" or a Snowball language */
    /* "compacted" (store/compact.c): segments up to compact_seg may hold
    ** compacted frames (LSN gaps); lsn_floor and id_floor are the next LSN
    ** and memory id when the log was switched: never given again.  0: the
    ** store was never compacted. */
    uint32_t compact_seg;
    uint64_t lsn_floor, id_floor;

    /* The segments (segment.c), and those a switch of the log retired
    ** (kept mapped until close, so slices handed out stay valid). */
    mmfs__seg *segs;
    size_t nsegs, capsegs;
    mmfs__seg *old_segs;
    size_t nold_segs;

    /* Durability (sync.c), under smu. */
    pthread_mutex_t smu;
    pthread_cond_t scond;
    uint64_t written_pos, written_lsn; /* what this process knows written */
    int written_fd;                    /* fd of the segment holding it */
    uint64_t durable_pos, durable_lsn;
    int syncing;
    /* The durable stamp (sync.c): where and when it was last moved on;
    ** touched only by the thread that holds `syncing`, or by close. */
    uint64_t stamp_pos, stamp_ns;
    uint64_t synced_pos; /* the end of this handle's last fdatasync that succeeded */
    int sync_failed;
    char sync_err[256];
    /* batch-mode flusher thread */
    pthread_t flusher;
    int flusher_on, stopping;
    pthread_cond_t fcond;
} mmfs__log;

/* segment.c */
/* Path of segment NO ("DIR/log/00000001.seg") into BUF. */
void mmfs__seg_path(const mmfs__log *lg, uint32_t no, char *buf, size_t len);
/* Path of compaction's output segment NO ("DIR/log/00000001.cseg"):
** written under this name, renamed to .seg once MANIFEST names it. */
void mmfs__cseg_path(const mmfs__log *lg, uint32_t no, char *buf, size_t len);
/* Opens and maps existing segment NO, checks its header; appends it to
** lg->segs.  Errors: MMFS_IO, MMFS_CORRUPT, MMFS_NOMEM. */
int mmfs__seg_open(mmfs__log *lg, uint32_t no);
/* Creates segment NO of SIZE bytes (preallocated, header written, synced,
** renamed into place, directory synced) and opens it. */
int mmfs__seg_create(mmfs__log *lg, uint32_t no, uint64_t size);
/* Makes sure [end, UPTO) of S, and about 1 MiB past it, is allocated and
** written (zeros), so frames written there need no extent conversion.
** Caller holds the writer lock.  Errors: MMFS_NOSPACE, MMFS_IO. */
int mmfs__seg_zero_ahead(mmfs__log *lg, mmfs__seg *s, uint64_t upto);
/* Stamps offset OFF as synced in the header of segment file FD (see
** segment.c); call only after an fdatasync of FD covered OFF. */
void mmfs__seg_stamp(int fd, uint64_t off);
/* Writes the header of segment NO (SIZE bytes) at offset 0 of FD. */
int mmfs__seg_write_header(int fd, int sumtype, uint32_t no, uint64_t size);
/* Moves the current segments to the retired list (mapped until close). */
int mmfs__seg_retire_all(mmfs__log *lg);
/* Unmaps and closes every segment (the retired ones too). */
void mmfs__seg_close_all(mmfs__log *lg);
/* The last segment. */
static inline mmfs__seg *mmfs__seg_last(mmfs__log *lg) { return &lg->segs[lg->nsegs - 1]; }
/* The segment with number NO, or NULL if not open here. */
mmfs__seg *mmfs__seg_find(mmfs__log *lg, uint32_t no);
/* Fsyncs directory PATH (after a create or a rename in it). */
int mmfs__fsync_dir(const char *path);

/* manifest.c: reads DIR/MANIFEST into LG's MANIFEST values (*EXISTS = 0,
** and OK, when there is none), and writes them. */
int mmfs__manifest_read(mmfs__log *lg, int *exists);
int mmfs__manifest_write(mmfs__log *lg);
/* Re-reads the log's extent (first, last and compacted segments, floors)
** from MANIFEST after another handle switched the log.  Errors:
** MMFS_CORRUPT, MMFS_IO. */
int mmfs__manifest_reread(mmfs__log *lg);

/* sync.c */
/* Notes that frames up to POS (last LSN LSN, in segment fd FD) are written. */
void mmfs__sync_written(mmfs__log *lg, uint64_t pos, uint64_t lsn, int fd);
/* Returns once the log is durable up to POS.  Errors: MMFS_READONLY after
** a failed fsync (the handle then refuses writes until reopened). */
int mmfs__sync_wait(mmfs__log *lg, uint64_t pos);
int mmfs__flusher_start(mmfs__log *lg);
void mmfs__flusher_stop(mmfs__log *lg);
/* MMFS_READONLY with the cause if a sync has failed. */
int mmfs__sync_check(mmfs__log *lg);
/* mmfs_sync's work on a usable handle (write.c checks that): waits until
** everything written so far is durable.  OK at once when read-only. */
int mmfs__sync_all(mmfs__log *lg);
/* Moves the durable stamp on to what this handle's syncs covered, now
** (close: a stamp held back for "always" mode's sake is written). */
void mmfs__sync_stamp_final(mmfs__log *lg);

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
