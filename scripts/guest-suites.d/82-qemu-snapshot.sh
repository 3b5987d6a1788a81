#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# guest-suite-kernels: main
# A running QEMU guest snapshotted and restored (make demo-snapshot): the
# tiny test guest (userspace/qemu/guest) keeps verifying 30 MiB of its
# 32 MiB while umemd --snapshot saves its RAM by umem write-protect (the
# region made by umemctl create --present --wp, device state by QEMU with
# x-ignore-shared), then QEMU's own background-snapshot saves the same
# guest for comparison, then umemd --restore (lazy, then --eager, then both
# from a slow disk) brings the umem snapshot back into new QEMUs, which
# must go on from the pass the guest was saved in with no mismatch; last
# QEMU loads its own snapshot.  userspace/qemu/qemu_snapshot.py
# does the work; this checks its RESULT line.  Inside the guest (module
# loaded, cwd = repo root).  Documentation/qemu.rst, part 3.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh
. userspace/qemu/qemu-lib.sh

t_need_qemu
if [ ! -x "$QM_BIN/umemd" ] || [ ! -x "$QM_BIN/umemctl" ] || [ ! -f "$QM_GUEST" ]; then
	t_fail "userspace or the test guest not built ($QM_BIN, $QM_GUEST): run make -C userspace on the host"
	t_done
fi
t_need_umem_python

WORK=$(mktemp -d /tmp/qemu-snapshot.XXXXXX)
cleanup() {
	rm -f /dev/shm/umem-qsnap-*.ram /dev/shm/umem-qload-*.ram
	rm -rf "$WORK"
}
trap cleanup EXIT

MIB=${QEMU_SNAPSHOT_MIB:-32}
OUT=$WORK/out
# Every step has its own bound (base --timeout 30 s); the whole run is cut
# at 230 s (SIGTERM: qemu_snapshot.py kills its QEMUs and umemds).
timeout -k 15 230 python3 userspace/qemu/qemu_snapshot.py --qemu "$QEMU" --guest "$QM_GUEST" \
	--umemd "$QM_BIN/umemd" --umemctl "$QM_BIN/umemctl" --mib "$MIB" --print-every 1 \
	--passes-before 3 --passes-after 3 --timeout 30 --start-timeout 90 \
	--workdir "$WORK/run" >"$OUT" 2>&1
rc=$?

# One python3 start for every value (slow under nested emulation).
eval "$(python3 -c 'import json, shlex, sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        r = json.loads(line[7:])
print(f"R_FOUND={1 if r else str()}")
for p in r.get("phases", []):
    k = p["phase"].replace("-", "_").upper()
    g, u = p.get("guest") or {}, p.get("umemd") or {}
    v = {"OK": {True: "true", False: "false"}.get(p.get("ok"), ""), "ERR": p.get("error"),
         "MIS": g.get("mismatches"), "MISL": "\n".join(g.get("mismatch_lines") or []),
         "SAVED": g.get("saved_pass"), "FIRST": g.get("first_pass"),
         "LAST": g.get("last_pass"), "STOPPASS": p.get("stop_pass"),
         "UEXIT": p.get("umemd_exit"), "STOPMS": p.get("stop_ms"), "TOTMS": p.get("total_ms"),
         "DURING": p.get("passes_during"), "RUNMS": p.get("run_ms"), "RAMMS": p.get("ram_ms"),
         "BEFORE": p.get("passes_before_ram"), "UPAGES": u.get("pages"),
         "DEVB": p.get("device_state_bytes"), "REQ": p.get("pages_requested"),
         "ATTACH": p.get("attach_ms"), "UTOT": p.get("umemd_total_ms"),
         "URUN": p.get("umemd_run_ms")}
    for n, x in v.items():
        x = "" if x is None else (f"{x:.0f}" if isinstance(x, float) else str(x))
        print(f"R_{k}_{n}={shlex.quote(x)}")' "$OUT")"

if [ -n "$R_FOUND" ]; then
	t_ok "qemu_snapshot.py finished (exit $rc)"
else
	t_fail "qemu_snapshot.py gave no result (exit $rc; 124 = timed out)"
	tail -n 25 "$OUT" | sed 's/^/#   /'
	t_done
fi
sed -n '/^== /,/^$/p' "$OUT" | sed '/^$/d; s/^/# /'

# 1. The umem save: the guest ran on, no page lost or changed.
[ "${R_UMEM_SAVE_OK:-}" = true ] && [ "${R_UMEM_SAVE_UEXIT:-}" = 0 ]
t_check $? "umemd --snapshot saved the running guest (exit ${R_UMEM_SAVE_UEXIT:-?}, guest stopped ${R_UMEM_SAVE_STOPMS:-?} ms, save ${R_UMEM_SAVE_TOTMS:-?} ms, ${R_UMEM_SAVE_DURING:-?} passes meanwhile)${R_UMEM_SAVE_ERR:+: $R_UMEM_SAVE_ERR}"
[ "${R_UMEM_SAVE_MIS:-x}" = 0 ] && [ -n "${R_UMEM_SAVE_LAST:-}" ] && [ -n "${R_UMEM_SAVE_STOPPASS:-}" ] &&
	[ "$R_UMEM_SAVE_LAST" -ge $((R_UMEM_SAVE_STOPPASS + 3)) ]
t_check $? "the snapshotted guest kept verifying with no mismatch: ${R_UMEM_SAVE_MIS:-?} mismatches, saved in pass ${R_UMEM_SAVE_STOPPASS:-?}, at pass ${R_UMEM_SAVE_LAST:-?} after the save"
[ "${R_UMEM_SAVE_MIS:-0}" = 0 ] || printf '%b\n' "$R_UMEM_SAVE_MISL" | sed 's/^/#   /'
[ "${R_UMEM_SAVE_DEVB:-0}" -gt 0 ]
t_check $? "QEMU's device state (x-ignore-shared) went into the snapshot: ${R_UMEM_SAVE_DEVB:-?} bytes"

# 2. QEMU's own background-snapshot of the same guest (the comparison).
[ "${R_QEMU_SAVE_OK:-}" = true ]
t_check $? "QEMU's background-snapshot saved the guest (stopped ${R_QEMU_SAVE_STOPMS:-?} ms, save ${R_QEMU_SAVE_TOTMS:-?} ms, ${R_QEMU_SAVE_DURING:-?} passes meanwhile)${R_QEMU_SAVE_ERR:+: $R_QEMU_SAVE_ERR}"

# 3-6. Lazy and eager restores of the umem snapshot, at full speed and
# from a slow disk (umemd --restore --throttle 2).
for k in LAZY EAGER LAZY_SLOW EAGER_SLOW; do
	eval "ok=\${R_${k}_OK:-} err=\${R_${k}_ERR:-} mis=\${R_${k}_MIS:-} misl=\${R_${k}_MISL:-}"
	eval "saved=\${R_${k}_SAVED:-} first=\${R_${k}_FIRST:-} last=\${R_${k}_LAST:-}"
	eval "ue=\${R_${k}_UEXIT:-} up=\${R_${k}_UPAGES:-} run=\${R_${k}_RUNMS:-} ram=\${R_${k}_RAMMS:-} before=\${R_${k}_BEFORE:-}"
	case $k in
	LAZY) what="lazy restore" ;;
	EAGER) what="eager restore (--eager)" ;;
	LAZY_SLOW) what="lazy restore, slow disk" ;;
	EAGER_SLOW) what="eager restore, slow disk" ;;
	esac
	[ "$ok" = true ] && [ "$ue" = 0 ]
	t_check $? "$what: umemd --restore exit ${ue:-?}, guest runs after ${run:-?} ms, all RAM in after ${ram:-?} ms, ${before:-?} passes before${err:+: $err}"
	[ -n "$saved" ] && [ -n "$first" ] && [ "$first" = $((saved + 1)) ] && [ "$mis" = 0 ] &&
		[ -n "$last" ] && [ "$last" -ge $((first + 2)) ]
	t_check $? "$what: the guest went on from the snapshot (saved in pass ${saved:-?}, first pass ${first:-?}, last ${last:-?}) with ${mis:-?} mismatches"
	[ "${mis:-0}" = 0 ] || printf '%b\n' "$misl" | sed 's/^/#   /'
	[ "$up" = $((MIB * 256)) ]
	t_check $? "$what: umemd put in every page (${up:-?} of $((MIB * 256)))"
done

# The slow disk shows what lazy and eager mean: unless umemd had loaded
# every page before QEMU was even up (then there was nothing to show),
# the lazy guest ran before all of its RAM was in, its faults served as
# requests (a whole verify pass touches every page, so it may well finish
# none before the last page is in: passes are reported, not required);
# the eager guest ran only after and requested nothing.
if [ -n "${R_LAZY_SLOW_ATTACH:-}" ] && [ -n "${R_LAZY_SLOW_UTOT:-}" ] &&
   [ "$R_LAZY_SLOW_UTOT" -gt $((R_LAZY_SLOW_ATTACH + 500)) ]; then
	if [ "${R_LAZY_SLOW_RUNMS:-x}" -lt "$R_LAZY_SLOW_UTOT" ] 2>/dev/null; then
		[ "${R_LAZY_SLOW_REQ:-0}" -ge 1 ]
		t_check $? "lazy, slow disk: the guest ran after ${R_LAZY_SLOW_RUNMS:-?} ms, before all RAM was in (${R_LAZY_SLOW_UTOT} ms): ${R_LAZY_SLOW_REQ:-?} pages requested by its faults, ${R_LAZY_SLOW_BEFORE:-?} passes meanwhile"
	else
		# QEMU's own device-state load, whose pages come lazily from
		# the slow disk too, can outlast the rest on a busy machine
		# (seen once: RESUME at 6.6 s, the last page at 6.5 s).  The
		# guest then resumes late through no fault of umemd's, which
		# must still have let the VMM run before its last page.
		[ "${R_LAZY_SLOW_REQ:-0}" -ge 1 ] && [ -n "${R_LAZY_SLOW_URUN:-}" ] &&
			[ "$R_LAZY_SLOW_URUN" -lt "$R_LAZY_SLOW_UTOT" ]
		t_check $? "lazy, slow disk: umemd let the VMM run ${R_LAZY_SLOW_URUN:-?} ms after it attached, before its last page (${R_LAZY_SLOW_UTOT} ms), ${R_LAZY_SLOW_REQ:-?} pages requested; the guest resumed only after ${R_LAZY_SLOW_RUNMS:-?} ms, when QEMU's device-state load was done"
	fi
else
	t_skip "lazy, slow disk: umemd had every page in (${R_LAZY_SLOW_UTOT:-?} ms) before QEMU was up (${R_LAZY_SLOW_ATTACH:-?} ms): nothing lazy to see"
fi
[ "${R_EAGER_SLOW_BEFORE:-x}" = 0 ] && [ "${R_EAGER_SLOW_REQ:-x}" = 0 ] &&
	[ -n "${R_EAGER_SLOW_RUNMS:-}" ] && [ -n "${R_EAGER_SLOW_UTOT:-}" ] &&
	[ "$R_EAGER_SLOW_RUNMS" -ge "$R_EAGER_SLOW_UTOT" ]
t_check $? "eager, slow disk: the guest ran after all RAM was in (${R_EAGER_SLOW_RUNMS:-?} >= ${R_EAGER_SLOW_UTOT:-?} ms), made no pass before (${R_EAGER_SLOW_BEFORE:-?}) and requested no page (${R_EAGER_SLOW_REQ:-?})"

# 7. QEMU's own load of its background snapshot.
[ "${R_QEMU_LOAD_OK:-}" = true ] && [ "${R_QEMU_LOAD_MIS:-x}" = 0 ]
t_check $? "QEMU's own load of its snapshot: the guest went on (first pass ${R_QEMU_LOAD_FIRST:-?}) with ${R_QEMU_LOAD_MIS:-?} mismatches${R_QEMU_LOAD_ERR:+: $R_QEMU_LOAD_ERR}"

left=$(ls /dev/umem-* 2>/dev/null | wc -l)
t_check "$left" "no /dev/umem-* node left behind after QEMU quit ($left)"
t_done
