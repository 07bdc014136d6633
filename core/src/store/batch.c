/*
** batch.c: commands, made from the public arguments, and batches of them.
**
** Owns: the checks of every command's arguments (lengths, tags, route,
** session fields) and the making of its record; a batch's arena; the
** public single calls (mmfs_set_kv, ...) and the batch API (mmfs_batch_*).
** A single call is a batch of one command; either is committed by
** write.c as one frame.
**
** Invariants: a batch's copies live in blocks that never move, so the
** slices in its commands stay valid as the batch grows; an add that ran
** out of memory marks the batch failed, and its commit then writes
** nothing.
*/
#include "batch.h"

#include <stdlib.h>
#include <time.h>

void *mmfs__arena_alloc(mmfs_batch *b, size_t n) {
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
    void *p = mmfs__arena_alloc(b, s->len);
    if (!p) return MMFS_NOMEM;
    memcpy(p, s->ptr, s->len);
    s->ptr = p;
    return MMFS_OK;
}

int mmfs__check_len(mmfs_slice s, const char *what) {
    if (s.len > MMFS__MAX_VALUE)
        return mmfs__err(MMFS_INVALID, "%s: %zu bytes is over the limit of %zu", what, s.len,
                         (size_t)MMFS__MAX_VALUE);
    if (s.len && !s.ptr) return mmfs__err(MMFS_INVALID, "%s: NULL pointer with a length", what);
    return MMFS_OK;
}

const mmfs_slice mmfs__none = {"", 0};

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* Encodes TAGS as the record's tag list into BUF (mmfs__make_size bytes). */
static void encode_tags(const mmfs_slice *tags, size_t ntags, mmfs_slice *out, uint8_t *buf) {
    uint8_t *p = buf;
    for (size_t i = 0; i < ntags; i++) {
        mmfs__st32(p, (uint32_t)tags[i].len);
        if (tags[i].len) memcpy(p + 4, tags[i].ptr, tags[i].len);
        p += 4 + tags[i].len;
    }
    out->ptr = ntags ? buf : (uint8_t *)"";
    out->len = (size_t)(p - buf);
}

int mmfs__tags_size(const mmfs_slice *tags, size_t ntags, size_t *size) {
    if (ntags && !tags) return mmfs__err(MMFS_INVALID, "tags: NULL with a count");
    if (ntags > MMFS__MAX_TAGS)
        return mmfs__err(MMFS_INVALID, "tags: %zu is over the limit of %d", ntags, MMFS__MAX_TAGS);
    size_t n = 0;
    for (size_t i = 0; i < ntags; i++) {
        int rc = mmfs__check_len(tags[i], "tag");
        if (rc) return rc;
        if (tags[i].len > MMFS__MAX_TAG_LEN)
            return mmfs__err(MMFS_INVALID, "tag %zu: longer than %d KiB", i + 1, MMFS__MAX_TAG_LEN >> 10);
        n += 4 + tags[i].len;
    }
    *size = n;
    return MMFS_OK;
}

/* A memory's route: empty is "default". */
static int make_route(mmfs_slice *out, mmfs_slice route) {
    int rc = mmfs__check_len(route, "route");
    if (rc) return rc;
    *out = route.len ? route : mmfs_str("default");
    if (out->len > MMFS__MAX_ROUTE)
        return mmfs__err(MMFS_INVALID, "route: longer than %d bytes", MMFS__MAX_ROUTE);
    return MMFS_OK;
}

static int make_session(mmfs__rec *c, const mmfs_session *s) {
    if (!s->id.len) return mmfs__err(MMFS_INVALID, "session: id is empty");
    int rc;
    if ((rc = mmfs__check_len(s->id, "session id")) || (rc = mmfs__check_len(s->intent_id, "intent_id")) ||
        (rc = mmfs__check_len(s->payload, "payload")) ||
        (rc = mmfs__check_len(s->fields, "session fields")) ||
        (rc = mmfs__fields_check(s->fields)))
        return rc;
    c->u.sess.id = s->id;
    c->u.sess.has_intent = s->has_intent != 0;
    c->u.sess.intent_id = s->has_intent ? s->intent_id : mmfs__none;
    c->u.sess.has_payload = s->has_payload != 0;
    c->u.sess.payload = s->has_payload ? s->payload : mmfs__none;
    c->u.sess.created_at = s->has_created_at ? s->created_at : now_s();
    c->u.sess.fields = s->fields;
    return MMFS_OK;
}

/* The extra bytes of each kind of field: only a tag list has any. */
#define XS_TAGS(cf) rc = mmfs__tags_size(m->tags, m->ntags, extra);
#define XS_FIELD(kind, f, cf, k, what) MMFS__XS_##kind(cf)
#define MMFS__XS_ID(cf)
#define MMFS__XS_U64(cf)
#define MMFS__XS_TIME(cf)
#define MMFS__XS_STR(cf)
#define MMFS__XS_SID(cf)
#define MMFS__XS_ROUTE(cf)
#define MMFS__XS_SESS(cf)
#define MMFS__XS_TAGS(cf) XS_TAGS(cf)
#define XS_CASE(N, code, role, C, m_, FIELDS, ...)                                                 \
    MMFS__IF_CMD_##role(case MMFS__R_##N : FIELDS(XS_FIELD) break;)

int mmfs__make_size(const mmfs_command *m, size_t *extra) {
    int rc = MMFS_OK;
    *extra = 0;
    switch ((int)m->type) {
        MMFS__RECORDS(XS_CASE)
    default:
        return mmfs__err(MMFS_INVALID, "unknown command type %d", (int)m->type);
    }
    return rc;
}

/* Making each kind of field of C from the command M (record.h). */
#define MK_ID(f, cf, what)
#define MK_U64(f, cf, what) c->u.f = m->cf;
#define MK_TIME(f, cf, what) c->u.f = m->cf;
#define MK_STR(f, cf, what)                                                                        \
    if ((rc = mmfs__check_len(m->cf, what)) != MMFS_OK) return rc;                                 \
    c->u.f = m->cf;
#define MK_SID(f, cf, what) MK_STR(f, cf, what)
#define MK_ROUTE(f, cf, what)                                                                      \
    if ((rc = make_route(&c->u.f, m->cf)) != MMFS_OK) return rc;
#define MK_TAGS(f, cf, what)                                                                       \
    encode_tags(m->tags, m->ntags, &c->u.f.tags, buf);                                             \
    c->u.f.ntags = (uint32_t)m->ntags;
#define MK_SESS(f, cf, what)                                                                       \
    if ((rc = make_session(c, &m->cf)) != MMFS_OK) return rc;
#define MK_FIELD(kind, f, cf, k, what) MK_##kind(f, cf, what)
#define MK_CASE(N, code, role, C, m_, FIELDS, ...)                                                 \
    MMFS__IF_CMD_##role(case MMFS__R_##N : FIELDS(MK_FIELD) break;)

int mmfs__make(mmfs__rec *c, const mmfs_command *m, uint8_t *buf) {
    int rc = MMFS_OK;
    memset(c, 0, sizeof *c);
    c->type = (int)m->type;
    switch (c->type) {
        MMFS__RECORDS(MK_CASE)
    default:
        return mmfs__err(MMFS_INVALID, "unknown command type %d", c->type);
    }
    (void)buf;
    return rc;
}

/* ------------------------------------------------------- single calls */

/* Commits command M alone.  *found (may be NULL) reports whether it was
** written (a delete of nothing is not); *id gets the memory id or state
** version it was given. */
static int single(mmfs_db *db, const mmfs_command *m, int *found, uint64_t *id) {
    size_t extra;
    int rc = mmfs__make_size(m, &extra);
    if (rc) return rc;
    uint8_t stackbuf[512], *buf = extra <= sizeof stackbuf ? stackbuf : malloc(extra);
    if (!buf) return mmfs__err(MMFS_NOMEM, "out of memory");
    mmfs__rec c;
    char keep = 0;
    uint64_t got = 0;
    rc = mmfs__make(&c, m, buf);
    if (!rc) rc = mmfs__commit(db, &c, 1, &keep, &got);
    if (found) *found = rc == MMFS_OK && keep;
    if (!rc && id) *id = got;
    if (buf != stackbuf) free(buf);
    return rc;
}

/* The command of append_memory's arguments. */
static mmfs_command memory_cmd(mmfs_slice text, const mmfs_slice *tags, size_t ntags,
                               const mmfs_memory_opts *o) {
    mmfs_command m;
    memset(&m, 0, sizeof m);
    m.type = MMFS_CMD_APPEND_MEMORY;
    m.text = text;
    m.tags = tags;
    m.ntags = ntags;
    m.created_at = o && o->has_created_at ? o->created_at : now_s();
    if (o) m.route = o->route;
    return m;
}

/* A command of TYPE on KEY (or memory ID) with VALUE (or TEXT). */
static mmfs_command cmd_of(mmfs_command_type type, mmfs_slice key, mmfs_slice value) {
    mmfs_command m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.key = key;
    m.value = value;
    m.text = value;
    m.session.id = key;
    return m;
}

/* Commits the command of TYPE on KEY with VALUE alone (see single). */
static int single_keyed(mmfs_db *db, mmfs_command_type type, mmfs_slice key, mmfs_slice value, int *found,
                        uint64_t *id) {
    mmfs_command m = cmd_of(type, key, value);
    return single(db, &m, found, id);
}

/* The command of put_session S; INVALID for a NULL S. */
static int session_cmd(const mmfs_session *s, mmfs_command *m) {
    memset(m, 0, sizeof *m);
    m->type = MMFS_CMD_PUT_SESSION;
    if (!s) return mmfs__err(MMFS_INVALID, "session: NULL");
    m->session = *s;
    return MMFS_OK;
}

int mmfs_append_memory(mmfs_db *db, mmfs_slice text, const mmfs_slice *tags, size_t ntags,
                       const mmfs_memory_opts *opts, uint64_t *id) {
    mmfs_command m = memory_cmd(text, tags, ntags, opts);
    return single(db, &m, NULL, id);
}

int mmfs_delete_memory(mmfs_db *db, uint64_t id, int *deleted) {
    mmfs_command m = cmd_of(MMFS_CMD_DELETE_MEMORY, mmfs__none, mmfs__none);
    m.id = id;
    return single(db, &m, deleted, NULL);
}

int mmfs_set_kv(mmfs_db *db, mmfs_slice key, mmfs_slice value) {
    return single_keyed(db, MMFS_CMD_SET_KV, key, value, NULL, NULL);
}

int mmfs_delete_kv(mmfs_db *db, mmfs_slice key, int *deleted) {
    return single_keyed(db, MMFS_CMD_DELETE_KV, key, mmfs__none, deleted, NULL);
}

int mmfs_put_session(mmfs_db *db, const mmfs_session *s) {
    mmfs_command m;
    int rc = session_cmd(s, &m);
    return rc ? rc : single(db, &m, NULL, NULL);
}

int mmfs_delete_session(mmfs_db *db, mmfs_slice id, int *deleted) {
    return single_keyed(db, MMFS_CMD_DELETE_SESSION, id, mmfs__none, deleted, NULL);
}

int mmfs_append_stream(mmfs_db *db, mmfs_slice key, mmfs_slice bytes) {
    return single_keyed(db, MMFS_CMD_APPEND_STREAM, key, bytes, NULL, NULL);
}

int mmfs_index(mmfs_db *db, mmfs_slice key, mmfs_slice text) {
    return single_keyed(db, MMFS_CMD_INDEX, key, text, NULL, NULL);
}

int mmfs_unindex(mmfs_db *db, mmfs_slice key, int *deleted) {
    return single_keyed(db, MMFS_CMD_UNINDEX, key, mmfs__none, deleted, NULL);
}

int mmfs_update_state(mmfs_db *db, mmfs_slice value, uint64_t *version) {
    return single_keyed(db, MMFS_CMD_UPDATE_STATE, mmfs__none, value, NULL, version);
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

/* Copying each kind of field of C into B's arena. */
#define CP_ID(f)
#define CP_U64(f)
#define CP_TIME(f)
#define CP_STR(f) rc |= copy_slice(b, &c->u.f);
#define CP_SID(f) CP_STR(f)
#define CP_ROUTE(f) CP_STR(f)
#define CP_TAGS(f) /* encoded into the arena already (mmfs__make) */
#define CP_SESS(f)                                                                                 \
    rc |= copy_slice(b, &c->u.f.id) | copy_slice(b, &c->u.f.intent_id) |                          \
          copy_slice(b, &c->u.f.payload) | copy_slice(b, &c->u.f.fields);
#define CP_FIELD(kind, f, cf, k, what) CP_##kind(f)
#define CP_CASE(N, code, role, C, m, FIELDS, ...)                                                  \
    MMFS__IF_CMD_##role(case MMFS__R_##N : FIELDS(CP_FIELD) break;)

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
        MMFS__RECORDS(CP_CASE)
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

/* Adds command M to B: made (checked), its bytes copied into B's arena. */
static int batch_cmd(mmfs_batch *b, const mmfs_command *m) {
    BATCH_CHECK(b);
    size_t extra;
    int rc = mmfs__make_size(m, &extra);
    if (rc) return rc;
    uint8_t *buf = NULL;
    if (extra && !(buf = mmfs__arena_alloc(b, extra))) {
        b->failed = 1;
        return mmfs__err(MMFS_NOMEM, "out of memory");
    }
    mmfs__rec c;
    if ((rc = mmfs__make(&c, m, buf)) != MMFS_OK) return rc;
    return batch_push(b, &c);
}

/* Adds the command of TYPE on KEY with VALUE to B. */
static int batch_keyed(mmfs_batch *b, mmfs_command_type type, mmfs_slice key, mmfs_slice value) {
    mmfs_command m = cmd_of(type, key, value);
    return batch_cmd(b, &m);
}

int mmfs_batch_append_memory(mmfs_batch *b, mmfs_slice text, const mmfs_slice *tags, size_t ntags,
                             const mmfs_memory_opts *opts) {
    mmfs_command m = memory_cmd(text, tags, ntags, opts);
    return batch_cmd(b, &m);
}

int mmfs_batch_delete_memory(mmfs_batch *b, uint64_t id) {
    mmfs_command m = cmd_of(MMFS_CMD_DELETE_MEMORY, mmfs__none, mmfs__none);
    m.id = id;
    return batch_cmd(b, &m);
}

int mmfs_batch_set_kv(mmfs_batch *b, mmfs_slice key, mmfs_slice value) {
    return batch_keyed(b, MMFS_CMD_SET_KV, key, value);
}
int mmfs_batch_delete_kv(mmfs_batch *b, mmfs_slice key) {
    return batch_keyed(b, MMFS_CMD_DELETE_KV, key, mmfs__none);
}
int mmfs_batch_delete_session(mmfs_batch *b, mmfs_slice id) {
    return batch_keyed(b, MMFS_CMD_DELETE_SESSION, id, mmfs__none);
}
int mmfs_batch_append_stream(mmfs_batch *b, mmfs_slice key, mmfs_slice bytes) {
    return batch_keyed(b, MMFS_CMD_APPEND_STREAM, key, bytes);
}
int mmfs_batch_index(mmfs_batch *b, mmfs_slice key, mmfs_slice text) {
    return batch_keyed(b, MMFS_CMD_INDEX, key, text);
}
int mmfs_batch_unindex(mmfs_batch *b, mmfs_slice key) {
    return batch_keyed(b, MMFS_CMD_UNINDEX, key, mmfs__none);
}
int mmfs_batch_update_state(mmfs_batch *b, mmfs_slice value) {
    return batch_keyed(b, MMFS_CMD_UPDATE_STATE, mmfs__none, value);
}

int mmfs_batch_put_session(mmfs_batch *b, const mmfs_session *s) {
    BATCH_CHECK(b);
    mmfs_command m;
    int rc = session_cmd(s, &m);
    return rc ? rc : batch_cmd(b, &m);
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
    if ((rc = mmfs__commit(b->db, b->cmds, b->n, keep, per)) != MMFS_OK) goto out;
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
