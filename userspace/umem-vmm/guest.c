// SPDX-License-Identifier: GPL-2.0
/*
 * umem-vmm --region: map a region as guest RAM (from umemd's control
 * socket, or a umem node by path) and run "vCPU" threads that read pages
 * and check each against what it should hold.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "page.h"
#include "pattern.h"
#include "state.h"
#include "util.h"
#include "vmm.h"
#include "vmmsock.h"

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

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

uint64_t next_page(const struct vmm *v, struct vcpu *c, uint64_t page)
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

void vcpu_init(struct vcpu *c, struct vmm *v, unsigned int id)
{
	c->v = v;
	c->id = id;
	c->rng = (v->seed + 1) * 0x9e3779b97f4a7c15ULL + id * 7919 + 1;
	atomic_init(&c->writes, 0);
}

/*
 * What page @page must hold: that page of --expect-file; with a
 * generation table (--expect-state, --then-write, --check-state) the
 * page at its generation; else the seed's image.
 */
static bool page_ok(struct vmm *v, uint64_t page, const uint8_t *p)
{
	if (v->expect)
		return !memcmp(v->expect + page * PATTERN_PAGE, p, PATTERN_PAGE);
	if (v->w.gen)
		return page_check(v->seed, page, writer_gen(&v->w, page), p);
	return pattern_check(v->seed, page, p);
}

/* Remember a bad page for the report; true once the report is full. */
static bool note_bad(struct vmm *v, uint64_t page, const uint8_t *p)
{
	bool full;

	pthread_mutex_lock(&v->lock);
	if (v->nbad < BAD_REPORT_MAX) {
		struct bad_page *b = &v->bad[v->nbad++];

		b->page = page;
		b->want = v->w.gen ? writer_gen(&v->w, page) : 0;
		b->found = page_found_gen(v->seed, page, p);
	}
	full = v->nbad == BAD_REPORT_MAX;
	pthread_mutex_unlock(&v->lock);
	return full;
}

/* The first full pass ends when the last page not read yet is read. */
static void note_seen(struct vmm *v, uint64_t page)
{
	uint64_t bit = 1ULL << (page % 64);

	if (v->seen && !(atomic_fetch_or(&v->seen[page / 64], bit) & bit) &&
	    atomic_fetch_add(&v->nseen, 1) + 1 == v->pages)
		atomic_store(&v->first_pass_ns, now_ns() - v->t0);
}

/* Read and check one page; false: stop this thread. */
static bool touch(struct vmm *v, uint64_t page)
{
	const uint8_t *p = v->ram + page * PATTERN_PAGE;
	uint64_t t = now_ns(), dt;
	bool ok = page_ok(v, page, p);

	dt = now_ns() - t;
	atomic_fetch_add(&v->accesses, 1);
	for (uint64_t m = atomic_load(&v->max_touch_ns); dt > m &&
	     !atomic_compare_exchange_weak(&v->max_touch_ns, &m, dt);)
		;
	note_seen(v, page);
	if (ok)
		return true;
	atomic_fetch_add(&v->mismatches, 1);
	/* With a generation table, name several pages; else the first says it. */
	if (note_bad(v, page, p) || !v->w.gen)
		atomic_store(&v->stop, true);
	return !atomic_load(&v->stop);
}

static void *vcpu_run(void *arg)
{
	struct vcpu *c = arg;
	struct vmm *v = c->v;
	uint64_t deadline = now_ns() + (uint64_t)(v->duration * 1e9);
	uint64_t page = c->id;

	while (v->duration > 0 && !atomic_load(&v->stop) && now_ns() < deadline) {
		page = next_page(v, c, page);
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

/* Run the vCPUs to the end: --duration of reads, then --verify-all. */
static int run_vcpus(struct vmm *v)
{
	struct vcpu *cpus = calloc(v->threads, sizeof(*cpus));
	pthread_t *th = calloc(v->threads, sizeof(*th));
	unsigned int n;
	int ret = 0;

	if (!cpus || !th) {
		free(cpus);
		free(th);
		return -ENOMEM;
	}
	for (n = 0; n < v->threads; n++) {
		vcpu_init(&cpus[n], v, n);
		if (pthread_create(&th[n], NULL, vcpu_run, &cpus[n])) {
			log_msg("cannot start vCPU %u", n);
			atomic_store(&v->stop, true);
			ret = -EAGAIN;
			break;
		}
	}
	while (n)
		pthread_join(th[--n], NULL);
	free(cpus);
	free(th);
	return ret;
}

static int bad_cmp(const void *a, const void *b)
{
	const struct bad_page *x = a, *y = b;

	return x->page < y->page ? -1 : x->page > y->page;
}

/* Name the bad pages: with a generation table, each with the generation
 * it should have and the one it has. */
static void report_bad(struct vmm *v)
{
	uint64_t total = atomic_load(&v->mismatches);

	if (!v->w.gen) {
		log_msg("page %llu (offset %#llx) does not hold the expected content (seed %llu); %llu bad pages",
			(unsigned long long)v->bad[0].page,
			(unsigned long long)v->bad[0].page * PATTERN_PAGE,
			(unsigned long long)v->seed, (unsigned long long)total);
		return;
	}
	qsort(v->bad, v->nbad, sizeof(v->bad[0]), bad_cmp);
	for (unsigned int i = 0; i < v->nbad; i++) {
		const struct bad_page *b = &v->bad[i];
		char found[80];

		if (b->found < 0)
			snprintf(found, sizeof(found), "neither the seed's image nor a whole writer's stamp");
		else if ((uint64_t)b->found == b->want)
			snprintf(found, sizeof(found), "generation %lld, but other bytes differ",
				 (long long)b->found);
		else
			snprintf(found, sizeof(found), "generation %lld", (long long)b->found);
		log_msg("page %llu (offset %#llx): expected generation %llu, found %s",
			(unsigned long long)b->page, (unsigned long long)b->page * PATTERN_PAGE,
			(unsigned long long)b->want, found);
	}
	if (v->nbad == BAD_REPORT_MAX)
		log_msg("at least %llu bad pages: the check stops at %d (seed %llu)",
			(unsigned long long)total, BAD_REPORT_MAX, (unsigned long long)v->seed);
	else
		log_msg("%llu bad pages (seed %llu)", (unsigned long long)total,
			(unsigned long long)v->seed);
}

static void print_bad_json(const struct vmm *v)
{
	printf(",\"bad_pages\":[");
	for (unsigned int i = 0; i < v->nbad; i++)
		printf("%s{\"page\":%llu,\"expected\":%llu,\"found\":%lld}", i ? "," : "",
		       (unsigned long long)v->bad[i].page, (unsigned long long)v->bad[i].want,
		       (long long)v->bad[i].found);
	printf("]");
}

static void sleep_s(double secs)
{
	struct timespec ts = { .tv_sec = (time_t)secs,
			       .tv_nsec = (long)((secs - (double)(time_t)secs) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * --then-write SEC: the restored guest runs on.  Writers stamp pages for
 * SEC seconds on top of the verified generations, then the vCPUs check
 * every page against the new table.
 */
static int then_write(struct vmm *v, uint64_t *writes)
{
	int ret = writers_start(v);

	if (!ret)
		sleep_s(v->then_write);
	*writes = writers_stop(v);
	if (ret)
		return 1;
	atomic_store(&v->verified, 0);
	v->duration = 0;
	if (run_vcpus(v))
		return 1;
	if (atomic_load(&v->mismatches)) {
		log_msg("after %llu page writes on the restored RAM:", (unsigned long long)*writes);
		report_bad(v);
		return 1;
	}
	fprintf(stderr, "umem-vmm: then wrote %llu pages in %.1f s; every page verified again\n",
		(unsigned long long)*writes, v->then_write);
	return 0;
}

/* The expected RAM: --expect-file, --expect-state (loaded into @st, which
 * holds nothing to free on failure). */
static int load_expectations(struct vmm *v, const char *efile, const char *sfile,
			     struct vmm_state *st)
{
	if (efile) {
		int fd = open(efile, O_RDONLY | O_CLOEXEC);
		struct stat sb;
		void *p = MAP_FAILED;

		if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > 0)
			p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (fd >= 0)
			close(fd);
		if (p == MAP_FAILED) {
			log_msg("--expect-file %s: %s", efile, strerror(errno));
			return -1;
		}
		v->expect = p;
		v->expect_size = (uint64_t)sb.st_size;
	}
	if (sfile) {
		if (state_load(sfile, st))
			return -1;
		if (v->seed_set && v->seed != st->seed) {
			log_msg("--seed %llu, but the state file %s is of seed %llu",
				(unsigned long long)v->seed, sfile, (unsigned long long)st->seed);
			free(st->gen);
			st->gen = NULL;
			return -1;
		}
		v->seed = st->seed;
	}
	return 0;
}

/* The region is mapped: check its size against the expectations. */
static int check_sizes(struct vmm *v, const struct vmm_state *st)
{
	if (v->expect && v->expect_size != v->size) {
		log_msg("--expect-file is %llu bytes, the region %llu",
			(unsigned long long)v->expect_size, (unsigned long long)v->size);
		return -1;
	}
	if (st->gen && st->size != v->size) {
		log_msg("--expect-state is the state of %llu bytes of RAM, the region has %llu",
			(unsigned long long)st->size, (unsigned long long)v->size);
		return -1;
	}
	v->pages = v->size / PATTERN_PAGE;
	v->seen = calloc((v->pages + 63) / 64, sizeof(*v->seen));
	if (!v->seen)
		return -1;
	if ((st->gen || v->then_write > 0) && writers_init(v, st->gen)) {
		log_msg("no memory for %llu pages' generations", (unsigned long long)v->pages);
		return -1;
	}
	return 0;
}

int guest_run(struct vmm *v, const char *efile, const char *sfile)
{
	struct vmm_state st = { 0 };
	struct sigaction sa;
	uint64_t tw_writes = 0;
	int rc;
	bool bad_umemd = false;

	if (load_expectations(v, efile, sfile, &st))
		return 1;
	if (v->backend && !umem_backend_known(v->backend)) {
		log_msg("unknown backend %s", v->backend);
		free(st.gen);
		return 2;
	}
	{
		struct stat sb;

		if (stat(v->region, &sb) == 0 && S_ISSOCK(sb.st_mode))
			rc = attach_by_socket(v);
		else
			rc = attach_by_path(v);
	}
	if (!rc)
		rc = check_sizes(v, &st);
	free(st.gen);
	if (rc) {
		rc = 1;
		goto out;
	}
	sigbus_ram = v->ram;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	if (v->sock >= 0 && v->wait_run) {
		pthread_mutex_lock(&v->lock);
		while (!v->run && !v->done && !v->failed && !v->gone)
			pthread_cond_wait(&v->cond, &v->lock);
		pthread_mutex_unlock(&v->lock);
	}
	v->t0 = now_ns();
	if (run_vcpus(v)) {
		rc = 1;
		goto out;
	}
	if (atomic_load(&v->mismatches)) {
		/* uffd: after umemd fails and lets go of the uffd, a waiting
		 * task resumes on a zero page.  Name the real cause. */
		if (umemd_failed(v, 2000)) {
			log_msg("page %llu unreliable: umemd failed: %s",
				(unsigned long long)v->bad[0].page,
				v->failed ? v->fail_text : "umemd went away");
			bad_umemd = true;
		} else {
			report_bad(v);
		}
		rc = 1;
	}
	if (!rc && v->sock >= 0) {
		/* Stay mapped until umemd has installed everything. */
		pthread_mutex_lock(&v->lock);
		while (!v->done && !v->failed && !v->gone)
			pthread_cond_wait(&v->cond, &v->lock);
		pthread_mutex_unlock(&v->lock);
		if (!v->done) {
			log_msg("umemd %s before the migration completed%s%s",
				v->failed ? "failed" : "went away",
				v->failed ? ": " : "", v->failed ? v->fail_text : "");
			rc = 1;
			bad_umemd = true;
		}
	}
	if (v->verify_all && !rc && atomic_load(&v->verified) != v->pages) {
		log_msg("verified %llu of %llu pages", (unsigned long long)atomic_load(&v->verified),
			(unsigned long long)v->pages);
		rc = 1;
	}
	if (!rc && v->then_write > 0)
		rc = then_write(v, &tw_writes);
	{
		double secs = (double)(now_ns() - v->t0) / 1e9;
		bool full = atomic_load(&v->nseen) == v->pages;
		double first_ms = (double)atomic_load(&v->first_pass_ns) / 1e6;
		char first[48] = "";

		if (full)
			snprintf(first, sizeof(first), ", first full pass %.3f ms", first_ms);
		fprintf(stderr, "umem-vmm: %s: %llu page reads (%llu pages verified in the final pass) in %.2f s, %u threads, slowest read %.3f ms%s, %llu mismatches\n",
			rc ? "FAILED" : "OK",
			(unsigned long long)atomic_load(&v->accesses),
			(unsigned long long)atomic_load(&v->verified), secs,
			v->threads, atomic_load(&v->max_touch_ns) / 1e6, first,
			(unsigned long long)atomic_load(&v->mismatches));
		if (v->json) {
			printf("{\"ok\":%s,\"reads\":%llu,\"verified\":%llu,\"mismatches\":%llu,\"umemd_failed\":%s,\"seconds\":%.3f,\"max_read_ms\":%.3f",
			       rc ? "false" : "true",
			       (unsigned long long)atomic_load(&v->accesses),
			       (unsigned long long)atomic_load(&v->verified),
			       (unsigned long long)atomic_load(&v->mismatches),
			       bad_umemd ? "true" : "false", secs,
			       atomic_load(&v->max_touch_ns) / 1e6);
			if (full)
				printf(",\"first_pass_ms\":%.3f", first_ms);
			else
				printf(",\"first_pass_ms\":null");
			if (v->then_write > 0)
				printf(",\"then_write_pages\":%llu", (unsigned long long)tw_writes);
			if (v->w.gen)
				print_bad_json(v);
			printf("}\n");
		}
	}
out:
	if (v->sock >= 0)
		shutdown(v->sock, SHUT_RDWR);
	if (v->mon_on)
		pthread_join(v->mon, NULL);
	umem_region_close(v->r);
	if (v->sock >= 0)
		close(v->sock);
	writers_free(v);
	free((void *)v->seen);
	return rc;
}

/*
 * The RAM in v->ram (v->size bytes; @label names it) against the state
 * file: --check-state, --check-snapshot.
 */
int check_state_mem(struct vmm *v, const char *label)
{
	struct vmm_state st;
	uint64_t written = 0, writes = 0;
	int rc = 1;

	if (load_expectations(v, NULL, v->state_path, &st))
		return 1;
	if (check_sizes(v, &st))
		goto out;
	for (uint64_t p = 0; p < st.pages; p++) {
		written += st.gen[p] != 0;
		writes += st.gen[p];
	}
	v->verify_all = true;
	v->duration = 0;
	if (run_vcpus(v))
		goto out;
	if (atomic_load(&v->mismatches)) {
		log_msg("%s does not match %s:", label, v->state_path);
		report_bad(v);
		goto out;
	}
	fprintf(stderr, "umem-vmm: %s matches %s: %llu pages, %llu written, %llu writes in all\n",
		label, v->state_path, (unsigned long long)v->pages,
		(unsigned long long)written, (unsigned long long)writes);
	rc = 0;
out:
	free(st.gen);
	writers_free(v);
	free((void *)v->seen);
	v->seen = NULL;
	return rc;
}

/* --check-state RAM --state-file FILE: RAM (a paused writer's) against FILE. */
int check_state(struct vmm *v, const char *ram_path)
{
	uint64_t size;
	int rc;

	if (ram_map_path(ram_path, false, &v->ram, &size))
		return 1;
	v->size = size;
	rc = check_state_mem(v, ram_path);
	munmap(v->ram, v->size);
	v->ram = NULL;
	return rc;
}
