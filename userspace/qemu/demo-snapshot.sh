#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# userspace/qemu/demo-snapshot.sh - snapshot a running QEMU guest by umem
# write-protect and restore it lazily, compared with QEMU's own
# background-snapshot and with an eager restore (make demo-snapshot;
# Documentation/qemu.rst, part 3).
#
#   MIB=32        guest RAM in MiB (the guest checks all of it above 2 MiB)
#   PRINT=1       the guest prints every PRINT-th verify pass
#   PASSES=3      verify passes to wait for before and after each save/restore
#   PHASES=...    qemu_snapshot.py --phases (default: umem-save, qemu-save, lazy,
#                 eager, lazy-slow, eager-slow, qemu-load)
#   THROTTLE=2    the slow disk of lazy-slow and eager-slow: umemd --restore
#                 --throttle THROTTLE (1 ms pause every THROTTLE pages)
#
# Runs as root with the umem module (loaded from build/mod-$(uname -r)/ if
# needed), in a virtme-ng guest or on a test host.  Exit 0 only if every
# phase passed: each saved guest kept running, each restored guest went on
# from the pass it was saved in, and no guest reported a mismatch.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/qemu/qemu-lib.sh

MIB=${MIB:-32}
PRINT=${PRINT:-1}
PASSES=${PASSES:-3}
PHASES=${PHASES:-umem-save,qemu-save,lazy,eager,lazy-slow,eager-slow,qemu-load}
THROTTLE=${THROTTLE:-2}

die() { printf 'demo-snapshot: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (the module, QEMU's userfaultfd)"
command -v "${QEMU:-qemu-system-x86_64}" >/dev/null || die "qemu-system-x86_64 not installed"
[ -x "$QM_BIN/umemd" ] && [ -x "$QM_BIN/umemctl" ] && [ -f "$QM_GUEST" ] ||
	die "build first: make -C userspace"
qm_load_module || die "/dev/umem missing: load the umem module"

WORK=$(mktemp -d /tmp/umem-demo-snapshot.XXXXXX)
cleanup() { rm -f /dev/shm/umem-qsnap-*.ram /dev/shm/umem-qload-*.ram; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 143' TERM INT
echo "=== $MIB MiB guest RAM; the guest checks $((MIB - 2)) MiB and prints its verify passes"
echo "=== phases: $PHASES"
set -o pipefail
python3 userspace/qemu/qemu_snapshot.py --qemu "${QEMU:-qemu-system-x86_64}" \
	--guest "$QM_GUEST" --umemd "$QM_BIN/umemd" --umemctl "$QM_BIN/umemctl" \
	--phases "$PHASES" --slow-throttle "$THROTTLE" --mib "$MIB" --print-every "$PRINT" \
	--passes-before "$PASSES" --passes-after "$PASSES" --workdir "$WORK/run" 2>&1 |
	tee "$WORK/out"
rc=$?
grep -q '^RESULT {"ok": true' "$WORK/out" || rc=1
if [ "$rc" = 0 ]; then
	echo "=== demo-snapshot OK: every saved and restored guest verified its RAM, no mismatch"
else
	echo "=== demo-snapshot FAILED (exit $rc); logs:"
	for f in "$WORK"/run/*/*.err; do
		[ -s "$f" ] && { echo "--- $f"; tr '\r' '\n' <"$f" | tail -n 8; }
	done
fi
exit "$rc"
