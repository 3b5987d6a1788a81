// SPDX-License-Identifier: GPL-2.0
/*
 * umem install paths: UMEM_COPY, UMEM_COPY_VEC, UMEM_ZERO, pwrite() +
 * UMEM_MARK_PRESENT, UMEM_DISCARD and UMEM_STATS.
 *
 * A page is filled under its folio lock and marked present (under
 * region->lock) before the folio lock is released; the fault path
 * re-checks the present bit under that lock, so no task ever maps a
 * partly written page.  Waiters are woken page by page, as each page
 * becomes present.
 *
 * The daemon's buffer is read with page faults disabled while the folio
 * lock and install_rwsem are held.  When that fails both are dropped, the
 * buffer is faulted in, and the page retried: a fault on the buffer (which
 * may itself be umem or userfaultfd memory) must never wait while this
 * region's locks are held, or it could deadlock against this page's own
 * waiters or a discard queued on install_rwsem.  The entry and offset
 * arrays of COPY_VEC and MARK_PRESENT are copied in before the lock is
 * taken and results written back after it is dropped, for the same reason.
 *
 * UMEM_DISCARD makes present pages missing (and unprotected: wp.c) and
 * frees only their data: the backing of missing pages (pwrite() data not
 * yet marked) survives.
 * It holds install_rwsem exclusive, so no install, pwrite or mark runs
 * while a page is being punched out.
 *
 * Loops check for fatal signals and reschedule between pages; multi-page
 * calls report partial progress in their out field.
 *
 * 2 MiB regions: every unit is the region's page.  An install fills the
 * whole 2 MiB folio under its lock, marks it uptodate itself (so
 * ->write_end zeroes nothing) and only then present.  When shmem could
 * not allocate a 2 MiB folio it falls back to a small one; the install
 * then truncates what it got, tries once more, and fails with ENOMEM
 * (counted in alloc_failed) rather than present a huge page made of small
 * ones: the VMM was promised PMD mappings, and the daemon can tell.  A
 * missing page is never mapped, so the truncation can race no mapping.
 *
 * Locking: region->install_rwsem (shared here, exclusive in discard) ->
 * folio lock -> region->lock.  Tracepoints umem_page_installed and
 * umem_discard fire after region->lock is dropped; the genl "complete"
 * event is sent by the ioctl dispatch (main.c) once no lock is held.
 */
#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/highmem.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/shmem_fs.h>
#include <linux/uaccess.h>
#include <linux/uio.h>

#include "compat.h"
#include "umem_internal.h"
#include "umem_trace.h"

/*
 * Internal: the source could not be read without faulting.  The caller
 * drops its locks, faults the buffer in and retries.
 */
#define UMEM_NEED_FAULT	1
/* Internal: a 2 MiB page's backing is a small folio (no huge one). */
#define UMEM_NO_HUGE	2

/* Mark @index present; its folio lock is held or its data is in place. */
static int umem_set_present(struct umem_region *r, pgoff_t index)
{
	unsigned long npresent = 0;
	int err = 0;

	spin_lock(&r->lock);
	if (__test_and_set_bit(index, r->present)) {
		err = -EEXIST;
	} else {
		__clear_bit(index, r->requested);
		r->installed++;
		npresent = ++r->npresent;
		if (npresent == r->npages)
			WRITE_ONCE(r->complete, true);
	}
	spin_unlock(&r->lock);
	if (!err)
		trace_umem_page_installed(r->id, index, npresent);
	return err;
}

static void umem_wake_page(struct umem_region *r, pgoff_t index)
{
	umem_wake_range(r, index, index + 1);
}

/*
 * Fill region page @index from @src (a page of user memory) or with zeros
 * when @src is NULL, and make it present.  The folio comes from the
 * backing's ->write_begin (compat.h): locked, and not zeroed first when
 * new, so a COPY writes each byte once; it is charged to the creator's
 * memcg.  Returns 0, -errno, UMEM_NEED_FAULT (nothing changed) when @src
 * could not be read without a page fault, or UMEM_NO_HUGE.  Called with
 * install_rwsem shared.
 */
static int umem_fill_page(struct umem_region *r, pgoff_t index,
			  const void __user *src)
{
	loff_t pos = (loff_t)index << r->shift;
	unsigned int size = umem_page_size(r);
	unsigned long i, nr = 1UL << r->order;
	struct mem_cgroup *old;
	void *fsdata = NULL;
	struct folio *folio;
	struct page *page;
	int err;

	old = set_active_memcg(r->memcg);
	err = umem_write_begin(r->shmem, pos, size, &page, &fsdata);
	set_active_memcg(old);
	if (err)
		return err;
	if (test_bit(index, r->present)) {
		umem_write_end(r->shmem, pos, size, 0, page, fsdata);
		return -EEXIST;
	}
	folio = page_folio(page);
	if (folio_nr_pages(folio) < nr) {
		umem_write_end(r->shmem, pos, size, 0, page, fsdata);
		return UMEM_NO_HUGE;
	}
	/* @page is the first of the 2 MiB folio (@pos is aligned), or alone. */
	for (i = 0; i < nr && !err; i++) {
		void *kaddr = kmap_local_page(nth_page(page, i));

		if (src)
			err = copy_from_user_nofault(kaddr, src + i * PAGE_SIZE,
						     PAGE_SIZE);
		else
			clear_page(kaddr);
		kunmap_local(kaddr);
	}
	if (err) {
		/* Nothing is present: a new folio is zeroed, an old one kept. */
		umem_write_end(r->shmem, pos, size, 0, page, fsdata);
		return UMEM_NEED_FAULT;
	}
	if (r->order) {
		flush_dcache_folio(folio);
		/* Every byte is written: ->write_end must zero none. */
		folio_mark_uptodate(folio);
	} else {
		flush_dcache_page(page);
	}
	/* Present before the folio lock goes (in ->write_end). */
	err = umem_set_present(r, index);
	umem_write_end(r->shmem, pos, size, size, page, fsdata);
	return err;
}

/*
 * The backing of missing 2 MiB page @index is (or holds) small folios:
 * drop them, so that the next attempt can allocate a 2 MiB one.  Called
 * with install_rwsem shared and no folio lock: the page is missing, so
 * nothing maps it, and a discard (exclusive) cannot run meanwhile.
 */
static void umem_drop_small(struct umem_region *r, pgoff_t index)
{
	loff_t pos = (loff_t)index << r->shift;

	shmem_truncate_range(file_inode(r->shmem), pos,
			     pos + umem_page_size(r) - 1);
}

static int umem_alloc_failed(struct umem_region *r)
{
	spin_lock(&r->lock);
	r->alloc_failed++;
	spin_unlock(&r->lock);
	return -ENOMEM;
}

/*
 * umem_fill_page() with install_rwsem taken around it, faulting the
 * source in with no lock held when needed, and one more try for a 2 MiB
 * folio.  Wakes the page's waiters.
 */
static int umem_install_page(struct umem_region *r, pgoff_t index,
			     const void __user *src)
{
	bool tried_huge = false;
	int err;

	for (;;) {
		down_read(&r->install_rwsem);
		err = umem_fill_page(r, index, src);
		if (err == UMEM_NO_HUGE)
			umem_drop_small(r, index);
		else if (!err)
			umem_map_installed(r, index);
		up_read(&r->install_rwsem);
		if (err == UMEM_NO_HUGE) {
			if (tried_huge)
				return umem_alloc_failed(r);
			tried_huge = true;
			continue;
		}
		if (err != UMEM_NEED_FAULT)
			break;
		if (fault_in_readable(src, umem_page_size(r)))
			return -EFAULT;
		if (fatal_signal_pending(current))
			return -EINTR;
	}
	if (!err)
		umem_wake_page(r, index);
	return err;
}

/*
 * Install [offset, offset + len) from @src, or zero-filled when @src is
 * NULL.  Returns 0 or a negative errno; *@done gets the bytes installed
 * before it stopped.
 */
static int umem_fill_range(struct umem_region *r, u64 offset, u64 len,
			   const void __user *src, u64 *done)
{
	pgoff_t first = offset >> r->shift;
	pgoff_t end = (offset + len) >> r->shift;
	pgoff_t i;
	int err = 0;

	*done = 0;
	if (src && !access_ok(src, len))
		return -EFAULT;

	for (i = first; i < end; i++) {
		const void __user *p = NULL;

		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		if (src)
			p = src + ((u64)(i - first) << r->shift);
		err = umem_install_page(r, i, p);
		if (err)
			break;
		cond_resched();
	}
	*done = (u64)(i - first) << r->shift;
	return err;
}

/* Bytes done if any, else the error: the out field of COPY and ZERO. */
static s64 umem_progress(u64 done, int err)
{
	return done ? (s64)done : err;
}

long umem_ioctl_copy(struct umem_region *r, void __user *arg)
{
	struct umem_copy __user *uarg = arg;
	struct umem_copy c;
	u64 done;
	int err;

	if (copy_from_user(&c, uarg, offsetof(struct umem_copy, copied)))
		return -EFAULT;
	if (c.mode || !umem_range_ok(r, c.offset, c.len))
		return -EINVAL;
	/* A NULL src is a bad pointer here, not a request for zeros. */
	done = 0;
	err = -EFAULT;
	if (c.src)
		err = umem_fill_range(r, c.offset, c.len,
				      u64_to_user_ptr(c.src), &done);
	if (put_user(umem_progress(done, err), &uarg->copied))
		return -EFAULT;
	return err;
}

long umem_ioctl_zero(struct umem_region *r, void __user *arg)
{
	struct umem_zero __user *uarg = arg;
	struct umem_zero z;
	u64 done;
	int err;

	if (copy_from_user(&z, uarg, offsetof(struct umem_zero, zeroed)))
		return -EFAULT;
	if (z.mode || !umem_range_ok(r, z.offset, z.len))
		return -EINVAL;
	err = umem_fill_range(r, z.offset, z.len, NULL, &done);
	if (put_user(umem_progress(done, err), &uarg->zeroed))
		return -EFAULT;
	return err;
}

/* Entries are read and answered in chunks of this many. */
#define UMEM_VEC_CHUNK	64

static s64 umem_copy_entry(struct umem_region *r,
			   const struct umem_copy_entry *e)
{
	const void __user *src = u64_to_user_ptr(e->src);

	if (!umem_range_ok(r, e->offset, umem_page_size(r)))
		return -EINVAL;
	if (!e->src || !access_ok(src, umem_page_size(r)))
		return -EFAULT;
	return umem_install_page(r, e->offset >> r->shift, src);
}

long umem_ioctl_copy_vec(struct umem_region *r, void __user *arg)
{
	struct umem_copy_vec __user *uarg = arg;
	struct umem_copy_entry ents[UMEM_VEC_CHUNK];
	struct umem_copy_entry __user *uents;
	struct umem_copy_vec v;
	u64 handled = 0;
	unsigned int i, n;
	int err = 0;

	if (copy_from_user(&v, uarg, offsetof(struct umem_copy_vec, handled)))
		return -EFAULT;
	if (v.flags || v.reserved[0] || v.reserved[1] || !v.count ||
	    v.count > UMEM_COPY_VEC_MAX)
		return -EINVAL;
	uents = u64_to_user_ptr(v.entries);

	while (handled < v.count && !err) {
		n = min_t(u64, UMEM_VEC_CHUNK, v.count - handled);
		if (copy_from_user(ents, uents + handled, n * sizeof(ents[0]))) {
			err = -EFAULT;
			break;
		}
		for (i = 0; i < n; i++) {
			if (fatal_signal_pending(current)) {
				err = -EINTR;
				n = i;
				break;
			}
			ents[i].result = umem_copy_entry(r, &ents[i]);
			if (ents[i].result == -EINTR) {
				err = -EINTR;
				n = i;
				break;
			}
			cond_resched();
		}
		for (i = 0; i < n; i++) {
			if (put_user(ents[i].result, &uents[handled + i].result)) {
				err = -EFAULT;
				break;
			}
		}
		handled += i;
	}
	if (put_user(handled, &uarg->handled))
		return -EFAULT;
	return err;
}

/*
 * Copy up to @bytes of @from into the backing's 4 KiB page @pgoff at @off,
 * under the folio lock and only while its region page is missing.
 * Returns bytes copied (short when @from faulted) or -errno.  Called with
 * install_rwsem shared.
 */
static ssize_t umem_write_page(struct umem_region *r, pgoff_t pgoff,
			       size_t off, size_t bytes, struct iov_iter *from)
{
	struct folio *folio;
	struct page *page;
	size_t copied;

	page = umem_get_page(r, pgoff);
	if (IS_ERR(page))
		return PTR_ERR(page);
	folio = page_folio(page);
	folio_lock(folio);
	if (test_bit(umem_index(r, pgoff), r->present)) {
		folio_unlock(folio);
		folio_put(folio);
		return -EEXIST;
	}
	pagefault_disable();
	copied = copy_page_from_iter_atomic(page, off, bytes, from);
	pagefault_enable();
	if (copied) {
		flush_dcache_page(page);
		folio_mark_dirty(folio);
	}
	folio_unlock(folio);
	folio_put(folio);
	return copied;
}

/*
 * pwrite() on the server fd: data for missing pages, written straight into
 * the backing.  Nobody can map those pages until UMEM_MARK_PRESENT.  Each
 * page is written under its folio lock and only while it is missing, so a
 * racing install is never overwritten (EEXIST).
 */
ssize_t umem_server_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct umem_region *r = iocb->ki_filp->private_data;
	size_t len = iov_iter_count(from);
	loff_t pos = iocb->ki_pos;
	ssize_t done = 0, ret = 0;
	pgoff_t i, last;

	if (!len)
		return 0;
	if (pos < 0 || pos >= r->size || len > r->size - pos)
		return -EINVAL;

	last = (pos + len - 1) >> r->shift;
	for (i = pos >> r->shift; i <= last; i++)
		if (test_bit(i, r->present))
			return -EEXIST;

	while (iov_iter_count(from)) {
		size_t off = offset_in_page(pos);
		size_t bytes = min_t(size_t, PAGE_SIZE - off, iov_iter_count(from));

		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		down_read(&r->install_rwsem);
		ret = umem_write_page(r, pos >> PAGE_SHIFT, off, bytes, from);
		up_read(&r->install_rwsem);
		if (ret < 0)
			break;
		pos += ret;
		done += ret;
		if ((size_t)ret < bytes &&
		    fault_in_iov_iter_readable(from, bytes - ret) == bytes - ret) {
			ret = -EFAULT;
			break;
		}
		cond_resched();
	}
	iocb->ki_pos = pos;
	return done ? done : ret;
}

/* Offsets are read in chunks of this many, with no lock held. */
#define UMEM_MARK_CHUNK	64

/*
 * A 2 MiB page may be marked present only if pwrite() left it in one
 * 2 MiB folio, or left nothing (it reads as zeros, and the first fault
 * allocates a 2 MiB folio).  Small folios there: ENOMEM, nothing marked;
 * the data stays for a retry with UMEM_COPY.  Called with install_rwsem
 * shared.
 */
static int umem_check_backing(struct umem_region *r, pgoff_t index)
{
	struct folio *folio;
	int err = 0;

	if (!r->order)
		return 0;
	folio = __filemap_get_folio(r->shmem->f_mapping,
				    umem_index_pgoff(r, index), 0, 0);
	if (IS_ERR_OR_NULL(folio))
		return 0;
	if (folio_nr_pages(folio) < (1UL << r->order))
		err = umem_alloc_failed(r);
	folio_put(folio);
	return err;
}

long umem_ioctl_mark_present(struct umem_region *r, void __user *arg)
{
	struct umem_mark_present __user *uarg = arg;
	u64 offs[UMEM_MARK_CHUNK];
	struct umem_mark_present m;
	u64 __user *uoffs;
	u64 marked = 0;
	unsigned int i, n;
	int err = 0;

	if (copy_from_user(&m, uarg,
			   offsetof(struct umem_mark_present, marked)))
		return -EFAULT;
	if (m.flags || m.reserved[0] || m.reserved[1] || !m.count ||
	    m.count > UMEM_MARK_PRESENT_MAX)
		return -EINVAL;
	uoffs = u64_to_user_ptr(m.offsets);

	while (marked < m.count && !err) {
		n = min_t(u64, UMEM_MARK_CHUNK, m.count - marked);
		if (copy_from_user(offs, uoffs + marked, n * sizeof(offs[0]))) {
			err = -EFAULT;
			break;
		}
		/* Ordered against UMEM_DISCARD: never marked mid-punch. */
		down_read(&r->install_rwsem);
		for (i = 0; i < n; i++) {
			if (!umem_range_ok(r, offs[i], umem_page_size(r))) {
				err = -EINVAL;
				break;
			}
			err = umem_check_backing(r, offs[i] >> r->shift);
			if (err)
				break;
			err = umem_set_present(r, offs[i] >> r->shift);
			if (err)
				break;
			umem_map_installed(r, offs[i] >> r->shift);
		}
		up_read(&r->install_rwsem);
		for (n = 0; n < i; n++)
			umem_wake_page(r, offs[n] >> r->shift);
		marked += i;
		cond_resched();
	}
	if (put_user(marked, &uarg->marked))
		return -EFAULT;
	return err;
}

/*
 * Punch [offset, offset + len) out of the backing: its pages are freed
 * and every mapping of them zapped.  The caller holds sb_writers of the
 * backing's superblock (file_start_write(); on the MADV_REMOVE path
 * vfs_fallocate() of the map file took it) and then install_rwsem
 * exclusive.  So the backing's ->fallocate is called directly:
 * vfs_fallocate() would take sb_writers a second time (lockdep:
 * recursive locking).
 */
static long umem_backing_punch(struct umem_region *r, loff_t offset,
			       loff_t len)
{
	struct file *f = r->shmem;

	return f->f_op->fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  offset, len);
}

/*
 * Present pages of the range become missing: for each run of present
 * pages, bits first (so no new mapping), then the hole punch unmaps every
 * mapping and frees the data.  Missing pages are left alone, with any data
 * pwritten for them.  install_rwsem keeps installers out until it is done.
 */
long umem_ioctl_discard(struct umem_region *r, void __user *arg)
{
	unsigned long discarded = 0, unprotected = 0;
	struct umem_discard d;
	pgoff_t first, end, s, e;
	int err = 0;

	if (copy_from_user(&d, arg, sizeof(d)))
		return -EFAULT;
	if (d.flags || d.reserved || !umem_range_ok(r, d.offset, d.len))
		return -EINVAL;
	first = d.offset >> r->shift;
	end = (d.offset + d.len) >> r->shift;

	/* sb_writers before install_rwsem, as on the MADV_REMOVE path. */
	file_start_write(r->shmem);
	down_write(&r->install_rwsem);
	for (s = first; s < end && !err; s = e) {
		spin_lock(&r->lock);
		s = find_next_bit(r->present, end, s);
		if (s >= end) {
			spin_unlock(&r->lock);
			break;
		}
		e = find_next_zero_bit(r->present, end, s);
		WRITE_ONCE(r->complete, false);
		bitmap_clear(r->present, s, e - s);
		unprotected += umem_wp_clear_locked(r, s, e);
		r->npresent -= e - s;
		r->discarded += e - s;
		r->complete_notified = false;
		spin_unlock(&r->lock);
		discarded += e - s;
		err = umem_backing_punch(r, (loff_t)s << r->shift,
					 (loff_t)(e - s) << r->shift);
		cond_resched();
	}
	up_write(&r->install_rwsem);
	file_end_write(r->shmem);
	/* Writers of pages that were protected fault on missing pages now. */
	if (unprotected) {
		umem_queue_cancel_wp(r, first, end);
		umem_wake_range(r, first, end);
	}
	trace_umem_discard(r->id, first, end - first, discarded);
	return err;
}

/*
 * madvise(MADV_REMOVE) on a detached region (map.c): a tmpfs punch.  The
 * pages stay present and read as zeros; nobody can install any more.
 * Called from the map file's ->fallocate, inside vfs_fallocate()'s
 * file_start_write() on the stub's superblock, which is the backing's
 * too (both live on shmem's internal mount).
 */
long umem_punch_detached(struct umem_region *r, u64 offset, u64 len)
{
	int err;

	down_write(&r->install_rwsem);
	err = umem_backing_punch(r, offset, len);
	up_write(&r->install_rwsem);
	return err;
}

/*
 * Sum the per-CPU wait statistics.  Not one atomic snapshot: a wait being
 * accounted meanwhile may show in the total before the histogram, as it
 * could before (the fault counters and the wait ones were never taken in
 * one lock hold with the wait itself).
 */
static void umem_sum_wait_stats(struct umem_region *r, struct umem_stats *st,
				u64 *hist)
{
	unsigned int cpu, i;

	if (hist)
		memset(hist, 0, sizeof(u64) * UMEM_HIST_BUCKETS);
	for_each_possible_cpu(cpu) {
		const struct umem_wait_stats *ws = per_cpu_ptr(r->wait_stats, cpu);
		u64 max = READ_ONCE(ws->ns_max);

		st->wait_ns_total += READ_ONCE(ws->ns_total);
		if (max > st->wait_ns_max)
			st->wait_ns_max = max;
		for (i = 0; hist && i < UMEM_HIST_BUCKETS; i++)
			hist[i] += READ_ONCE(ws->hist[i]);
	}
}

/* Snapshot of the counters; @hist (UMEM_HIST_BUCKETS, may be NULL). */
void umem_get_stats(struct umem_region *r, struct umem_stats *st, u64 *hist)
{
	memset(st, 0, sizeof(*st));
	umem_sum_wait_stats(r, st, hist);
	spin_lock(&r->lock);
	st->size = r->size;
	st->page_size = umem_page_size(r);
	st->pages = r->npages;
	st->pages_present = r->npresent;
	st->requests = r->requests;
	st->requests_pending = r->npending;
	st->faults = r->faults;
	st->installed = r->installed;
	st->discarded = r->discarded;
	st->alloc_failed = r->alloc_failed;
	st->pages_protected = r->nprotected;
	st->wp_faults = r->wp_faults;
	spin_unlock(&r->lock);
	st->waiting = atomic_read(&r->waiting);
	st->mmaps = atomic64_read(&r->mmaps);
}

long umem_ioctl_stats(struct umem_region *r, void __user *arg)
{
	struct umem_stats st;

	umem_get_stats(r, &st, NULL);
	return copy_to_user(arg, &st, sizeof(st)) ? -EFAULT : 0;
}
