#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# set-version.sh NEW [CHANGELOG-LINE]: make NEW (MAJOR.MINOR.PATCH) umem's
# version: VERSION, a new debian/changelog entry, libumem.h's
# LIBUMEM_VERSION_MAJOR/MINOR and the .TH line of every man page.  Then
# scripts/check-version.sh.  A new major number is a new libumem soname
# (libumem.so.MAJOR): rename libumem0 in debian/ and its symbols file too.
set -euo pipefail
cd "$(dirname "$0")/.."

new=${1:?usage: set-version.sh MAJOR.MINOR.PATCH [changelog line]}
msg=${2:-Version $new.}
[[ "$new" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || { echo "set-version: bad version $new" >&2; exit 2; }
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
old=$(cat VERSION)

echo "$new" >VERSION
{
	printf 'umem (%s) unstable; urgency=medium\n\n  * %s\n\n -- %s  %s\n\n' \
		"$new" "$msg" "$(sed -n 's/^ -- \(.*>\)  .*/\1/p' debian/changelog | head -n 1)" "$(date -R)"
	cat debian/changelog
} >debian/changelog.new
mv debian/changelog.new debian/changelog
# libumem.h, and its listing in libumem.3 (scripts/check-man.py compares)
sed -i -e "s/^\(#define LIBUMEM_VERSION_MAJOR[[:space:]]*\)[0-9]*/\1$major/" \
	-e "s/^\(#define LIBUMEM_VERSION_MINOR[[:space:]]*\)[0-9]*/\1$minor/" \
	userspace/lib/libumem.h Documentation/libumem.3
for m in Documentation/*.[1-8]; do
	sed -i "/^\.TH /s/\"umem [^\"]*\"/\"umem $new\"/" "$m"
done
echo "set-version: $old -> $new"
scripts/check-version.sh
