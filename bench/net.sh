#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/net.sh OUTDIR - section 4 of make bench: end-to-end postcopy
# migrations over a network, umem and userfaultfd, with and without the
# preempt channel.  Called by bench/run.sh in the guest (root, cwd = repo
# root, module loaded, userspace/ built on the host); also runs alone:
#   scripts/vm-run.sh KVER bash -c \
#     'insmod build/mod-$(uname -r)/umem.ko; NET_REPS=1 bench/net.sh build/bench/x'
#
# Two network namespaces joined by a veth pair.  Points: "netem" = tc netem
# delay NET_DELAY and rate NET_RATE on both ends (RTT = 2 x delay): one
# FIFO that the preempt connection shares with the background stream;
# "prio" = the same link with the queue a real network would have: tbf
# rate NET_RATE at the root, a 3-band prio qdisc under it (the default
# priomap: SO_PRIORITY 6 -> band 0, 0 -> band 1; and a u32 filter sending
# DSCP EF to band 0) and a netem delay NET_DELAY as each band's child, on
# both ends; "unshaped" = no qdisc.  Per migration: umemd --outgoing in one namespace,
# umemd --incoming --json --latency-log plus umem-vmm (2 "vCPU" threads
# reading random pages for the whole migration) in the other.  The VMM is
# stopped when the destination umemd exits (every page is then present):
# its threads only have to fault while the background stream runs.
#
# Configs (NET_CONFIGS, interleaved innermost: each point, backend and
# preempt setting runs every config in turn): "default" = this tree's
# umemd with its default socket options; "old" = the umemd in
# UMEMD_OLD_BIN (a build of an older tree: before/after in one run);
# "nolowat" = --notsent-lowat off; "noprio" = --preempt-priority off
# --preempt-dscp off; "lowatN" = --notsent-lowat N; "resendall" =
# --resend-gap 0.  Options go to both
# umemds.
#
# Output in OUTDIR: net.csv (one row per migration), net/lat.POINT.BACKEND.
# preempt|nopreempt[-CONFIG].REP.txt (every request latency, ns, sorted;
# no suffix for "default"), net_meta.txt (parameters, RTT probe, skips),
# net/qdisc.POINT.REP.txt (tc -s counters of netem and prio, per band),
# net/rtt_loaded.POINT.BACKEND.txt (round trips, us, of a third connection
# during one extra migration with preempt, not counted in net.csv; full
# mode only).  bench/summarize.py makes section 4.
#
# Environment (defaults by mode: SMOKE=1, QUICK=1, else full):
#   NET_SIZE      image size            (8M / 32M / 256M)
#   NET_REPS      repetitions           (1 / 1 / 4)
#   NET_POINTS    "netem prio unshaped" (SMOKE: "netem prio"; unshaped if
#                 neither can be set up)
#   NET_CONFIGS   "default"             (see above)
#   NET_PRIO_BACKENDS  backends at the prio point (SMOKE: umem; else all)
#   NET_PRIO_PREEMPT   preempt settings at the prio point (SMOKE: "1", the
#                 one the queue is for; else "1 0")
#   NET_DELAY     netem delay each way  (1ms)
#   NET_RATE      netem rate            (1gbit)
#   NET_BACKENDS  "umem umem-2m uffd" (umem-2m: umem with --page-size 2m;
#                 left out in SMOKE and on kernels without THP)
#   NET_TMO       seconds per migration before it is counted as failed (180)
#   NET_SRC_OPTS  extra umemd --outgoing options (SMOKE: --throttle 2)
#
# Exit status: 0 if every migration completed (or the section was skipped
# for a missing prerequisite, said on stderr and in net_meta.txt), else 1.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${1:-${BENCH_OUT:-}}
[ -n "$OUT" ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$OUT/net"
BIN=${UMEMD_BIN:-$PWD/userspace/build/bin}

if [ "${SMOKE:-0}" = 1 ]; then
	# --throttle (a testing hook: the source sleeps 1 ms every 2 pages):
	# 8 MiB would otherwise be over before the VMM has started.
	MODE=smoke; D_SIZE=8M; D_REPS=1; D_POINTS="netem prio"; D_SRC_OPTS="--throttle 2"
elif [ "${QUICK:-0}" = 1 ]; then
	MODE=quick; D_SIZE=32M; D_REPS=1; D_POINTS="netem prio unshaped"
else
	MODE=full; D_SIZE=256M; D_REPS=4; D_POINTS="netem prio unshaped"
fi
SIZE=${NET_SIZE:-$D_SIZE}
REPS=${NET_REPS:-$D_REPS}
POINTS=${NET_POINTS:-$D_POINTS}
DELAY=${NET_DELAY:-1ms}
RATE=${NET_RATE:-1gbit}
# umem-2m (the umem backend in 2 MiB pages) where the module can, not in
# the smoke run (its throttle is per 4 KiB page).
D_BACKENDS="umem uffd"
if [ "$MODE" != smoke ] && [ -d /sys/kernel/mm/transparent_hugepage ]; then
	D_BACKENDS="umem umem-2m uffd"
fi
BACKENDS=${NET_BACKENDS:-$D_BACKENDS}
D_PRIO_BACKENDS=$BACKENDS
[ "$MODE" = smoke ] && D_PRIO_BACKENDS=umem
PRIO_BACKENDS=${NET_PRIO_BACKENDS:-$D_PRIO_BACKENDS}
D_PRIO_PREEMPT="1 0"
[ "$MODE" = smoke ] && D_PRIO_PREEMPT=1
PRIO_PREEMPT=${NET_PRIO_PREEMPT:-$D_PRIO_PREEMPT}
CONFIGS=${NET_CONFIGS:-default}
OLD_BIN=${UMEMD_OLD_BIN:-}
TMO=${NET_TMO:-180}
SRC_OPTS=${NET_SRC_OPTS:-${D_SRC_OPTS:-}}
SEED=5
META=$OUT/net_meta.txt
: >"$META"
meta() { echo "$1" >>"$META"; }
say() { echo "bench/net: $*"; }
skip_all() {
	say "SKIP section 4 (network): $*" >&2
	meta "skipped=$*"
	exit 0
}

to_bytes() { # 8M, 256M, 1G, 4096
	local n=${1%[KkMmGg]} u=${1: -1}
	case $u in
		K|k) echo $((n << 10)) ;; M|m) echo $((n << 20)) ;;
		G|g) echo $((n << 30)) ;; *) echo "$1" ;;
	esac
}
to_bps() { # 1gbit, 100mbit, 500kbit
	local v=${1,,}
	case $v in
		*gbit) echo $(( ${v%gbit} * 1000000000 )) ;;
		*mbit) echo $(( ${v%mbit} * 1000000 )) ;;
		*kbit) echo $(( ${v%kbit} * 1000 )) ;;
		*bit) echo "${v%bit}" ;;
		*) echo 0 ;;
	esac
}
to_ms() { # 1ms, 500us
	case $1 in
		*ms) echo "${1%ms}" ;;
		*us) awk -v u="${1%us}" 'BEGIN { print u / 1000 }' ;;
		*) echo "$1" ;;
	esac
}

meta "mode=$MODE"
meta "size=$SIZE"
meta "size_bytes=$(to_bytes "$SIZE")"
meta "reps=$REPS"
meta "points=$POINTS"
meta "delay_ms=$(to_ms "$DELAY")"
meta "rate_bps=$(to_bps "$RATE")"
meta "backends=$BACKENDS"
meta "threads=2"
meta "pattern=random"
meta "src_opts=$SRC_OPTS"
meta "prio_backends=$PRIO_BACKENDS"
meta "prio_preempt=$PRIO_PREEMPT"

# config_opts CONFIG: sets CFG_BIN (umemd's directory) and CFG_OPTS
# (options for both umemds); 1 for an unknown or unavailable config.
config_opts() {
	CFG_BIN=$BIN CFG_OPTS=
	case $1 in
		default) ;;
		old) [ -n "$OLD_BIN" ] && [ -x "$OLD_BIN/umemd" ] || return 1; CFG_BIN=$OLD_BIN ;;
		nolowat) CFG_OPTS="--notsent-lowat off" ;;
		noprio) CFG_OPTS="--preempt-priority off --preempt-dscp off" ;;
		resendall) CFG_OPTS="--resend-gap 0" ;;
		lowat[0-9]*) CFG_OPTS="--notsent-lowat ${1#lowat}" ;;
		*) return 1 ;;
	esac
}
nc=
for c in $CONFIGS; do
	if config_opts "$c"; then
		nc="$nc $c"
		meta "config_$c=${CFG_BIN#"$PWD"/}${CFG_OPTS:+ $CFG_OPTS}"
	else
		say "SKIP config $c: unknown, or UMEMD_OLD_BIN (${OLD_BIN:-unset}) has no umemd" >&2
		meta "config_skip_$c=unknown or no UMEMD_OLD_BIN umemd"
	fi
done
CONFIGS=${nc# }
[ -n "$CONFIGS" ] || CONFIGS=default
meta "configs=$CONFIGS"

for b in umemd umem-vmm; do
	[ -x "$BIN/$b" ] || skip_all "$BIN/$b missing: run make -C userspace on the host"
done
[ "$(id -u)" = 0 ] || skip_all "not root (network namespaces)"
command -v ip >/dev/null || skip_all "no ip(8)"

WORK=$(mktemp -d /tmp/umem-bench-net.XXXXXX)
NS_SRC=umem-bench-src-$$
NS_DST=umem-bench-dst-$$
VPID= SPID= DPID=
cleanup() {
	local p
	for p in $VPID $SPID $DPID; do kill -9 "$p" 2>/dev/null; done
	ip netns del "$NS_SRC" 2>/dev/null
	ip netns del "$NS_DST" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

if ! ip netns add "$NS_SRC" || ! ip netns add "$NS_DST" ||
   ! ip link add vsrc netns "$NS_SRC" type veth peer name vdst netns "$NS_DST"; then
	skip_all "network namespaces / veth unavailable"
fi
ip -n "$NS_SRC" addr add 10.79.0.1/24 dev vsrc
ip -n "$NS_DST" addr add 10.79.0.2/24 dev vdst
for ns in "$NS_SRC" "$NS_DST"; do ip -n "$ns" link set lo up; done
ip -n "$NS_SRC" link set vsrc up
ip -n "$NS_DST" link set vdst up
SRC_RUN="ip netns exec $NS_SRC"
DST_RUN="ip netns exec $NS_DST"
ADDR=10.79.0.2

# The prio point's tree on one end: NS DEV.  tbf is the bottleneck (it
# dequeues at NET_RATE); prio picks band 0 first among the packets whose
# netem delay is over; PRIO_FILTER=0 if the DSCP filter could not be
# added (the priomap alone still classifies by SO_PRIORITY).
prio_tree() {
	local t="ip netns exec $1 tc" i
	$t qdisc add dev "$2" root handle 1: tbf rate "$RATE" burst 256kb latency 100ms &&
		$t qdisc add dev "$2" parent 1:1 handle 10: prio bands 3 || return 1
	for i in 1 2 3; do
		$t qdisc add dev "$2" parent "10:$i" handle "1$i:" netem delay "$DELAY" || return 1
	done
	$t filter add dev "$2" parent 10: protocol ip prio 1 u32 \
		match ip dsfield 0xb8 0xfc flowid 10:1 2>/dev/null || PRIO_FILTER=0
}
# netem, tbf, prio, u32: modules on Debian kernels.
qdisc() { # netem|prio|unshaped
	ip netns exec "$NS_SRC" tc qdisc del dev vsrc root 2>/dev/null
	ip netns exec "$NS_DST" tc qdisc del dev vdst root 2>/dev/null
	case $1 in
	netem)
		ip netns exec "$NS_SRC" tc qdisc add dev vsrc root netem delay "$DELAY" rate "$RATE" &&
			ip netns exec "$NS_DST" tc qdisc add dev vdst root netem delay "$DELAY" rate "$RATE" ;;
	prio) prio_tree "$NS_SRC" vsrc && prio_tree "$NS_DST" vdst ;;
	*) return 0 ;;
	esac
}
HAVE_NETEM=0 HAVE_PRIO=0 PRIO_FILTER=1
for m in sch_netem sch_tbf sch_prio cls_u32; do modprobe "$m" 2>/dev/null; done
if command -v tc >/dev/null && qdisc netem; then
	HAVE_NETEM=1
	qdisc unshaped
fi
if command -v tc >/dev/null && qdisc prio 2>"$WORK/prio.err"; then
	HAVE_PRIO=1
	qdisc unshaped
fi
meta "netem=$HAVE_NETEM"
meta "prio=$HAVE_PRIO"
meta "prio_filter=$PRIO_FILTER"
drop_point() { # POINT WHY
	say "SKIP the $1 point: $2" >&2
	meta "$1_skip=$2"
	np=
	for p in $POINTS; do [ "$p" = "$1" ] || np="$np $p"; done
	POINTS=${np# }
}
if [ "$HAVE_NETEM" = 0 ]; then
	drop_point netem "tc netem unavailable ($(command -v tc >/dev/null || echo 'no tc'; lsmod 2>/dev/null | grep -q sch_netem || echo 'sch_netem not loadable'))"
fi
if [ "$HAVE_PRIO" = 0 ]; then
	why=$(head -c 200 "$WORK/prio.err" 2>/dev/null | tr '\n' ' ')
	for m in sch_netem sch_tbf sch_prio; do
		lsmod 2>/dev/null | grep -q "^$m " || why="$why $m not loadable;"
	done
	command -v tc >/dev/null || why="no tc"
	drop_point prio "tbf/prio/netem tree unavailable (${why:-unknown})"
fi
[ "$PRIO_FILTER" = 1 ] || say "the prio point classifies by SO_PRIORITY only: the u32 DSCP filter could not be added (cls_u32?)" >&2
# SMOKE asks for shaped points: fall back to the unshaped one.
[ -n "$POINTS" ] || POINTS=unshaped

# RTT probe: median of 50 one-byte TCP round trips (TCP_NODELAY), as
# umemd's request/reply sees the link.  Python, to need nothing extra.
# "loaded": the same ping-pong, one every 10 ms, on a third connection
# during an extra migration (preempt on, not counted in net.csv): what
# any second connection gets from the shared qdisc and the busy vCPUs.
RTT_PY='
import socket, sys, time, statistics
if sys.argv[1] == "server":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[2], int(sys.argv[3]))); s.listen(1); c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        try:
            b = c.recv(1)
            if not b: break
            c.sendall(b)
        except OSError: break   # the client was killed mid-exchange
elif sys.argv[1] == "loaded":
    # One round trip every 10 ms until killed, one line (us) each.
    for i in range(200):
        try:
            c = socket.create_connection((sys.argv[2], int(sys.argv[3]))); break
        except OSError: time.sleep(0.02)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        t = time.perf_counter()
        try:
            c.sendall(b"x")
            if not c.recv(1): break
        except OSError: break   # the server went first
        print("%.1f" % ((time.perf_counter() - t) * 1e6), flush=True)
        time.sleep(0.01)
else:
    for i in range(100):
        try:
            c = socket.create_connection((sys.argv[2], int(sys.argv[3]))); break
        except OSError: time.sleep(0.05)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    v = []
    for i in range(55):
        t = time.perf_counter(); c.sendall(b"x"); c.recv(1); v.append(time.perf_counter() - t)
    v = sorted(v[5:])
    print("%.1f %.1f" % (statistics.median(v) * 1e6, v[0] * 1e6))
'
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
# One port per run, and a proxy at PORT + 10000.
. userspace/tests/ports.sh
PORT=$(test_port 12000)
rtt_probe() { # POINT
	local sp out
	[ -n "$PY" ] && [ "$MODE" != smoke ] || return 0
	PORT=$((PORT + 1))
	$DST_RUN "$PY" -c "$RTT_PY" server "$ADDR" "$PORT" &
	sp=$!
	out=$(timeout 30 $SRC_RUN "$PY" -c "$RTT_PY" client "$ADDR" "$PORT" 2>/dev/null)
	kill "$sp" 2>/dev/null
	wait "$sp" 2>/dev/null
	set -- $out
	[ $# -eq 2 ] && meta "rtt_us_$POINT=$1" && meta "rtt_min_us_$POINT=$2" &&
		say "$POINT: TCP round trip median $1 us (min $2 us)"
}

say "$MODE: $SIZE, $REPS repetition(s), points: $POINTS, backends: $BACKENDS (prio: $PRIO_BACKENDS), configs: $CONFIGS"
IMG=$WORK/ram.img
"$BIN/umem-vmm" --make-image "$IMG" --size "$SIZE" --seed "$SEED" ||
	{ echo "bench/net: cannot create the $SIZE image" >&2; exit 1; }
SIZE_B=$(stat -c %s "$IMG")

# jget KEY FILE: a number or string of umemd's one-line JSON summary.
jget() {
	sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" "$2" | head -n 1
}

# Wait up to $2 s for pid $1; WAIT_RC = its status, 124 if still running.
wait_pid() {
	local i
	for i in $(seq $(($2 * 20))); do
		if ! kill -0 "$1" 2>/dev/null; then
			wait "$1" 2>/dev/null
			WAIT_RC=$?
			return 0
		fi
		sleep 0.05
	done
	WAIT_RC=124
	return 1
}

FAILS=0
CSV=$OUT/net.csv
echo "rep,point,backend,preempt,size_bytes,delay_ms,rate_bps,ok,total_ms,src_total_ms,wall_ms,pages,pages_background,pages_requested,pages_zero,requests,bytes_main,bytes_preempt,lat_count,lat_p50_us,lat_p99_us,lat_max_us,blocked_ms,blocked_max_ms,blocked_source,vmm,config" >"$CSV"

migrate() { # REP POINT BACKEND PREEMPT(1|0) CONFIG [probe]
	local rep=$1 point=$2 b=$3 pre=$4 cfg=$5 probe=${6:-} popt= pname=preempt tag sock dj sj vrc src drc ok vmm t0 wall
	local psrv= pcli= pport praw nidle be=$3 sopt=
	# umem-2m: the umem backend with 2 MiB pages (umemd --page-size 2m)
	[ "$b" = umem-2m ] && { be=umem; sopt="--page-size 2m"; }
	[ "$pre" = 1 ] || { popt=--no-preempt; pname=nopreempt; }
	config_opts "$cfg"
	[ "$cfg" = default ] || pname=$pname-$cfg
	tag=$point.$b.$pname.$rep
	PORT=$((PORT + 1))
	if [ -n "$probe" ]; then
		# Started first (python is slow to start under TCG); only the
		# round trips after the first NIDLE lines count.
		tag=$point.$b.$pname.probe
		pport=$((PORT + 10000))
		praw=$WORK/rtt-$PORT.txt
		$DST_RUN "$PY" -c "$RTT_PY" server "$ADDR" "$pport" &
		psrv=$!
		$SRC_RUN "$PY" -c "$RTT_PY" loaded "$ADDR" "$pport" >"$praw" 2>/dev/null &
		pcli=$!
		for _ in $(seq 300); do
			[ "$(wc -l <"$praw")" -ge 3 ] && break
			sleep 0.05
		done
		nidle=$(wc -l <"$praw")
	fi
	sock=$WORK/vmm-$PORT.sock
	dj=$WORK/dest-$PORT.json
	sj=$WORK/src-$PORT.json
	t0=$(date +%s%N)
	# shellcheck disable=SC2086
	$DST_RUN "$CFG_BIN/umemd" --incoming --listen "$ADDR:$PORT" --backend "$be" --name "bn$PORT" \
		--vmm-socket "$sock" --json --latency-log "$OUT/net/lat.$tag.txt" $popt $CFG_OPTS \
		>"$dj" 2>"$WORK/dest-$PORT.err" &
	DPID=$!
	# shellcheck disable=SC2086
	$SRC_RUN "$CFG_BIN/umemd" --outgoing --ram "$IMG" --connect "$ADDR:$PORT" --connect-wait 20 \
		--json $SRC_OPTS $sopt $CFG_OPTS >"$sj" 2>"$WORK/src-$PORT.err" &
	SPID=$!
	VPID=
	for _ in $(seq 400); do
		[ -S "$sock" ] && break
		kill -0 "$DPID" 2>/dev/null || break
		sleep 0.05
	done
	if [ -S "$sock" ]; then
		# Long enough to outlast any migration: stopped below.
		$DST_RUN "$BIN/umem-vmm" --region "$sock" --seed "$SEED" --threads 2 \
			--pattern random --duration 3600 >/dev/null 2>"$WORK/vmm-$PORT.err" &
		VPID=$!
	fi
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	for p in $pcli $psrv; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[ -n "$probe" ] && tail -n +$((nidle + 1)) "$praw" >"$OUT/net/rtt_loaded.$point.$b.txt"
	wall=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ "$drc" = 124 ] && kill -9 "$DPID" 2>/dev/null
	wait_pid "$SPID" 20; src=$WAIT_RC
	[ "$src" = 124 ] && kill -9 "$SPID" 2>/dev/null
	# The VMM's workload outlasts the migration: still running = no bad
	# page read so far (a mismatch ends it at once with status 1).
	vmm=none
	if [ -n "$VPID" ]; then
		if kill -0 "$VPID" 2>/dev/null; then
			vmm=ok
			kill -9 "$VPID" 2>/dev/null
			wait "$VPID" 2>/dev/null
		else
			wait "$VPID" 2>/dev/null
			vrc=$?
			vmm=exit$vrc
		fi
	fi
	DPID= SPID= VPID=
	ok=0
	if [ "$drc" = 0 ] && [ "$src" = 0 ] && [ "$vmm" = ok ] && grep -q '"ok":true' "$dj"; then
		ok=1
	else
		FAILS=$((FAILS + 1))
		say "FAILED $tag: dest=$drc source=$src vmm=$vmm" >&2
		tail -n 5 "$WORK/dest-$PORT.err" "$WORK/src-$PORT.err" "$WORK/vmm-$PORT.err" 2>/dev/null |
			sed 's/^/bench\/net:   /' >&2
	fi
	if [ -n "$probe" ]; then
		say "$tag: ok=$ok, $(wc -l <"$OUT/net/rtt_loaded.$point.$b.txt") round trips of a third connection during the migration"
		rm -f "$OUT/net/lat.$tag.txt" "$dj" "$sj" "$WORK"/*-"$PORT".err
		return
	fi
	echo "$rep,$point,$b,$pre,$SIZE_B,$( [ "$point" != unshaped ] && to_ms "$DELAY" || echo 0),$( [ "$point" != unshaped ] && to_bps "$RATE" || echo 0),$ok,$(jget total_ms "$dj"),$(jget total_ms "$sj"),$wall,$(jget pages "$dj"),$(jget pages_background "$dj"),$(jget pages_requested "$dj"),$(jget pages_zero "$dj"),$(jget requests "$dj"),$(jget bytes_main "$dj"),$(jget bytes_preempt "$dj"),$(jget count "$dj"),$(jget p50 "$dj"),$(jget p99 "$dj"),$(jget max "$dj"),$(jget blocked_ms "$dj"),$(jget blocked_max_ms "$dj"),$(jget blocked_source "$dj"),$vmm,$cfg" >>"$CSV"
	say "$tag: ok=$ok total $(jget total_ms "$dj") ms, $(jget requests "$dj") requests, p50 $(jget p50 "$dj") us, p99 $(jget p99 "$dj") us"
	rm -f "$dj" "$sj" "$WORK"/*-"$PORT".err
}

t_start=$(date +%s)
probed=
for rep in $(seq "$REPS"); do
	for POINT in $POINTS; do
		if ! qdisc "$POINT"; then
			say "cannot set up the $POINT point" >&2
			FAILS=$((FAILS + 1))
			continue
		fi
		case " $probed " in
			*" $POINT "*) ;;
			*) rtt_probe; probed="$probed $POINT" ;;
		esac
		pb=$BACKENDS pp="1 0"
		[ "$POINT" = prio ] && pb=$PRIO_BACKENDS pp=$PRIO_PREEMPT
		for b in $pb; do
			if [ "$b" = umem ] && [ ! -e /dev/umem ]; then
				say "SKIP umem: /dev/umem missing" >&2
				continue
			fi
			for pre in $pp; do
				for cfg in $CONFIGS; do
					migrate "$rep" "$POINT" "$b" "$pre" "$cfg"
				done
			done
			# Once per point and backend, after the first repetition.
			if [ "$rep" = 1 ] && [ -n "$PY" ] && [ "$MODE" = full ]; then
				migrate "$rep" "$POINT" "$b" 1 default probe
			fi
		done
		# The qdisc counters (sent, dropped, overlimits, backlog; per
		# band at the prio point) of this point and repetition.
		if [ "$POINT" != unshaped ]; then
			{ ip netns exec "$NS_SRC" tc -s qdisc show dev vsrc
			  ip netns exec "$NS_DST" tc -s qdisc show dev vdst; } \
				>"$OUT/net/qdisc.$POINT.$rep.txt" 2>&1
		fi
	done
done
qdisc unshaped
meta "elapsed_s=$(( $(date +%s) - t_start ))"
say "done, $FAILS failed migration(s) ($(( $(date +%s) - t_start )) s)"
[ "$FAILS" = 0 ]
