#!/bin/sh
# calls.sh: checks that no object of core/src calls a function of a higher
# layer (docs/design.md, "Layers"; layers.sh checks the includes).  An
# include can hide a call (internal.h declares functions of several
# layers), the objects cannot: each object's undefined symbols are looked
# up among the symbols the other objects define.
#
#   calls.sh OBJDIR   (the engine's objects: OBJDIR/<layer>/<file>.c.o)
#
# Layers, lowest first: base, log, search, engine, store; the policy
# VM's host.c (policy/) is called by store only.  KNOWN lists the calls
# up that are not untangled yet, as "object symbol"; each is reported, an
# entry that no longer occurs fails, so the list only shrinks.
set -eu
objdir=$1
[ -d "$objdir" ] || { echo "calls.sh: no objects in $objdir (build first)"; exit 77; }
command -v nm >/dev/null || { echo "calls.sh: nm not found"; exit 77; }

KNOWN="
"

rank() {
    case $1 in
    base) echo 0 ;; log) echo 1 ;; search) echo 2 ;; engine) echo 3 ;; store) echo 4 ;; policy) echo 4 ;;
    *) echo -1 ;;
    esac
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# "symbol layer/file" for every function an object defines.
for o in "$objdir"/*/*.c.o; do
    f=${o#"$objdir"/}
    f=${f%.o}
    nm -g --defined-only "$o" | awk -v f="$f" '$2 == "T" { print $3, f }'
done | sort >"$tmp/defs"

fail=0
: >"$tmp/seen"
for o in "$objdir"/*/*.c.o; do
    f=${o#"$objdir"/}
    f=${f%.o}
    layer=${f%%/*}
    r=$(rank "$layer")
    nm -u "$o" | awk '{ print $2 }' | sort -u >"$tmp/undef"
    join "$tmp/undef" "$tmp/defs" | while read -r sym def; do
        dl=${def%%/*}
        dr=$(rank "$dl")
        if [ "$dr" -gt "$r" ] || { [ "$dl" = policy ] && [ "$layer" != store ]; }; then
            if printf '%s\n' "$KNOWN" | grep -qxF "$f $sym"; then
                echo "known, not untangled yet: $f calls $sym ($def)"
                echo "$f $sym" >>"$tmp/seen"
            else
                echo "FAIL: $f calls $sym, defined in $def (a higher layer)"
                echo fail >>"$tmp/failed"
            fi
        fi
    done
done
[ -e "$tmp/failed" ] && fail=1

printf '%s\n' "$KNOWN" | while read -r file sym; do
    [ -n "$file" ] || continue
    if ! grep -qxF "$file $sym" "$tmp/seen"; then
        echo "FAIL: KNOWN lists '$file $sym', which no longer occurs: take it off the list"
        exit 1
    fi
done || fail=1

if [ "$fail" = 0 ]; then echo "calls: no call points up but the known ones above"; fi
exit "$fail"
