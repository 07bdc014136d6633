/*
** err.c: the error table, and the per-thread message of the last failure.
** Messages are per thread, not per handle, because one handle is shared by
** many threads: a message must describe the failure of the calling thread.
*/
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local char errmsg[512];

static const char *const names[] = {
#define MMFS__NAME(name, text) #name,
    MMFS_ERRORS(MMFS__NAME)
#undef MMFS__NAME
};

static const char *const texts[] = {
#define MMFS__TEXT(name, text) text,
    MMFS_ERRORS(MMFS__TEXT)
#undef MMFS__TEXT
};

const char *mmfs_err_name(int status) {
    if (status < 0 || status >= MMFS__NSTATUS) return "UNKNOWN";
    return names[status];
}

const char *mmfs_strerror(int status) {
    if (status < 0 || status >= MMFS__NSTATUS) return "unknown error";
    return texts[status];
}

const char *mmfs_errmsg(const mmfs_db *db) {
    (void)db;
    return errmsg[0] ? errmsg : "no error";
}

int mmfs__err(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return code;
}

int mmfs__err_sys(int errnum, const char *what, const char *path) {
    int code;
    switch (errnum) {
    case ENOSPC:
    case EDQUOT:
        code = MMFS_NOSPACE;
        break;
    case ENOMEM:
        code = MMFS_NOMEM;
        break;
    default:
        code = MMFS_IO;
    }
    return mmfs__err(code, "%s: %s: %s", path ? path : "?", what, strerror(errnum));
}

mmfs_slice mmfs_str(const char *s) {
    mmfs_slice r = {s, s ? strlen(s) : 0};
    return r;
}

void mmfs_free(void *list) { free(list); }
