# SPDX-License-Identifier: GPL-2.0
#
# Installation and packaging; included by the top-level Makefile (which
# sets REPO, BUILD and KVERS).
#
#   make install [DESTDIR=] [PREFIX=/usr/local] [LIBDIR=...] [MODULES_LOAD=yes]
#       libumem (shared, soname libumem.so.0, and static), libumem.h and
#       linux/umem.h, libumem.pc, umemd and umemctl in sbin, umem-vmm in
#       bin, the man pages, the udev rule, /etc/modules-load.d/umem.conf
#       (the module line commented out unless MODULES_LOAD=yes) and the
#       DKMS source tree /usr/src/umem-VERSION (not registered: see below).
#       The udev rule, modules-load.d and /usr/src do not follow PREFIX
#       (UDEVDIR, SYSCONFDIR, DKMS_SRCDIR), as udev, systemd and dkms only
#       look there.
#   make dkms-install    (root) the DKMS source tree, registered, built and
#                        installed for every kernel with headers (KVERS),
#                        the udev rule, modules-load.d, the group "umem"
#   make dkms-uninstall  (root) undoes it (the group stays: delgroup umem)
#   make deb             build/deb/*.deb: umem-dkms, umemd, libumem0,
#                        libumem-dev, built out of a copy of the tree, and
#                        lintian on them (build/deb/lintian.txt)

VERSION := $(strip $(shell cat $(REPO)/VERSION 2>/dev/null))
ifeq ($(VERSION),)
$(error no version: $(REPO)/VERSION is missing or empty)
endif

PREFIX      ?= /usr/local
LIBDIR      ?= $(PREFIX)/lib
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
INCLUDEDIR  ?= $(PREFIX)/include
MANDIR      ?= $(PREFIX)/share/man
SYSCONFDIR  ?= /etc
UDEVDIR     ?= $(or $(shell pkg-config --variable=udevdir udev 2>/dev/null),/lib/udev)
DKMS_SRCDIR ?= /usr/src
MODULES_LOAD ?= no
DKMS        ?= dkms
DKMS_KVERS  ?= $(KVERS)

DKMS_SRC    := $(DKMS_SRCDIR)/umem-$(VERSION)
# The module's sources: never kbuild's generated umem.mod.c.
KMOD_SRCS   := $(filter-out %.mod.c,$(wildcard $(REPO)/kmod/*.c)) $(wildcard $(REPO)/kmod/*.h)
MAN_PAGES   := umem-vmm.1 libumem.3 umem.4 umemd.8 umemctl.8
PKG_ENV     := REPO=$(REPO) VERSION=$(VERSION) DKMS="$(DKMS)" KVERS="$(DKMS_KVERS)" \
               UDEV_RULE=$(UDEVDIR)/rules.d/60-umem.rules \
               MODULES_LOAD_CONF=$(SYSCONFDIR)/modules-load.d/umem.conf \
               DKMS_SRC=$(DKMS_SRC)
USERSPACE_PATHS := DESTDIR=$(DESTDIR) PREFIX=$(PREFIX) LIBDIR=$(LIBDIR) BINDIR=$(BINDIR) \
               SBINDIR=$(SBINDIR) INCLUDEDIR=$(INCLUDEDIR)

.PHONY: install install-userspace install-man install-udev install-modules-load \
	install-dkms-src dkms-install dkms-uninstall deb

install: install-userspace install-man install-udev install-modules-load install-dkms-src

install-userspace:
	$(MAKE) -C $(REPO)/userspace install $(USERSPACE_PATHS)

install-man:
	@set -e; for m in $(MAN_PAGES); do \
		s=$${m##*.}; \
		install -d $(DESTDIR)$(MANDIR)/man$$s; \
		install -m 644 $(REPO)/Documentation/$$m $(DESTDIR)$(MANDIR)/man$$s/$$m; \
	done

install-udev:
	install -d $(DESTDIR)$(UDEVDIR)/rules.d
	install -m 644 $(REPO)/udev/60-umem.rules $(DESTDIR)$(UDEVDIR)/rules.d/60-umem.rules

install-modules-load:
	install -d $(DESTDIR)$(SYSCONFDIR)/modules-load.d
	@if [ "$(MODULES_LOAD)" = yes ]; then \
		sed 's/^#umem$$/umem/' $(REPO)/packaging/modules-load.conf; \
	else cat $(REPO)/packaging/modules-load.conf; fi \
		>$(DESTDIR)$(SYSCONFDIR)/modules-load.d/umem.conf
	@chmod 644 $(DESTDIR)$(SYSCONFDIR)/modules-load.d/umem.conf

# What DKMS builds from: the top-level Kbuild (it descends into kmod/),
# VERSION (kmod/Kbuild reads it), kmod/ and the uapi header.
install-dkms-src:
	install -d $(DESTDIR)$(DKMS_SRC)/kmod $(DESTDIR)$(DKMS_SRC)/uapi/linux
	install -m 644 $(REPO)/Kbuild $(REPO)/VERSION $(DESTDIR)$(DKMS_SRC)/
	sed 's/#MODULE_VERSION#/$(VERSION)/' $(REPO)/dkms.conf >$(DESTDIR)$(DKMS_SRC)/dkms.conf
	@chmod 644 $(DESTDIR)$(DKMS_SRC)/dkms.conf
	install -m 644 $(REPO)/kmod/Kbuild $(KMOD_SRCS) $(DESTDIR)$(DKMS_SRC)/kmod/
	install -m 644 $(REPO)/uapi/linux/umem.h $(DESTDIR)$(DKMS_SRC)/uapi/linux/

# Live on this system, never into a DESTDIR.
dkms-install:
	@$(PKG_ENV) DESTDIR="$(DESTDIR)" $(REPO)/packaging/dkms.sh preflight
	@$(MAKE) --no-print-directory -f $(REPO)/Makefile DESTDIR= \
		install-dkms-src install-udev install-modules-load
	@$(PKG_ENV) $(REPO)/packaging/dkms.sh install

dkms-uninstall:
	@$(PKG_ENV) DESTDIR="$(DESTDIR)" $(REPO)/packaging/dkms.sh uninstall

deb:
	@$(REPO)/packaging/mkdeb.sh
