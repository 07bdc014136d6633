/*
** policy.h: the store's policy VM, seen from the Lua-free engine.  The
** implementation (core/src/policy/) runs every policy on a private Lua
** 5.4 in every host, loaded as a shared object of its own (see
** core/src/policy/vm.h); core/src/policy/host.c implements these
** functions by forwarding to it.  This header names no Lua type.
**
** A policy is a Lua chunk returning a table (API.md, "The policy script").
** The VM is private to one store handle and touched only under the writer
** lock, by one thread at a time.
*/
#ifndef MMFS_POLICY_H
#define MMFS_POLICY_H

#include "internal.h"

typedef struct mmfs__policy mmfs__policy;

typedef struct mmfs__policy_limits { /* all non-zero: the host fills them (hook.c) */
    uint64_t hook_budget;  /* VM instructions per hook call (API: hook_budget, 1e6) */
    uint64_t batch_budget; /* VM instructions per policy run over one batch */
    size_t mem_limit;      /* bytes the VM may allocate in all */
} mmfs__policy_limits;

/* What a hook's tx sees of the store, inside the writer lock.  Slices and
** records point into the mapped log. */
typedef struct mmfs__policy_store {
    void *ud;
    int (*get_kv)(void *ud, mmfs_slice key, mmfs_slice *value);    /* OK or NOTFOUND */
    int (*get_memory)(void *ud, uint64_t id, mmfs__rec *rec);      /* a MEMORY record */
    int (*get_session)(void *ud, mmfs_slice id, mmfs__rec *rec);   /* a SESSION_PUT record */
} mmfs__policy_store;

/* A list of commands the policy produces.  Bytes that a command's slices
** point to are allocated with ALLOC (the batch's arena: valid until the
** commit ends, freed by the caller). */
typedef struct mmfs__cmds {
    mmfs__rec *v;
    size_t n, cap;
    void *(*alloc)(void *ud, size_t n);
    void *ud;
} mmfs__cmds;

#ifdef MMFS_HAVE_POLICY

/* Compiles SRC (LEN bytes; text only, never bytecode) into a new sandboxed
** VM and runs the chunk under the limits; it must return a table.
** Errors: MMFS_INVALID ("policy:LINE: message" for a syntax or runtime
** error, a result that is not a table, an unknown key, something not
** built yet, or the VM's shared object that cannot be loaded),
** MMFS_LIMIT, MMFS_NOMEM. */
int mmfs__policy_new(const char *src, size_t len, const mmfs__policy_limits *lim, mmfs__policy **out);

void mmfs__policy_free(mmfs__policy *p);

/* Runs the policy over the N commands of one batch, in order: route
** (memories: sets rec.u.mem.route, may edit tags), the session schema
** (SESSION_PUT), then hooks[type](cmd, tx), which may edit the command,
** reject it, or add commands through tx (those are routed and
** schema-checked, not hooked, and follow the command that added them).
** Appends the resulting commands to OUT.  Bytes the VM produced are in
** OUT's allocator; commands and fields the policy left unchanged keep
** IN's slices (so IN's bytes must live as long as OUT's).
** Errors: MMFS_REJECTED (a hook said nil, reason, or raised; a schema
** violation, naming the field), MMFS_LIMIT (instruction budget or memory
** limit), MMFS_NOMEM.  The VM stays usable after any error. */
int mmfs__policy_run(mmfs__policy *p, const mmfs__rec *in, size_t n, const mmfs__policy_store *st,
                     mmfs__cmds *out);

/* 0 if the policy's routes[ROUTE].index is false, else 1. */
int mmfs__policy_route_indexed(const mmfs__policy *p, mmfs_slice route);

/* Compaction (compact.c; the VM's keep.c).  1 and *ttl = routes[ROUTE].ttl
** (seconds) when the route has one, else 0 and *ttl = 0. */
int mmfs__policy_route_ttl(const mmfs__policy *p, mmfs_slice route, int64_t *ttl);
/* 1 if the policy has compaction.keep. */
int mmfs__policy_has_keep(const mmfs__policy *p);
/* *keep = compaction.keep(mem, NOW, newer) for MEMORY record MEM, under
** the hook limits; NEWER[i] (may be NULL: zeros) is the number of live
** memories newer than MEM with its i-th tag.  Errors: MMFS_REJECTED (keep
** raised), MMFS_LIMIT, MMFS_NOMEM; the VM stays usable. */
int mmfs__policy_keep(mmfs__policy *p, const mmfs__rec *mem, int64_t now, const uint64_t *newer, int *keep);
/* *yes = compaction.when(stats) (0 when the policy has none), under the
** hook limits.  Errors as mmfs__policy_keep (then *yes = 0). */
int mmfs__policy_when(mmfs__policy *p, const mmfs_store_stats *st, int *yes);

#endif
#endif
