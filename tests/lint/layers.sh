#!/bin/sh
# layers.sh: checks that no file of core/src includes a header of a higher
# layer (docs/design.md, "Layers"), and that the Lua binding and the Lua
# glue include no private header.  Run from anywhere: layers.sh [ROOT].
#
# Layers, lowest first: base, log, search, engine, store.  search/ is a
# leaf under engine (it may not include engine.h); the policy VM
# (policy/) is a leaf behind policy.h: its files include base and
# core/lua only, and outside it only store files include policy.h.  A
# file may include headers of its own layer and of lower ones.  Every
# source of core/src lives in a layer folder.
#
# KNOWN lists upward includes not untangled yet; each is reported, and a
# KNOWN entry that no longer occurs fails too, so the list only shrinks.
# It is empty: the log layer works on its own struct (log/log.h's
# mmfs__log), which the store's handle embeds.  layers_selftest.sh checks
# that an upward include fails.
set -eu
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"

KNOWN="
"

rank() {
    case $1 in
    base) echo 0 ;; log) echo 1 ;; search) echo 2 ;; engine) echo 3 ;; store) echo 4 ;;
    policy) echo 9 ;; *) echo -1 ;;
    esac
}

# The layer folder holding header $1 (by name), or nothing.
layer_of() {
    for d in core/src/*/; do
        if [ -f "$d${1##*/}" ]; then
            basename "$d"
            return
        fi
    done
}

fail=0
seen=""
bad() {
    if printf '%s\n' "$KNOWN" | grep -qxF "$1 $2"; then
        echo "known, not untangled yet: $1 includes $2 ($3)"
        seen="$seen
$1 $2"
    else
        echo "FAIL: $1 includes $2 ($3)"
        fail=1
    fi
}

for f in core/src/*.c core/src/*.h; do
    [ -e "$f" ] || continue
    echo "FAIL: $f is in no layer folder (core/src/{base,log,search,engine,store,policy}/)"
    fail=1
done

for f in core/src/*/*.c core/src/*/*.h; do
    dir=$(basename "$(dirname "$f")")
    r=$(rank "$dir")
    if [ "$r" = -1 ]; then
        echo "FAIL: $f: core/src/$dir is not a layer"
        fail=1
        continue
    fi
    for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        case ${h##*/} in
        memmapfs.h) continue ;;
        lcompat.h | lfields.h)
            [ "$dir" = policy ] || bad "$f" "$h" "Lua glue, for the policy VM only"
            continue ;;
        esac
        hl=$(layer_of "$h")
        [ -n "$hl" ] || continue # a system or generated header
        hr=$(rank "$hl")
        if [ "$dir" = policy ]; then
            [ "$hl" = base ] || [ "$hl" = policy ] || bad "$f" "$h" "the policy VM uses base only"
        elif [ "$hl" = policy ]; then
            [ "${h##*/}" = policy.h ] && [ "$dir" = store ] || bad "$f" "$h" "only store uses the VM, through policy.h"
        elif [ "$hr" -gt "$r" ]; then
            bad "$f" "$h" "$dir may not include $hl"
        fi
    done
done

# The Lua binding and the Lua glue: the public header and Lua's only.
for f in bindings/lua/*.c bindings/lua/*.h core/lua/*.c core/lua/*.h; do
    for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        case ${h##*/} in
        memmapfs.h | compat.h | lcompat.h | lfields.h) ;;
        *) bad "$f" "$h" "bindings and core/lua use memmapfs.h only" ;;
        esac
    done
done

printf '%s\n' "$KNOWN" | while read -r file header; do
    [ -n "$file" ] || continue
    if ! printf '%s\n' "$seen" | grep -qxF "$file $header"; then
        echo "FAIL: KNOWN lists '$file $header', which no longer occurs: take it off the list"
        exit 1
    fi
done || fail=1

if [ "$fail" = 0 ]; then echo "layers: no include points up"; fi
exit "$fail"
