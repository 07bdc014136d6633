/*
** vm.c: the VM's entry point (vm.h) and, when the VM is a shared object
** of its own, the engine functions it uses, forwarded to the engine
** through the host table (a copy of err.c here would keep its messages
** where the engine never looks).
*/
#include "pvm.h"
#include "vm.h"

#include <stdarg.h>
#include <stdio.h>

/* The host of the call running on this thread (see vm.h). */
static _Thread_local const mmfs__pvm_host *host;

#ifndef MMFS_PVM_DIRECT
int mmfs__err(int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return host->set_err(code, msg);
}

const char *mmfs_errmsg(const mmfs_db *db) {
    (void)db;
    return host->errmsg();
}

const char *mmfs_err_name(int status) { return host->err_name(status); }
#endif

static int api_new(const mmfs__pvm_host *h, const char *src, size_t len, const mmfs__policy_limits *lim,
                   mmfs__policy **out) {
    host = h;
    return mmfs__pvm_new(src, len, lim, out);
}

static int api_run(const mmfs__pvm_host *h, mmfs__policy *p, const mmfs__rec *in, size_t n,
                   const mmfs__policy_store *st, mmfs__cmds *out) {
    host = h;
    return mmfs__pvm_run(p, in, n, st, out);
}

static int api_keep(const mmfs__pvm_host *h, mmfs__policy *p, const mmfs__rec *mem, int64_t now,
                    const uint64_t *newer, int *keep) {
    host = h;
    return mmfs__pvm_keep(p, mem, now, newer, keep);
}

static int api_when(const mmfs__pvm_host *h, mmfs__policy *p, const mmfs_store_stats *st, int *yes) {
    host = h;
    return mmfs__pvm_when(p, st, yes);
}

static const mmfs__pvm_api api = {MMFS__PVM_ABI,           sizeof(mmfs__rec),   api_new,  mmfs__pvm_free,
                                  api_run,                 mmfs__pvm_route_indexed, mmfs__pvm_route_ttl,
                                  mmfs__pvm_has_keep,      api_keep,                api_when};

__attribute__((visibility("default"))) const mmfs__pvm_api *mmfs_policy_vm(const mmfs__pvm_host *h) {
    return h && h->abi == MMFS__PVM_ABI ? &api : NULL;
}
