#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/report.sh DIR [DEST] - summary (summary.md, *_summary.csv) and PNG
# plots for a bench/run.sh result directory, then a copy of the whole
# directory to DEST (default bench/results/<basename of DIR>).  Runs on the
# host (python3, gnuplot-nox).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] && [ -d "$1" ] || { echo "usage: $0 RESULTDIR [DEST]" >&2; exit 2; }
dir=$1
dest=${2:-bench/results/$(basename "$dir")}
python3 bench/summarize.py "$dir" >/dev/null
for g in bench/plot/*.gp; do
	gnuplot -e "dir='$dir'" "$g"
done
if [ "$(realpath "$dir")" != "$(realpath -m "$dest")" ]; then
	mkdir -p "$dest"
	cp -r "$dir"/. "$dest"/
fi
echo "bench: summary in $dest/summary.md"
