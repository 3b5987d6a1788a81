// SPDX-License-Identifier: GPL-2.0
/*
 * umem-vmm - a stand-in VMM for umemd.
 *
 *   umem-vmm --help | --version
 *
 *   umem-vmm --make-image FILE --size SZ --seed S
 *       write a guest RAM image whose page i depends only on (S, i).
 *   umem-vmm --check-image FILE --seed S
 *       verify such an image (or any file holding it).
 *   umem-vmm --writer FILE [--threads N] [--pattern seq|random|hotset] [--rate N]
 *       a running "guest" for precopy tests: map FILE shared and keep
 *       writing pages, each with a per-page generation counter (header
 *       at offset 0: page index ^ WRITER_MAGIC, generation; the
 *       generation again at offset 4088), until killed.
 *   umem-vmm --region PATH|SOCKET [--backend B] --seed S [--size SZ]
 *            [--threads N] [--pattern seq|random|hotset] [--duration SEC]
 *            [--verify-all] [--no-wait-run]
 *       map a region as guest RAM and run "vCPU" threads that read pages
 *       and check each against the deterministic content.  PATH is a umem
 *       node (/dev/umem-NAME); SOCKET is umemd's --vmm-socket (needed for
 *       the uffd backends, optional for umem).  Exit 0 only if every page
 *       read was right (and, with a socket, umemd said DONE).  With
 *       --expect-file FILE a page is right when it equals that page of
 *       FILE (the frozen source RAM after a precopy migration).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libumem.h"
#include "pattern.h"
#include "util.h"
#include "vmmsock.h"

#ifndef UMEM_VERSION
#error "UMEM_VERSION (the top-level VERSION file) must be defined"
#endif
#define OPT_VERSION 1000

enum pattern_kind { PAT_SEQ, PAT_RANDOM, PAT_HOTSET };

struct vmm {
	const char *backend;
	const char *region;
	uint64_t size, pages, seed;
	uint32_t page_size;		/* region page size (0: 4 KiB or the fd's) */
	unsigned int threads;
	enum pattern_kind pattern;
	double duration;
	bool verify_all, wait_run, json;
	const uint8_t *expect;		/* --expect-file mapping */
	uint64_t expect_size;
	uint64_t rate;			/* --writer: pages/s (0: flat out) */
	bool pattern_set;
	atomic_uint_fast64_t *gen;	/* --writer: per-page generation */
	uint8_t *ram;
	struct umem_region *r;
	int sock;
	pthread_t mon;
	bool mon_on;
	/* monitor state */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool run, done, failed, gone;
	char fail_text[128];
	/* results */
	atomic_bool stop;
	atomic_uint_fast64_t accesses, verified, mismatches, max_touch_ns;
	atomic_uint_fast64_t first_bad;		/* page + 1 */
};

static const char *sigbus_msg_prefix = "umem-vmm: SIGBUS touching guest RAM at page ";
static uint8_t *sigbus_ram;

/* Async-signal-safe: a task got SIGBUS from a region whose daemon died
 * (umem).  Name the page and leave. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char buf[128], num[24];
	uint64_t page = ((uint8_t *)si->si_addr - sigbus_ram) / PATTERN_PAGE;
	size_t n = strlen(sigbus_msg_prefix), k = 0;

	(void)sig;
	(void)uc;
	memcpy(buf, sigbus_msg_prefix, n);
	do {
		num[k++] = (char)('0' + page % 10);
		page /= 10;
	} while (page && k < sizeof(num));
	while (k)
		buf[n++] = num[--k];
	memcpy(buf + n, " (umemd gone?)\n", 15);
	n += 15;
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* nothing to do */
	}
	_exit(3);
}

static int make_image(const char *path, uint64_t size, uint64_t seed)
{
	uint8_t *page = malloc(1 << 20);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret = 0;

	if (fd < 0 || !page) {
		log_msg("%s: %s", path, strerror(errno));
		free(page);
		return 1;
	}
	for (uint64_t off = 0; off < size && !ret; off += 1 << 20) {
		uint64_t chunk = size - off < (1 << 20) ? size - off : (1 << 20);

		for (uint64_t p = 0; p < chunk / PATTERN_PAGE; p++)
			pattern_fill(seed, off / PATTERN_PAGE + p, page + p * PATTERN_PAGE);
		if (write(fd, page, chunk) != (ssize_t)chunk) {
			log_msg("writing %s: %s", path, strerror(errno));
			ret = 1;
		}
	}
	free(page);
	if (close(fd) < 0)
		ret = 1;
	return ret;
}

static int check_image(const char *path, uint64_t seed)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *p;
	uint64_t bad = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		log_msg("%s: %s", path, strerror(errno));
		return 1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return 1;
	for (uint64_t i = 0; i < (uint64_t)st.st_size / PATTERN_PAGE; i++)
		if (!pattern_check(seed, i, p + i * PATTERN_PAGE)) {
			if (!bad)
				log_msg("page %llu does not match seed %llu",
					(unsigned long long)i, (unsigned long long)seed);
			bad++;
		}
	munmap(p, (size_t)st.st_size);
	return bad ? 1 : 0;
}

/* ---- control socket ---- */

static void *monitor(void *arg)
{
	struct vmm *v = arg;

	for (;;) {
		struct vmm_msg m;
		int fd, ret = vmm_recv(v->sock, &m, &fd, -1);

		if (fd >= 0)
			close(fd);
		pthread_mutex_lock(&v->lock);
		if (ret < 0) {
			v->gone = true;
		} else if (m.type == VMM_RUN) {
			v->run = true;
		} else if (m.type == VMM_DONE) {
			v->done = true;
		} else if (m.type == VMM_FAIL) {
			v->failed = true;
			snprintf(v->fail_text, sizeof(v->fail_text), "%s", m.text);
		}
		pthread_cond_broadcast(&v->cond);
		pthread_mutex_unlock(&v->lock);
		if (ret < 0 || v->done || v->failed)
			break;
	}
	return NULL;
}

/* true if umemd failed or vanished, waiting up to @ms for news. */
static bool umemd_failed(struct vmm *v, int ms)
{
	struct timespec ts;
	bool bad;

	if (v->sock < 0)
		return false;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&v->lock);
	while (!v->failed && !v->gone && !v->done &&
	       pthread_cond_timedwait(&v->cond, &v->lock, &ts) == 0)
		;
	bad = (v->failed || v->gone) && !v->done;
	pthread_mutex_unlock(&v->lock);
	return bad;
}

static int attach_by_socket(struct vmm *v)
{
	struct umem_region_config cfg;
	struct vmm_msg m;
	int fd, ret, uffd;
	uint64_t base;
	char backend[sizeof(((struct vmm_msg *)0)->text)];

	v->sock = vmm_connect(v->region);
	if (v->sock < 0) {
		log_msg("connect %s: %s", v->region, strerror(-v->sock));
		return -1;
	}
	ret = vmm_recv(v->sock, &m, &fd, 30000);
	if (ret != 1 || m.type != VMM_HELLO || fd < 0) {
		log_msg("no HELLO from umemd on %s", v->region);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(backend, sizeof(backend), "%s", m.text);
	if (v->backend && strcmp(v->backend, backend)) {
		log_msg("umemd serves backend %s, not %s", backend, v->backend);
		close(fd);
		return -1;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = backend;
	cfg.size = m.size;
	/* 4 KiB or 2 MiB: libumem maps a 2 MiB region 2 MiB aligned. */
	cfg.page_size = m.page_size;
	cfg.log = log_libumem;
	ret = umem_region_open(&cfg, fd, NULL, &v->r);
	if (!ret)
		ret = umem_region_map(v->r, (void **)&v->ram);
	if (ret) {
		log_msg("mapping the %s region: %s", backend, umem_strerror(ret));
		return -1;
	}
	v->size = m.size;
	uffd = -1;
	base = (uint64_t)(uintptr_t)v->ram;
	if (umem_region_client_fault_fd(v->r, &uffd, &base) == 0) {
		ret = vmm_send(v->sock, VMM_ATTACH, v->size, base, NULL, uffd);
		/* Keep no copy: umemd's death must release our tasks. */
		close(uffd);
	} else {
		ret = vmm_send(v->sock, VMM_ATTACH, v->size, base, NULL, -1);
	}
	if (ret) {
		log_msg("attach: %s", strerror(-ret));
		return -1;
	}
	if (pthread_create(&v->mon, NULL, monitor, v) == 0)
		v->mon_on = true;
	return 0;
}

static int attach_by_path(struct vmm *v)
{
	struct umem_region_config cfg;
	int ret;

	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = v->backend ? v->backend : "umem";
	cfg.size = v->size;
	cfg.page_size = v->page_size;
	cfg.log = log_libumem;
	if (strcmp(cfg.backend, "umem")) {
		log_msg("backend %s needs umemd's --vmm-socket as --region", cfg.backend);
		return -1;
	}
	ret = umem_region_open(&cfg, -1, v->region, &v->r);
	if (!ret)
		ret = umem_region_map(v->r, (void **)&v->ram);
	if (ret) {
		log_msg("opening %s: %s", v->region, umem_strerror(ret));
		return -1;
	}
	v->size = umem_region_size(v->r);
	return 0;
}

/* ---- vCPUs ---- */

struct vcpu {
	struct vmm *v;
	unsigned int id;
	uint64_t rng;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static bool touch(struct vmm *v, uint64_t page)
{
	uint64_t t = now_ns(), dt;
	bool ok = v->expect ?
		  !memcmp(v->expect + page * PATTERN_PAGE, v->ram + page * PATTERN_PAGE, PATTERN_PAGE) :
		  pattern_check(v->seed, page, v->ram + page * PATTERN_PAGE);

	dt = now_ns() - t;
	atomic_fetch_add(&v->accesses, 1);
	for (uint64_t m = atomic_load(&v->max_touch_ns); dt > m &&
	     !atomic_compare_exchange_weak(&v->max_touch_ns, &m, dt);)
		;
	if (ok)
		return true;
	atomic_fetch_add(&v->mismatches, 1);
	{
		uint64_t zero = 0;

		atomic_compare_exchange_strong(&v->first_bad, &zero, page + 1);
	}
	atomic_store(&v->stop, true);
	return false;
}

static void *vcpu_run(void *arg)
{
	struct vcpu *c = arg;
	struct vmm *v = c->v;
	uint64_t deadline = now_ns() + (uint64_t)(v->duration * 1e9);
	uint64_t page = c->id, hot = v->pages / 10 ? v->pages / 10 : 1;

	while (v->duration > 0 && !atomic_load(&v->stop) && now_ns() < deadline) {
		switch (v->pattern) {
		case PAT_SEQ:
			page = (page + v->threads) % v->pages;
			break;
		case PAT_RANDOM:
			page = rnd(&c->rng) % v->pages;
			break;
		case PAT_HOTSET:
			page = rnd(&c->rng) % 10 ? rnd(&c->rng) % hot :
			       rnd(&c->rng) % v->pages;
			break;
		}
		if (!touch(v, page))
			return NULL;
	}
	if (!v->verify_all)
		return NULL;
	for (uint64_t p = c->id; p < v->pages && !atomic_load(&v->stop);
	     p += v->threads) {
		if (!touch(v, p))
			return NULL;
		atomic_fetch_add(&v->verified, 1);
	}
	return NULL;
}

/* ---- --writer ---- */

#define WRITER_MAGIC 0x57524954455200ULL

static uint64_t next_page(struct vmm *v, struct vcpu *c, uint64_t page)
{
	uint64_t hot = v->pages / 10 ? v->pages / 10 : 1;

	switch (v->pattern) {
	case PAT_SEQ:
		return (page + v->threads) % v->pages;
	case PAT_RANDOM:
		return rnd(&c->rng) % v->pages;
	case PAT_HOTSET:
	default:
		return rnd(&c->rng) % 10 ? rnd(&c->rng) % hot : rnd(&c->rng) % v->pages;
	}
}

static void *writer_run(void *arg)
{
	struct vcpu *c = arg;
	struct vmm *v = c->v;
	uint64_t page = c->id, n = 0, t0 = now_ns();

	for (;;) {
		uint8_t *p;
		uint64_t g, w;

		page = next_page(v, c, page);
		p = v->ram + page * PATTERN_PAGE;
		g = atomic_fetch_add(&v->gen[page], 1) + 1;
		w = page ^ WRITER_MAGIC;
		memcpy(p, &w, 8);
		memcpy(p + 8, &g, 8);
		memcpy(p + PATTERN_PAGE - 8, &g, 8);
		atomic_fetch_add(&v->accesses, 1);
		if (v->rate && !(++n % 16)) {
			/* each thread writes rate / threads pages per second */
			uint64_t due = t0 + n * 1000000000ULL * v->threads / v->rate;
			uint64_t now = now_ns();

			if (due > now)
				usleep((useconds_t)((due - now) / 1000));
		}
	}
	return NULL;
}

static int writer(struct vmm *v, const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct vcpu *cpus;
	pthread_t th;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		log_msg("%s: %s", path, strerror(errno));
		return 1;
	}
	v->size = (uint64_t)st.st_size;
	v->pages = v->size / PATTERN_PAGE;
	v->ram = mmap(NULL, v->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	v->gen = calloc(v->pages ? v->pages : 1, sizeof(*v->gen));
	cpus = calloc(v->threads, sizeof(*cpus));
	if (v->ram == MAP_FAILED || !v->pages || !v->gen || !cpus) {
		log_msg("%s: cannot map it for writing", path);
		return 1;
	}
	fprintf(stderr, "umem-vmm: writer pid %d: %u threads writing %s (%llu pages)\n",
		(int)getpid(), v->threads, path, (unsigned long long)v->pages);
	for (unsigned int i = 0; i < v->threads; i++) {
		cpus[i].v = v;
		cpus[i].id = i;
		cpus[i].rng = (v->seed + 1) * 0x9e3779b97f4a7c15ULL + i * 7919 + 1;
		if (pthread_create(&th, NULL, writer_run, &cpus[i])) {
			log_msg("cannot start writer %u", i);
			return 1;
		}
	}
	for (;;)
		pause();
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: umem-vmm --make-image FILE --size SZ --seed S\n"
"       umem-vmm --check-image FILE --seed S\n"
"       umem-vmm --writer FILE [--threads N] [--pattern P] [--rate PAGES_PER_SEC]\n"
"       umem-vmm --region PATH|SOCKET [--backend umem|uffd|uffd-minor] --seed S\n"
"                [--size SZ] [--threads N] [--pattern seq|random|hotset]\n"
"                [--duration SEC] [--verify-all] [--no-wait-run] [--json]\n"
"                [--expect-file FILE] [--page-size 4k|2m]\n"
"       umem-vmm --help | --version\n");
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
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const char *make = NULL, *check = NULL, *wfile = NULL, *efile = NULL;
	struct vmm v;
	struct vcpu *cpus;
	pthread_t *th;
	struct sigaction sa;
	uint64_t t0, n;
	int c, rc = 0;
	bool bad_umemd = false;

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
		case 'h': usage(stdout); return 0;
		case OPT_VERSION: printf("umem-vmm (umem) %s\n", UMEM_VERSION); return 0;
		default: usage(stderr); return 2;
		}
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
	if (wfile) {
		if (!v.pattern_set)
			v.pattern = PAT_HOTSET;
		return writer(&v, wfile);
	}
	if (efile) {
		int fd = open(efile, O_RDONLY | O_CLOEXEC);
		struct stat st;
		void *p = MAP_FAILED;

		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0)
			p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (fd >= 0)
			close(fd);
		if (p == MAP_FAILED) {
			log_msg("--expect-file %s: %s", efile, strerror(errno));
			return 1;
		}
		v.expect = p;
		v.expect_size = (uint64_t)st.st_size;
	}
	if (!v.region) {
		usage(stderr);
		return 2;
	}
	if (v.backend && !umem_backend_known(v.backend)) {
		log_msg("unknown backend %s", v.backend);
		return 2;
	}
	{
		struct stat st;

		if (stat(v.region, &st) == 0 && S_ISSOCK(st.st_mode))
			rc = attach_by_socket(&v);
		else
			rc = attach_by_path(&v);
	}
	if (rc)
		return 1;
	v.pages = v.size / PATTERN_PAGE;
	if (v.expect && v.expect_size != v.size) {
		log_msg("--expect-file is %llu bytes, the region %llu",
			(unsigned long long)v.expect_size, (unsigned long long)v.size);
		return 1;
	}
	sigbus_ram = v.ram;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	if (v.sock >= 0 && v.wait_run) {
		pthread_mutex_lock(&v.lock);
		while (!v.run && !v.done && !v.failed && !v.gone)
			pthread_cond_wait(&v.cond, &v.lock);
		pthread_mutex_unlock(&v.lock);
	}
	t0 = now_ns();
	cpus = calloc(v.threads, sizeof(*cpus));
	th = calloc(v.threads, sizeof(*th));
	if (!cpus || !th)
		return 1;
	for (unsigned int i = 0; i < v.threads; i++) {
		cpus[i].v = &v;
		cpus[i].id = i;
		cpus[i].rng = (v.seed + 1) * 0x9e3779b97f4a7c15ULL + i * 7919 + 1;
		if (pthread_create(&th[i], NULL, vcpu_run, &cpus[i])) {
			log_msg("cannot start vCPU %u", i);
			return 1;
		}
	}
	for (unsigned int i = 0; i < v.threads; i++)
		pthread_join(th[i], NULL);
	if (atomic_load(&v.mismatches)) {
		uint64_t page = atomic_load(&v.first_bad) - 1;

		/* uffd: after umemd fails and lets go of the uffd, a waiting
		 * task resumes on a zero page.  Name the real cause. */
		if (umemd_failed(&v, 2000)) {
			log_msg("page %llu unreliable: umemd failed: %s",
				(unsigned long long)page,
				v.failed ? v.fail_text : "umemd went away");
			bad_umemd = true;
		} else {
			log_msg("page %llu (offset %#llx) does not hold the expected content (seed %llu); %llu bad pages",
				(unsigned long long)page,
				(unsigned long long)page * PATTERN_PAGE,
				(unsigned long long)v.seed,
				(unsigned long long)atomic_load(&v.mismatches));
		}
		rc = 1;
	}
	if (!rc && v.sock >= 0) {
		/* Stay mapped until umemd has installed everything. */
		pthread_mutex_lock(&v.lock);
		while (!v.done && !v.failed && !v.gone)
			pthread_cond_wait(&v.cond, &v.lock);
		pthread_mutex_unlock(&v.lock);
		if (!v.done) {
			log_msg("umemd %s before the migration completed%s%s",
				v.failed ? "failed" : "went away",
				v.failed ? ": " : "", v.failed ? v.fail_text : "");
			rc = 1;
			bad_umemd = true;
		}
	}
	{
		double secs = (double)(now_ns() - t0) / 1e9;

		fprintf(stderr, "umem-vmm: %s: %llu page reads (%llu pages verified in the final pass) in %.2f s, %u threads, slowest read %.3f ms, %llu mismatches\n",
			rc ? "FAILED" : "OK",
			(unsigned long long)atomic_load(&v.accesses),
			(unsigned long long)atomic_load(&v.verified), secs,
			v.threads, atomic_load(&v.max_touch_ns) / 1e6,
			(unsigned long long)atomic_load(&v.mismatches));
		if (v.json)
			printf("{\"ok\":%s,\"reads\":%llu,\"verified\":%llu,\"mismatches\":%llu,\"umemd_failed\":%s,\"seconds\":%.3f,\"max_read_ms\":%.3f}\n",
			       rc ? "false" : "true",
			       (unsigned long long)atomic_load(&v.accesses),
			       (unsigned long long)atomic_load(&v.verified),
			       (unsigned long long)atomic_load(&v.mismatches),
			       bad_umemd ? "true" : "false", secs,
			       atomic_load(&v.max_touch_ns) / 1e6);
	}
	if (v.verify_all && !rc && atomic_load(&v.verified) != v.pages) {
		log_msg("verified %llu of %llu pages", (unsigned long long)atomic_load(&v.verified),
			(unsigned long long)v.pages);
		rc = 1;
	}
	if (v.sock >= 0)
		shutdown(v.sock, SHUT_RDWR);
	if (v.mon_on)
		pthread_join(v.mon, NULL);
	umem_region_close(v.r);
	if (v.sock >= 0)
		close(v.sock);
	free(cpus);
	free(th);
	return rc;
}
