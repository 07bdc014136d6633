-- cli_test.lua: the mmfs binary on real stores, run as a script would.
-- Fixtures are written through the Lua binding (memories, sessions, streams
-- and state have no CLI writer); everything else goes through the binary:
-- its output byte for byte, its exit codes, and that reading commands
-- leave the store untouched.
--
--   lua5.4 cli_test.lua MMFS_BINARY TMPBASE
-- Environment: LUA_PATH/LUA_CPATH find memmapfs; MMFS_HAVE_POLICY=1 when
-- the build has policies; MMFS_CLI_WRAPPER (e.g. valgrind ...) prefixes
-- every run of the binary.
local memmapfs = require "memmapfs"

local mmfs, base = assert(arg[1], "mmfs binary"), assert(arg[2], "tmp base")
local wrapper = os.getenv("MMFS_CLI_WRAPPER")
local have_policy = os.getenv("MMFS_HAVE_POLICY") == "1"
local have_sodium = os.getenv("MMFS_HAVE_SODIUM") == "1"
local have_zstd = os.getenv("MMFS_HAVE_ZSTD") == "1"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

assert(os.execute("mkdir -p " .. q(base)))
local tmp = assert(io.popen("mktemp -d " .. q(base .. "/cli.XXXXXX"))):read("l")
assert(tmp and #tmp > 0)

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function spit(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local checks = 0
local _ -- the values a check leaves out
local function eq(got, want, what)
  checks = checks + 1
  if got ~= want then
    error(string.format("%s:\n  got:  %q\n  want: %q", what, tostring(got), tostring(want)), 2)
  end
end

local function has(s, pat, what)
  checks = checks + 1
  if not tostring(s):find(pat, 1, true) then
    error(string.format("%s: %q does not contain %q", what, tostring(s), pat), 2)
  end
end

-- Runs mmfs with ARGS (a list); STDIN bytes optional.  Returns the exit
-- code, stdout and stderr.
local function run(args, stdin)
  local parts = { wrapper or "", q(mmfs) }
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local inp = tmp .. "/stdin"
  spit(inp, stdin or "")
  local cmd = table.concat(parts, " ") .. " <" .. q(inp) .. " >" .. q(tmp .. "/out") .. " 2>" .. q(tmp .. "/err")
  local ok, how, code = os.execute(cmd)
  assert(how == "exit", "mmfs killed by a signal: " .. cmd)
  if ok then code = 0 end
  return code, slurp(tmp .. "/out"), slurp(tmp .. "/err")
end

-- Every file of a store with its bytes: reading commands must not change it.
local function snapshot(dir)
  local list = assert(io.popen("cd " .. q(dir) .. " && find . -type f | sort"))
  local out = {}
  for name in list:lines() do out[#out + 1] = name .. "\n" .. slurp(dir .. "/" .. name) end
  list:close()
  return table.concat(out, "\0")
end

local store = tmp .. "/store"

-- ---------------------------------------------------------- the command line
do
  local code, out, err = run({})
  eq(code, 64, "no command")
  eq(out, "", "no command: nothing on stdout")
  has(err, "usage: mmfs COMMAND", "no command: usage on stderr")
  code, out = run({ "--version" })
  eq(code, 0, "--version")
  eq(out, "mmfs " .. memmapfs.version .. "\n", "--version output")
  code, out = run({ "--help" })
  eq(code, 0, "--help")
  for _, c in ipairs { "stats", "verify", "dump", "get", "set", "del", "checkpoint", "search", "sessions",
                       "cat", "watch", "compact" } do
    has(out, "\n  " .. c .. " STORE", "--help lists " .. c)
    local code2, out2 = run({ c, "--help" })
    eq(code2, 0, c .. " --help")
    eq(out2:sub(1, 13 + #c), "usage: mmfs " .. c .. " ", c .. " --help: usage line")
    has(out2, "--key-file", c .. " --help: common options")
    local code3, out3 = run({ "help", c })
    eq(code3, 0, "help " .. c)
    eq(out3, out2, "help " .. c .. " is " .. c .. " --help")
  end
  code, _, err = run({ "frobnicate", store })
  eq(code, 64, "unknown command")
  has(err, "unknown command 'frobnicate'", "unknown command message")
  code, _, err = run({ "get", store, "k", "--bogus" })
  eq(code, 64, "unknown option")
  has(err, "unknown option '--bogus'", "unknown option message")
  code = run({ "get", store })
  eq(code, 64, "missing argument")
  code = run({ "get", store, "k", "extra" })
  eq(code, 64, "extra argument")
  code, _, err = run({ "search", store, "x", "--limit", "ten" })
  eq(code, 64, "non-numeric --limit")
  has(err, "--limit: 'ten' is not a non-negative integer", "--limit message")
  code = run({ "search", store, "x", "--limit" })
  eq(code, 64, "option without its value")
end

-- ------------------------------------- a missing store: nothing is created
do
  for _, args in ipairs { { "get", store, "k" }, { "stats", store }, { "dump", store },
                          { "set", store, "k", "v" }, { "del", store, "k" } } do
    local code, _, err = run(args)
    eq(code, 1, args[1] .. " on a missing store exits 1")
    has(err, "NOTFOUND", args[1] .. " on a missing store: message")
    eq(io.open(store), nil, args[1] .. " on a missing store created nothing")
  end
  local _, _, err = run({ "set", store, "k", "v" })
  has(err, "--create", "set on a missing store mentions --create")
end

-- ------------------------------------------------ set --create --compress
do
  local zs = tmp .. "/zstore"
  local code, _, err = run({ "set", zs, "k", "v", "--create", "--compress", "lz4" })
  eq(code, 2, "--compress lz4 exits 2")
  has(err, "(INVALID)", "--compress lz4: message")
  eq(io.open(zs .. "/MANIFEST"), nil, "--compress lz4 made no store")
  code, _, err = run({ "set", zs, "k", "v", "--create", "--compress", "zstd" })
  if have_zstd then
    eq(code, 0, "set --create --compress zstd")
    has(slurp(zs .. "/MANIFEST"), "compress zstd", "the store records compress")
    eq((run({ "set", zs, "k", "w", "--compress", "none" })), 2, "--compress none on a zstd store")
    eq((run({ "set", zs, "k", "w", "--compress", "zstd" })), 0, "--compress zstd on a zstd store")
    eq((run({ "set", zs, "k", "x" })), 0, "no --compress on a zstd store")
  else
    eq(code, 2, "--compress zstd without libzstd exits 2")
    has(err, "built without zstd", "--compress zstd without libzstd: message")
  end
end

-- --------------------------------------------------------- get, set, del
local all_bytes = {}
for i = 0, 255 do all_bytes[#all_bytes + 1] = string.char(i) end
all_bytes = table.concat(all_bytes)
do
  eq((run({ "set", store, "greeting", "hello", "--create" })), 0, "set --create")
  local code, out = run({ "get", store, "greeting" })
  eq(code, 0, "get")
  eq(out, "hello", "get prints the value as is")
  code, out = run({ "get", store, "greeting", "--newline" })
  eq(code, 0, "get --newline")
  eq(out, "hello\n", "get --newline")
  eq((run({ "set", store, "bin" }, all_bytes)), 0, "set from stdin")
  code, out = run({ "get", store, "bin" })
  eq(code, 0, "get of a binary value")
  eq(out, all_bytes, "a binary value from stdin comes back byte for byte")
  eq((run({ "set", store, "--", "--dashed", "-v" })), 0, "set after -- takes --dashed as the key")
  code, out = run({ "get", store, "--", "--dashed" })
  eq(code, 0, "get after --")
  eq(out, "-v", "get after --: the value")
  eq((run({ "del", store, "--", "--dashed" })), 0, "del after --")
  eq((run({ "set", store, "empty" }, "")), 0, "set of an empty value")
  code, out = run({ "get", store, "empty" })
  eq(code, 0, "get of an empty value exits 0")
  eq(out, "", "an empty value")
  local err
  code, out, err = run({ "get", store, "nope" })
  eq(code, 1, "get of a missing key exits 1")
  eq(out, "", "get of a missing key prints nothing")
  has(err, "nope: no such key (NOTFOUND)", "get of a missing key: message")
  eq((run({ "del", store, "empty" })), 0, "del of a key")
  eq((run({ "get", store, "empty" })), 1, "a deleted key is gone")
  local before = snapshot(store)
  code, _, err = run({ "del", store, "empty" })
  eq(code, 1, "del of a missing key exits 1")
  has(err, "no such key", "del of a missing key: message")
  eq(snapshot(store), before, "del of a missing key writes nothing")
end

-- ---------------------------------------------- fixtures through Lua
local t0 = 1700000000
do
  local db = assert(memmapfs.open(store))
  assert(db:append_memory("Ann prefers green tea", { "speaker:Ann", "pref" }, { created_at = t0 }))
  assert(db:append_memory('Bob said "coffee"\nthen left', { "speaker:Bob" }, { created_at = t0 + 10 }))
  assert(db:append_memory("tea again, same second", { "pref" }, { created_at = t0 + 10 }))
  assert(db:append_memory("bytes \255 here", {}, { created_at = t0 - 5 }))
  assert(db:put_session { id = "s1", intent_id = "trip", created_at = t0, payload = "p1", status = "open" })
  assert(db:put_session { id = "s2", intent_id = "work", created_at = t0 + 1, list = { 1, 2, "x" },
                          nested = { deep = { yes = true } } })
  assert(db:append_stream("transcript", "user: hi\n"))
  assert(db:append_stream("transcript", "agent: \0hello\n"))
  assert(db:index("doc1", "green tea leaves"))
  assert(db:update_state("thinking"))
  assert(db:close())
end

-- --------------------------------------------------------- reading commands
do
  local before = snapshot(store)

  local code, out = run({ "dump", store })
  eq(code, 0, "dump")
  local want = {
    '{"type":"state","version":1,"value":"thinking"}',
    '{"type":"kv","key":"bin","value":{"base64":"'
      .. "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZH"
      .. "SElKS0xNTk9QUVJTVFVWV1hZWltcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6P"
      .. "kJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX"
      .. "2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w=="
      .. '"}}',
    '{"type":"kv","key":"greeting","value":"hello"}',
    '{"type":"session","session":{"id":"s2","intent_id":"work","created_at":' .. (t0 + 1)
      .. ',"FIELDS"}}',
    '{"type":"session","session":{"id":"s1","intent_id":"trip","created_at":' .. t0
      .. ',"payload":"p1","status":"open"}}',
    '{"type":"memory","memory":{"id":3,"created_at":' .. (t0 + 10)
      .. ',"route":"default","tags":["pref"],"text":"tea again, same second"}}',
    '{"type":"memory","memory":{"id":2,"created_at":' .. (t0 + 10)
      .. ',"route":"default","tags":["speaker:Bob"],"text":"Bob said \\"coffee\\"\\nthen left"}}',
    '{"type":"memory","memory":{"id":1,"created_at":' .. t0
      .. ',"route":"default","tags":["speaker:Ann","pref"],"text":"Ann prefers green tea"}}',
    '{"type":"memory","memory":{"id":4,"created_at":' .. (t0 - 5)
      .. ',"route":"default","tags":[],"text":{"base64":"Ynl0ZXMg/yBoZXJl"}}}',
  }
  local lines = {}
  for l in out:gmatch("[^\n]*\n") do lines[#lines + 1] = l:sub(1, -2) end
  eq(#lines, #want, "dump: number of lines\n" .. out)
  for i, w in ipairs(want) do
    if w:find('"FIELDS"', 1, true) then
      -- The other fields' order is the table's: check each one is there.
      local head = w:gsub(',"FIELDS"}}$', "")
      eq(lines[i]:sub(1, #head), head, "dump line " .. i)
      has(lines[i], '"list":[1,2,"x"]', "dump: a Lua array is a JSON array")
      has(lines[i], '"nested":{"deep":{"yes":true}}', "dump: nested tables")
    else
      eq(lines[i], w, "dump line " .. i)
    end
  end

  code, out = run({ "search", store, "tea", "--tag", "pref", "--limit", "1" })
  eq(code, 0, "search")
  local n = select(2, out:gsub("\n", ""))
  eq(n, 1, "search --limit 1 gives one line")
  has(out, '"tags":["', "search: a memory line")
  has(out, '"score":', "search: with its score")
  code, out = run({ "search", store, "tea", "--tag", "speaker:Ann", "--tag", "pref" })
  eq(code, 0, "search --tag twice")
  eq(out:match('"id":(%d+)'), "1", "search: --tag twice means both")
  code, out = run({ "search", store, "nothingmatches" })
  eq(code, 0, "search without hits exits 0")
  eq(out, "", "search without hits prints nothing")
  code, out = run({ "search", store, "leaves", "--docs" })
  eq(code, 0, "search --docs")
  eq(out:match('^{"key":"doc1","score":[%d.e-]+}\n$') ~= nil, true, "search --docs line: " .. out)
  local err
  code, out, err = run({ "search", store, '"unclosed' })
  eq(code, 2, "a malformed query exits 2")
  eq(out, "", "a malformed query prints nothing on stdout")
  has(err, "(INVALID)", "a malformed query: message")
  code = run({ "search", store, "tea", "--docs", "--tag", "x" })
  eq(code, 64, "--docs with a memory filter")

  code, out = run({ "sessions", store, "--intent", "trip" })
  eq(code, 0, "sessions --intent")
  eq(out, '{"id":"s1","intent_id":"trip","created_at":' .. t0 .. ',"payload":"p1","status":"open"}\n',
     "sessions --intent output")
  code, out = run({ "sessions", store, "--limit", "1" })
  eq(code, 0, "sessions --limit")
  eq(out:match('^{"id":"s2"') ~= nil, true, "sessions: newest first, --limit")

  code, out = run({ "cat", store, "transcript" })
  eq(code, 0, "cat")
  eq(out, "user: hi\nagent: \0hello\n", "cat: the stream byte for byte")
  code, out = run({ "cat", store, "transcript", "--offset", "9" })
  eq(code, 0, "cat --offset")
  eq(out, "agent: \0hello\n", "cat --offset")
  code, out, err = run({ "cat", store, "nope" })
  eq(code, 1, "cat of a missing stream exits 1")
  eq(out, "", "cat of a missing stream prints nothing")
  has(err, "NOTFOUND", "cat of a missing stream: message")
  code = run({ "cat", store, "transcript", "--offset", "1000" })
  eq(code, 2, "cat --offset past the end exits 2")

  code, out = run({ "stats", store })
  eq(code, 0, "stats")
  has(out, "memories       4\n", "stats: memories")
  has(out, "sessions       2\n", "stats: sessions")
  has(out, "state_version  1\n", "stats: state_version")
  code, out = run({ "stats", store, "--json" })
  eq(code, 0, "stats --json")
  eq(out:match('^{"memories":4,"kv":2,"sessions":2,"streams":1,"documents":1,') ~= nil, true, "stats --json: " .. out)

  code, out = run({ "verify", store })
  eq(code, 0, "verify of a sound store")
  eq(out, "ok\n", "verify prints ok")
  code, out = run({ "verify", store, "--quiet" })
  eq(code, 0, "verify --quiet")
  eq(out, "", "verify --quiet")

  eq(snapshot(store), before, "reading commands changed nothing in the store")

  -- On a copy: the corruption test below damages a frame that an open
  -- from a checkpoint would no longer read (verify still does).
  local copy = tmp .. "/copy"
  assert(os.execute("cp -r " .. q(store) .. " " .. q(copy)))
  code, out = run({ "checkpoint", copy })
  eq(code, 0, "checkpoint")
  eq(out, "ok\n", "checkpoint prints ok")
  code, out = run({ "stats", copy })
  eq(code, 0, "stats after checkpoint")
  eq(out:match("checkpoint_lsn +(%d+)\n") ~= "0", true, "stats: a checkpoint is used: " .. out)
  code, out = run({ "get", copy, "greeting" })
  eq(code, 0, "get after checkpoint")
  eq(out, "hello", "get after checkpoint: the value, from the mapped checkpoint")
end

-- ------------------------------------------------------------------ watch
do
  local out, rcfile = tmp .. "/watch.out", tmp .. "/watch.rc"
  local cmd = table.concat({ wrapper or "", q(mmfs), "watch", q(store), "--current", "--count", "3",
                             "--timeout", "20000" }, " ")
  assert(os.execute("(" .. cmd .. " >" .. q(out) .. " 2>&1; echo $? >" .. q(rcfile) .. ") &"))
  local function wait_for(pred, what)
    for _ = 1, 3000 do
      if pred() then return end
      os.execute("sleep 0.01")
    end
    error("timed out waiting for " .. what .. "; watch wrote: " .. tostring(slurp(out)))
  end
  local function nlines() return select(2, (slurp(out) or ""):gsub("\n", "")) end
  -- The first line (--current) means the subscription exists.
  wait_for(function() return nlines() >= 1 end, "the current state")
  local db = assert(memmapfs.open(store))
  assert(db:update_state("acting"))
  wait_for(function() return nlines() >= 2 end, "the second state")
  assert(db:update_state("bin\0ary\255"))
  assert(db:close())
  wait_for(function() return slurp(rcfile) end, "watch to exit")
  eq(slurp(rcfile), "0\n", "watch --count 3 exits 0")
  eq(slurp(out), '{"version":1,"value":"thinking"}\n{"version":2,"value":"acting"}\n'
     .. '{"version":3,"value":{"base64":"YmluAGFyef8="}}\n', "watch: each change another process made")

  local code, _, err = run({ "watch", store, "--timeout", "50" })
  eq(code, 12, "watch --timeout without a change exits 12")
  has(err, "TIMEOUT", "watch timeout message")
end

-- ------------------------------------------------------- writers and locks
do
  -- Another process holds the writer lock: --lock-timeout 0 is BUSY at once.
  local ready = tmp .. "/locked"
  assert(os.execute("flock " .. q(store .. "/LOCK") .. " sh -c 'touch " .. q(ready) .. "; sleep 3' &"))
  for _ = 1, 1000 do
    if io.open(ready) then break end
    os.execute("sleep 0.01")
  end
  local code, _, err = run({ "set", store, "k", "v", "--lock-timeout", "0" })
  eq(code, 9, "set while another process holds the lock exits 9")
  has(err, "BUSY", "lock wait message")
  local code2, out2 = run({ "get", store, "greeting" })
  eq(code2, 0, "get reads while another process holds the writer lock")
  eq(out2, "hello", "get under a held lock")
  os.execute("sleep 0.1")
  -- Wait for the lock to go before the next writes.
  assert(os.execute("flock " .. q(store .. "/LOCK") .. " true"))

  if have_policy then
    local db = assert(memmapfs.open(store))
    assert(db:set_policy([[return { hooks = { set_kv = function(cmd)
      if cmd.key == "forbidden" then return nil, "not this key" end end } }]]))
    assert(db:close())
    local c, _, e = run({ "set", store, "forbidden", "x" })
    eq(c, 3, "set rejected by the policy exits 3")
    has(e, "not this key", "the policy's reason")
    eq((run({ "get", store, "forbidden" })), 1, "a rejected set wrote nothing")
  end
end

-- ------------------------------------------------------------------ compact
do
  local cstore = tmp .. "/cstore" -- a store of its own: later checks aim at store's first segment
  local db = assert(memmapfs.open(cstore))
  for i = 1, 20 do assert(db:set_kv("churn", "value " .. i)) end
  assert(db:delete_memory(assert(db:append_memory("gone", {}))))
  local before = db:stats()
  assert(db:close())
  local code, out = run({ "compact", cstore })
  eq(code, 0, "compact")
  has(out, "bytes_before   " .. before.log_bytes .. "\n", "compact: bytes_before")
  has(out, "dropped        21\n", "compact: dropped")
  code, out = run({ "compact", cstore, "--json" })
  eq(code, 0, "compact --json")
  eq(out:match('^{"bytes_before":%d+,"bytes_after":%d+,"kept":1,"dropped":0,"ms":%d+}\n$') ~= nil, true,
     "compact --json (nothing left to drop): " .. out)
  local c2, o2 = run({ "get", cstore, "churn" })
  eq(c2, 0, "get after compact")
  eq(o2, "value 20", "the last value survives compaction")
  eq((run({ "verify", cstore, "--quiet" })), 0, "verify after compact")
end

-- --------------------------------- dump pages through runs of equal times
do
  -- More memories than one page (512), most sharing a created_at: each
  -- must come out once, newest first (ties: higher id first).
  local big = tmp .. "/big"
  local db = assert(memmapfs.open(big))
  assert(db:batch(function(tx)
    for i = 1, 1300 do
      assert(tx:append_memory("m" .. i, {}, { created_at = t0 + (i <= 1100 and 7 or i) }))
    end
  end))
  assert(db:close())
  local code, out = run({ "dump", big })
  eq(code, 0, "dump of 1300 memories")
  local ids, seen, prev = {}, {}, nil
  for ct in out:gmatch('"created_at":(%d+),"route":"default","tags":%[%],"text":"m%d+"}}\n') do
    ct = tonumber(ct)
    ids[#ids + 1] = ct
    if prev then assert(ct <= prev, "dump: newest first") end
    prev = ct
  end
  for id in out:gmatch('"memory":{"id":(%d+)') do
    assert(not seen[id], "dump: memory " .. id .. " twice")
    seen[id] = true
  end
  eq(#ids, 1300, "dump: every memory once across pages")
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  eq(n, 1300, "dump: 1300 distinct ids")
end

-- --------------------------------------------------------- keyed stores
do
  local keyed, key = tmp .. "/keyed", string.rep("k3y!", 8)
  spit(tmp .. "/key", key)
  spit(tmp .. "/wrongkey", string.rep("nope", 8))
  spit(tmp .. "/shortkey", "short")
  if have_sodium then
    local db = assert(memmapfs.open(keyed, { key = key }))
    assert(db:set_kv("k", "secret"))
    assert(db:close())
    local code, out = run({ "get", keyed, "k", "--key-file", tmp .. "/key" })
    eq(code, 0, "get with --key-file")
    eq(out, "secret", "get with --key-file: the value")
    local err
    code, _, err = run({ "get", keyed, "k" })
    eq(code, 4, "a keyed store without its key exits 4")
    has(err, "key", "without the key: message")
    code = run({ "get", keyed, "k", "--key-file", tmp .. "/wrongkey" })
    eq(code, 4, "a keyed store with a wrong key exits 4")
    code = run({ "get", keyed, "k", "--key-file", tmp .. "/shortkey" })
    eq(code, 2, "a key of 5 bytes exits 2")
  else
    local code, _, err = run({ "set", keyed, "k", "v", "--create", "--key-file", tmp .. "/key" })
    eq(code, 2, "--key-file without libsodium exits 2")
    has(err, "libsodium", "--key-file without libsodium: message")
  end
  local code, _, err = run({ "get", keyed, "k", "--key-file", tmp .. "/missing" })
  eq(code, 5, "an unreadable --key-file exits 5")
  has(err, "missing", "an unreadable --key-file is named")
end

-- ------------------------------------------------------------- corruption
do
  -- Flip a byte inside an early frame's payload, with frames after it.
  local seg = store .. "/log/00000001.seg"
  local bytes = assert(slurp(seg))
  local at = assert(bytes:find("hello", 1, true), "the greeting's bytes in the log")
  local f = assert(io.open(seg, "r+b"))
  f:seek("set", at - 1)
  f:write("J")
  f:close()
  local before = snapshot(store)
  local code, out, err = run({ "verify", store })
  eq(code, 4, "verify of a damaged store exits 4")
  eq(out, "", "verify of a damaged store prints nothing on stdout")
  has(err, "00000001.seg", "the damage's segment is named")
  has(err, "CORRUPT", "the damage's code is named")
  eq((run({ "dump", store })), 4, "dump of a damaged store exits 4")
  eq(snapshot(store), before, "verify of a damaged store changed nothing")
end

os.execute("rm -rf " .. q(tmp))
print(string.format("ok: %d checks", checks))
