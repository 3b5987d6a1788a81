#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# umemd --snapshot on the umem backend, inside the guest (module loaded,
# cwd = repo root, userspace built on the host).  The VMM is umem-vmm
# --writer on a region made by umemctl create --present --wp, 3 threads
# flat out; umemd attaches to the region's node as its daemon and stops
# and lets go of the writer with its own hooks (umem-vmm --pause /
# --resume), the state file being the device state:
#   - the snapshot equals the state at the pause page for page
#     (umem-vmm --check-snapshot), writes made after it are not in it,
#     writers were served during the save and lost no write (the RAM
#     matches the state at the next pause); the module counted the
#     writes that found a page protected (wp_faults > 0) and nothing
#     stays protected afterwards; every write request was measured
#     (requests == pages_requested + requests_background, none lost);
#   - the VMM killed mid-snapshot (--pid names it): umemd exits 1, the
#     file is refused as incomplete; umemd killed (SIGKILL): the writer
#     runs on, the file is incomplete; SIGTERM: exit 1 "cancelled";
#   - zero pages are recorded as holes (a region with 16 pages written);
#   - a region of 2 MiB pages (umemctl create --page-size 2m): the
#     snapshot, in 2 MiB pages, equals the state at the pause (checked
#     4 KiB piece by 4 KiB piece), writers waited on 2 MiB pages, the
#     writer runs on and its RAM stays PMD-mapped (smaps_rollup).  A
#     kernel without transparent huge pages (RT) is an explicit skip.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

BIN=$PWD/userspace/build/bin
if [ ! -x "$BIN/umemd" ] || [ ! -x "$BIN/umem-vmm" ] || [ ! -x "$BIN/umemctl" ]; then
	t_fail "userspace not built ($BIN, umemctl included): run make -C userspace on the host"
	t_done
fi
if [ ! -e /dev/umem ]; then
	t_skip "umemd --snapshot on umem: /dev/umem missing (module not loaded)"
	t_done
fi
. userspace/tests/snap-lib.sh
snap_workdir umem-snap-guest

if ! "$BIN/umemctl" create sn-probe --size 64k --present --wp -- true >/dev/null 2>"$WORK/probe.err"; then
	t_skip "umemd --snapshot on umem: this module cannot create present, write-protectable regions ($(head -n 1 "$WORK/probe.err"))"
	t_done
fi

N=0
PAGE_ARGS=
# start_writer SIZE [ARGS...]: umemctl create sn-N ... -- umem-vmm --writer
# on its node: C (umemctl), W (the writer), NODE, ST, WLOG.
start_writer() {
	local size=$1
	shift
	N=$((N + 1))
	NODE=/dev/umem-sn-$N
	ST=$WORK/state-$N
	WLOG=$WORK/writer-$N.err
	# shellcheck disable=SC2086
	"$BIN/umemctl" create "sn-$N" --size "$size" --present --wp $PAGE_ARGS -- \
		"$BIN/umem-vmm" --writer "$NODE" --fill --seed $((60 + N)) --threads 3 \
		--state-file "$ST" "$@" >/dev/null 2>"$WLOG" &
	C=$!
	PIDS="$PIDS $C"
	W=
	for _ in $(seq 100); do
		W=$(sed -n 's/^umem-vmm: writer pid \([0-9]*\):.*/\1/p' "$WLOG")
		[ -n "$W" ] && break
		sleep 0.05
	done
	PIDS="$PIDS $W"
	sleep 0.3
}

# all_measured DESC: every write request of $UJSON was measured, none lost.
all_measured() {
	local nreq nreqp nbg nlost
	nreq=$(json_num requests "$UJSON")
	nreqp=$(json_num pages_requested "$UJSON")
	nbg=$(json_num requests_background "$UJSON")
	nlost=$(json_num requests_lost "$UJSON")
	[ -n "$nreq" ] && [ -n "$nreqp" ] && [ -n "$nbg" ] && [ "$nlost" = 0 ] &&
		[ "$nreq" -eq $((nreqp + nbg)) ]
	t_check $? "$1: every write request measured, none lost: ${nreq:-?} requests = ${nreqp:-?} saved their page + ${nbg:-?} released by another save (lost: ${nlost:-?})"
}

# start_snap ARGS...: umemd --snapshot of $NODE in the background: U.
start_snap() {
	SNAP=$WORK/snap-$N
	UJSON=$WORK/umemd-$N.json
	ULOG=$WORK/umemd-$N.err
	"$BIN/umemd" --snapshot "$SNAP" --ram "$NODE" \
		--stop-cmd "$BIN/umem-vmm --pause $W --state-file $ST" \
		--cont-cmd "$BIN/umem-vmm --resume $W" --device-state "$ST" --json -v \
		"$@" >"$UJSON" 2>"$ULOG" &
	U=$!
	PIDS="$PIDS $U"
}

# runs_on DESC: two pauses after umemd, the RAM (the node) matches each
# and the writes grow; then the writer is stopped.
runs_on() {
	local desc=$1
	if pause_twice "$W" "$NODE" && [ "$N2" -gt "$N1" ]; then
		t_ok "$desc: the writer runs on, its RAM matches its state at two pauses ($N1, then $N2 writes)"
	else
		t_fail "$desc: pauses after umemd gave '$N1' and '$N2' writes"
		sed 's/^/#   /' "$WLOG" | tail -n 5
	fi
	"$BIN/umemctl" --json stats "sn-$N" 2>/dev/null | grep -q '"pages_protected": 0,'
	t_check $? "$desc: no page of the region stays protected"
	kill -TERM "$C" 2>/dev/null
	wait_pid "$C" 20
}

# ---- a complete snapshot, the writer flat out ----
start_writer 16M
start_snap --throttle 2
wait_pid "$U" 120
rc=$WAIT_RC
cp "$ST" "$WORK/at-snap" 2>/dev/null
if [ "$rc" = 0 ] && grep -q '"ok":true' "$UJSON" && grep -q '"backend":"umem"' "$UJSON"; then
	t_ok "umemd --snapshot --ram $NODE exits 0 ($(json_num pages "$UJSON") pages, $(json_num stop_ms "$UJSON") ms stopped, $(json_num total_ms "$UJSON") ms in all)"
else
	t_fail "umemd --snapshot --ram $NODE: exit $rc"
	sed 's/^/#   /' "$ULOG" "$UJSON" | tail -n 10
fi
"$BIN/umem-vmm" --check-snapshot "$SNAP" --state-file "$WORK/at-snap" 2>"$WORK/check.err"
rc=$?
n_snap=$(sed -n 's/.* matches .*, \([0-9]*\) writes in all$/\1/p' "$WORK/check.err")
t_check $((rc != 0)) "the snapshot equals the state at the pause page for page (--check-snapshot exit $rc, ${n_snap:-?} writes in it)"
[ "$rc" = 0 ] || sed 's/^/#   /' "$WORK/check.err" | head -n 12
req=$(json_num pages_requested "$UJSON")
t_check $((${req:-0} == 0)) "writers wrote during the save: ${req:-0} pages saved because a writer waited (blocked $(json_num blocked_ms "$UJSON") ms in all, $(json_num blocked_max_ms "$UJSON") ms at most)"
all_measured "4 KiB pages"
"$BIN/umemctl" --json stats "sn-$N" >"$WORK/stats.json" 2>&1
grep -qE '"wp_faults": [1-9]' "$WORK/stats.json" && grep -q '"pages_protected": 0,' "$WORK/stats.json"
t_check $? "umem stats: wp_faults $(sed -n 's/.*"wp_faults": \([0-9]*\).*/\1/p' "$WORK/stats.json") > 0, and no page stays protected"
sleep 0.2
n_after=
if timeout 20 "$BIN/umem-vmm" --pause "$W" --state-file "$ST" --timeout 5; then
	n_after=$(writes_in "$ST" "$NODE")
fi
if [ -n "$n_after" ] && [ -n "$n_snap" ] && [ "$n_after" -gt "$n_snap" ]; then
	t_ok "the writer ran on and lost no write: its RAM matches its state at the next pause ($n_snap writes at the snapshot, $n_after now)"
else
	t_fail "the next pause: '${n_after}' writes (snapshot: '${n_snap}')"
	sed 's/^/#   /' "$WLOG" | tail -n 5
fi
"$BIN/umem-vmm" --check-snapshot "$SNAP" --state-file "$ST" 2>"$WORK/later.err"
rc=$?
t_check $((rc != 1)) "writes made after the pause are not in the snapshot (against the later state: exit $rc)"
timeout 20 "$BIN/umem-vmm" --resume "$W"
kill -TERM "$C" 2>/dev/null
wait_pid "$C" 20
t_check $((WAIT_RC != 128 + 15 && WAIT_RC != 0)) "the writer stops on SIGTERM to umemctl (exit $WAIT_RC)"

# ---- failures, mid-snapshot (writers at 300 pages/s, 1 ms a background page) ----
mid_snapshot() {
	start_writer 8M --rate 300
	start_snap --throttle 1 "$@"
	for _ in $(seq 100); do grep -q "VMM stopped for" "$ULOG" && break; sleep 0.1; done
	sleep 0.3
}

mid_snapshot --pid "$W"
kill -9 "$W"
wait_pid "$U" 30
if [ "$WAIT_RC" = 1 ] && grep -q "exited during the snapshot" "$ULOG"; then
	t_ok "the VMM killed mid-snapshot (--pid): umemd exits 1 ($(sed -n 's/^umemd: snapshot: //p' "$ULOG" | head -n 1))"
else
	t_fail "the VMM killed mid-snapshot: umemd exit $WAIT_RC"
	sed 's/^/#   /' "$ULOG" | tail -n 5
fi
refused "$SNAP" "the VMM killed mid-snapshot"
wait_pid "$C" 20

mid_snapshot
kill -9 "$U"
wait_pid "$U" 30
t_check $((WAIT_RC != 137)) "umemd killed (SIGKILL) mid-snapshot (exit $WAIT_RC)"
refused "$SNAP" "umemd killed mid-snapshot"
runs_on "umemd killed mid-snapshot"

mid_snapshot
kill -TERM "$U"
wait_pid "$U" 30
if [ "$WAIT_RC" = 1 ] && grep -q "cancelled" "$ULOG"; then
	t_ok "SIGTERM mid-snapshot: umemd exits 1, \"cancelled\""
else
	t_fail "SIGTERM mid-snapshot: umemd exit $WAIT_RC"
	sed 's/^/#   /' "$ULOG" | tail -n 5
fi
refused "$SNAP" "SIGTERM mid-snapshot"
runs_on "SIGTERM mid-snapshot"

# ---- zero pages: a region with 16 pages written, the rest zeros ----
cat >"$WORK/sixteen.py" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 16 * 4096, mmap.MAP_SHARED)
for i in range(16):
    m[i * 4096:(i + 1) * 4096] = bytes([i + 1]) * 4096
m.close()
PY
"$BIN/umemctl" create sn-zero --size 4M --present --wp -- \
	sh -c "python3 $WORK/sixteen.py /dev/umem-sn-zero && touch $WORK/zero-ready && exec sleep 60" \
	>/dev/null 2>"$WORK/zero-c.err" &
C=$!
PIDS="$PIDS $C"
wait_for "$WORK/zero-ready" 30 || echo "# the 16 pages were not written within 30 s"
"$BIN/umemd" --snapshot "$WORK/snap-zero" --ram /dev/umem-sn-zero --stop-cmd true --cont-cmd true \
	--json >"$WORK/zero.json" 2>"$WORK/zero.err"
rc=$?
if [ "$rc" = 0 ] && [ "$(json_num pages "$WORK/zero.json")" = 1024 ] &&
   [ "$(json_num pages_zero "$WORK/zero.json")" = 1008 ] &&
   [ "$(json_num bytes_written "$WORK/zero.json")" = $((16 * 4096)) ]; then
	t_ok "zero pages: 1008 of 1024 recorded as holes, 16 pages (64 KiB) written"
else
	t_fail "zero pages: umemd exit $rc, $(cat "$WORK/zero.json")"
	sed 's/^/#   /' "$WORK/zero.err" | tail -n 5
fi
kill -TERM "$C" 2>/dev/null
wait_pid "$C" 10

# ---- 2 MiB pages: the unit of protection and of the file is the 2 MiB page ----
# pmd_kb PID: the kB of file/shmem memory PID maps with PMDs.
pmd_kb() {
	awk '/^(ShmemPmdMapped|FilePmdMapped):/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps_rollup"
}
if ! "$BIN/umemctl" create sn-hprobe --size 2M --present --wp --page-size 2m -- true \
	>/dev/null 2>"$WORK/hprobe.err"; then
	t_skip "2 MiB pages: this kernel or module cannot create write-protectable 2 MiB regions, no transparent huge pages? ($(head -n 1 "$WORK/hprobe.err"))"
	t_done
fi
PAGE_ARGS="--page-size 2m"
start_writer 32M
PAGE_ARGS=
pmd_before=$(pmd_kb "$W")
start_snap --throttle 1
wait_pid "$U" 120
rc=$WAIT_RC
cp "$ST" "$WORK/at-snap" 2>/dev/null
if [ "$rc" = 0 ] && grep -q '"ok":true' "$UJSON" && grep -q '"page_size":2097152' "$UJSON" &&
   [ "$(json_num pages "$UJSON")" = 16 ]; then
	t_ok "2 MiB pages: umemd --snapshot exits 0, 16 pages of 2 MiB ($(json_num stop_ms "$UJSON") ms stopped, $(json_num total_ms "$UJSON") ms in all)"
else
	t_fail "2 MiB pages: umemd --snapshot: exit $rc"
	sed 's/^/#   /' "$ULOG" "$UJSON" | tail -n 10
fi
"$BIN/umem-vmm" --check-snapshot "$SNAP" --state-file "$WORK/at-snap" 2>"$WORK/check.err"
rc=$?
n_snap=$(sed -n 's/.* matches .*, \([0-9]*\) writes in all$/\1/p' "$WORK/check.err")
t_check $((rc != 0)) "2 MiB pages: the snapshot equals the state at the pause, 4 KiB piece by piece (--check-snapshot exit $rc, ${n_snap:-?} writes in it)"
[ "$rc" = 0 ] || sed 's/^/#   /' "$WORK/check.err" | head -n 12
req=$(json_num requests "$UJSON")
t_check $((${req:-0} == 0)) "2 MiB pages: writers waited on protected 2 MiB pages (${req:-0} requests, $(json_num pages_requested "$UJSON") pages saved for them, blocked $(json_num blocked_ms "$UJSON") ms in all)"
all_measured "2 MiB pages"
"$BIN/umemctl" --json stats "sn-$N" >"$WORK/stats.json" 2>&1
grep -qE '"wp_faults": [1-9]' "$WORK/stats.json" && grep -q '"pages_protected": 0,' "$WORK/stats.json"
t_check $? "2 MiB pages: umem stats: wp_faults $(sed -n 's/.*"wp_faults": \([0-9]*\).*/\1/p' "$WORK/stats.json") > 0, and no page stays protected"
pmd_after=
for _ in $(seq 20); do
	pmd_after=$(pmd_kb "$W")
	[ "$pmd_after" = $((32 * 1024)) ] && break
	sleep 0.1
done
t_check $((pmd_after != 32 * 1024)) "2 MiB pages: the writer's RAM stays PMD-mapped ($pmd_before kB before the snapshot, $pmd_after kB after, of $((32 * 1024)))"
runs_on "2 MiB pages"
t_done
