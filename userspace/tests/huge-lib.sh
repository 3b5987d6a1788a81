# SPDX-License-Identifier: GPL-2.0
# Helpers for the 2 MiB page suites (scripts/host-suites.d/58-huge.sh on
# the uffd backends, scripts/guest-suites.d/58-huge-umem.sh on umem).
# Source suite-lib.sh and migrate-lib.sh first, and set BIN, WORK, ADDR,
# IMG (mig_image), SEED, TMO.  A migration of 64 MiB = 32 huge pages.

# Start a destination / source with their JSON summaries kept.
huge_dest() { # BACKEND UMEMD EXTRA...
	local backend=$1 umemd=$2
	shift 2
	PORT=$((PORT + 1))
	DSOCK=$WORK/vmm-$PORT.sock
	DLOG=$WORK/dest-$PORT.err
	DJSON=$WORK/dest-$PORT.json
	rm -f "$DSOCK"
	# VMM_PATH=1 (umem): the VMM opens /dev/umem-hPORT, no socket (with
	# one, umemd would wait for a VMM on it before DONE)
	# shellcheck disable=SC2046
	"$umemd" --incoming --listen "$ADDR:$PORT" --backend "$backend" \
		--name "h$PORT" $([ "${VMM_PATH:-0}" = 1 ] || echo --vmm-socket "$DSOCK") \
		--json "$@" >"$DJSON" 2>"$DLOG" &
	DPID=$!
	sleep 0.2
}
huge_src() { # UMEMD EXTRA...
	local umemd=$1
	shift
	SLOG=$WORK/src-$PORT.err
	SJSON=$WORK/src-$PORT.json
	"$umemd" --outgoing --ram "$IMG" --connect "$ADDR:$PORT" --connect-wait 20 \
		--json "$@" >"$SJSON" 2>"$SLOG" &
	SPID=$!
}
# A JSON field of a summary file, or "" (python3 is in make deps).
jget() { # FILE KEY
	python3 -c 'import json,sys
try:
    print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))
except Exception:
    print("")' "$1" "$2"
}
huge_dump() {
	local f
	for f in "$SLOG" "$DLOG" "${VLOG:-/dev/null}"; do
		[ -s "$f" ] && tail -n 12 "$f" | sed "s|^|# $(basename "$f"): |"
	done
	return 0
}

# A 2 MiB migration of IMG (32 pages), --max-bandwidth 100 on the source,
# a VMM of 2 random-pattern vCPUs verifying every page, by the socket or
# (VMM_PATH=1, umem) by the node's path.  Asserts completion, the PIECE
# counts and that requests interrupted partly sent pages.
huge_mig() { # DESC BACKEND DOPTS WANT_PREEMPT
	local desc=$1 backend=$2 dopts=$3 want=$4 vrc src drc region
	# shellcheck disable=SC2086
	huge_dest "$backend" "$BIN/umemd" $dopts
	huge_src "$BIN/umemd" --page-size 2m --max-bandwidth 100
	VLOG=$WORK/vmm-$PORT.err
	vrc=99
	region=$DSOCK
	[ "${VMM_PATH:-0}" = 1 ] && region=/dev/umem-h$PORT
	if wait_for "$region" 20; then
		# shellcheck disable=SC2046
		timeout "$TMO" "$BIN/umem-vmm" --region "$region" --seed "$SEED" --threads 2 \
			$([ "$region" = "$DSOCK" ] || echo --backend umem --page-size 2m) \
			--pattern random --duration 1 --verify-all >/dev/null 2>"$VLOG"
		vrc=$?
	fi
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	if [ "$vrc" = 0 ] && [ "$src" = 0 ] && [ "$drc" = 0 ] &&
	   [ "$(jget "$DJSON" ok)" = True ] && [ "$(jget "$DJSON" preempt)" = "$want" ] &&
	   [ "$(jget "$SJSON" page_size)" = 2097152 ] && [ "$(jget "$DJSON" page_size)" = 2097152 ] &&
	   [ "$(jget "$DJSON" version)" = 3 ] && [ "$(jget "$DJSON" pages)" = 32 ]; then
		t_ok "$desc: 32 x 2 MiB migrated, every page verified ($(grep -o 'OK: .*mismatches' "$VLOG" | cut -c1-90))"
	else
		t_fail "$desc: vmm=$vrc source=$src dest=$drc"
		huge_dump
		return
	fi
	local pieces ints dpieces inter reqd part
	pieces=$(jget "$SJSON" pieces); dpieces=$(jget "$DJSON" pieces)
	ints=$(jget "$SJSON" interrupts); inter=$(jget "$DJSON" interleaved)
	reqd=$(jget "$SJSON" pages_requested); part=$(jget "$SJSON" requests_partial)
	if [ -n "$pieces" ] && [ "$pieces" = "$dpieces" ] && [ "$pieces" -gt 0 ] &&
	   [ "$pieces" -le 1024 ] && [ $((pieces % 32)) = 0 ]; then
		t_ok "$desc: $pieces PIECE frames of 64 KiB sent and received (32 per non-zero page)"
	else
		t_fail "$desc: PIECE frames: source $pieces, destination $dpieces"
	fi
	if [ -n "$ints" ] && [ "$ints" -gt 0 ] && [ -n "$inter" ] && [ "$inter" -gt 0 ]; then
		t_ok "$desc: requests interrupted partly sent huge pages: source $ints of $reqd requested pages, destination completed $inter pages while another was partly in"
	else
		t_fail "$desc: no interruption seen (source interrupts=$ints, destination interleaved=$inter, requested $reqd)"
	fi
	echo "#   requests for the page being sent (rest unpaced): $part; request latency (us): $(sed -n 's/.*"latency_us":\({[^}]*}\).*/\1/p' "$DJSON")"
}
# 4 KiB between v3 and a v2-speaking peer, both ways: version 2.
compat_4k() { # DESC DEST-UMEMD DEST-OPTS SRC-UMEMD SRC-OPTS
	local desc=$1 dum=$2 dopts=$3 sum=$4 sopts=$5 vrc src drc v
	# shellcheck disable=SC2086
	huge_dest "${COMPAT_BACKEND:-uffd}" "$dum" $dopts
	# shellcheck disable=SC2086
	huge_src "$sum" $sopts
	VLOG=$WORK/vmm-$PORT.err
	vrc=99
	if wait_for "$DSOCK" 20; then
		timeout "$TMO" "$BIN/umem-vmm" --region "$DSOCK" --seed "$SEED" --threads 2 \
			--pattern random --duration 1 --verify-all >/dev/null 2>"$VLOG"
		vrc=$?
	fi
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	v=$(jget "$SJSON" version)
	[ -z "$v" ] && v=$(jget "$DJSON" version)
	if [ "$vrc" = 0 ] && [ "$src" = 0 ] && [ "$drc" = 0 ] && [ "$v" = 2 ]; then
		t_ok "$desc: 4 KiB migration at protocol version 2, every page verified"
	else
		t_fail "$desc: vmm=$vrc source=$src dest=$drc version=$v"
		huge_dump
	fi
}
