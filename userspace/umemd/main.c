// SPDX-License-Identifier: GPL-2.0
/*
 * umemd - postcopy live migration daemon.
 *
 *   umemd --outgoing --ram FILE [--ram FILE2 ...] (--listen ADDR:PORT | --connect ADDR:PORT)
 *         [--bg-follow on|off] [--resend on|off] [--resend-gap MS]
 *         [--pid PID [--postcopy-after N] [--max-rounds N]] [--stop-cmd CMD]
 *   umemd --incoming (--listen ADDR:PORT | --connect ADDR:PORT)
 *         --backend umem|uffd|uffd-minor [--name NAME] [--vmm-socket PATH]
 *         [--no-preempt] [--json] [-v]
 *   umemd --snapshot FILE (--ram /dev/umem-NAME | --backend uffd --vmm-socket PATH)
 *         (--pid PID | --stop-cmd CMD --cont-cmd CMD) [--device-state FILE]
 *   umemd --restore FILE (--backend umem --name NAME |
 *         --backend umem|uffd|uffd-minor --vmm-socket PATH [--eager])
 *         [--record-working-set] [--no-prefetch] [--json] [-v]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libumem.h"
#include "umemd.h"
#include "util.h"

#ifndef UMEM_VERSION
#error "UMEM_VERSION (the top-level VERSION file) must be defined"
#endif
#define OPT_VERSION 1000
#define OPT_SNAPSHOT 1001
#define OPT_CONT_CMD 1002
/* socket options of the two channels (chan.h, chan_sockopts) */
#define OPT_PREEMPT_PRIORITY	1003
#define OPT_PREEMPT_DSCP	1004
#define OPT_NOTSENT_LOWAT	1005
#define OPT_TEST_PREEMPT_DELAY	1006
#define OPT_TEST_BATCH_DELAY	1007
#define OPT_RESEND		1008
#define OPT_RESEND_GAP		1009
#define OPT_VMM_WAIT		1010
#define OPT_TEST_PAGE_COPY	1011
/* --restore (restore.c) */
#define OPT_RESTORE		1100
#define OPT_EAGER		1101
#define OPT_NO_PREFETCH		1102
#define OPT_RECORD_WS		1103

static void usage(FILE *f)
{
	fprintf(f,
"usage: umemd --outgoing --ram FILE [--ram FILE ...] (--listen|--connect) ADDR:PORT\n"
"             [--bg-follow on|off] [--resend on|off] [--resend-gap MS]\n"
"             [--json]\n"
"             [--pid PID [--postcopy-after N] [--max-rounds N] [--dirty M]]\n"
"             [--stop-cmd CMD] [--page-size 4k|2m]\n"
"       umemd --incoming (--listen|--connect) ADDR:PORT --backend umem|uffd|uffd-minor\n"
"             [--name NAME] [--vmm-socket PATH] [--no-preempt] [--json]\n"
"       umemd --snapshot FILE (--ram /dev/umem-NAME | --backend uffd --vmm-socket PATH)\n"
"             (--pid PID | --stop-cmd CMD --cont-cmd CMD) [--device-state FILE] [--json]\n"
"       umemd --restore FILE (--backend umem --name NAME |\n"
"             --backend umem|uffd|uffd-minor --vmm-socket PATH [--name NAME] [--eager])\n"
"             [--device-state-out FILE]\n"
"             [--record-working-set] [--no-prefetch] [--json]\n"
"       umemd --probe-dirty    exit 0 if soft-dirty tracking works on this kernel\n"
"       umemd --help | --version\n"
"\n"
"  --outgoing           serve RAM from FILE(s) (the guest's RAM backing)\n"
"  --pid PID            the VMM runs and writes its shared mapping of FILE:\n"
"                       precopy rounds with soft-dirty tracking, then stop it\n"
"                       (SIGSTOP) and switch to postcopy.  SIGUSR1 to umemd\n"
"                       switches now (the current round is cut short)\n"
"  --postcopy-after N   switch after N precopy rounds (default: when the dirty\n"
"                       set stops shrinking, or after --max-rounds, default 30)\n"
"  --stop-cmd CMD       stop the VMM with 'sh -c CMD' instead of SIGSTOP\n"
"  --device-state FILE  opaque device state (at most 16 MiB), read when the\n"
"                       VMM is stopped (so --stop-cmd may write it) and sent\n"
"                       between LISTEN and RUN\n"
"  --dirty METHOD       auto (default: soft-dirty if the kernel has it, else\n"
"                       hash), soft-dirty, or hash (re-read and hash every\n"
"                       sent page each round; any kernel)\n"
"  --page-size 4k|2m   (outgoing) the unit of transfer and of the destination's\n"
"                       region (default 4k).  2m: the RAM files are multiples\n"
"                       of 2 MiB, the destination learns it from HELLO\n"
"                       (protocol v3) and creates a region of 2 MiB pages\n"
"                       (umem: UMEM_F_PAGE_2M; uffd*: hugetlbfs, huge pages\n"
"                       reserved in /proc/sys/vm/nr_hugepages); pages travel\n"
"                       as 64 KiB PIECE frames.  Not with --pid yet\n"
"                       (--stop-cmd alone is fine: no precopy rounds)\n"
"  --snapshot FILE      live snapshot of a running VMM's RAM into FILE: stop\n"
"                       the VMM, write-protect every page, read --device-state,\n"
"                       let it run again, then save every page (a page a\n"
"                       writer waits for first) and unprotect it.  The RAM:\n"
"                       --ram /dev/umem-NAME (--backend umem, the default; a\n"
"                       region umemctl create made born present and\n"
"                       write-protectable), or\n"
"                       --backend uffd|uffd-minor --vmm-socket PATH (the VMM\n"
"                       offers its memfd and userfaultfd there)\n"
"  --cont-cmd CMD       (snapshot) let the VMM run again with 'sh -c CMD'\n"
"                       (with --stop-cmd; with --pid alone: SIGCONT)\n"
"  --incoming           receive RAM into a region the VMM maps\n"
"  --listen ADDR:PORT   wait for the peer (ADDR may be empty: any)\n"
"  --connect ADDR:PORT  connect to the peer (retried for --connect-wait seconds)\n"
"  --connect-wait SEC   default 30\n"
"  --link-timeout SEC   a connection whose peer stops answering (dead link,\n"
"                       no FIN or RST) is declared broken after about SEC\n"
"                       seconds: TCP keepalive + TCP_USER_TIMEOUT (default\n"
"                       10; 0: the kernel's defaults, hours)\n"
"  --backend NAME       region backend (default umem)\n"
"  --name NAME          region name (umem node /dev/umem-NAME)\n"
"  --vmm-socket PATH    unix socket handing the region to the VMM\n"
"  --vmm-wait SEC|forever  (incoming, restore) once every page is in, how long\n"
"                       to keep the region for a VMM that has not taken it\n"
"                       yet (attached on --vmm-socket, or mapped\n"
"                       /dev/umem-NAME): its RAM goes with umemd.  Default\n"
"                       forever; 0: no VMM is coming, let it go; SEC passed\n"
"                       without one: the migration fails\n"
"  --no-preempt         requested pages on the main stream, no second channel\n"
"  --preempt-priority N|off  (both sides) SO_PRIORITY of the preempt channel's\n"
"                       socket, 0..15 (above 6 needs CAP_NET_ADMIN); default 6,\n"
"                       band 0 of a tc prio qdisc's default priomap\n"
"  --preempt-dscp N|off (both sides) DSCP of the preempt channel's packets\n"
"                       (IP_TOS / IPV6_TCLASS), 0..63; default 46 (EF)\n"
"  --notsent-lowat BYTES|off  (both sides; it matters where pages are sent)\n"
"                       TCP_NOTSENT_LOWAT of the main connection: the source\n"
"                       keeps at most about BYTES unsent in the socket, so the\n"
"                       backlog stays in umemd, not behind a request; default\n"
"                       131072\n"
"  --device-state-out FILE  (incoming) the source's device state is written\n"
"                       here (empty if it sent none) before RUN is passed on\n"
"  --bg-follow on|off   move the background cursor next to the last request (source; default on)\n"
"  --resend on|off      send a requested page that is already on its way on main again\n"
"                       on the preempt channel (source; default on)\n"
"  --resend-gap MS      ... but only if that copy is more than MS milliseconds of\n"
"                       the main stream away from what the destination has read,\n"
"                       when it reports that (source; 0: always; default 2)\n"
"  --max-bandwidth MBIT (outgoing) cap the background stream, precopy rounds\n"
"                       included, at MBIT megabits per second; requested pages\n"
"                       on the preempt channel are not capped (default: none)\n"
"  --throttle N         (testing) source or snapshot sleeps 1 ms every N\n"
"                       background pages\n"
"  --recover            (both sides; protocol v2) a broken connection in postcopy\n"
"                       pauses the migration instead of failing it: faulting\n"
"                       tasks keep waiting, the side that connected connects\n"
"                       again, the destination sends its received map and the\n"
"                       source re-sends what is missing.  SIGTERM gives up.\n"
"  --recover-wait SEC   give up after SEC paused (default 60): the migration\n"
"                       fails (umem: waiting tasks get SIGBUS)\n"
"  --test-cut N         (testing) source cuts the link every N pages, 3 times\n"
"  --test-preempt-delay MS  (testing) source waits MS ms (1..1000) before\n"
"                       each page it sends on the preempt channel\n"
"  --test-page-copy FILE  (testing; incoming, restore) write the data of every\n"
"                       page installed at its offset in FILE (zero pages stay\n"
"                       holes), to compare with the source's RAM afterwards\n"
"  --test-batch-delay MS  (testing) destination waits MS ms (1..1000) before\n"
"                       each batched install of the main stream's pages\n"
"  --proto-max N        (testing) speak protocol versions up to N only (1..3):\n"
"                       N=2 behaves as a umemd of protocol version 2\n"
"  --restore FILE       restore a guest's RAM from the snapshot FILE into a\n"
"                       region the VMM maps from --vmm-socket, or (umem) by\n"
"                       path, /dev/umem-NAME, as an unmodified VMM does.  A\n"
"                       FILE that is not a complete, intact snapshot is refused\n"
"                       before anything starts.  Lazy by default: RUN as soon\n"
"                       as the VMM attaches (by path: at once); requested\n"
"                       pages are read first,\n"
"                       the file's working set streams next, then every page\n"
"                       in order.  --device-state-out gets the device state\n"
"                       before RUN.  A page whose checksum fails ends the\n"
"                       restore (FAIL to the VMM, umem: SIGBUS), never wrong data\n"
"  --eager              (restore) every page in before RUN: the baseline\n"
"  --record-working-set (restore) once every page is in, add the pages the\n"
"                       guest's faults asked for, in that order, to FILE as\n"
"                       its working set: the next restore streams them first\n"
"  --no-prefetch        (restore) ignore FILE's working set\n"
"                       (--throttle N, testing: a restore's background stream\n"
"                       sleeps 1 ms every N pages; requested pages do not)\n"
"  --json               print the summary as one JSON object on stdout\n"
"  --latency-log FILE   (incoming) write every request latency, fault read ->\n"
"                       page installed, in nanoseconds, one per line, sorted\n"
"  --progress           progress on stderr even when it is not a terminal\n"
"  -v, --verbose        more messages\n"
"  -h, --help           this text\n"
"  --version            print the version and exit\n"
"\n"
"Signals: SIGUSR1 (outgoing, --pid) switches to postcopy now.  SIGTERM or\n"
"SIGINT gives up on either side, paused or not: the migration fails with\n"
"\"cancelled by the operator\", the peer gets ERROR (code 5), the summary is\n"
"printed; before RUN a stopped VMM is resumed on the source; after RUN\n"
"tasks waiting on the destination are released (umem: SIGBUS).\n"
"--snapshot: SIGTERM or SIGINT cancels (\"cancelled by the operator\"): the\n"
"file is left marked incomplete and the VMM's writers are released.\n"
"Exit status: 0 migration (snapshot, restore) complete, 1 failed, 2 bad usage.\n");
}

/* For the signal handler only: where SIGTERM / SIGINT say "give up". */
static int cancel_fd = -1;

static void on_cancel(int sig)
{
	uint64_t one = 1;

	(void)sig;
	if (write(cancel_fd, &one, sizeof(one)) < 0) {
		/* eventfd: cannot fail short of overflow */
	}
}

static void on_sigusr1(int sig)
{
	(void)sig;
	umemd_switch_requested = 1;
}

/* After summary_print(), which sorted @s->lat_ns. */
static int write_latency_log(const char *path, const struct umemd_summary *s)
{
	FILE *f = fopen(path, "w");
	uint64_t i;

	if (!f) {
		log_msg("--latency-log %s: %s", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < s->nlat; i++)
		fprintf(f, "%llu\n", (unsigned long long)s->lat_ns[i]);
	if (fclose(f)) {
		log_msg("--latency-log %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* --test-WHAT-delay MS: 1..1000 ms, or -EINVAL (said). */
static int parse_test_delay(const char *arg, const char *what, uint32_t *ms)
{
	uint64_t v;

	if (parse_u64(arg, &v) || !v || v > 1000) {
		log_msg("bad --test-%s-delay %s (1..1000 ms)", what, arg);
		return -EINVAL;
	}
	*ms = (uint32_t)v;
	return 0;
}

/* --OPT on|off, or -EINVAL (said). */
static int parse_on_off(const char *arg, const char *opt, bool *on)
{
	if (strcmp(arg, "on") && strcmp(arg, "off")) {
		log_msg("--%s takes on or off", opt);
		return -EINVAL;
	}
	*on = !strcmp(arg, "on");
	return 0;
}

/*
 * --restore: its own options, and none of a migration's.  Nonzero: bad
 * usage (said).
 */

static int restore_args(const struct umemd_opts *o, bool extra)
{
	if (!o->restore) {
		log_msg("--eager, --record-working-set and --no-prefetch are for --restore");
		return -1;
	}
	if (extra || o->outgoing || o->incoming || o->listen || o->connect) {
		log_msg("--restore FILE takes no --outgoing/--incoming, --listen/--connect or other arguments");
		usage(stderr);
		return -1;
	}
	if (!umem_backend_known(o->backend)) {
		log_msg("unknown backend %s (umem, uffd, uffd-minor)", o->backend);
		return -1;
	}
	/* umem: an unmodified VMM maps /dev/umem-NAME by path, as with
	 * --incoming --name; the uffd backends hand the VMM its memory and
	 * take its userfaultfd over the socket. */
	if (!o->vmm_socket && strcmp(o->backend, "umem")) {
		log_msg("--restore with --backend %s needs --vmm-socket PATH (the VMM maps the region from it)",
			o->backend);
		return -1;
	}
	if (!o->vmm_socket && !o->name) {
		log_msg("--restore without --vmm-socket needs --name NAME (the VMM maps /dev/umem-NAME)");
		return -1;
	}
	if (!o->vmm_socket && o->eager) {
		log_msg("--eager needs --vmm-socket: without it nothing tells the VMM when to run");
		return -1;
	}
	if (o->eager && o->record_ws) {
		log_msg("--record-working-set records the pages faults ask for: not with --eager");
		return -1;
	}
	if (o->nram || o->device_state || o->pid || o->stop_cmd || o->recover ||
	    o->max_bw_bytes || o->test_cut) {
		log_msg("--ram, --device-state, --pid, --stop-cmd, --recover, --max-bandwidth and --test-cut are not for --restore");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "outgoing", no_argument, NULL, 'O' },
		{ "incoming", no_argument, NULL, 'I' },
		{ "listen", required_argument, NULL, 'l' },
		{ "connect", required_argument, NULL, 'c' },
		{ "connect-wait", required_argument, NULL, 'W' },
		{ "link-timeout", required_argument, NULL, 'K' },
		{ "ram", required_argument, NULL, 'r' },
		{ "backend", required_argument, NULL, 'b' },
		{ "name", required_argument, NULL, 'n' },
		{ "vmm-socket", required_argument, NULL, 's' },
		{ "no-preempt", no_argument, NULL, 'P' },
		{ "bg-follow", required_argument, NULL, 'f' },
		{ "resend", required_argument, NULL, OPT_RESEND },
		{ "resend-gap", required_argument, NULL, OPT_RESEND_GAP },
		{ "max-bandwidth", required_argument, NULL, 'B' },
		{ "throttle", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "latency-log", required_argument, NULL, 'L' },
		{ "device-state", required_argument, NULL, 'S' },
		{ "device-state-out", required_argument, NULL, 'U' },
		{ "progress", no_argument, NULL, 'G' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "pid", required_argument, NULL, 'p' },
		{ "postcopy-after", required_argument, NULL, 'A' },
		{ "max-rounds", required_argument, NULL, 'M' },
		{ "stop-cmd", required_argument, NULL, 'x' },
		{ "probe-dirty", no_argument, NULL, 'D' },
		{ "dirty", required_argument, NULL, 'y' },
		{ "recover", no_argument, NULL, 'R' },
		{ "recover-wait", required_argument, NULL, 'w' },
		{ "test-cut", required_argument, NULL, 'C' },
		{ "test-preempt-delay", required_argument, NULL, OPT_TEST_PREEMPT_DELAY },
		{ "test-batch-delay", required_argument, NULL, OPT_TEST_BATCH_DELAY },
		{ "page-size", required_argument, NULL, 'z' },
		{ "proto-max", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "snapshot", required_argument, NULL, OPT_SNAPSHOT },
		{ "cont-cmd", required_argument, NULL, OPT_CONT_CMD },
		{ "restore", required_argument, NULL, OPT_RESTORE },
		{ "eager", no_argument, NULL, OPT_EAGER },
		{ "no-prefetch", no_argument, NULL, OPT_NO_PREFETCH },
		{ "record-working-set", no_argument, NULL, OPT_RECORD_WS },
		{ "preempt-priority", required_argument, NULL, OPT_PREEMPT_PRIORITY },
		{ "preempt-dscp", required_argument, NULL, OPT_PREEMPT_DSCP },
		{ "notsent-lowat", required_argument, NULL, OPT_NOTSENT_LOWAT },
		{ "vmm-wait", required_argument, NULL, OPT_VMM_WAIT },
		{ "test-page-copy", required_argument, NULL, OPT_TEST_PAGE_COPY },
		{ NULL, 0, NULL, 0 },
	};
	struct umemd_opts o;
	struct umemd_summary sum;
	uint64_t v;
	bool probe = false, sockopts = false;
	int c, ret;

	log_set_prog("umemd");
	memset(&o, 0, sizeof(o));
	memset(&sum, 0, sizeof(sum));
	o.backend = "umem";
	o.preempt = true;
	o.bg_follow = true;
	o.resend = true;
	o.resend_gap_ms = 2;
	o.connect_wait_ms = 30000;
	o.link_timeout_ms = 10000;
	o.recover_wait_ms = 60000;
	o.vmm_wait_ms = -1;
	o.page_size = PROTO_PAGE_SIZE;
	o.proto_max = PROTO_VERSION_MAX;
	o.preempt_priority = 6;		/* TC_PRIO_INTERACTIVE */
	o.preempt_tos = 46 << 2;	/* DSCP EF */
	o.notsent_lowat = 131072;
	while ((c = getopt_long(argc, argv, "vh", lo, NULL)) != -1) {
		switch (c) {
		case 'O': o.outgoing = true; break;
		case 'I': o.incoming = true; break;
		case 'l': o.listen = optarg; break;
		case 'c': o.connect = optarg; break;
		case 'W':
			if (parse_u64(optarg, &v) || v > 3600) {
				log_msg("bad --connect-wait %s", optarg);
				return 2;
			}
			o.connect_wait_ms = (int)v * 1000;
			break;
		case 'K':
			if (parse_u64(optarg, &v) || v > 3600) {
				log_msg("bad --link-timeout %s (seconds, 0..3600)", optarg);
				return 2;
			}
			o.link_timeout_ms = (int)v * 1000;
			break;
		case 'r':
			if (o.nram == UMEMD_MAX_RAM_FILES) {
				log_msg("too many --ram files (max %d)", UMEMD_MAX_RAM_FILES);
				return 2;
			}
			o.ram[o.nram++] = optarg;
			break;
		case 'b': o.backend = optarg; break;
		case 'n': o.name = optarg; break;
		case 's': o.vmm_socket = optarg; break;
		case 'P': o.preempt = false; break;
		case 'f':
			if (parse_on_off(optarg, "bg-follow", &o.bg_follow))
				return 2;
			break;
		case OPT_RESEND:
			if (parse_on_off(optarg, "resend", &o.resend))
				return 2;
			break;
		case OPT_TEST_PAGE_COPY: o.test_page_copy = optarg; break;
		case OPT_VMM_WAIT:
			if (!strcmp(optarg, "forever")) {
				o.vmm_wait_ms = -1;
			} else if (parse_u64(optarg, &v) || v > 86400) {
				log_msg("bad --vmm-wait %s (seconds, 0..86400, or forever)", optarg);
				return 2;
			} else {
				o.vmm_wait_ms = (int)v * 1000;
			}
			o.vmm_wait_set = true;
			break;
		case OPT_RESEND_GAP:
			if (parse_u64(optarg, &v) || v > 60000) {
				log_msg("bad --resend-gap %s (milliseconds, 0..60000)", optarg);
				return 2;
			}
			o.resend_gap_ms = (uint32_t)v;
			break;
		case 'B':
			if (parse_u64(optarg, &v) || !v || v > 1000000) {
				log_msg("bad --max-bandwidth %s (Mbit/s, 1..1000000)", optarg);
				return 2;
			}
			o.max_bw_bytes = v * 125000;
			break;
		case 'T':
			if (parse_u64(optarg, &o.throttle_pages)) {
				log_msg("bad --throttle %s", optarg);
				return 2;
			}
			break;
		case 'j': o.json = true; break;
		case 'L': o.latency_log = optarg; break;
		case 'S': o.device_state = optarg; break;
		case 'U': o.device_state_out = optarg; break;
		case 'G': o.progress = true; break;
		case 'v': o.verbose++; break;
		case 'p':
			if (parse_u64(optarg, &v) || !v || v > 0x7fffffff) {
				log_msg("bad --pid %s", optarg);
				return 2;
			}
			o.pid = (int)v;
			break;
		case 'A':
		case 'M':
			if (parse_u64(optarg, &v) || !v || v > UMEMD_MAX_ROUNDS) {
				log_msg("bad --%s %s (1..%d)", c == 'A' ? "postcopy-after" : "max-rounds",
					optarg, UMEMD_MAX_ROUNDS);
				return 2;
			}
			if (c == 'A')
				o.postcopy_after = (uint32_t)v;
			else
				o.max_rounds = (uint32_t)v;
			break;
		case 'x': o.stop_cmd = optarg; break;
		case 'R': o.recover = true; break;
		case 'w':
			if (parse_u64(optarg, &v) || !v || v > 86400) {
				log_msg("bad --recover-wait %s", optarg);
				return 2;
			}
			o.recover_wait_ms = (int)v * 1000;
			break;
		case 'C':
			if (parse_u64(optarg, &o.test_cut) || !o.test_cut) {
				log_msg("bad --test-cut %s", optarg);
				return 2;
			}
			break;
		case 'z':
			if (!strcmp(optarg, "4k") || !strcmp(optarg, "4096")) {
				o.page_size = PROTO_PAGE_SIZE;
			} else if (!strcmp(optarg, "2m") || !strcmp(optarg, "2097152")) {
				o.page_size = PROTO_PAGE_SIZE_2M;
			} else {
				log_msg("--page-size takes 4k or 2m");
				return 2;
			}
			break;
		case 'V':
			if (parse_u64(optarg, &v) || v < PROTO_VERSION_MIN || v > PROTO_VERSION_MAX) {
				log_msg("bad --proto-max %s (%d..%d)", optarg, PROTO_VERSION_MIN,
					PROTO_VERSION_MAX);
				return 2;
			}
			o.proto_max = (uint32_t)v;
			break;
		case 'y':
			if (strcmp(optarg, "auto") && strcmp(optarg, "soft-dirty") &&
			    strcmp(optarg, "hash")) {
				log_msg("--dirty takes auto, soft-dirty or hash");
				return 2;
			}
			o.dirty = optarg;
			break;
		case 'D': probe = true; break;
		case 'h': usage(stdout); return 0;
		case OPT_VERSION: printf("umemd (umem) %s\n", UMEM_VERSION); return 0;
		case OPT_SNAPSHOT: o.snapshot = optarg; break;
		case OPT_CONT_CMD: o.cont_cmd = optarg; break;
		case OPT_RESTORE: o.restore = optarg; break;
		case OPT_EAGER: o.eager = true; break;
		case OPT_NO_PREFETCH: o.no_prefetch = true; break;
		case OPT_RECORD_WS: o.record_ws = true; break;
		case OPT_TEST_PREEMPT_DELAY:
			if (parse_test_delay(optarg, "preempt", &o.test_preempt_delay_ms))
				return 2;
			break;
		case OPT_TEST_BATCH_DELAY:
			if (parse_test_delay(optarg, "batch", &o.test_batch_delay_ms))
				return 2;
			break;
		case OPT_PREEMPT_PRIORITY:
		case OPT_PREEMPT_DSCP:
		case OPT_NOTSENT_LOWAT: {
			static const struct { int opt; const char *name; uint64_t min, max; } r[] = {
				{ OPT_PREEMPT_PRIORITY, "preempt-priority", 0, 15 },
				{ OPT_PREEMPT_DSCP, "preempt-dscp", 0, 63 },
				{ OPT_NOTSENT_LOWAT, "notsent-lowat", 1, 1 << 30 },
			};
			int i = c - OPT_PREEMPT_PRIORITY, val = -1;

			if (strcmp(optarg, "off")) {
				if (parse_u64(optarg, &v) || v < r[i].min || v > r[i].max) {
					log_msg("bad --%s %s (%llu..%llu or off)", r[i].name, optarg,
						(unsigned long long)r[i].min,
						(unsigned long long)r[i].max);
					return 2;
				}
				val = (int)v;
			}
			if (c == OPT_PREEMPT_PRIORITY)
				o.preempt_priority = val;
			else if (c == OPT_PREEMPT_DSCP)
				o.preempt_tos = val < 0 ? -1 : val << 2;
			else
				o.notsent_lowat = val;
			sockopts = true;
			break;
		}
		default: usage(stderr); return 2;
		}
	}
	if (probe) {
		char why[160];

		if (umemd_probe_soft_dirty(why, sizeof(why))) {
			printf("soft-dirty: unavailable: %s\n", why);
			return 1;
		}
		printf("soft-dirty: ok\n");
		return 0;
	}
	if (sockopts && !o.outgoing && !o.incoming) {
		log_msg("--preempt-priority, --preempt-dscp and --notsent-lowat are for --outgoing and --incoming");
		return 2;
	}
	/* --snapshot: its own options, then the common run below. */
	if (o.snapshot) {
		if (optind != argc || o.outgoing || o.incoming || o.listen || o.connect ||
		    o.restore || o.eager || o.no_prefetch || o.record_ws) {
			log_msg("--snapshot is a role of its own: not with --outgoing, --incoming, --restore, --listen or --connect");
			return 2;
		}
		if (!strcmp(o.backend, "umem") ? o.nram != 1 || o.vmm_socket :
		    !umem_backend_known(o.backend) || o.nram || !o.vmm_socket) {
			log_msg("--snapshot needs --ram /dev/umem-NAME (--backend umem) or --backend uffd|uffd-minor --vmm-socket PATH");
			return 2;
		}
		if (!o.pid && !o.stop_cmd) {
			log_msg("--snapshot needs --pid PID or --stop-cmd CMD --cont-cmd CMD (the VMM is stopped while its RAM is protected)");
			return 2;
		}
		if (o.stop_cmd && !o.cont_cmd) {
			log_msg("--stop-cmd needs --cont-cmd with --snapshot (the VMM must run again)");
			return 2;
		}
		if (o.cont_cmd && !o.stop_cmd) {
			log_msg("--cont-cmd goes with --stop-cmd");
			return 2;
		}
		if (o.postcopy_after || o.max_rounds || o.dirty || o.latency_log ||
		    o.device_state_out || o.max_bw_bytes || o.recover || o.test_cut ||
		    o.page_size != PROTO_PAGE_SIZE || o.name || o.vmm_wait_set) {
			log_msg("--snapshot takes --ram or --backend/--vmm-socket, --pid, --stop-cmd, --cont-cmd, --device-state, --json, -v");
			return 2;
		}
		goto run;
	}
	if (o.cont_cmd) {
		log_msg("--cont-cmd is for --snapshot");
		return 2;
	}
	if (o.restore || o.eager || o.no_prefetch || o.record_ws) {
		if (restore_args(&o, optind != argc))
			return 2;
	} else if (optind != argc || o.outgoing == o.incoming ||
	    !o.listen == !o.connect) {
		log_msg("need exactly one of --outgoing/--incoming and one of --listen/--connect");
		usage(stderr);
		return 2;
	}
	if (o.outgoing && !o.nram) {
		log_msg("--outgoing needs --ram FILE");
		return 2;
	}
	if (o.incoming && !umem_backend_known(o.backend)) {
		log_msg("unknown backend %s (umem, uffd, uffd-minor)", o.backend);
		return 2;
	}
	if ((o.latency_log || o.device_state_out) && !o.incoming && !o.restore) {
		log_msg("--latency-log and --device-state-out are for --incoming and --restore");
		return 2;
	}
	if ((o.vmm_wait_set || o.test_page_copy) && !o.incoming && !o.restore) {
		log_msg("--vmm-wait and --test-page-copy are for --incoming and --restore");
		return 2;
	}
	if (o.device_state && !o.outgoing) {
		log_msg("--device-state is for --outgoing (--device-state-out on --incoming)");
		return 2;
	}
	if (o.max_bw_bytes && !o.outgoing) {
		log_msg("--max-bandwidth is for --outgoing");
		return 2;
	}
	if (!o.outgoing && (o.pid || o.stop_cmd || o.postcopy_after || o.max_rounds || o.dirty)) {
		log_msg("--pid, --stop-cmd, --postcopy-after and --max-rounds are for --outgoing");
		return 2;
	}
	if (o.page_size != PROTO_PAGE_SIZE && !o.outgoing) {
		log_msg("--page-size is for --outgoing (the destination learns it from HELLO)");
		return 2;
	}
	/*
	 * --stop-cmd alone is a stop hook before a pure postcopy: no
	 * rounds, no dirty map, nothing per 4 KiB (precopy.c).
	 */
	if (o.page_size != PROTO_PAGE_SIZE && o.pid) {
		log_msg("--page-size 2m: not with --pid (precopy of 2 MiB pages is not implemented yet)");
		return 2;
	}
	if (o.page_size != PROTO_PAGE_SIZE && o.proto_max < PROTO_VERSION_HUGE) {
		log_msg("--page-size 2m needs protocol version %d (--proto-max %u)",
			PROTO_VERSION_HUGE, o.proto_max);
		return 2;
	}
	if ((o.postcopy_after || o.max_rounds || o.dirty) && !o.pid) {
		log_msg("--postcopy-after/--max-rounds/--dirty need --pid (precopy rounds)");
		return 2;
	}
run:
	o.progress |= isatty(STDERR_FILENO);
	signal(SIGPIPE, SIG_IGN);
	if (o.outgoing) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sigusr1;
		sa.sa_flags = SA_RESTART;
		sigaction(SIGUSR1, &sa, NULL);
	}
	/* Giving up is a clean failure: summary, ERROR to the peer, the
	 * region closed (umem: waiting tasks get SIGBUS). */
	o.cancel_fd = cancel_fd = eventfd(0, EFD_CLOEXEC);
	if (o.cancel_fd < 0) {
		log_msg("eventfd: %s", strerror(errno));
		return 1;
	} else {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_cancel;
		sa.sa_flags = SA_RESTART;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	ret = o.snapshot ? umemd_snapshot(&o, &sum) :
	      o.outgoing ? umemd_source(&o, &sum) :
	      o.restore ? umemd_restore(&o, &sum) : umemd_dest(&o, &sum);
	if (!sum.ok)
		log_msg("%s: %s", sum.role, sum.error);
	summary_print(&sum, false);
	if (o.json)
		summary_print(&sum, true);
	if (o.latency_log && write_latency_log(o.latency_log, &sum))
		ret = -1;
	free(sum.lat_ns);
	return ret ? 1 : 0;
}
