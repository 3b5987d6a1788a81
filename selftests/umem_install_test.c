// SPDX-License-Identifier: GPL-2.0
/*
 * Installing pages: UMEM_COPY, UMEM_COPY_VEC (per-entry results),
 * UMEM_ZERO, pwrite() + UMEM_MARK_PRESENT, UMEM_DISCARD, and the exact
 * figures of UMEM_STATS.  Bad arguments first for each command; partial
 * progress in the out fields; no task ever sees a partly written page;
 * once every page is present, faults do no bookkeeping.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "umem_test.h"

#define NPAGES	32
#define SZ	(NPAGES * UT_PAGE)
#define SEED	0x1a
#define SEED2	0x2b
#define PG(n)	((uint64_t)(n) * UT_PAGE)

/* Sentinel for out fields: tells "untouched" from a value the kernel wrote. */
#define UNTOUCHED	0x5a5a5a5a5a5aLL

FIXTURE(inst) {
	struct ut_region r;
	char *map;
	char *src;		/* NPAGES pages of pattern SEED, at region offsets */
	char *hole;		/* two pages: readable, then PROT_NONE */
};

FIXTURE_SETUP(inst)
{
	ut_region_clear(&self->r);
	self->map = self->src = self->hole = MAP_FAILED;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	ASSERT_EQ(0, ut_region_init(&self->r, SZ, "ins"));
	ASSERT_EQ(0, ut_region_open_node(&self->r));
	self->map = ut_map(self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, self->map);
	self->src = mmap(NULL, SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->src);
	ut_fill(self->src, 0, SZ, SEED);
	self->hole = mmap(NULL, 2 * UT_PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->hole);
	ASSERT_EQ(0, mprotect(self->hole + UT_PAGE, UT_PAGE, PROT_NONE));
}

FIXTURE_TEARDOWN(inst)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, SZ);
	if (self->src != MAP_FAILED)
		munmap(self->src, SZ);
	if (self->hole != MAP_FAILED)
		munmap(self->hole, 2 * UT_PAGE);
	ut_region_fini(&self->r);
}

static uint64_t present(FIXTURE_DATA(inst) *self)
{
	return ut_stat(self->r.server_fd, UT_STAT(pages_present));
}

/*
 * Is the page at @off present?  A one-byte pwrite() of zero tells without
 * changing what the page will read as: EEXIST when present; when missing
 * it lands in the backing, which a never-written page reads as anyway.
 */
static bool page_is_present(FIXTURE_DATA(inst) *self, uint64_t off)
{
	const char zero = 0;

	return pwrite(self->r.server_fd, &zero, 1, off + UT_PAGE - 1) < 0 &&
	       errno == EEXIST;
}

/* Bad (offset, len) pairs shared by COPY, ZERO and DISCARD. */
static const struct range { uint64_t off, len; } bad_ranges[] = {
	{ 1, UT_PAGE },
	{ 2048, UT_PAGE },
	{ UT_PAGE - 1, UT_PAGE },
	{ 0, 1 },
	{ 0, UT_PAGE - 1 },
	{ 0, UT_PAGE + 1 },
	{ 0, 0 },			/* zero length */
	{ PG(3), 0 },
	{ SZ, UT_PAGE },		/* starts at the end */
	{ SZ - UT_PAGE, 2 * UT_PAGE },	/* runs past the end */
	{ 0, SZ + UT_PAGE },
	{ 1ULL << 40, UT_PAGE },
	{ 1ULL << 63, UT_PAGE },
	{ ~0ULL & ~(UT_PAGE - 1), UT_PAGE },
	{ UT_PAGE, ~0ULL & ~(UT_PAGE - 1) },	/* offset + len wraps */
	{ SZ - UT_PAGE, ~0ULL & ~(UT_PAGE - 1) },
};

/* ---- UMEM_COPY ---- */

TEST_F(inst, copy_einval)
{
	struct umem_copy c;
	unsigned int i;

	for (i = 0; i < UT_ARRAY_SIZE(bad_ranges); i++) {
		memset(&c, 0, sizeof(c));
		c.offset = bad_ranges[i].off;
		c.len = bad_ranges[i].len;
		c.src = (uintptr_t)self->src;
		c.copied = UNTOUCHED;
		EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_COPY, &c))
			TH_LOG("offset %#llx len %#llx",
			       (unsigned long long)c.offset,
			       (unsigned long long)c.len);
		EXPECT_TRUE(c.copied == UNTOUCHED || c.copied == -EINVAL)
			TH_LOG("copied %lld", (long long)c.copied);
	}
	for (i = 0; i < 64; i++) {
		memset(&c, 0, sizeof(c));
		c.len = UT_PAGE;
		c.src = (uintptr_t)self->src;
		c.mode = 1ULL << i;
		EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_COPY, &c))
			TH_LOG("mode bit %u", i);
	}
	EXPECT_EQ(0, present(self));
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(installed)));
}

TEST_F(inst, copy_struct_efault)
{
	struct umem_copy *ro;

	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_COPY, NULL));
	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_COPY, (void *)16UL));
	/* Valid request, but "copied" cannot be written back. */
	ro = (struct umem_copy *)self->hole;
	memset(ro, 0, sizeof(*ro));
	ro->len = UT_PAGE;
	ro->src = (uintptr_t)self->src;
	ASSERT_EQ(0, mprotect(self->hole, UT_PAGE, PROT_READ));
	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_COPY, ro));
}

TEST_F(inst, copy_basic)
{
	int64_t copied = UNTOUCHED;

	ASSERT_EQ(0, ut_copy(self->r.server_fd, 0, self->src, UT_PAGE, &copied));
	EXPECT_EQ((int64_t)UT_PAGE, copied);
	EXPECT_EQ(-1, ut_check(self->map, 0, UT_PAGE, SEED));
	EXPECT_EQ(1, present(self));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(installed)));
	/* Nobody faulted: nothing was requested. */
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests)));
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(faults)));
}

TEST_F(inst, copy_multi_page)
{
	int64_t copied = UNTOUCHED;

	ASSERT_EQ(0, ut_copy(self->r.server_fd, PG(2), self->src + PG(2),
			     8 * UT_PAGE, &copied));
	EXPECT_EQ((int64_t)(8 * UT_PAGE), copied);
	EXPECT_EQ(-1, ut_check(self->map + PG(2), PG(2), 8 * UT_PAGE, SEED));
	EXPECT_EQ(8, present(self));
	EXPECT_EQ(8, ut_stat(self->r.server_fd, UT_STAT(installed)));

	/* The whole region in one call. */
	ASSERT_EQ(0, ut_discard(self->r.server_fd, 0, SZ));
	ASSERT_EQ(0, ut_copy(self->r.server_fd, 0, self->src, SZ, &copied));
	EXPECT_EQ((int64_t)SZ, copied);
	EXPECT_EQ(NPAGES, present(self));
	EXPECT_EQ(-1, ut_check(self->map, 0, SZ, SEED));
}

/* Only offset and len must be page aligned, not the source. */
TEST_F(inst, copy_unaligned_src)
{
	int64_t copied = UNTOUCHED;
	char *buf;

	buf = malloc(2 * UT_PAGE);
	ASSERT_NE(NULL, buf);
	ut_fill(buf + 8, PG(3), UT_PAGE, SEED);
	ASSERT_EQ(0, ut_copy(self->r.server_fd, PG(3), buf + 8, UT_PAGE, &copied));
	EXPECT_EQ((int64_t)UT_PAGE, copied);
	EXPECT_EQ(-1, ut_check(self->map + PG(3), PG(3), UT_PAGE, SEED));
	free(buf);
}

TEST_F(inst, copy_eexist)
{
	int64_t copied = UNTOUCHED;
	char other[UT_PAGE];

	ASSERT_EQ(0, ut_copy(self->r.server_fd, 0, self->src, UT_PAGE, NULL));
	ut_fill(other, 0, UT_PAGE, SEED2);
	EXPECT_EQ(-EEXIST, ut_copy(self->r.server_fd, 0, other, UT_PAGE, &copied));
	EXPECT_EQ(-EEXIST, copied);
	/* The first contents stay. */
	EXPECT_EQ(-1, ut_check(self->map, 0, UT_PAGE, SEED));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(installed)));
}

TEST_F(inst, copy_partial)
{
	int64_t copied = UNTOUCHED;

	/* Pages 2..5 asked for, page 4 already there: 2 and 3 get done. */
	ASSERT_EQ(0, ut_copy(self->r.server_fd, PG(4), self->src + PG(4),
			     UT_PAGE, NULL));
	EXPECT_EQ(-EEXIST, ut_copy(self->r.server_fd, PG(2), self->src + PG(2),
				   4 * UT_PAGE, &copied));
	EXPECT_EQ((int64_t)(2 * UT_PAGE), copied);
	EXPECT_EQ(3, present(self));
	EXPECT_EQ(-1, ut_check(self->map + PG(2), PG(2), 3 * UT_PAGE, SEED));
	/* Page 5 was not reached: still missing. */
	EXPECT_EQ(0, ut_copy(self->r.server_fd, PG(5), self->src + PG(5),
			     UT_PAGE, &copied));
	EXPECT_EQ((int64_t)UT_PAGE, copied);
}

TEST_F(inst, copy_efault_src)
{
	int64_t copied = UNTOUCHED;

	EXPECT_EQ(-EFAULT, ut_copy(self->r.server_fd, 0, NULL, UT_PAGE, &copied));
	EXPECT_EQ(-EFAULT, copied);
	copied = UNTOUCHED;
	EXPECT_EQ(-EFAULT, ut_copy(self->r.server_fd, 0, (void *)-8192L, UT_PAGE,
				   &copied));
	EXPECT_EQ(-EFAULT, copied);
	EXPECT_EQ(0, present(self));

	/* Source runs into a PROT_NONE page: the first page gets done. */
	ut_fill(self->hole, PG(10), UT_PAGE, SEED);
	copied = UNTOUCHED;
	EXPECT_EQ(-EFAULT, ut_copy(self->r.server_fd, PG(10), self->hole,
				   2 * UT_PAGE, &copied));
	EXPECT_EQ((int64_t)UT_PAGE, copied);
	EXPECT_EQ(1, present(self));
	EXPECT_EQ(-1, ut_check(self->map + PG(10), PG(10), UT_PAGE, SEED));
	/* ... and the second is still missing. */
	EXPECT_EQ(0, ut_copy(self->r.server_fd, PG(11), self->src + PG(11),
			     UT_PAGE, NULL));
}

/* ---- UMEM_COPY_VEC ---- */

TEST_F(inst, copy_vec_einval)
{
	struct umem_copy_entry e[2] = {
		{ .offset = 0, .src = (uintptr_t)self->src },
		{ .offset = PG(1), .src = (uintptr_t)self->src + UT_PAGE },
	};
	struct umem_copy_vec v;
	unsigned int i;

	memset(&v, 0, sizeof(v));
	v.entries = (uintptr_t)e;
	EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_COPY_VEC, &v));
	v.count = UMEM_COPY_VEC_MAX + 1;
	EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_COPY_VEC, &v));
	v.count = ~0U;
	EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_COPY_VEC, &v));
	for (i = 0; i < 32; i++) {
		memset(&v, 0, sizeof(v));
		v.entries = (uintptr_t)e;
		v.count = 2;
		v.flags = 1U << i;
		EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_COPY_VEC, &v))
			TH_LOG("flag bit %u", i);
	}
	for (i = 0; i < UT_ARRAY_SIZE(v.reserved); i++) {
		memset(&v, 0, sizeof(v));
		v.entries = (uintptr_t)e;
		v.count = 2;
		v.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_COPY_VEC, &v))
			TH_LOG("reserved[%u]", i);
	}
	EXPECT_EQ(0, present(self));
}

TEST_F(inst, copy_vec_efault)
{
	struct umem_copy_entry *e;
	struct umem_copy_vec v;

	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_COPY_VEC, NULL));

	memset(&v, 0, sizeof(v));
	v.count = 1;
	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_COPY_VEC, &v));
	EXPECT_EQ(0, present(self));

	/* An array whose second entry lies in a PROT_NONE page. */
	e = (struct umem_copy_entry *)(self->hole + UT_PAGE) - 1;
	e->offset = PG(6);
	e->src = (uintptr_t)self->src + PG(6);
	e->result = UNTOUCHED;
	memset(&v, 0, sizeof(v));
	v.entries = (uintptr_t)e;
	v.count = 2;
	v.handled = UNTOUCHED;
	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_COPY_VEC, &v));
	/* Either nothing was done, or exactly the readable entry. */
	EXPECT_TRUE(v.handled == 0 || v.handled == 1 || v.handled == UNTOUCHED)
		TH_LOG("handled %llu", (unsigned long long)v.handled);
	EXPECT_EQ(v.handled == 1 ? 1 : 0, present(self));
	if (v.handled == 1) {
		EXPECT_EQ(0, e->result);
	}
}

TEST_F(inst, copy_vec_mixed)
{
	struct umem_copy_entry e[] = {
		{ PG(0), (uintptr_t)self->src, UNTOUCHED },		/* ok */
		{ PG(0), (uintptr_t)self->src, UNTOUCHED },		/* EEXIST */
		{ 1, (uintptr_t)self->src, UNTOUCHED },			/* EINVAL */
		{ SZ, (uintptr_t)self->src, UNTOUCHED },		/* EINVAL */
		{ PG(3), 0, UNTOUCHED },				/* EFAULT */
		{ PG(5), (uintptr_t)self->src + PG(5), UNTOUCHED },	/* ok */
		{ PG(6), (uintptr_t)self->hole + 8, UNTOUCHED },	/* EFAULT */
		{ 1ULL << 62, (uintptr_t)self->src, UNTOUCHED },	/* EINVAL */
		{ PG(7), (uintptr_t)self->src + PG(7), UNTOUCHED },	/* ok */
		{ PG(7), (uintptr_t)self->src + PG(7), UNTOUCHED },	/* EEXIST */
		{ PG(NPAGES - 1), (uintptr_t)self->src + PG(NPAGES - 1),
		  UNTOUCHED },						/* ok */
	};
	const int64_t want[] = {
		0, -EEXIST, -EINVAL, -EINVAL, -EFAULT, 0, -EFAULT, -EINVAL,
		0, -EEXIST, 0,
	};
	uint64_t handled = UNTOUCHED;
	unsigned int i;

	ut_fill(self->hole, PG(6), UT_PAGE, SEED);	/* +8 runs into PROT_NONE */
	ASSERT_EQ(UT_ARRAY_SIZE(e), UT_ARRAY_SIZE(want));
	/* Entries failed one by one; the call itself succeeds. */
	ASSERT_EQ(0, ut_copy_vec(self->r.server_fd, e, UT_ARRAY_SIZE(e), &handled));
	EXPECT_EQ(UT_ARRAY_SIZE(e), handled);
	for (i = 0; i < UT_ARRAY_SIZE(e); i++) {
		EXPECT_EQ(want[i], e[i].result) TH_LOG("entry %u", i);
	}

	EXPECT_EQ(4, present(self));
	EXPECT_EQ(4, ut_stat(self->r.server_fd, UT_STAT(installed)));
	EXPECT_EQ(-1, ut_check(self->map, 0, UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check(self->map + PG(5), PG(5), UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check(self->map + PG(7), PG(7), UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check(self->map + PG(NPAGES - 1), PG(NPAGES - 1),
			       UT_PAGE, SEED));
	/* The failed pages are still missing. */
	EXPECT_FALSE(page_is_present(self, PG(3)));
	EXPECT_FALSE(page_is_present(self, PG(6)));
}

TEST_F(inst, copy_vec_max)
{
	struct umem_copy_entry *e;
	uint64_t handled = 0;
	unsigned int i;

	e = calloc(UMEM_COPY_VEC_MAX, sizeof(*e));
	ASSERT_NE(NULL, e);
	for (i = 0; i < UMEM_COPY_VEC_MAX; i++) {
		/* Every page once, then repeats, then offsets past the end. */
		if (i < 512)
			e[i].offset = PG(i % NPAGES);
		else
			e[i].offset = SZ + PG(i);
		e[i].src = (uintptr_t)self->src + (e[i].offset % SZ);
		e[i].result = UNTOUCHED;
	}
	ASSERT_EQ(0, ut_copy_vec(self->r.server_fd, e, UMEM_COPY_VEC_MAX, &handled));
	EXPECT_EQ(UMEM_COPY_VEC_MAX, handled);
	for (i = 0; i < UMEM_COPY_VEC_MAX; i++) {
		int64_t want = i < NPAGES ? 0 : i < 512 ? -EEXIST : -EINVAL;

		if (e[i].result != want) {
			EXPECT_EQ(want, e[i].result) TH_LOG("entry %u", i);
			break;
		}
	}
	EXPECT_EQ(NPAGES, present(self));
	EXPECT_EQ(NPAGES, ut_stat(self->r.server_fd, UT_STAT(installed)));
	EXPECT_EQ(-1, ut_check(self->map, 0, SZ, SEED));
	free(e);
}

/* ---- UMEM_ZERO ---- */

TEST_F(inst, zero_einval)
{
	struct umem_zero z;
	unsigned int i;

	for (i = 0; i < UT_ARRAY_SIZE(bad_ranges); i++) {
		memset(&z, 0, sizeof(z));
		z.offset = bad_ranges[i].off;
		z.len = bad_ranges[i].len;
		z.zeroed = UNTOUCHED;
		EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_ZERO, &z))
			TH_LOG("offset %#llx len %#llx",
			       (unsigned long long)z.offset,
			       (unsigned long long)z.len);
		EXPECT_TRUE(z.zeroed == UNTOUCHED || z.zeroed == -EINVAL);
	}
	for (i = 0; i < 64; i++) {
		memset(&z, 0, sizeof(z));
		z.len = UT_PAGE;
		z.mode = 1ULL << i;
		EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_ZERO, &z))
			TH_LOG("mode bit %u", i);
	}
	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_ZERO, NULL));
	EXPECT_EQ(0, present(self));
}

TEST_F(inst, zero_basic)
{
	int64_t zeroed = UNTOUCHED;

	ASSERT_EQ(0, ut_zero(self->r.server_fd, PG(3), 3 * UT_PAGE, &zeroed));
	EXPECT_EQ((int64_t)(3 * UT_PAGE), zeroed);
	EXPECT_EQ(-1, ut_check_zero(self->map + PG(3), 3 * UT_PAGE));
	EXPECT_EQ(3, present(self));
	EXPECT_EQ(3, ut_stat(self->r.server_fd, UT_STAT(installed)));
	/* Zero pages are ordinary pages once present. */
	self->map[PG(4) + 100] = 9;
	EXPECT_EQ(9, self->map[PG(4) + 100]);
}

/* UMEM_ZERO really zeroes: data pwritten into the backing is gone. */
TEST_F(inst, zero_overrides_pwrite)
{
	ASSERT_EQ((ssize_t)UT_PAGE, pwrite(self->r.server_fd, self->src + PG(6),
					   UT_PAGE, PG(6)));
	ASSERT_EQ(0, ut_zero(self->r.server_fd, PG(6), UT_PAGE, NULL));
	EXPECT_EQ(-1, ut_check_zero(self->map + PG(6), UT_PAGE));
}

TEST_F(inst, zero_partial_eexist)
{
	int64_t zeroed = UNTOUCHED;

	ASSERT_EQ(0, ut_copy(self->r.server_fd, PG(8), self->src + PG(8),
			     UT_PAGE, NULL));
	EXPECT_EQ(-EEXIST, ut_zero(self->r.server_fd, PG(7), 3 * UT_PAGE,
				   &zeroed));
	EXPECT_EQ((int64_t)UT_PAGE, zeroed);
	EXPECT_EQ(-1, ut_check_zero(self->map + PG(7), UT_PAGE));
	EXPECT_EQ(-1, ut_check(self->map + PG(8), PG(8), UT_PAGE, SEED));
	EXPECT_EQ(2, present(self));
	EXPECT_FALSE(page_is_present(self, PG(9)));

	zeroed = UNTOUCHED;
	EXPECT_EQ(-EEXIST, ut_zero(self->r.server_fd, PG(8), UT_PAGE, &zeroed));
	EXPECT_EQ(-EEXIST, zeroed);
}

/* ---- pwrite() + UMEM_MARK_PRESENT ---- */

TEST_F(inst, pwrite_invisible_until_marked)
{
	struct umem_request req;
	struct ut_toucher t;
	uint64_t off = PG(12), marked = UNTOUCHED;

	ASSERT_EQ(0, ut_toucher_start(&t, self->map + off, false, 0));
	ASSERT_EQ(1, ut_poll_in(self->r.server_fd, UT_WAIT_MS));
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	ASSERT_EQ(off, req.offset);

	ASSERT_EQ((ssize_t)UT_PAGE, pwrite(self->r.server_fd, self->src + off,
					   UT_PAGE, off));
	/* Written but not present: the toucher still waits. */
	ut_sleep_ms(100);
	EXPECT_EQ(0, atomic_load(&t.done));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(waiting)));
	EXPECT_EQ(0, present(self));
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(installed)));

	ASSERT_EQ(0, ut_mark_present(self->r.server_fd, &off, 1, &marked));
	EXPECT_EQ(1, marked);
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(-1, ut_check(t.page, off, UT_PAGE, SEED));
	EXPECT_EQ(1, present(self));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(installed)));
}

TEST_F(inst, pwrite_byte_ranges)
{
	const uint64_t offs[] = { PG(13), PG(14), PG(15) };
	char *p = self->src;
	uint64_t marked = 0;
	int sfd = self->r.server_fd;

	/* Page 13 in three uneven pieces. */
	ASSERT_EQ(100, pwrite(sfd, p + PG(13), 100, PG(13)));
	ASSERT_EQ(3000, pwrite(sfd, p + PG(13) + 100, 3000, PG(13) + 100));
	ASSERT_EQ((ssize_t)UT_PAGE - 3100,
		  pwrite(sfd, p + PG(13) + 3100, UT_PAGE - 3100, PG(13) + 3100));
	/* One page's worth straddling pages 14 and 15. */
	ASSERT_EQ((ssize_t)UT_PAGE,
		  pwrite(sfd, p + PG(14) + 512, UT_PAGE, PG(14) + 512));
	/* Zero length is a no-op anywhere. */
	EXPECT_EQ(0, pwrite(sfd, p, 0, PG(20)));

	ASSERT_EQ(0, ut_mark_present(sfd, offs, 3, &marked));
	EXPECT_EQ(3, marked);
	EXPECT_EQ(-1, ut_check(self->map + PG(13), PG(13), UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check_zero(self->map + PG(14), 512));
	EXPECT_EQ(-1, ut_check(self->map + PG(14) + 512, PG(14) + 512,
			       UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check_zero(self->map + PG(15) + 512, UT_PAGE - 512));
	EXPECT_EQ(3, present(self));
}

TEST_F(inst, pwrite_errors)
{
	int sfd = self->r.server_fd;

	ASSERT_EQ(0, ut_copy(sfd, PG(16), self->src + PG(16), UT_PAGE, NULL));
	/* Into a present page, or a range touching one. */
	EXPECT_EQ(-1, pwrite(sfd, self->src, UT_PAGE, PG(16)));
	EXPECT_EQ(EEXIST, errno);
	EXPECT_EQ(-1, pwrite(sfd, self->src, 1, PG(16) + 4000));
	EXPECT_EQ(EEXIST, errno);
	EXPECT_EQ(-1, pwrite(sfd, self->src, UT_PAGE, PG(15) + 8));
	EXPECT_EQ(EEXIST, errno);
	EXPECT_EQ(-1, ut_check(self->map + PG(16), PG(16), UT_PAGE, SEED));

	/* Past the end. */
	EXPECT_EQ(-1, pwrite(sfd, self->src, 1, SZ));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pwrite(sfd, self->src, 2, SZ - 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pwrite(sfd, self->src, UT_PAGE, 1LL << 40));
	EXPECT_EQ(EINVAL, errno);

	/* A bad source buffer. */
	EXPECT_EQ(-1, pwrite(sfd, self->hole + UT_PAGE, UT_PAGE, PG(17)));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(1, present(self));
}

TEST_F(inst, mark_never_written_reads_zero)
{
	uint64_t off = PG(17);

	ASSERT_EQ(0, ut_mark_present(self->r.server_fd, &off, 1, NULL));
	EXPECT_EQ(-1, ut_check_zero(self->map + off, UT_PAGE));
	EXPECT_EQ(1, present(self));
}

TEST_F(inst, mark_present_errors)
{
	uint64_t offs[4], marked;
	struct umem_mark_present m;
	uint64_t *big;
	unsigned int i;
	int sfd = self->r.server_fd;

	/* Present already: stops there, marked = index of the failure. */
	offs[0] = PG(18);
	offs[1] = PG(19);
	offs[2] = PG(18);
	offs[3] = PG(20);
	marked = UNTOUCHED;
	EXPECT_EQ(-EEXIST, ut_mark_present(sfd, offs, 4, &marked));
	EXPECT_EQ(2, marked);
	EXPECT_EQ(2, present(self));
	EXPECT_FALSE(page_is_present(self, PG(20)));	/* not reached */

	/* Unaligned / out of range: EINVAL, same rule. */
	offs[0] = PG(21);
	offs[1] = PG(22) + 1;
	marked = UNTOUCHED;
	EXPECT_EQ(-EINVAL, ut_mark_present(sfd, offs, 2, &marked));
	EXPECT_EQ(1, marked);
	offs[0] = SZ;
	EXPECT_EQ(-EINVAL, ut_mark_present(sfd, offs, 1, &marked));
	EXPECT_EQ(0, marked);
	offs[0] = 1ULL << 63;
	EXPECT_EQ(-EINVAL, ut_mark_present(sfd, offs, 1, &marked));
	EXPECT_EQ(0, marked);

	/* count, flags, reserved. */
	EXPECT_EQ(-EINVAL, ut_mark_present(sfd, offs, 0, NULL));
	big = calloc(UMEM_MARK_PRESENT_MAX + 1, sizeof(*big));
	ASSERT_NE(NULL, big);
	EXPECT_EQ(-EINVAL, ut_mark_present(sfd, big, UMEM_MARK_PRESENT_MAX + 1,
					   NULL));
	free(big);
	for (i = 0; i < 32; i++) {
		memset(&m, 0, sizeof(m));
		offs[0] = PG(23);
		m.offsets = (uintptr_t)offs;
		m.count = 1;
		m.flags = 1U << i;
		EXPECT_EQ(-EINVAL, ut_ioctl(sfd, UMEM_MARK_PRESENT, &m))
			TH_LOG("flag bit %u", i);
	}
	for (i = 0; i < UT_ARRAY_SIZE(m.reserved); i++) {
		memset(&m, 0, sizeof(m));
		m.offsets = (uintptr_t)offs;
		m.count = 1;
		m.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, ut_ioctl(sfd, UMEM_MARK_PRESENT, &m))
			TH_LOG("reserved[%u]", i);
	}

	/* Bad pointers. */
	EXPECT_EQ(-EFAULT, ut_ioctl(sfd, UMEM_MARK_PRESENT, NULL));
	EXPECT_EQ(-EFAULT, ut_mark_present(sfd, NULL, 1, NULL));
	EXPECT_EQ(-EFAULT, ut_mark_present(sfd, (uint64_t *)(self->hole + UT_PAGE),
					   1, NULL));
	EXPECT_EQ(3, present(self));	/* 18, 19, 21 */
}

TEST_F(inst, mark_present_max)
{
	uint64_t *offs, marked = 0;
	unsigned int i;

	/* UMEM_MARK_PRESENT_MAX entries: every page, then a repeat fails. */
	offs = calloc(UMEM_MARK_PRESENT_MAX, sizeof(*offs));
	ASSERT_NE(NULL, offs);
	for (i = 0; i < UMEM_MARK_PRESENT_MAX; i++)
		offs[i] = PG(i % NPAGES);
	EXPECT_EQ(-EEXIST, ut_mark_present(self->r.server_fd, offs,
					   UMEM_MARK_PRESENT_MAX, &marked));
	EXPECT_EQ(NPAGES, marked);
	EXPECT_EQ(NPAGES, present(self));
	free(offs);
}

/* ---- UMEM_DISCARD ---- */

TEST_F(inst, discard_einval)
{
	struct umem_discard d;
	unsigned int i;

	ASSERT_EQ(0, ut_copy(self->r.server_fd, 0, self->src, SZ, NULL));
	for (i = 0; i < UT_ARRAY_SIZE(bad_ranges); i++) {
		memset(&d, 0, sizeof(d));
		d.offset = bad_ranges[i].off;
		d.len = bad_ranges[i].len;
		EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_DISCARD, &d))
			TH_LOG("offset %#llx len %#llx",
			       (unsigned long long)d.offset,
			       (unsigned long long)d.len);
	}
	for (i = 0; i < 64; i++) {
		memset(&d, 0, sizeof(d));
		d.len = UT_PAGE;
		d.flags = 1ULL << i;
		EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_DISCARD, &d))
			TH_LOG("flag bit %u", i);
	}
	memset(&d, 0, sizeof(d));
	d.len = UT_PAGE;
	d.reserved = 1;
	EXPECT_EQ(-EINVAL, ut_ioctl(self->r.server_fd, UMEM_DISCARD, &d));
	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_DISCARD, NULL));
	/* Nothing was discarded. */
	EXPECT_EQ(NPAGES, present(self));
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(discarded)));
}

TEST_F(inst, discard_refaults)
{
	struct umem_request req;
	struct ut_toucher t;
	int sfd = self->r.server_fd;

	ASSERT_EQ(0, ut_copy(sfd, 0, self->src, 4 * UT_PAGE, NULL));
	/* Map all four pages into our page tables. */
	EXPECT_EQ(-1, ut_check(self->map, 0, 4 * UT_PAGE, SEED));

	ASSERT_EQ(0, ut_discard(sfd, PG(1), 2 * UT_PAGE));
	EXPECT_EQ(2, present(self));
	EXPECT_EQ(2, ut_stat(sfd, UT_STAT(discarded)));

	/* The next access faults, is requested again and blocks. */
	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(1), false, 0));
	ASSERT_EQ(1, ut_poll_in(sfd, UT_WAIT_MS));
	ASSERT_EQ(1, ut_read_requests(sfd, &req, 1));
	EXPECT_EQ(PG(1), req.offset);
	ASSERT_EQ(0, ut_wait_stat(sfd, UT_STAT(waiting), 1, UT_WAIT_MS));
	EXPECT_EQ(0, atomic_load(&t.done));

	/* New contents, not the old ones. */
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(1), SEED2));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(-1, ut_check(t.page, PG(1), UT_PAGE, SEED2));
	EXPECT_EQ(-1, ut_check(self->map + PG(1), PG(1), UT_PAGE, SEED2));

	/* Untouched by the discard: pages 0 and 3, no new requests. */
	EXPECT_EQ(-1, ut_check(self->map, 0, UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check(self->map + PG(3), PG(3), UT_PAGE, SEED));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(requests)));
	EXPECT_EQ(3, present(self));
}

/* Discarded data is dropped: marking the page present again gives zeros. */
TEST_F(inst, discard_drops_data)
{
	uint64_t off = PG(5);

	ASSERT_EQ(0, ut_copy(self->r.server_fd, off, self->src + off, UT_PAGE,
			     NULL));
	EXPECT_EQ(-1, ut_check(self->map + off, off, UT_PAGE, SEED));
	ASSERT_EQ(0, ut_discard(self->r.server_fd, off, UT_PAGE));
	ASSERT_EQ(0, ut_mark_present(self->r.server_fd, &off, 1, NULL));
	EXPECT_EQ(-1, ut_check_zero(self->map + off, UT_PAGE));
}

TEST_F(inst, discard_missing_is_noop)
{
	int sfd = self->r.server_fd;

	/* All missing: nothing happens. */
	ASSERT_EQ(0, ut_discard(sfd, 0, SZ));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(discarded)));
	EXPECT_EQ(0, present(self));

	/* Two of four present: only those two count. */
	ASSERT_EQ(0, ut_copy(sfd, PG(9), self->src + PG(9), UT_PAGE, NULL));
	ASSERT_EQ(0, ut_copy(sfd, PG(11), self->src + PG(11), UT_PAGE, NULL));
	ASSERT_EQ(0, ut_discard(sfd, PG(8), 4 * UT_PAGE));
	EXPECT_EQ(2, ut_stat(sfd, UT_STAT(discarded)));
	EXPECT_EQ(0, present(self));
	/* And all four can be installed again. */
	EXPECT_EQ(0, ut_copy(sfd, PG(8), self->src + PG(8), 4 * UT_PAGE, NULL));
	EXPECT_EQ(4, present(self));
}

/*
 * A discard frees only the data of pages that were present: data
 * pwritten for a missing page and not marked yet survives it.
 */
TEST_F(inst, discard_keeps_unmarked_pwrite)
{
	uint64_t off = PG(6);
	int sfd = self->r.server_fd;

	ASSERT_EQ(UT_PAGE, pwrite(sfd, self->src + off, UT_PAGE, off));
	ASSERT_EQ(0, ut_copy(sfd, PG(7), self->src + PG(7), UT_PAGE, NULL));
	ASSERT_EQ(0, ut_discard(sfd, PG(4), 8 * UT_PAGE));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(discarded)));
	ASSERT_EQ(0, ut_mark_present(sfd, &off, 1, NULL));
	EXPECT_EQ(-1, ut_check(self->map + off, off, UT_PAGE, SEED))
		TH_LOG("pwritten data of a missing page lost to a discard");
}

struct marker {
	int sfd;
	uint64_t off;
	atomic_int *stop;
	pthread_mutex_t *lock;
	int error;
};

static void *discarder(void *arg)
{
	struct marker *m = arg;

	while (!atomic_load(m->stop)) {
		pthread_mutex_lock(m->lock);
		if (ut_discard(m->sfd, m->off, UT_PAGE))
			m->error = -EIO;
		pthread_mutex_unlock(m->lock);
	}
	return NULL;
}

/*
 * UMEM_MARK_PRESENT racing UMEM_DISCARD: a page is either missing after
 * both, or present with the data pwritten for it, never present with its
 * data punched out (read as zeros).  The checker holds the discarder off
 * (a mutex around each discard) only while it looks at the page, so
 * that reading it can never block on a page discarded meanwhile.
 */
TEST_F_TIMEOUT(inst, mark_ordered_against_discard, 120)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	atomic_int stop = 0;
	struct marker m = {
		.sfd = self->r.server_fd, .off = PG(12),
		.stop = &stop, .lock = &lock,
	};
	unsigned int i, checked = 0;
	pthread_t th;
	int ret;

	ASSERT_EQ(0, pthread_create(&th, NULL, discarder, &m));
	for (i = 0; i < 3000; i++) {
		ret = pwrite(m.sfd, self->src + m.off, UT_PAGE, m.off);
		if (ret < 0 && errno == EEXIST)
			continue;	/* still present from the last round */
		ASSERT_EQ(UT_PAGE, ret);
		/* Vary the gap so that discards land before, during, after. */
		if (i & 1)
			usleep(i % 300);
		ret = ut_mark_present(m.sfd, &m.off, 1, NULL);
		if (ret == -EEXIST)
			continue;
		ASSERT_EQ(0, ret);
		pthread_mutex_lock(&lock);
		if (page_is_present(self, m.off)) {
			checked++;
			EXPECT_EQ(-1, ut_check(self->map + m.off, m.off,
					       UT_PAGE, SEED))
				TH_LOG("round %u: a present page lost its data", i);
		}
		pthread_mutex_unlock(&lock);
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	EXPECT_EQ(0, m.error);
	EXPECT_LT(0, checked);
}

struct copier {
	int sfd;
	uint64_t off;
	const void *src;
	uint64_t len;
	int ret;
	atomic_int done;
	pthread_t thread;
};

static void *copier_fn(void *arg)
{
	struct copier *c = arg;

	c->ret = ut_copy(c->sfd, c->off, c->src, c->len, NULL);
	atomic_store(&c->done, 1);
	return NULL;
}

/*
 * UMEM_COPY wakes each page's waiters as that page completes, not at the
 * end of the call: the copy's second source page is a missing page of
 * the region itself, so the call blocks after its first page.
 */
TEST_F_TIMEOUT(inst, copy_wakes_pages_as_they_complete, 60)
{
	struct copier c = { .sfd = self->r.server_fd, .off = PG(0),
			    .len = 2 * UT_PAGE };
	struct ut_toucher t;
	char *buf;

	/* [0] a private page holding page 0's data, [1] the region's page 20 */
	buf = mmap(NULL, 2 * UT_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_NE(MAP_FAILED, mmap(buf, UT_PAGE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	memcpy(buf, self->src, UT_PAGE);
	ASSERT_NE(MAP_FAILED, mmap(buf + UT_PAGE, UT_PAGE, PROT_READ,
				   MAP_SHARED | MAP_FIXED, self->r.node_fd,
				   PG(20)));
	c.src = buf;

	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(0), false, 0));
	ASSERT_EQ(0, ut_wait_stat(c.sfd, UT_STAT(waiting), 1, UT_WAIT_MS));
	ASSERT_EQ(0, pthread_create(&c.thread, NULL, copier_fn, &c));
	/* The toucher of page 0 gets it while the copy waits for page 20. */
	EXPECT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(0, atomic_load(&c.done));
	ASSERT_EQ(0, ut_install_page(c.sfd, UT_INSTALL_COPY, PG(20), SEED));
	pthread_join(c.thread, NULL);
	EXPECT_EQ(0, c.ret);
	if (!atomic_load(&t.done))
		ut_toucher_join(&t, UT_WAIT_MS);
	EXPECT_EQ(-1, ut_check(self->map + PG(1), PG(20), UT_PAGE, SEED));
	munmap(buf, 2 * UT_PAGE);
}

struct discard_thread {
	int sfd;
	int ret;
	atomic_int done;
	pthread_t thread;
};

static void *discard_fn(void *arg)
{
	struct discard_thread *d = arg;

	d->ret = ut_discard(d->sfd, PG(30), UT_PAGE);
	atomic_store(&d->done, 1);
	return NULL;
}

/*
 * No install holds install_rwsem while it faults on the daemon's buffer:
 * a COPY whose source is a missing page of the region, a DISCARD queued
 * behind it, and the COPY that installs that source page all complete.
 * (Holding the lock across the fault, the queued discard would block
 * the second COPY, which the first waits for.)
 */
TEST_F_TIMEOUT(inst, no_lock_held_while_faulting_on_source, 60)
{
	struct copier c = { .sfd = self->r.server_fd, .off = PG(2),
			    .len = UT_PAGE };
	struct discard_thread d = { .sfd = self->r.server_fd };
	char *src;

	ASSERT_EQ(0, ut_copy(c.sfd, PG(30), self->src + PG(30), UT_PAGE, NULL));
	src = mmap(NULL, UT_PAGE, PROT_READ, MAP_SHARED, self->r.node_fd,
		   PG(21));
	ASSERT_NE(MAP_FAILED, src);
	c.src = src;
	ASSERT_EQ(0, pthread_create(&c.thread, NULL, copier_fn, &c));
	ASSERT_EQ(0, ut_wait_stat(c.sfd, UT_STAT(waiting), 1, UT_WAIT_MS));
	ASSERT_EQ(0, pthread_create(&d.thread, NULL, discard_fn, &d));
	ut_sleep_ms(200);
	EXPECT_EQ(0, ut_install_page(c.sfd, UT_INSTALL_COPY, PG(21), SEED2))
		TH_LOG("the install of the source page is stuck");
	pthread_join(c.thread, NULL);
	pthread_join(d.thread, NULL);
	EXPECT_EQ(0, c.ret);
	EXPECT_EQ(0, d.ret);
	EXPECT_EQ(-1, ut_check(self->map + PG(2), PG(21), UT_PAGE, SEED2));
	munmap(src, UT_PAGE);
}

/* ---- UMEM_STATS, exactly ---- */

TEST_F_TIMEOUT(inst, stats_exact, 60)
{
	struct umem_copy_entry e = { PG(2), 0, 0 };
	struct umem_request req;
	struct umem_stats st;
	struct ut_toucher t;
	uint64_t off3 = PG(3);
	int sfd = self->r.server_fd;

	/* A blocked fault. */
	ASSERT_EQ(0, ut_toucher_start(&t, self->map, false, 0));
	ASSERT_EQ(0, ut_wait_stat(sfd, UT_STAT(waiting), 1, UT_WAIT_MS));
	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(SZ, st.size);
	EXPECT_EQ(UT_PAGE, st.page_size);
	EXPECT_EQ(NPAGES, st.pages);
	EXPECT_EQ(0, st.pages_present);
	EXPECT_EQ(1, st.requests);
	EXPECT_EQ(1, st.requests_pending);
	EXPECT_EQ(1, st.faults);
	EXPECT_EQ(1, st.waiting);
	EXPECT_EQ(0, st.installed);
	EXPECT_EQ(0, st.discarded);

	ASSERT_EQ(1, ut_read_requests(sfd, &req, 1));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests_pending)));
	ut_sleep_ms(100);
	ASSERT_EQ(0, ut_copy(sfd, 0, self->src, UT_PAGE, NULL));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));

	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(1, st.pages_present);
	EXPECT_EQ(1, st.requests);
	EXPECT_EQ(0, st.requests_pending);
	EXPECT_EQ(1, st.faults);
	EXPECT_EQ(0, st.waiting);
	EXPECT_EQ(1, st.installed);
	EXPECT_GE(st.wait_ns_max, 100000000ULL);
	EXPECT_GE(st.wait_ns_total, st.wait_ns_max);
	/* Nobody else waited: one block, so total == max. */
	EXPECT_EQ(st.wait_ns_total, st.wait_ns_max);

	/* Every install path counts. */
	ASSERT_EQ(0, ut_zero(sfd, PG(1), UT_PAGE, NULL));
	e.src = (uintptr_t)self->src + PG(2);
	ASSERT_EQ(0, ut_copy_vec(sfd, &e, 1, NULL));
	ASSERT_EQ(0, e.result);
	ASSERT_EQ((ssize_t)UT_PAGE, pwrite(sfd, self->src + off3, UT_PAGE, off3));
	ASSERT_EQ(0, ut_mark_present(sfd, &off3, 1, NULL));
	/* Failed installs do not. */
	ASSERT_EQ(-EEXIST, ut_copy(sfd, 0, self->src, UT_PAGE, NULL));
	ASSERT_EQ(-EEXIST, ut_zero(sfd, 0, UT_PAGE, NULL));
	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(4, st.pages_present);
	EXPECT_EQ(4, st.installed);

	/* Discard three pages (one missing page in the range does not count). */
	ASSERT_EQ(0, ut_discard(sfd, PG(1), 4 * UT_PAGE));
	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(1, st.pages_present);
	EXPECT_EQ(3, st.discarded);
	EXPECT_EQ(4, st.installed);

	/* Touching a present page is not a fault. */
	EXPECT_EQ(-1, ut_check(self->map, 0, UT_PAGE, SEED));
	ASSERT_EQ(0, ut_stats(sfd, &st));
	EXPECT_EQ(1, st.faults);
	EXPECT_EQ(1, st.requests);
}

/* ---- no partly written page, ever ---- */

#define TEAR_PAGES	512
#define TEAR_READERS	4

struct tear_reader {
	pthread_t thread;
	const char *map;
	unsigned int index;
	unsigned int torn;		/* pages seen with mixed contents */
	long first_torn;
	uint64_t checked;
};

#define TEAR_RUN	16	/* pages per UMEM_COPY run, at every 64th page */

/* How page @pg is installed in the tear test, and so what it holds. */
static enum ut_install tear_how(unsigned int pg)
{
	if (pg % 64 < TEAR_RUN)
		return UT_INSTALL_COPY;
	switch (pg % 4) {
	case 0:
		return UT_INSTALL_COPY;
	case 1:
		return UT_INSTALL_PWRITE;
	case 2:
		return UT_INSTALL_ZERO;
	default:
		return UT_INSTALL_COPY_VEC;
	}
}

static void *tear_reader_fn(void *arg)
{
	struct tear_reader *r = arg;
	uint64_t copy[UT_PAGE / 8];
	unsigned int pass, i, pg;

	r->first_torn = -1;
	for (pass = 0; pass < 3; pass++) {
		for (i = 0; i < TEAR_PAGES; i++) {
			pg = (i + r->index * 13) % TEAR_PAGES;
			/* Blocks while missing, then must see all of it. */
			memcpy(copy, r->map + PG(pg), UT_PAGE);
			r->checked++;
			if (ut_check_installed(copy, tear_how(pg), PG(pg), SEED) != -1) {
				r->torn++;
				if (r->first_torn < 0)
					r->first_torn = pg;
			}
		}
	}
	return NULL;
}

TEST_F_TIMEOUT(inst, no_partial_page, 240)
{
	struct tear_reader rd[TEAR_READERS];
	struct ut_region big;
	char *map, *src;
	unsigned int i, pg;
	uint64_t off;
	int64_t copied;

	ASSERT_EQ(0, ut_region_init(&big, PG(TEAR_PAGES), "tear"));
	ASSERT_EQ(0, ut_region_open_node(&big));
	map = ut_map(big.node_fd, PG(TEAR_PAGES), 0);
	ASSERT_NE(MAP_FAILED, map);
	src = malloc(PG(TEAR_PAGES));
	ASSERT_NE(NULL, src);
	ut_fill(src, 0, PG(TEAR_PAGES), SEED);

	for (i = 0; i < TEAR_READERS; i++) {
		rd[i] = (struct tear_reader){ .map = map, .index = i };
		ASSERT_EQ(0, pthread_create(&rd[i].thread, NULL, tear_reader_fn,
					    &rd[i]));
	}
	/*
	 * Install while they read: single pages of every kind, and runs of
	 * TEAR_RUN pages per UMEM_COPY, so that waiters on later pages of a
	 * run race with the copy of the earlier ones.
	 */
	for (pg = 0; pg < TEAR_PAGES; ) {
		off = PG(pg);
		if (pg % 64 == 0) {
			ASSERT_EQ(0, ut_copy(big.server_fd, off, src + off,
					     PG(TEAR_RUN), &copied))
				TH_LOG("run at page %u", pg);
			ASSERT_EQ((int64_t)PG(TEAR_RUN), copied);
			pg += TEAR_RUN;
		} else {
			ASSERT_EQ(0, ut_install_page(big.server_fd, tear_how(pg),
						     off, SEED))
				TH_LOG("page %u", pg);
			pg++;
		}
		if (pg % 32 == 0)
			ut_sleep_ms(1);
	}
	for (i = 0; i < TEAR_READERS; i++) {
		pthread_join(rd[i].thread, NULL);
		EXPECT_EQ(0, rd[i].torn) TH_LOG("reader %u: first torn page %ld",
						i, rd[i].first_torn);
		EXPECT_EQ(3 * TEAR_PAGES, rd[i].checked);
	}
	EXPECT_EQ(TEAR_PAGES, ut_stat(big.server_fd, UT_STAT(pages_present)));
	munmap(map, PG(TEAR_PAGES));
	free(src);
	ut_region_fini(&big);
}

/*
 * pwrite() checks that its pages are missing before it writes them; a
 * UMEM_COPY of the last page of a long pwrite() may land in between.
 * Whatever the order, a page made present by UMEM_COPY must keep what
 * UMEM_COPY put there: pwrite() either fails with EEXIST or its data for
 * that page is overwritten by the copy -- never the other way round.
 */
#define RACE_PAGES	256

struct pwriter {
	pthread_t thread;
	int sfd;
	const char *buf;
	atomic_int go;
	ssize_t ret;
	int err;
};

static void *pwriter_fn(void *arg)
{
	struct pwriter *w = arg;

	while (!atomic_load(&w->go))
		;
	w->ret = pwrite(w->sfd, w->buf, PG(RACE_PAGES), 0);
	w->err = w->ret < 0 ? errno : 0;
	return NULL;
}

TEST_F_TIMEOUT(inst, pwrite_never_overwrites_present, 240)
{
	const uint64_t last = PG(RACE_PAGES - 1);
	unsigned int iter, bad = 0, eexist = 0;
	struct ut_region big;
	struct pwriter w;
	char *map, *bbuf;

	ASSERT_EQ(0, ut_region_init(&big, PG(RACE_PAGES), "race"));
	ASSERT_EQ(0, ut_region_open_node(&big));
	map = ut_map(big.node_fd, PG(RACE_PAGES), 0);
	ASSERT_NE(MAP_FAILED, map);
	bbuf = malloc(PG(RACE_PAGES));
	ASSERT_NE(NULL, bbuf);
	ut_fill(bbuf, 0, PG(RACE_PAGES), SEED2);

	for (iter = 0; iter < 40; iter++) {
		ASSERT_EQ(0, ut_discard(big.server_fd, 0, PG(RACE_PAGES)));
		w = (struct pwriter){ .sfd = big.server_fd, .buf = bbuf };
		ASSERT_EQ(0, pthread_create(&w.thread, NULL, pwriter_fn, &w));
		atomic_store(&w.go, 1);
		usleep((iter % 20) * 150);
		ASSERT_EQ(0, ut_install_page(big.server_fd, UT_INSTALL_COPY,
					     last, SEED)) TH_LOG("iter %u", iter);
		pthread_join(w.thread, NULL);
		if (w.ret < 0) {
			EXPECT_EQ(EEXIST, w.err);
			eexist++;
		} else {
			/* A short write, stopping at the copied page, is fine. */
			EXPECT_LE(w.ret, (ssize_t)PG(RACE_PAGES));
			EXPECT_GT(w.ret, 0);
		}
		if (ut_check(map + last, last, UT_PAGE, SEED) != -1) {
			bad++;
			TH_LOG("iter %u: present page overwritten by pwrite (ret %zd)",
			       iter, w.ret);
		}
	}
	TH_LOG("%u of 40 pwrite()s saw the copy and failed with EEXIST", eexist);
	EXPECT_EQ(0, bad);
	munmap(map, PG(RACE_PAGES));
	free(bbuf);
	ut_region_fini(&big);
}

/* ---- a complete region ---- */

TEST_F(inst, complete_region_no_fault_accounting)
{
	struct umem_stats before, after;
	char *m2;
	unsigned int i;

	ASSERT_EQ(0, ut_copy(self->r.server_fd, 0, self->src, SZ, NULL));
	ASSERT_EQ(0, ut_stats(self->r.server_fd, &before));
	EXPECT_EQ(NPAGES, before.pages_present);

	/* A fresh mapping has no PTEs: every access is a real fault. */
	m2 = ut_map(self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, m2);
	for (i = 0; i < NPAGES; i++) {
		EXPECT_EQ(ut_pattern_word(PG(i), SEED), *(uint64_t *)(m2 + PG(i)));
		m2[PG(i) + 8] = 1;
	}
	munmap(m2, SZ);
	/* And the fixture's mapping, reading and writing. */
	for (i = 0; i < NPAGES; i++)
		self->map[PG(i) + 16] = 2;

	ASSERT_EQ(0, ut_stats(self->r.server_fd, &after));
	EXPECT_EQ(before.faults, after.faults);
	EXPECT_EQ(before.requests, after.requests);
	EXPECT_EQ(0, after.requests_pending);
	EXPECT_EQ(0, after.waiting);
	EXPECT_EQ(0, after.faults);
}

TEST_HARNESS_MAIN
