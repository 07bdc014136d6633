/*
** batch.h: what the three files of the write path share.
**
**   batch.c   commands: checked and made from the public arguments, a
**             batch's arena that copies them, the single calls and batches
**   hook.c    the policy step: the Lua policy VM, then the C hook
**   write.c   the writer's steps, from taking the lock to publishing
**
** Nothing outside these three includes it.
*/
#ifndef MMFS_BATCH_H
#define MMFS_BATCH_H

#include "db.h"

/* Copies of a batch's arguments live in blocks that never move, so the
** slices in its commands stay valid as the batch grows. */
typedef struct block {
    struct block *next;
    size_t used, cap;
    uint8_t data[];
} block;

struct mmfs_batch {
    mmfs_db *db;
    mmfs__rec *cmds;
    size_t n, cap;
    block *blocks;
    int failed; /* an add ran out of memory: commit refuses */
    int is_tx;  /* handed to a C hook: the library commits it */
};

/* An empty slice that points somewhere: a record's fields are never NULL. */
extern const mmfs_slice mmfs__none;

/* batch.c: N bytes from B's arena, 8-aligned; they never move and live
** until B is freed.  NULL when out of memory (no message set). */
void *mmfs__arena_alloc(mmfs_batch *b, size_t n);

/* batch.c: INVALID (naming WHAT) when S is over MMFS__MAX_VALUE or NULL
** with a length. */
int mmfs__check_len(mmfs_slice s, const char *what);

/* batch.c: checks TAGS (count and lengths, INVALID) and sets *SIZE to the
** bytes of their encoded list. */
int mmfs__tags_size(const mmfs_slice *tags, size_t ntags, size_t *size);

/* batch.c: the bytes mmfs__make needs besides *C for command M (its
** encoded tag list), checking M's tags (INVALID). */
int mmfs__make_size(const mmfs_command *m, size_t *extra);

/* batch.c: makes command C from M: checks its fields (INVALID) and fills
** *C with slices that are still M's; BUF has mmfs__make_size bytes. */
int mmfs__make(mmfs__rec *c, const mmfs_command *m, uint8_t *buf);

/* hook.c: the policy step, under the writer lock. */
int mmfs__run_policy(mmfs_db *db, mmfs__rec *in, size_t n, mmfs_batch *work, mmfs__rec **out, size_t *nout);

/* write.c: commits N commands as one frame (see write.c). */
int mmfs__commit(mmfs_db *db, mmfs__rec *cmds, size_t n, char *keep, uint64_t *ids);

#endif
