#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# ksft-extract.sh TARBALL DESTDIR
#
# Pull the few files umem borrows from the kernel source out of the Debian
# linux-source tarball (never committed; DESTDIR lives under build/):
#   kselftest_harness.h, kselftest.h           for selftests/ (-I$KSFT_DIR)
#   checkpatch.pl + spelling.txt + const_structs.checkpatch   for make lint
# checkpatch.pl looks for its data files next to itself.
set -euo pipefail

tarball=${1:?tarball}
dest=${2:?destdir}

[ -r "$tarball" ] || { echo "ksft-extract: $tarball not found (run make deps)" >&2; exit 1; }

top=$(tar -tJf "$tarball" 2>/dev/null | head -1 | cut -d/ -f1) || true
[ -n "$top" ] || { echo "ksft-extract: cannot list $tarball" >&2; exit 1; }

members=(
	tools/testing/selftests/kselftest_harness.h
	tools/testing/selftests/kselftest.h
	scripts/checkpatch.pl
	scripts/spelling.txt
	scripts/const_structs.checkpatch
)

tmp=$(mktemp -d "${dest%/}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "  KSFT    extracting ${#members[@]} files from $(basename "$tarball")"
tar -xJf "$tarball" -C "$tmp" --strip-components=1 "${members[@]/#/$top/}"

mkdir -p "$dest"
for m in "${members[@]}"; do
	cp "$tmp/$m" "$dest/"
done
chmod +x "$dest/checkpatch.pl"
