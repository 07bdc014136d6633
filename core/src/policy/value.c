/*
** value.c: Lua values <-> the session field encoding of memmapfs.h
** ('f' 't' 'i' 'd' 's' 'T'), and the session record as a Lua table.
**
** A session table holds id, intent_id, created_at and payload (kept in the
** record's own slots) and any other field (kept in the encoded FIELDS).
** Numbers: an integer ('i') where the Lua has the subtype (5.3+), else an
** integral number in the int64 range; any other number is a float ('d').
** Nesting is bounded by VAL_MAXDEPTH, and a table met again on its own
** path is a cycle: both are refused with a message naming the field.
*/
#include "pvm.h"

#include <stdlib.h>

#define VAL_MAXDEPTH 64

/* ------------------------------------------------------------ decoding */

/* Pushes the value encoded at *PP (before END); advances *PP.  Raises for
** malformed input (the record passed the log's own check, so this means
** a bug or a corrupt store). */
static void dec_value(lua_State *L, const uint8_t **pp, const uint8_t *end, int depth) {
    const uint8_t *p = *pp;
    if (p >= end || depth > VAL_MAXDEPTH) goto bad;
    switch (*p++) {
    case 'f': lua_pushboolean(L, 0); break;
    case 't': lua_pushboolean(L, 1); break;
    case 'i':
        if (end - p < 8) goto bad;
        pc_pushint64(L, (int64_t)mmfs__ld64(p));
        p += 8;
        break;
    case 'd': {
        double d;
        uint64_t bits;
        if (end - p < 8) goto bad;
        bits = mmfs__ld64(p);
        memcpy(&d, &bits, 8);
        lua_pushnumber(L, (lua_Number)d);
        p += 8;
        break;
    }
    case 's': {
        uint32_t n;
        if (end - p < 4) goto bad;
        n = mmfs__ld32(p);
        p += 4;
        if ((size_t)(end - p) < n) goto bad;
        lua_pushlstring(L, (const char *)p, n);
        p += n;
        break;
    }
    case 'T': {
        uint32_t n;
        int t;
        if (end - p < 4) goto bad;
        n = mmfs__ld32(p);
        p += 4;
        luaL_checkstack(L, 4, "session fields nested too deep");
        lua_createtable(L, 0, n < 64 ? (int)n : 64);
        t = lua_gettop(L);
        for (uint32_t i = 0; i < n; i++) {
            dec_value(L, &p, end, depth + 1);
            dec_value(L, &p, end, depth + 1);
            if (lua_isnil(L, -2) || (lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2)))
                lua_pop(L, 2); /* not a valid table key */
            else
                lua_rawset(L, t);
        }
        break;
    }
    default: goto bad;
    }
    *pp = p;
    return;
bad:
    luaL_error(L, "policy: malformed session fields in the store");
}

void mmfs__pvm_push_session(lua_State *L, const mmfs__rec *r) {
    const uint8_t *p = r->u.sess.fields.ptr;
    luaL_checkstack(L, 8, NULL);
    if (r->u.sess.fields.len) {
        dec_value(L, &p, p + r->u.sess.fields.len, 0);
        if (!lua_istable(L, -1)) luaL_error(L, "policy: malformed session fields in the store");
    } else {
        lua_createtable(L, 0, 4);
    }
    lua_pushlstring(L, (const char *)r->u.sess.id.ptr, r->u.sess.id.len);
    lua_setfield(L, -2, "id");
    if (r->u.sess.has_intent) {
        lua_pushlstring(L, (const char *)r->u.sess.intent_id.ptr, r->u.sess.intent_id.len);
        lua_setfield(L, -2, "intent_id");
    }
    pc_pushint64(L, r->u.sess.created_at);
    lua_setfield(L, -2, "created_at");
    if (r->u.sess.has_payload) {
        lua_pushlstring(L, (const char *)r->u.sess.payload.ptr, r->u.sess.payload.len);
        lua_setfield(L, -2, "payload");
    }
}

/* ------------------------------------------------------------ encoding */

int mmfs__pvm_is_reserved(lua_State *L, int idx) {
    size_t n;
    const char *k;
    if (lua_type(L, idx) != LUA_TSTRING) return 0;
    k = lua_tolstring(L, idx, &n);
    switch (n) {
    case 2: return memcmp(k, "id", 2) == 0;
    case 7: return memcmp(k, "payload", 7) == 0;
    case 9: return memcmp(k, "intent_id", 9) == 0;
    case 10: return memcmp(k, "created_at", 10) == 0;
    default: return 0;
    }
}

typedef struct enc {
    lua_State *L;
    mmfs__policy *p;
    const void *path[VAL_MAXDEPTH + 1]; /* tables being encoded, outermost first */
    int name;                           /* stack index of the top-level field's key, or 0 */
} enc;

/* Makes room for N more bytes in the scratch buffer. */
static uint8_t *enc_room(enc *e, size_t n) {
    mmfs__policy *p = e->p;
    if (p->bufcap - p->buflen < n) {
        size_t cap = p->bufcap ? p->bufcap : 256;
        while (cap - p->buflen < n) cap *= 2;
        uint8_t *b = realloc(p->buf, cap);
        if (!b) mmfs__pvm_nomem(e->L, p);
        p->buf = b;
        p->bufcap = cap;
    }
    return p->buf + p->buflen;
}

static int enc_fail(enc *e, const char *why, int idx) {
    lua_State *L = e->L;
    if (e->name && lua_type(L, e->name) == LUA_TSTRING)
        return luaL_error(L, "session field '%s': %s (a %s)", lua_tostring(L, e->name), why, luaL_typename(L, idx));
    if (e->name) {
        lua_pushvalue(L, e->name); /* lua_tostring would convert the key in place */
        return luaL_error(L, "session field [%s]: %s (a %s)", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?",
                          why, luaL_typename(L, idx));
    }
    return luaL_error(L, "session: %s (a %s)", why, luaL_typename(L, idx));
}

static void enc_value(enc *e, int idx, int depth, int top);

static void enc_table(enc *e, int idx, int depth, int top) {
    lua_State *L = e->L;
    const void *self = lua_topointer(L, idx);
    size_t count_at;
    uint32_t n = 0;
    if (depth >= VAL_MAXDEPTH) enc_fail(e, "nested too deep", idx);
    for (int i = 0; i < depth; i++)
        if (e->path[i] == self) enc_fail(e, "a table that contains itself cannot be stored", idx);
    e->path[depth] = self;
    luaL_checkstack(L, 4, "session fields nested too deep");
    *enc_room(e, 5) = 'T';
    count_at = e->p->buflen + 1;
    e->p->buflen += 5;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int k = lua_gettop(L) - 1, v = k + 1;
        if (!(top && mmfs__pvm_is_reserved(L, k))) {
            if (top) e->name = k;
            if (lua_type(L, k) == LUA_TTABLE) enc_fail(e, "a table key cannot be stored", k);
            enc_value(e, k, depth + 1, 0);
            enc_value(e, v, depth + 1, 0);
            n++;
        }
        lua_pop(L, 1);
    }
    if (top) e->name = 0;
    mmfs__st32(e->p->buf + count_at, n);
}

static void enc_value(enc *e, int idx, int depth, int top) {
    lua_State *L = e->L;
    uint8_t *b;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        *enc_room(e, 1) = lua_toboolean(L, idx) ? 't' : 'f';
        e->p->buflen += 1;
        return;
    case LUA_TNUMBER:
        b = enc_room(e, 9);
        if (pc_isinttype(L, idx)) {
            b[0] = 'i';
            mmfs__st64(b + 1, (uint64_t)pc_toint64(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            uint64_t bits;
            memcpy(&bits, &d, 8);
            b[0] = 'd';
            mmfs__st64(b + 1, bits);
        }
        e->p->buflen += 9;
        return;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (n > UINT32_MAX) enc_fail(e, "too long", idx);
        b = enc_room(e, 5 + n);
        b[0] = 's';
        mmfs__st32(b + 1, (uint32_t)n);
        if (n) memcpy(b + 5, s, n);
        e->p->buflen += 5 + n;
        return;
    }
    case LUA_TTABLE:
        enc_table(e, idx, depth, top);
        return;
    default:
        enc_fail(e, "cannot be stored", idx);
    }
}

mmfs_slice mmfs__pvm_encode_fields(lua_State *L, mmfs__policy *p, int idx) {
    enc e;
    mmfs_slice r;
    e.L = L;
    e.p = p;
    e.name = 0;
    idx = pc_absindex(L, idx);
    p->buflen = 0;
    enc_table(&e, idx, 0, 1);
    if (mmfs__ld32(p->buf + 1) == 0) p->buflen = 0; /* only reserved fields */
    r.ptr = p->buf;
    r.len = p->buflen;
    return r;
}
