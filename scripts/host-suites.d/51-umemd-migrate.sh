#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Full postcopy migrations on loopback with the uffd and uffd-minor
# backends (umemd and umem-vmm built with ASan + UBSan), with and without
# the preempt channel, every page verified; the channels' socket options
# read back on both sides; then the failure cases: source
# killed, destination killed, and misbehaving peers.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

if ! make -s -C userspace SAN=1 >/tmp/umemd-suite-build.log 2>&1; then
	tail -n 30 /tmp/umemd-suite-build.log | sed 's/^/# /'
	t_fail "build userspace with SAN=1"
	t_done
fi
BIN=$PWD/userspace/build-san/bin
WORK=$(mktemp -d /tmp/umemd-host.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ADDR=127.0.0.1
SRC_RUN=
DST_RUN=
SIZE=${UMEMD_TEST_SIZE:-64M}
TMO=120
. userspace/tests/migrate-lib.sh

if ! "$BIN/test-libumem" uffd >/dev/null 2>&1; then
	t_skip "userfaultfd unusable here (test-libumem uffd failed)"
	t_done
fi

for b in uffd uffd-minor; do
	mig_full "$b, preempt" "$b" "" "" "--threads 2 --pattern random --duration 2 --verify-all" true
	mig_full "$b, no preempt" "$b" "--no-preempt" "" "--threads 2 --pattern hotset --duration 2 --verify-all" false
done
# The destination may finish on main and close both channels while the
# source still sends requested pages again (RESEND) on preempt: here each
# preempt page waits 20 ms, so the end often comes with requests still
# queued (how often depends on the VMM's pace; mig_fake_dest_end_race, in
# mig_bad_input_cases, makes that race every time).  The source must end
# OK (DONE came on main), not fail on the closed socket.
# (--resend-gap 0: every such page is sent again, however near.)
mig_full "uffd, preempt, the destination ends while pages are re-sent on preempt" uffd "" \
	"-v --test-preempt-delay 20 --resend-gap 0" "--threads 2 --pattern random --duration 1 --verify-all" true
if grep -q "preempt channel closed after END" "$SLOG"; then
	echo "#   the race came this time: the source saw the preempt channel close after END"
else
	echo "#   the race did not come this time (the VMM's requests were all served before END)"
fi
# Requested pages queued in the destination's batch of main-stream pages
# (each batch waits 2 ms before it goes in): the copy sent again on
# preempt takes its page over and goes in at once, and the batch, whose
# UFFDIO_COPY of a run then meets that page (EEXIST), installs the rest.
# --resend-gap 0: sent again although the destination has read them.
# --test-page-copy keeps what went in: every page equals the image.
mig_full "uffd, preempt, batches held: requested pages taken over" uffd \
	"--test-batch-delay 2 --test-page-copy $WORK/installed.img" \
	"--resend-gap 0" "--threads 2 --pattern random --duration 2 --verify-all" true
if cmp -s "$WORK/installed.img" "$IMG"; then
	t_ok "--test-page-copy: every page installed (taken over or batched) equals the source's image"
else
	t_fail "--test-page-copy: pages installed differ from the image: $(cmp "$WORK/installed.img" "$IMG" 2>&1 | head -n 1)"
fi
rm -f "$WORK/installed.img"
taken=$(sed -n 's/.*"resent_taken":\([0-9]*\).*/\1/p' "$DJSON")
if [ "${taken:-0}" -gt 0 ] && ! grep -q "^  not resent " "$SLOG"; then
	t_ok "requested pages queued for a batch went in by their copy sent again: resent_taken $taken"
else
	t_fail "no requested page was taken over from a held batch (resent_taken '${taken}'), or the source held some back"
	grep -i 'resent\|FAILED' "$SLOG" "$DLOG" | tail -n 5 | sed 's/^/#   /'
fi
# A copy that cannot be written (a 1 MiB tmpfs) fails the migration: a
# copy with holes would read as wrong pages.
mkdir -p "$WORK/tiny"
if mount -t tmpfs -o size=1m tmpfs "$WORK/tiny" 2>/dev/null; then
	mig_image
	mig_start_dest uffd --test-page-copy "$WORK/tiny/installed.img"
	mig_start_src
	mig_start_vmm --threads 1 --pattern seq --duration 0.2
	[ -n "$VPID" ] && wait_pid "$VPID" "$TMO"
	wait_pid "$SPID" "$TMO"; src=$WAIT_RC
	wait_pid "$DPID" "$TMO"; drc=$WAIT_RC
	umount "$WORK/tiny"
	if [ "$drc" = 1 ] && grep -q -- "--test-page-copy: writing page .*No space left" "$DLOG"; then
		t_ok "--test-page-copy on a full disk: destination exits 1 ($(grep -m1 -o -- '--test-page-copy: writing page.*' "$DLOG" | cut -c1-80))"
	else
		t_fail "--test-page-copy on a full disk: destination exit $drc, source $src"
		mig_dump
	fi
else
	t_skip "--test-page-copy on a full disk: cannot mount a tmpfs here"
fi
# The same with the default --resend-gap: the destination reports how far
# it has read main (PROGRESS) before each request, and a page read already
# (held in a batch) or close behind is not sent again; it comes by main.
mig_full "uffd, preempt, batches held, default --resend-gap" uffd "--test-batch-delay 2" \
	"" "--threads 2 --pattern random --duration 2 --verify-all" true
near=$(sed -n 's/^  not resent  *\([0-9]*\) .*/\1/p' "$SLOG")
taken=$(sed -n 's/.*"resent_taken":\([0-9]*\).*/\1/p' "$DJSON")
if [ "${near:-0}" -gt 0 ] && [ "${taken:-1}" -lt "$near" ]; then
	t_ok "--resend-gap: $near requested pages near the destination's reader not sent again (taken over: ${taken})"
else
	t_fail "--resend-gap: not resent '${near}', taken over '${taken}'"
	grep -i 'requests\|resent\|FAILED' "$SLOG" "$DLOG" | tail -n 5 | sed 's/^/#   /'
fi
# The same with the source's --resend off: a request for a page already
# on its way on main is dropped, not sent again; the page comes by main.
mig_full "uffd, preempt, --resend off" uffd "--test-batch-delay 2" "--resend off" \
	"--threads 2 --pattern random --duration 2 --verify-all" true
resent=$(sed -n 's/.*"pages_resent":\([0-9]*\).*/\1/p' "$DJSON")
dups=$(sed -n 's/.*requests  *[0-9]* (\([0-9]*\) duplicates dropped).*/\1/p' "$SLOG")
if [ "$resent" = 0 ] && [ "${dups:-0}" -gt 0 ] && ! grep -q "^  resent " "$SLOG"; then
	t_ok "--resend off: $dups requests for pages already sent dropped by the source, none sent again"
else
	t_fail "--resend off: destination pages_resent '${resent}', source duplicates '${dups}'"
	grep -i 'requests\|resent\|FAILED' "$SLOG" "$DLOG" | tail -n 5 | sed 's/^/#   /'
fi
mig_full "uffd, preempt, bg-follow off, seq" uffd "" "--bg-follow off" "--threads 4 --pattern seq --duration 1 --verify-all" true
# Socket options (chan.c): the preempt socket's SO_PRIORITY and TOS and
# the main socket's TCP_NOTSENT_LOWAT, as getsockopt() reads them back on
# both sides: the defaults, then chosen values, then off.
sock_check() { # DESC WANT_JSON WANT_TEXT
	if grep -q "\"sockets\":{$2}" "$DJSON" && grep -q "sockets *$3" "$SLOG"; then
		t_ok "$1: destination $2; source: $3"
	else
		t_fail "$1: want {$2} / '$3'"
		sed -n 's/.*\("sockets":{[^}]*}\).*/#   destination \1/p' "$DJSON"
		grep 'sockets' "$SLOG" | sed 's/^/#   source /'
	fi
}
mig_full "uffd, preempt, socket options by default" uffd "" "" "--threads 2 --duration 1 --verify-all" true
sock_check "default socket options" '"preempt_priority":6,"preempt_tos":184,"main_notsent_lowat":131072' \
	"preempt: SO_PRIORITY 6, TOS byte 184; main: TCP_NOTSENT_LOWAT 131072"
o="--preempt-priority 2 --preempt-dscp 10 --notsent-lowat 65536"
mig_full "uffd, preempt, $o" uffd "$o" "$o" "--threads 2 --duration 1 --verify-all" true
sock_check "$o" '"preempt_priority":2,"preempt_tos":40,"main_notsent_lowat":65536' \
	"preempt: SO_PRIORITY 2, TOS byte 40; main: TCP_NOTSENT_LOWAT 65536"
o="--preempt-priority off --preempt-dscp off --notsent-lowat off"
mig_full "uffd, preempt, $o" uffd "$o" "$o" "--threads 2 --duration 1 --verify-all" true
sock_check "$o" '"preempt_priority":0,"preempt_tos":0,"main_notsent_lowat":0' \
	"preempt: SO_PRIORITY 0, TOS byte 0; main: TCP_NOTSENT_LOWAT 0"
mig_full "uffd, no preempt: no preempt socket" uffd "--no-preempt" "" "--threads 2 --duration 1 --verify-all" false
sock_check "no preempt" '"preempt_priority":-1,"preempt_tos":-1,"main_notsent_lowat":131072' \
	"preempt: SO_PRIORITY -1, TOS byte -1; main: TCP_NOTSENT_LOWAT 131072"
# Thread names (umemd.8): read from /proc while a migration runs (the
# background stream capped at 200 Mbit/s, about 3 s for 64 MiB).
tnames() { cat /proc/"$1"/task/*/comm 2>/dev/null; }
tnamed() { local n; for n in umemd-fault umemd-pre-in umemd-pre-out umemd-retpath; do
	case " $seen " in *" $n "*) ;; *) return 1 ;; esac; done; }
mig_image
mig_start_dest uffd
mig_start_src --max-bandwidth 200
mig_start_vmm --threads 2 --pattern random --duration 1 --verify-all
seen=
for _ in $(seq 100); do
	seen=$(printf '%s\n' $seen $(tnames "$DPID") $(tnames "$SPID") | sort -u)
	seen=$(echo $seen)
	tnamed && break
	sleep 0.05
done
[ -n "$VPID" ] && wait_pid "$VPID" "$TMO"
wait_pid "$SPID" "$TMO"
wait_pid "$DPID" "$TMO"
if tnamed; then
	t_ok "both umemds' threads named: $seen"
else
	t_fail "threads not named as umemd.8 says: seen '$seen'"
fi
for a in "--preempt-priority 16" "--preempt-dscp 64" "--notsent-lowat 0" "--preempt-priority x" \
	 "--vmm-wait 5" "@--vmm-wait -1" "@--vmm-wait 86401" "@--vmm-wait soon"; do
	# @: a destination's option (--incoming), else the source's
	case $a in
	@*) a=${a#@}; args="--incoming --listen :1 $a" ;;
	*) args="--outgoing --ram $IMG --connect $ADDR:1 $a" ;;
	esac
	# shellcheck disable=SC2086
	out=$("$BIN/umemd" $args 2>&1)
	rc=$?
	if [ "$rc" = 2 ] && echo "$out" | grep -qE "bad --|--vmm-wait and --test-page-copy are for --incoming and --restore"; then
		t_ok "umemd $a: exit 2, $out"
	else
		t_fail "umemd $a: exit $rc: $out"
	fi
done
# Roles swapped: source listens, destination connects.
PORT=$((PORT + 1))
mig_image
rm -f "$WORK/swap.sock"
"$BIN/umemd" --outgoing --ram "$IMG" --listen "$ADDR:$PORT" >/dev/null 2>"$WORK/swap-src.err" &
SPID=$!
sleep 0.2
"$BIN/umemd" --incoming --connect "$ADDR:$PORT" --backend uffd --vmm-socket "$WORK/swap.sock" >/dev/null 2>"$WORK/swap-dst.err" &
DPID=$!
wait_for "$WORK/swap.sock" 20
"$BIN/umem-vmm" --region "$WORK/swap.sock" --seed "$SEED" --verify-all --threads 2 2>"$WORK/swap-vmm.err"
vrc=$?
wait_pid "$SPID" 60; src=$WAIT_RC
wait_pid "$DPID" 60; drc=$WAIT_RC
t_check $((vrc + src + drc)) "source --listen / destination --connect (vmm=$vrc src=$src dst=$drc)"

for b in uffd uffd-minor; do
	mig_kill_source "source killed ($b)" "$b"
done
mig_kill_dest "destination killed (uffd)" uffd
mig_bad_input_cases uffd
t_done
