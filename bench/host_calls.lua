--- bench/host_calls.lua: what each kind of call costs an event loop (an
-- nginx worker, Neovim's UI thread), under LuaJIT through the C module,
-- on a store of MEMORIES memories.  Prints, per call kind, the median,
-- the 99th percentile and the maximum of single-call wall times.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua' LUA_CPATH='build/luajit/?.so' \
--     luajit bench/host_calls.lua [DIR] [MEMORIES]
--
-- DIR (default: a fresh directory under bench/out/) must be on the disk
-- whose fsync you want to measure; it is removed at the end.  The figures
-- of docs/openresty.md and docs/neovim.md come from this script.

local ffi = require "ffi"
local memmapfs = require "memmapfs"

ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } mmfs_bench_ts;
  int clock_gettime(int clk, mmfs_bench_ts *ts);
]]
local ts = ffi.new("mmfs_bench_ts")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local dir = arg[1] or ("bench/out/host_calls-%d"):format(os.time())
local MEMORIES = tonumber(arg[2]) or 10000
os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "'")

local words = { "tea", "coffee", "morning", "review", "deploy", "logs", "nginx", "editor",
  "agent", "memory", "search", "rotate", "weekly", "green", "black", "project" }
local function sentence(i)
  local t = {}
  for k = 1, 12 do t[k] = words[(i * 7 + k * 13) % #words + 1] end
  return table.concat(t, " ") .. " " .. i
end

-- Times FN(i) for i = 1..N; returns median, p99, max in microseconds.
local function measure(n, fn)
  local t = {}
  for i = 1, n do
    local t0 = now_us()
    fn(i)
    t[i] = now_us() - t0
  end
  table.sort(t)
  return t[math.ceil(n / 2)], t[math.ceil(n * 0.99)], t[n]
end

local rows = {}
local function row(name, n, fn)
  local p50, p99, max = measure(n, fn)
  rows[#rows + 1] = ("| %-42s | %6d | %9.1f | %9.1f | %9.1f |"):format(name, n, p50, p99, max)
end

local store = dir .. "/store"
local db = assert(memmapfs.open(store, { sync = "batch", lock_timeout_ms = 0 }))
for b = 0, MEMORIES - 1, 1000 do
  assert(db:batch(function(tx)
    for i = b + 1, math.min(b + 1000, MEMORIES) do
      assert(tx:append_memory(sentence(i), { "chat", "n:" .. i % 10 }))
    end
  end))
end
for i = 1, 1000 do assert(db:set_kv("key" .. i, ("v"):rep(100))) end
assert(db:update_state("idle"))
assert(db:search_memory("warm up the index"))

row("get_kv (hit)", 20000, function(i) assert(db:get_kv("key" .. (i % 1000 + 1))) end)
row("get_state", 20000, function() assert(db:get_state()) end)
local sub = assert(db:subscribe_state())
row("sub:next(0), nothing new", 20000, function() sub:next(0) end)
row("get_memory", 20000, function(i) assert(db:get_memory(i % MEMORIES + 1)) end)
row("list_memories{limit=20}", 2000, function() assert(db:list_memories({ limit = 20 })) end)
row("search_memory 2 terms, limit 10", 2000, function(i)
  assert(db:search_memory(words[i % #words + 1] .. " " .. words[(i + 5) % #words + 1],
    { limit = 10 }))
end)
row("set_kv, sync = batch", 5000, function(i) assert(db:set_kv("w" .. i, "value")) end)
row("append_memory, sync = batch", 5000, function(i)
  assert(db:append_memory(sentence(i), { "chat" }))
end)
row("update_state, sync = batch", 5000, function(i) assert(db:update_state("s" .. i)) end)
row("batch of 20 set_kv, sync = batch", 500, function(i)
  assert(db:batch(function(tx) for k = 1, 20 do tx:set_kv(("b%d-%d"):format(i, k), "v") end end))
end)
row("sync() after one set_kv (fdatasync)", 200, function(i)
  assert(db:set_kv("s" .. i, "v"))
  assert(db:sync())
end)
sub:close()
db:close()

local always = assert(memmapfs.open(store, { sync = "always", lock_timeout_ms = 0 }))
row("set_kv, sync = always (fdatasync)", 200, function(i) assert(always:set_kv("a" .. i, "v")) end)
always:close()

row(("open + close (%d memories)"):format(MEMORIES), 20, function()
  local h = assert(memmapfs.open(store, { lock_timeout_ms = 0 }))
  h:close()
end)

print(("memmapfs %s, %s, %d memories, %s"):format(memmapfs.version, jit and jit.version or _VERSION,
  MEMORIES, dir))
print("| call | n | median µs | p99 µs | max µs |")
print("| --- | ---: | ---: | ---: | ---: |")
for _, r in ipairs(rows) do print(r) end
os.execute("rm -rf '" .. dir .. "'")
