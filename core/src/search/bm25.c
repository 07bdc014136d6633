/*
** bm25.c: query evaluation and ranking (mmfs__index_search).
**
** Owns: BM25 (k1 and b from the index: MMFS__K1, MMFS__B; idf = log(1 + (N - df + 0.5)/(df + 0.5)),
** N = live documents, df = postings of the term (deleted documents count
** until compaction, clamped to N), avgdl over live documents), the top-k
** heap and the evaluation of a parsed query.
**
** Invariants:
** - Read-only on the index: every cursor, bound and buffer belongs to this
**   call (the query's nodes), so searches run concurrently under a read
**   lock.
** - Candidates are visited in increasing docno order, so every node's
**   state only moves forward (seek is monotone).
** - A document's score depends only on the query and the index, never on
**   K or on pruning: pruning decisions use upper bounds, and the score that
**   goes into the heap is always summed in query order (clauses in order,
**   a prefix's terms in byte order).
** - Ranking: score descending, ties by higher docno first.  Queries with no
**   scoring clause (only exclusions and filters) give score 0 to every
**   match, hence newest (highest docno) first.
**
** Two evaluators: MaxScore for the common flat query (OR of terms and
** prefixes, plus any exclusions and filters), a generic document-at-a-time
** walk of the tree for everything else (required clauses, phrases, nested
** groups).
**
** Phrases are answered from the index alone: the documents holding every
** word (leapfrog), then their positions (postings.c): word j of the phrase
** must be at p + j for some position p of word 0.  Positions are token
** ordinals of the same tokenizer that indexed the text, so this is what
** tokenizing the text again and comparing adjacent tokens would give.
*/
#include "search.h"

#include <math.h>
#include <stdlib.h>

#define PREFIX_MAX 16384 /* terms one prefix may expand to */

typedef struct ev {
    const mmfs__index *ix;
    const mmfs__search_cb *cb;
    double nrm_a, nrm_b; /* norm(dl) = nrm_a + nrm_b * dl */
    double n;            /* live documents */
    int rc;              /* an error met where none can be returned (NOMEM) */
} ev;

static inline int deleted(const ev *e, uint32_t d) {
    return (mmfs__doc_len(e->ix, d) & MMFS__DOC_DELETED) != 0; /* ABSENT too */
}

static inline double norm(const ev *e, uint32_t d) {
    uint32_t dl = mmfs__doc_len(e->ix, d) & ~MMFS__DOC_DELETED;
    return e->nrm_a + e->nrm_b * (double)dl;
}

static inline double tscore(double w, uint32_t tf, double nrm) {
    return w * (double)tf / ((double)tf + nrm);
}

static double idf(const ev *e, uint32_t df) {
    double d = (double)df < e->n ? (double)df : e->n;
    return log(1.0 + (e->n - d + 0.5) / (d + 0.5));
}

/* ------------------------------------------------------------ prepare */

static int nomem(void) { return mmfs__err(MMFS_NOMEM, "search: out of memory"); }

/* Resolves terms, expands prefixes, makes cursors; checks that the
** callbacks the query needs exist. */
static int prepare(ev *e, mmfs__qnode *n) {
    int rc;
    n->valid = 0;
    n->doc = 0;
    switch (n->kind) {
    case MMFS__Q_TERM:
    case MMFS__Q_PREFIX:
        rc = mmfs__view_terms(e->ix, n->text.ptr, n->text.len, n->kind == MMFS__Q_PREFIX,
                              n->kind == MMFS__Q_PREFIX ? PREFIX_MAX : 1, n->pos, &n->terms, &n->nterms);
        if (rc) return rc;
        if (!n->nterms) break;
        n->cur = malloc(n->nterms * sizeof *n->cur);
        n->w = malloc(n->nterms * sizeof *n->w);
        if (!n->cur || !n->w) return nomem();
        for (size_t i = 0; i < n->nterms; i++) {
            mmfs__cur_init(&n->cur[i], &n->terms[i]);
            n->w[i] = idf(e, n->terms[i].df) * (e->ix->k1 + 1.0);
        }
        break;
    case MMFS__Q_PHRASE:
        for (size_t i = 0; i < n->nkid; i++)
            if ((rc = prepare(e, n->kid[i]))) return rc;
        break;
    case MMFS__Q_FIELD:
        if (!e->cb || !e->cb->field)
            return mmfs__err(MMFS_INVALID, "query: position %zu: filters (%.*s:) are not supported here",
                             n->pos, (int)(n->text.len > 40 ? 40 : n->text.len),
                             (const char *)n->text.ptr);
        break;
    case MMFS__Q_BOOL:
        for (size_t i = 0; i < n->nkid; i++)
            if ((rc = prepare(e, n->kid[i]))) return rc;
        break;
    default:
        break;
    }
    return MMFS_OK;
}

/* --------------------------------------------------- generic evaluator
** adv(n, t): n's first match >= t (MMFS__END if none), cached in n->doc
** while n->valid.  match(n, d): does n match d.  score(n, d): n's score
** for d, which it matches.  Targets never decrease. */

static uint64_t adv(ev *e, mmfs__qnode *n, uint64_t target);

static int match(ev *e, mmfs__qnode *n, uint32_t d);

/* Collects into n->pv the positions in D of N (a TERM or PREFIX whose
** cursors are at or past D), increasing.  0 on NOMEM (e->rc set). */
static int positions(ev *e, mmfs__qnode *n, uint32_t d) {
    size_t total = 0, hit = 0;
    for (size_t i = 0; i < n->nterms; i++)
        if (n->cur[i].doc == d) {
            total += n->cur[i].tf;
            hit++;
        }
    if (total > n->pvcap) {
        size_t cap = n->pvcap ? n->pvcap : 16;
        while (cap < total) cap *= 2;
        uint32_t *pv = realloc(n->pv, cap * sizeof *pv);
        if (!pv) {
            e->rc = nomem();
            return 0;
        }
        n->pv = pv;
        n->pvcap = cap;
    }
    n->npv = 0;
    n->pvi = 0;
    for (size_t i = 0; i < n->nterms; i++) {
        if (n->cur[i].doc != d) continue;
        mmfs__cur_positions(&n->cur[i], n->pv + n->npv);
        n->npv += n->cur[i].tf;
    }
    if (hit > 1) { /* a prefix's terms: merge their lists (insertion sort: short) */
        for (size_t i = 1; i < n->npv; i++) {
            uint32_t x = n->pv[i];
            size_t j = i;
            while (j > 0 && n->pv[j - 1] > x) {
                n->pv[j] = n->pv[j - 1];
                j--;
            }
            n->pv[j] = x;
        }
    }
    return 1;
}

/* Does D hold the phrase N (kids adjacent, in order)?  Every kid matches
** D (its cursors are on D). */
static int phrase_at(ev *e, mmfs__qnode *n, uint32_t d) {
    if (deleted(e, d)) return 0;
    for (size_t j = 0; j < n->nkid; j++)
        if (!positions(e, n->kid[j], d)) return 0;
    const mmfs__qnode *k0 = n->kid[0];
    for (size_t a = 0; a < k0->npv; a++) {
        uint64_t p = k0->pv[a];
        size_t j;
        for (j = 1; j < n->nkid; j++) {
            mmfs__qnode *k = n->kid[j];
            uint64_t want = p + j;
            while (k->pvi < k->npv && k->pv[k->pvi] < want) k->pvi++;
            if (k->pvi == k->npv) return 0; /* no later p can match either */
            if (k->pv[k->pvi] != want) break;
        }
        if (j == n->nkid) return 1;
    }
    return 0;
}

static uint64_t adv_terms(mmfs__qnode *n, uint64_t target) {
    uint64_t best = MMFS__END;
    for (size_t i = 0; i < n->nterms; i++) {
        uint64_t x = mmfs__cur_seek(&n->cur[i], target);
        if (x < best) best = x;
    }
    n->valid = 1;
    return n->doc = best;
}

/* Leapfrogs N's kids (all of them, or only MUST ones) to their first
** common match >= T. */
static uint64_t leapfrog(ev *e, mmfs__qnode *n, int only_must, uint64_t t) {
    for (;;) {
        size_t i;
        for (i = 0; i < n->nkid; i++) {
            if (only_must && n->kid[i]->occur != MMFS__OCC_MUST) continue;
            uint64_t x = adv(e, n->kid[i], t);
            if (x == MMFS__END) return MMFS__END;
            if (x > t) {
                t = x;
                break;
            }
        }
        if (i == n->nkid) return t;
    }
}

static int bool_checks(ev *e, mmfs__qnode *n, uint32_t d) {
    for (size_t i = 0; i < n->nkid; i++) {
        mmfs__qnode *k = n->kid[i];
        if (k->occur == MMFS__OCC_FILTER && !match(e, k, d)) return 0;
        if (k->occur == MMFS__OCC_NOT && match(e, k, d)) return 0;
    }
    return 1;
}

static uint64_t adv(ev *e, mmfs__qnode *n, uint64_t target) {
    if (n->valid && n->doc >= target) return n->doc;
    uint64_t c = target;
    switch (n->kind) {
    case MMFS__Q_NONE:
        break;
    case MMFS__Q_TERM:
    case MMFS__Q_PREFIX:
        return adv_terms(n, target);
    case MMFS__Q_PHRASE:
        for (;;) {
            c = leapfrog(e, n, 0, c);
            if (c == MMFS__END || phrase_at(e, n, (uint32_t)c)) break;
            c++;
        }
        n->valid = 1;
        return n->doc = c;
    case MMFS__Q_FIELD:
        for (;; c++) {
            c = mmfs__doc_next_live(e->ix, c);
            if (c == MMFS__END || e->cb->field(e->cb->ud, (uint32_t)c, n->text, n->value)) break;
        }
        n->valid = 1;
        return n->doc = c;
    case MMFS__Q_BOOL: {
        size_t nreq = 0, nopt = 0;
        for (size_t i = 0; i < n->nkid; i++) {
            nreq += n->kid[i]->occur == MMFS__OCC_MUST;
            nopt += n->kid[i]->occur == MMFS__OCC_SHOULD;
        }
        for (;; c++) {
            if (nreq) {
                c = leapfrog(e, n, 1, c);
            } else if (nopt) {
                uint64_t best = MMFS__END;
                for (size_t i = 0; i < n->nkid; i++) {
                    if (n->kid[i]->occur != MMFS__OCC_SHOULD) continue;
                    uint64_t x = adv(e, n->kid[i], c);
                    if (x < best) best = x;
                }
                c = best;
            } else {
                c = mmfs__doc_next_live(e->ix, c);
            }
            if (c == MMFS__END) break;
            if (!deleted(e, (uint32_t)c) && bool_checks(e, n, (uint32_t)c)) break;
        }
        n->valid = 1;
        return n->doc = c;
    }
    }
    n->valid = 1;
    return n->doc = MMFS__END;
}

static int match(ev *e, mmfs__qnode *n, uint32_t d) {
    if (n->valid && n->doc >= d) return n->doc == d;
    switch (n->kind) {
    case MMFS__Q_FIELD:
        n->valid = 0;
        return e->cb->field(e->cb->ud, d, n->text, n->value);
    case MMFS__Q_PHRASE:
        n->valid = 0; /* nothing known about the next match */
        for (size_t i = 0; i < n->nkid; i++)
            if (!match(e, n->kid[i], d)) return 0;
        if (!phrase_at(e, n, d)) return 0;
        n->valid = 1;
        n->doc = d;
        return 1;
    default:
        return adv(e, n, d) == d;
    }
}

static double score(ev *e, mmfs__qnode *n, uint32_t d, double nrm) {
    double s = 0;
    switch (n->kind) {
    case MMFS__Q_TERM:
    case MMFS__Q_PREFIX:
        for (size_t i = 0; i < n->nterms; i++)
            if (n->cur[i].doc == d) s += tscore(n->w[i], n->cur[i].tf, nrm);
        break;
    case MMFS__Q_PHRASE:
        for (size_t i = 0; i < n->nkid; i++) s += score(e, n->kid[i], d, nrm);
        break;
    case MMFS__Q_BOOL:
        for (size_t i = 0; i < n->nkid; i++) {
            mmfs__qnode *k = n->kid[i];
            if (k->occur == MMFS__OCC_MUST || (k->occur == MMFS__OCC_SHOULD && match(e, k, d)))
                s += score(e, k, d, nrm);
        }
        break;
    default:
        break;
    }
    return s;
}

/* ------------------------------------------------------------ top-k */

typedef struct heap {
    mmfs__hit *h;
    size_t n, k;
} heap;

/* Is A a worse hit than B? */
static inline int worse(const mmfs__hit *a, const mmfs__hit *b) {
    return a->score < b->score || (a->score == b->score && a->docno < b->docno);
}

static void sift_down(heap *hp, size_t i) {
    mmfs__hit *h = hp->h;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < hp->n && worse(&h[l], &h[m])) m = l;
        if (l + 1 < hp->n && worse(&h[l + 1], &h[m])) m = l + 1;
        if (m == i) return;
        mmfs__hit t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_push(heap *hp, uint32_t d, double s) {
    mmfs__hit x = {d, s};
    if (hp->n < hp->k) {
        size_t i = hp->n++;
        while (i > 0 && worse(&x, &hp->h[(i - 1) / 2])) {
            hp->h[i] = hp->h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        hp->h[i] = x;
    } else if (worse(&hp->h[0], &x)) {
        hp->h[0] = x;
        sift_down(hp, 0);
    }
}

/* Would a doc scoring at most BOUND surely stay out?  (Bounds are sums in
** another order than the real score: leave room for rounding.) */
static inline int out_of_reach(const heap *hp, double bound) {
    return hp->n == hp->k && bound * (1.0 + 1e-9) + 1e-12 < hp->h[0].score;
}

static inline int accept(const ev *e, uint32_t d) {
    return !e->cb || !e->cb->accept || e->cb->accept(e->cb->ud, d);
}

static void run_generic(ev *e, mmfs__qnode *root, heap *hp) {
    for (uint64_t t = 0;;) {
        uint64_t d = adv(e, root, t);
        if (d == MMFS__END) break;
        t = d + 1;
        if (deleted(e, (uint32_t)d)) continue;
        /* the owner's filter costs more than a score: only for a doc that can enter */
        double s = score(e, root, (uint32_t)d, norm(e, (uint32_t)d));
        if (!out_of_reach(hp, s) && accept(e, (uint32_t)d)) heap_push(hp, (uint32_t)d, s);
    }
}

/* ------------------------------------------------------------ phrases
** ROOT is a BOOL whose one positive clause is a phrase (plus exclusions
** and filters).  A phrase's score needs only its words' frequencies and
** the document's length, so it is computed first and the positions are
** read only for a document that can still enter the top k. */

static mmfs__qnode *lone_phrase(mmfs__qnode *root) {
    if (root->kind != MMFS__Q_BOOL) return NULL;
    mmfs__qnode *ph = NULL;
    for (size_t i = 0; i < root->nkid; i++) {
        mmfs__qnode *k = root->kid[i];
        if (k->occur == MMFS__OCC_FILTER || k->occur == MMFS__OCC_NOT) continue;
        if (ph || k->kind != MMFS__Q_PHRASE) return NULL;
        ph = k;
    }
    return ph;
}

static void run_phrase(ev *e, mmfs__qnode *root, mmfs__qnode *ph, heap *hp) {
    for (uint64_t c = 0;; c++) {
        c = leapfrog(e, ph, 0, c);
        if (c == MMFS__END) break;
        uint32_t d = (uint32_t)c;
        if (deleted(e, d)) continue;
        double s = score(e, ph, d, norm(e, d)); /* = score(root): the one positive clause */
        if (out_of_reach(hp, s) || !bool_checks(e, root, d) || !phrase_at(e, ph, d) ||
            !accept(e, d))
            continue;
        heap_push(hp, d, s);
    }
}

/* ------------------------------------------------------------ MaxScore
** ROOT is a BOOL whose positive clauses are all SHOULD terms or prefixes.
** Terms sorted by their score bound; the lowest ones whose bounds add up
** below the heap's threshold are non-essential: a document holding only
** those cannot enter, so candidates come from the essential ones and the
** others are only probed (seek) while the document can still make it. */

typedef struct slot {
    mmfs__cur *cur;
    double w, ub;
    size_t kid; /* clause of ROOT it belongs to */
    double contrib;
} slot;

static int maxscore_ok(const mmfs__qnode *root) {
    if (root->kind != MMFS__Q_BOOL) return 0;
    size_t nopt = 0;
    for (size_t i = 0; i < root->nkid; i++) {
        const mmfs__qnode *k = root->kid[i];
        if (k->occur == MMFS__OCC_MUST) return 0;
        if (k->occur != MMFS__OCC_SHOULD) continue;
        if (k->kind != MMFS__Q_TERM && k->kind != MMFS__Q_PREFIX && k->kind != MMFS__Q_NONE)
            return 0;
        nopt++;
    }
    return nopt > 0;
}

static int run_maxscore(ev *e, mmfs__qnode *root, heap *hp) {
    size_t m = 0;
    for (size_t i = 0; i < root->nkid; i++)
        if (root->kid[i]->occur == MMFS__OCC_SHOULD) m += root->kid[i]->nterms;
    if (!m) return MMFS_OK; /* no known term: nothing matches */
    slot *sl = malloc(m * sizeof *sl);
    size_t *ord = malloc(m * sizeof *ord);
    double *cum = malloc(m * sizeof *cum);
    if (!sl || !ord || !cum) {
        free(sl);
        free(ord);
        free(cum);
        return nomem();
    }
    size_t j = 0;
    for (size_t i = 0; i < root->nkid; i++) {
        mmfs__qnode *k = root->kid[i];
        if (k->occur != MMFS__OCC_SHOULD) continue;
        for (size_t t = 0; t < k->nterms; t++, j++) {
            const mmfs__xterm *tm = &k->terms[t];
            double nrm = e->nrm_a + e->nrm_b * (double)tm->min_dl;
            sl[j].cur = &k->cur[t];
            sl[j].w = k->w[t];
            sl[j].ub = tscore(k->w[t], tm->max_tf, nrm);
            sl[j].kid = i;
            sl[j].contrib = 0;
            ord[j] = j;
        }
    }
    for (size_t a = 1; a < m; a++) { /* by bound ascending, stable */
        size_t x = ord[a], b = a;
        while (b > 0 && sl[ord[b - 1]].ub > sl[x].ub) {
            ord[b] = ord[b - 1];
            b--;
        }
        ord[b] = x;
    }
    double acc = 0;
    for (size_t r = 0; r < m; r++) cum[r] = acc += sl[ord[r]].ub;

    size_t first = 0; /* ranks below are non-essential */
    for (;;) {
        uint64_t d = MMFS__END;
        for (size_t r = first; r < m; r++)
            if (sl[ord[r]].cur->doc < d) d = sl[ord[r]].cur->doc;
        if (d == MMFS__END) break;
        uint32_t doc = (uint32_t)d;
        double nrm = norm(e, doc), partial = 0;
        for (size_t r = first; r < m; r++) {
            slot *s = &sl[ord[r]];
            if (s->cur->doc == d) partial += s->contrib = tscore(s->w, s->cur->tf, nrm);
        }
        int possible = 1;
        for (size_t r = first; r-- > 0;) {
            if (out_of_reach(hp, partial + cum[r])) {
                possible = 0;
                break;
            }
            slot *s = &sl[ord[r]];
            if (mmfs__cur_seek(s->cur, d) == d) partial += s->contrib = tscore(s->w, s->cur->tf, nrm);
        }
        if (possible && !out_of_reach(hp, partial) && !deleted(e, doc) &&
            bool_checks(e, root, doc) && accept(e, doc)) {
            /* the exact score, summed like the generic evaluator does */
            double total = 0, part = 0;
            size_t kid = m ? sl[0].kid : 0;
            for (size_t i = 0; i < m; i++) {
                if (sl[i].kid != kid) {
                    total += part;
                    part = 0;
                    kid = sl[i].kid;
                }
                if (sl[i].cur->doc == d) part += sl[i].contrib;
            }
            total += part;
            heap_push(hp, doc, total);
            if (hp->n == hp->k)
                while (first < m && out_of_reach(hp, cum[first])) first++;
        }
        for (size_t r = first; r < m; r++)
            if (sl[ord[r]].cur->doc == d) mmfs__cur_next(sl[ord[r]].cur);
    }
    free(sl);
    free(ord);
    free(cum);
    return MMFS_OK;
}

/* ------------------------------------------------------------ entry */

static int cmp_hits(const void *a, const void *b) {
    const mmfs__hit *x = a, *y = b;
    if (worse(x, y)) return 1;
    if (worse(y, x)) return -1;
    return 0;
}

int mmfs__index_search(const mmfs__index *ix, mmfs_slice query, const mmfs__search_cb *cb,
                       size_t k, mmfs__hit *out, size_t *n) {
    mmfs__query q;
    mmfs__tokz z;
    *n = 0;
    int rc = mmfs__tokz_open(&z, &ix->cfg);
    if (rc) return rc;
    if ((rc = mmfs__query_parse(query, &z, &q))) {
        mmfs__tokz_close(&z);
        return rc;
    }
    ev e = {.ix = ix, .cb = cb, .n = (double)ix->ndocs};
    double avgdl = ix->ndocs ? (double)ix->total_len / (double)ix->ndocs : 1.0;
    if (avgdl <= 0) avgdl = 1.0;
    e.nrm_a = ix->k1 * (1.0 - ix->b);
    e.nrm_b = ix->k1 * ix->b / avgdl;
    rc = prepare(&e, q.root);
    if (rc || k == 0 || ix->ndocs == 0) goto done;
    heap hp = {.h = out, .n = 0, .k = k};
    mmfs__qnode *ph;
    if (maxscore_ok(q.root)) rc = run_maxscore(&e, q.root, &hp);
    else if ((ph = lone_phrase(q.root))) run_phrase(&e, q.root, ph, &hp);
    else run_generic(&e, q.root, &hp);
    if (!rc) rc = e.rc;
    if (!rc) rc = mmfs__view_bad(ix); /* a document table block failed its check */
    if (rc) goto done;
    qsort(out, hp.n, sizeof *out, cmp_hits);
    *n = hp.n;
done:
    mmfs__query_free(&q);
    mmfs__tokz_close(&z);
    return rc;
}
