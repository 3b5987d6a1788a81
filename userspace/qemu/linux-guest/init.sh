#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the Linux guest's initramfs (userspace/qemu/linux-guest): load
# the virtio modules listed in /lib/modules/order (appended at run time for
# the kernel that boots, see mkinitramfs.py), bring the virtio NIC up (its
# receive ring then holds buffers in guest RAM), and run the workload with
# the kernel command line's mib=, print= (init's environment).
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo 0 >/proc/sys/vm/compact_unevictable_allowed 2>/dev/null
if [ -f /lib/modules/order ]; then
	for m in $(cat /lib/modules/order); do
		insmod "/lib/modules/$m" || echo "init: insmod $m failed"
	done
else
	echo "init: no /lib/modules/order: no virtio modules in this initramfs"
fi
ip link set lo up
for n in /sys/class/net/*; do
	[ -e "$n/device/driver" ] && ip link set "${n##*/}" up
done
devs=
for d in /sys/bus/virtio/devices/*; do
	[ -e "$d/driver" ] && devs="$devs ${d##*/}:$(basename "$(readlink "$d/driver")")"
done
echo "umem-linux-guest: kernel $(uname -r), $(grep MemTotal /proc/meminfo | tr -s ' '), virtio:${devs:- none}, hwrng $(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)"
/workload
echo "FAIL: the workload exited (status $?)"
poweroff -f
