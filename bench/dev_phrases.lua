-- dev_phrases.lua: the slowest phrase search on the LoCoMo dev split.
--
--   lua5.4 bench/dev_phrases.lua DIR DATA_DIR
--
-- Puts every dialog turn of DATA_DIR/memories.tsv into one new store at
-- DIR, then runs every question of DATA_DIR/queries.tsv as phrases: the
-- whole question quoted, and each pair of adjacent words quoted (words:
-- lower-cased letter and digit runs of two or more).  Prints the count,
-- the hits and the slowest search in CPU ms (issue 11: at most 50 ms).
local memmapfs = require "memmapfs"

local dir, data = arg[1], arg[2]
if not dir or not data then
  io.stderr:write("usage: lua5.4 bench/dev_phrases.lua DIR DATA_DIR\n")
  os.exit(2)
end
local db = assert(memmapfs.open(dir))
for line in io.lines(data .. "/memories.tsv") do
  local text = line:match("^[^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t(.*)$")
  if text then assert(db:append_memory(text, {})) end
end

local worst, n, hits = 0, 0, 0
for line in io.lines(data .. "/queries.tsv") do
  local q = line:match("\t([^\t]*)$")
  local words = {}
  for w in q:lower():gmatch("[%a%d]+") do
    if #w > 1 then words[#words + 1] = w end
  end
  local qs = { '"' .. table.concat(words, " ") .. '"' }
  for i = 1, #words - 1 do qs[#qs + 1] = '"' .. words[i] .. " " .. words[i + 1] .. '"' end
  for _, s in ipairs(qs) do
    local t0 = os.clock()
    local r = assert(db:search_memory(s, { limit = 10 }))
    local ms = (os.clock() - t0) * 1e3
    n, hits = n + 1, hits + #r
    if ms > worst then worst = ms end
  end
end
print(string.format("phrase searches %d, hits %d, slowest %.3f ms (CPU)", n, hits, worst))
db:close()
