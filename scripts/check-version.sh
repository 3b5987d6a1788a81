#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# check-version.sh: the top-level VERSION file is the one version of umem.
# What is built from it (MODULE_VERSION via kmod/Kbuild, libumem's file
# name and soname major, libumem.pc, the programs' --version, dkms.conf's
# PACKAGE_VERSION) cannot disagree; what has to carry a copy is checked
# here:
#   debian/changelog      the newest entry's version is VERSION
#   libumem.h             LIBUMEM_VERSION_MAJOR/MINOR are its first two numbers
#   Documentation/*.[1-8] the .TH source field is "umem VERSION"
#   dkms.conf             PACKAGE_VERSION is the #MODULE_VERSION# placeholder
#   userspace/Makefile    holds no version of its own
# scripts/set-version.sh NEW changes all of them.  Exit 1 on a mismatch.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

bad=0
fail() { echo "check-version: $*" >&2; bad=1; }

v=$(cat VERSION 2>/dev/null)
if ! [[ "$v" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
	echo "check-version: VERSION must be MAJOR.MINOR.PATCH, not '$v'" >&2
	exit 1
fi
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}

cl=$(sed -n '1s/^umem (\([^)]*\)).*/\1/p' debian/changelog 2>/dev/null)
[ "$cl" = "$v" ] || fail "debian/changelog's newest version is '$cl', VERSION is $v"

h=userspace/lib/libumem.h
hmaj=$(sed -n 's/^#define LIBUMEM_VERSION_MAJOR[[:space:]]*\([0-9]*\).*/\1/p' "$h")
hmin=$(sed -n 's/^#define LIBUMEM_VERSION_MINOR[[:space:]]*\([0-9]*\).*/\1/p' "$h")
[ "$hmaj.$hmin" = "$major.$minor" ] ||
	fail "$h says $hmaj.$hmin (LIBUMEM_VERSION_MAJOR.MINOR), VERSION is $v"

for m in Documentation/*.[1-8]; do
	[ -f "$m" ] || continue
	th=$(grep -m1 '^\.TH ' "$m")
	[[ "$th" == *"\"umem $v\""* ]] || fail "$m: .TH has no \"umem $v\": $th"
done

grep -q '^PACKAGE_VERSION="#MODULE_VERSION#"$' dkms.conf ||
	fail "dkms.conf: PACKAGE_VERSION must be \"#MODULE_VERSION#\" (filled in at install)"
if grep -qE '^VERSION[[:space:]]*:?=[[:space:]]*[0-9]' userspace/Makefile; then
	fail "userspace/Makefile sets a version of its own"
fi

[ $bad -eq 0 ] && echo "check-version: everything says $v"
exit $bad
