#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The QEMU test guest (userspace/qemu/guest) on the host, without the
# module: it boots under qemu-system-x86_64 (TCG), verifies its RAM pass
# after pass, reports a word changed behind its back, and survives QEMU's
# own postcopy migration driven by userspace/qemu/qemu_migrate.py (root:
# userfaultfd).  The umem flow runs in the guests
# (scripts/guest-suites.d/81-qemu-migrate.sh).
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh
. userspace/tests/qemu-host-lib.sh

QEMU=${QEMU:-$(command -v qemu-system-x86_64)}
if [ -z "$QEMU" ] || [ ! -x "$QEMU" ]; then
	t_skip "qemu-system-x86_64 not installed"
	t_done
fi
if ! make -s -C userspace qemu-guest >/tmp/qemu-guest-build.log 2>&1; then
	tail -n 20 /tmp/qemu-guest-build.log | sed 's/^/# /'
	t_fail "build the test guest (-Wall -Wextra -Werror)"
	t_done
fi
ELF=userspace/build/qemu/umem-guest.elf
readelf -n "$ELF" 2>/dev/null | grep -A1 -w Xen | grep -q '0x00000012'
t_check $? "the test guest is an ELF with a PVH entry note (Xen, type 18)"

WORK=$(mktemp -d /tmp/qemu-guest.XXXXXX)
RAM=/dev/shm/umem-qemu-guest-$$.ram
QPID=
cleanup() {
	[ -n "$QPID" ] && kill -9 "$QPID" 2>/dev/null
	rm -f "$RAM"
	rm -rf "$WORK"
}
trap cleanup EXIT

# 10 MiB of RAM, the guest checks 8 MiB from 2 MiB up.
truncate -s 10M "$RAM"
"$QEMU" -accel tcg -M pc -cpu qemu64 -m 10M -nodefaults -no-user-config -display none \
	-no-reboot -object "memory-backend-file,id=ram0,size=10M,mem-path=$RAM,share=on" \
	-machine memory-backend=ram0 -kernel "$ELF" -append "mib=8 print=1" \
	-serial "file:$WORK/serial" </dev/null >"$WORK/qemu.log" 2>&1 &
QPID=$!
passes() { sed -n 's/^pass \([0-9]*\): .*/\1/p' "$WORK/serial" 2>/dev/null | tail -n 1; }
for _ in $(seq 300); do
	[ "$(passes)" -ge 3 ] 2>/dev/null && break
	kill -0 "$QPID" 2>/dev/null || break
	sleep 0.1
done
p=$(passes)
[ "${p:-0}" -ge 3 ] && grep -q '^umem-guest: 8 MiB at 0x00200000, 2048 pages' "$WORK/serial" &&
	! grep -q MISMATCH "$WORK/serial"
t_check $? "the guest boots (PVH), checks 8 MiB (2048 pages), ${p:-0} passes, no mismatch"
[ "${p:-0}" -ge 3 ] || sed 's/^/#   /' "$WORK/qemu.log" "$WORK/serial" | tail -n 10

# Change one slot (page 7, slot 2: its identity and generation words)
# behind the guest's back, in one write.  The guest may read the slot
# between the host's stores (it saw 0xa5000058, one byte of 'X' in the
# identity word, in CI), so the check is that the change is reported at
# that slot and nowhere else, not the exact value read.
printf 'XXXXXXXX' | dd of="$RAM" bs=8 count=1 oflag=seek_bytes \
	seek=$((0x200000 + 7 * 4096 + 2 * 512)) conv=notrunc status=none
for _ in $(seq 100); do
	grep -q '^MISMATCH' "$WORK/serial" && break
	sleep 0.1
done
tr -d '\r' <"$WORK/serial" | grep '^MISMATCH' >"$WORK/mismatch"
grep -q '^MISMATCH pass [0-9]* page 7 (0x00207000) word 25[67]: got 0x[0-9a-f]*58' "$WORK/mismatch" &&
	! grep -qv '^MISMATCH pass [0-9]* page 7 (0x00207000) word 25[67]: ' "$WORK/mismatch"
t_check $? "a word changed in the RAM file is reported there and nowhere else: $(head -n 1 "$WORK/mismatch")"
kill -9 "$QPID" 2>/dev/null
wait "$QPID" 2>/dev/null
QPID=

# QEMU's own postcopy of the running guest, on loopback.
qemu_own_postcopy "the running guest (16 MiB checked)" 18 120 --guest "$ELF"

# The vCPU diagnostics of qemu_migrate.py, on the same migration: the
# destination's vCPU alone on CPU 1 (--pin-vcpu) and a profile of the
# machine (--perf-vcpu) whose samples of that thread in the RESULT's
# window can be picked out.
out=$(python3 userspace/qemu/qemu_migrate.py --mode postcopy --workdir "$WORK/x" --pin-vcpu 4096 2>&1)
[ $? = 2 ] && printf '%s' "$out" | grep -q -- '--pin-vcpu 4096: needs that CPU and another one'
t_check $? "qemu_migrate.py --pin-vcpu refuses a CPU it may not use ($(printf '%s' "$out" | tail -n 1))"
if [ "$(nproc)" -lt 2 ]; then
	t_skip "qemu_migrate.py --pin-vcpu 1 --perf-vcpu: one CPU"
elif ! perf --version >/dev/null 2>&1; then
	t_skip "qemu_migrate.py --perf-vcpu: perf not installed (make deps: linux-perf)"
else
	# 128 MiB: a RAM transfer of some 200 ms on a host, many vCPU samples
	port=$(test_port 2)
	timeout -k 10 150 python3 userspace/qemu/qemu_migrate.py --mode postcopy --mib 128 \
		--qemu "$QEMU" --guest "$ELF" --port "$port" \
		--qport $((port + 1)) --print-every 1 --timeout 20 \
		--pin-vcpu 1 --perf-vcpu "$WORK/vcpu.perf" --workdir "$WORK/pin" >"$WORK/pin.out" 2>&1
	rc=$?
	out=$(grep '^RESULT ' "$WORK/pin.out" | python3 -c '
import json, subprocess, sys
r = json.loads(sys.stdin.read()[7:])
v = r.get("vcpu") or {}
a, b = v.get("window_mono_s") or (0, 0)
n = 0
if v.get("tids"):
    s = subprocess.run(["perf", "script", "-i", sys.argv[1], "-F", "tid,time", "-G",
                        "--tid", ",".join(map(str, v["tids"]))],
                       capture_output=True, text=True).stdout
    for line in s.splitlines():
        f = line.split()
        if len(f) == 2 and a <= float(f[1].rstrip(":")) <= b:
            n += 1
print(r["ok"], v.get("cpus"), len(v.get("tids") or []), "nvcsw" in v, n > 0)
' "$WORK/vcpu.perf" 2>&1 | tail -n 1)
	[ "$rc" = 0 ] && [ "$out" = "True [1] 1 True True" ]
	t_check $? "qemu_migrate.py --pin-vcpu 1 --perf-vcpu: migration ok, vCPU pinned, its samples in the window found (ok, vCPU CPUs, tids, switches, samples: $out)"
	[ "$rc" = 0 ] || grep -v '^RESULT' "$WORK/pin.out" | tail -n 10 | sed 's/^/#   /'
fi

# QEMU's own live snapshot (background-snapshot, userfaultfd write-protect
# on shmem) of the running guest and its load into a new QEMU, through
# qemu_snapshot.py: the comparison side of make demo-snapshot, which needs
# no module (its umem phases run in guest suite 82-qemu-snapshot).
timeout -k 10 120 python3 userspace/qemu/qemu_snapshot.py --phases qemu-save,qemu-load \
	--mib 18 --qemu "$QEMU" --guest "$ELF" --timeout 20 --workdir "$WORK/snap" \
	>"$WORK/snap.out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q '^RESULT {"ok": true' "$WORK/snap.out"; then
	t_ok "QEMU background-snapshot of the running guest and its load: both guests verified, the loaded one went on from the saved pass"
else
	t_fail "qemu_snapshot.py --phases qemu-save,qemu-load: exit $rc"
	grep -v '^RESULT' "$WORK/snap.out" | tail -n 15 | sed 's/^/#   /'
fi
rm -f /dev/shm/umem-qsnap-*.ram /dev/shm/umem-qload-*.ram
# qemu_migrate.py --check-pages: the comparison itself (umemd's copy of
# every page installed against the source's RAM), on files made here:
# identical, then one word of page 5 changed, then page 7 missing (a
# hole where the source has data).
out=$(python3 - "$WORK" <<'PY' | tail -n 1
import os, sys, types
sys.path.insert(0, "userspace/qemu")
import qemu_migrate
w = sys.argv[1]
src, cp = f"{w}/src.ram", f"{w}/copy.ram"
data = bytearray(os.urandom(8 * 4096))
def run(copy, partial=False, written=range(8)):
    open(src, "wb").write(data)
    with open(cp, "wb") as f:     # sparse: only the pages written
        f.truncate(len(copy))
        for p in written:
            f.seek(p * 4096)
            f.write(copy[p * 4096:(p + 1) * 4096])
    fake = types.SimpleNamespace(res={"error": None},
                                 data_extents=qemu_migrate.Run.data_extents)
    qemu_migrate.Run.check_pages(fake, src, cp, 4096, partial=partial)
    c = fake.res["pages_check"]
    return f"{c['pages']}:{c['wrong']}:{c['first_wrong']}:{bool(fake.res['error'])}"
bad = bytearray(data); bad[5 * 4096 + 100] ^= 1
hole = bytearray(data); hole[7 * 4096:] = bytes(4096)
# A run that failed mid-transfer: pages 0-2 and 5-6 installed, 5 wrong.
print(run(data), run(bad), run(hole),
      run(bad, partial=True, written=[0, 1, 2, 5, 6]))
PY
)
[ "$out" = "8:0:[]:False 8:1:[5]:True 8:1:[7]:True 5:1:[5]:True" ]
t_check $? "qemu_migrate.py --check-pages finds a changed word and a missing page, and only them; after a failure only the pages written ($out)"

t_done
