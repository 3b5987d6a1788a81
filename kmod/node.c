// SPDX-License-Identifier: GPL-2.0
/*
 * The per-region device node /dev/umem-<name> (class "umem").
 *
 * Each region gets a character device whose minor is its id.  devtmpfs
 * creates the node with the region's owner, group and mode
 * (umem_node_devnode()), so the creator can hand a region to a VMM of its
 * group without root, as /dev/kvm is handed to group kvm.  A node fd maps
 * the region (map.c), answers lseek (the size) and one ioctl, UMEM_ATTACH
 * (main.c: a new server for a region whose server is gone); read and
 * write are refused, and fallocate() is ENODEV (vfs_fallocate() takes only
 * regular files: punching goes through MADV_REMOVE on a mapping).
 *
 * Locking: umem_node_add() and umem_node_remove() run under umem_mutex
 * (region.c).  Opening a node looks the region up by minor and takes a
 * reference unless it is dying.  The cdev's owner is this module, so an
 * open racing rmmod either pins the module or fails.
 */
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "umem_internal.h"
#include "compat.h"

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

/* devtmpfs asks this while device_add() runs: the region is alive. */
static char *umem_node_devnode(umem_devnode_dev *dev, umode_t *mode,
			       kuid_t *uid, kgid_t *gid)
{
	const struct umem_region *r = dev_get_drvdata(dev);

	if (mode)
		*mode = r->mode;
	if (uid)
		*uid = r->uid;
	if (gid)
		*gid = r->gid;
	return NULL;
}

static const struct device_type umem_node_type = {
	.name = "umem-region",
	.devnode = umem_node_devnode,
};

static void umem_node_dev_release(struct device *dev)
{
	kfree(dev);
}

/* Under umem_mutex; r->id is set. */
int umem_node_add(struct umem_region *r)
{
	struct device *dev;
	int err;

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;
	device_initialize(dev);
	dev->devt = MKDEV(MAJOR(umem_devt), r->id);
	dev->class = &umem_class;
	dev->type = &umem_node_type;
	dev->release = umem_node_dev_release;
	dev_set_drvdata(dev, r);
	err = dev_set_name(dev, "umem-%s", r->name);
	if (!err)
		err = device_add(dev);
	if (err) {
		put_device(dev);
		return err;
	}
	r->dev = dev;
	return 0;
}

/* Under umem_mutex. */
void umem_node_remove(struct umem_region *r)
{
	device_unregister(r->dev);
	r->dev = NULL;
}

static int umem_node_open(struct inode *inode, struct file *file)
{
	struct umem_region *r = umem_region_get_by_id(iminor(inode));

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

static long umem_node_ioctl(struct file *file, unsigned int cmd,
			    unsigned long arg)
{
	if (cmd == UMEM_ATTACH)
		return umem_ioctl_attach(file, (void __user *)arg);
	return -ENOTTY;
}

static const struct file_operations umem_node_fops = {
	.owner = THIS_MODULE,
	.open = umem_node_open,
	.release = umem_node_release,
	.llseek = umem_node_llseek,
	.unlocked_ioctl = umem_node_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = umem_node_mmap,
	.get_unmapped_area = umem_get_unmapped_area,
};

int umem_node_init(void)
{
	int err;

	err = alloc_chrdev_region(&umem_devt, 0, UMEM_MAX_MINORS, "umem");
	if (err)
		return err;
	cdev_init(&umem_cdev, &umem_node_fops);
	umem_cdev.owner = THIS_MODULE;
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

void umem_node_exit(void)
{
	class_unregister(&umem_class);
	cdev_del(&umem_cdev);
	unregister_chrdev_region(umem_devt, UMEM_MAX_MINORS);
}
