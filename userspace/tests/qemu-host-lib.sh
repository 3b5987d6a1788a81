# SPDX-License-Identifier: GPL-2.0
# Helpers for the host suites that run a QEMU guest without the module
# (scripts/host-suites.d/57-qemu-guest.sh, 64-qemu-linux.sh).  Source
# suite-lib.sh first; set QEMU and WORK.

# QEMU's own postcopy (postcopy-ram) of the running guest on loopback,
# driven by userspace/qemu/qemu_migrate.py: one t_ok/t_fail.  Root only
# (userfaultfd); without root one t_skip and the suite ends.
qemu_own_postcopy() { # DESC MIB TIMEOUT GUEST-ARGS...
	local desc=$1 mib=$2 tmo=$3 rc port
	shift 3
	port=$(test_port 2)
	if [ "$(id -u)" != 0 ]; then
		t_skip "QEMU postcopy of $desc: needs root (userfaultfd)"
		t_done
	fi
	timeout -k 10 "$tmo" python3 userspace/qemu/qemu_migrate.py --mode postcopy --mib "$mib" \
		--qemu "$QEMU" "$@" --port "$port" \
		--qport $((port + 1)) --print-every 1 --timeout 20 \
		--workdir "$WORK/pc" >"$WORK/pc.out" 2>&1
	rc=$?
	if [ "$rc" = 0 ] && grep -q '^RESULT .*"ok": true' "$WORK/pc.out"; then
		t_ok "QEMU postcopy-ram of $desc: no mismatch, kept running"
	else
		t_fail "QEMU postcopy-ram of $desc: exit $rc"
		grep -v '^RESULT' "$WORK/pc.out" | tail -n 15 | sed 's/^/#   /'
	fi
}
