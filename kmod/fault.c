// SPDX-License-Identifier: GPL-2.0
/*
 * umem fault path.
 *
 * A fault on a present page maps the shmem page.  A fault on a missing page
 * queues one request for it (however many tasks fault on it) and sleeps,
 * killable, until the page is installed or the daemon is gone:
 *
 *  - FAULT_FLAG_ALLOW_RETRY: pin the vma's file, drop mmap_lock (or the VMA
 *    lock), sleep, and return VM_FAULT_RETRY; the core retries the fault
 *    and finds the page present.  This is the common case for user faults
 *    and for GUP with a "locked" argument.
 *  - FAULT_FLAG_RETRY_NOWAIT: the caller must not sleep and keeps the lock;
 *    queue the request and return VM_FAULT_RETRY at once.
 *  - neither: sleep with the lock held, then map.  Only GUP callers that
 *    cannot retry end up here.
 *
 * Locking: called with mmap_lock held for read, or on 6.12 with only the
 * per-VMA lock (FAULT_FLAG_VMA_LOCK; umem_map_pages() opts in); whichever
 * it is, umem_release_fault_lock() drops it.  Takes the page lock and then
 * region->lock.  Tracepoints: umem_fault_start, umem_task_woken.
 */
#include <linux/file.h>
#include <linux/hash.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched/signal.h>
#include <linux/wait.h>

#include "umem_internal.h"
#include "umem_trace.h"
#include "compat.h"

struct umem_waiter {
	wait_queue_entry_t wq;
	pgoff_t pgoff;
};

/* Key of a wake-up: pages [start, end); NULL key means every waiter. */
struct umem_wake_key {
	pgoff_t start;
	pgoff_t end;
};

static wait_queue_head_t *umem_fault_wq(struct umem_region *r, pgoff_t pgoff)
{
	return &r->fault_wq[hash_long(pgoff, UMEM_FAULT_WQ_BITS)];
}

static int umem_wake_function(wait_queue_entry_t *wq, unsigned int mode,
			      int sync, void *key)
{
	struct umem_waiter *w = container_of(wq, struct umem_waiter, wq);
	struct umem_wake_key *k = key;

	if (k && (w->pgoff < k->start || w->pgoff >= k->end))
		return 0;
	return default_wake_function(wq, mode, sync, key);
}

/*
 * Wake the waiters of [start, end).  Called after the present bits are set
 * (under region->lock, whose release orders them before wq_has_sleeper()'s
 * barrier); a waiter sets its task state before testing the bit.
 */
void umem_wake_range(struct umem_region *r, pgoff_t start, pgoff_t end)
{
	struct umem_wake_key key = { .start = start, .end = end };
	wait_queue_head_t *wq;
	pgoff_t i;

	if (end - start >= UMEM_FAULT_WQ_HASH) {
		for (i = 0; i < UMEM_FAULT_WQ_HASH; i++) {
			wq = &r->fault_wq[i];
			if (wq_has_sleeper(wq))
				__wake_up(wq, TASK_NORMAL, 0, &key);
		}
		return;
	}
	for (i = start; i < end; i++) {
		wq = umem_fault_wq(r, i);
		if (wq_has_sleeper(wq))
			__wake_up(wq, TASK_NORMAL, 0, &key);
	}
}

void umem_wake_all(struct umem_region *r)
{
	unsigned int i;

	for (i = 0; i < UMEM_FAULT_WQ_HASH; i++)
		__wake_up(&r->fault_wq[i], TASK_NORMAL, 0, NULL);
}

static bool umem_region_live(struct umem_region *r)
{
	return READ_ONCE(r->state) == UMEM_STATE_LIVE;
}

/* Sleep until @pgoff is present, the daemon is gone, or we are killed. */
static void umem_wait_page(struct umem_region *r, pgoff_t pgoff)
{
	struct umem_waiter w = { .pgoff = pgoff };
	wait_queue_head_t *wq = umem_fault_wq(r, pgoff);
	u64 start, waited;
	unsigned int bucket;
	bool present;

	init_waitqueue_func_entry(&w.wq, umem_wake_function);
	w.wq.private = current;

	atomic_inc(&r->waiting);
	start = ktime_get_ns();
	add_wait_queue(wq, &w.wq);
	for (;;) {
		set_current_state(TASK_KILLABLE);
		if (test_bit(pgoff, r->present) || !umem_region_live(r) ||
		    fatal_signal_pending(current))
			break;
		schedule();
	}
	__set_current_state(TASK_RUNNING);
	remove_wait_queue(wq, &w.wq);
	waited = ktime_get_ns() - start;
	atomic_dec(&r->waiting);
	present = test_bit(pgoff, r->present);
	trace_umem_task_woken(r->id, pgoff, waited, present);

	bucket = waited >> UMEM_HIST_SHIFT ? ilog2(waited >> UMEM_HIST_SHIFT) : 0;
	bucket = min_t(unsigned int, bucket, UMEM_HIST_BUCKETS - 1);
	spin_lock(&r->lock);
	r->wait_ns_total += waited;
	if (waited > r->wait_ns_max)
		r->wait_ns_max = waited;
	r->wait_hist[bucket]++;
	spin_unlock(&r->lock);
}

/*
 * Map a present page.  Returns VM_FAULT_LOCKED with vmf->page set, an error,
 * or 0 when the page turned missing meanwhile (discard) and the caller must
 * take the missing path.
 */
static vm_fault_t umem_map_present(struct umem_region *r, struct vm_fault *vmf)
{
	struct page *page;

	page = umem_get_page(r, vmf->pgoff);
	if (IS_ERR(page))
		return vmf_error(PTR_ERR(page));
	lock_page(page);
	/* Present is re-checked under the page lock that installers hold. */
	if (page->mapping != r->shmem->f_mapping ||
	    !test_bit(vmf->pgoff, r->present)) {
		unlock_page(page);
		put_page(page);
		return 0;
	}
	vmf->page = page;
	return VM_FAULT_LOCKED;
}

static vm_fault_t umem_fault_missing(struct umem_region *r, struct vm_fault *vmf)
{
	u32 flags = (vmf->flags & FAULT_FLAG_WRITE) ? UMEM_REQ_WRITE : 0;
	struct umem_pending *req = NULL;
	struct file *file;

	if (!umem_region_live(r))
		return VM_FAULT_SIGBUS;
	trace_umem_fault_start(r->id, vmf->pgoff, flags & UMEM_REQ_WRITE);
	if (!test_bit(vmf->pgoff, r->requested)) {
		req = umem_pending_alloc();
		if (!req)
			return VM_FAULT_OOM;
	}
	if (!umem_request_page(r, vmf->pgoff, flags, req)) {
		/* Raced with an install: go back and map it. */
		return 0;
	}
	if (!umem_region_live(r))
		return VM_FAULT_SIGBUS;

	if (vmf->flags & FAULT_FLAG_RETRY_NOWAIT)
		return VM_FAULT_RETRY;

	if (!(vmf->flags & FAULT_FLAG_ALLOW_RETRY)) {
		umem_wait_page(r, vmf->pgoff);
		if (fatal_signal_pending(current))
			return VM_FAULT_SIGBUS;
		return 0;
	}

	/*
	 * The pinned file keeps the region (and this module) alive once the
	 * lock is dropped and the vma may go away.  fput() defers the final
	 * release, so we never drop the last module reference from module
	 * text.
	 */
	file = get_file(vmf->vma->vm_private_data);
	umem_release_fault_lock(vmf);
	umem_wait_page(r, vmf->pgoff);
	fput(file);
	/*
	 * Always a retry, also when the daemon is gone: the lock is dropped
	 * and the retried fault returns VM_FAULT_SIGBUS from the top.
	 */
	return VM_FAULT_RETRY;
}

static vm_fault_t umem_fault(struct vm_fault *vmf)
{
	struct umem_region *r = umem_vma_region(vmf->vma);
	vm_fault_t ret;

	if (unlikely(vmf->pgoff >= r->npages))
		return VM_FAULT_SIGBUS;

	for (;;) {
		if (umem_page_present(r, vmf->pgoff)) {
			ret = umem_map_present(r, vmf);
			if (ret)
				return ret;
		}
		/*
		 * Why SIGBUS once the daemon is gone (userfaultfd returns
		 * VM_FAULT_NOPAGE on release and lets the task refault into
		 * an unregistered range): a umem mapping has nothing to fall
		 * back to.  Mapping zeros would hand the guest a corrupt page
		 * silently; waiting forever would hang it.  SIGBUS is what a
		 * truncated file mapping gives, and a VMM can handle it.
		 */
		ret = umem_fault_missing(r, vmf);
		if (ret)
			return ret;
	}
}

/*
 * No fault-around: every page must go through the present check in
 * umem_fault().  Providing the hook at all tells 6.12 the fault path was
 * audited for the per-VMA lock.
 */
static vm_fault_t umem_map_pages(struct vm_fault *vmf, pgoff_t start_pgoff,
				 pgoff_t end_pgoff)
{
	return 0;
}

/* A vma copy (split, fork, mremap) pins the region like the original. */
static void umem_vm_open(struct vm_area_struct *vma)
{
	get_file(vma->vm_private_data);
}

static void umem_vm_close(struct vm_area_struct *vma)
{
	fput(vma->vm_private_data);
}

const struct vm_operations_struct umem_vm_ops = {
	.open = umem_vm_open,
	.close = umem_vm_close,
	.fault = umem_fault,
	.map_pages = umem_map_pages,
};
