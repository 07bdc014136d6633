-- mmfs_bench.lua: the memmapfs rows from Lua 5.4 (and W6 from LuaJIT too: the
-- same script, system "memmapfs-luajit"), through require "memmapfs".
--
--   lua5.4 bench/mmfs_bench.lua w1 DIR MEMFILE COUNT     append_memory, sync="always"
--   lua5.4 bench/mmfs_bench.lua w2 DIR MEMFILE N LABEL   db:batch of 1,000, sync="batch", sync()
--   lua5.4 bench/mmfs_bench.lua w3 DIR QFILE LABEL [PASSES]  search_memory top 10: a
--                                                        warm-up pass, PASSES timed ones
--   lua5.4 bench/mmfs_bench.lua w4 DIR KVFILE N          set_kv in batches, random get_kv
--   lua5.4 bench/mmfs_bench.lua w6 DIR MEMFILE N         W2 ingest with no policy, a trivial
--                                                        hook, a routing function; N put_session
--                                                        with no policy and routing + a schema:
--                                                        CPU time, side by side, batch by batch
--   lua5.4 bench/mmfs_bench.lua w7 DIR BYTES             64 KiB append_stream, read back
--
-- Run from the project root with LUA_PATH=lua/?.lua;lua/?/init.lua;bench/?.lua
-- and LUA_CPATH=<build>/lua/?.so;<build>/bench/?.so (bench/run sets them).
local B = require "benchlib"
local memmapfs = require "memmapfs"
local SYS = rawget(_G, "jit") and "memmapfs-luajit" or "memmapfs-lua"

local function open(dir, sync, fresh, policy)
  if fresh then B.rmtree(dir) end
  return B.check(memmapfs.open(dir, { sync = sync, policy = policy }))
end

local W = {}

function W.w1(dir, memfile, count)
  count = tonumber(count)
  local texts, tags = {}, {}
  for i, line in ipairs(B.head(memfile, count)) do texts[i], tags[i] = B.memline(line) end
  local db = open(dir, "always", true)
  local t0 = B.now()
  for i = 1, count do B.check(db:append_memory(texts[i], tags[i])) end
  local dt = B.now() - t0
  B.check(db:close())
  B.result("W1", SYS, "appends_per_s", count / dt, "ops/s")
end

local function ingest(db, memfile, n)
  local lines = io.lines(memfile)
  local done = 0
  while done < n do
    local k = math.min(1000, n - done)
    B.check(db:batch(function(tx)
      for _ = 1, k do
        local line = lines()
        if not line then B.die(memfile .. ": too few lines") end
        local text, tags = B.memline(line)
        tx:append_memory(text, tags)
      end
    end))
    done = done + k
  end
end

function W.w2(dir, memfile, n, label)
  n = tonumber(n)
  B.rmtree(dir)
  local t0 = B.now()
  local db = open(dir, "batch", false)
  ingest(db, memfile, n)
  B.check(db:sync())
  B.check(db:close())
  local dt = B.now() - t0
  B.result("W2", SYS, "ingest_per_s_" .. label, n / dt, "memories/s")
  B.result("W2", SYS, "disk_bytes_" .. label, B.disk_bytes(dir), "bytes")
  B.result("W2", SYS, "peak_rss_" .. label, B.peak_rss(), "bytes")
end

-- One warm-up pass, then PASSES timed passes (one W3 run each).
function W.w3(dir, qfile, label, passes)
  passes = tonumber(passes or 1)
  local qs = {}
  for line in io.lines(qfile) do qs[#qs + 1] = B.or_query(line) end
  local db = open(dir, "batch", false)
  local opts = { limit = 10 }
  for i = 1, #qs do B.check(db:search_memory(qs[i], opts)) end -- warm-up pass
  for _ = 1, passes do
    local lat, hits = {}, 0
    for i = 1, #qs do
      local t0 = B.now()
      local res = B.check(db:search_memory(qs[i], opts))
      lat[i] = (B.now() - t0) * 1e6
      hits = hits + #res
    end
    table.sort(lat)
    B.result("W3", SYS, "p50_us_" .. label, B.pct(lat, 0.5), "us")
    B.result("W3", SYS, "p99_us_" .. label, B.pct(lat, 0.99), "us")
    io.stderr:write(string.format("memmapfs-lua w3: %.2f hits/query\n", hits / #qs))
  end
  B.check(db:close())
end

function W.w4(dir, kvfile, n)
  n = tonumber(n)
  B.rmtree(dir)
  local keys = B.random_keys(n, n)
  collectgarbage()
  local rss0, anon0 = B.rss()
  local t0 = B.now()
  local db = open(dir, "batch", false)
  local lines = io.lines(kvfile)
  local done = 0
  while done < n do
    local k = math.min(1000, n - done)
    B.check(db:batch(function(tx)
      for _ = 1, k do
        local key, value = lines():match("^([^\t]*)\t(.*)$")
        tx:set_kv(key, value)
      end
    end))
    done = done + k
  end
  B.check(db:sync())
  local dt_set = B.now() - t0
  local get, sink = db.get_kv, 0
  t0 = B.now()
  for i = 1, n do
    local v = get(db, keys[i])
    if not v then B.die("get_kv: missing " .. keys[i]) end
    sink = sink + #v
  end
  local dt_get = B.now() - t0
  collectgarbage()
  local rss1, anon1 = B.rss()
  io.stderr:write("memmapfs-lua w4 sink ", sink, "\n")
  B.result("W4", SYS, "sets_per_s", n / dt_set, "ops/s")
  B.result("W4", SYS, "gets_per_s", n / dt_get, "ops/s")
  B.result("W4", SYS, "rss_per_entry", (rss1 - rss0) / n, "bytes")
  B.result("W4", SYS, "rss_anon_per_entry", math.max(0, anon1 - anon0) / n, "bytes")
  B.check(db:close())
end

-- W6: the policies are those of mmfs_bench.c (the same text), measured as
-- there: side by side, one store per variant open at once, the same batches
-- of 1,000 committed to every store in turn (the variant that goes first
-- rotates from batch to batch), each db:batch timed in CPU time of the
-- calling thread and summed per variant.  Reading the corpus, building the
-- arguments, open, sync and close are not timed.
local W6_HOOK = "return { hooks = { append_memory = function(cmd, tx) end } }"
local W6_ROUTE = [[return { route = function(mem) return mem.tags.t01 and "special" or "default" end,
  routes = { default = {}, special = {} } }]]
local W6_SCHEMA = [[return { route = function(mem) return mem.tags.t01 and "special" or "default" end,
  routes = { default = {}, special = {} },
  schemas = { session = { id = "string", intent_id = "string", created_at = "integer",
    payload = "string?", status = { "open", "closed" } } } }]]
local W6_BATCH = 1000

-- Opens one store per variant ({ name, policy }) under DIR.
local function w6_open(dir, variants)
  for _, v in ipairs(variants) do
    v.db = open(dir .. "/" .. v.name, "batch", true, v.policy)
    v.cpu = 0
  end
end

-- Commits batch K (FILL(tx) adds its commands) to every store in turn, the
-- first one rotating with K, each timed in thread CPU time.
local function w6_commit(variants, k, fill)
  local nv = #variants
  for j = 0, nv - 1 do
    local v = variants[(k + j) % nv + 1]
    local t0 = B.cpu_now()
    B.check(v.db:batch(fill))
    v.cpu = v.cpu + (B.cpu_now() - t0)
  end
end

-- Syncs and closes every store (not timed), checking it holds N of WHAT
-- ("memories" or "sessions").
local function w6_close(variants, n, what)
  for _, v in ipairs(variants) do
    B.check(v.db:sync())
    local got = B.check(v.db:stats())[what]
    B.check(v.db:close())
    if got ~= n then B.die(string.format("w6 %s: %s %s stored, want %d", v.name, tostring(got), what, n)) end
  end
end

local function w6_memories(dir, memfile, n)
  local vs = { { name = "none" }, { name = "hook", policy = W6_HOOK }, { name = "route", policy = W6_ROUTE } }
  w6_open(dir, vs)
  local lines = io.lines(memfile)
  local texts, tags = {}, {}
  local m = 0
  local function fill(tx)
    for i = 1, m do tx:append_memory(texts[i], tags[i]) end
  end
  local done, k = 0, 0
  while done < n do
    m = math.min(W6_BATCH, n - done)
    for i = 1, m do
      local line = lines()
      if not line then B.die(memfile .. ": too few lines") end
      texts[i], tags[i] = B.memline(line)
    end
    w6_commit(vs, k, fill)
    done, k = done + m, k + 1
  end
  w6_close(vs, n, "memories")
  return vs[1].cpu, vs[2].cpu, vs[3].cpu
end

local function w6_sessions(dir, n)
  local vs = { { name = "snone" }, { name = "sschema", policy = W6_SCHEMA } }
  w6_open(dir, vs)
  local ss = {}
  local m = 0
  local function fill(tx)
    for i = 1, m do tx:put_session(ss[i]) end
  end
  local done, k = 0, 0
  while done < n do
    m = math.min(W6_BATCH, n - done)
    for j = 1, m do
      local i = done + j - 1
      ss[j] = { id = string.format("s%08d", i), intent_id = "intent-" .. (i % 16),
                created_at = 1700000000 + i,
                payload = string.format('{"step":%d,"note":"bench"}', i), status = "open" }
    end
    w6_commit(vs, k, fill)
    done, k = done + m, k + 1
  end
  w6_close(vs, n, "sessions")
  return vs[1].cpu, vs[2].cpu
end

function W.w6(dir, memfile, n)
  n = tonumber(n)
  B.rmtree(dir)
  local none, hook, route = w6_memories(dir, memfile, n)
  local snone, sschema = w6_sessions(dir, n)
  B.rmtree(dir)
  local us = 1e6 / n
  B.result("W6", SYS, "us_per_append_no_policy", none * us, "us")
  B.result("W6", SYS, "us_per_append_hook", hook * us, "us")
  B.result("W6", SYS, "us_per_append_route", route * us, "us")
  B.result("W6", SYS, "us_per_put_session_no_policy", snone * us, "us")
  B.result("W6", SYS, "us_per_put_session_route_schema", sschema * us, "us")
  B.result("W6", SYS, "added_us_hook", (hook - none) * us, "us")
  B.result("W6", SYS, "added_us_route", (route - none) * us, "us")
  B.result("W6", SYS, "added_us_route_schema", (sschema - snone) * us, "us")
end

function W.w7(dir, bytes)
  bytes = tonumber(bytes)
  local CHUNK = 64 * 1024
  local base = string.rep("memmapfs", math.floor(CHUNK / 8))
  local db = open(dir, "batch", true)
  local t0 = B.now()
  local off = 0
  while off < bytes do
    local n = math.min(CHUNK, bytes - off)
    local chunk = n == CHUNK and base or base:sub(1, n)
    B.check(db:append_stream("w7", chunk))
    off = off + n
  end
  B.check(db:sync())
  local dt = B.now() - t0
  B.check(db:close())
  B.result("W7", SYS, "write_gb_per_s", bytes / dt / 1e9, "GB/s")

  db = open(dir, "batch", false)
  local got, sink = 0, 0
  t0 = B.now()
  local r = B.check(db:open_read("w7"))
  while true do
    local s = r:read(CHUNK)
    if not s or #s == 0 then break end
    sink = (sink + B.consume(s)) % 4294967296 -- no bitwise ops: LuaJIT parses this file too
    got = got + #s
  end
  r:close()
  dt = B.now() - t0
  B.check(db:close())
  if got ~= bytes then B.die(string.format("w7: read %d of %d bytes", got, bytes)) end
  io.stderr:write("memmapfs-lua w7 sink ", sink, "\n")
  B.result("W7", SYS, "read_gb_per_s", bytes / dt / 1e9, "GB/s")
end

local w = W[arg[1] or ""]
if not w then B.die("usage: see the comment at the top of bench/mmfs_bench.lua") end
w((table.unpack or unpack)(arg, 2))
