#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The packaging checks that need no VM (issue 15), on the host:
#   - check-version.sh: VERSION, debian/changelog, the module and the
#     tools all say one version;
#   - check-abi.sh: libumem exports exactly the functions of libumem.h,
#     each in the version node the map gives it (LIBUMEM_0, LIBUMEM_0.5),
#     with the soname VERSION asks for;
#   - check-man.py: the man pages render without warnings and say what
#     uapi/linux/umem.h, libumem.h and the programs' --help say, and
#     libumem(3)'s example is Documentation/examples/libumem-example.c.
# The packages themselves are built by make deb (make check depends on
# it) and tested as installed by scripts/guest-suites.d/90-installed.sh.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

out=$(scripts/check-version.sh 2>&1)
t_check $? "check-version.sh: ${out//$'\n'/; }"
t_run_tap check-abi scripts/check-abi.sh
t_run_tap check-man python3 scripts/check-man.py
t_done
