-- Batches: db:batch(fn), the tx object, all or nothing.

local H = require "helpers"
local unpack = table.unpack or rawget(_G, "unpack") -- Lua 5.1: a global

describe("batch", function()
  local db, dir
  before_each(function() db, dir = H.open() end)
  after_each(function()
    db:close()
    H.cleanup()
  end)

  it("commits every kind of command and returns the memory ids", function()
    local positions = {}
    local ids = assert(db:batch(function(tx)
      positions[1] = assert(tx:append_memory("batched one", { "b" }, { created_at = 10 }))
      assert.is_true(tx:set_kv("k", "v"))
      positions[2] = assert(tx:append_memory("batched two", {}))
      assert.is_true(tx:put_session { id = "s", intent_id = "i", created_at = 3, extra = { 1 } })
      assert.is_true(tx:append_stream("st", "bytes"))
      assert.is_true(tx:index("doc", "batched document"))
      assert.is_true(tx:update_state("batched state"))
    end))
    assert.are.same({ 1, 2 }, positions)
    assert.are.equal(2, #ids)
    assert.are.equal(ids[1] + 1, ids[2])
    assert.are.equal("batched one", db:get_memory(ids[1]).text)
    assert.are.same({ "b" }, db:get_memory(ids[1]).tags)
    assert.are.equal(10, db:get_memory(ids[1]).created_at)
    assert.are.equal("batched two", db:get_memory(ids[2]).text)
    assert.are.equal("v", db:get_kv("k"))
    assert.are.same({ id = "s", intent_id = "i", created_at = 3, extra = { 1 } }, db:get_session("s"))
    assert.are.equal("bytes", assert(db:open_read("st")):read("a"))
    assert.are.equal("doc", db:search("batched")[1].key)
    local v, version = db:get_state()
    assert.are.equal("batched state", v)
    assert.are.equal(1, version)
  end)

  it("deletes in a batch", function()
    local id = assert(db:append_memory("to delete", {}))
    assert(db:set_kv("k", "v"))
    assert(db:put_session { id = "s" })
    assert(db:index("d", "text"))
    assert(db:batch(function(tx)
      assert(tx:delete_memory(id))
      assert(tx:delete_kv("k"))
      assert(tx:delete_session("s"))
      assert(tx:unindex("d"))
      assert(tx:delete_kv("never existed"))
    end))
    assert.is_nil(db:get_memory(id))
    assert.is_nil(db:get_kv("k"))
    assert.is_nil(db:get_session("s"))
    assert.are.same({}, db:search("text"))
  end)

  it("an empty batch returns {} and writes nothing", function()
    local lsn = db:stats().lsn
    assert.are.same({}, db:batch(function() end))
    assert.are.equal(lsn, db:stats().lsn)
  end)

  it("fn reads the committed store; its writes appear only at the end", function()
    assert(db:set_kv("k", "old"))
    local seen = {}
    assert(db:batch(function(tx)
      assert(tx:set_kv("k", "new"))
      seen.db = db:get_kv("k")
      seen.tx = tx:get_kv("k")
      seen.state = select(2, tx:get_state())
    end))
    assert.are.equal("old", seen.db)
    assert.are.equal("old", seen.tx)
    assert.are.equal(0, seen.state)
    assert.are.equal("new", db:get_kv("k"))
  end)

  it("an error in fn commits nothing and returns nil, msg, INVALID", function()
    local before = assert(db:append_memory("before", {}))
    local lsn = db:stats().lsn
    local r, msg, code = db:batch(function(tx)
      assert(tx:set_kv("k", "v"))
      assert(tx:append_memory("never", {}))
      error("changed my mind")
    end)
    assert.is_nil(r)
    assert.are.equal("INVALID", code)
    assert.is_truthy(msg:find("changed my mind", 1, true), msg)
    assert.is_nil(db:get_kv("k"))
    assert.are.same({}, db:query_memory("never"))
    assert.are.equal(lsn, db:stats().lsn)
    -- no id was consumed, not even after a reopen
    db:close()
    db = H.reopen(dir)
    assert.are.equal(before + 1, assert(db:append_memory("after", {})))
    -- a non-string error value is reported too
    local _, msg2, code2 = db:batch(function() error({ reason = "table" }) end)
    assert.are.equal("INVALID", code2)
    assert.is_string(msg2)
  end)

  it("a wrong type inside fn raises there and fails the batch", function()
    H.fails("INVALID", db:batch(function(tx)
      assert(tx:set_kv("ok", "1"))
      tx:set_kv(1, 2)
    end))
    assert.is_nil(db:get_kv("ok"))
  end)

  it("a failed command fails the whole batch, even if fn ignores it", function()
    H.fails("INVALID", db:batch(function(tx)
      assert(tx:set_kv("k", "v"))
      tx:put_session { id = "" } -- invalid: empty id (result ignored)
      assert(tx:append_memory("lost", {}))
    end))
    assert.is_nil(db:get_kv("k"))
    assert.are.equal(0, db:stats().memories)
    assert.are.equal(0, db:stats().sessions)
  end)

  it("writes to the store inside fn are BUSY; so is a nested batch", function()
    local got = {}
    assert(db:batch(function(tx)
      got.set = { db:set_kv("direct", "x") }
      got.mem = { db:append_memory("direct", {}) }
      got.state = { db:update_state("direct") }
      got.nested = { db:batch(function() end) }
      assert(tx:set_kv("through tx", "y"))
    end))
    H.fails("BUSY", unpack(got.set, 1, 3))
    H.fails("BUSY", unpack(got.mem, 1, 3))
    H.fails("BUSY", unpack(got.state, 1, 3))
    H.fails("BUSY", unpack(got.nested, 1, 3))
    assert.is_nil(db:get_kv("direct"))
    assert.are.equal("y", db:get_kv("through tx"))
    -- after the batch the store is writable again, also after a failed one
    assert(db:set_kv("after", "1"))
    db:batch(function() error("x") end)
    assert(db:set_kv("after", "2"))
    assert.are.equal("2", db:get_kv("after"))
  end)

  it("a tx used after its batch answers CLOSED", function()
    local kept
    assert(db:batch(function(tx) kept = tx end))
    H.fails("CLOSED", kept:set_kv("k", "v"))
    H.fails("CLOSED", kept:commit())
    assert.is_nil(db:get_kv("k"))
  end)

  it("closing the store inside fn makes the batch CLOSED", function()
    H.fails("CLOSED", db:batch(function(tx)
      assert(tx:set_kv("k", "v"))
      db:close()
    end))
    db = H.reopen(dir)
    assert.is_nil(db:get_kv("k"))
  end)

  it("raises on wrong argument types", function()
    H.raises(function() db:batch() end)
    H.raises(function() db:batch("not a function") end)
    H.raises(function() db:batch({}) end)
    assert(db:set_kv("k", "v"))
  end)

  it("a closed store answers CLOSED", function()
    db:close()
    H.fails("CLOSED", db:batch(function(tx) tx:set_kv("k", "v") end))
  end)

  for _, mode in ipairs(H.sync_modes) do
    it("reopen returns what batches wrote (sync = " .. mode .. ")", function()
      db:close()
      db, dir = H.open({ sync = mode }, "batch-" .. mode)
      local all = {}
      for b = 1, 5 do
        local ids = assert(db:batch(function(tx)
          for i = 1, 20 do
            assert(tx:set_kv(("b%d-%02d"):format(b, i), H.bytes(i, b)))
            assert(tx:append_memory(("batch %d item %d"):format(b, i), { "b" .. b }))
          end
          assert(tx:update_state("after batch " .. b))
        end))
        assert.are.equal(20, #ids)
        for _, id in ipairs(ids) do all[#all + 1] = id end
      end
      assert.is_true(db:close())
      db = H.reopen(dir, { sync = mode })
      assert.are.equal(100, db:stats().memories)
      assert.are.equal(100, db:stats().kv)
      for i = 2, #all do assert.are.equal(all[i - 1] + 1, all[i]) end
      assert.are.equal("batch 3 item 7", db:get_memory(all[47]).text)
      assert.are.equal(H.bytes(9, 4), db:get_kv("b4-09"))
      local v, version = db:get_state()
      assert.are.equal("after batch 5", v)
      assert.are.equal(5, version)
    end)
  end
end)
