#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# umem-vmm as the guest of a live snapshot and of a restore, on the host
# (ASan + UBSan builds; uffd only, no umem module here):
#   - the pause protocol of umem-vmm --writer on a RAM file: --pause gives
#     a state file that the paused RAM matches page for page (several
#     times, the writer flat out), the RAM stays still while paused, and
#     after --resume the generations move again;
#   - --check-state and --expect-state name a wrong page (expected and
#     found generation); a restore (a uffd postcopy migration of the
#     paused RAM stands in for umemd --restore) verified against the
#     state, with first_pass_ms, then --then-write;
#   - the OFFER protocol of --writer-backend uffd --offer-socket against
#     test-offer, a stand-in umemd --snapshot that write-protects the
#     writer's RAM: DONE, and a peer that dies with every page protected;
#     either way the writer runs on and its RAM (read through
#     /proc/PID/fd) matches its state at the next pause.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

if ! make -s -C userspace SAN=1 >/tmp/umem-vmm-snap-build.log 2>&1; then
	tail -n 30 /tmp/umem-vmm-snap-build.log | sed 's/^/# /'
	t_fail "build userspace with SAN=1"
	t_done
fi
BIN=$PWD/userspace/build-san/bin
. userspace/tests/snap-lib.sh
snap_workdir umem-vmm-snap
SEED=5
SIZE=8M
PORT=$(test_port 200)

# start_writer LOG ARGS...: umem-vmm --writer... in the background: W.
start_writer() {
	local log=$1
	shift
	"$BIN/umem-vmm" "$@" 2>"$log" &
	W=$!
	PIDS="$PIDS $W"
}

# stop_writer LOG: SIGTERM; true if it exits 0 (no sanitizer report).
stop_writer() {
	kill -TERM "$W" 2>/dev/null
	wait_pid "$W" 20
	[ "$WAIT_RC" = 0 ] || { echo "# writer exit $WAIT_RC"; sed 's/^/#   /' "$1" | tail -n 5; }
	[ "$WAIT_RC" = 0 ]
}

# ---- the pause protocol on a RAM file ----
RAM=$WORK/ram
ST=$WORK/state
"$BIN/umem-vmm" --make-image "$RAM" --size "$SIZE" --seed "$SEED" || t_fail "make-image"
start_writer "$WORK/w1.err" --writer "$RAM" --seed "$SEED" --threads 3 --state-file "$ST"
sleep 0.3
consistent=0 still=0 moved=0 last=0 cycles=5
for i in $(seq $cycles); do
	if timeout 20 "$BIN/umem-vmm" --pause "$W" --state-file "$ST" &&
	   "$BIN/umem-vmm" --check-state "$RAM" --state-file "$ST" --seed "$SEED" 2>"$WORK/check.err"; then
		consistent=$((consistent + 1))
	else
		sed 's/^/#   /' "$WORK/check.err" | head -n 10
	fi
	a=$(md5sum <"$RAM"); sleep 0.2; b=$(md5sum <"$RAM")
	[ "$a" = "$b" ] && still=$((still + 1))
	n=$(writes_in "$ST" "$RAM")
	[ -n "$n" ] && [ "$n" -gt "$last" ] && moved=$((moved + 1))
	last=${n:-$last}
	cp "$ST" "$WORK/state.$i"
	timeout 20 "$BIN/umem-vmm" --resume "$W" || echo "# --resume failed"
	sleep 0.2
done
t_check $((consistent != cycles)) "pause: --pause returns with a state file the paused RAM matches page for page ($consistent of $cycles pauses, 3 writers flat out)"
t_check $((still != cycles)) "pause: the RAM stays still while the writer is paused ($still of $cycles)"
t_check $((moved != cycles)) "resume: the generations move on between pauses ($moved of $cycles increases, $last writes at the last pause)"
"$BIN/umem-vmm" --check-state "$RAM" --state-file "$WORK/state.1" 2>"$WORK/old.err"
rc=$?
t_check $((rc != 1)) "--check-state of the running RAM against the first pause's state: exit $rc (1), $(grep -c 'expected generation' "$WORK/old.err") pages named"

# A pause for another state file: SIGUSR1 is taken, the file never comes.
timeout 20 "$BIN/umem-vmm" --pause "$W" --state-file "$WORK/elsewhere" --timeout 1 2>"$WORK/to.err"
rc=$?
t_check $((rc != 1 || $(grep -c 'did not write' "$WORK/to.err") != 1)) \
	"--pause for a state file the writer does not write: exit $rc (1) after --timeout 1"
timeout 20 "$BIN/umem-vmm" --resume "$W"

# Freeze the RAM at a pause: SIGTERM while paused stops the parked threads.
timeout 20 "$BIN/umem-vmm" --pause "$W" --state-file "$ST"
stop_writer "$WORK/w1.err"
t_check $? "writer: SIGTERM while paused, exit 0 ($(sed -n 's/.*stopped after \([0-9]*\) page writes/\1 page writes/p' "$WORK/w1.err"))"
"$BIN/umem-vmm" --check-state "$RAM" --state-file "$ST" 2>/dev/null
t_check $? "the stopped writer's RAM matches its last state"

# --check-state names wrong pages: page 123 stamped with another
# generation, page 200 garbage.
BAD=$WORK/ram.bad
cp "$RAM" "$BAD"
python3 - "$BAD" <<'PY'
import os, struct, sys
M = 0x57524954455200
with open(sys.argv[1], "r+b") as f:
    f.seek(123 * 4096); f.write(struct.pack("<QQ", 123 ^ M, 999999))
    f.seek(123 * 4096 + 4088); f.write(struct.pack("<Q", 999999))
    f.seek(200 * 4096); f.write(os.urandom(4096))
PY
"$BIN/umem-vmm" --check-state "$BAD" --state-file "$ST" 2>"$WORK/bad.err"
rc=$?
# names_the_bad_pages LOG: both pages named, with what they hold.
names_the_bad_pages() {
	grep -q "page 123 (offset 0x7b000): expected generation [0-9]*, found generation 999999" "$1" &&
		grep -q "page 200 (offset 0xc8000): expected generation [0-9]*, found neither" "$1" &&
		grep -q "^umem-vmm: 2 bad pages" "$1"
}
if [ "$rc" = 1 ] && names_the_bad_pages "$WORK/bad.err"; then
	t_ok "--check-state names the two wrong pages, expected and found generation, exit 1"
else
	t_fail "--check-state of a copy with two wrong pages: exit $rc"
	sed 's/^/#   /' "$WORK/bad.err"
fi
"$BIN/umem-vmm" --check-state "$RAM" --state-file "$ST" --seed $((SEED + 1)) 2>"$WORK/seed.err"
rc=$?
t_check $((rc != 1 || $(grep -c 'is of seed' "$WORK/seed.err") != 1)) "--check-state with another --seed than the state's: refused (exit $rc)"
head -c 100 "$ST" >"$WORK/state.short"
"$BIN/umem-vmm" --check-state "$RAM" --state-file "$WORK/state.short" 2>"$WORK/short.err"
rc=$?
t_check $((rc != 1 || $(grep -c 'truncated' "$WORK/short.err") != 1)) "a truncated state file is refused (exit $rc)"

# ---- uffd from here ----
if ! "$BIN/test-libumem" uffd >/dev/null 2>&1; then
	t_skip "restore and OFFER cases: userfaultfd unusable here (test-libumem uffd failed)"
	t_done
fi

# ---- a restore checked against the state ----
# restore DESC RAMFILE VMM_OPTS...: the RAM file migrated by uffd postcopy
# into a region the VMM maps from umemd's socket; VRC, VJSON, VLOG.
restore() {
	local desc=$1 ram=$2 sock dpid spid
	shift 2
	PORT=$((PORT + 1))
	sock=$WORK/vmm-$PORT.sock
	VLOG=$WORK/vmm-$PORT.err
	VJSON=$WORK/vmm-$PORT.json
	"$BIN/umemd" --incoming --listen "127.0.0.1:$PORT" --backend uffd --name "r$PORT" \
		--vmm-socket "$sock" 2>"$WORK/dst-$PORT.err" &
	dpid=$!
	"$BIN/umemd" --outgoing --ram "$ram" --connect "127.0.0.1:$PORT" --connect-wait 20 \
		2>"$WORK/src-$PORT.err" &
	spid=$!
	VRC=99
	if wait_for "$sock" 20; then
		timeout 120 "$BIN/umem-vmm" --region "$sock" --backend uffd --threads 2 \
			--verify-all --json "$@" >"$VJSON" 2>"$VLOG"
		VRC=$?
	fi
	wait_pid "$spid" 60
	wait_pid "$dpid" 60
}

restore ok "$RAM" --expect-state "$ST" --seed "$SEED" --then-write 0.5
if [ "$VRC" = 0 ] && grep -q '"ok":true' "$VJSON" &&
   grep -qE '"first_pass_ms":[0-9]+\.[0-9]+' "$VJSON" && grep -q '"bad_pages":\[\]' "$VJSON"; then
	t_ok "--expect-state: every restored page holds its generation ($(sed -n 's/.*"first_pass_ms":\([0-9.]*\).*/first full pass \1 ms/p' "$VJSON"))"
else
	t_fail "--expect-state on a good restore: exit $VRC"
	sed 's/^/#   /' "$VJSON" "$VLOG" | tail -n 10
fi
if [ "$VRC" = 0 ] && grep -qE '"then_write_pages":[1-9]' "$VJSON" &&
   grep -q 'every page verified again' "$VLOG"; then
	t_ok "--then-write 0.5: the restored guest wrote $(sed -n 's/.*"then_write_pages":\([0-9]*\).*/\1/p' "$VJSON") pages, all verified again"
else
	t_fail "--then-write after a good restore: exit $VRC"
	sed 's/^/#   /' "$VLOG" | tail -n 5
fi

restore bad "$BAD" --expect-state "$ST"
if [ "$VRC" = 1 ] && grep -q '"ok":false' "$VJSON" &&
   grep -q '"bad_pages":\[{"page":123,"expected":[0-9]*,"found":999999},{"page":200,"expected":[0-9]*,"found":-1}\]' "$VJSON" &&
   names_the_bad_pages "$VLOG"; then
	t_ok "--expect-state on a restore with two wrong pages: exit 1, both named (log and bad_pages)"
else
	t_fail "--expect-state on a restore with two wrong pages: exit $VRC"
	sed 's/^/#   /' "$VJSON" "$VLOG" | tail -n 10
fi

# ---- the OFFER protocol ----
# offer_case DESC [--die]: a writer on its own uffd region offers it to
# test-offer; afterwards it must run on, and its RAM match its state.
offer_case() {
	local desc=$1 die=${2:-} sock=$WORK/offer-$RANDOM.sock log st mfd n1 n2 want
	log=$WORK/offer-w-$RANDOM.err
	st=$WORK/offer.state
	start_writer "$log" --writer-backend uffd --size "$SIZE" --seed 9 --threads 2 \
		--state-file "$st" --offer-socket "$sock"
	# The peer starts after the writer: the writer must retry connecting.
	sleep 0.3
	t_run_tap "test-offer${die:+ $die}" timeout 60 "$BIN/test-offer" "$sock" 9 $die
	if [ -n "$die" ]; then
		want="umemd closed .* before DONE"
	else
		want="umemd said DONE"
	fi
	for _ in $(seq 50); do grep -q "$want" "$log" && break; sleep 0.1; done
	grep -q "$want" "$log"
	t_check $? "$desc: the writer logs /$want/"
	# It runs on: two pauses, the RAM matches each, the writes grow.
	mfd=$(memfd_of "$W")
	ST=$st pause_twice "$W" "$mfd"
	n1=$N1 n2=$N2
	if [ -n "$n1" ] && [ -n "$n2" ] && [ "$n2" -gt "$n1" ]; then
		t_ok "$desc: the writer runs on, its RAM ($mfd) matches its state at two pauses ($n1, then $n2 writes)"
	else
		t_fail "$desc: after the peer, pauses on ${mfd:-no memfd} gave '${n1}' and '${n2}' writes"
		sed 's/^/#   /' "$log" | tail -n 5
	fi
	stop_writer "$log"
	t_check $? "$desc: the writer exits 0 on SIGTERM"
}
offer_case "OFFER, DONE"
offer_case "OFFER, the peer dies with every page protected" --die
t_done
