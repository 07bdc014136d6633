/*
** sandbox.c: the global table a policy sees (pvm.h).  Lua 5.4's base,
** string, table, math and utf8 libraries, os.time, os.clock and os.date;
** no io, os beyond those, require, package, debug, coroutine, print, or
** loading of binary chunks.  The functions that could do unbounded work
** in one VM instruction (string.rep, table.concat; the pattern functions
** in pattern.c) are wrapped to charge the budget and the memory limit.
**
** Invariant: nothing reachable from the sandbox can reach a host resource
** or run Lua code where the count hook is off (no __gc, xpcall handlers
** run after the unwinding).
*/
#include "pvm.h"

#include <limits.h>
#include <string.h>

/* load(chunk [, chunkname]): text chunks (strings) only. */
static int sb_load(lua_State *L) {
    size_t len;
    const char *s;
    if (lua_type(L, 1) != LUA_TSTRING) {
        lua_pushnil(L);
        lua_pushstring(L, "policy: load takes a string (text) chunk only");
        return 2;
    }
    s = lua_tolstring(L, 1, &len);
    if (pc_loadtext(L, s, len, luaL_optstring(L, 2, "=(load)")) != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (lua_istable(L, 4)) pc_setenv(L, 4); /* load(chunk, name, mode, env) */
    return 1;
}

/* collectgarbage("count") only. */
static int sb_collectgarbage(lua_State *L) {
    const char *opt = luaL_optstring(L, 1, "count");
    if (strcmp(opt, "count") != 0) return luaL_error(L, "policy: collectgarbage(\"%s\") is not allowed", opt);
    lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT, 0) + (lua_Number)lua_gc(L, LUA_GCCOUNTB, 0) / 1024);
    return 1;
}

/* setmetatable without __gc: finalizers run where no hook can stop them. */
static int sb_setmetatable(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushstring(L, "__gc");
        lua_rawget(L, 2);
        if (!lua_isnil(L, -1)) return luaL_error(L, "policy: __gc metamethods are not allowed");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* the original */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* xpcall(f, msgh, ...): the handler runs after the call has unwound.
** The stock xpcall runs it at the point of the error, and when the error
** comes from the count hook, hooks are still off there: a handler that
** loops would never be stopped. */
static int sb_xpcall(lua_State *L) {
    int n = lua_gettop(L), status;
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_checkstack(L, n + 2, "too many arguments");
    lua_pushvalue(L, 1);
    for (int i = 3; i <= n; i++) lua_pushvalue(L, i);
    status = lua_pcall(L, n - 2, LUA_MULTRET, 0);
    if (status == LUA_OK) {
        lua_pushboolean(L, 1);
        lua_insert(L, n + 1);
        return lua_gettop(L) - n;
    }
    lua_pushvalue(L, 2);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/* string.rep(s, n [, sep]) with its result bounded by the memory limit. */
static int sb_rep(lua_State *L) {
    mmfs__policy *p = lua_touserdata(L, lua_upvalueindex(1));
    size_t l, lsep = 0;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    luaL_Buffer b;
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    if ((uint64_t)n > (uint64_t)(SIZE_MAX / 2) / (l + lsep)) {
        p->over = PVM_OVER_MEM;
        p->what = "string.rep";
        return mmfs__pvm_raise_over(L, p);
    }
    mmfs__pvm_need(L, p, (size_t)n * (l + lsep) * 2, "string.rep"); /* the buffer and the string */
    mmfs__pvm_charge(L, p, (uint64_t)n / 64);
    luaL_buffinit(L, &b);
    for (lua_Integer i = 0; i < n; i++) {
        luaL_addlstring(&b, s, l);
        if (lsep && i + 1 < n) luaL_addlstring(&b, sep, lsep);
    }
    luaL_pushresult(&b);
    return 1;
}

/* table.concat, its result size checked against the memory limit first. */
static int sb_concat(lua_State *L) {
    mmfs__policy *p = lua_touserdata(L, lua_upvalueindex(2));
    size_t lsep = 0, total = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    lua_Integer j = lua_isnoneornil(L, 4) ? (lua_Integer)pc_rawlen(L, 1) : luaL_checkinteger(L, 4);
    for (lua_Integer k = i; k <= j && k <= INT_MAX; k++) {
        int ok;
        lua_rawgeti(L, 1, (int)k);
        ok = lua_isstring(L, -1);
        if (ok) total += pc_rawlen(L, -1) + lsep;
        lua_pop(L, 1);
        if (!ok || total > p->lim.mem_limit) break; /* the original raises for a hole */
        if (((k - i) & 15) == 15) mmfs__pvm_charge(L, p, 1);
    }
    mmfs__pvm_need(L, p, total, "table.concat");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* os.date with its format checked: older C libraries misbehave on unknown
** conversions, and 5.1 passes the format to strftime as it is. */
static int sb_date(lua_State *L) {
    const char *f = luaL_optstring(L, 1, "%c");
    for (const char *c = f; *c; c++) {
        if (*c != '%') continue;
        c++;
        if (*c == 'E' || *c == 'O') c++;
        if (!*c || !strchr("aAbBcCdDeFgGhHIjmMnprRStTuUVwWxXyYzZ%", *c))
            return luaL_error(L, "policy: os.date: invalid conversion in format '%s'", f);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Replaces field NAME of the table at the top with a closure of F whose
** upvalues are the original and then the policy. */
static void wrap(lua_State *L, mmfs__policy *p, const char *name, lua_CFunction f) {
    lua_getfield(L, -1, name);
    lua_pushlightuserdata(L, p);
    lua_pushcclosure(L, f, 2);
    lua_setfield(L, -2, name);
}

void mmfs__pvm_open_sandbox(lua_State *L, mmfs__policy *p) {
    static const char *const drop[] = {"dofile", "loadfile", "require", "module", "load", "loadstring", "print",
                                       "getfenv", "setfenv", "gcinfo", "newproxy", "coroutine", "package",
                                       "io", "os", "debug", "jit", "bit", "ffi", NULL};
    pc_openlib(L, "_G", luaopen_base);
    lua_pop(L, 1);
    pc_pushglobals(L);
    for (int i = 0; drop[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, drop[i]);
    }
    lua_pushcfunction(L, sb_load);
    lua_setfield(L, -2, "load");
    lua_pushcfunction(L, sb_collectgarbage);
    lua_setfield(L, -2, "collectgarbage");
    wrap(L, p, "setmetatable", sb_setmetatable);
    lua_pushcfunction(L, sb_xpcall);
    lua_setfield(L, -2, "xpcall");

    pc_openlib(L, "string", luaopen_string);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pushlightuserdata(L, p);
    lua_pushcclosure(L, sb_rep, 1);
    lua_setfield(L, -2, "rep");
    mmfs__pvm_open_patterns(L, p);
    lua_setfield(L, -2, "string");

    pc_openlib(L, "table", luaopen_table);
    wrap(L, p, "concat", sb_concat);
    lua_setfield(L, -2, "table");

    pc_openlib(L, "math", luaopen_math);
    lua_setfield(L, -2, "math");
    pc_openlib(L, "utf8", luaopen_utf8);
    lua_setfield(L, -2, "utf8");

    pc_openlib(L, "os", luaopen_os);
    lua_createtable(L, 0, 3);
    lua_getfield(L, -2, "time");
    lua_setfield(L, -2, "time");
    lua_getfield(L, -2, "clock");
    lua_setfield(L, -2, "clock");
    lua_getfield(L, -2, "date");
    lua_pushcclosure(L, sb_date, 1);
    lua_setfield(L, -2, "date");
    lua_setfield(L, -3, "os");
    lua_pop(L, 1); /* the full os library */
    lua_pop(L, 1); /* globals */

    /* The openers registered the full libraries in registry._LOADED;
    ** nothing in the sandbox reaches it, but drop what it should not hold. */
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    if (lua_istable(L, -1)) {
        for (int i = 0; drop[i]; i++) {
            lua_pushnil(L);
            lua_setfield(L, -2, drop[i]);
        }
    }
    lua_pop(L, 1);
}

