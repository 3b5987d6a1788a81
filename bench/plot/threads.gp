# SPDX-License-Identifier: GPL-2.0
# Aggregate faults/s against faulting threads.  gnuplot -e "dir='RESULTDIR'" threads.gp
set terminal pngcairo size 1000,620 font ",11" noenhanced
set output dir."/threads.png"
set title "Many faulting threads, one daemon (median of repetitions)"
set xlabel "faulting threads (log scale)"
set ylabel "aggregate faults/s"
set logscale x 2
set xrange [0.8:40]
set grid
set yrange [0:*]
set key below maxcols 3 width 2
f = dir."/threads.dat"
plot f using 1:2 with linespoints lw 2 title "umem COPY", \
     f using 1:3 with linespoints lw 2 title "umem COPY_VEC per read", \
     f using 1:4 with linespoints lw 2 title "umem pwrite+MARK_PRESENT", \
     f using 1:5 with linespoints lw 2 title "uffd COPY", \
     f using 1:6 with linespoints lw 2 title "uffd-minor CONTINUE"
