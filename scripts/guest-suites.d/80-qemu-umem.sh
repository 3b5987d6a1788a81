#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Unmodified QEMU (Debian's qemu-system-x86_64) maps a umem region as guest
# RAM: memory-backend-file,mem-path=/dev/umem-NAME,share=on, driven through
# the qtest protocol and QMP by userspace/qemu/qtest_umem.py, while umemd
# serves the pages from umemd --outgoing in another network namespace.
# Inside the guest (module loaded, cwd = repo root).  Documentation/qemu.rst.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

BIN=$PWD/userspace/build/bin
[ -x "${UMEMD_BIN:-}/umemd" ] && BIN=$UMEMD_BIN
t_need_qemu
if [ ! -x "$BIN/umemd" ] || [ ! -x "$BIN/umem-vmm" ]; then
	t_fail "userspace not built ($BIN): run make -C userspace on the host"
	t_done
fi
t_need_umem_python

WORK=$(mktemp -d /tmp/qemu-umem.XXXXXX)
NS_SRC=qemu-src-$$
NS_DST=qemu-dst-$$
SPID= DPID=
cleanup() {
	[ -n "$SPID" ] && kill -9 "$SPID" 2>/dev/null && kill -CONT "$SPID" 2>/dev/null
	[ -n "$DPID" ] && kill -9 "$DPID" 2>/dev/null
	ip netns del "$NS_SRC" 2>/dev/null
	ip netns del "$NS_DST" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v ip >/dev/null ||
   ! ip netns add "$NS_SRC" || ! ip netns add "$NS_DST" ||
   ! ip link add vqsrc netns "$NS_SRC" type veth peer name vqdst netns "$NS_DST"; then
	t_fail "network namespaces / veth unavailable"
	t_done
fi
ip -n "$NS_SRC" addr add 10.79.0.1/24 dev vqsrc
ip -n "$NS_DST" addr add 10.79.0.2/24 dev vqdst
for ns in "$NS_SRC" "$NS_DST"; do
	ip -n "$ns" link set lo up
done
ip -n "$NS_SRC" link set vqsrc up
ip -n "$NS_DST" link set vqdst up
SRC_RUN="ip netns exec $NS_SRC"
DST_RUN="ip netns exec $NS_DST"

SIZE=${QEMU_TEST_SIZE:-32M}
SEED=11
PORT=$(test_port 100)
NAME=qemu$PORT
IMG=$WORK/ram.img
export QT_OUT=$WORK/qtest.out
"$BIN/umem-vmm" --make-image "$IMG" --size "$SIZE" --seed "$SEED" ||
	{ t_fail "cannot make the image"; t_done; }

# The source sends its background stream from page 0 upwards (--bg-follow
# off), slowly (--throttle 4: 1 ms pause every 4 pages), so the top of RAM,
# where the client runs pmemsave, is still missing then.  The source is
# stopped (SIGSTOP) as soon as the region exists and resumed by the client
# once QEMU has mapped it: QEMU's startup takes many seconds under nested
# TCG, and the region must not be complete by then.  (Gone it would not
# be: umemd keeps the region until QEMU has mapped it, --vmm-wait; fd 9
# holds it too, from before umemd 0.6, when the node could vanish and
# QEMU would silently create a regular file there.)
$DST_RUN "$BIN/umemd" --incoming --listen "10.79.0.2:$PORT" --backend umem --name "$NAME" \
	--json >"$WORK/dst.json" 2>"$WORK/dst.err" &
DPID=$!
sleep 0.2
$SRC_RUN "$BIN/umemd" --outgoing --ram "$IMG" --connect "10.79.0.2:$PORT" --connect-wait 20 \
	--bg-follow off --throttle 4 >/dev/null 2>"$WORK/src.err" &
SPID=$!
if wait_for "/dev/umem-$NAME" 20 && kill -STOP "$SPID" && exec 9<>"/dev/umem-$NAME"; then
	t_ok "umemd --incoming created /dev/umem-$NAME ($SIZE), umemd --outgoing serves it from $NS_SRC"
	# shellcheck disable=SC2016
	t_run_tap "qtest_umem.py" bash -c 'set -o pipefail; timeout 150 "$@" | tee "$QT_OUT"' _ \
		$DST_RUN python3 userspace/qemu/qtest_umem.py \
		--qemu "$QEMU" --mem-path "/dev/umem-$NAME" --image "$IMG" \
		--reads 64 --writes 16 --pmem-size 2M --wait-pid "$DPID" --resume-pid "$SPID" \
		--timeout 30 --workdir "$WORK/qt"
	exec 9>&-
	# the client's diagnostics (mismatches, QEMU's log) for the failures
	grep '^#   ' "$QT_OUT" | head -n 40
else
	t_fail "no /dev/umem-$NAME within 20 s"
	exec 9>&- 2>/dev/null
fi
kill -CONT "$SPID" 2>/dev/null
wait_pid "$SPID" 120; src=$WAIT_RC
wait_pid "$DPID" 60; drc=$WAIT_RC
SPID= DPID=
if [ "$src" = 0 ] && [ "$drc" = 0 ] && grep -q '"ok":true' "$WORK/dst.json"; then
	t_ok "umemd source and destination finished cleanly"
else
	t_fail "umemd: source exit $src, destination exit $drc"
	tail -n 5 "$WORK/src.err" "$WORK/dst.err" | sed 's/^/#   /'
fi
req=$(sed -n 's/.*"pages_requested":\([0-9]*\).*/\1/p' "$WORK/dst.json")
bg=$(sed -n 's/.*"pages_background":\([0-9]*\).*/\1/p' "$WORK/dst.json")
tot=$(sed -n 's/.*"total_ms":\([0-9.]*\).*/\1/p' "$WORK/dst.json")
echo "# migration ${tot:-?} ms; pages requested by QEMU's faults: ${req:-?}, sent in the background: ${bg:-?}"
sed -n 's/.*"latency_us":\({[^}]*}\).*/#   request latency (us): \1/p' "$WORK/dst.json"
# 64 reads + 16 writes + ~8 touched pages, plus the missing pages of the
# three 2 MiB ranges read by pmemsave (QMP, HMP) and /proc/PID/mem.
[ "${req:-0}" -ge 300 ]
t_check $? "QEMU's accesses were served as page requests (${req:-0} >= 300: the saved ranges were partly missing)"

left=$(ls /dev/umem-* 2>/dev/null | wc -l)
t_check "$left" "no /dev/umem-* node left behind after QEMU quit ($left)"
t_done
