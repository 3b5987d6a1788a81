// SPDX-License-Identifier: GPL-2.0
/*
 * umem region lifetime and the per-region device node.
 *
 * A region lives while anything references it: the server fd, node fds,
 * and mappings (each vma pins a node file or, for a mapping of the server
 * fd, a "[umem-map]" file of its own; a task waiting in the fault path with
 * mmap_lock dropped pins that file too).  The final put removes the node
 * and the IDR entry under umem_mutex (so that a concurrent open of the node
 * cannot find a dying region), then frees the rest.  Each region holds a
 * module reference, so the module cannot be unloaded while one exists.
 *
 * Locking: umem_mutex guards umem_idr and node creation/removal; see
 * umem_internal.h for the per-region locks.  The genl code (genl.c) looks
 * at regions only through umem_region_for_each() and umem_region_find(),
 * whose callbacks run under umem_mutex: a region found in the IDR cannot
 * be freed before the mutex is dropped, so they take no reference (and so
 * never drop a last one).  Genl events are sent here from process context
 * with no spinlock held.
 */
#include <linux/anon_inodes.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/file.h>
#include <linux/idr.h>
#include <linux/memcontrol.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched/mm.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>

#include "umem_internal.h"
#include "umem_trace.h"
#include "compat.h"

static DEFINE_MUTEX(umem_mutex);
static DEFINE_IDR(umem_idr);
static dev_t umem_devt;
static struct cdev umem_cdev;

static ssize_t name_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	struct umem_region *r = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%s\n", r->name);
}
static DEVICE_ATTR_RO(name);

static ssize_t size_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	struct umem_region *r = dev_get_drvdata(dev);

	return sysfs_emit(buf, "%llu\n", r->size);
}
static DEVICE_ATTR_RO(size);

static struct attribute *umem_dev_attrs[] = {
	&dev_attr_name.attr,
	&dev_attr_size.attr,
	NULL,
};
ATTRIBUTE_GROUPS(umem_dev);

static struct class umem_class = {
	.name = "umem",
	.dev_groups = umem_dev_groups,
};

noinline void umem_region_get(struct umem_region *r)
{
	kref_get(&r->ref);
}

/*
 * Last reference gone.  A concurrent umem_node_open() may still find the
 * region in the IDR until we remove it, but its kref_get_unless_zero()
 * fails, so it never sees a dying region.
 */
static void umem_region_release(struct kref *ref)
{
	struct umem_region *r = container_of(ref, struct umem_region, ref);

	mutex_lock(&umem_mutex);
	idr_remove(&umem_idr, r->id);
	device_destroy(&umem_class, MKDEV(MAJOR(umem_devt), r->id));
	mutex_unlock(&umem_mutex);
	umem_genl_event(r, UMEM_EVENT_DESTROYED);

	WARN_ON_ONCE(!list_empty(&r->pending));
	put_pid(r->daemon);
	put_pid(r->creator);
	fput(r->shmem);
	mem_cgroup_put(r->memcg);
	kvfree(r->present);
	kvfree(r->requested);
	kfree(r);
	/*
	 * Our caller is a file's release (the file still pins the module
	 * through its f_op) or fput() itself, so this is not the last
	 * module reference executing module text.
	 */
	module_put(THIS_MODULE);
}

noinline void umem_region_put(struct umem_region *r)
{
	kref_put(&r->ref, umem_region_release);
}

/* Region names become device names: keep them to a safe set. */
static int umem_check_name(const char *name)
{
	size_t len = strnlen(name, UMEM_NAME_MAX);
	size_t i;

	if (len == 0 || len == UMEM_NAME_MAX)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!isalnum(c) && c != '_' && c != '-' && c != '.')
			return -EINVAL;
	}
	/* Bytes after the NUL must be zero too: they are reserved. */
	for (i = len; i < UMEM_NAME_MAX; i++)
		if (name[i])
			return -EINVAL;
	return 0;
}

static bool umem_name_taken(const char *name)
{
	struct umem_region *r;
	int id;

	lockdep_assert_held(&umem_mutex);
	idr_for_each_entry(&umem_idr, r, id)
		if (!strcmp(r->name, name))
			return true;
	return false;
}

static void umem_region_free_unlisted(struct umem_region *r)
{
	if (r->shmem)
		fput(r->shmem);
	put_pid(r->creator);
	mem_cgroup_put(r->memcg);
	kvfree(r->present);
	kvfree(r->requested);
	kfree(r);
}

struct umem_region *umem_region_create(const struct umem_create *args)
{
	char shm_name[UMEM_NAME_MAX + 8];
	struct umem_region *r;
	struct device *dev;
	unsigned int i;
	int err;

	err = umem_check_name(args->name);
	if (err)
		return ERR_PTR(err);

	r = kzalloc(sizeof(*r), GFP_KERNEL_ACCOUNT);
	if (!r)
		return ERR_PTR(-ENOMEM);
	kref_init(&r->ref);
	spin_lock_init(&r->lock);
	init_rwsem(&r->install_rwsem);
	INIT_LIST_HEAD(&r->pending);
	init_waitqueue_head(&r->read_wq);
	for (i = 0; i < UMEM_FAULT_WQ_HASH; i++)
		init_waitqueue_head(&r->fault_wq[i]);
	strscpy(r->name, args->name, sizeof(r->name));
	r->size = args->size;
	r->npages = args->size >> PAGE_SHIFT;
	r->state = UMEM_STATE_LIVE;
	r->memcg = get_mem_cgroup_from_mm(current->mm);
	r->creator = get_task_pid(current, PIDTYPE_TGID);
	r->created_ns = ktime_get_ns();

	err = -ENOMEM;
	r->present = kvcalloc(BITS_TO_LONGS(r->npages), sizeof(long),
			      GFP_KERNEL_ACCOUNT);
	r->requested = kvcalloc(BITS_TO_LONGS(r->npages), sizeof(long),
				GFP_KERNEL_ACCOUNT);
	if (!r->present || !r->requested)
		goto err_free;

	/* The name shows in /proc/PID/maps as "/umem-<name> (deleted)". */
	snprintf(shm_name, sizeof(shm_name), "umem-%s", r->name);
	r->shmem = shmem_file_setup(shm_name, r->size, VM_NORESERVE);
	if (IS_ERR(r->shmem)) {
		err = PTR_ERR(r->shmem);
		r->shmem = NULL;
		goto err_free;
	}

	mutex_lock(&umem_mutex);
	err = -EEXIST;
	if (umem_name_taken(r->name))
		goto err_unlock;
	err = idr_alloc(&umem_idr, r, 0, UMEM_MAX_MINORS, GFP_KERNEL);
	if (err < 0)
		goto err_unlock;
	r->id = err;
	dev = device_create(&umem_class, NULL,
			    MKDEV(MAJOR(umem_devt), r->id), r,
			    "umem-%s", r->name);
	if (IS_ERR(dev)) {
		err = PTR_ERR(dev);
		idr_remove(&umem_idr, r->id);
		goto err_unlock;
	}
	r->dev = dev;
	__module_get(THIS_MODULE);
	mutex_unlock(&umem_mutex);
	umem_genl_event(r, UMEM_EVENT_CREATED);
	return r;

err_unlock:
	mutex_unlock(&umem_mutex);
err_free:
	umem_region_free_unlisted(r);
	return ERR_PTR(err);
}

/*
 * The daemon is gone: no page will ever arrive.  Every task waiting for a
 * missing page, and every later fault on one, gets SIGBUS (see fault.c for
 * why SIGBUS and not a silent retry).  Present pages stay mapped.
 * Called from the server fd's release and from UMEM_CMD_FAIL (under
 * umem_mutex); only the first call reports the detach.
 */
void umem_region_detach(struct umem_region *r)
{
	unsigned long missing;
	bool was_live;

	spin_lock(&r->lock);
	was_live = r->state == UMEM_STATE_LIVE;
	r->state = UMEM_STATE_DETACHED;
	missing = r->npages - r->npresent;
	spin_unlock(&r->lock);
	umem_queue_flush(r);
	umem_wake_all(r);
	wake_up_all(&r->read_wq);
	if (!was_live)
		return;
	trace_umem_server_detached(r->id, missing, atomic_read(&r->waiting));
	if (missing)
		umem_genl_event(r, UMEM_EVENT_DETACHED);
}

/* Remember which process reads requests: the daemon, for umemctl list. */
void umem_region_note_daemon(struct umem_region *r)
{
	struct pid *pid = task_tgid(current);
	struct pid *old;

	if (READ_ONCE(r->daemon) == pid)
		return;
	get_pid(pid);
	spin_lock(&r->lock);
	old = r->daemon;
	r->daemon = pid;
	spin_unlock(&r->lock);
	put_pid(old);
}

/*
 * Call @cb for each live region with id >= *@pos, in id order, under
 * umem_mutex; stop when @cb returns non-zero and leave *@pos at that
 * region's id (to resume a dump there).  Returns @cb's value or 0.
 */
int umem_region_for_each(int *pos, int (*cb)(struct umem_region *r, void *arg),
			 void *arg)
{
	struct umem_region *r;
	int id = *pos, ret = 0;

	mutex_lock(&umem_mutex);
	idr_for_each_entry_continue(&umem_idr, r, id) {
		/* A dying region waits on umem_mutex to leave the IDR. */
		if (!kref_read(&r->ref))
			continue;
		ret = cb(r, arg);
		if (ret)
			break;
	}
	*pos = id;
	mutex_unlock(&umem_mutex);
	return ret;
}

/* The device number of the region's node /dev/umem-NAME. */
dev_t umem_region_devt(const struct umem_region *r)
{
	return MKDEV(MAJOR(umem_devt), r->id);
}

/*
 * Call @cb, under umem_mutex, for the live region named @name (when not
 * NULL) or else with id @id.  Returns @cb's value, or -ENOENT.
 */
int umem_region_find(const char *name, int id,
		     int (*cb)(struct umem_region *r, void *arg), void *arg)
{
	struct umem_region *r = NULL, *it;
	int ret = -ENOENT;

	mutex_lock(&umem_mutex);
	if (name) {
		idr_for_each_entry(&umem_idr, it, id)
			if (!strcmp(it->name, name)) {
				r = it;
				break;
			}
	} else if (id >= 0) {
		r = idr_find(&umem_idr, id);
	}
	if (r && kref_read(&r->ref))
		ret = cb(r, arg);
	mutex_unlock(&umem_mutex);
	return ret;
}

/*
 * Page of the backing for @pgoff, allocated (zeroed) when there is none,
 * charged to the creator's memory cgroup.  Returns with a reference.
 */
struct page *umem_get_page(struct umem_region *r, pgoff_t pgoff)
{
	struct address_space *mapping = r->shmem->f_mapping;
	struct mem_cgroup *old;
	struct page *page;

	old = set_active_memcg(r->memcg);
	page = shmem_read_mapping_page_gfp(mapping, pgoff,
					   mapping_gfp_mask(mapping));
	set_active_memcg(old);
	return page;
}

/*
 * Set up a mapping of the region.  The vma maps the shmem file itself (so
 * the kernel's shmem helpers see a consistent file, inode and mapping, and
 * hole punching unmaps it), with umem's vm_ops in front of it; @pin, a node
 * or "[umem-map]" file, is kept in vm_private_data and holds the region and
 * this module for as long as the vma exists (umem_vm_open/close).
 *
 * Only shared mappings inside the region: a private copy of guest RAM would
 * silently stop following the migration.  VM_DONTEXPAND makes mremap()
 * growth fail with EFAULT and keeps khugepaged away: it must never collapse
 * missing pages into a huge page behind the fault path's back.
 */
static int umem_check_vma(struct umem_region *r, struct vm_area_struct *vma)
{
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (vma->vm_pgoff >= r->npages ||
	    vma_pages(vma) > r->npages - vma->vm_pgoff)
		return -EINVAL;
	return 0;
}

static void umem_setup_vma(struct file *pin, struct vm_area_struct *vma)
{
	struct umem_region *r = pin->private_data;

	umem_vm_flags_set(vma, VM_DONTEXPAND);
	vma->vm_private_data = get_file(pin);
	vma->vm_ops = &umem_vm_ops;
	vma_set_file(vma, r->shmem);
}

static int umem_node_mmap(struct file *file, struct vm_area_struct *vma)
{
	int err = umem_check_vma(file->private_data, vma);

	if (err)
		return err;
	file_accessed(file);
	umem_setup_vma(file, vma);
	return 0;
}

static int umem_map_release(struct inode *inode, struct file *file)
{
	umem_region_put(file->private_data);
	return 0;
}

static const struct file_operations umem_map_fops = {
	.owner = THIS_MODULE,
	.release = umem_map_release,
};

/*
 * mmap() of the server fd: the mapping is pinned by a file of its own, so
 * it never holds the server fd (only the server fd's release detaches).
 */
int umem_server_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct umem_region *r = file->private_data;
	struct file *map;
	int err;

	err = umem_check_vma(r, vma);
	if (err)
		return err;
	umem_region_get(r);
	map = anon_inode_getfile("[umem-map]", &umem_map_fops, r, O_RDWR);
	if (IS_ERR(map)) {
		umem_region_put(r);
		return PTR_ERR(map);
	}
	umem_setup_vma(map, vma);
	fput(map);
	return 0;
}

static int umem_node_open(struct inode *inode, struct file *file)
{
	struct umem_region *r;

	mutex_lock(&umem_mutex);
	r = idr_find(&umem_idr, iminor(inode));
	if (r && !kref_get_unless_zero(&r->ref))
		r = NULL;
	mutex_unlock(&umem_mutex);
	if (!r)
		return -ENODEV;
	file->private_data = r;
	return 0;
}

static int umem_node_release(struct inode *inode, struct file *file)
{
	umem_region_put(file->private_data);
	return 0;
}

static loff_t umem_node_llseek(struct file *file, loff_t offset, int whence)
{
	struct umem_region *r = file->private_data;

	return fixed_size_llseek(file, offset, whence, r->size);
}

static const struct file_operations umem_node_fops = {
	.owner = THIS_MODULE,
	.open = umem_node_open,
	.release = umem_node_release,
	.llseek = umem_node_llseek,
	.mmap = umem_node_mmap,
};

int umem_region_init(void)
{
	int err;

	err = alloc_chrdev_region(&umem_devt, 0, UMEM_MAX_MINORS, "umem");
	if (err)
		return err;
	cdev_init(&umem_cdev, &umem_node_fops);
	err = cdev_add(&umem_cdev, umem_devt, UMEM_MAX_MINORS);
	if (err)
		goto err_region;
	err = class_register(&umem_class);
	if (err)
		goto err_cdev;
	return 0;

err_cdev:
	cdev_del(&umem_cdev);
err_region:
	unregister_chrdev_region(umem_devt, UMEM_MAX_MINORS);
	return err;
}

void umem_region_exit(void)
{
	WARN_ON_ONCE(!idr_is_empty(&umem_idr));
	class_unregister(&umem_class);
	cdev_del(&umem_cdev);
	unregister_chrdev_region(umem_devt, UMEM_MAX_MINORS);
	idr_destroy(&umem_idr);
}
