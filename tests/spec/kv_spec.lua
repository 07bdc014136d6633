-- Key-value: set_kv, get_kv, delete_kv, scan_kv.

local H = require "helpers"

describe("kv", function()
  local db
  before_each(function() db = H.open() end)
  after_each(function()
    db:close()
    H.cleanup()
  end)

  it("sets, gets, overwrites and deletes", function()
    assert.is_true(db:set_kv("k", "v1"))
    assert.are.equal("v1", db:get_kv("k"))
    assert.is_true(db:set_kv("k", "v2"))
    assert.are.equal("v2", db:get_kv("k"))
    assert.is_true(db:delete_kv("k"))
    assert.is_nil(db:get_kv("k"))
    assert.is_false(db:delete_kv("k"))
    assert.is_false(db:delete_kv("never"))
  end)

  it("a missing key gives nil alone", function()
    assert.are.equal(1, select("#", db:get_kv("missing")))
    assert.is_nil(db:get_kv("missing"))
  end)

  it("is binary safe: zeros, high bytes, empty key and value", function()
    local pairs_ = {
      ["a\0b"] = "v\0w\0",
      ["a\0c"] = "\0",
      ["\0"] = "zero key",
      ["\255\254"] = "\1\2\3\255",
      [""] = "empty key",
      ["empty value"] = "",
    }
    for k, v in pairs(pairs_) do assert(db:set_kv(k, v)) end
    for k, v in pairs(pairs_) do assert.are.equal(v, db:get_kv(k)) end
    assert.is_nil(db:get_kv("a"))
    assert.is_nil(db:get_kv("a\0"))
    -- an empty value is a value, not a missing key
    assert.are.equal("", db:get_kv("empty value"))
    assert.are.equal(6, db:stats().kv)
  end)

  it("keeps every byte value", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all)
    assert(db:set_kv(all, all:reverse()))
    assert.are.equal(all:reverse(), db:get_kv(all))
  end)

  it("stores a 16 MiB value, also across reopen", function()
    local big = H.big_value()
    assert.are.equal(16 * 1024 * 1024, #big)
    assert(db:set_kv("big", big))
    assert(db:set_kv("after", "small"))
    assert.is_true(db:get_kv("big") == big)
    db:close()
    local dir
    db, dir = H.open(nil, "big")
    assert(db:set_kv("big", big))
    db:close()
    db = H.reopen(dir)
    local got = db:get_kv("big")
    assert.are.equal(#big, #got)
    assert.is_true(got == big)
  end)

  it("holds 100,000 keys written in one batch", function()
    local n = 100000
    local failed = 0
    local ids = assert(db:batch(function(tx)
      for i = 1, n do -- (luassert per key would dominate the run time)
        if not tx:set_kv(("key%06d"):format(i), tostring(i)) then failed = failed + 1 end
      end
    end))
    assert.are.equal(0, failed)
    assert.are.same({}, ids)
    assert.are.equal(n, db:stats().kv)
    assert.are.equal("1", db:get_kv("key000001"))
    assert.are.equal("54321", db:get_kv("key054321"))
    assert.are.equal("100000", db:get_kv("key100000"))
    assert.is_nil(db:get_kv("key100001"))
    local count, last, unordered = 0, "", 0
    for k in assert(db:scan_kv("key")) do
      count = count + 1
      if k <= last then unordered = unordered + 1 end
      last = k
    end
    assert.are.equal(n, count)
    assert.are.equal(0, unordered)
    local keys = H.scan(db, "key0999")
    assert.are.equal(100, #keys)
  end)

  it("holds 100,000 keys written one by one, across reopen", function()
    db:close()
    local dir
    db, dir = H.open({ sync = "none" }, "many")
    local n = 100000
    local failed = 0
    for i = 1, n do
      if not db:set_kv("k" .. i, "v" .. i) then failed = failed + 1 end
    end
    assert.are.equal(0, failed)
    db:close()
    db = H.reopen(dir)
    assert.are.equal(n, db:stats().kv)
    for _, i in ipairs { 1, 2, 777, 50000, 99999, 100000 } do
      assert.are.equal("v" .. i, db:get_kv("k" .. i))
    end
  end)

  describe("scan_kv", function()
    before_each(function()
      for _, k in ipairs { "b", "a", "ab", "a\0", "a\255", "ba", "", "c", "\0" } do
        assert(db:set_kv(k, "=" .. k))
      end
    end)

    it("gives every key in byte order", function()
      local keys, values = H.scan(db)
      assert.are.same({ "", "\0", "a", "a\0", "ab", "a\255", "b", "ba", "c" }, keys)
      for i, k in ipairs(keys) do assert.are.equal("=" .. k, values[i]) end
      assert.are.same(keys, (H.scan(db, "")))
    end)

    it("gives the keys with a prefix", function()
      assert.are.same({ "a", "a\0", "ab", "a\255" }, (H.scan(db, "a")))
      assert.are.same({ "a\0" }, (H.scan(db, "a\0")))
      assert.are.same({ "b", "ba" }, (H.scan(db, "b")))
      assert.are.same({}, (H.scan(db, "zzz")))
    end)

    it("does not give deleted keys", function()
      assert(db:delete_kv("ab"))
      assert.are.same({ "a", "a\0", "a\255" }, (H.scan(db, "a")))
    end)

    it("stops early with break", function()
      local seen = {}
      for k in db:scan_kv("") do
        seen[#seen + 1] = k
        if #seen == 2 then break end
      end
      assert.are.same({ "", "\0" }, seen)
      assert(db:set_kv("a", "still writable"))
      assert.are.equal("still writable", db:get_kv("a"))
    end)

    it("raises when the store is closed during a scan", function()
      local ok, err = pcall(function()
        for _ in db:scan_kv("") do db:close() end
      end)
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("CLOSED"), tostring(err))
    end)
  end)

  it("raises on wrong argument types", function()
    H.raises(function() db:set_kv() end)
    H.raises(function() db:set_kv(1, "v") end)
    H.raises(function() db:set_kv("k", 2) end)
    H.raises(function() db:set_kv("k") end)
    H.raises(function() db:set_kv("k", {}) end)
    H.raises(function() db:get_kv(nil) end)
    H.raises(function() db:get_kv(7) end)
    H.raises(function() db:delete_kv(true) end)
    H.raises(function() db:scan_kv(5) end)
    H.raises(function() db.set_kv("notadb", "k", "v") end)
    assert.are.equal(0, db:stats().kv)
  end)

  it("a closed store answers CLOSED", function()
    assert(db:set_kv("k", "v"))
    db:close()
    H.fails("CLOSED", db:set_kv("k", "v"))
    H.fails("CLOSED", db:get_kv("k"))
    H.fails("CLOSED", db:delete_kv("k"))
    H.fails("CLOSED", db:scan_kv("k"))
  end)

  it("an unwritable directory gives IO with the path", function()
    local path, named = H.unwritable_path()
    local msg = H.fails("IO", require("memmapfs").open(path))
    assert.is_truthy(msg:find(named, 1, true), msg)
  end)

  for _, mode in ipairs(H.sync_modes) do
    it("reopen returns exactly what was written (sync = " .. mode .. ")", function()
      db:close()
      local dir
      db, dir = H.open({ sync = mode }, "kv-" .. mode)
      local expect = {}
      for i = 1, 300 do
        local k = "key" .. i .. "\0" .. H.bytes(i % 17, i)
        local v = H.bytes(i * 7, i + 1)
        assert(db:set_kv(k, v))
        expect[k] = v
      end
      for i = 1, 300, 3 do
        local k = "key" .. i .. "\0" .. H.bytes(i % 17, i)
        assert.is_true(db:delete_kv(k))
        expect[k] = nil
      end
      assert(db:set_kv("key2\0" .. H.bytes(2, 2), "replaced"))
      expect["key2\0" .. H.bytes(2, 2)] = "replaced"
      assert.is_true(db:close())
      db = H.reopen(dir, { sync = mode })
      local keys, values = H.scan(db)
      local got = {}
      for i, k in ipairs(keys) do got[k] = values[i] end
      assert.are.same(expect, got)
      for k, v in pairs(expect) do assert.are.equal(v, db:get_kv(k)) end
    end)
  end
end)
