/*
** core.c: the C module memmapfs.core, the Lua binding of memmapfs.h.
**
** lua/memmapfs/init.lua builds the public module over it (require
** "memmapfs"); this file owns the userdata types and their metatables:
**
**   "memmapfs.db"      a store handle              (ldb)
**   "memmapfs.reader"  a stream reader             (lchild, K_READER)
**   "memmapfs.sub"     a state subscription        (lchild, K_SUB)
**   "memmapfs.kviter"  a kv prefix iterator        (lchild, K_ITER)
**   "memmapfs.batch"   an open batch (the tx of db:batch)  (lbatch)
**
** Invariants:
** - A handle's C pointer is NULL once closed.  Closing is idempotent and
**   shared by close(), __gc and __close.  Methods on a closed handle return
**   nil, msg, "CLOSED"; wrong argument types raise (checked first).
** - Every child (reader, sub, iterator, batch) is linked into its db's
**   list while open and holds its db userdata as user value, so the db is
**   never collected before its children.  Closing the db closes its
**   children first (their C handles must not outlive the store), after
**   which they answer CLOSED.
** - While a batch is open on a db (in_batch), the db's own write methods
**   answer BUSY: inside db:batch(fn) writes go through the tx.
** - Failures return nil, message, CODE through push_fail (the library's
**   message and code) or push_err (the binding's own).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

#include "compat.h"
#include "lfields.h"
#include "memmapfs.h"

#define MT_DB "memmapfs.db"
#define MT_READER "memmapfs.reader"
#define MT_SUB "memmapfs.sub"
#define MT_ITER "memmapfs.kviter"
#define MT_BATCH "memmapfs.batch"

enum { K_READER, K_SUB, K_ITER, K_BATCH };

struct ldb;

typedef struct lchild {
    struct lchild *next, *prev; /* in owner->children */
    struct ldb *owner;          /* NULL once detached */
    int kind;
    void *h; /* mmfs_reader / mmfs_sub / mmfs_kv_iter / mmfs_batch; NULL once closed */
} lchild;

typedef struct ldb {
    mmfs_db *db;      /* NULL once closed */
    lchild *children; /* open readers, subs, iterators, batches */
    int in_batch;     /* a batch is open: direct writes are BUSY */
} ldb;

typedef struct lbatch {
    lchild c;        /* first: an lbatch is an lchild */
    size_t nmem;     /* append_memory commands so far */
    int failed;      /* a command failed: commit writes nothing */
    int code;        /* its status */
    char msg[256];   /* its message (the library's is per call) */
} lbatch;

/* ================================================================ errors */

/* Pushes nil, MSG, the name of CODE; returns 3. */
static int push_err(lua_State *L, const char *msg, int code) {
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, mmfs_err_name(code));
    return 3;
}

/* Pushes nil, the library's message for the failed call, its code name.
** DB may be NULL. */
static int push_fail(lua_State *L, mmfs_db *db, int code) {
    const char *msg = mmfs_errmsg(db);
    if (msg == NULL || *msg == '\0') msg = mmfs_strerror(code);
    return push_err(L, msg, code);
}

static int push_closed(lua_State *L, const char *what) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s is closed", what);
    lua_pushstring(L, mmfs_err_name(MMFS_CLOSED));
    return 3;
}

static int push_busy(lua_State *L) {
    return push_err(L,
                    "write to the store inside its own batch function "
                    "(write through the batch's tx object)",
                    MMFS_BUSY);
}

/* Raises "bad argument #N to 'NAME' (MSG)" for argument ARG of the running
** binding function, which carries its own NAME as upvalue 2 (new_type,
** luaopen_memmapfs_core): luaL_argerror finds the name in debug
** information, which LuaJIT loses in a tail call and every Lua loses in
** pcall(db.set_kv, db, ...), leaving '?'.  A method (upvalue 1 is its
** metatable) counts arguments after self, as db:set_kv(k, v) reads.
** Functions without the name (__gc, __tostring) fall back to luaL_argerror. */
static int arg_error(lua_State *L, int arg, const char *msg) {
    const char *name;
    if (lua_type(L, lua_upvalueindex(2)) != LUA_TSTRING) return luaL_argerror(L, arg, msg);
    name = lua_tostring(L, lua_upvalueindex(2));
    if (lua_type(L, lua_upvalueindex(1)) == LUA_TTABLE) {
        if (arg == 1) return luaL_error(L, "calling '%s' on bad self (%s)", name, msg);
        arg--;
    }
    return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, name, msg);
}

/* Raises a type error for argument ARG: "EXPECTED expected, got TYPE". */
static int type_error(lua_State *L, int arg, const char *expected) {
    const char *msg =
        lua_pushfstring(L, "%s expected, got %s", expected, luaL_typename(L, arg));
    return arg_error(L, arg, msg);
}

/* Raises for the value on top of the stack, field NAME of the table
** argument ARG. */
static int field_error(lua_State *L, int arg, const char *name, const char *expected) {
    const char *msg = lua_pushfstring(L, "field '%s': %s expected, got %s", name, expected,
                                      luaL_typename(L, -1));
    return arg_error(L, arg, msg);
}

/* ============================================================ arguments */

/* Argument ARG as bytes: a string, strictly (no number coercion: 1 and
** "1" are different keys to a binary store).  The slice stays valid while
** the argument is on the stack. */
static mmfs_slice check_bytes(lua_State *L, int arg) {
    mmfs_slice s;
    size_t n;
    if (lua_type(L, arg) != LUA_TSTRING) type_error(L, arg, "string");
    s.ptr = lua_tolstring(L, arg, &n);
    s.len = n;
    return s;
}

static mmfs_slice opt_bytes(lua_State *L, int arg) {
    mmfs_slice s = {"", 0};
    if (lua_isnoneornil(L, arg)) return s;
    return check_bytes(L, arg);
}

/* Argument ARG as a table of options, or absent/nil. */
static int check_opts(lua_State *L, int arg) {
    if (lua_isnoneornil(L, arg)) return 0;
    if (lua_type(L, arg) != LUA_TTABLE) type_error(L, arg, "table");
    return 1;
}

/* Pushes field NAME of the options table ARG (nil when there is no table)
** and returns its type.  The value stays on the stack: the caller leaves
** it there while it uses pointers into it. */
static int get_opt(lua_State *L, int arg, const char *name) {
    if (lua_isnoneornil(L, arg)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_getfield(L, arg, name);
    return lua_type(L, -1);
}

/* Option NAME of ARG as an integer: returns 1 and sets *out when present;
** raises on a non-integer. */
static int opt_int_field(lua_State *L, int arg, const char *name, int64_t *out) {
    if (get_opt(L, arg, name) == LUA_TNIL) return 0;
    if (!pc_isintegral(L, -1)) field_error(L, arg, name, "integer");
    *out = pc_toint64(L, -1);
    return 1;
}

static int opt_str_field(lua_State *L, int arg, const char *name, mmfs_slice *out) {
    size_t n;
    if (get_opt(L, arg, name) == LUA_TNIL) return 0;
    if (lua_type(L, -1) != LUA_TSTRING) field_error(L, arg, name, "string");
    out->ptr = lua_tolstring(L, -1, &n);
    out->len = n;
    return 1;
}

static int opt_bool_field(lua_State *L, int arg, const char *name, int *out) {
    if (get_opt(L, arg, name) == LUA_TNIL) return 0;
    if (lua_type(L, -1) != LUA_TBOOLEAN) field_error(L, arg, name, "boolean");
    *out = lua_toboolean(L, -1);
    return 1;
}

/* The array of strings at stack index IDX (absolute) as slices, in a new
** userdata pushed on the stack (collected with it: no leak when a later
** check raises).  ARG and NAME name it in errors. */
static const mmfs_slice *check_strings(lua_State *L, int idx, int arg, const char *name,
                                       size_t *count) {
    size_t i, n = (size_t)lua_rawlen(L, idx);
    mmfs_slice *v = (mmfs_slice *)lua_newuserdata(L, (n ? n : 1) * sizeof *v);
    for (i = 0; i < n; i++) {
        size_t len;
        lua_rawgeti(L, idx, (lua_Integer)(i + 1));
        if (lua_type(L, -1) != LUA_TSTRING) {
            const char *msg =
                lua_pushfstring(L, "%s[%d]: string expected, got %s", name, (int)(i + 1),
                                luaL_typename(L, -1));
            arg_error(L, arg, msg);
        }
        v[i].ptr = lua_tolstring(L, -1, &len);
        v[i].len = len;
        lua_pop(L, 1); /* the array keeps the string alive */
    }
    *count = n;
    return v;
}

/* Argument ARG as an integer, strictly: a number with an integer value
** (a numeric string such as "1" raises, as a number would for a key). */
static int64_t check_int(lua_State *L, int arg) {
    if (lua_type(L, arg) != LUA_TNUMBER) type_error(L, arg, "integer");
    if (!pc_isintegral(L, arg)) arg_error(L, arg, "number has no integer representation");
    return pc_toint64(L, arg);
}

/* Argument ARG: an id (non-negative integer); *ok = 0 for a negative one,
** which names nothing. */
static uint64_t check_id(lua_State *L, int arg, int *ok) {
    int64_t v = check_int(L, arg);
    *ok = v >= 0;
    return (uint64_t)v;
}

/* Optional limit argument: nil = 0 (the library's default).  Returns 0 and
** leaves INVALID on the stack for a negative one. */
static int opt_limit(lua_State *L, int arg, size_t *out) {
    int64_t v;
    *out = 0;
    if (lua_isnoneornil(L, arg)) return 1;
    v = check_int(L, arg);
    if (v < 0) {
        push_err(L, "limit must not be negative", MMFS_INVALID);
        return 0;
    }
    *out = (size_t)v;
    return 1;
}

/* ============================================================ handles */

/* The userdata at I of metatable MT, or an argument error naming the
** method (arg_error). */
static void *check_udata(lua_State *L, int i, const char *mt) {
    void *p = luaL_testudata(L, i, mt);
    if (p == NULL) {
        const char *msg = lua_pushfstring(L, "%s expected, got %s", mt, luaL_typename(L, i));
        arg_error(L, i, msg);
    }
    return p;
}

/* The store handle at I.  Methods carry their type's metatable as upvalue
** 1 (new_type), so the common case is one pointer comparison instead of a
** registry lookup by name; anything else takes check_udata's path, which
** also raises the argument error. */
static ldb *check_db(lua_State *L, int i) {
    void *p = lua_touserdata(L, i);
    if (p && lua_getmetatable(L, i)) {
        int same = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
        if (same) return (ldb *)p;
    }
    return (ldb *)check_udata(L, i, MT_DB);
}

static void child_link(ldb *d, lchild *c) {
    c->owner = d;
    c->prev = NULL;
    c->next = d->children;
    if (d->children) d->children->prev = c;
    d->children = c;
}

static void child_unlink(lchild *c) {
    ldb *d = c->owner;
    if (d == NULL) return;
    if (c->prev)
        c->prev->next = c->next;
    else
        d->children = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
    c->owner = NULL;
}

/* Closes a child's C handle (an open batch is aborted: nothing written)
** and detaches it from its db.  Idempotent. */
static void child_close(lchild *c) {
    void *h = c->h;
    if (c->kind == K_BATCH && c->owner && h) c->owner->in_batch = 0;
    child_unlink(c);
    c->h = NULL;
    if (h == NULL) return;
    switch (c->kind) {
    case K_READER: mmfs_reader_close((mmfs_reader *)h); break;
    case K_SUB: mmfs_sub_close((mmfs_sub *)h); break;
    case K_ITER: mmfs_kv_iter_close((mmfs_kv_iter *)h); break;
    case K_BATCH: mmfs_batch_abort((mmfs_batch *)h); break;
    default: break;
    }
}

/* Closes the store and, first, every child.  Idempotent; returns the
** status of mmfs_close (the handle is gone either way). */
static int db_close(ldb *d) {
    mmfs_db *db = d->db;
    while (d->children) child_close(d->children);
    d->in_batch = 0;
    d->db = NULL;
    return db ? mmfs_close(db) : MMFS_OK;
}

/* A new child userdata of SIZE bytes and metatable MT for the db at
** stack index 1, linked to it and holding it as user value.  Its handle
** is NULL until the caller opens it. */
static lchild *new_child(lua_State *L, size_t size, const char *mt, int kind) {
    lchild *c = (lchild *)compat_newud(L, size);
    memset(c, 0, size);
    c->kind = kind;
    luaL_getmetatable(L, mt);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, 1);
    compat_setuv(L, -2);
    return c;
}

/* Argument 1 as the child of metatable MT. */
static lchild *check_child(lua_State *L, const char *mt) {
    return (lchild *)check_udata(L, 1, mt);
}

static mmfs_db *child_db(const lchild *c) { return c->owner ? c->owner->db : NULL; }

/* ======================================================= session values */

/* The session field codec is core/lua/lfields.c, shared with the
** policy VM.  Its buffer lives in a userdata whose __gc frees it, so an
** error raised while encoding leaks nothing. */
#define MT_FIELDBUF "memmapfs.fieldbuf"

static int fieldbuf_gc(lua_State *L) {
    mmfs__lbuf *b = (mmfs__lbuf *)luaL_checkudata(L, 1, MT_FIELDBUF);
    free(b->buf);
    b->buf = NULL;
    return 0;
}

/* Pushes a new, empty field buffer. */
static mmfs__lbuf *push_fieldbuf(lua_State *L) {
    mmfs__lbuf *b = (mmfs__lbuf *)lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    if (luaL_newmetatable(L, MT_FIELDBUF)) {
        lua_pushcfunction(L, fieldbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return b;
}

/* Fills *S from the session table at ARG; raises for a wrong type.  Leaves
** on the stack what S points into (the encoded fields userdata, strings). */
static void check_session(lua_State *L, int arg, mmfs_session *s) {
    int64_t created_at;
    mmfs__lbuf *b;
    memset(s, 0, sizeof *s);
    if (lua_type(L, arg) != LUA_TTABLE) type_error(L, arg, "table");
    arg = lua_absindex(L, arg);
    luaL_checkstack(L, 8, NULL);
    if (!opt_str_field(L, arg, "id", &s->id)) field_error(L, arg, "id", "string");
    s->has_intent = opt_str_field(L, arg, "intent_id", &s->intent_id);
    s->has_payload = opt_str_field(L, arg, "payload", &s->payload);
    s->has_created_at = 1;
    s->created_at = opt_int_field(L, arg, "created_at", &created_at) ? created_at
                                                                      : (int64_t)time(NULL);
    b = push_fieldbuf(L);
    mmfs__lf_encode(L, arg, b, NULL, NULL);
    if (b->len > 0) { /* some field besides the four */
        s->fields.ptr = b->buf;
        s->fields.len = b->len;
    }
}

/* Pushes session S as one table: its fields, then the four it holds apart
** (fields that do not decode are left out). */
static void push_session(lua_State *L, const mmfs_session *s) { (void)mmfs__lf_push_session(L, s); }

static void push_sessions(lua_State *L, const mmfs_sessions *list) {
    size_t i;
    lua_createtable(L, list ? (int)list->count : 0, 0);
    for (i = 0; list && i < list->count; i++) {
        push_session(L, &list->items[i]);
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
}

/* ============================================================ memories */

static void push_slice(lua_State *L, mmfs_slice s) {
    lua_pushlstring(L, s.ptr ? (const char *)s.ptr : "", s.len);
}

static void push_memory(lua_State *L, const mmfs_memory *m, int with_score) {
    size_t i;
    lua_createtable(L, 0, 6);
    pc_pushint64(L, (int64_t)m->id);
    lua_setfield(L, -2, "id");
    push_slice(L, m->text);
    lua_setfield(L, -2, "text");
    lua_createtable(L, (int)m->ntags, 0);
    for (i = 0; i < m->ntags; i++) {
        push_slice(L, m->tags[i]);
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
    lua_setfield(L, -2, "tags");
    pc_pushint64(L, m->created_at);
    lua_setfield(L, -2, "created_at");
    push_slice(L, m->route);
    lua_setfield(L, -2, "route");
    if (with_score) {
        lua_pushnumber(L, (lua_Number)m->score);
        lua_setfield(L, -2, "score");
    }
}

static void push_memories(lua_State *L, const mmfs_memories *list, int with_score) {
    size_t i;
    lua_createtable(L, list ? (int)list->count : 0, 0);
    for (i = 0; list && i < list->count; i++) {
        push_memory(L, &list->items[i], with_score);
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
}

/* Does the options table at ARG hold only keys of KNOWN?  If not, pushes
** nil, "WHAT: unknown option 'key'", "INVALID" and returns 0: a misspelt
** option ({ limt = 5 }) must not pass unnoticed. */
static int check_keys(lua_State *L, int arg, const char *const *known, const char *what) {
    if (lua_isnoneornil(L, arg)) return 1;
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        int i, found = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            /* compared with their lengths: "limit\0x" is not "limit" */
            size_t klen;
            const char *k = lua_tolstring(L, -1, &klen);
            for (i = 0; known[i] && !found; i++)
                found = klen == strlen(known[i]) && !memcmp(k, known[i], klen);
        }
        if (!found) { /* nil, "WHAT: unknown option 'key'" (the key whole), "INVALID" */
            int key = lua_gettop(L);
            lua_pushnil(L);
            lua_pushfstring(L, "%s: unknown option '", what);
            if (lua_type(L, key) == LUA_TSTRING)
                lua_pushvalue(L, key);
            else
                lua_pushstring(L, luaL_typename(L, key));
            lua_pushliteral(L, "'");
            lua_concat(L, 3);
            lua_pushstring(L, mmfs_err_name(MMFS_INVALID));
            return 0;
        }
    }
    return 1;
}

/* Memory options at ARG: created_at, route.  Returns 0 (results pushed)
** for an unknown key. */
static int check_memory_opts(lua_State *L, int arg, mmfs_memory_opts *o) {
    static const char *const known[] = {"created_at", "route", NULL};
    memset(o, 0, sizeof *o);
    if (!check_opts(L, arg)) return 1;
    o->has_created_at = opt_int_field(L, arg, "created_at", &o->created_at);
    opt_str_field(L, arg, "route", &o->route);
    return check_keys(L, arg, known, "append_memory");
}

/* Search/list filter at ARG.  Raises for wrong types; returns 0 and pushes
** INVALID for a bad value. */
static int check_filter(lua_State *L, int arg, mmfs_filter *f, int with_offset) {
    static const char *const search_keys[] = {"limit", "route", "tags", "tags_any", "since",
                                              "before", "snippet", NULL};
    static const char *const list_keys[] = {"limit", "offset", "route", "tags", "tags_any",
                                            "since", "before", NULL};
    int64_t v;
    memset(f, 0, sizeof *f);
    if (!check_opts(L, arg)) return 1;
    luaL_checkstack(L, 12, NULL);
    if (opt_int_field(L, arg, "limit", &v)) {
        if (v < 0) return push_err(L, "limit must not be negative", MMFS_INVALID), 0;
        f->limit = (size_t)v;
    }
    if (with_offset && opt_int_field(L, arg, "offset", &v)) {
        if (v < 0) return push_err(L, "offset must not be negative", MMFS_INVALID), 0;
        f->offset = (size_t)v;
    }
    opt_str_field(L, arg, "route", &f->route);
    if (get_opt(L, arg, "tags") != LUA_TNIL) {
        if (!lua_istable(L, -1)) field_error(L, arg, "tags", "table");
        f->tags = check_strings(L, lua_gettop(L), arg, "tags", &f->ntags);
    }
    if (get_opt(L, arg, "tags_any") != LUA_TNIL) {
        if (!lua_istable(L, -1)) field_error(L, arg, "tags_any", "table");
        f->tags_any = check_strings(L, lua_gettop(L), arg, "tags_any", &f->ntags_any);
    }
    f->has_since = opt_int_field(L, arg, "since", &f->since);
    f->has_before = opt_int_field(L, arg, "before", &f->before);
    return with_offset ? check_keys(L, arg, list_keys, "list_memories")
                       : check_keys(L, arg, search_keys, "search_memory");
}

/* Returns nonzero (results pushed) when D cannot take a write now. */
static int write_refused(lua_State *L, ldb *d) {
    if (d->db == NULL) return push_closed(L, "store");
    if (d->in_batch) return push_busy(L);
    return 0;
}

#define CHECK_OPEN(L, d)                                                      \
    do {                                                                      \
        if ((d)->db == NULL) return push_closed((L), "store");                \
    } while (0)

#define CHECK_WRITE(L, d)                                                     \
    do {                                                                      \
        int n_ = write_refused((L), (d));                                     \
        if (n_) return n_;                                                    \
    } while (0)

/* db:append_memory(text, tags [, opts]) --> id */
static int l_append_memory(lua_State *L) {
    lua_settop(L, 4); /* absent optional arguments = nil; what we push goes above */
    ldb *d = check_db(L, 1);
    mmfs_slice text = check_bytes(L, 2);
    const mmfs_slice *tags = NULL;
    size_t ntags = 0;
    mmfs_memory_opts o;
    uint64_t id = 0;
    int rc;
    if (!lua_isnoneornil(L, 3)) {
        if (!lua_istable(L, 3)) type_error(L, 3, "table");
        tags = check_strings(L, 3, 3, "tags", &ntags);
    }
    if (!check_memory_opts(L, 4, &o)) return 3;
    CHECK_WRITE(L, d);
    rc = mmfs_append_memory(d->db, text, tags, ntags, &o, &id);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    pc_pushint64(L, (int64_t)id);
    return 1;
}

/* db:get_memory(id) --> memory or nil */
static int l_get_memory(lua_State *L) {
    ldb *d = check_db(L, 1);
    int ok, rc;
    uint64_t id = check_id(L, 2, &ok);
    mmfs_memory *m = NULL;
    CHECK_OPEN(L, d);
    if (!ok) return lua_pushnil(L), 1;
    rc = mmfs_get_memory(d->db, id, &m);
    if (rc == MMFS_NOTFOUND) return lua_pushnil(L), 1;
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    push_memory(L, m, 0);
    mmfs_free(m);
    return 1;
}

/* The snippet option of search_memory at ARG: true, or { mark = { open,
** close }, bytes = n }.  Returns 1 (*want set) or 0 with an error pushed;
** raises for wrong types. */
static int check_snippet(lua_State *L, int arg, int *want, mmfs_snippet_opts *o) {
    static const char *const known[] = {"mark", "bytes", NULL};
    int t, sn;
    luaL_checkstack(L, 8, NULL);
    t = get_opt(L, arg, "snippet");
    sn = lua_gettop(L);
    int64_t v;
    memset(o, 0, sizeof *o);
    *want = 0;
    if (t == LUA_TNIL) return 1;
    if (t == LUA_TBOOLEAN) {
        *want = lua_toboolean(L, -1);
        return 1;
    }
    if (t != LUA_TTABLE) field_error(L, arg, "snippet", "boolean or table");
    *want = 1;
    if (get_opt(L, sn, "bytes") != LUA_TNIL) {
        /* errors name the argument and the field, not the stack slot */
        if (!pc_isintegral(L, -1)) field_error(L, arg, "snippet.bytes", "integer");
        v = pc_toint64(L, -1);
        if (v <= 0) return push_err(L, "snippet: bytes must be positive", MMFS_INVALID), 0;
        o->bytes = (size_t)v;
    }
    if (get_opt(L, sn, "mark") != LUA_TNIL) {
        size_t n;
        const mmfs_slice *m;
        if (!lua_istable(L, -1)) field_error(L, arg, "snippet.mark", "table");
        m = check_strings(L, lua_gettop(L), arg, "snippet.mark", &n);
        if (n != 2) return push_err(L, "snippet: mark must hold two strings", MMFS_INVALID), 0;
        o->has_marks = 1;
        o->mark_open = m[0];
        o->mark_close = m[1];
    }
    return check_keys(L, sn, known, "search_memory: snippet");
}

/* db:search_memory(query [, opts]) --> hits */
static int l_search_memory(lua_State *L) {
    lua_settop(L, 3); /* absent optional arguments = nil; what we push goes above */
    ldb *d = check_db(L, 1);
    mmfs_slice q = check_bytes(L, 2);
    mmfs_filter f;
    mmfs_snippet_opts so;
    mmfs_memories *list = NULL;
    size_t i;
    int rc, snip;
    if (!check_filter(L, 3, &f, 0)) return 3;
    if (!check_snippet(L, 3, &snip, &so)) return 3;
    CHECK_OPEN(L, d);
    rc = mmfs_search_memory(d->db, q, &f, &list);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    push_memories(L, list, 1);
    for (i = 0; snip && i < list->count; i++) {
        char *s = NULL;
        size_t n = 0;
        rc = mmfs_snippet(d->db, q, list->items[i].text, &so, &s, &n);
        if (rc != MMFS_OK) {
            mmfs_free(list);
            return push_fail(L, d->db, rc);
        }
        lua_rawgeti(L, -1, (lua_Integer)(i + 1));
        lua_pushlstring(L, s, n);
        mmfs_free(s);
        lua_setfield(L, -2, "snippet");
        lua_pop(L, 1);
    }
    mmfs_free(list);
    return 1;
}

/* db:list_memories([opts]) --> memories, newest first */
static int l_list_memories(lua_State *L) {
    lua_settop(L, 2); /* absent optional arguments = nil; what we push goes above */
    ldb *d = check_db(L, 1);
    mmfs_filter f;
    mmfs_memories *list = NULL;
    int rc;
    if (!check_filter(L, 2, &f, 1)) return 3;
    CHECK_OPEN(L, d);
    rc = mmfs_list_memories(d->db, &f, &list);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    push_memories(L, list, 0);
    mmfs_free(list);
    return 1;
}

/* db:delete_memory(id) --> true if it existed, false if not */
static int l_delete_memory(lua_State *L) {
    ldb *d = check_db(L, 1);
    int ok, rc, deleted = 0;
    uint64_t id = check_id(L, 2, &ok);
    CHECK_WRITE(L, d);
    if (!ok) return lua_pushboolean(L, 0), 1;
    rc = mmfs_delete_memory(d->db, id, &deleted);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_pushboolean(L, deleted);
    return 1;
}

/* ============================================================ key-value */

static int l_set_kv(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice k = check_bytes(L, 2), v = check_bytes(L, 3);
    int rc;
    CHECK_WRITE(L, d);
    rc = mmfs_set_kv(d->db, k, v);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_get_kv(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice k = check_bytes(L, 2), v;
    int rc;
    CHECK_OPEN(L, d);
    rc = mmfs_get_kv(d->db, k, &v);
    if (rc == MMFS_NOTFOUND) return lua_pushnil(L), 1;
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    push_slice(L, v);
    return 1;
}

static int l_delete_kv(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice k = check_bytes(L, 2);
    int rc, deleted = 0;
    CHECK_WRITE(L, d);
    rc = mmfs_delete_kv(d->db, k, &deleted);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_pushboolean(L, deleted);
    return 1;
}

/* db:_kv_iter([prefix]) --> iterator (init.lua's scan_kv wraps it) */
static int l_kv_iter(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice prefix = opt_bytes(L, 2);
    mmfs_kv_iter *it = NULL;
    lchild *c;
    int rc;
    CHECK_OPEN(L, d);
    c = new_child(L, sizeof(lchild), MT_ITER, K_ITER);
    rc = mmfs_kv_iter_open(d->db, prefix, &it);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    c->h = it;
    child_link(d, c);
    return 1;
}

/* it:next() --> key, value; nil at the end (which closes it) */
static int l_iter_next(lua_State *L) {
    lchild *c = check_child(L, MT_ITER);
    mmfs_slice k, v;
    int rc;
    if (c->h == NULL) return push_closed(L, "iterator");
    rc = mmfs_kv_iter_next((mmfs_kv_iter *)c->h, &k, &v);
    if (rc == MMFS_NOTFOUND) {
        child_close(c);
        return lua_pushnil(L), 1;
    }
    if (rc != MMFS_OK) return push_fail(L, child_db(c), rc);
    push_slice(L, k);
    push_slice(L, v);
    return 2;
}

/* ============================================================ sessions */

static int l_put_session(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_session s;
    int rc;
    check_session(L, 2, &s);
    CHECK_WRITE(L, d);
    rc = mmfs_put_session(d->db, &s);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_get_session(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice id = check_bytes(L, 2);
    mmfs_session s;
    int rc;
    CHECK_OPEN(L, d);
    rc = mmfs_get_session(d->db, id, &s);
    if (rc == MMFS_NOTFOUND) return lua_pushnil(L), 1;
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    push_session(L, &s);
    return 1;
}

static int l_delete_session(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice id = check_bytes(L, 2);
    int rc, deleted = 0;
    CHECK_WRITE(L, d);
    rc = mmfs_delete_session(d->db, id, &deleted);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_pushboolean(L, deleted);
    return 1;
}

/* db:list_sessions([limit]) */
static int l_list_sessions(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_sessions *list = NULL;
    size_t limit;
    int rc;
    if (!opt_limit(L, 2, &limit)) return 3;
    CHECK_OPEN(L, d);
    rc = mmfs_list_sessions(d->db, limit, &list);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    push_sessions(L, list);
    mmfs_free(list);
    return 1;
}

/* db:list_by_intent(intent_id [, limit]) */
static int l_list_by_intent(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice intent = check_bytes(L, 2);
    mmfs_sessions *list = NULL;
    size_t limit;
    int rc;
    if (!opt_limit(L, 3, &limit)) return 3;
    CHECK_OPEN(L, d);
    rc = mmfs_list_by_intent(d->db, intent, limit, &list);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    push_sessions(L, list);
    mmfs_free(list);
    return 1;
}

/* ============================================================= streams */

static int l_append_stream(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice k = check_bytes(L, 2), b = check_bytes(L, 3);
    int rc;
    CHECK_WRITE(L, d);
    rc = mmfs_append_stream(d->db, k, b);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_stream_size(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice k = check_bytes(L, 2);
    uint64_t size = 0;
    int rc;
    CHECK_OPEN(L, d);
    rc = mmfs_stream_size(d->db, k, &size);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    pc_pushint64(L, (int64_t)size);
    return 1;
}

/* db:open_read(key) --> reader, or nil, msg, "NOTFOUND" */
static int l_open_read(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice k = check_bytes(L, 2);
    mmfs_reader *r = NULL;
    lchild *c;
    int rc;
    CHECK_OPEN(L, d);
    c = new_child(L, sizeof(lchild), MT_READER, K_READER);
    rc = mmfs_open_read(d->db, k, &r);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    c->h = r;
    child_link(d, c);
    return 1;
}

/* Reads up to N bytes (N > 0) and pushes them; *got: bytes read. */
static int read_n(lua_State *L, mmfs_reader *r, uint64_t n, size_t *got) {
    luaL_Buffer b;
    int rc = MMFS_OK;
    *got = 0;
    luaL_buffinit(L, &b);
    while (n > 0) {
        mmfs_slice chunk;
        size_t take;
        rc = mmfs_reader_peek(r, &chunk);
        if (rc != MMFS_OK || chunk.len == 0) break;
        take = chunk.len < n ? chunk.len : (size_t)n;
        luaL_addlstring(&b, (const char *)chunk.ptr, take);
        rc = mmfs_reader_skip(r, take);
        if (rc != MMFS_OK) break;
        *got += take;
        n -= take;
    }
    luaL_pushresult(&b);
    return rc;
}

/* Reads a line and pushes it (with its newline when KEEP); *ok = 0 at the
** end of the stream. */
static int read_line(lua_State *L, mmfs_reader *r, int keep, int *ok) {
    luaL_Buffer b;
    int rc = MMFS_OK;
    *ok = 0;
    luaL_buffinit(L, &b);
    for (;;) {
        mmfs_slice chunk;
        const char *nl;
        size_t take;
        rc = mmfs_reader_peek(r, &chunk);
        if (rc != MMFS_OK || chunk.len == 0) break;
        nl = (const char *)memchr(chunk.ptr, '\n', chunk.len);
        take = nl ? (size_t)(nl - (const char *)chunk.ptr) : chunk.len;
        luaL_addlstring(&b, (const char *)chunk.ptr, take + (nl && keep ? 1 : 0));
        *ok = 1;
        rc = mmfs_reader_skip(r, take + (nl ? 1 : 0));
        if (rc != MMFS_OK || nl) break;
    }
    luaL_pushresult(&b);
    return rc;
}

/* r:read(...) --> like file:read with formats n, "a", "l", "L" ("*a" too);
** nil at the end of the stream; nil, msg, code on failure. */
static int l_reader_read(lua_State *L) {
    lchild *c = check_child(L, MT_READER);
    mmfs_reader *r = (mmfs_reader *)c->h;
    int nargs = lua_gettop(L) - 1, first = 2, i, rc = MMFS_OK;
    if (nargs == 0) { /* like io: the default is a line */
        lua_pushliteral(L, "l");
        nargs = 1;
    }
    for (i = first; i < first + nargs; i++) /* check every format first */
        if (lua_type(L, i) == LUA_TNUMBER) {
            if (check_int(L, i) < 0) arg_error(L, i, "negative count");
        } else {
            const char *f;
            if (lua_type(L, i) != LUA_TSTRING) type_error(L, i, "string or integer");
            f = lua_tostring(L, i);
            if (*f == '*') f++;
            if (*f != 'a' && *f != 'l' && *f != 'L') arg_error(L, i, "invalid format");
        }
    if (r == NULL) return push_closed(L, "reader");
    luaL_checkstack(L, nargs + LUA_MINSTACK, "too many formats");
    for (i = first; i < first + nargs; i++) {
        int ok = 1;
        if (lua_type(L, i) == LUA_TNUMBER) {
            int64_t n = pc_toint64(L, i);
            size_t got = 0;
            if (n == 0) {
                mmfs_slice chunk;
                rc = mmfs_reader_peek(r, &chunk);
                lua_pushliteral(L, "");
                ok = chunk.len > 0;
            } else {
                rc = read_n(L, r, (uint64_t)n, &got);
                ok = got > 0;
            }
        } else {
            const char *f = lua_tostring(L, i);
            size_t got;
            if (*f == '*') f++;
            if (*f == 'a')
                rc = read_n(L, r, UINT64_MAX, &got);
            else
                rc = read_line(L, r, *f == 'L', &ok);
        }
        if (rc != MMFS_OK) return push_fail(L, child_db(c), rc);
        if (!ok) {
            lua_pop(L, 1);
            lua_pushnil(L);
            return i - first + 1;
        }
    }
    return nargs;
}

/* r:seek(offset) --> the new position */
static int l_reader_seek(lua_State *L) {
    lchild *c = check_child(L, MT_READER);
    int64_t off = check_int(L, 2);
    int rc;
    if (c->h == NULL) return push_closed(L, "reader");
    if (off < 0) return push_err(L, "seek: negative offset", MMFS_INVALID);
    rc = mmfs_reader_seek((mmfs_reader *)c->h, (uint64_t)off);
    if (rc != MMFS_OK) return push_fail(L, child_db(c), rc);
    pc_pushint64(L, (int64_t)mmfs_reader_tell((mmfs_reader *)c->h));
    return 1;
}

static int l_reader_tell(lua_State *L) {
    lchild *c = check_child(L, MT_READER);
    if (c->h == NULL) return push_closed(L, "reader");
    pc_pushint64(L, (int64_t)mmfs_reader_tell((mmfs_reader *)c->h));
    return 1;
}

static int l_reader_size(lua_State *L) {
    lchild *c = check_child(L, MT_READER);
    if (c->h == NULL) return push_closed(L, "reader");
    pc_pushint64(L, (int64_t)mmfs_reader_size((mmfs_reader *)c->h));
    return 1;
}

/* =========================================================== documents */

static int l_index(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice k = check_bytes(L, 2), text = check_bytes(L, 3);
    int rc;
    CHECK_WRITE(L, d);
    rc = mmfs_index(d->db, k, text);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_unindex(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice k = check_bytes(L, 2);
    int rc, deleted = 0;
    CHECK_WRITE(L, d);
    rc = mmfs_unindex(d->db, k, &deleted);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_pushboolean(L, deleted);
    return 1;
}

/* db:search(query [, limit]) --> { {key=, score=}, ... } */
static int l_search(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice q = check_bytes(L, 2);
    mmfs_doc_hits *hits = NULL;
    size_t limit, i;
    int rc;
    if (lua_istable(L, 3)) { /* { limit = n } */
        static const char *const known[] = {"limit", NULL};
        if (!check_keys(L, 3, known, "search")) return 3;
        get_opt(L, 3, "limit");
        lua_replace(L, 3);
    }
    if (!opt_limit(L, 3, &limit)) return 3;
    CHECK_OPEN(L, d);
    rc = mmfs_search(d->db, q, limit, &hits);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_createtable(L, hits ? (int)hits->count : 0, 0);
    for (i = 0; hits && i < hits->count; i++) {
        lua_createtable(L, 0, 2);
        push_slice(L, hits->items[i].key);
        lua_setfield(L, -2, "key");
        lua_pushnumber(L, (lua_Number)hits->items[i].score);
        lua_setfield(L, -2, "score");
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
    mmfs_free(hits);
    return 1;
}

/* =============================================================== state */

static int l_update_state(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice v = check_bytes(L, 2);
    uint64_t version = 0;
    int rc;
    CHECK_WRITE(L, d);
    rc = mmfs_update_state(d->db, v, &version);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    pc_pushint64(L, (int64_t)version);
    return 1;
}

/* db:set_policy(source | nil) --> true: installs (or with nil removes) the
** store's policy; INVALID when it does not compile (the message names the
** line). */
static int l_set_policy(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice src = {"", 0};
    int rc;
    if (!lua_isnoneornil(L, 2)) src = check_bytes(L, 2);
    CHECK_WRITE(L, d);
    rc = mmfs_set_policy(d->db, src);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* db:get_policy() --> source, or nil when the store has none */
static int l_get_policy(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice src;
    int rc;
    CHECK_OPEN(L, d);
    rc = mmfs_get_policy(d->db, &src);
    if (rc == MMFS_NOTFOUND) {
        lua_pushnil(L);
        return 1;
    }
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    push_slice(L, src);
    return 1;
}

/* db:get_state() --> value, version (nil, 0 before the first update) */
static int l_get_state(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_slice v;
    uint64_t version = 0;
    int rc;
    CHECK_OPEN(L, d);
    rc = mmfs_get_state(d->db, &v, &version);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    if (version == 0)
        lua_pushnil(L);
    else
        push_slice(L, v);
    pc_pushint64(L, (int64_t)version);
    return 2;
}

static int l_subscribe_state(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_sub *s = NULL;
    lchild *c;
    int rc;
    CHECK_OPEN(L, d);
    c = new_child(L, sizeof(lchild), MT_SUB, K_SUB);
    rc = mmfs_subscribe_state(d->db, &s);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    c->h = s;
    child_link(d, c);
    return 1;
}

/* sub:next([timeout_ms]) --> value, version; nil, "timeout", "TIMEOUT".
** No timeout (nil) or a negative one waits forever. */
static int l_sub_next(lua_State *L) {
    lchild *c = check_child(L, MT_SUB);
    int64_t t = lua_isnoneornil(L, 2) ? -1 : check_int(L, 2);
    mmfs_slice v;
    uint64_t version = 0;
    int rc;
    if (c->h == NULL) return push_closed(L, "subscription");
    if (t > INT32_MAX) t = INT32_MAX;
    if (t < 0) t = -1;
    rc = mmfs_sub_next((mmfs_sub *)c->h, (int)t, &v, &version);
    if (rc == MMFS_TIMEOUT) return push_err(L, "timeout", MMFS_TIMEOUT);
    if (rc != MMFS_OK) return push_fail(L, child_db(c), rc);
    push_slice(L, v);
    pc_pushint64(L, (int64_t)version);
    return 2;
}

static int l_sub_fd(lua_State *L) {
    lchild *c = check_child(L, MT_SUB);
    if (c->h == NULL) return push_closed(L, "subscription");
    lua_pushinteger(L, mmfs_sub_fd((mmfs_sub *)c->h));
    return 1;
}

/* ============================================================= batches */

/* db:_batch_begin() --> tx; direct writes on db are BUSY until the tx is
** committed or aborted (init.lua's db:batch(fn) wraps it). */
static int l_batch_begin(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_batch *h = NULL;
    lbatch *b;
    int rc;
    CHECK_OPEN(L, d);
    if (d->in_batch)
        return push_err(L, "a batch is already open on this store (nested batch)", MMFS_BUSY);
    b = (lbatch *)new_child(L, sizeof(lbatch), MT_BATCH, K_BATCH);
    rc = mmfs_batch_begin(d->db, &h);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    b->c.h = h;
    child_link(d, &b->c);
    d->in_batch = 1;
    return 1;
}

static lbatch *check_batch(lua_State *L) { return (lbatch *)check_udata(L, 1, MT_BATCH); }

/* A command that failed poisons its batch: commit writes nothing and
** returns the first failure. */
static void batch_poison(lbatch *b, int rc, const char *msg) {
    if (!b->failed) {
        b->failed = 1;
        b->code = rc;
        strncpy(b->msg, msg, sizeof b->msg - 1);
        b->msg[sizeof b->msg - 1] = '\0';
    }
}

static int batch_result(lua_State *L, lbatch *b, int rc, int64_t value) {
    if (rc != MMFS_OK) {
        const char *msg = mmfs_errmsg(child_db(&b->c));
        if (msg == NULL || *msg == '\0') msg = mmfs_strerror(rc);
        batch_poison(b, rc, msg);
        return push_err(L, msg, rc);
    }
    if (value >= 0)
        pc_pushint64(L, value);
    else
        lua_pushboolean(L, 1);
    return 1;
}

#define BATCH_OPEN(L, b)                                                      \
    do {                                                                      \
        if ((b)->c.h == NULL) return push_closed((L), "batch");               \
    } while (0)

/* tx:append_memory(text, tags [, opts]) --> the position of its id in the
** array that commit returns, counting this batch's own memories only:
** memories a policy hook adds are in that array too (see init.lua, batch),
** and mmfs_batch_commit does not say which ids are theirs. */
static int l_tx_append_memory(lua_State *L) {
    lua_settop(L, 4); /* absent optional arguments = nil; what we push goes above */
    lbatch *b = check_batch(L);
    mmfs_slice text = check_bytes(L, 2);
    const mmfs_slice *tags = NULL;
    size_t ntags = 0;
    mmfs_memory_opts o;
    int rc;
    if (!lua_isnoneornil(L, 3)) {
        if (!lua_istable(L, 3)) type_error(L, 3, "table");
        tags = check_strings(L, 3, 3, "tags", &ntags);
    }
    if (!check_memory_opts(L, 4, &o)) { /* nil, msg, "INVALID" pushed */
        batch_poison(b, MMFS_INVALID, lua_tostring(L, -2));
        return 3;
    }
    BATCH_OPEN(L, b);
    rc = mmfs_batch_append_memory((mmfs_batch *)b->c.h, text, tags, ntags, &o);
    if (rc == MMFS_OK) b->nmem++;
    return batch_result(L, b, rc, (int64_t)b->nmem);
}

static int l_tx_delete_memory(lua_State *L) {
    lbatch *b = check_batch(L);
    int ok;
    uint64_t id = check_id(L, 2, &ok);
    BATCH_OPEN(L, b);
    if (!ok) return lua_pushboolean(L, 1), 1; /* names nothing: dropped */
    return batch_result(L, b, mmfs_batch_delete_memory((mmfs_batch *)b->c.h, id), -1);
}

static int l_tx_set_kv(lua_State *L) {
    lbatch *b = check_batch(L);
    mmfs_slice k = check_bytes(L, 2), v = check_bytes(L, 3);
    BATCH_OPEN(L, b);
    return batch_result(L, b, mmfs_batch_set_kv((mmfs_batch *)b->c.h, k, v), -1);
}

static int l_tx_delete_kv(lua_State *L) {
    lbatch *b = check_batch(L);
    mmfs_slice k = check_bytes(L, 2);
    BATCH_OPEN(L, b);
    return batch_result(L, b, mmfs_batch_delete_kv((mmfs_batch *)b->c.h, k), -1);
}

static int l_tx_put_session(lua_State *L) {
    lbatch *b = check_batch(L);
    mmfs_session s;
    check_session(L, 2, &s);
    BATCH_OPEN(L, b);
    return batch_result(L, b, mmfs_batch_put_session((mmfs_batch *)b->c.h, &s), -1);
}

static int l_tx_delete_session(lua_State *L) {
    lbatch *b = check_batch(L);
    mmfs_slice id = check_bytes(L, 2);
    BATCH_OPEN(L, b);
    return batch_result(L, b, mmfs_batch_delete_session((mmfs_batch *)b->c.h, id), -1);
}

static int l_tx_append_stream(lua_State *L) {
    lbatch *b = check_batch(L);
    mmfs_slice k = check_bytes(L, 2), v = check_bytes(L, 3);
    BATCH_OPEN(L, b);
    return batch_result(L, b, mmfs_batch_append_stream((mmfs_batch *)b->c.h, k, v), -1);
}

static int l_tx_index(lua_State *L) {
    lbatch *b = check_batch(L);
    mmfs_slice k = check_bytes(L, 2), text = check_bytes(L, 3);
    BATCH_OPEN(L, b);
    return batch_result(L, b, mmfs_batch_index((mmfs_batch *)b->c.h, k, text), -1);
}

static int l_tx_unindex(lua_State *L) {
    lbatch *b = check_batch(L);
    mmfs_slice k = check_bytes(L, 2);
    BATCH_OPEN(L, b);
    return batch_result(L, b, mmfs_batch_unindex((mmfs_batch *)b->c.h, k), -1);
}

static int l_tx_update_state(lua_State *L) {
    lbatch *b = check_batch(L);
    mmfs_slice v = check_bytes(L, 2);
    BATCH_OPEN(L, b);
    return batch_result(L, b, mmfs_batch_update_state((mmfs_batch *)b->c.h, v), -1);
}

/* tx:commit() --> the array of memory ids assigned; or nil, msg, code (a
** command that failed earlier makes the whole batch fail: nothing written) */
static int l_tx_commit(lua_State *L) {
    lbatch *b = check_batch(L);
    mmfs_batch *h = (mmfs_batch *)b->c.h;
    ldb *d = b->c.owner;
    uint64_t *ids = NULL;
    size_t nids = 0, i;
    int rc;
    BATCH_OPEN(L, b);
    if (b->failed) {
        child_close(&b->c);
        return push_err(L, b->msg, b->code);
    }
    /* detach first: mmfs_batch_commit frees H whatever happens */
    if (d) d->in_batch = 0;
    child_unlink(&b->c);
    b->c.h = NULL;
    rc = mmfs_batch_commit(h, &ids, &nids);
    if (rc != MMFS_OK) return push_fail(L, d ? d->db : NULL, rc);
    lua_createtable(L, (int)nids, 0);
    for (i = 0; i < nids; i++) {
        pc_pushint64(L, (int64_t)ids[i]);
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
    mmfs_free(ids);
    return 1;
}

/* tx:_db() --> the store the batch belongs to */
static int l_tx_db(lua_State *L) {
    check_batch(L);
    compat_getuv(L, 1);
    return 1;
}

/* ========================================================= maintenance */

/* db:sync(), db:refresh(), db:verify(): FN on the open store --> true */
static int db_call(lua_State *L, int (*fn)(mmfs_db *)) {
    ldb *d = check_db(L, 1);
    int rc;
    CHECK_OPEN(L, d);
    rc = fn(d->db);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* db:path() --> the store's directory (as given to open, without trailing
** slashes); nil, msg, "CLOSED" on a closed store */
static int l_path(lua_State *L) {
    ldb *d = check_db(L, 1);
    CHECK_OPEN(L, d);
    lua_pushstring(L, mmfs_path(d->db));
    return 1;
}

static int l_sync(lua_State *L) { return db_call(L, mmfs_sync); }
static int l_refresh(lua_State *L) { return db_call(L, mmfs_refresh); }
static int l_verify(lua_State *L) { return db_call(L, mmfs_verify); }
static int l_checkpoint(lua_State *L) { return db_call(L, mmfs_checkpoint); }

static int l_stats(lua_State *L) {
    ldb *d = check_db(L, 1);
    mmfs_store_stats st;
    int rc;
    CHECK_OPEN(L, d);
    memset(&st, 0, sizeof st);
    rc = mmfs_stats(d->db, &st);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_createtable(L, 0, 12);
#define STAT(name)                                                            \
    pc_pushint64(L, (int64_t)st.name);                                    \
    lua_setfield(L, -2, #name)
    STAT(memories);
    STAT(kv);
    STAT(sessions);
    STAT(streams);
    STAT(documents);
    STAT(log_bytes);
    STAT(live_bytes);
    STAT(dead_bytes);
    STAT(lsn);
    STAT(durable_lsn);
    STAT(state_version);
    STAT(segments);
    STAT(checkpoint_lsn);
    STAT(compacting);
    STAT(checkpoint_dropped);
    STAT(index_segments);
#undef STAT
    return 1;
}

/* db:compact([opts]) --> { bytes_before=, bytes_after=, kept=, dropped=, ms= };
** opts: now (unix seconds that ttl and compaction.keep see) */
static int l_compact(lua_State *L) {
    static const char *const known[] = {"now", NULL};
    ldb *d = check_db(L, 1);
    mmfs_compact_opts o;
    mmfs_compact_result r;
    int64_t now;
    int rc;
    CHECK_OPEN(L, d);
    mmfs_compact_opts_init(&o);
    if (check_opts(L, 2)) {
        if (opt_int_field(L, 2, "now", &now)) o.now = now;
        if (!check_keys(L, 2, known, "compact")) return 3;
    }
    rc = mmfs_compact(d->db, &o, &r);
    if (rc != MMFS_OK) return push_fail(L, d->db, rc);
    lua_createtable(L, 0, 5);
#define RES(name)                                                             \
    pc_pushint64(L, (int64_t)r.name);                                     \
    lua_setfield(L, -2, #name)
    RES(bytes_before);
    RES(bytes_after);
    RES(kept);
    RES(dropped);
    RES(ms);
#undef RES
    return 1;
}

/* db:close() --> true (also on a closed store), or nil, msg, code when the
** final sync failed (the handle is released anyway).  Also __gc/__close. */
static int l_db_close(lua_State *L) {
    int rc = db_close(check_db(L, 1));
    if (rc != MMFS_OK) return push_fail(L, NULL, rc);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_db_gc(lua_State *L) {
    db_close(check_db(L, 1));
    return 0;
}

static int l_db_tostring(lua_State *L) {
    ldb *d = check_db(L, 1);
    if (d->db)
        lua_pushfstring(L, "memmapfs.db (%p)", (void *)d->db);
    else
        lua_pushliteral(L, "memmapfs.db (closed)");
    return 1;
}

/* Closes a child of any type (close(), __gc, __close); returns true. */
static int child_close_method(lua_State *L, const char *mt) {
    child_close(check_child(L, mt));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_reader_close(lua_State *L) { return child_close_method(L, MT_READER); }
static int l_sub_close(lua_State *L) { return child_close_method(L, MT_SUB); }
static int l_iter_close(lua_State *L) { return child_close_method(L, MT_ITER); }

/* tx:abort(): drops the batch; nothing is written. */
static int l_tx_abort(lua_State *L) { return child_close_method(L, MT_BATCH); }

static int child_tostring(lua_State *L, const char *mt) {
    lchild *c = check_child(L, mt);
    if (c->h)
        lua_pushfstring(L, "%s (%p)", mt, c->h);
    else
        lua_pushfstring(L, "%s (closed)", mt);
    return 1;
}

static int l_reader_tostring(lua_State *L) { return child_tostring(L, MT_READER); }
static int l_sub_tostring(lua_State *L) { return child_tostring(L, MT_SUB); }
static int l_iter_tostring(lua_State *L) { return child_tostring(L, MT_ITER); }
static int l_tx_tostring(lua_State *L) { return child_tostring(L, MT_BATCH); }

/* ================================================================ open */

/* memmapfs.core.open(dir [, opts]) --> db, or nil, msg, code */
static int l_open(lua_State *L) {
    lua_settop(L, 2); /* absent optional arguments = nil; what we push goes above */
    static const char *const known[] = {"sync",     "sync_ms",         "checksum",
                                        "key",      "readonly",        "create",
                                        "lock_timeout_ms", "segment_size", "policy",
                                        "hook_budget", "repair", "language",
                                        "checkpoint_bytes", "compress", NULL};
    size_t dirlen;
    const char *dir;
    mmfs_options o;
    mmfs_slice s;
    int64_t v;
    int b, rc;
    ldb *d;
    if (lua_type(L, 1) != LUA_TSTRING) type_error(L, 1, "string");
    dir = lua_tolstring(L, 1, &dirlen);
    if (strlen(dir) != dirlen) arg_error(L, 1, "directory name contains a zero byte");
    check_opts(L, 2);
    luaL_checkstack(L, 20, NULL);
    mmfs_options_init(&o);
    if (opt_str_field(L, 2, "sync", &s)) {
        const char *m = (const char *)s.ptr;
        if (!strcmp(m, "batch"))
            o.sync = MMFS_SYNC_BATCH;
        else if (!strcmp(m, "always"))
            o.sync = MMFS_SYNC_ALWAYS;
        else if (!strcmp(m, "none"))
            o.sync = MMFS_SYNC_NONE;
        else
            return push_err(L, lua_pushfstring(L, "sync: unknown mode '%s' (batch, always, none)", m),
                            MMFS_INVALID);
    }
    if (opt_int_field(L, 2, "sync_ms", &v)) {
        if (v < 0 || v > INT32_MAX) return push_err(L, "sync_ms: out of range", MMFS_INVALID);
        o.sync_ms = (int)v;
    }
    if (opt_str_field(L, 2, "checksum", &s)) {
        const char *m = (const char *)s.ptr;
        if (!strcmp(m, "crc32c"))
            o.checksum = MMFS_CHECKSUM_CRC32C;
        else if (!strcmp(m, "blake2b"))
            o.checksum = MMFS_CHECKSUM_BLAKE2B;
        else
            return push_err(L, lua_pushfstring(L, "checksum: unknown type '%s' (crc32c, blake2b)", m),
                            MMFS_INVALID);
    }
    if (opt_str_field(L, 2, "key", &s)) {
        o.key = s.ptr;
        o.key_len = s.len;
        /* a key means keyed BLAKE2b: reopening with the key alone must work
        ** (mmfs_options cannot tell "no checksum given" from crc32c) */
        if (get_opt(L, 2, "checksum") == LUA_TNIL) o.checksum = MMFS_CHECKSUM_BLAKE2B;
    }
    if (opt_bool_field(L, 2, "readonly", &b)) o.readonly = b;
    if (opt_bool_field(L, 2, "create", &b)) o.create = b;
    if (opt_bool_field(L, 2, "repair", &b)) o.repair = b;
    if (opt_int_field(L, 2, "lock_timeout_ms", &v)) {
        if (v < 0 || v > INT32_MAX) return push_err(L, "lock_timeout_ms: out of range", MMFS_INVALID);
        o.lock_timeout_ms = (int)v;
    }
    if (opt_int_field(L, 2, "segment_size", &v)) {
        if (v <= 0) return push_err(L, "segment_size: must be positive", MMFS_INVALID);
        o.segment_size = (uint64_t)v;
    }
    if (opt_int_field(L, 2, "checkpoint_bytes", &v)) {
        if (v < 0) return push_err(L, "checkpoint_bytes: must not be negative", MMFS_INVALID);
        o.checkpoint_bytes = (uint64_t)v;
    }
    if (opt_str_field(L, 2, "policy", &s)) o.policy = s; /* source text: init.lua reads a file */
    if (opt_str_field(L, 2, "language", &s)) {
        if (strlen((const char *)s.ptr) != s.len)
            return push_err(L, "language: contains a zero byte", MMFS_INVALID);
        o.language = (const char *)s.ptr; /* kept on the stack */
    }
    if (opt_str_field(L, 2, "compress", &s)) {
        if (strlen((const char *)s.ptr) != s.len)
            return push_err(L, "compress: contains a zero byte", MMFS_INVALID);
        o.compress = (const char *)s.ptr; /* kept on the stack */
    }
    if (opt_int_field(L, 2, "hook_budget", &v)) {
        if (v <= 0) return push_err(L, "hook_budget: must be positive", MMFS_INVALID);
        o.hook_budget = (uint64_t)v;
    }
    if (!lua_isnoneornil(L, 2)) { /* a misspelt option must not pass unnoticed */
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            int i, found = 0;
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING)
                for (i = 0; known[i] && !found; i++) found = !strcmp(lua_tostring(L, -1), known[i]);
            if (!found) {
                if (lua_type(L, -1) != LUA_TSTRING) /* {"always"}: a list, not options */
                    return push_err(L, lua_pushfstring(L, "unknown option (a %s key; options are "
                                                          "named, e.g. sync = \"always\")",
                                                       luaL_typename(L, -1)),
                                    MMFS_INVALID);
                return push_err(L, lua_pushfstring(L, "unknown option '%s'", lua_tostring(L, -1)),
                                MMFS_INVALID);
            }
        }
    }
    d = (ldb *)compat_newud(L, sizeof *d);
    memset(d, 0, sizeof *d);
    luaL_getmetatable(L, MT_DB);
    lua_setmetatable(L, -2);
    rc = mmfs_open(dir, &o, &d->db);
    if (rc != MMFS_OK) {
        d->db = NULL;
        return push_fail(L, NULL, rc);
    }
    return 1;
}

/* ============================================================ registry */

/* Each command's method (l_NAME on the handle, l_tx_NAME on a batch),
** from the one list of command types. */
#define DB_METHOD(C, code, name) {#name, l_##name},
#define TX_METHOD(C, code, name) {#name, l_tx_##name},

static const luaL_Reg db_methods[] = {
    MMFS_COMMANDS(DB_METHOD)
    {"get_memory", l_get_memory},
    {"search_memory", l_search_memory},
    {"list_memories", l_list_memories},
    {"get_kv", l_get_kv},
    {"_kv_iter", l_kv_iter},
    {"get_session", l_get_session},
    {"list_sessions", l_list_sessions},
    {"list_by_intent", l_list_by_intent},
    {"stream_size", l_stream_size},
    {"open_read", l_open_read},
    {"search", l_search},
    {"get_state", l_get_state},
    {"subscribe_state", l_subscribe_state},
    {"set_policy", l_set_policy},
    {"get_policy", l_get_policy},
    {"_batch_begin", l_batch_begin},
    {"path", l_path},
    {"sync", l_sync},
    {"refresh", l_refresh},
    {"verify", l_verify},
    {"checkpoint", l_checkpoint},
    {"stats", l_stats},
    {"compact", l_compact},
    {"close", l_db_close},
    {NULL, NULL}};

static const luaL_Reg db_meta[] = {
    {"__gc", l_db_gc}, {"__close", l_db_gc}, {"__tostring", l_db_tostring}, {NULL, NULL}};

static const luaL_Reg reader_methods[] = {{"read", l_reader_read},   {"seek", l_reader_seek},
                                          {"tell", l_reader_tell},   {"size", l_reader_size},
                                          {"close", l_reader_close}, {NULL, NULL}};

static const luaL_Reg reader_meta[] = {{"__gc", l_reader_close},
                                       {"__close", l_reader_close},
                                       {"__tostring", l_reader_tostring},
                                       {NULL, NULL}};

static const luaL_Reg sub_methods[] = {
    {"next", l_sub_next}, {"fd", l_sub_fd}, {"close", l_sub_close}, {NULL, NULL}};

static const luaL_Reg sub_meta[] = {{"__gc", l_sub_close},
                                    {"__close", l_sub_close},
                                    {"__tostring", l_sub_tostring},
                                    {NULL, NULL}};

static const luaL_Reg iter_methods[] = {
    {"next", l_iter_next}, {"close", l_iter_close}, {NULL, NULL}};

static const luaL_Reg iter_meta[] = {{"__gc", l_iter_close},
                                     {"__close", l_iter_close},
                                     {"__tostring", l_iter_tostring},
                                     {NULL, NULL}};

static const luaL_Reg batch_methods[] = {
    MMFS_COMMANDS(TX_METHOD)
    {"commit", l_tx_commit},
    {"abort", l_tx_abort},
    {"_db", l_tx_db},
    {NULL, NULL}};

static const luaL_Reg batch_meta[] = {
    {"__gc", l_tx_abort}, {"__close", l_tx_abort}, {"__tostring", l_tx_tostring}, {NULL, NULL}};

/* Creates metatable NAME with META and an __index table of METHODS, and
** stores the methods table as field FIELD of the module table (on top
** before the call) so that init.lua can add the methods written in Lua.
** Each method's upvalues: 1 the metatable (check_db), 2 its own name
** (arg_error). */
static void new_type(lua_State *L, const char *name, const luaL_Reg *methods,
                     const luaL_Reg *meta, const char *field) {
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    for (; methods->name; methods++) { /* upvalues: the metatable, the name */
        lua_pushvalue(L, -2);
        lua_pushstring(L, methods->name);
        lua_pushcclosure(L, methods->func, 2);
        lua_setfield(L, -2, methods->name);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, -3, field); /* module._methods[field] */
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "locked"); /* getmetatable(handle) hides the table */
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

static const luaL_Reg module_funcs[] = {{"open", l_open}, {NULL, NULL}};

/* The one exported symbol: the module may be built with hidden visibility
** (the engine's objects are), and the interpreter must still find it. */
#if defined(__GNUC__)
#define MMFS_LUA_EXPORT __attribute__((visibility("default")))
#else
#define MMFS_LUA_EXPORT
#endif

MMFS_LUA_EXPORT int luaopen_memmapfs_core(lua_State *L);

MMFS_LUA_EXPORT int luaopen_memmapfs_core(lua_State *L) {
    const luaL_Reg *f;
    lua_createtable(L, 0, 8);
    for (f = module_funcs; f->name; f++) { /* upvalues: none (not a method), the name */
        lua_pushnil(L);
        lua_pushstring(L, f->name);
        lua_pushcclosure(L, f->func, 2);
        lua_setfield(L, -2, f->name);
    }
    lua_pushliteral(L, MMFS_VERSION);
    lua_setfield(L, -2, "version");
    lua_newtable(L); /* _methods */
    new_type(L, MT_DB, db_methods, db_meta, "db");
    new_type(L, MT_READER, reader_methods, reader_meta, "reader");
    new_type(L, MT_SUB, sub_methods, sub_meta, "sub");
    new_type(L, MT_ITER, iter_methods, iter_meta, "kviter");
    new_type(L, MT_BATCH, batch_methods, batch_meta, "batch");
    lua_setfield(L, -2, "_methods");
    return 1;
}
