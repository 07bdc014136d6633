-- State: update_state, get_state, subscribe_state and subscriptions.

local H = require "helpers"

describe("state", function()
  local db, dir
  before_each(function() db, dir = H.open() end)
  after_each(function()
    db:close()
    H.cleanup()
  end)

  it("is nil, 0 before the first update", function()
    local v, version = db:get_state()
    assert.is_nil(v)
    assert.are.equal(0, version)
  end)

  it("versions start at 1 and go up by one", function()
    assert.are.equal(1, db:update_state("one"))
    assert.are.equal(2, db:update_state("two"))
    assert.are.equal(3, db:update_state("two"))
    local v, version = db:get_state()
    assert.are.equal("two", v)
    assert.are.equal(3, version)
    assert.are.equal(3, db:stats().state_version)
  end)

  it("keeps binary and empty values", function()
    assert(db:update_state("a\0b\255"))
    assert.are.equal("a\0b\255", (db:get_state()))
    assert(db:update_state(""))
    local v, version = db:get_state()
    assert.are.equal("", v)
    assert.are.equal(2, version)
  end)

  it("a 16 MiB state", function()
    local big = H.big_value()
    assert.are.equal(1, db:update_state(big))
    assert.is_true((db:get_state()) == big)
  end)

  describe("subscriptions", function()
    it("next times out with nil, 'timeout', 'TIMEOUT' when nothing changed", function()
      assert(db:update_state("old"))
      local sub = assert(db:subscribe_state())
      local v, msg, code = sub:next(0)
      assert.is_nil(v)
      assert.are.equal("timeout", msg)
      assert.are.equal("TIMEOUT", code)
      local t0 = os.clock()
      H.fails("TIMEOUT", sub:next(50))
      assert.is_true(os.clock() - t0 < 5)
      sub:close()
    end)

    it("next returns a newer version, skipping intermediate ones", function()
      assert(db:update_state("v1"))
      local sub = assert(db:subscribe_state())
      assert(db:update_state("v2"))
      local v, version = sub:next(1000)
      assert.are.equal("v2", v)
      assert.are.equal(2, version)
      H.fails("TIMEOUT", sub:next(0))
      assert(db:update_state("v3"))
      assert(db:update_state("v4"))
      v, version = sub:next(1000)
      assert.are.equal("v4", v)
      assert.are.equal(4, version)
      sub:close()
    end)

    it("a subscription made before the first update", function()
      local sub = assert(db:subscribe_state())
      H.fails("TIMEOUT", sub:next(0))
      assert(db:update_state("first"))
      local v, version = sub:next(1000)
      assert.are.equal("first", v)
      assert.are.equal(1, version)
    end)

    it("every subscription sees the change", function()
      local a = assert(db:subscribe_state())
      local b = assert(db:subscribe_state())
      assert(db:update_state("both"))
      assert.are.equal("both", (a:next(1000)))
      assert.are.equal("both", (b:next(1000)))
    end)

    it("wakes on an update by another process", function()
      local sub = assert(db:subscribe_state())
      local out, ok = H.child(([[
        local m = require "memmapfs"
        local db = assert(m.open(%q))
        io.write(assert(db:update_state("from the child")))
        assert(db:close())
      ]]):format(dir))
      assert.is_truthy(ok, out)
      assert.are.equal("1", out)
      local v, version = sub:next(5000)
      assert.are.equal("from the child", v)
      assert.are.equal(1, version)
    end)

    it("fd is a descriptor", function()
      local sub = assert(db:subscribe_state())
      local fd = sub:fd()
      assert.is_number(fd)
      assert.is_true(fd >= 0)
    end)

    it("close is idempotent; a closed subscription answers CLOSED", function()
      local sub = assert(db:subscribe_state())
      assert.is_true(sub:close())
      assert.is_true(sub:close())
      H.fails("CLOSED", sub:next(0))
      H.fails("CLOSED", sub:fd())
    end)

    it("closing the store closes its subscriptions", function()
      local sub = assert(db:subscribe_state())
      db:close()
      H.fails("CLOSED", sub:next(0))
      H.fails("CLOSED", sub:fd())
    end)

    it("a subscription keeps its store alive", function()
      local function sub_only()
        local other, path = H.open()
        return assert(other:subscribe_state()), path
      end
      local sub, path = sub_only()
      collectgarbage()
      collectgarbage()
      local out, ok = H.child(([[
        local db = assert(require("memmapfs").open(%q))
        assert(db:update_state("kept"))
        db:close()
      ]]):format(path))
      assert.is_truthy(ok, out)
      assert.are.equal("kept", (sub:next(5000)))
    end)

    it("closes with <close>", function()
      local env = { db = db }
      if not H.lua54([[
        do
          local sub <close> = assert(db:subscribe_state())
          outer = sub
        end
      ]], env) then
        pending("needs Lua 5.4")
        return
      end
      H.fails("CLOSED", env.outer:next(0))
    end)
  end)

  it("raises on wrong argument types", function()
    H.raises(function() db:update_state() end)
    H.raises(function() db:update_state(5) end)
    H.raises(function() db:update_state({}) end)
    local sub = assert(db:subscribe_state())
    H.raises(function() sub:next("soon") end)
    H.raises(function() sub:next(1.5) end)
    H.raises(function() sub.next(db, 0) end)
    assert.are.equal(0, select(2, db:get_state()))
  end)

  it("a closed store answers CLOSED", function()
    assert(db:update_state("x"))
    db:close()
    H.fails("CLOSED", db:update_state("y"))
    H.fails("CLOSED", db:get_state())
    H.fails("CLOSED", db:subscribe_state())
  end)

  for _, mode in ipairs(H.sync_modes) do
    it("reopen returns the state and its version (sync = " .. mode .. ")", function()
      db:close()
      db, dir = H.open({ sync = mode }, "state-" .. mode)
      for i = 1, 25 do assert.are.equal(i, db:update_state("state " .. i)) end
      assert.is_true(db:close())
      db = H.reopen(dir, { sync = mode })
      local v, version = db:get_state()
      assert.are.equal("state 25", v)
      assert.are.equal(25, version)
      assert.are.equal(26, db:update_state("next"))
    end)
  end
end)
