-- A policy: a log per intent, kept by the store itself.
--
-- Every put_session whose session has an intent_id adds, in the same commit
-- frame, one line to the stream "intent:<intent_id>":
--
--     <created_at> <session id> <status>
--
-- so the history of an intent can be read back with
-- db:open_read("intent:" .. intent_id), whichever process wrote the
-- sessions.  Sessions must follow the schema below (unknown fields are
-- refused, except that _extra = true lets the agent add its own).
--
-- It runs inside the store's sandboxed Lua state: common subset of Lua 5.1-5.4.

local statuses = { "open", "running", "done", "failed" }

return {
  schemas = {
    session = {
      id = "string",
      intent_id = "string?",
      created_at = "integer",
      payload = "string?",
      status = statuses,
      _extra = true,
    },
  },

  hooks = {
    put_session = function(cmd, tx)
      local s = cmd.session
      if s.intent_id == nil then return end
      -- a status may not go back to "open" once the session ran
      local old = tx:get_session(s.id)
      if old and old.status ~= "open" and s.status == "open" then
        return nil, "session " .. s.id .. " cannot be reopened (it is " .. old.status .. ")"
      end
      tx:append_stream("intent:" .. s.intent_id,
        s.created_at .. " " .. s.id .. " " .. s.status .. "\n")
    end,
  },
}
