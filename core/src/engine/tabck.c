/*
** tabck.c: what session.c, stream.c and memory.c (documents) share to
** read a checkpoint's mapped tables (mmfs__tabck, engine.h): resolving a
** position to a record of a type, probing a slot table, and whether the
** checkpoint was found damaged.
**
** Invariants:
** - Nothing of the mapped file is read before its block's checksum
**   checked (mmfs__ckf_ok through kv.ck.ckf); a block that fails makes
**   the read see nothing, and the file bad for the engine's life.
** - A position is used only when it resolves to a whole record of the
**   expected type that decodes, inside a segment the checkpoint knows:
**   a table can make a read fail, never point it at other bytes.
*/
#include "engine.h"

const uint8_t *mmfs__tabck_rec(const mmfs__engine *e, uint64_t pos, int type, mmfs__rec *r) {
    const uint8_t *raw = mmfs__ck_rec(&e->kv.ck, pos);
    if (!raw || raw[4] != type) return NULL;
    mmfs__rec tmp;
    if (mmfs__rec_decode(raw, mmfs__raw_len(raw), r ? r : &tmp) != MMFS_OK) return NULL;
    return raw;
}

uint64_t mmfs__tabck_u64(const mmfs__engine *e, const uint8_t *p, int *ok) {
    if (!mmfs__ckf_ok(e->kv.ck.ckf, p, 8)) {
        *ok = 0;
        return 0;
    }
    return mmfs__ld64(p);
}

const uint8_t *mmfs__tabck_probe(const mmfs__engine *e, const uint8_t *slots, size_t mask, size_t esz,
                                 mmfs_slice key,
                                 int (*keyof)(const mmfs__engine *e, const uint8_t *slot, mmfs_slice *key)) {
    if (!slots) return NULL;
    uint64_t h = mmfs__hash(key);
    /* At most every slot once: the writer keeps the load <= 0.5, so an
    ** empty slot ends a probe long before. */
    for (size_t i = h & mask, k = 0; k <= mask; i = (i + 1) & mask, k++) {
        const uint8_t *slot = slots + i * esz;
        if (!mmfs__ckf_ok(e->kv.ck.ckf, slot, esz)) return NULL;
        if (!mmfs__ld64(slot + 8)) return NULL;
        mmfs_slice k2;
        if (mmfs__ld64(slot) == h && keyof(e, slot, &k2) && mmfs__slice_eq(k2, key)) return slot;
    }
    return NULL;
}

int mmfs__tabck_bad(const mmfs__engine *e) {
    const mmfs__tabck *t = &e->tab;
    return (t->s_n || t->t_n || t->d_n) && mmfs__ckf_bad(e->kv.ck.ckf);
}

int mmfs__tabck_attach(mmfs__engine *e, const mmfs__tabck *tab) {
    e->tab = *tab;
    e->sess.live = tab->s_n;
    return mmfs__doc_ck_attach(e);
}
