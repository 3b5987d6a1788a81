# SPDX-License-Identifier: GPL-2.0
# Helpers of the umemd --restore suites (scripts/host-suites.d/63-restore.sh,
# scripts/guest-suites.d/63-restore-umem.sh).  Source it after suite-lib.sh,
# with BIN (umemd, umem-vmm), WORK, RAM (what every page must hold) and
# PIDS (snap-lib.sh's snap_workdir) set.
N=0

# jnum FILE KEY: a number of a JSON summary (json_num of snap-lib.sh).
jnum() { json_num "$2" "$1"; }

# restore FILE BACKEND "UMEMD OPTS" VMM OPTS...: umemd --restore and
# umem-vmm --expect-file RAM --verify-all; DRC, VRC, DLOG, DJSON, VLOG,
# VJSON.  VMM_DELAY (s) before the VMM starts; ON_RUN: a command run once
# umemd said RUN (its pids in $D and $V).
restore() {
	local file=$1 backend=$2 dopts=$3 sock i
	shift 3
	N=$((N + 1))
	sock=$WORK/vmm-$N.sock
	DLOG=$WORK/d-$N.err DJSON=$WORK/d-$N.json VLOG=$WORK/v-$N.err VJSON=$WORK/v-$N.json
	# shellcheck disable=SC2086
	"$BIN/umemd" --restore "$file" --backend "$backend" --vmm-socket "$sock" \
		--name "rst$N-$$" --json -v $dopts >"$DJSON" 2>"$DLOG" &
	D=$!
	PIDS="$PIDS $D"
	VRC=99
	if wait_for "$sock" 20; then
		sleep "${VMM_DELAY:-0}"
		timeout 120 "$BIN/umem-vmm" --region "$sock" --backend "$backend" \
			--expect-file "$RAM" --verify-all --json "$@" >"$VJSON" 2>"$VLOG" &
		V=$!
		PIDS="$PIDS $V"
		if [ -n "${ON_RUN:-}" ]; then
			for i in $(seq 1000); do
				grep -q "RUN: the guest runs" "$DLOG" && break
				sleep 0.01
			done
			eval "$ON_RUN"
		fi
		wait_pid "$V" 120
		VRC=$WAIT_RC
	fi
	wait_pid "$D" 60
	DRC=$WAIT_RC
}

dump() {
	sed 's/^/#   d: /' "$DLOG" | tail -n 12
	sed 's/^/#   v: /' "$VLOG" | tail -n 5
}

