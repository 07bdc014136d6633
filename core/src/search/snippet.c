/*
** snippet.c: a window of a hit's text around the query's terms, with the
** matched terms marked (mmfs__index_snippet), like FTS5's snippet().
**
** Owns: which tokens count as matched and how the window is chosen.
** Invariants: the text is tokenized exactly as the index and the query
** are (the index's tokenizer), so a term is marked where the search
** matched it; the window starts and ends on token boundaries of the source
** text (or at its ends), so a valid UTF-8 text gives a valid UTF-8
** snippet; it holds at most BYTES bytes of text (marks not counted),
** unless one token alone is longer.
**
** Matched: a token equal to a term of the query, or starting with a
** prefix of it, outside every NOT clause (phrase words count one by one).
** Window: among windows starting at a matched token, the one covering the
** most distinct terms, then the most matches, then the earliest; centred
** on its matches as far as the text allows.  Overlapping matched tokens
** (CJK bigrams) share one pair of marks.
*/
#include "search.h"

#include <stdlib.h>

typedef struct span {
    size_t s, e; /* source bytes */
    int term;    /* index of the query leaf it matched */
} span;

/* The positive leaves (TERM/PREFIX outside NOT) of N, into *v. */
static int leaves(const mmfs__qnode *n, const mmfs__qnode ***v, size_t *nv, size_t *cap) {
    if (n->occur == MMFS__OCC_NOT) return MMFS_OK;
    if (n->kind == MMFS__Q_TERM || n->kind == MMFS__Q_PREFIX) {
        if (*nv == *cap) {
            size_t c = *cap ? *cap * 2 : 8;
            const mmfs__qnode **p = realloc(*v, c * sizeof *p);
            if (!p) return mmfs__err(MMFS_NOMEM, "snippet: out of memory");
            *v = p;
            *cap = c;
        }
        (*v)[(*nv)++] = n;
        return MMFS_OK;
    }
    for (size_t i = 0; i < n->nkid; i++) {
        int rc = leaves(n->kid[i], v, nv, cap);
        if (rc) return rc;
    }
    return MMFS_OK;
}

/* Which leaf token T matches, or -1. */
static int matched(const mmfs__tok *t, const mmfs__qnode *const *lv, size_t nl) {
    for (size_t i = 0; i < nl; i++) {
        const mmfs__qnode *q = lv[i];
        if (q->kind == MMFS__Q_TERM ? t->n != q->text.len : t->n < q->text.len) continue;
        if (memcmp(t->buf, q->text.ptr, q->text.len) == 0) return (int)i;
    }
    return -1;
}

/* Appends S[0..n) to the growing buffer B. */
typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static int put(buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = (b->n + n + 1) * 2;
        uint8_t *p = realloc(b->p, c);
        if (!p) return mmfs__err(MMFS_NOMEM, "snippet: out of memory");
        b->p = p;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return MMFS_OK;
}

int mmfs__index_snippet(const mmfs__index *ix, mmfs_slice query, mmfs_slice text, mmfs_slice open,
                        mmfs_slice close, size_t bytes, uint8_t **out, size_t *outlen) {
    *out = NULL;
    *outlen = 0;
    mmfs__tokz z;
    mmfs__query q;
    int rc = mmfs__tokz_open(&z, &ix->cfg);
    if (rc) return rc;
    if ((rc = mmfs__query_parse(query, &z, &q))) {
        mmfs__tokz_close(&z);
        return rc;
    }
    const mmfs__qnode **lv = NULL;
    size_t nl = 0, lcap = 0, ntok = 0, nsp = 0, spcap = 0;
    span *sp = NULL;
    size_t *tb = NULL; /* token boundaries: start, end pairs */
    size_t tbcap = 0;
    buf b = {0};
    if ((rc = leaves(q.root, &lv, &nl, &lcap))) goto done;
    const uint8_t *s = text.ptr;
    mmfs__tok tk;
    mmfs__tok_init_z(&tk, &z, s, text.len);
    while (mmfs__tok_next(&tk)) {
        if (2 * ntok + 2 > tbcap) {
            size_t c = tbcap ? tbcap * 2 : 64;
            size_t *p = realloc(tb, c * sizeof *p);
            if (!p) goto nomem;
            tb = p;
            tbcap = c;
        }
        tb[2 * ntok] = tk.start;
        tb[2 * ntok + 1] = tk.end;
        ntok++;
        int m = matched(&tk, lv, nl);
        if (m < 0) continue;
        if (nsp == spcap) {
            size_t c = spcap ? spcap * 2 : 16;
            span *p = realloc(sp, c * sizeof *p);
            if (!p) goto nomem;
            sp = p;
            spcap = c;
        }
        sp[nsp++] = (span){tk.start, tk.end, m};
    }

    /* the window [ws, we) */
    size_t ws = 0, we = text.len;
    if (nsp) {
        size_t best = 0, bd = 0, bc = 0;
        unsigned char *seen = calloc(nl ? nl : 1, 1);
        if (!seen) goto nomem;
        for (size_t i = 0; i < nsp; i++) {
            size_t d = 0, c = 0;
            memset(seen, 0, nl);
            for (size_t j = i; j < nsp && sp[j].e - sp[i].s <= bytes; j++) {
                c++;
                if (!seen[sp[j].term]) {
                    seen[sp[j].term] = 1;
                    d++;
                }
            }
            if (d > bd || (d == bd && c > bc)) {
                best = i;
                bd = d;
                bc = c;
            }
        }
        free(seen);
        size_t last = sp[best].e;
        for (size_t j = best; j < nsp && sp[j].e - sp[best].s <= bytes; j++) last = sp[j].e;
        size_t used = last - sp[best].s;
        size_t slack = bytes > used ? bytes - used : 0;
        ws = sp[best].s > slack / 2 ? sp[best].s - slack / 2 : 0;
        we = ws + (used > bytes ? used : bytes);
        if (we > text.len) {
            we = text.len;
            size_t need = used > bytes ? used : bytes;
            ws = we > need ? we - need : 0;
            if (ws > sp[best].s) ws = sp[best].s;
        }
    } else if (we > bytes) {
        we = bytes;
    }
    /* snap to token boundaries: drop a word cut at either end */
    if (ws > 0 || we < text.len) {
        size_t nws = we, nwe = ws;
        for (size_t i = 0; i < ntok; i++) {
            if (tb[2 * i] >= ws && tb[2 * i] < nws) nws = tb[2 * i];
            if (tb[2 * i + 1] <= we && tb[2 * i + 1] > nwe && tb[2 * i] >= ws) nwe = tb[2 * i + 1];
        }
        if (ws == 0) nws = 0;
        if (we == text.len) nwe = text.len;
        if (nws < nwe) {
            ws = nws;
            we = nwe;
        } else { /* no whole token fits: cut at code point boundaries */
            while (ws > 0 && ws < text.len && (s[ws] & 0xC0) == 0x80) ws--;
            while (we < text.len && we > ws && (s[we] & 0xC0) == 0x80) we--;
        }
    }

    /* copy, marking matched spans (merged where they overlap) */
    if ((rc = put(&b, "", 0))) goto done;
    size_t at = ws;
    for (size_t i = 0; i < nsp; i++) {
        size_t ms = sp[i].s, me = sp[i].e;
        while (i + 1 < nsp && sp[i + 1].s < me) {
            i++;
            if (sp[i].e > me) me = sp[i].e;
        }
        if (ms < ws || me > we) continue;
        if ((rc = put(&b, s + at, ms - at)) || (rc = put(&b, open.ptr, open.len)) ||
            (rc = put(&b, s + ms, me - ms)) || (rc = put(&b, close.ptr, close.len)))
            goto done;
        at = me;
    }
    if ((rc = put(&b, s + at, we - at))) goto done;
    *out = b.p;
    *outlen = b.n;
    b.p = NULL;
    goto done;
nomem:
    rc = mmfs__err(MMFS_NOMEM, "snippet: out of memory");
done:
    free(b.p);
    free(lv);
    free(sp);
    free(tb);
    mmfs__query_free(&q);
    mmfs__tokz_close(&z);
    return rc;
}
