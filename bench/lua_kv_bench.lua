-- lua_kv_bench.lua: the Lua 5.4 peers of W4 (key-value), for the memmapfs
-- Lua row of mmfs_bench.lua.
--
--   lua5.4 bench/lua_kv_bench.lua luasql DB KVFILE N   luasql.sqlite3 (Debian's lua-sql-sqlite3)
--   lua5.4 bench/lua_kv_bench.lua table KVFILE N       a plain Lua table (the upper bound)
--
-- luasql has no prepared statements: the loop formats each statement with
-- conn:escape, the way luasql is used.  Same database setup as the C peer:
-- journal_mode=WAL, synchronous=FULL, kv(k TEXT PRIMARY KEY, v BLOB)
-- WITHOUT ROWID, 1,000 sets per transaction.
local B = require "benchlib"

local function report(system, n, dt_set, dt_get, rss0, anon0)
  collectgarbage()
  local rss1, anon1 = B.rss()
  B.result("W4", system, "sets_per_s", n / dt_set, "ops/s")
  B.result("W4", system, "gets_per_s", n / dt_get, "ops/s")
  B.result("W4", system, "rss_per_entry", (rss1 - rss0) / n, "bytes")
  B.result("W4", system, "rss_anon_per_entry", math.max(0, anon1 - anon0) / n, "bytes")
end

local P = {}

function P.luasql(db, kvfile, n)
  n = tonumber(n)
  local driver = require "luasql.sqlite3"
  for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(db .. suffix) end
  local keys = B.random_keys(n, n)
  collectgarbage()
  local rss0, anon0 = B.rss()
  local t0 = B.now()
  local env = B.check(driver.sqlite3())
  local conn = B.check(env:connect(db))
  B.check(conn:execute "PRAGMA journal_mode=WAL")
  B.check(conn:execute "PRAGMA synchronous=FULL")
  B.check(conn:execute "CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
  conn:setautocommit(false)
  local i = 0
  for line in io.lines(kvfile) do
    if i >= n then break end
    local k, v = line:match("^([^\t]*)\t(.*)$")
    B.check(conn:execute(string.format("INSERT OR REPLACE INTO kv(k, v) VALUES('%s','%s')",
      conn:escape(k), conn:escape(v))))
    i = i + 1
    if i % 1000 == 0 then B.check(conn:commit()) end
  end
  B.check(conn:commit())
  local dt_set = B.now() - t0
  local sink = 0
  t0 = B.now()
  for j = 1, n do
    local cur = B.check(conn:execute(string.format("SELECT v FROM kv WHERE k = '%s'",
      conn:escape(keys[j]))))
    local v = cur:fetch()
    if not v then B.die("luasql: missing " .. keys[j]) end
    sink = sink + #v
    cur:close()
  end
  local dt_get = B.now() - t0
  io.stderr:write("luasql w4 sink ", sink, "\n")
  report("luasql-sqlite3", n, dt_set, dt_get, rss0, anon0)
  conn:close()
  env:close()
end

function P.table(kvfile, n)
  n = tonumber(n)
  local keys = B.random_keys(n, n)
  collectgarbage()
  local rss0, anon0 = B.rss()
  local t0 = B.now()
  local t, i = {}, 0
  for line in io.lines(kvfile) do
    if i >= n then break end
    local k, v = line:match("^([^\t]*)\t(.*)$")
    t[k] = v
    i = i + 1
  end
  local dt_set = B.now() - t0
  local sink = 0
  t0 = B.now()
  for j = 1, n do
    local v = t[keys[j]]
    if not v then B.die("table: missing " .. keys[j]) end
    sink = sink + #v
  end
  local dt_get = B.now() - t0
  io.stderr:write("lua table w4 sink ", sink, "\n")
  report("lua-table", n, dt_set, dt_get, rss0, anon0)
end

local p = P[arg[1] or ""]
if not p then B.die("usage: see the comment at the top of bench/lua_kv_bench.lua") end
p(table.unpack(arg, 2))
