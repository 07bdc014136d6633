-- Sessions: put_session, get_session, list_sessions, list_by_intent,
-- delete_session; every field kept as it was put.

local H = require "helpers"

local function ids(list)
  local r = {}
  for i, s in ipairs(list) do r[i] = s.id end
  return r
end

describe("sessions", function()
  local db
  before_each(function() db = H.open() end)
  after_each(function()
    db:close()
    H.cleanup()
  end)

  it("returns every field as it was put", function()
    local s = {
      id = "s1", intent_id = "i1", created_at = 1700000000, payload = "the payload",
      status = "open",
      count = 42, negative = -7, big = math.maxinteger or 2 ^ 53, small = math.mininteger or -2 ^ 53,
      ratio = 0.25, float_one = 1.0, huge = 1e300, tiny = -1e-300,
      yes = true, no = false,
      empty = "", binary = "a\0b\255",
      list = { "x", "y", 3, true },
      nested = { deeper = { deepest = { "bottom" } }, [10] = "ten", [2.5] = "float key",
        [true] = "bool key" },
      none = {},
    }
    assert.is_true(db:put_session(s))
    local got = db:get_session("s1")
    assert.are.same(s, got)
    if math.type then
      assert.are.equal("integer", math.type(got.count))
      assert.are.equal("integer", math.type(got.created_at))
      assert.are.equal("float", math.type(got.float_one))
      assert.are.equal("float", math.type(got.ratio))
      assert.are.equal("integer", math.type(got.list[3]))
    end
  end)

  it("keeps only what was given", function()
    assert(db:put_session { id = "bare", created_at = 5 })
    assert.are.same({ id = "bare", created_at = 5 }, db:get_session("bare"))
  end)

  it("created_at defaults to now", function()
    local before = os.time()
    assert(db:put_session { id = "now", intent_id = "i" })
    local s = db:get_session("now")
    assert.is_true(s.created_at >= before - 1 and s.created_at <= os.time() + 1)
  end)

  it("a later put replaces the session", function()
    assert(db:put_session { id = "s", intent_id = "a", payload = "old", extra = 1 })
    assert(db:put_session { id = "s", intent_id = "b", created_at = 9 })
    assert.are.same({ id = "s", intent_id = "b", created_at = 9 }, db:get_session("s"))
    assert.are.equal(1, db:stats().sessions)
    assert.are.same({ "s" }, ids(db:list_by_intent("b")))
    assert.are.same({}, db:list_by_intent("a"))
  end)

  it("a missing session gives nil alone", function()
    assert.are.equal(1, select("#", db:get_session("nope")))
    assert.is_nil(db:get_session("nope"))
  end)

  it("delete_session: true once, then false", function()
    assert(db:put_session { id = "d", intent_id = "i" })
    assert.is_true(db:delete_session("d"))
    assert.is_false(db:delete_session("d"))
    assert.is_false(db:delete_session("never"))
    assert.is_nil(db:get_session("d"))
    assert.are.same({}, db:list_sessions())
    assert.are.same({}, db:list_by_intent("i"))
  end)

  it("lists newest created_at first, with a limit", function()
    assert(db:put_session { id = "a", intent_id = "x", created_at = 100 })
    assert(db:put_session { id = "b", intent_id = "y", created_at = 300 })
    assert(db:put_session { id = "c", intent_id = "x", created_at = 200 })
    assert(db:put_session { id = "d", intent_id = "x", created_at = 50 })
    assert.are.same({ "b", "c", "a", "d" }, ids(db:list_sessions()))
    assert.are.same({ "b", "c" }, ids(db:list_sessions(2)))
    assert.are.same({ "c", "a", "d" }, ids(db:list_by_intent("x")))
    assert.are.same({ "c" }, ids(db:list_by_intent("x", 1)))
    assert.are.same({}, db:list_by_intent("nobody"))
    local b = db:list_sessions(1)[1]
    assert.are.same({ id = "b", intent_id = "y", created_at = 300 }, b)
  end)

  it("an empty id is INVALID and writes nothing", function()
    H.fails("INVALID", db:put_session { id = "" })
    assert.are.equal(0, db:stats().sessions)
  end)

  it("a negative limit is INVALID", function()
    H.fails("INVALID", db:list_sessions(-1))
    H.fails("INVALID", db:list_by_intent("x", -1))
  end)

  it("refuses functions, userdata and cycles with a clear error", function()
    local err = H.raises(function() db:put_session { id = "f", callback = print } end, "callback")
    assert.is_truthy(tostring(err):find("function"), tostring(err))
    H.raises(function() db:put_session { id = "u", handle = io.stdout } end, "userdata")
    local co = coroutine.create(function() end) -- a Lua function: 5.1 refuses a C one
    H.raises(function() db:put_session { id = "n", deep = { deeper = { co = co } } } end,
      "thread")
    local cyc = { id = "c" }
    cyc.self = cyc
    H.raises(function() db:put_session(cyc) end, "nested")
    assert.is_nil(db:get_session("f"))
    assert.are.equal(0, db:stats().sessions)
  end)

  it("raises on wrong argument types", function()
    H.raises(function() db:put_session() end)
    H.raises(function() db:put_session("s1") end)
    H.raises(function() db:put_session {} end, "id")
    H.raises(function() db:put_session { id = 5 } end, "id")
    H.raises(function() db:put_session { id = "s", intent_id = 1 } end, "intent_id")
    H.raises(function() db:put_session { id = "s", created_at = "today" } end, "created_at")
    H.raises(function() db:put_session { id = "s", created_at = 1.5 } end, "created_at")
    H.raises(function() db:put_session { id = "s", payload = {} } end, "payload")
    H.raises(function() db:get_session(1) end)
    H.raises(function() db:get_session() end)
    H.raises(function() db:delete_session({}) end)
    H.raises(function() db:list_sessions("10") end)
    H.raises(function() db:list_by_intent(nil) end)
    assert.are.equal(0, db:stats().sessions)
  end)

  it("a closed store answers CLOSED", function()
    assert(db:put_session { id = "s", intent_id = "i" })
    db:close()
    H.fails("CLOSED", db:put_session { id = "s2" })
    H.fails("CLOSED", db:get_session("s"))
    H.fails("CLOSED", db:delete_session("s"))
    H.fails("CLOSED", db:list_sessions())
    H.fails("CLOSED", db:list_by_intent("i"))
  end)

  for _, mode in ipairs(H.sync_modes) do
    it("reopen returns the sessions as written (sync = " .. mode .. ")", function()
      db:close()
      local dir
      db, dir = H.open({ sync = mode }, "sess-" .. mode)
      local expect = {}
      for i = 1, 40 do
        local s = { id = "s" .. i, intent_id = "i" .. (i % 4), created_at = 1000 + i,
          payload = H.bytes(i, i), n = i, half = i / 2, even = i % 2 == 0,
          tags = { "t" .. i, { inner = i } } }
        assert(db:put_session(s))
        expect[s.id] = s
      end
      assert(db:delete_session("s7"))
      expect.s7 = nil
      expect.s8 = { id = "s8", created_at = 5 }
      assert(db:put_session(expect.s8))
      local list = db:list_sessions()
      assert.is_true(db:close())
      db = H.reopen(dir, { sync = mode })
      for i = 1, 40 do assert.are.same(expect["s" .. i], db:get_session("s" .. i)) end
      assert.are.same(list, db:list_sessions())
      assert.are.equal(10, #db:list_by_intent("i1"))
    end)
  end
end)
