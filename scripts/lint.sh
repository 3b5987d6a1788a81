#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# lint.sh: checkpatch --strict on kmod/*.[ch] and uapi/linux/umem.h, then
# sparse (C=2 CF=-D__CHECK_ENDIAN__) on the module for KDIR.  Any checkpatch
# message (error, warning or check) or any sparse warning in our files fails.
# Needs build/ksft/checkpatch.pl (make ksft-headers).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# default as in the Makefile: the newest kernel that is not a PREEMPT_RT one
kver=${KVER:-$(ls -d /lib/modules/*/build | sed -e 's@^/lib/modules/@@' -e 's@/build$@@' |
	sort -rV | awk '!/-rt-/ && !k { k = $0 } { a = a ? a : $0 } END { print k ? k : a }')}
kdir=${KDIR:-/lib/modules/$kver/build}
cp=$repo/build/ksft/checkpatch.pl
fail=0

[ -x "$cp" ] || { echo "lint: $cp missing (make ksft-headers)" >&2; exit 1; }

# ------------------------------------------------------------ checkpatch
cp_opts=(--strict --no-tree --terse --show-types --quiet)
shopt -s nullglob
srcs=("$repo"/kmod/*.[ch])
shopt -u nullglob
[ ${#srcs[@]} -gt 0 ] || { echo "lint: no kmod/*.[ch] files" >&2; fail=1; }
cd "$repo"
# checkpatch prints a "total:" line even for clean files: keep only the rest.
run_cp() {
	local out rc=0
	out=$("$cp" "${cp_opts[@]}" "$@" 2>&1) || rc=$?
	grep -v '^total: 0 errors, 0 warnings, 0 checks' <<<"$out" | grep -v '^$' || true
	return $rc
}
for f in "${srcs[@]}"; do
	rel=${f#"$repo"/}
	case "$rel" in
	*.mod.c) continue ;;	# kbuild-generated
	kmod/compat.h)
		# The one place that must test the kernel version (the module
		# builds for 6.1 and 6.12); checkpatch flags every
		# LINUX_VERSION_CODE and, wrongly, "X >= KERNEL_VERSION()" as a
		# constant on the left.
		run_cp --ignore LINUX_VERSION_CODE,CONSTANT_COMPARISON -f "$rel" || fail=1 ;;
	*)
		run_cp -f "$rel" || fail=1 ;;
	esac
done
# checkpatch exempts include/uapi/ from BIT_MACRO (BIT() is not UAPI);
# our header lives at uapi/linux/, so tell it the same.
run_cp --ignore BIT_MACRO -f uapi/linux/umem.h || fail=1
[ $fail -eq 0 ] && echo "  LINT    checkpatch clean"

# ------------------------------------------------------------ sparse
command -v sparse >/dev/null || { echo "lint: sparse not installed (make deps)" >&2; exit 1; }
[ -f "$repo/kmod/Kbuild" ] || { echo "lint: kmod/Kbuild is missing" >&2; exit 1; }
stage=$repo/build/sparse-$kver
log=$repo/build/sparse-$kver.log
rm -rf "$stage"
mkdir -p "$stage"
cp -a "$repo/Kbuild" "$repo/VERSION" "$repo/kmod" "$repo/uapi" "$stage/"
find "$stage" \( -name '*.o' -o -name '*.ko' -o -name '*.mod' -o -name '*.mod.c' \
	-o -name '.*.cmd' -o -name 'Module.symvers' -o -name 'modules.order' \) -delete
if ! make -C "$kdir" M="$stage" C=2 CF=-D__CHECK_ENDIAN__ -j"$(nproc)" modules >"$log" 2>&1; then
	cat "$log" >&2
	echo "lint: sparse build failed for $kver (log: $log)" >&2
	exit 1
fi
# Only warnings/errors located in our sources count (kernel headers can be
# noisy with older sparse); print them with repo-relative paths.
# ($stage holds regex metacharacters like '+': match it as a fixed string.)
ours=$(grep -F "$stage/" "$log" | grep -E ': (warning|error):' | sed "s@^$stage/@@" | sort -u)
if [ -n "$ours" ]; then
	echo "$ours"
	echo "lint: sparse warnings ($kver, log: $log)" >&2
	fail=1
else
	other=$(grep -cE ': (warning|error):' "$log")
	echo "  LINT    sparse clean ($kver; $other warnings outside our files ignored)"
fi
exit $fail
