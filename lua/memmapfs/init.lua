--- memmapfs: a local-first memory and state store for AI agents.
--
--     local memmapfs = require "memmapfs"
--     local db = assert(memmapfs.open("agent.store", { sync = "batch" }))
--
-- The C module memmapfs.core does the work; this file adds what reads
-- better in Lua: scan_kv (a generic-for iterator), and from memmapfs.common
-- (shared with memmapfs.ffi) query_memory, reader:lines, batch(fn) and
-- open's policy file.  Every method returns a truthy value on success and
-- nil, message, CODE on failure (see API.md); wrong argument types raise.

local core = require "memmapfs.core"
local common = require "memmapfs.common"

local type, error, tostring = type, error, tostring

local M = {
  version = "0.1.0",
}

local DB = core._methods.db
local Reader = core._methods.reader
local Tx = core._methods.batch

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
  local err, code
  opts, err, code = common.resolve_policy(opts)
  if err then return nil, err, code end
  return core.open(dir, opts)
end

-- query_memory, batch, reader:lines and the batch's reads: memmapfs.common,
-- shared with memmapfs.ffi.
common.add_methods(DB, Reader, Tx)

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

return M
