// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The "umem" backend: the umem kernel module.
 *
 * Daemon: UMEM_CREATE on /dev/umem gives the server fd; requests are read
 * from it and pages installed with its ioctls.  The VMM gets a node fd
 * (/dev/umem-<name>), never the server fd: when the daemon's server fd
 * closes, the kernel aborts the region and faulting tasks get SIGBUS.
 *
 * Compatibility: API 1 is the only API.  UMEM_GET_API is asked for 0
 * features and the reply probed, so an old module without (say)
 * UMEM_F_COPY_VEC makes copy_vec fall back to one UMEM_COPY per page
 * instead of failing:
 *
 *   feature missing     fallback
 *   UMEM_F_COPY_VEC     UMEM_COPY per item
 *   UMEM_F_ZERO         UMEM_COPY of a zero page
 *   UMEM_F_MARK_PRESENT write/mark_present fail with -EOPNOTSUPP
 *   UMEM_F_DISCARD      discard fails with -EOPNOTSUPP
 *   UMEM_F_NODE         export fd is a dup of the server fd (no abort
 *                       on daemon death while the VMM holds it: logged)
 *   UMEM_F_PAGE_2M      none: a region of 2 MiB pages fails to create
 *                       with -EOPNOTSUPP ("module lacks UMEM_F_PAGE_2M")
 *   UMEM_F_WRITE_PROTECT, UMEM_F_CREATE_PRESENT (umem 0.5)
 *                       none: a region with UMEM_REGION_WRITE_PROTECT or
 *                       UMEM_REGION_PRESENT fails to create with
 *                       -EOPNOTSUPP, the log naming the missing bit;
 *                       UMEM_WRITEPROTECT is -EOPNOTSUPP (ENOTTY from the
 *                       module)
 *   UMEM_F_ATTACH       none: umem_region_attach_node() fails with
 *                       -EOPNOTSUPP, the log naming the bit (umem 0.5)
 *   UMEM_F_MMAPS        stats' mmaps is 0; umem_region_was_mapped() is
 *                       -EOPNOTSUPP (umem 0.6)
 *   UMEM_F_MAP_ON_INSTALL
 *                       none needed: the VMM's first access to an
 *                       installed page maps it by a fault (umem 0.7)
 *
 * In a region of 2 MiB pages every unit below is the 2 MiB page (the
 * module's rule, uapi/linux/umem.h): a COPY_VEC entry installs 2 MiB, and
 * an install that cannot get a 2 MiB folio fails with -ENOMEM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/umem.h>

#include "internal.h"

static uint64_t umem_features(struct umem_region *r)
{
	return r->features;
}

/*
 * UMEM_GET_API on the control device: the features of the module in
 * r->features.  Opens /dev/umem with @mode (O_RDWR for UMEM_CREATE) and
 * returns that fd, or -errno.
 */
static int umem_handshake(struct umem_region *r, int mode)
{
	struct umem_api api = { .api = UMEM_API };
	int ctl, ret;

	ctl = open(UMEM_CTL_DEVICE, mode | O_CLOEXEC);
	if (ctl < 0) {
		ret = -errno;
		umem__log(r, UMEM_LOG_ERR, "open %s: %s", UMEM_CTL_DEVICE,
			  umem_strerror(ret));
		return ret;
	}
	ret = umem__ioctl(ctl, UMEM_GET_API, &api);
	if (ret) {
		umem__log(r, UMEM_LOG_ERR, "UMEM_GET_API: %s", strerror(-ret));
		close(ctl);
		return ret;
	}
	r->features = api.features;
	return ctl;
}

/* -EOPNOTSUPP, logged, unless the module has feature @bit. */
static int umem_need(struct umem_region *r, uint64_t bit, const char *bit_name,
		     const char *what, const char *since)
{
	if (r->features & bit)
		return 0;
	umem__log(r, UMEM_LOG_ERR,
		  "region %s: %s: the umem module lacks %s (%s; features %#llx)",
		  r->name, what, bit_name, since, (unsigned long long)r->features);
	return -EOPNOTSUPP;
}

/*
 * Serve through @fd, a server fd just made by UMEM_CREATE or UMEM_ATTACH:
 * bound to this process, read without blocking.
 */
static void umem_serve(struct umem_region *r, int fd)
{
	r->server_fd = fd;
	r->fault_fd = fd;
	/*
	 * Tie the region to this process: if the daemon dies, the region
	 * detaches (missing pages SIGBUS) even when the VMM holds a copy of
	 * the server fd (the fallback export below, or a VMM that kept it).
	 */
	if (r->features & UMEM_F_BIND) {
		struct umem_bind b = { 0 };
		int err = umem__ioctl(fd, UMEM_BIND, &b);

		if (err)
			umem__log(r, UMEM_LOG_WARN, "UMEM_BIND: %s",
				  strerror(-err));
	}
	/* Reads are driven by poll(); never block in read(). */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int umem_create(struct umem_region *r)
{
	struct umem_create c;
	int ctl, ret, node;

	ctl = umem_handshake(r, O_RDWR);
	if (ctl < 0)
		return ctl;
	ret = 0;
	if (r->page_size == UMEM_PAGE_SIZE_2M)
		ret = umem_need(r, UMEM_F_PAGE_2M, "UMEM_F_PAGE_2M", "2 MiB pages",
				"umem 0.4");
	if (!ret && (r->flags & UMEM_REGION_WRITE_PROTECT))
		ret = umem_need(r, UMEM_F_WRITE_PROTECT, "UMEM_F_WRITE_PROTECT",
				"write protection", "umem 0.5");
	if (!ret && (r->flags & UMEM_REGION_PRESENT))
		ret = umem_need(r, UMEM_F_CREATE_PRESENT, "UMEM_F_CREATE_PRESENT",
				"pages born present", "umem 0.5");
	if (ret) {
		close(ctl);
		return ret;
	}
	memset(&c, 0, sizeof(c));
	c.size = r->size;
	c.page_size = r->page_size;
	if (r->flags & UMEM_REGION_WRITE_PROTECT)
		c.flags |= UMEM_CREATE_WP;
	if (r->flags & UMEM_REGION_PRESENT)
		c.flags |= UMEM_CREATE_PRESENT;
	snprintf(c.name, sizeof(c.name), "%s", r->name);
	ret = umem__ioctl(ctl, UMEM_CREATE, &c);
	close(ctl);
	if (ret < 0) {
		umem__log(r, UMEM_LOG_ERR, "UMEM_CREATE %s (%llu bytes, %u-byte pages, flags %#x): %s",
			  r->name, (unsigned long long)r->size, r->page_size,
			  c.flags, umem_strerror(ret));
		return ret;
	}
	umem_serve(r, ret);
	snprintf(r->path, sizeof(r->path), "%s%s", UMEM_NODE_PREFIX, r->name);
	node = -1;
	if (r->features & UMEM_F_NODE) {
		/* devtmpfs creates the node asynchronously: retry briefly. */
		for (int i = 0; i < 200 && node < 0; i++) {
			node = open(r->path, O_RDWR | O_CLOEXEC);
			if (node < 0 && errno == ENOENT)
				usleep(10000);
			else if (node < 0)
				break;
		}
	}
	if (node < 0) {
		umem__log(r, UMEM_LOG_WARN,
			  "no node %s; exporting the server fd", r->path);
		node = fcntl(r->server_fd, F_DUPFD_CLOEXEC, 0);
		if (node < 0)
			return -errno;
	}
	r->export_fd = node;
	return 0;
}

static int umem_open(struct umem_region *r)
{
	(void)r;	/* node fd or server fd: both map the same way */
	return 0;
}

static int umem_map(struct umem_region *r)
{
	int fd = r->server ? r->server_fd : r->export_fd;
	void *p;
	int ret = umem__mmap_aligned(r, fd, &p);

	if (ret)
		return ret;
	r->map = p;
	return 0;
}

static int umem_read(struct umem_region *r, struct umem_page_request *reqs,
		     unsigned int max)
{
	struct umem_request kreq[64];
	struct pollfd pfd;
	ssize_t n;

	if (max > 64)
		max = 64;
	/* The core polls; this poll keeps read() from blocking even if
	 * O_NONBLOCK did not stick. */
	pfd.fd = r->server_fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLIN))
		return pfd.revents & (POLLHUP | POLLERR) ? -ESHUTDOWN : -EAGAIN;
	n = read(r->server_fd, kreq, max * sizeof(kreq[0]));
	if (n < 0)
		return errno == EINTR || errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (n % sizeof(kreq[0]))
		return -EIO;
	n /= sizeof(kreq[0]);
	for (ssize_t i = 0; i < n; i++) {
		reqs[i].offset = kreq[i].offset;
		reqs[i].flags = (kreq[i].flags & UMEM_REQ_WRITE ?
				 UMEM_REQUEST_WRITE : 0) |
				(kreq[i].flags & UMEM_REQ_WP ? UMEM_REQUEST_WP : 0);
		reqs[i].tid = kreq[i].tid;
		reqs[i].time_ns = kreq[i].time_ns;
		reqs[i].reserved = 0;
	}
	return (int)n;
}

static int umem_copy(struct umem_region *r, uint64_t off, const void *src,
		     uint64_t len)
{
	struct umem_copy c = {
		.offset = off, .len = len, .src = (uint64_t)(uintptr_t)src,
	};
	int ret = umem__ioctl(r->server_fd, UMEM_COPY, &c);

	if (ret == -EAGAIN && c.copied > 0 && (uint64_t)c.copied < len)
		return umem_copy(r, off + (uint64_t)c.copied,
				 (const char *)src + c.copied,
				 len - (uint64_t)c.copied);
	return ret < 0 ? ret : 0;
}

static int umem_copy_vec(struct umem_region *r, struct umem_copy_item *items,
			 unsigned int count)
{
	struct umem_copy_entry e[64];
	unsigned int done = 0;

	if (!(umem_features(r) & UMEM_F_COPY_VEC)) {
		for (unsigned int i = 0; i < count; i++)
			items[i].result = umem_copy(r, items[i].offset,
						    items[i].src, r->page_size);
		return (int)count;
	}
	while (done < count) {
		unsigned int n = count - done > 64 ? 64 : count - done;
		struct umem_copy_vec v = {
			.entries = (uint64_t)(uintptr_t)e, .count = n,
		};
		int ret;

		for (unsigned int i = 0; i < n; i++) {
			e[i].offset = items[done + i].offset;
			e[i].src = (uint64_t)(uintptr_t)items[done + i].src;
			e[i].result = 0;
		}
		ret = umem__ioctl(r->server_fd, UMEM_COPY_VEC, &v);
		for (unsigned int i = 0; i < v.handled && i < n; i++)
			items[done + i].result = e[i].result;
		if (ret < 0)
			return done + v.handled ? (int)(done + v.handled) : ret;
		done += n;
	}
	return (int)count;
}

static int umem_zero(struct umem_region *r, uint64_t off, uint64_t len)
{
	struct umem_zero z = { .offset = off, .len = len };
	int ret = umem__ioctl(r->server_fd, UMEM_ZERO, &z);

	if (ret == -ENOTTY) {
		for (uint64_t d = 0; d < len; d += r->page_size) {
			ret = umem_copy(r, off + d, r->zero_buf, r->page_size);
			if (ret)
				return ret;
		}
		return 0;
	}
	if (ret == -EAGAIN && z.zeroed > 0 && (uint64_t)z.zeroed < len)
		return umem_zero(r, off + (uint64_t)z.zeroed, len - (uint64_t)z.zeroed);
	return ret < 0 ? ret : 0;
}

static int umem_write(struct umem_region *r, uint64_t off, const void *src,
		      uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(r->server_fd, (const char *)src + done,
				   len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (uint64_t)n;
	}
	return 0;
}

static int umem_mark_present(struct umem_region *r, const uint64_t *offs,
			     unsigned int count)
{
	while (count) {
		unsigned int n = count > UMEM_MARK_PRESENT_MAX ?
				 UMEM_MARK_PRESENT_MAX : count;
		struct umem_mark_present m = {
			.offsets = (uint64_t)(uintptr_t)offs, .count = n,
		};
		int ret = umem__ioctl(r->server_fd, UMEM_MARK_PRESENT, &m);

		if (ret < 0)
			return ret;
		offs += n;
		count -= n;
	}
	return 0;
}

static int umem_discard(struct umem_region *r, uint64_t off, uint64_t len)
{
	struct umem_discard d = { .offset = off, .len = len };
	int ret = umem__ioctl(r->server_fd, UMEM_DISCARD, &d);

	return ret < 0 ? ret : 0;
}

static int umem_stats(struct umem_region *r, struct umem_region_stats *st)
{
	struct umem_stats k;
	int ret;

	memset(&k, 0, sizeof(k));
	ret = umem__ioctl(r->server_fd, UMEM_STATS, &k);
	if (ret < 0)
		return ret;
	st->size = k.size;
	st->page_size = k.page_size;
	st->pages = k.pages;
	st->pages_present = k.pages_present;
	st->requests = k.requests;
	st->requests_pending = k.requests_pending;
	st->faults = k.faults;
	st->waiting = k.waiting;
	st->wait_ns_total = k.wait_ns_total;
	st->wait_ns_max = k.wait_ns_max;
	st->installed = k.installed;
	st->discarded = k.discarded;
	st->alloc_failed = k.alloc_failed;
	st->pages_protected = k.pages_protected;
	st->wp_faults = k.wp_faults;
	st->mmaps = k.mmaps;
	return 0;
}

static int umem_was_mapped(struct umem_region *r)
{
	struct umem_region_stats st;
	int ret;

	if (!(umem_features(r) & UMEM_F_MMAPS))
		return -EOPNOTSUPP;
	ret = umem_stats(r, &st);
	return ret ? ret : st.mmaps > 0;
}

static int umem_writeprotect(struct umem_region *r, uint64_t off, uint64_t len,
			     bool protect)
{
	struct umem_writeprotect w = {
		.offset = off, .len = len,
		.mode = protect ? UMEM_WP_MODE_PROTECT : 0,
	};
	int ret = umem__ioctl(r->server_fd, UMEM_WRITEPROTECT, &w);

	/* A module before umem 0.5 does not know the command. */
	if (ret == -ENOTTY)
		return -EOPNOTSUPP;
	return ret < 0 ? ret : 0;
}

/*
 * UMEM_ATTACH on the node: a new server fd for a region whose server is
 * gone.  The region's size and page size come from UMEM_STATS on it.
 */
static int umem_attach_node(struct umem_region *r, const char *path)
{
	struct umem_attach a = { 0 };
	struct umem_stats k;
	const char *name = path;
	int ctl, node, ret;

	if (!strncmp(name, UMEM_NODE_PREFIX, strlen(UMEM_NODE_PREFIX)))
		name += strlen(UMEM_NODE_PREFIX);
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->path, sizeof(r->path), "%s", path);
	ctl = umem_handshake(r, O_RDONLY);
	if (ctl < 0)
		return ctl;
	close(ctl);
	ret = umem_need(r, UMEM_F_ATTACH, "UMEM_F_ATTACH", "attach by node", "umem 0.5");
	if (ret)
		return ret;
	node = open(path, O_RDWR | O_CLOEXEC);
	if (node < 0) {
		ret = -errno;
		umem__log(r, UMEM_LOG_ERR, "open %s: %s", path, strerror(-ret));
		return ret;
	}
	r->export_fd = node;
	ret = umem__ioctl(node, UMEM_ATTACH, &a);
	if (ret < 0) {
		umem__log(r, UMEM_LOG_ERR, "UMEM_ATTACH %s: %s%s", path, strerror(-ret),
			  ret == -EBUSY ? " (the region is served by another server fd)" : "");
		return ret;
	}
	umem_serve(r, ret);
	memset(&k, 0, sizeof(k));
	ret = umem__ioctl(r->server_fd, UMEM_STATS, &k);
	if (ret < 0) {
		umem__log(r, UMEM_LOG_ERR, "UMEM_STATS %s: %s", path, strerror(-ret));
		return ret;
	}
	if (!k.size || (k.page_size != UMEM_LIB_PAGE_4K && k.page_size != UMEM_LIB_PAGE_2M)) {
		umem__log(r, UMEM_LOG_ERR, "%s: %llu bytes in %llu-byte pages: not a region this library serves",
			  path, (unsigned long long)k.size, (unsigned long long)k.page_size);
		return -EINVAL;
	}
	r->size = k.size;
	r->page_size = (uint32_t)k.page_size;
	return 0;
}

static void umem_destroy(struct umem_region *r)
{
	(void)r;
}

const struct umem_backend_ops umem__backend_umem = {
	.name = "umem",
	.create = umem_create,
	.open = umem_open,
	.map = umem_map,
	.read = umem_read,
	.copy = umem_copy,
	.copy_vec = umem_copy_vec,
	.zero = umem_zero,
	.write = umem_write,
	.mark_present = umem_mark_present,
	.discard = umem_discard,
	.stats = umem_stats,
	.was_mapped = umem_was_mapped,
	.writeprotect = umem_writeprotect,
	.attach_node = umem_attach_node,
	.destroy = umem_destroy,
};
