#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Smoke test of the benchmarks, inside the guest (module already loaded, cwd
# = repo root, bench/build/umembench built on the host by make -C bench).
# Runs bench/run.sh in its SMOKE mode (every benchmark, backend and install
# method of the QUICK run, 100-256 pages each; the suite took 55-120 s
# under TCG on a 2-core host shared with 3-4 other guests, load 14, so well
# under 60 s is expected on an idle one, not yet measured) and checks only
# that each benchmark ran and wrote sane, non-empty CSV: no timing
# assertions.  TAP, ending with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

BIN=bench/build/umembench
if [ ! -x "$BIN" ]; then
	t_fail "bench not built ($BIN): run make -C bench on the host"
	t_done
fi
if [ ! -e /dev/umem ]; then
	t_skip "bench smoke: /dev/umem missing (module not loaded)"
	t_done
fi

OUT=$(mktemp -d /tmp/bench-smoke.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
start=$(date +%s)
SMOKE=1 BENCH_OUT=$OUT timeout 120 bench/run.sh >"$OUT/run.log" 2>&1
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$OUT/run.log" | tail -n 20
t_check $rc "bench/run.sh SMOKE=1 exits 0 ($(( $(date +%s) - start )) s)"

# meta.txt names the mode and the kernel.
grep -q '^mode=smoke$' "$OUT/meta.txt" 2>/dev/null &&
	grep -q "^kernel=$(uname -r)$" "$OUT/meta.txt"
t_check $? "meta.txt records mode and kernel"

pages=$(sed -n 's/^lat_pages=\([0-9]*\) .*/\1/p' "$OUT/meta.txt" 2>/dev/null)
for b in shmem umem-copy umem-write uffd-copy uffd-minor; do
	f=$OUT/lat/$b.1.txt
	[ -s "$f" ] && [ "$(wc -l <"$f")" -eq "${pages:-0}" ] &&
		awk '!/^[0-9]+$/ || $1 <= 0 { bad = 1 } END { exit bad }' "$f"
	t_check $? "latency $b: $pages positive integer samples"
done

# csv_ok FILE HEADER NFIELDS EXPECTED-ROWS AWK-CONDITION-FOR-A-GOOD-ROW
csv_ok() {
	[ -s "$1" ] && [ "$(head -n 1 "$1")" = "$2" ] &&
		[ "$(tail -n +2 "$1" | wc -l)" -eq "$4" ] &&
		tail -n +2 "$1" | awk -F, -v n="$3" \
			"NF != n || !($5) { bad = 1 } END { exit bad }"
}
# Install: memcpy, memcpy-hot, pwrite-hot + 5 methods x 2 batch sizes.
csv_ok "$OUT/install.csv" "rep,method,batch,npages,ns,pages_per_s" 6 13 \
	'$4 > 0 && $5 > 0 && $6 > 0'
t_check $? "install.csv: 13 rows, every method installed pages at a positive rate"
for m in memcpy memcpy-hot pwrite-hot umem-copy umem-copy-vec umem-write uffd-copy uffd-minor; do
	grep -q "^1,$m," "$OUT/install.csv" 2>/dev/null
	t_check $? "install.csv has $m"
done
# Threads: 5 backends x 2 thread counts; blocktime: 5 backends.
csv_ok "$OUT/threads.csv" "rep,backend,threads,npages,ns,faults_per_s,blocktime_ns" 7 10 \
	'$4 > 0 && $5 > 0 && $6 > 0'
t_check $? "threads.csv: 10 rows, positive faults/s"
csv_ok "$OUT/blocktime.csv" "rep,backend,threads,npages,ns,faults_per_s,blocktime_ns" 7 5 \
	'$3 == 2 && $6 > 0 && $7 >= 0'
# No upper bound: at SMOKE sizes under TCG the blocked window can start
# well before the run clock does (the clock starts after the threads are
# released), so "blocktime <= run time" is a timing assertion, not a check.
t_check $? "blocktime.csv: 5 rows, positive faults/s, blocktime >= 0"
t_done
