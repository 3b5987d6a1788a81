#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# 2 MiB pages on the umem backend, inside the guest (module loaded, cwd =
# repo root, userspace built on the host): libumem's 2 MiB tests on umem
# (PMD mappings checked in smaps; write protection of 2 MiB pages too),
# then 2 MiB migrations on loopback with the preempt channel and without,
# VMM by socket and by the node's path, with a slow source so that
# requests interrupt partly sent huge pages.
# The uffd backends on hugetlbfs and the protocol versions are tested on
# the host (scripts/host-suites.d/58-huge.sh).
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

BIN=$PWD/userspace/build/bin
[ -x "${UMEMD_BIN:-}/umemd" ] && BIN=$UMEMD_BIN
if [ ! -x "$BIN/umemd" ] || [ ! -x "$BIN/umem-vmm" ] || [ ! -x "$BIN/test-libumem" ]; then
	t_fail "userspace not built ($BIN): run make -C userspace on the host"
	t_done
fi
if [ ! -e /dev/umem ]; then
	t_skip "2 MiB pages on umem: /dev/umem missing (module not loaded)"
	t_done
fi
out=$("$BIN/test-libumem" --huge umem 2>&1)
if printf '%s\n' "$out" | grep -q "lacks UMEM_F_PAGE_2M"; then
	t_skip "2 MiB pages on umem: $(printf '%s\n' "$out" | grep -m1 -o 'the umem module lacks.*')"
	t_done
fi
t_run_tap test-libumem-huge timeout 120 "$BIN/test-libumem" --huge umem

WORK=$(mktemp -d /tmp/umemd-huge.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ADDR=127.0.0.1
SRC_RUN=
DST_RUN=
SIZE=64M
TMO=120
. userspace/tests/migrate-lib.sh
. userspace/tests/huge-lib.sh
mig_image

huge_mig "umem, 2 MiB, preempt" umem "" True
huge_mig "umem, 2 MiB, no preempt" umem "--no-preempt" False
VMM_PATH=1 huge_mig "umem, 2 MiB, preempt, VMM by path" umem "" True
t_done
