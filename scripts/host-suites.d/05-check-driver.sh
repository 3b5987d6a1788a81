#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make check's own counting (scripts/check.py): the conventions its
# docstring states, and the recap above the closing line that names every
# failure and shows what the first one printed (a CI log's tail is often
# all there is of a failure that happened once).
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

t_run_tap check-count python3 scripts/test-check-count.py
t_done
