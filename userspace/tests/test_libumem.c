// SPDX-License-Identifier: GPL-2.0
/*
 * libumem tests, per backend: argument checking, fault -> request ->
 * install in one process, the two-process VMM/daemon hand-over through a
 * unix socket, discard, and what happens to a faulting task when the
 * daemon lets go; write protection (regions born present, blocked
 * writers, one request per page, churn, the snapshot hand-over from VMM
 * to daemon on uffd*, attach by node on umem).  The umem backend is
 * skipped (with the reason) when /dev/umem is absent, and its write
 * protection cases when the module lacks the umem 0.5 features.
 *
 *   test-libumem [BACKEND...]       default: uffd uffd-minor umem
 *   test-libumem --huge [BACKEND...] regions of 2 MiB pages (uffd*: on
 *                                    hugetlbfs; needs 2 MiB huge pages
 *                                    reserved, else a SKIP line says so;
 *                                    umem: SKIP if the module lacks
 *                                    UMEM_F_PAGE_2M); write protection
 *                                    of 2 MiB pages on every backend
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/umem.h>

#include "libumem.h"
#include "vmmsock.h"

#define PS 4096ULL
#define NPAGES 64

static int passed, failed, skipped;

#define OK(cond, ...) do {						\
	if (cond) {							\
		passed++;						\
		printf("ok %d - [%s] ", passed + failed, backend);	\
	} else {							\
		failed++;						\
		printf("not ok %d - [%s] ", passed + failed, backend);	\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	fflush(stdout);							\
} while (0)

static const char *backend;

static struct umem_region_config config(const char *name, uint64_t size)
{
	struct umem_region_config c;

	memset(&c, 0, sizeof(c));
	c.backend = backend;
	c.name = name;
	c.size = size;
	return c;
}

/* A thread that reads (touch_async) or writes (write_async) 8 bytes. */
struct toucher {
	volatile uint8_t *addr;
	uint64_t value;		/* read, or to write */
	bool write;
	bool joined;
	int done;
	pthread_t th;
};

static void *touch_thread(void *arg)
{
	struct toucher *t = arg;

	if (t->write)
		*(volatile uint64_t *)t->addr = t->value;
	else
		t->value = *(volatile uint64_t *)t->addr;
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void touch_async(struct toucher *t, uint8_t *addr)
{
	memset(t, 0, sizeof(*t));
	t->addr = addr;
	pthread_create(&t->th, NULL, touch_thread, t);
}

static void write_async(struct toucher *t, uint8_t *addr, uint64_t value)
{
	memset(t, 0, sizeof(*t));
	t->addr = addr;
	t->value = value;
	t->write = true;
	pthread_create(&t->th, NULL, touch_thread, t);
}

static bool touch_done(struct toucher *t)
{
	return __atomic_load_n(&t->done, __ATOMIC_SEQ_CST);
}

/* Join with a deadline; false if the thread is still stuck. */
static bool touch_join(struct toucher *t, int ms)
{
	if (t->joined)
		return true;
	for (int i = 0; i < ms / 10; i++) {
		if (__atomic_load_n(&t->done, __ATOMIC_SEQ_CST)) {
			pthread_join(t->th, NULL);
			t->joined = true;
			return true;
		}
		usleep(10000);
	}
	return false;
}

static void test_args(void)
{
	struct umem_region_config c = config("t-args", NPAGES * PS);
	struct umem_region *r = NULL;

	c.backend = "nope";
	OK(umem_region_create(&c, &r) == -ENOENT, "unknown backend: -ENOENT");
	c = config("bad name!", NPAGES * PS);
	OK(umem_region_create(&c, &r) == -EINVAL, "bad name: -EINVAL");
	c = config("t-args", 0);
	OK(umem_region_create(&c, &r) == -EINVAL, "size 0: -EINVAL");
	c = config("t-args", PS + 1);
	OK(umem_region_create(&c, &r) == -EINVAL, "unaligned size: -EINVAL");
	c = config("t-args", PS);
	c.page_size = 8192;
	OK(umem_region_create(&c, &r) == -EINVAL, "8 KiB pages: -EINVAL");
	c = config("t-args", PS);
	c.reserved[2] = 1;
	OK(umem_region_create(&c, &r) == -EINVAL, "reserved field set: -EINVAL");
	c = config("t-args", PS);
	c.flags = 1U << 2;
	OK(umem_region_create(&c, &r) == -EINVAL, "unknown flag: -EINVAL");
	c = config("t-args", PS);
	c.flags = 1U << 31;
	OK(umem_region_open(&c, -1, "/dev/null", &r) == -EINVAL, "open, unknown flag: -EINVAL");
	c = config("t-args", PS);
	c.flags = UMEM_REGION_PRESENT;
	if (strcmp(backend, "umem"))
		OK(umem_region_create(&c, &r) == -EINVAL,
		   "born present without write protection: -EINVAL (nothing to serve)");
	c = config(NULL, 0);
	OK(umem_region_attach_node(&c, NULL, &r) == -EINVAL, "attach_node without a path: -EINVAL");
	if (strcmp(backend, "umem"))
		OK(umem_region_attach_node(&c, "/dev/umem-x", &r) == -EOPNOTSUPP,
		   "attach_node: -EOPNOTSUPP (umem only)");
}

static void test_one_process(void)
{
	struct umem_region_config c = config("t-self", NPAGES * PS);
	struct umem_region *r;
	struct umem_page_request req[8];
	struct umem_region_stats st;
	struct toucher t;
	uint8_t *map, page[PS], page2[PS];
	int ret, n;

	ret = umem_region_create(&c, &r);
	OK(ret == 0, "create %llu bytes: %s", NPAGES * PS, ret ? umem_strerror(ret) : "ok");
	if (ret)
		return;
	ret = umem_region_was_mapped(r);
	if (!strcmp(backend, "umem"))
		OK(ret == 0, "was_mapped before any mmap(): %d", ret);
	else
		OK(ret == -EOPNOTSUPP, "was_mapped: uffd* cannot tell (%s)", umem_strerror(ret));
	ret = umem_region_map(r, (void **)&map);
	OK(ret == 0 && map, "map in the creating process: %s", umem_strerror(ret));
	if (ret)
		goto out;
	if (!strcmp(backend, "umem")) {
		ret = umem_region_was_mapped(r);
		OK(ret == 1 && umem_region_stats(r, &st) == 0 && st.mmaps == 1,
		   "was_mapped after the creator's mmap(): %d, %llu mmaps", ret,
		   (unsigned long long)st.mmaps);
	}
	OK(umem_region_fault_fd(r) >= 0, "fault fd available after map");
	OK(umem_region_read_requests(r, req, 8, 0) == 0, "no requests before any fault");

	touch_async(&t, map + 5 * PS);
	n = umem_region_read_requests(r, req, 8, 2000);
	OK(n == 1 && req[0].offset == 5 * PS, "fault on page 5 gives one request (n=%d off=%llu)",
	   n, n > 0 ? (unsigned long long)req[0].offset : 0ULL);
	OK(n == 1 && req[0].time_ns > 0, "request carries a time");
	OK(!__atomic_load_n(&t.done, __ATOMIC_SEQ_CST), "faulting thread waits");
	memset(page, 0x11, PS);
	OK(umem_region_copy(r, 5 * PS, page, PS) == 0, "copy page 5");
	OK(touch_join(&t, 2000) && t.value == 0x1111111111111111ULL, "thread woke with the data");
	OK(umem_region_copy(r, 5 * PS, page, PS) == -EEXIST, "copy over a present page: -EEXIST");
	OK(umem_region_copy(r, 5 * PS + 1, page, PS) == -EINVAL, "unaligned offset: -EINVAL");
	OK(umem_region_copy(r, NPAGES * PS, page, PS) == -EINVAL, "offset at the end: -EINVAL");
	OK(umem_region_copy(r, (NPAGES - 1) * PS, page, 2 * PS) == -EINVAL, "range past the end: -EINVAL");
	OK(umem_region_zero(r, 6 * PS, 2 * PS) == 0 && map[6 * PS] == 0 && map[8 * PS - 1] == 0,
	   "zero pages 6-7");
	ret = umem_region_writeprotect(r, 6 * PS, PS, 1);
	OK(ret == -EOPNOTSUPP, "writeprotect without UMEM_REGION_WRITE_PROTECT: -EOPNOTSUPP (%s)",
	   umem_strerror(ret));
	{
		struct umem_copy_item it[2] = {
			{ .offset = 9 * PS, .src = page },
			{ .offset = 5 * PS, .src = page },
		};

		memset(page, 0x22, PS);
		n = umem_region_copy_vec(r, it, 2);
		OK(n == 2 && it[0].result == 0 && it[1].result == -EEXIST,
		   "copy_vec: per-item results (%lld, %lld)", (long long)it[0].result,
		   (long long)it[1].result);
		OK(map[9 * PS] == 0x22, "copy_vec page readable");
	}
	memset(page2, 0x33, PS);
	ret = umem_region_write(r, 10 * PS, page2, PS);
	if (!strcmp(backend, "uffd")) {
		OK(ret == -EOPNOTSUPP, "write/mark_present not offered by uffd");
	} else {
		uint64_t off = 10 * PS;

		OK(ret == 0, "stage page 10 with write: %s", umem_strerror(ret));
		touch_async(&t, map + 10 * PS);
		n = umem_region_read_requests(r, req, 8, 2000);
		OK(n == 1 && req[0].offset == 10 * PS, "staged page still faults");
		OK(umem_region_mark_present(r, &off, 1) == 0, "mark_present page 10");
		OK(touch_join(&t, 2000) && t.value == 0x3333333333333333ULL,
		   "thread sees the staged data");
	}
	ret = umem_region_discard(r, 5 * PS, PS);
	OK(ret == 0, "discard page 5: %s", umem_strerror(ret));
	touch_async(&t, map + 5 * PS);
	n = umem_region_read_requests(r, req, 8, 2000);
	OK(n == 1 && req[0].offset == 5 * PS, "discarded page faults again");
	memset(page, 0x44, PS);
	OK(umem_region_copy(r, 5 * PS, page, PS) == 0 && touch_join(&t, 2000) &&
	   t.value == 0x4444444444444444ULL, "re-installed page has the new data");
	OK(umem_region_stats(r, &st) == 0 && st.pages == NPAGES && st.installed >= 5,
	   "stats: %llu pages, %llu installed, %llu requests",
	   (unsigned long long)st.pages, (unsigned long long)st.installed,
	   (unsigned long long)st.requests);
out:
	umem_region_close(r);
}

#define HPS (2ULL << 20)
#define HPAGES 4

static char last_log[512];

static void save_log(void *opaque, int level, const char *msg)
{
	(void)opaque;
	(void)level;
	snprintf(last_log, sizeof(last_log), "%s", msg);
}

static long free_hugepages(void)
{
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "re");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* KernelPageSize of the mapping that contains @addr, in kB (0: unknown). */
static long kernel_page_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[256];
	bool in = false;
	long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (in && sscanf(line, "KernelPageSize: %ld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return in ? kb : 0;
}

/* PMD-mapped kB (ShmemPmdMapped + FilePmdMapped) of @addr's mapping. */
static long pmd_mapped_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[256];
	bool in = false;
	long kb, sum = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (in && (sscanf(line, "ShmemPmdMapped: %ld kB", &kb) == 1 ||
				sscanf(line, "FilePmdMapped: %ld kB", &kb) == 1))
			sum += kb;
	}
	fclose(f);
	return sum;
}

/*
 * A region of 2 MiB pages: every unit is the huge page.  uffd*: a
 * hugetlbfs memfd (huge pages must be reserved); umem: UMEM_F_PAGE_2M,
 * pages PMD-mapped once present.
 */
static void test_huge(void)
{
	struct umem_region_config c = config("t-huge", HPAGES * HPS);
	struct umem_page_request req[8];
	struct umem_region_stats st;
	struct umem_region *r;
	struct toucher t;
	uint8_t *map, *page;
	bool umem = !strcmp(backend, "umem");
	long avail = free_hugepages();
	int ret, n;

	c.page_size = HPS;
	c.log = save_log;
	if (umem) {
		last_log[0] = 0;
		ret = umem_region_create(&c, &r);
		if (ret == -EOPNOTSUPP && strstr(last_log, "lacks UMEM_F_PAGE_2M")) {
			printf("ok - [umem] # SKIP 2 MiB pages: %s\n", last_log);
			skipped++;
			return;
		}
		OK(ret == 0, "the module takes 2 MiB pages (UMEM_F_PAGE_2M): %s",
		   ret ? umem_strerror(ret) : "ok");
		if (ret)
			return;
		umem_region_close(r);
	} else if (avail < HPAGES) {
		printf("ok - [%s] # SKIP 2 MiB pages: %ld free 2 MiB huge pages, need %d (reserve them in /proc/sys/vm/nr_hugepages)\n",
		       backend, avail, HPAGES);
		skipped++;
		return;
	} else {
		c.size = (uint64_t)(avail + 1) * HPS;
		last_log[0] = 0;
		ret = umem_region_create(&c, &r);
		OK(ret == -ENOMEM && strstr(last_log, "/proc/sys/vm/nr_hugepages"),
		   "more 2 MiB pages than free: -ENOMEM with a hint (%s: %s)", umem_strerror(ret), last_log);
		if (!ret)
			umem_region_close(r);
	}
	c.size = HPS + PS;
	OK(umem_region_create(&c, &r) == -EINVAL, "size not a multiple of 2 MiB: -EINVAL");
	c.size = HPAGES * HPS;
	ret = umem_region_create(&c, &r);
	OK(ret == 0, "create %d 2 MiB pages: %s", HPAGES, ret ? umem_strerror(ret) : "ok");
	if (ret)
		return;
	OK(umem_region_page_size(r) == HPS, "page size %u", umem_region_page_size(r));
	page = aligned_alloc(HPS, HPS);
	ret = umem_region_map(r, (void **)&map);
	OK(ret == 0 && map && !((uintptr_t)map % HPS), "map 2 MiB aligned at %p: %s",
	   (void *)map, umem_strerror(ret));
	if (ret || !page)
		goto out;
	if (!umem)
		OK(kernel_page_kb(map) == 2048, "mapped with 2 MiB pages (smaps KernelPageSize %ld kB)",
		   kernel_page_kb(map));
	touch_async(&t, map + HPS + 12345 - 12345 % 8);
	n = umem_region_read_requests(r, req, 8, 2000);
	OK(n == 1 && req[0].offset == HPS, "fault inside page 1 requests page 1 (n=%d off=%llu)",
	   n, n > 0 ? (unsigned long long)req[0].offset : 0ULL);
	OK(umem_region_copy(r, HPS, page, PS) == -EINVAL, "4 KiB copy into a 2 MiB page: -EINVAL");
	OK(umem_region_copy(r, HPS + PS, page, HPS) == -EINVAL, "copy at a 4 KiB offset: -EINVAL");
	for (uint64_t i = 0; i < HPS; i++)
		page[i] = (uint8_t)(i * 7 + 1);
	ret = umem_region_copy(r, HPS, page, HPS);
	OK(ret == 0, "copy one 2 MiB page: %s", umem_strerror(ret));
	OK(touch_join(&t, 2000) && !memcmp(map + HPS, page, HPS), "thread woke; all 2 MiB arrived");
	if (umem)
		OK(pmd_mapped_kb(map) >= 2048, "present 2 MiB page mapped by a PMD (smaps: %ld kB PMD-mapped)",
		   pmd_mapped_kb(map));
	OK(umem_region_copy(r, HPS, page, HPS) == -EEXIST, "copy over a present 2 MiB page: -EEXIST");
	ret = umem_region_zero(r, 2 * HPS, HPS);
	OK(ret == 0 && map[2 * HPS] == 0 && map[3 * HPS - 1] == 0,
	   "zero page 2%s: %s", umem ? "" : " (no UFFDIO_ZEROPAGE on hugetlb)",
	   umem_strerror(ret));
	{
		struct umem_copy_item it[2] = {
			{ .offset = 0, .src = page }, { .offset = HPS, .src = page },
		};

		n = umem_region_copy_vec(r, it, 2);
		OK(n == 2 && it[0].result == 0 && it[1].result == -EEXIST && map[HPS - 1] == page[HPS - 1],
		   "copy_vec of 2 MiB items (%lld, %lld)", (long long)it[0].result,
		   (long long)it[1].result);
	}
	ret = umem_region_write(r, 3 * HPS, page, HPS);
	if (!strcmp(backend, "uffd")) {
		OK(ret == -EOPNOTSUPP, "write/mark_present not offered by uffd");
		OK(umem_region_copy(r, 3 * HPS, page, HPS) == 0, "copy page 3");
	} else {
		uint64_t off = 3 * HPS;

		OK(ret == 0, "stage page 3: %s", umem_strerror(ret));
		OK(umem_region_mark_present(r, &off, 1) == 0 && !memcmp(map + 3 * HPS, page, HPS),
		   "mark_present page 3: whole page visible");
	}
	ret = umem_region_discard(r, HPS, HPS);
	OK(ret == 0, "discard page 1: %s", umem_strerror(ret));
	touch_async(&t, map + 2 * HPS - 8);
	n = umem_region_read_requests(r, req, 8, 2000);
	OK(n == 1 && req[0].offset == HPS, "discarded 2 MiB page faults again (off=%llu)",
	   n > 0 ? (unsigned long long)req[0].offset : 0ULL);
	memset(page, 0x5c, HPS);
	OK(umem_region_copy(r, HPS, page, HPS) == 0 && touch_join(&t, 2000) &&
	   map[HPS] == 0x5c && map[2 * HPS - 1] == 0x5c, "re-installed 2 MiB page has the new data");
	OK(umem_region_stats(r, &st) == 0 && st.page_size == HPS && st.pages == HPAGES &&
	   st.pages_present == HPAGES, "stats in 2 MiB pages: %llu pages, %llu present, %llu installed",
	   (unsigned long long)st.pages, (unsigned long long)st.pages_present,
	   (unsigned long long)st.installed);
	if (umem)
		OK(pmd_mapped_kb(map) == HPAGES * 2048 && st.alloc_failed == 0,
		   "complete region PMD-mapped: %ld of %d kB, alloc_failed %llu",
		   pmd_mapped_kb(map), HPAGES * 2048, (unsigned long long)st.alloc_failed);
out:
	free(page);
	umem_region_close(r);
}

/* ------------------------------------------------ write protection */

/* The umem module's UMEM_F_* (UMEM_GET_API asking for none); 0 if none. */
static uint64_t module_features(void)
{
	struct umem_api api = { .api = UMEM_API };
	int fd = open(UMEM_CTL_DEVICE, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return 0;
	ret = ioctl(fd, UMEM_GET_API, &api);
	close(fd);
	return ret ? 0 : api.features;
}

/*
 * On umem, whether the module has @bits; if not, a SKIP line naming
 * @what.  Always true on the uffd backends (the kernel checks come from
 * the library's create).
 */
static bool need_module(uint64_t bits, const char *names, const char *what)
{
	if (strcmp(backend, "umem") || (module_features() & bits) == bits)
		return true;
	printf("ok - [umem] # SKIP %s: the module lacks %s (umem 0.5)\n", what, names);
	fflush(stdout);
	skipped++;
	return false;
}

/*
 * umem, on a module without the umem 0.5 features (a newer one runs the
 * cases below instead): each refusal is -EOPNOTSUPP with a log line
 * naming the missing feature bit.
 */
static void test_wp_refused_by_module(void)
{
	static const struct {
		uint64_t bit;
		const char *name;
		uint32_t flags;
	} cases[] = {
		{ UMEM_F_WRITE_PROTECT, "UMEM_F_WRITE_PROTECT", UMEM_REGION_WRITE_PROTECT },
		{ UMEM_F_CREATE_PRESENT, "UMEM_F_CREATE_PRESENT", UMEM_REGION_PRESENT },
		{ UMEM_F_ATTACH, "UMEM_F_ATTACH", 0 },
	};
	uint64_t have = module_features();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct umem_region_config c = config("t-old", NPAGES * PS);
		struct umem_region *r;
		int ret;

		if (have & cases[i].bit)
			continue;
		c.flags = cases[i].flags;
		c.log = save_log;
		last_log[0] = 0;
		ret = cases[i].flags ? umem_region_create(&c, &r) :
		      umem_region_attach_node(&c, "/dev/umem-t-old", &r);
		OK(ret == -EOPNOTSUPP && strstr(last_log, cases[i].name) && strstr(last_log, "umem 0.5"),
		   "a module without %s: -EOPNOTSUPP, the log names it (%s: %s)", cases[i].name,
		   umem_strerror(ret), last_log);
		if (!ret)
			umem_region_close(r);
	}
}

/*
 * Read requests until none comes for @settle_ms; returns how many (or a
 * negative errno).
 */
static int collect(struct umem_region *r, struct umem_page_request *reqs,
		   unsigned int max, int settle_ms)
{
	unsigned int n = 0;

	while (n < max) {
		int ret = umem_region_read_requests(r, reqs + n, max - n, settle_ms);

		if (ret < 0)
			return ret;
		if (!ret)
			break;
		n += (unsigned int)ret;
	}
	return (int)n;
}

/* Requests in @reqs[0..@n) for page @off with exactly @flags. */
static int count_req(const struct umem_page_request *reqs, int n, uint64_t off,
		     uint32_t flags)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += reqs[i].offset == off && reqs[i].flags == flags;
	return k;
}

static struct umem_region_stats stats_of(struct umem_region *r)
{
	struct umem_region_stats st;

	if (umem_region_stats(r, &st))
		memset(&st, 0xff, sizeof(st));
	return st;
}

/*
 * Before closing a region its test's threads used: unprotect everything
 * and join them.  A thread still stuck would fault on the unmapped region
 * and kill the whole run, so then the region is left open (leaked) and
 * the failure is reported instead.
 */
static void close_after(struct umem_region *r, struct toucher *ts, int n)
{
	bool stuck = false;

	if (n)
		umem_region_writeprotect(r, 0, umem_region_size(r), 0);
	for (int i = 0; i < n; i++)
		if (ts[i].addr && !touch_join(&ts[i], 2000))
			stuck = true;
	if (stuck)
		OK(0, "a test thread is still blocked after unprotecting everything; region leaked");
	else
		umem_region_close(r);
}

/* Create and map a region; false, after a "not ok" line, if either fails. */
static bool create_map(const struct umem_region_config *c, struct umem_region **r,
		       uint8_t **map, const char *what)
{
	int ret;

	last_log[0] = 0;
	ret = umem_region_create(c, r);
	OK(ret == 0, "create %s: %s %s", what, umem_strerror(ret), last_log);
	if (ret)
		return false;
	ret = umem_region_map(*r, (void **)map);
	if (ret) {
		OK(0, "map %s: %s", what, umem_strerror(ret));
		umem_region_close(*r);
		return false;
	}
	return true;
}

#define WPF (UMEM_REQUEST_WRITE | UMEM_REQUEST_WP)
#define BYTES(b) (0x0101010101010101ULL * (uint8_t)(b))

/*
 * A region born present and write-protectable, served by this process:
 * zeros at first, no request for anything unprotected, writers of a
 * protected page block while readers do not, one request per page however
 * many tasks write it, the daemon reads the old data, unprotect wakes the
 * writers and their writes land.
 */
static void test_wp_basic(void)
{
	struct umem_region_config c = config("t-wp", NPAGES * PS);
	struct umem_page_request req[16];
	struct umem_region_stats st;
	struct toucher w[5] = { 0 };	/* 4 writers and a reader */
	struct umem_region *r;
	uint8_t *map, saved[PS];
	bool blocked, same;
	int ret, n;

	if (!need_module(UMEM_F_WRITE_PROTECT | UMEM_F_CREATE_PRESENT,
			 "UMEM_F_WRITE_PROTECT | UMEM_F_CREATE_PRESENT", "write protection"))
		return;
	c.flags = UMEM_REGION_PRESENT | UMEM_REGION_WRITE_PROTECT;
	c.log = save_log;
	if (!create_map(&c, &r, &map, "PRESENT|WRITE_PROTECT"))
		return;
	OK(map[0] == 0 && map[NPAGES * PS - 1] == 0 && map[5 * PS + 17] == 0,
	   "born present: pages read as zeros");
	for (int i = 0; i < NPAGES; i++)
		memset(map + i * PS, i + 1, PS);
	n = umem_region_read_requests(r, req, 16, 100);
	OK(n == 0, "reads and writes of unprotected pages: no request (%d)", n);
	st = stats_of(r);
	OK(st.pages_present == NPAGES && st.pages_protected == 0,
	   "stats: %llu pages present, %llu protected", (unsigned long long)st.pages_present,
	   (unsigned long long)st.pages_protected);
	OK(umem_region_writeprotect(r, PS + 1, PS, 1) == -EINVAL, "writeprotect at an unaligned offset: -EINVAL");
	OK(umem_region_writeprotect(r, (NPAGES - 1) * PS, 2 * PS, 1) == -EINVAL,
	   "writeprotect past the end: -EINVAL");
	ret = umem_region_writeprotect(r, 2 * PS, 4 * PS, 1);
	OK(ret == 0, "protect pages 2-5: %s", umem_strerror(ret));
	OK(umem_region_writeprotect(r, 2 * PS, PS, 1) == 0, "protecting a protected page: no-op");
	st = stats_of(r);
	OK(st.pages_protected == 4, "stats: %llu pages protected", (unsigned long long)st.pages_protected);

	for (int k = 0; k < 3; k++)
		write_async(&w[k], map + 3 * PS + 8 * (k + 1), 0xa0a0a0a0a0a0a0a0ULL + (uint64_t)k);
	write_async(&w[3], map + 4 * PS + 8, 0xb0b0b0b0b0b0b0b0ULL);
	touch_async(&w[4], map + 3 * PS + 512);
	OK(touch_join(&w[4], 2000) && w[4].value == BYTES(4),
	   "a read of protected page 3 completes while its writers wait (%#llx)",
	   (unsigned long long)w[4].value);
	usleep(200000);
	blocked = true;
	for (int k = 0; k < 4; k++)
		blocked &= !touch_done(&w[k]);
	OK(blocked, "3 writers of page 3 and 1 of page 4 block");
	n = collect(r, req, 16, 300);
	OK(n == 2 && count_req(req, n, 3 * PS, WPF) == 1 && count_req(req, n, 4 * PS, WPF) == 1,
	   "one WRITE|WP request per page, though 3 tasks write page 3 (%d requests)", n);
	st = stats_of(r);
	OK(st.wp_faults >= 4, "stats: %llu WP faults (4 writers)", (unsigned long long)st.wp_faults);
	memcpy(saved, map + 3 * PS, PS);
	same = true;
	for (size_t i = 0; i < PS; i++)
		same &= saved[i] == 4;
	OK(same, "the daemon reads page 3's old data");
	ret = umem_region_writeprotect(r, 3 * PS, PS, 0);
	OK(ret == 0, "unprotect page 3: %s", umem_strerror(ret));
	blocked = false;
	for (int k = 0; k < 3; k++)
		blocked |= !touch_join(&w[k], 2000);
	OK(!blocked && *(uint64_t *)(map + 3 * PS + 8) == 0xa0a0a0a0a0a0a0a0ULL &&
	   *(uint64_t *)(map + 3 * PS + 16) == 0xa0a0a0a0a0a0a0a1ULL &&
	   *(uint64_t *)(map + 3 * PS + 24) == 0xa0a0a0a0a0a0a0a2ULL,
	   "unprotect woke page 3's writers; their writes landed");
	OK(!touch_done(&w[3]), "page 4's writer still waits");
	OK(umem_region_writeprotect(r, 4 * PS, PS, 0) == 0 && touch_join(&w[3], 2000) &&
	   *(uint64_t *)(map + 4 * PS + 8) == 0xb0b0b0b0b0b0b0b0ULL,
	   "unprotect page 4: its write landed");
	st = stats_of(r);
	OK(st.pages_protected == 2, "stats: %llu pages protected (2 and 5)",
	   (unsigned long long)st.pages_protected);
	*(volatile uint64_t *)(map + 3 * PS) = 7;
	*(volatile uint64_t *)(map + 9 * PS) = 7;
	n = umem_region_read_requests(r, req, 16, 200);
	OK(n == 0, "writes to unprotected pages 3 and 9: no request (%d)", n);
	OK(umem_region_writeprotect(r, 3 * PS, PS, 1) == 0, "protect page 3 again");
	write_async(&w[0], map + 3 * PS + 8, 1);
	n = collect(r, req, 16, 300);
	OK(n == 1 && count_req(req, n, 3 * PS, WPF) == 1,
	   "a write after protecting again: a new request (%d)", n);
	OK(umem_region_writeprotect(r, 0, NPAGES * PS, 0) == 0 && touch_join(&w[0], 2000),
	   "unprotect the whole region (unprotected pages: no-op)");
	st = stats_of(r);
	OK(st.pages_protected == 0, "stats: %llu pages protected", (unsigned long long)st.pages_protected);
	close_after(r, w, 5);
}

/*
 * Write protection of a region whose pages start missing: umem refuses to
 * protect a missing page; an installed page can be protected like any.
 */
static void test_wp_missing(void)
{
	struct umem_region_config c = config("t-wpm", NPAGES * PS);
	struct umem_page_request req[8];
	struct umem_region *r;
	struct toucher tw[2] = { 0 };	/* a reader, a writer */
	uint8_t *map, page[PS];
	int n;

	if (!need_module(UMEM_F_WRITE_PROTECT, "UMEM_F_WRITE_PROTECT", "write protection"))
		return;
	c.flags = UMEM_REGION_WRITE_PROTECT;
	c.log = save_log;
	if (!create_map(&c, &r, &map, "WRITE_PROTECT, pages missing"))
		return;
	if (!strcmp(backend, "umem"))
		OK(umem_region_writeprotect(r, 0, 2 * PS, 1) == -ENOENT,
		   "protect a missing page: -ENOENT");
	touch_async(&tw[0], map + 2 * PS);
	n = umem_region_read_requests(r, req, 8, 2000);
	OK(n == 1 && req[0].offset == 2 * PS && !(req[0].flags & UMEM_REQUEST_WP),
	   "a missing page is requested without the WP flag");
	memset(page, 0x3c, PS);
	OK(umem_region_copy(r, 2 * PS, page, PS) == 0 && touch_join(&tw[0], 2000), "install it");
	OK(umem_region_writeprotect(r, 2 * PS, PS, 1) == 0, "protect the installed page");
	write_async(&tw[1], map + 2 * PS, 5);
	n = collect(r, req, 8, 300);
	OK(n == 1 && count_req(req, n, 2 * PS, WPF) == 1 && !touch_done(&tw[1]),
	   "its writer waits; a WRITE|WP request (%d)", n);
	OK(umem_region_writeprotect(r, 2 * PS, PS, 0) == 0 && touch_join(&tw[1], 2000) &&
	   *(uint64_t *)(map + 2 * PS) == 5, "unprotect: the write landed");
	close_after(r, tw, 2);
}

#define CHURN_PAGES 8
#define CHURN_WRITERS 3

struct churn_writer {
	uint8_t *map;
	int id;
	int stop;
	uint64_t last[CHURN_PAGES];	/* last value written to each page */
	uint64_t writes;
	pthread_t th;
};

/* Write 1, 2, 3, ... round the pages into this writer's own slot. */
static void *churn_thread(void *arg)
{
	struct churn_writer *w = arg;

	for (uint64_t k = 1; !__atomic_load_n(&w->stop, __ATOMIC_SEQ_CST); k++) {
		int p = (int)(k % CHURN_PAGES);

		((volatile uint64_t *)(w->map + p * PS))[w->id] = k;
		w->last[p] = k;
		w->writes++;
	}
	return NULL;
}

/*
 * Protect and unprotect the same pages over and over while writers write
 * them: while a page is protected its data never changes, and no write is
 * lost.
 */
static void test_wp_churn(void)
{
	struct umem_region_config c = config("t-wpc", NPAGES * PS);
	struct churn_writer w[CHURN_WRITERS];
	struct umem_page_request req[32];
	static uint8_t snap[CHURN_PAGES][PS];
	struct umem_region *r;
	uint64_t changed = 0, reqs = 0, writes = 0, lost = 0;
	uint64_t t0 = 0;
	struct timespec ts;
	int cycles = 0, err = 0;
	uint8_t *map;

	if (!need_module(UMEM_F_WRITE_PROTECT | UMEM_F_CREATE_PRESENT,
			 "UMEM_F_WRITE_PROTECT | UMEM_F_CREATE_PRESENT", "write protection"))
		return;
	c.flags = UMEM_REGION_PRESENT | UMEM_REGION_WRITE_PROTECT;
	c.log = save_log;
	if (!create_map(&c, &r, &map, "PRESENT|WRITE_PROTECT for the churn"))
		return;
	memset(w, 0, sizeof(w));
	for (int i = 0; i < CHURN_WRITERS; i++) {
		w[i].map = map;
		w[i].id = i;
		pthread_create(&w[i].th, NULL, churn_thread, &w[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec;
	/* About 2 s of cycles: protect all, serve each request, unprotect all. */
	while (!err && cycles < 2000) {
		bool open_again[CHURN_PAGES] = { false };

		err = umem_region_writeprotect(r, 0, CHURN_PAGES * PS, 1);
		for (int p = 0; p < CHURN_PAGES; p++)
			memcpy(snap[p], map + p * PS, PS);
		for (int round = 0; !err && round < 4; round++) {
			int n = umem_region_read_requests(r, req, 32, 2);

			if (n < 0)
				err = n;
			for (int i = 0; i < n && !err; i++) {
				uint64_t p = req[i].offset / PS;

				reqs++;
				if (p >= CHURN_PAGES || req[i].flags != WPF) {
					err = -EPROTO;
					break;
				}
				/* (A late request for a page opened already
				 * only asks for a no-op.) */
				if (!open_again[p])
					changed += memcmp(snap[p], map + p * PS, PS) != 0;
				open_again[p] = true;
				err = umem_region_writeprotect(r, req[i].offset, PS, 0);
			}
		}
		for (int p = 0; p < CHURN_PAGES; p++)
			if (!open_again[p])
				changed += memcmp(snap[p], map + p * PS, PS) != 0;
		if (!err)
			err = umem_region_writeprotect(r, 0, CHURN_PAGES * PS, 0);
		cycles++;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((uint64_t)ts.tv_sec - t0 >= 2)
			break;
	}
	for (int i = 0; i < CHURN_WRITERS; i++)
		__atomic_store_n(&w[i].stop, 1, __ATOMIC_SEQ_CST);
	umem_region_writeprotect(r, 0, CHURN_PAGES * PS, 0);
	for (int i = 0; i < CHURN_WRITERS; i++) {
		pthread_join(w[i].th, NULL);
		writes += w[i].writes;
		for (int p = 0; p < CHURN_PAGES; p++)
			lost += ((uint64_t *)(map + p * PS))[i] != w[i].last[p];
	}
	OK(err == 0, "churn: %d protect/unprotect cycles, %llu WP requests, %llu writes: %s",
	   cycles, (unsigned long long)reqs, (unsigned long long)writes, umem_strerror(err));
	OK(reqs > 0 && changed == 0,
	   "churn: a protected page never changed before its request was answered (%llu did)",
	   (unsigned long long)changed);
	OK(lost == 0, "churn: no write lost (%llu slots differ from their last write)",
	   (unsigned long long)lost);
	umem_region_close(r);
}

/*
 * The snapshot sequence on uffd*, in two processes: the VMM (a child)
 * creates its RAM born present and write-protectable, maps it, writes it,
 * and sends the memfd and its userfaultfd; the daemon (this process)
 * adopts them, maps the memfd (plain memory), protects, and serves a
 * write; at the end it lets go with a page still protected, and the VMM's
 * blocked writer goes on.
 *
 * Child exit: 0 all well; 20+ a step failed.
 */
static int child_snapshot_vmm(int sock)
{
	struct umem_region_config c = config("t-snap", NPAGES * PS);
	struct umem_region *r;
	struct vmm_msg m;
	uint64_t base;
	uint8_t *map;
	int uffd, fd;

	c.flags = UMEM_REGION_PRESENT | UMEM_REGION_WRITE_PROTECT;
	if (umem_region_create(&c, &r) || umem_region_map(r, (void **)&map))
		return 20;
	for (int i = 0; i < NPAGES; i++)
		memset(map + i * PS, 0x40 + i, PS);
	if (umem_region_client_fault_fd(r, &uffd, &base))
		return 21;
	if (umem_region_fault_fd(r) != -ENOTCONN)
		return 22;	/* handed over: this handle no longer serves */
	if (vmm_send(sock, VMM_HELLO, NPAGES * PS, 0, backend, umem_region_export_fd(r)) ||
	    vmm_send(sock, VMM_ATTACH, NPAGES * PS, base, NULL, uffd))
		return 23;
	close(uffd);
	/* RUN: the daemon protected pages 3 and 5. */
	if (vmm_recv(sock, &m, &fd, 5000) != 1 || m.type != VMM_RUN)
		return 24;
	*(volatile uint64_t *)(map + 3 * PS) = 0x3333;	/* blocks until unprotected */
	if (vmm_send(sock, VMM_DONE, 0, 0, NULL, -1))
		return 25;
	/* The daemon lets go without unprotecting page 5. */
	*(volatile uint64_t *)(map + 5 * PS) = 0x5555;
	if (*(volatile uint64_t *)(map + 3 * PS) != 0x3333 ||
	    *(volatile uint64_t *)(map + 5 * PS) != 0x5555)
		return 26;
	umem_region_close(r);
	return 0;
}

static void test_wp_snapshot_uffd(void)
{
	struct umem_region_config c = config(NULL, 0);
	struct umem_page_request req[8];
	struct umem_region *r = NULL;
	struct vmm_msg m;
	int sv[2], mfd = -1, uffd = -1, status = -1, ret, n;
	uint8_t *map;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		OK(0, "socketpair: %s", strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		_exit(child_snapshot_vmm(sv[1]));
	}
	close(sv[1]);
	ret = vmm_recv(sv[0], &m, &mfd, 5000);
	OK(ret == 1 && m.type == VMM_HELLO && mfd >= 0, "snapshot: the VMM sent its memfd");
	ret = vmm_recv(sv[0], &m, &uffd, 5000);
	OK(ret == 1 && m.type == VMM_ATTACH && uffd >= 0, "snapshot: the VMM sent its userfaultfd");
	if (mfd < 0 || uffd < 0)
		goto out;
	c.flags = UMEM_REGION_PRESENT | UMEM_REGION_WRITE_PROTECT;
	ret = umem_region_open(&c, mfd, NULL, &r);
	OK(ret == 0, "the daemon adopts the memfd (open): %s", umem_strerror(ret));
	if (ret) {
		close(uffd);
		goto out;
	}
	ret = umem_region_attach(r, uffd, m.base);
	OK(ret == 0, "and the VMM's userfaultfd (attach): %s", umem_strerror(ret));
	ret = umem_region_map(r, (void **)&map);
	OK(ret == 0 && map[3 * PS] == 0x43 && map[NPAGES * PS - 1] == 0x40 + NPAGES - 1,
	   "the daemon maps the memfd and sees the VMM's data: %s", umem_strerror(ret));
	if (ret)
		goto out;
	OK(umem_region_writeprotect(r, 3 * PS, PS, 1) == 0 &&
	   umem_region_writeprotect(r, 5 * PS, PS, 1) == 0, "protect pages 3 and 5 of the VMM");
	vmm_send(sv[0], VMM_RUN, 0, 0, NULL, -1);
	n = umem_region_read_requests(r, req, 8, 3000);
	OK(n == 1 && req[0].offset == 3 * PS && req[0].flags == WPF,
	   "the VMM's write to page 3: a WRITE|WP request");
	OK(map[3 * PS] == 0x43 && map[3 * PS + PS - 1] == 0x43,
	   "the daemon's read of protected page 3 sees the old data, without blocking");
	OK(vmm_recv(sv[0], &m, &mfd, 200) == 0, "the VMM's writer waits");
	OK(umem_region_writeprotect(r, 3 * PS, PS, 0) == 0 &&
	   vmm_recv(sv[0], &m, &mfd, 3000) == 1 && m.type == VMM_DONE &&
	   *(volatile uint64_t *)(map + 3 * PS) == 0x3333,
	   "unprotect: the VMM's write landed, the daemon sees it");
	/* Let go with page 5 protected: the VMM must go on. */
	umem_region_close(r);
	r = NULL;
out:
	if (r)
		umem_region_close(r);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		usleep(10000);
	}
	if (status == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	OK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "the VMM's writer of protected page 5 went on once the daemon let go (status %#x)",
	   status);
	close(sv[0]);
}

/*
 * umem: a region whose creator has gone, still mapped by a VMM, served
 * again by its node (UMEM_ATTACH), write-protected by the new server.
 */
static void test_wp_attach_node(void)
{
	struct umem_region_config c = config("t-attach", NPAGES * PS);
	struct umem_page_request req[8];
	struct umem_region *creator, *vmm = NULL, *d = NULL, *d2;
	struct umem_region_stats st;
	struct toucher w = { 0 };
	char path[64];
	uint8_t *map, *dmap;
	int ret, n;

	if (!need_module(UMEM_F_WRITE_PROTECT | UMEM_F_CREATE_PRESENT | UMEM_F_ATTACH,
			 "UMEM_F_WRITE_PROTECT | UMEM_F_CREATE_PRESENT | UMEM_F_ATTACH",
			 "attach by node"))
		return;
	c.flags = UMEM_REGION_PRESENT | UMEM_REGION_WRITE_PROTECT;
	ret = umem_region_create(&c, &creator);
	OK(ret == 0, "create: %s", umem_strerror(ret));
	if (ret)
		return;
	snprintf(path, sizeof(path), "%s", umem_region_path(creator));
	c = config(NULL, 0);
	ret = umem_region_open(&c, -1, path, &vmm);
	if (!ret)
		ret = umem_region_map(vmm, (void **)&map);
	OK(ret == 0, "a VMM maps %s: %s", path, umem_strerror(ret));
	if (ret)
		goto out;
	memset(map + 3 * PS, 0x33, PS);
	c.log = save_log;
	last_log[0] = 0;
	ret = umem_region_attach_node(&c, path, &d);
	OK(ret == -EBUSY, "attach_node while the creator serves: -EBUSY (%s)", last_log);
	if (!ret)
		umem_region_close(d);
	d = NULL;
	umem_region_close(creator);	/* detached, complete, mapped by the VMM */
	creator = NULL;
	c.size = 2 * NPAGES * PS;
	OK(umem_region_attach_node(&c, path, &d) == -EINVAL, "attach_node with a wrong size: -EINVAL");
	d = NULL;
	c.size = 0;
	ret = umem_region_attach_node(&c, path, &d);
	OK(ret == 0 && umem_region_size(d) == NPAGES * PS && umem_region_page_size(d) == PS,
	   "attach_node: size and page size from the region (%s)", umem_strerror(ret));
	if (ret) {
		d = NULL;
		goto out;
	}
	OK(umem_region_attach_node(&c, path, &d2) == -EBUSY, "a second attach_node: -EBUSY");
	ret = umem_region_map(d, (void **)&dmap);
	OK(ret == 0 && dmap[3 * PS] == 0x33, "the new server maps the region and sees the VMM's data");
	if (ret)
		goto out;
	OK(umem_region_writeprotect(d, 3 * PS, PS, 1) == 0, "the new server protects page 3");
	write_async(&w, map + 3 * PS, 9);
	n = collect(d, req, 8, 300);
	OK(n == 1 && count_req(req, n, 3 * PS, WPF) == 1 && !touch_done(&w),
	   "the VMM's write waits; one WRITE|WP request (%d)", n);
	st = stats_of(d);
	OK(st.pages_protected == 1 && st.wp_faults == 1, "stats: %llu protected, %llu WP faults",
	   (unsigned long long)st.pages_protected, (unsigned long long)st.wp_faults);
	OK(dmap[3 * PS + 8] == 0x33, "the new server reads the old data");
	OK(umem_region_writeprotect(d, 3 * PS, PS, 0) == 0 && touch_join(&w, 2000) &&
	   *(uint64_t *)(dmap + 3 * PS) == 9, "unprotect: the write landed");
	OK(umem_region_writeprotect(d, 4 * PS, PS, 1) == 0, "protect page 4, then let go");
	umem_region_close(d);
	d = NULL;
	write_async(&w, map + 4 * PS, 10);
	OK(touch_join(&w, 2000) && *(uint64_t *)(map + 4 * PS) == 10,
	   "once the server is gone, the VMM writes page 4");
out:
	if (creator)
		umem_region_close(creator);
	if (d)
		close_after(d, &w, 1);
	if (vmm)
		close_after(vmm, &w, 1);
}

/*
 * Write protection of 2 MiB pages: uffd* on hugetlbfs (the same
 * UFFD_FEATURE_WP_HUGETLBFS_SHMEM); umem with UMEM_F_PAGE_2M, where the
 * unit is the whole 2 MiB page and the page stays PMD-mapped.
 */
static void test_wp_huge(void)
{
	struct umem_region_config c = config("t-wph", HPAGES * HPS);
	struct umem_page_request req[8];
	struct toucher w[2] = { 0 };
	struct umem_region *r;
	uint8_t *map;
	bool umem = !strcmp(backend, "umem");
	int n;

	c.page_size = HPS;
	c.flags = UMEM_REGION_PRESENT | UMEM_REGION_WRITE_PROTECT;
	if (umem) {
		if (!(module_features() & UMEM_F_PAGE_2M)) {
			printf("ok - [umem] # SKIP write protection of 2 MiB pages: the module lacks UMEM_F_PAGE_2M (no transparent huge pages)\n");
			skipped++;
			return;
		}
		if (!need_module(UMEM_F_WRITE_PROTECT | UMEM_F_CREATE_PRESENT,
				 "UMEM_F_WRITE_PROTECT | UMEM_F_CREATE_PRESENT",
				 "write protection of 2 MiB pages"))
			return;
	} else if (free_hugepages() < HPAGES) {
		printf("ok - [%s] # SKIP write protection of 2 MiB pages: %ld free 2 MiB huge pages, need %d\n",
		       backend, free_hugepages(), HPAGES);
		skipped++;
		return;
	}
	c.log = save_log;
	if (!create_map(&c, &r, &map, "2 MiB pages PRESENT|WRITE_PROTECT"))
		return;
	memset(map, 0x21, HPAGES * HPS);
	if (umem)
		OK(pmd_mapped_kb(map) == HPAGES * 2048, "born present and written: %ld kB PMD-mapped (want %d)",
		   pmd_mapped_kb(map), HPAGES * 2048);
	OK(umem_region_writeprotect(r, HPS, PS, 1) == -EINVAL, "protect 4 KiB of a 2 MiB page: -EINVAL");
	OK(umem_region_writeprotect(r, HPS + PS, HPS, 1) == -EINVAL,
	   "protect 2 MiB at a 4 KiB offset: -EINVAL");
	OK(umem_region_writeprotect(r, HPS, HPS, 1) == 0, "protect 2 MiB page 1");
	write_async(&w[0], map + HPS + 12344, 7);
	write_async(&w[1], map + 2 * HPS - 8, 8);
	n = collect(r, req, 8, 300);
	OK(n == 1 && count_req(req, n, HPS, WPF) == 1 && !touch_done(&w[0]) && !touch_done(&w[1]),
	   "two writers inside page 1 wait; one WRITE|WP request for the 2 MiB page (%d)", n);
	OK(map[HPS + 12344] == 0x21, "the daemon reads the old data");
	OK(umem_region_writeprotect(r, HPS, HPS, 0) == 0 && touch_join(&w[0], 2000) &&
	   touch_join(&w[1], 2000) && *(uint64_t *)(map + HPS + 12344) == 7 &&
	   *(uint64_t *)(map + 2 * HPS - 8) == 8, "unprotect: both writes landed");
	if (umem)
		OK(pmd_mapped_kb(map) == HPAGES * 2048,
		   "after protect, write, unprotect: still %ld kB PMD-mapped (want %d)",
		   pmd_mapped_kb(map), HPAGES * 2048);
	close_after(r, w, 2);
}

/*
 * The VMM in a child process: gets the region fd over a socket, maps it,
 * sends back its userfaultfd (uffd*), reads page 3 (installed by the
 * parent) and then page 7 (never installed: the parent closes the region).
 * Exit 0: page 3 right and page 7 released (uffd*); exit 42: SIGBUS on
 * page 7 (umem).
 */
static void on_sigbus(int sig)
{
	(void)sig;
	_exit(42);
}

static int child_vmm(int sock)
{
	struct umem_region_config c;
	struct umem_region *r;
	struct vmm_msg m;
	uint8_t *map;
	uint64_t base;
	int fd, uffd;

	signal(SIGBUS, on_sigbus);
	if (vmm_recv(sock, &m, &fd, 5000) != 1 || fd < 0)
		return 10;
	memset(&c, 0, sizeof(c));
	c.backend = m.text;
	if (umem_region_open(&c, fd, NULL, &r) || umem_region_map(r, (void **)&map))
		return 11;
	if (umem_region_client_fault_fd(r, &uffd, &base) == 0) {
		if (vmm_send(sock, VMM_ATTACH, umem_region_size(r), base, NULL, uffd))
			return 12;
		close(uffd);
	} else if (vmm_send(sock, VMM_ATTACH, umem_region_size(r), 0, NULL, -1)) {
		return 12;
	}
	if (*(volatile uint64_t *)(map + 3 * PS) != 0x5555555555555555ULL)
		return 13;
	(void)*(volatile uint64_t *)(map + 7 * PS);
	return 0;
}

static void test_two_processes(void)
{
	struct umem_region_config c = config("t-two", NPAGES * PS);
	struct umem_page_request req[8];
	struct umem_region *r;
	struct vmm_msg m;
	uint8_t page[PS];
	int sv[2], status = -1, fd, n, ret;
	pid_t pid;

	ret = umem_region_create(&c, &r);
	if (ret) {
		OK(0, "create for the two-process test: %s", umem_strerror(ret));
		return;
	}
	socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
	pid = fork();
	if (pid == 0) {
		/* A VMM holds nothing of the daemon's: in particular not the
		 * umem server fd, whose last close is what aborts the region. */
		for (int i = 3; i < 1024; i++)
			if (i != sv[1])
				close(i);
		_exit(child_vmm(sv[1]));
	}
	close(sv[1]);
	vmm_send(sv[0], VMM_HELLO, NPAGES * PS, 0, backend, umem_region_export_fd(r));
	ret = vmm_recv(sv[0], &m, &fd, 5000);
	OK(ret == 1 && m.type == VMM_ATTACH, "VMM attached over the socket");
	if (umem_region_needs_attach(r)) {
		OK(fd >= 0, "VMM sent its userfaultfd");
		ret = umem_region_attach(r, fd, m.base);
		OK(ret == 0, "attach the VMM's userfaultfd: %s", umem_strerror(ret));
	}
	n = umem_region_read_requests(r, req, 8, 3000);
	OK(n == 1 && req[0].offset == 3 * PS, "request for page 3 from the VMM process");
	memset(page, 0x55, PS);
	OK(umem_region_copy(r, 3 * PS, page, PS) == 0, "install page 3 into the VMM's mapping");
	n = umem_region_read_requests(r, req, 8, 3000);
	OK(n == 1 && req[0].offset == 7 * PS, "request for page 7");
	/* Let go without installing page 7: the VMM must not hang. */
	umem_region_close(r);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		usleep(10000);
	}
	if (!WIFEXITED(status) && status == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		OK(0, "VMM task still blocked 5 s after the daemon let go");
	} else if (!strcmp(backend, "umem")) {
		OK(WIFEXITED(status) && WEXITSTATUS(status) == 42,
		   "faulting VMM task got SIGBUS when the daemon let go (status %#x)", status);
	} else {
		OK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		   "faulting VMM task released when the daemon let go (status %#x)", status);
	}
	close(sv[0]);
}

int main(int argc, char **argv)
{
	static const char *defaults[] = { "uffd", "uffd-minor", "umem" };
	const char **list = defaults;
	bool huge = false;
	int n = 3;

	if (argc > 1 && !strcmp(argv[1], "--huge")) {
		huge = true;
		argv++;
		argc--;
	}
	if (argc > 1) {
		list = (const char **)argv + 1;
		n = argc - 1;
	}
	for (int i = 0; i < n; i++) {
		backend = list[i];
		if (!strcmp(backend, "umem") && access("/dev/umem", F_OK)) {
			printf("ok - [umem] # SKIP /dev/umem not present (module not loaded)\n");
			skipped++;
			continue;
		}
		if (huge) {
			test_huge();
			test_wp_huge();
			continue;
		}
		test_args();
		test_one_process();
		test_two_processes();
		test_wp_basic();
		test_wp_missing();
		test_wp_churn();
		if (strcmp(backend, "umem"))
			test_wp_snapshot_uffd();
		else
			test_wp_attach_node();
		if (!strcmp(backend, "umem"))
			test_wp_refused_by_module();
	}
	printf("%d passed, %d failed", passed, failed);
	if (skipped)
		printf(", %d skipped", skipped);
	printf("\n");
	return failed ? 1 : 0;
}
