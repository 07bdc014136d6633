-- ffi_bench.lua: the per-call cost of the LuaJIT FFI binding (memmapfs.ffi
-- over libmemmapfs.so) against the C module (memmapfs.core + init.lua),
-- both under LuaJIT, in one process on the same machine.  Not a
-- WORKLOADS.md workload: it answers "what does choosing the FFI binding
-- cost or save per call".
--
--   luajit bench/ffi_bench.lua DIR MEMORIES_TSV QUERIES_TSV N [PASSES]
--
-- Each binding gets its own store under DIR (removed first), filled with
-- the first N memories of MEMORIES_TSV and N kv pairs, in batches of 1,000
-- (sync = "batch": a commit returns once written).  Then PASSES rounds
-- (default 5), the two bindings alternating within each round so that both
-- see the same machine:
--   append_batch_ns  one tx:append_memory in a batch of 1,000, commit included
--   get_kv_ns        one db:get_kv of an existing key (random order)
--   search_ns        one db:search_memory(q, { limit = 10 }) of the OR
--                    queries of QUERIES_TSV (as W3: "w1 OR w2 OR w3")
-- and prints, per binding and metric, the median over the rounds as a
-- benchutil result line: "R FFI memmapfs-luajit-c get_kv_ns 210 ns".
-- MMFS_LIBRARY names the library when memmapfs.ffi cannot find it itself.
local ffi = require "ffi"

ffi.cdef [[
struct mmfs_bench_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk, struct mmfs_bench_timespec *ts);
]]
local TS = ffi.new("struct mmfs_bench_timespec")
local CLOCK_MONOTONIC = 1

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, TS)
  return tonumber(TS.tv_sec) + tonumber(TS.tv_nsec) * 1e-9
end

local function die(msg)
  io.stderr:write("E ", tostring(msg), "\n")
  os.exit(1)
end

local function check(ok, msg, code)
  if ok == nil or ok == false then die(("%s (%s)"):format(tostring(msg), tostring(code))) end
  return ok
end

local dir, memfile, qfile, n, passes = arg[1], arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5] or 5)
if not (dir and memfile and qfile and n) then
  die("usage: luajit bench/ffi_bench.lua DIR MEMORIES_TSV QUERIES_TSV N [PASSES]")
end

local bindings = {
  { name = "memmapfs-luajit-c", m = require "memmapfs" },
  { name = "memmapfs-luajit-ffi", m = require "memmapfs.ffi" },
}
if bindings[1].m == bindings[2].m then die("require 'memmapfs' gave the FFI binding: unset LUA_INIT") end

-- The corpus: memories (text, tags), kv pairs, queries.
local texts, tags = {}, {}
for line in io.lines(memfile) do
  if #texts >= n then break end
  local tg, text = line:match("^[^\t]*\t([^\t]*)\t(.*)$")
  if not tg then die("malformed memories line") end
  local t = {}
  for tag in tg:gmatch("[^,]+") do t[#t + 1] = tag end
  texts[#texts + 1], tags[#tags + 1] = text, t
end
if #texts < n then die(memfile .. ": only " .. #texts .. " memories") end
local queries = {}
for line in io.lines(qfile) do
  local words = {}
  for w in (line:match("\t(.*)$") or line):gmatch("%S+") do words[#words + 1] = w end
  queries[#queries + 1] = table.concat(words, " OR ")
end
local keys, order = {}, {}
for i = 1, n do keys[i] = ("key:%08d"):format(i) end
math.randomseed(42)
for i = 1, n do order[i] = keys[math.random(n)] end

local BATCH = 1000

-- Appends every memory (and one kv pair each) in batches; seconds spent
-- in the append calls and commits.
local function fill(db)
  local t0 = now()
  for first = 1, n, BATCH do
    check(db:batch(function(tx)
      for i = first, math.min(first + BATCH - 1, n) do
        check(tx:append_memory(texts[i], tags[i]))
      end
    end))
  end
  local dt = now() - t0
  for first = 1, n, BATCH do
    check(db:batch(function(tx)
      for i = first, math.min(first + BATCH - 1, n) do check(tx:set_kv(keys[i], texts[i])) end
    end))
  end
  return dt
end

local function time_get(db)
  local sink = 0
  local t0 = now()
  for i = 1, n do
    local v = db:get_kv(order[i])
    sink = sink + #v
  end
  local dt = now() - t0
  if sink == 0 then die("get_kv read nothing") end
  return dt / n
end

local function time_search(db)
  local hits = 0
  local t0 = now()
  for i = 1, #queries do
    hits = hits + #check(db:search_memory(queries[i], { limit = 10 }))
  end
  local dt = now() - t0
  if hits == 0 then die("no query found anything") end
  return dt / #queries
end

local samples = {}
local function sample(b, metric, seconds)
  local k = b.name .. " " .. metric
  samples[k] = samples[k] or {}
  table.insert(samples[k], seconds * 1e9)
end

-- one search per store first: memories are indexed lazily (by the
-- committer or the next search), which is not the per-call cost
local function warm(db) check(db:search_memory(queries[1], { limit = 10 })) end

for round = 1, passes do
  for _, b in ipairs(bindings) do
    local path = ("%s/%s-%d"):format(dir, b.name, round)
    os.execute(("rm -rf '%s'"):format(path))
    local db = check(b.m.open(path))
    sample(b, "append_batch_ns", fill(db) / n)
    b.db = db
  end
  for _, b in ipairs(bindings) do warm(b.db) end
  for _, b in ipairs(bindings) do sample(b, "get_kv_ns", time_get(b.db)) end
  for _, b in ipairs(bindings) do sample(b, "search_ns", time_search(b.db)) end
  for _, b in ipairs(bindings) do
    check(b.db:close())
    os.execute(("rm -rf '%s/%s-%d'"):format(dir, b.name, round))
  end
end

for _, metric in ipairs { "append_batch_ns", "get_kv_ns", "search_ns" } do
  for _, b in ipairs(bindings) do
    local s = samples[b.name .. " " .. metric]
    table.sort(s)
    io.write(("R FFI %s %s %.6g ns\n"):format(b.name, metric, s[math.floor((#s + 1) / 2)]))
  end
end
