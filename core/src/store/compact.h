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

/* compact_out.c: writing the output.
** mmfs__cout_err: an error naming O's current .cseg file (errno E, WHAT).
** mmfs__cout_add: appends record R (encoded at R->raw) to the frame being
**   built, writing that frame first when R would make it too big.
** mmfs__cout_flush: writes the frame being built, its first LSN
**   FIRST_LSN; with no record it is a marker, from which the log's LSNs
**   go on at FIRST_LSN.  A full segment is sealed and the next started.
** mmfs__cout_carry: copies DB's frames from position FROM to what the
**   engine applied, as they are (caller holds the writer lock).
** mmfs__cout_renumber: numbers the output from NEW_FIRST on (headers
**   rewritten, files renamed, the last first).
** mmfs__cout_remove: unlinks .cseg files FIRST..LAST (a failed run).
** Errors: MMFS_IO (with the path), MMFS_NOMEM, MMFS_CORRUPT (carry). */
int mmfs__cout_err(out *o, int e, const char *what);
int mmfs__cout_add(out *o, const mmfs__rec *r);
int mmfs__cout_flush(out *o, uint64_t first_lsn);
int mmfs__cout_carry(mmfs_db *db, out *o, uint64_t from);
int mmfs__cout_renumber(out *o, uint32_t new_first);
void mmfs__cout_remove(mmfs_db *db, uint32_t first, uint32_t last);

/* compact_copy.c: what stays.
** mmfs__compact_copy: copies the records of snapshot SN that the engine
**   still needs into O, less the memories their route's ttl or P's
**   compaction.keep forget (their ids go to O->forgot).  Holds only the
**   engine's read side, per record.
** mmfs__compact_policy: a VM of the policy in force for ttl and keep
**   (*OUT = NULL when there is none).  Caller holds the writer lock.
** Errors: MMFS_NOMEM, MMFS_CORRUPT, and what keep and the policy give. */
int mmfs__compact_copy(mmfs_db *db, const snap *sn, out *o, mmfs__policy *p, int64_t now);
int mmfs__compact_policy(mmfs_db *db, mmfs__policy **out);

#endif
