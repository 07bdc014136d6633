#!/bin/sh
# run-busted.sh LUA CPATH_DIR SPEC: runs one busted spec file under the named
# interpreter (lua5.4, lua5.1, luajit...) with the project's Lua files and the
# C module built for that interpreter in CPATH_DIR (holding memmapfs/core.so).
set -eu
lua=$1 cdir=$2 spec=$3
root=$(cd "$(dirname "$0")/.." && pwd)
LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/tests/spec/?.lua;;"
LUA_CPATH="$cdir/?.so;;"
export LUA_PATH LUA_CPATH
cd "$root"
exec busted --lua="$lua" -o utfTerminal "$spec"
