-- memchat's commands; the store opens on require("memchat").setup().
-- See docs/neovim.md.
if vim.g.loaded_memchat then return end
vim.g.loaded_memchat = true

local function memchat() return require("memchat") end

vim.api.nvim_create_user_command("MemSearch", function(o) memchat().search_command(o.args) end,
  { nargs = "+", desc = "memchat: search the project's chat and notes" })
vim.api.nvim_create_user_command("MemNote", function(o) memchat().note_command(o.args) end,
  { nargs = "+", desc = "memchat: add a note to the project" })
vim.api.nvim_create_user_command("MemHistory", function(o) memchat().history_command(o.args) end,
  { nargs = "?", desc = "memchat: the last chat turns (default 20)" })

vim.api.nvim_create_autocmd("VimLeavePre", {
  callback = function()
    if package.loaded.memchat then package.loaded.memchat.close() end
  end,
})
