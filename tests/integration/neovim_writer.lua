--- neovim_writer.lua STORE TEXT STATE: the agent's side of neovim_test.sh,
-- in a process of its own: adds an assistant turn to the chat history and
-- publishes the agent's new state.
local memmapfs = require "memmapfs"
local store, text, state = arg[1], arg[2], arg[3]
local db = assert(memmapfs.open(store, { create = false }))
assert(db:append_memory(text, { "chat", "role:assistant" }))
assert(db:update_state(state))
assert(db:close())
