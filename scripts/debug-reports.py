#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Find kernel reports in a make check-debug result directory.

    debug-reports.py RESDIR
    debug-reports.py --boots RESDIR    every RESDIR/boot<N>/ at once (one
                                       guest each), repeats folded across them

Reads RESDIR/dmesg-boot.txt (boot until insmod), RESDIR/dmesg-full.txt
(insmod until the end; RESDIR/console.log when the VM broke off before
writing it) and RESDIR/kmemleak-{boot,check,failnth}.txt, cuts out every
report (KASAN, UBSAN, lockdep, "BUG:", "WARNING:", hung task, soft lockup,
RCU stall, Oops, list corruption, kmemleak's "unreferenced object"), pins
each on the suite that was running (guest-check.sh writes "guest-check:
running NAME" and guest-debug.sh "umem-debug: phase ..." to /dev/kmsg) and
folds repeats of the same report into one.  Writes

    RESDIR/reports.txt   every distinct report, verbatim, with where and
                         how often it was seen
    RESDIR/reports.tap   one "not ok" line per distinct report (or one "ok"
                         line when there are none), notes, and the
                         "N passed, N failed" line scripts/check.py counts

and adds reports.tap to RESDIR/manifest.  Not reports: fault injection's
own messages ("FAULT_INJECTION: forcing a failure." and its stack), the
page allocator's "page allocation failure" dump that an injected failure
causes, and "Huh VM_FAULT_OOM leaked out to the #PF handler. Retrying
PF" (a user fault whose allocation failed is retried); they are counted
as notes.  Exit status: 0 when there are no reports, 1 otherwise.
"""

import os
import re
import sys

TS_RE = re.compile(r"^\[\s*\d+\.\d+\]\s?")
MARK_SUITE = re.compile(r"guest-check: running (\S+)")
MARK_PHASE = re.compile(r"umem-debug: (phase .*)")

# (regex, type); the first match names the report.
HEADERS = [
    (r"BUG: KASAN: ", "KASAN"),
    (r"UBSAN: ", "UBSAN"),
    (r"WARNING: possible circular locking dependency detected", "lockdep"),
    (r"WARNING: (possible recursive locking detected|inconsistent lock state|"
     r"suspicious RCU usage|bad unlock balance detected|held lock freed|"
     r"lock held when returning to user space|"
     r"possible irq lock inversion dependency detected|"
     r".*-safe -> .*-unsafe lock order detected|chain_key collision|"
     r"Nested lock was not taken|bad contention detected|"
     r"lock held at task exit time)", "lockdep"),
    (r"BUG: sleeping function called from invalid context", "atomic-sleep"),
    (r"BUG: scheduling while atomic", "atomic-sleep"),
    (r"BUG: workqueue leaked", "BUG"),
    (r"INFO: task .* blocked for more than \d+ seconds", "hung-task"),
    (r"BUG: soft lockup", "soft-lockup"),
    (r"rcu: INFO: .*detected stall|self-detected stall", "rcu-stall"),
    (r"list_(add|del) corruption|list_del corruption", "list-corruption"),
    (r"page dumped because: ", "DEBUG_VM"),
    (r"kernel BUG at ", "BUG"),
    (r"BUG: ", "BUG"),
    (r"Oops: |general protection fault", "Oops"),
    (r"WARNING: CPU: \d+ PID: \d+ at ", "WARNING"),
    (r"WARNING: ", "WARNING"),
    (r"unreferenced object 0x", "kmemleak"),
    (r"kmemleak: .*(disabled|[Cc]annot|pool empty|failed)", "kmemleak-internal"),
    (r"Kernel panic", "panic"),
]
HEADERS = [(re.compile(r), t) for r, t in HEADERS]

# Not reports (consequences of fault injection); they end a report block.
EXCLUDED = [
    (re.compile(r"FAULT_INJECTION: forcing a failure"), "injected failures"),
    (re.compile(r"page allocation failure: order:"),
     "page allocation failure dumps (after an injected failure)"),
    (re.compile(r"Huh VM_FAULT_OOM leaked out to the #PF handler"),
     "VM_FAULT_OOM on a user fault, fault retried"),
]
# A report that announces another one right after it (same block).
LEADS = ("list-corruption", "DEBUG_VM")
KRIP_RE = re.compile(r"^RIP: 0010:([\w.$]+)\+0x")
# Lines that an "Oops: ..." line a few lines later belongs to.
OOPS_LEAD = re.compile(r"BUG: (unable to handle|kernel NULL pointer dereference)|"
                       r"kernel BUG at ")
FRAME_RE = re.compile(
    r"^\s*(?:\[<[0-9a-f]+>\]\s*)?(\? )?([\w.$]+)\+0x[0-9a-f]+/0x[0-9a-f]+(?:\s+\[(\w+)\])?")
ALLOC_FRAMES = re.compile(
    r"^(kmemleak_|__kmalloc|kmalloc|__kmem_cache|kmem_cache_alloc|slab_|"
    r"__alloc_pages|alloc_pages|__kvmalloc|kvmalloc|kvcalloc|__vmalloc|vmalloc|"
    r"pcpu_|__do_kmalloc|krealloc|kmemdup|kstrdup|__kmem|___slab|new_slab|"
    r"alloc_slab|__slab|kzalloc|kcalloc|allocate_slab|__alloc_skb|__alloc_frozen|"
    r"alloc_frozen|__folio_alloc|folio_alloc)")
MAX_LINES = 300


def read_lines(path):
    try:
        with open(path, errors="replace") as f:
            return [TS_RE.sub("", l.rstrip("\n")) for l in f]
    except OSError:
        return None


def header_type(line):
    for rx, t in HEADERS:
        if rx.search(line):
            return t
    return None


def excluded(line):
    for rx, what in EXCLUDED:
        if rx.search(line):
            return what
    return None


def frames(lines):
    out = []
    for l in lines:
        m = FRAME_RE.match(l)
        if m and not m.group(1):
            out.append((m.group(2), m.group(3)))
    return out


def norm_title(s):
    s = re.sub(r"\+0x[0-9a-f]+/0x[0-9a-f]+", "", s)
    s = re.sub(r"0x[0-9a-f]+|\b[0-9a-f]{8,}\b", "X", s)
    s = re.sub(r"\b\d+\b", "N", s)
    s = re.sub(r"task \S+:N", "task T", s)
    return s.strip()


class Report:
    def __init__(self, rtype, lines, where, source):
        self.type, self.lines, self.where, self.source = rtype, lines, where, source
        fr = frames(lines)
        ours = [f for f, m in fr if m == "umem"]
        if rtype == "kmemleak":
            title = lines[0].strip()
            m = re.search(r"\(size (\d+)\)", title)
            size = m.group(1) if m else "?"
            interesting = [f for f, _ in fr if not ALLOC_FRAMES.match(f)]
            origin = interesting[0] if interesting else (fr[0][0] if fr else "?")
            crc = next((re.search(r"crc ([0-9a-f]+)", l).group(1) for l in lines
                        if re.search(r"backtrace \(crc [0-9a-f]+\)", l)), "")
            self.title = (f"kmemleak: unreferenced object (size {size}) allocated in "
                          f"{origin}" + (" [umem]" if ours else ""))
            self.key = ("kmemleak", crc or origin, origin)
        else:
            self.title = lines[0].strip()
            self.key = (rtype, norm_title(self.title), tuple(ours[:3]) or
                        tuple(f for f, _ in fr[:3]))
            rip = next((m.group(1) for m in (KRIP_RE.match(l) for l in lines) if m), None)
            if rtype in ("Oops", "BUG") and rip:
                # a GPF and a page fault at the same kernel RIP from the
                # same callers are one bug hitting different garbage
                self.key = ("crash", rip, tuple(ours[:3]))
        self.umem = bool(ours) or "umem" in self.title
        self.count = 1
        self.wheres = [where]


def scan_dmesg(lines, source, where0, reports, notes):
    where = where0
    cur = None          # [type, lines, where]

    def close():
        nonlocal cur
        if cur:
            prev = reports[-1] if reports else None
            if cur[0] == "panic" and "Fatal exception" in cur[1][0] and prev and \
               prev.source == source and prev.type in ("Oops", "BUG"):
                # oops=panic: the panic is the end of that Oops, not a report
                prev.lines.extend(cur[1])
            else:
                reports.append(Report(cur[0], cur[1], cur[2], source))
        cur = None

    i = 0
    while i < len(lines):
        l = lines[i]
        m = MARK_SUITE.search(l) or MARK_PHASE.search(l)
        if m:
            close()
            where = m.group(1)
            i += 1
            continue
        ex = excluded(l)
        if ex:
            close()
            notes[ex] = notes.get(ex, 0) + 1
            # skip its stack: up to </TASK> (or a few lines for one-liners)
            j = i + 1
            while j < len(lines) and j < i + 400:
                if header_type(lines[j]) or MARK_SUITE.search(lines[j]) or \
                   MARK_PHASE.search(lines[j]) or excluded(lines[j]):
                    break
                j += 1
                if lines[j - 1].strip() == "</TASK>":
                    # warn_alloc's Mem-Info follows its stack
                    if ex.startswith("page allocation"):
                        while j < len(lines) and not header_type(lines[j]) and \
                              not excluded(lines[j]) and not MARK_SUITE.search(lines[j]) \
                              and not MARK_PHASE.search(lines[j]) and \
                              re.match(r"^(Mem-Info|Node |DMA|Normal|lowmem|active_anon|"
                                       r"\s|\d+ |Free swap|Total swap|[a-z_]+:|"
                                       r"\d+ pages)", lines[j]):
                            j += 1
                    break
            i = j
            continue
        t = header_type(l)
        if t:
            if cur and cur[0] in LEADS and len(cur[1]) <= 4:
                cur[1].append(l)        # the WARNING/BUG that follows it
                i += 1
                continue
            if cur and t == "Oops" and cur[0] == "BUG" and len(cur[1]) <= 10 and \
               OOPS_LEAD.search(cur[1][0]):
                cur[1].append(l)        # "BUG: unable to handle ..." is its first line
                i += 1
                continue
            close()
            cur = [t, [l], where]
            i += 1
            continue
        if cur:
            cur[1].append(l)
            s = l.strip()
            done = False
            if cur[0] == "KASAN":
                done = s.startswith("=" * 20)
            elif cur[0] == "kmemleak":
                done = False
            elif s == "</TASK>":
                done = True
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                if "---[ end trace" in nxt:
                    cur[1].append(nxt)
                    i += 1
                if cur[0] == "hung-task" and i + 1 < len(lines) and \
                   lines[i + 1].startswith("Showing all locks held"):
                    while i + 1 < len(lines) and not lines[i + 1].startswith("=" * 20) \
                          and len(cur[1]) < MAX_LINES:
                        i += 1
                        cur[1].append(lines[i])
            if done or len(cur[1]) >= MAX_LINES:
                close()
        i += 1
    close()


def scan_kmemleak(lines, source, where, reports):
    cur = None
    for l in lines:
        if l.startswith("unreferenced object"):
            if cur:
                reports.append(Report("kmemleak", cur, where, source))
            cur = [l]
        elif cur is not None:
            cur.append(l)
    if cur:
        reports.append(Report("kmemleak", cur, where, source))


def collect(res, prefix, raw, notes, missing):
    """Scan one guest's result directory; sources are named prefix + file."""
    boot = read_lines(os.path.join(res, "dmesg-boot.txt"))
    if boot is not None:
        scan_dmesg(boot, prefix + "dmesg-boot.txt", "boot (before insmod)", raw, notes)
    else:
        missing.append(prefix + "dmesg-boot.txt")
    full = read_lines(os.path.join(res, "dmesg-full.txt"))
    if full is not None:
        scan_dmesg(full, prefix + "dmesg-full.txt", "insmod", raw, notes)
    else:
        missing.append(prefix + "dmesg-full.txt")
        con = read_lines(os.path.join(res, "console.log"))
        if con is not None:
            # the VM broke off: the console has the kernel's messages
            # (vng --verbose), boot included; dedup folds what dmesg-boot had
            scan_dmesg(con, prefix + "console.log", "boot", raw, notes)
    for f, where in (("kmemleak-boot.txt", "boot (before insmod)"),
                     ("kmemleak-check.txt", "guest-check.sh (selftests of run_list, "
                      "guest suites, rmmod)"),
                     ("kmemleak-failnth.txt", "umem_failnth_test (and its rmmod)")):
        kl = read_lines(os.path.join(res, f))
        if kl is None:
            missing.append(prefix + f)
        else:
            scan_kmemleak(kl, prefix + f, where, raw)


def main():
    args = sys.argv[1:]
    every = bool(args) and args[0] == "--boots"
    if every:
        args = args[1:]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    res = args[0].rstrip("/")
    raw, notes, missing = [], {}, []
    if every:
        boots = sorted((d for d in os.listdir(res)
                        if re.fullmatch(r"boot\d+", d) and
                        os.path.isdir(os.path.join(res, d))),
                       key=lambda d: int(d[4:]))
        for d in boots:
            collect(os.path.join(res, d), d + "/", raw, notes, missing)
    else:
        collect(res, "", raw, notes, missing)

    distinct = {}
    for r in raw:
        d = distinct.get(r.key)
        if d is None:
            distinct[r.key] = r
        else:
            d.count += 1
            if r.where not in d.wheres:
                d.wheres.append(r.where)
    reps = list(distinct.values())

    with open(os.path.join(res, "reports.txt"), "w") as f:
        if not reps:
            f.write("no kernel reports\n")
        for n, r in enumerate(reps, 1):
            f.write(f"=== report {n}: {r.type}{' (umem in the trace)' if r.umem else ''}\n")
            f.write(f"=== seen {r.count} time(s); first in {r.source}, while running: "
                    f"{', '.join(r.wheres)}\n")
            f.write("\n".join(r.lines) + "\n\n")
    tap = []
    for n, r in enumerate(reps, 1):
        tap.append(f"not ok {n} {r.type}: {r.title[:160]} "
                   f"# during {', '.join(r.wheres)[:200]}; seen {r.count}x"
                   f"{'; umem in the trace' if r.umem else ''}")
    failed = len(reps)
    passed = 0
    if not reps:
        tap.append("ok 1 no KASAN, UBSAN, lockdep, BUG, WARNING, hung task, soft lockup "
                   "or kmemleak report")
        passed = 1
    if missing:
        tap.append(f"# note: missing {', '.join(missing)}")
    for what, k in sorted(notes.items()):
        tap.append(f"# note: {k} x {what} (not reports)")
    tap.append(f"{passed} passed, {failed} failed")
    with open(os.path.join(res, "reports.tap"), "w") as f:
        f.write("\n".join(tap) + "\n")
    man = os.path.join(res, "manifest")
    try:
        with open(man) as f:
            have = "\nkernel-reports\t" in "\n" + f.read()
    except OSError:
        have = False
    if not have:
        with open(man, "a") as f:
            f.write("kernel-reports\treports.tap\t-\n")
    for l in tap:
        print("reports: " + l)
    return 1 if reps else 0


if __name__ == "__main__":
    sys.exit(main())
