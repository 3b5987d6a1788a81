# SPDX-License-Identifier: GPL-2.0
# Migration scenarios shared by the host suite (loopback, uffd backends)
# and the guest suite (two network namespaces, umem backend).  Source
# suite-lib.sh first, then set (before calling any mig_* function):
#   BIN      directory with umemd, umem-vmm, test-proto
#   WORK     scratch directory
#   ADDR     address the destination listens on
#   SRC_ADDR address the source listens on (default: ADDR)
#   SRC_RUN  command prefix for the source side   (e.g. "ip netns exec a")
#   DST_RUN  command prefix for the destination   (e.g. "ip netns exec b")
#   SIZE     image size (e.g. 64M), SEED
#   TMO      per-step timeout in seconds

# The guest suites run the two sides in two network namespaces:
#   mig_netns_up TAG NET SRC_IF DST_IF
# makes TAG-src-$$ and TAG-dst-$$ joined by a veth pair (SRC_IF in the
# source's, DST_IF in the destination's), NET.1 and NET.2 (/24), lo up;
# sets NS_SRC, NS_DST, SRC_ADDR, ADDR, SRC_RUN, DST_RUN.  Returns 1 when
# namespaces or veth are unavailable.  mig_netns_down removes them (safe
# to call twice, or after a failed mig_netns_up).
mig_netns_up() {
	local tag=$1 net=$2 sif=$3 dif=$4 ns
	NS_SRC=$tag-src-$$
	NS_DST=$tag-dst-$$
	command -v ip >/dev/null &&
		ip netns add "$NS_SRC" && ip netns add "$NS_DST" &&
		ip link add "$sif" netns "$NS_SRC" type veth peer name "$dif" netns "$NS_DST" ||
		return 1
	ip -n "$NS_SRC" addr add "$net.1/24" dev "$sif" &&
		ip -n "$NS_DST" addr add "$net.2/24" dev "$dif" || return 1
	for ns in "$NS_SRC" "$NS_DST"; do
		ip -n "$ns" link set lo up || return 1
	done
	ip -n "$NS_SRC" link set "$sif" up && ip -n "$NS_DST" link set "$dif" up || return 1
	SRC_ADDR=$net.1
	ADDR=$net.2
	SRC_RUN="ip netns exec $NS_SRC"
	DST_RUN="ip netns exec $NS_DST"
}

mig_netns_down() {
	[ -n "${NS_SRC:-}" ] && ip netns del "$NS_SRC" 2>/dev/null
	[ -n "${NS_DST:-}" ] && ip netns del "$NS_DST" 2>/dev/null
	return 0
}

# Every case listens on the next port; a proxy on PORT + 5000 (mig_resume).
PORT=${PORT:-$(test_port 6000)}
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

# mig_vmm_released VRC: the VMM's waiting threads were let go, so it
# exited with an error (0: it never noticed; 99: it never started;
# 124: it hung).
mig_vmm_released() {
	[ "$1" != 124 ] && [ "$1" != 0 ] && [ "$1" != 99 ]
}

# mig_wait_log REGEX: wait up to 10 s for REGEX in the destination's log.
mig_wait_log() {
	local i
	for i in $(seq 100); do
		grep -q "$1" "$DLOG" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "# waited 10 s for /$1/ in the destination's log"
	return 1
}

# mig_kill_in_postcopy VICTIM FREEZE: kill -9 VICTIM in postcopy while
# pages are still missing.  A fixed delay is not enough: on an idle host
# the VMM's faults can finish a 64 MiB migration in about 1.3 s, and the
# kill then lands on a migration that already succeeded.  So wait until
# the destination says RUN, then SIGSTOP FREEZE (the source, so nothing
# more is served; or the VMM, so its faults fetch nothing more) and give
# the other side a moment to block on what is missing.  The caller sends
# SIGCONT to FREEZE if it survives.
mig_kill_in_postcopy() {
	mig_wait_log "RUN: the guest runs"
	kill -STOP "$2" 2>/dev/null
	sleep 0.5
	kill -9 "$1" 2>/dev/null
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
		sed -n 's/.*"pages_resent":\([0-9]*\),"resent_first":\([0-9]*\),"install_calls":\([0-9]*\).*/#   second copies dropped: \1 (the copy sent again first: \2), install calls: \3/p' "$DJSON"
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
	mig_start_dest "$backend" --no-preempt -v
	mig_start_src --throttle 2
	mig_start_vmm --threads 2 --pattern random --duration 30 --verify-all
	mig_kill_in_postcopy "$SPID" "$SPID"
	wait_pid "$SPID" 5; src=$WAIT_RC
	wait_pid "$DPID" 20; drc=$WAIT_RC
	vrc=99
	[ -n "$VPID" ] && wait_pid "$VPID" 20 && vrc=$WAIT_RC
	if [ "$drc" = 1 ] && grep -qiE "destination:.*(source|closed)" "$DLOG"; then
		t_ok "$desc: destination exits 1 and says why: $(grep -m1 -E 'destination:' "$DLOG" | cut -c1-150)"
	else
		t_fail "$desc: destination exit $drc"
		mig_dump
	fi
	if mig_vmm_released "$vrc"; then
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
	mig_start_dest "$backend" -v
	mig_start_src --throttle 2
	mig_start_vmm --threads 1 --pattern hotset --duration 30
	mig_kill_in_postcopy "$DPID" "$VPID"
	wait_pid "$DPID" 5
	wait_pid "$SPID" 20; src=$WAIT_RC
	[ -n "$VPID" ] && kill -CONT "$VPID" 2>/dev/null && wait_pid "$VPID" 20
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

# A source with RESEND sends a requested page twice (the second copy as
# a source does when the first is still on its way): the destination
# drops the second copy, counts it (pages_resent 1), installs every page
# once and finishes; the VMM verifies every page.  A second copy of a page
# nobody requested stays a protocol error (mig_fake_source duplicate).
mig_fake_resend() { # BACKEND
	local b=$1 img=$WORK/resend-1M.img drc frc vrc json
	"$BIN/umem-vmm" --make-image "$img" --size 1M --seed "$SEED" || {
		t_fail "resend ($b): cannot make $img"
		return
	}
	mig_start_dest "$b" --no-preempt
	json=$DJSON
	SLOG=$WORK/fake-$PORT.out
	$SRC_RUN "$BIN/test-proto" fake-source "$ADDR:$PORT" resend "$img" >"$SLOG" 2>&1 &
	local fpid=$!
	mig_start_vmm --threads 1 --verify-all
	vrc=99
	[ -n "$VPID" ] && wait_pid "$VPID" "$TMO" && vrc=$WAIT_RC
	wait_pid "$fpid" "$TMO"; frc=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	if [ "$drc" = 0 ] && [ "$frc" = 0 ] && [ "$vrc" = 0 ] && grep -q '"ok":true' "$json" &&
	   grep -q '"pages_resent":1,' "$json" && grep -q '"pages":256,' "$json"; then
		t_ok "resend ($b): second copy of a requested page dropped and counted, every page verified ($(head -n 1 "$SLOG"))"
	else
		t_fail "resend ($b): dest=$drc fake source=$frc vmm=$vrc, $(grep -o '"pages_resent":[0-9]*' "$json")"
		mig_dump
	fi
}

# mig_fake_dest_start CASE SOURCE-OPTS...: umemd --outgoing --listen on
# the next port (SPID; log SLOG, JSON summary SJSON), then test-proto
# fake-dest CASE against it (FPID; output $WORK/fake-$PORT.out).
mig_fake_dest_start() {
	local what=$1
	shift
	PORT=$((PORT + 1))
	SLOG=$WORK/src-$PORT.err
	SJSON=$WORK/src-$PORT.json
	$SRC_RUN "$BIN/umemd" --outgoing --ram "$IMG" --listen "${SRC_ADDR:-$ADDR}:$PORT" --json \
		"$@" >"$SJSON" 2>"$SLOG" &
	SPID=$!
	sleep 0.2
	$DST_RUN "$BIN/test-proto" fake-dest "${SRC_ADDR:-$ADDR}:$PORT" "$what" >"$WORK/fake-$PORT.out" 2>&1 &
	FPID=$!
}

# A request for a page already on its way on the main stream is served
# again on the preempt channel at once (RESEND), not left to the stream:
# the fake destination stops reading main after its first page and asks
# for the next one.  mig_fake_dest_resend CASE "SRC_OPTS" RESENT NEAR DESC:
#   resend    no PROGRESS: the page must come again on preempt;
#   progress  a PROGRESS frame (how far it has read main: up to the page
#             before) goes first, and the source's --resend-gap decides:
#             RESENT and NEAR are its pages_resent and resend_near;
#   progress-far  the same, but the PROGRESS frame says 1 byte read.
mig_fake_dest_resend() {
	local what=$1 sopts=$2 resent=$3 near=$4 desc=$5 src frc
	local SIZE=64M	# progress: 12 MiB read first, the page still to come
	mig_image
	# shellcheck disable=SC2086
	mig_fake_dest_start "$what" $sopts
	wait_pid "$FPID" 30; frc=$WAIT_RC
	wait_pid "$SPID" 20; src=$WAIT_RC
	if [ "$frc" = 0 ] && grep -q "\"pages_resent\":$resent,\"resend_near\":$near," "$SJSON"; then
		t_ok "$desc ($(head -n 1 "$WORK/fake-$PORT.out" | cut -c1-100))"
	else
		t_fail "$desc: fake destination exit $frc (want 0), source: $(grep -o '"pages_resent":[0-9]*,"resend_near":[0-9]*' "$SJSON") (want $resent, $near)"
		sed 's/^/#   /' "$WORK/fake-$PORT.out" | tail -n 5
		sed 's/^/#   /' "$SLOG" | tail -n 4
		mig_dump
	fi
	[ "$src" = 1 ] || echo "# source exit $src (the fake destination left without DONE)"
}

# The destination may say DONE and close both channels while the source
# still owes a page sent again (RESEND) on preempt.  The fake destination
# asks for a page it has, reads up to END, says DONE and closes; the
# source's --test-preempt-delay holds that page for 1 s, so its write
# comes after the close, always.  It must end OK on DONE (exit 0), not
# fail on the closed preempt socket.
mig_fake_dest_end_race() {
	local SIZE=1M src frc
	mig_image
	mig_fake_dest_start end-race -v --test-preempt-delay 1000 --resend-gap 0
	wait_pid "$FPID" 30; frc=$WAIT_RC
	wait_pid "$SPID" 30; src=$WAIT_RC
	if [ "$frc" = 0 ] && [ "$src" = 0 ] && grep -q '"ok":true' "$SJSON" &&
	   grep -q '"pages_resent":1,' "$SJSON" &&
	   grep -q "preempt channel closed after END" "$SLOG"; then
		t_ok "DONE while a page sent again is still owed on preempt: the source writes it into the closed channel and ends OK ($(grep -m1 'closed after END' "$SLOG" | cut -c1-90))"
	else
		t_fail "DONE while a page sent again is still owed on preempt: fake destination exit $frc, source exit $src (want 0, 0, ok, 1 page resent, the close seen after END)"
		sed 's/^/#   /' "$WORK/fake-$PORT.out" | tail -n 3
		sed 's/^/#   /' "$SLOG" | tail -n 5
	fi
}

# A misbehaving destination: mig_fake_dest CASE REGEX
mig_fake_dest() {
	local what=$1 re=$2 src
	mig_image
	mig_fake_dest_start "$what"
	wait_pid "$SPID" 20; src=$WAIT_RC
	wait_pid "$FPID" 10
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
	mig_fake_source version "unsupported protocol version 7\.\.9 \(this umemd speaks 1\.\.3\)" "$b"
	mig_fake_source hello-oversize "HELLO frame of [0-9]+ bytes" "$b"
	mig_fake_source runfirst "RUN not allowed in state NONE" "$b"
	mig_fake_source devstate-gap "DEVICE_STATE bytes 50\+10 of 100, expected offset 10" "$b"
	mig_fake_source devstate-short "RUN after 10 of 100 bytes of device state" "$b"
	mig_fake_source truncated "middle of a frame" "$b"
	mig_fake_source eof "source died|closed" "$b"
	mig_fake_source duplicate "duplicate PAGE for page 3" "$b"
	mig_fake_source past-end "past the end" "$b"
	mig_fake_source oversize "PAGE frame of 1073741824 bytes" "$b"
	mig_fake_source zero-overlap "duplicate ZERO for page 3" "$b"
	mig_fake_resend "$b"
	mig_fake_dest bad-ack "bad HELLO_ACK"
	mig_fake_dest refuse "refused the migration.*no room"
	mig_fake_dest req-past-end "REQ offset .* past the end"
	mig_fake_dest die "destination"
	mig_fake_dest progress-unagreed "PROGRESS frame, but PROGRESS was not agreed"
	mig_fake_dest_resend resend "" 1 0 \
		"resend: a requested page on its way on main sent again on preempt, counted"
	# 4 KiB away: near at any rate above 4 KiB/s (a loaded TCG guest's
	# stream fell near 2 MB/s, where 4 KiB is 2 ms); 12 MiB away: far.
	mig_fake_dest_resend progress "--resend-gap 1000 -v -v" 0 1 \
		"resend-gap: the page right behind the destination's reader is not sent again"
	mig_fake_dest_resend progress-far "-v -v" 1 0 \
		"resend-gap: a page the whole stream past the reader is sent again"
	mig_fake_dest_end_race
}

# ---- precopy of a running writer (issue 5) ----

# mig_precopy_writer DESC: a RAM file PCFILE of SIZE and a running VMM
# (umem-vmm --writer, pid WPID) that keeps dirtying it, as a source's
# guest would during precopy.  Returns 1 (after t_fail) when it cannot.
mig_precopy_writer() {
	PCFILE=${PCDIR:-/dev/shm}/umem-precopy-$$-$PORT.img
	"$BIN/umem-vmm" --make-image "$PCFILE" --size "$SIZE" --seed "$SEED" || {
		t_fail "$1: cannot create $PCFILE"
		return 1
	}
	"$BIN/umem-vmm" --writer "$PCFILE" --threads 2 --rate "${PCRATE:-40000}" \
		2>"$WORK/writer-$PORT.err" &
	WPID=$!
	sleep 0.3
}

# A "guest" keeps writing its shared mapping of a RAM file (umem-vmm
# --writer: per-page generation counters) while umemd --outgoing --pid
# runs precopy rounds, then stops it (SIGSTOP) and switches to postcopy.
# The writer stays stopped, so the file then holds exactly the last value
# of every page written before the switch: the destination VMM must read
# that, page for page (--expect-file).  Needs RAM file in $PCFILE's
# directory (tmpfs: /dev/shm or /tmp).
#
# A device-state blob (--device-state, 70001 random bytes: nine pieces,
# the last one short) must arrive byte for byte (--device-state-out).
#
# mig_precopy DESC BACKEND "SRC OPTS" CHECK_REGEX [USR1_AFTER_SEC]
#   CHECK_REGEX is matched against the source's JSON summary.
mig_precopy() {
	local desc=$1 backend=$2 sopts=$3 re=$4 usr1=${5:-} drc src vrc wpid sjson
	local ds=$WORK/devstate.in ds_out=$WORK/devstate.out.$RANDOM
	mig_precopy_writer "$desc" || return
	wpid=$WPID
	head -c 70001 /dev/urandom >"$ds"
	mig_start_dest "$backend" --device-state-out "$ds_out"
	SLOG=$WORK/src-$PORT.err
	sjson=$WORK/src-$PORT.json
	# shellcheck disable=SC2086
	$SRC_RUN "$BIN/umemd" --outgoing --ram "$PCFILE" --connect "$ADDR:$PORT" \
		--connect-wait 20 --pid "$wpid" --json --device-state "$ds" $sopts \
		>"$sjson" 2>"$SLOG" &
	SPID=$!
	mig_start_vmm --expect-file "$PCFILE" --threads 2 --pattern random --duration 1 --verify-all
	if [ -n "$usr1" ]; then
		sleep "$usr1"
		kill -USR1 "$SPID" 2>/dev/null
	fi
	vrc=99
	[ -n "$VPID" ] && wait_pid "$VPID" "$TMO" && vrc=$WAIT_RC
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	kill -9 "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	if [ "$drc" = 0 ] && [ "$src" = 0 ] && [ "$vrc" = 0 ] &&
	   grep -q '"ok":true' "$DJSON" && grep -qE "$re" "$sjson" &&
	   cmp -s "$ds" "$ds_out"; then
		t_ok "$desc: every page holds the writer's last value, device state intact ($(sed -n 's/.*"dirty_tracking":"\([a-z -]*[a-z]\).*"rounds":\([0-9]*\),"round_pages":\(\[[0-9,]*\]\).*"pages_discarded":\([0-9]*\),"switch":"\([^"]*\)".*"downtime_ms":\([0-9.]*\).*/\1; rounds \2 \3; discarded \4; switch: \5; downtime \6 ms/p' "$sjson"))"
	else
		t_fail "$desc: dest=$drc source=$src vmm=$vrc (want summary /$re/; device state: $(cmp "$ds" "$ds_out" 2>&1 || true))"
		cat "$sjson" | sed 's/^/#   /'
		mig_dump
	fi
	rm -f "$PCFILE" "$ds" "$ds_out"
}

# A VMM that is not running precopy-able: --pid without a shared mapping.
mig_precopy_nomap() {
	local src
	mig_image
	PORT=$((PORT + 1))
	SLOG=$WORK/src-$PORT.err
	sleep 60 &
	local spid=$!
	$SRC_RUN "$BIN/umemd" --outgoing --ram "$IMG" --connect "$ADDR:$PORT" --connect-wait 1 \
		--pid "$spid" --dirty soft-dirty >/dev/null 2>"$SLOG"
	src=$?
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	if [ "$src" != 0 ] && grep -q "has no writable shared mapping" "$SLOG"; then
		t_ok "--pid of a process without a mapping of the RAM file: refused ($(grep -m1 'source:' "$SLOG" | cut -c1-120))"
	else
		t_fail "--pid without a mapping: source exit $src"
		sed 's/^/#   /' "$SLOG" | tail -n 5
	fi
}

# ---- postcopy recovery (--recover) ----
# Break every connection 3 times at random moments during postcopy, with a
# workload running: mig_recover_cut DESC BACKEND MODE [SRC OPTS]
#   MODE proxy: the source connects through tcp-proxy.py (in the
#               destination's namespace), which is killed and restarted;
#   MODE hook:  the source's own --test-cut (give N in SRC OPTS);
#   MODE link:  the link goes down for 3 s (LINK_DOWN / LINK_UP: commands
#               the suite defines), longer than --link-timeout 1 on both
#               sides: no FIN, no RST, only silence, so both daemons must
#               notice the dead link themselves.
mig_recover_cut() {
	local desc=$1 backend=$2 mode=$3 sopts=${4:-} drc src vrc i n ppid pport target lt= cuts=3
	# The workload's faults alone finish 16 MiB in about 1.5 s under TCG,
	# before a cut at a random moment is sure to land: the timed cuts
	# get an image big enough that the first one always breaks a live
	# migration (mig_image sees this SIZE).
	local SIZE=$SIZE
	[ "$mode" != hook ] && SIZE=${RECOVER_CUT_SIZE:-64M}
	mig_image
	[ "$mode" = link ] && lt="--link-timeout 1"
	# shellcheck disable=SC2086
	mig_start_dest "$backend" --recover --recover-wait 60 -v $lt
	target=$ADDR:$PORT
	if [ "$mode" = proxy ]; then
		pport=$((PORT + 5000))
		$DST_RUN python3 userspace/tests/tcp-proxy.py "$ADDR:$pport" "$ADDR:$PORT" &
		ppid=$!
		target=$ADDR:$pport
		sleep 0.5
	fi
	SLOG=$WORK/src-$PORT.err
	# shellcheck disable=SC2086
	$SRC_RUN "$BIN/umemd" --outgoing --ram "$IMG" --connect "$target" --connect-wait 20 \
		--recover --throttle 2 -v $lt $sopts >/dev/null 2>"$SLOG" &
	SPID=$!
	mig_start_vmm --threads 2 --pattern random --duration 4 --verify-all
	# Cut only in postcopy: a cut during the handshake fails, as it should.
	mig_wait_log "RUN: the guest runs"
	if [ "$mode" != hook ]; then
		cuts=0
		for i in 1 2 3; do
			sleep "0.$((2 + RANDOM % 7))"
			kill -0 "$DPID" 2>/dev/null || break
			cuts=$((cuts + 1))
			if [ "$mode" = proxy ]; then
				kill -9 "$ppid" 2>/dev/null
				wait "$ppid" 2>/dev/null
				sleep "0.$((RANDOM % 5))"
				$DST_RUN python3 userspace/tests/tcp-proxy.py "$ADDR:$pport" "$ADDR:$PORT" &
				ppid=$!
			else
				$LINK_DOWN
				sleep 3
				$LINK_UP
			fi
			# The next cut only once this one was noticed and resumed.
			for n in $(seq 150); do
				kill -0 "$DPID" 2>/dev/null || break
				[ "$(grep -c '^umemd: resumed' "$DLOG")" -ge "$i" ] && break
				sleep 0.1
			done
		done
	fi
	vrc=99
	[ -n "$VPID" ] && wait_pid "$VPID" "$TMO" && vrc=$WAIT_RC
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	if [ "$mode" = proxy ]; then
		kill -9 "$ppid" 2>/dev/null
		wait "$ppid" 2>/dev/null
	fi
	n=$(sed -n 's/.*"resumes":\([0-9]*\).*/\1/p' "$DJSON")
	if [ "$drc" = 0 ] && [ "$src" = 0 ] && [ "$vrc" = 0 ] &&
	   grep -q '"ok":true' "$DJSON" && [ "${n:-0}" -ge 1 ]; then
		t_ok "$desc: $n resume(s) after $cuts cut(s), every page verified, no task killed"
	else
		t_fail "$desc: dest=$drc source=$src vmm=$vrc resumes=${n:-?} cuts=$cuts"
		mig_dump
	fi
}

# The source dies during postcopy and never comes back, and the paused
# destination must end without a VMM thread left hanging (umem: SIGBUS):
#   giveup  it waits out --recover-wait 3, then fails;
#   cancel  the operator gives up (SIGTERM) while it waits out
#           --recover-wait 120: it fails at once and says so.
mig_recover_lost() { # DESC BACKEND giveup|cancel
	local desc=$1 backend=$2 how=$3 rwait=3 want="did not come back" drc vrc t0
	[ "$how" = cancel ] && rwait=120 && want="cancelled by the operator"
	mig_image
	mig_start_dest "$backend" --recover --recover-wait "$rwait" --no-preempt -v
	mig_start_src --recover --throttle 1
	mig_start_vmm --threads 2 --pattern random --duration 30 --verify-all
	mig_kill_in_postcopy "$SPID" "$SPID"
	t0=$(date +%s)
	wait_pid "$SPID" 5
	if [ "$how" = cancel ]; then
		mig_wait_log "postcopy paused"
		t0=$(date +%s)
		kill -TERM "$DPID" 2>/dev/null
	fi
	wait_pid "$DPID" 30; drc=$WAIT_RC
	vrc=99
	[ -n "$VPID" ] && wait_pid "$VPID" 20 && vrc=$WAIT_RC
	if [ "$drc" = 1 ] && grep -q "paused" "$DLOG" && grep -q "$want" "$DLOG" &&
	   mig_vmm_released "$vrc"; then
		t_ok "$desc: paused destination failed after $(( $(date +%s) - t0 )) s (--recover-wait $rwait): $want; VMM released (exit $vrc)"
	else
		t_fail "$desc: dest=$drc vmm=$vrc (want 1, /paused/ and /$want/, a released VMM)"
		mig_dump
	fi
}

# SIGTERM to the source during precopy rounds: it fails cleanly and the
# VMM keeps running on the source (it was never stopped for good).
mig_precopy_cancel() { # DESC BACKEND
	local desc=$1 backend=$2 src drc wpid st
	mig_precopy_writer "$desc" || return
	wpid=$WPID
	mig_start_dest "$backend"
	SLOG=$WORK/src-$PORT.err
	# shellcheck disable=SC2086
	$SRC_RUN "$BIN/umemd" --outgoing --ram "$PCFILE" --connect "$ADDR:$PORT" \
		--connect-wait 20 --pid "$wpid" --dirty hash --max-rounds 64 --throttle 1 \
		>/dev/null 2>"$SLOG" &
	SPID=$!
	mig_start_vmm --threads 1 --pattern seq --duration 30
	sleep 1.5
	kill -TERM "$SPID" 2>/dev/null
	wait_pid "$SPID" 20; src=$WAIT_RC
	wait_pid "$DPID" 20; drc=$WAIT_RC
	[ -n "$VPID" ] && wait_pid "$VPID" 20
	sleep 0.2
	st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$wpid/status" 2>/dev/null)
	kill -9 "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	rm -f "$PCFILE"
	if [ "$src" = 1 ] && grep -q "cancelled by the operator" "$SLOG" &&
	   grep -q "pages .*: background [1-9]" "$SLOG" &&
	   [ "$drc" = 1 ] && [ -n "$st" ] && [ "$st" != T ]; then
		t_ok "$desc: source gave up on SIGTERM in round 1, destination told, writer still running (state $st)"
	else
		t_fail "$desc: source=$src dest=$drc writer state '${st:-gone}' (want 1, 1, not T)"
		mig_dump
	fi
}

# --max-bandwidth MBIT with nothing faulting (umem backend, no VMM, so
# --vmm-wait 0: nobody takes the RAM), so the background stream carries
# every page: its average rate must stay under the cap.  An upper bound
# only (a slow host lowers the rate, never raises it), not a timing
# assertion.  mig_bw_cap DESC MBIT
mig_bw_cap() {
	local desc=$1 mbit=$2 drc src rate SIZE=8M
	mig_image
	PORT=$((PORT + 1))
	$DST_RUN "$BIN/umemd" --incoming --listen "$ADDR:$PORT" --backend umem --name "bw$PORT" \
		--vmm-wait 0 --json >"$WORK/bw-dst.json" 2>"$WORK/bw-dst.err" &
	DPID=$!
	sleep 0.2
	$SRC_RUN "$BIN/umemd" --outgoing --ram "$IMG" --connect "$ADDR:$PORT" --connect-wait 20 \
		--max-bandwidth "$mbit" --json >"$WORK/bw-src.json" 2>"$WORK/bw-src.err" &
	SPID=$!
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	rate=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("%.1f" % (s["bytes_main"] * 8 / s["total_ms"] / 1000) if s["ok"] and s["pages_background"] == s["pages"] else "bad")' "$WORK/bw-src.json" 2>/dev/null)
	if [ "$src" = 0 ] && [ "$drc" = 0 ] && [ -n "$rate" ] && [ "$rate" != bad ] &&
	   python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) * 1.02 else 1)' "$rate" "$mbit"; then
		t_ok "$desc: every page by the background stream at $rate Mbit/s (cap $mbit)"
	else
		t_fail "$desc: source=$src dest=$drc rate ${rate:-?} Mbit/s (cap $mbit)"
		sed 's/^/#   /' "$WORK/bw-src.json" "$WORK/bw-src.err" "$WORK/bw-dst.err" | tail -n 20
	fi
}

# By path (umem, no --vmm-socket): the VMM maps /dev/umem-NAME.  The region
# goes with the destination, and its RAM with it, so umemd holds it after
# its last page until a VMM has mapped the node (--vmm-wait).
# mig_by_path DESC WHEN [DEST OPTS]: WHEN "node": the VMM starts as soon as
# the node exists; "late": only once the destination says it waits for a
# VMM (every page in), which must then find every page; "never": no VMM,
# DEST OPTS --vmm-wait N: both sides must exit 1 and leave no node.
mig_by_path() {
	local desc=$1 when=$2 vrc=0 src drc node
	shift 2
	mig_image
	PORT=$((PORT + 1))
	node=/dev/umem-p$PORT
	DLOG=$WORK/path$PORT-dst.err
	$DST_RUN "$BIN/umemd" --incoming --listen "$ADDR:$PORT" --backend umem --name "p$PORT" \
		"$@" >/dev/null 2>"$DLOG" &
	DPID=$!
	$SRC_RUN "$BIN/umemd" --outgoing --ram "$IMG" --connect "$ADDR:$PORT" --connect-wait 20 \
		>/dev/null 2>"$WORK/path$PORT-src.err" &
	SPID=$!
	case $when in
	node) wait_for "$node" 20 || vrc=98 ;;
	late) # 97: umemd or its node gone while it said it waits
		if ! mig_wait_log "waiting for the VMM to map $node before DONE"; then
			vrc=98
		elif ! sleep 0.5 || ! kill -0 "$DPID" 2>/dev/null || ! kill -0 "$SPID" 2>/dev/null ||
		     [ ! -e "$node" ]; then
			vrc=97
		fi ;;
	esac
	if [ "$when" != never ] && [ "$vrc" = 0 ]; then
		"$BIN/umem-vmm" --region "$node" --backend umem --seed "$SEED" --threads 2 \
			--pattern seq --duration 0.5 --verify-all 2>"$WORK/path$PORT-vmm.err" &
		VPID=$!
		wait_pid "$VPID" "$TMO"; vrc=$WAIT_RC
	fi
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	if [ "$when" = never ]; then
		if [ "$drc" = 1 ] && [ "$src" = 1 ] && [ ! -e "$node" ] &&
		   grep -q "no VMM took the region within --vmm-wait" "$DLOG"; then
			t_ok "$desc: both sides exit 1 ($(grep -m1 'no VMM took' "$DLOG" | cut -c1-110)), node gone"
			return
		fi
	elif [ $((vrc + src + drc)) -eq 0 ] && grep -q 'OK:' "$WORK/path$PORT-vmm.err"; then
		t_ok "$desc: every page verified"
		return
	fi
	t_fail "$desc: vmm=$vrc src=$src dst=$drc, node $([ -e "$node" ] && echo left || echo gone)"
	tail -n 5 "$WORK"/path$PORT-*.err | sed 's/^/#   /'
}
