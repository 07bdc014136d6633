/*
** limits.c: what keeps a policy bounded (pvm.h): the capped allocator,
** the instruction budgets per call and per run (a count hook), a
** wall-clock guard for work the count hook cannot see, and the status a
** failed run maps to.
**
** Invariants:
** - Which status an error maps to is decided by flags set where it was
**   raised (p->over: a limit; p->nomem: a failed C allocation), never by
**   parsing messages; anything else a policy raises is the caller's
**   fallback (REJECTED for a run, INVALID for loading).
** - Once a limit is hit, the count hook fires at every instruction and
**   raises again, so neither pcall nor a loop in an error handler can
**   outlive the limit.
** - The memory limit covers the VM's own bytes and the bytes of the
**   commands the policy produced (a hook's tx commands, edited fields):
**   a hook cannot commit more than the limit by copying out of the VM.
*/
#include "pvm.h"

#include <stdlib.h>
#include <time.h>

static char reg_key; /* registry[&reg_key] = the policy (light userdata) */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The allocator: counts bytes and refuses to pass the memory limit, or the
** wall-clock guard of the current call (see pvm.h). */
void *mmfs__pvm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    mmfs__policy *p = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        p->mem_used -= old;
        return NULL;
    }
    if (nsize > old && p->mem_used - old + nsize > p->lim.mem_limit) {
        p->mem_refused_run = 1;
        return NULL;
    }
    if (nsize > old && p->deadline_ns && (++p->alloc_n & 63) == 0 && now_ns() > p->deadline_ns) {
        p->time_refused = 1;
        return NULL;
    }
    void *n = realloc(ptr, nsize);
    if (!n) return NULL;
    p->mem_used = p->mem_used - old + nsize;
    return n;
}

mmfs__policy *mmfs__pvm_of(lua_State *L) {
    mmfs__policy *p;
    lua_pushlightuserdata(L, &reg_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    p = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return p;
}

/* Bytes the policy holds now: the VM's own and the commands it made. */
static size_t mem_now(const mmfs__policy *p) { return p->mem_used + p->out_bytes; }

int mmfs__pvm_raise_over(lua_State *L, mmfs__policy *p) {
    if (!p->every_insn) {
        lua_sethook(L, lua_gethook(L), LUA_MASKCOUNT, 1);
        p->every_insn = 1;
    }
    return luaL_error(L, "policy: %s: limit exceeded", p->what);
}

static void check_limits(lua_State *L, mmfs__policy *p) {
    if (p->over) mmfs__pvm_raise_over(L, p);
    if (p->call_used > p->call_budget) p->over = PVM_OVER_CALL;
    else if (p->batch_used > p->lim.batch_budget) p->over = PVM_OVER_BATCH;
    else if (p->mem_refused_run) p->over = PVM_OVER_MEM; /* sticky: see pvm.h */
    else if (p->time_refused) p->over = PVM_OVER_TIME;
    if (p->over) mmfs__pvm_raise_over(L, p);
}

static void count_hook(lua_State *L, lua_Debug *ar) {
    mmfs__policy *p = mmfs__pvm_of(L);
    (void)ar;
    if (!p) return;
    p->call_used += PVM_HOOK_EVERY;
    p->batch_used += PVM_HOOK_EVERY;
    check_limits(L, p);
}

void mmfs__pvm_charge(lua_State *L, mmfs__policy *p, uint64_t n) {
    p->call_used += n;
    p->batch_used += n;
    check_limits(L, p);
}

void mmfs__pvm_need(lua_State *L, mmfs__policy *p, size_t need, const char *what) {
    size_t now = mem_now(p);
    if (need > p->lim.mem_limit || now > p->lim.mem_limit - need) {
        p->over = PVM_OVER_MEM;
        p->what = what;
        mmfs__pvm_raise_over(L, p);
    }
}

int mmfs__pvm_nomem(lua_State *L, mmfs__policy *p) {
    p->nomem = 1;
    return luaL_error(L, "out of memory");
}

void mmfs__pvm_begin_call(mmfs__policy *p, const char *what) {
    p->what = what;
    p->call_used = 0;
    p->deadline_ns = now_ns() + p->time_limit_ns;
}

int mmfs__pvm_fail(lua_State *L, mmfs__policy *p, int status, int fallback) {
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

void mmfs__pvm_reset(lua_State *L, mmfs__policy *p) {
    p->over = PVM_OVER_NONE;
    p->nomem = 0;
    p->mem_refused_run = 0;
    p->time_refused = 0;
    p->deadline_ns = 0;
    /* 1 us per budgeted instruction, at least 1 s: far past what the
    ** budget allows at any ordinary speed (also under valgrind). */
    p->time_limit_ns = p->lim.hook_budget > UINT64_MAX / 1000u ? UINT64_MAX / 2 : p->lim.hook_budget * 1000u;
    if (p->time_limit_ns < 1000000000u) p->time_limit_ns = 1000000000u;
    p->call_used = p->batch_used = 0;
    p->tx_active = 0;
    p->out_bytes = 0;
    p->npend = 0;
    p->cur_t = NULL;
    if (p->every_insn) {
        lua_sethook(L, count_hook, LUA_MASKCOUNT, PVM_HOOK_EVERY);
        p->every_insn = 0;
    }
}


void mmfs__pvm_count_out(lua_State *L, mmfs__policy *p, size_t n, const char *what) {
    mmfs__pvm_need(L, p, n, what);
    p->out_bytes += n;
}

void mmfs__pvm_bind(lua_State *L, mmfs__policy *p) {
    lua_pushlightuserdata(L, &reg_key);
    lua_pushlightuserdata(L, p);
    lua_rawset(L, LUA_REGISTRYINDEX);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, PVM_HOOK_EVERY);
}
