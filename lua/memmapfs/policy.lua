--- memmapfs.policy: helpers that build a store's policy in Lua.
--
-- A policy runs inside the store's own sandboxed Lua state, not in the
-- caller's: what the store gets is the policy's SOURCE TEXT (db:set_policy,
-- or memmapfs.open(dir, { policy = ... })).  So these helpers never hand
-- functions over; they build source.  Plain data (routes, schemas, numbers,
-- strings, nested tables) is written out as Lua literals; code is given as
-- source text, either as a string where a function is expected (route,
-- hooks.*, compaction.when / keep) or wrapped with policy.code anywhere.
--
--     local policy = require "memmapfs.policy"
--     local src = policy.build {
--       route  = policy.route_by_tag({ { "private", "private" }, { "scratch", "scratch" } }),
--       routes = { default = {}, private = { index = false }, scratch = { ttl = 3600 } },
--       schemas = { session = policy.schema {
--         id = "string", intent_id = "string?", created_at = "integer",
--         payload = "string?", status = policy.one_of("open", "closed"),
--       } },
--       hooks = {
--         set_kv = policy.compose(policy.max_size("value", 1e6),
--                                 "function(cmd) cmd.key = cmd.key:lower() end"),
--         put_session = policy.intent_log("intent/"),
--       },
--       compaction = { keep = policy.keep_any(policy.pinned(),
--                                                 policy.newest_per_tag(100)) },
--     }
--     assert(db:set_policy(src))
--
-- The same input always gives the same text (keys are written in sorted
-- order), so open(dir, { policy = policy.build(spec) }) adds nothing to the
-- log when the store already has that policy.
--
-- Everything generated is in the common subset of Lua 5.1-5.4, since the
-- policy runs on whatever Lua loaded the module.  Mistakes that can be seen
-- here (a function where source is needed, an unknown hook name, a bad
-- schema type) raise at once, naming the place; everything else is checked
-- by the store when the policy is installed (nil, msg, "INVALID").

local type, pairs, ipairs, tostring, error, select = type, pairs, ipairs, tostring, error, select
local setmetatable, getmetatable = setmetatable, getmetatable
local floor, huge = math.floor, math.huge
local concat, sort = table.concat, table.sort

local M = {}

------------------------------------------------------------------ code

local Code = {}
Code.__index = Code
Code.__tostring = function(c) return c.src end

--- Marks SRC (the text of one Lua expression, usually a function) as code,
-- to be copied into the policy as it is.
function M.code(src)
  if type(src) ~= "string" then
    error(("policy.code: source text expected, got %s"):format(type(src)), 2)
  end
  return setmetatable({ src = src }, Code)
end

--- Whether V was made by policy.code (or a helper that returns code).
function M.is_code(v)
  return getmetatable(v) == Code
end

------------------------------------------------------------ literals

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do keywords[w] = true end

-- A string as a Lua literal that every Lua reads back as the same bytes.
local function quote(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    if c == "\n" then return "\\n" end
    if c == "\t" then return "\\t" end
    return ("\\%03d"):format(c:byte())
  end) .. '"'
end

-- A number as a literal: integers exactly, floats with 17 digits.
local function number(n)
  if n ~= n then return "(0/0)" end
  if n == huge then return "(1/0)" end
  if n == -huge then return "(-1/0)" end
  if n == floor(n) and n > -2 ^ 53 and n < 2 ^ 53 then return ("%d"):format(n) end
  return ("%.17g"):format(n)
end

-- Sort order of table keys: numbers first (by value), then strings.
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta == "number" end
  return a < b
end

local literal

-- The constructor of table T (at PATH, for messages; SEEN catches cycles).
local function table_literal(t, path, seen, indent)
  if seen[t] then error(("policy: %s: a table that contains itself"):format(path), 0) end
  seen[t] = true
  local n = #t
  local keys = {}
  for k in pairs(t) do
    local tk = type(k)
    if tk == "number" then
      if not (k == floor(k) and k >= 1 and k <= n) then keys[#keys + 1] = k end
    elseif tk == "string" then
      keys[#keys + 1] = k
    else
      error(("policy: %s: a key of type %s cannot be written"):format(path, tk), 0)
    end
  end
  sort(keys, key_less)
  local inner = indent .. "  "
  local parts = {}
  for i = 1, n do
    parts[#parts + 1] = inner .. literal(t[i], path .. "[" .. i .. "]", seen, inner)
  end
  for _, k in ipairs(keys) do
    local name
    if type(k) == "string" and k:match("^[%a_][%w_]*$") and not keywords[k] then
      name = k
    else
      name = "[" .. (type(k) == "string" and quote(k) or number(k)) .. "]"
    end
    local sub = type(k) == "string" and (path .. "." .. k) or (path .. "[" .. tostring(k) .. "]")
    parts[#parts + 1] = inner .. name .. " = " .. literal(t[k], sub, seen, inner)
  end
  seen[t] = nil
  if #parts == 0 then return "{}" end
  return "{\n" .. concat(parts, ",\n") .. ",\n" .. indent .. "}"
end

-- V as Lua source: code as it is, data as a literal.
function literal(v, path, seen, indent)
  local tv = type(v)
  if tv == "string" then return quote(v) end
  if tv == "number" then return number(v) end
  if tv == "boolean" or tv == "nil" then return tostring(v) end
  if M.is_code(v) then return v.src end
  if tv == "table" then return table_literal(v, path, seen, indent) end
  if tv == "function" then
    error(("policy: %s: a function cannot be copied into the policy's Lua state; give its " ..
      "source as a string or with policy.code"):format(path), 0)
  end
  error(("policy: %s: a %s cannot be written into a policy"):format(path, tv), 0)
end

--- V (data, possibly holding code) as Lua source text.
function M.serialize(v, name)
  return literal(v, name or "value", {}, "")
end

------------------------------------------------------------- building

local commands = {
  "append_memory", "delete_memory", "set_kv", "delete_kv", "put_session", "delete_session",
  "append_stream", "index", "unindex", "update_state",
}
local is_command = {}
for _, c in ipairs(commands) do is_command[c] = true end

--- The command types a hook can be given for, in order.
M.commands = commands

-- V where a function is expected: code, or a string of source.
local function as_code(v, path)
  if M.is_code(v) then return v end
  if type(v) == "string" then return M.code(v) end
  if type(v) == "function" then
    error(("policy: %s: a function cannot be copied into the policy's Lua state; give its " ..
      "source as a string or with policy.code"):format(path), 3)
  end
  error(("policy: %s: function source expected, got %s"):format(path, type(v)), 3)
end

--- The source of a policy from SPEC, a table shaped like the policy itself:
-- route, routes, schemas, hooks, compaction (and any other field, written
-- as data).  route, every hooks.* and compaction.when / keep may be
-- strings of source or policy.code values.  spec.prelude, a string of Lua
-- statements, goes before the returned table (locals the code can use).
function M.build(spec)
  if type(spec) ~= "table" then
    error(("policy.build: table expected, got %s"):format(type(spec)), 2)
  end
  local out = {}
  for k, v in pairs(spec) do out[k] = v end
  local prelude = out.prelude
  out.prelude = nil
  if prelude ~= nil and type(prelude) ~= "string" then
    error("policy: prelude: a string of Lua statements expected", 2)
  end
  if out.route ~= nil then out.route = as_code(out.route, "route") end
  if out.hooks ~= nil then
    if type(out.hooks) ~= "table" then error("policy: hooks: a table expected", 2) end
    local hooks = {}
    for name, h in pairs(out.hooks) do
      if not is_command[name] then
        error(("policy: hooks.%s: no such command (one of %s)"):format(tostring(name),
          concat(commands, ", ")), 2)
      end
      hooks[name] = as_code(h, "hooks." .. name)
    end
    out.hooks = hooks
  end
  if out.compaction ~= nil then
    if type(out.compaction) ~= "table" then error("policy: compaction: a table expected", 2) end
    local c = {}
    for k, v in pairs(out.compaction) do
      c[k] = (k == "when" or k == "keep") and as_code(v, "compaction." .. k) or v
    end
    out.compaction = c
  end
  if out.schemas ~= nil and type(out.schemas) == "table" and out.schemas.session ~= nil then
    local s = {}
    for k, v in pairs(out.schemas) do s[k] = v end
    s.session = M.schema(s.session)
    out.schemas = s
  end
  local ok, text = pcall(M.serialize, out, "policy")
  if not ok then error(text, 2) end
  local head = "-- built by memmapfs.policy\n"
  if prelude then head = head .. prelude .. "\n" end
  return head .. "return " .. text .. "\n"
end

------------------------------------------------------------- schemas

local types = { string = true, integer = true, number = true, boolean = true, table = true }

--- FIELDS, a session schema, checked here: each value a type name
-- ("string", "integer", "number", "boolean", "table", with "?" for
-- optional) or an array of allowed values (policy.one_of); _extra = true
-- lets through fields the schema does not list.  Returns FIELDS.
function M.schema(fields)
  if type(fields) ~= "table" then
    error(("policy.schema: table expected, got %s"):format(type(fields)), 2)
  end
  for name, t in pairs(fields) do
    if type(name) ~= "string" then
      error(("policy.schema: field names are strings, got %s"):format(type(name)), 2)
    end
    if name == "_extra" then
      if type(t) ~= "boolean" then error("policy.schema: _extra: true or false expected", 2) end
    elseif type(t) == "string" then
      if not types[(t:gsub("%?$", ""))] then
        error(("policy.schema: field %s: unknown type %q (string, integer, number, boolean, " ..
          "table, with ? when optional)"):format(name, t), 2)
      end
    elseif type(t) == "table" then
      if #t == 0 then error(("policy.schema: field %s: no allowed values"):format(name), 2) end
    else
      error(("policy.schema: field %s: a type name or a table of values expected, got %s")
        :format(name, type(t)), 2)
    end
  end
  return fields
end

--- An enumeration for a schema: the field must be one of the values.
function M.one_of(...)
  local values = { ... }
  if select("#", ...) == 0 then error("policy.one_of: at least one value expected", 2) end
  return values
end

--- T made optional: "string" -> "string?"; an enumeration gets optional = true.
function M.optional(t)
  if type(t) == "string" then return t:sub(-1) == "?" and t or t .. "?" end
  if type(t) == "table" then
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    c.optional = true
    return c
  end
  error(("policy.optional: a type name or an enumeration expected, got %s"):format(type(t)), 2)
end

------------------------------------------------------------- routing

--- A route function: the first rule whose tag the memory has gives its
-- route, else DEFAULT ("default").  RULES is an array of { tag, route }
-- pairs (checked in order), or a map tag -> route (checked in tag order).
-- opts.strip = true removes the tag that decided.
function M.route_by_tag(rules, default, opts)
  if type(rules) ~= "table" then
    error(("policy.route_by_tag: table expected, got %s"):format(type(rules)), 2)
  end
  local list = {}
  if #rules > 0 then
    for i, r in ipairs(rules) do
      if type(r) ~= "table" or type(r[1]) ~= "string" or type(r[2]) ~= "string" then
        error(("policy.route_by_tag: rule %d: { tag, route } expected"):format(i), 2)
      end
      list[i] = { r[1], r[2] }
    end
  else
    local tags = {}
    for tag, route in pairs(rules) do
      if type(tag) ~= "string" or type(route) ~= "string" then
        error("policy.route_by_tag: tag = route (strings) expected", 2)
      end
      tags[#tags + 1] = tag
    end
    sort(tags)
    for i, tag in ipairs(tags) do list[i] = { tag, rules[tag] } end
  end
  default = default or "default"
  if type(default) ~= "string" then error("policy.route_by_tag: default: a string expected", 2) end
  local strip = opts and opts.strip and "mem.tags[r[1]] = nil; " or ""
  return M.code(([=[(function()
  local rules = %s
  return function(mem)
    for i = 1, #rules do
      local r = rules[i]
      if mem.tags[r[1]] then %sreturn r[2] end
    end
    return %s
  end
end)()]=]):format((M.serialize(list, "rules"):gsub("\n%s*", " ")), strip, quote(default)))
end

------------------------------------------------------------- hooks

--- One hook running the hooks given (code or source strings) in order on
-- the same cmd and tx; the first that rejects (nil, reason, or false)
-- stops the others and rejects the command.
function M.compose(...)
  local n = select("#", ...)
  if n == 0 then error("policy.compose: at least one hook expected", 2) end
  local srcs = {}
  for i = 1, n do
    local h = select(i, ...)
    if M.is_code(h) then
      srcs[i] = h.src
    elseif type(h) == "string" then
      srcs[i] = h
    else
      error(("policy.compose: hook %d: source text or policy.code expected, got %s")
        :format(i, type(h)), 2)
    end
  end
  return M.code(([[(function(...)
  local hooks = { ... }
  return function(cmd, tx)
    for i = 1, #hooks do
      local ok, why = hooks[i](cmd, tx)
      if ok == false or (ok == nil and why ~= nil) then return ok, why end
    end
  end
end)(
%s)]]):format(concat(srcs, ",\n")))
end

--- A hook rejecting a command whose string FIELD (value, text, bytes...)
-- is longer than N bytes.  MESSAGE (optional) is the reason given.
function M.max_size(field, n, message)
  if type(field) ~= "string" or type(n) ~= "number" then
    error("policy.max_size: field name and size expected", 2)
  end
  message = message or ("%s is larger than %s bytes"):format(field, number(n))
  return M.code(([[function(cmd)
  local v = cmd[%s]
  if type(v) == "string" and #v > %s then return nil, %s end
end]]):format(quote(field), number(n), quote(message)))
end

--- A put_session hook keeping a log per intent: for each session with an
-- intent_id, one line "<created_at> <id> <status>\n" appended to the
-- stream PREFIX .. intent_id ("intent/" by default), in the same frame.
function M.intent_log(prefix)
  prefix = prefix or "intent/"
  if type(prefix) ~= "string" then error("policy.intent_log: prefix: a string expected", 2) end
  return M.code(([[function(cmd, tx)
  local s = cmd.session
  if type(s.intent_id) == "string" then
    tx:append_stream(%s .. s.intent_id, tostring(s.created_at) .. " " .. s.id .. " " ..
      tostring(s.status or "-") .. "\n")
  end
end]]):format(quote(prefix)))
end

------------------------------------------------------------- compaction

--- compaction.keep: keeps a memory tagged TAG ("pinned") or younger than
-- DAYS days; compaction forgets the rest.
function M.keep_pinned_or_newer_than(days, tag)
  if type(days) ~= "number" or days < 0 then
    error("policy.keep_pinned_or_newer_than: days: a number >= 0 expected", 2)
  end
  tag = tag or "pinned"
  return M.code(([[function(mem, now)
  local tags = mem.tags
  if tags[%s] == true then return true end
  for i = 1, #tags do if tags[i] == %s then return true end end
  return now - mem.created_at < %s
end]]):format(quote(tag), quote(tag), number(floor(days * 86400))))
end

--- compaction.when: compact once dead bytes pass RATIO times the live ones.
function M.when_dead_over(ratio)
  if type(ratio) ~= "number" or ratio < 0 then
    error("policy.when_dead_over: ratio: a number >= 0 expected", 2)
  end
  return M.code(("function(stats) return stats.dead_bytes > %s * stats.live_bytes end")
    :format(number(ratio)))
end

--- Seconds in N days, for routes.NAME.ttl (routes = { scratch = { ttl = policy.days(1) } }).
function M.days(n)
  if type(n) ~= "number" or n <= 0 then error("policy.days: a number > 0 expected", 2) end
  return floor(n * 86400 + 0.5)
end

--- compaction.keep rule: keeps a memory tagged TAG ("pinned").  Combine
-- rules with policy.keep_any.
function M.pinned(tag)
  tag = tag or "pinned"
  if type(tag) ~= "string" then error("policy.pinned: tag: a string expected", 2) end
  return M.code(("function(mem) return mem.tags[%s] == true end"):format(quote(tag)))
end

--- compaction.keep rule: keeps the newest N memories of each tag (by id,
-- among live memories); a memory is kept when it is among the newest N of
-- any of its tags, or of the tags listed in opts.tags only (others then
-- do not keep it).  Untagged memories are not kept by this rule.
function M.newest_per_tag(n, opts)
  if type(n) ~= "number" or n < 0 or n ~= floor(n) then
    error("policy.newest_per_tag: n: an integer >= 0 expected", 2)
  end
  local only = "nil"
  if opts and opts.tags then
    local set = {}
    for _, t in ipairs(opts.tags) do
      if type(t) ~= "string" then error("policy.newest_per_tag: opts.tags: strings expected", 2) end
      set[t] = true
    end
    only = M.serialize(set)
  end
  return M.code(([[function(mem, now, newer)
  local only = %s
  for tag, count in pairs(newer) do
    if (only == nil or only[tag]) and count < %s then return true end
  end
  return false
end]]):format(only, number(n)))
end

--- compaction.keep rule: importance that decays.  A memory's importance is
-- read from a tag "importance:X" (X a number; opts.prefix renames it;
-- opts.default, 1, when it has none) and halves every HALF_LIFE_DAYS; the
-- memory is kept while it is at least THRESHOLD.
function M.decay(half_life_days, threshold, opts)
  if type(half_life_days) ~= "number" or half_life_days <= 0 then
    error("policy.decay: half_life_days: a number > 0 expected", 2)
  end
  if type(threshold) ~= "number" then error("policy.decay: threshold: a number expected", 2) end
  opts = opts or {}
  local prefix = opts.prefix or "importance:"
  local default = opts.default or 1
  if type(prefix) ~= "string" or type(default) ~= "number" then
    error("policy.decay: opts.prefix: a string, opts.default: a number expected", 2)
  end
  return M.code(([[function(mem, now)
  local importance = %s
  local prefix = %s
  for i = 1, #mem.tags do
    local t = mem.tags[i]
    if t:sub(1, #prefix) == prefix then importance = tonumber(t:sub(#prefix + 1)) or importance end
  end
  local age = now - mem.created_at
  if age < 0 then age = 0 end
  return importance * 0.5 ^ (age / %s) >= %s
end]]):format(number(default), quote(prefix), number(half_life_days * 86400), number(threshold)))
end

--- compaction.keep from several rules: a memory is kept when any of them
-- keeps it (each a function(mem, now, newer), as source or policy.code).
function M.keep_any(...)
  local n = select("#", ...)
  if n == 0 then error("policy.keep_any: at least one rule expected", 2) end
  local parts = {}
  for i = 1, n do
    local rule = select(i, ...)
    if type(rule) ~= "string" and not M.is_code(rule) then
      error(("policy.keep_any: rule %d: source text or policy.code expected, got %s"):format(i, type(rule)), 2)
    end
    parts[i] = "  (" .. tostring(rule) .. "),"
  end
  return M.code("(function(rules) return function(mem, now, newer)\n" ..
    "  for i = 1, #rules do if rules[i](mem, now, newer) then return true end end\n" ..
    "  return false\nend end)({\n" .. concat(parts, "\n") .. "\n})")
end

------------------------------------------------------------- a default

--- A spec for policy.build with what most agents want: memories tagged
-- "private" go to an unindexed route (kept, never in search results),
-- "scratch" ones to a route of their own; sessions keep any field;
-- memories, kv values and stream chunks are capped at opts.max_bytes
-- (16 MiB), and with opts.keep_days memories older than that are forgotten
-- at compaction unless pinned (opts.pinned_tag, "pinned"); scratch memories
-- then expire after a day (opts.scratch_ttl, seconds).  opts: private_tag,
-- scratch_tag, max_bytes, keep_days, pinned_tag, scratch_ttl.
-- Extend the returned table before building it.
function M.default(opts)
  opts = opts or {}
  local private, scratch = opts.private_tag or "private", opts.scratch_tag or "scratch"
  local max = opts.max_bytes or 16 * 1024 * 1024
  local spec = {
    route = M.route_by_tag({ { private, "private" }, { scratch, "scratch" } }, "default"),
    routes = { default = {}, private = { index = false }, scratch = {} },
    hooks = {
      append_memory = M.max_size("text", max),
      set_kv = M.max_size("value", max),
      append_stream = M.max_size("bytes", max),
    },
  }
  if opts.keep_days ~= nil then
    spec.compaction = { keep = M.keep_pinned_or_newer_than(opts.keep_days, opts.pinned_tag) }
    spec.routes.scratch = { ttl = opts.scratch_ttl or M.days(1) }
  end
  return spec
end

return M
