// SPDX-License-Identifier: GPL-2.0
/*
 * umem faults and the request queue: a fault on a missing page blocks
 * until the page is installed; one request per page however many tasks
 * fault; request contents (offset, write flag, tid, time); read() batching
 * and its errors; O_NONBLOCK, poll and epoll; kernel accesses (uaccess,
 * GUP, O_DIRECT, process_vm_readv/writev); SIGKILL of a blocked task; and
 * what happens when the server fd goes away (SIGBUS / EFAULT, present pages
 * stay readable).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/loop.h>

#include "umem_test.h"

#define NPAGES	64
#define SZ	(NPAGES * UT_PAGE)
#define SEED	0x51
#define PG(n)	((uint64_t)(n) * UT_PAGE)

FIXTURE(fault) {
	struct ut_region r;
	struct ut_daemon d;
	char *map;
};

FIXTURE_SETUP(fault)
{
	ut_region_clear(&self->r);
	ut_daemon_init(&self->d, -1, SZ, SEED);
	self->map = MAP_FAILED;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	ASSERT_EQ(0, ut_region_init(&self->r, SZ, "flt"));
	ASSERT_EQ(0, ut_region_open_node(&self->r));
	self->d.server_fd = self->r.server_fd;
	self->map = ut_map(self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, self->map);
}

FIXTURE_TEARDOWN(fault)
{
	EXPECT_EQ(0, ut_daemon_stop(&self->d));
	if (self->map != MAP_FAILED)
		munmap(self->map, SZ);
	ut_region_fini(&self->r);
}

/* Close the server fd: the region's daemon is gone. */
static void close_server(FIXTURE_DATA(fault) *self)
{
	close(self->r.server_fd);
	self->r.server_fd = -1;
}

/*
 * In a forked child: drop every umem fd inherited from the parent, so
 * that the parent's close() of the server fd is the last one.
 */
static void child_drop_fds(FIXTURE_DATA(fault) *self)
{
	if (self->r.server_fd >= 0)
		close(self->r.server_fd);
	close(self->r.node_fd);
	close(self->r.ctl_fd);
}

/* A child that reads one word of @page and exits 0 if it is the pattern. */
static pid_t fork_toucher(FIXTURE_DATA(fault) *self, uint64_t off, bool drop)
{
	pid_t pid = fork();

	if (pid == 0) {
		volatile uint64_t *p = (uint64_t *)(self->map + off);

		if (drop)
			child_drop_fds(self);
		_exit(*p == ut_pattern_word(off, SEED) ? 0 : 1);
	}
	return pid;
}

/* ---- blocking and the request record ---- */

TEST_F(fault, read_blocks_until_copy)
{
	struct umem_request req[4];
	struct ut_toucher t;
	uint64_t after;

	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(2), false, 0));
	ASSERT_EQ(1, ut_poll_in(self->r.server_fd, UT_WAIT_MS));
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, req, 4));
	after = ut_now_ns();

	EXPECT_EQ(PG(2), req[0].offset);
	EXPECT_EQ(0, req[0].flags);
	EXPECT_EQ(atomic_load(&t.tid), (int)req[0].tid);
	EXPECT_EQ(0, req[0].reserved);
	EXPECT_LE(t.start_ns, req[0].time_ns);
	EXPECT_GE(after, req[0].time_ns);

	/* Blocked, and stays blocked until the page arrives. */
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	ut_sleep_ms(100);
	EXPECT_EQ(0, atomic_load(&t.done));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(waiting)));

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(2),
				     SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(ut_pattern_word(PG(2), SEED), t.seen);
	EXPECT_EQ(-1, ut_check(t.page, PG(2), UT_PAGE, SEED));
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(waiting)));
	EXPECT_GE(ut_stat(self->r.server_fd, UT_STAT(wait_ns_max)), 100000000ULL);
}

TEST_F(fault, write_fault_flag)
{
	struct umem_request req;
	struct ut_toucher t;
	uint64_t *w = (uint64_t *)(self->map + PG(5)) + 3;

	ASSERT_EQ(0, ut_toucher_start(&t, w, true, 0xfeedfacecafebeefULL));
	ASSERT_EQ(1, ut_poll_in(self->r.server_fd, UT_WAIT_MS));
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(PG(5), req.offset);
	EXPECT_EQ(UMEM_REQ_WRITE, req.flags);
	EXPECT_EQ(atomic_load(&t.tid), (int)req.tid);
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	EXPECT_EQ(0, atomic_load(&t.done));

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(5),
				     SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	/* The write landed on the installed page, not on a stale one. */
	EXPECT_EQ(0xfeedfacecafebeefULL, *w);
	EXPECT_EQ(-1, ut_check(self->map + PG(5), PG(5), 24, SEED));
	EXPECT_EQ(-1, ut_check(self->map + PG(5) + 32, PG(5) + 32,
			       UT_PAGE - 32, SEED));
}

TEST_F(fault, tid_of_other_process)
{
	struct umem_request req;
	int status;
	pid_t pid;

	pid = fork_toucher(self, PG(11), false);
	ASSERT_GE(pid, 0);
	ASSERT_EQ(1, ut_poll_in(self->r.server_fd, UT_WAIT_MS));
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(PG(11), req.offset);
	EXPECT_EQ(0, req.flags);
	EXPECT_EQ(pid, (pid_t)req.tid);

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
				     PG(11), SEED));
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

/* Eight tasks (threads and processes) on one page: exactly one request. */
TEST_F_TIMEOUT(fault, one_request_per_page, 60)
{
	struct umem_request req[16];
	struct ut_toucher t[6];
	pid_t pid[2];
	int i, status;

	for (i = 0; i < 2; i++) {
		pid[i] = fork_toucher(self, PG(7), false);
		ASSERT_GE(pid[i], 0);
	}
	for (i = 0; i < 6; i++) {
		ASSERT_EQ(0, ut_toucher_start(&t[i], self->map + PG(7) + i * 8,
					      i & 1, 0));
	}
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 8,
				  UT_WAIT_MS)) TH_LOG("waiting: %llu",
		(unsigned long long)ut_stat(self->r.server_fd, UT_STAT(waiting)));
	ut_sleep_ms(50);

	ASSERT_EQ(0, ut_set_nonblock(self->r.server_fd, true));
	EXPECT_EQ(1, ut_read_requests(self->r.server_fd, req, 16));
	EXPECT_EQ(PG(7), req[0].offset);
	EXPECT_EQ(-EAGAIN, ut_read_requests(self->r.server_fd, req, 16));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(requests)));
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests_pending)));
	EXPECT_GE(ut_stat(self->r.server_fd, UT_STAT(faults)), 8);

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(7),
				     SEED));
	for (i = 0; i < 6; i++) {
		ASSERT_EQ(0, ut_toucher_join(&t[i], UT_WAIT_MS));
		/* Writers wrote 0 over their own word, readers saw the pattern. */
		if (!(i & 1)) {
			EXPECT_EQ(ut_pattern_word(PG(7) + i * 8, SEED), t[i].seen);
		}
	}
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, ut_waitpid_timeout(pid[i], &status, UT_WAIT_MS));
		EXPECT_TRUE(WIFEXITED(status));
		EXPECT_EQ(0, WEXITSTATUS(status));
	}
	/* Nothing more was asked for. */
	EXPECT_EQ(-EAGAIN, ut_read_requests(self->r.server_fd, req, 16));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(requests)));
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(waiting)));
}

/* ---- read(): batching and errors ---- */

TEST_F(fault, read_batching)
{
	static const int pages[] = { 1, 2, 3, 4 };
	struct umem_request req[8];
	struct ut_toucher t1[4], t2[3];
	unsigned int seen = 0;
	char buf[80];
	ssize_t n;
	int i, j;

	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, ut_toucher_start(&t1[i], self->map + PG(pages[i]),
					      false, 0));
	}
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(requests_pending),
				  4, UT_WAIT_MS));

	/* All four in one read(), each naming its own thread. */
	ASSERT_EQ(4, ut_read_requests(self->r.server_fd, req, 8));
	for (i = 0; i < 4; i++) {
		for (j = 0; j < 4; j++) {
			if (req[i].offset != PG(pages[j]))
				continue;
			seen |= 1U << j;
			EXPECT_EQ(atomic_load(&t1[j].tid), (int)req[i].tid);
		}
	}
	EXPECT_EQ(0xfU, seen);
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests_pending)));

	/* A buffer smaller than the queue: whole records only. */
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, ut_toucher_start(&t2[i], self->map + PG(10 + i),
					      false, 0));
	}
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(requests_pending),
				  3, UT_WAIT_MS));
	EXPECT_EQ(2, ut_read_requests(self->r.server_fd, req, 2));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(requests_pending)));
	n = read(self->r.server_fd, buf, sizeof(buf));	/* 2.5 records */
	EXPECT_EQ((ssize_t)UT_REQ_SIZE, n);
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests_pending)));
	EXPECT_EQ(7, ut_stat(self->r.server_fd, UT_STAT(requests)));

	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
					     PG(pages[i]), SEED));
	}
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
					     PG(10 + i), SEED));
	}
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, ut_toucher_join(&t1[i], UT_WAIT_MS));
		EXPECT_EQ(-1, ut_check(t1[i].page, PG(pages[i]), UT_PAGE, SEED));
	}
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, ut_toucher_join(&t2[i], UT_WAIT_MS));
		EXPECT_EQ(-1, ut_check(t2[i].page, PG(10 + i), UT_PAGE, SEED));
	}
}

TEST_F(fault, read_small_buffer)
{
	struct umem_request req;
	struct ut_toucher t;
	char buf[UT_REQ_SIZE];
	const size_t sizes[] = { 0, 1, 8, UT_REQ_SIZE - 1 };
	unsigned int i;

	/* Nothing queued. */
	for (i = 0; i < UT_ARRAY_SIZE(sizes); i++) {
		EXPECT_EQ(-1, read(self->r.server_fd, buf, sizes[i]))
			TH_LOG("size %zu", sizes[i]);
		EXPECT_EQ(EINVAL, errno);
	}

	/* Something queued: still EINVAL, and the request is not lost. */
	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(3), false, 0));
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(requests_pending),
				  1, UT_WAIT_MS));
	for (i = 0; i < UT_ARRAY_SIZE(sizes); i++) {
		EXPECT_EQ(-1, read(self->r.server_fd, buf, sizes[i]))
			TH_LOG("size %zu", sizes[i]);
		EXPECT_EQ(EINVAL, errno);
	}
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(requests_pending)));
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(PG(3), req.offset);

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(3),
				     SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
}

/*
 * A bad buffer is EFAULT -- and the request must not be lost with it, or
 * its faulting task would wait for a page nobody was told about.
 */
TEST_F(fault, read_efault_keeps_request)
{
	struct umem_request req;
	struct ut_toucher t;
	void *bad;

	bad = mmap(NULL, UT_PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, bad);
	ASSERT_EQ(0, ut_set_nonblock(self->r.server_fd, true));
	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(4), false, 0));
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(requests_pending),
				  1, UT_WAIT_MS));
	EXPECT_EQ(-1, read(self->r.server_fd, bad, UT_REQ_SIZE));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1))
		TH_LOG("request lost after EFAULT");
	EXPECT_EQ(PG(4), req.offset);
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(4),
				     SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	munmap(bad, UT_PAGE);
}

TEST_F(fault, nonblock_eagain)
{
	struct umem_request req;
	struct ut_toucher t;

	ASSERT_EQ(0, ut_set_nonblock(self->r.server_fd, true));
	EXPECT_EQ(-EAGAIN, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(-EAGAIN, ut_read_requests(self->r.server_fd, &req, 1));

	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(6), false, 0));
	ASSERT_EQ(1, ut_poll_in(self->r.server_fd, UT_WAIT_MS));
	EXPECT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(PG(6), req.offset);
	/* Read requests are not read again. */
	EXPECT_EQ(-EAGAIN, ut_read_requests(self->r.server_fd, &req, 1));

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(6),
				     SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(-EAGAIN, ut_read_requests(self->r.server_fd, &req, 1));
}

TEST_F(fault, blocking_read_wakes)
{
	struct umem_request req[4];
	struct ut_io_thread rd;
	struct ut_toucher t;

	ASSERT_EQ(0, ut_io_start(&rd, UT_IO_READ, self->r.server_fd, req,
				 sizeof(req), 0));
	ut_sleep_ms(100);
	EXPECT_EQ(0, atomic_load(&rd.done));

	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(8), true, 5));
	ASSERT_EQ(0, ut_io_join(&rd, UT_WAIT_MS));
	ASSERT_EQ((ssize_t)UT_REQ_SIZE, rd.ret) TH_LOG("errno %d", rd.err);
	EXPECT_EQ(PG(8), req[0].offset);
	EXPECT_EQ(UMEM_REQ_WRITE, req[0].flags);
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(8),
				     SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

TEST_F(fault, read_eintr)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };	/* no SA_RESTART */
	struct umem_request req;
	struct ut_io_thread rd;
	int i;

	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	ASSERT_EQ(0, ut_io_start(&rd, UT_IO_READ, self->r.server_fd, &req,
				 sizeof(req), 0));
	/* Keep signalling: the first may land before read() sleeps. */
	for (i = 0; i < 100 && !atomic_load(&rd.done); i++) {
		pthread_kill(rd.thread, SIGUSR1);
		ut_sleep_ms(50);
	}
	ASSERT_EQ(0, ut_io_join(&rd, UT_WAIT_MS));
	EXPECT_EQ(-1, rd.ret);
	EXPECT_EQ(EINTR, rd.err);
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests)));
}

/* ---- poll / epoll ---- */

TEST_F(fault, poll_readiness)
{
	struct pollfd p = { .fd = self->r.server_fd, .events = POLLIN | POLLRDNORM };
	struct umem_request req;
	struct ut_toucher t;

	EXPECT_EQ(0, poll(&p, 1, 0));
	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(9), false, 0));
	ASSERT_EQ(1, poll(&p, 1, UT_WAIT_MS));
	EXPECT_EQ(POLLIN | POLLRDNORM, p.revents);
	/* Level-triggered: still ready until read. */
	ASSERT_EQ(1, poll(&p, 1, 0));
	EXPECT_EQ(POLLIN | POLLRDNORM, p.revents);
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(0, poll(&p, 1, 0));
	EXPECT_EQ(0, p.revents);

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(9),
				     SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(0, poll(&p, 1, 0));
}

TEST_F(fault, epoll_readiness)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 77 };
	struct umem_request req;
	struct ut_toucher t;
	int ep;

	ep = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_GE(ep, 0);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->r.server_fd, &ev));
	EXPECT_EQ(0, epoll_wait(ep, &ev, 1, 0));

	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(10), false, 0));
	ASSERT_EQ(1, epoll_wait(ep, &ev, 1, UT_WAIT_MS));
	EXPECT_EQ(77, ev.data.u64);
	EXPECT_TRUE(ev.events & EPOLLIN);
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(0, epoll_wait(ep, &ev, 1, 0));

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(10),
				     SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(0, epoll_wait(ep, &ev, 1, 0));
	close(ep);
}

/* ---- kernel accesses to a missing page ---- */

/* write(pipe, mapping): the kernel reads the missing page. */
TEST_F(fault, kernel_reads_mapping)
{
	char buf[UT_PAGE];
	struct umem_request req;
	struct ut_io_thread io;
	int pfd[2];

	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	ASSERT_EQ(0, ut_io_start(&io, UT_IO_WRITE, pfd[1], self->map + PG(12),
				 UT_PAGE, 0));
	ASSERT_EQ(1, ut_poll_in(self->r.server_fd, UT_WAIT_MS));
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(PG(12), req.offset);
	EXPECT_EQ(0, req.flags);
	EXPECT_EQ(atomic_load(&io.tid), (int)req.tid);
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	EXPECT_EQ(0, atomic_load(&io.done));

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(12),
				     SEED));
	ASSERT_EQ(0, ut_io_join(&io, UT_WAIT_MS));
	ASSERT_EQ((ssize_t)UT_PAGE, io.ret) TH_LOG("errno %d", io.err);
	ASSERT_EQ((ssize_t)UT_PAGE, read(pfd[0], buf, UT_PAGE));
	EXPECT_EQ(-1, ut_check(buf, PG(12), UT_PAGE, SEED));
	close(pfd[0]);
	close(pfd[1]);
}

/* read(file, mapping): the kernel writes into the missing page. */
TEST_F(fault, kernel_writes_mapping)
{
	char data[UT_PAGE];
	struct umem_request req;
	struct ut_io_thread io;
	int fd;

	fd = memfd_create("umem-src", MFD_CLOEXEC);
	ASSERT_GE(fd, 0);
	ut_fill(data, 0, UT_PAGE, 777);
	ASSERT_EQ((ssize_t)UT_PAGE, pwrite(fd, data, UT_PAGE, 0));

	ASSERT_EQ(0, ut_io_start(&io, UT_IO_PREAD, fd, self->map + PG(13),
				 UT_PAGE, 0));
	ASSERT_EQ(1, ut_poll_in(self->r.server_fd, UT_WAIT_MS));
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(PG(13), req.offset);
	EXPECT_EQ(UMEM_REQ_WRITE, req.flags);
	EXPECT_EQ(atomic_load(&io.tid), (int)req.tid);
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(13),
				     SEED));
	ASSERT_EQ(0, ut_io_join(&io, UT_WAIT_MS));
	ASSERT_EQ((ssize_t)UT_PAGE, io.ret) TH_LOG("errno %d", io.err);
	EXPECT_EQ(0, memcmp(self->map + PG(13), data, UT_PAGE));
	close(fd);
}

/*
 * Something that takes O_DIRECT, best first: a loop block device over a
 * memfd (real direct I/O: the kernel pins our pages with GUP; the loop
 * module is loaded if need be), else a file
 * in the first directory whose filesystem takes O_DIRECT.  Returns an fd
 * (the loop device detaches itself on the last close), or -1 with @why
 * saying what each candidate answered.  @what names what was opened.
 */
static int open_loop_odirect(char *what, size_t len)
{
	struct loop_config cfg;
	char path[64];
	int ctl, n, backing, lfd = -1, fd = -1, err;

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0 && errno == ENOENT) {
		/* Not loaded yet (a module on Debian): ask for it once. */
		if (system("modprobe -q loop 2>/dev/null") == 0 &&
		    ut_wait_path("/dev/loop-control", true, 2000) == 0)
			ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	}
	if (ctl < 0)
		return -errno;
	backing = memfd_create("umem-loop", MFD_CLOEXEC);
	if (backing < 0 || ftruncate(backing, 1 << 20)) {
		err = -errno;
		goto out;
	}
	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	if (n < 0) {
		err = -errno;
		goto out;
	}
	snprintf(path, sizeof(path), "/dev/loop%d", n);
	ut_wait_path(path, true, UT_WAIT_MS);
	lfd = open(path, O_RDWR | O_CLOEXEC);
	if (lfd < 0) {
		err = -errno;
		goto out;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = backing;
	cfg.block_size = UT_PAGE;
	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
	if (ioctl(lfd, LOOP_CONFIGURE, &cfg)) {
		err = -errno;
		goto out;
	}
	fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	err = fd < 0 ? -errno : 0;
	snprintf(what, len, "%s over a memfd", path);
out:
	if (lfd >= 0)
		close(lfd);
	if (backing >= 0)
		close(backing);
	close(ctl);
	return fd >= 0 ? fd : err;
}

static int open_odirect(char *what, size_t len, char *why, size_t wlen)
{
	const char *dirs[] = { getenv("UMEM_TEST_DIR"), "/var/tmp", "/tmp",
			       "/dev/shm" };
	size_t used;
	unsigned int i;
	int fd;

	fd = open_loop_odirect(what, len);
	if (fd >= 0)
		return fd;
	used = snprintf(why, wlen, " loop:%s", strerror(-fd));
	for (i = 0; i < UT_ARRAY_SIZE(dirs); i++) {
		if (!dirs[i])
			continue;
		snprintf(what, len, "%s/umem-odirect-XXXXXX", dirs[i]);
		fd = mkostemp(what, O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			fd = open(what, O_RDWR | O_DIRECT | O_CLOEXEC);
			unlink(what);
			if (fd >= 0)
				return fd;
		}
		if (used < wlen)
			used += snprintf(why + used, wlen - used, " %s:%s",
					 dirs[i], strerror(errno));
	}
	return -1;
}

TEST_F(fault, odirect_into_and_from_mapping)
{
	struct ut_io_thread io;
	char what[128], why[512];
	void *data = NULL;
	int fd;

	fd = open_odirect(what, sizeof(what), why, sizeof(why));
	if (fd < 0)
		SKIP(return, "nothing takes O_DIRECT (modprobe loop, or set UMEM_TEST_DIR):%s",
		     why);
	TH_LOG("O_DIRECT on %s", what);
	ASSERT_EQ(0, posix_memalign(&data, UT_PAGE, 2 * UT_PAGE));
	ut_fill(data, 0, UT_PAGE, 999);
	ASSERT_EQ((ssize_t)UT_PAGE, pwrite(fd, data, UT_PAGE, 0));
	ASSERT_EQ(0, ut_daemon_start(&self->d));

	/* Direct read into a missing page: pinned for write. */
	ASSERT_EQ(0, ut_io_start(&io, UT_IO_PREAD, fd, self->map + PG(14),
				 UT_PAGE, 0));
	ASSERT_EQ(0, ut_io_join(&io, UT_WAIT_MS));
	ASSERT_EQ((ssize_t)UT_PAGE, io.ret) TH_LOG("errno %d", io.err);
	EXPECT_EQ(0, memcmp(self->map + PG(14), data, UT_PAGE));

	/* Direct write from a missing page: pinned for read. */
	ASSERT_EQ(0, ut_io_start(&io, UT_IO_PWRITE, fd, self->map + PG(15),
				 UT_PAGE, UT_PAGE));
	ASSERT_EQ(0, ut_io_join(&io, UT_WAIT_MS));
	ASSERT_EQ((ssize_t)UT_PAGE, io.ret) TH_LOG("errno %d", io.err);
	ASSERT_EQ((ssize_t)UT_PAGE,
		  pread(fd, (char *)data + UT_PAGE, UT_PAGE, UT_PAGE));
	EXPECT_EQ(-1, ut_check((char *)data + UT_PAGE, PG(15), UT_PAGE, SEED));

	ASSERT_EQ(0, ut_daemon_stop(&self->d));
	EXPECT_EQ(2, self->d.requests);
	EXPECT_EQ(1, self->d.write_requests);
	EXPECT_EQ(1, ut_daemon_seen(&self->d, PG(14)));
	EXPECT_EQ(1, ut_daemon_seen(&self->d, PG(15)));
	free(data);
	close(fd);
}

/* Another process reads and writes our missing pages (remote GUP). */
TEST_F(fault, process_vm_readv_writev)
{
	char local[UT_PAGE], wdata[UT_PAGE];
	struct iovec liov, riov;
	int pfd[2], status;
	ssize_t n;
	pid_t pid;

	/* The child holds the mapping; we (its parent) access it remotely. */
	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char c;

		close(pfd[1]);
		_exit(read(pfd[0], &c, 1) < 0 ? 1 : 0);
	}
	close(pfd[0]);
	ASSERT_EQ(0, ut_daemon_start(&self->d));

	liov.iov_base = local;
	liov.iov_len = UT_PAGE;
	riov.iov_base = self->map + PG(16);
	riov.iov_len = UT_PAGE;
	n = process_vm_readv(pid, &liov, 1, &riov, 1, 0);
	if (n < 0 && errno == EPERM) {
		close(pfd[1]);
		ut_kill_reap(pid);
		SKIP(return, "process_vm_readv: EPERM (ptrace policy)");
	}
	EXPECT_EQ((ssize_t)UT_PAGE, n) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(-1, ut_check(local, PG(16), UT_PAGE, SEED));

	ut_fill(wdata, 0, UT_PAGE, 4242);
	liov.iov_base = wdata;
	riov.iov_base = self->map + PG(17);
	n = process_vm_writev(pid, &liov, 1, &riov, 1, 0);
	EXPECT_EQ((ssize_t)UT_PAGE, n) TH_LOG("%s", strerror(errno));
	/* Shared: our own mapping sees what was written into the child's. */
	EXPECT_EQ(0, memcmp(self->map + PG(17), wdata, UT_PAGE));

	close(pfd[1]);
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, ut_daemon_stop(&self->d));
	EXPECT_EQ(2, self->d.requests);
	EXPECT_EQ(1, self->d.write_requests);
	EXPECT_EQ(1, ut_daemon_seen(&self->d, PG(16)));
	EXPECT_EQ(1, ut_daemon_seen(&self->d, PG(17)));
}

/* ---- SIGKILL of a blocked task ---- */

TEST_F(fault, sigkill_blocked_fault)
{
	struct umem_request req;
	uint64_t t0, dt;
	int status;
	pid_t pid;

	pid = fork_toucher(self, PG(20), false);
	ASSERT_GE(pid, 0);
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	t0 = ut_now_ns();
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS))
		ut_kill_reap(pid);
	dt = ut_now_ns() - t0;
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGKILL, WTERMSIG(status));
	/* Promptly: not after some timeout of the fault path. */
	EXPECT_LT(dt, 2000000000ULL) TH_LOG("took %llu ms",
					    (unsigned long long)dt / 1000000);
	EXPECT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 0,
				  UT_WAIT_MS));

	/* The request outlives its task; installing it later is fine. */
	ASSERT_EQ(0, ut_set_nonblock(self->r.server_fd, true));
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(PG(20), req.offset);
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(20),
				     SEED));
	EXPECT_EQ(-1, ut_check(self->map + PG(20), PG(20), UT_PAGE, SEED));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(requests)));
}

TEST_F(fault, sigkill_blocked_in_syscall)
{
	int pfd[2], status;
	pid_t pid;

	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(write(pfd[1], self->map + PG(21), UT_PAGE) < 0 ? 2 : 3);

	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS))
		ut_kill_reap(pid);
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGKILL, WTERMSIG(status));
	EXPECT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 0,
				  UT_WAIT_MS));
	close(pfd[0]);
	close(pfd[1]);
}

/* ---- the daemon goes away ---- */

TEST_F(fault, server_close_sigbus_waiter)
{
	int status;
	pid_t pid;

	pid = fork_toucher(self, PG(30), true);
	ASSERT_GE(pid, 0);
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	close_server(self);
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS))
		ut_kill_reap(pid);
	EXPECT_TRUE(WIFSIGNALED(status)) TH_LOG("status %#x", status);
	EXPECT_EQ(SIGBUS, WTERMSIG(status));
}

TEST_F(fault, server_close_sigbus_many_waiters)
{
	pid_t pid[4];
	int i, status;

	for (i = 0; i < 4; i++) {
		/* Two on one page, two on pages of their own. */
		pid[i] = fork_toucher(self, PG(31 + (i > 1 ? i : 0)), true);
		ASSERT_GE(pid[i], 0);
	}
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 4,
				  UT_WAIT_MS));
	close_server(self);
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, ut_waitpid_timeout(pid[i], &status, UT_WAIT_MS))
			ut_kill_reap(pid[i]);
		EXPECT_TRUE(WIFSIGNALED(status)) TH_LOG("child %d status %#x",
							i, status);
		EXPECT_EQ(SIGBUS, WTERMSIG(status));
	}
}

TEST_F(fault, server_close_later_faults)
{
	char path[64], buf[UT_PAGE];
	uint64_t *p;
	int pfd[2], mfd, fd, status;
	pid_t pid;

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(0),
				     SEED));
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_ZERO, PG(1),
				     SEED));
	close_server(self);

	/* A later fault on a missing page: SIGBUS at once, no hang. */
	pid = fork_toucher(self, PG(40), true);
	ASSERT_GE(pid, 0);
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS))
		ut_kill_reap(pid);
	EXPECT_TRUE(WIFSIGNALED(status)) TH_LOG("status %#x", status);
	EXPECT_EQ(SIGBUS, WTERMSIG(status));

	/* Present pages stay readable and writable, here... */
	EXPECT_EQ(-1, ut_check(self->map, PG(0), UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check_zero(self->map + PG(1), UT_PAGE));
	self->map[PG(1)] = 1;
	EXPECT_EQ(1, self->map[PG(1)]);

	/* ...through a new mapping and through the node path. */
	p = ut_map(self->r.node_fd, 2 * UT_PAGE, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, ut_check(p, PG(0), UT_PAGE, SEED));
	munmap(p, 2 * UT_PAGE);
	ut_node_path(path, sizeof(path), self->r.name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd, 0) TH_LOG("%s: %s", path, strerror(errno));
	p = ut_map(fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(-1, ut_check(p, PG(0), UT_PAGE, SEED));
	munmap(p, SZ);
	close(fd);

	/* Kernel accesses to missing pages: EFAULT, no signal. */
	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	EXPECT_EQ(-1, write(pfd[1], self->map + PG(41), UT_PAGE));
	EXPECT_EQ(EFAULT, errno);
	mfd = memfd_create("umem-src", MFD_CLOEXEC);
	ASSERT_GE(mfd, 0);
	memset(buf, 1, sizeof(buf));
	ASSERT_EQ((ssize_t)UT_PAGE, pwrite(mfd, buf, UT_PAGE, 0));
	EXPECT_EQ(-1, pread(mfd, self->map + PG(42), UT_PAGE, 0));
	EXPECT_EQ(EFAULT, errno);
	close(mfd);
	close(pfd[0]);
	close(pfd[1]);
}

/* A task blocked in the kernel (not in a user fault) gets EFAULT. */
TEST_F(fault, server_close_wakes_syscall_waiter)
{
	struct ut_io_thread io;
	int pfd[2];

	ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
	ASSERT_EQ(0, ut_io_start(&io, UT_IO_WRITE, pfd[1], self->map + PG(43),
				 UT_PAGE, 0));
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	close_server(self);
	ASSERT_EQ(0, ut_io_join(&io, UT_WAIT_MS));
	EXPECT_EQ(-1, io.ret);
	EXPECT_EQ(EFAULT, io.err);
	close(pfd[0]);
	close(pfd[1]);
}

/* The harness way: the test itself must die of SIGBUS. */
TEST_F_SIGNAL(fault, sigbus_after_close, SIGBUS)
{
	volatile char *p = self->map + PG(44);

	close_server(self);
	(void)*p;
	TH_LOG("read a missing page of a detached region without SIGBUS");
}

/* ---- many tasks, many pages, a daemon installing concurrently ---- */

#define BIG_PAGES	256
#define NWORKERS	8

FIXTURE(daemon) {
	struct ut_region r;
	struct ut_daemon d;
	char *map;
};

FIXTURE_VARIANT(daemon) {
	enum ut_install how;
	unsigned int batch;
};

FIXTURE_VARIANT_ADD(daemon, copy) {
	.how = UT_INSTALL_COPY, .batch = 16,
};

FIXTURE_VARIANT_ADD(daemon, copy_unbatched) {
	.how = UT_INSTALL_COPY, .batch = 1,
};

FIXTURE_VARIANT_ADD(daemon, copy_vec) {
	.how = UT_INSTALL_COPY_VEC, .batch = 64,
};

FIXTURE_VARIANT_ADD(daemon, pwrite_mark) {
	.how = UT_INSTALL_PWRITE, .batch = 8,
};

FIXTURE_VARIANT_ADD(daemon, zero) {
	.how = UT_INSTALL_ZERO, .batch = 16,
};

FIXTURE_SETUP(daemon)
{
	ut_region_clear(&self->r);
	ut_daemon_init(&self->d, -1, BIG_PAGES * UT_PAGE, SEED);
	self->map = MAP_FAILED;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	ASSERT_EQ(0, ut_region_init(&self->r, BIG_PAGES * UT_PAGE, "dmn"));
	ASSERT_EQ(0, ut_region_open_node(&self->r));
	self->map = ut_map(self->r.node_fd, BIG_PAGES * UT_PAGE, 0);
	ASSERT_NE(MAP_FAILED, self->map);
	self->d.server_fd = self->r.server_fd;
	self->d.how = variant->how;
	self->d.batch = variant->batch;
	ASSERT_EQ(0, ut_daemon_start(&self->d));
}

FIXTURE_TEARDOWN(daemon)
{
	EXPECT_EQ(0, ut_daemon_stop(&self->d));
	if (self->map != MAP_FAILED)
		munmap(self->map, BIG_PAGES * UT_PAGE);
	ut_region_fini(&self->r);
}

struct worker {
	pthread_t thread;
	char *map;
	unsigned int index;
	bool write;
	enum ut_install how;
	unsigned int bad_pages;		/* pages with the wrong contents */
	long first_bad;			/* page index, or -1 */
};

/*
 * Walk all pages starting at a worker-specific page, touching each (read
 * or write of the worker's own word) and checking the whole page.
 */
static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	unsigned int i, pg;

	w->first_bad = -1;
	for (i = 0; i < BIG_PAGES; i++) {
		uint64_t off, *word;
		unsigned int k;
		bool bad = false;

		pg = (w->index * (BIG_PAGES / NWORKERS) + i * 7) % BIG_PAGES;
		off = PG(pg);
		word = (uint64_t *)(w->map + off) + w->index;
		if (w->write)
			*word = 0x1000 + w->index;
		else
			(void)*(volatile uint64_t *)word;
		/* Words 0..NWORKERS-1 may be written by writers; check the rest. */
		for (k = NWORKERS; k < UT_PAGE / 8; k++) {
			uint64_t v = ((uint64_t *)(w->map + off))[k];
			uint64_t want = w->how == UT_INSTALL_ZERO ? 0 :
				ut_pattern_word(off + k * 8, SEED);

			if (v != want) {
				bad = true;
				break;
			}
		}
		if (w->write && *word != 0x1000 + w->index)
			bad = true;
		if (bad) {
			w->bad_pages++;
			if (w->first_bad < 0)
				w->first_bad = pg;
		}
	}
	return NULL;
}

static void run_workers(struct __test_metadata *_metadata,
			FIXTURE_DATA(daemon) *self,
			const FIXTURE_VARIANT(daemon) *variant, bool write)
{
	struct worker w[NWORKERS];
	struct umem_stats st;
	unsigned int i;

	for (i = 0; i < NWORKERS; i++) {
		w[i] = (struct worker){
			.map = self->map, .index = i, .write = write,
			.how = variant->how,
		};
		ASSERT_EQ(0, pthread_create(&w[i].thread, NULL, worker_fn, &w[i]));
	}
	for (i = 0; i < NWORKERS; i++) {
		pthread_join(w[i].thread, NULL);
		EXPECT_EQ(0, w[i].bad_pages) TH_LOG("worker %u: first bad page %ld",
						    i, w[i].first_bad);
	}

	ASSERT_EQ(0, ut_daemon_stop(&self->d));
	EXPECT_EQ(BIG_PAGES, self->d.requests);
	EXPECT_EQ(BIG_PAGES, self->d.installed);
	EXPECT_EQ(0, self->d.duplicates);
	EXPECT_EQ(0, self->d.bad_records);
	EXPECT_EQ(write ? BIG_PAGES : 0, self->d.write_requests);
	TH_LOG("%llu reads, at most %llu records per read",
	       (unsigned long long)self->d.reads,
	       (unsigned long long)self->d.max_batch);
	EXPECT_LE(self->d.max_batch, variant->batch);

	ASSERT_EQ(0, ut_stats(self->r.server_fd, &st));
	EXPECT_EQ(BIG_PAGES, st.pages_present);
	EXPECT_EQ(BIG_PAGES, st.requests);
	EXPECT_EQ(BIG_PAGES, st.installed);
	EXPECT_EQ(0, st.requests_pending);
	EXPECT_EQ(0, st.waiting);
	EXPECT_GE(st.faults, BIG_PAGES);
}

TEST_F_TIMEOUT(daemon, threads_read, 180)
{
	run_workers(_metadata, self, variant, false);
}

TEST_F_TIMEOUT(daemon, threads_write, 180)
{
	run_workers(_metadata, self, variant, true);
}

TEST_HARNESS_MAIN
