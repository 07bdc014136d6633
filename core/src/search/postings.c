/*
** postings.c: the in-memory inverted index.
**
** Owns: the term dictionary (open-addressing hash of term ids, term bytes
** back to back in one buffer), each term's postings (delta + varint
** blocks, and the positions apart from them: layout in search.h), the
** document table (docno -> length, with
** a deleted flag), the live statistics (N, total length) and the ordered
** view of terms for prefix expansion.
**
** Invariants:
** - A term's postings are in strictly increasing docno order; block keys
**   increase; every docno in postings has an entry in the document table
**   (present, maybe deleted).
** - Deletion only sets the flag: postings stay (df keeps counting them)
**   until compaction rebuilds the index.  Adding a docno that is present
**   (deleted or not) first purges its old postings, a scan of the whole
**   dictionary: rare, since owners give new docnos on re-index.
** - Removing a posting never allocates (the write-side scratch is always
**   at least as large as the largest block; its positions are cut out in
**   place), so a failed add can be rolled back completely.
** - A term's positions stream holds exactly the positions of its
**   postings, in their order; skip entry j's pend is where block j's
**   positions end.
** - A surface (a folded word) maps to the term its stem is: stemming is a
**   pure function of the folded word, so the map only saves time.
** - Term ids never change; sorted[0..nsorted) lists ids in byte order and
**   ids >= nsorted are the unsorted tail, merged in once it grows past an
**   eighth of the sorted part (amortized O(log) per new term).
** - Nothing here changes the index outside add/remove/new/free: cursors
**   and lookups are read-only.
*/
#include "search.h"

#include <stdlib.h>
#include <xxhash.h>

#define MAX_DOC_LEN 0x7FFFFFFEu

/* ------------------------------------------------------------ varints */

static inline size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline uint64_t get_varint(const uint8_t *p, uint32_t *pos) {
    uint32_t i = *pos;
    uint64_t v = p[i++];
    if (v >= 0x80) {
        v &= 0x7F;
        int shift = 7;
        for (;;) {
            uint64_t b = p[i++];
            v |= (b & 0x7F) << shift;
            if (b < 0x80) break;
            shift += 7;
        }
    }
    *pos = i;
    return v;
}

#define POSTING_MAX 15 /* bytes of one encoded posting, at most */

static inline size_t put_posting(uint8_t *p, uint32_t gap, uint32_t tf) {
    size_t n = put_varint(p, ((uint64_t)gap << 1) | (tf > 1));
    if (tf > 1) n += put_varint(p + n, tf - 2);
    return n;
}

#define POS_MAX 5 /* bytes of one encoded position, at most */

/* ------------------------------------------------------------ helpers */

static inline uint8_t *bptr(mmfs__bytes *b) { return b->cap ? b->b.p : b->b.inl; }
static inline const uint8_t *bptr_c(const mmfs__bytes *b) { return b->cap ? b->b.p : b->b.inl; }

/* Makes room for NEED bytes in all.  Errors: MMFS_NOMEM. */
static int breserve(mmfs__bytes *b, size_t need) {
    size_t cap = b->cap ? b->cap : sizeof b->b.inl;
    if (need <= cap) return MMFS_OK;
    if (need > UINT32_MAX) return mmfs__err(MMFS_NOMEM, "search: postings too long");
    size_t ncap = cap < 16 ? 16 : cap;
    while (ncap < need) ncap = ncap + ncap / 2 + 8;
    if (ncap > UINT32_MAX) ncap = UINT32_MAX;
    uint8_t *p;
    if (b->cap) {
        p = realloc(b->b.p, ncap);
        if (!p) return mmfs__err(MMFS_NOMEM, "search: out of memory");
    } else {
        p = malloc(ncap);
        if (!p) return mmfs__err(MMFS_NOMEM, "search: out of memory");
        memcpy(p, b->b.inl, b->len);
    }
    b->b.p = p;
    b->cap = (uint32_t)ncap;
    return MMFS_OK;
}

/* Skips K varints of P from *I. */
static inline void skip_varints(const uint8_t *p, uint32_t *i, uint64_t k) {
    uint32_t j = *i;
    while (k) k -= p[j++] < 0x80;
    *i = j;
}

static inline mmfs__skips *tskips(const mmfs__index *ix, const mmfs__term *t) {
    return t->big ? &ix->skips[t->big - 1] : NULL;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return MMFS_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) ncap *= 2;
    void *np = realloc(*p, ncap * elem);
    if (!np) return mmfs__err(MMFS_NOMEM, "search: out of memory");
    *p = np;
    *cap = ncap;
    return MMFS_OK;
}

static int grow32(void **p, uint32_t *cap, size_t need, size_t elem) {
    size_t c = *cap;
    if (need > UINT32_MAX / 2) return mmfs__err(MMFS_NOMEM, "search: index too large");
    int rc = grow(p, &c, need, elem);
    *cap = (uint32_t)c;
    return rc;
}

/* ------------------------------------------------------------ lifetime */

mmfs__index *mmfs__index_new(void) {
    mmfs__index *ix = calloc(1, sizeof *ix);
    if (!ix) return NULL;
    ix->k1 = MMFS__K1;
    ix->b = MMFS__B_V0;
    ix->bcapn = 2 * MMFS__BLOCK;
    ix->bdocs = malloc(ix->bcapn * sizeof *ix->bdocs);
    ix->btfs = malloc(ix->bcapn * sizeof *ix->btfs);
    ix->bpos = malloc((ix->bcapn + 1) * sizeof *ix->bpos);
    ix->bbytescap = ix->bcapn * POSTING_MAX;
    ix->bbytes = malloc(ix->bbytescap);
    if (!ix->bdocs || !ix->btfs || !ix->bpos || !ix->bbytes) {
        mmfs__index_free(ix);
        return NULL;
    }
    return ix;
}

void mmfs__index_tune(mmfs__index *ix, double k1, double b, int stopwords) {
    ix->k1 = k1;
    ix->b = b;
    ix->cfg.nostop = !stopwords;
}

int mmfs__index_set_tokenizer(mmfs__index *ix, int version, const char *lang) {
    mmfs_assert(ix->ndocs == 0 && ix->nterms == 0, "search: tokenizer of a filled index");
    if (version < 0 || version > MMFS__TOK_VERSION)
        return mmfs__err(MMFS_INVALID, "search: tokenizer version %d is newer than this library", version);
    mmfs__tokcfg cfg = {.version = version};
    if (version) {
        if (!lang || strlen(lang) >= sizeof cfg.lang)
            return mmfs__err(MMFS_INVALID, "language '%.40s': not a Snowball language", lang ? lang : "");
        strcpy(cfg.lang, lang);
    }
    mmfs__tokz z;
    int rc = mmfs__tokz_open(&z, &cfg);
    if (rc) return rc;
    mmfs__tokz_close(&ix->wz);
    ix->cfg = cfg;
    ix->wz = z;
    /* Version 1 ranks short texts better with weaker length normalisation
    ** (docs/bench/recall.md); version 0 keeps the ranking it always had. */
    ix->b = version ? MMFS__B : MMFS__B_V0;
    return MMFS_OK;
}

void mmfs__index_free(mmfs__index *ix) {
    if (!ix) return;
    mmfs__tokz_close(&ix->wz);
    for (uint32_t i = 0; i < ix->nterms; i++) {
        if (ix->terms[i].post.cap) free(ix->terms[i].post.b.p);
        if (ix->terms[i].pos.cap) free(ix->terms[i].pos.b.p);
    }
    for (uint32_t i = 0; i < ix->nskips; i++) free(ix->skips[i].v);
    for (uint32_t i = 0; i < ix->npages; i++) free(ix->pages[i]);
    free(ix->slots);
    free(ix->terms);
    free(ix->strs);
    free(ix->sorted);
    free(ix->skips);
    free(ix->pages);
    free(ix->ids);
    free(ix->hashes);
    free(ix->tokoff);
    free(ix->toklen);
    free(ix->tokbytes);
    free(ix->bdocs);
    free(ix->btfs);
    free(ix->bpos);
    free(ix->bbytes);
    free(ix->pbytes);
    free(ix->surfs);
    free(ix->grp);
    free(ix->ns);
    free(ix);
}

uint64_t mmfs__index_count(const mmfs__index *ix) { return ix->ndocs; }

/* ---------------------------------------------------------- dictionary */

static inline const char *tstr(const mmfs__index *ix, const mmfs__term *t) {
    return ix->strs + t->soff;
}

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
static int intern(mmfs__index *ix, uint64_t h, const uint8_t *s, size_t n, uint32_t *id) {
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
    int rc = grow32((void **)&ix->terms, &ix->termcap, (size_t)ix->nterms + 1, sizeof *ix->terms);
    if (rc) return rc;
    rc = grow((void **)&ix->strs, &ix->strcap, ix->strlen_ + n, 1);
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

/* A slot of the surface map: one 32-byte line.  Words longer than
** SURF_MAX bytes are not kept (they are stemmed each time: rare). */
#define SURF_MAX 27
struct mmfs__surf {
    uint32_t term1; /* term id + 1; 0: an empty slot */
    uint8_t len;
    uint8_t b[SURF_MAX];
};
_Static_assert(sizeof(struct mmfs__surf) == 32, "a surface slot is half a cache line");

/* A word of one document whose surface is new (index_add). */
struct mmfs__newsurf {
    uint64_t h;   /* of the surface */
    uint32_t k;   /* its token */
    uint32_t off; /* the surface's bytes in ix->tokbytes */
    uint8_t len;
};

/* The term id of surface S[0..n) (hash H), or UINT32_MAX. */
static uint32_t surf_find(const mmfs__index *ix, uint64_t h, const uint8_t *s, size_t n) {
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
static int surf_add(mmfs__index *ix, uint64_t h, const uint8_t *s, size_t n, uint32_t term) {
    if (n > SURF_MAX || surf_find(ix, h, s, n) != UINT32_MAX) return MMFS_OK;
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
static void maybe_merge(mmfs__index *ix) {
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
        if ((rc = grow((void **)&ids, &cap, n + 1, sizeof *ids))) goto fail;
        ids[n++] = ix->sorted[i];
    }
    nsorted_hits = n;
    for (uint32_t id = ix->nsorted; id < ix->nterms; id++) {
        if (!ix->terms[id].df || !has_prefix(ix, id, prefix, plen)) continue;
        if (n == max) goto too_many;
        if ((rc = grow((void **)&ids, &cap, n + 1, sizeof *ids))) goto fail;
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

/* ---------------------------------------------------------- documents */

uint64_t mmfs__doc_next_live(const mmfs__index *ix, uint64_t from) {
    for (uint64_t d = from; d < MMFS__END;) {
        uint32_t pg = (uint32_t)(d >> MMFS__PAGE_BITS);
        if (pg >= ix->npages) break;
        const uint32_t *p = ix->pages[pg];
        if (!p) {
            d = (uint64_t)(pg + 1) << MMFS__PAGE_BITS;
            continue;
        }
        for (uint32_t i = (uint32_t)d & (MMFS__PAGE - 1); i < MMFS__PAGE; i++)
            if (!(p[i] & MMFS__DOC_DELETED)) return ((uint64_t)pg << MMFS__PAGE_BITS) | i;
        d = (uint64_t)(pg + 1) << MMFS__PAGE_BITS;
    }
    return MMFS__END;
}

/* The length slot of DOCNO, its page created.  Errors: NULL (NOMEM). */
static uint32_t *doc_slot(mmfs__index *ix, uint32_t docno) {
    uint32_t pg = docno >> MMFS__PAGE_BITS;
    if (pg >= ix->npages) {
        uint32_t n = ix->npages ? ix->npages : 16;
        while (n <= pg) n = n * 2 > n ? n * 2 : pg + 1;
        uint32_t **p = realloc(ix->pages, (size_t)n * sizeof *p);
        if (!p) return NULL;
        memset(p + ix->npages, 0, (size_t)(n - ix->npages) * sizeof *p);
        ix->pages = p;
        ix->npages = n;
    }
    if (!ix->pages[pg]) {
        uint32_t *p = malloc(MMFS__PAGE * sizeof *p);
        if (!p) return NULL;
        memset(p, 0xFF, MMFS__PAGE * sizeof *p); /* MMFS__DOC_ABSENT */
        ix->pages[pg] = p;
    }
    return &ix->pages[pg][docno & (MMFS__PAGE - 1)];
}

/* ----------------------------------------------------------- postings */

/* Makes sure T has a skip table with room for one more entry. */
static int reserve_skip(mmfs__index *ix, mmfs__term *t) {
    if (!t->big) {
        int rc = grow32((void **)&ix->skips, &ix->skipscap, (size_t)ix->nskips + 1, sizeof *ix->skips);
        if (rc) return rc;
        memset(&ix->skips[ix->nskips], 0, sizeof *ix->skips);
        t->big = ++ix->nskips;
    }
    mmfs__skips *s = &ix->skips[t->big - 1];
    return grow32((void **)&s->v, &s->cap, (size_t)s->n + 1, sizeof *s->v);
}

/* Closes the open block of T if it is full (room reserved beforehand). */
static void maybe_close(mmfs__index *ix, mmfs__term *t) {
    mmfs__skips *s = tskips(ix, t);
    uint32_t open = t->df - (s ? s->closed_total : 0);
    if (open < MMFS__BLOCK) return;
    mmfs_assert(s && s->n < s->cap, "skip room reserved");
    s->v[s->n].key = t->last;
    s->v[s->n].end = t->post.len;
    s->v[s->n].count = open;
    s->v[s->n].pend = t->pos.len;
    s->n++;
    s->closed_total += open;
}

/* A decoded block (decode_block): its bytes [start, end) and positions
** bytes [pstart, pend), the base its first gap counts from. */
typedef struct blockref {
    uint32_t j, start, end, base, pstart, pend;
} blockref;

/* Decodes block J of T into ix->bdocs/btfs, and the offsets of each
** posting's positions into ix->bpos (bpos[count] = b->pend); returns its
** count. */
static uint32_t decode_block(mmfs__index *ix, const mmfs__term *t, uint32_t j, blockref *b) {
    const mmfs__skips *s = tskips(ix, t);
    uint32_t nc = s ? s->n : 0;
    b->j = j;
    b->start = j ? s->v[j - 1].end : 0;
    b->end = j < nc ? s->v[j].end : t->post.len;
    b->base = j ? s->v[j - 1].key : 0;
    b->pstart = j ? s->v[j - 1].pend : 0;
    b->pend = j < nc ? s->v[j].pend : t->pos.len;
    const uint8_t *p = bptr_c(&t->post), *pp = bptr_c(&t->pos);
    uint32_t pos = b->start, ppos = b->pstart, n = 0;
    uint64_t prev = b->base;
    while (pos < b->end) {
        uint64_t v = get_varint(p, &pos);
        uint32_t tf = 1;
        if (v & 1) tf = (uint32_t)get_varint(p, &pos) + 2;
        prev += v >> 1;
        mmfs_assert(n < ix->bcapn, "block fits the scratch");
        ix->bdocs[n] = (uint32_t)prev;
        ix->btfs[n] = tf;
        ix->bpos[n] = ppos;
        skip_varints(pp, &ppos, tf);
        n++;
    }
    mmfs_assert(ppos == b->pend, "positions match their postings");
    ix->bpos[n] = ppos;
    return n;
}

/* The block of T that holds (or would hold) DOCNO. */
static uint32_t find_block(const mmfs__index *ix, const mmfs__term *t, uint32_t docno) {
    const mmfs__skips *s = tskips(ix, t);
    uint32_t lo = 0, hi = s ? s->n : 0;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->v[mid].key < docno) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* Re-encodes N postings of ix->bdocs/btfs as block B of T, shifting what
** follows.  Room for growth must be reserved by the caller. */
static void rewrite_block(mmfs__index *ix, mmfs__term *t, const blockref *b, uint32_t n) {
    size_t len = 0;
    uint32_t prev = b->base;
    for (uint32_t i = 0; i < n; i++) {
        len += put_posting(ix->bbytes + len, ix->bdocs[i] - prev, ix->btfs[i]);
        prev = ix->bdocs[i];
    }
    uint8_t *p = bptr(&t->post);
    int64_t delta = (int64_t)len - (int64_t)(b->end - b->start);
    memmove(p + b->start + len, p + b->end, t->post.len - b->end);
    memcpy(p + b->start, ix->bbytes, len);
    t->post.len = (uint32_t)((int64_t)t->post.len + delta);
    mmfs__skips *s = tskips(ix, t);
    uint32_t nc = s ? s->n : 0;
    for (uint32_t i = b->j; i < nc; i++) s->v[i].end = (uint32_t)((int64_t)s->v[i].end + delta);
    if (b->j == nc) t->last = n ? ix->bdocs[n - 1] : b->base;
}

/* Replaces positions bytes [from, to) of T, in block J, by SRC[0..n)
** (room reserved by the caller when n > to - from). */
static void splice_pos(mmfs__index *ix, mmfs__term *t, uint32_t j, uint32_t from, uint32_t to,
                       const uint8_t *src, uint32_t n) {
    uint8_t *p = bptr(&t->pos);
    memmove(p + from + n, p + to, t->pos.len - to);
    if (n) memcpy(p + from, src, n);
    int64_t delta = (int64_t)n - (int64_t)(to - from);
    t->pos.len = (uint32_t)((int64_t)t->pos.len + delta);
    mmfs__skips *s = tskips(ix, t);
    uint32_t nc = s ? s->n : 0;
    for (uint32_t i = j; i < nc; i++) s->v[i].pend = (uint32_t)((int64_t)s->v[i].pend + delta);
}

/* Removes DOCNO from T's postings if there.  Never allocates. */
static void posting_remove(mmfs__index *ix, mmfs__term *t, uint32_t docno) {
    if (!t->df || docno > t->last) return;
    blockref b;
    uint32_t n = decode_block(ix, t, find_block(ix, t, docno), &b);
    uint32_t i = 0;
    while (i < n && ix->bdocs[i] < docno) i++;
    if (i == n || ix->bdocs[i] != docno) return;
    splice_pos(ix, t, b.j, ix->bpos[i], ix->bpos[i + 1], NULL, 0);
    memmove(ix->bdocs + i, ix->bdocs + i + 1, (n - i - 1) * sizeof *ix->bdocs);
    memmove(ix->btfs + i, ix->btfs + i + 1, (n - i - 1) * sizeof *ix->btfs);
    rewrite_block(ix, t, &b, n - 1);
    mmfs__skips *s = tskips(ix, t);
    if (s && b.j < s->n) {
        s->v[b.j].count--;
        s->closed_total--;
    }
    t->df--;
}

/* Grows the block scratch to hold COUNT postings.  Errors: MMFS_NOMEM. */
static int block_scratch(mmfs__index *ix, size_t count) {
    int rc;
    if (count > ix->bcapn) {
        size_t cap = ix->bcapn;
        if ((rc = grow((void **)&ix->bdocs, &cap, count, sizeof *ix->bdocs))) return rc;
        cap = ix->bcapn;
        if ((rc = grow((void **)&ix->btfs, &cap, count, sizeof *ix->btfs))) return rc;
        size_t pcap = ix->bcapn + 1;
        if ((rc = grow((void **)&ix->bpos, &pcap, cap + 1, sizeof *ix->bpos))) return rc;
        ix->bcapn = cap;
    }
    return grow((void **)&ix->bbytes, &ix->bbytescap, ix->bcapn * POSTING_MAX, 1);
}

/* Adds (DOCNO, TF) to T's postings, with its positions encoded in
** PB[0..pbn).  Errors: MMFS_NOMEM (T unchanged). */
static int posting_add(mmfs__index *ix, mmfs__term *t, uint32_t docno, uint32_t tf, uint32_t dl,
                       const uint8_t *pb, uint32_t pbn) {
    int rc;
    mmfs__skips *s = tskips(ix, t);
    uint32_t open = t->df - (s ? s->closed_total : 0);
    if ((rc = breserve(&t->pos, (size_t)t->pos.len + pbn))) return rc;
    if (docno > t->last) { /* the common case: append to the open block */
        if ((rc = breserve(&t->post, (size_t)t->post.len + POSTING_MAX))) return rc;
        if (open + 1 >= MMFS__BLOCK && (rc = reserve_skip(ix, t))) return rc;
        t->post.len += (uint32_t)put_posting(bptr(&t->post) + t->post.len, docno - t->last, tf);
        memcpy(bptr(&t->pos) + t->pos.len, pb, pbn);
        t->pos.len += pbn;
        t->last = docno;
        t->df++;
    } else { /* out of order: rewrite the block it belongs to */
        uint32_t j = find_block(ix, t, docno);
        uint32_t nc = s ? s->n : 0;
        uint32_t count = j < nc ? s->v[j].count : open;
        if ((rc = block_scratch(ix, (size_t)count + 1))) return rc;
        if ((rc = breserve(&t->post, (size_t)t->post.len + 2 * POSTING_MAX))) return rc;
        if (j == nc && open + 1 >= MMFS__BLOCK && (rc = reserve_skip(ix, t))) return rc;
        s = tskips(ix, t);
        blockref b;
        uint32_t n = decode_block(ix, t, j, &b);
        uint32_t i = 0;
        while (i < n && ix->bdocs[i] < docno) i++;
        if (i < n && ix->bdocs[i] == docno) {
            /* cannot happen (add purges first); keep one posting */
            ix->btfs[i] = tf;
            splice_pos(ix, t, j, ix->bpos[i], ix->bpos[i + 1], pb, pbn);
        } else {
            splice_pos(ix, t, j, ix->bpos[i], ix->bpos[i], pb, pbn);
            memmove(ix->bdocs + i + 1, ix->bdocs + i, (n - i) * sizeof *ix->bdocs);
            memmove(ix->btfs + i + 1, ix->btfs + i, (n - i) * sizeof *ix->btfs);
            ix->bdocs[i] = docno;
            ix->btfs[i] = tf;
            n++;
            t->df++;
            if (j < nc) {
                s->v[j].count++;
                s->closed_total++;
            }
        }
        rewrite_block(ix, t, &b, n);
    }
    maybe_close(ix, t);
    if (tf > t->max_tf) t->max_tf = tf > UINT16_MAX ? UINT16_MAX : (uint16_t)tf;
    if (dl < t->min_dl) t->min_dl = dl;
    return MMFS_OK;
}

/* Removes every posting of DOCNO and its document entry. */
static void purge(mmfs__index *ix, uint32_t docno) {
    uint32_t *slot = &ix->pages[docno >> MMFS__PAGE_BITS][docno & (MMFS__PAGE - 1)];
    for (uint32_t i = 0; i < ix->nterms; i++) posting_remove(ix, &ix->terms[i], docno);
    if (*slot & MMFS__DOC_DELETED) {
        ix->ndeleted--;
    } else {
        ix->ndocs--;
        ix->total_len -= *slot;
    }
    *slot = MMFS__DOC_ABSENT;
}

/* Groups one document's N tokens by term (ids[k] >> 32), in the order
** terms first appear: group g is term gterm[g], its tokens (positions,
** increasing) gpos[gend[g] - gcount[g] .. gend[g]).  The scratch is
** ix->grp (room made by the caller).  Linear: a small hash table of the
** document's terms, then a counting sort. */
typedef struct groups {
    uint32_t *gterm, *gcount, *gend, *gpos;
    uint32_t ng;
} groups;

static size_t group_slots(size_t n) {
    size_t g = 16;
    while (g < 2 * n) g *= 2;
    return g;
}

static void group_tokens(mmfs__index *ix, size_t n, groups *gr) {
    size_t gcap = group_slots(n);
    uint32_t *slots = ix->grp, *tokg = slots + gcap;
    gr->gterm = tokg + n;
    gr->gcount = gr->gterm + n;
    gr->gend = gr->gcount + n;
    gr->gpos = gr->gend + n;
    memset(slots, 0, gcap * sizeof *slots);
    uint32_t ng = 0, mask = (uint32_t)gcap - 1;
    for (size_t k = 0; k < n; k++) {
        uint32_t id = (uint32_t)(ix->ids[k] >> 32), h = (id * 2654435761u) & mask;
        while (slots[h] && gr->gterm[slots[h] - 1] != id) h = (h + 1) & mask;
        if (!slots[h]) {
            gr->gterm[ng] = id;
            gr->gcount[ng] = 0;
            slots[h] = ++ng;
        }
        uint32_t g = slots[h] - 1;
        gr->gcount[g]++;
        tokg[k] = g;
    }
    uint32_t sum = 0;
    for (uint32_t g = 0; g < ng; g++) {
        gr->gend[g] = sum;
        sum += gr->gcount[g];
    }
    for (size_t k = 0; k < n; k++) gr->gpos[gr->gend[tokg[k]]++] = (uint32_t)k;
    gr->ng = ng;
}

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)0)
#endif
/* A term straddles two cache lines more often than not (56-byte stride). */
#define PREFETCH_TERM(t) (PREFETCH(t), PREFETCH((const char *)(t) + sizeof(mmfs__term) - 1))

/* Token flags in ix->ids while a document is tokenized. */
#define TOK_SURF ((uint64_t)1 << 63) /* look the bytes up in the surface map */
#define TOK_STEM ((uint64_t)1 << 61) /* the bytes are a word not stemmed yet */
#define TOK_TERM ((uint64_t)1 << 62) /* resolved: the low 32 bits are the term id */

/* Room for token K in the per-token scratch.  Errors: MMFS_NOMEM. */
static int tok_room(mmfs__index *ix, size_t k) {
    if (k < ix->tokcap) return MMFS_OK;
    size_t cap = ix->tokcap, need = k + 1;
    int rc;
    if ((rc = grow((void **)&ix->hashes, &cap, need, sizeof *ix->hashes))) return rc;
    cap = ix->tokcap;
    if ((rc = grow((void **)&ix->tokoff, &cap, need, sizeof *ix->tokoff))) return rc;
    cap = ix->tokcap;
    if ((rc = grow((void **)&ix->toklen, &cap, need, sizeof *ix->toklen))) return rc;
    cap = ix->tokcap;
    if ((rc = grow((void **)&ix->ids, &cap, need, sizeof *ix->ids))) return rc;
    ix->tokcap = cap;
    return MMFS_OK;
}

/* Appends B[0..n) to ix->tokbytes at *bytes (its offset in *off). */
static int tok_bytes(mmfs__index *ix, size_t *bytes, const uint8_t *b, size_t n, uint32_t *off) {
    if (*bytes + n > UINT32_MAX) return mmfs__err(MMFS_NOMEM, "search: document too large");
    int rc = grow((void **)&ix->tokbytes, &ix->tokbcap, *bytes + n + 1, 1);
    if (rc) return rc;
    memcpy(ix->tokbytes + *bytes, b, n);
    *off = (uint32_t)*bytes;
    *bytes += n;
    return MMFS_OK;
}

/* Tokenizes TEXT into the per-token scratch (hash, bytes, flags); returns
** the count in *N.  A word to stem comes as its surface (TOK_STEM).  A
** token short enough is looked up in the surface map first (TOK_SURF:
** one line read, where the term dictionary takes three), whether it is a
** word to stem or a token that is its own term (no stemmer, CJK): the two
** kinds never share bytes, since words to stem hold no CJK.  Each token's
** slot in its table is prefetched for the lookups that follow.  *BYTES:
** the bytes used in ix->tokbytes. */
static int tokenize_doc(mmfs__index *ix, const char *text, size_t len, size_t *n, size_t *bytes) {
    int rc;
    mmfs__tok tk;
    mmfs__tok_init_z(&tk, &ix->wz, text, len);
    tk.defer = 1;
    size_t k = 0;
    *bytes = 0;
    uint32_t mask = ix->nslot ? ix->nslot - 1 : 0, smask = ix->nsslot ? ix->nsslot - 1 : 0;
    while (mmfs__tok_next(&tk)) {
        if ((rc = tok_room(ix, k))) return rc;
        /* a word too long for the map is stemmed now, and its stem is not
        ** a surface (stemming a stem may give another stem) */
        int nomap = tk.pending && tk.fn > SURF_MAX;
        if (nomap) mmfs__tok_stem(&tk);
        const uint8_t *b = tk.pending ? tk.fbuf : tk.buf;
        size_t bn = tk.pending ? tk.fn : tk.n;
        if ((rc = tok_bytes(ix, bytes, b, bn, &ix->tokoff[k]))) return rc;
        uint64_t h = XXH3_64bits(b, bn);
        uint64_t fl = (bn <= SURF_MAX && !nomap ? TOK_SURF : 0) | (tk.pending ? TOK_STEM : 0);
        if ((fl & TOK_SURF) && smask) PREFETCH(&ix->surfs[(uint32_t)h & smask]);
        else if (!(fl & TOK_SURF) && mask) PREFETCH(&ix->slots[2 * ((uint32_t)h & mask)]);
        ix->hashes[k] = h;
        ix->toklen[k] = (uint8_t)bn;
        ix->ids[k] = fl;
        k++;
    }
    *n = k;
    return MMFS_OK;
}

/* Turns every surface token into its term (known surface), or else into
** the term bytes to intern (its stem for TOK_STEM), the surface recorded
** in ix->ns (*nns of them) for surf_add once its term is interned.
** Errors: MMFS_NOMEM. */
static int resolve_surfaces(mmfs__index *ix, size_t n, size_t *bytes, size_t *nns) {
    int rc;
    *nns = 0;
    for (size_t k = 0; k < n; k++) {
        if (!(ix->ids[k] & TOK_SURF)) continue;
        const uint8_t *s = ix->tokbytes + ix->tokoff[k];
        uint32_t term = surf_find(ix, ix->hashes[k], s, ix->toklen[k]);
        if (term != UINT32_MAX) {
            PREFETCH_TERM(&ix->terms[term]);
            ix->ids[k] = TOK_TERM | term;
            continue;
        }
        if (*nns == ix->nscap &&
            (rc = grow((void **)&ix->ns, &ix->nscap, *nns + 1, sizeof *ix->ns)))
            return rc;
        ix->ns[*nns] = (struct mmfs__newsurf){ix->hashes[k], (uint32_t)k, ix->tokoff[k], ix->toklen[k]};
        if (ix->ids[k] & TOK_STEM) {
            uint8_t st[MMFS__TOK_MAX + 4];
            size_t sn = mmfs__tokz_stem(&ix->wz, s, ix->toklen[k], st);
            if ((rc = tok_bytes(ix, bytes, st, sn, &ix->tokoff[k]))) return rc;
            ix->hashes[k] = XXH3_64bits(st, sn);
            ix->toklen[k] = (uint8_t)sn;
        }
        ++*nns;
        ix->ids[k] = 0;
    }
    return MMFS_OK;
}

int mmfs__index_add(mmfs__index *ix, uint32_t docno, const char *text, size_t len) {
    int rc;
    if (mmfs__doc_len(ix, docno) != MMFS__DOC_ABSENT) purge(ix, docno);
    uint32_t *slot = doc_slot(ix, docno);
    if (!slot) return mmfs__err(MMFS_NOMEM, "search: out of memory");

    /* intern every token first: if that fails, no posting was touched.
    ** Known surfaces give their term at once.  For the other tokens, pass
    ** 1 finds each one's likely id (first slot with its hash tag) and
    ** prefetches that term; pass 2 confirms it or interns the slow way
    ** (new term, tag collision).  Ids never change, so a stale guess is
    ** only a wasted prefetch. */
    size_t n = 0, bytes = 0, nns = 0;
    if ((rc = tokenize_doc(ix, text, len, &n, &bytes))) return rc;
    if ((rc = resolve_surfaces(ix, n, &bytes, &nns))) return rc;
    uint32_t mask = ix->nslot ? ix->nslot - 1 : 0;
    /* room for one posting's positions, whatever its tf, and for grouping */
    if ((size_t)n * POS_MAX > ix->pbytescap &&
        (rc = grow((void **)&ix->pbytes, &ix->pbytescap, (size_t)n * POS_MAX, 1)))
        return rc;
    if (n > UINT32_MAX / 8) return mmfs__err(MMFS_NOMEM, "search: document too large");
    if ((rc = grow((void **)&ix->grp, &ix->grpcap, group_slots(n) + 5 * n, sizeof *ix->grp))) return rc;
    for (size_t i = 0; i < n && mask; i++) {
        if (ix->ids[i] & TOK_TERM) continue;
        uint64_t h = ix->hashes[i];
        uint32_t tag = (uint32_t)(h >> 32), guess = 0;
        for (uint32_t j = (uint32_t)h & mask;; j = (j + 1) & mask) {
            uint32_t id1 = ix->slots[2 * j];
            if (!id1) break;
            if (ix->slots[2 * j + 1] == tag) {
                guess = id1;
                PREFETCH_TERM(&ix->terms[id1 - 1]);
                break;
            }
        }
        ix->ids[i] = guess;
    }
    for (size_t i = 0, j = 0; i < n; i++) {
        if (ix->ids[i] & TOK_TERM) {
            ix->ids[i] = (ix->ids[i] & UINT32_MAX) << 32 | i;
            continue;
        }
        const uint8_t *s = ix->tokbytes + ix->tokoff[i];
        size_t tl = ix->toklen[i];
        uint32_t g = mask ? (uint32_t)ix->ids[i] : 0, id = 0;
        if (g && ix->terms[g - 1].slen == tl && memcmp(tstr(ix, &ix->terms[g - 1]), s, tl) == 0)
            id = g - 1;
        else if ((rc = intern(ix, ix->hashes[i], s, tl, &id)))
            return rc;
        ix->ids[i] = (uint64_t)id << 32 | i;
        if (j < nns && ix->ns[j].k == i) { /* a new surface: it stems to this term */
            const struct mmfs__newsurf *f = &ix->ns[j++];
            if ((rc = surf_add(ix, f->h, ix->tokbytes + f->off, f->len, id))) return rc;
        }
    }
    uint32_t dl = n > MAX_DOC_LEN ? MAX_DOC_LEN : (uint32_t)n;
    groups gr;
    group_tokens(ix, n, &gr);
    /* every term's tails, before any is written: the term loads are
    ** independent of each other, so their misses overlap */
    for (uint32_t g = 0; g < gr.ng; g++) {
        const mmfs__term *t = &ix->terms[gr.gterm[g]];
        PREFETCH(bptr_c(&t->post) + t->post.len);
        PREFETCH(bptr_c(&t->pos) + t->pos.len);
    }
    for (uint32_t g = 0; g < gr.ng; g++) {
        uint32_t id = gr.gterm[g], tf = gr.gcount[g], pbn = 0, prev = 0;
        for (uint32_t i = gr.gend[g] - tf; i < gr.gend[g]; i++) { /* positions: first, then gaps */
            pbn += (uint32_t)put_varint(ix->pbytes + pbn, gr.gpos[i] - prev);
            prev = gr.gpos[i];
        }
        if ((rc = posting_add(ix, &ix->terms[id], docno, tf, dl, ix->pbytes, pbn))) {
            while (g-- > 0) posting_remove(ix, &ix->terms[gr.gterm[g]], docno); /* roll back */
            return rc;
        }
    }
    *slot = dl;
    ix->ndocs++;
    ix->total_len += dl;
    maybe_merge(ix);
    return MMFS_OK;
}

void mmfs__index_remove(mmfs__index *ix, uint32_t docno) {
    uint32_t len = mmfs__doc_len(ix, docno);
    if (len == MMFS__DOC_ABSENT || (len & MMFS__DOC_DELETED)) return;
    ix->pages[docno >> MMFS__PAGE_BITS][docno & (MMFS__PAGE - 1)] = len | MMFS__DOC_DELETED;
    ix->ndocs--;
    ix->total_len -= len;
    ix->ndeleted++;
}

/* ------------------------------------------------------------ cursors */

void mmfs__cur_init(mmfs__cur *c, const mmfs__index *ix, const mmfs__term *t) {
    const mmfs__skips *s = tskips(ix, t);
    c->buf = bptr_c(&t->post);
    c->sk = s ? s->v : NULL;
    c->nsk = s ? s->n : 0;
    c->blen = t->post.len;
    c->blk = 0;
    c->pos = 0;
    c->bend = c->nsk ? c->sk[0].end : c->blen;
    c->prev = 0;
    c->doc = 0;
    c->tf = 0;
    c->pbuf = bptr_c(&t->pos);
    c->ppos = 0;
    c->pskip = 0;
    mmfs__cur_next(c);
}

uint64_t mmfs__cur_next(mmfs__cur *c) {
    c->pskip += c->tf; /* the positions of the posting left behind */
    while (c->pos >= c->bend) {
        if (c->blk >= c->nsk) {
            c->tf = 0;
            return c->doc = MMFS__END;
        }
        c->prev = c->sk[c->blk].key;
        c->blk++;
        c->bend = c->blk < c->nsk ? c->sk[c->blk].end : c->blen;
    }
    uint64_t v = get_varint(c->buf, &c->pos);
    c->tf = 1;
    if (v & 1) c->tf = (uint32_t)get_varint(c->buf, &c->pos) + 2;
    c->prev += v >> 1;
    return c->doc = c->prev;
}

uint64_t mmfs__cur_seek(mmfs__cur *c, uint64_t target) {
    if (c->doc >= target) return c->doc;
    if (c->blk < c->nsk && c->sk[c->blk].key < target) {
        uint32_t lo = c->blk + 1, hi = c->nsk;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (c->sk[mid].key < target) lo = mid + 1;
            else hi = mid;
        }
        c->blk = lo;
        c->pos = c->sk[lo - 1].end;
        c->prev = c->sk[lo - 1].key;
        c->bend = lo < c->nsk ? c->sk[lo].end : c->blen;
        c->ppos = c->sk[lo - 1].pend; /* positions restart at the block */
        c->pskip = 0;
        c->tf = 0;
    }
    while (mmfs__cur_next(c) < target) {
    }
    return c->doc;
}

void mmfs__cur_positions(mmfs__cur *c, uint32_t *out) {
    skip_varints(c->pbuf, &c->ppos, c->pskip);
    c->pskip = 0;
    uint32_t i = c->ppos, p = 0;
    for (uint32_t k = 0; k < c->tf; k++) {
        p += (uint32_t)get_varint(c->pbuf, &i);
        out[k] = p;
    }
}
