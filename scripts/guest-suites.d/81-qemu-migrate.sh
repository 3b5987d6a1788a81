#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# guest-suite-kernels: main
# A running QEMU guest migrates with its RAM by umem postcopy: the tiny
# test guest (userspace/qemu/guest) keeps verifying 30 MiB of its 32 MiB
# while userspace/qemu/qemu_migrate.py moves it from a source QEMU (RAM in
# /dev/shm, share=on) to a destination QEMU on /dev/umem-NAME; QEMU
# migrates the device state (x-ignore-shared), umemd the RAM, between two
# network namespaces.  Inside the guest (module loaded, cwd = repo root).
# Then the same with 2 MiB pages, the destination's RAM PMD-mapped in full.
# Documentation/qemu.rst, part 2.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh
. userspace/qemu/qemu-lib.sh

t_need_qemu
if [ ! -x "$QM_BIN/umemd" ] || [ ! -f "$QM_GUEST" ]; then
	t_fail "userspace or the test guest not built ($QM_BIN, $QM_GUEST): run make -C userspace on the host"
	t_done
fi
t_need_umem_python

WORK=$(mktemp -d /tmp/qemu-migrate.XXXXXX)
cleanup() {
	qm_netns_down
	rm -f /dev/shm/umem-qemu-*.ram
	rm -rf "$WORK"
}
trap cleanup EXIT
if ! command -v ip >/dev/null || ! qm_netns_up qmig 10.82.0; then
	t_fail "network namespaces / veth unavailable"
	t_done
fi

MIB=${QEMU_MIGRATE_MIB:-32}
OUT=$WORK/out
# Every step of qemu_migrate.py has its own bound (base --timeout 30 s);
# the whole run is cut at 170 s (SIGTERM: it kills its QEMUs and umemds).
# --check-pages: every page umemd installs is compared with the source's
# RAM too, not only what the guest reads.
QM_QUIET=1 QM_TIMEOUT=170 qm_run "$OUT" --mode umem --mib "$MIB" --print-every 1 \
	--passes-before 3 --passes-after 3 --timeout 30 --start-timeout 90 --workdir "$WORK/run" \
	--check-pages
rc=$?
eval "$(qm_vars "$OUT")"

if [ -n "$R_FOUND" ]; then
	t_ok "qemu_migrate.py finished (exit $rc): ${R_ERROR:-no error}"
else
	t_fail "qemu_migrate.py gave no result (exit $rc; 124 = timed out)"
	tail -n 20 "$OUT" | sed 's/^/#   /'
	t_done
fi
sed -n '/^== /,/^$/p' "$OUT" | sed '/^$/d; s/^/# /'
grep -E '^\[ *[0-9.]+ s\] (stop the source|destination runs|umemd --incoming done)' "$OUT" |
	sed 's/^/# /'

[ -z "$R_ERROR" ]
t_check $? "the migration ran to the end${R_ERROR:+: $R_ERROR}"

[ "$R_MISMATCHES" = 0 ]
t_check $? "the guest verified its RAM on both sides: ${R_MISMATCHES:-?} mismatches"
[ "$R_MISMATCHES" = 0 ] || printf '%b\n' "$R_MISMATCH_LINES" | sed 's/^/#   /'

[ -n "$R_SRC_LAST" ] && [ -n "$R_DST_FIRST" ] && [ "$R_DST_FIRST" = $((R_SRC_LAST + 1)) ]
t_check $? "the guest went on where it stopped: last pass on the source ${R_SRC_LAST:-?}, first on the destination ${R_DST_FIRST:-?}"

[ "${R_AFTER:-0}" -ge 3 ]
t_check $? "the guest kept running after the RAM transfer ended: ${R_AFTER:-?} more passes (pass ${R_AT_DONE:-?} -> ${R_LAST:-?})"

[ "$R_DOK" = true ] && [ "$R_DEXIT" = 0 ] && [ "$R_SEXIT" = 0 ]
t_check $? "umemd --incoming summary ok (${R_DOK:-?}), both umemds exit 0 (${R_DEXIT:-?}, ${R_SEXIT:-?})"

[ -n "$R_REQ" ] && [ -n "$R_BG" ] && [ "$((R_REQ + R_BG))" = "$R_PAGES" ]
t_check $? "every page arrived once: requested ${R_REQ:-?} + background ${R_BG:-?} = ${R_PAGES:-?} pages of RAM"

[ "${R_REQ:-0}" -ge 1 ]
t_check $? "the running guest's faults were served as page requests (${R_REQ:-0})"

[ "$R_CHECKED" = "$R_PAGES" ] && [ "$R_WRONG" = 0 ]
t_check $? "--check-pages: each of the ${R_CHECKED:-?} pages umemd installed equals the stopped source's RAM (${R_WRONG:-?} differ)"

# The same with 2 MiB pages (make demo-qemu HUGE=1): umemd --page-size 2m,
# the destination QEMU maps the region with align=2M, and after the
# migration its whole mapping must be PMD-mapped.
if [ ! -d /sys/kernel/mm/transparent_hugepage ]; then
	t_skip "2 MiB pages: this kernel has no transparent huge pages (no UMEM_F_PAGE_2M)"
else
	OUT=$WORK/out-huge
	QM_QUIET=1 QM_TIMEOUT=170 qm_run "$OUT" --mode umem --huge --mib "$MIB" --print-every 1 \
		--passes-before 3 --passes-after 3 --timeout 30 --start-timeout 90 \
		--workdir "$WORK/run-huge" --check-pages
	rc=$?
	eval "$(qm_vars "$OUT")"
	[ -n "$R_FOUND" ] && [ -z "$R_ERROR" ] && [ "$R_MISMATCHES" = 0 ] && [ "${R_AFTER:-0}" -ge 3 ]
	t_check $? "2 MiB pages: the guest migrated and kept verifying (exit $rc, ${R_MISMATCHES:-?} mismatches, ${R_AFTER:-?} passes after)${R_ERROR:+: $R_ERROR}"
	[ "$R_DOK" = true ] && [ -n "$R_DPAGES" ] && [ "$((R_REQ + R_BG))" = "$R_DPAGES" ] &&
		[ "$R_DPAGES" = $((MIB / 2)) ]
	t_check $? "2 MiB pages: each of the ${R_DPAGES:-?} 2 MiB pages arrived once (requested ${R_REQ:-?} + background ${R_BG:-?})"
	[ "$R_PMD" = $((MIB * 1024)) ]
	t_check $? "2 MiB pages: the destination QEMU's RAM is PMD-mapped in full (${R_PMD:-?} of $((MIB * 1024)) kB)"
	[ "$R_CHECKED" = "$R_DPAGES" ] && [ "$R_WRONG" = 0 ]
	t_check $? "2 MiB pages: --check-pages: each of the ${R_CHECKED:-?} pages installed equals the source's RAM (${R_WRONG:-?} differ)"
fi

left=$(ls /dev/umem-* 2>/dev/null | wc -l)
t_check "$left" "no /dev/umem-* node left behind after QEMU quit ($left)"
t_done
