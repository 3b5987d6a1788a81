# SPDX-License-Identifier: GPL-2.0
#
# umem top-level Makefile.  Kbuild does not read this file (it reads the
# top-level Kbuild, which descends into kmod/).
#
#   make                 module for KDIR (default: newest non-RT /lib/modules/*/build),
#                        selftests/ and userspace/ when they have a Makefile
#   make KDIR=...        the same for another kernel tree
#   make modules-all     the module for every installed kernel (KVERS), each in
#                        build/mod-<kver>/, W=1, any compiler warning fails
#   make lint            checkpatch --strict + sparse (C=2)
#   make check           everything: host suites + selftests in a VM per kernel
#   make check-debug     selftests, guest suites and fault injection on a KASAN/
#                        lockdep/kmemleak 6.12 kernel built once (not in check)
#   make deps            install build/test dependencies (scripts/deps.sh)
#   make demo            a postcopy migration in a VM (BACKEND=umem|uffd|uffd-minor)
#   make demo-qemu       a running QEMU guest migrated, RAM by umem, in a VM (MIB=64;
#                        GUEST=linux: a real Linux guest, then QEMU postcopy too)
#   make demo-snapshot   a running QEMU guest snapshotted by umem write-protect and
#                        restored lazily, against QEMU's background-snapshot (MIB=32)
#   make install         DESTDIR=... PREFIX=/usr/local: libumem, headers, tools,
#                        man pages, udev rule, DKMS source (packaging/pkg.mk)
#   make dkms-install    (root) the module through DKMS for every kernel; dkms-uninstall
#   make deb             build/deb/*.deb (umem-dkms, umemd, libumem0, libumem-dev) + lintian

SHELL := /bin/bash
REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(REPO)/build

# Every kernel with headers installed, newest first: make check and
# modules-all cover all of them, PREEMPT_RT ones (6.12.x+deb12-rt-amd64) too.
KVERS ?= $(shell ls -d /lib/modules/*/build 2>/dev/null | \
	   sed -e 's@^/lib/modules/@@' -e 's@/build$$@@' | sort -rV)
# The default kernel of make, lint, demo and bench: the newest that is not
# an -rt- one (sort -rV puts 6.12.x+deb12-rt-amd64 before 6.12.x+deb12-amd64,
# and demo/bench figures are for the plain kernel); an RT kernel only if
# there is nothing else.
KVER ?= $(firstword $(foreach v,$(KVERS),$(if $(findstring -rt-,$(v)),,$(v))) $(KVERS))
KDIR ?= /lib/modules/$(KVER)/build

KSFT_TARBALL ?= /usr/src/linux-source-6.12.tar.xz
KSFT_DIR := $(BUILD)/ksft
export KSFT_DIR

DEPS_STAMP := $(BUILD)/.deps.stamp
KSFT_STAMP := $(KSFT_DIR)/.stamp

.PHONY: all module selftests userspace bench-tools modules-all ksft-headers lint check \
	check-debug deps demo demo-qemu demo-snapshot bench clean help

all: module selftests userspace bench-tools

help:
	@sed -n '3,22p' $(REPO)/Makefile | sed 's/^# \{0,1\}//'

# ---------------------------------------------------------------- deps
deps:
	@$(REPO)/scripts/deps.sh
	@mkdir -p $(BUILD) && touch $(DEPS_STAMP)

$(DEPS_STAMP): $(REPO)/scripts/deps.sh
	@$(REPO)/scripts/deps.sh
	@mkdir -p $(BUILD) && touch $@

# ---------------------------------------------------------------- module
module: $(DEPS_STAMP)
	@test -f $(REPO)/kmod/Kbuild || { echo "kmod/Kbuild is missing" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(REPO) W=1 modules

modules-all: $(DEPS_STAMP)
	@set -e; for v in $(KVERS); do \
		$(REPO)/scripts/build-mod.sh "$$v"; \
	done

# ---------------------------------------------------------------- kselftest bits
ksft-headers: $(KSFT_STAMP)

$(KSFT_STAMP): | $(DEPS_STAMP)
	@$(REPO)/scripts/ksft-extract.sh $(KSFT_TARBALL) $(KSFT_DIR)
	@touch $@

# ---------------------------------------------------------------- sub-makes
selftests: ksft-headers
	@if [ -f $(REPO)/selftests/Makefile ]; then \
		$(MAKE) -C $(REPO)/selftests KSFT_DIR=$(KSFT_DIR); \
	else echo "selftests/Makefile not present, skipping"; fi

userspace: $(DEPS_STAMP)
	@if [ -f $(REPO)/userspace/Makefile ]; then \
		$(MAKE) -C $(REPO)/userspace; \
	else echo "userspace/Makefile not present, skipping"; fi

# ---------------------------------------------------------------- demo
# A postcopy migration you can watch: two network namespaces in a virtme-ng
# guest (KVER: newest non-RT kernel), umemd --outgoing in one, umemd --incoming + umem-vmm
# in the other; exit 0 only if every page verified.
#   make demo [BACKEND=umem|uffd|uffd-minor] [SIZE=256M] [DELAY=1ms] [RATE=1gbit]
#             [PREEMPT=0|1] [THREADS=2] [PATTERN=seq|random|hotset]
BACKEND ?= umem
DEMO_KVER ?= $(KVER)
DEMO_VARS := BACKEND SIZE DELAY RATE PREEMPT THREADS PATTERN DURATION SEED

demo: all modules-all
	@$(REPO)/scripts/vm-run.sh $(DEMO_KVER) env \
		$(foreach v,$(DEMO_VARS),$(if $($(v)),$(v)=$($(v)))) \
		userspace/demo.sh

# A running QEMU guest (userspace/qemu/guest) migrated between two QEMUs in a
# virtme-ng guest (KVER): device state by QEMU (x-ignore-shared),
# RAM by umemd over a umem region; exit 0 only if the guest saw no mismatch
# and kept running.   make demo-qemu [MIB=64] [HUGE=1]
# GUEST=linux: a real Linux guest (the VM's own kernel, a busybox initramfs,
# virtio-rng + virtio-net, a workload checking WMIB=32 MiB of its 128 MiB),
# then the same guest by QEMU's own postcopy.  make demo-qemu GUEST=linux
DEMO_QEMU_VARS := MIB PRINT PASSES HUGE GUEST WMIB
# QEMU 7.2's TCG (the VM's) mistranslates BMI1/BMI2 code that the TCG of
# the QEMU inside it emits: a Linux guest there panics early in boot.  The
# VM's CPU goes without them (and AVX) for GUEST=linux, and the VM gets
# an hour (two Linux boots under nested TCG, minutes each on a busy host).
LINUX_GUEST_VNG_OPTS := --qemu-opts=-cpu --qemu-opts=max,avx=off,avx2=off,bmi1=off,bmi2=off

demo-qemu: all modules-all
	@$(if $(filter linux,$(GUEST)),VNG_OPTS="$(LINUX_GUEST_VNG_OPTS) $(VNG_OPTS)" \
		VM_TIMEOUT=$(or $(VM_TIMEOUT),3600)) \
	$(REPO)/scripts/vm-run.sh $(DEMO_KVER) env \
		$(foreach v,$(DEMO_QEMU_VARS),$(if $($(v)),$(v)=$($(v)))) \
		userspace/qemu/demo-qemu.sh

# The same test guest snapshotted while it runs (umemd --snapshot: RAM by
# umem write-protect, device state by QEMU with x-ignore-shared) and
# restored lazily into a new QEMU (umemd --restore), compared with QEMU's
# own background-snapshot and an eager restore; exit 0 only if every saved
# and restored guest verified its RAM.   make demo-snapshot [MIB=32]
DEMO_SNAP_VARS := MIB PRINT PASSES PHASES THROTTLE

demo-snapshot: all modules-all
	@$(REPO)/scripts/vm-run.sh $(DEMO_KVER) env \
		$(foreach v,$(DEMO_SNAP_VARS),$(if $($(v)),$(v)=$($(v)))) \
		userspace/qemu/demo-snapshot.sh

# Benchmarks, umem against userfaultfd, in a VM (KVER); raw data in
# build/bench/<date>/, summary + plots in bench/results/<date>/ (see
# Documentation/benchmarks.md).   make bench [QUICK=1]
BENCH_KVER ?= $(KVER)

# Section 4 (bench/net.sh) runs umemd and umem-vmm: userspace too.
# Section 7 snapshots up to 1 GiB of RAM into a tmpfs: a 4 GiB guest.
# Section 8 migrates a QEMU guest (userspace/qemu/native-postcopy.sh).
# QEMU_GUESTS="test linux" adds the Linux guest to section 8 (about 20
# minutes more; the VM gets the CPU model GUEST=linux needs, see
# demo-qemu below, and 80 minutes).
bench: modules-all bench-tools userspace
	@$(if $(filter linux,$(QEMU_GUESTS)),VNG_OPTS="$(LINUX_GUEST_VNG_OPTS) $(VNG_OPTS)") \
	VM_MEMORY=$${VM_MEMORY:-4G} VM_TIMEOUT=$${VM_TIMEOUT:-$(if $(filter linux,$(QEMU_GUESTS)),4800,2400)} $(REPO)/scripts/vm-run.sh $(BENCH_KVER) env QUICK=$(if $(QUICK),$(QUICK),0) \
		$(if $(QEMU_GUESTS),QEMU_GUESTS="$(QEMU_GUESTS)") bench/run.sh
	@$(REPO)/bench/report.sh "$$(cat $(BUILD)/bench/LAST)"

# The benchmark binary, built on the host (guests see the tree read-only).
bench-tools: $(DEPS_STAMP)
	$(MAKE) -C $(REPO)/bench

# ---------------------------------------------------------------- lint
lint: ksft-headers
	@KVER=$(KVER) KDIR=$(KDIR) $(REPO)/scripts/lint.sh

# ---------------------------------------------------------------- check
# deb: the guest suite 90-installed.sh installs build/deb/*.deb.
# The long suites are spread over the VMs, so that no one VM holds them
# all: those marked "# guest-suite-kernels: main" (QEMU, benchmarks,
# recovery) run on KVER only, the installed packages (DKMS compiling the
# module in the guest) on the oldest plain kernel, Debian 12's default
# (6.1), the kernel a Debian user installs them on.
INSTALLED_KVERS ?= $(lastword $(foreach v,$(KVERS),$(if $(findstring -rt-,$(v)),,$(v))) $(KVERS))
check: $(DEPS_STAMP) all modules-all ksft-headers deb
	@KVERS="$(KVERS)" CHECK_MAIN_KVER="$(KVER)" INSTALLED_KVERS="$(INSTALLED_KVERS)" \
		python3 $(REPO)/scripts/check.py

# ---------------------------------------------------------------- check-debug
# The selftests, guest suites and umem_failnth_test on a debug 6.12 kernel
# (KASAN, lockdep, kmemleak, UBSAN, fault injection), built once into
# DEBUG_KDIR (scripts/debug-kernel.sh; ~15-25 min on 2 cores, then cached);
# any kernel report fails.  Results in build/results/debug-6.12/, see
# Documentation/debug-kernel.rst.  Not part of make check.
DEBUG_KDIR ?= $(BUILD)/debug-6.12

check-debug: $(DEPS_STAMP) selftests userspace bench-tools ksft-headers
	@DEBUG_KDIR=$(DEBUG_KDIR) $(REPO)/scripts/check-debug.sh

# ---------------------------------------------------------------- install, packages
include $(REPO)/packaging/pkg.mk

# ---------------------------------------------------------------- clean
clean:
	@if [ -f $(REPO)/kmod/Kbuild ] && [ -d $(KDIR) ]; then \
		$(MAKE) -C $(KDIR) M=$(REPO) clean >/dev/null; fi
	@for d in selftests userspace; do \
		if [ -f $(REPO)/$$d/Makefile ]; then $(MAKE) -C $(REPO)/$$d clean; fi; \
	done
	rm -rf $(BUILD)
