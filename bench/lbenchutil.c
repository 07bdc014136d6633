/*
** lbenchutil.c: the Lua 5.4 module "benchutil" the Lua benchmarks use for
** what plain Lua lacks: a monotonic wall clock, a thread CPU clock, resident-set figures, bytes
** on disk, rm -rf.  It wraps benchutil.c; it is not part of memmapfs.
**
**   benchutil.now()            seconds (monotonic, sub-microsecond)
**   benchutil.cpu_now()        CPU seconds of the calling thread (user + system)
**   benchutil.rss()            total, anon resident bytes
**   benchutil.peak_rss()       peak resident bytes
**   benchutil.disk_bytes(path) bytes allocated under path
**   benchutil.rmtree(path)
**   benchutil.consume(s)       a number derived from every 8 bytes of s
**   benchutil.random_keys(n, nkeys)  the C programs' random kv keys, as an array
*/
#include "benchutil.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>

static int l_now(lua_State *L) {
    lua_pushnumber(L, bu_now());
    return 1;
}

static int l_cpu_now(lua_State *L) {
    lua_pushnumber(L, bu_cpu_now());
    return 1;
}

static int l_rss(lua_State *L) {
    uint64_t total, anon;
    bu_rss(&total, &anon);
    lua_pushinteger(L, (lua_Integer)total);
    lua_pushinteger(L, (lua_Integer)anon);
    return 2;
}

static int l_peak_rss(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)bu_peak_rss());
    return 1;
}

static int l_disk_bytes(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)bu_disk_bytes(luaL_checkstring(L, 1), NULL));
    return 1;
}

static int l_rmtree(lua_State *L) {
    bu_rmtree(luaL_checkstring(L, 1));
    return 0;
}

static int l_consume(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_pushinteger(L, (lua_Integer)bu_consume(s, n));
    return 1;
}

static int l_random_keys(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1), nkeys = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0 && nkeys > 0, 1, "counts must be positive");
    char *keys = bu_random_keys((size_t)n, (long)nkeys);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 0; i < n; i++) {
        lua_pushlstring(L, keys + i * BU_KEYLEN, BU_KEYLEN);
        lua_rawseti(L, -2, i + 1);
    }
    free(keys);
    return 1;
}

int luaopen_benchutil(lua_State *L);

int luaopen_benchutil(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"now", l_now},         {"cpu_now", l_cpu_now}, {"rss", l_rss},       {"peak_rss", l_peak_rss},
        {"disk_bytes", l_disk_bytes}, {"rmtree", l_rmtree}, {"consume", l_consume},
        {"random_keys", l_random_keys},
        {NULL, NULL}};
#ifdef luaL_newlib
    luaL_newlib(L, fns);
#else /* LuaJIT, for W6 from a LuaJIT host */
    lua_newtable(L);
    luaL_register(L, NULL, fns);
#endif
    return 1;
}
