#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""mkinitramfs.py - the Linux guest's initramfs, in two parts.

  mkinitramfs.py base OUT --busybox /bin/busybox --workload W --init init.sh
      at make time: /init, /bin/busybox, /workload and /dev/console in a
      newc cpio archive (written here: no cpio tool, no root for the
      device node).
  mkinitramfs.py modules OUT [--kver K] MODULE...
      at run time, in the VM, for the kernel that boots (default: uname -r):
      MODULE and what it depends on (modules.dep), decompressed (.ko.xz,
      .ko.gz, .ko.zst if python3 can), in load order, as
      /lib/modules/NAME.ko plus /lib/modules/order for /init.  A MODULE
      built into the kernel (modules.builtin) is left out.

The kernel unpacks concatenated archives, so the initrd is
cat base.cpio modules.cpio.  Single-threaded.
"""

import argparse
import gzip
import lzma
import os
import sys


class Cpio:
    """A newc ("070701") archive writer."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0))
        self.ino += 1
        self.f.write(hdr.encode() + name_b)
        self.f.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.f.write(data)
        self.f.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._entry(name, 0o040755)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def close(self):
        self._entry("TRAILER!!!", 0)
        self.f.close()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def base(a):
    c = Cpio(a.out)
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.file("bin/busybox", read(a.busybox), 0o755)
    c.file("init", read(a.init), 0o755)
    c.file("workload", read(a.workload), 0o755)
    c.close()


def decompress(path):
    data = read(path)
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        try:
            import zstandard  # noqa: PLC0415 - optional
        except ImportError:
            sys.exit(f"mkinitramfs: {path}: python3-zstandard needed")
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=64 << 20)
    return data


def modname(path):
    return os.path.basename(path).split(".ko")[0].replace("-", "_")


def modules(a):
    kver = a.kver or os.uname().release
    top = f"/lib/modules/{kver}"
    deps, byname = {}, {}
    with open(f"{top}/modules.dep") as f:
        for line in f:
            mod, _, rest = line.partition(":")
            deps[mod] = rest.split()
            byname[modname(mod)] = mod
    builtin = set()
    try:
        with open(f"{top}/modules.builtin") as f:
            builtin = {modname(l.strip()) for l in f}
    except OSError:
        pass
    order = []

    def add(mod):
        if mod in order:
            return
        # modules.dep lists every (indirect) dependency, nearest first
        for d in reversed(deps.get(mod, [])):
            add(d)
        order.append(mod)

    for name in a.names:
        n = name.replace("-", "_")
        if n in builtin:
            continue
        if n not in byname:
            sys.exit(f"mkinitramfs: no module {name} for {kver} ({top}/modules.dep)")
        add(byname[n])
    c = Cpio(a.out)
    for mod in order:
        c.file(f"lib/modules/{modname(mod)}.ko", decompress(f"{top}/{mod}"))
    c.file("lib/modules/order", "".join(f"{modname(m)}.ko\n" for m in order).encode())
    c.close()
    print(f"{a.out}: {kver}: {' '.join(modname(m) for m in order) or '(all built in)'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("base")
    b.add_argument("out")
    b.add_argument("--busybox", default="/bin/busybox")
    b.add_argument("--workload", required=True)
    b.add_argument("--init", required=True)
    m = sub.add_parser("modules")
    m.add_argument("out")
    m.add_argument("--kver")
    m.add_argument("names", nargs="+")
    a = ap.parse_args()
    base(a) if a.cmd == "base" else modules(a)


if __name__ == "__main__":
    main()
