/*
** multiproc_test.c: several processes, several threads each, one store.
**
** NPROC processes each open the store once and share the handle among
** NTHR threads.  For a bounded time (3 s; --seconds N or MMFS_MP_SECONDS;
** --soak: 30 s) every thread mixes set_kv / delete_kv on a shared key set
** (values say which process, thread and sequence number wrote them),
** append_memory, and reads: values must be well formed, and a reader never
** sees a writer's value for a key go back to an older sequence number.
** Every acknowledged write is counted in shared memory, and every memory
** id given is kept.
**
** Afterwards the log is read back record by record in LSN order with the
** library's own frame and record decoders (log.h): LSNs are dense, memory
** ids dense and increasing, each thread's writes appear exactly as many
** times as it was acknowledged and in the order it made them.  Replaying
** the kv records gives the last-writer-wins contents, which every process
** (after mmfs_refresh) and a fresh open must show, key by key; every
** memory id given must read back as the text its writer appended.
*/
#include "crashutil.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define NPROC 2
#define NTHR 4
#define NKEYS 24
#define MAXIDS 200000

typedef struct thr_stats {
    uint64_t sets, dels, mems, reads;
    uint64_t nids;
    uint64_t ids[MAXIDS]; /* memory ids given to this thread, in order */
} thr_stats;

typedef struct view {
    int done;
    uint64_t digest, nkv, memories;
    int failures;
} view;

typedef struct shared {
    _Atomic int finished; /* processes done writing */
    thr_stats thr[NPROC][NTHR];
    view views[NPROC];
} shared;

static shared *sh;
static char *dir;
static uint64_t run_ms;

static void key_name(int k, char out[16]) { snprintf(out, 16, "key%02d", k); }

/* "P<p> T<t> S<seq> L<len> " then LEN filler bytes derived from seq. */
static size_t make_value(int p, int t, uint32_t seq, char *out, size_t cap) {
    unsigned len = (seq * 2654435761u >> 24) % 180;
    int n = snprintf(out, cap, "P%d T%d S%u L%u ", p, t, seq, len);
    for (unsigned i = 0; i < len; i++) out[n + i] = (char)('a' + (seq + i) % 26);
    return (size_t)n + len;
}

/* Parses and checks a value; fills writer and seq.  0 if malformed. */
static int parse_value(mmfs_slice v, int *p, int *t, uint32_t *seq) {
    char tmp[512];
    if (v.len >= sizeof tmp || v.len < 8) return 0;
    memcpy(tmp, v.ptr, v.len);
    tmp[v.len] = 0;
    unsigned len;
    int n = 0;
    if (sscanf(tmp, "P%d T%d S%u L%u %n", p, t, seq, &len, &n) != 4 || n == 0) return 0;
    if ((size_t)n + len != v.len) return 0;
    char want[512];
    return make_value(*p, *t, *seq, want, sizeof want) == v.len && memcmp(want, tmp, v.len) == 0;
}

static void mem_text(int p, int t, uint64_t seq, char out[64]) {
    snprintf(out, 64, "memory from P%d T%d number %" PRIu64 " multiproc", p, t, seq);
}

/* ------------------------------------------------------------ workers */

typedef struct worker {
    mmfs_db *db;
    int p, t;
    int failures;
} worker;

#define WCHECK(w, cond, ...)                                                   \
    do {                                                                       \
        if (!(cond)) {                                                         \
            (w)->failures++;                                                   \
            if ((w)->failures < 5) ct_fail(__FILE__, __LINE__, __VA_ARGS__);   \
        }                                                                      \
    } while (0)

static void *worker_main(void *arg) {
    worker *w = arg;
    thr_stats *ts = &sh->thr[w->p][w->t];
    ct_rng r = {(uint64_t)(w->p * 100 + w->t + 1) * 0x9e3779b97f4a7c15ull};
    uint32_t seq = 0;
    uint32_t seen[NKEYS][NPROC][NTHR]; /* newest seq seen per key and writer */
    memset(seen, 0, sizeof seen);
    char val[512], name[16], text[64];
    uint64_t end = ct_now_ms() + run_ms;
    while (ct_now_ms() < end) {
        int what = (int)ct_below(&r, 20), k = (int)ct_below(&r, NKEYS);
        key_name(k, name);
        int rc;
        if (what < 9) {
            size_t n = make_value(w->p, w->t, ++seq, val, sizeof val);
            rc = mmfs_set_kv(w->db, mmfs_str(name), (mmfs_slice){val, n});
            WCHECK(w, rc == MMFS_OK, "P%d T%d set_kv: %s: %s", w->p, w->t, mmfs_err_name(rc), mmfs_errmsg(NULL));
            if (rc == MMFS_OK) ts->sets++;
        } else if (what == 9) {
            int d = -1;
            rc = mmfs_delete_kv(w->db, mmfs_str(name), &d);
            WCHECK(w, rc == MMFS_OK, "P%d T%d delete_kv: %s", w->p, w->t, mmfs_err_name(rc));
            if (rc == MMFS_OK && d == 1) ts->dels++;
        } else if (what < 13) {
            if (ts->nids == MAXIDS) continue;
            mem_text(w->p, w->t, ts->nids, text);
            uint64_t id = 0;
            mmfs_slice tag = mmfs_str(w->p ? "proc:1" : "proc:0");
            rc = mmfs_append_memory(w->db, mmfs_str(text), &tag, 1, NULL, &id);
            WCHECK(w, rc == MMFS_OK, "P%d T%d append_memory: %s", w->p, w->t, mmfs_err_name(rc));
            if (rc == MMFS_OK) {
                WCHECK(w, ts->nids == 0 || id > ts->ids[ts->nids - 1],
                       "P%d T%d: memory id %" PRIu64 " not above my previous %" PRIu64, w->p, w->t, id,
                       ts->ids[ts->nids - 1]);
                ts->ids[ts->nids++] = id;
                ts->mems++;
            }
        } else if (what < 18) {
            mmfs_slice v;
            rc = mmfs_get_kv(w->db, mmfs_str(name), &v);
            WCHECK(w, rc == MMFS_OK || rc == MMFS_NOTFOUND, "P%d T%d get_kv: %s", w->p, w->t, mmfs_err_name(rc));
            ts->reads++;
            if (rc != MMFS_OK) continue;
            int p, t;
            uint32_t s;
            if (!parse_value(v, &p, &t, &s) || p < 0 || p >= NPROC || t < 0 || t >= NTHR) {
                WCHECK(w, 0, "P%d T%d: key %s holds a malformed value (%zu bytes)", w->p, w->t, name, v.len);
                continue;
            }
            WCHECK(w, s >= seen[k][p][t], "P%d T%d: key %s went back from P%d T%d S%u to S%u", w->p, w->t, name, p, t,
                   seen[k][p][t], s);
            if (s > seen[k][p][t]) seen[k][p][t] = s;
        } else {
            /* read back one of my memories */
            uint64_t n = ts->nids;
            if (!n) continue;
            uint64_t i = ct_below(&r, n);
            mmfs_memory *m = NULL;
            rc = mmfs_get_memory(w->db, ts->ids[i], &m);
            mem_text(w->p, w->t, i, text);
            WCHECK(w, rc == MMFS_OK && m->text.len == strlen(text) && !memcmp(m->text.ptr, text, m->text.len),
                   "P%d T%d: my memory %" PRIu64 " reads back %s", w->p, w->t, ts->ids[i],
                   rc ? mmfs_err_name(rc) : "with another text");
            mmfs_free(m);
        }
    }
    return NULL;
}

/* ------------------------------------------------- what a handle shows */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Digest of the kv contents as DB shows them. */
static uint64_t kv_digest(mmfs_db *db, uint64_t *nkv, int *fails) {
    uint64_t h = 0xcbf29ce484222325ull;
    *nkv = 0;
    for (int k = 0; k < NKEYS; k++) {
        char name[16];
        key_name(k, name);
        mmfs_slice v;
        int rc = mmfs_get_kv(db, mmfs_str(name), &v);
        if (rc != MMFS_OK && rc != MMFS_NOTFOUND) {
            ct_fail(__FILE__, __LINE__, "get_kv %s: %s", name, mmfs_err_name(rc));
            (*fails)++;
        }
        uint8_t present = rc == MMFS_OK;
        h = fnv(h, &k, sizeof k);
        h = fnv(h, &present, 1);
        if (present) {
            h = fnv(h, v.ptr, v.len);
            (*nkv)++;
        }
    }
    return h;
}

/* Every memory id any thread was given reads back as its text. */
static int check_all_memories(mmfs_db *db, const char *who) {
    int bad = 0;
    for (int p = 0; p < NPROC; p++)
        for (int t = 0; t < NTHR; t++) {
            const thr_stats *ts = &sh->thr[p][t];
            for (uint64_t i = 0; i < ts->nids; i++) {
                char text[64];
                mem_text(p, t, i, text);
                mmfs_memory *m = NULL;
                int rc = mmfs_get_memory(db, ts->ids[i], &m);
                if (rc != MMFS_OK || m->text.len != strlen(text) || memcmp(m->text.ptr, text, m->text.len)) {
                    if (bad++ < 5)
                        ct_fail(__FILE__, __LINE__, "%s: memory %" PRIu64 " (P%d T%d #%" PRIu64 "): %s", who,
                                ts->ids[i], p, t, i, rc ? mmfs_err_name(rc) : "another text");
                }
                mmfs_free(m);
            }
        }
    return bad;
}

static void proc_main(int p) {
    mmfs_options o;
    mmfs_options_init(&o);
    o.segment_size = 1 << 20; /* segment rolls while others catch up */
    mmfs_db *db;
    int rc = mmfs_open(dir, &o, &db);
    if (rc) {
        ct_fail(__FILE__, __LINE__, "P%d: open: %s: %s", p, mmfs_err_name(rc), mmfs_errmsg(NULL));
        _exit(2);
    }
    worker w[NTHR];
    pthread_t th[NTHR];
    for (int t = 0; t < NTHR; t++) {
        w[t] = (worker){db, p, t, 0};
        if (pthread_create(&th[t], NULL, worker_main, &w[t])) ct_fatal(__FILE__, __LINE__, "pthread_create");
    }
    int fails = 0;
    for (int t = 0; t < NTHR; t++) {
        pthread_join(th[t], NULL);
        fails += w[t].failures;
    }
    /* Wait until every process has stopped writing, then look. */
    atomic_fetch_add(&sh->finished, 1);
    while (atomic_load(&sh->finished) < NPROC) usleep(1000);
    rc = mmfs_refresh(db);
    if (rc) {
        ct_fail(__FILE__, __LINE__, "P%d: refresh: %s", p, mmfs_err_name(rc));
        fails++;
    }
    view *v = &sh->views[p];
    v->digest = kv_digest(db, &v->nkv, &fails);
    mmfs_store_stats st;
    if ((rc = mmfs_stats(db, &st)) != MMFS_OK) fails++;
    v->memories = st.memories;
    char who[16];
    snprintf(who, sizeof who, "P%d", p);
    fails += check_all_memories(db, who);
    if ((rc = mmfs_close(db)) != MMFS_OK) {
        ct_fail(__FILE__, __LINE__, "P%d: close: %s", p, mmfs_err_name(rc));
        fails++;
    }
    v->failures = fails;
    v->done = 1;
    _exit(fails ? 1 : 0);
}

/* --------------------------------------------------------- log replay */

typedef struct replay {
    uint64_t records, last_lsn, max_id, mems, dels;
    int present[NKEYS];
    uint8_t val[NKEYS][512];
    size_t len[NKEYS];
    uint64_t sets[NPROC][NTHR], mems_by[NPROC][NTHR];
    uint32_t last_seq[NPROC][NTHR];
    uint64_t next_mem_no[NPROC][NTHR];
} replay;

static int key_index(mmfs_slice k) {
    int i;
    char tmp[16];
    if (k.len != 5 || memcmp(k.ptr, "key", 3) != 0) return -1;
    memcpy(tmp, k.ptr, 5);
    tmp[5] = 0;
    i = atoi(tmp + 3);
    return i >= 0 && i < NKEYS ? i : -1;
}

static void replay_rec(replay *rp, const mmfs__rec *r) {
    rp->records++;
    if (r->lsn != rp->last_lsn + 1)
        ct_fail(__FILE__, __LINE__, "log: LSN %" PRIu64 " after %" PRIu64 " (not dense)", r->lsn, rp->last_lsn);
    rp->last_lsn = r->lsn;
    if (r->type == MMFS__R_KV_SET || r->type == MMFS__R_KV_DEL) {
        int k = key_index(r->u.kv.key);
        if (k < 0) {
            ct_fail(__FILE__, __LINE__, "log: unknown key in LSN %" PRIu64, r->lsn);
            return;
        }
        if (r->type == MMFS__R_KV_DEL) {
            if (!rp->present[k])
                ct_fail(__FILE__, __LINE__, "log: delete of a missing key at LSN %" PRIu64 " was written", r->lsn);
            rp->dels++;
            rp->present[k] = 0;
            return;
        }
        int p, t;
        uint32_t s;
        if (!parse_value(r->u.kv.value, &p, &t, &s) || p < 0 || p >= NPROC || t < 0 || t >= NTHR) {
            ct_fail(__FILE__, __LINE__, "log: malformed value at LSN %" PRIu64, r->lsn);
            return;
        }
        if (s <= rp->last_seq[p][t])
            ct_fail(__FILE__, __LINE__, "log: P%d T%d wrote S%u after S%u (LSN %" PRIu64 ")", p, t, s,
                    rp->last_seq[p][t], r->lsn);
        rp->last_seq[p][t] = s;
        rp->sets[p][t]++;
        rp->present[k] = 1;
        memcpy(rp->val[k], r->u.kv.value.ptr, r->u.kv.value.len);
        rp->len[k] = r->u.kv.value.len;
    } else if (r->type == MMFS__R_MEMORY) {
        if (r->u.mem.id != rp->max_id + 1)
            ct_fail(__FILE__, __LINE__, "log: memory id %" PRIu64 " after %" PRIu64 " (not dense/increasing)",
                    r->u.mem.id, rp->max_id);
        rp->max_id = r->u.mem.id;
        rp->mems++;
        int p, t;
        uint64_t no;
        char tmp[80];
        size_t n = r->u.mem.text.len < sizeof tmp - 1 ? r->u.mem.text.len : sizeof tmp - 1;
        memcpy(tmp, r->u.mem.text.ptr, n);
        tmp[n] = 0;
        if (sscanf(tmp, "memory from P%d T%d number %" SCNu64, &p, &t, &no) != 3 || p < 0 || p >= NPROC || t < 0 ||
            t >= NTHR) {
            ct_fail(__FILE__, __LINE__, "log: unexpected memory text at LSN %" PRIu64, r->lsn);
            return;
        }
        if (no != rp->next_mem_no[p][t])
            ct_fail(__FILE__, __LINE__, "log: P%d T%d memory #%" PRIu64 ", want #%" PRIu64 " (lost or doubled)", p, t,
                    no, rp->next_mem_no[p][t]);
        rp->next_mem_no[p][t] = no + 1;
        rp->mems_by[p][t]++;
        const thr_stats *ts = &sh->thr[p][t];
        if (no < ts->nids && ts->ids[no] != r->u.mem.id)
            ct_fail(__FILE__, __LINE__, "log: P%d T%d memory #%" PRIu64 " has id %" PRIu64 ", it was told %" PRIu64, p,
                    t, no, r->u.mem.id, ts->ids[no]);
    } else
        ct_fail(__FILE__, __LINE__, "log: unexpected record type %d at LSN %" PRIu64, r->type, r->lsn);
}

static void replay_log(replay *rp) {
    memset(rp, 0, sizeof *rp);
    mmfs__sum sum;
    if (mmfs__sum_init(&sum, MMFS_CHECKSUM_CRC32C, NULL, 0) != MMFS_OK) ct_fatal(__FILE__, __LINE__, "sum_init");
    for (uint32_t no = 1;; no++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/log/%08u.seg", dir, no);
        struct stat st;
        if (stat(path, &st) < 0) break;
        size_t len;
        uint8_t *img = ct_read_file(path, &len);
        if (!img) ct_fatal(__FILE__, __LINE__, "read %s", path);
        uint64_t off = MMFS__SEG_HDR;
        int sealed = 0;
        for (;;) {
            mmfs__frame f;
            const char *why;
            if (!mmfs__frame_check(img + off, len - off, rp->last_lsn + 1, &sum, &f, &why)) break;
            if (f.flags & MMFS__FRAME_SEAL) {
                sealed = 1;
                break;
            }
            const uint8_t *q = f.body, *end = f.body + f.body_len;
            for (uint32_t i = 0; i < f.count; i++) {
                mmfs__rec r;
                if (mmfs__rec_decode(q, (size_t)(end - q), &r) != MMFS_OK) {
                    ct_fail(__FILE__, __LINE__, "log: %s offset %" PRIu64 ": bad record", path, off);
                    break;
                }
                replay_rec(rp, &r);
                q += r.raw_len;
            }
            off += f.frame_len;
        }
        /* after the last frame of the last segment: nothing but zeros */
        if (!sealed)
            for (uint64_t i = off; i < len; i++)
                if (img[i]) {
                    ct_fail(__FILE__, __LINE__, "log: %s: bytes after the last frame at %" PRIu64, path, off);
                    break;
                }
        free(img);
    }
}

int main(int argc, char **argv) {
    int soak = ct_soak(argc, argv);
    run_ms = (uint64_t)ct_opt(argc, argv, "--seconds", "MMFS_MP_SECONDS", soak ? 30 : 3) * 1000u;
    uint64_t t0 = ct_now_ms();
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) ct_fatal(__FILE__, __LINE__, "mmap: %s", strerror(errno));
    memset(sh, 0, sizeof *sh);
    char *root = ct_tmpdir("multiproc");
    size_t n = strlen(root) + 16;
    dir = malloc(n);
    snprintf(dir, n, "%s/store", root);
    printf("multiproc: %d processes x %d threads for %.1f s\n", NPROC, NTHR, (double)run_ms / 1000.0);
    fflush(stdout);

    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        fflush(NULL);
        pids[p] = fork();
        if (pids[p] < 0) ct_fatal(__FILE__, __LINE__, "fork: %s", strerror(errno));
        if (pids[p] == 0) proc_main(p);
    }
    for (int p = 0; p < NPROC; p++) {
        int st;
        waitpid(pids[p], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            ct_fail(__FILE__, __LINE__, "process P%d ended with %s %d (%d failed checks there)", p,
                    WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                    sh->views[p].failures);
    }

    uint64_t acked_sets = 0, acked_mems = 0, ids = 0, acked_dels = 0;
    for (int p = 0; p < NPROC; p++)
        for (int t = 0; t < NTHR; t++) {
            acked_sets += sh->thr[p][t].sets;
            acked_mems += sh->thr[p][t].mems;
            acked_dels += sh->thr[p][t].dels;
            ids += sh->thr[p][t].nids;
        }
    CHECK(acked_sets > 100 && acked_mems > 20, "too little work to judge: %" PRIu64 " sets, %" PRIu64 " memories",
          acked_sets, acked_mems);

    /* The log, replayed by hand. */
    replay *rp = calloc(1, sizeof *rp);
    replay_log(rp);
    for (int p = 0; p < NPROC; p++)
        for (int t = 0; t < NTHR; t++) {
            const thr_stats *ts = &sh->thr[p][t];
            CHECK(rp->sets[p][t] == ts->sets, "P%d T%d: %" PRIu64 " sets acknowledged, %" PRIu64 " in the log", p, t,
                  ts->sets, rp->sets[p][t]);
            CHECK(rp->mems_by[p][t] == ts->mems, "P%d T%d: %" PRIu64 " memories acknowledged, %" PRIu64 " in the log",
                  p, t, ts->mems, rp->mems_by[p][t]);
        }
    CHECK(rp->dels == acked_dels, "%" PRIu64 " deletes reported deleted = 1, %" PRIu64 " in the log", acked_dels,
          rp->dels);
    uint64_t want = 0xcbf29ce484222325ull, want_nkv = 0;
    for (int k = 0; k < NKEYS; k++) {
        uint8_t present = (uint8_t)rp->present[k];
        want = fnv(want, &k, sizeof k);
        want = fnv(want, &present, 1);
        if (present) {
            want = fnv(want, rp->val[k], rp->len[k]);
            want_nkv++;
        }
    }

    /* Each process's view after refresh, and a fresh open. */
    for (int p = 0; p < NPROC; p++) {
        const view *v = &sh->views[p];
        if (!v->done) continue;
        CHECK(v->digest == want, "P%d sees other kv contents than the log's last writers (%" PRIu64 " keys, log %" PRIu64 ")",
              p, v->nkv, want_nkv);
        CHECK(v->memories == rp->mems, "P%d sees %" PRIu64 " memories, the log has %" PRIu64, p, v->memories, rp->mems);
    }
    mmfs_db *db;
    REQUIRE_OK(mmfs_open(dir, NULL, &db));
    CHECK_OK(mmfs_verify(db));
    int fails = 0;
    uint64_t nkv;
    uint64_t got = kv_digest(db, &nkv, &fails);
    if (got != want) {
        for (int k = 0; k < NKEYS; k++) {
            char name[16];
            key_name(k, name);
            mmfs_slice v;
            int rc = mmfs_get_kv(db, mmfs_str(name), &v);
            int same = rp->present[k] ? (rc == MMFS_OK && v.len == rp->len[k] && !memcmp(v.ptr, rp->val[k], v.len))
                                      : rc == MMFS_NOTFOUND;
            CHECK(same, "fresh open: key %s is %.*s, the log's last writer says %.*s", name,
                  rc == MMFS_OK ? (int)(v.len < 24 ? v.len : 24) : 8, rc == MMFS_OK ? (const char *)v.ptr : "deleted",
                  rp->present[k] ? 24 : 8, rp->present[k] ? (const char *)rp->val[k] : "deleted");
        }
    }
    mmfs_store_stats st;
    CHECK_OK(mmfs_stats(db, &st));
    CHECK(st.memories == rp->mems && rp->mems == ids, "fresh open: %" PRIu64 " memories, log %" PRIu64 ", ids given %" PRIu64,
          st.memories, rp->mems, ids);
    CHECK(st.lsn == rp->last_lsn, "fresh open: last LSN %" PRIu64 ", the log's %" PRIu64, st.lsn, rp->last_lsn);
    check_all_memories(db, "fresh open");
    /* ids unique across processes: they are dense in the log and each was
    ** matched to its writer above; a duplicate would have broken both. */
    CHECK_OK(mmfs_close(db));

    printf("multiproc: %" PRIu64 " sets, %" PRIu64 " memories, %" PRIu64 " log records, %" PRIu64
           " segments; %.1f s, %d failed checks\n",
           acked_sets, acked_mems, rp->records, st.segments, (double)(ct_now_ms() - t0) / 1000.0, ct_failures());
    free(rp);
    ct_rmrf(root);
    free(root);
    free(dir);
    int bad = ct_failures();
    munmap(sh, sizeof *sh);
    return bad ? 1 : 0;
}
