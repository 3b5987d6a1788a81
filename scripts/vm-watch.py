#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Helpers of scripts/vm-run.sh: the KVM probe and the VM watchdog.

  vm-watch.py probe --qemu Q --kernel K --kver V [--cpus N] [--timeout S]
                    [--cache FILE]
      Can QEMU run kernel K under KVM?  Boots K (no root, no initrd) with
      -accel kvm -cpu host and its console on a serial file, and waits up
      to S seconds (default 10) for "Linux version" there.  Failure: QEMU
      exits first, prints "KVM internal error" / "emulation failure", or
      the kernel prints nothing in time.  Prints one line
      "ok|bad<TAB>reason<TAB>probed|cached" and exits 0 (ok) or 1 (bad).
      With --cache, the verdict is kept per boot of the host: one line
      "boot_id<TAB>kver<TAB>qemu<TAB>verdict<TAB>reason" per kernel and
      QEMU, lines of earlier boots are dropped when it is rewritten.

  vm-watch.py record --cache FILE --kver V --qemu Q --verdict bad --reason R
      Store a verdict found later (the real VM hit a KVM error).

  vm-watch.py run [--label L] [--timeout S] [--silent S] [--heartbeat FILE]
                  [--status FILE] -- CMD...
      Run CMD (vng) in its own session, copy its stdout and stderr to ours
      as they come, and kill its whole process group when
        * S seconds of --timeout passed                      "timeout"
        * for --silent S seconds nothing came on stdout or stderr and the
          heartbeat file (touched by the guest, see vm-run.sh) did not
          change                                              "silent"
        * a line has "KVM internal error" or starts with "emulation
          failure" (QEMU then stops the VM and waits forever) "kvm-error"
      Exits with CMD's status, or 124 after a kill (a message on stderr
      says why).  --status FILE gets "VERDICT started=0|1 REASON", VERDICT
      one of ok, timeout, silent, kvm-error; started=1 once the heartbeat
      file existed (the guest had begun to run the command).
"""

import argparse
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time

KVM_ERR_RE = re.compile(rb"KVM internal error[^\r\n]*|^emulation failure[^\r\n]*", re.M)
TIMED_OUT = 124


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown-boot"


def cache_read(path, kver, qemu):
    """The cached (verdict, reason) for kver and qemu in this boot, or None."""
    bid = boot_id()
    found = None
    try:
        with open(path, errors="replace") as f:
            for line in f:
                p = line.rstrip("\n").split("\t")
                if len(p) == 5 and p[0] == bid and p[1] == kver and p[2] == qemu \
                        and p[3] in ("ok", "bad"):
                    found = (p[3], p[4])
    except OSError:
        pass
    return found


def cache_write(path, kver, qemu, verdict, reason):
    bid = boot_id()
    keep = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                p = line.rstrip("\n").split("\t")
                if len(p) == 5 and p[0] == bid and not (p[1] == kver and p[2] == qemu):
                    keep.append(line.rstrip("\n"))
    except OSError:
        pass
    reason = reason.replace("\t", " ").replace("\n", " ")
    keep.append("\t".join([bid, kver, qemu, verdict, reason]))
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".kvm-probe.")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(keep) + "\n")
    os.replace(tmp, path)


def group_alive(pgid):
    """Is a process of group pgid still running (zombies do not count)?"""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in "ZX":
            return True
    return False


def kill_group(proc, grace=2.0):
    """SIGTERM the process group of proc, SIGKILL what is left after grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            break
        end = time.monotonic() + grace
        while time.monotonic() < end:
            proc.poll()
            if not group_alive(proc.pid):
                break
            time.sleep(0.05)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def why_exited(text, qemu):
    """QEMU's first complaint, without its "qemu-system-x86_64: " prefix."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    pick = next((l for l in lines
                 if re.search(r"error|fail|cannot|could not|not supported", l, re.I)),
                lines[-1] if lines else "")
    for prefix in (qemu + ": ", os.path.basename(qemu) + ": "):
        if pick.startswith(prefix):
            pick = pick[len(prefix):]
    return "QEMU: " + pick if pick else ""


def probe(args):
    if args.cache:
        c = cache_read(args.cache, args.kver, args.qemu)
        if c:
            print(f"{c[0]}\t{c[1]}\tcached")
            return 0 if c[0] == "ok" else 1
    verdict, reason = probe_boot(args)
    if args.cache:
        try:
            cache_write(args.cache, args.kver, args.qemu, verdict, reason)
        except OSError as e:
            print(f"vm-run: cannot write {args.cache}: {e}", file=sys.stderr)
    print(f"{verdict}\t{reason}\tprobed")
    return 0 if verdict == "ok" else 1


def probe_boot(args):
    with tempfile.TemporaryDirectory(prefix="vm-kvm-probe.") as d:
        serial = os.path.join(d, "serial")
        errlog = os.path.join(d, "qemu.log")
        cmd = [args.qemu, "-accel", "kvm", "-cpu", "host", "-m", "256M",
               "-smp", str(args.cpus), "-nodefaults", "-no-user-config",
               "-display", "none", "-vga", "none", "-no-reboot",
               "-serial", "file:" + serial, "-kernel", args.kernel,
               "-append", "console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 "
               "loglevel=8 panic=-1"]
        with open(errlog, "wb") as err:
            try:
                p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err,
                                     stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as e:
                return "bad", f"cannot run {args.qemu}: {e.strerror}"
        end = time.monotonic() + args.timeout
        verdict = None
        while verdict is None:
            time.sleep(0.05)
            out = open(errlog, "rb").read()
            m = KVM_ERR_RE.search(out)
            if m:
                verdict = ("bad", "QEMU: " + m.group(0).decode(errors="replace").strip())
                break
            con = open(serial, "rb").read() if os.path.exists(serial) else b""
            if b"Linux version" in con:
                verdict = ("ok", "the kernel printed 'Linux version' under KVM")
                break
            rc = p.poll()
            if rc is not None:
                out = open(errlog, "rb").read().decode(errors="replace")
                verdict = ("bad", why_exited(out, args.qemu) or
                           f"QEMU exited with status {rc} before the kernel printed "
                           "'Linux version'")
                break
            if time.monotonic() > end:
                verdict = ("bad", f"no 'Linux version' on its console within {args.timeout:g} s")
        kill_group(p, grace=0)
        return verdict


def record(args):
    cache_write(args.cache, args.kver, args.qemu, args.verdict, args.reason)
    return 0


class Stream:
    def __init__(self, fd, outfd):
        self.fd, self.outfd, self.tail, self.open = fd, outfd, b"", True


def run(args):
    label = args.label
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        print("vm-watch: no command", file=sys.stderr)
        return 2
    hb = args.heartbeat
    if hb:
        try:
            os.unlink(hb)
        except FileNotFoundError:
            pass

    verdict, reason = "ok", ""
    started = False
    hb_mtime = None

    def write_status():
        if args.status:
            with open(args.status, "w") as f:
                f.write(f"{verdict} started={int(started)} {reason}\n")

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    got_signal = []

    def on_signal(sig, _frame):
        got_signal.append(sig)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    sel = selectors.DefaultSelector()
    streams = []
    for pipe, outfd in ((proc.stdout, 1), (proc.stderr, 2)):
        st = Stream(pipe.fileno(), outfd)
        os.set_blocking(st.fd, False)
        sel.register(st.fd, selectors.EVENT_READ, st)
        streams.append(st)

    def pump(timeout):
        """Copy what is there; return True if anything came."""
        got = False
        for key, _ in sel.select(timeout):
            st = key.data
            try:
                data = os.read(st.fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(st.fd)
                st.open = False
                continue
            got = True
            try:
                view = memoryview(data)
                while view:
                    n = os.write(st.outfd, view)
                    view = view[n:]
            except BrokenPipeError:
                pass
            st.tail = (st.tail + data)[-8192:]
        return got

    def kvm_error():
        for st in streams:
            m = KVM_ERR_RE.search(st.tail)
            if m:
                return m.group(0).decode(errors="replace").strip()
        return None

    t0 = time.monotonic()
    last = t0
    while any(st.open for st in streams) or proc.poll() is None:
        if not any(st.open for st in streams):
            # output closed but the child lives on: just wait for it
            time.sleep(0.2)
        elif pump(0.25):
            last = time.monotonic()
        now = time.monotonic()
        if hb:
            try:
                m = os.stat(hb).st_mtime_ns
                started = True
                if m != hb_mtime:
                    hb_mtime, last = m, now
            except OSError:
                pass
        if got_signal:
            verdict, reason = "signal", f"got signal {got_signal[0]}"
            break
        err = kvm_error()
        if err:
            verdict = "kvm-error"
            reason = f"QEMU reported \"{err}\"; killed the VM"
            break
        if args.timeout and now - t0 > args.timeout:
            verdict = "timeout"
            reason = f"still running after {args.timeout:g} s (VM_TIMEOUT); killed the VM"
            break
        if args.silent and now - last > args.silent:
            verdict = "silent"
            what = ("no output and no heartbeat from the guest" if started else
                    "no output, and the guest never started its command,")
            reason = (f"{what} for {args.silent:g} s (VM_SILENT_TIMEOUT); killed the VM")
            break
        if proc.poll() is not None and any(st.open for st in streams):
            # the child is gone; something it left behind may hold the
            # pipes open: give it a moment, then stop copying
            end = time.monotonic() + 3
            while any(st.open for st in streams) and time.monotonic() < end:
                pump(0.2)
            if any(st.open for st in streams):
                kill_group(proc, grace=0)
            break

    if verdict != "ok":
        kill_group(proc)
        # copy what was still in the pipes (the KVM register dump)
        end = time.monotonic() + 2
        while any(st.open for st in streams) and time.monotonic() < end:
            pump(0.1)
        if verdict != "signal":
            print(f"{label}: {reason}", file=sys.stderr, flush=True)
        write_status()
        if verdict == "signal":
            return 128 + got_signal[0]
        return TIMED_OUT
    rc = proc.wait()
    # vng is gone: whatever is left in its group is debris (in a real
    # guest the power-off ends it), do not leave it running
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    write_status()
    return rc if rc >= 0 else 128 - rc


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--qemu", required=True)
    p.add_argument("--kernel", required=True)
    p.add_argument("--kver", required=True)
    p.add_argument("--cpus", type=int, default=1)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--cache")
    r = sub.add_parser("record")
    r.add_argument("--cache", required=True)
    r.add_argument("--kver", required=True)
    r.add_argument("--qemu", required=True)
    r.add_argument("--verdict", choices=("ok", "bad"), required=True)
    r.add_argument("--reason", default="")
    w = sub.add_parser("run")
    w.add_argument("--label", default="vm-run")
    w.add_argument("--timeout", type=float, default=0)
    w.add_argument("--silent", type=float, default=0)
    w.add_argument("--heartbeat")
    w.add_argument("--status")
    w.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    return {"probe": probe, "record": record, "run": run}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
