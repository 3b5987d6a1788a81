// SPDX-License-Identifier: GPL-2.0
/*
 * umem control-device API: the UMEM_GET_API handshake, UMEM_CREATE and
 * its argument checks, region names, the server fd and node it returns,
 * and unknown ioctls on every kind of umem fd.  Bad paths first.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "umem_test.h"

#define SZ	(16 * UT_PAGE)

/* Every command number of API 1. */
static const uint64_t expected_ioctls =
	(1ULL << _IOC_NR(UMEM_GET_API)) | (1ULL << _IOC_NR(UMEM_CREATE)) |
	(1ULL << _IOC_NR(UMEM_COPY)) | (1ULL << _IOC_NR(UMEM_COPY_VEC)) |
	(1ULL << _IOC_NR(UMEM_ZERO)) | (1ULL << _IOC_NR(UMEM_MARK_PRESENT)) |
	(1ULL << _IOC_NR(UMEM_DISCARD)) | (1ULL << _IOC_NR(UMEM_STATS)) |
	(1ULL << _IOC_NR(UMEM_BIND)) | (1ULL << _IOC_NR(UMEM_WRITEPROTECT)) |
	(1ULL << _IOC_NR(UMEM_ATTACH));

/* Commands that are not (or not on this fd) umem commands. */
static const unsigned long foreign_cmds[] = {
	_IO(UMEMIO, 0x3f),
	_IOWR(UMEMIO, 0x0f, __u64),
	_IOWR(UMEMIO, 0x16, struct umem_stats),
	_IO('x', 1),
	_IOR('T', 0x1B, int),
	_IOWR(UMEMIO, 0x00, __u64),			/* GET_API, wrong size */
	_IOR(UMEMIO, 0x00, struct umem_api),		/* GET_API, wrong dir */
	_IOWR(UMEMIO, 0x10, __u64),			/* COPY, wrong size */
	_IOWR(UMEMIO, 0x15, struct umem_stats),		/* STATS, wrong dir */
	_IOWR(UMEMIO, 0x14, struct umem_discard),	/* DISCARD, wrong dir */
};

static const unsigned long server_cmds[] = {
	UMEM_COPY, UMEM_COPY_VEC, UMEM_ZERO, UMEM_MARK_PRESENT,
	UMEM_DISCARD, UMEM_STATS,
};

static const unsigned long ctl_cmds[] = { UMEM_GET_API, UMEM_CREATE };

/* Zeroed argument memory big enough for any umem struct. */
struct any_arg {
	__u64 w[64];
};
#define ZERO_ARG (&(struct any_arg){ { 0 } })

static int read_sysfs(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

/* ------------------------------------------------------------------ */

FIXTURE(ctl) {
	int fd;
};

FIXTURE_SETUP(ctl)
{
	self->fd = -1;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	self->fd = ut_open_ctl_raw();
	ASSERT_GE(self->fd, 0);
}

FIXTURE_TEARDOWN(ctl)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(ctl, device_node)
{
	struct stat st;

	ASSERT_EQ(0, stat(UMEM_CTL_DEVICE, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(0600, st.st_mode & 07777);
}

TEST_F(ctl, get_api_wrong_api)
{
	static const uint64_t bad[] = { 0, UMEM_API + 1, 2, 1ULL << 32, ~0ULL };
	struct umem_api api;
	unsigned int i;

	for (i = 0; i < UT_ARRAY_SIZE(bad); i++) {
		memset(&api, 0, sizeof(api));
		api.api = bad[i];
		EXPECT_EQ(-EINVAL, ut_get_api(self->fd, &api))
			TH_LOG("api %llu", (unsigned long long)bad[i]);
		/* Nothing about the kernel leaks out of a failed handshake. */
		EXPECT_EQ(0, api.features);
		EXPECT_EQ(0, api.ioctls);
	}
}

/* A failed handshake zeroes the whole reply, whatever the caller put in. */
TEST_F(ctl, get_api_failure_zeroes_reply)
{
	struct umem_api api;
	unsigned int i;

	memset(&api, 0xa5, sizeof(api));
	api.api = UMEM_API + 1;
	EXPECT_EQ(-EINVAL, ut_get_api(self->fd, &api));
	EXPECT_EQ(0, api.api);
	EXPECT_EQ(0, api.features);
	EXPECT_EQ(0, api.ioctls);
	for (i = 0; i < UT_ARRAY_SIZE(api.reserved); i++) {
		EXPECT_EQ(0, api.reserved[i]);
	}
}

TEST_F(ctl, get_api_unknown_feature)
{
	static const uint64_t bad[] = {
		1ULL << 63, 1ULL << 20, UMEM_F_ALL + 1, ~UMEM_F_ALL, ~0ULL,
		UMEM_F_ALL | (1ULL << 63),
	};
	struct umem_api api;
	unsigned int i;

	/* The header's promise: every feature is in UMEM_F_ALL. */
	ASSERT_EQ(0, UMEM_F_ALL & (1ULL << 20));
	/* ... and they are the low bits, without gaps. */
	ASSERT_EQ(0, UMEM_F_ALL & (UMEM_F_ALL + 1));
	for (i = 0; i < UT_ARRAY_SIZE(bad); i++) {
		memset(&api, 0, sizeof(api));
		api.api = UMEM_API;
		api.features = bad[i];
		EXPECT_EQ(-EINVAL, ut_get_api(self->fd, &api))
			TH_LOG("features %#llx", (unsigned long long)bad[i]);
		EXPECT_EQ(0, api.ioctls);
	}
}

TEST_F(ctl, get_api_reserved)
{
	struct umem_api api;
	unsigned int i;

	for (i = 0; i < UT_ARRAY_SIZE(api.reserved); i++) {
		memset(&api, 0, sizeof(api));
		api.api = UMEM_API;
		api.reserved[i] = 1;
		EXPECT_EQ(-EINVAL, ut_get_api(self->fd, &api))
			TH_LOG("reserved[%u]", i);
		EXPECT_EQ(0, api.ioctls);
	}
}

TEST_F(ctl, get_api_efault)
{
	struct umem_api *ro;

	EXPECT_EQ(-EFAULT, ut_get_api(self->fd, NULL));
	EXPECT_EQ(-EFAULT, ut_get_api(self->fd, (void *)1UL));
	EXPECT_EQ(-EFAULT, ut_get_api(self->fd, (void *)-4096L));

	/* A valid request the kernel cannot answer into. */
	ro = mmap(NULL, UT_PAGE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ro->api = UMEM_API;
	ASSERT_EQ(0, mprotect(ro, UT_PAGE, PROT_READ));
	EXPECT_EQ(-EFAULT, ut_get_api(self->fd, ro));
	munmap(ro, UT_PAGE);
}

/*
 * What this kernel must report: everything, except 2 MiB pages on a
 * kernel without transparent huge pages (PREEMPT_RT 6.12 has none) and
 * map at install while the module parameter map_on_install is N.
 */
static uint64_t expected_features(void)
{
	uint64_t f = UMEM_F_ALL;
	char c = 'Y';
	int fd;

	if (access("/sys/kernel/mm/transparent_hugepage", F_OK))
		f &= ~UMEM_F_PAGE_2M;
	fd = open("/sys/module/umem/parameters/map_on_install",
		  O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, &c, 1) != 1)
			c = '?';
		close(fd);
	}
	if (c != 'Y')
		f &= ~UMEM_F_MAP_ON_INSTALL;
	return f;
}

TEST_F(ctl, get_api_ok)
{
	struct umem_api api;
	unsigned int i;

	memset(&api, 0, sizeof(api));
	api.api = UMEM_API;
	ASSERT_EQ(0, ut_get_api(self->fd, &api));
	EXPECT_EQ(UMEM_API, api.api);
	EXPECT_EQ(expected_features(), api.features);
	EXPECT_EQ(expected_ioctls, api.ioctls);
	for (i = 0; i < UT_ARRAY_SIZE(api.reserved); i++) {
		EXPECT_EQ(0, api.reserved[i]);
	}
}

TEST_F(ctl, get_api_each_feature)
{
	struct umem_api api;
	unsigned int bit;

	uint64_t want = expected_features();

	for (bit = 0; bit < 64; bit++) {
		if (!(UMEM_F_ALL & (1ULL << bit)))
			continue;
		memset(&api, 0, sizeof(api));
		api.api = UMEM_API;
		api.features = 1ULL << bit;
		if (!(want & (1ULL << bit))) {
			/* Known to the header, not working here: refused. */
			EXPECT_EQ(-EINVAL, ut_get_api(self->fd, &api))
				TH_LOG("bit %u", bit);
			EXPECT_EQ(0, api.features);
			continue;
		}
		EXPECT_EQ(0, ut_get_api(self->fd, &api)) TH_LOG("bit %u", bit);
		EXPECT_EQ(want, api.features);
		EXPECT_EQ(expected_ioctls, api.ioctls);
	}
	memset(&api, 0, sizeof(api));
	api.api = UMEM_API;
	api.features = want;
	EXPECT_EQ(0, ut_get_api(self->fd, &api));
	EXPECT_EQ(want, api.features);
}

TEST_F(ctl, get_api_repeat)
{
	struct umem_api a, b;

	/* The handshake may be repeated at any time, also after a failure. */
	memset(&a, 0, sizeof(a));
	a.api = UMEM_API;
	ASSERT_EQ(0, ut_get_api(self->fd, &a));
	memset(&b, 0, sizeof(b));
	b.api = 7;
	ASSERT_EQ(-EINVAL, ut_get_api(self->fd, &b));
	memset(&b, 0, sizeof(b));
	b.api = UMEM_API;
	ASSERT_EQ(0, ut_get_api(self->fd, &b));
	EXPECT_EQ(0, memcmp(&a, &b, sizeof(a)));
}

TEST_F(ctl, unknown_ioctl)
{
	unsigned int i;

	for (i = 0; i < UT_ARRAY_SIZE(foreign_cmds); i++) {
		EXPECT_EQ(-ENOTTY, ut_ioctl(self->fd, foreign_cmds[i],
					    ZERO_ARG))
			TH_LOG("cmd %#lx", foreign_cmds[i]);
	}
	/* Server fd commands are not control commands. */
	for (i = 0; i < UT_ARRAY_SIZE(server_cmds); i++) {
		EXPECT_EQ(-ENOTTY, ut_ioctl(self->fd, server_cmds[i],
					    ZERO_ARG))
			TH_LOG("server cmd nr %#x", (unsigned int)_IOC_NR(server_cmds[i]));
	}
}

/* ---- UMEM_CREATE argument checks ---- */

static struct umem_create good_create(const char *tag)
{
	struct umem_create c;

	memset(&c, 0, sizeof(c));
	c.size = SZ;
	c.page_size = UMEM_PAGE_SIZE_4K;
	ut_make_name(c.name, tag);
	return c;
}

TEST_F(ctl, create_bad_size)
{
	static const uint64_t bad[] = {
		0, 1, 4095, 4097, UT_PAGE + 512, 3 * UT_PAGE - 8,
		/* Beyond the 1 TiB limit, and sizes that overflow pgoff. */
		(1ULL << 40) + UT_PAGE, 1ULL << 50, 1ULL << 63,
		~0ULL & ~(UT_PAGE - 1), ~0ULL,
	};
	struct umem_create c;
	unsigned int i;

	for (i = 0; i < UT_ARRAY_SIZE(bad); i++) {
		c = good_create("sz");
		c.size = bad[i];
		EXPECT_EQ(-EINVAL, ut_ioctl(self->fd, UMEM_CREATE, &c))
			TH_LOG("size %#llx", (unsigned long long)bad[i]);
	}
}

TEST_F(ctl, create_bad_page_size)
{
	static const uint32_t bad[] = {
		0, 1, 512, 2048, 4095, 4097, 8192, 65536, 1U << 20,
		(2U << 20) + 4096, 4U << 20, 1U << 30, ~0U,
	};
	struct umem_create c;
	unsigned int i;

	for (i = 0; i < UT_ARRAY_SIZE(bad); i++) {
		c = good_create("ps");
		c.page_size = bad[i];
		c.size = 4ULL << 30;	/* a multiple of every bad size */
		EXPECT_EQ(-EINVAL, ut_ioctl(self->fd, UMEM_CREATE, &c))
			TH_LOG("page_size %u", bad[i]);
	}
}

TEST_F(ctl, create_bad_flags)
{
	struct umem_create c;
	unsigned int bit;

	for (bit = 0; bit < 32; bit++) {
		if (UMEM_CREATE_FLAGS & (1U << bit))
			continue;	/* umem_wp_test covers the defined ones */
		c = good_create("fl");
		c.flags = 1U << bit;
		EXPECT_EQ(-EINVAL, ut_ioctl(self->fd, UMEM_CREATE, &c))
			TH_LOG("flag bit %u", bit);
	}
}

TEST_F(ctl, create_bad_reserved)
{
	struct umem_create c;
	unsigned int i;

	for (i = 0; i < UT_ARRAY_SIZE(c.reserved); i++) {
		c = good_create("rs");
		c.reserved[i] = 1ULL << (i * 13);
		EXPECT_EQ(-EINVAL, ut_ioctl(self->fd, UMEM_CREATE, &c))
			TH_LOG("reserved[%u]", i);
	}
}

TEST_F(ctl, create_bad_names)
{
	static const char *const bad[] = {
		"", "a/b", "/", "a b", " a", "a\n", "a:b", "a*", "a\\b",
		"\xc3\xa4", "a\x7f", "a%d", "umem~", "a+b", "a,b", "\t",
	};
	struct umem_create c;
	unsigned int i;

	for (i = 0; i < UT_ARRAY_SIZE(bad); i++) {
		c = good_create(NULL);
		memset(c.name, 0, sizeof(c.name));
		snprintf(c.name, sizeof(c.name), "%s", bad[i]);
		EXPECT_EQ(-EINVAL, ut_ioctl(self->fd, UMEM_CREATE, &c))
			TH_LOG("name \"%s\"", bad[i]);
	}
	/* No NUL within UMEM_NAME_MAX. */
	c = good_create(NULL);
	memset(c.name, 'a', sizeof(c.name));
	EXPECT_EQ(-EINVAL, ut_ioctl(self->fd, UMEM_CREATE, &c));
}

TEST_F(ctl, create_good_names)
{
	char name[UMEM_NAME_MAX], path[64];
	const char *const tails[] = { "", "A-Z_0.9", "-", ".", "..", "_" };
	struct umem_create c;
	unsigned int i;
	int fd;

	for (i = 0; i < UT_ARRAY_SIZE(tails); i++) {
		c = good_create(NULL);
		memset(name, 0, sizeof(name));
		snprintf(name, sizeof(name), "%s%s", c.name, tails[i]);
		memcpy(c.name, name, sizeof(name));
		fd = ut_ioctl(self->fd, UMEM_CREATE, &c);
		EXPECT_GE(fd, 0) TH_LOG("name \"%s\": %s", name, strerror(-fd));
		if (fd < 0)
			continue;
		ut_node_path(path, sizeof(path), name);
		EXPECT_EQ(0, ut_wait_path(path, true, UT_WAIT_MS))
			TH_LOG("%s", path);
		close(fd);
	}

	/* The longest name: UMEM_NAME_MAX - 1 characters. */
	c = good_create(NULL);
	memset(c.name + strlen(c.name), 'x',
	       UMEM_NAME_MAX - 1 - strlen(c.name));
	c.name[UMEM_NAME_MAX - 1] = 0;
	ASSERT_EQ(UMEM_NAME_MAX - 1, strlen(c.name));
	fd = ut_ioctl(self->fd, UMEM_CREATE, &c);
	ASSERT_GE(fd, 0) TH_LOG("%s", strerror(-fd));
	ut_node_path(path, sizeof(path), c.name);
	EXPECT_EQ(0, ut_wait_path(path, true, UT_WAIT_MS));
	close(fd);
}

TEST_F(ctl, create_efault)
{
	struct umem_create *ro;
	int fd;

	EXPECT_EQ(-EFAULT, ut_ioctl(self->fd, UMEM_CREATE, NULL));
	EXPECT_EQ(-EFAULT, ut_ioctl(self->fd, UMEM_CREATE, (void *)8UL));

	/*
	 * A good request in read-only memory: the kernel cannot write
	 * id/server_fd back, so the call fails -- and must not leave a
	 * region (or a taken name) behind.
	 */
	ro = mmap(NULL, UT_PAGE, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	*ro = good_create("ro");
	ASSERT_EQ(0, mprotect(ro, UT_PAGE, PROT_READ));
	EXPECT_EQ(-EFAULT, ut_ioctl(self->fd, UMEM_CREATE, ro));

	fd = ut_create(self->fd, ro->name, SZ, NULL);
	EXPECT_GE(fd, 0) TH_LOG("name left taken after EFAULT: %s",
				strerror(-fd));
	if (fd >= 0)
		close(fd);
	munmap(ro, UT_PAGE);
}

TEST_F(ctl, create_ok)
{
	char path[96], buf[64];
	struct umem_create c = good_create("ok");
	struct stat st;
	ssize_t n;
	int fd;

	fd = ut_ioctl(self->fd, UMEM_CREATE, &c);
	ASSERT_GE(fd, 0) TH_LOG("%s", strerror(-fd));
	EXPECT_EQ(fd, c.server_fd);
	EXPECT_EQ(SZ, c.size);
	EXPECT_EQ(UMEM_PAGE_SIZE_4K, c.page_size);
	EXPECT_EQ(0, c.flags);

	/* The server fd: O_RDWR | O_CLOEXEC, an anon inode "[umem]". */
	EXPECT_EQ(FD_CLOEXEC, fcntl(fd, F_GETFD) & FD_CLOEXEC);
	EXPECT_EQ(O_RDWR, fcntl(fd, F_GETFL) & O_ACCMODE);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, sizeof(buf) - 1);
	ASSERT_GT(n, 0);
	buf[n] = 0;
	EXPECT_STREQ("anon_inode:[umem]", buf);

	/* The node: a 0600 char device whose minor is the region id. */
	ut_node_path(path, sizeof(path), c.name);
	ASSERT_EQ(0, ut_wait_path(path, true, UT_WAIT_MS)) TH_LOG("%s", path);
	ASSERT_EQ(0, stat(path, &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(0600, st.st_mode & 07777);
	EXPECT_EQ(c.id, minor(st.st_rdev));

	/* sysfs: class "umem", attributes name and size. */
	snprintf(path, sizeof(path), "/sys/class/umem/umem-%s/name", c.name);
	ASSERT_EQ(0, read_sysfs(path, buf, sizeof(buf))) TH_LOG("%s", path);
	EXPECT_EQ(0, strncmp(buf, c.name, strlen(c.name)));
	EXPECT_EQ('\n', buf[strlen(c.name)]);
	snprintf(path, sizeof(path), "/sys/class/umem/umem-%s/size", c.name);
	ASSERT_EQ(0, read_sysfs(path, buf, sizeof(buf))) TH_LOG("%s", path);
	EXPECT_EQ(SZ, strtoull(buf, NULL, 10));

	close(fd);
}

TEST_F(ctl, create_large_sparse)
{
	struct umem_create c = good_create("big");
	struct umem_stats st;
	int fd;

	/* 64 GiB: nothing is allocated until pages are installed. */
	c.size = 64ULL << 30;
	fd = ut_ioctl(self->fd, UMEM_CREATE, &c);
	ASSERT_GE(fd, 0) TH_LOG("%s", strerror(-fd));
	ASSERT_EQ(0, ut_stats(fd, &st));
	EXPECT_EQ(64ULL << 30, st.size);
	EXPECT_EQ((64ULL << 30) / UT_PAGE, st.pages);
	EXPECT_EQ(0, st.pages_present);
	close(fd);
}

TEST_F(ctl, create_duplicate)
{
	struct umem_create a = good_create("dup"), b;
	int fa, fb;

	fa = ut_ioctl(self->fd, UMEM_CREATE, &a);
	ASSERT_GE(fa, 0);
	b = a;
	b.size = 2 * SZ;
	b.id = 0;
	b.server_fd = 0;
	EXPECT_EQ(-EEXIST, ut_ioctl(self->fd, UMEM_CREATE, &b));

	/* Another control fd sees the same namespace. */
	fb = ut_open_ctl();
	ASSERT_GE(fb, 0);
	b.id = 0;
	b.server_fd = 0;
	EXPECT_EQ(-EEXIST, ut_ioctl(fb, UMEM_CREATE, &b));

	/* Once the only reference is gone the name is free again. */
	close(fa);
	fa = ut_ioctl(fb, UMEM_CREATE, &b);
	EXPECT_GE(fa, 0) TH_LOG("%s", strerror(-fa));
	if (fa >= 0)
		close(fa);
	close(fb);
}

TEST_F(ctl, create_many)
{
	struct umem_create c[4];
	int fd[4];
	unsigned int i, j;

	for (i = 0; i < 4; i++) {
		c[i] = good_create("many");
		c[i].size = (i + 1) * UT_PAGE;
		fd[i] = ut_ioctl(self->fd, UMEM_CREATE, &c[i]);
		ASSERT_GE(fd[i], 0);
		EXPECT_EQ(fd[i], c[i].server_fd);
	}
	for (i = 0; i < 4; i++) {
		EXPECT_EQ((i + 1) * UT_PAGE, ut_stat(fd[i], UT_STAT(size)));
		for (j = 0; j < i; j++) {
			EXPECT_NE(c[i].id, c[j].id);
			EXPECT_NE(0, strcmp(c[i].name, c[j].name));
		}
	}
	for (i = 0; i < 4; i++)
		close(fd[i]);
}

TEST_F(ctl, ctl_close_keeps_region)
{
	struct umem_create c = good_create("cc");
	struct umem_stats st;
	int fd;

	fd = ut_ioctl(self->fd, UMEM_CREATE, &c);
	ASSERT_GE(fd, 0);
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, ut_stats(fd, &st));
	EXPECT_EQ(SZ, st.size);
	EXPECT_EQ(0, ut_zero(fd, 0, UT_PAGE, NULL));
	EXPECT_EQ(1, ut_stat(fd, UT_STAT(pages_present)));
	close(fd);
}

/* ---- ioctls on the server fd and the node ---- */

FIXTURE(region) {
	struct ut_region r;
};

FIXTURE_SETUP(region)
{
	ut_region_clear(&self->r);
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	ASSERT_EQ(0, ut_region_init(&self->r, SZ, "io"));
	ASSERT_EQ(0, ut_region_open_node(&self->r));
}

FIXTURE_TEARDOWN(region)
{
	ut_region_fini(&self->r);
}

TEST_F(region, server_unknown_ioctl)
{
	unsigned int i;

	for (i = 0; i < UT_ARRAY_SIZE(foreign_cmds); i++) {
		EXPECT_EQ(-ENOTTY, ut_ioctl(self->r.server_fd,
					    foreign_cmds[i], ZERO_ARG))
			TH_LOG("cmd %#lx", foreign_cmds[i]);
	}
	/* Control commands are not server commands. */
	for (i = 0; i < UT_ARRAY_SIZE(ctl_cmds); i++) {
		EXPECT_EQ(-ENOTTY, ut_ioctl(self->r.server_fd, ctl_cmds[i],
					    ZERO_ARG))
			TH_LOG("ctl cmd nr %#x", (unsigned int)_IOC_NR(ctl_cmds[i]));
	}
	/* Nothing of the above changed the region. */
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(pages_present)));
}

TEST_F(region, node_unknown_ioctl)
{
	unsigned int i;

	/* The node only maps: every ioctl, umem's included, is ENOTTY. */
	for (i = 0; i < UT_ARRAY_SIZE(foreign_cmds); i++) {
		EXPECT_EQ(-ENOTTY, ut_ioctl(self->r.node_fd,
					    foreign_cmds[i], ZERO_ARG))
			TH_LOG("cmd %#lx", foreign_cmds[i]);
	}
	for (i = 0; i < UT_ARRAY_SIZE(server_cmds); i++) {
		EXPECT_EQ(-ENOTTY, ut_ioctl(self->r.node_fd, server_cmds[i],
					    ZERO_ARG))
			TH_LOG("server cmd nr %#x", (unsigned int)_IOC_NR(server_cmds[i]));
	}
	for (i = 0; i < UT_ARRAY_SIZE(ctl_cmds); i++) {
		EXPECT_EQ(-ENOTTY, ut_ioctl(self->r.node_fd, ctl_cmds[i],
					    ZERO_ARG));
	}
}

TEST_F(region, node_read_write)
{
	char buf[UT_PAGE];

	memset(buf, 0x5a, sizeof(buf));
	EXPECT_EQ(-1, read(self->r.node_fd, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, write(self->r.node_fd, buf, sizeof(buf)));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pread(self->r.node_fd, buf, sizeof(buf), 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, ut_stat(self->r.server_fd, UT_STAT(pages_present)));
}

/*
 * The server fd is an anon inode, not a shmem file, whatever its page
 * cache is: memfd seals do not apply (and must not be read from an inode
 * that has none).
 */
TEST_F(region, server_fd_has_no_seals)
{
	EXPECT_EQ(-1, fcntl(self->r.server_fd, F_GET_SEALS));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(region, stats_fresh)
{
	struct umem_stats st;

	memset(&st, 0xff, sizeof(st));
	ASSERT_EQ(0, ut_ioctl(self->r.server_fd, UMEM_STATS, &st));
	EXPECT_EQ(SZ, st.size);
	EXPECT_EQ(UT_PAGE, st.page_size);
	EXPECT_EQ(SZ / UT_PAGE, st.pages);
	EXPECT_EQ(0, st.pages_present);
	EXPECT_EQ(0, st.requests);
	EXPECT_EQ(0, st.requests_pending);
	EXPECT_EQ(0, st.faults);
	EXPECT_EQ(0, st.waiting);
	EXPECT_EQ(0, st.wait_ns_total);
	EXPECT_EQ(0, st.wait_ns_max);
	EXPECT_EQ(0, st.installed);
	EXPECT_EQ(0, st.discarded);
	EXPECT_EQ(0, st.pages_protected);
	EXPECT_EQ(0, st.wp_faults);
	EXPECT_EQ(0, st.mmaps);
}

/*
 * mmaps counts the mmap() calls of the node and the server fd, by any
 * process: not a fork's copy, a split, an mremap() or a
 * remap_file_pages() of a mapping; a failed mmap() is not counted and the
 * count never drops.  It is how a daemon tells that a VMM has taken the
 * RAM of a region it maps by path.
 */
TEST_F(region, stats_mmaps)
{
	int sfd = self->r.server_fd, status;
	uint8_t *a, *b, *c;
	pid_t pid;

	ASSERT_EQ(0, ut_stat(sfd, UT_STAT(mmaps)));
	/* Refused mappings: private, past the end. */
	EXPECT_EQ(MAP_FAILED, mmap(NULL, UT_PAGE, PROT_READ, MAP_PRIVATE,
				   self->r.node_fd, 0));
	EXPECT_EQ(MAP_FAILED, ut_map(self->r.node_fd, 2 * SZ, 0));
	EXPECT_EQ(0, ut_stat(sfd, UT_STAT(mmaps)));

	a = ut_map(self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, a);
	EXPECT_EQ(1, ut_stat(sfd, UT_STAT(mmaps)));
	b = ut_map(sfd, 4 * UT_PAGE, 0);
	ASSERT_NE(MAP_FAILED, b);
	EXPECT_EQ(2, ut_stat(sfd, UT_STAT(mmaps)));

	/* Split, move, re-map a page of the file (remap_file_pages()
	 * populates: the page must be present): the same mmap(). */
	ASSERT_EQ(0, ut_zero(sfd, 2 * UT_PAGE, UT_PAGE, NULL));
	EXPECT_EQ(0, munmap(a + 4 * UT_PAGE, UT_PAGE));
	c = mremap(b, 4 * UT_PAGE, 2 * UT_PAGE, MREMAP_MAYMOVE);
	EXPECT_NE(MAP_FAILED, c);
	EXPECT_EQ(0, remap_file_pages(a, UT_PAGE, 0, 2, 0));
	EXPECT_EQ(2, ut_stat(sfd, UT_STAT(mmaps)));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(ut_stat(sfd, UT_STAT(mmaps)) == 2 ? 0 : 1);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, status);
	EXPECT_EQ(2, ut_stat(sfd, UT_STAT(mmaps)));

	/* Unmapping does not take it back. */
	munmap(a, SZ);
	if (c != MAP_FAILED)
		munmap(c, 2 * UT_PAGE);
	EXPECT_EQ(2, ut_stat(sfd, UT_STAT(mmaps)));
}

TEST_F(region, stats_efault)
{
	void *ro;

	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_STATS, NULL));
	ro = mmap(NULL, UT_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	EXPECT_EQ(-EFAULT, ut_ioctl(self->r.server_fd, UMEM_STATS, ro));
	munmap(ro, UT_PAGE);
}

TEST_F(region, server_fd_is_not_ctl)
{
	struct umem_create c = good_create("nc");
	struct umem_api api = { .api = UMEM_API };

	/* Handshake and create are refused on server fd and node alike. */
	EXPECT_EQ(-ENOTTY, ut_ioctl(self->r.server_fd, UMEM_GET_API, &api));
	EXPECT_EQ(-ENOTTY, ut_ioctl(self->r.server_fd, UMEM_CREATE, &c));
	EXPECT_EQ(-ENOTTY, ut_ioctl(self->r.node_fd, UMEM_CREATE, &c));
	EXPECT_EQ(0, api.features);
}

TEST_HARNESS_MAIN
