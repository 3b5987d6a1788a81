// SPDX-License-Identifier: GPL-2.0
/*
 * Regions of 2 MiB pages (UMEM_F_PAGE_2M, page_size UMEM_PAGE_SIZE_2M).
 *
 * Every page of such a region is one 2 MiB unit: requested once at its
 * 2 MiB aligned offset whichever 4 KiB piece was touched, installed,
 * discarded and counted whole (every COPY/ZERO/DISCARD/MARK_PRESENT offset
 * and length a multiple of 2 MiB, else EINVAL), and mapped with one PMD
 * by a mapping whose address and file offset are both 2 MiB aligned
 * (/proc/self/smaps: ShmemPmdMapped, or FilePmdMapped).  An install that
 * cannot get a 2 MiB folio fails with ENOMEM, installs nothing and counts
 * in umem_stats.alloc_failed; the allocation failure is provoked with
 * /sys/kernel/mm/transparent_hugepage/shmem_enabled = deny ("force the
 * huge option off from all mounts"), saved and restored around the test
 * (and once more when the program exits, should a test die with it set).
 *
 * Without UMEM_F_PAGE_2M in UMEM_GET_API's features every test SKIPs.
 * Every wait is bounded (poll timeouts, timed joins, the harness timeout):
 * a fault that never returns is a failure, not a stuck run.  After each
 * test the global ShmemPmdMapped must be back where it was (a PMD taken
 * down without its rmap and counters leaks it) and the kernel must not
 * have warned, oopsed or found a bad page (taint bits W, D, B, L).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "umem_test.h"

#define THP_SHMEM	UT_THP_SHMEM
#define HPAGE		((uint64_t)UMEM_PAGE_SIZE_2M)
#define HPAGE_KB	((long)(HPAGE >> 10))
#define NPIECE		(HPAGE / UT_PAGE)	/* 512 pieces of 4 KiB */
#define NHP		4
#define SZ		(NHP * HPAGE)		/* 8 MiB: four huge pages */
#define SZ_KB		((long)(SZ >> 10))
#define HP(n)		((uint64_t)(n) * HPAGE)
#define PC(n)		((uint64_t)(n) * UT_PAGE)
#define SEED		0x2a
#define SEED2		0x1b7
#define UNTOUCHED	0x5a5a5a5a5a5aLL
/*
 * A blocked task must still be blocked after this long, and no second
 * request may turn up within it.
 */
#define BLOCK_MS	250
#define TIMEOUT_S	120
#define NMAPS		6

/* /proc/sys/kernel/tainted: W (warning), D (oops), B (bad page), L (soft lockup). */
#define TAINT_MASK	((1L << 9) | (1L << 7) | (1L << 5) | (1L << 14))

/* ---------------------------------------------------------- the knob */

static void __attribute__((constructor)) knob_guard(void)
{
	ut_thp_shmem_guard();
}

/* ------------------------------------------------------- inspection */

/* ShmemPmdMapped + FilePmdMapped of /proc/meminfo (the whole system). */
static long global_pmd_kb(void)
{
	long a = ut_meminfo_kb("ShmemPmdMapped");
	long b = ut_meminfo_kb("FilePmdMapped");

	return (a > 0 ? a : 0) + (b > 0 ? b : 0);
}

static long tainted(void)
{
	char buf[32] = "";
	ssize_t n;
	int fd = open("/proc/sys/kernel/tainted", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtol(buf, NULL, 10) : -EIO;
}

/* ----------------------------------------------------------- fixture */

FIXTURE(huge) {
	int ctl_fd;
	struct ut_region r;
	void *resv[NMAPS];	/* PROT_NONE reservations holding mappings */
	size_t resv_len[NMAPS];
	char *map;		/* r mapped at a 2 MiB aligned address */
	uint64_t *buf;		/* SZ bytes for install data */
	struct ut_daemon d;
	char old_knob[32];
	bool knob_changed;
	long pmd_before;
	long taint_before;
};

/*
 * A region of 2 MiB pages in @r (its ctl_fd stays -1: the fixture's is
 * used) with its node open; 0 or -errno.
 */
static int hregion(FIXTURE_DATA(huge) *self, struct ut_region *r,
		   uint64_t size, const char *tag)
{
	struct umem_create c;
	int ret;

	ut_region_clear(r);
	ut_make_name(r->name, tag);
	ret = ut_create_ps(self->ctl_fd, r->name, size, UMEM_PAGE_SIZE_2M, &c);
	if (ret < 0)
		return ret;
	r->server_fd = ret;
	r->id = c.id;
	r->size = size;
	r->pages = size / HPAGE;
	return ut_region_open_node(r);
}

/*
 * mmap(MAP_SHARED | MAP_FIXED) @len bytes of @fd at file offset @off at
 * (a 2 MiB aligned address) + @skew inside a fresh PROT_NONE reservation,
 * as QEMU does; the mapping or MAP_FAILED.  The teardown unmaps it.
 */
static char *map_at(FIXTURE_DATA(huge) *self, int fd, uint64_t len,
		    uint64_t off, uint64_t skew)
{
	size_t rlen = len + skew + 2 * HPAGE;
	uintptr_t base;
	unsigned int i;
	void *resv;

	for (i = 0; i < NMAPS && self->resv[i] != MAP_FAILED; i++)
		;
	if (i == NMAPS) {
		errno = ENOSPC;
		return MAP_FAILED;
	}
	resv = mmap(NULL, rlen, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (resv == MAP_FAILED)
		return MAP_FAILED;
	self->resv[i] = resv;
	self->resv_len[i] = rlen;
	base = (((uintptr_t)resv + HPAGE - 1) & ~(uintptr_t)(HPAGE - 1)) + skew;
	return mmap((void *)base, len, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_FIXED, fd, (off_t)off);
}

/* The test's region of @size, mapped 2 MiB aligned at self->map. */
static int setup_region(FIXTURE_DATA(huge) *self, uint64_t size)
{
	int err = hregion(self, &self->r, size, "hg");

	if (err)
		return err;
	self->map = map_at(self, self->r.node_fd, size, 0, 0);
	return self->map == MAP_FAILED ? -errno : 0;
}

FIXTURE_SETUP(huge)
{
	struct umem_api api = { .api = UMEM_API };
	unsigned int i;
	int fd;

	self->ctl_fd = -1;
	ut_region_clear(&self->r);
	ut_daemon_init(&self->d, -1, SZ, SEED);
	for (i = 0; i < NMAPS; i++)
		self->resv[i] = MAP_FAILED;
	self->map = MAP_FAILED;
	self->buf = NULL;
	self->knob_changed = false;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	self->ctl_fd = ut_open_ctl_raw();
	ASSERT_LE(0, self->ctl_fd);
	ASSERT_EQ(0, ut_get_api(self->ctl_fd, &api));
	if (!(api.features & UMEM_F_PAGE_2M)) {
		close(self->ctl_fd);
		self->ctl_fd = -1;
		SKIP(return, "UMEM_GET_API features %#llx lack UMEM_F_PAGE_2M: "
		     "this module has no 2 MiB pages",
		     (unsigned long long)api.features);
	}
	self->buf = aligned_alloc(HPAGE, SZ);
	ASSERT_NE(NULL, self->buf);
	/* Give the 2 MiB allocations their best chance (best effort). */
	fd = open("/proc/sys/vm/compact_memory", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, "1", 1);
		close(fd);
	}
	self->pmd_before = global_pmd_kb();
	self->taint_before = tainted();
}

FIXTURE_TEARDOWN(huge)
{
	unsigned int i;
	long now, taint;

	/* First: nothing below may leave the knob at "deny". */
	if (self->knob_changed) {
		EXPECT_EQ(0, ut_thp_shmem_set(self->old_knob))
			TH_LOG("restoring %s to %s", THP_SHMEM, self->old_knob);
		self->knob_changed = false;
	}
	EXPECT_EQ(0, ut_daemon_stop(&self->d));
	/*
	 * The server fd before the mappings: a task still blocked on a page
	 * (a failed test) gets SIGBUS instead of holding munmap() up.
	 */
	if (self->r.server_fd >= 0)
		close(self->r.server_fd);
	self->r.server_fd = -1;
	for (i = 0; i < NMAPS; i++) {
		if (self->resv[i] != MAP_FAILED)
			munmap(self->resv[i], self->resv_len[i]);
		self->resv[i] = MAP_FAILED;
	}
	ut_region_fini(&self->r);
	if (self->ctl_fd >= 0)
		close(self->ctl_fd);
	free(self->buf);

	now = global_pmd_kb();
	EXPECT_GE(self->pmd_before, now)
		TH_LOG("ShmemPmdMapped+FilePmdMapped %ld kB before, %ld kB after "
		       "unmap and close: a PMD mapping leaked its accounting",
		       self->pmd_before, now);
	taint = tainted();
	if (self->taint_before >= 0 && taint >= 0) {
		EXPECT_EQ(0, (taint & ~self->taint_before) & TAINT_MASK)
			TH_LOG("kernel newly tainted %#lx -> %#lx (warning, oops, "
			       "bad page or soft lockup: see dmesg)",
			       self->taint_before, taint);
	}
}

/* ----------------------------------------------------------- helpers */

/* UMEM_COPY of pages [first, first + n) with the pattern of @seed. */
static int install(FIXTURE_DATA(huge) *self, uint64_t first, uint64_t n,
		   uint32_t seed)
{
	int64_t copied = UNTOUCHED;
	int ret;

	if (n * HPAGE > SZ)
		return -E2BIG;
	ut_fill(self->buf, HP(first), n * HPAGE, seed);
	ret = ut_copy(self->r.server_fd, HP(first), self->buf, n * HPAGE,
		      &copied);
	if (!ret && copied != (int64_t)(n * HPAGE))
		return -EIO;
	return ret;
}

/* -1 when huge page @n reads the pattern of @seed through @base. */
static long check_hp(const char *base, uint64_t n, uint32_t seed)
{
	return ut_check(base + HP(n), HP(n), HPAGE, seed);
}

/* Read one word of each 4 KiB piece of pages [first, first + n). */
static void touch(const char *base, uint64_t first, uint64_t n)
{
	uint64_t off;

	for (off = HP(first); off < HP(first + n); off += UT_PAGE)
		(void)*(volatile const uint64_t *)(base + off);
}

/*
 * Read exactly one request (waiting up to UT_WAIT_MS for it) for @want,
 * and check that no second one follows within BLOCK_MS.
 */
static void read_one(struct __test_metadata *_metadata, int sfd,
		     uint64_t want, struct umem_request *out)
{
	struct umem_request req[8];
	ssize_t n;

	ASSERT_EQ(1, ut_poll_in(sfd, UT_WAIT_MS))
		TH_LOG("no request for offset %#llx", (unsigned long long)want);
	ASSERT_EQ(0, ut_set_nonblock(sfd, true));
	n = ut_read_requests(sfd, req, 8);
	EXPECT_EQ(1, n) {
		if (n > 1)
			TH_LOG("%zd requests, the second for %#llx", n,
			       (unsigned long long)req[1].offset);
	}
	ASSERT_LE(1, n);
	EXPECT_EQ(want, req[0].offset)
		TH_LOG("request offset %#llx, want the huge page's %#llx",
		       (unsigned long long)req[0].offset,
		       (unsigned long long)want);
	EXPECT_EQ(0, req[0].reserved);
	ut_sleep_ms(BLOCK_MS);
	n = ut_read_requests(sfd, req + 1, 7);
	EXPECT_EQ(-EAGAIN, n) {
		if (n > 0)
			TH_LOG("a second request for %#llx",
			       (unsigned long long)req[1].offset);
	}
	ASSERT_EQ(0, ut_set_nonblock(sfd, false));
	*out = req[0];
}

/* The toucher @t has not returned: it waits for its page. */
static void expect_waiting(struct __test_metadata *_metadata, int sfd,
			   struct ut_toucher *t, uint64_t nwait)
{
	ASSERT_EQ(0, ut_wait_stat(sfd, UT_STAT(waiting), nwait, UT_WAIT_MS))
		TH_LOG("waiting %llu, want %llu",
		       (unsigned long long)ut_stat(sfd, UT_STAT(waiting)),
		       (unsigned long long)nwait);
	EXPECT_EQ(0, atomic_load(&t->done))
		TH_LOG("the toucher returned from a missing page (saw %#llx)",
		       (unsigned long long)t->seen);
}

/* ------------------------------------------------------------- tests */

/*
 * 1. UMEM_CREATE: a region of 2 MiB pages reports page_size 2 MiB and
 * size / 2 MiB pages; a size that is not a multiple of 2 MiB and page
 * sizes other than 4 KiB and 2 MiB are EINVAL and create nothing.
 */
TEST_F_TIMEOUT(huge, create, TIMEOUT_S)
{
	static const uint64_t bad_sizes[] = {
		0, UT_PAGE, HPAGE / 2, HPAGE - UT_PAGE, HPAGE + UT_PAGE,
		3 * HPAGE / 2, SZ - UT_PAGE, SZ + UT_PAGE, SZ + HPAGE / 2,
	};
	static const uint32_t bad_ps[] = {
		0, 2048, 8192, 16384, 65536, 1U << 20, 4U << 20,
		UMEM_PAGE_SIZE_2M + 4096, UMEM_PAGE_SIZE_2M - 4096, 1U << 30,
	};
	char name[UMEM_NAME_MAX], path[64];
	struct umem_create c;
	struct umem_stats st;
	unsigned int i;
	int fd;

	ASSERT_EQ(0, hregion(self, &self->r, SZ, "cr"));
	ASSERT_EQ(0, ut_stats(self->r.server_fd, &st));
	EXPECT_EQ(SZ, st.size);
	EXPECT_EQ(HPAGE, st.page_size);
	EXPECT_EQ(NHP, st.pages);
	EXPECT_EQ(0, st.pages_present);
	EXPECT_EQ(0, st.requests);
	EXPECT_EQ(0, st.installed);
	EXPECT_EQ(0, st.alloc_failed);
	EXPECT_EQ((off_t)SZ, lseek(self->r.node_fd, 0, SEEK_END));

	/* One huge page. */
	ut_make_name(name, "one");
	fd = ut_create_ps(self->ctl_fd, name, HPAGE, UMEM_PAGE_SIZE_2M, &c);
	ASSERT_LE(0, fd);
	EXPECT_EQ(UMEM_PAGE_SIZE_2M, c.page_size);
	ASSERT_EQ(0, ut_stats(fd, &st));
	EXPECT_EQ(HPAGE, st.page_size);
	EXPECT_EQ(1, st.pages);
	close(fd);

	for (i = 0; i < UT_ARRAY_SIZE(bad_sizes); i++) {
		ut_make_name(name, "bs");
		fd = ut_create_ps(self->ctl_fd, name, bad_sizes[i],
			       UMEM_PAGE_SIZE_2M, NULL);
		EXPECT_EQ(-EINVAL, fd)
			TH_LOG("size %#llx with 2 MiB pages",
			       (unsigned long long)bad_sizes[i]);
		if (fd >= 0)
			close(fd);
		ut_node_path(path, sizeof(path), name);
		EXPECT_NE(0, access(path, F_OK)) TH_LOG("%s exists", path);
	}
	for (i = 0; i < UT_ARRAY_SIZE(bad_ps); i++) {
		ut_make_name(name, "bp");
		fd = ut_create_ps(self->ctl_fd, name, SZ, bad_ps[i], NULL);
		EXPECT_EQ(-EINVAL, fd) TH_LOG("page_size %u", bad_ps[i]);
		if (fd >= 0)
			close(fd);
	}

	/* 4 KiB pages are unchanged: a size of 2 MiB + 4 KiB is fine there. */
	ut_make_name(name, "4k");
	fd = ut_create_ps(self->ctl_fd, name, HPAGE + UT_PAGE, UMEM_PAGE_SIZE_4K,
		       NULL);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ut_stats(fd, &st));
	EXPECT_EQ(UT_PAGE, st.page_size);
	EXPECT_EQ(NPIECE + 1, st.pages);
	close(fd);
}

/* Ranges that are not whole 2 MiB pages (all inside the region). */
static const struct {
	uint64_t off, len;
} bad_ranges[] = {
	{ 0, UT_PAGE },
	{ UT_PAGE, HPAGE },
	{ UT_PAGE, UT_PAGE },
	{ HP(1) + PC(300), HPAGE },
	{ 0, HPAGE + UT_PAGE },
	{ 0, HPAGE / 2 },
	{ HP(1), HPAGE - UT_PAGE },
	{ HP(1) + HPAGE / 2, HPAGE / 2 },
	{ HP(2), HPAGE + HPAGE / 2 },
	{ HP(3) + PC(511), UT_PAGE },
};

/*
 * 2. Argument units: COPY, ZERO and DISCARD take whole 2 MiB pages
 * (offset and length), MARK_PRESENT 2 MiB aligned offsets, a COPY_VEC
 * entry a 2 MiB aligned offset (-EINVAL in its result otherwise, the other
 * entries done) and it installs 2 MiB from its @src.
 */
TEST_F_TIMEOUT(huge, argument_units, TIMEOUT_S)
{
	static const uint64_t bad_offs[] = {
		PC(1), HP(1) + PC(300), HP(2) + HPAGE / 2, HP(3) + PC(511),
	};
	struct umem_copy_entry e[5];
	struct umem_discard dc;
	struct umem_copy c;
	struct umem_zero z;
	struct umem_stats st;
	uint64_t handled, marked;
	unsigned int i;
	int sfd;

	ASSERT_EQ(0, setup_region(self, SZ));
	sfd = self->r.server_fd;
	ut_fill(self->buf, 0, SZ, SEED);

	for (i = 0; i < UT_ARRAY_SIZE(bad_ranges); i++) {
		memset(&c, 0, sizeof(c));
		c.offset = bad_ranges[i].off;
		c.len = bad_ranges[i].len;
		c.src = (uintptr_t)self->buf;
		c.copied = UNTOUCHED;
		EXPECT_EQ(-EINVAL, ut_ioctl(sfd, UMEM_COPY, &c))
			TH_LOG("COPY offset %#llx len %#llx",
			       (unsigned long long)c.offset,
			       (unsigned long long)c.len);
		EXPECT_TRUE(c.copied == UNTOUCHED || c.copied == -EINVAL)
			TH_LOG("copied %lld", (long long)c.copied);

		memset(&z, 0, sizeof(z));
		z.offset = bad_ranges[i].off;
		z.len = bad_ranges[i].len;
		z.zeroed = UNTOUCHED;
		EXPECT_EQ(-EINVAL, ut_ioctl(sfd, UMEM_ZERO, &z))
			TH_LOG("ZERO offset %#llx len %#llx",
			       (unsigned long long)z.offset,
			       (unsigned long long)z.len);
		EXPECT_TRUE(z.zeroed == UNTOUCHED || z.zeroed == -EINVAL)
			TH_LOG("zeroed %lld", (long long)z.zeroed);

		memset(&dc, 0, sizeof(dc));
		dc.offset = bad_ranges[i].off;
		dc.len = bad_ranges[i].len;
		EXPECT_EQ(-EINVAL, ut_ioctl(sfd, UMEM_DISCARD, &dc))
			TH_LOG("DISCARD offset %#llx len %#llx",
			       (unsigned long long)dc.offset,
			       (unsigned long long)dc.len);
	}
	for (i = 0; i < UT_ARRAY_SIZE(bad_offs); i++) {
		marked = UNTOUCHED;
		EXPECT_EQ(-EINVAL, ut_mark_present(sfd, &bad_offs[i], 1, &marked))
			TH_LOG("MARK_PRESENT offset %#llx",
			       (unsigned long long)bad_offs[i]);
		EXPECT_EQ(0, marked);
	}
	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(0, st.pages_present);
	EXPECT_EQ(0, st.installed);
	EXPECT_EQ(0, st.discarded);
	EXPECT_EQ(0, st.alloc_failed);

	/* COPY_VEC: per-entry results; the good entry installs 2 MiB. */
	e[0] = (struct umem_copy_entry){ HP(0) + PC(1), (uintptr_t)self->buf, UNTOUCHED };
	e[1] = (struct umem_copy_entry){ HP(1), (uintptr_t)self->buf + HP(1), UNTOUCHED };
	e[2] = (struct umem_copy_entry){ HP(2) + HPAGE / 2, (uintptr_t)self->buf, UNTOUCHED };
	e[3] = (struct umem_copy_entry){ HP(1), (uintptr_t)self->buf + HP(1), UNTOUCHED };
	e[4] = (struct umem_copy_entry){ HP(3) + PC(511), (uintptr_t)self->buf, UNTOUCHED };
	handled = UNTOUCHED;
	EXPECT_EQ(0, ut_copy_vec(sfd, e, 5, &handled));
	EXPECT_EQ(5, handled);
	EXPECT_EQ(-EINVAL, e[0].result);
	EXPECT_EQ(0, e[1].result);
	EXPECT_EQ(-EINVAL, e[2].result);
	EXPECT_EQ(-EEXIST, e[3].result);
	EXPECT_EQ(-EINVAL, e[4].result);
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(pages_present)));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(installed)));
	/* Present: read in place, no request. */
	EXPECT_EQ(-1, check_hp(self->map, 1, SEED));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));

	/* Whole pages work: COPY page 0, ZERO pages 2-3, DISCARD page 3. */
	c = (struct umem_copy){ .offset = 0, .len = HPAGE,
				.src = (uintptr_t)self->buf, .copied = UNTOUCHED };
	EXPECT_EQ(0, ut_ioctl(sfd, UMEM_COPY, &c));
	EXPECT_EQ((int64_t)HPAGE, c.copied);
	z = (struct umem_zero){ .offset = HP(2), .len = 2 * HPAGE,
				.zeroed = UNTOUCHED };
	EXPECT_EQ(0, ut_ioctl(sfd, UMEM_ZERO, &z));
	EXPECT_EQ((int64_t)(2 * HPAGE), z.zeroed);
	EXPECT_EQ(NHP, ut_stat(sfd, UT_STAT(pages_present)));
	EXPECT_EQ(-1, check_hp(self->map, 0, SEED));
	EXPECT_EQ(-1, ut_check_zero(self->map + HP(2), 2 * HPAGE));

	/* A piece of a present page is EINVAL, not a partial discard. */
	EXPECT_EQ(-EINVAL, ut_discard(sfd, HP(3) + PC(1), UT_PAGE));
	EXPECT_EQ(-EINVAL, ut_discard(sfd, HP(3), UT_PAGE));
	EXPECT_EQ(NHP, ut_stat(sfd, UT_STAT(pages_present)));
	EXPECT_EQ(0, ut_discard(sfd, HP(3), HPAGE));
	EXPECT_EQ(NHP - 1, ut_stat(sfd, UT_STAT(pages_present)));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(discarded)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(alloc_failed)));
}

/*
 * 2b. pwrite() may write any byte range of a missing 2 MiB page; the
 * page stays missing until MARK_PRESENT of its 2 MiB offset, and then
 * reads the written bytes and zeros elsewhere.
 */
TEST_F_TIMEOUT(huge, pwrite_pieces, TIMEOUT_S)
{
	const char *p;
	uint64_t off = HP(1), marked = UNTOUCHED;
	int sfd;

	ASSERT_EQ(0, setup_region(self, SZ));
	sfd = self->r.server_fd;
	ut_fill(self->buf, 0, SZ, SEED);
	EXPECT_EQ((ssize_t)UT_PAGE,
		  pwrite(sfd, (char *)self->buf + HP(1) + PC(7), UT_PAGE,
			 (off_t)(HP(1) + PC(7))));
	EXPECT_EQ(100, pwrite(sfd, (char *)self->buf + HP(1) + PC(20) + 5, 100,
			      (off_t)(HP(1) + PC(20) + 5)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(pages_present)));
	EXPECT_EQ(0, ut_mark_present(sfd, &off, 1, &marked));
	EXPECT_EQ(1, marked);
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(pages_present)));

	p = self->map + HP(1);
	EXPECT_EQ(-1, ut_check_zero(p, PC(7)));
	EXPECT_EQ(-1, ut_check(p + PC(7), HP(1) + PC(7), UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check_zero(p + PC(8), PC(12) + 5));
	EXPECT_EQ(0, memcmp(p + PC(20) + 5, (char *)self->buf + HP(1) + PC(20) + 5,
			    100));
	EXPECT_EQ(-1, ut_check_zero(p + PC(20) + 105, HPAGE - PC(20) - 105));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));
}

/*
 * 3. A fault on any 4 KiB piece of a missing huge page gives one request
 * for the 2 MiB aligned offset; after one 2 MiB COPY the faulting thread
 * and every other piece read the page's data.  The same through a write
 * fault (UMEM_REQ_WRITE, the write lands on the installed data), and
 * through a mapping at an address that is not 2 MiB aligned (PTEs).
 */
TEST_F_TIMEOUT(huge, fault_piece, TIMEOUT_S)
{
	const uint64_t woff = HP(2) + PC(511) + 8;
	const uint64_t val = 0x0123456789abcdefULL;
	struct umem_request req;
	struct ut_toucher t;
	char *m2;
	int sfd;

	ASSERT_EQ(0, setup_region(self, SZ));
	sfd = self->r.server_fd;

	/* Read fault on piece 300 of page 1. */
	ASSERT_EQ(0, ut_toucher_start(&t, self->map + HP(1) + PC(300) + 24,
				      false, 0));
	read_one(_metadata, sfd, HP(1), &req);
	EXPECT_EQ(0, req.flags);
	EXPECT_EQ(atomic_load(&t.tid), (int)req.tid);
	expect_waiting(_metadata, sfd, &t, 1);
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(requests)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(pages_present)));

	ASSERT_EQ(0, install(self, 1, 1, SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(ut_pattern_word(HP(1) + PC(300) + 24, SEED), t.seen);
	EXPECT_EQ(-1, ut_check(t.page, HP(1) + PC(300), UT_PAGE, SEED));
	EXPECT_EQ(-1, check_hp(self->map, 1, SEED));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(requests)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(waiting)));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(pages_present)));
	EXPECT_EQ(0, ut_poll_in(sfd, 0));
	EXPECT_EQ(HPAGE_KB, ut_smaps_pmd_kb(self->map))
		TH_LOG("page 1 (faulted while missing, then installed) is not "
		       "mapped by one PMD at an aligned address");

	/* Write fault on the last piece of page 2. */
	ASSERT_EQ(0, ut_toucher_start(&t, self->map + woff, true, val));
	read_one(_metadata, sfd, HP(2), &req);
	EXPECT_EQ(UMEM_REQ_WRITE, req.flags);
	EXPECT_EQ(atomic_load(&t.tid), (int)req.tid);
	expect_waiting(_metadata, sfd, &t, 1);
	ASSERT_EQ(0, install(self, 2, 1, SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(val, *(uint64_t *)(self->map + woff));
	EXPECT_EQ(-1, ut_check(self->map + HP(2), HP(2), woff - HP(2), SEED));
	EXPECT_EQ(-1, ut_check(self->map + woff + 8, woff + 8,
			       HP(3) - woff - 8, SEED));

	/* A mapping 4 KiB off the 2 MiB grid: piece 1 of page 3. */
	m2 = map_at(self, self->r.node_fd, SZ, 0, UT_PAGE);
	ASSERT_NE(MAP_FAILED, m2);
	ASSERT_EQ(0, ut_toucher_start(&t, m2 + HP(3) + PC(1) + 4088, false, 0));
	read_one(_metadata, sfd, HP(3), &req);
	expect_waiting(_metadata, sfd, &t, 1);
	ASSERT_EQ(0, install(self, 3, 1, SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(ut_pattern_word(HP(3) + PC(1) + 4088, SEED), t.seen);
	EXPECT_EQ(-1, check_hp(m2, 3, SEED));
	EXPECT_EQ(-1, check_hp(self->map, 3, SEED));
	EXPECT_EQ(-1, check_hp(m2, 1, SEED));
	EXPECT_EQ(0, ut_smaps_pmd_kb(m2));
	EXPECT_EQ(3, ut_stat(sfd, UT_STAT(requests)));
	EXPECT_EQ(0, ut_poll_in(sfd, 0));
}

#define NTHREADS 16

/*
 * 4. Sixteen threads fault on sixteen different pieces of one missing
 * huge page (reads and writes of the data the page will hold): exactly
 * one request; one COPY releases them all, each with the right data.
 */
TEST_F_TIMEOUT(huge, many_threads_one_page, TIMEOUT_S)
{
	struct ut_toucher *t;
	struct umem_request req;
	struct umem_stats st;
	unsigned int i;
	bool any_done = false;
	int sfd;

	t = calloc(NTHREADS, sizeof(*t));
	ASSERT_NE(NULL, t);
	ASSERT_EQ(0, setup_region(self, SZ));
	sfd = self->r.server_fd;

	for (i = 0; i < NTHREADS; i++) {
		uint64_t off = HP(2) + PC(i * 32 + 3) + 8 * i;

		/* A writer writes what the page will hold anyway. */
		ASSERT_EQ(0, ut_toucher_start(&t[i], self->map + off, i % 4 == 3,
					      ut_pattern_word(off, SEED)));
	}
	ASSERT_EQ(0, ut_wait_stat(sfd, UT_STAT(waiting), NTHREADS, UT_WAIT_MS))
		TH_LOG("waiting %llu of %d",
		       (unsigned long long)ut_stat(sfd, UT_STAT(waiting)),
		       NTHREADS);
	read_one(_metadata, sfd, HP(2), &req);
	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(1, st.requests);
	EXPECT_EQ(0, st.requests_pending);
	EXPECT_GE(st.faults, NTHREADS);
	EXPECT_EQ(NTHREADS, st.waiting);
	EXPECT_EQ(0, st.pages_present);
	for (i = 0; i < NTHREADS; i++)
		any_done |= atomic_load(&t[i].done);
	EXPECT_FALSE(any_done) TH_LOG("a thread returned from a missing page");

	ASSERT_EQ(0, install(self, 2, 1, SEED));
	for (i = 0; i < NTHREADS; i++) {
		uint64_t off = HP(2) + PC(i * 32 + 3) + 8 * i;

		ASSERT_EQ(0, ut_toucher_join(&t[i], UT_WAIT_MS))
			TH_LOG("thread %u never woke", i);
		EXPECT_EQ(ut_pattern_word(off, SEED), t[i].seen);
		EXPECT_EQ(-1, ut_check(t[i].page, off & ~(UT_PAGE - 1), UT_PAGE,
				       SEED)) TH_LOG("thread %u", i);
	}
	EXPECT_EQ(-1, check_hp(self->map, 2, SEED));
	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(1, st.requests);
	EXPECT_EQ(0, st.requests_pending);
	EXPECT_EQ(0, st.waiting);
	EXPECT_EQ(1, st.installed);
	EXPECT_EQ(1, st.pages_present);
	EXPECT_GE(st.faults, NTHREADS);
	EXPECT_LT(0, st.wait_ns_max);
	EXPECT_EQ(0, ut_poll_in(sfd, 0));
	free(t);
}

/*
 * 5. PMD mappings: at a 2 MiB aligned address (node or server fd, offset
 * 0) each present page that is touched is mapped by one PMD: 2048 kB
 * with page 0 only, the whole region once all are; a mapping off the
 * grid (address or file offset 4 KiB off) reads the same data with no PMD.
 */
TEST_F_TIMEOUT(huge, pmd_mapping, TIMEOUT_S)
{
	char *m2, *m3, *m4, *m5;
	int sfd;

	ASSERT_EQ(0, setup_region(self, SZ));
	sfd = self->r.server_fd;

	ASSERT_EQ(0, install(self, 0, 1, SEED));
	EXPECT_EQ(ut_pattern_word(PC(100), SEED),
		  *(volatile uint64_t *)(self->map + PC(100)));
	touch(self->map, 0, 1);
	EXPECT_EQ(-1, check_hp(self->map, 0, SEED));
	EXPECT_EQ(HPAGE_KB, ut_smaps_pmd_kb(self->map))
		TH_LOG("page 0 present and touched: ShmemPmdMapped %ld, "
		       "FilePmdMapped %ld, Rss %ld kB",
		       ut_smaps_kb(self->map, "ShmemPmdMapped"),
		       ut_smaps_kb(self->map, "FilePmdMapped"),
		       ut_smaps_kb(self->map, "Rss"));

	/* Pages 1-3 in one COPY. */
	ASSERT_EQ(0, install(self, 1, NHP - 1, SEED));
	touch(self->map, 0, NHP);
	EXPECT_EQ(-1, ut_check(self->map, 0, SZ, SEED));
	EXPECT_EQ(SZ_KB, ut_smaps_pmd_kb(self->map))
		TH_LOG("all present and touched: ShmemPmdMapped %ld, "
		       "FilePmdMapped %ld, Rss %ld kB",
		       ut_smaps_kb(self->map, "ShmemPmdMapped"),
		       ut_smaps_kb(self->map, "FilePmdMapped"),
		       ut_smaps_kb(self->map, "Rss"));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));

	/* Address 4 KiB off the grid, offset 0. */
	m2 = map_at(self, self->r.node_fd, SZ, 0, UT_PAGE);
	ASSERT_NE(MAP_FAILED, m2);
	EXPECT_EQ(-1, ut_check(m2, 0, SZ, SEED));
	EXPECT_EQ(0, ut_smaps_pmd_kb(m2));

	/* Aligned address, file offset 4 KiB. */
	m3 = map_at(self, self->r.node_fd, SZ - UT_PAGE, UT_PAGE, 0);
	ASSERT_NE(MAP_FAILED, m3);
	EXPECT_EQ(-1, ut_check(m3, UT_PAGE, SZ - UT_PAGE, SEED));
	EXPECT_EQ(0, ut_smaps_pmd_kb(m3));

	/* The server fd, aligned. */
	m4 = map_at(self, sfd, SZ, 0, 0);
	ASSERT_NE(MAP_FAILED, m4);
	touch(m4, 0, NHP);
	EXPECT_EQ(-1, ut_check(m4, 0, SZ, SEED));
	EXPECT_EQ(SZ_KB, ut_smaps_pmd_kb(m4));

	EXPECT_EQ(SZ_KB, ut_smaps_pmd_kb(self->map));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));

	/*
	 * No address hint, as a VMM maps a node: the module's
	 * ->get_unmapped_area places it 2 MiB aligned, so it is PMD-mapped
	 * without the caller aligning anything.
	 */
	m5 = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED,
		  self->r.node_fd, 0);
	ASSERT_NE(MAP_FAILED, m5);
	EXPECT_EQ(0, (uintptr_t)m5 & (HPAGE - 1))
		TH_LOG("unhinted mmap of the node at %p", m5);
	touch(m5, 0, NHP);
	EXPECT_EQ(-1, ut_check(m5, 0, SZ, SEED));
	EXPECT_EQ(SZ_KB, ut_smaps_pmd_kb(m5));
	munmap(m5, SZ);
}

/*
 * 6. UMEM_DISCARD of a present, PMD-mapped huge page: its PMD goes, the
 * next access to any piece requests it once at its 2 MiB offset and
 * blocks, the other pages keep their data and PMDs, and what is installed
 * next is what is read (mapped by a PMD again).
 */
TEST_F_TIMEOUT(huge, discard, TIMEOUT_S)
{
	struct umem_request req;
	struct ut_toucher t;
	int64_t zeroed;
	int sfd;

	ASSERT_EQ(0, setup_region(self, SZ));
	sfd = self->r.server_fd;
	ASSERT_EQ(0, install(self, 0, NHP, SEED));
	touch(self->map, 0, NHP);
	EXPECT_EQ(SZ_KB, ut_smaps_pmd_kb(self->map));

	ASSERT_EQ(0, ut_discard(sfd, HP(1), HPAGE));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(discarded)));
	EXPECT_EQ(NHP - 1, ut_stat(sfd, UT_STAT(pages_present)));
	EXPECT_EQ(SZ_KB - HPAGE_KB, ut_smaps_pmd_kb(self->map));
	EXPECT_EQ(-1, check_hp(self->map, 0, SEED));
	EXPECT_EQ(-1, check_hp(self->map, 2, SEED));
	EXPECT_EQ(-1, check_hp(self->map, 3, SEED));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));

	ASSERT_EQ(0, ut_toucher_start(&t, self->map + HP(1) + PC(77) + 16,
				      false, 0));
	read_one(_metadata, sfd, HP(1), &req);
	expect_waiting(_metadata, sfd, &t, 1);
	ASSERT_EQ(0, install(self, 1, 1, SEED2));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(ut_pattern_word(HP(1) + PC(77) + 16, SEED2), t.seen);
	EXPECT_EQ(-1, check_hp(self->map, 1, SEED2));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(requests)));
	EXPECT_EQ(NHP, ut_stat(sfd, UT_STAT(pages_present)));
	EXPECT_EQ(SZ_KB, ut_smaps_pmd_kb(self->map))
		TH_LOG("the reinstalled page is not mapped by a PMD again");

	/* Two pages at once; one of them is requested and zeroed. */
	ASSERT_EQ(0, ut_discard(sfd, HP(2), 2 * HPAGE));
	EXPECT_EQ(3, ut_stat(sfd, UT_STAT(discarded)));
	EXPECT_EQ(NHP - 2, ut_stat(sfd, UT_STAT(pages_present)));
	EXPECT_EQ(SZ_KB - 2 * HPAGE_KB, ut_smaps_pmd_kb(self->map));
	/* Discarding missing pages changes nothing. */
	EXPECT_EQ(0, ut_discard(sfd, HP(2), 2 * HPAGE));
	EXPECT_EQ(3, ut_stat(sfd, UT_STAT(discarded)));
	ASSERT_EQ(0, ut_toucher_start(&t, self->map + HP(3) + PC(1), true, 7));
	read_one(_metadata, sfd, HP(3), &req);
	EXPECT_EQ(UMEM_REQ_WRITE, req.flags);
	expect_waiting(_metadata, sfd, &t, 1);
	ASSERT_EQ(0, ut_zero(sfd, HP(3), HPAGE, &zeroed));
	EXPECT_EQ((int64_t)HPAGE, zeroed);
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(7, *(uint64_t *)(self->map + HP(3) + PC(1)));
	EXPECT_EQ(-1, ut_check_zero(self->map + HP(3), PC(1)));
	EXPECT_EQ(-1, ut_check_zero(self->map + HP(3) + PC(1) + 8,
				    HPAGE - PC(1) - 8));
	EXPECT_EQ(-1, check_hp(self->map, 0, SEED));
	EXPECT_EQ(-1, check_hp(self->map, 1, SEED2));
	EXPECT_EQ(2, ut_stat(sfd, UT_STAT(requests)));
	EXPECT_EQ(NHP - 1, ut_stat(sfd, UT_STAT(pages_present)));
}

/* ---- 7: installs racing faults ---- */

#define RACE_NHP	8
#define RACE_SZ		(RACE_NHP * HPAGE)
#define RACE_THREADS	8

enum race_how { R_COPY, R_VEC, R_ZERO, R_PWRITE };

/* Pages 0-2, 7: COPY; 3-4: COPY_VEC; 5: ZERO; 6: pwrite + MARK_PRESENT. */
static enum race_how race_how(uint64_t page)
{
	static const enum race_how how[RACE_NHP] = {
		R_COPY, R_COPY, R_COPY, R_VEC, R_VEC, R_ZERO, R_PWRITE, R_COPY,
	};

	return how[page % RACE_NHP];
}

static uint64_t race_word(uint64_t off)
{
	return race_how(off / HPAGE) == R_ZERO ? 0 : ut_pattern_word(off, SEED);
}

struct race_ctx {
	uint64_t *buf;			/* HPAGE, the daemon's */
	atomic_int misaligned;
	atomic_int short_ops;		/* copied/handled/pwrite short */
};

static int race_handler(struct ut_daemon *d, const struct umem_request *req)
{
	struct race_ctx *ctx = d->priv;
	struct umem_copy_entry e;
	uint64_t off = req->offset, handled = 0, marked = 0;
	int64_t done = 0;
	ssize_t n;
	int ret;

	if (off % HPAGE) {
		atomic_fetch_add(&ctx->misaligned, 1);
		off &= ~(HPAGE - 1);	/* serve it anyway: no hang */
	}
	ut_fill(ctx->buf, off, HPAGE, d->seed);
	switch (race_how(off / HPAGE)) {
	case R_COPY:
		ret = ut_copy(d->server_fd, off, ctx->buf, HPAGE, &done);
		if (!ret && done != (int64_t)HPAGE)
			atomic_fetch_add(&ctx->short_ops, 1);
		return ret;
	case R_VEC:
		e.offset = off;
		e.src = (uintptr_t)ctx->buf;
		e.result = UNTOUCHED;
		ret = ut_copy_vec(d->server_fd, &e, 1, &handled);
		if (!ret && handled != 1)
			atomic_fetch_add(&ctx->short_ops, 1);
		return ret ? ret : (int)e.result;
	case R_ZERO:
		ret = ut_zero(d->server_fd, off, HPAGE, &done);
		if (!ret && done != (int64_t)HPAGE)
			atomic_fetch_add(&ctx->short_ops, 1);
		return ret;
	case R_PWRITE:
		n = pwrite(d->server_fd, ctx->buf, HPAGE, (off_t)off);
		if (n < 0)
			return -errno;
		if (n != (ssize_t)HPAGE)
			atomic_fetch_add(&ctx->short_ops, 1);
		ret = ut_mark_present(d->server_fd, &off, 1, &marked);
		if (!ret && marked != 1)
			atomic_fetch_add(&ctx->short_ops, 1);
		return ret;
	}
	return -EINVAL;
}

struct race_thread {
	pthread_t thread;
	const char *map;
	unsigned int idx;
	uint64_t bad;			/* words that did not match */
	uint64_t first_bad;		/* offset of the first one */
	atomic_int done;
};

static void *race_thread_fn(void *arg)
{
	struct race_thread *rt = arg;
	const uint64_t npieces = RACE_SZ / UT_PAGE;
	uint32_t *order = malloc(npieces * sizeof(*order));
	uint64_t i, x = 0x9e3779b97f4a7c15ULL * (rt->idx + 1);

	if (!order) {
		rt->bad = ~0ULL;
		atomic_store(&rt->done, 1);
		return NULL;
	}
	for (i = 0; i < npieces; i++)
		order[i] = (uint32_t)i;
	for (i = npieces - 1; i > 0; i--) {	/* Fisher-Yates, xorshift */
		uint64_t j;
		uint32_t tmp;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = x % (i + 1);
		tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
	for (i = 0; i < npieces; i++) {
		uint64_t base = PC(order[i]);
		uint64_t off = base + (rt->idx * 8 + i * 64) % UT_PAGE;
		volatile uint64_t *w = (volatile uint64_t *)(rt->map + off);
		uint64_t want = race_word(off), got;

		/* Thread 0 writes on every other piece: write faults. */
		if (rt->idx == 0 && (i & 1)) {
			*w = want;
			got = *w;
		} else {
			got = *w;
		}
		if (got != want ||
		    *(volatile uint64_t *)(rt->map + base + UT_PAGE - 8) !=
		    race_word(base + UT_PAGE - 8)) {
			if (!rt->bad++)
				rt->first_bad = off;
		}
	}
	free(order);
	atomic_store(&rt->done, 1);
	return NULL;
}

/*
 * 7. Eight threads touch every piece of every page of a 16 MiB region in
 * their own random order while the daemon thread serves the requests
 * (COPY, COPY_VEC, ZERO or pwrite + MARK_PRESENT by page): each page is
 * requested once at its 2 MiB offset, nothing hangs, all data is right.
 */
TEST_F_TIMEOUT(huge, installs_race_faults, 240)
{
	static struct race_thread rt[RACE_THREADS];
	struct race_ctx ctx = { 0 };
	struct timespec ts;
	struct umem_stats st;
	unsigned int i;
	uint64_t p;
	int sfd;

	ctx.buf = aligned_alloc(HPAGE, HPAGE);
	ASSERT_NE(NULL, ctx.buf);
	ASSERT_EQ(0, setup_region(self, RACE_SZ));
	sfd = self->r.server_fd;
	ut_daemon_init(&self->d, sfd, RACE_SZ, SEED);
	self->d.handler = race_handler;
	self->d.priv = &ctx;
	self->d.batch = 8;
	ASSERT_EQ(0, ut_daemon_start(&self->d));

	for (i = 0; i < RACE_THREADS; i++) {
		memset(&rt[i], 0, sizeof(rt[i]));
		rt[i].map = self->map;
		rt[i].idx = i;
		ASSERT_EQ(0, pthread_create(&rt[i].thread, NULL, race_thread_fn,
					    &rt[i]));
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 120;
	for (i = 0; i < RACE_THREADS; i++) {
		ASSERT_EQ(0, pthread_timedjoin_np(rt[i].thread, NULL, &ts))
			TH_LOG("thread %u still running after 120 s "
			       "(pages present %llu, waiting %llu)", i,
			       (unsigned long long)ut_stat(sfd, UT_STAT(pages_present)),
			       (unsigned long long)ut_stat(sfd, UT_STAT(waiting)));
		EXPECT_EQ(0, rt[i].bad)
			TH_LOG("thread %u: %llu bad words, first at %#llx", i,
			       (unsigned long long)rt[i].bad,
			       (unsigned long long)rt[i].first_bad);
	}
	EXPECT_EQ(0, ut_daemon_stop(&self->d));
	EXPECT_EQ(RACE_NHP, self->d.requests);
	EXPECT_EQ(RACE_NHP, self->d.installed);
	EXPECT_EQ(0, self->d.duplicates);
	EXPECT_EQ(0, self->d.bad_records);
	EXPECT_EQ(0, atomic_load(&ctx.misaligned));
	EXPECT_EQ(0, atomic_load(&ctx.short_ops));
	for (p = 0; p < RACE_NHP; p++) {
		EXPECT_EQ(1, ut_daemon_seen(&self->d, HP(p)))
			TH_LOG("page %llu", (unsigned long long)p);
		if (race_how(p) == R_ZERO) {
			EXPECT_EQ(-1, ut_check_zero(self->map + HP(p), HPAGE));
		} else {
			EXPECT_EQ(-1, check_hp(self->map, p, SEED))
				TH_LOG("page %llu", (unsigned long long)p);
		}
	}
	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(RACE_NHP, st.pages_present);
	EXPECT_EQ(RACE_NHP, st.requests);
	EXPECT_EQ(RACE_NHP, st.installed);
	EXPECT_EQ(0, st.waiting);
	EXPECT_EQ(0, st.requests_pending);
	EXPECT_EQ(0, st.alloc_failed);
	TH_LOG("%llu faults, %ld kB of %ld PMD-mapped",
	       (unsigned long long)st.faults, ut_smaps_pmd_kb(self->map),
	       (long)(RACE_SZ >> 10));
	free(ctx.buf);
}

/* ---- 8: allocation failure ---- */

/*
 * The knob must exist, be writable and not be "deny" already (else SKIP,
 * before anything can block); saved into self->old_knob.
 */
#define NEED_KNOB()							\
	do {								\
		if (access(THP_SHMEM, F_OK))				\
			SKIP(return, "%s absent: no shmem THP on this "	\
			     "kernel, allocation failure cannot be provoked",\
			     THP_SHMEM);				\
		if (access(THP_SHMEM, W_OK))				\
			SKIP(return, "%s not writable (not root?)",	\
			     THP_SHMEM);				\
		ASSERT_EQ(0, ut_thp_shmem_read(self->old_knob,			\
				       sizeof(self->old_knob)));	\
		if (!strcmp(self->old_knob, "deny"))			\
			SKIP(return, "%s is already \"deny\": 2 MiB "	\
			     "folios cannot succeed after the test",	\
			     THP_SHMEM);				\
	} while (0)

/* shmem_enabled = deny; the teardown (and the exit handler) restore it. */
#define DENY_HUGE()							\
	do {								\
		self->knob_changed = true;				\
		ASSERT_EQ(0, ut_thp_shmem_set("deny"));				\
	} while (0)

#define RESTORE_HUGE()							\
	do {								\
		ASSERT_EQ(0, ut_thp_shmem_set(self->old_knob))			\
			TH_LOG("restoring %s", self->old_knob);		\
		self->knob_changed = false;				\
	} while (0)

/*
 * 8. With shmem_enabled = deny no 2 MiB folio can be had: UMEM_COPY,
 * UMEM_ZERO and a COPY_VEC entry fail with ENOMEM, count in alloc_failed,
 * install nothing (a waiter keeps waiting, a page not yet faulted is
 * requested when it is, pages_present stays 0, no 4 KiB fallback).  Once
 * the old value is back the same installs succeed with the right data.
 */
TEST_F_TIMEOUT(huge, alloc_failure, TIMEOUT_S)
{
	struct umem_copy_entry e;
	struct umem_request req;
	struct ut_toucher t1, t2;
	struct umem_stats st0, st;
	uint64_t handled, af;
	int64_t out;
	int sfd;

	NEED_KNOB();
	ASSERT_EQ(0, setup_region(self, SZ));
	sfd = self->r.server_fd;

	/* A waiter on page 1 before the folios run out. */
	ASSERT_EQ(0, ut_toucher_start(&t1, self->map + HP(1) + PC(9) + 40,
				      false, 0));
	read_one(_metadata, sfd, HP(1), &req);
	expect_waiting(_metadata, sfd, &t1, 1);
	ASSERT_EQ(0, ut_stats(sfd, &st0));
	EXPECT_EQ(0, st0.alloc_failed);

	DENY_HUGE();

	ut_fill(self->buf, 0, SZ, SEED);
	out = UNTOUCHED;
	EXPECT_EQ(-ENOMEM, ut_copy(sfd, HP(1), (char *)self->buf + HP(1), HPAGE,
				   &out));
	EXPECT_EQ(-ENOMEM, out);
	af = ut_stat(sfd, UT_STAT(alloc_failed));
	EXPECT_LT(st0.alloc_failed, af);
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(pages_present)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(installed)));
	ut_sleep_ms(BLOCK_MS);
	expect_waiting(_metadata, sfd, &t1, 1);
	EXPECT_EQ(0, ut_poll_in(sfd, 0)) TH_LOG("page 1 requested again");

	/* A page nobody faulted on yet. */
	out = UNTOUCHED;
	EXPECT_EQ(-ENOMEM, ut_copy(sfd, HP(2), (char *)self->buf + HP(2), HPAGE,
				   &out));
	EXPECT_EQ(-ENOMEM, out);
	EXPECT_LT(af, ut_stat(sfd, UT_STAT(alloc_failed)));
	af = ut_stat(sfd, UT_STAT(alloc_failed));

	out = UNTOUCHED;
	EXPECT_EQ(-ENOMEM, ut_zero(sfd, HP(3), HPAGE, &out));
	EXPECT_EQ(-ENOMEM, out);
	EXPECT_LT(af, ut_stat(sfd, UT_STAT(alloc_failed)));
	af = ut_stat(sfd, UT_STAT(alloc_failed));

	e = (struct umem_copy_entry){ 0, (uintptr_t)self->buf, UNTOUCHED };
	handled = UNTOUCHED;
	EXPECT_EQ(0, ut_copy_vec(sfd, &e, 1, &handled));
	EXPECT_EQ(1, handled);
	EXPECT_EQ(-ENOMEM, e.result);
	EXPECT_LT(af, ut_stat(sfd, UT_STAT(alloc_failed)));
	af = ut_stat(sfd, UT_STAT(alloc_failed));

	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(0, st.pages_present);
	EXPECT_EQ(0, st.installed);
	EXPECT_EQ(1, st.requests);

	/* Page 2 is still missing: a fault on it requests it. */
	ASSERT_EQ(0, ut_toucher_start(&t2, self->map + HP(2) + PC(0), false, 0));
	read_one(_metadata, sfd, HP(2), &req);
	expect_waiting(_metadata, sfd, &t2, 2);
	EXPECT_EQ(0, atomic_load(&t1.done));
	EXPECT_EQ(0, ut_smaps_pmd_kb(self->map));

	RESTORE_HUGE();

	ASSERT_EQ(0, ut_copy(sfd, HP(1), (char *)self->buf + HP(1), HPAGE, &out));
	EXPECT_EQ((int64_t)HPAGE, out);
	ASSERT_EQ(0, ut_toucher_join(&t1, UT_WAIT_MS));
	EXPECT_EQ(ut_pattern_word(HP(1) + PC(9) + 40, SEED), t1.seen);
	ASSERT_EQ(0, ut_copy(sfd, HP(2), (char *)self->buf + HP(2), HPAGE, &out));
	ASSERT_EQ(0, ut_toucher_join(&t2, UT_WAIT_MS));
	EXPECT_EQ(ut_pattern_word(HP(2), SEED), t2.seen);
	ASSERT_EQ(0, ut_zero(sfd, HP(3), HPAGE, &out));
	EXPECT_EQ((int64_t)HPAGE, out);
	e = (struct umem_copy_entry){ 0, (uintptr_t)self->buf, UNTOUCHED };
	EXPECT_EQ(0, ut_copy_vec(sfd, &e, 1, &handled));
	EXPECT_EQ(0, e.result);

	EXPECT_EQ(-1, check_hp(self->map, 0, SEED));
	EXPECT_EQ(-1, check_hp(self->map, 1, SEED));
	EXPECT_EQ(-1, check_hp(self->map, 2, SEED));
	EXPECT_EQ(-1, ut_check_zero(self->map + HP(3), HPAGE));
	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(NHP, st.pages_present);
	EXPECT_EQ(NHP, st.installed);
	EXPECT_EQ(2, st.requests);
	EXPECT_EQ(af, st.alloc_failed);
	EXPECT_EQ(0, st.waiting);
	EXPECT_EQ(0, ut_poll_in(sfd, 0));
	touch(self->map, 0, NHP);
	TH_LOG("alloc_failed %llu; after restoring \"%s\": %ld kB PMD-mapped",
	       (unsigned long long)af, self->old_knob, ut_smaps_pmd_kb(self->map));
}

/*
 * 8b. pwrite() of 2 MiB + MARK_PRESENT while no 2 MiB folio can be had:
 * the pwrite may fail with ENOMEM or land in small folios, but the page
 * is never marked present (MARK_PRESENT: ENOMEM, alloc_failed counts);
 * it stays missing and a later UMEM_COPY installs it whole.
 */
TEST_F_TIMEOUT(huge, alloc_failure_pwrite, TIMEOUT_S)
{
	struct umem_request req;
	struct ut_toucher t;
	uint64_t off = HP(2), marked;
	int64_t out;
	ssize_t n;
	int sfd;

	NEED_KNOB();
	ASSERT_EQ(0, setup_region(self, SZ));
	sfd = self->r.server_fd;
	DENY_HUGE();

	ut_fill(self->buf, 0, SZ, SEED2);	/* what pwrite leaves */
	n = pwrite(sfd, (char *)self->buf + HP(2), HPAGE, (off_t)HP(2));
	TH_LOG("pwrite of 2 MiB with shmem_enabled=deny: %zd (%s)", n,
	       n < 0 ? strerror(errno) : "ok");
	EXPECT_TRUE(n == (ssize_t)HPAGE || (n < 0 && errno == ENOMEM) ||
		    (n >= 0 && n < (ssize_t)HPAGE));
	marked = UNTOUCHED;
	EXPECT_EQ(-ENOMEM, ut_mark_present(sfd, &off, 1, &marked));
	EXPECT_EQ(0, marked);
	EXPECT_LT(0, ut_stat(sfd, UT_STAT(alloc_failed)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(pages_present)));

	RESTORE_HUGE();

	ASSERT_EQ(0, ut_toucher_start(&t, self->map + HP(2) + PC(33), false, 0));
	read_one(_metadata, sfd, HP(2), &req);
	expect_waiting(_metadata, sfd, &t, 1);
	ut_fill(self->buf, 0, SZ, SEED);
	ASSERT_EQ(0, ut_copy(sfd, HP(2), (char *)self->buf + HP(2), HPAGE, &out));
	EXPECT_EQ((int64_t)HPAGE, out);
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(ut_pattern_word(HP(2) + PC(33), SEED), t.seen);
	EXPECT_EQ(-1, check_hp(self->map, 2, SEED));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(pages_present)));
	touch(self->map, 2, 1);
	EXPECT_EQ(HPAGE_KB, ut_smaps_pmd_kb(self->map));
}

/*
 * 9. munmap() of the second half of a PMD-mapped huge page, mprotect()
 * of half of another: the PMDs are split, every byte still reads right,
 * the protection holds, nothing is requested; the split page can be
 * mapped again, discarded and reinstalled.
 */
TEST_F_TIMEOUT(huge, split_pmd, TIMEOUT_S)
{
	const uint64_t half = HPAGE / 2;
	const uint64_t val = 0xa5a5a5a55a5a5a5aULL;
	struct umem_request req;
	struct ut_toucher t;
	char *hole, *m2;
	int status;
	pid_t pid;
	int sfd;

	ASSERT_EQ(0, setup_region(self, SZ));
	sfd = self->r.server_fd;
	ASSERT_EQ(0, install(self, 0, NHP, SEED));
	touch(self->map, 0, NHP);
	EXPECT_EQ(SZ_KB, ut_smaps_pmd_kb(self->map));
	m2 = map_at(self, self->r.node_fd, SZ, 0, UT_PAGE);	/* PTEs */
	ASSERT_NE(MAP_FAILED, m2);

	/* munmap the second 1 MiB of page 1. */
	hole = self->map + HP(1) + half;
	ASSERT_EQ(0, munmap(hole, half));
	EXPECT_EQ(HPAGE_KB, ut_smaps_pmd_kb(self->map))
		TH_LOG("vma [0, 3 MiB): only page 0 can stay PMD-mapped");
	EXPECT_EQ(2 * HPAGE_KB, ut_smaps_pmd_kb(self->map + HP(2)));
	EXPECT_EQ(-1, ut_check(self->map, 0, HP(1) + half, SEED));
	EXPECT_EQ(-1, ut_check(self->map + HP(2), HP(2), 2 * HPAGE, SEED));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));

	/* Map the hole again, at its own file offset. */
	ASSERT_EQ(hole, mmap(hole, half, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_FIXED, self->r.node_fd,
			     (off_t)(HP(1) + half)));
	EXPECT_EQ(-1, ut_check(hole, HP(1) + half, half, SEED));
	EXPECT_EQ(0, ut_smaps_pmd_kb(hole));

	/* mprotect the first 1 MiB of page 2 read-only. */
	ASSERT_EQ(0, mprotect(self->map + HP(2), half, PROT_READ));
	EXPECT_EQ(-1, check_hp(self->map, 2, SEED));
	EXPECT_EQ(0, ut_smaps_pmd_kb(self->map + HP(2)));
	EXPECT_EQ(HPAGE_KB, ut_smaps_pmd_kb(self->map + HP(2) + half))
		TH_LOG("vma [5 MiB, 8 MiB): page 3 stays PMD-mapped");
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		*(volatile uint64_t *)(self->map + HP(2) + 64) = val;
		_exit(0);	/* the write went through: wrong */
	}
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV)
		TH_LOG("a write to the read-only half: status %#x", status);
	/* The writable half takes writes, seen through the other mapping. */
	*(volatile uint64_t *)(self->map + HP(2) + half + 64) = val;
	EXPECT_EQ(val, *(volatile uint64_t *)(m2 + HP(2) + half + 64));
	*(volatile uint64_t *)(self->map + HP(2) + half + 64) =
		ut_pattern_word(HP(2) + half + 64, SEED);
	ASSERT_EQ(0, mprotect(self->map + HP(2), half, PROT_READ | PROT_WRITE));
	EXPECT_EQ(-1, ut_check(m2, 0, SZ, SEED));
	EXPECT_EQ(-1, ut_check(self->map, 0, HP(1) + half, SEED));
	EXPECT_EQ(-1, ut_check(hole, HP(1) + half, half, SEED));
	EXPECT_EQ(-1, ut_check(self->map + HP(2), HP(2), 2 * HPAGE, SEED));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests)));

	/* The split page 1, mapped by two vmas and m2: discard, reinstall. */
	ASSERT_EQ(0, ut_discard(sfd, HP(1), HPAGE));
	ASSERT_EQ(0, ut_toucher_start(&t, hole + PC(3), false, 0));
	read_one(_metadata, sfd, HP(1), &req);
	expect_waiting(_metadata, sfd, &t, 1);
	ASSERT_EQ(0, install(self, 1, 1, SEED2));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(ut_pattern_word(HP(1) + half + PC(3), SEED2), t.seen);
	EXPECT_EQ(-1, ut_check(self->map + HP(1), HP(1), half, SEED2));
	EXPECT_EQ(-1, ut_check(hole, HP(1) + half, half, SEED2));
	EXPECT_EQ(-1, check_hp(m2, 1, SEED2));
	EXPECT_EQ(-1, check_hp(self->map, 0, SEED));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(requests)));
}

/*
 * 10. fork(): the child of the process that has the region PMD-mapped
 * reads the same data (the mapping is shared), gets PMDs of its own at
 * the same aligned address, its writes are the parent's, and its fault
 * on a missing page is requested (with its tid) and served.
 */
struct fork_result {
	long bad;		/* first bad offset + 1, or 0 */
	long pmd_kb;		/* child's PMD-mapped kB after touching 0-2 */
	long pmd_kb_end;	/* ... after page 3 arrived */
	uint64_t page3_word;
};

TEST_F_TIMEOUT(huge, fork_child, TIMEOUT_S)
{
	const uint64_t woff = HP(1) + PC(5) + 8;
	const uint64_t val = 0x1122334455667788ULL;
	struct fork_result *res;
	struct umem_request req;
	int status;
	pid_t pid;
	int sfd;

	res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, res);
	memset(res, 0, sizeof(*res));
	ASSERT_EQ(0, setup_region(self, SZ));
	sfd = self->r.server_fd;
	ASSERT_EQ(0, install(self, 0, NHP - 1, SEED));
	touch(self->map, 0, NHP - 1);
	EXPECT_EQ(3 * HPAGE_KB, ut_smaps_pmd_kb(self->map));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		long bad;

		alarm(60);
		touch(self->map, 0, NHP - 1);
		bad = ut_check(self->map, 0, HP(NHP - 1), SEED);
		res->bad = bad < 0 ? 0 : bad + 1;
		res->pmd_kb = ut_smaps_pmd_kb(self->map);
		*(volatile uint64_t *)(self->map + woff) = val;
		/* Page 3 is missing: requested, served by the parent. */
		res->page3_word = *(volatile uint64_t *)(self->map + HP(3) +
							 PC(200));
		if (!res->bad && ut_check(self->map + HP(3), HP(3), HPAGE, SEED) != -1)
			res->bad = (long)HP(3) + 1;
		res->pmd_kb_end = ut_smaps_pmd_kb(self->map);
		_exit(0);
	}
	read_one(_metadata, sfd, HP(3), &req);
	EXPECT_EQ(pid, (pid_t)req.tid);
	ASSERT_EQ(0, install(self, 3, 1, SEED));
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS)) {
		ut_kill_reap(pid);
	}
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child status %#x", status);
	EXPECT_EQ(0, res->bad) TH_LOG("child: first bad byte at %#lx",
				      res->bad - 1);
	EXPECT_EQ(3 * HPAGE_KB, res->pmd_kb)
		TH_LOG("child: pages 0-2 not PMD-mapped in the child");
	EXPECT_EQ(ut_pattern_word(HP(3) + PC(200), SEED), res->page3_word);
	TH_LOG("child: %ld kB PMD-mapped at the end", res->pmd_kb_end);
	EXPECT_EQ(val, *(volatile uint64_t *)(self->map + woff));
	EXPECT_EQ(-1, ut_check(self->map, 0, woff, SEED));
	EXPECT_EQ(-1, ut_check(self->map + woff + 8, woff + 8, SZ - woff - 8,
			       SEED));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(requests)));
	munmap(res, sizeof(*res));
}

/*
 * Issue 13's second level, 4 KiB-first arrival inside a 2 MiB page (the
 * touched piece installed and PTE-mapped first, the page collapsed to a
 * PMD in place once complete), is not built: 6.1 and 6.12 export no way
 * for a module to PTE-map one piece of a PMD-order page-cache folio
 * outside VM_MIXEDMAP, nor to retract a PTE table into a PMD
 * (Documentation/design.rst, "2 MiB pages").  There is no ABI for it, so
 * this case can only say so, as an explicit skip, until there is.
 */
TEST_F(huge, piece_first_arrival)
{
	SKIP(return, "4 KiB-first arrival in 2 MiB pages is not implemented "
	     "(no ABI; see Documentation/design.rst, \"2 MiB pages\")");
}

TEST_HARNESS_MAIN
