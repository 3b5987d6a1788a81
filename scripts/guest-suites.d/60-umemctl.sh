#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# umemctl against live regions, inside the guest (module loaded, cwd = repo
# root, userspace built on the host): list while regions come and go, stats,
# watch with --count/--timeout, fail as root (the waiter gets SIGBUS) and
# refused as nobody (who lists and reads only regions whose creation mode
# lets it read the node, and may not watch), --json output,
# errors; create (a region born present, write-protectable, run under a
# command; skipped on a module without the umem 0.5 feature bits).
# Regions are made by a small python helper (UMEM_CREATE ioctl).
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

UMEMCTL=$PWD/userspace/build/bin/umemctl
if [ ! -x "$UMEMCTL" ]; then
	t_fail "umemctl not built ($UMEMCTL): run make -C userspace on the host"
	t_done
	exit
fi
if [ ! -e /dev/umem ] || ! command -v python3 >/dev/null; then
	t_skip "umemctl: /dev/umem or python3 missing"
	t_done
	exit
fi

WORK=$(mktemp -d /tmp/umemctl.XXXXXX)
chmod 755 "$WORK"
cp "$UMEMCTL" "$WORK/umemctl"	# reachable by nobody whatever the repo's modes
U=$WORK/umemctl
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

# hold NAME PAGES ZERO_PAGES [MODE]: create a region (its node with the
# octal MODE, default 0600), zero-fill the first ZERO_PAGES pages, keep
# the server fd until killed.
cat >"$WORK/hold.py" <<'PY'
import fcntl, os, signal, struct, sys
name, pages, zero = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mode = int(sys.argv[4], 8) if len(sys.argv) > 4 else 0
IOWR = lambda nr, size: (3 << 30) | (size << 16) | (0xB9 << 8) | nr
ctl = os.open("/dev/umem", os.O_RDWR)
arg = bytearray(struct.pack("<QII32sII24xIi", pages * 4096, 4096, 0,
                            name.encode(), mode, 0, 0, 0))
sfd = fcntl.ioctl(ctl, IOWR(0x01, 88), arg)
if zero:
    fcntl.ioctl(sfd, IOWR(0x12, 32), bytearray(struct.pack("<QQQq", 0, zero * 4096, 0, 0)))
print("ready", flush=True)
while True:
    signal.pause()
PY
# touch NAME PAGE: map the node and read one page (waits, maybe SIGBUS).
cat >"$WORK/touch.py" <<'PY'
import mmap, os, sys
fd = os.open("/dev/umem-" + sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, (int(sys.argv[2]) + 1) * 4096, mmap.MAP_SHARED)
m[int(sys.argv[2]) * 4096]
PY

hold() {	# hold NAME PAGES ZERO -> sets HOLD_PID
	python3 "$WORK/hold.py" "$@" >"$WORK/hold-$1" 2>&1 &
	HOLD_PID=$!
	pids+=("$HOLD_PID")
	for _ in $(seq 200); do
		grep -q ready "$WORK/hold-$1" && return 0
		sleep 0.05
	done
	return 1
}
# umemctl --json list prints one region per line: grep is enough (and
# much cheaper than a python start under TCG).
region_json() {	# region_json FILE NAME ERE-after-the-name
	grep -Eq "\"name\": \"$2\", .*$3" "$1"
}

# ---- help and usage
"$U" --help >"$WORK/help" 2>&1
t_check $? "umemctl --help exits 0"
grep -q "umemctl \[--json\] COMMAND" "$WORK/help"; t_check $? "--help prints the usage"
"$U" frobnicate >/dev/null 2>&1
t_check $(($? == 2 ? 0 : 1)) "unknown command: exit 2"

# ---- list while regions come and go
hold uc-a 4 1; t_check $? "region uc-a created"
A=$HOLD_PID
hold uc-b 8 8; t_check $? "region uc-b created"
B=$HOLD_PID
"$U" list >"$WORK/list1" 2>&1
t_check $? "umemctl list"
grep -Eq '^[0-9]+ +uc-a +16K +4 +1 +3 ' "$WORK/list1" &&
	grep -Eq '^[0-9]+ +uc-b +32K +8 +8 +0 ' "$WORK/list1"
t_check $? "list shows both regions with their pages"
"$U" --json list >"$WORK/list1.json"
region_json "$WORK/list1.json" uc-a '"pages": 4, "pages_present": 1, .*"server_attached": true, .*"creator_pid": [1-9]'
t_check $? "list --json: uc-a has 4 pages, 1 present, a server, a creator"
kill "$B"; wait "$B" 2>/dev/null
for _ in $(seq 100); do "$U" list | grep -q ' uc-b ' || break; sleep 0.05; done
"$U" --json list >"$WORK/list2.json"
region_json "$WORK/list2.json" uc-a '' && ! region_json "$WORK/list2.json" uc-b ''
t_check $? "uc-b gone from the list once its holder exits"

# ---- stats
"$U" stats uc-a >"$WORK/stats" 2>&1
t_check $? "umemctl stats uc-a"
grep -Eq '^  pages_present +1$' "$WORK/stats" && grep -q '^wait time histogram:' "$WORK/stats"
t_check $? "stats prints the figures and the histogram"
"$U" --json stats uc-a >"$WORK/stats.json"
region_json "$WORK/stats.json" uc-a '"stats": \{.*"pages": 4,' &&
	[ "$(grep -o '"wait_hist": \[[^]]*\]' "$WORK/stats.json" | tr -cd , | wc -c)" = 31 ]
t_check $? "stats --json"
"$U" stats no-such-region >/dev/null 2>"$WORK/stats.err"
rc=$?
[ $rc -eq 1 ] && grep -q "no such region" "$WORK/stats.err"
t_check $? "stats of a missing region: exit 1, the kernel's message"

# ---- watch: c: created, complete, destroyed; d: created, detached, destroyed
"$U" --json watch --count 6 --timeout 60 >"$WORK/watch" 2>"$WORK/watch.err" &
W=$!
for _ in $(seq 200); do grep -q watching "$WORK/watch.err" && break; sleep 0.05; done
hold uc-c 2 2; C=$HOLD_PID		# created, complete
hold uc-d 2 1; D=$HOLD_PID		# created
kill "$C" "$D"; wait "$C" "$D" 2>/dev/null	# destroyed; detached+destroyed
timeout 60 tail --pid="$W" -f /dev/null
wait "$W"
t_check $? "watch --count 6 ends by itself"
sum=$(sed -E 's/.*"event": "([a-z]+)", "id": [0-9]+, "name": "([^"]+)".*/\2:\1/' "$WORK/watch" | tr '\n' ' ')
case "$sum" in
*uc-c:created*uc-c:complete*uc-c:destroyed*) r=0 ;; *) r=1 ;;
esac
t_check $r "watch: uc-c created, complete, destroyed ($sum)"
case "$sum" in
*uc-d:created*uc-d:detached*uc-d:destroyed*) r=0 ;; *) r=1 ;;
esac
t_check $r "watch: uc-d created, detached, destroyed"
"$U" watch --count 1 --timeout 60 >"$WORK/watch2" 2>"$WORK/watch2.err" &
W=$!
for _ in $(seq 200); do grep -q watching "$WORK/watch2.err" && break; sleep 0.05; done
hold uc-e 1 0; E=$HOLD_PID
wait "$W"
grep -Eq ' created +uc-e \(id [0-9]+\) pages 1 missing 1$' "$WORK/watch2"
t_check $? "watch (text): one line per event"
"$U" watch --timeout 0.5 >/dev/null 2>&1
t_check $? "watch --timeout with no events exits 0"

# ---- fail: refused as nobody, works as root, waiter gets SIGBUS
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
python3 "$WORK/touch.py" uc-e 0 &
T=$!
for _ in $(seq 200); do
	"$U" --json list >"$WORK/l.json"
	region_json "$WORK/l.json" uc-e '"waiting": 1,' && break
	sleep 0.05
done
region_json "$WORK/l.json" uc-e '"waiting": 1,'
t_check $? "a task waits on uc-e"
# Visible to whoever may open the node: 0600 (the default) hides it.
"${NOBODY[@]}" "$U" list >"$WORK/nb-list" 2>&1
t_check $? "nobody: list works"
! grep -q ' uc-e ' "$WORK/nb-list"; t_check $? "nobody: list hides uc-e (node 0600)"
"${NOBODY[@]}" "$U" stats uc-e >/dev/null 2>"$WORK/nb-stats"
[ $? -eq 1 ] && grep -q "no read permission" "$WORK/nb-stats"
t_check $? "nobody: stats of uc-e refused ($(cat "$WORK/nb-stats"))"
# What counts is the mode the region was created with, not the node's now.
chmod 0644 /dev/umem-uc-e
"${NOBODY[@]}" "$U" list >"$WORK/nb-list" 2>&1
! grep -q ' uc-e ' "$WORK/nb-list"; t_check $? "nobody: a chmod of the node does not show uc-e"
hold uc-o 1 0 0644; O=$HOLD_PID
t_check $? "a region created with node_mode 0644"
[ "$(stat -c '%a %u:%g' /dev/umem-uc-o)" = "644 0:0" ]
t_check $? "its node is 0644 root:root ($(stat -c '%a %u:%g' /dev/umem-uc-o))"
"${NOBODY[@]}" "$U" list >"$WORK/nb-list" 2>&1
grep -q ' uc-o ' "$WORK/nb-list"; t_check $? "nobody: list shows uc-o"
"${NOBODY[@]}" "$U" stats uc-o >/dev/null 2>&1
t_check $? "nobody: stats of uc-o works"
"${NOBODY[@]}" "$U" watch --timeout 0.5 >/dev/null 2>"$WORK/nb-watch"
[ $? -eq 1 ] && grep -q "Operation not permitted" "$WORK/nb-watch"
t_check $? "nobody: watch refused, events are CAP_SYS_ADMIN ($(cat "$WORK/nb-watch"))"
"${NOBODY[@]}" "$U" fail uc-e >/dev/null 2>"$WORK/nb-fail"
rc=$?
[ $rc -eq 1 ] && grep -q "Operation not permitted (UMEM_CMD_FAIL needs CAP_SYS_ADMIN or the region's owner)" "$WORK/nb-fail"
t_check $? "nobody: fail refused with EPERM ($(cat "$WORK/nb-fail"))"
kill -0 "$T" 2>/dev/null; t_check $? "the waiter still waits"
"$U" --json fail uc-e >"$WORK/fail.json"
t_check $? "root: umemctl fail uc-e"
[ "$(cat "$WORK/fail.json")" = '{"failed": "uc-e"}' ]; t_check $? "fail --json"
wait "$T"
rc=$?
t_check $(($rc == 128 + 7 ? 0 : 1)) "the waiter got SIGBUS (status $rc)"
"$U" --json list >"$WORK/l.json"
region_json "$WORK/l.json" uc-e '"waiting": 0, .*"server_attached": false,'
t_check $? "uc-e listed as detached, nobody waiting"
"$U" fail uc-e >/dev/null 2>"$WORK/fail2"
[ $? -eq 1 ] && grep -q "already detached" "$WORK/fail2"
t_check $? "second fail: EALREADY"
kill "$A" "$E" "$O" 2>/dev/null

# ---- create: usage errors need no module feature
"$U" create uc-np --size 1M -- true >/dev/null 2>"$WORK/c.err"
[ $? -eq 2 ] && grep -q -- "--present is required" "$WORK/c.err"
t_check $? "create without --present: exit 2, says why ($(cat "$WORK/c.err"))"
"$U" create uc-np --size 3M --present --wp --page-size 2m -- true >/dev/null 2>"$WORK/c.err"
[ $? -eq 2 ] && grep -q -- "--size must be a non-zero multiple of the page size" "$WORK/c.err"
t_check $? "create --wp --page-size 2m --size 3M: exit 2 ($(cat "$WORK/c.err"))"
[ ! -e /dev/umem-uc-np ]; t_check $? "no region left by refused creates"

# ---- create: the module's UMEM_F_* (UMEM_GET_API asking for none)
cat >"$WORK/features.py" <<'PY'
import fcntl, os, struct
ctl = os.open("/dev/umem", os.O_RDONLY)
arg = bytearray(struct.pack("<QQQ40x", 1, 0, 0))
fcntl.ioctl(ctl, (3 << 30) | (64 << 16) | (0xB9 << 8) | 0x00, arg)
print(struct.unpack_from("<Q", arg, 8)[0])
PY
FEAT=$(python3 "$WORK/features.py" 2>/dev/null || echo 0)
F_2M=$((1 << 9)) F_WP=$((1 << 10)) F_PRESENT=$((1 << 11))
# check NAME PAGES: map the node, every page reads zeros, writes stick.
cat >"$WORK/check.py" <<'PY'
import mmap, os, sys
name, pages = sys.argv[1], int(sys.argv[2])
fd = os.open("/dev/umem-" + name, os.O_RDWR)
if os.lseek(fd, 0, os.SEEK_END) != pages * 4096:
    sys.exit(3)
m = mmap.mmap(fd, pages * 4096, mmap.MAP_SHARED)
if any(m[i * 4096:(i + 1) * 4096] != bytes(4096) for i in range(pages)):
    sys.exit(4)
for i in range(pages):
    m[i * 4096 + i % 4096] = (i % 255) + 1
if any(m[i * 4096 + i % 4096] != (i % 255) + 1 for i in range(pages)):
    sys.exit(5)
sys.exit(0)
PY
if [ $((FEAT & F_PRESENT)) -eq 0 ] || [ $((FEAT & F_WP)) -eq 0 ]; then
	"$U" create uc-old --size 1M --present --wp -- true >/dev/null 2>"$WORK/c.err"
	[ $? -eq 1 ] && grep -q "which this umem module lacks (umem 0.5)" "$WORK/c.err"
	t_check $? "create on a module without the umem 0.5 bits: exit 1, names them ($(head -n 1 "$WORK/c.err"))"
	t_skip "umemctl create: the module lacks UMEM_F_CREATE_PRESENT / UMEM_F_WRITE_PROTECT (features $FEAT)"
else
	"$U" create uc-w --size 1M --present --wp -- python3 "$WORK/check.py" uc-w 256 \
		>"$WORK/c.out" 2>"$WORK/c.err"
	rc=$?
	t_check $rc "create --present --wp: CMD maps the node, zeros, its writes stick (exit $rc: $(cat "$WORK/c.err"))"
	[ "$(cat "$WORK/c.out")" = /dev/umem-uc-w ]
	t_check $? "create prints the node path"
	for _ in $(seq 100); do [ -e /dev/umem-uc-w ] || break; sleep 0.05; done
	[ ! -e /dev/umem-uc-w ]; t_check $? "the region is gone once CMD exits"
	"$U" create uc-x --size 64k --present -- sh -c 'exit 7' >/dev/null 2>&1
	rc=$?
	t_check $((rc == 7 ? 0 : 1)) "create: CMD's exit status propagates (7: $rc)"
	"$U" create uc-x --size 64k --present -- sh -c 'kill -USR1 $$' >/dev/null 2>&1
	rc=$?
	t_check $((rc == 128 + 10 ? 0 : 1)) "create: CMD killed by SIGUSR1: 138 ($rc)"
	"$U" --json create uc-s --size 64k --present --wp -- sh -c \
		"$U --json stats uc-s; exec sleep 30" >"$WORK/c.out" 2>"$WORK/c.err" &
	C=$!
	for _ in $(seq 200); do grep -q '"stats"' "$WORK/c.out" && break; sleep 0.05; done
	grep -q '^{"name": "uc-s", "node": "/dev/umem-uc-s", "size": 65536, "page_size": 4096, "wp": true}$' "$WORK/c.out"
	t_check $? "create --json prints the region"
	grep -q '"server_attached": false, .*"pages_present": 16, .*"pages_protected": 0, "wp_faults": 0' "$WORK/c.out"
	t_check $? "stats of a created region: detached, every page present, pages_protected and wp_faults shown"
	kill -TERM "$C"
	wait_pid "$C" 10
	t_check $((WAIT_RC == 128 + 15 ? 0 : 1)) "SIGTERM to umemctl reaches CMD (exit $WAIT_RC)"
fi

# ---- create --wp with 2 MiB pages: the node maps with PMDs, zeros, writes stick
cat >"$WORK/check2m.py" <<'PY'
import mmap, os, sys
name, pages = sys.argv[1], int(sys.argv[2])
HPS = 2 << 20
fd = os.open("/dev/umem-" + name, os.O_RDWR)
if os.lseek(fd, 0, os.SEEK_END) != pages * HPS:
    sys.exit(3)
m = mmap.mmap(fd, pages * HPS, mmap.MAP_SHARED)
if m[:] != bytes(pages * HPS):
    sys.exit(4)
for i in range(pages):
    m[i * HPS + 4096 * i + 7] = i + 1
if any(m[i * HPS + 4096 * i + 7] != i + 1 for i in range(pages)):
    sys.exit(5)
import ctypes
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
pmd = 0
with open("/proc/self/smaps") as f:
    inside = False
    for line in f:
        w = line.split()
        if "-" in w[0] and not w[0].endswith(":"):
            lo, hi = (int(x, 16) for x in w[0].split("-"))
            inside = lo <= addr < hi
        elif inside and w[0] in ("ShmemPmdMapped:", "FilePmdMapped:"):
            pmd += int(w[1])
print("pmd_kb", pmd)
sys.exit(0 if pmd == pages * 2048 else 6)
PY
if [ $((FEAT & F_2M)) -eq 0 ] || [ $((FEAT & F_PRESENT)) -eq 0 ] || [ $((FEAT & F_WP)) -eq 0 ]; then
	t_skip "umemctl create --wp --page-size 2m: the module lacks UMEM_F_PAGE_2M (no transparent huge pages?) or the umem 0.5 bits (features $FEAT)"
else
	"$U" --json create uc-h --size 4M --present --wp --page-size 2m -- sh -c \
		"python3 $WORK/check2m.py uc-h 2 && $U --json stats uc-h" >"$WORK/h.out" 2>"$WORK/h.err"
	rc=$?
	t_check $rc "create --present --wp --page-size 2m: CMD maps the node, zeros, writes stick, PMD-mapped (exit $rc: $(grep pmd_kb "$WORK/h.out") $(cat "$WORK/h.err"))"
	grep -q '^{"name": "uc-h", "node": "/dev/umem-uc-h", "size": 4194304, "page_size": 2097152, "wp": true}$' "$WORK/h.out"
	t_check $? "create --json prints the 2 MiB region with wp true"
	grep -q '"pages_present": 2, .*"pages_protected": 0' "$WORK/h.out"
	t_check $? "stats: both 2 MiB pages present, none protected"
fi
t_done
