// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The userfaultfd backends, on a memfd (shmem) shared by daemon and VMM.
 *
 * "uffd":       the VMM registers its mapping in MISSING mode; the daemon
 *               installs with UFFDIO_COPY / UFFDIO_ZEROPAGE (shmem support
 *               since Linux 4.11).
 * "uffd-minor": the VMM registers MISSING | MINOR (MINOR alone does not
 *               trap pages that are not in the page cache yet); the daemon
 *               writes page data through its own, unregistered mapping of
 *               the memfd, which the VMM cannot see until UFFDIO_CONTINUE
 *               maps it (UFFD_FEATURE_MINOR_SHMEM, Linux 5.14).
 *
 * Regions of 2 MiB pages live on a hugetlbfs memfd (MFD_HUGETLB |
 * MFD_HUGE_2MB) instead: huge pages come from the pool reserved in
 * /proc/sys/vm/nr_hugepages (checked at create, with a hint when short),
 * every install is a whole huge page, UFFDIO_ZEROPAGE does not exist for
 * hugetlb (zero pages are a UFFDIO_COPY of a zero page, or for
 * "uffd-minor" a fallocate() that puts a zeroed huge page in the page
 * cache), "uffd-minor" needs UFFD_FEATURE_MINOR_HUGETLBFS (Linux 5.13),
 * and discard punches whole huge pages out of the file.
 *
 * Write protection (UMEM_REGION_WRITE_PROTECT) adds
 * UFFDIO_REGISTER_MODE_WP to the VMM's registration and needs
 * UFFD_FEATURE_WP_HUGETLBFS_SHMEM (Linux 5.19; CONFIG_PTE_MARKER_UFFD_WP,
 * which Debian's 6.1 and 6.12 kernels have): a protected page that is not
 * mapped yet gets a uffd-wp PTE marker, so its first write faults too.
 * Reads never fault.  The kernel queues one message per faulting task;
 * the library reports the first for a page and drops the others until
 * the page is unprotected or protected again.  A region born present
 * (UMEM_REGION_PRESENT) registers no MISSING or MINOR mode: only write
 * faults on protected pages reach the daemon.
 *
 * The uffd ioctls act on the address space that created the userfaultfd,
 * whoever calls them, so the daemon can serve a uffd received from the
 * VMM: addresses are the VMM's (r->base + offset), UFFDIO_COPY's source is
 * in the daemon's memory.
 *
 * When the daemon closes the last reference to the uffd, the kernel
 * unregisters the range and wakes every waiter: a "uffd" task then sees a
 * zero page, a "uffd-minor" task whatever the memfd holds.  Nobody hangs,
 * but the data is wrong, so the daemon tells the VMM over its control
 * socket that the migration failed before it lets go of the uffd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)	/* MFD_HUGE_SHIFT 26, log2(2 MiB) */
#endif

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

static bool is_minor(const struct umem_region *r)
{
	return r->ops == &umem__backend_uffd_minor;
}

/* Pages missing at first: registered MISSING (uffd) or MISSING|MINOR. */
static bool has_missing(const struct umem_region *r)
{
	return !(r->flags & UMEM_REGION_PRESENT);
}

static bool has_wp(const struct umem_region *r)
{
	return r->flags & UMEM_REGION_WRITE_PROTECT;
}

/* Set (@set) or clear bit @i of @map; returns its old value. */
static bool bit_assign(_Atomic uint64_t *map, uint64_t i, bool set)
{
	uint64_t m = 1ULL << (i % 64);
	uint64_t old = set ? atomic_fetch_or(&map[i / 64], m) :
			     atomic_fetch_and(&map[i / 64], ~m);

	return old & m;
}

/* A userfaultfd: the syscall, or /dev/userfaultfd where the syscall is
 * restricted (vm.unprivileged_userfaultfd = 0 for non-root). */
static int new_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 && (errno == EPERM || errno == ENOSYS)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev < 0)
			return -EPERM;
		fd = umem__ioctl(dev, USERFAULTFD_IOC_NEW,
				 (void *)(uintptr_t)(O_CLOEXEC | O_NONBLOCK));
		close(dev);
		return fd;
	}
	return fd < 0 ? -errno : fd;
}

/* The UFFDIO_API features the VMM's registration of @r needs. */
static uint64_t uffd_want(const struct umem_region *r)
{
	uint64_t want = UFFD_FEATURE_THREAD_ID;

	if (is_minor(r) && has_missing(r))
		want |= r->hugetlb ? UFFD_FEATURE_MINOR_HUGETLBFS :
			UFFD_FEATURE_MINOR_SHMEM;
	if (has_wp(r))
		want |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	return want;
}

static const struct {
	uint64_t bit;
	const char *what;
} uffd_features[] = {
	{ UFFD_FEATURE_THREAD_ID, "UFFD_FEATURE_THREAD_ID (Linux 4.14)" },
	{ UFFD_FEATURE_MINOR_HUGETLBFS,
	  "UFFD_FEATURE_MINOR_HUGETLBFS (minor faults on hugetlbfs, Linux 5.13)" },
	{ UFFD_FEATURE_MINOR_SHMEM,
	  "UFFD_FEATURE_MINOR_SHMEM (minor faults on shmem, Linux 5.14)" },
	{ UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
	  "UFFD_FEATURE_WP_HUGETLBFS_SHMEM (write protection of shmem and hugetlbfs, Linux 5.19)" },
};

/*
 * If this kernel's userfaultfd lacks a feature of @want, log each one and
 * return -EOPNOTSUPP; else 0.  A throw-away userfaultfd asks for nothing
 * and reads the reply: a uffd takes one handshake, and a refused one
 * zeroes its reply.  0 too when no userfaultfd can be made to ask.
 */
static int uffd_check_features(const struct umem_region *r, uint64_t want)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t lack = 0;
	int fd = new_uffd();

	if (fd < 0)
		return 0;
	if (umem__ioctl(fd, UFFDIO_API, &api) == 0)
		lack = want & ~api.features;
	close(fd);
	for (size_t i = 0; i < sizeof(uffd_features) / sizeof(uffd_features[0]); i++)
		if (lack & uffd_features[i].bit)
			umem__log(r, UMEM_LOG_ERR, "region %s: this kernel's userfaultfd lacks %s",
				  r->name, uffd_features[i].what);
	return lack ? -EOPNOTSUPP : 0;
}

/*
 * The region's flags: born present only with write protection (else
 * nothing is ever served); with write protection, the bitmaps.
 */
static int uffd_setup_flags(struct umem_region *r)
{
	uint64_t words = (r->size / r->page_size + 63) / 64;

	if (!has_missing(r) && !has_wp(r)) {
		umem__log(r, UMEM_LOG_ERR,
			  "region %s: pages born present without write protection: nothing for a %s daemon to serve",
			  r->name, r->ops->name);
		return -EINVAL;
	}
	if (!has_wp(r))
		return 0;
	r->wp_protected = calloc(words, sizeof(uint64_t));
	r->wp_requested = calloc(words, sizeof(uint64_t));
	return r->wp_protected && r->wp_requested ? 0 : -ENOMEM;
}

static int uffd_create(struct umem_region *r)
{
	unsigned int flags = MFD_CLOEXEC;
	int fd, ret;

	ret = uffd_setup_flags(r);
	if (ret)
		return ret;

	if (r->page_size == UMEM_LIB_PAGE_2M) {
		long fr = umem__hugepages_count("free_hugepages");
		long rs = umem__hugepages_count("resv_hugepages");
		long avail = fr < 0 || rs < 0 ? -1 : fr - rs;

		if (avail < 0) {
			umem__log(r, UMEM_LOG_ERR,
				  "2 MiB pages: this kernel has no 2 MiB hugetlb pool (/sys/kernel/mm/hugepages/hugepages-2048kB)");
			return -EOPNOTSUPP;
		}
		if ((uint64_t)avail < r->size / r->page_size) {
			umem__hugetlb_hint(r, "creating the hugetlbfs memfd");
			return -ENOMEM;
		}
		flags |= MFD_HUGETLB | MFD_HUGE_2MB;
		r->hugetlb = true;
	}
	/* Fail here, not in the VMM's map, where the kernel cannot protect. */
	if (has_wp(r)) {
		ret = uffd_check_features(r, uffd_want(r));
		if (ret)
			return ret;
	}
	fd = memfd_create(r->name, flags);
	if (fd < 0)
		return -errno;
	r->server_fd = fd;
	r->export_fd = fd;
	if (ftruncate(fd, (off_t)r->size) < 0)
		return -errno;
	if (is_minor(r)) {
		void *p;

		ret = umem__mmap_aligned(r, fd, &p);

		if (ret) {
			if (ret == -ENOMEM && r->hugetlb)
				umem__hugetlb_hint(r, "mapping the hugetlbfs memfd");
			return ret;
		}
		r->daemon_map = p;
	}
	return 0;
}

static int uffd_open(struct umem_region *r)
{
	return uffd_setup_flags(r);
}

/*
 * In a VMM (or a process playing both roles): map and register the
 * mapping with a new userfaultfd.  In a handle that serves already (the
 * daemon, attached): map only, so the daemon reads and writes page data
 * as plain shared memory that never faults into its own uffd.
 */
static int uffd_map(struct umem_region *r)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	uint64_t want = uffd_want(r);
	int fd = r->server ? r->server_fd : r->export_fd;
	int uffd, ret;
	void *p;

	ret = umem__mmap_aligned(r, fd, &p);
	if (ret) {
		if (ret == -ENOMEM && r->hugetlb)
			umem__hugetlb_hint(r, "mapping the hugetlbfs memfd");
		return ret;
	}
	if (r->fault_fd >= 0) {
		r->map = p;
		return 0;
	}
	uffd = new_uffd();
	if (uffd < 0) {
		umem__log(r, UMEM_LOG_ERR, "userfaultfd: %s", strerror(-uffd));
		munmap(p, r->size);
		return uffd;
	}
	api.features = want;
	ret = umem__ioctl(uffd, UFFDIO_API, &api);
	if (ret == -EINVAL && uffd_check_features(r, want))
		ret = -EOPNOTSUPP;	/* logged, feature by feature */
	else if (ret < 0)
		umem__log(r, UMEM_LOG_ERR, "UFFDIO_API features %#llx: %s",
			  (unsigned long long)want, strerror(-ret));
	if (ret < 0)
		goto fail;
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uint64_t)(uintptr_t)p;
	reg.range.len = r->size;
	if (has_missing(r))
		reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (has_missing(r) && is_minor(r))
		reg.mode |= UFFDIO_REGISTER_MODE_MINOR;
	if (has_wp(r))
		reg.mode |= UFFDIO_REGISTER_MODE_WP;
	ret = umem__ioctl(uffd, UFFDIO_REGISTER, &reg);
	if (ret < 0) {
		umem__log(r, UMEM_LOG_ERR, "UFFDIO_REGISTER mode %#llx: %s",
			  (unsigned long long)reg.mode, strerror(-ret));
		goto fail;
	}
	if (has_wp(r) && !(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		umem__log(r, UMEM_LOG_ERR,
			  "region %s: UFFDIO_REGISTER: no UFFDIO_WRITEPROTECT on this mapping",
			  r->name);
		ret = -EOPNOTSUPP;
		goto fail;
	}
	r->map = p;
	if (r->server) {
		/* One process plays both roles: attach to ourselves, until
		 * umem_region_client_fault_fd() hands the uffd over. */
		r->fault_fd = uffd;
		r->client_uffd = uffd;
		r->base = reg.range.start;
	} else {
		r->client_uffd = uffd;
	}
	return 0;
fail:
	close(uffd);
	munmap(p, r->size);
	return ret;
}

static int uffd_attach(struct umem_region *r, int fd, uint64_t base)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		close(fd);
		return -EBADF;
	}
	r->fault_fd = fd;
	r->base = base;
	return 0;
}

static int uffd_read(struct umem_region *r, struct umem_page_request *reqs,
		     unsigned int max)
{
	struct uffd_msg msg[64];
	uint64_t now;
	ssize_t n;
	int out = 0;

	if (max > 64)
		max = 64;
	n = read(r->fault_fd, msg, max * sizeof(msg[0]));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? -EAGAIN : -errno;
	if (n == 0)
		return -ESHUTDOWN;
	now = umem__now_ns();
	for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++) {
		uint64_t addr, off, fl;

		if (msg[i].event != UFFD_EVENT_PAGEFAULT)
			continue;	/* no non-cooperative events asked for */
		addr = msg[i].arg.pagefault.address;
		if (addr < r->base || addr - r->base >= r->size) {
			umem__log(r, UMEM_LOG_WARN, "fault at %#llx outside region",
				  (unsigned long long)addr);
			continue;
		}
		off = (addr - r->base) & ~(uint64_t)(r->page_size - 1);
		fl = msg[i].arg.pagefault.flags;
		if (fl & UFFD_PAGEFAULT_FLAG_WP) {
			atomic_fetch_add(&r->n_wp_faults, 1);
			/* Another task's write to a page already reported. */
			if (r->wp_requested &&
			    bit_assign(r->wp_requested, off / r->page_size, true))
				continue;
			atomic_fetch_add(&r->n_wp_requests, 1);
			reqs[out].flags = UMEM_REQUEST_WRITE | UMEM_REQUEST_WP;
		} else {
			atomic_fetch_add(&r->n_requests, 1);
			reqs[out].flags = fl & UFFD_PAGEFAULT_FLAG_WRITE ?
					  UMEM_REQUEST_WRITE : 0;
		}
		reqs[out].offset = off;
		reqs[out].tid = msg[i].arg.pagefault.feat.ptid;
		reqs[out].time_ns = now;
		reqs[out].reserved = 0;
		out++;
	}
	return out ? out : -EAGAIN;
}

/* ESRCH: the mm that created the uffd has exited. */
static int map_gone(int ret)
{
	return ret == -ESRCH ? -ESHUTDOWN : ret;
}

static int uffd_copy(struct umem_region *r, uint64_t off, const void *src,
		     uint64_t len)
{
	while (len) {
		struct uffdio_copy c = {
			.dst = r->base + off, .src = (uint64_t)(uintptr_t)src,
			.len = len,
		};
		int ret = umem__ioctl(r->fault_fd, UFFDIO_COPY, &c);

		if (ret == -EAGAIN && c.copy > 0) {
			off += (uint64_t)c.copy;
			src = (const char *)src + c.copy;
			len -= (uint64_t)c.copy;
			continue;
		}
		if (ret == -EAGAIN)
			continue;	/* mmap_changing: retry */
		if (ret == -ENOMEM && r->hugetlb)
			umem__hugetlb_hint(r, "UFFDIO_COPY");
		if (ret < 0)
			return map_gone(ret);
		break;
	}
	return 0;
}

static void count_installed(struct umem_region *r, uint64_t len)
{
	atomic_fetch_add(&r->n_installed, len / r->page_size);
}

static int uffd_copy_counted(struct umem_region *r, uint64_t off,
			     const void *src, uint64_t len)
{
	int ret = uffd_copy(r, off, src, len);

	if (!ret)
		count_installed(r, len);
	return ret;
}

/*
 * UFFDIO_ZEROPAGE and UFFDIO_CONTINUE work on a range and report how many
 * bytes they did; on -EAGAIN (the mm is changing) go on from there.
 */
static int uffd_range_op(struct umem_region *r, unsigned long req,
			 uint64_t off, uint64_t len)
{
	while (len) {
		union {
			struct uffdio_zeropage z;
			struct uffdio_continue c;
		} u = { 0 };
		int64_t done;
		int ret;

		if (req == UFFDIO_ZEROPAGE)
			u.z.range = (struct uffdio_range){ r->base + off, len };
		else
			u.c.range = (struct uffdio_range){ r->base + off, len };
		ret = umem__ioctl(r->fault_fd, req, &u);
		done = req == UFFDIO_ZEROPAGE ? u.z.zeropage : u.c.mapped;
		if (ret == -EAGAIN && done > 0) {
			off += (uint64_t)done;
			len -= (uint64_t)done;
			count_installed(r, (uint64_t)done);
			continue;
		}
		if (ret == -EAGAIN)
			continue;
		if (ret < 0)
			return map_gone(ret);
		count_installed(r, len);
		break;
	}
	return 0;
}

static int uffd_zero(struct umem_region *r, uint64_t off, uint64_t len)
{
	if (!r->hugetlb)
		return uffd_range_op(r, UFFDIO_ZEROPAGE, off, len);
	/* No UFFDIO_ZEROPAGE on hugetlb (EINVAL): copy a zero page. */
	for (uint64_t d = 0; d < len; d += r->page_size) {
		int ret = uffd_copy_counted(r, off + d, r->zero_buf, r->page_size);

		if (ret)
			return ret;
	}
	return 0;
}

static int uffd_continue(struct umem_region *r, uint64_t off, uint64_t len)
{
	return uffd_range_op(r, UFFDIO_CONTINUE, off, len);
}

static int minor_write(struct umem_region *r, uint64_t off, const void *src,
		       uint64_t len)
{
	if (!r->daemon_map)
		return -EBADF;
	memcpy((char *)r->daemon_map + off, src, len);
	return 0;
}

static int minor_copy(struct umem_region *r, uint64_t off, const void *src,
		      uint64_t len)
{
	int ret = minor_write(r, off, src, len);

	return ret ? ret : uffd_continue(r, off, len);
}

static int minor_zero(struct umem_region *r, uint64_t off, uint64_t len)
{
	if (!r->daemon_map)
		return -EBADF;
	/*
	 * hugetlbfs: fallocate() puts zeroed huge pages in the page cache
	 * without a 2 MiB memset.  Otherwise touching the page through our
	 * mapping puts it in the page cache.
	 */
	if (r->hugetlb) {
		if (fallocate(r->server_fd, FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)len) < 0) {
			int ret = -errno;

			if (ret == -ENOSPC || ret == -ENOMEM)
				umem__hugetlb_hint(r, "fallocate");
			return ret;
		}
	} else {
		memset((char *)r->daemon_map + off, 0, len);
	}
	return uffd_continue(r, off, len);
}

static int minor_mark_present(struct umem_region *r, const uint64_t *offs,
			      unsigned int count)
{
	for (unsigned int i = 0; i < count; i++) {
		int ret = uffd_continue(r, offs[i], r->page_size);

		if (ret)
			return ret;
	}
	return 0;
}

static int uffd_discard(struct umem_region *r, uint64_t off, uint64_t len)
{
	/* Drops the page cache and unmaps it everywhere: the next access is a
	 * MISSING fault again. */
	if (fallocate(r->server_fd >= 0 ? r->server_fd : r->export_fd,
		      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) < 0)
		return -errno;
	atomic_fetch_add(&r->n_discarded, len / r->page_size);
	return 0;
}

static int uffd_wake(struct umem_region *r, uint64_t off, uint64_t len)
{
	struct uffdio_range w = { .start = r->base + off, .len = len };

	return map_gone(umem__ioctl(r->fault_fd, UFFDIO_WAKE, &w));
}

/*
 * Unprotecting wakes the writers (no UFFDIO_WRITEPROTECT_MODE_DONTWAKE).
 * The bitmaps are updated after the kernel: a request read before then
 * is a duplicate of the one reported, one read after names a page that
 * was unprotected since (documented: unprotecting again is a no-op).
 */
static int uffd_writeprotect(struct umem_region *r, uint64_t off, uint64_t len,
			     bool protect)
{
	int ret;

	if (!r->wp_protected)
		return -EOPNOTSUPP;
	do {
		struct uffdio_writeprotect wp = {
			.range = { .start = r->base + off, .len = len },
			.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
		};

		ret = umem__ioctl(r->fault_fd, UFFDIO_WRITEPROTECT, &wp);
	} while (ret == -EAGAIN);	/* mmap_changing: retry */
	if (ret < 0)
		return map_gone(ret);
	for (uint64_t p = off / r->page_size; p < (off + len) / r->page_size; p++) {
		if (bit_assign(r->wp_protected, p, protect) != protect) {
			if (protect)
				atomic_fetch_add(&r->n_protected, 1);
			else
				atomic_fetch_sub(&r->n_protected, 1);
		}
		bit_assign(r->wp_requested, p, false);
	}
	return 0;
}

static void uffd_destroy(struct umem_region *r)
{
	free((void *)r->wp_protected);
	free((void *)r->wp_requested);
}

const struct umem_backend_ops umem__backend_uffd = {
	.name = "uffd",
	.create = uffd_create,
	.open = uffd_open,
	.map = uffd_map,
	.read = uffd_read,
	.copy = uffd_copy_counted,
	.zero = uffd_zero,
	.discard = uffd_discard,
	.wake = uffd_wake,
	.attach = uffd_attach,
	.writeprotect = uffd_writeprotect,
	.destroy = uffd_destroy,
};

const struct umem_backend_ops umem__backend_uffd_minor = {
	.name = "uffd-minor",
	.create = uffd_create,
	.open = uffd_open,
	.map = uffd_map,
	.read = uffd_read,
	.copy = minor_copy,
	.write = minor_write,
	.mark_present = minor_mark_present,
	.discard = uffd_discard,
	.wake = uffd_wake,
	.zero = minor_zero,
	.attach = uffd_attach,
	.writeprotect = uffd_writeprotect,
	.destroy = uffd_destroy,
};
