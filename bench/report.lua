-- report.lua: turns the raw result lines of one bench/run into the
-- published figures.  Called by bench/run; not meant to be run by hand.
--
--   lua5.4 bench/report.lua RAW MACHINE OUTDIR SIZE RUNS COMMAND
--
-- RAW holds the lines the benchmark programs printed, every run:
--   R workload system metric value unit      a measured figure
--   F workload system reason...              a row that could not be measured
-- MACHINE holds "key: value" lines (CPU, memory, kernel, filesystem...).
-- Writes OUTDIR/results.csv (medians, min, max over the runs), ratios.csv,
-- ratios.dat + ratios.gp (the chart; bench/run calls gnuplot), report.md,
-- and prints the same tables.
local RAW, MACHINE, OUT, SIZE, RUNS, COMMAND = table.unpack(arg)
assert(RAW and MACHINE and OUT and SIZE and RUNS and COMMAND, "usage: report.lua RAW MACHINE OUTDIR SIZE RUNS COMMAND")

-- Figures ---------------------------------------------------------------
local fig, order, failed, failorder = {}, {}, {}, {}
local function fkey(w, s, m) return w .. "|" .. s .. "|" .. m end

for line in io.lines(RAW) do
  local w, s, m, v, u = line:match("^R (%S+) (%S+) (%S+) (%S+) (%S+)$")
  if w then
    local k = fkey(w, s, m)
    if not fig[k] then
      fig[k] = { w = w, s = s, m = m, u = u, vals = {} }
      order[#order + 1] = k
    end
    local x = tonumber(v)
    if x then table.insert(fig[k].vals, x) end
  else
    local fw, fs, why = line:match("^F (%S+) (%S+) (.*)$")
    if fw then
      local k = fw .. "|" .. fs
      if not failed[k] then failorder[#failorder + 1] = k end
      failed[k] = { w = fw, s = fs, why = why }
    end
  end
end

local function median(t)
  local s = {}
  for i, x in ipairs(t) do s[i] = x end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2], s[1], s[n] end
  return (s[n // 2] + s[n // 2 + 1]) / 2, s[1], s[n]
end

for _, k in ipairs(order) do
  local f = fig[k]
  f.med, f.min, f.max = median(f.vals)
end

local function get(w, s, m)
  local f = fig[fkey(w, s, m)]
  return f and f.med
end

-- Formatting --------------------------------------------------------------
local function commas(n)
  local s = string.format("%.0f", n)
  local neg = s:sub(1, 1) == "-"
  if neg then s = s:sub(2) end
  s = s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return (neg and "-" or "") .. s
end

local function fmt(v, unit)
  if v == nil then return "—" end
  if unit == "bytes" then
    if math.abs(v) >= 1e6 then return string.format("%.1f MB", v / 1e6) end
    if math.abs(v) >= 1e4 then return string.format("%.1f kB", v / 1e3) end
    return string.format("%.0f B", v)
  elseif unit == "GB/s" then return string.format("%.2f GB/s", v)
  elseif unit == "us" then return string.format(math.abs(v) < 10 and "%.2f µs" or "%.1f µs", v)
  elseif unit == "ms" then return string.format("%.2f ms", v)
  elseif unit == "ops/s" or unit == "memories/s" then return commas(v) .. "/s"
  end
  return string.format("%.4g %s", v, unit)
end

local function fmtratio(r)
  if r == nil then return "—" end
  if r >= 100 then return string.format("%.0f×", r) end
  if r >= 10 then return string.format("%.1f×", r) end
  return string.format("%.3g×", r)
end

-- Comparisons: every ratio the report shows, with the goal of WORKLOADS.md
-- where there is one.  op ">=" / "<=" against target; nil op = context only.
local C = {}
local function cmp(t) C[#C + 1] = t end
local labels = {}
do -- the W2/W3 size labels present, in the order seen
  local seen = {}
  for _, k in ipairs(order) do
    local f = fig[k]
    local lbl = f.m:match("^ingest_per_s_(.+)$")
    if lbl and not seen[lbl] then seen[lbl] = true; labels[#labels + 1] = lbl end
  end
  if #labels == 0 then labels = { "?" } end
end

local LIMIT = { "W0", "machine", "fsync_limit_per_s" }
for _, sys in ipairs { "memmapfs-c", "memmapfs-lua" } do
  local lang = sys == "memmapfs-c" and "C" or "Lua"
  cmp { w = "W1", what = lang .. " appends/s ÷ W0 fsync limit",
      a = { "W1", sys, "appends_per_s" }, b = LIMIT,
      op = ">=", target = 0.95 }
  cmp { w = "W1", what = lang .. " appends/s ÷ SQLite FTS5",
      a = { "W1", sys, "appends_per_s" }, b = { "W1", "sqlite-fts5", "appends_per_s" },
      op = ">=", target = 2, note = "≈ 2× SQLite FTS5" }
end
cmp { w = "W1", what = "C appends/s ÷ LMDB",
    a = { "W1", "memmapfs-c", "appends_per_s" }, b = { "W1", "lmdb", "appends_per_s" } }
cmp { w = "W1g", what = "C 4 threads ÷ W0 fsync limit",
    a = { "W1g", "memmapfs-c", "appends_per_s" }, b = LIMIT,
    op = ">=", target = 3 }
-- The textbook group commit (w0_limits gcommit): what a few lines of C reach
-- on this machine with the same threads.  Context, no goal: the goal above
-- stays the one of WORKLOADS.md.
local GC4, GC8 = { "W0", "machine", "group_commit_4t_per_s" }, { "W0", "machine", "group_commit_8t_per_s" }
cmp { w = "W1g", what = "C 4 threads ÷ textbook group commit, 4 threads (W0)",
    a = { "W1g", "memmapfs-c", "appends_per_s" }, b = GC4 }
cmp { w = "W1g", what = "textbook group commit, 4 threads ÷ W0 fsync limit", a = GC4, b = LIMIT }
cmp { w = "W1g", what = "C 4 threads ÷ SQLite FTS5 4 threads",
    a = { "W1g", "memmapfs-c", "appends_per_s" }, b = { "W1g", "sqlite-fts5", "appends_per_s" },
    op = ">=", target = 7 }
cmp { w = "W1g", what = "C 4 threads ÷ LMDB 4 threads",
    a = { "W1g", "memmapfs-c", "appends_per_s" }, b = { "W1g", "lmdb", "appends_per_s" } }
for _, sys in ipairs { "memmapfs-c", "sqlite-fts5", "lmdb" } do
  cmp { w = "W1g", what = sys .. ": 4 threads ÷ W1 (1 thread)",
      a = { "W1g", sys, "appends_per_s" }, b = { "W1", sys, "appends_per_s" } }
end
-- 8 threads, the same number of appends: not a WORKLOADS.md workload, it
-- shows how group commit scales with more waiters.
local W1G8 = { "W1g", "memmapfs-c", "appends_8t_per_s" }
cmp { w = "W1g", what = "C 8 threads (not a WORKLOADS.md workload) ÷ W0 fsync limit", a = W1G8, b = LIMIT }
cmp { w = "W1g", what = "C 8 threads (not a WORKLOADS.md workload) ÷ textbook group commit, 8 threads (W0)",
    a = W1G8, b = GC8 }
cmp { w = "W1g", what = "textbook group commit, 8 threads ÷ W0 fsync limit", a = GC8, b = LIMIT }
-- W1p: two processes on the same store (issue #5); no goal of its own.
cmp { w = "W1p", what = "C 2 processes ÷ W0 fsync limit", a = { "W1p", "memmapfs-c", "appends_per_s" }, b = LIMIT }
cmp { w = "W1p", what = "C 2 processes ÷ SQLite FTS5 2 processes",
    a = { "W1p", "memmapfs-c", "appends_per_s" }, b = { "W1p", "sqlite-fts5", "appends_per_s" } }
cmp { w = "W1p", what = "C 2 processes ÷ LMDB 2 processes",
    a = { "W1p", "memmapfs-c", "appends_per_s" }, b = { "W1p", "lmdb", "appends_per_s" } }
for _, sys in ipairs { "memmapfs-c", "sqlite-fts5", "lmdb" } do
  cmp { w = "W1p", what = sys .. ": 2 processes ÷ W1 (1 process)",
      a = { "W1p", sys, "appends_per_s" }, b = { "W1", sys, "appends_per_s" } }
end
for _, lbl in ipairs(labels) do
  local at1M = lbl == "1M"
  for _, sys in ipairs { "memmapfs-c", "memmapfs-lua" } do
    local lang = sys == "memmapfs-c" and "C" or "Lua"
    cmp { w = "W2", what = lang .. " ingest/s ÷ SQLite FTS5 @" .. lbl,
        a = { "W2", sys, "ingest_per_s_" .. lbl }, b = { "W2", "sqlite-fts5", "ingest_per_s_" .. lbl },
        op = ">=", target = 5, ref = not at1M }
  end
  cmp { w = "W2", what = "bytes on disk ÷ SQLite FTS5 @" .. lbl,
      a = { "W2", "memmapfs-c", "disk_bytes_" .. lbl }, b = { "W2", "sqlite-fts5", "disk_bytes_" .. lbl },
      op = "<=", target = 0.8, ref = not at1M }
  cmp { w = "W2", what = "peak RSS ÷ SQLite FTS5 @" .. lbl,
      a = { "W2", "memmapfs-c", "peak_rss_" .. lbl }, b = { "W2", "sqlite-fts5", "peak_rss_" .. lbl } }
  for _, sys in ipairs { "memmapfs-c", "memmapfs-lua" } do
    local lang = sys == "memmapfs-c" and "C" or "Lua"
    for _, set in ipairs { "", "-common", "-phrases" } do -- W3's three query sets
      for _, p in ipairs { "p50", "p99" } do
        local l = lbl .. set
        cmp { w = "W3", what = lang .. " " .. p .. " ÷ SQLite FTS5 @" .. l,
            a = { "W3", sys, p .. "_us_" .. l }, b = { "W3", "sqlite-fts5", p .. "_us_" .. l },
            op = "<=", target = 0.1, ref = not at1M }
      end
    end
  end
end
cmp { w = "W4", what = "C gets/s ÷ LMDB",
    a = { "W4", "memmapfs-c", "gets_per_s" }, b = { "W4", "lmdb", "gets_per_s" },
    op = ">=", target = 3 }
cmp { w = "W4", what = "C sets/s ÷ LMDB",
    a = { "W4", "memmapfs-c", "sets_per_s" }, b = { "W4", "lmdb", "sets_per_s" },
    op = ">=", target = 4 }
cmp { w = "W4", what = "C gets/s ÷ SQLite",
    a = { "W4", "memmapfs-c", "gets_per_s" }, b = { "W4", "sqlite", "gets_per_s" } }
cmp { w = "W4", what = "C sets/s ÷ SQLite",
    a = { "W4", "memmapfs-c", "sets_per_s" }, b = { "W4", "sqlite", "sets_per_s" } }
cmp { w = "W4", what = "Lua gets/s ÷ luasql",
    a = { "W4", "memmapfs-lua", "gets_per_s" }, b = { "W4", "luasql-sqlite3", "gets_per_s" },
    op = ">=", target = 10 }
cmp { w = "W4", what = "Lua gets/s ÷ plain Lua table",
    a = { "W4", "memmapfs-lua", "gets_per_s" }, b = { "W4", "lua-table", "gets_per_s" },
    op = ">=", target = 0.5 }
cmp { w = "W4", what = "Lua sets/s ÷ luasql",
    a = { "W4", "memmapfs-lua", "sets_per_s" }, b = { "W4", "luasql-sqlite3", "sets_per_s" } }
-- RSS per entry: the goal is absolute (64 B + the 12-byte key), the ratio is to it.
cmp { w = "W4", what = "C anon RSS/entry ÷ (64 B + 12 B key)",
    a = { "W4", "memmapfs-c", "rss_anon_per_entry" },
    const = 76,
    op = "<=", target = 1 }
cmp { w = "W5", what = "C open + first get ÷ SQLite",
    a = { "W5", "memmapfs-c", "open_first_get_ms" }, b = { "W5", "sqlite", "open_first_get_ms" } }
cmp { w = "W5", what = "C open + first get ÷ LMDB",
    a = { "W5", "memmapfs-c", "open_first_get_ms" }, b = { "W5", "lmdb", "open_first_get_ms" } }
cmp { w = "W5", what = "C open + first get, ms, without a checkpoint (no goal)",
    a = { "W5", "memmapfs-c", "open_first_get_ms" },
    const = 10 }
cmp { w = "W5", what = "C open + first get with a checkpoint ÷ 10 ms",
    a = { "W5", "memmapfs-c-ckpt", "open_first_get_ms" },
    const = 10, op = "<=", target = 1 }
cmp { w = "W5", what = "C open + first get with a checkpoint ÷ SQLite",
    a = { "W5", "memmapfs-c-ckpt", "open_first_get_ms" }, b = { "W5", "sqlite", "open_first_get_ms" } }
cmp { w = "W5", what = "C open + first get with a checkpoint ÷ LMDB",
    a = { "W5", "memmapfs-c-ckpt", "open_first_get_ms" }, b = { "W5", "lmdb", "open_first_get_ms" } }
cmp { w = "W5", what = "C anon RSS after open + 1,000 W3 queries with a checkpoint ÷ 32 MiB",
    a = { "W5", "memmapfs-c-ckpt", "rss_anon_after_1000_w3_mb" },
    const = 32, cunit = "MiB", op = "<=", target = 1 }
-- W6: µs a policy adds per command (difference to no policy within each
-- run); the goals are absolute, so the ratio is to the goal's µs.
for _, sys in ipairs { "memmapfs-c", "memmapfs-lua" } do
  local lang = sys == "memmapfs-c" and "C" or "Lua"
  cmp { w = "W6", what = lang .. " trivial hook: µs added per append_memory ÷ 0.5 µs",
      a = { "W6", sys, "added_us_hook" },
      const = 0.5, cunit = "µs",
      op = "<=", target = 1 }
  cmp { w = "W6", what = lang .. " routing: µs added per append_memory ÷ 2 µs",
      a = { "W6", sys, "added_us_route" },
      const = 2, cunit = "µs",
      op = "<=", target = 1 }
  cmp { w = "W6", what = lang .. " routing + session schema: µs added per put_session ÷ 2 µs",
      a = { "W6", sys, "added_us_route_schema" },
      const = 2, cunit = "µs",
      op = "<=", target = 1 }
end
local MMAP = { "W0", "machine", "mmap_read_gb_per_s" }
cmp { w = "W7", what = "C read (zero-copy peek) ÷ W0 mmap read",
    a = { "W7", "memmapfs-c", "read_gb_per_s" }, b = MMAP,
    op = ">=", target = 0.8 }
cmp { w = "W7", what = "C read (reader_read copy) ÷ W0 mmap read",
    a = { "W7", "memmapfs-c", "read_copy_gb_per_s" }, b = MMAP,
    op = ">=", target = 0.8 }
cmp { w = "W7", what = "Lua read ÷ W0 mmap read",
    a = { "W7", "memmapfs-lua", "read_gb_per_s" }, b = MMAP,
    op = ">=", target = 0.8 }
cmp { w = "W7", what = "C read (zero-copy) ÷ cat > /dev/null",
    a = { "W7", "memmapfs-c", "read_gb_per_s" }, b = { "W7", "cat", "read_gb_per_s" } }
cmp { w = "W7", what = "C read (zero-copy) ÷ W0 mmap read of a fresh mapping",
    a = { "W7", "memmapfs-c", "read_gb_per_s" }, b = { "W0", "machine", "mmap_fault_read_gb_per_s" } }
cmp { w = "W7", what = "cat > /dev/null ÷ W0 mmap read", a = { "W7", "cat", "read_gb_per_s" }, b = MMAP }
-- W8: compaction of a store with half its memories deleted and every key
-- set twice; the copy rate is a cp + fsync of the live bytes, same run.
cmp { w = "W8", what = "compaction MB/s (live bytes) ÷ cp of the live bytes",
    a = { "W8", "memmapfs-c", "compact_mb_per_s" }, b = { "W8", "cp", "copy_mb_per_s" },
    op = ">=", target = 0.5 }
cmp { w = "W8", what = "log bytes after ÷ before (about halve)",
    a = { "W8", "memmapfs-c", "log_bytes_after" }, b = { "W8", "memmapfs-c", "log_bytes_before" },
    op = "<=", target = 0.6 }
-- FFI: the LuaJIT FFI binding's time per call ÷ the C module's, both under
-- LuaJIT (bench/ffi_bench.lua); below 1 the FFI binding is faster.  Context.
for _, m in ipairs { "get_kv_ns", "append_batch_ns", "search_ns" } do
  cmp { w = "FFI", what = "FFI binding ÷ C module under LuaJIT, time per " .. m:gsub("_ns$", ""),
      a = { "FFI", "memmapfs-luajit-ffi", m }, b = { "FFI", "memmapfs-luajit-c", m } }
end

local rows = {}
for _, c in ipairs(C) do
  local a = get(table.unpack(c.a))
  local b = c.const or (c.b and get(table.unpack(c.b)))
  local r = (a and b and b ~= 0) and a / b or nil
  local goal, verdict = "—", "context"
  if c.op then
    goal = (c.op == ">=" and "≥ " or "≤ ") .. tostring(c.target) .. "×"
    if c.note then goal = goal .. " (" .. c.note .. ")" end
    if c.ref then goal = goal .. " (goal is at 1M)" end
    if r == nil then verdict = "no data"
    else
      local ok = (c.op == ">=" and r >= c.target) or (c.op == "<=" and r <= c.target)
      verdict = ok and "meets" or "misses"
      if c.ref then verdict = verdict .. " (ref.)" end
    end
  elseif c.w == "W5" and c.const then
    goal, verdict = "— (the 10 ms goal is with a checkpoint)", "context"
  end
  local aunit = fig[fkey(table.unpack(c.a))] and fig[fkey(table.unpack(c.a))].u
  local bunit = c.b and fig[fkey(table.unpack(c.b))] and fig[fkey(table.unpack(c.b))].u
  rows[#rows + 1] = { c = c, a = a, b = b, r = r, goal = goal, verdict = verdict,
                      astr = fmt(a, aunit),
                      bstr = c.const and (c.const .. " " .. (c.cunit or (c.w == "W5" and "ms" or "B")))
                             or fmt(b, bunit) }
end

-- Outputs ---------------------------------------------------------------
local function slurp(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
local machine = slurp(MACHINE)

local csv = assert(io.open(OUT .. "/results.csv", "w"))
csv:write("workload,system,metric,median,min,max,unit\n")
for _, k in ipairs(order) do
  local f = fig[k]
  if f.med then
    csv:write(string.format("%s,%s,%s,%.6g,%.6g,%.6g,%s\n", f.w, f.s, f.m, f.med, f.min, f.max, f.u))
  end
end
csv:close()

local rcsv = assert(io.open(OUT .. "/ratios.csv", "w"))
rcsv:write("workload,comparison,memmapfs,peer,ratio,goal,verdict\n")
local dat = assert(io.open(OUT .. "/ratios.dat", "w"))
dat:write("# index label ratio goal(or -1) met(1/0/-1)\n")
local nplot, xlo, xhi = 0, math.huge, 0
for _, row in ipairs(rows) do
  local c = row.c
  rcsv:write(string.format('%s,"%s",%s,%s,%s,"%s",%s\n', c.w, c.what,
    row.a and string.format("%.6g", row.a) or "", row.b and string.format("%.6g", row.b) or "",
    row.r and string.format("%.4g", row.r) or "", row.goal, row.verdict))
  if row.r and row.r > 0 and c.op then
    local met = row.verdict:match("^meets") and 1 or 0
    dat:write(string.format('%d "%s: %s" %.6g %.6g %d\n', nplot, c.w, (c.what:gsub('"', "'")), row.r, c.target, met))
    nplot = nplot + 1
    xlo = math.min(xlo, row.r, c.target)
    xhi = math.max(xhi, row.r, c.target)
  end
end
rcsv:close()
dat:close()

local gp = assert(io.open(OUT .. "/ratios.gp", "w"))
gp:write(string.format([[
# gnuplot script written by bench/report.lua; bench/run runs it.
set terminal pngcairo size 1400,%d font ",10" noenhanced
set output "%s/ratios.png"
set title "memmapfs ÷ peer (or ÷ machine limit), medians of %s runs, size %s\n%s"
]], math.max(300, 80 + 26 * nplot), OUT, RUNS, SIZE,
    "green: meets the goal, red: misses; black diamond: the goal"))
if nplot == 0 then
  gp:write([[
unset border
unset tics
set xrange [0:1]
set yrange [0:1]
set label 1 "no ratio could be computed in this run (see report.md: rows that could not be measured)" at 0.5,0.5 center
plot 2 notitle
]])
else
  xlo, xhi = xlo / 2, xhi * 2
  gp:write(string.format([[
set style fill solid 0.8
set logscale x 10
set xrange [%g:%g]
set xlabel "ratio (log scale)"
set ytics nomirror
set yrange [-0.7:%g]
set grid xtics
set key off
unset colorbox
set palette defined (0 "#d9534f", 1 "#5cb85c")
set cbrange [0:1]
# the first comparison at the top
plot "%s/ratios.dat" using ($3):(%d-$1):(%g):($3):(%d-$1-0.35):(%d-$1+0.35):($5):ytic(2) with boxxyerror lc palette, \
     "" using 4:(%d-$1) with points pt 13 ps 2 lc rgb "black"
]], xlo, xhi, nplot - 0.3, OUT, nplot - 1, xlo, nplot - 1, nplot - 1, nplot - 1))
end
gp:close()

-- Tables ------------------------------------------------------------------
local function pad(s, n)
  local len = utf8.len(s) or #s
  return s .. string.rep(" ", math.max(0, n - len))
end

local ratio_lines = { "| workload | comparison | memmapfs | peer / limit | ratio | goal | verdict |",
                      "| --- | --- | --- | --- | --- | --- | --- |" }
for _, row in ipairs(rows) do
  ratio_lines[#ratio_lines + 1] = string.format("| %s | %s | %s | %s | %s | %s | %s |", row.c.w, row.c.what,
    row.astr, row.bstr, fmtratio(row.r), row.goal, row.verdict)
end

local fig_lines = { "| workload | system | metric | median | min | max | runs |",
                    "| --- | --- | --- | --- | --- | --- | --- |" }
for _, k in ipairs(order) do
  local f = fig[k]
  fig_lines[#fig_lines + 1] = string.format("| %s | %s | %s | %s | %s | %s | %d |", f.w, f.s, f.m,
    fmt(f.med, f.u), fmt(f.min, f.u), fmt(f.max, f.u), #f.vals)
end

local fail_lines = {}
for _, k in ipairs(failorder) do
  local f = failed[k]
  fail_lines[#fail_lines + 1] = string.format("- **%s / %s**: %s", f.w, f.s, f.why)
end

local md = assert(io.open(OUT .. "/report.md", "w"))
md:write("# memmapfs benchmark report\n\n")
md:write("Written by `bench/run`; see [README.md](README.md) for what each workload is.\n\n")
md:write("## Machine\n\n```\n", machine, "```\n\n")
md:write(string.format("Command: `%s` — size **%s**, **%s** runs per figure; "
  .. "every figure below is the median (min, max) of those runs, all systems measured in the same run.\n\n",
  COMMAND, SIZE, RUNS))
md:write("## Ratios and goals\n\n", table.concat(ratio_lines, "\n"), "\n\n")
md:write("W6 rows: µs per command a policy adds, i.e. (CPU time with the policy − without) ÷ commands, ",
  "measured side by side, batch by batch, within each run, then the median (min, max) over the runs; ",
  "a negative figure is noise. ",
  "The ratio is to the goal's µs (≤ 1× meets). ",
  "W1p has no goal of its own in WORKLOADS.md: its ratios are context (issue #5). ")
md:write("W1g “textbook group commit” rows (context, no goal; W0 `group_commit_Nt_per_s`): N threads, the same ",
  "number of durable commits as W1g, each a 400-byte `pwrite` at the end of a preallocated file under a mutex, ",
  "then a leader/follower `fdatasync` (one waiter syncs everything written so far and wakes the others, who wait ",
  "on a condition variable); `group_commit_Nt_commits_per_sync` is how many commits shared each `fdatasync`. ",
  "It is what the simplest group commit reaches on this machine, where waking a thread on another CPU costs a ",
  "sizeable part of an `fdatasync`; the W1g goal is still judged against the fsync limit. ",
  "The 8-thread rows (memmapfs `appends_8t_per_s`) are not a WORKLOADS.md workload: the same appends from ",
  "8 threads, to show how group commit scales with more waiters. ")
md:write("“(ref.)”: the goal is stated at 1M memories; at this size the verdict is for reference only. ",
  "W4 RSS per entry is the growth of anonymous memory (heap) over the set+get phase ÷ entries; ",
  "file pages of mapped logs are page cache and are reported apart (rss_per_entry).\n\n")
md:write("![ratios](ratios.png)\n\n")
md:write("## All figures\n\n", table.concat(fig_lines, "\n"), "\n\n")
md:write("## Rows that could not be measured\n\n")
md:write(#fail_lines > 0 and table.concat(fail_lines, "\n") or "None.", "\n\n")
md:write([[
## Pending (no figures yet, by design)

- **W5 at 1M memories**: bench/run opens the W5 store with 100k memories (and the kv of W4);
  the goal's 1M-memory store is measured by hand (docs/bench/w5-checkpoint.md).
]])
md:close()

-- Printed table (plain text).
local function print_table(lines)
  local cells, widths = {}, {}
  for i, l in ipairs(lines) do
    if i ~= 2 then
      local row = {}
      for cell in l:gmatch("|%s([^|]*)%s") do row[#row + 1] = cell end
      for j, cell in ipairs(row) do widths[j] = math.max(widths[j] or 0, utf8.len(cell) or #cell) end
      cells[#cells + 1] = row
    end
  end
  for i, row in ipairs(cells) do
    local out = {}
    for j, cell in ipairs(row) do out[j] = pad(cell, widths[j]) end
    print(table.concat(out, "  "))
    if i == 1 then
      local dashes = {}
      for j = 1, #widths do dashes[j] = string.rep("-", widths[j]) end
      print(table.concat(dashes, "  "))
    end
  end
end

print("\n" .. machine)
print(string.format("size %s, %s runs (median, min, max)\n", SIZE, RUNS))
print_table(fig_lines)
print("")
print_table(ratio_lines)
if #fail_lines > 0 then
  print("\nrows that could not be measured:")
  for _, l in ipairs(fail_lines) do print((l:gsub("%*%*", ""))) end
end
print("\npending: W5 at 1M memories (by hand: docs/bench/w5-checkpoint.md)")
