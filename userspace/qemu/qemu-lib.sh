# SPDX-License-Identifier: GPL-2.0
# Shared by demo-qemu.sh, native-postcopy.sh and
# scripts/guest-suites.d/81-qemu-migrate.sh: the umem module, a pair of
# network namespaces for the two QEMUs, and qemu_migrate.py's paths.
# Source it from the repo root; needs root.

QM_BIN=$PWD/userspace/build/bin
[ -x "${UMEMD_BIN:-}/umemd" ] && QM_BIN=$UMEMD_BIN
QM_GUEST=${QEMU_GUEST:-$PWD/userspace/build/qemu/umem-guest.elf}
. "$(dirname "${BASH_SOURCE[0]}")/../tests/ports.sh"
QM_PY=$PWD/userspace/qemu/qemu_migrate.py
QM_NS_SRC=
QM_NS_DST=
# The real Linux guest (userspace/qemu/linux-guest): the base of its
# initramfs, built by make -C userspace; qm_linux_setup fills QM_GUEST_ARGS.
QM_LINUX_BASE=${QEMU_LINUX_BASE:-$PWD/userspace/build/qemu/linux-guest-base.cpio}
QM_GUEST_ARGS=()

# Load build/mod-$(uname -r)/umem.ko (or kmod/umem.ko) unless /dev/umem exists.
qm_load_module() {
	local ko
	[ -e /dev/umem ] && return 0
	for ko in "build/mod-$(uname -r)/umem.ko" kmod/umem.ko; do
		[ -f "$ko" ] && insmod "$ko" 2>/dev/null && break
	done
	[ -e /dev/umem ]
}

# qm_linux_setup DIR: the Linux guest for qemu_migrate.py, for the kernel
# this system runs (LINUX_KERNEL=VMLINUZ for another; its modules must be
# in /lib/modules/ under the same release): DIR/initrd = the base
# initramfs + that kernel's virtio modules (virtio_pci, virtio_rng,
# virtio_net and their dependencies, those not built in).  Sets
# QM_GUEST_ARGS (--linux ... --initrd ... --workload-mib WMIB, default 32).
qm_linux_setup() {
	local dir=$1 kver=$(uname -r) k
	k=${LINUX_KERNEL:-/boot/vmlinuz-$kver}
	[ -n "${LINUX_KERNEL:-}" ] && kver=$(file -bL "$k" | sed -n 's/.*version \([^ ]*\).*/\1/p')
	[ -r "$k" ] || { echo "qm_linux_setup: $k is not readable" >&2; return 1; }
	[ -f "$QM_LINUX_BASE" ] ||
		{ echo "qm_linux_setup: $QM_LINUX_BASE missing: make -C userspace" >&2; return 1; }
	python3 userspace/qemu/linux-guest/mkinitramfs.py modules --kver "$kver" \
		"$dir/modules.cpio" virtio_pci virtio_rng virtio_net || return 1
	cat "$QM_LINUX_BASE" "$dir/modules.cpio" >"$dir/initrd" || return 1
	QM_GUEST_ARGS=(--linux "$k" --initrd "$dir/initrd" --workload-mib "${WMIB:-32}"
		--boot-timeout "${QM_BOOT_TIMEOUT:-300}")
}

# qm_linux_mib MIB: fail, saying why, below the 128 MiB the Linux guest
# is run and tested at (at 64 MiB its QEMU exits before the guest prints
# anything; sizes in between are untested).
qm_linux_mib() {
	[ "$1" -ge 128 ] 2>/dev/null && return 0
	echo "GUEST=linux runs with MIB=128 or more (tested at 128; at 64 its QEMU exits before the guest prints anything), not $1" >&2
	return 1
}

# qm_netns_up TAG SUBNET: namespaces TAG-src (SUBNET.1) and TAG-dst
# (SUBNET.2) joined by a veth pair; sets QM_NS_SRC, QM_NS_DST, QM_DST_ADDR.
qm_netns_up() {
	local tag=$1 net=$2
	QM_NS_SRC=$tag-src-$$
	QM_NS_DST=$tag-dst-$$
	QM_DST_ADDR=$net.2
	ip netns add "$QM_NS_SRC" && ip netns add "$QM_NS_DST" &&
	ip link add "vq$$s" netns "$QM_NS_SRC" type veth peer name "vq$$d" netns "$QM_NS_DST" ||
		return 1
	ip -n "$QM_NS_SRC" addr add "$net.1/24" dev "vq$$s" &&
	ip -n "$QM_NS_DST" addr add "$net.2/24" dev "vq$$d" &&
	ip -n "$QM_NS_SRC" link set lo up && ip -n "$QM_NS_DST" link set lo up &&
	ip -n "$QM_NS_SRC" link set "vq$$s" up && ip -n "$QM_NS_DST" link set "vq$$d" up
}

qm_netns_down() {
	[ -n "$QM_NS_SRC" ] && ip netns del "$QM_NS_SRC" 2>/dev/null
	[ -n "$QM_NS_DST" ] && ip netns del "$QM_NS_DST" 2>/dev/null
	QM_NS_SRC= QM_NS_DST=
}

# qm_run OUT ARGS...: qemu_migrate.py between the namespaces, its output
# teed to OUT (only written to OUT with QM_QUIET=1); returns its exit
# status.  QM_TIMEOUT=SEC bounds it (SIGTERM, on which it kills its QEMUs
# and umemds; exit 124).
qm_run() {
	local out=$1 to=() port
	shift
	port=$(test_port 2)
	[ -n "${QM_TIMEOUT:-}" ] && to=(timeout -k 15 "$QM_TIMEOUT")
	set -- "${to[@]}" python3 "$QM_PY" --qemu "${QEMU:-qemu-system-x86_64}" --guest "$QM_GUEST" \
		--umemd "$QM_BIN/umemd" --src-ns "$QM_NS_SRC" --dst-ns "$QM_NS_DST" \
		--dst-addr "$QM_DST_ADDR" --port "$port" --qport "$((port + 1))" \
		"${QM_GUEST_ARGS[@]}" "$@"
	if [ "${QM_QUIET:-0}" = 1 ]; then
		"$@" >"$out" 2>&1
	else
		set -o pipefail
		"$@" 2>&1 | tee "$out"
	fi
}

# qm_vars OUT: shell assignments R_*=... from the RESULT line of OUT (one
# python3 start: they are slow under nested emulation).  Use with eval.
qm_vars() {
	python3 -c 'import json, shlex, sys
r = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        r = json.loads(line[7:])
g, d = r.get("guest") or {}, r.get("umemd_dst") or {}
v = {"R_FOUND": 1 if r else "", "R_ERROR": r.get("error"), "R_PAGES": r.get("pages"),
     "R_MISMATCHES": g.get("mismatches"),
     "R_MISMATCH_LINES": "\n".join(g.get("mismatch_lines") or []),
     "R_SRC_LAST": g.get("source_last_pass"), "R_DST_FIRST": g.get("destination_first_pass"),
     "R_AT_DONE": g.get("pass_at_ram_done"), "R_LAST": g.get("last_pass"),
     "R_AFTER": g.get("passes_after_ram_done"),
     "R_DOK": {True: "true", False: "false"}.get(d.get("ok"), ""),
     "R_DEXIT": r.get("umemd_dst_exit"), "R_SEXIT": r.get("umemd_src_exit"),
     "R_REQ": d.get("pages_requested"), "R_BG": d.get("pages_background"),
     "R_DPAGES": d.get("pages"), "R_PMD": r.get("dst_pmd_kb"),
     "R_CHECKED": (r.get("pages_check") or {}).get("pages"),
     "R_WRONG": (r.get("pages_check") or {}).get("wrong")}
for k, x in v.items():
    print(f"{k}={shlex.quote(str(x) if x is not None else str())}")' "$1"
}
