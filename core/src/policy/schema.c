/*
** schema.c: schemas.session (API.md, "The policy script"): compiling the
** policy's table into C, and checking a session against it, in C from the
** record when it can (the common case: no table is built) and on the Lua
** table otherwise.
**
** Invariant: the compiled schema is a copy; the policy changing its own
** table later changes nothing.
*/
#include "pvm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static const char *const stype_name[] = {"string", "integer", "number", "boolean", "table"};

/* Describes the value at I for a message: strings quoted. */
static void show(lua_State *L, int i, char *buf, size_t n) {
    switch (lua_type(L, i)) {
    case LUA_TSTRING: snprintf(buf, n, "'%s'", lua_tostring(L, i)); break;
    case LUA_TBOOLEAN: snprintf(buf, n, "%s", lua_toboolean(L, i) ? "true" : "false"); break;
    case LUA_TNUMBER:
        if (pc_isinttype(L, i)) snprintf(buf, n, "%lld", (long long)pc_toint64(L, i));
        else snprintf(buf, n, "%.14g", (double)lua_tonumber(L, i));
        break;
    default: snprintf(buf, n, "%s", luaL_typename(L, i));
    }
}

/* Raises a schema violation of entry F by the value at V. */
static void schema_fail(lua_State *L, const pvm_sfield *f, int v) {
    char msg[512], item[128];
    size_t len;
    v = pc_absindex(L, v);
    if (f->type != PVM_T_ENUM) {
        if (lua_isnil(L, v))
            luaL_error(L, "session field '%s': required (%s), missing", f->name, stype_name[f->type]);
        luaL_error(L, "session field '%s': expected %s, got %s", f->name, stype_name[f->type], luaL_typename(L, v));
    }
    len = (size_t)snprintf(msg, sizeof msg, "session field '%s': expected one of ", f->name);
    lua_rawgeti(L, LUA_REGISTRYINDEX, f->enum_ref);
    for (size_t i = 1, n = pc_rawlen(L, -1); i <= n && len < sizeof msg; i++) {
        lua_rawgeti(L, -1, (int)i);
        if (lua_type(L, -1) == LUA_TSTRING) snprintf(item, sizeof item, "%s", lua_tostring(L, -1));
        else show(L, -1, item, sizeof item);
        len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s", i > 1 ? ", " : "", item);
        lua_pop(L, 1);
    }
    show(L, v, item, sizeof item);
    if (len < sizeof msg) snprintf(msg + len, sizeof msg - len, ", got %s", item);
    lua_pushstring(L, msg);
    lua_error(L);
}

/* created_at is always there: the store adds it when the caller gave none
**, so a schema that does not list it does not refuse it;
** one that lists it checks its type like any field's. */
void mmfs__pvm_schema_check(lua_State *L, mmfs__policy *p, int idx) {
    idx = pc_absindex(L, idx);
    if (!lua_istable(L, idx)) luaL_error(L, "policy: the session must be a table, got %s", luaL_typename(L, idx));
    for (size_t i = 0; i < p->nschema; i++) {
        const pvm_sfield *f = &p->schema[i];
        int ok;
        lua_pushlstring(L, f->name, f->len);
        lua_rawget(L, idx);
        switch (f->type) {
        case PVM_T_STRING: ok = lua_type(L, -1) == LUA_TSTRING; break;
        case PVM_T_INTEGER: ok = pc_isintegral(L, -1); break;
        case PVM_T_NUMBER: ok = lua_type(L, -1) == LUA_TNUMBER; break;
        case PVM_T_BOOLEAN: ok = lua_type(L, -1) == LUA_TBOOLEAN; break;
        case PVM_T_TABLE: ok = lua_type(L, -1) == LUA_TTABLE; break;
        default: {
            ok = 0;
            lua_rawgeti(L, LUA_REGISTRYINDEX, f->enum_ref);
            for (size_t k = 1, n = pc_rawlen(L, -1); k <= n && !ok; k++) {
                lua_rawgeti(L, -1, (int)k);
                ok = lua_rawequal(L, -1, -3);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        }
        if (!ok && !(f->optional && lua_isnil(L, -1))) schema_fail(L, f, -1);
        lua_pop(L, 1);
    }
    if (p->schema_extra) return;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int known = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t n;
            const char *k = lua_tolstring(L, -1, &n);
            for (size_t i = 0; i < p->nschema && !known; i++)
                known = p->schema[i].len == n && memcmp(p->schema[i].name, k, n) == 0;
            if (!known && n == 10 && memcmp(k, "created_at", 10) == 0) known = 1; /* the store adds it */
            if (!known) luaL_error(L, "session field '%s': not in the schema (schemas.session)", k);
        } else {
            luaL_error(L, "session field [%s]: not in the schema (schemas.session)",
                       lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
        }
    }
}

/* One field of a session record, for schema_fast. */
typedef struct sval {
    const char *name;
    size_t len;
    uint8_t tag; /* the codec's: s i d t f T */
    mmfs_slice s; /* the string, for tag s */
} sval;

/* The check in C, from the record, without building its table.  It
** cannot tell for a key that is not a string, many fields, an
** enumeration with values that are not strings, a float where an integer
** is wanted: the check on the table then decides, and words the error.
** The fields are found as the table would hold them: id, intent_id,
** created_at, payload over the encoded ones. */
int mmfs__pvm_schema_fast(const mmfs__policy *p, const mmfs__rec *r) {
    sval v[32];
    size_t n = 0;
    v[n++] = (sval){"id", 2, 's', r->u.sess.id};
    if (r->u.sess.has_intent) v[n++] = (sval){"intent_id", 9, 's', r->u.sess.intent_id};
    v[n++] = (sval){"created_at", 10, 'i', {"", 0}};
    if (r->u.sess.has_payload) v[n++] = (sval){"payload", 7, 's', r->u.sess.payload};
    if (r->u.sess.fields.len) {
        mmfs_slice buf = r->u.sess.fields;
        size_t pos = 0, at;
        mmfs_field t, k, val;
        if (mmfs_fields_next(buf, &pos, &t) != MMFS_OK || t.type != 'T') return 0;
        for (uint32_t i = 0; i < t.n; i++) {
            if (n == sizeof v / sizeof v[0] || mmfs_fields_next(buf, &pos, &k) != MMFS_OK || k.type != 's') return 0;
            at = pos;
            if (mmfs_fields_skip(buf, &pos) != MMFS_OK) return 0; /* also checks a string's length */
            mmfs_fields_next(buf, &at, &val);
            v[n] = (sval){(const char *)k.s.ptr, k.s.len, (uint8_t)val.type, val.type == 's' ? val.s : (mmfs_slice){"", 0}};
            n++;
        }
    }
    for (size_t i = 0; i < p->nschema; i++) {
        const pvm_sfield *f = &p->schema[i];
        const sval *x = NULL;
        int ok = 0;
        for (size_t j = 0; j < n && !x; j++)
            if (v[j].len == f->len && memcmp(v[j].name, f->name, f->len) == 0) x = &v[j];
        if (!x) {
            if (!f->optional) return 0;
            continue;
        }
        switch (f->type) {
        case PVM_T_STRING: ok = x->tag == 's'; break;
        case PVM_T_INTEGER: ok = x->tag == 'i'; break;
        case PVM_T_NUMBER: ok = x->tag == 'i' || x->tag == 'd'; break;
        case PVM_T_BOOLEAN: ok = x->tag == 't' || x->tag == 'f'; break;
        case PVM_T_TABLE: ok = x->tag == 'T'; break;
        default:
            for (size_t k = 0; f->vals_fast && x->tag == 's' && k < f->nvals && !ok; k++)
                ok = mmfs__slice_eq(f->vals[k], x->s);
        }
        if (!ok) return 0;
    }
    if (p->schema_extra) return 1;
    for (size_t j = 0; j < n; j++) {
        int known = 0;
        for (size_t i = 0; i < p->nschema && !known; i++)
            known = p->schema[i].len == v[j].len && memcmp(p->schema[i].name, v[j].name, v[j].len) == 0;
        if (!known && v[j].len == 10 && memcmp(v[j].name, "created_at", 10) == 0) known = 1;
        if (!known) return 0;
    }
    return 1;
}

/* The allowed values of F, the array at IDX, copied (the policy's own
** table may change later; the schema is what it was when compiled): a
** Lua table for the check on tables, C strings for the check on records. */
static void compile_enum(lua_State *L, mmfs__policy *p, pvm_sfield *f, int idx, const char *name) {
    size_t n = pc_rawlen(L, idx);
    if (n > INT_MAX) luaL_error(L, "policy: schemas.session.%s: too many allowed values", name);
    f->vals = calloc(n, sizeof *f->vals);
    if (!f->vals) mmfs__pvm_nomem(L, p);
    f->vals_fast = 1;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (int)i);
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t len;
            const char *v = lua_tolstring(L, -1, &len);
            char *c = malloc(len ? len : 1);
            if (!c) mmfs__pvm_nomem(L, p);
            memcpy(c, v, len);
            f->vals[f->nvals].ptr = c;
            f->vals[f->nvals++].len = len;
        } else {
            f->vals_fast = 0;
        }
        lua_rawseti(L, -2, (int)i);
    }
    f->enum_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void mmfs__pvm_compile_schema(lua_State *L, mmfs__policy *p, int idx) {
    size_t n = 0;
    idx = pc_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) n++, lua_pop(L, 1);
    p->schema = calloc(n ? n : 1, sizeof *p->schema);
    if (!p->schema) mmfs__pvm_nomem(L, p);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        pvm_sfield *f = &p->schema[p->nschema];
        size_t len;
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "policy: schemas.session: field names must be strings");
        k = lua_tolstring(L, -2, &len);
        if (strcmp(k, "_extra") == 0) {
            p->schema_extra = lua_toboolean(L, -1);
            lua_pop(L, 1);
            continue;
        }
        f->enum_ref = LUA_NOREF;
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t tl;
            const char *tn = lua_tolstring(L, -1, &tl);
            int i;
            f->optional = tl > 0 && tn[tl - 1] == '?';
            if (f->optional) tl--;
            for (i = 0; i < 5; i++)
                if (strlen(stype_name[i]) == tl && memcmp(stype_name[i], tn, tl) == 0) break;
            if (i == 5)
                luaL_error(L,
                           "policy: schemas.session.%s: unknown type '%s' (string, integer, number, boolean, "
                           "table, with '?' when optional, or a table of allowed values)",
                           k, tn);
            f->type = i;
        } else if (lua_type(L, -1) == LUA_TTABLE) {
            lua_getfield(L, -1, "optional");
            f->optional = lua_toboolean(L, -1);
            lua_pop(L, 1);
            if (pc_rawlen(L, -1) == 0) luaL_error(L, "policy: schemas.session.%s: an empty list of allowed values", k);
            f->type = PVM_T_ENUM;
            compile_enum(L, p, f, lua_gettop(L), k);
        } else {
            luaL_error(L, "policy: schemas.session.%s: a type name or a table of allowed values expected, got %s", k,
                       luaL_typename(L, -1));
        }
        f->name = malloc(len + 1);
        if (!f->name) mmfs__pvm_nomem(L, p);
        memcpy(f->name, k, len + 1);
        f->len = len;
        p->nschema++;
        lua_pop(L, 1);
    }
}

/* Reads the policy table at IDX: route, routes, schemas, hooks. */

void mmfs__pvm_free_schema(mmfs__policy *p) {
    for (size_t i = 0; i < p->nschema; i++) {
        free(p->schema[i].name);
        for (size_t j = 0; j < p->schema[i].nvals; j++) free((void *)p->schema[i].vals[j].ptr);
        free(p->schema[i].vals);
    }
    free(p->schema);
    p->schema = NULL;
    p->nschema = 0;
}
