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
 *   - the server fd (anon inode "[umem]"), one open file per region:
 *     read/poll/ioctl.  Its release, or its flush by the process that
 *     called UMEM_BIND, is where the daemon detaches.
 *   - node fds (open of /dev/umem-<name>): open, lseek, mmap, fallocate.
 *   - map files (map.c): one per mmap() of a node or of the server fd.
 *     A map file is the vma's vm_file.  Its inode is the region's
 *     placeholder, an empty shmem inode of its own, and its f_mapping is
 *     the backing's mapping.  So the vma sits in the backing's i_mmap tree
 *     (rmap, reclaim and hole punching find it), every shmem helper that
 *     looks at vm_file sees a real shmem inode, and nothing that reopens
 *     vm_file by path (/proc/PID/map_files) or maps it again
 *     (remap_file_pages) can reach the data except through umem's fault
 *     path.  The core takes and drops the vm_file references of vma
 *     copies, so a mapping pins the region through its map file, never
 *     through the server fd.
 *
 * Pages
 * -----
 * A region's page is 4 KiB or, with UMEM_PAGE_SIZE_2M, 2 MiB (r->shift).
 * Bitmaps, requests, wake-up keys and counters are indexed by region page
 * ("index" below and in the code; umem_index() turns a vma's 4 KiB pgoff
 * into one).  The backing of a 2 MiB region is a file on umem's own tmpfs
 * mount with huge=always (region.c), so each present page is one PMD-size
 * folio, which the core maps with a PMD (fault.c).
 *
 * Page states
 * -----------
 *   missing    present=0 requested=0   no data; a fault queues a request
 *   requested  present=0 requested=1   queued or read by the daemon; faults wait
 *   present    present=1 requested=0   data in the shmem page cache; faults map it
 * and, in a region created with UMEM_CREATE_WP (wp.c):
 *   protected  present=1 protected=1 requested=0   reads map it read-only;
 *                                      a write queues a UMEM_REQ_WP request
 *   wp-requested present=1 protected=1 requested=1  writers wait
 * missing/requested -> present by UMEM_COPY, UMEM_COPY_VEC, UMEM_ZERO,
 * UMEM_MARK_PRESENT; present -> missing by UMEM_DISCARD (which also
 * unprotects); present <-> protected by UMEM_WRITEPROTECT; every protected
 * page is unprotected when the region detaches.  The backing may hold
 * data for a page that is not present (pwrite() before UMEM_MARK_PRESENT,
 * or the rest of a large folio); no task ever maps it.
 *
 * Locking (outer to inner)
 * ------------------------
 *   umem_mutex            region IDR, names, per-user size accounting,
 *                         node creation/removal, final put; genl
 *                         get/dump/fail read a region under it without
 *                         taking a reference (umem_region_for_each/find).
 *   sb_writers            of the backing's (shmem's internal) superblock:
 *                         punching a hole takes it before install_rwsem,
 *                         as vfs_fallocate() of a map file does.
 *   region->install_rwsem every path that makes pages present or writes
 *                         the backing of missing pages (COPY, COPY_VEC,
 *                         ZERO, pwrite, MARK_PRESENT) takes it shared;
 *                         UMEM_DISCARD and the punch of a detached region
 *                         exclusive: a page is never written or marked
 *                         while it is being punched out.  Never held
 *                         while faulting on user memory.  The fault
 *                         path's ->map_pages takes it shared with a
 *                         trylock, under the fault lock, so that present
 *                         bits stay set while it maps (fault.c).
 *   folio lock            held by installers while filling a page and
 *                         setting its present bit; the fault path
 *                         re-checks the bit under it, so no task maps a
 *                         partly written page.  ->page_mkwrite checks the
 *                         protected bit under it, and the core makes the
 *                         page writable before releasing it (wp.c).
 *   region->lock          (spinlock) bitmaps, pending list, counters,
 *                         state, the bound daemon.  Not the wait
 *                         statistics: per CPU (struct umem_wait_stats),
 *                         updated with preemption disabled and summed
 *                         by umem_get_stats(), so a woken task takes
 *                         no lock to account its wait.
 *   wait queue locks      fault_wq[] and read_wq, taken last.
 * The fault path holds mmap_lock (or the VMA lock), takes folio locks and
 * region->lock, and never waits for userspace with either held: it queues
 * the request, drops the fault lock, sleeps once and returns
 * VM_FAULT_RETRY, or, when the fault cannot be retried, fails it (see
 * fault.c).  Installers read the daemon's buffer with page faults disabled
 * while holding a folio lock and install_rwsem; when that fails they drop
 * both, fault the buffer in, and retry.
 */
#ifndef _UMEM_INTERNAL_H
#define _UMEM_INTERNAL_H

#include <linux/bits.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/percpu.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/wait.h>
#include <linux/umem.h>

#define UMEM_MAX_MINORS		BIT(16)
/* Regions are limited so that page offsets and bitmaps stay sane. */
#define UMEM_MAX_SIZE		BIT_ULL(40)
#define UMEM_FAULT_WQ_BITS	6
#define UMEM_FAULT_WQ_HASH	BIT(UMEM_FAULT_WQ_BITS)

enum umem_state {
	UMEM_STATE_LIVE,	/* served: missing pages are requested */
	UMEM_STATE_DETACHED,	/* daemon gone or failed: missing pages SIGBUS */
};

struct umem_pending {
	struct list_head node;	/* in region->pending */
	pgoff_t index;		/* region page */
	u32 flags;		/* UMEM_REQ_* */
	struct pid *pid;	/* first faulting thread */
	u64 time_ns;
};

/*
 * Wait statistics, one copy per CPU: a woken task adds its wait to its
 * CPU's copy with preemption disabled, taking no lock; umem_get_stats()
 * sums (and, for the maximum, compares) the copies.
 */
struct umem_wait_stats {
	u64 ns_total;
	u64 ns_max;
	u64 hist[UMEM_HIST_BUCKETS];	/* log2 of wait ns */
};

struct umem_region {
	struct kref ref;	/* one per file pointing here */
	int id;			/* IDR id and minor; under umem_mutex */
	char name[UMEM_NAME_MAX];
	u64 size;
	pgoff_t npages;		/* region pages */
	unsigned int shift;	/* log2 of the page size: PAGE_SHIFT or PMD_SHIFT */
	unsigned int order;	/* shift - PAGE_SHIFT: order of a page's folio */
	struct file *shmem;	/* backing store, fixed for the region's life */
	struct file *stub;	/* placeholder inode of the map files */
	struct mem_cgroup *memcg; /* creator's; charged for pages and metadata */
	struct device *dev;	/* /dev/umem-<name>; under umem_mutex */
	kuid_t uid;		/* owner: the creator's fsuid, fixed */
	kgid_t gid;		/* group: the creator's fsgid, fixed */
	umode_t mode;		/* node permission bits, fixed */

	/* Fault path fast check; true when every page is present. */
	bool complete;
	/* Created with UMEM_CREATE_WP: pages can be protected (fixed). */
	bool wp;

	spinlock_t lock;	/* guards the fields marked "lock" */
	enum umem_state state;		/* lock */
	unsigned long *present;		/* lock for writes; read locklessly */
	unsigned long *requested;	/* lock */
	/* UMEM_CREATE_WP only (else NULL); lock for writes, read locklessly */
	unsigned long *protected;
	unsigned long nprotected;	/* lock */
	struct list_head pending;	/* lock: struct umem_pending */
	unsigned long npending;		/* lock */
	unsigned long npresent;		/* lock */
	u64 requests, faults, installed, discarded;	/* lock */
	u64 alloc_failed, wp_faults;			/* lock */
	struct umem_wait_stats __percpu *wait_stats;	/* per CPU, no lock */
	bool complete_notified;		/* lock: UMEM_EVENT_COMPLETE sent */
	struct pid *daemon;		/* lock: last reader of the server fd */
	struct pid *bound;		/* lock: UMEM_BIND's process (tgid) */
	bool server_open;		/* lock: a server file exists */
	struct pid *creator;		/* creating process, fixed */
	u64 created_ns;			/* CLOCK_MONOTONIC, fixed */
	atomic_t waiting;
	atomic64_t mmaps;		/* mmap() calls so far (map.c) */

	struct rw_semaphore install_rwsem;
	wait_queue_head_t read_wq;	/* daemon readers and pollers */
	wait_queue_head_t fault_wq[UMEM_FAULT_WQ_HASH];	/* by index */
};

/* The region behind a umem vma: its vm_file is a map file (map.c). */
static inline struct umem_region *umem_vma_region(struct vm_area_struct *vma)
{
	return vma->vm_file->private_data;
}

/* main.c */
int umem_server_fd(struct umem_region *r, int __user *fd_out);
long umem_ioctl_attach(struct file *node, void __user *arg);

/* region.c */
void umem_region_init(void);
struct umem_region *umem_region_create(const struct umem_create *args);
void umem_region_get(struct umem_region *r);
void umem_region_put(struct umem_region *r);
bool umem_region_live(struct umem_region *r);
void umem_region_detach(struct umem_region *r);
void umem_region_note_daemon(struct umem_region *r);
int umem_region_bind(struct umem_region *r);
void umem_region_flush(struct umem_region *r);
int umem_region_attach(struct umem_region *r);
void umem_region_server_closed(struct umem_region *r);
struct umem_region *umem_region_get_by_id(int id);
int umem_region_for_each(int *pos, int (*cb)(struct umem_region *r, void *arg),
			 void *arg);
int umem_region_find(const char *name, int id,
		     int (*cb)(struct umem_region *r, void *arg), void *arg);
bool umem_region_may_read(const struct umem_region *r);
bool umem_region_is_owner(const struct umem_region *r);
struct page *umem_get_page(struct umem_region *r, pgoff_t pgoff);
bool umem_huge_supported(void);
int umem_region_init_mounts(void);
void umem_region_exit(void);

/* node.c: /dev/umem-<name> */
int umem_node_init(void);
void umem_node_exit(void);
int umem_node_add(struct umem_region *r);
void umem_node_remove(struct umem_region *r);

/* map.c: mappings and their files */
int umem_server_mmap(struct file *file, struct vm_area_struct *vma);
int umem_node_mmap(struct file *file, struct vm_area_struct *vma);
long umem_fallocate(struct file *file, int mode, loff_t offset, loff_t len);
unsigned long umem_get_unmapped_area(struct file *file, unsigned long addr,
				     unsigned long len, unsigned long pgoff,
				     unsigned long flags);

/* fault.c */
extern const struct vm_operations_struct umem_vm_ops;
extern const struct vm_operations_struct umem_wp_vm_ops;
void umem_wake_range(struct umem_region *r, pgoff_t start, pgoff_t end);
void umem_map_installed(struct umem_region *r, pgoff_t index);
bool umem_map_on_install(void);
void umem_wake_all(struct umem_region *r);

/* wp.c */
long umem_ioctl_writeprotect(struct umem_region *r, void __user *arg);
unsigned long umem_wp_clear_locked(struct umem_region *r, pgoff_t start,
				   pgoff_t end);

/* queue.c */
int umem_queue_init(void);
void umem_queue_exit(void);
int umem_request_page(struct umem_region *r, pgoff_t index, u32 flags);
int umem_request_wp(struct umem_region *r, pgoff_t index);
void umem_queue_flush(struct umem_region *r);
void umem_queue_cancel_wp(struct umem_region *r, pgoff_t start, pgoff_t end);
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
long umem_punch_detached(struct umem_region *r, u64 offset, u64 len);
void umem_get_stats(struct umem_region *r, struct umem_stats *st, u64 *hist);
ssize_t umem_server_write_iter(struct kiocb *iocb, struct iov_iter *from);

/* genl.c */
int umem_genl_init(void);
void umem_genl_exit(void);
void umem_genl_event(struct umem_region *r, enum umem_event event);
void umem_genl_check_complete(struct umem_region *r);

static inline u64 umem_page_size(const struct umem_region *r)
{
	return 1ULL << r->shift;
}

/* Region page holding the vma's 4 KiB page @pgoff. */
static inline pgoff_t umem_index(const struct umem_region *r, pgoff_t pgoff)
{
	return pgoff >> r->order;
}

/* First 4 KiB page (pgoff) of region page @index. */
static inline pgoff_t umem_index_pgoff(const struct umem_region *r,
				       pgoff_t index)
{
	return index << r->order;
}

static inline bool umem_page_present(struct umem_region *r, pgoff_t index)
{
	return READ_ONCE(r->complete) || test_bit(index, r->present);
}

/* Lockless; the authoritative checks are under region->lock or the folio lock. */
static inline bool umem_page_protected(struct umem_region *r, pgoff_t index)
{
	return r->protected && READ_ONCE(r->nprotected) &&
	       test_bit(index, r->protected);
}

/* A non-empty range of whole region pages inside the region. */
static inline bool umem_range_ok(struct umem_region *r, u64 offset, u64 len)
{
	u64 mask = umem_page_size(r) - 1;

	return len && !(offset & mask) && !(len & mask) &&
	       offset < r->size && len <= r->size - offset;
}

#endif /* _UMEM_INTERNAL_H */
