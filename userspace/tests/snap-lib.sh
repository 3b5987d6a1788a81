# SPDX-License-Identifier: GPL-2.0
# Helpers shared by the snapshot and restore suites (host 59-vmm-snap,
# 62-snapshot, 63-restore; guest 62-snapshot-umem, 63-restore-umem), which
# drive umem-vmm writers and umemd and check RAM against a writer's state.
# Source it after suite-lib.sh with BIN set (umem-vmm).
#
#   snap_workdir PREFIX    WORK, a fresh directory, and PIDS, processes
#                          killed (SIGKILL) with WORK removed at exit
#   writes_in STATE RAM    RAM checked against STATE; prints the writes in all
#   memfd_of PID           the memfd of a --writer-backend writer
#   json_num KEY FILE      a number of a JSON summary
#   pause_twice PID RAM    pauses writer PID twice, 0.3 s apart, checking RAM
#                          against its state each time (state file $ST):
#                          N1 and N2, the writes at each, empty on failure
#   refused SNAP DESC      umem-vmm --check-snapshot refuses SNAP as
#                          incomplete (state file $ST)

snap_workdir() {
	WORK=$(mktemp -d "/tmp/$1.XXXXXX")
	PIDS=
	trap snap_cleanup EXIT
}

snap_cleanup() {
	local p
	for p in $PIDS; do
		kill -9 "$p" 2>/dev/null
	done
	for p in $PIDS; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}

writes_in() {
	"$BIN/umem-vmm" --check-state "$2" --state-file "$1" 2>&1 |
		sed -n 's/.* matches .*, \([0-9]*\) writes in all$/\1/p'
}

memfd_of() {
	local f
	for f in /proc/"$1"/fd/*; do
		case $(readlink "$f") in "/memfd:umem-vmm-$1 "*) echo "$f"; return 0 ;; esac
	done
	return 1
}

json_num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2"; }

pause_twice() {
	N1= N2=
	[ -n "$2" ] || return 1
	timeout 20 "$BIN/umem-vmm" --pause "$1" --state-file "$ST" --timeout 5 || return 1
	N1=$(writes_in "$ST" "$2")
	timeout 20 "$BIN/umem-vmm" --resume "$1"
	sleep 0.3
	timeout 20 "$BIN/umem-vmm" --pause "$1" --state-file "$ST" --timeout 5 &&
		N2=$(writes_in "$ST" "$2")
	timeout 20 "$BIN/umem-vmm" --resume "$1"
	[ -n "$N1" ] && [ -n "$N2" ]
}

refused() {
	"$BIN/umem-vmm" --check-snapshot "$1" --state-file "$ST" 2>"$WORK/refused.err"
	local rc=$?
	if [ "$rc" = 1 ] && grep -q "incomplete snapshot" "$WORK/refused.err"; then
		t_ok "$2: the snapshot file is refused as incomplete"
	else
		t_fail "$2: --check-snapshot of the file: exit $rc"
		sed 's/^/#   /' "$WORK/refused.err" | head -n 5
	fi
}
