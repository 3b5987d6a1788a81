// SPDX-License-Identifier: GPL-2.0
/*
 * Region lifetime: a region lives while its server fd, a node fd or a
 * mapping (in any process) does; then its node and sysfs directory go,
 * its name is free again and its memory is back (Shmem in /proc/meminfo).
 * The module cannot be unloaded while any region or mapping exists.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "umem_test.h"

#define SZ	(16 * UT_PAGE)
#define SEED	0x77
#define MiB	(1024L * 1024L)

/* Nothing to share: each test builds the regions it needs. */
FIXTURE(life) {
	int unused;
};

FIXTURE_SETUP(life)
{
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
}

FIXTURE_TEARDOWN(life)
{
}

static void sysfs_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "/sys/class/umem/umem-%s", name);
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Number of umem-* entries in /sys/class/umem, or -errno. */
static int count_regions(void)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir("/sys/class/umem");
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "umem-", 5))
			n++;
	closedir(d);
	return n;
}

/* Wait until Shmem is at most @limit_kb; the last value read. */
static long wait_shmem_below(long limit_kb, int timeout_ms)
{
	uint64_t end = ut_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	long kb;

	for (;;) {
		kb = ut_meminfo_kb("Shmem");
		if (kb < 0 || kb <= limit_kb || ut_now_ns() > end)
			return kb;
		ut_sleep_ms(20);
	}
}

/* Fill a whole region with UMEM_COPY, 1 MiB at a time; 0 or -errno. */
static int fill_region(int sfd, uint64_t size)
{
	char *buf = malloc(MiB);
	uint64_t off;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0xa5, MiB);
	for (off = 0; off < size && !ret; off += MiB)
		ret = ut_copy(sfd, off, buf, MiB, NULL);
	free(buf);
	return ret;
}

static int try_unload(void)
{
	return syscall(SYS_delete_module, "umem", O_NONBLOCK) ? -errno : 0;
}

TEST_F(life, freed_when_last_reference_goes)
{
	char node[64], sysfs[96];
	struct ut_region r;
	uint64_t *map;
	int fd;

	ASSERT_EQ(0, ut_region_init(&r, SZ, "life"));
	ASSERT_EQ(0, ut_region_open_node(&r));
	map = ut_map(r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, ut_install_page(r.server_fd, UT_INSTALL_COPY, 0, SEED));
	ut_node_path(node, sizeof(node), r.name);
	sysfs_path(sysfs, sizeof(sysfs), r.name);
	EXPECT_TRUE(exists(sysfs));

	/* Server fd gone: the node fd and the mapping keep the region. */
	close(r.server_fd);
	r.server_fd = -1;
	EXPECT_TRUE(exists(node));
	EXPECT_TRUE(exists(sysfs));
	EXPECT_EQ(-EEXIST, ut_create(r.ctl_fd, r.name, SZ, NULL));

	/* Node fd gone: the mapping alone keeps it. */
	close(r.node_fd);
	r.node_fd = -1;
	EXPECT_TRUE(exists(node));
	EXPECT_EQ(-EEXIST, ut_create(r.ctl_fd, r.name, SZ, NULL));
	EXPECT_EQ(-1, ut_check(map, 0, UT_PAGE, SEED));

	/* Mapping gone: node, sysfs directory and name go with it. */
	munmap(map, SZ);
	EXPECT_EQ(0, ut_wait_path(node, false, UT_WAIT_MS)) TH_LOG("%s", node);
	EXPECT_EQ(0, ut_wait_path(sysfs, false, UT_WAIT_MS)) TH_LOG("%s", sysfs);
	fd = ut_create(r.ctl_fd, r.name, 2 * SZ, NULL);
	EXPECT_GE(fd, 0) TH_LOG("name not reusable: %s", strerror(-fd));
	if (fd >= 0) {
		/* A new region: nothing of the old one shows. */
		EXPECT_EQ(2 * SZ, ut_stat(fd, UT_STAT(size)));
		EXPECT_EQ(0, ut_stat(fd, UT_STAT(pages_present)));
		close(fd);
	}
	ut_region_fini(&r);
}

TEST_F(life, freed_on_server_close)
{
	char node[64];
	struct ut_region r;
	int fd;

	ASSERT_EQ(0, ut_region_init(&r, SZ, "srv"));
	ut_node_path(node, sizeof(node), r.name);
	ASSERT_EQ(0, ut_wait_path(node, true, UT_WAIT_MS));
	close(r.server_fd);
	r.server_fd = -1;
	/* close() returns after the release: the name is free at once. */
	fd = ut_create(r.ctl_fd, r.name, SZ, NULL);
	EXPECT_GE(fd, 0) TH_LOG("%s", strerror(-fd));
	if (fd >= 0)
		close(fd);
	EXPECT_EQ(0, ut_wait_path(node, false, UT_WAIT_MS));
	ut_region_fini(&r);
}

/* A mapping in another process keeps the region (and its data). */
TEST_F(life, mapping_in_child_keeps_region)
{
	char node[64], c = 0;
	int ready[2], go[2], status;
	struct ut_region r;
	uint64_t *map;
	pid_t pid;

	ASSERT_EQ(0, ut_region_init(&r, SZ, "kid"));
	ASSERT_EQ(0, ut_region_open_node(&r));
	map = ut_map(r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, ut_install_page(r.server_fd, UT_INSTALL_COPY, UT_PAGE, SEED));
	ut_node_path(node, sizeof(node), r.name);
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* Only the inherited mapping is left here. */
		ut_region_fini(&r);
		close(ready[0]);
		close(go[1]);
		if (write(ready[1], &c, 1) != 1)
			_exit(10);
		if (read(go[0], &c, 1) != 1)
			_exit(11);
		_exit(ut_check(map + UT_PAGE / 8, UT_PAGE, UT_PAGE, SEED) == -1 ?
		      0 : 12);
	}
	close(ready[1]);
	close(go[0]);
	ASSERT_EQ(1, read(ready[0], &c, 1));

	ut_region_fini(&r);
	munmap(map, SZ);
	ut_sleep_ms(50);
	EXPECT_TRUE(exists(node)) TH_LOG("region freed under a child's mapping");

	ASSERT_EQ(1, write(go[1], &c, 1));
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS))
		ut_kill_reap(pid);
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(0, ut_wait_path(node, false, UT_WAIT_MS));
	close(ready[0]);
	close(go[1]);
}

TEST_F_TIMEOUT(life, shmem_returns_after_close, 120)
{
	const uint64_t size = 64 * MiB;
	struct ut_region r;
	long base, full, after;
	char *map;
	uint64_t off;

	base = ut_meminfo_kb("Shmem");
	ASSERT_GE(base, 0);

	ASSERT_EQ(0, ut_region_init(&r, size, "shm"));
	ASSERT_EQ(0, fill_region(r.server_fd, size));
	ASSERT_EQ(0, ut_region_open_node(&r));
	map = ut_map(r.node_fd, size, 0);
	ASSERT_NE(MAP_FAILED, map);
	for (off = 0; off < size; off += 64 * UT_PAGE) {
		EXPECT_EQ((char)0xa5, map[off]);
	}
	full = ut_meminfo_kb("Shmem");
	TH_LOG("Shmem: %ld kB before, %ld kB filled", base, full);
	/* Otherwise the check below proves nothing. */
	EXPECT_GE(full - base, (long)(size / 1024) - 4096);

	munmap(map, size);
	ut_region_fini(&r);
	after = wait_shmem_below(base + 8192, UT_WAIT_MS);
	TH_LOG("Shmem: %ld kB after close", after);
	EXPECT_LE(after, base + 8192);
}

TEST_F_TIMEOUT(life, discard_frees_memory, 120)
{
	const uint64_t size = 32 * MiB;
	struct ut_region r;
	long base, full, after;

	base = ut_meminfo_kb("Shmem");
	ASSERT_GE(base, 0);
	ASSERT_EQ(0, ut_region_init(&r, size, "dsc"));
	ASSERT_EQ(0, fill_region(r.server_fd, size));
	full = ut_meminfo_kb("Shmem");
	EXPECT_GE(full - base, (long)(size / 1024) - 4096);

	/* The region lives on, its memory does not. */
	ASSERT_EQ(0, ut_discard(r.server_fd, 0, size));
	after = wait_shmem_below(base + 4096, UT_WAIT_MS);
	TH_LOG("Shmem: %ld kB before, %ld filled, %ld after discard",
	       base, full, after);
	EXPECT_LE(after, base + 4096);
	EXPECT_EQ(0, ut_stat(r.server_fd, UT_STAT(pages_present)));
	EXPECT_EQ(size / UT_PAGE, ut_stat(r.server_fd, UT_STAT(discarded)));
	ut_region_fini(&r);
}

TEST_F_TIMEOUT(life, no_leak_over_many_regions, 120)
{
	struct ut_region r;
	char name[UMEM_NAME_MAX], node[64];
	int before, i, ctl, fd;
	void *map;

	before = count_regions();
	ASSERT_GE(before, 0);

	for (i = 0; i < 100; i++) {
		ASSERT_EQ(0, ut_region_init(&r, SZ, "many"));
		ASSERT_EQ(0, ut_region_open_node(&r));
		map = ut_map(r.node_fd, SZ, 0);
		ASSERT_NE(MAP_FAILED, map);
		ASSERT_EQ(0, ut_install_page(r.server_fd, UT_INSTALL_COPY,
					     UT_PAGE * (i % 16), SEED));
		ut_region_fini(&r);
		munmap(map, SZ);
	}
	EXPECT_EQ(before, count_regions());

	/* One name, over and over. */
	ctl = ut_open_ctl();
	ASSERT_GE(ctl, 0);
	ut_make_name(name, "same");
	ut_node_path(node, sizeof(node), name);
	for (i = 0; i < 50; i++) {
		fd = ut_create(ctl, name, SZ, NULL);
		ASSERT_GE(fd, 0) TH_LOG("round %d: %s", i, strerror(-fd));
		close(fd);
	}
	close(ctl);
	EXPECT_EQ(0, ut_wait_path(node, false, UT_WAIT_MS));
	EXPECT_EQ(before, count_regions());
}

/*
 * delete_module(O_NONBLOCK) must fail while anything of a region is left,
 * even with /dev/umem itself closed.  Never called with nothing left: that
 * would unload the module under the rest of the run.
 */
TEST_F(life, unload_refused_while_region_exists)
{
	struct ut_region r;
	int ret;

	ASSERT_EQ(0, ut_region_init(&r, SZ, "mod"));
	close(r.ctl_fd);
	r.ctl_fd = -1;

	ret = try_unload();
	if (ret == -EPERM) {
		ut_region_fini(&r);
		SKIP(return, "delete_module needs CAP_SYS_MODULE");
	}
	if (ret == -ENOENT) {
		ut_region_fini(&r);
		SKIP(return, "no loadable module named umem (built in?)");
	}
	EXPECT_TRUE(ret == -EWOULDBLOCK || ret == -EBUSY)
		TH_LOG("delete_module: %s", ret ? strerror(-ret) : "unloaded!");
	EXPECT_TRUE(ut_module_loaded());
	EXPECT_EQ(SZ, ut_stat(r.server_fd, UT_STAT(size)));
	ut_region_fini(&r);
}

TEST_F(life, unload_refused_while_mapping_exists)
{
	struct ut_region r;
	char node[64];
	uint64_t *map;
	int ret;

	ASSERT_EQ(0, ut_region_init(&r, SZ, "modm"));
	ASSERT_EQ(0, ut_region_open_node(&r));
	map = ut_map(r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, ut_install_page(r.server_fd, UT_INSTALL_COPY, 0, SEED));
	ut_node_path(node, sizeof(node), r.name);

	/* Only a node fd and a mapping. */
	close(r.ctl_fd);
	close(r.server_fd);
	r.ctl_fd = r.server_fd = -1;
	ret = try_unload();
	if (ret == -EPERM || ret == -ENOENT) {
		munmap(map, SZ);
		ut_region_fini(&r);
		SKIP(return, "delete_module: %s", strerror(-ret));
	}
	EXPECT_TRUE(ret == -EWOULDBLOCK || ret == -EBUSY)
		TH_LOG("node fd + mapping: %s", ret ? strerror(-ret) : "unloaded!");

	/* Only the mapping. */
	close(r.node_fd);
	r.node_fd = -1;
	ret = try_unload();
	EXPECT_TRUE(ret == -EWOULDBLOCK || ret == -EBUSY)
		TH_LOG("mapping only: %s", ret ? strerror(-ret) : "unloaded!");
	EXPECT_TRUE(ut_module_loaded());
	EXPECT_TRUE(exists(node));
	/* The present page is still there to read. */
	EXPECT_EQ(-1, ut_check(map, 0, UT_PAGE, SEED));

	munmap(map, SZ);
	EXPECT_EQ(0, ut_wait_path(node, false, UT_WAIT_MS));
}


#define CG_ROOT	"/sys/fs/cgroup"

/* Write @val to the cgroup file @dir/@file; 0 or -errno. */
static int cg_write(const char *dir, const char *file, const char *val)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

/* memory.current of @dir in bytes, or -errno. */
static long cg_memory_current(const char *dir)
{
	char path[256];
	long v = -EIO;
	FILE *f;

	snprintf(path, sizeof(path), "%s/memory.current", dir);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	if (fscanf(f, "%ld", &v) != 1)
		v = -EIO;
	fclose(f);
	return v;
}

/* The oom_kill count in @dir/memory.events, or -errno. */
static long cg_oom_kills(const char *dir)
{
	char path[256], key[32];
	long v, kills = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "%s/memory.events", dir);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fscanf(f, "%31s %ld", key, &v) == 2)
		if (!strcmp(key, "oom_kill"))
			kills = v;
	fclose(f);
	return kills;
}

/*
 * Pages are charged to the memory cgroup of the task that created the
 * region, also when the daemon installing them runs elsewhere: create the
 * region from inside a fresh cgroup, move back out, fill 16 MiB, and the
 * fresh cgroup's memory.current must account for it.
 */
TEST_F_TIMEOUT(life, memcg_charged_to_creator, 60)
{
	char cg[128], pid[32];
	struct ut_region r;
	long before, after;

	if (!exists(CG_ROOT "/cgroup.controllers"))
		SKIP(return, "no cgroup v2 at " CG_ROOT);
	/* The root may refuse (or already have) +memory; the child tells. */
	cg_write(CG_ROOT, "cgroup.subtree_control", "+memory");
	snprintf(cg, sizeof(cg), CG_ROOT "/umem-selftest-%d", (int)getpid());
	ASSERT_EQ(0, mkdir(cg, 0755) ? -errno : 0);
	if (!exists(cg) || cg_memory_current(cg) < 0) {
		rmdir(cg);
		SKIP(return, "memory controller not available in %s", cg);
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	ASSERT_EQ(0, cg_write(cg, "cgroup.procs", pid));
	ASSERT_EQ(0, ut_region_init(&r, 16 * MiB, "cg"));
	/* Everything from here on runs outside the creator's cgroup. */
	ASSERT_EQ(0, cg_write(CG_ROOT, "cgroup.procs", pid));
	before = cg_memory_current(cg);
	ASSERT_GE(before, 0);
	EXPECT_EQ(0, fill_region(r.server_fd, 16 * MiB));
	after = cg_memory_current(cg);
	TH_LOG("creator cgroup memory.current %ld -> %ld", before, after);
	EXPECT_GE(after - before, 15 * MiB);
	ut_region_fini(&r);
	/* Freed pages are uncharged; then the cgroup can go. */
	EXPECT_LT(cg_memory_current(cg), before + MiB);
	EXPECT_EQ(0, rmdir(cg) ? -errno : 0);
}

/* Enter a fresh memory cgroup under CG_ROOT (*@cg); 0, or a skip reason. */
static const char *cg_enter_fresh(char *cg, size_t len)
{
	char pid[32];

	if (!exists(CG_ROOT "/cgroup.controllers"))
		return "no cgroup v2 at " CG_ROOT;
	cg_write(CG_ROOT, "cgroup.subtree_control", "+memory");
	snprintf(cg, len, CG_ROOT "/umem-meta-%d", (int)getpid());
	if (mkdir(cg, 0755))
		return "cannot make a cgroup";
	if (cg_memory_current(cg) < 0) {
		rmdir(cg);
		return "memory controller not available";
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (cg_write(cg, "cgroup.procs", pid)) {
		rmdir(cg);
		return "cannot enter the cgroup";
	}
	return NULL;
}

static void cg_leave(const char *cg)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	cg_write(CG_ROOT, "cgroup.procs", pid);
	rmdir(cg);
}

/*
 * A region's own bookkeeping is charged to its creator's memory cgroup
 * too: its bitmaps at creation (a 64 GiB region needs 4 MiB of them, so
 * a cgroup limited to 2 MiB cannot create one), and the requests queued
 * by faults of tasks in other cgroups.
 */
TEST_F_TIMEOUT(life, metadata_charged_to_creator, 120)
{
	const uint64_t rsz = 128 * MiB;
	const char *why;
	struct ut_region r;
	char cg[128], path[64], buf[8];
	long before, after;
	uint64_t off;
	int fd, status;
	pid_t pid;
	char *m;

	why = cg_enter_fresh(cg, sizeof(cg));
	if (why)
		SKIP(return, "%s", why);
	/*
	 * In a child, so that a regression (the cgroup's OOM killer picking
	 * the creator) shows up as a status rather than killing the test.
	 * The bitmaps must fail with ENOMEM, and nobody may be OOM-killed
	 * for them (guest-check's dmesg scan catches an OOM report).
	 */
	snprintf(path, sizeof(path), "%d", (int)getpid());
	ASSERT_EQ(0, cg_write(CG_ROOT, "cgroup.procs", path));
	ASSERT_EQ(0, cg_write(cg, "memory.max", "2M"));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		snprintf(path, sizeof(path), "%d", (int)getpid());
		if (cg_write(cg, "cgroup.procs", path))
			_exit(99);
		_exit(-ut_region_init(&r, 64ULL << 30, "meta"));
	}
	ASSERT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS * 3));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == ENOMEM)
		TH_LOG("a 64 GiB region in a 2 MiB cgroup: status %#x", status);
	EXPECT_EQ(0, cg_oom_kills(cg));
	ASSERT_EQ(0, cg_write(cg, "memory.max", "max"));
	snprintf(path, sizeof(path), "%d", (int)getpid());
	ASSERT_EQ(0, cg_write(cg, "cgroup.procs", path));
	ASSERT_EQ(0, ut_region_init(&r, rsz, "meta"));
	ASSERT_EQ(0, ut_region_open_node(&r));
	/* Out of the creator's cgroup: these faults queue its requests. */
	snprintf(path, sizeof(path), "%d", (int)getpid());
	ASSERT_EQ(0, cg_write(CG_ROOT, "cgroup.procs", path));
	m = ut_map(r.node_fd, rsz, 0);
	ASSERT_NE(MAP_FAILED, m);
	before = cg_memory_current(cg);
	/* /proc/self/mem of a missing page: EIO at once, request queued. */
	fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	for (off = 0; off < rsz; off += UT_PAGE)
		ASSERT_EQ(-1, pread(fd, buf, 1, (uintptr_t)m + off));
	close(fd);
	after = cg_memory_current(cg);
	EXPECT_EQ(rsz / UT_PAGE, ut_stat(r.server_fd, UT_STAT(requests_pending)));
	TH_LOG("creator cgroup: %ld -> %ld with %llu requests queued", before,
	       after, (unsigned long long)(rsz / UT_PAGE));
	/* 32768 requests of at least 40 bytes each */
	EXPECT_GE(after - before, (long)(rsz / UT_PAGE) * 32);
	munmap(m, rsz);
	ut_region_fini(&r);
	cg_leave(cg);
}

TEST_HARNESS_MAIN
