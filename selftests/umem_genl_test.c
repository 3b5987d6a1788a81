// SPDX-License-Identifier: GPL-2.0
/*
 * The "umem" generic netlink family, spoken raw (no libnl, so that the
 * malformed requests are exactly what we mean): dump while regions come
 * and go, get and stats while a task waits, every multicast event, the
 * CAP_SYS_ADMIN check on UMEM_CMD_FAIL (and SIGBUS for the waiter), strict
 * validation with extack messages, and the tracepoints through tracefs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "umem_test.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define BUFSZ	8192	/* small on purpose: big dumps need several parts */

struct nl {
	int fd;
	uint16_t family;
	uint32_t mcgrp;
	uint32_t seq;
	int err;		/* last error ack, -errno */
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

static void req_put_u32(struct req *r, uint16_t type, uint32_t v)
{
	req_put(r, type, &v, sizeof(v));
}

/* Attributes of a message: tb[type] -> the attribute (last one wins). */
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

/*
 * Send @r and collect replies until the ack, the end of a dump or the
 * error.  @cb sees each reply.  Returns 0 or the -errno of the ack.
 */
typedef void (*reply_cb)(struct nlmsghdr *nlh, void *arg);

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
				/* No ack follows a dump: DONE carries its error. */
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

struct family_info {
	uint16_t id;
	uint32_t grp;
};

static void family_cb(struct nlmsghdr *nlh, void *arg)
{
	struct nlattr *tb[CTRL_ATTR_MAX + 1], *g;
	struct family_info *fi = arg;
	int rem;

	parse_genl(tb, CTRL_ATTR_MAX, nlh);
	if (tb[CTRL_ATTR_FAMILY_ID])
		memcpy(&fi->id, nla_data_(tb[CTRL_ATTR_FAMILY_ID]), 2);
	if (!tb[CTRL_ATTR_MCAST_GROUPS])
		return;
	g = nla_data_(tb[CTRL_ATTR_MCAST_GROUPS]);
	rem = tb[CTRL_ATTR_MCAST_GROUPS]->nla_len - NLA_HDRLEN;
	for (; rem >= NLA_HDRLEN && g->nla_len <= rem;
	     rem -= NLA_ALIGN(g->nla_len),
	     g = (struct nlattr *)((char *)g + NLA_ALIGN(g->nla_len))) {
		struct nlattr *gt[CTRL_ATTR_MCAST_GRP_MAX + 1];

		parse_attrs(gt, CTRL_ATTR_MCAST_GRP_MAX, nla_data_(g),
			    g->nla_len - NLA_HDRLEN);
		if (gt[CTRL_ATTR_MCAST_GRP_NAME] && gt[CTRL_ATTR_MCAST_GRP_ID] &&
		    !strcmp(nla_data_(gt[CTRL_ATTR_MCAST_GRP_NAME]),
			    UMEM_GENL_MCGRP_EVENTS))
			fi->grp = a_u32(gt[CTRL_ATTR_MCAST_GRP_ID]);
	}
}

/* Open a socket and resolve the family; 0 or -errno. */
static int nl_open(struct nl *nl)
{
	struct family_info fi = { 0 };
	struct req r;
	int one = 1, err;

	memset(nl, 0, sizeof(*nl));
	nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (nl->fd < 0)
		return -errno;
	setsockopt(nl->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	req_init(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	req_put_str(&r, CTRL_ATTR_FAMILY_NAME, UMEM_GENL_NAME);
	err = nl_talk(nl, &r, family_cb, &fi);
	if (err)
		return err;
	if (!fi.id)
		return -ENOENT;
	nl->family = fi.id;
	nl->mcgrp = fi.grp;
	return 0;
}

static void nl_close(struct nl *nl)
{
	if (nl->fd > 0)
		close(nl->fd);
	nl->fd = -1;
}

/* ------------------------------------------------------ region replies */

struct region_info {
	bool found;
	uint32_t id;
	char name[UMEM_NAME_MAX];
	uint64_t size, pages, present, missing, queued, age;
	uint32_t page_size, waiting, daemon, creator;
	bool attached;
	uint64_t stats[UMEM_STATS_ATTR_MAX + 1];
	uint64_t hist[UMEM_HIST_BUCKETS];
	int nhist;
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
	ri->size = a_u64(tb[UMEM_ATTR_SIZE]);
	ri->page_size = a_u32(tb[UMEM_ATTR_PAGE_SIZE]);
	ri->pages = a_u64(tb[UMEM_ATTR_PAGES]);
	ri->present = a_u64(tb[UMEM_ATTR_PAGES_PRESENT]);
	ri->missing = a_u64(tb[UMEM_ATTR_PAGES_MISSING]);
	ri->waiting = a_u32(tb[UMEM_ATTR_WAITING]);
	ri->queued = a_u64(tb[UMEM_ATTR_REQUESTS_QUEUED]);
	ri->attached = tb[UMEM_ATTR_SERVER_ATTACHED] &&
		       *(uint8_t *)nla_data_(tb[UMEM_ATTR_SERVER_ATTACHED]);
	ri->daemon = a_u32(tb[UMEM_ATTR_DAEMON_PID]);
	ri->creator = a_u32(tb[UMEM_ATTR_CREATOR_PID]);
	ri->age = a_u64(tb[UMEM_ATTR_AGE_NS]);
	if (tb[UMEM_ATTR_STATS]) {
		struct nlattr *st[UMEM_STATS_ATTR_MAX + 1];
		int i;

		parse_attrs(st, UMEM_STATS_ATTR_MAX, nla_data_(tb[UMEM_ATTR_STATS]),
			    tb[UMEM_ATTR_STATS]->nla_len - NLA_HDRLEN);
		for (i = 0; i <= UMEM_STATS_ATTR_MAX; i++)
			ri->stats[i] = a_u64(st[i]);
	}
	if (tb[UMEM_ATTR_WAIT_HIST]) {
		struct nlattr *a = nla_data_(tb[UMEM_ATTR_WAIT_HIST]);
		int rem = tb[UMEM_ATTR_WAIT_HIST]->nla_len - NLA_HDRLEN;

		for (; rem >= NLA_HDRLEN && a->nla_len <= rem;
		     rem -= NLA_ALIGN(a->nla_len),
		     a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))
			if (a->nla_type == UMEM_HIST_ATTR_BUCKET &&
			    ri->nhist < UMEM_HIST_BUCKETS)
				ri->hist[ri->nhist++] = a_u64(a);
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

#define MAXDUMP 256

struct dump_info {
	int n;
	struct region_info r[MAXDUMP];
};

static void dump_cb(struct nlmsghdr *nlh, void *arg)
{
	struct dump_info *d = arg;

	if (d->n < MAXDUMP)
		region_from(&d->r[d->n], nlh);
	d->n++;
}

static int dump_regions(struct nl *nl, struct dump_info *d)
{
	struct req r;

	memset(d, 0, sizeof(*d));
	req_init(&r, nl->family, UMEM_CMD_REGION_GET, NLM_F_DUMP);
	return nl_talk(nl, &r, dump_cb, d);
}

/* How often @name appears in @d; its entry in *@out. */
static int dump_count(struct dump_info *d, const char *name,
		      struct region_info **out)
{
	int i, n = 0;

	for (i = 0; i < d->n && i < MAXDUMP; i++)
		if (!strcmp(d->r[i].name, name)) {
			n++;
			if (out)
				*out = &d->r[i];
		}
	return n;
}

/* A child that touches page @pgoff of the node (waits; SIGBUS maybe). */
static pid_t toucher(struct ut_region *r, uint64_t pgoff)
{
	pid_t pid = fork();

	if (pid == 0) {
		volatile char *p = ut_map(r->node_fd, r->size, 0);

		if (p == MAP_FAILED)
			_exit(3);
		(void)p[pgoff * UT_PAGE];
		_exit(0);
	}
	return pid;
}

FIXTURE(genl) {
	struct nl nl;
};

FIXTURE_SETUP(genl)
{
	int err;

	self->nl.fd = -1;
	if (!ut_module_loaded())
		SKIP(return, UT_NO_MODULE);
	err = nl_open(&self->nl);
	ASSERT_EQ(0, err) TH_LOG("resolving family %s: %s", UMEM_GENL_NAME,
				 strerror(-err));
}

FIXTURE_TEARDOWN(genl)
{
	nl_close(&self->nl);
}

TEST_F(genl, family)
{
	EXPECT_NE(0, self->nl.family);
	EXPECT_NE(0, self->nl.mcgrp) TH_LOG("no \"events\" multicast group");
}

/* A dump larger than one reply buffer, while regions come and go. */
TEST_F(genl, dump_come_and_go)
{
	enum { N = 48 };
	static struct ut_region r[N];
	static struct dump_info d;
	struct region_info *ri;
	int i;

	for (i = 0; i < N; i++)
		ASSERT_EQ(0, ut_region_init(&r[i], (i + 1) * UT_PAGE, "ls"));
	ASSERT_EQ(0, dump_regions(&self->nl, &d));
	for (i = 0; i < N; i++) {
		ri = NULL;
		ASSERT_EQ(1, dump_count(&d, r[i].name, &ri))
			TH_LOG("%s listed %d times", r[i].name,
			       dump_count(&d, r[i].name, NULL));
		EXPECT_EQ(r[i].id, ri->id);
		EXPECT_EQ(r[i].size, ri->size);
		EXPECT_EQ(UT_PAGE, ri->page_size);
		EXPECT_EQ((uint64_t)i + 1, ri->pages);
		EXPECT_EQ(0, ri->present);
		EXPECT_EQ((uint64_t)i + 1, ri->missing);
		EXPECT_TRUE(ri->attached);
		EXPECT_EQ(getpid(), ri->creator);
		EXPECT_LT(0, ri->age);
	}
	/* Every other one goes away; dumping again sees exactly the rest. */
	for (i = 0; i < N; i += 2)
		ut_region_fini(&r[i]);
	ASSERT_EQ(0, dump_regions(&self->nl, &d));
	for (i = 0; i < N; i++)
		EXPECT_EQ(i % 2, dump_count(&d, r[i].name, NULL));
	/* Dumps racing with creation and destruction stay well formed. */
	for (i = 0; i < N; i += 2) {
		ASSERT_EQ(0, ut_region_init(&r[i], UT_PAGE, "ls"));
		ASSERT_EQ(0, dump_regions(&self->nl, &d));
		EXPECT_EQ(1, dump_count(&d, r[i].name, NULL));
		ut_region_fini(&r[i + 1]);
		ASSERT_EQ(0, dump_regions(&self->nl, &d));
		EXPECT_EQ(0, dump_count(&d, r[i + 1].name, NULL));
	}
	for (i = 0; i < N; i++)
		ut_region_fini(&r[i]);
}

TEST_F(genl, get_by_name_and_id)
{
	struct region_info ri;
	struct ut_region r;
	struct req q;

	ASSERT_EQ(0, ut_region_init(&r, 8 * UT_PAGE, "get"));
	ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_REGION_GET, r.name, &ri));
	EXPECT_TRUE(ri.found);
	EXPECT_EQ(r.id, ri.id);
	EXPECT_STREQ(r.name, ri.name);
	EXPECT_EQ(8, ri.pages);

	memset(&ri, 0, sizeof(ri));
	req_init(&q, self->nl.family, UMEM_CMD_REGION_GET, 0);
	req_put_u32(&q, UMEM_ATTR_REGION_ID, r.id);
	ASSERT_EQ(0, nl_talk(&self->nl, &q, one_cb, &ri));
	EXPECT_STREQ(r.name, ri.name);

	ut_region_fini(&r);
	EXPECT_EQ(-ENOENT, get_region(&self->nl, UMEM_CMD_REGION_GET, r.name, &ri));
	EXPECT_STREQ("no such region", self->nl.extack);
}

/* Stats of a region while a task waits for a page, then after. */
TEST_F(genl, stats_while_faulting)
{
	struct umem_request req;
	struct region_info ri;
	struct ut_region r;
	uint64_t sum = 0;
	int i, status, n;
	pid_t pid;

	ASSERT_EQ(0, ut_region_init(&r, 16 * UT_PAGE, "st"));
	ASSERT_EQ(0, ut_region_open_node(&r));
	for (n = 0; n < 3; n++) {
		pid = toucher(&r, 5 + n);
		ASSERT_LT(0, pid);
		ASSERT_EQ(0, ut_wait_stat(r.server_fd, UT_STAT(waiting), 1,
					  UT_WAIT_MS));
		ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_STATS_GET, r.name, &ri));
		EXPECT_EQ(1, ri.waiting);
		EXPECT_EQ(1, ri.queued);
		EXPECT_EQ(1, ri.stats[UMEM_STATS_ATTR_WAITING]);
		EXPECT_EQ(1, ri.stats[UMEM_STATS_ATTR_REQUESTS_PENDING]);
		EXPECT_EQ(n + 1, ri.stats[UMEM_STATS_ATTR_REQUESTS]);
		EXPECT_EQ(n, ri.stats[UMEM_STATS_ATTR_INSTALLED]);
		EXPECT_EQ(16, ri.stats[UMEM_STATS_ATTR_PAGES]);
		EXPECT_EQ(16 * UT_PAGE, ri.stats[UMEM_STATS_ATTR_SIZE]);
		EXPECT_EQ(UT_PAGE, ri.stats[UMEM_STATS_ATTR_PAGE_SIZE]);

		/* Be the daemon: read it, then install. */
		ASSERT_EQ(1, ut_read_requests(r.server_fd, &req, 1));
		EXPECT_EQ((5 + n) * UT_PAGE, req.offset);
		ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_REGION_GET, r.name, &ri));
		EXPECT_EQ(0, ri.queued);
		EXPECT_EQ(getpid(), ri.daemon);
		ut_sleep_ms(20);
		ASSERT_EQ(0, ut_install_page(r.server_fd, UT_INSTALL_ZERO,
					     req.offset, 0));
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_STATS_GET, r.name, &ri));
	EXPECT_EQ(0, ri.waiting);
	EXPECT_EQ(3, ri.present);
	EXPECT_EQ(13, ri.missing);
	EXPECT_EQ(3, ri.stats[UMEM_STATS_ATTR_INSTALLED]);
	EXPECT_LE(3, ri.stats[UMEM_STATS_ATTR_FAULTS]);
	/* Each wait was at least 20 ms: counted, and not in the low buckets. */
	EXPECT_LE(3 * 20000000ULL, ri.stats[UMEM_STATS_ATTR_WAIT_NS_TOTAL]);
	ASSERT_EQ(UMEM_HIST_BUCKETS, ri.nhist);
	for (i = 0; i < ri.nhist; i++)
		sum += ri.hist[i];
	EXPECT_LE(3, sum);
	for (i = 0; i < 10; i++)
		EXPECT_EQ(0, ri.hist[i]);
	ut_region_fini(&r);
}

/* ------------------------------------------------------------ events */

struct event {
	uint32_t type;
	char name[UMEM_NAME_MAX];
	uint64_t missing;
};

/* Read events for @name until @want of them or a timeout; count kept. */
static int read_events(struct nl *nl, const char *name, struct event *ev,
		       int want, int timeout_ms)
{
	static char buf[BUFSZ];
	int n = 0;

	while (n < want) {
		struct pollfd p = { .fd = nl->fd, .events = POLLIN };
		struct nlmsghdr *nlh;
		ssize_t len;

		if (poll(&p, 1, timeout_ms) <= 0)
			break;
		len = recv(nl->fd, buf, sizeof(buf), 0);
		if (len < 0)
			break;
		for (nlh = (struct nlmsghdr *)buf; NLMSG_OK(nlh, len);
		     nlh = NLMSG_NEXT(nlh, len)) {
			struct nlattr *tb[UMEM_ATTR_MAX + 1];
			struct genlmsghdr *g = NLMSG_DATA(nlh);

			if (nlh->nlmsg_type != nl->family || g->cmd != UMEM_CMD_EVENT)
				continue;
			parse_genl(tb, UMEM_ATTR_MAX, nlh);
			if (!tb[UMEM_ATTR_REGION_NAME] ||
			    strcmp(nla_data_(tb[UMEM_ATTR_REGION_NAME]), name) ||
			    n >= want)
				continue;
			ev[n].type = a_u32(tb[UMEM_ATTR_EVENT]);
			snprintf(ev[n].name, sizeof(ev[n].name), "%s", name);
			ev[n].missing = a_u64(tb[UMEM_ATTR_PAGES_MISSING]);
			n++;
		}
	}
	return n;
}

/* stats_2m_region sets shmem_enabled for a moment: put it back if killed. */
static void __attribute__((constructor)) knob_guard(void)
{
	ut_thp_shmem_guard();
}

/* A region of 2 MiB pages: page size, pages and alloc_failed over genl. */
TEST_F(genl, stats_2m_region)
{
	struct umem_api api = { .api = UMEM_API, .features = UMEM_F_PAGE_2M };
	const uint64_t hp = UMEM_PAGE_SIZE_2M;
	struct region_info ri;
	char name[UMEM_NAME_MAX], knob[32];
	int ctl, sfd, err;
	void *buf;

	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	if (ut_get_api(ctl, &api)) {
		close(ctl);
		SKIP(return, "no UMEM_F_PAGE_2M (no transparent huge pages)");
	}
	ut_make_name(name, "g2m");
	sfd = ut_create_ps(ctl, name, 2 * hp, UMEM_PAGE_SIZE_2M, NULL);
	ASSERT_LE(0, sfd);

	ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_STATS_GET, name, &ri));
	EXPECT_EQ(hp, ri.page_size);
	EXPECT_EQ(2, ri.pages);
	EXPECT_EQ(2, ri.missing);
	EXPECT_EQ(hp, ri.stats[UMEM_STATS_ATTR_PAGE_SIZE]);
	EXPECT_EQ(2, ri.stats[UMEM_STATS_ATTR_PAGES]);
	EXPECT_EQ(0, ri.stats[UMEM_STATS_ATTR_ALLOC_FAILED]);

	buf = aligned_alloc(UT_PAGE, hp);
	ASSERT_NE(NULL, buf);
	memset(buf, 0x5a, hp);
	ASSERT_EQ(0, ut_copy(sfd, 0, buf, hp, NULL));
	ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_STATS_GET, name, &ri));
	EXPECT_EQ(1, ri.present);
	EXPECT_EQ(1, ri.stats[UMEM_STATS_ATTR_INSTALLED]);

	/* No 2 MiB folio with the knob at "deny": ENOMEM, counted. */
	if (!ut_thp_shmem_read(knob, sizeof(knob)) && !ut_thp_shmem_set("deny")) {
		err = ut_copy(sfd, hp, buf, hp, NULL);
		ut_thp_shmem_write(knob);
		EXPECT_EQ(-ENOMEM, err);
		ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_STATS_GET, name,
					&ri));
		EXPECT_EQ(1, ri.stats[UMEM_STATS_ATTR_ALLOC_FAILED]);
		EXPECT_EQ(1, ri.present);
	}
	free(buf);
	close(sfd);
	close(ctl);
}

/* Write protection's counters over genl: pages protected, writes that waited. */
TEST_F(genl, stats_write_protect)
{
	struct umem_api api = { .api = UMEM_API,
				.features = UMEM_F_WRITE_PROTECT |
					    UMEM_F_CREATE_PRESENT };
	struct region_info ri;
	struct ut_toucher w;
	char name[UMEM_NAME_MAX], path[64];
	uint64_t *map;
	int ctl, sfd, nfd;

	ctl = ut_open_ctl();
	ASSERT_LE(0, ctl);
	if (ut_get_api(ctl, &api)) {
		close(ctl);
		SKIP(return, "no UMEM_F_WRITE_PROTECT (umem < 0.5)");
	}
	ut_make_name(name, "gwp");
	sfd = ut_create_flags(ctl, name, 8 * UT_PAGE,
			      UMEM_CREATE_WP | UMEM_CREATE_PRESENT, NULL);
	ASSERT_LE(0, sfd);
	ut_node_path(path, sizeof(path), name);
	ASSERT_EQ(0, ut_wait_path(path, true, UT_WAIT_MS));
	nfd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, nfd);
	map = ut_map(nfd, 8 * UT_PAGE, 0);
	ASSERT_NE(MAP_FAILED, map);

	ASSERT_EQ(0, ut_writeprotect(sfd, 0, 4 * UT_PAGE, true, NULL));
	ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_STATS_GET, name, &ri));
	EXPECT_EQ(8, ri.present);
	EXPECT_EQ(4, ri.stats[UMEM_STATS_ATTR_PAGES_PROTECTED]);
	EXPECT_EQ(0, ri.stats[UMEM_STATS_ATTR_WP_FAULTS]);
	/* The one mmap() of the node above (UMEM_F_MMAPS). */
	EXPECT_EQ(1, ri.stats[UMEM_STATS_ATTR_MMAPS]);

	ASSERT_EQ(0, ut_toucher_start(&w, map, true, 1));
	ASSERT_EQ(0, ut_wait_stat(sfd, UT_STAT(waiting), 1, UT_WAIT_MS));
	ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_STATS_GET, name, &ri));
	EXPECT_EQ(1, ri.stats[UMEM_STATS_ATTR_WP_FAULTS]);
	EXPECT_EQ(1, ri.stats[UMEM_STATS_ATTR_REQUESTS]);
	EXPECT_EQ(1, ri.waiting);
	ASSERT_EQ(0, ut_writeprotect(sfd, 0, 4 * UT_PAGE, false, NULL));
	ASSERT_EQ(0, ut_toucher_join(&w, UT_WAIT_MS));
	ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_STATS_GET, name, &ri));
	EXPECT_EQ(0, ri.stats[UMEM_STATS_ATTR_PAGES_PROTECTED]);
	munmap(map, 8 * UT_PAGE);
	close(nfd);
	close(sfd);
	close(ctl);
}

TEST_F(genl, events)
{
	struct ut_region a, b;
	struct event ev[8];
	struct nl sub;
	uint32_t grp;
	int i;

	ASSERT_EQ(0, nl_open(&sub));
	grp = sub.mcgrp;
	ASSERT_EQ(0, setsockopt(sub.fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP,
				&grp, sizeof(grp)));

	/* a: created, complete (after the last install), destroyed. */
	ASSERT_EQ(0, ut_region_init(&a, 4 * UT_PAGE, "eva"));
	ASSERT_EQ(1, read_events(&sub, a.name, ev, 1, UT_WAIT_MS));
	EXPECT_EQ(UMEM_EVENT_CREATED, ev[0].type);
	EXPECT_EQ(4, ev[0].missing);
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, ut_install_page(a.server_fd, UT_INSTALL_ZERO,
					     i * UT_PAGE, 0));
	ASSERT_EQ(1, read_events(&sub, a.name, ev, 1, UT_WAIT_MS));
	EXPECT_EQ(UMEM_EVENT_COMPLETE, ev[0].type);
	EXPECT_EQ(0, ev[0].missing);
	/* Discard and refill: complete again. */
	ASSERT_EQ(0, ut_discard(a.server_fd, 0, UT_PAGE));
	ASSERT_EQ(0, ut_install_page(a.server_fd, UT_INSTALL_ZERO, 0, 0));
	ASSERT_EQ(1, read_events(&sub, a.name, ev, 1, UT_WAIT_MS));
	EXPECT_EQ(UMEM_EVENT_COMPLETE, ev[0].type);
	/* Complete, so closing the server is no "detached" event. */
	ut_region_fini(&a);
	ASSERT_EQ(1, read_events(&sub, a.name, ev, 1, UT_WAIT_MS));
	EXPECT_EQ(UMEM_EVENT_DESTROYED, ev[0].type);

	/* b: created, detached with pages missing, destroyed later. */
	ASSERT_EQ(0, ut_region_init(&b, 4 * UT_PAGE, "evb"));
	ASSERT_EQ(0, ut_region_open_node(&b));
	ASSERT_EQ(0, ut_install_page(b.server_fd, UT_INSTALL_ZERO, 0, 0));
	close(b.server_fd);
	b.server_fd = -1;
	ASSERT_EQ(2, read_events(&sub, b.name, ev, 2, UT_WAIT_MS));
	EXPECT_EQ(UMEM_EVENT_CREATED, ev[0].type);
	EXPECT_EQ(UMEM_EVENT_DETACHED, ev[1].type);
	EXPECT_EQ(3, ev[1].missing);
	/* The node still holds it: not destroyed yet. */
	EXPECT_EQ(0, read_events(&sub, b.name, ev, 1, 200));
	ut_region_fini(&b);
	ASSERT_EQ(1, read_events(&sub, b.name, ev, 1, UT_WAIT_MS));
	EXPECT_EQ(UMEM_EVENT_DESTROYED, ev[0].type);
	nl_close(&sub);
}

/* ------------------------------------------------------ admin command */

TEST_F(genl, fail_as_root)
{
	struct region_info ri;
	struct ut_region r;
	struct event ev[2];
	struct nl sub;
	uint32_t grp;
	int status;
	pid_t pid;

	ASSERT_EQ(0, nl_open(&sub));
	grp = sub.mcgrp;
	ASSERT_EQ(0, setsockopt(sub.fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP,
				&grp, sizeof(grp)));
	ASSERT_EQ(0, ut_region_init(&r, 4 * UT_PAGE, "fail"));
	ASSERT_EQ(0, ut_region_open_node(&r));
	pid = toucher(&r, 2);
	ASSERT_LT(0, pid);
	ASSERT_EQ(0, ut_wait_stat(r.server_fd, UT_STAT(waiting), 1, UT_WAIT_MS));

	/* Nobody serves it: fail it as root. */
	ASSERT_EQ(0, fail_region(&self->nl, r.name)) TH_LOG("%s", self->nl.extack);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS)
		TH_LOG("waiter status %#x", status);
	ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_REGION_GET, r.name, &ri));
	EXPECT_FALSE(ri.attached);
	EXPECT_EQ(0, ri.waiting);
	EXPECT_EQ(0, ri.queued);
	/* A new fault gets SIGBUS at once, a second FAIL is EALREADY. */
	pid = toucher(&r, 3);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
	EXPECT_EQ(-EALREADY, fail_region(&self->nl, r.name));
	EXPECT_EQ(-ENOENT, fail_region(&self->nl, "no-such-region"));
	EXPECT_EQ(2, read_events(&sub, r.name, ev, 2, UT_WAIT_MS));
	EXPECT_EQ(UMEM_EVENT_DETACHED, ev[1].type);
	/* Closing the server fd later reports no second detach. */
	close(r.server_fd);
	r.server_fd = -1;
	EXPECT_EQ(0, read_events(&sub, r.name, ev, 1, 200));
	ut_region_fini(&r);
	nl_close(&sub);
}

static void *read_one(void *arg)
{
	struct umem_request req;

	return (void *)(intptr_t)ut_read_requests(*(int *)arg, &req, 1);
}

/*
 * After UMEM_CMD_FAIL a reader blocked on the server fd wakes with end of
 * file, later reads return 0 too, and poll() reports EPOLLHUP.
 */
TEST_F(genl, fail_ends_the_request_channel)
{
	struct pollfd p;
	struct ut_region r;
	pthread_t th;
	void *ret;

	ASSERT_EQ(0, ut_region_init(&r, 4 * UT_PAGE, "eof"));
	p.fd = r.server_fd;
	p.events = POLLIN;
	EXPECT_EQ(0, poll(&p, 1, 0));
	ASSERT_EQ(0, pthread_create(&th, NULL, read_one, &r.server_fd));
	ut_sleep_ms(200);
	ASSERT_EQ(0, fail_region(&self->nl, r.name)) TH_LOG("%s", self->nl.extack);
	ASSERT_EQ(0, pthread_join(th, &ret));
	EXPECT_EQ(0, (intptr_t)ret);
	EXPECT_EQ(1, poll(&p, 1, 0));
	EXPECT_TRUE(p.revents & POLLHUP);
	EXPECT_EQ(0, (intptr_t)read_one(&r.server_fd));
	ut_region_fini(&r);
}

/*
 * As nobody (uid/gid 65534, no groups, no capabilities): a region created
 * with the default node mode (0600, owner root) is neither listed nor
 * answered (EACCES); one created with node_mode 0644 is listed and its
 * stats read.  Visibility follows the mode given at creation, not a later
 * chmod of the node.  FAIL is EPERM and the region survives; the events
 * group is refused (EPERM).
 */
TEST_F(genl, unprivileged)
{
	struct region_info ri;
	struct ut_region r, h;
	char node[64];
	int status;
	pid_t pid;

	ASSERT_EQ(0, ut_region_init_mode(&r, 4 * UT_PAGE, "nobody", 0644));
	ASSERT_EQ(0, ut_region_init(&h, 4 * UT_PAGE, "hidden"));
	ASSERT_EQ(0, ut_region_open_node(&r));
	ASSERT_EQ(0, ut_region_open_node(&h));
	/* A chmod of the node does not change what genl shows. */
	snprintf(node, sizeof(node), "/dev/umem-%s", h.name);
	ASSERT_EQ(0, chmod(node, 0644));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		static struct dump_info d;
		struct nl nl, sub;
		uint32_t grp;

		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(10);
		if (nl_open(&nl) || nl_open(&sub))
			_exit(11);
		if (dump_regions(&nl, &d) || dump_count(&d, r.name, NULL) != 1 ||
		    dump_count(&d, h.name, NULL) != 0)
			_exit(12);
		if (get_region(&nl, UMEM_CMD_STATS_GET, r.name, &ri) ||
		    ri.stats[UMEM_STATS_ATTR_PAGES] != 4)
			_exit(13);
		if (get_region(&nl, UMEM_CMD_REGION_GET, h.name, &ri) != -EACCES ||
		    !strstr(nl.extack, "no read permission"))
			_exit(14);
		if (get_region(&nl, UMEM_CMD_STATS_GET, h.name, &ri) != -EACCES)
			_exit(15);
		if (fail_region(&nl, r.name) != -EPERM ||
		    !strstr(nl.extack, "CAP_SYS_ADMIN or the region's owner"))
			_exit(16);
		grp = sub.mcgrp;
		if (!setsockopt(sub.fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP,
				&grp, sizeof(grp)) || errno != EPERM)
			_exit(17);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status))
		TH_LOG("unprivileged child failed at step %d", WEXITSTATUS(status));
	ASSERT_EQ(0, get_region(&self->nl, UMEM_CMD_REGION_GET, r.name, &ri));
	EXPECT_TRUE(ri.attached);
	/* Root (CAP_DAC_OVERRIDE) reads the 0600 one. */
	EXPECT_EQ(0, get_region(&self->nl, UMEM_CMD_REGION_GET, h.name, &ri));
	ut_region_fini(&r);
	ut_region_fini(&h);
}

/* --------------------------------------------------------- validation */

TEST_F(genl, malformed)
{
	struct ut_region r;
	struct req q;
	uint64_t v64 = 1;
	char raw[8] = "abcdefgh";

	ASSERT_EQ(0, ut_region_init(&r, 4 * UT_PAGE, "bad"));

	/* Unknown attribute type. */
	req_init(&q, self->nl.family, UMEM_CMD_STATS_GET, 0);
	req_put_str(&q, UMEM_ATTR_REGION_NAME, r.name);
	req_put_u32(&q, UMEM_ATTR_MAX + 7, 1);
	EXPECT_EQ(-EINVAL, nl_talk(&self->nl, &q, NULL, NULL));
	EXPECT_NE(0, self->nl.extack[0]);
	TH_LOG("unknown attr: %s", self->nl.extack);

	/* Wrong type: an id of 8 bytes. */
	req_init(&q, self->nl.family, UMEM_CMD_REGION_GET, 0);
	req_put(&q, UMEM_ATTR_REGION_ID, &v64, sizeof(v64));
	EXPECT_EQ(-EINVAL, nl_talk(&self->nl, &q, NULL, NULL));
	EXPECT_NE(0, self->nl.extack[0]);
	TH_LOG("8-byte id: %s", self->nl.extack);

	/* A name that is not NUL-terminated. */
	req_init(&q, self->nl.family, UMEM_CMD_REGION_GET, 0);
	req_put(&q, UMEM_ATTR_REGION_NAME, raw, sizeof(raw));
	EXPECT_EQ(-EINVAL, nl_talk(&self->nl, &q, NULL, NULL));

	/* A name too long. */
	req_init(&q, self->nl.family, UMEM_CMD_REGION_GET, 0);
	req_put_str(&q, UMEM_ATTR_REGION_NAME,
		    "0123456789012345678901234567890123456789");
	EXPECT_EQ(-EINVAL, nl_talk(&self->nl, &q, NULL, NULL));

	/* An output-only attribute in a request. */
	req_init(&q, self->nl.family, UMEM_CMD_REGION_GET, 0);
	req_put_str(&q, UMEM_ATTR_REGION_NAME, r.name);
	req_put(&q, UMEM_ATTR_SIZE, &v64, sizeof(v64));
	EXPECT_EQ(-EINVAL, nl_talk(&self->nl, &q, NULL, NULL));
	TH_LOG("output-only attr: %s", self->nl.extack);

	/* Neither name nor id; both. */
	req_init(&q, self->nl.family, UMEM_CMD_STATS_GET, 0);
	EXPECT_EQ(-EINVAL, nl_talk(&self->nl, &q, NULL, NULL));
	EXPECT_STREQ("a region name or id is required", self->nl.extack);
	req_init(&q, self->nl.family, UMEM_CMD_STATS_GET, 0);
	req_put_str(&q, UMEM_ATTR_REGION_NAME, r.name);
	req_put_u32(&q, UMEM_ATTR_REGION_ID, r.id);
	EXPECT_EQ(-EINVAL, nl_talk(&self->nl, &q, NULL, NULL));
	EXPECT_STREQ("give a region name or an id, not both", self->nl.extack);

	/* Id out of range. */
	req_init(&q, self->nl.family, UMEM_CMD_STATS_GET, 0);
	req_put_u32(&q, UMEM_ATTR_REGION_ID, 1u << 20);
	EXPECT_EQ(-ERANGE, nl_talk(&self->nl, &q, NULL, NULL));

	/* A dump with an unknown attribute. */
	req_init(&q, self->nl.family, UMEM_CMD_REGION_GET, NLM_F_DUMP);
	req_put_u32(&q, UMEM_ATTR_MAX + 1, 1);
	EXPECT_EQ(-EINVAL, nl_talk(&self->nl, &q, NULL, NULL));

	/* Unknown command; the event command is not a request. */
	req_init(&q, self->nl.family, UMEM_CMD_MAX + 3, 0);
	EXPECT_EQ(-EOPNOTSUPP, nl_talk(&self->nl, &q, NULL, NULL));
	req_init(&q, self->nl.family, UMEM_CMD_EVENT, 0);
	EXPECT_EQ(-EOPNOTSUPP, nl_talk(&self->nl, &q, NULL, NULL));

	/* Reserved header field set. */
	req_init(&q, self->nl.family, UMEM_CMD_STATS_GET, 0);
	q.g.reserved = 1;
	req_put_str(&q, UMEM_ATTR_REGION_NAME, r.name);
	EXPECT_EQ(-EINVAL, nl_talk(&self->nl, &q, NULL, NULL));

	/* Still answers properly afterwards. */
	req_init(&q, self->nl.family, UMEM_CMD_STATS_GET, 0);
	req_put_str(&q, UMEM_ATTR_REGION_NAME, r.name);
	EXPECT_EQ(0, nl_talk(&self->nl, &q, NULL, NULL));
	ut_region_fini(&r);
}

/* -------------------------------------------------------- tracepoints */

#define TRACEFS "/sys/kernel/tracing"

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -EIO;
}

TEST_F(genl, tracepoints)
{
	static const char * const events[] = {
		"umem_fault_start", "umem_request_queued", "umem_page_installed",
		"umem_task_woken", "umem_discard", "umem_server_detached",
	};
	static char trace[1 << 20];
	struct umem_request req;
	struct ut_region r;
	char path[256], want[64];
	unsigned int i;
	ssize_t n, len = 0;
	int fd, status;
	pid_t pid;

	if (access(TRACEFS "/events", F_OK))
		mount("nodev", TRACEFS, "tracefs", 0, NULL);
	if (access(TRACEFS "/events", F_OK))
		SKIP(return, "tracefs not available");
	for (i = 0; i < UT_ARRAY_SIZE(events); i++) {
		snprintf(path, sizeof(path), TRACEFS "/events/umem/%s/format",
			 events[i]);
		EXPECT_EQ(0, access(path, R_OK)) TH_LOG("%s missing", path);
	}
	ASSERT_EQ(0, write_file(TRACEFS "/trace", ""));
	ASSERT_EQ(0, write_file(TRACEFS "/events/umem/enable", "1"));

	ASSERT_EQ(0, ut_region_init(&r, 4 * UT_PAGE, "tp"));
	ASSERT_EQ(0, ut_region_open_node(&r));
	pid = toucher(&r, 1);
	ASSERT_LT(0, pid);
	ASSERT_EQ(1, ut_read_requests(r.server_fd, &req, 1));
	ASSERT_EQ(0, ut_install_page(r.server_fd, UT_INSTALL_ZERO, req.offset, 0));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, ut_discard(r.server_fd, 0, 4 * UT_PAGE));
	close(r.server_fd);
	r.server_fd = -1;

	write_file(TRACEFS "/events/umem/enable", "0");
	fd = open(TRACEFS "/trace", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	while (len < (ssize_t)sizeof(trace) - 1 &&
	       (n = read(fd, trace + len, sizeof(trace) - 1 - len)) > 0)
		len += n;
	trace[len] = '\0';
	close(fd);
	for (i = 0; i < UT_ARRAY_SIZE(events); i++) {
		snprintf(want, sizeof(want), "%s: region=%u", events[i], r.id);
		EXPECT_NE(NULL, strstr(trace, want)) TH_LOG("no \"%s\" in trace", want);
	}
	snprintf(want, sizeof(want), "umem_task_woken: region=%u pgoff=1 wait_ns=",
		 r.id);
	EXPECT_NE(NULL, strstr(trace, want));
	ut_region_fini(&r);
}

TEST_HARNESS_MAIN
