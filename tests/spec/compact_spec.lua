-- compact_spec.lua: db:compact and the forgetting recipes of
-- memmapfs.policy, through the binding under test (the C module, or the
-- FFI binding under LuaJIT): what stays, what goes, ids never given
-- twice, another handle rebuilding, a hostile keep leaving the store as
-- it was.
local H = require "helpers"
local memmapfs = require "memmapfs"
local policy = require "memmapfs.policy"

local NOW = 1700000000

local function mem(db, text, tags, at)
  return assert(db:append_memory(text, tags or {}, { created_at = at or NOW }))
end

local function ids_of(db)
  local t = {}
  for _, m in ipairs(assert(db:list_memories { limit = 1000 })) do t[#t + 1] = m.id end
  table.sort(t)
  return t
end

describe("db:compact", function()
  after_each(H.cleanup)

  it("drops what is dead, keeps the rest, and says so", function()
    local db, dir = H.open { sync = "none" }
    local a = mem(db, "alpha coffee")
    local b = mem(db, "beta coffee")
    assert(db:delete_memory(a))
    for i = 1, 20 do assert(db:set_kv("k", "value " .. i)) end
    assert(db:set_kv("gone", "x"))
    assert(db:delete_kv("gone"))
    assert(db:append_stream("s", "abc"))
    local before = db:stats()
    assert.is_true(before.dead_bytes > 0)
    local r = assert(db:compact())
    for _, k in ipairs { "bytes_before", "bytes_after", "kept", "dropped", "ms" } do
      assert.are.equal("number", type(r[k]), k)
    end
    assert.are.equal(before.log_bytes, r.bytes_before)
    assert.is_true(r.bytes_after < r.bytes_before)
    assert.is_true(r.dropped >= 22)
    local after = db:stats()
    assert.are.equal(0, after.dead_bytes)
    assert.are.equal(0, after.compacting)
    assert.is_nil(db:get_memory(a))
    assert.are.equal("beta coffee", db:get_memory(b).text)
    assert.are.equal(1, #db:search_memory("coffee"))
    assert.are.equal("value 20", db:get_kv("k"))
    assert.is_nil(db:get_kv("gone"))
    assert.are.equal(3, db:stream_size("s"))
    assert.is_true(db:verify())
    db:close()
    db = H.reopen(dir)
    assert.are.equal("value 20", db:get_kv("k"))
    assert.are.equal(b + 1, mem(db, "after"))
    db:close()
  end)

  it("refuses unknown options and a read-only handle", function()
    local db, dir = H.open()
    H.fails("INVALID", db:compact { nw = 5 })
    H.raises(function() db:compact { now = "soon" } end, "now")
    db:close()
    local ro = H.reopen(dir, { readonly = true })
    H.fails("READONLY", ro:compact())
    ro:close()
  end)

  it("another handle rebuilds and keeps writing", function()
    local db, dir = H.open { sync = "none" }
    local other = H.reopen(dir, { sync = "none" })
    for i = 1, 50 do assert(db:set_kv("k" .. i, "v" .. i)) end
    for i = 1, 25 do assert(db:delete_kv("k" .. i)) end
    assert.are.equal("v30", other:get_kv("k30"))
    assert(db:compact())
    assert.is_nil(other:get_kv("k1"))
    assert.are.equal("v30", other:get_kv("k30"))
    assert(other:set_kv("from_other", "yes"))
    assert.are.equal("yes", db:get_kv("from_other"))
    assert.are.equal(26, #H.scan(db, ""))
    other:close()
    db:close()
  end)

  it("ttl per route and compaction.keep forget memories", function()
    local db = H.open { sync = "none", policy = policy.build {
      route = policy.route_by_tag({ { "scratch", "scratch" } }, "default"),
      routes = { default = {}, scratch = { ttl = 3600 } },
      compaction = { keep = policy.keep_pinned_or_newer_than(30) },
    } }
    local fresh = mem(db, "scratch note", { "scratch" }, NOW - 60)
    local stale = mem(db, "scratch note", { "scratch" }, NOW - 7200)
    local pinned = mem(db, "old but pinned", { "pinned" }, NOW - 90 * 86400)
    local old = mem(db, "old", {}, NOW - 90 * 86400)
    local r = assert(db:compact { now = NOW })
    assert.are.equal(2, r.dropped)
    assert.are.same({ fresh, pinned }, ids_of(db))
    assert.is_nil(db:get_memory(stale))
    assert.is_nil(db:get_memory(old))
    assert.are.equal(0, #db:search_memory("old -pinned"))
    db:close()
  end)

  it("recipes: pinned, newest per tag, decay, combined", function()
    local db = H.open { sync = "none", policy = policy.build {
      compaction = { keep = policy.keep_any(policy.pinned("keep"), policy.newest_per_tag(2, { tags = { "chat" } }),
        policy.decay(10, 0.5)) },
    } }
    local chat = {}
    for i = 1, 5 do chat[i] = mem(db, "chat " .. i, { "chat", "importance:0" }, NOW - 1000 * 86400) end
    local kept = mem(db, "kept", { "keep", "importance:0" }, NOW - 1000 * 86400)
    local young = mem(db, "young", {}, NOW - 5 * 86400)      -- 1 * 0.5^0.5 = 0.71: kept
    local aged = mem(db, "aged", {}, NOW - 15 * 86400)       -- 1 * 0.5^1.5 = 0.35: forgotten
    local vital = mem(db, "vital", { "importance:4" }, NOW - 25 * 86400) -- 4 * 0.5^2.5 = 0.71: kept
    assert(db:compact { now = NOW })
    assert.are.same({ chat[4], chat[5], kept, young, vital }, ids_of(db))
    assert.is_nil(db:get_memory(aged))
    db:close()
  end)

  it("policy.default with keep_days forgets old memories", function()
    local spec = policy.default { keep_days = 7 }
    local db = H.open { sync = "none", policy = policy.build(spec) }
    local old = mem(db, "old", {}, NOW - 8 * 86400)
    local pinned = mem(db, "pinned", { "pinned" }, NOW - 8 * 86400)
    local scratch = mem(db, "scratch", { "scratch" }, NOW - 2 * 86400)
    local new = mem(db, "new", {}, NOW - 86400)
    assert(db:compact { now = NOW })
    assert.are.same({ pinned, new }, ids_of(db))
    assert.is_nil(db:get_memory(old))
    assert.is_nil(db:get_memory(scratch))
    db:close()
  end)

  -- What a handle answers: the list and a search, with texts, and the keys.
  local function answers(db)
    local t = {}
    for _, m in ipairs(assert(db:list_memories { limit = 1000 })) do t[#t + 1] = m.id .. "=" .. m.text end
    for _, m in ipairs(assert(db:search_memory("coffee", { limit = 1000 }))) do t[#t + 1] = "s" .. m.id end
    for _, k in ipairs { "k", "k2" } do t[#t + 1] = k .. "=" .. tostring(db:get_kv(k)) end
    return table.concat(t, " ")
  end

  for _, case in ipairs {
    { "raises", "error('nope')", "REJECTED" },
    { "raises a table", "error({})", "REJECTED" },
    { "raises after keeping some", "if mem.id > 3 then error('late') end return true", "REJECTED" },
    { "loops", "while true do end", "LIMIT" },
    { "catches its own budget error", "while true do pcall(function() while true do end end) end", "LIMIT" },
    { "allocates without bound", "local t = {} while true do t[#t+1] = ('x'):rep(4096) .. #t end", "LIMIT" },
    { "asks for one huge string", "return #string.rep('x', 1 << 40) > 0", "LIMIT" },
  } do
    it("a keep that " .. case[1] .. " changes nothing", function()
      local db, dir = H.open { sync = "none", hook_budget = 100000,
        policy = "return { compaction = { keep = function(mem, now) " .. case[2] .. " end } }" }
      local a = mem(db, "one coffee")
      assert(db:delete_memory(mem(db, "two coffee")))
      for i = 3, 6 do mem(db, i .. " coffee") end
      assert(db:set_kv("k", "v"))
      assert(db:set_kv("k", "v again"))
      local before, said = db:stats(), answers(db)
      local msg = H.fails(case[3], db:compact())
      assert.is_truthy(msg:find("compaction.keep", 1, true), msg)
      local after = db:stats()
      assert.are.equal(before.log_bytes, after.log_bytes)
      assert.are.equal(before.lsn, after.lsn)
      assert.are.equal(said, answers(db))
      assert.are.equal("one coffee", db:get_memory(a).text)
      assert(db:set_kv("k2", "still writable"))
      -- a sane keep then compacts
      assert(db:set_policy("return { compaction = { keep = function(mem) return true end } }"))
      local r = assert(db:compact())
      assert.is_true(r.bytes_after < r.bytes_before)
      assert.is_true(r.dropped > 0)
      said = answers(db)
      db:close()
      db = H.reopen(dir)
      assert.are.equal("still writable", db:get_kv("k2"))
      assert.are.equal(said, answers(db))
      db:close()
    end)
  end
end)

describe("memmapfs.policy compaction recipes", function()
  it("raise on bad arguments, naming them", function()
    H.raises(function() policy.newest_per_tag(-1) end, "newest_per_tag")
    H.raises(function() policy.decay(0, 1) end, "half_life_days")
    H.raises(function() policy.keep_any() end, "keep_any")
    H.raises(function() policy.keep_any(print) end, "rule 1")
    H.raises(function() policy.days(0) end, "days")
  end)

  it("compaction.when starts a compaction in the background", function()
    local db = H.open { sync = "none", policy = policy.build {
      compaction = { when = policy.when_dead_over(1) } } }
    for i = 1, 30 do assert(db:set_kv("k", "value " .. i)) end
    local before = db:stats()
    assert.is_true(before.dead_bytes > before.live_bytes)
    local st = before
    for _ = 1, 30 do
      if st.dead_bytes < before.dead_bytes then break end
      os.execute("sleep 0.2")
      assert(db:set_kv("k", "last")) -- asked after commits, at most once a second
      repeat st = db:stats() until st.compacting == 0
    end
    assert.is_true(st.log_bytes < before.log_bytes)
    assert.are.equal("last", db:get_kv("k"))
    db:close()
    H.raises(function() policy.when_dead_over(-1) end, "ratio")
    assert.is_truthy(memmapfs.version)
  end)
end)
