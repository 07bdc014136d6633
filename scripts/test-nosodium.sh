#!/usr/bin/env bash
# test-nosodium.sh: the build without libsodium (-DMMFS_WITH_SODIUM=OFF,
# no BLAKE2b checksums) and without libzstd (-DMMFS_WITH_ZSTD=OFF, no
# compress = "zstd") into build-nosodium/, then its quick tests: the C
# unit tests and the Lua 5.4 specs (those that need BLAKE2b or zstd check
# that it is refused).  CI runs it once; it takes well under a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BUILD_DIR=build-nosodium scripts/build.sh -DMMFS_WITH_SODIUM=OFF -DMMFS_WITH_ZSTD=OFF -DMMFS_BUILD_LUA_ALL=OFF
cd build-nosodium
ctest --output-on-failure -j2 --timeout 600 -R '^(c_test_|lua54_)'
