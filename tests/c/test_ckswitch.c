/*
** test_ckswitch.c: a long-lived handle moves to a newer checkpoint
** (store/recover.c, mmfs__ckpt_switch; store/db.c's catch-up).
**
** A reader opened on an empty store follows a writer (another handle of
** this process, or a forked child) that writes with a small
** checkpoint_bytes: after it caught up, it maps the newest checkpoint (as
** a fresh open does), answers every read as a fresh open does, and its
** heap stays bounded.  What it handed out before a switch stays readable
** after it (run under ASan and valgrind), subscriptions, iterators and
** stream readers carry on, and a damaged newer checkpoint is never
** switched to.
*/
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PS(x) (int)(x).len, (const char *)(x).ptr

#define NKEYS 500
#define NSESS 200
#define NSTREAMS 3
#define NDOCS 50

static const char *WORDS[] = {"apple", "river", "stone", "cloud", "ember", "frost", "grove", "harbor",
                              "island", "jungle", "kettle", "lantern"};
#define NWORDS (sizeof WORDS / sizeof *WORDS)

/* Valgrind runs with MMFS_TEST_TIME_SCALE set: fewer operations there. */
static unsigned scale(void) {
    const char *s = getenv("MMFS_TEST_TIME_SCALE");
    unsigned v = s && *s ? (unsigned)strtoul(s, NULL, 10) : 1;
    return v ? v : 1;
}

static mmfs_options opts(uint64_t checkpoint_bytes) {
    mmfs_options o = mmfs_test_options(1u << 20); /* small segments: the replay crosses seals */
    o.checkpoint_bytes = checkpoint_bytes;
    return o;
}

/* Operation I of the workload: mostly memories, with kv, sessions,
** streams, documents, deletes and state among them. */
static void write_op(mmfs_db *db, uint64_t i) {
    char text[160], k[32], v[48];
    mmfs_slice tags[2];
    char t0[8], t1[8];
    snprintf(text, sizeof text, "%s %s note %llu about %s", WORDS[i % NWORDS], WORDS[(i / 7) % NWORDS],
             (unsigned long long)(i % 1009), WORDS[(i / 13) % NWORDS]);
    snprintf(t0, sizeof t0, "t%llu", (unsigned long long)(i % 3));
    snprintf(t1, sizeof t1, "u%llu", (unsigned long long)(i % 5));
    tags[0] = mmfs_str(t0);
    tags[1] = mmfs_str(t1);
    mmfs_memory_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.has_created_at = 1;
    mo.created_at = 1000000 + (int64_t)(i % 400); /* ties, broken by id */
    mo.route = mmfs_str(i % 4 == 0 ? "notes" : "");
    MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str(text), tags, 1 + i % 2, &mo, NULL));
    if (i % 4 == 0) {
        snprintf(k, sizeof k, "k/%03llu", (unsigned long long)(i % NKEYS));
        snprintf(v, sizeof v, "value %llu", (unsigned long long)i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(k), mmfs_str(v)));
    }
    if (i % 9 == 0) {
        snprintf(k, sizeof k, "k/%03llu", (unsigned long long)((i / 9) % NKEYS));
        MMFS_OK_OR_FAIL(mmfs_delete_kv(db, mmfs_str(k), NULL));
    }
    if (i % 10 == 0) {
        char id[16], in[8], pl[32];
        snprintf(id, sizeof id, "s%03llu", (unsigned long long)((i / 10) % NSESS));
        snprintf(in, sizeof in, "i%llu", (unsigned long long)(i % 3));
        snprintf(pl, sizeof pl, "payload %llu", (unsigned long long)i);
        mmfs_session s;
        memset(&s, 0, sizeof s);
        s.id = mmfs_str(id);
        s.has_intent = 1;
        s.intent_id = mmfs_str(in);
        s.has_created_at = 1;
        s.created_at = 2000 + (int64_t)(i % 17);
        s.has_payload = 1;
        s.payload = mmfs_str(pl);
        MMFS_OK_OR_FAIL(mmfs_put_session(db, &s));
    }
    if (i % 50 == 0) {
        snprintf(k, sizeof k, "st%llu", (unsigned long long)(i % NSTREAMS));
        snprintf(v, sizeof v, "<%llu>", (unsigned long long)i);
        MMFS_OK_OR_FAIL(mmfs_append_stream(db, mmfs_str(k), mmfs_str(v)));
    }
    if (i % 100 == 0) {
        snprintf(k, sizeof k, "d%02llu", (unsigned long long)((i / 100) % NDOCS));
        MMFS_OK_OR_FAIL(mmfs_index(db, mmfs_str(k), mmfs_str(text)));
    }
    if (i % 20 == 19) MMFS_OK_OR_FAIL(mmfs_delete_memory(db, i - 5, NULL));
    if (i % 1000 == 0) {
        snprintf(v, sizeof v, "state at %llu", (unsigned long long)i);
        MMFS_OK_OR_FAIL(mmfs_update_state(db, mmfs_str(v), NULL));
    }
}

/* Writes ids of MS with their scores (SCORES) and frees MS. */
static void put_list(FILE *out, mmfs_memories *ms, int scores) {
    fprintf(out, " %zu:", ms->count);
    for (size_t i = 0; i < ms->count; i++) {
        fprintf(out, " %llu", (unsigned long long)ms->items[i].id);
        if (scores) fprintf(out, "/%.6f", ms->items[i].score);
    }
    fputc('\n', out);
    mmfs_free(ms);
}

/* Everything DB answers, as text (search hits with their scores: the
** handles compared map the same checkpoint). */
static char *dump(mmfs_db *db) {
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    mmfs_store_stats st = mmfs_test_stats(db);
    fprintf(out, "stats mem=%llu kv=%llu sess=%llu streams=%llu docs=%llu live=%llu lsn=%llu state=%llu\n",
            (unsigned long long)st.memories, (unsigned long long)st.kv, (unsigned long long)st.sessions,
            (unsigned long long)st.streams, (unsigned long long)st.documents, (unsigned long long)st.live_bytes,
            (unsigned long long)st.lsn, (unsigned long long)st.state_version);
    char k[32];
    for (int i = 0; i < NKEYS; i++) {
        mmfs_slice v;
        snprintf(k, sizeof k, "k/%03d", i);
        int rc = mmfs_get_kv(db, mmfs_str(k), &v);
        if (rc == MMFS_OK) fprintf(out, "get %s=%.*s\n", k, PS(v));
        else fprintf(out, "get %s: %s\n", k, mmfs_err_name(rc));
    }
    mmfs_kv_iter *it;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_open(db, mmfs_str("k/1"), &it));
    mmfs_slice key, val;
    fprintf(out, "scan:");
    while (mmfs_kv_iter_next(it, &key, &val) == MMFS_OK) fprintf(out, " %.*s=%.*s", PS(key), PS(val));
    fputc('\n', out);
    mmfs_kv_iter_close(it);
    for (uint64_t id = 1; id <= st.lsn; id += 1 + id / 64) {
        mmfs_memory *m;
        if (mmfs_get_memory(db, id, &m) != MMFS_OK) continue;
        fprintf(out, "mem %llu %lld %.*s %.*s", (unsigned long long)m->id, (long long)m->created_at, PS(m->route),
                PS(m->text));
        for (size_t t = 0; t < m->ntags; t++) fprintf(out, " #%.*s", PS(m->tags[t]));
        fputc('\n', out);
        mmfs_free(m);
    }
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 1000000;
    mmfs_memories *ms;
    MMFS_OK_OR_FAIL(mmfs_list_memories(db, &f, &ms));
    fprintf(out, "list");
    put_list(out, ms, 0);
    mmfs_slice tag = mmfs_str("u3");
    f.tags = &tag;
    f.ntags = 1;
    f.route = mmfs_str("notes");
    MMFS_OK_OR_FAIL(mmfs_list_memories(db, &f, &ms));
    fprintf(out, "list u3 notes");
    put_list(out, ms, 0);
    memset(&f, 0, sizeof f);
    f.limit = 50;
    for (size_t w = 0; w < NWORDS; w++) {
        MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str(WORDS[w]), &f, &ms));
        fprintf(out, "search %s", WORDS[w]);
        put_list(out, ms, 1);
        mmfs_doc_hits *dh;
        MMFS_OK_OR_FAIL(mmfs_search(db, mmfs_str(WORDS[w]), 100, &dh));
        fprintf(out, "docs %s:", WORDS[w]);
        for (size_t i = 0; i < dh->count; i++) fprintf(out, " %.*s/%.6f", PS(dh->items[i].key), dh->items[i].score);
        fputc('\n', out);
        mmfs_free(dh);
    }
    MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str("\"river note\" OR (apple AND tag:t1)"), &f, &ms));
    fprintf(out, "search query");
    put_list(out, ms, 1);
    mmfs_sessions *ss;
    MMFS_OK_OR_FAIL(mmfs_list_sessions(db, 0, &ss));
    fprintf(out, "sessions:");
    for (size_t i = 0; i < ss->count; i++) fprintf(out, " %.*s=%.*s", PS(ss->items[i].id), PS(ss->items[i].payload));
    fputc('\n', out);
    mmfs_free(ss);
    MMFS_OK_OR_FAIL(mmfs_list_by_intent(db, mmfs_str("i1"), 0, &ss));
    fprintf(out, "intent i1: %zu\n", ss->count);
    mmfs_free(ss);
    for (int i = 0; i < NSTREAMS; i++) {
        char name[16];
        snprintf(name, sizeof name, "st%d", i);
        mmfs_reader *r;
        if (mmfs_open_read(db, mmfs_str(name), &r) != MMFS_OK) continue;
        char b[4096];
        size_t got;
        fprintf(out, "stream %s %llu:", name, (unsigned long long)mmfs_reader_size(r));
        while (mmfs_reader_read(r, b, sizeof b, &got) == MMFS_OK && got) fwrite(b, 1, got, out);
        fputc('\n', out);
        mmfs_reader_close(r);
    }
    mmfs_slice sv;
    uint64_t ver;
    MMFS_OK_OR_FAIL(mmfs_get_state(db, &sv, &ver));
    fprintf(out, "state %llu %.*s\n", (unsigned long long)ver, PS(sv));
    fclose(out);
    return buf;
}

/* DB answers as a handle opened now on DIR does, and maps the same
** checkpoint (not none). */
static void assert_as_fresh(mmfs_db *db, const char *dir) {
    mmfs_options o = opts(0);
    o.readonly = 1;
    mmfs_db *fresh = mmfs_test_open(dir, &o);
    uint64_t want = mmfs_test_stats(fresh).checkpoint_lsn;
    assert_true(want > 0);
    assert_int_equal(mmfs_test_stats(db).checkpoint_lsn, want);
    assert_int_equal(mmfs_test_stats(db).index_segments, mmfs_test_stats(fresh).index_segments);
    char *a = dump(db), *b = dump(fresh);
    mmfs_test_assert_same_text(a, b, "the handle after switching vs a fresh open");
    free(a);
    free(b);
    MMFS_OK_OR_FAIL(mmfs_close(fresh));
}

/* A read of the kind a long-lived handle makes: it catches up. */
static void some_reads(mmfs_db *db, uint64_t i) {
    mmfs_slice v;
    char k[32];
    snprintf(k, sizeof k, "k/%03llu", (unsigned long long)(i % NKEYS));
    int rc = mmfs_get_kv(db, mmfs_str(k), &v);
    assert_true(rc == MMFS_OK || rc == MMFS_NOTFOUND);
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 5;
    mmfs_memories *ms;
    MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str(WORDS[i % NWORDS]), &f, &ms));
    mmfs_free(ms);
}

/* Bytes of heap in use in the process (every arena), after giving back
** what is free; 0 where malloc is not glibc's (valgrind, ASan). */
static size_t heap_in_use(void) {
    malloc_trim(0);
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* ------------------------------------------------------------- tests */

/* A reader and a writer handle in this process: the reader switches
** several times while it reads, and so does the writer (its own
** checkpoints); both end as a fresh open. */
static void test_follow_in_process(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckswitch-follow");
    mmfs_options wo = opts((128u << 10) / scale());
    mmfs_db *w = mmfs_test_open(dir, &wo);
    mmfs_options ro = opts(0);
    mmfs_db *r = mmfs_test_open(dir, &ro);
    assert_int_equal(mmfs_test_stats(r).checkpoint_lsn, 0);
    uint64_t n = 20000 / scale(), seen = 0, switches = 0, every = 250 / scale() + 1;
    for (uint64_t i = 1; i <= n; i++) {
        write_op(w, i);
        if (i % every == 0) {
            some_reads(r, i);
            uint64_t c = mmfs_test_stats(r).checkpoint_lsn;
            assert_true(c >= seen);
            if (c != seen) switches++;
            seen = c;
        }
    }
    MMFS_OK_OR_FAIL(mmfs_checkpoint(w));
    MMFS_OK_OR_FAIL(mmfs_refresh(r));
    MMFS_OK_OR_FAIL(mmfs_refresh(w));
    assert_true(switches >= 2);
    assert_as_fresh(r, dir);
    assert_as_fresh(w, dir);
    MMFS_OK_OR_FAIL(mmfs_close(r));
    MMFS_OK_OR_FAIL(mmfs_close(w));
    mmfs_test_rmdir(dir);
}

/* A forked child writes 50k memories with kv, sessions, streams and
** documents; the parent's reader, opened on the empty store, reads
** throughout.  At the end it answers as a fresh open, and its heap grew
** by far less than the child's writes take without switching (measured:
** 4.2 MB without the switch, 0.15 MB with it). */
static void test_follow_forked_writer(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckswitch-fork");
    mmfs_options ro = opts(0);
    mmfs_db *r = mmfs_test_open(dir, &ro);
    size_t h0 = heap_in_use();
    uint64_t n = 50000 / scale();
    int pfd[2];
    pid_t pid = mmfs_test_fork_piped(pfd);
    if (pid == 0) {
        mmfs_options wo = opts((1u << 20) / scale());
        mmfs_db *w = NULL;
        int ok = mmfs_open(dir, &wo, &w) == MMFS_OK;
        for (uint64_t i = 1; ok && i <= n; i++) write_op(w, i);
        ok = ok && mmfs_checkpoint(w) == MMFS_OK && mmfs_close(w) == MMFS_OK;
        _exit(ok ? 0 : 1);
    }
    close(pfd[0]);
    uint64_t i = 0, switches = 0, seen = 0;
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        some_reads(r, ++i);
        uint64_t c = mmfs_test_stats(r).checkpoint_lsn;
        if (c != seen) switches++;
        seen = c;
        usleep(2000);
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    MMFS_OK_OR_FAIL(mmfs_refresh(r));
    assert_true(switches >= 2);
    assert_int_equal(mmfs_test_stats(r).memories, n - n / 20);
    assert_as_fresh(r, dir);
    size_t h1 = heap_in_use();
    if (h0 && h1) {
        print_message("reader heap: %zu KiB before, %zu KiB after %llu writes\n", h0 >> 10, h1 >> 10,
                      (unsigned long long)n);
        assert_true(h1 < h0 + ((size_t)1 << 20));
    }
    MMFS_OK_OR_FAIL(mmfs_close(r));
    mmfs_test_rmdir(dir);
}

/* The newest file of DIR/ckpt (its LSN in *LSN), as a path. */
static void newest_ckpt(const char *dir, char *path, size_t len, uint64_t *lsn) {
    assert_true(len >= 4400);
    char d[2048];
    assert_true(strlen(dir) < sizeof d - 8);
    snprintf(d, sizeof d, "%s/ckpt", dir);
    DIR *dh = opendir(d);
    assert_non_null(dh);
    *lsn = 0;
    for (struct dirent *e; (e = readdir(dh));) {
        unsigned long long v;
        char tail[8];
        if (sscanf(e->d_name, "%20llu.%7s", &v, tail) == 2 && !strcmp(tail, "ckpt") && v > *lsn) {
            *lsn = v;
            snprintf(path, len, "%s/%s", d, e->d_name);
        }
    }
    closedir(dh);
    assert_true(*lsn > 0);
}

/* Slices, lists, an iterator, a stream reader and a subscription made
** before two switches stay valid and working after them. */
static void test_handed_out_survive(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckswitch-slices");
    mmfs_options wo = opts(0);
    mmfs_db *w = mmfs_test_open(dir, &wo);
    mmfs_options ro = opts(0);
    mmfs_db *r = mmfs_test_open(dir, &ro);
    for (uint64_t i = 1; i <= 600; i++) write_op(w, i);
    MMFS_OK_OR_FAIL(mmfs_set_kv(w, mmfs_str("held"), mmfs_str("the held value")));
    MMFS_OK_OR_FAIL(mmfs_append_stream(w, mmfs_str("held"), mmfs_str("first chunk;")));
    MMFS_OK_OR_FAIL(mmfs_append_stream(w, mmfs_str("held"), mmfs_str("second chunk")));
    MMFS_OK_OR_FAIL(mmfs_update_state(w, mmfs_str("held state"), NULL));
    MMFS_OK_OR_FAIL(mmfs_checkpoint(w));
    MMFS_OK_OR_FAIL(mmfs_refresh(r));
    uint64_t c1 = mmfs_test_stats(r).checkpoint_lsn;
    assert_true(c1 > 0); /* the first switch: from the log to a checkpoint */

    mmfs_slice kv, stv, peek;
    uint64_t ver;
    MMFS_OK_OR_FAIL(mmfs_get_kv(r, mmfs_str("held"), &kv));
    MMFS_OK_OR_FAIL(mmfs_get_state(r, &stv, &ver));
    mmfs_memory *m;
    MMFS_OK_OR_FAIL(mmfs_get_memory(r, 7, &m));
    char text7[160];
    snprintf(text7, sizeof text7, "%.*s", PS(m->text));
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 10;
    mmfs_memories *hits;
    MMFS_OK_OR_FAIL(mmfs_search_memory(r, mmfs_str("river"), &f, &hits));
    assert_true(hits->count > 0);
    mmfs_session sess;
    MMFS_OK_OR_FAIL(mmfs_get_session(r, mmfs_str("s001"), &sess));
    char pay[64];
    snprintf(pay, sizeof pay, "%.*s", PS(sess.payload));
    mmfs_reader *rd;
    MMFS_OK_OR_FAIL(mmfs_open_read(r, mmfs_str("held"), &rd));
    MMFS_OK_OR_FAIL(mmfs_reader_peek(rd, &peek));
    mmfs_kv_iter *it;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_open(r, mmfs_str("k/"), &it));
    mmfs_slice ik, iv;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_next(it, &ik, &iv));
    mmfs_sub *sub, *sub2;
    MMFS_OK_OR_FAIL(mmfs_subscribe_state(r, &sub));
    MMFS_OK_OR_FAIL(mmfs_subscribe_state(r, &sub2));

    /* Two more switches: the first leaves the subscriptions' engine as a
    ** husk; after sub2 and sub close, the next one frees it. */
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 1000 + 500 * (uint64_t)round; i < 1300 + 500 * (uint64_t)round; i++) write_op(w, i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(w, mmfs_str("held"), mmfs_str("overwritten")));
        MMFS_OK_OR_FAIL(mmfs_checkpoint(w));
        char path[4400];
        uint64_t newest;
        newest_ckpt(dir, path, sizeof path, &newest);
        assert_true(newest > c1);
        MMFS_OK_OR_FAIL(mmfs_refresh(r)); /* (the watcher thread may have switched already) */
        assert_int_equal(mmfs_test_stats(r).checkpoint_lsn, newest);
        c1 = newest;
        char v[32];
        snprintf(v, sizeof v, "after switch %d", round);
        MMFS_OK_OR_FAIL(mmfs_update_state(w, mmfs_str(v), NULL));
        mmfs_slice got;
        uint64_t gv;
        mmfs_sub *s = round == 0 ? sub2 : sub;
        MMFS_OK_OR_FAIL(mmfs_sub_next(s, 5000, &got, &gv));
        MMFS_ASSERT_SLICE_STR(got, v);
        if (round == 0) {
            assert_true(mmfs_sub_fd(sub) >= 0);
            mmfs_sub_close(sub2);
        }
    }
    mmfs_sub_close(sub);

    /* Everything handed out before still reads as it did. */
    MMFS_ASSERT_SLICE_STR(kv, "the held value");
    MMFS_ASSERT_SLICE_STR(stv, "held state");
    MMFS_ASSERT_SLICE_STR(peek, "first chunk;");
    MMFS_ASSERT_SLICE_STR(m->text, text7);
    MMFS_ASSERT_SLICE_STR(sess.payload, pay);
    for (size_t i = 0; i < hits->count; i++) assert_non_null(strstr((const char *)hits->items[i].text.ptr, "river"));
    mmfs_free(m);
    mmfs_free(hits);
    char all[64];
    size_t got;
    MMFS_OK_OR_FAIL(mmfs_reader_read(rd, all, sizeof all, &got));
    assert_int_equal(got, 24);
    assert_memory_equal(all, "first chunk;second chunk", 24);
    mmfs_reader_close(rd);
    size_t more = 0;
    while (mmfs_kv_iter_next(it, &ik, &iv) == MMFS_OK) more++;
    assert_true(more > 100);
    mmfs_kv_iter_close(it);
    MMFS_OK_OR_FAIL(mmfs_get_kv(r, mmfs_str("held"), &kv));
    MMFS_ASSERT_SLICE_STR(kv, "overwritten");
    assert_as_fresh(r, dir);
    MMFS_OK_OR_FAIL(mmfs_close(r));
    MMFS_OK_OR_FAIL(mmfs_close(w));
    mmfs_test_rmdir(dir);
}

/* A newer checkpoint that is damaged (a byte flipped in its header, one
** in a block read only when used, or cut short) is not switched to: the
** reader keeps the one it maps and answers as a fresh open that falls
** back past the damaged file does.  Read-only and writable readers. */
static void test_damaged_newer(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        for (int readonly = 0; readonly < 2; readonly++) {
            char *dir = mmfs_test_dir("ckswitch-damage");
            mmfs_options wo = opts(0);
            mmfs_db *w = mmfs_test_open(dir, &wo);
            mmfs_options ro = opts(0);
            ro.readonly = readonly;
            mmfs_db *r = mmfs_test_open(dir, &ro);
            for (uint64_t i = 1; i <= 2000; i++) write_op(w, i);
            MMFS_OK_OR_FAIL(mmfs_checkpoint(w));
            MMFS_OK_OR_FAIL(mmfs_refresh(r));
            uint64_t good = mmfs_test_stats(r).checkpoint_lsn;
            assert_true(good > 0);
            for (uint64_t i = 2001; i <= 2600; i++) write_op(w, i);
            MMFS_OK_OR_FAIL(mmfs_checkpoint(w));
            char path[4400];
            uint64_t bad;
            newest_ckpt(dir, path, sizeof path, &bad);
            assert_true(bad > good);
            int fd = open(path, O_RDWR);
            assert_true(fd >= 0);
            struct stat st;
            assert_int_equal(fstat(fd, &st), 0);
            if (kind == 2) {
                assert_int_equal(ftruncate(fd, st.st_size - 100), 0);
            } else {
                off_t at = kind == 0 ? 20 : 512 + (st.st_size - 512) / 3;
                uint8_t b;
                assert_int_equal(pread(fd, &b, 1, at), 1);
                b ^= 0x5a;
                assert_int_equal(pwrite(fd, &b, 1, at), 1);
            }
            close(fd);
            for (uint64_t i = 2601; i <= 2700; i++) write_op(w, i);
            MMFS_OK_OR_FAIL(mmfs_refresh(r));
            assert_int_equal(mmfs_test_stats(r).checkpoint_lsn, good);
            assert_int_equal(mmfs_test_stats(r).lsn, mmfs_test_stats(w).lsn);
            /* What a fresh open answers once the damaged file is out of
            ** the way (a writable reader's check already removed it). */
            unlink(path);
            assert_as_fresh(r, dir);
            MMFS_OK_OR_FAIL(mmfs_close(r));
            MMFS_OK_OR_FAIL(mmfs_close(w));
            mmfs_test_rmdir(dir);
        }
    }
}

/* Another handle compacts the store (ending with a checkpoint of the new
** log): a follower rebuilds from the new log when it catches up, then
** moves to the compaction's checkpoint, and answers as a fresh open. */
static void test_follow_compaction(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckswitch-compact");
    mmfs_options wo = opts((uint64_t)1 << 30); /* on, but never due: compaction's own checkpoint */
    mmfs_db *w = mmfs_test_open(dir, &wo);
    mmfs_options ro = opts(0);
    mmfs_db *r = mmfs_test_open(dir, &ro);
    for (uint64_t i = 1; i <= 1500; i++) write_op(w, i);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(w));
    MMFS_OK_OR_FAIL(mmfs_refresh(r));
    uint64_t before = mmfs_test_stats(r).checkpoint_lsn;
    assert_true(before > 0);
    mmfs_compact_result res;
    MMFS_OK_OR_FAIL(mmfs_compact(w, NULL, &res));
    assert_true(res.dropped > 0);
    for (uint64_t i = 1501; i <= 1600; i++) write_op(w, i);
    MMFS_OK_OR_FAIL(mmfs_refresh(r));
    /* The compaction's checkpoint has the LSN of the one before (it adds
    ** none), in the new log: a rebuild alone would leave 0 here. */
    assert_int_equal(mmfs_test_stats(r).checkpoint_lsn, before);
    assert_as_fresh(r, dir);
    MMFS_OK_OR_FAIL(mmfs_close(r));
    MMFS_OK_OR_FAIL(mmfs_close(w));
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follow_in_process),
        cmocka_unit_test(test_follow_forked_writer),
        cmocka_unit_test(test_handed_out_survive),
        cmocka_unit_test(test_damaged_newer),
        cmocka_unit_test(test_follow_compaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
