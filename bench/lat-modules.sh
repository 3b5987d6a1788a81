#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/lat-modules.sh OUTDIR [ROUNDS] [PAGES]
#
# Section 1's fault latency (bench/umembench.c "lat") with several builds
# of the module, alternating in one boot: for each round, for each module,
# rmmod + insmod it, then one "umembench lat BACKEND PAGES" per backend,
# into OUTDIR/LABEL.BACKEND.ROUND.txt.  Runs as root in a guest
# (scripts/vm-run.sh KVER bench/lat-modules.sh ...), cwd = repo root,
# bench/build/umembench prebuilt.  Summarise with bench/lat-modules.py.
#
# Environment:
#   MODS      "label:path.ko ..." (default: old = build/old-src/kmod/umem.ko,
#             new = build/mod-$(uname -r)/umem.ko).  An old module for the
#             comparison: git archive REV kmod uapi Kbuild VERSION |
#             tar -x -C build/old-src; make -C KDIR M=$PWD/build/old-src modules
#   BACKENDS  umembench lat backends (default: umem-copy uffd-copy
#             umem-present shmem-present)
set -uo pipefail
cd "$(dirname "$0")/.."
O=${1:?usage: lat-modules.sh OUTDIR [ROUNDS] [PAGES]}
R=${2:-3}
N=${3:-1500}
B=bench/build/umembench
MODS=${MODS:-"old:build/old-src/kmod/umem.ko new:build/mod-$(uname -r)/umem.ko"}
BACKENDS=${BACKENDS:-"umem-copy uffd-copy umem-present shmem-present"}
mkdir -p "$O"
load() {
	rmmod umem 2>/dev/null
	insmod "$1" || { echo "lat-modules: insmod $1 failed" >&2; exit 1; }
	for _ in $(seq 50); do [ -e /dev/umem ] && break; sleep 0.1; done
}
command -v udevadm >/dev/null && udevadm settle --timeout=10
first=${MODS%% *}
load "${first#*:}"
for b in $BACKENDS; do "$B" lat "$b" 64 /tmp/lat-modules-warmup.txt; done
for round in $(seq "$R"); do
	for lm in $MODS; do
		load "${lm#*:}"
		for b in $BACKENDS; do
			"$B" lat "$b" "$N" "$O/${lm%%:*}.$b.$round.txt" ||
				echo "FAIL ${lm%%:*} $b $round" >>"$O/errors"
		done
	done
done
rmmod umem
dmesg >"$O/dmesg.txt"
