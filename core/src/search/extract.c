/*
** extract.c: a docno range of an index (its mapped segments and its
** in-memory part alike) copied into a new in-memory index without
** tokenizing again (a checkpoint's new segment, a merge of segments, a
** segment rewritten without the memories a compaction dropped).
**
** Owns: mmfs__index_extract.
**
** Invariants:
** - The copy holds what mmfs__index_add of the same texts (then
**   mmfs__index_remove of the deleted ones) would: each kept posting is
**   added with mmfs__posting_add in increasing docno order, with its tf,
**   its positions (re-encoded: first, then gaps) and its document's length,
**   so blocks, skips, df, max_tf and min_dl come out as index_add makes
**   them.  Sources are read in docno order (the segments, whose ranges are
**   disjoint and increasing, then the in-memory part), so each term's
**   postings reach the copy in increasing docno order whichever source
**   holds them.  A deleted document keeps its postings, as in the source.
** - The source is only read (its cursors and document table), under its
**   owner's read lock (LOCK), let go between terms every TERMS_HELD terms
**   so its writer (the index drain) is not held up for the whole copy.
**   Meanwhile the source may only gain documents at or above HI (new
**   terms, postings appended, its arrays moved: nothing is kept across)
**   and deletes (a flag; the copy's come from the document table read
**   first, or from KEEP).  A re-index replaces (and frees) the source:
**   then the copy stops (MMFS_NOTFOUND), touching nothing of it.  Its
**   mapped segments belong to it and never change.
** - A damaged block of a mapped segment stops the copy (MMFS_CORRUPT):
**   never a copy missing what the block held.
*/
#include "index.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <xxhash.h>

#define TERMS_HELD 4096 /* source terms copied per hold of its read lock */

/* The documents of [lo, hi) to copy: want[d - lo] is the length (with
** MMFS__DOC_DELETED) the copy gets, MMFS__DOC_ABSENT to leave D out.
** Errors: MMFS_NOTFOUND (KEEP wants a document SRC lacks). */
static int want_docs(const mmfs__index *src, uint32_t lo, uint32_t hi, const uint8_t *keep, uint32_t *want) {
    for (uint32_t d = lo; d < hi; d++) {
        uint32_t len = mmfs__doc_len(src, d), k;
        if (keep) k = keep[d - lo];
        else k = len == MMFS__DOC_ABSENT ? MMFS__EX_OUT : (len & MMFS__DOC_DELETED) ? MMFS__EX_DELETED : MMFS__EX_LIVE;
        if (k == MMFS__EX_OUT) {
            want[d - lo] = MMFS__DOC_ABSENT;
            continue;
        }
        if (len == MMFS__DOC_ABSENT) return MMFS_NOTFOUND; /* not indexed (yet): the caller tokenizes */
        len &= ~MMFS__DOC_DELETED;
        want[d - lo] = k == MMFS__EX_DELETED ? len | MMFS__DOC_DELETED : len;
    }
    return MMFS_OK;
}

/* Scratch of one copy: one posting's positions, decoded and encoded. */
typedef struct scratch {
    uint32_t *pv;
    size_t pvcap;
    uint8_t *pb;
    size_t pbcap;
} scratch;

/* Copies the postings of X (one part: a term of a segment or of the
** in-memory part, bytes S[0..n)) with docnos in [lo, hi) that WANT keeps
** into DST (the term made there at the first one).  Errors: MMFS_NOMEM. */
static int copy_term(mmfs__index *dst, const uint8_t *s, size_t n, const mmfs__xterm *x, uint32_t lo, uint32_t hi,
                     const uint32_t *want, scratch *w) {
    mmfs__cur c;
    mmfs__cur_init(&c, x);
    uint32_t id = UINT32_MAX;
    int rc;
    for (mmfs__cur_seek(&c, lo); c.doc < hi; mmfs__cur_next(&c)) {
        uint32_t d = (uint32_t)c.doc, dl = want[d - lo];
        if (dl == MMFS__DOC_ABSENT) continue;
        if ((rc = mmfs__ix_grow((void **)&w->pv, &w->pvcap, c.tf, sizeof *w->pv))) return rc;
        if ((rc = mmfs__ix_grow((void **)&w->pb, &w->pbcap, (size_t)c.tf * 5, 1))) return rc;
        mmfs__cur_positions(&c, w->pv);
        uint32_t pbn = 0, prev = 0;
        for (uint32_t k = 0; k < c.tf; k++) {
            pbn += (uint32_t)put_varint(w->pb + pbn, w->pv[k] - prev);
            prev = w->pv[k];
        }
        if (id == UINT32_MAX && (rc = mmfs__term_intern(dst, XXH3_64bits(s, n), s, n, &id))) return rc;
        if ((rc = mmfs__posting_add(dst, &dst->terms[id], d, c.tf, dl & ~MMFS__DOC_DELETED, w->pb, pbn)))
            return rc;
    }
    return MMFS_OK;
}

/* Lets the writer in after every TERMS_HELD terms (*HELD counts them).
** MMFS_NOTFOUND when SRC was replaced meanwhile (freed: not touched). */
static int yield(mmfs__index *const *srcp, pthread_rwlock_t *lock, const mmfs__index *src, uint32_t *held) {
    if (!lock || ++*held < TERMS_HELD) return MMFS_OK;
    *held = 0;
    pthread_rwlock_unlock(lock);
    sched_yield(); /* readers are preferred: give a waiting writer a chance */
    pthread_rwlock_rdlock(lock);
    return *srcp != src ? MMFS_NOTFOUND : MMFS_OK; /* re-indexed: tokenize instead */
}

/* Copies the terms of mapped segment SG in [lo, hi) into DST. */
static int copy_segment(mmfs__index *dst, mmfs__index *const *srcp, pthread_rwlock_t *lock,
                        const mmfs__index *src, mmfs__ixseg *sg, uint32_t lo, uint32_t hi, const uint32_t *want,
                        scratch *w, uint32_t *held) {
    int rc = MMFS_OK;
    for (uint32_t i = 0; i < sg->nterms && rc == MMFS_OK; i++) {
        if ((rc = yield(srcp, lock, src, held))) break;
        const uint8_t *s;
        size_t n;
        mmfs__xterm x;
        mmfs__part part;
        if ((rc = mmfs__ixseg_term(sg, i, &s, &n)) || (rc = mmfs__ixseg_term_part(sg, i, &x, &part))) break;
        x.npart = 1;
        x.part = &part;
        rc = copy_term(dst, s, n, &x, lo, hi, want, w);
    }
    return rc;
}

int mmfs__index_extract(mmfs__index *const *srcp, pthread_rwlock_t *lock, uint32_t lo, uint32_t hi,
                        const uint8_t *keep, mmfs__index **out) {
    *out = NULL;
    if (lock) pthread_rwlock_rdlock(lock);
    const mmfs__index *src = *srcp;
    if (!src || lo >= hi) {
        if (lock) pthread_rwlock_unlock(lock);
        return MMFS_NOTFOUND;
    }
    uint32_t *want = malloc((size_t)(hi - lo) * sizeof *want);
    mmfs__index *dst = want ? mmfs__index_new_like(src) : NULL;
    scratch w = {0};
    uint32_t held = 0;
    int rc = dst ? want_docs(src, lo, hi, keep, want) : mmfs__err(MMFS_NOMEM, "search: out of memory");
    if (rc == MMFS_OK) rc = mmfs__view_bad(src); /* a damaged table block reads as absent */
    for (uint32_t d = lo; d < hi && rc == MMFS_OK; d++) {
        uint32_t len = want[d - lo];
        if (len == MMFS__DOC_ABSENT) continue;
        uint32_t *slot = mmfs__ix_doc_slot(dst, d);
        if (!slot) {
            rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
            break;
        }
        *slot = len;
        if (len & MMFS__DOC_DELETED) {
            dst->ndeleted++;
        } else {
            dst->ndocs++;
            dst->total_len += len;
        }
    }
    /* the segments in docno order, then the in-memory part; terms in each
    ** source's order: the segment writer sorts them */
    for (uint32_t k = 0; rc == MMFS_OK && k < src->nseg; k++) {
        mmfs__ixseg *sg = src->segs[k];
        if (sg->hi > lo && sg->lo < hi) rc = copy_segment(dst, srcp, lock, src, sg, lo, hi, want, &w, &held);
    }
    for (uint32_t i = 0; rc == MMFS_OK && hi > src->seg_hi && i < src->nterms; i++) {
        if ((rc = yield(srcp, lock, src, &held))) break;
        const mmfs__term *t = &src->terms[i];
        if (!t->df || t->last < lo) continue;
        mmfs__part part;
        mmfs__term_part(src, t, src->seg_hi, &part);
        mmfs__xterm x = {.df = t->df, .min_dl = t->min_dl, .max_tf = t->max_tf, .npart = 1, .part = &part};
        rc = copy_term(dst, (const uint8_t *)tstr(src, t), t->slen, &x, lo, hi, want, &w);
    }
    if (lock) pthread_rwlock_unlock(lock);
    free(w.pv);
    free(w.pb);
    free(want);
    if (rc) {
        mmfs__index_free(dst);
        return rc;
    }
    mmfs__terms_merge(dst);
    *out = dst;
    return MMFS_OK;
}
