/*
** test_hmap.c: the engine's hash map (hmap.h) against a simple model: an
** array indexed by key number holding the value each key maps to.  Seeded
** random puts (new keys and replaces), deletes and lookups, thousands of
** them, with the map's own invariants checked from its slots now and then
** (hmap.h: a slot is empty iff its value is 0; every key sits at or after
** its home slot with no empty slot in between; count is the number of
** full slots and at most 0.8 of the capacity).
**
** The map takes the hash from its caller, so besides the real hash (XXH3)
** the runs use bad ones: eight distinct hashes (long runs of collisions,
** where backward-shift deletion does all its work) and hashes whose home
** is the last slots (runs that wrap around the end of the table).
**
** MMFS_TEST_SEED=N runs seed N instead of the fixed seeds.
*/
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

/* A value: the key it is stored under (bytes that may hold NULs, or be
** empty) and which put made it. */
typedef struct tval {
    uint8_t key[24];
    size_t klen;
    uint32_t k;      /* the key's number */
    uint32_t serial; /* which put made it */
} tval;

enum { HASH_REAL, HASH_FEW, HASH_HIGH };

typedef struct model {
    mmfs__hmap map;
    uint32_t nkeys;
    uintptr_t *at; /* at[k]: the value stored under key k, or 0 */
    size_t count;
    tval *pool;
    size_t npool, cappool;
    int hash_kind;
    uint64_t rng;
    unsigned seed;
    size_t step;
} model;

static uint32_t rnd(model *m) { return mmfs_test_rand(&m->rng); }

#define CHECK(m, cond, ...)                                                                   \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            char msg_[256];                                                                   \
            snprintf(msg_, sizeof msg_, __VA_ARGS__);                                         \
            fail_msg("seed %u, hash %d, step %zu: %s (%s)", (m)->seed, (m)->hash_kind, (m)->step, \
                     msg_, #cond);                                                            \
        }                                                                                     \
    } while (0)

/* Key K's bytes: empty for 0; otherwise K itself (4 bytes, little-endian,
** so small keys hold NULs) then 0..8 more bytes, one of them NUL: keys
** differ in length and in binary contents. */
static size_t key_bytes(uint32_t k, uint8_t *out) {
    if (k == 0) return 0;
    size_t n = 4 + k % 9;
    for (size_t i = 0; i < 4; i++) out[i] = (uint8_t)(k >> (8 * i));
    for (size_t i = 4; i < n; i++) out[i] = (uint8_t)(k * 31 + i);
    if (n > 5) out[n - 2] = 0;
    return n;
}

static mmfs_slice val_key(const void *ctx, uintptr_t v) {
    (void)ctx;
    const tval *t = (const tval *)v;
    return mmfs_test_slice(t->key, t->klen);
}

static uint64_t hash_of(const model *m, mmfs_slice key, uint32_t k) {
    switch (m->hash_kind) {
    case HASH_FEW:
        return k % 8; /* home slots 0..7: one long run */
    case HASH_HIGH:
        return ~(uint64_t)0 - k % 5; /* homes at the last five slots: wraps */
    default:
        return mmfs__hash(key);
    }
}

static void model_init(model *m, uint32_t nkeys, size_t maxputs, int hash_kind, unsigned seed) {
    memset(m, 0, sizeof *m);
    mmfs__hmap_init(&m->map, val_key, m);
    m->nkeys = nkeys;
    m->at = calloc(nkeys, sizeof *m->at);
    m->cappool = maxputs;
    m->pool = calloc(maxputs, sizeof *m->pool);
    assert_non_null(m->at);
    assert_non_null(m->pool);
    m->hash_kind = hash_kind;
    m->seed = seed;
    m->rng = 0x2545F4914F6CDD1Dull ^ ((uint64_t)seed * 0x100000001B3ull);
}

static void model_free(model *m) {
    mmfs__hmap_free(&m->map);
    assert_null(m->map.slots);
    assert_int_equal(m->map.count, 0);
    free(m->at);
    free(m->pool);
}

/* Key K as a slice into BUF, and its hash. */
static mmfs_slice key_of(const model *m, uint32_t k, uint8_t *buf, uint64_t *h) {
    mmfs_slice s = mmfs_test_slice(buf, key_bytes(k, buf));
    *h = hash_of(m, s, k);
    return s;
}

static void op_get(model *m, uint32_t k) {
    uint8_t buf[24];
    uint64_t h;
    mmfs_slice key = key_of(m, k, buf, &h);
    uintptr_t got = mmfs__hmap_get(&m->map, key, h);
    CHECK(m, got == m->at[k], "get %u: %#lx, want %#lx", k, (unsigned long)got, (unsigned long)m->at[k]);
}

static void op_put(model *m, uint32_t k) {
    CHECK(m, m->npool < m->cappool, "value pool too small");
    tval *v = &m->pool[m->npool];
    v->klen = key_bytes(k, v->key);
    v->k = k;
    v->serial = (uint32_t)m->npool++;
    uint64_t h;
    uint8_t buf[24];
    mmfs_slice key = key_of(m, k, buf, &h);
    uintptr_t old = 12345;
    int rc = mmfs__hmap_put(&m->map, key, h, (uintptr_t)v, &old);
    CHECK(m, rc == MMFS_OK, "put %u: %s", k, mmfs_errmsg(NULL));
    CHECK(m, old == m->at[k], "put %u: replaced %#lx, want %#lx", k, (unsigned long)old, (unsigned long)m->at[k]);
    if (!m->at[k]) m->count++;
    m->at[k] = (uintptr_t)v;
    CHECK(m, m->map.count == m->count, "count %zu, want %zu", m->map.count, m->count);
}

static void op_del(model *m, uint32_t k) {
    uint8_t buf[24];
    uint64_t h;
    mmfs_slice key = key_of(m, k, buf, &h);
    uintptr_t got = mmfs__hmap_del(&m->map, key, h);
    CHECK(m, got == m->at[k], "del %u: %#lx, want %#lx", k, (unsigned long)got, (unsigned long)m->at[k]);
    if (m->at[k]) m->count--;
    m->at[k] = 0;
    CHECK(m, m->map.count == m->count, "count %zu, want %zu", m->map.count, m->count);
}

/* Every key against the model, and the slot invariants of hmap.h. */
static void check_all(model *m) {
    for (uint32_t k = 0; k < m->nkeys; k++) op_get(m, k);
    const mmfs__hmap *map = &m->map;
    if (!map->slots) {
        CHECK(m, m->count == 0, "no slots with %zu keys", m->count);
        return;
    }
    size_t cap = map->mask + 1, full = 0;
    CHECK(m, (cap & map->mask) == 0, "capacity %zu is not a power of two", cap);
    CHECK(m, map->count * 5 <= cap * 4, "%zu keys in %zu slots is over the 0.8 load", map->count, cap);
    for (size_t i = 0; i < cap; i++) {
        const mmfs__hslot *s = &map->slots[i];
        if (!s->val) continue;
        full++;
        const tval *v = (const tval *)s->val;
        size_t idx = (size_t)(v - m->pool);
        CHECK(m, idx < m->npool, "slot %zu holds a value that was never put", i);
        uint32_t k = v->k;
        mmfs_slice key = mmfs_test_slice(v->key, v->klen);
        CHECK(m, m->at[k] == s->val, "slot %zu holds a replaced or deleted value (key %u, serial %u)", i, k,
              v->serial);
        CHECK(m, s->hash == hash_of(m, key, k), "slot %zu: stored hash is not the key's", i);
        /* No empty slot between the home slot and this one. */
        for (size_t j = (size_t)s->hash & map->mask; j != i; j = (j + 1) & map->mask)
            CHECK(m, map->slots[j].val != 0, "slot %zu: empty slot %zu between it and its home", i, j);
    }
    CHECK(m, full == map->count, "%zu full slots, count says %zu", full, map->count);
}

/* ------------------------------------------------------------------ */

static void run_random(unsigned seed, int hash_kind, uint32_t nkeys, size_t steps) {
    model m;
    model_init(&m, nkeys, steps + 1, hash_kind, seed);
    for (m.step = 0; m.step < steps; m.step++) {
        uint32_t r = rnd(&m) % 100, k = rnd(&m) % nkeys;
        int grow = (m.step / (steps / 6)) % 2 == 0;
        if (r < (grow ? 55u : 25u))
            op_put(&m, k);
        else if (r < 80)
            op_del(&m, k);
        else
            op_get(&m, k);
        if (m.step % 499 == 0) check_all(&m);
    }
    check_all(&m);
    for (uint32_t k = 0; k < nkeys; k++) op_del(&m, (k * 37u) % nkeys); /* nkeys is not a multiple of 37 */
    check_all(&m);
    assert_int_equal(m.map.count, 0);
    model_free(&m);
}

/* The real hash, many keys: grows through several capacities. */
static void test_random_xxh3(void **state) {
    (void)state;
    unsigned s = mmfs_test_env_seed(0);
    if (s) {
        run_random(s, HASH_REAL, 3000, 30000);
        return;
    }
    for (unsigned seed = 1; seed <= 3; seed++) run_random(seed, HASH_REAL, 3000, 30000);
}

/* Eight hashes for every key: each lookup walks a long run, each delete
** shifts a long run back. */
static void test_random_collisions(void **state) {
    (void)state;
    unsigned s = mmfs_test_env_seed(0);
    run_random(s ? s : 21, HASH_FEW, 300, 8000);
}

/* Homes in the last slots: runs wrap around to slot 0. */
static void test_random_wraparound(void **state) {
    (void)state;
    unsigned s = mmfs_test_env_seed(0);
    run_random(s ? s : 31, HASH_HIGH, 300, 8000);
}

/* reserve(N) makes room for N new keys: the next N puts of new keys do
** not move the table (what the engine relies on to put after a step that
** cannot be undone). */
static void test_reserve(void **state) {
    (void)state;
    model m;
    model_init(&m, 2000, 4000, HASH_REAL, 1);
    for (uint32_t k = 0; k < 100; k++) op_put(&m, k);
    for (uint32_t n = 1; n < 1500; n = n * 3 + 1) {
        MMFS_OK_OR_FAIL(mmfs__hmap_reserve(&m.map, n));
        const mmfs__hslot *slots = m.map.slots;
        uint32_t base = (uint32_t)m.count;
        for (uint32_t k = base; k < base + n && k < m.nkeys; k++) {
            m.step = k;
            op_put(&m, k);
            CHECK(&m, m.map.slots == slots, "put %u of %u reserved moved the table", k - base + 1, n);
        }
    }
    check_all(&m);
    /* Replacing never needs room. */
    MMFS_OK_OR_FAIL(mmfs__hmap_reserve(&m.map, 0));
    const mmfs__hslot *slots = m.map.slots;
    for (uint32_t k = 0; k < m.count; k++) op_put(&m, k);
    assert_ptr_equal(m.map.slots, slots);
    check_all(&m);
    model_free(&m);
}

/* An empty map, and one emptied again. */
static void test_empty(void **state) {
    (void)state;
    model m;
    model_init(&m, 16, 64, HASH_REAL, 1);
    check_all(&m); /* no slots yet: every get is 0 */
    op_del(&m, 3);
    for (uint32_t k = 0; k < 16; k++) op_put(&m, k);
    for (uint32_t k = 0; k < 16; k++) op_del(&m, k);
    check_all(&m);
    op_put(&m, 0); /* the empty key */
    check_all(&m);
    model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_random_xxh3),
        cmocka_unit_test(test_random_collisions),
        cmocka_unit_test(test_random_wraparound),
        cmocka_unit_test(test_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
