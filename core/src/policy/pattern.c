/*
** pattern.c: string.find, string.match, string.gmatch and string.gsub for
** the policy VM, with Lua 5.x pattern semantics and a bound on the work.
**
** Why our own matcher: the count hook only fires between VM instructions,
** and one call of the stock matcher is one instruction, so a pattern such
** as ("a*"):rep(30) .. "b" against 100 KB of "a" would run for ages where
** no hook can stop it.  This matcher counts its steps (one per pattern
** item tried, one per subject byte a loop looks at) and charges them to the
** same instruction budget as the Lua code, PM_STEPS_PER_INSN steps per
** instruction, in chunks of PM_CHUNK steps: a match that runs past the
** budget raises the budget's error (MMFS_LIMIT) like a loop does.
**
** The language is Lua 5.4's: single-character classes (., %a %c %d %g %l
** %p %s %u %w %x and their complements, %z, %x escapes, [sets] with ranges
** and classes, [^sets]), quantifiers * + - ?, anchors ^ and $, captures
** and position captures (), back references %1-%9, %bxy and %f[set].
** Recursion is bounded by PM_MAXDEPTH ("pattern too complex").
*/
#include "pvm.h"

#include <ctype.h>

#define PM_MAXCAP 32
#define PM_MAXDEPTH 200
#define PM_CHUNK 4096u
#define PM_STEPS_PER_INSN 4u

#define CAP_OPEN (-1)
#define CAP_POS (-2)

typedef struct pm {
    const char *src, *src_end; /* the subject */
    const char *pat_end;       /* end of the pattern */
    lua_State *L;
    mmfs__policy *p;
    int depth; /* recursion depth of match() */
    int level; /* captures so far */
    uint32_t steps; /* steps not yet charged */
    struct {
        const char *init;
        ptrdiff_t len; /* CAP_OPEN, CAP_POS or a length */
    } cap[PM_MAXCAP];
} pm;

/* Charges the steps counted so far; raises when the budget is spent. */
static void pm_flush(pm *m) {
    uint32_t insn = m->steps / PM_STEPS_PER_INSN;
    m->steps -= insn * PM_STEPS_PER_INSN;
    if (insn) mmfs__pvm_charge(m->L, m->p, insn);
}

static inline void pm_step(pm *m, uint32_t n) {
    m->steps += n;
    if (m->steps >= PM_CHUNK) pm_flush(m);
}

static int pm_error(pm *m, const char *msg) { return luaL_error(m->L, "%s", msg); }

/* Does byte C belong to class CL (the letter after '%')? */
static int class_match(int c, int cl) {
    int r;
    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    case 'z': r = (c == 0); break;
    default: return cl == c; /* an escaped character matches itself */
    }
    if (isupper(cl)) r = !r;
    return r != 0;
}

/* The end of the single-character class starting at P. */
static const char *class_end(pm *m, const char *p) {
    char c = *p++;
    if (c == '%') {
        if (p >= m->pat_end) pm_error(m, "malformed pattern (ends with '%')");
        return p + 1;
    }
    if (c == '[') {
        if (p < m->pat_end && *p == '^') p++;
        do { /* the first character after [ or [^ is literal, even ']' */
            if (p >= m->pat_end) pm_error(m, "malformed pattern (missing ']')");
            c = *p++;
            if (c == '%') {
                if (p >= m->pat_end) pm_error(m, "malformed pattern (missing ']')");
                p++;
            }
        } while (p >= m->pat_end || *p != ']');
        return p + 1;
    }
    return p;
}

/* Does byte C match the set from P (at '[') to EC (at its ']')? */
static int set_match(int c, const char *p, const char *ec) {
    int hit = 1;
    p++;
    if (*p == '^') {
        hit = 0;
        p++;
    }
    while (p < ec) {
        if (*p == '%') {
            if (class_match(c, (unsigned char)p[1])) return hit;
            p += 2;
        } else if (p + 2 < ec && p[1] == '-') {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2]) return hit;
            p += 3;
        } else {
            if ((unsigned char)*p == c) return hit;
            p++;
        }
    }
    return !hit;
}

/* Does the subject byte at S match the class from P to EP? */
static int single_match(pm *m, const char *s, const char *p, const char *ep) {
    int c;
    if (s >= m->src_end) return 0;
    c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case '%': return class_match(c, (unsigned char)p[1]);
    case '[': return set_match(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

static const char *match(pm *m, const char *s, const char *p);

static const char *match_balance(pm *m, const char *s, const char *p) {
    int open, close, depth = 1;
    if (p + 1 >= m->pat_end) pm_error(m, "malformed pattern (missing arguments to '%b')");
    if (s >= m->src_end || *s != *p) return NULL;
    open = *p;
    close = p[1];
    while (++s < m->src_end) {
        pm_step(m, 1);
        if (*s == close) {
            if (--depth == 0) return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

/* Greedy: the longest run of the class first, then shorter ones. */
static const char *max_expand(pm *m, const char *s, const char *p, const char *ep) {
    ptrdiff_t i = 0;
    while (single_match(m, s + i, p, ep)) {
        i++;
        pm_step(m, 1);
    }
    for (; i >= 0; i--) {
        const char *r = match(m, s + i, ep + 1);
        if (r) return r;
    }
    return NULL;
}

/* Lazy: the shortest run first. */
static const char *min_expand(pm *m, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *r = match(m, s, ep + 1);
        if (r) return r;
        if (!single_match(m, s, p, ep)) return NULL;
        s++;
        pm_step(m, 1);
    }
}

static const char *start_capture(pm *m, const char *s, const char *p, ptrdiff_t what) {
    const char *r;
    if (m->level >= PM_MAXCAP) pm_error(m, "too many captures");
    m->cap[m->level].init = s;
    m->cap[m->level].len = what;
    m->level++;
    if ((r = match(m, s, p)) == NULL) m->level--;
    return r;
}

static const char *end_capture(pm *m, const char *s, const char *p) {
    int l = m->level - 1;
    const char *r;
    while (l >= 0 && m->cap[l].len != CAP_OPEN) l--;
    if (l < 0) pm_error(m, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].init;
    if ((r = match(m, s, p)) == NULL) m->cap[l].len = CAP_OPEN;
    return r;
}

/* %1-%9: the text of an earlier closed capture, again. */
static const char *match_backref(pm *m, const char *s, int c) {
    int l = c - '1';
    size_t len;
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_OPEN)
        return luaL_error(m->L, "invalid capture index %%%d", l + 1), NULL;
    len = (size_t)m->cap[l].len;
    pm_step(m, (uint32_t)(len / 16 + 1));
    if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[l].init, s, len) == 0) return s + len;
    return NULL;
}

/* Matches pattern P against the subject at S: the end of the match, or
** NULL.  Tail positions loop instead of recursing. */
static const char *match_body(pm *m, const char *s, const char *p) {
    for (;;) {
        const char *ep;
        pm_step(m, 1);
        if (p >= m->pat_end) return s;
        switch (*p) {
        case '(':
            if (p + 1 < m->pat_end && p[1] == ')') return start_capture(m, s, p + 2, CAP_POS);
            return start_capture(m, s, p + 1, CAP_OPEN);
        case ')':
            return end_capture(m, s, p + 1);
        case '$':
            if (p + 1 == m->pat_end) return s == m->src_end ? s : NULL;
            break;
        case '%':
            if (p + 1 < m->pat_end) {
                if (p[1] == 'b') {
                    s = match_balance(m, s, p + 2);
                    if (!s) return NULL;
                    p += 4;
                    continue;
                }
                if (p[1] == 'f') {
                    int prev, cur;
                    p += 2;
                    if (p >= m->pat_end || *p != '[')
                        pm_error(m, "missing '[' after '%f' in pattern");
                    ep = class_end(m, p);
                    prev = s == m->src ? 0 : (unsigned char)s[-1];
                    cur = s < m->src_end ? (unsigned char)*s : 0;
                    if (set_match(prev, p, ep - 1) || !set_match(cur, p, ep - 1)) return NULL;
                    p = ep;
                    continue;
                }
                if (p[1] >= '0' && p[1] <= '9') {
                    s = match_backref(m, s, p[1]);
                    if (!s) return NULL;
                    p += 2;
                    continue;
                }
            }
            break;
        default:
            break;
        }
        /* a single-character class, maybe with a quantifier */
        ep = class_end(m, p);
        {
            int q = ep < m->pat_end ? *ep : 0;
            if (!single_match(m, s, p, ep)) {
                if (q == '*' || q == '?' || q == '-') { /* zero repetitions are fine */
                    p = ep + 1;
                    continue;
                }
                return NULL;
            }
            switch (q) {
            case '?': {
                const char *r = match(m, s + 1, ep + 1);
                if (r) return r;
                p = ep + 1;
                continue;
            }
            case '+': return max_expand(m, s + 1, p, ep);
            case '*': return max_expand(m, s, p, ep);
            case '-': return min_expand(m, s, p, ep);
            default:
                s++;
                p = ep;
                continue;
            }
        }
    }
}

static const char *match(pm *m, const char *s, const char *p) {
    const char *r;
    if (++m->depth > PM_MAXDEPTH) pm_error(m, "pattern too complex");
    r = match_body(m, s, p);
    m->depth--;
    return r;
}

/* ----------------------------------------------------------- captures */

static void push_capture(pm *m, int i, const char *s, const char *e) {
    if (i >= m->level) {
        if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s)); /* the whole match */
        return;
    }
    if (m->cap[i].len == CAP_OPEN) luaL_error(m->L, "unfinished capture");
    if (m->cap[i].len == CAP_POS)
        lua_pushinteger(m->L, (lua_Integer)(m->cap[i].init - m->src + 1));
    else
        lua_pushlstring(m->L, m->cap[i].init, (size_t)m->cap[i].len);
}

/* Pushes the captures (the whole match when there are none, if S is set);
** returns how many. */
static int push_captures(pm *m, const char *s, const char *e) {
    int n = (m->level == 0 && s) ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++) push_capture(m, i, s, e);
    return n;
}

static void pm_init(pm *m, lua_State *L, const char *s, size_t ls, const char *pat, size_t lp) {
    m->L = L;
    m->p = (mmfs__policy *)lua_touserdata(L, lua_upvalueindex(1));
    m->src = s;
    m->src_end = s + ls;
    m->pat_end = pat + lp;
    m->depth = 0;
    m->level = 0;
    m->steps = 0;
}

/* The start position of argument ARG (default 1) as a 0-based offset,
** Lua 5.4 style; returns LS + 1 for a position past the end. */
static size_t start_pos(lua_State *L, int arg, size_t ls) {
    lua_Integer pos = luaL_optinteger(L, arg, 1);
    if (pos > 0) return (size_t)pos > ls + 1 ? ls + 1 : (size_t)pos - 1;
    if (pos == 0) return 0;
    if ((size_t)(-pos) > ls) return 0;
    return (size_t)((lua_Integer)ls + pos);
}

static int has_specials(const char *p, size_t lp) {
    for (size_t i = 0; i < lp; i++)
        if (strchr("^$*+?.([%-", p[i]) && p[i] != '\0') return 1;
    return 0;
}

static int find_aux(lua_State *L, int find) {
    size_t ls, lp, init;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *pat = luaL_checklstring(L, 2, &lp);
    pm m;
    init = start_pos(L, 3, ls);
    if (init > ls) { /* past the end */
        lua_pushnil(L);
        return 1;
    }
    pm_init(&m, L, s, ls, pat, lp);
    if (find && (lua_toboolean(L, 4) || !has_specials(pat, lp))) {
        const char *hit = lp == 0 ? s + init : memmem(s + init, ls - init, pat, lp);
        pm_step(&m, (uint32_t)((ls - init) / 64 + 1));
        pm_flush(&m);
        if (hit) {
            lua_pushinteger(L, (lua_Integer)(hit - s + 1));
            lua_pushinteger(L, (lua_Integer)(hit - s + (ptrdiff_t)lp));
            return 2;
        }
    } else {
        const char *s1 = s + init;
        int anchor = lp > 0 && *pat == '^';
        if (anchor) {
            pat++;
            lp--;
        }
        do {
            const char *e;
            m.level = 0;
            m.depth = 0;
            if ((e = match(&m, s1, pat)) != NULL) {
                pm_flush(&m);
                if (find) {
                    lua_pushinteger(L, (lua_Integer)(s1 - s + 1));
                    lua_pushinteger(L, (lua_Integer)(e - s));
                    return push_captures(&m, NULL, NULL) + 2;
                }
                return push_captures(&m, s1, e);
            }
        } while (s1++ < m.src_end && !anchor);
        pm_flush(&m);
    }
    lua_pushnil(L);
    return 1;
}

static int str_find(lua_State *L) { return find_aux(L, 1); }
static int str_match(lua_State *L) { return find_aux(L, 0); }

/* gmatch's iterator.  Upvalues: 1 the policy, 2 subject, 3 pattern,
** 4 next offset, 5 end offset of the last match (-1: none). */
static int gmatch_next(lua_State *L) {
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(2), &ls);
    const char *pat = lua_tolstring(L, lua_upvalueindex(3), &lp);
    lua_Integer pos = lua_tointeger(L, lua_upvalueindex(4));
    lua_Integer last = lua_tointeger(L, lua_upvalueindex(5));
    pm m;
    pm_init(&m, L, s, ls, pat, lp);
    for (const char *src = s + pos; src <= m.src_end; src++) {
        const char *e;
        m.level = 0;
        m.depth = 0;
        if ((e = match(&m, src, pat)) != NULL && (last < 0 || e != s + last)) {
            pm_flush(&m);
            lua_pushinteger(L, (lua_Integer)(e - s));
            lua_replace(L, lua_upvalueindex(4));
            lua_pushinteger(L, (lua_Integer)(e - s));
            lua_replace(L, lua_upvalueindex(5));
            return push_captures(&m, src, e);
        }
    }
    pm_flush(&m);
    lua_pushinteger(L, (lua_Integer)ls + 1);
    lua_replace(L, lua_upvalueindex(4));
    return 0;
}

static int str_gmatch(lua_State *L) {
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = start_pos(L, 3, ls);
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_pushinteger(L, (lua_Integer)init);
    lua_pushinteger(L, -1);
    lua_pushcclosure(L, gmatch_next, 5);
    return 1;
}

/* Appends the replacement string at index 3 for the match S..E. */
static void add_string(pm *m, luaL_Buffer *b, const char *s, const char *e) {
    size_t l;
    const char *r = lua_tolstring(m->L, 3, &l);
    pm_step(m, (uint32_t)(l + 1));
    for (size_t i = 0; i < l; i++) {
        if (r[i] != '%') {
            luaL_addchar(b, r[i]);
            continue;
        }
        i++;
        if (i < l && r[i] == '%') {
            luaL_addchar(b, '%');
        } else if (i < l && isdigit((unsigned char)r[i])) {
            if (r[i] == '0') {
                luaL_addlstring(b, s, (size_t)(e - s));
            } else {
                push_capture(m, r[i] - '1', s, e);
                lua_tostring(m->L, -1); /* a position capture is a number */
                luaL_addvalue(b);
            }
        } else {
            luaL_error(m->L, "invalid use of '%%' in replacement string");
        }
    }
}

/* Appends the replacement for the match S..E (repl of type TR at 3). */
static void add_value(pm *m, luaL_Buffer *b, const char *s, const char *e, int tr) {
    lua_State *L = m->L;
    if (tr == LUA_TFUNCTION) {
        int n;
        pm_flush(m);
        lua_pushvalue(L, 3);
        n = push_captures(m, s, e);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        push_capture(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_string(m, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int str_gsub(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *pat = luaL_checklstring(L, 2, &lp);
    const char *src = s, *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1), n = 0;
    int anchor = lp > 0 && *pat == '^';
    luaL_Buffer b;
    pm m;
    luaL_argcheck(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                  "string/function/table expected");
    if (anchor) {
        pat++;
        lp--;
    }
    lua_settop(L, 4);
    pm_init(&m, L, s, ls, pat, lp);
    luaL_buffinit(L, &b);
    while (n < max_n) {
        const char *e;
        m.level = 0;
        m.depth = 0;
        if ((e = match(&m, src, pat)) != NULL && e != lastmatch) {
            n++;
            add_value(&m, &b, src, e, tr);
            src = lastmatch = e;
        } else if (src < m.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor) break;
    }
    pm_flush(&m);
    luaL_addlstring(&b, src, (size_t)(m.src_end - src));
    luaL_pushresult(&b);
    lua_pushinteger(L, n);
    return 2;
}

void mmfs__pvm_open_patterns(lua_State *L, mmfs__policy *p) {
    static const luaL_Reg fns[] = {
        {"find", str_find}, {"match", str_match}, {"gmatch", str_gmatch}, {"gsub", str_gsub}, {NULL, NULL}};
    pc_setfuncs(L, fns, p);
}
