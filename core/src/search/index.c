/*
** index.c: the in-memory inverted index (search.h's mmfs__index).
**
** Owns: its lifetime and tokenizer, the document table (docno -> length,
** with a deleted flag), the live statistics (N, total length), and
** adding and removing a document: tokenizing it, resolving its tokens to
** terms (terms.c), grouping them by term and posting each (postings.c).
**
** Invariants:
** - Every docno in postings has an entry in the document table (present,
**   maybe deleted).
** - Deletion only sets the flag: postings stay (df keeps counting them)
**   until compaction rebuilds the index.  Adding a docno that is present
**   (deleted or not) first purges its old postings, a scan of the whole
**   dictionary: rare, since owners give new docnos on re-index.
** - A failed add leaves the index as it was: every token is interned
**   before any posting is touched, and the postings already added are
**   removed again (which never allocates).
** - Nothing here changes the index outside add/remove/new/free: cursors
**   and lookups are read-only.
*/
#include "index.h"

#include <stdlib.h>
#include <xxhash.h>

#define MAX_DOC_LEN 0x7FFFFFFEu

#define POS_MAX 5 /* bytes of one encoded position, at most */

int mmfs__ix_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return MMFS_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) ncap *= 2;
    void *np = realloc(*p, ncap * elem);
    if (!np) return mmfs__err(MMFS_NOMEM, "search: out of memory");
    *p = np;
    *cap = ncap;
    return MMFS_OK;
}

int mmfs__ix_grow32(void **p, uint32_t *cap, size_t need, size_t elem) {
    size_t c = *cap;
    if (need > UINT32_MAX / 2) return mmfs__err(MMFS_NOMEM, "search: index too large");
    int rc = mmfs__ix_grow(p, &c, need, elem);
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
    mmfs__view_free(ix);
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

/* ---------------------------------------------------------- documents */

uint64_t mmfs__doc_next_live(const mmfs__index *ix, uint64_t from) {
    if (from < ix->seg_hi) {
        uint64_t d = mmfs__view_next_live(ix, from);
        if (d != MMFS__END) return d;
        from = ix->seg_hi;
    }
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

uint32_t *mmfs__ix_doc_slot(mmfs__index *ix, uint32_t docno) {
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

/* Removes every posting of DOCNO and its document entry. */
static void purge(mmfs__index *ix, uint32_t docno) {
    uint32_t *slot = &ix->pages[docno >> MMFS__PAGE_BITS][docno & (MMFS__PAGE - 1)];
    for (uint32_t i = 0; i < ix->nterms; i++) mmfs__posting_remove(ix, &ix->terms[i], docno);
    if (*slot & MMFS__DOC_DELETED) {
        ix->ndeleted--;
    } else {
        ix->ndocs--;
        ix->total_len -= *slot;
    }
    *slot = MMFS__DOC_ABSENT;
}

/* A word of one document whose surface is new (index_add). */
struct mmfs__newsurf {
    uint64_t h;   /* of the surface */
    uint32_t k;   /* its token */
    uint32_t off; /* the surface's bytes in ix->tokbytes */
    uint8_t len;
};

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
    if ((rc = mmfs__ix_grow((void **)&ix->hashes, &cap, need, sizeof *ix->hashes))) return rc;
    cap = ix->tokcap;
    if ((rc = mmfs__ix_grow((void **)&ix->tokoff, &cap, need, sizeof *ix->tokoff))) return rc;
    cap = ix->tokcap;
    if ((rc = mmfs__ix_grow((void **)&ix->toklen, &cap, need, sizeof *ix->toklen))) return rc;
    cap = ix->tokcap;
    if ((rc = mmfs__ix_grow((void **)&ix->ids, &cap, need, sizeof *ix->ids))) return rc;
    ix->tokcap = cap;
    return MMFS_OK;
}

/* Appends B[0..n) to ix->tokbytes at *bytes (its offset in *off). */
static int tok_bytes(mmfs__index *ix, size_t *bytes, const uint8_t *b, size_t n, uint32_t *off) {
    if (*bytes + n > UINT32_MAX) return mmfs__err(MMFS_NOMEM, "search: document too large");
    int rc = mmfs__ix_grow((void **)&ix->tokbytes, &ix->tokbcap, *bytes + n + 1, 1);
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
** the term bytes to mmfs__term_intern (its stem for TOK_STEM), the surface recorded
** in ix->ns (*nns of them) for surf_add once its term is interned.
** Errors: MMFS_NOMEM. */
static int resolve_surfaces(mmfs__index *ix, size_t n, size_t *bytes, size_t *nns) {
    int rc;
    *nns = 0;
    for (size_t k = 0; k < n; k++) {
        if (!(ix->ids[k] & TOK_SURF)) continue;
        const uint8_t *s = ix->tokbytes + ix->tokoff[k];
        uint32_t term = mmfs__surf_find(ix, ix->hashes[k], s, ix->toklen[k]);
        if (term != UINT32_MAX) {
            PREFETCH_TERM(&ix->terms[term]);
            ix->ids[k] = TOK_TERM | term;
            continue;
        }
        if (*nns == ix->nscap &&
            (rc = mmfs__ix_grow((void **)&ix->ns, &ix->nscap, *nns + 1, sizeof *ix->ns)))
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
    if (docno < ix->seg_hi) /* segments are immutable; ids are never reused */
        return mmfs__err(MMFS_INVALID, "search: docno %u is in a mapped index segment", docno);
    if (mmfs__doc_len(ix, docno) != MMFS__DOC_ABSENT) purge(ix, docno);
    uint32_t *slot = mmfs__ix_doc_slot(ix, docno);
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
        (rc = mmfs__ix_grow((void **)&ix->pbytes, &ix->pbytescap, (size_t)n * POS_MAX, 1)))
        return rc;
    if (n > UINT32_MAX / 8) return mmfs__err(MMFS_NOMEM, "search: document too large");
    if ((rc = mmfs__ix_grow((void **)&ix->grp, &ix->grpcap, group_slots(n) + 5 * n, sizeof *ix->grp))) return rc;
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
        else if ((rc = mmfs__term_intern(ix, ix->hashes[i], s, tl, &id)))
            return rc;
        ix->ids[i] = (uint64_t)id << 32 | i;
        if (j < nns && ix->ns[j].k == i) { /* a new surface: it stems to this term */
            const struct mmfs__newsurf *f = &ix->ns[j++];
            if ((rc = mmfs__surf_add(ix, f->h, ix->tokbytes + f->off, f->len, id))) return rc;
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
        if ((rc = mmfs__posting_add(ix, &ix->terms[id], docno, tf, dl, ix->pbytes, pbn))) {
            while (g-- > 0) mmfs__posting_remove(ix, &ix->terms[gr.gterm[g]], docno); /* roll back */
            return rc;
        }
    }
    *slot = dl;
    ix->ndocs++;
    ix->total_len += dl;
    mmfs__terms_merge(ix);
    return MMFS_OK;
}

void mmfs__index_remove(mmfs__index *ix, uint32_t docno) {
    if (docno < ix->seg_hi) {
        mmfs__view_remove(ix, docno);
        return;
    }
    uint32_t len = mmfs__doc_len(ix, docno);
    if (len == MMFS__DOC_ABSENT || (len & MMFS__DOC_DELETED)) return;
    ix->pages[docno >> MMFS__PAGE_BITS][docno & (MMFS__PAGE - 1)] = len | MMFS__DOC_DELETED;
    ix->ndocs--;
    ix->total_len -= len;
    ix->ndeleted++;
}
