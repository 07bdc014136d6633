/*
** segfile.c: immutable index segments on disk (ROOT/index/; the layout is
** docs/format.md's "ROOT/index/").
**
** Owns: writing the documents of an in-memory index as one segment file
** (temporary name, fsync, rename, fsync of the directory), mapping one,
** and checking its bytes block by block as readers first need them.
**
** Invariants:
** - A segment is never changed once renamed into place: deletes since are
**   a bitmap in memory (view.c), merges write a new file.
** - Open reads the header, the table of block checksums and the document
**   table, nothing else, so it costs the same whatever the history; every
**   other byte is checked (CRC32C of its 64 KiB block) before its first
**   use, and a block that fails makes the whole segment answer
**   MMFS_CORRUPT from then on: never a posting from a damaged block.
** - The postings, positions and skip tables are the in-memory index's
**   bytes as they are (search.h): a cursor reads a mapped term exactly as
**   it reads an in-memory one.  A checksum only says the bytes are the
**   ones written, so every offset and length read from the file is checked
**   against the mapping, and a term's postings are walked once (as a
**   cursor reads them, every varint bounded) before its first use: a
**   crafted file with right checksums is MMFS_CORRUPT, never a read out of
**   bounds or a loop.
*/
#include "index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checksum.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "index segments are read in place: little-endian hosts only"
#endif

static const char MAGIC[8] = {'M', 'M', 'F', 'S', 'I', 'D', 'X', '1'};

#define HEAD 256   /* header bytes */
#define HEAD_SUM 144 /* the header's checksum covers [0, HEAD_SUM) */
#define TERM_ENT 40 /* bytes of one term entry */
#define SKIP_ENT 16

static inline uint64_t align(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

/* ------------------------------------------------------------ writing */

/* Streams the file through one block, checksumming each as it fills. */
typedef struct bw {
    int fd;
    uint8_t *buf;
    size_t fill;
    uint64_t off;
    uint32_t *sums;
    uint32_t nsum;
    int rc;
} bw;

static void bw_flush(bw *w) {
    if (w->rc || !w->fill) return;
    w->sums[w->nsum++] = mmfs__crc32c(0, w->buf, w->fill);
    size_t done = 0;
    while (done < w->fill) {
        ssize_t k = write(w->fd, w->buf + done, w->fill - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            w->rc = mmfs__err_sys(errno ? errno : EIO, "write", "index segment");
            return;
        }
        done += (size_t)k;
    }
    w->fill = 0;
}

static void bw_put(bw *w, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n && !w->rc) {
        size_t k = MMFS__IXSEG_BLOCK - w->fill;
        if (k > n) k = n;
        memcpy(w->buf + w->fill, b, k);
        w->fill += k;
        w->off += k;
        b += k;
        n -= k;
        if (w->fill == MMFS__IXSEG_BLOCK) bw_flush(w);
    }
}

static void bw_zeros(bw *w, uint64_t to) {
    static const uint8_t z[64];
    while (w->off < to && !w->rc) bw_put(w, z, to - w->off < sizeof z ? (size_t)(to - w->off) : sizeof z);
}

/* The bytes of T's data: postings, positions, padding, skip table. */
static uint64_t term_data(const mmfs__index *ix, const mmfs__term *t, uint32_t *nsk) {
    *nsk = t->big ? ix->skips[t->big - 1].n : 0;
    return align((uint64_t)t->post.len + t->pos.len, 4) + (uint64_t)*nsk * SKIP_ENT;
}

/* Writes the file body into W (sizes computed by the caller). */
static void write_body(bw *w, const mmfs__index *ix, const uint8_t *head, uint32_t lo, uint32_t hi,
                       const uint32_t *ids, uint32_t n, uint64_t off_terms, uint64_t off_strs,
                       uint64_t off_data) {
    bw_put(w, head, HEAD);
    for (uint32_t d = lo; d < hi && !w->rc; d++) {
        uint32_t len = mmfs__doc_len(ix, d);
        bw_put(w, &len, 4);
    }
    bw_zeros(w, off_terms);
    uint64_t soff = 0, doff = 0;
    for (uint32_t i = 0; i < n && !w->rc; i++) {
        const mmfs__term *t = &ix->terms[ids[i]];
        uint32_t nsk;
        uint64_t dn = term_data(ix, t, &nsk);
        uint8_t e[TERM_ENT] = {0};
        mmfs__st32(e, (uint32_t)soff);
        memcpy(e + 4, &t->slen, 2);
        memcpy(e + 6, &t->max_tf, 2);
        mmfs__st32(e + 8, t->df);
        mmfs__st32(e + 12, t->min_dl);
        mmfs__st64(e + 16, doff);
        mmfs__st32(e + 24, t->post.len);
        mmfs__st32(e + 28, t->pos.len);
        mmfs__st32(e + 32, nsk);
        bw_put(w, e, sizeof e);
        soff += t->slen;
        doff += dn;
    }
    mmfs_assert(w->rc || w->off == off_strs, "term table as computed");
    (void)off_strs;
    for (uint32_t i = 0; i < n && !w->rc; i++) {
        const mmfs__term *t = &ix->terms[ids[i]];
        bw_put(w, tstr(ix, t), t->slen);
    }
    bw_zeros(w, off_data);
    for (uint32_t i = 0; i < n && !w->rc; i++) {
        const mmfs__term *t = &ix->terms[ids[i]];
        uint32_t nsk;
        (void)term_data(ix, t, &nsk);
        uint64_t start = w->off;
        bw_put(w, bptr_c(&t->post), t->post.len);
        bw_put(w, bptr_c(&t->pos), t->pos.len);
        bw_zeros(w, start + align((uint64_t)t->post.len + t->pos.len, 4));
        if (nsk) bw_put(w, ix->skips[t->big - 1].v, (size_t)nsk * SKIP_ENT);
    }
}

void mmfs__ixseg_name(const mmfs__ixent *ent, char name[MMFS__IXSEG_NAME]) {
    snprintf(name, MMFS__IXSEG_NAME, "%010u-%020llu.idx", ent->lo, (unsigned long long)ent->lsn);
}

int mmfs__ixseg_write(const mmfs__index *ix, int dir, uint64_t lsn, char name[MMFS__IXSEG_NAME],
                      mmfs__ixent *ent) {
    /* the docno range: first and last present document */
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t pg = 0; pg < ix->npages; pg++) {
        if (!ix->pages[pg]) continue;
        for (uint32_t i = 0; i < MMFS__PAGE; i++) {
            if (ix->pages[pg][i] == MMFS__DOC_ABSENT) continue;
            uint32_t d = (pg << MMFS__PAGE_BITS) | i;
            if (d < lo) lo = d;
            hi = d + 1;
        }
    }
    if (ix->nseg || hi == 0) return mmfs__err(MMFS_INVALID, "search: no in-memory document to write");
    uint32_t *ids, n;
    int rc = mmfs__terms_sorted(ix, &ids, &n);
    if (rc) return rc;
    uint64_t strs = 0, data = 0, ndocs = 0, total = 0, ndel = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t nsk;
        strs += ix->terms[ids[i]].slen;
        data += term_data(ix, &ix->terms[ids[i]], &nsk);
    }
    for (uint32_t d = lo; d < hi; d++) {
        uint32_t len = mmfs__doc_len(ix, d);
        if (len == MMFS__DOC_ABSENT) continue;
        if (len & MMFS__DOC_DELETED) {
            ndel++;
            continue;
        }
        ndocs++;
        total += len;
    }
    uint64_t off_dl = HEAD, off_terms = align(off_dl + 4 * (uint64_t)(hi - lo), 8);
    uint64_t off_strs = off_terms + (uint64_t)n * TERM_ENT;
    uint64_t off_data = align(off_strs + strs, 8), off_sums = align(off_data + data, 8);
    uint64_t nblk = (off_sums + MMFS__IXSEG_BLOCK - 1) >> MMFS__IXSEG_BLOCK_BITS;
    uint64_t size = off_sums + 4 * nblk + 4;

    uint8_t head[HEAD] = {0};
    memcpy(head, MAGIC, 8);
    mmfs__st32(head + 8, MMFS__IXSEG_FORMAT);
    mmfs__st32(head + 12, (uint32_t)ix->cfg.version);
    memcpy(head + 16, ix->cfg.lang, strnlen(ix->cfg.lang, MMFS__TOK_LANG - 1));
    mmfs__st32(head + 48, lo);
    mmfs__st32(head + 52, hi);
    mmfs__st64(head + 56, lsn);
    mmfs__st64(head + 64, size);
    mmfs__st32(head + 72, n);
    mmfs__st32(head + 76, MMFS__IXSEG_BLOCK_BITS);
    mmfs__st64(head + 80, ndocs);
    mmfs__st64(head + 88, total);
    mmfs__st64(head + 96, off_dl);
    mmfs__st64(head + 104, off_terms);
    mmfs__st64(head + 112, off_strs);
    mmfs__st64(head + 120, off_data);
    mmfs__st64(head + 128, off_sums);
    mmfs__st64(head + 136, ndel); /* so open need not read the document table */
    mmfs__st32(head + HEAD_SUM, mmfs__crc32c(0, head, HEAD_SUM));

    mmfs__ixent me = {lo, hi, lsn, mmfs__ld32(head + HEAD_SUM)};
    mmfs__ixseg_name(&me, name);
    if (ent) *ent = me;
    char tmp[MMFS__IXSEG_NAME + 32];
    static _Atomic unsigned seq;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", name, (long)getpid(), atomic_fetch_add(&seq, 1));
    bw w = {.fd = -1};
    w.buf = malloc(MMFS__IXSEG_BLOCK);
    w.sums = malloc((size_t)nblk * 4 + 4);
    if (!w.buf || !w.sums) {
        rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
        goto out;
    }
    w.fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        rc = mmfs__err_sys(errno, "open", tmp);
        goto out;
    }
    write_body(&w, ix, head, lo, hi, ids, n, off_terms, off_strs, off_data);
    bw_zeros(&w, off_sums);
    bw_flush(&w);
    if (!w.rc) {
        mmfs_assert(w.nsum == nblk && w.off == off_sums, "segment size as computed");
        w.sums[nblk] = mmfs__crc32c(0, w.sums, (size_t)nblk * 4);
        /* the table and its checksum are not in a block: written directly */
        size_t len = (size_t)nblk * 4 + 4, done = 0;
        const uint8_t *p = (const uint8_t *)w.sums;
        while (done < len && !w.rc) {
            ssize_t k = write(w.fd, p + done, len - done);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) w.rc = mmfs__err_sys(errno ? errno : EIO, "write", tmp);
            else done += (size_t)k;
        }
    }
    rc = w.rc;
    if (!rc && fsync(w.fd) != 0) rc = mmfs__err_sys(errno, "fsync", tmp);
    if (close(w.fd) != 0 && !rc) rc = mmfs__err_sys(errno, "close", tmp);
    w.fd = -1;
    if (!rc && renameat(dir, tmp, dir, name) != 0) rc = mmfs__err_sys(errno, "rename", tmp);
    if (!rc && fsync(dir) != 0) rc = mmfs__err_sys(errno, "fsync", "index/");
    if (rc) (void)unlinkat(dir, tmp, 0);
out:
    free(w.buf);
    free(w.sums);
    free(ids);
    return rc;
}

/* ------------------------------------------------------------ reading */

int mmfs__index_segment_docs(int dir, const mmfs__ixent *ent, uint64_t *n) {
    char name[MMFS__IXSEG_NAME];
    mmfs__ixseg_name(ent, name);
    int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return mmfs__err(MMFS_NOTFOUND, "index/%s: missing", name);
        return mmfs__err_sys(errno, "open", name);
    }
    uint8_t h[HEAD];
    ssize_t k = pread(fd, h, HEAD, 0);
    close(fd);
    if (k != HEAD || memcmp(h, MAGIC, 8) != 0 || mmfs__ld32(h + HEAD_SUM) != mmfs__crc32c(0, h, HEAD_SUM) ||
        mmfs__ld32(h + HEAD_SUM) != ent->crc)
        return mmfs__err(MMFS_CORRUPT, "index/%s: not the segment the checkpoint lists", name);
    *n = mmfs__ld64(h + 80) + mmfs__ld64(h + 136);
    return MMFS_OK;
}

static int bad(const char *name, const char *what) {
    return mmfs__err(MMFS_CORRUPT, "index/%s: %s", name, what);
}

int mmfs__ixseg_open(int dir, const char *name, const mmfs__tokcfg *cfg, mmfs__ixseg **out) {
    *out = NULL;
    if (strlen(name) >= MMFS__IXSEG_NAME) return bad(name, "name too long");
    int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return mmfs__err(MMFS_NOTFOUND, "index/%s: missing", name);
        return mmfs__err_sys(errno, "open", name);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = mmfs__err_sys(errno, "fstat", name);
        close(fd);
        return rc;
    }
    if ((uint64_t)st.st_size < HEAD + 4) {
        close(fd);
        return bad(name, "truncated");
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return mmfs__err_sys(errno, "mmap", name);
    const uint8_t *h = map;
    uint64_t size = (uint64_t)st.st_size;
    mmfs__ixseg *s = NULL;
    int rc;
    if (memcmp(h, MAGIC, 8) != 0 || mmfs__ld32(h + HEAD_SUM) != mmfs__crc32c(0, h, HEAD_SUM)) {
        rc = bad(name, "header checksum mismatch");
        goto fail;
    }
    if (mmfs__ld32(h + 8) != MMFS__IXSEG_FORMAT) {
        rc = mmfs__err(MMFS_INVALID, "index/%s: format %u is newer than this library", name, mmfs__ld32(h + 8));
        goto fail;
    }
    if (mmfs__ld64(h + 64) != size) {
        rc = bad(name, "truncated");
        goto fail;
    }
    char lang[MMFS__TOK_LANG] = {0};
    memcpy(lang, h + 16, MMFS__TOK_LANG - 1);
    if ((int)mmfs__ld32(h + 12) != cfg->version || strcmp(lang, cfg->lang) != 0) {
        rc = bad(name, "made with another tokenizer");
        goto fail;
    }
    uint32_t lo = mmfs__ld32(h + 48), hi = mmfs__ld32(h + 52), nterms = mmfs__ld32(h + 72);
    uint64_t off_dl = mmfs__ld64(h + 96), off_terms = mmfs__ld64(h + 104), off_strs = mmfs__ld64(h + 112);
    uint64_t off_data = mmfs__ld64(h + 120), off_sums = mmfs__ld64(h + 128);
    uint64_t nblk = (off_sums + MMFS__IXSEG_BLOCK - 1) >> MMFS__IXSEG_BLOCK_BITS;
    if (mmfs__ld32(h + 76) != MMFS__IXSEG_BLOCK_BITS || lo >= hi || off_dl != HEAD ||
        off_terms < off_dl + 4 * (uint64_t)(hi - lo) || off_terms % 8 ||
        off_strs != off_terms + (uint64_t)nterms * TERM_ENT || off_data < off_strs || off_data % 8 ||
        off_sums < off_data || off_sums % 8 || off_sums + 4 * nblk + 4 != size) {
        rc = bad(name, "implausible header");
        goto fail;
    }
    const uint8_t *sums = h + off_sums;
    if (mmfs__ld32(sums + 4 * nblk) != mmfs__crc32c(0, sums, 4 * nblk)) {
        rc = bad(name, "block checksum table mismatch");
        goto fail;
    }
    s = calloc(1, sizeof *s);
    if (!s) goto nomem;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->map = h;
    s->size = (size_t)size;
    s->lo = lo;
    s->hi = hi;
    s->lsn = mmfs__ld64(h + 56);
    s->nterms = nterms;
    s->ndocs = mmfs__ld64(h + 80);
    s->total_len = mmfs__ld64(h + 88);
    s->ndeleted = mmfs__ld64(h + 136);
    s->off_terms = off_terms;
    s->off_strs = off_strs;
    s->off_data = off_data;
    s->off_sums = off_sums;
    s->head_crc = mmfs__ld32(h + HEAD_SUM);
    s->dl = (const uint32_t *)(h + off_dl);
    s->sums = (const uint32_t *)sums;
    s->nblk = (uint32_t)nblk;
    s->ok = calloc((nblk + 63) / 64, sizeof *s->ok);
    s->tv = calloc(((uint64_t)nterms + 63) / 64 + 1, sizeof *s->tv);
    s->del = calloc(((uint64_t)(hi - lo) + 63) / 64, sizeof *s->del);
    if (!s->ok || !s->tv || !s->del) goto nomem;
    *out = s;
    return MMFS_OK;
nomem:
    rc = mmfs__err(MMFS_NOMEM, "search: out of memory");
fail:
    if (s) {
        free(s->ok);
        free(s->tv);
        free(s->del);
        free(s);
    }
    munmap(map, (size_t)size);
    return rc;
}

void mmfs__ixseg_close(mmfs__ixseg *s) {
    if (!s) return;
    munmap((void *)s->map, s->size);
    free(s->ok);
    free(s->tv);
    free(s->del);
    free(s);
}

int mmfs__ixseg_check(mmfs__ixseg *s, uint64_t off, uint64_t len) {
    if (atomic_load_explicit(&s->bad, memory_order_relaxed)) return bad(s->name, "damaged (checked before)");
    if (!len) return MMFS_OK;
    if (off + len > s->off_sums) return bad(s->name, "offset out of range");
    for (uint64_t b = off >> MMFS__IXSEG_BLOCK_BITS; b <= (off + len - 1) >> MMFS__IXSEG_BLOCK_BITS; b++) {
        uint64_t bit = (uint64_t)1 << (b & 63);
        if (atomic_load_explicit(&s->ok[b / 64], memory_order_acquire) & bit) continue;
        uint64_t start = b << MMFS__IXSEG_BLOCK_BITS;
        uint64_t end = start + MMFS__IXSEG_BLOCK < s->off_sums ? start + MMFS__IXSEG_BLOCK : s->off_sums;
        if (mmfs__crc32c(0, s->map + start, (size_t)(end - start)) != s->sums[b]) {
            atomic_store(&s->bad, 1);
            return mmfs__err(MMFS_CORRUPT, "index/%s: block %llu: checksum mismatch", s->name,
                             (unsigned long long)b);
        }
        atomic_fetch_or_explicit(&s->ok[b / 64], bit, memory_order_release);
    }
    return MMFS_OK;
}

/* Entry I's bytes, checked. */
static int entry(mmfs__ixseg *s, uint32_t i, const uint8_t **e) {
    uint64_t off = s->off_terms + (uint64_t)i * TERM_ENT;
    int rc = mmfs__ixseg_check(s, off, TERM_ENT);
    *e = s->map + off;
    return rc;
}

int mmfs__ixseg_term(mmfs__ixseg *s, uint32_t i, const uint8_t **str, size_t *slen) {
    const uint8_t *e;
    int rc = entry(s, i, &e);
    if (rc) return rc;
    uint64_t soff = mmfs__ld32(e);
    uint16_t n;
    memcpy(&n, e + 4, 2);
    if (s->off_strs + soff + n > s->off_data) return bad(s->name, "term out of range");
    if (!n || n > MMFS__TOK_MAX) return bad(s->name, "term empty or longer than a token"); /* a token is neither */
    if ((rc = mmfs__ixseg_check(s, s->off_strs + soff, n))) return rc;
    *str = s->map + s->off_strs + soff;
    *slen = n;
    return MMFS_OK;
}

/* A varint of P[*i..end) no wider than 5 bytes (a u32's), or -1 when it
** runs past END or is wider. */
static int64_t varint_in(const uint8_t *p, uint32_t *i, uint32_t end) {
    uint64_t v = 0;
    for (int shift = 0; shift < 35 && *i < end; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) return v <= UINT32_MAX ? (int64_t)v : -1;
    }
    return -1;
}

/* Walks the postings and positions of part P (ST's df and max_tf) as a
** cursor reads them (search.h's layout): every varint inside its block,
** docnos strictly increasing inside [lo, hi), each closed block's key at
** or above its docnos and below the next block's, each tf's positions inside the positions bytes, every block's
** positions ending at its skip entry's pend, and both streams used up.
** The checksums say the bytes are the ones written; this says a cursor
** over them stays inside them, whoever wrote them. */
static int postings_ok(const mmfs__ixseg *s, const mmfs__xterm *st, const mmfs__part *p, uint32_t poslen) {
    uint32_t pos = 0, ppos = 0, count = 0;
    uint64_t last = 0;
    int any = 0;
    for (uint32_t j = 0; j <= p->nsk; j++) {
        uint32_t end = j < p->nsk ? p->sk[j].end : p->plen;
        uint64_t prev = j ? p->sk[j - 1].key : 0;
        while (pos < end) {
            int64_t v = varint_in(p->post, &pos, end), tf = 1;
            if (v < 0) return 0;
            if ((v & 1) && (tf = varint_in(p->post, &pos, end)) < 0) return 0;
            if (v & 1) tf += 2;
            prev += (uint64_t)v >> 1;
            if (prev < s->lo || prev >= s->hi || (any && prev <= last) || (j && prev <= p->sk[j - 1].key))
                return 0;
            if (st->max_tf != UINT16_MAX && tf > st->max_tf) return 0;
            any = 1;
            last = prev;
            count++;
            for (int64_t k = 0; k < tf; k++)
                if (varint_in(p->pos, &ppos, poslen) < 0) return 0;
        }
        if (j < p->nsk && (pos != end || last > p->sk[j].key || ppos != p->sk[j].pend)) return 0;
    }
    return pos == p->plen && ppos == poslen && count == st->df;
}

int mmfs__ixseg_term_part(mmfs__ixseg *s, uint32_t i, mmfs__xterm *st, mmfs__part *p) {
    const uint8_t *e;
    int rc = entry(s, i, &e);
    if (rc) return rc;
    memcpy(&st->max_tf, e + 6, 2);
    st->df = mmfs__ld32(e + 8);
    st->min_dl = mmfs__ld32(e + 12);
    uint64_t doff = mmfs__ld64(e + 16);
    uint32_t plen = mmfs__ld32(e + 24), poslen = mmfs__ld32(e + 28), nsk = mmfs__ld32(e + 32);
    uint64_t skoff = align((uint64_t)plen + poslen, 4);
    uint64_t len = skoff + (uint64_t)nsk * SKIP_ENT;
    if (doff % 4 || doff > s->off_sums - s->off_data || len > s->off_sums - s->off_data - doff ||
        !plen || !st->df)
        return bad(s->name, "term data out of range");
    uint64_t off = s->off_data + doff;
    if ((rc = mmfs__ixseg_check(s, off, len))) return rc;
    p->post = s->map + off;
    p->plen = plen;
    p->pos = s->map + off + plen;
    p->sk = (const mmfs__skip *)(s->map + off + skoff);
    p->nsk = nsk;
    p->lo = s->lo;
    /* the cursor trusts the skip table: refuse one that would send it
    ** out of the term's bytes */
    uint32_t key = 0, end = 0, pend = 0;
    for (uint32_t j = 0; j < nsk; j++) {
        const mmfs__skip *k = &p->sk[j];
        if (k->key < key || k->key >= s->hi || k->end < end || k->end > plen || k->pend < pend ||
            k->pend > poslen)
            return bad(s->name, "implausible skip table");
        key = k->key;
        end = k->end;
        pend = k->pend;
    }
    uint64_t bit = (uint64_t)1 << (i & 63);
    if (atomic_load_explicit(&s->tv[i / 64], memory_order_acquire) & bit) return MMFS_OK;
    if (!postings_ok(s, st, p, poslen)) {
        atomic_store(&s->bad, 1);
        return bad(s->name, "implausible postings");
    }
    atomic_fetch_or_explicit(&s->tv[i / 64], bit, memory_order_release);
    return MMFS_OK;
}
