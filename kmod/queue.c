// SPDX-License-Identifier: GPL-2.0
/*
 * umem request queue: the daemon's side of a fault.
 *
 * A request is born in the fault path (umem_request_page()) when a task
 * faults on a page that is neither present nor already requested, or
 * (umem_request_wp()) writes to a protected page not yet requested; it sits
 * on region->pending until a read() of the server fd copies it out as a
 * struct umem_request, and is then freed.  The page's "requested" bit stays
 * set until the page is installed, so later faults on it only wait.  If the
 * copy to the daemon fails, the records go back to the head of the queue
 * (unless the region detached meanwhile): a request of a live region is
 * never lost, or a waiter would wait forever.
 *
 * Memory: at most one request per page, allocated from a SLAB_ACCOUNT
 * cache and charged to the region creator's memory cgroup (like the
 * bitmaps and the pages), whoever faults.
 *
 * Readers: read() blocks (interruptibly; one reader woken per request)
 * until a request is there or the region is detached, and never returns 0
 * on a live region, however many readers race for the same request.  On a
 * detached region read() returns 0 (end of file) and poll() EPOLLHUP.
 *
 * Locking: region->lock guards the pending list, the bitmaps and the
 * counters; read_wq has its own lock and is taken after it is dropped.
 * Tracepoint: umem_request_queued (after region->lock is dropped).
 */
#include <linux/fs.h>
#include <linux/memcontrol.h>
#include <linux/pid.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "umem_internal.h"
#include "umem_trace.h"

/* How many records one pass of read() moves out under the lock. */
#define UMEM_READ_BATCH	32

static struct kmem_cache *umem_pending_cache;

static struct umem_pending *umem_pending_alloc(struct umem_region *r)
{
	struct mem_cgroup *old = set_active_memcg(r->memcg);
	struct umem_pending *req;

	/* Zeroed: a request freed unused must not put a garbage pid. */
	req = kmem_cache_zalloc(umem_pending_cache, GFP_KERNEL);
	set_active_memcg(old);
	return req;
}

static void umem_pending_free(struct umem_pending *req)
{
	if (!req)
		return;
	put_pid(req->pid);
	kmem_cache_free(umem_pending_cache, req);
}

/* Does page @index still need what a request of @flags asks for? */
static bool umem_request_wanted(struct umem_region *r, pgoff_t index,
				u32 flags)
{
	lockdep_assert_held(&r->lock);
	if (flags & UMEM_REQ_WP)
		return test_bit(index, r->present) &&
		       test_bit(index, r->protected);
	return !test_bit(index, r->present);
}

static void umem_count_fault(struct umem_region *r, u32 flags)
{
	lockdep_assert_held(&r->lock);
	if (flags & UMEM_REQ_WP)
		r->wp_faults++;
	else
		r->faults++;
}

/*
 * Queue a request of @flags for region page @index unless one exists, and
 * count the fault.  Returns 0 (queued now or before), -EEXIST when the
 * page no longer needs it (installed; for UMEM_REQ_WP: unprotected or
 * discarded) and the caller retries its fault instead of waiting, -ENXIO
 * when the region is detached, -ENOMEM when no request could be allocated
 * (nothing was queued: the caller must not wait).
 */
static int umem_queue_request(struct umem_region *r, pgoff_t index, u32 flags)
{
	struct umem_pending *req = NULL;
	unsigned long npending;
	int ret;

	for (;;) {
		spin_lock(&r->lock);
		if (!umem_request_wanted(r, index, flags)) {
			ret = -EEXIST;
			goto out_unlock;
		}
		if (r->state != UMEM_STATE_LIVE) {
			ret = -ENXIO;
			goto out_unlock;
		}
		if (test_bit(index, r->requested)) {
			umem_count_fault(r, flags);
			ret = 0;
			goto out_unlock;
		}
		if (req)
			break;
		/* Allocate outside the spinlock, then look again. */
		spin_unlock(&r->lock);
		req = umem_pending_alloc(r);
		if (!req)
			return -ENOMEM;
	}
	umem_count_fault(r, flags);
	req->index = index;
	req->flags = flags;
	req->pid = get_task_pid(current, PIDTYPE_PID);
	req->time_ns = ktime_get_ns();
	__set_bit(index, r->requested);
	list_add_tail(&req->node, &r->pending);
	npending = ++r->npending;
	r->requests++;
	spin_unlock(&r->lock);
	trace_umem_request_queued(r->id, index, npending);
	wake_up_interruptible_poll(&r->read_wq, EPOLLIN | EPOLLRDNORM);
	return 0;

out_unlock:
	spin_unlock(&r->lock);
	umem_pending_free(req);
	return ret;
}

/* A fault on the missing page @index; see umem_queue_request(). */
int umem_request_page(struct umem_region *r, pgoff_t index, u32 flags)
{
	return umem_queue_request(r, index, flags & UMEM_REQ_WRITE);
}

/* A write to the protected page @index; see umem_queue_request(). */
int umem_request_wp(struct umem_region *r, pgoff_t index)
{
	return umem_queue_request(r, index, UMEM_REQ_WP | UMEM_REQ_WRITE);
}

/*
 * Drop the UMEM_REQ_WP requests for [start, end) that the daemon has not
 * read yet: their pages were unprotected or discarded.  The caller has
 * cleared their requested bits under region->lock.
 */
void umem_queue_cancel_wp(struct umem_region *r, pgoff_t start, pgoff_t end)
{
	struct umem_pending *req, *tmp;
	LIST_HEAD(list);

	spin_lock(&r->lock);
	list_for_each_entry_safe(req, tmp, &r->pending, node) {
		if (!(req->flags & UMEM_REQ_WP) ||
		    req->index < start || req->index >= end)
			continue;
		list_move(&req->node, &list);
		r->npending--;
	}
	spin_unlock(&r->lock);
	list_for_each_entry_safe(req, tmp, &list, node)
		umem_pending_free(req);
}

/* Drop every queued request (the region detached). */
void umem_queue_flush(struct umem_region *r)
{
	struct umem_pending *req, *tmp;
	LIST_HEAD(list);

	spin_lock(&r->lock);
	list_splice_init(&r->pending, &list);
	r->npending = 0;
	spin_unlock(&r->lock);
	list_for_each_entry_safe(req, tmp, &list, node)
		umem_pending_free(req);
}

/* What a reader waits for: a request, or the end. */
static bool umem_readable(struct umem_region *r)
{
	return READ_ONCE(r->npending) != 0 || !umem_region_live(r);
}

/*
 * Move up to @max requests off the queue into @out.  Returns how many, or
 * -ENXIO when the region is detached and nothing is queued.
 */
static int umem_dequeue(struct umem_region *r, struct umem_pending **out,
			unsigned int max)
{
	unsigned int n = 0;

	spin_lock(&r->lock);
	while (n < max && !list_empty(&r->pending)) {
		out[n] = list_first_entry(&r->pending, struct umem_pending, node);
		list_del(&out[n]->node);
		n++;
	}
	r->npending -= n;
	if (!n && r->state != UMEM_STATE_LIVE) {
		spin_unlock(&r->lock);
		return -ENXIO;
	}
	spin_unlock(&r->lock);
	return n;
}

/*
 * Put requests [from, n) back at the head of the queue, in order; drop
 * them instead if the region detached meanwhile (its queue was flushed
 * and nobody will read it again).
 */
static void umem_requeue(struct umem_region *r, struct umem_pending **reqs,
			 unsigned int from, unsigned int n)
{
	unsigned int i;
	bool live;

	spin_lock(&r->lock);
	live = r->state == UMEM_STATE_LIVE;
	if (live) {
		for (i = n; i > from; i--)
			list_add(&reqs[i - 1]->node, &r->pending);
		r->npending += n - from;
	}
	spin_unlock(&r->lock);
	if (!live) {
		for (i = from; i < n; i++)
			umem_pending_free(reqs[i]);
		return;
	}
	/* Someone else may read them now. */
	wake_up_interruptible_poll(&r->read_wq, EPOLLIN | EPOLLRDNORM);
}

static void umem_fill_record(struct umem_region *r, struct umem_request *rec,
			     struct umem_pending *req)
{
	memset(rec, 0, sizeof(*rec));
	rec->offset = (u64)req->index << r->shift;
	rec->flags = req->flags;
	rec->tid = pid_vnr(req->pid);
	rec->time_ns = req->time_ns;
}

/*
 * Wait for the first request and take up to @max.  Returns how many,
 * 0 at end of file (detached), or -EAGAIN / -ERESTARTSYS.
 */
static int umem_read_first(struct file *file, struct umem_region *r,
			   struct umem_pending **reqs, unsigned int max)
{
	int n, err;

	for (;;) {
		n = umem_dequeue(r, reqs, max);
		if (n == -ENXIO)
			return 0;
		if (n)
			return n;
		/* Another reader took it, or nothing yet. */
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		err = wait_event_interruptible_exclusive(r->read_wq,
							 umem_readable(r));
		if (err)
			return err;
	}
}

/*
 * read() of the server fd: whole struct umem_request records, as many as
 * fit and are queued.  Blocks only until the first is there.
 */
ssize_t umem_server_read(struct file *file, char __user *buf, size_t count,
			 loff_t *ppos)
{
	struct umem_region *r = file->private_data;
	struct umem_pending *reqs[UMEM_READ_BATCH];
	struct umem_request rec;
	size_t done = 0;
	unsigned int i;
	int n;

	BUILD_BUG_ON(sizeof(struct umem_request) != 32);
	if (count < sizeof(rec))
		return -EINVAL;
	umem_region_note_daemon(r);

	n = umem_read_first(file, r, reqs,
			    min_t(size_t, UMEM_READ_BATCH, count / sizeof(rec)));
	while (n > 0) {
		for (i = 0; i < n; i++) {
			umem_fill_record(r, &rec, reqs[i]);
			if (copy_to_user(buf + done, &rec, sizeof(rec))) {
				umem_requeue(r, reqs, i, n);
				return done ? done : -EFAULT;
			}
			done += sizeof(rec);
			umem_pending_free(reqs[i]);
		}
		if (count - done < sizeof(rec))
			break;
		n = umem_dequeue(r, reqs, min_t(size_t, UMEM_READ_BATCH,
						(count - done) / sizeof(rec)));
	}
	if (!done && n < 0)
		return n;
	return done;
}

__poll_t umem_server_poll(struct file *file, struct poll_table_struct *wait)
{
	struct umem_region *r = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &r->read_wq, wait);
	if (READ_ONCE(r->npending))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (!umem_region_live(r))
		mask |= EPOLLHUP;
	return mask;
}

int umem_queue_init(void)
{
	umem_pending_cache = KMEM_CACHE(umem_pending, SLAB_ACCOUNT);
	return umem_pending_cache ? 0 : -ENOMEM;
}

void umem_queue_exit(void)
{
	kmem_cache_destroy(umem_pending_cache);
}
