--- Helpers shared by the busted specs (require "helpers").
-- Scratch stores live under $MMFS_TEST_TMP (set by ctest), one fresh
-- directory per call to tmpdir, removed by cleanup (call it in after_each).

local assert = require "luassert"
local memmapfs = require "memmapfs"

local H = {}

--- The binding under test: "c" (init.lua over the C module memmapfs.core)
-- or "ffi" (memmapfs.ffi over the shared library: tests/run-busted.sh
-- with "ffi" makes require "memmapfs" give it, here and in children).
H.binding = os.getenv("MMFS_TEST_BINDING") == "ffi" and "ffi" or "c"
if H.binding == "ffi" then
  assert(memmapfs == require "memmapfs.ffi", "MMFS_TEST_BINDING=ffi, but memmapfs is not memmapfs.ffi")
end

H.sync_modes = { "always", "batch", "none" }

local base = os.getenv("MMFS_TEST_TMP")
if base == nil or base == "" then
  base = (os.getenv("TMPDIR") or "/tmp") .. "/memmapfs-spec"
end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
H.quote = quote

--- Runs a shell command; true when it exited with status 0.
function H.run(cmd)
  local ok, _, status = os.execute(cmd)
  if type(ok) == "number" then return ok == 0 end -- Lua 5.1
  return ok == true and (status == nil or status == 0)
end

--- The output of a shell command (all of it), and whether it succeeded.
function H.capture(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("*a") -- "*a": 5.1 and 5.2 need the star
  local ok = p:close()
  return out, ok
end

local created = {}
local counter = 0
math.randomseed(os.time() + math.floor(os.clock() * 1e6))

--- A fresh, empty directory (unique per call), removed by H.cleanup().
function H.tmpdir(label)
  counter = counter + 1
  local dir = ("%s/%s-%d-%d-%06d"):format(base, label or "t", os.time(), counter,
    math.random(0, 999999))
  assert(H.run("mkdir -p " .. quote(dir)), "cannot create " .. dir)
  created[#created + 1] = dir
  return dir
end

--- A path for a new store: a directory that does not exist yet, below a
-- fresh scratch directory.
function H.store_path(label)
  return H.tmpdir(label) .. "/store"
end

--- A new store and its path; opts as for memmapfs.open.
function H.open(opts, label)
  local dir = H.store_path(label)
  local db, err, code = memmapfs.open(dir, opts)
  assert(db, ("open %s: %s (%s)"):format(dir, tostring(err), tostring(code)))
  return db, dir
end

--- Reopens the store at dir (asserting success).
function H.reopen(dir, opts)
  local db, err, code = memmapfs.open(dir, opts)
  assert(db, ("reopen %s: %s (%s)"):format(dir, tostring(err), tostring(code)))
  return db
end

--- Removes every scratch directory made so far.
function H.cleanup()
  for i = #created, 1, -1 do
    local q = quote(created[i])
    H.run("chmod -R u+rwx " .. q .. " 2>/dev/null; rm -rf " .. q)
    created[i] = nil
  end
  collectgarbage()
end

local root
function H.is_root()
  if root == nil then
    local out = H.capture("id -u")
    root = out:match("^%s*0%s*$") ~= nil
  end
  return root
end

--- A store path whose creation must fail with IO, and the path that the
-- message must name.  Below a directory without write permission; for
-- root, whom permissions do not stop, below a regular file.
function H.unwritable_path()
  local dir = H.tmpdir("unwritable")
  if H.is_root() then
    local file = dir .. "/plainfile"
    local f = assert(io.open(file, "w"))
    f:write("not a directory\n")
    f:close()
    return file .. "/store", file
  end
  assert(H.run("chmod 0500 " .. quote(dir)))
  return dir .. "/store", dir
end

--- Asserts that a call failed with CODE: its results are nil, a non-empty
-- message, CODE.  Returns the message.
function H.fails(code, ...)
  local n = select("#", ...)
  local v, msg, c = ...
  assert.is_true(n >= 3, ("expected nil, msg, %s; got %d values (%s)"):format(code, n,
    tostring(v)))
  assert.is_nil(v, ("expected a %s failure, got %s"):format(code, tostring(v)))
  assert.is_string(msg)
  assert.is_true(#msg > 0, "empty error message")
  assert.are.equal(code, c, ("expected %s, got %s: %s"):format(code, tostring(c), msg))
  return msg
end

--- Asserts that FN raises (a programmer error: wrong argument type).
function H.raises(fn, pattern)
  local ok, err = pcall(fn)
  local where = debug.getinfo(2, "Sl")
  assert.is_false(ok, ("expected an error to be raised (%s:%d)"):format(where.short_src,
    where.currentline))
  if pattern then
    assert.is_truthy(tostring(err):find(pattern),
      ("error %q does not match %q"):format(tostring(err), pattern))
  end
  return err
end

--- The Lua interpreter running the specs, for child processes: the one
-- tests/run-busted.sh was given (MMFS_TEST_LUA; LuaJIT also calls itself
-- "Lua 5.1"), else guessed from _VERSION.
function H.lua()
  local lua = os.getenv("MMFS_TEST_LUA")
  if lua and lua ~= "" then return lua end
  if rawget(_G, "jit") then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

--- Runs SOURCE in a child Lua process with the same module paths.  Returns
-- its output and whether it succeeded.
function H.child(source)
  local path, cpath = package.path, package.cpath
  local cdir = os.getenv("MMFS_TEST_CPATH")
  if cdir and cdir ~= "" then cpath = cdir .. "/?.so;" .. cpath end
  local v = _VERSION:match("%d+%.%d+")
  local suffix = (v == "5.1") and "" or ("_" .. (v:gsub("%.", "_")))
  local cmd = ("LUA_PATH%s=%s LUA_CPATH%s=%s %s -e %s"):format(suffix, quote(path), suffix,
    quote(cpath), H.lua(), quote(source))
  return H.capture(cmd)
end

--- A 16 MiB value whose 64 KiB blocks all differ (a misplaced block
-- shows), with every byte value in it.
function H.big_value()
  local block = H.bytes(65536 - 8, 7)
  local parts = {}
  for i = 1, 256 do parts[i] = ("%08d"):format(i) .. block end
  return table.concat(parts)
end

--- A table's keys, sorted (for comparing sets).
function H.sorted(t)
  local r = {}
  for i = 1, #t do r[i] = t[i] end
  table.sort(r)
  return r
end

--- Every value yielded by db:scan_kv(prefix), as two arrays.
function H.scan(db, prefix)
  local keys, values = {}, {}
  for k, v in assert(db:scan_kv(prefix)) do
    keys[#keys + 1] = k
    values[#values + 1] = v
  end
  return keys, values
end

--- A deterministic pseudo-random byte string of N bytes (every byte value).
function H.bytes(n, seed)
  local parts = {}
  local x = seed or 12345
  local chunk = {}
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    chunk[#chunk + 1] = string.char(x % 256)
    if #chunk == 4096 or i == n then
      parts[#parts + 1] = table.concat(chunk)
      chunk = {}
    end
  end
  return table.concat(parts)
end

--- Runs the code in SOURCE only on Lua 5.4+ (for syntax such as <close>
-- that older parsers reject); ENV gives it its variables.  Returns false
-- when skipped.
function H.lua54(source, env)
  if _VERSION < "Lua 5.4" then return false end
  setmetatable(env, { __index = _G })
  local fn = assert(load(source, "=lua54", "t", env))
  fn()
  return true
end

return H
