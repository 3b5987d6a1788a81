// SPDX-License-Identifier: GPL-2.0
/*
 * Allocation failures on every path of umem, by fault injection: writing N
 * to /proc/thread-self/fail-nth makes the N-th allocation (slab or page)
 * of this thread fail (Documentation/fault-injection/fault-injection.rst).
 * For each operation (UMEM_CREATE, node open, mmap of node and server fd,
 * a fault on a missing and on a present page, UMEM_COPY, UMEM_COPY_VEC,
 * UMEM_ZERO, pwrite + UMEM_MARK_PRESENT, UMEM_DISCARD, read() of requests,
 * and the generic netlink REGION_GET dump/do and STATS_GET), N runs
 * 1, 2, 3, ... until the operation goes through without an injected
 * failure.  Each failing call must give a documented errno and leave the
 * region consistent (nothing half installed, no request lost, the same
 * call works without injection); a fault runs in a forked child, which
 * may be retried (VM_FAULT_OOM on a user fault: "Huh VM_FAULT_OOM leaked
 * out to the #PF handler. Retrying PF") or OOM-killed, never SIGBUS.
 * Then: no region of ours left in /sys/class/umem, Shmem in /proc/meminfo
 * back to where it was, no kmemleak report.
 *
 * Needs a kernel with CONFIG_FAULT_INJECTION, FAILSLAB, FAIL_PAGE_ALLOC and
 * FAULT_INJECTION_DEBUG_FS (skips otherwise): not in run_list, run by
 * make check-debug (scripts/guest-debug.sh) on the debug kernel.  Sets
 * failslab and fail_page_alloc in debugfs so that fail-nth reaches
 * GFP_KERNEL and order-0 highmem allocations too (ignore-gfp-wait=N,
 * ignore-gfp-highmem=N, min-order=0); probability stays 0, so nothing but
 * fail-nth ever fails.  UMEM_FAILNTH_VERBOSE=0|1|2 (default 1) sets their
 * "verbose" (2: a stack trace of each injected failure in dmesg).
 *
 * fail-nth reads back 0 once the failure was injected and the remaining
 * count (> 0) while it was not: an iteration that reads back > 0 ran
 * without an injected failure and ends the loop for that operation.
 * Between the write of N and the operation nothing else may allocate in
 * this thread: the fail-nth fd stays open, buffers are touched beforehand.
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
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "umem_test.h"

/* The operations are callbacks of one signature; most use a part of it. */
#pragma GCC diagnostic ignored "-Wunused-parameter"

#define NPAGES		512
#define SZ		((uint64_t)NPAGES * UT_PAGE)
#define SEED		0x3c
#define PG(n)		((uint64_t)(n) * UT_PAGE)
/* More allocation points than any one operation has. */
#define FN_MAX		400
/* Shmem may differ from the start by this much (KiB) at the end. */
#define SHMEM_SLACK_KB	1024
#define DBG		"/sys/kernel/debug"
#define KMEMLEAK	DBG "/kmemleak"
/* A TCG guest under KASAN is slow: generous per-test bounds (s). */
#define T_SHORT		600
#define T_LONG		1200

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* Shmem (KiB) before the first test, read by the harness's main process. */
static long shmem_base = -1;

__attribute__((constructor)) static void record_shmem(void)
{
	shmem_base = ut_meminfo_kb("Shmem");
}

/* ------------------------------------------------------ fault injection */

static int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	n = n < 0 ? -errno : 0;
	close(fd);
	return (int)n;
}

/* debugfs knobs: 0, or -errno with @why naming what is missing. */
static int inject_setup(char *why, size_t len)
{
	static const char *const knobs[][2] = {
		{ DBG "/failslab/ignore-gfp-wait", "N" },
		{ DBG "/fail_page_alloc/ignore-gfp-wait", "N" },
		{ DBG "/fail_page_alloc/ignore-gfp-highmem", "N" },
		{ DBG "/fail_page_alloc/min-order", "0" },
	};
	const char *verbose = getenv("UMEM_FAILNTH_VERBOSE");
	unsigned int i;
	int ret;

	if (access("/proc/thread-self/fail-nth", W_OK)) {
		snprintf(why, len, "/proc/thread-self/fail-nth: %s (needs CONFIG_FAULT_INJECTION)",
			 strerror(errno));
		return -ENOENT;
	}
	if (access(DBG "/failslab", F_OK))
		mount("debugfs", DBG, "debugfs", 0, NULL);
	for (i = 0; i < UT_ARRAY_SIZE(knobs); i++) {
		ret = write_str(knobs[i][0], knobs[i][1]);
		if (ret) {
			snprintf(why, len, "%s: %s (needs FAILSLAB, FAIL_PAGE_ALLOC, FAULT_INJECTION_DEBUG_FS, root)",
				 knobs[i][0], strerror(-ret));
			return ret;
		}
	}
	if (!verbose || !*verbose)
		verbose = "1";
	write_str(DBG "/failslab/verbose", verbose);
	write_str(DBG "/fail_page_alloc/verbose", verbose);
	return 0;
}

static int fn_open(void)
{
	int fd = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* Make the @n-th allocation of this thread fail (0 disarms). */
static int fn_arm(int fd, unsigned int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", n);

	return pwrite(fd, buf, len, 0) == len ? 0 : -errno;
}

/* Was the failure injected?  Disarms.  1 yes, 0 no, -errno. */
static int fn_done(int fd)
{
	char buf[16] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	int err = n < 0 ? -errno : 0;

	fn_arm(fd, 0);
	if (err)
		return err;
	return strtol(buf, NULL, 10) == 0;
}

/* ------------------------------------------------------ small helpers */

/* Errno sets: ENOMEM is listed for every operation (docs: UMEM_CREATE). */
static const int e_create[] = { ENOMEM, EMFILE, 0 };
static const int e_nomem[] = { ENOMEM, 0 };
static const int e_read[] = { ENOMEM, EFAULT, 0 };
static const int e_genl[] = { ENOMEM, ENOBUFS, 0 };

static bool allowed(const int *set, int err)
{
	for (; *set; set++)
		if (*set == err)
			return true;
	return false;
}

static const char *errname(int err)
{
	static char buf[32];

	switch (err) {
	case 0: return "success";
	case ENOMEM: return "ENOMEM";
	case ENOSPC: return "ENOSPC";
	case ENOBUFS: return "ENOBUFS";
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case EEXIST: return "EEXIST";
	case EMFILE: return "EMFILE";
	case ENFILE: return "ENFILE";
	case EAGAIN: return "EAGAIN";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENOENT: return "ENOENT";
	case EBUSY: return "EBUSY";
	}
	snprintf(buf, sizeof(buf), "errno %d", err);
	return buf;
}

/* "Is this page present?": a one-byte pwrite() of zero gives EEXIST. */
static bool is_present(int sfd, uint64_t off)
{
	const char zero = 0;

	return pwrite(sfd, &zero, 1, (off_t)(off + UT_PAGE - 1)) < 0 &&
	       errno == EEXIST;
}

static bool path_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

/* Entries of /sys/class/umem made by this test ("-fnth"); -1 on error. */
static int our_sysfs_regions(char *first, size_t len)
{
	DIR *d = opendir("/sys/class/umem");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "umem-ut", 7) || !strstr(e->d_name, "-fnth"))
			continue;
		if (!n++ && first)
			snprintf(first, len, "%s", e->d_name);
	}
	closedir(d);
	return n;
}

/* ------------------------------------------------------ generic netlink */
/* A few helpers after umem_genl_test.c's (copied, not shared). */

struct nl {
	int fd;
	uint16_t family;
	uint32_t seq;
};

struct req {
	struct nlmsghdr nlh;
	struct genlmsghdr g;
	char attrs[256];
};

static void req_init(struct req *r, uint16_t type, uint8_t cmd, uint16_t flags)
{
	memset(r, 0, sizeof(*r));
	r->nlh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r->nlh.nlmsg_type = type;
	r->nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	r->g.cmd = cmd;
	r->g.version = 1;
}

static void req_put_str(struct req *r, uint16_t type, const char *s)
{
	struct nlattr *a = (struct nlattr *)((char *)r + NLMSG_ALIGN(r->nlh.nlmsg_len));
	size_t len = strlen(s) + 1;

	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy((char *)a + NLA_HDRLEN, s, len);
	r->nlh.nlmsg_len = NLMSG_ALIGN(r->nlh.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

/* First attribute @type of a genl message, or NULL. */
static struct nlattr *genl_attr(struct nlmsghdr *nlh, int type)
{
	int len = nlh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	struct nlattr *a = (struct nlattr *)((char *)NLMSG_DATA(nlh) + GENL_HDRLEN);

	for (; len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len;
	     len -= NLA_ALIGN(a->nla_len),
	     a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))
		if ((a->nla_type & NLA_TYPE_MASK) == type)
			return a;
	return NULL;
}

struct talk {
	const char *name;	/* region to look for in the replies */
	int replies;		/* messages seen */
	int matches;		/* ...naming @name */
	uint64_t size;		/* UMEM_ATTR_SIZE of the match */
	bool stats;		/* ...which had UMEM_ATTR_STATS */
	uint16_t family;	/* CTRL_ATTR_FAMILY_ID (family lookup) */
};

static void talk_reply(struct talk *t, struct nlmsghdr *nlh)
{
	struct nlattr *a;

	t->replies++;
	a = genl_attr(nlh, CTRL_ATTR_FAMILY_ID);
	if (nlh->nlmsg_type == GENL_ID_CTRL && a)
		memcpy(&t->family, (char *)a + NLA_HDRLEN, 2);
	if (!t->name)
		return;
	a = genl_attr(nlh, UMEM_ATTR_REGION_NAME);
	if (!a || strcmp((char *)a + NLA_HDRLEN, t->name))
		return;
	t->matches++;
	a = genl_attr(nlh, UMEM_ATTR_SIZE);
	if (a)
		memcpy(&t->size, (char *)a + NLA_HDRLEN, 8);
	t->stats = genl_attr(nlh, UMEM_ATTR_STATS) != NULL;
}

/*
 * Send @r, read replies until the ack (or a dump's DONE); 0 or -errno
 * (of send/recv or of the ack).  -ETIMEDOUT when nothing ends it.
 */
static int nl_talk(struct nl *nl, struct req *r, struct talk *t)
{
	static char buf[16384];
	bool dump = r->nlh.nlmsg_flags & NLM_F_DUMP;

	r->nlh.nlmsg_seq = ++nl->seq;
	if (send(nl->fd, r, r->nlh.nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(nl->fd, buf, sizeof(buf), 0);
		struct nlmsghdr *nlh;

		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		for (nlh = (struct nlmsghdr *)buf; NLMSG_OK(nlh, n);
		     nlh = NLMSG_NEXT(nlh, n)) {
			if (nlh->nlmsg_seq != nl->seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(nlh))->error;
			if (nlh->nlmsg_type == NLMSG_DONE) {
				int derr = 0;

				if (!dump)
					continue;
				if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
					memcpy(&derr, NLMSG_DATA(nlh), sizeof(int));
				return derr;
			}
			talk_reply(t, nlh);
		}
	}
}

static void nl_close(struct nl *nl)
{
	if (nl->fd >= 0)
		close(nl->fd);
	nl->fd = -1;
}

/* A socket with the umem family resolved; 0 or -errno. */
static int nl_open(struct nl *nl)
{
	struct timeval tv = { .tv_sec = 20 };
	struct talk t = { 0 };
	struct req r;
	int err;

	memset(nl, 0, sizeof(*nl));
	nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (nl->fd < 0)
		return -errno;
	setsockopt(nl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	req_init(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	req_put_str(&r, CTRL_ATTR_FAMILY_NAME, UMEM_GENL_NAME);
	err = nl_talk(nl, &r, &t);
	if (!err && !t.family)
		err = -ENOENT;
	if (err) {
		nl_close(nl);
		return err;
	}
	nl->family = t.family;
	return 0;
}

/* ------------------------------------------------------ the fixture */

FIXTURE(fi) {
	int fn;			/* this thread's fail-nth */
	struct ut_region r;
	char *map;		/* the node, mapped */
	char *src;		/* NPAGES pages of pattern SEED */
	unsigned int next;	/* next page never used */
	struct ut_daemon d;
	struct nl nl;
	/* per-operation tallies */
	unsigned int failed, absorbed, notes;
};

FIXTURE_SETUP(fi)
{
	char why[256];

	self->fn = -1;
	self->nl.fd = -1;
	self->map = self->src = MAP_FAILED;
	ut_region_clear(&self->r);
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	if (inject_setup(why, sizeof(why)))
		SKIP(return, "no fault injection: %s", why);
	self->fn = fn_open();
	ASSERT_LE(0, self->fn);
	ASSERT_EQ(0, ut_region_init(&self->r, SZ, "fnth"));
	ASSERT_EQ(0, ut_region_open_node(&self->r));
	self->map = ut_map(self->r.node_fd, SZ, 0);
	ASSERT_NE(MAP_FAILED, self->map);
	self->src = mmap(NULL, SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, self->src);
	ut_fill(self->src, 0, SZ, SEED);
	ut_daemon_init(&self->d, self->r.server_fd, SZ, SEED);
}

FIXTURE_TEARDOWN(fi)
{
	ut_daemon_stop(&self->d);
	nl_close(&self->nl);
	if (self->map != MAP_FAILED)
		munmap(self->map, SZ);
	if (self->src != MAP_FAILED)
		munmap(self->src, SZ);
	ut_region_fini(&self->r);
	if (self->fn >= 0)
		close(self->fn);
}

/* A page no earlier iteration touched (missing). */
static uint64_t fresh_page(struct __test_metadata *_metadata,
			   FIXTURE_DATA(fi) *self)
{
	ASSERT_LT(self->next, NPAGES) TH_LOG("out of fresh pages");
	return PG(self->next++);
}

/*
 * One operation under fail-nth.  @prep (not armed) sets the stage for
 * iteration @n, @call runs armed and returns 0 or -errno, @after (not
 * armed) checks what @call left and cleans up; it returns NULL or what is
 * wrong.  Loops until an iteration injected nothing.
 */
struct fn_op {
	const char *name;
	const int *errnos;
	void (*prep)(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		     unsigned int n);
	int (*call)(FIXTURE_DATA(fi) *self, unsigned int n);
	const char *(*after)(struct __test_metadata *_metadata,
			     FIXTURE_DATA(fi) *self, unsigned int n, int ret,
			     bool injected);
};

static void summary(FIXTURE_DATA(fi) *self, const char *name, unsigned int n)
{
	printf("# %s: %u allocation point(s) failed in turn: %u call(s) failed cleanly, %u absorbed the failure%s\n",
	       name, n, self->failed, self->absorbed,
	       self->notes ? " (see the notes above)" : "");
	fflush(stdout);
}

static void fn_loop(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		    const struct fn_op *op)
{
	unsigned int n;
	const char *bad;
	int ret, inj;

	self->failed = self->absorbed = self->notes = 0;
	for (n = 1; n <= FN_MAX; n++) {
		if (op->prep)
			op->prep(_metadata, self, n);
		ASSERT_EQ(0, fn_arm(self->fn, n));
		ret = op->call(self, n);
		inj = fn_done(self->fn);
		ASSERT_LE(0, inj);
		if (!inj) {
			EXPECT_EQ(0, ret < 0 ? ret : 0)
				TH_LOG("%s: fails with %s without an injected failure",
				       op->name, errname(-ret));
		} else if (ret < 0) {
			self->failed++;
			EXPECT_TRUE(allowed(op->errnos, -ret))
				TH_LOG("%s: fail-nth=%u: %s is not a documented errno for it",
				       op->name, n, errname(-ret));
		} else {
			self->absorbed++;
		}
		bad = op->after ? op->after(_metadata, self, n, ret, inj) : NULL;
		EXPECT_EQ(NULL, bad)
			TH_LOG("%s: fail-nth=%u (%s, call gave %s): %s", op->name, n,
			       inj ? "injected" : "not injected", errname(ret < 0 ? -ret : 0),
			       bad);
		if (!inj)
			break;
	}
	EXPECT_GE(FN_MAX, n) TH_LOG("%s: still failing after %u injections", op->name, FN_MAX);
	summary(self, op->name, n - 1);
}

/* ------------------------------------------------------ UMEM_CREATE */

static struct umem_create cr_arg;
static char cr_name[UMEM_NAME_MAX];

static void create_prep(struct __test_metadata *_metadata,
			FIXTURE_DATA(fi) *self, unsigned int n)
{
	memset(&cr_arg, 0, sizeof(cr_arg));
	ut_make_name(cr_name, "fnth");
	cr_arg.size = 64 * UT_PAGE;
	cr_arg.page_size = UMEM_PAGE_SIZE_4K;
	memcpy(cr_arg.name, cr_name, sizeof(cr_arg.name));
}

static int create_call(FIXTURE_DATA(fi) *self, unsigned int n)
{
	int ret = ioctl(self->r.ctl_fd, UMEM_CREATE, &cr_arg);

	return ret < 0 ? -errno : ret;
}

static const char *create_after(struct __test_metadata *_metadata,
				FIXTURE_DATA(fi) *self, unsigned int n, int ret,
				bool injected)
{
	static char msg[256];
	char node[64], sys[96];
	struct umem_create c;
	int fd;

	ut_node_path(node, sizeof(node), cr_name);
	snprintf(sys, sizeof(sys), "/sys/class/umem/umem-%s", cr_name);
	if (ret >= 0) {
		if (cr_arg.server_fd != ret) {
			close(ret);
			return "server_fd differs from the ioctl's result";
		}
		/*
		 * devtmpfs_create_node() failing is ignored by device_add():
		 * a region without its node.  Not umem's doing; noted.
		 */
		if (ut_wait_path(node, true, 3000)) {
			printf("# note: UMEM_CREATE fail-nth=%u succeeded but %s never appeared\n",
			       n, node);
			self->notes++;
		}
		close(ret);
		if (ut_wait_path(sys, false, UT_WAIT_MS))
			return "sysfs entry still there after the server fd was closed";
		return NULL;
	}
	/* Failed: nothing may be left, and the name must be free again. */
	if (path_exists(sys))
		return "failed, but its sysfs entry exists";
	if (ut_wait_path(node, false, 2000))
		return "failed, but its node exists";
	fd = ut_create(self->r.ctl_fd, cr_name, 64 * UT_PAGE, &c);
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "the same name without injection: %s",
			 errname(-fd));
		return msg;
	}
	close(fd);
	if (ut_wait_path(sys, false, UT_WAIT_MS))
		return "retry's sysfs entry stays after close";
	return NULL;
}

TEST_F_TIMEOUT(fi, create, T_LONG)
{
	static const struct fn_op op = {
		"UMEM_CREATE", e_create, create_prep, create_call, create_after,
	};

	fn_loop(_metadata, self, &op);
}

/* ------------------------------------------------------ node open */

static char open_path[64];

static int open_call(FIXTURE_DATA(fi) *self, unsigned int n)
{
	int fd = open(open_path, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static const char *open_after(struct __test_metadata *_metadata,
			      FIXTURE_DATA(fi) *self, unsigned int n, int ret,
			      bool injected)
{
	if (ret >= 0)
		close(ret);
	return NULL;
}

TEST_F_TIMEOUT(fi, node_open, T_SHORT)
{
	static const struct fn_op op = {
		"open(/dev/umem-NAME)", e_nomem, NULL, open_call, open_after,
	};

	ut_node_path(open_path, sizeof(open_path), self->r.name);
	fn_loop(_metadata, self, &op);
}

/* ------------------------------------------------------ mmap */

static void *mm_addr;
static int mm_fd;

static int mmap_call(FIXTURE_DATA(fi) *self, unsigned int n)
{
	mm_addr = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, mm_fd, 0);
	return mm_addr == MAP_FAILED ? -errno : 0;
}

static const char *mmap_after(struct __test_metadata *_metadata,
			      FIXTURE_DATA(fi) *self, unsigned int n, int ret,
			      bool injected)
{
	if (!ret && munmap(mm_addr, SZ))
		return "munmap failed";
	return NULL;
}

TEST_F_TIMEOUT(fi, mmap_node, T_SHORT)
{
	static const struct fn_op op = {
		"mmap(node)", e_nomem, NULL, mmap_call, mmap_after,
	};

	mm_fd = self->r.node_fd;
	fn_loop(_metadata, self, &op);
}

TEST_F_TIMEOUT(fi, mmap_server, T_SHORT)
{
	static const struct fn_op op = {
		"mmap(server fd)", e_nomem, NULL, mmap_call, mmap_after,
	};

	mm_fd = self->r.server_fd;
	fn_loop(_metadata, self, &op);
}

/* ------------------------------------------------------ faults */

/*
 * What the forked child saw: it maps the node itself and opens its own
 * fail-nth (both before arming), arms it, touches the page once, then
 * checks the page's contents and reports through a pipe.
 */
struct fault_report {
	int injected;		/* 1, 0, or -errno of fail-nth */
	int pattern_ok;
	int setup_err;
};

static void fault_child(int node_fd, uint64_t off, bool wr, unsigned int n,
			int wfd)
{
	struct fault_report rep = { 0 };
	volatile uint64_t *w;
	uint64_t first = ut_pattern_word(off, SEED);
	char *p;
	int fn;

	fn = fn_open();
	p = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_SHARED, node_fd, 0);
	if (fn < 0 || p == MAP_FAILED) {
		rep.setup_err = errno;
		_exit(write(wfd, &rep, sizeof(rep)) < 0 ? 3 : 2);
	}
	w = (volatile uint64_t *)(p + off);
	if (fn_arm(fn, n)) {
		rep.setup_err = errno;
		_exit(write(wfd, &rep, sizeof(rep)) < 0 ? 3 : 2);
	}
	if (wr)
		*w = first;	/* a write fault; the page keeps its pattern */
	else
		(void)*w;
	rep.injected = fn_done(fn);
	rep.pattern_ok = ut_check(p + off, off, UT_PAGE, SEED) == -1;
	_exit(write(wfd, &rep, sizeof(rep)) == sizeof(rep) ? 0 : 3);
}

static void fault_loop(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		       const char *name, bool present, bool wr)
{
	struct fault_report rep;
	unsigned int n, killed = 0;
	int status, pfd[2], rc;
	uint64_t off;
	ssize_t got;
	pid_t pid;

	self->failed = self->absorbed = self->notes = 0;
	ASSERT_EQ(0, ut_daemon_start(&self->d));
	for (n = 1; n <= FN_MAX; n++) {
		off = fresh_page(_metadata, self);
		if (present)
			ASSERT_EQ(0, ut_install_page(self->r.server_fd, UT_INSTALL_COPY,
						     off, SEED));
		ASSERT_EQ(0, pipe2(pfd, O_CLOEXEC));
		fflush(NULL);
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			close(pfd[0]);
			fault_child(self->r.node_fd, off, wr, n, pfd[1]);
		}
		close(pfd[1]);
		rc = ut_waitpid_timeout(pid, &status, 120000);
		if (rc) {
			ut_kill_reap(pid);
			close(pfd[0]);
			ASSERT_EQ(0, rc) TH_LOG("%s: fail-nth=%u: the child hung (%s)",
						name, n, errname(-rc));
		}
		memset(&rep, 0, sizeof(rep));
		got = read(pfd[0], &rep, sizeof(rep));
		close(pfd[0]);
		if (WIFSIGNALED(status)) {
			int sig = WTERMSIG(status);

			if (sig == SIGKILL) {
				/* VM_FAULT_OOM -> the OOM killer picked it */
				printf("# note: %s fail-nth=%u: the faulting child was killed (SIGKILL, OOM path)\n",
				       name, n);
				killed++;
				self->notes++;
				continue;
			}
			/* SIGBUS is documented only once the daemon is gone */
			EXPECT_EQ(0, sig)
				TH_LOG("%s: fail-nth=%u: the faulting child died of signal %d (%s)",
				       name, n, sig, strsignal(sig));
			self->failed++;
			continue;
		}
		ASSERT_TRUE(WIFEXITED(status));
		ASSERT_EQ(0, WEXITSTATUS(status))
			TH_LOG("%s: fail-nth=%u: child exit %d, setup error %s", name, n,
			       WEXITSTATUS(status), errname(rep.setup_err));
		ASSERT_EQ((ssize_t)sizeof(rep), got);
		ASSERT_LE(0, rep.injected);
		EXPECT_TRUE(rep.pattern_ok)
			TH_LOG("%s: fail-nth=%u: the page read back wrong", name, n);
		if (!rep.injected)
			break;
		/* the fault was retried (or the failure was absorbed) */
		self->absorbed++;
	}
	EXPECT_GE(FN_MAX, n);
	EXPECT_EQ(0, ut_daemon_stop(&self->d));
	printf("# %s: %u allocation point(s) failed in turn: the fault completed %u time(s) anyway, %u child(ren) OOM-killed, %u died otherwise\n",
	       name, n - 1, self->absorbed, killed, self->failed);
	fflush(stdout);
}

TEST_F_TIMEOUT(fi, fault_missing_read, T_LONG)
{
	fault_loop(_metadata, self, "read fault on a missing page", false, false);
}

TEST_F_TIMEOUT(fi, fault_missing_write, T_LONG)
{
	fault_loop(_metadata, self, "write fault on a missing page", false, true);
}

TEST_F_TIMEOUT(fi, fault_present_read, T_LONG)
{
	fault_loop(_metadata, self, "read fault on a present page", true, false);
}

TEST_F_TIMEOUT(fi, fault_present_write, T_LONG)
{
	fault_loop(_metadata, self, "write fault on a present page", true, true);
}

/* ------------------------------------------------------ installs */

/* The pages an install iteration works on: two fresh ones. */
static uint64_t inst_off;
static struct umem_copy cp_arg;
static struct umem_zero zr_arg;
static struct umem_copy_entry cv_ent[2];
static struct umem_copy_vec cv_arg;
static struct umem_mark_present mp_arg;
static uint64_t mp_off;

static void two_fresh(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		      unsigned int n)
{
	inst_off = fresh_page(_metadata, self);
	fresh_page(_metadata, self);
}

/*
 * After a (possibly failed) install of the two pages at inst_off: every
 * page that is now present must hold what it should (@zero: zeros), the
 * pages still missing must install without injection, and then both must
 * read back right.  @done: bytes the call says it installed (-1: unknown).
 */
static const char *inst_check(FIXTURE_DATA(fi) *self, bool zero, int64_t done)
{
	static char msg[200];
	uint64_t off;
	int i, ret, npresent = 0;

	for (i = 0; i < 2; i++) {
		off = inst_off + PG(i);
		if (is_present(self->r.server_fd, off)) {
			npresent++;
			continue;
		}
		ret = zero ? ut_zero(self->r.server_fd, off, UT_PAGE, NULL) :
			     ut_copy(self->r.server_fd, off, self->src + off, UT_PAGE, NULL);
		if (ret) {
			snprintf(msg, sizeof(msg), "page %d still missing, install without injection: %s",
				 i, errname(-ret));
			return msg;
		}
	}
	if (done >= 0 && (uint64_t)done != npresent * UT_PAGE) {
		snprintf(msg, sizeof(msg), "reported %lld bytes installed, %d page(s) present",
			 (long long)done, npresent);
		return msg;
	}
	for (i = 0; i < 2; i++) {
		off = inst_off + PG(i);
		if (zero ? ut_check_zero(self->map + off, UT_PAGE) != -1 :
			   ut_check(self->map + off, off, UT_PAGE, SEED) != -1) {
			snprintf(msg, sizeof(msg), "page %d reads back wrong", i);
			return msg;
		}
	}
	return NULL;
}

static void copy_prep(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		      unsigned int n)
{
	two_fresh(_metadata, self, n);
	memset(&cp_arg, 0, sizeof(cp_arg));
	cp_arg.offset = inst_off;
	cp_arg.len = 2 * UT_PAGE;
	cp_arg.src = (uintptr_t)(self->src + inst_off);
}

static int copy_call(FIXTURE_DATA(fi) *self, unsigned int n)
{
	return ioctl(self->r.server_fd, UMEM_COPY, &cp_arg) < 0 ? -errno : 0;
}

static const char *copy_after(struct __test_metadata *_metadata,
			      FIXTURE_DATA(fi) *self, unsigned int n, int ret,
			      bool injected)
{
	static char msg[64];

	if (ret && cp_arg.copied == 0) {
		snprintf(msg, sizeof(msg), "failed with copied = 0 (want bytes or -errno)");
		return msg;
	}
	if (ret && cp_arg.copied < 0 && cp_arg.copied != ret) {
		snprintf(msg, sizeof(msg), "copied = %lld, the ioctl failed with %d",
			 (long long)cp_arg.copied, ret);
		return msg;
	}
	return inst_check(self, false, cp_arg.copied < 0 ? 0 : cp_arg.copied);
}

TEST_F_TIMEOUT(fi, copy, T_SHORT)
{
	static const struct fn_op op = {
		"UMEM_COPY", e_nomem, copy_prep, copy_call, copy_after,
	};

	fn_loop(_metadata, self, &op);
}

static void zero_prep(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		      unsigned int n)
{
	two_fresh(_metadata, self, n);
	memset(&zr_arg, 0, sizeof(zr_arg));
	zr_arg.offset = inst_off;
	zr_arg.len = 2 * UT_PAGE;
}

static int zero_call(FIXTURE_DATA(fi) *self, unsigned int n)
{
	return ioctl(self->r.server_fd, UMEM_ZERO, &zr_arg) < 0 ? -errno : 0;
}

static const char *zero_after(struct __test_metadata *_metadata,
			      FIXTURE_DATA(fi) *self, unsigned int n, int ret,
			      bool injected)
{
	if (ret && zr_arg.zeroed == 0)
		return "failed with zeroed = 0 (want bytes or -errno)";
	if (ret && zr_arg.zeroed < 0 && zr_arg.zeroed != ret)
		return "zeroed is not the ioctl's -errno";
	return inst_check(self, true, zr_arg.zeroed < 0 ? 0 : zr_arg.zeroed);
}

TEST_F_TIMEOUT(fi, zero, T_SHORT)
{
	static const struct fn_op op = {
		"UMEM_ZERO", e_nomem, zero_prep, zero_call, zero_after,
	};

	fn_loop(_metadata, self, &op);
}

static void vec_prep(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		     unsigned int n)
{
	int i;

	two_fresh(_metadata, self, n);
	for (i = 0; i < 2; i++) {
		cv_ent[i].offset = inst_off + PG(i);
		cv_ent[i].src = (uintptr_t)(self->src + inst_off + PG(i));
		cv_ent[i].result = 1;	/* untouched */
	}
	memset(&cv_arg, 0, sizeof(cv_arg));
	cv_arg.entries = (uintptr_t)cv_ent;
	cv_arg.count = 2;
}

static int vec_call(FIXTURE_DATA(fi) *self, unsigned int n)
{
	return ioctl(self->r.server_fd, UMEM_COPY_VEC, &cv_arg) < 0 ? -errno : 0;
}

static const char *vec_after(struct __test_metadata *_metadata,
			     FIXTURE_DATA(fi) *self, unsigned int n, int ret,
			     bool injected)
{
	static char msg[160];
	int64_t done = 0;
	uint64_t i;

	if (cv_arg.handled > 2)
		return "handled > count";
	if (!ret && cv_arg.handled != 2)
		return "succeeded with handled != count";
	for (i = 0; i < cv_arg.handled; i++) {
		if (cv_ent[i].result == 0) {
			done += UT_PAGE;
		} else if (cv_ent[i].result != -ENOMEM) {
			snprintf(msg, sizeof(msg), "entry %llu: result %lld (want 0 or -ENOMEM)",
				 (unsigned long long)i, (long long)cv_ent[i].result);
			return msg;
		}
	}
	return inst_check(self, false, done);
}

TEST_F_TIMEOUT(fi, copy_vec, T_SHORT)
{
	static const struct fn_op op = {
		"UMEM_COPY_VEC", e_nomem, vec_prep, vec_call, vec_after,
	};

	fn_loop(_metadata, self, &op);
}

static void mark_prep(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		      unsigned int n)
{
	two_fresh(_metadata, self, n);
	mp_off = inst_off;
	memset(&mp_arg, 0, sizeof(mp_arg));
	mp_arg.offsets = (uintptr_t)&mp_off;
	mp_arg.count = 1;
}

/* pwrite() of one page, then UMEM_MARK_PRESENT of it: both armed. */
static int mark_call(FIXTURE_DATA(fi) *self, unsigned int n)
{
	ssize_t w = pwrite(self->r.server_fd, self->src + inst_off, UT_PAGE,
			   (off_t)inst_off);

	if (w < 0)
		return -errno;
	if (w != (ssize_t)UT_PAGE)
		return -EIO;
	return ioctl(self->r.server_fd, UMEM_MARK_PRESENT, &mp_arg) < 0 ? -errno : 0;
}

static const char *mark_after(struct __test_metadata *_metadata,
			      FIXTURE_DATA(fi) *self, unsigned int n, int ret,
			      bool injected)
{
	bool present = is_present(self->r.server_fd, inst_off);
	ssize_t w;

	if (!ret && (!present || mp_arg.marked != 1))
		return "succeeded, but the page is not present";
	if (ret && present)
		return "failed, but the page is present";
	if (ret && mp_arg.marked)
		return "failed with marked != 0";
	if (!present) {
		/* start over, without injection: pwrite, mark */
		w = pwrite(self->r.server_fd, self->src + inst_off, UT_PAGE,
			   (off_t)inst_off);
		if (w != (ssize_t)UT_PAGE)
			return "pwrite without injection failed";
		if (ut_mark_present(self->r.server_fd, &mp_off, 1, NULL))
			return "UMEM_MARK_PRESENT without injection failed";
	}
	if (ut_check(self->map + inst_off, inst_off, UT_PAGE, SEED) != -1)
		return "the page reads back wrong";
	/* the second page must still be missing and installable */
	if (is_present(self->r.server_fd, inst_off + UT_PAGE))
		return "the neighbour page became present";
	if (ut_copy(self->r.server_fd, inst_off + UT_PAGE,
		    self->src + inst_off + UT_PAGE, UT_PAGE, NULL))
		return "installing the neighbour page failed";
	return NULL;
}

TEST_F_TIMEOUT(fi, pwrite_mark_present, T_SHORT)
{
	static const struct fn_op op = {
		"pwrite + UMEM_MARK_PRESENT", e_nomem, mark_prep, mark_call, mark_after,
	};

	fn_loop(_metadata, self, &op);
}

/* ------------------------------------------------------ UMEM_DISCARD */

static struct umem_discard dc_arg;

static void discard_prep(struct __test_metadata *_metadata,
			 FIXTURE_DATA(fi) *self, unsigned int n)
{
	two_fresh(_metadata, self, n);
	ASSERT_EQ(0, ut_copy(self->r.server_fd, inst_off, self->src + inst_off,
			     2 * UT_PAGE, NULL));
	/* mapped, so that the discard has a mapping to zap */
	ASSERT_EQ(-1, ut_check(self->map + inst_off, inst_off, 2 * UT_PAGE, SEED));
	memset(&dc_arg, 0, sizeof(dc_arg));
	dc_arg.offset = inst_off;
	dc_arg.len = 2 * UT_PAGE;
}

static int discard_call(FIXTURE_DATA(fi) *self, unsigned int n)
{
	return ioctl(self->r.server_fd, UMEM_DISCARD, &dc_arg) < 0 ? -errno : 0;
}

static const char *discard_after(struct __test_metadata *_metadata,
				 FIXTURE_DATA(fi) *self, unsigned int n, int ret,
				 bool injected)
{
	static char msg[128];
	int i, err;

	for (i = 0; i < 2; i++) {
		uint64_t off = inst_off + PG(i);

		if (!is_present(self->r.server_fd, off))
			continue;
		if (!ret)
			return "succeeded, but a page is still present";
		/* still present after a failed discard: data intact */
		if (ut_check(self->map + off, off, UT_PAGE, SEED) != -1)
			return "a page left present by the failed discard reads wrong";
	}
	/* the same discard without injection must work */
	err = ut_discard(self->r.server_fd, inst_off, 2 * UT_PAGE);
	if (err) {
		snprintf(msg, sizeof(msg), "discard again without injection: %s",
			 errname(-err));
		return msg;
	}
	for (i = 0; i < 2; i++)
		if (is_present(self->r.server_fd, inst_off + PG(i)))
			return "present after a second discard";
	/* and the pages install again */
	if (ut_copy(self->r.server_fd, inst_off, self->src + inst_off,
		    2 * UT_PAGE, NULL))
		return "reinstalling the discarded pages failed";
	if (ut_check(self->map + inst_off, inst_off, 2 * UT_PAGE, SEED) != -1)
		return "reinstalled pages read back wrong";
	return NULL;
}

TEST_F_TIMEOUT(fi, discard, T_SHORT)
{
	static const struct fn_op op = {
		"UMEM_DISCARD", e_nomem, discard_prep, discard_call, discard_after,
	};

	fn_loop(_metadata, self, &op);
}

/* ------------------------------------------------------ read() of requests */

static struct ut_toucher rd_touch;
static struct umem_request rd_buf[4];

static void read_prep(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		      unsigned int n)
{
	inst_off = fresh_page(_metadata, self);
	memset(rd_buf, 0xff, sizeof(rd_buf));
	/* another thread faults (its fail-nth is not armed) */
	ASSERT_EQ(0, ut_toucher_start(&rd_touch, self->map + inst_off, false, 0));
	ASSERT_EQ(0, ut_wait_stat(self->r.server_fd, UT_STAT(requests_pending), 1,
				  UT_WAIT_MS));
}

static int read_call(FIXTURE_DATA(fi) *self, unsigned int n)
{
	ssize_t r = read(self->r.server_fd, rd_buf, sizeof(rd_buf));

	if (r < 0)
		return -errno;
	return r == (ssize_t)UT_REQ_SIZE && rd_buf[0].offset == inst_off ? 0 : -EPROTO;
}

static const char *read_after(struct __test_metadata *_metadata,
			      FIXTURE_DATA(fi) *self, unsigned int n, int ret,
			      bool injected)
{
	static char msg[128];
	ssize_t r;

	if (ret == -EPROTO)
		return "read() returned a wrong record";
	if (ret) {
		/* the request stays queued: read it now, without injection */
		if (ut_stat(self->r.server_fd, UT_STAT(requests_pending)) != 1)
			return "failed read() lost the request";
		r = ut_read_requests(self->r.server_fd, rd_buf, 4);
		if (r != 1 || rd_buf[0].offset != inst_off) {
			snprintf(msg, sizeof(msg), "read again: %zd record(s)", r);
			return msg;
		}
	}
	if (ut_install_page(self->r.server_fd, UT_INSTALL_COPY, inst_off, SEED))
		return "install of the requested page failed";
	if (ut_toucher_join(&rd_touch, UT_WAIT_MS))
		return "the faulting thread did not wake";
	if (ut_check(rd_touch.page, inst_off, UT_PAGE, SEED) != -1)
		return "the faulting thread read a wrong page";
	return NULL;
}

TEST_F_TIMEOUT(fi, read_requests, T_SHORT)
{
	static const struct fn_op op = {
		"read(server fd)", e_read, read_prep, read_call, read_after,
	};

	/* a lost request must not make read() block forever */
	ASSERT_EQ(0, ut_set_nonblock(self->r.server_fd, true));
	fn_loop(_metadata, self, &op);
}

/* ------------------------------------------------------ generic netlink */

static struct req gn_req;
static struct talk gn_talk;

static void genl_prep(FIXTURE_DATA(fi) *self, uint8_t cmd, uint16_t flags,
		      bool by_name)
{
	req_init(&gn_req, self->nl.family, cmd, flags);
	if (by_name)
		req_put_str(&gn_req, UMEM_ATTR_REGION_NAME, self->r.name);
	memset(&gn_talk, 0, sizeof(gn_talk));
	gn_talk.name = self->r.name;
}

static void dump_prep(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		      unsigned int n)
{
	genl_prep(self, UMEM_CMD_REGION_GET, NLM_F_DUMP, false);
}

static void get_prep(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		     unsigned int n)
{
	genl_prep(self, UMEM_CMD_REGION_GET, 0, true);
}

static void stats_prep(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		       unsigned int n)
{
	genl_prep(self, UMEM_CMD_STATS_GET, 0, true);
}

static int genl_call(FIXTURE_DATA(fi) *self, unsigned int n)
{
	return nl_talk(&self->nl, &gn_req, &gn_talk);
}

static const char *genl_after(struct __test_metadata *_metadata,
			      FIXTURE_DATA(fi) *self, unsigned int n, int ret,
			      bool injected)
{
	static char msg[128];
	int err;

	if (!ret) {
		if (gn_talk.matches != 1) {
			snprintf(msg, sizeof(msg), "our region in %d of %d replies",
				 gn_talk.matches, gn_talk.replies);
			return msg;
		}
		if (gn_talk.size != SZ)
			return "wrong UMEM_ATTR_SIZE";
		if (gn_req.g.cmd == UMEM_CMD_STATS_GET && !gn_talk.stats)
			return "STATS_GET reply without UMEM_ATTR_STATS";
		return NULL;
	}
	if (ret == -ETIMEDOUT)
		return "no ack / end of dump within 20 s";
	/* a failed exchange may leave parts behind: a fresh socket */
	nl_close(&self->nl);
	err = nl_open(&self->nl);
	if (err) {
		snprintf(msg, sizeof(msg), "reopening the genl socket: %s", errname(-err));
		return msg;
	}
	return NULL;
}

static void genl_loop(struct __test_metadata *_metadata, FIXTURE_DATA(fi) *self,
		      const struct fn_op *op)
{
	int err = nl_open(&self->nl);

	if (err == -ENOENT)
		SKIP(return, "generic netlink family \"umem\" not registered");
	ASSERT_EQ(0, err);
	fn_loop(_metadata, self, op);
}

TEST_F_TIMEOUT(fi, genl_region_dump, T_SHORT)
{
	static const struct fn_op op = {
		"UMEM_CMD_REGION_GET dump", e_genl, dump_prep, genl_call, genl_after,
	};

	genl_loop(_metadata, self, &op);
}

TEST_F_TIMEOUT(fi, genl_region_do, T_SHORT)
{
	static const struct fn_op op = {
		"UMEM_CMD_REGION_GET do", e_genl, get_prep, genl_call, genl_after,
	};

	genl_loop(_metadata, self, &op);
}

TEST_F_TIMEOUT(fi, genl_stats, T_SHORT)
{
	static const struct fn_op op = {
		"UMEM_CMD_STATS_GET", e_genl, stats_prep, genl_call, genl_after,
	};

	genl_loop(_metadata, self, &op);
}

/* ------------------------------------------------------ after everything */

/* No state: only for TEST_F_TIMEOUT (the harness has no TEST_TIMEOUT). */
FIXTURE(after) {
	int unused;
};

FIXTURE_SETUP(after)
{
	self->unused = 0;
}

FIXTURE_TEARDOWN(after)
{
}

/* Last but one: every region of ours gone, Shmem back. */
TEST_F_TIMEOUT(after, no_leaks, T_SHORT)
{
	char first[300] = "";
	long kb = -1;
	int n = -1, i;

	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	/* Final fputs and RCU frees may lag behind the tests a little. */
	for (i = 0; i < 100; i++) {
		n = our_sysfs_regions(first, sizeof(first));
		kb = ut_meminfo_kb("Shmem");
		if (n == 0 && shmem_base >= 0 && kb <= shmem_base + SHMEM_SLACK_KB)
			break;
		ut_sleep_ms(100);
	}
	EXPECT_EQ(0, n) TH_LOG("%d region(s) of this test left in /sys/class/umem, e.g. %s",
			       n, first);
	ASSERT_LE(0, shmem_base);
	EXPECT_GE(shmem_base + SHMEM_SLACK_KB, kb)
		TH_LOG("Shmem %ld kB at the end, %ld kB at the start", kb, shmem_base);
	printf("# Shmem: %ld kB at the start, %ld kB at the end\n", shmem_base, kb);
	fflush(stdout);
}

/*
 * Last: kmemleak finds nothing (objects must be 5 s old to count, and
 * kmemleak wants two scans to be sure).  Reports everything it lists,
 * also objects not from umem: make check-debug clears the list before
 * this program runs.
 */
TEST_F_TIMEOUT(after, kmemleak, T_SHORT)
{
	char line[512];
	int leaks = 0, shown = 0;
	FILE *f;

	if (access(KMEMLEAK, R_OK))
		SKIP(return, "no %s (CONFIG_DEBUG_KMEMLEAK, debugfs)", KMEMLEAK);
	sleep(6);
	ASSERT_EQ(0, write_str(KMEMLEAK, "scan"));
	sleep(2);
	ASSERT_EQ(0, write_str(KMEMLEAK, "scan"));
	f = fopen(KMEMLEAK, "re");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "unreferenced object"))
			leaks++;
		if (leaks && shown++ < 60)
			printf("# kmemleak: %s", line);
	}
	fclose(f);
	fflush(stdout);
	EXPECT_EQ(0, leaks) TH_LOG("kmemleak lists %d unreferenced object(s)", leaks);
}

TEST_HARNESS_MAIN
