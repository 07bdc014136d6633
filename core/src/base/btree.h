/*
** btree.h: the ordered index of the engine's modules: a B+tree of record
** pointers ordered by a comparison of a "probe" (any key the owner
** defines) with a record.  Internal nodes keep record pointers as
** separators; since records outlive the engine's entries,
** a separator stays a valid key after its entry is removed.  Entries are
** unique under the comparison.  Readers walk it with a position (a path
** from the root); a position is only valid under the same lock hold.
*/
#ifndef MMFS_BTREE_H
#define MMFS_BTREE_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

#define MMFS__BT_B 64    /* entries per node */
#define MMFS__BT_MAXH 24 /* levels (never reached: 64^24 entries) */

/* <0, 0, >0 as PROBE sorts before, with, after REC. */
typedef int (*mmfs__bt_cmp)(const void *probe, const uint8_t *rec);

typedef struct mmfs__bt_node mmfs__bt_node;

typedef struct mmfs__btree {
    mmfs__bt_node *root; /* NULL when empty and never used */
    int height;          /* 0: root is a leaf */
    size_t count;
    mmfs__bt_cmp cmp;
} mmfs__btree;

typedef struct mmfs__bt_pos {
    mmfs__bt_node *node[MMFS__BT_MAXH];
    int idx[MMFS__BT_MAXH]; /* [0] is the leaf level */
    int height;
} mmfs__bt_pos;

void mmfs__bt_init(mmfs__btree *t, mmfs__bt_cmp cmp);
void mmfs__bt_free(mmfs__btree *t);

/* Inserts REC under PROBE (its key); an entry equal to PROBE is replaced
** and *old (may be NULL) gets it, else *old = NULL.  Errors: MMFS_NOMEM
** (the tree is unchanged and valid). */
int mmfs__bt_put(mmfs__btree *t, const void *probe, const uint8_t *rec, const uint8_t **old);

/* Removes the entry equal to PROBE; returns it, or NULL if absent. */
const uint8_t *mmfs__bt_del(mmfs__btree *t, const void *probe);

/* Positions *POS at the first entry >= PROBE (> PROBE when STRICT) and
** returns it, or NULL at the end. */
const uint8_t *mmfs__bt_seek(const mmfs__btree *t, const void *probe, int strict,
                             mmfs__bt_pos *pos);

/* The first entry, or NULL. */
const uint8_t *mmfs__bt_first(const mmfs__btree *t, mmfs__bt_pos *pos);

/* Advances *POS; returns the next entry, or NULL at the end. */
const uint8_t *mmfs__bt_next(mmfs__bt_pos *pos);

#endif /* MMFS_BTREE_H */
