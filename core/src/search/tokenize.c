/*
** tokenize.c: the UTF-8 tokenizers shared by indexing and querying.
**
** Owns: what a token is and how it is folded, in both versions (search.h).
** Invariants: the same bytes always give the same tokens under the same
** tokenizer (indexing and querying must agree; changing anything here
** changes what a store's index means: a change is a new version, never an
** edit of an old one); the tokenizer reads only its input and its own
** state, plus a stemmer it alone uses (safe in concurrent searches); a
** token is at most MMFS__TOK_MAX bytes and always valid UTF-8.
**
** Version 0 folding is simple case folding for ASCII, Latin-1, Latin Extended-A,
** Latin Extended Additional, Greek and Cyrillic (final sigma folds to
** sigma); other scripts pass through unchanged.  No normalization (NFC and
** NFD spellings of the same letter are different tokens) and no word
** segmentation for scripts written without spaces (a CJK run is one
** token): utf8proc would bring both, at the cost of a dependency.
*/
#include "search.h"

#include <libstemmer.h>
#include <utf8proc.h>

/* ASCII: the folded byte of a word character, 0 for a separator. */
static const uint8_t ascii_fold[128] = {
    ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4',
    ['5'] = '5', ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9',
    ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e',
    ['F'] = 'f', ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j',
    ['K'] = 'k', ['L'] = 'l', ['M'] = 'm', ['N'] = 'n', ['O'] = 'o',
    ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r', ['S'] = 's', ['T'] = 't',
    ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y',
    ['Z'] = 'z', ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd',
    ['e'] = 'e', ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i',
    ['j'] = 'j', ['k'] = 'k', ['l'] = 'l', ['m'] = 'm', ['n'] = 'n',
    ['o'] = 'o', ['p'] = 'p', ['q'] = 'q', ['r'] = 'r', ['s'] = 's',
    ['t'] = 't', ['u'] = 'u', ['v'] = 'v', ['w'] = 'w', ['x'] = 'x',
    ['y'] = 'y', ['z'] = 'z',
};

/* Decodes one code point at S[0..avail): its length in *n, or returns -1
** (and *n = 1) for a byte that does not start a valid, shortest-form
** sequence. */
static int32_t utf8_decode(const uint8_t *s, size_t avail, size_t *n) {
    uint8_t c = s[0];
    *n = 1;
    if (c < 0x80) return c;
    if (c < 0xC2) return -1;
    if (c < 0xE0) {
        if (avail < 2 || (s[1] & 0xC0) != 0x80) return -1;
        *n = 2;
        return ((int32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
    }
    if (c < 0xF0) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return -1;
        int32_t cp = ((int32_t)(c & 0x0F) << 12) | ((int32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
        *n = 3;
        return cp;
    }
    if (c < 0xF5) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return -1;
        int32_t cp = ((int32_t)(c & 0x07) << 18) | ((int32_t)(s[1] & 0x3F) << 12) |
                     ((int32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (cp < 0x10000 || cp > 0x10FFFF) return -1;
        *n = 4;
        return cp;
    }
    return -1;
}

static size_t utf8_encode(int32_t cp, uint8_t *out) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Is non-ASCII code point CP part of a word?  Punctuation, symbols,
** spaces and emoji are not; letters, digits, combining marks and unknown
** scripts are. */
static int is_word(int32_t cp) {
    if (cp < 0xC0) return cp == 0xAA || cp == 0xB5 || cp == 0xBA;
    if (cp == 0xD7 || cp == 0xF7) return 0;
    if (cp < 0x370) return 1;
    if (cp == 0x37E || cp == 0x387) return 0; /* Greek question mark, ano teleia */
    if (cp < 0x2000) return 1;
    if (cp < 0x2070) return 0; /* general punctuation, spaces */
    if (cp >= 0x20A0 && cp < 0x20D0) return 0; /* currency */
    if (cp >= 0x2100 && cp < 0x2C00) return 0; /* letterlike .. misc symbols */
    if (cp >= 0x2E00 && cp < 0x2E80) return 0; /* supplemental punctuation */
    if (cp >= 0x3000 && cp < 0x3040) return cp == 0x3005 || cp == 0x3006; /* CJK punct */
    if (cp >= 0xFE10 && cp < 0xFE70) return 0; /* vertical, small forms */
    if (cp == 0xFEFF) return 0;                /* BOM */
    if (cp >= 0xFF00 && cp < 0xFF10) return 0; /* fullwidth punctuation */
    if (cp >= 0xFF1A && cp < 0xFF21) return 0;
    if (cp >= 0xFF3B && cp < 0xFF41) return 0;
    if (cp >= 0xFF5B && cp < 0xFF66) return 0;
    if (cp >= 0x1F000 && cp < 0x1FB00) return 0; /* emoji, pictographs */
    return 1;
}

/* Simple case folding of a non-ASCII word code point. */
static int32_t fold(int32_t cp) {
    if (cp < 0x100) return (cp >= 0xC0 && cp <= 0xDE) ? cp + 0x20 : cp;
    if (cp < 0x180) {
        if (cp == 0x130) return 'i';
        if (cp == 0x131 || cp == 0x138 || cp == 0x149) return cp;
        if (cp == 0x178) return 0xFF;
        if (cp == 0x17F) return 's';
        if (cp < 0x138 || (cp >= 0x14A && cp < 0x178)) return cp | 1; /* even upper */
        return (cp & 1) ? cp + 1 : cp; /* 0x139..0x148, 0x179..0x17E: odd upper */
    }
    if (cp < 0x370) return cp;
    if (cp < 0x400) {
        if (cp == 0x386) return 0x3AC;
        if (cp >= 0x388 && cp <= 0x38A) return cp + 0x25;
        if (cp == 0x38C) return 0x3CC;
        if (cp == 0x38E || cp == 0x38F) return cp + 0x3F;
        if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 0x20;
        if (cp == 0x3C2) return 0x3C3;
        return cp;
    }
    if (cp < 0x530) {
        if (cp < 0x410) return cp + 0x50;
        if (cp < 0x430) return cp + 0x20;
        if (cp < 0x460) return cp;
        if (cp < 0x482 || (cp >= 0x48A && cp < 0x4C0) || cp >= 0x4D0) return cp | 1;
        if (cp == 0x4C0) return 0x4CF;
        if (cp >= 0x4C1 && cp <= 0x4CE) return (cp & 1) ? cp + 1 : cp;
        return cp;
    }
    if (cp >= 0x1E00 && cp < 0x1F00) {
        if (cp == 0x1E9E) return 0xDF;
        if (cp < 0x1E96 || cp >= 0x1EA0) return cp | 1;
        return cp;
    }
    return cp;
}

void mmfs__tok_init(mmfs__tok *t, const void *s, size_t len) {
    t->s = s;
    t->len = len;
    t->pos = 0;
    t->start = t->end = 0;
    t->n = 0;
    t->z = NULL;
    t->defer = 0;
    t->pending = 0;
}

static int tok_next_v0(mmfs__tok *t) {
    const uint8_t *s = t->s;
    size_t len = t->len, i = t->pos, n = 0;
    int in = 0, full = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            uint8_t f = ascii_fold[c];
            if (!f) {
                if (in) break;
                i++;
                continue;
            }
            if (!in) {
                in = 1;
                t->start = i;
            }
            if (!full) {
                if (n < MMFS__TOK_MAX) t->buf[n++] = f;
                else full = 1;
            }
            i++;
            continue;
        }
        size_t w;
        int32_t cp = utf8_decode(s + i, len - i, &w);
        if (cp < 0 || !is_word(cp)) {
            if (in) break;
            i += w;
            continue;
        }
        if (!in) {
            in = 1;
            t->start = i;
        }
        if (!full) {
            uint8_t tmp[4];
            size_t m = utf8_encode(fold(cp), tmp);
            if (n + m <= MMFS__TOK_MAX) {
                memcpy(t->buf + n, tmp, m);
                n += m;
            } else {
                full = 1; /* cut at a code point boundary, for good */
            }
        }
        i += w;
    }
    t->pos = i;
    if (!in) return 0;
    t->end = i;
    t->n = n;
    return 1;
}


/* ------------------------------------------------------------ version 1 */

int mmfs__tok_lang_ok(const char *name) {
    if (!strcmp(name, "none")) return 1;
    if (strlen(name) >= MMFS__TOK_LANG) return 0;
    for (const char **l = sb_stemmer_list(); *l; l++)
        if (!strcmp(*l, name)) return 1;
    return 0;
}

int mmfs__tokz_open(mmfs__tokz *z, const mmfs__tokcfg *cfg) {
    z->version = cfg->version;
    z->stem = NULL;
    z->stop = NULL;
    z->nstop = 0;
    if (cfg->version == 0 || !strcmp(cfg->lang, "none")) return MMFS_OK;
    if (!cfg->nostop) z->stop = mmfs__stopwords(cfg->lang, &z->nstop);
    if (!mmfs__tok_lang_ok(cfg->lang))
        return mmfs__err(MMFS_INVALID, "language '%.40s': not a Snowball language", cfg->lang);
    if (!(z->stem = sb_stemmer_new(cfg->lang, "UTF_8")))
        return mmfs__err(MMFS_NOMEM, "search: out of memory (stemmer)");
    return MMFS_OK;
}

void mmfs__tokz_close(mmfs__tokz *z) {
    if (z->stem) sb_stemmer_delete(z->stem);
    z->stem = NULL;
}

void mmfs__tok_init_z(mmfs__tok *t, mmfs__tokz *z, const void *s, size_t len) {
    mmfs__tok_init(t, s, len);
    if (!z || z->version == 0) return;
    t->z = z;
    t->fn = 0;
    t->cjk_prev = 0;
    t->qh = t->qn = 0;
}

/* Han, Hiragana, Katakana, Hangul: written without spaces, so bigrams. */
static int is_cjk(int32_t cp) {
    return (cp >= 0x3040 && cp <= 0x30FF) ||   /* Hiragana, Katakana */
           (cp >= 0x31F0 && cp <= 0x31FF) ||   /* Katakana extensions */
           (cp >= 0x3400 && cp <= 0x4DBF) ||   /* Han extension A */
           (cp >= 0x4E00 && cp <= 0x9FFF) ||   /* Han */
           (cp >= 0xF900 && cp <= 0xFAFF) ||   /* Han compatibility */
           (cp >= 0x20000 && cp <= 0x3FFFF) || /* Han extensions B.. */
           (cp >= 0x1100 && cp <= 0x11FF) ||   /* Hangul jamo */
           (cp >= 0x3130 && cp <= 0x318F) ||   /* Hangul compatibility jamo */
           (cp >= 0xAC00 && cp <= 0xD7AF) ||   /* Hangul syllables */
           cp == 0x3005 || cp == 0x3006;       /* iteration mark, closing mark */
}

/* Letters, marks and numbers make words. */
static int is_word1(int32_t cp) {
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO;
}

/* Does CP continue the chunk before it (normalisation only looks inside a
** chunk)?  Combining marks, Hangul medial and final jamo. */
static int continues(int32_t cp) {
    if (cp < 0x300) return 0;
    if ((cp >= 0x1160 && cp <= 0x11FF) || (cp >= 0xD7B0 && cp <= 0xD7FF)) return 1;
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME;
}

#define CHUNK_BYTES 64 /* a base and its marks, at most (longer: cut) */
#define CHUNK_CPS 48   /* normalised code points of one chunk, at most */

/* Appends the normalised code points of the next chunk at t->pos to the
** lookahead (which has room for CHUNK_CPS more).  Returns 0 at the end of
** the text.  A chunk is one code point and what continues it; it is
** normalised (NFKC, case folded, default ignorables dropped) alone, so
** every normalised code point knows the source bytes it came from.
** Invalid UTF-8 and a chunk that normalises to more than CHUNK_CPS code
** points add nothing (they separate words). */
static int chunk(mmfs__tok *t) {
    const uint8_t *s = t->s;
    size_t len = t->len, i = t->pos;
    if (i >= len) return 0;
    uint8_t c = s[i];
    if (c < 0x80 && (i + 1 == len || s[i + 1] < 0x80)) { /* ASCII, nothing to compose */
        t->pos = i + 1;
        uint8_t f = ascii_fold[c];
        if (f) {
            t->qcp[t->qn] = f;
            t->qs[t->qn] = i;
            t->qe[t->qn++] = i + 1;
        } else {
            t->qcp[t->qn] = ' ';
            t->qs[t->qn] = i;
            t->qe[t->qn++] = i + 1;
        }
        return 1;
    }
    size_t w;
    int32_t cp = c < 0x80 ? c : utf8_decode(s + i, len - i, &w);
    if (c < 0x80) w = 1;
    if (cp < 0) {
        t->pos = i + w;
        t->qcp[t->qn] = ' ';
        t->qs[t->qn] = i;
        t->qe[t->qn++] = i + w;
        return 1;
    }
    size_t e = i + w;
    while (e < len && e - i < CHUNK_BYTES) {
        size_t w2;
        int32_t nx = utf8_decode(s + e, len - e, &w2);
        if (nx < 0 || !continues(nx) || e + w2 - i > CHUNK_BYTES) break;
        e += w2;
    }
    t->pos = e;
    utf8proc_int32_t out[CHUNK_CPS];
    utf8proc_ssize_t n = utf8proc_decompose(s + i, (utf8proc_ssize_t)(e - i), out, CHUNK_CPS,
                                            UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD |
                                                UTF8PROC_IGNORE |
                                                UTF8PROC_STABLE);
    if (n == 0) return 1; /* only ignorables (a soft hyphen): no separator */
    if (n > 0 && n <= CHUNK_CPS)
        n = utf8proc_normalize_utf32(out, n, UTF8PROC_COMPOSE | UTF8PROC_STABLE);
    if (n <= 0 || n > CHUNK_CPS) { /* an error, or too long: a separator */
        t->qcp[t->qn] = ' ';
        t->qs[t->qn] = i;
        t->qe[t->qn++] = e;
        return 1;
    }
    for (utf8proc_ssize_t k = 0; k < n; k++) {
        t->qcp[t->qn] = out[k];
        t->qs[t->qn] = i;
        t->qe[t->qn++] = e;
    }
    return 1;
}

/* The K-th normalised code point ahead (K < 2), or -1 at the end. */
static int32_t peek(mmfs__tok *t, uint32_t k) {
    while (t->qn - t->qh <= k) {
        if (t->qh > 0) { /* slide down: room for a whole chunk */
            uint32_t m = t->qn - t->qh;
            memmove(t->qcp, t->qcp + t->qh, m * sizeof *t->qcp);
            memmove(t->qs, t->qs + t->qh, m * sizeof *t->qs);
            memmove(t->qe, t->qe + t->qh, m * sizeof *t->qe);
            t->qh = 0;
            t->qn = m;
        }
        if (!chunk(t)) return -1;
    }
    return t->qcp[t->qh + k];
}

/* Appends CP to BUF[0..*n) unless that would pass MMFS__TOK_MAX (then
** sets *full: the cut stays at a code point boundary, for good). */
static void put(uint8_t *buf, size_t *n, int *full, int32_t cp) {
    if (*full) return;
    uint8_t tmp[4];
    size_t m = utf8_encode(cp, tmp);
    if (*n + m > MMFS__TOK_MAX) {
        *full = 1;
        return;
    }
    memcpy(buf + *n, tmp, m);
    *n += m;
}

/* Length of the longest prefix of S[0..n) that is at most MAX bytes and
** ends at a code point boundary. */
static size_t cut_utf8(const uint8_t *s, size_t n, size_t max) {
    if (n <= max) return n;
    size_t k = max;
    while (k > 0 && (s[k] & 0xC0) == 0x80) k--;
    return k;
}

size_t mmfs__tokz_stem(mmfs__tokz *z, const uint8_t *w, size_t n, uint8_t *out) {
    /* NULL only when libstemmer cannot grow its buffer, which tokens this
    ** short never need. */
    const sb_symbol *st = z->stem ? sb_stemmer_stem(z->stem, w, (int)n) : NULL;
    if (!st) {
        memcpy(out, w, n);
        return n;
    }
    size_t m = cut_utf8(st, (size_t)sb_stemmer_length(z->stem), MMFS__TOK_MAX);
    memcpy(out, st, m);
    return m;
}

/* t->buf = the stem of t->fbuf[0..fn) (the word itself without a stemmer). */
static void stem_now(mmfs__tok *t) { t->n = mmfs__tokz_stem(t->z, t->fbuf, t->fn, t->buf); }

/* Stems the word in fbuf now, or leaves it pending (t->defer). */
static void stem(mmfs__tok *t) {
    if (t->defer && t->z->stem) {
        t->pending = 1;
        t->n = 0;
        return;
    }
    stem_now(t);
}

void mmfs__tok_stem(mmfs__tok *t) {
    if (!t->pending) return;
    t->pending = 0;
    stem_now(t);
}

/* The ASCII fast path, exactly what the general path gives for ASCII text
** (which needs no normalisation): with nothing looked ahead, skips ASCII
** separators and takes an ASCII word that ends at an ASCII byte or the
** end.  Returns 1 with the token set; 0 to let the general path go on
** from t->pos (a non-ASCII byte is near: it may be a mark that composes
** with the last ASCII letter, or continue the word). */
static int ascii_word(mmfs__tok *t) {
    const uint8_t *s = t->s;
    size_t len = t->len, i = t->pos;
    while (i < len && s[i] < 0x80 && !ascii_fold[s[i]] && (i + 1 == len || s[i + 1] < 0x80)) i++;
    if (i != t->pos) t->cjk_prev = 0;
    t->pos = i;
    if (i >= len || s[i] >= 0x80 || !ascii_fold[s[i]]) return 0;
    size_t j = i, cut = len - i > MMFS__TOK_MAX ? i + MMFS__TOK_MAX : len;
    uint8_t f;
    /* fold while scanning (fbuf is only used once the word is taken) */
    while (j < cut && s[j] < 0x80 && (f = ascii_fold[s[j]])) t->fbuf[j++ - i] = f;
    size_t n = j - i;
    while (j < len && s[j] < 0x80 && ascii_fold[s[j]]) j++; /* past the cap: cut */
    if (j < len && s[j] >= 0x80) return 0;
    t->fn = n;
    t->cjk_prev = 0;
    stem(t);
    t->start = i;
    t->end = j;
    t->pos = j;
    return 1;
}

static int tok_next_v1(mmfs__tok *t) {
    t->pending = 0;
    for (;;) {
        if (t->qh == t->qn && t->pos < t->len && ascii_word(t)) return 1;
        int32_t c = peek(t, 0);
        if (c < 0) return 0;
        if (!is_word1(c)) {
            t->qh++;
            t->cjk_prev = 0;
            continue;
        }
        size_t start = t->qs[t->qh], end = t->qe[t->qh];
        int full = 0;
        t->n = 0;
        if (is_cjk(c)) {
            t->qh++;
            int32_t nx = peek(t, 0);
            if (nx >= 0 && is_cjk(nx)) { /* a bigram; NX starts the next one */
                put(t->buf, &t->n, &full, c);
                put(t->buf, &t->n, &full, nx);
                end = t->qe[t->qh];
                t->cjk_prev = 1;
            } else if (t->cjk_prev) { /* the last of a run: in the bigram before */
                t->cjk_prev = 0;
                continue;
            } else { /* a lone character */
                put(t->buf, &t->n, &full, c);
            }
            memcpy(t->fbuf, t->buf, t->n);
            t->fn = t->n;
        } else {
            t->cjk_prev = 0;
            t->fn = 0;
            while (c >= 0 && is_word1(c) && !is_cjk(c)) {
                put(t->fbuf, &t->fn, &full, c);
                end = t->qe[t->qh];
                t->qh++;
                c = peek(t, 0);
            }
            stem(t);
        }
        t->start = start;
        t->end = end;
        return 1;
    }
}

int mmfs__tok_next(mmfs__tok *t) { return t->z ? tok_next_v1(t) : tok_next_v0(t); }
