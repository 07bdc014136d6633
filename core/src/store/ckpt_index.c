/*
** ckpt_index.c: the memories' index segments of checkpoints (section 5;
** ROOT/index/, docs/format.md).
**
** Owns: writing the segment of the memories a checkpoint adds, the tiered
** merge that keeps a checkpoint's list short, section 5's entries,
** mapping them at open, and removing index files no kept checkpoint lists.
**
** Invariants:
** - A checkpoint's segments hold its live, indexed memories below the end
**   of its last segment, with disjoint increasing docno ranges; the
**   memories above are indexed from the log after open (memory.c's drain).
** - A segment holds what the checkpoint's LSN says, whatever the live
**   index has drained since: the snapshot's memory table says which
**   memories and which are deleted.  New segments, merges and rewrites
**   are copied from the live index, its mapped segments and its in-memory
**   part alike (search/extract.c: no tokenizing); a range the live index
**   does not hold (after a re-index, a segment that did not map, or on any
**   error) is tokenized from the log (build): the same file either way.
**   Deleted memories whose records the log still has are in it, flagged
**   deleted, as the live index keeps them (search.h: df counts them until
**   compaction): a store reopened from its segments ranks as the handle
**   that wrote them.
** - The checkpoint that ends a compaction writes again every listed
**   segment holding memories the compaction dropped, without them: after
**   it, a term's df counts only the memories the log still has, as in a
**   store that never held the dropped ones.
** - A segment file is removed once no kept checkpoint of the current log
**   lists it (one from before a compaction is never loaded again) and it
**   is not newer than the newest kept checkpoint (a newer one is no
**   checkpoint's yet: checkpoints are written one at a time under
**   ckpt/lock).  A process that maps it keeps reading it after the unlink.
**   A rewrite at the LSN of the checkpoint before it may have the name
**   of a file that checkpoint lists: the rename replaces it, and a crash
**   before the new checkpoint leaves the old one listing a file whose
**   header checksum differs: its memories are indexed from the log.
** - A listed segment that is missing or damaged never makes open fail:
**   the segments from it on are not mapped and their memories are indexed
**   from the log (stats().index_segments says how many are mapped).
*/
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IX_ENT 24      /* bytes of one section 5 entry */
#define IX_SEGS_MAX 8  /* a checkpoint lists at most this many: more are merged */

/* ROOT/index, opened (made first with MAKE).  -1 on failure (errno). */
static int index_dir(const mmfs_db *db, int make) {
    char path[4200];
    snprintf(path, sizeof path, "%s/index", db->dir);
    if (make && mkdir(path, 0755) < 0 && errno != EEXIST) return -1;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && make) (void)mmfs__fsync_dir(db->dir);
    return fd;
}

/* Clamps [*lo, *hi) to S's memory table and to docnos. */
static void clamp(const snap *s, uint64_t *lo, uint64_t *hi) {
    if (*lo < s->mem_base) *lo = s->mem_base;
    if (*hi > s->mem_base + s->nents) *hi = s->mem_base + s->nents;
    if (*hi > MMFS__MEM_ID_MAX + 1) *hi = MMFS__MEM_ID_MAX + 1;
}

/* Is memory ID of S one a segment holds (what build indexes): not, live
** or deleted (MMFS__EX_*)?  Its record decoded into *R.  A deleted memory
** whose record this handle's compaction dropped is not (the engine still
** points at it in the old log until close; a reopened store knows it not). */
static uint8_t ent_state(snap *s, uint64_t id, mmfs__rec *r) {
    const mmfs__mem_ent *me = &s->ents[id - s->mem_base];
    if (!me->raw || (me->raw[5] & MMFS__RF_NOINDEX) ||
        mmfs__rec_decode(me->raw, mmfs__raw_len(me->raw), r) != MMFS_OK || r->u.mem.id != id)
        return MMFS__EX_OUT;
    if (!me->deleted) return MMFS__EX_LIVE;
    return mmfs__ckpt_in_log(s, me->raw) ? MMFS__EX_DELETED : MMFS__EX_OUT;
}

/* Indexes the live, indexed memories of S with ids in [lo, hi) into a new
** index, written as a segment of DIR: *ENT, *MADE = 0 when none. */
static int build(mmfs_db *db, snap *s, int dir, uint64_t lo, uint64_t hi, mmfs__ixent *ent, int *made) {
    *made = 0;
    mmfs__index *ix = mmfs__index_new();
    if (!ix) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (index)");
    int rc = mmfs__index_set_tokenizer(ix, db->log.tok_version, db->log.tok_lang);
    clamp(s, &lo, &hi);
    for (uint64_t id = lo; id < hi && rc == MMFS_OK; id++) {
        mmfs__rec r;
        uint8_t st = ent_state(s, id, &r);
        if (st == MMFS__EX_OUT) continue;
        /* a deleted memory whose record is still in the log keeps its
        ** postings, flagged deleted, as the live index does until
        ** compaction drops the record: the same df, the same ranking */
        mmfs_slice t; /* a compressed text: the engine's dictionaries are only added to */
        if ((rc = mmfs__mem_text(db->eng, &r, &t)) == MMFS_OK) rc = mmfs__index_add(ix, (uint32_t)id, t.ptr, t.len);
        if (rc == MMFS_OK && st == MMFS__EX_DELETED) mmfs__index_remove(ix, (uint32_t)id);
    }
    if (rc == MMFS_OK && mmfs__index_count(ix)) {
        rc = mmfs__index_write_segment(ix, dir, s->lsn, ent);
        *made = rc == MMFS_OK;
    }
    mmfs__index_free(ix);
    return rc;
}

/* As build, but copies the memories of [lo, hi) from the live index, its
** mapped segments and its in-memory part (no tokenizing;
** search/extract.c): the queue drained first so it covers S's memories.
** Which memories and which are deleted come from S, not from the live
** index (which may have seen deletes after S's LSN, and memories above
** hi).  MMFS_NOTFOUND when the live index lacks one (a re-index, a
** segment that did not map), MMFS_CORRUPT (a damaged segment): the caller
** builds instead. */
static int extract(mmfs_db *db, snap *s, int dir, uint64_t lo, uint64_t hi, mmfs__ixent *ent, int *made) {
    *made = 0;
    clamp(s, &lo, &hi);
    if (lo >= hi) return MMFS_NOTFOUND;
    uint8_t *keep = malloc(hi - lo);
    if (!keep) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (index)");
    mmfs__rec r;
    for (uint64_t id = lo; id < hi; id++) keep[id - lo] = ent_state(s, id, &r);
    mmfs__index *ix = NULL;
    /* the drain under rw's read side, as a search's; the copy under
    ** ixlock alone, so apply goes on meanwhile: an engine a reload
    ** replaces stays until close (recover.c), and the drain may add only
    ** memories past S's (ids >= next_mem >= hi) and deletes, and a
    ** re-index replaces mems.ix (extract then stops) */
    pthread_rwlock_rdlock(&db->rw);
    mmfs__engine *e = db->eng;
    int rc = mmfs__engine_index_drain(e);
    pthread_rwlock_unlock(&db->rw);
    if (rc == MMFS_OK) rc = mmfs__index_extract(&e->mems.ix, &e->mems.ixlock, (uint32_t)lo, (uint32_t)hi, keep, &ix);
    free(keep);
    if (rc == MMFS_OK && mmfs__index_count(ix)) {
        rc = mmfs__index_write_segment(ix, dir, s->lsn, ent);
        *made = rc == MMFS_OK;
    }
    mmfs__index_free(ix);
    return rc;
}

/* The segment of the memories of S in [lo, hi): copied from the live
** index, or else (or on any error) built from the log. */
static int segment(mmfs_db *db, snap *s, int dir, uint64_t lo, uint64_t hi, mmfs__ixent *ent, int *made) {
    if (extract(db, s, dir, lo, hi, ent, made) == MMFS_OK) return MMFS_OK;
    return build(db, s, dir, lo, hi, ent, made);
}

/* After this handle's compaction (the checkpoint that ends it): the
** listed segments L[0..*n) holding memories the compaction dropped are
** written again without them (a copy), so index/ shrinks as the log did;
** a segment left with none goes from the list.  A segment holds a memory
** S no longer has exactly when it holds more documents than S gives its
** range: between checkpoints a range's memories only go (compaction) or
** get deleted (still held, flagged). */
static int rewrite(mmfs_db *db, snap *s, int dir, mmfs__ixent *l, size_t *n) {
    int rc = MMFS_OK;
    for (size_t i = 0; i < *n && rc == MMFS_OK;) {
        uint64_t lo = l[i].lo, hi = l[i].hi, held = UINT64_MAX, want = 0;
        if (mmfs__index_segment_docs(dir, &l[i], &held) != MMFS_OK) held = UINT64_MAX; /* write it again */
        clamp(s, &lo, &hi);
        for (uint64_t id = lo; id < hi; id++) {
            mmfs__rec r;
            want += ent_state(s, id, &r) != MMFS__EX_OUT;
        }
        if (want >= held) {
            i++;
            continue;
        }
        mmfs__ixent e;
        int made;
        if ((rc = segment(db, s, dir, l[i].lo, l[i].hi, &e, &made))) break;
        if (made) {
            l[i++] = e;
        } else {
            memmove(&l[i], &l[i + 1], (*n - i - 1) * sizeof *l);
            --*n;
        }
    }
    return rc;
}

int mmfs__ckpt_index_make(mmfs_db *db, snap *s) {
    s->sum = &db->log.sum; /* ent_state may list the log's records (mmfs__ckpt_in_log) */
    /* the engine's list, copied under rw's read side: a reload (after
    ** another handle's compaction) swaps the engine under the write side */
    pthread_rwlock_rdlock(&db->rw);
    const mmfs__mems *m = &db->eng->mems;
    size_t n = m->nsegl;
    int bad = atomic_load(&m->seg_bad) == 2;
    mmfs__ixent *l = malloc((n + 2) * sizeof *l);
    if (l && n) memcpy(l, m->segl, n * sizeof *l);
    pthread_rwlock_unlock(&db->rw);
    if (!l) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
    /* a list from a newer checkpoint than S (another handle's) is not S's;
    ** one holding a damaged segment is not used again */
    while (n && l[n - 1].lsn > s->lsn) n--;
    if (bad) n = 0;
    int dir = index_dir(db, 1);
    if (dir < 0) {
        int rc = mmfs__err_sys(errno, "open", "index/");
        free(l);
        return rc;
    }
    int rc = MMFS_OK, made;
    if (atomic_load(&db->compacting)) rc = rewrite(db, s, dir, l, &n);
    uint64_t from = n ? l[n - 1].hi : 0;
    if (rc == MMFS_OK && from < s->next_mem && (rc = segment(db, s, dir, from, s->next_mem, &l[n], &made)) == MMFS_OK &&
        made)
        n++;
    /* Tiered merge: the adjacent pair covering the fewest docnos becomes
    ** one segment (a copy of the two) until few enough remain. */
    while (rc == MMFS_OK && n > IX_SEGS_MAX) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if ((uint64_t)l[i + 1].hi - l[i].lo < (uint64_t)l[best + 1].hi - l[best].lo) best = i;
        mmfs__ixent e;
        if ((rc = segment(db, s, dir, l[best].lo, l[best + 1].hi, &e, &made))) break;
        size_t gone = made ? 1 : 2;
        if (made) l[best] = e;
        memmove(&l[best + 2 - gone], &l[best + 2], (n - best - 2) * sizeof *l);
        n -= gone;
    }
    close(dir);
    if (rc) {
        free(l);
        return rc;
    }
    s->ixl = l;
    s->nixl = n;
    return MMFS_OK;
}

uint64_t mmfs__ckpt_index_count(const snap *s) { return s->nixl; }

void mmfs__ckpt_index_put(const snap *s, uint8_t *p) {
    for (size_t i = 0; i < s->nixl; i++, p += IX_ENT) {
        mmfs__st32(p, s->ixl[i].lo);
        mmfs__st32(p + 4, s->ixl[i].hi);
        mmfs__st64(p + 8, s->ixl[i].lsn);
        mmfs__st32(p + 16, s->ixl[i].crc);
        mmfs__st32(p + 20, 0);
    }
}

/* ------------------------------------------------------------ pruning */

typedef struct keep {
    mmfs__ixent *v;
    size_t n, cap;
} keep;

/* Adds the entries of checkpoint file LSN's section 5 to K.  Reads only
** its header (checked) and section 5 (not verified: at worst a file is
** kept).  A checkpoint of a log before a compaction (its first segment
** below FIRST, S's) lists nothing: open never loads it.  Errors: any, and
** then nothing is removed. */
static int keep_listed(mmfs_db *db, uint64_t lsn, uint32_t first, keep *k) {
    uint8_t h[CK_HDR];
    int fd = mmfs__ckpt_open_header(db, lsn, h);
    if (fd < 0) return errno == ENOENT ? MMFS_OK : MMFS_IO; /* pruned meanwhile */
    int rc = MMFS_IO;
    if (mmfs__ld32(h + H_FIRST_SEG) < first) {
        close(fd);
        return MMFS_OK;
    }
    const uint8_t *d = h + H_SEC + 16 * (SEC_INDEX - 1);
    uint64_t off = mmfs__ld64(d), cnt = mmfs__ld64(d + 8);
    if (cnt > 1u << 20) goto out;
    for (uint64_t i = 0; i < cnt; i++) {
        uint8_t e[IX_ENT];
        if (pread(fd, e, sizeof e, (off_t)(off + i * IX_ENT)) != (ssize_t)sizeof e) goto out;
        void *a = k->v;
        if (mmfs__grow(&a, &k->cap, k->n + 1, sizeof *k->v)) goto out;
        k->v = a;
        k->v[k->n++] = (mmfs__ixent){mmfs__ld32(e), mmfs__ld32(e + 4), mmfs__ld64(e + 8), mmfs__ld32(e + 16)};
    }
    rc = MMFS_OK;
out:
    close(fd);
    return rc;
}

/* Removes the files of index/ that no kept checkpoint lists and that are
** not newer than the newest one, and temporaries of processes that are
** gone.  Checkpoints are written one at a time (ckpt/lock, held here), so
** an unlisted file at or below that LSN is no checkpoint's in the making:
** one a crash left, or one S's rewrite or merge replaced. */
static void prune(mmfs_db *db, const snap *s) {
    uint64_t *v;
    size_t n;
    if (mmfs__ckpt_list(db, &v, &n, 0) != MMFS_OK) return;
    keep k = {0};
    uint64_t newest = s->lsn;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        if (v[i] > newest) newest = v[i];
        ok = keep_listed(db, v[i], s->first_seg, &k) == MMFS_OK;
    }
    free(v);
    for (size_t i = 0; i < s->nixl && ok; i++) {
        void *a = k.v;
        if ((ok = !mmfs__grow(&a, &k.cap, k.n + 1, sizeof *k.v))) {
            k.v = a;
            k.v[k.n++] = s->ixl[i];
        }
    }
    int dir = ok ? index_dir(db, 0) : -1;
    DIR *d = dir >= 0 ? fdopendir(dir) : NULL;
    if (!d && dir >= 0) close(dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        unsigned lo;
        unsigned long long lsn;
        int pid, used = 0;
        char tail[64];
        if (sscanf(de->d_name, "%10u-%20llu.%63s", &lo, &lsn, tail) != 3) continue;
        if (strncmp(tail, "idx.tmp.", 8) == 0) {
            if (sscanf(tail + 8, "%d.", &pid) == 1 && pid > 0 && kill(pid, 0) < 0 && errno == ESRCH)
                (void)unlinkat(dirfd(d), de->d_name, 0);
            continue;
        }
        if (strcmp(tail, "idx") != 0 || lsn > newest) continue;
        for (size_t i = 0; i < k.n && !used; i++) used = k.v[i].lo == lo && k.v[i].lsn == lsn;
        if (!used) (void)unlinkat(dirfd(d), de->d_name, 0);
    }
    if (d) closedir(d);
    free(k.v);
}

void mmfs__ckpt_index_done(mmfs_db *db, snap *s) {
    prune(db, s);
    pthread_rwlock_rdlock(&db->rw); /* as in make; checkpoints are serialised by cpmu */
    mmfs__mems *m = &db->eng->mems;
    free(m->segl);
    m->segl = s->ixl;
    m->nsegl = s->nixl;
    pthread_rwlock_unlock(&db->rw);
    s->ixl = NULL;
    s->nixl = 0;
}

/* ------------------------------------------------------------ loading */

int mmfs__ckpt_index_load(mmfs_db *db, mmfs__engine *e, uint64_t lsn, const uint8_t *p, uint64_t n) {
    mmfs__mems *m = &e->mems;
    mmfs__ixent *l = malloc((n + 1) * sizeof *l);
    if (!l) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
    uint64_t prev = 0;
    for (uint64_t i = 0; i < n; i++, p += IX_ENT) {
        l[i] = (mmfs__ixent){mmfs__ld32(p), mmfs__ld32(p + 4), mmfs__ld64(p + 8), mmfs__ld32(p + 16)};
        if (l[i].lo >= l[i].hi || l[i].lo < prev || l[i].lsn > lsn || mmfs__ld32(p + 20)) {
            free(l);
            return MMFS_CORRUPT;
        }
        prev = l[i].hi;
    }
    size_t used = 0;
    int dir = n ? index_dir(db, 0) : -1;
    for (; dir >= 0 && used < n; used++) {
        int rc = mmfs__index_map_segment(m->ix, dir, &l[used]);
        if (rc == MMFS_NOMEM) {
            close(dir);
            free(l);
            return rc;
        }
        if (rc) break; /* this one and the rest: indexed from the log */
    }
    if (dir >= 0) close(dir);
    /* the segments this checkpoint wrote know its deletes already */
    m->segs_fresh = mmfs__index_segments_end(m->ix);
    for (size_t i = used; i-- > 0 && l[i].lsn == lsn;) m->segs_fresh = l[i].lo;
    mmfs__mem_segs_below(e);
    if (used < n) atomic_store(&m->seg_bad, 1);
    free(m->segl);
    m->segl = l;
    m->nsegl = used;
    return MMFS_OK;
}
