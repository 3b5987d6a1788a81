#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# umemd/libumem unit tests on the host, under ASan + UBSan: frame
# encoder/decoder and state machine, the snapshot file format and CRC-32C,
# libumem on the uffd backends (umem is skipped on the host: no module),
# install/pkg-config smoke test.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

if ! make -s -C userspace SAN=1 >/tmp/umemd-suite-build.log 2>&1; then
	tail -n 30 /tmp/umemd-suite-build.log | sed 's/^/# /'
	t_fail "build userspace with SAN=1"
	t_done
fi
t_ok "build userspace with ASan+UBSan, -Wall -Wextra -Werror"
BIN=userspace/build-san/bin
t_run_tap test-proto "$BIN/test-proto"
t_run_tap test-snapfile timeout 120 "$BIN/test-snapfile"
t_run_tap test-libumem timeout 120 "$BIN/test-libumem" uffd uffd-minor

# make install DESTDIR + pkg-config + a tiny program against the installed lib
D=$(mktemp -d)
if make -s -C userspace install DESTDIR="$D" PREFIX=/usr/local >/dev/null 2>&1 &&
   [ -f "$D/usr/local/include/libumem.h" ] && [ -f "$D/usr/local/lib/libumem.a" ] &&
   [ -f "$D/usr/local/lib/libumem.so" ] && [ -f "$D/usr/local/lib/pkgconfig/libumem.pc" ]; then
	t_ok "make install DESTDIR: header, libumem.a, libumem.so, libumem.pc"
	cat >"$D/t.c" <<'C'
#include <libumem.h>
#include <stdio.h>
int main(void)
{
	struct umem_region_config c = { .backend = "uffd", .name = "pc", .size = 1 << 20 };
	struct umem_region *r;
	int ret = umem_region_create(&c, &r);

	if (ret)
		return 1;
	printf("%s %llu\n", umem_region_backend(r), (unsigned long long)umem_region_size(r));
	umem_region_close(r);
	return 0;
}
C
	flags=$(PKG_CONFIG_SYSROOT_DIR="$D" PKG_CONFIG_LIBDIR="$D/usr/local/lib/pkgconfig" pkg-config --cflags --libs libumem)
	# shellcheck disable=SC2086
	if cc -o "$D/t" "$D/t.c" $flags 2>"$D/cc.err" &&
	   [ "$(LD_LIBRARY_PATH="$D/usr/local/lib" "$D/t")" = "uffd 1048576" ]; then
		t_ok "a program built with pkg-config --cflags --libs libumem runs ($flags)"
	else
		sed 's/^/# /' "$D/cc.err"
		t_fail "build against the installed libumem"
	fi
else
	t_fail "make install DESTDIR"
fi
rm -rf "$D"
t_done
