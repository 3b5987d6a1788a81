#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A real Linux guest migrates with its RAM by umem postcopy (make demo-qemu
# GUEST=linux): the kernel this VM runs, booted by QEMU with a busybox
# initramfs (userspace/qemu/linux-guest), virtio-rng and virtio-net driven
# by it, and a workload keeping per-page checksums of 32 MiB that it
# re-checks and rewrites pass after pass.  qemu_migrate.py moves it from a
# source QEMU (RAM in /dev/shm) to a destination QEMU on /dev/umem-NAME:
# QEMU loads the virtio devices' state (their rings are in guest RAM)
# before the guest runs, umemd serves every page.  Inside the guest
# (module loaded, cwd = repo root).  Documentation/qemu.rst.
#
# Booting Linux in QEMU inside the TCG test VM takes minutes, so the suite
# is an explicit skip unless UMEM_LINUX_GUEST=1 (one migration, checked);
# UMEM_LINUX_GUEST=2 adds a second boot, migrated with --stop-first (so
# the page requests made before the guest runs, i.e. by QEMU's loading of
# the device state, are counted), whose page 0 of the workload is
# corrupted in the stopped source's RAM: the guest must say MISMATCH.
#
# QEMU 7.2's TCG emulates BMI1/BMI2 wrongly for the TCG inside it: the
# Linux guest then panics early in boot (a general protection fault on
# iretq, EFLAGS with garbage high bits).  The VM must run with a CPU
# without them (make demo-qemu GUEST=linux passes
# VNG_OPTS="--qemu-opts=-cpu --qemu-opts=max,avx=off,avx2=off,bmi1=off,bmi2=off");
# with them under TCG the suite is an explicit skip.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh
. userspace/qemu/qemu-lib.sh

if [ "${UMEM_LINUX_GUEST:-0}" = 0 ]; then
	t_skip "the Linux guest boots for minutes under nested TCG: UMEM_LINUX_GUEST=1 runs it"
	t_done
fi
t_need_qemu
if grep -q '^model name.*QEMU TCG' /proc/cpuinfo && grep -qw 'bmi1\|bmi2' /proc/cpuinfo; then
	t_skip "this TCG VM's CPU has BMI1/BMI2, which QEMU's TCG inside it mistranslates (the Linux guest panics): run the VM with VNG_OPTS='--qemu-opts=-cpu --qemu-opts=max,avx=off,avx2=off,bmi1=off,bmi2=off'"
	t_done
fi
if [ ! -x "$QM_BIN/umemd" ] || [ ! -f "$QM_LINUX_BASE" ]; then
	t_fail "userspace or the Linux guest not built ($QM_BIN, $QM_LINUX_BASE): run make -C userspace on the host"
	t_done
fi
t_need_umem_python

WORK=$(mktemp -d /tmp/qemu-linux.XXXXXX)
cleanup() {
	qm_netns_down
	rm -f /dev/shm/umem-qemu-*.ram
	rm -rf "$WORK"
}
trap cleanup EXIT
if ! command -v ip >/dev/null || ! qm_netns_up qlin 10.84.0; then
	t_fail "network namespaces / veth unavailable"
	t_done
fi
if ! qm_linux_setup "$WORK" >"$WORK/setup.log" 2>&1; then
	t_fail "the Linux guest's initramfs: $(tail -n 1 "$WORK/setup.log")"
	t_done
fi
t_ok "initramfs for $(uname -r): $(sed -n 's/^[^:]*: [^:]*: //p' "$WORK/setup.log" | tail -n 1)"

MIB=${QEMU_LINUX_MIB:-128}
OUT=$WORK/out
start=$(date +%s)
QM_QUIET=1 QM_TIMEOUT=${QEMU_LINUX_TIMEOUT:-1200} qm_run "$OUT" --mode umem --mib "$MIB" \
	--print-every 1 --passes-before 3 --passes-after 3 --timeout 60 --start-timeout 120 \
	--workdir "$WORK/run"
rc=$?
eval "$(qm_vars "$OUT")"
banner=$(python3 -c 'import json, sys
for l in open(sys.argv[1]):
    if l.startswith("RESULT "):
        print(json.loads(l[7:]).get("guest_banner") or "")' "$OUT")

if [ -n "$R_FOUND" ]; then
	t_ok "qemu_migrate.py finished in $(($(date +%s) - start)) s (exit $rc): ${R_ERROR:-no error}"
else
	t_fail "qemu_migrate.py gave no result (exit $rc; 124 = timed out)"
	tail -n 20 "$OUT" | sed 's/^/#   /'
	t_done
fi
sed -n '/^== /,/^$/p' "$OUT" | sed '/^$/d; s/^/# /'

case $banner in
	*virtio_rng*virtio_net*) t_ok "the guest drives its virtio devices: $banner" ;;
	*) t_fail "the guest's virtio devices are not bound: '${banner:-no banner}'" ;;
esac

[ -z "$R_ERROR" ]
t_check $? "the migration ran to the end${R_ERROR:+: $R_ERROR}"

[ "$R_MISMATCHES" = 0 ]
t_check $? "the workload's checksums held on both sides: ${R_MISMATCHES:-?} mismatches"
[ "$R_MISMATCHES" = 0 ] || printf '%b\n' "$R_MISMATCH_LINES" | sed 's/^/#   /'

[ -n "$R_SRC_LAST" ] && [ -n "$R_DST_FIRST" ] && [ "$R_DST_FIRST" = $((R_SRC_LAST + 1)) ]
t_check $? "the workload went on where it stopped: last pass on the source ${R_SRC_LAST:-?}, first on the destination ${R_DST_FIRST:-?}"

[ "${R_AFTER:-0}" -ge 3 ]
t_check $? "every page rechecked after the RAM transfer ended: ${R_AFTER:-?} more passes (pass ${R_AT_DONE:-?} -> ${R_LAST:-?})"

[ "$R_DOK" = true ] && [ "$R_DEXIT" = 0 ] && [ "$R_SEXIT" = 0 ]
t_check $? "umemd --incoming summary ok (${R_DOK:-?}), both umemds exit 0 (${R_DEXIT:-?}, ${R_SEXIT:-?})"

[ -n "$R_REQ" ] && [ -n "$R_BG" ] && [ "$((R_REQ + R_BG))" = "$R_PAGES" ]
t_check $? "every page arrived once: requested ${R_REQ:-?} + background ${R_BG:-?} = ${R_PAGES:-?} pages of RAM"

if [ "${UMEM_LINUX_GUEST:-0}" = 2 ]; then
	OUT=$WORK/out-corrupt
	QM_QUIET=1 QM_TIMEOUT=${QEMU_LINUX_TIMEOUT:-1200} qm_run "$OUT" --mode umem --mib "$MIB" \
		--print-every 1 --passes-before 3 --passes-after 3 --timeout 60 --start-timeout 120 \
		--stop-first --test-corrupt 0 --workdir "$WORK/run-corrupt"
	rc=$?
	eval "$(qm_vars "$OUT")"
	before=$(sed -n 's/.*"requests_before_run": \([0-9]*\).*/\1/p' "$OUT")
	grep -E '^\[ *[0-9.]+ s\] (destination loaded|\(test\))' "$OUT" | sed 's/^/# /'
	[ -n "$before" ]
	t_check $? "--stop-first: the destination loaded the device state before the guest ran, ${before:-?} page requests by then"
	[ "$rc" != 0 ] && [ "${R_MISMATCHES:-0}" -ge 1 ] &&
		printf '%b\n' "$R_MISMATCH_LINES" | grep -q '^MISMATCH .*page 0:'
	t_check $? "a page corrupted in the source's RAM: the workload reports it (exit $rc, ${R_MISMATCHES:-?} mismatches)"
	printf '%b\n' "$R_MISMATCH_LINES" | sed 's/^/#   /'
fi

left=$(ls /dev/umem-* 2>/dev/null | wc -l)
t_check "$left" "no /dev/umem-* node left behind after QEMU quit ($left)"
t_done
