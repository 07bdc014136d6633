-- A policy: private memories stay out of search.
--
-- Memories tagged "private" go to the route "private", whose index = false
-- keeps them out of search_memory and query_memory; get_memory and
-- list_memories still return them.  Memories tagged "secret" are refused
-- outright.  Everything else goes to "default".
--
-- Install it with memmapfs.open(dir, { policy = "examples/policies/private-routing.lua" })
-- or db:set_policy(source).  It runs inside the store's sandboxed Lua state,
-- so it is written in the common subset of Lua 5.1-5.4.

return {
  route = function(mem)
    if mem.tags.secret then
      return nil, "secrets are not stored (tag: secret)"
    end
    if mem.tags.private then
      return "private"
    end
    return "default"
  end,

  routes = {
    default = {},
    private = { index = false },
  },
}
