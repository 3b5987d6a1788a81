// SPDX-License-Identifier: GPL-2.0
/*
 * umemctl: look at umem regions through the "umem" generic netlink family,
 * watch their events and fail a region whose daemon is gone.
 *
 *   umemctl [--json] list
 *   umemctl [--json] stats NAME
 *   umemctl [--json] watch [--count N] [--timeout S]
 *   umemctl [--json] fail NAME
 *
 * See Documentation/umemctl.8.  Exit status: 0 ok, 1 error, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static const struct {
	int attr;
	const char *name;
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
	int o, ret;

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
