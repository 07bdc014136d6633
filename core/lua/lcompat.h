/*
** lcompat.h: every difference between Lua 5.1, LuaJIT 2.1, 5.2, 5.3 and
** 5.4 that the C code meeting a Lua meets, in one place: the session field
** codec (lfields.c) and the Lua binding (bindings/lua/compat.h adds what
** only the binding needs), built for every Lua; the policy VM uses the
** same helpers but is built for Lua 5.4 only (pvm.h).  They
** are written against the pc_* helpers below and the API the five share;
** each helper states its contract.
**
** What differs, and how it is bridged:
** - 5.1 (and LuaJIT) lack lua_rawlen, lua_absindex, luaL_setfuncs (LuaJIT
**   has some of them): pc_ names, so nothing clashes with a declaration.
** - 5.1/5.2 have no integer subtype: an integer is a lua_Number with an
**   integral value (exact up to 2^53; ids and times stay far below).
** - Loading text only: 5.2+ and LuaJIT take mode "t"; plain 5.1 cannot,
**   so the first byte is checked against the bytecode signature everywhere.
** - A protected call of a C function that may not allocate before it is
**   protected: lua_cpcall (5.1, LuaJIT) or a light C function (5.2+, whose
**   push allocates nothing).
** - Library openers: 5.1 registers globals itself, 5.2+ only returns the
**   module; pc_openlib leaves the module on the stack either way.
** - LuaJIT: <luajit.h> for luaJIT_setmode (the JIT is turned off for the
**   policy state so the count hook fires).  LuaJIT is recognised by its
**   luaconf.h (LUA_LJDIR), or by -DMMFS_LUAJIT=1.
*/
#ifndef MMFS_POLICY_LCOMPAT_H
#define MMFS_POLICY_LCOMPAT_H

#include <stdint.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#if defined(MMFS_LUAJIT) || defined(LUA_LJDIR) || defined(LUAJIT_VERSION)
#include <luajit.h>
#define PC_LUAJIT 1
#else
#define PC_LUAJIT 0
#endif

#ifndef LUA_OK
#define LUA_OK 0
#endif

/* Index I as an absolute index (pseudo-indices stay as they are). */
static inline int pc_absindex(lua_State *L, int i) {
    return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}

/* Raw length of the string or table at I. */
static inline size_t pc_rawlen(lua_State *L, int i) {
#if LUA_VERSION_NUM >= 502
    return (size_t)lua_rawlen(L, i);
#else
    return (size_t)lua_objlen(L, i);
#endif
}

/* Registers the functions of R into the table at the top, each with one
** upvalue: the light userdata UP. */
static inline void pc_setfuncs(lua_State *L, const luaL_Reg *r, void *up) {
    for (; r->name != NULL; r++) {
        lua_pushlightuserdata(L, up);
        lua_pushcclosure(L, r->func, 1);
        lua_setfield(L, -2, r->name);
    }
}

/* 1 if the value at I is a number with an exact int64 value: an integer,
** or a float with an integral value (1e6 and 2.0 count, 1.5 does not), on
** every version alike, as luaL_checkinteger of 5.3+ does.  Strings never. */
static inline int pc_isintegral(lua_State *L, int i) {
    lua_Number n;
    if (lua_type(L, i) != LUA_TNUMBER) return 0;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, i)) return 1;
#endif
    n = lua_tonumber(L, i);
    return n >= -9223372036854775808.0 && n < 9223372036854775808.0 && n == (lua_Number)(int64_t)n;
}

/* Whether the number at I is stored as an integer: decides the 'i' or 'd'
** of the session field encoding (before 5.3: any integral number). */
static inline int pc_isinttype(lua_State *L, int i) {
#if LUA_VERSION_NUM >= 503
    return lua_isinteger(L, i);
#else
    return pc_isintegral(L, i);
#endif
}

/* The value of the number at I that pc_isintegral accepted. */
static inline int64_t pc_toint64(lua_State *L, int i) {
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, i)) return (int64_t)lua_tointeger(L, i);
#endif
    return (int64_t)lua_tonumber(L, i);
}

static inline void pc_pushint64(lua_State *L, int64_t v) {
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(L, (lua_Integer)v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
}

/* Loads BUF (LEN bytes) as a text chunk named NAME; refuses bytecode.
** Returns a lua_load status; on failure the message is on the stack. */
static inline int pc_loadtext(lua_State *L, const char *buf, size_t len, const char *name) {
    if (len > 0 && buf[0] == LUA_SIGNATURE[0]) {
        lua_pushstring(L, "policy: binary chunks are not allowed");
        return LUA_ERRSYNTAX;
    }
#if LUA_VERSION_NUM >= 502 || PC_LUAJIT
    return luaL_loadbufferx(L, buf, len, name, "t");
#else
    return luaL_loadbuffer(L, buf, len, name);
#endif
}

/* Calls F(L) with UD as its only argument, protected, with nothing
** allocated before the protection starts.  Returns a lua_pcall status;
** on failure the error value is on the stack. */
static inline int pc_cpcall(lua_State *L, lua_CFunction f, void *ud) {
#if LUA_VERSION_NUM >= 502
    lua_pushcfunction(L, f); /* a light C function: no allocation */
    lua_pushlightuserdata(L, ud);
    return lua_pcall(L, 1, 0, 0);
#else
    return lua_cpcall(L, f, ud);
#endif
}

/* Opens library NAME with OPENF and leaves the module table on the stack
** (5.1 also sets the global NAME; the caller replaces or removes it). */
static inline void pc_openlib(lua_State *L, const char *name, lua_CFunction openf) {
    lua_pushcfunction(L, openf);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
}

/* Makes the table at ENV the environment of the function at the top. */
static inline void pc_setenv(lua_State *L, int env) {
    lua_pushvalue(L, env);
#if LUA_VERSION_NUM >= 502
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1); /* _ENV is a text chunk's first upvalue */
#else
    lua_setfenv(L, -2);
#endif
}

/* Pushes the global table. */
static inline void pc_pushglobals(lua_State *L) {
#if LUA_VERSION_NUM >= 502
    lua_pushglobaltable(L);
#else
    lua_pushvalue(L, LUA_GLOBALSINDEX);
#endif
}

#endif /* MMFS_POLICY_LCOMPAT_H */
