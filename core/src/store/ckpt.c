/*
** ckpt.c: checkpoints.  Owns ROOT/ckpt/ (the file format, in
** docs/format.md; its constants in ckpt.h): naming and listing the files,
** mmfs_checkpoint (building the file from a snapshot, ckpt_snap.c, and
** writing it), pruning, and the background checkpointer.  Loading the
** newest valid checkpoint at open is ckpt_load.c (mmfs__ckpt_load).
**
** A checkpoint is the engine's state at an LSN, written as positions of
** records in the log (segment << 40 | offset), never as copies of values:
**   - the kv map as a hash table and a key-ordered table that the engine
**     reads through mmap (kv.c: lookups ask the newer records first, then
**     the mapped tables), so neither open time nor heap grows with keys;
**   - the memory table (per id: position, route, deleted; the live ids by
**     time; the routes; each tag's live ids), read through mmap the same
**     way (memory.c);
**   - every other live record (sessions, stream chunks, documents, the
**     state, the policy) as one list in log order, which open applies
**     again (no log scan, no checksums, only live records);
**   - the ends of the sealed segments before it, so open skips them.
** It ends at an *anchor*: the last frame it covers, named by segment,
** offset and first LSN.  Open checks that frame in the log (its header,
** checksum and LSNs) before trusting the file, so a checkpoint of another
** log (a repaired tail, a copied directory, a compaction's new segments)
** is never applied; MANIFEST's first_segment must also be the one it was
** made against.
**
** Invariants:
** - The log stays the truth.  A checkpoint is derived, immutable, and
**   skipped when anything is off (checksum, size, format, first_segment,
**   tokenizer, anchor, a position outside the log): open then tries the
**   next older one, then the whole log.  Nothing here ever changes the
**   log, and a failed open writes nothing.
** - A checkpoint covers only frames that are durable: the anchor's
**   segment is fdatasync'd before the file is written (older segments
**   were synced before their successor existed), so a crash cannot leave
**   a checkpoint ahead of the log.
** - Files appear whole: written under a temporary name, fsync'd, renamed,
**   ckpt/ fsync'd; only then are all but the newest two removed.
** - Written holding the writer mutex only while picking the LSN and the
**   engine's read side while copying record pointers (ckpt_snap.c);
**   hashing and writing the file hold no lock but cpmu.
**
** The full-text indexes are not in the file (format section 5 is kept
** for index segments; not built yet): after loading, the memories' index
** work is one queued op that the first search or write does (the drain
** reads their texts then), the documents' index is built as they are
** applied.
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
#include <time.h>
#include <unistd.h>

size_t mmfs__ckpt_entsize(uint32_t kind) {
    switch (kind) {
    case SEC_SEGMENTS: return 16;
    case SEC_KV_HASH: return 16;
    case SEC_KV_ORDER: return 8;
    case SEC_RECORDS: return 8;
    case SEC_INDEX: return 8;
    case SEC_MEM_ENTS: return 16;
    case SEC_MEM_TIME: return 8;
    case SEC_ROUTES: return 1;
    case SEC_TAGS: return 1;
    default: return 0;
    }
}

static void ck_dir(const mmfs_db *db, char *buf, size_t len) { snprintf(buf, len, "%s/ckpt", db->dir); }

void mmfs__ckpt_path(const mmfs_db *db, uint64_t lsn, char *buf, size_t len) {
    snprintf(buf, len, "%s/ckpt/%020llu.ckpt", db->dir, (unsigned long long)lsn);
}

/* ---------------------------------------------------------------- listing */

static int cmp_u64_desc(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x > y ? -1 : x < y;
}

/* The LSNs of the checkpoint files in ckpt/, newest first (*n = 0 when
** the directory is missing).  With CLEAN, removes temporaries left by
** processes that are gone. */
int mmfs__ckpt_list(mmfs_db *db, uint64_t **out, size_t *n, int clean) {
    char dir[4200];
    ck_dir(db, dir, sizeof dir);
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? MMFS_OK : mmfs__err_sys(errno, "open directory", dir);
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) {
                int err = errno;
                free(v);
                closedir(d);
                return mmfs__err_sys(err, "read directory", dir);
            }
            break;
        }
        unsigned long long lsn;
        char tail[64];
        int pid;
        if (sscanf(e->d_name, "%20llu.%63s", &lsn, tail) != 2 || strlen(e->d_name) < 25) continue;
        if (clean && sscanf(tail, "ckpt.tmp.%d.", &pid) == 1 && pid > 0 && kill(pid, 0) < 0 && errno == ESRCH) {
            char p[4500];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
            continue;
        }
        if (strcmp(tail, "ckpt") != 0) continue;
        if (cnt == cap) {
            void *arr = v;
            if (mmfs__grow(&arr, &cap, cnt + 1, sizeof *v)) {
                free(v);
                closedir(d);
                return MMFS_NOMEM;
            }
            v = arr;
        }
        v[cnt++] = lsn;
    }
    closedir(d);
    if (cnt) qsort(v, cnt, sizeof *v, cmp_u64_desc);
    *out = v;
    *n = cnt;
    return MMFS_OK;
}

/* ---------------------------------------------------------------- writing */

static int add_logrec(void *ud, const mmfs__rec *r) {
    snap *s = ud;
    void *a = s->logrecs;
    int rc = mmfs__grow(&a, &s->logreccap, s->nlogrecs + 1, sizeof *s->logrecs);
    if (rc) return rc;
    s->logrecs = a;
    s->logrecs[s->nlogrecs++] = r->raw;
    return MMFS_OK;
}

/* Lists every record of the snapshot's segments in s->logrecs. */
static int make_logrecs(snap *s) {
    s->logrecs_made = 1;
    mmfs__seg *segs = calloc(s->nsegs, sizeof *segs);
    if (!segs) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
    for (size_t i = 0; i < s->nsegs; i++) {
        segs[i].no = s->segs[i].no;
        segs[i].map = s->segs[i].map;
        segs[i].size = s->segs[i].size;
        segs[i].end = s->segs[i].end;
    }
    int rc = mmfs__each_record(segs, s->nsegs, segs[s->nsegs - 1].end, s->sum, add_logrec, s);
    free(segs);
    return rc;
}

/* RAW's position if it lies in one of the snapshot's segments, else 0. */
static uint64_t pos_in(const snap *s, const uint8_t *raw) {
    for (size_t i = 0; i < s->nsegs; i++)
        if (raw >= s->segs[i].map && raw < s->segs[i].map + s->segs[i].size)
            return MMFS__POS(s->segs[i].no, (uint64_t)(raw - s->segs[i].map));
    return 0;
}

/* The log position of record RAW in the snapshot's segments, or 0 when it
** is not there.  A record outside them (an engine from before this
** handle's compaction) is looked up by LSN and taken only if its bytes are
** the same. */
static uint64_t pos_of(snap *s, const uint8_t *raw) {
    uint64_t pos = pos_in(s, raw);
    if (pos) return pos;
    if (!s->logrecs_made && make_logrecs(s) != MMFS_OK) return 0;
    uint64_t lsn = mmfs__raw_lsn(raw);
    size_t lo = 0, hi = s->nlogrecs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mmfs__raw_lsn(s->logrecs[mid]) < lsn) lo = mid + 1;
        else hi = mid;
    }
    if (lo == s->nlogrecs) return 0;
    const uint8_t *q = s->logrecs[lo];
    uint32_t len = mmfs__raw_len(raw);
    return mmfs__raw_len(q) == len && memcmp(q, raw, len) == 0 ? pos_in(s, q) : 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Builds the whole file in *BUF (*LEN bytes). */
static int build_file(mmfs_db *db, snap *s, uint8_t **buf, size_t *len) {
    s->sum = &db->log.sum;
    size_t nslots = 0;
    if (s->nkv) {
        nslots = 16;
        while (nslots < s->nkv * 2) nslots *= 2; /* load <= 0.5: short probes */
    }
    size_t routes_len = 0, tags_len = 0;
    for (size_t i = 0; i < s->nroutes; i++) routes_len += (4 + s->routes[i].len + 7) & ~(size_t)7;
    for (size_t i = 0; i < s->ntags; i++)
        tags_len += 16 + ((s->tag_names[i].len + 7) & ~(size_t)7) + (s->tag_at[i + 1] - s->tag_at[i]) * 8;
    uint64_t cnt[CK_NSEC] = {s->nsegs - 1, nslots, s->nkv, s->nrecs, 0, s->nents, s->ntime, routes_len, tags_len};
    uint64_t off[CK_NSEC];
    size_t size = CK_HDR;
    for (int k = 0; k < CK_NSEC; k++) {
        off[k] = size;
        size += (cnt[k] * mmfs__ckpt_entsize((uint32_t)(k + 1)) + 7) & ~(size_t)7;
    }
    size += CK_SUM;
    uint8_t *b = calloc(1, size);
    if (!b) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (%zu bytes)", size);
    memcpy(b + H_MAGIC, CK_MAGIC, 8);
    mmfs__st32(b + H_FORMAT, CK_FORMAT);
    mmfs__st32(b + H_SUMTYPE, (uint32_t)db->log.sum.type);
    mmfs__st64(b + H_LSN, s->lsn);
    mmfs__st64(b + H_SIZE, size);
    mmfs__st32(b + H_FIRST_SEG, s->first_seg);
    mmfs__st32(b + H_ANCHOR_SEG, MMFS__POS_SEG(s->anchor));
    mmfs__st64(b + H_ANCHOR_OFF, MMFS__POS_OFF(s->anchor));
    mmfs__st64(b + H_ANCHOR_LSN, s->anchor_lsn);
    mmfs__st32(b + H_TOK_VERSION, (uint32_t)db->log.tok_version);
    snprintf((char *)b + H_TOK_LANG, 32, "%s", db->log.tok_lang);
    mmfs__st64(b + H_NEXT_MEM, s->next_mem);
    mmfs__st64(b + H_LIVE_BYTES, s->live_bytes);
    mmfs__st64(b + H_REC_BYTES, s->rec_bytes);
    mmfs__st32(b + H_NSEC, CK_NSEC);
    memcpy(b + H_ANCHOR_SUM, s->anchor_sum, db->log.sum.len);
    mmfs__st64(b + H_MEM_BASE, s->mem_base);
    mmfs__st64(b + H_MEM_LIVE, s->mem_live);
    mmfs__st64(b + H_NROUTES, s->nroutes);
    for (int k = 0; k < CK_NSEC; k++) {
        uint8_t *d = b + H_SEC + 24 * k;
        mmfs__st32(d, (uint32_t)(k + 1));
        mmfs__st64(d + 8, off[k]);
        mmfs__st64(d + 16, cnt[k]);
    }
    uint8_t *p = b + off[0];
    for (size_t i = 0; i + 1 < s->nsegs; i++, p += 16) {
        mmfs__st32(p, s->segs[i].no);
        mmfs__st64(p + 8, s->segs[i].end);
    }
    int rc = MMFS_OK;
    uint8_t *order = b + off[2], *slots = b + off[1];
    for (size_t i = 0; i < s->nkv && rc == MMFS_OK; i++) {
        uint64_t pos = pos_of(s, s->kv[i]);
        if (!pos) {
            rc = mmfs__err(MMFS_CORRUPT, "checkpoint: a record outside the log");
            break;
        }
        mmfs__st64(order + 8 * i, pos);
        uint64_t h = mmfs__hash(mmfs__raw_key(s->kv[i]));
        size_t j = h & (nslots - 1);
        while (mmfs__ld64(slots + 16 * j + 8)) j = (j + 1) & (nslots - 1);
        mmfs__st64(slots + 16 * j, h);
        mmfs__st64(slots + 16 * j + 8, pos);
    }
    uint8_t *recs = b + off[3];
    for (size_t i = 0; i < s->nrecs && rc == MMFS_OK; i++) {
        uint64_t pos = pos_of(s, s->recs[i]);
        if (!pos) rc = mmfs__err(MMFS_CORRUPT, "checkpoint: a record outside the log");
        mmfs__st64(recs + 8 * i, pos);
    }
    uint8_t *p6 = b + off[5];
    for (size_t i = 0; i < s->nents && rc == MMFS_OK; i++, p6 += 16) {
        if (!s->ents[i].raw) continue; /* position 0: no such id */
        uint64_t pos = pos_of(s, s->ents[i].raw);
        /* A deleted memory whose record a compaction dropped: no such id. */
        if (!pos && s->ents[i].deleted) continue;
        if (!pos) rc = mmfs__err(MMFS_CORRUPT, "checkpoint: a record outside the log");
        mmfs__st64(p6, pos);
        mmfs__st32(p6 + 8, s->ents[i].route);
        mmfs__st32(p6 + 12, s->ents[i].deleted ? 1 : 0);
    }
    for (size_t i = 0; i < s->ntime; i++) mmfs__st64(b + off[6] + 8 * i, s->time[i]);
    uint8_t *p8 = b + off[7];
    for (size_t i = 0; i < s->nroutes; i++) {
        mmfs__st32(p8, (uint32_t)s->routes[i].len);
        memcpy(p8 + 4, s->routes[i].ptr, s->routes[i].len);
        p8 += (4 + s->routes[i].len + 7) & ~(size_t)7;
    }
    uint8_t *p9 = b + off[8];
    for (size_t i = 0; i < s->ntags; i++) {
        size_t n = s->tag_at[i + 1] - s->tag_at[i];
        mmfs__st32(p9, (uint32_t)s->tag_names[i].len);
        mmfs__st64(p9 + 8, n);
        memcpy(p9 + 16, s->tag_names[i].ptr, s->tag_names[i].len);
        p9 += 16 + ((s->tag_names[i].len + 7) & ~(size_t)7);
        for (size_t j = 0; j < n; j++, p9 += 8) mmfs__st64(p9, s->tag_ids[s->tag_at[i] + j]);
    }
    if (rc) {
        free(b);
        return rc;
    }
    /* Log order, so that applying them again is a replay of the live
    ** records: memory ids ascend, stream chunks keep their order. */
    qsort(recs, s->nrecs, 8, cmp_u64);
    mmfs__sum_compute(&db->log.sum, b, size - CK_SUM, b + size - CK_SUM);
    *buf = b;
    *len = size;
    return MMFS_OK;
}

/* Writes BUF as ckpt/LSN.ckpt: temporary name, fsync, rename, fsync. */
static int write_file(mmfs_db *db, uint64_t lsn, const uint8_t *buf, size_t len) {
    static _Atomic unsigned counter;
    char dir[4200], tmp[4500], path[4400];
    ck_dir(db, dir, sizeof dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) return mmfs__err_sys(errno, "mkdir", dir);
    mmfs__ckpt_path(db, lsn, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.%u", path, (int)getpid(), atomic_fetch_add(&counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return mmfs__err_sys(errno, "create", tmp);
    int rc = MMFS_OK;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rc = errno == ENOSPC ? mmfs__err(MMFS_NOSPACE, "%s: no space left", tmp)
                                 : mmfs__err_sys(w < 0 ? errno : EIO, "write", tmp);
            break;
        }
        done += (size_t)w;
    }
    if (rc == MMFS_OK && fsync(fd) < 0) rc = mmfs__err_sys(errno, "fsync", tmp);
    close(fd);
    if (rc == MMFS_OK && rename(tmp, path) < 0) rc = mmfs__err_sys(errno, "rename", tmp);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return mmfs__fsync_dir(dir);
}

/* Removes all but the newest KEEP checkpoints.  A process that still maps
** one keeps reading it (an unlinked file stays mapped); one about to open
** it falls back to an older one or to the log. */
static void prune(mmfs_db *db, size_t keep) {
    uint64_t *v;
    size_t n;
    if (mmfs__ckpt_list(db, &v, &n, 1) != MMFS_OK) return;
    for (size_t i = keep; i < n; i++) {
        char path[4400];
        mmfs__ckpt_path(db, v[i], path, sizeof path);
        unlink(path);
    }
    free(v);
}

static int checkpoint_locked(mmfs_db *db) {
    snap s;
    memset(&s, 0, sizeof s);
    int empty = 0;
    int rc = mmfs__ckpt_snap_take(db, &s, &empty);
    if (rc || empty) {
        mmfs__ckpt_snap_free(&s);
        return rc;
    }
    /* Only durable frames: the anchor's segment is synced now (segments
    ** before it were synced before it was made). */
    if (fdatasync(s.segs[s.nsegs - 1].fd) < 0) {
        int err = errno;
        mmfs__ckpt_snap_free(&s);
        return mmfs__err_sys(err, "fdatasync", db->log.log_dir);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    rc = build_file(db, &s, &buf, &len);
    if (rc == MMFS_OK) rc = write_file(db, s.lsn, buf, len);
    free(buf);
    if (rc == MMFS_OK) {
        const struct sseg *a = &s.segs[s.nsegs - 1];
        uint32_t flen = mmfs__ld32(a->map + MMFS__POS_OFF(s.anchor) + 4);
        atomic_store(&db->ckpt_pos, s.anchor + flen);
        prune(db, 2);
    }
    mmfs__ckpt_snap_free(&s);
    return rc;
}

int mmfs_checkpoint(mmfs_db *db) {
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if (db->opt.readonly) return mmfs__err(MMFS_READONLY, "%s: opened read-only: cannot write a checkpoint", db->dir);
    if (mmfs__in_own_writer(db))
        return mmfs__err(MMFS_BUSY, "%s: a hook called back into its own store (checkpoint)", db->dir);
    pthread_mutex_lock(&db->cpmu);
    rc = checkpoint_locked(db);
    pthread_mutex_unlock(&db->cpmu);
    return rc;
}

/* ------------------------------------------------------- the checkpointer */

/* Log bytes written since the newest checkpoint this handle knows
** (segments count whole after the first). */
static uint64_t since_ckpt(mmfs_db *db) {
    uint64_t now = atomic_load(&db->applied), then = atomic_load(&db->ckpt_pos);
    if (!then) then = MMFS__POS(db->log.first_seg, MMFS__SEG_HDR);
    if (now <= then) return 0;
    if (MMFS__POS_SEG(now) == MMFS__POS_SEG(then)) return now - then;
    return (uint64_t)(MMFS__POS_SEG(now) - MMFS__POS_SEG(then)) * db->log.segment_size + MMFS__POS_OFF(now) -
           MMFS__POS_OFF(then);
}

static void *checkpointer(void *arg) {
    mmfs_db *db = arg;
    pthread_mutex_lock(&db->cmu);
    while (!db->ckpt_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec++; /* a wake-up a second: idle hosts (editors) stay idle */
        pthread_cond_timedwait(&db->ccond, &db->cmu, &ts);
        if (db->ckpt_stop || since_ckpt(db) < db->opt.checkpoint_bytes) continue;
        pthread_mutex_unlock(&db->cmu);
        /* Refreshes first, so a handle that only reads writes a checkpoint
        ** of what others wrote too.  A failure (disk full) is retried at
        ** the next tick; writes are not affected. */
        (void)mmfs_checkpoint(db);
        pthread_mutex_lock(&db->cmu);
    }
    pthread_mutex_unlock(&db->cmu);
    return NULL;
}

int mmfs__ckpt_auto_start(mmfs_db *db) {
    if (db->opt.readonly || db->opt.checkpoint_bytes == 0) return MMFS_OK;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&db->ccond);
    pthread_cond_init(&db->ccond, &ca);
    pthread_condattr_destroy(&ca);
    db->ckpt_stop = 0;
    int err = pthread_create(&db->ckpter, NULL, checkpointer, db);
    if (err) return mmfs__err_sys(err, "start the checkpointer thread", db->dir);
    db->ckpt_on = 1;
    return MMFS_OK;
}

void mmfs__ckpt_auto_stop(mmfs_db *db) {
    if (!db->ckpt_on) return;
    pthread_mutex_lock(&db->cmu);
    db->ckpt_stop = 1;
    pthread_cond_signal(&db->ccond);
    pthread_mutex_unlock(&db->cmu);
    pthread_join(db->ckpter, NULL);
    db->ckpt_on = 0;
}
