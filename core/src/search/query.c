/*
** query.c: the query parser (API.md, "Query language").
**
** Owns: the grammar and the tree it builds.  The parser never looks at the
** index; bm25.c resolves terms and prefixes later.
**
**   seq   := chain ( [OR] chain )*           juxtaposition is OR
**   chain := item ( AND item )*              AND binds tighter than OR
**   item  := [+ | - | NOT] prim
**   prim  := "(" seq ")" | '"' phrase '"' | field ":" value | word[*]
**
** A sequence becomes a BOOL node: a chain of one item is a clause of it
** (plain: SHOULD, +: MUST, - and NOT: NOT); a longer chain is a BOOL of
** MUST (or NOT) clauses added as one SHOULD clause.  So `a b AND c` is
** a OR (b AND c), and `+a b -c` is Lucene's "a required, b optional, c
** excluded".
**
** Choices (documented here and tested):
** - A field filter (`tag:work`) never scores.  It combines with AND, OR,
**   NOT and parentheses like a term, with one difference: a lone filter
**   next to other clauses without an explicit OR is required, so
**   `coffee tag:work` means coffee among work memories (juxtaposed terms
**   are OR'ed; a juxtaposed filter narrows).  Joined by an explicit OR it
**   is optional like a term: `tag:a OR tag:b`, `(tea OR coffee) AND
**   (tag:a OR tag:b)`; a document matching only a filter scores 0.
**   Field names are
**   an ASCII letter then letters, digits or `_`; the value is the rest of
**   the word (may hold more colons: `tag:speaker:Ann`) or a quoted string.
**   Values are compared by the owner, exactly (no folding).
** - A word is tokenized like document text: no token (`!!!`) gives a node
**   that matches nothing; several tokens (`coffee-maker`, `e.g.`) give a
**   phrase.  `caf*` is a prefix; `foo-ba*` a phrase ending in a prefix.
** - Operators AND OR NOT are recognized in upper case only; `and` is a
**   term.  `+`/`-` are modifiers only at the start of a word and must be
**   followed by a term without a space.
** - A query (or a group) without any positive clause (only `-x`, NOT x or
**   filters) matches every live document the exclusions and filters let
**   through, with score 0; bm25.c ranks those newest (highest docno)
**   first.
** Errors are MMFS_INVALID "query: position N: ..." where N is the 1-based
** character (code point) position of the offending token.
*/
#include "search.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_DEPTH 64
#define MAX_LEAVES 1024

typedef struct parser {
    const uint8_t *s;
    size_t len, i;
    mmfs__query *q;
    mmfs__tokz *z; /* the store's tokenizer */
    int depth;
} parser;

size_t mmfs__char_pos(const uint8_t *s, size_t off) {
    size_t n = 1;
    for (size_t i = 0; i < off; i++)
        if ((s[i] & 0xC0) != 0x80) n++;
    return n;
}

static int perr(parser *p, size_t off, const char *what) {
    return mmfs__err(MMFS_INVALID, "query: position %zu: %s", mmfs__char_pos(p->s, off), what);
}

static mmfs__qnode *node_new(parser *p, int kind, size_t off) {
    mmfs__qnode *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->pos = mmfs__char_pos(p->s, off);
    n->next_alloc = p->q->nodes;
    p->q->nodes = n;
    return n;
}

static int nomem(void) { return mmfs__err(MMFS_NOMEM, "query: out of memory"); }

/* Appends KID (with OCCUR) to N's kids. */
static int kid_add(mmfs__qnode *n, mmfs__qnode *kid, int occur) {
    if ((n->nkid & (n->nkid - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
        size_t cap = n->nkid ? n->nkid * 2 : 2;
        mmfs__qnode **k = realloc(n->kid, cap * sizeof *k);
        if (!k) return nomem();
        n->kid = k;
    }
    kid->occur = occur;
    n->kid[n->nkid++] = kid;
    return MMFS_OK;
}

static int is_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_delim(uint8_t c) { return is_space(c) || c == '(' || c == ')' || c == '"'; }

static void skip_space(parser *p) {
    while (p->i < p->len && is_space(p->s[p->i])) p->i++;
}

/* Length of the word at OFF (up to a space, parenthesis or quote). */
static size_t word_len(const parser *p, size_t off) {
    size_t e = off;
    while (e < p->len && !is_delim(p->s[e])) e++;
    return e - off;
}

/* Is the word at OFF exactly the operator OP? */
static int is_op(const parser *p, size_t off, const char *op) {
    size_t n = strlen(op);
    return word_len(p, off) == n && memcmp(p->s + off, op, n) == 0;
}

/* A TERM holds the token as indexed (stemmed); a PREFIX the folded,
** unstemmed text the user typed (a stem of a prefix means nothing). */
static int leaf(parser *p, size_t off, int kind, const mmfs__tok *tk, mmfs__qnode **out) {
    if (++p->q->nleaves > MAX_LEAVES) return perr(p, off, "too many terms");
    const uint8_t *t = tk->buf;
    size_t n = tk->n;
    if (kind == MMFS__Q_PREFIX && tk->z) {
        t = tk->fbuf;
        n = tk->fn;
    }
    mmfs__qnode *nd = node_new(p, kind, off);
    uint8_t *copy = malloc(n + 1);
    if (!nd || !copy) {
        free(copy);
        return nomem();
    }
    memcpy(copy, t, n);
    nd->own = copy;
    nd->text.ptr = copy;
    nd->text.len = n;
    if (kind == MMFS__Q_TERM && tk->z && p->z->nstop)
        nd->stop = mmfs__is_stopword(p->z->stop, p->z->nstop, tk->fbuf, tk->fn);
    *out = nd;
    return MMFS_OK;
}

/* Tokenizes S[off..off+len) into a TERM, a PHRASE of terms, or NONE.  With
** STAR the last token is a prefix (at least one token needed).  In QUOTED
** text a token directly followed by '*' is a prefix. */
static int words(parser *p, size_t off, size_t len, int star, int quoted, mmfs__qnode **out) {
    mmfs__tok tk;
    mmfs__qnode *first = NULL, *phrase = NULL;
    int rc, ntok = 0;
    mmfs__tok_init_z(&tk, p->z, p->s + off, len);
    int more = mmfs__tok_next(&tk);
    while (more) {
        size_t end = tk.end;
        int pre = quoted && end < len && p->s[off + end] == '*';
        mmfs__tok cur = tk;
        more = mmfs__tok_next(&tk);
        if (star && !more) pre = 1;
        mmfs__qnode *n = NULL;
        if ((rc = leaf(p, off + cur.start, pre ? MMFS__Q_PREFIX : MMFS__Q_TERM, &cur, &n))) return rc;
        if (++ntok == 1) {
            first = n;
        } else {
            if (!phrase) {
                if (!(phrase = node_new(p, MMFS__Q_PHRASE, off))) return nomem();
                if ((rc = kid_add(phrase, first, MMFS__OCC_MUST))) return rc;
            }
            if ((rc = kid_add(phrase, n, MMFS__OCC_MUST))) return rc;
        }
    }
    if (ntok == 0) {
        if (star) return perr(p, off, "'*' without a prefix");
        if (quoted) return perr(p, off - 1, "empty phrase");
        if (!(first = node_new(p, MMFS__Q_NONE, off))) return nomem();
    }
    *out = phrase ? phrase : first;
    return MMFS_OK;
}

static int parse_seq(parser *p, size_t open, mmfs__qnode **out);

/* A quoted string starting at the quote at p->i: *start, *len of the
** inside; p->i moves past the closing quote. */
static int quoted(parser *p, size_t *start, size_t *len) {
    size_t q = p->i, e = q + 1;
    while (e < p->len && p->s[e] != '"') e++;
    if (e >= p->len) return perr(p, q, "unclosed quote");
    *start = q + 1;
    *len = e - q - 1;
    p->i = e + 1;
    return MMFS_OK;
}

static int parse_prim(parser *p, mmfs__qnode **out, int *is_field) {
    size_t off = p->i;
    uint8_t c = p->s[off];
    int rc;
    *is_field = 0;
    if (c == '(') {
        if (p->depth >= MAX_DEPTH) return perr(p, off, "parentheses nested too deeply");
        p->i++;
        p->depth++;
        rc = parse_seq(p, off, out);
        p->depth--;
        return rc;
    }
    if (c == '"') {
        size_t s = 0, n = 0;
        if ((rc = quoted(p, &s, &n))) return rc;
        return words(p, s, n, 0, 1, out);
    }
    size_t wl = word_len(p, off);
    const uint8_t *w = p->s + off;
    /* field:value */
    if ((w[0] | 0x20) >= 'a' && (w[0] | 0x20) <= 'z') {
        size_t j = 1;
        while (j < wl && (((w[j] | 0x20) >= 'a' && (w[j] | 0x20) <= 'z') ||
                          (w[j] >= '0' && w[j] <= '9') || w[j] == '_'))
            j++;
        if (j < wl && w[j] == ':') {
            mmfs__qnode *n = node_new(p, MMFS__Q_FIELD, off);
            if (!n) return nomem();
            n->text.ptr = w;
            n->text.len = j;
            p->i = off + wl;
            if (j + 1 < wl) {
                n->value.ptr = w + j + 1;
                n->value.len = wl - j - 1;
            } else if (p->i < p->len && p->s[p->i] == '"') {
                size_t s = 0, len = 0;
                if ((rc = quoted(p, &s, &len))) return rc;
                n->value.ptr = p->s + s;
                n->value.len = len;
            }
            if (!n->value.len) {
                char msg[96];
                snprintf(msg, sizeof msg, "filter '%.*s:' without a value", (int)(j > 40 ? 40 : j),
                         (const char *)w);
                return perr(p, off, msg);
            }
            *is_field = 1;
            *out = n;
            return MMFS_OK;
        }
    }
    p->i = off + wl;
    size_t stars = 0;
    while (stars < wl && w[wl - 1 - stars] == '*') stars++;
    return words(p, off, wl - stars, stars > 0, 0, out);
}

/* Adds a finished chain (items with modifiers) to bool node B.  OR_JOINED:
** an explicit OR joins the chain to a neighbour (a lone filter is then
** optional, like a term). */
static int flush_chain(parser *p, mmfs__qnode *b, mmfs__qnode **items, int *mods, int *fields,
                       size_t n, size_t off, int or_joined) {
    int rc;
    if (n == 0) return MMFS_OK;
    if (n == 1) {
        int occ = mods[0] == '-'              ? MMFS__OCC_NOT
                  : fields[0] && (!or_joined || mods[0] == '+') ? MMFS__OCC_FILTER
                  : fields[0]                 ? MMFS__OCC_SHOULD
                  : mods[0] == '+' ? MMFS__OCC_MUST
                                   : MMFS__OCC_SHOULD;
        return kid_add(b, items[0], occ);
    }
    mmfs__qnode *c = node_new(p, MMFS__Q_BOOL, off);
    if (!c) return nomem();
    for (size_t i = 0; i < n; i++) {
        int occ = mods[i] == '-' ? MMFS__OCC_NOT : fields[i] ? MMFS__OCC_FILTER : MMFS__OCC_MUST;
        if ((rc = kid_add(c, items[i], occ))) return rc;
    }
    return kid_add(b, c, MMFS__OCC_SHOULD);
}

/* Parses a sequence up to the end (OPEN == SIZE_MAX) or to the ')' that
** closes the '(' at byte OPEN. */
static int parse_seq(parser *p, size_t open, mmfs__qnode **out) {
    enum { CHAIN_MAX = 64 };
    mmfs__qnode *items[CHAIN_MAX];
    int mods[CHAIN_MAX], fields[CHAIN_MAX];
    size_t nitems = 0, chain_off = p->i, nseen = 0;
    int pending = 0; /* 'A' (AND), 'O' (OR) */
    int chain_or = 0; /* the current chain follows an explicit OR */
    size_t pending_off = 0;
    int rc;
    mmfs__qnode *b = node_new(p, MMFS__Q_BOOL, p->i);
    if (!b) return nomem();
    for (;;) {
        skip_space(p);
        if (p->i >= p->len) {
            if (open != SIZE_MAX) return perr(p, open, "unclosed parenthesis");
            break;
        }
        size_t off = p->i;
        uint8_t c = p->s[off];
        if (c == ')') {
            if (open == SIZE_MAX) return perr(p, off, "unmatched ')'");
            p->i++;
            break;
        }
        if (is_op(p, off, "AND") || is_op(p, off, "OR")) {
            if (pending) return perr(p, pending_off, pending == 'A' ? "dangling AND" : "dangling OR");
            if (!nseen) return perr(p, off, c == 'A' ? "dangling AND" : "dangling OR");
            pending = c == 'A' ? 'A' : 'O';
            pending_off = off;
            p->i += c == 'A' ? 3 : 2;
            continue;
        }
        int mod = 0;
        if (c == '+' || c == '-') {
            mod = c;
            p->i++;
            if (p->i >= p->len || is_space(p->s[p->i]) || p->s[p->i] == ')')
                return perr(p, off, c == '-' ? "'-' without a term" : "'+' without a term");
        } else if (is_op(p, off, "NOT")) {
            mod = '-';
            p->i += 3;
            skip_space(p);
            if (p->i >= p->len || p->s[p->i] == ')' || is_op(p, p->i, "AND") ||
                is_op(p, p->i, "OR") || is_op(p, p->i, "NOT"))
                return perr(p, off, "dangling NOT");
        }
        mmfs__qnode *n = NULL;
        int is_field;
        if ((rc = parse_prim(p, &n, &is_field))) return rc;
        if (pending == 'A' && nitems == CHAIN_MAX) return perr(p, off, "too many AND terms");
        if (pending != 'A') {
            if ((rc = flush_chain(p, b, items, mods, fields, nitems, chain_off,
                                  chain_or || pending == 'O')))
                return rc;
            nitems = 0;
            chain_off = off;
            chain_or = pending == 'O';
        }
        items[nitems] = n;
        mods[nitems] = mod;
        fields[nitems] = is_field;
        nitems++;
        nseen++;
        pending = 0;
    }
    if (pending) return perr(p, pending_off, pending == 'A' ? "dangling AND" : "dangling OR");
    if ((rc = flush_chain(p, b, items, mods, fields, nitems, chain_off, chain_or))) return rc;
    if (!nseen) return open == SIZE_MAX ? perr(p, 0, "empty query") : perr(p, open, "empty parentheses");
    /* (x) and a lone AND chain need no wrapper */
    if (b->nkid == 1 && b->kid[0]->kind == MMFS__Q_BOOL &&
        (b->kid[0]->occur == MMFS__OCC_SHOULD || b->kid[0]->occur == MMFS__OCC_MUST))
        b = b->kid[0];
    *out = b;
    return MMFS_OK;
}

/* Turns the stopword terms among N's optional (SHOULD) clauses into
** clauses that match nothing, when another optional clause is not a
** stopword: in `what did she eat` only `eat` ranks, but `the who` still
** finds something.  Required terms, phrases and exclusions keep them. */
static void drop_stopwords(mmfs__qnode *n) {
    if (n->kind != MMFS__Q_BOOL) return;
    int other = 0;
    for (size_t i = 0; i < n->nkid; i++) {
        mmfs__qnode *k = n->kid[i];
        drop_stopwords(k);
        if (k->occur == MMFS__OCC_SHOULD && !(k->kind == MMFS__Q_TERM && k->stop)) other = 1;
    }
    if (!other) return;
    for (size_t i = 0; i < n->nkid; i++) {
        mmfs__qnode *k = n->kid[i];
        if (k->occur == MMFS__OCC_SHOULD && k->kind == MMFS__Q_TERM && k->stop) k->kind = MMFS__Q_NONE;
    }
}

int mmfs__query_parse(mmfs_slice query, mmfs__tokz *z, mmfs__query *q) {
    memset(q, 0, sizeof *q);
    parser p = {.s = query.ptr, .len = query.len, .q = q, .z = z};
    if (!query.len) p.s = (const uint8_t *)"";
    int rc = parse_seq(&p, SIZE_MAX, &q->root);
    if (rc) mmfs__query_free(q);
    else if (z && z->nstop) drop_stopwords(q->root);
    return rc;
}

void mmfs__query_free(mmfs__query *q) {
    mmfs__qnode *n = q->nodes;
    while (n) {
        mmfs__qnode *next = n->next_alloc;
        free(n->kid);
        free(n->terms);
        free(n->cur);
        free(n->w);
        free(n->pv);
        free(n->own);
        free(n);
        n = next;
    }
    memset(q, 0, sizeof *q);
}
