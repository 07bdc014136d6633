/*
** ztext.c: compressed memory text (ztext.h has the layout).
**
** Owns: the engine's dictionaries (DICT records, one ZSTD_DDict each,
** built once when the record is applied), giving the plain text of a
** MEMORY record back, and the writer's side: training the store's
** dictionary from the live texts and compressing the texts of a commit.
**
** Invariants:
** - Only MEMORY text is ever compressed; every other payload stays where
**   it is in the log (zero copy).  A raw text (no MMFS__RF_ZTEXT) is
**   handed out as the record's own bytes, as before.
** - A dictionary is only ever added: dicts[0, n) are filled and never
**   change while the engine lives (the DICT records stay mapped), so
**   readers that hold no engine lock (the index drain) read them safely.
** - Decompression uses one ZSTD_DCtx per thread (a thread-specific key,
**   freed when the thread ends): readers run in parallel and a DCtx is
**   not thread-safe; making one per call would cost more than the text.
** - Without libzstd (MMFS_HAVE_ZSTD unset) the same code reads raw texts
**   and refuses a compressed one with MMFS_INVALID "built without zstd";
**   MANIFEST refuses such a store at open first (log/manifest.c).
*/
#include "engine.h"

#include <pthread.h>
#include <stdlib.h>

#ifdef MMFS_HAVE_ZSTD
#define ZSTD_STATIC_LINKING_ONLY /* the names of ZSTD_c_format, ZSTD_d_format: */
#include <zdict.h>               /* only stable functions are called */
#include <zstd.h>
#endif

/* ------------------------------------------------------------ varints */

#ifdef MMFS_HAVE_ZSTD
static size_t put_varint(uint8_t *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}
#endif

/* Reads a varint at *P (before END) into *V; 0 when malformed. */
static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    uint64_t x = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* The header of compressed text T: dictionary id, raw length, frame. */
static int zhead(const mmfs__rec *r, uint64_t *dict, size_t *raw, mmfs_slice *frame) {
    const uint8_t *p = r->u.mem.text.ptr, *end = p + r->u.mem.text.len;
    uint64_t d, n;
    /* the writer compresses no text over MMFS__ZTEXT_MAX: a larger length is
    ** damage, never an allocation that size */
    if (!get_varint(&p, end, &d) || !get_varint(&p, end, &n) || n > MMFS__ZTEXT_MAX || p == end)
        return mmfs__err(MMFS_CORRUPT, "memory %llu (lsn %llu): malformed compressed text",
                         (unsigned long long)r->u.mem.id, (unsigned long long)r->lsn);
    *dict = d;
    *raw = (size_t)n;
    frame->ptr = p;
    frame->len = (size_t)(end - p);
    return MMFS_OK;
}

/* -------------------------------------------------------- dictionaries */

int mmfs__ztext_apply(mmfs__engine *e, const mmfs__rec *r) {
    mmfs__ztext *z = &e->z;
    size_t n = atomic_load_explicit(&z->n, memory_order_relaxed);
    e->live_bytes += r->raw_len; /* every DICT is kept by compaction (LIVE ALWAYS) */
    for (size_t i = 0; i < n; i++)
        if (z->dicts[i].id == r->u.dict.id) return MMFS_OK; /* a second one of an id: the first counts */
    if (n == MMFS__ZDICT_MAX) {
        e->live_bytes -= r->raw_len;
        return mmfs__err(MMFS_CORRUPT, "dictionary %llu (lsn %llu): more than %d dictionaries",
                         (unsigned long long)r->u.dict.id, (unsigned long long)r->lsn, MMFS__ZDICT_MAX);
    }
    mmfs__zdict *d = &z->dicts[n];
    d->id = r->u.dict.id;
    d->raw = r->raw;
    d->bytes = r->u.dict.bytes;
    d->ddict = NULL;
#ifdef MMFS_HAVE_ZSTD
    /* by reference: the record stays mapped as long as the engine */
    d->ddict = ZSTD_createDDict_byReference(d->bytes.ptr, d->bytes.len);
    if (!d->ddict) {
        e->live_bytes -= r->raw_len;
        return mmfs__err(MMFS_CORRUPT, "dictionary %llu (lsn %llu): zstd refuses it",
                         (unsigned long long)d->id, (unsigned long long)r->lsn);
    }
#endif
    atomic_store_explicit(&z->n, n + 1, memory_order_release);
    return MMFS_OK;
}

void mmfs__ztext_free(mmfs__engine *e) {
    mmfs__ztext *z = &e->z;
    size_t n = atomic_load(&z->n);
#ifdef MMFS_HAVE_ZSTD
    for (size_t i = 0; i < n; i++) ZSTD_freeDDict(z->dicts[i].ddict);
#endif
    (void)n;
    atomic_store(&z->n, 0);
}

const mmfs__zdict *mmfs__ztext_newest(const mmfs__engine *e) {
    size_t n = atomic_load_explicit(&e->z.n, memory_order_acquire);
    return n ? &e->z.dicts[n - 1] : NULL;
}

#ifdef MMFS_HAVE_ZSTD
static const mmfs__zdict *dict_find(const mmfs__engine *e, uint64_t id) {
    size_t n = atomic_load_explicit(&e->z.n, memory_order_acquire);
    for (size_t i = n; i-- > 0;)
        if (e->z.dicts[i].id == id) return &e->z.dicts[i];
    return NULL;
}
#endif

/* ------------------------------------------------------------- reading */

int mmfs__mem_text_len(const mmfs__rec *r, size_t *len) {
    if (!(r->flags & MMFS__RF_ZTEXT)) {
        *len = r->u.mem.text.len;
        return MMFS_OK;
    }
    uint64_t d;
    mmfs_slice f;
    return zhead(r, &d, len, &f);
}

#ifdef MMFS_HAVE_ZSTD
/* A reading thread's decompression context and text buffer. */
typedef struct tls {
    ZSTD_DCtx *dctx;
    uint8_t *buf;
    size_t cap;
} tls;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_free(void *v) {
    tls *t = v;
    ZSTD_freeDCtx(t->dctx);
    free(t->buf);
    free(t);
}

static void tls_init(void) { (void)pthread_key_create(&tls_key, tls_free); }

/* This thread's context (made at its first use), or NULL (out of memory). */
static tls *tls_get(void) {
    pthread_once(&tls_once, tls_init);
    tls *t = pthread_getspecific(tls_key);
    if (t) return t;
    if (!(t = calloc(1, sizeof *t))) return NULL;
    if (!(t->dctx = ZSTD_createDCtx()) ||
        ZSTD_isError(ZSTD_DCtx_setParameter(t->dctx, ZSTD_d_format, ZSTD_f_zstd1_magicless)) ||
        pthread_setspecific(tls_key, t) != 0) {
        ZSTD_freeDCtx(t->dctx);
        free(t);
        return NULL;
    }
    return t;
}
#endif

int mmfs__mem_text_into(const mmfs__engine *e, const mmfs__rec *r, uint8_t *dst) {
    if (!(r->flags & MMFS__RF_ZTEXT)) {
        if (r->u.mem.text.len) memcpy(dst, r->u.mem.text.ptr, r->u.mem.text.len);
        return MMFS_OK;
    }
    uint64_t id;
    size_t raw;
    mmfs_slice frame;
    int rc = zhead(r, &id, &raw, &frame);
    if (rc) return rc;
#ifdef MMFS_HAVE_ZSTD
    const mmfs__zdict *d = dict_find(e, id);
    if (!d)
        return mmfs__err(MMFS_CORRUPT, "memory %llu (lsn %llu): its text names dictionary %llu, which the log does not hold",
                         (unsigned long long)r->u.mem.id, (unsigned long long)r->lsn, (unsigned long long)id);
    tls *t = tls_get();
    if (!t) return mmfs__err(MMFS_NOMEM, "memory %llu: out of memory to decompress", (unsigned long long)r->u.mem.id);
    size_t got = ZSTD_decompress_usingDDict(t->dctx, dst, raw, frame.ptr, frame.len, d->ddict);
    if (ZSTD_isError(got) || got != raw)
        return mmfs__err(MMFS_CORRUPT, "memory %llu (lsn %llu): its compressed text does not decompress (%s)",
                         (unsigned long long)r->u.mem.id, (unsigned long long)r->lsn,
                         ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong length");
    return MMFS_OK;
#else
    (void)e, (void)dst;
    return mmfs__err(MMFS_INVALID, "memory %llu: its text is compressed with zstd, and this library was built without zstd",
                     (unsigned long long)r->u.mem.id);
#endif
}

int mmfs__mem_text(const mmfs__engine *e, const mmfs__rec *r, mmfs_slice *text) {
    if (!(r->flags & MMFS__RF_ZTEXT)) {
        *text = r->u.mem.text;
        return MMFS_OK;
    }
    size_t raw;
    int rc = mmfs__mem_text_len(r, &raw);
    if (rc) return rc;
#ifdef MMFS_HAVE_ZSTD
    tls *t = tls_get();
    if (!t) return mmfs__err(MMFS_NOMEM, "memory %llu: out of memory to decompress", (unsigned long long)r->u.mem.id);
    if (raw + 1 > t->cap) {
        uint8_t *b = realloc(t->buf, raw + 1);
        if (!b) return mmfs__err(MMFS_NOMEM, "memory %llu: out of memory to decompress", (unsigned long long)r->u.mem.id);
        t->buf = b;
        t->cap = raw + 1;
    }
    if ((rc = mmfs__mem_text_into(e, r, t->buf))) return rc;
    text->ptr = t->buf;
    text->len = raw;
    return MMFS_OK;
#else
    return mmfs__mem_text_into(e, r, NULL);
#endif
}

int mmfs__mem_plain(const mmfs__engine *e, const mmfs__rec *r, mmfs__rec *out) {
    *out = *r;
    if (!(r->flags & MMFS__RF_ZTEXT)) return MMFS_OK;
    int rc = mmfs__mem_text(e, r, &out->u.mem.text);
    out->flags &= ~MMFS__RF_ZTEXT;
    return rc;
}

/* ------------------------------------------------------------- writing */

int mmfs__zw_due(const mmfs__zwriter *zw, const mmfs__engine *e) {
    if (mmfs__ztext_newest(e)) return 0;
    uint64_t live = e->mems.live;
    if (live < zw->retry_at) return 0;
    return live >= MMFS__ZDICT_TEXTS || e->z.raw_bytes >= MMFS__ZDICT_BYTES;
}

int mmfs__zw_train(mmfs__zwriter *zw, const mmfs__engine *e, uint8_t **dict, size_t *len, uint64_t *id) {
    *dict = NULL;
    *len = 0;
    *id = 0;
#ifdef MMFS_HAVE_ZSTD
    /* The newest live raw texts, up to the sample budget. */
    size_t cap = 0, used = 0, n = 0, ncap = 0;
    uint8_t *samples = NULL;
    size_t *sizes = NULL;
    int rc = MMFS_OK;
    for (uint64_t mid = mmfs__engine_next_memory_id(e); mid-- > 1 && used < MMFS__ZDICT_SAMPLE;) {
        mmfs__rec r;
        if (mmfs__engine_get_memory(e, mid, &r) != MMFS_OK || (r.flags & MMFS__RF_ZTEXT)) continue;
        size_t l = r.u.mem.text.len;
        if (l < 8 || l > MMFS__ZDICT_SAMPLE - used) continue;
        void *a = samples;
        if ((rc = mmfs__grow(&a, &cap, used + l, 1))) break;
        samples = a;
        a = sizes;
        if ((rc = mmfs__grow(&a, &ncap, n + 1, sizeof *sizes))) break;
        sizes = a;
        memcpy(samples + used, r.u.mem.text.ptr, l);
        used += l;
        sizes[n++] = l;
    }
    size_t dsize = used / 16 < MMFS__ZDICT_SIZE ? used / 16 : MMFS__ZDICT_SIZE;
    uint8_t *d = NULL;
    if (rc == MMFS_OK && n >= 8 && dsize >= 1024 && n <= UINT32_MAX && (d = malloc(dsize))) {
        size_t got = ZDICT_trainFromBuffer(d, dsize, samples, sizes, (unsigned)n);
        if (!ZDICT_isError(got)) {
            *dict = d;
            *len = got;
            *id = 1 + atomic_load(&e->z.n);
            d = NULL;
        }
    } else if (rc == MMFS_OK && n >= 8 && dsize >= 1024) {
        rc = mmfs__err(MMFS_NOMEM, "compress: out of memory for a dictionary");
    }
    free(d);
    free(samples);
    free(sizes);
    if (rc) return rc;
    if (!*dict) {
        /* too little or too uniform text: try again when there is twice as much */
        zw->retry_at = 2 * (e->mems.live ? e->mems.live : 1);
        return MMFS_NOTFOUND;
    }
    return MMFS_OK;
#else
    (void)zw, (void)e;
    return mmfs__err(MMFS_INVALID, "compress: built without zstd");
#endif
}

#ifdef MMFS_HAVE_ZSTD
/* ZW's context, with the CDict of dictionary D. */
static int zw_ready(mmfs__zwriter *zw, const mmfs__zdict *d) {
    if (!zw->cctx) {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        if (!c) return mmfs__err(MMFS_NOMEM, "compress: out of memory");
        /* a frame as small as it can be: ztext.h says why each is left out */
        if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_format, ZSTD_f_zstd1_magicless)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0))) {
            ZSTD_freeCCtx(c);
            return mmfs__err(MMFS_INVALID, "compress: this libzstd refuses the frame parameters");
        }
        zw->cctx = c;
    }
    if (zw->dict_id != d->id) {
        ZSTD_freeCDict(zw->cdict);
        zw->dict_id = 0;
        if (!(zw->cdict = ZSTD_createCDict(d->bytes.ptr, d->bytes.len, MMFS__ZTEXT_LEVEL)))
            return mmfs__err(MMFS_NOMEM, "compress: out of memory for dictionary %llu", (unsigned long long)d->id);
        if (ZSTD_isError(ZSTD_CCtx_refCDict(zw->cctx, zw->cdict)))
            return mmfs__err(MMFS_INVALID, "compress: zstd refuses dictionary %llu", (unsigned long long)d->id);
        zw->dict_id = d->id;
    }
    return MMFS_OK;
}
#endif

int mmfs__zw_pack(mmfs__zwriter *zw, const mmfs__engine *e, mmfs__rec *cmds, size_t n) {
    const mmfs__zdict *d = mmfs__ztext_newest(e);
    if (!d) return MMFS_OK;
#ifdef MMFS_HAVE_ZSTD
    int rc = zw_ready(zw, d);
    if (rc) return rc;
    /* First the frames into one buffer (which may move), then the slices. */
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = cmds[i].u.mem.text.len;
        if (cmds[i].type == MMFS__R_MEMORY && l >= MMFS__ZTEXT_MIN && l <= MMFS__ZTEXT_MAX)
            need += 20 + ZSTD_compressBound(l);
    }
    if (!need) return MMFS_OK;
    if (zw->cap > ((size_t)4 << 20) && need <= ((size_t)4 << 20)) { /* don't keep a huge buffer */
        free(zw->buf);
        zw->buf = NULL;
        zw->cap = 0;
    }
    if (need > zw->cap) {
        uint8_t *b = realloc(zw->buf, need);
        if (!b) return mmfs__err(MMFS_NOMEM, "compress: out of memory for %zu bytes", need);
        zw->buf = b;
        zw->cap = need;
    }
    size_t at = 0;
    size_t *offs = malloc(2 * n * sizeof *offs);
    if (!offs) return mmfs__err(MMFS_NOMEM, "compress: out of memory");
    for (size_t i = 0; i < n; i++) {
        mmfs__rec *c = &cmds[i];
        size_t l = c->u.mem.text.len;
        offs[2 * i] = offs[2 * i + 1] = 0;
        if (c->type != MMFS__R_MEMORY || l < MMFS__ZTEXT_MIN || l > MMFS__ZTEXT_MAX) continue;
        uint8_t *p = zw->buf + at;
        size_t h = put_varint(p, d->id);
        h += put_varint(p + h, l);
        size_t z = ZSTD_compress2(zw->cctx, p + h, zw->cap - at - h, c->u.mem.text.ptr, l);
        if (ZSTD_isError(z) || h + z >= l) continue; /* does not shrink: stays raw */
        offs[2 * i] = at;
        offs[2 * i + 1] = h + z;
        at += h + z;
    }
    for (size_t i = 0; i < n; i++) {
        if (!offs[2 * i + 1]) continue;
        cmds[i].u.mem.text.ptr = zw->buf + offs[2 * i];
        cmds[i].u.mem.text.len = offs[2 * i + 1];
        cmds[i].flags |= MMFS__RF_ZTEXT;
    }
    free(offs);
    return MMFS_OK;
#else
    (void)zw, (void)cmds, (void)n;
    return mmfs__err(MMFS_INVALID, "compress: built without zstd");
#endif
}

void mmfs__zw_free(mmfs__zwriter *zw) {
#ifdef MMFS_HAVE_ZSTD
    ZSTD_freeCCtx(zw->cctx);
    ZSTD_freeCDict(zw->cdict);
#endif
    free(zw->buf);
    memset(zw, 0, sizeof *zw);
}
