--- memmapfs.common: what both bindings write in Lua, said once:
-- require "memmapfs" (init.lua over the C module memmapfs.core) and
-- require "memmapfs.ffi" (over libmemmapfs.so through LuaJIT's FFI) both
-- resolve open()'s policy option here and take the methods written in Lua
-- (query_memory, batch, reader:lines, the batch's reads) from here.
-- Internal: no stable API of its own.
--
-- Plain Lua (5.1-5.4, LuaJIT), no C module and no FFI, so that either
-- binding can load it.  The methods use only the binding's own methods
-- (search_memory, _batch_begin, read, _db...), so both give the same
-- results and the same messages.

local type, pairs, tostring, error, select, ipairs =
  type, pairs, tostring, error, select, ipairs
local setmetatable, coroutine = setmetatable, coroutine
local open = io.open
local unpack = rawget(table, "unpack") or rawget(_G, "unpack") -- 5.1: a global

local M = {}

-- errno values of io.open's third result (Linux, the platform memmapfs runs
-- on); its message may be translated, the number is not.
local ENOENT, ENOTDIR = 2, 20

-- Reads a whole file: its text, or nil, io.open's message and errno.
local function read_file(path)
  local f, err, errno = open(path, "rb")
  if not f then return nil, err, errno end
  local text = f:read("*a")
  f:close()
  return text
end

-- Whether a policy string that names no readable file was meant as a path:
-- one line ending in ".lua" or holding a "/", without the characters Lua
-- source needs (a policy returns a table: "{", "}", "(", "=", quotes).
-- "polcy.lua" then says "no such policy file" instead of a syntax error.
local function looks_like_path(s)
  if s:find("[\n{}()=\"']") then return false end
  return s:find("%.lua%s*$") ~= nil or s:find("/", 1, true) ~= nil
end

--- The options table OPTS (a table or nil, as given to open) with its
-- policy string resolved to source text: a string naming an existing file
-- is replaced by the file's contents (in a copy: the caller's table is not
-- changed), any other string is source and stays.  A string that names no
-- file but looks like a path gives nil, "policy: no such policy file
-- '...' ...", "INVALID"; a file that exists but cannot be read gives nil,
-- msg, "IO".  Anything else (no policy, a policy of the wrong type) is
-- returned as it is, for the binding's own checks.
function M.resolve_policy(opts)
  if type(opts) ~= "table" or type(opts.policy) ~= "string" then return opts end
  local path = opts.policy
  local source, err, errno = read_file(path)
  if not source then
    if not looks_like_path(path) then return opts end
    if errno ~= ENOENT and errno ~= ENOTDIR then -- there, but unreadable
      return nil, ("policy: cannot read the policy file %s"):format(tostring(err)), "IO"
    end
    return nil, ("policy: no such policy file '%s' (a policy is the path of an "
      .. "existing file or Lua source)"):format(path), "INVALID"
  end
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  copy.policy = source
  return copy
end

---------------------------------------------------------------- methods

--- Like search_memory, but only the texts, best first.
local function query_memory(self, query, opts)
  -- checked here so that the error names query_memory, not search_memory
  if type(query) ~= "string" then
    error(("bad argument #1 to 'query_memory' (string expected, got %s)"):format(type(query)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to 'query_memory' (table expected, got %s)"):format(type(opts)), 2)
  end
  local hits, err, code = self:search_memory(query, opts)
  if not hits then return nil, err, code end
  local texts = {}
  for i = 1, #hits do texts[i] = hits[i].text end
  return texts
end

--- for line in r:lines() do ... end; formats as in r:read (default "l").
-- A read error raises, like io.lines.
local function lines(self, ...)
  local n = select("#", ...)
  local formats = { ... }
  return function()
    local a, b, c = self:read(unpack(formats, 1, n))
    if a == nil and b ~= nil then
      error(("reader:lines: %s (%s)"):format(b, tostring(c)), 2)
    end
    return a, b, c
  end
end

--- db:batch(function(tx) ... end) --> array of the memory ids assigned.
--
-- fn runs without the writer lock and may read the store; tx has the
-- write methods (append_memory, delete_memory, set_kv, delete_kv,
-- put_session, delete_session, append_stream, index, unindex,
-- update_state).  When fn returns, its commands commit as one frame: all
-- or nothing.  tx:append_memory returns the position of its id in the
-- array that batch returns.  The array holds the ids of the batch's own
-- append_memory commands only; memories a policy hook adds are in the
-- store but not in the array.
--
-- While fn runs, the store's own write methods return nil, msg, "BUSY"
-- (they would escape the batch), and so does a nested db:batch.
-- fn runs in a coroutine of its own and must finish: if it yields (say
-- to an event loop), the batch is aborted, since a suspended batch would
-- keep the store BUSY for as long as the suspended coroutine lived.
-- tx:commit() inside fn raises: the batch commits when fn returns.
--
-- Failures commit nothing and return nil, message, code:
-- * an error raised in fn: the batch is aborted and batch returns
--   nil, <the error as a string>, "INVALID".  It does not re-raise: like
--   every other failure of the store the caller can branch on the code,
--   and assert(db:batch(fn)) still raises with the message.
-- * a tx command that failed (it returned nil, msg, code to fn): the whole
--   batch fails with that command's message and code, even if fn ignored it.
-- * the commit itself failing (READONLY, IO, REJECTED by a policy...).
local in_fn = setmetatable({}, { __mode = "k" }) -- the tx objects whose fn runs

local function batch(self, fn)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'batch' (function expected, got %s)"):format(type(fn)), 2)
  end
  local tx, err, code = self:_batch_begin()
  if not tx then return nil, err, code end
  in_fn[tx] = true
  local co = coroutine.create(fn)
  local ok, perr = coroutine.resume(co, tx)
  in_fn[tx] = nil
  if ok and coroutine.status(co) ~= "dead" then
    ok, perr = false, "batch: fn yielded; a batch must finish before anything else runs (aborted)"
  end
  if not ok then
    tx:abort()
    return nil, tostring(perr), "INVALID"
  end
  return tx:commit()
end

--- Adds the methods above to a binding's method tables: DB (the store's)
-- gets query_memory and batch, READER gets lines, and TX (a batch's) gets
-- get_kv, get_memory, get_session and get_state, which read the store as
-- the batch function sees it (committed contents), like the db it belongs
-- to (tx:_db()).
function M.add_methods(DB, Reader, Tx)
  DB.query_memory = query_memory
  DB.batch = batch
  local tx_commit = Tx.commit
  Tx.commit = function(tx, ...)
    if in_fn[tx] then
      error("tx:commit: inside db:batch(fn); the batch commits when fn returns", 2)
    end
    return tx_commit(tx, ...)
  end
  Reader.lines = lines
  for _, name in ipairs { "get_kv", "get_memory", "get_session", "get_state" } do
    Tx[name] = function(tx, ...)
      local db = tx:_db()
      return db[name](db, ...)
    end
  end
end

return M
