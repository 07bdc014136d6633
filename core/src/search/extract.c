/*
** extract.c: a docno range of an index's in-memory part, copied into a new
** in-memory index without tokenizing again (a checkpoint's new segment).
**
** Owns: mmfs__index_extract.
**
** Invariants:
** - The copy holds what mmfs__index_add of the same texts (then
**   mmfs__index_remove of the deleted ones) would: each kept posting is
**   added with mmfs__posting_add in increasing docno order, with its tf,
**   its positions (re-encoded: first, then gaps) and its document's length,
**   so blocks, skips, df, max_tf and min_dl come out as index_add makes
**   them.  A deleted document keeps its postings, as in the source.
** - The source is only read (its cursors and document table), under its
**   owner's read lock (LOCK), let go between terms every TERMS_HELD terms
**   so its writer (the index drain) is not held up for the whole copy.
**   Meanwhile the source may only gain documents at or above HI (new
**   terms, postings appended, its arrays moved: nothing is kept across)
**   and deletes (a flag; the copy's come from the document table read
**   first, or from KEEP).  A re-index replaces (and frees) the source:
**   then the copy stops (MMFS_NOTFOUND), touching nothing of it.
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

/* Copies the postings of source term T with docnos in [lo, hi) that WANT
** keeps into DST (the term made there at the first one).  PV and PB are
** scratch for one posting's positions, grown as needed.  Errors:
** MMFS_NOMEM. */
static int copy_term(mmfs__index *dst, const mmfs__index *src, const mmfs__term *t, uint32_t lo, uint32_t hi,
                     const uint32_t *want, uint32_t **pv, size_t *pvcap, uint8_t **pb, size_t *pbcap) {
    mmfs__part part;
    mmfs__term_part(src, t, src->seg_hi, &part);
    mmfs__xterm xt = {.df = t->df, .min_dl = t->min_dl, .max_tf = t->max_tf, .npart = 1, .part = &part};
    mmfs__cur c;
    mmfs__cur_init(&c, &xt);
    uint32_t id = UINT32_MAX;
    int rc;
    for (mmfs__cur_seek(&c, lo); c.doc < hi; mmfs__cur_next(&c)) {
        uint32_t d = (uint32_t)c.doc, dl = want[d - lo];
        if (dl == MMFS__DOC_ABSENT) continue;
        if ((rc = mmfs__ix_grow((void **)pv, pvcap, c.tf, sizeof **pv))) return rc;
        if ((rc = mmfs__ix_grow((void **)pb, pbcap, (size_t)c.tf * 5, 1))) return rc;
        mmfs__cur_positions(&c, *pv);
        uint32_t pbn = 0, prev = 0;
        for (uint32_t k = 0; k < c.tf; k++) {
            pbn += (uint32_t)put_varint(*pb + pbn, (*pv)[k] - prev);
            prev = (*pv)[k];
        }
        if (id == UINT32_MAX) {
            const uint8_t *s = (const uint8_t *)tstr(src, t);
            if ((rc = mmfs__term_intern(dst, XXH3_64bits(s, t->slen), s, t->slen, &id))) return rc;
        }
        if ((rc = mmfs__posting_add(dst, &dst->terms[id], d, c.tf, dl & ~MMFS__DOC_DELETED, *pb, pbn)))
            return rc;
    }
    return MMFS_OK;
}

int mmfs__index_extract(mmfs__index *const *srcp, pthread_rwlock_t *lock, uint32_t lo, uint32_t hi,
                        const uint8_t *keep, mmfs__index **out) {
    *out = NULL;
    if (lock) pthread_rwlock_rdlock(lock);
    const mmfs__index *src = *srcp;
    if (!src || lo < src->seg_hi || lo >= hi) { /* a mapped segment's, or nothing */
        if (lock) pthread_rwlock_unlock(lock);
        return MMFS_NOTFOUND;
    }
    uint32_t *want = malloc((size_t)(hi - lo) * sizeof *want);
    mmfs__index *dst = want ? mmfs__index_new_like(src) : NULL;
    uint32_t *pv = NULL;
    uint8_t *pb = NULL;
    size_t pvcap = 0, pbcap = 0;
    int rc = dst ? want_docs(src, lo, hi, keep, want) : mmfs__err(MMFS_NOMEM, "search: out of memory");
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
    /* terms in the source's id order: the segment writer sorts them */
    for (uint32_t i = 0; i < src->nterms && rc == MMFS_OK; i++) {
        if (lock && i % TERMS_HELD == TERMS_HELD - 1) { /* let the writer in */
            pthread_rwlock_unlock(lock);
            sched_yield(); /* readers are preferred: give a waiting writer a chance */
            pthread_rwlock_rdlock(lock);
            if (*srcp != src) { /* re-indexed meanwhile (src freed): tokenize instead */
                rc = MMFS_NOTFOUND;
                break;
            }
        }
        const mmfs__term *t = &src->terms[i];
        if (t->df && t->last >= lo)
            rc = copy_term(dst, src, t, lo, hi, want, &pv, &pvcap, &pb, &pbcap);
    }
    if (lock) pthread_rwlock_unlock(lock);
    free(pv);
    free(pb);
    free(want);
    if (rc) {
        mmfs__index_free(dst);
        return rc;
    }
    mmfs__terms_merge(dst);
    *out = dst;
    return MMFS_OK;
}
