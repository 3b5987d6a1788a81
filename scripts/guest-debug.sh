#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# guest-debug.sh
#
# Runs INSIDE the debug-kernel VM (make check-debug, scripts/check-debug.sh),
# as root, on the kernel built by scripts/debug-kernel.sh:
#   1. kmemleak: scan what boot left (kmemleak-boot.txt), then clear the list
#      so that later reports are the tests' own
#   2. scripts/guest-check.sh: insmod, every selftest of selftests/run_list,
#      every scripts/guest-suites.d/* suite, rmmod, dmesg check
#   3. kmemleak scan x2 -> kmemleak-check.txt, clear
#   4. insmod again, selftests/umem_failnth_test (fault injection; not in
#      run_list), rmmod
#   5. kmemleak scan x2 -> kmemleak-failnth.txt
#   6. the whole kernel log since step 2 -> dmesg-full.txt
# Everything lands in build/results/$(uname -r)/ next to guest-check.sh's
# files (the host moves it to build/results/debug-6.12/ and scans the logs
# for reports: scripts/debug-reports.py).  Each phase is marked in the
# kernel log ("umem-debug: ..."), each suite by guest-check.sh
# ("guest-check: running NAME"), so that a report can be pinned on a test.
#
# Environment: GUEST_TEST_TIMEOUT, GUEST_SUITE_TIMEOUT, GUEST_SKIP (passed
# on to guest-check.sh), FAILNTH_TIMEOUT (s, default 2400), FAILNTH_SKIP=1
# (a guest that died already ran it), UMEM_FAILNTH_VERBOSE (default 2: a
# stack trace of each injected failure, ratelimited).
set -uo pipefail

kver=$(uname -r)
repo=$(cd "$(dirname "$0")/.." && pwd)
res=$repo/build/results/$kver
ko=$repo/build/mod-$kver/umem.ko
kml=/sys/kernel/debug/kmemleak
# Files of the boot phase wait here (guest-check.sh starts by emptying
# $res); the host collects them too if the guest dies before they move.
tmp=$repo/build/results/$kver.pre
rm -rf "$tmp"
mkdir -p "$tmp"

say() { echo "guest-debug[$kver]: $*"; }
mark() { echo "umem-debug: $*" >/dev/kmsg 2>/dev/null; say "$*"; }

grep -q ' /sys/kernel/debug ' /proc/mounts ||
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

# kmemleak_scan OUT: two scans (an object must be 5 s old, and kmemleak only
# reports what two scans agree on), then the list.
kmemleak_scan() {
	local t0=$SECONDS
	if [ ! -w "$kml" ]; then
		echo "kmemleak not available ($kml)" >"$1"
		return 1
	fi
	sleep 6
	echo scan >"$kml"
	sleep 5
	echo scan >"$kml"
	cat "$kml" >"$1" 2>&1
	say "kmemleak: $(grep -c 'unreferenced object' "$1") unreferenced object(s)" \
		"($((SECONDS - t0)) s) -> $(basename "$1")"
}

nchk=0; npass=0; nfail=0
chk=$tmp/debug-checks.tap	# moves into $res once guest-check.sh made it
: >"$chk"
check() {	# check OK|FAIL name [detail]
	nchk=$((nchk + 1))
	if [ "$1" = OK ]; then
		npass=$((npass + 1)); echo "ok $nchk $2" >>"$chk"
	else
		nfail=$((nfail + 1)); echo "not ok $nchk $2${3:+ # $3}" >>"$chk"
	fi
	say "$1 $2${3:+ ($3)}"
}

# ------------------------------------------------------------ 1. boot
t_start=$SECONDS
mark "phase boot: kmemleak scan of what boot left"
kmemleak_scan "$tmp/kmemleak-boot.txt" && echo clear >"$kml"
{
	echo "kernel $kver"
	grep -E '^(MemTotal|Shmem):' /proc/meminfo
	echo "cmdline $(cat /proc/cmdline)"
} >"$tmp/guest-info.txt"

# ------------------------------------------------------------ 2. guest-check
mark "phase guest-check"
t0=$SECONDS
"$repo/scripts/guest-check.sh" "$kver"
say "guest-check exit $? after $((SECONDS - t0)) s"
t_check=$((SECONDS - t0))
if [ ! -d "$res" ]; then
	mkdir -p "$res"
	: >"$res/manifest"
fi
mv "$tmp"/* "$res/"
chk=$res/debug-checks.tap

mark "phase kmemleak after guest-check"
kmemleak_scan "$res/kmemleak-check.txt" && echo clear >"$kml"

# ------------------------------------------------------------ 3. fault injection
t0=$SECONDS
name=umem_failnth_test
[ "${FAILNTH_SKIP:-0}" = 1 ] ||
	printf '%s\t%s\t%s\n' "$name" "$name.tap" "$name.rc" >>"$res/manifest"
if [ "${FAILNTH_SKIP:-0}" = 1 ]; then
	say "not running $name: FAILNTH_SKIP=1 (an earlier guest ran it)"
elif [ ! -x "$repo/selftests/$name" ]; then
	echo "Bail out! selftests/$name missing (make selftests)" >"$res/$name.tap"
	echo 255 >"$res/$name.rc"
elif ! out=$(insmod "$ko" 2>&1); then
	check FAIL insmod-failnth "$out"
	echo "Bail out! insmod failed: $out" >"$res/$name.tap"
	echo 255 >"$res/$name.rc"
else
	check OK insmod-failnth
	for _ in $(seq 50); do [ -c /dev/umem ] && break; sleep 0.2; done
	# every injected failure in dmesg, with its stack (ratelimited)
	for d in failslab fail_page_alloc; do
		echo "${UMEM_FAILNTH_VERBOSE:-2}" >/sys/kernel/debug/$d/verbose 2>/dev/null
		echo 1000 >/sys/kernel/debug/$d/verbose_ratelimit_burst 2>/dev/null
	done
	mark "phase failnth: running $name"
	echo "guest-check: running $name" >/dev/kmsg 2>/dev/null
	rc=0
	(cd "$repo/selftests" && UMEM_FAILNTH_VERBOSE=${UMEM_FAILNTH_VERBOSE:-2} \
		timeout -k 10 "${FAILNTH_TIMEOUT:-2400}" "./$name") \
		>"$res/$name.tap" 2>"$res/$name.err" </dev/null || rc=$?
	echo "$rc" >"$res/$name.rc"
	say "$name: exit $rc after $((SECONDS - t0)) s: $(tail -n 1 "$res/$name.tap")"
	mark "phase failnth done"
	# probability is 0: nothing fails any more, but be explicit
	for d in failslab fail_page_alloc; do
		echo 0 >/sys/kernel/debug/$d/probability 2>/dev/null
	done
	if out=$(rmmod umem 2>&1); then
		check OK rmmod-failnth
	else
		check FAIL rmmod-failnth "$out"
	fi
fi
t_failnth=$((SECONDS - t0))

mark "phase kmemleak after $name"
kmemleak_scan "$res/kmemleak-failnth.txt"

# ------------------------------------------------------------ 4. logs
mark "phase end"
dmesg >"$res/dmesg-full.txt" 2>&1
cat /proc/sys/kernel/tainted >"$res/tainted.txt"
for f in kmemleak-boot kmemleak-check kmemleak-failnth; do
	if grep -q 'kmemleak not available' "$res/$f.txt" 2>/dev/null; then
		check FAIL "$f" "kmemleak not available"
	else
		check OK "$f"
	fi
done
echo "$npass passed, $nfail failed" >>"$chk"
printf '%s\t%s\t%s\n' debug-checks debug-checks.tap - >>"$res/manifest"
{
	echo "guest-check $t_check"
	echo "failnth $t_failnth"
	echo "total $((SECONDS - t_start))"
} >"$res/times.txt"
echo done >"$res/debug-done"
rm -rf "$tmp"
say "done after $((SECONDS - t_start)) s"
