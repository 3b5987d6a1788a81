#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# userspace/qemu/native-postcopy.sh - the same running guest (the test
# guest, or with GUEST=linux a real Linux guest) migrated three ways, side
# by side:
#   umem                 RAM by umemd over a umem region (as demo-qemu.sh)
#   postcopy             QEMU's own postcopy (postcopy-ram), anonymous RAM
#   postcopy + preempt   the same with postcopy-preempt
# For QEMU's postcopy both QEMUs use memory-backend-ram (userfaultfd on the
# destination), capability postcopy-blocktime on the destination, and
# migrate-start-postcopy right after migrate.
#
#   GUEST=test  the tiny test guest (userspace/qemu/guest); GUEST=linux:
#               the Linux guest of demo-qemu.sh GUEST=linux (this VM's
#               kernel, virtio-rng + virtio-net, a workload checking WMIB=32
#               MiB by per-page checksums)
#   MIB=64      guest RAM in MiB (GUEST=linux: default and minimum 128)
#   REPEAT=1    runs of each kind (the table: median (min..max) of the
#               runs that verified)
#   OUT=        result directory (default build/qemu-compare/DATE); a
#               failed run also leaves KIND-N.failed/ (serial consoles,
#               stderr of every process)
#   KINDS=      which runs, default "umem postcopy postcopy-preempt";
#               also umem-nopreempt (umemd --incoming --no-preempt),
#               umem-noresend (umemd --outgoing --resend off),
#               umem-resendall (umemd --outgoing --resend-gap 0),
#               umem-stop-first (qemu_migrate.py --stop-first), and
#               umem-old: as umem with the umemd in $UMEMD_OLD_BIN (a
#               directory), to compare two umemds interleaved in one run
#   CHECK_PAGES=1  umem kinds: compare every page umemd --incoming
#               installs with the source's RAM (qemu_migrate.py
#               --check-pages; RESULT pages_check)
#   PIN_VCPU=N  the destination's vCPU threads alone on CPU N, every other
#               thread of the run on the other CPUs (--pin-vcpu)
#   PERF_VCPU=1 profile the destination's vCPU threads into OUT/KIND-N.perf
#               (--perf-vcpu)
#
# Runs as root in a virtme-ng guest (or a test host); Documentation/qemu.rst
# and Documentation/benchmarks.md.  Exit 0 only if every run verified.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/qemu/qemu-lib.sh

GUEST=${GUEST:-test}
case $GUEST in
	test) MIB=${MIB:-64} ;;
	linux) MIB=${MIB:-128} ;;
	*) echo "native-postcopy: GUEST=test or GUEST=linux" >&2; exit 2 ;;
esac
REPEAT=${REPEAT:-1}
OUT=${OUT:-build/qemu-compare/$(date -u +%Y%m%d-%H%M%S)}

die() { printf 'native-postcopy: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
[ "$GUEST" != linux ] || qm_linux_mib "$MIB" || exit 2
command -v "${QEMU:-qemu-system-x86_64}" >/dev/null || die "qemu-system-x86_64 not installed"
[ -f "$QM_GUEST" ] || die "build first: make -C userspace"
kinds=${KINDS:-umem postcopy postcopy-preempt}
case " $kinds " in
	*" umem"*) qm_load_module || die "/dev/umem missing: load the umem module (or KINDS=postcopy)" ;;
esac
mkdir -p "$OUT" || die "cannot create $OUT"
WORK=$(mktemp -d /tmp/umem-qemu-compare.XXXXXX)
cleanup() { qm_netns_down; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 143' TERM INT
qm_netns_up qcmp 10.83.0 || die "cannot create network namespaces / veth"
if [ "$GUEST" = linux ]; then
	qm_linux_setup "$WORK" || die "cannot build the Linux guest's initramfs"
fi
{
	echo "kernel $(uname -r), $(nproc) CPUs, $("${QEMU:-qemu-system-x86_64}" --version | head -n 1)"
	if [ "$GUEST" = linux ]; then
		echo "Linux guest: kernel ${QM_GUEST_ARGS[1]}, virtio-rng + virtio-net, workload on ${WMIB:-32} MiB"
	else
		echo "test guest"
	fi
	echo "guest RAM $MIB MiB, $REPEAT run(s) of each kind"
} | tee "$OUT/env.txt"

fail=0
for i in $(seq "$REPEAT"); do
	for k in $kinds; do
		bin=$QM_BIN
		case $k in
			umem) opts=(--mode umem) ;;
			umem-old) opts=(--mode umem)
				[ -x "${UMEMD_OLD_BIN:-}/umemd" ] || die "umem-old: set UMEMD_OLD_BIN to a directory with umemd"
				bin=$UMEMD_OLD_BIN ;;
			umem-nopreempt) opts=(--mode umem --umemd-dst-opt=--no-preempt) ;;
			umem-noresend) opts=(--mode umem --umemd-src-opt=--resend --umemd-src-opt=off) ;;
			umem-resendall) opts=(--mode umem --umemd-src-opt=--resend-gap --umemd-src-opt=0) ;;
			umem-stop-first) opts=(--mode umem --stop-first) ;;
			postcopy) opts=(--mode postcopy) ;;
			postcopy-preempt) opts=(--mode postcopy --preempt) ;;
			*) die "unknown kind $k" ;;
		esac
		# CHECK_PAGES=1: every page umemd installs is compared with
		# the source's RAM (qemu_migrate.py --check-pages).
		[ "${CHECK_PAGES:-0}" = 1 ] && [ "${opts[1]}" = umem ] && opts+=(--check-pages)
		# PIN_VCPU=N: the destination's vCPU alone on CPU N.
		[ -n "${PIN_VCPU:-}" ] && opts+=(--pin-vcpu "$PIN_VCPU")
		# PERF_VCPU=1: a profile of the destination's vCPU per run.
		[ "${PERF_VCPU:-0}" = 1 ] && opts+=(--perf-vcpu "$OUT/$k-$i.perf")
		echo "=== $k, run $i"
		QM_BIN=$bin QM_QUIET=1 QM_TIMEOUT=600 qm_run "$OUT/$k-$i.txt" "${opts[@]}" --mib "$MIB" \
			--print-every 1 --workdir "$WORK/$k-$i"
		rc=$?
		sed -n '/^== /,/^  guest /p' "$OUT/$k-$i.txt"
		if [ "$rc" != 0 ]; then
			# Keep what explains a failure: both serial consoles in
			# full, the umemds' and QEMUs' stderr (small files).
			mkdir -p "$OUT/$k-$i.failed"
			cp "$WORK/$k-$i"/*.serial "$WORK/$k-$i"/*.err "$OUT/$k-$i.failed/" 2>/dev/null
			fail=1; echo "(exit $rc; logs in $OUT/$k-$i.failed)"; tail -n 5 "$OUT/$k-$i.txt"
		fi
	done
done

python3 - "$OUT" $kinds >"$OUT/table.md" <<'PY'
import glob, json, re, statistics, sys
out, kinds = sys.argv[1], sys.argv[2:]

def results(kind):
    rs = []
    for f in sorted(glob.glob(f"{out}/{kind}-*.txt")):
        if not re.fullmatch(re.escape(kind) + r"-\d+\.txt", f.rsplit("/", 1)[-1]):
            continue
        for line in open(f):
            if line.startswith("RESULT "):
                rs.append(json.loads(line[7:]))
    return rs

def cell(vals, unit=" ms"):
    """median (min..max) of the runs that have the value"""
    vals = [v for v in vals if v is not None]
    if not vals:
        return "?"
    m = f"{statistics.median(vals):.0f}{unit}"
    return m if len(vals) == 1 else f"{m} ({min(vals):.0f}..{max(vals):.0f})"

print("| run | RAM transfer: STOP -> last page | downtime: STOP -> RESUME "
      "| vCPU blocked | vCPU asleep / runnable (schedstat) | pages requested "
      "| guest passes during the transfer | verified |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for k in kinds:
    rs = results(k)
    if not rs:
        continue
    ok = [r for r in rs if r.get("ok")]
    if k.startswith("umem"):
        bl = cell([(r.get("umemd_dst") or {}).get("blocked_ms") for r in ok]) + " (umem wait)"
        req = cell([(r.get("umemd_dst") or {}).get("pages_requested") for r in ok], "")
    else:
        # one vCPU: its postcopy-vcpu-blocktime.  QEMU 7.2's overall
        # postcopy-blocktime came out below it in some runs (30 vs 256 ms).
        bl = (cell([sum((r.get("qemu") or {}).get("vcpu_blocktime_ms") or [0]) for r in ok])
              + " (postcopy-vcpu-blocktime)")
        req = cell([(r.get("qemu") or {}).get("postcopy_requests") for r in ok], "")
    during = cell([(r["guest"]["pass_at_ram_done"] or 0) - (r["guest"]["source_last_pass"] or 0)
                   for r in ok], "")
    # the same measure for every kind: the vCPU thread's sleep and
    # run-queue time from RESUME to the last page (qemu_migrate.py)
    vc = (cell([(r.get("vcpu") or {}).get("sleep_ms") for r in ok]) + " / "
          + cell([(r.get("vcpu") or {}).get("runq_ms") for r in ok]))
    name = {"umem": "umem (umemd, preempt channel)",
            "umem-old": "umem, old umemd (UMEMD_OLD_BIN)",
            "umem-nopreempt": "umem (umemd --no-preempt)",
            "umem-noresend": "umem (umemd --outgoing --resend off)",
            "umem-resendall": "umem (umemd --outgoing --resend-gap 0)",
            "umem-stop-first": "umem, QMP stop first (--stop-first)",
            "postcopy": "QEMU postcopy-ram",
            "postcopy-preempt": "QEMU postcopy-ram + postcopy-preempt"}[k]
    print(f"| {name} | {cell([r.get('ram_done_ms') for r in ok])} "
          f"| {cell([r.get('downtime_ms') for r in ok])} | {bl} | {vc} | {req} | {during} "
          f"| {len(ok)}/{len(rs)} |")
PY
echo "=== side by side (median (min..max) of the verified runs; $OUT/table.md)"
cat "$OUT/table.md"
exit "$fail"
