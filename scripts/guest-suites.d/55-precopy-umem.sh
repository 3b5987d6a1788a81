#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Live migration of a running process inside the guest, between two
# network namespaces: umem-vmm --writer keeps writing its shared mapping
# of a RAM file while umemd --outgoing --pid runs precopy rounds with
# soft-dirty tracking (Debian kernels have CONFIG_MEM_SOFT_DIRTY), stops it
# and switches to postcopy with DISCARD.  The destination VMM must read the
# writer's last value of every page.  umem backend first, then the
# userfaultfd backends, then the content-hash method on umem.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

BIN=$PWD/userspace/build/bin
[ -x "${UMEMD_BIN:-}/umemd" ] && BIN=$UMEMD_BIN
if [ ! -x "$BIN/umemd" ] || [ ! -x "$BIN/umem-vmm" ]; then
	t_fail "userspace not built ($BIN): run make -C userspace on the host"
	t_done
fi

WORK=$(mktemp -d /tmp/umemd-precopy.XXXXXX)
NS_SRC=pc-src-$$
NS_DST=pc-dst-$$
cleanup() {
	ip netns del "$NS_SRC" 2>/dev/null
	ip netns del "$NS_DST" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v ip >/dev/null ||
   ! ip netns add "$NS_SRC" || ! ip netns add "$NS_DST" ||
   ! ip link add psrc netns "$NS_SRC" type veth peer name pdst netns "$NS_DST"; then
	t_skip "network namespaces / veth unavailable: precopy migrations not run"
	t_done
fi
ip -n "$NS_SRC" addr add 10.78.0.1/24 dev psrc
ip -n "$NS_DST" addr add 10.78.0.2/24 dev pdst
for ns in "$NS_SRC" "$NS_DST"; do
	ip -n "$ns" link set lo up
done
ip -n "$NS_SRC" link set psrc up
ip -n "$NS_DST" link set pdst up

ADDR=10.78.0.2
SRC_ADDR=10.78.0.1
SRC_RUN="ip netns exec $NS_SRC"
DST_RUN="ip netns exec $NS_DST"
SIZE=${UMEMD_TEST_SIZE:-16M}
TMO=150
PCRATE=${PCRATE:-5000}
PCDIR=/dev/shm
[ -d /dev/shm ] && [ -w /dev/shm ] || PCDIR=$WORK
. userspace/tests/migrate-lib.sh

if probe=$("$BIN/umemd" --probe-dirty); then
	SOFT=1
else
	SOFT=0
	echo "# $probe"
fi

backends=
[ -e /dev/umem ] && backends=umem
"$BIN/test-libumem" uffd >/dev/null 2>&1 && backends="$backends uffd uffd-minor"
[ -n "$backends" ] || t_skip "neither /dev/umem nor userfaultfd usable"
for b in $backends; do
	if [ "$SOFT" = 1 ]; then
		mig_precopy "$b, soft-dirty, --postcopy-after 3" "$b" "--dirty soft-dirty --postcopy-after 3" '"dirty_tracking":"soft-dirty.*"rounds":3,'
	else
		t_skip "$b, soft-dirty: kernel without CONFIG_MEM_SOFT_DIRTY"
	fi
done
if [ -e /dev/umem ]; then
	if [ "$SOFT" = 1 ]; then
		mig_precopy "umem, soft-dirty, automatic switch" umem "--dirty soft-dirty" '"dirty_tracking":"soft-dirty'
		mig_precopy "umem, soft-dirty, SIGUSR1 switches now" umem "--dirty soft-dirty --postcopy-after 64 --throttle 2" '"switch":"SIGUSR1"' 1
		mig_precopy_nomap
	fi
	mig_precopy "umem, content hash, --postcopy-after 2" umem "--dirty hash --postcopy-after 2" '"rounds":2,'
	mig_precopy_cancel "umem, SIGTERM during precopy" umem
	left=$(ls /dev/umem-* 2>/dev/null | wc -l)
	t_check "$left" "no /dev/umem-* node left behind ($left)"
else
	t_skip "umem: /dev/umem missing (module not loaded)"
fi
t_done
