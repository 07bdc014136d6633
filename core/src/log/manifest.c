/*
** manifest.c: ROOT/MANIFEST, the store's options and where its log starts.
** A short text file ending in a CRC32C line; replaced only by writing a
** temporary file, fsyncing it, renaming it over MANIFEST and fsyncing the
** directory, so a crash leaves the old MANIFEST or the new one.  Only a
** writer holding the flock writes it: at creation, when a segment is made,
** and when open rebuilt a lost MANIFEST from a log that verified whole.
** An open that fails never writes it.
**
**   memmapfs-manifest 2
**   checksum crc32c|blake2b
**   keycheck -|<hex of keyed blake2b of a fixed text>
**   segment_size <bytes>
**   first_segment <n>
**   last_segment <n>          (format 2; absent in format 1: unknown)
**   tokenizer <version> <language>   (absent in stores made before it:
**                                     tokenizer version 0)
**   compacted <seg> <next_lsn> <next_id>   (format 3, only once a
**                                     compaction switched the log: the
**                                     last segment it wrote, and the next
**                                     LSN and memory id when it did, which
**                                     the compacted log alone may not show)
**   compress zstd                    (format 4, only in a store made with
**                                     compress = "zstd": its memory texts
**                                     may be compressed, engine/ztext.h)
**   crc <hex CRC32C of the lines above>
**
** The parser reads "name value" lines in any order; a line it does not
** know is refused, a known optional line may be absent (its default then
** holds), so a new optional line is one entry in parse_line().
*/
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef MMFS_HAVE_SODIUM
#include <sodium.h>
#endif

/* The key check: a keyed hash of a fixed text, so a wrong key is told at
** open instead of as a checksum error on every frame. */
static void keycheck(const mmfs__sum *s, char out[65]) {
    if (!s->key_len) {
        strcpy(out, "-");
        return;
    }
#ifdef MMFS_HAVE_SODIUM
    static const char text[] = "memmapfs key check";
    uint8_t h[32];
    crypto_generichash(h, sizeof h, (const uint8_t *)text, sizeof text - 1, s->key, s->key_len);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
#else
    strcpy(out, "-");
#endif
}

static int format(mmfs__log *lg, char *buf, size_t len) {
    char kc[65];
    keycheck(&lg->sum, kc);
    /* Format 3 or 4 only where its line is needed: a store never
    ** compacted stays readable by libraries that know format 2, and one
    ** that does not compress by those that know format 3. */
    int n = snprintf(buf, len,
                     "memmapfs-manifest %d\nchecksum %s\nkeycheck %s\nsegment_size %" PRIu64
                     "\nfirst_segment %u\nlast_segment %u\n",
                     lg->compress ? 4 : lg->compact_seg ? 3 : 2, lg->sum.type == MMFS_CHECKSUM_BLAKE2B ? "blake2b" : "crc32c", kc,
                     lg->segment_size, lg->first_seg, lg->last_seg);
    if (lg->tok_version)
        n += snprintf(buf + n, len - (size_t)n, "tokenizer %d %s\n", lg->tok_version, lg->tok_lang);
    if (lg->compress) n += snprintf(buf + n, len - (size_t)n, "compress zstd\n");
    if (lg->compact_seg)
        n += snprintf(buf + n, len - (size_t)n, "compacted %u %" PRIu64 " %" PRIu64 "\n", lg->compact_seg,
                      lg->lsn_floor, lg->id_floor);
    n += snprintf(buf + n, len - (size_t)n, "crc %08x\n", mmfs__crc32c(0, buf, (size_t)n));
    return n;
}

int mmfs__manifest_write(mmfs__log *lg) {
    char path[4096], tmp[4100], buf[1024];
    snprintf(path, sizeof path, "%s/MANIFEST", lg->dir);
    snprintf(tmp, sizeof tmp, "%s/MANIFEST.tmp", lg->dir);
    int n = format(lg, buf, sizeof buf);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return mmfs__err_sys(errno, "create", tmp);
    int rc = MMFS_OK;
    if (write(fd, buf, (size_t)n) != n)
        rc = mmfs__err_sys(errno ? errno : EIO, "write", tmp);
    else if (fsync(fd) < 0)
        rc = mmfs__err_sys(errno, "fsync", tmp);
    close(fd);
    if (rc == MMFS_OK && rename(tmp, path) < 0) rc = mmfs__err_sys(errno, "rename", tmp);
    if (rc != MMFS_OK) {
        unlink(tmp);
        return rc;
    }
    return mmfs__fsync_dir(lg->dir);
}

/* What a MANIFEST says, before it is checked against the options. */
typedef struct fields {
    int version;
    char sum[32], kc[80];
    unsigned long long segsize;
    unsigned first, last;
    int tok;       /* tokenizer version; 0: no line (stores made before it) */
    char lang[32]; /* its language */
    unsigned compact_seg;             /* "compacted": 0 when absent */
    unsigned long long lsn_floor, id_floor;
    int compress;  /* "compress zstd": 1 */
    int seen;      /* bit per required line */
} fields;

/* Parses one line "NAME VALUE" into F.  0, or -1 for a line not known. */
static int parse_line(const char *line, fields *f) {
    char name[32], val[96];
    if (sscanf(line, "%31s %95s", name, val) != 2) return -1;
    if (!strcmp(name, "tokenizer"))
        return sscanf(line, "tokenizer %d %31s", &f->tok, f->lang) == 2 && f->tok >= 1 ? 0 : -1;
    if (!strcmp(name, "memmapfs-manifest")) {
        f->seen |= 1;
        return sscanf(val, "%d", &f->version) == 1 ? 0 : -1;
    }
    if (!strcmp(name, "checksum") && strlen(val) < sizeof f->sum) {
        f->seen |= 2;
        strcpy(f->sum, val);
        return 0;
    }
    if (!strcmp(name, "keycheck") && strlen(val) < sizeof f->kc) {
        f->seen |= 4;
        strcpy(f->kc, val);
        return 0;
    }
    if (!strcmp(name, "segment_size")) {
        f->seen |= 8;
        return sscanf(val, "%llu", &f->segsize) == 1 ? 0 : -1;
    }
    if (!strcmp(name, "first_segment")) {
        f->seen |= 16;
        return sscanf(val, "%u", &f->first) == 1 ? 0 : -1;
    }
    if (!strcmp(name, "compress") && !strcmp(val, "zstd")) {
        f->compress = 1;
        return 0;
    }
    if (!strcmp(name, "last_segment")) return sscanf(val, "%u", &f->last) == 1 ? 0 : -1;
    if (!strcmp(name, "compacted"))
        return sscanf(line, "compacted %u %llu %llu", &f->compact_seg, &f->lsn_floor, &f->id_floor) == 3 &&
                       f->compact_seg && f->lsn_floor
                   ? 0
                   : -1;
    return -1;
}

/* Reads and checks the lines of DB's MANIFEST into *F (path into PATH).
** *exists = 0 (and OK) when there is none. */
static int parse(mmfs__log *lg, fields *fp, char *path, size_t plen, int *exists) {
    char buf[2048];
    snprintf(path, plen, "%s/MANIFEST", lg->dir);
    *exists = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return MMFS_OK;
        return mmfs__err_sys(errno, "open", path);
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n < 0) return mmfs__err_sys(e, "read", path);
    buf[n] = 0;
    *exists = 1;
    char *crcline = strstr(buf, "crc ");
    unsigned crc = 0;
    if (!crcline || sscanf(crcline, "crc %x", &crc) != 1 ||
        crc != mmfs__crc32c(0, buf, (size_t)(crcline - buf)))
        return mmfs__err(MMFS_CORRUPT, "%s: checksum mismatch", path);
    fields f;
    memset(&f, 0, sizeof f);
    memset(fp, 0, sizeof *fp);
    for (char *line = buf; line < crcline;) {
        char *nl = memchr(line, '\n', (size_t)(crcline - line));
        if (!nl) return mmfs__err(MMFS_CORRUPT, "%s: unreadable", path);
        *nl = 0;
        if (parse_line(line, &f) < 0) {
            /* A newer format's line: say so rather than "corrupt". */
            if (f.version > MMFS__FORMAT) break;
            return mmfs__err(MMFS_CORRUPT, "%s: unreadable line '%.40s'", path, line);
        }
        line = nl + 1;
    }
    if (f.version > MMFS__FORMAT)
        return mmfs__err(MMFS_INVALID, "%s: format %d is newer than this library (%d)", path, f.version,
                         MMFS__FORMAT);
    if (f.seen != 31) return mmfs__err(MMFS_CORRUPT, "%s: unreadable (a line is missing)", path);
    if (f.segsize < 4096 || f.first == 0 || (f.last && f.last < f.first) ||
        (f.compact_seg && (f.compact_seg < f.first || (f.last && f.compact_seg > f.last))))
        return mmfs__err(MMFS_CORRUPT, "%s: bad values", path);
    *fp = f;
    return MMFS_OK;
}

int mmfs__manifest_read(mmfs__log *lg, int *exists) {
    char path[4096];
    fields f;
    int rc = parse(lg, &f, path, sizeof path, exists);
    if (rc || !*exists) return rc;
    const char *sum = f.sum, *kc = f.kc;
    unsigned long long segsize = f.segsize;
    unsigned first = f.first;
    int type;
    if (!strcmp(sum, "crc32c"))
        type = MMFS_CHECKSUM_CRC32C;
    else if (!strcmp(sum, "blake2b"))
        type = MMFS_CHECKSUM_BLAKE2B;
    else
        return mmfs__err(MMFS_CORRUPT, "%s: unknown checksum '%s'", path, sum);
    int keyed = strcmp(kc, "-") != 0;
    if (keyed && !lg->opt->key)
        return mmfs__err(MMFS_CORRUPT, "%s: the store is keyed: open it with its key", path);
    rc = mmfs__sum_init(&lg->sum, type, keyed ? lg->opt->key : NULL, keyed ? lg->opt->key_len : 0);
    if (rc) return rc;
    if (!keyed && lg->opt->key)
        return mmfs__err(MMFS_INVALID, "%s: the store has no key, but a key was given", path);
    char mine[65];
    keycheck(&lg->sum, mine);
    if (strcmp(mine, kc) != 0) return mmfs__err(MMFS_CORRUPT, "%s: wrong key", path);
    lg->segment_size = segsize;
    lg->first_seg = first;
    lg->last_seg = f.last;
    lg->compact_seg = f.compact_seg;
    lg->lsn_floor = f.lsn_floor;
    lg->id_floor = f.id_floor;
    lg->tok_version = f.tok;
    memcpy(lg->tok_lang, f.lang, sizeof lg->tok_lang);
#ifndef MMFS_HAVE_ZSTD
    /* before anything is read or changed: its texts could not be read */
    if (f.compress)
        return mmfs__err(MMFS_INVALID, "%s: the store compresses memory text with zstd, and this library was "
                                       "built without zstd",
                         path);
#endif
    lg->compress = f.compress;
    return MMFS_OK;
}

int mmfs__manifest_reread(mmfs__log *lg) {
    char path[4096];
    fields f;
    int exists;
    int rc = parse(lg, &f, path, sizeof path, &exists);
    if (rc) return rc;
    if (!exists) return mmfs__err(MMFS_CORRUPT, "%s: MANIFEST is gone while the store is open", lg->dir);
    if (f.segsize != lg->segment_size)
        return mmfs__err(MMFS_CORRUPT, "%s: MANIFEST changed its segment size while the store is open", path);
    lg->first_seg = f.first;
    lg->last_seg = f.last;
    lg->compact_seg = f.compact_seg;
    lg->lsn_floor = f.lsn_floor;
    lg->id_floor = f.id_floor;
    return MMFS_OK;
}
