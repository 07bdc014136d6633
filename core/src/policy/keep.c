/*
** keep.c: what compaction asks the policy (compact.c): the ttl of a route
** (routes.NAME.ttl, read when the policy loads) and compaction.keep(mem,
** now), called once per live memory.
**
** Invariants:
** - keep runs in the same sandbox as hooks, under the same limits: a
**   fresh per-call instruction budget (hook_budget), the VM's memory
**   limit and its time guard.  A keep that raises or passes a limit fails
**   the call (REJECTED or LIMIT, naming compaction.keep); the VM stays
**   usable, and compaction then writes nothing.
** - mem looks as it does in hooks: id, text, tags (an array readable as a
**   set), route, created_at.  The third argument, newer, maps each of its
**   tags to the number of live memories with that tag newer than it (for
**   "keep the newest N per tag").
*/
#include "pvm.h"

#include <stdlib.h>

int mmfs__pvm_route_ttl(const mmfs__policy *p, mmfs_slice route, int64_t *ttl) {
    *ttl = 0;
    for (size_t i = 0; p && i < p->nttl; i++)
        if (strlen(p->ttl_route[i]) == route.len && memcmp(p->ttl_route[i], route.ptr, route.len) == 0) {
            *ttl = p->ttl[i];
            return 1;
        }
    return 0;
}

int mmfs__pvm_has_keep(const mmfs__policy *p) { return p && p->ref_keep != LUA_NOREF && p->ref_keep != 0; }

static int has_when(const mmfs__policy *p) { return p && p->ref_when != LUA_NOREF && p->ref_when != 0; }

typedef struct when_args {
    mmfs__policy *p;
    const mmfs_store_stats *st;
    int yes;
} when_args;

static int when_protected(lua_State *L) {
    when_args *a = lua_touserdata(L, 1);
    const mmfs_store_stats *st = a->st;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_when);
    lua_createtable(L, 0, 12);
#define F(name)                                                                                    \
    lua_pushinteger(L, (lua_Integer)st->name);                                                     \
    lua_setfield(L, -2, #name)
    F(memories);
    F(kv);
    F(sessions);
    F(streams);
    F(documents);
    F(log_bytes);
    F(live_bytes);
    F(dead_bytes);
    F(lsn);
    F(segments);
#undef F
    mmfs__pvm_begin_call(a->p, "compaction.when");
    lua_call(L, 1, 1);
    a->yes = lua_toboolean(L, -1);
    return 0;
}

/* Runs FN(ud) protected, under a fresh hook budget, as WHAT (named in
** errors); a failure leaves the VM reset and collected.  Returns MMFS_OK or
** the failure's status (MMFS_REJECTED, MMFS_LIMIT). */
static int run_guarded(mmfs__policy *p, const char *what, lua_CFunction fn, void *ud) {
    lua_State *L = p->L;
    mmfs__pvm_reset(L, p);
    p->call_budget = p->lim.hook_budget;
    p->what = what;
    int status = pc_cpcall(L, fn, ud), rc = MMFS_OK;
    if (status != LUA_OK) rc = mmfs__pvm_fail(L, p, status, MMFS_REJECTED);
    lua_settop(L, 0);
    if (status != LUA_OK) {
        mmfs__pvm_reset(L, p);
        lua_gc(L, LUA_GCCOLLECT, 0);
    }
    return rc;
}

int mmfs__pvm_when(mmfs__policy *p, const mmfs_store_stats *st, int *yes) {
    *yes = 0;
    if (!has_when(p)) return MMFS_OK;
    when_args a = {p, st, 0};
    int rc = run_guarded(p, "compaction.when", when_protected, &a);
    *yes = rc == MMFS_OK && a.yes;
    return rc;
}

typedef struct keep_args {
    mmfs__policy *p;
    const mmfs__rec *mem;
    int64_t now;
    const uint64_t *newer;
    int keep;
} keep_args;

static int keep_protected(lua_State *L) {
    keep_args *a = lua_touserdata(L, 1);
    const mmfs__rec *r = a->mem;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_tags_mt); /* 1 */
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->p->ref_keep);    /* 2 */
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)r->u.mem.id);
    lua_setfield(L, -2, "id");
    pvm_pushs(L, r->u.mem.text);
    lua_setfield(L, -2, "text");
    mmfs__pvm_push_tags(L, r->u.mem.ntags, r->u.mem.tags, 1);
    lua_setfield(L, -2, "tags");
    pvm_pushs(L, r->u.mem.route);
    lua_setfield(L, -2, "route");
    lua_pushinteger(L, (lua_Integer)r->u.mem.created_at);
    lua_setfield(L, -2, "created_at");
    lua_pushinteger(L, (lua_Integer)a->now);
    lua_createtable(L, 0, (int)r->u.mem.ntags);
    const uint8_t *q = r->u.mem.tags.ptr;
    for (uint32_t i = 0; i < r->u.mem.ntags; i++) {
        mmfs_slice t = mmfs__tag_next(&q);
        pvm_pushs(L, t);
        lua_pushinteger(L, a->newer ? (lua_Integer)a->newer[i] : 0);
        lua_rawset(L, -3);
    }
    mmfs__pvm_begin_call(a->p, "compaction.keep");
    lua_call(L, 3, 1);
    a->keep = lua_toboolean(L, -1);
    return 0;
}

int mmfs__pvm_keep(mmfs__policy *p, const mmfs__rec *mem, int64_t now, const uint64_t *newer, int *keep) {
    keep_args a = {p, mem, now, newer, 1};
    int rc = run_guarded(p, "compaction.keep", keep_protected, &a);
    *keep = a.keep;
    /* A raised message, or a limit met inside a library function
    ** ("string.rep ran past ..."), does not say whose it is: say it. */
    const char *msg = rc ? mmfs_errmsg(NULL) : NULL;
    if (msg && !strstr(msg, "compaction.keep")) {
        char copy[512];
        snprintf(copy, sizeof copy, "%s", msg);
        rc = mmfs__err(rc, "compaction.keep: %s", copy);
    }
    return rc;
}
