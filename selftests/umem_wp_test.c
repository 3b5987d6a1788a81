// SPDX-License-Identifier: GPL-2.0
/*
 * Write protection (UMEM_CREATE_WP, UMEM_WRITEPROTECT), regions born
 * present (UMEM_CREATE_PRESENT) and UMEM_ATTACH: what a live snapshot
 * stands on.
 *
 * Once UMEM_WRITEPROTECT returns, no write reaches a protected page until
 * the daemon unprotects it: not through a PTE that was writable before
 * (zapped), not through one a read mapped read-only since (->page_mkwrite),
 * not after mprotect() games, not from a syscall writing into the mapping,
 * a forked child, process_vm_writev() or O_DIRECT (get_user_pages()).  The
 * writers block behind one UMEM_REQ_WP request per page; readers never
 * block.  A protected page can be discarded; a daemon's death lets the
 * writers go.  The churn test checks the invariant a snapshot needs: every
 * page the daemon saves holds exactly the data of the moment it was
 * protected, and no write is lost.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "umem_test.h"

#define NPAGES	64
#define SZ	(NPAGES * UT_PAGE)
#define SEED	0x3d
#define PG(n)	((uint64_t)(n) * UT_PAGE)
#define WP_REQ	(UMEM_REQ_WP | UMEM_REQ_WRITE)
/* Long enough for a blocked task to be seen blocked under TCG. */
#define BLOCK_MS	300

static bool has_features(uint64_t want)
{
	struct umem_api api = { .api = UMEM_API };
	int fd = ut_open_ctl();
	bool ok;

	if (fd < 0)
		return false;
	ok = ut_get_api(fd, &api) == 0 && (api.features & want) == want;
	close(fd);
	return ok;
}

#define UT_NO_WP "module lacks UMEM_F_WRITE_PROTECT / CREATE_PRESENT / ATTACH (umem < 0.5)"
#define WP_FEATURES (UMEM_F_WRITE_PROTECT | UMEM_F_CREATE_PRESENT | UMEM_F_ATTACH)

/* Read exactly one request (the server fd is blocking) within @ms. */
static int read_one(int sfd, struct umem_request *req, int ms)
{
	if (ut_poll_in(sfd, ms) <= 0)
		return -ETIMEDOUT;
	return ut_read_requests(sfd, req, 1) == 1 ? 0 : -EIO;
}

/* Nothing more queued: a non-blocking read gives EAGAIN. */
static bool queue_empty(int sfd)
{
	struct umem_request req;
	ssize_t n;

	ut_set_nonblock(sfd, true);
	n = ut_read_requests(sfd, &req, 1);
	ut_set_nonblock(sfd, false);
	return n == -EAGAIN;
}

FIXTURE(wp) {
	struct ut_region r;
	char *map;
};

FIXTURE_SETUP(wp)
{
	ut_region_clear(&self->r);
	self->map = MAP_FAILED;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	if (!has_features(WP_FEATURES))
		SKIP(return, UT_NO_WP);
	ASSERT_EQ(0, ut_region_init_flags(&self->r, SZ, "wp",
					  UMEM_CREATE_WP | UMEM_CREATE_PRESENT));
	ASSERT_EQ(0, ut_region_open_node(&self->r));
	self->map = ut_map(self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, self->map);
}

FIXTURE_TEARDOWN(wp)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, SZ);
	ut_region_fini(&self->r);
}

static uint64_t *word(FIXTURE_DATA(wp) *self, unsigned int pg)
{
	return (uint64_t *)(self->map + PG(pg));
}

/* Wait until @n tasks block on the region. */
static int wait_waiting(FIXTURE_DATA(wp) *self, uint64_t n)
{
	return ut_wait_stat(self->r.server_fd, UT_STAT(waiting), n, UT_WAIT_MS);
}

/* Only the module is needed. */
FIXTURE(any) {
	int unused;
};

FIXTURE_SETUP(any)
{
	self->unused = 0;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
}

FIXTURE_TEARDOWN(any)
{
}

/* For tests that make their own regions. */
FIXTURE(bare) {
	int unused;
};

FIXTURE_SETUP(bare)
{
	self->unused = 0;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	if (!has_features(WP_FEATURES))
		SKIP(return, UT_NO_WP);
}

FIXTURE_TEARDOWN(bare)
{
}

TEST_F(any, features)
{
	struct umem_api api = { .api = UMEM_API };
	int fd;

	fd = ut_open_ctl();
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ut_get_api(fd, &api));
	close(fd);
	if (!(api.features & UMEM_F_WRITE_PROTECT))
		SKIP(return, UT_NO_WP);
	EXPECT_TRUE(api.features & UMEM_F_CREATE_PRESENT);
	EXPECT_TRUE(api.features & UMEM_F_ATTACH);
	EXPECT_TRUE(api.ioctls & (1ULL << _IOC_NR(UMEM_WRITEPROTECT)));
	EXPECT_TRUE(api.ioctls & (1ULL << _IOC_NR(UMEM_ATTACH)));
}

TEST_F(bare, create_flags)
{
	char name[UMEM_NAME_MAX];
	struct umem_create c;
	int ctl;

	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	ut_make_name(name, "wpflags");
	EXPECT_EQ(-EINVAL, ut_create_flags(ctl, name, SZ, 1U << 2, &c));
	EXPECT_EQ(-EINVAL, ut_create_flags(ctl, name, SZ, ~0U, &c));
	close(ctl);
}

/* Every page present from the start, zeros, and no daemon needed. */
TEST_F(wp, present_region)
{
	struct umem_stats st;
	unsigned int i;

	ASSERT_EQ(0, ut_stats(self->r.server_fd, &st));
	EXPECT_EQ(NPAGES, st.pages_present);
	EXPECT_EQ(-1, ut_check_zero(self->map, SZ));
	for (i = 0; i < NPAGES; i++)
		*word(self, i) = 1000 + i;
	ASSERT_EQ(0, ut_stats(self->r.server_fd, &st));
	EXPECT_EQ(0, st.requests);
	EXPECT_EQ(0, st.faults);
	EXPECT_TRUE(queue_empty(self->r.server_fd));
	/* Detached (no server any more): still all there, no SIGBUS. */
	close(self->r.server_fd);
	self->r.server_fd = -1;
	for (i = 0; i < NPAGES; i++) {
		EXPECT_EQ(1000 + i, *word(self, i));
		*word(self, i) += 1;
	}
}

TEST_F(wp, bad_args)
{
	struct umem_writeprotect w;
	int sfd = self->r.server_fd;

	EXPECT_EQ(-EINVAL, ut_writeprotect(sfd, 1, UT_PAGE, true, NULL));
	EXPECT_EQ(-EINVAL, ut_writeprotect(sfd, 0, 100, true, NULL));
	EXPECT_EQ(-EINVAL, ut_writeprotect(sfd, 0, 0, true, NULL));
	EXPECT_EQ(-EINVAL, ut_writeprotect(sfd, SZ, UT_PAGE, true, NULL));
	EXPECT_EQ(-EINVAL, ut_writeprotect(sfd, 0, SZ + UT_PAGE, false, NULL));
	memset(&w, 0, sizeof(w));
	w.len = UT_PAGE;
	w.mode = 1ULL << 1;
	EXPECT_EQ(-EINVAL, ut_ioctl(sfd, UMEM_WRITEPROTECT, &w));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(pages_protected)));
	/* Unprotecting what is not protected is a no-op. */
	EXPECT_EQ(0, ut_writeprotect(sfd, 0, SZ, false, NULL));
}

TEST_F(bare, not_wp_region)
{
	struct ut_region r;

	ASSERT_EQ(0, ut_region_init_flags(&r, SZ, "nowp", UMEM_CREATE_PRESENT));
	EXPECT_EQ(-EOPNOTSUPP, ut_writeprotect(r.server_fd, 0, SZ, true, NULL));
	ut_region_fini(&r);
}

/* A range with a missing page: ENOENT, nothing protected. */
TEST_F(bare, missing_page)
{
	struct ut_region r;
	int64_t done = -1;
	unsigned int i;

	ASSERT_EQ(0, ut_region_init_flags(&r, SZ, "wpmiss", UMEM_CREATE_WP));
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, ut_install_page(r.server_fd, UT_INSTALL_COPY, PG(i), SEED));
	EXPECT_EQ(-ENOENT, ut_writeprotect(r.server_fd, 0, PG(8), true, &done));
	EXPECT_EQ(0, done);
	EXPECT_EQ(0, ut_stat(r.server_fd, UT_STAT(pages_protected)));
	EXPECT_EQ(0, ut_writeprotect(r.server_fd, 0, PG(4), true, &done));
	EXPECT_EQ(PG(4), done);
	EXPECT_EQ(4, ut_stat(r.server_fd, UT_STAT(pages_protected)));
	ut_region_fini(&r);
}

/* A detached region (bound daemon closed a copy) cannot be protected. */
TEST_F(wp, detached_enxio)
{
	struct umem_bind b;
	int dup_fd;

	memset(&b, 0, sizeof(b));
	ASSERT_EQ(0, ut_ioctl(self->r.server_fd, UMEM_BIND, &b));
	dup_fd = dup(self->r.server_fd);
	ASSERT_LE(0, dup_fd);
	close(dup_fd);		/* the bound process closes: detached */
	EXPECT_EQ(-ENXIO, ut_writeprotect(self->r.server_fd, 0, SZ, true, NULL));
}

TEST_F(wp, idempotent_and_ranges)
{
	int sfd = self->r.server_fd;

	ASSERT_EQ(0, ut_writeprotect(sfd, 0, SZ, true, NULL));
	ASSERT_EQ(0, ut_writeprotect(sfd, 0, SZ, true, NULL));
	EXPECT_EQ(NPAGES, ut_stat(sfd, UT_STAT(pages_protected)));
	ASSERT_EQ(0, ut_writeprotect(sfd, PG(NPAGES / 2), SZ / 2, false, NULL));
	EXPECT_EQ(NPAGES / 2, ut_stat(sfd, UT_STAT(pages_protected)));
	ASSERT_EQ(0, ut_writeprotect(sfd, PG(10), PG(4), true, NULL));
	EXPECT_EQ(NPAGES / 2, ut_stat(sfd, UT_STAT(pages_protected)));
	ASSERT_EQ(0, ut_writeprotect(sfd, PG(40), PG(4), true, NULL));
	EXPECT_EQ(NPAGES / 2 + 4, ut_stat(sfd, UT_STAT(pages_protected)));
	/* Unprotected pages stay writable without a request. */
	*word(self, 50) = 5;
	EXPECT_TRUE(queue_empty(sfd));
}

/*
 * Four writers on one protected page: one request, all blocked; a reader
 * of the same page goes through; the daemon still sees the old data; the
 * unprotect lets every write land.
 */
TEST_F(wp, writers_block_readers_do_not)
{
	struct ut_toucher w[4], rd;
	struct umem_request req;
	int sfd = self->r.server_fd;
	unsigned int i;
	char *view;

	*word(self, 3) = 0x01dULL;
	ASSERT_EQ(0, ut_writeprotect(sfd, PG(3), UT_PAGE, true, NULL));
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, ut_toucher_start(&w[i], word(self, 3), true, 100 + i));
	ASSERT_EQ(0, wait_waiting(self, 4));
	ASSERT_EQ(0, read_one(sfd, &req, UT_WAIT_MS));
	EXPECT_EQ(PG(3), req.offset);
	EXPECT_EQ(WP_REQ, req.flags);
	EXPECT_NE(0, req.tid);
	EXPECT_TRUE(queue_empty(sfd));
	EXPECT_LE(4, ut_stat(sfd, UT_STAT(wp_faults)));
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(pages_protected)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(faults)));

	/* A reader of the protected page does not wait. */
	ASSERT_EQ(0, ut_toucher_start(&rd, word(self, 3), false, 0));
	ASSERT_EQ(0, ut_toucher_join(&rd, UT_WAIT_MS));
	EXPECT_EQ(0x01dULL, rd.seen);

	/* The daemon's own view: the old data, all writers still blocked. */
	view = ut_map(sfd, SZ, 0);
	ASSERT_NE(MAP_FAILED, view);
	EXPECT_EQ(0x01dULL, *(uint64_t *)(view + PG(3)));
	for (i = 0; i < 4; i++)
		EXPECT_EQ(0, atomic_load(&w[i].done));

	ASSERT_EQ(0, ut_writeprotect(sfd, PG(3), UT_PAGE, false, NULL));
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, ut_toucher_join(&w[i], UT_WAIT_MS));
	EXPECT_LE(100, *word(self, 3));
	EXPECT_GE(103, *word(self, 3));
	EXPECT_EQ(*word(self, 3), *(uint64_t *)(view + PG(3)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(pages_protected)));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(waiting)));
	munmap(view, SZ);
}

/* A write through a PTE that was writable before the protect. */
TEST_F(wp, writable_pte_is_zapped)
{
	struct ut_toucher w;
	struct umem_request req;

	*word(self, 5) = 1;		/* writable, dirty PTE */
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(5), UT_PAGE, true, NULL));
	ASSERT_EQ(0, ut_toucher_start(&w, word(self, 5), true, 2));
	ASSERT_EQ(0, wait_waiting(self, 1));
	ASSERT_EQ(0, read_one(self->r.server_fd, &req, UT_WAIT_MS));
	EXPECT_EQ(PG(5), req.offset);
	EXPECT_EQ(1, *word(self, 5));
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(5), UT_PAGE, false, NULL));
	ASSERT_EQ(0, ut_toucher_join(&w, UT_WAIT_MS));
	EXPECT_EQ(2, *word(self, 5));
}

/* A read maps the protected page read-only; the write after it waits. */
TEST_F(wp, write_after_read)
{
	struct ut_toucher w;
	struct umem_request req;
	volatile uint64_t v;

	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(6), UT_PAGE, true, NULL));
	v = *word(self, 6);		/* read fault: read-only PTE */
	EXPECT_EQ(0, v);
	ASSERT_EQ(0, ut_toucher_start(&w, word(self, 6), true, 7));
	ASSERT_EQ(0, wait_waiting(self, 1));
	ASSERT_EQ(0, read_one(self->r.server_fd, &req, UT_WAIT_MS));
	EXPECT_EQ(WP_REQ, req.flags);
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(6), UT_PAGE, false, NULL));
	ASSERT_EQ(0, ut_toucher_join(&w, UT_WAIT_MS));
	EXPECT_EQ(7, *word(self, 6));
}

/* mprotect() cannot make a protected page's read-only PTE writable. */
TEST_F(wp, mprotect_games)
{
	struct ut_toucher w;

	*word(self, 7) = 1;
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(7), UT_PAGE, true, NULL));
	EXPECT_EQ(1, *word(self, 7));
	ASSERT_EQ(0, mprotect(self->map, SZ, PROT_READ));
	ASSERT_EQ(0, mprotect(self->map, SZ, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, ut_toucher_start(&w, word(self, 7), true, 2));
	ASSERT_EQ(0, wait_waiting(self, 1));
	EXPECT_EQ(1, *word(self, 7));
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(7), UT_PAGE, false, NULL));
	ASSERT_EQ(0, ut_toucher_join(&w, UT_WAIT_MS));
	EXPECT_EQ(2, *word(self, 7));
}

/* read(pipe, mapping): the kernel's copy into the page waits too. */
TEST_F(wp, syscall_writes_into_page)
{
	struct ut_io_thread io;
	struct umem_request req;
	char msg[64];
	int p[2];

	memset(msg, 'x', sizeof(msg));
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ((ssize_t)sizeof(msg), write(p[1], msg, sizeof(msg)));
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(8), UT_PAGE, true, NULL));
	ASSERT_EQ(0, ut_io_start(&io, UT_IO_READ, p[0], self->map + PG(8),
				 sizeof(msg), 0));
	ASSERT_EQ(0, wait_waiting(self, 1));
	ASSERT_EQ(0, read_one(self->r.server_fd, &req, UT_WAIT_MS));
	EXPECT_EQ(PG(8), req.offset);
	EXPECT_EQ(WP_REQ, req.flags);
	EXPECT_EQ(0, atomic_load(&io.done));
	EXPECT_EQ(-1, ut_check_zero(self->map + PG(8), UT_PAGE));
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(8), UT_PAGE, false, NULL));
	ASSERT_EQ(0, ut_io_join(&io, UT_WAIT_MS));
	EXPECT_EQ((ssize_t)sizeof(msg), io.ret);
	EXPECT_EQ(0, memcmp(self->map + PG(8), msg, sizeof(msg)));
	close(p[0]);
	close(p[1]);
}

/* process_vm_writev() from another process: get_user_pages(FOLL_WRITE). */
TEST_F(wp, process_vm_writev_waits)
{
	struct umem_request req;
	uint64_t val = 0xfeed;
	int status = 0;
	pid_t pid, parent = getpid();
	void *dst = self->map + PG(9);

	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(9), UT_PAGE, true, NULL));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct iovec l = { .iov_base = &val, .iov_len = sizeof(val) };
		struct iovec rm = { .iov_base = dst, .iov_len = sizeof(val) };

		_exit(process_vm_writev(parent, &l, 1, &rm, 1, 0) ==
		      sizeof(val) ? 0 : 1);
	}
	ASSERT_EQ(0, read_one(self->r.server_fd, &req, UT_WAIT_MS));
	EXPECT_EQ(PG(9), req.offset);
	EXPECT_EQ(WP_REQ, req.flags);
	ut_sleep_ms(BLOCK_MS);
	EXPECT_EQ(-ETIMEDOUT, ut_waitpid_timeout(pid, &status, 10));
	EXPECT_EQ(0, *word(self, 9));
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(9), UT_PAGE, false, NULL));
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	EXPECT_EQ(0xfeed, *word(self, 9));
}

/*
 * An O_DIRECT read from a block device into the protected page: the
 * block layer pins the page with get_user_pages(FOLL_WRITE), which waits.
 * The device is a loop device over a tmpfs file.
 */
static int loop_setup(char *dev, size_t len, int *backing)
{
	char path[] = "/tmp/umem-wp-loopXXXXXX";
	char buf[UT_PAGE];
	int ctl, nr, fd, lfd;

	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	unlink(path);
	memset(buf, 'L', sizeof(buf));
	if (pwrite(fd, buf, sizeof(buf), 0) != sizeof(buf) ||
	    ftruncate(fd, 1 << 20)) {
		close(fd);
		return -EIO;
	}
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0 && system("modprobe loop >/dev/null 2>&1") == 0)
		ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		close(fd);
		return -ENODEV;
	}
	nr = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	snprintf(dev, len, "/dev/loop%d", nr);
	lfd = nr < 0 ? -1 : open(dev, O_RDWR | O_CLOEXEC);
	if (lfd < 0 || ioctl(lfd, LOOP_SET_FD, fd)) {
		if (lfd >= 0)
			close(lfd);
		close(fd);
		return -ENODEV;
	}
	close(lfd);
	*backing = fd;
	return 0;
}

TEST_F(wp, odirect_read_waits)
{
	struct ut_io_thread io;
	struct umem_request req;
	char dev[32];
	int backing, dfd, lfd;

	if (loop_setup(dev, sizeof(dev), &backing))
		SKIP(return, "no loop device to read with O_DIRECT");
	dfd = open(dev, O_RDONLY | O_DIRECT | O_CLOEXEC);
	ASSERT_LE(0, dfd);
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(20), UT_PAGE, true, NULL));
	ASSERT_EQ(0, ut_io_start(&io, UT_IO_PREAD, dfd, self->map + PG(20),
				 UT_PAGE, 0));
	ASSERT_EQ(0, read_one(self->r.server_fd, &req, UT_WAIT_MS));
	EXPECT_EQ(PG(20), req.offset);
	EXPECT_EQ(WP_REQ, req.flags);
	ut_sleep_ms(BLOCK_MS);
	EXPECT_EQ(0, atomic_load(&io.done));
	EXPECT_EQ(-1, ut_check_zero(self->map + PG(20), UT_PAGE));
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(20), UT_PAGE, false, NULL));
	ASSERT_EQ(0, ut_io_join(&io, UT_WAIT_MS));
	EXPECT_EQ(UT_PAGE, io.ret);
	EXPECT_EQ('L', self->map[PG(20)]);
	EXPECT_EQ('L', self->map[PG(20) + UT_PAGE - 1]);
	close(dfd);
	lfd = open(dev, O_RDWR | O_CLOEXEC);
	if (lfd >= 0) {
		ioctl(lfd, LOOP_CLR_FD, 0);
		close(lfd);
	}
	close(backing);
}

/*
 * /proc/PID/mem cannot drop the target's mmap_lock: the write fails at
 * once (EIO) with the request queued, as for a missing page.
 */
TEST_F(wp, proc_mem_fails_fast)
{
	struct umem_request req;
	uint64_t val = 0xabc;
	uint64_t t0;
	ssize_t n;
	int fd;

	fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(10), UT_PAGE, true, NULL));
	t0 = ut_now_ns();
	n = pwrite(fd, &val, sizeof(val), (off_t)(uintptr_t)word(self, 10));
	EXPECT_EQ(-1, n);
	EXPECT_TRUE(errno == EIO || errno == EFAULT);
	EXPECT_GT(UT_WAIT_MS * 1000000ULL, ut_now_ns() - t0);
	ASSERT_EQ(0, read_one(self->r.server_fd, &req, UT_WAIT_MS));
	EXPECT_EQ(WP_REQ, req.flags);
	EXPECT_EQ(0, *word(self, 10));
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(10), UT_PAGE, false, NULL));
	EXPECT_EQ((ssize_t)sizeof(val),
		  pwrite(fd, &val, sizeof(val), (off_t)(uintptr_t)word(self, 10)));
	EXPECT_EQ(0xabc, *word(self, 10));
	close(fd);
}

/* A forked child's write waits, and a SIGKILL still ends a waiting task. */
TEST_F(wp, fork_and_kill)
{
	struct umem_request req;
	int status = 0;
	pid_t pid;

	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(11), UT_PAGE, true, NULL));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		*word(self, 11) = 11;
		_exit(0);
	}
	ASSERT_EQ(0, read_one(self->r.server_fd, &req, UT_WAIT_MS));
	EXPECT_EQ(PG(11), req.offset);
	ASSERT_EQ(0, wait_waiting(self, 1));
	kill(pid, SIGKILL);
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	EXPECT_EQ(0, *word(self, 11));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		*word(self, 11) = 12;
		_exit(0);
	}
	ASSERT_EQ(0, wait_waiting(self, 1));
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, PG(11), UT_PAGE, false, NULL));
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	EXPECT_EQ(12, *word(self, 11));
}

/* A protected page discarded: its writer asks for the missing page. */
TEST_F(wp, discard_protected)
{
	struct ut_toucher w;
	struct umem_request req;
	int sfd = self->r.server_fd;

	ASSERT_EQ(0, ut_writeprotect(sfd, PG(12), UT_PAGE, true, NULL));
	ASSERT_EQ(0, ut_toucher_start(&w, word(self, 12), true, 77));
	ASSERT_EQ(0, read_one(sfd, &req, UT_WAIT_MS));
	EXPECT_EQ(WP_REQ, req.flags);
	ASSERT_EQ(0, ut_discard(sfd, PG(12), UT_PAGE));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(pages_protected)));
	ASSERT_EQ(0, read_one(sfd, &req, UT_WAIT_MS));
	EXPECT_EQ(PG(12), req.offset);
	EXPECT_EQ(UMEM_REQ_WRITE, req.flags);
	ASSERT_EQ(0, ut_install_page(sfd, UT_INSTALL_COPY, PG(12), SEED));
	ASSERT_EQ(0, ut_toucher_join(&w, UT_WAIT_MS));
	EXPECT_EQ(77, *word(self, 12));
	EXPECT_EQ(ut_pattern_word(PG(12) + 8, SEED), word(self, 12)[1]);
}

/* The daemon dies: the writers go on, with their data. */
TEST_F(wp, detach_releases_writers)
{
	struct ut_toucher w;
	struct umem_request req;

	*word(self, 13) = 1;
	ASSERT_EQ(0, ut_writeprotect(self->r.server_fd, 0, SZ, true, NULL));
	ASSERT_EQ(0, ut_toucher_start(&w, word(self, 13), true, 2));
	ASSERT_EQ(0, read_one(self->r.server_fd, &req, UT_WAIT_MS));
	ASSERT_EQ(0, wait_waiting(self, 1));
	close(self->r.server_fd);
	self->r.server_fd = -1;
	ASSERT_EQ(0, ut_toucher_join(&w, UT_WAIT_MS));
	EXPECT_EQ(2, *word(self, 13));
	/* Every page is writable again. */
	*word(self, 40) = 40;
	EXPECT_EQ(40, *word(self, 40));
}

/* An unprotect drops the request the daemon has not read yet. */
TEST_F(wp, unprotect_drops_unread_request)
{
	struct ut_toucher w;
	int sfd = self->r.server_fd;

	ASSERT_EQ(0, ut_writeprotect(sfd, PG(14), UT_PAGE, true, NULL));
	ASSERT_EQ(0, ut_toucher_start(&w, word(self, 14), true, 14));
	ASSERT_EQ(0, ut_wait_stat(sfd, UT_STAT(requests_pending), 1, UT_WAIT_MS));
	ASSERT_EQ(0, ut_writeprotect(sfd, PG(14), UT_PAGE, false, NULL));
	ASSERT_EQ(0, ut_toucher_join(&w, UT_WAIT_MS));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(requests_pending)));
	EXPECT_TRUE(queue_empty(sfd));
	EXPECT_EQ(14, *word(self, 14));
}

/*
 * Protect/unprotect churn against writers, as a snapshot does it: every
 * cycle protects all pages, then saves each page (requested ones first)
 * and unprotects it.  Writer t writes 1, 2, 3, ... to its page and then
 * records the value in done[t].  A page saved in a cycle must hold the
 * value of the moment it was protected: the writer's done[] value read
 * right after the protect returned, or one more (a store that landed
 * before the protect while done[] was not updated yet), never more.
 * At the end no write is lost.
 */
#define CHURN_PAGES	8
#define CHURN_CYCLES	60

struct churn_writer {
	volatile uint64_t *p;
	_Atomic uint64_t done;
	atomic_bool stop;
	pthread_t th;
};

static void *churn_write(void *arg)
{
	struct churn_writer *w = arg;
	uint64_t v = 0;

	while (!atomic_load(&w->stop)) {
		*w->p = ++v;
		atomic_store(&w->done, v);
	}
	return NULL;
}

TEST_F(wp, churn_no_write_lost_or_early)
{
	struct churn_writer w[CHURN_PAGES];
	uint64_t at_protect[CHURN_PAGES];
	struct umem_request reqs[16];
	int sfd = self->r.server_fd;
	unsigned int c, i, bad = 0, wp_reqs = 0;
	char *view;

	view = ut_map(sfd, SZ, 0);
	ASSERT_NE(MAP_FAILED, view);
	for (i = 0; i < CHURN_PAGES; i++) {
		w[i].p = (volatile uint64_t *)word(self, 30 + i);
		atomic_store(&w[i].done, 0);
		atomic_store(&w[i].stop, false);
		ASSERT_EQ(0, pthread_create(&w[i].th, NULL, churn_write, &w[i]));
	}
	for (c = 0; c < CHURN_CYCLES; c++) {
		bool saved[CHURN_PAGES] = { false };
		unsigned int left = CHURN_PAGES;

		ASSERT_EQ(0, ut_writeprotect(sfd, PG(30), PG(CHURN_PAGES), true, NULL));
		for (i = 0; i < CHURN_PAGES; i++)
			at_protect[i] = atomic_load(&w[i].done);
		ut_set_nonblock(sfd, true);
		for (i = 0; left; i = (i + 1) % CHURN_PAGES) {
			ssize_t n = ut_read_requests(sfd, reqs, 16), k;
			unsigned int pg = i;

			/* Requested pages first, as a snapshot daemon does. */
			for (k = 0; k < n; k++) {
				unsigned int q = reqs[k].offset / UT_PAGE - 30;

				wp_reqs++;
				if (q < CHURN_PAGES && !saved[q]) {
					pg = q;
					break;
				}
			}
			if (saved[pg])
				continue;
			{
				uint64_t v = *(volatile uint64_t *)(view + PG(30 + pg));

				if (v != at_protect[pg] && v != at_protect[pg] + 1)
					bad++;
			}
			saved[pg] = true;
			left--;
			ASSERT_EQ(0, ut_writeprotect(sfd, PG(30 + pg), UT_PAGE,
						     false, NULL));
		}
		ut_set_nonblock(sfd, false);
	}
	for (i = 0; i < CHURN_PAGES; i++) {
		atomic_store(&w[i].stop, true);
		pthread_join(w[i].th, NULL);
		EXPECT_EQ(atomic_load(&w[i].done), *word(self, 30 + i));
	}
	EXPECT_EQ(0, bad);
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(pages_protected)));
	TH_LOG("%u cycles, %u WP requests read", CHURN_CYCLES, wp_reqs);
	munmap(view, SZ);
}

/* ---- 2 MiB pages ---- */

#define HP	((uint64_t)UMEM_PAGE_SIZE_2M)
#define HPAGES	4

FIXTURE(huge) {
	int ctl, sfd;
	char *map;
};

FIXTURE_SETUP(huge)
{
	struct umem_api api = { .api = UMEM_API };
	char name[UMEM_NAME_MAX], path[64];
	struct umem_create c;
	int nfd;

	self->ctl = self->sfd = -1;
	self->map = MAP_FAILED;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	if (!has_features(WP_FEATURES))
		SKIP(return, UT_NO_WP);
	self->ctl = ut_open_ctl();
	ASSERT_LE(0, self->ctl);
	ASSERT_EQ(0, ut_get_api(self->ctl, &api));
	if (!(api.features & UMEM_F_PAGE_2M))
		SKIP(return, "no UMEM_F_PAGE_2M (no transparent huge pages)");
	ut_make_name(name, "wphuge");
	memset(&c, 0, sizeof(c));
	c.size = HPAGES * HP;
	c.page_size = UMEM_PAGE_SIZE_2M;
	c.flags = UMEM_CREATE_WP | UMEM_CREATE_PRESENT;
	snprintf(c.name, sizeof(c.name), "%s", name);
	self->sfd = ut_ioctl(self->ctl, UMEM_CREATE, &c);
	ASSERT_LE(0, self->sfd);
	ut_node_path(path, sizeof(path), name);
	ASSERT_EQ(0, ut_wait_path(path, true, UT_WAIT_MS));
	nfd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, nfd);
	/* Unhinted: the node gives a 2 MiB-aligned address. */
	self->map = ut_map(nfd, HPAGES * HP, 0);
	close(nfd);
	ASSERT_NE(MAP_FAILED, self->map);
}

FIXTURE_TEARDOWN(huge)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, HPAGES * HP);
	if (self->sfd >= 0)
		close(self->sfd);
	if (self->ctl >= 0)
		close(self->ctl);
}

/*
 * A 2 MiB page is protected, requested, saved and unprotected whole, and
 * stays PMD-mapped through it all: the write after a read goes through
 * ->huge_fault, which never splits the PMD.
 */
TEST_F(huge, protect_keeps_pmd)
{
	struct ut_toucher w[3], rd;
	struct umem_request req;
	unsigned int i;

	for (i = 0; i < HPAGES; i++)
		*(uint64_t *)(self->map + i * HP) = 100 + i;
	if (ut_smaps_pmd_kb(self->map) != (long)(HPAGES * HP / 1024))
		SKIP(return, "no 2 MiB folios to be had (memory fragmented?)");
	ASSERT_EQ(0, ut_writeprotect(self->sfd, 0, HPAGES * HP, true, NULL));
	EXPECT_EQ(HPAGES, ut_stat(self->sfd, UT_STAT(pages_protected)));
	/* Page 1 is read (a read-only PMD), then written after the unprotect. */
	EXPECT_EQ(101, *(volatile uint64_t *)(self->map + HP));
	/* Three writers anywhere in page 2: one request, for the page. */
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, ut_toucher_start(&w[i], self->map + 2 * HP + i * 200 * UT_PAGE,
					      true, 200 + i));
	ASSERT_EQ(0, ut_wait_stat(self->sfd, UT_STAT(waiting), 3, UT_WAIT_MS));
	ASSERT_EQ(0, read_one(self->sfd, &req, UT_WAIT_MS));
	EXPECT_EQ(2 * HP, req.offset);
	EXPECT_EQ(WP_REQ, req.flags);
	EXPECT_TRUE(queue_empty(self->sfd));
	/* A reader of the same page goes through. */
	ASSERT_EQ(0, ut_toucher_start(&rd, self->map + 2 * HP, false, 0));
	ASSERT_EQ(0, ut_toucher_join(&rd, UT_WAIT_MS));
	EXPECT_EQ(102, rd.seen);
	ASSERT_EQ(0, ut_writeprotect(self->sfd, 2 * HP, HP, false, NULL));
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, ut_toucher_join(&w[i], UT_WAIT_MS));
		EXPECT_EQ(200 + i, *(uint64_t *)(self->map + 2 * HP + i * 200 * UT_PAGE));
	}
	ASSERT_EQ(0, ut_writeprotect(self->sfd, 0, HPAGES * HP, false, NULL));
	for (i = 0; i < HPAGES; i++)
		*(uint64_t *)(self->map + i * HP + 8) = 300 + i;
	EXPECT_EQ(HPAGES * HP / 1024, ut_smaps_pmd_kb(self->map));
	EXPECT_EQ(0, ut_stat(self->sfd, UT_STAT(pages_protected)));
	EXPECT_EQ(0, ut_stat(self->sfd, UT_STAT(alloc_failed)));
}

/* Misaligned offsets of a 2 MiB region are refused. */
TEST_F(huge, protect_alignment)
{
	EXPECT_EQ(-EINVAL, ut_writeprotect(self->sfd, UT_PAGE, HP, true, NULL));
	EXPECT_EQ(-EINVAL, ut_writeprotect(self->sfd, 0, UT_PAGE, true, NULL));
	EXPECT_EQ(0, ut_writeprotect(self->sfd, HP, HP, true, NULL));
	EXPECT_EQ(1, ut_stat(self->sfd, UT_STAT(pages_protected)));
}

/* ---- UMEM_ATTACH ---- */

TEST_F(bare, attach_rules)
{
	struct ut_region r;
	struct umem_attach a;
	char path[64];
	int ro, fd;

	ASSERT_EQ(0, ut_region_init_flags(&r, SZ, "attach", UMEM_CREATE_PRESENT));
	ASSERT_EQ(0, ut_region_open_node(&r));
	EXPECT_EQ(-EBUSY, ut_attach(r.node_fd));	/* the creator serves */
	ut_node_path(path, sizeof(path), r.name);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	close(r.server_fd);
	r.server_fd = -1;
	EXPECT_EQ(-EBADF, ut_attach(ro));
	close(ro);
	memset(&a, 0, sizeof(a));
	a.flags = 1;
	EXPECT_EQ(-EINVAL, ut_ioctl(r.node_fd, UMEM_ATTACH, &a));
	memset(&a, 0, sizeof(a));
	a.reserved[1] = 1;
	EXPECT_EQ(-EINVAL, ut_ioctl(r.node_fd, UMEM_ATTACH, &a));
	memset(&a, 0, sizeof(a));
	fd = ut_ioctl(r.node_fd, UMEM_ATTACH, &a);
	ASSERT_LE(0, fd);
	EXPECT_EQ(fd, a.server_fd);
	EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	EXPECT_EQ(SZ, ut_stat(fd, UT_STAT(size)));
	EXPECT_EQ(NPAGES, ut_stat(fd, UT_STAT(pages_present)));
	EXPECT_EQ(-EBUSY, ut_attach(r.node_fd));
	close(fd);
	/* Once more after that server is gone too. */
	fd = ut_attach(r.node_fd);
	ASSERT_LE(0, fd);
	close(fd);
	ut_region_fini(&r);
}

/*
 * A detached region with missing pages: its waiting task and later faults
 * get SIGBUS; after UMEM_ATTACH the same page is requested afresh from
 * the new server and served.
 */
static pid_t fork_reader(char *map, unsigned int pg, int close_fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (close_fd >= 0)
			close(close_fd);
		signal(SIGBUS, SIG_DFL);
		_exit(*(uint64_t *)(map + PG(pg)) == ut_pattern_word(PG(pg), SEED) ?
		      0 : 1);
	}
	return pid;
}

TEST_F(bare, attach_serves_missing_pages)
{
	struct ut_region r;
	struct umem_request req;
	int status = 0, fd;
	char *map;
	pid_t pid;

	ASSERT_EQ(0, ut_region_init(&r, SZ, "attmiss"));
	ASSERT_EQ(0, ut_region_open_node(&r));
	map = ut_map(r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, map);
	/* A request the old server never answers. */
	pid = fork_reader(map, 2, r.server_fd);
	ASSERT_LE(0, pid);
	ASSERT_EQ(0, ut_wait_stat(r.server_fd, UT_STAT(waiting), 1, UT_WAIT_MS));
	close(r.server_fd);
	r.server_fd = -1;
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);

	fd = ut_attach(r.node_fd);
	ASSERT_LE(0, fd);
	pid = fork_reader(map, 2, fd);
	ASSERT_LE(0, pid);
	ASSERT_EQ(0, read_one(fd, &req, UT_WAIT_MS));
	EXPECT_EQ(PG(2), req.offset);
	EXPECT_EQ(0, req.flags);
	ASSERT_EQ(0, ut_install_page(fd, UT_INSTALL_COPY, PG(2), SEED));
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
	munmap(map, SZ);
	ut_region_fini(&r);
}

/* Only the owner (or CAP_SYS_ADMIN) may attach. */
TEST_F(bare, attach_not_owner)
{
	struct ut_region r;
	char path[64];
	int status = 0;
	pid_t pid;

	if (geteuid() != 0)
		SKIP(return, "needs root to switch to another uid");
	ASSERT_EQ(0, ut_region_init_mode(&r, SZ, "attperm", 0666));
	ASSERT_EQ(0, ut_region_open_node(&r));	/* keeps it alive */
	close(r.server_fd);
	r.server_fd = -1;
	ut_node_path(path, sizeof(path), r.name);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int fd;

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(2);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			_exit(3);
		_exit(ut_attach(fd) == -EPERM ? 0 : 1);
	}
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ut_region_fini(&r);
}

/* A bound daemon's close detaches, but its other copy still blocks attach. */
TEST_F(bare, attach_busy_until_last_copy)
{
	struct ut_region r;
	struct umem_bind b;
	int dup_fd, fd;

	ASSERT_EQ(0, ut_region_init_flags(&r, SZ, "attbusy", UMEM_CREATE_PRESENT));
	ASSERT_EQ(0, ut_region_open_node(&r));
	memset(&b, 0, sizeof(b));
	ASSERT_EQ(0, ut_ioctl(r.server_fd, UMEM_BIND, &b));
	dup_fd = dup(r.server_fd);
	ASSERT_LE(0, dup_fd);
	close(dup_fd);
	EXPECT_EQ(-EBUSY, ut_attach(r.node_fd));
	close(r.server_fd);
	r.server_fd = -1;
	fd = ut_attach(r.node_fd);
	ASSERT_LE(0, fd);
	close(fd);
	ut_region_fini(&r);
}

/* The snapshot case: a new server protects a region it did not create. */
TEST_F(bare, attach_then_protect)
{
	struct ut_region r;
	struct ut_toucher w;
	struct umem_request req;
	uint64_t *p;
	char *map;
	int fd;

	ASSERT_EQ(0, ut_region_init_flags(&r, SZ, "attwp",
					  UMEM_CREATE_WP | UMEM_CREATE_PRESENT));
	ASSERT_EQ(0, ut_region_open_node(&r));
	map = ut_map(r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, map);
	p = (uint64_t *)(map + PG(4));
	*p = 4;
	close(r.server_fd);
	r.server_fd = -1;
	fd = ut_attach(r.node_fd);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ut_writeprotect(fd, 0, SZ, true, NULL));
	ASSERT_EQ(0, ut_toucher_start(&w, p, true, 5));
	ASSERT_EQ(0, read_one(fd, &req, UT_WAIT_MS));
	EXPECT_EQ(PG(4), req.offset);
	EXPECT_EQ(WP_REQ, req.flags);
	EXPECT_EQ(4, *p);
	ASSERT_EQ(0, ut_writeprotect(fd, PG(4), UT_PAGE, false, NULL));
	ASSERT_EQ(0, ut_toucher_join(&w, UT_WAIT_MS));
	EXPECT_EQ(5, *p);
	close(fd);		/* detach: the rest is unprotected */
	p[512] = 6;
	munmap(map, SZ);
	ut_region_fini(&r);
}

TEST_HARNESS_MAIN
