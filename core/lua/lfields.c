/*
** lfields.c: the session field codec of lfields.h, for the Lua binding
** and the policy VM alike.
*/
#include "lfields.h"

#include <stdlib.h>

static void st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); } /* the format is little-endian, as every target */
static void st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t ld32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ------------------------------------------------------------ decoding */

/* Pushes the value at *POS of BUF; advances *POS.  Returns 0 for malformed
** input, pushing nothing (the log checks what it stores, so this means a
** bug or a corrupt store).  Nesting past MMFS_FIELDS_MAXDEPTH is
** malformed, as for the engine's own check. */
static int dec_value(lua_State *L, mmfs_slice buf, size_t *pos, int depth) {
    mmfs_field v;
    if (depth > MMFS_FIELDS_MAXDEPTH || mmfs_fields_next(buf, pos, &v) != MMFS_OK) return 0;
    switch (v.type) {
    case 'f': lua_pushboolean(L, 0); break;
    case 't': lua_pushboolean(L, 1); break;
    case 'i': pc_pushint64(L, v.i); break;
    case 'd': lua_pushnumber(L, (lua_Number)v.d); break;
    case 's': lua_pushlstring(L, (const char *)v.s.ptr, v.s.len); break;
    default: { /* 'T' */
        uint32_t i;
        int t;
        if (!lua_checkstack(L, 4)) return 0;
        lua_createtable(L, 0, v.n < 64 ? (int)v.n : 64);
        t = lua_gettop(L);
        for (i = 0; i < v.n; i++) {
            if (!dec_value(L, buf, pos, depth + 1)) break;
            if (!dec_value(L, buf, pos, depth + 1)) {
                lua_pop(L, 1);
                break;
            }
            if (lua_isnil(L, -2) || (lua_type(L, -2) == LUA_TNUMBER && lua_tonumber(L, -2) != lua_tonumber(L, -2)))
                lua_pop(L, 2); /* a nil or NaN key cannot be a table key */
            else
                lua_rawset(L, t);
        }
        if (i < v.n) {
            lua_settop(L, t - 1);
            return 0;
        }
    }
    }
    return 1;
}

int mmfs__lf_push_session(lua_State *L, const mmfs_session *s) {
    int ok = 1, top = lua_gettop(L);
    luaL_checkstack(L, 8, NULL);
    if (s->fields.len) {
        size_t pos = 0;
        ok = dec_value(L, s->fields, &pos, 0) && lua_istable(L, -1);
        if (!ok) lua_settop(L, top);
    }
    if (lua_gettop(L) == top) lua_createtable(L, 0, 4);
    lua_pushlstring(L, (const char *)s->id.ptr, s->id.len);
    lua_setfield(L, -2, "id");
    if (s->has_intent) {
        lua_pushlstring(L, (const char *)s->intent_id.ptr, s->intent_id.len);
        lua_setfield(L, -2, "intent_id");
    }
    pc_pushint64(L, s->created_at);
    lua_setfield(L, -2, "created_at");
    if (s->has_payload) {
        lua_pushlstring(L, (const char *)s->payload.ptr, s->payload.len);
        lua_setfield(L, -2, "payload");
    }
    return ok;
}

/* ------------------------------------------------------------ encoding */

int mmfs__lf_is_reserved(lua_State *L, int idx) {
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
    mmfs__lbuf *b;
    mmfs__lf_nomem nomem;
    void *ud;
    const void *path[MMFS_FIELDS_MAXDEPTH + 1]; /* tables being encoded, outermost first */
    int name;                                /* stack index of the top-level field's key, or 0 */
} enc;

/* Makes room for N more bytes in the buffer. */
static uint8_t *enc_room(enc *e, size_t n) {
    mmfs__lbuf *b = e->b;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        uint8_t *nb;
        while (cap - b->len < n) cap *= 2;
        nb = realloc(b->buf, cap);
        if (!nb) {
            if (e->nomem) e->nomem(e->L, e->ud);
            luaL_error(e->L, "not enough memory");
        }
        b->buf = nb;
        b->cap = cap;
    }
    return b->buf + b->len;
}

/* Raises: the value at IDX cannot be stored (WHY); "(a <type>)" follows
** unless IDX is 0. */
static int enc_fail(enc *e, const char *why, int idx) {
    lua_State *L = e->L;
    const char *open = idx ? " (a " : "", *type = idx ? luaL_typename(L, idx) : "", *close = idx ? ")" : "";
    if (e->name && lua_type(L, e->name) == LUA_TSTRING)
        return luaL_error(L, "session field '%s': %s%s%s%s", lua_tostring(L, e->name), why, open, type, close);
    if (e->name) {
        lua_pushvalue(L, e->name); /* lua_tostring would convert the key in place */
        return luaL_error(L, "session field [%s]: %s%s%s%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?",
                          why, open, type, close);
    }
    return luaL_error(L, "session: %s%s%s%s", why, open, type, close);
}

static void enc_value(enc *e, int idx, int depth);

/* TOP: IDX is the session table itself, whose reserved fields are
** skipped and whose keys name the field in errors. */
static void enc_table(enc *e, int idx, int depth, int top) {
    lua_State *L = e->L;
    const void *self = lua_topointer(L, idx);
    size_t count_at;
    uint32_t n = 0;
    if (depth >= MMFS_FIELDS_MAXDEPTH) enc_fail(e, "nested too deep", idx);
    for (int i = 0; i < depth; i++)
        if (e->path[i] == self) enc_fail(e, "a table that contains itself cannot be stored (nested in itself)", 0);
    e->path[depth] = self;
    luaL_checkstack(L, 4, "session fields nested too deep");
    *enc_room(e, 5) = 'T';
    count_at = e->b->len + 1;
    e->b->len += 5;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int k = lua_gettop(L) - 1, v = k + 1;
        if (!(top && mmfs__lf_is_reserved(L, k))) {
            if (top) e->name = k;
            if (lua_type(L, k) == LUA_TTABLE) enc_fail(e, "a table key cannot be stored", k);
            if (n == UINT32_MAX) enc_fail(e, "too many fields", idx);
            enc_value(e, k, depth + 1);
            enc_value(e, v, depth + 1);
            n++;
        }
        lua_pop(L, 1);
    }
    if (top) e->name = 0;
    st32(e->b->buf + count_at, n);
}

static void enc_value(enc *e, int idx, int depth) {
    lua_State *L = e->L;
    uint8_t *b;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        *enc_room(e, 1) = lua_toboolean(L, idx) ? 't' : 'f';
        e->b->len += 1;
        return;
    case LUA_TNUMBER:
        b = enc_room(e, 9);
        if (pc_isinttype(L, idx)) {
            b[0] = 'i';
            st64(b + 1, (uint64_t)pc_toint64(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            uint64_t bits;
            memcpy(&bits, &d, 8);
            b[0] = 'd';
            st64(b + 1, bits);
        }
        e->b->len += 9;
        return;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (n > UINT32_MAX) enc_fail(e, "too long", idx);
        b = enc_room(e, 5 + n);
        b[0] = 's';
        st32(b + 1, (uint32_t)n);
        if (n) memcpy(b + 5, s, n);
        e->b->len += 5 + n;
        return;
    }
    case LUA_TTABLE:
        enc_table(e, idx, depth, 0);
        return;
    default:
        enc_fail(e, "cannot be stored", idx);
    }
}

void mmfs__lf_encode(lua_State *L, int idx, mmfs__lbuf *b, mmfs__lf_nomem nomem, void *ud) {
    enc e;
    e.L = L;
    e.b = b;
    e.nomem = nomem;
    e.ud = ud;
    e.name = 0;
    b->len = 0;
    enc_table(&e, pc_absindex(L, idx), 0, 1);
    if (ld32(b->buf + 1) == 0) b->len = 0; /* only reserved fields */
}
