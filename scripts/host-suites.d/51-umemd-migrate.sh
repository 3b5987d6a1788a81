#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Full postcopy migrations on loopback with the uffd and uffd-minor
# backends (umemd and umem-vmm built with ASan + UBSan), with and without
# the preempt channel, every page verified; then the failure cases: source
# killed, destination killed, and misbehaving peers.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

if ! make -s -C userspace SAN=1 >/tmp/umemd-suite-build.log 2>&1; then
	tail -n 30 /tmp/umemd-suite-build.log | sed 's/^/# /'
	t_fail "build userspace with SAN=1"
	t_done
fi
BIN=$PWD/userspace/build-san/bin
WORK=$(mktemp -d /tmp/umemd-host.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ADDR=127.0.0.1
SRC_RUN=
DST_RUN=
SIZE=${UMEMD_TEST_SIZE:-64M}
TMO=120
. userspace/tests/migrate-lib.sh

if ! "$BIN/test-libumem" uffd >/dev/null 2>&1; then
	t_skip "userfaultfd unusable here (test-libumem uffd failed)"
	t_done
fi

for b in uffd uffd-minor; do
	mig_full "$b, preempt" "$b" "" "" "--threads 2 --pattern random --duration 2 --verify-all" true
	mig_full "$b, no preempt" "$b" "--no-preempt" "" "--threads 2 --pattern hotset --duration 2 --verify-all" false
done
mig_full "uffd, preempt, bg-follow off, seq" uffd "" "--bg-follow off" "--threads 4 --pattern seq --duration 1 --verify-all" true
# Roles swapped: source listens, destination connects.
PORT=$((PORT + 1))
mig_image
rm -f "$WORK/swap.sock"
"$BIN/umemd" --outgoing --ram "$IMG" --listen "$ADDR:$PORT" >/dev/null 2>"$WORK/swap-src.err" &
SPID=$!
sleep 0.2
"$BIN/umemd" --incoming --connect "$ADDR:$PORT" --backend uffd --vmm-socket "$WORK/swap.sock" >/dev/null 2>"$WORK/swap-dst.err" &
DPID=$!
wait_for "$WORK/swap.sock" 20
"$BIN/umem-vmm" --region "$WORK/swap.sock" --seed "$SEED" --verify-all --threads 2 2>"$WORK/swap-vmm.err"
vrc=$?
wait_pid "$SPID" 60; src=$WAIT_RC
wait_pid "$DPID" 60; drc=$WAIT_RC
t_check $((vrc + src + drc)) "source --listen / destination --connect (vmm=$vrc src=$src dst=$drc)"

for b in uffd uffd-minor; do
	mig_kill_source "source killed ($b)" "$b"
done
mig_kill_dest "destination killed (uffd)" uffd
mig_bad_input_cases uffd
t_done
