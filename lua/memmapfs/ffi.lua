--- memmapfs.ffi: the LuaJIT FFI binding of memmapfs.
--
--     local memmapfs = require "memmapfs.ffi"
--     local db = assert(memmapfs.open("agent.store", { sync = "batch" }))
--
-- The same API, return conventions and argument errors as require
-- "memmapfs" (lua/memmapfs/init.lua over the C module memmapfs.core), over
-- the shared library libmemmapfs.so through LuaJIT's FFI instead of a
-- compiled module: nothing to build per Lua, only the library to find.
-- Every method returns a truthy value on success and nil, message, CODE on
-- failure; wrong argument types raise "bad argument #n to 'method' (...)".
--
-- Finding the library, first match wins:
--   1. $MMFS_LIBRARY: the path of the library file;
--   2. libmemmapfs.so next to this file, then in the lib directories of
--      the prefix it is installed under (PREFIX/share/lua/5.1/memmapfs/ ->
--      PREFIX/lib, PREFIX/lib/<multiarch>, PREFIX/lib64);
--   3. the dynamic loader's own search: libmemmapfs.so, libmemmapfs.so.0
--      (LD_LIBRARY_PATH, ldconfig's cache);
--   4. the C module memmapfs/core.so on package.cpath (what a LuaRocks
--      install provides): it exports the same C API.
--
-- Invariants:
-- - A handle's C pointer (field h) is nil once closed; methods on a closed
--   handle return nil, msg, "CLOSED" after checking their arguments.
-- - Every child (reader, subscription, kv iterator, batch) is registered in
--   its store's `children` set while open and holds its store object, so a
--   store is never collected before its children.  Closing a store closes
--   its children first (their C handles must not outlive it).
-- - Finalizers: each handle carries an anchor cdata whose ffi.gc finalizer
--   closes it.  A finalizer closure never references the object that holds
--   its anchor (LuaJIT's finalizer table has weak keys but strong values,
--   so that would keep the anchor alive forever): it references a separate
--   state table.  When a store and its children die in the same cycle, the
--   finalizers run in any order; both paths are idempotent.
-- - Scratch cdata (slices, out-parameters) are module-level and reused: a
--   call into the library never calls back into this Lua state.

local ffi = require "ffi"
local common = require "memmapfs.common"

local C = ffi.C
local type, tostring, tonumber, error, pcall, pairs, rawget, select, setmetatable =
  type, tostring, tonumber, error, pcall, pairs, rawget, select, setmetatable
local floor, huge = math.floor, math.huge
local concat = table.concat
local sbyte, schar, sfind, ssub, sformat = string.byte, string.char, string.find, string.sub,
  string.format
local getinfo = debug.getinfo
local unpack = rawget(table, "unpack") or rawget(_G, "unpack") -- 5.1: a global

-- The declarations mirror core/include/memmapfs.h (tests/ffi/layout.c
-- checks the struct layouts).  mmfs_slice's pointer is declared const
-- char * (same layout as const void *) so that a Lua string can be
-- assigned to it and ffi.string can read it.  They are made once per Lua
-- state: loading this file again (a cleared package.loaded, OpenResty's
-- lua_code_cache off) must not redefine them, which LuaJIT refuses.
local declared = pcall(ffi.typeof, "struct mmfs_store_stats")
if not declared then ffi.cdef [[
typedef struct mmfs_db mmfs_db;
typedef struct mmfs_slice { const char *ptr; size_t len; } mmfs_slice;

const char *mmfs_err_name(int status);
const char *mmfs_strerror(int status);
const char *mmfs_errmsg(const mmfs_db *db);
void mmfs_free(void *list);

typedef struct mmfs_options {
  int sync; int sync_ms; int checksum;
  const void *key; size_t key_len;
  int readonly; int create; int lock_timeout_ms;
  uint64_t segment_size;
  mmfs_slice policy;
  uint64_t hook_budget;
  int repair;
  const char *language;
  uint64_t checkpoint_bytes;
  const char *compress;
} mmfs_options;
void mmfs_options_init(mmfs_options *o);
int mmfs_open(const char *dir, const mmfs_options *o, mmfs_db **out);
int mmfs_close(mmfs_db *db);

typedef struct mmfs_memory_opts {
  int has_created_at; int64_t created_at; mmfs_slice route;
} mmfs_memory_opts;
typedef struct mmfs_memory {
  uint64_t id; int64_t created_at; double score;
  mmfs_slice text; mmfs_slice route;
  size_t ntags; const mmfs_slice *tags;
} mmfs_memory;
typedef struct mmfs_memories { size_t count; mmfs_memory *items; } mmfs_memories;
typedef struct mmfs_filter {
  size_t limit; size_t offset; mmfs_slice route;
  const mmfs_slice *tags; size_t ntags;
  int has_since; int64_t since; int has_before; int64_t before;
  const mmfs_slice *tags_any; size_t ntags_any;
} mmfs_filter;
int mmfs_append_memory(mmfs_db *db, mmfs_slice text, const mmfs_slice *tags, size_t ntags,
                       const mmfs_memory_opts *opts, uint64_t *id);
int mmfs_get_memory(mmfs_db *db, uint64_t id, mmfs_memory **out);
int mmfs_search_memory(mmfs_db *db, mmfs_slice query, const mmfs_filter *f, mmfs_memories **out);
int mmfs_list_memories(mmfs_db *db, const mmfs_filter *f, mmfs_memories **out);
typedef struct mmfs_snippet_opts {
  int has_marks; mmfs_slice mark_open, mark_close; size_t bytes;
} mmfs_snippet_opts;
int mmfs_snippet(mmfs_db *db, mmfs_slice query, mmfs_slice text, const mmfs_snippet_opts *o,
                 char **out, size_t *len);
int mmfs_delete_memory(mmfs_db *db, uint64_t id, int *deleted);

int mmfs_set_kv(mmfs_db *db, mmfs_slice key, mmfs_slice value);
int mmfs_get_kv(mmfs_db *db, mmfs_slice key, mmfs_slice *value);
int mmfs_delete_kv(mmfs_db *db, mmfs_slice key, int *deleted);
typedef struct mmfs_kv_iter mmfs_kv_iter;
int mmfs_kv_iter_open(mmfs_db *db, mmfs_slice prefix, mmfs_kv_iter **out);
int mmfs_kv_iter_next(mmfs_kv_iter *it, mmfs_slice *key, mmfs_slice *value);
void mmfs_kv_iter_close(mmfs_kv_iter *it);

typedef struct mmfs_session {
  mmfs_slice id; int has_intent; mmfs_slice intent_id;
  int has_created_at; int64_t created_at;
  int has_payload; mmfs_slice payload; mmfs_slice fields;
} mmfs_session;
typedef struct mmfs_sessions { size_t count; mmfs_session *items; } mmfs_sessions;
int mmfs_put_session(mmfs_db *db, const mmfs_session *s);
int mmfs_get_session(mmfs_db *db, mmfs_slice id, mmfs_session *out);
int mmfs_delete_session(mmfs_db *db, mmfs_slice id, int *deleted);
int mmfs_list_sessions(mmfs_db *db, size_t limit, mmfs_sessions **out);
int mmfs_list_by_intent(mmfs_db *db, mmfs_slice intent_id, size_t limit, mmfs_sessions **out);

int mmfs_append_stream(mmfs_db *db, mmfs_slice key, mmfs_slice bytes);
int mmfs_stream_size(mmfs_db *db, mmfs_slice key, uint64_t *size);
typedef struct mmfs_reader mmfs_reader;
int mmfs_open_read(mmfs_db *db, mmfs_slice key, mmfs_reader **out);
int mmfs_reader_peek(mmfs_reader *r, mmfs_slice *chunk);
int mmfs_reader_skip(mmfs_reader *r, uint64_t n);
int mmfs_reader_seek(mmfs_reader *r, uint64_t offset);
uint64_t mmfs_reader_tell(const mmfs_reader *r);
uint64_t mmfs_reader_size(const mmfs_reader *r);
void mmfs_reader_close(mmfs_reader *r);

typedef struct mmfs_doc_hit { mmfs_slice key; double score; } mmfs_doc_hit;
typedef struct mmfs_doc_hits { size_t count; mmfs_doc_hit *items; } mmfs_doc_hits;
int mmfs_index(mmfs_db *db, mmfs_slice key, mmfs_slice text);
int mmfs_unindex(mmfs_db *db, mmfs_slice key, int *deleted);
int mmfs_search(mmfs_db *db, mmfs_slice query, size_t limit, mmfs_doc_hits **out);

int mmfs_update_state(mmfs_db *db, mmfs_slice value, uint64_t *version);
int mmfs_get_state(mmfs_db *db, mmfs_slice *value, uint64_t *version);
typedef struct mmfs_sub mmfs_sub;
int mmfs_subscribe_state(mmfs_db *db, mmfs_sub **out);
int mmfs_sub_next(mmfs_sub *s, int timeout_ms, mmfs_slice *value, uint64_t *version);
int mmfs_sub_fd(mmfs_sub *s);
void mmfs_sub_close(mmfs_sub *s);

typedef struct mmfs_batch mmfs_batch;
int mmfs_batch_begin(mmfs_db *db, mmfs_batch **out);
int mmfs_batch_append_memory(mmfs_batch *b, mmfs_slice text, const mmfs_slice *tags,
                             size_t ntags, const mmfs_memory_opts *opts);
int mmfs_batch_delete_memory(mmfs_batch *b, uint64_t id);
int mmfs_batch_set_kv(mmfs_batch *b, mmfs_slice key, mmfs_slice value);
int mmfs_batch_delete_kv(mmfs_batch *b, mmfs_slice key);
int mmfs_batch_put_session(mmfs_batch *b, const mmfs_session *s);
int mmfs_batch_delete_session(mmfs_batch *b, mmfs_slice id);
int mmfs_batch_append_stream(mmfs_batch *b, mmfs_slice key, mmfs_slice bytes);
int mmfs_batch_index(mmfs_batch *b, mmfs_slice key, mmfs_slice text);
int mmfs_batch_unindex(mmfs_batch *b, mmfs_slice key);
int mmfs_batch_update_state(mmfs_batch *b, mmfs_slice value);
int mmfs_batch_commit(mmfs_batch *b, uint64_t **ids, size_t *nids);
void mmfs_batch_abort(mmfs_batch *b);

int mmfs_set_policy(mmfs_db *db, mmfs_slice source);
int mmfs_get_policy(mmfs_db *db, mmfs_slice *source);

int mmfs_sync(mmfs_db *db);
int mmfs_refresh(mmfs_db *db);
const char *mmfs_path(const mmfs_db *db);
int mmfs_verify(mmfs_db *db);
typedef struct mmfs_store_stats {
  uint64_t memories, kv, sessions, streams, documents, log_bytes, live_bytes,
           dead_bytes, lsn, durable_lsn, state_version, segments, checkpoint_lsn, compacting,
           checkpoint_dropped,
           index_segments;
} mmfs_store_stats;
int mmfs_stats(mmfs_db *db, mmfs_store_stats *out);
int mmfs_checkpoint(mmfs_db *db);
typedef struct mmfs_compact_opts { int64_t now; } mmfs_compact_opts;
typedef struct mmfs_compact_result {
  uint64_t bytes_before, bytes_after, kept, dropped, ms;
} mmfs_compact_result;
void mmfs_compact_opts_init(mmfs_compact_opts *o);
int mmfs_compact(mmfs_db *db, const mmfs_compact_opts *opts, mmfs_compact_result *out);
]] end

-- Loader and libc functions, declared apart: another module may have
-- declared them already (a second cdef of a function is an error).
for _, decl in ipairs {
  "void *dlopen(const char *file, int mode);",
  "void *memchr(const void *s, int c, size_t n);",
} do
  pcall(ffi.cdef, decl)
end

-- Status codes: the order of MMFS_ERRORS in memmapfs.h.
local OK, NOTFOUND, TIMEOUT = 0, 1, 12

---------------------------------------------------------------- the library

local RTLD_NOW, RTLD_DEEPBIND = 2, 8 -- glibc's values (Linux: the platform of memmapfs)

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The candidate library paths of steps 1 and 2 (see the top of the file).
local function candidates()
  local list = {}
  local env = os.getenv("MMFS_LIBRARY")
  if env and env ~= "" then list[1] = env return list, true end
  local src = getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:match("^@(.*)/[^/]*$")
  if dir then
    list[#list + 1] = dir .. "/libmemmapfs.so"
    local prefix = dir:match("^(.*)/share/lua/[^/]+/memmapfs$")
    if prefix then
      local arch = ffi.arch == "x64" and "x86_64-linux-gnu"
        or ffi.arch == "arm64" and "aarch64-linux-gnu" or nil
      list[#list + 1] = prefix .. "/lib/libmemmapfs.so"
      if arch then list[#list + 1] = prefix .. "/lib/" .. arch .. "/libmemmapfs.so" end
      list[#list + 1] = prefix .. "/lib64/libmemmapfs.so"
    end
  end
  return list, false
end

-- Loads the library.  It is opened with RTLD_DEEPBIND before ffi.load
-- (which then finds it loaded): a library built with Lua policies links
-- Lua 5.4, and without DEEPBIND its lua_* calls would bind to the host's
-- LuaJIT symbols of the same names (a crash at the first policy hook).
local function load_library()
  local list, forced = candidates()
  local tried = {}
  for _, path in ipairs(list) do
    if forced or exists(path) then
      C.dlopen(path, RTLD_NOW + RTLD_DEEPBIND)
      local ok, lib = pcall(ffi.load, path)
      if ok then return lib end
      tried[#tried + 1] = tostring(lib)
      if forced then break end
    end
  end
  if not forced then
    local names = { "libmemmapfs.so", "libmemmapfs.so.0" }
    local search = rawget(package, "searchpath")
    names[3] = search and search("memmapfs.core", package.cpath)
    for _, name in ipairs(names) do
      C.dlopen(name, RTLD_NOW + RTLD_DEEPBIND)
      local ok, lib = pcall(ffi.load, name)
      if ok then return lib end
      tried[#tried + 1] = tostring(lib)
    end
  end
  error("memmapfs.ffi: cannot load libmemmapfs.so (set MMFS_LIBRARY to its path): "
    .. concat(tried, "; "), 0)
end

assert(ffi.abi("le"), "memmapfs.ffi: the session field codec assumes a little-endian host")
local lib = load_library()

-- The hot calls without a struct passed by value.  LuaJIT's JIT does not
-- compile a call that passes a struct by value: such a call runs in the
-- interpreter and aborts the trace around it (bench/ffi_bench.lua measured
-- get_kv at 1.8 us that way, against 1.0 us for the C module).  On x86-64
-- (System V) and arm64 (AAPCS64) a 16-byte struct of two pointer-sized
-- integer members that fits in the integer argument registers still free
-- is passed exactly as its two members would be, in the same registers.
-- So these declarations name the same symbols (asm labels) with each
-- mmfs_slice spelt (pointer, length); each slice here starts within the
-- first five argument registers (x86-64 has six, arm64 eight), where the
-- two conventions cannot differ.  Other platforms use the by-value calls.
local FAST = (ffi.arch == "x64" or ffi.arch == "arm64") and ffi.os ~= "Windows"
if FAST and not declared then
  ffi.cdef [[
int mmfs__ffi_get_kv(mmfs_db *db, const char *k, size_t kn, mmfs_slice *value)
  __asm__("mmfs_get_kv");
int mmfs__ffi_set_kv(mmfs_db *db, const char *k, size_t kn, const char *v, size_t vn)
  __asm__("mmfs_set_kv");
int mmfs__ffi_append_memory(mmfs_db *db, const char *t, size_t tn, const mmfs_slice *tags,
  size_t ntags, const mmfs_memory_opts *opts, uint64_t *id) __asm__("mmfs_append_memory");
int mmfs__ffi_search_memory(mmfs_db *db, const char *q, size_t qn, const mmfs_filter *f,
  mmfs_memories **out) __asm__("mmfs_search_memory");
int mmfs__ffi_snippet(mmfs_db *db, const char *q, size_t qn, const char *t, size_t tn,
  const mmfs_snippet_opts *o, char **out, size_t *len) __asm__("mmfs_snippet");
int mmfs__ffi_batch_append_memory(mmfs_batch *b, const char *t, size_t tn,
  const mmfs_slice *tags, size_t ntags, const mmfs_memory_opts *opts)
  __asm__("mmfs_batch_append_memory");
int mmfs__ffi_batch_set_kv(mmfs_batch *b, const char *k, size_t kn, const char *v, size_t vn)
  __asm__("mmfs_batch_set_kv");
]]
end

---------------------------------------------------------------- errors

local code_names = {}
local function code_name(rc)
  local n = code_names[rc]
  if not n then
    n = ffi.string(lib.mmfs_err_name(rc))
    code_names[rc] = n
  end
  return n
end

-- nil, the library's message for the failed call (DB may be nil), code.
local function fail(h, rc)
  local p = lib.mmfs_errmsg(h)
  local msg = p ~= nil and ffi.string(p) or ""
  if msg == "" then msg = ffi.string(lib.mmfs_strerror(rc)) end
  return nil, msg, code_name(rc)
end

local function closed(what)
  return nil, what .. " is closed", "CLOSED"
end

local function busy()
  return nil, "write to the store inside its own batch function "
    .. "(write through the batch's tx object)", "BUSY"
end

-- Lua's typename of a value (luaL_typename).
local function typename(v)
  return type(v)
end

-- The public functions, filled at the end of the file: each method and
-- open, mapped to { name, method } (method: true when it is called with
-- self, whose arguments are counted after self).
local api = {}

-- Raises "bad argument #N to 'name' (MSG)" from whichever helper finds the
-- bad argument N (self is 1) of the nearest public function on the stack,
-- as the C module does: the name is the function's own, not the one debug
-- information gives the call (LuaJIT loses it in a tail call, every Lua in
-- pcall(db.set_kv, db, ...)); a method counts arguments after self and a
-- bad self is "calling 'name' on bad self"; the position is the public
-- function's caller's.
local function argerror(n, msg)
  local level, a = 2, nil
  while true do
    local ar = getinfo(level, "f")
    if ar == nil then break end
    a = api[ar.func]
    if a then break end
    level = level + 1
  end
  if not a then error(sformat("bad argument #%d (%s)", n, msg), 2) end -- not from the API
  local name = a[1]
  if a[2] then
    n = n - 1
    if n == 0 then
      error(sformat("calling '%s' on bad self (%s)", name, msg), level + 1)
    end
  end
  error(sformat("bad argument #%d to '%s' (%s)", n, name, msg), level + 1)
end

local function expected(what, v)
  return what .. " expected, got " .. typename(v)
end

-- A number with an integer value in the int64 range (pc_isintegral).
local function isintegral(v)
  return v >= -9223372036854775808 and v < 9223372036854775808 and v == floor(v)
end

---------------------------------------------------------------- scratch cdata

local S1, S2 = ffi.new("mmfs_slice"), ffi.new("mmfs_slice")
local OUT = ffi.new("mmfs_slice[2]")
local U64 = ffi.new("uint64_t[1]")
local INT = ffi.new("int[1]")
local MEMS = ffi.new("mmfs_memories*[1]")
local MEM = ffi.new("mmfs_memory*[1]")
local SESSS = ffi.new("mmfs_sessions*[1]")
local HITS = ffi.new("mmfs_doc_hits*[1]")
local MOPTS = ffi.new("mmfs_memory_opts")
local FILTER = ffi.new("mmfs_filter")
local SNIP = ffi.new("mmfs_snippet_opts")
local CHARP = ffi.new("char*[1]")
local SIZE = ffi.new("size_t[1]")
local SESSION = ffi.new("mmfs_session")
local IDS = ffi.new("uint64_t*[1]")
local NIDS = ffi.new("size_t[1]")

-- What the scratch cdata point into besides the call's own arguments
-- (tag arrays, encoded session fields): held here until the next call,
-- since the garbage collector does not follow a cdata pointer.
local keep1, keep2, keep3, keep4 -- luacheck: ignore (written only: C reads what they hold)

local function slice(s, str)
  s.ptr = str
  s.len = #str
  return s
end

local function str(s)
  if s.len == 0 then return "" end
  return ffi.string(s.ptr, s.len)
end

---------------------------------------------------------------- session fields

-- The session field encoding of memmapfs.h, in Lua (the C module uses
-- core/lua/lfields.c, which works on a lua_State and so cannot be
-- called through the FFI).  Same rules: numbers with an integer value in
-- the int64 range are 'i' (LuaJIT has no integer subtype), others 'd';
-- nesting is bounded at 64 and a table met again on its own path is a
-- cycle; both give the same messages as lfields.c.

local MAXDEPTH = 64
local reserved = { id = true, intent_id = true, created_at = true, payload = true }
local I64, F64 = ffi.new("int64_t[1]"), ffi.new("double[1]")

local function u32(n)
  return schar(n % 256, floor(n / 256) % 256, floor(n / 65536) % 256, floor(n / 16777216) % 256)
end

local enc_value

-- Appends table T to OUT; PATH: the tables being encoded (a cycle check);
-- NAME: the top-level field, for messages.  Returns nil or an error text.
local function enc_table(out, t, depth, top, path, ctx)
  if depth >= MAXDEPTH then return ctx:fail("nested too deep", t) end
  for i = 1, depth do
    if path[i] == t then
      return ctx:fail("a table that contains itself cannot be stored (nested in itself)")
    end
  end
  path[depth + 1] = t
  local at = #out + 1
  out[at] = "" -- the header, set below
  local n = 0
  for k, v in pairs(t) do
    if not (top and reserved[k]) then
      if top then ctx.name = k end
      if type(k) == "table" then return ctx:fail("a table key cannot be stored", k) end
      local err = enc_value(out, k, depth + 1, path, ctx) or enc_value(out, v, depth + 1, path, ctx)
      if err then return err end
      n = n + 1
    end
  end
  if top then ctx.name = nil end
  path[depth + 1] = nil
  out[at] = "T" .. u32(n)
  ctx.count = n
  return nil
end

function enc_value(out, v, depth, path, ctx)
  local tv = type(v)
  if tv == "boolean" then
    out[#out + 1] = v and "t" or "f"
  elseif tv == "number" then
    if isintegral(v) then
      I64[0] = v
      out[#out + 1] = "i" .. ffi.string(I64, 8)
    else
      F64[0] = v
      out[#out + 1] = "d" .. ffi.string(F64, 8)
    end
  elseif tv == "string" then
    out[#out + 1] = "s" .. u32(#v)
    out[#out + 1] = v
  elseif tv == "table" then
    return enc_table(out, v, depth, false, path, ctx)
  else
    return ctx:fail("cannot be stored", v)
  end
  return nil
end

local Ctx = {}
Ctx.__index = Ctx

-- The message of lfields.c's enc_fail: the field, WHY, the value's type.
-- V (nil: none) is the value that cannot be stored.
function Ctx:fail(why, v)
  local tail = v ~= nil and (" (a " .. typename(v) .. ")") or ""
  local name = self.name
  if type(name) == "string" then
    return sformat("session field '%s': %s%s", name, why, tail)
  elseif name ~= nil then
    local shown = type(name) == "number" and tostring(name) or "?"
    return sformat("session field [%s]: %s%s", shown, why, tail)
  end
  return sformat("session: %s%s", why, tail)
end

-- The encoded fields of session table T other than the four held apart:
-- a string ("" when there is none), or nil, message.
local function encode_fields(t)
  local ctx = setmetatable({ count = 0 }, Ctx)
  local out = {}
  local err = enc_table(out, t, 0, true, {}, ctx)
  if err then return nil, err end
  if ctx.count == 0 then return "" end
  return concat(out)
end

local function rd_u32(s, p)
  local a, b, c, d = sbyte(s, p, p + 3)
  return a + b * 256 + c * 65536 + d * 16777216
end

-- Decodes the value at position P of S; returns it and the next
-- position, or nil (malformed: left out, as the C module does).
local function dec_value(s, p, depth)
  if p > #s or depth > MAXDEPTH then return nil end
  local tag = ssub(s, p, p)
  p = p + 1
  if tag == "f" then return false, p end
  if tag == "t" then return true, p end
  if tag == "i" or tag == "d" then
    if #s - p + 1 < 8 then return nil end
    local buf = tag == "i" and I64 or F64
    ffi.copy(buf, ssub(s, p, p + 7), 8)
    return tonumber(buf[0]), p + 8
  end
  if tag == "s" then
    if #s - p + 1 < 4 then return nil end
    local n = rd_u32(s, p)
    p = p + 4
    if #s - p + 1 < n then return nil end
    return ssub(s, p, p + n - 1), p + n
  end
  if tag == "T" then
    if #s - p + 1 < 4 then return nil end
    local n = rd_u32(s, p)
    p = p + 4
    local t = {}
    for _ = 1, n do
      local k, v
      k, p = dec_value(s, p, depth + 1)
      if p == nil then return nil end
      v, p = dec_value(s, p, depth + 1)
      if p == nil then return nil end
      if k ~= nil and k == k then t[k] = v end -- a nil or NaN key cannot be a table key
    end
    return t, p
  end
  return nil
end

local function push_session(s)
  local t
  if s.fields.len > 0 then
    local v = dec_value(ffi.string(s.fields.ptr, s.fields.len), 1, 0)
    if type(v) == "table" then t = v end
  end
  t = t or {}
  t.id = str(s.id)
  if s.has_intent ~= 0 then t.intent_id = str(s.intent_id) end
  t.created_at = tonumber(s.created_at)
  if s.has_payload ~= 0 then t.payload = str(s.payload) end
  return t
end

local function push_sessions(list)
  local r = {}
  if list ~= nil then
    for i = 0, tonumber(list.count) - 1 do r[i + 1] = push_session(list.items[i]) end
    lib.mmfs_free(list)
  end
  return r
end

-- Fills SESSION from the session table T (argument N of the calling
-- method).  Returns the values SESSION points into (keep them alive for
-- the call), or raises like the C module.
local function check_session(t, n)
  if type(t) ~= "table" then argerror(n, expected("table", t)) end
  local s = SESSION
  local id, intent, payload, created = t.id, t.intent_id, t.payload, t.created_at
  if type(id) ~= "string" then argerror(n, "field 'id': " .. expected("string", id)) end
  slice(s.id, id)
  if intent ~= nil and type(intent) ~= "string" then
    argerror(n, "field 'intent_id': " .. expected("string", intent))
  end
  s.has_intent = intent ~= nil and 1 or 0
  slice(s.intent_id, intent or "")
  if payload ~= nil and type(payload) ~= "string" then
    argerror(n, "field 'payload': " .. expected("string", payload))
  end
  s.has_payload = payload ~= nil and 1 or 0
  slice(s.payload, payload or "")
  if created ~= nil and (type(created) ~= "number" or not isintegral(created)) then
    argerror(n, "field 'created_at': " .. expected("integer", created))
  end
  s.has_created_at = 1
  s.created_at = created or os.time()
  local fields, err = encode_fields(t)
  if not fields then error(err, 3) end
  slice(s.fields, fields)
  return fields
end

---------------------------------------------------------------- handles

local DB, Reader, Sub, Iter, Tx = {}, {}, {}, {}, {}
local DB_MT = { kind = "db", __index = DB, __metatable = "locked", __name = "memmapfs.db" }
local READER_MT = { kind = "reader", __index = Reader, __metatable = "locked", __name = "memmapfs.reader" }
local SUB_MT = { kind = "sub", __index = Sub, __metatable = "locked", __name = "memmapfs.sub" }
local ITER_MT = { kind = "kviter", __index = Iter, __metatable = "locked", __name = "memmapfs.kviter" }
local TX_MT = { kind = "batch", __index = Tx, __metatable = "locked", __name = "memmapfs.batch" }

local closers = {
  reader = lib.mmfs_reader_close,
  sub = lib.mmfs_sub_close,
  kviter = lib.mmfs_kv_iter_close,
  batch = lib.mmfs_batch_abort,
}

-- A child's state (cs): h (the C handle or nil), kind, st (its store's
-- state: the children set and in_batch).  Closes the handle; idempotent.
local function child_close(cs)
  local h = cs.h
  if h == nil then return end
  cs.h = nil
  cs.st.children[cs] = nil
  if cs.kind == "batch" then cs.st.in_batch = false end
  closers[cs.kind](h)
end

-- Closes every child, then the store; idempotent.  Returns the status of
-- mmfs_close (the handle is gone either way).
local function store_close(st, h)
  for cs in pairs(st.children) do child_close(cs) end
  st.in_batch = false
  if h == nil then return OK end
  return lib.mmfs_close(h)
end

-- A new child object of MT over handle H (a cdata pointer) for DB.
local function new_child(db, mt, kind, h)
  local st = db.st
  local cs = { h = h, kind = kind, st = st }
  st.children[cs] = true
  local anchor = ffi.gc(ffi.cast("void *", h), function() child_close(cs) end)
  return setmetatable({ cs = cs, db = db, anchor = anchor }, mt)
end

local function check_db(self)
  if type(self) ~= "table" or rawget(self, "st") == nil then
    argerror(1, expected("memmapfs.db", self))
  end
  return self
end

local function check_child(self, mt)
  if type(self) ~= "table" or rawget(self, "cs") == nil or self.cs.kind ~= mt.kind then
    argerror(1, expected(mt.__name, self))
  end
  return self.cs
end

-- The close method of the children of MT: true, also when already closed.
local function child_closer(mt)
  return function(self)
    child_close(check_child(self, mt))
    return true
  end
end

-- What a write on DB answers instead, when it cannot take one now.
local function write_refused(self)
  if self.h == nil then return closed("store") end
  if self.st.in_batch then return busy() end
end

---------------------------------------------------------------- arguments

local function check_bytes(v, n)
  if type(v) ~= "string" then argerror(n, expected("string", v)) end
  return v
end

-- What the one-string writes below answer, from the out value their C
-- function filled: whether the key existed, or the new state version.
local function existed() return INT[0] ~= 0 end
local function new_version() return tonumber(U64[0]) end

-- A DB write method of one byte string over mmfs_NAME(h, s, OUTP); it
-- answers RESULT().
local function write1(name, outp, result)
  local fn = lib["mmfs_" .. name]
  return function(self, s)
    check_db(self)
    check_bytes(s, 2)
    local a, b, c = write_refused(self)
    if b then return a, b, c end
    local rc = fn(self.h, slice(S1, s), outp)
    if rc ~= OK then return fail(self.h, rc) end
    return result()
  end
end

-- A DB write method of two byte strings over mmfs_NAME(h, s1, s2); true.
local function write2(name)
  local fn = lib["mmfs_" .. name]
  return function(self, s1, s2)
    check_db(self)
    check_bytes(s1, 2)
    check_bytes(s2, 3)
    local a, b, c = write_refused(self)
    if b then return a, b, c end
    local rc = fn(self.h, slice(S1, s1), slice(S2, s2))
    if rc ~= OK then return fail(self.h, rc) end
    return true
  end
end

local function check_int(v, n)
  if type(v) ~= "number" then argerror(n, expected("integer", v)) end
  if not isintegral(v) then argerror(n, "number has no integer representation") end
  return v
end

local function check_opts(v, n)
  if v == nil then return false end
  if type(v) ~= "table" then argerror(n, expected("table", v)) end
  return true
end

-- Field NAME of options table T (argument N) as a Lua type; nil when absent.
local function opt_field(t, n, name, want)
  local v = t[name]
  if v == nil then return nil end
  local ok
  if want == "integer" then
    ok = type(v) == "number" and isintegral(v)
  else
    ok = type(v) == want
  end
  if not ok then argerror(n, sformat("field '%s': %s", name, expected(want, v))) end
  return v
end

-- The array of strings T as slices; KEEP anchors nothing (the strings are
-- in T, which the caller holds for the call).
local function check_strings(t, n, name)
  local count = #t
  local v = ffi.new("mmfs_slice[?]", count > 0 and count or 1)
  for i = 1, count do
    local s = rawget(t, i)
    if type(s) ~= "string" then
      argerror(n, sformat("%s[%d]: %s", name, i, expected("string", s)))
    end
    v[i - 1].ptr = s
    v[i - 1].len = #s
  end
  return v, count
end

-- Whether options table T holds only keys of KNOWN (a set); if not, nil,
-- "WHAT: unknown option 'key'", "INVALID" (a key that is no string is
-- named by its type), as the C module's check_keys: a misspelt option
-- ({ limt = 5 }) must not pass unnoticed.
local function check_keys(t, known, what)
  for k in pairs(t) do
    if type(k) ~= "string" or not known[k] then
      local name = type(k) == "string" and k or typename(k)
      return nil, sformat("%s: unknown option '%s'", what, name), "INVALID"
    end
  end
  return true
end

local memory_keys = { created_at = true, route = true }
local search_keys = { limit = true, route = true, tags = true, tags_any = true, since = true,
  before = true, snippet = true }
local list_keys = { limit = true, offset = true, route = true, tags = true, tags_any = true,
  since = true, before = true }
local snippet_keys = { mark = true, bytes = true }
local doc_search_keys = { limit = true }

-- Memory options table O (argument N) into MOPTS.  Returns MOPTS and the
-- route string it points into, or nil, msg, "INVALID" for an unknown key.
local function check_memory_opts(o, n)
  local m = MOPTS
  m.has_created_at = 0
  m.created_at = 0
  slice(m.route, "")
  if not check_opts(o, n) then return m, nil end
  local c = opt_field(o, n, "created_at", "integer")
  if c then
    m.has_created_at = 1
    m.created_at = c
  end
  local route = opt_field(o, n, "route", "string")
  if route then slice(m.route, route) end
  local ok, msg, code = check_keys(o, memory_keys, "append_memory")
  if not ok then return nil, msg, code end
  return m, route
end

-- Search/list filter F (argument N) into FILTER.  Returns the filter and
-- what it points into (tags, tags_any, route), or nil, msg, "INVALID" for
-- a bad value or an unknown key.
local function check_filter(f, n, with_offset)
  local flt = FILTER
  flt.limit, flt.offset, flt.ntags, flt.tags = 0, 0, 0, nil
  flt.ntags_any, flt.tags_any = 0, nil
  flt.has_since, flt.has_before, flt.since, flt.before = 0, 0, 0, 0
  slice(flt.route, "")
  if not check_opts(f, n) then return flt end
  local limit = opt_field(f, n, "limit", "integer")
  if limit then
    if limit < 0 then return nil, "limit must not be negative", "INVALID" end
    flt.limit = limit
  end
  if with_offset then
    local off = opt_field(f, n, "offset", "integer")
    if off then
      if off < 0 then return nil, "offset must not be negative", "INVALID" end
      flt.offset = off
    end
  end
  local route = opt_field(f, n, "route", "string")
  if route then slice(flt.route, route) end
  local tags = f.tags
  local tv
  if tags ~= nil then
    if type(tags) ~= "table" then argerror(n, "field 'tags': " .. expected("table", tags)) end
    local cnt
    tv, cnt = check_strings(tags, n, "tags")
    flt.tags, flt.ntags = tv, cnt
  end
  local tags_any = f.tags_any
  local av
  if tags_any ~= nil then
    if type(tags_any) ~= "table" then
      argerror(n, "field 'tags_any': " .. expected("table", tags_any))
    end
    local cnt
    av, cnt = check_strings(tags_any, n, "tags_any")
    flt.tags_any, flt.ntags_any = av, cnt
  end
  local since = opt_field(f, n, "since", "integer")
  if since then flt.has_since, flt.since = 1, since end
  local before = opt_field(f, n, "before", "integer")
  if before then flt.has_before, flt.before = 1, before end
  local ok, msg, code
  if with_offset then
    ok, msg, code = check_keys(f, list_keys, "list_memories")
  else
    ok, msg, code = check_keys(f, search_keys, "search_memory")
  end
  if not ok then return nil, msg, code end
  return flt, tv, av, route
end

-- The snippet option of search_memory's options F (argument N): true, or
-- { mark = { open, close }, bytes = n }.  Returns whether snippets are
-- wanted, SNIP filled in, and the mark strings it points into; or nil,
-- msg, "INVALID" for a bad value or an unknown key.  Wrong types raise.
local function check_snippet(f, n)
  local so = SNIP
  so.has_marks, so.bytes = 0, 0
  slice(so.mark_open, "")
  slice(so.mark_close, "")
  local sn = f ~= nil and f.snippet or nil
  if sn == nil then return false end
  if type(sn) == "boolean" then return sn end
  if type(sn) ~= "table" then
    argerror(n, "field 'snippet': " .. expected("boolean or table", sn))
  end
  local bytes = sn.bytes
  if bytes ~= nil then
    if type(bytes) ~= "number" or not isintegral(bytes) then
      argerror(n, "field 'snippet.bytes': " .. expected("integer", bytes))
    end
    if bytes <= 0 then return nil, "snippet: bytes must be positive", "INVALID" end
    so.bytes = bytes
  end
  local mark = sn.mark
  if mark ~= nil then
    if type(mark) ~= "table" then
      argerror(n, "field 'snippet.mark': " .. expected("table", mark))
    end
    local mv, cnt = check_strings(mark, n, "snippet.mark")
    if cnt ~= 2 then return nil, "snippet: mark must hold two strings", "INVALID" end
    so.has_marks = 1
    so.mark_open, so.mark_close = mv[0], mv[1]
  end
  local ok, msg, code = check_keys(sn, snippet_keys, "search_memory: snippet")
  if not ok then return nil, msg, code end
  return true, mark
end

---------------------------------------------------------------- memories

local function push_memory(m, with_score)
  local tags = {}
  for i = 0, tonumber(m.ntags) - 1 do tags[i + 1] = str(m.tags[i]) end
  local t = {
    id = tonumber(m.id),
    text = str(m.text),
    tags = tags,
    created_at = tonumber(m.created_at),
    route = str(m.route),
  }
  if with_score then t.score = m.score end
  return t
end

-- The memories of LIST as Lua tables; LIST stays allocated (the caller
-- frees it).
local function push_memories(list, with_score)
  local r = {}
  if list ~= nil then
    for i = 0, tonumber(list.count) - 1 do r[i + 1] = push_memory(list.items[i], with_score) end
  end
  return r
end

--- db:append_memory(text, tags [, opts]) --> id
function DB:append_memory(text, tags, opts)
  check_db(self)
  check_bytes(text, 2)
  local tv, ntags = nil, 0
  if tags ~= nil then
    if type(tags) ~= "table" then argerror(3, expected("table", tags)) end
    tv, ntags = check_strings(tags, 3, "tags")
  end
  local o, route, code = check_memory_opts(opts, 4)
  if not o then return nil, route, code end
  local a, b, c = write_refused(self)
  if b then return a, b, c end
  keep1, keep2 = tv, route
  local rc
  if FAST then
    rc = lib.mmfs__ffi_append_memory(self.h, text, #text, tv, ntags, o, U64)
  else
    rc = lib.mmfs_append_memory(self.h, slice(S1, text), tv, ntags, o, U64)
  end
  if rc ~= OK then return fail(self.h, rc) end
  return tonumber(U64[0])
end

--- db:get_memory(id) --> memory or nil
function DB:get_memory(id)
  check_db(self)
  check_int(id, 2)
  if self.h == nil then return closed("store") end
  if id < 0 then return nil end
  local rc = lib.mmfs_get_memory(self.h, id, MEM)
  if rc == NOTFOUND then return nil end
  if rc ~= OK then return fail(self.h, rc) end
  local m = MEM[0]
  local t = push_memory(m, false)
  lib.mmfs_free(m)
  return t
end

--- db:search_memory(query [, opts]) --> hits, best first; with the
-- option snippet, each hit has a snippet (mmfs_snippet) of its text.
function DB:search_memory(query, opts)
  check_db(self)
  check_bytes(query, 2)
  local f, a, b, c = check_filter(opts, 3, false)
  if not f then return nil, a, b end
  local snip, mark, code = check_snippet(opts, 3)
  if snip == nil then return nil, mark, code end
  if self.h == nil then return closed("store") end
  keep1, keep2, keep3 = a, b, c
  local rc
  if FAST then
    rc = lib.mmfs__ffi_search_memory(self.h, query, #query, f, MEMS)
  else
    rc = lib.mmfs_search_memory(self.h, slice(S1, query), f, MEMS)
  end
  if rc ~= OK then return fail(self.h, rc) end
  local list = MEMS[0]
  local hits = push_memories(list, true)
  if snip and list ~= nil then
    keep1 = mark -- the marks SNIP points into
    slice(S1, query)
    for i = 0, tonumber(list.count) - 1 do
      local text = list.items[i].text
      CHARP[0] = nil
      if FAST then
        rc = lib.mmfs__ffi_snippet(self.h, query, #query, text.ptr, text.len, SNIP, CHARP, SIZE)
      else
        rc = lib.mmfs_snippet(self.h, S1, text, SNIP, CHARP, SIZE)
      end
      if rc ~= OK then
        lib.mmfs_free(list)
        return fail(self.h, rc)
      end
      hits[i + 1].snippet = ffi.string(CHARP[0], SIZE[0])
      lib.mmfs_free(CHARP[0])
    end
  end
  if list ~= nil then lib.mmfs_free(list) end
  return hits
end

--- db:list_memories([opts]) --> memories, newest first
function DB:list_memories(opts)
  check_db(self)
  local f, a, b, c = check_filter(opts, 2, true)
  if not f then return nil, a, b end
  if self.h == nil then return closed("store") end
  keep1, keep2, keep3 = a, b, c
  local rc = lib.mmfs_list_memories(self.h, f, MEMS)
  if rc ~= OK then return fail(self.h, rc) end
  local list = MEMS[0]
  local r = push_memories(list, false)
  if list ~= nil then lib.mmfs_free(list) end
  return r
end

--- db:delete_memory(id) --> true if it existed, false if not
function DB:delete_memory(id)
  check_db(self)
  check_int(id, 2)
  local a, b, c = write_refused(self)
  if b then return a, b, c end
  if id < 0 then return false end
  local rc = lib.mmfs_delete_memory(self.h, id, INT)
  if rc ~= OK then return fail(self.h, rc) end
  return INT[0] ~= 0
end

---------------------------------------------------------------- key-value

function DB:set_kv(key, value)
  check_db(self)
  check_bytes(key, 2)
  check_bytes(value, 3)
  local h = self.h
  if h == nil then return closed("store") end
  if self.st.in_batch then return busy() end
  local rc
  if FAST then
    rc = lib.mmfs__ffi_set_kv(h, key, #key, value, #value)
  else
    rc = lib.mmfs_set_kv(h, slice(S1, key), slice(S2, value))
  end
  if rc ~= OK then return fail(h, rc) end
  return true
end

function DB:get_kv(key)
  if type(key) ~= "string" or type(self) ~= "table" then
    check_db(self)
    argerror(2, expected("string", key))
  end
  local h = self.h
  if h == nil then
    check_db(self)
    return closed("store")
  end
  local rc
  if FAST then
    rc = lib.mmfs__ffi_get_kv(h, key, #key, OUT)
  else
    rc = lib.mmfs_get_kv(h, slice(S1, key), OUT)
  end
  if rc == OK then return ffi.string(OUT[0].ptr, OUT[0].len) end
  if rc == NOTFOUND then return nil end
  return fail(h, rc)
end

DB.delete_kv = write1("delete_kv", INT, existed)

local ITER_OUT = ffi.new("mmfs_slice[2]")

local function scan_step(it)
  local cs = it.cs
  if cs.h == nil then
    error(("scan_kv: %s (%s)"):format("iterator is closed", "CLOSED"), 2)
  end
  local rc = lib.mmfs_kv_iter_next(cs.h, ITER_OUT, ITER_OUT + 1)
  if rc == NOTFOUND then
    child_close(cs)
    return nil
  end
  if rc ~= OK then
    local _, msg, code = fail(it.db.h, rc)
    error(("scan_kv: %s (%s)"):format(msg, tostring(code)), 2)
  end
  return str(ITER_OUT[0]), str(ITER_OUT[1])
end

--- it:next() --> key, value; nil at the end (which closes it)
function Iter:next()
  local cs = check_child(self, ITER_MT)
  if cs.h == nil then return closed("iterator") end
  local rc = lib.mmfs_kv_iter_next(cs.h, ITER_OUT, ITER_OUT + 1)
  if rc == NOTFOUND then
    child_close(cs)
    return nil
  end
  if rc ~= OK then return fail(self.db.h, rc) end
  return str(ITER_OUT[0]), str(ITER_OUT[1])
end

Iter.close = child_closer(ITER_MT)

--- for key, value in db:scan_kv(prefix) do ... end: keys starting with
-- `prefix` (all keys when nil), in byte order.  On a closed store it
-- returns nil, msg, "CLOSED" instead.
function DB:scan_kv(prefix)
  check_db(self)
  if prefix ~= nil then check_bytes(prefix, 2) end
  if self.h == nil then return closed("store") end
  local p = ffi.new("mmfs_kv_iter*[1]")
  local rc = lib.mmfs_kv_iter_open(self.h, slice(S1, prefix or ""), p)
  if rc ~= OK then return fail(self.h, rc) end
  local it = new_child(self, ITER_MT, "kviter", p[0])
  return scan_step, it, nil, it
end

---------------------------------------------------------------- sessions

function DB:put_session(t)
  check_db(self)
  local keep = check_session(t, 2)
  local a, b, c = write_refused(self)
  if b then return a, b, c end
  keep1 = keep
  local rc = lib.mmfs_put_session(self.h, SESSION)
  if rc ~= OK then return fail(self.h, rc) end
  return true
end

function DB:get_session(id)
  check_db(self)
  check_bytes(id, 2)
  if self.h == nil then return closed("store") end
  local rc = lib.mmfs_get_session(self.h, slice(S1, id), SESSION)
  if rc == NOTFOUND then return nil end
  if rc ~= OK then return fail(self.h, rc) end
  return push_session(SESSION)
end

DB.delete_session = write1("delete_session", INT, existed)

-- An optional limit argument: nil = 0; nil, msg, "INVALID" when negative.
local function opt_limit(v, n)
  if v == nil then return 0 end
  check_int(v, n)
  if v < 0 then return nil, "limit must not be negative", "INVALID" end
  return v
end

function DB:list_sessions(limit)
  check_db(self)
  local l, m, c = opt_limit(limit, 2)
  if not l then return nil, m, c end
  if self.h == nil then return closed("store") end
  local rc = lib.mmfs_list_sessions(self.h, l, SESSS)
  if rc ~= OK then return fail(self.h, rc) end
  return push_sessions(SESSS[0])
end

function DB:list_by_intent(intent, limit)
  check_db(self)
  check_bytes(intent, 2)
  local l, m, c = opt_limit(limit, 3)
  if not l then return nil, m, c end
  if self.h == nil then return closed("store") end
  local rc = lib.mmfs_list_by_intent(self.h, slice(S1, intent), l, SESSS)
  if rc ~= OK then return fail(self.h, rc) end
  return push_sessions(SESSS[0])
end

---------------------------------------------------------------- streams

DB.append_stream = write2("append_stream")

function DB:stream_size(key)
  check_db(self)
  check_bytes(key, 2)
  if self.h == nil then return closed("store") end
  local rc = lib.mmfs_stream_size(self.h, slice(S1, key), U64)
  if rc ~= OK then return fail(self.h, rc) end
  return tonumber(U64[0])
end

--- db:open_read(key) --> reader, or nil, msg, "NOTFOUND"
function DB:open_read(key)
  check_db(self)
  check_bytes(key, 2)
  if self.h == nil then return closed("store") end
  local p = ffi.new("mmfs_reader*[1]")
  local rc = lib.mmfs_open_read(self.h, slice(S1, key), p)
  if rc ~= OK then return fail(self.h, rc) end
  return new_child(self, READER_MT, "reader", p[0])
end

local CHUNK = ffi.new("mmfs_slice")

-- Reads up to N bytes; returns them (possibly ""), the count, the status.
local function read_n(r, n)
  local parts, got, rc = {}, 0, OK
  while n > 0 do
    rc = lib.mmfs_reader_peek(r, CHUNK)
    if rc ~= OK or CHUNK.len == 0 then break end
    local len = tonumber(CHUNK.len)
    local take = len < n and len or n
    parts[#parts + 1] = ffi.string(CHUNK.ptr, take)
    rc = lib.mmfs_reader_skip(r, take)
    if rc ~= OK then break end
    got = got + take
    n = n - take
  end
  return concat(parts), got, rc
end

-- Reads a line (with its newline when KEEP); returns it, whether there was
-- one, the status.
local function read_line(r, keep)
  local parts, ok, rc = {}, false
  while true do
    rc = lib.mmfs_reader_peek(r, CHUNK)
    if rc ~= OK or CHUNK.len == 0 then break end
    local len = tonumber(CHUNK.len)
    local nl = C.memchr(CHUNK.ptr, 10, len)
    local take = nl ~= nil and (ffi.cast("const char *", nl) - CHUNK.ptr) or len
    parts[#parts + 1] = ffi.string(CHUNK.ptr, take + ((nl ~= nil and keep) and 1 or 0))
    ok = true
    rc = lib.mmfs_reader_skip(r, take + (nl ~= nil and 1 or 0))
    if rc ~= OK or nl ~= nil then break end
  end
  return concat(parts), ok, rc
end

--- r:read(...) --> like file:read with formats n, "a", "l", "L" ("*a"
-- too); nil at the end of the stream; nil, msg, code on failure.
function Reader:read(...)
  local cs = check_child(self, READER_MT)
  local nargs = select("#", ...)
  local formats = { ... }
  if nargs == 0 then
    formats[1] = "l"
    nargs = 1
  end
  for i = 1, nargs do -- check every format first
    local f = formats[i]
    if type(f) == "number" then
      check_int(f, i + 1)
      if f < 0 then argerror(i + 1, "negative count") end
    else
      if type(f) ~= "string" then argerror(i + 1, expected("string or integer", f)) end
      local c = f:match("^%*?(.)")
      if c ~= "a" and c ~= "l" and c ~= "L" then argerror(i + 1, "invalid format") end
    end
  end
  local r = cs.h
  if r == nil then return closed("reader") end
  local results = {}
  for i = 1, nargs do
    local f = formats[i]
    local v, ok, rc
    if type(f) == "number" then
      if f == 0 then
        rc = lib.mmfs_reader_peek(r, CHUNK)
        v, ok = "", CHUNK.len > 0
      else
        local got
        v, got, rc = read_n(r, f)
        ok = got > 0
      end
    else
      local c = f:match("^%*?(.)")
      if c == "a" then
        local _
        v, _, rc = read_n(r, huge)
        ok = true
      else
        v, ok, rc = read_line(r, c == "L")
      end
    end
    if rc ~= OK then return fail(self.db.h, rc) end
    if not ok then
      results[i] = nil
      return unpack(results, 1, i)
    end
    results[i] = v
  end
  return unpack(results, 1, nargs)
end

--- r:seek(offset) --> the new position
function Reader:seek(off)
  local cs = check_child(self, READER_MT)
  check_int(off, 2)
  if cs.h == nil then return closed("reader") end
  if off < 0 then return nil, "seek: negative offset", "INVALID" end
  local rc = lib.mmfs_reader_seek(cs.h, off)
  if rc ~= OK then return fail(self.db.h, rc) end
  return tonumber(lib.mmfs_reader_tell(cs.h))
end

function Reader:tell()
  local cs = check_child(self, READER_MT)
  if cs.h == nil then return closed("reader") end
  return tonumber(lib.mmfs_reader_tell(cs.h))
end

function Reader:size()
  local cs = check_child(self, READER_MT)
  if cs.h == nil then return closed("reader") end
  return tonumber(lib.mmfs_reader_size(cs.h))
end

Reader.close = child_closer(READER_MT)

---------------------------------------------------------------- documents

DB.index = write2("index")
DB.unindex = write1("unindex", INT, existed)

--- db:search(query [, limit | { limit = n }]) --> { {key=, score=}, ... }
function DB:search(query, limit)
  check_db(self)
  check_bytes(query, 2)
  if type(limit) == "table" then
    local ok, msg, code = check_keys(limit, doc_search_keys, "search")
    if not ok then return nil, msg, code end
    limit = limit.limit
  end
  local l, m, c = opt_limit(limit, 3)
  if not l then return nil, m, c end
  if self.h == nil then return closed("store") end
  local rc = lib.mmfs_search(self.h, slice(S1, query), l, HITS)
  if rc ~= OK then return fail(self.h, rc) end
  local hits, r = HITS[0], {}
  if hits ~= nil then
    for i = 0, tonumber(hits.count) - 1 do
      local it = hits.items[i]
      r[i + 1] = { key = str(it.key), score = it.score }
    end
    lib.mmfs_free(hits)
  end
  return r
end

---------------------------------------------------------------- state

DB.update_state = write1("update_state", U64, new_version)

--- db:get_state() --> value, version (nil, 0 before the first update)
function DB:get_state()
  check_db(self)
  if self.h == nil then return closed("store") end
  local rc = lib.mmfs_get_state(self.h, OUT, U64)
  if rc ~= OK then return fail(self.h, rc) end
  local version = tonumber(U64[0])
  if version == 0 then return nil, 0 end
  return str(OUT[0]), version
end

function DB:subscribe_state()
  check_db(self)
  if self.h == nil then return closed("store") end
  local p = ffi.new("mmfs_sub*[1]")
  local rc = lib.mmfs_subscribe_state(self.h, p)
  if rc ~= OK then return fail(self.h, rc) end
  return new_child(self, SUB_MT, "sub", p[0])
end

local SUB_VAL, SUB_VER = ffi.new("mmfs_slice"), ffi.new("uint64_t[1]")

--- sub:next([timeout_ms]) --> value, version; nil, "timeout", "TIMEOUT".
-- No timeout (nil) or a negative one waits forever.
function Sub:next(timeout)
  local cs = check_child(self, SUB_MT)
  local t = -1
  if timeout ~= nil then t = check_int(timeout, 2) end
  if cs.h == nil then return closed("subscription") end
  if t > 2147483647 then t = 2147483647 end
  if t < 0 then t = -1 end
  local rc = lib.mmfs_sub_next(cs.h, t, SUB_VAL, SUB_VER)
  if rc == TIMEOUT then return nil, "timeout", "TIMEOUT" end
  if rc ~= OK then return fail(self.db.h, rc) end
  return str(SUB_VAL), tonumber(SUB_VER[0])
end

function Sub:fd()
  local cs = check_child(self, SUB_MT)
  if cs.h == nil then return closed("subscription") end
  return lib.mmfs_sub_fd(cs.h)
end

Sub.close = child_closer(SUB_MT)

---------------------------------------------------------------- policy

--- db:set_policy(source | nil) --> true
function DB:set_policy(source)
  check_db(self)
  if source ~= nil then check_bytes(source, 2) end
  local a, b, c = write_refused(self)
  if b then return a, b, c end
  local rc = lib.mmfs_set_policy(self.h, slice(S1, source or ""))
  if rc ~= OK then return fail(self.h, rc) end
  return true
end

--- db:get_policy() --> source, or nil when the store has none
function DB:get_policy()
  check_db(self)
  if self.h == nil then return closed("store") end
  local rc = lib.mmfs_get_policy(self.h, OUT)
  if rc == NOTFOUND then return nil end
  if rc ~= OK then return fail(self.h, rc) end
  return str(OUT[0])
end

---------------------------------------------------------------- batches

-- A batch's state (cs) adds: nmem (append_memory commands so far), and
-- failed, code, msg (the first command that failed: commit writes nothing).
local function check_tx(self)
  return check_child(self, TX_MT)
end

-- The result of adding a command: true (or VALUE), or the failure, which
-- also poisons the batch.
local function batch_result(cs, db, rc, value)
  if rc ~= OK then
    local _, msg, code = fail(db.h, rc)
    if not cs.failed then
      cs.failed, cs.code, cs.msg = true, code, msg
    end
    return nil, msg, code
  end
  if value then return value end
  return true
end

function Tx:append_memory(text, tags, opts)
  local cs = check_tx(self)
  check_bytes(text, 2)
  local tv, ntags = nil, 0
  if tags ~= nil then
    if type(tags) ~= "table" then argerror(3, expected("table", tags)) end
    tv, ntags = check_strings(tags, 3, "tags")
  end
  local o, route, code = check_memory_opts(opts, 4)
  if not o then
    -- a refused command poisons its batch, as batch_result does
    if not cs.failed then cs.failed, cs.code, cs.msg = true, code, route end
    return nil, route, code
  end
  if cs.h == nil then return closed("batch") end
  keep1, keep2 = tv, route
  local rc
  if FAST then
    rc = lib.mmfs__ffi_batch_append_memory(cs.h, text, #text, tv, ntags, o)
  else
    rc = lib.mmfs_batch_append_memory(cs.h, slice(S1, text), tv, ntags, o)
  end
  if rc == OK then cs.nmem = cs.nmem + 1 end
  return batch_result(cs, self.db, rc, cs.nmem)
end

function Tx:delete_memory(id)
  local cs = check_tx(self)
  check_int(id, 2)
  if cs.h == nil then return closed("batch") end
  if id < 0 then return true end -- names nothing: dropped
  return batch_result(cs, self.db, lib.mmfs_batch_delete_memory(cs.h, id))
end

-- The transactional write methods taking one or two byte strings.
for name, nargs in pairs {
  set_kv = 2, delete_kv = 1, delete_session = 1, append_stream = 2, index = 2,
  unindex = 1, update_state = 1,
} do
  local fn = lib["mmfs_batch_" .. name]
  if nargs == 2 then
    Tx[name] = function(self, a, b)
      local cs = check_tx(self)
      check_bytes(a, 2)
      check_bytes(b, 3)
      if cs.h == nil then return closed("batch") end
      return batch_result(cs, self.db, fn(cs.h, slice(S1, a), slice(S2, b)))
    end
  else
    Tx[name] = function(self, a)
      local cs = check_tx(self)
      check_bytes(a, 2)
      if cs.h == nil then return closed("batch") end
      return batch_result(cs, self.db, fn(cs.h, slice(S1, a)))
    end
  end
end

if FAST then
  function Tx:set_kv(k, v)
    local cs = check_tx(self)
    check_bytes(k, 2)
    check_bytes(v, 3)
    if cs.h == nil then return closed("batch") end
    return batch_result(cs, self.db, lib.mmfs__ffi_batch_set_kv(cs.h, k, #k, v, #v))
  end
end

function Tx:put_session(t)
  local cs = check_tx(self)
  local keep = check_session(t, 2)
  if cs.h == nil then return closed("batch") end
  keep1 = keep
  local rc = lib.mmfs_batch_put_session(cs.h, SESSION)
  return batch_result(cs, self.db, rc)
end

--- tx:commit() --> the array of memory ids assigned, or nil, msg, code.
function Tx:commit()
  local cs = check_tx(self)
  if cs.h == nil then return closed("batch") end
  if cs.failed then
    child_close(cs)
    return nil, cs.msg, cs.code
  end
  -- detach first: mmfs_batch_commit frees the batch whatever happens
  local h = cs.h
  cs.h = nil
  cs.st.children[cs] = nil
  cs.st.in_batch = false
  local rc = lib.mmfs_batch_commit(h, IDS, NIDS)
  if rc ~= OK then return fail(self.db.h, rc) end
  local ids, r = IDS[0], {}
  for i = 0, tonumber(NIDS[0]) - 1 do r[i + 1] = tonumber(ids[i]) end
  if ids ~= nil then lib.mmfs_free(ids) end
  return r
end

--- tx:abort(): drops the batch; nothing is written.
Tx.abort = child_closer(TX_MT)

function Tx:_db()
  check_tx(self)
  return self.db
end

--- db:_batch_begin() --> tx; direct writes on db are BUSY until the tx is
-- committed or aborted.
function DB:_batch_begin()
  check_db(self)
  if self.h == nil then return closed("store") end
  if self.st.in_batch then
    return nil, "a batch is already open on this store (nested batch)", "BUSY"
  end
  local p = ffi.new("mmfs_batch*[1]")
  local rc = lib.mmfs_batch_begin(self.h, p)
  if rc ~= OK then return fail(self.h, rc) end
  local tx = new_child(self, TX_MT, "batch", p[0])
  tx.cs.nmem = 0
  self.st.in_batch = true
  return tx
end

---------------------------------------------------------------- maintenance

for _, name in ipairs { "sync", "refresh", "verify", "checkpoint" } do
  local fn = lib["mmfs_" .. name]
  DB[name] = function(self)
    check_db(self)
    if self.h == nil then return closed("store") end
    local rc = fn(self.h)
    if rc ~= OK then return fail(self.h, rc) end
    return true
  end
end

local STATS = ffi.new("mmfs_store_stats")
local stat_names = { "memories", "kv", "sessions", "streams", "documents", "log_bytes",
  "live_bytes", "dead_bytes", "lsn", "durable_lsn", "state_version", "segments",
  "checkpoint_lsn", "compacting", "checkpoint_dropped", "index_segments" }

function DB:stats()
  check_db(self)
  if self.h == nil then return closed("store") end
  ffi.fill(STATS, ffi.sizeof(STATS))
  local rc = lib.mmfs_stats(self.h, STATS)
  if rc ~= OK then return fail(self.h, rc) end
  local t = {}
  for _, n in ipairs(stat_names) do t[n] = tonumber(STATS[n]) end
  return t
end

local COPTS = ffi.new("mmfs_compact_opts")
local CRES = ffi.new("mmfs_compact_result")
local compact_keys = { now = true }
local compact_names = { "bytes_before", "bytes_after", "kept", "dropped", "ms" }

--- db:compact([opts]) --> { bytes_before=, bytes_after=, kept=, dropped=, ms= };
-- opts.now: the unix seconds ttl and compaction.keep see (default: the clock)
function DB:compact(o)
  check_db(self)
  if self.h == nil then return closed("store") end
  lib.mmfs_compact_opts_init(COPTS)
  if check_opts(o, 2) then
    local now = opt_field(o, 2, "now", "integer")
    if now then COPTS.now = now end
    local ok, msg, code = check_keys(o, compact_keys, "compact")
    if not ok then return nil, msg, code end
  end
  local rc = lib.mmfs_compact(self.h, COPTS, CRES)
  if rc ~= OK then return fail(self.h, rc) end
  local t = {}
  for _, n in ipairs(compact_names) do t[n] = tonumber(CRES[n]) end
  return t
end

--- db:path() --> the store's directory, as given to open without trailing
-- slashes; nil, msg, "CLOSED" on a closed store
function DB:path()
  check_db(self)
  if self.h == nil then return closed("store") end
  return ffi.string(lib.mmfs_path(self.h))
end

--- db:close() --> true (also on a closed store), or nil, msg, code when
-- the final sync failed (the handle is released anyway).
function DB:close()
  check_db(self)
  local h = self.h
  self.h = nil
  if h ~= nil then ffi.gc(h, nil) end
  local rc = store_close(self.st, h)
  if rc ~= OK then return fail(nil, rc) end
  return true
end

DB_MT.__tostring = function(self)
  if self.h ~= nil then return sformat("memmapfs.db (%s)", tostring(ffi.cast("void *", self.h)):match("0x%x+")) end
  return "memmapfs.db (closed)"
end

local function child_tostring(self)
  local mt_name = ({ reader = "memmapfs.reader", sub = "memmapfs.sub", kviter = "memmapfs.kviter",
    batch = "memmapfs.batch" })[self.cs.kind]
  if self.cs.h ~= nil then
    return sformat("%s (%s)", mt_name, tostring(ffi.cast("void *", self.cs.h)):match("0x%x+"))
  end
  return mt_name .. " (closed)"
end
READER_MT.__tostring, SUB_MT.__tostring = child_tostring, child_tostring
ITER_MT.__tostring, TX_MT.__tostring = child_tostring, child_tostring

---------------------------------------------------------------- open

local OPTS = ffi.new("mmfs_options")
local DBOUT = ffi.new("mmfs_db*[1]")

local known = { sync = true, sync_ms = true, checksum = true, key = true, readonly = true,
  create = true, lock_timeout_ms = true, segment_size = true, policy = true,
  hook_budget = true, repair = true, language = true, checkpoint_bytes = true,
  compress = true }
local sync_modes = { batch = 0, always = 1, none = 2 }
local checksums = { crc32c = 0, blake2b = 1 }

local M = { version = "0.1.0" }

--- Opens (by default creates) the store in directory `dir`; the options
-- of memmapfs.open (see docs/api.md).  An unknown option or a bad value
-- gives nil, msg, "INVALID"; a wrong type raises.  A policy string is
-- resolved as init.lua does it (memmapfs.common): the path of an existing
-- file, else source, else "no such policy file" when it looks like a path.
function M.open(dir, opts)
  if type(dir) ~= "string" then argerror(1, expected("string", dir)) end
  check_opts(opts, 2)
  local err, code
  opts, err, code = common.resolve_policy(opts)
  if err then return nil, err, code end
  if sfind(dir, "\0", 1, true) then argerror(1, "directory name contains a zero byte") end
  local o = OPTS
  lib.mmfs_options_init(o)
  if opts ~= nil then
    local s = opt_field(opts, 2, "sync", "string")
    if s then
      if not sync_modes[s] then
        return nil, sformat("sync: unknown mode '%s' (batch, always, none)", s), "INVALID"
      end
      o.sync = sync_modes[s]
    end
    local v = opt_field(opts, 2, "sync_ms", "integer")
    if v then
      if v < 0 or v > 2147483647 then return nil, "sync_ms: out of range", "INVALID" end
      o.sync_ms = v
    end
    s = opt_field(opts, 2, "checksum", "string")
    if s then
      if not checksums[s] then
        return nil, sformat("checksum: unknown type '%s' (crc32c, blake2b)", s), "INVALID"
      end
      o.checksum = checksums[s]
    end
    s = opt_field(opts, 2, "key", "string")
    if s then
      keep1 = s
      o.key = s
      o.key_len = #s
      -- a key means keyed BLAKE2b: reopening with the key alone must work
      if opts.checksum == nil then o.checksum = 1 end
    end
    local b = opt_field(opts, 2, "readonly", "boolean")
    if b ~= nil then o.readonly = b and 1 or 0 end
    b = opt_field(opts, 2, "create", "boolean")
    if b ~= nil then o.create = b and 1 or 0 end
    b = opt_field(opts, 2, "repair", "boolean")
    if b ~= nil then o.repair = b and 1 or 0 end
    v = opt_field(opts, 2, "lock_timeout_ms", "integer")
    if v then
      if v < 0 or v > 2147483647 then return nil, "lock_timeout_ms: out of range", "INVALID" end
      o.lock_timeout_ms = v
    end
    v = opt_field(opts, 2, "segment_size", "integer")
    if v then
      if v <= 0 then return nil, "segment_size: must be positive", "INVALID" end
      o.segment_size = v
    end
    s = opt_field(opts, 2, "policy", "string")
    if s then -- source text: common.resolve_policy read a file
      keep2 = s
      slice(o.policy, s)
    end
    s = opt_field(opts, 2, "language", "string")
    if s then -- C reads it as a NUL-terminated string
      if sfind(s, "\0", 1, true) then
        return nil, "language: contains a zero byte", "INVALID"
      end
      keep3 = s
      o.language = s
    end
    s = opt_field(opts, 2, "compress", "string")
    if s then -- C reads it as a NUL-terminated string
      if sfind(s, "\0", 1, true) then
        return nil, "compress: contains a zero byte", "INVALID"
      end
      keep4 = s
      o.compress = s
    end
    v = opt_field(opts, 2, "checkpoint_bytes", "integer")
    if v then
      if v < 0 then return nil, "checkpoint_bytes: must not be negative", "INVALID" end
      o.checkpoint_bytes = v
    end
    v = opt_field(opts, 2, "hook_budget", "integer")
    if v then
      if v <= 0 then return nil, "hook_budget: must be positive", "INVALID" end
      o.hook_budget = v
    end
    for k in pairs(opts) do -- a misspelt option must not pass unnoticed
      if type(k) ~= "string" then -- {"always"}: a list, not options
        return nil, sformat("unknown option (a %s key; options are named, e.g. sync = "
          .. "\"always\")", typename(k)), "INVALID"
      end
      if not known[k] then return nil, sformat("unknown option '%s'", k), "INVALID" end
    end
  end
  DBOUT[0] = nil
  local rc = lib.mmfs_open(dir, o, DBOUT)
  if rc ~= OK then return fail(nil, rc) end
  local st = { children = {}, in_batch = false }
  local h = ffi.gc(DBOUT[0], function(p) store_close(st, p) end)
  return setmetatable({ h = h, st = st }, DB_MT)
end

-- query_memory, batch, reader:lines and the batch's reads: the same Lua
-- as init.lua's (memmapfs.common), over the methods above.
common.add_methods(DB, Reader, Tx)

for _, t in ipairs { DB, Reader, Sub, Iter, Tx } do
  for name, fn in pairs(t) do api[fn] = { name, true } end
end
api[M.open] = { "open", false }

-- For code written for the C module's layout (init.lua extends these).
M._methods = { db = DB, reader = Reader, sub = Sub, kviter = Iter, batch = Tx }

return M
