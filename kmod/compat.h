/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Small shims over the mm API differences between the kernels umem builds
 * against (6.1 and 6.12 LTS).  Everything else in kmod/ is written against
 * the current API; each difference lives here as one inline.
 */
#ifndef _UMEM_COMPAT_H
#define _UMEM_COMPAT_H

#include <linux/version.h>
#include <linux/mm.h>
#include <linux/pagemap.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
static inline void umem_vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}
#else
static inline void umem_vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags |= flags;
}
#endif

/* struct device_type's ->devnode() takes a const device since 6.2. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
#define umem_devnode_dev	const struct device
#else
#define umem_devnode_dev	struct device
#endif

/*
 * Drop the lock the fault was taken under: the per-VMA lock where the
 * kernel has them (6.4+), else mmap_lock.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
static inline void umem_release_fault_lock(struct vm_fault *vmf)
{
	release_fault_lock(vmf);
}
#else
static inline void umem_release_fault_lock(struct vm_fault *vmf)
{
	mmap_read_unlock(vmf->vma->vm_mm);
}
#endif

/*
 * One page of the backing file through its ->write_begin/->write_end: the
 * folio comes back locked and, when it is new, not zeroed (shmem's
 * SGP_WRITE), so an install writes each byte once; *@pagep is the page
 * at @pos.  ->write_end marks the folio uptodate (zeroing what @copied
 * did not cover, unless the caller marked it uptodate itself), dirty,
 * unlocks and drops it.  @len is what the caller means to write (shmem
 * uses it only to size a huge folio under huge=within_size).  Since 6.12
 * both take a folio.  Called without i_rwsem: shmem needs it only to grow
 * the file or check seals, and a region's backing never grows and has no
 * seals.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
static inline int umem_write_begin(struct file *file, loff_t pos,
				   unsigned int len, struct page **pagep,
				   void **fsdata)
{
	struct address_space *mapping = file->f_mapping;
	struct folio *folio;
	int err;

	err = mapping->a_ops->write_begin(file, mapping, pos, len, &folio,
					  fsdata);
	if (!err)
		*pagep = folio_file_page(folio, pos >> PAGE_SHIFT);
	return err;
}

static inline void umem_write_end(struct file *file, loff_t pos,
				  unsigned int len, unsigned int copied,
				  struct page *page, void *fsdata)
{
	struct address_space *mapping = file->f_mapping;

	mapping->a_ops->write_end(file, mapping, pos, len, copied,
				  page_folio(page), fsdata);
}
#else
static inline int umem_write_begin(struct file *file, loff_t pos,
				   unsigned int len, struct page **pagep,
				   void **fsdata)
{
	struct address_space *mapping = file->f_mapping;

	return mapping->a_ops->write_begin(file, mapping, pos, len, pagep,
					   fsdata);
}

static inline void umem_write_end(struct file *file, loff_t pos,
				  unsigned int len, unsigned int copied,
				  struct page *page, void *fsdata)
{
	struct address_space *mapping = file->f_mapping;

	mapping->a_ops->write_end(file, mapping, pos, len, copied, page,
				  fsdata);
}
#endif

/* The mm's default placement; a mm helper since 6.10. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
static inline unsigned long
umem_mm_get_unmapped_area(struct file *file, unsigned long addr,
			  unsigned long len, unsigned long pgoff,
			  unsigned long flags)
{
	return mm_get_unmapped_area(current->mm, file, addr, len, pgoff, flags);
}
#else
static inline unsigned long
umem_mm_get_unmapped_area(struct file *file, unsigned long addr,
			  unsigned long len, unsigned long pgoff,
			  unsigned long flags)
{
	return current->mm->get_unmapped_area(file, addr, len, pgoff, flags);
}
#endif

/* PMD-aligned placement; without THP there are no 2 MiB regions. */
#ifdef CONFIG_TRANSPARENT_HUGEPAGE
#define umem_thp_get_unmapped_area	thp_get_unmapped_area
#else
#define umem_thp_get_unmapped_area	umem_mm_get_unmapped_area
#endif

#endif /* _UMEM_COMPAT_H */
