# SPDX-License-Identifier: GPL-2.0
# Request latency CDF over a network, with vs. without the preempt channel
# (section 4, bench/net.sh).  gnuplot -e "dir='RESULTDIR'" net_cdf.gp
# One panel per network point; nothing is drawn if section 4 did not run.
have(f) = system("test -s '".f."' && echo 1 || echo 0") + 0
f(p, b, m) = dir."/net_cdf_".p."_".b."_".m.".dat"
npoints = 0
points = ""
do for [p in "netem unshaped"] {
	if (have(f(p, "umem", "preempt")) || have(f(p, "uffd", "preempt")) || \
	    have(f(p, "umem", "nopreempt")) || have(f(p, "uffd", "nopreempt"))) {
		npoints = npoints + 1
		points = points." ".p
	}
}
if (npoints == 0) {
	print "net_cdf.gp: no section 4 data in ".dir
	exit
}
bound = 0; delay_ms = 1; rate_gbit = 1
if (have(dir."/net_cdf.gpvars")) { load dir."/net_cdf.gpvars" }

set terminal pngcairo size (npoints > 1 ? 1400 : 900),620 font ",11" noenhanced
set output dir."/net_cdf.png"
set multiplot layout 1,npoints title \
	"Request latency (umemd: fault read -> page installed), 2 random-access vCPU threads, CDF of all repetitions"
set xlabel "request latency (ms, log scale)"
set ylabel "fraction of requests"
set logscale x
set grid
set key right bottom
set yrange [0:1]
set style line 1 lc rgb "#1f5fbf" lw 2.5 dt 1
set style line 2 lc rgb "#1f5fbf" lw 2 dt 2
set style line 3 lc rgb "#c0392b" lw 2.5 dt 1
set style line 4 lc rgb "#c0392b" lw 2 dt 2
do for [p in points] {
	unset arrow
	if (p eq "netem") {
		set title sprintf("netem: %g ms each way, %g Gbit/s, background stream running", delay_ms, rate_gbit)
		if (bound > 0) {
			set arrow from bound, graph 0 to bound, graph 1 nohead lc rgb "#555555" dt 3
			set label 1 sprintf("target p50 %.2f ms", bound) at bound, graph 0.95 right offset -0.5,0 tc rgb "#555555"
		}
	} else {
		set title "unshaped veth"
		unset label 1
	}
	plot for [i=1:4] (have(f(p, word("umem umem uffd uffd", i), word("preempt nopreempt preempt nopreempt", i))) ? \
		f(p, word("umem umem uffd uffd", i), word("preempt nopreempt preempt nopreempt", i)) : "/dev/null") \
		using 1:2 with lines ls i \
		title word("umem,preempt umem,no-preempt uffd,preempt uffd,no-preempt", i)
}
unset multiplot
