#!/usr/bin/env bash
# test-sanitize.sh: the whole suite again under AddressSanitizer and
# UndefinedBehaviorSanitizer (build-asan/).  The busted specs load the
# module into an uninstrumented lua5.4, so the sanitizer runtimes are
# preloaded for them.  Fault injection (libfiu's preload) and the libFuzzer
# run do not mix with the sanitizer runtimes: they run in the main suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
BUILD_DIR=build-asan BUILD_TYPE=Debug scripts/build.sh -DMMFS_SANITIZE=ON
cd build-asan
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1}
export MMFS_TEST_TIME_SCALE=${MMFS_TEST_TIME_SCALE:-10}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --output-on-failure -j2 --timeout 900 -E '^lua|fuzz|fault'
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
  ctest --output-on-failure -j2 --timeout 900 -R '^lua54_'
