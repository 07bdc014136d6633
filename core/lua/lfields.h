/*
** lfields.h: Lua values <-> the session field encoding of memmapfs.h
** ('f' 't' 'i' 'd' 's' 'T'), and a session as a Lua table: the one codec
** of the Lua binding (bindings/lua/core.c) and of the policy VM
** (core/src/policy/value.c).  Glue over the public API: it includes only
** memmapfs.h and Lua's headers, and reads the encoding through
** mmfs_fields_next.  Written against lcompat.h, so it compiles for Lua
** 5.1, 5.2, 5.3, 5.4 and LuaJIT alike.
**
** A session table holds id, intent_id, created_at and payload (kept in
** the session's own slots) and any other field (kept in the encoded
** fields).  Numbers: an integer ('i') where the Lua has the subtype
** (5.3+), else an integral number in the int64 range; any other number is
** a float ('d').  Nesting is bounded by MMFS_FIELDS_MAXDEPTH, and a table met
** again on its own path is a cycle: both are refused with a message
** naming the field, as are functions, userdata, threads and table keys.
*/
#ifndef MMFS_LUA_LFIELDS_H
#define MMFS_LUA_LFIELDS_H

#include "memmapfs.h"
#include "lcompat.h"

/* A growable byte buffer (realloc/free; the owner frees BUF). */
typedef struct mmfs__lbuf {
    uint8_t *buf;
    size_t len, cap;
} mmfs__lbuf;

/* Called when the buffer cannot grow; must raise a Lua error.  NULL:
** luaL_error "not enough memory". */
typedef int (*mmfs__lf_nomem)(lua_State *L, void *ud);

/* Pushes a new table with session S: its decoded fields, then id,
** intent_id, created_at and payload.  Returns 1, or 0 when S's fields are
** malformed (the table is pushed without them). */
int mmfs__lf_push_session(lua_State *L, const mmfs_session *s);

/* Encodes the fields of the session table at IDX other than id,
** intent_id, created_at and payload into B (from B->len = 0); B->len is
** left 0 when there is no other field.  Raises "session field 'x': ..."
** for what the encoding cannot hold; NOMEM (with UD) when B cannot grow. */
void mmfs__lf_encode(lua_State *L, int idx, mmfs__lbuf *b, mmfs__lf_nomem nomem, void *ud);

/* 1 if the value at IDX is the string id, intent_id, created_at or
** payload. */
int mmfs__lf_is_reserved(lua_State *L, int idx);

#endif
