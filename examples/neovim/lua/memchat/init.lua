--- memchat: an AI chat's history and notes, per project, in a memmapfs
-- store (see docs/neovim.md).
--
--   require("memchat").setup()            -- the project: the nearest .git above cwd
--   require("memchat").chat("user", "How do I rotate the logs?")
--   :MemNote the log rotation lives in deploy/logrotate.conf
--   :MemSearch rotate logs                -- best matches in a scratch buffer
--   :MemHistory 20                        -- the last 20 chat turns
--
-- The agent (any other process with the store open) publishes its state
-- with db:update_state(...); the plugin follows it through the
-- subscription's descriptor (sub:fd()) in Neovim's own event loop
-- (vim.loop), with no timer and no polling: vim.g.memchat_state and
-- vim.g.memchat_state_version change and the User MemChatState
-- autocommand fires, within a millisecond or so of the update.
--
-- Nothing here waits on the UI thread: the store is opened with
-- lock_timeout_ms = 0, so a write that meets another process's write
-- returns BUSY at once and is tried again from a timer (vim.defer_fn).

local memmapfs = require "memmapfs"

local uv = vim.loop
local M = {}

local TRIES, PAUSE_MS = 200, 5 -- BUSY: up to 200 tries 5 ms apart

local cfg      -- setup's options, completed
local db       -- the open store
local sub, poll -- the state subscription and its libuv poll handle

-- The nearest directory at or above DIR that holds .git, else DIR.
local function project_root(dir)
  local d = dir
  while d and d ~= "" do
    if uv.fs_stat(d .. "/.git") then return d end
    local parent = d:match("^(.*)/[^/]+$")
    if parent == nil or parent == d then break end
    d = parent
  end
  return dir
end

-- The store of project ROOT: one directory per project under Neovim's
-- data directory, named after the project and a hash of its full path.
local function default_store(root)
  local name = (root:match("([^/]+)$") or "root"):gsub("[^%w%._-]", "_")
  return ("%s/memchat/%s-%s"):format(vim.fn.stdpath("data"), name, vim.fn.sha256(root):sub(1, 12))
end

--- Sets the plugin up; every option is optional:
--   root    the project's directory (default: the nearest .git above cwd)
--   store   the store's directory (default: per project, under stdpath("data"))
-- Opens the store and subscribes to its state.  Returns true, or nil, msg,
-- code when the store cannot be opened.
function M.setup(opts)
  opts = opts or {}
  M.close()
  local root = opts.root or project_root(uv.cwd())
  cfg = { root = root, store = opts.store or default_store(root) }
  vim.fn.mkdir(vim.fn.fnamemodify(cfg.store, ":h"), "p")
  local h, msg, code
  for _ = 1, TRIES do -- opening also takes the writer lock briefly
    h, msg, code = memmapfs.open(cfg.store, { sync = "batch", lock_timeout_ms = 0 })
    if h or code ~= "BUSY" then break end
    uv.sleep(1)
  end
  if not h then return nil, msg, code end
  db = h
  M.follow_state()
  return true
end

--- The store's directory (an agent opens the same one).
function M.path()
  return M.db():path()
end

--- The open store (setup first).
function M.db()
  assert(db, "memchat: call require('memchat').setup() first")
  return db
end

-- Publishes a state seen by the subscription to the editor.  Runs
-- scheduled: Vim's API cannot be called from a libuv callback.
local function publish(value, version)
  vim.g.memchat_state = value
  vim.g.memchat_state_version = version
  vim.api.nvim_exec_autocmds("User", { pattern = "MemChatState", modeline = false })
end

--- Subscribes to the store's state: the subscription's descriptor turns
-- readable when a newer version exists (written by this or any other
-- process); a libuv poll on it reads the new state without waiting
-- (sub:next(0)) and hands it to the editor.
function M.follow_state()
  local value, version = M.db():get_state()
  if version > 0 then publish(value, version) end
  sub = assert(db:subscribe_state())
  local fd = assert(sub:fd())
  poll = uv.new_poll(fd)
  poll:start("r", function(err)
    if err or not sub then return end
    local v, ver = sub:next(0) -- reading it also drains the descriptor
    if v ~= nil then vim.schedule(function() publish(v, ver) end) end
  end)
end

-- Calls db[method](db, ...) now; when it says BUSY (another process is
-- writing), again from a timer until it goes through.  DONE (optional)
-- gets what the call finally returned.  Returns what the first try
-- returned: the result, or nil, msg, "BUSY" while the write is pending.
local function write(done, method, ...)
  local args, n = { ... }, select("#", ...)
  local a, b, c = db[method](db, unpack(args, 1, n))
  if a ~= nil or c ~= "BUSY" then
    if done then done(a, b, c) end
    return a, b, c
  end
  local tries = 1
  local function again()
    local x, y, z = db[method](db, unpack(args, 1, n))
    tries = tries + 1
    if x == nil and z == "BUSY" and tries < TRIES then return vim.defer_fn(again, PAUSE_MS) end
    if done then done(x, y, z) end
  end
  vim.defer_fn(again, PAUSE_MS)
  return nil, "pending: another process is writing", "BUSY"
end

--- Adds a chat turn (ROLE: "user", "assistant", ...) to the project's
-- history; returns its memory id (see write for BUSY).
function M.chat(role, text, done)
  return write(done, "append_memory", text, { "chat", "role:" .. role })
end

--- Adds a note to the project; returns its memory id.
function M.note(text, done)
  return write(done, "append_memory", text, { "note" })
end

--- The last N chat turns (default 20), oldest first:
-- { {id=, role=, text=, created_at=}, ... }
function M.history(n)
  local list = assert(M.db():list_memories({ tags = { "chat" }, limit = n or 20 }))
  local turns = {}
  for i = #list, 1, -1 do
    local m, role = list[i], "?"
    for _, t in ipairs(m.tags) do role = t:match("^role:(.*)") or role end
    turns[#turns + 1] = { id = m.id, role = role, text = m.text, created_at = m.created_at }
  end
  return turns
end

--- Searches the project's chat and notes (the store's query language);
-- returns the hits, best first, or nil, msg, code.
function M.search(query, limit)
  return M.db():search_memory(query, { limit = limit or 20 })
end

-- Shows LINES in the scratch buffer NAME (made once, reused).
local function show(name, lines)
  local buf = vim.fn.bufnr(name)
  if buf < 0 then
    buf = vim.api.nvim_create_buf(true, true)
    vim.api.nvim_buf_set_name(buf, name)
  end
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.api.nvim_set_current_buf(buf)
  return buf
end

-- One line per memory: "#id [tags] text" (newlines folded).
local function line_of(m)
  return ("#%d [%s] %s"):format(m.id, table.concat(m.tags, ","), (m.text:gsub("\n", " ")))
end

--- :MemSearch QUERY
function M.search_command(query)
  local hits, msg = M.search(query)
  if not hits then
    vim.notify("MemSearch: " .. msg, vim.log.levels.ERROR)
    return
  end
  local lines = {}
  for i, h in ipairs(hits) do lines[i] = line_of(h) end
  if #lines == 0 then lines[1] = "(nothing found for: " .. query .. ")" end
  return show("memchat://search", lines)
end

--- :MemHistory [N]
function M.history_command(n)
  local lines = {}
  for i, t in ipairs(M.history(tonumber(n))) do lines[i] = ("%s: %s"):format(t.role, t.text) end
  return show("memchat://history", lines)
end

--- :MemNote TEXT
function M.note_command(text)
  write(function(id, msg)
    if id then
      vim.notify(("memchat: note #%d"):format(id))
    else
      vim.notify("memchat: " .. tostring(msg), vim.log.levels.ERROR)
    end
  end, "append_memory", text, { "note" })
end

--- Stops following the state and closes the store (setup does it first;
-- VimLeavePre does it at exit).
function M.close()
  if poll then
    poll:stop()
    poll:close()
    poll = nil
  end
  if sub then
    sub:close()
    sub = nil
  end
  if db then
    db:close()
    db = nil
  end
end

return M
