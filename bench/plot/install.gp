# SPDX-License-Identifier: GPL-2.0
# Install throughput against batch size.  gnuplot -e "dir='RESULTDIR'" install.gp
set terminal pngcairo size 1000,620 font ",11" noenhanced
set output dir."/install.png"
set title "Install throughput, no fault pending, 4 KiB pages (median of repetitions)"
set xlabel "pages per call (log scale)"
set ylabel "pages/s (log scale)"
set logscale xy
set xrange [0.8:1300]
set grid
set key below maxcols 3 width 2
f = dir."/install.dat"
plot f using 1:2 with linespoints lw 2 title "umem COPY (range)", \
     f using 1:3 with linespoints lw 2 title "umem COPY_VEC", \
     f using 1:4 with linespoints lw 2 title "umem pwrite+MARK_PRESENT", \
     f using 1:5 with linespoints lw 2 title "uffd COPY (range)", \
     f using 1:6 with linespoints lw 2 title "uffd-minor pwrite+CONTINUE", \
     f using 1:7 with lines dt 2 lw 2 title "memcpy, fresh shmem", \
     f using 1:8 with lines dt 3 lw 2 title "memcpy, allocated shmem", \
     f using 1:9 with lines dt 4 lw 2 title "pwrite, allocated shmem"
