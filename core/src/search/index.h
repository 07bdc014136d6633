/*
** index.h: what the three files of the in-memory index share (search.h
** has the index's structures and what the rest of search/ calls).
**
**   index.c     the index: lifetime, the document table, adding and
**               removing a document (tokens grouped by term)
**   terms.c     the term dictionary, the surface map, the ordered view
**               and prefix expansion
**   postings.c  each term's postings and positions (layout in search.h):
**               adding and removing one posting, cursors
**   segfile.c   writing these structures as a segment file
**   view.c      the mapped segments and the in-memory index together
**
** Nothing outside these files includes it.
*/
#ifndef MMFS_INDEX_H
#define MMFS_INDEX_H

#include "search.h"

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

/* ------------------------------------------------------------ helpers */

static inline uint8_t *bptr(mmfs__bytes *b) { return b->cap ? b->b.p : b->b.inl; }
static inline const uint8_t *bptr_c(const mmfs__bytes *b) { return b->cap ? b->b.p : b->b.inl; }

static inline const char *tstr(const mmfs__index *ix, const mmfs__term *t) {
    return ix->strs + t->soff;
}

/* A slot of the surface map: one 32-byte line.  Words longer than
** SURF_MAX bytes are not kept (they are stemmed each time: rare). */
#define SURF_MAX 27
struct mmfs__surf {
    uint32_t term1; /* term id + 1; 0: an empty slot */
    uint8_t len;
    uint8_t b[SURF_MAX];
};
_Static_assert(sizeof(struct mmfs__surf) == 32, "a surface slot is half a cache line");

/* index.c: grows *P (*CAP elements of ELEM bytes, doubling) to hold NEED.
** Errors: MMFS_NOMEM (*P and *CAP unchanged). */
int mmfs__ix_grow(void **p, size_t *cap, size_t need, size_t elem);
/* index.c: the same for a u32 capacity (NEED at most UINT32_MAX / 2). */
int mmfs__ix_grow32(void **p, uint32_t *cap, size_t need, size_t elem);

/* index.c: the length slot of DOCNO (>= ix->seg_hi), its page created.
** Errors: NULL (NOMEM). */
uint32_t *mmfs__ix_doc_slot(mmfs__index *ix, uint32_t docno);

/* terms.c: the id of term S[0..n) (hash H, XXH3), created if new.
** Errors: MMFS_NOMEM. */
int mmfs__term_intern(mmfs__index *ix, uint64_t h, const uint8_t *s, size_t n, uint32_t *id);
/* terms.c: the term id of surface S[0..n) (hash H), or UINT32_MAX. */
uint32_t mmfs__surf_find(const mmfs__index *ix, uint64_t h, const uint8_t *s, size_t n);
/* terms.c: maps surface S[0..n) (hash H) to TERM unless it is mapped or
** too long.  Errors: MMFS_NOMEM (the map unchanged). */
int mmfs__surf_add(mmfs__index *ix, uint64_t h, const uint8_t *s, size_t n, uint32_t term);
/* terms.c: merges the unsorted tail of the ordered view in once it is
** large (an optimization only: nothing changes when memory is short). */
void mmfs__terms_merge(mmfs__index *ix);
/* terms.c: the ids of the terms with postings (df > 0), sorted by bytes:
** *out is malloc'd (free it).  Errors: MMFS_NOMEM. */
int mmfs__terms_sorted(const mmfs__index *ix, uint32_t **out, uint32_t *n);

/* postings.c: adds (DOCNO, TF) to T's postings, DL the document's length,
** with its positions encoded in PB[0..pbn).  Errors: MMFS_NOMEM (T
** unchanged). */
int mmfs__posting_add(mmfs__index *ix, mmfs__term *t, uint32_t docno, uint32_t tf, uint32_t dl,
                      const uint8_t *pb, uint32_t pbn);
/* postings.c: removes DOCNO from T's postings if there.  Never allocates. */
void mmfs__posting_remove(mmfs__index *ix, mmfs__term *t, uint32_t docno);

/* view.c: deletes DOCNO (< ix->seg_hi) if a segment holds it live. */
void mmfs__view_remove(mmfs__index *ix, uint32_t docno);
/* view.c: the first live segment document at or after FROM, or MMFS__END. */
uint64_t mmfs__view_next_live(const mmfs__index *ix, uint64_t from);
/* view.c: unmaps the segments. */
void mmfs__view_free(mmfs__index *ix);

#endif
