#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# userspace/demo.sh - postcopy-migrate a 256 MiB guest RAM image between two
# network namespaces and verify every page.
#
#   BACKEND=umem|uffd|uffd-minor  (default umem: needs the module loaded, or
#                                  kmod/umem.ko / build/mod-$(uname -r)/umem.ko)
#   SIZE=256M  SEED=1  THREADS=2  PATTERN=random  DURATION=3
#   DELAY=     netem delay each way, e.g. 2ms   (needs sch_netem)
#   RATE=      netem rate limit, e.g. 1gbit
#   PREEMPT=1  (0: --no-preempt)
#
# Runs as root: in a virtme-ng guest (make demo) or on a host.  Exit 0 only
# if the migration completed and the VMM verified every page.
set -u
cd "$(dirname "$0")/.." || exit 1

BACKEND=${BACKEND:-umem}
SIZE=${SIZE:-256M}
SEED=${SEED:-1}
THREADS=${THREADS:-2}
PATTERN=${PATTERN:-random}
DURATION=${DURATION:-3}
DELAY=${DELAY:-}
RATE=${RATE:-}
PREEMPT=${PREEMPT:-1}
BIN=${UMEMD_BIN:-userspace/build/bin}

say() { printf '\n=== %s\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"
if [ ! -x "$BIN/umemd" ]; then
	make -s -C userspace >&2 || die "building userspace failed"
fi
if [ "$BACKEND" = umem ] && [ ! -e /dev/umem ]; then
	for ko in "build/mod-$(uname -r)/umem.ko" kmod/umem.ko; do
		[ -f "$ko" ] && insmod "$ko" 2>/dev/null && break
	done
	[ -e /dev/umem ] || die "/dev/umem missing: load the umem module (or BACKEND=uffd)"
fi

WORK=$(mktemp -d /tmp/umem-demo.XXXXXX)
NS_SRC=umem-demo-src-$$
NS_DST=umem-demo-dst-$$
cleanup() {
	[ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null
	[ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null
	ip netns del "$NS_SRC" 2>/dev/null
	ip netns del "$NS_DST" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

say "network: namespaces $NS_SRC (10.78.0.1) and $NS_DST (10.78.0.2), veth pair"
ip netns add "$NS_SRC" && ip netns add "$NS_DST" &&
ip link add vsrc netns "$NS_SRC" type veth peer name vdst netns "$NS_DST" ||
	die "cannot create network namespaces / veth"
ip -n "$NS_SRC" addr add 10.78.0.1/24 dev vsrc
ip -n "$NS_DST" addr add 10.78.0.2/24 dev vdst
for ns in "$NS_SRC" "$NS_DST"; do ip -n "$ns" link set lo up; done
ip -n "$NS_SRC" link set vsrc up
ip -n "$NS_DST" link set vdst up
if [ -n "$DELAY$RATE" ]; then
	modprobe sch_netem 2>/dev/null
	netem="${DELAY:+delay $DELAY} ${RATE:+rate $RATE}"
	# shellcheck disable=SC2086
	ip netns exec "$NS_SRC" tc qdisc add dev vsrc root netem $netem &&
	ip netns exec "$NS_DST" tc qdisc add dev vdst root netem $netem ||
		die "tc netem $netem failed (sch_netem missing?)"
	echo "netem: $netem on both ends" >&2
fi

say "image: $SIZE, seed $SEED (page content derived from seed and page index)"
"$BIN/umem-vmm" --make-image "$WORK/ram.img" --size "$SIZE" --seed "$SEED" ||
	die "cannot create the image"

popt=
[ "$PREEMPT" = 1 ] || popt=--no-preempt
say "destination: umemd --incoming --backend $BACKEND ${popt:-(preempt channel on)}"
ip netns exec "$NS_DST" "$BIN/umemd" --incoming --listen 10.78.0.2:4444 \
	--backend "$BACKEND" --name demo --vmm-socket "$WORK/vmm.sock" \
	--progress --json $popt >"$WORK/dest.json" 2>"$WORK/dest.err" &
DPID=$!
sleep 0.3
say "source: umemd --outgoing --ram $WORK/ram.img --connect 10.78.0.2:4444"
ip netns exec "$NS_SRC" "$BIN/umemd" --outgoing --ram "$WORK/ram.img" \
	--connect 10.78.0.2:4444 --json >"$WORK/src.json" 2>"$WORK/src.err" &
SPID=$!
for _ in $(seq 100); do [ -S "$WORK/vmm.sock" ] && break; sleep 0.1; done
say "VMM: umem-vmm, $THREADS vCPUs, $PATTERN reads for ${DURATION}s, then every page verified"
ip netns exec "$NS_DST" "$BIN/umem-vmm" --region "$WORK/vmm.sock" --seed "$SEED" \
	--threads "$THREADS" --pattern "$PATTERN" --duration "$DURATION" --verify-all &
VPID=$!
# Show the destination's progress line while it runs.
while kill -0 "$DPID" 2>/dev/null; do
	sleep 0.5
	tail -c 200 "$WORK/dest.err" | tr '\r' '\n' | grep 'pages (' | tail -n 1 |
		sed 's/^/  /' >&2
done
wait "$VPID"; vrc=$?
wait "$SPID"; src=$?
wait "$DPID"; drc=$?
DPID= SPID=

say "source summary"
grep -v '^umemd: sent' "$WORK/src.err" | tr -d '\r' | sed '/^$/d' >&2
say "destination summary"
tr '\r' '\n' <"$WORK/dest.err" | grep -v 'pages (' | sed '/^$/d' >&2
say "JSON"
cat "$WORK/dest.json"
if [ "$vrc" = 0 ] && [ "$src" = 0 ] && [ "$drc" = 0 ]; then
	say "demo OK: $SIZE migrated over $BACKEND, every page verified"
	exit 0
fi
say "demo FAILED: vmm=$vrc source=$src destination=$drc"
exit 1
