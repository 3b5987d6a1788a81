#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# 2 MiB pages (issue 13, level 1) on the host: libumem's uffd backends on
# hugetlbfs, then 2 MiB postcopy migrations on loopback (uffd, uffd-minor;
# with and without preempt), every page verified, with a slow source so
# that requests interrupt partly sent huge pages (asserted from both
# umemds' JSON summaries), and protocol v2/v3 compatibility: umemd
# --proto-max 2, and a real version-2 umemd built from git when the
# history is there.  umemd and umem-vmm are built with ASan + UBSan.
# Huge pages are reserved here (vm.nr_hugepages) and the old value is
# restored at exit; without root or a 2 MiB pool the suite is one SKIP.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

POOL=/sys/kernel/mm/hugepages/hugepages-2048kB
if [ "$(id -u)" != 0 ]; then
	t_skip "2 MiB pages: needs root to reserve huge pages in /proc/sys/vm/nr_hugepages"
	t_done
fi
if [ ! -d "$POOL" ] || [ ! -w /proc/sys/vm/nr_hugepages ]; then
	t_skip "2 MiB pages: this kernel has no 2 MiB hugetlb pool ($POOL)"
	t_done
fi
if ! make -s -C userspace SAN=1 >/tmp/umemd-suite-build.log 2>&1; then
	tail -n 30 /tmp/umemd-suite-build.log | sed 's/^/# /'
	t_fail "build userspace with SAN=1"
	t_done
fi
REPO=$PWD
BIN=$REPO/userspace/build-san/bin
WORK=$(mktemp -d /tmp/umemd-huge.XXXXXX)
OLD_NR=$(cat /proc/sys/vm/nr_hugepages)
cleanup() {
	echo "$OLD_NR" >/proc/sys/vm/nr_hugepages
	rm -rf "$WORK"
}
trap cleanup EXIT
ADDR=127.0.0.1
SRC_RUN=
DST_RUN=
SIZE=64M		# 32 huge pages
NEED=32
TMO=60
. userspace/tests/migrate-lib.sh
. userspace/tests/huge-lib.sh

if ! "$BIN/test-libumem" uffd >/dev/null 2>&1; then
	t_skip "userfaultfd unusable here (test-libumem uffd failed)"
	t_done
fi
mig_image

free_pages() { cat "$POOL/free_hugepages"; }

# ---- no huge pages: a clear error, not a crash ----
if [ "$(free_pages)" -lt "$NEED" ]; then
	huge_dest uffd "$BIN/umemd"
	huge_src "$BIN/umemd" --page-size 2m
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	if [ "$src" = 1 ] && [ "$drc" = 1 ] &&
	   grep -q "reserve them in /proc/sys/vm/nr_hugepages" "$DLOG" &&
	   grep -q "reserve them in /proc/sys/vm/nr_hugepages" "$SLOG"; then
		t_ok "$(free_pages) free huge pages: both sides fail and say: $(grep -m1 -o 'no free 2 MiB.*' "$DLOG" | cut -c1-110)"
	else
		t_fail "no huge pages: source=$src dest=$drc, no clear error"
		huge_dump
	fi
else
	t_skip "the host has $(free_pages) free huge pages already: the no-huge-pages error is not tested"
fi

# ---- reserve ----
echo $((OLD_NR + NEED + 16)) >/proc/sys/vm/nr_hugepages
if [ "$(free_pages)" -lt $((NEED + 8)) ]; then
	t_skip "the kernel could not provide $((NEED + 8)) free 2 MiB huge pages (got $(free_pages); memory fragmented?)"
	t_done
fi
t_ok "reserved huge pages: vm.nr_hugepages $OLD_NR -> $(cat /proc/sys/vm/nr_hugepages), $(free_pages) free"

t_run_tap test-libumem-huge timeout 60 "$BIN/test-libumem" --huge uffd uffd-minor

# --max-bandwidth 100: a background huge page takes ~170 ms, piece by
# piece, while 2 random-pattern vCPUs fault: requests must interrupt
# partly sent pages.
for b in uffd uffd-minor; do
	huge_mig "$b, 2 MiB, preempt" "$b" "" True
	huge_mig "$b, 2 MiB, no preempt" "$b" "--no-preempt" False
done

# Zero huge pages travel as ZERO runs (hugetlb has no UFFDIO_ZEROPAGE:
# libumem copies a zero page); the VMM checks against the image file.
ZIMG=$WORK/zero-holes.img
cp "$IMG" "$ZIMG"
dd if=/dev/zero of="$ZIMG" bs=2M seek=2 count=4 conv=notrunc status=none
for b in uffd uffd-minor; do
	huge_dest "$b" "$BIN/umemd"
	IMG_SAVE=$IMG; IMG=$ZIMG
	huge_src "$BIN/umemd" --page-size 2m
	IMG=$IMG_SAVE
	VLOG=$WORK/vmm-$PORT.err
	vrc=99
	if wait_for "$DSOCK" 20; then
		timeout "$TMO" "$BIN/umem-vmm" --region "$DSOCK" --expect-file "$ZIMG" --threads 2 \
			--verify-all >/dev/null 2>"$VLOG"
		vrc=$?
	fi
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	if [ "$vrc" = 0 ] && [ "$src" = 0 ] && [ "$drc" = 0 ] &&
	   [ "$(jget "$SJSON" pages_zero)" = 4 ] && [ "$(jget "$DJSON" pages_zero)" = 4 ]; then
		t_ok "$b, 2 MiB: 4 zero huge pages sent as ZERO and installed, every page verified against the image"
	else
		t_fail "$b, 2 MiB, zero pages: vmm=$vrc source=$src dest=$drc zero=$(jget "$SJSON" pages_zero)/$(jget "$DJSON" pages_zero)"
		huge_dump
	fi
done

# --recover with 2 MiB pages: --test-cut breaks the link three times in
# the middle of a background huge page; the destination drops the pages
# it had in part, the source sends them again whole.
for b in uffd uffd-minor; do
	huge_dest "$b" "$BIN/umemd" --recover --recover-wait 30
	huge_src "$BIN/umemd" --page-size 2m --recover --test-cut 6 --max-bandwidth 200
	VLOG=$WORK/vmm-$PORT.err
	vrc=99
	if wait_for "$DSOCK" 20; then
		timeout "$TMO" "$BIN/umem-vmm" --region "$DSOCK" --seed "$SEED" --threads 1 \
			--pattern random --duration 2 --verify-all >/dev/null 2>"$VLOG"
		vrc=$?
	fi
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	res=$(jget "$DJSON" resumes); drop=$(jget "$DJSON" partial_dropped)
	# How much of the cut page the destination had parsed when it saw
	# the break varies (what was still in its buffers is thrown away),
	# so the number of pages dropped in part is reported, not asserted.
	if [ "$vrc" = 0 ] && [ "$src" = 0 ] && [ "$drc" = 0 ] && [ "$res" = 3 ] &&
	   [ "$(jget "$SJSON" resumes)" = 3 ] && [ -n "$drop" ]; then
		t_ok "$b, 2 MiB, --recover: 3 link cuts inside background huge pages, every page verified"
		echo "#   partly received pages dropped and sent again: $drop"
	else
		t_fail "$b, 2 MiB, --recover: vmm=$vrc source=$src dest=$drc resumes=$res dropped=$drop"
		huge_dump
	fi
done

# A stop hook before a pure postcopy (as make demo-qemu HUGE=1 uses it):
# --stop-cmd alone is allowed with 2 MiB pages and runs before any page
# leaves; precopy (--pid) is refused with the reason.
STOPPED=$WORK/stopped
rm -f "$STOPPED"
huge_dest uffd "$BIN/umemd"
huge_src "$BIN/umemd" --page-size 2m --stop-cmd "touch $STOPPED"
VLOG=$WORK/vmm-$PORT.err
vrc=99
if wait_for "$DSOCK" 20; then
	timeout "$TMO" "$BIN/umem-vmm" --region "$DSOCK" --expect-file "$IMG" --threads 2 \
		--verify-all >/dev/null 2>"$VLOG"
	vrc=$?
fi
wait_pid "$SPID" "$TMO"; src=$WAIT_RC
wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
if [ "$vrc" = 0 ] && [ "$src" = 0 ] && [ "$drc" = 0 ] && [ -e "$STOPPED" ]; then
	t_ok "uffd, 2 MiB, --stop-cmd: the hook ran, every page verified against the image"
else
	t_fail "uffd, 2 MiB, --stop-cmd: vmm=$vrc source=$src dest=$drc hook=$([ -e "$STOPPED" ] && echo ran || echo no)"
	huge_dump
fi
out=$("$BIN/umemd" --outgoing --ram "$IMG" --connect "$ADDR:1" --page-size 2m --pid $$ 2>&1)
rc=$?
if [ "$rc" = 2 ] && grep -q "not with --pid (precopy of 2 MiB pages is not implemented yet)" <<<"$out"; then
	t_ok "2 MiB with --pid: refused (exit 2): $out"
else
	t_fail "2 MiB with --pid: exit $rc, $out"
fi

# ---- protocol versions ----
# A 2 MiB migration with a version-2 peer fails in the handshake, clearly.
huge_dest uffd "$BIN/umemd" --proto-max 2
huge_src "$BIN/umemd" --page-size 2m
wait_pid "$SPID" "$TMO"; src=$WAIT_RC
wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
if [ "$src" = 1 ] && [ "$drc" = 1 ] &&
   grep -q "destination refused the migration (error 3): page size 2097152 needs protocol version 3" "$SLOG"; then
	t_ok "2 MiB source, destination --proto-max 2: refused: $(grep -m1 -o 'destination refused.*' "$SLOG" | cut -c1-120)"
else
	t_fail "2 MiB source, destination --proto-max 2: source=$src dest=$drc"
	huge_dump
fi
compat_4k "v3 source, destination --proto-max 2" "$BIN/umemd" "--proto-max 2" "$BIN/umemd" ""
compat_4k "source --proto-max 2, v3 destination" "$BIN/umemd" "" "$BIN/umemd" "--proto-max 2"

# The real thing: umemd as of the last commit with protocol version 2.
V3C=$(git log --format=%H -S'#define PROTO_VERSION_MAX	3' -- userspace/umemd/proto.h 2>/dev/null | tail -n 1)
if [ -z "$V3C" ] || ! git cat-file -e "$V3C^" 2>/dev/null; then
	t_skip "real version-2 umemd: no git history here to build it from"
else
	V2=$WORK/v2
	mkdir -p "$V2"
	if git archive "$V3C^" userspace uapi VERSION | tar -x -C "$V2" &&
	   make -s -C "$V2/userspace" -j"$(nproc)" build/bin/umemd >"$WORK/v2-build.log" 2>&1 &&
	   grep -q 'PROTO_VERSION_MAX	2' "$V2/userspace/umemd/proto.h"; then
		V2BIN=$V2/userspace/build/bin/umemd
		t_ok "built the version-2 umemd of $(git log -1 --format='%h (%s)' "$V3C^" | cut -c1-70)"
		huge_dest uffd "$V2BIN"
		huge_src "$BIN/umemd" --page-size 2m
		wait_pid "$SPID" "$TMO"; src=$WAIT_RC
		wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
		if [ "$src" = 1 ] && [ "$drc" = 1 ] &&
		   grep -q "destination refused the migration (error 3): page size 2097152 not supported" "$SLOG"; then
			t_ok "2 MiB source, real v2 destination: refused: $(grep -m1 -o 'destination refused.*' "$SLOG" | cut -c1-110)"
		else
			t_fail "2 MiB source, real v2 destination: source=$src dest=$drc"
			huge_dump
		fi
		compat_4k "v3 source, real v2 destination" "$V2BIN" "" "$BIN/umemd" ""
		compat_4k "real v2 source, v3 destination" "$BIN/umemd" "" "$V2BIN" ""
	else
		tail -n 20 "$WORK/v2-build.log" | sed 's/^/# /'
		t_fail "build the version-2 umemd from $V3C^"
	fi
fi
t_done
