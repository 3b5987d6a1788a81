// SPDX-License-Identifier: GPL-2.0
/*
 * umem region lifetime, ownership and the daemon's attachment.
 *
 * A region lives while anything references it: the server fd, node fds
 * and map files (one per mapping, see map.c; a task waiting in the fault
 * path with mmap_lock dropped pins its vma's map file).  The final put
 * removes the node and the IDR entry under umem_mutex (so that a
 * concurrent open of the node cannot find a dying region), then frees the
 * rest.  Each region holds a module reference, so the module cannot be
 * unloaded while one exists; the final put always runs from a file's
 * release, whose f_op still pins the module, so it never drops the last
 * module reference from module text.
 *
 * Ownership: a region belongs to its creator's filesystem uid and gid and
 * carries the permission bits of its node (UMEM_CREATE's node_mode), all
 * fixed at creation.  The node is created with them (node.c), and the
 * genl family decides visibility and UMEM_CMD_FAIL from them, without
 * looking up any path.  The sizes of one uid's regions together are
 * limited by the max_user_size parameter, so that no user can pin an
 * unbounded amount of bitmap memory with regions it never fills.
 *
 * Attachment: the region is LIVE until its server fd is released, the
 * process bound with UMEM_BIND closes it or exits (umem_region_flush()),
 * or an admin (or the owner) fails it over genl; then it is DETACHED:
 * missing pages SIGBUS, and every page is unprotected.  Once no server
 * file exists any more (server_open), the owner may UMEM_ATTACH a new
 * one, which makes the region LIVE again (umem_region_attach()).
 *
 * Locking: umem_mutex guards umem_idr, names and node creation/removal;
 * see umem_internal.h for the per-region locks.  The genl code (genl.c)
 * looks at regions only through umem_region_for_each() and
 * umem_region_find(), whose callbacks run under umem_mutex: a region found
 * in the IDR cannot be freed before the mutex is dropped, so they take no
 * reference (and so never drop a last one).  Genl events are sent from
 * process context with no spinlock held.
 */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/idr.h>
#include <linux/memcontrol.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/mutex.h>
#include <linux/percpu.h>
#include <linux/sched/mm.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>

#include "umem_internal.h"
#include "umem_trace.h"

static DEFINE_MUTEX(umem_mutex);
static DEFINE_IDR(umem_idr);

/*
 * umem's own tmpfs mount, "huge=always", for the backing of 2 MiB
 * regions; NULL when the kernel cannot give 2 MiB folios (no THP, or a
 * PMD that is not 2 MiB).  Made once at load, like i915's gemfs: the
 * kernel's internal shmem mount (shmem_file_setup()) follows the
 * shmem_enabled sysfs knob, which is "never" by default, and a region
 * must not depend on a system-wide knob for the size of its pages.  A
 * kernel mount (SB_KERNMOUNT) has no size or inode limit, like the
 * internal one; pages are still charged to the creator's memcg.
 */
static struct vfsmount *umem_huge_mnt;

/*
 * Limit on the total size of one user's regions, in bytes; 0: none.  At
 * load it defaults to 64 times the RAM: a region costs 2 bits of bitmap
 * per 4 KiB page up front (1/16384 of its size), so one user can pin at
 * most 1/256 of the RAM that way.  Root may change it at run time.
 */
#define UMEM_USER_SIZE_AUTO	ULONG_MAX
static unsigned long max_user_size = UMEM_USER_SIZE_AUTO;
module_param(max_user_size, ulong, 0644);
MODULE_PARM_DESC(max_user_size,
		 "total bytes of regions one uid may have at once (0: no limit; default 64 x RAM)");

void umem_region_get(struct umem_region *r)
{
	kref_get(&r->ref);
}

/*
 * Last reference gone.  A concurrent open of the node may still find the
 * region in the IDR until we remove it, but its kref_get_unless_zero()
 * fails, so it never sees a dying region.
 */
static void umem_region_release(struct kref *ref)
{
	struct umem_region *r = container_of(ref, struct umem_region, ref);

	mutex_lock(&umem_mutex);
	idr_remove(&umem_idr, r->id);
	umem_node_remove(r);
	mutex_unlock(&umem_mutex);
	umem_genl_event(r, UMEM_EVENT_DESTROYED);

	WARN_ON_ONCE(!list_empty(&r->pending));
	put_pid(r->daemon);
	put_pid(r->bound);
	put_pid(r->creator);
	fput(r->stub);
	fput(r->shmem);
	mem_cgroup_put(r->memcg);
	kvfree(r->present);
	kvfree(r->requested);
	kvfree(r->protected);
	free_percpu(r->wait_stats);
	kfree(r);
	module_put(THIS_MODULE);
}

void umem_region_put(struct umem_region *r)
{
	kref_put(&r->ref, umem_region_release);
}

/*
 * Region names become device names: [A-Za-z0-9_.-] only.  Not isalnum():
 * the kernel's ctype table counts Latin-1 letters as alphanumeric.
 */
static bool umem_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

static int umem_check_name(const char *name)
{
	size_t len = strnlen(name, UMEM_NAME_MAX);
	size_t i;

	if (len == 0 || len == UMEM_NAME_MAX)
		return -EINVAL;
	for (i = 0; i < len; i++)
		if (!umem_name_char(name[i]))
			return -EINVAL;
	/* Bytes after the NUL must be zero too: they are reserved. */
	for (i = len; i < UMEM_NAME_MAX; i++)
		if (name[i])
			return -EINVAL;
	return 0;
}

/* A name is taken until its region has left the IDR (also while dying). */
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

/* Would @size more bytes for @uid go over max_user_size? */
static bool umem_user_over_limit(kuid_t uid, u64 size)
{
	unsigned long limit = READ_ONCE(max_user_size);
	struct umem_region *r;
	u64 total = size;
	int id;

	lockdep_assert_held(&umem_mutex);
	if (!limit)
		return false;
	idr_for_each_entry(&umem_idr, r, id)
		if (uid_eq(r->uid, uid))
			total += r->size;
	return total > limit;
}

static void umem_region_free_unlisted(struct umem_region *r)
{
	if (r->stub)
		fput(r->stub);
	if (r->shmem)
		fput(r->shmem);
	put_pid(r->creator);
	mem_cgroup_put(r->memcg);
	kvfree(r->present);
	kvfree(r->requested);
	kvfree(r->protected);
	free_percpu(r->wait_stats);
	kfree(r);
}

/*
 * Kernel shmem mounts have no size or inode limit, so the only ENOSPC one
 * can give is its own translation of a failed inode allocation
 * (shmem_get_inode()).  Say ENOMEM: from UMEM_CREATE, ENOSPC means the
 * caller is over max_user_size.  2 MiB regions live on umem_huge_mnt,
 * both the backing and the stub, so that a map file's superblock (whose
 * sb_writers the MADV_REMOVE path takes) is the backing's (install.c).
 */
static struct file *umem_shmem_setup(struct umem_region *r, const char *name,
				     loff_t size)
{
	struct file *f;

	if (r->order)
		f = shmem_file_setup_with_mnt(umem_huge_mnt, name, size,
					      VM_NORESERVE);
	else
		f = shmem_file_setup(name, size, VM_NORESERVE);

	if (IS_ERR(f) && PTR_ERR(f) == -ENOSPC)
		return ERR_PTR(-ENOMEM);
	return f;
}

struct umem_region *umem_region_create(const struct umem_create *args)
{
	const gfp_t gfp = GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL |
			  __GFP_NOWARN;
	char shm_name[UMEM_NAME_MAX + 8];
	struct umem_region *r;
	struct file *f;
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
	r->shift = ilog2(args->page_size);
	r->order = r->shift - PAGE_SHIFT;
	r->npages = args->size >> r->shift;
	r->uid = current_fsuid();
	r->gid = current_fsgid();
	r->mode = args->node_mode ? args->node_mode : UMEM_NODE_MODE_DEFAULT;
	r->state = UMEM_STATE_LIVE;
	r->server_open = true;
	r->wp = args->flags & UMEM_CREATE_WP;
	r->memcg = get_mem_cgroup_from_mm(current->mm);
	r->creator = get_task_pid(current, PIDTYPE_TGID);
	r->created_ns = ktime_get_ns();

	/* Refuse before allocating what the limit is there to bound. */
	mutex_lock(&umem_mutex);
	err = umem_user_over_limit(r->uid, r->size) ? -ENOSPC : 0;
	mutex_unlock(&umem_mutex);
	if (err)
		goto err_free;

	/*
	 * Charged to the creator (current), like the pages will be.  A
	 * bitmap that does not fit is the caller's problem, not the OOM
	 * killer's: __GFP_RETRY_MAYFAIL fails the charge (and a global
	 * shortage) with ENOMEM instead of killing a task for it, and the
	 * caller hears of it as that errno, not as an allocation splat.
	 */
	err = -ENOMEM;
	r->present = kvcalloc(BITS_TO_LONGS(r->npages), sizeof(long),
			      gfp);
	r->requested = kvcalloc(BITS_TO_LONGS(r->npages), sizeof(long),
				gfp);
	r->wait_stats = alloc_percpu_gfp(struct umem_wait_stats, gfp);
	if (!r->present || !r->requested || !r->wait_stats)
		goto err_free;
	if (r->wp) {
		r->protected = kvcalloc(BITS_TO_LONGS(r->npages), sizeof(long),
					gfp);
		if (!r->protected)
			goto err_free;
	}
	/*
	 * Born present: the pages read as zeros, as in a new tmpfs file; the
	 * backing allocates each one at its first fault (umem_get_page()).
	 * Complete from the start, so no "complete" event follows "created".
	 */
	if (args->flags & UMEM_CREATE_PRESENT) {
		bitmap_fill(r->present, r->npages);
		r->npresent = r->npages;
		r->complete = true;
		r->complete_notified = true;
	}

	/*
	 * The backing holds the data; the stub is an empty shmem inode that
	 * map files are made on (map.c).  Both are named so that
	 * /proc/PID/maps shows "/umem-<name> (deleted)".
	 */
	snprintf(shm_name, sizeof(shm_name), "umem-%s", r->name);
	f = umem_shmem_setup(r, shm_name, r->size);
	if (IS_ERR(f)) {
		err = PTR_ERR(f);
		goto err_free;
	}
	r->shmem = f;
	f = umem_shmem_setup(r, shm_name, 0);
	if (IS_ERR(f)) {
		err = PTR_ERR(f);
		goto err_free;
	}
	r->stub = f;

	mutex_lock(&umem_mutex);
	err = -EEXIST;
	if (umem_name_taken(r->name))
		goto err_unlock;
	err = -ENOSPC;		/* again: others may have created meanwhile */
	if (umem_user_over_limit(r->uid, r->size))
		goto err_unlock;
	err = idr_alloc(&umem_idr, r, 0, UMEM_MAX_MINORS, GFP_KERNEL);
	if (err < 0)
		goto err_unlock;
	r->id = err;
	err = umem_node_add(r);
	if (err) {
		idr_remove(&umem_idr, r->id);
		goto err_unlock;
	}
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

bool umem_region_live(struct umem_region *r)
{
	return READ_ONCE(r->state) == UMEM_STATE_LIVE;
}

/*
 * The daemon is gone: no page will ever arrive.  Every task waiting for a
 * missing page, and every later fault on one, gets SIGBUS (see fault.c for
 * why SIGBUS and not a silent retry); blocked readers of the server fd get
 * end of file and pollers EPOLLHUP.  Present pages stay mapped.  Called
 * from the server fd's release or flush and from UMEM_CMD_FAIL (under
 * umem_mutex); only the first call reports the detach.  Sleeps (the genl
 * event allocates).
 */
void umem_region_detach(struct umem_region *r)
{
	unsigned long missing;
	bool was_live;

	might_sleep();
	spin_lock(&r->lock);
	was_live = r->state == UMEM_STATE_LIVE;
	r->state = UMEM_STATE_DETACHED;
	missing = r->npages - r->npresent;
	/* Nobody will save protected pages now: let their writers go. */
	umem_wp_clear_locked(r, 0, r->npages);
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

/*
 * A server file was released (after detaching the region): from now on a
 * new server may attach.
 */
void umem_region_server_closed(struct umem_region *r)
{
	spin_lock(&r->lock);
	r->server_open = false;
	spin_unlock(&r->lock);
}

/*
 * UMEM_ATTACH: a new server for a region that has none.  The region is
 * live again.  The requests of the old server were dropped when it
 * detached, and tasks that faulted meanwhile got SIGBUS, so the requested
 * bits are stale: cleared, so that the next fault on a missing page asks
 * the new server.  A task still on its way out of umem_wait_page() from
 * before the detach retries its fault, and asks again too.
 */
int umem_region_attach(struct umem_region *r)
{
	struct pid *old;

	spin_lock(&r->lock);
	if (r->server_open) {
		spin_unlock(&r->lock);
		return -EBUSY;
	}
	r->server_open = true;
	r->state = UMEM_STATE_LIVE;
	bitmap_zero(r->requested, r->npages);
	old = r->bound;
	r->bound = NULL;
	spin_unlock(&r->lock);
	put_pid(old);
	return 0;
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
 * UMEM_BIND: the calling process becomes the one whose close or exit
 * detaches the region.  A bound process that has exited (its pid has no
 * task any more) no longer counts, so another may bind.
 */
int umem_region_bind(struct umem_region *r)
{
	struct pid *pid = get_pid(task_tgid(current));
	struct pid *old = NULL;
	int err = 0;

	spin_lock(&r->lock);
	if (r->bound == pid) {
		/* already ours */
	} else if (r->bound && pid_has_task(r->bound, PIDTYPE_TGID)) {
		err = -EBUSY;
	} else {
		old = r->bound;
		r->bound = pid;
		pid = NULL;
	}
	spin_unlock(&r->lock);
	put_pid(pid);
	put_pid(old);
	return err;
}

/*
 * The server fd's ->flush: a descriptor for it is being closed (close(),
 * exit, exec with O_CLOEXEC).  If the closer is the bound process, the
 * daemon is going away: detach now rather than when the last copy goes.
 */
void umem_region_flush(struct umem_region *r)
{
	bool bound;

	if (!READ_ONCE(r->bound))
		return;
	spin_lock(&r->lock);
	bound = r->bound == task_tgid(current);
	spin_unlock(&r->lock);
	if (bound)
		umem_region_detach(r);
}

/*
 * Permission checks against the ownership fixed at creation, in the
 * style of generic_permission() (no lock, no path lookup, so they can run
 * from genl handlers).  CAP_SYS_ADMIN sees and fails everything.
 */
bool umem_region_may_read(const struct umem_region *r)
{
	umode_t mode = r->mode;

	if (capable(CAP_SYS_ADMIN))
		return true;
	if (uid_eq(current_fsuid(), r->uid))
		mode >>= 6;
	else if (in_group_p(r->gid))
		mode >>= 3;
	return mode & 0004;
}

bool umem_region_is_owner(const struct umem_region *r)
{
	return uid_eq(current_fsuid(), r->uid);
}

/*
 * Call @cb for each region with id >= *@pos that is not dying, in id
 * order, under umem_mutex; stop when @cb returns non-zero and leave *@pos
 * at that region's id (to resume a dump there).  Returns @cb's value or 0.
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

/*
 * Call @cb, under umem_mutex, for the region named @name (when not NULL)
 * or else with id @id, unless it is dying.  Returns @cb's value, or
 * -ENOENT.
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

/* A reference to the live region with IDR id @id, or NULL (node open). */
struct umem_region *umem_region_get_by_id(int id)
{
	struct umem_region *r;

	mutex_lock(&umem_mutex);
	r = idr_find(&umem_idr, id);
	if (r && !kref_get_unless_zero(&r->ref))
		r = NULL;
	mutex_unlock(&umem_mutex);
	return r;
}

/*
 * Page of the backing for @pgoff, allocated (zeroed) when there is none,
 * charged to the creator's memory cgroup.  Returns the precise page (a
 * tail page when the backing holds a large folio there) with a reference
 * on its folio.
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

/* Called from umem_init() before anything can create a region. */
void __init umem_region_init(void)
{
	if (max_user_size == UMEM_USER_SIZE_AUTO)
		max_user_size = (totalram_pages() << PAGE_SHIFT) * 64;
}

/* Can this kernel back regions with 2 MiB folios (UMEM_F_PAGE_2M)? */
bool umem_huge_supported(void)
{
	return umem_huge_mnt;
}

/*
 * The huge mount, if this kernel has 2 MiB transparent huge pages.  Not
 * having them is not an error: UMEM_F_PAGE_2M is then not reported.
 * tmpfs is built in, so get_fs_type() takes no module reference.
 */
int __init umem_region_init_mounts(void)
{
	struct file_system_type *type;
	char opts[] = "huge=always";
	struct vfsmount *mnt;

	if (!IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE) ||
	    !has_transparent_hugepage() || HPAGE_PMD_SIZE != SZ_2M)
		return 0;
	type = get_fs_type("tmpfs");
	if (!type)
		return 0;
	mnt = vfs_kern_mount(type, SB_KERNMOUNT, type->name, opts);
	if (IS_ERR(mnt))
		return PTR_ERR(mnt);
	umem_huge_mnt = mnt;
	return 0;
}

void umem_region_exit(void)
{
	WARN_ON_ONCE(!idr_is_empty(&umem_idr));
	idr_destroy(&umem_idr);
	if (umem_huge_mnt)
		kern_unmount(umem_huge_mnt);
	umem_huge_mnt = NULL;
}
