/*
** postings.c: the postings of one term of the in-memory index: two byte
** streams (documents and frequencies; positions) cut into the same
** blocks, with skip entries for closed blocks (layout in search.h).
**
** Owns: encoding and decoding blocks, adding and removing one posting
** (with its positions), and the read-only cursors over postings.
**
** Invariants:
** - A term's postings are in strictly increasing docno order; block keys
**   increase.
** - Removing a posting never allocates (the write-side scratch is always
**   at least as large as the largest block; its positions are cut out in
**   place), so a failed add can be rolled back completely.
** - A term's positions stream holds exactly the positions of its
**   postings, in their order; skip entry j's pend is where block j's
**   positions end.
** - Cursors only read.
*/
#include "index.h"

#include <stdlib.h>

static inline size_t put_posting(uint8_t *p, uint32_t gap, uint32_t tf) {
    size_t n = put_varint(p, ((uint64_t)gap << 1) | (tf > 1));
    if (tf > 1) n += put_varint(p + n, tf - 2);
    return n;
}

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

/* ----------------------------------------------------------- postings */

/* Makes sure T has a skip table with room for one more entry. */
static int reserve_skip(mmfs__index *ix, mmfs__term *t) {
    if (!t->big) {
        int rc = mmfs__ix_grow32((void **)&ix->skips, &ix->skipscap, (size_t)ix->nskips + 1, sizeof *ix->skips);
        if (rc) return rc;
        memset(&ix->skips[ix->nskips], 0, sizeof *ix->skips);
        t->big = ++ix->nskips;
    }
    mmfs__skips *s = &ix->skips[t->big - 1];
    return mmfs__ix_grow32((void **)&s->v, &s->cap, (size_t)s->n + 1, sizeof *s->v);
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
void mmfs__posting_remove(mmfs__index *ix, mmfs__term *t, uint32_t docno) {
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
        if ((rc = mmfs__ix_grow((void **)&ix->bdocs, &cap, count, sizeof *ix->bdocs))) return rc;
        cap = ix->bcapn;
        if ((rc = mmfs__ix_grow((void **)&ix->btfs, &cap, count, sizeof *ix->btfs))) return rc;
        size_t pcap = ix->bcapn + 1;
        if ((rc = mmfs__ix_grow((void **)&ix->bpos, &pcap, cap + 1, sizeof *ix->bpos))) return rc;
        ix->bcapn = cap;
    }
    return mmfs__ix_grow((void **)&ix->bbytes, &ix->bbytescap, ix->bcapn * POSTING_MAX, 1);
}

/* Adds (DOCNO, TF) to T's postings, with its positions encoded in
** PB[0..pbn).  Errors: MMFS_NOMEM (T unchanged). */
int mmfs__posting_add(mmfs__index *ix, mmfs__term *t, uint32_t docno, uint32_t tf, uint32_t dl,
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

/* ------------------------------------------------------------ cursors */

void mmfs__term_part(const mmfs__index *ix, const mmfs__term *t, uint64_t lo, mmfs__part *p) {
    const mmfs__skips *s = tskips(ix, t);
    p->post = bptr_c(&t->post);
    p->pos = bptr_c(&t->pos);
    p->sk = s ? s->v : NULL;
    p->nsk = s ? s->n : 0;
    p->plen = t->post.len;
    p->lo = lo;
}

/* Puts C before the first posting of part I (the next cur_next reads it). */
static void load_part(mmfs__cur *c, uint32_t i) {
    const mmfs__part *p = &c->part[i];
    c->ipart = i;
    c->buf = p->post;
    c->sk = p->sk;
    c->nsk = p->nsk;
    c->blen = p->plen;
    c->blk = 0;
    c->pos = 0;
    c->bend = c->nsk ? c->sk[0].end : c->blen;
    c->prev = 0; /* parts hold docnos as they are: block 0 counts from 0 */
    c->doc = 0;
    c->tf = 0;
    c->pbuf = p->pos;
    c->ppos = 0;
    c->pskip = 0;
}

void mmfs__cur_init(mmfs__cur *c, const mmfs__xterm *t) {
    c->part = t->part;
    c->npart = t->npart;
    if (!t->npart) {
        c->doc = MMFS__END;
        c->tf = 0;
        c->nsk = c->blk = c->pos = c->bend = 0;
        c->pskip = 0;
        return;
    }
    load_part(c, 0);
    mmfs__cur_next(c);
}

uint64_t mmfs__cur_next(mmfs__cur *c) {
    c->pskip += c->tf; /* the positions of the posting left behind */
    while (c->pos >= c->bend) {
        if (c->blk >= c->nsk) {
            if (c->ipart + 1 < c->npart) {
                load_part(c, c->ipart + 1);
                continue;
            }
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
    if (c->ipart + 1 < c->npart && c->part[c->ipart + 1].lo <= target) {
        uint32_t j = c->ipart + 1; /* the last part that may hold TARGET */
        while (j + 1 < c->npart && c->part[j + 1].lo <= target) j++;
        load_part(c, j);
    }
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
