#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/snap.sh OUTDIR - section 7 of make bench: live snapshot and lazy
# restore (Documentation/benchmarks.md, section 7).  Called by
# bench/run.sh in the guest (root, cwd = repo root, module loaded,
# userspace/ built on the host); also runs alone:
#   scripts/vm-run.sh KVER bash -c \
#     'insmod build/mod-$(uname -r)/umem.ko; SNAP_REPS=1 bench/snap.sh build/bench/x'
#
# (a) Snapshot stop time against RAM size.  A running VMM (umem-vmm
#     --writer, RAM filled, SNAP_THREADS threads writing SNAP_RATE pages/s
#     each) snapshotted by umemd --snapshot --pid (SIGSTOP, protect every
#     page, SIGCONT), on umem (a region made by umemctl create --present
#     --wp; umemd attaches to its node) and on uffd (the writer's own memfd
#     region offered over --offer-socket).  Per run: the VMM's stop time,
#     the total time (what a stop-and-copy snapshot would stop the VMM for),
#     the pages saved because a writer waited, the writers' blocked time.
#     The claim: stop time does not grow with RAM size; total time does.
# (b) Lazy restore against eager.  A snapshot file of RESTORE_MIB (made by
#     test-snapmake from a umem-vmm image) restored by umemd --restore
#     from a slow disk (--throttle RESTORE_THROTTLE: 1 ms every N pages of
#     the background stream; none in SMOKE mode) into umem-vmm (2 threads
#     reading a hot set for 1 s, 0.3 s in SMOKE mode, then every page
#     verified), three ways: --eager (every page
#     in before RUN, the baseline), lazy without a working set
#     (--no-prefetch), and lazy with the working set a first lazy run
#     recorded (--record-working-set on a copy of the file).  Per run:
#     time to RUN, time until every page is in, requests, pages
#     prefetched, the VMM's blocked time and the request latency p50.
#
# Output in OUTDIR: snap.csv, restore.csv, snap/*.json (umemd's
# summaries), snap_meta.txt.  bench/summarize.py makes section 7.
#
# Environment (defaults by mode: SMOKE=1, QUICK=1, else full):
#   SNAP_SIZES     RAM sizes, MiB       (8 / "64 256" / "64 256 1024")
#   SNAP_REPS      repetitions          (1 / 2 / 3)
#   SNAP_BACKENDS  "umem uffd"
#   SNAP_THREADS   writer threads       (2)
#   SNAP_RATE      pages/s per thread   (2000)
#   SNAP_DIR       where the snapshot files go (a tmpfs: /dev/shm)
#   SNAP_TMO       seconds per run before it counts as failed (300)
#   RESTORE_MIB    restored RAM, MiB    (8 / 64 / 256)
#   RESTORE_THROTTLE  N of --throttle   (0 = none / 8 / 8; 8 is 4-30 MiB/s
#                  under TCG, where a 1 ms sleep lasts several ms)
#   RESTORE_BACKENDS  (b)'s backends  (umem / SNAP_BACKENDS)
#   RESTORE=0      leave (b) out
#
# Exit status: 0 if every run completed, else 1 (recorded as ok=0 rows).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${1:?usage: bench/snap.sh OUTDIR}
BIN=$PWD/userspace/build/bin
mkdir -p "$OUT/snap"

if [ "${SMOKE:-0}" = 1 ]; then
	d_sizes=8 d_reps=1 d_rmib=8 d_rthr=0 d_rdur=0.3
elif [ "${QUICK:-0}" = 1 ]; then
	d_sizes="64 256" d_reps=2 d_rmib=64 d_rthr=8 d_rdur=1
else
	d_sizes="64 256 1024" d_reps=3 d_rmib=256 d_rthr=8 d_rdur=1
fi
RMIB=${RESTORE_MIB:-$d_rmib}
RTHROTTLE=${RESTORE_THROTTLE:-$d_rthr}
RDUR=$d_rdur
SIZES=${SNAP_SIZES:-$d_sizes}
REPS=${SNAP_REPS:-$d_reps}
BACKENDS=${SNAP_BACKENDS:-umem uffd}
# the smoke test restores on umem only: (a) covers both backends' paths
RBACKENDS=${RESTORE_BACKENDS:-$([ "${SMOKE:-0}" = 1 ] && echo umem || echo "$BACKENDS")}
THREADS=${SNAP_THREADS:-2}
RATE=${SNAP_RATE:-2000}
SDIR=${SNAP_DIR:-/dev/shm}
TMO=${SNAP_TMO:-300}

meta() { echo "$*" >>"$OUT/snap_meta.txt"; }
: >"$OUT/snap_meta.txt"
meta "sizes_mib=$SIZES reps=$REPS backends=$BACKENDS threads=$THREADS rate=$RATE dir=$SDIR"
meta "restore_mib=$RMIB restore_throttle=$RTHROTTLE"
for b in umemd umem-vmm umemctl test-snapmake; do
	if [ ! -x "$BIN/$b" ]; then
		echo "bench/snap.sh: $BIN/$b missing: make -C userspace on the host" >&2
		meta "skip=userspace not built"
		exit 0
	fi
done

# The Unix sockets go to a private directory: OUTDIR may be the host's
# tree shared into the guest by 9p, which refuses to open sockets (ENXIO).
SOCKD=$(mktemp -d /tmp/umem-bench-snap.XXXXXX) || exit 1
PIDS=
cleanup() {
	local p
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -f "$SDIR"/umem-bench-snap.* 2>/dev/null
	rm -rf "$SOCKD"
}
trap cleanup EXIT

json_num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2"; }

# The writer's pid, from its first line ("umem-vmm: writer pid N: ...").
writer_pid() {
	local i w
	for i in $(seq 200); do
		w=$(sed -n 's/^umem-vmm: writer pid \([0-9]*\):.*/\1/p' "$1")
		[ -n "$w" ] && { echo "$w"; return 0; }
		sleep 0.05
	done
	return 1
}

# wait_gone PID SECS: 0 once PID has exited, 1 on timeout.
wait_gone() {
	local i
	for i in $(seq $(($2 * 10))); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

echo "rep,backend,size_mib,ok,stop_ms,total_ms,pages,pages_requested,blocked_ms,blocked_max_ms" \
	>"$OUT/snap.csv"
fails=0
n=0
# snap_run REP BACKEND MIB: one snapshot, one row of snap.csv.
snap_run() {
	local rep=$1 b=$2 mib=$3 tag file wlog json ulog w c= u ok=0
	n=$((n + 1))
	tag=$b.${mib}M.$rep
	file=$SDIR/umem-bench-snap.$tag
	wlog=$OUT/snap/writer.$tag.err
	json=$OUT/snap/$tag.json
	ulog=$OUT/snap/$tag.err
	rm -f "$file"
	case $b in
	umem)
		"$BIN/umemctl" create "bsnap$n" --size "${mib}M" --present --wp -- \
			"$BIN/umem-vmm" --writer "/dev/umem-bsnap$n" --fill --threads "$THREADS" \
			--rate "$RATE" >/dev/null 2>"$wlog" &
		c=$!
		PIDS="$PIDS $c"
		w=$(writer_pid "$wlog") || w=
		[ -n "$w" ] && PIDS="$PIDS $w" && sleep 0.5
		[ -n "$w" ] && timeout "$TMO" "$BIN/umemd" --snapshot "$file" \
			--ram "/dev/umem-bsnap$n" --pid "$w" --json >"$json" 2>"$ulog"
		;;
	uffd)
		"$BIN/umem-vmm" --writer-backend uffd --size "${mib}M" --fill --threads "$THREADS" \
			--rate "$RATE" --offer-socket "$SOCKD/offer.sock" >/dev/null 2>"$wlog" &
		w=$!
		PIDS="$PIDS $w"
		sleep 0.5
		timeout "$TMO" "$BIN/umemd" --snapshot "$file" --backend uffd \
			--vmm-socket "$SOCKD/offer.sock" --pid "$w" --json >"$json" 2>"$ulog"
		;;
	esac
	u=$?
	[ -n "${w:-}" ] && [ "$u" = 0 ] && grep -q '"ok":true' "$json" && ok=1
	[ "$ok" = 1 ] || { fails=$((fails + 1)); echo "bench/snap.sh: $tag failed (umemd exit $u): $(tail -n 1 "$ulog" 2>/dev/null)" >&2; }
	echo "$rep,$b,$mib,$ok,$(json_num stop_ms "$json"),$(json_num total_ms "$json"),$(json_num pages "$json"),$(json_num pages_requested "$json"),$(json_num blocked_ms "$json"),$(json_num blocked_max_ms "$json")" >>"$OUT/snap.csv"
	[ -n "${w:-}" ] && kill -TERM "$w" 2>/dev/null
	[ -n "$c" ] && { kill -TERM "$c" 2>/dev/null; wait_gone "$c" 20; }
	[ -n "${w:-}" ] && wait_gone "$w" 20
	rm -f "$file" "$SOCKD/offer.sock"
}

if [ ! -e /dev/umem ]; then
	BACKENDS=${BACKENDS//umem/}
	meta "skip_umem=/dev/umem missing"
fi
# Interleaved: for each repetition, every size and backend in turn.
for rep in $(seq "$REPS"); do
	for mib in $SIZES; do
		for b in $BACKENDS; do
			snap_run "$rep" "$b" "$mib"
		done
	done
done
meta "snap_failed=$fails snap_s=$SECONDS"

# ---- (b) lazy restore against eager ----
# restore_run REP BACKEND MODE FILE [UMEMD OPTS...]: one row of restore.csv.
restore_run() {
	local rep=$1 b=$2 mode=$3 file=$4 tag sock json vjson ulog d v u vr ok=0
	shift 4
	n=$((n + 1))
	tag=restore.$b.$mode.$rep
	sock=$SOCKD/r$n.sock
	json=$OUT/snap/$tag.json
	vjson=$OUT/snap/$tag.vmm.json
	ulog=$OUT/snap/$tag.err
	[ "$RTHROTTLE" -gt 0 ] && set -- --throttle "$RTHROTTLE" "$@"
	timeout "$TMO" "$BIN/umemd" --restore "$file" --backend "$b" --vmm-socket "$sock" \
		--name "brst$n" --json "$@" >"$json" 2>"$ulog" &
	d=$!
	PIDS="$PIDS $d"
	for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
	timeout "$TMO" "$BIN/umem-vmm" --region "$sock" --backend "$b" --expect-file "$RIMG" \
		--verify-all --threads 2 --pattern hotset --duration "$RDUR" --json \
		>"$vjson" 2>"$OUT/snap/$tag.vmm.err" &
	v=$!
	PIDS="$PIDS $v"
	wait "$v"
	vr=$?
	wait "$d"
	u=$?
	[ "$u" = 0 ] && [ "$vr" = 0 ] && grep -q '"ok":true' "$json" && ok=1
	[ "$ok" = 1 ] || { fails=$((fails + 1)); echo "bench/snap.sh: $tag failed (umemd exit $u, umem-vmm exit $vr): $(tail -n 1 "$ulog" 2>/dev/null)" >&2; }
	echo "$rep,$b,$mode,$RMIB,$ok,$(json_num run_ms "$json"),$(json_num total_ms "$json"),$(json_num requests "$json"),$(json_num pages_prefetched "$json"),$(json_num blocked_ms "$json"),$(json_num p50 "$json")" >>"$OUT/restore.csv"
	rm -f "$sock"
}

if [ "${RESTORE:-1}" != 0 ]; then
	echo "rep,backend,mode,size_mib,ok,run_ms,total_ms,requests,prefetched,blocked_ms,latency_p50_us" \
		>"$OUT/restore.csv"
	RIMG=$SDIR/umem-bench-snap.rimg
	RFILE=$SDIR/umem-bench-snap.rfile
	if "$BIN/umem-vmm" --make-image "$RIMG" --size "${RMIB}M" --seed 3 >/dev/null 2>&1 &&
	   "$BIN/test-snapmake" --ram "$RIMG" --out "$RFILE" >/dev/null 2>"$OUT/snap/snapmake.err"; then
		for b in $RBACKENDS; do
			# the working set: what a first lazy run's faults asked for
			cp "$RFILE" "$RFILE.ws.$b"
			restore_run 0 "$b" record "$RFILE.ws.$b" --no-prefetch --record-working-set
		done
		for rep in $(seq "$REPS"); do
			for b in $RBACKENDS; do
				restore_run "$rep" "$b" eager "$RFILE" --eager
				restore_run "$rep" "$b" lazy "$RFILE" --no-prefetch
				restore_run "$rep" "$b" lazy-ws "$RFILE.ws.$b"
			done
		done
	else
		fails=$((fails + 1))
		echo "bench/snap.sh: could not make the snapshot file to restore: $(tail -n 1 "$OUT/snap/snapmake.err")" >&2
	fi
	rm -f "$RIMG" "$RFILE" "$RFILE".ws.*
	meta "restore_failed_or_snap_failed=$fails restore_and_snap_s=$SECONDS"
fi
[ "$fails" = 0 ]
