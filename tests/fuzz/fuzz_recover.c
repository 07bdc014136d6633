/*
** fuzz_recover.c: a libFuzzer target for recovery and everything that
** reads the log.  Each input becomes the log of a store (see fuzz_store.h
** for the modes) next to a valid MANIFEST; then mmfs_open, reads of every
** kind, mmfs_verify, a write, close, and a second open of what the first
** left.  Nothing may crash, hang or trip a sanitizer; an open that fails
** must say why.
**
** Built two ways: with clang -fsanitize=fuzzer,address,undefined (run-fuzz.sh,
** and the 60 s ctest when clang has libFuzzer), and with replay_main.c and
** AddressSanitizer only, to run the seed corpus everywhere.
**
** The store lives under $MMFS_FUZZ_DIR, else /dev/shm when writable (fsync
** costs nothing there), else $TMPDIR or /tmp.
*/
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_store.h"
#include "memmapfs.h"

static char store[4200], logdir[4300];
static uint8_t seg[FZ_SEG_SIZE], sample_frames[FZ_DATA];
static size_t sample_len;
static uint64_t sample_lsns;

static void die(const char *what) {
    fprintf(stderr, "fuzz_recover: %s: %s\n", what, mmfs_errmsg(NULL));
    abort();
}

static char top[4096];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void) {
    if (top[0]) nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void) {
    const char *base = getenv("MMFS_FUZZ_DIR");
    if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL;
    if (!base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char tmpl[4000];
    snprintf(tmpl, sizeof tmpl, "%s/mmfs-fuzz-XXXXXX", base);
    if (!mkdtemp(tmpl)) die("mkdtemp");
    snprintf(top, sizeof top, "%s", tmpl);
    atexit(cleanup);
    snprintf(store, sizeof store, "%s/store", tmpl);
    snprintf(logdir, sizeof logdir, "%s/log", store);
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_NONE;
    o.segment_size = FZ_SEG_SIZE;
    mmfs_db *db;
    if (mmfs_open(store, &o, &db) != MMFS_OK) die("create the store");
    if (mmfs_close(db) != MMFS_OK) die("close the store");
    uint8_t list[8192];
    size_t n = 0;
    for (unsigned v = 0; v < 4; v++) n += fz_sample_list(list + n, sizeof list - n, v);
    uint64_t lsn = 1;
    sample_len = fz_frame_list(list, n, sample_frames, sizeof sample_frames, &lsn);
    sample_lsns = lsn - 1;
}

static void write_seg(uint32_t no, const uint8_t *data, size_t n) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%08u.seg", logdir, no);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("create a segment");
    if (write(fd, data, n) != (ssize_t)n) die("write a segment");
    close(fd);
}

/* Leaves only MANIFEST, LOCK and an empty log/ in the store. */
static void clean_log(void) {
    DIR *d = opendir(logdir);
    if (!d) die("open log/");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4600];
        snprintf(p, sizeof p, "%s/%s", logdir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static void put(size_t off, const uint8_t *p, size_t n) {
    if (off >= FZ_SEG_SIZE) return;
    if (n > FZ_SEG_SIZE - off) n = FZ_SEG_SIZE - off;
    memcpy(seg + off, p, n);
}

static void build(const uint8_t *data, size_t size) {
    clean_log();
    uint8_t mode = size ? data[0] % 4 : 0;
    if (size) data++, size--;
    memset(seg, 0, sizeof seg);
    fz_seg_header(seg, 1);
    uint64_t lsn = 1;
    switch (mode) {
    case 0:
        put(64, data, size);
        break;
    case 1: {
        put(64, sample_frames, sample_len);
        size_t back = size ? (size_t)data[0] * 8 : 0;
        if (back > sample_len) back = sample_len;
        if (size) data++, size--;
        put(64 + sample_len - back, data, size);
        break;
    }
    case 2:
        fz_frame_list(data, size, seg + 64, FZ_DATA, &lsn);
        break;
    case 3: {
        size_t split = size ? data[0] : 0;
        if (size) data++, size--;
        split = split * 16 < size ? split * 16 : size;
        size_t used = fz_frame_list(data, split, seg + 64, FZ_DATA - 64, &lsn);
        fz_seal(seg + 64 + used, FZ_DATA - used, lsn);
        write_seg(1, seg, sizeof seg);
        memset(seg, 0, sizeof seg);
        fz_seg_header(seg, 2);
        /* the sample frames again, renumbered from LSN */
        uint8_t list[8192];
        size_t n = 0;
        for (unsigned v = 0; v < 2; v++) n += fz_sample_list(list + n, sizeof list - n, v);
        size_t m = fz_frame_list(list, n, seg + 64, FZ_DATA, &lsn);
        put(64 + m, data + split, size - split);
        write_seg(2, seg, sizeof seg);
        return;
    }
    }
    write_seg(1, seg, sizeof seg);
}

/* Reads everything the store offers through DB. */
static void read_all(mmfs_db *db) {
    mmfs_store_stats st;
    mmfs_stats(db, &st);
    mmfs_kv_iter *it;
    if (mmfs_kv_iter_open(db, (mmfs_slice){NULL, 0}, &it) == MMFS_OK) {
        mmfs_slice k, v;
        for (int i = 0; i < 2000 && mmfs_kv_iter_next(it, &k, &v) == MMFS_OK; i++) {
            mmfs_slice v2;
            mmfs_get_kv(db, k, &v2);
            mmfs_session s;
            mmfs_get_session(db, k, &s);
            mmfs_reader *r;
            if (mmfs_open_read(db, k, &r) == MMFS_OK) mmfs_reader_close(r);
        }
        mmfs_kv_iter_close(it);
    }
    mmfs_memories *ms = NULL;
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 100;
    if (mmfs_list_memories(db, &f, &ms) == MMFS_OK) {
        for (size_t i = 0; i < ms->count; i++) {
            mmfs_memory *m = NULL;
            if (mmfs_get_memory(db, ms->items[i].id, &m) == MMFS_OK) mmfs_free(m);
        }
        mmfs_free(ms);
    }
    for (uint64_t id = 0; id < 8; id++) {
        mmfs_memory *m = NULL;
        if (mmfs_get_memory(db, id, &m) == MMFS_OK) mmfs_free(m);
    }
    mmfs_slice tag = mmfs_str("speaker:An");
    f.tags = &tag;
    f.ntags = 1;
    ms = NULL;
    if (mmfs_list_memories(db, &f, &ms) == MMFS_OK) mmfs_free(ms);
    ms = NULL;
    if (mmfs_search_memory(db, mmfs_str("agent crash"), NULL, &ms) == MMFS_OK) mmfs_free(ms);
    mmfs_doc_hits *h = NULL;
    if (mmfs_search(db, mmfs_str("torn OR tails"), 10, &h) == MMFS_OK) mmfs_free(h);
    mmfs_sessions *ss = NULL;
    if (mmfs_list_sessions(db, 0, &ss) == MMFS_OK) mmfs_free(ss);
    ss = NULL;
    if (mmfs_list_by_intent(db, mmfs_str("plan"), 0, &ss) == MMFS_OK) mmfs_free(ss);
    static const char *const streams[] = {"stream", "k0", "k1", ""};
    for (size_t i = 0; i < sizeof streams / sizeof *streams; i++) {
        mmfs_reader *r;
        if (mmfs_open_read(db, mmfs_str(streams[i]), &r) != MMFS_OK) continue;
        char buf[512];
        size_t got;
        uint64_t total = 0;
        while (mmfs_reader_read(r, buf, sizeof buf, &got) == MMFS_OK && got && total < ((uint64_t)1 << 20))
            total += got;
        mmfs_reader_seek(r, 0);
        mmfs_slice c;
        mmfs_reader_peek(r, &c);
        mmfs_reader_close(r);
    }
    mmfs_slice sv;
    uint64_t ver;
    mmfs_get_state(db, &sv, &ver);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready, verbose;
    if (!ready) {
        setup();
        ready = 1;
        verbose = getenv("MMFS_FUZZ_VERBOSE") != NULL;
    }
    build(data, size);
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_NONE;
    o.create = 0;
    for (int pass = 0; pass < 2; pass++) {
        mmfs_db *db = NULL;
        int rc = mmfs_open(store, &o, &db);
        if (verbose) {
            mmfs_store_stats st;
            memset(&st, 0, sizeof st);
            if (rc == MMFS_OK) mmfs_stats(db, &st);
            fprintf(stderr, "mode %d pass %d: open %s%s%s; lsn %llu, %llu memories, %llu kv, %llu sessions\n",
                    size ? data[0] % 4 : 0, pass, mmfs_err_name(rc), rc ? ": " : "", rc ? mmfs_errmsg(NULL) : "",
                    (unsigned long long)st.lsn, (unsigned long long)st.memories, (unsigned long long)st.kv,
                    (unsigned long long)st.sessions);
        }
        if (rc != MMFS_OK) {
            const char *m = mmfs_errmsg(NULL);
            if (db != NULL || !m || !*m) abort(); /* a failed open says why and gives no handle */
            return 0;
        }
        read_all(db);
        mmfs_verify(db);
        /* a write on top of whatever recovery kept, read back */
        int w = mmfs_set_kv(db, mmfs_str("fuzz-after"), mmfs_str("value"));
        mmfs_slice v;
        if (w == MMFS_OK && (mmfs_get_kv(db, mmfs_str("fuzz-after"), &v) != MMFS_OK || v.len != 5)) abort();
        uint64_t id = 0;
        mmfs_append_memory(db, mmfs_str("after the fuzz"), NULL, 0, NULL, &id);
        mmfs_close(db);
    }
    return 0;
}
