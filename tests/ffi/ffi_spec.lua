-- The LuaJIT FFI binding (memmapfs.ffi) itself: where it finds the
-- library, that it answers exactly like the C module (both loaded in this
-- one LuaJIT), that the two see each other's writes and wake each other's
-- subscribers, and that finalizers close what was dropped.  Run by
-- tests/run-busted.sh with "ffi" (ctest: ffi_ffi_spec); the rest of the
-- suite runs against the FFI binding as the ffi_* tests.

local ffi = require "ffi"
local H = require "helpers"
local F = require "memmapfs.ffi"

-- The C module with init.lua, as require "memmapfs" gives it outside
-- these tests (the runner preloads "memmapfs" as the FFI binding).
local Cm = dofile(assert(package.searchpath("memmapfs", package.path)))

pcall(ffi.cdef, [[
struct mmfs_test_pollfd { int fd; short events; short revents; };
int poll(struct mmfs_test_pollfd *fds, unsigned long nfds, int timeout);
]])

local library = assert(os.getenv("MMFS_LIBRARY"), "MMFS_LIBRARY is not set")
local root = assert(package.searchpath("memmapfs.ffi", package.path)):match("^(.*)/lua/memmapfs/ffi%.lua$")

-- Every result of pcall(fn, ...) as one string, for comparing the two
-- bindings (handles print as their type).
local function outcome(fn, ...)
  -- counted with select: #r stops at the first nil of nil, msg, CODE
  local function pack(...) return { n = select("#", ...), ... } end
  local r = pack(pcall(fn, ...))
  for i = 1, r.n do
    local v = r[i]
    if type(v) == "table" and getmetatable(v) == "locked" then r[i] = "<handle>" end
    if type(v) == "userdata" then r[i] = "<handle>" end
    r[i] = tostring(r[i])
  end
  return table.concat(r, " | ", 1, r.n)
end

-- Runs a child LuaJIT with the FFI binding on the given environment.
local function child(env, source)
  return H.capture(("env -u LUA_INIT -u MMFS_LIBRARY %s %s -e %s"):format(env, H.lua(),
    H.quote(source)))
end

describe("memmapfs.ffi", function()
  after_each(function() H.cleanup() end)

  it("is what require 'memmapfs' gives in these tests, with the same version", function()
    assert.are.equal(F, require "memmapfs")
    assert.are_not.equal(F, Cm)
    assert.are.equal(Cm.version, F.version)
  end)

  it("declares every struct of memmapfs.h as the C compiler lays it out", function()
    local layout = assert(os.getenv("MMFS_FFI_LAYOUT"), "MMFS_FFI_LAYOUT is not set")
    local out = H.capture(H.quote(layout))
    local n = 0
    for st, field, v in out:gmatch("(%S+) (%S+) (%d+)\n") do
      local got = field == "sizeof" and ffi.sizeof(st) or ffi.offsetof(st, field)
      assert.are.equal(tonumber(v), got, st .. " " .. field)
      n = n + 1
    end
    assert.is_true(n > 50, out)
  end)

  it("loads again in the same Lua state (no redefinition)", function()
    local out = H.child(([[
      local a = require "memmapfs.ffi"
      package.loaded["memmapfs.ffi"] = nil
      local b = require "memmapfs.ffi"
      local db = assert(b.open(%q))
      assert(db:set_kv("k", "v"))
      io.write(tostring(a ~= b), " ", db:get_kv("k"))
      db:close()
    ]]):format(H.store_path("reload")))
    assert.are.equal("true v", out)
  end)

  describe("finds the library", function()
    local libdir = library:match("^(.*)/[^/]+$")

    it("through the dynamic loader's search path (LD_LIBRARY_PATH, ldconfig)", function()
      local out, ok = child(("LD_LIBRARY_PATH=%s LUA_PATH=%s"):format(H.quote(libdir),
        H.quote(root .. "/lua/?.lua;;")), [[
        local m = require "memmapfs.ffi"
        io.write(m.version)
      ]])
      assert.is_truthy(ok, out)
      assert.are.equal("0.1.0", out)
    end)

    it("next to the module, and in the lib directory of its install prefix", function()
      local prefix = H.tmpdir("prefix")
      local arch = ffi.arch == "x64" and "x86_64-linux-gnu" or "aarch64-linux-gnu"
      local luadir = prefix .. "/share/lua/5.1/memmapfs"
      -- ffi.lua and the plain Lua module it shares with init.lua
      assert(H.run(("mkdir -p %s %s/lib/%s && cp %s %s %s/ && cp %s %s/lib/%s/libmemmapfs.so"):format(
        H.quote(luadir), H.quote(prefix), arch, H.quote(root .. "/lua/memmapfs/ffi.lua"),
        H.quote(root .. "/lua/memmapfs/common.lua"), H.quote(luadir), H.quote(library),
        H.quote(prefix), arch)))
      local script = [[
        local m = require "memmapfs.ffi"
        local db = assert(m.open(os.getenv("STORE")))
        assert(db:set_kv("k", "v"))
        io.write(db:get_kv("k"))
        assert(db:close())
      ]]
      local env = ("LUA_PATH=%s STORE=%s"):format(H.quote(prefix .. "/share/lua/5.1/?.lua"),
        H.quote(H.store_path("installed")))
      local out, ok = child(env, script)
      assert.is_truthy(ok, out)
      assert.are.equal("v", out)
      -- the same tree with the library next to the module instead
      assert(H.run(("mv %s/lib/%s/libmemmapfs.so %s/"):format(H.quote(prefix), arch, H.quote(luadir))))
      env = ("LUA_PATH=%s STORE=%s"):format(H.quote(prefix .. "/share/lua/5.1/?.lua"),
        H.quote(H.store_path("beside")))
      out, ok = child(env, script)
      assert.is_truthy(ok, out)
      assert.are.equal("v", out)
    end)

    it("in the C module on package.cpath (a LuaRocks install), policies included", function()
      local cpath = assert(os.getenv("MMFS_TEST_CPATH"))
      local out = child(("LUA_PATH=%s LUA_CPATH=%s"):format(H.quote(root .. "/lua/?.lua;;"),
        H.quote(cpath .. "/?.so")), ([[
        local m = require "memmapfs.ffi"
        assert(package.loaded["memmapfs.core"] == nil)
        local db = assert(m.open(%q, { policy =
          "return { hooks = { set_kv = function(cmd) cmd.value = cmd.value .. '!' end } }" }))
        assert(db:set_kv("k", "v"))
        io.write(db:get_kv("k"))
        db:close()
      ]]):format(H.store_path("cpath")))
      assert.are.equal("v!", out)
    end)

    it("says how to point at it when it is not found", function()
      local out, ok = child(("MMFS_LIBRARY=%s LUA_PATH=%s"):format(
        H.quote(H.tmpdir("nolib") .. "/libmemmapfs.so"), H.quote(root .. "/lua/?.lua;;")),
        [[require "memmapfs.ffi"]])
      assert.is_truthy(ok ~= nil) -- LuaJIT's popen:close() does not give the status
      assert.is_truthy(out:find("cannot load libmemmapfs.so (set MMFS_LIBRARY to its path)", 1, true), out)
    end)
  end)

  describe("answers like the C module", function()
    local dirs = {}
    local dbs = {}
    before_each(function()
      -- one store per binding, filled the same way
      for name, m in pairs { c = Cm, ffi = F } do
        dirs[name] = H.store_path(name)
        local db = assert(m.open(dirs[name]))
        assert(db:set_kv("k", "v"))
        assert(db:append_memory("morning coffee", { "a", "b" }, { created_at = 1700000000 }))
        assert(db:put_session { id = "s", intent_id = "i", created_at = 5, n = 3, f = 1.5,
          nested = { x = { true, false, "s" } } })
        assert(db:append_stream("st", "one\ntwo\nthree"))
        assert(db:index("d", "a document"))
        assert(db:update_state("state"))
        dbs[name] = db
      end
    end)
    after_each(function()
      for _, db in pairs(dbs) do db:close() end
    end)

    -- Each case: a function of (module, db) run against both bindings.
    local t = {}
    t.t = t
    local cases = {
      { "get_kv", function(_, db) return db:get_kv("k") end },
      { "get_kv missing", function(_, db) return db:get_kv("nope") end },
      { "get_kv(1)", function(_, db) return db:get_kv(1) end },
      { "get_kv()", function(_, db) return db:get_kv() end },
      { "get_kv on a number", function(_, db) return db.get_kv(3, "k") end },
      { "get_kv as a field", function(_, db) return db.get_kv(db, {}) end },
      { "set_kv(k, nil)", function(_, db) return db:set_kv("k", nil) end },
      { "set_kv('1', 2)", function(_, db) return db:set_kv("1", 2) end },
      { "delete_kv twice", function(_, db) return db:delete_kv("k"), db:delete_kv("k") end },
      { "append_memory tags", function(_, db) return db:append_memory("x", { 1 }) end },
      { "append_memory tags type", function(_, db) return db:append_memory("x", "a") end },
      { "append_memory created_at", function(_, db) return db:append_memory("x", {}, { created_at = 1.5 }) end },
      { "append_memory route type", function(_, db) return db:append_memory("x", {}, { route = 1 }) end },
      { "get_memory 1", function(_, db)
        local m = db:get_memory(1)
        return m.text, m.tags[2], m.created_at, m.route
      end },
      { "get_memory -1", function(_, db) return db:get_memory(-1) end },
      { "get_memory 1.5", function(_, db) return db:get_memory(1.5) end },
      { "get_memory '1'", function(_, db) return db:get_memory("1") end },
      { "delete_memory -1", function(_, db) return db:delete_memory(-1) end },
      { "search_memory", function(_, db) local h = db:search_memory("coffee")[1]; return h.id, h.text, h.route end },
      { "search_memory bad query", function(_, db) return db:search_memory("(coffee") end },
      { "search_memory limit", function(_, db) return db:search_memory("coffee", { limit = -1 }) end },
      { "search_memory tags", function(_, db) return db:search_memory("coffee", { tags = 3 }) end },
      { "search_memory tags[1]", function(_, db) return db:search_memory("coffee", { tags = { {} } }) end },
      { "search_memory opts", function(_, db) return db:search_memory("coffee", 3) end },
      { "list_memories offset", function(_, db) return db:list_memories({ offset = -2 }) end },
      { "search_memory tags_any", function(_, db)
        return #db:search_memory("coffee", { tags_any = { "z", "b" } }),
          #db:search_memory("coffee", { tags_any = { "z" } }),
          #db:search_memory("coffee", { tags = { "a" }, tags_any = { "z" } }),
          #db:search_memory("coffee", { tags_any = {} })
      end },
      { "search_memory tags_any type", function(_, db) return db:search_memory("coffee", { tags_any = "a" }) end },
      { "search_memory tags_any[2]", function(_, db) return db:search_memory("coffee", { tags_any = { "a", 2 } }) end },
      { "search_memory unknown option", function(_, db) return db:search_memory("coffee", { limt = 5 }) end },
      { "search_memory unknown option type", function(_, db) return db:search_memory("coffee", { [1] = 5 }) end },
      { "search_memory offset", function(_, db) return db:search_memory("coffee", { offset = 1 }) end },
      { "search_memory bad value before unknown key", function(_, db)
        return db:search_memory("coffee", { limit = -1, limt = 5 })
      end },
      { "search_memory snippet", function(_, db)
        return db:search_memory("coffee", { snippet = true })[1].snippet,
          db:search_memory("coffee", { snippet = false })[1].snippet
      end },
      { "search_memory snippet marks and bytes", function(_, db)
        return db:search_memory("coffee", { snippet = { mark = { "<b>", "</b>" }, bytes = 4 } })[1].snippet,
          db:search_memory("morning", { snippet = { mark = { "", "" } } })[1].snippet
      end },
      { "search_memory snippet type", function(_, db) return db:search_memory("coffee", { snippet = 1 }) end },
      { "search_memory snippet bytes", function(_, db)
        return db:search_memory("coffee", { snippet = { bytes = 0 } })
      end },
      { "search_memory snippet mark type", function(_, db)
        return db:search_memory("coffee", { snippet = { mark = "<" } })
      end },
      { "search_memory snippet mark count", function(_, db)
        return db:search_memory("coffee", { snippet = { mark = { "<" } } })
      end },
      { "search_memory snippet mark[2]", function(_, db)
        return db:search_memory("coffee", { snippet = { mark = { "<", false } } })
      end },
      { "search_memory snippet unknown", function(_, db)
        return db:search_memory("coffee", { snippet = { marks = { "<", ">" } } })
      end },
      { "search_memory snippet closed", function(_, db)
        db:close()
        return db:search_memory("coffee", { snippet = true })
      end },
      { "list_memories tags_any", function(_, db)
        return #db:list_memories({ tags_any = { "b" } }), #db:list_memories({ tags_any = { "z" } })
      end },
      { "list_memories unknown option", function(_, db) return db:list_memories({ snippet = true }) end },
      { "append_memory unknown option", function(_, db) return db:append_memory("x", {}, { rout = "r" }) end },
      { "append_memory unknown option, closed", function(_, db)
        db:close()
        return db:append_memory("x", {}, { rout = "r" })
      end },
      { "tx:append_memory unknown option", function(_, db)
        local r
        local ids, err, code = db:batch(function(tx) r = { tx:append_memory("x", {}, { created = 1 }) } end)
        return type(ids), err, code, unpack(r, 1, 3)
      end },
      { "query_memory", function(_, db) return db:query_memory("coffee")[1] end },
      { "put_session {}", function(_, db) return db:put_session {} end },
      { "put_session 1", function(_, db) return db:put_session(1) end },
      { "put_session created_at", function(_, db) return db:put_session { id = "x", created_at = "now" } end },
      { "put_session function", function(_, db) return db:put_session { id = "x", f = print } end },
      { "put_session [true]", function(_, db) return db:put_session { id = "x", [true] = print } end },
      { "put_session [2]", function(_, db) return db:put_session { id = "x", [2] = print } end },
      { "put_session cycle", function(_, db) return db:put_session { id = "x", c = t } end },
      { "put_session table key", function(_, db) return db:put_session { id = "x", c = { [{}] = 1 } } end },
      { "get_session", function(_, db)
        local s = db:get_session("s")
        return s.id, s.intent_id, s.created_at, s.n, s.f, s.nested.x[1], s.nested.x[2], s.nested.x[3]
      end },
      { "list_sessions -1", function(_, db) return db:list_sessions(-1) end },
      { "list_by_intent", function(_, db) return #db:list_by_intent("i"), db:list_by_intent(1) end },
      { "stream_size", function(_, db) return db:stream_size("st"), db:stream_size("none") end },
      { "open_read missing", function(_, db) return db:open_read("none") end },
      { "read formats", function(_, db)
        local r = db:open_read("st")
        return r:read("l", 2, "L", 0, "a", "a", 1)
      end },
      { "read bad format", function(_, db) return db:open_read("st"):read("x") end },
      { "read negative", function(_, db) return db:open_read("st"):read(-1) end },
      { "seek", function(_, db) local r = db:open_read("st"); return r:seek(4), r:read(), r:seek(-1) end },
      { "seek past the end", function(_, db) return db:open_read("st"):seek(100) end },
      { "closed reader", function(_, db) local r = db:open_read("st"); r:close(); return r:read(1), r:tell() end },
      { "search", function(_, db) local h = db:search("document"); return #h, h[1].key end },
      { "search limit", function(_, db) return db:search("document", "x") end },
      { "search {limit}", function(_, db)
        return #db:search("document", { limit = 1 }), #db:search("document", {})
      end },
      { "search {limit} value", function(_, db) return db:search("document", { limit = -1 }) end },
      { "search {limit} type", function(_, db) return db:search("document", { limit = "1" }) end },
      { "search unknown option", function(_, db) return db:search("document", { limit = 1, lim = 2 }) end },
      { "get_state", function(_, db) return db:get_state() end },
      { "sub next", function(_, db) local s = db:subscribe_state(); return s:next(0), s:next(1.5) end },
      { "batch", function(_, db)
        local ids = db:batch(function(tx)
          assert(tx:set_kv("b", "1"))
          assert(tx:append_memory("one", {}) == 1)
          assert(tx:append_memory("two", {}) == 2)
          return tx:get_kv("k")
        end)
        return #ids, ids[2] - ids[1], db:get_kv("b")
      end },
      { "batch error", function(_, db) return db:batch(function() error("boom", 0) end) end },
      { "batch write inside", function(_, db)
        local r = {}
        db:batch(function() r = { db:set_kv("x", "y") } end)
        return unpack(r, 1, 3)
      end },
      { "batch nested", function(_, db)
        local r = {}
        db:batch(function() r = { db:batch(function() end) } end)
        return unpack(r, 1, 3)
      end },
      { "batch bad command", function(_, db)
        return db:batch(function(tx) tx:put_session { id = "" } end)
      end },
      { "batch fn", function(_, db) return db:batch(3) end },
      { "tx arg", function(_, db) return db:batch(function(tx) tx:set_kv(1, "x") end) end },
      { "set_policy bad", function(_, db)
        -- the compiler's own words differ: the library's policy VM is Lua
        -- 5.4, the C module's is this LuaJIT (docs/ffi.md)
        local ok, msg, code = db:set_policy("return {")
        return ok, msg:match("^policy:1: unexpected symbol near '?<eof>'?$") ~= nil, code
      end },
      { "get_policy", function(_, db) return db:get_policy() end },
      { "verify, sync, refresh", function(_, db) return db:verify(), db:sync(), db:refresh() end },
      { "stats", function(_, db) local s = db:stats(); return s.kv, s.memories, s.sessions, s.state_version end },
      { "scan_kv", function(_, db)
        local r = {}
        for k, v in db:scan_kv() do r[#r + 1] = k .. "=" .. v end
        return table.concat(r, ",")
      end },
      { "closed store", function(_, db)
        db:close()
        return db:get_kv("k"), db:set_kv("k", "v"), db:close()
      end },
      { "open(1)", function(m) return m.open(1) end },
      { "open zero byte", function(m) return m.open("a\0b") end },
      { "open opts type", function(m) return m.open("x", 3) end },
      { "open sync", function(m) return m.open("x", { sync = "sometimes" }) end },
      { "open sync type", function(m) return m.open("x", { sync = 1 }) end },
      { "open unknown", function(m) return m.open("x", { bogus = true }) end },
      { "open key type", function(m) return m.open("x", { key = {} }) end },
      { "open hook_budget", function(m) return m.open("x", { hook_budget = 0 }) end },
      { "open language", function(m)
        local dir = H.store_path("lang")
        local db = assert(m.open(dir, { language = "french" }))
        assert(db:append_memory("les chanteuses chantaient", {}))
        local n = #db:search_memory("chanter")
        db:close()
        -- another language on the same store is refused, its own is not
        local other = { m.open(dir, { language = "german" }) }
        db = assert(m.open(dir, { language = "french" }))
        return n, other[1], other[2] ~= nil, other[3], db:close()
      end },
      { "open language unknown", function(m) return m.open(H.store_path("opt"), { language = "klingon" }) end },
      { "open language type", function(m) return m.open("x", { language = 1 }) end },
      { "open language zero byte", function(m) return m.open(H.store_path("opt"), { language = "en\0glish" }) end },
      { "open missing", function(m) return m.open(H.store_path("missing"), { create = false }) end },
      -- (a scratch path: a failed open can leave its directory behind)
      { "open option list", function(m) return m.open(H.store_path("opt"), { "always" }) end },
      { "open option list key type", function(m) return m.open(H.store_path("opt"), { [true] = 1 }) end },
      { "open policy path", function(m) return m.open(H.store_path("opt"), { policy = "policies/none.lua" }) end },
      { "open policy path first", function(m)
        return m.open("a\0b", { "always", policy = "polcy.lua" })
      end },
      { "open policy type", function(m) return m.open(H.store_path("opt"), { policy = 5 }) end },
      { "path", function(_, db) return db:path() end },
      { "path closed", function(_, db) db:close(); return db:path() end },
      { "path on a bad self", function(_, db) return db.path({}) end },
      { "query_memory query", function(_, db) return db:query_memory(5) end },
      { "query_memory opts", function(_, db) return db:query_memory("coffee", "limit") end },
      { "read format type", function(_, db) return db:open_read("st"):read({}) end },
      { "read on a bad self", function(_, db) return db:open_read("st").read({}) end },
      { "sub next on a bad self", function(_, db) return db:subscribe_state().next({}, 1) end },
      { "tx on a bad self", function(_, db)
        return db:batch(function(tx) return tx.set_kv({}, "k", "v") end)
      end },
    }
    -- Calls that are not tail calls, so that errors name the method.
    local function named(name, ...)
      local args = { ... }
      return function(_, db)
        local r = { db[name](db, unpack(args)) }
        return unpack(r)
      end
    end
    local function named_method(_, db)
      local r = { db:set_kv("k", 1) }
      return unpack(r)
    end
    local function named_self(_, db)
      local r = { db.set_kv({}, "k", "v") }
      return unpack(r)
    end
    cases[#cases + 1] = { "named: set_kv with ':'", named_method }
    cases[#cases + 1] = { "named: set_kv on a bad self", named_self }
    cases[#cases + 1] = { "named: put_session as a field", named("put_session", { id = 1 }) }
    cases[#cases + 1] = { "named: search_memory as a field", named("search_memory", "x", { since = "x" }) }

    for _, case in ipairs(cases) do
      it(case[1], function()
        local c = outcome(case[2], Cm, dbs.c)
        local f = outcome(case[2], F, dbs.ffi)
        -- A Lua function cannot tell a missing argument from a nil one:
        -- the FFI binding says "got nil" where the C module says "got no
        -- value" (the one known difference in its argument errors).
        c = c:gsub("got no value", "got nil")
        assert.are.equal(c:gsub("/[%w%-%./]+/store", "STORE"), f:gsub("/[%w%-%./]+/store", "STORE"))
      end)
    end
  end)

  -- Both bindings name the argument and the field of a wrong
  -- snippet.bytes (the C module once named a stack slot: "#9", 'bytes').
  for _, m in ipairs { { "C module", Cm }, { "FFI", F } } do
    it(m[1] .. ": names the argument and the field of a wrong snippet.bytes", function()
      local db = assert(m[2].open(H.store_path("bytes")))
      assert(db:append_memory("morning coffee", {}))
      local ok, err = pcall(function()
        local r = { db:search_memory("coffee", { snippet = { bytes = "x" } }) }
        return r
      end)
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'search_memory' (field 'snippet.bytes': integer expected, "
        .. "got string)", err, 1, true)
      ok, err = pcall(db.search_memory, db, "coffee", { snippet = { bytes = 1.5 } })
      assert.is_false(ok)
      assert.matches("field 'snippet.bytes': integer expected, got number", err, 1, true)
      db:close()
    end)

    -- (the C module once compared keys as C strings and took it for limit)
    it(m[1] .. ": refuses an option key with a zero byte", function()
      local db = assert(m[2].open(H.store_path("zero")))
      local ok, err, code = db:list_memories({ ["limit\0x"] = 1 })
      assert.is_nil(ok)
      assert.are.equal("list_memories: unknown option 'limit\0x'", err)
      assert.are.equal("INVALID", code)
      db:close()
    end)
  end

  describe("between the two bindings and processes", function()
    it("a write through one is seen by the other's next call, and wakes its subscribers", function()
      local dir = H.store_path("shared")
      local f = assert(F.open(dir))
      local c = assert(Cm.open(dir))
      local sub = assert(f:subscribe_state())
      assert(c:set_kv("from", "c"))
      assert.are.equal("c", f:get_kv("from"))
      assert(f:append_memory("written by the ffi binding", { "ffi" }))
      assert.are.equal("written by the ffi binding", c:query_memory("ffi binding")[1])
      assert(c:update_state("woken"))
      assert.are.same({ "woken", 1 }, { sub:next(5000) })
      f:close()
      c:close()
    end)

    it("read each other's session fields (the codec in Lua and in C agree)", function()
      local dir = H.store_path("sessions")
      local f = assert(F.open(dir))
      local c = assert(Cm.open(dir))
      local fields = { n = 3, neg = -2 ^ 53, f = 1.5, tiny = 1e-300, b = true, no = false,
        s = "bin\0\255", e = "", list = { 1, "two", { three = 3 } }, [7] = "seven", [2.5] = "x" }
      local function session(id)
        local t = { id = id, intent_id = "i", created_at = 1700000000, payload = "p" }
        for k, v in pairs(fields) do t[k] = v end
        return t
      end
      assert(f:put_session(session("by-ffi")))
      assert(c:put_session(session("by-c")))
      for _, id in ipairs { "by-ffi", "by-c" } do
        assert.are.same(session(id), c:get_session(id))
        assert.are.same(session(id), f:get_session(id))
      end
      f:close()
      c:close()
    end)

    it("sub:fd() turns readable on another process's update", function()
      local db, dir = H.open()
      local sub = assert(db:subscribe_state())
      local pfd = ffi.new("struct mmfs_test_pollfd[1]")
      pfd[0].fd, pfd[0].events = sub:fd(), 1 -- POLLIN
      assert.are.equal(0, ffi.C.poll(pfd, 1, 0))
      local out, ok = H.child(([[
        local db = assert(require("memmapfs").open(%q))
        assert(db:update_state("from the child"))
        assert(db:set_kv("child", "yes"))
        db:close()
      ]]):format(dir))
      assert.is_truthy(ok, out)
      assert.are.equal(1, ffi.C.poll(pfd, 1, 5000))
      assert.are.same({ "from the child", 1 }, { sub:next(0) })
      assert.are.equal("yes", db:get_kv("child"))
      db:close()
    end)
  end)

  describe("finalizers", function()
    -- The open file descriptors of this process other than pipes: a store
    -- holds files, an inotify and (subscriptions) eventfd descriptors,
    -- never a pipe, while io.popen's pipe of the listing itself shows once
    -- or twice (whether ls runs before popen closed its copy of the
    -- child's end is a race), which made the count flaky.
    local function nfds()
      local pid = H.capture("echo $PPID"):match("%d+")
      local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd"))
      local n = 0
      for line in p:lines() do
        if line:find(" -> ", 1, true) and not line:find("-> pipe:", 1, true) then n = n + 1 end
      end
      p:close()
      return n
    end

    it("close a dropped store and its children, in whatever order they die", function()
      local dir = H.store_path("gc")
      local db = assert(F.open(dir))
      assert(db:append_stream("s", "bytes"))
      assert(db:set_kv("k", "v"))
      db:close()
      collectgarbage()
      collectgarbage()
      local before = nfds()
      for _ = 1, 50 do
        local d = assert(F.open(dir))
        local r = assert(d:open_read("s"))
        local sub = assert(d:subscribe_state())
        assert(sub:fd() >= 0)
        local it = d:scan_kv()
        assert(d:_batch_begin())
        assert.are.equal("bytes", r:read("a"))
        assert(it)
      end
      collectgarbage()
      collectgarbage()
      assert.are.equal(before, nfds())
    end)

    it("a child keeps its store open after the store object is dropped", function()
      local dir = H.store_path("keep")
      local r
      do
        local db = assert(F.open(dir))
        assert(db:append_stream("s", "still here"))
        r = assert(db:open_read("s"))
      end
      collectgarbage()
      collectgarbage()
      assert.are.equal("still here", r:read("a"))
    end)
  end)
end)
