// SPDX-License-Identifier: GPL-2.0
/*
 * umem-vmm --writer: a running "guest".  It maps its RAM shared and keeps
 * writing pages, each stamped with its generation (page.h), until SIGTERM
 * or SIGINT.  The RAM is a file, a device node (/dev/umem-NAME), or a
 * region it creates itself with libumem (--writer-backend uffd): born
 * present and write-protectable, as a VMM that may be snapshotted must.
 *
 * The pause protocol, the VMM's "stop" and "cont":
 *   SIGUSR1  every writer thread parks between two page writes (never in
 *            the middle of a stamp), then the main thread writes the
 *            generation table to the --state-file (state.h); a second
 *            SIGUSR1 while parked writes it again;
 *   SIGUSR2  the threads go on.
 * Only the main thread takes these signals (sigwaitinfo), so the threads
 * never see a handler, and a page write is never interrupted by one.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "page.h"
#include "pattern.h"
#include "state.h"
#include "util.h"
#include "vmm.h"

/* ---- the writer threads ---- */

/*
 * Stamp @page unless another thread is stamping it (then false: the
 * caller picks another page).  The table moves only once the page holds
 * the new stamp, so a parked writer never leaves the two apart.
 */
static bool write_page(struct vmm *v, uint64_t page)
{
	_Atomic uint64_t *g = &v->w.gen[page];
	uint64_t old = atomic_load_explicit(g, memory_order_relaxed);

	if ((old & 1) || !atomic_compare_exchange_strong(g, &old, old | 1))
		return false;
	page_stamp(v->ram + page * PATTERN_PAGE, page, (old >> 1) + 1);
	atomic_store_explicit(g, old + 2, memory_order_release);
	return true;
}

/* Called by a writer thread when park is set. */
static void park_here(struct writers *w)
{
	pthread_mutex_lock(&w->lock);
	w->parked++;
	pthread_cond_broadcast(&w->cond);
	while (atomic_load(&w->park) && !atomic_load(&w->stop))
		pthread_cond_wait(&w->cond, &w->lock);
	w->parked--;
	pthread_mutex_unlock(&w->lock);
}

static void *writer_run(void *arg)
{
	struct vcpu *c = arg;
	struct vmm *v = c->v;
	struct writers *w = &v->w;
	uint64_t page = c->id, n = 0, t0 = now_ns();

	while (!atomic_load_explicit(&w->stop, memory_order_relaxed)) {
		/* The safe point: between two page writes. */
		if (atomic_load_explicit(&w->park, memory_order_acquire)) {
			park_here(w);
			n = 0;		/* no catching up on the time parked */
			t0 = now_ns();
			continue;
		}
		page = next_page(v, c, page);
		if (!write_page(v, page))
			continue;
		atomic_fetch_add_explicit(&c->writes, 1, memory_order_relaxed);
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

int writers_init(struct vmm *v, const uint64_t *init)
{
	struct writers *w = &v->w;

	w->gen = calloc(v->pages ? v->pages : 1, sizeof(*w->gen));
	w->cpus = calloc(v->threads, sizeof(*w->cpus));
	w->th = calloc(v->threads, sizeof(*w->th));
	if (!w->gen || !w->cpus || !w->th)
		return -ENOMEM;
	for (uint64_t p = 0; init && p < v->pages; p++)
		atomic_init(&w->gen[p], init[p] << 1);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	return 0;
}

int writers_start(struct vmm *v)
{
	struct writers *w = &v->w;

	atomic_store(&w->stop, false);
	for (w->started = 0; w->started < v->threads; w->started++) {
		vcpu_init(&w->cpus[w->started], v, w->started);
		if (pthread_create(&w->th[w->started], NULL, writer_run, &w->cpus[w->started])) {
			log_msg("cannot start writer thread %u", w->started);
			return -EAGAIN;
		}
	}
	return 0;
}

int writers_park(struct vmm *v, const sigset_t *give_up)
{
	struct writers *w = &v->w;
	int ret = 0;

	atomic_store(&w->park, true);
	pthread_mutex_lock(&w->lock);
	while (w->parked < w->started) {
		struct timespec ts;
		sigset_t pend;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cond, &w->lock, &ts);
		if (w->parked < w->started && give_up && !sigpending(&pend)) {
			for (int s = 1; s < NSIG && !ret; s++)
				if (sigismember(give_up, s) == 1 && sigismember(&pend, s) == 1)
					ret = -EINTR;
			if (ret)
				break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return ret;
}

/* Change what parked threads wait on, and wake them to look. */
static void gate_set(struct writers *w, atomic_bool *flag, bool value)
{
	pthread_mutex_lock(&w->lock);
	atomic_store(flag, value);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void writers_unpark(struct vmm *v)
{
	gate_set(&v->w, &v->w.park, false);
}

static uint64_t writes_total(const struct vmm *v)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < v->w.started; i++)
		n += atomic_load_explicit(&v->w.cpus[i].writes, memory_order_relaxed);
	return n;
}

uint64_t writers_stop(struct vmm *v)
{
	struct writers *w = &v->w;

	gate_set(w, &w->stop, true);
	for (unsigned int i = 0; i < w->started; i++)
		pthread_join(w->th[i], NULL);
	return writes_total(v);
}

void writers_free(struct vmm *v)
{
	free((void *)v->w.gen);
	free(v->w.cpus);
	free(v->w.th);
	memset(&v->w, 0, sizeof(v->w));
}

/* ---- the RAM ---- */

int ram_map_path(const char *path, bool writable, uint8_t **ram, uint64_t *size)
{
	int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	struct stat st;
	off_t end;
	void *p;

	if (fd < 0 || fstat(fd, &st) < 0) {
		log_msg("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* A regular file (or memfd) has a size; a device node has an end. */
	if (S_ISREG(st.st_mode)) {
		end = st.st_size;
	} else {
		end = lseek(fd, 0, SEEK_END);
		if (end < 0) {
			log_msg("%s: lseek to its end: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
	}
	if (end <= 0 || end % PATTERN_PAGE) {
		log_msg("%s: %lld bytes: guest RAM must be a non-zero multiple of 4096",
			path, (long long)end);
		close(fd);
		return -1;
	}
	p = mmap(NULL, (size_t)end, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		log_msg("%s: mmap %lld bytes: %s", path, (long long)end, strerror(errno));
		return -1;
	}
	*ram = p;
	*size = (uint64_t)end;
	return 0;
}

/*
 * --writer-backend: our own region, born present (it reads as zeros) and
 * write-protectable, mapped and, for uffd*, registered for write
 * protection by a userfaultfd that --offer-socket hands to umemd.
 */
static int ram_create(struct vmm *v)
{
	struct umem_region_config cfg;
	char name[32];
	int ret;

	if (!strcmp(v->writer_backend, "umem")) {
		log_msg("--writer-backend umem: a region the writer holds could not be served by umemd; make it with 'umemctl create NAME --size SZ --present --wp -- umem-vmm --writer /dev/umem-NAME --fill ...'");
		return -1;
	}
	if (!v->size) {
		log_msg("--writer-backend needs --size");
		return -1;
	}
	snprintf(name, sizeof(name), "umem-vmm-%d", (int)getpid());
	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = v->writer_backend;
	cfg.name = name;
	cfg.size = v->size;
	cfg.flags = UMEM_REGION_PRESENT | UMEM_REGION_WRITE_PROTECT;
	cfg.log = log_libumem;
	ret = umem_region_create(&cfg, &v->r);
	if (!ret)
		ret = umem_region_map(v->r, (void **)&v->ram);
	if (ret) {
		log_msg("creating the %s region for the writer: %s", v->writer_backend,
			umem_strerror(ret));
		return -1;
	}
	return 0;
}

static int writer_ram(struct vmm *v, const char *path)
{
	uint64_t size;

	if (!path)
		return ram_create(v);
	if (ram_map_path(path, true, &v->ram, &size))
		return -1;
	if (v->size && v->size != size) {
		log_msg("--size %llu, but %s has %llu bytes", (unsigned long long)v->size,
			path, (unsigned long long)size);
		munmap(v->ram, size);
		v->ram = NULL;
		return -1;
	}
	v->size = size;
	return 0;
}

/* ---- the main thread: signals ---- */

static int save_state(struct vmm *v)
{
	struct vmm_state st = { .seed = v->seed, .size = v->size, .pages = v->pages };
	int ret;

	st.gen = malloc(v->pages * sizeof(uint64_t));
	if (!st.gen)
		return -ENOMEM;
	for (uint64_t p = 0; p < v->pages; p++)
		st.gen[p] = writer_gen(&v->w, p);
	ret = state_save(v->state_path, &st);
	free(st.gen);
	return ret;
}

/* Until SIGTERM or SIGINT: SIGUSR1 parks and saves, SIGUSR2 resumes. */
static void signal_loop(struct vmm *v, const sigset_t *set, const sigset_t *quit)
{
	for (;;) {
		int sig = sigwaitinfo(set, NULL);

		if (sig == SIGUSR1) {
			if (writers_park(v, quit))
				continue;	/* SIGTERM or SIGINT: the next turn ends */
			if (v->state_path && save_state(v) == 0)
				fprintf(stderr, "umem-vmm: writer paused after %llu page writes; state in %s\n",
					(unsigned long long)writes_total(v), v->state_path);
		} else if (sig == SIGUSR2) {
			writers_unpark(v);
		} else if (sig > 0) {
			return;
		}
	}
}

int writer_main(struct vmm *v, const char *path)
{
	sigset_t set, quit;
	int rc = 1;

	if (v->offer_path && !v->writer_backend) {
		log_msg("--offer-socket needs --writer-backend uffd|uffd-minor (RAM with a userfaultfd to offer)");
		return 2;
	}
	/* Before any thread: every thread inherits the blocked set. */
	sigemptyset(&quit);
	sigaddset(&quit, SIGTERM);
	sigaddset(&quit, SIGINT);
	set = quit;
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (writer_ram(v, path))
		goto out;
	v->pages = v->size / PATTERN_PAGE;
	if (v->fill || !path) {
		for (uint64_t p = 0; p < v->pages; p++)
			pattern_fill(v->seed, p, v->ram + p * PATTERN_PAGE);
	}
	if (writers_init(v, NULL)) {
		log_msg("no memory for %llu pages' generations", (unsigned long long)v->pages);
		goto out;
	}
	if (v->offer_path && offer_start(v))
		goto out;
	fprintf(stderr, "umem-vmm: writer pid %d: %u threads writing %s%s (%llu pages)\n",
		(int)getpid(), v->threads, path ? path : "a region of backend ",
		path ? "" : umem_region_backend(v->r), (unsigned long long)v->pages);
	if (writers_start(v) == 0) {
		signal_loop(v, &set, &quit);
		rc = 0;
	}
	fprintf(stderr, "umem-vmm: writer stopped after %llu page writes\n",
		(unsigned long long)writers_stop(v));
out:
	atomic_store(&v->w.stop, true);
	offer_join(v);
	writers_free(v);
	if (v->r)
		umem_region_close(v->r);
	else if (v->ram)
		munmap(v->ram, v->size);
	return rc;
}
