/*
** load.c: a policy's source compiled into a VM (mmfs__pvm_new): a fresh
** Lua 5.4 state with the capped allocator and the count hook, the
** sandbox, the tables every run uses, then the chunk, run under the
** limits, and the table it returns read into C.
**
** Invariants:
** - Everything that may allocate or raise runs inside one protected call,
**   so a failed load returns a status and frees everything.
** - Every key of the policy table and of its tables is known, or the load
**   fails INVALID naming it (a typo such as `hoooks` must not silently
**   disable every hook); what is not built yet is refused, never accepted
**   and ignored.
*/
#include "pvm.h"

#include <stdlib.h>

#define TYPE_NAME(C, code, name) [code] = #name,
static const char *const type_name[MMFS__R_MAX + 1] = {MMFS_COMMANDS(TYPE_NAME)};

/* The string key at -2 of a lua_next loop, or "?" for any other key. */
static const char *key_at(lua_State *L) {
    return lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
}

/* Raises unless every key of the table at IDX is one of NAMES (WHERE
** names the table in the message, "" for the policy itself). */
static void known_keys(lua_State *L, int idx, const char *where, const char *const *names, const char *list) {
    idx = pc_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (int i = 0; names[i] && !ok; i++) ok = strcmp(names[i], lua_tostring(L, -2)) == 0;
        if (!ok) {
            if (lua_type(L, -2) == LUA_TSTRING)
                luaL_error(L, "policy: %sunknown key '%s' (known: %s)", where, lua_tostring(L, -2), list);
            luaL_error(L, "policy: %sunknown key of type %s (known: %s)", where, luaL_typename(L, -2), list);
        }
        lua_pop(L, 1);
    }
}

/* Reads routes (the table at the top; left there). */
static void compile_routes(lua_State *L, mmfs__policy *p) {
    static const char *const route_keys[] = {"index", "ttl", NULL};
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) n++, lua_pop(L, 1);
    p->noindex = calloc(n ? n : 1, sizeof *p->noindex);
    if (!p->noindex) mmfs__pvm_nomem(L, p);
    p->ttl_route = calloc(n ? n : 1, sizeof *p->ttl_route);
    p->ttl = calloc(n ? n : 1, sizeof *p->ttl);
    if (!p->ttl_route || !p->ttl) mmfs__pvm_nomem(L, p);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *name;
        char where[300];
        if (lua_type(L, -2) != LUA_TSTRING || !lua_istable(L, -1))
            luaL_error(L, "policy: routes: each entry must be name = { options }");
        name = lua_tostring(L, -2);
        if (pc_rawlen(L, -2) > MMFS__MAX_ROUTE)
            luaL_error(L, "policy: routes: a route name is longer than %d bytes", MMFS__MAX_ROUTE);
        snprintf(where, sizeof where, "routes.%s: ", name);
        known_keys(L, -1, where, route_keys, "index, ttl");
        lua_getfield(L, -1, "index");
        if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
            luaL_error(L, "policy: routes.%s.index must be a boolean", name);
        if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
            char *c = malloc(pc_rawlen(L, -3) + 1);
            if (!c) mmfs__pvm_nomem(L, p);
            memcpy(c, name, pc_rawlen(L, -3) + 1);
            p->noindex[p->nnoindex++] = c;
        }
        lua_getfield(L, -2, "ttl");
        if (!lua_isnil(L, -1)) { /* seconds after created_at; compaction forgets past it */
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) <= 0)
                luaL_error(L, "policy: routes.%s.ttl must be a positive integer (seconds)", name);
            char *c = malloc(pc_rawlen(L, -4) + 1);
            if (!c) mmfs__pvm_nomem(L, p);
            memcpy(c, name, pc_rawlen(L, -4) + 1);
            p->ttl[p->nttl] = (int64_t)lua_tointeger(L, -1);
            p->ttl_route[p->nttl++] = c;
        }
        lua_pop(L, 3);
    }
}

/* Reads hooks (the table at the top; left there). */
static void compile_hooks(lua_State *L, mmfs__policy *p) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        int t = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (t = 1; t <= MMFS__R_MAX; t++)
                if (type_name[t] && strcmp(type_name[t], lua_tostring(L, -2)) == 0) break;
        if (t == 0 || t > MMFS__R_MAX)
            luaL_error(L,
                       "policy: hooks.%s: no such command (append_memory, delete_memory, set_kv, delete_kv, "
                       "put_session, delete_session, append_stream, index, unindex, update_state)",
                       key_at(L));
        if (!lua_isfunction(L, -1)) luaL_error(L, "policy: hooks.%s must be a function", type_name[t]);
        lua_pushvalue(L, -1);
        p->ref_hook[t] = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pop(L, 1);
    }
}

/* Reads the policy table at IDX: route, routes, schemas, hooks. */
static void compile_policy(lua_State *L, mmfs__policy *p, int idx) {
    static const char *const policy_keys[] = {"route", "routes", "schemas", "hooks", "compaction", NULL};
    known_keys(L, idx, "", policy_keys, "route, routes, schemas, hooks, compaction");

    lua_getfield(L, idx, "route");
    if (lua_isfunction(L, -1)) p->ref_route = luaL_ref(L, LUA_REGISTRYINDEX);
    else if (!lua_isnil(L, -1)) luaL_error(L, "policy: route must be a function, got %s", luaL_typename(L, -1));
    else lua_pop(L, 1);

    lua_getfield(L, idx, "routes");
    if (lua_istable(L, -1)) {
        compile_routes(L, p);
        p->ref_routes = luaL_ref(L, LUA_REGISTRYINDEX);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "policy: routes must be a table, got %s", luaL_typename(L, -1));
    } else {
        lua_pop(L, 1);
    }

    lua_getfield(L, idx, "schemas");
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING || strcmp(lua_tostring(L, -2), "session") != 0)
                luaL_error(L, "policy: schemas: unknown key '%s' (known: session)", key_at(L));
            if (!lua_istable(L, -1)) luaL_error(L, "policy: schemas.session must be a table");
            mmfs__pvm_compile_schema(L, p, -1);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "policy: schemas must be a table, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);

    lua_getfield(L, idx, "hooks");
    if (lua_istable(L, -1)) compile_hooks(L, p);
    else if (!lua_isnil(L, -1)) luaL_error(L, "policy: hooks must be a table, got %s", luaL_typename(L, -1));
    lua_pop(L, 1);

    lua_getfield(L, idx, "compaction");
    if (lua_istable(L, -1)) {
        static const char *const compaction_keys[] = {"keep", "when", NULL};
        known_keys(L, -1, "compaction: ", compaction_keys, "keep, when");
        lua_getfield(L, -1, "when");
        if (lua_isfunction(L, -1)) p->ref_when = luaL_ref(L, LUA_REGISTRYINDEX);
        else if (!lua_isnil(L, -1)) luaL_error(L, "policy: compaction.when must be a function, got %s", luaL_typename(L, -1));
        else lua_pop(L, 1);
        lua_getfield(L, -1, "keep");
        if (lua_isfunction(L, -1)) p->ref_keep = luaL_ref(L, LUA_REGISTRYINDEX);
        else if (!lua_isnil(L, -1)) luaL_error(L, "policy: compaction.keep must be a function, got %s", luaL_typename(L, -1));
        else lua_pop(L, 1);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "policy: compaction must be a table, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

typedef struct new_args {
    mmfs__policy *p;
    const char *src;
    size_t len;
} new_args;

static int new_protected(lua_State *L) {
    new_args *a = lua_touserdata(L, 1);
    mmfs__policy *p = a->p;
    lua_settop(L, 0);
    mmfs__pvm_bind(L, p); /* first, before any Lua code runs */
    mmfs__pvm_open_sandbox(L, p);
    for (int t = 1; t <= MMFS__R_MAX; t++) {
        if (!type_name[t]) continue;
        lua_pushstring(L, type_name[t]);
        p->ref_tname[t] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    mmfs__pvm_open_cmd(L, p);
    mmfs__pvm_open_tx(L, p);

    if (pc_loadtext(L, a->src, a->len, "=policy") != LUA_OK) lua_error(L);
    mmfs__pvm_begin_call(p, "the policy chunk");
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1))
        luaL_error(L, "policy: the chunk must return a table (the policy), got %s", luaL_typename(L, -1));
    p->what = "policy";
    compile_policy(L, p, lua_gettop(L));
    return 0;
}

int mmfs__pvm_new(const char *src, size_t len, const mmfs__policy_limits *lim, mmfs__policy **out) {
    mmfs__policy *p = calloc(1, sizeof *p);
    new_args a;
    int status;
    *out = NULL;
    if (!p) return mmfs__err(MMFS_NOMEM, "policy: out of memory");
    mmfs_assert(lim && lim->hook_budget && lim->batch_budget && lim->mem_limit,
                "policy limits: every one set (the host fills them from the options)");
    p->lim = *lim;
    p->ref_route = p->ref_routes = p->ref_tags_mt = p->ref_cmd_mt = p->ref_tx = p->ref_keys = LUA_NOREF;
    p->ref_keep = p->ref_when = LUA_NOREF;
    for (int t = 0; t <= MMFS__R_MAX; t++) p->ref_hook[t] = p->ref_tname[t] = LUA_NOREF;

    p->L = lua_newstate(mmfs__pvm_alloc, p);
    if (!p->L) {
        free(p);
        return mmfs__err(MMFS_NOMEM, "policy: cannot create a Lua state");
    }
    lua_gc(p->L, LUA_GCGEN, 0, 0); /* most garbage is one command's tables */

    mmfs__pvm_reset(p->L, p);
    p->call_budget = p->lim.hook_budget;
    p->what = "the policy chunk";
    a.p = p;
    a.src = src;
    a.len = len;
    status = pc_cpcall(p->L, new_protected, &a);
    if (status != LUA_OK) {
        int rc = mmfs__pvm_fail(p->L, p, status, MMFS_INVALID);
        mmfs__pvm_free(p);
        return rc;
    }
    lua_settop(p->L, 0);
    lua_gc(p->L, LUA_GCCOLLECT, 0);
    mmfs__pvm_reset(p->L, p);
    *out = p;
    return MMFS_OK;
}

void mmfs__pvm_free(mmfs__policy *p) {
    if (!p) return;
    if (p->L) lua_close(p->L);
    mmfs__pvm_free_schema(p);
    for (size_t i = 0; i < p->nnoindex; i++) free(p->noindex[i]);
    free(p->noindex);
    for (size_t i = 0; i < p->nttl; i++) free(p->ttl_route[i]);
    free(p->ttl_route);
    free(p->ttl);
    free(p->pend);
    free(p->buf);
    free(p);
}

int mmfs__pvm_route_indexed(const mmfs__policy *p, mmfs_slice route) {
    for (size_t i = 0; p && i < p->nnoindex; i++)
        if (strlen(p->noindex[i]) == route.len && memcmp(p->noindex[i], route.ptr, route.len) == 0) return 0;
    return 1;
}
