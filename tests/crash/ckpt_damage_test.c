/*
** ckpt_damage_test.c: damaged checkpoint files never give a wrong answer.
**
** A store with every kind of data (keys, memories with tags and routes,
** some deleted, sessions, streams, documents, the state), several log
** segments, a compaction, checkpoints and writes after the newest one.
** Its answers from the log alone (ckpt/ moved away) are the truth.  Then
** the newest checkpoint file is damaged, one way at a time, and the store
** opened (read-only, and now and then read-write): open must succeed and
** answer exactly as the log does (ranked searches: as the log or as the
** undamaged checkpoint, see want_ck), or fail with a clear error; never a
** crash, never another answer.  The damage:
**   - one bit flipped at offsets walking the whole file (the header, every
**     section, the trailer; every byte in soak mode);
**   - the file cut at lengths walking the whole file;
**   - the format number (the u32 after the 8-byte magic) made newer, also
**     with the file's trailing checksum made right again when the file
**     ends with a CRC32C of what precedes it;
**   - a checkpoint of another store dropped into ckpt/, under its own name
**     and under the name of this store's newest; a checkpoint of this
**     store from before its compaction put back; an empty file and a
**     garbage file with checkpoint names.
** The test walks bytes and compares answers only, so it holds for any
** checkpoint format.
**
**   ckpt_damage_test [--stride N] [--seed N] [--soak]
*/
#include "crashutil.h"

#include "checksum.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char POLICY[] = "return { routes = { default = {}, quiet = { index = false }, notes = {} } }\n";

/* ------------------------------------------------------------- dumping */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) ct_fatal(__FILE__, __LINE__, "vsnprintf failed");
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) ct_fatal(__FILE__, __LINE__, "out of memory");
    }
}

static void sb_slice(sbuf *b, mmfs_slice s) { sb_printf(b, "%.*s", (int)s.len, (const char *)s.ptr); }

static void dump_mem(sbuf *b, const mmfs_memory *m) {
    sb_printf(b, "  %" PRIu64 " %" PRId64 " ", m->id, m->created_at);
    sb_slice(b, m->route);
    sb_printf(b, " [");
    for (size_t i = 0; i < m->ntags; i++) {
        sb_printf(b, i ? "," : "");
        sb_slice(b, m->tags[i]);
    }
    sb_printf(b, "] ");
    sb_slice(b, m->text);
    sb_printf(b, "\n");
}

static const char *const QUERIES[] = {"apple", "river OR stone", "\"cloud ember\"", "maple", "harbor violet", "note"};
#define NQ (sizeof QUERIES / sizeof *QUERIES)

/* Every answer the store gives, as text (malloc'd): what is compared.
** The ranked searches come last, after this line. */
#define SEARCH_MARK "--- ranked searches\n"

static char *dump(mmfs_db *db) {
    sbuf b = {NULL, 0, 0};
    mmfs_store_stats st;
    CHECK_OK(mmfs_stats(db, &st));
    sb_printf(&b, "stats: %" PRIu64 " memories, %" PRIu64 " kv, %" PRIu64 " sessions, %" PRIu64 " streams, %" PRIu64
                  " documents, lsn %" PRIu64 ", %" PRIu64 " log bytes\n",
              st.memories, st.kv, st.sessions, st.streams, st.documents, st.lsn, st.log_bytes);
    mmfs_kv_iter *it = NULL;
    CHECK_OK(mmfs_kv_iter_open(db, mmfs_str(""), &it));
    mmfs_slice k, v;
    while (it && mmfs_kv_iter_next(it, &k, &v) == MMFS_OK) {
        sb_printf(&b, "kv ");
        sb_slice(&b, k);
        sb_printf(&b, " = ");
        sb_slice(&b, v);
        sb_printf(&b, "\n");
    }
    mmfs_kv_iter_close(it);
    for (int i = 0; i < 400; i += 7) { /* point gets too: the hash table, not only the ordered one */
        char key[32];
        snprintf(key, sizeof key, "key%03d", i);
        int rc = mmfs_get_kv(db, mmfs_str(key), &v);
        sb_printf(&b, "get %s: %s\n", key, mmfs_err_name(rc));
    }
    for (uint64_t id = 1; id <= st.lsn + 2; id++) {
        mmfs_memory *m = NULL;
        int rc = mmfs_get_memory(db, id, &m);
        if (rc == MMFS_OK) dump_mem(&b, m);
        else if (rc != MMFS_NOTFOUND) sb_printf(&b, "get_memory %" PRIu64 ": %s\n", id, mmfs_err_name(rc));
        mmfs_free(m);
    }
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 100000;
    mmfs_memories *ms = NULL;
    sb_printf(&b, "list: %s\n", mmfs_err_name(mmfs_list_memories(db, &f, &ms)));
    for (size_t i = 0; ms && i < ms->count; i++) dump_mem(&b, &ms->items[i]);
    mmfs_free(ms);
    mmfs_slice tag = mmfs_str("t1");
    f.tags = &tag;
    f.ntags = 1;
    ms = NULL;
    sb_printf(&b, "list t1: %s\n", mmfs_err_name(mmfs_list_memories(db, &f, &ms)));
    for (size_t i = 0; ms && i < ms->count; i++) sb_printf(&b, " %" PRIu64, ms->items[i].id);
    mmfs_free(ms);
    f.tags = NULL;
    f.ntags = 0;
    f.route = mmfs_str("notes");
    ms = NULL;
    sb_printf(&b, "\nlist notes: %s\n", mmfs_err_name(mmfs_list_memories(db, &f, &ms)));
    for (size_t i = 0; ms && i < ms->count; i++) sb_printf(&b, " %" PRIu64, ms->items[i].id);
    mmfs_free(ms);
    sb_printf(&b, "\n");
    mmfs_sessions *ss = NULL;
    sb_printf(&b, "sessions: %s\n", mmfs_err_name(mmfs_list_sessions(db, 0, &ss)));
    for (size_t i = 0; ss && i < ss->count; i++) {
        sb_slice(&b, ss->items[i].id);
        sb_printf(&b, " %" PRId64 " ", ss->items[i].created_at);
        sb_slice(&b, ss->items[i].payload);
        sb_printf(&b, "\n");
    }
    mmfs_free(ss);
    for (int s = 0; s < 4; s++) {
        char name[16];
        snprintf(name, sizeof name, "stream%d", s);
        mmfs_reader *r = NULL;
        int rc = mmfs_open_read(db, mmfs_str(name), &r);
        sb_printf(&b, "%s: %s ", name, mmfs_err_name(rc));
        char buf[512];
        size_t got;
        while (rc == MMFS_OK && mmfs_reader_read(r, buf, sizeof buf, &got) == MMFS_OK && got)
            sb_printf(&b, "%.*s", (int)got, buf);
        mmfs_reader_close(r);
        sb_printf(&b, "\n");
    }
    uint64_t ver = 0;
    int rc = mmfs_get_state(db, &v, &ver);
    sb_printf(&b, "state: %s %" PRIu64 " ", mmfs_err_name(rc), ver);
    if (rc == MMFS_OK) sb_slice(&b, v);
    sb_printf(&b, "\n");
    /* Ranked searches last, after SEARCH_MARK: see check_open. */
    sb_printf(&b, SEARCH_MARK);
    for (size_t q = 0; q < NQ; q++) {
        memset(&f, 0, sizeof f);
        f.limit = 50;
        ms = NULL;
        sb_printf(&b, "search %s: %s", QUERIES[q], mmfs_err_name(mmfs_search_memory(db, mmfs_str(QUERIES[q]), &f, &ms)));
        for (size_t i = 0; ms && i < ms->count; i++) sb_printf(&b, " %" PRIu64 ":%.6g", ms->items[i].id, ms->items[i].score);
        mmfs_free(ms);
        mmfs_doc_hits *h = NULL;
        sb_printf(&b, "\ndocs %s: %s", QUERIES[q], mmfs_err_name(mmfs_search(db, mmfs_str(QUERIES[q]), 50, &h)));
        for (size_t i = 0; h && i < h->count; i++) {
            sb_printf(&b, " ");
            sb_slice(&b, h->items[i].key);
            sb_printf(&b, ":%.6g", h->items[i].score);
        }
        mmfs_free(h);
        sb_printf(&b, "\n");
    }
    return b.p;
}

/* ------------------------------------------------------------ the store */

static mmfs_db *open_store(const char *dir, int readonly, int *rc) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_NONE;
    o.segment_size = 64u << 10;
    o.checkpoint_bytes = 0;
    o.readonly = readonly;
    if (!readonly) o.policy = mmfs_str(POLICY);
    mmfs_db *db = NULL;
    *rc = mmfs_open(dir, &o, &db);
    return db;
}

static mmfs_db *must_open(const char *dir, int readonly) {
    int rc;
    mmfs_db *db = open_store(dir, readonly, &rc);
    if (!db) ct_fatal(__FILE__, __LINE__, "open %s: %s: %s", dir, mmfs_err_name(rc), mmfs_errmsg(NULL));
    return db;
}

static const char *const WORDS[] = {"apple", "river", "stone", "cloud", "ember", "maple", "harbor", "violet", "note"};
#define NW (sizeof WORDS / sizeof *WORDS)

/* N random operations of every kind; SALT makes another store's values. */
static void fill(mmfs_db *db, ct_rng *r, int n, const char *salt) {
    for (int i = 0; i < n; i++) {
        uint64_t x = ct_below(r, 100), y = ct_next(r);
        char k[32], val[128];
        snprintf(val, sizeof val, "%s %s %s %" PRIu64, salt, WORDS[y % NW], WORDS[(y >> 8) % NW], y % 100000);
        if (x < 30) {
            snprintf(k, sizeof k, "key%03d", (int)(y % 400));
            REQUIRE_OK(mmfs_set_kv(db, mmfs_str(k), mmfs_str(val)));
        } else if (x < 38) {
            snprintf(k, sizeof k, "key%03d", (int)(y % 400));
            REQUIRE_OK(mmfs_delete_kv(db, mmfs_str(k), NULL));
        } else if (x < 65) {
            char t1[8], t2[8];
            snprintf(t1, sizeof t1, "t%d", (int)(y % 5));
            snprintf(t2, sizeof t2, "u%d", (int)((y >> 16) % 3));
            mmfs_slice tags[2] = {mmfs_str(t1), mmfs_str(t2)};
            mmfs_memory_opts mo = {1, 1700000000 + (int64_t)(y % 1000000), {NULL, 0}};
            static const char *const routes[] = {"default", "quiet", "notes"};
            mo.route = mmfs_str(routes[(y >> 24) % 3]);
            REQUIRE_OK(mmfs_append_memory(db, mmfs_str(val), tags, 1 + (y >> 32) % 2, &mo, NULL));
        } else if (x < 72) {
            int del;
            REQUIRE_OK(mmfs_delete_memory(db, 1 + y % 200, &del));
        } else if (x < 80) {
            mmfs_session s;
            memset(&s, 0, sizeof s);
            snprintf(k, sizeof k, "sess%02d", (int)(y % 30));
            s.id = mmfs_str(k);
            s.has_payload = 1;
            s.payload = mmfs_str(val);
            s.has_created_at = 1;
            s.created_at = (int64_t)(y % 1000);
            REQUIRE_OK(mmfs_put_session(db, &s));
        } else if (x < 83) {
            snprintf(k, sizeof k, "sess%02d", (int)(y % 30));
            REQUIRE_OK(mmfs_delete_session(db, mmfs_str(k), NULL));
        } else if (x < 90) {
            snprintf(k, sizeof k, "stream%d", (int)(y % 4));
            REQUIRE_OK(mmfs_append_stream(db, mmfs_str(k), mmfs_str(val)));
        } else if (x < 96) {
            snprintf(k, sizeof k, "doc%02d", (int)(y % 20));
            REQUIRE_OK(mmfs_index(db, mmfs_str(k), mmfs_str(val)));
        } else if (x < 98) {
            snprintf(k, sizeof k, "doc%02d", (int)(y % 20));
            REQUIRE_OK(mmfs_unindex(db, mmfs_str(k), NULL));
        } else {
            REQUIRE_OK(mmfs_update_state(db, mmfs_str(val), NULL));
        }
    }
}

/* The newest (NTH 0) or an older checkpoint of DIR; "" if none. */
static void ckpt_path(const char *dir, int nth, char *out, size_t len) {
    char p[4096];
    snprintf(p, sizeof p, "%s/ckpt", dir);
    struct dirent **names = NULL;
    int n = scandir(p, &names, NULL, alphasort), seen = 0;
    out[0] = 0;
    for (int i = n - 1; i >= 0; i--) {
        const char *nm = names[i]->d_name;
        size_t l = strlen(nm);
        if (!out[0] && l > 5 && !strcmp(nm + l - 5, ".ckpt") && seen++ == nth) snprintf(out, len, "%s/%s", p, nm);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int write_file(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Answers from the log alone: ckpt/ moved away for the open. */
static char *truth(const char *dir) {
    char on[4200], off[4200];
    snprintf(on, sizeof on, "%s/ckpt", dir);
    snprintf(off, sizeof off, "%s/ckpt.off", dir);
    if (rename(on, off) != 0) ct_fatal(__FILE__, __LINE__, "rename %s", on);
    mmfs_db *db = must_open(dir, 1);
    mmfs_store_stats st;
    CHECK_OK(mmfs_stats(db, &st));
    CHECK(st.checkpoint_lsn == 0, "a log-only open used a checkpoint");
    char *d = dump(db);
    CHECK_OK(mmfs_close(db));
    if (rename(off, on) != 0) ct_fatal(__FILE__, __LINE__, "rename %s", off);
    return d;
}

/* Prints the first line where A and B differ. */
static void first_diff(const char *a, const char *b, char *out, size_t len) {
    size_t i = 0, line = 0;
    while (a[i] && a[i] == b[i]) {
        if (a[i] == '\n') line = i + 1;
        i++;
    }
    const char *ea = strchr(a + line, '\n'), *eb = strchr(b + line, '\n');
    int la = ea ? (int)(ea - a - line) : (int)strlen(a + line), lb = eb ? (int)(eb - b - line) : (int)strlen(b + line);
    snprintf(out, len, "got \"%.*s\", want \"%.*s\"", lb > 200 ? 200 : lb, b + line, la > 200 ? 200 : la, a + line);
}

static long opens, refused, fellback, used;

/* The answers of the log alone (WANT_LOG) and of the undamaged checkpoint
** (WANT_CK).  They differ in the ranked searches only: replaying the log
** indexes deleted and replaced texts and keeps counting them in BM25's
** document frequencies (search/index.c: "deletion only sets the flag"),
** while a checkpoint's table indexes the live ones alone. */
static const char *want_log, *want_ck;

/* Whether GOT's answers are REF's, the ranked searches aside. */
static int same_data(const char *ref, const char *got) {
    const char *a = strstr(ref, SEARCH_MARK), *b = strstr(got, SEARCH_MARK);
    return a && b && a - ref == b - got && memcmp(ref, got, (size_t)(a - ref)) == 0;
}

static int same_search(const char *ref, const char *got) {
    const char *a = strstr(ref, SEARCH_MARK), *b = strstr(got, SEARCH_MARK);
    return a && b && strcmp(a, b) == 0;
}

/* Opens DIR as it is now: its answers must be the log's (the ranked
** searches the log's or the undamaged checkpoint's), or open must fail
** with a clear error.  WHAT names the damage.  RW: a read-write open. */
static void check_open(const char *dir, int rw, const char *what) {
    int rc;
    opens++;
    mmfs_db *db = open_store(dir, !rw, &rc);
    if (!db) {
        const char *msg = mmfs_errmsg(NULL);
        CHECK((rc == MMFS_CORRUPT || rc == MMFS_INVALID) && msg && *msg, "%s: open -> %s with message \"%s\"", what,
              mmfs_err_name(rc), msg ? msg : "");
        refused++;
        return;
    }
    mmfs_store_stats st;
    CHECK_OK(mmfs_stats(db, &st));
    if (st.checkpoint_lsn) used++;
    else fellback++;
    char *got = dump(db);
    int ok = same_data(want_log, got) && (same_search(want_log, got) || same_search(want_ck, got));
    if (!ok) {
        char d[512];
        first_diff(same_data(want_log, got) ? want_ck : want_log, got, d, sizeof d);
        ct_fail(__FILE__, __LINE__, "%s (%s open, checkpoint_lsn %" PRIu64 "): a wrong answer: %s", what,
                rw ? "read-write" : "read-only", st.checkpoint_lsn, d);
    }
    free(got);
    CHECK_OK(mmfs_verify(db));
    CHECK_OK(mmfs_close(db));
}

/* Whether B (N bytes) ends with 16 bytes holding the CRC32C of the rest. */
static int crc_trailer(const uint8_t *b, size_t n) {
    if (n < 32) return 0;
    uint32_t c = mmfs__crc32c(0, b, n - 16), t;
    memcpy(&t, b + n - 16, 4);
    return c == t;
}

static void reseal(uint8_t *b, size_t n) {
    uint32_t c = mmfs__crc32c(0, b, n - 16);
    memcpy(b + n - 16, &c, 4);
}

int main(int argc, char **argv) {
    int soak = ct_soak(argc, argv);
    long stride = ct_opt(argc, argv, "--stride", "MMFS_CKPT_DAMAGE_STRIDE", soak ? 1 : 0);
    long seed = ct_opt(argc, argv, "--seed", "MMFS_CRASH_SEED", (long)time(NULL));
    printf("ckpt_damage_test: seed %ld\n", seed);
    ct_rng rng = {(uint64_t)seed};
    char *dir = ct_tmpdir("ckpt-damage"), *other = ct_tmpdir("ckpt-damage-other");
    char path[4200], old[4200], tmp[4300];

    /* The store: a checkpoint, a compaction, more, a checkpoint, more. */
    mmfs_db *db = must_open(dir, 0);
    fill(db, &rng, 1500, "a");
    REQUIRE_OK(mmfs_checkpoint(db));
    ckpt_path(dir, 0, path, sizeof path);
    size_t prelen = 0;
    uint8_t *pre = ct_read_file(path, &prelen); /* from before the compaction */
    snprintf(old, sizeof old, "%s", strrchr(path, '/') + 1);
    REQUIRE_OK(mmfs_compact(db, NULL, NULL));
    fill(db, &rng, 1500, "a");
    REQUIRE_OK(mmfs_checkpoint(db));
    fill(db, &rng, 200, "a");
    REQUIRE_OK(mmfs_close(db));
    char *want = truth(dir);
    want_log = want;
    ckpt_path(dir, 0, path, sizeof path);
    if (!path[0] || !pre) ct_fatal(__FILE__, __LINE__, "no checkpoint was written");
    size_t len = 0;
    uint8_t *orig = ct_read_file(path, &len);
    if (!orig) ct_fatal(__FILE__, __LINE__, "cannot read %s", path);
    {
        mmfs_db *ck = must_open(dir, 1);
        mmfs_store_stats st;
        CHECK_OK(mmfs_stats(ck, &st));
        CHECK(st.checkpoint_lsn > 0, "the undamaged checkpoint was not used");
        want_ck = dump(ck);
        CHECK_OK(mmfs_close(ck));
        CHECK(same_data(want_log, want_ck), "the undamaged checkpoint answers otherwise than the log");
        if (!same_search(want_log, want_ck))
            printf("note: ranked searches score otherwise from the checkpoint than from the log "
                   "(deleted texts count in the log's document frequencies)\n");
    }
    check_open(dir, 0, "the undamaged checkpoint");
    if (!stride) stride = len / 400 + 1;
    printf("checkpoint %s: %zu bytes, flips and cuts every %ld bytes (flips: every byte of the first 512 "
           "and the last 32; cuts: of the first 64 and the last 32)\n",
           strrchr(path, '/') + 1, len, stride);

    /* Flipped bits. */
    uint8_t *b = malloc(len);
    long n = 0;
    for (size_t off = 0; off < len; off += (off < 512 || off + 32 >= len) ? 1 : (size_t)stride) {
        memcpy(b, orig, len);
        b[off] ^= (uint8_t)(1u << (ct_below(&rng, 8)));
        if (write_file(path, b, len)) ct_fatal(__FILE__, __LINE__, "write %s", path);
        char what[64];
        snprintf(what, sizeof what, "a bit flipped at offset %zu", off);
        check_open(dir, n++ % 64 == 0, what);
        if (ct_failures() > 20) break;
    }
    /* Cut short. */
    for (size_t cut = 0; cut < len; cut += (cut < 64 || cut + 32 >= len) ? 1 : (size_t)stride) {
        if (write_file(path, orig, cut)) ct_fatal(__FILE__, __LINE__, "write %s", path);
        char what[64];
        snprintf(what, sizeof what, "cut to %zu bytes", cut);
        check_open(dir, n++ % 64 == 0, what);
        if (ct_failures() > 20) break;
    }
    /* A newer format: the u32 after the magic. */
    static const uint32_t formats[] = {2, 3, 99, 0xffffffffu, 0};
    int resealable = crc_trailer(orig, len);
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
        for (int rs = 0; rs <= resealable; rs++) {
            memcpy(b, orig, len);
            uint32_t cur;
            memcpy(&cur, b + 8, 4);
            if (cur == formats[i]) continue;
            memcpy(b + 8, &formats[i], 4);
            if (rs) reseal(b, len);
            write_file(path, b, len);
            char what[96];
            snprintf(what, sizeof what, "format %u%s", formats[i], rs ? " (checksum made right)" : "");
            check_open(dir, 1, what);
        }
    }
    if (!resealable) printf("the checkpoint does not end with a CRC32C of its bytes: no resealed cases\n");
    write_file(path, orig, len);

    /* Another store's checkpoint: other operations, about as many.  (With
    ** this store's seed its frames would lie where this one's do, and a
    ** frame with no value in it, a delete, would be the same bytes: its
    ** checkpoint would then be a right one for this log.) */
    mmfs_db *odb = must_open(other, 0);
    ct_rng orng = {(uint64_t)seed ^ 0x5bd1e995u};
    fill(odb, &orng, 1500, "b");
    REQUIRE_OK(mmfs_compact(odb, NULL, NULL));
    fill(odb, &orng, 1700, "b");
    REQUIRE_OK(mmfs_checkpoint(odb));
    REQUIRE_OK(mmfs_close(odb));
    char foreign[4200];
    ckpt_path(other, 0, foreign, sizeof foreign);
    size_t flen = 0;
    uint8_t *fb = ct_read_file(foreign, &flen);
    if (!fb) ct_fatal(__FILE__, __LINE__, "no checkpoint in the other store");
    write_file(path, fb, flen); /* under this store's newest name */
    check_open(dir, 0, "another store's checkpoint under this one's name");
    check_open(dir, 1, "another store's checkpoint under this one's name");
    write_file(path, orig, len);
    snprintf(tmp, sizeof tmp, "%s/ckpt/%s", dir, strrchr(foreign, '/') + 1);
    int same_name = strcmp(tmp, path) == 0;
    write_file(tmp, fb, flen); /* under its own name (maybe newer) */
    check_open(dir, 0, "another store's checkpoint under its own name");
    if (!same_name) unlink(tmp);
    write_file(path, orig, len);
    /* Another store's checkpoint under a name newer than every one here. */
    snprintf(tmp, sizeof tmp, "%s/ckpt/99999999999999999999.ckpt", dir);
    write_file(tmp, fb, flen);
    check_open(dir, 0, "another store's checkpoint under the newest name");
    check_open(dir, 1, "another store's checkpoint under the newest name");
    unlink(tmp);
    /* This store's checkpoint from before its compaction, put back. */
    snprintf(tmp, sizeof tmp, "%s/ckpt/%s", dir, old);
    int had_old = access(tmp, F_OK) == 0;
    if (!had_old) {
        write_file(tmp, pre, prelen);
        check_open(dir, 0, "a checkpoint from before the compaction");
        unlink(tmp);
    }
    write_file(path, pre, prelen); /* and under the newest name */
    check_open(dir, 0, "a checkpoint from before the compaction under the newest name");
    write_file(path, orig, len);
    /* Empty and garbage files with checkpoint names. */
    snprintf(tmp, sizeof tmp, "%s/ckpt/99999999999999999998.ckpt", dir);
    write_file(tmp, (const uint8_t *)"", 0);
    check_open(dir, 0, "an empty newest checkpoint");
    for (size_t i = 0; i < len; i++) b[i] = (uint8_t)ct_next(&rng);
    memcpy(b, orig, len < 16 ? len : 16); /* the magic and format, then garbage */
    write_file(tmp, b, len);
    check_open(dir, 0, "garbage behind a valid magic");
    check_open(dir, 1, "garbage behind a valid magic");
    unlink(tmp);
    check_open(dir, 0, "the checkpoint restored");

    printf("ckpt_damage_test: %ld opens: %ld from a checkpoint, %ld from the log, %ld refused; %d failed checks\n",
           opens, used, fellback, refused, ct_failures());
    free(b);
    free(fb);
    free(orig);
    free(pre);
    free(want);
    free((char *)want_ck);
    ct_rmrf(dir);
    ct_rmrf(other);
    free(dir);
    free(other);
    return ct_failures() ? 1 : 0;
}
