/*
** checksum.c: frame checksums.  CRC32C catches torn and flipped bytes;
** keyed BLAKE2b (libsodium, optional at build time) also makes the log
** tamper-evident: without the key nobody can forge a frame that checks.
*/
#include "internal.h"
#include "checksum.h"

#ifdef MMFS_HAVE_SODIUM
#include <sodium.h>
#endif

int mmfs__sum_init(mmfs__sum *s, int type, const void *key, size_t key_len) {
    memset(s, 0, sizeof *s);
    s->type = type;
    if (type == MMFS_CHECKSUM_CRC32C) {
        if (key && key_len) return mmfs__err(MMFS_INVALID, "a key needs checksum = \"blake2b\"");
        s->len = 4;
        return MMFS_OK;
    }
    if (type != MMFS_CHECKSUM_BLAKE2B) return mmfs__err(MMFS_INVALID, "unknown checksum type %d", type);
#ifdef MMFS_HAVE_SODIUM
    if (sodium_init() < 0) return mmfs__err(MMFS_IO, "libsodium failed to initialise");
    if (key && key_len) {
        if (key_len < 16 || key_len > 64)
            return mmfs__err(MMFS_INVALID, "key: %zu bytes; a blake2b key has 16 to 64", key_len);
        memcpy(s->key, key, key_len);
        s->key_len = key_len;
    }
    s->len = 16;
    return MMFS_OK;
#else
    (void)key;
    (void)key_len;
    return mmfs__err(MMFS_INVALID, "checksum \"blake2b\" needs a build with libsodium");
#endif
}

void mmfs__sum_compute(const mmfs__sum *s, const void *buf, size_t len, uint8_t *out) {
#ifdef MMFS_HAVE_SODIUM
    if (s->type == MMFS_CHECKSUM_BLAKE2B) {
        crypto_generichash(out, 16, buf, len, s->key_len ? s->key : NULL, s->key_len);
        return;
    }
#else
    (void)s; /* only BLAKE2b needs the state */
#endif
    mmfs__st32(out, mmfs__crc32c(0, buf, len));
}

int mmfs__sum_check(const mmfs__sum *s, const void *buf, size_t len, const uint8_t *expect) {
    uint8_t got[MMFS__SUM_MAX];
    mmfs__sum_compute(s, buf, len, got);
    return memcmp(got, expect, s->len) == 0;
}
