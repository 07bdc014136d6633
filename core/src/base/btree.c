/*
** btree.c: the ordered index of the engine's modules: a B+tree of record
** pointers, ordered by the owner's comparison (btree.h).
**
** Invariants: every node but the root holds 1..MMFS__BT_B entries
** (leaves may fall under B/4 only when no sibling can absorb them); all
** leaves are at depth height; in an internal node, e[i] (i >= 1) is <=
** every entry under kid[i] and > every entry under kid[i-1] (e[0] is
** unused); entries are unique under the tree's comparison.  Inserts split
** full nodes on the way down, so a failed allocation leaves a valid tree;
** deletes merge an underfull node into a sibling on the way back up.
*/
#include "btree.h"

#include <stdlib.h>
#include <string.h>

struct mmfs__bt_node {
    int n;
    const uint8_t *e[MMFS__BT_B];
    mmfs__bt_node *kid[]; /* internal nodes only: MMFS__BT_B */
};

static mmfs__bt_node *bt_node_new(int leaf) {
    size_t sz = sizeof(mmfs__bt_node) + (leaf ? 0 : MMFS__BT_B * sizeof(mmfs__bt_node *));
    mmfs__bt_node *x = malloc(sz);
    if (x) x->n = 0;
    return x;
}

void mmfs__bt_init(mmfs__btree *t, mmfs__bt_cmp cmp) {
    t->root = NULL;
    t->height = 0;
    t->count = 0;
    t->cmp = cmp;
}

static void bt_free_node(mmfs__bt_node *x, int lvl) {
    if (lvl > 0)
        for (int i = 0; i < x->n; i++) bt_free_node(x->kid[i], lvl - 1);
    free(x);
}

void mmfs__bt_free(mmfs__btree *t) {
    if (t->root) bt_free_node(t->root, t->height);
    t->root = NULL;
    t->height = 0;
    t->count = 0;
}

/* In internal node X: the child whose range holds PROBE (the last i >= 1
** with e[i] <= PROBE, else 0). */
static int bt_child(const mmfs__btree *t, const mmfs__bt_node *x, const void *probe) {
    int lo = 1, hi = x->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (t->cmp(probe, x->e[mid]) < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo - 1;
}

/* In leaf X: the first i with e[i] >= PROBE (> PROBE when STRICT). */
static int bt_lower(const mmfs__btree *t, const mmfs__bt_node *x, const void *probe, int strict) {
    int lo = 0, hi = x->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = t->cmp(probe, x->e[mid]);
        if (strict ? c < 0 : c <= 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Moves the upper half of full child I of X into RIGHT (a new node of
** the same kind) and links RIGHT after it.  X is not full. */
static void bt_split_child(mmfs__bt_node *x, int i, mmfs__bt_node *right, int leaf) {
    mmfs__bt_node *c = x->kid[i];
    int h = MMFS__BT_B / 2;
    right->n = c->n - h;
    memcpy(right->e, c->e + h, (size_t)right->n * sizeof c->e[0]);
    if (!leaf) memcpy(right->kid, c->kid + h, (size_t)right->n * sizeof c->kid[0]);
    c->n = h;
    memmove(x->e + i + 2, x->e + i + 1, (size_t)(x->n - i - 1) * sizeof x->e[0]);
    memmove(x->kid + i + 2, x->kid + i + 1, (size_t)(x->n - i - 1) * sizeof x->kid[0]);
    x->e[i + 1] = right->e[0];
    x->kid[i + 1] = right;
    x->n++;
}

int mmfs__bt_put(mmfs__btree *t, const void *probe, const uint8_t *rec, const uint8_t **old) {
    if (old) *old = NULL;
    if (!t->root) {
        t->root = bt_node_new(1);
        if (!t->root) return mmfs__err(MMFS_NOMEM, "engine: out of memory (index node)");
        t->height = 0;
    }
    if (t->root->n == MMFS__BT_B) {
        if (t->height + 2 >= MMFS__BT_MAXH) return mmfs__err(MMFS_NOMEM, "engine: index too deep");
        mmfs__bt_node *nr = bt_node_new(0), *r = bt_node_new(t->height == 0);
        if (!nr || !r) {
            free(nr);
            free(r);
            return mmfs__err(MMFS_NOMEM, "engine: out of memory (index node)");
        }
        nr->n = 1;
        nr->kid[0] = t->root;
        nr->e[0] = t->root->e[0];
        bt_split_child(nr, 0, r, t->height == 0);
        t->root = nr;
        t->height++;
    }
    mmfs__bt_node *x = t->root;
    for (int lvl = t->height; lvl > 0; lvl--) {
        int i = bt_child(t, x, probe);
        if (x->kid[i]->n == MMFS__BT_B) {
            mmfs__bt_node *r = bt_node_new(lvl == 1);
            if (!r) return mmfs__err(MMFS_NOMEM, "engine: out of memory (index node)");
            bt_split_child(x, i, r, lvl == 1);
            if (t->cmp(probe, x->e[i + 1]) >= 0) i++;
        }
        x = x->kid[i];
    }
    int pos = bt_lower(t, x, probe, 0);
    if (pos < x->n && t->cmp(probe, x->e[pos]) == 0) {
        if (old) *old = x->e[pos];
        x->e[pos] = rec;
        return MMFS_OK;
    }
    memmove(x->e + pos + 1, x->e + pos, (size_t)(x->n - pos) * sizeof x->e[0]);
    x->e[pos] = rec;
    x->n++;
    t->count++;
    return MMFS_OK;
}

/* Appends kid I+1 of X to kid I and drops it from X. */
static void bt_merge(mmfs__bt_node *x, int i, int leaf) {
    mmfs__bt_node *l = x->kid[i], *r = x->kid[i + 1];
    if (!leaf) r->e[0] = x->e[i + 1]; /* its lower bound becomes a separator in L */
    memcpy(l->e + l->n, r->e, (size_t)r->n * sizeof r->e[0]);
    if (!leaf) memcpy(l->kid + l->n, r->kid, (size_t)r->n * sizeof r->kid[0]);
    l->n += r->n;
    free(r);
    memmove(x->e + i + 1, x->e + i + 2, (size_t)(x->n - i - 2) * sizeof x->e[0]);
    memmove(x->kid + i + 1, x->kid + i + 2, (size_t)(x->n - i - 2) * sizeof x->kid[0]);
    x->n--;
}

static const uint8_t *bt_del_rec(mmfs__btree *t, mmfs__bt_node *x, int lvl, const void *probe) {
    if (lvl == 0) {
        int pos = bt_lower(t, x, probe, 0);
        if (pos >= x->n || t->cmp(probe, x->e[pos]) != 0) return NULL;
        const uint8_t *r = x->e[pos];
        memmove(x->e + pos, x->e + pos + 1, (size_t)(x->n - pos - 1) * sizeof x->e[0]);
        x->n--;
        return r;
    }
    int i = bt_child(t, x, probe);
    const uint8_t *r = bt_del_rec(t, x->kid[i], lvl - 1, probe);
    if (r && x->kid[i]->n < MMFS__BT_B / 4) {
        int leaf = lvl == 1;
        if (i + 1 < x->n && x->kid[i]->n + x->kid[i + 1]->n <= MMFS__BT_B)
            bt_merge(x, i, leaf);
        else if (i > 0 && x->kid[i - 1]->n + x->kid[i]->n <= MMFS__BT_B)
            bt_merge(x, i - 1, leaf);
    }
    return r;
}

const uint8_t *mmfs__bt_del(mmfs__btree *t, const void *probe) {
    if (!t->root) return NULL;
    const uint8_t *r = bt_del_rec(t, t->root, t->height, probe);
    if (!r) return NULL;
    t->count--;
    while (t->height > 0 && t->root->n == 1) {
        mmfs__bt_node *old = t->root;
        t->root = old->kid[0];
        free(old);
        t->height--;
    }
    return r;
}

/* Moves *POS forward past exhausted leaves; returns its entry or NULL. */
static const uint8_t *bt_settle(mmfs__bt_pos *pos) {
    for (;;) {
        mmfs__bt_node *x = pos->node[0];
        if (pos->idx[0] < x->n) return x->e[pos->idx[0]];
        int l = 1;
        while (l <= pos->height && pos->idx[l] + 1 >= pos->node[l]->n) l++;
        if (l > pos->height) {
            pos->idx[0] = x->n; /* stays at the end */
            return NULL;
        }
        pos->idx[l]++;
        for (; l > 0; l--) {
            pos->node[l - 1] = pos->node[l]->kid[pos->idx[l]];
            pos->idx[l - 1] = 0;
        }
    }
}

/* Descends to the leaf position of PROBE (the first entry when PROBE is
** NULL), filling POS; the entry there, or NULL past the end. */
static const uint8_t *bt_descend(const mmfs__btree *t, const void *probe, int strict, mmfs__bt_pos *pos) {
    if (!t->root) {
        pos->height = -1;
        return NULL;
    }
    pos->height = t->height;
    mmfs__bt_node *x = t->root;
    for (int lvl = t->height; lvl > 0; lvl--) {
        int i = probe ? bt_child(t, x, probe) : 0;
        pos->node[lvl] = x;
        pos->idx[lvl] = i;
        x = x->kid[i];
    }
    pos->node[0] = x;
    pos->idx[0] = probe ? bt_lower(t, x, probe, strict) : 0;
    return bt_settle(pos);
}

const uint8_t *mmfs__bt_seek(const mmfs__btree *t, const void *probe, int strict,
                             mmfs__bt_pos *pos) {
    return bt_descend(t, probe, strict, pos);
}

const uint8_t *mmfs__bt_first(const mmfs__btree *t, mmfs__bt_pos *pos) {
    return bt_descend(t, NULL, 0, pos);
}

const uint8_t *mmfs__bt_next(mmfs__bt_pos *pos) {
    if (pos->height < 0) return NULL;
    if (pos->idx[0] < pos->node[0]->n) pos->idx[0]++;
    return bt_settle(pos);
}
