#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Install everything umem's build, tests, demo and benchmarks need on a
# Debian 12 machine.  Idempotent: when everything is present it only checks
# and returns in well under a second.  Run as root (or with sudo available).
set -euo pipefail

APT_PKGS=(
	build-essential gcc make bc bison flex libelf-dev pkg-config python3-pip
	linux-image-amd64 linux-headers-amd64
	linux-image-6.12-amd64 linux-headers-6.12-amd64
	linux-image-6.12-rt-amd64 linux-headers-6.12-rt-amd64
	linux-source-6.12
	qemu-system-x86 busybox-static
	libnl-3-dev libnl-genl-3-dev
	sparse clang libclang-rt-14-dev
	iproute2 gnuplot-nox kmod
	# qemu_migrate.py --perf-vcpu (profiles of the destination's vCPU)
	linux-perf
	xz-utils perl python3 coreutils
	# make deb / make dkms-install / the man page checks
	dkms dh-dkms debhelper dpkg-dev fakeroot lintian
	udev adduser man-db groff-base
)
VNG_VERSION=${VNG_VERSION:-}

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

missing=()
for p in "${APT_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
fi

if ! command -v vng >/dev/null 2>&1; then
	echo "deps: installing virtme-ng from PyPI" >&2
	python3 -m pip install -q --root-user-action=ignore "virtme-ng${VNG_VERSION:+==$VNG_VERSION}"
fi
