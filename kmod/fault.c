// SPDX-License-Identifier: GPL-2.0
/*
 * umem fault path.
 *
 * A fault on a present page maps the backing's page.  A fault on a missing
 * page queues one request for it (however many tasks fault on it), then,
 * like handle_userfault():
 *
 *  - FAULT_FLAG_RETRY_NOWAIT: the caller must not sleep and keeps its
 *    lock (KVM's async page faults, FOLL_NOWAIT): return VM_FAULT_RETRY.
 *  - FAULT_FLAG_ALLOW_RETRY: pin the vma's file, drop mmap_lock (or the
 *    VMA lock), sleep ONCE and return VM_FAULT_RETRY.  The core retries
 *    the fault, which maps the page (a read in umem_map_pages(), without
 *    coming back to ->fault), or finds it missing again (a discard
 *    after the install, a wake-up for a signal) and queues a new request:
 *    a task never sleeps on a page that has no request.  User faults,
 *    uaccess from syscalls, and get_user_pages() with FOLL_UNLOCKABLE
 *    (O_DIRECT, process_vm_readv(), KVM, core dumps) all come this way.
 *  - neither (get_user_pages_remote() without a "locked" argument:
 *    /proc/PID/mem, ptrace(PTRACE_PEEKDATA) and other access_remote_vm()
 *    users): the fault cannot drop the target's mmap_lock, and sleeping on
 *    the daemon while holding it could deadlock against the daemon or the
 *    target's own threads.  The request is queued (so the page arrives
 *    and a later access succeeds) and the fault fails with VM_FAULT_SIGBUS
 *    at once, which the caller reports as EIO/EFAULT.
 *
 * No sleeping at all for a task that is exiting (PF_EXITING: the last
 * clear_child_tid/robust-list writes) or dumping core (PF_DUMPCORE: the
 * core dump reads every page through get_dump_page(); the daemon may be
 * one of the threads it has just killed): missing pages are holes in the
 * core and the task finishes dying.
 *
 * The sleep state comes from the fault flags: TASK_INTERRUPTIBLE with
 * FAULT_FLAG_INTERRUPTIBLE (so SIGSTOP, ptrace stops, the cgroup freezer,
 * system suspend and a VMM's vCPU-kick signal handler all work on a task
 * blocked on a missing page), else TASK_KILLABLE with FAULT_FLAG_KILLABLE,
 * else TASK_UNINTERRUPTIBLE.  One exception: a kernel-mode fault (not
 * FAULT_FLAG_USER) that comes back with FAULT_FLAG_TRIED while a signal
 * is pending belongs to a caller that retries regardless of non-fatal
 * signals (x86's uaccess fault handler does); sleeping interruptibly again
 * would spin, so it sleeps killable.
 *
 * Large folios in a 4 KiB region: the backing is shmem and may hold
 * 2 MiB folios (the shmem_enabled sysfs knob, "force" included).  Every
 * check here works on the folio, and a large folio is never handed to the
 * core: finish_fault() could map all of it with one PMD, zeros for the
 * missing pages included, and even a complete one must not be PMD-mapped
 * in a VM_MIXEDMAP vma (zap_huge_pmd() treats such a PMD as a special
 * mapping and drops it without its rmap, reference and RSS).  Only the
 * faulting page is mapped, with vm_insert_page() (the vma is VM_MIXEDMAP
 * for that).
 *
 * Write protection (regions created with UMEM_CREATE_WP; wp.c protects
 * and unprotects): their vmas are write-notify (umem_wp_vm_ops has
 * ->page_mkwrite), so a present page is mapped read-only by a read fault
 * and every path to a writable PTE goes through umem_page_mkwrite() with
 * the folio locked.  A write fault on a protected page comes here as
 * FAULT_FLAG_WRITE and waits exactly as for a missing page, behind one
 * UMEM_REQ_WP request (umem_fault_protected()).  A write through a
 * read-only PTE reaches ->page_mkwrite instead, which cannot sleep: the
 * core calls it with the fault flags cleared (do_page_mkwrite()), so it
 * can neither drop the fault lock nor tell a user fault from
 * get_user_pages().  It zaps the page's PTEs and returns VM_FAULT_NOPAGE:
 * the access is retried, faults on the empty PTE, and waits here.  A
 * write through a read-only PMD (2 MiB regions) never reaches either: the
 * core "splits" the PMD, which for a file THP means zapping it
 * (wp_huge_pmd()), and the write faults on the empty PMD into ->fault; an
 * unprotected page then gets a writable PMD again (finish_fault()).  Reads
 * of a protected page never wait.
 *
 * 2 MiB regions: presence is per 2 MiB page, and a present page is one
 * PMD-size folio whose every byte was installed, so the folio goes to the
 * core like any file THP and finish_fault() maps it with a PMD where the
 * vma is aligned; these vmas are not VM_MIXEDMAP (map.c).  All the pieces
 * of a missing 2 MiB page share one request and one wait-queue key.
 *
 * Locking: called with mmap_lock held for read, or on 6.12 with only the
 * per-VMA lock (FAULT_FLAG_VMA_LOCK; umem_map_pages() opts in); whichever
 * it is, umem_release_fault_lock() drops it.  ->fault takes the folio lock
 * and then region->lock; a woken task accounts its wait in per-CPU
 * statistics, without a lock.  ->map_pages may not sleep: it takes
 * install_rwsem with a trylock, then filemap_map_pages() trylocks folios
 * and takes the PTE lock.  Tracepoints: umem_fault_start, umem_task_woken.
 */
#include <linux/file.h>
#include <linux/hash.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/wait.h>

#include "umem_internal.h"
#include "umem_trace.h"
#include "compat.h"

struct umem_waiter {
	wait_queue_entry_t wq;
	pgoff_t index;		/* region page */
};

/* Key of a wake-up: region pages [start, end); NULL: every waiter. */
struct umem_wake_key {
	pgoff_t start;
	pgoff_t end;
};

static wait_queue_head_t *umem_fault_wq(struct umem_region *r, pgoff_t index)
{
	return &r->fault_wq[hash_long(index, UMEM_FAULT_WQ_BITS)];
}

static int umem_wake_function(wait_queue_entry_t *wq, unsigned int mode,
			      int sync, void *key)
{
	struct umem_waiter *w = container_of(wq, struct umem_waiter, wq);
	struct umem_wake_key *k = key;

	if (k && (w->index < k->start || w->index >= k->end))
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

/*
 * Zap every mapping of region page @index, whole: a 4 KiB range inside a
 * PMD mapping would split it.  The next access faults.
 */
static void umem_zap_page(struct umem_region *r, pgoff_t index)
{
	unmap_mapping_range(r->shmem->f_mapping, (loff_t)index << r->shift,
			    umem_page_size(r), 0);
}

static unsigned int umem_blocking_state(const struct vm_fault *vmf)
{
	unsigned int flags = vmf->flags;

	if ((flags & FAULT_FLAG_INTERRUPTIBLE) &&
	    ((flags & FAULT_FLAG_USER) || !(flags & FAULT_FLAG_TRIED) ||
	     !signal_pending(current)))
		return TASK_INTERRUPTIBLE;
	if (flags & (FAULT_FLAG_KILLABLE | FAULT_FLAG_INTERRUPTIBLE))
		return TASK_KILLABLE;
	return TASK_UNINTERRUPTIBLE;
}

/* Into this CPU's copy of the wait statistics: no lock, no atomic. */
static void umem_account_wait(struct umem_region *r, u64 waited)
{
	struct umem_wait_stats *ws;
	unsigned int bucket;

	bucket = waited >> UMEM_HIST_SHIFT ? ilog2(waited >> UMEM_HIST_SHIFT) : 0;
	bucket = min_t(unsigned int, bucket, UMEM_HIST_BUCKETS - 1);
	ws = get_cpu_ptr(r->wait_stats);
	WRITE_ONCE(ws->ns_total, ws->ns_total + waited);
	if (waited > ws->ns_max)
		WRITE_ONCE(ws->ns_max, waited);
	WRITE_ONCE(ws->hist[bucket], ws->hist[bucket] + 1);
	put_cpu_ptr(r->wait_stats);
}

/*
 * Is the task's reason to wait still there?  A missing page: while it is
 * missing and requested.  A protected one (@wp): while it is protected and
 * its UMEM_REQ_WP request outstanding.  Either way only while the region
 * is live (a detach unprotects everything).
 */
static bool umem_still_waiting(struct umem_region *r, pgoff_t index, bool wp)
{
	if (!test_bit(index, r->requested) || !umem_region_live(r))
		return false;
	if (wp)
		return test_bit(index, r->protected);
	return !test_bit(index, r->present);
}

/*
 * Sleep once, with the fault lock dropped, until page @index is present
 * (or no longer requested), or for @wp until it is unprotected, the region
 * detaches, or a signal the sleep state admits arrives (or any other
 * wake-up: the retried fault sorts it out).
 */
static vm_fault_t umem_wait_page(struct umem_region *r, struct vm_fault *vmf,
				 pgoff_t index, bool wp)
{
	struct umem_waiter w = { .index = index };
	wait_queue_head_t *wq = umem_fault_wq(r, index);
	unsigned int state = umem_blocking_state(vmf);
	struct file *file;
	u64 start, waited;
	bool present;

	init_waitqueue_func_entry(&w.wq, umem_wake_function);
	w.wq.private = current;

	/*
	 * The pinned map file keeps the region (and this module) alive once
	 * the lock is dropped and the vma may go away.  fput() defers the
	 * final release, so the last module reference is never dropped from
	 * module text.
	 */
	file = get_file(vmf->vma->vm_file);
	atomic_inc(&r->waiting);
	start = ktime_get_ns();
	add_wait_queue(wq, &w.wq);
	set_current_state(state);
	umem_release_fault_lock(vmf);
	/*
	 * Sleep only while the request is outstanding: between queueing it
	 * and getting here, this task may have been preempted while the
	 * daemon read the request, installed the page and discarded it
	 * again (or unprotected and protected it again).  Then there is no
	 * request: retry at once and ask again.
	 */
	if (umem_still_waiting(r, index, wp))
		schedule();
	__set_current_state(TASK_RUNNING);
	remove_wait_queue(wq, &w.wq);
	waited = ktime_get_ns() - start;
	atomic_dec(&r->waiting);
	present = wp ? !umem_page_protected(r, index) :
		       test_bit(index, r->present);
	trace_umem_task_woken(r->id, index, waited, present);
	umem_account_wait(r, waited);
	fput(file);
	/*
	 * Always a retry, also when the region detached: the lock is dropped
	 * and the retried fault returns VM_FAULT_SIGBUS from the top.
	 */
	return VM_FAULT_RETRY;
}

/*
 * Map a present page.  Returns VM_FAULT_LOCKED with vmf->page set (the
 * core maps it: an order-0 folio of a 4 KiB region, or any folio of a
 * 2 MiB region), or VM_FAULT_NOPAGE when the page of a large folio in a
 * 4 KiB region was mapped here, or an error, or 0 when the page turned
 * missing meanwhile (discard) and the caller must take the missing path.
 */
static vm_fault_t umem_map_present(struct umem_region *r, struct vm_fault *vmf,
				   pgoff_t index)
{
	struct page *page;
	struct folio *folio;
	int err;

	page = umem_get_page(r, vmf->pgoff);
	if (IS_ERR(page))
		return vmf_error(PTR_ERR(page));
	folio = page_folio(page);
	folio_lock(folio);
	/* Present is re-checked under the folio lock that installers hold. */
	if (folio->mapping != r->shmem->f_mapping ||
	    !test_bit(index, r->present)) {
		folio_unlock(folio);
		folio_put(folio);
		return 0;
	}
	/*
	 * A 2 MiB region's present page is a whole folio with data in every
	 * byte: finish_fault() maps it with a PMD where the vma allows
	 * (do_set_pmd()), else this one page with a PTE.  Its vmas are not
	 * VM_MIXEDMAP (map.c), so the PMD is an ordinary file THP mapping.
	 */
	if (r->order || !folio_test_large(folio)) {
		vmf->page = page;
		return VM_FAULT_LOCKED;
	}
	/*
	 * A large folio: map this page alone, with a PTE.  The folio lock is
	 * held across the insert, so a discard that clears the bit now zaps
	 * the new PTE when its punch gets the lock.
	 */
	err = vm_insert_page(vmf->vma, vmf->address & PAGE_MASK, page);
	if (!err && (vmf->flags & FAULT_FLAG_WRITE))
		folio_mark_dirty(folio);
	folio_unlock(folio);
	folio_put(folio);
	if (err == -ENOMEM)
		return VM_FAULT_OOM;
	if (err && err != -EBUSY)	/* -EBUSY: another fault mapped it */
		return VM_FAULT_SIGBUS;
	return VM_FAULT_NOPAGE;
}

/*
 * A request is queued for @index: wait for it where the fault flags allow
 * (see the top of this file), else fail or retry without sleeping.
 */
static vm_fault_t umem_sleep_or_fail(struct umem_region *r,
				     struct vm_fault *vmf, pgoff_t index,
				     bool wp)
{
	if (vmf->flags & FAULT_FLAG_RETRY_NOWAIT)
		return VM_FAULT_RETRY;
	if (!(vmf->flags & FAULT_FLAG_ALLOW_RETRY))
		return VM_FAULT_SIGBUS;
	return umem_wait_page(r, vmf, index, wp);
}

static vm_fault_t umem_fault_missing(struct umem_region *r, struct vm_fault *vmf,
				     pgoff_t index)
{
	u32 flags = (vmf->flags & FAULT_FLAG_WRITE) ? UMEM_REQ_WRITE : 0;
	int ret;

	if (!umem_region_live(r))
		return VM_FAULT_SIGBUS;
	/* Exiting or dumping core: never wait (see the top of this file). */
	if (current->flags & (PF_EXITING | PF_DUMPCORE))
		return VM_FAULT_SIGBUS;
	trace_umem_fault_start(r->id, index, flags & UMEM_REQ_WRITE);
	ret = umem_request_page(r, index, flags);
	if (ret == -ENOMEM)
		return VM_FAULT_OOM;
	if (ret == -EEXIST)	/* raced with an install: map it */
		return 0;
	if (ret)		/* -ENXIO: detached meanwhile */
		return VM_FAULT_SIGBUS;

	return umem_sleep_or_fail(r, vmf, index, false);
}

/*
 * A write fault on the protected page @index: ask the daemon to save it
 * (one UMEM_REQ_WP request however many writers) and wait as for a missing
 * page.  Returns 0 when the page is no longer protected (or no longer
 * present): the caller looks again.
 */
static vm_fault_t umem_fault_protected(struct umem_region *r,
				       struct vm_fault *vmf, pgoff_t index)
{
	int ret;

	/* Exiting or dumping core: never wait (see the top of this file). */
	if (current->flags & (PF_EXITING | PF_DUMPCORE))
		return VM_FAULT_SIGBUS;
	trace_umem_wp_fault(r->id, index);
	ret = umem_request_wp(r, index);
	if (ret == -ENOMEM)
		return VM_FAULT_OOM;
	/* A detached region has no protected page (region.c): never loop. */
	if (WARN_ON_ONCE(ret == -ENXIO))
		return VM_FAULT_SIGBUS;
	if (ret)	/* unprotected or discarded meanwhile */
		return 0;
	return umem_sleep_or_fail(r, vmf, index, true);
}

static vm_fault_t umem_fault(struct vm_fault *vmf)
{
	struct umem_region *r = umem_vma_region(vmf->vma);
	pgoff_t index = umem_index(r, vmf->pgoff);
	vm_fault_t ret;

	if (unlikely(index >= r->npages))
		return VM_FAULT_SIGBUS;

	for (;;) {
		/*
		 * Why SIGBUS once the daemon is gone (userfaultfd returns
		 * VM_FAULT_NOPAGE on release and lets the task refault into
		 * an unregistered range): a umem mapping has nothing to fall
		 * back to.  Mapping zeros would hand the guest a corrupt page
		 * silently; waiting forever would hang it.  SIGBUS is what a
		 * truncated file mapping gives, and a VMM can handle it.
		 */
		if (!umem_page_present(r, index))
			ret = umem_fault_missing(r, vmf, index);
		else if ((vmf->flags & FAULT_FLAG_WRITE) &&
			 umem_page_protected(r, index))
			ret = umem_fault_protected(r, vmf, index);
		else
			ret = umem_map_present(r, vmf, index);
		if (ret)
			return ret;
	}
}

/*
 * umem_wp_vm_ops: a page is about to become writable, through a read-only
 * PTE (do_wp_page()) or after umem_fault() returned it for a write fault
 * (do_shared_fault()).  The core makes it writable before it unlocks the
 * folio this returns locked, so the protected bit tested here, under that
 * lock, is the last word; umem_wp_barrier() (wp.c) relies on it.  See the
 * top of this file for why a protected page is zapped rather than waited
 * for here.
 */
static vm_fault_t umem_page_mkwrite(struct vm_fault *vmf)
{
	struct umem_region *r = umem_vma_region(vmf->vma);
	struct folio *folio = page_folio(vmf->page);
	struct address_space *mapping = r->shmem->f_mapping;

	pgoff_t index = umem_index(r, vmf->pgoff);

	folio_lock(folio);
	if (folio->mapping != mapping) {	/* punched out meanwhile */
		folio_unlock(folio);
		return VM_FAULT_NOPAGE;
	}
	/*
	 * Pairs with the smp_mb() in umem_wp_barrier(): either it sees this
	 * folio locked (or, later, mapped) and waits for it, or this sees
	 * the protected bit it set before.
	 */
	smp_mb();
	if (!umem_page_protected(r, index))
		return VM_FAULT_LOCKED;
	folio_unlock(folio);
	umem_zap_page(r, index);
	return VM_FAULT_NOPAGE;
}

/*
 * ->map_pages: fault-around, and the retried fault of a woken waiter.
 * The core calls it first for a read fault on an empty PTE (do_read_fault(),
 * fault_around_bytes), under the fault lock and, on 6.12, rcu_read_lock();
 * it may not sleep.  Only present pages are handed to filemap_map_pages(),
 * which maps those that are in the page cache, uptodate and unlocked
 * (it trylocks each folio and re-checks its mapping, as for any shmem
 * file), and returns VM_FAULT_NOPAGE when the faulting page was mapped;
 * else 0 and the core calls umem_fault(), which handles everything else
 * (missing pages, swapped-out or locked folios, large folios' first PMD).
 *
 * What may be mapped here:
 *  - A region with every page present (r->complete): the whole window,
 *    as shmem does; once a migration is over a fault costs what a shmem
 *    fault costs.
 *  - Otherwise, if the faulting page is present, the present pages of
 *    the window, run by run (umem_map_window()), never a missing one
 *    (whose backing may hold pwrite() data not yet marked present).  The
 *    retry of a task woken by an install maps its page without ->fault's
 *    lookup and folio lock round trip; and a task reading its way through
 *    pages the background stream has installed takes one fault per window
 *    (16 pages by default), not one per page.  2 MiB regions map the
 *    faulting page alone (a window holds one page).
 *
 * Present bits are stable while install_rwsem is held shared: only
 * UMEM_DISCARD and the punch of a detached region clear them or free
 * data, and they hold it exclusive.  So the bits are read, and the pages
 * mapped, under a down_read_trylock() (it cannot sleep; on failure the
 * core takes ->fault): a page seen present cannot become missing and
 * refilled with pwrite() data for a missing page before it is mapped.
 *
 * 4 KiB regions: filemap_map_pages() maps a PMD-size folio with a PMD
 * when the PMD is empty (filemap_map_pmd()), missing pages and all, and
 * a PMD in a VM_MIXEDMAP vma is taken for a special mapping (see the top
 * of this file).  So nothing is done here while the PMD is empty: once a
 * page table exists it maps PTEs only, and only in the range given.  A
 * umem vma's page table is only freed with the vma (VM_SPECIAL keeps
 * khugepaged's retraction away), so the PMD cannot turn empty meanwhile.
 * 2 MiB regions: a present page is a whole PMD-size folio; mapping it
 * with a PMD here is what finish_fault() would do.
 *
 * Write faults never come here (do_shared_fault()), and PTEs are made
 * from vm_page_prot, read-only in write-notify (UMEM_CREATE_WP) vmas, so
 * a protected page is mapped read-only as by umem_fault().
 */
/* Map each run of present pages in [@start, @end] (4 KiB regions). */
static vm_fault_t umem_map_window(struct vm_fault *vmf, struct umem_region *r,
				  pgoff_t start, pgoff_t end)
{
	unsigned long first, last;
	vm_fault_t ret = 0;

	end = min_t(pgoff_t, end, r->npages - 1);
	for (first = start; first <= end; first = last + 1) {
		first = find_next_bit(r->present, end + 1, first);
		if (first > end)
			break;
		last = find_next_zero_bit(r->present, end + 1, first) - 1;
		ret |= filemap_map_pages(vmf, first, last);
	}
	return ret;
}

static vm_fault_t umem_map_pages(struct vm_fault *vmf, pgoff_t start_pgoff,
				 pgoff_t end_pgoff)
{
	struct umem_region *r = umem_vma_region(vmf->vma);
	pgoff_t index = umem_index(r, vmf->pgoff);
	vm_fault_t ret = 0;

	if (!r->order && pmd_none(READ_ONCE(*vmf->pmd)))
		return 0;
	if (!READ_ONCE(r->complete) && !test_bit(index, r->present))
		return 0;
	if (!down_read_trylock(&r->install_rwsem))
		return 0;
	if (READ_ONCE(r->complete))
		ret = filemap_map_pages(vmf, start_pgoff, end_pgoff);
	else if (r->order && test_bit(index, r->present))
		ret = filemap_map_pages(vmf, vmf->pgoff, vmf->pgoff);
	else if (test_bit(index, r->present))
		ret = umem_map_window(vmf, r, start_pgoff, end_pgoff);
	up_read(&r->install_rwsem);
	return ret;
}

/*
 * Map at install (4 KiB regions).  An install puts the page in the
 * backing's page cache; a task that then touches it would take a fault
 * only to map it (fault-around maps the present pages of its 16-page
 * window, but a task reading at the pace of the background stream finds
 * most windows only partly installed, and pays one fault per part).
 * UFFDIO_COPY maps the page in the installing call; so does this, for
 * every mapping of the region that already has a page table there.
 *
 * The mappings come from the backing's i_mmap tree (map.c links every
 * umem vma there; a region has a few: the VMM's, a fork's, a split's).
 * The interval tree's lookups are not exported to modules, so the tree is
 * walked in order with rb_next() and each vma's range checked here.  The
 * walk is under i_mmap_rwsem shared, which keeps each vma linked and,
 * since a vma's page tables are freed only after it is unlinked, its
 * page tables down to the PMDs allocated (a PTE table may still be
 * retracted by khugepaged, RCU-freed; pte_offset_map_lock() in
 * filemap_map_pages() sees that).  So whether there is a page table at
 * all is read first, as the rmap walkers do (page_vma_mapped_walk()),
 * and a mapping without one is skipped before anything of its mm is
 * taken; the answer is a hint, read again under mmap_lock.  A vma in the
 * tree may already be detached from its mm by munmap() (which zaps and
 * frees with mmap_lock downgraded): mapping into it would leave a PTE
 * behind the zap.  So the mm's mmap_lock is taken shared with a trylock
 * (the order elsewhere is mmap_lock -> i_mmap_rwsem; on contention the
 * page is left to a fault, as before) and the vma must still be what
 * vma_lookup() finds at the address: no detach can start while mmap_lock
 * is held shared.  A missing page table (pmd_none: nothing was ever
 * mapped in those 2 MiB) is not allocated here, and an empty PMD is never
 * handed to filemap_map_pages(), which would map a large folio with a PMD
 * (see the top of this file).  filemap_map_pages() does the rest exactly as for
 * fault-around: it trylocks the folio, re-checks it is the backing's and
 * uptodate, maps it only over an empty PTE under the PTE lock, from
 * vm_page_prot (read-only in O_RDONLY and write-notify vmas), and counts
 * it in that mm's RSS.  Inaccessible (PROT_NONE) vmas are skipped.
 *
 * Called by the installer with install_rwsem shared, right after the page
 * became present and before its waiters are woken, so that a woken task's
 * retry finds its page mapped.  Lock order: install_rwsem ->
 * i_mmap_rwsem -> mmap_lock (trylock) -> folio lock (trylock) -> PTE
 * lock, none of them waiting on userspace.  map_on_install=0 (module
 * parameter, writable at run time) turns it off: pages are then mapped by
 * the tasks' faults only.
 */
static bool map_on_install = true;
module_param(map_on_install, bool, 0644);
MODULE_PARM_DESC(map_on_install,
		 "map an installed page into the mappings that have a page table for it (default Y)");

/* Whether installs map their page now (UMEM_F_MAP_ON_INSTALL). */
bool umem_map_on_install(void)
{
	return READ_ONCE(map_on_install);
}

/* The PMD over @addr in @mm if it points to a page table, else NULL. */
static pmd_t *umem_pte_table(struct mm_struct *mm, unsigned long addr)
{
	pgd_t *pgd = pgd_offset(mm, addr);
	p4d_t *p4d;
	pud_t *pud;
	pmd_t *pmd, pmdval;

	if (pgd_none(READ_ONCE(*pgd)) || pgd_bad(READ_ONCE(*pgd)))
		return NULL;
	p4d = p4d_offset(pgd, addr);
	if (p4d_none(READ_ONCE(*p4d)) || p4d_bad(READ_ONCE(*p4d)))
		return NULL;
	pud = pud_offset(p4d, addr);
	if (!pud_present(READ_ONCE(*pud)) || pud_leaf(READ_ONCE(*pud)) ||
	    pud_bad(READ_ONCE(*pud)))
		return NULL;
	pmd = pmd_offset(pud, addr);
	pmdval = READ_ONCE(*pmd);
	if (!pmd_present(pmdval) || pmd_leaf(pmdval) || pmd_bad(pmdval))
		return NULL;
	return pmd;
}

/* Map backing page @pgoff at @addr of @vma if its mm lets us at once. */
static void umem_map_one(struct vm_area_struct *vma, unsigned long addr,
			 pgoff_t pgoff)
{
	struct mm_struct *mm = vma->vm_mm;
	pmd_t *pmd;

	if (!mmget_not_zero(mm))
		return;			/* exiting */
	if (mmap_read_trylock(mm)) {
		pmd = vma_lookup(mm, addr) == vma ?
		      umem_pte_table(mm, addr) : NULL;
		if (pmd) {
			struct vm_fault vmf = {
				.vma = vma,
				.address = addr,
				.real_address = addr,
				.pgoff = pgoff,
				.pmd = pmd,
			};

			filemap_map_pages(&vmf, pgoff, pgoff);
		}
		mmap_read_unlock(mm);
	}
	/*
	 * Not mmput(): the last reference must not tear down the mm here,
	 * under i_mmap_rwsem, which exit_mmap() takes.
	 */
	mmput_async(mm);
}

void umem_map_installed(struct umem_region *r, pgoff_t index)
{
	struct address_space *mapping = r->shmem->f_mapping;
	pgoff_t pgoff = index;		/* 4 KiB regions only */
	struct rb_node *node;
	unsigned long addr;

	if (r->order || !umem_map_on_install() || !mapping_mapped(mapping))
		return;
	i_mmap_lock_read(mapping);
	for (node = rb_first_cached(&mapping->i_mmap); node;
	     node = rb_next(node)) {
		struct vm_area_struct *vma = rb_entry(node, struct vm_area_struct,
						      shared.rb);

		if (pgoff < vma->vm_pgoff ||
		    pgoff - vma->vm_pgoff >= vma_pages(vma))
			continue;
		if ((vma->vm_ops != &umem_vm_ops &&
		     vma->vm_ops != &umem_wp_vm_ops) || !vma_is_accessible(vma))
			continue;
		addr = vma->vm_start + ((pgoff - vma->vm_pgoff) << PAGE_SHIFT);
		/* No page table there: nothing to map into (see above). */
		if (!umem_pte_table(vma->vm_mm, addr))
			continue;
		umem_map_one(vma, addr, pgoff);
	}
	i_mmap_unlock_read(mapping);
}

const struct vm_operations_struct umem_vm_ops = {
	.fault = umem_fault,
	.map_pages = umem_map_pages,
};

/* Regions created with UMEM_CREATE_WP: the same, write-notify. */
const struct vm_operations_struct umem_wp_vm_ops = {
	.fault = umem_fault,
	.map_pages = umem_map_pages,
	.page_mkwrite = umem_page_mkwrite,
};

