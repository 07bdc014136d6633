#!/usr/bin/env bash
# test.sh: every test.  Installs what is missing, builds, runs the C tests and
# the busted specs through ctest (its summary is the last line).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
cd build
ctest --output-on-failure -j2 --timeout 600
