#!/bin/sh
# luarocks_versions.sh ROOT TMPBASE: `luarocks make` for Lua 5.4 and then
# for Lua 5.1 in the same checkout (one build directory, as in a user's
# checkout) into two trees: each tree's module must be built for its own
# Lua and work there.  The 5.1 build is made with MMFS_SODIUM=no: the rock
# needs no libsodium (BLAKE2b is then refused as INVALID), while the 5.4
# one finds it.  Exit 77 (a skip) without luarocks or lua5.1.
set -eu
root=$1
base=${2:-${TMPDIR:-/tmp}}

for p in luarocks lua5.1 lua5.4; do
  command -v $p >/dev/null 2>&1 || { echo "$p is not installed: skipped"; exit 77; }
done
[ -f /usr/include/lua5.1/lua.h ] || { echo "no Lua 5.1 headers: skipped"; exit 77; }

mkdir -p "$base"
tmp=$(mktemp -d "$base/luarocks-versions.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
cd "$root"
export MMFS_ROCK_BUILD="$tmp/build"
luarocks --lua-version=5.4 --tree="$tmp/t54" make rockspec/memmapfs-scm-1.rockspec >"$tmp/log54" 2>&1 ||
  { cat "$tmp/log54"; exit 1; }
MMFS_SODIUM=no luarocks --lua-version=5.1 --tree="$tmp/t51" make rockspec/memmapfs-scm-1.rockspec \
  >"$tmp/log51" 2>&1 || { cat "$tmp/log51"; exit 1; }

if cmp -s "$tmp/t54/lib/lua/5.4/memmapfs/core.so" "$tmp/t51/lib/lua/5.1/memmapfs/core.so"; then
  echo "the 5.1 tree got the 5.4 module"
  exit 1
fi

# VER TREE WANT_BLAKE2B: the tree's module in a Lua that sees only it.
run() {
  v=$1 tree=$2
  lpath="$tree/share/lua/$v/?.lua;$tree/share/lua/$v/?/init.lua"
  cpath="$tree/lib/lua/$v/?.so"
  env -u LUA_INIT LUA_PATH="$lpath" LUA_CPATH="$cpath" LUA_PATH_5_4="$lpath" LUA_CPATH_5_4="$cpath" \
    STORE="$tmp/store$v" WANT="$3" "lua$v" -e '
    local memmapfs = require "memmapfs"
    local db = assert(memmapfs.open(os.getenv("STORE")))
    assert(db:set_kv("k", _VERSION))
    assert(db:append_memory("built for " .. _VERSION, { "v" }))
    assert(db:close())
    db = assert(memmapfs.open(os.getenv("STORE")))
    assert(db:get_kv("k") == _VERSION)
    assert(#db:search_memory("built") == 1)
    assert(db:close())
    local b, msg, code = memmapfs.open(os.getenv("STORE") .. "-b2", { checksum = "blake2b" })
    if os.getenv("WANT") == "yes" then
      assert(b, msg)
      assert(b:close())
    else
      assert(not b and code == "INVALID", "blake2b without libsodium: " .. tostring(code))
    end
    io.write("ok ", _VERSION, "\n")'
}
run 5.4 "$tmp/t54" yes
run 5.1 "$tmp/t51" no
