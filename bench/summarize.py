#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarise a bench/run.sh result directory: CSV summaries, gnuplot data
files and summary.md.  Usage: summarize.py DIR

Every ratio is computed per repetition against the baseline measured in the
same repetition, then the median over repetitions is reported together with
its spread (min..max over repetitions)."""
import csv
import glob
import json
import os
import re
import statistics
import sys
from collections import defaultdict

D = sys.argv[1]
LAT = ["shmem", "umem-copy", "umem-write", "uffd-copy", "uffd-minor",
       "shmem-present", "umem-present"]
INST = ["umem-copy", "umem-copy-vec", "umem-write", "uffd-copy", "uffd-minor"]
THR = ["umem-copy", "umem-vec", "umem-write", "uffd-copy", "uffd-minor"]


def pct(sorted_v, q):
    if not sorted_v:
        return float("nan")
    i = min(len(sorted_v) - 1, max(0, int(round(q * (len(sorted_v) - 1)))))
    return sorted_v[i]


def med(v):
    return statistics.median(v) if v else float("nan")


def spread(v):
    return (min(v), max(v)) if v else (float("nan"), float("nan"))


def us(ns):
    return ns / 1000.0


def rows(name):
    """Rows of a CSV of the run; none if the run broke off before it."""
    path = os.path.join(D, name)
    if not os.path.exists(path):
        return []
    return list(csv.DictReader(open(path)))


meta = {}
# A directory of bench/net.sh alone has no meta.txt: section 4 only.
for line in open(os.path.join(D, "meta.txt")) if os.path.exists(os.path.join(D, "meta.txt")) else []:
    for part in line.strip().split(" ") if line.startswith("lat_pages") else [line.strip()]:
        if "=" in part:
            k, v = part.split("=", 1)
            meta[k] = v

NMETA0 = {}
if os.path.exists(os.path.join(D, "net_meta.txt")):
    for line in open(os.path.join(D, "net_meta.txt")):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            NMETA0[k] = v

md = []
md.append(f"Mode **{meta.get('mode')}**, measured {meta.get('date')} on kernel "
          f"`{meta.get('kernel')}`, {meta.get('cpus')} vCPUs "
          f"(`{meta.get('cpu')}`, virtualisation: {meta.get('virt')}), "
          f"tree `{meta.get('git')}`; the run took {meta.get('elapsed_s', '?')} s.")
md.append("")
md.append(f"Parameters: {meta.get('lat_pages')} faults per latency run x "
          f"{meta.get('lat_reps')} repetitions; {meta.get('inst_pages')} pages per "
          f"install run x {meta.get('inst_reps')}; {meta.get('thr_pages')} pages per "
          f"threads run x {meta.get('thr_reps')}; blocktime x {meta.get('bt_reps')}"
          + (f"; network: {NMETA0.get('size')} per migration x {NMETA0.get('reps')}."
             if NMETA0.get("size") else "."))
md.append("")
targets = []

# ------------------------------------------------------------------ (1) latency
lat = defaultdict(dict)   # backend -> rep -> sorted samples
for f in glob.glob(os.path.join(D, "lat", "*.txt")):
    base = os.path.basename(f)[:-4]
    b, rep = base.rsplit(".", 1)
    lat[b][int(rep)] = sorted(int(x) for x in open(f) if x.strip())
reps = sorted(set().union(*[set(v) for v in lat.values()])) if lat else []
stats = {b: {r: (pct(s, 0.5), pct(s, 0.99), s[-1] if s else float("nan"))
             for r, s in lat[b].items()} for b in lat}


def ratio(b, base, k):
    v = [stats[b][r][k] / stats[base][r][k] for r in reps
         if r in stats.get(b, {}) and r in stats.get(base, {}) and stats[base][r][k]]
    return med(v), spread(v)


with open(os.path.join(D, "lat_summary.csv"), "w") as f:
    w = csv.writer(f)
    w.writerow(["backend", "p50_ns", "p99_ns", "max_ns", "p50_min_ns", "p50_max_ns",
                "p50_vs_uffd_copy", "p99_vs_uffd_copy", "p50_vs_shmem"])
    md.append("## 1. Local fault service latency")
    md.append("")
    md.append("One task touches one page at a time (shuffled order); a daemon thread "
              "blocked in `read()` serves each request from memory. Time from just "
              "before the access to its return. Medians over repetitions of each "
              "repetition's p50/p99/max; spread = min..max of the p50s. Ratios "
              "are per-repetition ratios against the baseline of the same "
              "repetition, median over repetitions.")
    md.append("")
    md.append("| backend | p50 µs | p99 µs | max µs | p50 spread µs | p50 / uffd-copy | p99 / uffd-copy | p50 / shmem floor |")
    md.append("|---|---|---|---|---|---|---|---|")
    for b in LAT:
        if b not in stats:
            continue
        p50 = med([x[0] for x in stats[b].values()])
        p99 = med([x[1] for x in stats[b].values()])
        mx = med([x[2] for x in stats[b].values()])
        lo, hi = spread([x[0] for x in stats[b].values()])
        r50, _ = ratio(b, "uffd-copy", 0)
        r99, _ = ratio(b, "uffd-copy", 1)
        rfl, _ = ratio(b, "shmem", 0)
        w.writerow([b, p50, p99, mx, lo, hi, f"{r50:.3f}", f"{r99:.3f}", f"{rfl:.3f}"])
        md.append(f"| {b} | {us(p50):.1f} | {us(p99):.1f} | {us(mx):.1f} | "
                  f"{us(lo):.1f}..{us(hi):.1f} | {r50:.2f} | {r99:.2f} | {rfl:.2f} |")
    md.append("")
    # Like for like: umem-copy vs uffd-copy, umem-write vs uffd-minor.
    # Issue 14: a served umem fault p50 <= 0.9x uffd; every page present:
    # what a shmem fault on a page in the page cache costs.
    for a, base, t50 in (("umem-copy", "uffd-copy", 0.9), ("umem-write", "uffd-minor", 1.0),
                         ("umem-present", "shmem-present", 1.0)):
        if a in stats and base in stats:
            r50, s50 = ratio(a, base, 0)
            r99, s99 = ratio(a, base, 1)
            ok = r50 <= t50 and r99 <= 1.0
            targets.append((f"Fault latency {a}/{base}: p50 ratio ≤ {t50} and p99 ratio ≤ 1.0",
                            f"p50 {r50:.2f} (spread {s50[0]:.2f}..{s50[1]:.2f}), "
                            f"p99 {r99:.2f} (spread {s99[0]:.2f}..{s99[1]:.2f})", ok))
    md.append("![fault latency CDF](lat_cdf.png)")
    md.append("")

for b in lat:
    pooled = sorted(x for s in lat[b].values() for x in s)
    n = len(pooled)
    step = max(1, n // 2000)
    with open(os.path.join(D, f"lat_cdf_{b}.dat"), "w") as f:
        for i in range(0, n, step):
            f.write(f"{pooled[i] / 1000.0:.3f} {(i + 1) / n:.5f}\n")
        if n:
            f.write(f"{pooled[-1] / 1000.0:.3f} 1.0\n")

# ------------------------------------------------------------------ (2) install
inst = defaultdict(dict)  # (method, batch) -> rep -> pps
for row in rows("install.csv"):
    inst[(row["method"], int(row["batch"]))][int(row["rep"])] = float(row["pages_per_s"])
ireps = sorted(set().union(*[set(v) for v in inst.values()])) if inst else []
REFS = ("memcpy", "memcpy-hot", "pwrite-hot")
batches = sorted({b for (m, b) in inst if m not in REFS})

# The copy limit of each repetition: the faster of memcpy and pwrite into
# already allocated shmem (under TCG the emulated SSE memcpy is slower than
# the kernel's rep movs; on hardware it is the other way round).
LIMIT = ("copy limit", 0)
for r in ireps:
    c = [inst[k][r] for k in (("memcpy-hot", 16), ("pwrite-hot", 16)) if r in inst.get(k, {})]
    if c:
        inst[LIMIT][r] = max(c)


def iratio(key, base):
    v = [inst[key][r] / inst[base][r] for r in ireps
         if r in inst.get(key, {}) and r in inst.get(base, {})]
    return med(v), spread(v)


md.append("## 2. Install throughput")
md.append("")
md.append("Pages per second installed with no fault pending, 4 KiB pages, BATCH "
          "pages per call. References: `memcpy` = memcpy into a fresh shmem "
          "mapping (first-touch fault + page allocation + copy); `memcpy-hot` = "
          "memcpy into already allocated shmem (the copy alone, by user space); "
          "`pwrite-hot` = `pwrite()` into already allocated shmem (the copy "
          "alone, by the kernel, as the install ioctls do it). The **copy "
          "limit** of a repetition is the faster of memcpy-hot and pwrite-hot in "
          "that repetition. Ratios are per repetition against single-page "
          "`UFFDIO_COPY` (`uffd-copy`, batch 1), the fresh memcpy and the copy "
          "limit of the same repetition, median over repetitions.")
md.append("")
md.append("| method | batch | pages/s (median) | spread | / uffd-copy x1 | / memcpy (fresh) | / copy limit |")
md.append("|---|---|---|---|---|---|---|")
with open(os.path.join(D, "install_summary.csv"), "w") as f:
    w = csv.writer(f)
    w.writerow(["method", "batch", "pps", "pps_min", "pps_max", "vs_uffd_copy_1",
                "vs_memcpy", "vs_copy_limit"])
    keys = [(m, 16) for m in REFS if (m, 16) in inst]
    keys += [(m, b) for m in INST for b in batches if (m, b) in inst]
    for k in keys:
        p = med(list(inst[k].values()))
        lo, hi = spread(list(inst[k].values()))
        r1, _ = iratio(k, ("uffd-copy", 1))
        rm, _ = iratio(k, ("memcpy", 16))
        rh, _ = iratio(k, LIMIT)
        w.writerow([k[0], k[1], f"{p:.0f}", f"{lo:.0f}", f"{hi:.0f}", f"{r1:.3f}",
                    f"{rm:.3f}", f"{rh:.3f}"])
        md.append(f"| {k[0]} | {k[1] if k[0] not in REFS else '(16)'} | {p:,.0f} | "
                  f"{lo:,.0f}..{hi:,.0f} | {r1:.2f} | {rm:.2f} | {rh:.2f} |")
md.append("")
with open(os.path.join(D, "install.dat"), "w") as f:
    f.write("# batch " + " ".join(INST) + " " + " ".join(REFS) + "\n")
    for b in batches:
        row = [str(b)]
        for m in INST + list(REFS):
            key = (m, b) if m in INST else (m, 16)
            row.append(f"{med(list(inst[key].values())):.0f}" if key in inst else "NaN")
        f.write(" ".join(row) + "\n")
# Target: the best batch size (median pages/s) of each batched umem form.
for m in ("umem-copy-vec", "umem-write", "umem-copy"):
    cand = [b for b in batches if b > 1 and (m, b) in inst]
    if not cand or ("uffd-copy", 1) not in inst or LIMIT not in inst:
        continue
    b = max(cand, key=lambda x: med(list(inst[(m, x)].values())))
    k = (m, b)
    r1, s1 = iratio(k, ("uffd-copy", 1))
    rh, sh = iratio(k, LIMIT)
    rm, sm = iratio(k, ("memcpy", 16))
    targets.append((f"Batched install {m} (best batch: {b}): ≥ 2x single-page "
                    f"UFFDIO_COPY and ≥ 50 % of the copy limit",
                    f"{r1:.2f}x uffd-copy x1 (spread {s1[0]:.2f}..{s1[1]:.2f}); "
                    f"{100 * rh:.0f} % of the copy limit (spread "
                    f"{100 * sh[0]:.0f}..{100 * sh[1]:.0f} %); "
                    f"{100 * rm:.0f} % of a fresh-shmem memcpy",
                    r1 >= 2.0 and rh >= 0.5))
md.append("![install throughput](install.png)")
md.append("")

# ------------------------------------------------------------------ (3) threads
thr = defaultdict(dict)   # (backend, threads) -> rep -> fps
for row in rows("threads.csv"):
    thr[(row["backend"], int(row["threads"]))][int(row["rep"])] = float(row["faults_per_s"])
treps = sorted(set().union(*[set(v) for v in thr.values()])) if thr else []
tcounts = sorted({t for (_, t) in thr})


def tratio(key, base):
    v = [thr[key][r] / thr[base][r] for r in treps
         if r in thr.get(key, {}) and r in thr.get(base, {})]
    return med(v), spread(v)


md.append("## 3. Many faulting threads")
md.append("")
md.append("N threads fault distinct pages concurrently; one daemon thread reads "
          "requests (up to 64 per `read()`) and installs each with a single-page "
          "call (`umem-vec`: all requests of one `read()` in one `UMEM_COPY_VEC`). "
          "Aggregate faults/s, median over repetitions; ratio against uffd-copy "
          "with the same thread count in the same repetition.")
md.append("")
md.append("| backend | " + " | ".join(f"{t} thr" for t in tcounts) + " | 32/1 ratio |")
md.append("|---|" + "---|" * (len(tcounts) + 1))
with open(os.path.join(D, "threads_summary.csv"), "w") as f:
    w = csv.writer(f)
    w.writerow(["backend", "threads", "fps", "fps_min", "fps_max", "vs_uffd_copy", "vs_1_thread"])
    for b in THR:
        cells = []
        for t in tcounts:
            k = (b, t)
            if k not in thr:
                cells.append("-")
                continue
            p = med(list(thr[k].values()))
            lo, hi = spread(list(thr[k].values()))
            ru, _ = tratio(k, ("uffd-copy", t))
            r1, _ = tratio(k, (b, tcounts[0]))
            w.writerow([b, t, f"{p:.0f}", f"{lo:.0f}", f"{hi:.0f}", f"{ru:.3f}", f"{r1:.3f}"])
            cells.append(f"{p:,.0f} ({ru:.2f})")
        hi_t = tcounts[-1] if tcounts else 0
        rr, _ = tratio((b, hi_t), (b, tcounts[0])) if tcounts else (float("nan"), None)
        md.append(f"| {b} | " + " | ".join(cells) + f" | {rr:.2f} |")
md.append("")
md.append("Cells: faults/s (ratio to uffd-copy at the same thread count).")
md.append("")
with open(os.path.join(D, "threads.dat"), "w") as f:
    f.write("# threads " + " ".join(THR) + "\n")
    for t in tcounts:
        f.write(str(t) + " " + " ".join(
            f"{med(list(thr[(b, t)].values())):.0f}" if (b, t) in thr else "NaN"
            for b in THR) + "\n")
if tcounts:
    for b in ("umem-copy", "umem-vec", "umem-write"):
        if (b, tcounts[-1]) in thr:
            r, s = tratio((b, tcounts[-1]), (b, tcounts[0]))
            targets.append((f"No collapse for {b}: faults/s at {tcounts[-1]} threads ≥ "
                            f"{tcounts[0]} thread",
                            f"{r:.2f}x (spread {s[0]:.2f}..{s[1]:.2f})", r >= 1.0))
md.append("![faults/s against threads](threads.png)")
md.append("")

# ------------------------------------------------------------------ (5) blocktime
bt = defaultdict(dict)
for row in rows("blocktime.csv"):
    bt[row["backend"]][int(row["rep"])] = (int(row["blocktime_ns"]), int(row["ns"]),
                                           int(row["npages"]))
md.append("## 5. Blocktime")
md.append("")
md.append("Two faulting threads (the two vCPUs), as in section 3; blocktime is "
          "the time during which both were inside a fault at once (QEMU's "
          "definition), as a fraction of the run, and per fault. This run adds "
          "a mutex around each access to count blocked threads, so its faults/s "
          "are not comparable to section 3.")
md.append("")
md.append("| backend | blocktime / run | blocktime per fault µs | / uffd-copy |")
md.append("|---|---|---|---|")
breps = sorted(set().union(*[set(v) for v in bt.values()])) if bt else []
for b in THR:
    if b not in bt:
        continue
    frac = med([v[0] / v[1] for v in bt[b].values()])
    per = med([v[0] / v[2] for v in bt[b].values()])
    rr = med([bt[b][r][0] / bt["uffd-copy"][r][0] for r in breps
              if r in bt[b] and r in bt.get("uffd-copy", {}) and bt["uffd-copy"][r][0]])
    md.append(f"| {b} | {100 * frac:.0f} % | {us(per):.1f} | {rr:.2f} |")
md.append("")

# ------------------------------------------------------------------ (4) network
net = [r for r in rows("net.csv")]
nmeta = {}
if os.path.exists(os.path.join(D, "net_meta.txt")):
    for line in open(os.path.join(D, "net_meta.txt")):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            nmeta[k] = v


def fnum(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


PNAME = {"1": "preempt", "0": "nopreempt"}
NPOINTS = [p for p in ("netem", "prio", "unshaped") if any(r["point"] == p for r in net)]
SHAPED = ("netem", "prio")   # the points with a rate (and the targets)
NCONF = []                   # net.sh NET_CONFIGS, in their order of appearance
for r in net:
    c = r.get("config") or "default"
    if c not in NCONF:
        NCONF.append(c)
NBACK = [b for b in ("umem", "umem-2m", "uffd", "uffd-minor") if any(r["backend"] == b for r in net)]
# (point, backend, preempt, config) -> rep -> dict of per-migration figures;
# nres: the same for config "default" (this tree's umemd), keyed by the
# first three.
nres_all = defaultdict(dict)
for r in net:
    cfg = r.get("config") or "default"
    key = (r["point"], r["backend"], r["preempt"], cfg)
    rep = int(r["rep"])
    pn = PNAME[r["preempt"]] + ("" if cfg == "default" else "-" + cfg)
    lf = os.path.join(D, "net", f"lat.{r['point']}.{r['backend']}.{pn}.{rep}.txt")
    samples = []
    if os.path.exists(lf):
        samples = sorted(int(x) for x in open(lf) if x.strip())
    if samples:
        p50, p99 = pct(samples, 0.5) / 1e6, pct(samples, 0.99) / 1e6
    elif fnum(r["lat_count"]) > 0:   # umemd's own summary (µs)
        p50, p99 = fnum(r["lat_p50_us"]) / 1e3, fnum(r["lat_p99_us"]) / 1e3
    else:   # no request at all: no latency (not 0, which would pass a bound)
        p50 = p99 = float("nan")
    tot = fnum(r["total_ms"]) / 1e3
    wire = fnum(r["bytes_main"]) + fnum(r["bytes_preempt"])
    nres_all[key][rep] = {
        "ok": r["ok"] == "1", "samples": samples, "p50": p50, "p99": p99,
        "total": tot, "wire_bps": 8 * wire / tot if tot else float("nan"),
        "size": fnum(r["size_bytes"]), "rate": fnum(r["rate_bps"]),
        "requests": fnum(r["requests"]), "blocked": fnum(r["blocked_ms"]),
        "bsrc": r["blocked_source"], "zero": fnum(r["pages_zero"]),
        "pages": fnum(r["pages"]),
        "bshare": fnum(r["blocked_ms"]) / (2 * fnum(r["total_ms"])) if fnum(r["total_ms"]) else float("nan"),
    }
nres = defaultdict(dict, {k[:3]: v for k, v in nres_all.items() if k[3] == "default"})


# Round trips (µs) of a third connection during an extra migration (net.sh "probe").
NLOADED = {}
for fn in glob.glob(os.path.join(D, "net", "rtt_loaded.*.txt")):
    _, p, b, _ = os.path.basename(fn).split(".")
    v = sorted(float(x) for x in open(fn) if x.strip())
    if v:
        NLOADED[(p, b)] = v


def nget(key):
    """A 3-tuple key: config default; a 4-tuple: that config."""
    return (nres if len(key) == 3 else nres_all).get(key, {})


def nmed(key, f):
    return med([v[f] for v in nget(key).values() if v["ok"] and v[f] == v[f]])


def nspread(key, f):
    return spread([v[f] for v in nget(key).values() if v["ok"] and v[f] == v[f]])


def nrow(key):
    """Migrations verified, p50, p99, p50 spread (lo, hi), total: one row."""
    lo, hi = nspread(key, "p50")
    return (sum(1 for v in nget(key).values() if v["ok"]), nmed(key, "p50"),
            nmed(key, "p99"), lo, hi, nmed(key, "total"))


def nratio(a, b, fa, fb=None):
    """Per-repetition ratio a[fa] / b[fb], median and spread."""
    fb = fb or fa
    ra, rb = nget(a), nget(b)
    v = [ra[r][fa] / rb[r][fb] for r in ra
         if r in rb and ra[r]["ok"] and rb[r]["ok"] and rb[r][fb]]
    return med(v), spread(v)


md.append("## 4. End to end over a network")
md.append("")
if not net:
    why = nmeta.get("skipped", "not run (NET=0, or the run broke off before it)")
    md.append(f"Not measured in this run: {why}.")
    md.append("")
else:
    size_b = fnum(nmeta.get("size_bytes"))
    rate = fnum(nmeta.get("rate_bps"))
    delay = fnum(nmeta.get("delay_ms"))
    n_ok = sum(1 for r in net if r["ok"] == "1")
    netem_txt = (f"`tc netem delay {nmeta.get('delay_ms')}ms rate {rate / 1e9:g}gbit` on both "
                 f"ends (RTT {2 * delay:g} ms), one FIFO" if "netem" in NPOINTS else "")
    prio_txt = (f"the same link with a queue per class: `tbf rate {rate / 1e9:g}gbit` → "
                f"`prio` (3 bands; SO_PRIORITY 6 and DSCP EF → band 0) → `netem delay "
                f"{nmeta.get('delay_ms')}ms` per band, on both ends"
                f"{'' if nmeta.get('prio_filter') != '0' else ' (no u32 DSCP filter: priomap only)'}"
                if "prio" in NPOINTS else "")
    md.append(f"Two network namespaces joined by a veth pair; points: "
              f"{'**netem** = ' + netem_txt + ', ' if netem_txt else ''}"
              f"{'**prio** = ' + prio_txt + ', ' if prio_txt else ''}"
              f"**unshaped** = no qdisc{'' if 'unshaped' in NPOINTS else ' (not run)'}. "
              f"`umemd --outgoing` in one namespace, `umemd --incoming --json "
              f"--latency-log` and `umem-vmm` in the other; image {nmeta.get('size')} "
              f"(`umem-vmm --make-image`: {100 * med([v['zero'] / v['pages'] for k in nres for v in nres[k].values() if v['pages']]):.0f} % "
              f"zero pages, sent as ZERO frames without data), 2 vCPU threads reading "
              f"random pages for the whole migration (`--threads 2 --pattern random`; "
              f"the VMM is stopped when the destination umemd exits). "
              f"{nmeta.get('reps')} repetition{'' if nmeta.get('reps') == '1' else 's'}, interleaved (each repetition runs every "
              f"point, backend and preempt setting in turn); {n_ok} of {len(net)} "
              f"migrations completed.")
    for sp in ("netem", "prio"):
        if nmeta.get(f"{sp}_skip"):
            md.append("")
            md.append(f"**{sp} point skipped**: {nmeta[f'{sp}_skip']}.")
    md.append("")
    md.append("Request latency = umemd's fault read → page installed (`--latency-log`), "
              "per migration p50/p99, then median over repetitions (spread = min..max "
              "of the per-repetition p50). Total = the destination umemd's total time "
              "(accept → all pages present). Wire rate = bytes received on both "
              "channels / total; goodput = image size / total. Blocked = umemd's "
              "`blocked_ms` (umem: the kernel's summed wait time of faulting tasks; "
              "uffd: the sum of request latencies, an estimate), and as a share of "
              "the two vCPU threads' time (2 x total).")
    rtts = []
    for p in NPOINTS:
        if f"rtt_us_{p}" in nmeta:
            rtts.append(f"{p} {fnum(nmeta[f'rtt_us_{p}']) / 1e3:.2f} ms "
                        f"(min {fnum(nmeta.get(f'rtt_min_us_{p}')) / 1e3:.2f})")
    if rtts:
        md.append("")
        md.append("Measured TCP round trip (1-byte ping-pong between the namespaces, "
                  "median of 50, no load): " + "; ".join(rtts) + ".")
    lrt = []
    for p in NPOINTS:
        for b in NBACK:
            v = NLOADED.get((p, b))
            if v:
                lrt.append(f"{p}, {b}: p50 {pct(v, 0.5) / 1e3:.2f} ms, p90 "
                           f"{pct(v, 0.9) / 1e3:.2f} ms ({len(v)} round trips)")
    if lrt:
        md.append("")
        md.append("The same ping-pong on a third connection (one every 10 ms) during "
                  "one extra migration with preempt per point and backend (not in the "
                  "tables): what any second connection gets from the shared qdisc and "
                  "the busy vCPUs -- " + "; ".join(lrt) + ".")
    md.append("")
    md.append("| point | backend | preempt | requests / migration | p50 ms | p99 ms | p50 spread ms | "
              "total s | total spread s | wire rate Mbit/s | goodput Mbit/s | "
              "total / (size / rate) | total / unshaped | blocked ms |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    with open(os.path.join(D, "net_summary.csv"), "w") as f:
        w = csv.writer(f)
        w.writerow(["point", "backend", "preempt", "migrations_ok", "requests", "p50_ms",
                    "p99_ms", "p50_min_ms", "p50_max_ms", "total_s", "total_min_s",
                    "total_max_s", "wire_mbps", "goodput_mbps", "vs_ideal", "vs_unshaped",
                    "blocked_ms", "blocked_source"])
        for p in NPOINTS:
            for b in NBACK:
                for pr in ("1", "0"):
                    k = (p, b, pr)
                    if k not in nres:
                        continue
                    okn, p50, p99, lo, hi, t = nrow(k)
                    tlo, thi = nspread(k, "total")
                    wr = nmed(k, "wire_bps")
                    gp = med([v["size"] * 8 / v["total"] for v in nres[k].values()
                              if v["ok"] and v["total"]])
                    if p in SHAPED and rate:
                        vi, _ = med([v["total"] / (v["size"] * 8 / v["rate"])
                                     for v in nres[k].values() if v["ok"]]), None
                    else:
                        vi = float("nan")
                    vu, _ = nratio(k, ("unshaped", b, pr), "total") if p != "unshaped" \
                        else (float("nan"), None)
                    bl = nmed(k, "blocked")
                    bsrc = next(iter(nres[k].values()))["bsrc"]
                    w.writerow([p, b, PNAME[pr], okn, nmed(k, "requests"), f"{p50:.3f}",
                                f"{p99:.3f}", f"{lo:.3f}", f"{hi:.3f}", f"{t:.3f}",
                                f"{tlo:.3f}", f"{thi:.3f}", f"{wr / 1e6:.1f}",
                                f"{gp / 1e6:.1f}", f"{vi:.3f}", f"{vu:.3f}", f"{bl:.1f}", bsrc])

                    def o(x, fmt):
                        return "–" if x != x else format(x, fmt)
                    md.append(f"| {p} | {b} | {'on' if pr == '1' else 'off'} | "
                              f"{nmed(k, 'requests'):.0f} | {p50:.2f} | {p99:.2f} | "
                              f"{lo:.2f}..{hi:.2f} | {t:.2f} | {tlo:.2f}..{thi:.2f} | "
                              f"{wr / 1e6:.0f} | {gp / 1e6:.0f} | {o(vi, '.2f')} | "
                              f"{o(vu, '.2f')} | {bl:.0f} ({bsrc}, "
                              f"{100 * nmed(k, 'bshare'):.0f} %) |")
    md.append("")
    md.append("Preempt effect (per repetition, same point and backend, median; spread "
              "min..max):")
    md.append("")
    md.append("| point | backend | p50 without / with preempt | p99 without / with | "
              "total with / without |")
    md.append("|---|---|---|---|---|")
    for p in NPOINTS:
        for b in NBACK:
            on, off = (p, b, "1"), (p, b, "0")
            if on not in nres or off not in nres:
                continue
            r50, s50 = nratio(off, on, "p50")
            r99, s99 = nratio(off, on, "p99")
            rt, st = nratio(on, off, "total")
            md.append(f"| {p} | {b} | {r50:.1f} ({s50[0]:.1f}..{s50[1]:.1f}) | "
                      f"{r99:.1f} ({s99[0]:.1f}..{s99[1]:.1f}) | "
                      f"{rt:.2f} ({st[0]:.2f}..{st[1]:.2f}) |")
    # The preempt channel's queue: shared FIFO (netem) against a queue per
    # class (prio), every config of the run (net.sh NET_CONFIGS).
    qpoints = [p for p in SHAPED if p in NPOINTS]
    if qpoints and rate == rate and rate:
        qser = 4096 * 8 / rate * 1e3
        qbound = 2 * (2 * delay + qser)
        md.append("")
        md.append(f"The preempt channel's queue: the shared FIFO (netem) against a queue "
                  f"per class (prio), per umemd config ("
                  + "; ".join(f"**{c}** = `{nmeta.get('config_' + c, '?') or 'defaults'}`"
                              for c in NCONF)
                  + f"). Bound = 2 x (RTT + one page) = {qbound:.2f} ms; "
                  f"\"p50 off / on\" = p50 without preempt / with, per repetition, same "
                  f"point and config (median, min..max).")
        md.append("")
        md.append("| point | backend | config | preempt | p50 ms | p50 spread ms | p99 ms | "
                  "p50 / bound | p50 off / on | total s | total / (size / rate) | requests |")
        md.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        with open(os.path.join(D, "net_queue.csv"), "w") as f:
            w = csv.writer(f)
            w.writerow(["point", "backend", "config", "preempt", "migrations_ok", "p50_ms",
                        "p50_min_ms", "p50_max_ms", "p99_ms", "p50_vs_bound",
                        "p50_nopreempt_vs_preempt", "total_s", "vs_ideal", "requests"])
            for p in qpoints:
                for b in NBACK:
                    for c in NCONF:
                        for pr in ("1", "0"):
                            k = (p, b, pr, c)
                            if k not in nres_all:
                                continue
                            okn, p50, p99, lo, hi, t = nrow(k)
                            vi = med([v["total"] / (v["size"] * 8 / v["rate"])
                                      for v in nres_all[k].values() if v["ok"] and v["rate"]])
                            if pr == "1" and (p, b, "0", c) in nres_all:
                                r, sp = nratio((p, b, "0", c), k, "p50")
                                rtxt = f"{r:.1f} ({sp[0]:.1f}..{sp[1]:.1f})"
                            else:
                                r, rtxt = float("nan"), "–"
                            w.writerow([p, b, c, PNAME[pr], okn, f"{p50:.3f}", f"{lo:.3f}",
                                        f"{hi:.3f}", f"{p99:.3f}", f"{p50 / qbound:.3f}",
                                        f"{r:.3f}", f"{t:.3f}", f"{vi:.3f}",
                                        nmed(k, "requests")])
                            md.append(f"| {p} | {b} | {c} | {'on' if pr == '1' else 'off'} | "
                                      f"{p50:.2f} | {lo:.2f}..{hi:.2f} | {p99:.2f} | "
                                      f"{p50 / qbound:.1f}x | {rtxt} | {t:.2f} | {vi:.2f} | "
                                      f"{nmed(k, 'requests'):.0f} |")
    md.append("")
    md.append("![request latency CDF with and without preempt](net_cdf.png)")
    md.append("")
    # Targets, on the shaped points only (they are stated for a 1 Gbit/s link).
    ser_ms = 4096 * 8 / rate * 1e3 if rate == rate and rate else float("nan")
    bound = 2 * (2 * delay + ser_ms)
    for TP in [p for p in SHAPED if p in NPOINTS and rate]:
        for b in NBACK:
            on, off = (TP, b, "1"), (TP, b, "0")
            if on not in nres:
                continue
            p50 = nmed(on, "p50")
            lo, hi = nspread(on, "p50")
            vals = [v["p50"] / bound for v in nres[on].values() if v["ok"]]
            mtxt = ""
            if f"rtt_us_{TP}" in nmeta:
                mb = 2 * (fnum(nmeta[f"rtt_us_{TP}"]) / 1e3 + ser_ms)
                mtxt = f"; with the measured idle RTT the bound is {mb:.2f} ms ({p50 / mb:.1f}x)"
            if NLOADED.get((TP, b)):
                lb = 2 * (pct(NLOADED[(TP, b)], 0.5) / 1e3 + ser_ms)
                mtxt += (f"; with the RTT of a third connection during a migration "
                         f"the bound is {lb:.2f} ms ({p50 / lb:.1f}x)")
            targets.append((f"Preempt, {b}, {TP}: request p50 ≤ 2 x (RTT + one page's "
                            f"serialisation) = 2 x ({2 * delay:g} + {ser_ms:.3f}) ms "
                            f"= {bound:.2f} ms",
                            f"p50 {p50:.2f} ms = {p50 / bound:.1f}x the bound (spread "
                            f"{min(vals):.1f}..{max(vals):.1f}x){mtxt}", p50 <= bound))
            if off in nres:
                r, s = nratio(off, on, "p50")
                targets.append((f"Preempt, {b}, {TP}: request p50 ≥ 10x lower than "
                                f"without preempt",
                                f"p50 without / with = {r:.1f} (spread {s[0]:.1f}..{s[1]:.1f})",
                                r >= 10))
        for b in NBACK:
            for pr in ("1", "0"):
                k = (TP, b, pr)
                if k not in nres:
                    continue
                v = [x["total"] / (x["size"] * 8 / x["rate"]) for x in nres[k].values() if x["ok"]]
                r, s = med(v), spread(v)
                u = ("unshaped", b, pr)
                utxt = ""
                if u in nres:
                    ru, _ = nratio(k, u, "total")
                    uw = nmed(u, "wire_bps")
                    utxt = (f"; against the unshaped run's achieved rate ({nmed(u, 'total'):.2f} s, "
                            f"wire {uw / 1e6:.0f} Mbit/s): {ru:.2f}x")
                ideal = size_b * 8 / rate
                targets.append((f"Total migration time, {b}, preempt {'on' if pr == '1' else 'off'}, "
                                f"{TP}: ≤ 1.10 x size / rate ({ideal:.2f} s)",
                                f"{nmed(k, 'total'):.2f} s = {r:.2f}x (spread {s[0]:.2f}..{s[1]:.2f}); "
                                f"wire rate {nmed(k, 'wire_bps') / 1e6:.0f} Mbit/s{utxt}",
                                r <= 1.10))
    if not any(p in NPOINTS for p in SHAPED) or not rate:
        targets.append(("Preempt: request p50 ≤ 2x (RTT + one page's serialisation), ≥ 10x "
                        "lower than without", "not measured (no netem point in this run)", None))
        targets.append(("Total migration time ≤ 1.10 x size / rate",
                        "not measured (no netem point in this run)", None))

# CDF data, pooled over repetitions: net_cdf_POINT_BACKEND_PREEMPT.dat (ms, fraction)
for old in glob.glob(os.path.join(D, "net_cdf_*.dat")):
    os.remove(old)
for (p, b, pr), reps_ in nres.items():
    pooled = sorted(x for v in reps_.values() if v["ok"] for x in v["samples"])
    n = len(pooled)
    if not n:
        continue
    step = max(1, n // 2000)
    with open(os.path.join(D, f"net_cdf_{p}_{b}_{PNAME[pr]}.dat"), "w") as f:
        for i in range(0, n, step):
            f.write(f"{pooled[i] / 1e6:.4f} {(i + 1) / n:.5f}\n")
        f.write(f"{pooled[-1] / 1e6:.4f} 1.0\n")
if "netem" in NPOINTS and nmeta.get("rate_bps"):
    with open(os.path.join(D, "net_cdf.gpvars"), "w") as f:
        f.write(f"bound = {2 * (2 * fnum(nmeta['delay_ms']) + 4096 * 8 / fnum(nmeta['rate_bps']) * 1e3):.4f}\n")
        f.write(f"delay_ms = {fnum(nmeta['delay_ms']):g}\nrate_gbit = {fnum(nmeta['rate_bps']) / 1e9:g}\n")

# ------------------------------------------------------------------ (6) 2 MiB pages
hinst = defaultdict(dict)   # method -> rep -> bytes/s
hskip = {}
for row in rows("huge_install.csv"):
    if row["bytes"] == "skip":
        hskip[row["method"]] = row["bytes_per_s"]
        continue
    hinst[row["method"]][int(row["rep"])] = float(row["bytes_per_s"])
hlat = defaultdict(dict)    # backend -> rep -> row
for row in rows("huge_lat.csv"):
    if row["nhuge"] == "skip":
        hskip["lat " + row["backend"]] = row["pmd_full_ns"]
        continue
    hlat[row["backend"]][int(row["rep"])] = row
if hinst or hlat:
    md.append("## 6. 2 MiB pages")
    md.append("")
    md.append("Install throughput with no fault pending (`hugebench install`): "
              "`umem-4k` = one `UMEM_COPY` per 4 KiB page of a 4 KiB region (the "
              "baseline), `umem-4k-run` = one `UMEM_COPY` per 2 MiB run of a 4 KiB "
              "region, `umem-2m` = one `UMEM_COPY` per page of a 2 MiB region, "
              "`uffd-hugetlb` = one `UFFDIO_COPY` per page of a hugetlbfs memfd. "
              "Ratios per repetition against `umem-4k`, median.")
    md.append("")
    md.append("| method | MiB/s (median) | spread | / umem-4k |")
    md.append("|---|---|---|---|")
    hreps = sorted(set().union(*[set(v) for v in hinst.values()])) if hinst else []

    def hratio(m):
        v = [hinst[m][r] / hinst["umem-4k"][r] for r in hreps
             if r in hinst.get(m, {}) and r in hinst.get("umem-4k", {})]
        return med(v), spread(v)
    for m in ("umem-4k", "umem-4k-run", "umem-2m", "uffd-hugetlb"):
        if m in hskip:
            md.append(f"| {m} | skipped: {hskip[m]} | | |")
            continue
        if m not in hinst:
            continue
        vals = list(hinst[m].values())
        lo, hi = spread(vals)
        r, _ = hratio(m)
        md.append(f"| {m} | {med(vals) / 2**20:,.0f} | {lo / 2**20:,.0f}..{hi / 2**20:,.0f} | {r:.2f} |")
    md.append("")
    if "umem-2m" in hinst and "umem-4k" in hinst:
        r, sp = hratio("umem-2m")
        targets.append(("2 MiB install: umem-2m ≥ 2x 4 KiB UMEM_COPY in bytes/s",
                        f"{r:.2f}x (spread {sp[0]:.2f}..{sp[1]:.2f})", r >= 2.0))
    md.append("Request latency (`hugebench lat`): one task touches one random 4 KiB "
              "piece of each 2 MiB extent in shuffled order while a daemon thread "
              "serves each request with one install of the region's page (4 KiB or "
              "2 MiB). `PMD kB` is the mapping's `ShmemPmdMapped` at the end; "
              "`fully PMD-mapped` the time from the first touch until the whole "
              "mapping was (the rest installed, every extent touched once more).")
    md.append("")
    md.append("| backend | p50 µs | p99 µs | total ms (median) | PMD kB | fully PMD-mapped ms |")
    md.append("|---|---|---|---|---|---|")
    hp50 = {}
    for b in ("umem-4k", "umem-2m"):
        if "lat " + b in hskip:
            md.append(f"| {b} | skipped: {hskip['lat ' + b]} | | | | |")
        if b not in hlat:
            continue
        pooled = []
        for f in glob.glob(os.path.join(D, "lat", f"huge-{b}.*.txt")):
            pooled += [int(x) for x in open(f) if x.strip()]
        pooled.sort()
        hp50[b] = pct(pooled, 0.5)
        tot = med([float(r["total_ns"]) for r in hlat[b].values()])
        kb = med([float(r["pmd_kb"]) for r in hlat[b].values()])
        full = [float(r["pmd_full_ns"]) for r in hlat[b].values() if float(r["pmd_full_ns"]) >= 0]
        md.append(f"| {b} | {us(pct(pooled, 0.5)):.1f} | {us(pct(pooled, 0.99)):.1f} | "
                  f"{tot / 1e6:.1f} | {kb:.0f} | {med(full) / 1e6:.1f} |" if full else
                  f"| {b} | {us(pct(pooled, 0.5)):.1f} | {us(pct(pooled, 0.99)):.1f} | "
                  f"{tot / 1e6:.1f} | {kb:.0f} | never |")
    md.append("")
    targets.append(("4 KiB-first request p50 within 1.5x the 4 KiB region's",
                    "not built (4 KiB-first arrival needs kernel interfaces 6.1/6.12 "
                    "do not export; see design.rst); atomic 2 MiB p50 "
                    + (f"{hp50['umem-2m'] / hp50['umem-4k']:.2f}x the 4 KiB region's"
                       if hp50.get("umem-4k") and "umem-2m" in hp50 else "not measured"),
                    None))

# ------------------------------------------------------------------ (7) snapshot
snapr = defaultdict(dict)   # (backend, MiB) -> rep -> row
snapfail = []
for row in rows("snap.csv"):
    if row["ok"] != "1":
        snapfail.append(f"{row['backend']} {row['size_mib']} MiB rep {row['rep']}")
        continue
    snapr[(row["backend"], int(row["size_mib"]))][int(row["rep"])] = row
if snapr or snapfail:
    md.append("## 7. Live snapshot")
    md.append("")
    md.append("`umemd --snapshot --pid` of a running `umem-vmm --writer` (RAM filled, "
              "threads writing at a fixed rate): the VMM is stopped only while every "
              "page is write-protected (`stop`); `total` is the whole save, i.e. what a "
              "stop-and-copy snapshot would stop the VMM for. `requested` = pages saved "
              "first because a writer waited for them; `blocked` = the writers' waiting, "
              "summed. umem: a region made by `umemctl create --present --wp`; uffd: "
              "the writer's memfd, `UFFDIO_WRITEPROTECT`. Medians over repetitions.")
    md.append("")
    md.append("| backend | RAM MiB | stop ms | spread | total ms | stop / total | requested | blocked ms |")
    md.append("|---|---|---|---|---|---|---|---|")
    for (b, mib) in sorted(snapr):
        rs = list(snapr[(b, mib)].values())
        st = [float(r["stop_ms"]) for r in rs]
        tot = med([float(r["total_ms"]) for r in rs])
        lo, hi = spread(st)
        md.append(f"| {b} | {mib} | {med(st):.2f} | {lo:.2f}..{hi:.2f} | {tot:.0f} | "
                  f"{med(st) / tot if tot else 0:.4f} | "
                  f"{med([float(r['pages_requested'] or 0) for r in rs]):.0f} | "
                  f"{med([float(r['blocked_ms'] or 0) for r in rs]):.1f} |")
    md.append("")
    if snapfail:
        md.append("Failed runs (not in the table): " + ", ".join(snapfail) + ".")
        md.append("")
    for b in sorted({k[0] for k in snapr}):
        sizes = sorted(m for (bb, m) in snapr if bb == b)
        if len(sizes) < 2:
            continue
        lo_m, hi_m = sizes[0], sizes[-1]
        s_lo = med([float(r["stop_ms"]) for r in snapr[(b, lo_m)].values()])
        s_hi = med([float(r["stop_ms"]) for r in snapr[(b, hi_m)].values()])
        t_lo = med([float(r["total_ms"]) for r in snapr[(b, lo_m)].values()])
        t_hi = med([float(r["total_ms"]) for r in snapr[(b, hi_m)].values()])
        r = s_hi / s_lo if s_lo else float("inf")
        targets.append((f"Snapshot stop time independent of RAM size, {b}: stop({hi_m} MiB) "
                        f"/ stop({lo_m} MiB) ≤ 2 while RAM grows {hi_m // lo_m}x",
                        f"{s_lo:.2f} → {s_hi:.2f} ms = {r:.2f}x (total {t_lo:.0f} → {t_hi:.0f} ms "
                        f"= {t_hi / t_lo if t_lo else 0:.1f}x)", r <= 2.0))

# ------------------------------------------------------------------ (7b) restore
restr = defaultdict(dict)   # (backend, mode) -> rep -> row
restfail = []
for row in rows("restore.csv"):
    if row["ok"] != "1":
        restfail.append(f"{row['backend']} {row['mode']} rep {row['rep']}")
        continue
    if row["mode"] != "record":
        restr[(row["backend"], row["mode"])][int(row["rep"])] = row
if restr or restfail:
    mib = next((r["size_mib"] for d in restr.values() for r in d.values()), "?")
    md.append("### 7b. Lazy restore against eager")
    md.append("")
    md.append(f"`umemd --restore` of a {mib} MiB snapshot file from a slow disk "
              "(`--throttle`, see snap_meta.txt) into `umem-vmm` (2 threads reading a hot "
              "set for 1 s, then every page verified); eager = every page in before RUN; "
              "lazy = RUN at once, no working set; lazy-ws = the working set a first lazy "
              "run recorded, streamed first. Medians over repetitions.")
    md.append("")
    md.append("| backend | mode | RUN ms | all in ms | requests | prefetched | VMM blocked ms "
              "| request p50 us |")
    md.append("|---|---|---|---|---|---|---|---|")
    order = {"eager": 0, "lazy": 1, "lazy-ws": 2}
    for (b, m) in sorted(restr, key=lambda k: (k[0], order.get(k[1], 9))):
        rs = list(restr[(b, m)].values())
        def rm(k):
            v = [float(r[k]) for r in rs if r.get(k) not in (None, "")]
            return med(v) if v else float("nan")
        cells = [rm(k) for k in ("run_ms", "total_ms", "requests", "prefetched", "blocked_ms",
                                 "latency_p50_us")]
        md.append(f"| {b} | {m} | " + " | ".join("–" if c != c else f"{c:.0f}" for c in cells)
                  + " |")
    md.append("")
    if restfail:
        md.append("Failed runs (not in the table): " + ", ".join(restfail) + ".")
        md.append("")
    for b in sorted({k[0] for k in restr}):
        e, l, w = restr.get((b, "eager"), {}), restr.get((b, "lazy"), {}), restr.get((b, "lazy-ws"), {})
        rat = [float(e[i]["run_ms"]) / float(l[i]["run_ms"]) for i in e
               if i in l and float(l[i]["run_ms"] or 0) > 0]
        if rat:
            targets.append((f"Lazy restore, {b}: the guest runs sooner than eager "
                            "(eager RUN / lazy RUN, per repetition)",
                            f"{med(rat):.0f}x", None))
        red = [float(w[i]["requests"]) / float(l[i]["requests"]) for i in w
               if i in l and float(l[i]["requests"] or 0) > 0]
        if red:
            targets.append((f"Lazy restore, {b}: the recorded working set cuts the guest's "
                            "faults (lazy-ws requests / lazy requests < 1)",
                            f"{med(red):.2f}", med(red) < 1.0))

# ------------------------------------------------------------------ (8) QEMU
# qemu-GUEST/KIND-RUN.txt, RESULT lines of userspace/qemu/native-postcopy.sh;
# run i of every kind ran back to back, so ratios are taken per run.
def qemu_results(d):
    res = defaultdict(dict)          # kind -> run -> RESULT
    for f in sorted(glob.glob(os.path.join(d, "*-*.txt"))):
        m = re.fullmatch(r"(.+)-(\d+)\.txt", os.path.basename(f))
        if not m:
            continue
        for line in open(f):
            if line.startswith("RESULT "):
                try:
                    res[m.group(1)][int(m.group(2))] = json.loads(line[7:])
                except ValueError:
                    pass
    return res


def qemu_blocked(r):
    if "umemd_dst" in r and r["umemd_dst"]:
        return r["umemd_dst"].get("blocked_ms")
    v = (r.get("qemu") or {}).get("vcpu_blocktime_ms")
    return sum(v) if v else None


def qemu_asleep(r):
    """The vCPU's sleep from RESUME to the last page, from schedstat: the
    same measure for both kinds (qemu_migrate.py's VcpuClock)."""
    return (r.get("vcpu") or {}).get("sleep_ms")


QEMU_FIELDS = (("RAM transfer", lambda r: r.get("ram_done_ms")),
               ("downtime", lambda r: r.get("downtime_ms")),
               ("vCPU blocked", qemu_blocked),
               ("vCPU asleep", qemu_asleep))
for qd in sorted(glob.glob(os.path.join(D, "qemu-*"))):
    if not os.path.isdir(qd):
        continue
    guest = os.path.basename(qd)[5:]
    qr = qemu_results(qd)
    if not qr:
        continue
    md.append(f"## 8. A QEMU guest ({guest}): umem against QEMU's own postcopy")
    md.append("")
    md.append("`userspace/qemu/native-postcopy.sh`, runs interleaved; median (min..max) of the "
              "runs that verified. vCPU blocked: umem's kernel wait time; QEMU's "
              "`postcopy-vcpu-blocktime` (two different measures). vCPU asleep: the vCPU "
              "thread's wall time from RESUME to the last page less its time on a CPU and "
              "runnable (`/proc` schedstat), the same measure for both.")
    md.append("")
    md.append("| kind | runs verified | RAM transfer ms | downtime ms | vCPU blocked ms "
              "| vCPU asleep ms |")
    md.append("|---|---|---|---|---|---|")
    for kind in sorted(qr):
        rs = [r for r in qr[kind].values() if r.get("ok")]
        cells = []
        for _, f in QEMU_FIELDS:
            v = [float(f(r)) for r in rs if f(r) is not None]
            cells.append(f"{med(v):.0f} ({min(v):.0f}..{max(v):.0f})" if v else "?")
        md.append(f"| {kind} | {len(rs)}/{len(qr[kind])} | " + " | ".join(cells) + " |")
    md.append("")
    for uk, label in (("umem", "umem"), ("umem-resendall", "umem --resend-gap 0")):
        if uk not in qr or "postcopy" not in qr:
            continue
        for name, f in QEMU_FIELDS:
            rat = []
            for i, u in qr[uk].items():
                q = qr["postcopy"].get(i)
                if not (q and u.get("ok") and q.get("ok")):
                    continue
                a, b = f(u), f(q)
                if a is not None and b:
                    rat.append(float(a) / float(b))
            if rat:
                targets.append((f"QEMU guest ({guest}): {label} {name} / QEMU postcopy-ram ≤ 1.0",
                                f"{med(rat):.2f}x ({min(rat):.2f}..{max(rat):.2f}, "
                                f"{len(rat)} runs)", med(rat) <= 1.0))

md.append("## Targets")
md.append("")
md.append("| target | measured | met |")
md.append("|---|---|---|")
for name, val, ok in targets:
    md.append(f"| {name} | {val} | {'n/a' if ok is None else '**met**' if ok else '**not met**'} |")
md.append("")

with open(os.path.join(D, "summary.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
