#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# libFuzzer on umemd's frame parser and postcopy state machine, then on the
# snapshot file reader, each for a bounded time (UMEMD_FUZZ_SECONDS, default
# 20), seeded with a valid stream / a valid snapshot file.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

SECS=${UMEMD_FUZZ_SECONDS:-20}
if ! command -v clang >/dev/null; then
	t_skip "libFuzzer: clang not installed"
	t_done
fi
if ! make -s -C userspace SAN=1 fuzz all >/tmp/umemd-fuzz-build.log 2>&1; then
	if grep -q "fuzzer" /tmp/umemd-fuzz-build.log; then
		t_skip "libFuzzer runtime missing (libclang-rt-dev): $(grep -m1 error /tmp/umemd-fuzz-build.log)"
		t_done
	fi
	tail -n 20 /tmp/umemd-fuzz-build.log | sed 's/^/# /'
	t_fail "build the fuzz targets"
	t_done
fi
t_ok "build fuzz-proto and fuzz-snapfile (clang -fsanitize=fuzzer,address,undefined)"
W=$(mktemp -d /tmp/umemd-fuzz.XXXXXX)
trap 'rm -rf "$W"' EXIT

# fuzz TARGET WHAT MAX_LEN: run build-san/bin/fuzz-TARGET on $W/TARGET.
fuzz() {
	local target=$1 what=$2 max_len=$3 rc runs
	userspace/build-san/bin/fuzz-"$target" -max_total_time="$SECS" -max_len="$max_len" \
		-print_final_stats=1 "$W/$target" >"$W/$target.log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$W/$target.log")
	if [ $rc -eq 0 ]; then
		t_ok "fuzzed $what for ${SECS}s: ${runs:-?} inputs, no crash"
	else
		grep -E "ERROR|SUMMARY|Test unit written" "$W/$target.log" | head -n 10 | sed 's/^/# /'
		t_fail "fuzz-$target found a crash (exit $rc)"
	fi
}

mkdir -p "$W/proto" "$W/snapfile"
userspace/build-san/bin/test-proto seed "$W/proto/valid-stream"
userspace/build-san/bin/test-proto seed-huge "$W/proto/valid-stream-2m"
fuzz proto "the frame parser" 16384
# A 20 KiB snapshot: 3 pages, device state, working set (test-snapfile seed).
userspace/build-san/bin/test-snapfile seed "$W/snapfile/valid-snapshot"
fuzz snapfile "the snapshot reader" 32768
t_done
