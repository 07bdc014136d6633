--- memmapfs: a local-first memory and state store for AI agents.
--
--     local memmapfs = require "memmapfs"
--     local db = assert(memmapfs.open("agent.store", { sync = "batch" }))
--
-- The C module memmapfs.core does the work; this file adds what reads
-- better in Lua: query_memory, scan_kv (a generic-for iterator), reader:lines
-- and batch(fn).  Every method returns a truthy value on success and
-- nil, message, CODE on failure (see API.md); wrong argument types raise.

local core = require "memmapfs.core"

local unpack = rawget(table, "unpack") or rawget(_G, "unpack") -- 5.1: a global
local select, type, error, tostring = select, type, error, tostring
local coroutine, setmetatable = coroutine, setmetatable

local M = {
  version = "0.1.0",
}

local DB = core._methods.db
local Reader = core._methods.reader
local Tx = core._methods.batch

-- errno values of io.open's third result (Linux, the platform memmapfs runs
-- on); its message may be translated, the number is not.
local ENOENT, ENOTDIR = 2, 20

-- Reads a whole file: its text, or nil, io.open's message and errno.
local function read_file(path)
  local f, err, errno = io.open(path, "rb")
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

--- Opens (by default creates) the store in directory `dir`.
-- opts: sync ("batch" | "always" | "none"), sync_ms, checksum ("crc32c" |
-- "blake2b"), key, readonly, create, lock_timeout_ms, hook_budget, and
-- policy: a string naming an existing file is its path, any other string is
-- its source; it is installed if it differs from the store's.  A string
-- that names no file but looks like a path (one line ending in ".lua" or
-- holding a "/", no "{", "(", "=" or quotes) is nil, "no such policy file
-- ...", "INVALID" (or "IO" when the file exists but cannot be read).  An
-- unknown option or a bad value gives nil, msg, "INVALID"; a wrong type
-- raises.
function M.open(dir, opts)
  -- checked here so that the error points at the caller's line
  if type(dir) ~= "string" then
    error(("bad argument #1 to 'open' (string expected, got %s)"):format(type(dir)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to 'open' (table expected, got %s)"):format(type(opts)), 2)
  end
  if type(opts) == "table" and type(opts.policy) == "string" then
    local source, err, errno = read_file(opts.policy)
    if not source and looks_like_path(opts.policy) then
      if errno ~= ENOENT and errno ~= ENOTDIR then -- there, but unreadable
        return nil, ("policy: cannot read the policy file %s"):format(tostring(err)), "IO"
      end
      return nil, ("policy: no such policy file '%s' (a policy is the path of an "
        .. "existing file or Lua source)"):format(opts.policy), "INVALID"
    end
    if source then
      local copy = {}
      for k, v in pairs(opts) do copy[k] = v end
      copy.policy = source
      opts = copy
    end
  end
  return core.open(dir, opts)
end

---------------------------------------------------------------- memories

--- Like search_memory, but only the texts, best first.
function DB:query_memory(query, opts)
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

---------------------------------------------------------------- key-value

local function scan_step(it)
  local k, v, code = it:next()
  if k == nil and v ~= nil then
    error(("scan_kv: %s (%s)"):format(v, tostring(code)), 2)
  end
  return k, v
end

--- for key, value in db:scan_kv(prefix) do ... end: keys starting with
-- `prefix` (all keys when nil), in byte order.  The iterator is closed when
-- the loop ends, also by break in Lua 5.4 (its fourth value is the closing
-- value).  On a closed store it returns nil, msg, "CLOSED" instead.
function DB:scan_kv(prefix)
  local it, err, code = self:_kv_iter(prefix)
  if not it then return nil, err, code end
  return scan_step, it, nil, it
end

---------------------------------------------------------------- streams

--- for line in r:lines() do ... end; formats as in r:read (default "l").
-- A read error raises, like io.lines.
function Reader:lines(...)
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

---------------------------------------------------------------- batches

-- A batch's tx reads the store as the batch function sees it (committed
-- contents), like the db it belongs to.
for _, name in ipairs { "get_kv", "get_memory", "get_session", "get_state" } do
  Tx[name] = function(tx, ...)
    local db = tx:_db()
    return db[name](db, ...)
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
local tx_commit = Tx.commit

function Tx.commit(tx, ...)
  if in_fn[tx] then
    error("tx:commit: inside db:batch(fn); the batch commits when fn returns", 2)
  end
  return tx_commit(tx, ...)
end

function DB:batch(fn)
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

return M
