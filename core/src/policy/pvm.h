/*
** pvm.h: what the files of the policy VM share.  The VM is built for Lua
** 5.4 only, whatever Lua the host runs (see vm.h: it is a shared object of
** its own, loaded with its Lua kept apart from the host's).  Its files,
** one concept each:
**   limits.c   the capped allocator, the instruction budgets, the time
**              guard, and turning a failed run into a status
**   sandbox.c  the global table a policy sees
**   cmd.c      commands as Lua tables (lazy fields, tags as a set) and the
**              run over one batch: route, schema, hook
**   schema.c   schemas.session: compiling it, checking sessions
**   tx.c       the tx object a hook gets
**   load.c     compiling a policy's source into a VM
**   pattern.c  bounded string patterns; value.c the session field codec
**   vm.c       the VM's entry point when it is a shared object
** Nothing outside core/src/policy/ includes it.
*/
#ifndef MMFS_POLICY_PVM_H
#define MMFS_POLICY_PVM_H

#include "internal.h"
#include "policy.h"

#include "lcompat.h"
#include "lfields.h"

#if LUA_VERSION_NUM != 504 || PC_LUAJIT
#error "the policy VM is built against Lua 5.4 only (one policy language in every host)"
#endif

#define PVM_HOOK_EVERY 1000 /* instructions between two calls of the count hook */

/* Field names of command tables, prebuilt: during a run (cmd.c's
** run_protected frame) field name K sits at stack index PVM_KEY(K), the
** metatable of tag arrays at PVM_TAGS_MT, so setting and reading a field
** is a stack copy and a raw set or get, without interning the name again. */
enum { K_TYPE = 1, K_TEXT, K_TAGS, K_ROUTE, K_CREATED_AT, K_ID, K_KEY, K_VALUE, K_SESSION, K_BYTES, K_N };
extern const char *const mmfs__pvm_key_name[K_N];
#define PVM_KEY(k) (k)
#define PVM_TAGS_MT K_N
#define PVM_CMD_MT (K_N + 1) /* the metatable of command tables */
#define PVM_TX (K_N + 2)     /* the metatable of tx objects */
#define PVM_RUN_SLOTS (K_N + 2) /* the stack slots above, from 1 */
#define PVM_BIT(k) (1u << (k))

/* t[K] = the value on top (popped); T is an absolute index. */
static inline void pvm_setk(lua_State *L, int t, int k) {
    lua_pushvalue(L, PVM_KEY(k));
    lua_insert(L, -2);
    lua_rawset(L, t);
}

/* Pushes t[K] (raw); T is an absolute index. */
static inline void pvm_getk(lua_State *L, int t, int k) {
    lua_pushvalue(L, PVM_KEY(k));
    lua_rawget(L, t);
}

static inline void pvm_pushs(lua_State *L, mmfs_slice s) { lua_pushlstring(L, (const char *)s.ptr, s.len); }

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

    /* Memory: the capped allocator's count of the VM's own bytes, and the
    ** bytes of commands the policy produced (copied out of the VM, into
    ** the batch's arena): both count against lim.mem_limit. */
    size_t mem_used;
    size_t out_bytes;
    /* Some allocation was refused during this run.  Sticky: the next count
    ** hook raises the limit.  (Cleared by a later successful allocation,
    ** a pcall loop that keeps hitting the limit ran on, each refusal
    ** paying a full emergency collection, until the budget ran out.) */
    int mem_refused_run;

    /* A wall-clock guard for work the count hook cannot see: one Lua
    ** instruction that loops in C (a library function working through a
    ** huge argument).  The capped allocator checks
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
    int ref_keys;                      /* field names of command tables (cmd.c) */
    int ref_tx;                        /* the metatable of tx objects */
    const void *tx_ptr;
    pvm_sfield *schema;                /* schemas.session, NULL if none */
    size_t nschema;
    int schema_extra;
    char **noindex;                    /* route names with index = false */
    size_t nnoindex;
    char **ttl_route;                  /* routes.NAME.ttl: names and seconds (keep.c) */
    int64_t *ttl;
    size_t nttl;
    int ref_keep;                      /* compaction.keep, or LUA_NOREF */
    int ref_when;                      /* compaction.when, or LUA_NOREF */

    /* One run (mmfs__policy_run). */
    const mmfs__policy_store *st;
    mmfs__cmds *out;
    int tx_active;   /* a hook is running: tx may be used */
    /* The command table being processed (cmd.c): its identity, its
    ** record, the strings pushed for it, and which fields it holds. */
    const void *cur_t;
    const mmfs__rec *cur;
    void *cur_pu;
    unsigned cur_has;
    mmfs__rec *pend; /* commands a hook added through tx */
    size_t npend, cappend;

    /* Scratch for encoding session fields (value.c): fbuf for the codec,
    ** buf/buflen/bufcap name the same members (load.c frees buf). */
    union {
        mmfs__lbuf fbuf;
        struct {
            uint8_t *buf;
            size_t buflen, bufcap;
        };
    };
};

/* limits.c: charges N instructions to the current call and run; raises
** the budget's error (PVM_OVER_*) when either is spent. */
void mmfs__pvm_charge(lua_State *L, mmfs__policy *p, uint64_t n);

/* limits.c: raises "memory limit" (PVM_OVER_MEM) if NEED more bytes would
** pass the memory limit. */
void mmfs__pvm_need(lua_State *L, mmfs__policy *p, size_t need, const char *what);

/* limits.c: raises "out of memory" (a failed C allocation: MMFS_NOMEM). */
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

/* limits.c: the capped lua_Alloc (UD is the policy). */
void *mmfs__pvm_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* limits.c: makes P findable from L (the count hook's way to its policy)
** and installs the count hook; the first thing done to a new state. */
void mmfs__pvm_bind(lua_State *L, mmfs__policy *p);

/* limits.c: the policy of L. */
mmfs__policy *mmfs__pvm_of(lua_State *L);

/* limits.c: raises the error of the limit in p->over; from then on the
** count hook fires at every instruction, so a pcall cannot swallow it. */
int mmfs__pvm_raise_over(lua_State *L, mmfs__policy *p);

/* limits.c: starts a Lua call of WHAT with a fresh per-call budget. */
void mmfs__pvm_begin_call(mmfs__policy *p, const char *what);

/* limits.c: resets the per-run state (limits, flags, pending commands). */
void mmfs__pvm_reset(lua_State *L, mmfs__policy *p);

/* limits.c: the status for a failed protected call (STATUS, the error
** value at the top), its message set with mmfs__err; FALLBACK is the
** status of an ordinary error. */
int mmfs__pvm_fail(lua_State *L, mmfs__policy *p, int status, int fallback);

/* limits.c: counts N bytes the policy produced outside the VM (a
** command's strings, copied into the batch) against the memory limit;
** raises the limit's error (WHAT) past it. */
void mmfs__pvm_count_out(lua_State *L, mmfs__policy *p, size_t n, const char *what);

/* sandbox.c: builds the sandbox in the fresh global table of L. */
void mmfs__pvm_open_sandbox(lua_State *L, mmfs__policy *p);

/* cmd.c: builds the metatables of tag arrays and of command tables
** (p->ref_tags_mt, p->ref_cmd_mt). */
void mmfs__pvm_open_cmd(lua_State *L, mmfs__policy *p);

/* cmd.c: pushes the encoded tag list as an array with the set metatable,
** the table at stack index MT (absolute). */
void mmfs__pvm_push_tags(lua_State *L, uint32_t ntags, mmfs_slice tags, int mt);

/* cmd.c: a copy of the string at IDX in the run's output memory. */
mmfs_slice mmfs__pvm_keep_str(lua_State *L, mmfs__policy *p, int idx);

/* cmd.c: the tag array at IDX encoded into the output memory; when it
** holds the tags of (*NTAGS, *TAGS) on entry, that list is kept. */
void mmfs__pvm_keep_tags(lua_State *L, mmfs__policy *p, int idx, const char *what, uint32_t *ntags,
                         mmfs_slice *tags);

/* cmd.c: the session table at IDX into R (SESSION_PUT), copied to the
** output memory; R's created_at stays when the table has none. */
void mmfs__pvm_keep_session(lua_State *L, mmfs__policy *p, int idx, mmfs__rec *r, const char *what);

/* schema.c: compiles schemas.session (the table at IDX) into P. */
void mmfs__pvm_compile_schema(lua_State *L, mmfs__policy *p, int idx);

/* schema.c: raises "session field 'x': ..." unless the session table at
** IDX passes schemas.session. */
void mmfs__pvm_schema_check(lua_State *L, mmfs__policy *p, int idx);

/* schema.c: 1 if session R passes schemas.session, decided in C from the
** record; 0 if it fails or this check cannot tell (schema_check decides). */
int mmfs__pvm_schema_fast(const mmfs__policy *p, const mmfs__rec *r);

/* schema.c: frees what compile_schema made. */
void mmfs__pvm_free_schema(mmfs__policy *p);

/* tx.c: builds the metatable of tx objects (p->ref_tx); p->tx_ptr is the
** tx of the hook call running now. */
void mmfs__pvm_open_tx(lua_State *L, mmfs__policy *p);

/* The VM's side of policy.h (vm.c hands them to the engine). */
int mmfs__pvm_new(const char *src, size_t len, const mmfs__policy_limits *lim, mmfs__policy **out);
void mmfs__pvm_free(mmfs__policy *p);
int mmfs__pvm_run(mmfs__policy *p, const mmfs__rec *in, size_t n, const mmfs__policy_store *st, mmfs__cmds *out);
int mmfs__pvm_route_indexed(const mmfs__policy *p, mmfs_slice route);
int mmfs__pvm_route_ttl(const mmfs__policy *p, mmfs_slice route, int64_t *ttl);
int mmfs__pvm_has_keep(const mmfs__policy *p);
int mmfs__pvm_keep(mmfs__policy *p, const mmfs__rec *mem, int64_t now, const uint64_t *newer, int *keep);
int mmfs__pvm_when(mmfs__policy *p, const mmfs_store_stats *st, int *yes);

#endif
