/*
** ztext.h: compressed memory text (ztext.c).  A store made with
** compress = "zstd" keeps the text of a MEMORY record as a zstd frame
** made with a dictionary of the store (record flag MMFS__RF_ZTEXT); the
** dictionaries are DICT records of the log.  The engine keeps them by id
** (mmfs__ztext, applied like any record); readers get the plain text back
** through mmfs__mem_text / mmfs__mem_text_into; the writer makes the
** dictionary and the frames (mmfs__zwriter).
**
** A compressed text (the record's text field, flag MMFS__RF_ZTEXT set):
**
**   varint dict id | varint raw length | zstd frame
**
** varints are LEB128; the frame is magicless, without checksum, content
** size or dictionary id (the record's length and the commit frame's
** checksum already cover it: a damaged byte fails the frame's checksum
** before anything decompresses it).  The raw length lets a reader
** allocate once; a frame that does not decompress to exactly that many
** bytes is MMFS_CORRUPT, never garbage returned.
*/
#ifndef MMFS_ZTEXT_H
#define MMFS_ZTEXT_H

#include "internal.h"

#include <stdatomic.h>

struct mmfs__engine;

/* Dictionaries a store may hold (the writer makes one; more are refused
** as CORRUPT rather than grown under readers that do not lock). */
#define MMFS__ZDICT_MAX 64

typedef struct mmfs__zdict {
    uint64_t id;
    const uint8_t *raw; /* the DICT record, in the mapped log */
    mmfs_slice bytes;   /* its dictionary's bytes */
    void *ddict;      /* ZSTD_DDict *, built once at apply (NULL without zstd) */
} mmfs__zdict;

/* The engine's dictionaries.  Only apply adds one (under the engine's
** write side); readers (the index drain runs under ixlock alone) read
** dicts[0, n) without a lock: an entry is filled before n is raised
** (release/acquire), and the array never moves. */
typedef struct mmfs__ztext {
    mmfs__zdict dicts[MMFS__ZDICT_MAX];
    _Atomic size_t n;
    uint64_t raw_bytes; /* text bytes of raw memories applied (training's trigger) */
} mmfs__ztext;

/* DICT's apply (record.h): adds the dictionary.  Errors: MMFS_NOMEM,
** MMFS_CORRUPT (a dictionary zstd refuses, too many). */
int mmfs__ztext_apply(struct mmfs__engine *e, const mmfs__rec *r);
/* Frees the dictionaries (engine free). */
void mmfs__ztext_free(struct mmfs__engine *e);
/* The newest dictionary, or NULL. */
const mmfs__zdict *mmfs__ztext_newest(const struct mmfs__engine *e);

/* The plain text's length of MEMORY record R.  Errors: MMFS_CORRUPT (a
** malformed compressed header). */
int mmfs__mem_text_len(const mmfs__rec *r, size_t *len);
/* Writes the plain text of MEMORY record R to DST (mmfs__mem_text_len
** bytes).  Errors: MMFS_CORRUPT (a frame that does not decompress to its
** length, an unknown dictionary), MMFS_INVALID (built without zstd),
** MMFS_NOMEM. */
int mmfs__mem_text_into(const struct mmfs__engine *e, const mmfs__rec *r, uint8_t *dst);
/* *TEXT = the plain text of MEMORY record R: the record's own bytes when
** raw (no copy), else a buffer of the calling thread, valid until its
** next call here (callers use it at once: tokenizing, a Lua string).
** Errors: as mmfs__mem_text_into. */
int mmfs__mem_text(const struct mmfs__engine *e, const mmfs__rec *r, mmfs_slice *text);
/* Copies MEMORY record R into *OUT with its plain text (mmfs__mem_text):
** what a policy's keep or tx:get_memory sees. */
int mmfs__mem_plain(const struct mmfs__engine *e, const mmfs__rec *r, mmfs__rec *out);

/* The writer's side, per handle, used under the writer lock only. */
typedef struct mmfs__zwriter {
    void *cctx;        /* ZSTD_CCtx * */
    void *cdict;       /* ZSTD_CDict * of dict_id */
    uint64_t dict_id;  /* 0: none built */
    uint8_t *buf;      /* this commit's compressed texts */
    size_t cap;
    uint64_t retry_at; /* a training that failed is tried again at this many memories */
} mmfs__zwriter;

/* Whether the writer should train the store's dictionary now: the store
** compresses, has none, and holds enough raw text. */
int mmfs__zw_due(const mmfs__zwriter *zw, const struct mmfs__engine *e);
/* Trains a dictionary from the live memories' texts: *DICT (malloc'd,
** *LEN bytes) gets id *ID.  MMFS_NOTFOUND when zstd could not make one
** from them (tried again later, nothing lost).  Errors: MMFS_NOMEM. */
int mmfs__zw_train(mmfs__zwriter *zw, const struct mmfs__engine *e, uint8_t **dict, size_t *len, uint64_t *id);
/* Compresses the text of each MEMORY command of CMDS[0, N) that is long
** enough and shrinks, with the newest dictionary (none: nothing to do),
** setting MMFS__RF_ZTEXT; their text then points into ZW's buffer until
** the next call.  Errors: MMFS_NOMEM. */
int mmfs__zw_pack(mmfs__zwriter *zw, const struct mmfs__engine *e, mmfs__rec *cmds, size_t n);
void mmfs__zw_free(mmfs__zwriter *zw);

#endif
