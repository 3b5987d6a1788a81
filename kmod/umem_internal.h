/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umem private definitions.
 *
 * Objects
 * -------
 * struct umem_region   one region: a shmem file holding the data, two
 *                      bitmaps (present, requested), the queue of requests
 *                      not yet read by the daemon, and the wait queues.
 * struct umem_pending  one queued page request (one per missing page,
 *                      however many tasks fault on it).
 *
 * Files that point at a region (file->private_data, each holds a reference):
 *   - the server fd (anon inode "[umem]"), one per region: read/poll/ioctl.
 *     Its release is the single point where the daemon detaches.
 *   - node fds (open of /dev/umem-<name>) and "[umem-map]" files made when
 *     the server fd is mmap()ed: they only map.  A mapping pins one of
 *     these in vm_private_data, never the server fd, so a VMM's mapping
 *     cannot keep a dead daemon's region alive.
 * A umem vma's vm_file is the shmem file itself (with umem_vm_ops in front):
 * the vma lives in the shmem inode's i_mmap tree, so punching a hole
 * (discard) unmaps it, and shmem helpers that look at vm_file see a real
 * shmem inode.
 *
 * Page states
 * -----------
 *   missing    present=0 requested=0   no data; a fault queues a request
 *   requested  present=0 requested=1   queued or read by the daemon; faults wait
 *   present    present=1 requested=0   data in the shmem page cache; faults map it
 * missing/requested -> present by UMEM_COPY, UMEM_COPY_VEC, UMEM_ZERO,
 * UMEM_MARK_PRESENT; present -> missing by UMEM_DISCARD.
 *
 * Locking (outer to inner)
 * ------------------------
 *   umem_mutex            region IDR, names, node creation/removal, final put;
 *                         genl get/dump/fail read a region under it without
 *                         taking a reference (umem_region_for_each/find).
 *   region->install_rwsem installs take it shared, discard exclusive: a page
 *                         is never written while it is being punched out.
 *   page lock             held by installers while filling a page and setting
 *                         its present bit; the fault path re-checks the bit
 *                         under it, so no task maps a partly written page.
 *   region->lock          (spinlock) bitmaps, pending list, counters, state.
 *   wait queue locks      fault_wq[] and read_wq, taken last.
 * The fault path holds mmap_lock (or the VMA lock) and takes page locks and
 * region->lock; it never waits for userspace with mmap_lock held when the
 * fault allows a retry.  Installers never fault on user memory while holding
 * a page lock (copy_from_user_nofault, then fault_in_readable unlocked).
 */
#ifndef _UMEM_INTERNAL_H
#define _UMEM_INTERNAL_H

#include <linux/bits.h>
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/umem.h>

#define UMEM_MAX_MINORS		BIT(16)
/* Regions are limited so that page offsets and bitmaps stay sane. */
#define UMEM_MAX_SIZE		BIT_ULL(40)
#define UMEM_FAULT_WQ_BITS	6
#define UMEM_FAULT_WQ_HASH	BIT(UMEM_FAULT_WQ_BITS)

enum umem_state {
	UMEM_STATE_LIVE,	/* the server fd is open */
	UMEM_STATE_DETACHED,	/* the server fd closed: missing pages SIGBUS */
};

struct umem_pending {
	struct list_head node;	/* in region->pending */
	pgoff_t pgoff;
	u32 flags;		/* UMEM_REQ_* */
	struct pid *pid;	/* first faulting thread */
	u64 time_ns;
};

struct umem_region {
	struct kref ref;	/* one per file pointing here */
	int id;			/* IDR id and minor; under umem_mutex */
	char name[UMEM_NAME_MAX];
	u64 size;
	pgoff_t npages;
	struct file *shmem;	/* backing store, fixed for the region's life */
	struct mem_cgroup *memcg; /* creator's; charged for every page */
	struct device *dev;	/* /dev/umem-<name>; under umem_mutex */

	/* Fault path fast check; true when every page is present. */
	bool complete;

	spinlock_t lock;	/* guards the fields marked "lock" */
	enum umem_state state;		/* lock */
	unsigned long *present;		/* lock for writes; read locklessly */
	unsigned long *requested;	/* lock */
	struct list_head pending;	/* lock: struct umem_pending */
	unsigned long npending;		/* lock */
	unsigned long npresent;		/* lock */
	u64 requests, faults, installed, discarded;	/* lock */
	u64 wait_ns_total, wait_ns_max;			/* lock */
	u64 wait_hist[UMEM_HIST_BUCKETS];		/* lock: log2 of wait ns */
	bool complete_notified;		/* lock: UMEM_EVENT_COMPLETE sent */
	struct pid *daemon;		/* lock: last reader of the server fd */
	struct pid *creator;		/* creating process, fixed */
	u64 created_ns;			/* CLOCK_MONOTONIC, fixed */
	atomic_t waiting;

	struct rw_semaphore install_rwsem;
	wait_queue_head_t read_wq;	/* daemon readers and pollers */
	wait_queue_head_t fault_wq[UMEM_FAULT_WQ_HASH];	/* by pgoff */
};

/* The region behind a umem vma. */
static inline struct umem_region *umem_vma_region(struct vm_area_struct *vma)
{
	struct file *pin = vma->vm_private_data;

	return pin->private_data;
}

/* main.c */
extern const struct file_operations umem_server_fops;

/* region.c */
int umem_region_init(void);
void umem_region_exit(void);
struct umem_region *umem_region_create(const struct umem_create *args);
void umem_region_get(struct umem_region *r);
void umem_region_put(struct umem_region *r);
void umem_region_detach(struct umem_region *r);
void umem_region_note_daemon(struct umem_region *r);
int umem_region_for_each(int *pos, int (*cb)(struct umem_region *r, void *arg),
			 void *arg);
dev_t umem_region_devt(const struct umem_region *r);
int umem_region_find(const char *name, int id,
		     int (*cb)(struct umem_region *r, void *arg), void *arg);
int umem_server_mmap(struct file *file, struct vm_area_struct *vma);
struct page *umem_get_page(struct umem_region *r, pgoff_t pgoff);

/* fault.c */
extern const struct vm_operations_struct umem_vm_ops;
void umem_wake_range(struct umem_region *r, pgoff_t start, pgoff_t end);
void umem_wake_all(struct umem_region *r);

/* queue.c */
int umem_queue_init(void);
void umem_queue_exit(void);
bool umem_request_page(struct umem_region *r, pgoff_t pgoff, u32 flags,
		       struct umem_pending *req);
struct umem_pending *umem_pending_alloc(void);
void umem_pending_free(struct umem_pending *req);
void umem_queue_flush(struct umem_region *r);
ssize_t umem_server_read(struct file *file, char __user *buf, size_t count,
			 loff_t *ppos);
__poll_t umem_server_poll(struct file *file, struct poll_table_struct *wait);

/* install.c */
long umem_ioctl_copy(struct umem_region *r, void __user *arg);
long umem_ioctl_copy_vec(struct umem_region *r, void __user *arg);
long umem_ioctl_zero(struct umem_region *r, void __user *arg);
long umem_ioctl_mark_present(struct umem_region *r, void __user *arg);
long umem_ioctl_discard(struct umem_region *r, void __user *arg);
long umem_ioctl_stats(struct umem_region *r, void __user *arg);
void umem_get_stats(struct umem_region *r, struct umem_stats *st, u64 *hist);
ssize_t umem_server_write_iter(struct kiocb *iocb, struct iov_iter *from);

/* genl.c */
int umem_genl_init(void);
void umem_genl_exit(void);
void umem_genl_event(struct umem_region *r, enum umem_event event);
void umem_genl_check_complete(struct umem_region *r);

static inline bool umem_page_present(struct umem_region *r, pgoff_t pgoff)
{
	return READ_ONCE(r->complete) || test_bit(pgoff, r->present);
}

static inline bool umem_range_ok(struct umem_region *r, u64 offset, u64 len)
{
	return len && PAGE_ALIGNED(offset) && PAGE_ALIGNED(len) &&
	       offset < r->size && len <= r->size - offset;
}

#endif /* _UMEM_INTERNAL_H */
