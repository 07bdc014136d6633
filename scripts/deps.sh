#!/usr/bin/env bash
# deps.sh: installs the Debian packages memmapfs needs to build and test,
# skipping those already installed.  Usage: scripts/deps.sh [extra-package...]
set -euo pipefail

pkgs=(build-essential cmake pkg-config libxxhash-dev libsodium-dev libcmocka-dev
      liblua5.4-dev lua5.4 lua-busted
      lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev luajit libluajit-5.1-dev
      clang libclang-rt-14-dev fiu-utils libfiu-dev valgrind
      luarocks
      "$@")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
