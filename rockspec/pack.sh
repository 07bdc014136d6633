#!/bin/sh
# pack.sh [OUTDIR]: memmapfs-scm-1.src.rock of this checkout, made without
# a network: the checkout's files (those git tracks or would track, as
# they are now) go into a source archive, and `luarocks pack` bundles it
# with a copy of the rockspec whose source.url names that archive.
# `luarocks build memmapfs-scm-1.src.rock` then needs no network either.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(cd "${1:-.}" && pwd)
command -v luarocks >/dev/null 2>&1 || { echo "pack.sh: luarocks is not installed" >&2; exit 1; }
git -C "$root" rev-parse --git-dir >/dev/null 2>&1 || { echo "pack.sh: $root is not a git checkout" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/memmapfs-pack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir "$tmp/memmapfs"
cd "$root"
# Files deleted but not yet committed are left out.
git ls-files -z --cached --others --exclude-standard |
  xargs -0 sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done; true' sh >"$tmp/files"
tar --null -T "$tmp/files" -cf - | tar -xf - -C "$tmp/memmapfs"
tar -C "$tmp" -czf "$tmp/memmapfs-scm-1.tar.gz" memmapfs

sed -e "s|^  url = .*|  url = \"file://$tmp/memmapfs-scm-1.tar.gz\",\\
  dir = \"memmapfs\",|" rockspec/memmapfs-scm-1.rockspec >"$tmp/memmapfs-scm-1.rockspec"
cd "$tmp"
luarocks pack memmapfs-scm-1.rockspec >/dev/null
mv memmapfs-scm-1.src.rock "$out/"
echo "$out/memmapfs-scm-1.src.rock"
