#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""TAP tests of check.py's counting (the one place results are counted)
and of the recap a CI log's tail shows: the failures named again and the
diagnostics the first one printed."""

import contextlib
import importlib.util
import io
import os

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("check", os.path.join(HERE, "check.py"))
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)

results = []


def t(cond, desc):
    results.append(bool(cond))
    print(f"{'ok' if cond else 'not ok'} {len(results)} - {desc}")


def counts(c):
    return (c.passed, c.failed, c.skipped)


SUITE = """ok 1 - first
not ok 2 - umem, preempt: dest=1 source=1 vmm=3
#   destination: install at page 12: Bad address
#   source: the destination closed the connection
ok 3 - # SKIP no netem
not ok 4 - second failure
#   not the first failure's
2 passed, 2 failed, 1 skipped
"""

c = check.count_output(SUITE, 1)
t(counts(c) == (2, 2, 1), f"a summary line is the suite's result: {counts(c)}")
t(c.fails == ["not ok 2 - umem, preempt: dest=1 source=1 vmm=3",
              "not ok 4 - second failure"], "both failures are named")
t(c.diag == ["#   destination: install at page 12: Bad address",
             "#   source: the destination closed the connection"],
  "the diagnostics are the first failure's, up to the next test line")

c = check.count_output("ok 1 - a\n# Totals: pass:3 fail:1 xfail:0 xpass:1 skip:2 error:1\n", 1)
t(counts(c) == (4, 2, 2), f"kselftest totals: pass+xfail+xpass, fail+error, skip: {counts(c)}")

c = check.count_output("ok 1 - a\nok 2 - b\n", None)
t(counts(c) == (0, 1, 0) and "no summary line" in c.note,
  f"no summary: one failure, said so ({c.note})")

c = check.count_output("ok 1 - a\n1 passed, 0 failed\n", 124)
t(counts(c) == (1, 1, 0) and "timed out" in c.note, f"a summary but timed out: +1 failed ({c.note})")

c = check.count_output("1 passed, 0 failed, 3 skipped\n", 4)
t(counts(c) == (1, 0, 3), "KSFT_SKIP exit with a summary: skips stay skips, not passes")

long = "not ok 1 - x\n" + "".join(f"# line {i} " + "y" * 300 + "\n" for i in range(100)) + "0 passed, 1 failed\n"
c = check.count_output(long, 1)
t(len(c.diag) == check.DIAG_LINES and all(len(l) <= check.DIAG_WIDTH for l in c.diag),
  f"diagnostics are bounded: {len(c.diag)} lines of at most {check.DIAG_WIDTH} chars")

total = check.Count()
total.add(check.count_output("ok 1 - a\n1 passed, 0 failed\n", 0), "k/suite-a")
total.add(check.count_output(SUITE, 1), "k/suite-b")
total.add(check.count_output("not ok 1 - z\n# other\n0 passed, 1 failed\n", 1), "k/suite-c")
t(counts(total) == (3, 3, 1), f"suites add up: {counts(total)}")
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    check.print_recap(total)
out = buf.getvalue().splitlines()
t(out[:4] == ["check: failed:",
              "  k/suite-b: not ok 2 - umem, preempt: dest=1 source=1 vmm=3",
              "  k/suite-b: not ok 4 - second failure",
              "  k/suite-c: not ok 1 - z"], "the recap names every failure with its suite")
t(out[4:] == ["check: what the first failure printed:",
              "  k/suite-b: not ok 2 - umem, preempt: dest=1 source=1 vmm=3",
              "    #   destination: install at page 12: Bad address",
              "    #   source: the destination closed the connection"],
  "then what the first failing case printed, and no other's")

buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    check.print_recap(check.Count(3))
t(buf.getvalue() == "", "no failure: no recap")

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
raise SystemExit(1 if failed else 0)
