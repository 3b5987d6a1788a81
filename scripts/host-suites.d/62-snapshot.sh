#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# umemd --snapshot on the host (uffd backend; ASan + UBSan build): a live
# snapshot of umem-vmm --writer-backend uffd --offer-socket, its threads
# writing flat out, stopped and let go by the writer's own hooks
# (--stop-cmd umem-vmm --pause, --cont-cmd umem-vmm --resume) whose state
# file is the snapshot's device state:
#   - the snapshot equals the state at the pause page for page
#     (umem-vmm --check-snapshot), and holds that state file as its device
#     state; writes made during the save are not in it (the state at the
#     next pause does not match it); the writer kept running (pages saved
#     because a writer waited, generations moved) and lost no write (its
#     RAM matches its state at the next pause);
#   - every write request is measured (blocked time), whichever thread
#     saved its page: requests == pages_requested + requests_background,
#     none lost;
#   - the VMM's stop time does not grow with RAM (8 MiB, then 32 MiB);
#   - --pid PID (SIGSTOP/SIGCONT) instead of the hooks;
#   - --progress: a line of pages saved / total and MiB/s;
#   - the VMM killed mid-snapshot: umemd exits 1, the file is refused as
#     incomplete; umemd killed (SIGKILL) mid-snapshot: the writer runs on
#     (the kernel drops the protection with the userfaultfd), the file is
#     incomplete; SIGTERM: exit 1 "cancelled", the writer is told FAIL and
#     runs on; bad usage: exit 2.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

if ! make -s -C userspace SAN=1 >/tmp/umem-snapshot-build.log 2>&1; then
	tail -n 30 /tmp/umem-snapshot-build.log | sed 's/^/# /'
	t_fail "build userspace with SAN=1"
	t_done
fi
BIN=$PWD/userspace/build-san/bin
. userspace/tests/snap-lib.sh
snap_workdir umem-snapshot

if ! "$BIN/test-libumem" uffd >/dev/null 2>&1; then
	t_skip "umemd --snapshot: userfaultfd unusable here (test-libumem uffd failed)"
	t_done
fi

# ---- helpers ----
N=0
# start_writer SIZE [ARGS...]: a writer on its own uffd region, 3 threads
# flat out, offering it on $SOCK: W, WLOG, ST (its state file), SOCK.
start_writer() {
	local size=$1
	shift
	N=$((N + 1))
	SOCK=$WORK/offer-$N.sock
	ST=$WORK/state-$N
	WLOG=$WORK/writer-$N.err
	"$BIN/umem-vmm" --writer-backend uffd --size "$size" --seed $((40 + N)) --threads 3 \
		--state-file "$ST" --offer-socket "$SOCK" "$@" 2>"$WLOG" &
	W=$!
	PIDS="$PIDS $W"
	sleep 0.3
}

# start_snap ARGS...: umemd --snapshot $SNAP of writer $W with its hooks,
# in the background: U; its JSON in UJSON, its stderr in ULOG.
start_snap() {
	SNAP=$WORK/snap-$N
	UJSON=$WORK/umemd-$N.json
	ULOG=$WORK/umemd-$N.err
	"$BIN/umemd" --snapshot "$SNAP" --backend uffd --vmm-socket "$SOCK" \
		--stop-cmd "$BIN/umem-vmm --pause $W --state-file $ST" \
		--cont-cmd "$BIN/umem-vmm --resume $W" --device-state "$ST" --json -v \
		"$@" >"$UJSON" 2>"$ULOG" &
	U=$!
	PIDS="$PIDS $U"
}

# runs_on DESC: the writer runs on after umemd: two pauses, its RAM
# matches each, the writes grow; then SIGTERM, exit 0.
runs_on() {
	local desc=$1 mfd
	mfd=$(memfd_of "$W")
	if pause_twice "$W" "$mfd" && [ "$N2" -gt "$N1" ]; then
		t_ok "$desc: the writer runs on, its RAM matches its state at two pauses ($N1, then $N2 writes)"
	else
		t_fail "$desc: pauses after umemd on ${mfd:-no memfd} gave '$N1' and '$N2' writes"
		sed 's/^/#   /' "$WLOG" | tail -n 5
	fi
	kill -TERM "$W" 2>/dev/null
	wait_pid "$W" 20
	t_check $((WAIT_RC != 0)) "$desc: the writer exits 0 on SIGTERM (exit $WAIT_RC)"
}

# ---- a complete snapshot, the writer flat out ----
# snapshot_ok SIZE THROTTLE: the main case; STOP_MS is its stop time.
snapshot_ok() {
	local size=$1 mfd n_snap n_after rc
	start_writer "$size"
	start_snap --throttle "$2"
	wait_pid "$U" 120
	rc=$WAIT_RC
	cp "$ST" "$WORK/at-snap" 2>/dev/null
	if [ "$rc" = 0 ] && grep -q '"ok":true' "$UJSON"; then
		t_ok "$size: umemd --snapshot exits 0 ($(json_num pages "$UJSON") pages, $(json_num stop_ms "$UJSON") ms stopped, $(json_num total_ms "$UJSON") ms in all)"
	else
		t_fail "$size: umemd --snapshot exit $rc"
		sed 's/^/#   /' "$ULOG" "$UJSON" | tail -n 10
	fi
	STOP_MS=$(json_num stop_ms "$UJSON")
	"$BIN/umem-vmm" --check-snapshot "$SNAP" --state-file "$WORK/at-snap" 2>"$WORK/check.err"
	rc=$?
	n_snap=$(sed -n 's/.* matches .*, \([0-9]*\) writes in all$/\1/p' "$WORK/check.err")
	t_check $((rc != 0)) "$size: the snapshot equals the state at the pause page for page (--check-snapshot exit $rc, ${n_snap:-?} writes in it)"
	[ "$rc" = 0 ] || sed 's/^/#   /' "$WORK/check.err" | head -n 12
	grep -q "$(stat -c %s "$WORK/at-snap") bytes of device state" "$WORK/check.err" &&
		[ "$(json_num device_state_bytes "$UJSON")" = "$(stat -c %s "$WORK/at-snap")" ]
	t_check $? "$size: the snapshot holds the state file as its device state ($(stat -c %s "$WORK/at-snap") bytes)"
	local req
	req=$(json_num pages_requested "$UJSON")
	t_check $((${req:-0} == 0)) "$size: writers wrote during the save: ${req:-0} pages saved because a writer waited (blocked $(json_num blocked_ms "$UJSON") ms in all, $(json_num blocked_max_ms "$UJSON") ms at most)"
	local nreq nbg nlost
	nreq=$(json_num requests "$UJSON")
	nbg=$(json_num requests_background "$UJSON")
	nlost=$(json_num requests_lost "$UJSON")
	[ -n "$nreq" ] && [ -n "$nbg" ] && [ "$nlost" = 0 ] && [ "$nreq" -eq $((${req:-0} + nbg)) ]
	t_check $? "$size: every write request measured, none lost: ${nreq:-?} requests = ${req:-?} saved their page + ${nbg:-?} released by another save (lost: ${nlost:-?})"
	for _ in $(seq 50); do grep -q "umemd said DONE" "$WLOG" && break; sleep 0.1; done
	grep -q "umemd said DONE" "$WLOG"
	t_check $? "$size: the writer is told DONE"
	# The next pause: no write lost, and the writes since are not in the snapshot.
	mfd=$(memfd_of "$W")
	sleep 0.2
	n_after=
	if [ -n "$mfd" ] && timeout 20 "$BIN/umem-vmm" --pause "$W" --state-file "$ST" --timeout 5; then
		n_after=$(writes_in "$ST" "$mfd")
	fi
	if [ -n "$n_after" ] && [ -n "$n_snap" ] && [ "$n_after" -gt "$n_snap" ]; then
		t_ok "$size: the writer ran on and lost no write: its RAM matches its state at the next pause ($n_snap writes at the snapshot, $n_after now)"
	else
		t_fail "$size: the next pause: '${n_after}' writes (snapshot: '${n_snap}')"
		sed 's/^/#   /' "$WLOG" | tail -n 5
	fi
	"$BIN/umem-vmm" --check-snapshot "$SNAP" --state-file "$ST" 2>"$WORK/later.err"
	rc=$?
	t_check $((rc != 1)) "$size: writes made after the pause are not in the snapshot (against the later state: exit $rc, $(grep -c 'expected generation' "$WORK/later.err") pages named)"
	timeout 20 "$BIN/umem-vmm" --resume "$W"
	kill -TERM "$W" 2>/dev/null
	wait_pid "$W" 20
	t_check $((WAIT_RC != 0)) "$size: the writer exits 0 on SIGTERM (exit $WAIT_RC)"
}

snapshot_ok 8M 2
STOP_8=${STOP_MS:-0}
snapshot_ok 32M 16
STOP_32=${STOP_MS:-0}
# Four times the pages: the stop (hooks, one protect call) stays about
# the same; a generous bound, the hooks poll every 5 ms.
awk -v a="$STOP_8" -v b="$STOP_32" 'BEGIN { exit !(b > 0 && a > 0 && b <= 3 * a + 50) }'
t_check $? "the VMM's stop time does not grow with its RAM: $STOP_8 ms (8 MiB), $STOP_32 ms (32 MiB)"

# ---- --pid: SIGSTOP and SIGCONT ----
start_writer 8M
SNAP=$WORK/snap-pid
"$BIN/umemd" --snapshot "$SNAP" --backend uffd --vmm-socket "$SOCK" --pid "$W" --json \
	>"$WORK/pid.json" 2>"$WORK/pid.err" &
U=$!
wait_pid "$U" 60
if [ "$WAIT_RC" = 0 ] && grep -q '"ok":true' "$WORK/pid.json" &&
   ! grep -q '^State:.*T' "/proc/$W/status"; then
	t_ok "--pid: a complete snapshot with SIGSTOP/SIGCONT, the writer running again ($(json_num stop_ms "$WORK/pid.json") ms stopped)"
else
	t_fail "--pid: umemd exit $WAIT_RC, writer $(grep '^State' "/proc/$W/status" 2>/dev/null)"
	sed 's/^/#   /' "$WORK/pid.err" | tail -n 5
fi
runs_on "--pid"

# ---- failures ----
# mid_snapshot: a slow snapshot (1 ms every background page; writers at
# 300 pages/s, so that they do not take every page first: about 2 s)
# once the VMM runs again after the stop.
mid_snapshot() {
	start_writer 8M --rate 300
	start_snap --throttle 1 "$@"
	for _ in $(seq 100); do grep -q "VMM stopped for" "$ULOG" && break; sleep 0.1; done
	sleep 0.3
}

# Whichever of umemd's threads notices first says so: the VMM link
# ("exited during the snapshot") or an unprotect on the RAM of a process
# that is gone ("the VMM side of the region is gone").
mid_snapshot
kill -9 "$W"
wait_pid "$U" 30
if [ "$WAIT_RC" = 1 ] && grep -q '"ok":false' "$UJSON" &&
   grep -qiE "exited during the snapshot|the VMM side of the region is gone" "$ULOG"; then
	t_ok "the VMM killed mid-snapshot: umemd exits 1 ($(sed -n 's/^umemd: snapshot: //p' "$ULOG" | head -n 1))"
else
	t_fail "the VMM killed mid-snapshot: umemd exit $WAIT_RC"
	grep -v '^ ' "$ULOG" | sed 's/^/#   /'
fi
refused "$SNAP" "the VMM killed mid-snapshot"

mid_snapshot
kill -9 "$U"
wait_pid "$U" 30
t_check $((WAIT_RC != 137)) "umemd killed (SIGKILL) mid-snapshot (exit $WAIT_RC)"
for _ in $(seq 50); do grep -q "umemd closed .* before DONE" "$WLOG" && break; sleep 0.1; done
grep -q "umemd closed .* before DONE" "$WLOG"
t_check $? "umemd killed mid-snapshot: the writer sees umemd gone before DONE"
refused "$SNAP" "umemd killed mid-snapshot"
runs_on "umemd killed mid-snapshot"

mid_snapshot --progress
kill -TERM "$U"
wait_pid "$U" 30
line=$(tr '\r' '\n' <"$ULOG" | grep -m1 -E '^umemd: saved [0-9]+/2048 pages \([0-9]+%\), [0-9]+ requests, [0-9.]+ MiB/s')
t_check $? "--progress: a line of pages saved / total and MiB/s (${line:-none})"
if [ "$WAIT_RC" = 1 ] && grep -q "cancelled" "$ULOG" && grep -q '"ok":false' "$UJSON"; then
	t_ok "SIGTERM mid-snapshot: umemd exits 1, \"cancelled\""
else
	t_fail "SIGTERM mid-snapshot: umemd exit $WAIT_RC"
	sed 's/^/#   /' "$ULOG" | tail -n 5
fi
for _ in $(seq 50); do grep -q "umemd said FAIL" "$WLOG" && break; sleep 0.1; done
grep -q "umemd said FAIL: cancelled" "$WLOG"
t_check $? "SIGTERM mid-snapshot: the writer is told FAIL (cancelled)"
refused "$SNAP" "SIGTERM mid-snapshot"
runs_on "SIGTERM mid-snapshot"

# ---- bad usage: exit 2 ----
bad=0 total=0
for args in "--snapshot $WORK/x" \
	    "--snapshot $WORK/x --backend uffd --pid 1" \
	    "--snapshot $WORK/x --ram /dev/umem-x --backend uffd --vmm-socket $WORK/s --pid 1" \
	    "--snapshot $WORK/x --backend uffd --vmm-socket $WORK/s --stop-cmd true" \
	    "--snapshot $WORK/x --backend uffd --vmm-socket $WORK/s" \
	    "--snapshot $WORK/x --outgoing --ram $WORK/r --pid 1 --listen :1" \
	    "--snapshot $WORK/x --backend nope --vmm-socket $WORK/s --pid 1" \
	    "--incoming --listen :1 --backend uffd --cont-cmd true"; do
	total=$((total + 1))
	# shellcheck disable=SC2086
	"$BIN/umemd" $args >/dev/null 2>"$WORK/usage.err"
	rc=$?
	if [ "$rc" != 2 ] || [ ! -s "$WORK/usage.err" ]; then
		bad=$((bad + 1))
		echo "# umemd $args: exit $rc"
	fi
done
t_check $((bad != 0)) "bad usage of --snapshot: exit 2 with a message ($((total - bad)) of $total)"
[ ! -e "$WORK/x" ]
t_check $? "bad usage creates no snapshot file"
t_done
