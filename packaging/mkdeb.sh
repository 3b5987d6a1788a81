#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# mkdeb.sh (make deb): build umem's Debian packages (umem-dkms, umemd,
# libumem0, libumem-dev) with dpkg-buildpackage and debhelper (dh_dkms)
# into build/deb/, then lintian on them.
#
# The build runs in a copy of the tree (build/deb/src/umem-VERSION/: the
# files git knows, tracked or not ignored, as they are in the work tree)
# so the source tree gets no build products.  Output:
#   build/deb/*.deb, *.changes, *.buildinfo
#   build/deb/dbgsym/*.deb  the -dbgsym packages, apart so that
#                           "apt install ./build/deb/*.deb" leaves them out
#   build/deb/build.log     dpkg-buildpackage's output
#   build/deb/lintian.txt   lintian's tags (errors fail; warnings listed)
# LINTIAN=0 skips lintian.  KEEP_SRC=1 keeps the copy.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/build/deb
ver=$(cat "$repo/VERSION")
src=$out/src/umem-$ver

"$repo/scripts/check-version.sh" >/dev/null || {
	"$repo/scripts/check-version.sh"
	exit 1
}
for t in dpkg-buildpackage dh dh_dkms; do
	command -v "$t" >/dev/null || { echo "mkdeb: $t not found (make deps)" >&2; exit 1; }
done

rm -rf "$out"
mkdir -p "$src"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git -C "$repo" ls-files -z --cached --others --exclude-standard |
		tar -C "$repo" --null -T - --ignore-failed-read -cf - 2>/dev/null |
		tar -C "$src" -xf -
else
	tar -C "$repo" --exclude=./build --exclude=./.git -cf - . | tar -C "$src" -xf -
fi

echo "  DEB     umem $ver -> build/deb/ (log: build/deb/build.log)"
t0=$(date +%s)
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -jauto) >"$out/build.log" 2>&1; then
	tail -n 40 "$out/build.log" >&2
	echo "mkdeb: dpkg-buildpackage failed (log: $out/build.log)" >&2
	exit 1
fi
mkdir -p "$out/dbgsym"
mv "$out/src"/*-dbgsym_*.deb "$out/dbgsym/" 2>/dev/null || true
mv "$out/src"/*.deb "$out/src"/*.changes "$out/src"/*.buildinfo "$out/"
[ "${KEEP_SRC:-0}" = 1 ] || rm -rf "$out/src"
echo "  DEB     $(cd "$out" && echo *.deb) ($(($(date +%s) - t0)) s)"

[ "${LINTIAN:-1}" = 0 ] && exit 0
command -v lintian >/dev/null || { echo "mkdeb: lintian not found (make deps)" >&2; exit 1; }
# -I: the I: tags too, so that the list is complete; errors fail.  The
# .changes names the -dbgsym packages too: they are checked as well.
(cd "$out" && ln -sf dbgsym/*.deb . && lintian -I --tag-display-limit 0 ./*.changes) \
	>"$out/lintian.txt" 2>&1 || true
find "$out" -maxdepth 1 -name '*-dbgsym_*.deb' -type l -delete
sed -i "/^running with root privileges is not recommended!$/d" "$out/lintian.txt"
sed 's/^/  lintian: /' "$out/lintian.txt"
if grep -q '^E: ' "$out/lintian.txt"; then
	echo "mkdeb: lintian reports errors (build/deb/lintian.txt)" >&2
	exit 1
fi
echo "  LINTIAN $(grep -c '^E: ' "$out/lintian.txt") errors, $(grep -c '^W: ' "$out/lintian.txt") warnings, $(grep -c '^I: ' "$out/lintian.txt") info"
