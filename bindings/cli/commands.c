/*
** commands.c: the mmfs commands, each over the public API alone.
**
** Owns: what each command reads, writes and prints.
** Invariants: only set, del, checkpoint and compact open the store for
** writing; every other command opens it read-only, so running it never
** changes the store (not even a torn tail is cut).  Values go to stdout byte for byte (get, cat)
** or as JSON lines (json.c), flushed per line where a reader waits (watch).
*/
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* --------------------------------------------------------------- stats */

/* A named count, as stats and compact print them. */
typedef struct cli_row {
    const char *name;
    uint64_t v;
} cli_row;

/* Prints ROWS as "name value" lines, or as one JSON object when JSON. */
static void print_rows(const cli_row *rows, size_t n, int json) {
    for (size_t i = 0; i < n; i++) {
        if (json) printf("%s\"%s\":%llu", i ? "," : "{", rows[i].name, (unsigned long long)rows[i].v);
        else printf("%-14s %llu\n", rows[i].name, (unsigned long long)rows[i].v);
    }
    if (json) printf("}\n");
}

static int cmd_stats(const cli_args *a) {
    mmfs_db *db;
    int rc = cli_open(a, 0, &db);
    if (rc) return rc;
    mmfs_store_stats st;
    if ((rc = mmfs_stats(db, &st)) != MMFS_OK) return cli_close(a->cmd, db, cli_fail(a->cmd, db, rc));
    const cli_row rows[] = {
        {"memories", st.memories},     {"kv", st.kv},
        {"sessions", st.sessions},     {"streams", st.streams},
        {"documents", st.documents},   {"log_bytes", st.log_bytes},
        {"live_bytes", st.live_bytes}, {"dead_bytes", st.dead_bytes},
        {"lsn", st.lsn},               {"durable_lsn", st.durable_lsn},
        {"state_version", st.state_version}, {"segments", st.segments},
        {"checkpoint_lsn", st.checkpoint_lsn}, {"compacting", st.compacting},
        {"checkpoint_dropped", st.checkpoint_dropped},
        {"index_segments", st.index_segments},
    };
    print_rows(rows, sizeof rows / sizeof rows[0], cli_opt_has(a, "json"));
    return cli_close(a->cmd, db, 0);
}

/* -------------------------------------------------------------- verify */

static int cmd_verify(const cli_args *a) {
    mmfs_db *db;
    int rc = cli_open(a, 0, &db);
    if (rc) return rc;
    if ((rc = mmfs_verify(db)) != MMFS_OK) return cli_close(a->cmd, db, cli_fail(a->cmd, db, rc));
    if (!cli_opt_has(a, "quiet")) printf("ok\n");
    return cli_close(a->cmd, db, 0);
}

/* ------------------------------------------------------------- compact */

static int cmd_compact(const cli_args *a) {
    mmfs_db *db;
    int rc = cli_open(a, 1, &db);
    if (rc) return rc;
    mmfs_compact_result r;
    if ((rc = mmfs_compact(db, NULL, &r)) != MMFS_OK) return cli_close(a->cmd, db, cli_fail(a->cmd, db, rc));
    const cli_row rows[] = {{"bytes_before", r.bytes_before}, {"bytes_after", r.bytes_after},
                {"kept", r.kept},                 {"dropped", r.dropped},
                {"ms", r.ms}};
    print_rows(rows, sizeof rows / sizeof rows[0], cli_opt_has(a, "json"));
    return cli_close(a->cmd, db, 0);
}

/* ---------------------------------------------------------------- dump */

/* Memories are listed newest first a page at a time.  Paging goes by
** created_at (`before`) plus an offset within the run of memories that
** share the last created_at seen, so a page costs its own size, not the
** length of the dump so far.  Within a run ids decrease; one that is not
** below the last id written arrived during the dump and is left out. */
#define DUMP_PAGE 512

static int dump_memories(const cli_args *a, mmfs_db *db) {
    int have = 0;
    int64_t last_ct = 0;
    uint64_t last_id = 0;
    size_t run = 0;
    for (;;) {
        mmfs_filter f;
        memset(&f, 0, sizeof f);
        f.limit = DUMP_PAGE;
        if (have && last_ct < INT64_MAX) {
            f.has_before = 1;
            f.before = last_ct + 1;
            f.offset = run;
        } else if (have) {
            f.offset = run;
        }
        mmfs_memories *ms;
        int rc = mmfs_list_memories(db, &f, &ms);
        if (rc) return cli_fail(a->cmd, db, rc);
        size_t emitted = 0;
        for (size_t i = 0; i < ms->count; i++) {
            const mmfs_memory *m = &ms->items[i];
            if (have && m->created_at == last_ct && m->id >= last_id) continue;
            fputs("{\"type\":\"memory\",\"memory\":", stdout);
            cli_json_memory(stdout, m, 0);
            fputs("}\n", stdout);
            emitted++;
            if (have && m->created_at == last_ct) run++;
            else last_ct = m->created_at, run = 1;
            last_id = m->id;
            have = 1;
        }
        size_t count = ms->count;
        mmfs_free(ms);
        if (count < DUMP_PAGE) return 0;
        if (!emitted) run += count; /* a page of late arrivals: step over it */
    }
}

static int dump_kv(const cli_args *a, mmfs_db *db) {
    mmfs_kv_iter *it;
    int rc = mmfs_kv_iter_open(db, mmfs_str(""), &it);
    if (rc) return cli_fail(a->cmd, db, rc);
    mmfs_slice k, v;
    while ((rc = mmfs_kv_iter_next(it, &k, &v)) == MMFS_OK) {
        fputs("{\"type\":\"kv\",\"key\":", stdout);
        cli_json_slice(stdout, k);
        fputs(",\"value\":", stdout);
        cli_json_slice(stdout, v);
        fputs("}\n", stdout);
    }
    mmfs_kv_iter_close(it);
    return rc == MMFS_NOTFOUND ? 0 : cli_fail(a->cmd, db, rc);
}

static int dump_sessions(const cli_args *a, mmfs_db *db) {
    mmfs_sessions *ss;
    int rc = mmfs_list_sessions(db, 0, &ss);
    if (rc) return cli_fail(a->cmd, db, rc);
    for (size_t i = 0; i < ss->count; i++) {
        fputs("{\"type\":\"session\",\"session\":", stdout);
        cli_json_session(stdout, &ss->items[i]);
        fputs("}\n", stdout);
    }
    mmfs_free(ss);
    return 0;
}

static int dump_state_policy(const cli_args *a, mmfs_db *db) {
    mmfs_slice v;
    uint64_t version;
    int rc = mmfs_get_state(db, &v, &version);
    if (rc) return cli_fail(a->cmd, db, rc);
    if (version) {
        printf("{\"type\":\"state\",\"version\":%llu,\"value\":", (unsigned long long)version);
        cli_json_slice(stdout, v);
        fputs("}\n", stdout);
    }
    rc = mmfs_get_policy(db, &v);
    if (rc == MMFS_NOTFOUND) return 0;
    if (rc) return cli_fail(a->cmd, db, rc);
    fputs("{\"type\":\"policy\",\"source\":", stdout);
    cli_json_slice(stdout, v);
    fputs("}\n", stdout);
    return 0;
}

static int cmd_dump(const cli_args *a) {
    mmfs_db *db;
    int rc = cli_open(a, 0, &db);
    if (rc) return rc;
    if (!(rc = dump_state_policy(a, db)) && !(rc = dump_kv(a, db)) && !(rc = dump_sessions(a, db)))
        rc = dump_memories(a, db);
    return cli_close(a->cmd, db, rc);
}

/* ------------------------------------------------------- get, set, del */

static int cmd_get(const cli_args *a) {
    mmfs_db *db;
    int rc = cli_open(a, 0, &db);
    if (rc) return rc;
    mmfs_slice v;
    const char *key = a->args[1];
    rc = mmfs_get_kv(db, mmfs_str(key), &v);
    if (rc == MMFS_NOTFOUND) {
        fprintf(stderr, "mmfs get: %s: no such key (NOTFOUND)\n", key);
        return cli_close(a->cmd, db, cli_exit_code(rc));
    }
    if (rc) return cli_close(a->cmd, db, cli_fail(a->cmd, db, rc));
    fwrite(v.ptr, 1, v.len, stdout);
    if (cli_opt_has(a, "newline")) fputc('\n', stdout);
    return cli_close(a->cmd, db, 0);
}

/* Reads all of stdin (binary safe) into *BUF. */
static int read_stdin(char **buf, size_t *len) {
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    if (!b) return MMFS_NOMEM;
    for (;;) {
        if (n == cap) {
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return MMFS_NOMEM;
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(b);
        return MMFS_IO;
    }
    *buf = b;
    *len = n;
    return MMFS_OK;
}

static int cmd_set(const cli_args *a) {
    char *buf = NULL;
    mmfs_slice v;
    if (a->nargs == 3) {
        v = mmfs_str(a->args[2]);
    } else {
        /* Read the value before opening, so no lock is held while waiting. */
        size_t n;
        int st = read_stdin(&buf, &n);
        if (st) {
            fprintf(stderr, "mmfs set: reading the value from stdin failed (%s)\n", mmfs_err_name(st));
            return cli_exit_code(st);
        }
        v.ptr = buf;
        v.len = n;
    }
    mmfs_db *db;
    int rc = cli_open(a, 1, &db);
    if (rc) {
        free(buf);
        return rc;
    }
    rc = mmfs_set_kv(db, mmfs_str(a->args[1]), v);
    free(buf);
    return cli_close(a->cmd, db, rc ? cli_fail(a->cmd, db, rc) : 0);
}

static int cmd_del(const cli_args *a) {
    mmfs_db *db;
    int rc = cli_open(a, 1, &db), deleted = 0;
    if (rc) return rc;
    rc = mmfs_delete_kv(db, mmfs_str(a->args[1]), &deleted);
    if (rc) return cli_close(a->cmd, db, cli_fail(a->cmd, db, rc));
    if (!deleted) {
        fprintf(stderr, "mmfs del: %s: no such key (NOTFOUND)\n", a->args[1]);
        return cli_close(a->cmd, db, cli_exit_code(MMFS_NOTFOUND));
    }
    return cli_close(a->cmd, db, 0);
}

/* ---------------------------------------------------------- checkpoint */

static int cmd_checkpoint(const cli_args *a) {
    mmfs_db *db;
    int rc = cli_open(a, 1, &db);
    if (rc) return rc;
    if ((rc = mmfs_checkpoint(db)) != MMFS_OK) return cli_close(a->cmd, db, cli_fail(a->cmd, db, rc));
    if (!cli_opt_has(a, "quiet")) printf("ok\n");
    return cli_close(a->cmd, db, 0);
}

/* -------------------------------------------------------------- search */

static int search_docs(const cli_args *a, mmfs_db *db, size_t limit) {
    mmfs_doc_hits *hits;
    int rc = mmfs_search(db, mmfs_str(a->args[1]), limit, &hits);
    if (rc) return cli_fail(a->cmd, db, rc);
    for (size_t i = 0; i < hits->count; i++) {
        fputs("{\"key\":", stdout);
        cli_json_slice(stdout, hits->items[i].key);
        fputs(",\"score\":", stdout);
        cli_json_double(stdout, hits->items[i].score);
        fputs("}\n", stdout);
    }
    mmfs_free(hits);
    return 0;
}

static int search_memories(const cli_args *a, mmfs_db *db, size_t limit) {
    mmfs_filter f;
    mmfs_slice tags[CLI_MAX_OPTS];
    memset(&f, 0, sizeof f);
    f.limit = limit;
    for (int i = 0; i < a->nopts; i++)
        if (strcmp(a->opts[i].name, "tag") == 0) tags[f.ntags++] = mmfs_str(a->opts[i].value);
    f.tags = tags;
    const char *route = cli_opt_get(a, "route");
    if (route) f.route = mmfs_str(route);
    int rc;
    if ((rc = cli_opt_i64(a, "since", &f.since)) || (rc = cli_opt_i64(a, "before", &f.before))) return rc;
    f.has_since = cli_opt_get(a, "since") != NULL;
    f.has_before = cli_opt_get(a, "before") != NULL;
    mmfs_memories *ms;
    if ((rc = mmfs_search_memory(db, mmfs_str(a->args[1]), &f, &ms))) return cli_fail(a->cmd, db, rc);
    for (size_t i = 0; i < ms->count; i++) {
        cli_json_memory(stdout, &ms->items[i], 1);
        fputc('\n', stdout);
    }
    mmfs_free(ms);
    return 0;
}

static int cmd_search(const cli_args *a) {
    uint64_t limit = 0; /* not given: the library's default */
    int rc = cli_opt_u64(a, "limit", &limit), docs = cli_opt_has(a, "docs");
    if (rc) return rc;
    if (cli_opt_has(a, "limit") && limit == 0) return cli_usage_error(a->cmd, "--limit: at least 1");
    if (docs && (cli_opt_has(a, "tag") || cli_opt_has(a, "route") || cli_opt_has(a, "since") ||
                 cli_opt_has(a, "before")))
        return cli_usage_error(a->cmd, "--docs takes no --tag, --route, --since or --before");
    mmfs_db *db;
    if ((rc = cli_open(a, 0, &db))) return rc;
    rc = docs ? search_docs(a, db, (size_t)limit) : search_memories(a, db, (size_t)limit);
    return cli_close(a->cmd, db, rc);
}

/* ------------------------------------------------------------ sessions */

static int cmd_sessions(const cli_args *a) {
    uint64_t limit = 0;
    int rc = cli_opt_u64(a, "limit", &limit);
    if (rc) return rc;
    mmfs_db *db;
    if ((rc = cli_open(a, 0, &db))) return rc;
    const char *intent = cli_opt_get(a, "intent");
    mmfs_sessions *ss;
    rc = intent ? mmfs_list_by_intent(db, mmfs_str(intent), (size_t)limit, &ss)
                : mmfs_list_sessions(db, (size_t)limit, &ss);
    if (rc) return cli_close(a->cmd, db, cli_fail(a->cmd, db, rc));
    for (size_t i = 0; i < ss->count; i++) {
        cli_json_session(stdout, &ss->items[i]);
        fputc('\n', stdout);
    }
    mmfs_free(ss);
    return cli_close(a->cmd, db, 0);
}

/* ----------------------------------------------------------------- cat */

static int cmd_cat(const cli_args *a) {
    uint64_t offset = 0;
    int rc = cli_opt_u64(a, "offset", &offset);
    if (rc) return rc;
    mmfs_db *db;
    if ((rc = cli_open(a, 0, &db))) return rc;
    mmfs_reader *r;
    if ((rc = mmfs_open_read(db, mmfs_str(a->args[1]), &r)) == MMFS_OK) {
        if (offset) rc = mmfs_reader_seek(r, offset);
        /* Chunks straight from the mapped log: no copy. */
        mmfs_slice chunk;
        while (rc == MMFS_OK && (rc = mmfs_reader_peek(r, &chunk)) == MMFS_OK && chunk.len) {
            if (fwrite(chunk.ptr, 1, chunk.len, stdout) != chunk.len) break;
            rc = mmfs_reader_skip(r, chunk.len);
        }
        mmfs_reader_close(r);
    }
    return cli_close(a->cmd, db, rc ? cli_fail(a->cmd, db, rc) : 0);
}

/* --------------------------------------------------------------- watch */

static void print_state(mmfs_slice v, uint64_t version) {
    printf("{\"version\":%llu,\"value\":", (unsigned long long)version);
    cli_json_slice(stdout, v);
    fputs("}\n", stdout);
    fflush(stdout); /* a reader at the other end of a pipe waits for it */
}

static int cmd_watch(const cli_args *a) {
    uint64_t count = 0, timeout = 0;
    int rc;
    if ((rc = cli_opt_u64(a, "count", &count)) || (rc = cli_opt_u64(a, "timeout", &timeout))) return rc;
    if (timeout > INT32_MAX) return cli_usage_error(a->cmd, "--timeout: at most %d ms", INT32_MAX);
    int tmo = cli_opt_get(a, "timeout") ? (int)timeout : -1;
    mmfs_db *db;
    if ((rc = cli_open(a, 0, &db))) return rc;
    mmfs_sub *s;
    if ((rc = mmfs_subscribe_state(db, &s))) return cli_close(a->cmd, db, cli_fail(a->cmd, db, rc));
    uint64_t seen = 0, version;
    mmfs_slice v;
    if (cli_opt_has(a, "current")) {
        /* The version the subscription started from, or a newer one. */
        if ((rc = mmfs_get_state(db, &v, &version)) == MMFS_OK && version) {
            print_state(v, version);
            seen++;
        }
    }
    while (rc == MMFS_OK && (!count || seen < count)) {
        if ((rc = mmfs_sub_next(s, tmo, &v, &version)) == MMFS_OK) {
            print_state(v, version);
            seen++;
        }
    }
    if (rc == MMFS_TIMEOUT) {
        fprintf(stderr, "mmfs watch: no new state within %d ms (TIMEOUT)\n", tmo);
        rc = cli_exit_code(rc);
    } else if (rc) {
        rc = cli_fail(a->cmd, db, rc);
    }
    mmfs_sub_close(s);
    return cli_close(a->cmd, db, rc);
}

/* ------------------------------------------------------------- the table */

static const char *const no_opts[] = {NULL};
static const char *const stats_opts[] = {"json", NULL};
static const char *const verify_opts[] = {"quiet", NULL};
static const char *const compact_opts[] = {"json", "lock-timeout=", NULL};
static const char *const get_opts[] = {"newline", NULL};
static const char *const write_opts[] = {"create", "lock-timeout=", "compress=", NULL};
static const char *const checkpoint_opts[] = {"quiet", "lock-timeout=", NULL};
/* The help line of write_opts's --lock-timeout, the same for every writing command. */
#define LOCK_TIMEOUT_HELP "  --lock-timeout MS    wait at most MS for the writer lock (then 9, BUSY)\n"
static const char *const search_opts[] = {"limit=", "tag=", "route=", "since=", "before=", "docs", NULL};
static const char *const sessions_opts[] = {"limit=", "intent=", NULL};
static const char *const cat_opts[] = {"offset=", NULL};
static const char *const watch_opts[] = {"count=", "timeout=", "current", NULL};

const cli_command cli_commands[] = {
    {"stats", cmd_stats, 1, 1, stats_opts, "stats STORE [--json]",
     "Prints the store's counts and log positions, one 'name value' line each\n"
     "(memories, kv, sessions, streams, documents, log_bytes, live_bytes,\n"
     "dead_bytes, lsn, durable_lsn, state_version, segments, checkpoint_lsn,\n"
     "compacting, index_segments).\n"
     "  --json               one JSON object instead\n"},
    {"verify", cmd_verify, 1, 1, verify_opts, "verify STORE [--quiet]",
     "Re-reads every frame of the log and checks its checksum.  Prints 'ok'\n"
     "and exits 0, or names the damaged segment and offset on stderr and exits\n"
     "4 (CORRUPT).  Read-only: nothing is cut or repaired.\n"
     "  --quiet              print nothing on success\n"},
    {"compact", cmd_compact, 1, 1, compact_opts, "compact STORE [--json]",
     "Rewrites the log without what the store no longer needs (deleted and\n"
     "overwritten entries, memories past their route's ttl or refused by the\n"
     "policy's compaction.keep) and prints bytes_before, bytes_after, kept,\n"
     "dropped (records) and ms.  Holds the writer lock while it runs.\n"
     "  --json               one JSON object instead\n"
     LOCK_TIMEOUT_HELP},
    {"dump", cmd_dump, 1, 1, no_opts, "dump STORE",
     "Writes the store's contents as JSON lines: the state, the policy, every\n"
     "key-value (in key order), every session (newest first), every memory\n"
     "(newest first).  Each line is {\"type\": ..., ...}; a byte string that is\n"
     "not UTF-8 is written as {\"base64\": \"...\"}.  See docs/cli.md.\n"},
    {"get", cmd_get, 2, 2, get_opts, "get STORE KEY [--newline]",
     "Writes KEY's value to stdout, byte for byte.  Exits 1 (NOTFOUND) when\n"
     "there is no such key.\n"
     "  --newline            add a newline after the value\n"},
    {"set", cmd_set, 2, 3, write_opts, "set STORE KEY [VALUE] [--create [--compress zstd]]",
     "Sets KEY to VALUE, or to all of stdin when VALUE is left out (binary\n"
     "safe).  Durable when mmfs returns.\n"
     "  --create             create the store if it does not exist\n"
     "  --compress C         the new store's compress option (none, zstd: memory\n"
     "                       texts compressed); on an existing store its own\n"
     LOCK_TIMEOUT_HELP},
    {"del", cmd_del, 2, 2, write_opts, "del STORE KEY",
     "Deletes KEY.  Exits 1 (NOTFOUND), writing nothing, when there was no\n"
     "such key.\n"
     LOCK_TIMEOUT_HELP},
    {"checkpoint", cmd_checkpoint, 1, 1, checkpoint_opts, "checkpoint STORE [--quiet]",
     "Writes a checkpoint of the store (ROOT/ckpt/), so that later opens map it\n"
     "and replay only the log after it.  Prints 'ok'.  Opens the store for\n"
     "writing (recovery may cut a torn tail) but adds nothing to the log.\n"
     "  --quiet              print nothing on success\n"
     LOCK_TIMEOUT_HELP},
    {"search", cmd_search, 2, 2, search_opts, "search STORE QUERY [--limit N] [--tag T]... [--docs]",
     "Full-text search (the query language of docs/api.md), best first, one\n"
     "JSON line per hit: memories {id, score, created_at, route, tags, text},\n"
     "with --docs documents {key, score}.  No hits is not an error.\n"
     "  --limit N            at most N hits (default 20)\n"
     "  --tag T              only memories with tag T (repeat: all of them)\n"
     "  --route R            only memories of route R\n"
     "  --since T            only memories created at or after unix time T\n"
     "  --before T           only memories created before unix time T\n"
     "  --docs               search documents instead of memories\n"},
    {"sessions", cmd_sessions, 1, 1, sessions_opts, "sessions STORE [--intent ID] [--limit N]",
     "Lists sessions newest first, one JSON object per line with every field.\n"
     "  --intent ID          only the sessions of intent ID\n"
     "  --limit N            at most N (default: all)\n"},
    {"cat", cmd_cat, 2, 2, cat_opts, "cat STORE STREAM [--offset N]",
     "Writes stream STREAM to stdout, byte for byte, as it is when cat starts.\n"
     "Exits 1 (NOTFOUND) when there is no such stream.\n"
     "  --offset N           start at byte N (2, INVALID, past the end)\n"},
    {"watch", cmd_watch, 1, 1, watch_opts, "watch STORE [--count N] [--timeout MS] [--current]",
     "Prints each change of the store's state as it happens, one JSON line\n"
     "{version, value} each, flushed at once; changes by any process count.\n"
     "Versions that follow each other quickly may be skipped (the latest is\n"
     "always printed).  Runs until interrupted unless limited:\n"
     "  --count N            exit 0 after N lines\n"
     "  --timeout MS         exit 12 (TIMEOUT) after MS without a change\n"
     "  --current            first print the current state (if any)\n"},
    {NULL, NULL, 0, 0, NULL, NULL, NULL},
};
