/*
** ck_verify.c: a mapped checkpoint's checksums, checked when a part of
** it is first read (mmfs__ckfile, engine.h).  Owns the bitmap of blocks
** checked so far and the dropping of a file found bad.
**
** Why not at open: checking the whole file made open grow with the store
** (82 MB read at every open of a 1M-memory store).  A block is checked the
** first time anything in it is read, so open reads the header, the
** checksums and the small sections, and a get reads the block it needs.
**
** Invariants:
** - Nothing in a block is used before its checksum checked: callers ask
**   mmfs__ckf_ok for the bytes they are about to read.
** - A bit is set only after its block checked, with release order, so a
**   thread that sees it set also sees that the bytes were good (they are
**   immutable: the file is never written once renamed).
** - Once bad, always bad: reads that need the checkpoint fail with
**   MMFS_CORRUPT, never answer from it or without it.
*/
#include "checksum.h"
#include "engine.h"

#include <stdlib.h>
#include <unistd.h>

/* Checks block J of F; sets its bit or marks F bad. */
static int check_block(mmfs__ckfile *f, size_t j) {
    size_t lo = f->lo + (j << f->shift);
    size_t hi = lo + ((size_t)1 << f->shift);
    if (hi > f->hi) hi = f->hi;
    if (!mmfs__sum_check(f->sum, f->map + lo, hi - lo, f->sums + 16 * j)) {
        /* The first thread to find it removes the file (derived data:
        ** the next open uses an older checkpoint or the log). */
        if (!atomic_exchange(&f->bad, 1) && f->path) unlink(f->path);
        return 0;
    }
    atomic_fetch_or_explicit(&f->verified[j >> 6], (uint64_t)1 << (j & 63), memory_order_release);
    return 1;
}

int mmfs__ckf_ok(mmfs__ckfile *f, const void *p, size_t len) {
    if (!f) return 1;
    const uint8_t *b = p;
    if (b < f->map + f->lo || b > f->map + f->hi || len > (size_t)(f->map + f->hi - b)) return 0;
    if (atomic_load_explicit(&f->bad, memory_order_relaxed)) return 0;
    size_t first = (size_t)(b - f->map - f->lo) >> f->shift;
    size_t last = len ? (size_t)(b + len - 1 - f->map - f->lo) >> f->shift : first;
    for (size_t j = first; j <= last; j++) {
        uint64_t w = atomic_load_explicit(&f->verified[j >> 6], memory_order_acquire);
        if (!(w >> (j & 63) & 1) && !check_block(f, j)) return 0;
    }
    return 1;
}

int mmfs__ckf_bad(const mmfs__ckfile *f) { return f && atomic_load(&f->bad); }

void mmfs__ckf_free(mmfs__ckfile *f) {
    if (!f) return;
    free(f->verified);
    free(f->path);
    free(f);
}
