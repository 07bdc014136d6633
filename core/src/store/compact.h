/*
** compact.h: what the files of compaction share: compact.c (the steps,
** the switch, compaction.when), compact_out.c (the output segments) and
** compact_copy.c (what the copy keeps).  Nothing else includes it.
*/
#ifndef MMFS_COMPACT_H
#define MMFS_COMPACT_H

#include "db.h"
#include "policy.h"

/* The output being written. */
typedef struct out {
    mmfs_db *db;
    uint32_t first, no;  /* first output segment, the current one */
    int fd;              /* of segment no, or -1 */
    uint64_t size, off;  /* its size, the write position */
    uint8_t *buf;        /* a frame: header room, then records */
    size_t cap, body;
    uint32_t count;
    uint64_t first_lsn, next_lsn; /* of the frame; past its last record */
    uint64_t last_frame; /* position of the last frame written (a checkpoint's anchor) */
    uint64_t seal_lsn;   /* the LSN readers expect after the last frame written: a seal's */
    uint64_t kept, dropped, kept_bytes;
    uint64_t *ends;      /* ends[i]: where the frames of segment first + i end */
    size_t nends;
    uint64_t *forgot;    /* ids of live memories ttl or keep forgot */
    size_t nforgot, capforgot;
} out;

/* The log as it was when the compaction started: the segments (copies of
** the table entries: their mappings stay until close, whatever happens to
** the table) and where their frames end. */
typedef struct snap {
    mmfs__seg *segs;
    size_t n;
    uint64_t end;     /* position past the last frame */
    uint64_t next_lsn; /* the store's next LSN there */
    uint32_t first;   /* MANIFEST's first segment then */
} snap;

/* compact_out.c */
int io_err(out *o, int e, const char *what);
int flush_frame(out *o, uint64_t first_lsn);
int add_record(out *o, const mmfs__rec *r);
int carry_over(mmfs_db *db, out *o, uint64_t from);
int renumber(out *o, uint32_t new_first);
void remove_output(mmfs_db *db, uint32_t first, uint32_t last);

/* compact_copy.c */
int copy_live(mmfs_db *db, const snap *sn, out *o, mmfs__policy *p, int64_t now);
int policy_vm(mmfs_db *db, mmfs__policy **out);

#endif
