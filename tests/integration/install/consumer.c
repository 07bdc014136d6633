/* consumer.c: a program built against an installed memmapfs (through
** pkg-config or find_package): writes to a store, reopens it, reads back.
** Usage: consumer DIR; prints "ok VERSION" and exits 0. */
#include <memmapfs.h>
#include <stdio.h>
#include <string.h>

static int fail(const char *what, int rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, mmfs_errmsg(NULL), mmfs_err_name(rc));
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    mmfs_db *db;
    uint64_t id;
    int rc;
    if ((rc = mmfs_open(argv[1], NULL, &db))) return fail("open", rc);
    if ((rc = mmfs_set_kv(db, mmfs_str("k"), mmfs_str("installed")))) return fail("set_kv", rc);
    if ((rc = mmfs_append_memory(db, mmfs_str("linked from an install"), NULL, 0, NULL, &id)))
        return fail("append_memory", rc);
    if ((rc = mmfs_close(db))) return fail("close", rc);

    if ((rc = mmfs_open(argv[1], NULL, &db))) return fail("reopen", rc);
    mmfs_slice v;
    mmfs_memories *hits;
    if ((rc = mmfs_get_kv(db, mmfs_str("k"), &v))) return fail("get_kv", rc);
    if (v.len != 9 || memcmp(v.ptr, "installed", 9) != 0) return fail("get_kv value", MMFS_CORRUPT);
    if ((rc = mmfs_search_memory(db, mmfs_str("install"), NULL, &hits))) return fail("search", rc);
    if (hits->count != 1 || hits->items[0].id != id) return fail("search hits", MMFS_CORRUPT);
    mmfs_free(hits);
    if ((rc = mmfs_close(db))) return fail("close", rc);
    printf("ok %s\n", MMFS_VERSION);
    return 0;
}
