/*
** db.c: opening and closing a store, and the read path's entry
** (mmfs__read_begin): the fork check, catching up with other processes,
** the engine's read side.
**
** Open order: LOCK (create, map) -> writer flock -> MANIFEST (create) ->
** map the newest valid checkpoint (ckpt.c) -> replay the log after it
** (cutting a torn tail) -> publish the written end in LOCK's
** page -> release the flock.  Recovery runs under the flock so that it never
** cuts a frame another process is writing.  A failed open writes nothing:
** MANIFEST is created only for a new store (no segments), and rebuilt for
** a log that lost it only after that log verified whole.
*/
#include "db.h"
#include "engine.h"
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

_Atomic unsigned mmfs__fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void in_child(void) { atomic_fetch_add(&mmfs__fork_gen, 1); }
static void install_atfork(void) { pthread_atfork(NULL, NULL, in_child); }

void mmfs_options_init(mmfs_options *o) {
    memset(o, 0, sizeof *o);
    o->sync = MMFS_SYNC_BATCH;
    o->sync_ms = 100;
    o->checksum = MMFS_CHECKSUM_CRC32C;
    o->create = 1;
    o->lock_timeout_ms = 10000;
    o->segment_size = MMFS__SEGMENT_DEFAULT;
    o->checkpoint_bytes = MMFS__CKPT_BYTES_DEFAULT;
}

int mmfs__usable(mmfs_db *db) {
    if (!db) return mmfs__err(MMFS_INVALID, "no store handle");
    if (atomic_load_explicit(&mmfs__fork_gen, memory_order_relaxed) != db->fork_gen)
        return mmfs__err(MMFS_CLOSED, "%s: handle used in a forked child; open the store after forking",
                         db->dir);
    if (atomic_load_explicit(&db->broken, memory_order_relaxed))
        return mmfs__err(MMFS_NOMEM, "%s: the in-memory engine ran out of memory; reopen the store",
                         db->dir);
    return MMFS_OK;
}

int mmfs__index_drain(mmfs_db *db) {
    /* Counted in the engine rather than done under the read side, so
    ** that a long drain never holds up apply (the write side). */
    pthread_rwlock_rdlock(&db->rw);
    mmfs__engine *e = db->eng;
    atomic_fetch_add_explicit(&e->drainers, 1, memory_order_relaxed);
    pthread_rwlock_unlock(&db->rw);
    int rc = mmfs__engine_index_drain(e);
    atomic_fetch_sub_explicit(&e->drainers, 1, memory_order_release);
    return rc;
}

/* 1 when LOCK's page announces a checkpoint this handle has not acted on
** (never from a hook: its thread holds wmu already). */
static int ckpt_news(mmfs_db *db) {
    return atomic_load_explicit(&db->log.shm->checkpoint_lsn, memory_order_acquire) !=
               atomic_load_explicit(&db->ckpt_seen, memory_order_relaxed) &&
           !mmfs__in_own_writer(db);
}

void mmfs__ckpt_follow(mmfs_db *db, int writer) {
    if (!ckpt_news(db) || pthread_mutex_trylock(&db->cpmu) != 0) return;
    int rc = MMFS_NOTFOUND;
    if (pthread_mutex_trylock(&db->wmu) == 0) {
        rc = mmfs__ckpt_switch_due(db, writer);
        pthread_mutex_unlock(&db->wmu);
    }
    pthread_mutex_unlock(&db->cpmu);
    /* A failed switch changed nothing: the message is dropped, answers
    ** come from the engine kept.  After one, index the log's tail now. */
    if (rc == MMFS_OK) (void)mmfs__index_drain(db);
}

int mmfs__catch_up(mmfs_db *db) {
    uint64_t target = atomic_load_explicit(&db->log.shm->written, memory_order_acquire);
    int news = ckpt_news(db);
    if (target <= atomic_load_explicit(&db->applied, memory_order_acquire)) {
        if (news) mmfs__ckpt_follow(db, 0);
        return MMFS_OK;
    }
    /* cpmu comes before wmu; a checkpoint running in this handle holds
    ** it, and then the switch waits for a later catch-up. */
    int cp = news && pthread_mutex_trylock(&db->cpmu) == 0;
    pthread_mutex_lock(&db->wmu);
    target = atomic_load_explicit(&db->log.shm->written, memory_order_acquire);
    int rc = mmfs__catch_up_locked(db, target);
    if (rc == MMFS_OK && cp) (void)mmfs__ckpt_switch_due(db, 0); /* failed: the engine is kept */
    pthread_mutex_unlock(&db->wmu);
    if (cp) pthread_mutex_unlock(&db->cpmu);
    /* Index what arrived, as a writer does after its commit: a handle that
    ** only reads must not queue the index work of every memory others add.
    ** A failure stays queued; the next search reports it. */
    if (rc == MMFS_OK) (void)mmfs__index_drain(db);
    return rc;
}

int mmfs__read_begin(mmfs_db *db, mmfs__engine **eng) {
    int rc = mmfs__usable(db);
    if (rc) return rc;
    if ((rc = mmfs__catch_up(db)) != MMFS_OK) return rc;
    pthread_rwlock_rdlock(&db->rw);
    *eng = db->eng;
    return MMFS_OK;
}

void mmfs__read_end(mmfs_db *db) { pthread_rwlock_unlock(&db->rw); }

int mmfs_refresh(mmfs_db *db) {
    int rc = mmfs__usable(db);
    return rc ? rc : mmfs__catch_up(db);
}

const char *mmfs_path(const mmfs_db *db) { return db ? db->dir : NULL; }

/* mkdir -p PATH. */
static int make_dirs(const char *path) {
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof buf) return mmfs__err(MMFS_INVALID, "%s: path too long", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST) return mmfs__err_sys(errno, "mkdir", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return mmfs__err_sys(errno, "mkdir", buf);
    struct stat st;
    if (stat(buf, &st) < 0) return mmfs__err_sys(errno, "stat", buf);
    if (!S_ISDIR(st.st_mode)) return mmfs__err(MMFS_IO, "%s: not a directory", buf);
    return MMFS_OK;
}

static int check_options(const mmfs_options *o) {
    if (o->sync != MMFS_SYNC_BATCH && o->sync != MMFS_SYNC_ALWAYS && o->sync != MMFS_SYNC_NONE)
        return mmfs__err(MMFS_INVALID, "sync: unknown mode %d", (int)o->sync);
    if (o->sync_ms < 1 || o->sync_ms > 3600000)
        return mmfs__err(MMFS_INVALID, "sync_ms: %d is out of range 1..3600000", o->sync_ms);
    if (o->lock_timeout_ms < 0) return mmfs__err(MMFS_INVALID, "lock_timeout_ms: negative");
    if (o->segment_size < MMFS__SEGMENT_MIN || o->segment_size > MMFS__SEGMENT_MAX)
        return mmfs__err(MMFS_INVALID, "segment_size: %llu is out of range %llu KiB..%llu GiB",
                         (unsigned long long)o->segment_size, (unsigned long long)(MMFS__SEGMENT_MIN >> 10),
                         (unsigned long long)(MMFS__SEGMENT_MAX >> 30));
    if (o->policy.len && !o->policy.ptr) return mmfs__err(MMFS_INVALID, "policy: NULL with a length");
    if (o->language && !mmfs__tok_lang_ok(o->language))
        return mmfs__err(MMFS_INVALID, "language: '%.40s' is not \"none\" or a Snowball language",
                         o->language);
    if (o->compress && strcmp(o->compress, "none") && strcmp(o->compress, "zstd"))
        return mmfs__err(MMFS_INVALID, "compress: '%.40s' is not \"none\" or \"zstd\"", o->compress);
#ifndef MMFS_HAVE_ZSTD
    if (o->compress && !strcmp(o->compress, "zstd"))
        return mmfs__err(MMFS_INVALID, "compress: built without zstd");
#endif
    return MMFS_OK;
}

/* Everything after the handle's fields are initialised. */
static int open_store(mmfs_db *db) {
    int rc, created;
    if (!db->opt.readonly && db->opt.create) {
        if ((rc = make_dirs(db->dir)) != MMFS_OK) return rc;
    } else {
        struct stat st;
        if (stat(db->dir, &st) < 0) {
            if (errno == ENOENT) return mmfs__err(MMFS_NOTFOUND, "%s: no store here", db->dir);
            return mmfs__err_sys(errno, "stat", db->dir);
        }
    }
    if ((rc = mmfs__lock_open(db, &created)) != MMFS_OK) return rc;
    if (!db->opt.readonly && (rc = mmfs__lock_acquire(db)) != MMFS_OK) return rc;

    int exists;
    if ((rc = mmfs__manifest_read(&db->log, &exists)) != MMFS_OK) goto out;
    uint32_t first = 0;
    uint8_t hdr[MMFS__SEG_HDR];
    if (!exists && (rc = mmfs__log_first_segment(db, &first, hdr)) != MMFS_OK) goto out;
    if (!exists && first) {
        /* MANIFEST is lost but the log is there: take the options from
        ** the first segment's header, replay without cutting anything, and
        ** write MANIFEST only once the whole log verified. */
        if (db->opt.readonly) {
            rc = mmfs__err(MMFS_CORRUPT, "%s: MANIFEST is missing but log/ holds segments: open the store "
                                         "writable to rebuild MANIFEST from a log that verifies", db->dir);
            goto out;
        }
        int type = (int)mmfs__ld32(hdr + 12);
        if (type != MMFS_CHECKSUM_CRC32C && type != MMFS_CHECKSUM_BLAKE2B) {
            rc = mmfs__err(MMFS_CORRUPT, "log/%08u.seg: offset 0: unknown checksum type", first);
            goto out;
        }
        if (type == MMFS_CHECKSUM_CRC32C && db->opt.key) {
            rc = mmfs__err(MMFS_INVALID, "%s: the store has no key, but a key was given", db->dir);
            goto out;
        }
        if ((rc = mmfs__sum_init(&db->log.sum, type, db->opt.key, db->opt.key_len)) != MMFS_OK) goto out;
        db->log.segment_size = mmfs__ld64(hdr + 24) >= MMFS__SEGMENT_MIN ? mmfs__ld64(hdr + 24) : db->opt.segment_size;
        db->log.first_seg = first;
        db->no_manifest = 1;
        /* The tokenizer was recorded only in the lost MANIFEST: the rebuilt
        ** one records the newest, in the language this open names.  The
        ** index is rebuilt from the log at every open, so no answer is
        ** wrong; only stores made before tokenizer 1 change tokenizer. */
        db->log.tok_version = 1;
        snprintf(db->log.tok_lang, sizeof db->log.tok_lang, "%s", db->opt.language ? db->opt.language : "english");
    } else if (!exists) {
        if (db->opt.readonly || !db->opt.create) {
            rc = mmfs__err(MMFS_NOTFOUND, "%s: no store here (no MANIFEST)", db->dir);
            goto out;
        }
        if ((rc = mmfs__sum_init(&db->log.sum, db->opt.checksum, db->opt.key, db->opt.key_len)) != MMFS_OK)
            goto out;
        db->log.segment_size = db->opt.segment_size;
        db->log.first_seg = 1;
        if (mkdir(db->log.log_dir, 0755) < 0 && errno != EEXIST) {
            rc = mmfs__err_sys(errno, "mkdir", db->log.log_dir);
            goto out;
        }
        if ((rc = mmfs__fsync_dir(db->dir)) != MMFS_OK) goto out;
        db->log.tok_version = 1; /* MMFS__TOK_VERSION: new stores get the newest */
        snprintf(db->log.tok_lang, sizeof db->log.tok_lang, "%s", db->opt.language ? db->opt.language : "english");
        db->log.compress = db->opt.compress && !strcmp(db->opt.compress, "zstd");
        if ((rc = mmfs__manifest_write(&db->log)) != MMFS_OK) goto out;
    } else if (db->opt.language && (db->log.tok_version == 0 || strcmp(db->opt.language, db->log.tok_lang))) {
        rc = mmfs__err(MMFS_INVALID, "language: the store was made with %s%s%s, not '%.40s'",
                       db->log.tok_version ? "'" : "",
                       db->log.tok_version ? db->log.tok_lang : "the first tokenizer (no stemming)",
                       db->log.tok_version ? "'" : "", db->opt.language);
        goto out;
    }
    if (exists && db->opt.compress && db->log.compress != !strcmp(db->opt.compress, "zstd")) {
        rc = mmfs__err(MMFS_INVALID, "compress: the store was made with compress = '%s', not '%.40s' (it "
                                     "cannot change)",
                       db->log.compress ? "zstd" : "none", db->opt.compress);
        goto out;
    }
    if ((rc = mmfs__engine_set_tokenizer(db->eng, db->log.tok_version, db->log.tok_lang)) != MMFS_OK) goto out;
    /* Checkpoints announced from here on are newer than what open maps. */
    atomic_store(&db->ckpt_seen, atomic_load(&db->log.shm->checkpoint_lsn));
    pthread_rwlock_wrlock(&db->rw);
    rc = mmfs__recover(db);
    if (rc == MMFS_OK) mmfs__engine_defer_index(db->eng); /* the log so far is indexed */
    pthread_rwlock_unlock(&db->rw);
    if (rc == MMFS_OK && db->no_manifest) {
        db->log.last_seg = db->log.nsegs ? mmfs__seg_last(&db->log)->no : 0;
        /* compress was recorded only in the lost MANIFEST: a log holding a
        ** dictionary was written compressed */
        db->log.compress = (db->opt.compress && !strcmp(db->opt.compress, "zstd")) || mmfs__ztext_newest(db->eng);
        rc = mmfs__manifest_write(&db->log);
        db->no_manifest = 0;
    }
    if (rc) goto out;

    uint64_t pos = atomic_load(&db->applied);
    int fd = db->log.nsegs ? mmfs__seg_last(&db->log)->fd : -1;
    db->log.written_pos = db->log.durable_pos = pos;
    db->log.written_lsn = db->log.durable_lsn = db->next_lsn - 1;
    db->log.written_fd = fd;
    if (!db->opt.readonly) {
        /* What recovery found is the truth: make it durable, publish it. */
        if (fd >= 0 && fdatasync(fd) < 0) {
            rc = mmfs__err_sys(errno, "fdatasync", db->log.log_dir);
            goto out;
        }
        db->log.shm->magic = MMFS__SHARED_MAGIC;
        atomic_store(&db->log.shm->written, pos);
        atomic_store(&db->log.shm->durable, pos);
        atomic_store(&db->log.shm->state_version, mmfs__engine_state_version(db->eng));
        atomic_store(&db->log.shm->first_segment, db->log.first_seg);
    }
out:
    if (!db->opt.readonly) mmfs__lock_release(db);
    return rc;
}

static void free_handle(mmfs_db *db) {
    mmfs__seg_close_all(&db->log);
    mmfs__lock_close(db);
    if (db->eng) mmfs__engine_free(db->eng);
    for (size_t i = 0; i < db->nold_engs; i++) mmfs__engine_free(db->old_engs[i]);
    free(db->old_engs);
    for (size_t i = 0; i < db->nhusks; i++) mmfs__engine_free(db->husks[i]);
    free(db->husks);
#ifdef MMFS_HAVE_POLICY
    /* The VM a write built (hook.c's policy_sync) lives until here. */
    if (db->policy) mmfs__policy_free(db->policy);
#endif
    pthread_mutex_destroy(&db->wmu);
    pthread_rwlock_destroy(&db->rw);
    pthread_mutex_destroy(&db->log.smu);
    pthread_cond_destroy(&db->log.scond);
    pthread_mutex_destroy(&db->cpmu);
    pthread_mutex_destroy(&db->cmu);
    mmfs__indexer_free(db);
    free(db->scratch);
    mmfs__zw_free(&db->zw);
    free(db->dir);
    free(db->log.log_dir);
    free(db);
}

static int manifest_exists(const char *dir) {
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    return stat(path, &st) == 0;
}

int mmfs_open(const char *dir, const mmfs_options *o, mmfs_db **out) {
    if (!out) return mmfs__err(MMFS_INVALID, "mmfs_open: out is NULL");
    *out = NULL;
    if (!dir || !*dir) return mmfs__err(MMFS_INVALID, "mmfs_open: empty directory name");
    pthread_once(&atfork_once, install_atfork);
    mmfs_options def;
    if (!o) {
        mmfs_options_init(&def);
        o = &def;
    }
    int rc = check_options(o);
    if (rc) return rc;
    mmfs_db *db = calloc(1, sizeof *db);
    if (!db) return mmfs__err(MMFS_NOMEM, "out of memory");
    db->opt = *o;
    db->opt.key = NULL; /* kept in db->log.sum once checked */
    db->opt.policy.ptr = NULL; /* only used below, while O is valid */
    db->opt.policy.len = 0;
    if (o->key) db->opt.checksum = MMFS_CHECKSUM_BLAKE2B; /* a key means keyed BLAKE2b */
    db->lock_fd = -1;
    db->fork_gen = atomic_load(&mmfs__fork_gen);
    pthread_mutex_init(&db->wmu, NULL);
    pthread_rwlock_init(&db->rw, NULL);
    pthread_mutex_init(&db->log.smu, NULL);
    pthread_cond_init(&db->log.scond, NULL);
    pthread_mutex_init(&db->cpmu, NULL);
    pthread_mutex_init(&db->cmu, NULL);
    atomic_init(&db->committers, 0);
    if (mmfs__indexer_init(db) != MMFS_OK) {
        free_handle(db);
        return MMFS_NOMEM;
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    db->dir = strndup(dir, n);
    db->log.log_dir = malloc(n + 5);
    if (!db->dir || !db->log.log_dir) {
        free_handle(db);
        return mmfs__err(MMFS_NOMEM, "out of memory");
    }
    snprintf(db->log.log_dir, n + 5, "%s/log", db->dir);
    db->log.dir = db->dir;
    db->log.opt = &db->opt;
    if ((rc = mmfs__engine_new(&db->eng)) != MMFS_OK) {
        free_handle(db);
        return rc;
    }
    /* Where open would make the store (no MANIFEST yet), a policy to
    ** install that does not compile fails it before anything is made on
    ** disk.  An existing store needs no such check at every open: a
    ** policy that differs is compiled by mmfs_set_policy below, which
    ** writes nothing when that fails. */
    if (o->policy.len && !o->readonly && !manifest_exists(db->dir) &&
        (rc = mmfs__policy_check(db, o->policy)) != MMFS_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", mmfs_errmsg(NULL));
        free_handle(db);
        mmfs__err(rc, "%s", msg);
        return rc;
    }
    /* The key is needed while reading MANIFEST; it is copied into db->log.sum. */
    db->opt.key = o->key;
    rc = open_store(db);
    db->opt.key = NULL;
    db->opt.language = NULL; /* the caller's string; kept in db->log.tok_lang */
    db->opt.compress = NULL; /* the caller's string; kept in db->log.compress */
    if (rc == MMFS_OK && !db->opt.readonly && db->opt.sync == MMFS_SYNC_BATCH)
        rc = mmfs__flusher_start(&db->log);
    if (rc == MMFS_OK) rc = mmfs__ckpt_auto_start(db);
    if (rc == MMFS_OK && o->policy.len) {
        /* Install the caller's policy unless it is the one in force. */
        mmfs_slice cur = {NULL, 0};
        int g = mmfs_get_policy(db, &cur);
        if (g == MMFS_NOTFOUND || (g == MMFS_OK && !mmfs__slice_eq(cur, o->policy)))
            rc = db->opt.readonly ? mmfs__err(MMFS_READONLY, "%s: opened read-only: cannot install the policy", db->dir)
                                  : mmfs_set_policy(db, o->policy);
        else
            rc = g;
    }
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", mmfs_errmsg(NULL));
        mmfs__ckpt_auto_stop(db);
        mmfs__indexer_stop(db);
        mmfs__flusher_stop(&db->log);
        free_handle(db);
        mmfs__err(rc, "%s", msg);
        return rc;
    }
    *out = db;
    return MMFS_OK;
}

int mmfs_close(mmfs_db *db) {
    if (!db) return MMFS_OK;
    if (mmfs__in_own_writer(db)) /* from a hook: the commit still uses the handle */
        return mmfs__err(MMFS_BUSY, "%s: a hook called back into its own store (close)", db->dir);
    int rc = MMFS_OK;
    int child = atomic_load(&mmfs__fork_gen) != db->fork_gen;
    if (!child) {
        mmfs__compact_join(db); /* a compaction compaction.when started */
        mmfs__watch_stop(db);
        mmfs__ckpt_auto_stop(db);
        mmfs__indexer_stop(db);
        mmfs__flusher_stop(&db->log);
        if (!db->opt.readonly && !atomic_load(&db->broken)) rc = mmfs_sync(db);
        if (rc == MMFS_OK && !db->opt.readonly && !atomic_load(&db->broken)) mmfs__sync_stamp_final(&db->log);
    }
    free_handle(db);
    return rc;
}

int mmfs_stats(mmfs_db *db, mmfs_store_stats *st) {
    if (!st) return mmfs__err(MMFS_INVALID, "mmfs_stats: out is NULL");
    memset(st, 0, sizeof *st);
    mmfs__engine *e;
    int rc = mmfs__read_begin(db, &e);
    if (rc) return rc;
    mmfs__engine_stats(e, st);
    mmfs__read_end(db);
    int self = mmfs__in_own_writer(db); /* a hook's call: this thread holds wmu already */
    if (!self) pthread_mutex_lock(&db->wmu);
    for (size_t i = 0; i < db->log.nsegs; i++) st->log_bytes += db->log.segs[i].end - MMFS__SEG_HDR;
    st->segments = db->log.nsegs;
    st->lsn = db->next_lsn - 1;
    st->checkpoint_lsn = db->ckpt_lsn;
    uint64_t rec_bytes = db->rec_bytes;
    if (!self) pthread_mutex_unlock(&db->wmu);
    pthread_mutex_lock(&db->log.smu);
    st->durable_lsn = db->log.durable_lsn;
    pthread_mutex_unlock(&db->log.smu);
    st->dead_bytes = rec_bytes > st->live_bytes ? rec_bytes - st->live_bytes : 0;
    st->compacting = (uint64_t)atomic_load(&db->compacting);
    return MMFS_OK;
}
