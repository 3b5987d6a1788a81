/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libumem internals: the region struct and the backend ops table. */
#ifndef LIBUMEM_INTERNAL_H
#define LIBUMEM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include "libumem.h"

/* The page sizes a region may have (umem_region_config.page_size). */
#define UMEM_LIB_PAGE_4K	4096U
#define UMEM_LIB_PAGE_2M	(2U << 20)

/*
 * One backend.  Required callbacks must be set; an Optional one left NULL
 * makes the matching public call fall back (noted per callback) or fail
 * with -EOPNOTSUPP.
 */
struct umem_backend_ops {
	const char *name;
	/* Required: daemon side, fill r->server_fd / r->export_fd. */
	int (*create)(struct umem_region *r);
	/* Required: VMM side, adopt r->export_fd opened by the caller. */
	int (*open)(struct umem_region *r);
	/* Required: map the region in this process (r->map). */
	int (*map)(struct umem_region *r);
	/* Required: read whole requests, non-blocking; -EAGAIN if none. */
	int (*read)(struct umem_region *r, struct umem_page_request *reqs,
		    unsigned int max);
	/* Required. */
	int (*copy)(struct umem_region *r, uint64_t off, const void *src,
		    uint64_t len);
	/* Optional: fallback is one copy per item. */
	int (*copy_vec)(struct umem_region *r, struct umem_copy_item *items,
			unsigned int count);
	/* Optional: fallback copies from a zero page. */
	int (*zero)(struct umem_region *r, uint64_t off, uint64_t len);
	/* Optional (both or neither). */
	int (*write)(struct umem_region *r, uint64_t off, const void *src,
		     uint64_t len);
	int (*mark_present)(struct umem_region *r, const uint64_t *offs,
			    unsigned int count);
	/* Optional. */
	int (*discard)(struct umem_region *r, uint64_t off, uint64_t len);
	/* Optional: fallback is a no-op. */
	int (*wake)(struct umem_region *r, uint64_t off, uint64_t len);
	/* Optional: fallback reports the library's own counters. */
	int (*stats)(struct umem_region *r, struct umem_region_stats *st);
	/* Optional: fallback is -EOPNOTSUPP. */
	int (*was_mapped)(struct umem_region *r);
	/* Optional (needs-attach backends): adopt the VMM's fault fd. */
	int (*attach)(struct umem_region *r, int fd, uint64_t base);
	/* Optional: write-protect or unprotect a checked range. */
	int (*writeprotect)(struct umem_region *r, uint64_t off, uint64_t len,
			    bool protect);
	/* Optional: serve a region by its node (r->size, r->page_size and
	 * the fds are filled in here). */
	int (*attach_node)(struct umem_region *r, const char *path);
	/* Required: release backend resources (fds are closed by the core). */
	void (*destroy)(struct umem_region *r);
};

struct umem_region {
	const struct umem_backend_ops *ops;
	bool server;			/* created here (daemon role) */
	uint32_t flags;			/* UMEM_REGION_* of the config */
	uint64_t size;
	uint32_t page_size;
	char name[32];
	char path[64];			/* node path, "" if none */
	int server_fd;			/* umem: server fd; uffd*: memfd */
	int export_fd;			/* fd for the VMM */
	int fault_fd;			/* fd requests are read from */
	int client_uffd;		/* uffd* VMM side, until handed over */
	uint64_t base;			/* VMM address of the registered map */
	void *map;			/* this process's mapping */
	void *daemon_map;		/* uffd-minor: daemon's write mapping */
	uint64_t features;		/* umem: UMEM_F_* of the module */
	bool hugetlb;			/* uffd*: the memfd is on hugetlbfs */
	/* One page of zeros (read-only anonymous mapping: no memory until
	 * read, and never more than the shared zero page). */
	const void *zero_buf;
	umem_log_fn log;
	void *log_opaque;
	/* library-side counters (uffd* stats) */
	atomic_uint_fast64_t n_requests, n_installed, n_discarded;
	/*
	 * uffd* with UMEM_REGION_WRITE_PROTECT, one bit a page: pages this
	 * handle protected and has not unprotected since (wp_protected,
	 * counted in n_protected), and pages whose WP request was reported
	 * since they were last protected or unprotected (wp_requested: the
	 * kernel queues one message per faulting task, the library reports
	 * the first).  NULL otherwise.
	 */
	_Atomic uint64_t *wp_protected, *wp_requested;
	atomic_uint_fast64_t n_protected, n_wp_faults, n_wp_requests;
};

void umem__log(const struct umem_region *r, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Every ioctl goes through here: retries EINTR, returns 0/positive or -errno. */
int umem__ioctl(int fd, unsigned long req, void *arg);
int umem__range_ok(const struct umem_region *r, uint64_t off, uint64_t len);
uint64_t umem__now_ns(void);
/*
 * mmap @fd shared, read/write, at an address aligned to the region's page
 * size, so that a 2 MiB page can be mapped by one PMD.  0 or -errno.
 */
int umem__mmap_aligned(const struct umem_region *r, int fd, void **out);
/* A number of the 2 MiB hugetlb pool in sysfs (free_hugepages, ...), or -1. */
long umem__hugepages_count(const char *file);
/* Log the "reserve huge pages" hint when a hugetlb allocation failed. */
void umem__hugetlb_hint(const struct umem_region *r, const char *what);

extern const struct umem_backend_ops umem__backend_umem;
extern const struct umem_backend_ops umem__backend_uffd;
extern const struct umem_backend_ops umem__backend_uffd_minor;

#endif
