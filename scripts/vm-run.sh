#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# vm-run.sh KVER CMD [ARGS...]
#
# Boot the installed distro kernel /boot/vmlinuz-KVER with virtme-ng on a
# read-only snapshot of the host root (9p), run CMD as root with the repo as
# cwd, and exit with CMD's exit status.  Modules come from /lib/modules/KVER
# of the host root (no initramfs needed for the Debian kernels).
#
# In the guest: / is read-only, /tmp is a writable overlay (starts as a view
# of the host's /tmp, writes stay in the guest), /dev is devtmpfs, and the
# repo's build/ is shared read-write with the host (--rwdir), so results
# go to build/.  The serial console mixes kernel noise into stdout: never
# parse stdout, write files under build/.
#
# Environment:
#   VM_MEMORY (2G)  VM_CPUS (2)  VM_TIMEOUT (seconds, 1200)
#   VNG_OPTS        extra vng options (word-split)
#   VM_KVM          auto (probe /dev/kvm), 1 (force KVM), 0 (force TCG)
#   VM_KERNEL       boot this image instead of /boot/vmlinuz-KVER, e.g. a built
#                   tree's arch/x86/boot/bzImage (vng then takes the tree's
#                   modules; /lib/modules/KVER need not exist; make check-debug)
#   VM_BLACKLIST    modules udev must not load in the guest (saves seconds of
#                   TCG time per boot; one boot spent ~18 s before kvm.ko was in); "" = none
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 KVER CMD [ARGS...]" >&2; exit 2; }
kver=$1; shift
repo=$(cd "$(dirname "$0")/.." && pwd)
kernel=${VM_KERNEL:-/boot/vmlinuz-$kver}

[ -r "$kernel" ] || { echo "vm-run: $kernel not found" >&2; exit 2; }
[ -n "${VM_KERNEL:-}" ] || [ -d "/lib/modules/$kver" ] ||
	{ echo "vm-run: /lib/modules/$kver not found" >&2; exit 2; }
command -v vng >/dev/null || { echo "vm-run: vng not found (make deps)" >&2; exit 2; }

# /dev/kvm can exist, open and even create a VM, yet fail when QEMU sets up
# the vCPU (nested virt without MSR support: "failed to set MSR 0x10a").
# So probe by starting a paused QEMU: still alive after 2 s = usable.
kvm_usable() {
	[ -w /dev/kvm ] || return 1
	local rc=0
	timeout 2 qemu-system-x86_64 -accel kvm -cpu host -M microvm -m 64 \
		-nodefaults -display none -no-reboot -S </dev/null >/dev/null 2>&1 || rc=$?
	[ $rc -eq 124 ]
}

opts=()
case "${VM_KVM:-auto}" in
	1) ;;
	0) opts+=(--disable-kvm) ;;
	*) kvm_usable || opts+=(--disable-kvm) ;;
esac

blacklist=${VM_BLACKLIST-kvm,kvm_amd,kvm_intel,ccp,sr_mod,cdrom,ahci,libahci,libata,iTCO_wdt,i6300esb,psmouse,pcspkr,serio_raw,lpc_ich,i2c_i801,intel_pmc_bxt}
[ -z "$blacklist" ] || opts+=(--append "modprobe.blacklist=$blacklist")

mkdir -p "$repo/build"
# vng reads the terminal when there is one; from make/CI give it nothing.
[ -t 0 ] || exec </dev/null

# POSIX-quote each word; the guest runs the --exec string with a shell.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
cmd=""
for a in "$@"; do cmd+="$(q "$a") "; done

# shellcheck disable=SC2086
exec timeout -k 10 "${VM_TIMEOUT:-1200}" \
	vng "${opts[@]}" --run "$kernel" \
	--memory "${VM_MEMORY:-2G}" --cpus "${VM_CPUS:-2}" \
	--rwdir "$repo/build" --cwd "$repo" \
	${VNG_OPTS:-} \
	--exec "$cmd"
