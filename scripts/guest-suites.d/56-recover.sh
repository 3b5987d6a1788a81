#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# guest-suite-kernels: main
# Postcopy recovery inside the guest, between two network namespaces: with
# --recover on both sides, the source connects through a TCP proxy that
# is killed (and restarted) three times at random points during postcopy
# with a workload running, so every connection breaks at once; then the
# veth link is set down three times for longer than --link-timeout (a
# dead link: no FIN, no RST); every run must finish with every page
# verified and no task killed.  Then the source's own --test-cut hook, and a give-up case (source killed for
# good: the destination stays paused for --recover-wait, then fails, and
# no VMM thread hangs).  umem backend, then the userfaultfd backend.
# The host runs the uffd proxy, --test-cut, give-up and cancel cases
# (scripts/host-suites.d/56-recover.sh) on the same daemon code, so here uffd
# gets only what the host cannot do, the dead link (a veth between network
# namespaces); RECOVER_UFFD_ALL=1 runs every case for it too.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

BIN=$PWD/userspace/build/bin
[ -x "${UMEMD_BIN:-}/umemd" ] && BIN=$UMEMD_BIN
if [ ! -x "$BIN/umemd" ] || [ ! -x "$BIN/umem-vmm" ]; then
	t_fail "userspace not built ($BIN): run make -C userspace on the host"
	t_done
fi

WORK=$(mktemp -d /tmp/umemd-recover.XXXXXX)
cleanup() {
	mig_netns_down
	rm -rf "$WORK"
}
trap cleanup EXIT
. userspace/tests/migrate-lib.sh

if ! mig_netns_up rc 10.79.0 rsrc rdst; then
	t_skip "network namespaces / veth unavailable: recovery not run"
	t_done
fi
LINK_DOWN="ip -n $NS_DST link set rdst down"
LINK_UP="ip -n $NS_DST link set rdst up"
SIZE=${UMEMD_TEST_SIZE:-16M}
TMO=150

backends=
[ -e /dev/umem ] && backends=umem
"$BIN/test-libumem" uffd >/dev/null 2>&1 && backends="$backends uffd"
[ -n "$backends" ] || t_skip "neither /dev/umem nor userfaultfd usable"
for b in $backends; do
	mig_recover_cut "$b, link down 3 times (dead link, no FIN)" "$b" link
	[ "$b" = umem ] || [ "${RECOVER_UFFD_ALL:-0}" = 1 ] || continue
	mig_recover_cut "$b, TCP proxy killed 3 times" "$b" proxy
	mig_recover_cut "$b, 3 link cuts (--test-cut)" "$b" hook "--test-cut 700"
	mig_recover_lost "$b, source gone for good" "$b" giveup
	mig_recover_lost "$b, operator gives up (SIGTERM)" "$b" cancel
done
if [ -e /dev/umem ]; then
	left=$(ls /dev/umem-* 2>/dev/null | wc -l)
	t_check "$left" "no /dev/umem-* node left behind ($left)"
fi
t_done
