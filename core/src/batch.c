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
** frame is written, and a frame whose write failed is zeroed again under
** the lock, so a failed write leaves nothing behind, not even after a
** crash.  A frame is only ever written where the shared page says the log
** ends and where no frame is (a second writer beside this one, through a
** replaced LOCK, is refused rather than overwritten).
*/
#include "db.h"
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
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
    int is_tx;  /* handed to a C hook: the library commits it */
};

/* The handle whose writer lock this thread holds, so that a hook calling
** back into its own store gets BUSY instead of a deadlock. */
static _Thread_local mmfs_db *tl_writer;

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

static const mmfs_slice none = {"", 0};

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
    if (ntags > MMFS__MAX_TAGS)
        return mmfs__err(MMFS_INVALID, "tags: %zu is over the limit of %d", ntags, MMFS__MAX_TAGS);
    size_t n = 0;
    for (size_t i = 0; i < ntags; i++) {
        int rc = check_len(tags[i], "tag");
        if (rc) return rc;
        if (tags[i].len > MMFS__MAX_TAG_LEN)
            return mmfs__err(MMFS_INVALID, "tag %zu: longer than %d KiB", i + 1, MMFS__MAX_TAG_LEN >> 10);
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
    if (!rc && c->u.mem.route.len > MMFS__MAX_ROUTE)
        rc = mmfs__err(MMFS_INVALID, "route: longer than %d bytes", MMFS__MAX_ROUTE);
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
    if (tl_writer == db)
        return mmfs__err(MMFS_BUSY, "%s: a hook called back into its own store", db->dir);
    if (db->opt.readonly) return mmfs__err(MMFS_READONLY, "%s: opened read-only", db->dir);
    if ((rc = mmfs__sync_check(db)) != MMFS_OK) return rc;
    /* lock_timeout_ms = 0 promises an event loop no wait, also not for
    ** another thread of this process in the middle of its write. */
    if (db->opt.lock_timeout_ms == 0) {
        if (pthread_mutex_trylock(&db->wmu) != 0)
            return mmfs__err(MMFS_BUSY, "%s: another thread is writing "
                                        "(lock_timeout_ms = 0: not waiting)", db->dir);
    } else {
        pthread_mutex_lock(&db->wmu);
    }
    if ((rc = mmfs__lock_acquire(db)) != MMFS_OK) {
        pthread_mutex_unlock(&db->wmu);
        return rc;
    }
    rc = mmfs__lock_check(db);
    if (rc == MMFS_OK)
        rc = mmfs__catch_up_locked(db, atomic_load_explicit(&db->shm->written, memory_order_acquire));
    if (rc) {
        mmfs__lock_release(db);
        pthread_mutex_unlock(&db->wmu);
    } else {
        tl_writer = db;
    }
    return rc;
}

int mmfs__in_own_writer(const mmfs_db *db) { return tl_writer == db; }

static void writer_leave(mmfs_db *db) {
    tl_writer = NULL;
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
    case MMFS__R_DEL_MEMORY: /* prepare gave earlier appends their ids already */
        return (a->type == MMFS__R_DEL_MEMORY && a->u.del_mem.id == b->u.del_mem.id) ||
               (a->type == MMFS__R_MEMORY && a->u.mem.id == b->u.del_mem.id);
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


/* ------------------------------------------------------------- policy */

#ifdef MMFS_HAVE_POLICY
static void *work_alloc(void *ud, size_t n) { return arena_alloc(ud, n ? n : 1); }

static int st_get_kv(void *ud, mmfs_slice key, mmfs_slice *value) {
    return mmfs__engine_get_kv(((mmfs_db *)ud)->eng, key, value);
}
static int st_get_memory(void *ud, uint64_t id, mmfs__rec *rec) {
    return mmfs__engine_get_memory(((mmfs_db *)ud)->eng, id, rec);
}
static int st_get_session(void *ud, mmfs_slice id, mmfs__rec *rec) {
    return mmfs__engine_get_session(((mmfs_db *)ud)->eng, id, rec);
}

static void policy_limits(const mmfs_db *db, mmfs__policy_limits *lim) {
    lim->hook_budget = db->opt.hook_budget ? db->opt.hook_budget : MMFS__DEFAULT_HOOK_BUDGET;
    lim->batch_budget = lim->hook_budget * MMFS__BATCH_BUDGET_FACTOR;
    lim->mem_limit = MMFS__POLICY_MEM_LIMIT;
}

/* Makes db->policy the VM of the policy in force (rebuilt when another
** process, or this one, installed a new one). */
static int policy_sync(mmfs_db *db) {
    mmfs_slice src;
    uint64_t lsn;
    mmfs__engine_policy(db->eng, &src, &lsn);
    if (lsn == db->policy_lsn) return MMFS_OK;
    if (db->policy) mmfs__policy_free(db->policy);
    db->policy = NULL;
    db->policy_lsn = 0;
    if (src.len) {
        mmfs__policy_limits lim;
        policy_limits(db, &lim);
        mmfs__policy *p;
        int rc = mmfs__policy_new(src.ptr, src.len, &lim, &p);
        if (rc) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s", mmfs_errmsg(NULL));
            return mmfs__err(rc, "the policy in force (LSN %llu) fails here: %s", (unsigned long long)lsn, msg);
        }
        db->policy = p;
    }
    db->policy_lsn = lsn;
    return MMFS_OK;
}
#endif

/* mmfs__rec <-> mmfs_command for C hooks. */
static int to_command(mmfs_batch *work, const mmfs__rec *c, mmfs_command *m) {
    memset(m, 0, sizeof *m);
    switch (c->type) {
    case MMFS__R_MEMORY: {
        m->type = MMFS_CMD_APPEND_MEMORY;
        m->text = c->u.mem.text;
        m->route = c->u.mem.route;
        m->created_at = c->u.mem.created_at;
        mmfs_slice *tags = arena_alloc(work, (c->u.mem.ntags + 1) * sizeof *tags);
        if (!tags) return mmfs__err(MMFS_NOMEM, "out of memory");
        const uint8_t *p = c->u.mem.tags.ptr;
        for (uint32_t i = 0; i < c->u.mem.ntags; i++) tags[i] = mmfs__tag_next(&p);
        m->tags = tags;
        m->ntags = c->u.mem.ntags;
        break;
    }
    case MMFS__R_DEL_MEMORY: m->type = MMFS_CMD_DELETE_MEMORY; m->id = c->u.del_mem.id; break;
    case MMFS__R_KV_SET: m->type = MMFS_CMD_SET_KV; m->key = c->u.kv.key; m->value = c->u.kv.value; break;
    case MMFS__R_KV_DEL: m->type = MMFS_CMD_DELETE_KV; m->key = c->u.kv.key; break;
    case MMFS__R_SESSION_PUT:
        m->type = MMFS_CMD_PUT_SESSION;
        m->session.id = c->u.sess.id;
        m->session.has_intent = c->u.sess.has_intent;
        m->session.intent_id = c->u.sess.intent_id;
        m->session.has_created_at = 1;
        m->session.created_at = c->u.sess.created_at;
        m->session.has_payload = c->u.sess.has_payload;
        m->session.payload = c->u.sess.payload;
        m->session.fields = c->u.sess.fields;
        break;
    case MMFS__R_SESSION_DEL: m->type = MMFS_CMD_DELETE_SESSION; m->session.id = c->u.sess.id; break;
    case MMFS__R_STREAM_APPEND:
        m->type = MMFS_CMD_APPEND_STREAM; m->key = c->u.stream.key; m->value = c->u.stream.bytes; break;
    case MMFS__R_DOC_INDEX: m->type = MMFS_CMD_INDEX; m->key = c->u.doc.key; m->text = c->u.doc.text; break;
    case MMFS__R_DOC_UNINDEX: m->type = MMFS_CMD_UNINDEX; m->key = c->u.doc.key; break;
    case MMFS__R_STATE: m->type = MMFS_CMD_UPDATE_STATE; m->value = c->u.state.value; break;
    default: m->type = 0;
    }
    return MMFS_OK;
}

/* Rebuilds command C from what the hook left in M (same type). */
static int from_command(mmfs_batch *work, const mmfs_command *m, mmfs__rec *c) {
    mmfs__rec n;
    int rc = MMFS_OK;
    switch (c->type) {
    case MMFS__R_MEMORY: {
        size_t tsz;
        if ((rc = tags_size(m->tags, m->ntags, &tsz)) != MMFS_OK) return rc;
        uint8_t *buf = arena_alloc(work, tsz ? tsz : 1);
        if (!buf) return mmfs__err(MMFS_NOMEM, "out of memory");
        mmfs_memory_opts o = {1, m->created_at, m->route};
        rc = make_memory(&n, m->text, m->tags, m->ntags, &o, buf);
        break;
    }
    case MMFS__R_DEL_MEMORY:
        n = *c;
        n.u.del_mem.id = m->id;
        break;
    case MMFS__R_SESSION_PUT:
        rc = make_session(&n, &m->session);
        break;
    case MMFS__R_KV_SET: case MMFS__R_KV_DEL: rc = make_keyed(&n, c->type, m->key, m->value); break;
    case MMFS__R_SESSION_DEL: rc = make_keyed(&n, c->type, m->session.id, none); break;
    case MMFS__R_STREAM_APPEND: rc = make_keyed(&n, c->type, m->key, m->value); break;
    case MMFS__R_DOC_INDEX: rc = make_keyed(&n, c->type, m->key, m->text); break;
    case MMFS__R_DOC_UNINDEX: rc = make_keyed(&n, c->type, m->key, none); break;
    case MMFS__R_STATE: rc = make_keyed(&n, c->type, none, m->value); break;
    default: return MMFS_OK;
    }
    if (rc) return rc;
    n.origin = c->origin;
    n.flags = c->flags;
    *c = n;
    return MMFS_OK;
}

static int push_cmd(mmfs_batch *w, const mmfs__rec *c) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        mmfs__rec *nc = realloc(w->cmds, cap * sizeof *nc);
        if (!nc) return mmfs__err(MMFS_NOMEM, "out of memory");
        w->cmds = nc;
        w->cap = cap;
    }
    w->cmds[w->n++] = *c;
    return MMFS_OK;
}

/* Runs this handle's C hook over LIST (N commands) into WORK. */
static int run_hook(mmfs_db *db, const mmfs__rec *list, size_t n, mmfs_batch *work) {
    mmfs_batch tx;
    memset(&tx, 0, sizeof tx);
    tx.db = db;
    tx.is_tx = 1;
    int rc = MMFS_OK;
    for (size_t i = 0; i < n && rc == MMFS_OK; i++) {
        mmfs__rec c = list[i];
        if (c.type == MMFS__R_POLICY) {
            rc = push_cmd(work, &c);
            continue;
        }
        mmfs_command m;
        if ((rc = to_command(work, &c, &m)) != MMFS_OK) break;
        mmfs__err(MMFS_REJECTED, "rejected by the C hook");
        int hr = db->hook(db->hook_ud, &m, &tx);
        if (hr != MMFS_OK) {
            rc = hr == MMFS_REJECTED ? hr : mmfs__err(MMFS_REJECTED, "the C hook failed: %s", mmfs_err_name(hr));
            break;
        }
        if (tx.failed) {
            rc = mmfs__err(MMFS_NOMEM, "out of memory in a hook's batch");
            break;
        }
        if ((rc = from_command(work, &m, &c)) != MMFS_OK) break;
        if ((rc = push_cmd(work, &c)) != MMFS_OK) break;
        for (size_t j = 0; j < tx.n && rc == MMFS_OK; j++) {
            tx.cmds[j].origin = 0;
            rc = push_cmd(work, &tx.cmds[j]);
        }
        tx.n = 0;
    }
    /* The tx arena must outlive the frame: hand its blocks to WORK. */
    if (tx.blocks) {
        block *last = tx.blocks;
        while (last->next) last = last->next;
        last->next = work->blocks;
        work->blocks = tx.blocks;
    }
    free(tx.cmds);
    return rc;
}

/* MMFS_LIMIT when the N commands of LIST pass MMFS__MAX_COMMIT bytes. */
static int commit_size_check(const mmfs__rec *list, size_t n) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += mmfs__rec_size(&list[i]);
        if (total > MMFS__MAX_COMMIT)
            return mmfs__err(MMFS_LIMIT, "commit: over the limit of %zu bytes (with what hooks added)",
                             MMFS__MAX_COMMIT);
    }
    return MMFS_OK;
}

/* The policy step: the Lua policy, then the C hook.  OUT and NOUT get the
** commands to write (IN itself when there is nothing to run); WORK owns
** whatever was made.  The result must fit in one commit (LIMIT). */
static int run_policy(mmfs_db *db, mmfs__rec *in, size_t n, mmfs_batch *work, mmfs__rec **out, size_t *nout) {
    for (size_t i = 0; i < n; i++) in[i].origin = (uint32_t)(i + 1);
    *out = in;
    *nout = n;
    if (n == 1 && in[0].type == MMFS__R_POLICY) return MMFS_OK; /* checked by set_policy */
    int rc;
#ifdef MMFS_HAVE_POLICY
    if ((rc = policy_sync(db)) != MMFS_OK) return rc;
    if (db->policy) {
        mmfs__policy_store st = {db, st_get_kv, st_get_memory, st_get_session};
        mmfs__cmds oc = {NULL, 0, 0, work_alloc, work};
        rc = mmfs__policy_run(db->policy, in, n, &st, &oc);
        if (rc) {
            free(oc.v);
            return rc;
        }
        work->cmds = oc.v;
        work->n = oc.n;
        work->cap = oc.cap;
        for (size_t i = 0; i < oc.n; i++)
            if (oc.v[i].type == MMFS__R_MEMORY && !mmfs__policy_route_indexed(db->policy, oc.v[i].u.mem.route))
                oc.v[i].flags |= MMFS__RF_NOINDEX;
        *out = oc.v;
        *nout = oc.n;
    }
#else
    mmfs_slice src;
    uint64_t lsn;
    mmfs__engine_policy(db->eng, &src, &lsn);
    if (src.len)
        return mmfs__err(MMFS_INVALID, "%s: the store has a policy, and this build has no Lua policy support",
                         db->dir);
#endif
    if (db->hook) {
        mmfs_batch *w2 = calloc(1, sizeof *w2);
        if (!w2) return mmfs__err(MMFS_NOMEM, "out of memory");
        rc = run_hook(db, *out, *nout, w2);
        /* WORK takes over W2's commands and blocks. */
        block *last = w2->blocks;
        if (last) {
            while (last->next) last = last->next;
            last->next = work->blocks;
            work->blocks = w2->blocks;
        }
        free(work->cmds);
        work->cmds = w2->cmds;
        work->n = w2->n;
        work->cap = w2->cap;
        free(w2);
        if (rc) return rc;
        *out = work->cmds;
        *nout = work->n;
    }
    return commit_size_check(*out, *nout);
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

/* Zeroes [OFF, OFF+LEN) of S after a frame write that failed part way,
** so nothing of it stays behind (not even for a crash before the next
** write), and the append position reads as free again.  0 or errno. */
static int undo_write(const mmfs__seg *s, uint64_t off, size_t len) {
    static const uint8_t zeros[65536];
    while (len) {
        size_t n = len < sizeof zeros ? len : sizeof zeros;
        ssize_t w = pwrite(s->fd, zeros, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? errno : EIO;
        off += (uint64_t)w;
        len -= (size_t)w;
    }
    return 0;
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

/* A lone writer in "always" mode starts writing its frame's pages at once,
** so that the device works while the engine applies the frame and the
** fdatasync only waits for it and flushes (W1: about a tenth more appends/s).
** Not when other threads of this process commit too: their frames land in
** the same page, which would then be written twice, the second write
** waiting for the first (W1g: nearly a third fewer appends/s).  Only a hint: an
** I/O error surfaces from the fdatasync. */
static void start_writeback(mmfs_db *db, const mmfs__seg *s, uint64_t off, size_t len) {
#ifdef SYNC_FILE_RANGE_WRITE
    if (db->opt.sync == MMFS_SYNC_ALWAYS && atomic_load_explicit(&db->committers, memory_order_relaxed) == 1)
        (void)sync_file_range(s->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
#else
    (void)db, (void)s, (void)off, (void)len;
#endif
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
    if ((rc = mmfs__seg_zero_ahead(db, s, s->end + flen)) != MMFS_OK) return rc;
    /* Never write over a frame: the append position must be where the
    ** shared page says the log ends, and hold no frame.  Either failing
    ** means another writer got in beside this one (LOCK replaced). */
    if (atomic_load_explicit(&db->shm->written, memory_order_acquire) != atomic_load(&db->applied))
        return mmfs__err(MMFS_IO, "%s/LOCK: its shared page does not say the log ends where this handle "
                                  "is (log/%08u.seg offset %llu); refusing to write (was LOCK replaced? "
                                  "reopen the store)",
                         db->dir, s->no, (unsigned long long)s->end);
    if (s->end + MMFS__FRAME_HDR <= s->size && mmfs__frame_header_ok(s->map + s->end))
        return mmfs__err(MMFS_IO, "log/%08u.seg: offset %llu: a frame this handle did not write is at the "
                                  "append position; refusing to write over it (was LOCK replaced? reopen "
                                  "the store)",
                         s->no, (unsigned long long)s->end);
    if ((rc = pwrite_all(db, s, db->scratch, flen, s->end)) != MMFS_OK) {
        if (undo_write(s, s->end, flen)) { /* the bytes stay: no write may follow them */
            pthread_mutex_lock(&db->smu);
            db->sync_failed = 1;
            snprintf(db->sync_err, sizeof db->sync_err, "%s (and undoing it failed)", mmfs_errmsg(NULL));
            pthread_mutex_unlock(&db->smu);
        }
        return rc;
    }
    start_writeback(db, s, s->end, flen);
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
    if (!mmfs__frame_check(s->map + off, s->size - off, db->next_lsn, &db->sum, &f, &why)) {
        int rc = mmfs__err(MMFS_IO, "log/%08u.seg: offset %llu: the frame just written reads back bad (%s)",
                           s->no, (unsigned long long)off, why);
        if (undo_write(s, off, (size_t)(MMFS__POS_OFF(pos) - off))) {
            pthread_mutex_lock(&db->smu);
            db->sync_failed = 1;
            snprintf(db->sync_err, sizeof db->sync_err, "%s (and undoing it failed)", mmfs_errmsg(NULL));
            pthread_mutex_unlock(&db->smu);
        }
        return rc;
    }
    int rc = MMFS_OK;
    pthread_rwlock_wrlock(&db->rw);
    const uint8_t *p = f.body, *end = f.body + f.body_len;
    for (uint32_t i = 0; i < f.count && rc == MMFS_OK; i++) {
        mmfs__rec r;
        mmfs__rec_decode(p, (size_t)(end - p), &r);
        rc = mmfs__engine_apply(db->eng, &r);
        p += r.raw_len;
    }
    if (rc) {
        /* Out of memory part way: this handle's engine is broken (every
        ** call refuses until reopened, so nothing reads the frame), and the
        ** frame is taken back before anyone else can see it, so that the
        ** failed write does not come back at reopen. */
        atomic_store(&db->broken, 1);
        pthread_rwlock_unlock(&db->rw);
        char cause[400];
        snprintf(cause, sizeof cause, "%s", mmfs_errmsg(NULL));
        int u = undo_write(s, off, (size_t)(MMFS__POS_OFF(pos) - off));
        return mmfs__err(rc, "%s; the write was %s; reopen the store", cause,
                         u ? "written and could not be taken back: it may be present after reopen"
                           : "taken back");
    }
    s->end = MMFS__POS_OFF(pos);
    db->next_lsn = f.first_lsn + f.count;
    atomic_store(&db->applied, pos);
    pthread_rwlock_unlock(&db->rw);
    atomic_store_explicit(&db->shm->state_version, mmfs__engine_state_version(db->eng), memory_order_relaxed);
    atomic_store_explicit(&db->shm->written, pos, memory_order_release);
    mmfs__sync_written(db, pos, db->next_lsn - 1, s->fd);
    return rc;
}

/* Commits N commands as one frame.  KEEP (N bytes) reports which of the
** caller's commands were written; IDS (may be NULL, N entries) gets the
** memory id given to each caller's append_memory and the version given to
** each update_state. */
static int commit(mmfs_db *db, mmfs__rec *cmds, size_t n, char *keep, uint64_t *ids) {
    memset(keep, 0, n);
    mmfs_batch work;
    memset(&work, 0, sizeof work);
    int always = db->opt.sync == MMFS_SYNC_ALWAYS;
    if (always) atomic_fetch_add_explicit(&db->committers, 1, memory_order_relaxed);
    int rc = writer_enter(db);
    if (rc) {
        if (always) atomic_fetch_sub_explicit(&db->committers, 1, memory_order_relaxed);
        return rc;
    }
    mmfs__rec *list;
    size_t m;
    char *k2 = NULL;
    uint64_t pos = 0;
    size_t kept = 0;
    if ((rc = run_policy(db, cmds, n, &work, &list, &m)) != MMFS_OK) goto leave;
    k2 = list == cmds ? keep : malloc(m ? m : 1);
    if (!k2) {
        rc = mmfs__err(MMFS_NOMEM, "out of memory");
        goto leave;
    }
    kept = prepare(db, list, m, k2);
    for (size_t i = 0; i < m; i++) /* before anything is written: no id is consumed */
        if (k2[i] && list[i].type == MMFS__R_MEMORY && (rc = mmfs__mem_id_ok(list[i].u.mem.id))) goto leave;
    if (kept) {
        mmfs__seg *s = NULL;
        uint64_t off = 0;
        rc = write_frame(db, list, m, k2, kept, &pos, &s, &off);
        if (rc == MMFS_OK) rc = publish(db, s, off, pos);
    }
    if (rc == MMFS_OK) {
        for (size_t i = 0; i < m; i++) {
            if (list != cmds && list[i].origin && k2[i]) keep[list[i].origin - 1] = 1;
            if (ids && list[i].origin && list[i].type == MMFS__R_MEMORY) ids[list[i].origin - 1] = list[i].u.mem.id;
            if (ids && list[i].origin && list[i].type == MMFS__R_STATE)
                ids[list[i].origin - 1] = list[i].u.state.version;
        }
    }
leave:
    writer_leave(db);
    /* Index what was applied outside the writer's lock, before waiting for
    ** the sync: the next writer need not wait for it, and the device works
    ** meanwhile.  Failing here loses nothing: it stays queued, and the next
    ** search drains again and reports. */
    if (rc == MMFS_OK) (void)mmfs__engine_index_drain(db->eng);
    if (k2 && k2 != keep) free(k2);
    if (work.cmds != cmds) free(work.cmds);
    work.cmds = NULL;
    for (block *b = work.blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    if (rc == MMFS_OK && kept && always && (rc = mmfs__sync_wait(db, pos)) != MMFS_OK) {
        /* The frame is in the file, but whether it reached the disk cannot
        ** be known: the caller must take the write neither as done nor as
        ** failed (a retry could make two). */
        char cause[512];
        snprintf(cause, sizeof cause, "%s", mmfs_errmsg(NULL));
        rc = mmfs__err(MMFS_IO, "%s: this write may be present after reopen", cause);
    }
    if (always) atomic_fetch_sub_explicit(&db->committers, 1, memory_order_relaxed);
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
    uint64_t got = 0;
    rc = make_memory(&c, text, tags, ntags, opts, buf);
    if (!rc) rc = commit(db, &c, 1, &keep, &got);
    if (!rc && id) *id = got;
    if (buf != stackbuf) free(buf);
    return rc;
}

/* A single command; *found (may be NULL) reports whether it was written. */
static int single(mmfs_db *db, int type, mmfs_slice a, mmfs_slice b, int *found) {
    mmfs__rec c;
    char keep = 0;
    int rc = make_keyed(&c, type, a, b);
    if (!rc) rc = commit(db, &c, 1, &keep, NULL);
    if (found) *found = rc == MMFS_OK && keep;
    return rc;
}

int mmfs_delete_memory(mmfs_db *db, uint64_t id, int *deleted) {
    mmfs__rec c;
    char keep = 0;
    memset(&c, 0, sizeof c);
    c.type = MMFS__R_DEL_MEMORY;
    c.u.del_mem.id = id;
    int rc = commit(db, &c, 1, &keep, NULL);
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
    return rc ? rc : commit(db, &c, 1, &keep, NULL);
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
    uint64_t got = 0;
    if (!rc) rc = commit(db, &c, 1, &keep, &got);
    if (!rc && version) *version = got;
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
    if (!b || b->is_tx) return; /* a hook's tx belongs to the commit */
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
    if (b->is_tx) return mmfs__err(MMFS_INVALID, "a hook's tx is committed with the command that hooked it");
    int rc = MMFS_OK;
    char *keep = NULL;
    uint64_t *per = NULL;
    if (b->failed) {
        rc = mmfs__err(MMFS_NOMEM, "batch: an earlier add ran out of memory; nothing written");
        goto out;
    }
    if (b->n == 0) goto out;
    keep = malloc(b->n);
    per = calloc(b->n, sizeof *per);
    if (!keep || !per) {
        rc = mmfs__err(MMFS_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = commit(b->db, b->cmds, b->n, keep, per)) != MMFS_OK) goto out;
    /* The ids of the batch's own appends, in command order (memories a hook
    ** added are not among them: the caller did not ask for those). */
    size_t nm = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->cmds[i].type == MMFS__R_MEMORY) per[nm++] = per[i];
    if (nids) *nids = nm;
    if (ids && nm) {
        *ids = per;
        per = NULL;
    }
out:
    free(per);
    free(keep);
    mmfs_batch_abort(b);
    return rc;
}

/* ---------------------------------------------------- policy commands */

int mmfs_set_policy(mmfs_db *db, mmfs_slice source) {
    int rc = check_len(source, "policy");
    if (rc) return rc;
#ifdef MMFS_HAVE_POLICY
    if (source.len) {
        /* Compile it here first: a policy that fails never reaches the log. */
        mmfs__policy_limits lim;
        policy_limits(db, &lim);
        mmfs__policy *p;
        if ((rc = mmfs__policy_new(source.ptr, source.len, &lim, &p)) != MMFS_OK) return rc;
        mmfs__policy_free(p);
    }
#else
    if (source.len) return mmfs__err(MMFS_INVALID, "policies need a build with Lua policy support");
#endif
    mmfs__rec c;
    char keep;
    memset(&c, 0, sizeof c);
    c.type = MMFS__R_POLICY;
    c.u.policy.source = source.len ? source : none;
    return commit(db, &c, 1, &keep, NULL);
}

int mmfs_get_policy(mmfs_db *db, mmfs_slice *source) {
    if (!source) return mmfs__err(MMFS_INVALID, "mmfs_get_policy: source is NULL");
    mmfs__engine *e;
    int rc = mmfs__read_begin(db, &e);
    if (rc) return rc;
    uint64_t lsn;
    mmfs__engine_policy(e, source, &lsn);
    mmfs__read_end(db);
    return source->len ? MMFS_OK : mmfs__err(MMFS_NOTFOUND, "the store has no policy");
}

int mmfs_set_hook(mmfs_db *db, mmfs_hook_fn fn, void *ud) {
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if (tl_writer == db) return mmfs__err(MMFS_BUSY, "%s: a hook called back into its own store", db->dir);
    pthread_mutex_lock(&db->wmu);
    db->hook = fn;
    db->hook_ud = ud;
    pthread_mutex_unlock(&db->wmu);
    return MMFS_OK;
}

int mmfs_reject(const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "rejected", ap);
    va_end(ap);
    return mmfs__err(MMFS_REJECTED, "%s", msg);
}
