#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/run.sh - run the umem vs. userfaultfd benchmarks, then summarise and
# plot (bench/report.sh, on the host: python and gnuplot are slow under TCG).
# Runs as root in a guest (scripts/vm-run.sh KVER bench/run.sh), cwd
# = repo root, bench/build/umembench prebuilt on the host (make -C bench).
#
# Environment:
#   QUICK=1       the ~2 minute subset (fewer pages, repetitions, points)
#   SMOKE=1       a seconds-long run for the guest test suite (no meaning)
#   NET=0         leave out section 4 (bench/net.sh: migrations over a
#                 network; its own NET_* settings are described there)
#   SNAP=0        leave out section 7 (bench/snap.sh: live snapshot and
#                 lazy restore; its SNAP_* settings are described there)
#   QEMUCMP=0     leave out section 8 (userspace/qemu/native-postcopy.sh:
#                 a QEMU guest migrated by umem and by QEMU's own postcopy;
#                 never in SMOKE mode, make check has its own QEMU suites)
#   QEMU_GUESTS   the guests of section 8 (default "test": the bare-metal
#                 test guest of make demo-qemu; "test linux" adds the Linux
#                 guest, whose VM needs make bench's CPU model)
#   QEMU_MIB      section 8's guest RAM (default native-postcopy.sh's own:
#                 64 MiB for the test guest, 128 for the Linux guest)
#   BENCH_OUT     result directory (default build/bench/<UTC date-time>);
#                 the path is also written to build/bench/LAST
#
# Every measurement is repeated REPS times; the repetitions are interleaved
# (for each repetition, every backend in turn) so that drift of a noisy
# host hits every backend alike.  Ratios are computed per repetition
# against the baseline of the same repetition, then the median is taken.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bench/build/umembench
[ -x "$BIN" ] || { echo "bench/run.sh: $BIN missing: run make -C bench on the host" >&2; exit 1; }

if [ ! -e /dev/umem ]; then
	ko=build/mod-$(uname -r)/umem.ko
	[ -f "$ko" ] || { echo "bench/run.sh: /dev/umem missing and no $ko" >&2; exit 1; }
	insmod "$ko"
	for _ in $(seq 50); do [ -e /dev/umem ] && break; sleep 0.1; done
fi

if [ "${SMOKE:-0}" = 1 ]; then
	MODE=smoke; LAT_PAGES=100; LAT_REPS=1; INST_PAGES=256; INST_REPS=1
	BATCHES="1 64"; THR_PAGES=128; THR_REPS=1; THREADS="1 4"; BT_REPS=1
	HUGE_MIB=8; HUGE_N=4; HUGE_REPS=1
elif [ "${QUICK:-0}" = 1 ]; then
	MODE=quick; LAT_PAGES=1000; LAT_REPS=3; INST_PAGES=1024; INST_REPS=3
	BATCHES="1 16 256"; THR_PAGES=512; THR_REPS=3; THREADS="1 4 32"
	BT_REPS=3; HUGE_MIB=32; HUGE_N=16; HUGE_REPS=3
else
	MODE=full; LAT_PAGES=3000; LAT_REPS=9; INST_PAGES=32768; INST_REPS=5
	BATCHES="1 4 16 64 256 1024"; THR_PAGES=2048; THR_REPS=5
	THREADS="1 2 4 8 16 32"; BT_REPS=5; HUGE_MIB=128; HUGE_N=64; HUGE_REPS=5
fi
STAMP=$(date -u +%Y-%m-%d-%H%M)
OUT=${BENCH_OUT:-build/bench/$STAMP}
mkdir -p "$OUT/lat"
if [ -z "${BENCH_OUT:-}" ]; then echo "$OUT" >build/bench/LAST; fi

LAT_BACKENDS="shmem umem-copy umem-write uffd-copy uffd-minor shmem-present umem-present"
INST_METHODS="umem-copy umem-copy-vec umem-write uffd-copy uffd-minor"
THR_BACKENDS="umem-copy umem-vec umem-write uffd-copy uffd-minor"

{
	echo "mode=$MODE"
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "kernel=$(uname -r)"
	echo "cpus=$(nproc)"
	echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	echo "virt=$(systemd-detect-virt 2>/dev/null || echo unknown) (as seen from the guest)"
	echo "git=$(git -C . describe --always --dirty 2>/dev/null || echo unknown)"
	echo "lat_pages=$LAT_PAGES lat_reps=$LAT_REPS inst_pages=$INST_PAGES inst_reps=$INST_REPS thr_pages=$THR_PAGES thr_reps=$THR_REPS bt_reps=$BT_REPS"
} >"$OUT/meta.txt"

t_start=$(date +%s)
echo "bench: $MODE run into $OUT"
# Let the freshly booted guest settle, and warm every path once (discarded);
# not for the smoke test, whose figures mean nothing anyway.
if [ "$MODE" != smoke ]; then
	command -v udevadm >/dev/null && udevadm settle --timeout=10 || true
	for b in $LAT_BACKENDS; do "$BIN" lat "$b" 64 /tmp/umembench-warmup.txt; done
	rm -f /tmp/umembench-warmup.txt
fi

# (1) fault service latency
for rep in $(seq "$LAT_REPS"); do
	for b in $LAT_BACKENDS; do
		"$BIN" lat "$b" "$LAT_PAGES" "$OUT/lat/$b.$rep.txt"
	done
done
echo "bench: latency done ($(( $(date +%s) - t_start )) s)"

# (2) install throughput
echo "rep,method,batch,npages,ns,pages_per_s" >"$OUT/install.csv"
for rep in $(seq "$INST_REPS"); do
	for m in memcpy memcpy-hot pwrite-hot; do
		echo "$rep,$("$BIN" install "$m" 16 "$INST_PAGES")" >>"$OUT/install.csv"
	done
	for bs in $BATCHES; do
		for m in $INST_METHODS; do
			echo "$rep,$("$BIN" install "$m" "$bs" "$INST_PAGES")" >>"$OUT/install.csv"
		done
	done
done
echo "bench: install done ($(( $(date +%s) - t_start )) s)"

# (3) many faulting threads
echo "rep,backend,threads,npages,ns,faults_per_s,blocktime_ns" >"$OUT/threads.csv"
for rep in $(seq "$THR_REPS"); do
	for t in $THREADS; do
		for b in $THR_BACKENDS; do
			echo "$rep,$("$BIN" threads "$b" "$t" "$THR_PAGES")" >>"$OUT/threads.csv"
		done
	done
done
echo "bench: threads done ($(( $(date +%s) - t_start )) s)"

# (5) blocktime: 2 "vCPU" threads, all blocked at once
echo "rep,backend,threads,npages,ns,faults_per_s,blocktime_ns" >"$OUT/blocktime.csv"
for rep in $(seq "$BT_REPS"); do
	for b in $THR_BACKENDS; do
		echo "$rep,$("$BIN" threads "$b" 2 "$THR_PAGES" blocktime)" >>"$OUT/blocktime.csv"
	done
done
echo "bench: blocktime done ($(( $(date +%s) - t_start )) s)"

# (6) 2 MiB pages (bench/build/hugebench): install throughput against 4 KiB
# pages and request latency; uffd-hugetlb needs reserved huge pages, which
# are taken for the section and given back after it.
HBIN=bench/build/hugebench
if [ -x "$HBIN" ]; then
	echo "rep,method,bytes,calls,ns,bytes_per_s" >"$OUT/huge_install.csv"
	echo "rep,backend,nhuge,total_ns,pmd_kb,pmd_full_ns" >"$OUT/huge_lat.csv"
	hp_old=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
	echo $(( hp_old + HUGE_MIB / 2 )) >/proc/sys/vm/nr_hugepages 2>/dev/null || true
	for rep in $(seq "$HUGE_REPS"); do
		for m in umem-4k umem-4k-run umem-2m uffd-hugetlb; do
			echo "$rep,$("$HBIN" install "$m" "$HUGE_MIB")" >>"$OUT/huge_install.csv"
		done
		for b in umem-4k umem-2m; do
			echo "$rep,$("$HBIN" lat "$b" "$HUGE_N" "$OUT/lat/huge-$b.$rep.txt")" >>"$OUT/huge_lat.csv"
		done
	done
	echo "$hp_old" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
	echo "bench: huge pages done ($(( $(date +%s) - t_start )) s)"
fi

# (4) end to end over a network: umemd + umem-vmm between two network
# namespaces (bench/net.sh; needs userspace/ built).  A failed migration
# is recorded (net.csv ok=0, net_failed in meta.txt), not fatal here.
if [ "${NET:-1}" != 0 ]; then
	net_rc=0
	bench/net.sh "$OUT" || net_rc=$?
	echo "net_rc=$net_rc" >>"$OUT/meta.txt"
	echo "bench: network done ($(( $(date +%s) - t_start )) s)"
fi
# (7) live snapshot and lazy restore: umemd --snapshot / --restore with
# umem-vmm as the VMM (bench/snap.sh; needs userspace/ built).  A failed
# run is recorded (snap.csv ok=0), not fatal here.
if [ "${SNAP:-1}" != 0 ]; then
	snap_rc=0
	bench/snap.sh "$OUT" || snap_rc=$?
	echo "snap_rc=$snap_rc" >>"$OUT/meta.txt"
	echo "bench: snapshot done ($(( $(date +%s) - t_start )) s)"
fi
# (8) a QEMU guest migrated by umem and by QEMU's own postcopy, the runs
# interleaved (userspace/qemu/native-postcopy.sh, RESULT lines into
# qemu-GUEST/).  A run that did not verify is recorded there, not fatal.
if [ "${QEMUCMP:-1}" != 0 ] && [ "$MODE" != smoke ]; then
	[ "$MODE" = full ] && q_reps=3 || q_reps=1
	for g in ${QEMU_GUESTS:-test}; do
		q_rc=0
		env ${QEMU_MIB:+MIB=$QEMU_MIB} OUT=$OUT/qemu-$g GUEST=$g REPEAT=$q_reps \
			KINDS="umem umem-resendall postcopy postcopy-preempt" userspace/qemu/native-postcopy.sh \
			>"$OUT/qemu-$g.log" 2>&1 || q_rc=$?
		echo "qemu_${g}_rc=$q_rc" >>"$OUT/meta.txt"
	done
	echo "bench: QEMU comparison done ($(( $(date +%s) - t_start )) s)"
fi
echo "elapsed_s=$(( $(date +%s) - t_start ))" >>"$OUT/meta.txt"

echo "bench: raw results in $OUT ($(( $(date +%s) - t_start )) s); bench/report.sh makes the summary and plots"
