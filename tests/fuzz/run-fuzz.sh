#!/bin/sh
# run-fuzz.sh: builds the libFuzzer target fuzz_recover without CMake and
# runs it for longer than the suite's 60 s.
#
#   tests/fuzz/run-fuzz.sh [SECONDS] [extra libFuzzer flags...]
#
# TARGET=query fuzzes the query language instead (fuzz_query.c, its seeds
# in tests/fuzz/query_seeds/ and the dictionary query.dict).
#
# SECONDS defaults to 600.  Output (binary, seed corpus, the growing
# corpus, crash inputs) goes to $MMFS_FUZZ_OUT, default build-fuzz/ at the
# top of the source tree.  JOBS=N runs N fuzzing processes (-fork=N) that
# keep going after a crash or an out-of-memory input, collecting them all.
# Needs clang with libFuzzer (Debian: clang, libclang-rt-NN-dev); as root,
# the script installs them with apt-get when they are missing.  Replay a
# crash input with:  $MMFS_FUZZ_OUT/fuzz_recover CRASH-FILE
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
out=${MMFS_FUZZ_OUT:-$src/build-fuzz}
secs=${1:-600}
[ $# -gt 0 ] && shift
jobs=${JOBS:-1}

find_clang() {
    for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
        if command -v "$c" >/dev/null 2>&1; then echo "$c"; return 0; fi
    done
    return 1
}

probe() { # 0 when $1 links a libFuzzer target
    printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$out/probe.c"
    "$1" -fsanitize=fuzzer,address,undefined "$out/probe.c" -o "$out/probe" >/dev/null 2>&1
}

mkdir -p "$out"
CC=$(find_clang || true)
if [ -z "$CC" ] || ! probe "$CC"; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq clang >/dev/null
        CC=$(find_clang)
        if ! probe "$CC"; then
            major=$("$CC" -dumpversion | cut -d. -f1)
            apt-get install -y -qq "libclang-rt-$major-dev" >/dev/null
        fi
    fi
    CC=$(find_clang || true)
    if [ -z "$CC" ] || ! probe "$CC"; then
        echo "run-fuzz.sh: no clang with libFuzzer (install clang and libclang-rt-NN-dev)" >&2
        exit 1
    fi
fi

defs=""
libs="$(pkg-config --libs libxxhash libutf8proc) -lstemmer"
cflags="$(pkg-config --cflags libxxhash)"
if pkg-config --exists libsodium; then
    defs="-DMMFS_HAVE_SODIUM=1"
    libs="$libs $(pkg-config --libs libsodium)"
    cflags="$cflags $(pkg-config --cflags libsodium)"
fi
core=$(ls "$src"/core/src/*.c "$src"/core/src/*/*.c 2>/dev/null | grep -v /policy/)
incs="-I$src/core/include -I$src/core/src"
for d in "$src"/core/src/*/; do incs="$incs -I$d"; done

if [ "${TARGET:-recover}" = query ]; then
    echo "run-fuzz.sh: building fuzz_query with $CC"
    # shellcheck disable=SC2086
    "$CC" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined $defs $cflags \
        $incs \
        "$src/tests/fuzz/fuzz_query.c" $core $libs -lpthread -lm -o "$out/fuzz_query"
    mkdir -p "$out/corpus_query"
    set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
        -dict="$src/tests/fuzz/query.dict" -artifact_prefix="$out/query-" "$@"
    if [ "$jobs" -gt 1 ]; then
        set -- -fork="$jobs" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 "$@"
    fi
    echo "run-fuzz.sh: fuzzing queries for $secs s; crash inputs go to $out/query-*"
    exec "$out/fuzz_query" "$@" "$out/corpus_query" "$src/tests/fuzz/query_seeds"
fi

echo "run-fuzz.sh: building with $CC"
# shellcheck disable=SC2086
"$CC" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined $defs $cflags \
    $incs \
    "$src/tests/fuzz/fuzz_recover.c" "$src/tests/fuzz/fuzz_store.c" $core \
    $libs -lpthread -lm -o "$out/fuzz_recover"
# shellcheck disable=SC2086
"$CC" -std=c11 -D_GNU_SOURCE -O1 $defs $cflags $incs \
    "$src/tests/fuzz/gen_corpus.c" "$src/tests/fuzz/fuzz_store.c" $core \
    $libs -lpthread -lm -o "$out/gen_corpus"

rm -rf "$out/seeds"
"$out/gen_corpus" "$out/seeds"
mkdir -p "$out/corpus"

set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/" "$@"
if [ "$jobs" -gt 1 ]; then
    set -- -fork="$jobs" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 "$@"
fi
echo "run-fuzz.sh: fuzzing for $secs s; crash inputs go to $out/"
exec "$out/fuzz_recover" "$@" "$out/corpus" "$out/seeds"
