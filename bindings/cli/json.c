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

/* The value encoding of memmapfs.h (sessions): 'f' 't' 'i' 'd' 's' 'T',
** read with the library's walker (mmfs_fields_next, mmfs_fields_skip).
** The library checked it when it was stored; a malformed value here is
** written as null and the rest of its table skipped, never read past the
** end. */

/* Reads the whole value at *POS of BUF into *V (a table: its header) and
** moves *POS past all of it; 0 if malformed. */
static int field_at(mmfs_slice buf, size_t *pos, mmfs_field *v) {
    size_t at = *pos;
    return mmfs_fields_skip(buf, pos) == MMFS_OK && mmfs_fields_next(buf, &at, v) == MMFS_OK;
}

static int write_value(FILE *f, mmfs_slice buf, size_t *pos, int depth);

/* Writes the N pairs at *POS of BUF as a JSON object.  Keys that are not
** strings are written as their JSON text ("1", "true") since JSON keys are
** strings; a table whose keys are exactly 1..N in order is an array. */
static int write_table(FILE *f, mmfs_slice buf, size_t *pos, uint32_t n, int depth, int skip_open) {
    size_t q = *pos;
    mmfs_field k;
    int array = 1;
    for (uint32_t i = 0; i < n && array; i++) {
        if (mmfs_fields_next(buf, &q, &k) != MMFS_OK || k.type != 'i' || (uint64_t)k.i != (uint64_t)i + 1)
            array = 0;
        else if (mmfs_fields_skip(buf, &q) != MMFS_OK)
            return 0;
    }
    if (!skip_open) fputc(array ? '[' : '{', f);
    for (uint32_t i = 0; i < n; i++) {
        if (i || skip_open) fputc(',', f);
        if (!field_at(buf, pos, &k)) return 0;
        if (array) {
            /* the key is i + 1 */
        } else if (k.type == 's') {
            cli_json_bytes(f, k.s.ptr, k.s.len);
        } else {
            /* Not a string: the key's text, quoted. */
            char text[40];
            if (k.type == 'i') snprintf(text, sizeof text, "%lld", (long long)k.i);
            else if (k.type == 'd') snprintf(text, sizeof text, "%.17g", k.d);
            else snprintf(text, sizeof text, "%s", k.type == 't' ? "true" : k.type == 'f' ? "false" : "table");
            cli_json_bytes(f, text, strlen(text));
        }
        if (!array) fputc(':', f);
        if (!write_value(f, buf, pos, depth + 1)) return 0;
    }
    if (!skip_open) fputc(array ? ']' : '}', f);
    return 1;
}

static int write_value(FILE *f, mmfs_slice buf, size_t *pos, int depth) {
    size_t end = *pos;
    mmfs_field v;
    if (depth > MMFS_FIELDS_MAXDEPTH || mmfs_fields_skip(buf, &end) != MMFS_OK) return 0; /* all in bounds */
    if (mmfs_fields_next(buf, pos, &v) != MMFS_OK) return 0;
    switch (v.type) {
    case 'f': fputs("false", f); break;
    case 't': fputs("true", f); break;
    case 'i': fprintf(f, "%lld", (long long)v.i); break;
    case 'd': cli_json_double(f, v.d); break;
    case 's': cli_json_bytes(f, v.s.ptr, v.s.len); break;
    default: return write_table(f, buf, pos, v.n, depth, 0);
    }
    return 1;
}

void cli_json_session(FILE *f, const mmfs_session *s) {
    fputs("{\"id\":", f);
    cli_json_slice(f, s->id);
    if (s->has_intent) fputs(",\"intent_id\":", f), cli_json_slice(f, s->intent_id);
    if (s->has_created_at) fprintf(f, ",\"created_at\":%lld", (long long)s->created_at);
    if (s->has_payload) fputs(",\"payload\":", f), cli_json_slice(f, s->payload);
    if (s->fields.len) {
        /* The other fields join the object, as in Lua's get_session. */
        size_t pos = 0;
        mmfs_field t;
        if (mmfs_fields_skip(s->fields, &pos) != MMFS_OK || pos != s->fields.len ||
            (pos = 0, mmfs_fields_next(s->fields, &pos, &t)) != MMFS_OK || t.type != 'T') {
            fputs(",\"fields\":null", f);
        } else {
            /* An array-shaped table cannot join an object: nest it. */
            int array = t.n && ((const unsigned char *)s->fields.ptr)[pos] == 'i';
            if (array) fputs(",\"fields\":", f);
            if (!write_table(f, s->fields, &pos, t.n, 0, !array)) fputs(array ? "null" : ",\"fields\":null", f);
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
