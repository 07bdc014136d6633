/*
** test_btree.c: the engine's B+tree (base/btree.h) against a
** simple model: an array indexed by key holding the record each key maps
** to.  Seeded random inserts, replaces and deletes (thousands, enough to
** split and merge nodes on every level), with lookups after each step and
** the full iteration order compared now and then; then the patterns that
** stress one side of the tree (ascending and descending runs, emptying
** it completely, interleaved halves).
**
** Records are test structs cast to bytes, never freed before the tree:
** the tree may keep a removed record as a separator (btree.c), as the
** engine relies on records outliving its entries.
**
** MMFS_TEST_SEED=N runs seed N instead of the fixed seeds; a failure
** names the seed and the step.
*/
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btree.h"

/* A record: its key and which put made it (so a replace is visible). */
typedef struct trec {
    uint32_t key;
    uint32_t serial;
} trec;

static int key_cmp(const void *probe, const uint8_t *rec) {
    uint32_t a = *(const uint32_t *)probe, b = ((const trec *)(const void *)rec)->key;
    return a < b ? -1 : a > b;
}

/* The model and the pool of records, for one run. */
typedef struct model {
    mmfs__btree t;
    uint32_t nkeys;        /* keys are 0 .. nkeys-1 */
    const trec **at;       /* at[key]: the record in the tree, or NULL */
    size_t count;          /* keys present */
    trec *pool;            /* every record ever put (outlives the tree) */
    size_t npool, cappool;
    uint64_t rng;
    unsigned seed;
    size_t step;
} model;

static uint32_t rnd(model *m) { return mmfs_test_rand(&m->rng); }

#define CHECK(m, cond, ...)                                                              \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            char msg_[256];                                                              \
            snprintf(msg_, sizeof msg_, __VA_ARGS__);                                    \
            fail_msg("seed %u, step %zu: %s (%s)", (m)->seed, (m)->step, msg_, #cond);  \
        }                                                                                \
    } while (0)

static void model_init(model *m, uint32_t nkeys, size_t maxputs, unsigned seed) {
    memset(m, 0, sizeof *m);
    mmfs__bt_init(&m->t, key_cmp);
    m->nkeys = nkeys;
    m->at = calloc(nkeys, sizeof *m->at);
    m->cappool = maxputs;
    m->pool = calloc(maxputs, sizeof *m->pool);
    assert_non_null(m->at);
    assert_non_null(m->pool);
    m->seed = seed;
    m->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed * 0x100000001B3ull);
    if (!m->rng) m->rng = 1;
}

static void model_free(model *m) {
    mmfs__bt_free(&m->t);
    assert_null(m->t.root);
    assert_int_equal(m->t.count, 0);
    free(m->at);
    free(m->pool);
}

/* put KEY: a new record replaces the old one, whose pointer comes back. */
static void op_put(model *m, uint32_t key) {
    CHECK(m, m->npool < m->cappool, "record pool too small");
    trec *r = &m->pool[m->npool];
    r->key = key;
    r->serial = (uint32_t)m->npool++;
    const uint8_t *old = (const uint8_t *)"not set";
    int rc = mmfs__bt_put(&m->t, &key, (const uint8_t *)r, &old);
    CHECK(m, rc == MMFS_OK, "put %u: %s", key, mmfs_errmsg(NULL));
    CHECK(m, old == (const uint8_t *)m->at[key], "put %u: old record %p, want %p", key, (const void *)old,
          (const void *)m->at[key]);
    if (!m->at[key]) m->count++;
    m->at[key] = r;
    CHECK(m, m->t.count == m->count, "count %zu, want %zu", m->t.count, m->count);
}

static void op_del(model *m, uint32_t key) {
    const uint8_t *got = mmfs__bt_del(&m->t, &key);
    CHECK(m, got == (const uint8_t *)m->at[key], "del %u: returned %p, want %p", key, (const void *)got,
          (const void *)m->at[key]);
    if (m->at[key]) m->count--;
    m->at[key] = NULL;
    CHECK(m, m->t.count == m->count, "count %zu, want %zu", m->t.count, m->count);
}

/* The first key >= K (> K when STRICT) in the model, or nkeys. */
static uint32_t model_next(const model *m, uint32_t k, int strict) {
    uint64_t i = (uint64_t)k + (strict ? 1 : 0);
    while (i < m->nkeys && !m->at[i]) i++;
    return (uint32_t)i;
}

/* seek(PROBE) against the model, then a few next()s. */
static void op_seek(model *m, uint32_t probe, int strict, int steps) {
    mmfs__bt_pos pos;
    const uint8_t *got = mmfs__bt_seek(&m->t, &probe, strict, &pos);
    uint32_t want = model_next(m, probe, strict);
    for (int i = 0;; i++) {
        if (want >= m->nkeys) {
            CHECK(m, got == NULL, "seek %u%s (+%d): got key %u, want the end", probe, strict ? " strict" : "",
                  i, ((const trec *)(const void *)got)->key);
            /* the end is sticky */
            CHECK(m, mmfs__bt_next(&pos) == NULL, "next after the end is not NULL");
            return;
        }
        CHECK(m, got == (const uint8_t *)m->at[want], "seek %u%s (+%d): got %p, want key %u (%p)", probe,
              strict ? " strict" : "", i, (const void *)got, want, (const void *)m->at[want]);
        if (i == steps) return;
        got = mmfs__bt_next(&pos);
        want = model_next(m, want, 1);
    }
}

/* The whole tree in order against the model. */
static void check_all(model *m) {
    mmfs__bt_pos pos;
    const uint8_t *got = mmfs__bt_first(&m->t, &pos);
    size_t n = 0;
    for (uint32_t k = 0; k < m->nkeys; k++) {
        if (!m->at[k]) continue;
        CHECK(m, got == (const uint8_t *)m->at[k], "iteration entry %zu: got %p, want key %u (%p)", n,
              (const void *)got, k, (const void *)m->at[k]);
        got = mmfs__bt_next(&pos);
        n++;
    }
    CHECK(m, got == NULL, "iteration: an entry past the last key (key %u)",
          ((const trec *)(const void *)got)->key);
    CHECK(m, n == m->t.count, "iterated %zu entries, count says %zu", n, m->t.count);
}

/* After inserts only, every node but the root was made by a split into
** halves, so holds at least B/2 entries: the height is as small as the
** count allows, and never more than a full tree of that height holds. */
static void check_height_after_inserts(model *m) {
    size_t n = m->t.count, cap = MMFS__BT_B, low = 2;
    for (int h = 0; h < m->t.height; h++) {
        cap *= MMFS__BT_B;
        if (h > 0) low *= MMFS__BT_B / 2;
    }
    CHECK(m, n <= cap, "height %d is too low for %zu entries", m->t.height, n);
    if (m->t.height > 0)
        CHECK(m, n >= low * (MMFS__BT_B / 2), "height %d is too high for %zu entries", m->t.height, n);
}

/* ------------------------------------------------------------------ */

/* An empty tree: no entries, seeks and deletes find nothing. */
static void test_empty(void **state) {
    (void)state;
    model m;
    model_init(&m, 16, 16, 0);
    mmfs__bt_pos pos;
    uint32_t k = 3;
    assert_null(mmfs__bt_first(&m.t, &pos));
    assert_null(mmfs__bt_next(&pos));
    assert_null(mmfs__bt_seek(&m.t, &k, 0, &pos));
    assert_null(mmfs__bt_del(&m.t, &k));
    op_put(&m, 3);
    op_del(&m, 3);
    op_del(&m, 3);
    check_all(&m);
    assert_int_equal(m.t.height, 0);
    model_free(&m);
}

/* Random puts (half of them replacing), deletes and seeks over a key
** space that keeps a few thousand entries in the tree. */
static void run_random(unsigned seed, uint32_t nkeys, size_t steps) {
    model m;
    int maxh = 0;
    model_init(&m, nkeys, steps + 1, seed);
    for (m.step = 0; m.step < steps; m.step++) {
        uint32_t r = rnd(&m), key = rnd(&m) % nkeys;
        /* Drift between growing and shrinking phases, so the tree both
        ** splits and merges at every level many times. */
        int grow = (m.step / (steps / 8)) % 2 == 0;
        uint32_t put_pct = grow ? 65 : 30;
        if (r % 100 < put_pct)
            op_put(&m, key);
        else if (r % 100 < 90)
            op_del(&m, key);
        else
            op_seek(&m, key, (int)(r & 1), 4);
        if (m.step % 97 == 0) check_all(&m);
        if (m.t.height > maxh) maxh = m.t.height;
    }
    check_all(&m);
    /* The run covered what it is for: internal nodes under the root. */
    CHECK(&m, maxh >= (nkeys > 4096 ? 2 : 1), "the tree never grew past height %d", maxh);
    /* Delete what is left in random order, down to an empty tree. */
    uint32_t *order = malloc(nkeys * sizeof *order);
    assert_non_null(order);
    for (uint32_t k = 0; k < nkeys; k++) order[k] = k;
    for (uint32_t k = nkeys - 1; k > 0; k--) { /* Fisher-Yates */
        uint32_t j = rnd(&m) % (k + 1), t = order[k];
        order[k] = order[j];
        order[j] = t;
    }
    for (uint32_t k = 0; k < nkeys; k++) {
        m.step = steps + k;
        op_del(&m, order[k]);
        if (k % 211 == 0) check_all(&m);
    }
    free(order);
    check_all(&m);
    CHECK(&m, m.t.height == 0, "an empty tree keeps height %d (merges never reached the root)", m.t.height);
    model_free(&m);
}

static void test_random(void **state) {
    (void)state;
    const char *s = getenv("MMFS_TEST_SEED");
    if (s && *s) {
        run_random(mmfs_test_env_seed(0), 8191, 40000);
        return;
    }
    for (unsigned seed = 1; seed <= 3; seed++) run_random(seed, 8191, 40000);
    /* A small key space: the tree hovers around one or two levels, where
    ** the root is split and collapsed over and over. */
    run_random(11, 257, 20000);
}

/* Ascending inserts split only the rightmost nodes (leaving every other
** node half full: enough entries for four levels); ascending deletes then
** empty the leftmost ones first. */
static void test_ascending(void **state) {
    (void)state;
    const uint32_t n = 70000;
    model m;
    model_init(&m, n, n + 1, 0);
    for (uint32_t k = 0; k < n; k++) {
        m.step = k;
        op_put(&m, k);
    }
    check_all(&m);
    check_height_after_inserts(&m);
    assert_int_equal(m.t.height, 3);
    op_seek(&m, 0, 0, 100);
    op_seek(&m, n - 5, 1, 10);
    for (uint32_t k = 0; k < n; k++) {
        m.step = n + k;
        op_del(&m, k);
        if (k % 1009 == 0) {
            check_all(&m);
            op_seek(&m, k, 0, 3);
        }
    }
    check_all(&m);
    assert_int_equal(m.t.height, 0);
    model_free(&m);
}

/* Descending inserts split the leftmost nodes; descending deletes empty
** the rightmost ones. */
static void test_descending(void **state) {
    (void)state;
    const uint32_t n = 20000;
    model m;
    model_init(&m, n, n + 1, 0);
    for (uint32_t k = n; k-- > 0;) {
        m.step = n - k;
        op_put(&m, k);
    }
    check_all(&m);
    check_height_after_inserts(&m);
    for (uint32_t k = n; k-- > 0;) {
        m.step = 2 * n - k;
        op_del(&m, k);
        if (k % 1013 == 0) check_all(&m);
    }
    check_all(&m);
    assert_int_equal(m.t.height, 0);
    model_free(&m);
}

/* Every key, then every other key deleted (each node half empties: the
** merges that need a sibling with room), then replaced and re-inserted,
** then seeks at every present and absent key. */
static void test_halves(void **state) {
    (void)state;
    const uint32_t n = 12000;
    model m;
    model_init(&m, n, 3 * n, mmfs_test_env_seed(5));
    for (uint32_t k = 0; k < n; k++) op_put(&m, (k * 7919u) % n);
    check_all(&m);
    check_height_after_inserts(&m);
    for (uint32_t k = 1; k < n; k += 2) op_del(&m, k);
    check_all(&m);
    for (uint32_t k = 0; k < n; k += 2) op_put(&m, k); /* replaces */
    check_all(&m);
    for (uint32_t k = 1; k < n; k += 2) op_put(&m, k);
    check_all(&m);
    for (uint32_t k = 0; k < n; k += 3) op_del(&m, k);
    check_all(&m);
    for (uint32_t k = 0; k < n; k++) {
        m.step = k;
        op_seek(&m, k, 0, 1);
        op_seek(&m, k, 1, 1);
    }
    model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_ascending),
        cmocka_unit_test(test_descending),
        cmocka_unit_test(test_halves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
