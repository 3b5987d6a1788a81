// SPDX-License-Identifier: GPL-2.0
/*
 * umembench - micro-benchmarks of umem against userfaultfd.
 *
 * Written directly against the umem uapi (uapi/linux/umem.h) and the
 * userfaultfd API, not through libumem, so that what is timed is the
 * kernel interface and nothing else.  Every backend is set up the same
 * way: one process, the faulting mapping and a daemon thread that serves
 * page requests from memory with blocking read()s.
 *
 *   umembench lat BACKEND NPAGES OUTFILE
 *	One task touches NPAGES pages (shuffled order), one at a time; the
 *	time of each access (fault to return, ns) goes to OUTFILE, one per
 *	line.  BACKEND: shmem (plain first-touch shmem fault: the floor),
 *	umem-copy, umem-write, uffd-copy, uffd-minor; and, with every page
 *	present before the first touch (no daemon): shmem-present (a memfd
 *	filled with pwrite()) and umem-present (a region filled with one
 *	UMEM_COPY), where a fault only maps a page already in the page cache.
 *
 *   umembench install METHOD BATCH NPAGES
 *	Install NPAGES pages with no fault pending, BATCH pages per call.
 *	Prints "method,batch,npages,ns,pages_per_s".  METHOD: memcpy
 *	(memcpy into a fresh shmem mapping: fault + allocate + copy, the
 *	limit), memcpy-hot (into already allocated shmem: copy only),
 *	pwrite-hot (pwrite() into already allocated shmem: the kernel's copy,
 *	which is what every install ioctl uses),
 *	umem-copy (UMEM_COPY over BATCH contiguous pages), umem-copy-vec
 *	(UMEM_COPY_VEC of BATCH entries), umem-write (pwrite of BATCH pages +
 *	one UMEM_MARK_PRESENT of BATCH offsets), uffd-copy (UFFDIO_COPY over
 *	BATCH pages), uffd-minor (pwrite + UFFDIO_CONTINUE over BATCH pages).
 *
 *   umembench threads BACKEND NTHREADS NPAGES [blocktime]
 *	NTHREADS tasks fault distinct pages (NPAGES in all) concurrently, one
 *	daemon thread serves each request with a single-page install.  Prints
 *	"backend,threads,npages,ns,faults_per_s,blocktime_ns".  With
 *	"blocktime", also measures the time during which every faulting task
 *	was blocked at once (QEMU's postcopy blocktime); this adds a mutex to
 *	each fault, so it is a separate run.  BACKEND: umem-copy, umem-vec
 *	(daemon installs all requests of one read() with UMEM_COPY_VEC),
 *	umem-write, uffd-copy, uffd-minor.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "linux/umem.h"

#define PG 4096UL
#define MAX_REQS 64

enum kind { K_SHMEM, K_UMEM_COPY, K_UMEM_VEC, K_UMEM_WRITE, K_UFFD_COPY,
	    K_UFFD_MINOR, K_SHMEM_PRESENT, K_UMEM_PRESENT };

static const char *const kind_names[] = {
	"shmem", "umem-copy", "umem-vec", "umem-write", "uffd-copy",
	"uffd-minor", "shmem-present", "umem-present",
};

struct region {
	enum kind kind;
	size_t size;
	int fd;			/* umem: server fd; uffd*, shmem: memfd */
	int uffd;		/* uffd*: the userfaultfd */
	char *map;		/* the faulting mapping */
	char *src;		/* daemon's source pages (private, prefaulted) */
	size_t npages;
	atomic_size_t installed;
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static enum kind parse_kind(const char *s)
{
	for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (!strcmp(s, kind_names[i]))
			return (enum kind)i;
	fprintf(stderr, "umembench: unknown backend %s\n", s);
	exit(2);
}

static int is_umem(enum kind k)
{
	return k == K_UMEM_COPY || k == K_UMEM_VEC || k == K_UMEM_WRITE ||
	       k == K_UMEM_PRESENT;
}

/* Does a lat run of @k need a daemon thread serving faults? */
static int has_daemon(enum kind k)
{
	return k != K_SHMEM && k != K_SHMEM_PRESENT && k != K_UMEM_PRESENT;
}

static void region_setup(struct region *r, enum kind k, size_t npages)
{
	static unsigned int seq;
	char name[UMEM_NAME_MAX];

	memset(r, 0, sizeof(*r));
	r->kind = k;
	r->npages = npages;
	r->size = npages * PG;
	r->uffd = -1;
	r->src = mmap(NULL, r->size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (r->src == MAP_FAILED)
		die("mmap src");
	/* A stamp per page (the rest stays zero): cheap to set up under TCG. */
	for (size_t i = 0; i < npages; i++)
		r->src[i * PG] = (char)((i & 0xff) | 1);

	if (is_umem(k)) {
		struct umem_api api = { .api = UMEM_API };
		struct umem_create c;
		int ctl = open(UMEM_CTL_DEVICE, O_RDWR | O_CLOEXEC);

		if (ctl < 0)
			die("open " UMEM_CTL_DEVICE);
		if (ioctl(ctl, UMEM_GET_API, &api))
			die("UMEM_GET_API");
		memset(&c, 0, sizeof(c));
		c.size = r->size;
		c.page_size = UMEM_PAGE_SIZE_4K;
		snprintf(name, sizeof(name), "bench-%d-%u", getpid(), seq++);
		memcpy(c.name, name, strlen(name) + 1);
		r->fd = ioctl(ctl, UMEM_CREATE, &c);
		if (r->fd < 0)
			die("UMEM_CREATE");
		close(ctl);
	} else {
		r->fd = memfd_create("umembench", MFD_CLOEXEC);
		if (r->fd < 0)
			die("memfd_create");
		if (ftruncate(r->fd, (off_t)r->size))
			die("ftruncate");
	}
	r->map = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      r->fd, 0);
	if (r->map == MAP_FAILED)
		die("mmap region");

	if (k == K_UFFD_COPY || k == K_UFFD_MINOR) {
		struct uffdio_api api = { .api = UFFD_API };
		struct uffdio_register reg;

		r->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
		if (r->uffd < 0)
			die("userfaultfd");
		if (k == K_UFFD_MINOR)
			api.features = UFFD_FEATURE_MINOR_SHMEM;
		if (ioctl(r->uffd, UFFDIO_API, &api))
			die("UFFDIO_API");
		memset(&reg, 0, sizeof(reg));
		reg.range.start = (uintptr_t)r->map;
		reg.range.len = r->size;
		reg.mode = UFFDIO_REGISTER_MODE_MISSING;
		if (k == K_UFFD_MINOR)
			reg.mode |= UFFDIO_REGISTER_MODE_MINOR;
		if (ioctl(r->uffd, UFFDIO_REGISTER, &reg))
			die("UFFDIO_REGISTER");
	}
}

static void region_free(struct region *r)
{
	munmap(r->map, r->size);
	munmap(r->src, r->size);
	if (r->uffd >= 0)
		close(r->uffd);
	close(r->fd);
}

static void xpwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("pwrite");
		buf = (const char *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
}

/*
 * Install [off, off + npg pages) with this region's single-call method.
 * Returns pages installed (0 if already present).
 */
static size_t install_range(struct region *r, uint64_t off, size_t npg)
{
	size_t len = npg * PG;

	switch (r->kind) {
	case K_UMEM_COPY:
	case K_UMEM_VEC: {
		struct umem_copy c = { .offset = off, .len = len,
				       .src = (uintptr_t)(r->src + off) };

		if (ioctl(r->fd, UMEM_COPY, &c) && errno != EEXIST)
			die("UMEM_COPY");
		return c.copied > 0 ? (size_t)c.copied / PG : 0;
	}
	case K_UMEM_WRITE: {
		uint64_t offs[MAX_REQS];
		struct umem_mark_present m = { .offsets = (uintptr_t)offs,
					       .count = (uint32_t)npg };

		if (npg > MAX_REQS)
			abort();
		xpwrite(r->fd, r->src + off, len, off);
		for (size_t i = 0; i < npg; i++)
			offs[i] = off + i * PG;
		if (ioctl(r->fd, UMEM_MARK_PRESENT, &m) && errno != EEXIST)
			die("UMEM_MARK_PRESENT");
		return (size_t)m.marked;
	}
	case K_UFFD_COPY: {
		struct uffdio_copy c = { .dst = (uintptr_t)(r->map + off),
					 .src = (uintptr_t)(r->src + off),
					 .len = len };

		if (ioctl(r->uffd, UFFDIO_COPY, &c) && errno != EEXIST)
			die("UFFDIO_COPY");
		return c.copy > 0 ? (size_t)c.copy / PG : 0;
	}
	case K_UFFD_MINOR: {
		struct uffdio_continue c = {
			.range = { .start = (uintptr_t)(r->map + off),
				   .len = len } };

		xpwrite(r->fd, r->src + off, len, off);
		if (ioctl(r->uffd, UFFDIO_CONTINUE, &c) && errno != EEXIST)
			die("UFFDIO_CONTINUE");
		return c.mapped > 0 ? (size_t)c.mapped / PG : 0;
	}
	default:
		abort();
	}
}

/* Read up to max requests (blocking); returns page offsets in offs[]. */
static size_t read_requests(struct region *r, uint64_t *offs, size_t max)
{
	if (is_umem(r->kind)) {
		struct umem_request req[MAX_REQS];
		ssize_t n = read(r->fd, req, max * sizeof(req[0]));

		if (n < 0)
			die("read server fd");
		for (size_t i = 0; i < (size_t)n / sizeof(req[0]); i++)
			offs[i] = req[i].offset;
		return (size_t)n / sizeof(req[0]);
	} else {
		struct uffd_msg msg[MAX_REQS];
		ssize_t n = read(r->uffd, msg, max * sizeof(msg[0]));
		size_t k = 0;

		if (n < 0)
			die("read userfaultfd");
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			offs[k++] = (msg[i].arg.pagefault.address & ~(PG - 1)) -
				    (uintptr_t)r->map;
		}
		return k;
	}
}

/* The daemon: serve requests until every page of the region is present. */
static void *daemon_main(void *arg)
{
	struct region *r = arg;
	uint64_t offs[MAX_REQS];

	while (atomic_load(&r->installed) < r->npages) {
		size_t n = read_requests(r, offs, MAX_REQS);

		if (r->kind == K_UMEM_VEC && n > 1) {
			struct umem_copy_entry e[MAX_REQS];
			struct umem_copy_vec v = { .entries = (uintptr_t)e,
						   .count = (uint32_t)n };

			for (size_t i = 0; i < n; i++) {
				e[i].offset = offs[i];
				e[i].src = (uintptr_t)(r->src + offs[i]);
				e[i].result = 0;
			}
			if (ioctl(r->fd, UMEM_COPY_VEC, &v))
				die("UMEM_COPY_VEC");
			for (size_t i = 0; i < n; i++)
				if (!e[i].result)
					atomic_fetch_add(&r->installed, 1);
			continue;
		}
		for (size_t i = 0; i < n; i++)
			atomic_fetch_add(&r->installed,
					 install_range(r, offs[i], 1));
	}
	return NULL;
}

static void shuffle(size_t *a, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		a[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j;

		seed = seed * 1103515245u + 12345u;
		j = (seed >> 8) % (i + 1);
		size_t t = a[i];

		a[i] = a[j];
		a[j] = t;
	}
}

static int cmd_lat(enum kind k, size_t npages, const char *out)
{
	struct region r;
	pthread_t d;
	size_t *order = calloc(npages, sizeof(*order));
	uint64_t *ns = calloc(npages, sizeof(*ns));
	FILE *f;

	if (!order || !ns)
		die("calloc");
	if (k == K_UMEM_VEC)
		k = K_UMEM_COPY;
	region_setup(&r, k, npages);
	shuffle(order, npages, (unsigned int)getpid());
	if (k == K_SHMEM_PRESENT)
		xpwrite(r.fd, r.src, r.size, 0);
	if (k == K_UMEM_PRESENT) {
		struct umem_copy c = { .offset = 0, .len = r.size,
				       .src = (uintptr_t)r.src };

		if (ioctl(r.fd, UMEM_COPY, &c) || c.copied != (int64_t)r.size)
			die("UMEM_COPY");
	}
	if (has_daemon(k) && pthread_create(&d, NULL, daemon_main, &r))
		die("pthread_create");
	for (size_t i = 0; i < npages; i++) {
		volatile char *p = r.map + order[i] * PG;
		uint64_t t0 = now_ns();
		char c = *p;

		ns[i] = now_ns() - t0;
		if ((unsigned char)c != ((k == K_SHMEM) ? 0 : ((order[i] & 0xff) | 1))) {
			fprintf(stderr, "umembench: bad data at page %zu\n",
				order[i]);
			return 1;
		}
	}
	if (has_daemon(k))
		pthread_join(d, NULL);
	f = fopen(out, "w");
	if (!f)
		die(out);
	for (size_t i = 0; i < npages; i++)
		fprintf(f, "%llu\n", (unsigned long long)ns[i]);
	if (fclose(f))
		die(out);
	region_free(&r);
	return 0;
}

static int cmd_install(const char *method, size_t batch, size_t npages)
{
	struct region r;
	uint64_t t0, t1;
	enum kind k;

	npages -= npages % batch;
	if (!npages || batch > UMEM_COPY_VEC_MAX)
		return 2;
	if (!strcmp(method, "memcpy") || !strcmp(method, "memcpy-hot")) {
		region_setup(&r, K_SHMEM, npages);
		if (!strcmp(method, "memcpy-hot"))
			memset(r.map, 0, r.size);
		t0 = now_ns();
		for (size_t i = 0; i < npages; i += batch)
			memcpy(r.map + i * PG, r.src + i * PG, batch * PG);
		t1 = now_ns();
	} else if (!strcmp(method, "pwrite-hot")) {
		region_setup(&r, K_SHMEM, npages);
		memset(r.map, 0, r.size);
		t0 = now_ns();
		for (size_t i = 0; i < npages; i += batch)
			xpwrite(r.fd, r.src + i * PG, batch * PG, i * PG);
		t1 = now_ns();
	} else if (!strcmp(method, "umem-copy-vec")) {
		struct umem_copy_entry *e = calloc(batch, sizeof(*e));

		region_setup(&r, K_UMEM_COPY, npages);
		t0 = now_ns();
		for (size_t i = 0; i < npages; i += batch) {
			struct umem_copy_vec v = { .entries = (uintptr_t)e,
						   .count = (uint32_t)batch };

			for (size_t j = 0; j < batch; j++) {
				e[j].offset = (i + j) * PG;
				e[j].src = (uintptr_t)(r.src + (i + j) * PG);
				e[j].result = 0;
			}
			if (ioctl(r.fd, UMEM_COPY_VEC, &v) || v.handled != batch)
				die("UMEM_COPY_VEC");
		}
		t1 = now_ns();
		free(e);
	} else if (!strcmp(method, "umem-write")) {
		uint64_t *offs = calloc(batch, sizeof(*offs));

		region_setup(&r, K_UMEM_WRITE, npages);
		t0 = now_ns();
		for (size_t i = 0; i < npages; i += batch) {
			struct umem_mark_present m = {
				.offsets = (uintptr_t)offs,
				.count = (uint32_t)batch };

			xpwrite(r.fd, r.src + i * PG, batch * PG, i * PG);
			for (size_t j = 0; j < batch; j++)
				offs[j] = (i + j) * PG;
			if (ioctl(r.fd, UMEM_MARK_PRESENT, &m) ||
			    m.marked != batch)
				die("UMEM_MARK_PRESENT");
		}
		t1 = now_ns();
		free(offs);
	} else {
		if (!strcmp(method, "umem-copy"))
			k = K_UMEM_COPY;
		else if (!strcmp(method, "uffd-copy"))
			k = K_UFFD_COPY;
		else if (!strcmp(method, "uffd-minor"))
			k = K_UFFD_MINOR;
		else {
			fprintf(stderr, "umembench: unknown method %s\n", method);
			return 2;
		}
		region_setup(&r, k, npages);
		t0 = now_ns();
		for (size_t i = 0; i < npages; i += batch)
			if (install_range(&r, i * PG, batch) != batch) {
				fprintf(stderr, "umembench: short install\n");
				return 1;
			}
		t1 = now_ns();
	}
	/* Check a few pages landed. */
	for (size_t i = 0; i < npages; i += npages / 7 + 1)
		if ((unsigned char)r.map[i * PG] != ((i & 0xff) | 1)) {
			fprintf(stderr, "umembench: bad data at page %zu\n", i);
			return 1;
		}
	printf("%s,%zu,%zu,%llu,%.0f\n", method, batch, npages,
	       (unsigned long long)(t1 - t0),
	       (double)npages * 1e9 / (double)(t1 - t0));
	region_free(&r);
	return 0;
}

struct tctx {
	struct region *r;
	size_t first, count;
	pthread_barrier_t *bar;
	int blocktime;
};

static pthread_mutex_t bt_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t bt_blocked, bt_threads;
static uint64_t bt_since, bt_total;

static void *fault_main(void *arg)
{
	struct tctx *t = arg;
	unsigned int sum = 0;

	pthread_barrier_wait(t->bar);
	for (size_t i = t->first; i < t->first + t->count; i++) {
		volatile char *p = t->r->map + i * PG;

		if (t->blocktime) {
			pthread_mutex_lock(&bt_lock);
			if (++bt_blocked == bt_threads)
				bt_since = now_ns();
			pthread_mutex_unlock(&bt_lock);
		}
		sum += (unsigned char)*p;
		if (t->blocktime) {
			pthread_mutex_lock(&bt_lock);
			if (bt_blocked-- == bt_threads)
				bt_total += now_ns() - bt_since;
			pthread_mutex_unlock(&bt_lock);
		}
	}
	/* A finished thread no longer counts as a vCPU. */
	if (t->blocktime) {
		pthread_mutex_lock(&bt_lock);
		if (bt_blocked == bt_threads - 1 && bt_blocked)
			bt_since = now_ns();
		bt_threads--;
		pthread_mutex_unlock(&bt_lock);
	}
	return (void *)(uintptr_t)sum;
}

static int cmd_threads(enum kind k, size_t nthreads, size_t npages,
		       int blocktime)
{
	struct region r;
	pthread_t d, *th = calloc(nthreads, sizeof(*th));
	struct tctx *tc = calloc(nthreads, sizeof(*tc));
	pthread_barrier_t bar;
	uint64_t t0, t1;

	if (!th || !tc || !nthreads || !has_daemon(k))
		return 2;
	npages -= npages % nthreads;
	region_setup(&r, k, npages);
	bt_threads = nthreads;
	pthread_barrier_init(&bar, NULL, (unsigned int)nthreads + 1);
	if (pthread_create(&d, NULL, daemon_main, &r))
		die("pthread_create");
	for (size_t i = 0; i < nthreads; i++) {
		tc[i] = (struct tctx){ .r = &r, .first = i * (npages / nthreads),
				       .count = npages / nthreads, .bar = &bar,
				       .blocktime = blocktime };
		if (pthread_create(&th[i], NULL, fault_main, &tc[i]))
			die("pthread_create");
	}
	/*
	 * The clock starts before the barrier releases the threads: taken
	 * after it, a thread could already be blocked in its first fault,
	 * and blocktime could exceed the run time at small sizes.
	 */
	t0 = now_ns();
	pthread_barrier_wait(&bar);
	for (size_t i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	t1 = now_ns();
	pthread_join(d, NULL);
	for (size_t i = 0; i < npages; i += npages / 7 + 1)
		if ((unsigned char)r.map[i * PG] != ((i & 0xff) | 1)) {
			fprintf(stderr, "umembench: bad data at page %zu\n", i);
			return 1;
		}
	printf("%s,%zu,%zu,%llu,%.0f,%llu\n", kind_names[k], nthreads, npages,
	       (unsigned long long)(t1 - t0),
	       (double)npages * 1e9 / (double)(t1 - t0),
	       (unsigned long long)bt_total);
	region_free(&r);
	return 0;
}

static size_t num(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*end || !v) {
		fprintf(stderr, "umembench: bad number %s\n", s);
		exit(2);
	}
	return (size_t)v;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "lat"))
		return cmd_lat(parse_kind(argv[2]), num(argv[3]), argv[4]);
	if (argc == 5 && !strcmp(argv[1], "install"))
		return cmd_install(argv[2], num(argv[3]), num(argv[4]));
	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "threads"))
		return cmd_threads(parse_kind(argv[2]), num(argv[3]),
				   num(argv[4]),
				   argc == 6 && !strcmp(argv[5], "blocktime"));
	fprintf(stderr,
		"usage: umembench lat BACKEND NPAGES OUTFILE\n"
		"       umembench install METHOD BATCH NPAGES\n"
		"       umembench threads BACKEND NTHREADS NPAGES [blocktime]\n");
	return 2;
}
