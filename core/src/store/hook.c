/*
** hook.c: the policy step of a commit, and the calls that set a policy or
** a hook.
**
** Owns: keeping db->policy the VM of the policy in force; running the Lua
** policy, then this handle's C hook, over a commit's commands (records
** to mmfs_command and back); the bound on what they may add
** (MMFS__MAX_COMMIT); mmfs_set_policy, mmfs_get_policy, mmfs_set_hook,
** mmfs_reject.
**
** Invariants: runs inside the writer lock (write.c), so the VM and the
** hook see the store as the frame will be written over it; whatever the
** step makes lives in the commit's WORK batch, which outlives the frame;
** a policy that fails to compile never reaches the log.
*/
#include "batch.h"
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef MMFS_HAVE_POLICY
static void *work_alloc(void *ud, size_t n) { return mmfs__arena_alloc(ud, n ? n : 1); }

static int st_get_kv(void *ud, mmfs_slice key, mmfs_slice *value) {
    return mmfs__engine_get_kv(((mmfs_db *)ud)->eng, key, value);
}
static int st_get_memory(void *ud, uint64_t id, mmfs__rec *rec) {
    mmfs__rec r; /* the plain text (ztext.c: a thread's buffer, copied by the VM at once) */
    int rc = mmfs__engine_get_memory(((mmfs_db *)ud)->eng, id, &r);
    return rc ? rc : mmfs__mem_plain(((mmfs_db *)ud)->eng, &r, rec);
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

/* The tag list of record C as an array in WORK, for M. */
static int tags_out(mmfs_batch *work, const mmfs__rec *c, mmfs_command *m) {
    mmfs_slice *tags = mmfs__arena_alloc(work, (c->u.mem.ntags + 1) * sizeof *tags);
    if (!tags) return mmfs__err(MMFS_NOMEM, "out of memory");
    const uint8_t *p = c->u.mem.tags.ptr;
    for (uint32_t i = 0; i < c->u.mem.ntags; i++) tags[i] = mmfs__tag_next(&p);
    m->tags = tags;
    m->ntags = c->u.mem.ntags;
    return MMFS_OK;
}

/* Each kind of field of record C into the command M (record.h). */
#define TO_ID(f, cf)
#define TO_U64(f, cf) m->cf = c->u.f;
#define TO_TIME(f, cf) m->cf = c->u.f;
#define TO_STR(f, cf) m->cf = c->u.f;
#define TO_SID(f, cf) m->cf = c->u.f;
#define TO_ROUTE(f, cf) m->cf = c->u.f;
#define TO_TAGS(f, cf)                                                                             \
    if ((rc = tags_out(work, c, m)) != MMFS_OK) return rc;
#define TO_SESS(f, cf) mmfs__rec_session(c, &m->cf);
#define TO_FIELD(kind, f, cf, k, what) TO_##kind(f, cf)
#define TO_CASE(N, code, role, C, m_, FIELDS, ...)                                                 \
    MMFS__IF_CMD_##role(case MMFS__R_##N : FIELDS(TO_FIELD) break;)

/* Record C as the mmfs_command M a C hook sees (arrays in WORK). */
static int to_command(mmfs_batch *work, const mmfs__rec *c, mmfs_command *m) {
    int rc = MMFS_OK;
    memset(m, 0, sizeof *m);
    m->type = (mmfs_command_type)c->type;
    switch (c->type) {
        MMFS__RECORDS(TO_CASE)
    }
    return rc;
}

/* Rebuilds command C from what the hook left in M (C's type). */
static int from_command(mmfs_batch *work, const mmfs_command *m, mmfs__rec *c) {
    mmfs_command mm = *m;
    mm.type = (mmfs_command_type)c->type; /* a hook edits a command, never its type */
    size_t extra;
    int rc = mmfs__make_size(&mm, &extra);
    if (rc) return rc;
    uint8_t *buf = NULL;
    if (extra && !(buf = mmfs__arena_alloc(work, extra))) return mmfs__err(MMFS_NOMEM, "out of memory");
    mmfs__rec n;
    if ((rc = mmfs__make(&n, &mm, buf)) != MMFS_OK) return rc;
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
int mmfs__run_policy(mmfs_db *db, mmfs__rec *in, size_t n, mmfs_batch *work, mmfs__rec **out, size_t *nout) {
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

int mmfs__policy_check(mmfs_db *db, mmfs_slice source) {
    if (!source.len) return MMFS_OK;
#ifdef MMFS_HAVE_POLICY
    mmfs__policy_limits lim;
    policy_limits(db, &lim);
    mmfs__policy *p;
    int rc = mmfs__policy_new(source.ptr, source.len, &lim, &p);
    if (rc == MMFS_OK) mmfs__policy_free(p);
    return rc;
#else
    (void)db;
    return mmfs__err(MMFS_INVALID, "policies need a build with Lua policy support");
#endif
}

int mmfs_set_policy(mmfs_db *db, mmfs_slice source) {
    int rc = mmfs__check_len(source, "policy");
    if (rc) return rc;
    /* Compiled here first: a policy that fails never reaches the log. */
    if ((rc = mmfs__policy_check(db, source)) != MMFS_OK) return rc;
    mmfs__rec c;
    char keep;
    memset(&c, 0, sizeof c);
    c.type = MMFS__R_POLICY;
    c.u.policy.source = source.len ? source : mmfs__none;
    return mmfs__commit(db, &c, 1, &keep, NULL);
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
    if (mmfs__in_own_writer(db))
        return mmfs__err(MMFS_BUSY, "%s: a hook called back into its own store", db->dir);
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
