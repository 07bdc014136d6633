/*
** pvm.h: what the files of the policy VM share (policy.c: the state, the
** sandbox, the limits, running commands; pattern.c: bounded string
** patterns; value.c: the VM's side of the session field codec,
** core/src/policy/lfields.c).  Nothing
** outside core/src/policy/ includes it.
*/
#ifndef MMFS_POLICY_PVM_H
#define MMFS_POLICY_PVM_H

#include "internal.h"
#include "policy.h"

#include "lcompat.h"
#include "lfields.h"

/* Which limit stopped the policy (sticky until the run or load ends). */
enum { PVM_OVER_NONE, PVM_OVER_CALL, PVM_OVER_BATCH, PVM_OVER_MEM, PVM_OVER_TIME };

/* A compiled entry of schemas.session. */
typedef struct pvm_sfield {
    char *name;
    size_t len;
    int type;     /* PVM_T_*; PVM_T_ENUM: allowed values in enum_ref */
    int optional; /* "?" suffix, or optional = true in an enumeration */
    int enum_ref; /* registry reference of the enumeration table (a copy) */
    mmfs_slice *vals; /* PVM_T_ENUM: C copies of the string values */
    size_t nvals;
    int vals_fast;    /* every allowed value is a string: the C check can decide */
} pvm_sfield;

enum { PVM_T_STRING, PVM_T_INTEGER, PVM_T_NUMBER, PVM_T_BOOLEAN, PVM_T_TABLE, PVM_T_ENUM };

struct mmfs__policy {
    lua_State *L;
    mmfs__policy_limits lim;

    /* Memory: the capped allocator's count, or (gccount) the GC's own count
    ** checked from the count hook when the Lua refuses a custom allocator. */
    size_t mem_used;
    int gccount;
    int mem_refused;     /* the last growing allocation was refused */
    int mem_refused_run; /* some allocation was refused during this run */

    /* A wall-clock guard for work the count hook cannot see: one Lua
    ** instruction that loops in C (Lua 5.1 interning strings whose hashes
    ** collide walks a chain per new string).  The capped allocator checks
    ** the clock every 64 growing allocations against the current call's
    ** deadline (0: none) and refuses past it. */
    uint64_t deadline_ns, time_limit_ns;
    unsigned alloc_n;
    int time_refused;

    /* Instruction budget of the current call and of the current run. */
    uint64_t call_used, call_budget, batch_used;
    int over;        /* PVM_OVER_*: the limit that stopped the policy */
    int every_insn;  /* the count hook fires at every instruction */
    int nomem;       /* a C allocation failed (MMFS_NOMEM) */
    const char *what; /* what runs: "hook set_kv", "route", "the policy chunk" */

    /* The policy table, compiled. */
    int ref_route;                     /* LUA_NOREF: no route function */
    int ref_routes;                    /* the routes table, or LUA_NOREF */
    int ref_hook[MMFS__R_MAX + 1];     /* hooks[type] or LUA_NOREF */
    int ref_tname[MMFS__R_MAX + 1];    /* interned command type names */
    int ref_tags_mt;                   /* metatable of tag arrays */
    int ref_cmd_mt;                    /* metatable of command tables (lazy fields) */
    int ref_keys;                      /* field names of command tables (policy.c) */
    int ref_tx;                        /* the tx object, alive for the VM's life */
    const void *tx_ptr;
    pvm_sfield *schema;                /* schemas.session, NULL if none */
    size_t nschema;
    int schema_extra;
    char **noindex;                    /* route names with index = false */
    size_t nnoindex;

    /* One run (mmfs__policy_run). */
    const mmfs__policy_store *st;
    mmfs__cmds *out;
    int tx_active;   /* a hook is running: tx may be used */
    /* The command table being processed (policy.c): its identity, its
    ** record, the strings pushed for it, and which fields it holds. */
    const void *cur_t;
    const mmfs__rec *cur;
    void *cur_pu;
    unsigned cur_has;
    mmfs__rec *pend; /* commands a hook added through tx */
    size_t npend, cappend;

    /* Scratch for encoding session fields (value.c): fbuf for the codec,
    ** buf/buflen/bufcap name the same members (policy.c frees buf). */
    union {
        mmfs__lbuf fbuf;
        struct {
            uint8_t *buf;
            size_t buflen, bufcap;
        };
    };
};

/* policy.c: charges N instructions to the current call and run; raises
** the budget's error (PVM_OVER_*) when either is spent. */
void mmfs__pvm_charge(lua_State *L, mmfs__policy *p, uint64_t n);

/* policy.c: raises "memory limit" (PVM_OVER_MEM) if NEED more bytes would
** pass the memory limit. */
void mmfs__pvm_need(lua_State *L, mmfs__policy *p, size_t need, const char *what);

/* policy.c: raises "out of memory" (a failed C allocation: MMFS_NOMEM). */
int mmfs__pvm_nomem(lua_State *L, mmfs__policy *p);

/* pattern.c: replaces find, match, gmatch and gsub in the string table at
** the top of the stack with matchers whose steps are charged to P's
** instruction budget. */
void mmfs__pvm_open_patterns(lua_State *L, mmfs__policy *p);

/* value.c: pushes a new table with the session of R (SESSION_PUT): id,
** intent_id, created_at, payload and the decoded fields.  Raises for
** malformed fields. */
void mmfs__pvm_push_session(lua_State *L, const mmfs__rec *r);

/* value.c: encodes the session table at IDX (its fields other than id,
** intent_id, created_at, payload) into P's scratch buffer; the result is
** valid until the next call (empty when there is no other field).
** Raises "session field 'x': ..." for what the encoding cannot hold. */
mmfs_slice mmfs__pvm_encode_fields(lua_State *L, mmfs__policy *p, int idx);

/* value.c: 1 if the string at IDX is id, intent_id, created_at or payload. */
int mmfs__pvm_is_reserved(lua_State *L, int idx);

#endif
