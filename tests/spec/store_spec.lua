-- The store as a whole: open, close, reopen, readonly, errors, stats, verify.

local memmapfs = require "memmapfs"
local H = require "helpers"

-- Writes one of everything (and deletes some), returning what to expect.
local function write_everything(db)
  local e = {}
  e.m1 = assert(db:append_memory("the first memory about coffee", { "work", "coffee" },
    { created_at = 1700000000 }))
  e.m2 = assert(db:append_memory("a second memory, about tea", {}, { created_at = 1700000100,
    route = "episodic" }))
  e.m3 = assert(db:append_memory("forgotten memory", { "tmp" }))
  assert.is_true(db:delete_memory(e.m3))
  assert(db:set_kv("k1", "v1"))
  assert(db:set_kv("bin\0key", "bin\0value\255"))
  assert(db:set_kv("gone", "x"))
  assert(db:set_kv("k1", "v1 again"))
  assert.is_true(db:delete_kv("gone"))
  assert(db:put_session { id = "s1", intent_id = "i1", created_at = 1700000000, payload = "p1",
    status = "open", n = 3, f = 2.5, ok = true, nested = { a = { 1, 2, 3 }, b = "x" } })
  assert(db:put_session { id = "s2", intent_id = "i1", created_at = 1700000200 })
  assert(db:put_session { id = "s3", created_at = 1 })
  assert.is_true(db:delete_session("s3"))
  assert(db:append_stream("log", "line one\n"))
  assert(db:append_stream("log", "line two\n"))
  assert(db:append_stream("empty", ""))
  assert(db:index("doc1", "memmapfs keeps documents searchable"))
  assert(db:index("doc2", "another document about gardens"))
  assert(db:index("doc3", "to be removed"))
  assert.is_true(db:unindex("doc3"))
  assert.are.equal(1, db:update_state("state one"))
  assert.are.equal(2, db:update_state("state two"))
  assert.are.equal(3, db:update_state("state\0three"))
  return e
end

local function check_everything(db, e)
  local m1 = db:get_memory(e.m1)
  assert.are.same({ id = e.m1, text = "the first memory about coffee", tags = { "work", "coffee" },
    created_at = 1700000000, route = m1.route }, m1)
  local m2 = db:get_memory(e.m2)
  assert.are.equal("a second memory, about tea", m2.text)
  assert.are.equal("episodic", m2.route)
  assert.are.same({}, m2.tags)
  assert.is_nil(db:get_memory(e.m3))
  assert.are.same({ "the first memory about coffee" }, db:query_memory("coffee"))
  assert.are.equal("v1 again", db:get_kv("k1"))
  assert.are.equal("bin\0value\255", db:get_kv("bin\0key"))
  assert.is_nil(db:get_kv("gone"))
  assert.are.same({ id = "s1", intent_id = "i1", created_at = 1700000000, payload = "p1",
    status = "open", n = 3, f = 2.5, ok = true, nested = { a = { 1, 2, 3 }, b = "x" } },
    db:get_session("s1"))
  assert.are.same({ id = "s2", intent_id = "i1", created_at = 1700000200 }, db:get_session("s2"))
  assert.is_nil(db:get_session("s3"))
  local r = assert(db:open_read("log"))
  assert.are.equal("line one\nline two\n", r:read("a"))
  r:close()
  assert.are.equal(0, db:stream_size("empty"))
  assert.truthy(db:open_read("empty"))
  local hits = assert(db:search("memmapfs"))
  assert.are.equal(1, #hits)
  assert.are.equal("doc1", hits[1].key)
  assert.are.same({}, db:search("removed"))
  local value, version = db:get_state()
  assert.are.equal("state\0three", value)
  assert.are.equal(3, version)
  local st = assert(db:stats())
  assert.are.equal(2, st.memories)
  assert.are.equal(2, st.kv)
  assert.are.equal(2, st.sessions)
  assert.are.equal(2, st.streams)
  assert.are.equal(2, st.documents)
  assert.are.equal(3, st.state_version)
end

describe("store", function()
  after_each(H.cleanup)

  it("is the module table with version 0.1.0", function()
    assert.are.equal("table", type(memmapfs))
    assert.are.equal("0.1.0", memmapfs.version)
    assert.are.equal("function", type(memmapfs.open))
    assert.are.equal("0.1.0", require("memmapfs.core").version)
  end)

  it("loads in a fresh interpreter without setting globals", function()
    local out, ok = H.child([[
      local before = {}
      for k in pairs(_G) do before[k] = true end
      local m = require "memmapfs"
      local extra = {}
      for k in pairs(_G) do if not before[k] then extra[#extra + 1] = k end end
      io.write("version=", m.version, " globals=", table.concat(extra, ","), "\n")
    ]])
    assert.is_truthy(ok, out)
    assert.are.equal("version=0.1.0 globals=\n", out)
  end)

  it("creates a missing directory, and refuses to when create = false", function()
    local dir = H.store_path("create")
    H.fails("NOTFOUND", memmapfs.open(dir, { create = false }))
    local db = assert(memmapfs.open(dir))
    assert.is_true(db:close())
    local db2 = assert(memmapfs.open(dir, { create = false }))
    assert.is_true(db2:close())
  end)

  it("reports an unwritable directory as IO with the path", function()
    local path, named = H.unwritable_path()
    local msg = H.fails("IO", memmapfs.open(path))
    assert.is_truthy(msg:find(named, 1, true), "message does not name the path: " .. msg)
  end)

  it("rejects bad option values with INVALID", function()
    local dir = H.store_path("badopts")
    H.fails("INVALID", memmapfs.open(dir, { sync = "sometimes" }))
    H.fails("INVALID", memmapfs.open(dir, { checksum = "md5" }))
    H.fails("INVALID", memmapfs.open(dir, { sync_ms = -1 }))
    H.fails("INVALID", memmapfs.open(dir, { lock_timeout_ms = -5 }))
    local msg = H.fails("INVALID", memmapfs.open(dir, { syncc = "none" }))
    assert.is_truthy(msg:find("syncc", 1, true))
    H.fails("INVALID", memmapfs.open(dir, { hook_budget = 0 }))
    -- a policy that does not compile, or does not return a table (a build
    -- without Lua policies refuses every policy, also with INVALID)
    msg = H.fails("INVALID", memmapfs.open(dir, { policy = "return {" }))
    if os.getenv("MMFS_HAVE_POLICY") ~= "0" then
      assert.is_truthy(msg:find("policy:1:", 1, true), msg)
    else
      assert.is_truthy(msg:find("policy support", 1, true), msg)
    end
    H.fails("INVALID", memmapfs.open(dir, { policy = "return 42" }))
  end)

  it("raises on wrong argument types", function()
    local dir = H.store_path("types")
    H.raises(function() memmapfs.open() end)
    H.raises(function() memmapfs.open(42) end)
    H.raises(function() memmapfs.open(dir, "batch") end)
    H.raises(function() memmapfs.open(dir, { sync = 1 }) end, "sync")
    H.raises(function() memmapfs.open(dir, { readonly = "yes" }) end, "readonly")
    H.raises(function() memmapfs.open(dir, { sync_ms = 1.5 }) end, "sync_ms")
    H.raises(function() memmapfs.open(dir, { key = 123 }) end, "key")
    H.raises(function() memmapfs.open("a\0b") end)
  end)

  it("accepts every documented option", function()
    local db = H.open({ sync = "always", sync_ms = 10, checksum = "crc32c", readonly = false,
      create = true, lock_timeout_ms = 1000 })
    assert(db:set_kv("k", "v"))
    assert.are.equal("v", db:get_kv("k"))
    assert.is_true(db:close())
    if os.getenv("MMFS_HAVE_POLICY") == "0" then
      pending("built without Lua policies: policy and hook_budget not checked")
      return
    end
    local policy = "return { hooks = { set_kv = function(cmd) cmd.value = cmd.value .. '!' end } }"
    db = H.open({ policy = policy, hook_budget = 5000 })
    assert.are.equal(policy, db:get_policy())
    assert(db:set_kv("k", "v"))
    assert.are.equal("v!", db:get_kv("k"))
    assert.is_true(db:close())
  end)

  it("rolls the log over to new segments (segment_size) and reads across them", function()
    local db, dir = H.open({ segment_size = 1024 * 1024 })
    local value = H.bytes(100000, 5)
    for i = 1, 40 do assert(db:set_kv("k" .. i, i .. value)) end
    assert.is_true(db:stats().segments > 1)
    db:close()
    db = H.reopen(dir)
    for i = 1, 40 do assert.is_true(db:get_kv("k" .. i) == i .. value, "k" .. i) end
    assert.is_true(db:verify())
    db:close()
  end)

  describe("blake2b", function()
    local sodium = os.getenv("MMFS_HAVE_SODIUM")

    it("keeps a keyed store and refuses the wrong key", function()
      if sodium ~= "1" then
        pending("built without libsodium")
        return
      end
      local key = ("k"):rep(32)
      local db, dir = H.open({ checksum = "blake2b", key = key })
      assert(db:set_kv("secret", "value"))
      db:close()
      db = H.reopen(dir, { key = key })
      assert.are.equal("value", db:get_kv("secret"))
      assert.is_true(db:verify())
      db:close()
      H.fails("CORRUPT", memmapfs.open(dir, { key = ("x"):rep(32) }))
    end)

    it("is INVALID without libsodium", function()
      if sodium ~= "0" then
        pending("built with libsodium")
        return
      end
      H.fails("INVALID", memmapfs.open(H.store_path("b2"), { checksum = "blake2b" }))
    end)
  end)

  for _, mode in ipairs(H.sync_modes) do
    it("returns exactly what was written after close and reopen (sync = " .. mode .. ")",
      function()
        local db, dir = H.open({ sync = mode })
        local e = write_everything(db)
        check_everything(db, e)
        assert.is_true(db:close())
        local db2 = H.reopen(dir, { sync = mode })
        check_everything(db2, e)
        -- ids go on from the highest ever given, deleted ones included
        local m4 = assert(db2:append_memory("after reopen", {}))
        assert.are.equal(e.m3 + 1, m4)
        assert.are.equal(4, db2:update_state("four"))
        assert.is_true(db2:close())
        local db3 = H.reopen(dir)
        assert.are.equal("after reopen", db3:get_memory(m4).text)
        local v, version = db3:get_state()
        assert.are.equal("four", v)
        assert.are.equal(4, version)
        db3:close()
      end)
  end

  it("close is idempotent and every method then answers CLOSED", function()
    local db = H.open()
    assert(db:set_kv("k", "v"))
    assert.is_true(db:close())
    assert.is_true(db:close())
    assert.is_truthy(tostring(db):find("closed"))
    H.fails("CLOSED", db:append_memory("x", {}))
    H.fails("CLOSED", db:get_memory(1))
    H.fails("CLOSED", db:search_memory("x"))
    H.fails("CLOSED", db:query_memory("x"))
    H.fails("CLOSED", db:list_memories())
    H.fails("CLOSED", db:delete_memory(1))
    H.fails("CLOSED", db:set_kv("k", "v"))
    H.fails("CLOSED", db:get_kv("k"))
    H.fails("CLOSED", db:delete_kv("k"))
    H.fails("CLOSED", db:scan_kv(""))
    H.fails("CLOSED", db:put_session { id = "s" })
    H.fails("CLOSED", db:get_session("s"))
    H.fails("CLOSED", db:delete_session("s"))
    H.fails("CLOSED", db:list_sessions())
    H.fails("CLOSED", db:list_by_intent("i"))
    H.fails("CLOSED", db:append_stream("s", "x"))
    H.fails("CLOSED", db:stream_size("s"))
    H.fails("CLOSED", db:open_read("s"))
    H.fails("CLOSED", db:index("d", "t"))
    H.fails("CLOSED", db:unindex("d"))
    H.fails("CLOSED", db:search("t"))
    H.fails("CLOSED", db:update_state("x"))
    H.fails("CLOSED", db:get_state())
    H.fails("CLOSED", db:subscribe_state())
    H.fails("CLOSED", db:batch(function() end))
    H.fails("CLOSED", db:sync())
    H.fails("CLOSED", db:refresh())
    H.fails("CLOSED", db:verify())
    H.fails("CLOSED", db:stats())
  end)

  it("checks argument types even on a closed store", function()
    local db = H.open()
    db:close()
    H.raises(function() db:set_kv(1, "v") end)
    H.raises(function() db.get_kv(nil, "k") end)
    H.raises(function() db.get_kv({}, "k") end)
  end)

  it("closes with the <close> attribute, also when the block raises", function()
    local dir = H.store_path("close")
    local env = { memmapfs = memmapfs, dir = dir, outer = nil }
    if not H.lua54([[
      do
        local db <close> = assert(memmapfs.open(dir))
        assert(db:set_kv("k", "v"))
        outer = db
      end
      local ok = pcall(function()
        local db <close> = assert(memmapfs.open(dir))
        env_second = db
        error("boom")
      end)
      assert(not ok)
    ]], env) then
      pending("needs Lua 5.4")
      return
    end
    H.fails("CLOSED", env.outer:get_kv("k"))
    H.fails("CLOSED", env.env_second:get_kv("k"))
    local db = H.reopen(dir)
    assert.are.equal("v", db:get_kv("k"))
    db:close()
  end)

  it("is closed by the garbage collector", function()
    local dir = H.store_path("gc")
    local function forget() -- the handle becomes garbage when this returns
      local db = assert(memmapfs.open(dir, { sync = "none" }))
      assert(db:set_kv("k", "by gc"))
    end
    forget()
    collectgarbage()
    collectgarbage()
    -- the lock is free again and the write is there
    local db = H.reopen(dir, { lock_timeout_ms = 2000 })
    assert.are.equal("by gc", db:get_kv("k"))
    assert(db:set_kv("k", "again"))
    db:close()
  end)

  describe("readonly", function()
    it("refuses writes with READONLY and still reads", function()
      local db, dir = H.open()
      assert(db:set_kv("k", "v"))
      local id = assert(db:append_memory("hello readonly world", { "t" }))
      assert(db:update_state("s"))
      db:close()
      local ro = H.reopen(dir, { readonly = true })
      assert.are.equal("v", ro:get_kv("k"))
      assert.are.equal("hello readonly world", ro:get_memory(id).text)
      H.fails("READONLY", ro:set_kv("k", "w"))
      H.fails("READONLY", ro:delete_kv("k"))
      H.fails("READONLY", ro:append_memory("x", {}))
      H.fails("READONLY", ro:delete_memory(id))
      H.fails("READONLY", ro:put_session { id = "s" })
      H.fails("READONLY", ro:delete_session("s"))
      H.fails("READONLY", ro:append_stream("s", "x"))
      H.fails("READONLY", ro:index("d", "x"))
      H.fails("READONLY", ro:unindex("d"))
      H.fails("READONLY", ro:update_state("x"))
      H.fails("READONLY", ro:batch(function(tx) tx:set_kv("b", "1") end))
      assert.are.equal("v", ro:get_kv("k"))
      assert.is_nil(ro:get_kv("b"))
      ro:close()
      local db2 = H.reopen(dir)
      assert.are.equal("v", db2:get_kv("k"))
      assert.are.equal(1, select(2, db2:get_state()))
      db2:close()
    end)

    it("fails to open a store that does not exist", function()
      local dir = H.store_path("ro-missing")
      local db, msg, code = memmapfs.open(dir, { readonly = true })
      assert.is_nil(db)
      assert.is_string(msg)
      assert.is_truthy(code == "NOTFOUND" or code == "IO", tostring(code))
    end)
  end)

  describe("several handles", function()
    it("a second handle sees writes without refresh", function()
      local db1, dir = H.open()
      local db2 = H.reopen(dir)
      assert(db1:set_kv("shared", "one"))
      assert.are.equal("one", db2:get_kv("shared"))
      assert(db2:set_kv("shared", "two"))
      assert.are.equal("two", db1:get_kv("shared"))
      assert.is_true(db1:refresh())
      db1:close()
      db2:close()
    end)

    it("sees what another process committed", function()
      local db, dir = H.open()
      assert(db:set_kv("before", "1"))
      local out, ok = H.child(([[
        local m = require "memmapfs"
        local db = assert(m.open(%q))
        assert(db:get_kv("before") == "1", "child does not see the parent's write")
        assert(db:set_kv("from child", "hello"))
        assert(db:append_memory("written by the child process", { "child" }))
        assert(db:close())
        io.write("ok")
      ]]):format(dir))
      assert.is_truthy(ok, out)
      assert.are.equal("ok", out)
      assert.are.equal("hello", db:get_kv("from child"))
      assert.are.same({ "written by the child process" }, db:query_memory("child"))
      db:close()
    end)
  end)

  describe("checkpoint", function()
    it("is mapped by the next open, which answers as the log does", function()
      local db, dir = H.open({ checkpoint_bytes = 0 })
      local e = write_everything(db)
      assert.is_true(db:checkpoint())
      local lsn = db:stats().lsn
      assert.are.equal(lsn, db:stats().checkpoint_lsn) -- the writer moved to its checkpoint
      -- after it: a key changed, one deleted, one new
      assert(db:set_kv("after", "x"))
      assert(db:set_kv("k1", "v1 after"))
      assert.is_true(db:delete_kv("after"))
      assert(db:set_kv("k1", "v1 again"))
      db:close()
      db = assert(memmapfs.open(dir, { checkpoint_bytes = 0 }))
      assert.are.equal(lsn, db:stats().checkpoint_lsn)
      assert.are.equal(1, db:stats().index_segments) -- the memories' index, mapped
      check_everything(db, e)
      local keys = {}
      for k in assert(db:scan_kv("")) do keys[#keys + 1] = k end
      assert.are.same({ "bin\0key", "k1" }, keys)
      assert.is_true(db:verify())
      db:close()
    end)

    it("refuses a read-only handle and a negative checkpoint_bytes", function()
      local db, dir = H.open()
      assert(db:set_kv("a", "1"))
      db:close()
      local ro = assert(memmapfs.open(dir, { readonly = true }))
      H.fails("READONLY", ro:checkpoint())
      ro:close()
      H.fails("INVALID", memmapfs.open(dir, { checkpoint_bytes = -1 }))
      H.fails("CLOSED", ro:checkpoint())
    end)
  end)

  describe("stats, sync, verify", function()
    it("stats counts what is live", function()
      local db = H.open()
      local st0 = assert(db:stats())
      for _, f in ipairs { "memories", "kv", "sessions", "streams", "documents", "log_bytes",
        "live_bytes", "dead_bytes", "lsn", "durable_lsn", "state_version" } do
        assert.are.equal("number", type(st0[f]), f)
        assert.is_true(st0[f] >= 0, f)
        if math.type then assert.are.equal("integer", math.type(st0[f]), f) end
      end
      assert.are.equal(0, st0.memories)
      assert.are.equal(0, st0.kv)
      assert(db:set_kv("a", "1"))
      assert(db:set_kv("b", "2"))
      assert(db:set_kv("a", "3"))
      assert(db:append_memory("m", {}))
      local st = assert(db:stats())
      assert.are.equal(2, st.kv)
      assert.are.equal(1, st.memories)
      assert.is_true(st.lsn > st0.lsn)
      assert.is_true(st.log_bytes > st0.log_bytes)
      -- dead_bytes: the records compaction would drop (the first "a"), never
      -- the frames' headers and checksums
      assert.are.equal(16 + 4 + 1 + 4 + 1, st.dead_bytes)
      assert.is_true(st.log_bytes > st.live_bytes + st.dead_bytes)
      assert.is_true(db:sync())
      local st2 = assert(db:stats())
      assert.are.equal(st2.lsn, st2.durable_lsn)
      db:close()
    end)

    it("verify is true on a sound store and CORRUPT on a damaged log", function()
      local db, dir = H.open({ sync = "always" })
      assert(db:set_kv("k1", ("A"):rep(3000)))
      assert(db:set_kv("k2", ("B"):rep(3000)))
      assert(db:set_kv("k3", ("C"):rep(3000)))
      assert.is_true(db:verify())
      db:close()
      -- damage the first value inside the log: a bad frame followed by good ones
      local seg = H.capture("ls " .. H.quote(dir .. "/log") .. " | head -1"):match("%S+")
      assert.is_truthy(seg, "no log segment")
      local path = dir .. "/log/" .. seg
      local f = assert(io.open(path, "r+b"))
      local data = f:read("*a")
      local at = data:find(("A"):rep(100), 1, true)
      assert.is_truthy(at, "value not found in the log")
      f:seek("set", at + 50)
      f:write("Z")
      f:close()
      local db2, msg, code = memmapfs.open(dir)
      if db2 then
        msg = H.fails("CORRUPT", db2:verify())
        db2:close()
      else
        assert.are.equal("CORRUPT", code)
      end
      assert.is_truthy(msg:find(seg, 1, true), "message does not name the segment: " .. msg)
    end)
  end)
end)
