# SPDX-License-Identifier: GPL-2.0
# Fault service latency CDF.  gnuplot -e "dir='RESULTDIR'" lat_cdf.gp
set terminal pngcairo size 1000,620 font ",11" noenhanced
set output dir."/lat_cdf.png"
set title "Fault service latency, one task, daemon serves from memory (CDF, all repetitions)"
set xlabel "fault to return (µs, log scale)"
set ylabel "fraction of faults"
set logscale x
set grid
set key right bottom
set yrange [0:1]
plot for [b in "shmem umem-copy umem-write uffd-copy uffd-minor"] \
	dir."/lat_cdf_".b.".dat" using 1:2 with lines lw 2 title b
