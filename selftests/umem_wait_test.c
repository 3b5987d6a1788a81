// SPDX-License-Identifier: GPL-2.0
/*
 * How a task waits for a missing page, and how it stops waiting.
 *
 * The fault path sleeps like handle_userfault(): interruptibly for user
 * faults (so SIGSTOP, ptrace stops, the cgroup freezer and signal
 * handlers work on a blocked task), once per fault (a wake-up followed by
 * a discard makes the task ask again instead of sleeping with no request
 * queued), never for faults that cannot drop the target's mmap_lock
 * (/proc/PID/mem, PTRACE_PEEKDATA: EIO at once, the request queued), and
 * never for a task that is dumping core (a crashing VMM whose daemon
 * thread it has just killed still dies).  Also UMEM_BIND: a bound
 * daemon's close or exit detaches the region although copies of the
 * server fd live on elsewhere, and the request channel's end of file.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "umem_test.h"

#define NPAGES	64
#define SZ	(NPAGES * UT_PAGE)
#define SEED	0x77
#define PG(n)	((uint64_t)(n) * UT_PAGE)

FIXTURE(wait) {
	struct ut_region r;
	char *map;
};

FIXTURE_SETUP(wait)
{
	ut_region_clear(&self->r);
	self->map = MAP_FAILED;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	ASSERT_EQ(0, ut_region_init(&self->r, SZ, "wait"));
	ASSERT_EQ(0, ut_region_open_node(&self->r));
	self->map = ut_map(self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, self->map);
}

FIXTURE_TEARDOWN(wait)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, SZ);
	ut_region_fini(&self->r);
}

/* waitpid(@flags) with a timeout: 0 with *status, -ETIMEDOUT, -errno. */
static int waitpid_flags(pid_t pid, int *status, int flags, int timeout_ms)
{
	uint64_t end = ut_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	pid_t ret;

	for (;;) {
		ret = waitpid(pid, status, flags | WNOHANG);
		if (ret == pid)
			return 0;
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ut_now_ns() > end)
			return -ETIMEDOUT;
		ut_sleep_ms(5);
	}
}

/*
 * A child that touches page @pg (after closing its copies of the umem
 * fds, so that the parent alone serves) and exits 0 if it saw the
 * pattern.
 */
static pid_t fork_toucher(FIXTURE_DATA(wait) *self, unsigned int pg)
{
	pid_t pid = fork();

	if (pid == 0) {
		volatile uint64_t *p = (uint64_t *)(self->map + PG(pg));

		close(self->r.server_fd);
		close(self->r.node_fd);
		close(self->r.ctl_fd);
		_exit(*p == ut_pattern_word(PG(pg), SEED) ? 0 : 1);
	}
	return pid;
}

/* Wait for one task blocked on the region and its request for @pg. */
static int wait_blocked(FIXTURE_DATA(wait) *self, unsigned int pg)
{
	struct umem_request req;
	int ret;

	ret = ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1, UT_WAIT_MS);
	if (ret)
		return ret;
	if (ut_read_requests(self->r.server_fd, &req, 1) != 1)
		return -EIO;
	return req.offset == PG(pg) ? 0 : -EINVAL;
}

static void finish_child(struct __test_metadata *_metadata,
			 FIXTURE_DATA(wait) *self, pid_t pid, unsigned int pg)
{
	int status;

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
				     PG(pg), SEED));
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("toucher status %#x", status);
}

/* ------------------------------------------------------------ stops */

/* SIGSTOP stops a process whose only thread waits for a missing page. */
TEST_F(wait, sigstop_stops_blocked_task)
{
	int status;
	pid_t pid;

	pid = fork_toucher(self, 3);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked(self, 3));
	ASSERT_EQ(0, kill(pid, SIGSTOP));
	EXPECT_EQ(0, waitpid_flags(pid, &status, WUNTRACED, UT_WAIT_MS))
		TH_LOG("not stopped: the waiter sleeps uninterruptibly");
	EXPECT_TRUE(WIFSTOPPED(status));
	ASSERT_EQ(0, kill(pid, SIGCONT));
	/* It asks again only if it must: the page is still requested. */
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(requests)));
	finish_child(_metadata, self, pid, 3);
	if (ut_waitpid_timeout(pid, &status, 0) == 0)
		return;
	ut_kill_reap(pid);
}

/* A ptrace stop (PTRACE_INTERRUPT) takes effect while the tracee waits. */
TEST_F(wait, ptrace_interrupt_stops_blocked_task)
{
	int status;
	pid_t pid;

	pid = fork_toucher(self, 4);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked(self, 4));
	ASSERT_EQ(0, ptrace(PTRACE_SEIZE, pid, 0, 0));
	ASSERT_EQ(0, ptrace(PTRACE_INTERRUPT, pid, 0, 0));
	EXPECT_EQ(0, waitpid_flags(pid, &status, __WALL, UT_WAIT_MS))
		TH_LOG("tracee did not stop");
	EXPECT_TRUE(WIFSTOPPED(status));
	EXPECT_EQ(0, ptrace(PTRACE_DETACH, pid, 0, 0));
	finish_child(_metadata, self, pid, 4);
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -errno;
}

static bool cg_frozen(const char *cg)
{
	char path[256], buf[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.events", cg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	return strstr(buf, "frozen 1") != NULL;
}

/* The cgroup v2 freezer freezes a task that waits for a missing page. */
TEST_F(wait, freezer_freezes_blocked_task)
{
	char cg[128], path[192], pidbuf[32];
	uint64_t end;
	bool frozen = false;
	pid_t pid;

	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK))
		SKIP(return, "no cgroup v2 at /sys/fs/cgroup");
	snprintf(cg, sizeof(cg), "/sys/fs/cgroup/umem-freeze-%d", getpid());
	ASSERT_EQ(0, mkdir(cg, 0755));
	pid = fork_toucher(self, 5);
	ASSERT_LT(0, pid);
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	snprintf(pidbuf, sizeof(pidbuf), "%d", pid);
	EXPECT_EQ(0, write_str(path, pidbuf));
	ASSERT_EQ(0, wait_blocked(self, 5));

	snprintf(path, sizeof(path), "%s/cgroup.freeze", cg);
	ASSERT_EQ(0, write_str(path, "1"));
	end = ut_now_ns() + UT_WAIT_MS * 1000000ULL;
	while (!(frozen = cg_frozen(cg)) && ut_now_ns() < end)
		ut_sleep_ms(20);
	EXPECT_TRUE(frozen) TH_LOG("cgroup never froze");
	EXPECT_EQ(0, write_str(path, "0"));
	finish_child(_metadata, self, pid, 5);
	rmdir(cg);
}

/* ------------------------------------------------------ signal handlers */

static atomic_int handled;

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&handled, 1);
}

/*
 * A signal handler (a VMM's vCPU kick) runs while its thread waits for
 * a missing page; the thread then goes back to waiting, without a second
 * request, and gets the page.
 */
TEST_F(wait, handler_runs_while_blocked)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	struct umem_request req;
	struct ut_toucher t;
	uint64_t end;

	atomic_store(&handled, 0);
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(6), false, 0));
	ASSERT_EQ(0, wait_blocked(self, 6));
	ASSERT_EQ(0, pthread_kill(t.thread, SIGUSR1));
	end = ut_now_ns() + UT_WAIT_MS * 1000000ULL;
	while (!atomic_load(&handled) && ut_now_ns() < end)
		ut_sleep_ms(5);
	EXPECT_EQ(1, atomic_load(&handled)) TH_LOG("handler did not run");
	/* Still waiting for the page; no duplicate request. */
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	EXPECT_EQ(0, atomic_load(&t.done));
	ASSERT_EQ(0, ut_set_nonblock(self->r.server_fd, true));
	EXPECT_EQ(-EAGAIN, ut_read_requests(self->r.server_fd, &req, 1));
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(6),
				     SEED));
	ASSERT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS));
	EXPECT_EQ(-1, ut_check(t.page, PG(6), UT_PAGE, SEED));
	signal(SIGUSR1, SIG_DFL);
}

/* ------------------------------------------------------ sleep once */

struct churn {
	int sfd;
	int requests;
	int error;
	pthread_t thread;
};

/*
 * A daemon that answers the first request for the page by installing it
 * and discarding it again at once, the second by installing it.  It runs
 * SCHED_FIFO on the toucher's CPU, so the woken toucher cannot run until
 * the daemon blocks again: it wakes to a missing page with no request.
 */
static void *churn_thread(void *arg)
{
	struct sched_param sp = { .sched_priority = 10 };
	struct churn *c = arg;
	struct umem_request req;

	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp)) {
		c->error = -EPERM;
		return NULL;
	}
	while (c->requests < 2) {
		if (ut_read_requests(c->sfd, &req, 1) != 1) {
			c->error = -EIO;
			return NULL;
		}
		c->requests++;
		if (ut_install_page(c->sfd, UT_INSTALL_COPY, req.offset, SEED)) {
			c->error = -EIO;
			return NULL;
		}
		if (c->requests == 1 && ut_discard(c->sfd, req.offset, UT_PAGE)) {
			c->error = -EIO;
			return NULL;
		}
	}
	return NULL;
}

TEST_F_TIMEOUT(wait, wake_then_discard_asks_again, 60)
{
	struct churn c = { .sfd = self->r.server_fd };
	pthread_attr_t attr;
	struct ut_toucher t;
	cpu_set_t cpus;

	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	/* Both threads inherit CPU 0 from here. */
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpus), &cpus));
	ASSERT_EQ(0, pthread_attr_init(&attr));
	ASSERT_EQ(0, pthread_create(&c.thread, &attr, churn_thread, &c));
	ASSERT_EQ(0, ut_toucher_start(&t, self->map + PG(9), false, 0));
	EXPECT_EQ(0, ut_toucher_join(&t, UT_WAIT_MS))
		TH_LOG("toucher still asleep after a wake-up and a discard "
		       "(done %d, requests %d, waiting %llu)",
		       atomic_load(&t.done), c.requests,
		       (unsigned long long)ut_stat(self->r.server_fd,
						   UT_STAT(waiting)));
	if (atomic_load(&t.done)) {
		EXPECT_EQ(-1, ut_check(t.page, PG(9), UT_PAGE, SEED));
	} else {
		/* unblock it for the teardown */
		ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(9), SEED);
		ut_toucher_join(&t, UT_WAIT_MS);
		pthread_cancel(c.thread);
	}
	pthread_join(c.thread, NULL);
	EXPECT_EQ(0, c.error);
	EXPECT_EQ(2, c.requests);
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	CPU_SET(1, &cpus);
	sched_setaffinity(0, sizeof(cpus), &cpus);
}

/* ------------------------------------------- faults that cannot retry */

static ssize_t pread_mem(pid_t pid, void *buf, size_t len, uint64_t addr)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, addr);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

/*
 * /proc/PID/mem and PTRACE_PEEKDATA of a missing page of another process
 * fail at once (EIO) instead of sleeping on the daemon with the target's
 * mmap_lock held; the request is queued, and once the page is installed
 * both read it.
 */
TEST_F(wait, remote_access_does_not_wait)
{
	uint64_t addr = (uintptr_t)(self->map + PG(12));
	unsigned char buf[UT_PAGE];
	struct umem_request req;
	uint64_t t0;
	long word;
	int status;
	ssize_t n;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(self->r.server_fd);
		for (;;)
			pause();
	}
	t0 = ut_now_ns();
	n = pread_mem(pid, buf, UT_PAGE, addr);
	EXPECT_EQ(-EIO, n);
	EXPECT_LT(ut_now_ns() - t0, 2000000000ULL);
	ASSERT_EQ(1, ut_poll_in(self->r.server_fd, UT_WAIT_MS));
	ASSERT_EQ(1, ut_read_requests(self->r.server_fd, &req, 1));
	EXPECT_EQ(PG(12), req.offset);

	ASSERT_EQ(0, ptrace(PTRACE_SEIZE, pid, 0, 0));
	ASSERT_EQ(0, ptrace(PTRACE_INTERRUPT, pid, 0, 0));
	ASSERT_EQ(0, waitpid_flags(pid, &status, __WALL, UT_WAIT_MS));
	errno = 0;
	word = ptrace(PTRACE_PEEKDATA, pid, addr + 8, 0);
	EXPECT_EQ(-1, word);
	EXPECT_EQ(EIO, errno);

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
				     PG(12), SEED));
	errno = 0;
	word = ptrace(PTRACE_PEEKDATA, pid, addr + 8, 0);
	EXPECT_EQ(0, errno);
	EXPECT_EQ((long)ut_pattern_word(PG(12) + 8, SEED), word);
	ASSERT_EQ(UT_PAGE, pread_mem(pid, buf, UT_PAGE, addr));
	EXPECT_EQ(-1, ut_check(buf, PG(12), UT_PAGE, SEED));
	ut_kill_reap(pid);
}

/* ------------------------------------------------------------ core dump */

static long file_find(const char *path, const void *needle, size_t len)
{
	static unsigned char buf[1 << 20];
	long pos = 0, hit = -1;
	ssize_t n, keep = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf + keep, sizeof(buf) - keep)) > 0) {
		void *p = memmem(buf, keep + n, needle, len);

		if (p) {
			hit = pos + ((unsigned char *)p - buf) - keep;
			break;
		}
		pos += n;
		keep = keep + n > (ssize_t)len ? (ssize_t)len - 1 : 0;
		memmove(buf, buf + sizeof(buf) - keep, keep);
	}
	close(fd);
	return hit;
}

static void *block_in_read(void *arg)
{
	struct umem_request req;

	ut_read_requests(*(int *)arg, &req, 1);
	for (;;)
		pause();
	return NULL;
}

static void *touch_page(void *arg)
{
	return (void *)(uintptr_t)*(volatile uint64_t *)arg;
}

/*
 * A VMM crashes with a core dump while one of its threads waits for a
 * missing page and its daemon is another of its threads (killed by the
 * dump): the dump must finish and the process die, with the present
 * pages in the core and holes for the missing ones.
 */
TEST_F_TIMEOUT(wait, core_dump_with_daemon_inside, 120)
{
	char pattern_file[64], old_pattern[256], core[96];
	unsigned char page0[UT_PAGE];
	int status, fd;
	ssize_t n;
	pid_t pid;

	fd = open("/proc/sys/kernel/core_pattern", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	n = read(fd, old_pattern, sizeof(old_pattern) - 1);
	ASSERT_LT(0, n);
	old_pattern[n] = 0;
	snprintf(pattern_file, sizeof(pattern_file), "/tmp/umem-core.%%p");
	ASSERT_EQ((ssize_t)strlen(pattern_file),
		  pwrite(fd, pattern_file, strlen(pattern_file), 0));

	ut_fill(page0, 0, UT_PAGE, 0x5eed);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
		struct ut_region r;
		pthread_t d, t;
		char *m;

		if (setrlimit(RLIMIT_CORE, &rl) ||
		    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
			_exit(10);
		if (ut_region_init(&r, 16 * UT_PAGE, "core") ||
		    ut_region_open_node(&r))
			_exit(11);
		m = ut_map(r.node_fd, 16 * UT_PAGE, 0);
		if (m == MAP_FAILED ||
		    ut_copy(r.server_fd, 0, page0, UT_PAGE, NULL))
			_exit(12);
		if (pthread_create(&d, NULL, block_in_read, &r.server_fd) ||
		    pthread_create(&t, NULL, touch_page, m + PG(5)))
			_exit(13);
		while (ut_stat(r.server_fd, UT_STAT(waiting)) != 1)
			ut_sleep_ms(10);
		abort();
	}
	EXPECT_EQ(0, ut_waitpid_timeout(pid, &status, 90000))
		TH_LOG("the dumping VMM never finished dying");
	pwrite(fd, old_pattern, strlen(old_pattern), 0);
	close(fd);
	if (waitpid(pid, &status, WNOHANG) == 0)
		ut_kill_reap(pid);
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
		TH_LOG("status %#x", status);
	EXPECT_TRUE(WCOREDUMP(status));
	snprintf(core, sizeof(core), "/tmp/umem-core.%d", pid);
	EXPECT_LE(0, file_find(core, page0, 256))
		TH_LOG("the present page is not in %s", core);
	unlink(core);
}

/* ------------------------------------------------------------ UMEM_BIND */

static int do_bind(int sfd, uint64_t flags, uint64_t reserved)
{
	struct umem_bind b = { .flags = flags, .reserved = { reserved } };

	return ut_ioctl(sfd, UMEM_BIND, &b);
}

TEST_F(wait, bind_errors)
{
	EXPECT_EQ(-EINVAL, do_bind(self->r.server_fd, 1, 0));
	EXPECT_EQ(-EINVAL, do_bind(self->r.server_fd, 0, 1));
	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_BIND, NULL));
	EXPECT_EQ(-ENOTTY, ut_ioctl(self->r.node_fd, UMEM_BIND, NULL));
	EXPECT_EQ(0, do_bind(self->r.server_fd, 0, 0));
	EXPECT_EQ(0, do_bind(self->r.server_fd, 0, 0));
}

/*
 * Unbound, a copy of the server fd in another process keeps the region
 * attached: the daemon's close does not release the waiter.  This is
 * the documented default; UMEM_BIND below is the way out.
 */
TEST_F(wait, copy_keeps_unbound_region_attached)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		volatile uint64_t *p = (uint64_t *)(self->map + PG(20));

		/* keeps its copy of the server fd */
		_exit(*p == ut_pattern_word(PG(20), SEED) ? 0 : 1);
	}
	ASSERT_EQ(0, wait_blocked(self, 20));
	close(self->r.server_fd);
	self->r.server_fd = -1;
	ut_sleep_ms(300);
	EXPECT_EQ(-ETIMEDOUT, ut_waitpid_timeout(pid, &status, 0));
	ut_kill_reap(pid);
}

/* Bound, the daemon's close detaches although the child holds a copy. */
TEST_F(wait, bound_close_detaches)
{
	int status;
	pid_t pid;

	ASSERT_EQ(0, do_bind(self->r.server_fd, 0, 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		volatile uint64_t *p = (uint64_t *)(self->map + PG(21));

		_exit(*p == ut_pattern_word(PG(21), SEED) ? 0 : 1);
	}
	ASSERT_EQ(0, wait_blocked(self, 21));
	close(self->r.server_fd);
	self->r.server_fd = -1;
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS)
		TH_LOG("status %#x", status);
}

/* A child's close of its inherited copy does not detach a bound region. */
TEST_F(wait, child_close_does_not_detach)
{
	struct pollfd p = { .fd = self->r.server_fd, .events = POLLIN };
	int status;
	pid_t pid;

	ASSERT_EQ(0, do_bind(self->r.server_fd, 0, 0));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(self->r.server_fd);
		_exit(0);
	}
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_EQ(0, poll(&p, 1, 100));
	pid = fork_toucher(self, 22);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, wait_blocked(self, 22));
	finish_child(_metadata, self, pid, 22);
}

/*
 * The daemon is another process that bound the region and handed the
 * server fd over a unix socket: when it exits, the receiver's copy reads
 * end of file, polls EPOLLHUP, and faults on missing pages get SIGBUS.
 * While it lives, a second bind from elsewhere is EBUSY.
 */
TEST_F(wait, bound_daemon_exit_detaches)
{
	struct pollfd p;
	struct umem_request req;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cm;
	int sv[2], sfd, status;
	char *m, c = 0;
	pid_t pid, t;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct ut_region r;

		if (ut_region_init(&r, 8 * UT_PAGE, "bound") ||
		    do_bind(r.server_fd, 0, 0))
			_exit(10);
		iov.iov_base = &c;
		iov.iov_len = 1;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf;
		msg.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &r.server_fd, sizeof(int));
		if (sendmsg(sv[1], &msg, 0) != 1)
			_exit(11);
		/* wait for the go, then die with the fd open */
		if (read(sv[1], &c, 1) != 1)
			_exit(12);
		_exit(0);
	}
	iov.iov_base = &c;
	iov.iov_len = 1;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf;
	msg.msg_controllen = sizeof(cbuf);
	ASSERT_EQ(1, recvmsg(sv[0], &msg, 0));
	cm = CMSG_FIRSTHDR(&msg);
	ASSERT_NE(NULL, cm);
	memcpy(&sfd, CMSG_DATA(cm), sizeof(int));
	EXPECT_EQ(-EBUSY, do_bind(sfd, 0, 0));
	m = mmap(NULL, 8 * UT_PAGE, PROT_READ, MAP_SHARED, sfd, 0);
	ASSERT_NE(MAP_FAILED, m);

	ASSERT_EQ(1, write(sv[0], &c, 1));
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	p.fd = sfd;
	p.events = POLLIN;
	EXPECT_EQ(1, poll(&p, 1, UT_WAIT_MS));
	EXPECT_TRUE(p.revents & POLLHUP);
	EXPECT_EQ(0, ut_read_requests(sfd, &req, 1));
	t = fork();
	ASSERT_LE(0, t);
	if (t == 0)
		_exit(*(volatile char *)(m + PG(1)));
	ASSERT_EQ(0, ut_waitpid_timeout(t, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS)
		TH_LOG("status %#x", status);
	/* The old binder is gone: binding again is allowed. */
	EXPECT_EQ(0, do_bind(sfd, 0, 0));
	munmap(m, 8 * UT_PAGE);
	close(sfd);
	close(sv[0]);
	close(sv[1]);
}

/* -------------------------------------------------- the request channel */

struct reader {
	int sfd;
	atomic_int *stop;
	int zero_reads;
	int got;
	pthread_t thread;
};

static void *reader_fn(void *arg)
{
	struct reader *rd = arg;
	struct umem_request req;
	ssize_t n;

	while (!atomic_load(rd->stop)) {
		n = ut_read_requests(rd->sfd, &req, 1);
		if (n == 0) {
			if (atomic_load(rd->stop))
				break;	/* the detach at the end */
			rd->zero_reads++;
			continue;
		}
		if (n != 1)
			continue;
		rd->got++;
		ut_install_page(rd->sfd, UT_INSTALL_COPY, req.offset, SEED);
	}
	return NULL;
}

/* Two blocking readers racing for each request never read end of file. */
TEST_F_TIMEOUT(wait, racing_readers_never_read_eof, 180)
{
	atomic_int stop = 0;
	struct reader rd[3];
	struct ut_toucher t[4];
	unsigned int round, i;
	int copy;

	ASSERT_EQ(0, do_bind(self->r.server_fd, 0, 0));
	for (i = 0; i < 3; i++) {
		rd[i] = (struct reader){ .sfd = self->r.server_fd, .stop = &stop };
		ASSERT_EQ(0, pthread_create(&rd[i].thread, NULL, reader_fn, &rd[i]));
	}
	for (round = 0; round < NPAGES / 4; round++) {
		for (i = 0; i < 4; i++) {
			ASSERT_EQ(0, ut_toucher_start(&t[i],
				self->map + PG(round * 4 + i), false, 0));
		}
		for (i = 0; i < 4; i++) {
			ASSERT_EQ(0, ut_toucher_join(&t[i], UT_WAIT_MS));
		}
	}
	atomic_store(&stop, 1);
	/* Wake the readers with end of file: the bound process detaches. */
	copy = dup(self->r.server_fd);
	ASSERT_LE(0, copy);
	close(copy);
	for (i = 0; i < 3; i++)
		pthread_join(rd[i].thread, NULL);
	EXPECT_EQ(NPAGES, rd[0].got + rd[1].got + rd[2].got);
	EXPECT_EQ(0, rd[0].zero_reads + rd[1].zero_reads + rd[2].zero_reads);
}

static void *blocking_read(void *arg)
{
	struct umem_request req;

	return (void *)(intptr_t)ut_read_requests(*(int *)arg, &req, 1);
}

/* A reader blocked on an empty queue wakes with end of file on detach. */
TEST_F(wait, detach_wakes_reader_with_eof)
{
	pthread_t th;
	void *ret;
	int copy;

	copy = dup(self->r.server_fd);
	ASSERT_LE(0, copy);
	ASSERT_EQ(0, do_bind(self->r.server_fd, 0, 0));
	ASSERT_EQ(0, pthread_create(&th, NULL, blocking_read, &self->r.server_fd));
	ut_sleep_ms(200);
	/* Closing any descriptor of the bound process detaches. */
	close(copy);
	ASSERT_EQ(0, pthread_join(th, &ret));
	EXPECT_EQ(0, (intptr_t)ret);
}

struct bad_reader {
	int sfd;
	void *buf;
	ssize_t ret;
};

static void *bad_read(void *arg)
{
	struct bad_reader *b = arg;

	b->ret = read(b->sfd, b->buf, 2 * sizeof(struct umem_request));
	if (b->ret < 0)
		b->ret = -errno;
	return NULL;
}

/*
 * A read() whose copy-out fails after the region detached must not put
 * its requests back on the flushed queue.  The copy is made to fail late:
 * the second record's slot is a missing page of another region, whose
 * fault waits until that region detaches too.
 */
TEST_F(wait, no_requeue_onto_detached_region)
{
	struct bad_reader b = { .sfd = self->r.server_fd };
	struct ut_toucher t1, t2;
	struct ut_region other;
	struct umem_stats st;
	pthread_t th;
	int copy;
	char *om;

	ASSERT_EQ(0, ut_region_init(&other, 2 * UT_PAGE, "trap"));
	ASSERT_EQ(0, ut_region_open_node(&other));
	om = ut_map(other.node_fd, 2 * UT_PAGE, 0);
	ASSERT_NE(MAP_FAILED, om);
	/* other's page 0 is present; the records' buffer straddles into 1 */
	ASSERT_EQ(0, ut_install_page(other.server_fd, UT_INSTALL_ZERO, 0, 0));
	b.buf = om + UT_PAGE - sizeof(struct umem_request);

	ASSERT_EQ(0, ut_toucher_start(&t1, self->map + PG(30), false, 0));
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(requests), 1,
				  UT_WAIT_MS));
	ASSERT_EQ(0, ut_toucher_start(&t2, self->map + PG(31), false, 0));
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(requests), 2,
				  UT_WAIT_MS));
	ASSERT_EQ(0, do_bind(self->r.server_fd, 0, 0));
	ASSERT_EQ(0, pthread_create(&th, NULL, bad_read, &b));
	/* The reader is stuck copying out the second record. */
	ASSERT_EQ(0, ut_wait_stat(other.server_fd, UT_STAT(waiting), 1,
				  UT_WAIT_MS));
	/* Both records are out of the queue; serve the touchers. */
	ASSERT_EQ(0, ut_stats(self->r.server_fd, &st));
	EXPECT_EQ(0, st.requests_pending);
	ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(30), SEED);
	ut_install_page(self->r.server_fd, UT_INSTALL_COPY, PG(31), SEED);
	ASSERT_EQ(0, ut_toucher_join(&t1, UT_WAIT_MS));
	ASSERT_EQ(0, ut_toucher_join(&t2, UT_WAIT_MS));
	/* Now detach it (the bound process closes a descriptor) while the
	 * reader holds the two records. */
	copy = dup(self->r.server_fd);
	ASSERT_LE(0, copy);
	close(copy);
	/* Let the copy-out fail: detach the trap region. */
	close(other.server_fd);
	other.server_fd = -1;
	ASSERT_EQ(0, pthread_join(th, NULL));
	EXPECT_EQ((ssize_t)sizeof(struct umem_request), b.ret);
	ASSERT_EQ(0, ut_stats(self->r.server_fd, &st));
	EXPECT_EQ(0, st.requests_pending)
		TH_LOG("a request was put back on a detached region");
	munmap(om, 2 * UT_PAGE);
	ut_region_fini(&other);
}

TEST_HARNESS_MAIN
