-- compress = "zstd": memory texts compressed with a dictionary of the
-- store come back as written, through every read of the API.

local H = require "helpers"
local memmapfs = require "memmapfs"

local zstd = os.getenv("MMFS_HAVE_ZSTD")
local TRAIN = 4100 -- past the writer's training threshold (4,000 memories)

local words = { "toukd", "glaibroyye", "stoubrofhs", "kovugouji", "ducinao", "faveubh", "maidc",
  "raikv", "taivd", "hanaibj", "gaicd", "naicud", "haroua", "koub", "rohiw", "naigec", "tea",
  "coffee", "morning", "green", "running", "ocean" }

-- Text number i: the same words for the same i, 8 to 40 of them.
local function text(i)
  local t, x = { "m" .. i }, i * 7919 % 65521 + 1
  for _ = 1, 8 + x % 33 do
    x = (x * 48271) % 2147483647
    t[#t + 1] = words[x % #words + 1]
  end
  return table.concat(t, " ")
end

local cjk = "我喜欢喝绿茶, and Ann said: café au lait, Grüße aus Köln, 東京に行きました, "
  .. "녹차를 마셨어요 toukd haroua naicud glaibroyye"

local function fill(db)
  assert(db:batch(function(tx)
    for i = 1, TRAIN do tx:append_memory(text(i), {}) end
  end))
end

describe("compress", function()
  after_each(function() H.cleanup() end)

  it("round-trips get, list, search and snippets, across reopen and compaction", function()
    if zstd ~= "1" then
      pending("built without libzstd")
      return
    end
    local db, dir = H.open({ compress = "zstd" })
    fill(db)
    local long = assert(db:append_memory(text(999999), { "z" }))
    local short = assert(db:append_memory("short tea note", { "z" }))
    local c = assert(db:append_memory(cjk, { "z" }, { route = "r" }))
    local function check()
      for i = 1, TRAIN, 211 do assert.are.equal(text(i), db:get_memory(i).text) end
      assert.are.same({ id = long, text = text(999999), tags = { "z" }, created_at = db:get_memory(long).created_at,
        route = "default" }, db:get_memory(long))
      assert.are.equal("short tea note", db:get_memory(short).text)
      assert.are.equal(cjk, db:get_memory(c).text)
      local hits = assert(db:search_memory("绿茶", { snippet = true }))
      assert.are.equal(1, #hits)
      assert.are.equal(cjk, hits[1].text)
      assert.is_truthy(hits[1].snippet:find("[绿茶]", 1, true))
      hits = assert(db:search_memory("café", { route = "r", snippet = { mark = { "<b>", "</b>" } } }))
      assert.are.equal(c, hits[1].id)
      assert.is_truthy(hits[1].snippet:find("<b>café</b>", 1, true))
      local list = assert(db:list_memories({ tags = { "z" } }))
      assert.are.same({ cjk, "short tea note", text(999999) }, { list[1].text, list[2].text, list[3].text })
      assert.are.same({ cjk }, db:query_memory("绿茶"))
      assert.is_true(db:verify())
    end
    check()
    db:close()
    db = H.reopen(dir)
    check()
    assert(db:checkpoint())
    db:close()
    assert(H.run("rm -rf " .. H.quote(dir .. "/ckpt") .. " " .. H.quote(dir .. "/index")))
    db = H.reopen(dir, { compress = "zstd" })
    check()
    assert(db:delete_memory(2))
    local r = assert(db:compact())
    assert.is_true(r.dropped >= 2)
    check()
    db:close()
    db = H.reopen(dir)
    check()
    assert.is_nil(db:get_memory(2))
    db:close()
  end)

  it("compresses what a batch appends once the dictionary is there", function()
    if zstd ~= "1" then
      pending("built without libzstd")
      return
    end
    local db, dir = H.open({ compress = "zstd" })
    fill(db)
    assert(db:append_memory(text(0), {})) -- trains
    local before = db:stats().log_bytes
    local ids = assert(db:batch(function(tx)
      for i = 1, 500 do tx:append_memory(text(i), {}) end
    end))
    local grew = db:stats().log_bytes - before
    local raw = 0
    for i = 1, 500 do raw = raw + #text(i) end
    assert.is_true(grew < raw, ("grew %d for %d bytes of text"):format(grew, raw))
    for i = 1, 500, 37 do assert.are.equal(text(i), db:get_memory(ids[i]).text) end
    db:close()
    db = H.reopen(dir)
    for i = 1, 500, 37 do assert.are.equal(text(i), db:get_memory(ids[i]).text) end
    db:close()
  end)

  it("is fixed at creation", function()
    H.fails("INVALID", memmapfs.open(H.store_path(), { compress = "lz4" }))
    local db, dir = H.open({ compress = "none" })
    db:close()
    local msg = H.fails("INVALID", memmapfs.open(dir, { compress = "zstd" }))
    if zstd == "1" then
      assert.is_truthy(msg:find("cannot change", 1, true), msg)
      db, dir = H.open({ compress = "zstd" })
      db:close()
      msg = H.fails("INVALID", memmapfs.open(dir, { compress = "none" }))
      assert.is_truthy(msg:find("cannot change", 1, true), msg)
      H.reopen(dir):close()
    else
      assert.is_truthy(msg:find("built without zstd", 1, true), msg)
    end
  end)

  it("is INVALID without libzstd", function()
    if zstd ~= "0" then
      pending("built with libzstd")
      return
    end
    local path = H.store_path()
    local msg = H.fails("INVALID", memmapfs.open(path, { compress = "zstd" }))
    assert.is_truthy(msg:find("built without zstd", 1, true), msg)
    assert.is_nil(io.open(path .. "/MANIFEST"))
  end)
end)
