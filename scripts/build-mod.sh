#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build-mod.sh KVER
#
# Build umem.ko for kernel KVER in its own staging tree build/mod-KVER/
# (a copy of Kbuild, VERSION, kmod/ and uapi/), so builds for several kernels never
# share object files.  W=1; any compiler or modpost warning fails the build.
# Result: build/mod-KVER/umem.ko, log in build/mod-KVER.log.
set -euo pipefail

kver=${1:?usage: build-mod.sh KVER}
repo=$(cd "$(dirname "$0")/.." && pwd)
kdir=${KDIR_BASE:-/lib/modules}/$kver/build
stage=$repo/build/mod-$kver
log=$repo/build/mod-$kver.log

[ -d "$kdir" ] || { echo "build-mod: no headers for $kver at $kdir" >&2; exit 1; }
[ -f "$repo/kmod/Kbuild" ] || { echo "build-mod: kmod/Kbuild is missing" >&2; exit 1; }

# Always a clean build: a warning must fail every time, not only the first.
rm -rf "$stage"
mkdir -p "$stage"
cp -a "$repo/Kbuild" "$repo/VERSION" "$repo/kmod" "$repo/uapi" "$stage/"
# Drop in-tree build products that may have been copied along from kmod/.
find "$stage" \( -name '*.o' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' \
	-o -name '.*.cmd' -o -name 'Module.symvers' -o -name 'modules.order' \) -delete

echo "  MOD     $kver -> build/mod-$kver/umem.ko"
rc=0
make -C "$kdir" M="$stage" W=1 -j"$(nproc)" modules >"$log" 2>&1 || rc=$?
if [ $rc -ne 0 ]; then
	cat "$log" >&2
	echo "build-mod: build for $kver failed (log: $log)" >&2
	exit 1
fi
if grep -i 'warning:' "$log" >&2; then
	echo "build-mod: warnings building for $kver (log: $log)" >&2
	exit 1
fi
ko=$(find "$stage" -name umem.ko -print -quit)
[ -n "$ko" ] || { echo "build-mod: no umem.ko produced for $kver" >&2; exit 1; }
[ "$ko" = "$stage/umem.ko" ] || cp "$ko" "$stage/umem.ko"
