#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# dkms.sh preflight|install|uninstall: the live half of make dkms-install
# and make dkms-uninstall (packaging/pkg.mk), as root.  Environment (set by
# pkg.mk): REPO, VERSION, DKMS (the dkms command), KVERS (kernels to build
# for: every /lib/modules/*/build), DKMS_SRC (/usr/src/umem-VERSION),
# UDEV_RULE, MODULES_LOAD_CONF, DESTDIR (must be empty).
#
#   preflight  refuse what would go wrong (not root, no dkms, a DESTDIR, a
#              umem-dkms package owning DKMS_SRC); drop an earlier
#              registration of this version, so a re-run rebuilds
#   install    (after pkg.mk copied the source, the udev rule and
#              modules-load.d) dkms add, dkms install for each kernel in
#              KVERS, the system group "umem", udev told
#   uninstall  dkms remove --all, the source tree, the udev rule and
#              modules-load.d; the group stays
set -euo pipefail

: "${VERSION:?}" "${DKMS_SRC:?}" "${UDEV_RULE:?}" "${MODULES_LOAD_CONF:?}"
DKMS=${DKMS:-dkms}
say() { echo "dkms-install: $*"; }
die() { echo "dkms-install: $*" >&2; exit 1; }

registered() {
	[ -n "$($DKMS status -m umem -v "$VERSION" 2>/dev/null)" ]
}

udev_reload() {
	if [ -d /run/udev ] && command -v udevadm >/dev/null; then
		udevadm control --reload-rules || true
		[ -e /dev/umem ] &&
			udevadm trigger --action=change --subsystem-match=misc --sysname-match=umem
	fi
	return 0
}

owned_by_package() {	# owned_by_package PATH: prints the owning package
	command -v dpkg-query >/dev/null || return 1
	dpkg-query -S "$1" 2>/dev/null | sed -n '1s/:.*//p' | grep .
}

common_checks() {
	[ -z "${DESTDIR:-}" ] || die "DESTDIR is for make install; dkms-install works on this system"
	[ "$(id -u)" -eq 0 ] || die "run as root"
	command -v "${DKMS%% *}" >/dev/null || die "dkms not found (apt install dkms)"
	local p
	if p=$(owned_by_package "$DKMS_SRC"); then
		die "$DKMS_SRC belongs to package $p: use apt (or dpkg -r $p) instead"
	fi
}

case "${1:-}" in
preflight)
	common_checks
	[ -n "${KVERS:-}" ] || die "no kernel headers found (/lib/modules/*/build): apt install linux-headers-\$(uname -r)"
	if registered; then
		say "umem $VERSION is registered already: removing it to rebuild"
		$DKMS remove -m umem -v "$VERSION" --all
	fi
	rm -rf "$DKMS_SRC"
	;;
install)
	$DKMS add -m umem -v "$VERSION"
	failed=()
	for k in $KVERS; do
		say "building and installing for $k"
		if ! $DKMS install -m umem -v "$VERSION" -k "$k"; then
			failed+=("$k")
		fi
	done
	if ! getent group umem >/dev/null; then
		addgroup --system --quiet umem
		say "created the system group umem"
	fi
	udev_reload
	$DKMS status -m umem
	say "/dev/umem is root:umem 0660 once the module is loaded (modprobe umem);"
	say "add users to group umem; to load it at boot, uncomment $MODULES_LOAD_CONF"
	[ ${#failed[@]} -eq 0 ] || die "the build failed for: ${failed[*]} (see /var/lib/dkms/umem/$VERSION/build/make.log)"
	;;
uninstall)
	common_checks
	if registered; then
		$DKMS remove -m umem -v "$VERSION" --all
	else
		say "umem $VERSION is not registered with dkms"
	fi
	rm -rf "$DKMS_SRC"
	for f in "$UDEV_RULE" "$MODULES_LOAD_CONF"; do
		if p=$(owned_by_package "$f"); then
			say "leaving $f (package $p)"
		else
			rm -f "$f"
		fi
	done
	udev_reload
	if [ -d /sys/module/umem ]; then
		say "the module is still loaded: rmmod umem"
	fi
	say "the group umem is left in place (delgroup umem removes it)"
	;;
*)
	echo "usage: $0 preflight|install|uninstall" >&2
	exit 2
	;;
esac
