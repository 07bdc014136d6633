#!/bin/sh
# layers_selftest.sh: layers.sh must pass on the tree as it is and fail on
# a copy of it with one upward include put in (a log file including the
# store's db.h, a search file including engine.h, the binding including a
# private header), naming the file.  Run from anywhere:
# layers_selftest.sh [ROOT].
set -eu
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
lint="$root/tests/lint/layers.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A copy of what layers.sh reads.
copy() {
    rm -rf "$tmp/tree"
    mkdir -p "$tmp/tree/core" "$tmp/tree/bindings"
    cp -R "$root/core/src" "$root/core/lua" "$tmp/tree/core/"
    cp -R "$root/bindings/lua" "$tmp/tree/bindings/"
}

copy
if ! sh "$lint" "$tmp/tree" >"$tmp/out" 2>&1; then
    cat "$tmp/out"
    echo "FAIL: layers.sh fails on the tree as it is"
    exit 1
fi

# expect FILE HEADER: layers.sh fails once FILE includes HEADER.
expect() {
    copy
    printf '#include "%s"\n' "$2" >>"$tmp/tree/$1"
    if sh "$lint" "$tmp/tree" >"$tmp/out" 2>&1; then
        cat "$tmp/out"
        echo "FAIL: layers.sh passed with $1 including $2"
        exit 1
    fi
    if ! grep -qF "FAIL: $1 includes $2" "$tmp/out"; then
        cat "$tmp/out"
        echo "FAIL: layers.sh failed without naming $1 including $2"
        exit 1
    fi
    echo "ok: $1 including $2 fails"
}

expect core/src/log/segment.c db.h
expect core/src/log/sync.c db.h
expect core/src/search/index.c engine.h
expect core/src/engine/memory.c db.h
expect bindings/lua/core.c internal.h
echo "layers_selftest: every upward include put in fails"
