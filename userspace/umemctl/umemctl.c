// SPDX-License-Identifier: GPL-2.0
/*
 * umemctl: look at umem regions through the "umem" generic netlink family,
 * watch their events and fail a region whose daemon is gone; create a
 * region born present for a command to run on.
 *
 *   umemctl [--json] list
 *   umemctl [--json] stats NAME
 *   umemctl [--json] watch [--count N] [--timeout S]
 *   umemctl [--json] fail NAME
 *   umemctl [--json] create NAME --size SIZE --present [--wp]
 *           [--page-size 4k|2m] [--mode OCTAL] -- CMD [ARGS...]
 *
 * See Documentation/umemctl.8.  Exit status: 0 ok, 1 error, 2 usage;
 * create: CMD's status (128 + signal if killed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include <linux/umem.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef UMEM_VERSION
#error "UMEM_VERSION (the top-level VERSION file) must be defined"
#endif
#define OPT_VERSION 1000

static bool json;

struct ctx {
	struct nl_sock *sock;
	int family;
	int err;		/* -errno from the kernel's ack */
	char extack[256];	/* its extended ack message */
	bool done;
	unsigned long count;	/* messages seen */
	unsigned long limit;	/* watch: stop after this many (0: never) */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: umemctl [--json] COMMAND [ARGS]\n"
		"\n"
		"  list                 every region: size, pages present/missing, waiters,\n"
		"                       queued requests, server, daemon and creator pids, age\n"
		"  stats NAME           one region's counters and wait-time histogram\n"
		"  watch [--count N] [--timeout S]\n"
		"                       print region events (created, complete, detached,\n"
		"                       destroyed) as they happen\n"
		"  fail NAME            detach a region whose daemon is gone: its waiting\n"
		"                       tasks get SIGBUS (needs CAP_SYS_ADMIN)\n"
		"  create NAME --size SIZE --present [--wp] [--page-size 4k|2m]\n"
		"         [--mode OCTAL] -- CMD [ARGS...]\n"
		"                       create a region whose pages start present (zeros),\n"
		"                       print its node, run CMD while holding the region,\n"
		"                       exit with CMD's status; --wp: its pages can be\n"
		"                       write-protected by a daemon that attaches later\n"
		"\n"
		"  -j, --json           machine-readable output (one JSON object; watch:\n"
		"                       one object per line)\n"
		"  -h, --help           this text\n"
		"  --version            print the version and exit\n");
}

/* ----------------------------------------------------------- netlink */

static struct nla_policy region_policy[UMEM_ATTR_MAX + 1] = {
	[UMEM_ATTR_REGION_ID] = { .type = NLA_U32 },
	[UMEM_ATTR_REGION_NAME] = { .type = NLA_STRING },
	[UMEM_ATTR_SIZE] = { .type = NLA_U64 },
	[UMEM_ATTR_PAGE_SIZE] = { .type = NLA_U32 },
	[UMEM_ATTR_PAGES] = { .type = NLA_U64 },
	[UMEM_ATTR_PAGES_PRESENT] = { .type = NLA_U64 },
	[UMEM_ATTR_PAGES_MISSING] = { .type = NLA_U64 },
	[UMEM_ATTR_WAITING] = { .type = NLA_U32 },
	[UMEM_ATTR_REQUESTS_QUEUED] = { .type = NLA_U64 },
	[UMEM_ATTR_SERVER_ATTACHED] = { .type = NLA_U8 },
	[UMEM_ATTR_DAEMON_PID] = { .type = NLA_U32 },
	[UMEM_ATTR_CREATOR_PID] = { .type = NLA_U32 },
	[UMEM_ATTR_AGE_NS] = { .type = NLA_U64 },
	[UMEM_ATTR_STATS] = { .type = NLA_NESTED },
	[UMEM_ATTR_WAIT_HIST] = { .type = NLA_NESTED },
	[UMEM_ATTR_EVENT] = { .type = NLA_U32 },
};

static uint64_t get_u64(struct nlattr **tb, int a)
{
	return tb[a] ? nla_get_u64(tb[a]) : 0;
}

static uint32_t get_u32(struct nlattr **tb, int a)
{
	return tb[a] ? nla_get_u32(tb[a]) : 0;
}

static const char *get_name(struct nlattr **tb)
{
	return tb[UMEM_ATTR_REGION_NAME] ? nla_get_string(tb[UMEM_ATTR_REGION_NAME]) : "?";
}

/* Error ack: keep the errno and the extack message for the caller. */
static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)e - NLMSG_HDRLEN);
	struct ctx *c = arg;
	size_t off;

	(void)nla;
	c->err = e->error;
	c->done = true;
	c->extack[0] = '\0';
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return NL_STOP;
	off = NLMSG_HDRLEN + sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	if (off < nlh->nlmsg_len) {
		struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];

		if (!nla_parse(tb, NLMSGERR_ATTR_MAX,
			       (struct nlattr *)((char *)nlh + NLMSG_ALIGN(off)),
			       nlh->nlmsg_len - NLMSG_ALIGN(off), NULL) &&
		    tb[NLMSGERR_ATTR_MSG])
			snprintf(c->extack, sizeof(c->extack), "%s",
				 nla_get_string(tb[NLMSGERR_ATTR_MSG]));
	}
	return NL_STOP;
}

static int on_finish(struct nl_msg *msg, void *arg)
{
	struct ctx *c = arg;

	(void)msg;
	c->done = true;
	return NL_STOP;
}

static int on_ack(struct nl_msg *msg, void *arg)
{
	struct ctx *c = arg;

	(void)msg;
	c->err = 0;
	c->done = true;
	return NL_STOP;
}

static int connect_family(struct ctx *c)
{
	int one = 1;

	c->sock = nl_socket_alloc();
	if (!c->sock) {
		fprintf(stderr, "umemctl: out of memory\n");
		return -1;
	}
	if (genl_connect(c->sock)) {
		fprintf(stderr, "umemctl: cannot open a generic netlink socket\n");
		return -1;
	}
	/* Best effort: older kernels ignore it. */
	setsockopt(nl_socket_get_fd(c->sock), SOL_NETLINK, NETLINK_EXT_ACK,
		   &one, sizeof(one));
	c->family = genl_ctrl_resolve(c->sock, UMEM_GENL_NAME);
	if (c->family < 0) {
		fprintf(stderr,
			"umemctl: generic netlink family \"%s\" not found: is the umem module loaded?\n",
			UMEM_GENL_NAME);
		return -1;
	}
	return 0;
}

static void report_error(const char *what, const struct ctx *c)
{
	fprintf(stderr, "umemctl: %s: %s%s%s%s\n", what, strerror(-c->err),
		c->extack[0] ? " (" : "", c->extack, c->extack[0] ? ")" : "");
}

/*
 * Send @cmd (a dump when @dump) naming region @name (may be NULL) and feed
 * each reply to @valid; wait for the end of the dump or the ack.
 */
static int request(struct ctx *c, uint8_t cmd, bool dump, const char *name,
		   nl_recvmsg_msg_cb_t valid, void *arg, const char *what)
{
	struct nl_msg *msg;
	struct nl_cb *cb;
	int ret = -1;

	msg = nlmsg_alloc();
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!msg || !cb) {
		fprintf(stderr, "umemctl: out of memory\n");
		goto out;
	}
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, c->family, 0,
			 (dump ? NLM_F_DUMP : 0) | NLM_F_ACK, cmd,
			 UMEM_GENL_VERSION))
		goto nla_put_failure;
	if (name)
		NLA_PUT_STRING(msg, UMEM_ATTR_REGION_NAME, name);

	if (valid)
		nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, valid, arg);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_finish, c);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_ack, c);
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, c);

	c->err = 0;
	c->done = false;
	if (nl_send_auto(c->sock, msg) < 0) {
		fprintf(stderr, "umemctl: %s: cannot send the request\n", what);
		goto out;
	}
	while (!c->done) {
		int r = nl_recvmsgs(c->sock, cb);

		if (r < 0 && !c->done) {
			fprintf(stderr, "umemctl: %s: %s\n", what, nl_geterror(r));
			goto out;
		}
	}
	if (c->err) {
		report_error(what, c);
		goto out;
	}
	ret = 0;
	goto out;

nla_put_failure:
	fprintf(stderr, "umemctl: %s: cannot build the request\n", what);
out:
	nl_cb_put(cb);
	nlmsg_free(msg);
	return ret;
}

/* ------------------------------------------------------------ output */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGTP";
	int u = -1;
	double d = (double)v;

	while (d >= 1024 && u < 4) {
		d /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%.*f%c", d < 10 && d != (uint64_t)d ? 1 : 0,
			 d, units[u]);
	return buf;
}

static const char *duration(uint64_t ns, char *buf, size_t len)
{
	if (ns < 1000)
		snprintf(buf, len, "%" PRIu64 "ns", ns);
	else if (ns < 1000000)
		snprintf(buf, len, "%.0fus", ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, len, "%.0fms", ns / 1e6);
	else if (ns < 120ULL * 1000000000)
		snprintf(buf, len, "%.1fs", ns / 1e9);
	else
		snprintf(buf, len, "%.0fm", ns / 60e9);
	return buf;
}

static int parse_region(struct nl_msg *msg, struct nlattr **tb)
{
	if (genlmsg_parse(nlmsg_hdr(msg), 0, tb, UMEM_ATTR_MAX, region_policy) ||
	    !tb[UMEM_ATTR_REGION_ID] || !tb[UMEM_ATTR_REGION_NAME]) {
		fprintf(stderr, "umemctl: skipping a malformed message\n");
		return -1;
	}
	return 0;
}

static int list_one(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[UMEM_ATTR_MAX + 1];
	struct ctx *c = arg;
	char sz[32], age[32], dpid[16], cpid[16];
	bool attached;

	if (parse_region(msg, tb))
		return NL_SKIP;
	attached = tb[UMEM_ATTR_SERVER_ATTACHED] &&
		   nla_get_u8(tb[UMEM_ATTR_SERVER_ATTACHED]);
	if (json) {
		printf("%s\n    {\"id\": %u, \"name\": ", c->count ? "," : "",
		       get_u32(tb, UMEM_ATTR_REGION_ID));
		json_str(get_name(tb));
		printf(", \"size\": %" PRIu64 ", \"page_size\": %u, \"pages\": %" PRIu64
		       ", \"pages_present\": %" PRIu64 ", \"pages_missing\": %" PRIu64
		       ", \"waiting\": %u, \"requests_queued\": %" PRIu64
		       ", \"server_attached\": %s, \"daemon_pid\": %u"
		       ", \"creator_pid\": %u, \"age_ns\": %" PRIu64 "}",
		       get_u64(tb, UMEM_ATTR_SIZE), get_u32(tb, UMEM_ATTR_PAGE_SIZE),
		       get_u64(tb, UMEM_ATTR_PAGES),
		       get_u64(tb, UMEM_ATTR_PAGES_PRESENT),
		       get_u64(tb, UMEM_ATTR_PAGES_MISSING),
		       get_u32(tb, UMEM_ATTR_WAITING),
		       get_u64(tb, UMEM_ATTR_REQUESTS_QUEUED),
		       attached ? "true" : "false",
		       get_u32(tb, UMEM_ATTR_DAEMON_PID),
		       get_u32(tb, UMEM_ATTR_CREATOR_PID),
		       get_u64(tb, UMEM_ATTR_AGE_NS));
	} else {
		if (!c->count)
			printf("%-5s %-20s %7s %9s %9s %9s %5s %6s %-6s %7s %7s %6s\n",
			       "ID", "NAME", "SIZE", "PAGES", "PRESENT", "MISSING",
			       "WAIT", "QUEUED", "SERVER", "DAEMON", "CREATOR", "AGE");
		snprintf(dpid, sizeof(dpid), "%u", get_u32(tb, UMEM_ATTR_DAEMON_PID));
		snprintf(cpid, sizeof(cpid), "%u", get_u32(tb, UMEM_ATTR_CREATOR_PID));
		printf("%-5u %-20s %7s %9" PRIu64 " %9" PRIu64 " %9" PRIu64
		       " %5u %6" PRIu64 " %-6s %7s %7s %6s\n",
		       get_u32(tb, UMEM_ATTR_REGION_ID), get_name(tb),
		       human(get_u64(tb, UMEM_ATTR_SIZE), sz, sizeof(sz)),
		       get_u64(tb, UMEM_ATTR_PAGES),
		       get_u64(tb, UMEM_ATTR_PAGES_PRESENT),
		       get_u64(tb, UMEM_ATTR_PAGES_MISSING),
		       get_u32(tb, UMEM_ATTR_WAITING),
		       get_u64(tb, UMEM_ATTR_REQUESTS_QUEUED),
		       attached ? "yes" : "gone",
		       tb[UMEM_ATTR_DAEMON_PID] ? dpid : "-",
		       tb[UMEM_ATTR_CREATOR_PID] ? cpid : "-",
		       duration(get_u64(tb, UMEM_ATTR_AGE_NS), age, sizeof(age)));
	}
	c->count++;
	return NL_OK;
}

static int cmd_list(struct ctx *c)
{
	if (json)
		printf("{\"regions\": [");
	if (request(c, UMEM_CMD_REGION_GET, true, NULL, list_one, c, "list"))
		return 1;
	if (json)
		printf("%s]}\n", c->count ? "\n" : "");
	else if (!c->count)
		printf("no regions\n");
	return 0;
}

/*
 * The UMEM_STATS figures, in the kernel's order.  An @optional one is
 * shown only when the kernel sends it (modules before umem 0.5 do not
 * know the write-protection counters, before 0.6 mmaps); the others show
 * 0 when absent.
 */
static const struct {
	int attr;
	const char *name;
	bool optional;
} stat_names[] = {
	{ UMEM_STATS_ATTR_SIZE, "size" },
	{ UMEM_STATS_ATTR_PAGE_SIZE, "page_size" },
	{ UMEM_STATS_ATTR_PAGES, "pages" },
	{ UMEM_STATS_ATTR_PAGES_PRESENT, "pages_present" },
	{ UMEM_STATS_ATTR_REQUESTS, "requests" },
	{ UMEM_STATS_ATTR_REQUESTS_PENDING, "requests_pending" },
	{ UMEM_STATS_ATTR_FAULTS, "faults" },
	{ UMEM_STATS_ATTR_WAITING, "waiting" },
	{ UMEM_STATS_ATTR_WAIT_NS_TOTAL, "wait_ns_total" },
	{ UMEM_STATS_ATTR_WAIT_NS_MAX, "wait_ns_max" },
	{ UMEM_STATS_ATTR_INSTALLED, "installed" },
	{ UMEM_STATS_ATTR_DISCARDED, "discarded" },
	{ UMEM_STATS_ATTR_ALLOC_FAILED, "alloc_failed" },
	{ UMEM_STATS_ATTR_PAGES_PROTECTED, "pages_protected", true },
	{ UMEM_STATS_ATTR_WP_FAULTS, "wp_faults", true },
	{ UMEM_STATS_ATTR_MMAPS, "mmaps", true },
};

#define NSTATS (sizeof(stat_names) / sizeof(stat_names[0]))

static int stats_one(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[UMEM_ATTR_MAX + 1];
	struct nlattr *st[UMEM_STATS_ATTR_MAX + 1];
	uint64_t hist[UMEM_HIST_BUCKETS] = { 0 }, hmax = 0;
	struct ctx *c = arg;
	struct nlattr *a;
	unsigned int i, nb = 0, last = 0;
	int rem;

	if (parse_region(msg, tb))
		return NL_SKIP;
	memset(st, 0, sizeof(st));
	if (tb[UMEM_ATTR_STATS])
		nla_parse_nested(st, UMEM_STATS_ATTR_MAX, tb[UMEM_ATTR_STATS], NULL);
	if (tb[UMEM_ATTR_WAIT_HIST]) {
		nla_for_each_nested(a, tb[UMEM_ATTR_WAIT_HIST], rem) {
			if (nla_type(a) != UMEM_HIST_ATTR_BUCKET ||
			    nla_len(a) != 8 || nb >= UMEM_HIST_BUCKETS)
				continue;
			hist[nb] = nla_get_u64(a);
			if (hist[nb] > hmax)
				hmax = hist[nb];
			if (hist[nb])
				last = nb;
			nb++;
		}
	}
	c->count++;

	if (json) {
		printf("{\"id\": %u, \"name\": ", get_u32(tb, UMEM_ATTR_REGION_ID));
		json_str(get_name(tb));
		printf(", \"server_attached\": %s",
		       tb[UMEM_ATTR_SERVER_ATTACHED] &&
		       nla_get_u8(tb[UMEM_ATTR_SERVER_ATTACHED]) ? "true" : "false");
		printf(", \"stats\": {");
		for (i = 0; i < NSTATS; i++) {
			a = st[stat_names[i].attr];
			if (stat_names[i].optional && !a)
				continue;
			printf("%s\"%s\": %" PRIu64, i ? ", " : "", stat_names[i].name,
			       a && nla_len(a) == 8 ? nla_get_u64(a) : 0);
		}
		printf("}, \"wait_hist_shift\": %d, \"wait_hist\": [", UMEM_HIST_SHIFT);
		for (i = 0; i < nb; i++)
			printf("%s%" PRIu64, i ? ", " : "", hist[i]);
		printf("]}\n");
		return NL_OK;
	}

	printf("region %s (id %u), server %s\n", get_name(tb),
	       get_u32(tb, UMEM_ATTR_REGION_ID),
	       tb[UMEM_ATTR_SERVER_ATTACHED] &&
	       nla_get_u8(tb[UMEM_ATTR_SERVER_ATTACHED]) ? "attached" : "gone");
	for (i = 0; i < NSTATS; i++) {
		a = st[stat_names[i].attr];
		if (stat_names[i].optional && !a)
			continue;
		printf("  %-18s %" PRIu64 "\n", stat_names[i].name,
		       a && nla_len(a) == 8 ? nla_get_u64(a) : 0);
	}
	printf("wait time histogram:\n");
	if (!hmax) {
		printf("  (no waits yet)\n");
		return NL_OK;
	}
	for (i = 0; i <= last; i++) {
		char lo[32], hi[32];
		unsigned int w = (unsigned int)(hist[i] * 40 / hmax);

		duration(i ? 1ULL << (i + UMEM_HIST_SHIFT) : 0, lo, sizeof(lo));
		duration(1ULL << (i + UMEM_HIST_SHIFT + 1), hi, sizeof(hi));
		if (i == UMEM_HIST_BUCKETS - 1)
			snprintf(hi, sizeof(hi), "inf");
		printf("  %6s .. %-6s |%-40.*s| %" PRIu64 "\n", lo, hi,
		       hist[i] && !w ? 1 : (int)w,
		       "########################################", hist[i]);
	}
	return NL_OK;
}

static int cmd_stats(struct ctx *c, const char *name)
{
	return request(c, UMEM_CMD_STATS_GET, false, name, stats_one, c,
		       "stats") ? 1 : 0;
}

static int cmd_fail(struct ctx *c, const char *name)
{
	if (request(c, UMEM_CMD_FAIL, false, name, NULL, NULL, "fail"))
		return 1;
	if (json) {
		printf("{\"failed\": ");
		json_str(name);
		printf("}\n");
	} else {
		printf("region %s failed: waiting tasks get SIGBUS\n", name);
	}
	return 0;
}

static const char *event_name(uint32_t ev)
{
	switch (ev) {
	case UMEM_EVENT_CREATED: return "created";
	case UMEM_EVENT_COMPLETE: return "complete";
	case UMEM_EVENT_DETACHED: return "detached";
	case UMEM_EVENT_DESTROYED: return "destroyed";
	}
	return "unknown";
}

static int event_one(struct nl_msg *msg, void *arg)
{
	struct genlmsghdr *gh = nlmsg_data(nlmsg_hdr(msg));
	struct nlattr *tb[UMEM_ATTR_MAX + 1];
	struct ctx *c = arg;
	struct timespec ts;

	if (gh->cmd != UMEM_CMD_EVENT || parse_region(msg, tb))
		return NL_SKIP;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (json) {
		printf("{\"time\": %lld.%06ld, \"event\": \"%s\", \"id\": %u, \"name\": ",
		       (long long)ts.tv_sec, ts.tv_nsec / 1000,
		       event_name(get_u32(tb, UMEM_ATTR_EVENT)),
		       get_u32(tb, UMEM_ATTR_REGION_ID));
		json_str(get_name(tb));
		printf(", \"pages\": %" PRIu64 ", \"pages_missing\": %" PRIu64 "}\n",
		       get_u64(tb, UMEM_ATTR_PAGES),
		       get_u64(tb, UMEM_ATTR_PAGES_MISSING));
	} else {
		printf("%lld.%06ld %-9s %s (id %u) pages %" PRIu64 " missing %" PRIu64 "\n",
		       (long long)ts.tv_sec, ts.tv_nsec / 1000,
		       event_name(get_u32(tb, UMEM_ATTR_EVENT)), get_name(tb),
		       get_u32(tb, UMEM_ATTR_REGION_ID),
		       get_u64(tb, UMEM_ATTR_PAGES),
		       get_u64(tb, UMEM_ATTR_PAGES_MISSING));
	}
	fflush(stdout);
	c->count++;
	if (c->limit && c->count >= c->limit)
		c->done = true;
	return NL_OK;
}

static int cmd_watch(struct ctx *c, double timeout)
{
	struct timespec start, now;
	int grp, r;

	grp = genl_ctrl_resolve_grp(c->sock, UMEM_GENL_NAME, UMEM_GENL_MCGRP_EVENTS);
	if (grp < 0) {
		fprintf(stderr, "umemctl: watch: no \"%s\" group: %s\n",
			UMEM_GENL_MCGRP_EVENTS, nl_geterror(grp));
		return 1;
	}
	nl_socket_disable_seq_check(c->sock);
	nl_socket_modify_cb(c->sock, NL_CB_VALID, NL_CB_CUSTOM, event_one, c);
	r = nl_socket_add_membership(c->sock, grp);
	if (r < 0) {
		fprintf(stderr, "umemctl: watch: cannot join the group: %s%s\n",
			nl_geterror(r), r == -NLE_PERM ?
			" (events are for CAP_SYS_ADMIN: they name every region)" : "");
		return 1;
	}
	/* Tests wait for this line before making events. */
	fprintf(stderr, "umemctl: watching events\n");
	clock_gettime(CLOCK_MONOTONIC, &start);
	c->done = false;
	while (!c->done) {
		struct pollfd pfd = { .fd = nl_socket_get_fd(c->sock), .events = POLLIN };
		int ms = -1;

		if (timeout > 0) {
			double left;

			clock_gettime(CLOCK_MONOTONIC, &now);
			left = timeout - (now.tv_sec - start.tv_sec) -
			       (now.tv_nsec - start.tv_nsec) / 1e9;
			if (left <= 0)
				break;
			ms = (int)(left * 1000) + 1;
		}
		r = poll(&pfd, 1, ms);
		if (r < 0 && errno != EINTR) {
			perror("umemctl: watch: poll");
			return 1;
		}
		if (r > 0) {
			r = nl_recvmsgs_default(c->sock);
			if (r < 0 && r != -NLE_AGAIN) {
				fprintf(stderr, "umemctl: watch: %s\n", nl_geterror(r));
				return 1;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ create */

struct create_opts {
	const char *name;
	uint64_t size;
	uint32_t page_size;
	uint32_t flags;		/* UMEM_CREATE_* */
	uint32_t mode;		/* node mode, 0: the module's default */
	char **cmd;
};

static void create_usage(FILE *f)
{
	fprintf(f,
		"usage: umemctl [--json] create NAME --size SIZE --present [--wp]\n"
		"               [--page-size 4k|2m] [--mode OCTAL] -- CMD [ARGS...]\n"
		"\n"
		"  -s, --size SIZE      bytes, with an optional k, m or g (powers of 1024)\n"
		"  --present            every page starts present and reads as zeros\n"
		"                       (required: without a daemon a missing page SIGBUSes)\n"
		"  --wp                 pages can be write-protected (by a daemon that\n"
		"                       attaches to the node later; with 2m, whole 2 MiB pages)\n"
		"  --page-size 4k|2m    page size (default 4k)\n"
		"  --mode OCTAL         permission bits of /dev/umem-NAME (default 0600)\n");
}

/* SIZE: digits with an optional k, m or g suffix (powers of 1024). */
static int parse_size(const char *s, uint64_t *out)
{
	uint64_t v, mult = 1;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	if (*end) {
		switch (*end) {
		case 'k': case 'K': mult = 1ULL << 10; break;
		case 'm': case 'M': mult = 1ULL << 20; break;
		case 'g': case 'G': mult = 1ULL << 30; break;
		default: return -1;
		}
		if (end[1])
			return -1;
	}
	if (!v || v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

/* Region names as the module takes them: 1..31 of [A-Za-z0-9_.-]. */
static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	if (!n || n >= UMEM_NAME_MAX)
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* Options of create: argv[0] is "create", argv[1] NAME.  0, or 2 (usage). */
static int create_parse(int argc, char **argv, struct create_opts *o)
{
	enum { O_WP = 1000, O_PRESENT, O_PAGE_SIZE, O_MODE };
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "wp", no_argument, NULL, O_WP },
		{ "present", no_argument, NULL, O_PRESENT },
		{ "page-size", required_argument, NULL, O_PAGE_SIZE },
		{ "mode", required_argument, NULL, O_MODE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	memset(o, 0, sizeof(*o));
	o->page_size = UMEM_PAGE_SIZE_4K;
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		create_usage(stdout);
		exit(0);
	}
	if (argc < 2 || argv[1][0] == '-') {
		create_usage(stderr);
		return 2;
	}
	o->name = argv[1];
	/* Parse after NAME; "+": stop at CMD, which keeps its own options. */
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_size(optarg, &o->size)) {
				fprintf(stderr, "umemctl: create: bad --size '%s'\n", optarg);
				return 2;
			}
			break;
		case O_WP:
			o->flags |= UMEM_CREATE_WP;
			break;
		case O_PRESENT:
			o->flags |= UMEM_CREATE_PRESENT;
			break;
		case O_PAGE_SIZE:
			if (!strcmp(optarg, "4k")) {
				o->page_size = UMEM_PAGE_SIZE_4K;
			} else if (!strcmp(optarg, "2m")) {
				o->page_size = UMEM_PAGE_SIZE_2M;
			} else {
				fprintf(stderr, "umemctl: create: --page-size is 4k or 2m, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case O_MODE:
			errno = 0;
			o->mode = (uint32_t)strtoul(optarg, &end, 8);
			if (errno || *end || end == optarg || o->mode > 0777 || !o->mode) {
				fprintf(stderr, "umemctl: create: bad --mode '%s' (octal, 1 to 0777)\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			create_usage(stdout);
			exit(0);
		default:
			create_usage(stderr);
			return 2;
		}
	}
	o->cmd = argv + optind;
	if (!name_ok(o->name)) {
		fprintf(stderr, "umemctl: create: bad region name '%s' (1 to %d of A-Z a-z 0-9 _ . -)\n",
			o->name, UMEM_NAME_MAX - 1);
		return 2;
	}
	if (!o->size || o->size % o->page_size) {
		fprintf(stderr, "umemctl: create: --size must be a non-zero multiple of the page size (%u)\n",
			o->page_size);
		return 2;
	}
	if (!(o->flags & UMEM_CREATE_PRESENT)) {
		fprintf(stderr,
			"umemctl: create: --present is required: without a daemon every page of %s would stay missing and each touch would get SIGBUS\n",
			o->name);
		return 2;
	}
	if (!*o->cmd) {
		fprintf(stderr, "umemctl: create: no command to run (-- CMD [ARGS...])\n");
		return 2;
	}
	return 0;
}

/* The module features create needs: 0, or 1 after saying which is missing. */
static int create_check_features(int ctl, const struct create_opts *o)
{
	static const struct {
		uint64_t bit;
		const char *name, *since, *why;
	} need[] = {
		{ UMEM_F_NODE, "UMEM_F_NODE", "umem 0.1", "the region's node" },
		{ UMEM_F_CREATE_PRESENT, "UMEM_F_CREATE_PRESENT", "umem 0.5", "--present" },
		{ UMEM_F_WRITE_PROTECT, "UMEM_F_WRITE_PROTECT", "umem 0.5", "--wp" },
		{ UMEM_F_PAGE_2M, "UMEM_F_PAGE_2M", "umem 0.4", "--page-size 2m" },
		{ UMEM_F_NODE_MODE, "UMEM_F_NODE_MODE", "umem 0.3", "--mode" },
	};
	struct umem_api api = { .api = UMEM_API };
	bool wanted[] = {
		true, true, o->flags & UMEM_CREATE_WP, o->page_size == UMEM_PAGE_SIZE_2M,
		o->mode != 0,
	};
	int ret = 0;

	if (ioctl(ctl, UMEM_GET_API, &api)) {
		fprintf(stderr, "umemctl: create: UMEM_GET_API: %s\n", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (wanted[i] && !(api.features & need[i].bit)) {
			fprintf(stderr, "umemctl: create: %s needs %s, which this umem module lacks (%s)\n",
				need[i].why, need[i].name, need[i].since);
			ret = 1;
		}
	}
	return ret;
}

/*
 * UMEM_CREATE, then keep only a node fd: the server fd is closed at once,
 * so the region is detached, complete (born present) and usable by
 * whoever maps the node.  Returns the node fd, or -1 after a message.
 */
static int create_region(const struct create_opts *o, char *path, size_t len)
{
	struct umem_create c;
	int ctl, server, node = -1;

	ctl = open(UMEM_CTL_DEVICE, O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		fprintf(stderr, "umemctl: create: %s: %s%s\n", UMEM_CTL_DEVICE, strerror(errno),
			errno == ENOENT ? " (is the umem module loaded?)" : "");
		return -1;
	}
	if (create_check_features(ctl, o)) {
		close(ctl);
		return -1;
	}
	memset(&c, 0, sizeof(c));
	c.size = o->size;
	c.page_size = o->page_size;
	c.flags = o->flags;
	c.node_mode = o->mode;
	snprintf(c.name, sizeof(c.name), "%s", o->name);
	server = ioctl(ctl, UMEM_CREATE, &c);
	close(ctl);
	if (server < 0) {
		fprintf(stderr, "umemctl: create: region %s: %s\n", o->name, strerror(errno));
		return -1;
	}
	snprintf(path, len, "%s%s", UMEM_NODE_PREFIX, o->name);
	/* devtmpfs makes the node asynchronously: wait up to 2 s. */
	for (int i = 0; i < 200 && node < 0; i++) {
		node = open(path, O_RDWR | O_CLOEXEC);
		if (node < 0 && errno != ENOENT)
			break;
		if (node < 0)
			usleep(10000);
	}
	if (node < 0)
		fprintf(stderr, "umemctl: create: %s: %s\n", path, strerror(errno));
	close(server);
	return node;
}

/*
 * Run @cmd as a child; SIGINT and SIGTERM to us go to it.  Returns its
 * exit status, 128 + the signal that killed it, or 127 if it could not be
 * run (the shell's convention).
 */
static int run_child(char **cmd)
{
	sigset_t set, old;
	siginfo_t si;
	int status;
	pid_t pid;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "umemctl: create: fork: %s\n", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		return 1;
	}
	if (pid == 0) {
		/* What we forward must reach it, even if we were started
		 * with SIGINT ignored (a background job of a script). */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(cmd[0], cmd);
		fprintf(stderr, "umemctl: create: %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	for (;;) {
		if (sigwaitinfo(&set, &si) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "umemctl: create: sigwaitinfo: %s\n", strerror(errno));
			kill(pid, SIGTERM);
			waitpid(pid, &status, 0);
			break;
		}
		if (si.si_signo != SIGCHLD) {
			kill(pid, si.si_signo);
			continue;
		}
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static int cmd_create(int argc, char **argv)
{
	struct create_opts o;
	char path[64];
	int node, ret;

	ret = create_parse(argc, argv, &o);
	if (ret)
		return ret;
	node = create_region(&o, path, sizeof(path));
	if (node < 0)
		return 1;
	if (json) {
		printf("{\"name\": ");
		json_str(o.name);
		printf(", \"node\": ");
		json_str(path);
		printf(", \"size\": %" PRIu64 ", \"page_size\": %u, \"wp\": %s}\n", o.size,
		       o.page_size, o.flags & UMEM_CREATE_WP ? "true" : "false");
	} else {
		printf("%s\n", path);
	}
	ret = run_child(o.cmd);
	close(node);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "count", required_argument, NULL, 'c' },
		{ "timeout", required_argument, NULL, 't' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct ctx c = { 0 };
	double timeout = 0;
	const char *cmd;
	char *end;
	int o, ret, i;

	/*
	 * create takes its own options, and everything after "--" is the
	 * command's: parse it apart (after the global --json, if any).
	 */
	for (i = 1; i < argc && (!strcmp(argv[i], "-j") || !strcmp(argv[i], "--json")); i++)
		json = true;
	if (i < argc && !strcmp(argv[i], "create"))
		return cmd_create(argc - i, argv + i);
	json = false;
	while ((o = getopt_long(argc, argv, "jhc:t:", opts, NULL)) != -1) {
		switch (o) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			printf("umemctl (umem) %s\n", UMEM_VERSION);
			return 0;
		case 'c':
			errno = 0;
			c.limit = strtoul(optarg, &end, 10);
			if (errno || *end || !c.limit) {
				fprintf(stderr, "umemctl: bad --count '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			timeout = strtod(optarg, &end);
			if (*end || timeout <= 0) {
				fprintf(stderr, "umemctl: bad --timeout '%s'\n", optarg);
				return 2;
			}
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	if (!strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if ((!strcmp(cmd, "list") || !strcmp(cmd, "watch")) ? optind != argc :
	    (!strcmp(cmd, "stats") || !strcmp(cmd, "fail")) ? optind != argc - 1 :
	    true) {
		usage(stderr);
		return 2;
	}
	if ((c.limit || timeout) && strcmp(cmd, "watch")) {
		fprintf(stderr, "umemctl: --count and --timeout go with watch\n");
		return 2;
	}
	if (connect_family(&c)) {
		ret = 1;
		goto out;
	}
	if (!strcmp(cmd, "list"))
		ret = cmd_list(&c);
	else if (!strcmp(cmd, "stats"))
		ret = cmd_stats(&c, argv[optind]);
	else if (!strcmp(cmd, "fail"))
		ret = cmd_fail(&c, argv[optind]);
	else
		ret = cmd_watch(&c, timeout);
out:
	nl_socket_free(c.sock);
	return ret;
}
