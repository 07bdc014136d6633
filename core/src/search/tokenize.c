/*
** tokenize.c: the UTF-8 tokenizer shared by indexing and querying.
**
** Owns: what a token is and how it is folded.  Invariants: the same bytes
** always give the same tokens (indexing and querying must agree; changing
** anything here changes the on-disk meaning of an index); the tokenizer
** reads only its input and its own state (safe in concurrent searches);
** a folded token is at most MMFS__TOK_MAX bytes and always valid UTF-8.
**
** Folding is simple case folding for ASCII, Latin-1, Latin Extended-A,
** Latin Extended Additional, Greek and Cyrillic (final sigma folds to
** sigma); other scripts pass through unchanged.  No normalization (NFC and
** NFD spellings of the same letter are different tokens) and no word
** segmentation for scripts written without spaces (a CJK run is one
** token): utf8proc would bring both, at the cost of a dependency.
*/
#include "search.h"

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
}

int mmfs__tok_next(mmfs__tok *t) {
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
