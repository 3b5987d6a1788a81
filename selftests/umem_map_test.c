// SPDX-License-Identifier: GPL-2.0
/*
 * Mapping a umem region: the node by path, lseek, mmap(MAP_SHARED)
 * including QEMU's memory-backend-file sequence (MAP_FIXED over a
 * PROT_NONE reservation, then madvise), the refusals (MAP_PRIVATE, past
 * the end, mremap growth), mremap shrink/move, and a VMM that receives the
 * server fd over SCM_RIGHTS and maps it.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "umem_test.h"

#define NPAGES	16
#define SZ	(NPAGES * UT_PAGE)
#define SEED	0x3a9

FIXTURE(map) {
	struct ut_region r;
	struct ut_daemon d;
	void *map;
	size_t map_len;
};

FIXTURE_SETUP(map)
{
	ut_region_clear(&self->r);
	ut_daemon_init(&self->d, -1, SZ, SEED);
	self->map = MAP_FAILED;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	ASSERT_EQ(0, ut_region_init(&self->r, SZ, "map"));
	ASSERT_EQ(0, ut_region_open_node(&self->r));
	self->d.server_fd = self->r.server_fd;
}

FIXTURE_TEARDOWN(map)
{
	EXPECT_EQ(0, ut_daemon_stop(&self->d));
	if (self->map != MAP_FAILED)
		munmap(self->map, self->map_len);
	ut_region_fini(&self->r);
}

/* Map @len bytes of @fd at @off into self->map (unmapped in teardown). */
static void *fixture_map(FIXTURE_DATA(map) *self, int fd, size_t len,
			 uint64_t off)
{
	self->map = ut_map(fd, len, off);
	self->map_len = len;
	return self->map;
}

/*
 * madvise(@advice) as this kernel answers it for plain shared memory:
 * MADV_HUGEPAGE is EINVAL without THP (PREEMPT_RT), MADV_MERGEABLE
 * without KSM.  A umem mapping must answer the same.
 */
static int madvise_baseline(int advice)
{
	void *p = mmap(NULL, UT_PAGE, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int ret;

	if (p == MAP_FAILED)
		return -errno;
	ret = madvise(p, UT_PAGE, advice) ? -errno : 0;
	munmap(p, UT_PAGE);
	return ret;
}

static int madvise_err(void *p, size_t len, int advice)
{
	return madvise(p, len, advice) ? -errno : 0;
}

/* Is [addr, addr + len) mapped at all?  (mincore() says ENOMEM if not.) */
static bool is_mapped(void *addr, size_t len)
{
	unsigned char vec[NPAGES * 2];

	return mincore(addr, len, vec) == 0;
}

TEST_F(map, node_by_path)
{
	struct stat st, st2;
	char path[64];
	uint64_t *a, *b;
	int fd2;

	ASSERT_EQ(0, fstat(self->r.node_fd, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(self->r.id, minor(st.st_rdev));
	EXPECT_EQ(O_RDWR, fcntl(self->r.node_fd, F_GETFL) & O_ACCMODE);

	/* A second opener of the path gets the same region. */
	ut_node_path(path, sizeof(path), self->r.name);
	fd2 = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd2, 0) TH_LOG("open %s: %s", path, strerror(errno));
	ASSERT_EQ(0, fstat(fd2, &st2));
	EXPECT_EQ(st.st_rdev, st2.st_rdev);
	EXPECT_EQ((off_t)SZ, lseek(fd2, 0, SEEK_END));

	a = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, a);
	b = ut_map(fd2, SZ, 0);
	ASSERT_NE(MAP_FAILED, b);
	close(fd2);
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
				     2 * UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check(a + 2 * UT_PAGE / 8, 2 * UT_PAGE, UT_PAGE, SEED));
	b[2 * UT_PAGE / 8] = 7;
	EXPECT_EQ(7, a[2 * UT_PAGE / 8]);
	munmap(b, SZ);
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests)));
}

TEST_F(map, lseek)
{
	int fd = self->r.node_fd;

	EXPECT_EQ((off_t)SZ, lseek(fd, 0, SEEK_END));
	EXPECT_EQ((off_t)UT_PAGE, lseek(fd, UT_PAGE, SEEK_SET));
	EXPECT_EQ((off_t)(2 * UT_PAGE), lseek(fd, UT_PAGE, SEEK_CUR));
	EXPECT_EQ(0, lseek(fd, -(off_t)(2 * UT_PAGE), SEEK_CUR));
	EXPECT_EQ((off_t)(SZ - UT_PAGE), lseek(fd, -(off_t)UT_PAGE, SEEK_END));
	EXPECT_EQ((off_t)SZ, lseek(fd, SZ, SEEK_SET));
	EXPECT_EQ(0, lseek(fd, 0, SEEK_SET));

	/* Beyond the fixed size or before 0: EINVAL, position unchanged. */
	EXPECT_EQ(-1, lseek(fd, SZ + 1, SEEK_SET));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, lseek(fd, 1, SEEK_END));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, lseek(fd, -1, SEEK_SET));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, lseek(fd, -1, SEEK_CUR));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, lseek(fd, 0, SEEK_CUR));
}

TEST_F(map, shared_rw)
{
	uint64_t *p;

	p = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, p) TH_LOG("mmap: %s", strerror(errno));
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
				     UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check((char *)p + UT_PAGE, UT_PAGE, UT_PAGE, SEED));
	p[UT_PAGE / 8] = 42;
	EXPECT_EQ(42, p[UT_PAGE / 8]);

	/* Read-only shared mappings work too. */
	p = mmap(NULL, UT_PAGE, PROT_READ, MAP_SHARED, self->r.node_fd, UT_PAGE);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(42, p[0]);
	EXPECT_EQ(ut_pattern_word(UT_PAGE + 8, SEED), p[1]);
	munmap(p, UT_PAGE);
}

/* Node mapping and server-fd mapping are the same memory. */
TEST_F(map, server_fd_mmap_coherent)
{
	uint64_t *a, *b;

	a = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, a);
	b = ut_map(self->r.server_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, b) TH_LOG("mmap server fd: %s", strerror(errno));
	ASSERT_EQ(0, ut_daemon_start(&self->d));

	/* A fault through either mapping is served by the same daemon. */
	EXPECT_EQ(ut_pattern_word(0, SEED), b[0]);
	EXPECT_EQ(ut_pattern_word(0, SEED), a[0]);
	EXPECT_EQ(ut_pattern_word(3 * UT_PAGE, SEED), a[3 * UT_PAGE / 8]);
	EXPECT_EQ(ut_pattern_word(3 * UT_PAGE, SEED), b[3 * UT_PAGE / 8]);
	a[1] = 0x1111;
	b[3 * UT_PAGE / 8 + 1] = 0x2222;
	EXPECT_EQ(0x1111, b[1]);
	EXPECT_EQ(0x2222, a[3 * UT_PAGE / 8 + 1]);

	EXPECT_EQ(0, ut_daemon_stop(&self->d));
	EXPECT_EQ(2, self->d.requests);
	EXPECT_EQ(0, self->d.duplicates);
	munmap(b, SZ);
}

TEST_F(map, offset_mapping)
{
	uint64_t *p;

	/* Pages [4, 6) of the region at a mapping of their own. */
	p = fixture_map(self, self->r.node_fd, 2 * UT_PAGE, 4 * UT_PAGE);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, ut_daemon_start(&self->d));
	EXPECT_EQ(-1, ut_check(p, 4 * UT_PAGE, UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check((char *)p + UT_PAGE, 5 * UT_PAGE, UT_PAGE, SEED));
	ASSERT_EQ(0, ut_daemon_stop(&self->d));
	/* Requests carry region offsets, not mapping offsets. */
	EXPECT_EQ(2, self->d.requests);
	EXPECT_EQ(1, ut_daemon_seen(&self->d, 4 * UT_PAGE));
	EXPECT_EQ(1, ut_daemon_seen(&self->d, 5 * UT_PAGE));
	EXPECT_EQ(0, ut_daemon_seen(&self->d, 0));
}

/*
 * QEMU's memory-backend-file,share=on,mem-path=/dev/umem-<name>: size the
 * file with lseek, reserve size + align as PROT_NONE, map the file
 * MAP_SHARED | MAP_FIXED at the aligned address, drop the slack, then
 * madvise the RAM block.
 */
TEST_F(map, qemu_memory_backend_file)
{
	const size_t align = 2UL << 20;
	char path[64], *guard, *ptr, *aligned;
	off_t fsize;
	size_t lead;
	int fd;

	ut_node_path(path, sizeof(path), self->r.name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_GE(fd, 0) TH_LOG("open %s: %s", path, strerror(errno));
	fsize = lseek(fd, 0, SEEK_END);
	ASSERT_EQ((off_t)SZ, fsize);

	guard = mmap(NULL, SZ + align, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, guard);
	aligned = (char *)(((uintptr_t)guard + align - 1) & ~(align - 1));
	ptr = mmap(aligned, SZ, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		   fd, 0);
	ASSERT_EQ(aligned, ptr) TH_LOG("mmap fixed: %s", strerror(errno));
	lead = (size_t)(aligned - guard);
	if (lead)
		munmap(guard, lead);
	/* Keep one PROT_NONE guard page after the block, unmap the rest. */
	if (align - lead > UT_PAGE)
		munmap(ptr + SZ + UT_PAGE, align - lead - UT_PAGE);
	self->map = ptr;
	self->map_len = SZ + UT_PAGE;	/* with the guard page */
	close(fd);

	EXPECT_EQ(madvise_baseline(MADV_HUGEPAGE),
		  madvise_err(ptr, SZ, MADV_HUGEPAGE));
	EXPECT_EQ(0, madvise(ptr, SZ, MADV_DONTFORK)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(madvise_baseline(MADV_MERGEABLE),
		  madvise_err(ptr, SZ, MADV_MERGEABLE));

	/* The guest runs: every page it touches arrives from the daemon. */
	ASSERT_EQ(0, ut_daemon_start(&self->d));
	EXPECT_EQ(-1, ut_check(ptr + 7 * UT_PAGE, 7 * UT_PAGE, UT_PAGE, SEED));
	ptr[SZ - 1] = 0x77;
	EXPECT_EQ(0x77, ptr[SZ - 1]);
	EXPECT_EQ(-1, ut_check(ptr + SZ - UT_PAGE, SZ - UT_PAGE, UT_PAGE - 8,
			       SEED));
	ASSERT_EQ(0, ut_daemon_stop(&self->d));
	EXPECT_EQ(2, self->d.requests);
	EXPECT_EQ(1, self->d.write_requests);
	EXPECT_EQ(0, self->d.bad_records);
}

TEST_F(map, madvise_flags)
{
	static const struct { int advice; const char *name; } adv[] = {
		{ MADV_HUGEPAGE, "MADV_HUGEPAGE" },
		{ MADV_DONTFORK, "MADV_DONTFORK" },
		{ MADV_MERGEABLE, "MADV_MERGEABLE" },
	};
	unsigned int i;
	char *p;

	p = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, p);
	for (i = 0; i < UT_ARRAY_SIZE(adv); i++) {
		int want = madvise_baseline(adv[i].advice);

		EXPECT_EQ(want, madvise_err(p, SZ, adv[i].advice))
			TH_LOG("%s", adv[i].name);
		/* And on part of the mapping. */
		EXPECT_EQ(want, madvise_err(p + UT_PAGE, UT_PAGE, adv[i].advice))
			TH_LOG("%s (one page)", adv[i].name);
	}
	/* None of them touched a page. */
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(requests)));
}

/* MADV_DONTFORK really keeps the block out of a child; DOFORK brings it back. */
TEST_F(map, dontfork)
{
	volatile uint64_t *p;
	int status;
	pid_t pid;

	p = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, 0, SEED));
	ASSERT_EQ(0, madvise((void *)p, SZ, MADV_DONTFORK));

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		(void)p[0];	/* not mapped here: SIGSEGV */
		_exit(0);
	}
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status));
	EXPECT_EQ(SIGSEGV, WTERMSIG(status));

	ASSERT_EQ(0, madvise((void *)p, SZ, MADV_DOFORK));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(p[0] == ut_pattern_word(0, SEED) ? 0 : 1);
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_F(map, private_refused)
{
	const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE };
	const int fds[] = { self->r.node_fd, self->r.server_fd };
	unsigned int i, j;
	void *p;

	for (i = 0; i < UT_ARRAY_SIZE(fds); i++) {
		for (j = 0; j < UT_ARRAY_SIZE(prots); j++) {
			p = mmap(NULL, SZ, prots[j], MAP_PRIVATE, fds[i], 0);
			EXPECT_EQ(MAP_FAILED, p) TH_LOG("fd %u prot %d", i, prots[j]);
			EXPECT_EQ(EINVAL, errno);
			if (p != MAP_FAILED)
				munmap(p, SZ);
		}
	}
}

TEST_F(map, past_size_refused)
{
	static const struct { uint64_t len, off; } bad[] = {
		{ SZ + UT_PAGE, 0 },
		{ 2 * SZ, 0 },
		{ UT_PAGE, SZ },
		{ 2 * UT_PAGE, SZ - UT_PAGE },
		{ SZ, UT_PAGE },
		{ UT_PAGE, 1ULL << 40 },
	};
	const int fds[] = { self->r.node_fd, self->r.server_fd };
	unsigned int i, j;
	void *p;

	for (i = 0; i < UT_ARRAY_SIZE(fds); i++) {
		for (j = 0; j < UT_ARRAY_SIZE(bad); j++) {
			p = ut_map(fds[i], bad[j].len, bad[j].off);
			EXPECT_EQ(MAP_FAILED, p)
				TH_LOG("fd %u len %#llx off %#llx", i,
				       (unsigned long long)bad[j].len,
				       (unsigned long long)bad[j].off);
			EXPECT_EQ(EINVAL, errno);
			if (p != MAP_FAILED)
				munmap(p, bad[j].len);
		}
		/* The last page alone fits. */
		p = ut_map(fds[i], UT_PAGE, SZ - UT_PAGE);
		EXPECT_NE(MAP_FAILED, p);
		if (p != MAP_FAILED)
			munmap(p, UT_PAGE);
	}
}

TEST_F(map, mremap_grow_refused)
{
	uint64_t *p;
	void *q;

	p = fixture_map(self, self->r.node_fd, SZ / 2, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, 0, SEED));

	q = mremap(p, SZ / 2, SZ, 0);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EFAULT, errno);
	q = mremap(p, SZ / 2, SZ, MREMAP_MAYMOVE);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EFAULT, errno);
	/* Even growth that stays inside the region is refused. */
	q = mremap(p, SZ / 2, SZ / 2 + UT_PAGE, MREMAP_MAYMOVE);
	EXPECT_EQ(MAP_FAILED, q);
	EXPECT_EQ(EFAULT, errno);

	/* The mapping is untouched. */
	EXPECT_EQ(ut_pattern_word(0, SEED), p[0]);
	EXPECT_TRUE(is_mapped(p, SZ / 2));
}

TEST_F(map, mremap_shrink_and_move)
{
	char *p, *q, *target;

	p = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, ut_daemon_start(&self->d));

	/* Shrink in place. */
	q = mremap(p, SZ, SZ / 2, 0);
	ASSERT_EQ(p, q) TH_LOG("mremap shrink: %s", strerror(errno));
	self->map_len = SZ / 2;
	EXPECT_FALSE(is_mapped(p + SZ / 2, UT_PAGE));
	EXPECT_EQ(-1, ut_check(p + UT_PAGE, UT_PAGE, UT_PAGE, SEED));

	/* Move to a fixed place: faults there still name region offsets. */
	target = mmap(NULL, SZ / 2, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, target);
	q = mremap(p, SZ / 2, SZ / 2, MREMAP_MAYMOVE | MREMAP_FIXED, target);
	ASSERT_EQ(target, q) TH_LOG("mremap move: %s", strerror(errno));
	self->map = q;
	EXPECT_FALSE(is_mapped(p, UT_PAGE));
	EXPECT_EQ(-1, ut_check(q + UT_PAGE, UT_PAGE, UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check(q + 6 * UT_PAGE, 6 * UT_PAGE, UT_PAGE, SEED));

	ASSERT_EQ(0, ut_daemon_stop(&self->d));
	EXPECT_EQ(2, self->d.requests);
	EXPECT_EQ(1, ut_daemon_seen(&self->d, UT_PAGE));
	EXPECT_EQ(1, ut_daemon_seen(&self->d, 6 * UT_PAGE));
}

/* ---- SCM_RIGHTS: a VMM that gets the server fd from its daemon ---- */

struct fd_id {
	dev_t dev;
	ino_t ino;
};

static int send_fd(int sock, int fd, const struct fd_id *id)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = (void *)id, .iov_len = sizeof(*id) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c;

	memset(cbuf, 0, sizeof(cbuf));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == (ssize_t)sizeof(*id) ? 0 : -errno;
}

static int recv_fd(int sock, struct fd_id *id)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = id, .iov_len = sizeof(*id) };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c;
	int fd;

	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != (ssize_t)sizeof(*id))
		return -EIO;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -EIO;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/*
 * The child: drop everything umem it inherited, get the server fd over
 * the socket, map it, read an installed page, fault a missing one (served
 * by the parent's daemon), leave a mark.  Exit code says what failed.
 */
static int scm_child(FIXTURE_DATA(map) *self, int sock)
{
	struct umem_stats st;
	struct fd_id id;
	struct stat sb;
	uint64_t *p;
	int fd;

	close(self->r.server_fd);
	close(self->r.node_fd);
	close(self->r.ctl_fd);

	fd = recv_fd(sock, &id);
	if (fd < 0)
		return 10;
	if (fstat(fd, &sb) || sb.st_dev != id.dev || sb.st_ino != id.ino)
		return 11;
	/* It is a working server fd... */
	if (ut_stats(fd, &st) || st.size != SZ)
		return 12;
	/* ...that maps. */
	p = ut_map(fd, SZ, 0);
	if (p == MAP_FAILED)
		return 13;
	if (ut_check(p, 0, UT_PAGE, SEED) != -1)
		return 14;
	if (ut_check(p + 5 * UT_PAGE / 8, 5 * UT_PAGE, UT_PAGE, SEED) != -1)
		return 15;
	p[1] = 0xc0ffee;
	munmap(p, SZ);
	close(fd);
	return 0;
}

TEST_F(map, scm_rights_server_fd)
{
	struct fd_id id;
	struct stat sb;
	uint64_t *p;
	int sv[2], status;
	pid_t pid;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		_exit(scm_child(self, sv[1]));
	}
	close(sv[1]);

	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY, 0, SEED));
	ASSERT_EQ(0, ut_daemon_start(&self->d));
	ASSERT_EQ(0, fstat(self->r.server_fd, &sb));
	id.dev = sb.st_dev;
	id.ino = sb.st_ino;
	ASSERT_EQ(0, send_fd(sv[0], self->r.server_fd, &id));
	close(sv[0]);

	if (ut_waitpid_timeout(pid, &status, 2 * UT_WAIT_MS)) {
		ut_kill_reap(pid);
		ASSERT_TRUE(0) TH_LOG("child did not finish");
	}
	ASSERT_TRUE(WIFEXITED(status)) TH_LOG("child status %#x", status);
	EXPECT_EQ(0, WEXITSTATUS(status));

	ASSERT_EQ(0, ut_daemon_stop(&self->d));
	EXPECT_EQ(1, self->d.requests);
	EXPECT_EQ(1, ut_daemon_seen(&self->d, 5 * UT_PAGE));

	/* The child's write is in the region. */
	p = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ(0xc0ffee, p[1]);
}

/* ---- what the mapping can and cannot be turned into ---- */

/*
 * A node opened O_RDONLY maps read-only MAP_SHARED (UMEM_F_RDONLY_MAP):
 * present pages read, missing ones block and are requested like any
 * other; writing is refused at mmap and mprotect time.
 */
TEST_F(map, rdonly_shared_mapping)
{
	char path[64];
	volatile uint64_t *p;
	int fd;

	ut_node_path(path, sizeof(path), self->r.name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(MAP_FAILED, mmap(NULL, SZ, PROT_READ | PROT_WRITE,
				   MAP_SHARED, fd, 0));
	EXPECT_EQ(EACCES, errno);
	self->map = mmap(NULL, SZ, PROT_READ, MAP_SHARED, fd, 0);
	self->map_len = SZ;
	ASSERT_NE(MAP_FAILED, self->map) TH_LOG("%s", strerror(errno));
	close(fd);
	EXPECT_EQ(-1, mprotect(self->map, SZ, PROT_READ | PROT_WRITE));
	EXPECT_EQ(EACCES, errno);
	ASSERT_EQ(0, ut_daemon_start(&self->d));
	p = (uint64_t *)((char *)self->map + 3 * UT_PAGE);
	EXPECT_EQ(ut_pattern_word(3 * UT_PAGE, SEED), *p);
	EXPECT_EQ(0, ut_daemon_stop(&self->d));
	EXPECT_EQ(1, self->d.requests);
}

/*
 * remap_file_pages() maps the vma's file again: the result must still be
 * a umem mapping (a missing page blocks and is requested), not plain
 * shmem reading zeros.
 */
TEST_F(map, remap_file_pages_stays_umem)
{
	char *m;

	m = fixture_map(self, self->r.node_fd, 4 * UT_PAGE, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
				     0, SEED));
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
				     8 * UT_PAGE, SEED));
	ASSERT_EQ(0, ut_daemon_start(&self->d));
	/* Map pages 8..11 where 0..3 were (MAP_POPULATE faults them all). */
	ASSERT_EQ(0, remap_file_pages(m, 4 * UT_PAGE, 0, 8, 0))
		TH_LOG("%s", strerror(errno));
	EXPECT_EQ(-1, ut_check(m, 8 * UT_PAGE, UT_PAGE, SEED));
	EXPECT_EQ(-1, ut_check(m + 2 * UT_PAGE, 10 * UT_PAGE, UT_PAGE, SEED));
	EXPECT_EQ(0, ut_daemon_stop(&self->d));
	/* pages 9, 10, 11 came from the daemon, none read as zeros */
	EXPECT_EQ(3, self->d.requests);
}

/*
 * madvise(MADV_REMOVE) while the region is served would drop data the
 * daemon believes installed: EBUSY, data intact.  Once detached, it is a
 * tmpfs punch: the page reads zeros afterwards, and nothing SIGBUSes.
 */
TEST_F(map, madv_remove)
{
	char *m;

	m = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
				     UT_PAGE, SEED));
	EXPECT_EQ(-1, madvise(m + UT_PAGE, UT_PAGE, MADV_REMOVE));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(-1, ut_check(m + UT_PAGE, UT_PAGE, UT_PAGE, SEED));
	EXPECT_EQ(1, ut_stat(self->r.server_fd, UT_STAT(pages_present)));

	close(self->r.server_fd);
	self->r.server_fd = -1;
	EXPECT_EQ(0, madvise(m + UT_PAGE, UT_PAGE, MADV_REMOVE))
		TH_LOG("%s", strerror(errno));
	EXPECT_EQ(-1, ut_check_zero(m + UT_PAGE, UT_PAGE));
}

/*
 * /proc/PID/map_files opens the vma's file by path: it must not reach the
 * region's data (it is an empty placeholder), while the mapping itself
 * still reads the page.
 */
TEST_F(map, map_files_has_no_data)
{
	char link[128], buf[64];
	struct stat st;
	char *m;
	int fd;

	m = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
				     0, SEED));
	snprintf(link, sizeof(link), "/proc/self/map_files/%lx-%lx",
		 (unsigned long)m, (unsigned long)(m + SZ));
	fd = open(link, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		/* refusing the open is fine too */
		EXPECT_TRUE(errno == EPERM || errno == ENXIO || errno == EACCES);
		return;
	}
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(0, st.st_size);
	EXPECT_EQ(0, pread(fd, buf, sizeof(buf), 0));
	close(fd);
	EXPECT_EQ(-1, ut_check(m, 0, UT_PAGE, SEED));
}

/* msync(MS_SYNC) works on a umem mapping, as on shmem. */
TEST_F(map, msync)
{
	char *m;

	m = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, m);
	EXPECT_EQ(0, msync(m, SZ, MS_SYNC)) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(0, msync(m, SZ, MS_ASYNC));
}

static long status_kb(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f;

	f = fopen("/proc/self/status", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			v = strtol(line + strlen(key), NULL, 10);
	fclose(f);
	return v;
}

/*
 * Documented: mlock() of a umem mapping faults every page in (so it
 * requests and waits for the missing ones) and succeeds, but locks
 * nothing: the vma is VM_SPECIAL, and VmLck does not grow.
 */
TEST_F(map, mlock_populates_but_does_not_lock)
{
	long before;
	char *m;

	m = fixture_map(self, self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, m);
	before = status_kb("VmLck:");
	ASSERT_LE(0, before);
	ASSERT_EQ(0, ut_daemon_start(&self->d));
	EXPECT_EQ(0, mlock(m, SZ));
	EXPECT_EQ(before, status_kb("VmLck:"));
	EXPECT_EQ(0, munlock(m, SZ));
	EXPECT_EQ(0, ut_daemon_stop(&self->d));
	EXPECT_EQ(NPAGES, self->d.requests);
}

TEST_HARNESS_MAIN
