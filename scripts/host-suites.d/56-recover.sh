#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Postcopy recovery on loopback (uffd, uffd-minor; ASan + UBSan builds):
# with --recover on both sides a broken connection pauses the migration,
# the source reconnects, the destination sends its received map and the
# source re-sends what is missing; every page verified, no task killed.
# The link is cut by the source's --test-cut hook (3 times), then by
# killing a TCP proxy between them (3 times); the give-up case kills the
# source for good.  Dead links (no FIN) need network namespaces: the
# guest suite covers them.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

if ! make -s -C userspace SAN=1 >/tmp/umemd-recover-build.log 2>&1; then
	tail -n 30 /tmp/umemd-recover-build.log | sed 's/^/# /'
	t_fail "build userspace with SAN=1"
	t_done
fi
BIN=$PWD/userspace/build-san/bin
WORK=$(mktemp -d /tmp/umemd-recover.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ADDR=127.0.0.1
SRC_RUN=
DST_RUN=
SIZE=${UMEMD_TEST_SIZE:-32M}
TMO=120
. userspace/tests/migrate-lib.sh

if ! "$BIN/test-libumem" uffd >/dev/null 2>&1; then
	t_skip "userfaultfd unusable here (test-libumem uffd failed)"
	t_done
fi
for b in uffd uffd-minor; do
	mig_recover_cut "$b, 3 link cuts (--test-cut)" "$b" hook "--test-cut 1000"
	mig_recover_cut "$b, TCP proxy killed 3 times" "$b" proxy
done
mig_recover_lost "uffd, source gone for good" uffd giveup
mig_recover_lost "uffd, operator gives up (SIGTERM)" uffd cancel
t_done
