#!/bin/sh
# install_test.sh SOURCE BUILD TMPBASE: `cmake --install` of the build
# into a temporary prefix, then the install used as a user would:
#  - a C program through pkg-config, linked to the shared library;
#  - the same program linked fully static from what the .pc says
#    (pkg-config --static: Libs.private, Requires.private);
#  - a CMake project through find_package(memmapfs): memmapfs::memmapfs
#    and memmapfs::memmapfs_static;
#  - the Lua module from the prefix's share/lua and lib/lua;
#  - the mmfs binary from the prefix's bin/.
# Every program runs against a fresh store and must print "ok 0.1.0".
set -eu
src=$1
build=$2
base=$3

mkdir -p "$base"
tmp=$(mktemp -d "$base/install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null

libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build/CMakeCache.txt")
want=$(sed -n 's/^#define MMFS_VERSION "\(.*\)"$/\1/p' "$src/core/include/memmapfs.h")
for f in include/memmapfs.h "$libdir/libmemmapfs.a" "$libdir/libmemmapfs.so" \
         "$libdir/pkgconfig/memmapfs.pc" "$libdir/cmake/memmapfs/memmapfsConfig.cmake" bin/mmfs \
         share/lua/5.4/memmapfs/init.lua share/lua/5.4/memmapfs/policy.lua \
         "$libdir/lua/5.4/memmapfs/core.so"; do
  test -e "$prefix/$f" || { echo "not installed: $f"; exit 1; }
done

check() { # NAME OUTPUT
  if [ "$2" != "ok $want" ]; then echo "$1: printed '$2', not 'ok $want'"; exit 1; fi
  echo "$1: $2"
}

# pkg-config, shared.
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig" PREFIX="$prefix"
test "$(pkg-config --modversion memmapfs)" = "$want"
cc -o "$tmp/pc_shared" "$src/tests/integration/install/consumer.c" $(pkg-config --cflags --libs memmapfs)
# It must run on the installed library, not the build tree's.
LD_LIBRARY_PATH="$prefix/$libdir" ldd "$tmp/pc_shared" | grep -q "$prefix/$libdir/libmemmapfs.so" ||
  { echo "pc_shared does not load the installed library"; exit 1; }
check pkg-config-shared "$(LD_LIBRARY_PATH="$prefix/$libdir" "$tmp/pc_shared" "$tmp/s1")"

# pkg-config, fully static: every library the engine needs must be named.
cc -static -o "$tmp/pc_static" "$src/tests/integration/install/consumer.c" \
  $(pkg-config --static --cflags --libs memmapfs)
if ldd "$tmp/pc_static" >/dev/null 2>&1; then echo "pc_static is not static"; exit 1; fi
check pkg-config-static "$("$tmp/pc_static" "$tmp/s2")"

# find_package, shared and static.
cmake -S "$src/tests/integration/install" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/consumer" >/dev/null
check find_package-shared "$(LD_LIBRARY_PATH="$prefix/$libdir" "$tmp/consumer/consumer_shared" "$tmp/s3")"
check find_package-static "$("$tmp/consumer/consumer_static" "$tmp/s4")"

# The Lua module, from the prefix alone (no ";;": no default paths).
lpath="$prefix/share/lua/5.4/?.lua;$prefix/share/lua/5.4/?/init.lua"
cpath="$prefix/$libdir/lua/5.4/?.so"
out=$(env -u LUA_INIT -u LUA_INIT_5_4 STORE="$tmp/s5" LUA_PATH_5_4="$lpath" LUA_CPATH_5_4="$cpath" \
  LUA_PATH="$lpath" LUA_CPATH="$cpath" lua5.4 -e '
  local m = require "memmapfs"
  local file = assert(package.searchpath("memmapfs.core", package.cpath))
  assert(file:find(os.getenv("PREFIX"), 1, true) == 1, "memmapfs.core from " .. file)
  local db = assert(m.open(os.getenv("STORE")))
  assert(db:set_kv("k", "lua"))
  assert(db:get_kv("k") == "lua")
  assert(db:close())
  io.write("ok ", m.version)')
check lua5.4 "$out"

# The command-line tool.
"$prefix/bin/mmfs" set "$tmp/s6" k installed --create
test "$("$prefix/bin/mmfs" get "$tmp/s6" k)" = installed
check mmfs "$("$prefix/bin/mmfs" --version | sed 's/^mmfs /ok /')"
