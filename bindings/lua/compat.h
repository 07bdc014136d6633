/*
** compat.h: what the binding needs beyond core/lua/lcompat.h (shared
** with the policy VM and the fields codec: absolute indices, integers,
** pc_* helpers) to bridge Lua 5.1 (and LuaJIT), 5.2, 5.3 and 5.4.  core.c
** is written against the 5.4 API plus the pc_* and compat_* helpers; each
** helper states its contract.
**
** What differs, and how it is bridged:
** - 5.1 lacks luaL_setfuncs, luaL_newlib, lua_rawlen, luaL_testudata,
**   lua_absindex: defined here, under compat_ (or lcompat.h's pc_) names
**   with macros (LuaJIT 2.1 declares some of them itself: the macros avoid
**   a clash).  LUA_OK comes from lcompat.h.
** - 5.1/5.2 have no integer subtype: integers travel as lua_Number, which
**   holds every integer up to 2^53 exactly (ids and times stay far below);
**   pc_isintegral, pc_toint64, pc_pushint64 (lcompat.h) bridge them.
** - User values: 5.4 has n of any type (lua_setiuservalue), 5.3 one of any
**   type, 5.2 one table, 5.1 an environment table.  compat_setuv and
**   compat_getuv keep one value per userdata on every version by wrapping
**   it in a one-slot table before 5.3.
** - __close (to-be-closed variables) exists only in 5.4; setting the field
**   elsewhere is harmless.
*/
#ifndef MMFS_LUA_COMPAT_H
#define MMFS_LUA_COMPAT_H

#include "lcompat.h"

/* ------------------------------------------------------------ Lua 5.1 */
#if LUA_VERSION_NUM < 502

#ifndef lua_rawlen
#define lua_rawlen(L, i) lua_objlen((L), (i))
#endif
#ifndef luaL_newlib /* LuaJIT 2.1 has these two */
#define luaL_newlibtable(L, l) lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
#define luaL_newlib(L, l) (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))
#endif

#define lua_absindex pc_absindex

/* Registers the functions of L into the table below NUP upvalues. */
#define luaL_setfuncs compat_setfuncs
static inline void compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}

/* The userdata at UD if its metatable is registry[TNAME], else NULL. */
#define luaL_testudata compat_testudata
static inline void *compat_testudata(lua_State *L, int ud, const char *tname) {
    void *p = lua_touserdata(L, ud);
    if (p != NULL && lua_getmetatable(L, ud)) {
        luaL_getmetatable(L, tname);
        if (!lua_rawequal(L, -1, -2)) p = NULL;
        lua_pop(L, 2);
        return p;
    }
    return NULL;
}

#endif /* < 5.2 */

/* ------------------------------------------------------------ integers */

/* The integer at I (raises like luaL_checkinteger when there is none). */
static inline int64_t compat_checkint64(lua_State *L, int i) {
#if LUA_VERSION_NUM >= 503
    return (int64_t)luaL_checkinteger(L, i);
#else
    lua_Number n = luaL_checknumber(L, i);
    if (!pc_isintegral(L, i))
        luaL_argerror(L, i, "number has no integer representation");
    return (int64_t)n;
#endif
}

/* ------------------------------------------------------- user values */

/* A new full userdata of SIZE bytes with room for one user value. */
static inline void *compat_newud(lua_State *L, size_t size) {
#if LUA_VERSION_NUM >= 504
    return lua_newuserdatauv(L, size, 1);
#else
    return lua_newuserdata(L, size);
#endif
}

/* Pops the value on top and makes it the user value of the userdata at UD. */
static inline void compat_setuv(lua_State *L, int ud) {
    ud = lua_absindex(L, ud);
#if LUA_VERSION_NUM >= 504
    lua_setiuservalue(L, ud, 1);
#elif LUA_VERSION_NUM == 503
    lua_setuservalue(L, ud);
#else
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
#if LUA_VERSION_NUM == 502
    lua_setuservalue(L, ud);
#else
    lua_setfenv(L, ud);
#endif
#endif
}

/* Pushes the user value of the userdata at UD (nil when none was set). */
static inline void compat_getuv(lua_State *L, int ud) {
    ud = lua_absindex(L, ud);
#if LUA_VERSION_NUM >= 504
    lua_getiuservalue(L, ud, 1);
#elif LUA_VERSION_NUM == 503
    lua_getuservalue(L, ud);
#else
#if LUA_VERSION_NUM == 502
    lua_getuservalue(L, ud);
#else
    lua_getfenv(L, ud);
#endif
    if (lua_istable(L, -1)) {
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    } else {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
#endif
}

#endif /* MMFS_LUA_COMPAT_H */
