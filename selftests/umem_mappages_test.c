// SPDX-License-Identifier: GPL-2.0
/*
 * umem_mappages_test - the fault path's ->map_pages (kmod/fault.c): the
 * retried fault of a woken waiter and fault-around.
 *
 * What must hold: a task woken by an install sees the data and no second
 * request is queued; once every page is present a read fault maps its
 * neighbours, as on shmem (fault-around); while any page is missing a
 * read fault on a present page maps the present pages of its window and
 * never a missing one, so a missing page, with or without pwrite() data
 * in the backing, is never mapped and its access queues a request; a protected page mapped by fault-around stays
 * read-only (a write still queues a UMEM_REQ_WP request); the wait
 * statistics, now kept per CPU, add up across CPUs.  An install maps
 * the page into every mapping that has a page table for it (map at
 * install), by each of the four install paths, and not where no page
 * table exists yet or with the module parameter map_on_install=N.
 *
 * Whether a page is mapped is read from /proc/self/pagemap (bit 63,
 * "present", readable without privileges).  Fault-around covers
 * fault_around_bytes (64 KiB by default) around the fault, aligned by
 * virtual address (so the region is mapped 2 MiB-aligned), and only once
 * the page table exists, so each test touches a page first to create it.
 *
 * Threads: the test's own and, per test, one faulting thread (or two,
 * pinned to different CPUs); no fake daemon thread (the test reads the
 * server fd itself).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "umem_test.h"

#define NPAGES	64
#define SZ	(NPAGES * UT_PAGE)
#define SEED	0x6d
#define PG(n)	((uint64_t)(n) * UT_PAGE)
#define WP_REQ	(UMEM_REQ_WP | UMEM_REQ_WRITE)

/* Is the page at @addr mapped in this process?  1, 0 or -errno. */
static int mapped(const void *addr)
{
	uint64_t ent;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, &ent, sizeof(ent),
		  (off_t)((uintptr_t)addr / UT_PAGE * sizeof(ent)));
	close(fd);
	if (n != sizeof(ent))
		return n < 0 ? -errno : -EIO;
	return (int)(ent >> 63);
}

/* One access from another thread: read or write the first word. */
struct toucher {
	pthread_t thread;
	volatile uint64_t *addr;
	bool write;
	int cpu;		/* -1: anywhere */
	uint64_t value;		/* read: what it saw */
	int error;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	if (t->cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(t->cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			t->error = errno;
	}
	if (t->write)
		*t->addr = 0x1234;
	else
		t->value = *t->addr;
	return NULL;
}

static int touch_start(struct toucher *t, void *addr, bool write, int cpu)
{
	memset(t, 0, sizeof(*t));
	t->addr = addr;
	t->write = write;
	t->cpu = cpu;
	return -pthread_create(&t->thread, NULL, toucher_main, t);
}

/* Read one request, waiting for it; 0 or -errno. */
static int read_one(int sfd, struct umem_request *req)
{
	ssize_t n;

	if (ut_poll_in(sfd, UT_WAIT_MS) != 1)
		return -ETIMEDOUT;
	n = ut_read_requests(sfd, req, 1);
	return n == 1 ? 0 : (n < 0 ? (int)n : -EIO);
}

static int install_all_but(int sfd, long skip)
{
	for (unsigned int i = 0; i < NPAGES; i++) {
		int err;

		if ((long)i == skip)
			continue;
		err = ut_install_page(sfd, UT_INSTALL_COPY, PG(i), SEED);
		if (err)
			return err;
	}
	return 0;
}

/*
 * Map @fd's SZ bytes at a 2 MiB-aligned address, so that the fault-around
 * window (aligned by virtual address, within one page table) is pages
 * 0-15, 16-31, ... of the region wherever mmap() would have put it.  The
 * rest of those 2 MiB stays reserved (PROT_NONE, never touched), so the
 * region has a page table of its own, made by its first fault: nothing
 * else mapped next to it can make one earlier, which would let installs
 * map pages (map at install) before a test touches the region.  Unmap
 * MAP_ALIGN bytes at the address returned.
 */
#define MAP_ALIGN	(2UL << 20)
static char *map_aligned(int fd)
{
	char *res = mmap(NULL, 2 * MAP_ALIGN, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *at, *map;

	if (res == MAP_FAILED)
		return MAP_FAILED;
	at = (char *)(((uintptr_t)res + MAP_ALIGN - 1) & ~(MAP_ALIGN - 1));
	map = mmap(at, SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (at > res)
		munmap(res, at - res);
	munmap(at + MAP_ALIGN, res + 2 * MAP_ALIGN - (at + MAP_ALIGN));
	if (map == MAP_FAILED)
		munmap(at, MAP_ALIGN);
	return map;
}

/* Both fixtures: a region of SZ created with @flags, its node mapped. */
static int region_map(struct ut_region *r, char **map, const char *name,
		      unsigned int flags)
{
	int err = ut_region_init_flags(r, SZ, name, flags);

	if (!err)
		err = ut_region_open_node(r);
	if (err)
		return err;
	*map = map_aligned(r->node_fd);
	return *map == MAP_FAILED ? -errno : 0;
}

static void region_unmap(struct ut_region *r, char *map)
{
	if (map != MAP_FAILED)
		munmap(map, MAP_ALIGN);
	ut_region_fini(r);
}

FIXTURE(mp) {
	struct ut_region r;
	char *map;
};

FIXTURE_SETUP(mp)
{
	ut_region_clear(&self->r);
	self->map = MAP_FAILED;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	ASSERT_EQ(0, region_map(&self->r, &self->map, "mp", 0));
}

FIXTURE_TEARDOWN(mp)
{
	region_unmap(&self->r, self->map);
}

/*
 * The woken task's retried fault maps the page (->map_pages now): the data
 * is there, the PTE is, and no second request or fault was counted.
 */
TEST_F(mp, woken_waiter_no_second_request)
{
	int sfd = self->r.server_fd;
	struct umem_request req;
	struct toucher t;

	/* Page 4 first, so the page table exists when page 5 is retried. */
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(4), SEED));
	ASSERT_EQ(-1, ut_check_installed(self->map + PG(4), UT_INSTALL_COPY,
					 PG(4), SEED));
	ASSERT_EQ(0, touch_start(&t, self->map + PG(5), false, -1));
	ASSERT_EQ(0, read_one(sfd, &req));
	EXPECT_EQ(PG(5), req.offset);
	ASSERT_EQ(0, ut_wait_stat(sfd, UT_STAT(waiting), 1, UT_WAIT_MS));
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(5), SEED));
	ASSERT_EQ(0, pthread_join(t.thread, NULL));
	EXPECT_EQ(ut_pattern_word(PG(5), SEED), t.value);
	EXPECT_EQ(1, mapped(self->map + PG(5)));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(requests)));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(faults)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests_pending)));
	EXPECT_EQ(0, ut_poll_in(sfd, 0));
}

/* Every page present: a read fault maps its window, as shmem's does. */
TEST_F(mp, complete_faults_around)
{
	volatile char *m = self->map;
	unsigned int i;

	ASSERT_EQ(0, install_all_but(self->r.server_fd, -1));
	(void)m[PG(0)];		/* the page table */
	(void)m[PG(1)];		/* fault-around: pages 0-15 */
	for (i = 2; i < 16; i++)
		EXPECT_EQ(1, mapped(self->map + PG(i))) TH_LOG("page %u", i);
	for (i = 0; i < 16; i++)
		EXPECT_EQ(-1, ut_check(self->map + PG(i), PG(i), UT_PAGE, SEED))
			TH_LOG("page %u", i);
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests)));
}

/*
 * One page missing, with pwrite() data for it in the backing: a fault
 * next to it maps the present pages of its window (fault-around while the
 * migration runs), the missing one is never mapped, and its access asks
 * the daemon, whose install is what the task sees.
 */
TEST_F(mp, missing_neighbour_never_mapped)
{
	int sfd = self->r.server_fd;
	volatile char *m = self->map;
	char buf[UT_PAGE];
	struct umem_request req;
	struct toucher t;
	int i;

	ASSERT_EQ(0, install_all_but(sfd, 10));
	memset(buf, 0xee, sizeof(buf));
	ASSERT_EQ((ssize_t)sizeof(buf), pwrite(sfd, buf, sizeof(buf), PG(10)));
	(void)m[PG(8)];		/* the page table */
	(void)m[PG(9)];		/* fault-around: present pages of 0-15 */
	for (i = 0; i < 16; i++)
		EXPECT_EQ(i != 10, mapped(self->map + PG(i))) TH_LOG("page %u", i);
	/* Beyond the window: not yet. */
	EXPECT_EQ(0, mapped(self->map + PG(16)));
	for (i = 11; i < 16; i++)
		EXPECT_EQ(-1, ut_check(self->map + PG(i), PG(i), UT_PAGE, SEED))
			TH_LOG("page %u", i);
	EXPECT_EQ(0, mapped(self->map + PG(10)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));

	ASSERT_EQ(0, touch_start(&t, self->map + PG(10), false, -1));
	ASSERT_EQ(0, read_one(sfd, &req));
	EXPECT_EQ(PG(10), req.offset);
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(10), SEED));
	ASSERT_EQ(0, pthread_join(t.thread, NULL));
	EXPECT_EQ(ut_pattern_word(PG(10), SEED), t.value);
}

/*
 * Complete, then one page discarded: the region is no longer complete, the
 * page was zapped, and fault-around next to it does not map it again.
 */
TEST_F(mp, discard_after_complete)
{
	int sfd = self->r.server_fd;
	volatile char *m = self->map;
	struct umem_request req;
	struct toucher t;

	ASSERT_EQ(0, install_all_but(sfd, -1));
	(void)m[PG(0)];
	(void)m[PG(1)];
	ASSERT_EQ(1, mapped(self->map + PG(3)));
	ASSERT_EQ(0, ut_discard(sfd, PG(3), UT_PAGE));
	EXPECT_EQ(0, mapped(self->map + PG(3)));
	ASSERT_EQ(0, munmap(self->map, MAP_ALIGN));
	self->map = map_aligned(self->r.node_fd);
	ASSERT_NE(MAP_FAILED, self->map);
	m = self->map;
	(void)m[PG(0)];
	(void)m[PG(2)];
	EXPECT_EQ(0, mapped(self->map + PG(3)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));

	ASSERT_EQ(0, touch_start(&t, self->map + PG(3), false, -1));
	ASSERT_EQ(0, read_one(sfd, &req));
	EXPECT_EQ(PG(3), req.offset);
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(3), SEED));
	ASSERT_EQ(0, pthread_join(t.thread, NULL));
	EXPECT_EQ(ut_pattern_word(PG(3), SEED), t.value);
}

/*
 * Two tasks on two CPUs wait once each: the per-CPU wait statistics add
 * up (total of both, maximum of either), as one region-wide counter did.
 */
TEST_F(mp, wait_stats_across_cpus)
{
	int sfd = self->r.server_fd;
	struct umem_request req[2];
	struct toucher t[2];
	struct umem_stats st;
	uint64_t t0, waited;
	int i;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		SKIP(return, "one CPU: nothing to add up");
	t0 = ut_now_ns();
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, touch_start(&t[i], self->map + PG(20 + i), false, i));
	ASSERT_EQ(0, ut_wait_stat(sfd, UT_STAT(waiting), 2, UT_WAIT_MS));
	ut_sleep_ms(50);
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, read_one(sfd, &req[i]));
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY,
					     req[i].offset, SEED));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, pthread_join(t[i].thread, NULL));
		EXPECT_EQ(0, t[i].error);
		EXPECT_EQ(ut_pattern_word(PG(20 + i), SEED), t[i].value);
	}
	waited = ut_now_ns() - t0;
	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(2, st.faults);
	EXPECT_EQ(0, st.waiting);
	EXPECT_GE(st.wait_ns_max, 50000000ULL);
	EXPECT_GE(st.wait_ns_total, 2 * 50000000ULL);
	EXPECT_LE(st.wait_ns_max, waited);
	EXPECT_LE(st.wait_ns_total, 2 * waited);
	EXPECT_LE(st.wait_ns_max, st.wait_ns_total);
}

/* Set /sys/module/umem/parameters/map_on_install; 0 or -errno. */
#define MAP_ON_INSTALL	"/sys/module/umem/parameters/map_on_install"
static int set_map_on_install(bool on)
{
	int fd = open(MAP_ON_INSTALL, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, on ? "Y" : "N", 1);
	close(fd);
	return n == 1 ? 0 : -EIO;
}

/*
 * UMEM_GET_API on the control device asking for @want: the features
 * reported, or -errno (also when the device cannot be opened).
 */
static int64_t api_features(uint64_t want)
{
	struct umem_api api = { .api = UMEM_API, .features = want };
	int fd = ut_open_ctl_raw();
	int err;

	if (fd < 0)
		return fd;
	err = ut_get_api(fd, &api);
	close(fd);
	return err ? err : (int64_t)api.features;
}

/*
 * Map at install: once the page table exists (page 0 read), each install
 * path maps its page in the installing call, as UFFDIO_COPY does: the page
 * is mapped before anything touches it, reads the installed data, and no
 * fault or request was counted for it.
 */
TEST_F(mp, install_maps_page)
{
	static const enum ut_install hows[] = {
		UT_INSTALL_COPY, UT_INSTALL_COPY_VEC, UT_INSTALL_PWRITE,
		UT_INSTALL_ZERO,
	};
	int sfd = self->r.server_fd;
	volatile char *m = self->map;
	unsigned int i;

	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(0), SEED));
	(void)m[PG(0)];		/* the page table */
	for (i = 0; i < UT_ARRAY_SIZE(hows); i++) {
		uint64_t off = PG(20 + i);

		EXPECT_EQ(0, mapped(self->map + off));
		ASSERT_EQ(0, ut_install_page(sfd, hows[i], off, SEED));
		EXPECT_EQ(1, mapped(self->map + off)) TH_LOG("install %u", i);
		EXPECT_EQ(-1, ut_check_installed(self->map + off, hows[i], off,
						 SEED)) TH_LOG("install %u", i);
	}
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(faults)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));
	/* Its neighbours, still missing, are not. */
	EXPECT_EQ(0, mapped(self->map + PG(19)));
	EXPECT_EQ(0, mapped(self->map + PG(24)));
}

/*
 * Every mapping with a page table gets the page: a second mapping of the
 * node in this process and a forked child's copy of the first.  A mapping
 * whose page table does not exist yet (nothing touched there) gets none:
 * its first access maps the page by a fault, without a request.
 */
TEST_F(mp, install_maps_every_mapping)
{
	int sfd = self->r.server_fd, status, pipefd[2];
	volatile char *m = self->map, *m2, *m3;
	char c = 0;
	pid_t pid;

	m2 = map_aligned(self->r.node_fd);
	ASSERT_NE(MAP_FAILED, m2);
	m3 = map_aligned(self->r.node_fd);
	ASSERT_NE(MAP_FAILED, m3);
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(0), SEED));
	(void)m[PG(0)];
	(void)m2[PG(0)];
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* fork() copied the page table (a VM_MIXEDMAP vma's PTEs
		 * are copied): wait for the install, then report whether
		 * page 7 came mapped here too. */
		if (read(pipefd[0], &c, 1) != 1)
			_exit(2);
		_exit(mapped(self->map + PG(7)) == 1 &&
		      ut_check(self->map + PG(7), PG(7), UT_PAGE, SEED) == -1 ?
		      0 : 1);
	}
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(7), SEED));
	EXPECT_EQ(1, mapped(self->map + PG(7)));
	EXPECT_EQ(1, mapped((char *)m2 + PG(7)));
	EXPECT_EQ(0, mapped((char *)m3 + PG(7)));
	EXPECT_EQ(-1, ut_check((char *)m3 + PG(7), PG(7), UT_PAGE, SEED));
	EXPECT_EQ(1, write(pipefd[1], &c, 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));
	close(pipefd[0]);
	close(pipefd[1]);
	munmap((void *)m2, MAP_ALIGN);
	munmap((void *)m3, MAP_ALIGN);
}

/*
 * map_on_install=N: installs leave mapping to the tasks' faults, and
 * UMEM_GET_API says so (UMEM_F_MAP_ON_INSTALL follows the parameter).
 */
TEST_F(mp, install_map_off)
{
	int sfd = self->r.server_fd;
	volatile char *m = self->map;
	int64_t f;
	int err;

	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(0), SEED));
	(void)m[PG(0)];
	f = api_features(UMEM_F_MAP_ON_INSTALL);
	ASSERT_LE(0, f);
	EXPECT_TRUE(f & UMEM_F_MAP_ON_INSTALL);
	err = set_map_on_install(false);
	if (err)
		SKIP(return, "cannot write " MAP_ON_INSTALL ": %s", strerror(-err));
	f = api_features(0);
	EXPECT_LE(0, f);
	EXPECT_FALSE(f & UMEM_F_MAP_ON_INSTALL);
	EXPECT_EQ(-EINVAL, api_features(UMEM_F_MAP_ON_INSTALL));
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(40), SEED));
	EXPECT_EQ(0, mapped(self->map + PG(40)));
	ASSERT_EQ(0, set_map_on_install(true));
	EXPECT_LE(0, api_features(UMEM_F_MAP_ON_INSTALL));
	EXPECT_EQ(-1, ut_check(self->map + PG(40), PG(40), UT_PAGE, SEED));
	EXPECT_EQ(1, mapped(self->map + PG(40)));
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(41), SEED));
	EXPECT_EQ(1, mapped(self->map + PG(41)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));
}

FIXTURE(mpwp) {
	struct ut_region r;
	char *map;
};

FIXTURE_SETUP(mpwp)
{
	ut_region_clear(&self->r);
	self->map = MAP_FAILED;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	ASSERT_EQ(0, region_map(&self->r, &self->map, "mpwp", UMEM_CREATE_WP));
}

FIXTURE_TEARDOWN(mpwp)
{
	region_unmap(&self->r, self->map);
}

/*
 * A protected page mapped by fault-around is read-only: a write to it
 * still waits behind a UMEM_REQ_WP request, and goes through once the
 * page is unprotected.  Its unprotected neighbour takes writes at once.
 */
TEST_F(mpwp, fault_around_read_only)
{
	int sfd = self->r.server_fd;
	volatile char *m = self->map;
	struct umem_request req;
	struct toucher t;

	ASSERT_EQ(0, install_all_but(sfd, -1));
	ASSERT_EQ(0, ut_writeprotect(sfd, PG(3), UT_PAGE, true, NULL));
	(void)m[PG(0)];
	(void)m[PG(1)];
	EXPECT_EQ(1, mapped(self->map + PG(3)));
	m[PG(2)] = 1;
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));

	ASSERT_EQ(0, touch_start(&t, self->map + PG(3), true, -1));
	ASSERT_EQ(0, read_one(sfd, &req));
	EXPECT_EQ(PG(3), req.offset);
	EXPECT_EQ(WP_REQ, req.flags);
	ASSERT_EQ(0, ut_writeprotect(sfd, PG(3), UT_PAGE, false, NULL));
	ASSERT_EQ(0, pthread_join(t.thread, NULL));
	EXPECT_EQ(0x1234, *(volatile uint64_t *)(self->map + PG(3)));
}

/*
 * Map at install in a write-notify vma: the page comes mapped read-only,
 * so the first write still goes through ->page_mkwrite, and a page
 * protected after its install waits for its write as before.
 */
TEST_F(mpwp, install_maps_read_only)
{
	int sfd = self->r.server_fd;
	volatile char *m = self->map;
	struct umem_request req;
	struct toucher t;

	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(0), SEED));
	(void)m[PG(0)];
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(5), SEED));
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(6), SEED));
	EXPECT_EQ(1, mapped(self->map + PG(5)));
	ASSERT_EQ(0, ut_writeprotect(sfd, PG(6), UT_PAGE, true, NULL));
	m[PG(5)] = 1;
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));

	ASSERT_EQ(0, touch_start(&t, self->map + PG(6), true, -1));
	ASSERT_EQ(0, read_one(sfd, &req));
	EXPECT_EQ(PG(6), req.offset);
	EXPECT_EQ(WP_REQ, req.flags);
	ASSERT_EQ(0, ut_writeprotect(sfd, PG(6), UT_PAGE, false, NULL));
	ASSERT_EQ(0, pthread_join(t.thread, NULL));
	EXPECT_EQ(0x1234, *(volatile uint64_t *)(self->map + PG(6)));
}

TEST_HARNESS_MAIN
