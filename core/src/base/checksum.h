/* checksum.h: frame checksums (checksum.c) over CRC32C (crc32c.c). */
#ifndef MMFS_CHECKSUM_H
#define MMFS_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of BUF continuing from CRC (0 to start). */
uint32_t mmfs__crc32c(uint32_t crc, const void *buf, size_t len);
/* The same, never using the hardware instruction (tests compare both). */
uint32_t mmfs__crc32c_sw(uint32_t crc, const void *buf, size_t len);

#define MMFS__SUM_MAX 16

/* A frame checksum: type (mmfs_checksum_type) and, for blake2b, a key. */
typedef struct mmfs__sum {
    int type;
    size_t len;          /* bytes of checksum in a frame: 4 or 16 */
    uint8_t key[64];
    size_t key_len;
} mmfs__sum;

/* Sets up S for TYPE with KEY (may be NULL).  Errors: MMFS_INVALID (blake2b
** without libsodium, bad key length). */
int mmfs__sum_init(mmfs__sum *s, int type, const void *key, size_t key_len);

/* Writes S->len checksum bytes of BUF into OUT. */
void mmfs__sum_compute(const mmfs__sum *s, const void *buf, size_t len, uint8_t *out);

/* 1 if the S->len bytes at EXPECT are BUF's checksum. */
int mmfs__sum_check(const mmfs__sum *s, const void *buf, size_t len, const uint8_t *expect);

#endif
