# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the umemd suites (host and guest).  Source it from the
# repo root.  Prints TAP-ish lines; t_done prints the closing
# "N passed, N failed[, N skipped]" line and sets the exit status.

. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

T_PASS=0
T_FAIL=0
T_SKIP=0
T_N=0

t_ok()   { T_N=$((T_N + 1)); T_PASS=$((T_PASS + 1)); echo "ok $T_N - $*"; }
t_fail() { T_N=$((T_N + 1)); T_FAIL=$((T_FAIL + 1)); echo "not ok $T_N - $*"; }
t_skip() { T_N=$((T_N + 1)); T_SKIP=$((T_SKIP + 1)); echo "ok $T_N - # SKIP $*"; }
t_check() { # t_check COND-EXIT-STATUS DESCRIPTION
	if [ "$1" -eq 0 ]; then t_ok "$2"; else t_fail "$2"; fi
}
t_done() {
	if [ "$T_SKIP" -gt 0 ]; then
		echo "$T_PASS passed, $T_FAIL failed, $T_SKIP skipped"
	else
		echo "$T_PASS passed, $T_FAIL failed"
	fi
	[ "$T_FAIL" -eq 0 ]
	exit $?
}

# Run a program that prints TAP and its own "N passed, N failed[, N skipped]"
# line; fold its counts into ours.
t_run_tap() { # t_run_tap LABEL CMD...
	local label=$1 out last p f s
	shift
	out=$("$@" 2>&1)
	local rc=$?
	last=$(printf '%s\n' "$out" | tail -n 1)
	printf '%s\n' "$out" | grep -E '^(not )?ok ' | sed "s/^/# $label: /"
	if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
		p=${BASH_REMATCH[1]}; f=${BASH_REMATCH[2]}; s=${BASH_REMATCH[4]:-0}
		T_PASS=$((T_PASS + p)); T_FAIL=$((T_FAIL + f)); T_SKIP=$((T_SKIP + s))
		T_N=$((T_N + p + f + s))
		echo "# $label: $last (exit $rc)"
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			t_fail "$label exited $rc"
		fi
	else
		printf '%s\n' "$out" | tail -n 20 | sed 's/^/# /'
		t_fail "$label did not finish (exit $rc)"
	fi
}

# Sanitizer settings: distinct exit codes, so a sanitizer report is never
# mistaken for umemd's own clean failure (exit 1).
export ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=86:detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:exitcode=87:print_stacktrace=1}

# Wait for a path to exist (socket, device node): wait_for PATH SECONDS
wait_for() {
	local i
	for i in $(seq $(($2 * 10))); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# Wait for a child with a deadline; its exit status goes to WAIT_RC (124
# on timeout, after killing it).  Not in $(...): a subshell cannot wait
# for the parent's children.  wait_pid PID SECONDS
wait_pid() {
	local pid=$1 i
	WAIT_RC=124
	for i in $(seq $(($2 * 10))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null
			WAIT_RC=$?
			return 0
		fi
		sleep 0.1
	done
	# WAIT_PID_DEBUG=FILE: before killing, append every umemd's thread
	# stacks (gdb) and the TCP sockets to FILE, to debug a hang.
	if [ -n "${WAIT_PID_DEBUG:-}" ]; then
		local p
		for p in $(pgrep -x umemd); do
			echo "=== $p $(tr '\0' ' ' <"/proc/$p/cmdline")"
			command -v gdb >/dev/null &&
				gdb -p "$p" -batch -ex 'thread apply all bt' 2>&1 | grep -E '^#|^Thread'
		done >>"$WAIT_PID_DEBUG"
		ss -tnpi >>"$WAIT_PID_DEBUG" 2>&1
	fi
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# Preconditions of the QEMU suites.  t_need_qemu: QEMU (default: the
# qemu-system-x86_64 on PATH) is exported, or the suite is skipped.
t_need_qemu() {
	QEMU=${QEMU:-$(command -v qemu-system-x86_64)}
	if [ -z "$QEMU" ] || [ ! -x "$QEMU" ]; then
		t_skip "qemu-system-x86_64 not installed"
		t_done
	fi
	export QEMU
}

# t_need_umem_python: /dev/umem and python3, or the suite fails.
t_need_umem_python() {
	if [ ! -e /dev/umem ]; then
		t_fail "/dev/umem missing (module not loaded)"
		t_done
	fi
	if ! command -v python3 >/dev/null; then
		t_fail "python3 missing"
		t_done
	fi
}
