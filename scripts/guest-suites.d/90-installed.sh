#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# guest-suite-timeout: 1500
# umem as a user gets it (issue 15), inside the guest as root, cwd = repo
# root: the Debian packages of build/deb/ (make deb, on the host; make
# check depends on it) installed with dpkg, DKMS building the module for
# the running kernel from umem-dkms's postinst, modprobe loading it,
# /dev/umem root:umem 0660 by the packaged udev rule while a region's node
# keeps its creator and creation mode, a migration by the installed umemd
# and umem-vmm as an unprivileged member of group umem (root only enters
# the network namespaces), the libumem(3) example built against the
# installed libumem.pc, and a purge that leaves nothing behind.
#
# Where the packages go: the guest's /usr, /etc and /var are virtme-ng's
# writable overlays, whose writes would stay for the suites that run
# after this one.  So the suite stacks overlays of its own on /usr (hence
# /lib, /lib/modules), /etc and /var, their upper layers in a tmpfs, in
# the initial mount namespace, so that udevd, modprobe and the kernel's
# module loader see the installed files as on a real machine.  Their
# upper layers are exactly what dpkg and DKMS wrote: after the purge they
# must hold no file with "umem" in its name.  At the end the overlays are
# unmounted (lazily: a daemon may hold a file open), which undoes
# everything, udev reloads its rules, and the module guest-check.sh had
# loaded (build/mod-KVER/umem.ko, removed at the start) is loaded again.
#
# Time: under TCG, on a root filesystem served over 9p, what costs is
# reading thousands of files.  So, in the overlays only (undone at the
# end):
#   - only the running kernel's headers stay visible (the other kernels'
#     /lib/modules/KVER/build links are hidden), as on a machine with one
#     kernel: umem-dkms's postinst would otherwise build a second time,
#     for the newest kernel;
#   - depmod skips the kernel's own modules (/etc/depmod.d: exclude
#     kernel): each of DKMS's depmod runs (install, remove) took 2-5
#     minutes over the 4000 modules of a Debian kernel.  modprobe, modinfo
#     and DKMS work as they do on any machine, on a modules.dep that lists
#     updates/dkms/umem.ko only; veth (the migration's network) is loaded
#     first.  INSTALLED_FULL_DEPMOD=1 keeps the whole index;
#   - dpkg runs with --no-triggers: ldconfig over 9p took 1-2 minutes, and
#     libumem.so.0 is found in the multiarch directory without the cache;
#     man-db's trigger is off too.  INSTALLED_TRIGGERS=1 runs them.
# What is left is DKMS compiling the module under TCG: 2.5 of the
# suite's 4.5 minutes to 8 of 12 on a 2-core host running one other VM,
# as that VM's load went.  Hence one
# kernel only in make check (see "which kernel" below); on the others the
# suite is one skip.  dpkg's output, each line with its second, is kept
# in build/results/KVER/installed-dpkg-{install,purge}.log.
set -u
cd "$(dirname "$0")/../.." || exit 1
. userspace/tests/suite-lib.sh

KVER=${KVER:-$(uname -r)}
VERSION=$(cat VERSION)
KO=$PWD/build/mod-$KVER/umem.ko
DEBDIR=$PWD/build/deb
# dpkg's output, each line with its second: build/results/KVER/ under
# guest-check.sh (make check), else build/.
LOGDIR=${UMEM_RESULTS:-$PWD/build}
TUSER=umemtest		# a member of group umem
OUTSIDER=umemout	# not one
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DEBIAN_FRONTEND=noninteractive
T0=$(date +%s)
step() { echo "# [$(( $(date +%s) - T0 )) s] $*"; }

# ------------------------------------------------------------ which kernel
# One kernel only, by default: the DKMS build under TCG is minutes, and
# what the suite tests (the packages, DKMS, udev, modprobe) does not
# depend on the kernel once the module builds, which build-mod.sh checks
# on every kernel.  make check picks the oldest kernel that is not
# PREEMPT_RT, Debian 12's default (the Makefile's INSTALLED_KVERS), so that
# this long suite does not run in the same VM as the main kernel's QEMU
# suites; run by hand, the default is the newest that is not PREEMPT_RT
# (as in the Makefile and lint.sh).  INSTALLED_KVERS (make check forwards
# it to the guests): "all", or kernel versions separated by spaces.  On
# the others the suite reports one skip, never a pass.
DEFAULT_KVER=$(ls -d /lib/modules/*/build 2>/dev/null | sed -e 's@^/lib/modules/@@' -e 's@/build$@@' |
	sort -rV | awk '!/-rt-/ && !k { k = $0 } { a = a ? a : $0 } END { print k ? k : a }')
case " ${INSTALLED_KVERS:-$DEFAULT_KVER} " in
*" all "* | *" $KVER "*) ;;
*)
	t_skip "installed packages are tested on ${INSTALLED_KVERS:-$DEFAULT_KVER} only (INSTALLED_KVERS=all: every kernel)"
	t_done
	;;
esac

# ------------------------------------------------------------ preconditions
DEBS=()
for p in umem-dkms libumem0 libumem-dev umemd; do
	f=$(ls "$DEBDIR/${p}_${VERSION}_"*.deb 2>/dev/null | head -n 1)
	if [ -z "$f" ]; then
		t_fail "$DEBDIR/${p}_${VERSION}_*.deb missing: run make deb on the host (make check does)"
		t_done
	fi
	DEBS+=("$f")
done
for c in dpkg dkms modprobe udevadm setpriv pkg-config cc; do
	command -v "$c" >/dev/null || { t_fail "$c not installed in the guest (make deps)"; t_done; }
done
if [ ! -e "/lib/modules/$KVER/build/include" ]; then
	t_fail "no headers for $KVER in /lib/modules/$KVER/build: DKMS cannot build"
	t_done
fi

SCR=$(mktemp -d /tmp/umem-installed.XXXXXX)
MOUNTED=()
LOADED_BEFORE=0
RESTORED=0
restore() {
	[ $RESTORED = 1 ] && return 0
	RESTORED=1
	mig_netns_down 2>/dev/null
	pkill -u "$TUSER" 2>/dev/null
	[ -d /sys/module/umem ] && rmmod umem 2>/dev/null
	local i
	for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
		umount -l "${MOUNTED[i]}" 2>/dev/null
	done
	MOUNTED=()
	umount -l "$SCR" 2>/dev/null
	rm -rf "$SCR"
	command -v udevadm >/dev/null && udevadm control --reload 2>/dev/null
	if [ $LOADED_BEFORE = 1 ] && [ ! -d /sys/module/umem ]; then
		insmod "$KO" && wait_for /dev/umem 5
	fi
}
trap restore EXIT

# ------------------------------------------------------------ the module guest-check.sh loaded
if [ -d /sys/module/umem ]; then
	LOADED_BEFORE=1
	out=$(rmmod umem 2>&1)
	t_check $? "rmmod the module guest-check.sh loaded from build/mod-$KVER ${out:+($out)}"
fi
[ -d /sys/module/umem ] && { t_fail "umem still loaded"; t_done; }

# ------------------------------------------------------------ overlays
# The migration's veth pair needs veth: load it while modules.dep is whole.
modprobe veth 2>/dev/null
mount -t tmpfs -o mode=0755 umem-installed "$SCR" || { t_fail "tmpfs on $SCR"; t_done; }
ok=0
for d in /usr /etc /var; do
	n=${d//\//_}
	mkdir -p "$SCR/up$n" "$SCR/work$n"
	if mount -t overlay "umem-installed$n" \
		-o "lowerdir=$d,upperdir=$SCR/up$n,workdir=$SCR/work$n" "$d"; then
		MOUNTED+=("$d")
	else
		ok=1
	fi
done
t_check $ok "overlays of the suite's own on /usr, /etc, /var (upper layers in a tmpfs)"
[ $ok = 0 ] || t_done
for b in /lib/modules/*/build; do
	[ "$b" = "/lib/modules/$KVER/build" ] || rm -f "$b"
done
rm -f /var/lib/man-db/auto-update
mkdir -p /var/lib/dkms /var/log /var/cache/debconf
if [ "${INSTALLED_FULL_DEPMOD:-0}" != 1 ]; then
	mkdir -p /etc/depmod.d
	echo "exclude kernel	# 90-installed.sh: only the DKMS module (see the suite)" \
		>/etc/depmod.d/zz-90-installed-test.conf
fi
DPKG_OPTS=(--no-triggers)
[ "${INSTALLED_TRIGGERS:-0}" = 1 ] && DPKG_OPTS=()
# Each line of a slow command's output with the seconds since it began.
stamp() {
	local t0 now l
	printf -v t0 '%(%s)T' -1
	while IFS= read -r l; do
		printf -v now '%(%s)T' -1
		printf '%4d %s\n' $((now - t0)) "$l"
	done
}

# ------------------------------------------------------------ install
step "dpkg -i ${DEBS[*]##*/}"
t1=$(date +%s)
dpkg "${DPKG_OPTS[@]}" -i "${DEBS[@]}" 2>&1 | stamp >"$LOGDIR/installed-dpkg-install.log"
rc=${PIPESTATUS[0]}
t_check $rc "dpkg ${DPKG_OPTS[*]} -i the four packages; umem-dkms's postinst ran DKMS ($(( $(date +%s) - t1 )) s)"
if [ $rc -ne 0 ]; then
	tail -n 30 "$LOGDIR/installed-dpkg-install.log" | sed 's/^/#   /'
	cat /var/lib/dkms/umem/"$VERSION"/build/make.log 2>/dev/null | tail -n 20 | sed 's/^/#   make.log: /'
	restore
	t_done
fi
grep -E "^ *[0-9]+ (Setting up|Loading new|Building for|Building initial module|Done\.|Module build for kernel|.*Installing to|Running depmod|depmod\.*)" \
	"$LOGDIR/installed-dpkg-install.log" | sed 's/^/#   [s] /'
status=$(dkms status -m umem -v "$VERSION" -k "$KVER" 2>/dev/null)
[[ "$status" == *installed* ]]
t_check $? "dkms status: $status"
getent group umem >/dev/null
t_check $? "postinst created the system group umem ($(getent group umem))"
ko=$(ls /lib/modules/"$KVER"/updates/dkms/umem.ko* 2>/dev/null | head -n 1)
[ -n "$ko" ]
t_check $? "module installed in /lib/modules/$KVER/updates/dkms (${ko##*/})"
bad=""
for f in /usr/sbin/umemd /usr/sbin/umemctl /usr/bin/umem-vmm /usr/include/libumem.h \
	/usr/include/linux/umem.h /lib/udev/rules.d/60-umem.rules /etc/modules-load.d/umem.conf \
	"/usr/src/umem-$VERSION/dkms.conf"; do
	[ -e "$f" ] || bad+=" $f"
done
for m in umemd.8 umemctl.8 umem-vmm.1 umem.4 libumem.3; do
	man -w "${m##*.}" "${m%.*}" >/dev/null 2>&1 || bad+=" man:$m"
done
[ -z "$bad" ]
t_check $? "binaries, headers, udev rule, modules-load.d, DKMS source and man pages in place${bad:+ (missing:$bad)}"
! grep -qE '^[[:space:]]*umem' /etc/modules-load.d/umem.conf
t_check $? "modules-load.d/umem.conf ships commented out (the module loads at boot only once enabled)"

# ------------------------------------------------------------ versions
bad=""
for b in umemd umemctl umem-vmm; do
	v=$("$b" --version 2>&1)
	[ "$v" = "$b (umem) $VERSION" ] || bad+=" $b:'$v'"
done
pv=$(pkg-config --modversion libumem 2>&1)
[ "$pv" = "$VERSION" ] || bad+=" pkg-config:'$pv'"
[ -z "$bad" ]
t_check $? "umemd, umemctl, umem-vmm --version and pkg-config --modversion libumem say $VERSION${bad:+ (not:$bad)}"

# ------------------------------------------------------------ modprobe, udev
step "modprobe umem"
out=$(modprobe umem 2>&1)
rc=$?
t_check $rc "modprobe umem ${out:+($out)}"
info=$(modinfo umem 2>&1)
fn=$(sed -n 's/^filename: *//p' <<<"$info")
ver=$(sed -n 's/^version: *//p' <<<"$info")
lic=$(sed -n 's/^license: *//p' <<<"$info")
desc=$(sed -n 's/^description: *//p' <<<"$info")
[ "$ver" = "$VERSION" ] && [ "$lic" = GPL ] && [ -n "$desc" ] &&
	grep -q '^parm: *max_user_size:' <<<"$info" && [[ "$fn" == */updates/dkms/umem.ko* ]]
t_check $? "modinfo umem: ${fn#/lib/modules/}, version $ver, license $lic, parm max_user_size"
if [ $rc -ne 0 ]; then
	restore
	t_done
fi
wait_for /dev/umem 5
udevadm settle --timeout=30 2>/dev/null
if pgrep -x systemd-udevd >/dev/null; then
	how="udevd applied 60-umem.rules"
else
	# No udevd: let udev's rule engine say what it would do, and do it.
	how="udevadm test (no udevd running)"
	t=$(udevadm test /sys/class/misc/umem 2>&1)
	grep -q "GROUP" <<<"$t" && chgrp umem /dev/umem && chmod 0660 /dev/umem
fi
st=$(stat -c '%G %a %U' /dev/umem 2>/dev/null)
[ "$st" = "umem 660 root" ]
t_check $? "/dev/umem is root:umem 0660 ($st; $how)"

# ------------------------------------------------------------ users
useradd -M -N -g users -G umem -s /bin/sh "$TUSER" &&
	useradd -M -N -g users -s /bin/sh "$OUTSIDER"
t_check $? "users $TUSER (in group umem) and $OUTSIDER (not)"
as() { local u=$1; shift; setpriv --reuid="$u" --regid=users --init-groups -- "$@"; }
chmod 0755 "$SCR"
mkdir -m 0777 "$SCR/user"

# A region's node belongs to its creator with the mode it asked for: the
# rule must leave it alone, also when udev processes it again.
cat >"$SCR/user/hold.py" <<'PY'
import fcntl, os, signal, struct, sys
IOWR = lambda nr, size: (3 << 30) | (size << 16) | (0xB9 << 8) | nr
ctl = os.open("/dev/umem", os.O_RDWR)
arg = bytearray(struct.pack("<QII32sII24xIi", 16 * 4096, 4096, 0,
                            sys.argv[1].encode(), 0o640, 0, 0, 0))
sfd = fcntl.ioctl(ctl, IOWR(0x01, 88), arg)
print("ready", flush=True)
signal.pause()
PY
if command -v python3 >/dev/null; then
	# Not through as(): $! must be python's pid (setpriv execs it), not
	# that of a subshell running the function, so that kill ends it.
	setpriv --reuid="$TUSER" --regid=users --init-groups -- \
		python3 "$SCR/user/hold.py" "inst$$" >"$SCR/hold.out" 2>&1 &
	hp=$!
	for _ in $(seq 100); do grep -q ready "$SCR/hold.out" && break; sleep 0.1; done
	udevadm settle --timeout=10 2>/dev/null
	s1=$(stat -c '%U:%G %a' "/dev/umem-inst$$" 2>&1)
	udevadm trigger --action=change "/sys/class/umem/umem-inst$$" 2>/dev/null
	udevadm settle --timeout=10 2>/dev/null
	s2=$(stat -c '%U:%G %a' "/dev/umem-inst$$" 2>&1)
	kill "$hp" 2>/dev/null
	wait "$hp" 2>/dev/null
	[ "$s1" = "$TUSER:users 640" ] && [ "$s2" = "$s1" ]
	t_check $? "a region node keeps its creator and node_mode 0640 ($s1; after a udev change event: $s2)"
else
	t_fail "python3 missing (make deps): region node ownership not checked"
fi

# ------------------------------------------------------------ the libumem(3) example
step "the libumem(3) example"
EX=/usr/share/doc/libumem-dev/examples/libumem-example.c
[ -f "$EX" ] || EX=$PWD/Documentation/examples/libumem-example.c
flags=$(pkg-config --cflags --libs libumem)
# shellcheck disable=SC2086
cc -Wall -Wextra -Werror -o "$SCR/user/libumem-example" "$EX" $flags -pthread 2>"$SCR/cc.err"
t_check $? "libumem-example.c (${EX#/usr/share/doc/}) builds with pkg-config --cflags --libs libumem ($flags)"
sed 's/^/#   /' "$SCR/cc.err"
ldd "$SCR/user/libumem-example" 2>/dev/null | grep -qE 'libumem.so.0 => (/usr)?/lib/'
t_check $? "it runs on the installed libumem.so.0 ($(ldd "$SCR/user/libumem-example" 2>/dev/null | grep -o 'libumem.so.0 => [^ ]*'))"
out=$(as "$TUSER" "$SCR/user/libumem-example" umem 2>&1)
t_check $? "as $TUSER (group umem), umem backend: $out"
out=$(as "$OUTSIDER" "$SCR/user/libumem-example" umem 2>&1)
rc=$?
[ $rc -ne 0 ] && grep -q "Permission denied" <<<"$out"
t_check $? "as $OUTSIDER (not in group umem): refused ($out)"

# ------------------------------------------------------------ a migration
step "a migration by the installed umemd and umem-vmm, as $TUSER"
BIN=$SCR/bin
mkdir -p "$BIN"
ln -s /usr/sbin/umemd /usr/bin/umem-vmm "$BIN/"
WORK=$SCR/user/mig
mkdir -m 0777 "$WORK"
SIZE=${INSTALLED_TEST_SIZE:-16M}
TMO=120
. userspace/tests/migrate-lib.sh
if mig_netns_up inst 10.90.0 visrc vidst; then
	# root enters the namespaces; umemd and umem-vmm run as the user.
	SRC_RUN="$SRC_RUN setpriv --reuid=$TUSER --regid=users --init-groups --"
	DST_RUN="$DST_RUN setpriv --reuid=$TUSER --regid=users --init-groups --"
	mig_full "installed umemd + umem-vmm as $TUSER, umem backend, two network namespaces" \
		umem "" "" "--threads 2 --pattern random --duration 1 --verify-all" true
	mig_netns_down
else
	t_fail "network namespaces / veth unavailable: migration not run"
fi
left=$(ls /dev/umem-* 2>/dev/null)
[ -z "$left" ]
t_check $? "no /dev/umem-* node left behind${left:+ ($(echo $left))}"

# ------------------------------------------------------------ uninstall
step "dpkg --purge"
rmmod umem 2>/dev/null
t1=$(date +%s)
dpkg "${DPKG_OPTS[@]}" --purge umemd libumem-dev libumem0 umem-dkms 2>&1 | stamp >"$LOGDIR/installed-dpkg-purge.log"
rc=${PIPESTATUS[0]}
t_check $rc "dpkg ${DPKG_OPTS[*]} --purge the four packages ($(( $(date +%s) - t1 )) s)"
[ $rc -eq 0 ] || tail -n 20 "$LOGDIR/installed-dpkg-purge.log" | sed 's/^/#   /'
st=$(dkms status -m umem 2>/dev/null)
[ -z "$st" ] && ! modinfo umem >/dev/null 2>&1 && [ ! -e "/usr/src/umem-$VERSION" ]
t_check $? "DKMS forgot umem, modinfo umem finds nothing, /usr/src/umem-$VERSION is gone${st:+ ($st)}"
# Everything dpkg and DKMS wrote is in the upper layers: no file may be
# left whose path names umem (the group in /etc/group stays, by design).
leftover=$(cd "$SCR" && find up_usr up_etc up_var \( -type f -o -type l \) -path '*umem*' \
	-not -path 'up_var/log/*' | head -n 10)
[ -z "$leftover" ]
t_check $? "the purge left no umem file in /usr, /etc, /var${leftover:+: $(echo $leftover)}"
getent group umem >/dev/null
t_check $? "the system group umem stays after the purge (files may belong to it)"

# ------------------------------------------------------------ back as it was
step "restoring"
restore
ok=0
[ $LOADED_BEFORE = 0 ] || { [ -d /sys/module/umem ] && [ -c /dev/umem ]; } || ok=1
! grep -q '^umem-installed' /proc/mounts || ok=1
[ ! -e /usr/sbin/umemd ] || ok=1
t_check $ok "overlays gone, build/mod-$KVER/umem.ko loaded again as guest-check.sh had it"
step "done"
t_done
