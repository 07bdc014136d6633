/*
** record.h: the command types, described once.
**
** A record is one command in the log.  Layout (little-endian):
**
**   u32 len (whole record) | u8 type | u8 flags | u16 0 | u64 lsn | body
**
** The body is the record's fields in the order of its row below, each
** encoded by its kind:
**
**   ID, U64  u64              TIME  i64
**   STR, SID, ROUTE  str (u32 length + bytes)
**   TAGS     u32 ntags, str tag * ntags
**   SESS     str id, u8 has (1 intent, 2 payload), i64 created_at,
**            str intent_id, str payload, str fields
**
** MMFS__RECORDS is the one table of the types.  Everything that exists per
** type is made from it: the enum below, the record codec (log.c), a
** batch's copies and the command makers (batch.c), delete targets
** (write.c), record <-> mmfs_command (hook.c), record <-> Lua table in the
** policy VM (policy/cmd.c), hook names (policy/load.c), tx's write methods
** (policy/tx.c), the engine's dispatch (engine.c) and what compaction
** keeps (live.c).  The public names and codes come from memmapfs.h's
** MMFS_COMMANDS; a compile-time check keeps the two in step.  Adding a
** command is a row here and in MMFS_COMMANDS, its engine apply function
** (and for CUR liveness the lookup of its current record, live.c), and
** its docs.
**
**   X(NAME, code, ROLE, CMD, member, FIELDS, DELETE, apply, LIVE)
**
** NAME    MMFS__R_NAME
** ROLE    CMD: a command (hooked, made through the API); REC: a record
**         only (POLICY: written by mmfs_set_policy, never hooked; DICT:
**         a zstd dictionary, written by the writer of a compressed store)
** CMD     its MMFS_CMD_ name (ROLE CMD; ignored for REC)
** member  its member of mmfs__rec's union u
** FIELDS  the macro listing its fields, F(kind, field, cmd, lua, what):
**         field of u; member of mmfs_command; the policy VM's key (K_*,
**         policy/pvm.h; 0 for ID); the name its errors give
** DELETE  NODEL, or DEL(TARGET, key, target key, has): a delete of the
**         TARGET entry whose key is u.key (u.target key in TARGET);
**         has(engine, key) tells whether the entry exists
** apply   the engine function that applies it (engine.c)
** LIVE    whether compaction keeps a record of the type (engine/live.c):
**         NEVER (deletes: what they deleted is not kept either), ALWAYS
**         (stream chunks), or CUR(fn): while fn(engine, record), the
**         engine's current record for its target (NULL: none), is this
**         record (same LSN); fn is live.c's
**
** Kinds: ID is set by the writer at commit (memory id, state version),
** never by a caller; SID is a string a policy may not make empty; ROUTE
** a route name (at most MMFS__MAX_ROUTE bytes, empty is "default").
**
** The same struct is a command before it is framed (slices then point into
** the batch's own copies; lsn and ids are set at commit), so a policy hook
** can later edit a command before it is written.
*/
#ifndef MMFS_RECORD_H
#define MMFS_RECORD_H

#include "memmapfs.h"

#include <stdint.h>
#include <string.h>

#define MMFS__RECORDS(X)                                                                           \
    X(MEMORY, 1, CMD, APPEND_MEMORY, mem, MMFS__F_MEMORY, NODEL, mmfs__mem_apply, CUR(cur_memory))  \
    X(DEL_MEMORY, 2, CMD, DELETE_MEMORY, del_mem, MMFS__F_DEL_MEMORY,                              \
      DEL(MEMORY, del_mem.id, mem.id, mmfs__engine_has_memory), mmfs__mem_apply, NEVER)            \
    X(KV_SET, 3, CMD, SET_KV, kv, MMFS__F_KV_SET, NODEL, mmfs__kv_apply, CUR(cur_kv))               \
    X(KV_DEL, 4, CMD, DELETE_KV, kv, MMFS__F_KV_DEL, DEL(KV_SET, kv.key, kv.key, mmfs__engine_has_kv), \
      mmfs__kv_apply, NEVER)                                                                       \
    X(SESSION_PUT, 5, CMD, PUT_SESSION, sess, MMFS__F_SESSION_PUT, NODEL, mmfs__sess_apply,        \
      CUR(cur_session))                                                                            \
    X(SESSION_DEL, 6, CMD, DELETE_SESSION, sess, MMFS__F_SESSION_DEL,                              \
      DEL(SESSION_PUT, sess.id, sess.id, mmfs__engine_has_session), mmfs__sess_apply, NEVER)       \
    X(STREAM_APPEND, 7, CMD, APPEND_STREAM, stream, MMFS__F_STREAM_APPEND, NODEL, mmfs__stream_apply, \
      ALWAYS)                                                                                      \
    X(DOC_INDEX, 8, CMD, INDEX, doc, MMFS__F_DOC_INDEX, NODEL, mmfs__doc_apply, CUR(cur_doc))       \
    X(DOC_UNINDEX, 9, CMD, UNINDEX, doc, MMFS__F_DOC_UNINDEX,                                      \
      DEL(DOC_INDEX, doc.key, doc.key, mmfs__engine_has_doc), mmfs__doc_apply, NEVER)              \
    X(STATE, 10, CMD, UPDATE_STATE, state, MMFS__F_STATE, NODEL, mmfs__state_apply, CUR(cur_state)) \
    X(POLICY, 11, REC, NONE, policy, MMFS__F_POLICY, NODEL, policy_apply, CUR(cur_policy))         \
    X(DICT, 12, REC, NONE, dict, MMFS__F_DICT, NODEL, mmfs__ztext_apply, ALWAYS)

/* The fields of each type, in log order: F(kind, field, cmd, lua, what). */
#define MMFS__F_MEMORY(F)                                                                          \
    F(ID, mem.id, id, 0, "id")                                                                     \
    F(TIME, mem.created_at, created_at, K_CREATED_AT, "created_at")                                \
    F(ROUTE, mem.route, route, K_ROUTE, "route")                                                   \
    F(STR, mem.text, text, K_TEXT, "text")                                                         \
    F(TAGS, mem, tags, K_TAGS, "tags")
#define MMFS__F_DEL_MEMORY(F) F(U64, del_mem.id, id, K_ID, "id")
#define MMFS__F_KV_SET(F) F(STR, kv.key, key, K_KEY, "key") F(STR, kv.value, value, K_VALUE, "value")
#define MMFS__F_KV_DEL(F) F(STR, kv.key, key, K_KEY, "key")
#define MMFS__F_SESSION_PUT(F) F(SESS, sess, session, K_SESSION, "session")
#define MMFS__F_SESSION_DEL(F) F(SID, sess.id, session.id, K_ID, "key")
#define MMFS__F_STREAM_APPEND(F)                                                                   \
    F(STR, stream.key, key, K_KEY, "key") F(STR, stream.bytes, value, K_BYTES, "value")
#define MMFS__F_DOC_INDEX(F) F(STR, doc.key, key, K_KEY, "key") F(STR, doc.text, text, K_TEXT, "value")
#define MMFS__F_DOC_UNINDEX(F) F(STR, doc.key, key, K_KEY, "key")
#define MMFS__F_STATE(F) F(ID, state.version, id, 0, "version") F(STR, state.value, value, K_VALUE, "value")
#define MMFS__F_POLICY(F) F(STR, policy.source, text, 0, "policy")
#define MMFS__F_DICT(F) F(U64, dict.id, id, 0, "id") F(STR, dict.bytes, value, 0, "dict")

/* Helpers for expanding the table: MMFS__IF_CMD_##ROLE(x) keeps X for
** commands only. */
#define MMFS__IF_CMD_CMD(...) __VA_ARGS__
#define MMFS__IF_CMD_REC(...)
/* MMFS__IF_DEL_##DELETE(x) keeps X for deletes only. */
#define MMFS__IF_DEL_NODEL MMFS__DROP
#define MMFS__IF_DEL_DEL(...) MMFS__KEEP
#define MMFS__KEEP(...) __VA_ARGS__
#define MMFS__DROP(...)

enum {
#define MMFS__R_ENUM(N, code, ...) MMFS__R_##N = code,
    MMFS__RECORDS(MMFS__R_ENUM)
#undef MMFS__R_ENUM
    MMFS__R_NONE = 0,
    MMFS__R_MAX = 12
};

/* A command's type is its record's type: one set of codes. */
#define MMFS__R_AGREE(N, code, ROLE, C, ...)                                                       \
    MMFS__IF_CMD_##ROLE(_Static_assert(MMFS__R_##N == (int)MMFS_CMD_##C,                          \
                                       "record and command codes of " #N " agree");)
MMFS__RECORDS(MMFS__R_AGREE)
#undef MMFS__R_AGREE
#define MMFS__R_COUNT(N, ...) +1
_Static_assert(0 MMFS__RECORDS(MMFS__R_COUNT) == MMFS__R_MAX, "MMFS__R_MAX is the last type");
#undef MMFS__R_COUNT

#define MMFS__REC_HDR 16

/* Record flags (the flag byte): MMFS__RF_NOINDEX, set by the writer when
** the policy's route for a memory has index = false; MMFS__RF_ZTEXT, set
** by the writer of a compress = "zstd" store when a MEMORY's text is
** compressed (engine/ztext.h gives the text field's layout then: readers
** go through mmfs__mem_text, never u.mem.text).  Only stores whose
** MANIFEST says compress (format 4) hold ZTEXT or DICT records, so a
** library that knows neither refuses them before it could misread one. */
#define MMFS__RF_NOINDEX 1
#define MMFS__RF_ZTEXT 2

typedef struct mmfs__rec {
    int type;
    int flags; /* the record's flag byte: MMFS__RF_* */
    /* Commands only, never written: 1 + the index of the caller's command
    ** this one came from (a policy copies it along with the struct); 0 for
    ** a command a hook added. */
    uint32_t origin;
    uint64_t lsn;
    const uint8_t *raw; /* the encoded record (decoded ones only), else NULL */
    uint32_t raw_len;   /* its length in bytes */
    union {
        struct {
            uint64_t id;
            int64_t created_at;
            mmfs_slice route, text;
            uint32_t ntags;
            mmfs_slice tags; /* ntags * (u32 len, bytes); see mmfs__tag_next */
        } mem;
        struct {
            uint64_t id;
        } del_mem;
        struct {
            mmfs_slice key, value;
        } kv; /* KV_SET, KV_DEL (key only) */
        struct {
            mmfs_slice id, intent_id, payload, fields;
            int has_intent, has_payload;
            int64_t created_at;
        } sess; /* SESSION_PUT, SESSION_DEL (id only) */
        struct {
            mmfs_slice key, bytes;
        } stream;
        struct {
            mmfs_slice key, text;
        } doc; /* DOC_INDEX, DOC_UNINDEX (key only) */
        struct {
            uint64_t version;
            mmfs_slice value;
        } state;
        struct {
            mmfs_slice source;
        } policy;
        struct {
            uint64_t id;
            mmfs_slice bytes;
        } dict; /* DICT: a zstd dictionary of the store (engine/ztext.h) */
    } u;
} mmfs__rec;

/* log.c: decodes the record at P (at most AVAIL bytes) into *R, slices
** pointing into P.  Returns MMFS_OK or MMFS_CORRUPT (no message set). */
int mmfs__rec_decode(const uint8_t *p, size_t avail, mmfs__rec *r);

/* log.c: the encoded size of command R. */
size_t mmfs__rec_size(const mmfs__rec *r);

/* log.c: encodes command R (with its lsn) at OUT (mmfs__rec_size bytes). */
void mmfs__rec_encode(const mmfs__rec *r, uint8_t *out);

/* Walks an encoded tag list: *P starts at tags.ptr; each call yields the
** next tag.  The caller counts ntags. */
static inline mmfs_slice mmfs__tag_next(const uint8_t **p) {
    mmfs_slice s;
    uint32_t n;
    memcpy(&n, *p, 4); /* little-endian, as the whole format */
    s.len = n;
    s.ptr = *p + 4;
    *p += 4 + s.len;
    return s;
}

/* The session of SESSION_PUT record R, as the public API gives it. */
static inline void mmfs__rec_session(const mmfs__rec *r, mmfs_session *s) {
    memset(s, 0, sizeof *s);
    s->id = r->u.sess.id;
    s->has_intent = r->u.sess.has_intent;
    s->intent_id = r->u.sess.intent_id;
    s->has_created_at = 1;
    s->created_at = r->u.sess.created_at;
    s->has_payload = r->u.sess.has_payload;
    s->payload = r->u.sess.payload;
    s->fields = r->u.sess.fields;
}

/* Checks that BUF is one well-formed 'T' value of the session field
** encoding (memmapfs.h).  Returns MMFS_OK or MMFS_INVALID with a message. */
int mmfs__fields_check(mmfs_slice buf);

#endif
