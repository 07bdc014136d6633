#!/bin/sh
# fault-run.sh: runs the fault-injection test under libfiu's POSIX preload,
# as ctest does.
#
#   tests/crash/fault-run.sh BUILD-DIR [fault_test flags: --soak, --rounds N, --seed N]
#
# Needs fiu-run (Debian: fiu-utils) and a build configured with libfiu
# (Debian: libfiu-dev); as root, the script installs both with apt-get.
set -eu
build=${1:?usage: fault-run.sh BUILD-DIR [--soak] [--rounds N] [--seed N]}
shift
if ! command -v fiu-run >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -qq fiu-utils libfiu-dev >/dev/null
    else
        echo "fault-run.sh: fiu-run not found (install fiu-utils and libfiu-dev)" >&2
        exit 1
    fi
fi
bin=$build/tests/crash/fault_test
if [ ! -x "$bin" ]; then
    echo "fault-run.sh: $bin missing: configure and build $build with libfiu-dev installed" >&2
    exit 1
fi
MMFS_TEST_TMP=${MMFS_TEST_TMP:-$build/testtmp}
export MMFS_TEST_TMP
mkdir -p "$MMFS_TEST_TMP"
exec fiu-run -x "$bin" "$@"
