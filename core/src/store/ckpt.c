/*
** ckpt.c: checkpoints.  Owns ROOT/ckpt/ (the file format, in
** docs/format.md), mmfs_checkpoint, loading the newest valid checkpoint
** at open (mmfs__ckpt_load) and the background checkpointer.
**
** A checkpoint is the engine's state at an LSN, written as positions of
** records in the log (segment << 40 | offset), never as copies of values:
**   - the kv map as a hash table and a key-ordered table that the engine
**     reads through mmap (kv.c: lookups ask the newer records first, then
**     the mapped tables), so neither open time nor heap grows with keys;
**   - the memory table (per id: position, route, deleted; the live ids by
**     time; the routes; each tag's live ids), read through mmap the same
**     way (memory.c);
**   - every other live record (sessions, stream chunks, documents, the
**     state, the policy) as one list in log order, which open applies
**     again (no log scan, no checksums, only live records);
**   - the ends of the sealed segments before it, so open skips them.
** It ends at an *anchor*: the last frame it covers, named by segment,
** offset and first LSN.  Open checks that frame in the log (its header,
** checksum and LSNs) before trusting the file, so a checkpoint of another
** log (a repaired tail, a copied directory, a compaction's new segments)
** is never applied; MANIFEST's first_segment must also be the one it was
** made against.
**
** Invariants:
** - The log stays the truth.  A checkpoint is derived, immutable, and
**   skipped when anything is off (checksum, size, format, first_segment,
**   tokenizer, anchor, a position outside the log): open then tries the
**   next older one, then the whole log.  Nothing here ever changes the
**   log, and a failed open writes nothing.
** - A checkpoint covers only frames that are durable: the anchor's
**   segment is fdatasync'd before the file is written (older segments
**   were synced before their successor existed), so a crash cannot leave
**   a checkpoint ahead of the log.
** - Files appear whole: written under a temporary name, fsync'd, renamed,
**   ckpt/ fsync'd; only then are all but the newest two removed.
** - Written holding the writer mutex only while picking the LSN (catch
**   up, note the anchor), and the engine's read side while copying
**   record pointers; sorting, hashing and writing hold no lock.
**
** The full-text indexes are not in the file (format section 5 is kept
** for index segments; not built yet): after loading, the memories' index
** work is one queued op that the first search or write does (the drain
** reads their texts then), the documents' index is built as they are
** applied.
*/
#include "db.h"
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CK_MAGIC "MMFSCKPT"
#define CK_FORMAT 1u
#define CK_HDR 512
#define CK_SUM 16 /* bytes kept for the checksum at the end of the file */

/* Section kinds.  A file with a kind this library does not know is from a
** newer writer and is skipped. */
enum {
    SEC_SEGMENTS = 1, /* u32 no, u32 0, u64 end: sealed segments before the anchor's */
    SEC_KV_HASH = 2,  /* u64 hash, u64 pos: open addressing, power-of-two slots */
    SEC_KV_ORDER = 3, /* u64 pos: the same records by key */
    SEC_RECORDS = 4,  /* u64 pos: every other live record, in log order */
    SEC_INDEX = 5,    /* full-text index segments: not built yet, always empty */
    SEC_MEM_ENTS = 6, /* u64 pos, u32 route, u32 flags (1: deleted): ids from H_MEM_BASE */
    SEC_MEM_TIME = 7, /* u64 id: live memories, created_at desc then id desc */
    SEC_ROUTES = 8,   /* bytes: H_NROUTES x (u32 length, name, zeros to 8) */
    SEC_TAGS = 9      /* bytes: per tag u32 length, u32 0, u64 n, name (to 8), n u64 ids */
};

/* Header offsets. */
enum {
    H_MAGIC = 0,
    H_FORMAT = 8,
    H_SUMTYPE = 12,
    H_LSN = 16,
    H_SIZE = 24,
    H_FIRST_SEG = 32,
    H_ANCHOR_SEG = 36,
    H_ANCHOR_OFF = 40,
    H_ANCHOR_LSN = 48,
    H_TOK_VERSION = 56,
    H_TOK_LANG = 60, /* 32 bytes, NUL padded */
    H_NEXT_MEM = 96,
    H_LIVE_BYTES = 104, /* the engine's live_bytes at the LSN */
    H_NSEC = 112,
    H_SEC = 120, /* the section table, below */
    H_ANCHOR_SUM = 336, /* 16 bytes: the anchor frame's checksum (zero padded) */
    H_MEM_BASE = 352,   /* u64 the first id of SEC_MEM_ENTS */
    H_MEM_LIVE = 360,   /* u64 live memories */
    H_NROUTES = 368,    /* u64 routes in SEC_ROUTES */
    H_REC_BYTES = 376   /* u64 bytes of the records applied up to the LSN (stats' dead_bytes) */
};
/* Nine sections, (u32 kind, u32 0, u64 offset, u64 count) at H_SEC + 24 k,
** one of each kind in order: 120 + 9 * 24 = 336.  Each starts 8-aligned;
** the count of a byte section is its length. */
#define CK_NSEC 9

static size_t sec_entsize(uint32_t kind) {
    switch (kind) {
    case SEC_SEGMENTS: return 16;
    case SEC_KV_HASH: return 16;
    case SEC_KV_ORDER: return 8;
    case SEC_RECORDS: return 8;
    case SEC_INDEX: return 8;
    case SEC_MEM_ENTS: return 16;
    case SEC_MEM_TIME: return 8;
    case SEC_ROUTES: return 1;
    case SEC_TAGS: return 1;
    default: return 0;
    }
}

static void ck_dir(const mmfs_db *db, char *buf, size_t len) { snprintf(buf, len, "%s/ckpt", db->dir); }

static void ck_path(const mmfs_db *db, uint64_t lsn, char *buf, size_t len) {
    snprintf(buf, len, "%s/ckpt/%020llu.ckpt", db->dir, (unsigned long long)lsn);
}

/* ---------------------------------------------------------------- listing */

static int cmp_u64_desc(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x > y ? -1 : x < y;
}

/* The LSNs of the checkpoint files in ckpt/, newest first (*n = 0 when
** the directory is missing).  With CLEAN, removes temporaries left by
** processes that are gone. */
static int list_ckpts(mmfs_db *db, uint64_t **out, size_t *n, int clean) {
    char dir[4200];
    ck_dir(db, dir, sizeof dir);
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? MMFS_OK : mmfs__err_sys(errno, "open directory", dir);
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) {
                int err = errno;
                free(v);
                closedir(d);
                return mmfs__err_sys(err, "read directory", dir);
            }
            break;
        }
        unsigned long long lsn;
        char tail[64];
        int pid;
        if (sscanf(e->d_name, "%20llu.%63s", &lsn, tail) != 2 || strlen(e->d_name) < 25) continue;
        if (clean && sscanf(tail, "ckpt.tmp.%d.", &pid) == 1 && pid > 0 && kill(pid, 0) < 0 && errno == ESRCH) {
            char p[4500];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
            continue;
        }
        if (strcmp(tail, "ckpt") != 0) continue;
        if (cnt == cap) {
            void *arr = v;
            if (mmfs__grow(&arr, &cap, cnt + 1, sizeof *v)) {
                free(v);
                closedir(d);
                return MMFS_NOMEM;
            }
            v = arr;
        }
        v[cnt++] = lsn;
    }
    closedir(d);
    if (cnt) qsort(v, cnt, sizeof *v, cmp_u64_desc);
    *out = v;
    *n = cnt;
    return MMFS_OK;
}

/* ---------------------------------------------------------------- writing */

/* What a checkpoint copies under the locks, and what it makes of that
** after them.  Under the engine's read side it copies only what changed
** since the mapped checkpoint (everything, without one): the mapped
** tables are immutable for the engine's life, so they are merged in after
** the lock is released (merge_kv, merge_memories), and the lock is held
** for the size of the changes, not of the store. */
typedef struct snap {
    /* After this handle compacted the store, its engine still points into
    ** the old segments (kept mapped until close): such a record is found
    ** in the new ones by its LSN, which compaction keeps.  lsnpos: (LSN,
    ** position) of every record of segs, in log order, made on first need. */
    uint64_t *lsnpos;
    size_t nlsnpos;
    int lsnpos_made;
    const mmfs__sum *sum;
    uint64_t lsn, anchor, anchor_lsn, next_mem, live_bytes, rec_bytes;
    uint8_t anchor_sum[16];
    uint32_t first_seg;
    struct sseg {
        uint32_t no;
        int fd;
        const uint8_t *map;
        size_t size;
        uint64_t end;
    } *segs; /* up to the anchor's */
    size_t nsegs;
    const uint8_t **recs; /* live records but kv and memories, any order */
    size_t nrecs, reccap;
    /* Copied under the lock. */
    const mmfs__kvck *kvck;  /* the mapped kv tables (n = 0: none) */
    const uint8_t **dset;    /* newer KV_SET records, by key */
    size_t ndset, dsetcap;
    const uint8_t **dkeys;   /* every newer kv record (hides the checkpoint's key) */
    size_t ndkeys, dkeycap;
    mmfs__memck mck;         /* the mapped memory table; dead is a copy */
    mmfs__mem_ent *dents;    /* the newer ents, ids dbase.. */
    uint64_t dbase;
    size_t ndents;
    const uint8_t **dtime;   /* the newer live memories by time */
    size_t ndtime, dtimecap;
    mmfs_slice *routes;
    size_t nroutes;
    mmfs_slice *tag_names;   /* per tag: name, mapped ids, newer ids */
    const uint8_t **tag_ck;
    size_t *tag_ckn, *tag_in_at;
    size_t ntags, tagcap;
    uint64_t *tag_in;
    size_t ntag_in, tag_incap;
    /* Made after it: what the file holds. */
    const uint8_t **kv;      /* live KV_SET records, by key */
    size_t nkv, kvcap;
    mmfs__mem_ent *ents;     /* entries of ids mem_base .. next_mem - 1 */
    uint64_t mem_base, mem_live;
    size_t nents;
    uint64_t *time;          /* live ids by time */
    size_t ntime, timecap;
    size_t *tag_at;          /* tag i's live ids: tag_ids[tag_at[i] .. tag_at[i + 1]) */
    uint64_t *tag_ids;
    size_t ntag_ids, tag_idcap;
} snap;

static int push(const uint8_t ***arr, size_t *n, size_t *cap, const uint8_t *raw) {
    void *a = *arr;
    int rc = mmfs__grow(&a, cap, *n + 1, sizeof **arr);
    if (rc) return rc;
    *arr = a;
    (*arr)[(*n)++] = raw;
    return MMFS_OK;
}

static int push64(uint64_t **arr, size_t *n, size_t *cap, uint64_t v) {
    void *a = *arr;
    int rc = mmfs__grow(&a, cap, *n + 1, sizeof **arr);
    if (rc) return rc;
    *arr = a;
    (*arr)[(*n)++] = v;
    return MMFS_OK;
}

/* Copies pointers to every live record of E but the kv ones and the
** memories.  Caller holds the engine's read side. */
static int take_records(const mmfs__engine *e, snap *s) {
    int rc = MMFS_OK;
    const mmfs__hmap *maps[] = {&e->sess.map, &e->streams};
    for (int k = 0; k < 2 && rc == MMFS_OK; k++) {
        const mmfs__hmap *h = maps[k];
        if (!h->slots) continue;
        for (size_t i = 0; i <= h->mask && rc == MMFS_OK; i++) {
            uintptr_t v = h->slots[i].val;
            if (!v) continue;
            if (k == 0) {
                rc = push(&s->recs, &s->nrecs, &s->reccap, (const uint8_t *)v);
                continue;
            }
            /* The stream's first record (its name points into it) makes
            ** the stream even when it appended nothing; then each chunk's
            ** record: a chunk points at the bytes of its STREAM_APPEND
            ** (header, str key = the name, u32 length, bytes). */
            const mmfs__stream *st = (const mmfs__stream *)v;
            const uint8_t *first = (const uint8_t *)st->name.ptr - MMFS__REC_HDR - 4;
            mmfs_assert(first[4] == MMFS__R_STREAM_APPEND, "ckpt: a stream name outside its record");
            rc = push(&s->recs, &s->nrecs, &s->reccap, first);
            for (size_t c = 0; c < st->n && rc == MMFS_OK; c++) {
                const uint8_t *raw = st->chunks[c].ptr - MMFS__REC_HDR - 8 - st->name.len;
                mmfs_assert(raw[4] == MMFS__R_STREAM_APPEND, "ckpt: a chunk outside its record");
                if (raw != first) rc = push(&s->recs, &s->nrecs, &s->reccap, raw);
            }
        }
    }
    for (size_t i = 1; i < e->docs.next && rc == MMFS_OK; i++)
        if (e->docs.recs[i]) rc = push(&s->recs, &s->nrecs, &s->reccap, e->docs.recs[i]);
    if (rc == MMFS_OK && e->state.raw) rc = push(&s->recs, &s->nrecs, &s->reccap, e->state.raw);
    if (rc == MMFS_OK && e->policy) rc = push(&s->recs, &s->nrecs, &s->reccap, e->policy);
    return rc;
}

/* The kv records since the checkpoint (kv.c: order has the KV_SETs, map
** every key they touched).  Caller holds the engine's read side. */
static int take_kv(const mmfs__engine *e, snap *s) {
    int rc = MMFS_OK;
    s->kvck = &e->kv.ck;
    mmfs__bt_pos pos;
    for (const uint8_t *r = mmfs__bt_first(&e->kv.order, &pos); r && rc == MMFS_OK; r = mmfs__bt_next(&pos))
        rc = push(&s->dset, &s->ndset, &s->dsetcap, r);
    const mmfs__hmap *h = &e->kv.map;
    if (s->kvck->n && h->slots)
        for (size_t i = 0; i <= h->mask && rc == MMFS_OK; i++)
            if (h->slots[i].val) rc = push(&s->dkeys, &s->ndkeys, &s->dkeycap, (const uint8_t *)h->slots[i].val);
    return rc;
}

/* The memory table since the checkpoint: the newer ents, by_time and tag
** ids, the checkpoint's deleted bits, routes and tag names.  Caller holds
** the engine's read side. */
static int take_memories(const mmfs__engine *e, snap *s) {
    const mmfs__mems *m = &e->mems;
    s->mem_live = m->live;
    s->mck = m->ck;
    s->mck.dead = NULL;
    if (m->ck.dead) {
        if (!(s->mck.dead = malloc((m->ck.n + 7) / 8))) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
        memcpy(s->mck.dead, m->ck.dead, (m->ck.n + 7) / 8);
    }
    s->dbase = m->base;
    s->ndents = m->n;
    if (m->n && !(s->dents = malloc(m->n * sizeof *s->dents)))
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (memory table)");
    if (m->n) memcpy(s->dents, m->ents, m->n * sizeof *s->dents);
    int rc = MMFS_OK;
    mmfs__bt_pos pos;
    for (const uint8_t *r = mmfs__bt_first(&m->by_time, &pos); r && rc == MMFS_OK; r = mmfs__bt_next(&pos))
        rc = push(&s->dtime, &s->ndtime, &s->dtimecap, r);
    if (rc) return rc;
    s->nroutes = m->nroutes;
    if (s->nroutes && !(s->routes = malloc(s->nroutes * sizeof *s->routes)))
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (routes)");
    if (s->nroutes) memcpy(s->routes, m->route_names, s->nroutes * sizeof *s->routes);
    size_t ntags = m->tags.count;
    s->tag_names = malloc((ntags + 1) * sizeof *s->tag_names);
    s->tag_ck = malloc((ntags + 1) * sizeof *s->tag_ck);
    s->tag_ckn = malloc((ntags + 1) * sizeof *s->tag_ckn);
    s->tag_in_at = malloc((ntags + 1) * sizeof *s->tag_in_at);
    if (!s->tag_names || !s->tag_ck || !s->tag_ckn || !s->tag_in_at)
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (tags)");
    s->tag_in_at[0] = 0;
    for (size_t i = 0; m->tags.slots && i <= m->tags.mask && rc == MMFS_OK; i++) {
        const mmfs__tag *t = (const mmfs__tag *)m->tags.slots[i].val;
        if (!t) continue;
        s->tag_names[s->ntags] = t->name;
        s->tag_ck[s->ntags] = t->ck_ids;
        s->tag_ckn[s->ntags] = t->ck_n;
        for (size_t j = 0; j < t->n && rc == MMFS_OK; j++) rc = push64(&s->tag_in, &s->ntag_in, &s->tag_incap, t->ids[j]);
        s->tag_in_at[++s->ntags] = s->ntag_in;
    }
    return rc;
}

static void snap_free(snap *s) {
    free(s->lsnpos);
    free(s->segs);
    free(s->recs);
    free(s->dset);
    free(s->dkeys);
    free(s->mck.dead);
    free(s->dents);
    free(s->dtime);
    free(s->routes);
    free(s->tag_names);
    free(s->tag_ck);
    free(s->tag_ckn);
    free(s->tag_in_at);
    free(s->tag_in);
    free(s->kv);
    free(s->ents);
    free(s->time);
    free(s->tag_at);
    free(s->tag_ids);
}

static int cmp_rec_key(const void *a, const void *b) {
    return mmfs__slice_cmp(mmfs__raw_key(*(const uint8_t *const *)a), mmfs__raw_key(*(const uint8_t *const *)b));
}

/* The live kv records in key order: the checkpoint's, but those whose key
** a newer record has, merged with the newer KV_SETs.  No lock: the mapped
** tables and the records in the log do not change. */
static int merge_kv(snap *s) {
    const mmfs__kvck *ck = s->kvck;
    if (s->ndkeys) qsort(s->dkeys, s->ndkeys, sizeof *s->dkeys, cmp_rec_key);
    size_t i = 0, j = 0, k = 0;
    const uint8_t *c = NULL;
    for (;;) {
        while (!c && i < ck->n) {
            if (!(c = mmfs__kvck_rec(ck, mmfs__ld64(ck->order + 8 * i++)))) continue;
            mmfs_slice key = mmfs__raw_key(c);
            while (k < s->ndkeys && mmfs__slice_cmp(mmfs__raw_key(s->dkeys[k]), key) < 0) k++;
            if (k < s->ndkeys && mmfs__slice_eq(mmfs__raw_key(s->dkeys[k]), key)) c = NULL; /* hidden */
        }
        const uint8_t *d = j < s->ndset ? s->dset[j] : NULL;
        if (!c && !d) return MMFS_OK;
        int rc;
        if (d && (!c || mmfs__slice_cmp(mmfs__raw_key(d), mmfs__raw_key(c)) < 0)) {
            rc = push(&s->kv, &s->nkv, &s->kvcap, d);
            j++;
        } else {
            rc = push(&s->kv, &s->nkv, &s->kvcap, c);
            c = NULL;
        }
        if (rc) return rc;
    }
}

/* The checkpoint's entry of ID as it was when copied (a NULL raw: none). */
static mmfs__mem_ent ck_mem(const snap *s, uint64_t id) {
    mmfs__mem_ent ent = {NULL, 0, 0};
    const mmfs__memck *ck = &s->mck;
    if (id < ck->base || id - ck->base >= ck->n) return ent;
    uint64_t i = id - ck->base;
    const uint8_t *p = ck->ents + i * 16;
    ent.raw = mmfs__ck_rec(s->kvck, mmfs__ld64(p));
    ent.route = mmfs__ld32(p + 8);
    ent.deleted = (mmfs__ld32(p + 12) & 1) || (ck->dead && (ck->dead[i >> 3] >> (i & 7) & 1));
    return ent;
}

/* The entry of ID, newer ents first. */
static mmfs__mem_ent snap_mem(const snap *s, uint64_t id) {
    if (id >= s->dbase && id - s->dbase < s->ndents && s->dents[id - s->dbase].raw) return s->dents[id - s->dbase];
    return ck_mem(s, id);
}

/* 1 if the record A sorts before B by time (created_at desc, id desc). */
static int time_before(const uint8_t *a, const uint8_t *b) {
    int64_t ca = mmfs__raw_mem_created(a), cb = mmfs__raw_mem_created(b);
    if (ca != cb) return ca > cb;
    return mmfs__raw_mem_id(a) > mmfs__raw_mem_id(b);
}

/* The memory table as the file holds it: every entry, the live ids by
** time (the checkpoint's order merged with the newer by_time), each tag's
** live ids.  No lock, as merge_kv. */
static int merge_memories(snap *s) {
    uint64_t first = s->mck.n ? s->mck.base : s->ndents ? s->dbase : s->next_mem;
    s->mem_base = first;
    s->nents = (size_t)(s->next_mem - first);
    if (s->nents && !(s->ents = calloc(s->nents, sizeof *s->ents)))
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (memory table)");
    for (size_t i = 0; i < s->nents; i++) s->ents[i] = snap_mem(s, first + i);
    int rc = MMFS_OK;
    size_t ci = 0, di = 0;
    const uint8_t *c = NULL;
    for (;;) {
        while (!c && ci < s->mck.ntime) {
            mmfs__mem_ent ent = ck_mem(s, mmfs__ld64(s->mck.time + 8 * ci++));
            if (ent.raw && !ent.deleted) c = ent.raw;
        }
        const uint8_t *d = di < s->ndtime ? s->dtime[di] : NULL;
        if (!c && !d) break;
        const uint8_t *r = d && (!c || time_before(d, c)) ? d : c;
        if (r == d) di++;
        else c = NULL;
        if ((rc = push64(&s->time, &s->ntime, &s->timecap, mmfs__raw_mem_id(r)))) return rc;
    }
    if (!(s->tag_at = malloc((s->ntags + 1) * sizeof *s->tag_at)))
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (tags)");
    s->tag_at[0] = 0;
    for (size_t t = 0; t < s->ntags && rc == MMFS_OK; t++) {
        for (size_t j = 0; j < s->tag_ckn[t] && rc == MMFS_OK; j++) {
            uint64_t id = mmfs__ld64(s->tag_ck[t] + 8 * j);
            mmfs__memck *ck = &s->mck;
            uint64_t i = id - ck->base;
            if (id >= ck->base && i < ck->n && ck->dead && (ck->dead[i >> 3] >> (i & 7) & 1)) continue;
            rc = push64(&s->tag_ids, &s->ntag_ids, &s->tag_idcap, id);
        }
        for (size_t j = s->tag_in_at[t]; j < s->tag_in_at[t + 1] && rc == MMFS_OK; j++) {
            mmfs__mem_ent ent = snap_mem(s, s->tag_in[j]);
            if (ent.raw && !ent.deleted) rc = push64(&s->tag_ids, &s->ntag_ids, &s->tag_idcap, s->tag_in[j]);
        }
        s->tag_at[t + 1] = s->ntag_ids;
    }
    return rc;
}

/* Picks the LSN (under wmu), copies what changed since the mapped
** checkpoint (under rw's read side), then merges the mapped tables in (no
** lock).  *EMPTY: the log has no frame yet (nothing to write). */
static int take_snap(mmfs_db *db, snap *s, int *empty) {
    pthread_mutex_lock(&db->wmu);
    int rc = mmfs__catch_up_locked(db, atomic_load_explicit(&db->shm->written, memory_order_acquire));
    *empty = db->last_frame == 0;
    if (rc || *empty) {
        pthread_mutex_unlock(&db->wmu);
        return rc;
    }
    s->lsn = db->next_lsn - 1;
    s->anchor = db->last_frame;
    s->rec_bytes = db->rec_bytes;
    s->first_seg = db->first_seg;
    uint32_t aseg = MMFS__POS_SEG(s->anchor);
    s->segs = calloc(db->nsegs, sizeof *s->segs);
    if (!s->segs) {
        pthread_mutex_unlock(&db->wmu);
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
    }
    for (size_t i = 0; i < db->nsegs && db->segs[i].no <= aseg; i++) {
        const mmfs__seg *g = &db->segs[i];
        s->segs[i] = (struct sseg){g->no, g->fd, g->map, g->size, g->end};
        s->nsegs++;
    }
    /* The anchor frame's first LSN, read while the log cannot move. */
    const mmfs__seg *as = &db->segs[s->nsegs - 1];
    const uint8_t *fr = as->map + MMFS__POS_OFF(s->anchor);
    s->anchor_lsn = mmfs__ld64(fr + 8);
    memcpy(s->anchor_sum, fr + MMFS__FRAME_HDR + mmfs__ld32(fr + 24), db->sum.len);
    pthread_rwlock_rdlock(&db->rw);
    pthread_mutex_unlock(&db->wmu);
    s->next_mem = mmfs__engine_next_memory_id(db->eng);
    s->live_bytes = db->eng->live_bytes;
    rc = take_kv(db->eng, s);
    if (rc == MMFS_OK) rc = take_records(db->eng, s);
    if (rc == MMFS_OK) rc = take_memories(db->eng, s);
    pthread_rwlock_unlock(&db->rw);
    if (rc == MMFS_OK) rc = merge_kv(s);
    if (rc == MMFS_OK) rc = merge_memories(s);
    return rc;
}

/* Lists (LSN, position) of every record in the snapshot's segments, in
** log order (LSNs increase along the log, gaps and all). */
static int make_lsnpos(snap *s) {
    size_t cap = 0;
    s->lsnpos_made = 1;
    for (size_t i = 0; i < s->nsegs; i++) {
        const struct sseg *g = &s->segs[i];
        uint64_t off = MMFS__SEG_HDR;
        while (off < g->end) {
            mmfs__frame f;
            const char *why;
            if (!mmfs__frame_check(g->map + off, (size_t)(g->end - off), 0, s->sum, &f, &why)) break;
            const uint8_t *p = f.body;
            for (uint32_t k = 0; k < f.count; k++) {
                void *a = s->lsnpos;
                int rc = mmfs__grow(&a, &cap, 2 * (s->nlsnpos + 1), sizeof *s->lsnpos);
                if (rc) return rc;
                s->lsnpos = a;
                s->lsnpos[2 * s->nlsnpos] = mmfs__raw_lsn(p);
                s->lsnpos[2 * s->nlsnpos + 1] = MMFS__POS(g->no, (uint64_t)(p - g->map));
                s->nlsnpos++;
                p += mmfs__raw_len(p);
            }
            off += f.frame_len;
        }
    }
    return MMFS_OK;
}

/* The log position of record RAW in the snapshot's segments, or 0 when it
** is not there.  A record outside them (an engine from before this
** handle's compaction) is looked up by LSN and taken only if its bytes are
** the same. */
static uint64_t pos_of(snap *s, const uint8_t *raw) {
    for (size_t i = 0; i < s->nsegs; i++)
        if (raw >= s->segs[i].map && raw < s->segs[i].map + s->segs[i].size)
            return MMFS__POS(s->segs[i].no, (uint64_t)(raw - s->segs[i].map));
    if (!s->lsnpos_made && make_lsnpos(s) != MMFS_OK) return 0;
    uint64_t lsn = mmfs__raw_lsn(raw);
    size_t lo = 0, hi = s->nlsnpos;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->lsnpos[2 * mid] < lsn) lo = mid + 1;
        else hi = mid;
    }
    if (lo == s->nlsnpos || s->lsnpos[2 * lo] != lsn) return 0;
    uint64_t pos = s->lsnpos[2 * lo + 1];
    for (size_t i = 0; i < s->nsegs; i++) {
        if (s->segs[i].no != MMFS__POS_SEG(pos)) continue;
        const uint8_t *q = s->segs[i].map + MMFS__POS_OFF(pos);
        uint32_t len = mmfs__raw_len(raw);
        return mmfs__raw_len(q) == len && memcmp(q, raw, len) == 0 ? pos : 0;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Builds the whole file in *BUF (*LEN bytes). */
static int build_file(mmfs_db *db, snap *s, uint8_t **buf, size_t *len) {
    s->sum = &db->sum;
    size_t nslots = 0;
    if (s->nkv) {
        nslots = 16;
        while (nslots < s->nkv * 2) nslots *= 2; /* load <= 0.5: short probes */
    }
    size_t routes_len = 0, tags_len = 0;
    for (size_t i = 0; i < s->nroutes; i++) routes_len += (4 + s->routes[i].len + 7) & ~(size_t)7;
    for (size_t i = 0; i < s->ntags; i++)
        tags_len += 16 + ((s->tag_names[i].len + 7) & ~(size_t)7) + (s->tag_at[i + 1] - s->tag_at[i]) * 8;
    uint64_t cnt[CK_NSEC] = {s->nsegs - 1, nslots, s->nkv, s->nrecs, 0, s->nents, s->ntime, routes_len, tags_len};
    uint64_t off[CK_NSEC];
    size_t size = CK_HDR;
    for (int k = 0; k < CK_NSEC; k++) {
        off[k] = size;
        size += (cnt[k] * sec_entsize((uint32_t)(k + 1)) + 7) & ~(size_t)7;
    }
    size += CK_SUM;
    uint8_t *b = calloc(1, size);
    if (!b) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (%zu bytes)", size);
    memcpy(b + H_MAGIC, CK_MAGIC, 8);
    mmfs__st32(b + H_FORMAT, CK_FORMAT);
    mmfs__st32(b + H_SUMTYPE, (uint32_t)db->sum.type);
    mmfs__st64(b + H_LSN, s->lsn);
    mmfs__st64(b + H_SIZE, size);
    mmfs__st32(b + H_FIRST_SEG, s->first_seg);
    mmfs__st32(b + H_ANCHOR_SEG, MMFS__POS_SEG(s->anchor));
    mmfs__st64(b + H_ANCHOR_OFF, MMFS__POS_OFF(s->anchor));
    mmfs__st64(b + H_ANCHOR_LSN, s->anchor_lsn);
    mmfs__st32(b + H_TOK_VERSION, (uint32_t)db->tok_version);
    snprintf((char *)b + H_TOK_LANG, 32, "%s", db->tok_lang);
    mmfs__st64(b + H_NEXT_MEM, s->next_mem);
    mmfs__st64(b + H_LIVE_BYTES, s->live_bytes);
    mmfs__st64(b + H_REC_BYTES, s->rec_bytes);
    mmfs__st32(b + H_NSEC, CK_NSEC);
    memcpy(b + H_ANCHOR_SUM, s->anchor_sum, db->sum.len);
    mmfs__st64(b + H_MEM_BASE, s->mem_base);
    mmfs__st64(b + H_MEM_LIVE, s->mem_live);
    mmfs__st64(b + H_NROUTES, s->nroutes);
    for (int k = 0; k < CK_NSEC; k++) {
        uint8_t *d = b + H_SEC + 24 * k;
        mmfs__st32(d, (uint32_t)(k + 1));
        mmfs__st64(d + 8, off[k]);
        mmfs__st64(d + 16, cnt[k]);
    }
    uint8_t *p = b + off[0];
    for (size_t i = 0; i + 1 < s->nsegs; i++, p += 16) {
        mmfs__st32(p, s->segs[i].no);
        mmfs__st64(p + 8, s->segs[i].end);
    }
    int rc = MMFS_OK;
    uint8_t *order = b + off[2], *slots = b + off[1];
    for (size_t i = 0; i < s->nkv && rc == MMFS_OK; i++) {
        uint64_t pos = pos_of(s, s->kv[i]);
        if (!pos) {
            rc = mmfs__err(MMFS_CORRUPT, "checkpoint: a record outside the log");
            break;
        }
        mmfs__st64(order + 8 * i, pos);
        uint64_t h = mmfs__hash(mmfs__raw_key(s->kv[i]));
        size_t j = h & (nslots - 1);
        while (mmfs__ld64(slots + 16 * j + 8)) j = (j + 1) & (nslots - 1);
        mmfs__st64(slots + 16 * j, h);
        mmfs__st64(slots + 16 * j + 8, pos);
    }
    uint8_t *recs = b + off[3];
    for (size_t i = 0; i < s->nrecs && rc == MMFS_OK; i++) {
        uint64_t pos = pos_of(s, s->recs[i]);
        if (!pos) rc = mmfs__err(MMFS_CORRUPT, "checkpoint: a record outside the log");
        mmfs__st64(recs + 8 * i, pos);
    }
    uint8_t *p6 = b + off[5];
    for (size_t i = 0; i < s->nents && rc == MMFS_OK; i++, p6 += 16) {
        if (!s->ents[i].raw) continue; /* position 0: no such id */
        uint64_t pos = pos_of(s, s->ents[i].raw);
        /* A deleted memory whose record a compaction dropped: no such id. */
        if (!pos && s->ents[i].deleted) continue;
        if (!pos) rc = mmfs__err(MMFS_CORRUPT, "checkpoint: a record outside the log");
        mmfs__st64(p6, pos);
        mmfs__st32(p6 + 8, s->ents[i].route);
        mmfs__st32(p6 + 12, s->ents[i].deleted ? 1 : 0);
    }
    for (size_t i = 0; i < s->ntime; i++) mmfs__st64(b + off[6] + 8 * i, s->time[i]);
    uint8_t *p8 = b + off[7];
    for (size_t i = 0; i < s->nroutes; i++) {
        mmfs__st32(p8, (uint32_t)s->routes[i].len);
        memcpy(p8 + 4, s->routes[i].ptr, s->routes[i].len);
        p8 += (4 + s->routes[i].len + 7) & ~(size_t)7;
    }
    uint8_t *p9 = b + off[8];
    for (size_t i = 0; i < s->ntags; i++) {
        size_t n = s->tag_at[i + 1] - s->tag_at[i];
        mmfs__st32(p9, (uint32_t)s->tag_names[i].len);
        mmfs__st64(p9 + 8, n);
        memcpy(p9 + 16, s->tag_names[i].ptr, s->tag_names[i].len);
        p9 += 16 + ((s->tag_names[i].len + 7) & ~(size_t)7);
        for (size_t j = 0; j < n; j++, p9 += 8) mmfs__st64(p9, s->tag_ids[s->tag_at[i] + j]);
    }
    if (rc) {
        free(b);
        return rc;
    }
    /* Log order, so that applying them again is a replay of the live
    ** records: memory ids ascend, stream chunks keep their order. */
    qsort(recs, s->nrecs, 8, cmp_u64);
    mmfs__sum_compute(&db->sum, b, size - CK_SUM, b + size - CK_SUM);
    *buf = b;
    *len = size;
    return MMFS_OK;
}

/* Writes BUF as ckpt/LSN.ckpt: temporary name, fsync, rename, fsync. */
static int write_file(mmfs_db *db, uint64_t lsn, const uint8_t *buf, size_t len) {
    static _Atomic unsigned counter;
    char dir[4200], tmp[4500], path[4400];
    ck_dir(db, dir, sizeof dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) return mmfs__err_sys(errno, "mkdir", dir);
    ck_path(db, lsn, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.%u", path, (int)getpid(), atomic_fetch_add(&counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return mmfs__err_sys(errno, "create", tmp);
    int rc = MMFS_OK;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rc = errno == ENOSPC ? mmfs__err(MMFS_NOSPACE, "%s: no space left", tmp)
                                 : mmfs__err_sys(w < 0 ? errno : EIO, "write", tmp);
            break;
        }
        done += (size_t)w;
    }
    if (rc == MMFS_OK && fsync(fd) < 0) rc = mmfs__err_sys(errno, "fsync", tmp);
    close(fd);
    if (rc == MMFS_OK && rename(tmp, path) < 0) rc = mmfs__err_sys(errno, "rename", tmp);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return mmfs__fsync_dir(dir);
}

/* Removes all but the newest KEEP checkpoints.  A process that still maps
** one keeps reading it (an unlinked file stays mapped); one about to open
** it falls back to an older one or to the log. */
static void prune(mmfs_db *db, size_t keep) {
    uint64_t *v;
    size_t n;
    if (list_ckpts(db, &v, &n, 1) != MMFS_OK) return;
    for (size_t i = keep; i < n; i++) {
        char path[4400];
        ck_path(db, v[i], path, sizeof path);
        unlink(path);
    }
    free(v);
}

static int checkpoint_locked(mmfs_db *db) {
    snap s;
    memset(&s, 0, sizeof s);
    int empty = 0;
    int rc = take_snap(db, &s, &empty);
    if (rc || empty) {
        snap_free(&s);
        return rc;
    }
    /* Only durable frames: the anchor's segment is synced now (segments
    ** before it were synced before it was made). */
    if (fdatasync(s.segs[s.nsegs - 1].fd) < 0) {
        int err = errno;
        snap_free(&s);
        return mmfs__err_sys(err, "fdatasync", db->log_dir);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    rc = build_file(db, &s, &buf, &len);
    if (rc == MMFS_OK) rc = write_file(db, s.lsn, buf, len);
    free(buf);
    if (rc == MMFS_OK) {
        const struct sseg *a = &s.segs[s.nsegs - 1];
        uint32_t flen = mmfs__ld32(a->map + MMFS__POS_OFF(s.anchor) + 4);
        atomic_store(&db->ckpt_pos, s.anchor + flen);
        prune(db, 2);
    }
    snap_free(&s);
    return rc;
}

int mmfs_checkpoint(mmfs_db *db) {
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if (db->opt.readonly) return mmfs__err(MMFS_READONLY, "%s: opened read-only: cannot write a checkpoint", db->dir);
    if (mmfs__in_own_writer(db))
        return mmfs__err(MMFS_BUSY, "%s: a hook called back into its own store (checkpoint)", db->dir);
    pthread_mutex_lock(&db->cpmu);
    rc = checkpoint_locked(db);
    pthread_mutex_unlock(&db->cpmu);
    return rc;
}

/* ---------------------------------------------------------------- loading */

/* Forgets whatever a failed load put into the engine. */
static int engine_reset(mmfs_db *db) {
    mmfs__engine_free(db->eng);
    db->eng = NULL;
    int rc = mmfs__engine_new(&db->eng);
    if (rc == MMFS_OK) rc = mmfs__engine_set_tokenizer(db->eng, db->tok_version, db->tok_lang);
    return rc;
}

/* The segment of DB with number NO, and its index in *I. */
static mmfs__seg *seg_index(mmfs_db *db, uint32_t no, size_t *i) {
    if (no < db->first_seg || no - db->first_seg >= db->nsegs) return NULL;
    *i = no - db->first_seg;
    return db->segs[*i].no == no ? &db->segs[*i] : NULL;
}

/* Tries checkpoint LSN.  MMFS_OK: the engine holds it, *START and *FROM
** say where replay goes on.  MMFS_CORRUPT: skipped (the engine is as it
** was).  MMFS_NOMEM: give up. */
static int try_one(mmfs_db *db, uint64_t lsn, size_t *start, uint64_t *from) {
    char path[4400];
    ck_path(db, lsn, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return MMFS_CORRUPT;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size < CK_HDR + CK_SUM || (uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return MMFS_CORRUPT;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return MMFS_CORRUPT;
    const uint8_t *b = map;
    int rc = MMFS_CORRUPT;
    uint64_t off[CK_NSEC], cnt[CK_NSEC];
    size_t ai = 0;
    mmfs__seg *as = NULL;
    mmfs__frame f;
    const char *why;
    if (memcmp(b + H_MAGIC, CK_MAGIC, 8) != 0 || mmfs__ld32(b + H_FORMAT) != CK_FORMAT ||
        mmfs__ld64(b + H_SIZE) != size || mmfs__ld64(b + H_LSN) != lsn ||
        mmfs__ld32(b + H_SUMTYPE) != (uint32_t)db->sum.type ||
        !mmfs__sum_check(&db->sum, b, size - CK_SUM, b + size - CK_SUM))
        goto bad; /* damaged, truncated, misnamed, or a newer format */
    for (size_t i = db->sum.len; i < CK_SUM; i++)
        if (b[size - CK_SUM + i]) goto bad; /* past the checksum: zeros */
    if (mmfs__ld32(b + H_FIRST_SEG) != db->first_seg) goto bad; /* stale: compacted since */
    if (mmfs__ld32(b + H_TOK_VERSION) != (uint32_t)db->tok_version ||
        strncmp((const char *)b + H_TOK_LANG, db->tok_lang, 32) != 0 || mmfs__ld32(b + H_NSEC) != CK_NSEC)
        goto bad;
    for (int k = 0; k < CK_NSEC; k++) {
        const uint8_t *d = b + H_SEC + 24 * k;
        size_t es = sec_entsize((uint32_t)(k + 1));
        off[k] = mmfs__ld64(d + 8);
        cnt[k] = mmfs__ld64(d + 16);
        if (mmfs__ld32(d) != (uint32_t)(k + 1) || off[k] % 8 || off[k] < CK_HDR || off[k] > size - CK_SUM ||
            cnt[k] > (size - CK_SUM - off[k]) / es)
            goto bad;
    }
    if (cnt[4] != 0) goto bad; /* index segments: written by a newer library */
    if (cnt[1] & (cnt[1] - 1) || (cnt[2] && cnt[1] < cnt[2] * 2)) goto bad;
    /* The anchor: the last frame covered, still in this log. */
    as = seg_index(db, mmfs__ld32(b + H_ANCHOR_SEG), &ai);
    uint64_t aoff = mmfs__ld64(b + H_ANCHOR_OFF);
    if (!as || cnt[0] != ai || aoff < MMFS__SEG_HDR || aoff >= as->size ||
        !mmfs__frame_check(as->map + aoff, as->size - aoff, mmfs__ld64(b + H_ANCHOR_LSN), &db->sum, &f, &why) ||
        (f.flags & MMFS__FRAME_SEAL) || f.first_lsn + f.count - 1 != lsn ||
        memcmp(f.body + f.body_len, b + H_ANCHOR_SUM, db->sum.len) != 0)
        goto bad; /* not this log's frame: another log, or a repaired one */
    for (size_t i = 0; i < ai; i++) {
        const uint8_t *p = b + off[0] + 16 * i;
        uint64_t end = mmfs__ld64(p + 8);
        if (mmfs__ld32(p) != db->segs[i].no || end < MMFS__SEG_HDR || end > db->segs[i].size) goto bad;
    }

    /* Trusted from here.  The kv tables are mapped; the rest is applied. */
    mmfs__engine *e = db->eng;
    mmfs__kvck *ck = &e->kv.ck;
    ck->seg_map = calloc(ai + 1, sizeof *ck->seg_map);
    ck->seg_end = calloc(ai + 1, sizeof *ck->seg_end);
    if (!ck->seg_map || !ck->seg_end) {
        rc = mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
        goto reset;
    }
    for (size_t i = 0; i <= ai; i++) {
        ck->seg_map[i] = db->segs[i].map;
        ck->seg_end[i] = i < ai ? mmfs__ld64(b + off[0] + 16 * i + 8) : aoff + f.frame_len;
    }
    ck->first = db->first_seg;
    ck->nsegs = (uint32_t)ai + 1;
    ck->file = map;
    ck->file_size = size;
    ck->slots = b + off[1];
    ck->mask = cnt[1] ? cnt[1] - 1 : 0;
    ck->order = b + off[2];
    ck->n = cnt[2];
    map = NULL; /* the engine owns it now */
    e->kv.live = cnt[2];
    /* The index work of the memories waits for the first search or write,
    ** so that open and a first kv read do not tokenize history. */
    mmfs__engine_defer_index(e);
    /* The memory table, mapped; it covers every id below the next. */
    uint64_t next_mem = mmfs__ld64(b + H_NEXT_MEM), mem_base = mmfs__ld64(b + H_MEM_BASE);
    if (next_mem == 0 || mem_base > next_mem || next_mem - mem_base != cnt[5] || cnt[6] > cnt[5]) goto reset_bad;
    mmfs__memck mck = {b + off[5], mem_base, (size_t)cnt[5], b + off[6], (size_t)cnt[6], NULL};
    if ((rc = mmfs__mem_ck_attach(e, &mck, b + off[7], (size_t)cnt[7], (size_t)mmfs__ld64(b + H_NROUTES),
                                  b + off[8], (size_t)cnt[8], mmfs__ld64(b + H_MEM_LIVE), next_mem)) != MMFS_OK)
        goto reset;
    const uint8_t *recs = b + off[3];
    for (uint64_t i = 0; i < cnt[3]; i++) {
        uint64_t pos = mmfs__ld64(recs + 8 * i);
        uint32_t no = MMFS__POS_SEG(pos);
        uint64_t o = MMFS__POS_OFF(pos);
        mmfs__rec r;
        if (no < ck->first || no - ck->first >= ck->nsegs || o < MMFS__SEG_HDR ||
            o >= ck->seg_end[no - ck->first] ||
            mmfs__rec_decode(ck->seg_map[no - ck->first] + o, (size_t)(ck->seg_end[no - ck->first] - o), &r) ||
            r.lsn > lsn || r.type == MMFS__R_KV_SET || r.type == MMFS__R_KV_DEL || r.type == MMFS__R_MEMORY ||
            r.type == MMFS__R_DEL_MEMORY ||
            r.type == MMFS__R_SESSION_DEL || r.type == MMFS__R_DOC_UNINDEX ||
            (i && pos <= mmfs__ld64(recs + 8 * (i - 1))))
            goto reset_bad;
        if ((rc = mmfs__engine_apply(e, &r)) != MMFS_OK) goto reset;
    }
    /* As it was, not as the records applied again add up: empty stream
    ** appends after a stream's first are counted but not kept. */
    e->live_bytes = mmfs__ld64(b + H_LIVE_BYTES);
    for (size_t i = 0; i < ai; i++) {
        db->segs[i].end = ck->seg_end[i];
        db->segs[i].sealed = 1;
    }
    db->next_lsn = lsn + 1;
    db->rec_bytes = mmfs__ld64(b + H_REC_BYTES); /* the tail's records add to it */
    db->last_frame = MMFS__POS(as->no, aoff);
    db->ckpt_lsn = lsn;
    atomic_store(&db->ckpt_pos, MMFS__POS(as->no, aoff + f.frame_len));
    *start = ai;
    *from = aoff + f.frame_len;
    return MMFS_OK;

reset_bad:
    rc = MMFS_CORRUPT;
reset:
    {
        int r2 = engine_reset(db);
        if (r2) rc = r2;
    }
bad:
    if (map) munmap(map, size);
    return rc == MMFS_NOMEM ? MMFS_NOMEM : MMFS_CORRUPT;
}

int mmfs__ckpt_load(mmfs_db *db, size_t *start, uint64_t *from) {
    *start = 0;
    *from = MMFS__SEG_HDR;
    db->ckpt_lsn = 0;
    if (db->no_manifest || db->nsegs == 0) return MMFS_OK;
    uint64_t *v;
    size_t n;
    if (list_ckpts(db, &v, &n, 0) != MMFS_OK) return MMFS_OK; /* an unreadable ckpt/: the log */
    int rc = MMFS_OK;
    for (size_t i = 0; i < n; i++) {
        rc = try_one(db, v[i], start, from);
        if (rc != MMFS_CORRUPT) break;
        rc = MMFS_OK;
    }
    free(v);
    return rc;
}

/* ------------------------------------------------------- the checkpointer */

/* Log bytes written since the newest checkpoint this handle knows
** (segments count whole after the first). */
static uint64_t since_ckpt(mmfs_db *db) {
    uint64_t now = atomic_load(&db->applied), then = atomic_load(&db->ckpt_pos);
    if (!then) then = MMFS__POS(db->first_seg, MMFS__SEG_HDR);
    if (now <= then) return 0;
    if (MMFS__POS_SEG(now) == MMFS__POS_SEG(then)) return now - then;
    return (uint64_t)(MMFS__POS_SEG(now) - MMFS__POS_SEG(then)) * db->segment_size + MMFS__POS_OFF(now) -
           MMFS__POS_OFF(then);
}

static void *checkpointer(void *arg) {
    mmfs_db *db = arg;
    pthread_mutex_lock(&db->cmu);
    while (!db->ckpt_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec++; /* a wake-up a second: idle hosts (editors) stay idle */
        pthread_cond_timedwait(&db->ccond, &db->cmu, &ts);
        if (db->ckpt_stop || since_ckpt(db) < db->opt.checkpoint_bytes) continue;
        pthread_mutex_unlock(&db->cmu);
        /* Refreshes first, so a handle that only reads writes a checkpoint
        ** of what others wrote too.  A failure (disk full) is retried at
        ** the next tick; writes are not affected. */
        (void)mmfs_checkpoint(db);
        pthread_mutex_lock(&db->cmu);
    }
    pthread_mutex_unlock(&db->cmu);
    return NULL;
}

int mmfs__ckpt_auto_start(mmfs_db *db) {
    if (db->opt.readonly || db->opt.checkpoint_bytes == 0) return MMFS_OK;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&db->ccond);
    pthread_cond_init(&db->ccond, &ca);
    pthread_condattr_destroy(&ca);
    db->ckpt_stop = 0;
    int err = pthread_create(&db->ckpter, NULL, checkpointer, db);
    if (err) return mmfs__err_sys(err, "start the checkpointer thread", db->dir);
    db->ckpt_on = 1;
    return MMFS_OK;
}

void mmfs__ckpt_auto_stop(mmfs_db *db) {
    if (!db->ckpt_on) return;
    pthread_mutex_lock(&db->cmu);
    db->ckpt_stop = 1;
    pthread_cond_signal(&db->ccond);
    pthread_mutex_unlock(&db->cmu);
    pthread_join(db->ckpter, NULL);
    db->ckpt_on = 0;
}
