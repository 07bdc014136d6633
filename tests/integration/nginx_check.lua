--- nginx_check.lua: the loopback client's plans and the checks of
-- nginx_test.sh (examples/openresty under a real nginx).
--
--   lua nginx_check.lua load DIR PORT CLIENTS N   writes DIR/load-C.curl
--   lua nginx_check.lua final DIR PORT CLIENTS    writes DIR/final.curl
--   lua nginx_check.lua verify DIR STORE CLIENTS N KILLED INITIAL_PIDS
--
-- A plan is a curl config file: one transfer per request, each writing
-- its body then "<<@@ CODE WORKER URL" (WORKER: the X-Worker header).
-- Requests name themselves: "cCnI" is request I of client C; its memory
-- text, kv value and state carry that name, so the checks know what every
-- acknowledged write must have left in the store.

local memmapfs = require "memmapfs"

local mode = arg[1]
local dir = arg[2]

-- The request I of client C does what I % 6 says.
local KINDS = { [0] = "memory", "kv_put", "kv_get", "search", "state_put", "state_get" }

local function name(c, i) return ("c%dn%d"):format(c, i) end
local function text_of(n) return ("note %s about green tea and the morning"):format(n) end
local function value_of(n) return "value-" .. n .. ("-x"):rep(20) end

local function q(s) return '"' .. s .. '"' end

--- Appends one transfer to the plan OUT.
local function transfer(out, url, method, data, extra)
  out[#out + 1] = "url = " .. q(url)
  if method then out[#out + 1] = "request = " .. q(method) end
  if data then out[#out + 1] = "data-binary = " .. q(data) end
  if extra then out[#out + 1] = extra end
  out[#out + 1] = 'write-out = "<<@@ %{http_code} %header{x-worker} %{url_effective}\\n"'
  out[#out + 1] = "max-time = 10"
  out[#out + 1] = "next"
end

local function write(path, lines)
  local f = assert(io.open(path, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

--- The records of a client's output: { body=, code=, worker=, url= }.
local function records(path)
  local list = {}
  for body, code, worker, url in read(path):gmatch("(.-)<<@@ (%d+) (%S*) (%S+)\n") do
    list[#list + 1] = { body = body, code = tonumber(code), worker = worker, url = url }
  end
  return list
end

local failures = 0
local function check(cond, fmt, ...)
  if not cond then
    failures = failures + 1
    if failures <= 20 then io.stderr:write("FAIL: ", fmt:format(...), "\n") end
  end
  return cond
end

if mode == "load" then
  local port, clients, n = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
  local base = ("http://127.0.0.1:%d"):format(port)
  for c = 1, clients do
    local out = {}
    for i = 0, n - 1 do
      local nm, kind = name(c, i), KINDS[i % 6]
      if kind == "memory" then
        transfer(out, base .. "/memory?tags=req:" .. nm .. ",client:" .. c, "POST", text_of(nm))
      elseif kind == "kv_put" then
        transfer(out, base .. "/kv/" .. nm, "PUT", value_of(nm))
      elseif kind == "kv_get" then -- the key this client wrote just before
        transfer(out, base .. "/kv/" .. name(c, i - 1) .. "?reader=" .. nm)
      elseif kind == "search" then -- the memory this client added 3 requests ago
        transfer(out, base .. "/search?q=" .. name(c, i - 3))
      elseif kind == "state_put" then
        transfer(out, base .. "/state?from=" .. nm, "PUT", "state " .. nm)
      else
        transfer(out, base .. "/state")
      end
    end
    write(("%s/load-%d.curl"):format(dir, c), out)
  end
  os.exit(0)
end

-- What the load acknowledged, from every client's output.
local function acknowledged(clients, n)
  local ack = { memory = {}, kv = {}, versions = {}, lost = 0, records = 0 }
  for c = 1, clients do
    local recs = records(("%s/load-%d.out"):format(dir, c))
    check(#recs == n, "client %d: %d answers for %d requests", c, #recs, n)
    ack.records = ack.records + #recs
    local lost = 0
    for _, r in ipairs(recs) do
      local nm = r.url:match("(c%d+n%d+)")
      if r.code == 0 then
        lost = lost + 1 -- its connection died with the killed worker
      elseif r.url:find("/memory?", 1, true) then
        local id = r.body:match("^id (%d+)\n$")
        if check(r.code == 201 and id, "%s: %d %q", r.url, r.code, r.body) then
          ack.memory[nm] = tonumber(id)
        end
      elseif r.url:find("/kv/c%d+n%d+$") then -- a PUT
        if check(r.code == 204, "%s: %d %q", r.url, r.code, r.body) then ack.kv[nm] = true end
      elseif r.url:find("/state?from=", 1, true) then
        local v = r.body:match("^version (%d+)\n$")
        if check(r.code == 200 and v, "%s: %d %q", r.url, r.code, r.body) then
          v = tonumber(v)
          check(ack.versions[v] == nil, "state version %d acknowledged twice", v)
          ack.versions[v] = nm
        end
      elseif r.url:find("?reader=", 1, true) then -- this client's own write, read back
        check(r.code == 200 and r.body == value_of(nm) or r.code == 404 and not ack.kv[nm],
          "%s: %d %q", r.url, r.code, r.body)
      else
        check(r.code == 200, "%s: %d %q", r.url, r.code, r.body)
      end
    end
    -- a killed worker takes the requests in flight on its connections
    check(lost <= 4, "client %d: %d requests lost their connection", c, lost)
    ack.lost = ack.lost + lost
  end
  return ack
end

if mode == "final" then
  -- Every acknowledged key read back, and some memories searched for, each
  -- on a new connection: the answers come from every worker, the one that
  -- replaced the killed worker too.
  local port, clients, n = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
  local base = ("http://127.0.0.1:%d"):format(port)
  local ack = acknowledged(clients, n)
  local out, keys, k = {}, {}, 0
  for nm in pairs(ack.kv) do keys[#keys + 1] = nm end
  table.sort(keys)
  for _, nm in ipairs(keys) do
    transfer(out, base .. "/kv/" .. nm, nil, nil, 'header = "Connection: close"')
  end
  for nm in pairs(ack.memory) do
    k = k + 1
    if k > 40 then break end
    transfer(out, base .. "/search?q=" .. nm, nil, nil, 'header = "Connection: close"')
  end
  write(dir .. "/final.curl", out)
  if failures > 0 then os.exit(1) end
  os.exit(0)
end

assert(mode == "verify", "usage: nginx_check.lua load|final|verify ...")
local store, clients, n, killed = arg[3], tonumber(arg[4]), tonumber(arg[5]), arg[6]
local initial = {}
for pid in (arg[7] or ""):gmatch("%d+") do initial[pid] = true end

local ack = acknowledged(clients, n)
local nmem, nkv, nver = 0, 0, 0
for _ in pairs(ack.memory) do nmem = nmem + 1 end
for _ in pairs(ack.kv) do nkv = nkv + 1 end
for _ in pairs(ack.versions) do nver = nver + 1 end
-- a server answering mostly 503 or 500 must not pass for lack of writes
check(ack.records - ack.lost >= ack.records * 0.9, "only %d of %d requests answered",
  ack.records - ack.lost, ack.records)
check(nmem >= n * clients / 6 * 0.9, "only %d memories acknowledged", nmem)

-- The final pass over HTTP: every key read back from some worker.
local respawned = false
for _, r in ipairs(records(dir .. "/final.out")) do
  check(r.worker ~= killed, "the killed worker %s answered after its death", killed)
  if r.worker ~= "" and not initial[r.worker] then respawned = true end
  local nm = r.url:match("(c%d+n%d+)")
  if r.url:find("/kv/", 1, true) then
    check(r.code == 200 and r.body == value_of(nm), "GET %s after the load: %d %q", r.url,
      r.code, r.body)
  else
    local id = tostring(ack.memory[nm])
    check(r.code == 200 and r.body:find("^" .. id .. "\t") ~= nil,
      "search %s: memory %s not found: %d %q", nm, id, r.code, r.body)
  end
end
check(respawned, "no answer from the worker that replaced the killed one")

-- The store, opened after nginx stopped: every acknowledged write is there.
local db = assert(memmapfs.open(store, { readonly = true }))
for nm, id in pairs(ack.memory) do
  local m = db:get_memory(id)
  if check(m ~= nil, "memory %d (%s) acknowledged but missing", id, nm) then
    check(m.text == text_of(nm), "memory %d: %q, want %q", id, m.text, text_of(nm))
    check(m.tags[1] == "req:" .. nm, "memory %d: tag %q", id, tostring(m.tags[1]))
  end
end
for nm in pairs(ack.kv) do
  local v = db:get_kv(nm)
  check(v == value_of(nm), "kv %s acknowledged but %s", nm, v and ("%q"):format(v) or "missing")
end
local _, version = db:get_state()
for v, nm in pairs(ack.versions) do
  check(v <= version, "state version %d (%s) acknowledged, the store is at %d", v, nm, version)
end
local stats = assert(db:stats())
check(stats.memories >= nmem, "%d memories in the store, %d acknowledged", stats.memories, nmem)
db:close()

print(("acknowledged: %d memories, %d keys, %d state versions; %d requests lost with the "
  .. "killed worker; store: %d memories, state version %d"):format(nmem, nkv, nver, ack.lost,
  stats.memories, version))
if failures > 0 then
  io.stderr:write(("%d checks failed\n"):format(failures))
  os.exit(1)
end
