--- Errors a user understands: argument errors name the method, unknown
-- open() options and policy paths that name no file are INVALID naming
-- what is wrong, db:path() gives the store's directory, and
-- lock_timeout_ms = 0 is accepted.

local memmapfs = require "memmapfs"
local H = require "helpers"

-- Calls FN (through pcall, so that no debug information about the call
-- site can help) and asserts that it raised an argument error that names
-- METHOD and the argument NUMBER ("bad argument #1 to 'set_kv'").
local function names(method, number, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, method .. ": expected an error")
  local want = ("bad argument #%d to '%s'"):format(number, method)
  assert.is_truthy(tostring(err):find(want, 1, true),
    ("%q does not contain %q"):format(tostring(err), want))
end

describe("argument errors", function()
  local db
  before_each(function() db = H.open(nil, "errors") end)
  after_each(function()
    db:close()
    H.cleanup()
  end)

  it("name the method and count arguments after self", function()
    local cases = {
      { "set_kv", 1, { 1, "v" } },
      { "set_kv", 2, { "k", {} } },
      { "get_kv", 1, {} },
      { "delete_kv", 1, { false } },
      { "append_memory", 1, { nil, {} } },
      { "append_memory", 2, { "text", "tag" } },
      { "append_memory", 2, { "text", { 1 } } },
      { "get_memory", 1, { "1" } },
      { "delete_memory", 1, { 1.5 } },
      { "put_session", 1, { "s1" } },
      { "put_session", 1, { {} } },
      { "get_session", 1, { 7 } },
      { "delete_session", 1, {} },
      { "list_sessions", 1, { "10" } },
      { "list_by_intent", 1, { 3 } },
      { "append_stream", 2, { "s", 5 } },
      { "stream_size", 1, {} },
      { "open_read", 1, { {} } },
      { "index", 2, { "k" } },
      { "unindex", 1, { 2 } },
      { "update_state", 1, { 42 } },
      { "set_policy", 1, { 42 } },
    }
    for _, c in ipairs(cases) do
      local method, number, args = c[1], c[2], c[3]
      -- db.method(db, ...) through pcall: no caller names it
      names(method, number, db[method], db, args[1], args[2])
      -- db:method(...) in a tail call: LuaJIT loses the name there
      names(method, number, function() return db[method](db, args[1], args[2]) end)
    end
    assert.is_true(db:set_kv("k", "v")) -- and nothing raised left the store unusable
  end)

  it("name the method called on something that is not a store", function()
    local ok, err = pcall(db.get_kv, {}, "k")
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("calling 'get_kv' on bad self", 1, true), tostring(err))
  end)

  it("name the method of readers, subscriptions and batches", function()
    assert(db:append_stream("s", "abc"))
    local r = assert(db:open_read("s"))
    names("read", 1, r.read, r, {})
    names("seek", 1, r.seek, r, "0")
    r:close()
    local sub = assert(db:subscribe_state())
    names("next", 1, sub.next, sub, "100")
    sub:close()
    local _, msg = db:batch(function(tx)
      names("set_kv", 1, tx.set_kv, tx, 1, "v")
      names("append_memory", 2, tx.append_memory, tx, "t", 7)
      error("stop")
    end)
    assert.is_truthy(msg:find("stop", 1, true))
  end)

  it("name the Lua-side methods and open", function()
    names("query_memory", 1, db.query_memory, db, 5)
    names("query_memory", 2, db.query_memory, db, "q", "limit")
    names("batch", 1, db.batch, db, "fn")
    names("open", 1, memmapfs.open, 5)
    names("open", 2, memmapfs.open, H.store_path("errors"), "batch")
    names("open", 2, memmapfs.open, H.store_path("errors"), { sync_ms = "100" })
  end)
end)

describe("open options", function()
  after_each(H.cleanup)

  it("refuses an unknown key, naming it, and creates nothing", function()
    local dir = H.store_path("errors")
    local msg = H.fails("INVALID", memmapfs.open(dir, { sync = "batch", lock_timout_ms = 5 }))
    assert.is_truthy(msg:find("lock_timout_ms", 1, true), msg)
    msg = H.fails("INVALID", memmapfs.open(dir, { "always" }))
    assert.is_truthy(msg:find("unknown option (a number key", 1, true), msg)
    assert.is_nil(io.open(dir .. "/MANIFEST", "rb"))
  end)

  it("accepts lock_timeout_ms = 0 and writes through it", function()
    local db = H.open({ lock_timeout_ms = 0 }, "errors")
    assert.is_true(db:set_kv("k", "v"))
    assert.are.equal("v", db:get_kv("k"))
    db:close()
  end)
end)

describe("policy option", function()
  after_each(H.cleanup)

  it("says 'no such policy file' for a path that names no file", function()
    local dir = H.store_path("errors")
    for _, p in ipairs { "polcy.lua", "policies/routing.lua", "./routing", dir .. "/x.lua" } do
      local msg = H.fails("INVALID", memmapfs.open(dir, { policy = p }))
      assert.is_truthy(msg:find("no such policy file '" .. p .. "'", 1, true), msg)
    end
    assert.is_nil(io.open(dir .. "/MANIFEST", "rb")) -- a failed open made nothing
  end)

  it("still takes source text and the path of an existing file", function()
    local dir = H.tmpdir("errors")
    local file = dir .. "/policy.lua"
    local source = "return { hooks = { set_kv = function(cmd) cmd.value = cmd.value .. '!' end } }"
    local f = assert(io.open(file, "w"))
    f:write(source)
    f:close()
    local db = H.reopen(dir .. "/store", { policy = file })
    assert.are.equal(source, db:get_policy())
    assert.is_true(db:set_kv("k", "v"))
    assert.are.equal("v!", db:get_kv("k"))
    db:close()
    db = H.reopen(dir .. "/store", { policy = "return{}" })
    assert.are.equal("return{}", db:get_policy())
    db:close()
    -- source that is not a path still gets the compiler's message
    local msg = H.fails("INVALID", memmapfs.open(dir .. "/store", { policy = "return {" }))
    assert.is_falsy(msg:find("no such policy file", 1, true), msg)
  end)
end)

describe("db:path()", function()
  after_each(H.cleanup)

  it("returns the store's directory, CLOSED once closed", function()
    local dir = H.store_path("errors")
    local db = H.reopen(dir .. "//")
    assert.are.equal(dir, db:path())
    db:close()
    H.fails("CLOSED", db:path())
  end)
end)
