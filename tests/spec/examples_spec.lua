-- The examples keep working: examples/agent.lua (the demo) and
-- examples/policy_agent.lua run in a child interpreter (the one the suite
-- runs under) and print what they promise.

local H = require "helpers"

local have_policy = os.getenv("MMFS_HAVE_POLICY") ~= "0"

-- Runs examples/NAME with ARGS under the suite's interpreter; its output
-- and whether it succeeded.
local function run(name, args)
  local path, cpath = package.path, package.cpath
  local cdir = os.getenv("MMFS_TEST_CPATH")
  if cdir and cdir ~= "" then cpath = cdir .. "/?.so;" .. cpath end
  local v = _VERSION:match("%d+%.%d+")
  local suffix = (v == "5.1") and "" or ("_" .. (v:gsub("%.", "_")))
  return H.capture(("LUA_PATH%s=%s LUA_CPATH%s=%s %s examples/%s %s"):format(suffix,
    H.quote(path), suffix, H.quote(cpath), H.lua(), name, args or ""))
end

describe("examples", function()
  after_each(H.cleanup)

  if not have_policy then
    it("need policies", function() pending("built without Lua policies: the examples use them") end)
    return
  end

  it("agent.lua runs its session, private memory kept out of search", function()
    local dir = H.store_path("agent")
    local out, ok = run("agent.lua", H.quote(dir))
    assert.is_truthy(ok, out)
    assert.is_truthy(out:find("remembered 5 memories in one batch", 1, true), out)
    assert.is_truthy(out:find("  - Ann prefers green tea in the morning\n", 1, true), out)
    assert.is_truthy(out:find("kept out of search by the policy: #5", 1, true), out)
    assert.is_falsy(out:find("  - Ann's home address", 1, true), out)
    assert.is_truthy(out:find("store: 5 memories, 3 kv, 1 sessions, 1 streams, state version 1",
      1, true), out)
    assert.is_truthy(out:find("2 dropped; the scratch note is forgotten, the city is Porto", 1, true), out)
    local db = H.reopen(dir)
    assert.is_truthy(db:get_policy():find("private", 1, true))
    assert.are.equal("private", db:get_memory(5).route)
    db:close()
  end)

  it("policy_agent.lua shows the intent log, private routing and the helpers", function()
    local out, ok = run("policy_agent.lua", H.quote(H.store_path("policy-agent")))
    assert.is_truthy(ok, out)
    assert.is_truthy(out:find("  1700000000 s1 open\n  1700000060 s1 running\n  1700000120 s2 done\n",
      1, true), out)
    assert.is_truthy(out:find("cannot be reopened (it is done) (REJECTED)", 1, true), out)
    assert.is_truthy(out:find("got 'paused' (REJECTED)", 1, true), out)
    assert.is_truthy(out:find("secrets are not stored (tag: secret) (REJECTED)", 1, true), out)
    assert.is_truthy(out:find("search 'Ann' finds only what may be found:\n  #1 [default]", 1, true),
      out)
    assert.is_truthy(out:find("  #2 [private] Ann's passport", 1, true), out)
    assert.is_truthy(out:find("value is larger than 64 bytes (REJECTED)", 1, true), out)
  end)
end)
