/*
** compact.c: compaction (mmfs_compact).  The live records of the log are
** copied, in log order and with their own LSNs, into new segments
** numbered after the current last one; MANIFEST then switches to them and
** the old segment files are removed.
**
** Steps, all under the writer lock (wmu, then the flock) in this first
** version, so no frame is appended meanwhile:
**   1. catch up; build a private policy VM from the policy in force (a
**      hostile compaction.keep cannot damage the writers' VM)
**   2. write output segments as log/NNNNNNNN.cseg: compacted frames
**      (MMFS__FRAME_COMPACT: LSN gaps allowed), a seal at the end of each
**      full one, and in the last one a compacted frame with no record whose
**      first LSN is the next LSN of the store; fdatasync each, stamp the
**      last as durable, fsync log/
**   3. LOCK's page gets the new first segment, then MANIFEST is replaced
**      (first_segment, last_segment and "compacted SEG NEXT_LSN NEXT_ID":
**      the switch, atomic by rename), then the .cseg files are renamed to
**      .seg and log/ fsynced
**   4. this handle moves its engine over to the new log without a replay
**      (rebase: the engine already holds what the output holds), publishes
**      the new written end, and unlinks the old files
**
** Crash safety: before the MANIFEST rename, MANIFEST names the old log and
** the .cseg files are leftovers that the next open (or compaction)
** removes; after it, open renames what is left of them (or reads them
** under their first name when read-only) and removes the old segments.
** Other handles see the page's first segment differ from theirs, take the
** flock (so they see the switch whole or not at all), re-read MANIFEST
** and rebuild (recover.c, mmfs__reload).
**
** Invariant: the output holds exactly the records the engine counts live
** (live.c), minus memories ttl or keep forget; ids and LSNs never go back
** (MANIFEST's floors, the trailing empty frame).
*/
#include "db.h"
#include "hmap.h"
#include "policy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Body bytes per compacted frame: big enough that frame overhead is
** noise, small enough for the scratch buffer. */
#define BODY_TARGET ((size_t)1 << 20)

void mmfs_compact_opts_init(mmfs_compact_opts *o) {
    if (o) memset(o, 0, sizeof *o);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The output being written. */
typedef struct out {
    mmfs_db *db;
    uint32_t first, no;  /* first output segment, the current one */
    int fd;              /* of segment no, or -1 */
    uint64_t size, off;  /* its size, the write position */
    uint8_t *buf;        /* a frame: header room, then records */
    size_t cap, body;
    uint32_t count;
    uint64_t first_lsn, next_lsn; /* of the frame; past its last record */
    uint64_t last_frame; /* position of the last frame written (a checkpoint's anchor) */
    uint64_t seal_lsn;   /* the LSN readers expect after the last frame written: a seal's */
    uint64_t kept, dropped, kept_bytes;
    uint64_t *ends;      /* ends[i]: where the frames of segment first + i end */
    size_t nends;
    uint64_t *forgot;    /* ids of live memories ttl or keep forgot */
    size_t nforgot, capforgot;
} out;

static int io_err(out *o, int e, const char *what) {
    char path[4096];
    mmfs__cseg_path(o->db, o->no, path, sizeof path);
    return mmfs__err_sys(e, what, path);
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off) {
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Ends segment O->no: SEAL a seal frame (the log goes on in the next),
** then fdatasync and close. */
static int seg_end(out *o, int seal) {
    int e = 0;
    uint64_t *v = realloc(o->ends, (o->nends + 1) * sizeof *v);
    if (!v) return mmfs__err(MMFS_NOMEM, "compact: out of memory");
    o->ends = v;
    o->ends[o->nends++] = o->off;
    if (seal) {
        uint8_t b[64];
        size_t n = mmfs__frame_size(0, &o->db->sum);
        /* Not next_lsn: that counts the records of a frame still to come. */
        mmfs__frame_finish(b, o->seal_lsn, 0, MMFS__FRAME_SEAL, 0, &o->db->sum);
        e = pwrite_all(o->fd, b, n, o->off);
        o->off += n;
    }
    if (!e && fdatasync(o->fd) < 0) e = errno;
    close(o->fd);
    o->fd = -1;
    return e ? io_err(o, e, seal ? "write" : "fdatasync") : MMFS_OK;
}

/* Starts output segment NO of at least NEED bytes. */
static int seg_start(out *o, uint32_t no, uint64_t need) {
    char path[4096];
    o->no = no;
    mmfs__cseg_path(o->db, no, path, sizeof path);
    (void)unlink(path); /* a leftover: MANIFEST never named it */
    o->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (o->fd < 0) return mmfs__err_sys(errno, "create", path);
    o->size = o->db->segment_size;
    if (need > o->size) o->size = (need + 4095) & ~(uint64_t)4095;
    int e = ftruncate(o->fd, (off_t)o->size) < 0 ? errno : 0;
    if (!e) e = mmfs__seg_write_header(o->fd, o->db->sum.type, no, o->size);
    o->off = MMFS__SEG_HDR;
    return e ? io_err(o, e, "allocate") : MMFS_OK;
}

/* Writes the frame being built (COUNT records, or none: a marker). */
static int flush_frame(out *o, uint64_t first_lsn) {
    if (!o->buf) {
        if (!(o->buf = malloc(BODY_TARGET + 4096))) return mmfs__err(MMFS_NOMEM, "compact: out of memory");
        o->cap = BODY_TARGET + 4096;
    }
    const mmfs__sum *s = &o->db->sum;
    size_t flen = mmfs__frame_size(o->body, s), seal = mmfs__frame_size(0, s);
    int rc;
    if (o->fd >= 0 && o->off + flen + seal > o->size) {
        if ((rc = seg_end(o, 1)) != MMFS_OK) return rc;
        if ((rc = seg_start(o, o->no + 1, MMFS__SEG_HDR + flen + seal)) != MMFS_OK) return rc;
    } else if (o->fd < 0 && (rc = seg_start(o, o->first, MMFS__SEG_HDR + flen + seal)) != MMFS_OK) {
        return rc;
    }
    mmfs__frame_finish(o->buf, first_lsn, o->count, MMFS__FRAME_COMPACT, o->body, s);
    int e = pwrite_all(o->fd, o->buf, flen, o->off);
    if (e) return io_err(o, e, "write");
    o->last_frame = MMFS__POS(o->no, o->off);
    o->off += flen;
    if (!o->count) o->next_lsn = first_lsn; /* a marker: the log goes on there */
    o->seal_lsn = o->next_lsn;
    o->body = 0;
    o->count = 0;
    return MMFS_OK;
}

/* Appends record R (encoded at R->raw) to the output. */
static int add_record(out *o, const mmfs__rec *r) {
    size_t need = MMFS__FRAME_HDR + o->body + r->raw_len + 64;
    int rc;
    if (o->count && o->body + r->raw_len > BODY_TARGET) {
        if ((rc = flush_frame(o, o->first_lsn)) != MMFS_OK) return rc;
        need = MMFS__FRAME_HDR + r->raw_len + 64;
    }
    if (need > o->cap) {
        size_t cap = o->cap ? o->cap : BODY_TARGET + 4096;
        while (cap < need) cap *= 2;
        uint8_t *b = realloc(o->buf, cap);
        if (!b) return mmfs__err(MMFS_NOMEM, "compact: out of memory for a frame");
        o->buf = b;
        o->cap = cap;
    }
    if (o->count == 0) o->first_lsn = r->lsn;
    memcpy(o->buf + MMFS__FRAME_HDR + o->body, r->raw, r->raw_len);
    o->body += r->raw_len;
    o->count++;
    o->next_lsn = r->lsn + 1;
    o->kept++;
    o->kept_bytes += r->raw_len;
    return MMFS_OK;
}

/* Per tag, the live memories with it (for compaction.keep's third
** argument): TOTAL from a first pass, SEEN so far in the copy. */
typedef struct tagcount {
    mmfs_slice name;
    uint64_t total, seen;
} tagcount;

typedef struct tags {
    mmfs__hmap map; /* name -> index + 1 */
    tagcount *v;
    size_t n, cap;
    uint64_t *newer; /* scratch: one memory's counts */
    size_t newer_cap;
} tags;

static mmfs_slice tag_key(const void *ctx, uintptr_t v) { return ((const tags *)ctx)->v[v - 1].name; }

/* The count of tag NAME, made if ADD. */
static int tag_get(tags *t, mmfs_slice name, int add, tagcount **out) {
    uint64_t h = mmfs__hash(name);
    uintptr_t i = mmfs__hmap_get(&t->map, name, h);
    *out = NULL;
    if (i) {
        *out = &t->v[i - 1];
        return MMFS_OK;
    }
    if (!add) return MMFS_OK;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        tagcount *v = realloc(t->v, cap * sizeof *v);
        if (!v) return mmfs__err(MMFS_NOMEM, "compact: out of memory counting tags");
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n] = (tagcount){name, 0, 0};
    int rc = mmfs__hmap_put(&t->map, name, h, t->n + 1, NULL);
    if (rc) return rc;
    *out = &t->v[t->n++];
    return MMFS_OK;
}

/* The log as it was when the compaction started: the segments (copies of
** the table entries: their mappings stay until close, whatever happens to
** the table) and where their frames end. */
typedef struct snap {
    mmfs__seg *segs;
    size_t n;
    uint64_t end;     /* position past the last frame */
    uint64_t next_lsn; /* the store's next LSN there */
    uint32_t first;   /* MANIFEST's first segment then */
} snap;

int mmfs__each_record(const mmfs__seg *segs, size_t n, uint64_t last_end, const mmfs__sum *sum,
                      int (*fn)(void *ud, const mmfs__rec *r), void *ud) {
    for (size_t i = 0; i < n; i++) {
        const mmfs__seg *s = &segs[i];
        uint64_t off = MMFS__SEG_HDR, end = i + 1 == n ? last_end : s->end;
        while (off < end) {
            mmfs__frame f;
            const char *why;
            if (!mmfs__frame_check(s->map + off, s->size - off, 0, sum, &f, &why))
                return mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset %llu: %s (run verify)", s->no,
                                 (unsigned long long)off, why);
            if (f.flags & MMFS__FRAME_SEAL) break;
            const uint8_t *q = f.body, *fend = f.body + f.body_len;
            for (uint32_t k = 0; k < f.count; k++) {
                mmfs__rec r;
                if (mmfs__rec_decode(q, (size_t)(fend - q), &r) != MMFS_OK)
                    return mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset %llu: malformed record", s->no,
                                     (unsigned long long)off);
                q += r.raw_len;
                int rc = fn(ud, &r);
                if (rc) return rc;
            }
            off += f.frame_len;
        }
    }
    return MMFS_OK;
}

typedef struct copy_ctx {
    mmfs_db *db;
    out *o;
    mmfs__policy *p;
    int64_t now;
    tags *t; /* NULL: no keep function, nothing counted */
} copy_ctx;

/* Whether the engine still needs R.  The copy runs without the writer
** lock: the engine's read side guards against this process's writers, and
** db->eng is read under it (a rebuild swaps it under the write side). */
static int live(mmfs_db *db, const mmfs__rec *r) {
    pthread_rwlock_rdlock(&db->rw);
    int l = mmfs__engine_is_live(db->eng, r);
    pthread_rwlock_unlock(&db->rw);
    return l;
}

static int count_tags(void *ud, const mmfs__rec *r) {
    copy_ctx *c = ud;
    if (r->type != MMFS__R_MEMORY || !live(c->db, r)) return MMFS_OK;
    const uint8_t *q = r->u.mem.tags.ptr;
    for (uint32_t i = 0; i < r->u.mem.ntags; i++) {
        tagcount *tc;
        int rc = tag_get(c->t, mmfs__tag_next(&q), 1, &tc);
        if (rc) return rc;
        tc->total++;
    }
    return MMFS_OK;
}

/* Decides whether memory record R (live in the engine) stays: its route's
** ttl, then compaction.keep. */
static int keep_memory(copy_ctx *c, const mmfs__rec *r, int *keep) {
    *keep = 1;
#ifdef MMFS_HAVE_POLICY
    if (!c->p) return MMFS_OK;
    int64_t ttl;
    const uint64_t *newer = NULL;
    if (c->t) { /* counted first, so a memory forgotten by ttl still counts */
        tags *t = c->t;
        if (r->u.mem.ntags > t->newer_cap) {
            uint64_t *n = realloc(t->newer, r->u.mem.ntags * sizeof *n);
            if (!n) return mmfs__err(MMFS_NOMEM, "compact: out of memory");
            t->newer = n;
            t->newer_cap = r->u.mem.ntags;
        }
        const uint8_t *q = r->u.mem.tags.ptr;
        for (uint32_t i = 0; i < r->u.mem.ntags; i++) {
            tagcount *tc;
            (void)tag_get(t, mmfs__tag_next(&q), 0, &tc);
            t->newer[i] = tc && tc->total > tc->seen ? tc->total - tc->seen - 1 : 0;
            if (tc) tc->seen++;
        }
        newer = t->newer;
    }
    if (mmfs__policy_route_ttl(c->p, r->u.mem.route, &ttl) && r->u.mem.created_at <= c->now - ttl) {
        *keep = 0;
        return MMFS_OK;
    }
    return c->t ? mmfs__policy_keep(c->p, r, c->now, newer, keep) : MMFS_OK;
#else
    (void)c, (void)r;
    return MMFS_OK;
#endif
}

static int copy_record(void *ud, const mmfs__rec *r) {
    copy_ctx *c = ud;
    int keep = live(c->db, r), rc;
    if (keep && r->type == MMFS__R_MEMORY && (rc = keep_memory(c, r, &keep)) != MMFS_OK) return rc;
    if (!keep) {
        out *o = c->o;
        o->dropped++;
        if (r->type == MMFS__R_MEMORY && live(c->db, r)) {
            if (o->nforgot == o->capforgot) {
                size_t cap = o->capforgot ? o->capforgot * 2 : 256;
                uint64_t *v = realloc(o->forgot, cap * sizeof *v);
                if (!v) return mmfs__err(MMFS_NOMEM, "compact: out of memory");
                o->forgot = v;
                o->capforgot = cap;
            }
            o->forgot[o->nforgot++] = r->u.mem.id;
        }
        return MMFS_OK;
    }
    return add_record(c->o, r);
}

/* Copies the live records of the snapshot SN of DB into O. */
static int copy_live(mmfs_db *db, const snap *sn, out *o, mmfs__policy *p, int64_t now) {
    tags t;
    memset(&t, 0, sizeof t);
    mmfs__hmap_init(&t.map, tag_key, &t);
    copy_ctx c = {db, o, p, now, NULL};
#ifdef MMFS_HAVE_POLICY
    if (p && mmfs__policy_has_keep(p)) c.t = &t;
#endif
    uint64_t last_end = MMFS__POS_OFF(sn->end);
    int rc = c.t ? mmfs__each_record(sn->segs, sn->n, last_end, &db->sum, count_tags, &c) : MMFS_OK;
    if (rc == MMFS_OK) rc = mmfs__each_record(sn->segs, sn->n, last_end, &db->sum, copy_record, &c);
    mmfs__hmap_free(&t.map);
    free(t.v);
    free(t.newer);
    return rc;
}

/* Appends frame F (checked, not a seal; its bytes at P) as it is: a frame
** does not depend on where it lies. */
static int carry_frame(out *o, const mmfs__frame *f, const uint8_t *p) {
    const mmfs__sum *s = &o->db->sum;
    size_t seal = mmfs__frame_size(0, s);
    int rc;
    if (o->off + f->frame_len + seal > o->size) {
        if ((rc = seg_end(o, 1)) != MMFS_OK) return rc;
        if ((rc = seg_start(o, o->no + 1, MMFS__SEG_HDR + f->frame_len + seal)) != MMFS_OK) return rc;
    }
    int e = pwrite_all(o->fd, p, f->frame_len, o->off);
    if (e) return io_err(o, e, "write");
    o->off += f->frame_len;
    o->next_lsn = o->seal_lsn = f->first_lsn + f->count;
    o->kept += f->count;
    o->kept_bytes += f->body_len;
    return MMFS_OK;
}

/* Carries over the frames of DB's log from position FROM to its end
** (appended while the copy ran; caller holds the writer lock). */
static int carry_over(mmfs_db *db, out *o, uint64_t from) {
    uint64_t pos = from, to = atomic_load(&db->applied);
    while (pos < to) {
        mmfs__seg *s = mmfs__seg_find(db, MMFS__POS_SEG(pos));
        uint64_t off = MMFS__POS_OFF(pos);
        if (!s) return mmfs__err(MMFS_CORRUPT, "compact: log/%08u.seg is not open here", MMFS__POS_SEG(pos));
        mmfs__frame f;
        const char *why;
        if (off >= s->end) {
            pos = MMFS__POS(s->no + 1, MMFS__SEG_HDR); /* past its seal */
            continue;
        }
        if (!mmfs__frame_check(s->map + off, s->size - off, 0, &db->sum, &f, &why))
            return mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset %llu: %s (run verify)", s->no,
                             (unsigned long long)off, why);
        int rc = carry_frame(o, &f, s->map + off);
        if (rc) return rc;
        pos += f.frame_len;
    }
    return MMFS_OK;
}

/* Gives the output segments numbers from NEW_FIRST on (writers made
** segments up to NEW_FIRST - 1 while the copy ran): each header is
** rewritten and the file renamed, the last first so no name is taken. */
static int renumber(out *o, uint32_t new_first) {
    uint32_t shift = new_first - o->first, last = o->no;
    for (uint32_t no = last + 1; no-- > o->first;) {
        char from[4096], to[4096];
        mmfs__cseg_path(o->db, no, from, sizeof from);
        mmfs__cseg_path(o->db, no + shift, to, sizeof to);
        int fd = no == last ? o->fd : open(from, O_RDWR | O_CLOEXEC), e = 0;
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) e = errno ? errno : EIO;
        if (!e) e = mmfs__seg_write_header(fd, o->db->sum.type, no + shift, (uint64_t)st.st_size);
        if (!e && no != last && fdatasync(fd) < 0) e = errno;
        if (fd >= 0 && no != last) close(fd);
        if (!e && rename(from, to) < 0) e = errno;
        if (e) return mmfs__err_sys(e, "renumber", from);
    }
    o->first += shift;
    o->no += shift;
    return MMFS_OK;
}

/* Removes output segments FIRST..LAST under either name (a failed run). */
static void remove_output(mmfs_db *db, uint32_t first, uint32_t last) {
    char path[4096];
    for (uint32_t no = first; no && no <= last; no++) {
        mmfs__cseg_path(db, no, path, sizeof path);
        (void)unlink(path);
    }
    (void)mmfs__fsync_dir(db->log_dir);
}

static uint64_t log_bytes(const mmfs_db *db) {
    uint64_t n = 0;
    for (size_t i = 0; i < db->nsegs; i++) n += db->segs[i].end - MMFS__SEG_HDR;
    return n;
}

/* Builds a VM of the policy in force, for ttl and keep (NULL: none). */
static int policy_vm(mmfs_db *db, mmfs__policy **out) {
    *out = NULL;
#ifdef MMFS_HAVE_POLICY
    mmfs_slice src;
    uint64_t lsn;
    mmfs__engine_policy(db->eng, &src, &lsn);
    if (!src.len) return MMFS_OK;
    mmfs__policy_limits lim;
    lim.hook_budget = db->opt.hook_budget ? db->opt.hook_budget : MMFS__DEFAULT_HOOK_BUDGET;
    lim.batch_budget = lim.hook_budget * MMFS__BATCH_BUDGET_FACTOR;
    lim.mem_limit = MMFS__POLICY_MEM_LIMIT;
    int rc = mmfs__policy_new(src.ptr, src.len, &lim, out);
    if (rc) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", mmfs_errmsg(NULL));
        return mmfs__err(rc, "compact: the policy in force fails here: %s", msg);
    }
    return MMFS_OK;
#else
    mmfs_slice src;
    uint64_t lsn;
    mmfs__engine_policy(db->eng, &src, &lsn);
    return src.len ? mmfs__err(MMFS_INVALID, "compact: the store has a policy, and this build has no policy VM")
                   : MMFS_OK;
#endif
}

/* This handle reads the new log without a replay: its engine already
** holds exactly the output's records (they point into the old mappings,
** which stay until close), less the memories ttl and keep forgot, which
** are deleted from it here.  Other handles rebuild (mmfs__reload). */
static int rebase(mmfs_db *db, const out *o, uint32_t last, uint64_t end) {
    int rc = mmfs__seg_retire_all(db);
    if (rc) return rc;
    for (uint32_t no = o->first; no <= last; no++) {
        if ((rc = mmfs__seg_open(db, no)) != MMFS_OK) break;
        mmfs__seg *s = mmfs__seg_last(db);
        size_t i = no - o->first;
        s->end = no == last ? end : o->ends[i];
        s->sealed = no != last;
        s->stamp = no == last ? end : s->stamp;
    }
    if (rc) {
        atomic_store(&db->broken, 1);
        return rc;
    }
    pthread_rwlock_wrlock(&db->rw);
    for (size_t i = 0; i < o->nforgot && rc == MMFS_OK; i++) {
        /* A delete made here for the engine alone (it keeps no pointer to
        ** a delete record); the LSN only has to match its own header. */
        mmfs__rec d;
        uint8_t buf[64];
        memset(&d, 0, sizeof d);
        d.type = MMFS__R_DEL_MEMORY;
        d.lsn = db->next_lsn;
        d.u.del_mem.id = o->forgot[i];
        d.raw_len = (uint32_t)mmfs__rec_size(&d);
        mmfs__rec_encode(&d, buf);
        d.raw = buf;
        rc = mmfs__engine_apply(db->eng, &d);
    }
    db->rec_bytes = o->kept_bytes;
    db->last_frame = o->last_frame; /* the closing marker: what a checkpoint anchors on */
    atomic_store(&db->applied, MMFS__POS(last, end));
    pthread_rwlock_unlock(&db->rw);
    if (rc) atomic_store(&db->broken, 1);
    return rc;
}

/* Takes the writer lock as a write does (wmu, the flock) and catches up.
** Errors: MMFS_BUSY (lock_timeout_ms), MMFS_IO, MMFS_CORRUPT. */
static int enter(mmfs_db *db) {
    pthread_mutex_lock(&db->wmu);
    int rc = mmfs__sync_check(db);
    if (rc == MMFS_OK && (rc = mmfs__lock_acquire(db)) == MMFS_OK) {
        if ((rc = mmfs__lock_check(db)) == MMFS_OK)
            rc = mmfs__catch_up_locked(db, atomic_load_explicit(&db->shm->written, memory_order_acquire));
        if (rc) mmfs__lock_release(db);
    }
    if (rc) pthread_mutex_unlock(&db->wmu);
    return rc;
}

static void leave(mmfs_db *db) {
    mmfs__lock_release(db);
    pthread_mutex_unlock(&db->wmu);
}

static int switch_to(mmfs_db *db, out *o, uint32_t last, uint64_t end, mmfs_compact_result *res);

/* Step 1 (see the top), under the writer lock: what the copy reads. */
static int take_snapshot(mmfs_db *db, snap *sn, out *o, mmfs__policy **p, mmfs_compact_result *res) {
    sn->segs = malloc(db->nsegs * sizeof *sn->segs);
    if (!sn->segs) return mmfs__err(MMFS_NOMEM, "compact: out of memory");
    memcpy(sn->segs, db->segs, db->nsegs * sizeof *sn->segs);
    sn->n = db->nsegs;
    sn->end = atomic_load(&db->applied);
    sn->next_lsn = db->next_lsn;
    sn->first = db->first_seg;
    o->first = mmfs__seg_last(db)->no + 1;
    res->bytes_before = log_bytes(db);
    return policy_vm(db, p);
}

int mmfs__compact_lock(const mmfs_db *db, int *fd) {
    char path[4096];
    snprintf(path, sizeof path, "%s/compact.lock", db->log_dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return mmfs__err_sys(errno, "open", path);
    if (flock(*fd, LOCK_EX | LOCK_NB) == 0) return MMFS_OK;
    int e = errno;
    close(*fd);
    *fd = -1;
    if (e == EWOULDBLOCK) return mmfs__err(MMFS_BUSY, "%s: another compaction runs", db->dir);
    return mmfs__err_sys(e, "flock", path);
}

/* Removes the .cseg files of compactions that died before their switch
** (MANIFEST does not name them).  Caller holds compact.lock, so none is
** being written; what open would roll forward (named ones) is left. */
static void sweep_leftovers(mmfs_db *db) {
    DIR *d = opendir(db->log_dir);
    if (!d) return;
    struct dirent *e;
    int removed = 0;
    while ((e = readdir(d))) {
        unsigned no;
        char tail[16], path[4200];
        if (sscanf(e->d_name, "%8u.%15s", &no, tail) != 2 || strcmp(tail, "cseg") != 0) continue;
        if (db->compact_seg && no >= db->first_seg && no <= db->compact_seg) continue;
        snprintf(path, sizeof path, "%s/%s", db->log_dir, e->d_name);
        removed += unlink(path) == 0;
    }
    closedir(d);
    if (removed) (void)mmfs__fsync_dir(db->log_dir);
}

/* Steps 2 to 4 (see the top). */
static int compact(mmfs_db *db, int64_t now, mmfs_compact_result *res) {
    int lockfd;
    int rc0 = mmfs__compact_lock(db, &lockfd);
    if (rc0) return rc0;
    snap sn;
    memset(&sn, 0, sizeof sn);
    out o;
    memset(&o, 0, sizeof o);
    o.db = db;
    o.fd = -1;
    mmfs__policy *p = NULL;
    int rc = enter(db), locked = rc == MMFS_OK;
    if (rc == MMFS_OK) sweep_leftovers(db);
    if (rc == MMFS_OK) rc = take_snapshot(db, &sn, &o, &p, res);
    if (locked) leave(db);
    locked = 0;

    /* The copy, without the writer lock: writers in every process go on. */
    if (rc == MMFS_OK) rc = copy_live(db, &sn, &o, p, now);
#ifdef MMFS_HAVE_POLICY
    if (p) mmfs__policy_free(p);
#endif
    if (rc == MMFS_OK && o.count) rc = flush_frame(&o, o.first_lsn);
    /* A marker: what follows (the frames carried over) starts at the LSN
    ** the snapshot ended with. */
    if (rc == MMFS_OK) rc = flush_frame(&o, sn.next_lsn);

    /* The writer lock again, briefly: what was appended meanwhile, then the
    ** switch. */
    if (rc == MMFS_OK && (rc = enter(db)) == MMFS_OK) locked = 1;
    if (rc == MMFS_OK && db->first_seg != sn.first)
        rc = mmfs__err(MMFS_BUSY, "%s: another handle compacted the store meanwhile; nothing changed", db->dir);
    if (rc == MMFS_OK && mmfs__seg_last(db)->no >= o.first) rc = renumber(&o, mmfs__seg_last(db)->no + 1);
    if (rc == MMFS_OK) rc = carry_over(db, &o, sn.end);
    if (rc == MMFS_OK) rc = flush_frame(&o, db->next_lsn);
    uint64_t end = o.off;
    if (rc == MMFS_OK) {
        /* Synced first, then stamped (and synced again): everything up to
        ** END is durable, so a damaged compacted frame is never a tail. */
        int e = fdatasync(o.fd) < 0 ? errno : 0;
        if (!e) {
            mmfs__seg_stamp(o.fd, end);
            if (fdatasync(o.fd) < 0) e = errno;
        }
        if (e) rc = io_err(&o, e, "fdatasync");
    }
    if (o.fd >= 0) close(o.fd);
    o.fd = -1;
    free(o.buf);
    free(sn.segs);
    uint32_t last = o.no;
    if (rc == MMFS_OK) rc = mmfs__fsync_dir(db->log_dir);
    if (rc == MMFS_OK) rc = switch_to(db, &o, last, end, res);
    else if (o.first) remove_output(db, o.first, last);
    free(o.ends);
    free(o.forgot);
    if (locked) leave(db);
    close(lockfd); /* releases compact.lock */
    return rc;
}

/* Step 3 and 4 (see the top), under the writer lock, the output durable. */
static int switch_to(mmfs_db *db, out *o, uint32_t last, uint64_t end, mmfs_compact_result *res) {
    int rc;
    uint32_t old_first = db->first_seg, old_last = mmfs__seg_last(db)->no, old_mlast = db->last_seg,
             old_cseg = db->compact_seg;
    uint64_t old_lf = db->lsn_floor, old_if = db->id_floor;
    atomic_store(&db->shm->first_segment, o->first);
    db->id_floor = mmfs__next_memory_id(db);
    db->lsn_floor = db->next_lsn;
    db->first_seg = o->first;
    db->last_seg = last;
    db->compact_seg = last;
    if ((rc = mmfs__manifest_write(db)) != MMFS_OK) {
        /* Only a failed fsync of ROOT may come after the rename: ask. */
        char msg[600];
        snprintf(msg, sizeof msg, "%s", mmfs_errmsg(NULL));
        int switched = mmfs__manifest_reread(db) == MMFS_OK && db->first_seg == o->first;
        if (!switched) {
            db->first_seg = old_first;
            db->last_seg = old_mlast;
            db->compact_seg = old_cseg;
            db->lsn_floor = old_lf;
            db->id_floor = old_if;
            atomic_store(&db->shm->first_segment, old_first);
            remove_output(db, o->first, last);
            return mmfs__err(rc, "compact: %s (the store is unchanged)", msg);
        }
    }
    char from[4096], to[4096];
    for (uint32_t no = o->first; no <= last; no++) {
        mmfs__cseg_path(db, no, from, sizeof from);
        mmfs__seg_path(db, no, to, sizeof to);
        (void)rename(from, to); /* what fails here, open finishes */
    }
    (void)mmfs__fsync_dir(db->log_dir);

    /* This handle now reads the new log. */
    if ((rc = rebase(db, o, last, end)) != MMFS_OK) return rc;
    uint64_t pos = atomic_load(&db->applied);
    pthread_mutex_lock(&db->smu);
    db->written_pos = db->durable_pos = db->synced_pos = db->stamp_pos = pos;
    db->written_lsn = db->durable_lsn = db->next_lsn - 1;
    db->written_fd = mmfs__seg_last(db)->fd;
    pthread_mutex_unlock(&db->smu);
    atomic_store(&db->shm->durable, pos);
    atomic_store_explicit(&db->shm->written, pos, memory_order_release);

    for (uint32_t no = old_first; no <= old_last; no++) {
        mmfs__seg_path(db, no, from, sizeof from);
        (void)unlink(from); /* what is left, open removes (below first_segment) */
    }
    (void)mmfs__fsync_dir(db->log_dir);
    res->bytes_after = log_bytes(db);
    res->kept = o->kept;
    res->dropped = o->dropped;
    return MMFS_OK;
}

int mmfs_compact(mmfs_db *db, const mmfs_compact_opts *opts, mmfs_compact_result *out) {
    mmfs_compact_result res;
    memset(&res, 0, sizeof res);
    if (out) memset(out, 0, sizeof *out);
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if (db->opt.readonly) return mmfs__err(MMFS_READONLY, "%s: opened read-only: cannot compact", db->dir);
    if (mmfs__in_own_writer(db)) return mmfs__err(MMFS_BUSY, "%s: a hook called back into its own store (compact)", db->dir);
    if (opts && opts->now < 0) return mmfs__err(MMFS_INVALID, "compact: now: negative");
    if (atomic_exchange(&db->compacting, 1)) return mmfs__err(MMFS_BUSY, "%s: a compaction already runs", db->dir);
    uint64_t t0 = now_ms();
    int64_t now = opts && opts->now ? opts->now : (int64_t)time(NULL);
    rc = compact(db, now, &res);
    /* Checkpoints made before point into the old segments (stale now), so
    ** the next open would replay the whole compacted log: write one of the
    ** new log, unless checkpoints are off.  It is derived data: if it
    ** cannot be written, the compaction still stands. */
    if (rc == MMFS_OK && db->opt.checkpoint_bytes) (void)mmfs_checkpoint(db);
    atomic_store(&db->compacting, 0);
    res.ms = now_ms() - t0;
    if (rc == MMFS_OK && out) *out = res;
    return rc;
}

/* ------------------------------------------------- compaction.when */

/* How often, at most, a handle asks compaction.when after its commits: a
** commit then pays one atomic load and a coarse clock read (W6). */
#define WHEN_EVERY_MS 1000

#ifdef MMFS_HAVE_POLICY
static uint64_t coarse_ms(void) {
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *background(void *ud) {
    mmfs_db *db = ud;
    (void)mmfs_compact(db, NULL, NULL); /* BUSY when the caller compacts: fine */
    pthread_mutex_lock(&db->smu);
    db->bg_done = 1;
    pthread_mutex_unlock(&db->smu);
    return NULL;
}
#endif

void mmfs__compact_join(mmfs_db *db) {
    pthread_mutex_lock(&db->smu);
    int on = db->bg_on;
    db->bg_on = 0;
    db->bg_stop = 1;
    pthread_mutex_unlock(&db->smu);
    if (on) pthread_join(db->bg, NULL);
}

void mmfs__compact_maybe(mmfs_db *db) {
#ifdef MMFS_HAVE_POLICY
    uint64_t t = coarse_ms(), last = atomic_load_explicit(&db->when_ms, memory_order_relaxed);
    if (t - last < WHEN_EVERY_MS || atomic_load_explicit(&db->compacting, memory_order_relaxed)) return;
    if (!atomic_compare_exchange_strong(&db->when_ms, &last, t)) return; /* another thread asks */
    if (pthread_mutex_trylock(&db->wmu) != 0) return; /* a writer is in: next time */
    int yes = 0;
    if (db->policy) {
        mmfs_store_stats st;
        memset(&st, 0, sizeof st);
        mmfs__engine_stats(db->eng, &st); /* a wmu holder reads the engine without rw */
        st.log_bytes = log_bytes(db);
        st.segments = db->nsegs;
        st.lsn = db->next_lsn - 1;
        st.dead_bytes = db->rec_bytes > st.live_bytes ? db->rec_bytes - st.live_bytes : 0;
        /* A when that raises or runs out of budget says no. */
        (void)mmfs__policy_when(db->policy, &st, &yes);
    }
    pthread_mutex_unlock(&db->wmu);
    if (!yes) return;
    pthread_mutex_lock(&db->smu);
    if (db->bg_on && db->bg_done) { /* the last one ended: reap it */
        pthread_t old = db->bg;
        db->bg_on = 0;
        pthread_mutex_unlock(&db->smu);
        pthread_join(old, NULL);
        pthread_mutex_lock(&db->smu);
    }
    if (!db->bg_on && !db->bg_stop) {
        db->bg_done = 0;
        if (pthread_create(&db->bg, NULL, background, db) == 0) db->bg_on = 1;
    }
    pthread_mutex_unlock(&db->smu);
#else
    (void)db;
#endif
}
