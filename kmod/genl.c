// SPDX-License-Identifier: GPL-2.0
/*
 * umem generic netlink family "umem": observability and one admin command.
 *
 *   UMEM_CMD_REGION_GET  dump every region, or get one (by name or id)
 *   UMEM_CMD_STATS_GET   one region's UMEM_STATS figures + wait histogram
 *   UMEM_CMD_FAIL        detach a region whose daemon is gone (admin)
 *   "events" group       UMEM_CMD_EVENT: created, complete, detached with
 *                        pages missing, destroyed
 * The attribute layout is drawn in uapi/linux/umem.h.
 *
 * Permission policy: a region is visible (listed in a dump, answered by
 * REGION_GET and STATS_GET) to whoever the owner, group and mode it was
 * created with let read its node (umem_region_may_read(): the
 * generic_permission() rules on values fixed at creation; CAP_SYS_ADMIN
 * sees everything).  No path is looked up: these handlers run under
 * genetlink's cb_lock, which every family's registration needs, so a
 * lookup that stalls (a FUSE mount over /dev in a user namespace) must
 * never happen here.  GET of a region the caller may not read is
 * -EACCES.  The events group is CAP_SYS_ADMIN only
 * (GENL_MCAST_CAP_SYS_ADMIN): a multicast cannot be filtered per
 * listener, and an event names regions a listener may not be allowed to
 * see.  UMEM_CMD_FAIL changes state: it needs CAP_SYS_ADMIN
 * (netlink_capable(): of the opener of the socket too), as NBD's
 * configuring commands do, or the region's owner (the sender's fsuid and
 * the socket opener's fsuid are the region's uid).
 *
 * Namespaces: regions and their nodes are global, so the family is not
 * netnsok: it answers in the initial network namespace only, and events go
 * to that namespace.  Pids are reported in the caller's pid namespace (0,
 * and the attribute left out, when not visible there).
 *
 * Validation is strict (no GENL_DONT_VALIDATE_*; resv_start_op left at 0 so
 * that every command checks the reserved header field and requires a
 * policy): unknown attributes, output-only attributes and wrong types or
 * lengths are refused with an extack message.
 *
 * Locking: a region is read under umem_mutex through umem_region_for_each()
 * and umem_region_find() (region.c), without taking a reference, then
 * region->lock for a consistent snapshot of its counters; the permission
 * check needs no lock of its own.  Events are built
 * and multicast from process context with no spinlock held (GFP_KERNEL):
 * from UMEM_CREATE, the ioctl dispatch after an install, the server fd's
 * release (or UMEM_CMD_FAIL) and the final put.  The family is registered
 * before /dev/umem exists and unregistered first on exit; every region
 * pins the module, so no event can be sent once it is gone.
 */
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/cred.h>
#include <linux/net.h>
#include <net/sock.h>
#include <linux/module.h>
#include <linux/pid.h>
#include <linux/sched.h>
#include <linux/timekeeping.h>
#include <net/genetlink.h>

#include "umem_internal.h"

enum umem_genl_mcgrp {
	UMEM_MCGRP_EVENTS,
};

static const struct genl_multicast_group umem_genl_mcgrps[] = {
	[UMEM_MCGRP_EVENTS] = { .name = UMEM_GENL_MCGRP_EVENTS,
				.flags = GENL_MCAST_CAP_SYS_ADMIN },
};

/*
 * Requests carry only a region name or id.  Every other attribute is
 * output-only: left NLA_UNSPEC, which strict validation refuses on input.
 */
static const struct nla_policy umem_genl_policy[UMEM_ATTR_MAX + 1] = {
	[UMEM_ATTR_REGION_ID] = { .type = NLA_U32 },
	[UMEM_ATTR_REGION_NAME] = { .type = NLA_NUL_STRING,
				    .len = UMEM_NAME_MAX - 1 },
};

static struct genl_family umem_genl_family;

/* The "region" attributes (see uapi/linux/umem.h). */
static int umem_put_region(struct sk_buff *skb, struct umem_region *r)
{
	unsigned long npresent, npending;
	pid_t daemon = 0, creator;
	bool live;

	spin_lock(&r->lock);
	npresent = r->npresent;
	npending = r->npending;
	live = r->state == UMEM_STATE_LIVE;
	if (live && r->daemon)
		daemon = pid_vnr(r->daemon);
	spin_unlock(&r->lock);
	creator = pid_vnr(r->creator);

	if (nla_put_u32(skb, UMEM_ATTR_REGION_ID, r->id) ||
	    nla_put_string(skb, UMEM_ATTR_REGION_NAME, r->name) ||
	    nla_put_u64_64bit(skb, UMEM_ATTR_SIZE, r->size, UMEM_ATTR_PAD) ||
	    nla_put_u32(skb, UMEM_ATTR_PAGE_SIZE, umem_page_size(r)) ||
	    nla_put_u64_64bit(skb, UMEM_ATTR_PAGES, r->npages, UMEM_ATTR_PAD) ||
	    nla_put_u64_64bit(skb, UMEM_ATTR_PAGES_PRESENT, npresent,
			      UMEM_ATTR_PAD) ||
	    nla_put_u64_64bit(skb, UMEM_ATTR_PAGES_MISSING,
			      r->npages - npresent, UMEM_ATTR_PAD) ||
	    nla_put_u32(skb, UMEM_ATTR_WAITING, atomic_read(&r->waiting)) ||
	    nla_put_u64_64bit(skb, UMEM_ATTR_REQUESTS_QUEUED, npending,
			      UMEM_ATTR_PAD) ||
	    nla_put_u8(skb, UMEM_ATTR_SERVER_ATTACHED, live) ||
	    (daemon && nla_put_u32(skb, UMEM_ATTR_DAEMON_PID, daemon)) ||
	    (creator && nla_put_u32(skb, UMEM_ATTR_CREATOR_PID, creator)) ||
	    nla_put_u64_64bit(skb, UMEM_ATTR_AGE_NS,
			      ktime_get_ns() - r->created_ns, UMEM_ATTR_PAD))
		return -EMSGSIZE;
	return 0;
}

static int umem_put_stats(struct sk_buff *skb, struct umem_region *r)
{
	static const struct {
		u16 type;
		u16 offset;
	} fields[] = {
#define F(attr, field) { UMEM_STATS_ATTR_##attr, offsetof(struct umem_stats, field) }
		F(SIZE, size),
		F(PAGE_SIZE, page_size),
		F(PAGES, pages),
		F(PAGES_PRESENT, pages_present),
		F(REQUESTS, requests),
		F(REQUESTS_PENDING, requests_pending),
		F(FAULTS, faults),
		F(WAITING, waiting),
		F(WAIT_NS_TOTAL, wait_ns_total),
		F(WAIT_NS_MAX, wait_ns_max),
		F(INSTALLED, installed),
		F(DISCARDED, discarded),
		F(ALLOC_FAILED, alloc_failed),
		F(PAGES_PROTECTED, pages_protected),
		F(WP_FAULTS, wp_faults),
		F(MMAPS, mmaps),
#undef F
	};
	u64 hist[UMEM_HIST_BUCKETS];
	struct umem_stats st;
	struct nlattr *nest;
	unsigned int i;

	umem_get_stats(r, &st, hist);

	nest = nla_nest_start(skb, UMEM_ATTR_STATS);
	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < ARRAY_SIZE(fields); i++) {
		u64 v = *(u64 *)((char *)&st + fields[i].offset);

		if (nla_put_u64_64bit(skb, fields[i].type, v,
				      UMEM_STATS_ATTR_PAD))
			goto cancel;
	}
	nla_nest_end(skb, nest);

	nest = nla_nest_start(skb, UMEM_ATTR_WAIT_HIST);
	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < UMEM_HIST_BUCKETS; i++)
		if (nla_put_u64_64bit(skb, UMEM_HIST_ATTR_BUCKET, hist[i],
				      UMEM_HIST_ATTR_PAD))
			goto cancel;
	nla_nest_end(skb, nest);
	return 0;

cancel:
	nla_nest_cancel(skb, nest);
	return -EMSGSIZE;
}

/* ---------------------------------------------------------------- dump */

struct umem_dump_ctx {
	struct sk_buff *skb;
	struct netlink_callback *cb;
};

/* Under umem_mutex; regions the caller may not read are left out. */
static int umem_dump_one(struct umem_region *r, void *arg)
{
	struct umem_dump_ctx *ctx = arg;
	void *hdr;

	if (!umem_region_may_read(r))
		return 0;
	hdr = genlmsg_put(ctx->skb, NETLINK_CB(ctx->cb->skb).portid,
			  ctx->cb->nlh->nlmsg_seq, &umem_genl_family,
			  NLM_F_MULTI, UMEM_CMD_REGION_GET);
	if (!hdr)
		return -EMSGSIZE;
	if (umem_put_region(ctx->skb, r)) {
		genlmsg_cancel(ctx->skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(ctx->skb, hdr);
	return 0;
}

/*
 * cb->args[0]: the region id to resume at.  A region that does not fit
 * stops the walk and is the first of the next skb.
 */
static int umem_nl_region_dumpit(struct sk_buff *skb,
				 struct netlink_callback *cb)
{
	struct umem_dump_ctx ctx = { .skb = skb, .cb = cb };
	int pos = cb->args[0];
	int err;

	err = umem_region_for_each(&pos, umem_dump_one, &ctx);
	cb->args[0] = pos;
	if (err && !skb->len)
		return err;
	return skb->len;
}

/* ------------------------------------------------------- do commands */

/* The region a request names: UMEM_ATTR_REGION_NAME or _ID, not both. */
static int umem_nl_target(struct genl_info *info, const char **name, int *id,
			  struct nlattr **which)
{
	struct nlattr *na = info->attrs[UMEM_ATTR_REGION_NAME];
	struct nlattr *ia = info->attrs[UMEM_ATTR_REGION_ID];

	*name = NULL;
	*id = -1;
	if (na && ia) {
		NL_SET_ERR_MSG_ATTR(info->extack, ia,
				    "give a region name or an id, not both");
		return -EINVAL;
	}
	if (na) {
		*name = nla_data(na);
		*which = na;
		return 0;
	}
	if (GENL_REQ_ATTR_CHECK(info, UMEM_ATTR_REGION_ID)) {
		NL_SET_ERR_MSG(info->extack, "a region name or id is required");
		return -EINVAL;
	}
	*which = ia;
	if (nla_get_u32(ia) >= UMEM_MAX_MINORS) {
		NL_SET_ERR_MSG_ATTR(info->extack, ia, "region id out of range");
		return -ERANGE;
	}
	*id = nla_get_u32(ia);
	return 0;
}

struct umem_reply_ctx {
	struct sk_buff *skb;
	bool stats;
};

static int umem_reply_one(struct umem_region *r, void *arg)
{
	struct umem_reply_ctx *ctx = arg;
	int err;

	if (!umem_region_may_read(r))
		return -EACCES;
	err = umem_put_region(ctx->skb, r);
	if (!err && ctx->stats)
		err = umem_put_stats(ctx->skb, r);
	return err;
}

static int umem_nl_reply(struct genl_info *info, bool stats)
{
	struct umem_reply_ctx ctx = { .stats = stats };
	struct nlattr *which;
	const char *name;
	void *hdr;
	int id, err;

	err = umem_nl_target(info, &name, &id, &which);
	if (err)
		return err;

	ctx.skb = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!ctx.skb)
		return -ENOMEM;
	hdr = genlmsg_put_reply(ctx.skb, info, &umem_genl_family, 0,
				info->genlhdr->cmd);
	if (!hdr) {
		err = -EMSGSIZE;
		goto err_free;
	}
	err = umem_region_find(name, id, umem_reply_one, &ctx);
	if (err == -ENOENT)
		NL_SET_ERR_MSG_ATTR(info->extack, which, "no such region");
	else if (err == -EACCES)
		NL_SET_ERR_MSG_ATTR(info->extack, which,
				    "no read permission on the region (its owner, group and mode)");
	if (err)
		goto err_free;
	genlmsg_end(ctx.skb, hdr);
	return genlmsg_reply(ctx.skb, info);

err_free:
	nlmsg_free(ctx.skb);
	return err;
}

static int umem_nl_region_doit(struct sk_buff *skb, struct genl_info *info)
{
	return umem_nl_reply(info, false);
}

static int umem_nl_stats_doit(struct sk_buff *skb, struct genl_info *info)
{
	return umem_nl_reply(info, true);
}

struct umem_fail_ctx {
	struct sk_buff *skb;
	bool admin;
};

/* Is the socket's opener, as well as the sender, the region's owner? */
static bool umem_nl_owner(struct sk_buff *skb, const struct umem_region *r)
{
	const struct socket *sock = NETLINK_CB(skb).sk->sk_socket;

	return umem_region_is_owner(r) && sock && sock->file &&
	       uid_eq(sock->file->f_cred->fsuid, r->uid);
}

/*
 * Under umem_mutex: the region cannot go away.  Detaching sleeps (the
 * genl event), which the mutex allows.
 */
static int umem_fail_one(struct umem_region *r, void *arg)
{
	struct umem_fail_ctx *ctx = arg;

	if (!ctx->admin && !umem_nl_owner(ctx->skb, r))
		return -EPERM;
	if (READ_ONCE(r->state) != UMEM_STATE_LIVE)
		return -EALREADY;
	umem_region_detach(r);
	return 0;
}

static int umem_nl_fail_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct umem_fail_ctx ctx = {
		.skb = skb,
		.admin = netlink_capable(skb, CAP_SYS_ADMIN),
	};
	struct nlattr *which;
	const char *name;
	int id, err;

	err = umem_nl_target(info, &name, &id, &which);
	if (err)
		return err;
	err = umem_region_find(name, id, umem_fail_one, &ctx);
	if (err == -ENOENT)
		NL_SET_ERR_MSG_ATTR(info->extack, which, "no such region");
	else if (err == -EPERM)
		NL_SET_ERR_MSG(info->extack,
			       "UMEM_CMD_FAIL needs CAP_SYS_ADMIN or the region's owner");
	else if (err == -EALREADY)
		NL_SET_ERR_MSG_ATTR(info->extack, which,
				    "region already detached");
	return err;
}

static const struct genl_ops umem_genl_ops[] = {
	{
		.cmd = UMEM_CMD_REGION_GET,
		.doit = umem_nl_region_doit,
		.dumpit = umem_nl_region_dumpit,
	},
	{
		.cmd = UMEM_CMD_STATS_GET,
		.doit = umem_nl_stats_doit,
	},
	{
		.cmd = UMEM_CMD_FAIL,
		.doit = umem_nl_fail_doit,
	},
};

static struct genl_family umem_genl_family = {
	.name = UMEM_GENL_NAME,
	.version = UMEM_GENL_VERSION,
	.maxattr = UMEM_ATTR_MAX,
	.policy = umem_genl_policy,
	.netnsok = false,
	.parallel_ops = true,
	.module = THIS_MODULE,
	.ops = umem_genl_ops,
	.n_ops = ARRAY_SIZE(umem_genl_ops),
	.mcgrps = umem_genl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(umem_genl_mcgrps),
};

/* ------------------------------------------------------------ events */

/* Process context, no spinlock held. */
void umem_genl_event(struct umem_region *r, enum umem_event event)
{
	unsigned long npresent;
	struct sk_buff *skb;
	void *hdr;

	might_sleep();
	if (!genl_has_listeners(&umem_genl_family, &init_net,
				UMEM_MCGRP_EVENTS))
		return;
	skb = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &umem_genl_family, 0, UMEM_CMD_EVENT);
	if (!hdr)
		goto err_free;
	spin_lock(&r->lock);
	npresent = r->npresent;
	spin_unlock(&r->lock);
	if (nla_put_u32(skb, UMEM_ATTR_EVENT, event) ||
	    nla_put_u32(skb, UMEM_ATTR_REGION_ID, r->id) ||
	    nla_put_string(skb, UMEM_ATTR_REGION_NAME, r->name) ||
	    nla_put_u64_64bit(skb, UMEM_ATTR_PAGES, r->npages, UMEM_ATTR_PAD) ||
	    nla_put_u64_64bit(skb, UMEM_ATTR_PAGES_MISSING,
			      r->npages - npresent, UMEM_ATTR_PAD))
		goto err_free;
	genlmsg_end(skb, hdr);
	genlmsg_multicast(&umem_genl_family, skb, 0, UMEM_MCGRP_EVENTS,
			  GFP_KERNEL);
	return;

err_free:
	nlmsg_free(skb);
}

/*
 * After an install: report "complete" once when the last page became
 * present (again, after a discard made pages missing).
 */
void umem_genl_check_complete(struct umem_region *r)
{
	bool send = false;

	if (!READ_ONCE(r->complete))
		return;
	spin_lock(&r->lock);
	if (r->npresent == r->npages && !r->complete_notified) {
		r->complete_notified = true;
		send = true;
	}
	spin_unlock(&r->lock);
	if (send)
		umem_genl_event(r, UMEM_EVENT_COMPLETE);
}

int umem_genl_init(void)
{
	return genl_register_family(&umem_genl_family);
}

/* First thing on module exit: no request runs once this returns. */
void umem_genl_exit(void)
{
	genl_unregister_family(&umem_genl_family);
}

MODULE_ALIAS_GENL_FAMILY(UMEM_GENL_NAME);
