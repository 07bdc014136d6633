#!/usr/bin/env bash
# deps.sh: installs the Debian packages memmapfs needs to build and test,
# skipping those already installed.  Usage: scripts/deps.sh [extra-package...]
set -euo pipefail

pkgs=(build-essential cmake pkg-config libxxhash-dev libsodium-dev libzstd-dev libcmocka-dev
      libutf8proc-dev libstemmer-dev
      liblua5.4-dev lua5.4 lua-busted
      lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev lua-check
      clang libclang-rt-14-dev fiu-utils libfiu-dev valgrind
      luarocks
      neovim curl
      "$@")

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Debian has two LuaJIT packages that exclude each other: luajit and luajit2
# (OpenResty's, which libnginx-mod-http-lua needs).  Use whichever is there;
# install luajit2 only when neither is, so nginx's Lua module can sit beside it.
# nginx's Lua module (tests/integration/nginx_test.sh) comes with luajit2:
# beside Debian's luajit it is left out (that test then skips).
if installed luajit2 || installed libluajit2-5.1-dev; then
  pkgs+=(luajit2 libluajit2-5.1-dev nginx libnginx-mod-http-lua)
elif installed luajit || installed libluajit-5.1-dev; then
  pkgs+=(luajit libluajit-5.1-dev)
else
  pkgs+=(luajit2 libluajit2-5.1-dev nginx libnginx-mod-http-lua)
fi

missing=()
for p in "${pkgs[@]}"; do
  installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
