#!/bin/sh
# luarocks_pack.sh ROOT TMPBASE: luarocks lint of the rockspec; then
# rockspec/pack.sh makes a .src.rock of the checkout, and `luarocks build`
# of that rock for Lua 5.3 goes into a temporary tree, with the network
# cut off (unshare -n) where the system allows it; the module then works
# in a lua5.3 that sees only that tree.  Exit 77 (a skip) without
# luarocks, Lua 5.3 or a git checkout.
set -eu
root=$1
base=${2:-${TMPDIR:-/tmp}}
for p in luarocks lua5.3 git; do
  command -v $p >/dev/null 2>&1 || { echo "$p is not installed: skipped"; exit 77; }
done
[ -f /usr/include/lua5.3/lua.h ] || { echo "no Lua 5.3 headers: skipped"; exit 77; }
# pack.sh packs what git tracks: a source tree that is not a checkout
# (an exported tarball) has nothing for it to go by.
git -C "$root" rev-parse --git-dir >/dev/null 2>&1 || { echo "not a git checkout: skipped"; exit 77; }

# The rockspec passes luarocks' own checks (license and all).
luarocks lint "$root/rockspec/memmapfs-scm-1.rockspec"

mkdir -p "$base"
tmp=$(mktemp -d "$base/luarocks-pack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
TMPDIR=$tmp "$root/rockspec/pack.sh" "$tmp" >/dev/null
rock=$tmp/memmapfs-scm-1.src.rock
test -f "$rock"

offline=""
if unshare -n true 2>/dev/null; then offline="unshare -n"; else echo "(unshare -n not permitted: built with the network up)"; fi
cd "$tmp"
MMFS_ROCK_BUILD="$tmp/build" $offline luarocks --lua-version=5.3 --tree="$tmp/tree" build "$rock" \
  >"$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }

lpath="$tmp/tree/share/lua/5.3/?.lua;$tmp/tree/share/lua/5.3/?/init.lua"
cpath="$tmp/tree/lib/lua/5.3/?.so"
env -u LUA_INIT LUA_PATH="$lpath" LUA_CPATH="$cpath" STORE="$tmp/store" lua5.3 -e '
  local memmapfs = require "memmapfs"
  local db = assert(memmapfs.open(os.getenv("STORE")))
  assert(db:set_kv("from", "a src.rock"))
  assert(db:close())
  db = assert(memmapfs.open(os.getenv("STORE")))
  assert(db:get_kv("from") == "a src.rock")
  assert(db:close())
  io.write("ok ", _VERSION, " from ", (package.searchpath("memmapfs.core", package.cpath)):match("[^/]+/[^/]+$"), "\n")'
