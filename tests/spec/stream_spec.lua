-- Streams: append_stream, stream_size, open_read and the reader.

local H = require "helpers"

describe("streams", function()
  local db
  before_each(function() db = H.open() end)
  after_each(function()
    db:close()
    H.cleanup()
  end)

  it("appends and reads back everything", function()
    assert.is_true(db:append_stream("s", "hello "))
    assert.is_true(db:append_stream("s", "world"))
    assert.are.equal(11, db:stream_size("s"))
    local r = assert(db:open_read("s"))
    assert.are.equal(11, r:size())
    assert.are.equal("hello world", r:read("a"))
    assert.are.equal("", r:read("a"))
    assert.is_nil(r:read(1))
    assert.is_nil(r:read("l"))
    assert.is_true(r:close())
  end)

  it("reads counts across chunks, nil at the end", function()
    for _, part in ipairs { "ab", "cde", "", "f", "ghij" } do assert(db:append_stream("s", part)) end
    local r = assert(db:open_read("s"))
    assert.are.equal("a", r:read(1))
    assert.are.equal("bcd", r:read(3))
    assert.are.equal("", r:read(0))
    assert.are.equal("efghij", r:read(100))
    assert.is_nil(r:read(0))
    assert.is_nil(r:read(5))
    assert.are.equal(10, r:tell())
  end)

  it("reads lines like io, with and without the newline", function()
    for _, part in ipairs { "one\ntw", "o\n", "\nthr", "ee" } do assert(db:append_stream("s", part)) end
    local r = assert(db:open_read("s"))
    assert.are.equal("one", r:read("l"))
    assert.are.equal("two\n", r:read("L"))
    assert.are.equal("", r:read()) -- the default format is a line
    assert.are.equal("three", r:read("*l"))
    assert.is_nil(r:read("l"))
    r:seek(0)
    assert.are.same({ "one", "two", "", "three" }, (function()
      local t = {}
      for line in r:lines() do t[#t + 1] = line end
      return t
    end)())
    r:seek(0)
    local a, b, c = r:read("l", 2, "a")
    assert.are.same({ "one", "tw", "o\n\nthree" }, { a, b, c })
  end)

  it("lines() takes formats", function()
    assert(db:append_stream("s", "abcdefg"))
    local r = assert(db:open_read("s"))
    local t = {}
    for chunk in r:lines(3) do t[#t + 1] = chunk end
    assert.are.same({ "abc", "def", "g" }, t)
  end)

  it("seeks and tells", function()
    assert(db:append_stream("s", "0123"))
    assert(db:append_stream("s", "456789"))
    local r = assert(db:open_read("s"))
    assert.are.equal(5, r:seek(5))
    assert.are.equal(5, r:tell())
    assert.are.equal("56", r:read(2))
    assert.are.equal(2, r:seek(2))
    assert.are.equal("23456789", r:read("a"))
    assert.are.equal(10, r:seek(10))
    assert.is_nil(r:read(1))
    H.fails("INVALID", r:seek(11))
    H.fails("INVALID", r:seek(-1))
  end)

  it("a reader sees the stream as it was when opened", function()
    assert(db:append_stream("s", "before"))
    local r = assert(db:open_read("s"))
    assert(db:append_stream("s", " after"))
    assert.are.equal(6, r:size())
    assert.are.equal("before", r:read("a"))
    assert.are.equal(12, db:stream_size("s"))
    assert.are.equal("before after", assert(db:open_read("s")):read("a"))
  end)

  it("a missing stream: open_read is NOTFOUND, size 0", function()
    H.fails("NOTFOUND", db:open_read("missing"))
    assert.are.equal(0, db:stream_size("missing"))
  end)

  it("an empty append creates the stream", function()
    assert(db:append_stream("e", ""))
    local r = assert(db:open_read("e"))
    assert.are.equal(0, r:size())
    assert.are.equal("", r:read("a"))
    assert.is_nil(r:read("l"))
    assert.are.equal(1, db:stats().streams)
  end)

  it("is binary safe in keys and bytes", function()
    local bytes = H.bytes(70000, 3)
    assert(db:append_stream("k\0ey", bytes))
    assert(db:append_stream("k\0ey", "\0\0"))
    assert.are.equal(#bytes + 2, db:stream_size("k\0ey"))
    assert.are.equal(0, db:stream_size("k"))
    local r = assert(db:open_read("k\0ey"))
    assert.are.equal(bytes .. "\0\0", r:read("a"))
  end)

  it("stores a 16 MiB append and reads it back in pieces", function()
    local big = H.big_value()
    assert(db:append_stream("big", big))
    assert(db:append_stream("big", "tail"))
    local r = assert(db:open_read("big"))
    local parts = {}
    while true do
      local piece = r:read(1000003)
      if not piece then break end
      parts[#parts + 1] = piece
    end
    assert.is_true(table.concat(parts) == big .. "tail")
    r:seek(#big)
    assert.are.equal("tail", r:read("a"))
  end)

  it("closing a reader is idempotent; a closed reader answers CLOSED", function()
    assert(db:append_stream("s", "x"))
    local r = assert(db:open_read("s"))
    assert.is_true(r:close())
    assert.is_true(r:close())
    H.fails("CLOSED", r:read(1))
    H.fails("CLOSED", r:seek(0))
    H.fails("CLOSED", r:tell())
    H.fails("CLOSED", r:size())
    assert.is_truthy(tostring(r):find("closed"))
  end)

  it("closing the store closes its readers", function()
    assert(db:append_stream("s", "x\ny\n"))
    local r = assert(db:open_read("s"))
    assert.are.equal("x", r:read("l"))
    db:close()
    H.fails("CLOSED", r:read("l"))
    H.raises(function()
      for _ in r:lines() do end
    end, "CLOSED")
    assert.is_true(r:close())
  end)

  it("a reader keeps its store alive", function()
    local function reader_only() -- its store is referenced by the reader alone
      local other = H.open()
      assert(other:append_stream("s", "kept"))
      return assert(other:open_read("s"))
    end
    local r = reader_only()
    collectgarbage()
    collectgarbage()
    assert.are.equal("kept", r:read("a"))
  end)

  it("a reader closes with <close>", function()
    assert(db:append_stream("s", "kept"))
    local env = { db = db }
    if H.lua54([[
      do
        local r2 <close> = assert(db:open_read("s"))
        outer = r2
        assert(r2:read(2) == "ke")
      end
    ]], env) then
      H.fails("CLOSED", env.outer:read(1))
    else
      pending("needs Lua 5.4")
    end
  end)

  it("raises on wrong argument types", function()
    assert(db:append_stream("s", "x"))
    H.raises(function() db:append_stream("s") end)
    H.raises(function() db:append_stream("s", 5) end)
    H.raises(function() db:append_stream(1, "x") end)
    H.raises(function() db:stream_size() end)
    H.raises(function() db:open_read(false) end)
    local r = assert(db:open_read("s"))
    H.raises(function() r:read({}) end)
    H.raises(function() r:read("x") end, "format")
    H.raises(function() r:read(1.5) end)
    H.raises(function() r:read(-1) end)
    H.raises(function() r:seek("start") end)
    H.raises(function() r.read(db, 1) end)
    assert.are.equal(1, db:stream_size("s"))
  end)

  it("a closed store answers CLOSED", function()
    assert(db:append_stream("s", "x"))
    db:close()
    H.fails("CLOSED", db:append_stream("s", "y"))
    H.fails("CLOSED", db:stream_size("s"))
    H.fails("CLOSED", db:open_read("s"))
  end)

  for _, mode in ipairs(H.sync_modes) do
    it("reopen returns the streams as written (sync = " .. mode .. ")", function()
      db:close()
      local dir
      db, dir = H.open({ sync = mode }, "stream-" .. mode)
      local expect = {}
      for i = 1, 200 do
        local key = "stream" .. (i % 5)
        local part = H.bytes(i * 13, i)
        assert(db:append_stream(key, part))
        expect[key] = (expect[key] or "") .. part
      end
      assert(db:append_stream("lines", "a\nb\n"))
      expect.lines = "a\nb\n"
      assert.is_true(db:close())
      db = H.reopen(dir, { sync = mode })
      for key, bytes in pairs(expect) do
        assert.are.equal(#bytes, db:stream_size(key))
        local r = assert(db:open_read(key))
        assert.is_true(r:read("a") == bytes, key)
        r:close()
      end
      assert.are.equal(6, db:stats().streams)
    end)
  end
end)
