#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# userspace/qemu/demo-qemu.sh - migrate a running QEMU guest whose RAM goes
# by umem postcopy (make demo-qemu; Documentation/qemu.rst, part 2).
#
#   MIB=64        guest RAM in MiB (the guest checks all of it above 2 MiB)
#   PRINT=1       the guest prints every PRINT-th verify pass
#   PASSES=3      verify passes to wait for before and after the migration
#
# Two network namespaces: the source QEMU (RAM in /dev/shm, share=on) and
# umemd --outgoing in one, umemd --incoming, /dev/umem-NAME and the
# destination QEMU (-incoming defer, x-ignore-shared) in the other.  Runs
# as root with the umem module (loaded from build/mod-$(uname -r)/ if
# needed), in a virtme-ng guest or on a test host.  Exit 0 only if the
# guest reported no mismatch and kept verifying after the RAM transfer.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/qemu/qemu-lib.sh

MIB=${MIB:-64}
PRINT=${PRINT:-1}
PASSES=${PASSES:-3}

die() { printf 'demo-qemu: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (network namespaces, the module)"
command -v "${QEMU:-qemu-system-x86_64}" >/dev/null || die "qemu-system-x86_64 not installed"
[ -x "$QM_BIN/umemd" ] && [ -f "$QM_GUEST" ] || die "build first: make -C userspace"
qm_load_module || die "/dev/umem missing: load the umem module"

WORK=$(mktemp -d /tmp/umem-demo-qemu.XXXXXX)
cleanup() { qm_netns_down; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 143' TERM INT
qm_netns_up qdemo 10.81.0 || die "cannot create network namespaces / veth"
echo "=== network namespaces $QM_NS_SRC (10.81.0.1) and $QM_NS_DST (10.81.0.2)"
echo "=== $MIB MiB guest RAM; the guest checks $((MIB - 2)) MiB and prints its verify passes"
qm_run "$WORK/out" --mode umem --mib "$MIB" --print-every "$PRINT" \
	--passes-before "$PASSES" --passes-after "$PASSES" --workdir "$WORK/run"
rc=$?
grep -q '^RESULT ' "$WORK/out" || rc=1
if [ "$rc" = 0 ]; then
	echo "=== demo-qemu OK: the guest kept verifying its RAM across the migration, no mismatch"
else
	echo "=== demo-qemu FAILED (exit $rc); logs:"
	for f in "$WORK"/run/*.err; do
		[ -s "$f" ] && { echo "--- $f"; tr '\r' '\n' <"$f" | grep -v 'pages (' | tail -n 8; }
	done
fi
exit "$rc"
