/*
** hmap.h: a small open-addressing hash map (linear probing, backward-shift
** deletion, no tombstones) from byte-string keys to non-zero uintptr_t
** values.  The map stores no keys: each slot is the key's 64-bit hash and
** the value (16 bytes), and the owner gives a function that finds a
** value's key (usually a slice into a record of the mapped log), so RAM
** per entry is 16 bytes divided by the load factor (0.4 .. 0.8).
**
** Invariants: a slot is empty iff its value is 0; every key is at or after
** its home slot (hash & mask) with no empty slot in between; count <= 0.8
** capacity.  Readers (get) never change the map; put and del are for the
** engine's write side only.
*/
#ifndef MMFS_HMAP_H
#define MMFS_HMAP_H

#include "internal.h"

#include <stdint.h>

/* The key of value V (never called on 0).  CTX is the map's ctx. */
typedef mmfs_slice (*mmfs__hmap_keyfn)(const void *ctx, uintptr_t v);

typedef struct mmfs__hslot {
    uint64_t hash;
    uintptr_t val; /* 0 = empty */
} mmfs__hslot;

typedef struct mmfs__hmap {
    mmfs__hslot *slots; /* NULL until the first put */
    size_t mask;        /* capacity - 1 (capacity is a power of two) */
    size_t count;
    mmfs__hmap_keyfn key;
    const void *ctx;
} mmfs__hmap;

/* The hash every map uses (XXH3, 64 bits). */
uint64_t mmfs__hash(mmfs_slice key);

void mmfs__hmap_init(mmfs__hmap *m, mmfs__hmap_keyfn key, const void *ctx);
void mmfs__hmap_free(mmfs__hmap *m);

/* The value stored under KEY (H = mmfs__hash(KEY)), or 0. */
uintptr_t mmfs__hmap_get(const mmfs__hmap *m, mmfs_slice key, uint64_t h);

/* Stores V (non-zero) under KEY, the key of V.  *old (may be NULL) gets
** the value it replaced, or 0.  Errors: MMFS_NOMEM (the map is unchanged). */
int mmfs__hmap_put(mmfs__hmap *m, mmfs_slice key, uint64_t h, uintptr_t v, uintptr_t *old);

/* Makes sure N more new keys can be put without failing. Errors: MMFS_NOMEM. */
int mmfs__hmap_reserve(mmfs__hmap *m, size_t n);

/* Removes KEY; returns its value, or 0 if it was absent. */
uintptr_t mmfs__hmap_del(mmfs__hmap *m, mmfs_slice key, uint64_t h);

#endif /* MMFS_HMAP_H */
