#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# check-debug.sh: make check-debug (Documentation/debug-kernel.rst).
#
#   1. the debug kernel: scripts/debug-kernel.sh $DEBUG_KDIR (cached)
#   2. umem.ko for it, W=1, any warning fails (scripts/build-mod.sh into
#      build/mod-KREL/)
#   3. one VM on it (VM_KERNEL=bzImage, 4 GiB for KASAN's shadow, TCG unless
#      KVM works): scripts/guest-debug.sh = guest-check.sh (selftests of
#      run_list + guest suites) + kmemleak scans + umem_failnth_test
#   4. scripts/debug-reports.py: every KASAN/lockdep/UBSAN/kmemleak/BUG/
#      WARNING/hung-task/soft-lockup report, one failure each (folded across
#      guests: boot<N>/reports.* per guest, reports.* for the whole run)
#   5. scripts/check.py --summarize: one "N passed, N failed" line
# Results: build/results/debug-6.12/: manifest, reports.txt, times.txt and
# boot<N>/ per guest (console.log, dmesg-*.txt, kmemleak-*.txt, reports.txt,
# <suite>.tap/.err/.rc); a guest that dies is followed by another one that
# runs the rest (DEBUG_MAX_BOOTS, default 16: one per suite at worst).
# DEBUG_RESUME=1 carries on an earlier run that stopped (interrupted, or out
# of boots): the guests in build/results/debug-6.12/ stay, and the next one
# runs what none of them ran.
#
# Environment: DEBUG_KDIR (default build/debug-6.12), VM_MEMORY (4G),
# VM_TIMEOUT (s per guest, 7200), GUEST_TEST_TIMEOUT (s per selftest binary, 1500),
# GUEST_SUITE_TIMEOUT (s per guest suite, 2400), FAILNTH_TIMEOUT (s, 2400),
# BENCH_SMOKE_TIMEOUT (s for 70-bench-quick's bench run, 1500),
# UMEM_FAILNTH_VERBOSE (2), VM_KVM, VNG_OPTS as for scripts/vm-run.sh.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
kdir=${DEBUG_KDIR:-$repo/build/debug-6.12}
out=$repo/build/results/debug-6.12
t0=$SECONDS

fail_early() {	# nothing ran: still one closing line for the log tail
	echo "check-debug: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}

"$repo/scripts/debug-kernel.sh" "$kdir" || fail_early "no debug kernel"
kdir=$(cd "$kdir" && pwd)
krel=$(cat "$kdir/kernelrelease")
bzimage=$kdir/linux/arch/x86/boot/bzImage

KDIR_BASE=$kdir/modbase "$repo/scripts/build-mod.sh" "$krel" ||
	fail_early "umem.ko does not build cleanly (W=1) against $krel"

rm -rf "$repo/build/results/$krel"
[ "${DEBUG_RESUME:-0}" = 1 ] || rm -rf "$out"
mkdir -p "$out"
fwd=(
	"GUEST_TEST_TIMEOUT=${GUEST_TEST_TIMEOUT:-1500}"
	"GUEST_SUITE_TIMEOUT=${GUEST_SUITE_TIMEOUT:-2400}"
	"BENCH_SMOKE_TIMEOUT=${BENCH_SMOKE_TIMEOUT:-1500}"
	"FAILNTH_TIMEOUT=${FAILNTH_TIMEOUT:-2400}"
	"UMEM_FAILNTH_VERBOSE=${UMEM_FAILNTH_VERBOSE:-2}"
)

# One guest per pass; when a guest dies (a module bug can panic the debug
# kernel), the next one carries on without what the dead one already ran
# (GUEST_SKIP): the suite that was running counts as failed ("did not
# finish"), its report is in that boot's console.log, and the rest still
# runs.  Each pass's files are in boot<N>/.
skip="" failnth_skip=0 boot=0 finished=0 crashes=() vmpid=
if [ "${DEBUG_RESUME:-0}" = 1 ]; then
	# what the earlier guests ran (or died running) is not run again
	for d in "$out"/boot*; do
		[ -d "$d" ] || continue
		n=${d##*/boot}
		[ "$n" -gt $boot ] && boot=$n
		skip="$skip $(cut -f1 "$d/manifest" 2>/dev/null |
			grep -vxE 'checks|debug-checks|kernel-reports' | tr '\n' ' ')"
		grep -q '^umem_failnth_test' "$d/manifest" 2>/dev/null && failnth_skip=1
	done
	rm -f "$out/done"
	[ $boot -eq 0 ] || echo "check-debug: resuming after boot $boot"
fi
max_boots=$((boot + ${DEBUG_MAX_BOOTS:-16}))
# vm-run.sh execs timeout(1), which runs vng in a process group of its own:
# pass a stop on, or the guest outlives us (and a new run shares its files).
stop() {
	[ -n "$vmpid" ] && kill -TERM "$vmpid" 2>/dev/null && wait "$vmpid" 2>/dev/null
	echo "check-debug: stopped" >&2
	exit 130
}
trap stop INT TERM HUP
tvm=$SECONDS
while [ $boot -lt $max_boots ]; do
	boot=$((boot + 1))
	dir=$out/boot$boot
	log=$repo/build/results/debug-6.12.console.log
	rm -rf "$repo/build/results/$krel" "$repo/build/results/$krel.pre"
	echo "check-debug: boot $boot: $krel (KASAN, lockdep, kmemleak; TCG: slow)${skip:+, skipping:$skip}"
	tb=$SECONDS
	# --verbose: the kernel's messages reach the console log too, so a
	# guest that dies still leaves its reports.  kasan_multi_shot: every
	# KASAN report, not only the first; a log buffer none scrolls out of.
	# oops=panic: after an Oops the kernel is not worth testing on (a task
	# died holding locks, memory may be corrupt: everything after it is a
	# cascade); the guest ends at once and the next one runs the rest.
	# KASAN, lockdep, UBSAN and WARN reports do not end the guest.
	VM_KERNEL=$bzimage VM_MEMORY=${VM_MEMORY:-4G} VM_TIMEOUT=${VM_TIMEOUT:-7200} \
	VNG_OPTS="${VNG_OPTS:-} --verbose --append kasan_multi_shot --append log_buf_len=32M --append oops=panic" \
		"$repo/scripts/vm-run.sh" "$krel" env "${fwd[@]}" "GUEST_SKIP=$skip" \
		"FAILNTH_SKIP=$failnth_skip" "$repo/scripts/guest-debug.sh" >"$log" 2>&1 &
	vmpid=$!
	wait $vmpid
	vmrc=$?
	vmpid=
	if [ -d "$repo/build/results/$krel" ]; then
		mv "$repo/build/results/$krel" "$dir"
	else
		mkdir -p "$dir"
	fi
	# what guest-debug.sh had not moved in yet when the guest died
	if [ -d "$repo/build/results/$krel.pre" ]; then
		mv -n "$repo/build/results/$krel.pre"/* "$dir/" 2>/dev/null
		rm -rf "$repo/build/results/$krel.pre"
	fi
	touch "$dir/manifest"
	mv "$log" "$dir/console.log"
	grep -aE '^guest-(check|debug)\[' "$dir/console.log" | sed 's/^/  /'
	python3 "$repo/scripts/debug-reports.py" "$dir" >/dev/null
	# the manifest paths, relative to $out
	awk -F '\t' -v b="boot$boot" 'NF == 3 && $1 != "kernel-reports" { printf "%s/%s\t%s/%s\t%s\n", b, $1, b, $2, ($3 == "-" ? "-" : b "/" $3) }' \
		"$dir/manifest" >>"$out/manifest"
	if [ -f "$dir/debug-done" ]; then
		finished=1
		echo "check-debug: boot $boot finished after $(((SECONDS - tb) / 60)) min (VM exit $vmrc)"
		break
	fi
	ran=$(cut -f1 "$dir/manifest" | grep -vxE 'checks|debug-checks|kernel-reports' | tr '\n' ' ')
	last=$(grep -a 'guest-check: running ' "$dir/console.log" | tail -n 1 | sed 's/.*guest-check: running //' | tr -d '\r')
	crashes+=("boot $boot: the guest died (VM exit $vmrc) after $(((SECONDS - tb) / 60)) min while running ${last:-?}")
	echo "check-debug: ${crashes[-1]}; console: $dir/console.log"
	grep -q umem_failnth_test <<<"$ran" && failnth_skip=1
	[ -n "${ran// /}" ] || { echo "check-debug: no progress in boot $boot: giving up"; break; }
	skip="$skip $ran"
done
tvm=$((SECONDS - tvm))
[ $finished -eq 1 ] && echo done >"$out/done"

{
	echo "boots $boot"
	for c in "${crashes[@]}"; do echo "crash $c"; done
	echo "vm_minutes $((tvm / 60))"
	echo "total_minutes $(((SECONDS - t0) / 60))"
	cat "$out/boot$boot/times.txt" 2>/dev/null
} >"$out/times.txt"
# every guest's reports at once: a bug that killed two guests is one report
python3 "$repo/scripts/debug-reports.py" --boots "$out" >/dev/null
echo "check-debug: kernel reports (verbatim: $out/reports.txt):"
sed 's/^/  /' "$out/reports.tap"
for c in "${crashes[@]}"; do echo "check-debug: $c"; done
echo "check-debug: $boot boot(s), VM $((tvm / 60)) min, total $(((SECONDS - t0) / 60)) min; results in $out"
python3 "$repo/scripts/check.py" --summarize "$out"
