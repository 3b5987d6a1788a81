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
cleanup() {
	mig_netns_down
	rm -rf "$WORK"
}
trap cleanup EXIT
. userspace/tests/migrate-lib.sh

if ! mig_netns_up pc 10.78.0 psrc pdst; then
	t_skip "network namespaces / veth unavailable: precopy migrations not run"
	t_done
fi
SIZE=${UMEMD_TEST_SIZE:-16M}
TMO=150
PCRATE=${PCRATE:-5000}
PCDIR=/dev/shm
[ -d /dev/shm ] && [ -w /dev/shm ] || PCDIR=$WORK

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
