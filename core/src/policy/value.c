/*
** value.c: the policy VM's side of the session field codec
** (core/lua/lfields.c, shared with the Lua binding): what the VM adds
** is sessions from records, raising for malformed fields, and charging a
** failed allocation to the policy (MMFS_NOMEM).
*/
#include "pvm.h"

void mmfs__pvm_push_session(lua_State *L, const mmfs__rec *r) {
    mmfs_session s;
    mmfs__rec_session(r, &s);
    if (!mmfs__lf_push_session(L, &s)) luaL_error(L, "policy: malformed session fields in the store");
}

static int enc_nomem(lua_State *L, void *ud) { return mmfs__pvm_nomem(L, (mmfs__policy *)ud); }

mmfs_slice mmfs__pvm_encode_fields(lua_State *L, mmfs__policy *p, int idx) {
    mmfs_slice r;
    mmfs__lf_encode(L, idx, &p->fbuf, enc_nomem, p);
    r.ptr = p->buf;
    r.len = p->buflen;
    return r;
}
