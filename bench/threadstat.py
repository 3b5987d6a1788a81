#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""threadstat.py OUT - per-thread CPU and run-queue time of the QEMUs and
umemds on this machine, from /proc/PID/task/TID/schedstat, sampled every
0.1 s until SIGTERM or SIGINT.  Writes to OUT, one line per thread name
(threads of the same process and name are added up), largest CPU first:

    cpu ms  runq ms  switches  thread

cpu: time on a CPU; runq: time runnable but waiting for a CPU; switches:
times it was scheduled in.  A thread is named PROCESS[ROLE]/THREAD, ROLE
being src or dst for umemd and QEMU's -name for QEMU.  Threads that
started after the first sample count from zero.  Name the threads
(umemd does; QEMU with -name NAME,debug-threads=on) to tell them apart.
Documentation/design.rst, "Who waits for a CPU", shows its use."""
import os
import signal
import sys
import time

PROCS = ("qemu-system-x86", "umemd")


def sample(first, last, cmd, started):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                pcomm = f.read().strip()
            if pcomm not in PROCS:
                continue
            if pid not in cmd:
                with open(f"/proc/{pid}/cmdline") as f:
                    cmd[pid] = f.read().split("\0")
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    tcomm = f.read().strip()
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    v = tuple(int(x) for x in f.read().split())
                key = (pid, tid, pcomm, tcomm)
                if key not in first:
                    first[key] = (0, 0, 0) if started else v
                last[key] = v
        except (OSError, ValueError):
            pass                # gone meanwhile


def role(pcomm, c):
    if pcomm == "umemd":
        return "src" if "--outgoing" in c else "dst"
    return c[c.index("-name") + 1].split(",")[0] if "-name" in c else ""


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    first, last, cmd = {}, {}, {}
    sample(first, last, cmd, False)
    while not stop:
        time.sleep(0.1)
        sample(first, last, cmd, True)
    agg = {}
    for k, v in last.items():
        pid, _, pcomm, tcomm = k
        name = f"{pcomm}[{role(pcomm, cmd.get(pid, []))}]" + ("" if pcomm == tcomm else f"/{tcomm}")
        a = agg.setdefault(name, [0, 0, 0])
        for i in range(3):
            a[i] += v[i] - first[k][i]
    with open(sys.argv[1], "w") as out:
        out.write("   cpu ms  runq ms  switches  thread\n")
        for name, (r, w, n) in sorted(agg.items(), key=lambda x: -x[1][0]):
            if r >= 5e6:
                out.write(f"{r / 1e6:9.0f} {w / 1e6:8.0f} {n:9d}  {name}\n")


if __name__ == "__main__":
    main()
