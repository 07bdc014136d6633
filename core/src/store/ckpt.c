/*
** ckpt.c: checkpoints.  Owns ROOT/ckpt/ (the file format, in
** docs/format.md; its constants in ckpt.h): naming and listing the files,
** mmfs_checkpoint (building the file from a snapshot, ckpt_snap.c, and
** writing it), pruning, ckpt/lock, and the background checkpointer.  Loading the
** newest valid checkpoint at open is ckpt_load.c (mmfs__ckpt_load).
**
** A checkpoint is the engine's state at an LSN, written as positions of
** records in the log (segment << 40 | offset), never as copies of values:
**   - the kv map as a hash table and a key-ordered table that the engine
**     reads through mmap (kv.c: lookups ask the newer records first, then
**     the mapped tables), so neither open time nor heap grows with keys;
**   - the memory table (per id its position, as small deltas in blocks,
**     and its route; the live ids by time, as runs; the routes; each
**     tag's live ids, as gaps), read through mmap the same way
**     (memory.c);
**   - the sessions (by id, by time, by intent), the streams (their
**     chunks) and the documents as mapped tables (format 3, section 15:
**     ckpt_tables.c), read through mmap as kv's (session.c, stream.c,
**     memory.c);
**   - the latest state and policy records, which open applies again;
**   - the ends of the sealed segments before it, so open skips them.
** It ends at an *anchor*: the last frame it covers, named by segment,
** offset and first LSN.  Open checks that frame in the log (its header,
** checksum and LSNs) before trusting the file, so a checkpoint of another
** log (a repaired tail, a copied directory, a compaction's new segments)
** is never applied; MANIFEST's first_segment must also be the one it was
** made against.
**
** Every 64 KiB block of the file has its checksum (format section 14):
** open checks the header, those checksums and the sections it reads; the
** rest is checked a block at a time when first read (engine/ck_verify.c).
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
** - Written holding the writer mutex only while picking the LSN and the
**   engine's read side while copying record pointers (ckpt_snap.c);
**   hashing and writing the file hold no lock but cpmu and ckpt/lock.
** - One writer of checkpoints per store at a time: ckpt/lock (flock).
**   The automatic one runs only when due: the commit path compares the
**   log bytes since the newest checkpoint the handle knows with
**   checkpoint_bytes (two loads), and past it starts one thread that
**   takes ckpt/lock without waiting (another handle or process writing
**   one: skip), looks at the newest file's anchor (another may have
**   written one since), writes one, and ends.  No thread is idle.
**
** The memories' full-text index is in index segments (ROOT/index/) that
** section 5 lists (ckpt_index.c); the memories after the last one are one
** queued op that the first search or write does (the drain reads their
** texts then).  The documents' index is built the same way, from section
** 15's documents, at the first search or write (no index segments).
*/
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

size_t mmfs__ckpt_entsize(uint32_t kind) {
    switch (kind) {
    case SEC_SEGMENTS: return 16;
    case SEC_KV_HASH: return 16;
    case SEC_KV_ORDER: return 8;
    case SEC_RECORDS: return 8;
    case SEC_INDEX: return 24;
    case SEC_MEM_DIR: return 16;
    case SEC_MEM_TIME: return 16;
    case SEC_TIME_IDS: return 4;
    case SEC_SUMS: return 16;
    default: return 1;
    }
}

static void ck_dir(const mmfs_db *db, char *buf, size_t len) { snprintf(buf, len, "%s/ckpt", db->dir); }

void mmfs__ckpt_path(const mmfs_db *db, uint64_t lsn, char *buf, size_t len) {
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
int mmfs__ckpt_list(mmfs_db *db, uint64_t **out, size_t *n, int clean) {
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

static int add_logrec(void *ud, const mmfs__rec *r) {
    snap *s = ud;
    void *a = s->logrecs, *l = s->loglsn;
    int rc = mmfs__grow(&a, &s->logreccap, s->nlogrecs + 1, sizeof *s->logrecs);
    if (rc) return rc;
    s->logrecs = a;
    if ((rc = mmfs__grow(&l, &s->loglsncap, s->nlogrecs + 1, sizeof *s->loglsn))) return rc;
    s->loglsn = l;
    s->loglsn[s->nlogrecs] = mmfs__raw_lsn(r->raw);
    s->logrecs[s->nlogrecs++] = r->raw;
    return MMFS_OK;
}

/* Lists every record of the snapshot's segments in s->logrecs. */
static int make_logrecs(snap *s) {
    s->logrecs_made = 1;
    mmfs__seg *segs = calloc(s->nsegs, sizeof *segs);
    if (!segs) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
    for (size_t i = 0; i < s->nsegs; i++) {
        segs[i].no = s->segs[i].no;
        segs[i].map = s->segs[i].map;
        segs[i].size = s->segs[i].size;
        segs[i].end = s->segs[i].end;
    }
    int rc = mmfs__each_record(segs, s->nsegs, segs[s->nsegs - 1].end, s->sum, add_logrec, s);
    free(segs);
    return rc;
}

/* RAW's position if it lies in one of the snapshot's segments, else 0. */
static uint64_t pos_in(const snap *s, const uint8_t *raw) {
    for (size_t i = 0; i < s->nsegs; i++)
        if (raw >= s->segs[i].map && raw < s->segs[i].map + s->segs[i].size)
            return MMFS__POS(s->segs[i].no, (uint64_t)(raw - s->segs[i].map));
    return 0;
}

/* The log position of record RAW in the snapshot's segments, or 0 when it
** is not there.  A record outside them (an engine from before this
** handle's compaction) is looked up by LSN and taken only if its bytes are
** the same. */
uint64_t mmfs__ckpt_pos_of(snap *s, const uint8_t *raw) {
    uint64_t pos = pos_in(s, raw);
    if (pos) return pos;
    if (!s->logrecs_made && make_logrecs(s) != MMFS_OK) return 0;
    uint64_t lsn = mmfs__raw_lsn(raw);
    /* The first record at or past LSN.  Compaction keeps records spread
    ** over the LSNs about evenly, so interpolation lands near it in a step
    ** or two; every other step halves, so the worst case stays log n. */
    size_t lo = 0, hi = s->nlogrecs;
    for (int step = 0; lo < hi; step++) {
        uint64_t a = s->loglsn[lo], b = s->loglsn[hi - 1];
        if (lsn <= a) break;
        if (lsn > b) {
            lo = hi;
            break;
        }
        size_t mid = step & 1 ? lo + (hi - lo) / 2
                              : lo + (size_t)((double)(lsn - a) / (double)(b - a) * (double)(hi - 1 - lo));
        if (mid >= hi) mid = hi - 1;
        if (s->loglsn[mid] < lsn) lo = mid + 1;
        else hi = mid;
    }
    if (lo == s->nlogrecs) return 0;
    const uint8_t *q = s->logrecs[lo];
    uint32_t len = mmfs__raw_len(raw);
    return mmfs__raw_len(q) == len && memcmp(q, raw, len) == 0 ? pos_in(s, q) : 0;
}

int mmfs__ckpt_in_log(snap *s, const uint8_t *raw) { return mmfs__ckpt_pos_of(s, raw) != 0; }

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* A growing byte buffer for the sections whose size is known only once
** they are encoded. */
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static int put(bytes *b, const void *src, size_t len) {
    void *a = b->p;
    if (mmfs__grow(&a, &b->cap, b->n + len, 1)) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
    b->p = a;
    memcpy(b->p + b->n, src, len);
    b->n += len;
    return MMFS_OK;
}

static int put32(bytes *b, uint32_t v) {
    uint8_t x[4];
    mmfs__st32(x, v);
    return put(b, x, 4);
}

static int put64(bytes *b, uint64_t v) {
    uint8_t x[8];
    mmfs__st64(x, v);
    return put(b, x, 8);
}

static int put_varint(bytes *b, uint64_t v) {
    uint8_t x[10];
    size_t n = 0;
    do {
        x[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) x[n] |= 0x80;
        n++;
    } while (v);
    return put(b, x, n);
}

/* Shorter than this, a stretch of ids descending by one is cheaper as
** explicit ids (4 bytes each) than as a run (16 bytes). */
#define RUN_MIN 4

/* The variable sections, encoded: the memory table's blocks (positions as
** u16 or u32 deltas from the block's first, u64 where a block spans a
** segment boundary), the time order as runs, the tags' ids as skip points
** and gaps. */
typedef struct enc {
    bytes dir, pos, route, time, tids, tags, tagids;
    unsigned rwidth;
} enc;

static void enc_free(enc *x) {
    free(x->dir.p);
    free(x->pos.p);
    free(x->route.p);
    free(x->time.p);
    free(x->tids.p);
    free(x->tags.p);
    free(x->tagids.p);
}

static int enc_mems(snap *s, enc *x) {
    int rc = MMFS_OK;
    x->rwidth = s->nroutes <= 1 ? 0 : s->nroutes <= 256 ? 1 : s->nroutes <= 65536 ? 2 : 4;
    uint64_t *pos = malloc(MMFS__MEM_BLOCK * sizeof *pos);
    if (!pos) return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
    for (size_t b = 0; b < s->nents && rc == MMFS_OK; b += MMFS__MEM_BLOCK) {
        size_t cnt = s->nents - b < MMFS__MEM_BLOCK ? s->nents - b : MMFS__MEM_BLOCK;
        uint64_t base = 0;
        for (size_t i = 0; i < cnt && rc == MMFS_OK; i++) {
            const mmfs__mem_ent *ent = &s->ents[b + i];
            uint8_t r[4];
            pos[i] = 0;
            /* Deleted, or no such id (a compaction may have dropped a
            ** deleted memory's record): absent. */
            if (ent->raw && !ent->deleted && !(pos[i] = mmfs__ckpt_pos_of(s, ent->raw)))
                rc = mmfs__err(MMFS_CORRUPT, "checkpoint: a record outside the log");
            if (pos[i] && !base) base = pos[i];
            mmfs__st32(r, pos[i] ? ent->route : 0);
            if (x->rwidth && rc == MMFS_OK) rc = put(&x->route, r, x->rwidth);
        }
        if (rc) break;
        /* Positions grow with ids (log order), so a block's deltas from
        ** its first are small: u16 when the block spans less than 64 KiB
        ** of log (memories of a few hundred bytes), u32 up to 4 GiB, u64
        ** positions where it does not grow or spans more (a segment
        ** boundary). */
        uint64_t span = 0;
        int wide = 0;
        for (size_t i = 0; i < cnt && base; i++) {
            if (pos[i] && (pos[i] < base || pos[i] - base >= UINT32_MAX)) wide = 1;
            if (pos[i] > base && pos[i] - base > span) span = pos[i] - base;
        }
        unsigned kind = !base ? 2 : wide ? 1 : span < 0xffff ? 3 : 0;
        uint64_t at = x->pos.n;
        rc = put64(&x->dir, base);
        if (rc == MMFS_OK) rc = put64(&x->dir, at | kind);
        for (size_t i = 0; i < cnt && base && rc == MMFS_OK; i++) {
            if (kind == 1) {
                rc = put64(&x->pos, pos[i]);
            } else if (kind == 0) {
                rc = put32(&x->pos, pos[i] ? (uint32_t)(pos[i] - base) : UINT32_MAX);
            } else {
                uint16_t d = pos[i] ? (uint16_t)(pos[i] - base) : 0xffff;
                uint8_t le[2] = {(uint8_t)d, (uint8_t)(d >> 8)};
                rc = put(&x->pos, le, 2);
            }
        }
        /* Keep every block's entries 8-aligned (the flags live in the low bits). */
        while (rc == MMFS_OK && x->pos.n % 8) rc = put(&x->pos, "", 1);
    }
    free(pos);
    /* The time order: runs of ids descending by one, explicit ids between. */
    for (size_t i = 0; i < s->ntime && rc == MMFS_OK;) {
        size_t j = i + 1;
        while (j < s->ntime && s->time[j] + 1 == s->time[j - 1]) j++;
        if (j - i >= RUN_MIN) {
            rc = put64(&x->time, i);
            if (rc == MMFS_OK) rc = put64(&x->time, s->time[i]);
            i = j;
            continue;
        }
        /* Explicit ids up to the next stretch long enough for a run. */
        rc = put64(&x->time, i);
        if (rc == MMFS_OK) rc = put64(&x->time, (uint64_t)1 << 63 | x->tids.n / 4);
        for (;;) {
            for (; i < j && rc == MMFS_OK; i++) {
                if (s->time[i] < s->mem_base || s->time[i] - s->mem_base > UINT32_MAX)
                    rc = mmfs__err(MMFS_CORRUPT, "checkpoint: a live memory outside the table");
                else
                    rc = put32(&x->tids, (uint32_t)(s->time[i] - s->mem_base));
            }
            if (rc || i == s->ntime) break;
            j = i + 1;
            while (j < s->ntime && s->time[j] + 1 == s->time[j - 1]) j++;
            if (j - i >= RUN_MIN) break;
        }
    }
    if (rc == MMFS_OK) rc = put64(&x->time, s->ntime); /* the sentinel */
    if (rc == MMFS_OK) rc = put64(&x->time, 0);
    /* Tags: the directory, and per tag its skip points then its gaps. */
    for (size_t t = 0; t < s->ntags && rc == MMFS_OK; t++) {
        const uint64_t *ids = s->tag_ids + s->tag_at[t];
        size_t n = s->tag_at[t + 1] - s->tag_at[t], nblk = (n + MMFS__TAG_BLOCK - 1) / MMFS__TAG_BLOCK;
        size_t at = x->tagids.n;
        bytes gaps = {NULL, 0, 0};
        for (size_t k = 0; k < nblk && rc == MMFS_OK; k++) {
            size_t b = k * MMFS__TAG_BLOCK;
            if (ids[b] < s->mem_base || ids[n - 1] - s->mem_base > UINT32_MAX) {
                rc = mmfs__err(MMFS_CORRUPT, "checkpoint: a tagged memory outside the table");
                break;
            }
            rc = put32(&x->tagids, (uint32_t)(ids[b] - s->mem_base));
            if (rc == MMFS_OK) rc = put32(&x->tagids, (uint32_t)gaps.n);
            for (size_t i = b + 1; i < n && i < b + MMFS__TAG_BLOCK && rc == MMFS_OK; i++)
                rc = put_varint(&gaps, ids[i] - ids[i - 1]);
        }
        if (rc == MMFS_OK && gaps.n) rc = put(&x->tagids, gaps.p, gaps.n);
        free(gaps.p);
        size_t nlen = s->tag_names[t].len;
        if (rc == MMFS_OK) rc = put32(&x->tags, (uint32_t)nlen);
        if (rc == MMFS_OK) rc = put32(&x->tags, 0);
        if (rc == MMFS_OK) rc = put64(&x->tags, n);
        if (rc == MMFS_OK) rc = put64(&x->tags, at);
        if (rc == MMFS_OK) rc = put64(&x->tags, x->tagids.n - at);
        if (rc == MMFS_OK) rc = put64(&x->tags, n ? ids[n - 1] : 0);
        if (rc == MMFS_OK && nlen) rc = put(&x->tags, s->tag_names[t].ptr, nlen);
        while (rc == MMFS_OK && x->tags.n % 8) rc = put(&x->tags, "", 1);
    }
    return rc;
}

/* Builds the whole file in *BUF (*LEN bytes). */
static int build_file(mmfs_db *db, snap *s, uint8_t **buf, size_t *len) {
    s->sum = &db->log.sum;
    size_t nslots = 0;
    if (s->nkv) {
        nslots = 16;
        while (nslots < s->nkv * 2) nslots *= 2; /* load <= 0.5: short probes */
    }
    enc x;
    memset(&x, 0, sizeof x);
    int rc = enc_mems(s, &x);
    if (rc) {
        enc_free(&x);
        return rc;
    }
    size_t routes_len = 0;
    for (size_t i = 0; i < s->nroutes; i++) routes_len += (4 + s->routes[i].len + 7) & ~(size_t)7;
        uint64_t cnt[CK_NSEC] = {s->nsegs - 1, nslots,      s->nkv,         s->nrecs,          mmfs__ckpt_index_count(s),
                             x.dir.n / 16, x.time.n / 16, routes_len,   x.tags.n,          x.pos.n,
                             x.route.n,    x.tids.n / 4,  x.tagids.n,   0};
    uint64_t off[CK_NSEC];
    size_t size = CK_HDR;
    /* The sections open reads first, so that they share the first blocks
    ** and open checks few bytes; then those read when first used. */
    static const int layout[CK_NSEC - 1] = {SEC_SEGMENTS, SEC_RECORDS, SEC_INDEX,   SEC_ROUTES,   SEC_TAGS,
                                            SEC_KV_HASH,  SEC_KV_ORDER, SEC_MEM_DIR, SEC_MEM_TIME, SEC_MEM_POS,
                                            SEC_MEM_ROUTE, SEC_TIME_IDS, SEC_TAG_IDS};
    size_t tables_off = 0, tables_len = mmfs__ckpt_tables_size(s);
    for (int i = 0; i < CK_NSEC - 1; i++) {
        int k = layout[i] - 1;
        off[k] = size;
        size += (cnt[k] * mmfs__ckpt_entsize((uint32_t)(k + 1)) + 7) & ~(size_t)7;
        if (layout[i] == SEC_TAGS) { /* format 3: section 15, whose directory open reads */
            tables_off = size;
            size += tables_len;
        }
    }
    size_t nblocks = (size - CK_HDR + ((size_t)1 << CK_BLOCK_SHIFT) - 1) >> CK_BLOCK_SHIFT;
    off[CK_NSEC - 1] = size;
    cnt[CK_NSEC - 1] = nblocks;
    size_t body_end = size;
    size += nblocks * 16;
    uint8_t *b = calloc(1, size);
    if (!b) {
        enc_free(&x);
        return mmfs__err(MMFS_NOMEM, "checkpoint: out of memory (%zu bytes)", size);
    }
    memcpy(b + H_MAGIC, CK_MAGIC, 8);
    mmfs__st32(b + H_FORMAT, CK_FORMAT);
    mmfs__st32(b + H_SUMTYPE, (uint32_t)db->log.sum.type);
    mmfs__st64(b + H_LSN, s->lsn);
    mmfs__st64(b + H_SIZE, size);
    mmfs__st32(b + H_FIRST_SEG, s->first_seg);
    mmfs__st32(b + H_ANCHOR_SEG, MMFS__POS_SEG(s->anchor));
    mmfs__st64(b + H_ANCHOR_OFF, MMFS__POS_OFF(s->anchor));
    mmfs__st64(b + H_ANCHOR_LSN, s->anchor_lsn);
    mmfs__st32(b + H_TOK_VERSION, (uint32_t)db->log.tok_version);
    snprintf((char *)b + H_TOK_LANG, 32, "%s", db->log.tok_lang);
    mmfs__st64(b + H_NEXT_MEM, s->next_mem);
    mmfs__st64(b + H_LIVE_BYTES, s->live_bytes);
    mmfs__st64(b + H_REC_BYTES, s->rec_bytes);
    mmfs__st32(b + H_NSEC, CK_NSEC);
    mmfs__st32(b + H_BLOCK_SHIFT, CK_BLOCK_SHIFT);
    memcpy(b + H_ANCHOR_SUM, s->anchor_sum, db->log.sum.len);
    mmfs__st64(b + H_MEM_BASE, s->mem_base);
    mmfs__st64(b + H_MEM_LIVE, s->mem_live);
    mmfs__st64(b + H_NROUTES, s->nroutes);
    mmfs__st32(b + H_RWIDTH, x.rwidth);
    mmfs__st64(b + H_NTIME, s->ntime);
    mmfs__st64(b + H_TABLES, tables_off);
    mmfs__st64(b + H_TABLES_LEN, tables_len);
    for (int k = 0; k < CK_NSEC; k++) {
        mmfs__st64(b + H_SEC + 16 * k, off[k]);
        mmfs__st64(b + H_SEC + 16 * k + 8, cnt[k]);
    }
    uint8_t *p = b + off[0];
    for (size_t i = 0; i + 1 < s->nsegs; i++, p += 16) {
        mmfs__st32(p, s->segs[i].no);
        mmfs__st64(p + 8, s->segs[i].end);
    }
    uint8_t *order = b + off[2], *slots = b + off[1];
    for (size_t i = 0; i < s->nkv && rc == MMFS_OK; i++) {
        uint64_t pos = mmfs__ckpt_pos_of(s, s->kv[i]);
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
        uint64_t pos = mmfs__ckpt_pos_of(s, s->recs[i]);
        if (!pos) rc = mmfs__err(MMFS_CORRUPT, "checkpoint: a record outside the log");
        mmfs__st64(recs + 8 * i, pos);
    }
    mmfs__ckpt_index_put(s, b + off[4]);
    if (rc == MMFS_OK) rc = mmfs__ckpt_tables_put(s, b, tables_off);
    const bytes *sec[CK_NSEC] = {NULL, NULL, NULL, NULL, NULL, &x.dir, &x.time, NULL, &x.tags, &x.pos,
                                 &x.route, &x.tids, &x.tagids, NULL};
    for (int k = 0; k < CK_NSEC; k++)
        if (sec[k] && sec[k]->n) memcpy(b + off[k], sec[k]->p, sec[k]->n);
    uint8_t *p8 = b + off[7];
    for (size_t i = 0; i < s->nroutes; i++) {
        mmfs__st32(p8, (uint32_t)s->routes[i].len);
        memcpy(p8 + 4, s->routes[i].ptr, s->routes[i].len);
        p8 += (4 + s->routes[i].len + 7) & ~(size_t)7;
    }
    enc_free(&x);
    if (rc) {
        free(b);
        return rc;
    }
    /* Log order, so that applying them again is a replay of the live
    ** records: memory ids ascend, stream chunks keep their order. */
    qsort(recs, s->nrecs, 8, cmp_u64);
    /* The blocks' checksums, theirs, then the header's (which covers the
    ** section table and the checksum of the checksums). */
    for (size_t j = 0; j < nblocks; j++) {
        size_t lo = CK_HDR + (j << CK_BLOCK_SHIFT), hi = lo + ((size_t)1 << CK_BLOCK_SHIFT);
        mmfs__sum_compute(&db->log.sum, b + lo, (hi < body_end ? hi : body_end) - lo, b + body_end + 16 * j);
    }
    mmfs__sum_compute(&db->log.sum, b + body_end, nblocks * 16, b + H_SUMS_SUM);
    mmfs__sum_compute(&db->log.sum, b, H_HDR_SUM, b + H_HDR_SUM);
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
    mmfs__ckpt_path(db, lsn, path, sizeof path);
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

/* Removes all but the newest KEEP checkpoints, and those but the newest
** of a log before a compaction (first segment below FIRST: open never
** loads one again, and the index files it lists can go).  A process that
** still maps one keeps reading it (an unlinked file stays mapped); one
** about to open it falls back to an older one or to the log. */
static void prune(mmfs_db *db, size_t keep, uint32_t first) {
    uint64_t *v;
    size_t n;
    if (mmfs__ckpt_list(db, &v, &n, 1) != MMFS_OK) return;
    for (size_t i = 1; i < n; i++) {
        uint8_t h[CK_HDR];
        int fd = i < keep ? mmfs__ckpt_open_header(db, v[i], h) : -1;
        int stale = fd >= 0 && mmfs__ld32(h + H_FIRST_SEG) < first;
        if (fd >= 0) close(fd);
        if (i < keep && !stale) continue;
        char path[4400];
        mmfs__ckpt_path(db, v[i], path, sizeof path);
        unlink(path);
    }
    free(v);
}

static int checkpoint_locked(mmfs_db *db) {
    snap s;
    memset(&s, 0, sizeof s);
    int empty = 0;
    int rc = mmfs__ckpt_snap_take(db, &s, &empty);
    if (rc || empty) {
        mmfs__ckpt_snap_free(&s);
        return rc;
    }
    /* Only durable frames: the anchor's segment is synced now (segments
    ** before it were synced before it was made). */
    if (fdatasync(s.segs[s.nsegs - 1].fd) < 0) {
        int err = errno;
        mmfs__ckpt_snap_free(&s);
        return mmfs__err_sys(err, "fdatasync", db->log.log_dir);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    (void)mmfs__ckpt_index_make(db, &s); /* failed: no segments listed, open indexes from the log */
    rc = build_file(db, &s, &buf, &len);
    if (rc == MMFS_OK) rc = write_file(db, s.lsn, buf, len);
    free(buf);
    if (rc == MMFS_OK) {
        const struct sseg *a = &s.segs[s.nsegs - 1];
        uint32_t flen = mmfs__ld32(a->map + MMFS__POS_OFF(s.anchor) + 4);
        atomic_store(&db->ckpt_pos, s.anchor + flen);
        /* Durable and in place: handles that map an older one (this one
        ** too) switch to it when they next catch up (recover.c).  Stored,
        ** not maximised: writers are one at a time (ckpt/lock), and after
        ** a repair cut the log LSNs may go back. */
        atomic_store_explicit(&db->log.shm->checkpoint_lsn, s.lsn, memory_order_release);
        prune(db, 2, s.first_seg);
        mmfs__ckpt_index_done(db, &s);
    }
    mmfs__ckpt_snap_free(&s);
    return rc;
}

/* After this handle wrote a checkpoint (cpmu held): its engine moves to
** it now, in the writer of the checkpoint (the checkpointer thread, or
** mmfs_checkpoint's caller), not in a later read or commit.  A failure
** keeps the engine (recover.c). */
static void follow_own(mmfs_db *db) {
    pthread_mutex_lock(&db->wmu);
    int rc = mmfs__ckpt_switch_due(db, 1);
    pthread_mutex_unlock(&db->wmu);
    if (rc == MMFS_OK) (void)mmfs__index_drain(db);
}

/* Takes ckpt/lock: one checkpoint writer per store at a time, across
** handles and processes (flock: two descriptors of one process exclude
** each other too).  NONBLOCK: MMFS_BUSY when another holds it.  *FD: close
** it to release. */
static int ckpt_lock(mmfs_db *db, int nonblock, int *fd) {
    char dir[4200], path[4300];
    ck_dir(db, dir, sizeof dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) return mmfs__err_sys(errno, "mkdir", dir);
    snprintf(path, sizeof path, "%s/lock", dir);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) return mmfs__err_sys(errno, "open", path);
    while (flock(f, LOCK_EX | (nonblock ? LOCK_NB : 0)) < 0) {
        int err = errno;
        if (err == EINTR) continue;
        close(f);
        return nonblock && err == EWOULDBLOCK ? MMFS_BUSY : mmfs__err_sys(err, "flock", path);
    }
    *fd = f;
    return MMFS_OK;
}

int mmfs_checkpoint(mmfs_db *db) {
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if (db->opt.readonly) return mmfs__err(MMFS_READONLY, "%s: opened read-only: cannot write a checkpoint", db->dir);
    if (mmfs__in_own_writer(db))
        return mmfs__err(MMFS_BUSY, "%s: a hook called back into its own store (checkpoint)", db->dir);
    int fd;
    if ((rc = ckpt_lock(db, 0, &fd))) return rc;
    pthread_mutex_lock(&db->cpmu);
    rc = checkpoint_locked(db);
    if (rc == MMFS_OK) follow_own(db);
    pthread_mutex_unlock(&db->cpmu);
    close(fd);
    return rc;
}

/* ------------------------------------------------------- the checkpointer */

/* Log bytes written since the newest checkpoint this handle knows
** (segments count whole after the first). */
static uint64_t since_ckpt(mmfs_db *db) {
    uint64_t now = atomic_load(&db->applied), then = atomic_load(&db->ckpt_pos);
    if (!then) then = MMFS__POS(db->log.first_seg, MMFS__SEG_HDR);
    if (now <= then) return 0;
    if (MMFS__POS_SEG(now) == MMFS__POS_SEG(then)) return now - then;
    return (uint64_t)(MMFS__POS_SEG(now) - MMFS__POS_SEG(then)) * db->log.segment_size + MMFS__POS_OFF(now) -
           MMFS__POS_OFF(then);
}

int mmfs__ckpt_open_header(mmfs_db *db, uint64_t lsn, uint8_t h[CK_HDR]) {
    char path[4400];
    mmfs__ckpt_path(db, lsn, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t r = pread(fd, h, CK_HDR, 0);
    if (r == CK_HDR && memcmp(h + H_MAGIC, CK_MAGIC, 8) == 0 && mmfs__ld32(h + H_FORMAT) == CK_FORMAT &&
        mmfs__sum_check(&db->log.sum, h, H_HDR_SUM, h + H_HDR_SUM))
        return fd;
    int e = r < 0 ? errno : EINVAL;
    close(fd);
    errno = e;
    return -1;
}

/* Moves ckpt_pos to the anchor of the newest checkpoint in ckpt/ when
** another handle wrote one since (its header, checksum checked; the
** anchor frame's own length is not counted). */
static void ckpt_pos_refresh(mmfs_db *db) {
    uint64_t *v;
    size_t n;
    if (mmfs__ckpt_list(db, &v, &n, 0) != MMFS_OK) return;
    uint8_t h[CK_HDR];
    if (n) {
        int fd = mmfs__ckpt_open_header(db, v[0], h);
        if (fd >= 0 && mmfs__ld32(h + H_FIRST_SEG) == db->log.first_seg) {
            uint64_t pos = MMFS__POS(mmfs__ld32(h + H_ANCHOR_SEG), mmfs__ld64(h + H_ANCHOR_OFF));
            if (pos > atomic_load(&db->ckpt_pos)) atomic_store(&db->ckpt_pos, pos);
        }
        if (fd >= 0) close(fd);
    }
    free(v);
}

/* The thread mmfs__ckpt_maybe starts: writes one checkpoint if no other
** handle (of any process) is writing one and none was written since this
** handle last looked, then ends. */
static void *checkpointer(void *arg) {
    mmfs_db *db = arg;
    int fd = -1, rc = mmfs__usable(db); /* not after a failed fsync */
    if (rc == MMFS_OK) rc = ckpt_lock(db, 1, &fd);
    if (rc == MMFS_OK) {
        ckpt_pos_refresh(db);
        if (since_ckpt(db) >= db->opt.checkpoint_bytes) {
            pthread_mutex_lock(&db->cpmu);
            rc = checkpoint_locked(db);
            if (rc == MMFS_OK) follow_own(db);
            pthread_mutex_unlock(&db->cpmu);
        }
        close(fd);
    }
    /* Another handle is writing one (BUSY), or this one failed (disk
    ** full): count again from here, so that the next try comes after
    ** another checkpoint_bytes, not at every commit. */
    if (rc != MMFS_OK) atomic_store(&db->ckpt_pos, atomic_load(&db->applied));
    pthread_mutex_lock(&db->cmu);
    db->ckpt_running = 0;
    pthread_mutex_unlock(&db->cmu);
    return NULL;
}

void mmfs__ckpt_maybe(mmfs_db *db) {
    if (db->opt.readonly || !db->opt.checkpoint_bytes || since_ckpt(db) < db->opt.checkpoint_bytes) return;
    pthread_mutex_lock(&db->cmu);
    if (!db->ckpt_running && !db->ckpt_stop) {
        if (db->ckpt_on) pthread_join(db->ckpter, NULL); /* the last one, ended */
        db->ckpt_on = 0;
        /* Failing to start is not an error of the commit: the next one
        ** past the threshold tries again. */
        if (pthread_create(&db->ckpter, NULL, checkpointer, db) == 0) db->ckpt_on = db->ckpt_running = 1;
    }
    pthread_mutex_unlock(&db->cmu);
}

int mmfs__ckpt_auto_start(mmfs_db *db) {
    (void)db; /* nothing runs until a checkpoint is due (mmfs__ckpt_maybe) */
    return MMFS_OK;
}

void mmfs__ckpt_auto_stop(mmfs_db *db) {
    pthread_mutex_lock(&db->cmu);
    db->ckpt_stop = 1;
    int on = db->ckpt_on;
    db->ckpt_on = 0;
    pthread_mutex_unlock(&db->cmu);
    if (on) pthread_join(db->ckpter, NULL);
}
