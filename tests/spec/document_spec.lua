-- Documents: index, unindex, search.

local H = require "helpers"

local function keys(hits)
  local r = {}
  for i, h in ipairs(hits) do r[i] = h.key end
  return r
end

describe("documents", function()
  local db
  before_each(function() db = H.open() end)
  after_each(function()
    db:close()
    H.cleanup()
  end)

  it("indexes and finds, best first, with scores", function()
    assert.is_true(db:index("long", "gardens and a great many other words that are not about it"))
    assert.is_true(db:index("short", "gardens gardens"))
    assert.is_true(db:index("other", "kitchens"))
    local hits = assert(db:search("gardens"))
    assert.are.same({ "short", "long" }, keys(hits))
    assert.is_number(hits[1].score)
    assert.is_true(hits[1].score >= hits[2].score)
    assert.is_true(hits[2].score > 0)
    assert.are.same({}, db:search("nothing"))
  end)

  it("limits results, 20 by default", function()
    for i = 1, 30 do assert(db:index("d" .. i, "common word " .. i)) end
    assert.are.equal(20, #db:search("common"))
    assert.are.equal(5, #db:search("common", 5))
    assert.are.equal(30, #db:search("common", 100))
  end)

  it("a new text replaces the old one", function()
    assert(db:index("k", "apples"))
    assert(db:index("k", "oranges"))
    assert.are.same({}, db:search("apples"))
    assert.are.same({ "k" }, keys(db:search("oranges")))
    assert.are.equal(1, db:stats().documents)
  end)

  it("unindex: true once, then false", function()
    assert(db:index("k", "pears"))
    assert.is_true(db:unindex("k"))
    assert.is_false(db:unindex("k"))
    assert.is_false(db:unindex("never"))
    assert.are.same({}, db:search("pears"))
    assert.are.equal(0, db:stats().documents)
  end)

  it("documents are not memories, and memories are not documents", function()
    assert(db:index("doc", "zebra"))
    assert(db:append_memory("zebra memory", {}))
    assert.are.same({ "doc" }, keys(db:search("zebra")))
    assert.are.same({ "zebra memory" }, db:query_memory("zebra"))
  end)

  it("speaks the query language", function()
    assert(db:index("a", "morning coffee with milk"))
    assert(db:index("b", "decaf coffee at night"))
    assert(db:index("c", "black tea"))
    local function q(s) return H.sorted(keys(assert(db:search(s)))) end
    assert.are.same({ "a", "b", "c" }, q("coffee tea"))
    assert.are.same({ "a" }, q("coffee -decaf"))
    assert.are.same({ "b" }, q("+decaf coffee"))
    assert.are.same({ "a" }, q('"morning coffee"'))
    assert.are.same({ "b" }, q("dec*"))
    assert.are.same({ "b", "c" }, q("(black OR night) AND (tea OR coffee)"))
    local msg = H.fails("INVALID", db:search('"open'))
    assert.is_truthy(msg:find("%d"), msg)
  end)

  it("binary keys and unicode text", function()
    assert(db:index("k\0\255", "naïve résumé über Straße"))
    assert(db:index("jp", "日本語 の テキスト"))
    assert.are.same({ "k\0\255" }, keys(db:search("résumé")))
    assert.are.same({ "k\0\255" }, keys(db:search("ÜBER")))
    assert.are.same({ "jp" }, keys(db:search("日本語")))
  end)

  it("uses the store's tokenizer: stemming, CJK bigrams, normalisation", function()
    assert(db:index("run", "She was running home"))
    assert(db:index("tea", "我喜欢喝绿茶"))
    assert(db:index("cafe", "CAFE\204\129 noir")) -- decomposed é
    assert.are.same({ "run" }, keys(db:search("runs")))
    assert.are.same({ "tea" }, keys(db:search("绿茶")))
    assert.are.same({ "tea" }, keys(db:search('"喜欢喝"')))
    assert.are.same({ "cafe" }, keys(db:search('"café noir"')))
  end)

  it("an unknown option of search is INVALID, naming it", function()
    local msg = H.fails("INVALID", db:search("x", { limt = 5 }))
    assert.is_truthy(msg:find("limt", 1, true), msg)
  end)

  it("a negative limit is INVALID", function()
    H.fails("INVALID", db:search("x", -1))
  end)

  it("raises on wrong argument types", function()
    H.raises(function() db:index("k") end)
    H.raises(function() db:index(1, "text") end)
    H.raises(function() db:index("k", {}) end)
    H.raises(function() db:unindex() end)
    H.raises(function() db:search() end)
    H.raises(function() db:search(5) end)
    H.raises(function() db:search("x", "10") end)
    assert.are.equal(0, db:stats().documents)
  end)

  it("a closed store answers CLOSED", function()
    assert(db:index("k", "text"))
    db:close()
    H.fails("CLOSED", db:index("k", "text"))
    H.fails("CLOSED", db:unindex("k"))
    H.fails("CLOSED", db:search("text"))
  end)

  for _, mode in ipairs(H.sync_modes) do
    it("reopen finds what was indexed (sync = " .. mode .. ")", function()
      db:close()
      local dir
      db, dir = H.open({ sync = mode }, "doc-" .. mode)
      for i = 1, 60 do
        assert(db:index("doc" .. i, ("document %d %s"):format(i, i % 3 == 0 and "fizz" or "plain")))
      end
      assert(db:index("doc3", "rewritten"))
      assert(db:unindex("doc6"))
      local before = keys(db:search("fizz", 100))
      assert.is_true(db:close())
      db = H.reopen(dir, { sync = mode })
      assert.are.equal(18, #before)
      assert.are.same(H.sorted(before), H.sorted(keys(db:search("fizz", 100))))
      assert.are.same({ "doc3" }, keys(db:search("rewritten")))
      assert.are.equal(59, db:stats().documents)
    end)
  end
end)
