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
# KVM or TCG.  /dev/kvm can exist and even start a VM, yet not run the
# guest: QEMU fails setting up the vCPU ("failed to set MSR 0x10a"), or
# the kernel dies in its decompressor with "KVM internal error. Suberror:
# 1 / emulation failure" and QEMU stops, silent, forever.  So with
# VM_KVM=auto the first VM of a kernel is preceded by a probe that boots
# /boot/vmlinuz-KVER itself under KVM (-cpu host, console on a serial
# file, no root) and waits up to VM_KVM_PROBE_TIMEOUT seconds for
# "Linux version" on its console; QEMU exiting first, "KVM internal
# error"/"emulation failure", or silence mean TCG.  The verdict is kept
# in build/.kvm-probe per kernel, QEMU and boot of the host
# (/proc/sys/kernel/random/boot_id), so the next VMs of this boot do not
# probe again.  Falling back prints one line on stderr:
#   vm-run: /dev/kvm cannot run KVER (REASON); using TCG
# If a VM that passed the probe still hits a KVM error before the guest
# ran CMD, it is killed, the verdict becomes "bad" and the VM is booted
# again under TCG (once, within the same VM_TIMEOUT).
#
# Watchdog.  vng runs under scripts/vm-watch.py, which copies its stdout
# and stderr through as they come and kills the VM (exit 124, a
# "vm-run: KVER: ..." line on stderr saying why) when
#   - QEMU prints "KVM internal error" or "emulation failure": at once;
#   - nothing came on stdout/stderr for VM_SILENT_TIMEOUT seconds and the
#     guest's heartbeat did not move either.  The guest touches
#     build/.vm-run.PID.alive every few seconds from the moment it starts
#     CMD, so a test that prints nothing for minutes is not "silent"; a
#     guest that never boots, or whose kernel hangs, is;
#   - VM_TIMEOUT seconds passed in all.
#
# Environment:
#   VM_MEMORY (2G)  VM_CPUS (2)  VM_TIMEOUT (seconds, 1200)
#   VM_SILENT_TIMEOUT  seconds of silence before the VM is killed
#                   (120 under TCG, 60 under KVM; 0 = no silence watchdog)
#   VNG_OPTS        extra vng options (word-split)
#   VM_KVM          auto (probe, the default), 1 (force KVM, no probe),
#                   0 (force TCG)
#   VM_KVM_PROBE_TIMEOUT  seconds the probe waits for the console (10)
#   VM_KVM_CACHE    where verdicts are kept (build/.kvm-probe; "" = never cache)
#   VM_KVM_DEV      the KVM device checked before probing (/dev/kvm)
#   VM_QEMU         qemu-system-x86_64 binary, for the probe and for vng
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
watch=$repo/scripts/vm-watch.py

[ -r "$kernel" ] || { echo "vm-run: $kernel not found" >&2; exit 2; }
[ -n "${VM_KERNEL:-}" ] || [ -d "/lib/modules/$kver" ] ||
	{ echo "vm-run: /lib/modules/$kver not found" >&2; exit 2; }
# An absolute path: python3 may be a pyenv shim, which puts its own bin/
# first on PATH for everything the watchdog starts.
vng=$(command -v vng) || { echo "vm-run: vng not found (make deps)" >&2; exit 2; }

qemu=${VM_QEMU:-qemu-system-x86_64}
kvm_dev=${VM_KVM_DEV:-/dev/kvm}
cache=${VM_KVM_CACHE-$repo/build/.kvm-probe}
total=${VM_TIMEOUT:-1200}
cpus=${VM_CPUS:-2}

mkdir -p "$repo/build"

# kvm_verdict: "ok" or "bad<TAB>reason<TAB>how" on stdout
kvm_verdict() {
	if [ ! -e "$kvm_dev" ]; then
		printf 'bad\t%s is missing\tchecked\n' "$kvm_dev"; return
	fi
	if [ ! -r "$kvm_dev" ] || [ ! -w "$kvm_dev" ]; then
		printf 'bad\t%s is not read-writable for %s\tchecked\n' "$kvm_dev" "$(id -un)"; return
	fi
	python3 "$watch" probe --qemu "$qemu" --kernel "$kernel" --kver "$kver" \
		--cpus "$cpus" --timeout "${VM_KVM_PROBE_TIMEOUT:-10}" \
		${cache:+--cache "$cache"} || true
}

tcg_notice() {	# tcg_notice REASON
	echo "vm-run: /dev/kvm cannot run $kver ($1); using TCG" >&2
}

mode=${VM_KVM:-auto}
case "$mode" in
	1) use_kvm=1 ;;
	0) use_kvm=0 ;;
	auto)
		v=$(kvm_verdict)
		if [ "${v%%$'\t'*}" = ok ]; then
			use_kvm=1
		else
			use_kvm=0
			IFS=$'\t' read -r _ why how <<<"$v" || true
			[ "$how" = cached ] && why="$why; cached for this boot in ${cache#"$repo"/}"
			tcg_notice "${why:-probe failed}"
		fi
		;;
	*) echo "vm-run: VM_KVM must be auto, 0 or 1 (not '$mode')" >&2; exit 2 ;;
esac

blacklist=${VM_BLACKLIST-kvm,kvm_amd,kvm_intel,ccp,sr_mod,cdrom,ahci,libahci,libata,iTCO_wdt,i6300esb,psmouse,pcspkr,serio_raw,lpc_ich,i2c_i801,intel_pmc_bxt}

# vng reads the terminal when there is one; from make/CI give it nothing.
[ -t 0 ] || exec </dev/null

# POSIX-quote each word; the guest runs the --exec string with a shell.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
cmd=""
for a in "$@"; do cmd+="$(q "$a") "; done

hb=$repo/build/.vm-run.$$.alive
status=$repo/build/.vm-run.$$.status
wpid=
trap 'rm -f "$hb" "$status"' EXIT
# A signal to vm-run goes on to the watchdog, which takes the VM down.
for sig in INT TERM HUP; do
	# shellcheck disable=SC2064
	trap "[ -z \"\$wpid\" ] || kill -$sig \$wpid 2>/dev/null; wait \$wpid 2>/dev/null; exit \$((128 + $(kill -l $sig)))" $sig
done

# boot KVM(0|1) SECONDS: one VM under the watchdog; its exit status
boot() {
	local kvm=$1 secs=$2 silent opts=() every
	if [ "$kvm" = 1 ]; then silent=${VM_SILENT_TIMEOUT:-60}; else
		silent=${VM_SILENT_TIMEOUT:-120}; opts+=(--disable-kvm); fi
	[ -z "${VM_QEMU:-}" ] || opts+=(--qemu "$VM_QEMU")
	[ -z "$blacklist" ] || opts+=(--append "modprobe.blacklist=$blacklist")
	# the heartbeat: several beats per silence window, at most every 10 s
	every=$((silent / 6)); [ $every -ge 1 ] || every=1; [ $every -le 10 ] || every=10
	local gcmd="(while :; do touch $(q "$hb"); sleep $every; done) </dev/null >/dev/null 2>&1 & $cmd"
	local rc=0
	# In the background, so that a trap runs at once (bash defers traps
	# until a foreground child exits); <&0 keeps our stdin for it.
	# shellcheck disable=SC2086
	python3 "$watch" run --label "vm-run: $kver" --timeout "$secs" --silent "$silent" \
		--heartbeat "$hb" --status "$status" -- \
		"$vng" "${opts[@]}" --run "$kernel" \
		--memory "${VM_MEMORY:-2G}" --cpus "$cpus" \
		--rwdir "$repo/build" --cwd "$repo" \
		${VNG_OPTS:-} \
		--exec "$gcmd" <&0 &
	wpid=$!
	wait $wpid || rc=$?
	wpid=
	return $rc
}

rc=0
boot "$use_kvm" "$total" || rc=$?
verdict= started= reason=
read -r verdict started reason <"$status" 2>/dev/null || true
reason=${reason%; killed the VM}
# A KVM VM that died before the guest ran CMD (KVM error, or silence):
# KVM cannot run this kernel after all.  Remember it and boot under TCG.
if [ "$mode" = auto ] && [ "$use_kvm" = 1 ] && [ "$started" = started=0 ] &&
   { [ "$verdict" = kvm-error ] || [ "$verdict" = silent ]; }; then
	[ -z "$cache" ] || python3 "$watch" record --cache "$cache" --kver "$kver" \
		--qemu "$qemu" --verdict bad --reason "the VM: $reason" || true
	what="went silent"; [ "$verdict" = silent ] || what="hit a KVM error"
	tcg_notice "it passed the probe, but the VM $what before the guest ran its command: $reason"
	left=$((total - SECONDS))
	if [ $left -le 0 ]; then
		echo "vm-run: $kver: no time left of VM_TIMEOUT=$total for a TCG boot" >&2
		exit "$rc"
	fi
	rc=0
	boot 0 "$left" || rc=$?
elif [ "$mode" = auto ] && [ "$use_kvm" = 1 ] && [ "$verdict" = kvm-error ] && [ -n "$cache" ]; then
	# too late to boot again (CMD had started), but the next VMs use TCG
	python3 "$watch" record --cache "$cache" --kver "$kver" --qemu "$qemu" \
		--verdict bad --reason "the VM: $reason" || true
fi
exit "$rc"
