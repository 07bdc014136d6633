/*
** tx.c: the tx object a hook gets (API.md, "The policy script"): the
** write methods of a batch, whose commands follow the hooked one in the
** same frame, and get_kv, get_memory, get_session, which read the store
** as it is inside the writer lock.
**
** Invariants:
** - tx works only during the hook call it was passed to (p->tx_active);
**   a tx kept and used later raises.
** - What a tx command holds is copied into the batch's memory at once and
**   counted against the memory limit (cmd.c's out_alloc).
*/
#include "pvm.h"

#include <stdlib.h>
#include <time.h>

/* The policy, if argument 1 is the tx of the hook call running now; a tx
** kept from an earlier call (each call gets a new one) raises. */
static mmfs__policy *tx_check(lua_State *L) {
    mmfs__policy *p = lua_touserdata(L, lua_upvalueindex(1));
    if (p->tx_active && lua_topointer(L, 1) == p->tx_ptr) return p;
    if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_tx);
        if (lua_rawequal(L, -1, -2)) luaL_error(L, "policy: tx used outside its hook call");
        lua_pop(L, 2);
    }
    luaL_error(L, "policy: tx methods are called as tx:method(...)");
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
    return mmfs__pvm_keep_str(L, p, arg);
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
            route = mmfs__pvm_keep_str(L, p, -1);
            if (route.len > MMFS__MAX_ROUTE)
                luaL_argerror(L, 4, lua_pushfstring(L, "route is longer than %d bytes", MMFS__MAX_ROUTE));
        }
        lua_pop(L, 2);
    }
    r = tx_add(L, p, MMFS__R_MEMORY);
    r->u.mem.text = text;
    r->u.mem.route = route;
    r->u.mem.created_at = created_at;
    r->u.mem.ntags = 0;
    r->u.mem.tags.len = 0;
    mmfs__pvm_keep_tags(L, p, 3, "tx:append_memory", &r->u.mem.ntags, &r->u.mem.tags);
    return tx_done(L);
}

/* The other write methods take their command's fields as arguments, in
** the order of its row in the command table (record.h), each by its kind.
** Every argument is checked and kept before the command is added, so a
** bad argument adds nothing.  (append_memory, above, takes text, tags and
** an options table instead.) */
#define TXA_ID(f)
#define TXA_U64(f)                                                                                 \
    if (!pc_isintegral(L, arg) || pc_toint64(L, arg) < 0) luaL_argerror(L, arg, "a memory id (integer) expected"); \
    r.u.f = (uint64_t)pc_toint64(L, arg++);
#define TXA_STR(f) r.u.f = tx_str(L, p, arg++);
#define TXA_SID(f)                                                                                 \
    r.u.f = tx_str(L, p, arg);                                                                     \
    if (r.u.f.len == 0) luaL_argerror(L, arg, "a non-empty session id expected");                 \
    arg++;
#define TXA_SESS(f)                                                                                \
    luaL_checktype(L, arg, LUA_TTABLE);                                                            \
    r.u.f.created_at = (int64_t)time(NULL);                                                        \
    mmfs__pvm_keep_session(L, p, arg++, &r, "tx:put_session");
#define TXA_TIME(f) TXA_OWN
#define TXA_ROUTE(f) TXA_OWN
#define TXA_TAGS(f) TXA_OWN
#define TXA_OWN return tx_append_memory(L); /* its own arguments */
#define TXA_FIELD(kind, f, cf, k, what) TXA_##kind(f)
#define TXA_CASE(N, code, role, C, m, FIELDS, ...)                                                 \
    MMFS__IF_CMD_##role(case MMFS__R_##N : FIELDS(TXA_FIELD) break;)

/* tx:<command>(...): upvalue 1 the policy, 2 the command type. */
static int tx_command(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    int type = (int)lua_tointeger(L, lua_upvalueindex(2)), arg = 2;
    mmfs__rec r;
    memset(&r, 0, sizeof r);
    r.type = type;
    switch (type) {
        MMFS__RECORDS(TXA_CASE)
    }
    *tx_add(L, p, type) = r;
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
    pvm_pushs(L, v);
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
    pvm_pushs(L, r.u.mem.text);
    lua_setfield(L, -2, "text");
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_tags_mt);
    mmfs__pvm_push_tags(L, r.u.mem.ntags, r.u.mem.tags, lua_gettop(L));
    lua_remove(L, -2);
    lua_setfield(L, -2, "tags");
    pc_pushint64(L, r.u.mem.created_at);
    lua_setfield(L, -2, "created_at");
    pvm_pushs(L, r.u.mem.route);
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


void mmfs__pvm_open_tx(lua_State *L, mmfs__policy *p) {
    static const luaL_Reg tx_fns[] = {{"get_kv", tx_get_kv},
                                      {"get_memory", tx_get_memory},
                                      {"get_session", tx_get_session},
                                      {NULL, NULL}};
    static const struct {
        const char *name;
        int type;
    } tx_cmds[] = {
#define TX_CMD(C, code, name) {#name, code},
        MMFS_COMMANDS(TX_CMD)
#undef TX_CMD
    };
    lua_createtable(L, 0, 2); /* the metatable of tx objects: each hook call gets a new, empty one */
    lua_createtable(L, 0, 13);
    pc_setfuncs(L, tx_fns, p);
    for (size_t i = 0; i < sizeof tx_cmds / sizeof tx_cmds[0]; i++) { /* a write method per command */
        lua_pushlightuserdata(L, p);
        lua_pushinteger(L, tx_cmds[i].type);
        lua_pushcclosure(L, tx_command, 2);
        lua_setfield(L, -2, tx_cmds[i].name);
    }
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "tx");
    lua_setfield(L, -2, "__metatable");
    p->ref_tx = luaL_ref(L, LUA_REGISTRYINDEX);
}
