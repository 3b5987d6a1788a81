#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""qemu_migrate.py - migrate a running QEMU guest, RAM by umem or by QEMU.

Runs two unmodified qemu-system-x86_64 (TCG, -M pc) on the tiny test guest
(userspace/qemu/guest: it fills its RAM with a known pattern and keeps
verifying and rewriting it, printing "pass G: P pages, M mismatches, total
T" on its serial port), and migrates the guest from one to the other.

--mode umem (needs the umem module, run as root):
  source QEMU: RAM in memory-backend-file mem-path=/dev/shm/FILE,share=on;
  umemd --incoming --backend umem --name NAME creates /dev/umem-NAME when
  umemd --outgoing --ram /dev/shm/FILE has connected; umemd --outgoing
  runs with --stop-cmd, which blocks until the source QEMU has stopped, so
  no page leaves before the guest's last write; the destination QEMU maps
  /dev/umem-NAME (share=on) and waits with -incoming defer; both QEMUs
  have capability x-ignore-shared, so QEMU's own migration carries the
  device state only.  Then QMP migrate on the running source: QEMU stops
  it at the end (STOP event), this script lets umemd go, and the
  destination starts the guest by itself, which runs while its pages
  arrive.  --stop-first instead: QMP stop, umemd, migrate, QMP cont.

--mode postcopy [--preempt]: QEMU's own postcopy (postcopy-ram, and
  postcopy-preempt with --preempt) between two QEMUs with anonymous RAM
  (memory-backend-ram): migrate, then migrate-start-postcopy at once.

--huge: 2 MiB pages.  umem: umemd --outgoing --page-size 2m (the
  destination's region has 2 MiB pages) and the destination QEMU maps the
  node with align=2M; after the migration the node's mapping in the
  destination QEMU must be PMD-mapped in full (/proc/PID/smaps
  ShmemPmdMapped = RAM size, reported as dst_pmd_kb).  postcopy: both
  QEMUs' RAM on a hugetlbfs mount of this script's (memory-backend-file
  mem-path=DIR, share=off; QEMU's postcopy needs the same page size on both
  sides), huge pages reserved for both and given back at the end;
  dst_hugetlb_kb reports the destination's hugetlb mapping.

--linux VMLINUZ --initrd FILE: a real Linux guest instead of the test
  guest (userspace/qemu/linux-guest): that kernel and initramfs, console on
  the serial port, a virtio-rng and a virtio-net device (user networking,
  link up: its receive ring holds buffers in guest RAM), and the workload
  program checking --workload-mib MiB with per-page checksums; it prints
  the same "pass" and "MISMATCH" lines as the test guest, and "FAIL: ..."
  before it powers the guest off on a mismatch.  --boot-timeout bounds its
  boot.  QEMU loads the device state of the virtio devices (their rings
  are in guest RAM) on the destination before the guest runs again.

Both modes wait for --passes-before verify passes on the source first and
for --passes-after passes on the destination after the RAM transfer ended.
Output: a log with timestamps, then one line "RESULT {json}".  Exit status
0 only if the migration completed, the guest reported no mismatch and it
kept running (made --passes-after passes) after the RAM transfer ended.
"""

import argparse
import errno
import json
import os
import re
import signal
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True   # the repo is read-only in the test VMs
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qtest_umem  # noqa: E402
from qtest_umem import Timeout  # noqa: E402

PASS_RE = re.compile(r"^pass (\d+): (\d+) pages, (\d+) mismatches, total (\d+)")
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:7.2f} s] {msg}", flush=True)


class Fail(Exception):
    pass


class QMP(qtest_umem.QMP):
    """qtest_umem's QMP client, failing with Fail, plus event helpers."""

    error = Fail

    def poll_events(self, secs=0.0):
        """Read the events that arrive within @secs."""
        end = time.monotonic() + secs
        while True:
            try:
                line = self.s.readline(max(end - time.monotonic(), 0.001))
            except Timeout:
                return
            ans = json.loads(line)
            if "event" in ans:
                self.events.append(ans)

    def event_time(self, name, status=None):
        """Wall-clock time (s) of the first event @name (MIGRATION: @status)."""
        for e in self.events:
            if e["event"] == name and (status is None or e.get("data", {}).get("status") == status):
                ts = e["timestamp"]
                return ts["seconds"] + ts["microseconds"] / 1e6
        return None


class Serial:
    """The guest's serial log: pass lines and mismatches."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.buf = ""
        self.last_pass = 0
        self.total_bad = 0
        self.pages = 0
        self.mismatches = []
        self.fails = []
        self.lines = []

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return self
        self.pos += len(data)
        self.buf += data.decode(errors="replace").replace("\r", "")
        *full, self.buf = self.buf.split("\n")
        for line in full:
            self.lines.append((time.monotonic(), line))
            m = PASS_RE.match(line)
            if m:
                self.last_pass = int(m.group(1))
                self.pages = int(m.group(2))
                self.total_bad = int(m.group(4))
            elif line.startswith("MISMATCH"):
                self.mismatches.append(line)
            elif line.startswith("FAIL"):
                self.fails.append(line)
        return self


class VcpuClock:
    """Where the destination's vCPU threads spent a stretch of wall time,
    measured the same way for umem and for QEMU's own postcopy: each
    thread's /proc/PID/task/TID/schedstat (time on a CPU, time runnable
    but waiting for one) sampled every 10 ms.  The rest of the wall time
    the thread slept: a TCG vCPU running a guest that never idles sleeps
    only while it waits for a page (or while the VM is paused, which is
    why the window starts at RESUME)."""

    STEP = 0.01

    def __init__(self, pid, pin=None, perf=None):
        self.pid = pid
        self.pin = pin          # a CPU for the vCPU threads (--pin-vcpu)
        self.perf_p = perf      # perf record of the whole machine (--perf-vcpu)
        self.tids = []
        self.cpus = set()       # where the vCPU threads may run
        # (wall time, run ns, runnable-waiting ns, minflt, majflt,
        #  voluntary and involuntary context switches, TLB shootdowns)
        self.samples = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def find(self):
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            with open(f"/proc/{self.pid}/task/{tid}/comm") as f:
                if re.match(r"CPU \d+/", f.read()):
                    self.tids.append(tid)
                    if self.pin is not None:
                        os.sched_setaffinity(int(tid), {self.pin})
                    self.cpus |= os.sched_getaffinity(int(tid))

    @staticmethod
    def tlb_shootdowns():
        """The machine's TLB shootdown interrupts so far (/proc/interrupts
        row TLB, summed over CPUs; 0 where there is none)."""
        try:
            with open("/proc/interrupts") as f:
                for line in f:
                    v = line.split()
                    if v and v[0] == "TLB:":
                        return sum(int(x) for x in v[1:] if x.isdigit())
        except OSError:
            pass
        return 0

    def sample(self):
        run = wait = minflt = majflt = vcsw = ivcsw = 0
        for tid in self.tids:
            with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                v = f.read().split()
            run, wait = run + int(v[0]), wait + int(v[1])
            with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()   # after "(CPU 0/TCG)"
            minflt, majflt = minflt + int(v[7]), majflt + int(v[9])
            with open(f"/proc/{self.pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vcsw += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        ivcsw += int(line.split()[1])
        self.samples.append((time.time(), run, wait, minflt, majflt, vcsw, ivcsw,
                             self.tlb_shootdowns()))

    def loop(self):
        try:
            while not self.stop.is_set():
                if not self.tids:
                    self.find()         # QEMU names them at machine init
                    if not self.tids:
                        self.stop.wait(self.STEP)
                        continue
                self.sample()
                self.stop.wait(self.STEP)
        except (OSError, ValueError, IndexError):
            pass                # the QEMU went away

    def window(self, t0, t1):
        """{window_ms, run_ms, runq_ms, sleep_ms, minflt, majflt, nvcsw,
        nivcsw, tlb_shootdowns} between wall times @t0 and @t1 (the samples
        inside them), or None.  The fault counts are the threads' own
        (/proc/PID/task/TID/stat), as the kernel counts them: on 6.12 the
        faults that waited for a page came out minor for both umem and
        userfaultfd.  nvcsw and nivcsw are the threads' voluntary and
        involuntary context switches (/proc/PID/task/TID/status); cpus the
        CPUs they may run on (--pin-vcpu);
        tlb_shootdowns counts the whole machine's TLB shootdown interrupts
        (/proc/interrupts), each of which flushes a TLB entry or the TLB on
        the CPU it hits."""
        self.stop.set()
        self.thread.join()
        if self.perf_p:
            self.perf_p.send_signal(signal.SIGINT)
            self.perf_p.wait()
        if not t0 or not t1 or not self.tids:
            return None
        s = [x for x in self.samples if t0 <= x[0] <= t1]
        if len(s) < 2:
            return None
        (ta, ra, wa, mina, maja, va, ia, sa), (tb, rb, wb, minb, majb, vb, ib, sb) = s[0], s[-1]
        wall, run, runq = (tb - ta) * 1e3, (rb - ra) / 1e6, (wb - wa) / 1e6
        mono = time.monotonic() - time.time()
        return {"vcpus": len(self.tids), "tids": [int(t) for t in self.tids],
                "cpus": sorted(self.cpus),
                # the window on CLOCK_MONOTONIC (perf record -k monotonic)
                "window_mono_s": [round(ta + mono, 6), round(tb + mono, 6)],
                "window_ms": round(wall, 1), "run_ms": round(run, 1),
                "runq_ms": round(runq, 1),
                "sleep_ms": round(max(0.0, wall * len(self.tids) - run - runq), 1),
                "minflt": minb - mina, "majflt": majb - maja,
                "nvcsw": vb - va, "nivcsw": ib - ia, "tlb_shootdowns": sb - sa}


class Run:
    def __init__(self, a):
        # qemu_snapshot.py's Run has no Linux guest options
        for k, v in (("linux", None), ("initrd", None), ("workload_mib", 32),
                     ("boot_timeout", 0)):
            if not hasattr(a, k):
                setattr(a, k, v)
        self.a = a
        self.procs = []
        self.work = a.workdir
        os.makedirs(self.work, exist_ok=True)
        self.size = a.mib << 20
        self.pages = self.size // 4096
        self.res = {"mode": a.mode, "preempt": a.preempt, "ram_mib": a.mib,
                    "guest_mib": a.workload_mib if a.linux else a.mib - 2,
                    "guest_kind": "linux" if a.linux else "test", "pages": self.pages,
                    "huge": a.huge, "ok": False, "error": ""}
        self.serials = {}
        self.hugetlbfs = None
        self.hp_old = None

    # ---- 2 MiB pages
    def hugetlb_up(self):
        """A hugetlbfs mount and enough 2 MiB pages for two QEMUs."""
        path = "/proc/sys/vm/nr_hugepages"
        with open(path) as f:
            self.hp_old = int(f.read())
        need = 2 * (self.size >> 21) + 4
        with open(path, "w") as f:
            f.write(str(self.hp_old + need))
        with open("/proc/meminfo") as f:
            free = next(int(l.split()[1]) for l in f if l.startswith("HugePages_Free"))
        if free < need:
            raise Fail(f"only {free} free 2 MiB huge pages, {need} needed")
        d = f"{self.work}/hugetlbfs"
        os.makedirs(d, exist_ok=True)
        subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", d], check=True)
        self.hugetlbfs = d
        log(f"hugetlbfs at {d}, {need} huge pages reserved (was {self.hp_old})")

    def hugetlb_down(self):
        if self.hugetlbfs:
            subprocess.run(["umount", self.hugetlbfs], check=False)
            self.hugetlbfs = None
        if self.hp_old is not None:
            with open("/proc/sys/vm/nr_hugepages", "w") as f:
                f.write(str(self.hp_old))
            self.hp_old = None

    @staticmethod
    def smaps_kb(pid, match, field):
        """Sum of FIELD (kB) over the vmas of PID whose line contains MATCH."""
        total, inside = 0, False
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split(None, 1)[0]
                if "-" in head and not head.endswith(":"):
                    inside = match in line
                elif inside and line.startswith(field + ":"):
                    total += int(line.split()[1])
        return total

    # ---- processes
    def spawn(self, name, cmd, ns=None, stdout=None, stderr=None):
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        out = open(stdout or f"{self.work}/{name}.out", "w")
        err = open(stderr or f"{self.work}/{name}.err", "w")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             start_new_session=True)
        p.name = name
        self.procs.append(p)
        return p

    def kill_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def wait_until(self, what, cond, secs, procs=(), step=0.05):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            v = cond()
            if v:
                return v
            for p in procs:
                if p.poll() is not None:
                    raise Fail(f"{what}: {p.name} exited with status {p.returncode} "
                               f"({self.tail(p.name)})")
            time.sleep(step)
        raise Fail(f"{what}: not within {secs:.0f} s")

    def tail(self, name, n=3):
        out = []
        for ext in ("err", "out"):
            try:
                with open(f"{self.work}/{name}.{ext}") as f:
                    out += [l.strip() for l in f.read().splitlines() if l.strip()][-n:]
            except OSError:
                pass
        return " | ".join(out[-n:])

    # ---- QEMU
    def qemu(self, side, backend, incoming, ns, prefix=(), extra=()):
        """Start QEMU (@prefix: a wrapper command before it, e.g. umemctl
        create ... --; @extra: more QEMU options) and connect to its QMP."""
        a = self.a
        qmp = f"{self.work}/{side}.qmp"
        serial = f"{self.work}/{side}.serial"
        for f in (qmp, serial):
            if os.path.exists(f):
                os.unlink(f)
        # The Linux guest goes without cmpxchg16b: its SLUB allocator uses it
        # on every slab fast path, and QEMU 7.2's TCG, nested in the TCG
        # test VM, now and then got it wrong (a double fault right after
        # the instruction with impossible EFLAGS; also on a guest booted
        # from plain /dev/shm, so not the RAM's backend).  Without cx16
        # SLUB takes its locked path.  Source and destination must match.
        cpu = "qemu64,cx16=off" if a.linux else "qemu64"
        cmd = [a.qemu, "-accel", "tcg", "-M", "pc", "-cpu", cpu, "-m", f"{a.mib}M",
               "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
               # named threads (CPU 0/TCG, live_migration, postcopy/fault, ...)
               # for per-thread CPU time and profiles
               "-name", f"{side},debug-threads=on",
               "-object", backend, "-machine", "memory-backend=ram0"]
        if a.linux:
            cmd += ["-kernel", a.linux, "-initrd", a.initrd, "-append",
                    f"console=ttyS0 quiet panic=-1 no_timer_check mib={a.workload_mib} "
                    f"print={a.print_every}",
                    "-device", "virtio-rng-pci", "-netdev", "user,id=net0",
                    "-device", "virtio-net-pci,netdev=net0"]
        else:
            cmd += ["-kernel", a.guest, "-append", f"mib={a.mib - 2} print={a.print_every}"]
        cmd += ["-serial", f"file:{serial}", "-qmp", f"unix:{qmp},server=on,wait=off"]
        if incoming:
            cmd += ["-incoming", "defer"]
        cmd = list(prefix) + cmd + list(extra)
        log(f"{side} QEMU: {' '.join(cmd)}")
        p = self.spawn(f"qemu-{side}", cmd, ns)
        t = time.monotonic()
        qs = []

        def connect():
            # the socket file appears at bind(), before QEMU listens
            try:
                qs.append(QMP(qmp, a.timeout))
                return True
            except (FileNotFoundError, ConnectionRefusedError):
                return False
        self.wait_until(f"{side} QEMU's QMP socket", connect, a.start_timeout, [p])
        q = qs[0]
        log(f"{side} QEMU up (pid {p.pid}, {time.monotonic() - t:.1f} s)")
        self.serials[side] = Serial(serial)
        return p, q, self.serials[side]

    def caps(self, q, names):
        have = {c["capability"] for c in q.execute("query-migrate-capabilities")}
        missing = [n for n in names if n not in have]
        if missing:
            raise Fail(f"this QEMU lacks migration capabilities {missing}")
        q.execute("migrate-set-capabilities",
                  capabilities=[{"capability": n, "state": True} for n in names])

    def wait_passes(self, side, ser, n, secs, procs):
        """@n more pass lines on @ser.  Before its first pass line a serial
        says pass 0, and the first line's number (a restored or migrated
        guest goes on counting) is not a pass made since: then the first
        line counts as one of the @n."""
        start = ser.update().last_pass

        def enough():
            nonlocal start
            last = ser.update().last_pass
            if not start and last:
                start = last - 1
            return last >= start + n
        self.wait_until(f"{n} verify passes on the {side}", enough, secs, procs)
        return ser.last_pass

    def migrate_status(self, q):
        return (q.execute("query-migrate") or {}).get("status", "none")

    def wait_migrated(self, qs, qd, procs):
        """Source migration completed, destination received it."""
        def done():
            st = self.migrate_status(qs)
            if st in ("failed", "cancelled"):
                raise Fail(f"source migration {st}: {qs.execute('query-migrate').get('error-desc', '')}")
            return st == "completed"
        self.wait_until("QEMU migration completed on the source", done, self.a.timeout * 4, procs,
                        0.01)

        def dest_done():
            st = self.migrate_status(qd)
            if st == "failed":
                raise Fail("destination: incoming migration failed")
            return st == "completed"
        self.wait_until("incoming migration completed on the destination", dest_done,
                        self.a.timeout, procs, 0.01)

    # ---- the two flows
    def run_umem(self):
        a = self.a
        name = f"qm{os.getpid()}"
        node = f"/dev/umem-{name}"
        ram = f"/dev/shm/umem-qemu-{os.getpid()}.ram"
        self.ramfile = ram
        with open(ram, "wb") as f:
            f.truncate(self.size)
        qs_p, qs, ss = self.qemu(
            "source", f"memory-backend-file,id=ram0,size={a.mib}M,mem-path={ram},share=on",
            False, a.src_ns)
        self.qs = qs
        n = self.wait_passes("source", ss, a.passes_before, a.timeout * 2 + a.boot_timeout,
                             [qs_p])
        log(f"source guest is at pass {n}: {ss.lines[0][1] if ss.lines else ''}")

        # umemd pair; the source's --stop-cmd blocks until we stop QEMU: it
        # says it is ready (a file), then reads one byte from a FIFO.
        req, fifo = f"{self.work}/stop-requested", f"{self.work}/stopped.fifo"
        for f in (req, fifo):
            if os.path.exists(f):
                os.unlink(f)
        os.mkfifo(fifo, 0o600)
        stop_cmd = (f"touch {req} && [ \"$(timeout {int(a.timeout * 10)} head -c 1 {fifo})\" = g ]")
        dst = [a.umemd, "--incoming", "--listen", f"{a.dst_addr}:{a.port}", "--backend", "umem",
               "--name", name, "--json", "--progress", "--latency-log", f"{self.work}/latency.ns"
               ] + a.umemd_dst_opt
        installed = f"{self.work}/installed.ram"
        if a.check_pages:
            dst[2:2] = ["--test-page-copy", installed]
            self.pagecopy = installed   # RAM-sized: removed after each run
        src = [a.umemd, "--outgoing", "--ram", ram, "--connect", f"{a.dst_addr}:{a.port}",
               "--connect-wait", "20", "--stop-cmd", stop_cmd, "--json"] + a.umemd_src_opt
        if a.huge:
            src[2:2] = ["--page-size", "2m"]
        log(f"destination: {' '.join(dst)}")
        ud = self.spawn("umemd-dst", dst, a.dst_ns, stdout=f"{self.work}/umemd-dst.json")
        time.sleep(0.3)
        log(f"source: {' '.join(src[:-3 - len(a.umemd_src_opt)])} --stop-cmd '...' --json "
            f"{' '.join(a.umemd_src_opt)}")
        us = self.spawn("umemd-src", src, a.src_ns, stdout=f"{self.work}/umemd-src.json")

        def is_node():
            try:
                return stat.S_ISCHR(os.stat(node).st_mode)
            except OSError:
                return False
        self.wait_until(f"{node} (created by umemd --incoming)", is_node, 30, [ud, us])
        hold = os.open(node, os.O_RDWR)   # keeps the region while QEMU starts
        log(f"{node} exists ({self.size >> 20} MiB); umemd --outgoing waits in --stop-cmd")
        try:
            qd_p, qd, ds = self.qemu(
                "destination",
                f"memory-backend-file,id=ram0,size={a.mib}M,mem-path={node},share=on"
                + (",align=2M" if a.huge else ""),
                True, a.dst_ns)
            self.qd = qd
            self.vclock = VcpuClock(qd_p.pid, a.pin_vcpu, self.perf_p)
            maps = open(f"/proc/{qd_p.pid}/maps").read()
            if f"umem-{name}" not in maps or not is_node():
                raise Fail(f"destination QEMU did not map {node}")
            log(f"destination QEMU maps the region: "
                f"{[l.split()[-2] + ' ' + l.split()[-1] for l in maps.splitlines() if name in l][0]}")
        finally:
            os.close(hold)
        self.caps(qd, ["x-ignore-shared", "events"])
        qd.execute("migrate-incoming", uri=f"tcp:{a.dst_addr}:{a.qport}")
        self.caps(qs, ["x-ignore-shared", "events"])
        self.wait_until("umemd --outgoing ready (in --stop-cmd)", lambda: os.path.exists(req),
                        30, [ud, us])

        procs = [qs_p, qd_p, ud]
        last_src = ss.update().last_pass
        if a.stop_first:
            log(f"QMP stop on the source (guest at pass {last_src}), let umemd serve RAM, "
                "QMP migrate (device state), QMP cont on the destination")
            t_stop = time.monotonic()
            qs.execute("stop")
        else:
            log(f"QMP migrate (device state) from the running source (guest at pass {last_src}); "
                "umemd serves RAM once QEMU has stopped the source")
            t_stop = None
            qs.execute("migrate", uri=f"tcp:{a.dst_addr}:{a.qport}")

            def stopped():
                qs.poll_events(0.005)
                if qs.event_time("STOP"):
                    return True
                if self.migrate_status(qs) in ("failed", "cancelled"):
                    raise Fail("source migration failed before the source stopped")
                return False
            self.wait_until("the source QEMU stopped by its migration", stopped,
                            a.timeout * 2, procs, 0.0)
            t_stop = time.monotonic()
        if a.test_corrupt is not None:
            # (testing) change one slot of guest page N in the stopped
            # source's RAM: the destination guest must report it.  The
            # Linux guest's workload says where its page 0 is (N is then
            # pages past it: only 0 is sure to be in place).
            base = 0x200000
            if a.linux:
                m = next((re.search(r"page 0 at guest-physical 0x([0-9a-f]+)", l)
                          for _, l in ss.lines if "guest-physical" in l), None)
                if not m or int(m.group(1), 16) == 0:
                    raise Fail("--test-corrupt: the workload did not say where its page 0 is")
                base = int(m.group(1), 16)
            with open(ram, "r+b") as f:
                f.seek(base + a.test_corrupt * 4096 + 3 * 512)
                f.write(b"\xde\xad\xbe\xef" * 2)
            log(f"(test) corrupted guest page {a.test_corrupt} (0x{base + a.test_corrupt * 4096:x}) "
                "in the source's RAM file")
        self.release(fifo, t_stop)
        if a.stop_first:
            qs.execute("migrate", uri=f"tcp:{a.dst_addr}:{a.qport}")
        self.wait_migrated(qs, qd, procs)
        st = qd.execute("query-status")["status"]
        if st != "running":
            # The guest has not run on the destination yet: every request
            # so far came from QEMU's own loading of the device state
            # (e.g. virtio rings in guest RAM).  umemd's progress line
            # comes every 250 ms.
            time.sleep(0.3)
            m = re.search(r"(\d+) requests", self.umemd_progress())
            self.res["requests_before_run"] = int(m.group(1)) if m else None
            log(f"destination loaded the device state, guest not yet running: "
                f"{self.res['requests_before_run']} page requests so far")
            qd.execute("cont")
        t_run = time.monotonic()
        qs.poll_events(0.2)
        qd.poll_events(0.2)
        self.res["downtime_ms"] = self.downtime(qs, qd, t_run - t_stop)
        log(f"destination runs ({'was ' + repr(st) + ', QMP cont' if st != 'running' else 'started by QEMU'}); "
            f"downtime {self.res['downtime_ms']:.0f} ms (source STOP -> destination RESUME)")
        ms = qs.execute("query-migrate")
        self.res["qemu_device_state_bytes"] = ms.get("ram", {}).get("transferred")
        self.res["qemu_migrate_total_ms"] = ms.get("total-time")

        # The RAM transfer; the guest verifies meanwhile.
        last = 0
        end = time.monotonic() + a.timeout * 10
        while ud.poll() is None:
            if time.monotonic() > end:
                raise Fail("umemd --incoming did not finish in time")
            for p in (qs_p, qd_p):
                if p.poll() is not None:
                    raise Fail(f"{p.name} exited ({p.returncode}): {self.tail(p.name)}")
            if ds.update().last_pass != last:
                last = ds.last_pass
                log(f"destination guest: pass {last}, mismatches total {ds.total_bad}"
                    f"{self.umemd_progress()}")
            time.sleep(0.02)
        t_done, t_done_wall = time.monotonic(), time.time()
        # from the STOP event (wall clock, as QMP timestamps are) if there is one
        t_ev = qs.event_time("STOP")
        self.res["ram_done_ms"] = ((t_done_wall - t_ev) if t_ev else (t_done - t_stop)) * 1e3
        self.res["pass_at_ram_done"] = ds.update().last_pass
        self.res["vcpu"] = self.vclock.window(qd.event_time("RESUME"), t_done_wall)
        log(f"umemd --incoming done (exit {ud.returncode}) {self.res['ram_done_ms'] / 1e3:.2f} s "
            "after the stop; "
            f"guest at pass {ds.last_pass}")
        try:
            us.wait(a.timeout)
        except subprocess.TimeoutExpired:
            raise Fail("umemd --outgoing did not exit after the destination finished")
        self.res["umemd_dst"] = self.read_json("umemd-dst.json")
        self.res["umemd_src"] = self.read_json("umemd-src.json")
        # In umem mode the preempt channel is umemd's (negotiated), not --preempt.
        self.res["preempt"] = bool((self.res["umemd_dst"] or {}).get("preempt"))
        self.res["umemd_dst_exit"] = ud.returncode
        self.res["umemd_src_exit"] = us.returncode
        if a.check_pages:
            self.check_pages(ram, installed, 2 << 20 if a.huge else 4096)
        self.finish(ss, ds, qd_p, [qs_p, qd_p])
        if a.huge:
            kb = self.smaps_kb(qd_p.pid, f"umem-{name}", "ShmemPmdMapped") + \
                self.smaps_kb(qd_p.pid, f"umem-{name}", "FilePmdMapped")
            self.res["dst_pmd_kb"] = kb
            log(f"destination QEMU's mapping of {node}: {kb} kB PMD-mapped "
                f"of {self.size >> 10} kB")
            if kb != self.size >> 10:
                self.res["ok"] = False
                self.res["error"] = self.res["error"] or \
                    f"destination RAM not PMD-mapped in full ({kb} of {self.size >> 10} kB)"


    def run_postcopy(self):
        a = self.a
        backend = f"memory-backend-ram,id=ram0,size={a.mib}M"
        if a.huge:
            self.hugetlb_up()
            backend = (f"memory-backend-file,id=ram0,size={a.mib}M,"
                       f"mem-path={self.hugetlbfs},share=off")
        qs_p, qs, ss = self.qemu("source", backend, False, a.src_ns)
        self.qs = qs
        n = self.wait_passes("source", ss, a.passes_before, a.timeout * 2 + a.boot_timeout,
                             [qs_p])
        log(f"source guest is at pass {n}")
        qd_p, qd, ds = self.qemu("destination", backend, True, a.dst_ns)
        self.qd = qd
        vclock = VcpuClock(qd_p.pid, a.pin_vcpu, self.perf_p)
        caps = ["postcopy-ram", "events"] + (["postcopy-preempt"] if a.preempt else [])
        self.caps(qd, caps + ["postcopy-blocktime"])
        qd.execute("migrate-incoming", uri=f"tcp:{a.dst_addr}:{a.qport}")
        self.caps(qs, caps)
        log(f"capabilities {', '.join(caps)} (+ postcopy-blocktime on the destination)")
        last_src = ss.update().last_pass
        log(f"migrate + migrate-start-postcopy (source guest at pass {last_src})")
        t_mig = time.monotonic()
        qs.execute("migrate", uri=f"tcp:{a.dst_addr}:{a.qport}")
        qs.execute("migrate-start-postcopy")
        procs = [qs_p, qd_p]
        last = 0

        def running():
            nonlocal last
            if ds.update().last_pass != last:
                last = ds.last_pass
                log(f"destination guest: pass {last}, mismatches total {ds.total_bad}")
            st = self.migrate_status(qs)
            if st in ("failed", "cancelled"):
                raise Fail(f"source migration {st}")
            return st == "completed"
        self.wait_until("QEMU postcopy migration completed", running, a.timeout * 10, procs)
        t_done = time.monotonic()
        self.wait_migrated(qs, qd, procs)
        qs.poll_events(0.2)
        qd.poll_events(0.2)
        t_stop = qs.event_time("STOP")
        # the destination's "completed": every page placed there
        t_end = qd.event_time("MIGRATION", "completed") or qs.event_time("MIGRATION", "completed")
        self.res["downtime_ms"] = self.downtime(qs, qd, None)
        self.res["ram_done_ms"] = ((t_end - t_stop) * 1e3 if t_stop and t_end
                                   else (t_done - t_mig) * 1e3)
        self.res["pass_at_ram_done"] = ds.update().last_pass
        self.res["vcpu"] = vclock.window(qd.event_time("RESUME"), t_end)
        ms, md = qs.execute("query-migrate"), qd.execute("query-migrate")
        ram = ms.get("ram", {})
        self.res["qemu"] = {
            "total_ms": ms.get("total-time"), "downtime_ms": ms.get("downtime"),
            "ram_transferred": ram.get("transferred"), "pages_normal": ram.get("normal"),
            "pages_duplicate": ram.get("duplicate"),
            "postcopy_requests": ram.get("postcopy-requests"),
            "precopy_bytes": ram.get("precopy-bytes"),
            "postcopy_bytes": ram.get("postcopy-bytes"),
            "downtime_bytes": ram.get("downtime-bytes"),
            "blocktime_ms": md.get("postcopy-blocktime"),
            "vcpu_blocktime_ms": md.get("postcopy-vcpu-blocktime"),
        }
        log(f"QEMU migration completed: source says total {ms.get('total-time')} ms, "
            f"downtime {ms.get('downtime')} ms; STOP -> completed {self.res['ram_done_ms']:.0f} ms; "
            f"guest at pass {ds.last_pass}")
        self.finish(ss, ds, qd_p, procs)
        if a.huge:
            kb = self.smaps_kb(qd_p.pid, self.hugetlbfs, "Private_Hugetlb")
            self.res["dst_hugetlb_kb"] = kb
            log(f"destination QEMU's hugetlbfs RAM: {kb} kB in 2 MiB pages")

    def release(self, fifo, t):
        """Let umemd --outgoing's --stop-cmd return: write "g" to its FIFO."""
        while True:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO or time.monotonic() - t > self.a.timeout:  # no reader yet
                    raise Fail(f"umemd --outgoing's --stop-cmd is not waiting: {e}")
                time.sleep(0.005)
        os.write(fd, b"g")
        os.close(fd)

    def downtime(self, qs, qd, fallback_s):
        t_stop, t_resume = qs.event_time("STOP"), qd.event_time("RESUME")
        if t_stop and t_resume:
            return (t_resume - t_stop) * 1e3
        return fallback_s * 1e3 if fallback_s is not None else None

    def umemd_progress(self):
        """umemd --incoming's last --progress line, if any."""
        try:
            with open(f"{self.work}/umemd-dst.err", "rb") as f:
                f.seek(max(0, os.path.getsize(f.name) - 400))
                tail = f.read().decode(errors="replace")
        except OSError:
            return ""
        parts = [p.strip() for p in re.split(r"[\r\n]", tail) if "pages (" in p]
        return f"; {parts[-1]}" if parts else ""

    def finish(self, ss, ds, qd_p, procs):
        a = self.a
        at = self.res["pass_at_ram_done"]
        try:
            self.wait_passes("destination, after the RAM transfer", ds, a.passes_after,
                             a.timeout * 2, procs)
        except Fail as e:
            self.res["error"] = str(e)
        ds.update()
        ss.update()
        src_last = ss.last_pass
        dst_lines = [l for _, l in ds.lines]
        if ss.buf and dst_lines:
            # A pass line the guest began printing on the source (its pass
            # was done there) and finished printing on the destination.
            m = PASS_RE.match(ss.buf + dst_lines[0])
            if m:
                src_last = int(m.group(1))
                dst_lines = dst_lines[1:]
        g = self.res["guest"] = {
            "source_last_pass": src_last,
            "destination_first_pass": next((int(PASS_RE.match(l).group(1)) for l in dst_lines
                                            if PASS_RE.match(l)), None),
            "pass_at_ram_done": at, "last_pass": ds.last_pass,
            "passes_after_ram_done": ds.last_pass - at,
            "mismatches": ds.total_bad + len(ss.mismatches),
            "mismatch_lines": (ss.mismatches + ds.mismatches + ss.fails + ds.fails)[:20],
            "pages": ds.pages,
        }
        log(f"destination guest: pass {ds.last_pass} ({g['passes_after_ram_done']} passes after "
            f"the RAM transfer ended), mismatches {g['mismatches']}")
        self.banner(ss)
        self.res["serial_source_tail"] = [l for _, l in ss.lines[-3:]]
        self.res["serial_destination_head"] = [l for _, l in ds.lines[:3]]
        self.res["serial_destination_tail"] = [l for _, l in ds.lines[-3:]]
        ok = (not self.res["error"] and g["mismatches"] == 0 and
              g["passes_after_ram_done"] >= a.passes_after and qd_p.poll() is None)
        if self.a.mode == "umem":
            d = self.res.get("umemd_dst") or {}
            ok = ok and d.get("ok") is True and self.res["umemd_dst_exit"] == 0 \
                and self.res["umemd_src_exit"] == 0
            if self.a.check_pages:
                ok = ok and (self.res.get("pages_check") or {}).get("wrong") == 0
        self.res["ok"] = bool(ok)

    @staticmethod
    def data_extents(fd, size):
        """The [start, end) ranges of @fd holding data (SEEK_DATA/SEEK_HOLE):
        the pages umemd wrote to its --test-page-copy file."""
        ext, off = [], 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            ext.append((start, min(end, size)))
            off = end
        return ext

    def check_pages(self, ram, installed, psz, partial=False):
        """--check-pages: every page umemd --incoming installed (its
        --test-page-copy file) against the source's RAM file, which the
        stopped source QEMU no longer writes.  Whatever the guest wrote on
        the destination since does not matter: the copy is what went in.
        @partial (a run that stopped mid-transfer): only the pages umemd
        wrote, the data extents of the copy; zero pages it installed are
        holes there and go unchecked."""
        wrong, n = [], 0
        chunk = 256 * psz if psz == 4096 else psz
        with open(ram, "rb") as fs, open(installed, "rb") as fi:
            size = os.fstat(fs.fileno()).st_size
            ranges = (self.data_extents(fi.fileno(), size) if partial
                      else [(0, max(size, os.fstat(fi.fileno()).st_size))])
            for start, end in ranges:
                start -= start % psz
                for off in range(start, end, chunk):
                    fs.seek(off)
                    fi.seek(off)
                    want = min(chunk, end - off)
                    s, i = fs.read(want), fi.read(want)
                    if s != i:
                        for p in range(0, max(len(s), len(i)), psz):
                            if s[p:p + psz] != i[p:p + psz]:
                                wrong.append((off + p) // psz)
                    n += (max(len(s), len(i)) + psz - 1) // psz
        self.res["pages_check"] = {"pages": n, "wrong": len(wrong), "first_wrong": wrong[:16],
                                   "partial": partial}
        log(f"--check-pages{' (the pages installed before the failure)' if partial else ''}: "
            f"{n} pages installed by umemd compared with the source's RAM: "
            f"{len(wrong)} differ{' (first: ' + str(wrong[:16]) + ')' if wrong else ''}")
        if wrong and not self.res["error"]:
            self.res["error"] = f"{len(wrong)} pages installed differ from the source's RAM"

    def guest_on_failure(self):
        """What the guest said on the serial ports, when the run stopped
        before finish() (e.g. the Linux guest powered off on a mismatch)."""
        if isinstance(self.res.get("guest"), dict) or not self.serials:
            return
        ss = self.serials.get("source") or Serial("/dev/null")
        ds = self.serials.get("destination") or Serial("/dev/null")
        ss.update()
        ds.update()
        bad = ss.mismatches + ds.mismatches
        self.res["guest"] = {
            "source_last_pass": ss.last_pass, "destination_first_pass": None,
            "pass_at_ram_done": self.res.get("pass_at_ram_done"), "last_pass": ds.last_pass,
            "passes_after_ram_done": None,
            "mismatches": max(ss.total_bad + ds.total_bad, len(bad)),
            "mismatch_lines": (bad + ss.fails + ds.fails)[:20], "pages": ds.pages or ss.pages,
        }
        self.banner(ss)
        self.res["serial_source_tail"] = [l for _, l in ss.lines[-3:]]
        self.res["serial_destination_tail"] = [l for _, l in ds.lines[-3:]]
        for side, ser in (("source", ss), ("destination", ds)):
            # a Linux guest's oops: from its first line, the lines that say where
            lines = [l for _, l in ser.lines]
            i = next((i for i, l in enumerate(lines)
                      if re.search(r"Oops|BUG:|Kernel panic|general protection|invalid opcode", l)),
                     None)
            if i is not None:
                self.res[f"serial_{side}_oops"] = [l for l in lines[i:i + 40] if re.search(
                    r"Oops|BUG|panic|RIP|Code:|EFLAGS|Call Trace|\+0x|CPU:", l)][:16]

    def banner(self, ss):
        """The Linux guest's /init line: its kernel, RAM and virtio drivers."""
        if self.a.linux:
            self.res["guest_banner"] = next((l for _, l in ss.lines
                                             if l.startswith("umem-linux-guest:")), None)

    def read_json(self, f):
        try:
            with open(f"{self.work}/{f}") as fh:
                for line in fh:
                    if line.startswith("{"):
                        return json.loads(line)
        except (OSError, ValueError):
            pass
        return None

    def quit(self):
        for q in (getattr(self, "qd", None), getattr(self, "qs", None)):
            if q:
                try:
                    q.execute("quit", 5)
                except Exception:  # noqa: BLE001 - best effort
                    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.dirname(here)
    ap.add_argument("--mode", choices=["umem", "postcopy"], default="umem")
    ap.add_argument("--preempt", action="store_true", help="postcopy: also postcopy-preempt")
    ap.add_argument("--huge", action="store_true",
                    help="2 MiB pages: umem region of 2 MiB pages, or QEMU on hugetlbfs")
    ap.add_argument("--mib", type=int, default=64,
                    help="guest RAM in MiB; the guest checks all of it above 2 MiB (default 64)")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--linux", metavar="VMLINUZ",
                    help="a real Linux guest: this kernel, with --initrd (linux-guest/)")
    ap.add_argument("--initrd", help="the Linux guest's initramfs (with --linux)")
    ap.add_argument("--workload-mib", type=int, default=32,
                    help="MiB the Linux guest's workload checks (default 32)")
    ap.add_argument("--boot-timeout", type=float, default=0,
                    help="extra seconds for the guest to boot before its first passes")
    ap.add_argument("--guest", default=f"{top}/build/qemu/umem-guest.elf")
    ap.add_argument("--umemd", default=f"{top}/build/bin/umemd")
    ap.add_argument("--umemd-src-opt", action="append", default=[],
                    help="extra option for umemd --outgoing (repeat)")
    ap.add_argument("--umemd-dst-opt", action="append", default=[],
                    help="extra option for umemd --incoming (repeat), e.g. --no-preempt")
    ap.add_argument("--src-ns", help="network namespace of the source side")
    ap.add_argument("--dst-ns", help="network namespace of the destination side")
    ap.add_argument("--dst-addr", default="127.0.0.1", help="destination's address")
    ap.add_argument("--port", type=int, default=4444, help="umemd port")
    ap.add_argument("--qport", type=int, default=4445, help="QEMU migration port")
    ap.add_argument("--passes-before", type=int, default=3)
    ap.add_argument("--passes-after", type=int, default=3)
    ap.add_argument("--print-every", type=int, default=1, help="guest prints every Nth pass")
    ap.add_argument("--timeout", type=float, default=60,
                    help="base timeout (s); longer steps use multiples of it")
    ap.add_argument("--start-timeout", type=float, default=120, help="QEMU startup (s)")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--stop-first", action="store_true",
                    help="umem: QMP stop on the source before QMP migrate, then QMP cont on "
                    "the destination (default: migrate the running source; QEMU stops it at the "
                    "end and the destination starts by itself)")
    ap.add_argument("--check-pages", action="store_true",
                    help="(umem) umemd --incoming keeps a copy of every page it installs "
                    "(--test-page-copy); after the transfer each is compared with the "
                    "source's RAM: RESULT pages_check {pages, wrong, first_wrong}")
    ap.add_argument("--pin-vcpu", type=int, metavar="CPU",
                    help="run the destination's vCPU threads on CPU alone and every "
                    "other thread of the run (both QEMUs, both umemds, this script) "
                    "on the other CPUs: no other process's thread shares the vCPU's "
                    "CPU")
    ap.add_argument("--perf-vcpu", metavar="FILE",
                    help="profile the whole machine (perf record -a -g -e cpu-clock "
                    "-k monotonic) into FILE until the end of the RAM transfer; RESULT "
                    "vcpu gives the destination's vCPU thread ids and the window "
                    "(perf report --tid, --time)")
    ap.add_argument("--test-corrupt", type=int, metavar="N",
                    help="(testing, umem) overwrite a word pair of guest page N in the "
                    "source's RAM after the stop: the guest must report mismatches")
    a = ap.parse_args()
    if a.mib < 3:
        ap.error("--mib must be at least 3")
    if bool(a.linux) != bool(a.initrd):
        ap.error("--linux and --initrd go together")
    if a.check_pages and a.mode != "umem":
        ap.error("--check-pages is for --mode umem (QEMU's postcopy keeps no copy)")
    if a.pin_vcpu is not None:
        cpus = os.sched_getaffinity(0)
        if a.pin_vcpu not in cpus or len(cpus) < 2:
            ap.error(f"--pin-vcpu {a.pin_vcpu}: needs that CPU and another one "
                     f"(this script may use {sorted(cpus)})")
        # inherited by everything this script starts
        os.sched_setaffinity(0, cpus - {a.pin_vcpu})

    r = Run(a)
    r.res["pin_vcpu"] = a.pin_vcpu
    r.perf_p = None
    if a.perf_vcpu:
        # Started disabled; enabled through its control FIFO, whose ack
        # comes once perf has listed the machine's threads (seconds
        # under TCG): from then on it samples.
        fifos = tempfile.mkdtemp(prefix="qemu-migrate-perf.")
        ctl, ack = f"{fifos}/ctl", f"{fifos}/ack"
        for f in (ctl, ack):
            os.mkfifo(f)
        r.perf_p = subprocess.Popen(
            ["perf", "record", "-q", "-a", "-g", "-e", "cpu-clock", "-F", "999",
             "-k", "CLOCK_MONOTONIC", "-D", "-1", f"--control=fifo:{ctl},{ack}",
             "-o", a.perf_vcpu], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(ctl, "w") as c, open(ack) as k:
            c.write("enable\n")
            c.flush()
            k.readline()
        shutil.rmtree(fifos)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rc = 1
    try:
        if a.mode == "umem":
            r.run_umem()
        else:
            r.run_postcopy()
        rc = 0 if r.res["ok"] else 1
    except (Fail, Timeout, EOFError, OSError) as e:
        r.res["error"] = f"{type(e).__name__}: {e}"
        log(f"FAILED: {r.res['error']}")
        r.guest_on_failure()
    finally:
        if r.perf_p and r.perf_p.poll() is None:
            r.perf_p.send_signal(signal.SIGINT)
            r.perf_p.wait()
        r.quit()
        r.kill_all()
        r.hugetlb_down()
        # A run that failed before its own check (a guest that crashed
        # mid-transfer): check what umemd had installed, now that it is
        # gone and the copy no longer changes.
        if a.check_pages and "pages_check" not in r.res and \
                getattr(r, "pagecopy", None) and os.path.exists(r.pagecopy):
            try:
                r.check_pages(r.ramfile, r.pagecopy, 2 << 20 if a.huge else 4096,
                              partial=True)
            except OSError as e:
                log(f"--check-pages after the failure: {e}")
        for f in (getattr(r, "ramfile", None), getattr(r, "pagecopy", None)):
            try:
                if f:
                    os.unlink(f)
            except OSError:
                pass
    report(r.res)
    print("RESULT " + json.dumps(r.res), flush=True)
    return rc


def fmt(v, unit="", nd=0):
    if v is None:
        return "?"
    return f"{v:.{nd}f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def report(res):
    """The human-readable summary (before the RESULT line)."""
    g = res.get("guest") or {}
    print("", flush=True)
    print(f"== {res['mode']}{' + preempt' if res.get('preempt') else ''}: "
          f"{res['ram_mib']} MiB of guest RAM ({res['pages']} pages), "
          f"{'Linux guest, workload on ' + str(res['guest_mib']) + ' MiB, ' if res.get('guest_kind') == 'linux' else ''}"
          f"{'OK' if res['ok'] else 'FAILED'}{': ' + res['error'] if res['error'] else ''}")
    print(f"  downtime            {fmt(res.get('downtime_ms'), ' ms', 1)} "
          "(source QMP STOP event -> destination RESUME event)")
    print(f"  RAM transfer        {fmt(res.get('ram_done_ms'), ' ms')} "
          "(source stopped -> last page on the destination)")
    v = res.get("vcpu")
    if v:
        print(f"  vCPU (schedstat)    RESUME -> last page {v['window_ms']:.0f} ms: on a CPU "
              f"{v['run_ms']:.0f} ms, runnable {v['runq_ms']:.0f} ms, asleep {v['sleep_ms']:.0f} ms "
              "(the same measure for both kinds)")
    d = res.get("umemd_dst")
    if d:
        lat = d.get("latency_us", {})
        print(f"  umemd --incoming    {'ok' if d.get('ok') else 'FAILED ' + d.get('error', '')}, "
              f"total {fmt(d.get('total_ms'), ' ms', 0)} (from the source's connection, "
              "includes starting the destination QEMU)")
        print(f"  pages               {d.get('pages')}: requested {d.get('pages_requested')}, "
              f"background {d.get('pages_background')} (zero {d.get('pages_zero')}), "
              f"preempt channel {'on' if d.get('preempt') else 'off'}")
        print(f"  request latency     {lat.get('count')} requests: p50 {fmt(lat.get('p50'), ' us')}, "
              f"p99 {fmt(lat.get('p99'), ' us')}, max {fmt(lat.get('max'), ' us')}")
        print(f"  blocked             {fmt(d.get('blocked_ms'), ' ms', 1)} in total, longest "
              f"{fmt(d.get('blocked_max_ms'), ' ms', 1)} ({d.get('blocked_source')})")
        print(f"  device state        {fmt(res.get('qemu_device_state_bytes'), ' bytes')} by QEMU "
              "(x-ignore-shared: no guest RAM)")
    q = res.get("qemu")
    if q:
        print(f"  QEMU query-migrate  total-time {fmt(q.get('total_ms'), ' ms')}, "
              f"{fmt(q.get('ram_transferred'), ' bytes')} of RAM "
              f"(precopy {q.get('precopy_bytes')}, postcopy {q.get('postcopy_bytes')}), "
              f"postcopy-requests {q.get('postcopy_requests')}")
        print(f"  postcopy-blocktime  {fmt(q.get('blocktime_ms'), ' ms')} "
              f"(per vCPU {q.get('vcpu_blocktime_ms')})")
    if res.get("guest_banner"):
        print(f"  Linux guest         {res['guest_banner'].split(': ', 1)[-1]}")
    if g:
        print(f"  guest               source stopped after pass {g.get('source_last_pass')}; "
              f"pass {g.get('pass_at_ram_done')} when the RAM transfer ended, "
              f"pass {g.get('last_pass')} at the end ({g.get('passes_after_ram_done')} more); "
              f"mismatches {g.get('mismatches')}")
        for line in g.get("mismatch_lines", []):
            print(f"    {line}")
    for key, what in (("serial_source_oops", "source serial, the guest's oops"),
                      ("serial_destination_oops", "destination serial, the guest's oops"),
                      ("serial_source_tail", "source serial, last lines"),
                      ("serial_destination_head", "destination serial, first lines"),
                      ("serial_destination_tail", "destination serial, last lines")):
        if res.get(key):
            print(f"  {what}:")
            for line in res[key]:
                print(f"    {line}")
    print("", flush=True)


if __name__ == "__main__":
    sys.exit(main())
