/*
** batch.c: every write.  A single call is a batch of one command; a batch
** commits as one frame.  The writer's steps (DESIGN.md, "Writing") are
** separate functions so that the policy step can later sit between them:
**
**   writer_enter   in-process mutex, then flock on LOCK, then catch up
**   prepare        drop deletes of missing entries, assign ids, versions,
**                  LSNs (the policy's hooks will run here, under the lock)
**   write_frame    encode, roll the segment if full, pwrite
**   publish        apply to the engine, publish the written end
**   writer_leave   release flock and mutex
**   then durability outside the lock (sync.c).
**
** Invariant: nothing is published (engine, LOCK page) before the whole
** frame is written, so a failed write leaves nothing behind: the next
** frame is written over the failed one's bytes.
*/
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ commands */

/* Copies of a batch's arguments live in blocks that never move, so the
** slices in its commands stay valid as the batch grows. */
typedef struct block {
    struct block *next;
    size_t used, cap;
    uint8_t data[];
} block;

struct mmfs_batch {
    mmfs_db *db;
    mmfs__rec *cmds;
    size_t n, cap;
    block *blocks;
    int failed; /* an add ran out of memory: commit refuses */
};

static void *arena_alloc(mmfs_batch *b, size_t n) {
    block *k = b->blocks;
    if (!k || k->cap - k->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        block *nk = malloc(sizeof *nk + cap);
        if (!nk) return NULL;
        nk->next = b->blocks;
        nk->used = 0;
        nk->cap = cap;
        b->blocks = k = nk;
    }
    void *p = k->data + k->used;
    k->used += (n + 7) & ~(size_t)7;
    if (k->used > k->cap) k->used = k->cap;
    return p;
}

static int copy_slice(mmfs_batch *b, mmfs_slice *s) {
    if (!s->len) {
        s->ptr = "";
        return MMFS_OK;
    }
    void *p = arena_alloc(b, s->len);
    if (!p) return MMFS_NOMEM;
    memcpy(p, s->ptr, s->len);
    s->ptr = p;
    return MMFS_OK;
}

static int check_len(mmfs_slice s, const char *what) {
    if (s.len > MMFS__MAX_VALUE)
        return mmfs__err(MMFS_INVALID, "%s: %zu bytes is over the limit of %zu", what, s.len,
                         (size_t)MMFS__MAX_VALUE);
    if (s.len && !s.ptr) return mmfs__err(MMFS_INVALID, "%s: NULL pointer with a length", what);
    return MMFS_OK;
}

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* Encodes TAGS as the record's tag list into memory from ALLOC. */
static int encode_tags(const mmfs_slice *tags, size_t ntags, mmfs_slice *out, uint8_t *buf) {
    uint8_t *p = buf;
    for (size_t i = 0; i < ntags; i++) {
        mmfs__st32(p, (uint32_t)tags[i].len);
        if (tags[i].len) memcpy(p + 4, tags[i].ptr, tags[i].len);
        p += 4 + tags[i].len;
    }
    out->ptr = buf;
    out->len = (size_t)(p - buf);
    return MMFS_OK;
}

static int tags_size(const mmfs_slice *tags, size_t ntags, size_t *size) {
    if (ntags && !tags) return mmfs__err(MMFS_INVALID, "tags: NULL with a count");
    if (ntags > 65536) return mmfs__err(MMFS_INVALID, "tags: %zu is over the limit of 65536", ntags);
    size_t n = 0;
    for (size_t i = 0; i < ntags; i++) {
        int rc = check_len(tags[i], "tag");
        if (rc) return rc;
        if (tags[i].len > 65536) return mmfs__err(MMFS_INVALID, "tag %zu: longer than 64 KiB", i + 1);
        n += 4 + tags[i].len;
    }
    *size = n;
    return MMFS_OK;
}

/* Fills a MEMORY command; the tag list is encoded into TAGBUF. */
static int make_memory(mmfs__rec *c, mmfs_slice text, const mmfs_slice *tags, size_t ntags,
                       const mmfs_memory_opts *o, uint8_t *tagbuf) {
    memset(c, 0, sizeof *c);
    c->type = MMFS__R_MEMORY;
    c->u.mem.text = text;
    c->u.mem.ntags = (uint32_t)ntags;
    c->u.mem.created_at = o && o->has_created_at ? o->created_at : now_s();
    c->u.mem.route = o && o->route.len ? o->route : mmfs_str("default");
    int rc = check_len(text, "text");
    if (!rc && o) rc = check_len(o->route, "route");
    if (!rc && c->u.mem.route.len > 256) rc = mmfs__err(MMFS_INVALID, "route: longer than 256 bytes");
    if (!rc) encode_tags(tags, ntags, &c->u.mem.tags, tagbuf);
    return rc;
}

static int make_session(mmfs__rec *c, const mmfs_session *s) {
    memset(c, 0, sizeof *c);
    c->type = MMFS__R_SESSION_PUT;
    if (!s) return mmfs__err(MMFS_INVALID, "session: NULL");
    if (!s->id.len) return mmfs__err(MMFS_INVALID, "session: id is empty");
    int rc;
    if ((rc = check_len(s->id, "session id")) || (rc = check_len(s->intent_id, "intent_id")) ||
        (rc = check_len(s->payload, "payload")) || (rc = check_len(s->fields, "session fields")) ||
        (rc = mmfs__fields_check(s->fields)))
        return rc;
    c->u.sess.id = s->id;
    c->u.sess.has_intent = s->has_intent != 0;
    c->u.sess.intent_id = s->has_intent ? s->intent_id : (mmfs_slice){"", 0};
    c->u.sess.has_payload = s->has_payload != 0;
    c->u.sess.payload = s->has_payload ? s->payload : (mmfs_slice){"", 0};
    c->u.sess.created_at = s->has_created_at ? s->created_at : now_s();
    c->u.sess.fields = s->fields;
    return MMFS_OK;
}

/* A command on a key: TYPE with slices A (key) and B (value). */
static int make_keyed(mmfs__rec *c, int type, mmfs_slice a, mmfs_slice b) {
    memset(c, 0, sizeof *c);
    c->type = type;
    int rc = check_len(a, "key");
    if (!rc) rc = check_len(b, "value");
    if (rc) return rc;
    switch (type) {
    case MMFS__R_KV_SET:
    case MMFS__R_KV_DEL:
        c->u.kv.key = a;
        c->u.kv.value = b;
        break;
    case MMFS__R_SESSION_DEL:
        c->u.sess.id = a;
        break;
    case MMFS__R_STREAM_APPEND:
        c->u.stream.key = a;
        c->u.stream.bytes = b;
        break;
    case MMFS__R_DOC_INDEX:
    case MMFS__R_DOC_UNINDEX:
        c->u.doc.key = a;
        c->u.doc.text = b;
        break;
    case MMFS__R_STATE:
        c->u.state.value = b;
        break;
    }
    return MMFS_OK;
}

/* ------------------------------------------------------- writer steps */

static int writer_enter(mmfs_db *db) {
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if (db->opt.readonly) return mmfs__err(MMFS_READONLY, "%s: opened read-only", db->dir);
    if ((rc = mmfs__sync_check(db)) != MMFS_OK) return rc;
    pthread_mutex_lock(&db->wmu);
    if ((rc = mmfs__lock_acquire(db)) != MMFS_OK) {
        pthread_mutex_unlock(&db->wmu);
        return rc;
    }
    rc = mmfs__catch_up_locked(db, atomic_load_explicit(&db->shm->written, memory_order_acquire));
    if (rc) {
        mmfs__lock_release(db);
        pthread_mutex_unlock(&db->wmu);
    }
    return rc;
}

static void writer_leave(mmfs_db *db) {
    mmfs__lock_release(db);
    pthread_mutex_unlock(&db->wmu);
}

/* The key a command acts on, for deciding whether a delete finds anything. */
static int same_target(const mmfs__rec *a, const mmfs__rec *b) {
    switch (b->type) {
    case MMFS__R_KV_DEL:
        return (a->type == MMFS__R_KV_SET || a->type == MMFS__R_KV_DEL) && mmfs__slice_eq(a->u.kv.key, b->u.kv.key);
    case MMFS__R_SESSION_DEL:
        return (a->type == MMFS__R_SESSION_PUT || a->type == MMFS__R_SESSION_DEL) &&
               mmfs__slice_eq(a->u.sess.id, b->u.sess.id);
    case MMFS__R_DOC_UNINDEX:
        return (a->type == MMFS__R_DOC_INDEX || a->type == MMFS__R_DOC_UNINDEX) &&
               mmfs__slice_eq(a->u.doc.key, b->u.doc.key);
    case MMFS__R_DEL_MEMORY:
        return a->type == MMFS__R_DEL_MEMORY && a->u.del_mem.id == b->u.del_mem.id;
    }
    return 0;
}

static int is_delete(int type) {
    return type == MMFS__R_KV_DEL || type == MMFS__R_SESSION_DEL || type == MMFS__R_DOC_UNINDEX ||
           type == MMFS__R_DEL_MEMORY;
}

/* Does the target of delete C exist, given the kept commands before it? */
static int delete_finds(mmfs_db *db, mmfs__rec *cmds, const char *keep, size_t i) {
    const mmfs__rec *c = &cmds[i];
    for (size_t j = i; j-- > 0;)
        if (keep[j] && same_target(&cmds[j], c)) return !is_delete(cmds[j].type);
    switch (c->type) {
    case MMFS__R_KV_DEL:
        return mmfs__engine_has_kv(db->eng, c->u.kv.key);
    case MMFS__R_SESSION_DEL:
        return mmfs__engine_has_session(db->eng, c->u.sess.id);
    case MMFS__R_DOC_UNINDEX:
        return mmfs__engine_has_doc(db->eng, c->u.doc.key);
    case MMFS__R_DEL_MEMORY:
        return mmfs__engine_has_memory(db->eng, c->u.del_mem.id);
    }
    return 1;
}

/* Decides which commands are written and gives them ids, versions and
** LSNs.  KEEP[i] is set for the kept ones; returns their count. */
static size_t prepare(mmfs_db *db, mmfs__rec *cmds, size_t n, char *keep) {
    uint64_t id = mmfs__engine_next_memory_id(db->eng);
    uint64_t version = mmfs__engine_state_version(db->eng);
    uint64_t lsn = db->next_lsn;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        mmfs__rec *c = &cmds[i];
        keep[i] = !is_delete(c->type) || delete_finds(db, cmds, keep, i);
        if (!keep[i]) continue;
        if (c->type == MMFS__R_MEMORY) c->u.mem.id = id++;
        if (c->type == MMFS__R_STATE) c->u.state.version = ++version;
        c->lsn = lsn++;
        kept++;
    }
    return kept;
}

static int grow_scratch(mmfs_db *db, size_t need) {
    if (db->scratch_cap >= need) return MMFS_OK;
    size_t cap = db->scratch_cap ? db->scratch_cap : 65536;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(db->scratch, cap);
    if (!p) return mmfs__err(MMFS_NOMEM, "out of memory for a %zu-byte frame", need);
    db->scratch = p;
    db->scratch_cap = cap;
    return MMFS_OK;
}

static int pwrite_all(mmfs_db *db, const mmfs__seg *s, const uint8_t *buf, size_t len, uint64_t off) {
    while (len) {
        ssize_t w = pwrite(s->fd, buf, len, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            char path[4096];
            mmfs__seg_path(db, s->no, path, sizeof path);
            return mmfs__err_sys(w < 0 ? errno : EIO, "write", path);
        }
        buf += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return MMFS_OK;
}

/* Makes room for a frame of FLEN bytes: seals a full segment (the seal is
** synced before the next segment exists, so a sealed segment is whole) and
** starts the next one. */
static int ensure_space(mmfs_db *db, size_t flen) {
    size_t seal = mmfs__frame_size(0, &db->sum);
    mmfs__seg *s = mmfs__seg_last(db);
    if (!s->sealed && s->end + flen + seal <= s->size) return MMFS_OK;
    int rc;
    if (!s->sealed) {
        uint8_t buf[64];
        mmfs__frame_finish(buf, db->next_lsn, 0, MMFS__FRAME_SEAL, 0, &db->sum);
        if ((rc = pwrite_all(db, s, buf, seal, s->end)) != MMFS_OK) return rc;
        if (fdatasync(s->fd) < 0) {
            char path[4096];
            mmfs__seg_path(db, s->no, path, sizeof path);
            rc = mmfs__err_sys(errno, "fdatasync", path);
            pthread_mutex_lock(&db->smu);
            db->sync_failed = 1;
            snprintf(db->sync_err, sizeof db->sync_err, "%s", mmfs_errmsg(NULL));
            pthread_mutex_unlock(&db->smu);
            return rc;
        }
        s->sealed = 1;
    }
    uint64_t size = db->segment_size, need = MMFS__SEG_HDR + flen + seal;
    if (need > size) size = (need + 4095) & ~(uint64_t)4095;
    return mmfs__seg_create(db, s->no + 1, size);
}

/* Encodes the kept commands into one frame and writes it at the end of the
** log.  *pos gets the position past the frame. */
static int write_frame(mmfs_db *db, const mmfs__rec *cmds, size_t n, const char *keep, size_t kept,
                       uint64_t *pos, mmfs__seg **seg, uint64_t *off) {
    size_t body = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i]) body += mmfs__rec_size(&cmds[i]);
    if (body > MMFS__FRAME_MAX - 4096)
        return mmfs__err(MMFS_INVALID, "batch: %zu bytes is over the frame limit", body);
    size_t flen = mmfs__frame_size(body, &db->sum);
    int rc;
    if ((rc = grow_scratch(db, flen)) != MMFS_OK) return rc;
    uint8_t *p = db->scratch + MMFS__FRAME_HDR;
    for (size_t i = 0; i < n; i++) {
        if (!keep[i]) continue;
        mmfs__rec_encode(&cmds[i], p);
        p += mmfs__rec_size(&cmds[i]);
    }
    mmfs__frame_finish(db->scratch, db->next_lsn, (uint32_t)kept, 0, body, &db->sum);
    if ((rc = ensure_space(db, flen)) != MMFS_OK) return rc;
    mmfs__seg *s = mmfs__seg_last(db);
    if ((rc = pwrite_all(db, s, db->scratch, flen, s->end)) != MMFS_OK) return rc;
    *seg = s;
    *off = s->end;
    *pos = MMFS__POS(s->no, s->end + flen);
    if (db->scratch_cap > ((size_t)4 << 20)) { /* don't keep a huge buffer */
        free(db->scratch);
        db->scratch = NULL;
        db->scratch_cap = 0;
    }
    return MMFS_OK;
}

/* Applies the written frame to the engine (from the mapped log, so the
** engine's pointers are into the map) and publishes the new written end. */
static int publish(mmfs_db *db, mmfs__seg *s, uint64_t off, uint64_t pos) {
    mmfs__frame f;
    const char *why;
    if (!mmfs__frame_check(s->map + off, s->size - off, db->next_lsn, &db->sum, &f, &why))
        return mmfs__err(MMFS_IO, "log/%08u.seg: offset %llu: the frame just written reads back bad (%s)",
                         s->no, (unsigned long long)off, why);
    int rc = MMFS_OK;
    pthread_rwlock_wrlock(&db->rw);
    const uint8_t *p = f.body, *end = f.body + f.body_len;
    for (uint32_t i = 0; i < f.count && rc == MMFS_OK; i++) {
        mmfs__rec r;
        mmfs__rec_decode(p, (size_t)(end - p), &r);
        rc = mmfs__engine_apply(db->eng, &r);
        p += r.raw_len;
    }
    if (rc) atomic_store(&db->broken, 1);
    s->end = MMFS__POS_OFF(pos);
    db->next_lsn = f.first_lsn + f.count;
    atomic_store(&db->applied, pos);
    pthread_rwlock_unlock(&db->rw);
    atomic_store_explicit(&db->shm->written_lsn, db->next_lsn - 1, memory_order_relaxed);
    atomic_store_explicit(&db->shm->state_version, mmfs__engine_state_version(db->eng), memory_order_relaxed);
    atomic_store_explicit(&db->shm->written, pos, memory_order_release);
    mmfs__sync_written(db, pos, db->next_lsn - 1, s->fd);
    return rc;
}

/* Commits N commands as one frame.  KEEP (n bytes, may be NULL for n==1)
** reports which were written. */
static int commit(mmfs_db *db, mmfs__rec *cmds, size_t n, char *keep) {
    int rc = writer_enter(db);
    if (rc) return rc;
    size_t kept = prepare(db, cmds, n, keep);
    uint64_t pos = 0;
    if (kept) {
        mmfs__seg *s = NULL;
        uint64_t off = 0;
        rc = write_frame(db, cmds, n, keep, kept, &pos, &s, &off);
        if (rc == MMFS_OK) rc = publish(db, s, off, pos);
    }
    writer_leave(db);
    if (rc == MMFS_OK && kept && db->opt.sync == MMFS_SYNC_ALWAYS) rc = mmfs__sync_wait(db, pos);
    return rc;
}

/* ------------------------------------------------------- single calls */

int mmfs_append_memory(mmfs_db *db, mmfs_slice text, const mmfs_slice *tags, size_t ntags,
                       const mmfs_memory_opts *opts, uint64_t *id) {
    size_t tsz;
    int rc = tags_size(tags, ntags, &tsz);
    if (rc) return rc;
    uint8_t stackbuf[512], *buf = tsz <= sizeof stackbuf ? stackbuf : malloc(tsz);
    if (!buf) return mmfs__err(MMFS_NOMEM, "out of memory");
    mmfs__rec c;
    char keep;
    rc = make_memory(&c, text, tags, ntags, opts, buf);
    if (!rc) rc = commit(db, &c, 1, &keep);
    if (!rc && id) *id = c.u.mem.id;
    if (buf != stackbuf) free(buf);
    return rc;
}

/* A single command; *found (may be NULL) reports whether it was written. */
static int single(mmfs_db *db, int type, mmfs_slice a, mmfs_slice b, int *found) {
    mmfs__rec c;
    char keep = 0;
    int rc = make_keyed(&c, type, a, b);
    if (!rc) rc = commit(db, &c, 1, &keep);
    if (found) *found = rc == MMFS_OK && keep;
    return rc;
}

static const mmfs_slice none = {"", 0};

int mmfs_delete_memory(mmfs_db *db, uint64_t id, int *deleted) {
    mmfs__rec c;
    char keep = 0;
    memset(&c, 0, sizeof c);
    c.type = MMFS__R_DEL_MEMORY;
    c.u.del_mem.id = id;
    int rc = commit(db, &c, 1, &keep);
    if (deleted) *deleted = rc == MMFS_OK && keep;
    return rc;
}

int mmfs_set_kv(mmfs_db *db, mmfs_slice key, mmfs_slice value) {
    return single(db, MMFS__R_KV_SET, key, value, NULL);
}

int mmfs_delete_kv(mmfs_db *db, mmfs_slice key, int *deleted) {
    return single(db, MMFS__R_KV_DEL, key, none, deleted);
}

int mmfs_put_session(mmfs_db *db, const mmfs_session *s) {
    mmfs__rec c;
    char keep;
    int rc = make_session(&c, s);
    return rc ? rc : commit(db, &c, 1, &keep);
}

int mmfs_delete_session(mmfs_db *db, mmfs_slice id, int *deleted) {
    return single(db, MMFS__R_SESSION_DEL, id, none, deleted);
}

int mmfs_append_stream(mmfs_db *db, mmfs_slice key, mmfs_slice bytes) {
    return single(db, MMFS__R_STREAM_APPEND, key, bytes, NULL);
}

int mmfs_index(mmfs_db *db, mmfs_slice key, mmfs_slice text) {
    return single(db, MMFS__R_DOC_INDEX, key, text, NULL);
}

int mmfs_unindex(mmfs_db *db, mmfs_slice key, int *deleted) {
    return single(db, MMFS__R_DOC_UNINDEX, key, none, deleted);
}

int mmfs_update_state(mmfs_db *db, mmfs_slice value, uint64_t *version) {
    mmfs__rec c;
    char keep;
    int rc = make_keyed(&c, MMFS__R_STATE, none, value);
    if (!rc) rc = commit(db, &c, 1, &keep);
    if (!rc && version) *version = c.u.state.version;
    return rc;
}

/* ------------------------------------------------------------ batches */

int mmfs_batch_begin(mmfs_db *db, mmfs_batch **out) {
    if (!out) return mmfs__err(MMFS_INVALID, "mmfs_batch_begin: out is NULL");
    *out = NULL;
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if (db->opt.readonly) return mmfs__err(MMFS_READONLY, "%s: opened read-only", db->dir);
    mmfs_batch *b = calloc(1, sizeof *b);
    if (!b) return mmfs__err(MMFS_NOMEM, "out of memory");
    b->db = db;
    *out = b;
    return MMFS_OK;
}

/* Appends command C (its slices still the caller's) to B, copying them. */
static int batch_push(mmfs_batch *b, mmfs__rec *c) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        mmfs__rec *nc = realloc(b->cmds, cap * sizeof *nc);
        if (!nc) goto nomem;
        b->cmds = nc;
        b->cap = cap;
    }
    int rc = MMFS_OK;
    switch (c->type) {
    case MMFS__R_MEMORY:
        /* the tag list was encoded into the arena already */
        rc = copy_slice(b, &c->u.mem.text) | copy_slice(b, &c->u.mem.route);
        break;
    case MMFS__R_KV_SET:
    case MMFS__R_KV_DEL:
        rc = copy_slice(b, &c->u.kv.key) | copy_slice(b, &c->u.kv.value);
        break;
    case MMFS__R_SESSION_PUT:
    case MMFS__R_SESSION_DEL:
        rc = copy_slice(b, &c->u.sess.id) | copy_slice(b, &c->u.sess.intent_id) |
             copy_slice(b, &c->u.sess.payload) | copy_slice(b, &c->u.sess.fields);
        break;
    case MMFS__R_STREAM_APPEND:
        rc = copy_slice(b, &c->u.stream.key) | copy_slice(b, &c->u.stream.bytes);
        break;
    case MMFS__R_DOC_INDEX:
    case MMFS__R_DOC_UNINDEX:
        rc = copy_slice(b, &c->u.doc.key) | copy_slice(b, &c->u.doc.text);
        break;
    case MMFS__R_STATE:
        rc = copy_slice(b, &c->u.state.value);
        break;
    }
    if (rc) goto nomem;
    b->cmds[b->n++] = *c;
    return MMFS_OK;
nomem:
    b->failed = 1;
    return mmfs__err(MMFS_NOMEM, "out of memory adding to a batch");
}

#define BATCH_CHECK(b)                                                          \
    do {                                                                        \
        if (!(b)) return mmfs__err(MMFS_INVALID, "no batch");                   \
    } while (0)

int mmfs_batch_append_memory(mmfs_batch *b, mmfs_slice text, const mmfs_slice *tags, size_t ntags,
                             const mmfs_memory_opts *opts) {
    BATCH_CHECK(b);
    size_t tsz;
    int rc = tags_size(tags, ntags, &tsz);
    if (rc) return rc;
    uint8_t *buf = arena_alloc(b, tsz ? tsz : 1);
    if (!buf) {
        b->failed = 1;
        return mmfs__err(MMFS_NOMEM, "out of memory");
    }
    mmfs__rec c;
    if ((rc = make_memory(&c, text, tags, ntags, opts, buf)) != MMFS_OK) return rc;
    return batch_push(b, &c);
}

int mmfs_batch_delete_memory(mmfs_batch *b, uint64_t id) {
    BATCH_CHECK(b);
    mmfs__rec c;
    memset(&c, 0, sizeof c);
    c.type = MMFS__R_DEL_MEMORY;
    c.u.del_mem.id = id;
    return batch_push(b, &c);
}

static int batch_keyed(mmfs_batch *b, int type, mmfs_slice a, mmfs_slice v) {
    BATCH_CHECK(b);
    mmfs__rec c;
    int rc = make_keyed(&c, type, a, v);
    return rc ? rc : batch_push(b, &c);
}

int mmfs_batch_set_kv(mmfs_batch *b, mmfs_slice key, mmfs_slice value) {
    return batch_keyed(b, MMFS__R_KV_SET, key, value);
}
int mmfs_batch_delete_kv(mmfs_batch *b, mmfs_slice key) { return batch_keyed(b, MMFS__R_KV_DEL, key, none); }
int mmfs_batch_delete_session(mmfs_batch *b, mmfs_slice id) {
    return batch_keyed(b, MMFS__R_SESSION_DEL, id, none);
}
int mmfs_batch_append_stream(mmfs_batch *b, mmfs_slice key, mmfs_slice bytes) {
    return batch_keyed(b, MMFS__R_STREAM_APPEND, key, bytes);
}
int mmfs_batch_index(mmfs_batch *b, mmfs_slice key, mmfs_slice text) {
    return batch_keyed(b, MMFS__R_DOC_INDEX, key, text);
}
int mmfs_batch_unindex(mmfs_batch *b, mmfs_slice key) { return batch_keyed(b, MMFS__R_DOC_UNINDEX, key, none); }
int mmfs_batch_update_state(mmfs_batch *b, mmfs_slice value) {
    return batch_keyed(b, MMFS__R_STATE, none, value);
}

int mmfs_batch_put_session(mmfs_batch *b, const mmfs_session *s) {
    BATCH_CHECK(b);
    mmfs__rec c;
    int rc = make_session(&c, s);
    return rc ? rc : batch_push(b, &c);
}

void mmfs_batch_abort(mmfs_batch *b) {
    if (!b) return;
    for (block *k = b->blocks, *next; k; k = next) {
        next = k->next;
        free(k);
    }
    free(b->cmds);
    free(b);
}

int mmfs_batch_commit(mmfs_batch *b, uint64_t **ids, size_t *nids) {
    if (ids) *ids = NULL;
    if (nids) *nids = 0;
    BATCH_CHECK(b);
    int rc = MMFS_OK;
    char *keep = NULL;
    if (b->failed) {
        rc = mmfs__err(MMFS_NOMEM, "batch: an earlier add ran out of memory; nothing written");
        goto out;
    }
    if (b->n == 0) goto out;
    keep = malloc(b->n);
    if (!keep) {
        rc = mmfs__err(MMFS_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = commit(b->db, b->cmds, b->n, keep)) != MMFS_OK) goto out;
    size_t m = 0;
    for (size_t i = 0; i < b->n; i++) m += b->cmds[i].type == MMFS__R_MEMORY;
    if (ids && m) {
        /* Written already: a failure here loses only the id list. */
        uint64_t *v = malloc(m * sizeof *v);
        if (!v) {
            rc = mmfs__err(MMFS_NOMEM, "batch committed, but no memory for its id list");
            goto out;
        }
        size_t k = 0;
        for (size_t i = 0; i < b->n; i++)
            if (b->cmds[i].type == MMFS__R_MEMORY) v[k++] = b->cmds[i].u.mem.id;
        *ids = v;
    }
    if (nids) *nids = m;
out:
    free(keep);
    mmfs_batch_abort(b);
    return rc;
}
