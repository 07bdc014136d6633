/*
** ckpt.h: what the files of checkpoints share.
**
**   ckpt.c         the file: format constants below, naming and listing
**                  the files in ckpt/, building one from a snapshot and
**                  writing it, pruning, mmfs_checkpoint, the checkpointer
**   ckpt_snap.c    the snapshot: what a checkpoint copies under the locks
**                  and merges with the mapped checkpoint after them
**   ckpt_tables.c  section 15: sessions, streams, documents (snapshot,
**                  writing, checking and attaching at open)
**   ckpt_load.c    loading the newest valid checkpoint at open, or a
**                  newer one into a fresh engine (a switch, recover.c)
**
** The format is docs/format.md's; a change to it is a change of
** CK_FORMAT.  Nothing outside these three includes this header.
*/
#ifndef MMFS_CKPT_H
#define MMFS_CKPT_H

#include "db.h"
#include "engine.h"

#define CK_MAGIC "MMFSCKPT"
#define CK_FORMAT 3u
#define CK_HDR 512
#define CK_BLOCK_SHIFT 16 /* checksummed blocks of 64 KiB */

/* Section kinds (docs/format.md, checkpoint format 3).  Open checks the
** header, SEC_SUMS and the sections marked "open"; the others are checked
** a 64 KiB block at a time when first read (engine/ck_verify.c). */
enum {
    SEC_SEGMENTS = 1,  /* open: u32 no, u32 0, u64 end: sealed segments before the anchor's */
    SEC_KV_HASH = 2,   /* u64 hash, u64 pos: open addressing, power-of-two slots */
    SEC_KV_ORDER = 3,  /* u64 pos: the same records by key */
    SEC_RECORDS = 4,   /* open: u64 pos: the latest STATE and POLICY, in log order */
    SEC_INDEX = 5,     /* open: u32 lo, u32 hi, u64 lsn, u32 header crc, u32 0: index segments (ckpt_index.c) */
    SEC_MEM_DIR = 6,   /* u64 base position, u64 at | flags: per MMFS__MEM_BLOCK ids */
    SEC_MEM_TIME = 7,  /* u64 first index, u64 v: runs of the live ids by time, then a sentinel */
    SEC_ROUTES = 8,    /* open: bytes: H_NROUTES x (u32 length, name, zeros to 8) */
    SEC_TAGS = 9,      /* open: bytes: per tag u32 nlen, u32 0, u64 n, at, len, last, name (to 8) */
    SEC_MEM_POS = 10,  /* bytes: the blocks' u32 deltas or u64 positions */
    SEC_MEM_ROUTE = 11, /* bytes: H_RWIDTH bytes of route per id */
    SEC_TIME_IDS = 12, /* u32 id - H_MEM_BASE: the explicit runs' ids */
    SEC_TAG_IDS = 13,  /* bytes: per tag, u32 skip points (first id, offset) then LEB128 gaps */
    SEC_SUMS = 14      /* 16 bytes per block of [CK_HDR, its offset): the blocks' checksums */
};
#define CK_NSEC 14

/* Header offsets. */
enum {
    H_MAGIC = 0,
    H_FORMAT = 8,
    H_SUMTYPE = 12,
    H_LSN = 16,
    H_SIZE = 24,
    H_FIRST_SEG = 32,
    H_ANCHOR_SEG = 36,
    H_ANCHOR_OFF = 40,
    H_ANCHOR_LSN = 48,
    H_TOK_VERSION = 56,
    H_TOK_LANG = 60, /* 32 bytes, NUL padded */
    H_NEXT_MEM = 96,
    H_LIVE_BYTES = 104, /* the engine's live_bytes at the LSN */
    H_NSEC = 112,
    H_BLOCK_SHIFT = 116,
    H_SEC = 120,        /* CK_NSEC x (u64 offset, u64 count), kinds in order */
    H_ANCHOR_SUM = 344, /* 16 bytes: the anchor frame's checksum (zero padded) */
    H_MEM_BASE = 360,   /* u64 the first id of the memory table */
    H_MEM_LIVE = 368,   /* u64 live memories */
    H_NROUTES = 376,    /* u64 routes in SEC_ROUTES */
    H_REC_BYTES = 384,  /* u64 bytes of the records applied up to the LSN (stats' dead_bytes) */
    H_RWIDTH = 392,     /* u32 bytes of SEC_MEM_ROUTE per id: 0, 1, 2 or 4 */
    H_NTIME = 400,      /* u64 live ids in SEC_MEM_TIME's runs */
    H_TABLES = 408,     /* format 3: u64 offset of section 15 (ckpt_tables.c) */
    H_TABLES_LEN = 416, /* u64 its length */
    H_SUMS_SUM = 464,   /* 16 bytes: the checksum of SEC_SUMS */
    H_HDR_SUM = 496     /* 16 bytes: the checksum of the header before it */
};

/* What a checkpoint copies under the locks, and what it makes of that
** after them.  Under the engine's read side it copies only what changed
** since the mapped checkpoint (everything, without one): the mapped
** tables are immutable for the engine's life, so they are merged in after
** the lock is released (merge_kv, merge_memories), and the lock is held
** for the size of the changes, not of the store. */
typedef struct snap {
    /* After this handle compacted the store, its engine still points into
    ** the old segments (kept mapped until close): such a record is found
    ** in the new ones by its LSN, which compaction keeps.  logrecs: every
    ** record of segs, in log order (so by LSN), made on first need. */
    const uint8_t **logrecs;
    size_t nlogrecs, logreccap;
    /* logrecs' LSNs, side by side: the lookup's binary search reads this
    ** array, not a record in the mapped log per step (1M lookups). */
    uint64_t *loglsn;
    size_t loglsncap;
    int logrecs_made;
    const mmfs__sum *sum;
    uint64_t lsn, anchor, anchor_lsn, next_mem, live_bytes, rec_bytes;
    uint8_t anchor_sum[16];
    uint32_t first_seg;
    struct sseg {
        uint32_t no;
        int fd;
        const uint8_t *map;
        size_t size;
        uint64_t end;
    } *segs; /* up to the anchor's */
    size_t nsegs;
    const uint8_t **recs; /* live records but kv and memories, any order */
    size_t nrecs, reccap;
    /* Copied under the lock. */
    const mmfs__kvck *kvck;  /* the mapped kv tables (n = 0: none) */
    const uint8_t **dset;    /* newer KV_SET records, by key */
    size_t ndset, dsetcap;
    const uint8_t **dkeys;   /* every newer kv record (hides the checkpoint's key) */
    size_t ndkeys, dkeycap;
    mmfs__memck mck;         /* the mapped memory table; dead is a copy */
    mmfs__tag *tag_ckt;      /* per tag: a copy (its checkpoint ids are read through it) */
    mmfs__mem_ent *dents;    /* the newer ents, ids dbase.. */
    uint64_t dbase;
    size_t ndents;
    const uint8_t **dtime;   /* the newer live memories by time */
    size_t ndtime, dtimecap;
    mmfs_slice *routes;
    size_t nroutes;
    mmfs_slice *tag_names;   /* per tag: name, newer ids */
    size_t *tag_in_at;
    size_t ntags, tagcap;
    uint64_t *tag_in;
    size_t ntag_in, tag_incap;
    /* Made after it: what the file holds. */
    const uint8_t **kv;      /* live KV_SET records, by key */
    size_t nkv, kvcap;
    mmfs__mem_ent *ents;     /* entries of ids mem_base .. next_mem - 1 */
    uint64_t mem_base, mem_live;
    size_t nents;
    uint64_t *time;          /* live ids by time */
    size_t ntime, timecap;
    size_t *tag_at;          /* tag i's live ids: tag_ids[tag_at[i] .. tag_at[i + 1]) */
    uint64_t *tag_ids;
    size_t ntag_ids, tag_idcap;
    mmfs__ixent *ixl;        /* ckpt_index.c: the index segments section 5 lists */
    size_t nixl;
    struct cktab *tab;       /* ckpt_tables.c: sessions, streams, documents */
} snap;

/* ckpt.c: bytes of one entry of section KIND (1 for a byte section). */
size_t mmfs__ckpt_entsize(uint32_t kind);
/* ckpt.c: the path of checkpoint LSN ("DIR/ckpt/<LSN, 20 digits>.ckpt"). */
void mmfs__ckpt_path(const mmfs_db *db, uint64_t lsn, char *buf, size_t len);
/* ckpt.c: the LSNs of the checkpoint files in ckpt/, newest first, in *OUT
** (malloc'd; *N = 0 when the directory is missing).  With CLEAN, removes
** temporaries left by processes that are gone.  Errors: MMFS_NOMEM, a
** system error reading the directory. */
/* ckpt.c: opens checkpoint LSN and reads its header into H, checked
** (magic, format, the header's checksum): the fd, or -1 with errno ENOENT
** (no such file: pruned meanwhile), EINVAL (not a good header of this
** format) or the error of open or pread. */
int mmfs__ckpt_open_header(mmfs_db *db, uint64_t lsn, uint8_t h[CK_HDR]);
int mmfs__ckpt_list(mmfs_db *db, uint64_t **out, size_t *n, int clean);

/* ckpt_snap.c: picks the LSN (under wmu), copies what changed since the
** mapped checkpoint (under rw's read side), then merges the mapped tables
** in (no lock).  *EMPTY: the log has no frame yet.  Free S with
** mmfs__ckpt_snap_free, whatever it returns. */
int mmfs__ckpt_snap_take(mmfs_db *db, snap *s, int *empty);
void mmfs__ckpt_snap_free(snap *s);

/* ckpt.c: is RAW, a record of the engine, in the snapshot's log?  (Not
** after this handle's compaction dropped it: a deleted memory's.) */
int mmfs__ckpt_in_log(snap *s, const uint8_t *raw);

/* ckpt_index.c: writes the index segment of the memories S adds to the
** segments its engine's checkpoint lists (merging neighbours when there
** would be too many) and sets s->ixl.  No lock but cpmu.  Errors: MMFS_IO,
** MMFS_NOMEM (then no segment is listed: the checkpoint is still good). */
int mmfs__ckpt_index_make(mmfs_db *db, snap *s);
/* ckpt_index.c: section 5 of S: its entry count, and the entries into P. */
uint64_t mmfs__ckpt_index_count(const snap *s);
void mmfs__ckpt_index_put(const snap *s, uint8_t *p);
/* ckpt_index.c: after checkpoint S is durable: the engine's list becomes
** S's, and index files no kept checkpoint lists are removed. */
void mmfs__ckpt_index_done(mmfs_db *db, snap *s);
/* ckpt_index.c: maps the segments of section 5 (P, N entries) of
** checkpoint LSN under the memories' index of engine E: the longest
** prefix that opens and checks; the memories of the rest are indexed from
** the log.  Errors: MMFS_CORRUPT (a malformed section: skip the
** checkpoint), MMFS_NOMEM. */
int mmfs__ckpt_index_load(mmfs_db *db, mmfs__engine *e, uint64_t lsn, const uint8_t *p, uint64_t n);

/* ckpt.c: the log position of record RAW in the snapshot's segments, or 0
** when it is not there. */
uint64_t mmfs__ckpt_pos_of(snap *s, const uint8_t *raw);

/* ckpt_tables.c: section 15 (sessions, streams, documents).  take: copies
** what changed since the mapped checkpoint (caller holds E's read side);
** merge: makes the tables, merged with the mapped ones (no lock); size:
** the section's bytes; put: writes it at B + OFF (CORRUPT: a record
** outside the log); free: frees what take and merge made. */
int mmfs__ckpt_tables_take(const mmfs__engine *e, snap *s);
int mmfs__ckpt_tables_merge(snap *s);
size_t mmfs__ckpt_tables_size(const snap *s);
int mmfs__ckpt_tables_put(snap *s, uint8_t *b, uint64_t off);
void mmfs__ckpt_tables_free(snap *s);
/* ckpt_tables.c: checks section 15 of the mapped checkpoint B (its
** directory's block; the tables' bounds) and attaches it to E, whose
** kv.ck resolves its positions.  Errors: MMFS_CORRUPT (skip the
** checkpoint), MMFS_NOMEM. */
int mmfs__ckpt_tables_load(mmfs__engine *e, const uint8_t *b, uint64_t body_end);

#endif
