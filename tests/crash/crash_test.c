/*
** crash_test.c: kill -9 loops.  A child process opens the store with
** sync = always and runs a deterministic-random mix of every write command
** (single calls and atomic batches); after each call that returned MMFS_OK
** it reports the call, with what the store gave back (ids, versions,
** "deleted" flags), to the parent through a pipe.  The parent kills it with
** SIGKILL after a random 0..30 ms, reopens the store and checks it against
** a model of every acknowledged call.
**
** Both processes generate the calls from the same seed and the same model
** (the child is forked from the parent after the model is up to date), so
** the parent knows exactly which call was in flight when the child died:
** the one after the last acknowledged.  It may have reached the log before
** the kill.  The store must equal the model without that call or the
** model with the whole call (a batch all or nothing), nothing else: every
** acknowledged write is there and intact, an unacknowledged one is whole
** or absent.  Memory ids must be dense and increasing, state versions
** exactly one more per update.
**
** Every seventh cycle MANIFEST is removed after the check, so the next
** child's open rebuilds it from the log.
**
** Bounded run: 250 cycles.  --soak or MMFS_SOAK=1: 5000 cycles (the store
** is restarted every 200 cycles so checks stay fast); --cycles N or
** MMFS_CRASH_CYCLES; --seed N or MMFS_CRASH_SEED.
*/
#include "crashutil.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------- model */

#define NKV 40
#define NSESS 10
#define NSTREAM 6
#define NDOC 16
#define MAXTAGS 4
#define MAXCMD 6

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void buf_set(buf *b, const void *p, size_t n) {
    if (n > b->cap) {
        b->cap = n + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) ct_fatal(__FILE__, __LINE__, "out of memory");
    }
    if (n) memcpy(b->p, p, n);
    b->n = n;
}

static void buf_add(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) ct_fatal(__FILE__, __LINE__, "out of memory");
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}

typedef struct mem_m {
    uint64_t id;
    int64_t created_at;
    char route[16];
    buf text;
    int ntags;
    char tags[MAXTAGS][24];
    int live;
} mem_m;

typedef struct sess_m {
    int has_intent, has_payload;
    char intent[16];
    int64_t created_at;
    buf payload, fields;
} sess_m;

typedef struct model {
    int kv_has[NKV];
    buf kv[NKV];
    mem_m *mems;
    size_t nmems, capmems;
    uint64_t max_id; /* highest memory id given */
    int s_has[NSESS];
    sess_m sess[NSESS];
    int st_has[NSTREAM];
    buf st[NSTREAM];
    int doc_has[NDOC];
    uint32_t doc_ver[NDOC]; /* the text is a function of slot and version */
    uint64_t state_ver;
    buf state;
} model;

static void model_free(model *m) {
    for (int i = 0; i < NKV; i++) free(m->kv[i].p);
    for (size_t i = 0; i < m->nmems; i++) free(m->mems[i].text.p);
    free(m->mems);
    for (int i = 0; i < NSESS; i++) {
        free(m->sess[i].payload.p);
        free(m->sess[i].fields.p);
    }
    for (int i = 0; i < NSTREAM; i++) free(m->st[i].p);
    free(m->state.p);
    memset(m, 0, sizeof *m);
}

/* Key of kv slot I: some printable, some binary with NUL and 0xff. */
static mmfs_slice kv_key(int i, uint8_t tmp[16]) {
    if (i % 7 == 3) {
        tmp[0] = 'k';
        tmp[1] = 0;
        tmp[2] = 0xff;
        tmp[3] = (uint8_t)i;
        return (mmfs_slice){tmp, 4};
    }
    int n = snprintf((char *)tmp, 16, "kv/%02d", i);
    return (mmfs_slice){tmp, (size_t)n};
}

static void sess_id(int i, char out[16]) { snprintf(out, 16, "sess-%d", i); }
static void stream_key(int i, char out[16]) { snprintf(out, 16, "stream/%d", i); }
static void doc_key(int i, char out[16]) { snprintf(out, 16, "doc-%d", i); }

/* The text of document slot I at version V: a unique token and filler. */
static int doc_text(int i, uint32_t v, char *out, size_t len) {
    return snprintf(out, len, "tokd%dv%u shared filler words about crash %u", i, v, v % 5);
}

/* ------------------------------------------------------------ commands */

enum {
    C_MEM = 1,
    C_MEM_DEL,
    C_KV_SET,
    C_KV_DEL,
    C_SESS_PUT,
    C_SESS_DEL,
    C_STREAM,
    C_DOC,
    C_UNDOC,
    C_STATE,
    C_NTYPES
};

static const char *const cmd_names[] = {"?",           "append_memory", "delete_memory",  "set_kv",
                                        "delete_kv",   "put_session",   "delete_session", "append_stream",
                                        "index",       "unindex",       "update_state"};

typedef struct cmd {
    int type;
    int slot;     /* kv, session, stream or document slot */
    uint64_t id;  /* delete_memory target */
    buf val;      /* kv value, memory text, stream bytes, state, payload */
    buf fields;   /* session fields */
    int64_t t;    /* created_at */
    int ntags;
    char tags[MAXTAGS][24];
    char route[16];
    int has_intent, has_payload;
    char intent[16];
} cmd;

typedef struct op {
    int batch;
    int n;
    cmd c[MAXCMD];
} op;

/* What the store returned for an op, reported by the child. */
typedef struct result {
    uint32_t opno;
    uint32_t n;
    uint64_t id[MAXCMD];      /* memory id given (single append_memory / batch order) */
    uint64_t version;         /* single update_state */
    int32_t deleted[MAXCMD];  /* single deletes */
    uint32_t nids;            /* batch: ids returned */
} result;

static void op_free(op *o) {
    for (int i = 0; i < MAXCMD; i++) {
        free(o->c[i].val.p);
        free(o->c[i].fields.p);
    }
    memset(o, 0, sizeof *o);
}

static void rand_bytes(ct_rng *r, buf *b, size_t n) {
    uint8_t tmp[4096];
    if (n > sizeof tmp) n = sizeof tmp;
    ct_fill(r, tmp, n);
    buf_set(b, tmp, n);
}

static void rand_text(ct_rng *r, buf *b, size_t words) {
    b->n = 0;
    static const char *const w[] = {"agent", "memory", "crash", "kill", "log",  "frame",
                                    "torn",  "tail",   "state", "ann",  "bob",  "tool"};
    char tmp[32];
    for (size_t i = 0; i < words; i++) {
        int n = (i % 3 == 2) ? snprintf(tmp, sizeof tmp, "w%u ", (unsigned)ct_below(r, 100000))
                             : snprintf(tmp, sizeof tmp, "%s ", w[ct_below(r, 12)]);
        buf_add(b, tmp, (size_t)n);
    }
}

/* Encodes session fields: a 'T' table of N string -> integer pairs. */
static void rand_fields(ct_rng *r, buf *b) {
    b->n = 0;
    uint32_t n = (uint32_t)ct_below(r, 4);
    if (ct_below(r, 4) == 0) return; /* no fields */
    uint8_t t = 'T';
    buf_add(b, &t, 1);
    buf_add(b, &n, 4);
    for (uint32_t i = 0; i < n; i++) {
        char k[8];
        uint32_t kl = (uint32_t)snprintf(k, sizeof k, "f%u", i);
        t = 's';
        buf_add(b, &t, 1);
        buf_add(b, &kl, 4);
        buf_add(b, k, kl);
        t = 'i';
        int64_t v = (int64_t)ct_next(r);
        buf_add(b, &t, 1);
        buf_add(b, &v, 8);
    }
}

/* A live memory id from the model, or (sometimes) one that is deleted or
** was never given. */
static uint64_t pick_memory(ct_rng *r, const model *m) {
    /* Never-given ids lie beyond what a batch could give itself: whether
    ** a batch may delete a memory it appends is not what this test is
    ** about (the library drops such a delete today). */
    if (m->nmems == 0 || ct_below(r, 8) == 0) return m->max_id + 100 + ct_below(r, 3);
    for (int tries = 0; tries < 4; tries++) {
        const mem_m *mm = &m->mems[ct_below(r, m->nmems)];
        if (mm->live) return mm->id;
    }
    return m->mems[ct_below(r, m->nmems)].id;
}

static void gen_cmd(ct_rng *r, const model *m, cmd *c) {
    int type = 1 + (int)ct_below(r, C_NTYPES - 1);
    c->type = type;
    switch (type) {
    case C_MEM:
        rand_text(r, &c->val, 1 + ct_below(r, ct_below(r, 10) == 0 ? 400 : 30));
        c->t = 1700000000 + (int64_t)ct_below(r, 1000000);
        c->ntags = (int)ct_below(r, MAXTAGS + 1);
        for (int i = 0; i < c->ntags; i++)
            snprintf(c->tags[i], sizeof c->tags[i], "%s:%u", i ? "topic" : "speaker",
                     (unsigned)ct_below(r, 6));
        if (ct_below(r, 3) == 0)
            snprintf(c->route, sizeof c->route, "route%u", (unsigned)ct_below(r, 3));
        else
            strcpy(c->route, "default"); /* passed empty: the library's default */
        break;
    case C_MEM_DEL:
        c->id = pick_memory(r, m);
        break;
    case C_KV_SET: {
        c->slot = (int)ct_below(r, NKV);
        size_t n = ct_below(r, 10) == 0 ? ct_below(r, 4000) : ct_below(r, 120);
        rand_bytes(r, &c->val, n);
        break;
    }
    case C_KV_DEL:
        c->slot = (int)ct_below(r, NKV);
        break;
    case C_SESS_PUT:
        c->slot = (int)ct_below(r, NSESS);
        c->has_intent = ct_below(r, 3) != 0;
        snprintf(c->intent, sizeof c->intent, "intent-%u", (unsigned)ct_below(r, 3));
        c->t = 1700000000 + (int64_t)ct_below(r, 1000);
        c->has_payload = ct_below(r, 3) != 0;
        if (c->has_payload)
            rand_bytes(r, &c->val, ct_below(r, 300));
        else
            c->val.n = 0;
        rand_fields(r, &c->fields);
        break;
    case C_SESS_DEL:
        c->slot = (int)ct_below(r, NSESS);
        break;
    case C_STREAM:
        c->slot = (int)ct_below(r, NSTREAM);
        rand_bytes(r, &c->val, ct_below(r, 8) == 0 ? 0 : 1 + ct_below(r, 300));
        break;
    case C_DOC:
    case C_UNDOC:
        c->slot = (int)ct_below(r, NDOC);
        break;
    case C_STATE:
        rand_bytes(r, &c->val, ct_below(r, 200));
        break;
    }
}

/* One op: a single call (3 in 4) or a batch of 2..MAXCMD commands. */
static void gen_op(ct_rng *r, const model *m, op *o) {
    for (int i = 0; i < MAXCMD; i++) {
        o->c[i].val.n = 0;
        o->c[i].fields.n = 0;
    }
    o->batch = ct_below(r, 4) == 0;
    o->n = o->batch ? 2 + (int)ct_below(r, MAXCMD - 1) : 1;
    for (int i = 0; i < o->n; i++) gen_cmd(r, m, &o->c[i]);
}

/* Applies command C to the model.  *id gets a new memory id, *ver the new
** state version; returns the "deleted" outcome for deletes. */
static int apply_cmd(model *m, const cmd *c, uint64_t *id, uint64_t *ver) {
    switch (c->type) {
    case C_MEM: {
        if (m->nmems == m->capmems) {
            m->capmems = m->capmems ? m->capmems * 2 : 64;
            m->mems = realloc(m->mems, m->capmems * sizeof *m->mems);
            if (!m->mems) ct_fatal(__FILE__, __LINE__, "out of memory");
        }
        mem_m *mm = &m->mems[m->nmems++];
        memset(mm, 0, sizeof *mm);
        mm->id = ++m->max_id;
        mm->created_at = c->t;
        strcpy(mm->route, c->route);
        buf_set(&mm->text, c->val.p, c->val.n);
        mm->ntags = c->ntags;
        memcpy(mm->tags, c->tags, sizeof mm->tags);
        mm->live = 1;
        if (id) *id = mm->id;
        return 0;
    }
    case C_MEM_DEL:
        for (size_t i = 0; i < m->nmems; i++)
            if (m->mems[i].id == c->id) {
                int was = m->mems[i].live;
                m->mems[i].live = 0;
                return was;
            }
        return 0;
    case C_KV_SET:
        m->kv_has[c->slot] = 1;
        buf_set(&m->kv[c->slot], c->val.p, c->val.n);
        return 0;
    case C_KV_DEL: {
        int was = m->kv_has[c->slot];
        m->kv_has[c->slot] = 0;
        return was;
    }
    case C_SESS_PUT: {
        sess_m *s = &m->sess[c->slot];
        m->s_has[c->slot] = 1;
        s->has_intent = c->has_intent;
        strcpy(s->intent, c->intent);
        s->created_at = c->t;
        s->has_payload = c->has_payload;
        buf_set(&s->payload, c->val.p, c->val.n);
        buf_set(&s->fields, c->fields.p, c->fields.n);
        return 0;
    }
    case C_SESS_DEL: {
        int was = m->s_has[c->slot];
        m->s_has[c->slot] = 0;
        return was;
    }
    case C_STREAM:
        m->st_has[c->slot] = 1;
        buf_add(&m->st[c->slot], c->val.p, c->val.n);
        return 0;
    case C_DOC:
        m->doc_has[c->slot] = 1;
        m->doc_ver[c->slot]++;
        return 0;
    case C_UNDOC: {
        int was = m->doc_has[c->slot];
        m->doc_has[c->slot] = 0;
        return was;
    }
    case C_STATE:
        m->state_ver++;
        buf_set(&m->state, c->val.p, c->val.n);
        if (ver) *ver = m->state_ver;
        return 0;
    }
    return 0;
}

/* Applies a whole op; fills EXP with what the store should return. */
static void apply_op(model *m, const op *o, result *exp) {
    memset(exp, 0, sizeof *exp);
    exp->n = (uint32_t)o->n;
    for (int i = 0; i < o->n; i++) {
        uint64_t id = 0, ver = 0;
        exp->deleted[i] = apply_cmd(m, &o->c[i], &id, &ver);
        if (o->c[i].type == C_MEM) exp->id[exp->nids++] = id;
        if (ver) exp->version = ver;
    }
}

static void describe_op(const op *o, char *out, size_t len) {
    size_t k = (size_t)snprintf(out, len, "%s[", o->batch ? "batch" : "call");
    for (int i = 0; i < o->n && k < len; i++) {
        const cmd *c = &o->c[i];
        if (c->type == C_MEM_DEL)
            k += (size_t)snprintf(out + k, len - k, "%s%s(%" PRIu64 ")", i ? ", " : "", cmd_names[c->type], c->id);
        else if (c->type == C_MEM || c->type == C_STATE)
            k += (size_t)snprintf(out + k, len - k, "%s%s(%zu bytes)", i ? ", " : "", cmd_names[c->type], c->val.n);
        else
            k += (size_t)snprintf(out + k, len - k, "%s%s(slot %d)", i ? ", " : "", cmd_names[c->type], c->slot);
    }
    if (k < len) snprintf(out + k, len - k, "]");
}

/* ----------------------------------------------------------- the child */

static mmfs_memory_opts mem_opts(const cmd *c) {
    mmfs_memory_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.has_created_at = 1;
    mo.created_at = c->t;
    mo.route = strcmp(c->route, "default") ? mmfs_str(c->route) : (mmfs_slice){NULL, 0};
    return mo;
}

static void tag_slices(const cmd *c, mmfs_slice *t) {
    for (int i = 0; i < c->ntags; i++) t[i] = mmfs_str(c->tags[i]);
}

static mmfs_session sess_of(const cmd *c, char id[16]) {
    mmfs_session s;
    memset(&s, 0, sizeof s);
    sess_id(c->slot, id);
    s.id = mmfs_str(id);
    s.has_intent = c->has_intent;
    s.intent_id = mmfs_str(c->intent);
    s.has_created_at = 1;
    s.created_at = c->t;
    s.has_payload = c->has_payload;
    s.payload = (mmfs_slice){c->val.p, c->val.n};
    s.fields = (mmfs_slice){c->fields.p, c->fields.n};
    return s;
}

/* Runs one single call; fills RES.  Returns the status. */
static int run_single(mmfs_db *db, const cmd *c, result *res) {
    uint8_t kt[16];
    char name[16];
    mmfs_slice tags[MAXTAGS];
    int d = -1, rc = MMFS_INVALID;
    switch (c->type) {
    case C_MEM: {
        mmfs_memory_opts mo = mem_opts(c);
        tag_slices(c, tags);
        rc = mmfs_append_memory(db, (mmfs_slice){c->val.p, c->val.n}, tags, (size_t)c->ntags, &mo,
                                &res->id[0]);
        res->nids = 1;
        break;
    }
    case C_MEM_DEL:
        rc = mmfs_delete_memory(db, c->id, &d);
        break;
    case C_KV_SET:
        rc = mmfs_set_kv(db, kv_key(c->slot, kt), (mmfs_slice){c->val.p, c->val.n});
        break;
    case C_KV_DEL:
        rc = mmfs_delete_kv(db, kv_key(c->slot, kt), &d);
        break;
    case C_SESS_PUT: {
        mmfs_session s = sess_of(c, name);
        rc = mmfs_put_session(db, &s);
        break;
    }
    case C_SESS_DEL:
        sess_id(c->slot, name);
        rc = mmfs_delete_session(db, mmfs_str(name), &d);
        break;
    case C_STREAM:
        stream_key(c->slot, name);
        rc = mmfs_append_stream(db, mmfs_str(name), (mmfs_slice){c->val.p, c->val.n});
        break;
    case C_DOC:
        break; /* needs the version: see run_op */
    case C_UNDOC:
        doc_key(c->slot, name);
        rc = mmfs_unindex(db, mmfs_str(name), &d);
        break;
    case C_STATE:
        rc = mmfs_update_state(db, (mmfs_slice){c->val.p, c->val.n}, &res->version);
        break;
    }
    res->deleted[0] = d;
    return rc;
}

/* Runs op O against DB; M is the child's model before the op (for the
** document text, a function of the version the op will make). */
static int run_op(mmfs_db *db, const model *m, const op *o, result *res) {
    char name[16], text[128];
    uint8_t kt[16];
    mmfs_slice tags[MAXTAGS];
    memset(res, 0, sizeof *res);
    res->n = (uint32_t)o->n;
    uint32_t dv[NDOC];
    memcpy(dv, m->doc_ver, sizeof dv);
    if (!o->batch) {
        const cmd *c = &o->c[0];
        if (c->type != C_DOC) return run_single(db, c, res);
        doc_key(c->slot, name);
        int n = doc_text(c->slot, dv[c->slot] + 1, text, sizeof text);
        return mmfs_index(db, mmfs_str(name), (mmfs_slice){text, (size_t)n});
    }
    mmfs_batch *b;
    int rc = mmfs_batch_begin(db, &b);
    if (rc) return rc;
    for (int i = 0; i < o->n && rc == MMFS_OK; i++) {
        const cmd *c = &o->c[i];
        switch (c->type) {
        case C_MEM: {
            mmfs_memory_opts mo = mem_opts(c);
            tag_slices(c, tags);
            rc = mmfs_batch_append_memory(b, (mmfs_slice){c->val.p, c->val.n}, tags, (size_t)c->ntags,
                                          &mo);
            break;
        }
        case C_MEM_DEL:
            rc = mmfs_batch_delete_memory(b, c->id);
            break;
        case C_KV_SET:
            rc = mmfs_batch_set_kv(b, kv_key(c->slot, kt), (mmfs_slice){c->val.p, c->val.n});
            break;
        case C_KV_DEL:
            rc = mmfs_batch_delete_kv(b, kv_key(c->slot, kt));
            break;
        case C_SESS_PUT: {
            mmfs_session s = sess_of(c, name);
            rc = mmfs_batch_put_session(b, &s);
            break;
        }
        case C_SESS_DEL:
            sess_id(c->slot, name);
            rc = mmfs_batch_delete_session(b, mmfs_str(name));
            break;
        case C_STREAM:
            stream_key(c->slot, name);
            rc = mmfs_batch_append_stream(b, mmfs_str(name), (mmfs_slice){c->val.p, c->val.n});
            break;
        case C_DOC: {
            doc_key(c->slot, name);
            int n = doc_text(c->slot, ++dv[c->slot], text, sizeof text);
            rc = mmfs_batch_index(b, mmfs_str(name), (mmfs_slice){text, (size_t)n});
            break;
        }
        case C_UNDOC:
            doc_key(c->slot, name);
            rc = mmfs_batch_unindex(b, mmfs_str(name));
            break;
        case C_STATE:
            rc = mmfs_batch_update_state(b, (mmfs_slice){c->val.p, c->val.n});
            break;
        }
    }
    if (rc) {
        mmfs_batch_abort(b);
        return rc;
    }
    uint64_t *ids = NULL;
    size_t nids = 0;
    rc = mmfs_batch_commit(b, &ids, &nids);
    if (rc == MMFS_OK) {
        res->nids = (uint32_t)nids;
        for (size_t i = 0; i < nids && i < MAXCMD; i++) res->id[i] = ids[i];
    }
    mmfs_free(ids);
    return rc;
}

typedef struct msg {
    uint32_t kind; /* 'A' ack, 'E' error (then text) */
    int32_t status;
    result r;
    char text[200];
} msg;

static void send_msg(int fd, const msg *mg) {
    const char *p = (const char *)mg;
    size_t n = sizeof *mg; /* under PIPE_BUF: one atomic write */
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(4);
        p += w;
        n -= (size_t)w;
    }
}

static mmfs_options store_options(void) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_ALWAYS;
    o.segment_size = 64 << 10; /* small: segment rolls happen under the kill too */
    return o;
}

static void child_main(const char *dir, int wfd, model *m, uint64_t seed) {
    ct_rng rng = {seed};
    mmfs_options o = store_options();
    mmfs_db *db;
    msg mg;
    memset(&mg, 0, sizeof mg);
    int rc = mmfs_open(dir, &o, &db);
    if (rc) {
        mg.kind = 'E';
        mg.status = rc;
        snprintf(mg.text, sizeof mg.text, "child: mmfs_open: %s", mmfs_errmsg(NULL));
        send_msg(wfd, &mg);
        _exit(3);
    }
    op o1;
    memset(&o1, 0, sizeof o1);
    for (uint32_t k = 0; k < 1000000; k++) {
        gen_op(&rng, m, &o1);
        result res, exp;
        rc = run_op(db, m, &o1, &res);
        if (rc) {
            mg.kind = 'E';
            mg.status = rc;
            char d[120];
            describe_op(&o1, d, sizeof d);
            snprintf(mg.text, sizeof mg.text, "child: op %u %s: %s", k, d, mmfs_errmsg(NULL));
            send_msg(wfd, &mg);
            _exit(3);
        }
        apply_op(m, &o1, &exp);
        mg.kind = 'A';
        mg.status = 0;
        mg.r = res;
        mg.r.opno = k;
        send_msg(wfd, &mg); /* only now is the op acknowledged */
    }
    _exit(0);
}

/* ------------------------------------------------- checking the store */

static int quiet; /* count mismatches without printing them */
static int mismatches;

#define MISMATCH(...)                                                          \
    do {                                                                       \
        mismatches++;                                                          \
        if (!quiet) ct_fail(__FILE__, __LINE__, __VA_ARGS__);                 \
    } while (0)

static int slice_is(mmfs_slice s, const void *p, size_t n) {
    return s.len == n && (n == 0 || memcmp(s.ptr, p, n) == 0);
}

/* Compares every part of the store with M; returns the mismatches. */
static int check_store(mmfs_db *db, const model *m) {
    mismatches = 0;
    int rc;
    mmfs_store_stats st;
    if ((rc = mmfs_stats(db, &st)) != MMFS_OK) {
        MISMATCH("stats: %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
        return mismatches;
    }
    /* kv */
    uint64_t nkv = 0;
    for (int i = 0; i < NKV; i++) {
        uint8_t kt[16];
        mmfs_slice v;
        rc = mmfs_get_kv(db, kv_key(i, kt), &v);
        nkv += m->kv_has[i];
        if (m->kv_has[i] && rc != MMFS_OK)
            MISMATCH("kv slot %d: acked value (%zu bytes) missing: %s", i, m->kv[i].n, mmfs_err_name(rc));
        else if (m->kv_has[i] && !slice_is(v, m->kv[i].p, m->kv[i].n))
            MISMATCH("kv slot %d: value differs (%zu bytes, want %zu)", i, v.len, m->kv[i].n);
        else if (!m->kv_has[i] && rc != MMFS_NOTFOUND)
            MISMATCH("kv slot %d: deleted/never set, get gives %s", i, mmfs_err_name(rc));
    }
    if (st.kv != nkv) MISMATCH("stats.kv %" PRIu64 ", want %" PRIu64, st.kv, nkv);
    mmfs_kv_iter *it;
    if ((rc = mmfs_kv_iter_open(db, (mmfs_slice){NULL, 0}, &it)) == MMFS_OK) {
        uint64_t n = 0;
        mmfs_slice k, v;
        while (mmfs_kv_iter_next(it, &k, &v) == MMFS_OK) n++;
        mmfs_kv_iter_close(it);
        if (n != nkv) MISMATCH("kv scan: %" PRIu64 " keys, want %" PRIu64, n, nkv);
    } else
        MISMATCH("kv_iter_open: %s", mmfs_err_name(rc));

    /* memories */
    uint64_t live = 0;
    for (size_t i = 0; i < m->nmems; i++) {
        const mem_m *mm = &m->mems[i];
        mmfs_memory *got = NULL;
        rc = mmfs_get_memory(db, mm->id, &got);
        live += mm->live;
        if (!mm->live) {
            if (rc != MMFS_NOTFOUND) MISMATCH("memory %" PRIu64 ": deleted, get gives %s", mm->id, mmfs_err_name(rc));
        } else if (rc != MMFS_OK) {
            MISMATCH("memory %" PRIu64 ": acked, get gives %s", mm->id, mmfs_err_name(rc));
        } else {
            if (got->id != mm->id) MISMATCH("memory %" PRIu64 ": id field %" PRIu64, mm->id, got->id);
            if (!slice_is(got->text, mm->text.p, mm->text.n))
                MISMATCH("memory %" PRIu64 ": text differs (%zu bytes, want %zu)", mm->id, got->text.len,
                         mm->text.n);
            if (got->created_at != mm->created_at)
                MISMATCH("memory %" PRIu64 ": created_at %" PRId64 ", want %" PRId64, mm->id, got->created_at,
                         mm->created_at);
            if (!slice_is(got->route, mm->route, strlen(mm->route)))
                MISMATCH("memory %" PRIu64 ": route '%.*s', want '%s'", mm->id, (int)got->route.len,
                         (const char *)got->route.ptr, mm->route);
            if (got->ntags != (size_t)mm->ntags)
                MISMATCH("memory %" PRIu64 ": %zu tags, want %d", mm->id, got->ntags, mm->ntags);
            else
                for (int t = 0; t < mm->ntags; t++)
                    if (!slice_is(got->tags[t], mm->tags[t], strlen(mm->tags[t])))
                        MISMATCH("memory %" PRIu64 ": tag %d differs", mm->id, t);
        }
        mmfs_free(got);
    }
    for (uint64_t id = m->max_id + 1; id <= m->max_id + 2; id++) {
        mmfs_memory *got = NULL;
        rc = mmfs_get_memory(db, id, &got);
        if (rc != MMFS_NOTFOUND) MISMATCH("memory %" PRIu64 ": never acked, get gives %s", id, mmfs_err_name(rc));
        mmfs_free(got);
    }
    if (st.memories != live) MISMATCH("stats.memories %" PRIu64 ", want %" PRIu64, st.memories, live);

    /* sessions */
    uint64_t ns = 0;
    for (int i = 0; i < NSESS; i++) {
        char id[16];
        sess_id(i, id);
        mmfs_session g;
        rc = mmfs_get_session(db, mmfs_str(id), &g);
        ns += m->s_has[i];
        const sess_m *s = &m->sess[i];
        if (!m->s_has[i]) {
            if (rc != MMFS_NOTFOUND) MISMATCH("session %s: deleted/never put, get gives %s", id, mmfs_err_name(rc));
            continue;
        }
        if (rc != MMFS_OK) {
            MISMATCH("session %s: acked, get gives %s", id, mmfs_err_name(rc));
            continue;
        }
        if (!g.has_intent != !s->has_intent ||
            (s->has_intent && !slice_is(g.intent_id, s->intent, strlen(s->intent))))
            MISMATCH("session %s: intent differs", id);
        if (g.created_at != s->created_at) MISMATCH("session %s: created_at differs", id);
        if (!g.has_payload != !s->has_payload ||
            (s->has_payload && !slice_is(g.payload, s->payload.p, s->payload.n)))
            MISMATCH("session %s: payload differs", id);
        if (!slice_is(g.fields, s->fields.p, s->fields.n))
            MISMATCH("session %s: fields differ (%zu bytes, want %zu)", id, g.fields.len, s->fields.n);
    }
    if (st.sessions != ns) MISMATCH("stats.sessions %" PRIu64 ", want %" PRIu64, st.sessions, ns);

    /* streams: the bytes are exactly the acked appends, in order */
    uint64_t nst = 0;
    for (int i = 0; i < NSTREAM; i++) {
        char key[16];
        stream_key(i, key);
        uint64_t size = 0;
        nst += m->st_has[i];
        if ((rc = mmfs_stream_size(db, mmfs_str(key), &size)) != MMFS_OK)
            MISMATCH("stream %s: size: %s", key, mmfs_err_name(rc));
        if (size != m->st[i].n)
            MISMATCH("stream %s: %" PRIu64 " bytes, want %zu", key, size, m->st[i].n);
        mmfs_reader *r;
        rc = mmfs_open_read(db, mmfs_str(key), &r);
        if (!m->st_has[i]) {
            if (rc != MMFS_NOTFOUND) MISMATCH("stream %s: never appended, open_read gives %s", key, mmfs_err_name(rc));
            if (rc == MMFS_OK) mmfs_reader_close(r);
            continue;
        }
        if (rc != MMFS_OK) {
            MISMATCH("stream %s: open_read: %s", key, mmfs_err_name(rc));
            continue;
        }
        uint8_t *data = malloc(m->st[i].n + 4096);
        size_t got = 0, n;
        while ((rc = mmfs_reader_read(r, data + got, m->st[i].n + 4096 - got, &n)) == MMFS_OK && n) got += n;
        mmfs_reader_close(r);
        if (rc != MMFS_OK) MISMATCH("stream %s: read: %s", key, mmfs_err_name(rc));
        if (got != m->st[i].n || (got && memcmp(data, m->st[i].p, got) != 0)) {
            size_t j = 0;
            while (j < got && j < m->st[i].n && data[j] == m->st[i].p[j]) j++;
            MISMATCH("stream %s: read %zu bytes, want %zu; first difference at byte %zu", key, got, m->st[i].n, j);
        }
        free(data);
    }
    if (st.streams != nst) MISMATCH("stats.streams %" PRIu64 ", want %" PRIu64, st.streams, nst);

    /* documents: each live one found by its unique token, an old version's
    ** token finds nothing */
    uint64_t nd = 0;
    for (int i = 0; i < NDOC; i++) {
        char key[16], q[32];
        doc_key(i, key);
        nd += m->doc_has[i];
        if (!m->doc_has[i] && m->doc_ver[i] == 0) continue;
        snprintf(q, sizeof q, "tokd%dv%u", i, m->doc_ver[i]);
        mmfs_doc_hits *h = NULL;
        if ((rc = mmfs_search(db, mmfs_str(q), 5, &h)) != MMFS_OK) {
            MISMATCH("search %s: %s: %s", q, mmfs_err_name(rc), mmfs_errmsg(NULL));
            continue;
        }
        size_t want = (size_t)m->doc_has[i];
        if (h->count != want || (want && !slice_is(h->items[0].key, key, strlen(key))))
            MISMATCH("document %s: search '%s' gives %zu hits, want %zu", key, q, h->count, want);
        mmfs_free(h);
    }
    if (st.documents != nd) MISMATCH("stats.documents %" PRIu64 ", want %" PRIu64, st.documents, nd);

    /* state */
    mmfs_slice sv;
    uint64_t ver;
    if ((rc = mmfs_get_state(db, &sv, &ver)) != MMFS_OK)
        MISMATCH("get_state: %s", mmfs_err_name(rc));
    else {
        if (ver != m->state_ver) MISMATCH("state version %" PRIu64 ", want %" PRIu64, ver, m->state_ver);
        if (!slice_is(sv, m->state.p, m->state.n)) MISMATCH("state value differs (%zu bytes, want %zu)", sv.len, m->state.n);
    }
    if (st.state_version != m->state_ver)
        MISMATCH("stats.state_version %" PRIu64 ", want %" PRIu64, st.state_version, m->state_ver);
    return mismatches;
}

/* Checks the child's report R against what the model expects. */
static void check_result(uint32_t cycle, const op *o, const result *r, const result *exp) {
    char d[200];
    describe_op(o, d, sizeof d);
    if (!o->batch) {
        const cmd *c = &o->c[0];
        if (c->type == C_MEM && r->id[0] != exp->id[0])
            ct_fail(__FILE__, __LINE__, "cycle %u op %u %s: id %" PRIu64 ", want %" PRIu64 " (ids dense, increasing)",
                    cycle, r->opno, d, r->id[0], exp->id[0]);
        if (c->type == C_STATE && r->version != exp->version)
            ct_fail(__FILE__, __LINE__, "cycle %u op %u %s: version %" PRIu64 ", want %" PRIu64, cycle, r->opno, d,
                    r->version, exp->version);
        if ((c->type == C_MEM_DEL || c->type == C_KV_DEL || c->type == C_SESS_DEL || c->type == C_UNDOC) &&
            r->deleted[0] != exp->deleted[0])
            ct_fail(__FILE__, __LINE__, "cycle %u op %u %s: deleted = %d, want %d", cycle, r->opno, d, r->deleted[0],
                    exp->deleted[0]);
        return;
    }
    if (r->nids != exp->nids) {
        ct_fail(__FILE__, __LINE__, "cycle %u op %u %s: %u ids, want %u", cycle, r->opno, d, r->nids, exp->nids);
        return;
    }
    for (uint32_t i = 0; i < r->nids; i++)
        if (r->id[i] != exp->id[i])
            ct_fail(__FILE__, __LINE__, "cycle %u op %u %s: id #%u %" PRIu64 ", want %" PRIu64, cycle, r->opno, d, i,
                    r->id[i], exp->id[i]);
}

/* ------------------------------------------------------------- driver */

int main(int argc, char **argv) {
    int soak = ct_soak(argc, argv);
    long cycles = ct_opt(argc, argv, "--cycles", "MMFS_CRASH_CYCLES", soak ? 5000 : 250);
    uint64_t seed = (uint64_t)ct_opt(argc, argv, "--seed", "MMFS_CRASH_SEED", (long)(ct_now_ms() & 0xffffff));
    long epoch = ct_opt(argc, argv, "--epoch", "MMFS_CRASH_EPOCH", soak ? 200 : 125);
    long max_delay = ct_opt(argc, argv, "--max-delay-ms", NULL, 30);
    int verbose = (int)ct_opt(argc, argv, "--verbose", "MMFS_CRASH_VERBOSE", 0);
    printf("crash_test: %ld cycles, seed %" PRIu64 ", new store every %ld cycles\n", cycles, seed, epoch);
    fflush(stdout);
    signal(SIGPIPE, SIG_IGN);

    char *root = ct_tmpdir("crash");
    char dir[4200];
    model m;
    memset(&m, 0, sizeof m);
    ct_rng delays = {seed ^ 0x5eed};
    uint64_t t0 = ct_now_ms(), acked_total = 0, inflight_landed = 0, child_errors = 0;
    int epoch_no = 0;
    op o1;
    memset(&o1, 0, sizeof o1);

    for (long cycle = 0; cycle < cycles; cycle++) {
        if (cycle % epoch == 0) {
            if (cycle) ct_rmrf(dir);
            model_free(&m);
            snprintf(dir, sizeof dir, "%s/store%d", root, epoch_no++);
        }
        uint64_t cseed = seed * 1000003u + (uint64_t)cycle;
        int fds[2];
        if (pipe(fds) < 0) ct_fatal(__FILE__, __LINE__, "pipe: %s", strerror(errno));
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) ct_fatal(__FILE__, __LINE__, "fork: %s", strerror(errno));
        if (pid == 0) {
            close(fds[0]);
            child_main(dir, fds[1], &m, cseed);
        }
        close(fds[1]);

        /* Collect reports until the kill moment, then the rest. */
        size_t cap = 1 << 16, have = 0;
        uint8_t *in = malloc(cap);
        uint64_t deadline = ct_now_ms() + ct_below(&delays, (uint64_t)max_delay + 1);
        int eof = 0, killed = 0;
        while (!eof) {
            uint64_t now = ct_now_ms();
            if (!killed && now >= deadline) {
                kill(pid, SIGKILL);
                killed = 1;
            }
            struct pollfd p = {fds[0], POLLIN, 0};
            int to = killed ? -1 : (int)(deadline - now);
            if (poll(&p, 1, to) <= 0) continue;
            if (have + 4096 > cap) {
                cap *= 2;
                in = realloc(in, cap);
            }
            ssize_t n = read(fds[0], in + have, cap - have);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) eof = 1;
            else have += (size_t)n;
        }
        close(fds[0]);
        if (!killed) kill(pid, SIGKILL);
        int wst;
        waitpid(pid, &wst, 0);

        /* Replay the acknowledged ops on the model, checking the reports. */
        ct_rng rng = {cseed};
        size_t nmsg = have / sizeof(msg);
        uint32_t acked = 0;
        for (size_t i = 0; i < nmsg; i++) {
            msg mg;
            memcpy(&mg, in + i * sizeof mg, sizeof mg);
            if (mg.kind == 'E') {
                child_errors++;
                ct_fail(__FILE__, __LINE__, "cycle %ld: %s (%s)", cycle, mg.text, mmfs_err_name(mg.status));
                break;
            }
            if (mg.r.opno != acked)
                ct_fatal(__FILE__, __LINE__, "cycle %ld: report for op %u, want %u", cycle, mg.r.opno, acked);
            result exp;
            gen_op(&rng, &m, &o1);
            apply_op(&m, &o1, &exp);
            check_result((uint32_t)cycle, &o1, &mg.r, &exp);
            if (verbose) {
                char d[300];
                describe_op(&o1, d, sizeof d);
                printf("cycle %ld op %u acked: %s\n", cycle, acked, d);
            }
            acked++;
        }
        free(in);
        acked_total += acked;
        /* The op in flight at the kill (perhaps never started). */
        gen_op(&rng, &m, &o1);

        mmfs_options opt;
        mmfs_options_init(&opt);
        opt.sync = MMFS_SYNC_ALWAYS;
        mmfs_db *db;
        int rc = mmfs_open(dir, &opt, &db);
        if (rc) {
            ct_fatal(__FILE__, __LINE__, "cycle %ld: reopen after kill: %s: %s (after %u acked ops)", cycle,
                     mmfs_err_name(rc), mmfs_errmsg(NULL), acked);
        }
        CHECK(mmfs_verify(db) == MMFS_OK, "cycle %ld: verify after kill: %s", cycle, mmfs_errmsg(NULL));
        quiet = 1;
        int bad = check_store(db, &m);
        if (bad) {
            /* Not "without the op in flight": then it must be "with it, whole". */
            result exp;
            apply_op(&m, &o1, &exp);
            bad = check_store(db, &m);
            if (bad) {
                char d[200];
                describe_op(&o1, d, sizeof d);
                ct_fail(__FILE__, __LINE__,
                        "cycle %ld (seed %" PRIu64 "): store is neither the %u acked ops nor those plus the "
                        "op in flight %s; differences from the latter:",
                        cycle, seed, acked, d);
                quiet = 0;
                check_store(db, &m);
                mmfs_close(db);
                break;
            }
            inflight_landed++;
            if (verbose) printf("cycle %ld: the op in flight reached the log\n", cycle);
        }
        quiet = 0;
        CHECK_OK(mmfs_close(db));
        /* Every seventh cycle the next child finds MANIFEST gone (the log
        ** has just verified whole) and must rebuild it, losing nothing. */
        if (cycle % 7 == 3) {
            char mpath[4300];
            snprintf(mpath, sizeof mpath, "%s/MANIFEST", dir);
            CHECK(unlink(mpath) == 0, "cycle %ld: remove MANIFEST: %s", cycle, strerror(errno));
        }
        if (ct_failures() > 20) break;
    }
    op_free(&o1);
    model_free(&m);
    ct_rmrf(root);
    free(root);
    printf("crash_test: %" PRIu64 " acked ops checked, %" PRIu64 " unacked ops found whole in the log, %.1f s, "
           "%d failed checks\n",
           acked_total, inflight_landed, (double)(ct_now_ms() - t0) / 1000.0, ct_failures());
    (void)child_errors;
    return ct_failures() ? 1 : 0;
}
