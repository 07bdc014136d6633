/*
** test_ckpt.c: checkpoints (store/ckpt*.c and the mapped kv tables in
** kv.c).  The model test runs random operations of every kind with
** checkpoints and reopens in between, and checks that a handle opened
** from the newest checkpoint, one opened from the log alone and the
** writer's own handle answer every read alike.  The damage tests flip,
** truncate, misdate and transplant checkpoint files: open must fall back
** to an older checkpoint or to the log, never answer from a bad one.
*/
#include "testutil.h"

#include "checksum.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* printf arguments for "%.*s" of a slice. */
#define PS(x) (int)(x).len, (const char *)(x).ptr

/* ------------------------------------------------------------ dumping */

#define NKEYS 48
#define NSESS 24
#define NSTREAMS 6
#define NDOCS 12

static const char *WORDS[] = {"apple", "river", "stone", "cloud", "ember", "frost", "grove", "harbor"};

static void key_name(char *buf, size_t len, int i) {
    /* Two prefixes, so that scans over a prefix cross both layers. */
    snprintf(buf, len, "%s%02d", i % 3 ? "k/" : "p/", i);
}

/* Writes memory M to OUT as a "mem" line and frees it. */
static void put_memory(FILE *out, mmfs_memory *m) {
    fprintf(out, "mem id=%llu at=%lld route=%.*s text=%.*s tags=", (unsigned long long)m->id,
            (long long)m->created_at, PS(m->route), PS(m->text));
    for (size_t t = 0; t < m->ntags; t++) fprintf(out, "%.*s,", PS(m->tags[t]));
    fputc('\n', out);
    mmfs_free(m);
}

static int cmp_id(const void *a, const void *b) {
    uint64_t x = ((const mmfs_memory *)a)->id, y = ((const mmfs_memory *)b)->id;
    return x < y ? -1 : x > y;
}

/* Writes the ids of MS to OUT, then a newline, and frees MS. */
static void put_id_list(FILE *out, mmfs_memories *ms) {
    for (size_t i = 0; i < ms->count; i++) fprintf(out, " %llu", (unsigned long long)ms->items[i].id);
    fputc('\n', out);
    mmfs_free(ms);
}

/* The memories of DB that F selects with its tags set to TAG alone (F's
** tags are unset again after). */
static mmfs_memories *list_tag(mmfs_db *db, mmfs_filter *f, const char *tag) {
    mmfs_slice ts = mmfs_str(tag);
    f->tags = &ts;
    f->ntags = 1;
    mmfs_memories *ms;
    MMFS_OK_OR_FAIL(mmfs_list_memories(db, f, &ms));
    f->tags = NULL;
    f->ntags = 0;
    return ms;
}

static int cmp_doc_key(const void *a, const void *b) {
    const mmfs_doc_hit *x = a, *y = b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.ptr, y->key.ptr, n);
    return c ? c : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

/* Everything DB answers about the store, as text.  Search hits are
** compared as sets: BM25's document frequencies may count deleted
** entries in a log replay and not after a checkpoint. */
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
        key_name(k, sizeof k, i);
        int rc = mmfs_get_kv(db, mmfs_str(k), &v);
        if (rc == MMFS_OK) fprintf(out, "get %s=%.*s\n", k, PS(v));
        else fprintf(out, "get %s: %s\n", k, mmfs_err_name(rc));
    }
    const char *prefixes[] = {"", "k/", "p/", "p/1", "zz"};
    for (int p = 0; p < 5; p++) {
        mmfs_kv_iter *it;
        MMFS_OK_OR_FAIL(mmfs_kv_iter_open(db, mmfs_str(prefixes[p]), &it));
        mmfs_slice key, val;
        fprintf(out, "scan '%s':", prefixes[p]);
        while (mmfs_kv_iter_next(it, &key, &val) == MMFS_OK)
            fprintf(out, " %.*s=%.*s", PS(key), PS(val));
        fputc('\n', out);
        mmfs_kv_iter_close(it);
    }
    uint64_t maxid = st.lsn + 2;
    for (uint64_t id = 0; id <= maxid; id++) {
        mmfs_memory *m;
        if (mmfs_get_memory(db, id, &m) != MMFS_OK) continue;
        put_memory(out, m);
    }
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 100000;
    mmfs_memories *ms;
    MMFS_OK_OR_FAIL(mmfs_list_memories(db, &f, &ms));
    fprintf(out, "list %zu:", ms->count);
    put_id_list(out, ms);
    for (int t = 0; t < 3; t++) {
        char tag[16];
        snprintf(tag, sizeof tag, "t%d", t);
        ms = list_tag(db, &f, tag);
        fprintf(out, "tag %s:", tag);
        put_id_list(out, ms);
    }
    f.route = mmfs_str("notes");
    MMFS_OK_OR_FAIL(mmfs_list_memories(db, &f, &ms));
    fprintf(out, "route notes: %zu\n", ms->count);
    mmfs_free(ms);
    f.route = mmfs_str("");
    for (size_t w = 0; w < sizeof WORDS / sizeof *WORDS; w++) {
        MMFS_OK_OR_FAIL(mmfs_search_memory(db, mmfs_str(WORDS[w]), &f, &ms));
        qsort(ms->items, ms->count, sizeof *ms->items, cmp_id);
        fprintf(out, "search %s:", WORDS[w]);
        put_id_list(out, ms);
        mmfs_doc_hits *dh;
        MMFS_OK_OR_FAIL(mmfs_search(db, mmfs_str(WORDS[w]), 1000, &dh));
        /* keys as a set: a log replay's df counts replaced documents */
        qsort(dh->items, dh->count, sizeof *dh->items, cmp_doc_key);
        fprintf(out, "docs %s: %zu", WORDS[w], dh->count);
        for (size_t i = 0; i < dh->count; i++) fprintf(out, " %.*s", PS(dh->items[i].key));
        fputc('\n', out);
        mmfs_free(dh);
    }
    for (int i = 0; i < NSESS; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%02d", i);
        mmfs_session s;
        int rc = mmfs_get_session(db, mmfs_str(id), &s);
        if (rc != MMFS_OK) continue;
        fprintf(out, "sess %s intent=%.*s at=%lld payload=%.*s\n", id, s.has_intent ? (int)s.intent_id.len : 0,
                s.has_intent ? (const char *)s.intent_id.ptr : "", (long long)s.created_at, s.has_payload ? (int)s.payload.len : 0,
                s.has_payload ? (const char *)s.payload.ptr : "");
    }
    mmfs_sessions *ss;
    MMFS_OK_OR_FAIL(mmfs_list_sessions(db, 3, &ss));
    fprintf(out, "sessions first 3:");
    for (size_t i = 0; i < ss->count; i++) fprintf(out, " %.*s", PS(ss->items[i].id));
    fputc('\n', out);
    mmfs_free(ss);
    MMFS_OK_OR_FAIL(mmfs_list_sessions(db, 1000, &ss));
    fprintf(out, "sessions:");
    for (size_t i = 0; i < ss->count; i++) fprintf(out, " %.*s", PS(ss->items[i].id));
    fputc('\n', out);
    mmfs_free(ss);
    for (int i = 0; i < 3; i++) {
        char in[8];
        snprintf(in, sizeof in, "i%d", i);
        MMFS_OK_OR_FAIL(mmfs_list_by_intent(db, mmfs_str(in), 1000, &ss));
        fprintf(out, "intent %s: %zu", in, ss->count);
        for (size_t j = 0; j < ss->count; j++) fprintf(out, " %.*s", PS(ss->items[j].id));
        fputc('\n', out);
        mmfs_free(ss);
        MMFS_OK_OR_FAIL(mmfs_list_by_intent(db, mmfs_str(in), 2, &ss));
        fprintf(out, "intent %s first 2:", in);
        for (size_t j = 0; j < ss->count; j++) fprintf(out, " %.*s", PS(ss->items[j].id));
        fputc('\n', out);
        mmfs_free(ss);
    }
    for (int i = 0; i < NSTREAMS; i++) {
        char name[16];
        snprintf(name, sizeof name, "st%d", i);
        mmfs_reader *r;
        if (mmfs_open_read(db, mmfs_str(name), &r) != MMFS_OK) continue;
        char b[4096];
        size_t got;
        fprintf(out, "stream %s %llu:", name, (unsigned long long)mmfs_reader_size(r));
        while (mmfs_reader_read(r, b, sizeof b, &got) == MMFS_OK && got) fwrite(b, 1, got, out);
        /* and a range from a third of the way in, across chunks */
        uint64_t size = mmfs_reader_size(r);
        MMFS_OK_OR_FAIL(mmfs_reader_seek(r, size / 3));
        MMFS_OK_OR_FAIL(mmfs_reader_read(r, b, 13, &got));
        fprintf(out, " [%llu+%zu: %.*s]", (unsigned long long)(size / 3), got, (int)got, b);
        uint64_t ssz;
        MMFS_OK_OR_FAIL(mmfs_stream_size(db, mmfs_str(name), &ssz));
        assert_int_equal(ssz, size);
        fputc('\n', out);
        mmfs_reader_close(r);
    }
    mmfs_slice sv;
    uint64_t ver;
    if (mmfs_get_state(db, &sv, &ver) == MMFS_OK) fprintf(out, "state %llu %.*s\n", (unsigned long long)ver, PS(sv));
    fclose(out);
    return buf;
}

/* ----------------------------------------------------------- operations */

/* One random operation on DB. */
static void random_op(mmfs_db *db, uint64_t *rs, uint64_t *nmem) {
    char k[32], v[64];
    uint32_t op = mmfs_test_rand(rs) % 100, x = mmfs_test_rand(rs);
    if (op < 35) {
        key_name(k, sizeof k, (int)(x % NKEYS));
        snprintf(v, sizeof v, "v%u", mmfs_test_rand(rs) % 1000);
        MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(k), mmfs_str(v)));
    } else if (op < 50) {
        key_name(k, sizeof k, (int)(x % NKEYS));
        MMFS_OK_OR_FAIL(mmfs_delete_kv(db, mmfs_str(k), NULL));
    } else if (op < 62) {
        char text[128], tag[2][8];
        snprintf(text, sizeof text, "%s %s note %u", WORDS[x % 8], WORDS[(x / 8) % 8], x % 97);
        snprintf(tag[0], sizeof tag[0], "t%u", x % 3);
        snprintf(tag[1], sizeof tag[1], "t%u", (x / 3) % 3);
        mmfs_slice tags[2] = {mmfs_str(tag[0]), mmfs_str(tag[1])};
        mmfs_memory_opts mo;
        memset(&mo, 0, sizeof mo);
        mo.has_created_at = 1;
        mo.created_at = 1000 + (int64_t)(x % 50); /* ties, broken by id */
        mo.route = mmfs_str(x % 4 == 0 ? "notes" : "");
        MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str(text), tags, 1 + x % 2, &mo, NULL));
        (*nmem)++;
    } else if (op < 68) {
        if (*nmem) MMFS_OK_OR_FAIL(mmfs_delete_memory(db, 1 + x % *nmem, NULL));
    } else if (op < 78) {
        char id[16], in[8], pl[32];
        snprintf(id, sizeof id, "s%02u", x % NSESS);
        snprintf(in, sizeof in, "i%u", (x / NSESS) % 3);
        snprintf(pl, sizeof pl, "payload %u", mmfs_test_rand(rs) % 100);
        mmfs_session s;
        memset(&s, 0, sizeof s);
        s.id = mmfs_str(id);
        s.has_intent = x % 5 != 0;
        s.intent_id = mmfs_str(in);
        s.has_created_at = 1;
        s.created_at = 2000 + (int64_t)(x % 7);
        s.has_payload = 1;
        s.payload = mmfs_str(pl);
        MMFS_OK_OR_FAIL(mmfs_put_session(db, &s));
    } else if (op < 82) {
        char id[16];
        snprintf(id, sizeof id, "s%02u", x % NSESS);
        MMFS_OK_OR_FAIL(mmfs_delete_session(db, mmfs_str(id), NULL));
    } else if (op < 89) {
        char name[16], bytes[32];
        snprintf(name, sizeof name, "st%u", x % NSTREAMS);
        /* Empty appends too: a stream may exist with no bytes. */
        uint32_t y = mmfs_test_rand(rs) % 10000;
        if (y % 4) snprintf(bytes, sizeof bytes, "<%u>", y);
        else bytes[0] = 0;
        MMFS_OK_OR_FAIL(mmfs_append_stream(db, mmfs_str(name), mmfs_str(bytes)));
    } else if (op < 94) {
        char key[16], text[64];
        snprintf(key, sizeof key, "d%02u", x % NDOCS);
        snprintf(text, sizeof text, "%s and %s", WORDS[(x / 3) % 8], WORDS[(x / 5) % 8]);
        MMFS_OK_OR_FAIL(mmfs_index(db, mmfs_str(key), mmfs_str(text)));
    } else if (op < 96) {
        char key[16];
        snprintf(key, sizeof key, "d%02u", x % NDOCS);
        MMFS_OK_OR_FAIL(mmfs_unindex(db, mmfs_str(key), NULL));
    } else {
        snprintf(v, sizeof v, "state %u", x % 1000);
        MMFS_OK_OR_FAIL(mmfs_update_state(db, mmfs_str(v), NULL));
    }
}

/* Moves DIR/ckpt away, opens the store from the log alone, dumps it,
** closes it and puts ckpt back. */
static char *dump_from_log(const char *dir) {
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/ckpt", dir);
    snprintf(b, sizeof b, "%s/ckpt.off", dir);
    struct stat st;
    int had = stat(a, &st) == 0;
    if (had) assert_int_equal(rename(a, b), 0);
    mmfs_options o = mmfs_test_options(0);
    o.checkpoint_bytes = 0;
    o.readonly = 1;
    mmfs_db *db = mmfs_test_open(dir, &o);
    assert_int_equal(mmfs_test_stats(db).checkpoint_lsn, 0);
    char *d = dump(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    if (had) assert_int_equal(rename(b, a), 0);
    return d;
}

static mmfs_options ck_options(void) {
    mmfs_options o = mmfs_test_options(64 << 10); /* small segments: several of them */
    o.checkpoint_bytes = 0;
    return o;
}

/* The number of checkpoint files in DIR/ckpt. */
static int count_ckpts(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/ckpt", dir);
    DIR *d = opendir(p);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strlen(e->d_name) > 5 && !strcmp(e->d_name + strlen(e->d_name) - 5, ".ckpt")) n++;
    closedir(d);
    return n;
}

/* The path of the newest (NTH = 0) or older checkpoint file. */
static void ckpt_file(const char *dir, int nth, char *out, size_t len) {
    char p[4096];
    snprintf(p, sizeof p, "%s/ckpt", dir);
    struct dirent **names;
    int n = scandir(p, &names, NULL, alphasort);
    assert_true(n > 0);
    int seen = 0;
    out[0] = 0;
    for (int i = n - 1; i >= 0; i--) {
        const char *nm = names[i]->d_name;
        if (strlen(nm) > 5 && !strcmp(nm + strlen(nm) - 5, ".ckpt") && seen++ == nth)
            snprintf(out, len, "%s/%s", p, nm);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    assert_true(out[0] != 0);
}

/* A read-only handle on DIR with the writers' options (ck_options): from
** its newest good checkpoint, if any. */
static mmfs_db *open_ro(const char *dir) {
    mmfs_options o = ck_options();
    o.readonly = 1;
    return mmfs_test_open(dir, &o);
}

static uint64_t open_ckpt_lsn(const char *dir, char **d) {
    mmfs_db *db = open_ro(dir);
    uint64_t lsn = mmfs_test_stats(db).checkpoint_lsn;
    *d = dump(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    return lsn;
}

/* LSN for assert_reopens_as: any checkpoint, not the log alone. */
#define ANY_CKPT UINT64_MAX

/* Asserts that DIR, opened read-only, opens from the checkpoint at LSN (0:
** none, the log alone; ANY_CKPT: some checkpoint) and answers as WANT
** (WHAT names the case). */
static void assert_reopens_as(const char *dir, uint64_t lsn, const char *want, const char *what) {
    char *got;
    uint64_t at = open_ckpt_lsn(dir, &got);
    if (lsn == ANY_CKPT) assert_true(at > 0);
    else assert_int_equal(at, lsn);
    mmfs_test_assert_same_text(want, got, what);
    free(got);
}

/* Asserts that DIR answers from its newest checkpoint as from the log
** alone (CK_WHAT), and so does LIVE, a dump of the writer, unless it is
** NULL (LIVE_WHAT); with NEED_CKPT, the checkpoint must have been used.
** Frees LIVE. */
static void assert_ckpt_as_log(const char *dir, int need_ckpt, char *live, const char *ck_what,
                               const char *live_what) {
    char *ck;
    uint64_t lsn = open_ckpt_lsn(dir, &ck);
    if (need_ckpt) assert_true(lsn > 0);
    char *full = dump_from_log(dir);
    mmfs_test_assert_same_text(full, ck, ck_what);
    if (live) mmfs_test_assert_same_text(full, live, live_what);
    free(live);
    free(ck);
    free(full);
}

/* -------------------------------------------------------------- tests */

static void test_model(void **state) {
    (void)state;
    unsigned seed = mmfs_test_env_seed(12345);
    for (unsigned run = 0; run < 4; run++) {
        uint64_t rs = seed + run * 7919u;
        char *dir = mmfs_test_dir("ckpt-model");
        mmfs_options o = ck_options();
        mmfs_db *db = mmfs_test_open(dir, &o);
        uint64_t nmem = 0;
        for (int round = 0; round < 6; round++) {
            int n = 40 + (int)(mmfs_test_rand(&rs) % 200);
            for (int i = 0; i < n; i++) random_op(db, &rs, &nmem);
            if (mmfs_test_rand(&rs) % 4) MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
            if (mmfs_test_rand(&rs) % 3 == 0) {
                MMFS_OK_OR_FAIL(mmfs_close(db));
                db = mmfs_test_open(dir, &o);
            }
            /* The writer (whatever it was opened from), a handle from the
            ** newest checkpoint, and one from the log alone. */
            assert_ckpt_as_log(dir, count_ckpts(dir) != 0, dump(db), "from the checkpoint vs from the log",
                               "the writer vs from the log");
            MMFS_OK_OR_FAIL(mmfs_verify(db));
        }
        assert_true(count_ckpts(dir) <= 2);
        MMFS_OK_OR_FAIL(mmfs_close(db));
        mmfs_test_rmdir(dir);
    }
}

/* A store with a checkpoint and writes after it; returns its dump. */
static char *make_store(const char *dir, int checkpoints) {
    mmfs_options o = ck_options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    uint64_t rs = 99, nmem = 0;
    for (int c = 0; c < checkpoints; c++) {
        for (int i = 0; i < 150; i++) random_op(db, &rs, &nmem);
        MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    }
    for (int i = 0; i < 50; i++) random_op(db, &rs, &nmem);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    return dump_from_log(dir);
}

/* Reads DIR's newest checkpoint file: its path into PATH (PLEN bytes),
** its LEN bytes returned (malloc'd). */
static uint8_t *read_newest(const char *dir, char *path, size_t plen, size_t *len) {
    ckpt_file(dir, 0, path, plen);
    uint8_t *buf;
    mmfs_test_read_file(path, &buf, len);
    return buf;
}

/* Writes the LEN bytes at ORIG to PATH with byte AT xored with MASK. */
static void write_flipped(const char *path, const uint8_t *orig, size_t len, size_t at, uint8_t mask) {
    uint8_t *b = malloc(len);
    memcpy(b, orig, len);
    b[at] ^= mask;
    mmfs_test_write_file(path, b, len);
    free(b);
}

/* Rewrites the header's CRC32C (a CRC32C store; format 2 keeps it at 496
** over the 496 bytes before), so a change is seen by what it means, not
** by the checksum. */
static void reseal(uint8_t *buf, size_t len) {
    (void)len;
    uint32_t c = mmfs__crc32c(0, buf, 496);
    memset(buf + 496, 0, 16);
    memcpy(buf + 496, &c, 4);
}

static void test_flipped_bytes(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-flip");
    char *want = make_store(dir, 1);
    char path[4200];
    size_t len;
    uint8_t *orig = read_newest(dir, path, sizeof path, &len);
    uint64_t rs = mmfs_test_env_seed(7);
    for (int i = 0; i < 40; i++) {
        /* The header, each section and the checksum get their share. */
        size_t at = i < 8 ? (size_t)(mmfs_test_rand(&rs) % 256) : (size_t)(mmfs_test_rand(&rs) % len);
        write_flipped(path, orig, len, at, (uint8_t)(1u << (mmfs_test_rand(&rs) % 8)));
        assert_reopens_as(dir, 0, want, "a flipped checkpoint");
    }
    mmfs_test_write_file(path, orig, len);
    assert_reopens_as(dir, ANY_CKPT, want, "the checkpoint restored");
    free(orig);
    free(want);
    mmfs_test_rmdir(dir);
}

static void test_truncated(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-trunc");
    char *want = make_store(dir, 1);
    char path[4200];
    size_t len;
    uint8_t *orig = read_newest(dir, path, sizeof path, &len);
    size_t cuts[] = {0, 10, 255, 256, len / 2, len - 17, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        mmfs_test_write_file(path, orig, cuts[i]);
        assert_reopens_as(dir, 0, want, "a truncated checkpoint");
    }
    free(orig);
    free(want);
    mmfs_test_rmdir(dir);
}

/* Header fields at their offsets in ckpt.h: format 8, first_segment 32,
** anchor LSN 48. */
static void patch_and_check(const char *dir, size_t off, uint32_t val, const char *what) {
    char path[4200];
    size_t len;
    uint8_t *b = read_newest(dir, path, sizeof path, &len);
    memcpy(b + off, &val, 4);
    reseal(b, len);
    mmfs_test_write_file(path, b, len);
    char *want = dump_from_log(dir);
    assert_reopens_as(dir, 0, want, what);
    free(want);
    free(b);
}

/* Header fields changed (and the checksum made right again): a newer
** format, another first_segment (stale), an anchor that is not in the log.
** Each is refused and open answers from the log. */
static void test_patched_header(void **state) {
    (void)state;
    static const struct {
        size_t off;
        uint32_t val;
        const char *what;
    } cases[] = {
        {8, 4, "a newer format"},
        {8, 2, "format 2 (skipped: the log replays)"},
        {8, 1, "format 1 (skipped: the log replays)"},
        {32, 2, "made against another first_segment"},
        {48, 1, "an anchor that is not in the log"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = mmfs_test_dir("ckpt-patched");
        free(make_store(dir, 1));
        patch_and_check(dir, cases[i].off, cases[i].val, cases[i].what);
        mmfs_test_rmdir(dir);
    }
}

/* A checkpoint of another store with the same LSN: its anchor frame is
** not this log's, so it is never applied. */
static void test_foreign_checkpoint(void **state) {
    (void)state;
    char *a = mmfs_test_dir("ckpt-foreign-a"), *b = mmfs_test_dir("ckpt-foreign-b");
    mmfs_options o = ck_options();
    mmfs_db *da = mmfs_test_open(a, &o), *dbb = mmfs_test_open(b, &o);
    for (int i = 0; i < 20; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "key%d", i);
        snprintf(v, sizeof v, "a%d", i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(da, mmfs_str(k), mmfs_str(v)));
        snprintf(v, sizeof v, "b%d", i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(dbb, mmfs_str(k), mmfs_str(v)));
    }
    MMFS_OK_OR_FAIL(mmfs_checkpoint(da));
    MMFS_OK_OR_FAIL(mmfs_close(da));
    MMFS_OK_OR_FAIL(mmfs_close(dbb));
    char src[4200], dst[4200];
    ckpt_file(a, 0, src, sizeof src);
    snprintf(dst, sizeof dst, "%s/ckpt", b);
    assert_int_equal(mkdir(dst, 0755), 0);
    snprintf(dst, sizeof dst, "%s/ckpt/%s", b, strrchr(src, '/') + 1);
    uint8_t *buf;
    size_t len;
    mmfs_test_read_file(src, &buf, &len);
    mmfs_test_write_file(dst, buf, len);
    free(buf);
    char *got;
    assert_int_equal(open_ckpt_lsn(b, &got), 0);
    assert_non_null(strstr(got, "get k/01: NOTFOUND"));
    mmfs_db *db = mmfs_test_open(b, &o);
    mmfs_slice v;
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("key3"), &v));
    MMFS_ASSERT_SLICE_STR(v, "b3");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    free(got);
    mmfs_test_rmdir(a);
    mmfs_test_rmdir(b);
}

/* The newest checkpoint damaged: the older one is used. */
static void test_falls_back_to_older(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-older");
    char *want = make_store(dir, 3);
    assert_int_equal(count_ckpts(dir), 2);
    char newest[4200], older[4200];
    ckpt_file(dir, 1, older, sizeof older);
    unsigned long long older_lsn = strtoull(strrchr(older, '/') + 1, NULL, 10);
    size_t len;
    uint8_t *b = read_newest(dir, newest, sizeof newest, &len);
    write_flipped(newest, b, len, len / 2, 0x40);
    free(b);
    assert_reopens_as(dir, older_lsn, want, "the older checkpoint");
    free(want);
    mmfs_test_rmdir(dir);
}

static void test_readonly_and_empty(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-empty");
    mmfs_options o = ck_options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db)); /* nothing written yet: no file */
    assert_int_equal(count_ckpts(dir), 0);
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("a"), mmfs_str("1")));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    o.readonly = 1;
    db = mmfs_test_open(dir, &o);
    MMFS_ASSERT_STATUS(mmfs_checkpoint(db), MMFS_READONLY);
    assert_int_equal(count_ckpts(dir), 0);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* checkpoint_bytes: a commit past it starts a thread that writes one. */
static void test_automatic(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-auto");
    mmfs_options o = ck_options();
    o.checkpoint_bytes = 4096;
    mmfs_db *db = mmfs_test_open(dir, &o);
    char v[200];
    memset(v, 'x', sizeof v - 1);
    v[sizeof v - 1] = 0;
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str(k), mmfs_str(v)));
    }
    for (int i = 0; i < 250 && count_ckpts(dir) == 0; i++) usleep(20000);
    assert_int_equal(count_ckpts(dir), 1);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    o.checkpoint_bytes = 0;
    db = mmfs_test_open(dir, &o);
    assert_true(mmfs_test_stats(db).checkpoint_lsn > 0);
    assert_int_equal(mmfs_test_stats(db).kv, 50);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* Many tags: the checkpoint's tag table grows past its first arrays (a
** capacity shared by two arrays overflowed one of them). */
static void test_many_tags(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-tags");
    mmfs_options o = ck_options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    for (int i = 0; i < 400; i++) {
        char tag[3][16];
        snprintf(tag[0], sizeof tag[0], "tag%d", i % 97);
        snprintf(tag[1], sizeof tag[1], "u%d", i % 13);
        snprintf(tag[2], sizeof tag[2], "w%d", i);
        mmfs_slice tags[3] = {mmfs_str(tag[0]), mmfs_str(tag[1]), mmfs_str(tag[2])};
        MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str("a memory with tags"), tags, 3, NULL, NULL));
    }
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    MMFS_OK_OR_FAIL(mmfs_close(db));
    db = mmfs_test_open(dir, &o);
    assert_true(mmfs_test_stats(db).checkpoint_lsn > 0);
    for (int t = 0; t < 97; t++) {
        char tag[16];
        snprintf(tag, sizeof tag, "tag%d", t);
        mmfs_filter f;
        memset(&f, 0, sizeof f);
        f.limit = 1000;
        mmfs_memories *ms = list_tag(db, &f, tag);
        assert_int_equal(ms->count, 400 / 97 + (t < 400 % 97));
        mmfs_free(ms);
    }
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* A handle that compacted the store still points into the old segments;
** its checkpoints must find each record in the new ones (by LSN), and a
** handle from such a checkpoint answers as one from the log alone. */
static void test_compact_then_checkpoint(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-compact");
    mmfs_options o = ck_options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    uint64_t rs = 4242, nmem = 0;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 200; i++) random_op(db, &rs, &nmem);
        MMFS_OK_OR_FAIL(mmfs_checkpoint(db)); /* kv and memories now mapped */
        for (int i = 0; i < 100; i++) random_op(db, &rs, &nmem);
        mmfs_compact_result res;
        MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, &res));
        assert_true(res.dropped > 0);
        MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
        for (int i = 0; i < 30; i++) random_op(db, &rs, &nmem);
        assert_ckpt_as_log(dir, 1, dump(db), "from the checkpoint after a compaction vs from the log",
                           "the compacting writer vs from the log");
    }
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

/* With checkpoints on, a compaction ends with a checkpoint of the new
** log, so the next open maps it instead of replaying. */
static void test_compact_writes_checkpoint(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-compact-auto");
    mmfs_options o = ck_options();
    o.checkpoint_bytes = 1 << 30; /* on, but never by size in this test */
    mmfs_db *db = mmfs_test_open(dir, &o);
    uint64_t rs = 77, nmem = 0;
    for (int i = 0; i < 300; i++) random_op(db, &rs, &nmem);
    assert_int_equal(count_ckpts(dir), 0);
    mmfs_compact_result res;
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, &res));
    assert_int_equal(count_ckpts(dir), 1);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    assert_ckpt_as_log(dir, 1, NULL, "from compaction's checkpoint vs from the log", NULL);
    mmfs_test_rmdir(dir);
}

/* A handle opened from a checkpoint holds its keys in the mapped tables:
** compaction must count them live, or it would drop every one. */
static void test_compact_from_checkpoint(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-then-compact");
    char *before = make_store(dir, 2);
    mmfs_options o = ck_options();
    mmfs_db *db = mmfs_test_open(dir, &o);
    assert_true(mmfs_test_stats(db).checkpoint_lsn > 0);
    mmfs_compact_result res;
    MMFS_OK_OR_FAIL(mmfs_compact(db, NULL, &res));
    char *live = dump(db);
    mmfs_test_assert_same_text(before, live, "after compacting a handle opened from a checkpoint");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char *full = dump_from_log(dir);
    mmfs_test_assert_same_text(before, full, "the compacted log, reopened");
    free(before);
    free(live);
    free(full);
    mmfs_test_rmdir(dir);
}

/* ------------------------------------------------ larger tables, damage */

#define BIG_KV 20000
#define BIG_MEM 3000

/* A store whose checkpoint spans many 64 KiB blocks: BIG_KV keys, and
** BIG_MEM memories mostly in created_at order (runs) with stretches out
** of order (explicit ids), two routes, tags with more than one block of
** ids, a few deletions; then a checkpoint and a few writes after it. */
static void make_big(const char *dir, uint64_t segment_size) {
    mmfs_options o = ck_options();
    o.segment_size = segment_size;
    mmfs_db *db = mmfs_test_open(dir, &o);
    mmfs_batch *b = NULL;
    for (int i = 0; i < BIG_KV; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "key%05d", i);
        snprintf(v, sizeof v, "value %d", i);
        if (!b) MMFS_OK_OR_FAIL(mmfs_batch_begin(db, &b));
        MMFS_OK_OR_FAIL(mmfs_batch_set_kv(b, mmfs_str(k), mmfs_str(v)));
        if (i % 500 == 499) {
            MMFS_OK_OR_FAIL(mmfs_batch_commit(b, NULL, NULL));
            b = NULL;
        }
    }
    if (b) MMFS_OK_OR_FAIL(mmfs_batch_commit(b, NULL, NULL));
    for (int i = 1; i <= BIG_MEM; i++) {
        char text[800], tag[8];
        /* Ids 1500..1899 long: blocks of the table that span more than
        ** 64 KiB of log (u32 deltas, or u64 across a segment). */
        int n = snprintf(text, sizeof text, "%s note %d", WORDS[i % 8], i);
        if (i >= 1500 && i < 1900) snprintf(text + n, sizeof text - (size_t)n, " %0700d", i);
        snprintf(tag, sizeof tag, "t%d", i % 3);
        mmfs_slice tags[2] = {mmfs_str("all"), mmfs_str(tag)};
        mmfs_memory_opts mo;
        memset(&mo, 0, sizeof mo);
        mo.has_created_at = 1;
        /* In order, but for ids 1000..1199, whose times go backwards. */
        mo.created_at = i >= 1000 && i < 1200 ? 5000 - i : 10000 + i / 2;
        mo.route = mmfs_str(i % 5 == 0 ? "notes" : "");
        MMFS_OK_OR_FAIL(mmfs_append_memory(db, mmfs_str(text), tags, 2, &mo, NULL));
    }
    for (uint64_t id = 7; id <= BIG_MEM; id += 97) MMFS_OK_OR_FAIL(mmfs_delete_memory(db, id, NULL));
    /* A whole block of the table (ids 2561..2688: the 21st of 128) deleted. */
    for (uint64_t id = 2561; id <= 2688; id++) mmfs_delete_memory(db, id, NULL);
    MMFS_OK_OR_FAIL(mmfs_checkpoint(db));
    MMFS_OK_OR_FAIL(mmfs_set_kv(db, mmfs_str("key00003"), mmfs_str("after")));
    MMFS_OK_OR_FAIL(mmfs_delete_memory(db, 2, NULL));
    MMFS_OK_OR_FAIL(mmfs_close(db));
}

static void put_ids(FILE *out, const char *what, int rc, mmfs_memories **msp) {
    mmfs_memories *ms = *msp;
    if (rc != MMFS_OK) {
        fprintf(out, "%s: %s\n", what, mmfs_err_name(rc));
        return;
    }
    fprintf(out, "%s %zu:", what, ms->count);
    for (size_t i = 0; i < ms->count; i++)
        fprintf(out, " %llu/%.*s", (unsigned long long)ms->items[i].id, PS(ms->items[i].route));
    fputc('\n', out);
    mmfs_free(ms);
}

/* Every read of the big store, one line each ("...: CORRUPT" when it
** failed so). */
static char *answers(mmfs_db *db) {
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    for (int i = 0; i < BIG_KV; i++) {
        char k[32];
        mmfs_slice v;
        snprintf(k, sizeof k, "key%05d", i);
        int rc = mmfs_get_kv(db, mmfs_str(k), &v);
        if (rc == MMFS_OK) fprintf(out, "get %s=%.*s\n", k, PS(v));
        else fprintf(out, "get %s: %s\n", k, mmfs_err_name(rc));
    }
    mmfs_kv_iter *it;
    MMFS_OK_OR_FAIL(mmfs_kv_iter_open(db, mmfs_str("key"), &it));
    mmfs_slice key, val;
    size_t n = 0;
    int rc;
    uint64_t h = 0;
    while ((rc = mmfs_kv_iter_next(it, &key, &val)) == MMFS_OK) {
        n++;
        for (size_t i = 0; i < key.len; i++) h = h * 31 + ((const uint8_t *)key.ptr)[i];
    }
    mmfs_kv_iter_close(it);
    if (rc == MMFS_NOTFOUND) fprintf(out, "scan %zu %llu\n", n, (unsigned long long)h);
    else fprintf(out, "scan: %s\n", mmfs_err_name(rc));
    for (uint64_t id = 1; id <= BIG_MEM + 1; id++) {
        mmfs_memory *m;
        rc = mmfs_get_memory(db, id, &m);
        if (rc != MMFS_OK) {
            fprintf(out, "mem %llu: %s\n", (unsigned long long)id, mmfs_err_name(rc));
            continue;
        }
        put_memory(out, m);
    }
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 100000;
    mmfs_memories *ms = NULL;
    put_ids(out, "list", mmfs_list_memories(db, &f, &ms), &ms);
    f.has_before = 1;
    f.before = 10700;
    f.limit = 50;
    put_ids(out, "list before", mmfs_list_memories(db, &f, &ms), &ms);
    f.has_before = 0;
    f.limit = 100000;
    const char *tags[] = {"all", "t0", "t1", "t2"};
    for (int t = 0; t < 4; t++) {
        mmfs_slice ts = mmfs_str(tags[t]);
        f.tags = &ts;
        f.ntags = 1;
        put_ids(out, tags[t], mmfs_list_memories(db, &f, &ms), &ms);
    }
    f.tags = NULL;
    f.ntags = 0;
    f.route = mmfs_str("notes");
    put_ids(out, "route notes", mmfs_list_memories(db, &f, &ms), &ms);
    f.route = mmfs_str("");
    for (size_t w = 0; w < sizeof WORDS / sizeof *WORDS; w++) {
        rc = mmfs_search_memory(db, mmfs_str(WORDS[w]), &f, &ms);
        if (rc == MMFS_OK) qsort(ms->items, ms->count, sizeof *ms->items, cmp_id);
        put_ids(out, WORDS[w], rc, &ms);
    }
    fclose(out);
    return buf;
}

/* Compares GOT with WANT line by line: each line the same, or a read
** that failed with CORRUPT.  Returns how many did. */
static int same_or_corrupt(const char *want, const char *got) {
    int corrupt = 0;
    while (*want || *got) {
        const char *we = strchr(want, '\n'), *ge = strchr(got, '\n');
        assert_non_null(we);
        assert_non_null(ge);
        size_t wl = (size_t)(we - want), gl = (size_t)(ge - got);
        if (gl > 9 && !memcmp(ge - 9, ": CORRUPT", 9)) {
            corrupt++;
            /* The same read: what comes before the colon. */
            size_t k = 0;
            while (k < wl && k < gl && want[k] == got[k] && want[k] != ':' && want[k] != '=' && want[k] != ' ') k++;
            assert_true(k > 0);
        } else if (wl != gl || memcmp(want, got, wl) != 0) {
            fail_msg("a wrong answer from a damaged checkpoint:\n  %.*s\nwant\n  %.*s", (int)gl, got, (int)wl, want);
        }
        want = we + 1;
        got = ge + 1;
    }
    return corrupt;
}

/* The big store's checkpoint, read from itself and from the log: the
** larger tables (several blocks of ids, runs and explicit ids, tags past
** one block, two routes) answer as the log does. */
static void large_tables(uint64_t segment_size) {
    char *dir = mmfs_test_dir("ckpt-large");
    make_big(dir, segment_size);
    mmfs_options o = ck_options();
    o.segment_size = segment_size;
    o.readonly = 1;
    mmfs_db *db = mmfs_test_open(dir, &o);
    assert_true(mmfs_test_stats(db).checkpoint_lsn > 0);
    char *got = answers(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/ckpt", dir);
    snprintf(b, sizeof b, "%s/ckpt.off", dir);
    assert_int_equal(rename(a, b), 0);
    db = mmfs_test_open(dir, &o);
    assert_int_equal(mmfs_test_stats(db).checkpoint_lsn, 0);
    char *want = answers(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    assert_int_equal(rename(b, a), 0);
    assert_int_equal(same_or_corrupt(want, got), 0);
    mmfs_test_assert_same_text(want, got, "the large tables from the checkpoint vs from the log");
    free(got);
    free(want);
    mmfs_test_rmdir(dir);
}

/* Small segments (blocks of the table in u16 deltas, or u64 positions
** across a segment), then larger ones (u32 deltas). */
static void test_large_tables(void **state) {
    (void)state;
    large_tables(64 << 10);
    large_tables(4 << 20);
}

/* A flipped byte in each section that open does not check: open maps the
** file; the reads that touch the damaged block fail with CORRUPT, no read
** answers wrong, stats says the checkpoint was dropped, the file is
** removed, and the next open answers from the log. */
static void test_damage_found_when_read(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-lazy");
    make_big(dir, 64 << 10);
    char path[4200];
    size_t len;
    uint8_t *orig = read_newest(dir, path, sizeof path, &len);
    mmfs_db *db = open_ro(dir);
    char *want = answers(db);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    /* Sections (kind: offset at 120 + 16 (kind - 1), count after it) that
    ** open leaves to the first read: kv hash and order, the memory
    ** table's directory, time runs, positions, routes, explicit ids, tag
    ** ids. */
    static const int lazy[] = {2, 3, 6, 7, 10, 11, 12, 13};
    static const size_t esz[] = {16, 8, 16, 16, 1, 1, 4, 1};
    int found_lazily = 0;
    for (size_t i = 0; i < sizeof lazy / sizeof *lazy; i++) {
        uint64_t off, cnt;
        memcpy(&off, orig + 120 + 16 * (lazy[i] - 1), 8);
        memcpy(&cnt, orig + 128 + 16 * (lazy[i] - 1), 8);
        assert_true(cnt > 0); /* the big store has every kind */
        write_flipped(path, orig, len, off + cnt * esz[i] / 2, 0x10);
        mmfs_options o = ck_options();
        db = mmfs_test_open(dir, &o);
        uint64_t lsn = mmfs_test_stats(db).checkpoint_lsn;
        char *got = answers(db);
        int corrupt = same_or_corrupt(want, got);
        mmfs_store_stats st = mmfs_test_stats(db);
        MMFS_OK_OR_FAIL(mmfs_close(db));
        free(got);
        if (lsn && corrupt) {
            found_lazily++;
            assert_int_equal(st.checkpoint_dropped, 1);
            assert_int_equal(access(path, F_OK), -1); /* removed: the next open falls back */
            db = open_ro(dir);
            assert_int_equal(mmfs_test_stats(db).checkpoint_lsn, 0);
            got = answers(db);
            mmfs_test_assert_same_text(want, got, "reopened after a checkpoint was dropped");
            free(got);
            MMFS_OK_OR_FAIL(mmfs_close(db));
        } else {
            assert_int_equal(st.checkpoint_dropped, 0);
        }
        mmfs_test_write_file(path, orig, len);
    }
    /* The sections open reads come first in the file: every other one
    ** starts past their block here, so each damage was found by a read. */
    assert_int_equal(found_lazily, sizeof lazy / sizeof *lazy);
    free(orig);
    free(want);
    mmfs_test_rmdir(dir);
}

/* A read-only handle finds the damage the same way but removes nothing. */
static void test_damage_readonly(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-lazy-ro");
    make_big(dir, 64 << 10);
    char path[4200];
    size_t len;
    uint8_t *b = read_newest(dir, path, sizeof path, &len);
    uint64_t off, cnt;
    memcpy(&off, b + 120 + 16, 8); /* the kv hash */
    memcpy(&cnt, b + 128 + 16, 8);
    for (uint64_t s = 4096; s < cnt; s += 512) b[off + 16 * s + 8] ^= 1; /* a slot in every block but the first */
    mmfs_test_write_file(path, b, len);
    mmfs_db *db = open_ro(dir);
    assert_true(mmfs_test_stats(db).checkpoint_lsn > 0);
    mmfs_slice v;
    MMFS_ASSERT_STATUS(mmfs_get_kv(db, mmfs_str("key00100"), &v), MMFS_CORRUPT);
    assert_int_equal(mmfs_test_stats(db).checkpoint_dropped, 1);
    MMFS_ASSERT_STATUS(mmfs_get_kv(db, mmfs_str("nokey"), &v), MMFS_CORRUPT);
    MMFS_OK_OR_FAIL(mmfs_get_kv(db, mmfs_str("key00003"), &v)); /* written after it: in the log */
    MMFS_ASSERT_SLICE_STR(v, "after");
    MMFS_OK_OR_FAIL(mmfs_close(db));
    assert_int_equal(access(path, F_OK), 0);
    free(b);
    mmfs_test_rmdir(dir);
}

/* ------------------------------------------------------ the checkpointer */

/* Threads of this process. */
static int nthreads(void) {
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* The LSNs of the checkpoint files, newest first, into V (up to 8). */
static int ckpt_lsns(const char *dir, unsigned long long *v) {
    int n = count_ckpts(dir);
    for (int i = 0; i < n && i < 8; i++) {
        char p[4200];
        ckpt_file(dir, i, p, sizeof p);
        v[i] = strtoull(strrchr(p, '/') + 1, NULL, 10);
    }
    return n;
}

/* Writes about BYTES of kv through the handles in turn. */
static void write_round(mmfs_db **dbs, int n, size_t bytes, int *seq) {
    char v[1000];
    memset(v, 'y', sizeof v - 1);
    v[sizeof v - 1] = 0;
    for (size_t done = 0; done < bytes; done += sizeof v + 40) {
        char k[32];
        snprintf(k, sizeof k, "w%06d", (*seq)++);
        MMFS_OK_OR_FAIL(mmfs_set_kv(dbs[*seq % n], mmfs_str(k), mmfs_str(v)));
    }
}

/* Waits until no checkpoint file appears for half a second. */
static void settle(const char *dir) {
    unsigned long long a[8], b[8];
    int na = ckpt_lsns(dir, a);
    for (int i = 0; i < 100; i++) {
        usleep(500000);
        int nb = ckpt_lsns(dir, b);
        if (nb == na && (!na || a[0] == b[0])) return;
        na = ckpt_lsns(dir, a);
    }
}

/* checkpoint_bytes starts no thread at open: one runs only when a
** checkpoint is due, and ends after it. */
static void test_no_idle_thread(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-idle");
    mmfs_options o = ck_options();
    mmfs_db *off = mmfs_test_open(dir, &o);
    int base = nthreads();
    o.checkpoint_bytes = 1 << 20;
    mmfs_db *on[4];
    for (int i = 0; i < 4; i++) on[i] = mmfs_test_open(dir, &o);
    assert_int_equal(nthreads(), base);
    MMFS_OK_OR_FAIL(mmfs_set_kv(on[0], mmfs_str("a"), mmfs_str("1")));
    assert_int_equal(nthreads(), base);
    for (int i = 0; i < 4; i++) MMFS_OK_OR_FAIL(mmfs_close(on[i]));
    MMFS_OK_OR_FAIL(mmfs_close(off));
    mmfs_test_rmdir(dir);
}

/* Several handles on one store, all writing: one checkpoint per crossing
** of checkpoint_bytes, not one per handle (ckpt/lock, and each looks at
** the newest file before writing). */
static void test_one_checkpointer(void **state) {
    (void)state;
    char *dir = mmfs_test_dir("ckpt-one");
    mmfs_options o = ck_options();
    o.checkpoint_bytes = 256 << 10;
    mmfs_db *dbs[4];
    for (int i = 0; i < 4; i++) dbs[i] = mmfs_test_open(dir, &o);
    int seq = 0;
    unsigned long long v[8], w[8];
    write_round(dbs, 4, (256 << 10) + (64 << 10), &seq); /* past the threshold once */
    settle(dir);
    assert_int_equal(ckpt_lsns(dir, v), 1);
    /* Once more: the first checkpoint's LSN lies between 256 and 320 KiB
    ** of log (its thread snapshots a little after the crossing), so the
    ** next crossing is before 576 KiB, and a third would be past 768. */
    write_round(dbs, 4, (256 << 10) + (96 << 10), &seq);
    settle(dir);
    assert_int_equal(ckpt_lsns(dir, w), 2);
    assert_true(w[1] == v[0] && w[0] > v[0]);
    for (int i = 0; i < 4; i++) MMFS_OK_OR_FAIL(mmfs_close(dbs[i]));
    mmfs_db *db = open_ro(dir);
    assert_int_equal(mmfs_test_stats(db).checkpoint_lsn, w[0]);
    assert_int_equal(mmfs_test_stats(db).kv, (uint64_t)seq);
    MMFS_OK_OR_FAIL(mmfs_close(db));
    mmfs_test_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_patched_header),
        cmocka_unit_test(test_foreign_checkpoint),
        cmocka_unit_test(test_falls_back_to_older),
        cmocka_unit_test(test_readonly_and_empty),
        cmocka_unit_test(test_automatic),
        cmocka_unit_test(test_many_tags),
        cmocka_unit_test(test_compact_then_checkpoint),
        cmocka_unit_test(test_compact_writes_checkpoint),
        cmocka_unit_test(test_compact_from_checkpoint),
        cmocka_unit_test(test_large_tables),
        cmocka_unit_test(test_damage_found_when_read),
        cmocka_unit_test(test_damage_readonly),
        cmocka_unit_test(test_no_idle_thread),
        cmocka_unit_test(test_one_checkpointer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
