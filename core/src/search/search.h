/*
** search.h: what the files of core/src/search share (private to them).
**
**   tokenize.c  UTF-8 tokenizer with case folding (mmfs__tok_*)
**   index.c     the in-memory index: lifetime, documents, adding and
**               removing a document (index.h: what these three share)
**   terms.c     its term dictionary, surface map, prefix expansion
**   postings.c  its postings and positions, cursors over postings
**   query.c     the query parser (text -> mmfs__qnode tree)
**   bm25.c      evaluation: BM25 scoring, MaxScore, top-k, the public
**               mmfs__index_search
**   snippet.c   a window of a hit's text with the matched terms marked
**   stopwords.c the stopwords OR queries drop
**   segfile.c   immutable index segments on disk (ROOT/index/): writing
**               one from an in-memory index, mapping one, checking its
**               blocks the first time they are read
**   view.c      the index as a search sees it: the mapped segments, then
**               the in-memory one (terms, prefixes, document lengths)
**
** Concurrency: every function that changes the index runs under the
** owner's write lock; everything reachable from mmfs__index_search only
** reads the index and keeps its scratch memory per call.
*/
#ifndef MMFS_SEARCH_H
#define MMFS_SEARCH_H

#include "internal.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ tokenize.c
** Two tokenizers; a store records which one it uses (MANIFEST, "tokenizer"
** line), so every process and every later open tokenizes alike.
**
** Version 0 (stores made before the line existed; kept byte for byte): a
** token is a maximal run of letters and digits (ASCII, Latin-1 and Latin
** Extended letters, Greek, Cyrillic, and any code point not known to be
** punctuation or a symbol), folded to lower case.  Bytes that are not
** valid UTF-8 separate tokens.
**
** Version 1: text is normalised (NFKC) and case folded through utf8proc; a
** word is a run of letters, marks and numbers; Han, Hiragana, Katakana and
** Hangul runs give overlapping bigrams (a lone character a unigram); other
** words are stemmed with the store's Snowball stemmer (libstemmer), if any.
**
** Tokens longer than MMFS__TOK_MAX bytes are cut at a code point boundary
** (the same cut on indexing and querying). */
#define MMFS__TOK_MAX 64
#define MMFS__TOK_LANG 32 /* longest language name, with its NUL */
#define MMFS__TOK_Q 96    /* normalised code points looked ahead, at most */

/* A store's tokenizer: plain data, shared by every thread. */
typedef struct mmfs__tokcfg {
    int version;                /* 0 or 1 (MMFS__TOK_VERSION) */
    char lang[MMFS__TOK_LANG];  /* version 1: "none" or a Snowball language */
    int nostop;                 /* keep stopwords in OR queries (bench/ only) */
} mmfs__tokcfg;
#define MMFS__TOK_VERSION 1

/* A tokenizer ready to run: the config and a stemmer.  Not thread-safe
** (libstemmer keeps its work buffer in the stemmer): one per user at a
** time (the index's writer, one search). */
typedef struct mmfs__tokz {
    int version;
    struct sb_stemmer *stem; /* NULL: no stemming */
    const char *const *stop; /* the language's stopwords (stopwords.c) */
    size_t nstop;
} mmfs__tokz;

/* stopwords.c: the sorted stopword list of LANG (*n = 0: none). */
const char *const *mmfs__stopwords(const char *lang, size_t *n);
/* Is W[0..len) (folded, unstemmed) in LIST[0..n)? */
int mmfs__is_stopword(const char *const *list, size_t n, const uint8_t *w, size_t len);

/* Makes Z from CFG.  Errors: MMFS_INVALID (unknown language), MMFS_NOMEM. */
int mmfs__tokz_open(mmfs__tokz *z, const mmfs__tokcfg *cfg);
void mmfs__tokz_close(mmfs__tokz *z);

typedef struct mmfs__tok {
    const uint8_t *s;
    size_t len;
    size_t pos;        /* where the next token search starts */
    size_t start, end; /* byte range of the current token in S */
    size_t n;          /* folded (and stemmed) length in buf */
    uint8_t buf[MMFS__TOK_MAX + 4];
    /* version 1 */
    mmfs__tokz *z;     /* NULL: version 0 */
    size_t fn;         /* folded, unstemmed length in fbuf (prefixes) */
    uint8_t fbuf[MMFS__TOK_MAX + 4];
    int cjk_prev;      /* the last code point taken ended a bigram */
    int defer;         /* the caller's: leave stemming to mmfs__tok_stem */
    int pending;       /* this token's stem is not in buf yet (defer) */
    uint32_t qh, qn;   /* lookahead: normalised code points qh..qn */
    int32_t qcp[MMFS__TOK_Q];
    size_t qs[MMFS__TOK_Q], qe[MMFS__TOK_Q]; /* their source bytes */
} mmfs__tok;

/* Version 0 tokenizer over S. */
void mmfs__tok_init(mmfs__tok *t, const void *s, size_t len);

/* The tokenizer Z (version 0 when Z is NULL or Z->version is 0) over S. */
void mmfs__tok_init_z(mmfs__tok *t, mmfs__tokz *z, const void *s, size_t len);

/* Next token: 1 (t->buf[0..t->n), t->start, t->end set) or 0 at the end.
** With t->defer set (after init), a word to stem comes with t->pending
** set and only its folded form (fbuf, fn): the index stems each distinct
** word once (index.c). */
int mmfs__tok_next(mmfs__tok *t);

/* Stems the current token if t->pending (buf, n set; pending cleared). */
void mmfs__tok_stem(mmfs__tok *t);

/* The stem of folded word W[0..n) (n <= MMFS__TOK_MAX) into OUT (room for
** MMFS__TOK_MAX bytes): its length.  W itself when Z has no stemmer. */
size_t mmfs__tokz_stem(mmfs__tokz *z, const uint8_t *w, size_t n, uint8_t *out);

/* ------------------------------------------------------------ postings.c
** Postings of one term: two byte streams, cut into the same blocks.
**
** Documents and frequencies (read by every query): a block holds up to
** MMFS__BLOCK postings (more after out-of-order inserts) in docno order;
** each posting is varint(gap << 1 | (tf > 1)) then, if tf > 1,
** varint(tf - 2).  The first gap of block j counts from the block's base:
** 0 for block 0, else the key of block j-1.  A closed block's key is an
** upper bound of its docnos and below every docno of later blocks (it is
** the block's last docno when closed and stays put when that posting is
** removed).  The last block is open: appends go there; its base is the key
** of the last closed block (0 if none), and term.last is its last docno
** (its base when empty).  Closed blocks have skip entries (key, end
** offset, count, positions end), kept only for terms with more than one
** block.
**
** Positions (read only by phrases, so OR queries never touch them): the
** positions of each posting, in the postings' order: tf varints, the
** first the token's position in the document (0 = first token), each
** next one the gap from the one before.  A posting's positions are
** self-contained (no state carried from the posting before), so moving or
** dropping a posting moves or drops its bytes as they are.  A cursor
** finds the positions of its posting the way Lucene does: from the
** block's start (skip entry) it skips the tf values of the postings
** before it (each position is one varint: count bytes below 0x80).
**
** Meant to be written as immutable mapped index segments later (DESIGN.md,
** "Search"): per term, the two streams as they are, and the skip entries
** as a table of (key, end, count, positions end) u32s; a segment's reader
** needs nothing else.
*/
#define MMFS__BLOCK 128
#define MMFS__END ((uint64_t)1 << 32) /* past every docno */

typedef struct mmfs__skip {
    uint32_t key;   /* upper bound of the block's docnos (see above) */
    uint32_t end;   /* byte offset just past the block */
    uint32_t count; /* postings in the block */
    uint32_t pend;  /* byte offset just past the block's positions */
} mmfs__skip;

typedef struct mmfs__skips {
    mmfs__skip *v;
    uint32_t n, cap;
    uint32_t closed_total; /* postings in closed blocks */
} mmfs__skips;

/* One term's postings in one segment (mapped or in memory): the two
** streams and the skip table of its closed blocks.  LO: no docno of this
** part is below it (the segment's first docno). */
typedef struct mmfs__part {
    const uint8_t *post, *pos;
    const mmfs__skip *sk;
    uint32_t nsk, plen;
    uint64_t lo;
} mmfs__part;

/* A term over every segment of an index (view.c): df summed, the score
** bounds maxed/minned, and its postings in each segment holding it, in
** increasing (disjoint) docno ranges. */
typedef struct mmfs__xterm {
    uint32_t df, min_dl;
    uint16_t max_tf;
    uint32_t npart;
    const mmfs__part *part;
} mmfs__xterm;

/* A growable byte stream, inline while it fits in 8 bytes (most terms of
** a large index are seen once or twice). */
typedef struct mmfs__bytes {
    union {
        uint8_t *p;
        uint8_t inl[8];
    } b;
    uint32_t len; /* bytes used */
    uint32_t cap; /* 0: inline */
} mmfs__bytes;

typedef struct mmfs__term {
    mmfs__bytes post; /* documents and frequencies */
    mmfs__bytes pos;  /* positions */
    uint32_t df;     /* postings, deleted documents included */
    uint32_t last;   /* last docno of the open block (its base if empty) */
    uint32_t min_dl; /* smallest document length ever posted (score bound) */
    uint32_t big;    /* 1 + index into ix->skips, 0: one block only */
    uint32_t soff;   /* term bytes in ix->strs */
    uint16_t slen;
    uint16_t max_tf; /* largest tf ever posted, saturated (score bound) */
} mmfs__term;

/* Document table: docno -> length, paged (MMFS__PAGE docnos a page) so
** sparse docnos cost little. */
#define MMFS__PAGE_BITS 12
#define MMFS__PAGE ((uint32_t)1 << MMFS__PAGE_BITS)
#define MMFS__DOC_ABSENT 0xFFFFFFFFu
#define MMFS__DOC_DELETED 0x80000000u /* flag on a present length */

/* ------------------------------------------------------------ segfile.c
** An immutable index segment: one file of ROOT/index/ (docs/format.md,
** "ROOT/index/"), mapped read-only, covering docnos [lo, hi).  Its bytes
** are checked in blocks of MMFS__IXSEG_BLOCK the first time a reader needs
** them (bit set in ok[]); a block that fails makes the segment bad and
** every later read of it MMFS_CORRUPT, never a wrong answer. */
#define MMFS__IXSEG_BLOCK_BITS 16
#define MMFS__IXSEG_BLOCK ((uint64_t)1 << MMFS__IXSEG_BLOCK_BITS)
#define MMFS__IXSEG_NAME 48 /* longest file name, with its NUL */
#define MMFS__IXSEG_FORMAT 2

typedef struct mmfs__ixseg {
    char name[MMFS__IXSEG_NAME];
    const uint8_t *map;
    size_t size;
    uint32_t lo, hi;      /* docnos [lo, hi) */
    uint64_t lsn;         /* the LSN its writer said it covers */
    uint32_t nterms;
    uint64_t ndocs;       /* live documents when written */
    uint64_t total_len;   /* their tokens */
    uint64_t ndeleted;    /* documents written flagged deleted */
    uint64_t off_terms, off_strs, off_data, off_sums;
    uint32_t head_crc;    /* the header's own checksum (checkpoints list it) */
    const uint32_t *dl;   /* hi - lo lengths (MMFS__DOC_ABSENT, DELETED flag); its
                          ** blocks are checked when first read, as the rest */
    const uint32_t *sums; /* CRC32C per block of [0, off_sums) */
    uint32_t nblk;
    _Atomic uint64_t *ok; /* blocks checked so far (searches run concurrently) */
    _Atomic uint64_t *tv; /* terms whose postings were walked once (segfile.c) */
    _Atomic int bad;      /* a block failed: the segment answers nothing */
    uint64_t *del;        /* docnos deleted since it was written (index's writer) */
} mmfs__ixseg;

/* Writes every document of IX as one segment file in directory DIR (an
** fd), under a temporary name, fsynced, renamed, DIR fsynced; its name
** (from its first docno and LSN) into NAME, what a checkpoint lists of it
** into *ENT (may be NULL).  IX must hold a document.
** Errors: MMFS_INVALID (empty index), MMFS_IO, MMFS_NOMEM. */
int mmfs__ixseg_write(const mmfs__index *ix, int dir, uint64_t lsn, char name[MMFS__IXSEG_NAME],
                      mmfs__ixent *ent);
/* The file name of segment ENT into NAME. */
void mmfs__ixseg_name(const mmfs__ixent *ent, char name[MMFS__IXSEG_NAME]);

/* Maps segment NAME of directory DIR (an fd) after checking its header
** and its table of block checksums against CFG (the store's tokenizer).
** Reads nothing else: every other block, the document table's too, is
** checked when first read.  Errors: MMFS_NOTFOUND,
** MMFS_CORRUPT (damaged, truncated, another tokenizer), MMFS_INVALID
** (format newer than this library), MMFS_IO, MMFS_NOMEM. */
int mmfs__ixseg_open(int dir, const char *name, const mmfs__tokcfg *cfg, mmfs__ixseg **out);
void mmfs__ixseg_close(mmfs__ixseg *s);

/* Checks the blocks of S holding [off, off + len): MMFS_OK, or
** MMFS_CORRUPT (S is bad from now on). */
int mmfs__ixseg_check(mmfs__ixseg *s, uint64_t off, uint64_t len);

/* Puts S below the documents of IX (which takes it over): IX must hold no
** in-memory document yet and S must follow its other segments.  Errors:
** MMFS_INVALID, MMFS_NOMEM (S not taken). */
int mmfs__index_attach(mmfs__index *ix, mmfs__ixseg *s);

/* Terms of S: entry I (0 <= I < nterms, sorted by bytes).  Checked. */
int mmfs__ixseg_term(mmfs__ixseg *s, uint32_t i, const uint8_t **str, size_t *slen);
/* Its statistics and postings (part->lo = s->lo).  Checked: its blocks'
** checksums, and (once) a walk of its postings and positions that a
** cursor then never leaves (search.h's layout, docnos in [lo, hi)). */
int mmfs__ixseg_term_part(mmfs__ixseg *s, uint32_t i, mmfs__xterm *st, mmfs__part *part);

struct mmfs__index {
    mmfs__tokcfg cfg; /* the store's tokenizer (searches open their own) */

    /* mapped segments below the in-memory one: disjoint docno ranges,
    ** increasing; every docno of the in-memory segment is >= seg_hi */
    mmfs__ixseg **segs;
    uint32_t nseg;
    uint32_t seg_hi;

    mmfs__tokz wz;    /* the writer's (add), made from cfg */
    double k1, b;     /* BM25 parameters: MMFS__K1, MMFS__B (bench/ varies them) */

    /* term dictionary: open addressing, slot = (id + 1, hash >> 32) */
    uint32_t *slots; /* 2 * nslot words */
    uint32_t nslot;  /* power of two */
    mmfs__term *terms;
    uint32_t nterms, termcap;
    char *strs; /* term bytes, back to back */
    size_t strlen_, strcap;

    /* ordered view for prefix expansion: sorted[0..nsorted) in byte order,
    ** terms with id >= nsorted are the unsorted tail (merged during add) */
    uint32_t *sorted;
    uint32_t nsorted, sortedcap;

    mmfs__skips *skips;
    uint32_t nskips, skipscap;

    /* tokens seen by the writer: a folded word to stem -> the term id of
    ** its stem (so each distinct word is stemmed once), or a token that is
    ** its own term -> that term.  Open addressing; a slot holds the bytes,
    ** so a lookup reads one line. */
    struct mmfs__surf *surfs;
    uint32_t nsslot; /* power of two */
    uint32_t nsurf;

    uint32_t **pages;
    uint32_t npages;
    uint64_t ndocs;     /* live documents */
    uint64_t total_len; /* tokens in live documents */
    uint64_t ndeleted;  /* deleted documents whose postings remain */

    /* write-side scratch (add/remove only) */
    uint64_t *ids; /* one document's tokens: term id << 32 (and flags) */
    uint64_t *hashes; /* one document's tokens: hash, bytes in tokbytes */
    uint32_t *tokoff;
    uint8_t *toklen;
    size_t tokcap;
    uint8_t *tokbytes;
    size_t tokbcap;
    uint32_t *bdocs, *btfs, *bpos; /* one decoded block; bpos: positions offsets */
    size_t bcapn;
    uint8_t *bbytes;
    size_t bbytescap;
    uint8_t *pbytes; /* one posting's encoded positions */
    size_t pbytescap;
    struct mmfs__newsurf *ns; /* one document's words not seen before */
    size_t nscap;
    uint32_t *grp; /* grouping one document's tokens by term */
    size_t grpcap;
};

/* MMFS_CORRUPT when a block of a mapped segment failed its check (a
** document length read as absent because of it), else MMFS_OK. */
int mmfs__view_bad(const mmfs__index *ix);
/* Length of DOCNO: MMFS__DOC_ABSENT, or the length with maybe the
** MMFS__DOC_DELETED flag (mapped: MMFS__DOC_ABSENT when its block is
** damaged; mmfs__view_bad then says so). */
uint32_t mmfs__ixseg_doc_len(const mmfs__index *ix, uint32_t docno);
static inline uint32_t mmfs__doc_len(const mmfs__index *ix, uint32_t docno) {
    if (docno < ix->seg_hi) return mmfs__ixseg_doc_len(ix, docno);
    uint32_t pg = docno >> MMFS__PAGE_BITS;
    if (pg >= ix->npages || !ix->pages[pg]) return MMFS__DOC_ABSENT;
    return ix->pages[pg][docno & (MMFS__PAGE - 1)];
}

/* The live document at or after FROM: its docno, or MMFS__END. */
uint64_t mmfs__doc_next_live(const mmfs__index *ix, uint64_t from);

/* The term with these bytes, or NULL. */
const mmfs__term *mmfs__term_find(const mmfs__index *ix, const void *s, size_t n);

/* Terms starting with PREFIX (df > 0), in byte order: *out is malloc'd
** (free it), *n its length.  At most MAX; more is MMFS_INVALID (with a
** message naming POS, the 1-based position in the query).  Errors:
** MMFS_NOMEM, MMFS_INVALID. */
int mmfs__term_prefix(const mmfs__index *ix, const void *prefix, size_t plen, size_t max,
                      size_t pos, const mmfs__term ***out, size_t *n);

/* view.c: the terms equal to TEXT[0..tlen) (PREFIX 0: at most one) or
** starting with it, over the segments and the in-memory index, in byte
** order: *out one malloc'd block (free it), *n its length.  At most MAX
** (more is MMFS_INVALID naming POS).  Errors: MMFS_CORRUPT (a damaged
** segment), MMFS_INVALID, MMFS_NOMEM. */
int mmfs__view_terms(const mmfs__index *ix, const void *text, size_t tlen, int prefix, size_t max,
                     size_t pos, mmfs__xterm **out, size_t *n);
/* A forward cursor over one term's postings (read-only): over the parts
** of an xterm one after the other (their docno ranges are disjoint and
** increasing, so the docnos it gives still increase). */
typedef struct mmfs__cur {
    const mmfs__part *part;
    uint32_t npart, ipart;
    const uint8_t *buf;
    const mmfs__skip *sk;
    uint32_t nsk;  /* closed blocks; block nsk is the open one */
    uint32_t blen;
    uint32_t blk;  /* current block */
    uint32_t pos;  /* next byte to decode */
    uint32_t bend; /* end of the current block */
    uint64_t prev; /* docno the next gap counts from */
    uint64_t doc;  /* current docno, MMFS__END past the end */
    uint32_t tf;
    /* positions: the current posting's start is ppos after skipping
    ** pskip varints (the positions of the postings passed since) */
    const uint8_t *pbuf;
    uint32_t ppos;
    uint64_t pskip;
} mmfs__cur;

/* Positions C on the first posting of T (c->doc; MMFS__END if none).
** T stays in use while C is. */
void mmfs__cur_init(mmfs__cur *c, const mmfs__xterm *t);
/* The part of in-memory term T (lo = LO). */
void mmfs__term_part(const mmfs__index *ix, const mmfs__term *t, uint64_t lo, mmfs__part *p);
/* Next posting: returns c->doc. */
uint64_t mmfs__cur_next(mmfs__cur *c);
/* First posting with docno >= TARGET (stays if already there). */
uint64_t mmfs__cur_seek(mmfs__cur *c, uint64_t target);
/* The positions of the current posting into OUT[0..c->tf), increasing.
** C must be on a posting (not at MMFS__END). */
void mmfs__cur_positions(mmfs__cur *c, uint32_t *out);

/* ------------------------------------------------------------- query.c */
enum {
    MMFS__Q_NONE,   /* matches nothing (no searchable token, unknown term) */
    MMFS__Q_TERM,   /* one term */
    MMFS__Q_PREFIX, /* any term starting with text */
    MMFS__Q_PHRASE, /* kids (TERM/PREFIX) adjacent, in order */
    MMFS__Q_FIELD,  /* filter text:value through cb->field */
    MMFS__Q_BOOL    /* kids, each with an occur */
};

enum {
    MMFS__OCC_SHOULD, /* scores; one SHOULD must match if no MUST/FILTER */
    MMFS__OCC_MUST,   /* must match, scores */
    MMFS__OCC_FILTER, /* must match, no score (fields) */
    MMFS__OCC_NOT     /* must not match */
};

typedef struct mmfs__qnode mmfs__qnode;
struct mmfs__qnode {
    int kind;
    int occur;         /* in the parent BOOL */
    size_t pos;        /* 1-based character position in the query */
    mmfs_slice text;   /* TERM: the token; PREFIX: folded bytes; FIELD: the name */
    uint8_t *own;      /* TERM/PREFIX: text's bytes (malloc'd) */
    int stop;          /* TERM: a stopword of the store's language */
    mmfs_slice value;  /* FIELD: the value (raw bytes) */
    mmfs__qnode **kid; /* BOOL, PHRASE */
    size_t nkid;
    mmfs__qnode *next_alloc; /* every node of a query, for freeing */

    /* evaluation state (bm25.c) */
    int valid;        /* doc is this node's first match >= the last target */
    uint64_t doc;
    mmfs__xterm *terms; /* TERM: 1, PREFIX: the expansion (view.c; one free) */
    size_t nterms;
    mmfs__cur *cur;   /* one per term */
    double *w;        /* per term: idf * (k1 + 1) */
    uint32_t *pv;     /* TERM/PREFIX in a PHRASE: its positions in one doc */
    size_t npv, pvcap, pvi; /* pvi: where the phrase check is in pv */
};

typedef struct mmfs__query {
    mmfs__qnode *root;
    mmfs__qnode *nodes; /* allocation list */
    size_t nleaves;
} mmfs__query;

/* Parses QUERY (API.md).  Errors: MMFS_INVALID ("query: position N: ..."),
** MMFS_NOMEM.  On success free *q with mmfs__query_free. */
int mmfs__query_parse(mmfs_slice query, mmfs__tokz *z, mmfs__query *q);
void mmfs__query_free(mmfs__query *q);

/* Maps a byte offset of S to a 1-based character position. */
size_t mmfs__char_pos(const uint8_t *s, size_t off);

#endif /* MMFS_SEARCH_H */
