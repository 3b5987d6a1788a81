#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# libFuzzer on umemd's frame parser and postcopy state machine, for a
# bounded time (UMEMD_FUZZ_SECONDS, default 20), seeded with a valid stream.
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
	t_fail "build the fuzz target"
	t_done
fi
t_ok "build fuzz-proto (clang -fsanitize=fuzzer,address,undefined)"
W=$(mktemp -d /tmp/umemd-fuzz.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/corpus"
userspace/build-san/bin/test-proto seed "$W/corpus/valid-stream"
userspace/build-san/bin/test-proto seed-huge "$W/corpus/valid-stream-2m"
userspace/build-san/bin/fuzz-proto -max_total_time="$SECS" -max_len=16384 \
	-print_final_stats=1 "$W/corpus" >"$W/log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$W/log")
if [ $rc -eq 0 ]; then
	t_ok "fuzzed the frame parser for ${SECS}s: ${runs:-?} inputs, no crash"
else
	grep -E "ERROR|SUMMARY|Test unit written" "$W/log" | head -n 10 | sed 's/^/# /'
	t_fail "fuzz-proto found a crash (exit $rc)"
fi
t_done
