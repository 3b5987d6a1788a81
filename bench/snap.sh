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
#
# Output in OUTDIR: snap.csv, snap/*.json (umemd's summaries),
# snap_meta.txt.  bench/summarize.py makes section 7.
#
# Environment (defaults by mode: SMOKE=1, QUICK=1, else full):
#   SNAP_SIZES     RAM sizes, MiB       (8 / "64 256" / "64 256 1024")
#   SNAP_REPS      repetitions          (1 / 2 / 3)
#   SNAP_BACKENDS  "umem uffd"
#   SNAP_THREADS   writer threads       (2)
#   SNAP_RATE      pages/s per thread   (2000)
#   SNAP_DIR       where the snapshot files go (a tmpfs: /dev/shm)
#   SNAP_TMO       seconds per run before it counts as failed (300)
#
# Exit status: 0 if every run completed, else 1 (recorded as ok=0 rows).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${1:?usage: bench/snap.sh OUTDIR}
BIN=$PWD/userspace/build/bin
mkdir -p "$OUT/snap"

if [ "${SMOKE:-0}" = 1 ]; then
	d_sizes=8 d_reps=1
elif [ "${QUICK:-0}" = 1 ]; then
	d_sizes="64 256" d_reps=2
else
	d_sizes="64 256 1024" d_reps=3
fi
SIZES=${SNAP_SIZES:-$d_sizes}
REPS=${SNAP_REPS:-$d_reps}
BACKENDS=${SNAP_BACKENDS:-umem uffd}
THREADS=${SNAP_THREADS:-2}
RATE=${SNAP_RATE:-2000}
SDIR=${SNAP_DIR:-/dev/shm}
TMO=${SNAP_TMO:-300}

meta() { echo "$*" >>"$OUT/snap_meta.txt"; }
: >"$OUT/snap_meta.txt"
meta "sizes_mib=$SIZES reps=$REPS backends=$BACKENDS threads=$THREADS rate=$RATE dir=$SDIR"
for b in umemd umem-vmm umemctl; do
	if [ ! -x "$BIN/$b" ]; then
		echo "bench/snap.sh: $BIN/$b missing: make -C userspace on the host" >&2
		meta "skip=userspace not built"
		exit 0
	fi
done

PIDS=
cleanup() {
	local p
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -f "$SDIR"/umem-bench-snap.* 2>/dev/null
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
			--rate "$RATE" --offer-socket "$OUT/snap/offer.sock" >/dev/null 2>"$wlog" &
		w=$!
		PIDS="$PIDS $w"
		sleep 0.5
		timeout "$TMO" "$BIN/umemd" --snapshot "$file" --backend uffd \
			--vmm-socket "$OUT/snap/offer.sock" --pid "$w" --json >"$json" 2>"$ulog"
		;;
	esac
	u=$?
	[ -n "${w:-}" ] && [ "$u" = 0 ] && grep -q '"ok":true' "$json" && ok=1
	[ "$ok" = 1 ] || { fails=$((fails + 1)); echo "bench/snap.sh: $tag failed (umemd exit $u): $(tail -n 1 "$ulog" 2>/dev/null)" >&2; }
	echo "$rep,$b,$mib,$ok,$(json_num stop_ms "$json"),$(json_num total_ms "$json"),$(json_num pages "$json"),$(json_num pages_requested "$json"),$(json_num blocked_ms "$json"),$(json_num blocked_max_ms "$json")" >>"$OUT/snap.csv"
	[ -n "${w:-}" ] && kill -TERM "$w" 2>/dev/null
	[ -n "$c" ] && { kill -TERM "$c" 2>/dev/null; wait_gone "$c" 20; }
	[ -n "${w:-}" ] && wait_gone "$w" 20
	rm -f "$file" "$OUT/snap/offer.sock"
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
meta "snap_failed=$fails"
[ "$fails" = 0 ]
