/*
** layout.c: prints the size of every struct of memmapfs.h that the FFI
** binding declares, and the offset of each of its fields, one line each:
** "mmfs_options sizeof 80", "mmfs_options sync_ms 4".  tests/ffi/ffi_spec.lua
** compares them with lua/memmapfs/ffi.lua's declarations: a struct changed
** in the header but not there would otherwise make the binding read and
** write the wrong bytes, silently.  (A field added to a struct changes its
** size, so the comparison catches it even before a line is added here.)
*/
#include <stddef.h>
#include <stdio.h>

#include "memmapfs.h"

#define SIZE(t) printf("%s sizeof %zu\n", #t, sizeof(t))
#define FIELD(t, f) printf("%s %s %zu\n", #t, #f, offsetof(t, f))

int main(void) {
    SIZE(mmfs_slice);
    FIELD(mmfs_slice, ptr);
    FIELD(mmfs_slice, len);

    SIZE(mmfs_options);
    FIELD(mmfs_options, sync);
    FIELD(mmfs_options, sync_ms);
    FIELD(mmfs_options, checksum);
    FIELD(mmfs_options, key);
    FIELD(mmfs_options, key_len);
    FIELD(mmfs_options, readonly);
    FIELD(mmfs_options, create);
    FIELD(mmfs_options, lock_timeout_ms);
    FIELD(mmfs_options, segment_size);
    FIELD(mmfs_options, policy);
    FIELD(mmfs_options, hook_budget);
    FIELD(mmfs_options, repair);
    FIELD(mmfs_options, language);
    FIELD(mmfs_options, checkpoint_bytes);
    FIELD(mmfs_options, compress);

    SIZE(mmfs_memory_opts);
    FIELD(mmfs_memory_opts, has_created_at);
    FIELD(mmfs_memory_opts, created_at);
    FIELD(mmfs_memory_opts, route);

    SIZE(mmfs_memory);
    FIELD(mmfs_memory, id);
    FIELD(mmfs_memory, created_at);
    FIELD(mmfs_memory, score);
    FIELD(mmfs_memory, text);
    FIELD(mmfs_memory, route);
    FIELD(mmfs_memory, ntags);
    FIELD(mmfs_memory, tags);

    SIZE(mmfs_memories);
    FIELD(mmfs_memories, count);
    FIELD(mmfs_memories, items);

    SIZE(mmfs_filter);
    FIELD(mmfs_filter, limit);
    FIELD(mmfs_filter, offset);
    FIELD(mmfs_filter, route);
    FIELD(mmfs_filter, tags);
    FIELD(mmfs_filter, ntags);
    FIELD(mmfs_filter, has_since);
    FIELD(mmfs_filter, since);
    FIELD(mmfs_filter, has_before);
    FIELD(mmfs_filter, before);
    FIELD(mmfs_filter, tags_any);
    FIELD(mmfs_filter, ntags_any);

    SIZE(mmfs_snippet_opts);
    FIELD(mmfs_snippet_opts, has_marks);
    FIELD(mmfs_snippet_opts, mark_open);
    FIELD(mmfs_snippet_opts, mark_close);
    FIELD(mmfs_snippet_opts, bytes);

    SIZE(mmfs_session);
    FIELD(mmfs_session, id);
    FIELD(mmfs_session, has_intent);
    FIELD(mmfs_session, intent_id);
    FIELD(mmfs_session, has_created_at);
    FIELD(mmfs_session, created_at);
    FIELD(mmfs_session, has_payload);
    FIELD(mmfs_session, payload);
    FIELD(mmfs_session, fields);

    SIZE(mmfs_sessions);
    FIELD(mmfs_sessions, count);
    FIELD(mmfs_sessions, items);

    SIZE(mmfs_doc_hit);
    FIELD(mmfs_doc_hit, key);
    FIELD(mmfs_doc_hit, score);

    SIZE(mmfs_doc_hits);
    FIELD(mmfs_doc_hits, count);
    FIELD(mmfs_doc_hits, items);

    SIZE(mmfs_store_stats);
    FIELD(mmfs_store_stats, memories);
    FIELD(mmfs_store_stats, state_version);
    FIELD(mmfs_store_stats, segments);
    FIELD(mmfs_store_stats, checkpoint_lsn);
    FIELD(mmfs_store_stats, compacting);

    SIZE(mmfs_compact_opts);
    FIELD(mmfs_compact_opts, now);
    SIZE(mmfs_compact_result);
    FIELD(mmfs_compact_result, bytes_before);
    FIELD(mmfs_compact_result, ms);
    return 0;
}
