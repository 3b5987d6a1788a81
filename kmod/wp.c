// SPDX-License-Identifier: GPL-2.0
/*
 * Write protection of present pages, for live snapshots: UMEM_WRITEPROTECT.
 *
 * A region created with UMEM_CREATE_WP has a third bitmap, "protected".
 * Its vmas are write-notify (umem_wp_vm_ops has ->page_mkwrite), so no
 * PTE is ever writable unless umem_page_mkwrite() (fault.c) let it be,
 * with the page's folio locked, after finding the page unprotected.
 *
 * Protecting a range, so that no write reaches it once the ioctl returns:
 *   1. set the protected bits (region->lock);
 *   2. zap every PTE of the range in every mapping (unmap_mapping_range());
 *   3. umem_wp_barrier(): wait for write faults that tested the bit just
 *      before step 1 and may install a writable PTE after step 2, and
 *      write-protect every folio still mapped.
 * Steps 1 and 3 alone are correct (step 3 would mkclean every mapped
 * folio); step 2 is the fast path: one walk of the page tables instead of
 * one rmap walk per mapped page, and this runs while a snapshot daemon has
 * the VMM stopped, so its cost is the VMM's pause.
 * Reads fault the pages back in read-only; writes wait for the daemon
 * (fault.c).  Unprotecting clears the bits, drops unread UMEM_REQ_WP
 * requests of the range and wakes its writers, whose retried faults map
 * the pages writable.
 *
 * A protected page's "requested" bit is its UMEM_REQ_WP request (present
 * pages have no other kind), so unprotecting, discarding (install.c) and
 * detaching (region.c) clear both bits together, under region->lock.
 *
 * Locking: region->lock for the bits and counters; folio locks in the
 * barrier, taken with no umem lock held; unmap_mapping_range() takes
 * i_mmap_rwsem and the page table locks.  Nothing here sleeps on user
 * space.  In a 2 MiB region the unit is the 2 MiB page: its bit, its
 * PMD (or the PTEs of an unaligned mapping) and its folio.  A write
 * through a read-only PMD makes the core "split" it, which for a file THP
 * only zaps it (__split_huge_pmd_locked()); the write then comes through
 * ->fault and ->page_mkwrite like any other, and finish_fault() maps the
 * folio writable with a PMD again.
 */
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/pagevec.h>
#include <linux/rmap.h>
#include <linux/uaccess.h>

#include "umem_internal.h"

/*
 * Unprotect [start, end): clear the protected bits and the UMEM_REQ_WP
 * requested bits that go with them.  Returns how many pages were
 * protected.  The caller drops their unread requests and wakes their
 * writers (umem_queue_cancel_wp(), umem_wake_range()) after unlocking.
 */
unsigned long umem_wp_clear_locked(struct umem_region *r, pgoff_t start,
				   pgoff_t end)
{
	unsigned long n = 0;
	pgoff_t s, e;

	lockdep_assert_held(&r->lock);
	if (!r->nprotected)
		return 0;
	for (s = start; s < end; s = e) {
		s = find_next_bit(r->protected, end, s);
		if (s >= end)
			break;
		e = find_next_zero_bit(r->protected, end, s);
		bitmap_clear(r->protected, s, e - s);
		bitmap_clear(r->requested, s, e - s);
		n += e - s;
	}
	WRITE_ONCE(r->nprotected, r->nprotected - n);
	return n;
}

/*
 * The protected bits of the region pages backed by the 4 KiB pages
 * [first, end) are set and every PTE and PMD of the range is zapped.  A
 * write fault that tested the bit in umem_page_mkwrite() before it was
 * set may still hold its folio lock, about to install a writable PTE
 * behind the zap.  Wait for each such fault and write-protect what it
 * mapped.  The smp_mb() before this call pairs with the one in
 * umem_page_mkwrite(): a fault that did not see the bit had locked the
 * folio before we look at it, so we find it locked, or unlocked with its
 * PTE (and mapcount) in place.  A folio neither locked nor mapped has no
 * such fault in flight, and the next one to lock it sees the bit.
 */
static void umem_wp_barrier(struct umem_region *r, pgoff_t first, pgoff_t end)
{
	struct address_space *mapping = r->shmem->f_mapping;
	struct folio_batch fbatch;
	pgoff_t index = first;
	unsigned int i;

	folio_batch_init(&fbatch);
	while (filemap_get_folios(mapping, &index, end - 1, &fbatch)) {
		for (i = 0; i < folio_batch_count(&fbatch); i++) {
			struct folio *folio = fbatch.folios[i];
			bool busy = folio_test_locked(folio);

			/* The lock bit before the mapcount (folio_unlock() releases). */
			smp_rmb();
			if (!busy && !folio_mapped(folio))
				continue;
			folio_lock(folio);
			if (folio->mapping == mapping && folio_mapped(folio)) {
				/* The PTEs' dirty bits go to the folio first. */
				folio_mark_dirty(folio);
				folio_mkclean(folio);
			}
			folio_unlock(folio);
		}
		folio_batch_release(&fbatch);
		cond_resched();
	}
}

static int umem_protect(struct umem_region *r, pgoff_t first, pgoff_t end)
{
	unsigned long n = 0;
	pgoff_t s, e;

	spin_lock(&r->lock);
	if (r->state != UMEM_STATE_LIVE) {
		spin_unlock(&r->lock);
		return -ENXIO;
	}
	if (!r->complete && find_next_zero_bit(r->present, end, first) < end) {
		spin_unlock(&r->lock);
		return -ENOENT;
	}
	for (s = first; s < end; s = e) {
		s = find_next_zero_bit(r->protected, end, s);
		if (s >= end)
			break;
		e = find_next_bit(r->protected, end, s);
		bitmap_set(r->protected, s, e - s);
		n += e - s;
	}
	WRITE_ONCE(r->nprotected, r->nprotected + n);
	spin_unlock(&r->lock);

	/* The bits before the zap and before the barrier's reads. */
	smp_mb();
	unmap_mapping_range(r->shmem->f_mapping, (loff_t)first << r->shift,
			    (loff_t)(end - first) << r->shift, 0);
	umem_wp_barrier(r, umem_index_pgoff(r, first), umem_index_pgoff(r, end));
	return 0;
}

static void umem_unprotect(struct umem_region *r, pgoff_t first, pgoff_t end)
{
	unsigned long n;

	spin_lock(&r->lock);
	n = umem_wp_clear_locked(r, first, end);
	spin_unlock(&r->lock);
	if (!n)
		return;
	umem_queue_cancel_wp(r, first, end);
	umem_wake_range(r, first, end);
}

long umem_ioctl_writeprotect(struct umem_region *r, void __user *arg)
{
	struct umem_writeprotect __user *uarg = arg;
	struct umem_writeprotect wp;
	pgoff_t first, end;
	int err = 0;

	if (copy_from_user(&wp, uarg, offsetof(struct umem_writeprotect, done)))
		return -EFAULT;
	if ((wp.mode & ~UMEM_WP_MODE_PROTECT) ||
	    !umem_range_ok(r, wp.offset, wp.len))
		return -EINVAL;
	if (!r->wp)
		return -EOPNOTSUPP;
	first = wp.offset >> r->shift;
	end = (wp.offset + wp.len) >> r->shift;
	if (wp.mode & UMEM_WP_MODE_PROTECT)
		err = umem_protect(r, first, end);
	else
		umem_unprotect(r, first, end);
	if (put_user(err ? 0 : (s64)wp.len, &uarg->done))
		return -EFAULT;
	return err;
}
