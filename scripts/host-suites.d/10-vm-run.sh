#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# scripts/vm-run.sh's KVM probe, TCG fallback and watchdog, without a VM:
# a fake qemu-system-x86_64 (VM_QEMU) plays the probe's QEMU, a fake vng
# on PATH plays the VM.  The fakes mimic what was seen on a machine whose
# /dev/kvm could not run the guest: QEMU printing "KVM internal error.
# Suberror: 1 / emulation failure" and then hanging, stopped, forever;
# QEMU aborting on "failed to set MSR"; a VM that prints nothing.  Each
# case checks vm-run's exit status, its stderr notice or message, how
# long it took, and that nothing it started is left running.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh
# Each case sets what it tests; the caller's settings (VM_KVM=0 on a
# machine whose KVM cannot run the guest) would bypass the probe cases.
unset VM_KVM VM_KVM_DEV VM_KVM_CACHE VM_KVM_PROBE_TIMEOUT VM_SILENT_TIMEOUT

KV=
for k in /lib/modules/*; do
	k=${k##*/}
	[ -r "/boot/vmlinuz-$k" ] && { KV=$k; break; }
done
if [ -z "$KV" ]; then
	t_skip "no kernel with both /boot/vmlinuz-KVER and /lib/modules/KVER (vm-run checks both)"
	t_done
fi
if ! command -v python3 >/dev/null; then
	t_fail "python3 missing (vm-run needs it)"
	t_done
fi

T=$(mktemp -d /tmp/vm-run-suite.XXXXXX)
# every process the fakes start records its pid in $T/*.pids
cleanup() {
	local p
	for p in $(cat "$T"/*.pids 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
mkdir "$T/bin"

# ---- the fake QEMU of the probe: FAKE_QEMU=ok|kvm-error|msr|silent
cat >"$T/qemu" <<'EOF'
#!/bin/bash
echo "$*" >>"$FAKE_DIR/qemu.calls"
echo $$ >>"$FAKE_DIR/qemu.pids"
serial=
while [ $# -gt 0 ]; do
	case "$1" in -serial) serial=${2#file:}; shift ;; esac
	shift
done
case "$FAKE_QEMU" in
ok)	echo "Linux version $FAKE_KV (fake) #1 SMP" >>"$serial" ;;
kvm-error)	# what QEMU printed on the broken machine, then it stopped
	printf '%s\n' "KVM internal error. Suberror: 1" "extra data[0]: 0x0000000000000000" \
		"emulation failure" "RAX=0000000000000000 RBX=0000000000000000" >&2 ;;
msr)	echo "$0: error: failed to set MSR 0x10a to 0x69" >&2
	echo "$0: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: Assertion failed." >&2
	exit 134 ;;
silent)	;;
esac
sleep 300 & echo $! >>"$FAKE_DIR/qemu.pids"; wait
EOF

# ---- the fake vng: records its arguments, FAKE_VNG=guest|silent|talk|
# hang|kvm-error|kvm-silent.  "guest" runs the --exec string with sh in --cwd, as
# the guest would (heartbeat and all); "hang" does so, then stops dead
# (a hung guest kernel); "kvm-error" prints QEMU's KVM error and hangs
# unless given --disable-kvm, then it behaves like "guest"; "kvm-silent"
# likewise, but prints nothing.
cat >"$T/bin/vng" <<'EOF'
#!/bin/bash
{ printf '%s\n' "$@"; echo "--END--"; } >>"$FAKE_DIR/vng.args"
echo $$ >>"$FAKE_DIR/vng.pids"
ex= cwd= tcg=0
while [ $# -gt 0 ]; do
	case "$1" in
	--exec) ex=$2; shift ;;
	--cwd) cwd=$2; shift ;;
	--disable-kvm) tcg=1 ;;
	esac
	shift
done
hang() { sleep 300 & echo $! >>"$FAKE_DIR/vng.pids"; wait; }
mode=$FAKE_VNG
case "$mode" in kvm-*) [ $tcg = 1 ] && mode=guest ;; esac
case "$mode" in
guest)	cd "$cwd" && exec sh -c "$ex" ;;
silent)	hang ;;
talk)	echo "booting the kernel"; hang ;;
hang)	cd "$cwd" && sh -c "$ex" &
	sleep 2; kill -STOP 0 ;;
kvm-error)
	printf '%s\n' "KVM internal error. Suberror: 1" "emulation failure" >&2; hang ;;
kvm-silent) hang ;;
esac
EOF
chmod +x "$T/qemu" "$T/bin/vng"
: >"$T/kvm"	# stands for /dev/kvm: exists, read-writable

# vmrun ENV... -- ARGS: run vm-run.sh KV ARGS with a fresh record of the
# fakes; sets RC, DT (seconds, 1 decimal), OUT, ERR files
vmrun() {
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	cat "$T/qemu.pids" "$T/vng.pids" >>"$T/old.pids" 2>/dev/null
	# the heartbeat files vm-run gave the fake guests, checked at the end
	grep -o "$PWD/build/\.vm-run\.[0-9]*\.alive" "$T/vng.args" >>"$T/hb.paths" 2>/dev/null
	rm -f "$T/qemu.calls" "$T/vng.args" "$T/vng.pids" "$T/qemu.pids"
	local t0 t1
	t0=$(date +%s%N)
	env PATH="$T/bin:$PATH" FAKE_DIR="$T" FAKE_KV="$KV" VM_QEMU="$T/qemu" \
		VM_KVM_DEV="$T/kvm" VM_KVM_CACHE="$T/cache" FAKE_QEMU=ok FAKE_VNG=guest \
		"${envs[@]}" scripts/vm-run.sh "$KV" "$@" >"$T/out" 2>"$T/err" </dev/null
	RC=$?
	t1=$(date +%s%N)
	DT=$(( (t1 - t0) / 100000000 ))
	DT="$((DT / 10)).$((DT % 10))"
}
count() { local n; n=$(grep -c -- "$1" "$2" 2>/dev/null); echo "${n:-0}"; }
qemu_calls() { count . "$T/qemu.calls"; }
vng_calls() { count '^--END--$' "$T/vng.args"; }
tcg_boots() { count '^--disable-kvm$' "$T/vng.args"; }
faster() { awk -v a="$DT" -v b="$1" 'BEGIN { exit !(a < b) }'; }
slower() { awk -v a="$DT" -v b="$1" 'BEGIN { exit !(a >= b) }'; }
nerr() { grep "$@" "$T/err"; }
errlines() { grep -c . "$T/err"; }
# none_left: no fake qemu, vng or their sleeps survive vm-run
none_left() {
	local p
	sleep 0.2
	for p in $(cat "$T/vng.pids" "$T/qemu.pids" 2>/dev/null); do
		# a zombie is gone (only its parent has yet to reap it)
		[ -e "/proc/$p" ] && [ "$(ps -o stat= -p "$p" | cut -c1)" != Z ] &&
			{ echo "#   left running: $(ps -o pid=,stat=,args= -p "$p")"; return 1; }
	done
	return 0
}
show() {	# on failure: what vm-run said
	sed 's/^/#   err: /' "$T/err" | head -n 8
	sed 's/^/#   out: /' "$T/out" | head -n 4
	echo "#   rc=$RC, ${DT}s, qemu calls $(qemu_calls), vng calls $(vng_calls), TCG boots $(tcg_boots)"
}
check() {	# check DESCRIPTION: $? of the last command decides
	local rc=$?
	t_check $rc "$1"
	[ $rc -eq 0 ] || show
}
NOTICE="^vm-run: /dev/kvm cannot run $KV (.*); using TCG\$"

# ------------------------------------------------------------ the probe
rm -f "$T/cache"
vmrun FAKE_QEMU=kvm-error -- echo guest ran
[ $RC = 0 ] && grep -qx 'guest ran' "$T/out" && faster 8 &&
	[ "$(tcg_boots)" = 1 ] && [ "$(qemu_calls)" = 1 ] &&
	[ "$(errlines)" = 1 ] &&
	grep -qx "vm-run: /dev/kvm cannot run $KV (QEMU: KVM internal error. Suberror: 1); using TCG" "$T/err" &&
	none_left
check "probe: QEMU prints 'KVM internal error. Suberror: 1' and hangs -> TCG in ${DT}s, one notice line, probe QEMU killed"

vmrun FAKE_QEMU=kvm-error -- echo guest ran
[ $RC = 0 ] && [ "$(qemu_calls)" = 0 ] && [ "$(tcg_boots)" = 1 ] &&
	[ "$(errlines)" = 1 ] && nerr -q "$NOTICE" && nerr -q 'cached for this boot' &&
	grep -q "^$(cat /proc/sys/kernel/random/boot_id)	$KV	$T/qemu	bad	" "$T/cache"
check "probe: the verdict is cached per boot_id, kernel and QEMU: the second VM does not probe (TCG, notice says cached)"

rm -f "$T/cache"
vmrun FAKE_QEMU=msr -- true
[ $RC = 0 ] && [ "$(tcg_boots)" = 1 ] && faster 8 &&
	nerr -qx "vm-run: /dev/kvm cannot run $KV (QEMU: error: failed to set MSR 0x10a to 0x69); using TCG"
check "probe: QEMU exits with 'failed to set MSR 0x10a' -> TCG, the reason in the notice"

rm -f "$T/cache"
vmrun FAKE_QEMU=silent VM_KVM_PROBE_TIMEOUT=2 -- true
[ $RC = 0 ] && [ "$(tcg_boots)" = 1 ] && faster 8 &&
	nerr -q "cannot run $KV (no 'Linux version' on its console within 2 s); using TCG" && none_left
check "probe: a kernel that prints nothing under KVM -> TCG after VM_KVM_PROBE_TIMEOUT (${DT}s)"

rm -f "$T/cache"
vmrun FAKE_QEMU=ok -- echo guest ran
[ $RC = 0 ] && [ "$(qemu_calls)" = 1 ] && [ "$(vng_calls)" = 1 ] && [ "$(tcg_boots)" = 0 ] &&
	[ ! -s "$T/err" ] && grep -q "	$KV	$T/qemu	ok	" "$T/cache" && faster 8 && none_left
out=$(grep -o -- '-accel kvm -cpu host.*-kernel /boot/vmlinuz-[^ ]*' "$T/qemu.calls" 2>/dev/null)
[ -n "$out" ]
check "probe: 'Linux version' on the serial console -> KVM, no notice, probe QEMU killed (${DT}s)"

vmrun FAKE_QEMU=kvm-error -- true
[ $RC = 0 ] && [ "$(qemu_calls)" = 0 ] && [ "$(tcg_boots)" = 0 ] && [ ! -s "$T/err" ]
check "probe: a cached 'ok' is used without probing"

vmrun VM_KVM_DEV="$T/no-such-kvm" -- true
[ $RC = 0 ] && [ "$(qemu_calls)" = 0 ] && [ "$(tcg_boots)" = 1 ] && nerr -q "$NOTICE" &&
	nerr -q "no-such-kvm is missing"
check "no /dev/kvm -> TCG without starting QEMU, one notice"

vmrun VM_KVM=0 FAKE_QEMU=ok -- true
[ $RC = 0 ] && [ "$(qemu_calls)" = 0 ] && [ "$(tcg_boots)" = 1 ] && [ ! -s "$T/err" ]
check "VM_KVM=0 forces TCG: no probe, no notice"

rm -f "$T/cache"
vmrun VM_KVM=1 FAKE_QEMU=kvm-error -- true
[ $RC = 0 ] && [ "$(qemu_calls)" = 0 ] && [ "$(tcg_boots)" = 0 ] && [ ! -s "$T/err" ]
check "VM_KVM=1 forces KVM: no probe, no --disable-kvm"

# ------------------------------------------------------------ the watchdog
vmrun VM_KVM=0 FAKE_VNG=silent VM_SILENT_TIMEOUT=2 -- true
[ $RC = 124 ] && slower 2 && faster 8 && none_left &&
	nerr -q "^vm-run: $KV: no output, and the guest never started its command, for 2 s (VM_SILENT_TIMEOUT); killed the VM$"
check "watchdog: a VM that prints nothing is killed after VM_SILENT_TIMEOUT=2 (${DT}s, exit $RC, message)"

vmrun VM_KVM=0 FAKE_VNG=talk VM_SILENT_TIMEOUT=2 -- true
[ $RC = 124 ] && slower 2 && faster 8 && none_left && grep -qx 'booting the kernel' "$T/out" &&
	nerr -q "no output, and the guest never started its command, for 2 s"
check "watchdog: a VM that prints a line and then nothing is killed 2 s later (${DT}s), its line passed through"

vmrun VM_KVM=0 FAKE_VNG=guest VM_SILENT_TIMEOUT=2 -- sh -c 'sleep 5; exit 7'
[ $RC = 7 ] && slower 5 && [ ! -s "$T/err" ] && none_left
check "watchdog: a guest command silent for 5 s is kept alive by the heartbeat (exit 7 passed through, ${DT}s)"

vmrun VM_KVM=0 FAKE_VNG=hang VM_SILENT_TIMEOUT=2 -- sleep 60
[ $RC = 124 ] && faster 10 && none_left &&
	nerr -q "^vm-run: $KV: no output and no heartbeat from the guest for 2 s (VM_SILENT_TIMEOUT); killed the VM$"
check "watchdog: a guest that stops dead after starting its command (heartbeat stops) is killed (${DT}s)"

vmrun VM_KVM=1 FAKE_VNG=kvm-error -- true
[ $RC = 124 ] && faster 3 && none_left && nerr -q '^KVM internal error. Suberror: 1$' &&
	nerr -q "^vm-run: $KV: QEMU reported \"KVM internal error. Suberror: 1\"; killed the VM$"
check "watchdog: 'KVM internal error' from the VM kills it at once (${DT}s, exit $RC)"

rm -f "$T/cache"
vmrun FAKE_QEMU=ok FAKE_VNG=kvm-error -- echo guest ran
[ $RC = 0 ] && grep -qx 'guest ran' "$T/out" && [ "$(vng_calls)" = 2 ] && [ "$(tcg_boots)" = 1 ] &&
	faster 8 && nerr -q "cannot run $KV (it passed the probe, but the VM hit a KVM error before the guest ran its command: QEMU reported \"KVM internal error. Suberror: 1\"); using TCG" &&
	grep -q "	$KV	$T/qemu	bad	" "$T/cache" && none_left
check "auto: a VM that passed the probe but hits a KVM error before its command is booted again under TCG, verdict now bad"

rm -f "$T/cache"
vmrun FAKE_QEMU=ok FAKE_VNG=kvm-silent VM_SILENT_TIMEOUT=2 -- echo guest ran
[ $RC = 0 ] && grep -qx 'guest ran' "$T/out" && [ "$(vng_calls)" = 2 ] && [ "$(tcg_boots)" = 1 ] &&
	faster 8 && nerr -q "cannot run $KV (it passed the probe, but the VM went silent before the guest ran its command: no output" &&
	grep -q "	$KV	$T/qemu	bad	" "$T/cache" && none_left
check "auto: a KVM VM silent before its command is killed and booted again under TCG (${DT}s)"

vmrun VM_KVM=0 VM_TIMEOUT=2 -- sleep 60
[ $RC = 124 ] && slower 2 && faster 8 && none_left &&
	nerr -q "^vm-run: $KV: still running after 2 s (VM_TIMEOUT); killed the VM$"
check "VM_TIMEOUT bounds the whole VM (${DT}s, exit $RC)"

# ------------------------------------------------------------ plumbing
rm -f "$T/vng.pids"
env PATH="$T/bin:$PATH" FAKE_DIR="$T" VM_KVM=0 FAKE_VNG=silent \
	scripts/vm-run.sh "$KV" true >"$T/out" 2>"$T/err" </dev/null &
vp=$!
for _ in $(seq 50); do [ -s "$T/vng.pids" ] && break; sleep 0.1; done
t0=$(date +%s%N)
kill -TERM $vp
wait $vp
RC=$?
DT=$(( ($(date +%s%N) - t0) / 100000000 )); DT="$((DT / 10)).$((DT % 10))"
[ $RC = 143 ] && faster 5 && none_left
check "SIGTERM to vm-run takes the VM down with it (${DT}s, exit $RC)"

vmrun VM_KVM=0 -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 3'
[ $RC = 3 ] && [ "$(cat "$T/out")" = to-stdout ] && [ "$(cat "$T/err")" = to-stderr ]
check "stdout and stderr stay apart, the command's exit status is vm-run's"

vmrun VM_KVM=0 -- printf '%s|' "a b" "it's" '$HOME' ''
[ "$(cat "$T/out")" = "a b|it's|\$HOME||" ]
check "arguments reach the guest command word for word"

grep -o "$PWD/build/\.vm-run\.[0-9]*\.alive" "$T/vng.args" >>"$T/hb.paths" 2>/dev/null
left=0
for f in $(sort -u "$T/hb.paths"); do
	for g in "$f" "${f%.alive}.status"; do
		[ -e "$g" ] && { echo "#   left: $g"; left=$((left + 1)); }
	done
done
[ "$(sort -u "$T/hb.paths" | wc -l)" -ge 10 ] && [ $left = 0 ]
t_check $? "vm-run leaves no heartbeat or status files in build/ ($(sort -u "$T/hb.paths" | wc -l) runs looked at)"
t_done
