/*
** recover.c: replaying the log into the engine at open, catching up with
** frames other processes appended, and verify.
**
** The recovery rule (DESIGN.md): in the LAST segment, a bad frame followed
** by no valid frame is a torn tail, cut off (zeroed) and open goes on.  A
** bad frame followed by a valid one, a bad frame in a sealed segment, or a
** segment that ends without its seal frame while another follows it, is
** corruption: open fails with MMFS_CORRUPT naming the segment and offset.
** Nothing is ever skipped in silence.
**
** What is known durable bounds the cut: a torn tail starts after the last
** segment's durable stamp (segment.c), and MANIFEST's last_segment must
** exist, so losing acknowledged, synced frames (a truncated or missing last
** segment) is MMFS_CORRUPT, and new writes never reuse their LSNs or ids.
** A bad frame whose header still checks and is followed by the next
** frame's header in sequence is not a tail either: every frame of a log
** opened with a wrong key looks like that.  A log whose MANIFEST is lost
** is opened only when it verifies whole: nothing is cut (db->no_manifest).
** A directory listing that fails is an error, never a short log.
*/
#include "db.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Repair only ever cuts the last segment (a tail), so only there (LAST)
** does the message offer it. */
static int corrupt_at(const mmfs__seg *s, uint64_t off, const char *why, int last) {
    return mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset %llu: %s (%s)", s->no, (unsigned long long)off, why,
                     last ? "run verify; repair cuts here" : "run verify; repair cannot cut a sealed segment");
}

/* The same, for a segment open in DB: the last one is, unless sealed. */
static int corrupt(mmfs_db *db, const mmfs__seg *s, uint64_t off, const char *why) {
    return corrupt_at(s, off, why, s == mmfs__seg_last(&db->log) && !s->sealed);
}

uint64_t mmfs__next_memory_id(const mmfs_db *db) {
    uint64_t id = mmfs__engine_next_memory_id(db->eng);
    return id > db->log.id_floor ? id : db->log.id_floor;
}

/* What a writer can never have framed, even under a valid checksum (a
** forged or buggy frame): NULL if R fits the engine's state, else why.
** Memory ids are dense and state versions count up by one: the engine
** sizes its id table by the ids it sees, so a forged id far out of range
** must not reach it.  In a compacted frame (COMPACT) ids and versions
** only grow, since compaction dropped what came between, and ids stay
** below the floor MANIFEST recorded at the switch; a frame written after
** it gives the next id past that floor. */
static const char *implausible(const mmfs_db *db, const mmfs__rec *r, int compact, int in_compacted) {
    const mmfs__engine *e = db->eng;
    if (r->type == MMFS__R_MEMORY) {
        uint64_t next = mmfs__engine_next_memory_id(e), want = mmfs__next_memory_id(db), id = r->u.mem.id;
        if (compact && (id < next || (db->log.id_floor && id >= db->log.id_floor)))
            return "memory id out of sequence in a compacted frame";
        /* Frames a compaction carried over follow the gaps it left. */
        if (!compact && (in_compacted ? id < next || id > want : id != want)) return "memory id out of sequence";
    }
    if (r->type == MMFS__R_STATE) {
        uint64_t v = mmfs__engine_state_version(e);
        if (compact || in_compacted ? r->u.state.version <= v : r->u.state.version != v + 1)
            return "state version out of sequence";
    }
    return NULL;
}

/* The LSN after checked frame F: records of a compacted frame have gaps. */
static uint64_t frame_next_lsn(const mmfs__frame *f) {
    if (!(f->flags & MMFS__FRAME_COMPACT) || f->count == 0) return f->first_lsn + f->count;
    const uint8_t *p = f->body;
    uint64_t next = f->first_lsn;
    for (uint32_t i = 0; i < f->count; i++) {
        mmfs__rec r;
        if (mmfs__rec_decode(p, (size_t)(f->body + f->body_len - p), &r) != MMFS_OK) break;
        next = r.lsn + 1;
        p += r.raw_len;
    }
    return next;
}

/* A compacted frame is only trusted where compaction wrote one: in the
** segments MANIFEST records as its output. */
static const char *misplaced(const mmfs_db *db, const mmfs__frame *f, const mmfs__seg *s) {
    if ((f->flags & MMFS__FRAME_COMPACT) && s->no > db->log.compact_seg)
        return "a compacted frame outside the segments compaction wrote";
    return NULL;
}

/* Applies the records of a checked frame.  Caller holds the engine's
** write side.  S and OFF name the frame in errors; LAST: S is the log's
** last segment (where repair could cut). */
static int apply_frame(mmfs_db *db, const mmfs__frame *f, const mmfs__seg *s, uint64_t off, int last) {
    const uint8_t *p = f->body, *end = f->body + f->body_len;
    int compact = (f->flags & MMFS__FRAME_COMPACT) != 0;
    uint64_t next = f->first_lsn;
    const char *why = misplaced(db, f, s);
    if (why) return corrupt_at(s, off, why, last);
    for (uint32_t i = 0; i < f->count; i++) {
        mmfs__rec r;
        if (mmfs__rec_decode(p, (size_t)(end - p), &r) != MMFS_OK)
            return mmfs__err(MMFS_CORRUPT, "malformed record in a checked frame");
        if ((why = implausible(db, &r, compact, s->no <= db->log.compact_seg)) != NULL) return corrupt_at(s, off, why, last);
        int rc = mmfs__engine_apply(db->eng, &r);
        if (rc) {
            atomic_store(&db->broken, 1);
            return rc;
        }
        next = r.lsn + 1;
        db->rec_bytes += r.raw_len;
        p += r.raw_len;
    }
    /* A compacted frame with no record marks the LSN the log goes on at. */
    db->next_lsn = next;
    db->last_frame = MMFS__POS(s->no, off); /* a checkpoint's anchor */
    return MMFS_OK;
}

/* Offset just past the last non-zero byte of S at or after FROM (8-byte
** aligned), or FROM when all is zero.  Preallocated but unwritten space
** reads as zeros; SEEK_HOLE skips most of it without touching pages. */
static uint64_t data_end(const mmfs__seg *s, uint64_t from) {
    off_t hole = lseek(s->fd, (off_t)from, SEEK_HOLE);
    uint64_t end = (hole > 0 && (uint64_t)hole < s->size) ? (uint64_t)hole : s->size;
    end &= ~(uint64_t)7;
    while (end > from && mmfs__ld64(s->map + end - 8) == 0) end -= 8;
    return end;
}

/* 1 if the bad frame at OFF has a header that checks and the next frame's
** header follows it in sequence: a whole frame whose body fails its
** checksum (damage, or a wrong key), not a write cut short. */
static int header_chain_at(const mmfs__seg *s, uint64_t off) {
    const uint8_t *p = s->map + off;
    if (off + MMFS__FRAME_HDR > s->size || !mmfs__frame_header_ok(p)) return 0;
    uint64_t len = mmfs__ld32(p + 4);
    if (len < MMFS__FRAME_HDR || (len & 7) || off + len + MMFS__FRAME_HDR > s->size) return 0;
    const uint8_t *q = p + len;
    return mmfs__frame_header_ok(q) && mmfs__ld64(q + 8) == mmfs__ld64(p + 8) + mmfs__ld32(p + 16);
}

/* 1 if a valid frame starts anywhere in S after FROM (up to LIMIT). */
static int valid_frame_after(mmfs_db *db, const mmfs__seg *s, uint64_t from, uint64_t limit) {
    for (uint64_t q = from + 8; q + MMFS__FRAME_HDR <= limit; q += 8) {
        if (!mmfs__frame_header_ok(s->map + q)) continue;
        mmfs__frame f;
        const char *why;
        if (mmfs__frame_check(s->map + q, s->size - q, 0, &db->log.sum, &f, &why)) return 1;
    }
    return 0;
}

/* Repair (mmfs_options.repair): keeps the bytes [OFF, END) of the last
** segment, from its first bad frame on, in ROOT/repair/ before they are
** cut, so that nothing is thrown away unseen: the side file is named after
** the segment and offset (a later repair at the same offset adds .2, .3,
** ...: every generation is kept), and is synced with its directory. */
static int save_cut(mmfs_db *db, const mmfs__seg *s, uint64_t off, uint64_t end) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/repair", db->dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) return mmfs__err_sys(errno, "mkdir", dir);
    int fd = -1;
    for (unsigned gen = 1; fd < 0 && gen < 100000; gen++) {
        if (gen == 1)
            snprintf(path, sizeof path, "%s/%08u.seg.%llu.cut", dir, s->no, (unsigned long long)off);
        else
            snprintf(path, sizeof path, "%s/%08u.seg.%llu.cut.%u", dir, s->no, (unsigned long long)off, gen);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) return mmfs__err_sys(errno, "create", path);
    }
    if (fd < 0) return mmfs__err(MMFS_IO, "%s: too many cut files for one offset", dir);
    const uint8_t *p = s->map + off;
    size_t left = (size_t)(end - off);
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            close(fd);
            return mmfs__err_sys(e, "write", path);
        }
        p += w;
        left -= (size_t)w;
    }
    int rc = fsync(fd) < 0 ? mmfs__err_sys(errno, "fsync", path) : MMFS_OK;
    close(fd);
    if (rc == MMFS_OK) rc = mmfs__fsync_dir(dir);
    if (rc == MMFS_OK) rc = mmfs__fsync_dir(db->dir);
    return rc;
}

/* Scans segment S from offset FROM (its start, or where a checkpoint
** ends), applying frames.  LAST: it is the last segment (a torn tail may
** be cut).  Sets s->end and s->sealed. */
static int scan_segment(mmfs_db *db, mmfs__seg *s, int last, uint64_t from) {
    uint64_t off = from;
    const char *why = "bad frame";
    for (;;) {
        mmfs__frame f;
        if (off + MMFS__FRAME_HDR > s->size ||
            !mmfs__frame_check(s->map + off, s->size - off, db->next_lsn, &db->log.sum, &f, &why))
            break;
        if (f.flags & MMFS__FRAME_SEAL) {
            s->end = off;
            s->sealed = 1;
            return MMFS_OK;
        }
        int rc = apply_frame(db, &f, s, off, last);
        if (rc) return rc;
        off += f.frame_len;
    }
    s->end = off;
    uint64_t dend = data_end(s, off);
    if (!last) {
        if (dend == off) why = "segment ends without its seal frame";
        return corrupt_at(s, off, why, 0);
    }
    /* Checked before anything is cut, so such an open fails as it found
    ** the log: below the durable stamp, with the MANIFEST lost, or where
    ** the frames go on after the bad one, there is no torn tail. */
    int below = off < s->stamp;
    if (dend == off && !below) return MMFS_OK; /* a clean end */
    char msg[300];
    if (db->no_manifest) {
        /* Without MANIFEST's key check, a wrong key looks like damage. */
        snprintf(msg, sizeof msg, "%s, and MANIFEST is missing: nothing is cut%s", why,
                 db->log.sum.key_len ? " (wrong key?)" : " (a keyed store opened without its key?)");
        why = msg;
    } else if (below) {
        snprintf(msg, sizeof msg, "%s, but the log was synced up to offset %llu: acknowledged writes are lost",
                 dend == off ? "the log ends here" : why, (unsigned long long)s->stamp);
        why = msg;
    }
    if (below || db->no_manifest || valid_frame_after(db, s, off, dend) || header_chain_at(s, off)) {
        if (!db->opt.repair || db->opt.readonly) return corrupt_at(s, off, why, 1);
        int rc = dend > off ? save_cut(db, s, off, dend) : MMFS_OK;
        if (rc) return rc;
        /* The cut is what repair was asked for: the stamp follows it. */
        if (below) {
            mmfs__seg_stamp(s->fd, off);
            s->stamp = off;
        }
    }
    if (db->opt.readonly) return MMFS_OK; /* a writer will cut it */
    /* A torn tail: zero it, so that later appends never sit before stale
    ** bytes, and make the cut durable before anything is appended. */
    static const uint8_t zeros[65536];
    for (uint64_t p = off; p < dend;) {
        size_t n = dend - p < sizeof zeros ? (size_t)(dend - p) : sizeof zeros;
        if (pwrite(s->fd, zeros, n, (off_t)p) != (ssize_t)n) {
            char path[4096];
            mmfs__seg_path(&db->log, s->no, path, sizeof path);
            return mmfs__err_sys(errno ? errno : EIO, "cut torn tail", path);
        }
        p += n;
    }
    if (fdatasync(s->fd) < 0) {
        char path[4096];
        mmfs__seg_path(&db->log, s->no, path, sizeof path);
        return mmfs__err_sys(errno, "fdatasync", path);
    }
    return MMFS_OK;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the segment numbers in log/ (sorted) and removes leftovers of
** interrupted segment creation and of compactions: output no MANIFEST
** names, segments below first_segment.  Output MANIFEST names under its
** first name (.cseg) is renamed into place (a read-only open reads it
** where it is: segment.c). */
static int list_segments(mmfs_db *db, uint32_t **out, size_t *n) {
    DIR *d = opendir(db->log.log_dir);
    if (!d) return mmfs__err_sys(errno, "open directory", db->log.log_dir);
    uint32_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int renamed = 0, idle = -1; /* idle: no compaction runs (-1: not asked yet) */
    struct dirent *e;
    /* readdir() says "no more" and "failed" both with NULL; only errno
    ** tells them apart, and a failure taken for the end would hide
    ** segments (and the log would then be made anew over them). */
    for (;;) {
        errno = 0;
        if (!(e = readdir(d))) {
            if (errno) {
                int err = errno;
                free(v);
                closedir(d);
                return mmfs__err_sys(err, "read directory", db->log.log_dir);
            }
            break;
        }
        unsigned no;
        char tail[16];
        if (sscanf(e->d_name, "%8u.%15s", &no, tail) != 2 || strlen(e->d_name) < 12) continue;
        if (!strcmp(tail, "seg.tmp")) {
            if (!db->opt.readonly) {
                char p[4200];
                snprintf(p, sizeof p, "%s/%s", db->log.log_dir, e->d_name);
                unlink(p);
            }
            continue;
        }
        if (!strcmp(tail, "cseg")) {
            /* Compaction's output (compact.c): part of the log once MANIFEST
            ** names it (a crash came before its rename: finish it), else a
            ** leftover of a compaction that never switched. */
            char p[4200], q[4200];
            snprintf(p, sizeof p, "%s/%s", db->log.log_dir, e->d_name);
            int named = db->log.first_seg && no >= db->log.first_seg && no <= db->log.compact_seg;
            if (!named) {
                /* Not while a compaction runs (in any process): its output
                ** is being written without the writer lock. */
                if (!db->opt.readonly && idle < 0) {
                    int fd;
                    idle = mmfs__compact_lock(db, &fd) == MMFS_OK;
                    if (fd >= 0) close(fd);
                }
                if (!db->opt.readonly && idle > 0) unlink(p);
                continue;
            }
            mmfs__seg_path(&db->log, no, q, sizeof q);
            if (!db->opt.readonly && rename(p, q) < 0) {
                int err = errno;
                free(v);
                closedir(d);
                return mmfs__err_sys(err, "rename", p);
            }
            renamed = 1;
        } else if (strcmp(tail, "seg") != 0) {
            continue;
        } else if (no < db->log.first_seg) {
            /* A segment a compaction switched away from: nothing names it. */
            if (db->log.compact_seg && !db->opt.readonly) {
                char p[4200];
                snprintf(p, sizeof p, "%s/%s", db->log.log_dir, e->d_name);
                unlink(p);
                renamed = 1;
            }
            continue;
        }
        if (no <= db->log.compact_seg) { /* listed once, under either name */
            int dup = 0;
            for (size_t j = 0; j < cnt && !dup; j++) dup = v[j] == no;
            if (dup) continue;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            uint32_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                free(v);
                closedir(d);
                return mmfs__err(MMFS_NOMEM, "out of memory listing segments");
            }
            v = nv;
        }
        v[cnt++] = no;
    }
    closedir(d);
    if (renamed) {
        int rc = mmfs__fsync_dir(db->log.log_dir);
        if (rc) {
            free(v);
            return rc;
        }
    }
    if (cnt) qsort(v, cnt, sizeof *v, cmp_u32);
    *out = v;
    *n = cnt;
    return MMFS_OK;
}

int mmfs__log_first_segment(mmfs_db *db, uint32_t *first, uint8_t hdr[MMFS__SEG_HDR]) {
    uint32_t *nos;
    size_t n;
    *first = 0;
    struct stat st;
    if (stat(db->log.log_dir, &st) < 0) {
        if (errno == ENOENT) return MMFS_OK; /* a new store */
        return mmfs__err_sys(errno, "stat", db->log.log_dir);
    }
    uint32_t keep = db->log.first_seg;
    db->log.first_seg = 0;
    int rc = list_segments(db, &nos, &n);
    db->log.first_seg = keep;
    if (rc) return rc;
    *first = n ? nos[0] : 0;
    free(nos);
    if (!n) return MMFS_OK;
    char path[4096];
    mmfs__seg_path(&db->log, *first, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mmfs__err_sys(errno, "open", path);
    ssize_t r = pread(fd, hdr, MMFS__SEG_HDR, 0);
    int e = errno;
    close(fd);
    if (r != MMFS__SEG_HDR) return r < 0 ? mmfs__err_sys(e, "read", path) : mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset 0: segment too short", *first);
    return MMFS_OK;
}

int mmfs__recover(mmfs_db *db) {
    uint32_t *nos;
    size_t n;
    int rc = list_segments(db, &nos, &n);
    if (rc) return rc;
    if (db->log.last_seg && (n == 0 || nos[n - 1] < db->log.last_seg)) {
        free(nos);
        return mmfs__err(MMFS_CORRUPT,
                         "log/%08u.seg: offset 0: segment missing (MANIFEST records segments up to it; "
                         "acknowledged writes may be lost)",
                         db->log.last_seg);
    }
    db->next_lsn = 1;
    /* Every segment is opened (mapped) first: a checkpoint's records point
    ** into them.  Replay then goes on where the newest valid checkpoint
    ** ends (ckpt.c), or from the start. */
    for (size_t i = 0; i < n; i++) {
        if (nos[i] != db->log.first_seg + i) {
            rc = mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset 0: segment missing before it",
                           nos[i]);
            break;
        }
        if ((rc = mmfs__seg_open(&db->log, nos[i])) != MMFS_OK) break;
    }
    free(nos);
    size_t start = 0;
    uint64_t from = MMFS__SEG_HDR;
    if (rc == MMFS_OK) rc = mmfs__ckpt_load(db, &start, &from);
    for (size_t i = start; i < db->log.nsegs && rc == MMFS_OK; i++)
        rc = scan_segment(db, &db->log.segs[i], i + 1 == db->log.nsegs, i == start ? from : MMFS__SEG_HDR);
    if (rc) return rc;
    if (db->next_lsn < db->log.lsn_floor) db->next_lsn = db->log.lsn_floor;
    if (db->log.nsegs == 0 && !db->opt.readonly) {
        if ((rc = mmfs__seg_create(&db->log, db->log.first_seg, db->log.segment_size)) != MMFS_OK) return rc;
    }
    uint64_t pos = db->log.nsegs ? MMFS__POS(mmfs__seg_last(&db->log)->no, mmfs__seg_last(&db->log)->end)
                             : MMFS__POS(db->log.first_seg, MMFS__SEG_HDR);
    atomic_store(&db->applied, pos);
    return MMFS_OK;
}

/* Applies frames from db->applied up to TARGET; TO_END: as far as valid
** frames go instead (a reload under the flock, where no frame is being
** written).  HAVE_RW: the caller holds the engine's write side. */
static int advance(mmfs_db *db, uint64_t target, int to_end, int have_rw) {
    uint64_t pos = atomic_load(&db->applied);
    int rc = MMFS_OK, locked = have_rw;
    while (to_end || pos < target) {
        uint32_t no = MMFS__POS_SEG(pos);
        uint64_t off = MMFS__POS_OFF(pos);
        mmfs__seg *s = mmfs__seg_find(&db->log, no);
        if (!s) {
            if (db->log.nsegs && no != mmfs__seg_last(&db->log)->no + 1) {
                /* Segments are made one after another: a jump comes from
                ** the shared page, not from the log. */
                rc = mmfs__err(MMFS_CORRUPT,
                               "%s/LOCK: its shared page says the log goes on to log/%08u.seg offset %llu, "
                               "past the log's next segment (LOCK damaged? reopen the store)",
                               db->dir, MMFS__POS_SEG(target), (unsigned long long)MMFS__POS_OFF(target));
                break;
            }
            if (to_end && no > db->log.first_seg && !mmfs__seg_find(&db->log, no - 1)->sealed) break;
            if ((rc = mmfs__seg_open(&db->log, no)) != MMFS_OK) {
                if (to_end && no > db->log.last_seg) rc = MMFS_OK; /* no segment after the last */
                break;
            }
            s = mmfs__seg_last(&db->log);
        }
        mmfs__frame f;
        const char *why;
        if (off + MMFS__FRAME_HDR > s->size ||
            !mmfs__frame_check(s->map + off, s->size - off, db->next_lsn, &db->log.sum, &f, &why)) {
            if (to_end) break; /* the end of what was written */
            /* Nothing at all where the shared page says frames are: the page
            ** is wrong (LOCK damaged or replaced), not the log. */
            if (off + 8 <= s->size && mmfs__ld64(s->map + off) == 0)
                rc = mmfs__err(MMFS_CORRUPT,
                               "%s/LOCK: its shared page says the log goes on to log/%08u.seg offset %llu, "
                               "but log/%08u.seg has no frame at offset %llu (LOCK damaged? reopen the store)",
                               db->dir, MMFS__POS_SEG(target), (unsigned long long)MMFS__POS_OFF(target), no,
                               (unsigned long long)off);
            else
                rc = corrupt(db, s, off, why);
            break;
        }
        if (f.flags & MMFS__FRAME_SEAL) {
            s->sealed = 1;
            s->end = off;
            pos = MMFS__POS(no + 1, MMFS__SEG_HDR);
            if (to_end) atomic_store(&db->applied, pos);
            continue;
        }
        if (!locked) {
            pthread_rwlock_wrlock(&db->rw);
            locked = 1;
        }
        if ((rc = apply_frame(db, &f, s, off, 1)) != MMFS_OK) break;
        pos += f.frame_len;
        s->end = MMFS__POS_OFF(pos);
        atomic_store(&db->applied, pos);
    }
    if (locked && !have_rw) pthread_rwlock_unlock(&db->rw);
    if (locked) mmfs__announce_old(db);
    return rc;
}

void mmfs__announce_old(mmfs_db *db) {
    if (!db->nold_engs && !db->nhusks) return;
    uint64_t v = mmfs__engine_state_version(db->eng);
    for (size_t i = 0; i < db->nold_engs; i++) mmfs__state_announce(db->old_engs[i], v);
    for (size_t i = 0; i < db->nhusks; i++) mmfs__state_announce(db->husks[i], v);
}

int mmfs__catch_up_locked(mmfs_db *db, uint64_t target) {
    /* A compaction elsewhere moved the log's start: the page says so before
    ** MANIFEST does (compact.c), so MANIFEST decides, read under the flock,
    ** where the compacting handle's steps are all done or never started. */
    uint64_t fs = atomic_load_explicit(&db->log.shm->first_segment, memory_order_acquire);
    if (fs && fs != db->log.first_seg) {
        int rc = mmfs__reload(db);
        if (rc) return rc;
        target = atomic_load_explicit(&db->log.shm->written, memory_order_acquire);
    }
    int rc = advance(db, target, 0, 0);
    if (rc == MMFS_IO && !atomic_load(&db->broken)) {
        /* A segment gone (unlinked by a compaction that switched between
        ** this handle's look at the page and its open of the file): ask
        ** MANIFEST; if the log moved, catch up with the new one. */
        char msg[600];
        snprintf(msg, sizeof msg, "%s", mmfs_errmsg(NULL));
        uint32_t was = db->log.first_seg;
        if (mmfs__reload(db) == MMFS_OK && db->log.first_seg != was)
            return advance(db, atomic_load_explicit(&db->log.shm->written, memory_order_acquire), 0, 0);
        mmfs__err(rc, "%s", msg);
    }
    return rc;
}

/* ------------------------------------------------- checkpoint switch */

/* Where a replay into a new engine goes on: segment number, offset, the
** LSN the frame there must start at. */
typedef struct replay_at {
    uint32_t no;
    uint64_t off, next;
} replay_at;

/* Applies to E (not db->eng) the frames of the log from *AT up to
** db->applied, and moves *AT past them: frames the handle applied
** already, read again from its maps.  Caller holds wmu, so applied and
** the segment table stay put. */
static int replay_into(mmfs_db *db, mmfs__engine *e, replay_at *at) {
    uint64_t upto = atomic_load(&db->applied);
    mmfs__seg *s;
    while ((s = mmfs__seg_find(&db->log, at->no)) != NULL && MMFS__POS(at->no, at->off) < upto) {
        mmfs__frame f;
        const char *why;
        if (at->off + MMFS__FRAME_HDR > s->size ||
            !mmfs__frame_check(s->map + at->off, s->size - at->off, at->next, &db->log.sum, &f, &why))
            return corrupt(db, s, at->off, why);
        if (f.flags & MMFS__FRAME_SEAL) {
            at->no++;
            at->off = MMFS__SEG_HDR;
            continue;
        }
        const uint8_t *p = f.body, *end = f.body + f.body_len;
        for (uint32_t k = 0; k < f.count; k++) {
            mmfs__rec r;
            if (mmfs__rec_decode(p, (size_t)(end - p), &r) != MMFS_OK)
                return mmfs__err(MMFS_CORRUPT, "malformed record in a checked frame");
            int rc = mmfs__engine_apply(e, &r);
            if (rc) return rc;
            p += r.raw_len;
        }
        at->next = frame_next_lsn(&f);
        at->off += f.frame_len;
    }
    return MMFS_OK;
}

/* 1 if engines A and B give the same counts: the switch's last guard
** against a checkpoint that does not add up to the log (a wrong answer
** after the switch would otherwise be silent).  Caller holds wmu (A is
** the handle's engine), B is private. */
static int same_counts(const mmfs__engine *a, const mmfs__engine *b) {
    mmfs_store_stats x, y;
    memset(&x, 0, sizeof x);
    memset(&y, 0, sizeof y);
    mmfs__engine_stats(a, &x);
    mmfs__engine_stats(b, &y);
    return x.memories == y.memories && x.kv == y.kv && x.sessions == y.sessions && x.streams == y.streams &&
           x.documents == y.documents && x.live_bytes == y.live_bytes && x.state_version == y.state_version &&
           mmfs__engine_next_memory_id(a) == mmfs__engine_next_memory_id(b);
}

int mmfs__ckpt_switch(mmfs_db *db, uint64_t lsn) {
    /* Engines earlier switches could not free yet go now if they can;
    ** room for one more first: nothing may fail after the swap. */
    size_t k = 0;
    for (size_t i = 0; i < db->nhusks; i++)
        if (mmfs__engine_retire(db->husks[i])) db->husks[k++] = db->husks[i];
    db->nhusks = k;
    mmfs__engine **h = realloc(db->husks, (db->nhusks + 1) * sizeof *h);
    if (!h) return mmfs__err(MMFS_NOMEM, "checkpoint switch: out of memory");
    db->husks = h;
    mmfs__engine *e;
    mmfs__ckpt_at ck;
    int rc = mmfs__ckpt_load_into(db, lsn, &e, &ck);
    if (rc) return rc;
    replay_at at = {db->log.segs[ck.start].no, ck.from, lsn + 1};
    uint64_t pos = MMFS__POS(at.no, ck.from); /* the checkpoint's end, for checkpoint_bytes */
    if ((rc = replay_into(db, e, &at)) != MMFS_OK) {
        mmfs__engine_free(e);
        return rc;
    }
    /* The new engine's index work (the memories past its index segments,
    ** and the log's tail) is done without wmu: the handle's writers go on
    ** meanwhile, and what they apply is replayed after.  E is private
    ** until the swap; a rebuild (another process compacted) in between
    ** replaces db->eng, and then E is dropped. */
    mmfs__engine *was = db->eng;
    pthread_mutex_unlock(&db->wmu);
    (void)mmfs__engine_index_drain(e); /* failed: it stays queued, as in any drain */
    pthread_mutex_lock(&db->wmu);
    if (db->eng != was || atomic_load(&db->broken) || atomic_load(&db->compacting)) {
        mmfs__engine_free(e);
        atomic_store(&db->ckpt_seen, 0); /* a later catch-up looks again */
        return mmfs__err(MMFS_BUSY, "checkpoint switch: the engine changed meanwhile");
    }
    if ((rc = replay_into(db, e, &at)) == MMFS_OK && !same_counts(db->eng, e))
        rc = mmfs__err(MMFS_CORRUPT, "checkpoint %llu: its counts differ from the log's", (unsigned long long)lsn);
    if (rc) {
        mmfs__engine_free(e);
        return rc;
    }
    /* Readers inside a call hold the read side: once the write side is
    ** ours, none is in the old engine, and every later one finds E.
    ** What they were handed points into the log (memmapfs.h), which is
    ** the handle's, not the engine's. */
    pthread_rwlock_wrlock(&db->rw);
    mmfs__engine *old = db->eng;
    db->eng = e;
    db->ckpt_lsn = lsn;
    pthread_rwlock_unlock(&db->rw);
    if (pos > atomic_load(&db->ckpt_pos)) atomic_store(&db->ckpt_pos, pos);
    if (mmfs__engine_retire(old)) db->husks[db->nhusks++] = old;
    return MMFS_OK;
}

int mmfs__ckpt_switch_due(mmfs_db *db, int writer) {
    uint64_t lsn = atomic_load_explicit(&db->log.shm->checkpoint_lsn, memory_order_acquire);
    if (lsn == atomic_load(&db->ckpt_seen)) return MMFS_OK;
    /* Not reached yet (the frames before it are still to be applied), or
    ** a compaction of this handle reads its engine: a later catch-up. */
    if (lsn >= db->next_lsn || atomic_load(&db->compacting) || atomic_load(&db->broken)) return MMFS_OK;
    atomic_store(&db->ckpt_seen, lsn);
    if (lsn <= db->ckpt_lsn) return MMFS_OK; /* the one mapped, or older */
    /* A switch indexes the log's tail after LSN again, which is about as
    ** long as what the checkpoint adds when writes went on while it was
    ** built.  A read switches anyway (its heap is what the switch is
    ** for); a write path switches only once the checkpoint covers at
    ** least twice its tail: every few checkpoints of a long ingest, not at
    ** each (W2 with checkpoints: 0.7x of the ingest rate when the writer
    ** switched at each). */
    if (writer && db->next_lsn - 1 - lsn > (lsn - db->ckpt_lsn) / 2) return MMFS_OK;
    return mmfs__ckpt_switch(db, lsn);
}

int mmfs__rebuild(mmfs_db *db) {
    mmfs__engine *e = NULL;
    mmfs__engine **olds = realloc(db->old_engs, (db->nold_engs + 1) * sizeof *olds);
    if (!olds) return mmfs__err(MMFS_NOMEM, "out of memory");
    db->old_engs = olds;
    int rc;
    if ((rc = mmfs__engine_new(&e)) != MMFS_OK) return rc;
    if ((rc = mmfs__engine_set_tokenizer(e, db->log.tok_version, db->log.tok_lang)) != MMFS_OK ||
        (rc = mmfs__seg_retire_all(&db->log)) != MMFS_OK) {
        mmfs__engine_free(e);
        return rc;
    }
    /* Readers wait on the write side while the engine is rebuilt: they
    ** never see it half made.  The old engine stays (readers and streams
    ** handed out before may point into it) until close. */
    pthread_rwlock_wrlock(&db->rw);
    db->old_engs[db->nold_engs++] = db->eng;
    db->eng = e;
    db->ckpt_lsn = 0; /* the whole log, no checkpoint: the next one announced is taken */
    atomic_store(&db->ckpt_seen, 0);
    db->next_lsn = 1;
    db->rec_bytes = 0;
    atomic_store(&db->applied, MMFS__POS(db->log.first_seg, MMFS__SEG_HDR));
    rc = advance(db, 0, 1, 1);
    if (rc == MMFS_OK && db->next_lsn < db->log.lsn_floor) db->next_lsn = db->log.lsn_floor;
    if (rc == MMFS_OK) mmfs__engine_defer_index(e);
    pthread_rwlock_unlock(&db->rw);
    if (rc) {
        atomic_store(&db->broken, 1);
        return rc;
    }
    if (!db->opt.readonly) {
        uint64_t pos = atomic_load(&db->applied);
        if (atomic_load(&db->log.shm->written) < pos) atomic_store(&db->log.shm->written, pos);
        if (atomic_load(&db->log.shm->durable) < pos) atomic_store(&db->log.shm->durable, pos);
        atomic_store(&db->log.shm->first_segment, db->log.first_seg);
    }
    return MMFS_OK;
}

int mmfs__reload(mmfs_db *db) {
    int own = !db->flock_held, rc;
    if (own && (rc = mmfs__lock_acquire(db)) != MMFS_OK) return rc;
    uint32_t was = db->log.first_seg;
    rc = mmfs__manifest_reread(&db->log);
    if (rc == MMFS_OK && db->log.first_seg == was) {
        /* MANIFEST did not move: a compaction died before its switch.  A
        ** writable handle sets the page right, so others stop asking. */
        if (!db->opt.readonly) atomic_store(&db->log.shm->first_segment, db->log.first_seg);
    } else if (rc == MMFS_OK) {
        rc = mmfs__rebuild(db);
    }
    if (own) mmfs__lock_release(db);
    return rc;
}

int mmfs_verify(mmfs_db *db) {
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if ((rc = mmfs__catch_up(db)) != MMFS_OK) return rc;
    int self = mmfs__in_own_writer(db); /* a hook's call: this thread holds wmu already */
    if (!self) pthread_mutex_lock(&db->wmu);
    uint64_t lsn = 1;
    for (size_t i = 0; i < db->log.nsegs && rc == MMFS_OK; i++) {
        mmfs__seg *s = &db->log.segs[i];
        uint64_t off = MMFS__SEG_HDR;
        while (off < s->end) {
            mmfs__frame f;
            const char *why;
            if (!mmfs__frame_check(s->map + off, s->size - off, lsn, &db->log.sum, &f, &why)) {
                rc = corrupt(db, s, off, why);
                break;
            }
            const char *where = misplaced(db, &f, s);
            if (where) {
                rc = corrupt(db, s, off, where);
                break;
            }
            lsn = frame_next_lsn(&f);
            off += f.frame_len;
        }
        if (rc == MMFS_OK && i + 1 < db->log.nsegs) {
            mmfs__frame f;
            const char *why;
            if (!mmfs__frame_check(s->map + off, s->size - off, lsn, &db->log.sum, &f, &why) ||
                !(f.flags & MMFS__FRAME_SEAL))
                rc = corrupt_at(s, off, "segment ends without its seal frame", 0);
        }
    }
    if (!self) pthread_mutex_unlock(&db->wmu);
    return rc;
}
