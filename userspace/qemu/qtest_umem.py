#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""qtest_umem.py - drive an unmodified QEMU whose guest RAM is a umem region.

QEMU (Debian's 7.2 has no -accel qtest) is started as

    qemu-system-x86_64 -accel tcg -S -M none -cpu qemu64
        -global qemu64-x86_64-cpu.apic-id=0 -nodefaults -display none
        -qtest unix:SOCK,server=on,wait=off -qtest-log none
        -qmp unix:QMP,server=on,wait=off
        -object memory-backend-file,id=mem0,size=SIZE,mem-path=MEM,share=on
        -machine memory-backend=mem0

and this client talks the qtest protocol (readq/writeq/b64read) and QMP
(pmemsave, human-monitor-command) to it.  Every check is compared with
the source image (the file umemd --outgoing serves).  Output: TAP lines,
then "N passed, N failed"; exit status 0 only if nothing failed.

Steps (all bounded by timeouts):
  1. QEMU maps MEM (a /dev/umem-* path must be a character device before
     and after: QEMU silently creates a regular file at a missing path),
     and startup faults no page; --resume-pid then lets the source run;
  2. random reads (readq + b64read of whole pages) while pages are missing;
  3. writes (writeq, write) to missing pages, read back;
  4. QMP and HMP pmemsave over ranges at the top of RAM, partly missing;
  5. /proc/QEMU/mem read of the same kind (get_user_pages_remote): a
     missing page fails the read with EIO at once (the remote fault may
     not wait on the daemon under QEMU's mmap_lock) and queues its
     request, so the reader retries from there, as a debugger would;
  6. optional: wait for the migration (--wait-pid) and pmemsave all of RAM;
     it must equal the image except where step 3 wrote, and the writes
     must have survived the background transfer.
"""

import argparse
import errno
import base64
import json
import os
import random
import select
import shutil
import signal
import stat
import socket
import subprocess
import sys
import tempfile
import time

PAGE = 4096


class Tap:
    def __init__(self):
        self.n = self.passed = self.failed = 0

    def ok(self, cond, desc, diag=None):
        self.n += 1
        if cond:
            self.passed += 1
            print(f"ok {self.n} - {desc}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {desc}", flush=True)
            if diag:
                for line in str(diag).splitlines()[:20]:
                    print(f"#   {line}", flush=True)
        return cond

    def diag(self, msg):
        print(f"# {msg}", flush=True)

    def done(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 else 1


class Timeout(Exception):
    pass


class LineSock:
    """A unix stream socket read line by line with a deadline per call."""

    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        self.sock.sendall(data)

    def readline(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("no answer within %.0f s" % (timeout or self.timeout))
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed by QEMU")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def close(self):
        self.sock.close()


class QTest:
    def __init__(self, path, timeout):
        self.s = LineSock(path, timeout)

    def cmd(self, line, timeout=None):
        self.s.send((line + "\n").encode())
        while True:
            ans = self.s.readline(timeout)
            if ans.startswith("IRQ"):
                continue
            if not ans.startswith("OK"):
                raise RuntimeError(f"qtest {line.split()[0]}: {ans}")
            return ans[2:].strip()

    def readq(self, addr, timeout=None):
        return int(self.cmd(f"readq 0x{addr:x}", timeout), 16)

    def writeq(self, addr, val):
        self.cmd(f"writeq 0x{addr:x} 0x{val:x}")

    def b64read(self, addr, size, timeout=None):
        return base64.b64decode(self.cmd(f"b64read 0x{addr:x} 0x{size:x}", timeout))

    def write(self, addr, data):
        self.cmd(f"write 0x{addr:x} 0x{len(data):x} 0x{data.hex()}")


class QMP:
    """QMP over a unix socket; keeps the events it reads.  Errors are
    raised as self.error (a subclass may pick its own exception)."""

    error = RuntimeError

    def __init__(self, path, timeout):
        self.s = LineSock(path, timeout)
        self.events = []
        greeting = json.loads(self.s.readline())
        if "QMP" not in greeting:
            raise self.error(f"bad QMP greeting {greeting}")
        self.execute("qmp_capabilities")

    def execute(self, cmd, timeout=None, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.s.send((json.dumps(msg) + "\n").encode())
        while True:
            ans = json.loads(self.s.readline(timeout))
            if "event" in ans:
                self.events.append(ans)
                continue
            if "error" in ans:
                raise self.error(f"QMP {cmd}: {ans['error'].get('desc')}")
            return ans.get("return")

    def hmp(self, line, timeout=None):
        return self.execute("human-monitor-command", timeout, **{"command-line": line})



def read_remote(pid, addr, length, timeout):
    """Read another process's memory through /proc/PID/mem.  A missing umem
    page gives EIO (or a short read) at once and its request is queued:
    retry from where the read stopped until the page has arrived."""
    end = time.monotonic() + timeout
    out = bytearray()
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        while len(out) < length:
            try:
                chunk = os.pread(fd, length - len(out), addr + len(out))
            except OSError as e:
                if e.errno != errno.EIO or time.monotonic() > end:
                    raise
                chunk = b""
            out += chunk
            if not chunk:
                if time.monotonic() > end:
                    raise TimeoutError(f"/proc/{pid}/mem stuck at {addr + len(out):#x}")
                time.sleep(0.01)
    finally:
        os.close(fd)
    return bytes(out)

def wait_path(path, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of someone else still answers kill(0): look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def find_mapping(pid, mem_path, size):
    """QEMU's mapping of guest RAM: (start, length, name, rss_kib).

    Matched by path, else (the kernel may name the vma after the file it
    really maps) as the one shared mapping of exactly the RAM size."""
    try:
        with open(f"/proc/{pid}/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None, 0, None, None
    maps = []
    for i, line in enumerate(lines):
        parts = line.split()
        if len(parts) < 5 or "-" not in parts[0] or ":" in parts[0]:
            continue
        try:
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
        except ValueError:
            continue
        name = " ".join(parts[5:])
        rss = None
        for l2 in lines[i + 1:i + 30]:
            if l2.startswith("Rss:"):
                rss = int(l2.split()[1])
                break
        maps.append((lo - int(parts[2], 16), hi - lo, name, rss, parts[1]))
    for m in maps:
        if m[2] == mem_path:
            return m[:4]
    cand = [m for m in maps if m[1] == size and m[4].endswith("s")]
    if len(cand) == 1:
        return cand[0][:4]
    return None, 0, None, None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64") or "qemu-system-x86_64")
    ap.add_argument("--mem-path", required=True, help="/dev/umem-NAME (or any file)")
    ap.add_argument("--image", required=True, help="source image to compare with")
    ap.add_argument("--reads", type=int, default=64, help="random page reads")
    ap.add_argument("--writes", type=int, default=16, help="page writes")
    ap.add_argument("--pmem-size", default="2M", help="pmemsave range (top of RAM)")
    ap.add_argument("--wait-pid", type=int, default=0,
                    help="umemd --incoming pid: wait for it to finish, then verify all RAM")
    ap.add_argument("--resume-pid", type=int, default=0,
                    help="SIGCONT this (stopped) umemd --outgoing once QEMU has mapped RAM")
    ap.add_argument("--seed", type=int, default=1, help="random address seed")
    ap.add_argument("--timeout", type=float, default=30, help="per-operation timeout (s)")
    ap.add_argument("--start-timeout", type=float, default=60, help="QEMU startup timeout (s)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    t = Tap()
    size = os.path.getsize(args.image)
    npages = size // PAGE
    pmem = parse_size(args.pmem_size)
    rnd = random.Random(args.seed)
    work = args.workdir or tempfile.mkdtemp(prefix="qtest-umem.")
    os.makedirs(work, exist_ok=True)
    qsock, msock = f"{work}/qtest.sock", f"{work}/qmp.sock"
    img = open(args.image, "rb")

    def image(addr, n):
        img.seek(addr)
        return img.read(n)

    def node_id():
        try:
            st = os.stat(args.mem_path)
        except OSError:
            return None
        return (stat.S_ISCHR(st.st_mode), st.st_rdev, st.st_ino)

    node0 = node_id()
    if args.mem_path.startswith("/dev/umem-") and not (node0 and node0[0]):
        # QEMU would create a regular file there and run on it silently.
        t.ok(False, f"{args.mem_path} is a umem character device", f"stat: {node0}")
        return t.done()

    cmd = [args.qemu, "-accel", "tcg", "-S", "-M", "none", "-cpu", "qemu64",
           "-global", "qemu64-x86_64-cpu.apic-id=0", "-nodefaults", "-display", "none",
           "-qtest", f"unix:{qsock},server=on,wait=off", "-qtest-log", "none",
           "-qmp", f"unix:{msock},server=on,wait=off",
           "-object", f"memory-backend-file,id=mem0,size={size},mem-path={args.mem_path},share=on",
           "-machine", "memory-backend=mem0"]
    t.diag(" ".join(cmd))
    qlog = open(f"{work}/qemu.log", "w")
    qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qlog, stderr=subprocess.STDOUT,
                            start_new_session=True)
    qt = qmp = None
    tq = time.monotonic()
    written = {}  # addr -> bytes written (8-byte aligned spans)

    def qemu_log():
        try:
            with open(f"{work}/qemu.log") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    try:
        # QEMU's own startup can take many seconds under nested TCG.
        up = wait_path(qsock, args.start_timeout) and wait_path(msock, args.start_timeout)
        if up:
            try:
                qt = QTest(qsock, args.timeout)
                qmp = QMP(msock, args.timeout)
            except (OSError, Timeout, EOFError, RuntimeError) as e:
                up = False
                print(f"# {e}")
        if not t.ok(up and qemu.poll() is None,
                    "QEMU started with memory-backend-file mem-path=%s,share=on (%.1f s)"
                    % (args.mem_path, time.monotonic() - tq),
                    f"QEMU exit status {qemu.poll()}, log:\n{qemu_log()}"):
            return t.done()
        start, maplen, mname, rss0 = find_mapping(qemu.pid, args.mem_path, size)
        t.ok(start is not None and maplen == size,
             f"QEMU maps guest RAM MAP_SHARED, {maplen >> 20} MiB "
             f"(/proc/PID/maps names it {mname!r})")
        t.diag(f"resident after startup: {rss0} KiB of {size >> 10} KiB")
        if node0 and node0[0]:
            t.ok(node_id() == node0, f"{args.mem_path} is still the same character device "
                 "(QEMU opened the region, it did not create a file)", f"{node0} -> {node_id()}")
        t.ok(rss0 is not None and rss0 < size // 1024 // 2,
             f"startup does not populate guest RAM (Rss {rss0} KiB)")

        if args.resume_pid:
            os.kill(args.resume_pid, signal.SIGCONT)
            t.diag(f"umemd --outgoing (pid {args.resume_pid}) resumed")

        # 2. random reads; the pmemsave range (top of RAM) is left untouched.
        pmem_lo = size - pmem
        lim = pmem_lo // PAGE
        pages = rnd.sample(range(lim), min(args.reads, lim))
        bad = []
        t0 = time.monotonic()
        for i, pg in enumerate(pages):
            addr = pg * PAGE
            if i % 2 == 0:
                off = rnd.randrange(0, PAGE, 8)
                got = qt.readq(addr + off).to_bytes(8, "little")
                want = image(addr + off, 8)
            else:
                got = qt.b64read(addr, PAGE)
                want = image(addr, PAGE)
            if got != want:
                bad.append(f"page {pg}: got {got[:16].hex()} want {want[:16].hex()}")
        dt = time.monotonic() - t0
        t.ok(not bad, f"{len(pages)} random reads (readq, b64read of whole pages) "
             f"match the image ({dt:.2f} s)", "\n".join(bad[:10]))

        # 3. writes to other random pages, read back.
        rest = [p for p in range(lim) if p not in set(pages)]
        wpages = rnd.sample(rest, min(args.writes, len(rest)))
        bad = []
        for i, pg in enumerate(wpages):
            addr = pg * PAGE + rnd.randrange(0, PAGE - 64, 8)
            if i % 2 == 0:
                val = rnd.getrandbits(64)
                qt.writeq(addr, val)
                data = val.to_bytes(8, "little")
            else:
                data = rnd.randbytes(32)
                qt.write(addr, data)
            written[addr] = data
            # the rest of the page must be the image's
            got = qt.b64read(pg * PAGE, PAGE)
            want = bytearray(image(pg * PAGE, PAGE))
            o = addr - pg * PAGE
            want[o:o + len(data)] = data
            if got != bytes(want):
                bad.append(f"page {pg}: after write at +{o:#x} page differs")
        t.ok(not bad, f"{len(wpages)} writes (writeq, write) to missing pages: "
             "written bytes and the rest of each page correct", "\n".join(bad[:10]))

        # 4. pmemsave over the top of RAM: touch a few pages there first so
        #    the range is partly present, partly missing.
        for k in range(0, pmem // PAGE, 64):
            qt.readq(pmem_lo + k * PAGE)
        still = alive(args.wait_pid) if args.wait_pid else None
        t.diag(f"pmemsave starts {time.monotonic() - tq:.1f} s after QEMU started; "
               f"umemd --incoming {'still running' if still else 'done or not watched'}")
        out = f"{work}/pmem.bin"
        t0 = time.monotonic()
        err = None
        try:
            qmp.execute("pmemsave", args.timeout * 2, val=pmem_lo, size=pmem, filename=out)
        except (RuntimeError, Timeout, EOFError, OSError) as e:
            err = e
        dt = time.monotonic() - t0
        ok = err is None and os.path.exists(out) and open(out, "rb").read() == image(pmem_lo, pmem)
        t.ok(ok, f"QMP pmemsave of {pmem >> 10} KiB at {pmem_lo:#x}, partly missing"
             f"{' (umemd still transferring)' if still else ''}: file equals the image "
             f"({dt:.2f} s)", err)
        # The same through HMP, on the range just below.
        lo2 = pmem_lo - pmem
        out2 = f"{work}/pmem-hmp.bin"
        err = None
        try:
            # quoted: the HMP expression parser reads "SIZE /path" as a division
            r = qmp.hmp(f'pmemsave {lo2:#x} {pmem:#x} "{out2}"', args.timeout * 2)
            if r:
                err = r
        except (RuntimeError, Timeout, EOFError, OSError) as e:
            err = e
        want = bytearray(image(lo2, pmem))
        for a, d in written.items():
            if lo2 <= a < lo2 + pmem:
                want[a - lo2:a - lo2 + len(d)] = d
        ok = err is None and os.path.exists(out2) and open(out2, "rb").read() == bytes(want)
        t.ok(ok, f"HMP pmemsave of {pmem >> 10} KiB at {lo2:#x}: file equals the image", err)

        # 5. Another process reads QEMU's guest RAM through /proc/PID/mem
        #    (access_remote_vm -> get_user_pages_remote) where pages are
        #    still missing: the last pages below the pmemsave ranges.
        lo3 = lo2 - pmem
        err, got = None, b""
        if start is None:
            err = "guest RAM mapping not found in /proc/PID/smaps"
        else:
            try:
                got = read_remote(qemu.pid, start + lo3, pmem, args.timeout)
            except OSError as e:
                err = e
        want = bytearray(image(lo3, pmem))
        for a, d in written.items():
            if lo3 <= a < lo3 + pmem:
                want[a - lo3:a - lo3 + len(d)] = d
        t.ok(err is None and got == bytes(want),
             f"/proc/QEMU/mem read of {pmem >> 10} KiB at guest {lo3:#x} (GUP, remote) "
             "equals the image", err)

        # 6. the end of the migration, then all of RAM.
        if args.wait_pid:
            end = time.monotonic() + args.timeout * 4
            while alive(args.wait_pid) and time.monotonic() < end:
                time.sleep(0.1)
            t.ok(not alive(args.wait_pid), "umemd --incoming finished the migration "
                 f"({time.monotonic() - tq:.1f} s after QEMU started)")
            out3 = f"{work}/all.bin"
            err = None
            try:
                qmp.execute("pmemsave", args.timeout * 4, val=0, size=size, filename=out3)
            except (RuntimeError, Timeout, EOFError, OSError) as e:
                err = e
            bad = []
            if err is None:
                with open(out3, "rb") as f:
                    for a, d in written.items():
                        f.seek(a)
                        if f.read(len(d)) != d:
                            bad.append(f"write at {a:#x} lost")
                    f.seek(0)
                    img.seek(0)
                    pos = 0
                    while True:
                        a = f.read(1 << 20)
                        b = img.read(1 << 20)
                        if not a and not b:
                            break
                        if a != b:
                            for p in range(0, max(len(a), len(b)), PAGE):
                                pa = pos + p
                                ga, gb = a[p:p + PAGE], b[p:p + PAGE]
                                if ga != gb and not any(pa <= w < pa + PAGE for w in written):
                                    bad.append(f"page {pa // PAGE} differs")
                        pos += len(b)
            t.ok(err is None and not bad, "after the migration: pmemsave of all "
                 f"{size >> 20} MiB equals the image, and every write survived", err or
                 "\n".join(bad[:10]))
            rss1 = find_mapping(qemu.pid, args.mem_path, size)[3]
            t.diag(f"resident after full read: {rss1} KiB")

        try:
            qmp.execute("quit", 5)
        except (RuntimeError, Timeout, EOFError, OSError):
            pass
        try:
            rc = qemu.wait(args.timeout)
        except subprocess.TimeoutExpired:
            rc = None
        t.ok(rc is not None, f"QEMU quit cleanly (exit {rc})", qemu_log())
    except (Timeout, EOFError, RuntimeError, OSError) as e:
        t.ok(False, f"qtest session aborted: {type(e).__name__}: {e}", qemu_log())
    finally:
        if args.resume_pid:
            try:
                os.kill(args.resume_pid, signal.SIGCONT)
            except OSError:
                pass
        if qemu.poll() is None:
            os.killpg(qemu.pid, signal.SIGKILL)
            qemu.wait()
        qlog.close()
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return t.done()


def parse_size(s):
    s = str(s).strip()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:].upper(), 1)
    return int(s[:-1] if mult > 1 else s) * mult


if __name__ == "__main__":
    sys.exit(main())
