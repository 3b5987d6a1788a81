// SPDX-License-Identifier: GPL-2.0
/*
 * Mappings of a region, and the files behind them.
 *
 * mmap() of a node fd or of the server fd makes a *map file* and makes it
 * the vma's vm_file (umem_map()).  A map file
 *   - has umem's file operations (umem_map_fops) and the region in
 *     private_data (it holds a reference, dropped in its release);
 *   - is a file of the region's stub inode, an empty shmem inode that
 *     holds no data (region.c), so that code which takes vm_file for a
 *     shmem file (shmem_file() looks only at f_mapping) sees a real shmem
 *     inode with the default seals, and reopening the vma's file by path
 *     (/proc/PID/map_files, CRIU) yields an empty file, never the data;
 *   - has the backing's mapping as f_mapping, so the vma is linked into
 *     the backing's i_mmap tree: rmap walks (reclaim, migration, hole
 *     punching) find it, as for any shared file mapping.
 * The core handles vm_file's references on split, fork and mremap, so a
 * mapping pins the region for as long as it exists, and never pins the
 * server fd: a VMM's mapping cannot keep a dead daemon's region attached.
 * region->mmaps counts the mmap() calls made here (umem_stats.mmaps): a
 * daemon whose VMM maps the node by path learns from it that a VMM took
 * the RAM.
 *
 * Re-mapping the vma's own file (remap_file_pages()) comes back here
 * through umem_map_fops.mmap and gives a umem mapping again.
 * madvise(MADV_REMOVE) calls the map file's ->fallocate (umem_fallocate()):
 * refused while the region is served, a tmpfs-like zeroing punch once it
 * is detached.  msync(MS_SYNC) finds a no-op ->fsync, as on shmem.
 *
 * vm_flags: VM_DONTEXPAND (mremap() cannot grow the mapping past what was
 * checked here) and, in 4 KiB regions, VM_MIXEDMAP (the fault path maps a
 * single page of a large folio with vm_insert_page(), see fault.c).  A
 * 2 MiB region's vmas are not VM_MIXEDMAP: their present pages are whole
 * folios that the core maps with PMDs, and a PMD in a VM_MIXEDMAP vma
 * would be taken for a special mapping (zap_huge_pmd()).  VM_DONTEXPAND
 * alone is in VM_SPECIAL, which is what keeps khugepaged and
 * MADV_COLLAPSE away: they would collapse missing pages into a huge folio
 * behind the fault path.
 *
 * Addresses: mmap() of a 2 MiB region's node or server fd without a hint
 * gets a 2 MiB-aligned address (thp_get_unmapped_area()), so a mapping at
 * a 2 MiB-aligned offset is PMD-mapped without the VMM aligning it.
 * VM_SPECIAL also makes mlock() a no-op on the mapping (it succeeds and
 * locks nothing) and KSM skips it; the pages are shmem and follow the
 * memory policy of the task that installs them (Documentation/umem.rst).
 *
 * Locking: called with mmap_lock held for write (mmap) or, for
 * umem_fallocate(), with no mm lock (madvise_remove() drops it).
 */
#include <linux/fs.h>
#include <linux/falloc.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/shmem_fs.h>

#include "umem_internal.h"
#include "compat.h"

static int umem_map_release(struct inode *inode, struct file *file)
{
	umem_region_put(file->private_data);
	return 0;
}

/*
 * Only shared mappings inside the region.  VM_MAYSHARE, not VM_SHARED:
 * a MAP_SHARED mapping of a node opened O_RDONLY has VM_SHARED cleared by
 * do_mmap() (it can never be written), and is a valid read-only view.  A
 * private copy of guest RAM would silently stop following the migration.
 */
static int umem_check_vma(struct umem_region *r, struct vm_area_struct *vma)
{
	pgoff_t npages = r->size >> PAGE_SHIFT;	/* vm_pgoff is in 4 KiB */

	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (vma->vm_pgoff >= npages || vma_pages(vma) > npages - vma->vm_pgoff)
		return -EINVAL;
	return 0;
}

static void umem_vma_init(struct umem_region *r, struct vm_area_struct *vma)
{
	umem_vm_flags_set(vma, r->order ? VM_DONTEXPAND :
				VM_DONTEXPAND | VM_MIXEDMAP);
	/* Write-notify when pages can be protected (fault.c, wp.c). */
	vma->vm_ops = r->wp ? &umem_wp_vm_ops : &umem_vm_ops;
}

/* remap_file_pages() maps the vma's map file again: a umem vma again. */
static int umem_map_mmap(struct file *file, struct vm_area_struct *vma)
{
	int err = umem_check_vma(file->private_data, vma);

	if (err)
		return err;
	umem_vma_init(file->private_data, vma);
	return 0;
}

static const struct file_operations umem_map_fops = {
	.owner = THIS_MODULE,
	.mmap = umem_map_mmap,
	.fallocate = umem_fallocate,
	.fsync = noop_fsync,
	.release = umem_map_release,
};

/* A new map file for a mapping of @r; read-only unless @writable. */
static struct file *umem_map_file(struct umem_region *r, bool writable)
{
	struct inode *inode = file_inode(r->stub);
	char name[UMEM_NAME_MAX + 8];
	struct file *map;

	snprintf(name, sizeof(name), "umem-%s", r->name);
	/* The map file's f_op pins the module; __fput() drops it. */
	__module_get(THIS_MODULE);
	ihold(inode);
	map = alloc_file_pseudo(inode, r->stub->f_path.mnt, name,
				writable ? O_RDWR : O_RDONLY, &umem_map_fops);
	if (IS_ERR(map)) {
		iput(inode);
		module_put(THIS_MODULE);
		return map;
	}
	map->f_mapping = r->shmem->f_mapping;
	umem_region_get(r);
	map->private_data = r;
	return map;
}

static int umem_map(struct umem_region *r, struct vm_area_struct *vma)
{
	struct file *map;
	int err;

	err = umem_check_vma(r, vma);
	if (err)
		return err;
	map = umem_map_file(r, vma->vm_flags & VM_MAYWRITE);
	if (IS_ERR(map))
		return PTR_ERR(map);
	umem_vma_init(r, vma);
	vma_set_file(vma, map);
	fput(map);
	atomic64_inc(&r->mmaps);
	return 0;
}

int umem_node_mmap(struct file *file, struct vm_area_struct *vma)
{
	file_accessed(file);
	return umem_map(file->private_data, vma);
}

int umem_server_mmap(struct file *file, struct vm_area_struct *vma)
{
	return umem_map(file->private_data, vma);
}

/* ->get_unmapped_area of node and server fds: see the top of this file. */
unsigned long umem_get_unmapped_area(struct file *file, unsigned long addr,
				     unsigned long len, unsigned long pgoff,
				     unsigned long flags)
{
	struct umem_region *r = file->private_data;

	if (r->order)
		return umem_thp_get_unmapped_area(file, addr, len, pgoff, flags);
	return umem_mm_get_unmapped_area(file, addr, len, pgoff, flags);
}

/*
 * ->fallocate of a map file: madvise(MADV_REMOVE) on a umem mapping.
 * While the region is served only the daemon may make pages missing
 * (UMEM_DISCARD): a punch behind its back would leave pages it believes
 * installed without data.  So: EBUSY.  Once it is detached nobody can
 * install, and a punch zeroes the range as on tmpfs (the pages stay
 * present and read as zeros), which is what a balloon driver expects.
 */
long umem_fallocate(struct file *file, int mode, loff_t offset, loff_t len)
{
	struct umem_region *r = file->private_data;

	if (mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	/* madvise() works in 4 KiB pages, whatever the region's page size. */
	if (offset < 0 || len <= 0 || !PAGE_ALIGNED(offset) ||
	    !PAGE_ALIGNED(len) || offset >= r->size || len > r->size - offset)
		return -EINVAL;
	if (umem_region_live(r))
		return -EBUSY;
	return umem_punch_detached(r, offset, len);
}
