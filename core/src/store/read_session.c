/*
** read_session.c: the public session reads (mmfs_get_session,
** mmfs_list_sessions, mmfs_list_by_intent): the handle's read entry
** (fork check, catch-up, the engine's read side) around what
** engine/session.c finds.  Results point into the mapped log and stay
** valid until mmfs_close.
*/
#include "db.h"
#include "engine.h"

#include <string.h>

int mmfs_get_session(mmfs_db *db, mmfs_slice id, mmfs_session *out) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "get_session: db and out must not be NULL");
    memset(out, 0, sizeof *out);
    MMFS__READ_RETURN(db, mmfs__sess_get(e, id, out));
}

int mmfs_list_sessions(mmfs_db *db, size_t limit, mmfs_sessions **out) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "list_sessions: db and out must not be NULL");
    *out = NULL;
    MMFS__READ_RETURN(db, mmfs__sess_list(e, limit, out));
}

int mmfs_list_by_intent(mmfs_db *db, mmfs_slice intent_id, size_t limit, mmfs_sessions **out) {
    if (!db || !out) return mmfs__err(MMFS_INVALID, "list_by_intent: db and out must not be NULL");
    *out = NULL;
    MMFS__READ_RETURN(db, mmfs__sess_by_intent(e, intent_id, limit, out));
}
