# SPDX-License-Identifier: GPL-2.0
# Listening ports for tests and benchmarks.  Source it; no other effect.
#
# test_port SPAN prints a random port P with P .. P+SPAN-1 all below the
# kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768.. by
# default) and at or above 10000.  A port inside that range may be the
# local port of an outgoing connection of the same network namespace, or
# of one of its TIME_WAIT remains (60 s), and then listen() there fails
# with EADDRINUSE even with SO_REUSEADDR: a daemon that cannot listen, a
# peer that cannot connect, a test that fails by chance.  A caller that
# listens on P, P+1, ... up to P+SPAN-1 asks for that SPAN.
test_port() {
	local span=${1:-1} lo=32768 room

	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
	room=$((lo - 10000 - span))
	[ "$room" -gt 0 ] || room=1
	echo $((10000 + RANDOM % room))
}
