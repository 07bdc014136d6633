#!/bin/sh
# neovim_test.sh ROOT BUILD TMPBASE: examples/neovim (memchat) inside
# Debian's `nvim --headless`, as a user would load it.
#
# neovim_driver.lua runs in the editor: it keeps a chat and a note in the
# project's store, searches them with :MemSearch, then lets another
# process (neovim_writer.lua under lua5.4) add answers and update the
# state, which must reach the editor through the subscription's
# descriptor in vim.loop; then :MemHistory, and a reopen.  nvim's own
# Lua (LuaJIT on Debian) loads the module built for it.  Exit 77 (a skip
# for ctest) when nvim, or the module for its Lua, is missing.
set -eu
root=$1 build=$2
base=${3:-${TMPDIR:-/tmp}}

skip() { echo "skipped: $*"; exit 77; }
command -v nvim >/dev/null 2>&1 || skip "nvim is not installed (scripts/deps.sh installs it)"
command -v lua5.4 >/dev/null 2>&1 || skip "lua5.4 (the writer's interpreter) is not installed"

mkdir -p "$base"
tmp=$(mktemp -d "$base/neovim.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# The module for the Lua inside nvim: LuaJIT, or PUC Lua 5.1.
nvim_lua=$(timeout 20 nvim --headless -u NONE -i NONE \
  -c 'lua io.stdout:write(jit and "luajit" or _VERSION)' -c 'qall!' 2>/dev/null || true)
case $nvim_lua in
  luajit) cdir=$build/luajit ;;
  "Lua 5.1") cdir=$build/lua51 ;;
  *) skip "nvim runs an unknown Lua ($nvim_lua)" ;;
esac
[ -f "$cdir/memmapfs/core.so" ] || skip "memmapfs.core was not built for nvim's Lua ($nvim_lua)"

# A project (with .git) and a private home for nvim's data.
mkdir -p "$tmp/project/.git" "$tmp/project/src" "$tmp/data" "$tmp/config" "$tmp/state"
writer="LUA_PATH='$root/lua/?.lua;$root/lua/?/init.lua' LUA_CPATH='$build/lua/?.so' \
lua5.4 '$root/tests/integration/neovim_writer.lua'"

# The plugin directory on the runtimepath, as a plugin manager would put it;
# the memmapfs modules on nvim's Lua paths.
status=0
env XDG_DATA_HOME="$tmp/data" XDG_CONFIG_HOME="$tmp/config" XDG_STATE_HOME="$tmp/state" \
  MEMCHAT_PROJECT="$tmp/project" MEMCHAT_WRITER="$writer" \
  LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" LUA_CPATH="$cdir/?.so;;" \
  timeout 50 nvim --headless -u NONE -i NONE -n \
    --cmd "set runtimepath^=$root/examples/neovim" \
    --cmd "runtime plugin/memchat.lua" \
    -c "luafile $root/tests/integration/neovim_driver.lua" </dev/null || status=$?
if [ $status -ne 0 ]; then
  echo "FAIL: nvim exited with $status"
  exit 1
fi
