/*
** policy.c: the policy VM (policy.h): a private, sandboxed lua_State per
** policy; the limits (instruction budget per call and per run, memory);
** commands as Lua tables; route, schemas.session, hooks and tx.
**
** Invariants:
** - Every Lua API call that may allocate or raise runs inside one
**   protected call (pc_cpcall) per mmfs__policy_new / mmfs__policy_run,
**   so an error or a refused allocation never reaches the panic function.
** - Which status an error maps to is decided by flags set where it was
**   raised (p->over: a limit; p->nomem: a failed C allocation), never by
**   parsing messages; anything else a hook raises is MMFS_REJECTED.
** - After any run the stack is empty; after a failed one the garbage is
**   collected: the VM is ready for the next run.
** - Commands the policy leaves alone (no route, schema or hook applies)
**   are appended to OUT as they came, their slices pointing where IN's do
**   (the batch's own copies, alive until the commit ends).  Everything the
**   VM produced is copied into OUT's allocator.
*/
#include "pvm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define HOOK_EVERY 1000 /* instructions between two calls of the count hook */
#define DEFAULT_HOOK_BUDGET 1000000u
#define DEFAULT_MEM_LIMIT ((size_t)64 << 20)
#define MAX_ROUTE 256

static const char *const type_name[MMFS__R_MAX + 1] = {
    NULL,          "append_memory", "delete_memory", "set_kv", "delete_kv", "put_session", "delete_session",
    "append_stream", "index",       "unindex",       "update_state", NULL};

static const char *const hook_what[MMFS__R_MAX + 1] = {
    NULL,          "hook append_memory", "hook delete_memory", "hook set_kv", "hook delete_kv", "hook put_session",
    "hook delete_session", "hook append_stream", "hook index", "hook unindex", "hook update_state", NULL};

/* Field names of command tables, prebuilt: during a run (run_protected's
** frame) field name K sits at stack index KEY(K), and the metatable of tag
** arrays at TAGS_MT, so setting and reading a field is a stack copy and a
** raw set or get, without interning the name again. */
enum { K_TYPE = 1, K_TEXT, K_TAGS, K_ROUTE, K_CREATED_AT, K_ID, K_KEY, K_VALUE, K_SESSION, K_BYTES, K_N };
static const char *const key_name[K_N] = {NULL, "type", "text", "tags", "route", "created_at", "id", "key",
                                          "value", "session", "bytes"};
#define KEY(k) (k)
#define TAGS_MT K_N
#define CMD_MT (K_N + 1) /* the metatable of command tables */
#define TX (K_N + 2)     /* the tx object */
#define RUN_SLOTS (K_N + 2) /* the stack slots above, from 1 */
#define BIT(k) (1u << (k))
#define ANY_FIELD (BIT(K_N) - BIT(K_TYPE)) /* the bits K_TYPE .. K_N - 1 */

/* t[K] = the value on top (popped); T is an absolute index. */
static void setk(lua_State *L, int t, int k) {
    lua_pushvalue(L, KEY(k));
    lua_insert(L, -2);
    lua_rawset(L, t);
}

/* Pushes t[K] (raw); T is an absolute index. */
static void getk(lua_State *L, int t, int k) {
    lua_pushvalue(L, KEY(k));
    lua_rawget(L, t);
}

static char reg_key; /* registry[&reg_key] = the policy (light userdata) */

/* ------------------------------------------------------------- limits */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The allocator: counts bytes and refuses to pass the memory limit, or the
** wall-clock guard of the current call (see pvm.h). */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    mmfs__policy *p = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        p->mem_used -= old;
        return NULL;
    }
    if (nsize > old && p->mem_used - old + nsize > p->lim.mem_limit) {
        p->mem_refused = p->mem_refused_run = 1;
        return NULL;
    }
    if (nsize > old && p->deadline_ns && (++p->alloc_n & 63) == 0 && now_ns() > p->deadline_ns) {
        p->time_refused = 1;
        return NULL;
    }
    void *n = realloc(ptr, nsize);
    if (!n) return NULL;
    p->mem_used = p->mem_used - old + nsize;
    if (nsize > old) p->mem_refused = 0;
    return n;
}

static mmfs__policy *get_policy(lua_State *L) {
    mmfs__policy *p;
    lua_pushlightuserdata(L, &reg_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    p = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return p;
}

/* Bytes the VM holds now. */
static size_t mem_now(lua_State *L, mmfs__policy *p) {
    if (!p->gccount) return p->mem_used;
    return (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
}

/* Raises the error of the limit in p->over.  From here on the count hook
** fires at every instruction and raises again, so a pcall in the policy
** cannot swallow the limit. */
static int raise_over(lua_State *L, mmfs__policy *p) {
    if (!p->every_insn) {
        lua_sethook(L, lua_gethook(L), LUA_MASKCOUNT, 1);
        p->every_insn = 1;
    }
    return luaL_error(L, "policy: %s: limit exceeded", p->what);
}

static void check_limits(lua_State *L, mmfs__policy *p) {
    if (p->over) raise_over(L, p);
    if (p->call_used > p->call_budget) p->over = PVM_OVER_CALL;
    else if (p->batch_used > p->lim.batch_budget) p->over = PVM_OVER_BATCH;
    else if (p->mem_refused) p->over = PVM_OVER_MEM;
    else if (p->time_refused) p->over = PVM_OVER_TIME;
    else if (p->gccount && mem_now(L, p) > p->lim.mem_limit) {
        lua_gc(L, LUA_GCCOLLECT, 0);
        if (mem_now(L, p) > p->lim.mem_limit) p->over = PVM_OVER_MEM;
    }
    if (p->over) raise_over(L, p);
}

static void count_hook(lua_State *L, lua_Debug *ar) {
    mmfs__policy *p = get_policy(L);
    (void)ar;
    if (!p) return;
    p->call_used += HOOK_EVERY;
    p->batch_used += HOOK_EVERY;
    check_limits(L, p);
}

void mmfs__pvm_charge(lua_State *L, mmfs__policy *p, uint64_t n) {
    p->call_used += n;
    p->batch_used += n;
    check_limits(L, p);
}

void mmfs__pvm_need(lua_State *L, mmfs__policy *p, size_t need, const char *what) {
    size_t now = mem_now(L, p);
    if (need > p->lim.mem_limit || now > p->lim.mem_limit - need) {
        p->over = PVM_OVER_MEM;
        p->what = what;
        raise_over(L, p);
    }
}

int mmfs__pvm_nomem(lua_State *L, mmfs__policy *p) {
    p->nomem = 1;
    return luaL_error(L, "out of memory");
}

/* Starts a Lua call of WHAT with a fresh per-call budget. */
static void begin_call(mmfs__policy *p, const char *what) {
    p->what = what;
    p->call_used = 0;
    p->deadline_ns = now_ns() + p->time_limit_ns;
}

/* ----------------------------------------------------- sandbox: globals */

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

#if LUA_VERSION_NUM < 502
/* pairs honouring __pairs, as in 5.2 and later, so that command tables
** list their lazy fields under every Lua. */
static int sb_pairs(lua_State *L) {
    if (luaL_getmetafield(L, 1, "__pairs")) {
        lua_pushvalue(L, 1);
        lua_call(L, 1, 3);
        return 3;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}
#endif

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
        return raise_over(L, p);
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

/* Builds the sandbox in the (fresh) global table. */
static void open_sandbox(lua_State *L, mmfs__policy *p) {
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
#if LUA_VERSION_NUM < 502
    lua_getfield(L, -1, "next");
    lua_pushcclosure(L, sb_pairs, 1);
    lua_setfield(L, -2, "pairs");
#endif

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
#if LUA_VERSION_NUM >= 503
    pc_openlib(L, "utf8", luaopen_utf8);
    lua_setfield(L, -2, "utf8");
#endif

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

    /* 5.1's openers registered the full libraries in registry._LOADED;
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

/* ---------------------------------------------------- tags as a set */

/* tags[k] for a missing key: true if string K is one of the tags. */
static int tags_index(lua_State *L) {
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t n = pc_rawlen(L, 1);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, 1, (int)i);
            if (lua_rawequal(L, -1, 2)) {
                lua_pushboolean(L, 1);
                return 1;
            }
            lua_pop(L, 1);
        }
    }
    lua_pushnil(L);
    return 1;
}

/* tags.k = true adds tag k (once); tags.k = false or nil removes it. */
static int tags_newindex(lua_State *L) {
    size_t n, i, j;
    if (lua_type(L, 2) != LUA_TSTRING) {
        lua_rawset(L, 1);
        return 0;
    }
    n = pc_rawlen(L, 1);
    if (lua_toboolean(L, 3)) {
        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, 1, (int)i);
            if (lua_rawequal(L, -1, 2)) return 0;
            lua_pop(L, 1);
        }
        lua_pushvalue(L, 2);
        lua_rawseti(L, 1, (int)n + 1);
        return 0;
    }
    for (i = j = 1; i <= n; i++) { /* keep the others, in order */
        lua_rawgeti(L, 1, (int)i);
        if (lua_rawequal(L, -1, 2)) {
            lua_pop(L, 1);
            continue;
        }
        lua_rawseti(L, 1, (int)j++);
    }
    for (; j <= n; j++) {
        lua_pushnil(L);
        lua_rawseti(L, 1, (int)j);
    }
    return 0;
}

/* Pushes the encoded tag list (NTAGS, TAGS) as an array with the set
** metatable, the table at stack index MT (absolute). */
static void push_tags(lua_State *L, uint32_t ntags, mmfs_slice tags, int mt) {
    const uint8_t *q = tags.ptr;
    lua_createtable(L, (int)ntags, 0);
    for (uint32_t i = 0; i < ntags; i++) {
        mmfs_slice t = mmfs__tag_next(&q);
        lua_pushlstring(L, (const char *)t.ptr, t.len);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_pushvalue(L, mt);
    lua_setmetatable(L, -2);
}

/* ------------------------------------------------- reading tables back */

static void *out_alloc(lua_State *L, mmfs__policy *p, size_t n) {
    void *m = p->out->alloc(p->out->ud, n ? n : 1);
    if (!m) mmfs__pvm_nomem(L, p);
    return m;
}

/* A copy of the string at IDX in OUT's memory. */
static mmfs_slice keep_str(lua_State *L, mmfs__policy *p, int idx) {
    mmfs_slice s;
    const char *v = lua_tolstring(L, idx, &s.len);
    if (s.len == 0) {
        s.ptr = "";
        return s;
    }
    void *m = out_alloc(L, p, s.len);
    memcpy(m, v, s.len);
    s.ptr = m;
    return s;
}

/* Raises: field NAME of the command has the wrong type. */
static int bad_field(lua_State *L, mmfs__policy *p, const char *name, const char *want, int idx) {
    return luaL_error(L, "policy: %s: cmd.%s must be %s, got %s", p->what, name, want, luaL_typename(L, idx));
}

static int64_t get_int(lua_State *L, mmfs__policy *p, int t, int k) {
    int64_t v;
    getk(L, t, k);
    if (!pc_isintegral(L, -1)) bad_field(L, p, key_name[k], "an integer", -1);
    v = pc_toint64(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The tag array at IDX, encoded into OUT's memory; when it holds the same
** tags as the encoded list (*NTAGS, *TAGS) on entry, that list is kept. */
static void keep_tags(lua_State *L, mmfs__policy *p, int idx, const char *what, uint32_t *ntags, mmfs_slice *tags) {
    size_t n, size = 0;
    uint8_t *b, *q;
    const uint8_t *o = tags->ptr;
    int same = 1;
    idx = pc_absindex(L, idx);
    if (!lua_istable(L, idx))
        luaL_error(L, "policy: %s: tags must be a table (an array of strings), got %s", what, luaL_typename(L, idx));
    n = pc_rawlen(L, idx);
    if (n > UINT32_MAX) luaL_error(L, "policy: %s: too many tags", what);
    for (size_t i = 1; i <= n; i++) {
        size_t l;
        const char *s;
        lua_rawgeti(L, idx, (int)i);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "policy: %s: tags[%d] must be a string, got %s", what, (int)i, luaL_typename(L, -1));
        s = lua_tolstring(L, -1, &l);
        size += 4 + l;
        if (same && i <= *ntags) {
            mmfs_slice t = mmfs__tag_next(&o);
            same = t.len == l && memcmp(t.ptr, s, l) == 0;
        }
        lua_pop(L, 1);
    }
    if (same && n == *ntags && size == tags->len) return;
    *ntags = (uint32_t)n;
    tags->len = size;
    if (size == 0) {
        tags->ptr = "";
        return;
    }
    q = b = out_alloc(L, p, size);
    for (size_t i = 1; i <= n; i++) {
        size_t l;
        const char *s;
        lua_rawgeti(L, idx, (int)i);
        s = lua_tolstring(L, -1, &l);
        mmfs__st32(q, (uint32_t)l);
        memcpy(q + 4, s, l);
        q += 4 + l;
        lua_pop(L, 1);
    }
    tags->ptr = b;
}

/* The session table at IDX into R (SESSION_PUT), copied to OUT.  Keeps
** R's created_at when the table has none. */
static void keep_session(lua_State *L, mmfs__policy *p, int idx, mmfs__rec *r, const char *what) {
    mmfs_slice f;
    idx = pc_absindex(L, idx);
    if (!lua_istable(L, idx)) luaL_error(L, "policy: %s: the session must be a table, got %s", what, luaL_typename(L, idx));
    lua_getfield(L, idx, "id");
    if (lua_type(L, -1) != LUA_TSTRING || pc_rawlen(L, -1) == 0)
        luaL_error(L, "policy: %s: session.id must be a non-empty string, got %s", what, luaL_typename(L, -1));
    r->u.sess.id = keep_str(L, p, -1);
    lua_getfield(L, idx, "intent_id");
    r->u.sess.has_intent = !lua_isnil(L, -1);
    if (r->u.sess.has_intent && lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "policy: %s: session.intent_id must be a string, got %s", what, luaL_typename(L, -1));
    r->u.sess.intent_id = r->u.sess.has_intent ? keep_str(L, p, -1) : (mmfs_slice){"", 0};
    lua_getfield(L, idx, "payload");
    r->u.sess.has_payload = !lua_isnil(L, -1);
    if (r->u.sess.has_payload && lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "policy: %s: session.payload must be a string, got %s", what, luaL_typename(L, -1));
    r->u.sess.payload = r->u.sess.has_payload ? keep_str(L, p, -1) : (mmfs_slice){"", 0};
    lua_getfield(L, idx, "created_at");
    if (!lua_isnil(L, -1)) {
        if (!pc_isintegral(L, -1))
            luaL_error(L, "policy: %s: session.created_at must be an integer, got %s", what, luaL_typename(L, -1));
        r->u.sess.created_at = pc_toint64(L, -1);
    }
    lua_pop(L, 4);
    f = mmfs__pvm_encode_fields(L, p, idx);
    if (f.len) {
        void *m = out_alloc(L, p, f.len);
        memcpy(m, f.ptr, f.len);
        f.ptr = m;
    } else {
        f.ptr = "";
    }
    r->u.sess.fields = f;
}

/* ------------------------------------------------------------ schemas */

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

/* Checks the session table at IDX against schemas.session. */
static void schema_check(lua_State *L, mmfs__policy *p, int idx) {
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

/* Skips the encoded value at *PP (before END); 0 if malformed. */
static int skip_value(const uint8_t **pp, const uint8_t *end, int depth) {
    const uint8_t *p = *pp;
    uint32_t n;
    if (p >= end || depth > MMFS__LF_MAXDEPTH) return 0;
    switch (*p++) {
    case 't':
    case 'f': break;
    case 'i':
    case 'd':
        if (end - p < 8) return 0;
        p += 8;
        break;
    case 's':
        if (end - p < 4) return 0;
        n = mmfs__ld32(p);
        p += 4;
        if ((size_t)(end - p) < n) return 0;
        p += n;
        break;
    case 'T':
        if (end - p < 4) return 0;
        n = mmfs__ld32(p);
        p += 4;
        for (uint32_t i = 0; i < n; i++)
            if (!skip_value(&p, end, depth + 1) || !skip_value(&p, end, depth + 1)) return 0;
        break;
    default: return 0;
    }
    *pp = p;
    return 1;
}

/* Checks session R against schemas.session in C, from the record, without
** building its table.  1: it passes.  0: it fails, or this check cannot
** tell (a key that is not a string, many fields, an enumeration with
** values that are not strings, a float where an integer is wanted): the
** check on the table then decides, and words the error.  The fields are
** found as the table would hold them: id, intent_id, created_at, payload
** over the encoded ones. */
static int schema_fast(const mmfs__policy *p, const mmfs__rec *r) {
    sval v[32];
    size_t n = 0;
    v[n++] = (sval){"id", 2, 's', r->u.sess.id};
    if (r->u.sess.has_intent) v[n++] = (sval){"intent_id", 9, 's', r->u.sess.intent_id};
    v[n++] = (sval){"created_at", 10, 'i', {"", 0}};
    if (r->u.sess.has_payload) v[n++] = (sval){"payload", 7, 's', r->u.sess.payload};
    if (r->u.sess.fields.len) {
        const uint8_t *q = r->u.sess.fields.ptr, *end = q + r->u.sess.fields.len;
        uint32_t count;
        if (end - q < 5 || *q != 'T') return 0;
        count = mmfs__ld32(q + 1);
        q += 5;
        for (uint32_t i = 0; i < count; i++) {
            uint32_t kl;
            if (n == sizeof v / sizeof v[0] || end - q < 5 || *q != 's') return 0;
            kl = mmfs__ld32(q + 1);
            q += 5;
            if ((size_t)(end - q) < kl) return 0;
            v[n] = (sval){(const char *)q, kl, 0, {"", 0}};
            q += kl;
            const uint8_t *val = q;
            if (!skip_value(&q, end, 1)) return 0; /* also checks a string's length */
            v[n].tag = *val;
            if (*val == 's') v[n].s = (mmfs_slice){val + 5, mmfs__ld32(val + 1)};
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
        if (!known) return 0;
    }
    return 1;
}

/* ------------------------------------------------------ running commands */

static mmfs__rec *out_push(lua_State *L, mmfs__policy *p) {
    mmfs__cmds *o = p->out;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        mmfs__rec *v = realloc(o->v, cap * sizeof *v);
        if (!v) mmfs__pvm_nomem(L, p);
        o->v = v;
        o->cap = cap;
    }
    return &o->v[o->n++];
}

static void pushs(lua_State *L, mmfs_slice s) { lua_pushlstring(L, (const char *)s.ptr, s.len); }

/* The strings push_cmd gave a command table, by slot (see push_cmd).  A
** field that still holds the very same Lua string after the hook is
** unchanged: its original slice is kept and nothing is copied.  (The string
** is alive, referenced by the table, so its address cannot be reused.) */
typedef struct pushed {
    const char *s[3];
} pushed;

/* Pushes S and records its Lua copy in slot I of PU. */
static void pushs_at(lua_State *L, mmfs_slice s, pushed *pu, int i) {
    lua_pushlstring(L, (const char *)s.ptr, s.len);
    pu->s[i] = lua_tostring(L, -1);
}

/* Lazy fields.  A command table starts empty: each field enters it when
** the policy first reads it (the table's __index) or lists the fields (its
** __pairs), so a hook that looks at nothing copies nothing.  Only the table
** being processed (p->cur_t) can fill them in: its record is gone once its
** call returns, so a table kept past its call raises when it reads a field
** it never read.  p->cur_has holds the fields filled in; a field neither
** read nor set is unchanged. */
static unsigned cmd_fields(int type) {
    switch (type) {
    case MMFS__R_MEMORY: return BIT(K_TYPE) | BIT(K_TEXT) | BIT(K_TAGS) | BIT(K_ROUTE) | BIT(K_CREATED_AT);
    case MMFS__R_DEL_MEMORY:
    case MMFS__R_SESSION_DEL: return BIT(K_TYPE) | BIT(K_ID);
    case MMFS__R_KV_SET: return BIT(K_TYPE) | BIT(K_KEY) | BIT(K_VALUE);
    case MMFS__R_KV_DEL:
    case MMFS__R_DOC_UNINDEX: return BIT(K_TYPE) | BIT(K_KEY);
    case MMFS__R_SESSION_PUT: return BIT(K_TYPE) | BIT(K_SESSION);
    case MMFS__R_STREAM_APPEND: return BIT(K_TYPE) | BIT(K_KEY) | BIT(K_BYTES);
    case MMFS__R_DOC_INDEX: return BIT(K_TYPE) | BIT(K_KEY) | BIT(K_TEXT);
    case MMFS__R_STATE: return BIT(K_TYPE) | BIT(K_VALUE);
    }
    return 0;
}

/* Pushes field K of R.  The strings are recorded in slots of PU: 0
** text/key/id/value (state), 1 value/bytes/text (document), 2 route.  MT
** is the index of the tags metatable. */
static void push_field(lua_State *L, const mmfs__policy *p, const mmfs__rec *r, int k, pushed *pu, int mt) {
    switch (k) {
    case K_TYPE: lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_tname[r->type]); break;
    case K_TEXT:
        if (r->type == MMFS__R_MEMORY) pushs_at(L, r->u.mem.text, pu, 0);
        else pushs_at(L, r->u.doc.text, pu, 1);
        break;
    case K_TAGS: push_tags(L, r->u.mem.ntags, r->u.mem.tags, mt); break;
    case K_ROUTE: pushs_at(L, r->u.mem.route, pu, 2); break;
    case K_CREATED_AT: pc_pushint64(L, r->u.mem.created_at); break;
    case K_ID:
        if (r->type == MMFS__R_DEL_MEMORY) pc_pushint64(L, (int64_t)r->u.del_mem.id);
        else pushs_at(L, r->u.sess.id, pu, 0);
        break;
    case K_KEY:
        if (r->type == MMFS__R_STREAM_APPEND) pushs_at(L, r->u.stream.key, pu, 0);
        else if (r->type == MMFS__R_DOC_INDEX || r->type == MMFS__R_DOC_UNINDEX) pushs_at(L, r->u.doc.key, pu, 0);
        else pushs_at(L, r->u.kv.key, pu, 0);
        break;
    case K_VALUE:
        if (r->type == MMFS__R_KV_SET) pushs_at(L, r->u.kv.value, pu, 1);
        else pushs_at(L, r->u.state.value, pu, 0);
        break;
    case K_SESSION: mmfs__pvm_push_session(L, r); break;
    case K_BYTES: pushs_at(L, r->u.stream.bytes, pu, 1); break;
    default: lua_pushnil(L);
    }
}

/* Which of the fields in SET the key at IDX names, or 0. */
static int field_key(lua_State *L, int idx, unsigned set) {
    size_t n;
    const char *s;
    if (!set || lua_type(L, idx) != LUA_TSTRING) return 0;
    s = lua_tolstring(L, idx, &n);
    for (int k = 1; k < K_N; k++)
        if ((set & BIT(k)) && strlen(key_name[k]) == n && memcmp(key_name[k], s, n) == 0) return k;
    return 0;
}

/* Is the table at IDX the one being processed? */
static int is_current(lua_State *L, const mmfs__policy *p, int idx) {
    return p->cur_t && lua_topointer(L, idx) == p->cur_t;
}

/* Fills field K of the current command table at T (absolute) in. */
static void fill(lua_State *L, mmfs__policy *p, int t, int k, int mt) {
    lua_pushstring(L, key_name[k]);
    push_field(L, p, p->cur, k, p->cur_pu, mt);
    lua_rawset(L, t);
    p->cur_has |= BIT(k);
}

/* cmd[k] for a key the table does not hold: a field, filled in. */
static int cmd_index(lua_State *L) {
    mmfs__policy *p = lua_touserdata(L, lua_upvalueindex(1));
    int k;
    if (!is_current(L, p, 1)) {
        if ((k = field_key(L, 2, ANY_FIELD)) != 0)
            return luaL_error(L, "policy: %s: cmd.%s read after the call that got cmd returned (copy what you "
                                 "need during the call)",
                              p->what, key_name[k]);
        return lua_pushnil(L), 1;
    }
    k = field_key(L, 2, cmd_fields(p->cur->type) & ~p->cur_has);
    if (!k) return lua_pushnil(L), 1;
    fill(L, p, 1, k, lua_upvalueindex(2));
    lua_pushvalue(L, 2);
    lua_rawget(L, 1);
    return 1;
}

/* Fills in every field of the current command table at T (absolute). */
static void fill_all(lua_State *L, mmfs__policy *p, int t, int mt) {
    unsigned want = cmd_fields(p->cur->type) & ~p->cur_has;
    for (int k = 1; k < K_N; k++)
        if (want & BIT(k)) fill(L, p, t, k, mt);
}

/* pairs(cmd): fills in the fields, then iterates with next. */
static int cmd_pairs(lua_State *L) {
    mmfs__policy *p = lua_touserdata(L, lua_upvalueindex(1));
    luaL_checktype(L, 1, LUA_TTABLE);
    if (is_current(L, p, 1)) fill_all(L, p, 1, lua_upvalueindex(2));
    lua_pushvalue(L, lua_upvalueindex(3));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Does the table at T (absolute) hold no key?  A command table still empty
** after its hook was neither read nor edited. */
static int table_empty(lua_State *L, int t) {
    lua_pushnil(L);
    if (!lua_next(L, t)) return 1;
    lua_pop(L, 2);
    return 0;
}

/* Is field K of the command table at T neither read nor set? */
static int untouched(lua_State *L, const mmfs__policy *p, int t, int k) {
    int none;
    if (p->cur_has & BIT(k)) return 0;
    getk(L, t, k);
    none = lua_isnil(L, -1);
    lua_pop(L, 1);
    return none;
}

/* Pushes field K of the current command table at T, filled in first if
** it was not. */
static void getf(lua_State *L, mmfs__policy *p, int t, int k) {
    if (untouched(L, p, t, k)) fill(L, p, t, k, TAGS_MT);
    getk(L, t, k);
}

/* Pushes command R as a table, empty but for its metatable (its fields are
** lazy), and makes it the current command.  A memory about to be routed
** gets room for the two fields routing fills in, tags and route. */
static void push_cmd(lua_State *L, mmfs__policy *p, const mmfs__rec *r, pushed *pu) {
    lua_createtable(L, 0, r->type == MMFS__R_MEMORY && p->ref_route != LUA_NOREF ? 2 : 0);
    lua_pushvalue(L, CMD_MT);
    lua_setmetatable(L, -2);
    p->cur_t = lua_topointer(L, -1);
    p->cur = r;
    p->cur_pu = pu;
    p->cur_has = 0;
}

/* Field NAME of the table at T, a string: ORIG when it is still the string
** pushed as LSTR, else a copy in OUT's memory. */
static mmfs_slice get_str_or(lua_State *L, mmfs__policy *p, int t, int k, mmfs_slice orig, const char *lstr) {
    mmfs_slice s;
    getk(L, t, k);
    if (lua_type(L, -1) != LUA_TSTRING) bad_field(L, p, key_name[k], "a string", -1);
    if (lstr && lua_tostring(L, -1) == lstr) s = orig;
    else s = keep_str(L, p, -1);
    lua_pop(L, 1);
    return s;
}

/* Reads the command table at T back into R (a copy of the original, whose
** strings PU recorded): only the fields the policy read or set. */
static void read_cmd(lua_State *L, mmfs__policy *p, int t, mmfs__rec *r, const pushed *pu) {
#define TOUCHED(k) (!untouched(L, p, t, (k)))
    switch (r->type) {
    case MMFS__R_MEMORY:
        if (TOUCHED(K_TEXT)) r->u.mem.text = get_str_or(L, p, t, K_TEXT, r->u.mem.text, pu->s[0]);
        if (TOUCHED(K_ROUTE)) {
            r->u.mem.route = get_str_or(L, p, t, K_ROUTE, r->u.mem.route, pu->s[2]);
            if (r->u.mem.route.len > MAX_ROUTE)
                luaL_error(L, "policy: %s: cmd.route is longer than 256 bytes", p->what);
        }
        if (TOUCHED(K_CREATED_AT)) r->u.mem.created_at = get_int(L, p, t, K_CREATED_AT);
        if (TOUCHED(K_TAGS)) {
            getk(L, t, K_TAGS);
            keep_tags(L, p, -1, p->what, &r->u.mem.ntags, &r->u.mem.tags);
            lua_pop(L, 1);
        }
        break;
    case MMFS__R_DEL_MEMORY:
        if (TOUCHED(K_ID)) {
            int64_t id = get_int(L, p, t, K_ID);
            if (id < 0) luaL_error(L, "policy: %s: cmd.id must not be negative", p->what);
            r->u.del_mem.id = (uint64_t)id;
        }
        break;
    case MMFS__R_KV_SET:
        if (TOUCHED(K_VALUE)) r->u.kv.value = get_str_or(L, p, t, K_VALUE, r->u.kv.value, pu->s[1]);
        /* fall through */
    case MMFS__R_KV_DEL:
        if (TOUCHED(K_KEY)) r->u.kv.key = get_str_or(L, p, t, K_KEY, r->u.kv.key, pu->s[0]);
        break;
    case MMFS__R_SESSION_PUT:
        if (TOUCHED(K_SESSION)) {
            getk(L, t, K_SESSION);
            keep_session(L, p, -1, r, p->what);
            lua_pop(L, 1);
        }
        break;
    case MMFS__R_SESSION_DEL:
        if (TOUCHED(K_ID)) {
            r->u.sess.id = get_str_or(L, p, t, K_ID, r->u.sess.id, pu->s[0]);
            if (r->u.sess.id.len == 0) luaL_error(L, "policy: %s: cmd.id must not be empty", p->what);
        }
        break;
    case MMFS__R_STREAM_APPEND:
        if (TOUCHED(K_KEY)) r->u.stream.key = get_str_or(L, p, t, K_KEY, r->u.stream.key, pu->s[0]);
        if (TOUCHED(K_BYTES)) r->u.stream.bytes = get_str_or(L, p, t, K_BYTES, r->u.stream.bytes, pu->s[1]);
        break;
    case MMFS__R_DOC_INDEX:
        if (TOUCHED(K_TEXT)) r->u.doc.text = get_str_or(L, p, t, K_TEXT, r->u.doc.text, pu->s[1]);
        /* fall through */
    case MMFS__R_DOC_UNINDEX:
        if (TOUCHED(K_KEY)) r->u.doc.key = get_str_or(L, p, t, K_KEY, r->u.doc.key, pu->s[0]);
        break;
    case MMFS__R_STATE:
        if (TOUCHED(K_VALUE)) r->u.state.value = get_str_or(L, p, t, K_VALUE, r->u.state.value, pu->s[0]);
        break;
    }
#undef TOUCHED
}

/* Raises the rejection of a call that returned nil/false, reason (the
** results are the NRES values at the top). */
static int reject(lua_State *L, mmfs__policy *p, int nres) {
    int r = lua_gettop(L) - nres + 2;
    if (nres >= 2 && (lua_type(L, r) == LUA_TSTRING || lua_type(L, r) == LUA_TNUMBER)) {
        lua_pushvalue(L, r);
        return lua_error(L);
    }
    return luaL_error(L, "policy: %s rejected the command", p->what);
}

/* Calls route(mem) for the memory table at T and sets mem.route. */
static void run_route(lua_State *L, mmfs__policy *p, int t) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_route);
    lua_pushvalue(L, t);
    begin_call(p, "route");
    lua_call(L, 1, 2);
    if (lua_type(L, -2) != LUA_TSTRING) {
        if (!lua_toboolean(L, -2)) reject(L, p, 2);
        luaL_error(L, "policy: route must return a route name (a string), or nil and a reason; got %s",
                   luaL_typename(L, -2));
    }
    if (p->ref_routes != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_routes);
        lua_pushvalue(L, -3);
        lua_rawget(L, -2);
        if (lua_isnil(L, -1)) luaL_error(L, "policy: route returned '%s', which is not in routes", lua_tostring(L, -4));
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    setk(L, t, K_ROUTE);
}

static void process(lua_State *L, mmfs__policy *p, const mmfs__rec *in, int with_hook);

/* Runs the policy over command IN; appends the result (and, after a
** hook, the commands the hook added) to OUT. */
static void process(lua_State *L, mmfs__policy *p, const mmfs__rec *in, int with_hook) {
    int t = in->type;
    int routed = t == MMFS__R_MEMORY && p->ref_route != LUA_NOREF;
    int schema = t == MMFS__R_SESSION_PUT && p->schema != NULL;
    int hook = with_hook && t >= 1 && t <= MMFS__R_MAX && p->ref_hook[t] != LUA_NOREF;
    int checked = schema && schema_fast(p, in); /* the session as it came passes */
    int top = lua_gettop(L), cmd;
    size_t pend0 = p->npend;
    mmfs__rec r = *in;
    pushed pu = {{NULL, NULL, NULL}};

    if (!routed && (!schema || checked) && !hook) {
        *out_push(L, p) = *in;
        return;
    }
    luaL_checkstack(L, 16, NULL);
    push_cmd(L, p, in, &pu);
    cmd = lua_gettop(L);
    if (routed) run_route(L, p, cmd);
    if (schema && !checked) {
        getf(L, p, cmd, K_SESSION);
        schema_check(L, p, -1);
        lua_pop(L, 1);
    }
    if (hook) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_hook[t]);
        lua_pushvalue(L, cmd);
        lua_pushvalue(L, TX);
        begin_call(p, hook_what[t]);
        p->tx_active = 1;
        lua_call(L, 2, 2);
        p->tx_active = 0;
        if (!lua_toboolean(L, -2) && (lua_type(L, -2) == LUA_TBOOLEAN || !lua_isnil(L, -1))) reject(L, p, 2);
        lua_pop(L, 2);
        if (schema && (!checked || !untouched(L, p, cmd, K_SESSION))) { /* as the hook left it */
            getf(L, p, cmd, K_SESSION);
            schema_check(L, p, -1);
            lua_pop(L, 1);
        }
        if (p->cur_has || !table_empty(L, cmd)) read_cmd(L, p, cmd, &r, &pu);
    } else if (routed) { /* route may change the route and the tags only */
        if (!untouched(L, p, cmd, K_ROUTE)) r.u.mem.route = get_str_or(L, p, cmd, K_ROUTE, r.u.mem.route, pu.s[2]);
        if (!untouched(L, p, cmd, K_TAGS)) {
            getk(L, cmd, K_TAGS);
            keep_tags(L, p, -1, "route", &r.u.mem.ntags, &r.u.mem.tags);
        }
    } /* else a schema check alone: the command stays as it came */
    p->cur_t = NULL; /* the table may live on; its record is done */
    *out_push(L, p) = r;
    lua_settop(L, top);
    if (hook) { /* the commands the hook added: routed and checked, not hooked */
        size_t end = p->npend;
        for (size_t i = pend0; i < end; i++) process(L, p, &p->pend[i], 0);
        p->npend = pend0;
    }
}

typedef struct run_args {
    mmfs__policy *p;
    const mmfs__rec *in;
    size_t n;
} run_args;

static int run_protected(lua_State *L) {
    run_args *a = lua_touserdata(L, 1);
    lua_settop(L, 0);
    luaL_checkstack(L, RUN_SLOTS + 16, NULL);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_keys);
    for (int k = 1; k < K_N; k++) lua_rawgeti(L, 1, k);
    lua_remove(L, 1); /* the names at KEY(k) */
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_tags_mt); /* at TAGS_MT */
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_cmd_mt);  /* at CMD_MT */
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_tx);      /* at TX */
    for (size_t i = 0; i < a->n; i++) process(L, a->p, &a->in[i], 1);
    return 0;
}

/* The status and message for a failed protected call (STATUS, the error
** value at the top); FALLBACK is the status of an ordinary error. */
static int fail(lua_State *L, mmfs__policy *p, int status, int fallback) {
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int memerr = status == LUA_ERRMEM || (msg && strcmp(msg, "not enough memory") == 0);
    if (p->nomem) return mmfs__err(MMFS_NOMEM, "policy: out of memory");
    if (memerr && p->mem_refused_run && !p->over) p->over = PVM_OVER_MEM;
    if (memerr && p->time_refused && !p->over) p->over = PVM_OVER_TIME;
    switch (p->over) {
    case PVM_OVER_CALL:
        return mmfs__err(MMFS_LIMIT, "policy: %s ran past its budget of %llu instructions", p->what,
                         (unsigned long long)p->call_budget);
    case PVM_OVER_BATCH:
        return mmfs__err(MMFS_LIMIT, "policy: the batch ran past its budget of %llu instructions (in %s)",
                         (unsigned long long)p->lim.batch_budget, p->what);
    case PVM_OVER_MEM:
        return mmfs__err(MMFS_LIMIT, "policy: %s ran past the memory limit of %zu bytes", p->what, p->lim.mem_limit);
    case PVM_OVER_TIME:
        return mmfs__err(MMFS_LIMIT, "policy: %s ran past its time limit of %llu ms", p->what,
                         (unsigned long long)(p->time_limit_ns / 1000000u));
    }
    if (memerr) return mmfs__err(MMFS_NOMEM, "policy: %s: out of memory", p->what);
    if (msg) return mmfs__err(fallback, "%s", msg);
    return mmfs__err(fallback, "policy: %s raised a %s value", p->what, luaL_typename(L, -1));
}

/* Resets the per-run state. */
static void run_reset(lua_State *L, mmfs__policy *p) {
    p->over = PVM_OVER_NONE;
    p->nomem = 0;
    p->mem_refused = p->mem_refused_run = 0;
    p->time_refused = 0;
    p->deadline_ns = 0;
    /* 1 us per budgeted instruction, at least 1 s: far past what the
    ** budget allows at any ordinary speed (also under valgrind). */
    p->time_limit_ns = p->lim.hook_budget > UINT64_MAX / 1000u ? UINT64_MAX / 2 : p->lim.hook_budget * 1000u;
    if (p->time_limit_ns < 1000000000u) p->time_limit_ns = 1000000000u;
    p->call_used = p->batch_used = 0;
    p->tx_active = 0;
    p->npend = 0;
    p->cur_t = NULL;
    if (p->every_insn) {
        lua_sethook(L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
        p->every_insn = 0;
    }
}

int mmfs__policy_run(mmfs__policy *p, const mmfs__rec *in, size_t n, const mmfs__policy_store *st,
                     mmfs__cmds *out) {
    lua_State *L = p->L;
    run_args a = {p, in, n};
    int status, rc = MMFS_OK;
    run_reset(L, p);
    if (out->cap - out->n < n) { /* room for the commands as they came: no growing per command */
        mmfs__rec *v = realloc(out->v, (out->n + n) * sizeof *v);
        if (!v) return mmfs__err(MMFS_NOMEM, "policy: out of memory");
        out->v = v;
        out->cap = out->n + n;
    }
    p->st = st;
    p->out = out;
    p->call_budget = p->lim.hook_budget;
    p->what = "policy";
    status = pc_cpcall(L, run_protected, &a);
    if (status != LUA_OK) rc = fail(L, p, status, MMFS_REJECTED);
    p->tx_active = 0;
    p->st = NULL;
    p->out = NULL;
    lua_settop(L, 0);
    if (status != LUA_OK) {
        run_reset(L, p);
        lua_gc(L, LUA_GCCOLLECT, 0);
    }
    return rc;
}

/* ----------------------------------------------------------------- tx */

static mmfs__policy *tx_check(lua_State *L) {
    mmfs__policy *p = lua_touserdata(L, lua_upvalueindex(1));
    if (lua_topointer(L, 1) != p->tx_ptr) luaL_error(L, "policy: tx methods are called as tx:method(...)");
    if (!p->tx_active) luaL_error(L, "policy: tx used outside its hook call");
    return p;
}

/* A new command in the pending list, zeroed, of TYPE. */
static mmfs__rec *tx_add(lua_State *L, mmfs__policy *p, int type) {
    mmfs__rec *r;
    if (p->npend == p->cappend) {
        size_t cap = p->cappend ? p->cappend * 2 : 8;
        mmfs__rec *v = realloc(p->pend, cap * sizeof *v);
        if (!v) mmfs__pvm_nomem(L, p);
        p->pend = v;
        p->cappend = cap;
    }
    r = &p->pend[p->npend++];
    memset(r, 0, sizeof *r);
    r->type = type;
    return r;
}

static mmfs_slice tx_str(lua_State *L, mmfs__policy *p, int arg) {
    luaL_checktype(L, arg, LUA_TSTRING);
    return keep_str(L, p, arg);
}

static int tx_done(lua_State *L) {
    lua_pushboolean(L, 1);
    return 1;
}

static int tx_append_memory(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs_slice text = tx_str(L, p, 2);
    mmfs__rec *r;
    lua_settop(L, 4);
    if (lua_isnil(L, 3)) {
        lua_newtable(L);
        lua_replace(L, 3);
    }
    int64_t created_at = (int64_t)time(NULL);
    mmfs_slice route = {"default", 7};
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_getfield(L, 4, "created_at");
        if (!lua_isnil(L, -1)) {
            if (!pc_isintegral(L, -1)) luaL_argerror(L, 4, "created_at must be an integer");
            created_at = pc_toint64(L, -1);
        }
        lua_getfield(L, 4, "route");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 4, "route must be a string");
            route = keep_str(L, p, -1);
            if (route.len > MAX_ROUTE) luaL_argerror(L, 4, "route is longer than 256 bytes");
        }
        lua_pop(L, 2);
    }
    r = tx_add(L, p, MMFS__R_MEMORY);
    r->u.mem.text = text;
    r->u.mem.route = route;
    r->u.mem.created_at = created_at;
    r->u.mem.ntags = 0;
    r->u.mem.tags.len = 0;
    keep_tags(L, p, 3, "tx:append_memory", &r->u.mem.ntags, &r->u.mem.tags);
    return tx_done(L);
}

static int tx_delete_memory(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    if (!pc_isintegral(L, 2) || pc_toint64(L, 2) < 0) luaL_argerror(L, 2, "a memory id (integer) expected");
    tx_add(L, p, MMFS__R_DEL_MEMORY)->u.del_mem.id = (uint64_t)pc_toint64(L, 2);
    return tx_done(L);
}

static int tx_set_kv(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs_slice k = tx_str(L, p, 2), v = tx_str(L, p, 3);
    mmfs__rec *r = tx_add(L, p, MMFS__R_KV_SET);
    r->u.kv.key = k;
    r->u.kv.value = v;
    return tx_done(L);
}

static int tx_delete_kv(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs_slice k = tx_str(L, p, 2);
    tx_add(L, p, MMFS__R_KV_DEL)->u.kv.key = k;
    return tx_done(L);
}

static int tx_put_session(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs__rec s;
    luaL_checktype(L, 2, LUA_TTABLE);
    memset(&s, 0, sizeof s);
    s.type = MMFS__R_SESSION_PUT;
    s.u.sess.created_at = (int64_t)time(NULL);
    keep_session(L, p, 2, &s, "tx:put_session");
    *tx_add(L, p, MMFS__R_SESSION_PUT) = s;
    return tx_done(L);
}

static int tx_delete_session(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs_slice id = tx_str(L, p, 2);
    if (id.len == 0) luaL_argerror(L, 2, "a non-empty session id expected");
    tx_add(L, p, MMFS__R_SESSION_DEL)->u.sess.id = id;
    return tx_done(L);
}

static int tx_append_stream(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs_slice k = tx_str(L, p, 2), b = tx_str(L, p, 3);
    mmfs__rec *r = tx_add(L, p, MMFS__R_STREAM_APPEND);
    r->u.stream.key = k;
    r->u.stream.bytes = b;
    return tx_done(L);
}

static int tx_index(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs_slice k = tx_str(L, p, 2), t = tx_str(L, p, 3);
    mmfs__rec *r = tx_add(L, p, MMFS__R_DOC_INDEX);
    r->u.doc.key = k;
    r->u.doc.text = t;
    return tx_done(L);
}

static int tx_unindex(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs_slice k = tx_str(L, p, 2);
    tx_add(L, p, MMFS__R_DOC_UNINDEX)->u.doc.key = k;
    return tx_done(L);
}

static int tx_update_state(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs_slice v = tx_str(L, p, 2);
    tx_add(L, p, MMFS__R_STATE)->u.state.value = v;
    return tx_done(L);
}

static int store_error(lua_State *L, const char *what, int rc) {
    return luaL_error(L, "policy: %s: %s (%s)", what, mmfs_errmsg(NULL), mmfs_err_name(rc));
}

static int tx_get_kv(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs_slice k, v;
    int rc;
    k.ptr = luaL_checklstring(L, 2, &k.len);
    if (!p->st || !p->st->get_kv) return lua_pushnil(L), 1;
    rc = p->st->get_kv(p->st->ud, k, &v);
    if (rc == MMFS_NOTFOUND) return lua_pushnil(L), 1;
    if (rc != MMFS_OK) return store_error(L, "tx:get_kv", rc);
    pushs(L, v);
    return 1;
}

static int tx_get_memory(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs__rec r;
    int rc;
    if (!pc_isintegral(L, 2) || pc_toint64(L, 2) < 0) luaL_argerror(L, 2, "a memory id (integer) expected");
    if (!p->st || !p->st->get_memory) return lua_pushnil(L), 1;
    rc = p->st->get_memory(p->st->ud, (uint64_t)pc_toint64(L, 2), &r);
    if (rc == MMFS_NOTFOUND) return lua_pushnil(L), 1;
    if (rc != MMFS_OK) return store_error(L, "tx:get_memory", rc);
    lua_createtable(L, 0, 5);
    pc_pushint64(L, (int64_t)r.u.mem.id);
    lua_setfield(L, -2, "id");
    pushs(L, r.u.mem.text);
    lua_setfield(L, -2, "text");
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_tags_mt);
    push_tags(L, r.u.mem.ntags, r.u.mem.tags, lua_gettop(L));
    lua_remove(L, -2);
    lua_setfield(L, -2, "tags");
    pc_pushint64(L, r.u.mem.created_at);
    lua_setfield(L, -2, "created_at");
    pushs(L, r.u.mem.route);
    lua_setfield(L, -2, "route");
    return 1;
}

static int tx_get_session(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs_slice id;
    mmfs__rec r;
    int rc;
    id.ptr = luaL_checklstring(L, 2, &id.len);
    if (!p->st || !p->st->get_session) return lua_pushnil(L), 1;
    rc = p->st->get_session(p->st->ud, id, &r);
    if (rc == MMFS_NOTFOUND) return lua_pushnil(L), 1;
    if (rc != MMFS_OK) return store_error(L, "tx:get_session", rc);
    mmfs__pvm_push_session(L, &r);
    return 1;
}

/* --------------------------------------------------- loading a policy */

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

/* Compiles schemas.session (the table at IDX). */
static void compile_schema(lua_State *L, mmfs__policy *p, int idx) {
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
static void compile_policy(lua_State *L, mmfs__policy *p, int idx) {
    lua_getfield(L, idx, "route");
    if (lua_isfunction(L, -1)) p->ref_route = luaL_ref(L, LUA_REGISTRYINDEX);
    else if (!lua_isnil(L, -1)) luaL_error(L, "policy: route must be a function, got %s", luaL_typename(L, -1));
    else lua_pop(L, 1);

    lua_getfield(L, idx, "routes");
    if (lua_istable(L, -1)) {
        size_t n = 0;
        lua_pushnil(L);
        while (lua_next(L, -2)) n++, lua_pop(L, 1);
        p->noindex = calloc(n ? n : 1, sizeof *p->noindex);
        if (!p->noindex) mmfs__pvm_nomem(L, p);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            const char *name;
            if (lua_type(L, -2) != LUA_TSTRING || !lua_istable(L, -1))
                luaL_error(L, "policy: routes: each entry must be name = { options }");
            name = lua_tostring(L, -2);
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
            if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "policy: routes.%s.ttl must be a number (seconds)", name);
            lua_pop(L, 3);
        }
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
                luaL_error(L, "policy: schemas: only schemas.session is known");
            if (!lua_istable(L, -1)) luaL_error(L, "policy: schemas.session must be a table");
            compile_schema(L, p, -1);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "policy: schemas must be a table, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);

    lua_getfield(L, idx, "hooks");
    if (lua_istable(L, -1)) {
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
                           lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
            if (!lua_isfunction(L, -1)) luaL_error(L, "policy: hooks.%s must be a function", type_name[t]);
            lua_pushvalue(L, -1);
            p->ref_hook[t] = luaL_ref(L, LUA_REGISTRYINDEX);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "policy: hooks must be a table, got %s", luaL_typename(L, -1));
    }
    lua_pop(L, 1);

    lua_getfield(L, idx, "compaction");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
        luaL_error(L, "policy: compaction must be a table, got %s", luaL_typename(L, -1));
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
    static const luaL_Reg tx_fns[] = {{"append_memory", tx_append_memory},
                                      {"delete_memory", tx_delete_memory},
                                      {"set_kv", tx_set_kv},
                                      {"delete_kv", tx_delete_kv},
                                      {"put_session", tx_put_session},
                                      {"delete_session", tx_delete_session},
                                      {"append_stream", tx_append_stream},
                                      {"index", tx_index},
                                      {"unindex", tx_unindex},
                                      {"update_state", tx_update_state},
                                      {"get_kv", tx_get_kv},
                                      {"get_memory", tx_get_memory},
                                      {"get_session", tx_get_session},
                                      {NULL, NULL}};
    lua_settop(L, 0);
    /* First, before any Lua code runs (the count hook finds P here). */
    lua_pushlightuserdata(L, &reg_key);
    lua_pushlightuserdata(L, p);
    lua_rawset(L, LUA_REGISTRYINDEX);
    open_sandbox(L, p);

    for (int t = 1; t <= MMFS__R_MAX; t++) {
        if (!type_name[t]) continue;
        lua_pushstring(L, type_name[t]);
        p->ref_tname[t] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_createtable(L, K_N, 0);
    for (int k = 1; k < K_N; k++) {
        lua_pushstring(L, key_name[k]);
        lua_rawseti(L, -2, k);
    }
    p->ref_keys = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, tags_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, tags_newindex);
    lua_setfield(L, -2, "__newindex");
    p->ref_tags_mt = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 3); /* command tables: lazy fields */
    lua_pushlightuserdata(L, p);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_tags_mt);
    lua_pushcclosure(L, cmd_index, 2);
    lua_setfield(L, -2, "__index");
    lua_pushlightuserdata(L, p);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_tags_mt);
    pc_pushglobals(L);
    lua_getfield(L, -1, "next");
    lua_remove(L, -2);
    lua_pushcclosure(L, cmd_pairs, 3);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "cmd");
    lua_setfield(L, -2, "__metatable");
    p->ref_cmd_mt = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_newtable(L); /* tx: methods in its metatable, the object itself empty */
    lua_createtable(L, 0, 2);
    lua_createtable(L, 0, 13);
    pc_setfuncs(L, tx_fns, p);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "tx");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    p->tx_ptr = lua_topointer(L, -1);
    p->ref_tx = luaL_ref(L, LUA_REGISTRYINDEX);

    if (pc_loadtext(L, a->src, a->len, "=policy") != LUA_OK) lua_error(L);
    begin_call(p, "the policy chunk");
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1))
        luaL_error(L, "policy: the chunk must return a table (the policy), got %s", luaL_typename(L, -1));
    p->what = "policy";
    compile_policy(L, p, lua_gettop(L));
    return 0;
}

int mmfs__policy_new(const char *src, size_t len, const mmfs__policy_limits *lim, mmfs__policy **out) {
    mmfs__policy *p = calloc(1, sizeof *p);
    new_args a;
    int status;
    *out = NULL;
    if (!p) return mmfs__err(MMFS_NOMEM, "policy: out of memory");
    if (lim) p->lim = *lim;
    if (!p->lim.hook_budget) p->lim.hook_budget = DEFAULT_HOOK_BUDGET;
    if (!p->lim.batch_budget) p->lim.batch_budget = p->lim.hook_budget * 100;
    if (!p->lim.mem_limit) p->lim.mem_limit = DEFAULT_MEM_LIMIT;
    p->ref_route = p->ref_routes = p->ref_tags_mt = p->ref_cmd_mt = p->ref_tx = p->ref_keys = LUA_NOREF;
    for (int t = 0; t <= MMFS__R_MAX; t++) p->ref_hook[t] = p->ref_tname[t] = LUA_NOREF;

#if PC_LUAJIT && defined(MMFS_POLICY_GCCOUNT)
    p->L = NULL; /* test builds: take the fallback below even where GC64 has no need */
#else
    p->L = lua_newstate(l_alloc, p);
#endif
#if PC_LUAJIT
    if (!p->L) { /* x86-64 without GC64 refuses custom allocators */
        p->L = luaL_newstate();
        p->gccount = 1;
    }
#endif
    if (!p->L) {
        free(p);
        return mmfs__err(MMFS_NOMEM, "policy: cannot create a Lua state");
    }
#if PC_LUAJIT
    luaJIT_setmode(p->L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF); /* so the count hook fires */
#endif
    lua_sethook(p->L, count_hook, LUA_MASKCOUNT, HOOK_EVERY);
#if LUA_VERSION_NUM >= 504
    lua_gc(p->L, LUA_GCGEN, 0, 0); /* most garbage is one command's tables */
#endif

    run_reset(p->L, p);
    p->call_budget = p->lim.hook_budget;
    p->what = "the policy chunk";
    a.p = p;
    a.src = src;
    a.len = len;
    status = pc_cpcall(p->L, new_protected, &a);
    if (status != LUA_OK) {
        int rc = fail(p->L, p, status, MMFS_INVALID);
        mmfs__policy_free(p);
        return rc;
    }
    lua_settop(p->L, 0);
    lua_gc(p->L, LUA_GCCOLLECT, 0);
    run_reset(p->L, p);
    *out = p;
    return MMFS_OK;
}

void mmfs__policy_free(mmfs__policy *p) {
    if (!p) return;
    if (p->L) lua_close(p->L);
    for (size_t i = 0; i < p->nschema; i++) {
        free(p->schema[i].name);
        for (size_t j = 0; j < p->schema[i].nvals; j++) free((void *)p->schema[i].vals[j].ptr);
        free(p->schema[i].vals);
    }
    free(p->schema);
    for (size_t i = 0; i < p->nnoindex; i++) free(p->noindex[i]);
    free(p->noindex);
    free(p->pend);
    free(p->buf);
    free(p);
}

int mmfs__policy_route_indexed(const mmfs__policy *p, mmfs_slice route) {
    for (size_t i = 0; p && i < p->nnoindex; i++)
        if (strlen(p->noindex[i]) == route.len && memcmp(p->noindex[i], route.ptr, route.len) == 0) return 0;
    return 1;
}
