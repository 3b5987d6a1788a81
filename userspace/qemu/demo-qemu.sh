#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# userspace/qemu/demo-qemu.sh - migrate a running QEMU guest whose RAM goes
# by umem postcopy (make demo-qemu; Documentation/qemu.rst, part 2).
#
#   GUEST=test    the tiny bare-metal test guest (userspace/qemu/guest)
#   GUEST=linux   a real Linux guest instead (userspace/qemu/linux-guest):
#                 the kernel this VM runs, a busybox initramfs with its
#                 virtio modules (virtio-rng, virtio-net), and a workload
#                 that keeps checking WMIB MiB by per-page checksums; then,
#                 in the same run, the same guest by QEMU's own postcopy
#                 (a table of both at the end)
#   MIB=64        guest RAM in MiB (the test guest checks all of it above
#                 2 MiB); GUEST=linux: default and minimum 128
#   WMIB=32       GUEST=linux: MiB the workload checks
#   PRINT=1       the guest prints every PRINT-th verify pass
#   PASSES=3      verify passes to wait for before and after the migration
#   HUGE=1        2 MiB pages: the destination's region has 2 MiB pages
#                 (umemd --page-size 2m, QEMU maps it with align=2M) and
#                 must end PMD-mapped in full; then, in the same run, QEMU's
#                 own postcopy with both QEMUs' RAM on hugetlbfs, for
#                 comparison (a table of both at the end)
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

GUEST=${GUEST:-test}
case $GUEST in
	test) MIB=${MIB:-64} ;;
	linux) MIB=${MIB:-128} ;;
	*) echo "demo-qemu: GUEST=test or GUEST=linux" >&2; exit 2 ;;
esac
PRINT=${PRINT:-1}
PASSES=${PASSES:-3}
HUGE=${HUGE:-0}

die() { printf 'demo-qemu: %s\n' "$*" >&2; exit 1; }
[ "$GUEST" != linux ] || qm_linux_mib "$MIB" || exit 2
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
if [ "$GUEST" = linux ]; then
	qm_linux_setup "$WORK" || die "cannot build the Linux guest's initramfs"
	echo "=== a Linux guest, $MIB MiB RAM: kernel ${QM_GUEST_ARGS[1]}, virtio-rng + virtio-net;"
	echo "    its workload checks ${WMIB:-32} MiB by per-page checksums and prints its passes"
else
	echo "=== $MIB MiB guest RAM; the guest checks $((MIB - 2)) MiB and prints its verify passes"
fi
huge=()
[ "$HUGE" = 1 ] && huge=(--huge) &&
	echo "=== 2 MiB pages: a umem region of 2 MiB pages, PMD-mapped by the destination QEMU"
qm_run "$WORK/out" --mode umem --mib "$MIB" --print-every "$PRINT" "${huge[@]}" \
	--passes-before "$PASSES" --passes-after "$PASSES" --workdir "$WORK/run"
rc=$?
grep -q '^RESULT ' "$WORK/out" || rc=1
if [ "$rc" = 0 ] && { [ "$HUGE" = 1 ] || [ "$GUEST" = linux ]; }; then
	if [ "$HUGE" = 1 ]; then
		echo "=== the same guest by QEMU's own postcopy, RAM on hugetlbfs on both sides"
	else
		echo "=== the same guest by QEMU's own postcopy (postcopy-ram, anonymous RAM)"
	fi
	qm_run "$WORK/out-pc" --mode postcopy "${huge[@]}" --mib "$MIB" --print-every "$PRINT" \
		--passes-before "$PASSES" --passes-after "$PASSES" --workdir "$WORK/run-pc"
	pc_rc=$?
	HUGE=$HUGE python3 - "$WORK/out" "$WORK/out-pc" <<'PY'
import json, os, sys
rows = []
for f in sys.argv[1:]:
    r = next((json.loads(l[7:]) for l in open(f) if l.startswith("RESULT ")), {})
    q = r.get("qemu") or {}
    d = r.get("umemd_dst") or {}
    bl = d.get("blocked_ms", q.get("vcpu_blocktime_ms"))
    if isinstance(bl, list):   # QEMU: per vCPU
        bl = float(sum(bl))
    rows.append((r.get("mode", "?"), r.get("ok"), r.get("ram_done_ms"), r.get("downtime_ms"), bl,
                 r.get("dst_pmd_kb", r.get("dst_hugetlb_kb")), r.get("error") or ""))
print("=== %-9s %-5s %12s %12s %14s %18s" % ("2 MiB" if os.environ["HUGE"] == "1" else "", "ok",
                                              "ram_done_ms", "downtime_ms", "vcpu_blocked_ms",
                                              "dst huge-mapped kB"))
for m, ok, rd, dt, bl, kb, err in rows:
    f = lambda v: "-" if v is None else (f"{v:.0f}" if isinstance(v, float) else str(v))
    print("=== %-9s %-5s %12s %12s %14s %18s %s" % (m, ok, f(rd), f(dt), f(bl), f(kb), err))
PY
	if [ "$pc_rc" != 0 ]; then
		echo "=== QEMU's own postcopy did not complete (exit $pc_rc): see the table; the umem run passed"
	fi
fi
if [ "$rc" = 0 ]; then
	echo "=== demo-qemu OK: the $GUEST guest kept verifying its RAM across the migration, no mismatch"
else
	echo "=== demo-qemu FAILED (exit $rc); logs (the guests' serial output kept in build/demo-qemu-failed/):"
	mkdir -p build/demo-qemu-failed && cp "$WORK"/run*/*.serial "$WORK"/run*/*.err build/demo-qemu-failed/ 2>/dev/null
	for f in "$WORK"/run/*.err; do
		[ -s "$f" ] && { echo "--- $f"; tr '\r' '\n' <"$f" | grep -v 'pages (' | tail -n 8; }
	done
fi
exit "$rc"
