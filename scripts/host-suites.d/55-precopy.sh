#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Live migration of a running process on loopback (uffd and uffd-minor
# backends, ASan + UBSan builds): umem-vmm --writer keeps writing its
# shared mapping of a /dev/shm file while umemd --outgoing --pid runs
# precopy rounds, stops it and switches to postcopy with DISCARD; the
# destination VMM must read the writer's last value of every page.
# Soft-dirty tracking needs CONFIG_MEM_SOFT_DIRTY: where the kernel lacks
# it those cases are reported as skipped, and the content-hash method
# (any kernel) is tested instead.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

if ! make -s -C userspace SAN=1 >/tmp/umemd-precopy-build.log 2>&1; then
	tail -n 30 /tmp/umemd-precopy-build.log | sed 's/^/# /'
	t_fail "build userspace with SAN=1"
	t_done
fi
BIN=$PWD/userspace/build-san/bin
WORK=$(mktemp -d /tmp/umemd-precopy.XXXXXX)
trap 'rm -rf "$WORK"; rm -f /dev/shm/umem-precopy-$$-*' EXIT
ADDR=127.0.0.1
SRC_RUN=
DST_RUN=
SIZE=${UMEMD_TEST_SIZE:-32M}
TMO=120
PCDIR=/dev/shm
[ -d /dev/shm ] && [ -w /dev/shm ] || PCDIR=$WORK
. userspace/tests/migrate-lib.sh

if ! "$BIN/test-libumem" uffd >/dev/null 2>&1; then
	t_skip "userfaultfd unusable here (test-libumem uffd failed)"
	t_done
fi

if probe=$("$BIN/umemd" --probe-dirty); then
	SOFT=1
else
	SOFT=0
	echo "# $probe"
fi

for b in uffd uffd-minor; do
	mig_precopy "$b, content hash, --postcopy-after 3" "$b" "--dirty hash --postcopy-after 3" '"rounds":3,'
	mig_precopy "$b, content hash, automatic switch" "$b" "--dirty hash" '"switch":"(dirty set stopped shrinking|converged|round limit)'
	if [ "$SOFT" = 1 ]; then
		mig_precopy "$b, soft-dirty, --postcopy-after 3" "$b" "--dirty soft-dirty --postcopy-after 3" '"dirty_tracking":"soft-dirty.*"rounds":3,'
		mig_precopy "$b, soft-dirty, automatic switch" "$b" "--dirty soft-dirty" '"dirty_tracking":"soft-dirty'
	else
		t_skip "$b, soft-dirty, --postcopy-after 3: kernel without CONFIG_MEM_SOFT_DIRTY"
		t_skip "$b, soft-dirty, automatic switch: kernel without CONFIG_MEM_SOFT_DIRTY"
	fi
done
# SIGUSR1 switches in the middle of a round (throttled: rounds are slow).
mig_precopy "uffd, SIGUSR1 switches now" uffd "--postcopy-after 64 --throttle 8" '"switch":"SIGUSR1"' 0.5
mig_precopy_cancel "uffd, SIGTERM during precopy" uffd
if [ "$SOFT" = 1 ]; then
	mig_precopy_nomap
else
	t_skip "--pid without a shared mapping: kernel without CONFIG_MEM_SOFT_DIRTY"
fi
t_done
