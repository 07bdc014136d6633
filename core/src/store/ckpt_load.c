/*
** ckpt_load.c: loading a checkpoint: at open (mmfs__ckpt_load), the
** newest file of ckpt/ that checks out, into the handle's engine; later
** (mmfs__ckpt_load_into, recover.c's switch), a newer one into a fresh
** engine beside the one readers use.  The file is mapped, its kv tables,
** memory table and session, stream and document tables handed to the
** engine as they are, its state and policy records applied again; replay goes on after its anchor.
**
** Invariants:
** - The log stays the truth.  A file is skipped when anything is off
**   (checksum, size, format, first_segment, tokenizer, anchor, a position
**   outside the log): open then tries the next older one, then the whole
**   log.  Nothing here ever changes the log or ckpt/, and a failed load
**   leaves nothing in the engine it filled (open makes it anew; a switch
**   frees it and keeps the engine it had).
** - try_one fills only the engine it is given and tells the handle's
**   values (next LSN, anchor, ...) through a mmfs__ckpt_at: it changes no
**   field of the handle, so a switch can run while readers use db->eng.
** - Open checks the header, the blocks' checksums (section 14) and the
**   blocks of the sections it reads; the others are checked when first
**   read (engine/ck_verify.c), which may drop the file later.
** - The anchor frame is checked in this log (header, checksum, LSNs, its
**   checksum as the file recorded it) before anything in the file is
**   trusted, so a checkpoint of another log is never applied.
*/
#include "ckpt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A new engine with the store's tokenizer, in *OUT.  Errors: MMFS_NOMEM,
** MMFS_INVALID. */
static int engine_fresh(mmfs_db *db, mmfs__engine **out) {
    int rc = mmfs__engine_new(out);
    if (rc == MMFS_OK && (rc = mmfs__engine_set_tokenizer(*out, db->log.tok_version, db->log.tok_lang)) != MMFS_OK) {
        mmfs__engine_free(*out);
        *out = NULL;
    }
    return rc;
}

/* The segment of DB with number NO, and its index in *I. */
static mmfs__seg *seg_index(mmfs_db *db, uint32_t no, size_t *i) {
    if (no < db->log.first_seg || no - db->log.first_seg >= db->log.nsegs) return NULL;
    *i = no - db->log.first_seg;
    return db->log.segs[*i].no == no ? &db->log.segs[*i] : NULL;
}

/* Tries checkpoint LSN into E (new, with the store's tokenizer, nothing
** applied).  MMFS_OK: E holds it and *AT says where the log goes on.
** MMFS_CORRUPT: skipped; MMFS_NOMEM: give up.  On either, E may hold a
** part of the file: the caller frees it. */
static int try_one(mmfs_db *db, mmfs__engine *e, uint64_t lsn, mmfs__ckpt_at *at) {
    char path[4400];
    mmfs__ckpt_path(db, lsn, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return MMFS_CORRUPT;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size < CK_HDR || (uint64_t)st.st_size > SIZE_MAX) {
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
    mmfs__ckfile *ckf = NULL;
    /* The header and the checksums of the blocks: all that open reads of
    ** the file before the small sections (format 1 files are skipped: the
    ** next checkpoint is written in format 3; so are format 2 files). */
    if (memcmp(b + H_MAGIC, CK_MAGIC, 8) != 0 || mmfs__ld32(b + H_FORMAT) != CK_FORMAT ||
        mmfs__ld32(b + H_SUMTYPE) != (uint32_t)db->log.sum.type || !mmfs__sum_check(&db->log.sum, b, H_HDR_SUM, b + H_HDR_SUM) ||
        mmfs__ld64(b + H_SIZE) != size || mmfs__ld64(b + H_LSN) != lsn || mmfs__ld32(b + H_NSEC) != CK_NSEC ||
        mmfs__ld32(b + H_BLOCK_SHIFT) != CK_BLOCK_SHIFT)
        goto bad; /* damaged, truncated, misnamed, or a newer format */
    if (mmfs__ld32(b + H_FIRST_SEG) != db->log.first_seg) goto bad; /* stale: compacted since */
    if (mmfs__ld32(b + H_TOK_VERSION) != (uint32_t)db->log.tok_version ||
        strncmp((const char *)b + H_TOK_LANG, db->log.tok_lang, 32) != 0)
        goto bad;
    for (int k = 0; k < CK_NSEC; k++) {
        off[k] = mmfs__ld64(b + H_SEC + 16 * k);
        cnt[k] = mmfs__ld64(b + H_SEC + 16 * k + 8);
    }
    uint64_t body_end = off[SEC_SUMS - 1];
    if (body_end < CK_HDR || body_end > size ||
        cnt[SEC_SUMS - 1] != (body_end - CK_HDR + ((uint64_t)1 << CK_BLOCK_SHIFT) - 1) >> CK_BLOCK_SHIFT ||
        size - body_end != cnt[SEC_SUMS - 1] * 16 ||
        !mmfs__sum_check(&db->log.sum, b + body_end, (size_t)(size - body_end), b + H_SUMS_SUM))
        goto bad;
    for (int k = 0; k < CK_NSEC - 1; k++) {
        size_t es = mmfs__ckpt_entsize((uint32_t)(k + 1));
        if (off[k] % 8 || off[k] < CK_HDR || off[k] > body_end || cnt[k] > (body_end - off[k]) / es) goto bad;
    }
    if (!(ckf = calloc(1, sizeof *ckf)) ||
        !(ckf->verified = calloc((cnt[SEC_SUMS - 1] + 63) / 64 + 1, sizeof *ckf->verified))) {
        rc = mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
        goto bad;
    }
    ckf->map = b;
    ckf->lo = CK_HDR;
    ckf->hi = (size_t)body_end;
    ckf->shift = CK_BLOCK_SHIFT;
    ckf->sums = b + body_end;
    ckf->sum = &db->log.sum;
    /* The small sections open reads now; the rest when first used. */
    static const int at_open[] = {SEC_SEGMENTS, SEC_RECORDS, SEC_INDEX, SEC_ROUTES, SEC_TAGS};
    for (size_t i = 0; i < sizeof at_open / sizeof *at_open; i++) {
        int k = at_open[i] - 1;
        if (!mmfs__ckf_ok(ckf, b + off[k], (size_t)cnt[k] * mmfs__ckpt_entsize((uint32_t)(k + 1)))) goto bad;
    }
    if (cnt[1] & (cnt[1] - 1) || (cnt[2] && cnt[1] < cnt[2] * 2)) goto bad;
    /* The anchor: the last frame covered, still in this log. */
    as = seg_index(db, mmfs__ld32(b + H_ANCHOR_SEG), &ai);
    uint64_t aoff = mmfs__ld64(b + H_ANCHOR_OFF);
    if (!as || cnt[0] != ai || aoff < MMFS__SEG_HDR || aoff >= as->size ||
        !mmfs__frame_check(as->map + aoff, as->size - aoff, mmfs__ld64(b + H_ANCHOR_LSN), &db->log.sum, &f, &why) ||
        (f.flags & MMFS__FRAME_SEAL) || f.first_lsn + f.count - 1 != lsn ||
        memcmp(f.body + f.body_len, b + H_ANCHOR_SUM, db->log.sum.len) != 0)
        goto bad; /* not this log's frame: another log, or a repaired one */
    for (size_t i = 0; i < ai; i++) {
        const uint8_t *p = b + off[0] + 16 * i;
        uint64_t end = mmfs__ld64(p + 8);
        if (mmfs__ld32(p) != db->log.segs[i].no || end < MMFS__SEG_HDR || end > db->log.segs[i].size) goto bad;
    }

    /* Trusted from here.  The kv tables are mapped; the rest is applied. */
    mmfs__kvck *ck = &e->kv.ck;
    ck->seg_map = calloc(ai + 1, sizeof *ck->seg_map);
    ck->seg_end = calloc(ai + 1, sizeof *ck->seg_end);
    if (!ck->seg_map || !ck->seg_end) {
        rc = mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
        goto bad;
    }
    for (size_t i = 0; i <= ai; i++) {
        ck->seg_map[i] = db->log.segs[i].map;
        ck->seg_end[i] = i < ai ? mmfs__ld64(b + off[0] + 16 * i + 8) : aoff + f.frame_len;
    }
    ck->first = db->log.first_seg;
    ck->nsegs = (uint32_t)ai + 1;
    ck->file = map;
    ck->file_size = size;
    ck->ckf = ckf;
    ckf = NULL; /* the engine owns it now, and the map */
    map = NULL;
    /* Only now may a bad block found later remove the file (never open:
    ** a failed open changes nothing on disk; nor a read-only handle). */
    if (!db->opt.readonly && !(ck->ckf->path = strdup(path))) {
        rc = mmfs__err(MMFS_NOMEM, "checkpoint: out of memory");
        goto bad;
    }
    ck->slots = b + off[1];
    ck->mask = cnt[1] ? cnt[1] - 1 : 0;
    ck->order = b + off[2];
    ck->n = cnt[2];
    e->kv.live = cnt[2];
    /* The index work of the memories waits for the first search or write,
    ** so that open and a first kv read do not tokenize history. */
    mmfs__engine_defer_index(e);
    /* The memory table, mapped; it covers every id below the next. */
    uint64_t next_mem = mmfs__ld64(b + H_NEXT_MEM), mem_base = mmfs__ld64(b + H_MEM_BASE);
    uint64_t nmem = next_mem - mem_base, ntime = mmfs__ld64(b + H_NTIME);
    uint32_t rwidth = mmfs__ld32(b + H_RWIDTH);
    if (next_mem == 0 || mem_base > next_mem || cnt[5] != (nmem + MMFS__MEM_BLOCK - 1) / MMFS__MEM_BLOCK ||
        ntime > nmem || cnt[6] == 0 || (rwidth != 0 && rwidth != 1 && rwidth != 2 && rwidth != 4) ||
        cnt[10] != nmem * rwidth)
        goto bad;
    mmfs__memck mck;
    memset(&mck, 0, sizeof mck);
    mck.f = ck->ckf;
    mck.dir = b + off[5];
    mck.pos = b + off[9];
    mck.pos_len = (size_t)cnt[9];
    mck.route = b + off[10];
    mck.rwidth = rwidth;
    mck.time = b + off[6];
    mck.nruns = (size_t)cnt[6] - 1;
    mck.tids = b + off[11];
    mck.ntids = (size_t)cnt[11];
    mck.base = mem_base;
    mck.n = (size_t)nmem;
    mck.ntime = (size_t)ntime;
    if ((rc = mmfs__mem_ck_attach(e, &mck, b + off[7], (size_t)cnt[7], (size_t)mmfs__ld64(b + H_NROUTES),
                                  b + off[8], (size_t)cnt[8], b + off[12], (size_t)cnt[12],
                                  mmfs__ld64(b + H_MEM_LIVE), next_mem)) != MMFS_OK)
        goto bad;
    if ((rc = mmfs__ckpt_index_load(db, e, lsn, b + off[4], cnt[4])) != MMFS_OK) goto bad;
    if ((rc = mmfs__ckpt_tables_load(e, b, body_end)) != MMFS_OK) goto bad;
    const uint8_t *recs = b + off[3];
    for (uint64_t i = 0; i < cnt[3]; i++) {
        uint64_t pos = mmfs__ld64(recs + 8 * i);
        uint32_t no = MMFS__POS_SEG(pos);
        uint64_t o = MMFS__POS_OFF(pos);
        mmfs__rec r;
        if (no < ck->first || no - ck->first >= ck->nsegs || o < MMFS__SEG_HDR ||
            o >= ck->seg_end[no - ck->first] ||
            mmfs__rec_decode(ck->seg_map[no - ck->first] + o, (size_t)(ck->seg_end[no - ck->first] - o), &r) ||
            r.lsn > lsn ||
            (r.type != MMFS__R_STATE && r.type != MMFS__R_POLICY && r.type != MMFS__R_DICT) || /* format 3 */
            (i && pos <= mmfs__ld64(recs + 8 * (i - 1))))
            goto bad;
        if ((rc = mmfs__engine_apply(e, &r)) != MMFS_OK) goto bad;
    }
    /* As it was, not as the records applied again add up: empty stream
    ** appends after a stream's first are counted but not kept. */
    e->live_bytes = mmfs__ld64(b + H_LIVE_BYTES);
    at->lsn = lsn;
    at->start = ai;
    at->from = aoff + f.frame_len;
    at->rec_bytes = mmfs__ld64(b + H_REC_BYTES); /* the tail's records add to it */
    at->last_frame = MMFS__POS(as->no, aoff);
    return MMFS_OK;

bad:
    mmfs__ckf_free(ckf);
    if (map) munmap(map, size);
    return rc == MMFS_NOMEM ? MMFS_NOMEM : MMFS_CORRUPT;
}

int mmfs__ckpt_load(mmfs_db *db, size_t *start, uint64_t *from) {
    *start = 0;
    *from = MMFS__SEG_HDR;
    db->ckpt_lsn = 0;
    if (db->no_manifest || db->log.nsegs == 0) return MMFS_OK;
    uint64_t *v;
    size_t n;
    if (mmfs__ckpt_list(db, &v, &n, 0) != MMFS_OK) return MMFS_OK; /* an unreadable ckpt/: the log */
    int rc = MMFS_OK;
    for (size_t i = 0; i < n; i++) {
        mmfs__ckpt_at at;
        rc = try_one(db, db->eng, v[i], &at);
        if (rc == MMFS_OK) {
            const mmfs__kvck *ck = &db->eng->kv.ck;
            for (size_t k = 0; k < at.start; k++) {
                db->log.segs[k].end = ck->seg_end[k];
                db->log.segs[k].sealed = 1;
            }
            db->next_lsn = at.lsn + 1;
            db->rec_bytes = at.rec_bytes;
            db->last_frame = at.last_frame;
            db->ckpt_lsn = at.lsn;
            atomic_store(&db->ckpt_pos, MMFS__POS(db->log.segs[at.start].no, at.from));
            *start = at.start;
            *from = at.from;
            break;
        }
        /* Forget whatever the failed load put into the engine. */
        mmfs__engine *e;
        int r2 = engine_fresh(db, &e);
        if (r2 == MMFS_OK) {
            mmfs__engine_free(db->eng);
            db->eng = e;
        } else {
            rc = r2;
        }
        if (rc != MMFS_CORRUPT) break;
        rc = MMFS_OK;
    }
    free(v);
    return rc;
}

int mmfs__ckpt_load_into(mmfs_db *db, uint64_t lsn, mmfs__engine **out, mmfs__ckpt_at *at) {
    *out = NULL;
    mmfs__engine *e;
    int rc = engine_fresh(db, &e);
    if (rc) return rc;
    /* Every block is checked now, not when first read as at open: a
    ** switch is made only to a file that reads whole, so that no answer
    ** the old engine gave turns into MMFS_CORRUPT after it (crc32c reads
    ** a checkpoint of 1M memories in milliseconds). */
    rc = try_one(db, e, lsn, at);
    const mmfs__ckfile *f = e->kv.ck.ckf;
    if (rc == MMFS_OK && (!f || !mmfs__ckf_ok(e->kv.ck.ckf, f->map + f->lo, f->hi - f->lo))) rc = MMFS_CORRUPT;
    if (rc != MMFS_OK) {
        mmfs__engine_free(e);
        return rc == MMFS_NOMEM ? rc : mmfs__err(MMFS_CORRUPT, "checkpoint %llu: damaged, stale or missing",
                                                 (unsigned long long)lsn);
    }
    *out = e;
    return MMFS_OK;
}
