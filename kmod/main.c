// SPDX-License-Identifier: GPL-2.0
/*
 * umem: user-serviced memory regions for postcopy live migration.
 *
 * This file holds the control device (/dev/umem: the UMEM_GET_API handshake
 * and UMEM_CREATE), the server fd's file operations and ioctl dispatch, and
 * module init/exit.  Regions live in region.c, their device nodes in
 * node.c, mappings in map.c, the fault path in fault.c, the request queue
 * in queue.c and the install paths in install.c.
 *
 * Who may do what: opening /dev/umem for writing is the right to create
 * regions (its mode and group are the policy, as for /dev/kvm; the module
 * makes it 0600 root:root and a udev rule may open it up); whoever holds
 * a server fd serves its region; whoever may open a region's node (owner,
 * group and mode fixed at creation) maps it.
 *
 * Locking: nothing here takes a lock of its own; see umem_internal.h.
 * The genl "complete" event is checked after the install ioctls return,
 * with no lock held.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>

#include "umem_internal.h"

#define UMEM_IOCTL_BIT(cmd)	(1ULL << _IOC_NR(cmd))
#define UMEM_IOCTLS	(UMEM_IOCTL_BIT(UMEM_GET_API) |		\
			 UMEM_IOCTL_BIT(UMEM_CREATE) |		\
			 UMEM_IOCTL_BIT(UMEM_COPY) |		\
			 UMEM_IOCTL_BIT(UMEM_COPY_VEC) |	\
			 UMEM_IOCTL_BIT(UMEM_ZERO) |		\
			 UMEM_IOCTL_BIT(UMEM_MARK_PRESENT) |	\
			 UMEM_IOCTL_BIT(UMEM_DISCARD) |		\
			 UMEM_IOCTL_BIT(UMEM_STATS) |		\
			 UMEM_IOCTL_BIT(UMEM_BIND) |		\
			 UMEM_IOCTL_BIT(UMEM_WRITEPROTECT) |	\
			 UMEM_IOCTL_BIT(UMEM_ATTACH))

static bool umem_zeroed(const u64 *words, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (words[i])
			return false;
	return true;
}

/*
 * What works here: UMEM_F_PAGE_2M needs 2 MiB transparent huge pages, and
 * UMEM_F_MAP_ON_INSTALL the module parameter map_on_install.
 */
static u64 umem_features(void)
{
	u64 features = UMEM_F_ALL;

	if (!umem_huge_supported())
		features &= ~UMEM_F_PAGE_2M;
	if (!umem_map_on_install())
		features &= ~UMEM_F_MAP_ON_INSTALL;
	return features;
}

static long umem_ioctl_get_api(void __user *arg)
{
	struct umem_api api;

	if (copy_from_user(&api, arg, sizeof(api)))
		return -EFAULT;
	if (api.api != UMEM_API || (api.features & ~umem_features()) ||
	    api.ioctls || !umem_zeroed(api.reserved, ARRAY_SIZE(api.reserved))) {
		/* As UFFDIO_API: a failed handshake reports no features. */
		memset(&api, 0, sizeof(api));
		return copy_to_user(arg, &api, sizeof(api)) ? -EFAULT : -EINVAL;
	}
	api.features = umem_features();
	api.ioctls = UMEM_IOCTLS;
	return copy_to_user(arg, &api, sizeof(api)) ? -EFAULT : 0;
}

static const struct file_operations umem_server_fops;

/*
 * Make a server file for @r and install it as a new fd, also written to
 * *@fd_out.  Consumes the caller's reference to @r in every case: the
 * file takes it over, and on failure the region is detached as if that
 * server fd had been closed at once (a failed UMEM_CREATE frees it).
 */
int umem_server_fd(struct umem_region *r, int __user *fd_out)
{
	struct file *file;
	int fd;

	fd = get_unused_fd_flags(O_RDWR | O_CLOEXEC);
	if (fd < 0)
		goto err;
	file = anon_inode_getfile("[umem]", &umem_server_fops, r, O_RDWR);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		fd = PTR_ERR(file);
		goto err;
	}
	file->f_mode |= FMODE_PREAD | FMODE_PWRITE;
	if (put_user(fd, fd_out)) {
		put_unused_fd(fd);
		fput(file);	/* its release detaches and drops the reference */
		return -EFAULT;
	}
	fd_install(fd, file);
	return fd;

err:
	umem_region_detach(r);
	umem_region_server_closed(r);
	umem_region_put(r);
	return fd;
}

static long umem_ioctl_create(struct file *ctl, void __user *arg)
{
	struct umem_create __user *uarg = arg;
	struct umem_region *r;
	struct umem_create c;

	if (!(ctl->f_mode & FMODE_WRITE))
		return -EBADF;
	if (copy_from_user(&c, uarg, sizeof(c)))
		return -EFAULT;
	if ((c.flags & ~UMEM_CREATE_FLAGS) || c.id || c.server_fd || c.pad ||
	    !umem_zeroed(c.reserved, ARRAY_SIZE(c.reserved)))
		return -EINVAL;
	if (c.node_mode & ~0777U)
		return -EINVAL;
	if (!(c.page_size == UMEM_PAGE_SIZE_4K && c.page_size == PAGE_SIZE) &&
	    !(c.page_size == UMEM_PAGE_SIZE_2M && umem_huge_supported()))
		return -EINVAL;
	if (!c.size || c.size > UMEM_MAX_SIZE ||
	    !IS_ALIGNED(c.size, c.page_size))
		return -EINVAL;

	r = umem_region_create(&c);
	if (IS_ERR(r))
		return PTR_ERR(r);
	if (put_user(r->id, &uarg->id)) {
		umem_region_detach(r);
		umem_region_server_closed(r);
		umem_region_put(r);
		return -EFAULT;
	}
	/* The server file takes over the creation reference. */
	return umem_server_fd(r, &uarg->server_fd);
}

/*
 * UMEM_ATTACH on a node fd: serve a region whose server fd is gone.  The
 * node must be open for writing, and the caller the region's owner (the
 * creator's fsuid) or CAP_SYS_ADMIN, the same rule as UMEM_CMD_FAIL.
 */
long umem_ioctl_attach(struct file *node, void __user *arg)
{
	struct umem_region *r = node->private_data;
	struct umem_attach __user *uarg = arg;
	struct umem_attach a;
	int err;

	if (!(node->f_mode & FMODE_WRITE))
		return -EBADF;
	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.flags || a.server_fd || a.pad ||
	    !umem_zeroed(a.reserved, ARRAY_SIZE(a.reserved)))
		return -EINVAL;
	if (!umem_region_is_owner(r) && !capable(CAP_SYS_ADMIN))
		return -EPERM;
	err = umem_region_attach(r);
	if (err)
		return err;
	/* The new server file's reference. */
	umem_region_get(r);
	return umem_server_fd(r, &uarg->server_fd);
}

static long umem_ctl_ioctl(struct file *file, unsigned int cmd,
			   unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case UMEM_GET_API:
		return umem_ioctl_get_api(uarg);
	case UMEM_CREATE:
		return umem_ioctl_create(file, uarg);
	}
	return -ENOTTY;
}

static const struct file_operations umem_ctl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = umem_ctl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice umem_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "umem",
	.fops = &umem_ctl_fops,
	.mode = 0600,
};

static long umem_ioctl_bind(struct umem_region *r, void __user *arg)
{
	struct umem_bind b;

	if (copy_from_user(&b, arg, sizeof(b)))
		return -EFAULT;
	if (b.flags || !umem_zeroed(b.reserved, ARRAY_SIZE(b.reserved)))
		return -EINVAL;
	return umem_region_bind(r);
}

static long umem_server_ioctl(struct file *file, unsigned int cmd,
			      unsigned long arg)
{
	struct umem_region *r = file->private_data;
	void __user *uarg = (void __user *)arg;
	long ret;

	switch (cmd) {
	case UMEM_COPY:
		ret = umem_ioctl_copy(r, uarg);
		break;
	case UMEM_COPY_VEC:
		ret = umem_ioctl_copy_vec(r, uarg);
		break;
	case UMEM_ZERO:
		ret = umem_ioctl_zero(r, uarg);
		break;
	case UMEM_MARK_PRESENT:
		ret = umem_ioctl_mark_present(r, uarg);
		break;
	case UMEM_DISCARD:
		return umem_ioctl_discard(r, uarg);
	case UMEM_STATS:
		return umem_ioctl_stats(r, uarg);
	case UMEM_BIND:
		return umem_ioctl_bind(r, uarg);
	case UMEM_WRITEPROTECT:
		return umem_ioctl_writeprotect(r, uarg);
	default:
		return -ENOTTY;
	}
	umem_genl_check_complete(r);
	return ret;
}

/* A descriptor is closed: the bound daemon's close detaches (UMEM_BIND). */
static int umem_server_flush(struct file *file, fl_owner_t id)
{
	umem_region_flush(file->private_data);
	return 0;
}

/*
 * The last close of the server fd detaches, bound or not; then a new
 * server may UMEM_ATTACH.
 */
static int umem_server_release(struct inode *inode, struct file *file)
{
	struct umem_region *r = file->private_data;

	umem_region_detach(r);
	umem_region_server_closed(r);
	umem_region_put(r);
	return 0;
}

static void umem_server_show_fdinfo(struct seq_file *m, struct file *file)
{
	struct umem_region *r = file->private_data;

	spin_lock(&r->lock);
	seq_printf(m, "umem-name:\t%s\numem-size:\t%llu\n", r->name, r->size);
	seq_printf(m, "umem-page-size:\t%llu\n", umem_page_size(r));
	seq_printf(m, "umem-present:\t%lu/%lu\numem-pending:\t%lu\n",
		   r->npresent, (unsigned long)r->npages, r->npending);
	seq_printf(m, "umem-requests:\t%llu\n", r->requests);
	spin_unlock(&r->lock);
}

static const struct file_operations umem_server_fops = {
	.owner = THIS_MODULE,
	.read = umem_server_read,
	.write_iter = umem_server_write_iter,
	.poll = umem_server_poll,
	.unlocked_ioctl = umem_server_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = umem_server_mmap,
	.get_unmapped_area = umem_get_unmapped_area,
	.flush = umem_server_flush,
	.release = umem_server_release,
	.show_fdinfo = umem_server_show_fdinfo,
	.llseek = noop_llseek,
};

static int __init umem_init(void)
{
	int err;

	BUILD_BUG_ON(sizeof(struct umem_api) != 64);
	BUILD_BUG_ON(sizeof(struct umem_create) != 88);
	BUILD_BUG_ON(sizeof(struct umem_request) != 32);
	BUILD_BUG_ON(sizeof(struct umem_copy) != 40);
	BUILD_BUG_ON(sizeof(struct umem_copy_entry) != 24);
	BUILD_BUG_ON(sizeof(struct umem_copy_vec) != 40);
	BUILD_BUG_ON(sizeof(struct umem_zero) != 32);
	BUILD_BUG_ON(sizeof(struct umem_mark_present) != 40);
	BUILD_BUG_ON(sizeof(struct umem_discard) != 32);
	BUILD_BUG_ON(sizeof(struct umem_stats) != 128);
	BUILD_BUG_ON(sizeof(struct umem_bind) != 32);
	BUILD_BUG_ON(sizeof(struct umem_writeprotect) != 32);
	BUILD_BUG_ON(sizeof(struct umem_attach) != 32);
	BUILD_BUG_ON(_IOC_NR(UMEM_WRITEPROTECT) >= 0x30);
	BUILD_BUG_ON(_IOC_NR(UMEM_ATTACH) >= 64);

	umem_region_init();
	err = umem_region_init_mounts();
	if (err)
		return err;
	err = umem_queue_init();
	if (err)
		goto err_region;
	err = umem_node_init();
	if (err)
		goto err_queue;
	err = umem_genl_init();
	if (err)
		goto err_node;
	err = misc_register(&umem_misc);
	if (err)
		goto err_genl;
	return 0;

err_genl:
	umem_genl_exit();
err_node:
	umem_node_exit();
err_queue:
	umem_queue_exit();
err_region:
	umem_region_exit();
	return err;
}

static void __exit umem_exit(void)
{
	/* Unregister first: waits for running genl requests. */
	umem_genl_exit();
	misc_deregister(&umem_misc);
	umem_node_exit();
	umem_region_exit();
	umem_queue_exit();
}

module_init(umem_init);
module_exit(umem_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("umem: user-serviced memory regions for postcopy live migration");
MODULE_AUTHOR("The umem authors");
MODULE_VERSION(UMEM_VERSION);
