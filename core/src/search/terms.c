/*
** terms.c: the terms of the in-memory index.
**
** Owns: the term dictionary (open-addressing hash of term ids, term bytes
** back to back in one buffer), the surface map (a folded word -> the
** term of its stem) and the ordered view of terms for prefix expansion.
**
** Invariants:
** - A surface (a folded word) maps to the term its stem is: stemming is a
**   pure function of the folded word, so the map only saves time.
** - Term ids never change; sorted[0..nsorted) lists ids in byte order and
**   ids >= nsorted are the unsorted tail, merged in once it grows past an
**   eighth of the sorted part (amortized O(log) per new term).
** - Lookups are read-only; terms are only added (by index.c's add).
*/
#include "index.h"

#include <stdlib.h>
#include <xxhash.h>

/* ---------------------------------------------------------- dictionary */

const mmfs__term *mmfs__term_find(const mmfs__index *ix, const void *s, size_t n) {
    if (!ix->nslot || n > MMFS__TOK_MAX) return NULL;
    uint64_t h = XXH3_64bits(s, n);
    uint32_t mask = ix->nslot - 1, tag = (uint32_t)(h >> 32);
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        uint32_t id1 = ix->slots[2 * i];
        if (!id1) return NULL;
        if (ix->slots[2 * i + 1] == tag) {
            const mmfs__term *t = &ix->terms[id1 - 1];
            if (t->slen == n && memcmp(tstr(ix, t), s, n) == 0) return t;
        }
    }
}

/* Doubles the slot table (load factor stays <= 1/2). */
static int dict_grow(mmfs__index *ix) {
    uint32_t nslot = ix->nslot ? ix->nslot * 2 : 1024;
    if (nslot == 0 || nslot > (UINT32_MAX >> 2))
        return mmfs__err(MMFS_NOMEM, "search: dictionary too large");
    uint32_t *slots = calloc((size_t)nslot * 2, sizeof *slots);
    if (!slots) return mmfs__err(MMFS_NOMEM, "search: out of memory");
    uint32_t mask = nslot - 1;
    for (uint32_t id = 0; id < ix->nterms; id++) {
        const mmfs__term *t = &ix->terms[id];
        uint64_t h = XXH3_64bits(tstr(ix, t), t->slen);
        uint32_t i = (uint32_t)h & mask;
        while (slots[2 * i]) i = (i + 1) & mask;
        slots[2 * i] = id + 1;
        slots[2 * i + 1] = (uint32_t)(h >> 32);
    }
    free(ix->slots);
    ix->slots = slots;
    ix->nslot = nslot;
    return MMFS_OK;
}

/* The id of term S[0..n) (hash H), created if new.  Errors: MMFS_NOMEM. */
int mmfs__term_intern(mmfs__index *ix, uint64_t h, const uint8_t *s, size_t n, uint32_t *id) {
    if ((uint64_t)(ix->nterms + 1) * 2 > ix->nslot) {
        int rc = dict_grow(ix);
        if (rc) return rc;
    }
    uint32_t mask = ix->nslot - 1, tag = (uint32_t)(h >> 32), i = (uint32_t)h & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t id1 = ix->slots[2 * i];
        if (!id1) break;
        if (ix->slots[2 * i + 1] == tag) {
            const mmfs__term *t = &ix->terms[id1 - 1];
            if (t->slen == n && memcmp(tstr(ix, t), s, n) == 0) {
                *id = id1 - 1;
                return MMFS_OK;
            }
        }
    }
    if (ix->strlen_ + n > UINT32_MAX) return mmfs__err(MMFS_NOMEM, "search: dictionary too large");
    int rc = mmfs__ix_grow32((void **)&ix->terms, &ix->termcap, (size_t)ix->nterms + 1, sizeof *ix->terms);
    if (rc) return rc;
    rc = mmfs__ix_grow((void **)&ix->strs, &ix->strcap, ix->strlen_ + n, 1);
    if (rc) return rc;
    mmfs__term *t = &ix->terms[ix->nterms];
    memset(t, 0, sizeof *t);
    t->soff = (uint32_t)ix->strlen_;
    t->slen = (uint16_t)n;
    t->min_dl = UINT32_MAX;
    memcpy(ix->strs + ix->strlen_, s, n);
    ix->strlen_ += n;
    ix->slots[2 * i] = ix->nterms + 1;
    ix->slots[2 * i + 1] = tag;
    *id = ix->nterms++;
    return MMFS_OK;
}

/* ------------------------------------------------------------ surfaces */

/* The term id of surface S[0..n) (hash H), or UINT32_MAX. */
uint32_t mmfs__surf_find(const mmfs__index *ix, uint64_t h, const uint8_t *s, size_t n) {
    if (!ix->nsslot || n > SURF_MAX) return UINT32_MAX;
    uint32_t mask = ix->nsslot - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        const struct mmfs__surf *f = &ix->surfs[i];
        if (!f->term1) return UINT32_MAX;
        if (f->len == n && memcmp(f->b, s, n) == 0) return f->term1 - 1;
    }
}

/* Maps surface S[0..n) (hash H) to TERM unless it is mapped or too long.
** Errors: MMFS_NOMEM (the map unchanged). */
int mmfs__surf_add(mmfs__index *ix, uint64_t h, const uint8_t *s, size_t n, uint32_t term) {
    if (n > SURF_MAX || mmfs__surf_find(ix, h, s, n) != UINT32_MAX) return MMFS_OK;
    if ((uint64_t)(ix->nsurf + 1) * 4 > (uint64_t)ix->nsslot * 3) { /* load <= 3/4 */
        uint32_t nslot = ix->nsslot ? ix->nsslot * 2 : 1024;
        if (nslot > (UINT32_MAX >> 2)) return mmfs__err(MMFS_NOMEM, "search: dictionary too large");
        struct mmfs__surf *v = aligned_alloc(64, (size_t)nslot * sizeof *v); /* slots in lines */
        if (!v) return mmfs__err(MMFS_NOMEM, "search: out of memory");
        memset(v, 0, (size_t)nslot * sizeof *v);
        for (uint32_t e = 0; e < ix->nsslot; e++) {
            const struct mmfs__surf *f = &ix->surfs[e];
            if (!f->term1) continue;
            uint32_t i = (uint32_t)XXH3_64bits(f->b, f->len) & (nslot - 1);
            while (v[i].term1) i = (i + 1) & (nslot - 1);
            v[i] = *f;
        }
        free(ix->surfs);
        ix->surfs = v;
        ix->nsslot = nslot;
    }
    uint32_t mask = ix->nsslot - 1, i = (uint32_t)h & mask;
    while (ix->surfs[i].term1) i = (i + 1) & mask;
    ix->surfs[i].term1 = term + 1;
    ix->surfs[i].len = (uint8_t)n;
    memcpy(ix->surfs[i].b, s, n);
    ix->nsurf++;
    return MMFS_OK;
}

/* ------------------------------------------------------- ordered view */

static int term_cmp(const mmfs__index *ix, uint32_t a, uint32_t b) {
    const mmfs__term *x = &ix->terms[a], *y = &ix->terms[b];
    size_t n = x->slen < y->slen ? x->slen : y->slen;
    int c = memcmp(tstr(ix, x), tstr(ix, y), n);
    if (c) return c;
    return x->slen < y->slen ? -1 : x->slen > y->slen;
}

/* Merge sort of ids by term bytes; TMP has room for N. */
static void sort_ids(const mmfs__index *ix, uint32_t *v, size_t n, uint32_t *tmp) {
    if (n < 16) {
        for (size_t i = 1; i < n; i++) {
            uint32_t x = v[i];
            size_t j = i;
            while (j > 0 && term_cmp(ix, v[j - 1], x) > 0) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        return;
    }
    size_t h = n / 2;
    sort_ids(ix, v, h, tmp);
    sort_ids(ix, v + h, n - h, tmp);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = term_cmp(ix, v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

/* Merges the unsorted tail into the sorted view once it is large.  An
** optimization only: on allocation failure the tail just stays. */
void mmfs__terms_merge(mmfs__index *ix) {
    uint32_t tail = ix->nterms - ix->nsorted;
    uint32_t limit = ix->nsorted / 8 > 1024 ? ix->nsorted / 8 : 1024;
    if (tail <= limit) return;
    size_t n = ix->nterms;
    if (n > ix->sortedcap) {
        uint32_t *p = realloc(ix->sorted, n * sizeof *p);
        if (!p) return;
        ix->sorted = p;
        ix->sortedcap = (uint32_t)n;
    }
    uint32_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return;
    uint32_t *t = ix->sorted + ix->nsorted;
    for (uint32_t i = 0; i < tail; i++) t[i] = ix->nsorted + i;
    sort_ids(ix, t, tail, tmp);
    size_t i = 0, j = ix->nsorted, k = 0;
    while (i < ix->nsorted && j < n)
        tmp[k++] = term_cmp(ix, ix->sorted[j], ix->sorted[i]) < 0 ? ix->sorted[j++] : ix->sorted[i++];
    while (i < ix->nsorted) tmp[k++] = ix->sorted[i++];
    while (j < n) tmp[k++] = ix->sorted[j++];
    memcpy(ix->sorted, tmp, n * sizeof *tmp);
    free(tmp);
    ix->nsorted = (uint32_t)n;
}

static int has_prefix(const mmfs__index *ix, uint32_t id, const void *p, size_t n) {
    const mmfs__term *t = &ix->terms[id];
    return t->slen >= n && memcmp(tstr(ix, t), p, n) == 0;
}

int mmfs__term_prefix(const mmfs__index *ix, const void *prefix, size_t plen, size_t max,
                      size_t pos, const mmfs__term ***out, size_t *nout) {
    /* lower bound of PREFIX in the sorted view */
    size_t lo = 0, hi = ix->nsorted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const mmfs__term *t = &ix->terms[ix->sorted[mid]];
        size_t n = t->slen < plen ? t->slen : plen;
        int c = memcmp(tstr(ix, t), prefix, n);
        if (c < 0 || (c == 0 && t->slen < plen)) lo = mid + 1;
        else hi = mid;
    }
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0, nsorted_hits = 0;
    int rc = MMFS_OK;
    for (size_t i = lo; i < ix->nsorted && has_prefix(ix, ix->sorted[i], prefix, plen); i++) {
        if (!ix->terms[ix->sorted[i]].df) continue;
        if (n == max) goto too_many;
        if ((rc = mmfs__ix_grow((void **)&ids, &cap, n + 1, sizeof *ids))) goto fail;
        ids[n++] = ix->sorted[i];
    }
    nsorted_hits = n;
    for (uint32_t id = ix->nsorted; id < ix->nterms; id++) {
        if (!ix->terms[id].df || !has_prefix(ix, id, prefix, plen)) continue;
        if (n == max) goto too_many;
        if ((rc = mmfs__ix_grow((void **)&ids, &cap, n + 1, sizeof *ids))) goto fail;
        ids[n++] = id;
    }
    if (n > nsorted_hits) { /* sort the tail hits and merge them in */
        uint32_t *tmp = malloc(n * sizeof *tmp);
        if (!tmp) {
            rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
            goto fail;
        }
        sort_ids(ix, ids + nsorted_hits, n - nsorted_hits, tmp);
        size_t i = 0, j = nsorted_hits, k = 0;
        while (i < nsorted_hits && j < n) tmp[k++] = term_cmp(ix, ids[j], ids[i]) < 0 ? ids[j++] : ids[i++];
        while (i < nsorted_hits) tmp[k++] = ids[i++];
        while (j < n) tmp[k++] = ids[j++];
        memcpy(ids, tmp, n * sizeof *ids);
        free(tmp);
    }
    const mmfs__term **terms = malloc((n ? n : 1) * sizeof *terms);
    if (!terms) {
        rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) terms[i] = &ix->terms[ids[i]];
    free(ids);
    *out = terms;
    *nout = n;
    return MMFS_OK;
too_many:
    rc = mmfs__err(MMFS_INVALID, "query: position %zu: prefix matches more than %zu terms", pos, max);
fail:
    free(ids);
    return rc;
}

int mmfs__terms_sorted(const mmfs__index *ix, uint32_t **out, uint32_t *nout) {
    uint32_t n = 0;
    for (uint32_t id = 0; id < ix->nterms; id++) n += ix->terms[id].df > 0;
    uint32_t *v = malloc(((size_t)n + 1) * sizeof *v), *tmp = malloc(((size_t)n + 1) * sizeof *tmp);
    if (!v || !tmp) {
        free(v);
        free(tmp);
        return mmfs__err(MMFS_NOMEM, "search: out of memory");
    }
    n = 0;
    for (uint32_t id = 0; id < ix->nterms; id++)
        if (ix->terms[id].df) v[n++] = id;
    sort_ids(ix, v, n, tmp);
    free(tmp);
    *out = v;
    *nout = n;
    return MMFS_OK;
}
