#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""qemu_snapshot.py - snapshot a running QEMU guest and restore it, RAM by umem or by QEMU.

Runs unmodified qemu-system-x86_64 (TCG, -M pc) on the tiny test guest
(userspace/qemu/guest: it keeps verifying and rewriting its RAM and prints
"pass G: P pages, M mismatches, total T" on its serial port), in phases
(--phases, default all, in this order):

umem-save   the guest's RAM is a umem region born present and
            write-protectable (umemctl create NAME --present --wp -- QEMU);
            umemd --snapshot FILE --ram /dev/umem-NAME saves it live.  Its
            --stop-cmd asks this script (FIFOs) to save the device state
            with QEMU's own migration to a file, which stops the guest
            (x-ignore-shared: no guest RAM in it; QMP getfd, migrate "fd:"),
            which umemd reads (--device-state DEV) and stores in FILE; its
            --cont-cmd asks for QMP cont.  The guest then runs while umemd
            saves every page (a write to a page not yet saved waits for it).
qemu-save   the same guest on a second QEMU whose RAM is a file in /dev/shm
            (share=on), saved by QEMU 7.2's own live snapshot: capability
            background-snapshot (userfaultfd write-protect), migrate
            "exec:cat > FILE".
lazy        umemd --restore FILE --backend umem --name NAME2 --vmm-socket S
            creates /dev/umem-NAME2; this script is QEMU's end of S: on
            HELLO it starts a new QEMU on the node (-incoming defer,
            x-ignore-shared) and sends ATTACH; on RUN, migrate-incoming
            "exec:cat DEV2" (the device state umemd wrote with
            --device-state-out) and QMP cont: the guest runs at once and its
            pages come from the file as it touches them, the rest behind.
eager       the same with umemd --restore --eager: umemd sends RUN only once
            every page is in.
lazy-slow, eager-slow
            the same with umemd --restore --throttle N (--slow-throttle): a
            slow disk, so that loading all of RAM takes longer than QEMU's
            startup and lazy and eager differ.
qemu-load   QEMU's own load of the qemu-save file: -incoming defer,
            migrate-incoming "exec:cat FILE", cont.

Measures: a save's guest stop time (QMP STOP -> RESUME event timestamps),
its total time, and the guest's verify passes from its stop to the end of
the save; a restore's time until the guest runs (from the restore's first
command, umemd or QEMU, to the RESUME event, so it holds QEMU's startup),
until all of RAM is in (umemd's total; QEMU: its load completed), and the
passes the guest made before that.  Each restored guest must go on from
the pass it was saved in and verify with 0 mismatches; each saved guest
must keep running with 0 mismatches.  Output: a log, a table, one "RESULT {json}"
line.  Exit status 0 only if every phase run passed.
"""

import argparse
import array
import copy
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True   # the repo is read-only in the test VMs
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_migrate  # noqa: E402
from qemu_migrate import PASS_RE, Fail, log  # noqa: E402
from qtest_umem import Timeout  # noqa: E402

ALL_PHASES = ["umem-save", "qemu-save", "lazy", "eager", "lazy-slow", "eager-slow", "qemu-load"]
KNOWN_PHASES = ALL_PHASES


def ev_time(q, name, after=0.0):
    """Wall-clock time (s) of the first event @name stamped after @after."""
    for e in q.events:
        if e["event"] == name:
            ts = e["timestamp"]
            t = ts["seconds"] + ts["microseconds"] / 1e6
            if t >= after:
                return t
    return None


class Hooks(threading.Thread):
    """umemd --snapshot's --stop-cmd and --cont-cmd, served by this script.

    Each hook writes its name into the request FIFO and waits for one byte
    on the answer FIFO ("g" done, "x" failed).  The thread does the QMP
    work under @lock (the main thread polls QMP only under it too)."""

    def __init__(self, run, q, lock, ser, dev, timeout):
        super().__init__(daemon=True)
        self.run_, self.q, self.lock, self.ser, self.dev = run, q, lock, ser, dev
        self.req = f"{run.work}/hook-req.fifo"
        self.ack = f"{run.work}/hook-ack.fifo"
        for f in (self.req, self.ack):
            if os.path.exists(f):
                os.unlink(f)
            os.mkfifo(f, 0o600)
        # Shell builtins only: each process a hook starts costs tens to
        # hundreds of ms under nested TCG, and the stop hook's run is guest
        # stop time.  No timeout: on failure this script kills umemd's
        # process group, hook included.
        self.stop_cmd = f'echo stop > {self.req} && read r < {self.ack} && [ "$r" = g ]'
        self.cont_cmd = f'echo cont > {self.req} && read r < {self.ack} && [ "$r" = g ]'
        self.timeout = timeout
        self.log = []            # (what, monotonic start, seconds)
        self.marks = {}          # step -> wall-clock time (s), as QMP events
        self.stop_pass = None    # the guest's last complete pass when it stopped
        self.stop_buf = ""       # and a pass line it had begun printing
        self.error = None

    def run(self):
        while True:
            with open(self.req) as f:          # blocks until a hook writes
                for line in f:
                    what = line.strip()
                    t = time.monotonic()
                    self.marks[f"{what}_hook"] = time.time()
                    try:
                        self.handle(what)
                        ok = b"g"
                    except Exception as e:  # noqa: BLE001 - reported to umemd as a failed hook
                        self.error = f"{what} hook: {type(e).__name__}: {e}"
                        log(self.error)
                        ok = b"x"
                    self.log.append((what, t, time.monotonic() - t))
                    self.answer(ok)
                    self.marks[f"{what}_answered"] = time.time()

    def prepare(self):
        """Hand QEMU the device-state file now (QMP getfd), so that the stop
        hook's migrate "fd:" costs QEMU no fork and exec (as "exec:cat >
        FILE" would: QEMU 7.2 has no "file:")."""
        fd = os.open(self.dev, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with self.lock:
                qmp_getfd(self.q, "devstate", fd)
        finally:
            os.close(fd)

    def handle(self, what):
        q = self.q
        if what == "stop":
            # migrate the *running* guest: QEMU sends its few non-shared
            # RAM blocks (ROMs) while the guest runs, then stops it itself
            # (STOP event) for the device state, and leaves it stopped
            # (postmigrate).  A QMP stop first would put QEMU's whole
            # migration setup into the guest's stop time.
            with self.lock:
                q.execute("migrate", uri="fd:devstate")
            end = time.monotonic() + self.timeout
            while True:
                with self.lock:
                    st = q.execute("query-migrate") or {}
                if st.get("status") == "completed":
                    self.marks["device_state_saved"] = time.time()
                    with self.lock:
                        status = q.execute("query-status")["status"]
                    if status == "running":
                        raise Fail("QEMU runs after its migration completed")
                    self.ser.update()
                    self.stop_pass, self.stop_buf = self.ser.last_pass, self.ser.buf
                    break
                if st.get("status") in ("failed", "cancelled"):
                    raise Fail(f"device state migration {st.get('status')}: "
                               f"{st.get('error-desc', '')}")
                if time.monotonic() > end:
                    raise Fail("device state migration did not complete")
                time.sleep(0.002)
        elif what == "cont":
            with self.lock:
                q.execute("cont")
        else:
            raise Fail(f"unknown hook {what!r}")

    def answer(self, byte):
        end = time.monotonic() + self.timeout
        while True:
            try:
                fd = os.open(self.ack, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                if time.monotonic() > end:     # the hook gave up
                    return
                time.sleep(0.002)
        os.write(fd, byte + b"\n")
        os.close(fd)


def qmp_getfd(q, name, fd):
    """QMP getfd: pass @fd to QEMU as @name (SCM_RIGHTS on the QMP socket)."""
    msg = json.dumps({"execute": "getfd", "arguments": {"fdname": name}}).encode() + b"\n"
    q.s.sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    while True:
        ans = json.loads(q.s.readline())
        if "event" in ans:
            q.events.append(ans)
            continue
        if "error" in ans:
            raise Fail(f"QMP getfd: {ans['error'].get('desc')}")
        return


# common/vmmsock.h: struct vmm_msg (host byte order), SOCK_SEQPACKET
VMM_MSG = struct.Struct("=IHHQQII96s")
VMM_MAGIC, VMM_VERSION = 0x4d564d55, 1
VMM_HELLO, VMM_ATTACH, VMM_RUN, VMM_DONE, VMM_FAIL = 1, 2, 3, 4, 5


class VmmPeer:
    """The VMM's end of umemd's --vmm-socket, for a QEMU that maps the node
    by path.  Holds HELLO's fd (the region's node) until close()."""

    def __init__(self, path):
        self.path = path
        self.s = None
        self.fds = []
        self.closed = False

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(self.path)
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            return False
        self.s = s
        return True

    def recv(self, timeout):
        """One message as a dict, or None after @timeout seconds."""
        self.s.settimeout(timeout)
        try:
            data, anc, _, _ = self.s.recvmsg(VMM_MSG.size, socket.CMSG_SPACE(4 * 4))
        except socket.timeout:
            return None
        if not data:
            self.closed = True
            return None
        for level, kind, fdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                self.fds += list(array.array("i", fdata[:len(fdata) - len(fdata) % 4]))
        if len(data) != VMM_MSG.size:
            raise Fail(f"VMM socket: a message of {len(data)} bytes")
        magic, typ, ver, size, base, ps, _, text = VMM_MSG.unpack(data)
        if magic != VMM_MAGIC or ver != VMM_VERSION:
            raise Fail(f"VMM socket: bad magic/version {magic:#x}/{ver}")
        return {"type": typ, "size": size, "base": base, "page_size": ps,
                "text": text.split(b"\0", 1)[0].decode(errors="replace")}

    def send(self, typ, size, base, text=""):
        self.s.send(VMM_MSG.pack(VMM_MAGIC, typ, VMM_VERSION, size, base, 4096, 0,
                                 text.encode()[:95]))

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        if self.s:
            self.s.close()
            self.s = None


class Phase(qemu_migrate.Run):
    """One phase: its own work directory, processes and result."""

    def __init__(self, a, name):
        b = copy.copy(a)
        b.workdir = f"{a.workdir}/{name}"
        b.mode, b.preempt, b.huge = name, False, False
        super().__init__(b)
        self.name = name
        self.res = {"phase": name, "ok": False, "error": ""}
        self.q = None
        self.lock = threading.Lock()

    def quit(self):
        if self.q:
            try:
                with self.lock:
                    self.q.execute("quit", 5)
            except Exception:  # noqa: BLE001 - best effort
                pass

    def status(self):
        with self.lock:
            return self.q.execute("query-status")["status"]

    def poll_events(self, secs=0.0):
        with self.lock:
            self.q.poll_events(secs)

    def wait_saved_guest(self, ser, p, procs):
        """After a save: the guest keeps running, 0 mismatches."""
        a = self.a
        self.wait_passes("guest, after the save", ser, a.passes_after, a.timeout * 2, procs)
        ser.update()
        g = self.res["guest"] = {
            "stop_pass": self.res.get("stop_pass"), "last_pass": ser.last_pass,
            "mismatches": max(ser.total_bad, len(ser.mismatches)),
            "mismatch_lines": ser.mismatches[:20]}
        return g["mismatches"] == 0 and p.poll() is None

    # ---- saves
    def umem_save(self, out):
        a = self.a
        name = f"qs{os.getpid()}"
        node = f"/dev/umem-{name}"
        dev = f"{self.work}/device-state"
        wrap = [a.umemctl, "create", name, "--size", f"{a.mib}M", "--present", "--wp", "--"]
        p, q, ser = self.qemu("umem", f"memory-backend-file,id=ram0,size={a.mib}M,"
                              f"mem-path={node},share=on", False, None, prefix=wrap)
        self.q = q
        maps = open(f"/proc/{self.qemu_pid(p)}/maps").read()
        if f"umem-{name}" not in maps:
            raise Fail(f"QEMU did not map {node}")
        self.caps(q, ["x-ignore-shared", "events"])
        n = self.wait_passes("guest", ser, a.passes_before, a.timeout * 2, [p])
        log(f"guest at pass {n} on {node} (born present, write-protectable)")
        hooks = Hooks(self, q, self.lock, ser, dev, a.timeout)
        hooks.prepare()
        hooks.start()
        cmd = [a.umemd, "--snapshot", out, "--ram", node, "--stop-cmd", hooks.stop_cmd,
               "--cont-cmd", hooks.cont_cmd, "--device-state", dev, "--json"] + a.umemd_snap_opt
        log(f"umemd --snapshot {out} --ram {node} --stop-cmd '(QMP migrate fd: -> "
            f"{dev})' --cont-cmd '(QMP cont)' --device-state {dev} --json "
            f"{' '.join(a.umemd_snap_opt)}")
        t0w, t0 = time.time(), time.monotonic()
        u = self.spawn("umemd-snapshot", cmd, stdout=f"{self.work}/umemd-snapshot.json")
        self.watch_until_exit(u, ser, [p], "umemd --snapshot")
        t_end = time.monotonic()
        self.poll_events(0.2)
        self.res["umemd_exit"] = u.returncode
        self.res["umemd"] = s = self.read_json("umemd-snapshot.json")
        self.res["hooks_ms"] = {w: round(d * 1e3, 1) for w, _, d in hooks.log}
        # Where the guest's stop went: STOP event -> each step (ms).
        t_ev = ev_time(q, "STOP", t0w - 1)
        marks = dict(hooks.marks, resume_event=ev_time(q, "RESUME", t0w - 1))
        if t_ev:
            self.res["stop_steps_ms"] = {k: round((v - t_ev) * 1e3, 1)
                                         for k, v in sorted(marks.items(), key=lambda x: x[1] or 0)
                                         if v}
            log(f"guest stop, from the STOP event: {self.res['stop_steps_ms']}")
        if hooks.error:
            raise Fail(hooks.error)
        if u.returncode != 0:
            raise Fail(f"umemd --snapshot exit {u.returncode}: {self.tail('umemd-snapshot')}")
        self.res["stop_pass"] = hooks.stop_pass
        self.res["stop_buf"] = hooks.stop_buf
        self.save_measures(t0w, t0, t_end, ser, out)
        if s:
            self.res["umemd_total_ms"] = s.get("total_ms")
            self.res["umemd_stop_ms"] = s.get("stop_ms")
            self.res["pages_requested"] = s.get("pages_requested")
        self.res["device_state_bytes"] = os.path.getsize(dev) if os.path.exists(dev) else None
        ok = self.wait_saved_guest(ser, p, [p])
        self.res["ok"] = ok and not self.res["error"]

    def qemu_save(self, out):
        a = self.a
        ram = f"/dev/shm/umem-qsnap-{os.getpid()}.ram"
        self.ramfile = ram
        with open(ram, "wb") as f:
            f.truncate(self.size)
        p, q, ser = self.qemu("qemu", f"memory-backend-file,id=ram0,size={a.mib}M,"
                              f"mem-path={ram},share=on", False, None)
        self.q = q
        self.caps(q, ["background-snapshot", "events"])
        self.wait_passes("guest", ser, a.passes_before, a.timeout * 2, [p])
        n = ser.update().last_pass
        log(f"guest at pass {n} on {ram}; QMP migrate exec:cat > {out} "
            "(capability background-snapshot)")
        t0w, t0 = time.time(), time.monotonic()
        with self.lock:
            q.execute("migrate", uri=f"exec:cat > {out}")
        last = 0
        end = time.monotonic() + a.timeout * 10
        while True:
            with self.lock:
                st = q.execute("query-migrate") or {}
            if st.get("status") == "completed":
                break
            if st.get("status") in ("failed", "cancelled"):
                raise Fail(f"background-snapshot {st.get('status')}: {st.get('error-desc', '')}")
            if time.monotonic() > end or p.poll() is not None:
                raise Fail("background-snapshot did not complete")
            if ser.update().last_pass != last:
                last = ser.last_pass
                log(f"guest: pass {last}, mismatches total {ser.total_bad}")
            time.sleep(0.02)
        t_end = time.monotonic()
        hi = ser.update().last_pass
        self.poll_events(0.2)
        self.res["qemu_total_ms"] = st.get("total-time")
        self.res["qemu_downtime_ms"] = st.get("downtime")
        # The pass the guest was saved in is between the last one printed
        # before the migrate command and the last one printed after it.
        self.res["stop_pass_range"] = [n, hi]
        self.save_measures(t0w, t0, t_end, ser, out)
        ok = self.wait_saved_guest(ser, p, [p])
        self.res["ok"] = ok and not self.res["error"]

    def save_measures(self, t0w, t0, t_end, ser, out):
        q = self.q
        t_stop, t_resume = ev_time(q, "STOP", t0w - 1), ev_time(q, "RESUME", t0w - 1)
        self.res["stop_ms"] = (t_resume - t_stop) * 1e3 if t_stop and t_resume else None
        self.res["total_ms"] = (t_end - t0) * 1e3
        # passes the guest completed between its stop and the end of the save
        t_from = t0 + (t_stop - t0w) if t_stop else t0
        during = [int(PASS_RE.match(l).group(1)) for t, l in ser.lines
                  if PASS_RE.match(l) and t_from <= t <= t_end]
        self.res["passes_during"] = len(during)
        self.res["file_bytes"] = os.path.getsize(out) if os.path.exists(out) else None
        self.res["file_disk_bytes"] = (os.stat(out).st_blocks * 512 if os.path.exists(out)
                                       else None)
        log(f"{self.name}: guest stopped {fmt(self.res['stop_ms'], ' ms', 1)}, save took "
            f"{self.res['total_ms']:.0f} ms, {len(during)} guest passes meanwhile; "
            f"{out}: {self.res['file_bytes']} bytes")

    # ---- restores
    def restore(self, snap, saved, eager, extra=()):
        """umemd --restore into a new QEMU.  QEMU maps /dev/umem-NAME by
        path and knows nothing of umemd's VMM socket, so this script is the
        VMM on that socket for it: HELLO (the region exists) -> start QEMU
        on the node -> ATTACH (QEMU has mapped it) -> RUN (lazy: at once;
        --eager: once every page is in) -> migrate-incoming the device
        state, cont -> DONE (every page is in)."""
        a = self.a
        name = f"qr{os.getpid()}{'e' if eager else 'l'}{'s' if extra else ''}"
        node = f"/dev/umem-{name}"
        dev = f"{self.work}/device-state-out"
        sock = f"{self.work}/vmm.sock"
        cmd = [a.umemd_restore, "--restore", snap, "--backend", "umem", "--name", name,
               "--vmm-socket", sock, "--device-state-out", dev, "--json"] + \
            (["--eager"] if eager else []) + list(extra) + a.umemd_restore_opt
        log(" ".join(cmd))
        t0w, t0 = time.time(), time.monotonic()
        u = self.spawn("umemd-restore", cmd, stdout=f"{self.work}/umemd-restore.json")
        vmm = VmmPeer(sock)
        self.wait_until(f"umemd's VMM socket {sock}", vmm.connect, a.timeout, [u])
        hello = vmm.recv(a.timeout)
        if hello["type"] != VMM_HELLO:
            raise Fail(f"umemd --restore: expected HELLO, got message type {hello['type']}")
        self.res["node_ms"] = (time.monotonic() - t0) * 1e3
        log(f"HELLO: {hello['size'] >> 20} MiB region ({hello['text']}, page size "
            f"{hello['page_size']}); start QEMU on {node}")
        try:
            if not stat.S_ISCHR(os.stat(node).st_mode):
                raise Fail(f"{node} is not a character device")
            tq = time.monotonic()
            p, q, ser = self.qemu("restored", f"memory-backend-file,id=ram0,size={a.mib}M,"
                                  f"mem-path={node},share=on", True, None)
            self.q = q
            self.res["qemu_start_ms"] = (time.monotonic() - tq) * 1e3
            maps = open(f"/proc/{p.pid}/maps").read()
            if f"umem-{name}" not in maps:
                raise Fail(f"QEMU did not map {node}")
            self.caps(q, ["x-ignore-shared", "events"])
            procs = [p, u]
            ta_w, ta = time.time(), time.monotonic()
            vmm.send(VMM_ATTACH, hello["size"], 0)
            log(f"ATTACH sent (QEMU maps {node}); waiting for RUN")
            m = self.vmm_wait(vmm, (VMM_RUN,), ser, procs)
            t_runmsg = time.monotonic()
            log(f"RUN after {(t_runmsg - ta) * 1e3:.0f} ms; device state {dev} into QEMU, cont")
            self.load_device_state(dev, [p])
            if m["type"] != VMM_DONE:
                m = self.vmm_wait(vmm, (VMM_DONE,), ser, procs)
            t_ram = time.monotonic()
            log(f"DONE: every page is in, {(t_ram - ta) * 1e3:.0f} ms after ATTACH")
        finally:
            vmm.close()
        try:
            u.wait(a.timeout)
        except subprocess.TimeoutExpired:
            raise Fail("umemd --restore did not exit after DONE")
        self.res["umemd_exit"] = u.returncode
        self.res["umemd"] = s = self.read_json("umemd-restore.json")
        if u.returncode != 0:
            raise Fail(f"umemd --restore exit {u.returncode}: {self.tail('umemd-restore')}")
        self.res["attach_ms"] = (ta - t0) * 1e3
        self.res["done_after_attach_ms"] = (t_ram - ta) * 1e3
        # Every page in: umemd's own figure (from its start; it sends DONE
        # only once the VMM has attached, so DONE may be queued behind RUN).
        if s and s.get("total_ms") is not None:
            t_ram = t0 + s["total_ms"] / 1e3
        self.restore_measures(t0w, t0, t_ram, ser, s)
        self.check_restored(ser, p, saved)

    def vmm_wait(self, vmm, types, ser, procs):
        """The next message of @types from umemd (FAIL: Fail); the guest's
        passes are logged meanwhile.  RUN may come with DONE behind it."""
        end = time.monotonic() + self.a.timeout * 10
        last = ser.update().last_pass
        while True:
            m = vmm.recv(0.05)
            if m is not None:
                if m["type"] == VMM_FAIL:
                    raise Fail(f"umemd --restore sent FAIL: {m['text']}")
                if m["type"] in types or m["type"] == VMM_DONE:
                    return m
                raise Fail(f"umemd --restore: unexpected message type {m['type']}")
            if vmm.closed:
                raise Fail(f"umemd --restore closed the VMM socket: {self.tail('umemd-restore')}")
            for p in procs:
                if p.poll() is not None:
                    raise Fail(f"{p.name} exited ({p.returncode}): {self.tail(p.name)}")
            if time.monotonic() > end:
                raise Fail(f"no {'/'.join(str(t) for t in types)} from umemd --restore in time")
            if ser.update().last_pass != last:
                last = ser.last_pass
                log(f"guest: pass {last}, mismatches total {ser.total_bad}")

    def qemu_load(self, snap, saved):
        a = self.a
        ram = f"/dev/shm/umem-qload-{os.getpid()}.ram"
        self.ramfile = ram
        with open(ram, "wb") as f:
            f.truncate(self.size)
        t0w, t0 = time.time(), time.monotonic()
        p, q, ser = self.qemu("restored", f"memory-backend-file,id=ram0,size={a.mib}M,"
                              f"mem-path={ram},share=on", True, None)
        self.q = q
        self.res["qemu_start_ms"] = (time.monotonic() - t0) * 1e3
        self.caps(q, ["events"])
        self.load_device_state(snap, [p])
        t_ram = time.monotonic()    # QEMU's load ends with every page in
        self.restore_measures(t0w, t0, t_ram, ser, None)
        self.check_restored(ser, p, saved)

    def load_device_state(self, path, procs):
        """migrate-incoming from @path, then cont if QEMU stays paused."""
        q = self.q
        with self.lock:
            q.execute("migrate-incoming", uri=f"exec:cat {path}")

        def done():
            with self.lock:
                st = (q.execute("query-migrate") or {}).get("status")
            if st == "failed":
                raise Fail("incoming migration failed")
            return st == "completed"
        self.wait_until("incoming migration completed", done, self.a.timeout * 4, procs, 0.005)
        if self.status() != "running":
            with self.lock:
                q.execute("cont")

    def restore_measures(self, t0w, t0, t_ram, ser, s):
        self.poll_events(0.2)
        t_run = ev_time(self.q, "RESUME", t0w - 1)
        self.res["run_ms"] = (t_run - t0w) * 1e3 if t_run else None
        self.res["ram_ms"] = (t_ram - t0) * 1e3
        if s:
            self.res["umemd_total_ms"] = s.get("total_ms")
            self.res["umemd_run_ms"] = s.get("run_ms")
            self.res["pages_requested"] = s.get("pages_requested")
        ser.update()
        before = [int(PASS_RE.match(l).group(1)) for t, l in ser.lines
                  if PASS_RE.match(l) and t <= t_ram]
        self.res["passes_before_ram"] = len(before)
        log(f"{self.name}: guest runs {fmt(self.res['run_ms'], ' ms')} after the restore began "
            f"(QEMU start {self.res['qemu_start_ms']:.0f} ms), all RAM in after "
            f"{self.res['ram_ms']:.0f} ms, {len(before)} guest passes before that")

    def check_restored(self, ser, p, saved):
        a = self.a
        self.wait_passes("restored guest", ser, a.passes_after, a.timeout * 2, [p])
        ser.update()
        lines = [l for _, l in ser.lines]
        stop_pass = saved.get("stop_pass")
        # a pass line the guest had begun printing when it was saved
        if saved.get("stop_buf") and lines:
            m = PASS_RE.match(saved["stop_buf"] + lines[0])
            if m:
                stop_pass = int(m.group(1))
                lines = lines[1:]
        first = next((int(PASS_RE.match(l).group(1)) for l in lines if PASS_RE.match(l)), None)
        g = self.res["guest"] = {
            "saved_pass": stop_pass, "first_pass": first, "last_pass": ser.last_pass,
            "mismatches": max(ser.total_bad, len(ser.mismatches)),
            "mismatch_lines": ser.mismatches[:20], "serial_head": lines[:3]}
        lo, hi = saved.get("stop_pass_range") or (stop_pass, stop_pass)
        log(f"{self.name}: restored guest passes {first}..{ser.last_pass} (saved in pass "
            f"{lo if lo == hi else f'{lo}..{hi}'}), mismatches {g['mismatches']}")
        ok = g["mismatches"] == 0 and p.poll() is None and first is not None
        if lo is not None and first is not None and not lo + 1 <= first <= hi + 1:
            want = f"{lo + 1}" if lo == hi else f"{lo + 1}..{hi + 1}"
            self.res["error"] = f"the restored guest's first pass is {first}, not {want}"
            ok = False
        self.res["ok"] = bool(ok) and not self.res["error"]

    # ---- helpers
    def qemu_pid(self, p):
        """QEMU's pid when it runs under umemctl (its only child)."""
        try:
            with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                kids = f.read().split()
            return int(kids[0]) if kids else p.pid
        except OSError:
            return p.pid

    def watch_until_exit(self, u, ser, procs, what):
        last = 0
        end = time.monotonic() + self.a.timeout * 10
        while u.poll() is None:
            if time.monotonic() > end:
                raise Fail(f"{what} did not finish in time")
            for p in procs:
                if p.poll() is not None:
                    raise Fail(f"{p.name} exited ({p.returncode}): {self.tail(p.name)}")
            if ser.update().last_pass != last:
                last = ser.last_pass
                log(f"guest: pass {last}, mismatches total {ser.total_bad}")
            time.sleep(0.02)
        log(f"{what} exited {u.returncode}")


def fmt(v, unit="", nd=0):
    if v is None:
        return "?"
    return f"{v:.{nd}f}{unit}" if isinstance(v, float) else f"{v}{unit}"


def table(results):
    """The comparison, as Markdown."""
    out = []
    saves = [r for r in results if r["phase"] in ("umem-save", "qemu-save")]
    loads = [r for r in results if r["phase"] in ("lazy", "eager", "lazy-slow", "eager-slow",
                                                  "qemu-load")]
    label = {"umem-save": "umem write-protect (`umemd --snapshot`)",
             "qemu-save": "QEMU `background-snapshot` (uffd-wp)",
             "lazy": "lazy (`umemd --restore`)", "eager": "eager (`umemd --restore --eager`)",
             "lazy-slow": "lazy, slow disk (`--throttle N`)",
             "eager-slow": "eager, slow disk (`--eager --throttle N`)",
             "qemu-load": "QEMU's own load (`migrate-incoming`)"}
    if saves:
        out += ["| save | ok | guest stop | total | guest passes during the save | file (on disk) |",
                "|---|---|---|---|---|---|"]
        for r in saves:
            out.append(f"| {label[r['phase']]} | {'yes' if r['ok'] else 'NO'} | "
                       f"{fmt(r.get('stop_ms'), ' ms', 1)} | {fmt(r.get('total_ms'), ' ms')} | "
                       f"{fmt(r.get('passes_during'))} | "
                       f"{fmt(mb(r.get('file_bytes')), ' MiB', 1)} "
                       f"({fmt(mb(r.get('file_disk_bytes')), ' MiB', 1)}) |")
    if loads:
        if out:
            out.append("")
        out += ["| restore | ok | guest runs after | all RAM in after | guest passes before "
                "all RAM was in | QEMU start | pages requested |",
                "|---|---|---|---|---|---|---|"]
        for r in loads:
            out.append(f"| {label[r['phase']]} | {'yes' if r['ok'] else 'NO'} | "
                       f"{fmt(r.get('run_ms'), ' ms')} | {fmt(r.get('ram_ms'), ' ms')} | "
                       f"{fmt(r.get('passes_before_ram'))} | "
                       f"{fmt(r.get('qemu_start_ms'), ' ms')} | "
                       f"{fmt(r.get('pages_requested'))} |")
    return "\n".join(out)


def mb(v):
    return v / (1 << 20) if v is not None else None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.dirname(here)
    ap.add_argument("--phases", default=",".join(ALL_PHASES),
                    help=f"comma-separated, of {', '.join(KNOWN_PHASES)} (default: "
                    f"{','.join(ALL_PHASES)}); lazy and eager restore umem-save's file, "
                    "qemu-load qemu-save's")
    ap.add_argument("--mib", type=int, default=32,
                    help="guest RAM in MiB; the guest checks all of it above 2 MiB (default 32)")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--guest", default=f"{top}/build/qemu/umem-guest.elf")
    ap.add_argument("--umemd", default=f"{top}/build/bin/umemd")
    ap.add_argument("--umemd-restore", metavar="UMEMD",
                    help="the umemd binary for --restore (default: --umemd)")
    ap.add_argument("--slow-throttle", type=int, default=2, metavar="N",
                    help="lazy-slow, eager-slow: umemd --restore --throttle N, a slow disk "
                    "(its background stream sleeps 1 ms every N pages; default 2)")
    ap.add_argument("--umemctl", default=f"{top}/build/bin/umemctl")
    ap.add_argument("--umemd-snap-opt", action="append", default=[],
                    help="extra option for umemd --snapshot (repeat)")
    ap.add_argument("--umemd-restore-opt", action="append", default=[],
                    help="extra option for umemd --restore (repeat)")
    ap.add_argument("--passes-before", type=int, default=3)
    ap.add_argument("--passes-after", type=int, default=3)
    ap.add_argument("--print-every", type=int, default=1, help="guest prints every Nth pass")
    ap.add_argument("--timeout", type=float, default=60,
                    help="base timeout (s); longer steps use multiples of it")
    ap.add_argument("--start-timeout", type=float, default=120, help="QEMU startup (s)")
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    a.umemd_restore = a.umemd_restore or a.umemd
    if a.mib < 3:
        ap.error("--mib must be at least 3")
    phases = [p for p in a.phases.split(",") if p]
    bad = [p for p in phases if p not in KNOWN_PHASES]
    if bad:
        ap.error(f"unknown phase(s) {bad}")
    os.makedirs(a.workdir, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    files = {"umem": f"{a.workdir}/umem.snap", "qemu": f"{a.workdir}/qemu.snap"}
    done = {}
    results = []
    for name in phases:
        r = Phase(a, name)
        log(f"=== phase {name}")
        try:
            if name == "umem-save":
                r.umem_save(files["umem"])
            elif name == "qemu-save":
                r.qemu_save(files["qemu"])
            elif name in ("lazy", "eager", "lazy-slow", "eager-slow"):
                saved = done.get("umem-save")
                if not saved or not saved["ok"]:
                    raise Fail("no umem snapshot (phase umem-save did not pass)")
                slow = ["--throttle", str(a.slow_throttle)] if name.endswith("-slow") else []
                r.restore(files["umem"], saved, name.startswith("eager"), slow)
            elif name == "qemu-load":
                saved = done.get("qemu-save")
                if not saved or not saved["ok"]:
                    raise Fail("no QEMU snapshot (phase qemu-save did not pass)")
                r.qemu_load(files["qemu"], saved)
        except (Fail, Timeout, EOFError, OSError) as e:
            r.res["error"] = f"{type(e).__name__}: {e}"
            r.res["ok"] = False
            log(f"phase {name} FAILED: {r.res['error']}")
        finally:
            r.quit()
            r.kill_all()
            if getattr(r, "ramfile", None):
                try:
                    os.unlink(r.ramfile)
                except OSError:
                    pass
        log(f"phase {name}: {'ok' if r.res['ok'] else 'FAILED'}")
        done[name] = r.res
        results.append(r.res)
    ok = bool(results) and all(r["ok"] for r in results)
    print("", flush=True)
    print(f"== {a.mib} MiB guest, phases {','.join(phases)}: {'OK' if ok else 'FAILED'}")
    for r in results:
        if r["error"]:
            print(f"  {r['phase']}: {r['error']}")
        g = r.get("guest") or {}
        for line in g.get("mismatch_lines", []):
            print(f"    {line}")
    print(table(results))
    print("", flush=True)
    print("RESULT " + json.dumps({"ok": ok, "mib": a.mib, "phases": results}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
