// SPDX-License-Identifier: GPL-2.0
/*
 * umem request queue: the daemon's side of a fault.
 *
 * A request is born in the fault path (umem_request_page()) when a task
 * faults on a page that is neither present nor already requested; it sits
 * on region->pending until a read() of the server fd copies it out as a
 * struct umem_request, and is then freed.  The page's "requested" bit stays
 * set until the page is installed, so later faults on it only wait.  If the
 * copy to the daemon fails, the records go back to the head of the queue:
 * a request is never lost, or a waiter would wait forever.
 *
 * Locking: region->lock guards the pending list, the bitmaps and the
 * counters; read_wq has its own lock and is taken after it is dropped.
 * Tracepoint: umem_request_queued (after region->lock is dropped).
 */
#include <linux/fs.h>
#include <linux/pid.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "umem_internal.h"
#include "umem_trace.h"

/* How many records one pass of read() moves out under the lock. */
#define UMEM_READ_BATCH	32

static struct kmem_cache *umem_pending_cache;

struct umem_pending *umem_pending_alloc(void)
{
	return kmem_cache_alloc(umem_pending_cache, GFP_KERNEL);
}

void umem_pending_free(struct umem_pending *req)
{
	if (!req)
		return;
	put_pid(req->pid);
	kmem_cache_free(umem_pending_cache, req);
}

/*
 * Note a fault on the missing page @pgoff and queue a request for it unless
 * one already exists; @req (may be NULL if the page looked requested) is
 * consumed either way.  Returns false when the page turned present, so the
 * caller maps it instead of waiting.
 */
bool umem_request_page(struct umem_region *r, pgoff_t pgoff, u32 flags,
		       struct umem_pending *req)
{
	unsigned long npending = 0;
	bool queued = false;

	spin_lock(&r->lock);
	if (test_bit(pgoff, r->present)) {
		spin_unlock(&r->lock);
		umem_pending_free(req);
		return false;
	}
	r->faults++;
	if (r->state == UMEM_STATE_LIVE && !test_bit(pgoff, r->requested)) {
		if (!req) {
			/* Raced with a discard's re-request window: rare. */
			spin_unlock(&r->lock);
			req = umem_pending_alloc();
			if (!req)
				return true;
			return umem_request_page(r, pgoff, flags, req);
		}
		req->pgoff = pgoff;
		req->flags = flags;
		req->pid = get_task_pid(current, PIDTYPE_PID);
		req->time_ns = ktime_get_ns();
		__set_bit(pgoff, r->requested);
		list_add_tail(&req->node, &r->pending);
		npending = ++r->npending;
		r->requests++;
		req = NULL;
		queued = true;
	}
	spin_unlock(&r->lock);
	umem_pending_free(req);
	if (queued) {
		trace_umem_request_queued(r->id, pgoff, npending);
		wake_up_interruptible_poll(&r->read_wq, EPOLLIN | EPOLLRDNORM);
	}
	return true;
}

/* Drop every queued request (the daemon is gone). */
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

static bool umem_has_pending(struct umem_region *r)
{
	return READ_ONCE(r->npending) != 0;
}

/* Move up to @max requests off the queue into @out. */
static unsigned int umem_dequeue(struct umem_region *r,
				 struct umem_pending **out, unsigned int max)
{
	unsigned int n = 0;

	spin_lock(&r->lock);
	while (n < max && !list_empty(&r->pending)) {
		out[n] = list_first_entry(&r->pending, struct umem_pending, node);
		list_del(&out[n]->node);
		n++;
	}
	r->npending -= n;
	spin_unlock(&r->lock);
	return n;
}

/* Put requests [from, n) back at the head of the queue, in order. */
static void umem_requeue(struct umem_region *r, struct umem_pending **reqs,
			 unsigned int from, unsigned int n)
{
	unsigned int i;

	spin_lock(&r->lock);
	for (i = n; i > from; i--)
		list_add(&reqs[i - 1]->node, &r->pending);
	r->npending += n - from;
	spin_unlock(&r->lock);
}

static void umem_fill_record(struct umem_request *rec, struct umem_pending *req)
{
	memset(rec, 0, sizeof(*rec));
	rec->offset = (u64)req->pgoff << PAGE_SHIFT;
	rec->flags = req->flags;
	rec->tid = pid_vnr(req->pid);
	rec->time_ns = req->time_ns;
}

/*
 * read() of the server fd: whole struct umem_request records, as many as
 * fit and are queued.  Blocks (interruptibly, one reader woken per
 * request) only until the first is there.
 */
ssize_t umem_server_read(struct file *file, char __user *buf, size_t count,
			 loff_t *ppos)
{
	struct umem_region *r = file->private_data;
	struct umem_pending *reqs[UMEM_READ_BATCH];
	struct umem_request rec;
	size_t done = 0;
	unsigned int i, n;
	int err;

	BUILD_BUG_ON(sizeof(struct umem_request) != 32);
	if (count < sizeof(rec))
		return -EINVAL;
	umem_region_note_daemon(r);

	while (!umem_has_pending(r)) {
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		err = wait_event_interruptible_exclusive(r->read_wq,
							 umem_has_pending(r));
		if (err)
			return err;
	}

	while (count - done >= sizeof(rec)) {
		n = umem_dequeue(r, reqs, min_t(size_t, UMEM_READ_BATCH,
						(count - done) / sizeof(rec)));
		if (!n)
			break;
		for (i = 0; i < n; i++) {
			umem_fill_record(&rec, reqs[i]);
			if (copy_to_user(buf + done, &rec, sizeof(rec))) {
				umem_requeue(r, reqs, i, n);
				/* Someone else may read them now. */
				wake_up_interruptible_poll(&r->read_wq,
							   EPOLLIN | EPOLLRDNORM);
				return done ? done : -EFAULT;
			}
			done += sizeof(rec);
			umem_pending_free(reqs[i]);
		}
	}
	return done;
}

__poll_t umem_server_poll(struct file *file, struct poll_table_struct *wait)
{
	struct umem_region *r = file->private_data;

	poll_wait(file, &r->read_wq, wait);
	return umem_has_pending(r) ? EPOLLIN | EPOLLRDNORM : 0;
}

int umem_queue_init(void)
{
	umem_pending_cache = KMEM_CACHE(umem_pending, 0);
	return umem_pending_cache ? 0 : -ENOMEM;
}

void umem_queue_exit(void)
{
	kmem_cache_destroy(umem_pending_cache);
}
