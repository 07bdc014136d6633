#!/bin/sh
# run-busted.sh LUA CPATH_DIR SPEC [ffi LIBRARY]: runs one busted spec file
# under the named interpreter (lua5.4, lua5.1, luajit...) with the project's
# Lua files and the C module built for that interpreter in CPATH_DIR
# (holding memmapfs/core.so).  Specs that spawn a child interpreter use the
# same one: MMFS_TEST_LUA names it and MMFS_TEST_CPATH is its module
# directory.
#
# With "ffi LIBRARY" (LuaJIT only), require "memmapfs" gives the FFI
# binding memmapfs.ffi over the shared library LIBRARY instead, in the
# specs and in every child interpreter they spawn (LUA_INIT preloads it);
# helpers.lua's H.binding is then "ffi".
set -eu
lua=$1 cdir=$2 spec=$3
root=$(cd "$(dirname "$0")/.." && pwd)
LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/tests/spec/?.lua;;"
LUA_CPATH="$cdir/?.so;;"
MMFS_TEST_LUA=$lua
MMFS_TEST_CPATH=$cdir
export LUA_PATH LUA_CPATH MMFS_TEST_LUA MMFS_TEST_CPATH
if [ "${4:-}" = ffi ]; then
  MMFS_TEST_BINDING=ffi
  MMFS_LIBRARY=$5
  LUA_INIT='package.preload["memmapfs"] = function() return require "memmapfs.ffi" end'
  export MMFS_TEST_BINDING MMFS_LIBRARY LUA_INIT
fi
cd "$root"
exec busted --lua="$lua" -o utfTerminal "$spec"
