-- luacheck configuration (ctest: luacheck, tests/lint/CMakeLists.txt).
-- The library and its callers run on Lua 5.1-5.4 and LuaJIT, hence the
-- default std ("max"); the files below run inside hosts or sandboxes that
-- provide (or take away) globals, and say so here instead of in the code.

-- Neovim's API table.  Fields of vim.g are set (that is how a plugin
-- publishes a variable); everything else in vim is only read.
stds.nvim = {
  read_globals = {
    vim = { other_fields = true, fields = { g = { other_fields = true, read_only = false } } },
  },
}

-- The policy sandbox (core/src/policy/sandbox.c): Lua 5.4's base library
-- without dofile, loadfile, require, print, coroutine, package, io, debug;
-- os has only time, clock and date.  Checking the example policies
-- against it catches a policy that would fail when installed.
stds.policy = {
  read_globals = {
    "_G", "_VERSION", "assert", "collectgarbage", "error", "getmetatable", "ipairs", "load",
    "next", "pairs", "pcall", "rawequal", "rawget", "rawlen", "rawset", "select",
    "setmetatable", "tonumber", "tostring", "type", "warn", "xpcall",
    string = { fields = { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
                          "match", "pack", "packsize", "rep", "reverse", "sub", "unpack", "upper" } },
    table = { fields = { "concat", "insert", "move", "pack", "remove", "sort", "unpack" } },
    math = { other_fields = true },
    utf8 = { other_fields = true },
    os = { fields = { "clock", "date", "time" } },
  },
}

files["tests/spec"] = { std = "+busted" }
files["tests/ffi"] = { std = "+busted" }
files["examples/neovim"] = { std = "+nvim" }
files["tests/integration/neovim_driver.lua"] = { std = "+nvim" }
files["examples/openresty"] = { std = "+ngx_lua" }
files["examples/policies"] = { std = "policy" }
