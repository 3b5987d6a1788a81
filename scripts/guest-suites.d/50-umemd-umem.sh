#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# umemd on the umem backend, inside the guest (module already loaded, cwd =
# repo root, userspace built on the host): libumem's umem tests, then full
# migrations between two network namespaces joined by a veth pair (with
# and without the preempt channel, with a netem delay, VMM by path and by
# socket), then the failure cases and misbehaving peers.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

BIN=$PWD/userspace/build/bin
[ -x "${UMEMD_BIN:-}/umemd" ] && BIN=$UMEMD_BIN
if [ ! -x "$BIN/umemd" ] || [ ! -x "$BIN/umem-vmm" ] || [ ! -x "$BIN/test-proto" ]; then
	t_fail "userspace not built ($BIN): run make -C userspace on the host"
	t_done
fi
if [ ! -e /dev/umem ]; then
	t_skip "umemd on umem: /dev/umem missing (module not loaded)"
	t_done
fi

t_run_tap test-libumem timeout 120 "$BIN/test-libumem" umem

WORK=$(mktemp -d /tmp/umemd-guest.XXXXXX)
cleanup() {
	mig_netns_down
	rm -rf "$WORK"
}
trap cleanup EXIT
. userspace/tests/migrate-lib.sh

if ! mig_netns_up umem 10.77.0 vsrc vdst; then
	t_skip "network namespaces / veth unavailable: migrations not run"
	t_done
fi
t_ok "two network namespaces joined by a veth pair (10.77.0.1 <-> 10.77.0.2)"
SIZE=${UMEMD_TEST_SIZE:-32M}
TMO=150

mig_full "umem, preempt" umem "" "" "--threads 2 --pattern random --duration 2 --verify-all" true
mig_full "umem, no preempt" umem "--no-preempt" "" "--threads 2 --pattern hotset --duration 2 --verify-all" false
mig_bw_cap "source --max-bandwidth 40" 40

# VMM by path: /dev/umem-NAME, no socket.  It may start after the last
# page is in: umemd holds the region for it (--vmm-wait).
mig_by_path "umem, VMM maps /dev/umem-NAME by path" node
mig_by_path "umem, VMM maps /dev/umem-NAME after the last page: umemd held it" late
mig_by_path "umem by path, --vmm-wait 1 and no VMM" never --vmm-wait 1

# netem delay on the veth pair (sch_netem is a module on Debian kernels).
modprobe sch_netem 2>/dev/null
if command -v tc >/dev/null &&
   ip netns exec "$NS_SRC" tc qdisc add dev vsrc root netem delay 5ms 2>/dev/null &&
   ip netns exec "$NS_DST" tc qdisc add dev vdst root netem delay 5ms 2>/dev/null; then
	mig_full "umem, preempt, netem 5ms each way" umem "" "" "--threads 2 --pattern random --duration 2 --verify-all" true
	mig_full "umem, no preempt, netem 5ms each way" umem "--no-preempt" "" "--threads 2 --pattern random --duration 2 --verify-all" false
	ip netns exec "$NS_SRC" tc qdisc del dev vsrc root 2>/dev/null
	ip netns exec "$NS_DST" tc qdisc del dev vdst root 2>/dev/null
else
	t_skip "netem: tc or sch_netem unavailable in this guest"
fi

mig_kill_source "source killed (umem)" umem
mig_kill_dest "destination killed (umem)" umem
mig_bad_input_cases umem
# No region may be left behind by any of the above.
left=$(ls /dev/umem-* 2>/dev/null | wc -l)
t_check "$left" "no /dev/umem-* node left behind ($left)"
t_done
