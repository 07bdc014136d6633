-- memmapfs.policy (lua/memmapfs/policy.lua): the helpers that build policy
-- source, checked on their own (the text they make, read back by this Lua)
-- and installed in a store.

local policy = require "memmapfs.policy"
local H = require "helpers"

local have_policy = os.getenv("MMFS_HAVE_POLICY") ~= "0"

-- Evaluates the Lua expression SRC in an empty environment (with ENV's
-- names), on this Lua, whatever its version.
local function eval(src, env)
  env = env or {}
  local chunk = "return " .. src
  local fn, err
  if setfenv then
    fn, err = loadstring(chunk, "=eval")
    if fn then setfenv(fn, env) end
  else
    fn, err = load(chunk, "=eval", "t", env)
  end
  assert(fn, err)
  return fn()
end

-- Runs the policy SOURCE (a chunk) on this Lua with the globals a policy has.
local function run_policy(source)
  local env = { type = type, tostring = tostring, pairs = pairs, ipairs = ipairs, os = { time = os.time } }
  local fn
  if setfenv then
    fn = assert(loadstring(source, "=policy"))
    setfenv(fn, env)
  else
    fn = assert(load(source, "=policy", "t", env))
  end
  return fn()
end

-- The bytes of stream KEY ("" when missing).
local function stream(db, key)
  local r = db:open_read(key)
  if not r then return "" end
  local s = r:read("a")
  r:close()
  return s or ""
end

describe("memmapfs.policy", function()
  after_each(H.cleanup)

  describe("serialize", function()
    it("writes data that reads back the same on this Lua", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      local value = {
        1, 2, "three", { nested = true },
        bytes = table.concat(all),
        ["with space"] = "x", ["end"] = "a keyword", [10] = "sparse",
        n = -42, f = 0.1, big = 2 ^ 52, tiny = 1e-300, huge = 1e300,
        yes = true, no = false, empty = {},
      }
      local text = policy.serialize(value)
      assert.are.same(value, eval(text))
      assert.are.equal(1 / 0, eval(policy.serialize(1 / 0)))
      assert.are.equal(-1 / 0, eval(policy.serialize(-1 / 0)))
      local nan = eval(policy.serialize(0 / 0))
      assert.is_true(nan ~= nan)
    end)

    it("is deterministic: keys in sorted order", function()
      local a, b = {}, {}
      for i = 1, 50 do a["k" .. i] = i end
      for i = 50, 1, -1 do b["k" .. i] = i end
      assert.are.equal(policy.serialize(a), policy.serialize(b))
    end)

    it("copies code as it is", function()
      local text = policy.serialize { f = policy.code("function(x) return x * 2 end") }
      assert.are.equal(14, eval(text).f(7))
    end)

    it("refuses functions, cycles and userdata, naming the place", function()
      local err = H.raises(function() policy.serialize({ a = { b = print } }, "spec") end)
      assert.is_truthy(tostring(err):find("spec.a.b", 1, true), tostring(err))
      assert.is_truthy(tostring(err):find("source", 1, true), tostring(err))
      local cyc = {}
      cyc.self = cyc
      H.raises(function() policy.serialize(cyc) end, "contains itself")
      H.raises(function() policy.serialize({ io.stdout }) end, "userdata")
      H.raises(function() policy.code(42) end, "source text")
    end)
  end)

  describe("build", function()
    it("makes a chunk that returns the policy table", function()
      local src = policy.build {
        prelude = "local suffix = '!'",
        routes = { default = {}, private = { index = false } },
        route = "function(mem) return 'default' end",
        hooks = { set_kv = "function(cmd) cmd.value = cmd.value .. suffix end" },
      }
      assert.is_string(src)
      local p = run_policy(src)
      assert.are.same({ default = {}, private = { index = false } }, p.routes)
      assert.are.equal("default", p.route({ tags = {} }))
      local cmd = { value = "v" }
      p.hooks.set_kv(cmd)
      assert.are.equal("v!", cmd.value)
      assert.are.equal(src, policy.build {
        hooks = { set_kv = "function(cmd) cmd.value = cmd.value .. suffix end" },
        route = "function(mem) return 'default' end",
        routes = { private = { index = false }, default = {} },
        prelude = "local suffix = '!'",
      })
    end)

    it("raises on what cannot be a policy, naming it", function()
      H.raises(function() policy.build { hooks = { set_kvv = "function() end" } } end, "set_kvv")
      H.raises(function() policy.build { hooks = { set_kv = function() end } } end, "hooks.set_kv")
      H.raises(function() policy.build { route = 42 } end, "route")
      H.raises(function() policy.build { schemas = { session = { id = "strng" } } } end, "strng")
      H.raises(function() policy.build { compaction = { keep = print } } end, "compaction.keep")
      H.raises(function() policy.build("return {}") end, "table expected")
    end)
  end)

  describe("helpers, read back on this Lua", function()
    it("route_by_tag: first matching rule, else the default; strip removes the tag", function()
      local route = eval(tostring(policy.route_by_tag({ { "secret", "vault" }, { "work", "job" } },
        "misc")))
      local function set(...)
        local t = {}
        for _, tag in ipairs { ... } do t[tag] = true end
        return t
      end
      assert.are.equal("vault", route { tags = set("work", "secret") })
      assert.are.equal("job", route { tags = set("work") })
      assert.are.equal("misc", route { tags = set("other") })
      local strip = eval(tostring(policy.route_by_tag({ private = "p" }, nil, { strip = true })))
      local mem = { tags = set("private", "x") }
      assert.are.equal("p", strip(mem))
      assert.is_nil(mem.tags.private)
      assert.are.equal("default", strip { tags = {} })
      H.raises(function() policy.route_by_tag({ { "a" } }) end, "rule 1")
    end)

    it("keep_pinned_or_newer_than keeps pinned or young memories", function()
      local keep = eval(tostring(policy.keep_pinned_or_newer_than(2)))
      local now = 1700000000
      assert.is_true(keep({ tags = { "pinned" }, created_at = 0 }, now))
      assert.is_true(keep({ tags = { "x" }, created_at = now - 86400 }, now))
      assert.is_false(keep({ tags = { "x" }, created_at = now - 3 * 86400 }, now))
      local keep_star = eval(tostring(policy.keep_pinned_or_newer_than(0, "star")))
      assert.is_true(keep_star({ tags = { star = true }, created_at = 0 }, now))
      assert.is_false(keep_star({ tags = {}, created_at = now }, now))
    end)

    it("when_dead_over compares dead and live bytes", function()
      local when = eval(tostring(policy.when_dead_over(0.5)))
      assert.is_true(when { dead_bytes = 60, live_bytes = 100 })
      assert.is_false(when { dead_bytes = 40, live_bytes = 100 })
    end)

    it("schema, one_of and optional", function()
      assert.are.same({ "a", "b" }, policy.one_of("a", "b"))
      assert.are.equal("string?", policy.optional("string"))
      assert.are.equal("string?", policy.optional("string?"))
      assert.are.same({ "a", optional = true }, policy.optional(policy.one_of("a")))
      local s = { id = "string", n = "integer?", _extra = true }
      assert.are.equal(s, policy.schema(s))
      H.raises(function() policy.schema { id = "text" } end, "unknown type")
      H.raises(function() policy.schema { status = {} } end, "no allowed values")
      H.raises(function() policy.schema { n = 5 } end, "field n")
    end)
  end)

  describe("in a store", function()
    if not have_policy then
      it("needs policies", function() pending("built without Lua policies") end)
      return
    end

    it("the default policy routes, caps and keeps the rest", function()
      local spec = policy.default { max_bytes = 100 }
      local db = H.open { policy = policy.build(spec) }
      local pub = assert(db:append_memory("a public note on rivers", { "geo" }))
      local priv = assert(db:append_memory("a private note on rivers", { "private" }))
      local tmp = assert(db:append_memory("a scratch note on rivers", { "scratch" }))
      assert.are.equal("default", db:get_memory(pub).route)
      assert.are.equal("private", db:get_memory(priv).route)
      assert.are.equal("scratch", db:get_memory(tmp).route)
      local hits = assert(db:search_memory("rivers"))
      assert.are.equal(2, #hits)
      for _, h in ipairs(hits) do assert.are_not.equal(priv, h.id) end
      local msg = H.fails("REJECTED", db:set_kv("k", ("x"):rep(101)))
      assert.is_truthy(msg:find("100", 1, true), msg)
      assert(db:set_kv("k", ("x"):rep(100)))
      H.fails("REJECTED", db:append_stream("s", ("x"):rep(101)))
      H.fails("REJECTED", db:append_memory(("x"):rep(101), {}))
      db:close()
    end)

    it("the same spec builds the same source: reopening with it adds nothing", function()
      local function spec()
        return policy.default { max_bytes = 7 }
      end
      local db, dir = H.open { policy = policy.build(spec()) }
      local lsn = db:stats().lsn
      db:close()
      db = H.reopen(dir, { policy = policy.build(spec()) })
      assert.are.equal(lsn, db:stats().lsn)
      db:close()
    end)

    it("compaction rules and route ttls are accepted, bad ones refused", function()
      local db = H.open()
      assert(db:set_policy(policy.build {
        compaction = { when = policy.when_dead_over(1), keep = policy.keep_pinned_or_newer_than(7) } }))
      assert(db:set_policy("return { routes = { scratch = { ttl = 60 } } }"))
      local msg = H.fails("INVALID", db:set_policy("return { routes = { scratch = { ttl = -5 } } }"))
      assert.is_truthy(msg:find("routes.scratch.ttl", 1, true), msg)
      msg = H.fails("INVALID", db:set_policy("return { compaction = { when = 3 } }"))
      assert.is_truthy(msg:find("compaction.when", 1, true), msg)
      db:close()
    end)

    it("compose runs hooks in order and stops at the first rejection", function()
      local db = H.open { policy = policy.build {
        hooks = { set_kv = policy.compose(
          "function(cmd) cmd.value = cmd.value .. 'a' end",
          policy.code("function(cmd) if cmd.key == 'no' then return nil, 'second says no' end end"),
          "function(cmd) cmd.value = cmd.value .. 'c' end") },
      } }
      assert(db:set_kv("k", ""))
      assert.are.equal("ac", db:get_kv("k"))
      assert.are.equal("second says no", H.fails("REJECTED", db:set_kv("no", "")))
      assert.is_nil(db:get_kv("no"))
      db:close()
    end)

    it("intent_log keeps a log stream per intent", function()
      local db = H.open { policy = policy.build {
        schemas = { session = policy.schema {
          id = "string", intent_id = "string?", created_at = "integer",
          status = policy.optional(policy.one_of("open", "closed")),
        } },
        hooks = { put_session = policy.intent_log("intent/") },
      } }
      assert(db:put_session { id = "s1", intent_id = "trip", created_at = 10, status = "open" })
      assert(db:put_session { id = "s2", intent_id = "trip", created_at = 20, status = "closed" })
      assert(db:put_session { id = "s3", intent_id = "food", created_at = 30 })
      assert(db:put_session { id = "s4", created_at = 40 })
      assert.are.equal("10 s1 open\n20 s2 closed\n", stream(db, "intent/trip"))
      assert.are.equal("30 s3 -\n", stream(db, "intent/food"))
      H.fails("REJECTED", db:put_session { id = "s5", intent_id = "trip", created_at = 50,
        status = "lost" })
      assert.are.equal("10 s1 open\n20 s2 closed\n", stream(db, "intent/trip"))
      db:close()
    end)
  end)
end)
