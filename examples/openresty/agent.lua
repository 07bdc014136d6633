--- agent.lua: the endpoints of examples/openresty/nginx.conf over one
-- memmapfs store that every nginx worker opens.
--
--   POST /memory?tags=a,b   body: the text      -> 201 "id N"
--   GET  /search?q=...&limit=N                 -> 200 "id<TAB>score<TAB>text" lines
--   PUT  /kv/KEY            body: the value     -> 204
--   GET  /kv/KEY                                -> 200 the value, or 404
--   PUT  /state             body: the state     -> 200 "version N"
--   GET  /state                                 -> 200 the state, X-State-Version
--
-- Every response says which worker answered (X-Worker).  What keeps the
-- event loop moving (docs/openresty.md): the store is opened with
-- lock_timeout_ms = 0, so a write never waits for the writer lock: when
-- another worker holds it, the call returns BUSY at once and the request
-- sleeps 2 ms on an nginx timer (ngx.sleep yields; the worker serves
-- others meanwhile) before it tries again.  sync = "batch": a write is
-- acknowledged once it is in the log (it survives the worker being
-- killed); fsync happens in the background within sync_ms.

local memmapfs = require "memmapfs"

local ngx = ngx
local M = {}

local STORE = os.getenv("MEMMAPFS_STORE") or "/var/lib/memmapfs-agent"
local OPTIONS = { sync = "batch", lock_timeout_ms = 0 }
local TRIES, PAUSE = 500, 0.002 -- BUSY: up to 500 tries 2 ms apart (1 s)

local db -- this worker's handle: opened after the fork, by init_worker

--- Calls db[method](db, ...), trying again after a timer-based pause
-- while it says BUSY; returns what the last call returned.
local function call(method, ...)
  local a, b, c
  for _ = 1, TRIES do
    a, b, c = db[method](db, ...)
    if a ~= nil or c ~= "BUSY" then break end
    ngx.sleep(PAUSE)
  end
  return a, b, c
end

-- The status for a failure CODE; an unexpected one is logged as an error.
local STATUS = { INVALID = 400, NOTFOUND = 404, REJECTED = 422, BUSY = 503, LIMIT = 422 }

local function fail(msg, code)
  local status = STATUS[code] or 500
  if status == 500 then ngx.log(ngx.ERR, "memmapfs: ", msg, " (", code, ")") end
  ngx.status = status
  ngx.say(code, ": ", msg)
  return ngx.exit(status)
end

local function reply(status, body)
  ngx.status = status
  if body then ngx.print(body) end
  return ngx.exit(status)
end

-- The request body (nginx.conf keeps bodies in memory), "" when none.
local function body()
  ngx.req.read_body()
  return ngx.req.get_body_data() or ""
end

--- init_worker_by_lua: opens this worker's handle.  A zero-delay timer
-- does it, because the open may meet another worker's write (BUSY with
-- lock_timeout_ms = 0) and only a timer or a request may ngx.sleep.
-- Requests that come before it is open get 503.
function M.init_worker()
  local ok, err = ngx.timer.at(0, function(premature)
    if premature then return end
    local h, msg, code
    for _ = 1, TRIES do
      h, msg, code = memmapfs.open(STORE, OPTIONS)
      if h or code ~= "BUSY" then break end
      ngx.sleep(PAUSE)
    end
    if not h then
      ngx.log(ngx.ERR, "memmapfs: cannot open ", STORE, ": ", msg, " (", code, ")")
      return
    end
    db = h
  end)
  if not ok then ngx.log(ngx.ERR, "memmapfs: cannot start the open timer: ", err) end
end

-- Every handler starts here: the worker's pid in a header; false (and a
-- 503 sent) until the store is open.
local function ready()
  ngx.header["X-Worker"] = ngx.worker.pid()
  if db then return true end
  reply(503, "store not open yet\n")
  return false
end

local function tags_of(arg)
  local tags = {}
  for t in (arg or ""):gmatch("[^,]+") do tags[#tags + 1] = ngx.unescape_uri(t) end
  return tags
end

--- POST /memory?tags=a,b with the text as body.
function M.memory()
  if not ready() then return end
  if ngx.req.get_method() ~= "POST" then return reply(405) end
  local id, msg, code = call("append_memory", body(), tags_of(ngx.var.arg_tags))
  if not id then return fail(msg, code) end
  return reply(201, ("id %d\n"):format(id))
end

--- GET /search?q=...&limit=N
function M.search()
  if not ready() then return end
  local q = ngx.unescape_uri(ngx.var.arg_q or "")
  local hits, msg, code = db:search_memory(q, { limit = tonumber(ngx.var.arg_limit) or 10 })
  if not hits then return fail(msg, code) end
  local out = {}
  for i, h in ipairs(hits) do
    out[i] = ("%d\t%.3f\t%s\n"):format(h.id, h.score, (h.text:gsub("\n", " ")))
  end
  return reply(200, table.concat(out))
end

--- PUT /kv/KEY (value as body), GET /kv/KEY
function M.kv()
  if not ready() then return end
  local key = ngx.unescape_uri(ngx.var.uri:sub(#"/kv/" + 1))
  local method = ngx.req.get_method()
  if method == "PUT" then
    local ok, msg, code = call("set_kv", key, body())
    if not ok then return fail(msg, code) end
    return reply(204)
  elseif method == "GET" then
    local value, msg, code = db:get_kv(key)
    if value == nil and msg then return fail(msg, code) end
    if value == nil then return reply(404, "no such key\n") end
    return reply(200, value)
  end
  return reply(405)
end

--- PUT /state (the state as body), GET /state
function M.state()
  if not ready() then return end
  local method = ngx.req.get_method()
  if method == "PUT" then
    local version, msg, code = call("update_state", body())
    if not version then return fail(msg, code) end
    return reply(200, ("version %d\n"):format(version))
  elseif method == "GET" then
    local value, version, code = db:get_state()
    if value == nil and code then return fail(version, code) end
    ngx.header["X-State-Version"] = version
    return reply(200, value or "")
  end
  return reply(405)
end

return M
