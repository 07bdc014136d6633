/*
** w5_sessions.c: W5 for sessions, streams and documents: open + the first
** session get on a store of N sessions, N documents and N / 100 streams
** of 10 chunks, with a checkpoint, and the heap (RssAnon) after.  A
** checkpoint that maps them makes open independent of N; one that applies
** them again at open (format 2) grows with N.  Public API only, so the
** same file builds against an older library for a before/after figure.
**
**   w5_sessions prep DIR N        makes the store and its checkpoint (not timed)
**   w5_sessions open DIR N SYSTEM open + get_session of one id (wall and
**                                 this thread's CPU time); RssAnon after; then
**                                 the first document search
*/
#include "benchutil.h"
#include "memmapfs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(int rc, const char *what) {
    if (rc != MMFS_OK) bu_die("%s: %s", what, mmfs_strerror(rc));
}

static mmfs_db *open_dir(const char *dir) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.checkpoint_bytes = 0; /* the checkpoint prep wrote is the one used */
    o.sync = MMFS_SYNC_NONE;
    mmfs_db *db = NULL;
    check(mmfs_open(dir, &o, &db), "open");
    return db;
}

static const char *const WORDS[] = {"coffee", "tea", "morning", "meeting", "notes", "plan", "agent", "memory"};

static void prep(const char *dir, long n) {
    bu_rmtree(dir);
    mmfs_db *db = open_dir(dir);
    mmfs_batch *b = NULL;
    char id[32], in[32], pl[64], key[32], text[128];
    for (long i = 0; i < n; i++) {
        if (!b) check(mmfs_batch_begin(db, &b), "batch");
        mmfs_session s;
        memset(&s, 0, sizeof s);
        snprintf(id, sizeof id, "s%ld", i);
        snprintf(in, sizeof in, "i%ld", i % (n / 10 + 1));
        snprintf(pl, sizeof pl, "payload of session %ld", i);
        s.id = mmfs_str(id);
        s.has_intent = 1;
        s.intent_id = mmfs_str(in);
        s.has_created_at = 1;
        s.created_at = 1700000000 + i;
        s.has_payload = 1;
        s.payload = mmfs_str(pl);
        check(mmfs_batch_put_session(b, &s), "put_session");
        snprintf(key, sizeof key, "d%ld", i);
        snprintf(text, sizeof text, "%s %s document %ld", WORDS[i % 8], WORDS[(i / 8) % 8], i);
        check(mmfs_batch_index(b, mmfs_str(key), mmfs_str(text)), "index");
        if (i % 10 == 0) {
            snprintf(key, sizeof key, "st%ld", (i / 10) % (n / 100 + 1));
            check(mmfs_batch_append_stream(b, mmfs_str(key), mmfs_str(pl)), "append_stream");
        }
        if (i % 1000 == 999) {
            check(mmfs_batch_commit(b, NULL, NULL), "commit");
            b = NULL;
        }
    }
    if (b) check(mmfs_batch_commit(b, NULL, NULL), "commit");
    double t0 = bu_now();
    check(mmfs_checkpoint(db), "checkpoint");
    fprintf(stderr, "w5_sessions prep: checkpoint written in %.1f ms\n", (bu_now() - t0) * 1e3);
    check(mmfs_close(db), "close");
}

static void open_get(const char *dir, long n, const char *system) {
    uint64_t rss0, anon0, rss1, anon1;
    bu_rss(&rss0, &anon0);
    char id[32];
    snprintf(id, sizeof id, "s%ld", n / 2);
    double t0 = bu_now(), c0 = bu_cpu_now();
    mmfs_db *db = open_dir(dir);
    mmfs_session s;
    check(mmfs_get_session(db, mmfs_str(id), &s), "get_session");
    double dt = bu_now() - t0, dc = bu_cpu_now() - c0;
    bu_rss(&rss1, &anon1);
    mmfs_store_stats st;
    check(mmfs_stats(db, &st), "stats");
    if (!st.checkpoint_lsn || st.sessions != (uint64_t)n) bu_die("not opened from a checkpoint of %ld sessions", n);
    bu_result("W5S", system, "open_first_session_get_ms", dt * 1e3, "ms");
    /* the machine is shared: the CPU time of this thread says more */
    bu_result("W5S", system, "open_first_session_get_cpu_ms", dc * 1e3, "ms");
    bu_result("W5S", system, "rss_anon_after_open_get_mb", (double)(anon1 - anon0) / 1048576.0, "MiB");
    t0 = bu_now();
    mmfs_doc_hits *h;
    check(mmfs_search(db, mmfs_str("coffee"), 10, &h), "search");
    mmfs_free(h);
    bu_result("W5S", system, "first_document_search_ms", (bu_now() - t0) * 1e3, "ms");
    check(mmfs_close(db), "close");
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "prep")) prep(argv[2], atol(argv[3]));
    else if (argc >= 5 && !strcmp(argv[1], "open")) open_get(argv[2], atol(argv[3]), argv[4]);
    else bu_die("usage: w5_sessions prep DIR N | open DIR N SYSTEM");
    return 0;
}
