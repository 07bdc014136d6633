/*
** mixed_crash_test.c: kill -9 during checkpoints and compactions at once,
** with one process writing and another reading and searching throughout.
**
** Each cycle forks two children on one store (sync = always, small
** segments, the background checkpointer on):
**   - the writer sets, overwrites and deletes keys, appends memories with
**     tags (some tagged "scratch", which the policy's compaction.keep
**     refuses; some on the route "eph", whose ttl has passed at birth; some
**     pinned), deletes memories, puts and deletes sessions, appends to
**     streams, indexes and unindexes documents; before each call it writes
**     its intent, after it the acknowledgement, to a side file;
**   - the reader gets keys and memories, searches and lists memories, reads
**     streams and searches documents, checking every answer it gets against
**     what the writer's texts say of themselves and against the parent's
**     model as it was at fork (a memory read back has its text, a hit's id
**     is the id of that text, a stream's old bytes never change); it writes
**     what it found wrong to its own side file;
**   - both start checkpoints and compactions at random moments.
** The parent kills both with SIGKILL at random times (together, or one a
** little after the other), reopens and checks the store against its model
** of the acknowledged operations: it opens; verify is clean; no compaction
** leftover remains; every acknowledged write is there, the one in flight
** whole or not at all; a memory that was deleted, or that keep or the ttl
** was allowed to drop, is either there with its text or absent from get,
** search and list alike, and once absent stays absent; new ids are past
** every id given; a second open without ckpt/ gives the same answers; the
** stats agree with the model.  Then it goes on with the same store.
**
**   mixed_crash_test [--cycles N] [--seed N] [--soak]
**   (MMFS_MIXED_CRASH_CYCLES, MMFS_CRASH_SEED)
*/
#include "crashutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NKEYS 40
#define NSESS 12
#define NSTREAMS 3
#define NDOCS 8
#define NWORDS 8

static const char *const WORDS[NWORDS] = {"apple", "river", "stone", "cloud",
                                          "ember", "maple", "harbor", "violet"};

/* A keep that refuses "scratch", and a route whose ttl is always past for
** the memories the writer puts there (created_at a day before now). */
static const char POLICY[] =
    "return {\n"
    "  routes = { default = {}, eph = { ttl = 3600 } },\n"
    "  compaction = { keep = function(mem, now) return not mem.tags.scratch end },\n"
    "}\n";

/* The writer's operations. */
enum { OP_SET, OP_DELKV, OP_MEM, OP_DELMEM, OP_SESS, OP_DELSESS, OP_STREAM, OP_DOC, OP_UNDOC, OP_CKPT, OP_COMPACT };

/* Memory classes: what compaction may do with one. */
enum { CLS_PLAIN, CLS_SCRATCH, CLS_EPH, CLS_PINNED, NCLS };

/* One line of the writer's side file. */
typedef struct rec {
    uint32_t ack; /* 0: about to call, 1: the call returned MMFS_OK */
    uint32_t op;
    uint32_t n;   /* the writer's operation number in this cycle */
    uint32_t arg; /* key, session, stream or document number; memory class */
    uint64_t id;  /* OP_MEM (ack): the new id; OP_DELMEM: the target */
} rec;

/* ------------------------------------------------------------ the model */

enum { M_LIVE, M_DROPPABLE, M_GONE };

typedef struct mmem {
    uint64_t id;
    uint32_t c, n, cls;
    int state;
} mmem;

typedef struct model {
    char kv[NKEYS][48]; /* "" = absent */
    char sess[NSESS][48];
    char doc[NDOCS][48];     /* the current text's token, "" = not indexed */
    char lastdoc[NDOCS][48]; /* the last token it had */
    char *stream[NSTREAMS];
    size_t slen[NSTREAMS];
    int sexists[NSTREAMS];
    mmem *mem; /* by id, increasing */
    size_t nmem, cap;
    uint64_t max_id; /* every id ever given is at most this */
} model;

static model M;

static mmem *find_mem(uint64_t id) {
    size_t lo = 0, hi = M.nmem;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (M.mem[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < M.nmem && M.mem[lo].id == id ? &M.mem[lo] : NULL;
}

static void add_mem(uint64_t id, uint32_t c, uint32_t n, uint32_t cls) {
    if (M.nmem == M.cap) {
        M.cap = M.cap ? M.cap * 2 : 1024;
        M.mem = realloc(M.mem, M.cap * sizeof *M.mem);
        if (!M.mem) ct_fatal(__FILE__, __LINE__, "out of memory");
    }
    M.mem[M.nmem++] = (mmem){id, c, n, cls, cls == CLS_SCRATCH || cls == CLS_EPH ? M_DROPPABLE : M_LIVE};
    if (id > M.max_id) M.max_id = id;
}

/* ------------------------------------------------ names, texts, values */

static void mem_text(char *b, size_t len, uint32_t c, uint32_t n, uint32_t cls) {
    snprintf(b, len, "mem c%u n%u k%u u%ux%u %s", c, n, cls, c, n, WORDS[(c + n) % NWORDS]);
}

static void mem_token(char *b, size_t len, uint32_t c, uint32_t n) { snprintf(b, len, "u%ux%u", c, n); }

static void kv_name(char *b, size_t len, uint32_t k) { snprintf(b, len, "k%02u", k); }
static void kv_value(char *b, size_t len, uint32_t k, uint32_t c, uint32_t n) {
    snprintf(b, len, "k%02u=c%un%u", k, c, n);
}
static void sess_name(char *b, size_t len, uint32_t s) { snprintf(b, len, "s%02u", s); }
static void stream_name(char *b, size_t len, uint32_t s) { snprintf(b, len, "st%u", s); }
static void stream_chunk(char *b, size_t len, uint32_t c, uint32_t n) { snprintf(b, len, "<%u.%u>", c, n); }
static void doc_name(char *b, size_t len, uint32_t d) { snprintf(b, len, "d%02u", d); }
static void doc_token(char *b, size_t len, uint32_t c, uint32_t n) { snprintf(b, len, "dc%un%u", c, n); }

/* A memory's text parsed back; 0 when it is not one the writer makes. */
static int parse_text(mmfs_slice t, uint32_t *c, uint32_t *n, uint32_t *cls) {
    char buf[128], want[128];
    if (t.len == 0 || t.len >= sizeof buf) return 0;
    memcpy(buf, t.ptr, t.len);
    buf[t.len] = 0;
    if (sscanf(buf, "mem c%u n%u k%u", c, n, cls) != 3 || *cls >= NCLS) return 0;
    mem_text(want, sizeof want, *c, *n, *cls);
    return strcmp(buf, want) == 0;
}

static int has_tag(const mmfs_memory *m, const char *tag) {
    for (size_t i = 0; i < m->ntags; i++)
        if (m->tags[i].len == strlen(tag) && memcmp(m->tags[i].ptr, tag, m->tags[i].len) == 0) return 1;
    return 0;
}

static int slice_is(mmfs_slice s, const char *z) { return s.len == strlen(z) && memcmp(s.ptr, z, s.len) == 0; }

/* Whether memory M is what its text says: the class's tags and route.
** WHY gets what is wrong. */
static int mem_consistent(const mmfs_memory *m, char *why, size_t len) {
    uint32_t c, n, cls;
    if (!parse_text(m->text, &c, &n, &cls)) {
        snprintf(why, len, "id %" PRIu64 ": a text the writer never wrote: %.*s", m->id, (int)m->text.len,
                 (const char *)m->text.ptr);
        return 0;
    }
    int ok = 1;
    if (cls == CLS_SCRATCH) ok &= has_tag(m, "scratch");
    if (cls == CLS_PINNED) ok &= has_tag(m, "pinned");
    ok &= slice_is(m->route, cls == CLS_EPH ? "eph" : "default");
    const mmem *k = find_mem(m->id);
    if (k && (k->c != c || k->n != n)) {
        snprintf(why, len, "id %" PRIu64 " has the text of c%u n%u, the model says c%u n%u", m->id, c, n, k->c, k->n);
        return 0;
    }
    if (!ok) snprintf(why, len, "id %" PRIu64 ": tags or route do not match class %u", m->id, cls);
    return ok;
}

/* ------------------------------------------------------------ the store */

static mmfs_db *open_store(const char *dir, int child, int readonly, int *rc_out) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.sync = MMFS_SYNC_ALWAYS;
    o.segment_size = 64u << 10;
    o.checkpoint_bytes = child ? 96u << 10 : 0;
    o.readonly = readonly;
    o.policy = mmfs_str(POLICY);
    if (readonly) o.policy = (mmfs_slice){NULL, 0};
    mmfs_db *db = NULL;
    int rc = mmfs_open(dir, &o, &db);
    if (rc_out) *rc_out = rc;
    return db;
}

static void child_bad(int fd, const char *fmt, ...) {
    char b[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b, sizeof b - 1, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k > sizeof b - 2) k = (int)sizeof b - 2;
    b[k++] = '\n';
    if (write(fd, b, (size_t)k) < 0) _exit(9);
}

/* Checkpoints and compactions from either child: another one running
** elsewhere is BUSY, which is fine; anything else is a finding. */
static void maintain(mmfs_db *db, int fd, int compact, const char *who) {
    int rc = compact ? mmfs_compact(db, NULL, NULL) : mmfs_checkpoint(db);
    if (rc != MMFS_OK && rc != MMFS_BUSY)
        child_bad(fd, "%s: %s -> %s: %s", who, compact ? "compact" : "checkpoint", mmfs_err_name(rc),
                  mmfs_errmsg(NULL));
}

/* ----------------------------------------------------------- the writer */

static void put(int fd, const rec *r) {
    if (write(fd, r, sizeof *r) != (ssize_t)sizeof *r) _exit(4);
}

static void writer(const char *dir, uint32_t c, uint64_t seed, int fd, int badfd) {
    int rc;
    mmfs_db *db = open_store(dir, 1, 0, &rc);
    if (!db) {
        child_bad(badfd, "writer: open -> %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
        _exit(3);
    }
    ct_rng rng = {seed};
    uint64_t mine[4096];
    size_t nmine = 0;
    for (uint32_t n = 0;; n++) {
        uint32_t x = (uint32_t)ct_below(&rng, 1000);
        rec r = {0, 0, n, 0, 0};
        char a[64], b[128];
        if (x < 250) r.op = OP_SET, r.arg = x % NKEYS;
        else if (x < 320) r.op = OP_DELKV, r.arg = x % NKEYS;
        else if (x < 560) r.op = OP_MEM, r.arg = x % NCLS;
        else if (x < 640) r.op = OP_DELMEM;
        else if (x < 720) r.op = OP_SESS, r.arg = x % NSESS;
        else if (x < 750) r.op = OP_DELSESS, r.arg = x % NSESS;
        else if (x < 850) r.op = OP_STREAM, r.arg = x % NSTREAMS;
        else if (x < 920) r.op = OP_DOC, r.arg = x % NDOCS;
        else if (x < 945) r.op = OP_UNDOC, r.arg = x % NDOCS;
        else if (x < 975) r.op = OP_CKPT;
        else r.op = OP_COMPACT;
        if (r.op == OP_DELMEM) {
            /* one of this cycle's, or one the model has */
            if (nmine && (M.nmem == 0 || ct_below(&rng, 2))) r.id = mine[ct_below(&rng, nmine)];
            else if (M.nmem) r.id = M.mem[ct_below(&rng, M.nmem)].id;
            else continue;
        }
        put(fd, &r);
        switch (r.op) {
        case OP_SET:
            kv_name(a, sizeof a, r.arg);
            kv_value(b, sizeof b, r.arg, c, n);
            rc = mmfs_set_kv(db, mmfs_str(a), mmfs_str(b));
            break;
        case OP_DELKV:
            kv_name(a, sizeof a, r.arg);
            rc = mmfs_delete_kv(db, mmfs_str(a), NULL);
            break;
        case OP_MEM: {
            mmfs_slice tags[2];
            size_t nt = 0;
            char topic[16];
            snprintf(topic, sizeof topic, "t%u", n % 5);
            tags[nt++] = mmfs_str(topic);
            if (r.arg == CLS_SCRATCH) tags[nt++] = mmfs_str("scratch");
            if (r.arg == CLS_PINNED) tags[nt++] = mmfs_str("pinned");
            mmfs_memory_opts mo = {0, 0, {NULL, 0}};
            if (r.arg == CLS_EPH) {
                mo.route = mmfs_str("eph");
                mo.has_created_at = 1;
                mo.created_at = (int64_t)time(NULL) - 86400;
            }
            mem_text(b, sizeof b, c, n, r.arg);
            rc = mmfs_append_memory(db, mmfs_str(b), tags, nt, &mo, &r.id);
            if (rc == MMFS_OK && nmine < sizeof mine / sizeof *mine) mine[nmine++] = r.id;
            break;
        }
        case OP_DELMEM:
            rc = mmfs_delete_memory(db, r.id, NULL);
            break;
        case OP_SESS: {
            mmfs_session s;
            memset(&s, 0, sizeof s);
            sess_name(a, sizeof a, r.arg);
            snprintf(b, sizeof b, "c%un%u", c, n);
            s.id = mmfs_str(a);
            s.has_payload = 1;
            s.payload = mmfs_str(b);
            rc = mmfs_put_session(db, &s);
            break;
        }
        case OP_DELSESS:
            sess_name(a, sizeof a, r.arg);
            rc = mmfs_delete_session(db, mmfs_str(a), NULL);
            break;
        case OP_STREAM:
            stream_name(a, sizeof a, r.arg);
            stream_chunk(b, sizeof b, c, n);
            rc = mmfs_append_stream(db, mmfs_str(a), mmfs_str(b));
            break;
        case OP_DOC: {
            char tok[48];
            doc_name(a, sizeof a, r.arg);
            doc_token(tok, sizeof tok, c, n);
            snprintf(b, sizeof b, "document %s about %s", tok, WORDS[n % NWORDS]);
            rc = mmfs_index(db, mmfs_str(a), mmfs_str(b));
            break;
        }
        case OP_UNDOC:
            doc_name(a, sizeof a, r.arg);
            rc = mmfs_unindex(db, mmfs_str(a), NULL);
            break;
        case OP_CKPT:
        case OP_COMPACT:
            maintain(db, badfd, r.op == OP_COMPACT, "writer");
            rc = MMFS_OK;
            break;
        default:
            rc = MMFS_OK;
        }
        if (rc != MMFS_OK) {
            child_bad(badfd, "writer: op %u (kind %u) -> %s: %s", n, r.op, mmfs_err_name(rc), mmfs_errmsg(NULL));
            _exit(5);
        }
        r.ack = 1;
        put(fd, &r);
    }
}

/* ----------------------------------------------------------- the reader */

/* Every hit or listed memory is one the writer made, with its own id; for
** a search, its text holds QUERY (a memory's token or a plain word). */
static void check_hits(mmfs_memories *h, const char *query, int fd) {
    char why[256], tok[48];
    for (size_t i = 0; h && i < h->count; i++) {
        const mmfs_memory *m = &h->items[i];
        uint32_t c, n, cls;
        if (!mem_consistent(m, why, sizeof why)) child_bad(fd, "reader: a hit: %s", why);
        else if (query && parse_text(m->text, &c, &n, &cls)) {
            mem_token(tok, sizeof tok, c, n);
            if (strcmp(tok, query) != 0 && strcmp(WORDS[(c + n) % NWORDS], query) != 0)
                child_bad(fd, "reader: search %s gave id %" PRIu64 " whose text lacks it", query, m->id);
        }
        const mmem *k = find_mem(m->id);
        if (k && k->state == M_GONE) child_bad(fd, "reader: forgotten memory %" PRIu64 " is listed", m->id);
    }
}

static void reader(const char *dir, uint64_t seed, int fd) {
    int rc;
    mmfs_db *db = open_store(dir, 1, 0, &rc);
    if (!db) {
        child_bad(fd, "reader: open -> %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
        _exit(3);
    }
    ct_rng rng = {seed};
    char why[256], a[64];
    for (;;) {
        uint32_t x = (uint32_t)ct_below(&rng, 1000);
        if (x < 200) {
            uint32_t k = x % NKEYS;
            mmfs_slice v;
            kv_name(a, sizeof a, k);
            rc = mmfs_get_kv(db, mmfs_str(a), &v);
            char pre[16];
            snprintf(pre, sizeof pre, "k%02u=c", k);
            if (rc == MMFS_OK && (v.len < strlen(pre) || memcmp(v.ptr, pre, strlen(pre)) != 0))
                child_bad(fd, "reader: key %s has value %.*s", a, (int)v.len, (const char *)v.ptr);
            else if (rc != MMFS_OK && rc != MMFS_NOTFOUND)
                child_bad(fd, "reader: get_kv %s -> %s: %s", a, mmfs_err_name(rc), mmfs_errmsg(NULL));
        } else if (x < 450) {
            uint64_t id = 1 + ct_below(&rng, M.max_id + 64);
            mmfs_memory *m = NULL;
            rc = mmfs_get_memory(db, id, &m);
            if (rc == MMFS_OK) {
                if (m->id != id) child_bad(fd, "reader: get_memory %" PRIu64 " gave id %" PRIu64, id, m->id);
                if (!mem_consistent(m, why, sizeof why)) child_bad(fd, "reader: get_memory: %s", why);
                const mmem *k = find_mem(id);
                if (k && k->state == M_GONE) child_bad(fd, "reader: memory %" PRIu64 " came back", id);
            } else if (rc != MMFS_NOTFOUND) {
                child_bad(fd, "reader: get_memory -> %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
            }
            mmfs_free(m);
        } else if (x < 650) {
            /* a token of a memory the model knows, or a plain word */
            char q[48];
            const mmem *k = M.nmem && x % 2 ? &M.mem[ct_below(&rng, M.nmem)] : NULL;
            if (k) mem_token(q, sizeof q, k->c, k->n);
            else snprintf(q, sizeof q, "%s", WORDS[x % NWORDS]);
            mmfs_filter f;
            memset(&f, 0, sizeof f);
            f.limit = 50;
            mmfs_memories *h = NULL;
            rc = mmfs_search_memory(db, mmfs_str(q), &f, &h);
            if (rc != MMFS_OK) child_bad(fd, "reader: search %s -> %s: %s", q, mmfs_err_name(rc), mmfs_errmsg(NULL));
            check_hits(h, q, fd);
            for (size_t i = 0; h && i < h->count; i++) {
                mmfs_memory *g = NULL;
                rc = mmfs_get_memory(db, h->items[i].id, &g);
                if (rc == MMFS_OK && (g->text.len != h->items[i].text.len ||
                                      memcmp(g->text.ptr, h->items[i].text.ptr, g->text.len) != 0))
                    child_bad(fd, "reader: hit %" PRIu64 " reads back with another text", h->items[i].id);
                mmfs_free(g);
            }
            if (k && k->state == M_GONE && h && h->count)
                child_bad(fd, "reader: search %s finds a forgotten memory", q);
            mmfs_free(h);
        } else if (x < 750) {
            mmfs_filter f;
            memset(&f, 0, sizeof f);
            f.limit = 40;
            mmfs_memories *h = NULL;
            rc = mmfs_list_memories(db, &f, &h);
            if (rc != MMFS_OK) child_bad(fd, "reader: list -> %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
            check_hits(h, NULL, fd);
            mmfs_free(h);
        } else if (x < 850) {
            /* a stream: what the model had at fork is its unchanged prefix */
            uint32_t s = x % NSTREAMS;
            stream_name(a, sizeof a, s);
            mmfs_reader *r = NULL;
            rc = mmfs_open_read(db, mmfs_str(a), &r);
            if (rc == MMFS_OK) {
                char buf[4096];
                size_t at = 0, got;
                int same = 1;
                while ((rc = mmfs_reader_read(r, buf, sizeof buf, &got)) == MMFS_OK && got) {
                    if (at < M.slen[s]) {
                        size_t k = M.slen[s] - at < got ? M.slen[s] - at : got;
                        same &= memcmp(buf, M.stream[s] + at, k) == 0;
                    }
                    at += got;
                }
                if (rc != MMFS_OK) child_bad(fd, "reader: read %s -> %s", a, mmfs_err_name(rc));
                if (at < M.slen[s] || !same)
                    child_bad(fd, "reader: stream %s lost or changed bytes (%zu read, %zu known)", a, at, M.slen[s]);
                mmfs_reader_close(r);
            } else if (rc != MMFS_NOTFOUND || M.sexists[s]) {
                child_bad(fd, "reader: open_read %s -> %s", a, mmfs_err_name(rc));
            }
        } else if (x < 900) {
            mmfs_doc_hits *h = NULL;
            rc = mmfs_search(db, mmfs_str(WORDS[x % NWORDS]), 20, &h);
            if (rc != MMFS_OK) child_bad(fd, "reader: doc search -> %s", mmfs_err_name(rc));
            for (size_t i = 0; h && i < h->count; i++) {
                unsigned d;
                char tail;
                char key[16];
                size_t kl = h->items[i].key.len < sizeof key - 1 ? h->items[i].key.len : sizeof key - 1;
                memcpy(key, h->items[i].key.ptr, kl);
                key[kl] = 0;
                if (sscanf(key, "d%2u%c", &d, &tail) != 1 || d >= NDOCS)
                    child_bad(fd, "reader: doc search gave key %s", key);
            }
            mmfs_free(h);
        } else if (x < 950) {
            mmfs_session s;
            uint32_t k = x % NSESS;
            sess_name(a, sizeof a, k);
            rc = mmfs_get_session(db, mmfs_str(a), &s);
            if (rc == MMFS_OK && (!s.has_payload || s.payload.len < 2 || ((const char *)s.payload.ptr)[0] != 'c'))
                child_bad(fd, "reader: session %s has a wrong payload", a);
            else if (rc != MMFS_OK && rc != MMFS_NOTFOUND)
                child_bad(fd, "reader: get_session -> %s", mmfs_err_name(rc));
        } else {
            maintain(db, fd, x >= 980, "reader");
        }
    }
}

/* ----------------------------------------------------------- the parent */

static int count_files(const char *dir, const char *sub, const char *part) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    DIR *d = opendir(p);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, part)) n++;
    closedir(d);
    return n;
}

/* Hits of memory search QUERY: how many, and whether ID is among them. */
static size_t mem_hits(mmfs_db *db, const char *query, uint64_t id, int *has) {
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = 100;
    mmfs_memories *h = NULL;
    int rc = mmfs_search_memory(db, mmfs_str(query), &f, &h);
    CHECK(rc == MMFS_OK, "search %s -> %s", query, mmfs_err_name(rc));
    size_t n = h ? h->count : 0;
    *has = 0;
    for (size_t i = 0; i < n; i++) *has |= h->items[i].id == id;
    mmfs_free(h);
    return n;
}

/* Whether document search QUERY finds key D, and how many hits it has. */
static size_t doc_hits(mmfs_db *db, const char *query, uint32_t d, int *has) {
    char key[16];
    doc_name(key, sizeof key, d);
    mmfs_doc_hits *h = NULL;
    int rc = mmfs_search(db, mmfs_str(query), 100, &h);
    CHECK(rc == MMFS_OK, "doc search %s -> %s", query, mmfs_err_name(rc));
    size_t n = h ? h->count : 0;
    *has = 0;
    for (size_t i = 0; i < n; i++) *has |= slice_is(h->items[i].key, key);
    mmfs_free(h);
    return n;
}

/* Every memory listed, by id (increasing); *n gets how many. */
static uint64_t *list_ids(mmfs_db *db, size_t *n) {
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = (size_t)1 << 24;
    mmfs_memories *h = NULL;
    int rc = mmfs_list_memories(db, &f, &h);
    CHECK(rc == MMFS_OK, "list_memories -> %s", mmfs_err_name(rc));
    *n = h ? h->count : 0;
    uint64_t *ids = malloc((*n + 1) * sizeof *ids);
    char why[256];
    for (size_t i = 0; i < *n; i++) {
        ids[i] = h->items[i].id;
        CHECK(mem_consistent(&h->items[i], why, sizeof why), "listed: %s", why);
    }
    mmfs_free(h);
    for (size_t i = 1; i < *n; i++) /* insertion sort: the list is nearly reversed */
        for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint64_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    for (size_t i = 1; i < *n; i++) CHECK(ids[i] != ids[i - 1], "memory %" PRIu64 " listed twice", ids[i]);
    return ids;
}

static int in_ids(const uint64_t *ids, size_t n, uint64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ids[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && ids[lo] == id;
}

/* memcmp that takes N = 0 with any pointers (memcmp's may not be NULL). */
static int same_bytes(const void *a, const void *b, size_t n) { return n == 0 || memcmp(a, b, n) == 0; }

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* A digest of every answer the model's names give: keys, sessions,
** streams, the memory list with texts, the documents' searches. */
static uint64_t digest(mmfs_db *db) {
    uint64_t h = 0xcbf29ce484222325ull;
    char a[64];
    for (uint32_t k = 0; k < NKEYS; k++) {
        mmfs_slice v;
        kv_name(a, sizeof a, k);
        if (mmfs_get_kv(db, mmfs_str(a), &v) == MMFS_OK) h = fnv(fnv(h, a, strlen(a)), v.ptr, v.len);
    }
    for (uint32_t s = 0; s < NSESS; s++) {
        mmfs_session x;
        sess_name(a, sizeof a, s);
        if (mmfs_get_session(db, mmfs_str(a), &x) == MMFS_OK) h = fnv(fnv(h, a, strlen(a)), x.payload.ptr, x.payload.len);
    }
    for (uint32_t s = 0; s < NSTREAMS; s++) {
        uint64_t size = 0;
        stream_name(a, sizeof a, s);
        CHECK_OK(mmfs_stream_size(db, mmfs_str(a), &size));
        h = fnv(h, &size, sizeof size);
    }
    mmfs_filter f;
    memset(&f, 0, sizeof f);
    f.limit = (size_t)1 << 24;
    mmfs_memories *m = NULL;
    CHECK_OK(mmfs_list_memories(db, &f, &m));
    for (size_t i = 0; m && i < m->count; i++)
        h = fnv(fnv(h, &m->items[i].id, sizeof m->items[i].id), m->items[i].text.ptr, m->items[i].text.len);
    mmfs_free(m);
    for (uint32_t d = 0; d < NDOCS; d++) {
        int has;
        if (M.lastdoc[d][0]) {
            size_t n = doc_hits(db, M.lastdoc[d], d, &has);
            h = fnv(fnv(h, &n, sizeof n), &has, sizeof has);
        }
    }
    return h;
}

/* The in-flight operation's effect on a name: the value it may have. */
typedef struct inflight {
    int on;
    rec r;
} inflight;

/* Applies the acknowledged operations of cycle C to the model. */
static void apply_acks(uint32_t c, const rec *v, size_t nv, inflight *fl, long cycle) {
    fl->on = 0;
    for (size_t i = 0; i < nv; i++) {
        const rec *r = &v[i];
        if (!r->ack) {
            CHECK(i + 1 == nv || (v[i + 1].ack && v[i + 1].n == r->n), "cycle %ld: side file out of order at %zu",
                  cycle, i);
            if (i + 1 == nv) fl->on = 1, fl->r = *r;
            continue;
        }
        char b[64];
        switch (r->op) {
        case OP_SET:
            kv_value(M.kv[r->arg], sizeof M.kv[0], r->arg, c, r->n);
            break;
        case OP_DELKV:
            M.kv[r->arg][0] = 0;
            break;
        case OP_MEM:
            CHECK(r->id > M.max_id, "cycle %ld: new memory id %" PRIu64 " not past %" PRIu64 " (an id given again)",
                  cycle, r->id, M.max_id);
            add_mem(r->id, c, r->n, r->arg);
            break;
        case OP_DELMEM: {
            mmem *k = find_mem(r->id);
            if (k) k->state = M_GONE;
            break;
        }
        case OP_SESS:
            snprintf(M.sess[r->arg], sizeof M.sess[0], "c%un%u", c, r->n);
            break;
        case OP_DELSESS:
            M.sess[r->arg][0] = 0;
            break;
        case OP_STREAM:
            stream_chunk(b, sizeof b, c, r->n);
            M.stream[r->arg] = realloc(M.stream[r->arg], M.slen[r->arg] + strlen(b));
            memcpy(M.stream[r->arg] + M.slen[r->arg], b, strlen(b));
            M.slen[r->arg] += strlen(b);
            M.sexists[r->arg] = 1;
            break;
        case OP_DOC:
            doc_token(M.doc[r->arg], sizeof M.doc[0], c, r->n);
            memcpy(M.lastdoc[r->arg], M.doc[r->arg], sizeof M.doc[0]);
            break;
        case OP_UNDOC:
            M.doc[r->arg][0] = 0;
            break;
        }
    }
}

/* A string name's value now: the model's, or (in flight) ALT's; the one
** found is taken into the model.  GOT is NULL when the name is absent. */
static void settle(char *model_v, size_t cap, const char *got, size_t glen, int has_alt, const char *alt,
                   const char *what, long cycle) {
    char g[64] = "";
    if (got) snprintf(g, sizeof g, "%.*s", (int)glen, got);
    int ok = strcmp(g, model_v) == 0 || (has_alt && strcmp(g, alt) == 0);
    CHECK(ok, "cycle %ld: %s is \"%s\", want \"%s\"%s%s%s", cycle, what, g, model_v, has_alt ? " or \"" : "",
          has_alt ? alt : "", has_alt ? "\"" : "");
    snprintf(model_v, cap, "%s", g);
}

static void check_store(const char *dir, uint32_t c, const inflight *fl, long cycle) {
    int rc;
    mmfs_db *db = open_store(dir, 0, 0, &rc);
    if (!db) ct_fatal(__FILE__, __LINE__, "cycle %ld: open -> %s: %s", cycle, mmfs_err_name(rc), mmfs_errmsg(NULL));
    CHECK_OK(mmfs_verify(db));
    CHECK(count_files(dir, "log", ".cseg") == 0, "cycle %ld: compaction leftovers after open", cycle);
    const rec *f = fl->on ? &fl->r : NULL;
    char a[64], alt[64], what[96];

    for (uint32_t k = 0; k < NKEYS; k++) {
        mmfs_slice v;
        kv_name(a, sizeof a, k);
        rc = mmfs_get_kv(db, mmfs_str(a), &v);
        CHECK(rc == MMFS_OK || rc == MMFS_NOTFOUND, "get_kv -> %s", mmfs_err_name(rc));
        int has_alt = f && (f->op == OP_SET || f->op == OP_DELKV) && f->arg == k;
        alt[0] = 0;
        if (has_alt && f->op == OP_SET) kv_value(alt, sizeof alt, k, c, f->n);
        snprintf(what, sizeof what, "key %s", a);
        settle(M.kv[k], sizeof M.kv[k], rc == MMFS_OK ? v.ptr : NULL, rc == MMFS_OK ? v.len : 0, has_alt, alt, what,
               cycle);
    }
    for (uint32_t s = 0; s < NSESS; s++) {
        mmfs_session x;
        sess_name(a, sizeof a, s);
        rc = mmfs_get_session(db, mmfs_str(a), &x);
        CHECK(rc == MMFS_OK || rc == MMFS_NOTFOUND, "get_session -> %s", mmfs_err_name(rc));
        int has_alt = f && (f->op == OP_SESS || f->op == OP_DELSESS) && f->arg == s;
        alt[0] = 0;
        if (has_alt && f->op == OP_SESS) snprintf(alt, sizeof alt, "c%un%u", c, f->n);
        snprintf(what, sizeof what, "session %s", a);
        settle(M.sess[s], sizeof M.sess[s], rc == MMFS_OK ? x.payload.ptr : NULL, rc == MMFS_OK ? x.payload.len : 0,
               has_alt, alt, what, cycle);
    }
    for (uint32_t s = 0; s < NSTREAMS; s++) {
        stream_name(a, sizeof a, s);
        mmfs_reader *r = NULL;
        rc = mmfs_open_read(db, mmfs_str(a), &r);
        size_t cap = M.slen[s] + 4096, at = 0, got = 0;
        char *buf = malloc(cap);
        int exists = rc == MMFS_OK;
        if (exists) { /* at most CAP bytes: more than the model and one chunk is wrong anyway */
            while (at < cap && mmfs_reader_read(r, buf + at, cap - at < 64 ? cap - at : 64, &got) == MMFS_OK && got)
                at += got;
            mmfs_reader_close(r);
        }
        char chunk[64] = "";
        int has_alt = f && f->op == OP_STREAM && f->arg == s;
        if (has_alt) stream_chunk(chunk, sizeof chunk, c, f->n);
        int same = exists == M.sexists[s] && at == M.slen[s] && same_bytes(buf, M.stream[s], at);
        int plus = has_alt && exists && at == M.slen[s] + strlen(chunk) && same_bytes(buf, M.stream[s], M.slen[s]) &&
                   same_bytes(buf + M.slen[s], chunk, strlen(chunk));
        CHECK(same || plus, "cycle %ld: stream %s: %zu bytes%s, want %zu%s %s; it ends \"%.*s\", the model \"%.*s\"",
              cycle, a, at, exists ? "" : " (missing)", M.slen[s], has_alt ? " + the one in flight" : "", chunk,
              (int)(at < 48 ? at : 48), buf + (at < 48 ? 0 : at - 48), (int)(M.slen[s] < 48 ? M.slen[s] : 48),
              M.stream[s] ? M.stream[s] + (M.slen[s] < 48 ? 0 : M.slen[s] - 48) : "");
        if (plus) {
            M.stream[s] = realloc(M.stream[s], at);
            memcpy(M.stream[s], buf, at);
            M.slen[s] = at;
            M.sexists[s] = 1;
        }
        free(buf);
    }
    for (uint32_t d = 0; d < NDOCS; d++) {
        char newtok[48] = "";
        int has_alt = f && (f->op == OP_DOC || f->op == OP_UNDOC) && f->arg == d;
        if (has_alt && f->op == OP_DOC) doc_token(newtok, sizeof newtok, c, f->n);
        int has = 0;
        char now[48] = "";
        if (newtok[0] && (doc_hits(db, newtok, d, &has), has)) snprintf(now, sizeof now, "%s", newtok);
        else if (M.doc[d][0] && (doc_hits(db, M.doc[d], d, &has), has)) snprintf(now, sizeof now, "%s", M.doc[d]);
        int ok = strcmp(now, M.doc[d]) == 0 || (has_alt && strcmp(now, newtok) == 0);
        CHECK(ok, "cycle %ld: document d%02u answers to \"%s\", want \"%s\"%s", cycle, d, now, M.doc[d],
              has_alt ? " or the one in flight" : "");
        if (M.lastdoc[d][0] && strcmp(M.lastdoc[d], now) != 0) {
            doc_hits(db, M.lastdoc[d], d, &has);
            CHECK(!has, "cycle %ld: document d%02u still answers to its old text %s", cycle, d, M.lastdoc[d]);
        }
        snprintf(M.doc[d], sizeof M.doc[d], "%s", now);
        if (newtok[0] && !strcmp(now, newtok)) snprintf(M.lastdoc[d], sizeof M.lastdoc[d], "%s", newtok);
    }

    /* Memories: the one in flight, if it was written, is the next id. */
    if (f && f->op == OP_MEM) {
        mmfs_memory *m = NULL;
        if (mmfs_get_memory(db, M.max_id + 1, &m) == MMFS_OK) {
            uint32_t mc, mn, cls;
            CHECK(parse_text(m->text, &mc, &mn, &cls) && mc == c && mn == f->n,
                  "cycle %ld: memory %" PRIu64 " is not the append in flight", cycle, M.max_id + 1);
            add_mem(M.max_id + 1, c, f->n, f->arg);
        }
        mmfs_free(m);
    }
    for (uint64_t id = M.max_id + 1; id <= M.max_id + 4; id++) {
        mmfs_memory *m = NULL;
        CHECK(mmfs_get_memory(db, id, &m) == MMFS_NOTFOUND, "cycle %ld: memory %" PRIu64 " nobody acknowledged",
              cycle, id);
        mmfs_free(m);
    }
    size_t nlisted;
    uint64_t *listed = list_ids(db, &nlisted);
    size_t present = 0;
    char tok[48], text[128];
    for (size_t i = 0; i < M.nmem; i++) {
        mmem *k = &M.mem[i];
        int unsure = f && f->op == OP_DELMEM && f->id == k->id;
        mmfs_memory *m = NULL;
        rc = mmfs_get_memory(db, k->id, &m);
        CHECK(rc == MMFS_OK || rc == MMFS_NOTFOUND, "get_memory -> %s", mmfs_err_name(rc));
        int there = rc == MMFS_OK;
        mem_token(tok, sizeof tok, k->c, k->n);
        if (there) {
            mem_text(text, sizeof text, k->c, k->n, k->cls);
            CHECK(slice_is(m->text, text), "cycle %ld: memory %" PRIu64 " has text %.*s, want %s", cycle, k->id,
                  (int)m->text.len, (const char *)m->text.ptr, text);
        }
        mmfs_free(m);
        if (k->state == M_LIVE && !unsure)
            CHECK(there, "cycle %ld: acknowledged memory %" PRIu64 " (%s) is gone", cycle, k->id, tok);
        if (k->state == M_GONE)
            CHECK(!there, "cycle %ld: memory %" PRIu64 " (%s) was deleted or forgotten, and is back", cycle, k->id,
                  tok);
        /* get, list and search agree */
        CHECK(there == in_ids(listed, nlisted, k->id), "cycle %ld: memory %" PRIu64 " %s get but %s list", cycle,
              k->id, there ? "in" : "not in", there ? "not in" : "in");
        if (there || k->state != M_GONE || cycle % 8 == 0) {
            int has;
            size_t n = mem_hits(db, tok, k->id, &has);
            CHECK(there ? has && n == 1 : n == 0, "cycle %ld: search %s: %zu hits%s, memory %" PRIu64 " %s", cycle,
                  tok, n, has ? " with it" : "", k->id, there ? "there" : "gone");
        }
        if (there) present++;
        else k->state = M_GONE; /* forgotten: it must stay so */
    }
    CHECK(present == nlisted, "cycle %ld: %zu memories listed, %zu of the model's there", cycle, nlisted, present);
    free(listed);

    mmfs_store_stats st;
    CHECK_OK(mmfs_stats(db, &st));
    uint64_t nkv = 0, nsess = 0, ndocs = 0, nstreams = 0;
    for (int k = 0; k < NKEYS; k++) nkv += M.kv[k][0] != 0;
    for (int s = 0; s < NSESS; s++) nsess += M.sess[s][0] != 0;
    for (int d = 0; d < NDOCS; d++) ndocs += M.doc[d][0] != 0;
    for (int s = 0; s < NSTREAMS; s++) nstreams += M.sexists[s];
    CHECK(st.memories == present, "cycle %ld: stats.memories %" PRIu64 ", %zu there", cycle, st.memories, present);
    CHECK(st.kv == nkv, "cycle %ld: stats.kv %" PRIu64 ", want %" PRIu64, cycle, st.kv, nkv);
    CHECK(st.sessions == nsess, "cycle %ld: stats.sessions %" PRIu64 ", want %" PRIu64, cycle, st.sessions, nsess);
    CHECK(st.documents == ndocs, "cycle %ld: stats.documents %" PRIu64 ", want %" PRIu64, cycle, st.documents, ndocs);
    CHECK(st.streams == nstreams, "cycle %ld: stats.streams %" PRIu64 ", want %" PRIu64, cycle, st.streams, nstreams);
    CHECK(st.live_bytes <= st.log_bytes && st.dead_bytes <= st.log_bytes,
          "cycle %ld: live %" PRIu64 " / dead %" PRIu64 " bytes of %" PRIu64, cycle, st.live_bytes, st.dead_bytes,
          st.log_bytes);
    CHECK(st.checkpoint_lsn <= st.lsn && st.durable_lsn <= st.lsn && st.segments >= 1 && !st.compacting,
          "cycle %ld: stats: checkpoint_lsn %" PRIu64 ", lsn %" PRIu64 ", durable %" PRIu64 ", %" PRIu64
          " segments, compacting %" PRIu64,
          cycle, st.checkpoint_lsn, st.lsn, st.durable_lsn, st.segments, st.compacting);
    uint64_t with = digest(db);
    CHECK_OK(mmfs_close(db));

    /* The same answers from the log alone. */
    char on[4200], off[4200];
    snprintf(on, sizeof on, "%s/ckpt", dir);
    snprintf(off, sizeof off, "%s/ckpt.off", dir);
    struct stat sb;
    int had = stat(on, &sb) == 0;
    if (had && rename(on, off) != 0) ct_fatal(__FILE__, __LINE__, "rename %s failed", on);
    db = open_store(dir, 0, 1, &rc);
    if (!db) ct_fatal(__FILE__, __LINE__, "cycle %ld: log-only open -> %s", cycle, mmfs_err_name(rc));
    mmfs_store_stats ls;
    CHECK_OK(mmfs_stats(db, &ls));
    CHECK(ls.checkpoint_lsn == 0, "cycle %ld: opened from a checkpoint with ckpt/ moved away", cycle);
    CHECK(digest(db) == with, "cycle %ld: a log-only open answers otherwise than one from checkpoint %" PRIu64,
          cycle, st.checkpoint_lsn);
    CHECK_OK(mmfs_close(db));
    if (had && rename(off, on) != 0) ct_fatal(__FILE__, __LINE__, "rename %s failed", off);
}

/* Reads the reader's and writer's complaints; each is a failed check. */
static void report_bad(const char *path, long cycle) {
    size_t len = 0;
    uint8_t *b = ct_read_file(path, &len);
    if (!b) return;
    char *s = (char *)b;
    for (size_t i = 0, start = 0; i < len; i++)
        if (b[i] == '\n') {
            ct_fail(__FILE__, __LINE__, "cycle %ld: %.*s", cycle, (int)(i - start), s + start);
            start = i + 1;
        }
    free(b);
}

int main(int argc, char **argv) {
    int soak = ct_soak(argc, argv);
    long cycles = ct_opt(argc, argv, "--cycles", "MMFS_MIXED_CRASH_CYCLES", soak ? 600 : 150);
    long seed = ct_opt(argc, argv, "--seed", "MMFS_CRASH_SEED", (long)time(NULL));
    printf("mixed_crash_test: %ld cycles, seed %ld\n", cycles, seed);
    fflush(stdout);
    ct_rng rng = {(uint64_t)seed};
    char *dir = ct_tmpdir("mixed-crash"), *side = ct_tmpdir("mixed-crash-side");
    char wpath[4200], bpath[4200];
    snprintf(wpath, sizeof wpath, "%s/writer", side);
    snprintf(bpath, sizeof bpath, "%s/bad", side);
    {
        int rc;
        mmfs_db *db = open_store(dir, 0, 0, &rc);
        if (!db) ct_fatal(__FILE__, __LINE__, "create: %s: %s", mmfs_err_name(rc), mmfs_errmsg(NULL));
        REQUIRE_OK(mmfs_close(db));
    }
    long in_compact = 0, in_ckpt = 0;
    uint64_t t0 = ct_now_ms();
    size_t total_acks = 0;
    for (long cycle = 0; cycle < cycles && !ct_failures(); cycle++) {
        uint32_t c = (uint32_t)cycle + 1;
        int wfd = open(wpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        int bfd = open(bpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        if (wfd < 0 || bfd < 0) ct_fatal(__FILE__, __LINE__, "cannot create the side files");
        uint64_t wseed = ct_next(&rng), rseed = ct_next(&rng);
        fflush(stdout);
        pid_t pid[2];
        for (int w = 0; w < 2; w++) {
            pid[w] = fork();
            if (pid[w] < 0) ct_fatal(__FILE__, __LINE__, "fork failed");
            if (pid[w] == 0) {
                if (w == 0) writer(dir, c, wseed, wfd, bfd);
                else reader(dir, rseed, bfd);
                _exit(0);
            }
        }
        close(wfd);
        close(bfd);
        /* long enough for both to open and get going, sometimes much longer */
        long ms = 40 + (long)ct_below(&rng, ct_below(&rng, 4) ? 250 : 900);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        int first = (int)ct_below(&rng, 2);
        kill(pid[first], SIGKILL);
        if (ct_below(&rng, 2)) { /* the other a little later: it sees the first one's crash */
            struct timespec gap = {0, (long)(1 + ct_below(&rng, 40)) * 1000000L};
            nanosleep(&gap, NULL);
        }
        kill(pid[!first], SIGKILL);
        for (int w = 0; w < 2; w++) {
            int status;
            waitpid(pid[w], &status, 0);
            CHECK(WIFSIGNALED(status), "cycle %ld: the %s ended by itself (status %d)", cycle, w ? "reader" : "writer",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        report_bad(bpath, cycle);
        if (count_files(dir, "log", ".cseg")) in_compact++;
        if (count_files(dir, "ckpt", ".tmp.")) in_ckpt++;
        size_t len = 0;
        rec *v = (rec *)ct_read_file(wpath, &len);
        size_t nv = v ? len / sizeof *v : 0;
        inflight fl;
        apply_acks(c, v, nv, &fl, cycle);
        total_acks += nv / 2;
        free(v);
        check_store(dir, c, &fl, cycle);
        if (cycle % 10 == 9 || ct_failures())
            printf("cycle %ld: %zu operations, %zu memories known, %ld killed in a compaction, %ld in a checkpoint, "
                   "%.1f s\n",
                   cycle, nv / 2, M.nmem, in_compact, in_ckpt, (double)(ct_now_ms() - t0) / 1000);
    }
    printf("mixed_crash_test: %ld cycles, %zu acknowledged operations, %zu memories (%ld kills inside a "
           "compaction, %ld inside a checkpoint write), %.1f s, %d failed checks\n",
           cycles, total_acks, M.nmem, in_compact, in_ckpt, (double)(ct_now_ms() - t0) / 1000, ct_failures());
    for (int s = 0; s < NSTREAMS; s++) free(M.stream[s]);
    free(M.mem);
    ct_rmrf(dir);
    ct_rmrf(side);
    free(dir);
    free(side);
    return ct_failures() ? 1 : 0;
}
