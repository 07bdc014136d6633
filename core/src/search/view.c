/*
** view.c: the index as a search sees it: the mapped segments (segfile.c)
** below the in-memory index, read as one.
**
** Owns: attaching segments to an index, deletes of their documents (a
** bitmap per segment, never a change to the file), their document lengths
** and live documents, and resolving a term or a prefix over every segment
** into xterms (df summed, score bounds maxed / minned, one part per
** segment holding the term).
**
** Invariants:
** - Segments' docno ranges are disjoint and increasing, and every docno of
**   the in-memory index is >= ix->seg_hi: parts come in docno order, so a
**   cursor over them (postings.c) still sees increasing docnos.
** - A segment's df counts its deleted documents, like the in-memory
**   index's (bm25.c's idf): a delete changes N and the total length only.
** - Lookups only read; a damaged block of a segment is MMFS_CORRUPT (with
**   the segment named), never a partial answer.
*/
#include "index.h"

#include <stdatomic.h>
#include <stdlib.h>

/* The segment holding DOCNO (< ix->seg_hi), or NULL. */
static mmfs__ixseg *seg_of(const mmfs__index *ix, uint32_t docno) {
    uint32_t lo = 0, hi = ix->nseg;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ix->segs[mid]->hi <= docno) lo = mid + 1;
        else hi = mid;
    }
    return lo < ix->nseg && ix->segs[lo]->lo <= docno ? ix->segs[lo] : NULL;
}

static inline int seg_deleted(const mmfs__ixseg *s, uint32_t docno) {
    uint32_t i = docno - s->lo;
    return (int)((s->del[i / 64] >> (i % 64)) & 1);
}

/* The document table entry of DOCNO in S, its block checked first (open
** does not read the table, so that open time does not grow with the
** store).  A damaged block reads as absent and leaves S bad: the search
** that read it answers MMFS_CORRUPT (mmfs__view_bad), never its hits. */
static uint32_t seg_dl(mmfs__ixseg *s, uint32_t docno) {
    uint64_t off = (uint64_t)((const uint8_t *)s->dl - s->map) + 4 * (uint64_t)(docno - s->lo);
    if (mmfs__ixseg_check(s, off, 4)) return MMFS__DOC_ABSENT;
    return s->dl[docno - s->lo];
}

int mmfs__view_bad(const mmfs__index *ix) {
    for (uint32_t k = 0; k < ix->nseg; k++)
        if (atomic_load_explicit(&ix->segs[k]->bad, memory_order_relaxed))
            return mmfs__err(MMFS_CORRUPT, "index/%s: damaged", ix->segs[k]->name);
    return MMFS_OK;
}

uint32_t mmfs__ixseg_doc_len(const mmfs__index *ix, uint32_t docno) {
    mmfs__ixseg *s = seg_of(ix, docno);
    if (!s) return MMFS__DOC_ABSENT;
    uint32_t len = seg_dl(s, docno);
    if (len != MMFS__DOC_ABSENT && seg_deleted(s, docno)) len |= MMFS__DOC_DELETED;
    return len;
}

int mmfs__index_attach(mmfs__index *ix, mmfs__ixseg *s) {
    if (ix->nterms || ix->npages || (ix->nseg && s->lo < ix->seg_hi))
        return mmfs__err(MMFS_INVALID, "search: index/%s does not follow the index's documents", s->name);
    mmfs__ixseg **v = realloc(ix->segs, ((size_t)ix->nseg + 1) * sizeof *v);
    if (!v) return mmfs__err(MMFS_NOMEM, "search: out of memory");
    ix->segs = v;
    ix->segs[ix->nseg++] = s;
    ix->seg_hi = s->hi;
    ix->ndocs += s->ndocs;
    ix->total_len += s->total_len;
    ix->ndeleted += s->ndeleted;
    return MMFS_OK;
}

uint32_t mmfs__index_segments(const mmfs__index *ix) { return ix->nseg; }

uint32_t mmfs__index_segments_end(const mmfs__index *ix) { return ix->seg_hi; }

mmfs__index *mmfs__index_new_like(const mmfs__index *ix) {
    mmfs__index *nx = mmfs__index_new();
    if (!nx) return NULL;
    if (mmfs__index_set_tokenizer(nx, ix->cfg.version, ix->cfg.lang) != MMFS_OK) {
        mmfs__index_free(nx);
        return NULL;
    }
    mmfs__index_tune(nx, ix->k1, ix->b, !ix->cfg.nostop);
    return nx;
}

int mmfs__index_write_segment(const mmfs__index *ix, int dir, uint64_t lsn, mmfs__ixent *out) {
    char name[MMFS__IXSEG_NAME];
    return mmfs__ixseg_write(ix, dir, lsn, name, out);
}

int mmfs__index_map_segment(mmfs__index *ix, int dir, const mmfs__ixent *ent) {
    char name[MMFS__IXSEG_NAME];
    mmfs__ixseg_name(ent, name);
    mmfs__ixseg *s;
    int rc = mmfs__ixseg_open(dir, name, &ix->cfg, &s);
    if (rc) return rc;
    if (s->lo != ent->lo || s->hi != ent->hi || s->lsn != ent->lsn || s->head_crc != ent->crc) {
        mmfs__ixseg_close(s);
        return mmfs__err(MMFS_CORRUPT, "index/%s: not the segment the checkpoint lists", name);
    }
    if ((rc = mmfs__index_attach(ix, s))) mmfs__ixseg_close(s);
    return rc;
}

void mmfs__view_remove(mmfs__index *ix, uint32_t docno) {
    mmfs__ixseg *s = seg_of(ix, docno);
    if (!s) return;
    uint32_t len = seg_dl(s, docno);
    if (len == MMFS__DOC_ABSENT || (len & MMFS__DOC_DELETED) || seg_deleted(s, docno)) return;
    uint32_t i = docno - s->lo;
    s->del[i / 64] |= (uint64_t)1 << (i % 64);
    ix->ndocs--;
    ix->total_len -= len;
    ix->ndeleted++;
}

void mmfs__view_free(mmfs__index *ix) {
    for (uint32_t i = 0; i < ix->nseg; i++) mmfs__ixseg_close(ix->segs[i]);
    free(ix->segs);
    ix->segs = NULL;
    ix->nseg = 0;
}

uint64_t mmfs__view_next_live(const mmfs__index *ix, uint64_t from) {
    for (uint32_t k = 0; k < ix->nseg; k++) {
        mmfs__ixseg *s = ix->segs[k];
        if (s->hi <= from) continue;
        for (uint64_t d = from > s->lo ? from : s->lo; d < s->hi; d++) {
            uint32_t len = seg_dl(s, (uint32_t)d);
            if (len != MMFS__DOC_ABSENT && !(len & MMFS__DOC_DELETED) && !seg_deleted(s, (uint32_t)d))
                return d;
        }
    }
    return MMFS__END;
}

/* ------------------------------------------------------------ terms */

static int cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

/* The first entry of S not below KEY[0..n) (with PREFIX set: the first
** whose bytes are not below KEY).  Errors: MMFS_CORRUPT. */
static int seg_lower(mmfs__ixseg *s, const uint8_t *key, size_t n, uint32_t *at) {
    uint32_t lo = 0, hi = s->nterms;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const uint8_t *t;
        size_t tn;
        int rc = mmfs__ixseg_term(s, mid, &t, &tn);
        if (rc) return rc;
        if (cmp_bytes(t, tn, key, n) < 0) lo = mid + 1;
        else hi = mid;
    }
    *at = lo;
    return MMFS_OK;
}

/* Adds part P (stats ST) to X. */
static void fold(mmfs__xterm *x, const mmfs__xterm *st, mmfs__part *parts, const mmfs__part *p) {
    if (!x->npart) {
        x->df = 0;
        x->min_dl = UINT32_MAX;
        x->max_tf = 0;
    }
    x->df += st->df;
    if (st->min_dl < x->min_dl) x->min_dl = st->min_dl;
    if (st->max_tf > x->max_tf) x->max_tf = st->max_tf;
    parts[x->npart++] = *p;
}

/* One source of sorted terms matching a prefix: a segment's entry range
** or the in-memory expansion. */
typedef struct src {
    mmfs__ixseg *seg;           /* NULL: the in-memory index */
    uint32_t at, end;         /* segment entries [at, end) */
    const mmfs__term **mt;    /* in memory: the expansion */
    size_t mi, mn;
    const uint8_t *cur;       /* the current term's bytes */
    size_t curn;
} src;

/* Loads the current term of R (R->cur NULL when done). */
static int src_load(const mmfs__index *ix, src *r) {
    r->cur = NULL;
    if (r->seg) {
        if (r->at >= r->end) return MMFS_OK;
        return mmfs__ixseg_term(r->seg, r->at, &r->cur, &r->curn);
    }
    if (r->mi >= r->mn) return MMFS_OK;
    r->cur = (const uint8_t *)tstr(ix, r->mt[r->mi]);
    r->curn = r->mt[r->mi]->slen;
    return MMFS_OK;
}

int mmfs__view_terms(const mmfs__index *ix, const void *text, size_t tlen, int prefix, size_t max,
                     size_t pos, mmfs__xterm **out, size_t *nout) {
    *out = NULL;
    *nout = 0;
    size_t nsrc = (size_t)ix->nseg + 1;
    src *sv = calloc(nsrc, sizeof *sv);
    if (!sv) return mmfs__err(MMFS_NOMEM, "search: out of memory");
    const mmfs__term *one = NULL;
    src *m = &sv[ix->nseg];
    int rc = MMFS_OK;
    size_t total = 0; /* an upper bound of the parts */
    for (uint32_t k = 0; k < ix->nseg; k++) {
        src *r = &sv[k];
        r->seg = ix->segs[k];
        if ((rc = seg_lower(r->seg, text, tlen, &r->at))) goto done;
        r->end = r->at;
        while (r->end < r->seg->nterms) {
            const uint8_t *t;
            size_t tn;
            if ((rc = mmfs__ixseg_term(r->seg, r->end, &t, &tn))) goto done;
            if (prefix ? tn < tlen || memcmp(t, text, tlen) != 0 : cmp_bytes(t, tn, text, tlen) != 0) break;
            r->end++;
            if (!prefix) break;
        }
        total += r->end - r->at;
    }
    if (prefix) {
        if ((rc = mmfs__term_prefix(ix, text, tlen, max, pos, &m->mt, &m->mn))) goto done;
    } else if ((one = mmfs__term_find(ix, text, tlen)) && one->df) {
        m->mt = &one;
        m->mn = 1;
    }
    total += m->mn;
    /* one allocation: the xterms, then their parts */
    mmfs__xterm *xs = malloc(total * sizeof *xs + total * sizeof(mmfs__part) + 1);
    if (!xs) {
        rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
        goto done;
    }
    mmfs__part *parts = (mmfs__part *)(xs + total);
    size_t n = 0, np = 0;
    for (size_t k = 0; k < nsrc; k++)
        if ((rc = src_load(ix, &sv[k]))) goto fail;
    for (;;) { /* merge the sources by bytes; equal terms make one xterm */
        const uint8_t *best = NULL;
        size_t bn = 0;
        for (size_t k = 0; k < nsrc; k++)
            if (sv[k].cur && (!best || cmp_bytes(sv[k].cur, sv[k].curn, best, bn) < 0)) {
                best = sv[k].cur;
                bn = sv[k].curn;
            }
        if (!best) break;
        if (n == max) {
            rc = mmfs__err(MMFS_INVALID, "query: position %zu: prefix matches more than %zu terms", pos, max);
            goto fail;
        }
        mmfs__xterm *x = &xs[n++];
        x->npart = 0;
        x->part = parts + np;
        uint8_t key[MMFS__TOK_MAX + 4]; /* best points into a source that moves */
        memcpy(key, best, bn < sizeof key ? bn : sizeof key);
        bn = bn < sizeof key ? bn : sizeof key;
        for (size_t k = 0; k < nsrc; k++) {
            src *r = &sv[k];
            if (!r->cur || cmp_bytes(r->cur, r->curn, key, bn) != 0) continue;
            mmfs__xterm st;
            mmfs__part p;
            if (r->seg) {
                if ((rc = mmfs__ixseg_term_part(r->seg, r->at, &st, &p))) goto fail;
                r->at++;
            } else {
                const mmfs__term *t = r->mt[r->mi++];
                mmfs__term_part(ix, t, ix->seg_hi, &p);
                st.df = t->df;
                st.min_dl = t->min_dl;
                st.max_tf = t->max_tf;
            }
            fold(x, &st, parts + np, &p);
            if ((rc = src_load(ix, r))) goto fail;
        }
        if (!x->npart) { /* no source took its own smallest term: never loop on it */
            rc = mmfs__err(MMFS_CORRUPT, "search: index terms out of order");
            goto fail;
        }
        np += x->npart;
    }
    *out = xs;
    *nout = n;
    goto done;
fail:
    free(xs);
done:
    if (m->mt && m->mt != &one) free((void *)m->mt);
    free(sv);
    return rc;
}
