/*
** fuzz_store.h: building store files from fuzz input, shared by the fuzz
** target (fuzz_recover.c) and the seed generator (gen_corpus.c).
**
** An input is one mode byte, then the mode's bytes:
**
**   0  the frames region of the only segment, as is (raw bytes: checksums
**      must be right for anything to be applied)
**   1  valid frames made from the sample records, then the input spliced
**      over their end (first byte: how many 8-byte steps back from the end
**      of the valid frames the splice starts)
**   2  a record list (below) framed by the harness with correct headers,
**      LSNs and checksums: the record decoder and the engine see whatever
**      the fuzzer made of the record bodies
**   3  mode 2 as a sealed first segment, then a second segment holding the
**      sample frames (LSNs continuing), then raw input bytes after them
**
** Record list: items; 0xff ends the current frame; any other byte is a
** record type, then u16 LE body length, then that many body bytes.
*/
#ifndef MMFS_FUZZ_STORE_H
#define MMFS_FUZZ_STORE_H

#include <stddef.h>
#include <stdint.h>

#define FZ_SEG_SIZE ((size_t)64 << 10)
#define FZ_DATA (FZ_SEG_SIZE - 64)

/* Writes the 64-byte header of segment NO (CRC32C log, FZ_SEG_SIZE). */
void fz_seg_header(uint8_t *h, uint32_t no);

/* Frames the record list D (N bytes) into OUT (CAP bytes) starting at LSN
** *lsn; *lsn moves past the records.  Returns the bytes used. */
size_t fz_frame_list(const uint8_t *d, size_t n, uint8_t *out, size_t cap, uint64_t *lsn);

/* Appends a seal frame at OUT (CAP bytes) with LSN; returns its size or 0. */
size_t fz_seal(uint8_t *out, size_t cap, uint64_t lsn);

/* A record list of sample commands of every type into OUT (CAP bytes);
** VARIANT changes their contents.  Returns the bytes used. */
size_t fz_sample_list(uint8_t *out, size_t cap, unsigned variant);

/* One MEMORY record item with id ID (a list of one) into OUT. */
size_t fz_memory_item(uint8_t *out, size_t cap, uint64_t id);

#endif
