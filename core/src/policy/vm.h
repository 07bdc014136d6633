/*
** vm.h: the seam between the engine and the policy VM.  The VM
** (core/src/policy/, pvm.h) runs every policy on one private Lua 5.4,
** whatever Lua the host process runs (DESIGN.md, "One policy language in
** every process"): it is built as a shared object of its own,
** PVM_FILE, linked against the system's liblua5.4, and the engine opens
** it with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND), so its lua_*
** symbols bind to Lua 5.4 even inside a LuaJIT or Lua 5.1 host, and the
** host's never see them.  Sanitizer builds (ASan refuses RTLD_DEEPBIND)
** link the VM into the engine instead (MMFS_PVM_DIRECT).
**
** Across the seam go only this header's two tables: the VM's entry points
** and, the other way, the engine's error functions (the VM's mmfs__err
** must set the engine's per-thread message, not a copy of its own).
*/
#ifndef MMFS_POLICY_VM_H
#define MMFS_POLICY_VM_H

#include "policy.h"

/* Bumped whenever this header or a struct it passes (mmfs__rec,
** mmfs__cmds, mmfs__policy_store, mmfs__policy_limits) changes. */
#define MMFS__PVM_ABI 2

/* The VM's file name; the engine looks for it next to the object that
** holds the engine (libmemmapfs.so, the Lua module core.so, or the
** program), then in the install libdir. */
#define MMFS__PVM_FILE "libmemmapfs-policy.so"

/* The VM's one exported symbol. */
#define MMFS__PVM_ENTRY "mmfs_policy_vm"

/* What the engine gives the VM. */
typedef struct mmfs__pvm_host {
    unsigned abi;
    int (*set_err)(int code, const char *msg); /* records MSG for this thread, returns CODE */
    const char *(*errmsg)(void);               /* this thread's last message */
    const char *(*err_name)(int code);
} mmfs__pvm_host;

/* What the VM gives the engine: policy.h's functions.  The calls that can
** fail take the caller's host table: two engines in one process (the Lua
** module and libmemmapfs.so under LuaJIT's FFI) may share one VM, and
** each must get its errors in its own per-thread message. */
typedef struct mmfs__pvm_api {
    unsigned abi;
    size_t rec_size; /* sizeof(mmfs__rec) as the VM was built: a mismatch is refused */
    int (*policy_new)(const mmfs__pvm_host *h, const char *src, size_t len, const mmfs__policy_limits *lim,
                      mmfs__policy **out);
    void (*policy_free)(mmfs__policy *p);
    int (*policy_run)(const mmfs__pvm_host *h, mmfs__policy *p, const mmfs__rec *in, size_t n,
                      const mmfs__policy_store *st, mmfs__cmds *out);
    int (*route_indexed)(const mmfs__policy *p, mmfs_slice route);
    /* ABI 2: compaction (keep.c) */
    int (*route_ttl)(const mmfs__policy *p, mmfs_slice route, int64_t *ttl);
    int (*has_keep)(const mmfs__policy *p);
    int (*keep)(const mmfs__pvm_host *h, mmfs__policy *p, const mmfs__rec *mem, int64_t now,
                const uint64_t *newer, int *keep);
    int (*when)(const mmfs__pvm_host *h, mmfs__policy *p, const mmfs_store_stats *st, int *yes);
} mmfs__pvm_api;

/* The entry point: returns the VM's table, or NULL when HOST's ABI is not
** the VM's. */
typedef const mmfs__pvm_api *(*mmfs__pvm_entry_fn)(const mmfs__pvm_host *host);

#ifdef MMFS_PVM_DIRECT
const mmfs__pvm_api *mmfs_policy_vm(const mmfs__pvm_host *host);
#endif

#endif
