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

/* Fills a MEMORY command; the tag list is encoded into TAGBUF. */
int mmfs__make_memory(mmfs__rec *c, mmfs_slice text, const mmfs_slice *tags, size_t ntags,
                       const mmfs_memory_opts *o, uint8_t *tagbuf) {
    memset(c, 0, sizeof *c);
    c->type = MMFS__R_MEMORY;
    c->u.mem.text = text;
    c->u.mem.ntags = (uint32_t)ntags;
    c->u.mem.created_at = o && o->has_created_at ? o->created_at : now_s();
    c->u.mem.route = o && o->route.len ? o->route : mmfs_str("default");
    int rc = mmfs__check_len(text, "text");
    if (!rc && o) rc = mmfs__check_len(o->route, "route");
    if (!rc && c->u.mem.route.len > MMFS__MAX_ROUTE)
        rc = mmfs__err(MMFS_INVALID, "route: longer than %d bytes", MMFS__MAX_ROUTE);
    if (!rc) encode_tags(tags, ntags, &c->u.mem.tags, tagbuf);
    return rc;
}

int mmfs__make_session(mmfs__rec *c, const mmfs_session *s) {
    memset(c, 0, sizeof *c);
    c->type = MMFS__R_SESSION_PUT;
    if (!s) return mmfs__err(MMFS_INVALID, "session: NULL");
    if (!s->id.len) return mmfs__err(MMFS_INVALID, "session: id is empty");
    int rc;
    if ((rc = mmfs__check_len(s->id, "session id")) || (rc = mmfs__check_len(s->intent_id, "intent_id")) ||
        (rc = mmfs__check_len(s->payload, "payload")) ||
        (rc = mmfs__check_len(s->fields, "session fields")) ||
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
int mmfs__make_keyed(mmfs__rec *c, int type, mmfs_slice a, mmfs_slice b) {
    memset(c, 0, sizeof *c);
    c->type = type;
    int rc = mmfs__check_len(a, "key");
    if (!rc) rc = mmfs__check_len(b, "value");
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

/* ------------------------------------------------------- single calls */

int mmfs_append_memory(mmfs_db *db, mmfs_slice text, const mmfs_slice *tags, size_t ntags,
                       const mmfs_memory_opts *opts, uint64_t *id) {
    size_t tsz;
    int rc = mmfs__tags_size(tags, ntags, &tsz);
    if (rc) return rc;
    uint8_t stackbuf[512], *buf = tsz <= sizeof stackbuf ? stackbuf : malloc(tsz);
    if (!buf) return mmfs__err(MMFS_NOMEM, "out of memory");
    mmfs__rec c;
    char keep;
    uint64_t got = 0;
    rc = mmfs__make_memory(&c, text, tags, ntags, opts, buf);
    if (!rc) rc = mmfs__commit(db, &c, 1, &keep, &got);
    if (!rc && id) *id = got;
    if (buf != stackbuf) free(buf);
    return rc;
}

/* A single command; *found (may be NULL) reports whether it was written. */
static int single(mmfs_db *db, int type, mmfs_slice a, mmfs_slice b, int *found) {
    mmfs__rec c;
    char keep = 0;
    int rc = mmfs__make_keyed(&c, type, a, b);
    if (!rc) rc = mmfs__commit(db, &c, 1, &keep, NULL);
    if (found) *found = rc == MMFS_OK && keep;
    return rc;
}

int mmfs_delete_memory(mmfs_db *db, uint64_t id, int *deleted) {
    mmfs__rec c;
    char keep = 0;
    memset(&c, 0, sizeof c);
    c.type = MMFS__R_DEL_MEMORY;
    c.u.del_mem.id = id;
    int rc = mmfs__commit(db, &c, 1, &keep, NULL);
    if (deleted) *deleted = rc == MMFS_OK && keep;
    return rc;
}

int mmfs_set_kv(mmfs_db *db, mmfs_slice key, mmfs_slice value) {
    return single(db, MMFS__R_KV_SET, key, value, NULL);
}

int mmfs_delete_kv(mmfs_db *db, mmfs_slice key, int *deleted) {
    return single(db, MMFS__R_KV_DEL, key, mmfs__none, deleted);
}

int mmfs_put_session(mmfs_db *db, const mmfs_session *s) {
    mmfs__rec c;
    char keep;
    int rc = mmfs__make_session(&c, s);
    return rc ? rc : mmfs__commit(db, &c, 1, &keep, NULL);
}

int mmfs_delete_session(mmfs_db *db, mmfs_slice id, int *deleted) {
    return single(db, MMFS__R_SESSION_DEL, id, mmfs__none, deleted);
}

int mmfs_append_stream(mmfs_db *db, mmfs_slice key, mmfs_slice bytes) {
    return single(db, MMFS__R_STREAM_APPEND, key, bytes, NULL);
}

int mmfs_index(mmfs_db *db, mmfs_slice key, mmfs_slice text) {
    return single(db, MMFS__R_DOC_INDEX, key, text, NULL);
}

int mmfs_unindex(mmfs_db *db, mmfs_slice key, int *deleted) {
    return single(db, MMFS__R_DOC_UNINDEX, key, mmfs__none, deleted);
}

int mmfs_update_state(mmfs_db *db, mmfs_slice value, uint64_t *version) {
    mmfs__rec c;
    char keep;
    int rc = mmfs__make_keyed(&c, MMFS__R_STATE, mmfs__none, value);
    uint64_t got = 0;
    if (!rc) rc = mmfs__commit(db, &c, 1, &keep, &got);
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
    int rc = mmfs__tags_size(tags, ntags, &tsz);
    if (rc) return rc;
    uint8_t *buf = mmfs__arena_alloc(b, tsz ? tsz : 1);
    if (!buf) {
        b->failed = 1;
        return mmfs__err(MMFS_NOMEM, "out of memory");
    }
    mmfs__rec c;
    if ((rc = mmfs__make_memory(&c, text, tags, ntags, opts, buf)) != MMFS_OK) return rc;
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
    int rc = mmfs__make_keyed(&c, type, a, v);
    return rc ? rc : batch_push(b, &c);
}

int mmfs_batch_set_kv(mmfs_batch *b, mmfs_slice key, mmfs_slice value) {
    return batch_keyed(b, MMFS__R_KV_SET, key, value);
}
int mmfs_batch_delete_kv(mmfs_batch *b, mmfs_slice key) {
    return batch_keyed(b, MMFS__R_KV_DEL, key, mmfs__none);
}
int mmfs_batch_delete_session(mmfs_batch *b, mmfs_slice id) {
    return batch_keyed(b, MMFS__R_SESSION_DEL, id, mmfs__none);
}
int mmfs_batch_append_stream(mmfs_batch *b, mmfs_slice key, mmfs_slice bytes) {
    return batch_keyed(b, MMFS__R_STREAM_APPEND, key, bytes);
}
int mmfs_batch_index(mmfs_batch *b, mmfs_slice key, mmfs_slice text) {
    return batch_keyed(b, MMFS__R_DOC_INDEX, key, text);
}
int mmfs_batch_unindex(mmfs_batch *b, mmfs_slice key) {
    return batch_keyed(b, MMFS__R_DOC_UNINDEX, key, mmfs__none);
}
int mmfs_batch_update_state(mmfs_batch *b, mmfs_slice value) {
    return batch_keyed(b, MMFS__R_STATE, mmfs__none, value);
}

int mmfs_batch_put_session(mmfs_batch *b, const mmfs_session *s) {
    BATCH_CHECK(b);
    mmfs__rec c;
    int rc = mmfs__make_session(&c, s);
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
