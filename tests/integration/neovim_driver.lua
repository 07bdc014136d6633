--- neovim_driver.lua: drives examples/neovim (memchat) inside
-- `nvim --headless` for neovim_test.sh.  Environment:
--   MEMCHAT_PROJECT   a project directory (holds .git)
--   MEMCHAT_WRITER    a command that runs neovim_writer.lua: STORE TEXT STATE
-- Quits with status 0 when every check passed, 1 (cquit) otherwise, with
-- the failure on stderr.

local function log(...)
  io.stdout:write(table.concat({ ... }, " "), "\n")
  io.stdout:flush()
end

local function fail(msg)
  error(msg, 2)
end

local function check(cond, msg)
  if not cond then fail(msg) end
end

-- Waits (running the event loop) up to MS for COND to hold.
local function wait(ms, cond)
  return vim.wait(ms, cond, 5)
end

-- The lines of the buffer named NAME.
local function buffer(name)
  local buf = vim.fn.bufnr(name)
  check(buf >= 0, "no buffer " .. name)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
end

-- Runs the writer (another process) and waits for it to exit with 0.
local function run_writer(store, text, state)
  local done, code
  local cmd = { "sh", "-c", os.getenv("MEMCHAT_WRITER") .. ' "$@"', "writer", store, text, state }
  local job = vim.fn.jobstart(cmd, {
    on_exit = function(_, c) done, code = true, c end,
    on_stderr = function(_, data) if data[1] ~= "" then log("writer:", table.concat(data, "\n")) end end,
  })
  check(job > 0, "cannot start the writer")
  check(wait(20000, function() return done end), "the writer did not finish")
  check(code == 0, "the writer failed: " .. tostring(code))
end

local function main()
  local project = assert(os.getenv("MEMCHAT_PROJECT"), "MEMCHAT_PROJECT")
  vim.cmd("cd " .. vim.fn.fnameescape(project .. "/src"))
  local memchat = require("memchat")
  assert(memchat.setup())

  -- one store per project, under Neovim's data directory
  local store = memchat.path()
  check(store:find(vim.fn.stdpath("data") .. "/memchat/project-", 1, true) == 1,
    "store outside the data directory: " .. store)

  check(memchat.chat("user", "How do I rotate the nginx logs?"), "chat")
  check(memchat.chat("assistant", "Use logrotate with a weekly rule"), "chat")
  vim.cmd("MemNote logrotate config lives in deploy/logrotate.conf")

  vim.cmd("MemSearch logrotate")
  local found = buffer("memchat://search")
  check(found:find("deploy/logrotate.conf", 1, true), "MemSearch misses the note:\n" .. found)
  check(found:find("weekly rule", 1, true), "MemSearch misses the chat turn:\n" .. found)
  log("MemSearch logrotate ->", (found:gsub("\n", " | ")))

  -- The agent, another process, answers and publishes its state: the
  -- subscription's descriptor wakes the editor through vim.loop.
  local events = 0
  vim.api.nvim_create_autocmd("User", {
    pattern = "MemChatState",
    callback = function() events = events + 1 end,
  })
  check(vim.g.memchat_state == nil, "a state before any update")
  for round, state in ipairs { "agent: waiting for review", "agent: idle" } do
    local t0 = vim.loop.hrtime()
    run_writer(store, ("The rotation runs at 03:00 (answer %d)"):format(round), state)
    local arrived = wait(10000, function() return vim.g.memchat_state == state end)
    check(arrived, ("state %q did not reach the editor (it has %q)"):format(state,
      tostring(vim.g.memchat_state)))
    check(vim.g.memchat_state_version == round, "state version " ..
      tostring(vim.g.memchat_state_version) .. ", want " .. round)
    log(("state %d %q arrived %.1f ms after the writer started"):format(round, state,
      (vim.loop.hrtime() - t0) / 1e6))
  end
  check(events >= 2, "User MemChatState fired " .. events .. " times")

  -- The agent's answers are in the history at once (a reader sees other
  -- processes' writes on its next call), after the turns from here.
  vim.cmd("MemHistory 10")
  local history = buffer("memchat://history")
  check(history == table.concat({
    "user: How do I rotate the nginx logs?",
    "assistant: Use logrotate with a weekly rule",
    "assistant: The rotation runs at 03:00 (answer 1)",
    "assistant: The rotation runs at 03:00 (answer 2)",
  }, "\n"), "MemHistory:\n" .. history)

  -- Reopened (a new editor session in the same project): all still there.
  memchat.close()
  assert(memchat.setup())
  check(memchat.path() == store, "another store after reopening: " .. memchat.path())
  check(#memchat.history() == 4, "history after reopening: " .. #memchat.history())
  check(vim.g.memchat_state == "agent: idle", "state after reopening")
  local hits = assert(memchat.search("logrotate"))
  check(#hits == 2, "search after reopening: " .. #hits .. " hits")
  memchat.close()
end

local ok, err = xpcall(main, debug.traceback)
if ok then
  log("ok")
  vim.cmd("qall!")
else
  io.stderr:write("FAIL: ", tostring(err), "\n")
  io.stderr:flush()
  vim.cmd("cquit 1")
end
