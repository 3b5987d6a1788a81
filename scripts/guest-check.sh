#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# guest-check.sh [KVER]
#
# Runs INSIDE a test VM, as root, cwd anywhere (see scripts/vm-run.sh):
#   1. insmod build/mod-KVER/umem.ko                    (check "insmod")
#   2. every selftest in selftests/run_list (or every executable
#      selftests/umem_*_test), each under timeout, cwd selftests/
#   3. every executable scripts/guest-suites.d/*, cwd repo root
#   4. rmmod umem                                       (check "rmmod")
#   5. dmesg scan + taint flags                         (check "dmesg")
#
# Results go to build/results/KVER/ (shared read-write with the host):
#   manifest           one line per suite: NAME<TAB>TAPFILE<TAB>RCFILE
#   <name>.tap/.err    stdout / stderr of each suite, <name>.rc exit status,
#                      <name>.secs how long it ran
#   boot.secs          seconds from the guest kernel's start to guest-check
#   checks.tap         the checks above, TAP + "N passed, N failed"
#   dmesg-boot.txt     kernel log before the module was loaded
#   dmesg.txt          kernel log from insmod to the end
#   done               written last; its absence means the run broke off
# Counting is done by scripts/check.py (also used here for the summary).
set -uo pipefail

kver=${1:-$(uname -r)}
repo=$(cd "$(dirname "$0")/.." && pwd)
res=$repo/build/results/$kver
ko=$repo/build/mod-$kver/umem.ko
test_timeout=${GUEST_TEST_TIMEOUT:-300}
suite_timeout=${GUEST_SUITE_TIMEOUT:-600}
bad_dmesg='WARNING:|BUG:|Oops|lockdep|hung task|general protection|Call Trace'

if [ "$(uname -r)" != "$kver" ]; then
	echo "guest-check: running on $(uname -r), asked for $kver" >&2
	exit 2
fi

rm -rf "$res"
mkdir -p "$res"
: >"$res/manifest"
# seconds from the guest kernel's start to here (make check prints it)
cut -d. -f1 /proc/uptime >"$res/boot.secs"

nchk=0; npass=0; nfail=0
check() {	# check OK|FAIL name [detail]
	nchk=$((nchk + 1))
	if [ "$1" = OK ]; then
		npass=$((npass + 1)); echo "ok $nchk $2" >>"$res/checks.tap"
	else
		nfail=$((nfail + 1)); echo "not ok $nchk $2${3:+ # $3}" >>"$res/checks.tap"
	fi
	echo "guest-check[$kver]: $1 $2${3:+ ($3)}"
}

# run_suite NAME TIMEOUT DIR CMD...
run_suite() {
	local name=$1 to=$2 dir=$3; shift 3
	local rc=0
	printf '%s\t%s\t%s\n' "$name" "$name.tap" "$name.rc" >>"$res/manifest"
	echo "guest-check[$kver]: running $name"
	local t0=$SECONDS
	# the same in the kernel log: a report there names the suite it came from
	echo "guest-check: running $name" >/dev/kmsg 2>/dev/null
	(cd "$dir" && KVER=$kver UMEM_RESULTS=$res timeout -k 10 "$to" "$@") \
		>"$res/$name.tap" 2>"$res/$name.err" </dev/null || rc=$?
	echo "$rc" >"$res/$name.rc"
	echo $((SECONDS - t0)) >"$res/$name.secs"
	tail -n 1 "$res/$name.tap" | sed "s/^/guest-check[$kver]:   $name: /"
}

# ------------------------------------------------------------ test list
tests=()
if [ -f "$repo/selftests/run_list" ]; then
	while read -r t _; do
		case "$t" in ''|'#'*) continue ;; esac
		tests+=("$t")
	done <"$repo/selftests/run_list"
else
	for t in "$repo"/selftests/umem_*_test; do
		[ -f "$t" ] && [ -x "$t" ] && tests+=("$(basename "$t")")
	done
fi
suites=()
for s in "$repo"/scripts/guest-suites.d/*; do
	[ -f "$s" ] && [ -x "$s" ] && suites+=("$s")
done
# GUEST_SKIP: names as in the manifest (umem_api_test, suite-60-umemctl.sh)
# not to run at all: make check-debug resumes in a new guest after one died,
# without the suites the dead guest already ran.
skipped() { case " ${GUEST_SKIP:-} " in *" $1 "*) return 0 ;; esac; return 1; }

# ------------------------------------------------------------ warm-up
# Flip now, while the guest is idle, a switch a test would otherwise flip
# in the middle of the run.  The first memory cgroup turns on kmem
# accounting: a static key patched into every kmalloc().  On 6.12 under
# TCG the other vCPU once ran into the patching's int3 ("Oops: int3" in
# __kmalloc_node_track_caller_noprof, then "Fatal exception in
# interrupt": the VM just ends) when umem_lifecycle_test's memcg case
# created that first cgroup while udev was busy; an earlier run died at
# the same point without a trace.  This only makes that emulator race
# less likely; a guest that still hits it fails the check.
if [ -f /sys/fs/cgroup/cgroup.controllers ] &&
   echo +memory >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null &&
   mkdir /sys/fs/cgroup/umem-warmup 2>/dev/null; then
	rmdir /sys/fs/cgroup/umem-warmup
fi
command -v udevadm >/dev/null && udevadm settle --timeout=10 2>/dev/null

# ------------------------------------------------------------ insmod
dmesg >"$res/dmesg-boot.txt" 2>&1
dmesg -C >/dev/null 2>&1
taint0=$(cat /proc/sys/kernel/tainted)

loaded=0
if [ ! -f "$ko" ]; then
	check FAIL insmod "$ko missing (make modules-all)"
elif out=$(insmod "$ko" 2>&1); then
	loaded=1
	check OK insmod
	# give udev-less devtmpfs a moment; /dev/umem must appear
	for _ in 1 2 3 4 5 6 7 8 9 10; do [ -c /dev/umem ] && break; sleep 0.2; done
	if [ -c /dev/umem ]; then check OK dev-umem; else check FAIL dev-umem "/dev/umem did not appear"; fi
else
	check FAIL insmod "$out"
fi

# ------------------------------------------------------------ tests
not_run() {	# not_run NAME REASON: counts as one failure
	printf '%s\t%s\t%s\n' "$1" "$1.tap" "$1.rc" >>"$res/manifest"
	echo "Bail out! $2" >"$res/$1.tap"
	echo 255 >"$res/$1.rc"
	echo "guest-check[$kver]: not running $1: $2"
}
# A suite with the line "# guest-suite-kernels: main" exercises userspace
# (QEMU, the benchmarks) more than the module, whose paths the other suites
# and the selftests cover on every kernel: make check runs it on the main
# kernel only (CHECK_MAIN_KVER, the Makefile's KVER) to keep its time down,
# and reports it as one explicit skip on the others.  Without
# CHECK_MAIN_KVER (a guest-check.sh run by hand) every suite runs.
main_kernel_only() {
	[ -n "${CHECK_MAIN_KVER:-}" ] && [ "$kver" != "$CHECK_MAIN_KVER" ] &&
		grep -q '^# guest-suite-kernels: *main *$' "$1"
}
skip_suite() {	# skip_suite NAME REASON: one explicit skip, not a pass
	printf '%s\t%s\t%s\n' "$1" "$1.tap" "$1.rc" >>"$res/manifest"
	printf 'TAP version 13\n1..1\nok 1 %s # SKIP %s\n0 passed, 0 failed, 1 skipped\n' \
		"$1" "$2" >"$res/$1.tap"
	echo 0 >"$res/$1.rc"
	echo "guest-check[$kver]: skipping $1: $2"
}
for t in "${tests[@]}"; do
	name=$(basename "$t")
	skipped "$name" && continue
	if [ $loaded -eq 0 ]; then
		not_run "$name" "module not loaded"
	elif [ ! -x "$repo/selftests/$t" ]; then
		not_run "$name" "selftests/$t missing or not executable"
	else
		run_suite "$name" "$test_timeout" "$repo/selftests" "./$t"
	fi
done
for s in "${suites[@]}"; do
	name=suite-$(basename "$s")
	skipped "$name" && continue
	if [ $loaded -eq 0 ]; then
		not_run "$name" "module not loaded"
	else
		# a suite may ask for more than GUEST_SUITE_TIMEOUT with a line
		# "# guest-suite-timeout: SECONDS" (90-installed.sh: DKMS under TCG)
		to=$(sed -n 's/^# guest-suite-timeout: *\([0-9][0-9]*\)$/\1/p' "$s" | head -n 1)
		[ -n "$to" ] && [ "$to" -gt "$suite_timeout" ] || to=$suite_timeout
		if main_kernel_only "$s"; then
			skip_suite "$name" "runs on the main kernel $CHECK_MAIN_KVER only"
			continue
		fi
		run_suite "$name" "$to" "$repo" "$s"
	fi
done

# ------------------------------------------------------------ rmmod
if [ $loaded -eq 1 ]; then
	if out=$(rmmod umem 2>&1); then
		check OK rmmod
	else
		check FAIL rmmod "$out"
	fi
fi

# ------------------------------------------------------------ dmesg
dmesg >"$res/dmesg.txt" 2>&1
taint1=$(cat /proc/sys/kernel/tainted)
# D (died) 1<<7, W (warning) 1<<9, L (soft lockup) 1<<14
new_taint=$(( (taint1 & ~taint0) & ((1 << 7) | (1 << 9) | (1 << 14)) ))
hits=$(grep -E "$bad_dmesg" "$res/dmesg.txt" | head -n 5)
if [ -n "$hits" ]; then
	check FAIL dmesg "$(echo "$hits" | head -n 1)"
	echo "$hits" | sed "s/^/guest-check[$kver]:   dmesg: /"
elif [ $new_taint -ne 0 ]; then
	check FAIL dmesg "kernel taint went from $taint0 to $taint1"
else
	check OK dmesg
fi
if grep -qE "$bad_dmesg" "$res/dmesg-boot.txt"; then
	echo "guest-check[$kver]: note: boot log (before insmod) already has warnings, see dmesg-boot.txt"
fi

echo "$npass passed, $nfail failed" >>"$res/checks.tap"
printf '%s\t%s\t%s\n' checks checks.tap - >>"$res/manifest"
echo done >"$res/done"

# ------------------------------------------------------------ summary
python3 "$repo/scripts/check.py" --summarize "$res"
