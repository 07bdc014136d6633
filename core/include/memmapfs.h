/*
** memmapfs.h: the public C API of memmapfs, a local-first memory and state
** store for AI agents.  A store is a directory; one append-only checksummed
** log of commit frames holds every record; an in-memory engine indexes it.
**
** Conventions (they hold for every function below unless it says otherwise):
**
** - Every function returns an mmfs_status: MMFS_OK (0) or an error code.
**   mmfs_errmsg() gives a message with context for the last failure of the
**   calling thread ("log/00000003.seg: offset 81920: checksum mismatch").
** - Byte strings are passed as mmfs_slice (pointer + length): binary safe,
**   no NUL terminator needed.  The library copies what it keeps.
** - Slices returned by the library point into the read-only mapped log.
**   They are owned by the store handle and stay valid until mmfs_close():
**   log segments stay mapped for the life of the handle.  Never write
**   through them.
** - Lists (mmfs_memory, mmfs_memories, mmfs_sessions, mmfs_doc_hits) are one
**   allocation each; release them with mmfs_free().  Their slices point into
**   the log as above, but for a memory's text that the store keeps
**   compressed (compress = "zstd"): that one is in the list's allocation,
**   valid until mmfs_free().
** - A handle is shared by any number of threads.  Readers never wait for an
**   fsync.  A handle must not be used after fork() in the child: every call
**   there fails with MMFS_CLOSED.
** - Reading something missing is MMFS_NOTFOUND for get-style calls;
**   delete-style calls report through *deleted whether anything went.
** - A failed write leaves nothing behind: no partial record and no id
**   consumed that a later reopen would show.  The one exception is a write
**   whose outcome cannot be known: its frame was written but the fsync of
**   MMFS_SYNC_ALWAYS failed.  It returns MMFS_IO with a message saying the
**   write may be present after reopen; the handle then refuses writes
**   (MMFS_READONLY) until reopened.
*/
#ifndef MEMMAPFS_H
#define MEMMAPFS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMFS_VERSION "0.1.0"

typedef struct mmfs_db mmfs_db; /* a store handle (see mmfs_open) */

#if defined(__GNUC__)
#define MMFS_API __attribute__((visibility("default")))
#else
#define MMFS_API
#endif

/* ---------------------------------------------------------------------
** Errors: one X-macro table gives the enum, mmfs_err_name() (the short
** upper-case code the Lua binding returns third) and mmfs_strerror().
*/
#define MMFS_ERRORS(X)                                                   \
    X(OK, "success")                                                     \
    X(NOTFOUND, "not found")                                             \
    X(INVALID, "invalid argument")                                       \
    X(REJECTED, "rejected by policy")                                    \
    X(CORRUPT, "store is corrupt")                                       \
    X(IO, "input/output error")                                          \
    X(NOSPACE, "no space left on device")                                \
    X(READONLY, "store is read-only")                                    \
    X(CLOSED, "store is closed")                                         \
    X(BUSY, "store is busy")                                             \
    X(LIMIT, "limit exceeded")                                           \
    X(NOMEM, "out of memory")                                            \
    X(TIMEOUT, "timed out")

typedef enum mmfs_status {
#define MMFS__ENUM(name, text) MMFS_##name,
    MMFS_ERRORS(MMFS__ENUM)
#undef MMFS__ENUM
    MMFS__NSTATUS
} mmfs_status;

/* The code's name without prefix: "NOTFOUND", "CORRUPT"...; "UNKNOWN" for
** a value outside the table.  Static storage. */
MMFS_API const char *mmfs_err_name(int status);

/* A fixed English sentence for the code.  Static storage. */
MMFS_API const char *mmfs_strerror(int status);

/* The message of the last failing call made by this thread, with context
** (path, segment, offset, field).  DB may be NULL (e.g. after a failed
** mmfs_open).  Valid until the thread's next call into the library. */
MMFS_API const char *mmfs_errmsg(const mmfs_db *db);

/* ---------------------------------------------------------------------
** Byte strings.
*/
typedef struct mmfs_slice {
    const void *ptr;
    size_t len;
} mmfs_slice;

/* A slice over a NUL-terminated C string (NULL gives the empty slice). */
MMFS_API mmfs_slice mmfs_str(const char *s);

/* Releases a list returned by the library.  NULL is a no-op. */
MMFS_API void mmfs_free(void *list);

/* ---------------------------------------------------------------------
** Opening and closing.
*/
typedef enum mmfs_sync_mode {
    MMFS_SYNC_BATCH = 0, /* return once written; durable within sync_ms */
    MMFS_SYNC_ALWAYS,    /* return once durable (group commit) */
    MMFS_SYNC_NONE       /* the OS decides; mmfs_sync() forces */
} mmfs_sync_mode;

typedef enum mmfs_checksum_type {
    MMFS_CHECKSUM_CRC32C = 0, /* default */
    MMFS_CHECKSUM_BLAKE2B     /* needs a build with libsodium */
} mmfs_checksum_type;

typedef struct mmfs_options {
    mmfs_sync_mode sync;         /* default MMFS_SYNC_BATCH */
    int sync_ms;                 /* batch mode: durable at most this late (100) */
    mmfs_checksum_type checksum; /* used when the store is created */
    const void *key;             /* blake2b key (tamper-evident log); NULL = none;
                                    a key implies MMFS_CHECKSUM_BLAKE2B */
    size_t key_len;              /* 16..64 bytes when key is set */
    int readonly;                /* no writer lock; writes give MMFS_READONLY */
    int create;                  /* create the store if missing (default 1) */
    int lock_timeout_ms;         /* writer lock wait before MMFS_BUSY (10000);
                                    0: try once, MMFS_BUSY at once (event loops) */
    uint64_t segment_size;       /* log segment size at creation (64 MiB) */
    mmfs_slice policy;           /* policy source to install if it differs from
                                    the store's (empty: leave it as it is) */
    uint64_t hook_budget;        /* VM instructions per policy hook call (1e6) */
    int repair;                  /* cut a damaged last segment at its first bad
                                    frame even when valid frames follow (which
                                    is otherwise MMFS_CORRUPT), keeping the cut
                                    bytes in ROOT/repair/; damage anywhere else
                                    still fails */
    const char *language;        /* at creation: the tokenizer's stemming, "none"
                                    or a Snowball language (NULL: "english");
                                    recorded in the store.  On an existing
                                    store NULL or its own language, else
                                    MMFS_INVALID */
    uint64_t checkpoint_bytes;   /* write a checkpoint in the background after
                                    this much log since the last one (64 MiB):
                                    the commit that crosses it starts a thread
                                    that writes one and ends, one writer per
                                    store at a time (no idle thread);
                                    0: never (mmfs_checkpoint still works) */
    const char *compress;        /* at creation: "zstd" (memory texts compressed
                                    with a dictionary of the store; needs a
                                    build with libzstd, else MMFS_INVALID
                                    "built without zstd") or "none" (NULL:
                                    "none").  Recorded in the store.  On an
                                    existing store NULL or its own choice,
                                    else MMFS_INVALID */
} mmfs_options;

/* Fills O with the defaults above. */
MMFS_API void mmfs_options_init(mmfs_options *o);

/* Opens (and with o->create, creates) the store in directory DIR.  O may be
** NULL for the defaults.  Recovery runs here: a torn tail of the last log
** segment is cut; any other damage fails with MMFS_CORRUPT naming segment
** and offset.  On success *out is a new handle; on failure *out is NULL.
** Errors: MMFS_IO (message names the path), MMFS_NOTFOUND (missing store
** and create = 0), MMFS_CORRUPT (also: wrong key), MMFS_INVALID (bad
** option, store made by a newer format), MMFS_BUSY, MMFS_NOMEM. */
MMFS_API int mmfs_open(const char *dir, const mmfs_options *o, mmfs_db **out);

/* Makes everything written durable (unless the handle is read-only), then
** releases the handle and every slice it gave out.  Close every reader,
** subscription, kv iterator and batch of the handle first, and make sure
** no other thread is inside a call on it.  Adds no record to the
** log.  NULL is a no-op.  The handle is freed even when an error (MMFS_IO
** from the final sync) is returned. */
MMFS_API int mmfs_close(mmfs_db *db);

/* ---------------------------------------------------------------------
** Memories: immutable texts with tags, full-text indexed.  Ids are dense,
** increasing in log order and never reused.
*/
typedef struct mmfs_memory_opts {
    int has_created_at; /* else: now */
    int64_t created_at; /* unix seconds (for importing history) */
    mmfs_slice route;   /* empty = "default" */
} mmfs_memory_opts;

typedef struct mmfs_memory {
    uint64_t id;
    int64_t created_at;
    double score;            /* BM25 score in search results, else 0 */
    mmfs_slice text;         /* into the log; in a store made with
                                compress = "zstd", a text the store keeps
                                compressed is decompressed into the result's
                                own allocation (freed with it by mmfs_free) */
    mmfs_slice route;        /* into the log */
    size_t ntags;
    const mmfs_slice *tags;  /* in the same allocation; slices into the log */
} mmfs_memory;

typedef struct mmfs_memories {
    size_t count;
    mmfs_memory *items;
} mmfs_memories;

/* Search and listing filters.  Zero-initialise, then set what you need. */
typedef struct mmfs_filter {
    size_t limit;            /* 0 = 20 */
    size_t offset;           /* list_memories only */
    mmfs_slice route;        /* empty = any route */
    const mmfs_slice *tags;  /* all must match */
    size_t ntags;
    int has_since;
    int64_t since;           /* created_at >= since */
    int has_before;
    int64_t before;          /* created_at < before */
    const mmfs_slice *tags_any; /* at least one must match (with tags: both hold) */
    size_t ntags_any;
} mmfs_filter;

/* Appends a memory.  TAGS: NTAGS exact, case-sensitive strings (may be
** NULL when NTAGS is 0).  OPTS may be NULL.  *id (may be NULL) gets the new
** id.  Errors: MMFS_INVALID (text or tag too large), MMFS_READONLY, MMFS_IO,
** MMFS_NOSPACE, MMFS_BUSY. */
MMFS_API int mmfs_append_memory(mmfs_db *db, mmfs_slice text, const mmfs_slice *tags,
                                size_t ntags, const mmfs_memory_opts *opts, uint64_t *id);

/* Looks up memory ID.  *out gets one allocation (free with mmfs_free).
** Errors: MMFS_NOTFOUND (never written, or deleted). */
MMFS_API int mmfs_get_memory(mmfs_db *db, uint64_t id, mmfs_memory **out);

/* Full-text search over memories, best first (ties: newer id first).
** F may be NULL.  *out gets the hits (count may be 0).
** Errors: MMFS_INVALID (malformed query; message gives the position). */
MMFS_API int mmfs_search_memory(mmfs_db *db, mmfs_slice query, const mmfs_filter *f,
                                mmfs_memories **out);

/* Snippet options.  Zero-initialise: marks "[" and "]", 160 bytes. */
typedef struct mmfs_snippet_opts {
    int has_marks;        /* use mark_open/mark_close (may be empty) */
    mmfs_slice mark_open, mark_close;
    size_t bytes;         /* about this many bytes of text (0 = 160) */
} mmfs_snippet_opts;

/* A snippet of TEXT (a hit's text) for QUERY, like FTS5's snippet(): a
** window of about o->bytes bytes around the best-matching terms, cut at
** word boundaries (valid UTF-8 for a valid UTF-8 text), with matched terms
** wrapped in the marks; a text without a match gives its beginning.  The
** store's tokenizer decides what matches, as in mmfs_search_memory.  O may
** be NULL.  *out is one allocation, NUL-terminated (free with mmfs_free);
** *len (may be NULL) its length.  Errors: MMFS_INVALID (malformed query),
** MMFS_NOMEM. */
MMFS_API int mmfs_snippet(mmfs_db *db, mmfs_slice query, mmfs_slice text,
                          const mmfs_snippet_opts *o, char **out, size_t *len);

/* Memories newest first (created_at, ties by id), filtered, no query. */
MMFS_API int mmfs_list_memories(mmfs_db *db, const mmfs_filter *f, mmfs_memories **out);

/* Forgets memory ID: gone from gets, lists and searches.  *deleted (may be
** NULL) is 1 if it existed, else 0 (and nothing is written). */
MMFS_API int mmfs_delete_memory(mmfs_db *db, uint64_t id, int *deleted);

/* ---------------------------------------------------------------------
** Key-value: byte key -> byte value.
*/

/* Sets KEY to VALUE (both binary safe, may be empty). */
MMFS_API int mmfs_set_kv(mmfs_db *db, mmfs_slice key, mmfs_slice value);

/* *value points into the log (see the lifetime rule above).
** Errors: MMFS_NOTFOUND. */
MMFS_API int mmfs_get_kv(mmfs_db *db, mmfs_slice key, mmfs_slice *value);

/* *deleted (may be NULL): 1 if KEY existed. */
MMFS_API int mmfs_delete_kv(mmfs_db *db, mmfs_slice key, int *deleted);

/* An iterator over the keys starting with a prefix, in byte order.  It
** sees writes made after it was opened only past its current position. */
typedef struct mmfs_kv_iter mmfs_kv_iter;

/* Opens an iterator over keys starting with PREFIX (empty: all keys). */
MMFS_API int mmfs_kv_iter_open(mmfs_db *db, mmfs_slice prefix, mmfs_kv_iter **out);

/* Next pair, slices into the log.  Errors: MMFS_NOTFOUND at the end. */
MMFS_API int mmfs_kv_iter_next(mmfs_kv_iter *it, mmfs_slice *key, mmfs_slice *value);

/* Releases the iterator.  NULL is a no-op. */
MMFS_API void mmfs_kv_iter_close(mmfs_kv_iter *it);

/* ---------------------------------------------------------------------
** Sessions: records with an id, an intent, a creation time, a payload and
** further fields.  FIELDS holds the other fields in the value encoding:
**
**   value  = 'f' | 't'                       false, true
**          | 'i' int64 (8 bytes LE)          integer
**          | 'd' double (8 bytes LE)         float
**          | 's' u32 len (LE) bytes          string
**          | 'T' u32 n (LE) (value value)*n  table of n key/value pairs
**
** FIELDS is one 'T' value, or empty for none.  The library stores it as
** given (it checks that it is well formed).
*/
typedef struct mmfs_session {
    mmfs_slice id;        /* required, non-empty */
    int has_intent;
    mmfs_slice intent_id;
    int has_created_at;   /* on put: else now */
    int64_t created_at;
    int has_payload;
    mmfs_slice payload;
    mmfs_slice fields;    /* encoded 'T' value or empty */
} mmfs_session;

/* One value of the field encoding, as mmfs_fields_next reads it. */
typedef struct mmfs_field {
    char type;    /* 'f' 't' 'i' 'd' 's' 'T' */
    int64_t i;    /* 'i' */
    double d;     /* 'd' */
    mmfs_slice s; /* 's': the string, into the buffer */
    uint32_t n;   /* 'T': its pairs, which follow it (key, value, ...) */
} mmfs_field;

/* Tables nest at most this deep in the encoding (deeper is malformed). */
#define MMFS_FIELDS_MAXDEPTH 64

/* The walker of the field encoding (for bindings that turn it into their
** own values).  Reads the value at byte *POS of BUF into *OUT and moves
** *POS past it; for a table, past its header only, so its OUT->n pairs
** are read next.  OUT's slice points into BUF.  Errors: MMFS_CORRUPT (a
** value cut short or of no known type; no message is set). */
MMFS_API int mmfs_fields_next(mmfs_slice buf, size_t *pos, mmfs_field *out);

/* Moves *POS past the whole value at byte *POS of BUF, a table with all
** it holds, checking it.  Errors: MMFS_CORRUPT (malformed, or nested
** deeper than MMFS_FIELDS_MAXDEPTH; no message is set). */
MMFS_API int mmfs_fields_skip(mmfs_slice buf, size_t *pos);

typedef struct mmfs_sessions {
    size_t count;
    mmfs_session *items;
} mmfs_sessions;

/* Stores S, replacing an earlier session with the same id.
** Errors: MMFS_INVALID (empty id, malformed fields). */
MMFS_API int mmfs_put_session(mmfs_db *db, const mmfs_session *s);

/* *out gets slices into the log.  Errors: MMFS_NOTFOUND. */
MMFS_API int mmfs_get_session(mmfs_db *db, mmfs_slice id, mmfs_session *out);

/* *deleted (may be NULL): 1 if it existed. */
MMFS_API int mmfs_delete_session(mmfs_db *db, mmfs_slice id, int *deleted);

/* Sessions newest created_at first (ties: later put first); LIMIT 0 = all. */
MMFS_API int mmfs_list_sessions(mmfs_db *db, size_t limit, mmfs_sessions **out);

/* The sessions of one intent, newest created_at first; LIMIT 0 = all. */
MMFS_API int mmfs_list_by_intent(mmfs_db *db, mmfs_slice intent_id, size_t limit,
                                 mmfs_sessions **out);

/* ---------------------------------------------------------------------
** Streams: named append-only byte streams.
*/

/* Appends BYTES (may be empty: creates the stream) to stream KEY. */
MMFS_API int mmfs_append_stream(mmfs_db *db, mmfs_slice key, mmfs_slice bytes);

/* *size: the stream's length in bytes, 0 for a missing stream. */
MMFS_API int mmfs_stream_size(mmfs_db *db, mmfs_slice key, uint64_t *size);

/* A sequential reader over the stream as it was when opened. */
typedef struct mmfs_reader mmfs_reader;

/* Errors: MMFS_NOTFOUND (no such stream). */
MMFS_API int mmfs_open_read(mmfs_db *db, mmfs_slice key, mmfs_reader **out);

/* Copies up to N bytes into BUF; *got = 0 at the end. */
MMFS_API int mmfs_reader_read(mmfs_reader *r, void *buf, size_t n, size_t *got);

/* Zero-copy: *chunk gets the bytes from the position to the end of the
** current chunk (empty at the end) without advancing.  Slices into the log. */
MMFS_API int mmfs_reader_peek(mmfs_reader *r, mmfs_slice *chunk);

/* Advances the position by N bytes (at most to the end). */
MMFS_API int mmfs_reader_skip(mmfs_reader *r, uint64_t n);

/* Moves to byte OFFSET.  Errors: MMFS_INVALID (past the end). */
MMFS_API int mmfs_reader_seek(mmfs_reader *r, uint64_t offset);

/* The position, and the size the reader sees. */
MMFS_API uint64_t mmfs_reader_tell(const mmfs_reader *r);
MMFS_API uint64_t mmfs_reader_size(const mmfs_reader *r);

/* Releases the reader.  NULL is a no-op. */
MMFS_API void mmfs_reader_close(mmfs_reader *r);

/* ---------------------------------------------------------------------
** Documents: key -> text entries in the full-text engine (not memories).
*/
typedef struct mmfs_doc_hit {
    mmfs_slice key;  /* into the log */
    double score;
} mmfs_doc_hit;

typedef struct mmfs_doc_hits {
    size_t count;
    mmfs_doc_hit *items;
} mmfs_doc_hits;

/* Indexes TEXT under KEY, replacing an earlier text. */
MMFS_API int mmfs_index(mmfs_db *db, mmfs_slice key, mmfs_slice text);

/* *deleted (may be NULL): 1 if KEY was indexed. */
MMFS_API int mmfs_unindex(mmfs_db *db, mmfs_slice key, int *deleted);

/* Best LIMIT documents for QUERY (0 = 20).  Errors: MMFS_INVALID. */
MMFS_API int mmfs_search(mmfs_db *db, mmfs_slice query, size_t limit, mmfs_doc_hits **out);

/* ---------------------------------------------------------------------
** State: the agent's latest state, versioned; subscribers wake on change.
*/

/* Replaces the state; *version (may be NULL) gets its version (1, 2, ...). */
MMFS_API int mmfs_update_state(mmfs_db *db, mmfs_slice value, uint64_t *version);

/* *value: the state (slice into the log), *version: its version; before
** the first update, an empty slice with ptr NULL and version 0. */
MMFS_API int mmfs_get_state(mmfs_db *db, mmfs_slice *value, uint64_t *version);

typedef struct mmfs_sub mmfs_sub;

/* A subscription that remembers the current version. */
MMFS_API int mmfs_subscribe_state(mmfs_db *db, mmfs_sub **out);

/* Waits up to TIMEOUT_MS (negative: forever) for a version newer than the
** last one this subscription saw, and returns the latest (intermediate
** versions may be skipped).  Errors: MMFS_TIMEOUT. */
MMFS_API int mmfs_sub_next(mmfs_sub *s, int timeout_ms, mmfs_slice *value, uint64_t *version);

/* A descriptor that is readable while a newer version than the last seen
** exists (for poll/epoll/libuv).  Owned by the subscription; -1 (with the
** message set) if one cannot be made. */
MMFS_API int mmfs_sub_fd(mmfs_sub *s);

/* Releases the subscription.  NULL is a no-op. */
MMFS_API void mmfs_sub_close(mmfs_sub *s);

/* ---------------------------------------------------------------------
** Atomic batches: commands collected without the lock, committed as one
** frame: all of them reach the log or none.
*/
typedef struct mmfs_batch mmfs_batch;

MMFS_API int mmfs_batch_begin(mmfs_db *db, mmfs_batch **out);

/* The same arguments as the single calls.  They copy what they keep;
** nothing is checked against the store until commit. */
MMFS_API int mmfs_batch_append_memory(mmfs_batch *b, mmfs_slice text, const mmfs_slice *tags,
                                      size_t ntags, const mmfs_memory_opts *opts);
MMFS_API int mmfs_batch_delete_memory(mmfs_batch *b, uint64_t id);
MMFS_API int mmfs_batch_set_kv(mmfs_batch *b, mmfs_slice key, mmfs_slice value);
MMFS_API int mmfs_batch_delete_kv(mmfs_batch *b, mmfs_slice key);
MMFS_API int mmfs_batch_put_session(mmfs_batch *b, const mmfs_session *s);
MMFS_API int mmfs_batch_delete_session(mmfs_batch *b, mmfs_slice id);
MMFS_API int mmfs_batch_append_stream(mmfs_batch *b, mmfs_slice key, mmfs_slice bytes);
MMFS_API int mmfs_batch_index(mmfs_batch *b, mmfs_slice key, mmfs_slice text);
MMFS_API int mmfs_batch_unindex(mmfs_batch *b, mmfs_slice key);
MMFS_API int mmfs_batch_update_state(mmfs_batch *b, mmfs_slice value);

/* Commits the batch as one frame and frees it (also on error).  *ids (may
** be NULL) gets the ids of the batch's append_memory commands, in command
** order (not those of memories a hook added), as an array to release with
** mmfs_free (NULL when none); *nids their count.  Deletes of
** missing entries are dropped from the frame.  An empty batch writes
** nothing. */
MMFS_API int mmfs_batch_commit(mmfs_batch *b, uint64_t **ids, size_t *nids);

/* Drops the batch without writing anything.  NULL is a no-op. */
MMFS_API void mmfs_batch_abort(mmfs_batch *b);

/* ---------------------------------------------------------------------
** Policies: the store's Lua policy (routing, session schemas, one hook per
** command type) is a log command, so every process follows the policy in
** force at each point of the log.  Needs a build with Lua policies
** (MMFS_WITH_POLICY); without it, mmfs_set_policy gives MMFS_INVALID and a
** store that has a policy refuses writes with MMFS_INVALID.
*/

/* Installs SOURCE (Lua text, never bytecode) as the store's policy; an
** empty slice removes it.  The source is compiled and run in a sandbox
** first.  Errors: MMFS_INVALID (it does not compile or does not return a
** table: the message names the line), MMFS_LIMIT. */
MMFS_API int mmfs_set_policy(mmfs_db *db, mmfs_slice source);

/* *source: the policy in force (into the log).  Errors: MMFS_NOTFOUND. */
MMFS_API int mmfs_get_policy(mmfs_db *db, mmfs_slice *source);

/* C hooks: the same power as a Lua hook, without Lua.  A hook is a
** property of one handle (not of the store), runs under the writer lock
** for every command of every commit through this handle, after the Lua
** policy, and may edit the command in place (pointing slices at memory
** that lives until the commit returns), reject it, or add commands to the
** same frame through TX with the mmfs_batch_* calls (added commands are
** not hooked again).  TX must not be committed or aborted by the hook.
** A hook that calls a write function of its own store gets MMFS_BUSY. */
/* The command types: X(NAME, code, name), NAME for MMFS_CMD_NAME, name
** the function (mmfs_NAME, mmfs_batch_NAME), the Lua method and the
** policy hook (hooks.name).  Codes are stable: they are in the log. */
#define MMFS_COMMANDS(X)                                                       \
    X(APPEND_MEMORY, 1, append_memory)                                         \
    X(DELETE_MEMORY, 2, delete_memory)                                         \
    X(SET_KV, 3, set_kv)                                                       \
    X(DELETE_KV, 4, delete_kv)                                                 \
    X(PUT_SESSION, 5, put_session)                                             \
    X(DELETE_SESSION, 6, delete_session)                                       \
    X(APPEND_STREAM, 7, append_stream)                                         \
    X(INDEX, 8, index)                                                         \
    X(UNINDEX, 9, unindex)                                                     \
    X(UPDATE_STATE, 10, update_state)

typedef enum mmfs_command_type {
#define MMFS_CMD_ENUM_(N, code, name) MMFS_CMD_##N = code,
    MMFS_COMMANDS(MMFS_CMD_ENUM_)
#undef MMFS_CMD_ENUM_
} mmfs_command_type;

typedef struct mmfs_command {
    mmfs_command_type type;
    mmfs_slice text;           /* append_memory; index */
    const mmfs_slice *tags;    /* append_memory */
    size_t ntags;
    mmfs_slice route;          /* append_memory */
    int64_t created_at;        /* append_memory */
    uint64_t id;               /* delete_memory */
    mmfs_slice key;            /* kv, stream, index, unindex */
    mmfs_slice value;          /* set_kv; append_stream (the bytes); update_state */
    mmfs_session session;      /* put_session; delete_session (session.id) */
} mmfs_command;

/* Return MMFS_OK to let CMD through, or mmfs_reject(...) to reject the
** whole commit (the caller gets MMFS_REJECTED with the message). */
typedef int (*mmfs_hook_fn)(void *ud, mmfs_command *cmd, mmfs_batch *tx);

/* Sets this handle's hook (NULL removes it). */
MMFS_API int mmfs_set_hook(mmfs_db *db, mmfs_hook_fn fn, void *ud);

/* Records REASON (printf-style) as the rejection message and returns
** MMFS_REJECTED, for a hook to return. */
MMFS_API int mmfs_reject(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* ---------------------------------------------------------------------
** Maintenance.
*/

/* Returns once everything written so far by any process is durable. */
MMFS_API int mmfs_sync(mmfs_db *db);

/* Catches up with frames other processes appended (reads do it anyway). */
MMFS_API int mmfs_refresh(mmfs_db *db);

/* The store's directory: the name given to mmfs_open without trailing
** slashes (relative if it was).  Owned by DB, valid until mmfs_close(db);
** NULL when DB is NULL.  No error: it works on any open handle, also one
** used across fork() or refusing writes. */
MMFS_API const char *mmfs_path(const mmfs_db *db);

/* Re-reads every frame of the log and checks its checksum.
** Errors: MMFS_CORRUPT (message names segment and offset). */
MMFS_API int mmfs_verify(mmfs_db *db);

typedef struct mmfs_store_stats {
    uint64_t memories;      /* live (not deleted) */
    uint64_t kv;
    uint64_t sessions;
    uint64_t streams;
    uint64_t documents;
    uint64_t log_bytes;     /* bytes of frames in the log */
    uint64_t live_bytes;    /* bytes of records still needed */
    uint64_t dead_bytes;    /* bytes of records compaction would drop (deleted,
                               overwritten, superseded; not frame overhead) */
    uint64_t lsn;           /* last LSN applied by this handle */
    uint64_t durable_lsn;   /* last LSN known durable */
    uint64_t state_version;
    uint64_t segments;      /* log segments */
    uint64_t checkpoint_lsn; /* LSN of the checkpoint the handle maps now: open's,
                                or a newer one written since (by any handle or
                                process), which a handle moves to when it next
                                catches up; 0 if none (none, or every one was
                                damaged or stale).  A newer one that fails its
                                checks is not moved to: this stays. */
    uint64_t compacting;    /* 1 while a compaction runs through this handle */
    uint64_t checkpoint_dropped; /* 1 once a part of the checkpoint open mapped
                                    failed its checksum when first read: reads
                                    that need it fail with MMFS_CORRUPT, and the
                                    next open falls back to an older one or the log */
    uint64_t index_segments; /* memories' index segments mapped (ROOT/index/) */
} mmfs_store_stats;

/* Writes a checkpoint: the engine's state at the last LSN this handle has
** applied, as a file in ROOT/ckpt/ that later opens map instead of
** replaying the log up to it (the log stays the truth: a damaged, stale or
** newer-format checkpoint is skipped), and that handles open on the store
** (this one at once, others when they next catch up) switch to, so that a
** long-lived handle's heap does not grow with what was written since its
** open.  Syncs the log up to that LSN
** first.  Holds the writer mutex only while picking the LSN, and the
** engine's read side while copying positions; writes, fsyncs and renames
** the file without either, then removes all but the newest two.  A store
** with no frames gets none (MMFS_OK).  Errors: MMFS_READONLY, MMFS_BUSY
** (from a hook), MMFS_IO, MMFS_NOSPACE, MMFS_NOMEM, MMFS_CLOSED. */
MMFS_API int mmfs_checkpoint(mmfs_db *db);

/* Fills *out with counts and log positions as this handle sees them. */
MMFS_API int mmfs_stats(mmfs_db *db, mmfs_store_stats *out);

/* Compaction options (mmfs_compact_opts_init sets the defaults). */
typedef struct mmfs_compact_opts {
    int64_t now; /* unix seconds that ttl and compaction.keep see; 0: the clock */
} mmfs_compact_opts;

MMFS_API void mmfs_compact_opts_init(mmfs_compact_opts *o);

typedef struct mmfs_compact_result {
    uint64_t bytes_before; /* log bytes (as stats.log_bytes) before */
    uint64_t bytes_after;  /* and after */
    uint64_t kept;         /* records written into the new log */
    uint64_t dropped;      /* records left out: dead, expired or not kept */
    uint64_t ms;           /* wall time of the whole compaction */
} mmfs_compact_result;

/* Rewrites the log without what the store no longer needs: deleted
** memories, overwritten or deleted keys, deleted sessions and documents,
** superseded states and policies, memories past their route's ttl
** (policy routes.NAME.ttl, seconds after created_at) and memories the
** policy's compaction.keep(mem, now) refuses.  Stream bytes are kept; ids
** and LSNs are never given again.  The live records go into new segments
** numbered after the last one; MANIFEST then switches to them (first
** segment moves up) and the old files are removed.  The copy runs without
** the writer lock (writers in every process go on; what they append
** meanwhile is carried over under the lock at the switch).  With
** checkpoints on (checkpoint_bytes), it ends with a checkpoint of the new
** log (mmfs_checkpoint); if that fails the compaction still stands.  Other handles, in this process and others, rebuild their engine
** from the new log when they next catch up; slices they handed out stay
** valid until they close.  A crash at any moment leaves the store as it
** was before or after.  OPTS may be NULL; OUT may be NULL.
** Errors: MMFS_READONLY, MMFS_BUSY (lock timeout, another compaction, or
** a hook calling it), MMFS_REJECTED / MMFS_LIMIT (compaction.keep raised
** or passed its limits: nothing changed), MMFS_NOSPACE, MMFS_IO,
** MMFS_NOMEM, MMFS_CLOSED. */
MMFS_API int mmfs_compact(mmfs_db *db, const mmfs_compact_opts *opts, mmfs_compact_result *out);

#ifdef __cplusplus
}
#endif

#endif /* MEMMAPFS_H */
