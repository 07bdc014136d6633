-- benchlib.lua: what the Lua benchmarks share: result lines in the format
-- of benchutil.h ("R workload system metric value unit"), failing loudly,
-- and corpus parsing.  Not part of memmapfs.
local bu = require "benchutil"

local M = { now = bu.now, cpu_now = bu.cpu_now, rss = bu.rss, peak_rss = bu.peak_rss, disk_bytes = bu.disk_bytes,
            rmtree = bu.rmtree, consume = bu.consume, random_keys = bu.random_keys }

function M.result(workload, system, metric, value, unit)
  io.write(string.format("R %s %s %s %.6g %s\n", workload, system, metric, value, unit))
  io.flush()
end

function M.die(msg)
  io.stderr:write("E ", tostring(msg), "\n")
  os.exit(1)
end

-- ok, or die with the message and code of a nil, msg, code failure.
function M.check(ok, msg, code, ...)
  if ok == nil or ok == false then M.die(string.format("%s (%s)", tostring(msg), tostring(code))) end
  return ok, msg, code, ...
end

-- A memories.tsv line as text, tags.
function M.memline(line)
  local tags, text = line:match("^[^\t]*\t([^\t]*)\t(.*)$")
  if not tags then M.die("malformed memories line") end
  local t = {}
  for tag in tags:gmatch("[^,]+") do t[#t + 1] = tag end
  return text, t
end

-- The first N lines of a file (fewer is an error).
function M.head(path, n)
  local out = {}
  for line in io.lines(path) do
    if #out >= n then break end
    out[#out + 1] = line
  end
  if #out < n then M.die(path .. ": only " .. #out .. " lines") end
  return out
end

-- A queries.tsv line as "w1 OR w2 OR w3"; a quoted phrase as it is.
function M.or_query(line)
  local q = line:match("\t(.*)$") or line
  if q:sub(1, 1) == '"' then return q end
  local words = {}
  for w in (line:match("\t(.*)$") or line):gmatch("%S+") do words[#words + 1] = w end
  return table.concat(words, " OR ")
end

-- p-th percentile (0..1) of a sorted array, as the C programs take it.
function M.pct(sorted, p)
  return sorted[math.floor((#sorted - 1) * p) + 1]
end

return M
