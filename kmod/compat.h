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

#endif /* _UMEM_COMPAT_H */
