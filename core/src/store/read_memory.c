/*
** read_memory.c: the public reads of memories and documents
** (mmfs_get_memory, mmfs_list_memories, mmfs_search_memory, mmfs_snippet,
** mmfs_search): the handle's read entry (fork check, catch-up, the
** engine's read side) around what engine/memory_read.c finds.  A memory
** or document search first drains the index queue (engine.h,
** mmfs__mems): the indexes may lag the entries, and a search must see
** every memory and document applied before it.
** Results point into the mapped log and stay valid until mmfs_close.
*/
#include "db.h"
#include "engine.h"

int mmfs_get_memory(mmfs_db *db, uint64_t id, mmfs_memory **out) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "get_memory: db and out must not be NULL");
    *out = NULL;
    MMFS__READ_RETURN(db, mmfs__mem_get(e, id, out));
}

int mmfs_list_memories(mmfs_db *db, const mmfs_filter *f, mmfs_memories **out) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "list_memories: db and out must not be NULL");
    *out = NULL;
    MMFS__READ_RETURN(db, mmfs__mem_list(e, f, out));
}

/* Drain the index queue, then search.  Under the read side: a reload
** after another handle's compaction swaps the engine only under the
** write side. */
static int drain_and_search(mmfs__engine *e, mmfs_slice query, const mmfs_filter *f, mmfs_memories **out) {
    int rc = mmfs__engine_index_drain(e);
    return rc ? rc : mmfs__mem_search(e, query, f, out);
}

static int drain_and_search_docs(mmfs__engine *e, mmfs_slice query, size_t limit, mmfs_doc_hits **out) {
    int rc = mmfs__engine_index_drain(e);
    return rc ? rc : mmfs__doc_search(e, query, limit, out);
}

int mmfs_search_memory(mmfs_db *db, mmfs_slice query, const mmfs_filter *f, mmfs_memories **out) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "search_memory: db and out must not be NULL");
    *out = NULL;
    if (query.len && !query.ptr) return mmfs__err(MMFS_INVALID, "search_memory: query is NULL");
    MMFS__READ_RETURN(db, drain_and_search(e, query, f, out));
}

int mmfs_snippet(mmfs_db *db, mmfs_slice query, mmfs_slice text, const mmfs_snippet_opts *o,
                 char **out, size_t *len) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "snippet: db and out must not be NULL");
    *out = NULL;
    if ((query.len && !query.ptr) || (text.len && !text.ptr))
        return mmfs__err(MMFS_INVALID, "snippet: query or text is NULL");
    mmfs_slice open = {"[", 1}, close = {"]", 1};
    size_t bytes = 160;
    if (o && o->has_marks) {
        if ((o->mark_open.len && !o->mark_open.ptr) || (o->mark_close.len && !o->mark_close.ptr))
            return mmfs__err(MMFS_INVALID, "snippet: a mark is NULL");
        open = o->mark_open;
        close = o->mark_close;
    }
    if (o && o->bytes) bytes = o->bytes;
    if (!text.len) text.ptr = "";
    mmfs__engine *e;
    int rc = mmfs__read_begin(db, &e);
    if (rc) return rc;
    uint8_t *s = NULL;
    size_t n = 0;
    /* only the index's tokenizer is read: fixed once the store is open */
    rc = mmfs__index_snippet(e->mems.ix, query, text, open, close, bytes, &s, &n);
    mmfs__read_end(db);
    if (rc) return rc;
    *out = (char *)s;
    if (len) *len = n;
    return MMFS_OK;
}

int mmfs_search(mmfs_db *db, mmfs_slice query, size_t limit, mmfs_doc_hits **out) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "search: db and out must not be NULL");
    *out = NULL;
    if (query.len && !query.ptr) return mmfs__err(MMFS_INVALID, "search: query is NULL");
    MMFS__READ_RETURN(db, drain_and_search_docs(e, query, limit, out));
}
