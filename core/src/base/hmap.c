/*
** hmap.c: the engine's hash map (see hmap.h for the invariants).  Linear
** probing keeps a lookup to one or two cache lines at our load factors;
** backward-shift deletion keeps chains short without tombstones, so a map
** that sees many deletes never needs a rebuild.
*/
#include "hmap.h"

#include <stdlib.h>
#include <xxhash.h>

#define HMAP_MIN_CAP 16

uint64_t mmfs__hash(mmfs_slice key) {
    return XXH3_64bits(key.len ? key.ptr : "", key.len);
}

void mmfs__hmap_init(mmfs__hmap *m, mmfs__hmap_keyfn key, const void *ctx) {
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
    m->key = key;
    m->ctx = ctx;
}

void mmfs__hmap_free(mmfs__hmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->mask = 0;
    m->count = 0;
}

/* The slot holding KEY, or the empty slot where it would go. */
static size_t find_slot(const mmfs__hmap *m, mmfs_slice key, uint64_t h) {
    size_t i = (size_t)h & m->mask;
    for (;;) {
        const mmfs__hslot *s = &m->slots[i];
        if (s->val == 0) return i;
        if (s->hash == h && mmfs__slice_eq(m->key(m->ctx, s->val), key)) return i;
        i = (i + 1) & m->mask;
    }
}

uintptr_t mmfs__hmap_get(const mmfs__hmap *m, mmfs_slice key, uint64_t h) {
    if (!m->slots) return 0;
    return m->slots[find_slot(m, key, h)].val;
}

/* Rehashes into a table of NCAP slots (a power of two). */
static int grow(mmfs__hmap *m, size_t ncap) {
    mmfs__hslot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return mmfs__err(MMFS_NOMEM, "hash map: cannot grow to %zu slots", ncap);
    size_t nmask = ncap - 1;
    if (m->slots) {
        for (size_t i = 0; i <= m->mask; i++) {
            mmfs__hslot s = m->slots[i];
            if (!s.val) continue;
            size_t j = (size_t)s.hash & nmask;
            while (ns[j].val) j = (j + 1) & nmask;
            ns[j] = s;
        }
        free(m->slots);
    }
    m->slots = ns;
    m->mask = nmask;
    return MMFS_OK;
}

int mmfs__hmap_reserve(mmfs__hmap *m, size_t n) {
    size_t need = m->count + n;
    size_t cap = m->slots ? m->mask + 1 : 0;
    if (need < m->count) return mmfs__err(MMFS_NOMEM, "hash map: too many entries");
    if (cap && need <= cap / 5 * 4) return MMFS_OK;
    size_t ncap = cap ? cap : HMAP_MIN_CAP;
    while (need > ncap / 5 * 4) {
        if (ncap > SIZE_MAX / 2 / sizeof(mmfs__hslot))
            return mmfs__err(MMFS_NOMEM, "hash map: too many entries");
        ncap *= 2;
    }
    return grow(m, ncap);
}

int mmfs__hmap_put(mmfs__hmap *m, mmfs_slice key, uint64_t h, uintptr_t v, uintptr_t *old) {
    mmfs_assert(v != 0, "hmap: value 0 is the empty marker");
    if (m->slots) {
        size_t i = find_slot(m, key, h);
        if (m->slots[i].val) {
            if (old) *old = m->slots[i].val;
            m->slots[i].val = v;
            return MMFS_OK;
        }
    }
    int rc = mmfs__hmap_reserve(m, 1);
    if (rc) return rc;
    size_t i = find_slot(m, key, h);
    m->slots[i].hash = h;
    m->slots[i].val = v;
    m->count++;
    if (old) *old = 0;
    return MMFS_OK;
}

uintptr_t mmfs__hmap_del(mmfs__hmap *m, mmfs_slice key, uint64_t h) {
    if (!m->slots) return 0;
    size_t i = find_slot(m, key, h);
    uintptr_t v = m->slots[i].val;
    if (!v) return 0;
    /* Backward shift: pull later members of the run into the hole unless
    ** that would move one before its home slot. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        mmfs__hslot s = m->slots[j];
        if (!s.val) break;
        size_t home = (size_t)s.hash & m->mask;
        if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
            m->slots[i] = s;
            i = j;
        }
    }
    m->slots[i].val = 0;
    m->slots[i].hash = 0;
    m->count--;
    return v;
}
