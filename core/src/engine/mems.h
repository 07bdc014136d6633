/*
** mems.h: what memory.c (the memory table, its index queue, documents)
** and memory_read.c (what reads find) share.  Nothing else includes it.
*/
#ifndef MMFS_MEMS_H
#define MMFS_MEMS_H

#include "engine.h"

/* memory.c: the name the empty route is interned and read back as. */
extern const mmfs_slice mmfs__default_route;

/* by_time order: PROBE is a const struct time_key *. */
struct time_key {
    int64_t created;
    uint64_t id;
};

/* memory.c: by_time's order (created_at desc, then id desc) of the
** struct time_key PROBE against memory record REC. */
int mmfs__mem_time_cmp(const void *probe, const uint8_t *rec);
/* memory.c: the checkpoint's entry of ID, copied into *BUF, or NULL (not
** there, or not resolving to this id's MEMORY record). */
const mmfs__mem_ent *mmfs__mem_ck_ent(const mmfs__engine *e, uint64_t id, mmfs__mem_ent *buf);
/* memory.c: the entry of ID, newer ents first, then the checkpoint's
** (into *BUF); NULL if the id was never seen. */
const mmfs__mem_ent *mmfs__mem_ent_get(const mmfs__engine *e, uint64_t id, mmfs__mem_ent *buf);
/* memory.c: the same, NULL also when the memory is deleted. */
const mmfs__mem_ent *mmfs__mem_ent_live(const mmfs__engine *e, uint64_t id, mmfs__mem_ent *buf);
/* memory.c: 1 if ID is in T's list (live or not). */
int mmfs__tag_has(const mmfs__tag *t, uint64_t id);

#endif
