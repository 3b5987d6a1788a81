// SPDX-License-Identifier: GPL-2.0
/*
 * libumem tests, per backend: argument checking, fault -> request ->
 * install in one process, the two-process VMM/daemon hand-over through a
 * unix socket, discard, and what happens to a faulting task when the
 * daemon lets go.  The umem backend is skipped (with the reason) when
 * /dev/umem is absent.
 *
 *   test-libumem [BACKEND...]       default: uffd uffd-minor umem
 *   test-libumem --huge [BACKEND...] regions of 2 MiB pages (uffd*: on
 *                                    hugetlbfs; needs 2 MiB huge pages
 *                                    reserved, else a SKIP line says so;
 *                                    umem: SKIP if the module lacks
 *                                    UMEM_F_PAGE_2M)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

struct toucher {
	volatile uint8_t *addr;
	uint64_t value;
	int done;
	pthread_t th;
};

static void *touch_thread(void *arg)
{
	struct toucher *t = arg;

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

/* Join with a deadline; false if the thread is still stuck. */
static bool touch_join(struct toucher *t, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (__atomic_load_n(&t->done, __ATOMIC_SEQ_CST)) {
			pthread_join(t->th, NULL);
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
	c.flags = 1;
	OK(umem_region_create(&c, &r) == -EINVAL, "unknown flag: -EINVAL");
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
	ret = umem_region_map(r, (void **)&map);
	OK(ret == 0 && map, "map in the creating process: %s", umem_strerror(ret));
	if (ret)
		goto out;
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
			continue;
		}
		test_args();
		test_one_process();
		test_two_processes();
	}
	printf("%d passed, %d failed", passed, failed);
	if (skipped)
		printf(", %d skipped", skipped);
	printf("\n");
	return failed ? 1 : 0;
}
