/*
** json.c: how store contents become JSON for `mmfs dump`, `search`,
** `sessions` and `watch`.
**
** Owns: escaping, the byte-string rule, the session field decoder.
** Invariants: every line written is valid JSON whatever the bytes stored.
** A JSON string can only carry Unicode text, so a byte string that is not
** valid UTF-8 (binary keys and values are allowed everywhere) is written
** as {"base64":"..."}: the output stays valid and the bytes recoverable.
*/
#include <math.h>
#include <string.h>

#include "cli.h"

/* Length of the valid UTF-8 sequence at P (N bytes left), 0 if invalid:
** no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

static int utf8_valid(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static void base64(FILE *f, const unsigned char *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        fputc(tab[v >> 18], f);
        fputc(tab[(v >> 12) & 63], f);
        fputc(tab[(v >> 6) & 63], f);
        fputc(tab[v & 63], f);
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        fputc(tab[v >> 18], f);
        fputc(tab[(v >> 12) & 63], f);
        fputs("==", f);
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        fputc(tab[v >> 18], f);
        fputc(tab[(v >> 12) & 63], f);
        fputc(tab[(v >> 6) & 63], f);
        fputc('=', f);
    }
}

void cli_json_bytes(FILE *f, const void *ptr, size_t n) {
    const unsigned char *p = ptr ? ptr : (const unsigned char *)"";
    if (!utf8_valid(p, n)) {
        fputs("{\"base64\":\"", f);
        base64(f, p, n);
        fputs("\"}", f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7F) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
}

void cli_json_slice(FILE *f, mmfs_slice s) { cli_json_bytes(f, s.ptr, s.len); }

void cli_json_double(FILE *f, double d) {
    if (!isfinite(d)) fputs("null", f);
    else fprintf(f, "%.17g", d);
}

/* ------------------------------------------------- session field values */

/* The value encoding of memmapfs.h (sessions): 'f' 't' 'i' 'd' 's' 'T'.
** The library checked it when it was stored; a malformed value here is
** written as null and the rest of its table skipped, never read past END. */
#define FIELD_MAXDEPTH 64

static uint32_t ld32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const unsigned char *p) { return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32; }

/* Skips the value at *PP; 0 if malformed. */
static int skip_value(const unsigned char **pp, const unsigned char *end, int depth) {
    const unsigned char *p = *pp;
    if (p >= end || depth > FIELD_MAXDEPTH) return 0;
    switch (*p++) {
    case 'f': case 't': break;
    case 'i': case 'd':
        if (end - p < 8) return 0;
        p += 8;
        break;
    case 's': {
        if (end - p < 4) return 0;
        uint32_t n = ld32(p);
        p += 4;
        if ((size_t)(end - p) < n) return 0;
        p += n;
        break;
    }
    case 'T': {
        if (end - p < 4) return 0;
        uint32_t n = ld32(p);
        p += 4;
        for (uint32_t i = 0; i < 2 * (uint64_t)n; i++)
            if (!skip_value(&p, end, depth + 1)) return 0;
        break;
    }
    default: return 0;
    }
    *pp = p;
    return 1;
}

static int write_value(FILE *f, const unsigned char **pp, const unsigned char *end, int depth);

/* Writes the N pairs at *PP as a JSON object.  Keys that are not strings
** are written as their JSON text ("1", "true") since JSON keys are
** strings; a table whose keys are exactly 1..N in order is an array. */
static int write_table(FILE *f, const unsigned char **pp, const unsigned char *end, uint32_t n,
                       int depth, int skip_open) {
    const unsigned char *p = *pp, *q = p;
    int array = 1;
    for (uint32_t i = 0; i < n && array; i++) {
        if (q >= end || *q != 'i' || end - q < 9 || (uint64_t)ld64(q + 1) != (uint64_t)i + 1) array = 0;
        else if (q += 9, !skip_value(&q, end, depth + 1)) return 0;
    }
    if (!skip_open) fputc(array ? '[' : '{', f);
    for (uint32_t i = 0; i < n; i++) {
        if (i || skip_open) fputc(',', f);
        if (array) {
            p += 9;
        } else if (p < end && *p == 's') {
            const unsigned char *k = p;
            if (!skip_value(&p, end, depth + 1)) return 0;
            cli_json_bytes(f, k + 5, ld32(k + 1));
        } else {
            /* Not a string: the key's text, quoted. */
            char buf[40];
            const unsigned char *k = p;
            if (!skip_value(&p, end, depth + 1)) return 0;
            if (*k == 'i') {
                snprintf(buf, sizeof buf, "%lld", (long long)(int64_t)ld64(k + 1));
            } else if (*k == 'd') {
                uint64_t bits = ld64(k + 1);
                double d;
                memcpy(&d, &bits, sizeof d);
                snprintf(buf, sizeof buf, "%.17g", d);
            } else {
                snprintf(buf, sizeof buf, "%s", *k == 't' ? "true" : *k == 'f' ? "false" : "table");
            }
            cli_json_bytes(f, buf, strlen(buf));
        }
        if (!array) fputc(':', f);
        if (!write_value(f, &p, end, depth + 1)) return 0;
    }
    if (!skip_open) fputc(array ? ']' : '}', f);
    *pp = p;
    return 1;
}

static int write_value(FILE *f, const unsigned char **pp, const unsigned char *end, int depth) {
    const unsigned char *p = *pp;
    if (!skip_value(&p, end, depth)) return 0; /* the whole value is in bounds */
    p = *pp;
    switch (*p++) {
    case 'f': fputs("false", f); break;
    case 't': fputs("true", f); break;
    case 'i': fprintf(f, "%lld", (long long)(int64_t)ld64(p)); p += 8; break;
    case 'd': {
        uint64_t bits = ld64(p);
        double d;
        memcpy(&d, &bits, sizeof d);
        cli_json_double(f, d);
        p += 8;
        break;
    }
    case 's': {
        uint32_t n = ld32(p);
        cli_json_bytes(f, p + 4, n);
        p += 4 + n;
        break;
    }
    case 'T': {
        uint32_t n = ld32(p);
        p += 4;
        if (!write_table(f, &p, end, n, depth, 0)) return 0;
        break;
    }
    }
    *pp = p;
    return 1;
}

void cli_json_session(FILE *f, const mmfs_session *s) {
    fputs("{\"id\":", f);
    cli_json_slice(f, s->id);
    if (s->has_intent) fputs(",\"intent_id\":", f), cli_json_slice(f, s->intent_id);
    if (s->has_created_at) fprintf(f, ",\"created_at\":%lld", (long long)s->created_at);
    if (s->has_payload) fputs(",\"payload\":", f), cli_json_slice(f, s->payload);
    const unsigned char *p = s->fields.ptr, *end = p + s->fields.len;
    if (s->fields.len) {
        /* The other fields join the object, as in Lua's get_session. */
        const unsigned char *q = p;
        if (*p != 'T' || s->fields.len < 5 || !skip_value(&q, end, 0) || q != end) {
            fputs(",\"fields\":null", f);
        } else {
            uint32_t n = ld32(p + 1);
            p += 5;
            /* An array-shaped table cannot join an object: nest it. */
            int array = n && *p == 'i';
            if (array) fputs(",\"fields\":", f);
            if (!write_table(f, &p, end, n, 0, !array)) fputs(array ? "null" : ",\"fields\":null", f);
        }
    }
    fputc('}', f);
}

void cli_json_memory(FILE *f, const mmfs_memory *m, int with_score) {
    fprintf(f, "{\"id\":%llu", (unsigned long long)m->id);
    if (with_score) fputs(",\"score\":", f), cli_json_double(f, m->score);
    fprintf(f, ",\"created_at\":%lld,\"route\":", (long long)m->created_at);
    cli_json_slice(f, m->route);
    fputs(",\"tags\":[", f);
    for (size_t i = 0; i < m->ntags; i++) {
        if (i) fputc(',', f);
        cli_json_slice(f, m->tags[i]);
    }
    fputs("],\"text\":", f);
    cli_json_slice(f, m->text);
    fputc('}', f);
}
