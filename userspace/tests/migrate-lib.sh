# SPDX-License-Identifier: GPL-2.0
# Migration scenarios shared by the host suite (loopback, uffd backends)
# and the guest suite (two network namespaces, umem backend).  Source
# suite-lib.sh first, then set:
#   BIN      directory with umemd, umem-vmm, test-proto
#   WORK     scratch directory
#   ADDR     address the destination listens on
#   SRC_ADDR address the source listens on (default: ADDR)
#   SRC_RUN  command prefix for the source side   (e.g. "ip netns exec a")
#   DST_RUN  command prefix for the destination   (e.g. "ip netns exec b")
#   SIZE     image size (e.g. 64M), SEED
#   TMO      per-step timeout in seconds

PORT=${PORT:-$((20000 + RANDOM % 20000))}
SEED=${SEED:-7}
TMO=${TMO:-60}

mig_image() {
	IMG=$WORK/ram-$SIZE.img
	[ -f "$IMG" ] || "$BIN/umem-vmm" --make-image "$IMG" --size "$SIZE" --seed "$SEED"
}

# Start the destination in the background: sets DPID, DSOCK, DLOG, DJSON.
mig_start_dest() { # BACKEND EXTRA...
	local backend=$1
	shift
	PORT=$((PORT + 1))
	DSOCK=$WORK/vmm-$PORT.sock
	DLOG=$WORK/dest-$PORT.err
	DJSON=$WORK/dest-$PORT.json
	rm -f "$DSOCK"
	$DST_RUN "$BIN/umemd" --incoming --listen "$ADDR:$PORT" --backend "$backend" \
		--name "t$PORT" --vmm-socket "$DSOCK" --json "$@" >"$DJSON" 2>"$DLOG" &
	DPID=$!
	sleep 0.2
}

mig_start_src() { # EXTRA...
	SLOG=$WORK/src-$PORT.err
	$SRC_RUN "$BIN/umemd" --outgoing --ram "$IMG" --connect "$ADDR:$PORT" \
		--connect-wait 20 "$@" >/dev/null 2>"$SLOG" &
	SPID=$!
}

mig_start_vmm() { # EXTRA...
	VLOG=$WORK/vmm-$PORT.err
	if ! wait_for "$DSOCK" 20; then
		echo "# no VMM socket $DSOCK"
		VPID=
		return 1
	fi
	$DST_RUN "$BIN/umem-vmm" --region "$DSOCK" --seed "$SEED" "$@" >/dev/null 2>"$VLOG" &
	VPID=$!
}

mig_dump() {
	local f
	for f in "$DLOG" "$SLOG" "$VLOG"; do
		[ -f "$f" ] && sed 's/^/#   /' "$f" | tail -n 15
	done
}

# Full migration with verification: mig_full DESC BACKEND "DEST OPTS" "SRC OPTS" "VMM OPTS" WANT_PREEMPT
mig_full() {
	local desc=$1 backend=$2 dopts=$3 sopts=$4 vopts=$5 want=$6 drc src vrc
	mig_image
	# shellcheck disable=SC2086
	mig_start_dest "$backend" $dopts
	# shellcheck disable=SC2086
	mig_start_src $sopts
	# shellcheck disable=SC2086
	mig_start_vmm $vopts
	vrc=99
	[ -n "$VPID" ] && wait_pid "$VPID" "$TMO" && vrc=$WAIT_RC
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	if [ "$drc" = 0 ] && [ "$src" = 0 ] && [ "$vrc" = 0 ] &&
	   grep -q '"ok":true' "$DJSON" && grep -q "\"preempt\":$want" "$DJSON"; then
		t_ok "$desc: migrated $SIZE, every page verified"
		sed -n 's/.*"latency_us":\({[^}]*}\).*/#   request latency (us): \1/p' "$DJSON"
	else
		t_fail "$desc: dest=$drc source=$src vmm=$vrc"
		mig_dump
	fi
}

# The source dies in the middle: the destination reports it and exits
# non-zero; the VMM's faulting threads do not hang.
mig_kill_source() { # DESC BACKEND
	local desc=$1 backend=$2 drc vrc src
	mig_image
	mig_start_dest "$backend" --no-preempt
	mig_start_src --throttle 4
	mig_start_vmm --threads 2 --pattern random --duration 30 --verify-all
	sleep 1.5
	kill -9 "$SPID" 2>/dev/null
	wait_pid "$SPID" 5; src=$WAIT_RC
	wait_pid "$DPID" 20; drc=$WAIT_RC
	vrc=99
	[ -n "$VPID" ] && wait_pid "$VPID" 20 && vrc=$WAIT_RC
	if [ "$drc" = 1 ] && grep -qiE "source|closed" "$DLOG"; then
		t_ok "$desc: destination exits 1 and says why: $(grep -m1 -E 'destination:' "$DLOG" | cut -c1-150)"
	else
		t_fail "$desc: destination exit $drc"
		mig_dump
	fi
	if [ "$vrc" != 124 ] && [ "$vrc" != 0 ] && [ "$vrc" != 99 ]; then
		t_ok "$desc: VMM threads released, VMM exits $vrc: $(tail -n 2 "$VLOG" | head -n 1 | cut -c1-150)"
	else
		t_fail "$desc: VMM exit $vrc (124 = hung)"
		mig_dump
	fi
	[ "$src" = 137 ] || echo "# source exit $src"
}

# The destination dies in the middle: the source exits non-zero.
mig_kill_dest() { # DESC BACKEND
	local desc=$1 backend=$2 src
	mig_image
	mig_start_dest "$backend"
	mig_start_src --throttle 2
	mig_start_vmm --threads 1 --pattern hotset --duration 30
	sleep 1
	kill -9 "$DPID" 2>/dev/null
	wait_pid "$DPID" 5
	wait_pid "$SPID" 20; src=$WAIT_RC
	[ -n "$VPID" ] && wait_pid "$VPID" 20
	if [ "$src" = 1 ] && grep -q "destination" "$SLOG"; then
		t_ok "$desc: source exits 1: $(grep -m1 'source:' "$SLOG" | cut -c1-150)"
	else
		t_fail "$desc: source exit $src"
		mig_dump
	fi
}

# A misbehaving source: mig_fake_source CASE REGEX BACKEND
mig_fake_source() {
	local what=$1 re=$2 backend=$3 drc
	PORT=$((PORT + 1))
	DLOG=$WORK/dest-$PORT.err
	$DST_RUN "$BIN/umemd" --incoming --listen "$ADDR:$PORT" --backend "$backend" \
		--name "f$PORT" --no-preempt >/dev/null 2>"$DLOG" &
	DPID=$!
	$SRC_RUN "$BIN/test-proto" fake-source "$ADDR:$PORT" "$what" >"$WORK/fake-$PORT.out" 2>&1 &
	local fpid=$!
	wait_pid "$DPID" 20; drc=$WAIT_RC
	wait_pid "$fpid" 10
	if [ "$drc" = 1 ] && grep -qE "$re" "$DLOG"; then
		t_ok "bad source ($what): destination exits 1: $(grep -m1 'destination:' "$DLOG" | cut -c1-160)"
	else
		t_fail "bad source ($what): destination exit $drc (want 1 and /$re/)"
		sed 's/^/#   /' "$DLOG" | tail -n 20
	fi
}

# A misbehaving destination: mig_fake_dest CASE REGEX
mig_fake_dest() {
	local what=$1 re=$2 src
	mig_image
	PORT=$((PORT + 1))
	SLOG=$WORK/src-$PORT.err
	$SRC_RUN "$BIN/umemd" --outgoing --ram "$IMG" --listen "${SRC_ADDR:-$ADDR}:$PORT" >/dev/null 2>"$SLOG" &
	SPID=$!
	sleep 0.2
	$DST_RUN "$BIN/test-proto" fake-dest "${SRC_ADDR:-$ADDR}:$PORT" "$what" >"$WORK/fake-$PORT.out" 2>&1 &
	local fpid=$!
	wait_pid "$SPID" 20; src=$WAIT_RC
	wait_pid "$fpid" 10
	if [ "$src" = 1 ] && grep -qE "$re" "$SLOG"; then
		t_ok "bad destination ($what): source exits 1: $(grep -m1 'source:' "$SLOG" | cut -c1-160)"
	else
		t_fail "bad destination ($what): source exit $src (want 1 and /$re/)"
		sed 's/^/#   /' "$SLOG" | tail -n 20
	fi
}

mig_bad_input_cases() { # BACKEND
	local b=$1
	mig_fake_source garbage "unknown frame type|expected HELLO" "$b"
	mig_fake_source version "unsupported protocol version 7\.\.9 \(this umemd speaks 1\.\.1\)" "$b"
	mig_fake_source hello-oversize "HELLO frame of [0-9]+ bytes" "$b"
	mig_fake_source runfirst "RUN not allowed in state NONE" "$b"
	mig_fake_source truncated "middle of a frame" "$b"
	mig_fake_source eof "source died|closed" "$b"
	mig_fake_source duplicate "duplicate PAGE for page 3" "$b"
	mig_fake_source past-end "past the end" "$b"
	mig_fake_source oversize "PAGE frame of 1073741824 bytes" "$b"
	mig_fake_source zero-overlap "duplicate ZERO for page 3" "$b"
	mig_fake_dest bad-ack "bad HELLO_ACK"
	mig_fake_dest refuse "refused the migration.*no room"
	mig_fake_dest req-past-end "REQ offset .* past the end"
	mig_fake_dest die "destination"
}
