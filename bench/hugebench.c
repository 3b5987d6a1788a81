// SPDX-License-Identifier: GPL-2.0
/*
 * hugebench - 2 MiB pages against 4 KiB pages (issue 13's benchmarks).
 *
 * Written against the umem uapi and userfaultfd directly, like umembench,
 * so that what is timed is the kernel interface.
 *
 *   hugebench install METHOD MIB
 *	Install MIB MiB with no fault pending.  Prints
 *	"method,bytes,calls,ns,bytes_per_s".  METHOD:
 *	  umem-4k      4 KiB region, one UMEM_COPY per 4 KiB page (the
 *	               baseline of the 2x target)
 *	  umem-4k-run  4 KiB region, one UMEM_COPY per 2 MiB run
 *	  umem-2m      2 MiB region, one UMEM_COPY per 2 MiB page
 *	  uffd-hugetlb hugetlbfs memfd, one UFFDIO_COPY per 2 MiB page
 *	A method that cannot run here prints "METHOD,skip,-,-,REASON" (no
 *	huge pages reserved for uffd-hugetlb; no UMEM_F_PAGE_2M, e.g. on a
 *	kernel without transparent huge pages, for umem-2m).
 *
 *   hugebench lat BACKEND NHUGE OUTFILE
 *	One task touches one random 4 KiB piece of each of NHUGE 2 MiB
 *	extents, in shuffled order, while a daemon thread serves requests;
 *	the time of each touch (ns) goes to OUTFILE.  Then it reads
 *	/proc/self/smaps.  Prints "backend,nhuge,total_ns,pmd_kb,pmd_full_ns":
 *	total_ns from the first touch until every touch returned, pmd_kb the
 *	mapping's ShmemPmdMapped, pmd_full_ns the time until the whole mapping
 *	was PMD-mapped (the daemon installs every page of the region, then
 *	the task touches each extent once more; -1 if it never was).
 *	BACKEND: umem-4k (4 KiB region: a touch requests 4 KiB), umem-2m
 *	(2 MiB region: a touch requests the whole 2 MiB page; or a skip line
 *	as above).
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

#define PG	4096UL
#define HPG	(2UL << 20)
#define MAX_REQS 64

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB	(21U << 26)
#endif

struct hregion {
	size_t size;
	size_t page;		/* region page size */
	int fd;			/* umem server fd, or hugetlbfs memfd */
	int uffd;
	char *map;		/* 2 MiB aligned */
	char *src;		/* daemon's data */
	atomic_size_t installed;	/* bytes */
	uint64_t full_ns;	/* set by the daemon: every byte installed */
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

/* A 2 MiB-aligned MAP_SHARED mapping of @fd (reserve, then MAP_FIXED). */
static char *map_aligned(int fd, size_t size)
{
	char *res = mmap(NULL, size + HPG, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *at;

	if (res == MAP_FAILED)
		return MAP_FAILED;
	at = (char *)(((uintptr_t)res + HPG - 1) & ~(HPG - 1));
	if (mmap(at, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 fd, 0) == MAP_FAILED)
		return MAP_FAILED;
	if (at > res)
		munmap(res, (size_t)(at - res));
	munmap(at + size, (size_t)(res + HPG - at));
	return at;
}

/*
 * The daemon's data, deliberately SRC_SKEW bytes off 2 MiB alignment.
 * Under TCG the guest's softmmu TLB is direct-mapped: a source and a
 * destination (the 2 MiB folio, in the kernel's direct map) that are both
 * 2 MiB aligned advance in lockstep through the same TLB slots and evict
 * each other on every access, which made 2 MiB copies 4-5x slower than
 * the same copy into scattered 4 KiB pages (measured: 31 against
 * 115 MB/s; with the skew both are ~140 MB/s).  Hardware TLBs are set
 * associative and do not care; the skew keeps that artefact out of the
 * figures.
 */
#define SRC_SKEW	(16 * PG)

static void fill_src(struct hregion *r)
{
	char *m = mmap(NULL, r->size + SRC_SKEW, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (m == MAP_FAILED)
		die("mmap src");
	r->src = m + SRC_SKEW;
	/* A stamp per 4 KiB page: cheap to set up under TCG. */
	for (size_t i = 0; i < r->size / PG; i++)
		r->src[i * PG] = (char)((i & 0xff) | 1);
}

/* 0, or -1 with *why set when this module has no 2 MiB regions. */
static int umem_setup(struct hregion *r, size_t size, size_t page,
		      const char **why)
{
	static unsigned int seq;
	struct umem_api api = { .api = UMEM_API };
	struct umem_create c;
	int ctl = open(UMEM_CTL_DEVICE, O_RDWR | O_CLOEXEC);

	memset(r, 0, sizeof(*r));
	r->size = size;
	r->page = page;
	r->uffd = -1;
	fill_src(r);
	if (ctl < 0)
		die("open " UMEM_CTL_DEVICE);
	if (page == HPG)
		api.features = UMEM_F_PAGE_2M;
	if (ioctl(ctl, UMEM_GET_API, &api)) {
		if (errno != EINVAL || page != HPG)
			die("UMEM_GET_API");
		*why = "no UMEM_F_PAGE_2M (no transparent huge pages)";
		close(ctl);
		munmap(r->src - SRC_SKEW, r->size + SRC_SKEW);
		return -1;
	}
	memset(&c, 0, sizeof(c));
	c.size = size;
	c.page_size = (uint32_t)page;
	snprintf(c.name, sizeof(c.name), "hbench-%d-%u", getpid(), seq++);
	r->fd = ioctl(ctl, UMEM_CREATE, &c);
	if (r->fd < 0)
		die("UMEM_CREATE");
	close(ctl);
	r->map = map_aligned(r->fd, size);
	if (r->map == MAP_FAILED)
		die("mmap region");
	return 0;
}

/* 0, or -1 with *why set when hugetlbfs pages cannot be had. */
static int hugetlb_setup(struct hregion *r, size_t size, const char **why)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;

	memset(r, 0, sizeof(*r));
	r->size = size;
	r->page = HPG;
	r->fd = memfd_create("hugebench", MFD_CLOEXEC | MFD_HUGETLB |
			     MFD_HUGE_2MB);
	if (r->fd < 0) {
		*why = "memfd_create(MFD_HUGETLB) failed";
		return -1;
	}
	if (ftruncate(r->fd, (off_t)size)) {
		*why = "not enough free huge pages (nr_hugepages)";
		close(r->fd);
		return -1;
	}
	r->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd,
		      0);
	if (r->map == MAP_FAILED) {
		*why = "not enough free huge pages (nr_hugepages)";
		close(r->fd);
		return -1;
	}
	fill_src(r);
	r->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (r->uffd < 0)
		die("userfaultfd");
	if (ioctl(r->uffd, UFFDIO_API, &api))
		die("UFFDIO_API");
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uintptr_t)r->map;
	reg.range.len = size;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(r->uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER hugetlbfs");
	return 0;
}

static void hregion_free(struct hregion *r)
{
	munmap(r->map, r->size);
	munmap(r->src - SRC_SKEW, r->size + SRC_SKEW);
	if (r->uffd >= 0)
		close(r->uffd);
	close(r->fd);
}

/* Install [off, off + len) with one call; returns bytes installed. */
static size_t install_one(struct hregion *r, uint64_t off, size_t len)
{
	if (r->uffd >= 0) {
		struct uffdio_copy c = { .dst = (uintptr_t)(r->map + off),
					 .src = (uintptr_t)(r->src + off),
					 .len = len };

		if (ioctl(r->uffd, UFFDIO_COPY, &c) && errno != EEXIST)
			die("UFFDIO_COPY");
		return c.copy > 0 ? (size_t)c.copy : 0;
	} else {
		struct umem_copy c = { .offset = off, .len = len,
				       .src = (uintptr_t)(r->src + off) };

		if (ioctl(r->fd, UMEM_COPY, &c) && errno != EEXIST)
			die("UMEM_COPY");
		return c.copied > 0 ? (size_t)c.copied : 0;
	}
}

static int check_data(struct hregion *r)
{
	for (size_t i = 0; i < r->size / PG; i += r->size / PG / 13 + 1)
		if ((unsigned char)r->map[i * PG] != ((i & 0xff) | 1)) {
			fprintf(stderr, "hugebench: bad data at page %zu\n", i);
			return 1;
		}
	return 0;
}

static int cmd_install(const char *method, size_t mib)
{
	size_t size = mib << 20, step;
	const char *why = NULL;
	struct hregion r;
	uint64_t t0, t1;
	size_t calls = 0;

	int err;

	if (!strcmp(method, "umem-4k")) {
		err = umem_setup(&r, size, PG, &why);
		step = PG;
	} else if (!strcmp(method, "umem-4k-run")) {
		err = umem_setup(&r, size, PG, &why);
		step = HPG;
	} else if (!strcmp(method, "umem-2m")) {
		err = umem_setup(&r, size, HPG, &why);
		step = HPG;
	} else if (!strcmp(method, "uffd-hugetlb")) {
		err = hugetlb_setup(&r, size, &why);
		step = HPG;
	} else {
		fprintf(stderr, "hugebench: unknown method %s\n", method);
		return 2;
	}
	if (err) {
		printf("%s,skip,-,-,%s\n", method, why);
		return 0;
	}
	t0 = now_ns();
	for (size_t off = 0; off < size; off += step, calls++)
		if (install_one(&r, off, step) != step) {
			fprintf(stderr, "hugebench: short install at %zu\n", off);
			return 1;
		}
	t1 = now_ns();
	if (check_data(&r))
		return 1;
	printf("%s,%zu,%zu,%llu,%.0f\n", method, size, calls,
	       (unsigned long long)(t1 - t0),
	       (double)size * 1e9 / (double)(t1 - t0));
	hregion_free(&r);
	return 0;
}

/* The daemon: serve requests, one install of a region page each. */
static void *daemon_main(void *arg)
{
	struct hregion *r = arg;
	struct umem_request req[MAX_REQS];

	while (atomic_load(&r->installed) < r->size) {
		ssize_t n = read(r->fd, req, sizeof(req));

		if (n < 0)
			die("read server fd");
		for (size_t i = 0; i < (size_t)n / sizeof(req[0]); i++)
			atomic_fetch_add(&r->installed,
					 install_one(r, req[i].offset, r->page));
	}
	return NULL;
}

/* ShmemPmdMapped (or FilePmdMapped) of the vma at @addr, in kB. */
static long pmd_mapped_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[256];
	int in = 0;
	long kb = -1, v;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		/* A vma's first line; its attribute lines never parse so. */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			if (in)
				break;
			in = lo == (uintptr_t)addr;
			continue;
		}
		if (in && (sscanf(line, "ShmemPmdMapped: %ld kB", &v) == 1 ||
			   sscanf(line, "FilePmdMapped: %ld kB", &v) == 1))
			kb = (kb < 0 ? 0 : kb) + v;
	}
	fclose(f);
	return kb;
}

static void shuffle(size_t *a, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		a[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j, t;

		seed = seed * 1103515245u + 12345u;
		j = (seed >> 8) % (i + 1);
		t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}

static int cmd_lat(const char *backend, size_t nhuge, const char *out)
{
	size_t *order = calloc(nhuge, sizeof(*order));
	uint64_t *ns = calloc(nhuge, sizeof(*ns));
	uint64_t t0, total, full = 0;
	unsigned int seed = (unsigned int)getpid();
	const char *why = NULL;
	struct hregion r;
	pthread_t d;
	long kb;
	FILE *f;
	int err;

	if (!order || !ns)
		die("calloc");
	if (!strcmp(backend, "umem-4k"))
		err = umem_setup(&r, nhuge * HPG, PG, &why);
	else if (!strcmp(backend, "umem-2m"))
		err = umem_setup(&r, nhuge * HPG, HPG, &why);
	else {
		fprintf(stderr, "hugebench: unknown backend %s\n", backend);
		return 2;
	}
	if (err) {
		printf("%s,skip,-,-,%s\n", backend, why);
		return 0;
	}
	shuffle(order, nhuge, seed);
	if (pthread_create(&d, NULL, daemon_main, &r))
		die("pthread_create");
	t0 = now_ns();
	for (size_t i = 0; i < nhuge; i++) {
		size_t piece, pg;
		uint64_t t;
		char c;

		seed = seed * 1103515245u + 12345u;
		piece = (seed >> 8) % (HPG / PG);
		pg = order[i] * (HPG / PG) + piece;
		t = now_ns();
		c = *(volatile char *)(r.map + pg * PG);
		ns[i] = now_ns() - t;
		if ((unsigned char)c != ((pg & 0xff) | 1)) {
			fprintf(stderr, "hugebench: bad data at page %zu\n", pg);
			return 1;
		}
	}
	total = now_ns() - t0;
	/*
	 * The rest of the region: the daemon installs what was not
	 * requested (all of a 4 KiB region's untouched pages), then every
	 * extent is touched once more, which maps it (by PMD if it can be).
	 */
	for (size_t off = 0; off < r.size; off += r.page)
		atomic_fetch_add(&r.installed, install_one(&r, off, r.page));
	for (size_t off = 0; off < r.size; off += HPG)
		(void)*(volatile char *)(r.map + off);
	kb = pmd_mapped_kb(r.map);
	if (kb == (long)(r.size >> 10))
		full = now_ns() - t0;
	pthread_cancel(d);
	pthread_join(d, NULL);
	if (check_data(&r))
		return 1;
	f = fopen(out, "w");
	if (!f)
		die(out);
	for (size_t i = 0; i < nhuge; i++)
		fprintf(f, "%llu\n", (unsigned long long)ns[i]);
	if (fclose(f))
		die(out);
	printf("%s,%zu,%llu,%ld,%lld\n", backend, nhuge,
	       (unsigned long long)total, kb,
	       full ? (long long)full : -1LL);
	hregion_free(&r);
	return 0;
}

static size_t num(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*end || !v) {
		fprintf(stderr, "hugebench: bad number %s\n", s);
		exit(2);
	}
	return (size_t)v;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "install"))
		return cmd_install(argv[2], num(argv[3]));
	if (argc == 5 && !strcmp(argv[1], "lat"))
		return cmd_lat(argv[2], num(argv[3]), argv[4]);
	fprintf(stderr,
		"usage: hugebench install METHOD MIB\n"
		"       hugebench lat BACKEND NHUGE OUTFILE\n");
	return 2;
}
