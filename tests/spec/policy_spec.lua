-- Policies: set_policy/get_policy, the policy option, routing, session
-- schemas, hooks for every command, the sandbox and its limits, policies
-- across processes and reopen.  Runs on every Lua the module is built for:
-- the policy runs on the interpreter's own Lua, so every policy below is
-- written in the common subset of Lua 5.1-5.4.

local memmapfs = require "memmapfs"
local H = require "helpers"

local have_policy = os.getenv("MMFS_HAVE_POLICY") ~= "0"

-- The store's write counters: a rejected write must leave them as they were.
local function counters(db)
  local st = assert(db:stats())
  return { lsn = st.lsn, log_bytes = st.log_bytes, memories = st.memories, kv = st.kv,
    sessions = st.sessions, streams = st.streams, documents = st.documents,
    state_version = st.state_version }
end

-- Asserts that FN's write fails with CODE and writes nothing; returns the message.
local function refused(db, code, fn)
  local before = counters(db)
  local msg = H.fails(code, fn())
  assert.are.same(before, counters(db))
  return msg
end

-- A policy whose only hook is set_kv with BODY (the function's body).
local function set_kv_hook(body)
  return "return { hooks = { set_kv = function(cmd, tx)\n" .. body .. "\nend } }"
end

-- The bytes of the stream KEY ("" when it does not exist).
local function stream(db, key)
  local r = db:open_read(key)
  if not r then return "" end
  local s = r:read("a")
  r:close()
  return s or ""
end

describe("policy", function()
  if not have_policy then
    it("is not built in", function()
      pending("built without Lua policies (MMFS_WITH_POLICY off or no Lua 5.4 headers)")
    end)
    return
  end

  local db, dir
  before_each(function() db, dir = H.open(nil, "policy") end)
  after_each(function()
    if db then db:close() end
    H.cleanup()
  end)

  -- Installs a set_kv hook running BODY for the key "evil" (reopened with
  -- OPTS), and asserts that the write fails with CODE (message matching PAT)
  -- within 2 s, writes nothing, and leaves the store usable.
  local function survives(code, pat, body, opts)
    db:close()
    db = H.reopen(dir, opts)
    assert(db:set_policy(set_kv_hook("if cmd.key == 'evil' then\n" .. body .. "\nend")))
    local t0 = os.time()
    local msg = refused(db, code, function() return db:set_kv("evil", "x") end)
    assert.is_true(os.time() - t0 <= 2, "took too long")
    if pat then assert.is_truthy(msg:find(pat), ("%q does not match %q"):format(msg, pat)) end
    assert.is_nil(db:get_kv("evil"))
    assert(db:set_kv("next", "fine"))
    assert.are.equal("fine", db:get_kv("next"))
    return msg
  end

  describe("set_policy and get_policy", function()
    it("round-trip the source; nil removes it", function()
      assert.is_nil(db:get_policy())
      local src = "-- a policy\nreturn { routes = { default = {} } }\n"
      assert.is_true(db:set_policy(src))
      assert.are.equal(src, db:get_policy())
      local other = "return {}"
      assert.is_true(db:set_policy(other))
      assert.are.equal(other, db:get_policy())
      assert.is_true(db:set_policy(nil))
      assert.is_nil(db:get_policy())
    end)

    it("is a log command: it moves the LSN and survives reopen", function()
      local lsn0 = db:stats().lsn
      local src = set_kv_hook("cmd.value = cmd.value .. '+'")
      assert(db:set_policy(src))
      local lsn1 = db:stats().lsn
      assert.is_true(lsn1 > lsn0)
      assert(db:set_kv("k", "v"))
      assert.are.equal("v+", db:get_kv("k"))
      local lsn2 = db:stats().lsn
      assert.is_true(db:close())
      db = H.reopen(dir)
      assert.are.equal(src, db:get_policy())
      assert.are.equal(lsn2, db:stats().lsn)
      assert.are.equal("v+", db:get_kv("k"))
      -- the policy is in force after reopen, and LSNs go on from where they were
      assert(db:set_kv("k2", "w"))
      assert.are.equal("w+", db:get_kv("k2"))
      assert.is_true(db:stats().lsn > lsn2)
    end)

    it("refuses a non-string source", function()
      H.raises(function() db:set_policy(42) end)
      H.raises(function() db:set_policy({}) end)
      assert.is_nil(db:get_policy())
    end)

    it("a syntax error is INVALID and names the line; nothing is installed", function()
      local good = set_kv_hook("cmd.value = 'good'")
      assert(db:set_policy(good))
      local msg = refused(db, "INVALID", function()
        return db:set_policy("return {\n  hooks = {\n    set_kv = function(cmd)\n      cmd.value = = 1\n    end } }")
      end)
      assert.is_truthy(msg:find("policy:4:", 1, true), msg)
      assert.are.equal(good, db:get_policy())
      assert(db:set_kv("k", "x"))
      assert.are.equal("good", db:get_kv("k"))
    end)

    it("an unknown key in a policy table is INVALID naming it; nothing is installed", function()
      -- a typo such as hoooks silently disabled every hook
      local msg = H.fails("INVALID", db:set_policy(
        "return { hoooks = { set_kv = function() return nil, 'no' end } }"))
      assert.is_truthy(msg:find("unknown key 'hoooks'", 1, true), msg)
      msg = H.fails("INVALID", db:set_policy("return { routes = { private = { idx = false } } }"))
      assert.is_truthy(msg:find("routes.private: unknown key 'idx'", 1, true), msg)
      assert.is_nil(db:get_policy())
      assert(db:set_kv("k", "v"))
    end)

    it("a chunk that raises or returns no table is INVALID", function()
      local msg = H.fails("INVALID", db:set_policy("local x = 1\nerror('no policy today')"))
      assert.is_truthy(msg:find("no policy today", 1, true), msg)
      H.fails("INVALID", db:set_policy("return 'a string'"))
      H.fails("INVALID", db:set_policy("return { hooks = { set_kvv = function() end } }"))
      H.fails("INVALID", db:set_policy("return { schemas = { session = { id = 'strin' } } }"))
      assert.is_nil(db:get_policy())
      assert(db:set_kv("still", "works"))
    end)

    it("refuses bytecode", function()
      local dump = string.dump(function() return {} end)
      H.fails("INVALID", db:set_policy(dump))
      assert.is_nil(db:get_policy())
    end)
  end)

  describe("the open option", function()
    it("installs source text", function()
      db:close()
      local src = set_kv_hook("cmd.value = cmd.value:upper()")
      local path = H.store_path("opt-src")
      db = assert(memmapfs.open(path, { policy = src }))
      assert.are.equal(src, db:get_policy())
      assert(db:set_kv("k", "abc"))
      assert.are.equal("ABC", db:get_kv("k"))
    end)

    it("installs the file a path names", function()
      db:close()
      local file = H.tmpdir("opt-file") .. "/policy.lua"
      local src = set_kv_hook("cmd.value = 'from file'")
      local f = assert(io.open(file, "w"))
      f:write(src)
      f:close()
      db = assert(memmapfs.open(H.store_path("opt-file"), { policy = file }))
      assert.are.equal(src, db:get_policy())
      assert(db:set_kv("k", "x"))
      assert.are.equal("from file", db:get_kv("k"))
    end)

    it("installs only a policy that differs from the store's", function()
      local src = set_kv_hook("cmd.value = '1'")
      assert(db:set_policy(src))
      local lsn = db:stats().lsn
      db:close()
      db = assert(memmapfs.open(dir, { policy = src }))
      assert.are.equal(lsn, db:stats().lsn)
      db:close()
      local src2 = set_kv_hook("cmd.value = '2'")
      db = assert(memmapfs.open(dir, { policy = src2 }))
      assert.is_true(db:stats().lsn > lsn)
      assert.are.equal(src2, db:get_policy())
      assert(db:set_kv("k", "x"))
      assert.are.equal("2", db:get_kv("k"))
    end)

    it("a policy that does not compile fails the open with INVALID naming the line", function()
      db:close()
      db = nil
      local msg = H.fails("INVALID", memmapfs.open(dir, { policy = "return {\n\n  route = 5 +\n}" }))
      assert.is_truthy(msg:find("policy:4:", 1, true) or msg:find("policy:3:", 1, true), msg)
      db = H.reopen(dir)
      assert.is_nil(db:get_policy())
      assert(db:set_kv("k", "v"))
    end)
  end)

  describe("routing", function()
    local routing = [[
      return {
        route = function(mem)
          if mem.tags.secret then return nil, "secrets are not stored" end
          mem.tags.routed = true
          mem.tags.draft = nil
          if mem.tags.private then return "private" end
          return "default"
        end,
        routes = { default = {}, private = { index = false } },
      }
    ]]

    it("route picks the route and may edit the tags", function()
      assert(db:set_policy(routing))
      local pub = assert(db:append_memory("public note about apples", { "draft", "fruit" }))
      local priv = assert(db:append_memory("private note about apples", { "private" }))
      local m = db:get_memory(pub)
      assert.are.equal("default", m.route)
      assert.are.same({ "fruit", "routed" }, m.tags)
      m = db:get_memory(priv)
      assert.are.equal("private", m.route)
      assert.are.same({ "private", "routed" }, m.tags)
    end)

    it("a route with index = false keeps memories out of search only", function()
      assert(db:set_policy(routing))
      local pub = assert(db:append_memory("public note about apples", { "fruit" }))
      local priv = assert(db:append_memory("private note about apples", { "private" }))
      local hits = assert(db:search_memory("apples"))
      assert.are.equal(1, #hits)
      assert.are.equal(pub, hits[1].id)
      assert.are.same({ "public note about apples" }, db:query_memory("private OR apples"))
      assert.are.equal("private note about apples", db:get_memory(priv).text)
      local all = assert(db:list_memories())
      assert.are.equal(2, #all)
      assert.are.equal(priv, all[1].id) -- newest first
      local listed = assert(db:list_memories { route = "private" })
      assert.are.equal(1, #listed)
      assert.are.equal(priv, listed[1].id)
      assert.are.equal(2, db:stats().memories)
    end)

    it("search_memory{route = ...} filters by route", function()
      assert(db:set_policy([[
        return {
          route = function(mem) return mem.tags.work and "work" or "home" end,
          routes = { work = {}, home = {} },
        }
      ]]))
      local w = assert(db:append_memory("meeting about the garden budget", { "work" }))
      local h = assert(db:append_memory("planting the garden on sunday", {}))
      local hits = assert(db:search_memory("garden", { route = "work" }))
      assert.are.equal(1, #hits)
      assert.are.equal(w, hits[1].id)
      assert.are.equal("work", hits[1].route)
      hits = assert(db:search_memory("garden", { route = "home" }))
      assert.are.equal(1, #hits)
      assert.are.equal(h, hits[1].id)
      assert.are.equal(2, #assert(db:search_memory("garden")))
    end)

    it("route can reject a memory; nothing is written", function()
      assert(db:set_policy(routing))
      local msg = refused(db, "REJECTED", function()
        return db:append_memory("the password is hunter2", { "secret" })
      end)
      assert.is_truthy(msg:find("secrets are not stored", 1, true), msg)
      assert.are.same({}, db:query_memory("hunter2"))
      local id = assert(db:append_memory("next one", {}))
      assert.are.equal("next one", db:get_memory(id).text)
    end)

    it("without a route function the caller's route is kept", function()
      assert(db:set_policy("return { hooks = {} }"))
      local id = assert(db:append_memory("routed by the caller", {}, { route = "episodic" }))
      assert.are.equal("episodic", db:get_memory(id).route)
    end)

    it("a route the routes table does not name is rejected", function()
      assert(db:set_policy([[
        return { route = function() return "nowhere" end, routes = { default = {} } }
      ]]))
      refused(db, "REJECTED", function() return db:append_memory("lost", {}) end)
    end)
  end)

  describe("session schemas", function()
    local schema = [[
      return { schemas = { session = {
        id = "string", intent_id = "string", created_at = "integer",
        payload = "string?", score = "number?", done = "boolean?", meta = "table?",
        count = "integer?", label = "string?",
        status = { "open", "closed" },
      } } }
    ]]

    local function ok_session(extra)
      local s = { id = "s1", intent_id = "i1", created_at = 1700000000, status = "open" }
      for k, v in pairs(extra or {}) do s[k] = v end
      return s
    end

    it("accepts sessions that match, optional fields missing or present", function()
      assert(db:set_policy(schema))
      assert(db:put_session(ok_session()))
      assert(db:put_session(ok_session { id = "s2", payload = "p", score = 0.5, done = true,
        meta = { a = 1 }, status = "closed" }))
      assert.are.same(ok_session(), db:get_session("s1"))
      assert.are.equal("closed", db:get_session("s2").status)
      assert.are.same({ a = 1 }, db:get_session("s2").meta)
    end)

    it("rejects a wrong type, naming the field", function()
      assert(db:set_policy(schema))
      local msg = refused(db, "REJECTED", function()
        return db:put_session(ok_session { label = 12 })
      end)
      assert.is_truthy(msg:find("label", 1, true), msg)
      msg = refused(db, "REJECTED", function()
        return db:put_session(ok_session { count = 1.5 })
      end)
      assert.is_truthy(msg:find("count", 1, true), msg)
      msg = refused(db, "REJECTED", function()
        return db:put_session(ok_session { meta = "flat" })
      end)
      assert.is_truthy(msg:find("meta", 1, true), msg)
      msg = refused(db, "REJECTED", function()
        return db:put_session(ok_session { score = "high" })
      end)
      assert.is_truthy(msg:find("score", 1, true), msg)
      msg = refused(db, "REJECTED", function()
        return db:put_session(ok_session { done = "yes" })
      end)
      assert.is_truthy(msg:find("done", 1, true), msg)
    end)

    it("rejects a missing required field, naming it", function()
      assert(db:set_policy(schema))
      local msg = refused(db, "REJECTED", function()
        return db:put_session { id = "s1", created_at = 1, status = "open" }
      end)
      assert.is_truthy(msg:find("intent_id", 1, true), msg)
    end)

    it("rejects a value outside an enumeration", function()
      assert(db:set_policy(schema))
      local msg = refused(db, "REJECTED", function()
        return db:put_session(ok_session { status = "paused" })
      end)
      assert.is_truthy(msg:find("status", 1, true), msg)
      assert.is_truthy(msg:find("paused", 1, true), msg)
    end)

    it("rejects unknown fields unless _extra = true", function()
      assert(db:set_policy(schema))
      local msg = refused(db, "REJECTED", function()
        return db:put_session(ok_session { colour = "blue" })
      end)
      assert.is_truthy(msg:find("colour", 1, true), msg)
      assert.is_nil(db:get_session("s1"))
      assert(db:set_policy(schema:gsub("status = ", "_extra = true, status = ")))
      assert(db:put_session(ok_session { colour = "blue" }))
      assert.are.equal("blue", db:get_session("s1").colour)
    end)

    -- Sessions as they came are checked from the record, in C; where that
    -- check cannot tell, the check on the table decides.  Both must agree.
    it("an integral float is an integer, on every Lua", function()
      assert(db:set_policy(schema))
      assert(db:put_session(ok_session { count = 3.0 }))
      assert.are.equal(3, db:get_session("s1").count)
    end)

    it("an enumeration of numbers and strings", function()
      assert(db:set_policy([[
        return { schemas = { session = { id = "string", created_at = "integer?", level = { 1, 2, "max" } } } }
      ]]))
      assert(db:put_session { id = "a", level = 2 })
      assert(db:put_session { id = "b", level = "max" })
      local msg = refused(db, "REJECTED", function() return db:put_session { id = "c", level = 3 } end)
      assert.is_truthy(msg:find("expected one of 1, 2, max", 1, true), msg)
    end)

    it("is the schema as installed: changing its tables later changes nothing", function()
      assert(db:set_policy([[
        local status = { "open" }
        return {
          schemas = { session = { id = "string", created_at = "integer?", status = status } },
          hooks = { set_kv = function() status[2] = "closed" end },
        }
      ]]))
      assert(db:set_kv("k", "v"))
      local msg = refused(db, "REJECTED", function() return db:put_session { id = "s", status = "closed" } end)
      assert.is_truthy(msg:find("status", 1, true), msg)
      assert(db:put_session { id = "s", status = "open" })
    end)

    it("checks the session a hook left, and not again one it left alone", function()
      assert(db:set_policy([[
        return {
          schemas = { session = { id = "string", created_at = "integer?", status = { "open", "closed" } } },
          hooks = { put_session = function(cmd)
            if cmd.session.id == "bad" then cmd.session.status = "lost" end
          end },
        }
      ]]))
      assert(db:put_session { id = "good", status = "open" })
      local msg = refused(db, "REJECTED", function() return db:put_session { id = "bad", status = "open" } end)
      assert.is_truthy(msg:find("session field 'status'", 1, true), msg)
      assert.is_truthy(msg:find("lost", 1, true), msg)
      -- what the hook was given is checked before it runs
      msg = refused(db, "REJECTED", function() return db:put_session { id = "x", status = "odd" } end)
      assert.is_truthy(msg:find("odd", 1, true), msg)
    end)

    it("checks sessions added by a hook through tx", function()
      assert(db:set_policy([[
        return {
          schemas = { session = { id = "string", created_at = "integer", status = { "open" } } },
          hooks = { set_kv = function(cmd, tx) tx:put_session { id = cmd.key, status = cmd.value } end },
        }
      ]]))
      assert(db:set_kv("s1", "open"))
      assert.are.equal("open", db:get_session("s1").status)
      refused(db, "REJECTED", function() return db:set_kv("s2", "shut") end)
      assert.is_nil(db:get_kv("s2"))
      assert.is_nil(db:get_session("s2"))
    end)
  end)

  describe("hooks", function()
    -- For every command type: a hook that edits the command, and what the
    -- store then shows.
    local edits = {
      { "append_memory", "cmd.text = cmd.text:upper(); cmd.tags[#cmd.tags + 1] = 'hooked'",
        function()
          local id = assert(db:append_memory("loud words", { "t" }))
          local m = db:get_memory(id)
          assert.are.equal("LOUD WORDS", m.text)
          assert.are.same({ "t", "hooked" }, m.tags)
          assert.are.same({ "LOUD WORDS" }, db:query_memory("loud"))
        end },
      { "delete_memory", "cmd.id = cmd.id + 1",
        function()
          local a = assert(db:append_memory("first", {}))
          local b = assert(db:append_memory("second", {}))
          assert(db:delete_memory(a))
          assert.are.equal("first", db:get_memory(a).text)
          assert.is_nil(db:get_memory(b))
        end },
      { "set_kv", "cmd.value = cmd.value:upper(); cmd.key = 'hooked:' .. cmd.key",
        function()
          assert(db:set_kv("greeting", "hello"))
          assert.are.equal("HELLO", db:get_kv("hooked:greeting"))
          assert.is_nil(db:get_kv("greeting"))
        end },
      { "delete_kv", "cmd.key = 'other'",
        function()
          assert(db:set_kv("mine", "1"))
          assert(db:set_kv("other", "2"))
          db:delete_kv("mine")
          assert.are.equal("1", db:get_kv("mine"))
          assert.is_nil(db:get_kv("other"))
        end },
      { "put_session", "cmd.session.status = 'checked'; cmd.session.payload = nil",
        function()
          assert(db:put_session { id = "s", intent_id = "i", created_at = 5, payload = "secret" })
          assert.are.same({ id = "s", intent_id = "i", created_at = 5, status = "checked" },
            db:get_session("s"))
        end },
      { "delete_session", "cmd.id = 'b'",
        function()
          assert(db:put_session { id = "a" })
          assert(db:put_session { id = "b" })
          db:delete_session("a")
          assert.is_table(db:get_session("a"))
          assert.is_nil(db:get_session("b"))
        end },
      { "append_stream", "cmd.bytes = '[' .. cmd.bytes .. ']\\n'",
        function()
          assert(db:append_stream("log", "one"))
          assert(db:append_stream("log", "two"))
          assert.are.equal("[one]\n[two]\n", stream(db, "log"))
        end },
      { "index", "cmd.text = cmd.text .. ' appendix'",
        function()
          assert(db:index("doc", "original text"))
          local hits = assert(db:search("appendix"))
          assert.are.equal(1, #hits)
          assert.are.equal("doc", hits[1].key)
        end },
      { "unindex", "cmd.key = 'b'",
        function()
          assert(db:index("a", "alpha words"))
          assert(db:index("b", "beta words"))
          db:unindex("a")
          local hits = assert(db:search("words"))
          assert.are.equal(1, #hits)
          assert.are.equal("a", hits[1].key)
        end },
      { "update_state", "cmd.value = 'state:' .. cmd.value",
        function()
          assert.are.equal(1, db:update_state("thinking"))
          assert.are.equal("state:thinking", (db:get_state()))
        end },
    }

    for _, e in ipairs(edits) do
      local kind, body, check = e[1], e[2], e[3]
      it(kind .. ": a hook edits the command", function()
        assert(db:set_policy(("return { hooks = { %s = function(cmd, tx) %s end } }"):format(
          kind, body)))
        check()
      end)
    end

    -- For every command type: a hook that rejects it; the call, and a call
    -- that has the same effect without the hook (to prove the store still
    -- takes writes).
    local calls = {
      append_memory = function() return db:append_memory("m", {}) end,
      delete_memory = function() return db:delete_memory(1) end,
      set_kv = function() return db:set_kv("k", "v") end,
      delete_kv = function() return db:delete_kv("k") end,
      put_session = function() return db:put_session { id = "s" } end,
      delete_session = function() return db:delete_session("s") end,
      append_stream = function() return db:append_stream("st", "x") end,
      index = function() return db:index("d", "text") end,
      unindex = function() return db:unindex("d") end,
      update_state = function() return db:update_state("x") end,
    }
    local kinds = {}
    for k in pairs(calls) do kinds[#kinds + 1] = k end
    table.sort(kinds)

    -- Something for the deletes to delete.
    local function seed()
      assert(db:append_memory("m0", {}))
      assert(db:set_kv("k", "v0"))
      assert(db:put_session { id = "s" })
      assert(db:index("d", "text0"))
    end

    it("every command type: nil, reason rejects it and writes nothing", function()
      seed()
      local hooks = {}
      for _, k in ipairs(kinds) do
        hooks[#hooks + 1] = ("%s = function(cmd) return nil, 'no %s here' end"):format(k, k)
      end
      assert(db:set_policy("return { hooks = {\n" .. table.concat(hooks, ",\n") .. "\n} }"))
      for _, k in ipairs(kinds) do
        local msg = refused(db, "REJECTED", calls[k])
        assert.are.equal("no " .. k .. " here", msg)
      end
      assert.are.equal("v0", db:get_kv("k"))
      assert.are.equal("m0", db:get_memory(1).text)
      assert.is_table(db:get_session("s"))
      assert.are.equal(1, #db:search("text0"))
      assert(db:set_policy(nil))
      for _, k in ipairs(kinds) do assert(calls[k](), k) end
    end)

    -- Command tables are filled in lazily (docs/policies.md): what a hook
    -- does not read is not copied, and must still reach the log as it came.
    describe("command tables", function()
      it("a hook that reads nothing leaves every command as it came", function()
        local hooks = {}
        for _, k in ipairs(kinds) do hooks[#hooks + 1] = k .. " = function(cmd, tx) end" end
        assert(db:set_policy("return { hooks = {\n" .. table.concat(hooks, ",\n") .. "\n} }"))
        local id = assert(db:append_memory("plain text", { "a", "b" }, { created_at = 1234 }))
        assert.are.same({ "a", "b" }, db:get_memory(id).tags)
        assert.are.equal("plain text", db:get_memory(id).text)
        assert.are.equal(1234, db:get_memory(id).created_at)
        assert(db:set_kv("k", "v"))
        assert.are.equal("v", db:get_kv("k"))
        assert(db:put_session { id = "s", intent_id = "i", created_at = 7, payload = "p" })
        assert.are.same({ id = "s", intent_id = "i", created_at = 7, payload = "p" }, db:get_session("s"))
        assert(db:append_stream("st", "bytes"))
        assert.are.equal("bytes", stream(db, "st"))
        assert(db:index("d", "document words"))
        assert.are.equal("d", db:search("document")[1].key)
        assert.are.equal(1, db:update_state("now"))
        assert.are.equal("now", (db:get_state()))
        assert(db:delete_memory(id))
        assert.is_nil(db:get_memory(id))
        assert(db:delete_kv("k"))
        assert.is_nil(db:get_kv("k"))
        assert(db:delete_session("s"))
        assert.is_nil(db:get_session("s"))
        assert(db:unindex("d"))
        assert.are.equal(0, #db:search("document"))
      end)

      it("a field set without being read replaces it", function()
        assert(db:set_policy([[
          return { hooks = { append_memory = function(cmd, tx)
            cmd.text = "replaced"; cmd.tags = { "x" }; cmd.created_at = 99
          end } }
        ]]))
        local id = assert(db:append_memory("original", { "a" }))
        local m = db:get_memory(id)
        assert.are.same({ "replaced", { "x" }, 99 }, { m.text, m.tags, m.created_at })
      end)

      it("pairs lists every field, for every command type", function()
        local want = {
          append_memory = "created_at,route,tags,text,type", delete_memory = "id,type",
          set_kv = "key,type,value", delete_kv = "key,type", put_session = "session,type",
          delete_session = "id,type", append_stream = "bytes,key,type", index = "key,text,type",
          unindex = "key,type", update_state = "type,value",
        }
        seed()
        local hooks = {}
        for _, k in ipairs(kinds) do
          hooks[#hooks + 1] = k .. [[ = function(cmd)
            local names = {}
            for name in pairs(cmd) do names[#names + 1] = name end
            table.sort(names)
            return nil, table.concat(names, ",")
          end]]
        end
        assert(db:set_policy("return { hooks = {\n" .. table.concat(hooks, ",\n") .. "\n} }"))
        for _, k in ipairs(kinds) do
          assert.are.equal(want[k], refused(db, "REJECTED", calls[k]), k)
        end
      end)

      it("a table kept past its call keeps what it read and refuses the rest", function()
        assert(db:set_policy([[
          local kept
          return { hooks = { set_kv = function(cmd, tx)
            if not kept then
              kept = cmd
              return cmd.key == "first"
            end
            local ok, err = pcall(function() return kept.value end)
            return nil, kept.key .. "|" .. tostring(ok) .. "|" .. tostring(err)
          end } }
        ]]))
        assert(db:set_kv("first", "1"))
        local msg = refused(db, "REJECTED", function() return db:set_kv("second", "2") end)
        assert.is_truthy(msg:find("^first|false|"), msg)
        assert.is_truthy(msg:find("cmd.value read after the call", 1, true), msg)
      end)

      it("its metatable is protected", function()
        assert(db:set_policy(set_kv_hook(
          "return nil, tostring(getmetatable(cmd)) .. '|' .. tostring(pcall(setmetatable, cmd, {}))")))
        assert.are.equal("cmd|false", refused(db, "REJECTED", function() return db:set_kv("k", "v") end))
      end)
    end)

    it("return false rejects with a generic message", function()
      assert(db:set_policy(set_kv_hook("return false")))
      refused(db, "REJECTED", function() return db:set_kv("k", "v") end)
    end)

    it("a hook that raises rejects its command with the error", function()
      assert(db:set_policy(set_kv_hook("if cmd.key == 'bad' then error('bad key: ' .. cmd.key) end")))
      local msg = refused(db, "REJECTED", function() return db:set_kv("bad", "v") end)
      assert.is_truthy(msg:find("bad key: bad", 1, true), msg)
      assert(db:set_kv("good", "v"))
      assert.are.equal("v", db:get_kv("good"))
      -- raising a non-string
      assert(db:set_policy(set_kv_hook("error({})")))
      refused(db, "REJECTED", function() return db:set_kv("k", "v") end)
    end)

    it("a hook adds commands through tx, committed with the command", function()
      assert(db:set_policy([[
        return { hooks = { set_kv = function(cmd, tx)
          tx:append_stream("audit", "set " .. cmd.key .. "\n")
          tx:append_memory("key " .. cmd.key .. " was set", { "audit" })
          tx:set_kv("count", tostring((tonumber(tx:get_kv("count")) or 0) + 1))
        end } }
      ]]))
      local lsn = db:stats().lsn
      assert(db:set_kv("a", "1"))
      assert(db:set_kv("b", "2"))
      assert.are.equal("set a\nset b\n", stream(db, "audit"))
      assert.are.equal("2", db:get_kv("count")) -- not hooked again, and tx:get_kv saw 1
      assert.are.same({ "key a was set" }, db:query_memory("+key +a"))
      assert.are.equal(2, db:stats().memories)
      assert.are.equal(lsn + 8, db:stats().lsn) -- 4 records per write
    end)

    it("commands added through tx are all in the log or none", function()
      assert(db:set_policy([[
        return { hooks = {
          set_kv = function(cmd, tx)
            tx:append_stream("trail", cmd.key .. ";")
            tx:append_memory("trail of " .. cmd.key, {})
          end,
          update_state = function(cmd) if cmd.value == "no" then return nil, "state says no" end end,
        } }
      ]]))
      local ids = assert(db:batch(function(tx)
        tx:set_kv("one", "1")
        tx:update_state("yes")
      end))
      -- the batch returns the ids of its own appends (none here); the
      -- hook's memory is in the store all the same
      assert.are.same({}, ids)
      local hits = assert(db:search_memory('"trail of one"'))
      assert.are.equal(1, #hits)
      assert.are.equal("trail of one", db:get_memory(hits[1].id).text)
      assert.are.equal("one;", stream(db, "trail"))
      local msg = refused(db, "REJECTED", function()
        return db:batch(function(tx)
          tx:set_kv("two", "2")
          tx:update_state("no")
        end)
      end)
      assert.are.equal("state says no", msg)
      assert.is_nil(db:get_kv("two"))
      assert.are.equal("one;", stream(db, "trail"))
      assert.are.same({}, db:query_memory("two"))
      -- a tx command that is itself rejected (by the schema) takes the command with it
      assert(db:set_policy([[
        return {
          schemas = { session = { id = "string" } },
          hooks = { set_kv = function(cmd, tx)
            tx:append_stream("trail", "x")
            tx:put_session { id = cmd.key, extra = true }
          end },
        }
      ]]))
      refused(db, "REJECTED", function() return db:set_kv("three", "3") end)
      assert.are.equal("one;", stream(db, "trail"))
      assert.is_nil(db:get_kv("three"))
    end)

    it("tx:get_kv, get_memory and get_session read the store inside the hook", function()
      local id = assert(db:append_memory("remember the milk", { "todo" }))
      assert(db:put_session { id = "s", intent_id = "shop" })
      assert(db:set_kv("limit", "3"))
      assert(db:set_policy(([[
        return { hooks = { set_kv = function(cmd, tx)
          local m = tx:get_memory(%d)
          local s = tx:get_session("s")
          cmd.value = (tx:get_kv("limit") or "none") .. "|" .. m.text .. "|" .. m.tags[1] .. "|" ..
            s.intent_id .. "|" .. tostring(tx:get_kv("missing")) .. "|" .. tostring(tx:get_session("nope"))
        end } }
      ]]):format(id)))
      assert(db:set_kv("probe", ""))
      assert.are.equal("3|remember the milk|todo|shop|nil|nil", db:get_kv("probe"))
    end)

    it("a hook that writes to its own store through the caller's handle cannot", function()
      -- the policy state has no handle of the store: only tx writes
      assert(db:set_policy(set_kv_hook("if db ~= nil or memmapfs ~= nil then error('leak') end")))
      assert(db:set_kv("k", "v"))
    end)

    it("append_memory returns the caller's id when a hook adds memories", function()
      assert(db:set_policy([[
        return { hooks = { append_memory = function(cmd, tx)
          if cmd.text ~= "echo" then tx:append_memory("echo", {}) end
        end } }
      ]]))
      local id = assert(db:append_memory("caller", {}))
      assert.are.equal("caller", db:get_memory(id).text)
      assert.are.equal("echo", db:get_memory(id + 1).text)
      -- in a batch, ids are those of the batch's own appends, in command
      -- order, so tx:append_memory's position stays right; the hooks'
      -- memories are in the store all the same
      local pos
      local ids = assert(db:batch(function(tx)
        tx:set_kv("k", "v")
        tx:append_memory("first", {})
        pos = tx:append_memory("second", {})
      end))
      local texts = {}
      for i, v in ipairs(ids) do texts[i] = db:get_memory(v).text end
      assert.are.same({ "first", "second" }, texts)
      assert.are.equal("second", db:get_memory(ids[pos]).text)
      assert.are.equal("echo", db:get_memory(ids[1] + 1).text)
      assert.are.equal("echo", db:get_memory(ids[2] + 1).text)
    end)

    it("hooks run for the commands of a batch, each command once", function()
      assert(db:set_policy([[
        local n = 0
        return { hooks = { set_kv = function(cmd) n = n + 1; cmd.value = cmd.value .. "#" .. n end } }
      ]]))
      assert(db:batch(function(tx)
        tx:set_kv("a", "x")
        tx:set_kv("b", "y")
      end))
      assert.are.equal("x#1", db:get_kv("a"))
      assert.are.equal("y#2", db:get_kv("b"))
    end)
  end)

  describe("hostile policies", function()
    -- Each one: the bad write fails with CODE and a message matching PAT,
    -- nothing is written, and the next write goes through.

    it("an endless loop runs out of its budget (LIMIT)", function()
      survives("LIMIT", "budget", "while true do end", { hook_budget = 10000 })
    end)

    it("an endless loop with the default budget also stops quickly", function()
      survives("LIMIT", "budget", "local i = 0 while true do i = i + 1 end")
    end)

    it("an endless recursion is stopped", function()
      -- the budget or the stack, whichever comes first: both reject
      db:close()
      db = H.reopen(dir, { hook_budget = 100000000 })
      assert(db:set_policy(set_kv_hook("local function f(n) return 1 + f(n + 1) end return f(1)")))
      local before = counters(db)
      local r, msg, code = db:set_kv("k", "v")
      assert.is_nil(r)
      assert.is_truthy(code == "LIMIT" or code == "REJECTED", tostring(code))
      assert.is_truthy(msg:find("stack overflow", 1, true) or msg:find("limit", 1, true), msg)
      assert.are.same(before, counters(db))
      assert(db:set_policy(nil))
      assert(db:set_kv("k", "v"))
    end)

    it("endless allocation hits the memory limit (LIMIT)", function()
      -- 1e9: the budget does not stop it first (a float with an integer value is fine)
      survives("LIMIT", "memory limit", "local t = {} local i = 0\n" ..
        "while true do i = i + 1; t[i] = { i, i, i, i } end", { hook_budget = 1e9 })
    end)

    it("endless allocation of long strings hits the memory limit quickly", function()
      local code = "local t = {} local s = ('x'):rep(1000) local i = 0\n" ..
        "while true do i = i + 1; t[i] = s .. i end"
      survives("LIMIT", "memory limit", code, { hook_budget = 1e9 })
    end)

    it("string.rep of 1 GiB is refused before it is built", function()
      survives("LIMIT", "string.rep", "return string.rep('x', 1024 * 1024 * 1024)")
    end)

    it("a pathological pattern is stopped by the budget", function()
      survives("LIMIT", "budget",
        "return string.find(('a'):rep(100000), ('a*'):rep(30) .. 'b')")
    end)

    it("io is not there", function()
      survives("REJECTED", "io", "return io.open('/etc/passwd')")
    end)

    it("os.execute is not there (os.time is)", function()
      survives("REJECTED", "execute", "return os.execute('true')")
      assert(db:set_policy(set_kv_hook("cmd.value = type(os.time()) .. ' ' .. type(os.clock())")))
      assert(db:set_kv("t", ""))
      assert.are.equal("number number", db:get_kv("t"))
    end)

    it("require is not there", function()
      survives("REJECTED", "require", "return require('os')")
    end)

    it("load refuses bytecode", function()
      survives("REJECTED", "binary", "local f, err = load('\\27Lua' .. ('x'):rep(20))\n" ..
        "if not f then error(err, 0) end")
    end)

    it("string.dump and debug are not there", function()
      survives("REJECTED", "dump", "return string.dump(function() end)")
      survives("REJECTED", "debug", "return debug.getinfo(1)")
    end)

    it("load of text works inside the sandbox", function()
      assert(db:set_policy(set_kv_hook("cmd.value = load('return 6 * 7')() .. ''")))
      assert(db:set_kv("k", ""))
      assert.are.equal("42", db:get_kv("k"))
    end)

    it("a policy chunk with an endless loop at load is refused", function()
      db:close()
      db = H.reopen(dir, { hook_budget = 10000 })
      local msg = H.fails("LIMIT", db:set_policy("while true do end return {}"))
      assert.is_truthy(msg:find("budget", 1, true), msg)
      assert.is_nil(db:get_policy())
      assert(db:set_kv("k", "v"))
    end)

    it("a bad hook result type is rejected (cmd.value must stay a string)", function()
      assert(db:set_policy(set_kv_hook("cmd.value = 42")))
      local msg = refused(db, "REJECTED", function() return db:set_kv("k", "v") end)
      assert.is_truthy(msg:find("value", 1, true), msg)
    end)
  end)

  describe("across processes", function()
    it("one process installs a policy, the other's next write runs under it", function()
      assert(db:set_kv("before", "plain"))
      local out, ok = H.child(([[
        local db = assert(require("memmapfs").open(%q))
        assert(db:set_policy("return { hooks = { set_kv = function(cmd) cmd.value = 'child:' .. cmd.value end } }"))
        assert(db:set_kv("from child", "x"))
        io.write(db:get_kv("from child"))
        assert(db:close())
      ]]):format(dir))
      assert.is_truthy(ok, out)
      assert.are.equal("child:x", out)
      -- this handle catches up with the policy before its next write
      assert(db:set_kv("after", "y"))
      assert.are.equal("child:y", db:get_kv("after"))
      assert.are.equal("plain", db:get_kv("before"))
      assert.is_truthy(db:get_policy():find("child:", 1, true))
    end)

    it("a child's writes run under the policy this process installed", function()
      assert(db:set_policy(set_kv_hook("if cmd.key == 'no' then return nil, 'parent says no' end")))
      local out, ok = H.child(([[
        local db = assert(require("memmapfs").open(%q))
        local r, msg, code = db:set_kv("no", "x")
        assert(db:set_kv("yes", "x"))
        io.write(tostring(r), " ", tostring(msg), " ", tostring(code))
        assert(db:close())
      ]]):format(dir))
      assert.is_truthy(ok, out)
      assert.are.equal("nil parent says no REJECTED", out)
      assert.is_nil(db:get_kv("no"))
      assert.are.equal("x", db:get_kv("yes"))
    end)
  end)

  describe("one policy language in every host", function()
    -- Policies run on the VM's own Lua 5.4 whatever Lua loaded the module
    -- (LuaJIT, 5.1...): a policy means the same in every process.
    it("runs the policy on Lua 5.4, with a budget and a memory limit", function()
      assert(db:set_policy(set_kv_hook([[
        if cmd.key == "version" then cmd.value = _VERSION; return end
        if cmd.key == "loop" then while true do end end
        if cmd.key == "alloc" then local t = {} while true do t[#t + 1] = {} end end
      ]])))
      assert(db:set_kv("version", ""))
      assert.are.equal("Lua 5.4", db:get_kv("version"))
      H.fails("LIMIT", db:set_kv("loop", ""))
      H.fails("LIMIT", db:set_kv("alloc", ""))
      assert(db:set_kv("after", "ok"))
      assert.is_nil(db:get_kv("loop"))
    end)

    it("a policy in Lua 5.4 syntax works from this host too", function()
      -- integer division, bitwise operators, math.type, utf8, goto and
      -- <const>: a LuaJIT or 5.1 writer refused this policy (INVALID)
      -- when policies ran on the host's Lua
      assert(db:set_policy(set_kv_hook([[
        local n <const> = 7
        for i = 1, 3 do
          if i == 2 then goto done end
        end
        ::done::
        cmd.value = string.format("%d %d %s %s %d %s", n // 2, n & 3, math.type(n / 7),
          math.type(n // 1), utf8.len("h\u{e9}"), tostring(2^53 == 2^53 + 1))
      ]])))
      assert(db:set_kv("k", ""))
      assert.are.equal("3 3 float integer 2 true", db:get_kv("k"))
    end)

    it("a gsub that recurses through itself is stopped (no crash)", function()
      -- under LuaJIT, the policy's own gsub recursed until the C stack ran out
      local msg = survives("REJECTED", nil,
        "local function f(s) return (s:gsub('.', f)) end f('aaaa')", { hook_budget = 1e9 })
      assert.is_truthy(msg:find("stack overflow", 1, true), msg)
    end)

    it("a pcall recursion is stopped within its budget (no hang)", function()
      -- under LuaJIT this held the writer lock for minutes in the unwinder
      survives("LIMIT", "budget", "local function f() pcall(f) pcall(f) end f()")
    end)

    it("without the VM's shared object, policies fail INVALID and the store works", function()
      -- about core.so finding the VM beside itself; the FFI binding loads
      -- libmemmapfs.so, whose VM lookup ffi_spec covers
      if H.binding == "ffi" then return end
      local cdir = os.getenv("MMFS_TEST_CPATH")
      local vm = cdir and io.open(cdir .. "/memmapfs/libmemmapfs-policy.so", "rb")
      if not vm then return end -- the VM is linked in (sanitizer builds)
      vm:close()
      local lone = H.tmpdir("novm")
      assert(H.run(("mkdir -p %s/memmapfs && cp %s/memmapfs/core.so %s/memmapfs/"):format(
        H.quote(lone), H.quote(cdir), H.quote(lone))))
      local out, ok = H.capture(("MMFS_TEST_CPATH= LUA_PATH=%s LUA_CPATH=%s LUA_CPATH_5_2=%s LUA_CPATH_5_3=%s "
        .. "LUA_CPATH_5_4=%s %s -e %s"):format(H.quote(package.path), H.quote(lone .. "/?.so"),
        H.quote(lone .. "/?.so"), H.quote(lone .. "/?.so"), H.quote(lone .. "/?.so"), H.lua(), H.quote(([[
          local db = assert(require("memmapfs").open(%q))
          local r, msg, code = db:set_policy("return {}")
          assert(db:set_kv("plain", "works"))
          io.write(tostring(r), "|", tostring(code), "|", tostring(msg), "|", db:get_kv("plain"))
          assert(db:close())
        ]]):format(dir .. "-novm"))))
      assert.is_truthy(ok, out)
      local r, code, msg, v = out:match("^(.-)|(.-)|(.*)|(.-)$")
      assert.are.equal("nil", r, out)
      assert.are.equal("INVALID", code, out)
      assert.is_truthy(msg:find("libmemmapfs-policy.so", 1, true), msg)
      assert.are.equal("works", v)
    end)

    it("a policy installed here means the same to a Lua 5.4 process", function()
      local cdir = os.getenv("MMFS_TEST_CPATH")
      if not cdir or cdir == "" or H.lua() == "lua5.4" then return end
      local cdir54 = cdir:gsub("[^/]+$", "lua")
      assert(db:set_policy(set_kv_hook("cmd.value = tostring(7 // 2) .. _VERSION")))
      -- LUA_INIT cleared: the child is the C module's, whatever binding runs here
      local out, ok = H.capture(("LUA_INIT= LUA_PATH=%s LUA_CPATH_5_4=%s lua5.4 -e %s"):format(
        H.quote(package.path), H.quote(cdir54 .. "/?.so;;"), H.quote(([[
          local db = assert(require("memmapfs").open(%q))
          assert(db:set_kv("from 5.4", ""))
          io.write(db:get_kv("from 5.4"))
          assert(db:close())
        ]]):format(dir))))
      assert.is_truthy(ok, out)
      assert.are.equal("3Lua 5.4", out)
      assert(db:set_kv("from here", ""))
      assert.are.equal("3Lua 5.4", db:get_kv("from here"))
    end)
  end)
end)
