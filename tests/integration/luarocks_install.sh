#!/bin/sh
# luarocks_install.sh ROOT TMPBASE: `luarocks make` of the rockspec into a
# temporary tree, then a fresh lua5.4 that sees only that tree requires
# memmapfs, writes, reads back, runs a policy, reopens.  Exit 77 (a skip
# for ctest) when luarocks is not installed.
set -eu
root=$1
base=${2:-${TMPDIR:-/tmp}}

if ! command -v luarocks >/dev/null 2>&1; then
  echo "luarocks is not installed (scripts/deps.sh installs it): skipped"
  exit 77
fi

mkdir -p "$base"
tmp=$(mktemp -d "$base/luarocks.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
tree=$tmp/tree

cd "$root"
# The module is built in the scratch directory, not in the source tree.
MMFS_ROCK_BUILD=$tmp/build luarocks --lua-version=5.4 --tree="$tree" \
  make rockspec/memmapfs-scm-1.rockspec

test -f "$tree/lib/lua/5.4/memmapfs/core.so"
test -f "$tree/share/lua/5.4/memmapfs/init.lua"
test -f "$tree/share/lua/5.4/memmapfs/policy.lua"

# Only the tree on the paths: no ";;", so no default or project paths.
lpath="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua"
cpath="$tree/lib/lua/5.4/?.so"
out=$(cd "$tmp" && env -u LUA_INIT -u LUA_INIT_5_4 LUA_PATH="$lpath" LUA_PATH_5_4="$lpath" \
  LUA_CPATH="$cpath" LUA_CPATH_5_4="$cpath" STORE="$tmp/store" TREE="$tree" lua5.4 -e '
  local tree, store = os.getenv("TREE"), os.getenv("STORE")
  local memmapfs = require "memmapfs"
  local function from_tree(name, path)
    local file = assert(package.searchpath(name, path))
    assert(file:sub(1, #tree) == tree, name .. " loaded from " .. file)
  end
  from_tree("memmapfs", package.path)
  from_tree("memmapfs.core", package.cpath)
  from_tree("memmapfs.policy", package.path)
  assert(memmapfs.version == "0.1.0")

  local db = assert(memmapfs.open(store))
  assert(db:set_kv("greeting", "hello from the rock"))
  local id = assert(db:append_memory("installed with luarocks", { "rock" }))
  assert(db:set_policy("return { hooks = { set_kv = function(cmd) cmd.value = cmd.value:upper() end } }"))
  assert(db:set_kv("shout", "policy runs"))
  assert(db:close())

  db = assert(memmapfs.open(store))
  assert(db:get_kv("greeting") == "hello from the rock")
  assert(db:get_kv("shout") == "POLICY RUNS")
  assert(db:search_memory("luarocks")[1].id == id)
  local _, msg, code = db:set_policy("return {")
  assert(code == "INVALID", tostring(msg))
  assert(db:close())
  io.write("ok ", memmapfs.version, "\n")
')
echo "$out"
test "$out" = "ok 0.1.0"
