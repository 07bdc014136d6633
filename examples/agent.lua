-- A short agent session over memmapfs: memories, kv, sessions, a stream and
-- the agent's state with a subscription, in a store whose policy (built
-- with memmapfs.policy) keeps private memories out of search, as
-- examples/policies/private-routing.lua does, and forgets at compaction:
-- scratch notes after an hour, and of the rest what is neither pinned nor
-- among the ten newest of one of its tags.  examples/policy_agent.lua shows
-- more of policies.
--
--   LUA_PATH='lua/?.lua;lua/?/init.lua' LUA_CPATH='build/lua/?.so' \
--     lua5.4 examples/agent.lua [storedir]
--
-- Without storedir it uses a fresh directory under the system's temporary
-- directory and removes it at the end.  The output is the same on every run
-- against a fresh store.

local memmapfs = require "memmapfs"
local policy = require "memmapfs.policy"

local dir = arg[1]
local scratch = false
if not dir then
  dir = os.tmpname() -- a unique name; the store becomes a directory beside it
  os.remove(dir)
  dir = dir .. ".memmapfs"
  scratch = true
end

-- The policy is installed if the store does not have it yet.  Its keep rule
-- is made of memmapfs.policy's forgetting recipes (docs/policies.md).
local src = policy.build {
  route = [[function(mem)
    if mem.tags.secret then return nil, "secrets are not stored (tag: secret)" end
    if mem.tags.private then return "private" end
    if mem.tags.scratch then return "scratch" end
    return "default"
  end]],
  routes = { default = {}, private = { index = false }, scratch = { ttl = 3600 } },
  compaction = { keep = policy.keep_any(policy.pinned(), policy.newest_per_tag(10)) },
}
local db = assert(memmapfs.open(dir, { sync = "batch", policy = src }))
print(("memmapfs %s, store %s"):format(memmapfs.version, scratch and "(scratch)" or dir))

-- A conversation turn in one atomic batch: the memories and the session
-- record land together or not at all.
local day = 1700000000 -- fixed times keep the output deterministic
local ids = assert(db:batch(function(tx)
  tx:append_memory("Ann prefers green tea in the morning", { "speaker:Ann", "preference" },
    { created_at = day })
  tx:append_memory("Ann is allergic to peanuts", { "speaker:Ann", "health" },
    { created_at = day + 60 })
  tx:append_memory("Bob drinks black coffee, no sugar", { "speaker:Bob", "preference" },
    { created_at = day + 120 })
  tx:append_memory("The team meets on Tuesdays at 10:00", { "calendar" },
    { created_at = day + 180 })
  tx:append_memory("Ann's home address is 12 Elm Street", { "speaker:Ann", "private" },
    { created_at = day + 240 })
  tx:put_session { id = "conv-1", intent_id = "plan-offsite", created_at = day,
    payload = "planning the team offsite", turns = 4, participants = { "Ann", "Bob" } }
end))
print(("\nremembered %d memories in one batch"):format(#ids))

print("\nsearch 'tea OR coffee' among preferences:")
local hits = assert(db:search_memory("tea OR coffee", { tags = { "preference" } }))
for i, h in ipairs(hits) do
  print(("  %d. [%s] %s"):format(i, table.concat(h.tags, ", "), h.text))
end

print("\nwhat do we know about Ann?")
for _, text in ipairs(assert(db:query_memory("tag:speaker:Ann"))) do
  print("  - " .. text)
end
-- the policy routed the private memory where search does not look
for _, m in ipairs(assert(db:list_memories { route = "private" })) do
  print(("  (kept out of search by the policy: #%d %q)"):format(m.id, m.text))
end

-- Small facts by key.
assert(db:set_kv("user:Ann:drink", "green tea"))
assert(db:set_kv("user:Bob:drink", "black coffee"))
assert(db:set_kv("offsite:city", "Lisbon"))
print("\ndrinks by user (scan_kv 'user:'):")
for key, value in db:scan_kv("user:") do
  print(("  %s = %s"):format(key, value))
end

local s = assert(db:get_session("conv-1"))
print(("\nsession %s (intent %s): %s, %d turns, with %s"):format(s.id, s.intent_id, s.payload,
  s.turns, table.concat(s.participants, " and ")))

-- A tool-call transcript as an append-only stream.
assert(db:append_stream("transcript:conv-1", "user: where should we go?\n"))
assert(db:append_stream("transcript:conv-1", "agent: Lisbon has good tea and coffee.\n"))
print(("\ntranscript (%d bytes):"):format(db:stream_size("transcript:conv-1")))
local reader = assert(db:open_read("transcript:conv-1"))
for line in reader:lines() do print("  " .. line) end
reader:close()

-- The agent's state, with a subscriber waiting for changes.
local sub = assert(db:subscribe_state())
local version = assert(db:update_state("step=book-flights"))
print(("\nstate updated to version %d"):format(version))
local value, seen = sub:next(1000)
print(("subscriber woke: version %d, %q"):format(seen, value))
local none, msg, code = sub:next(10)
print(("subscriber again: %s (%s, %s)"):format(tostring(none), msg, code))
sub:close()

-- Forgetting: a scratch note, an overwritten key, then a compaction two
-- hours later (opts.now) drops both; the other memories are kept.
local note = assert(db:append_memory("draft: ask Bob about flights", { "scratch" },
  { created_at = day + 300 }))
assert(db:set_kv("offsite:city", "Porto"))
local r = assert(db:compact { now = day + 2 * 3600 })
print(("\ncompacted: %d records kept, %d dropped; the scratch note is %s, the city is %s"):format(
  r.kept, r.dropped, db:get_memory(note) and "still there" or "forgotten", db:get_kv("offsite:city")))

local st = assert(db:stats())
print(("\nstore: %d memories, %d kv, %d sessions, %d streams, state version %d"):format(
  st.memories, st.kv, st.sessions, st.streams, st.state_version))

assert(db:close())
if scratch then os.execute("rm -rf '" .. dir:gsub("'", "'\\''") .. "'") end
