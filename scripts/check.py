#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""umem `make check` driver and the one place where results are counted.

    check.py                  run everything (host suites and one VM per
                              kernel in $KVERS, $CHECK_JOBS (2) at a time),
                              print per-suite lines and one final
                              "N passed, N failed[, N skipped]" line
    check.py --summarize DIR  count the results of one guest-check run

Counting convention, per suite (a selftest binary or a suites.d script):
  * If its stdout has lines "N passed, N failed" (optionally ", N skipped"),
    the last one is its result.
  * Else every kselftest "# Totals: pass:A fail:B xfail:C xpass:D skip:E
    error:F" line is summed: passed += A+C+D, failed += B+F, skipped += E.
  * No summary at all (crash, hang, killed)      -> 1 failed, nothing else.
  * A summary, but timed out (exit 124/137) or never finished -> +1 failed.
  * A summary, non-zero exit other than 4 (KSFT_SKIP), 0 failures reported
                                                 -> +1 failed.
  Skips never count as passes.  A suite or kernel that could not run at all
  makes the whole check fail even when no test failed.
"""

import concurrent.futures
import os
import re
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, "build")
RESULTS = os.path.join(BUILD, "results")

PF_RE = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\s*$")
TOTALS_RE = re.compile(
    r"^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) error:(\d+)")
NOT_OK_RE = re.compile(r"^\s*not ok \d+(?!.*# SKIP)")
KSFT_SKIP = 4
KERNEL_BAD_RE = re.compile(
    r"Kernel panic|BUG:|Oops|WARNING:|RIP:|general protection|Call Trace|"
    r"hung task|lockdep|end Kernel panic|Rebooting")
TIMEOUT_RCS = (124, 137)
DIAG_LINES, DIAG_WIDTH = 24, 200
GUEST_ENV = ("GUEST_TEST_TIMEOUT", "GUEST_SUITE_TIMEOUT", "INSTALLED_KVERS",
             "CHECK_MAIN_KVER")
HOST_SUITE_TIMEOUT = int(os.environ.get("HOST_SUITE_TIMEOUT", "600"))
_say_lock = threading.Lock()


def say(line):
    """Print one whole line at once (the host suites and the VMs run
    side by side)."""
    with _say_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Count:
    def __init__(self, passed=0, failed=0, skipped=0, note=""):
        self.passed, self.failed, self.skipped, self.note = passed, failed, skipped, note
        self.fails = []     # the "not ok" lines, for the closing recap
        self.diag = []      # what the first failure printed after it

    def add(self, other, label=None):
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        if label is not None and other.failed:
            # name every failure once more just above the closing line,
            # where a log tail (CI) still shows it
            named = other.fails or [other.note or "failed"]
            self.fails.extend(f"{label}: {f}" for f in named)
            if other.diag and not self.diag:
                self.diag = [f"{label}: {named[0]}"] + other.diag
        else:
            self.fails.extend(other.fails)
            if not self.diag:
                self.diag = other.diag

    def __str__(self):
        s = f"{self.passed} passed, {self.failed} failed"
        if self.skipped:
            s += f", {self.skipped} skipped"
        return s


def count_output(text, rc):
    """Count one suite from its stdout and exit status (None = unknown)."""
    pf = None
    totals = []
    fails = [l.strip() for l in text.splitlines() if NOT_OK_RE.match(l)]
    diag = first_fail_diag(text)
    for line in text.splitlines():
        m = PF_RE.match(line)
        if m:
            pf = m
            continue
        m = TOTALS_RE.match(line)
        if m:
            totals.append([int(x) for x in m.groups()])
    notes = []
    if rc is None:
        notes.append("did not finish")
    elif rc in TIMEOUT_RCS:
        notes.append(f"timed out (exit {rc})")
    elif rc not in (0, KSFT_SKIP):
        notes.append(f"exit status {rc}")
    if pf:
        c = Count(int(pf.group(1)), int(pf.group(2)), int(pf.group(3) or 0))
    elif totals:
        c = Count()
        for p, f, xf, xp, s, e in totals:
            c.passed += p + xf + xp
            c.failed += f + e
            c.skipped += s
    else:
        # crashed, hung or killed before printing a summary: one failure
        c = Count(failed=1)
        bail = [l for l in text.splitlines() if l.startswith("Bail out!")]
        if bail:
            notes = [bail[-1]]
        else:
            notes.insert(0, "no summary line")
        c.note = "; ".join(notes)
        c.fails = fails
        c.diag = diag
        return c
    # a summary, but the suite did not end cleanly: one more failure
    # (unless it already reports failures and merely exited non-zero)
    if rc is None or rc in TIMEOUT_RCS:
        c.failed += 1
    elif rc not in (0, KSFT_SKIP) and c.failed == 0:
        c.failed += 1
    elif rc not in (0, KSFT_SKIP):
        notes.pop()
    c.note = "; ".join(notes)
    c.fails = fails + ([c.note] if c.note else [])
    c.diag = diag
    return c


def first_fail_diag(text, limit=DIAG_LINES):
    """The "#" lines a suite printed right after its first "not ok" (the
    logs a failing case dumps), so that a CI log's tail shows why."""
    out, inside = [], False
    for line in text.splitlines():
        if inside:
            if not line.startswith("#"):
                break
            out.append(line[:DIAG_WIDTH])
            if len(out) >= limit:
                break
        elif NOT_OK_RE.match(line):
            inside = True
    return out


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def summarize_dir(resdir, label):
    """Count one guest-check result directory.  Returns (lines, total, ok)
    where ok is False when the run broke off."""
    lines = []
    total = Count()
    ok = True
    manifest = read(os.path.join(resdir, "manifest"))
    if manifest is None:
        lines.append(f"{label}: no results (VM did not boot or guest-check did not start)")
        total.failed += 1
        total.fails.append(lines[-1])
        return lines, total, False
    for ent in manifest.splitlines():
        parts = ent.split("\t")
        if len(parts) != 3:
            continue
        name, tap, rcfile = parts
        text = read(os.path.join(resdir, tap)) or ""
        if rcfile == "-":
            rc = 0
        else:
            rct = read(os.path.join(resdir, rcfile))
            rc = int(rct.strip()) if rct and rct.strip().lstrip("-").isdigit() else None
        c = count_output(text, rc)
        total.add(c, f"{label}/{name}")
        secs = (read(os.path.join(resdir, name + ".secs")) or "").strip()
        lines.append(f"{label}/{name}: {c}" + (f" ({c.note})" if c.note else "")
                     + (f" [{secs}s]" if secs.isdigit() else ""))
    if read(os.path.join(resdir, "done")) is None:
        lines.append(f"{label}: guest-check broke off (no 'done' marker)")
        total.failed += 1
        total.fails.append(lines[-1])
        ok = False
    return lines, total, ok


def run_host_suites():
    lines, total, ok = [], Count(), True
    d = os.path.join(REPO, "scripts", "host-suites.d")
    if not os.path.isdir(d):
        return lines, total, ok
    out = os.path.join(RESULTS, "host")
    os.makedirs(out, exist_ok=True)
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        t0 = time.monotonic()
        say(f"check: host suite {name} ...")
        try:
            with open(os.path.join(out, name + ".err"), "w") as err:
                p = subprocess.run([path], cwd=REPO, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=err,
                                   timeout=HOST_SUITE_TIMEOUT)
            text, rc = p.stdout.decode(errors="replace"), p.returncode
        except subprocess.TimeoutExpired as e:
            text, rc = (e.stdout or b"").decode(errors="replace"), 124
        except OSError as e:
            text, rc = f"could not run: {e}\n", 126
            ok = False
        with open(os.path.join(out, name + ".tap"), "w") as f:
            f.write(text)
        c = count_output(text, rc)
        total.add(c, f"host/{name}")
        line = (f"host/{name}: {c}" + (f" ({c.note})" if c.note else "")
                + f" [{time.monotonic() - t0:.0f}s]")
        say(line)
        lines.append(line)
    return lines, total, ok


def run_guest(kver):
    resdir = os.path.join(RESULTS, kver)
    ko = os.path.join(BUILD, f"mod-{kver}", "umem.ko")
    if not os.path.isfile(ko):
        c = Count(failed=1)
        c.fails = [f"{kver}: {ko} missing (make modules-all)"]
        return c.fails[:], c, False
    subprocess.run(["rm", "-rf", resdir], check=False)
    os.makedirs(RESULTS, exist_ok=True)
    log = os.path.join(RESULTS, f"{kver}.console.log")
    t0 = time.monotonic()
    say(f"check: booting {kver} ...")
    # --verbose: the kernel's own messages go to the console log too, so
    # a guest that panics and reboots (the VM just ends) leaves its trace
    env = dict(os.environ)
    env["VNG_OPTS"] = (env.get("VNG_OPTS", "") + " --verbose").strip()
    # vm-run.sh's 1200 s are too few for the kernel that also runs
    # suite-90-installed.sh (a DKMS build under TCG): about 1550 s there
    # on a loaded 2-core host.  Every suite has its own timeout below this.
    env.setdefault("VM_TIMEOUT", "2400")
    with open(log, "wb") as f:
        # the guest does not inherit our environment: forward the knobs
        fwd = [f"{k}={os.environ[k]}" for k in GUEST_ENV if k in os.environ]
        p = subprocess.run([os.path.join(REPO, "scripts", "vm-run.sh"), kver]
                           + (["env"] + fwd if fwd else [])
                           + [os.path.join(REPO, "scripts", "guest-check.sh"), kver],
                           cwd=REPO, stdin=subprocess.DEVNULL, stdout=f,
                           stderr=subprocess.STDOUT, env=env)
    dt = time.monotonic() - t0
    lines, total, ok = summarize_dir(resdir, kver)
    boot = (read(os.path.join(resdir, "boot.secs")) or "").strip()
    boot = f" (guest-check started {boot}s after the guest kernel)" if boot.isdigit() else ""
    lines.append(f"{kver}: VM exit status {p.returncode}, {dt:.0f}s{boot}, console log {log}")
    if not ok:
        # explain why: the kernel's complaints, then the tail of the log
        text = (read(log) or "").splitlines()
        oops = [l for l in text if KERNEL_BAD_RE.search(l)][:40]
        if oops:
            lines.append(f"{kver}: the kernel said:")
            lines.extend("  ! " + l for l in oops)
        lines.extend("  | " + l for l in text[-15:])
    return lines, total, ok


DURATIONS = os.path.join(RESULTS, "durations")


def read_durations():
    """Seconds each job (host, KVER) took in the last complete run."""
    d = {}
    for line in (read(DURATIONS) or "").splitlines():
        p = line.split()
        if len(p) == 2 and p[1].isdigit():
            d[p[0]] = int(p[1])
    return d


def write_durations(d):
    os.makedirs(RESULTS, exist_ok=True)
    tmp = DURATIONS + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(f"{k} {v}\n" for k, v in sorted(d.items()))
    os.replace(tmp, DURATIONS)


def check_jobs():
    """How many jobs (the host suites, one VM per kernel) run at once:
    CHECK_JOBS, default 2.  A TCG VM keeps about one core busy, so on two
    cores a second job (a VM, or the host suites) mostly uses what the
    first leaves idle."""
    v = os.environ.get("CHECK_JOBS", "")
    return int(v) if v.isdigit() and int(v) > 0 else 2


def print_recap(count, limit=40):
    """Name the failures again just above the closing line."""
    if not count.fails:
        return
    print("check: failed:", flush=True)
    for f in count.fails[:limit]:
        print("  " + f, flush=True)
    if len(count.fails) > limit:
        print(f"  ... and {len(count.fails) - limit} more", flush=True)
    if count.diag:
        print("check: what the first failure printed:", flush=True)
        print("  " + count.diag[0], flush=True)
        for line in count.diag[1:]:
            print("    " + line, flush=True)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--summarize":
        resdir = sys.argv[2].rstrip("/")
        lines, total, ok = summarize_dir(resdir, os.path.basename(resdir))
        for l in lines:
            print(l)
        print_recap(total)
        print(total)
        return 0 if ok and total.failed == 0 else 1
    if len(sys.argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2

    kvers = os.environ.get("KVERS", "").split()
    if not kvers:
        print("check: KVERS is empty (no kernels with headers?)", file=sys.stderr)
        return 2
    grand = Count()
    all_ok = True

    # The jobs: the host suites (one after the other, their lines printed
    # as they come) and a VM per kernel, CHECK_JOBS of them at a time.
    # Each kernel's lines are printed when it is done, in KVERS order.
    # With CHECK_JOBS=1 the order is the old one: host suites, then each
    # kernel; with more, the longest job of the last run starts first
    # (two slots: RT 850 s, 6.12 760 s, 6.1 590 s, host 130 s end at
    # 1350 s instead of 1440 s when the host suites go first).
    jobs = [("host", run_host_suites, ())] + [(k, run_guest, (k,)) for k in kvers]
    njobs = check_jobs()
    prev = read_durations()
    if njobs > 1:
        jobs.sort(key=lambda j: -prev.get(j[0], float("inf")))
    took = {}

    def timed(name, fn, args):
        t0 = time.monotonic()
        r = fn(*args)
        if r[2]:    # only a complete run says how long the job takes
            took[name] = round(time.monotonic() - t0)
        return r

    with concurrent.futures.ThreadPoolExecutor(max_workers=njobs) as ex:
        futs = {name: ex.submit(timed, name, fn, args) for name, fn, args in jobs}
        for name in kvers + ["host"]:
            lines, total, ok = futs[name].result()
            grand.add(total)
            all_ok &= ok
            if name != "host":
                for l in lines:
                    say(l)
    write_durations(dict(prev, **took))

    print_recap(grand)
    if not all_ok:
        print("check: some suites or kernels could not run", flush=True)
    print(grand, flush=True)
    return 0 if all_ok and grand.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
