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

static int tx_delete_memory(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    if (!pc_isintegral(L, 2) || pc_toint64(L, 2) < 0) luaL_argerror(L, 2, "a memory id (integer) expected");
    tx_add(L, p, MMFS__R_DEL_MEMORY)->u.del_mem.id = (uint64_t)pc_toint64(L, 2);
    return tx_done(L);
}

/* The write methods whose arguments are only strings, each kept whole in
** a field of its command: method, command type, the fields of mmfs__rec's
** u that arguments 2 (and 3) go to. */
#define TX_STR1_METHODS(X)                                                  \
    X(delete_kv, MMFS__R_KV_DEL, kv.key)                                    \
    X(unindex, MMFS__R_DOC_UNINDEX, doc.key)                                \
    X(update_state, MMFS__R_STATE, state.value)
#define TX_STR2_METHODS(X)                                                  \
    X(set_kv, MMFS__R_KV_SET, kv.key, kv.value)                             \
    X(append_stream, MMFS__R_STREAM_APPEND, stream.key, stream.bytes)       \
    X(index, MMFS__R_DOC_INDEX, doc.key, doc.text)

/* Both arguments are checked and kept before the command is added, so a
** bad argument adds nothing. */
#define TX_STR1_FN(name, type, f1)                                          \
    static int tx_##name(lua_State *L) {                                    \
        mmfs__policy *p = tx_check(L);                                      \
        mmfs_slice a = tx_str(L, p, 2);                                     \
        tx_add(L, p, type)->u.f1 = a;                                       \
        return tx_done(L);                                                  \
    }
#define TX_STR2_FN(name, type, f1, f2)                                      \
    static int tx_##name(lua_State *L) {                                    \
        mmfs__policy *p = tx_check(L);                                      \
        mmfs_slice a = tx_str(L, p, 2), b = tx_str(L, p, 3);                \
        mmfs__rec *r = tx_add(L, p, type);                                  \
        r->u.f1 = a;                                                        \
        r->u.f2 = b;                                                        \
        return tx_done(L);                                                  \
    }
TX_STR1_METHODS(TX_STR1_FN)
TX_STR2_METHODS(TX_STR2_FN)

static int tx_put_session(lua_State *L) {
    mmfs__policy *p = tx_check(L);
    mmfs__rec s;
    luaL_checktype(L, 2, LUA_TTABLE);
    memset(&s, 0, sizeof s);
    s.type = MMFS__R_SESSION_PUT;
    s.u.sess.created_at = (int64_t)time(NULL);
    mmfs__pvm_keep_session(L, p, 2, &s, "tx:put_session");
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
#define TX_REG(name, ...) {#name, tx_##name},
    static const luaL_Reg tx_fns[] = {{"append_memory", tx_append_memory},
                                      {"delete_memory", tx_delete_memory},
                                      {"put_session", tx_put_session},
                                      {"delete_session", tx_delete_session},
                                      TX_STR1_METHODS(TX_REG)
                                      TX_STR2_METHODS(TX_REG)
                                      {"get_kv", tx_get_kv},
                                      {"get_memory", tx_get_memory},
                                      {"get_session", tx_get_session},
                                      {NULL, NULL}};
#undef TX_REG
    lua_createtable(L, 0, 2); /* the metatable of tx objects: each hook call gets a new, empty one */
    lua_createtable(L, 0, 13);
    pc_setfuncs(L, tx_fns, p);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "tx");
    lua_setfield(L, -2, "__metatable");
    p->ref_tx = luaL_ref(L, LUA_REGISTRYINDEX);
}
