-- An agent's store under policies: the store itself keeps a log per intent
-- and keeps private memories out of search.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua' LUA_CPATH='build/lua/?.so' \
--     lua5.4 examples/policy_agent.lua [storedir]
--
-- The policies are examples/policies/intent-log.lua and
-- examples/policies/private-routing.lua; the last part builds one with the
-- helpers of memmapfs.policy.  Without storedir it uses a fresh scratch
-- directory, removed at the end.  Runs on Lua 5.1-5.4 and LuaJIT.

local memmapfs = require "memmapfs"
local policy = require "memmapfs.policy"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local policies = here .. "/policies/"

local dir = arg and arg[1]
local scratch = false
if not dir then
  dir = os.tmpname()
  os.remove(dir)
  dir = dir .. ".memmapfs"
  scratch = true
end

local function read(db, stream)
  local r = assert(db:open_read(stream))
  local text = r:read("a")
  r:close()
  return text
end

-- 1. The intent log: open the store with the policy file (a path is read;
-- the policy is installed only if the store's differs).
local db = assert(memmapfs.open(dir, { policy = policies .. "intent-log.lua" }))
print(("memmapfs %s, store %s, policy intent-log.lua"):format(memmapfs.version,
  scratch and "(scratch)" or dir))

local t = 1700000000
assert(db:put_session { id = "s1", intent_id = "book-trip", created_at = t, status = "open" })
assert(db:put_session { id = "s1", intent_id = "book-trip", created_at = t + 60,
  status = "running", payload = "searching flights" })
assert(db:put_session { id = "s2", intent_id = "book-trip", created_at = t + 120,
  status = "done", tool = "flights-api" }) -- _extra = true lets 'tool' through
print("\nthe store logged the intent 'book-trip' by itself:")
for line in read(db, "intent:book-trip"):gmatch("[^\n]+") do print("  " .. line) end

local ok, msg, code = db:put_session { id = "s2", intent_id = "book-trip", created_at = t + 180,
  status = "open" }
print(("\nreopening s2: %s, %s (%s)"):format(tostring(ok), msg, code))
ok, msg, code = db:put_session { id = "s3", created_at = t, status = "paused" }
print(("an unknown status: %s, %s (%s)"):format(tostring(ok), msg, code))

-- 2. Private routing: a policy is a log command like any other, so
-- switching it is one call, and every process follows it from there on.
local f = assert(io.open(policies .. "private-routing.lua", "rb"))
assert(db:set_policy(f:read("*a")))
f:close()
print("\npolicy now private-routing.lua")

local pub = assert(db:append_memory("Ann likes window seats", { "speaker:Ann" },
  { created_at = t }))
local priv = assert(db:append_memory("Ann's passport number is X1234567",
  { "speaker:Ann", "private" }, { created_at = t + 1 }))
ok, msg, code = db:append_memory("the card PIN is 0000", { "secret" })
print(("a secret memory: %s, %s (%s)"):format(tostring(ok), msg, code))

print("\nsearch 'Ann' finds only what may be found:")
for _, h in ipairs(assert(db:search_memory("Ann"))) do
  print(("  #%d [%s] %s"):format(h.id, h.route, h.text))
end
print("but the private memory is kept:")
local m = assert(db:get_memory(priv))
print(("  #%d [%s] %s"):format(m.id, m.route, m.text))
local all = assert(db:list_memories())
print(("list_memories has both, newest first: #%d, #%d"):format(all[1].id, all[2].id))
assert(pub < priv)

-- 3. The same ideas built with memmapfs.policy: the helpers write the
-- source (the policy runs in the store's own Lua, not in this one).
local spec = policy.default { max_bytes = 64 }
spec.hooks.put_session = policy.intent_log("intent:")
assert(db:set_policy(policy.build(spec)))
ok, msg, code = db:set_kv("note", ("x"):rep(100))
print(("\nwith policy.default{ max_bytes = 64 }, a 100-byte value: %s, %s (%s)"):format(
  tostring(ok), msg, code))
assert(db:set_kv("note", "short enough"))
print("a short one: " .. db:get_kv("note"))

assert(db:close())
if scratch then os.execute("rm -rf '" .. dir:gsub("'", "'\\''") .. "'") end
