#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""bench/lat-modules.py OUTDIR [LIMIT_US]: summarise bench/lat-modules.sh.

One markdown row per module label: p50 of umem-copy and uffd-copy and
their per-round ratios (median (min..max) over rounds), the same ratio
over the "undisturbed" rounds only (both p50s under LIMIT_US, 200 by
default: on a loaded host whole runs stall for milliseconds), and the
all-present case umem-present against shmem-present.
"""
import glob
import os
import statistics as S
import sys
from collections import defaultdict

D = sys.argv[1]
LIM = float(sys.argv[2] if len(sys.argv) > 2 else 200) * 1e3
d = defaultdict(dict)
for f in glob.glob(os.path.join(D, "*.txt")):
    parts = os.path.basename(f)[:-4].split(".")
    if len(parts) != 3:
        continue
    v = sorted(int(x) for x in open(f) if x.strip())
    if len(v) < 100:
        continue
    d[(parts[0], parts[1])][int(parts[2])] = (v[len(v) // 2], v[int(len(v) * .99)])


def mm(x, fmt="{:.2f}"):
    return f"{fmt.format(S.median(x))} ({fmt.format(min(x))}..{fmt.format(max(x))})"


print("| module | umem-copy p50 µs | uffd-copy p50 µs | umem/uffd p50 | umem/uffd p99 "
      "| same, undisturbed rounds | umem-present p50 µs | shmem-present p50 µs "
      "| umem-/shmem-present p50 | p99 |")
print("|---|---|---|---|---|---|---|---|---|---|")
for m in sorted(set(k[0] for k in d)):
    a, b = d.get((m, "umem-copy"), {}), d.get((m, "uffd-copy"), {})
    c, e = d.get((m, "umem-present"), {}), d.get((m, "shmem-present"), {})
    rr = sorted(set(a) & set(b))
    ru = [r for r in rr if a[r][0] < LIM and b[r][0] < LIM]
    rp = sorted(set(c) & set(e))
    if not rr:
        continue
    und = (f"p50 {S.median([a[r][0] / b[r][0] for r in ru]):.2f}, "
           f"p99 {S.median([a[r][1] / b[r][1] for r in ru]):.2f} ({len(ru)} of {len(rr)})"
           if ru else "none")
    print(f"| {m} | {mm([a[r][0] / 1e3 for r in rr], '{:.0f}')} "
          f"| {mm([b[r][0] / 1e3 for r in rr], '{:.0f}')} "
          f"| {mm([a[r][0] / b[r][0] for r in rr])} | {mm([a[r][1] / b[r][1] for r in rr])} "
          f"| {und} | " + (
              f"{mm([c[r][0] / 1e3 for r in rp])} | {mm([e[r][0] / 1e3 for r in rp])} "
              f"| {mm([c[r][0] / e[r][0] for r in rp])} | {mm([c[r][1] / e[r][1] for r in rp])} |"
              if rp else "- | - | - | - |"))  # BACKENDS without the present pair
