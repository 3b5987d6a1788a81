#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# debug-kernel.sh [OUTDIR]
#
# Build (or find cached) the umem debug kernel: linux-source-6.12 with
# virtme-ng's minimal config (vng --kconfig) plus scripts/debug-kernel.config
# (KASAN, lockdep, kmemleak, UBSAN, fault injection, ...; see
# Documentation/debug-kernel.rst).  OUTDIR defaults to $DEBUG_KDIR, else
# build/debug-6.12.  Result:
#
#   OUTDIR/linux/            the built source tree: arch/x86/boot/bzImage,
#                            vmlinux, Module.symvers, modules_prepare output;
#                            make -C OUTDIR/linux M=<repo> W=1 modules works
#   OUTDIR/config            the final .config
#   OUTDIR/kernelrelease     uname -r of the guest (e.g. 6.12.117-umemdebug)
#   OUTDIR/modbase/KREL/build -> ../../linux  (KDIR_BASE for build-mod.sh)
#   OUTDIR/stamp             cache key; when it matches, nothing is rebuilt
#   OUTDIR/build.log         the configure + make output
#
# The key hashes the config fragment, KEYVER below (bump it when a change
# to this script changes what it builds), the source package's version,
# the tarball's size and mtime, the vng version (its minimal config
# changes with it) and the compiler's.  A tree that was configured with the
# same key but whose build broke off (interrupted, out of disk) is resumed
# with an incremental make instead of being extracted again.
#
# Environment: DEBUG_KDIR (OUTDIR), DEBUG_KSRC (tarball, default
# /usr/src/linux-source-6.12.tar.xz), DEBUG_KJOBS (make -j, default nproc),
# DEBUG_KFORCE=1 (rebuild even when the stamp matches).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${DEBUG_KDIR:-$repo/build/debug-6.12}}
tarball=${DEBUG_KSRC:-/usr/src/linux-source-6.12.tar.xz}
frag=$repo/scripts/debug-kernel.config
jobs=${DEBUG_KJOBS:-$(nproc)}
tree=$out/linux
log=$out/build.log

die() { echo "debug-kernel: $*" >&2; exit 1; }

[ -r "$tarball" ] || die "$tarball not found (make deps installs linux-source-6.12)"
command -v vng >/dev/null || die "vng not found (make deps)"
[ -r "$frag" ] || die "$frag missing"
mkdir -p "$out"
out=$(cd "$out" && pwd)
tree=$out/linux
log=$out/build.log

# ------------------------------------------------------------ cache key
KEYVER=1
pkgver=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || echo unknown)
key=$( {
	cat "$frag"
	echo "keyver=$KEYVER"
	echo "pkg=$pkgver"
	stat -c 'tarball=%s %Y' "$tarball"
	vng --version 2>/dev/null
	gcc --version | head -n 1
} | sha256sum | cut -d' ' -f1)

bzimage=$tree/arch/x86/boot/bzImage
if [ "${DEBUG_KFORCE:-0}" != 1 ] && [ -f "$out/stamp" ] &&
   [ "$(cat "$out/stamp")" = "$key" ] && [ -f "$bzimage" ] &&
   [ -f "$tree/Module.symvers" ] && [ -f "$out/kernelrelease" ]; then
	echo "  KERNEL  debug $(cat "$out/kernelrelease") cached in $out"
	exit 0
fi
rm -f "$out/stamp"

# ------------------------------------------------------------ option check
# check_config CONFIG: every option of the fragment must have its value.
check_config() {
	local cfg=$1 missing=() line opt want have
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			opt=${line%%=*}; want=${line#*=} ;;
		'# CONFIG_'*' is not set')
			opt=${line#\# }; opt=${opt%% *}; want=n ;;
		*) continue ;;
		esac
		have=$(grep -E "^$opt=|^# $opt is not set" "$cfg" | tail -n 1 || true)
		case "$have" in
		"$opt="*) have=${have#*=} ;;
		*) have=n ;;
		esac
		[ "$have" = "$want" ] || missing+=("$opt: want $want, got $have")
	done <"$frag"
	if [ ${#missing[@]} -gt 0 ]; then
		echo "debug-kernel: these options of scripts/debug-kernel.config did not stick" \
			"(unmet dependencies?) in $cfg:" >&2
		printf '  %s\n' "${missing[@]}" >&2
		return 1
	fi
}

# ------------------------------------------------------------ extract + configure
t0=$(date +%s)
if [ -f "$tree/.umem-config-key" ] && [ "$(cat "$tree/.umem-config-key")" = "$key" ] &&
   [ -f "$tree/.config" ]; then
	echo "  KERNEL  resuming the build in $tree"
	: >>"$log"
else
	echo "  KERNEL  extracting $(basename "$tarball") into $tree"
	rm -rf "$tree" "$out/modbase"
	mkdir -p "$tree"
	: >"$log"
	tar -xJf "$tarball" -C "$tree" --strip-components=1
	echo "  KERNEL  configuring (vng --kconfig + scripts/debug-kernel.config)"
	# vng --kconfig: x86_64_defconfig + virtme-ng's options + our fragment.
	# vng appends its generic options (DWARF debug info among them) after
	# the fragment: apply the fragment once more, last, and olddefconfig.
	(cd "$tree" && vng --kconfig --config "$frag") >>"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; die "vng --kconfig failed (log: $log)"; }
	cat "$frag" >>"$tree/.config"
	make -C "$tree" olddefconfig >>"$log" 2>&1 ||
		{ tail -n 30 "$log" >&2; die "olddefconfig failed (log: $log)"; }
	check_config "$tree/.config" || die "configuration incomplete (log: $log)"
	echo "$key" >"$tree/.umem-config-key"
fi
[ "${DEBUG_KCONFIG_ONLY:-0}" = 1 ] && { echo "  KERNEL  configured only"; exit 0; }

# ------------------------------------------------------------ build
echo "  KERNEL  make -j$jobs bzImage modules (log: $log; 20-40 min on 2 cores)"
if ! make -C "$tree" -j"$jobs" bzImage modules >>"$log" 2>&1; then
	grep -E 'error|Error' "$log" | tail -n 20 >&2
	die "kernel build failed (log: $log)"
fi
# modules_prepare is part of "modules"; make it explicit for the M= builds.
make -C "$tree" -j"$jobs" modules_prepare >>"$log" 2>&1 ||
	die "modules_prepare failed (log: $log)"
[ -f "$bzimage" ] || die "no $bzimage after the build"
[ -f "$tree/Module.symvers" ] || die "no Module.symvers after the build"
check_config "$tree/.config" || die "configuration changed during the build"

krel=$(make -s -C "$tree" kernelrelease)
cp "$tree/.config" "$out/config"
echo "$krel" >"$out/kernelrelease"
mkdir -p "$out/modbase/$krel"
ln -sfn ../../linux "$out/modbase/$krel/build"
echo "$key" >"$out/stamp"
echo "  KERNEL  debug $krel built in $(( ($(date +%s) - t0) / 60 )) min: $bzimage"
