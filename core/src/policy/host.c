/*
** host.c: the engine's side of the policy VM seam (vm.h): finds and opens
** the VM once per process and forwards policy.h's functions to it.  This
** file is part of the engine and includes no Lua header.
**
** Where the VM is looked for, in order: next to the object holding this
** code (the shared library, the Lua module, or a program linked with the
** static library), then the install libdir.  Nothing is taken from the
** environment.  When the VM cannot be opened, every policy call fails
** INVALID with the reason; a store without a policy never needs it.
*/
#include "vm.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const mmfs__pvm_api *vm;
static char vm_why[PATH_MAX + 512];
static pthread_once_t vm_once = PTHREAD_ONCE_INIT;

static int host_set_err(int code, const char *msg) { return mmfs__err(code, "%s", msg); }
static const char *host_errmsg(void) { return mmfs_errmsg(NULL); }

static const mmfs__pvm_host host = {MMFS__PVM_ABI, host_set_err, host_errmsg, mmfs_err_name};

#ifdef MMFS_PVM_DIRECT
static void load_vm(void) {
    vm = mmfs_policy_vm(&host);
    if (!vm) snprintf(vm_why, sizeof vm_why, "the linked policy VM has another ABI");
}
#else
/* Opens DIR/MMFS__PVM_FILE; 1 when it is the VM (vm set), else 0 with
** the reason appended to vm_why. */
static int try_dir(const char *dir, size_t dlen) {
    char path[PATH_MAX];
    size_t w = strlen(vm_why);
    if (dlen + 1 + sizeof MMFS__PVM_FILE > sizeof path) return 0;
    memcpy(path, dir, dlen);
    path[dlen] = '/';
    memcpy(path + dlen + 1, MMFS__PVM_FILE, sizeof MMFS__PVM_FILE);
    /* DEEPBIND: the VM and its liblua5.4 resolve lua_* among themselves
    ** first, even where the host (LuaJIT, Lua 5.1) exports its own. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) {
        const char *e = dlerror();
        snprintf(vm_why + w, sizeof vm_why - w, "%s%s", w ? "; " : "", e ? e : path);
        return 0;
    }
    mmfs__pvm_entry_fn entry;
    *(void **)&entry = dlsym(h, MMFS__PVM_ENTRY);
    const mmfs__pvm_api *api = entry ? entry(&host) : NULL;
    if (!api || api->abi != MMFS__PVM_ABI || api->rec_size != sizeof(mmfs__rec)) {
        snprintf(vm_why + w, sizeof vm_why - w, "%s%s: not this engine's policy VM (another build)", w ? "; " : "",
                 path);
        dlclose(h);
        return 0;
    }
    vm = api; /* kept open for the life of the process */
    return 1;
}

static void load_vm(void) {
    Dl_info di;
    char self[PATH_MAX];
    const char *obj = NULL;
    if (dladdr((void *)&load_vm, &di) && di.dli_fname && strchr(di.dli_fname, '/')) {
        obj = di.dli_fname;
    } else { /* the main program: dladdr gives its argv[0] */
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = '\0';
            obj = self;
        }
    }
    if (obj) {
        const char *slash = strrchr(obj, '/');
        if (try_dir(obj, (size_t)(slash - obj))) return;
    }
#ifdef MMFS_PVM_LIBDIR
    if (try_dir(MMFS_PVM_LIBDIR, strlen(MMFS_PVM_LIBDIR))) return;
#endif
}
#endif

/* The VM, or NULL with the reason recorded (MMFS_INVALID). */
static const mmfs__pvm_api *get_vm(void) {
    pthread_once(&vm_once, load_vm);
    if (!vm)
        mmfs__err(MMFS_INVALID, "policy: the policy VM (%s, Lua 5.4) cannot be loaded: %s", MMFS__PVM_FILE,
                  vm_why[0] ? vm_why : "not found");
    return vm;
}

int mmfs__policy_new(const char *src, size_t len, const mmfs__policy_limits *lim, mmfs__policy **out) {
    *out = NULL;
    if (!get_vm()) return MMFS_INVALID;
    return vm->policy_new(&host, src, len, lim, out);
}

void mmfs__policy_free(mmfs__policy *p) {
    if (p) vm->policy_free(p); /* a policy exists only if the VM does */
}

int mmfs__policy_run(mmfs__policy *p, const mmfs__rec *in, size_t n, const mmfs__policy_store *st,
                     mmfs__cmds *out) {
    return vm->policy_run(&host, p, in, n, st, out);
}

int mmfs__policy_route_indexed(const mmfs__policy *p, mmfs_slice route) {
    return p ? vm->route_indexed(p, route) : 1;
}

int mmfs__policy_route_ttl(const mmfs__policy *p, mmfs_slice route, int64_t *ttl) {
    *ttl = 0;
    return p ? vm->route_ttl(p, route, ttl) : 0;
}

int mmfs__policy_has_keep(const mmfs__policy *p) { return p ? vm->has_keep(p) : 0; }

int mmfs__policy_keep(mmfs__policy *p, const mmfs__rec *mem, int64_t now, const uint64_t *newer, int *keep) {
    return vm->keep(&host, p, mem, now, newer, keep);
}

int mmfs__policy_when(mmfs__policy *p, const mmfs_store_stats *st, int *yes) {
    *yes = 0;
    return p ? vm->when(&host, p, st, yes) : MMFS_OK;
}
