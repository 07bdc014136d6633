/*
** cmd.c: commands as Lua tables, and the run of a policy over one batch
** (mmfs__policy_run): route (memories), the session schema, then the
** command's hook, with the commands a hook adds through tx after it.
**
** Invariants:
** - Every Lua API call that may allocate or raise runs inside one
**   protected call per run, so an error or a refused allocation never
**   reaches the panic function.
** - After any run the stack is empty; after a failed one the garbage is
**   collected: the VM is ready for the next run.
** - Commands the policy leaves alone (no route, schema or hook applies)
**   are appended to OUT as they came, their slices pointing where IN's do
**   (the batch's own copies, alive until the commit ends).  Everything the
**   VM produced is copied into OUT's allocator and counted against the
**   memory limit (mmfs__pvm_count_out).
*/
#include "pvm.h"

#include <limits.h>
#include <stdlib.h>

#define ANY_FIELD (PVM_BIT(K_N) - PVM_BIT(K_TYPE)) /* the bits K_TYPE .. K_N - 1 */

/* "hook <name>" per command type, for messages (MMFS_COMMANDS). */
#define HOOK_WHAT(C, code, name) [code] = "hook " #name,
static const char *const hook_what[MMFS__R_MAX + 1] = {MMFS_COMMANDS(HOOK_WHAT)};

const char *const mmfs__pvm_key_name[K_N] = {NULL, "type", "text", "tags", "route", "created_at", "id", "key",
                                             "value", "session", "bytes"};

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

void mmfs__pvm_push_tags(lua_State *L, uint32_t ntags, mmfs_slice tags, int mt) {
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

/* N bytes of OUT's memory, counted against the memory limit. */
static void *out_alloc(lua_State *L, mmfs__policy *p, size_t n) {
    mmfs__pvm_count_out(L, p, n, p->what);
    void *m = p->out->alloc(p->out->ud, n ? n : 1);
    if (!m) mmfs__pvm_nomem(L, p);
    return m;
}

mmfs_slice mmfs__pvm_keep_str(lua_State *L, mmfs__policy *p, int idx) {
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
    pvm_getk(L, t, k);
    if (!pc_isintegral(L, -1)) bad_field(L, p, mmfs__pvm_key_name[k], "an integer", -1);
    v = pc_toint64(L, -1);
    lua_pop(L, 1);
    return v;
}

void mmfs__pvm_keep_tags(lua_State *L, mmfs__policy *p, int idx, const char *what, uint32_t *ntags, mmfs_slice *tags) {
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

void mmfs__pvm_keep_session(lua_State *L, mmfs__policy *p, int idx, mmfs__rec *r, const char *what) {
    mmfs_slice f;
    idx = pc_absindex(L, idx);
    if (!lua_istable(L, idx)) luaL_error(L, "policy: %s: the session must be a table, got %s", what, luaL_typename(L, idx));
    lua_getfield(L, idx, "id");
    if (lua_type(L, -1) != LUA_TSTRING || pc_rawlen(L, -1) == 0)
        luaL_error(L, "policy: %s: session.id must be a non-empty string, got %s", what, luaL_typename(L, -1));
    r->u.sess.id = mmfs__pvm_keep_str(L, p, -1);
    lua_getfield(L, idx, "intent_id");
    r->u.sess.has_intent = !lua_isnil(L, -1);
    if (r->u.sess.has_intent && lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "policy: %s: session.intent_id must be a string, got %s", what, luaL_typename(L, -1));
    r->u.sess.intent_id = r->u.sess.has_intent ? mmfs__pvm_keep_str(L, p, -1) : (mmfs_slice){"", 0};
    lua_getfield(L, idx, "payload");
    r->u.sess.has_payload = !lua_isnil(L, -1);
    if (r->u.sess.has_payload && lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "policy: %s: session.payload must be a string, got %s", what, luaL_typename(L, -1));
    r->u.sess.payload = r->u.sess.has_payload ? mmfs__pvm_keep_str(L, p, -1) : (mmfs_slice){"", 0};
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

/* The strings push_cmd gave a command table, by slot (see push_cmd).  A
** field that still holds the very same Lua string after the hook is
** unchanged: its original slice is kept and nothing is copied.  (The string
** is alive, referenced by the table, so its address cannot be reused.) */
typedef struct pushed {
    const char *s[K_N];
} pushed;

/* Pushes S and records its Lua copy in slot I (its key K_*) of PU. */
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
/* The fields of each command type as a table: K_TYPE and the keys of its
** fields (record.h), but for the ones the writer sets (kind ID). */
#define KBIT_ID(k)
#define KBIT_U64(k) | PVM_BIT(k)
#define KBIT_TIME(k) | PVM_BIT(k)
#define KBIT_STR(k) | PVM_BIT(k)
#define KBIT_SID(k) | PVM_BIT(k)
#define KBIT_ROUTE(k) | PVM_BIT(k)
#define KBIT_TAGS(k) | PVM_BIT(k)
#define KBIT_SESS(k) | PVM_BIT(k)
#define KBIT_FIELD(kind, f, cf, k, what) KBIT_##kind(k)
#define KBIT_ROW(N, code, role, C, m, FIELDS, ...)                                                 \
    MMFS__IF_CMD_##role([MMFS__R_##N] = PVM_BIT(K_TYPE) FIELDS(KBIT_FIELD), )
static const unsigned field_bits[MMFS__R_MAX + 1] = {MMFS__RECORDS(KBIT_ROW)};

static unsigned cmd_fields(int type) { return type > 0 && type <= MMFS__R_MAX ? field_bits[type] : 0; }

/* Pushing field K of R by its kind; strings are recorded in slot K of PU. */
#define PUSH_ID(f, kk)
#define PUSH_U64(f, kk) PUSH_IF(kk, pc_pushint64(L, (int64_t)r->u.f))
#define PUSH_TIME(f, kk) PUSH_IF(kk, pc_pushint64(L, r->u.f))
#define PUSH_STR(f, kk) PUSH_IF(kk, pushs_at(L, r->u.f, pu, kk))
#define PUSH_SID(f, kk) PUSH_STR(f, kk)
#define PUSH_ROUTE(f, kk) PUSH_STR(f, kk)
#define PUSH_TAGS(f, kk) PUSH_IF(kk, mmfs__pvm_push_tags(L, r->u.f.ntags, r->u.f.tags, mt))
#define PUSH_IF(kk, push)                                                                          \
    if (k == kk) {                                                                                 \
        push;                                                                                      \
        return;                                                                                    \
    }
#define PUSH_SESS(f, kk) PUSH_IF(kk, mmfs__pvm_push_session(L, r))
#define PUSH_FIELD(kind, f, cf, kk, what) PUSH_##kind(f, kk)
#define PUSH_CASE(N, code, role, C, m, FIELDS, ...)                                                \
    MMFS__IF_CMD_##role(case MMFS__R_##N : FIELDS(PUSH_FIELD) break;)

/* Pushes field K of R.  MT is the index of the tags metatable. */
static void push_field(lua_State *L, const mmfs__policy *p, const mmfs__rec *r, int k, pushed *pu, int mt) {
    if (k == K_TYPE) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_tname[r->type]);
        return;
    }
    switch (r->type) {
        MMFS__RECORDS(PUSH_CASE)
    }
    lua_pushnil(L);
}

/* Which of the fields in SET the key at IDX names, or 0. */
static int field_key(lua_State *L, int idx, unsigned set) {
    size_t n;
    const char *s;
    if (!set || lua_type(L, idx) != LUA_TSTRING) return 0;
    s = lua_tolstring(L, idx, &n);
    for (int k = 1; k < K_N; k++)
        if ((set & PVM_BIT(k)) && strlen(mmfs__pvm_key_name[k]) == n && memcmp(mmfs__pvm_key_name[k], s, n) == 0) return k;
    return 0;
}

/* Is the table at IDX the one being processed? */
static int is_current(lua_State *L, const mmfs__policy *p, int idx) {
    return p->cur_t && lua_topointer(L, idx) == p->cur_t;
}

/* Fills field K of the current command table at T (absolute) in. */
static void fill(lua_State *L, mmfs__policy *p, int t, int k, int mt) {
    lua_pushstring(L, mmfs__pvm_key_name[k]);
    push_field(L, p, p->cur, k, p->cur_pu, mt);
    lua_rawset(L, t);
    p->cur_has |= PVM_BIT(k);
}

/* cmd[k] for a key the table does not hold: a field, filled in. */
static int cmd_index(lua_State *L) {
    mmfs__policy *p = lua_touserdata(L, lua_upvalueindex(1));
    int k;
    if (!is_current(L, p, 1)) {
        if ((k = field_key(L, 2, ANY_FIELD)) != 0)
            return luaL_error(L, "policy: %s: cmd.%s read after the call that got cmd returned (copy what you "
                                 "need during the call)",
                              p->what, mmfs__pvm_key_name[k]);
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
        if (want & PVM_BIT(k)) fill(L, p, t, k, mt);
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
    if (p->cur_has & PVM_BIT(k)) return 0;
    pvm_getk(L, t, k);
    none = lua_isnil(L, -1);
    lua_pop(L, 1);
    return none;
}

/* Pushes field K of the current command table at T, filled in first if
** it was not. */
static void getf(lua_State *L, mmfs__policy *p, int t, int k) {
    if (untouched(L, p, t, k)) fill(L, p, t, k, PVM_TAGS_MT);
    pvm_getk(L, t, k);
}

/* Pushes command R as a table, empty but for its metatable (its fields are
** lazy), and makes it the current command.  A memory about to be routed
** gets room for the two fields routing fills in, tags and route. */
static void push_cmd(lua_State *L, mmfs__policy *p, const mmfs__rec *r, pushed *pu) {
    lua_createtable(L, 0, r->type == MMFS__R_MEMORY && p->ref_route != LUA_NOREF ? 2 : 0);
    lua_pushvalue(L, PVM_CMD_MT);
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
    pvm_getk(L, t, k);
    if (lua_type(L, -1) != LUA_TSTRING) bad_field(L, p, mmfs__pvm_key_name[k], "a string", -1);
    if (lstr && lua_tostring(L, -1) == lstr) s = orig;
    else s = mmfs__pvm_keep_str(L, p, -1);
    lua_pop(L, 1);
    return s;
}

/* Reading each kind of field K back from the table at T. */
#define RD_ID(f, kk)
#define RD_U64(f, kk)                                                                              \
    if (TOUCHED(kk)) {                                                                             \
        int64_t v = get_int(L, p, t, kk);                                                          \
        if (v < 0) luaL_error(L, "policy: %s: cmd.%s must not be negative", p->what, mmfs__pvm_key_name[kk]); \
        r->u.f = (uint64_t)v;                                                                      \
    }
#define RD_TIME(f, kk)                                                                             \
    if (TOUCHED(kk)) r->u.f = get_int(L, p, t, kk);
#define RD_STR(f, kk)                                                                              \
    if (TOUCHED(kk)) r->u.f = get_str_or(L, p, t, kk, r->u.f, pu->s[kk]);
#define RD_SID(f, kk)                                                                              \
    if (TOUCHED(kk)) {                                                                             \
        r->u.f = get_str_or(L, p, t, kk, r->u.f, pu->s[kk]);                                       \
        if (r->u.f.len == 0)                                                                       \
            luaL_error(L, "policy: %s: cmd.%s must not be empty", p->what, mmfs__pvm_key_name[kk]); \
    }
#define RD_ROUTE(f, kk)                                                                            \
    if (TOUCHED(kk)) {                                                                             \
        r->u.f = get_str_or(L, p, t, kk, r->u.f, pu->s[kk]);                                       \
        if (r->u.f.len > MMFS__MAX_ROUTE)                                                          \
            luaL_error(L, "policy: %s: cmd.%s is longer than %d bytes", p->what,                   \
                       mmfs__pvm_key_name[kk], MMFS__MAX_ROUTE);                                   \
    }
#define RD_TAGS(f, kk)                                                                             \
    if (TOUCHED(kk)) {                                                                             \
        pvm_getk(L, t, kk);                                                                        \
        mmfs__pvm_keep_tags(L, p, -1, p->what, &r->u.f.ntags, &r->u.f.tags);                       \
        lua_pop(L, 1);                                                                             \
    }
#define RD_SESS(f, kk)                                                                             \
    if (TOUCHED(kk)) {                                                                             \
        pvm_getk(L, t, kk);                                                                        \
        mmfs__pvm_keep_session(L, p, -1, r, p->what);                                              \
        lua_pop(L, 1);                                                                             \
    }
#define RD_FIELD(kind, f, cf, kk, what) RD_##kind(f, kk)
#define RD_CASE(N, code, role, C, m, FIELDS, ...)                                                  \
    MMFS__IF_CMD_##role(case MMFS__R_##N : FIELDS(RD_FIELD) break;)

/* Reads the command table at T back into R (a copy of the original, whose
** strings PU recorded): only the fields the policy read or set. */
static void read_cmd(lua_State *L, mmfs__policy *p, int t, mmfs__rec *r, const pushed *pu) {
#define TOUCHED(k) (!untouched(L, p, t, (k)))
    switch (r->type) {
        MMFS__RECORDS(RD_CASE)
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
    mmfs__pvm_begin_call(p, "route");
    lua_call(L, 1, 2);
    if (lua_type(L, -2) != LUA_TSTRING) {
        if (!lua_toboolean(L, -2)) reject(L, p, 2);
        luaL_error(L, "policy: route must return a route name (a string), or nil and a reason; got %s",
                   luaL_typename(L, -2));
    }
    if (pc_rawlen(L, -2) > MMFS__MAX_ROUTE) /* append_memory's own bound: the record could not hold it */
        luaL_error(L, "policy: route returned a route name longer than %d bytes", MMFS__MAX_ROUTE);
    if (p->ref_routes != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_routes);
        lua_pushvalue(L, -3);
        lua_rawget(L, -2);
        if (lua_isnil(L, -1)) luaL_error(L, "policy: route returned '%s', which is not in routes", lua_tostring(L, -4));
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    pvm_setk(L, t, K_ROUTE);
}

static void process(lua_State *L, mmfs__policy *p, const mmfs__rec *in, int with_hook);

/* Runs the policy over command IN; appends the result (and, after a
** hook, the commands the hook added) to OUT. */
static void process(lua_State *L, mmfs__policy *p, const mmfs__rec *in, int with_hook) {
    int t = in->type;
    int routed = t == MMFS__R_MEMORY && p->ref_route != LUA_NOREF;
    int schema = t == MMFS__R_SESSION_PUT && p->schema != NULL;
    int hook = with_hook && t >= 1 && t <= MMFS__R_MAX && p->ref_hook[t] != LUA_NOREF;
    int checked = schema && mmfs__pvm_schema_fast(p, in); /* the session as it came passes */
    int top = lua_gettop(L), cmd;
    size_t pend0 = p->npend;
    mmfs__rec r = *in;
    pushed pu = {{NULL}};

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
        mmfs__pvm_schema_check(L, p, -1);
        lua_pop(L, 1);
    }
    if (hook) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_hook[t]);
        lua_pushvalue(L, cmd);
        lua_createtable(L, 0, 0); /* this call's tx: one kept for later raises there */
        lua_pushvalue(L, PVM_TX);
        lua_setmetatable(L, -2);
        p->tx_ptr = lua_topointer(L, -1);
        mmfs__pvm_begin_call(p, hook_what[t]);
        p->tx_active = 1;
        lua_call(L, 2, 2);
        p->tx_active = 0;
        p->tx_ptr = NULL;
        if (!lua_toboolean(L, -2) && (lua_type(L, -2) == LUA_TBOOLEAN || !lua_isnil(L, -1))) reject(L, p, 2);
        lua_pop(L, 2);
        if (schema && (!checked || !untouched(L, p, cmd, K_SESSION))) { /* as the hook left it */
            getf(L, p, cmd, K_SESSION);
            mmfs__pvm_schema_check(L, p, -1);
            lua_pop(L, 1);
        }
        if (p->cur_has || !table_empty(L, cmd)) read_cmd(L, p, cmd, &r, &pu);
    } else if (routed) { /* route may change the route and the tags only */
        if (!untouched(L, p, cmd, K_ROUTE)) r.u.mem.route = get_str_or(L, p, cmd, K_ROUTE, r.u.mem.route, pu.s[K_ROUTE]);
        if (!untouched(L, p, cmd, K_TAGS)) {
            pvm_getk(L, cmd, K_TAGS);
            mmfs__pvm_keep_tags(L, p, -1, "route", &r.u.mem.ntags, &r.u.mem.tags);
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
    luaL_checkstack(L, PVM_RUN_SLOTS + 16, NULL);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_keys);
    for (int k = 1; k < K_N; k++) lua_rawgeti(L, 1, k);
    lua_remove(L, 1); /* the names at KEY(k) */
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_tags_mt); /* at PVM_TAGS_MT */
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_cmd_mt);  /* at PVM_CMD_MT */
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_tx);      /* at TX */
    for (size_t i = 0; i < a->n; i++) process(L, a->p, &a->in[i], 1);
    return 0;
}

int mmfs__pvm_run(mmfs__policy *p, const mmfs__rec *in, size_t n, const mmfs__policy_store *st,
                     mmfs__cmds *out) {
    lua_State *L = p->L;
    run_args a = {p, in, n};
    int status, rc = MMFS_OK;
    mmfs__pvm_reset(L, p);
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
    if (status != LUA_OK) rc = mmfs__pvm_fail(L, p, status, MMFS_REJECTED);
    p->tx_active = 0;
    p->st = NULL;
    p->out = NULL;
    lua_settop(L, 0);
    if (status != LUA_OK) {
        mmfs__pvm_reset(L, p);
        lua_gc(L, LUA_GCCOLLECT, 0);
    }
    return rc;
}


void mmfs__pvm_open_cmd(lua_State *L, mmfs__policy *p) {
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
    lua_createtable(L, K_N, 0); /* the field names, for run_protected's frame */
    for (int k = 1; k < K_N; k++) {
        lua_pushstring(L, mmfs__pvm_key_name[k]);
        lua_rawseti(L, -2, k);
    }
    p->ref_keys = luaL_ref(L, LUA_REGISTRYINDEX);
}
