#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# check-abi.sh [LIBUMEM.SO]: libumem exports its API and nothing else.
# The functions declared in userspace/lib/libumem.h, the global list of
# the version script userspace/lib/libumem.map and the dynamic symbols the
# library defines (nm -D --defined-only, default
# userspace/build/libumem.so) must be the same set, each in the version
# node (LIBUMEM_0, LIBUMEM_0.5, ...) whose global list names it in the
# map, and the soname libumem.so.<major of VERSION>.  Prints TAP-ish lines
# and "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
. userspace/tests/suite-lib.sh

so=${1:-userspace/build/libumem.so}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Declarations: "umem_xxx(" outside comments.
sed 's|/\*.*\*/||; /\/\*/,/\*\//d' userspace/lib/libumem.h |
	grep -oE '\bumem_[a-z0-9_]+[[:space:]]*\(' | tr -d '( \t' | sort -u >"$tmp/header"
# "symbol node" for every name in a global: list of the version script.
sed 's|/\*.*\*/||; /\/\*/,/\*\//d' userspace/lib/libumem.map | awk '
	/^[A-Za-z0-9_.]+[[:space:]]*\{/ { node = $1; sub(/\{.*/, "", node); glob = 0; next }
	/^[[:space:]]*global:/ { glob = 1; next }
	/^[[:space:]]*local:/ || /^[[:space:]]*\}/ { glob = 0; next }
	glob && /^[[:space:]]*umem_[a-z0-9_]+;/ { sym = $1; sub(/;.*/, "", sym); print sym, node }
' | sort -u >"$tmp/map-nodes"
cut -d' ' -f1 "$tmp/map-nodes" | sort -u >"$tmp/map"
if [ ! -f "$so" ]; then
	t_fail "$so not built (make userspace)"
	t_done
fi
nm -D --defined-only "$so" | awk '$2 ~ /^[TWDBRV]$/ { print $3 }' >"$tmp/nm-raw"
sed 's/@.*//' "$tmp/nm-raw" | grep -v '^LIBUMEM_' | sort -u >"$tmp/nm"

n=$(wc -l <"$tmp/header")
[ "$n" -gt 0 ]
t_check $? "libumem.h declares $n functions"
diff -u "$tmp/header" "$tmp/map" >"$tmp/d1"
t_check $? "libumem.map exports exactly the functions of libumem.h"
sed 's/^/#   /' "$tmp/d1" | tail -n +3
diff -u "$tmp/header" "$tmp/nm" >"$tmp/d2"
t_check $? "nm -D --defined-only $(basename "$so"): exactly the functions of libumem.h"
sed 's/^/#   /' "$tmp/d2" | tail -n +3
grep -v '^LIBUMEM_' "$tmp/nm-raw" | sed -n 's/^\([^@]*\)@@\?\(.*\)$/\1 \2/p' | sort -u >"$tmp/nm-nodes"
wrong=$(diff "$tmp/map-nodes" "$tmp/nm-nodes" | sed -n 's/^> //p' | tr '\n' ',' | sed 's/,$//; s/,/, /g')
unversioned=$(grep -v '@' "$tmp/nm-raw" | grep -v '^LIBUMEM_' | tr '\n' ' ')
[ -z "$wrong" ] && [ -z "$unversioned" ]
t_check $? "every exported symbol is in the version node the map gives it${wrong:+ (not: $wrong)}${unversioned:+ (unversioned: $unversioned)}"
want=libumem.so.$(cut -d. -f1 VERSION)
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "$want" ]
t_check $? "soname $soname (want $want, from VERSION)"
t_done
