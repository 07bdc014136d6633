-- Memories: append_memory, get_memory, search_memory, query_memory,
-- list_memories, delete_memory.

local H = require "helpers"
local memmapfs_open = require("memmapfs").open

local function texts(list)
  local r = {}
  for i, m in ipairs(list) do r[i] = m.text end
  return r
end

describe("memories", function()
  local db
  before_each(function() db = H.open() end)
  after_each(function()
    db:close()
    H.cleanup()
  end)

  it("append returns dense increasing integer ids", function()
    local a = assert(db:append_memory("first", { "x" }))
    local b = assert(db:append_memory("second", {}))
    local c = assert(db:append_memory("third"))
    if math.type then assert.are.equal("integer", math.type(a)) end
    assert.are.equal(a + 1, b)
    assert.are.equal(b + 1, c)
  end)

  it("get_memory returns every field as written", function()
    local id = assert(db:append_memory("the text", { "work", "speaker:Ann", "Work" },
      { created_at = 1600000000, route = "episodic" }))
    assert.are.same({ id = id, text = "the text", tags = { "work", "speaker:Ann", "Work" },
      created_at = 1600000000, route = "episodic" }, db:get_memory(id))
  end)

  it("created_at defaults to now", function()
    local before = os.time()
    local id = assert(db:append_memory("now", {}))
    local m = db:get_memory(id)
    assert.is_true(m.created_at >= before - 1 and m.created_at <= os.time() + 1,
      tostring(m.created_at))
  end)

  it("get_memory of a missing id gives nil alone", function()
    local id = assert(db:append_memory("only", {}))
    assert.are.equal(1, select("#", db:get_memory(id + 100)))
    assert.is_nil(db:get_memory(id + 100))
    assert.is_nil(db:get_memory(0))
    assert.is_nil(db:get_memory(-1))
  end)

  it("keeps binary text and tags exactly", function()
    local text = "zero\0byte and \255\254 high bytes"
    local id = assert(db:append_memory(text, { "t\0ag", "" }))
    local m = db:get_memory(id)
    assert.are.equal(text, m.text)
    assert.are.same({ "t\0ag", "" }, m.tags)
  end)

  it("search_memory ranks best first with scores and all fields", function()
    local weak = assert(db:append_memory("coffee and a very long list of other words that dilute it",
      { "drink" }, { created_at = 1000 }))
    local strong = assert(db:append_memory("coffee coffee coffee", { "drink", "hot" },
      { created_at = 2000 }))
    assert(db:append_memory("tea only", { "drink" }))
    local hits = assert(db:search_memory("coffee"))
    assert.are.equal(2, #hits)
    assert.are.equal(strong, hits[1].id)
    assert.are.equal(weak, hits[2].id)
    assert.is_true(hits[1].score >= hits[2].score)
    assert.is_true(hits[2].score > 0)
    assert.are.equal("coffee coffee coffee", hits[1].text)
    assert.are.same({ "drink", "hot" }, hits[1].tags)
    assert.are.equal(2000, hits[1].created_at)
    assert.is_string(hits[1].route)
  end)

  it("query_memory returns only the texts, best first", function()
    assert(db:append_memory("green tea in the morning", {}))
    assert(db:append_memory("tea tea tea", {}))
    assert(db:append_memory("coffee", {}))
    assert.are.same({ "tea tea tea", "green tea in the morning" }, db:query_memory("tea"))
    assert.are.same({}, db:query_memory("nothingmatches"))
  end)

  it("filters by tags (all must match), route, since, before and limit", function()
    assert(db:append_memory("note alpha", { "a", "b" }, { created_at = 100 }))
    assert(db:append_memory("note beta", { "a" }, { created_at = 200, route = "episodic" }))
    assert(db:append_memory("note gamma", { "b" }, { created_at = 300 }))
    assert.are.same({ "note alpha" }, texts(db:search_memory("note", { tags = { "a", "b" } })))
    assert.are.same({ "note alpha", "note beta" },
      H.sorted(texts(db:search_memory("note", { tags = { "a" } }))))
    assert.are.same({ "note beta" }, texts(db:search_memory("note", { route = "episodic" })))
    assert.are.same({ "note beta", "note gamma" },
      H.sorted(texts(db:search_memory("note", { since = 200 }))))
    assert.are.same({ "note alpha", "note beta" },
      H.sorted(texts(db:search_memory("note", { before = 300 }))))
    assert.are.same({ "note beta" }, texts(db:search_memory("note", { since = 200, before = 300 })))
    assert.are.equal(2, #db:search_memory("note", { limit = 2 }))
    assert.are.same({ "note beta" }, db:query_memory("note", { route = "episodic" }))
  end)

  it("has a default limit of 20", function()
    for i = 1, 25 do assert(db:append_memory("many " .. i, {})) end
    assert.are.equal(20, #db:search_memory("many"))
    assert.are.equal(25, #db:search_memory("many", { limit = 100 }))
  end)

  it("list_memories is newest first, with offset, limit and filters", function()
    local a = assert(db:append_memory("a", { "x" }, { created_at = 10 }))
    local b = assert(db:append_memory("b", {}, { created_at = 30 }))
    local c = assert(db:append_memory("c", { "x" }, { created_at = 20 }))
    local d = assert(db:append_memory("d", {}, { created_at = 30 })) -- tie: later id first
    local function ids(list)
      local r = {}
      for i, m in ipairs(list) do r[i] = m.id end
      return r
    end
    assert.are.same({ d, b, c, a }, ids(db:list_memories()))
    assert.are.same({ d, b, c, a }, ids(db:list_memories({})))
    assert.are.same({ b, c }, ids(db:list_memories({ offset = 1, limit = 2 })))
    assert.are.same({ c, a }, ids(db:list_memories({ tags = { "x" } })))
    assert.are.same({ c }, ids(db:list_memories({ since = 15, before = 30 })))
    assert.is_nil(db:list_memories()[1].score)
  end)

  it("delete_memory forgets: true once, then false", function()
    local id = assert(db:append_memory("forget me please", { "tmp" }))
    local keep = assert(db:append_memory("keep me please", { "tmp" }))
    assert.is_true(db:delete_memory(id))
    assert.is_false(db:delete_memory(id))
    assert.is_false(db:delete_memory(keep + 10))
    assert.is_nil(db:get_memory(id))
    assert.are.same({ "keep me please" }, db:query_memory("please"))
    assert.are.same({ "keep me please" }, texts(db:list_memories()))
    assert.are.equal(1, db:stats().memories)
  end)

  describe("query language", function()
    before_each(function()
      assert(db:append_memory("morning coffee with milk", { "work" }, { route = "episodic" }))
      assert(db:append_memory("decaf coffee at night", { "home" }))
      assert(db:append_memory("coffee morning routine", { "work" }))
      assert(db:append_memory("black tea in the morning", { "home" }))
      assert(db:append_memory("caffeine facts", {}))
    end)

    local function q(query) return H.sorted(assert(db:query_memory(query))) end

    it("OR by default", function()
      assert.are.equal(5, #q("coffee tea caffeine"))
    end)

    it("+ and AND require a term", function()
      assert.are.same({ "black tea in the morning" }, q("+tea morning"))
      assert.are.same({ "black tea in the morning" }, q("tea AND morning"))
    end)

    it("- and NOT exclude", function()
      assert.are.same({ "coffee morning routine", "morning coffee with milk" }, q("coffee -decaf"))
      assert.are.same({ "coffee morning routine", "morning coffee with milk" }, q("coffee NOT decaf"))
    end)

    it("phrases", function()
      assert.are.same({ "morning coffee with milk" }, q('"morning coffee"'))
    end)

    it("prefixes", function()
      assert.are.same({ "caffeine facts" }, q("caf*"))
    end)

    it("grouping", function()
      assert.are.same({ "black tea in the morning", "decaf coffee at night" },
        q("(tea OR decaf) AND (night OR black)"))
    end)

    it("tag: and route: filters", function()
      assert.are.same({ "coffee morning routine", "morning coffee with milk" }, q("coffee tag:work"))
      assert.are.same({ "morning coffee with milk" }, q("coffee route:episodic"))
    end)

    it("malformed queries give INVALID with the position", function()
      local msg = H.fails("INVALID", db:search_memory('"unclosed phrase'))
      assert.is_truthy(msg:find("%d"), msg)
      H.fails("INVALID", db:search_memory("(coffee OR tea"))
    end)
  end)

  it("finds unicode text", function()
    assert(db:append_memory("un café au lait à Paris", {}))
    assert(db:append_memory("東京 タワー の 夜景", {}))
    assert(db:append_memory("Grüße aus München", {}))
    assert.are.same({ "un café au lait à Paris" }, db:query_memory("café"))
    assert.are.same({ "un café au lait à Paris" }, db:query_memory("CAFÉ"))
    assert.are.same({ "東京 タワー の 夜景" }, db:query_memory("東京"))
    assert.are.same({ "Grüße aus München" }, db:query_memory("münchen"))
  end)

  describe("tokenizer", function()
    it("stems English by default and matches composed with decomposed text", function()
      assert(db:append_memory("She was running", {}))
      assert(db:append_memory("cafe\204\129 noir", {})) -- e + combining acute
      assert.are.same({ "She was running" }, db:query_memory("run"))
      assert.are.same({ "She was running" }, db:query_memory('"was runs"'))
      assert.are.same({ "cafe\204\129 noir" }, db:query_memory("CAFÉ"))
    end)

    it("finds CJK words inside longer runs, in phrases too", function()
      assert(db:append_memory("我喜欢喝绿茶", {}))
      assert(db:append_memory("東京に行きました", {}))
      assert(db:append_memory("녹차를 마셨어요", {}))
      assert.are.same({ "我喜欢喝绿茶" }, db:query_memory("绿茶"))
      assert.are.same({ "我喜欢喝绿茶" }, db:query_memory('"喜欢喝"'))
      assert.are.same({ "東京に行きました" }, db:query_memory("東京"))
      assert.are.same({ "녹차를 마셨어요" }, db:query_memory("녹차"))
    end)

    local cases = {
      { "german", "Die Häuser am See", "Haus" },
      { "french", "les chanteuses chantaient", "chanteuse" },
      { "spanish", "cantábamos canciones", "canción" },
      { "russian", "Я читаю книги", "книга" },
      { "english", "the cats were sleeping", "sleeps" },
    }
    for _, c in ipairs(cases) do
      it("stems " .. c[1] .. " with language = \"" .. c[1] .. "\"", function()
        local d = assert(H.open({ language = c[1] }, "lang-" .. c[1]))
        assert(d:append_memory(c[2], {}))
        assert(d:append_memory("nothing related", {}))
        assert.are.same({ c[2] }, d:query_memory(c[3]))
        d:close()
      end)
    end

    it("language is recorded: another one on reopen is INVALID", function()
      local path = H.store_path("lang-rec")
      local d = assert(memmapfs_open(path, { language = "none" }))
      assert(d:append_memory("running", {}))
      assert.are.same({}, d:query_memory("run"))
      d:close()
      local msg = H.fails("INVALID", memmapfs_open(path, { language = "english" }))
      assert.is_truthy(msg:find("none"), msg)
      d = assert(memmapfs_open(path))
      assert.are.same({}, d:query_memory("run"))
      d:close()
      H.fails("INVALID", memmapfs_open(H.store_path("lang-bad"), { language = "klingon" }))
      H.fails("INVALID", memmapfs_open(H.store_path("lang-nul"), { language = "english\0x" }))
      H.raises(function() memmapfs_open(H.store_path("lang-t"), { language = 1 }) end, "language")
    end)
  end)

  it("tags_any: at least one tag, in search_memory and list_memories", function()
    local a = assert(db:append_memory("tea a", { "a" }))
    local b = assert(db:append_memory("tea b", { "b" }))
    assert(db:append_memory("tea c", { "c" }))
    local ids = function(list)
      local r = {}
      for i, m in ipairs(list) do r[i] = m.id end
      table.sort(r)
      return r
    end
    assert.are.same({ a, b }, ids(assert(db:search_memory("tea", { tags_any = { "a", "b", "zz" } }))))
    assert.are.same({ a, b }, ids(assert(db:list_memories({ tags_any = { "b", "a" } }))))
    assert.are.same({ b }, ids(assert(db:list_memories({ tags_any = { "b", "a" }, tags = { "b" } }))))
    assert.are.same({}, ids(assert(db:list_memories({ tags_any = { "zz" } }))))
    assert.are.same({ a, b }, ids(assert(db:search_memory("tea AND (tag:a OR tag:b)"))))
    assert.are.same({ b }, ids(assert(db:search_memory("(tag:b OR tag:c) AND NOT tag:c"))))
    H.raises(function() db:list_memories({ tags_any = "a" }) end, "tags_any")
  end)

  it("an unknown option is INVALID, naming it", function()
    local msg = H.fails("INVALID", db:search_memory("x", { limt = 5 }))
    assert.is_truthy(msg:find("limt", 1, true), msg)
    msg = H.fails("INVALID", db:list_memories({ offest = 1 }))
    assert.is_truthy(msg:find("offest", 1, true), msg)
    H.fails("INVALID", db:search_memory("x", { offset = 1 })) -- list only
    msg = H.fails("INVALID", db:append_memory("t", {}, { routes = "x" }))
    assert.is_truthy(msg:find("routes", 1, true), msg)
    msg = H.fails("INVALID", db:search("x", { limt = 5 }))
    assert.is_truthy(msg:find("limt", 1, true), msg)
    H.fails("INVALID", db:query_memory("x", { [1] = true }))
    assert.are.same({}, db:search("x", { limit = 5 }))
    local ok, err, code = db:batch(function(tx) assert(tx:append_memory("t", {}, { rout = "x" })) end)
    assert.is_nil(ok)
    assert.is_truthy(tostring(err):find("rout", 1, true), tostring(err))
    assert.are.equal(0, db:stats().memories, tostring(code))
  end)

  describe("snippets", function()
    local text = "Alice went running in the park. Later she drank green tea with Bob at home."
    before_each(function() assert(db:append_memory(text, {})) end)

    it("snippet = true marks matched terms with [ and ]", function()
      local hits = assert(db:search_memory("green", { snippet = true }))
      assert.are.equal(1, #hits)
      assert.is_truthy(hits[1].snippet:find("[green]", 1, true), hits[1].snippet)
      assert.is_true(#hits[1].snippet <= 162)
      assert.is_nil(assert(db:search_memory("green"))[1].snippet)
    end)

    it("takes marks and bytes; start, middle and end of the text", function()
      local o = { mark = { "<b>", "</b>" }, bytes = 20 }
      local function snip(q) return assert(db:search_memory(q, { snippet = o }))[1].snippet end
      assert.are.equal("<b>Alice</b> went running", snip("alice"))
      assert.are.equal("drank <b>green</b> tea", snip("green"))
      assert.are.equal("with Bob at <b>home</b>.", snip("home"))
      assert.are.equal("went <b>running</b> in the", snip("run"))
    end)

    it("keeps multi-byte characters whole", function()
      assert(db:append_memory("我喜欢喝绿茶和红茶，还有咖啡", {}))
      local hits = assert(db:search_memory("绿茶", { snippet = { bytes = 12 } }))
      assert.are.equal(1, #hits)
      assert.are.equal("喝[绿茶]和", hits[1].snippet)
      if utf8 then assert.is_truthy(utf8.len(hits[1].snippet)) end
    end)

    it("rejects bad snippet options", function()
      H.fails("INVALID", db:search_memory("x", { snippet = { byte = 10 } }))
      H.fails("INVALID", db:search_memory("x", { snippet = { bytes = 0 } }))
      H.fails("INVALID", db:search_memory("x", { snippet = { mark = { "<" } } }))
      H.raises(function() db:search_memory("x", { snippet = "yes" }) end, "snippet")
    end)
  end)

  it("bad option values give INVALID", function()
    H.fails("INVALID", db:search_memory("x", { limit = -1 }))
    H.fails("INVALID", db:list_memories({ offset = -1 }))
  end)

  it("raises on wrong argument types", function()
    H.raises(function() db:append_memory() end)
    H.raises(function() db:append_memory(42, {}) end)
    H.raises(function() db:append_memory("t", "tag") end)
    H.raises(function() db:append_memory("t", { 1 }) end, "tags%[1%]")
    H.raises(function() db:append_memory("t", {}, { created_at = "now" }) end, "created_at")
    H.raises(function() db:append_memory("t", {}, { created_at = 1.5 }) end, "created_at")
    H.raises(function() db:append_memory("t", {}, { route = 1 }) end, "route")
    H.raises(function() db:append_memory("t", {}, "opts") end)
    H.raises(function() db:get_memory("1") end)
    H.raises(function() db:get_memory(1.5) end)
    H.raises(function() db:delete_memory({}) end)
    H.raises(function() db:search_memory() end)
    H.raises(function() db:search_memory("x", { limit = "10" }) end, "limit")
    H.raises(function() db:search_memory("x", { tags = "work" }) end, "tags")
    H.raises(function() db:search_memory("x", { tags = { true } }) end, "tags")
    H.raises(function() db:query_memory(1) end)
    H.raises(function() db:list_memories({ since = "yesterday" }) end, "since")
    H.raises(function() db.append_memory(nil, "t", {}) end)
    assert.are.equal(0, db:stats().memories)
  end)

  it("a closed store answers CLOSED", function()
    local id = assert(db:append_memory("m", {}))
    db:close()
    H.fails("CLOSED", db:append_memory("m", {}))
    H.fails("CLOSED", db:get_memory(id))
    H.fails("CLOSED", db:search_memory("m"))
    H.fails("CLOSED", db:query_memory("m"))
    H.fails("CLOSED", db:list_memories())
    H.fails("CLOSED", db:delete_memory(id))
  end)

  for _, mode in ipairs(H.sync_modes) do
    it("reopen returns the memories as written (sync = " .. mode .. ")", function()
      db:close()
      local path = H.store_path("mem-" .. mode)
      local d1 = H.reopen(path, { sync = mode })
      local written = {}
      for i = 1, 50 do
        local text = ("memory number %d %s"):format(i, i % 2 == 0 and "even" or "odd")
        local id = assert(d1:append_memory(text, { "n" .. i, i % 2 == 0 and "even" or "odd" },
          { created_at = 1000 + i, route = i % 3 == 0 and "third" or nil }))
        written[#written + 1] = id
      end
      assert.is_true(d1:delete_memory(written[10]))
      local before = {}
      for _, id in ipairs(written) do before[id] = d1:get_memory(id) or false end
      local list_before = d1:list_memories({ limit = 100 })
      assert.is_true(d1:close())
      local d2 = H.reopen(path, { sync = mode })
      for _, id in ipairs(written) do
        assert.are.same(before[id] or nil, d2:get_memory(id))
      end
      assert.are.same(list_before, d2:list_memories({ limit = 100 }))
      assert.are.equal(24, #d2:search_memory("even", { limit = 100 }))
      assert.are.equal(49, d2:stats().memories)
      d2:close()
      db = d2
    end)
  end
end)
