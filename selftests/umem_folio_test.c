// SPDX-License-Identifier: GPL-2.0
/*
 * Large folios in a region's backing.
 *
 * The backing is shmem: with /sys/kernel/mm/transparent_hugepage/
 * shmem_enabled at always, within_size or force, an install into an empty
 * 2 MiB-aligned extent of the file allocates one 2 MiB folio for all of
 * it, although only the installed pages are present.  The fault path must
 * work on such folios: a fault on a present page (head or tail) maps that
 * page only (never a PMD over missing pages, which would read zeros
 * without a request), a fault on a missing page of the folio blocks and is
 * requested like any other, and a discard of one page inside the folio
 * makes exactly that page missing again.  Once all 512 pages of a folio
 * are present the core may map it with a PMD (allowed, not asserted).
 *
 * Every test runs for each shmem_enabled value (the fixture variant): the
 * knob is set in the setup and restored by a teardown that runs in the
 * parent of the test process (FIXTURE_TEARDOWN_PARENT), so that a crash
 * of the test cannot leave it changed, and once more at exit.  For the
 * values that must give huge folios (always, within_size, force) a test
 * that finds none (fragmentation) SKIPs saying so.  Whether a page of the
 * backing is part of a large folio is read from /proc/kpageflags through
 * /proc/self/pagemap (root sees PFNs); /proc/meminfo's ShmemHugePages is
 * logged as a second opinion.  After each test the global ShmemPmdMapped
 * must be back where it was and the kernel must not have found a bad page:
 * a PMD mapping of the backing that is taken down without its rmap,
 * refcount and RSS accounting leaks the folio.
 *
 * Every test has a timeout: the old fault path looped forever on a tail
 * page, and a hang must be a failure, not a stuck run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "umem_test.h"

#define THP_SHMEM	UT_THP_SHMEM
#define HPAGE		(2UL << 20)
#define HPAGE_NR	(HPAGE / UT_PAGE)	/* 512 */
#define SZ		(4 * HPAGE)		/* 8 MiB: four extents */
#define SZ_ODD		(HPAGE + 3 * UT_PAGE)	/* 2 MiB + 12 KiB */
#define SEED		0x7a
#define SEED2		0x3c1
#define PG(n)		((uint64_t)(n) * UT_PAGE)
/*
 * A blocked task must still be blocked after this long.  By then its
 * request has been read and UMEM_STATS counts it waiting; a task that was
 * let through (a zero page mapped over a missing one) returns in well
 * under a millisecond, even under TCG.
 */
#define BLOCK_MS	250
#define TIMEOUT_S	240

/* /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h). */
#define KPF_COMPOUND_HEAD	15
#define KPF_COMPOUND_TAIL	16
#define KPF_THP			22

/* ---------------------------------------------------------- the knob */

static void __attribute__((constructor)) knob_guard(void)
{
	ut_thp_shmem_guard();
}

/* ------------------------------------------------------- inspection */

/*
 * /proc/kpageflags of the page mapped at @addr (it must be mapped: touch
 * it first); 0 or -errno.
 */
static int page_kflags(const void *addr, uint64_t *flags, uint64_t *pfn)
{
	uint64_t ent;
	int fd, ret = 0;

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (pread(fd, &ent, sizeof(ent),
		  (off_t)((uintptr_t)addr / UT_PAGE * sizeof(ent))) != sizeof(ent))
		ret = -EIO;
	close(fd);
	if (ret)
		return ret;
	if (!(ent >> 63))
		return -ENOENT;		/* not mapped */
	*pfn = ent & ((1ULL << 55) - 1);
	if (!*pfn)
		return -EPERM;		/* PFNs hidden */
	fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (pread(fd, flags, sizeof(*flags), (off_t)(*pfn * 8)) != 8)
		ret = -EIO;
	close(fd);
	return ret;
}

/* 1: the page at @addr belongs to a large folio, 0: it does not, -errno. */
static int page_in_large_folio(const void *addr)
{
	uint64_t flags, pfn;
	int ret = page_kflags(addr, &flags, &pfn);

	if (ret)
		return ret;
	return !!(flags & ((1ULL << KPF_COMPOUND_HEAD) |
			   (1ULL << KPF_COMPOUND_TAIL)));
}

/* A "Key:   N kB" line of /proc/self/status, or -errno. */
/*
 * 6.1 keeps part of a task's RSS in a per-task cache (SPLIT_RSS_COUNTING)
 * that reaches the mm's counters, which /proc/self/status shows, only
 * once the task has taken 64 page faults since the last sync: take 128
 * (small pages, so one per page) first.  Later kernels count per CPU
 * and show the sum; there this costs 128 faults.
 */
static void rss_sync(void)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE), len = 128 * ps;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	madvise(p, len, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < len; i += ps)
		((volatile char *)p)[i] = 1;
	munmap(p, len);
}

static long status_kb(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long v = -ENOENT;
	FILE *f;

	rss_sync();
	f = fopen("/proc/self/status", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
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

#define TAINT_BAD_PAGE	5	/* 'B' */

/* ----------------------------------------------------------- fixture */

FIXTURE(folio) {
	/* written by the setup (test process), read by the parent's teardown */
	char old_knob[32];
	bool knob_set;

	struct ut_region r;
	char *resv;		/* PROT_NONE reservation around the mapping */
	size_t resv_len;
	char *map;		/* 2 MiB aligned */
	uint64_t size;
	long huge_kb_before;	/* ShmemHugePages before the first install */
	long pmd_kb_before;	/* ShmemPmdMapped (global) before mapping */
	long taint_before;	/* /proc/sys/kernel/tainted */
};

FIXTURE_VARIANT(folio) {
	const char *knob;
	/* The backing must get 2 MiB folios inside i_size (else SKIP). */
	bool huge;
	/* ...and also for an extent that crosses the end of the file. */
	bool huge_past_eof;
};

FIXTURE_VARIANT_ADD(folio, never) { .knob = "never" };
FIXTURE_VARIANT_ADD(folio, always) {
	.knob = "always", .huge = true, .huge_past_eof = true,
};
FIXTURE_VARIANT_ADD(folio, within_size) { .knob = "within_size", .huge = true };
/* advise: the backing is allocated with no vma, so no huge folio. */
FIXTURE_VARIANT_ADD(folio, advise) { .knob = "advise" };
FIXTURE_VARIANT_ADD(folio, deny) { .knob = "deny" };
FIXTURE_VARIANT_ADD(folio, force) {
	.knob = "force", .huge = true, .huge_past_eof = true,
};

FIXTURE_SETUP(folio)
{
	char now[32];
	int err;

	self->knob_set = false;
	ut_region_clear(&self->r);
	self->resv = MAP_FAILED;
	self->map = MAP_FAILED;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	if (access(THP_SHMEM, W_OK))
		SKIP(return, "%s not writable: no THP on this kernel/CPU",
		     THP_SHMEM);
	ASSERT_EQ(0, ut_thp_shmem_read(self->old_knob, sizeof(self->old_knob)));
	/* Last step: nothing below may fail without putting it back. */
	err = ut_thp_shmem_write(variant->knob);
	if (!err)
		err = ut_thp_shmem_read(now, sizeof(now));
	if (!err && strcmp(now, variant->knob))
		err = -EIO;
	if (err)
		ut_thp_shmem_write(self->old_knob);
	ASSERT_EQ(0, err) TH_LOG("setting %s to %s", THP_SHMEM, variant->knob);
	self->knob_set = true;
}

/* Runs in the parent of the test process, even if that one crashed. */
FIXTURE_TEARDOWN_PARENT(folio)
{
	char now[32] = "";

	if (!self->knob_set)
		return;
	EXPECT_EQ(0, ut_thp_shmem_write(self->old_knob));
	EXPECT_EQ(0, ut_thp_shmem_read(now, sizeof(now)));
	EXPECT_STREQ(self->old_knob, now);
}

/*
 * Create a region of @size, map its node at a 2 MiB aligned address as
 * QEMU does (PROT_NONE reservation, MAP_FIXED | MAP_SHARED, MADV_HUGEPAGE
 * with errors tolerated).  Compacts memory first when huge folios are
 * wanted, to give the allocation its best chance.
 */
static int map_region(FIXTURE_DATA(folio) *self,
		      const FIXTURE_VARIANT(folio) *variant, uint64_t size)
{
	uintptr_t base;
	void *p;
	int err, fd;

	if (variant->huge) {
		fd = open("/proc/sys/vm/compact_memory", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!write(fd, "1", 1);	/* best effort */
			close(fd);
		}
	}
	self->huge_kb_before = ut_meminfo_kb("ShmemHugePages");
	self->pmd_kb_before = ut_meminfo_kb("ShmemPmdMapped");
	self->taint_before = tainted();
	err = ut_region_init(&self->r, size, "fol");
	if (err)
		return err;
	err = ut_region_open_node(&self->r);
	if (err)
		return err;
	self->size = size;
	self->resv_len = size + 2 * HPAGE;
	self->resv = mmap(NULL, self->resv_len, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (self->resv == MAP_FAILED)
		return -errno;
	base = ((uintptr_t)self->resv + HPAGE - 1) & ~(HPAGE - 1);
	p = mmap((void *)base, size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, self->r.node_fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	self->map = p;
	madvise(p, size, MADV_HUGEPAGE);	/* as QEMU; may fail */
	return 0;
}

static void unmap_region(FIXTURE_DATA(folio) *self)
{
	if (self->resv != MAP_FAILED)
		munmap(self->resv, self->resv_len);
	self->resv = self->map = MAP_FAILED;
	ut_region_fini(&self->r);
}

/*
 * After unmap_region(): every PMD mapping of the backing was taken down
 * with its accounting (the global ShmemPmdMapped is back), and the kernel
 * found no bad page (a folio still mapped when the backing was freed).
 */
static void check_clean(struct __test_metadata *_metadata,
			FIXTURE_DATA(folio) *self)
{
	long now = ut_meminfo_kb("ShmemPmdMapped");
	long taint = tainted();

	EXPECT_GE(self->pmd_kb_before, now)
		TH_LOG("ShmemPmdMapped %ld kB before, %ld kB after unmap and close: "
		       "a PMD mapping was dropped without its rmap/refcount",
		       self->pmd_kb_before, now);
	if (self->taint_before >= 0 && taint >= 0) {
		EXPECT_EQ(self->taint_before & (1L << TAINT_BAD_PAGE),
			  taint & (1L << TAINT_BAD_PAGE))
			TH_LOG("kernel tainted with a bad page (see dmesg)");
	}
}

static int install(FIXTURE_DATA(folio) *self, uint64_t page, uint32_t seed)
{
	return ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(page),
			       seed);
}

/* Install every missing page of [first, end) (at most one extent). */
static int install_rest(FIXTURE_DATA(folio) *self, uint64_t first,
			uint64_t end, uint32_t seed)
{
	static char buf[HPAGE];
	uint64_t p;
	int err;

	for (p = first; p < end; p++) {
		if (p - first >= HPAGE_NR)
			return -EINVAL;
		ut_fill(buf + PG(p - first), PG(p), UT_PAGE, seed);
	}
	for (p = first; p < end; p++) {
		err = ut_copy(self->r.server_fd, PG(p), buf + PG(p - first),
			      UT_PAGE, NULL);
		if (err && err != -EEXIST)
			return err;
	}
	return 0;
}

/*
 * Read page @page (present) from a thread, so that a fault path that never
 * returns shows as a failure here and not as a stuck test; the data must
 * be the pattern of @seed.  -1 ok, else the first bad byte or -errno-1000.
 */
static long read_page_bounded(FIXTURE_DATA(folio) *self, uint64_t page,
			      uint32_t seed)
{
	static struct ut_toucher t;
	int err;

	err = ut_toucher_start(&t, self->map + PG(page), false, 0);
	if (err)
		return err - 1000;
	err = ut_toucher_join(&t, UT_WAIT_MS);
	if (err)
		return err - 1000;
	return ut_check(t.page, PG(page), UT_PAGE, seed);
}

/*
 * Is the extent at @page backed by a large folio?  Reads kpageflags of the
 * (mapped) page; logs ShmemHugePages too.
 */
static int extent_is_huge(struct __test_metadata *_metadata,
			  FIXTURE_DATA(folio) *self, uint64_t page)
{
	int huge = page_in_large_folio(self->map + PG(page));

	TH_LOG("page %llu: large folio %d, ShmemHugePages %ld -> %ld kB",
	       (unsigned long long)page, huge, self->huge_kb_before,
	       ut_meminfo_kb("ShmemHugePages"));
	if (huge < 0) {
		/* No kpageflags: fall back on the global counter. */
		huge = ut_meminfo_kb("ShmemHugePages") >=
		       self->huge_kb_before + (long)(HPAGE >> 10);
	}
	return huge;
}

/*
 * Start a toucher on @page (missing) and prove it is blocked: the request
 * for @page (with the write flag for a write) is readable from the server
 * fd, UMEM_STATS counts one waiter, and the toucher has not returned after
 * BLOCK_MS.  Called with no other task waiting.
 */
static void expect_blocked(struct __test_metadata *_metadata,
			   FIXTURE_DATA(folio) *self, struct ut_toucher *t,
			   uint64_t page, bool write, uint64_t value)
{
	uint64_t *addr = (uint64_t *)(self->map + PG(page)) + 3;
	struct umem_request req;

	ASSERT_EQ(0, ut_toucher_start(t, addr, write, value));
	ASSERT_EQ(1, ut_poll_in(self->r.server_fd, UT_WAIT_MS))
		TH_LOG("no request for page %llu (toucher done %d, saw %#llx)",
		       (unsigned long long)page, atomic_load(&t->done),
		       (unsigned long long)t->seen);
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(PG(page), req.offset);
	EXPECT_EQ(write ? UMEM_REQ_WRITE : 0, req.flags);
	EXPECT_EQ(atomic_load(&t->tid), (int)req.tid);
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	ut_sleep_ms(BLOCK_MS);
	EXPECT_EQ(0, atomic_load(&t->done))
		TH_LOG("page %llu: the toucher returned without the page (saw %#llx)",
		       (unsigned long long)page, (unsigned long long)t->seen);
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(waiting)));
}

/*
 * Install @page with @seed and check that the blocked toucher @t returns
 * with it (and, for a write, that its write landed on the new page).
 */
static void release_and_check(struct __test_metadata *_metadata,
			      FIXTURE_DATA(folio) *self, struct ut_toucher *t,
			      uint64_t page, uint32_t seed)
{
	const uint64_t *w = (const uint64_t *)(self->map + PG(page));

	ASSERT_EQ(0, install(self, page, seed));
	ASSERT_EQ(0, ut_toucher_join(t, UT_WAIT_MS));
	if (t->write) {
		EXPECT_EQ(t->value, w[3]);
		EXPECT_EQ(-1, ut_check(w, PG(page), 24, seed));
		EXPECT_EQ(-1, ut_check(w + 4, PG(page) + 32, UT_PAGE - 32, seed));
		/* Put the pattern back so later whole-page checks hold. */
		((uint64_t *)(self->map + PG(page)))[3] =
			ut_pattern_word(PG(page) + 24, seed);
	} else {
		EXPECT_EQ(ut_pattern_word(PG(page) + 24, seed), t->seen);
		EXPECT_EQ(-1, ut_check(t->page, PG(page), UT_PAGE, seed));
	}
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(waiting)));
}

/* Check every page of [first, end) in place: pattern of seed_of(page). */
static long check_range(FIXTURE_DATA(folio) *self, uint64_t first,
			uint64_t end, uint32_t seed, uint64_t other_page,
			uint32_t other_seed)
{
	uint64_t p;

	for (p = first; p < end; p++) {
		uint32_t s = p == other_page ? other_seed : seed;

		if (ut_check(self->map + PG(p), PG(p), UT_PAGE, s) != -1)
			return (long)p;
	}
	return -1;
}

/*
 * Eight threads at a time read every page of the extent at @first, each
 * join bounded: a fault that never returns fails here.
 */
static void walk_extent(struct __test_metadata *_metadata,
			FIXTURE_DATA(folio) *self, uint64_t first, uint32_t seed)
{
	static struct ut_toucher walk[8];
	uint64_t p;
	unsigned int i;

	for (p = first; p < first + HPAGE_NR; p += 8) {
		for (i = 0; i < 8; i++) {
			ASSERT_EQ(0, ut_toucher_start(&walk[i],
						      self->map + PG(p + i) + 8 * i,
						      false, 0));
		}
		for (i = 0; i < 8; i++) {
			ASSERT_EQ(0, ut_toucher_join(&walk[i], UT_WAIT_MS))
				TH_LOG("page %llu never arrived",
				       (unsigned long long)(p + i));
			EXPECT_EQ(-1, ut_check(walk[i].page, PG(p + i), UT_PAGE,
					       seed));
		}
	}
}

#define NEED_HUGE(page)							\
	do {								\
		int __h = extent_is_huge(_metadata, self, (page));	\
		if (variant->huge && !__h) {				\
			unmap_region(self);				\
			SKIP(return, "shmem_enabled=%s but no 2 MiB folio "\
			     "could be allocated for the backing "	\
			     "(memory fragmentation?)", variant->knob);	\
		}							\
	} while (0)

/* ------------------------------------------------------------- tests */

/*
 * Pages 0 and 5 installed in extent 0; the first fault of the extent is
 * on the present TAIL page 5 (the old fault path looped forever there),
 * then on the present head: both map their own page with the right data,
 * and nothing of the extent is mapped by a PMD.
 */
TEST_F_TIMEOUT(folio, present_tail_first, TIMEOUT_S)
{
	struct ut_toucher t;

	ASSERT_EQ(0, map_region(self, variant, SZ));
	ASSERT_EQ(0, install(self, 0, SEED));
	ASSERT_EQ(0, install(self, 5, SEED));

	EXPECT_EQ(-1, read_page_bounded(self, 5, SEED));
	NEED_HUGE(5);
	EXPECT_EQ(-1, read_page_bounded(self, 0, SEED));
	EXPECT_EQ(0, ut_smaps_pmd_kb(self->map));
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests)));

	/* The folio's missing pages are still missing. */
	expect_blocked(_metadata, self, &t, 6, false, 0);
	release_and_check(_metadata, self, &t, 6, SEED);
	EXPECT_EQ(0, ut_smaps_pmd_kb(self->map));
	unmap_region(self);
	check_clean(_metadata, self);
}

/*
 * The first fault of the extent on the present HEAD page (the old code
 * handed the whole folio to the core, which mapped it with a PMD: pages
 * 1..511 read zeros, writable, with no request).  Then faults on missing
 * tail pages of the same folio (7, 511, 1) block with a request, never
 * see zeros, and get the installed data; a write fault on a missing tail
 * page (9) blocks too and its write lands on the installed page.  No PMD
 * mapping while the extent is incomplete.
 */
TEST_F_TIMEOUT(folio, missing_tail_blocks, TIMEOUT_S)
{
	static const uint64_t reads[] = { 7, 511, 1 };
	struct ut_toucher t;
	unsigned int i;

	ASSERT_EQ(0, map_region(self, variant, SZ));
	ASSERT_EQ(0, install(self, 0, SEED));
	ASSERT_EQ(0, install(self, 5, SEED));

	EXPECT_EQ(-1, read_page_bounded(self, 0, SEED));
	NEED_HUGE(0);
	EXPECT_EQ(-1, read_page_bounded(self, 5, SEED));
	EXPECT_EQ(0, ut_smaps_pmd_kb(self->map))
		TH_LOG("an incomplete folio is mapped by a PMD");

	for (i = 0; i < UT_ARRAY_SIZE(reads); i++) {
		expect_blocked(_metadata, self, &t, reads[i], false, 0);
		release_and_check(_metadata, self, &t, reads[i], SEED);
		EXPECT_EQ(0, ut_smaps_pmd_kb(self->map));
	}
	expect_blocked(_metadata, self, &t, 9, true, 0x0123456789abcdefULL);
	release_and_check(_metadata, self, &t, 9, SEED);
	EXPECT_EQ(0, ut_smaps_pmd_kb(self->map));

	/* Present pages read in place, missing ones were all requested. */
	EXPECT_EQ(-1, ut_check(self->map, 0, UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check(self->map + PG(5), PG(5), UT_PAGE, SEED));
	EXPECT_EQ(4, ut_stat(self->r.server_fd, UT_STAT(requests)));
	EXPECT_EQ(6, ut_stat(self->r.server_fd, UT_STAT(pages_present)));
	unmap_region(self);
	check_clean(_metadata, self);
}

/*
 * Filling the rest of the folio: with all 512 pages of extent 0 present,
 * every page reads its own data, however the core maps it (a PMD is
 * allowed now).  Touching present pages makes no request.  The next
 * extent, still missing, blocks as before.
 */
TEST_F_TIMEOUT(folio, complete_extent, TIMEOUT_S)
{
	struct ut_toucher t;

	ASSERT_EQ(0, map_region(self, variant, SZ));
	ASSERT_EQ(0, install(self, 0, SEED));
	ASSERT_EQ(0, install(self, 5, SEED));
	EXPECT_EQ(-1, read_page_bounded(self, 5, SEED));
	EXPECT_EQ(-1, read_page_bounded(self, 0, SEED));
	NEED_HUGE(0);

	ASSERT_EQ(0, install_rest(self, 0, HPAGE_NR, SEED));
	EXPECT_EQ(HPAGE_NR, ut_stat(self->r.server_fd, UT_STAT(pages_present)));
	/* First touch of a tail page of the complete folio, from a thread. */
	EXPECT_EQ(-1, read_page_bounded(self, 300, SEED));
	EXPECT_EQ(-1, check_range(self, 0, HPAGE_NR, SEED, ~0ULL, 0));
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests)));
	TH_LOG("complete extent: %ld kB PMD-mapped", ut_smaps_pmd_kb(self->map));

	/* The neighbouring extent is unaffected: missing, requested. */
	expect_blocked(_metadata, self, &t, HPAGE_NR + 3, false, 0);
	release_and_check(_metadata, self, &t, HPAGE_NR + 3, SEED);
	unmap_region(self);
	check_clean(_metadata, self);
}

/*
 * UMEM_DISCARD of single pages inside a large folio that is fully present
 * and mapped: the extent is completed before its first fault, so the core
 * may map the folio with a PMD, which the discard must take down.  The
 * discarded page, a tail (7) and then the head (0), faults again with a
 * request and blocks, never reading the zeros the punch left; the other
 * pages keep their data and, the folio being incomplete again, are mapped
 * without a PMD; the reinstalled page carries its new data.
 */
TEST_F_TIMEOUT(folio, discard_in_folio, TIMEOUT_S)
{
	struct ut_toucher t;

	ASSERT_EQ(0, map_region(self, variant, SZ));
	ASSERT_EQ(0, install_rest(self, 0, HPAGE_NR, SEED));
	EXPECT_EQ(-1, read_page_bounded(self, 0, SEED));
	NEED_HUGE(0);
	EXPECT_EQ(-1, check_range(self, 0, HPAGE_NR, SEED, ~0ULL, 0));
	TH_LOG("before discard: %ld kB PMD-mapped", ut_smaps_pmd_kb(self->map));

	/* A tail page. */
	ASSERT_EQ(0, ut_discard(self->r.server_fd, PG(7), UT_PAGE));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(discarded)));
	EXPECT_EQ(HPAGE_NR - 1,
		  ut_stat(self->r.server_fd, UT_STAT(pages_present)));
	EXPECT_EQ(-1, read_page_bounded(self, 6, SEED));
	EXPECT_EQ(-1, read_page_bounded(self, 8, SEED));
	EXPECT_EQ(-1, ut_check(self->map + PG(200), PG(200), UT_PAGE, SEED));
	EXPECT_EQ(0, ut_smaps_pmd_kb(self->map))
		TH_LOG("a folio with a discarded page is mapped by a PMD");
	expect_blocked(_metadata, self, &t, 7, false, 0);
	release_and_check(_metadata, self, &t, 7, SEED2);

	/* The head page, faulted by a write this time. */
	ASSERT_EQ(0, ut_discard(self->r.server_fd, 0, UT_PAGE));
	EXPECT_EQ(-1, read_page_bounded(self, 1, SEED));
	EXPECT_EQ(0, ut_smaps_pmd_kb(self->map));
	expect_blocked(_metadata, self, &t, 0, true, 0xfeedfacecafef00dULL);
	release_and_check(_metadata, self, &t, 0, SEED2);

	/* Everything else intact. */
	EXPECT_EQ(-1, ut_check(self->map, 0, UT_PAGE, SEED2));
	EXPECT_EQ(-1, check_range(self, 1, HPAGE_NR, SEED, 7, SEED2));
	EXPECT_EQ(2, ut_stat(self->r.server_fd, UT_STAT(requests)));
	EXPECT_EQ(HPAGE_NR, ut_stat(self->r.server_fd, UT_STAT(pages_present)));
	unmap_region(self);
	check_clean(_metadata, self);
}

/*
 * A region of 2 MiB + 12 KiB: the last extent has three pages, and with
 * always/force its folio is a 2 MiB one that extends past the end of the
 * region.  Faults there (present head, missing tail read and write) work
 * as inside; with the whole region present (complete) every page reads
 * its data, the past-the-end folio is never mapped by a PMD.
 */
TEST_F_TIMEOUT(folio, unaligned_size, TIMEOUT_S)
{
	struct ut_toucher t;
	int huge_tail;

	ASSERT_EQ(0, map_region(self, variant, SZ_ODD));
	ASSERT_EQ(0, install(self, 0, SEED));
	ASSERT_EQ(0, install(self, HPAGE_NR, SEED));
	EXPECT_EQ(-1, read_page_bounded(self, 0, SEED));
	NEED_HUGE(0);
	EXPECT_EQ(-1, read_page_bounded(self, HPAGE_NR, SEED));
	huge_tail = extent_is_huge(_metadata, self, HPAGE_NR);
	if (variant->huge_past_eof && !huge_tail) {
		unmap_region(self);
		SKIP(return, "shmem_enabled=%s but no 2 MiB folio past the end "
		     "of the backing (memory fragmentation?)", variant->knob);
	}
	EXPECT_EQ(0, ut_smaps_pmd_kb(self->map));

	expect_blocked(_metadata, self, &t, HPAGE_NR + 2, false, 0);
	release_and_check(_metadata, self, &t, HPAGE_NR + 2, SEED);
	expect_blocked(_metadata, self, &t, HPAGE_NR + 1, true, 0x55aa55aa55aa55aaULL);
	release_and_check(_metadata, self, &t, HPAGE_NR + 1, SEED);
	EXPECT_EQ(0, ut_smaps_pmd_kb(self->map));

	/* Missing tail pages of extent 0 still block. */
	expect_blocked(_metadata, self, &t, 2, false, 0);
	release_and_check(_metadata, self, &t, 2, SEED);

	ASSERT_EQ(0, install_rest(self, 0, HPAGE_NR, SEED));
	EXPECT_EQ(HPAGE_NR + 3, ut_stat(self->r.server_fd, UT_STAT(pages_present)));
	EXPECT_EQ(-1, read_page_bounded(self, HPAGE_NR + 2, SEED));
	EXPECT_EQ(-1, check_range(self, 0, HPAGE_NR + 3, SEED, ~0ULL, 0));
	EXPECT_EQ(3, ut_stat(self->r.server_fd, UT_STAT(requests)));
	TH_LOG("complete: %ld kB PMD-mapped", ut_smaps_pmd_kb(self->map));
	unmap_region(self);
	check_clean(_metadata, self);
}

/*
 * A folio whose 512 pages were all installed before the extent's first
 * fault may be mapped by a PMD (the fault hands the whole folio to the
 * core).  Whatever way it was mapped, munmap() takes it down completely:
 * the process's RssShmem drops by the 2 MiB again and the global
 * ShmemPmdMapped comes back to what it was, and closing the region frees
 * the backing with no "bad page" (a folio still mapped when its file is
 * evicted).  A PMD that the zap mistakes for a special (pfn) mapping,
 * VM_MIXEDMAP being set, is cleared without its rmap, refcount and RSS:
 * all three checks catch that.
 */
TEST_F_TIMEOUT(folio, complete_then_unmap, TIMEOUT_S)
{
	long rss0, rss1, rss2, pmd;

	rss0 = status_kb("RssShmem");
	ASSERT_EQ(0, map_region(self, variant, SZ));
	ASSERT_EQ(0, install_rest(self, 0, HPAGE_NR, SEED));
	EXPECT_EQ(-1, read_page_bounded(self, 0, SEED));
	NEED_HUGE(0);
	EXPECT_EQ(-1, check_range(self, 0, HPAGE_NR, SEED, ~0ULL, 0));
	pmd = ut_smaps_pmd_kb(self->map);
	rss1 = status_kb("RssShmem");
	TH_LOG("complete folio: %ld kB PMD-mapped, RssShmem %ld -> %ld kB",
	       pmd, rss0, rss1);
	/*
	 * RSS counters are approximate (per-CPU batches after 6.1;
	 * status_kb() syncs 6.1's per-task cache): half an extent is the
	 * margin.
	 */
	EXPECT_LE(rss0 + (long)(HPAGE >> 11), rss1);
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests)));

	ASSERT_EQ(0, munmap(self->map, SZ));
	rss2 = status_kb("RssShmem");
	EXPECT_GT(rss0 + (long)(HPAGE >> 11), rss2)
		TH_LOG("RssShmem %ld kB before the mapping, %ld kB after munmap",
		       rss0, rss2);
	unmap_region(self);
	check_clean(_metadata, self);
}

/*
 * The fake daemon serves every request while one thread reads the whole
 * of extent 0, of which pages 0 and 5 were installed before (so a large
 * folio holds it): each missing page is requested exactly once, all data
 * is right, and the walk finishes (no fault loops) within the timeout.
 */
TEST_F_TIMEOUT(folio, daemon_fills_extent, TIMEOUT_S)
{
	struct ut_daemon d;

	ASSERT_EQ(0, map_region(self, variant, SZ));
	ASSERT_EQ(0, install(self, 0, SEED));
	ASSERT_EQ(0, install(self, 5, SEED));
	EXPECT_EQ(-1, read_page_bounded(self, 0, SEED));
	NEED_HUGE(0);

	ut_daemon_init(&d, self->r.server_fd, SZ, SEED);
	ASSERT_EQ(0, ut_daemon_start(&d));
	walk_extent(_metadata, self, 0, SEED);
	EXPECT_EQ(0, ut_daemon_stop(&d));
	EXPECT_EQ(HPAGE_NR - 2, d.requests);
	EXPECT_EQ(0, d.duplicates);
	EXPECT_EQ(0, d.bad_records);
	EXPECT_EQ(0, ut_daemon_seen(&d, 0));
	EXPECT_EQ(0, ut_daemon_seen(&d, PG(5)));
	EXPECT_EQ(-1, check_range(self, 0, HPAGE_NR, SEED, ~0ULL, 0));
	unmap_region(self);
	check_clean(_metadata, self);
}

TEST_HARNESS_MAIN
