// SPDX-License-Identifier: GPL-2.0
/*
 * umem-vmm - a stand-in VMM for umemd (its parts: vmm.h).
 *
 *   umem-vmm --help | --version
 *
 *   umem-vmm --make-image FILE --size SZ --seed S
 *       write a guest RAM image whose page i depends only on (S, i).
 *   umem-vmm --check-image FILE --seed S
 *       verify such an image (or any file holding it).
 *   umem-vmm --writer FILE|--writer-backend uffd|uffd-minor [--size SZ]
 *            [--seed S] [--fill] [--threads N] [--pattern P] [--rate N]
 *            [--state-file FILE] [--offer-socket PATH]
 *       a running "guest": keep writing pages of its RAM, each stamped
 *       with a per-page generation (page.h), until SIGTERM; SIGUSR1
 *       parks it and saves the generations in the state file, SIGUSR2
 *       resumes it; --offer-socket hands RAM and userfaultfd to umemd
 *       --snapshot.
 *   umem-vmm --pause PID --state-file FILE [--timeout SEC]
 *   umem-vmm --resume PID [--timeout SEC]
 *       the stop and cont hooks for such a writer.
 *   umem-vmm --check-state RAM --state-file FILE [--seed S]
 *       check a paused writer's RAM against its state file.
 *   umem-vmm --check-snapshot FILE --state-file S [--seed S]
 *       check a snapshot file (umemd --snapshot) against the state file
 *       the writer wrote at the pause where it was taken.
 *   umem-vmm --region PATH|SOCKET [--backend B] --seed S [--size SZ]
 *            [--threads N] [--pattern seq|random|hotset] [--duration SEC]
 *            [--verify-all] [--no-wait-run] [--expect-file FILE]
 *            [--expect-state FILE] [--then-write SEC]
 *       map a region as guest RAM and run "vCPU" threads that read pages
 *       and check each against the deterministic content.  PATH is a umem
 *       node (/dev/umem-NAME); SOCKET is umemd's --vmm-socket (needed for
 *       the uffd backends, optional for umem).  Exit 0 only if every page
 *       read was right (and, with a socket, umemd said DONE).  With
 *       --expect-file FILE a page is right when it equals that page of
 *       FILE (the frozen source RAM after a precopy migration); with
 *       --expect-state FILE when it is that of the writer's generation
 *       in FILE (a restored snapshot).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <limits.h>

#include "pattern.h"
#include "util.h"
#include "vmm.h"

#ifndef UMEM_VERSION
#error "UMEM_VERSION (the top-level VERSION file) must be defined"
#endif
enum {
	OPT_VERSION = 1000,
	OPT_WRITER_BACKEND,
	OPT_FILL,
	OPT_STATE_FILE,
	OPT_OFFER_SOCKET,
	OPT_PAUSE,
	OPT_RESUME,
	OPT_TIMEOUT,
	OPT_CHECK_STATE,
	OPT_EXPECT_STATE,
	OPT_THEN_WRITE,
	OPT_CHECK_SNAPSHOT,
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: umem-vmm --make-image FILE --size SZ --seed S\n"
"       umem-vmm --check-image FILE --seed S\n"
"       umem-vmm --writer FILE [--fill] [--seed S] [--threads N] [--pattern P]\n"
"                [--rate PAGES_PER_SEC] [--state-file FILE]\n"
"       umem-vmm --writer-backend uffd|uffd-minor --size SZ [--seed S] [--threads N]\n"
"                [--pattern P] [--rate PAGES_PER_SEC] [--state-file FILE]\n"
"                [--offer-socket PATH]\n"
"       umem-vmm --pause PID --state-file FILE [--timeout SEC]\n"
"       umem-vmm --resume PID [--timeout SEC]\n"
"       umem-vmm --check-state RAM --state-file FILE [--seed S] [--threads N]\n"
"       umem-vmm --check-snapshot FILE --state-file FILE [--seed S] [--threads N]\n"
"       umem-vmm --region PATH|SOCKET [--backend umem|uffd|uffd-minor] --seed S\n"
"                [--size SZ] [--threads N] [--pattern seq|random|hotset]\n"
"                [--duration SEC] [--verify-all] [--no-wait-run] [--json]\n"
"                [--expect-file FILE] [--expect-state FILE] [--then-write SEC]\n"
"                [--page-size 4k|2m]\n"
"       umem-vmm --help | --version\n");
}

/* Seconds in (0, @max]; false if @s is not one. */
static bool parse_secs(const char *s, double max, double *out)
{
	char *end;
	double d = strtod(s, &end);

	if (end == s || *end || !(d > 0) || d > max)
		return false;
	*out = d;
	return true;
}

static bool parse_pid(const char *s, pid_t *out)
{
	uint64_t n;

	if (parse_u64(s, &n) || !n || n > INT_MAX)
		return false;
	*out = (pid_t)n;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "make-image", required_argument, NULL, 'm' },
		{ "check-image", required_argument, NULL, 'k' },
		{ "size", required_argument, NULL, 'z' },
		{ "seed", required_argument, NULL, 'S' },
		{ "backend", required_argument, NULL, 'b' },
		{ "region", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "verify-all", no_argument, NULL, 'V' },
		{ "no-wait-run", no_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "writer", required_argument, NULL, 'w' },
		{ "rate", required_argument, NULL, 'X' },
		{ "expect-file", required_argument, NULL, 'E' },
		{ "page-size", required_argument, NULL, 'P' },
		{ "writer-backend", required_argument, NULL, OPT_WRITER_BACKEND },
		{ "fill", no_argument, NULL, OPT_FILL },
		{ "state-file", required_argument, NULL, OPT_STATE_FILE },
		{ "offer-socket", required_argument, NULL, OPT_OFFER_SOCKET },
		{ "pause", required_argument, NULL, OPT_PAUSE },
		{ "resume", required_argument, NULL, OPT_RESUME },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "check-state", required_argument, NULL, OPT_CHECK_STATE },
		{ "expect-state", required_argument, NULL, OPT_EXPECT_STATE },
		{ "then-write", required_argument, NULL, OPT_THEN_WRITE },
		{ "check-snapshot", required_argument, NULL, OPT_CHECK_SNAPSHOT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const char *make = NULL, *check = NULL, *wfile = NULL, *efile = NULL;
	const char *sfile = NULL, *cstate = NULL, *csnap = NULL;
	pid_t pause_pid = 0, resume_pid = 0;
	double timeout = 10;
	struct vmm v;
	uint64_t n;
	int c, modes;

	log_set_prog("umem-vmm");
	memset(&v, 0, sizeof(v));
	v.threads = 2;
	v.wait_run = true;
	v.sock = -1;
	pthread_mutex_init(&v.lock, NULL);
	pthread_cond_init(&v.cond, NULL);
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'm': make = optarg; break;
		case 'k': check = optarg; break;
		case 'z':
			if (parse_size(optarg, &v.size) || v.size % PATTERN_PAGE) {
				log_msg("bad --size %s (a multiple of 4096)", optarg);
				return 2;
			}
			break;
		case 'S':
			if (parse_u64(optarg, &v.seed)) {
				log_msg("bad --seed %s", optarg);
				return 2;
			}
			v.seed_set = true;
			break;
		case 'b': v.backend = optarg; break;
		case 'r': v.region = optarg; break;
		case 't':
			if (parse_u64(optarg, &n) || !n || n > 256) {
				log_msg("bad --threads %s (1..256)", optarg);
				return 2;
			}
			v.threads = (unsigned int)n;
			break;
		case 'p':
			v.pattern_set = true;
			if (!strcmp(optarg, "seq"))
				v.pattern = PAT_SEQ;
			else if (!strcmp(optarg, "random"))
				v.pattern = PAT_RANDOM;
			else if (!strcmp(optarg, "hotset"))
				v.pattern = PAT_HOTSET;
			else {
				log_msg("bad --pattern %s", optarg);
				return 2;
			}
			break;
		case 'd':
			v.duration = strtod(optarg, NULL);
			if (v.duration < 0 || v.duration > 86400) {
				log_msg("bad --duration %s", optarg);
				return 2;
			}
			break;
		case 'V': v.verify_all = true; break;
		case 'R': v.wait_run = false; break;
		case 'j': v.json = true; break;
		case 'w': wfile = optarg; break;
		case 'E': efile = optarg; break;
		case 'P':
			if (strcmp(optarg, "4k") && strcmp(optarg, "2m")) {
				log_msg("--page-size takes 4k or 2m (a umem node opened by path)");
				return 2;
			}
			v.page_size = strcmp(optarg, "4k") ? 2U << 20 : 4096;
			break;
		case 'X':
			if (parse_u64(optarg, &v.rate)) {
				log_msg("bad --rate %s", optarg);
				return 2;
			}
			break;
		case OPT_WRITER_BACKEND:
			if (!umem_backend_known(optarg)) {
				log_msg("unknown --writer-backend %s", optarg);
				return 2;
			}
			v.writer_backend = optarg;
			break;
		case OPT_FILL: v.fill = true; break;
		case OPT_STATE_FILE: v.state_path = optarg; break;
		case OPT_OFFER_SOCKET: v.offer_path = optarg; break;
		case OPT_PAUSE:
		case OPT_RESUME:
			if (!parse_pid(optarg, c == OPT_PAUSE ? &pause_pid : &resume_pid)) {
				log_msg("bad pid %s", optarg);
				return 2;
			}
			break;
		case OPT_TIMEOUT:
			if (!parse_secs(optarg, 86400, &timeout)) {
				log_msg("bad --timeout %s (seconds, > 0)", optarg);
				return 2;
			}
			break;
		case OPT_CHECK_STATE: cstate = optarg; break;
		case OPT_CHECK_SNAPSHOT: csnap = optarg; break;
		case OPT_EXPECT_STATE: sfile = optarg; break;
		case OPT_THEN_WRITE:
			if (!parse_secs(optarg, 86400, &v.then_write)) {
				log_msg("bad --then-write %s (seconds, > 0)", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		case OPT_VERSION: printf("umem-vmm (umem) %s\n", UMEM_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		log_msg("unexpected argument %s", argv[optind]);
		return 2;
	}
	modes = !!make + !!check + !!(wfile || v.writer_backend) + !!pause_pid + !!resume_pid +
		!!cstate + !!v.region + !!csnap;
	if (modes != 1 || (wfile && v.writer_backend)) {
		if (modes > 1 || (wfile && v.writer_backend))
			log_msg("one mode at a time: --make-image, --check-image, --writer, --writer-backend, --pause, --resume, --check-state, --check-snapshot or --region");
		usage(stderr);
		return 2;
	}
	if (make) {
		if (!v.size) {
			log_msg("--make-image needs --size");
			return 2;
		}
		return make_image(make, v.size, v.seed);
	}
	if (check)
		return check_image(check, v.seed);
	if (pause_pid) {
		if (!v.state_path) {
			log_msg("--pause needs --state-file (the writer's)");
			return 2;
		}
		return hook_pause(pause_pid, v.state_path, timeout);
	}
	if (resume_pid)
		return hook_resume(resume_pid, timeout);
	if (cstate) {
		if (!v.state_path) {
			log_msg("--check-state needs --state-file");
			return 2;
		}
		return check_state(&v, cstate);
	}
	if (csnap) {
		if (!v.state_path) {
			log_msg("--check-snapshot needs --state-file");
			return 2;
		}
		return check_snapshot(&v, csnap);
	}
	if (wfile || v.writer_backend) {
		if (!v.pattern_set)
			v.pattern = PAT_HOTSET;
		return writer_main(&v, wfile);
	}
	if (v.then_write > 0 && (!v.verify_all || efile)) {
		log_msg("--then-write needs --verify-all, and a seed or --expect-state (not --expect-file)");
		return 2;
	}
	return guest_run(&v, efile, sfile);
}
