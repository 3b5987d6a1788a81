// SPDX-License-Identifier: GPL-2.0
/*
 * Ownership of regions and delegation to unprivileged users.
 *
 * A region belongs to its creator's filesystem uid and gid and carries the
 * permission bits UMEM_CREATE's node_mode gave it (0: 0600), all fixed at
 * creation.  The node /dev/umem-NAME is created with them; the genl family
 * decides visibility (dump, REGION_GET, STATS_GET) from them, without any
 * path lookup, so neither a chmod of the node nor a bind mount over it in
 * a private mount namespace changes what genl answers.  UMEM_CMD_FAIL is
 * for CAP_SYS_ADMIN or the owner (sender and socket opener).  Creating
 * needs /dev/umem open for writing, so its group and mode are the policy,
 * as for /dev/kvm; the total size of one uid's regions is limited by the
 * max_user_size module parameter.
 *
 * Tests run as root and fork children that drop to the ids below (no
 * capabilities).  Everything changed (/dev/umem's group and mode,
 * max_user_size) is put back by a teardown that runs in the parent of the
 * test process (FIXTURE_TEARDOWN_PARENT), and once more at exit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "umem_test.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define LIMIT_PARAM	"/sys/module/umem/parameters/max_user_size"
#define REFCNT		"/sys/module/umem/refcnt"

/* The cast of the delegation story. */
#define GID_VMM		4242	/* "kvm"-like group that may create */
#define UID_OWNER	4243	/* the VMM: member of GID_VMM */
#define UID_OTHER	4244	/* a stranger, no groups */
#define UID_PEER	4245	/* another member of GID_VMM */

#define SZ		(64 * UT_PAGE)
#define SEED		0x0e
#define MIB		(1ULL << 20)
#define TIB		(1ULL << 40)
/* The server fd's number in the owner child, for pidfd_getfd(). */
#define OWNER_SFD	200
#define KID_WAIT_MS	(6 * UT_WAIT_MS)

/* ------------------------------------------------- genl (raw netlink) */

#define BUFSZ	8192

struct nl {
	int fd;
	uint16_t family;
	uint32_t seq;
	int err;
	char extack[256];
};

struct req {
	struct nlmsghdr nlh;
	struct genlmsghdr g;
	char attrs[512];
};

static void req_init(struct req *r, uint16_t type, uint8_t cmd, uint16_t flags)
{
	memset(r, 0, sizeof(*r));
	r->nlh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r->nlh.nlmsg_type = type;
	r->nlh.nlmsg_flags = NLM_F_REQUEST | flags;
	r->g.cmd = cmd;
	r->g.version = 1;
}

static void req_put(struct req *r, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)((char *)r + NLMSG_ALIGN(r->nlh.nlmsg_len));

	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy((char *)a + NLA_HDRLEN, data, len);
	r->nlh.nlmsg_len = NLMSG_ALIGN(r->nlh.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static void req_put_str(struct req *r, uint16_t type, const char *s)
{
	req_put(r, type, s, strlen(s) + 1);
}

static void parse_attrs(struct nlattr **tb, int max, void *data, int len)
{
	struct nlattr *a;

	memset(tb, 0, sizeof(*tb) * (max + 1));
	for (a = data; len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN &&
	     a->nla_len <= len;
	     len -= NLA_ALIGN(a->nla_len),
	     a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len))) {
		int t = a->nla_type & NLA_TYPE_MASK;

		if (t <= max)
			tb[t] = a;
	}
}

static void parse_genl(struct nlattr **tb, int max, struct nlmsghdr *nlh)
{
	parse_attrs(tb, max, (char *)NLMSG_DATA(nlh) + GENL_HDRLEN,
		    nlh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN));
}

static void *nla_data_(struct nlattr *a)
{
	return (char *)a + NLA_HDRLEN;
}

static uint32_t a_u32(struct nlattr *a)
{
	uint32_t v = 0;

	if (a)
		memcpy(&v, nla_data_(a), sizeof(v));
	return v;
}

static uint64_t a_u64(struct nlattr *a)
{
	uint64_t v = 0;

	if (a)
		memcpy(&v, nla_data_(a), sizeof(v));
	return v;
}

static void note_error(struct nl *nl, struct nlmsghdr *nlh)
{
	struct nlmsgerr *e = NLMSG_DATA(nlh);
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
	size_t off;

	nl->err = e->error;
	nl->extack[0] = '\0';
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	off = NLMSG_HDRLEN + sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	off = NLMSG_ALIGN(off);
	if (off >= nlh->nlmsg_len)
		return;
	parse_attrs(tb, NLMSGERR_ATTR_MAX, (char *)nlh + off, nlh->nlmsg_len - off);
	if (tb[NLMSGERR_ATTR_MSG])
		snprintf(nl->extack, sizeof(nl->extack), "%s",
			 (char *)nla_data_(tb[NLMSGERR_ATTR_MSG]));
}

typedef void (*reply_cb)(struct nlmsghdr *nlh, void *arg);

/* Send @r, collect replies until the ack or the end of the dump. */
static int nl_talk(struct nl *nl, struct req *r, reply_cb cb, void *arg)
{
	static char buf[BUFSZ];
	bool dump = r->nlh.nlmsg_flags & NLM_F_DUMP;

	r->nlh.nlmsg_seq = ++nl->seq;
	r->nlh.nlmsg_flags |= NLM_F_ACK;
	nl->err = 0;
	nl->extack[0] = '\0';
	if (send(nl->fd, r, r->nlh.nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(nl->fd, buf, sizeof(buf), 0);
		struct nlmsghdr *nlh;

		if (n < 0)
			return -errno;
		for (nlh = (struct nlmsghdr *)buf; NLMSG_OK(nlh, n);
		     nlh = NLMSG_NEXT(nlh, n)) {
			if (nlh->nlmsg_seq != nl->seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				note_error(nl, nlh);
				return nl->err;
			}
			if (nlh->nlmsg_type == NLMSG_DONE) {
				int derr = 0;

				if (!dump)
					continue;
				if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
					memcpy(&derr, NLMSG_DATA(nlh), sizeof(int));
				nl->err = derr;
				return derr;
			}
			if (cb)
				cb(nlh, arg);
		}
	}
}

static void family_cb(struct nlmsghdr *nlh, void *arg)
{
	struct nlattr *tb[CTRL_ATTR_MAX + 1];

	parse_genl(tb, CTRL_ATTR_MAX, nlh);
	if (tb[CTRL_ATTR_FAMILY_ID])
		memcpy(arg, nla_data_(tb[CTRL_ATTR_FAMILY_ID]), 2);
}

/* Open a socket (its opener is the caller, now) and resolve the family. */
static int nl_open(struct nl *nl)
{
	uint16_t id = 0;
	struct req r;
	int one = 1, err;

	memset(nl, 0, sizeof(*nl));
	nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (nl->fd < 0)
		return -errno;
	setsockopt(nl->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	req_init(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	req_put_str(&r, CTRL_ATTR_FAMILY_NAME, UMEM_GENL_NAME);
	err = nl_talk(nl, &r, family_cb, &id);
	if (err) {
		close(nl->fd);
		nl->fd = -1;
		return err;
	}
	if (!id) {
		close(nl->fd);
		nl->fd = -1;
		return -ENOENT;
	}
	nl->family = id;
	return 0;
}

static void nl_close(struct nl *nl)
{
	if (nl->fd >= 0)
		close(nl->fd);
	nl->fd = -1;
}

struct region_info {
	bool found;
	uint32_t id;
	char name[UMEM_NAME_MAX];
	uint64_t pages;
	uint64_t stat_pages;
	bool attached;
};

static void region_from(struct region_info *ri, struct nlmsghdr *nlh)
{
	struct nlattr *tb[UMEM_ATTR_MAX + 1];

	parse_genl(tb, UMEM_ATTR_MAX, nlh);
	memset(ri, 0, sizeof(*ri));
	ri->found = true;
	ri->id = a_u32(tb[UMEM_ATTR_REGION_ID]);
	if (tb[UMEM_ATTR_REGION_NAME])
		snprintf(ri->name, sizeof(ri->name), "%s",
			 (char *)nla_data_(tb[UMEM_ATTR_REGION_NAME]));
	ri->pages = a_u64(tb[UMEM_ATTR_PAGES]);
	ri->attached = tb[UMEM_ATTR_SERVER_ATTACHED] &&
		       *(uint8_t *)nla_data_(tb[UMEM_ATTR_SERVER_ATTACHED]);
	if (tb[UMEM_ATTR_STATS]) {
		struct nlattr *st[UMEM_STATS_ATTR_MAX + 1];

		parse_attrs(st, UMEM_STATS_ATTR_MAX, nla_data_(tb[UMEM_ATTR_STATS]),
			    tb[UMEM_ATTR_STATS]->nla_len - NLA_HDRLEN);
		ri->stat_pages = a_u64(st[UMEM_STATS_ATTR_PAGES]);
	}
}

static void one_cb(struct nlmsghdr *nlh, void *arg)
{
	region_from(arg, nlh);
}

/* UMEM_CMD_REGION_GET or _STATS_GET of @name; 0 or -errno. */
static int get_region(struct nl *nl, uint8_t cmd, const char *name,
		      struct region_info *ri)
{
	struct req r;

	memset(ri, 0, sizeof(*ri));
	req_init(&r, nl->family, cmd, 0);
	req_put_str(&r, UMEM_ATTR_REGION_NAME, name);
	return nl_talk(nl, &r, one_cb, ri);
}

static int fail_region(struct nl *nl, const char *name)
{
	struct req r;

	req_init(&r, nl->family, UMEM_CMD_FAIL, 0);
	req_put_str(&r, UMEM_ATTR_REGION_NAME, name);
	return nl_talk(nl, &r, NULL, NULL);
}

struct dump_ctx {
	const char *name;
	int n;		/* replies for @name */
	int total;	/* all replies */
};

static void dump_cb(struct nlmsghdr *nlh, void *arg)
{
	struct dump_ctx *d = arg;
	struct region_info ri;

	region_from(&ri, nlh);
	d->total++;
	if (!strcmp(ri.name, d->name))
		d->n++;
}

/* How often a dump lists @name (0 or 1), or -errno. */
static int dump_count(struct nl *nl, const char *name)
{
	struct dump_ctx d = { .name = name };
	struct req r;
	int err;

	req_init(&r, nl->family, UMEM_CMD_REGION_GET, NLM_F_DUMP);
	err = nl_talk(nl, &r, dump_cb, &d);
	return err ? err : d.n;
}

/* ----------------------------------------------------------- helpers */

/* A file's first line into @buf; 0 or -errno. */
static int read_line(const char *path, char *buf, size_t len)
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
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int write_str(const char *path, const char *s)
{
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	if (n < 0)
		return -errno;
	return n == (ssize_t)strlen(s) ? 0 : -EIO;
}

static long long read_ll(const char *path)
{
	char buf[64];
	int err = read_line(path, buf, sizeof(buf));

	return err ? err : strtoll(buf, NULL, 10);
}

/* A /proc/vmstat counter, or -errno. */
static long long vmstat(const char *key)
{
	char line[128];
	size_t klen = strlen(key);
	long long v = -ENOENT;
	FILE *f = fopen("/proc/vmstat", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			v = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* CapEff of this process, or ~0 when unreadable. */
static uint64_t cap_eff(void)
{
	char line[128];
	uint64_t v = ~0ULL;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return v;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "CapEff:", 7)) {
			v = strtoull(line + 7, NULL, 16);
			break;
		}
	fclose(f);
	return v;
}

struct who {
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t groups[2];
};

/*
 * Become @w for good (real, effective, saved and fs ids; supplementary
 * groups), with no capability left; dumpable again so that ptrace checks
 * are decided by the ids.  0 or -errno.
 */
static int become(const struct who *w)
{
	if (setgroups(w->ngroups, w->groups) ||
	    setresgid(w->gid, w->gid, w->gid) ||
	    setresuid(w->uid, w->uid, w->uid))
		return -errno;
	if (cap_eff())
		return -EPERM;
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	return 0;
}

static const struct who owner_ids = { UID_OWNER, GID_VMM, 1, { GID_VMM } };
static const struct who other_ids = { UID_OTHER, UID_OTHER, 0, { 0 } };
static const struct who peer_ids = { UID_PEER, UID_PEER, 1, { GID_VMM } };

/* open() for the error only: 0 when it opened, else -errno. */
static int open_err(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* UMEM_CREATE from a full struct (node_mode, pad); server fd or -errno. */
static int create_raw(int ctl, const char *name, uint64_t size,
		      uint32_t node_mode, uint32_t pad)
{
	struct umem_create c;

	memset(&c, 0, sizeof(c));
	c.size = size;
	c.page_size = UMEM_PAGE_SIZE_4K;
	c.node_mode = node_mode;
	c.pad = pad;
	memcpy(c.name, name, strnlen(name, UMEM_NAME_MAX - 1));
	return ut_ioctl(ctl, UMEM_CREATE, &c);
}

static void node_of(char path[64], const char *name)
{
	ut_node_path(path, 64, name);
}

/* stat() the node of @name once it exists; 0 or -errno. */
static int stat_node(const char *name, struct stat *st)
{
	char path[64];

	node_of(path, name);
	ut_wait_path(path, true, UT_WAIT_MS);
	return stat(path, st) ? -errno : 0;
}

/*
 * Create a region as root but with filesystem ids @fsuid/@fsgid, so that
 * it belongs to them; the server fd or -errno.
 */
static int create_as(int ctl, const char *name, uint64_t size, uint32_t mode,
		     uid_t fsuid, gid_t fsgid)
{
	int ret;

	setfsgid(fsgid);
	setfsuid(fsuid);
	ret = create_raw(ctl, name, size, mode, 0);
	setfsuid(0);
	setfsgid(0);
	return ret;
}

/*
 * In children: a failed check prints where and returns 1, which becomes
 * the child's exit code.
 */
#define CK(cond)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "# child uid %d line %d: %s failed "\
				"(errno %d %s)\n", (int)getuid(), __LINE__, \
				#cond, errno, strerror(errno));		\
			return 1;					\
		}							\
	} while (0)

/*
 * Wait for child @pid at most @ms: its exit code, 128 + signal, or
 * -ETIMEDOUT after killing it.
 */
static int reap(pid_t pid, int ms)
{
	int status, err;

	err = ut_waitpid_timeout(pid, &status, ms);
	if (err) {
		ut_kill_reap(pid);
		return err;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* Fork a child running @fn(@arg) as its whole life. */
static pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

/* ------------------------------------------------ safety net at exit */

static struct {
	pid_t pid;
	bool have_ctl;
	struct stat ctl;
	char limit[32];
} g_orig;

static void restore_at_exit(void)
{
	struct stat st;
	char now[32];

	if (getpid() != g_orig.pid)
		return;
	if (g_orig.have_ctl && !stat(UMEM_CTL_DEVICE, &st) &&
	    st.st_rdev == g_orig.ctl.st_rdev &&
	    (st.st_uid != g_orig.ctl.st_uid || st.st_gid != g_orig.ctl.st_gid ||
	     (st.st_mode & 07777) != (g_orig.ctl.st_mode & 07777))) {
		(void)!chown(UMEM_CTL_DEVICE, g_orig.ctl.st_uid, g_orig.ctl.st_gid);
		(void)!chmod(UMEM_CTL_DEVICE, g_orig.ctl.st_mode & 07777);
	}
	if (g_orig.limit[0] && !read_line(LIMIT_PARAM, now, sizeof(now)) &&
	    strcmp(now, g_orig.limit))
		write_str(LIMIT_PARAM, g_orig.limit);
}

/* The run killed (timeout(1), ^C): restore, then die of the signal. */
static void restore_on_signal(int sig)
{
	restore_at_exit();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void __attribute__((constructor)) save_at_start(void)
{
	g_orig.pid = getpid();
	g_orig.have_ctl = !stat(UMEM_CTL_DEVICE, &g_orig.ctl);
	if (read_line(LIMIT_PARAM, g_orig.limit, sizeof(g_orig.limit)))
		g_orig.limit[0] = '\0';
	atexit(restore_at_exit);
	signal(SIGTERM, restore_on_signal);
	signal(SIGINT, restore_on_signal);
	signal(SIGHUP, restore_on_signal);
}

/* ----------------------------------------------------------- fixture */

#define MAX_KIDS 8

FIXTURE(owner) {
	/* shared with the parent's teardown (FIXTURE_TEARDOWN_PARENT) */
	struct stat ctl_st;
	bool ctl_changed;
	char old_limit[32];
	bool limit_changed;
	pid_t kids[MAX_KIDS];
};

FIXTURE_SETUP(owner)
{
	memset(self->kids, 0, sizeof(self->kids));
	self->ctl_changed = false;
	self->limit_changed = false;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	if (geteuid())
		SKIP(return, "needs root");
	ASSERT_EQ(0, stat(UMEM_CTL_DEVICE, &self->ctl_st));
	/* Only the limit tests need it (they fail without it). */
	if (read_line(LIMIT_PARAM, self->old_limit, sizeof(self->old_limit)))
		self->old_limit[0] = '\0';
}

/* In the parent of the test process: runs even if that one crashed. */
FIXTURE_TEARDOWN_PARENT(owner)
{
	char now[32];
	int i;

	for (i = 0; i < MAX_KIDS; i++)
		if (self->kids[i] > 0)
			kill(self->kids[i], SIGKILL);
	if (self->ctl_changed) {
		EXPECT_EQ(0, chown(UMEM_CTL_DEVICE, self->ctl_st.st_uid,
				   self->ctl_st.st_gid));
		EXPECT_EQ(0, chmod(UMEM_CTL_DEVICE, self->ctl_st.st_mode & 07777));
	}
	if (self->limit_changed) {
		EXPECT_EQ(0, write_str(LIMIT_PARAM, self->old_limit));
		EXPECT_EQ(0, read_line(LIMIT_PARAM, now, sizeof(now)));
		EXPECT_STREQ(self->old_limit, now);
	}
}

/* Remember @pid for the teardown; returns it. */
static pid_t track(FIXTURE_DATA(owner) *self, pid_t pid)
{
	int i;

	for (i = 0; i < MAX_KIDS && pid > 0; i++)
		if (!self->kids[i]) {
			self->kids[i] = pid;
			break;
		}
	return pid;
}

static void untrack(FIXTURE_DATA(owner) *self, pid_t pid)
{
	int i;

	for (i = 0; i < MAX_KIDS; i++)
		if (self->kids[i] == pid)
			self->kids[i] = 0;
}

/* reap() a tracked child and forget it. */
static int reap_tracked(FIXTURE_DATA(owner) *self, pid_t pid, int ms)
{
	int ret = reap(pid, ms);

	untrack(self, pid);
	return ret;
}

/* /dev/umem to root:GID_VMM 0660, put back by the teardown. */
static int delegate_ctl(FIXTURE_DATA(owner) *self)
{
	self->ctl_changed = true;
	if (chown(UMEM_CTL_DEVICE, 0, GID_VMM) || chmod(UMEM_CTL_DEVICE, 0660))
		return -errno;
	return 0;
}

static int set_limit(FIXTURE_DATA(owner) *self, unsigned long long bytes)
{
	char buf[32];

	if (!self->old_limit[0])
		return -ENOENT;	/* nothing to restore: no such parameter */
	snprintf(buf, sizeof(buf), "%llu", bytes);
	self->limit_changed = true;
	return write_str(LIMIT_PARAM, buf);
}

/* ============================================================= tests */

/*
 * The default max_user_size is 64 x the RAM (MemTotal), computed at load
 * (read before any test changes it; the module is loaded fresh).  Equal
 * up to 1% (MemTotal can move a little after boot).
 */
TEST_F(owner, limit_default)
{
	long long limit = read_ll(LIMIT_PARAM);
	long long want = ut_meminfo_kb("MemTotal") * 1024LL * 64;

	ASSERT_LT(0, want);
	ASSERT_LT(0, limit) TH_LOG("%s: %lld", LIMIT_PARAM, limit);
	EXPECT_EQ(0, limit % (64 * UT_PAGE));
	EXPECT_GE(want / 100, llabs(limit - want))
		TH_LOG("max_user_size %lld, 64 x MemTotal %lld", limit, want);
}

/*
 * UMEM_CREATE needs /dev/umem open for writing: O_RDONLY does the
 * handshake but CREATE is EBADF and leaves nothing behind; O_WRONLY
 * creates.
 */
TEST_F(owner, create_needs_write)
{
	struct umem_api api = { .api = UMEM_API };
	char name[UMEM_NAME_MAX], path[64];
	int ro, wo, sfd;

	ut_make_name(name, "ro");
	node_of(path, name);
	ro = open(UMEM_CTL_DEVICE, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, ro);
	ASSERT_EQ(0, ut_get_api(ro, &api));
	EXPECT_TRUE(api.features & UMEM_F_NODE_MODE);
	EXPECT_EQ(-EBADF, create_raw(ro, name, SZ, 0, 0));
	ut_sleep_ms(200);
	EXPECT_NE(0, access(path, F_OK));
	close(ro);

	wo = open(UMEM_CTL_DEVICE, O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, wo);
	api = (struct umem_api){ .api = UMEM_API };
	EXPECT_EQ(0, ut_get_api(wo, &api));
	sfd = create_raw(wo, name, SZ, 0, 0);	/* the name was not taken */
	ASSERT_LE(0, sfd);
	EXPECT_EQ(0, ut_wait_path(path, true, UT_WAIT_MS));
	close(sfd);
	close(wo);
}

/*
 * node_mode gives the node's permission bits exactly (0 means 0600), and
 * the node belongs to the creator's filesystem uid and gid (here a root
 * process with setfsuid/setfsgid).
 */
TEST_F(owner, node_mode_and_owner)
{
	static const struct { uint32_t in, mode; } m[] = {
		{ 0, 0600 }, { 0600, 0600 }, { 0640, 0640 }, { 0660, 0660 },
		{ 0644, 0644 }, { 0400, 0400 }, { 0777, 0777 }, { 0007, 0007 },
	};
	char name[UMEM_NAME_MAX];
	struct stat st;
	unsigned int i;
	int ctl, sfd;

	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	for (i = 0; i < UT_ARRAY_SIZE(m); i++) {
		ut_make_name(name, "mode");
		sfd = create_raw(ctl, name, SZ, m[i].in, 0);
		ASSERT_LE(0, sfd) TH_LOG("node_mode %#o", m[i].in);
		ASSERT_EQ(0, stat_node(name, &st));
		/* Let anything that would rewrite the node (udev) run first. */
		ut_sleep_ms(100);
		ASSERT_EQ(0, stat_node(name, &st));
		EXPECT_TRUE(S_ISCHR(st.st_mode));
		EXPECT_EQ(m[i].mode, st.st_mode & 07777)
			TH_LOG("node_mode %#o gave %#o", m[i].in, st.st_mode & 07777);
		EXPECT_EQ(0, st.st_uid);
		EXPECT_EQ(0, st.st_gid);
		close(sfd);
	}

	ut_make_name(name, "fsid");
	sfd = create_as(ctl, name, SZ, 0640, UID_OWNER, GID_VMM);
	ASSERT_LE(0, sfd);
	ASSERT_EQ(0, stat_node(name, &st));
	ut_sleep_ms(100);
	ASSERT_EQ(0, stat_node(name, &st));
	EXPECT_EQ(UID_OWNER, st.st_uid);
	EXPECT_EQ(GID_VMM, st.st_gid);
	EXPECT_EQ(0640, st.st_mode & 07777);
	close(sfd);
	close(ctl);
}

/*
 * node_mode with any bit beyond 0777 (sticky, setgid, setuid, a file type,
 * bit 16) and a non-zero pad are EINVAL, and create nothing: no node, the
 * name stays free.
 */
TEST_F(owner, node_mode_invalid)
{
	static const uint32_t bad[] = {
		01000, 02000, 04000, 0170644, 0x10000, 01777, 0100600,
		0x80000000u,
	};
	char name[UMEM_NAME_MAX], path[64];
	unsigned int i;
	int ctl, sfd;

	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	ut_make_name(name, "bad");
	node_of(path, name);
	for (i = 0; i < UT_ARRAY_SIZE(bad); i++)
		EXPECT_EQ(-EINVAL, create_raw(ctl, name, SZ, bad[i], 0))
			TH_LOG("node_mode %#o", bad[i]);
	EXPECT_EQ(-EINVAL, create_raw(ctl, name, SZ, 0, 1));
	EXPECT_EQ(-EINVAL, create_raw(ctl, name, SZ, 0600, 0x80000000u));
	EXPECT_NE(0, access(path, F_OK));
	sfd = create_raw(ctl, name, SZ, 0600, 0);
	EXPECT_LE(0, sfd);
	if (sfd >= 0)
		close(sfd);
	close(ctl);
}

/*
 * Names are ASCII [A-Za-z0-9_.-] only: Latin-1 letters (which the kernel's
 * isalnum() accepts) and other high bytes are EINVAL; the node does not
 * appear.
 */
TEST_F(owner, name_ascii_only)
{
	static const char * const bad[] = {
		"caf\xe9", "\xc0\xff", "\xe9", "ab\x80", "x\xa0y", "\xff",
		"na\xefve", "\xdf", "a\xb5",
	};
	char path[64];
	unsigned int i;
	int ctl, sfd;

	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	for (i = 0; i < UT_ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-EINVAL, create_raw(ctl, bad[i], SZ, 0, 0))
			TH_LOG("name #%u accepted", i);
		node_of(path, bad[i]);
		EXPECT_NE(0, access(path, F_OK));
	}
	/* Every allowed character, for contrast. */
	sfd = create_raw(ctl, "Az09_.-ok", SZ, 0, 0);
	EXPECT_LE(0, sfd);
	if (sfd >= 0)
		close(sfd);
	close(ctl);
}

/* ---- delegation ---- */

struct deleg {
	char n1[UMEM_NAME_MAX];	/* node_mode 0660 */
	char n2[UMEM_NAME_MAX];	/* node_mode 0: 0600 */
	pid_t owner;
	int up[2];		/* owner -> test: ready */
	int down[2];		/* test -> owner: go on */
};

static struct deleg g_d;

/* Read one byte from @fd within @ms; 0, -ETIMEDOUT or -EPIPE. */
static int wait_byte(int fd, int ms)
{
	char c;

	if (ut_poll_in(fd, ms) != 1)
		return -ETIMEDOUT;
	return read(fd, &c, 1) == 1 ? 0 : -EPIPE;
}

/*
 * The VMM: uid UID_OWNER in group GID_VMM, no capabilities.  Creates,
 * serves, maps, lists and finally fails its own regions.
 */
static int owner_main(void *arg)
{
	struct deleg *d = arg;
	struct region_info ri;
	struct umem_api api = { .api = UMEM_API };
	struct ut_toucher t;
	struct ut_daemon dm;
	char path[64];
	struct stat st;
	struct nl nl;
	int ctl, s1, s2, nfd, status;
	char *map;
	pid_t pid;

	close(d->up[0]);
	close(d->down[1]);
	CK(become(&owner_ids) == 0);
	ctl = open(UMEM_CTL_DEVICE, O_RDWR | O_CLOEXEC);
	CK(ctl >= 0);
	CK(ut_get_api(ctl, &api) == 0);
	s1 = create_raw(ctl, d->n1, SZ, 0660, 0);
	CK(s1 >= 0);
	s2 = create_raw(ctl, d->n2, SZ, 0, 0);
	CK(s2 >= 0);
	CK(dup2(s1, OWNER_SFD) == OWNER_SFD);

	CK(stat_node(d->n1, &st) == 0);
	ut_sleep_ms(100);
	CK(stat_node(d->n1, &st) == 0);
	CK(S_ISCHR(st.st_mode));
	CK(st.st_uid == UID_OWNER);
	CK(st.st_gid == GID_VMM);
	CK((st.st_mode & 07777) == 0660);
	CK(stat_node(d->n2, &st) == 0);
	CK(st.st_uid == UID_OWNER && st.st_gid == GID_VMM);
	CK((st.st_mode & 07777) == 0600);

	node_of(path, d->n1);
	nfd = open(path, O_RDWR | O_CLOEXEC);
	CK(nfd >= 0);
	map = ut_map(nfd, SZ, 0);
	CK(map != MAP_FAILED);

	ut_daemon_init(&dm, s1, SZ, SEED);
	CK(ut_daemon_start(&dm) == 0);
	/* A thread of this process, then a forked process of the same uid. */
	CK(ut_toucher_start(&t, map + UT_PAGE, false, 0) == 0);
	CK(ut_toucher_join(&t, UT_WAIT_MS) == 0);
	CK(ut_check(t.page, UT_PAGE, UT_PAGE, SEED) == -1);
	fflush(stderr);
	pid = fork();
	if (pid == 0)
		_exit(*(volatile uint64_t *)(map + 2 * UT_PAGE) ==
		      ut_pattern_word(2 * UT_PAGE, SEED) ? 0 : 2);
	CK(pid > 0);
	CK(reap(pid, UT_WAIT_MS) == 0);

	CK(nl_open(&nl) == 0);
	CK(dump_count(&nl, d->n1) == 1);
	CK(dump_count(&nl, d->n2) == 1);
	CK(get_region(&nl, UMEM_CMD_REGION_GET, d->n1, &ri) == 0 && ri.attached);
	CK(get_region(&nl, UMEM_CMD_STATS_GET, d->n2, &ri) == 0 &&
	   ri.stat_pages == SZ / UT_PAGE);

	CK(write(d->up[1], "r", 1) == 1);
	CK(wait_byte(d->down[0], KID_WAIT_MS) == 0);

	/* The peer's page 3 was served by this daemon, once. */
	CK(ut_daemon_stop(&dm) == 0);
	CK(dm.requests == 3);
	CK(ut_daemon_seen(&dm, 3 * UT_PAGE) == 1);

	/* Its own region: FAIL is allowed, and detaches it. */
	CK(fail_region(&nl, d->n1) == 0);
	CK(get_region(&nl, UMEM_CMD_REGION_GET, d->n1, &ri) == 0 && !ri.attached);
	fflush(stderr);
	pid = fork();
	if (pid == 0)
		_exit(*(volatile uint64_t *)(map + 4 * UT_PAGE) ? 3 : 4);
	CK(pid > 0);
	CK(ut_waitpid_timeout(pid, &status, UT_WAIT_MS) == 0);
	CK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
	CK(fail_region(&nl, d->n1) == -EALREADY);
	CK(fail_region(&nl, d->n2) == 0);
	nl_close(&nl);
	munmap(map, SZ);
	return 0;
}

/* The stranger: uid UID_OTHER, no groups.  Refused everywhere. */
static int other_main(void *arg)
{
	struct deleg *d = arg;
	struct region_info ri;
	char p1[64], p2[64], fdpath[64];
	struct nl nl;
	int pidfd, fd;

	CK(become(&other_ids) == 0);
	node_of(p1, d->n1);
	node_of(p2, d->n2);
	CK(open_err(UMEM_CTL_DEVICE, O_RDWR) == -EACCES);
	CK(open_err(UMEM_CTL_DEVICE, O_RDONLY) == -EACCES);
	CK(open_err(p1, O_RDWR) == -EACCES);
	CK(open_err(p1, O_RDONLY) == -EACCES);
	CK(open_err(p2, O_RDWR) == -EACCES);

	CK(nl_open(&nl) == 0);
	CK(dump_count(&nl, d->n1) == 0);	/* 0660, not in the group */
	CK(dump_count(&nl, d->n2) == 0);	/* 0600 */
	CK(get_region(&nl, UMEM_CMD_REGION_GET, d->n1, &ri) == -EACCES);
	CK(get_region(&nl, UMEM_CMD_STATS_GET, d->n1, &ri) == -EACCES);
	CK(get_region(&nl, UMEM_CMD_REGION_GET, d->n2, &ri) == -EACCES);
	CK(fail_region(&nl, d->n1) == -EPERM);
	CK(strstr(nl.extack, "CAP_SYS_ADMIN") || strstr(nl.extack, "owner"));
	CK(fail_region(&nl, d->n2) == -EPERM);
	nl_close(&nl);

	/* Nor can it take the owner's server fd. */
	pidfd = syscall(SYS_pidfd_open, d->owner, 0);
	CK(pidfd >= 0);
	fd = syscall(SYS_pidfd_getfd, pidfd, OWNER_SFD, 0);
	CK(fd < 0 && errno == EPERM);
	close(pidfd);
	snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd/%d", d->owner, OWNER_SFD);
	fd = open(fdpath, O_RDWR | O_CLOEXEC);
	CK(fd < 0);
	return 0;
}

/* Another member of the group: maps the 0660 node, sees its region. */
static int peer_main(void *arg)
{
	struct deleg *d = arg;
	struct region_info ri;
	char p1[64], p2[64];
	struct nl nl;
	char *map;
	int nfd;

	CK(become(&peer_ids) == 0);
	node_of(p1, d->n1);
	node_of(p2, d->n2);
	CK(open_err(UMEM_CTL_DEVICE, O_RDWR) == 0);	/* the group may create */
	nfd = open(p1, O_RDWR | O_CLOEXEC);
	CK(nfd >= 0);
	map = ut_map(nfd, SZ, 0);
	CK(map != MAP_FAILED);
	/* Page 3 is missing: the owner's daemon serves it. */
	CK(*(volatile uint64_t *)(map + 3 * UT_PAGE) ==
	   ut_pattern_word(3 * UT_PAGE, SEED));
	CK(ut_check(map + 3 * UT_PAGE, 3 * UT_PAGE, UT_PAGE, SEED) == -1);
	CK(open_err(p2, O_RDWR) == -EACCES);

	CK(nl_open(&nl) == 0);
	CK(dump_count(&nl, d->n1) == 1);	/* group read bit */
	CK(dump_count(&nl, d->n2) == 0);	/* 0600 */
	CK(get_region(&nl, UMEM_CMD_REGION_GET, d->n1, &ri) == 0 && ri.attached);
	CK(get_region(&nl, UMEM_CMD_STATS_GET, d->n1, &ri) == 0 &&
	   ri.stat_pages == SZ / UT_PAGE);
	CK(get_region(&nl, UMEM_CMD_REGION_GET, d->n2, &ri) == -EACCES);
	CK(fail_region(&nl, d->n1) == -EPERM);	/* not the owner */
	nl_close(&nl);
	munmap(map, SZ);
	close(nfd);
	return 0;
}

/*
 * The /dev/kvm story: /dev/umem is root:GID_VMM 0660.  The owner (uid
 * UID_OWNER, group GID_VMM, no capabilities) creates a 0660 and a 0600
 * region, finds its nodes owned by itself and its group with those modes,
 * maps and serves one (a thread and a forked process of its own get the
 * data), lists both, and fails both at the end (its own: allowed).  A
 * stranger (UID_OTHER, no groups) cannot open /dev/umem or either node,
 * sees neither in a dump, gets EACCES from GET and STATS_GET, EPERM from
 * FAIL, and cannot take the owner's server fd with pidfd_getfd() (root
 * can: the fd number is right).  A peer in the group (UID_PEER) opens and
 * maps the 0660 node, gets a page served by the owner's daemon, sees that
 * region (group read bit) but not the 0600 one, and may not FAIL it.
 */
TEST_F_TIMEOUT(owner, delegation, 300)
{
	struct umem_stats st;
	char path[64];
	int pidfd, fd, ret;

	memset(&g_d, 0, sizeof(g_d));
	ut_make_name(g_d.n1, "grp");
	ut_make_name(g_d.n2, "own");
	ASSERT_EQ(0, delegate_ctl(self));
	ASSERT_EQ(0, pipe2(g_d.up, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(g_d.down, O_CLOEXEC));

	g_d.owner = track(self, spawn(owner_main, &g_d));
	ASSERT_LT(0, g_d.owner);
	close(g_d.up[1]);
	close(g_d.down[0]);
	ret = wait_byte(g_d.up[0], KID_WAIT_MS);
	if (ret) {
		EXPECT_EQ(0, ret) TH_LOG("the owner did not get ready");
		EXPECT_EQ(0, reap_tracked(self, g_d.owner, UT_WAIT_MS));
		return;
	}

	/* Root may take the owner's server fd: the number is right. */
	pidfd = syscall(SYS_pidfd_open, g_d.owner, 0);
	ASSERT_LE(0, pidfd);
	fd = syscall(SYS_pidfd_getfd, pidfd, OWNER_SFD, 0);
	EXPECT_LE(0, fd);
	if (fd >= 0) {
		EXPECT_EQ(0, ut_stats(fd, &st));
		EXPECT_EQ(SZ, st.size);
		close(fd);
	}
	close(pidfd);

	EXPECT_EQ(0, reap_tracked(self, track(self, spawn(other_main, &g_d)),
				  KID_WAIT_MS)) TH_LOG("the stranger's checks");
	EXPECT_EQ(0, reap_tracked(self, track(self, spawn(peer_main, &g_d)),
				  KID_WAIT_MS)) TH_LOG("the peer's checks");

	EXPECT_EQ(1, write(g_d.down[1], "g", 1));
	EXPECT_EQ(0, reap_tracked(self, g_d.owner, KID_WAIT_MS))
		TH_LOG("the owner's checks");
	close(g_d.up[0]);
	close(g_d.down[1]);
	/* The owner is gone, and its regions with it. */
	node_of(path, g_d.n1);
	EXPECT_EQ(0, ut_wait_path(path, false, UT_WAIT_MS));
	node_of(path, g_d.n2);
	EXPECT_EQ(0, ut_wait_path(path, false, UT_WAIT_MS));
}

/* ---- visibility fixed at creation ---- */

struct vis {
	const char *name;
	const struct who *w;
	int dump;	/* expected dump count */
	int get;	/* expected GET result */
	int open;	/* expected open_err(node, O_RDWR) */
	int fail;	/* expected FAIL result, 1: don't try */
};

static struct vis g_v;

static int vis_main(void *arg)
{
	struct vis *v = arg;
	struct region_info ri;
	char path[64];
	struct nl nl;

	CK(become(v->w) == 0);
	node_of(path, v->name);
	CK(open_err(path, O_RDWR) == v->open);
	CK(nl_open(&nl) == 0);
	CK(dump_count(&nl, v->name) == v->dump);
	CK(get_region(&nl, UMEM_CMD_REGION_GET, v->name, &ri) == v->get);
	CK(get_region(&nl, UMEM_CMD_STATS_GET, v->name, &ri) == v->get);
	if (v->fail != 1)
		CK(fail_region(&nl, v->name) == v->fail);
	nl_close(&nl);
	return 0;
}

static int check_as(FIXTURE_DATA(owner) *self, const char *name,
		    const struct who *w, int dump, int get, int open, int fail)
{
	g_v = (struct vis){ name, w, dump, get, open, fail };
	return reap_tracked(self, track(self, spawn(vis_main, &g_v)),
			    KID_WAIT_MS);
}

/*
 * A chmod of the node changes who may open it, not who sees the region
 * in genl (owner UID_OWNER, group GID_VMM, mode 0640 fixed at creation).
 * The stranger can open a node chmod'ed 0666 but still sees nothing; the
 * group peer can no longer open a node chmod'ed 0600 but still sees it;
 * the owner, with the node at 0000, still sees it and may FAIL it.
 */
TEST_F_TIMEOUT(owner, chmod_keeps_visibility, 180)
{
	char name[UMEM_NAME_MAX], path[64];
	int ctl, sfd;

	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	ut_make_name(name, "chm");
	node_of(path, name);
	sfd = create_as(ctl, name, SZ, 0640, UID_OWNER, GID_VMM);
	ASSERT_LE(0, sfd);
	ASSERT_EQ(0, ut_wait_path(path, true, UT_WAIT_MS));

	/* As created. */
	EXPECT_EQ(0, check_as(self, name, &other_ids, 0, -EACCES, -EACCES, -EPERM));
	EXPECT_EQ(0, check_as(self, name, &peer_ids, 1, 0, -EACCES, -EPERM));

	ASSERT_EQ(0, chmod(path, 0666));
	EXPECT_EQ(0, check_as(self, name, &other_ids, 0, -EACCES, 0, -EPERM));

	ASSERT_EQ(0, chmod(path, 0600));
	EXPECT_EQ(0, check_as(self, name, &peer_ids, 1, 0, -EACCES, 1));

	ASSERT_EQ(0, chmod(path, 0000));
	EXPECT_EQ(0, check_as(self, name, &owner_ids, 1, 0, -EACCES, 0));
	close(sfd);
	close(ctl);
}

/*
 * generic_permission()'s classes: the owner gets the owner bits only,
 * even when its group would allow more; a group member the group bits;
 * everyone else the other bits; CAP_SYS_ADMIN (root here) sees all.
 * Mode 0040 hides the region from its owner (its node neither opens for
 * it) while the group peer sees it; mode 0004 shows it to the stranger
 * only.  FAIL stays the owner's, readable or not.
 */
TEST_F_TIMEOUT(owner, permission_classes, 180)
{
	char a[UMEM_NAME_MAX], b[UMEM_NAME_MAX], path[64];
	struct region_info ri;
	struct nl nl;
	int ctl, sa, sb;

	ASSERT_EQ(0, nl_open(&nl));
	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	ut_make_name(a, "g040");
	ut_make_name(b, "o004");
	sa = create_as(ctl, a, SZ, 0040, UID_OWNER, GID_VMM);
	ASSERT_LE(0, sa);
	sb = create_as(ctl, b, SZ, 0004, UID_OWNER, GID_VMM);
	ASSERT_LE(0, sb);
	node_of(path, a);
	ASSERT_EQ(0, ut_wait_path(path, true, UT_WAIT_MS));
	node_of(path, b);
	ASSERT_EQ(0, ut_wait_path(path, true, UT_WAIT_MS));

	EXPECT_EQ(0, check_as(self, a, &peer_ids, 1, 0, -EACCES, -EPERM));
	EXPECT_EQ(0, check_as(self, a, &other_ids, 0, -EACCES, -EACCES, -EPERM));
	EXPECT_EQ(0, check_as(self, b, &other_ids, 1, 0, -EACCES, -EPERM));
	EXPECT_EQ(0, check_as(self, b, &peer_ids, 0, -EACCES, -EACCES, -EPERM));
	EXPECT_EQ(0, check_as(self, b, &owner_ids, 0, -EACCES, -EACCES, 1));
	/* Last: the owner, which cannot read it, may still fail it. */
	EXPECT_EQ(0, check_as(self, a, &owner_ids, 0, -EACCES, -EACCES, 0));
	EXPECT_EQ(0, get_region(&nl, UMEM_CMD_REGION_GET, a, &ri));
	EXPECT_FALSE(ri.attached);
	EXPECT_EQ(0, get_region(&nl, UMEM_CMD_STATS_GET, b, &ri));
	EXPECT_TRUE(ri.attached);
	close(sa);
	close(sb);
	close(ctl);
	nl_close(&nl);
}

/* ---- a bind mount over the node ---- */

struct bindm {
	char n1[UMEM_NAME_MAX];	/* /dev/null bound over its node */
	char n2[UMEM_NAME_MAX];	/* a mode-0000 file bound over its node */
	char file[64];
};

static struct bindm g_b;

static int bind_main(void *arg)
{
	struct bindm *b = arg;
	struct stat st, null_st;
	char p1[64], p2[64];

	node_of(p1, b->n1);
	node_of(p2, b->n2);
	CK(unshare(CLONE_NEWNS) == 0);
	CK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	CK(mount("/dev/null", p1, NULL, MS_BIND, NULL) == 0);
	CK(mount(b->file, p2, NULL, MS_BIND, NULL) == 0);
	CK(stat(p1, &st) == 0 && stat("/dev/null", &null_st) == 0);
	CK(st.st_rdev == null_st.st_rdev);
	CK(stat(p2, &st) == 0 && S_ISREG(st.st_mode));

	/* The owner still sees both; the stranger neither (0600). */
	/* (The paths open what is bound there: /dev/null, the 0000 file.) */
	g_v = (struct vis){ b->n1, &owner_ids, 1, 0, 0, 1 };
	CK(reap(spawn(vis_main, &g_v), KID_WAIT_MS) == 0);
	g_v = (struct vis){ b->n2, &owner_ids, 1, 0, -EACCES, 1 };
	CK(reap(spawn(vis_main, &g_v), KID_WAIT_MS) == 0);
	g_v = (struct vis){ b->n1, &other_ids, 0, -EACCES, 0, 1 };
	CK(reap(spawn(vis_main, &g_v), KID_WAIT_MS) == 0);
	return 0;
}

/*
 * genl never looks up the node's path: in a private mount namespace with
 * /dev/null (and, for a second region, a mode-0000 regular file) bound
 * over /dev/umem-NAME, the owner (UID_OWNER, region 0600) still finds both
 * regions in a dump and GETs them, while the stranger still does not.
 * (The old code resolved the path there and hid them, or gave EACCES.)
 * Opening the paths, for contrast, now opens what was bound over them.
 */
TEST_F_TIMEOUT(owner, bind_mount_over_node, 180)
{
	char p1[64], p2[64];
	int ctl, s1, s2, fd;

	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	ut_make_name(g_b.n1, "bnul");
	ut_make_name(g_b.n2, "bfil");
	snprintf(g_b.file, sizeof(g_b.file), "/tmp/umem-owner-%d", getpid());
	node_of(p1, g_b.n1);
	node_of(p2, g_b.n2);
	s1 = create_as(ctl, g_b.n1, SZ, 0600, UID_OWNER, GID_VMM);
	ASSERT_LE(0, s1);
	s2 = create_as(ctl, g_b.n2, SZ, 0600, UID_OWNER, GID_VMM);
	ASSERT_LE(0, s2);
	ASSERT_EQ(0, ut_wait_path(p1, true, UT_WAIT_MS));
	ASSERT_EQ(0, ut_wait_path(p2, true, UT_WAIT_MS));
	fd = open(g_b.file, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0000);
	ASSERT_LE(0, fd);
	close(fd);

	EXPECT_EQ(0, reap_tracked(self, track(self, spawn(bind_main, &g_b)),
				  3 * KID_WAIT_MS));
	unlink(g_b.file);
	/* The namespace died with the child: the nodes are the nodes again. */
	EXPECT_EQ(0, check_as(self, g_b.n1, &owner_ids, 1, 0, 0, 1));
	close(s1);
	close(s2);
	close(ctl);
}

/* ---- UMEM_CMD_FAIL by the owner ---- */

struct failc {
	const char *name;
	bool open_as_other;	/* the socket opened with fsuid UID_OTHER */
};

static struct failc g_f;

static int fail_main(void *arg)
{
	struct failc *f = arg;
	struct nl nl, own;
	int ret;

	if (f->open_as_other) {
		/* A root process whose fsuid is the stranger's opens it. */
		setfsuid(UID_OTHER);
		CK(nl_open(&nl) == 0);
		setfsuid(0);
	}
	CK(become(&owner_ids) == 0);
	if (!f->open_as_other)
		CK(nl_open(&nl) == 0);
	ret = fail_region(&nl, f->name);
	if (f->open_as_other) {
		CK(ret == -EPERM);
		CK(strstr(nl.extack, "owner") != NULL);
		/* Its own socket works. */
		CK(nl_open(&own) == 0);
		CK(fail_region(&own, f->name) == 0);
		CK(fail_region(&own, f->name) == -EALREADY);
		nl_close(&own);
	} else {
		CK(ret == 0);
	}
	nl_close(&nl);
	return 0;
}

/*
 * UMEM_CMD_FAIL by the region's owner (no capabilities) detaches it; sent
 * by the owner on a socket that another uid opened it is EPERM (the opener
 * counts too), the stranger gets EPERM on its own socket.  A task waiting
 * for a page gets SIGBUS when the owner fails the region.
 */
TEST_F_TIMEOUT(owner, fail_by_owner, 180)
{
	struct ut_region r;
	struct region_info ri;
	struct nl nl;
	char n2[UMEM_NAME_MAX];
	int ctl, s2, status;
	pid_t pid;

	ASSERT_EQ(0, nl_open(&nl));
	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);

	/* r: owned by UID_OWNER, 0600, with a waiter. */
	ut_region_clear(&r);
	ut_make_name(r.name, "fown");
	r.server_fd = create_as(ctl, r.name, SZ, 0600, UID_OWNER, GID_VMM);
	ASSERT_LE(0, r.server_fd);
	r.size = SZ;
	ASSERT_EQ(0, ut_region_open_node(&r));
	fflush(stderr);
	pid = track(self, fork());
	if (pid == 0) {
		volatile char *p = ut_map(r.node_fd, SZ, 0);

		_exit(p == MAP_FAILED ? 3 : p[5 * UT_PAGE]);
	}
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, ut_wait_stat(r.server_fd, UT_STAT(waiting), 1, UT_WAIT_MS));

	EXPECT_EQ(0, check_as(self, r.name, &other_ids, 0, -EACCES, -EACCES,
			      -EPERM));
	EXPECT_EQ(1, ut_stat(r.server_fd, UT_STAT(waiting)));
	g_f = (struct failc){ r.name, false };
	EXPECT_EQ(0, reap_tracked(self, track(self, spawn(fail_main, &g_f)),
				  KID_WAIT_MS));
	EXPECT_EQ(0, ut_waitpid_timeout(pid, &status, UT_WAIT_MS));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS)
		TH_LOG("waiter status %#x", status);
	untrack(self, pid);
	ASSERT_EQ(0, get_region(&nl, UMEM_CMD_REGION_GET, r.name, &ri));
	EXPECT_FALSE(ri.attached);

	/* n2: the owner on a socket the stranger opened. */
	ut_make_name(n2, "fsock");
	s2 = create_as(ctl, n2, SZ, 0600, UID_OWNER, GID_VMM);
	ASSERT_LE(0, s2);
	g_f = (struct failc){ n2, true };
	EXPECT_EQ(0, reap_tracked(self, track(self, spawn(fail_main, &g_f)),
				  KID_WAIT_MS));
	ASSERT_EQ(0, get_region(&nl, UMEM_CMD_REGION_GET, n2, &ri));
	EXPECT_FALSE(ri.attached);

	close(s2);
	ut_region_fini(&r);
	close(ctl);
	nl_close(&nl);
}

/* ---- the per-user size limit ---- */

struct lim {
	int ctl;	/* opened by root, O_RDWR, kept across setuid */
	char name[UMEM_NAME_MAX];
	char name2[UMEM_NAME_MAX];
};

static struct lim g_l;

static int limit_child(void *arg)
{
	struct lim *l = arg;
	int sfd;

	CK(become(&owner_ids) == 0);
	CK(open_err(UMEM_CTL_DEVICE, O_RDWR) == -EACCES);	/* 0600 root */
	sfd = create_raw(l->ctl, l->name, 32 * MIB, 0, 0);
	CK(sfd >= 0);
	/* Its own 64 MiB are counted on their own: one page more is over. */
	CK(create_raw(l->ctl, l->name2, 32 * MIB + UT_PAGE, 0, 0) == -ENOSPC);
	sfd = create_raw(l->ctl, l->name2, 32 * MIB, 0, 0);
	CK(sfd >= 0);
	return 0;
}

/*
 * max_user_size at 64 MiB: root creates 32 + 32 MiB, one page more is
 * ENOSPC (and leaves no node behind); another uid (a child keeping root's
 * open /dev/umem across setuid) has its own 64 MiB; closing one region
 * makes room again; 0 means no limit.
 */
TEST_F_TIMEOUT(owner, limit_per_user, 180)
{
	char name[UMEM_NAME_MAX], path[64];
	int ctl, a, b, c, z;

	ASSERT_EQ(0, set_limit(self, 64 * MIB));
	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	ut_make_name(name, "la");
	a = create_raw(ctl, name, 32 * MIB, 0, 0);
	ASSERT_LE(0, a);
	ut_make_name(name, "lb");
	b = create_raw(ctl, name, 32 * MIB, 0, 0);
	ASSERT_LE(0, b);
	ut_make_name(name, "lc");
	node_of(path, name);
	EXPECT_EQ(-ENOSPC, create_raw(ctl, name, UT_PAGE, 0, 0));
	EXPECT_NE(0, access(path, F_OK));

	g_l.ctl = ctl;
	ut_make_name(g_l.name, "lu");
	ut_make_name(g_l.name2, "lv");
	EXPECT_EQ(0, reap_tracked(self, track(self, spawn(limit_child, &g_l)),
				  KID_WAIT_MS));

	/* Still full for root; closing a region makes room. */
	EXPECT_EQ(-ENOSPC, create_raw(ctl, name, UT_PAGE, 0, 0));
	close(a);
	c = create_raw(ctl, name, 32 * MIB, 0, 0);
	EXPECT_LE(0, c);
	ut_make_name(name, "ld");
	EXPECT_EQ(-ENOSPC, create_raw(ctl, name, UT_PAGE, 0, 0));

	/* 0: no limit. */
	ASSERT_EQ(0, set_limit(self, 0));
	z = create_raw(ctl, name, 64 * MIB, 0, 0);
	EXPECT_LE(0, z);
	if (z >= 0)
		close(z);
	if (c >= 0)
		close(c);
	close(b);
	close(ctl);
}

/*
 * With the default limit (64 x RAM, 128 GiB in a 2 GiB guest) regions of
 * 1 TiB (UMEM_MAX_SIZE) created in a loop fail with ENOSPC as soon as the
 * limit is reached, not by exhausting memory with their bitmaps (2 x 32
 * MiB each): no OOM kill.  Regions of a quarter of the limit: exactly four
 * fit.
 */
TEST_F_TIMEOUT(owner, limit_default_huge_regions, 180)
{
	enum { N = 64 };
	long long limit = read_ll(LIMIT_PARAM);
	long long want = ut_meminfo_kb("MemTotal") * 1024LL * 64;
	long long oom0 = vmstat("oom_kill");
	unsigned long long quarter;
	char name[UMEM_NAME_MAX];
	int fds[N], n = 0, i, ctl, err = 0;

	ASSERT_LT(0, limit);
	ASSERT_GE(want / 100, llabs(limit - want))
		TH_LOG("not the default limit: %lld", limit);
	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);

	for (n = 0; n < N; n++) {
		ut_make_name(name, "tib");
		fds[n] = create_raw(ctl, name, TIB, 0, 0);
		if (fds[n] < 0) {
			err = fds[n];
			break;
		}
	}
	EXPECT_EQ(-ENOSPC, err);
	EXPECT_EQ(limit / (long long)TIB, n);
	for (i = 0; i < n; i++)
		close(fds[i]);

	quarter = (unsigned long long)limit / 4 / UT_PAGE * UT_PAGE;
	err = 0;
	for (n = 0; n < N; n++) {
		ut_make_name(name, "qtr");
		fds[n] = create_raw(ctl, name, quarter, 0, 0);
		if (fds[n] < 0) {
			err = fds[n];
			break;
		}
	}
	EXPECT_EQ(-ENOSPC, err);
	EXPECT_EQ(4, n);
	for (i = 0; i < n; i++)
		close(fds[i]);
	close(ctl);
	EXPECT_EQ(oom0, vmstat("oom_kill"));
}

struct racer {
	int ctl;
	int idx;
	int attempts;
	int enospc;
	int other;	/* first unexpected result */
};

static void *racer_fn(void *arg)
{
	struct racer *r = arg;
	char name[UMEM_NAME_MAX];
	int i, ret;

	for (i = 0; i < r->attempts; i++) {
		snprintf(name, sizeof(name), "rc%d-%d-%d", (int)getpid(), r->idx, i);
		ret = create_raw(r->ctl, name, TIB, 0, 0);
		if (ret == -ENOSPC) {
			r->enospc++;
		} else {
			if (!r->other)
				r->other = ret;
			if (ret >= 0)
				close(ret);
		}
	}
	return NULL;
}

/*
 * Many threads hammering UMEM_CREATE with 1 TiB regions over the default
 * limit: every attempt is ENOSPC, and whatever an attempt allocates before
 * it is refused (its bitmaps, 64 MiB for 1 TiB) never adds up to an OOM
 * kill in the 2 GiB guest.
 */
TEST_F_TIMEOUT(owner, limit_concurrent_attempts, 300)
{
	enum { T = 8, A = 12 };
	static struct racer r[T];
	long long oom0 = vmstat("oom_kill");
	pthread_t th[T];
	int ctl, i;

	ASSERT_GT(TIB, read_ll(LIMIT_PARAM)) TH_LOG("limit not below 1 TiB");
	ASSERT_LT(0, read_ll(LIMIT_PARAM));
	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	for (i = 0; i < T; i++) {
		r[i] = (struct racer){ .ctl = ctl, .idx = i, .attempts = A };
		ASSERT_EQ(0, pthread_create(&th[i], NULL, racer_fn, &r[i]));
	}
	for (i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		EXPECT_EQ(A, r[i].enospc);
		EXPECT_EQ(0, r[i].other);
	}
	close(ctl);
	EXPECT_EQ(oom0, vmstat("oom_kill"));
}

/*
 * The cdev has an owner now: an open node fd pins the module twice (the
 * cdev, and its file operations), so /sys/module/umem/refcnt is 2 higher
 * while it is open, and back when it is closed.
 */
TEST_F(owner, cdev_owner_refcnt)
{
	struct ut_region r;
	long long base, one, two;
	int fd2;

	ASSERT_EQ(0, ut_region_init(&r, SZ, "ref"));
	base = read_ll(REFCNT);
	ASSERT_LE(0, base);
	ASSERT_EQ(0, ut_region_open_node(&r));
	one = read_ll(REFCNT);
	fd2 = dup(r.node_fd);	/* the same open file: no new reference */
	EXPECT_EQ(one, read_ll(REFCNT));
	close(fd2);
	{
		char path[64];

		node_of(path, r.name);
		fd2 = open(path, O_RDWR | O_CLOEXEC);
	}
	ASSERT_LE(0, fd2);
	two = read_ll(REFCNT);
	EXPECT_EQ(base + 2, one);
	EXPECT_EQ(base + 4, two);
	close(fd2);
	close(r.node_fd);
	r.node_fd = -1;
	EXPECT_EQ(base, read_ll(REFCNT));
	ut_region_fini(&r);
}

TEST_HARNESS_MAIN
