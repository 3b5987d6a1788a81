/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libumem - user-serviced memory regions for postcopy live migration.
 *
 * A *region* is a range of shared memory whose pages start out missing.
 * Tasks that touch a missing page block until a daemon installs it.  The
 * same API runs over three backends, chosen by name at run time:
 *
 *   "umem"       the umem kernel module (/dev/umem, /dev/umem-<name>);
 *   "uffd"       userfaultfd MISSING mode on a memfd (UFFDIO_COPY/ZEROPAGE);
 *   "uffd-minor" userfaultfd MISSING|MINOR mode on a memfd; the daemon
 *                writes through its own mapping then UFFDIO_CONTINUE.
 *
 * Pages are 4 KiB, or 2 MiB (umem_region_config.page_size): the uffd
 * backends then use a hugetlbfs memfd (huge pages must be reserved in
 * /proc/sys/vm/nr_hugepages), umem needs a module with UMEM_F_PAGE_2M.
 *
 * Two roles, usually two processes.  Postcopy (pages arrive later):
 *
 *   1. The daemon creates the region (umem_region_create()) and hands the
 *      VMM an fd from umem_region_export_fd() (over a unix socket with
 *      SCM_RIGHTS), or the VMM opens the umem node by path.
 *   2. The VMM adopts that fd (umem_region_open()) and maps it
 *      (umem_region_map()).  For the userfaultfd backends the faulting
 *      mapping must be registered in the VMM's own address space, so
 *      umem_region_map() also creates a userfaultfd there;
 *      umem_region_client_fault_fd() returns it, and the VMM sends it back
 *      to the daemon, then closes its copy (so that the daemon's death
 *      releases the faulting tasks).  With "umem" there is nothing to send.
 *   3. The daemon passes that fd to umem_region_attach() and from then on
 *      reads requests and installs pages.  umem_region_needs_attach() tells
 *      whether this step exists for a backend.
 *
 * Live snapshot (the VMM's RAM exists first, the daemon comes later), the
 * same roles the other way round:
 *
 *   1. The VMM creates its RAM with flags UMEM_REGION_PRESENT |
 *      UMEM_REGION_WRITE_PROTECT (umem_region_create()) and maps it
 *      (umem_region_map(): uffd* registers write-protect mode only, and the
 *      region is attached to the VMM itself), and runs.  With "umem" a
 *      region can also be made by "umemctl create" and mapped by path.
 *   2. uffd*: the VMM sends the daemon the memfd (umem_region_export_fd())
 *      and its userfaultfd and base (umem_region_client_fault_fd(), which
 *      hands the userfaultfd over), then closes its copy of the
 *      userfaultfd.  The daemon adopts them with umem_region_open() (the
 *      same flags) and umem_region_attach().
 *      umem: once the creator's server fd is gone, the daemon serves the
 *      region by its node: umem_region_attach_node().
 *   3. The daemon maps the region (umem_region_map() on a handle that
 *      serves: plain shared memory, nothing blocks), write-protects it
 *      (umem_region_writeprotect()), saves pages in the background and
 *      answers each UMEM_REQUEST_WP request by saving that page first,
 *      then unprotecting it.  Closing the handle unprotects everything:
 *      the VMM keeps its memory.
 *
 * A single process may play both roles (map a region it created): the
 * region is then attached to itself.
 *
 * Every function returns 0 (or a count) on success and a negative errno on
 * failure.  The library never prints, never exits and keeps no global
 * mutable state; diagnostics go to the log hook of the region config.
 */
#ifndef LIBUMEM_H
#define LIBUMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LIBUMEM_VERSION_MAJOR	0
#define LIBUMEM_VERSION_MINOR	7

/* Opaque handle; one per region per process. */
struct umem_region;

/* syslog-compatible levels for the log hook. */
enum umem_log_level {
	UMEM_LOG_ERR = 3,
	UMEM_LOG_WARN = 4,
	UMEM_LOG_INFO = 6,
	UMEM_LOG_DEBUG = 7,
};

typedef void (*umem_log_fn)(void *opaque, int level, const char *msg);

/*
 * Region configuration.  Zero-initialise it, then fill in what you need.
 * @backend:   "umem", "uffd" or "uffd-minor" (NULL means "umem").
 * @name:      create: region name, 1..31 of [A-Za-z0-9_.-]; open: ignored.
 * @size:      create: bytes, a non-zero multiple of @page_size.
 *             open: 0 (take the size of the fd) or the expected size.
 * @page_size: 0 (create: 4096; open: 4096, or the huge page size of a
 *             hugetlbfs fd), 4096, or 2097152 (2 MiB pages: umem with
 *             UMEM_F_PAGE_2M, or uffd* on a hugetlbfs memfd; then every
 *             offset and length below is in 2 MiB pages).
 * @flags:     UMEM_REGION_* below; other bits: -EINVAL.
 * @log:       optional log hook (may be called from any thread).
 * @reserved:  must be zero.
 */
/*
 * Pages of the region can be write-protected (umem_region_writeprotect()),
 * for live snapshots.  umem: UMEM_F_WRITE_PROTECT (umem 0.5); with 2 MiB
 * pages the unit is the whole 2 MiB page, which stays PMD-mapped.  uffd*:
 * UFFD_FEATURE_WP_HUGETLBFS_SHMEM (Linux 5.19).
 */
#define UMEM_REGION_WRITE_PROTECT	(1U << 0)
/*
 * Every page starts present: it reads as zeros (umem_region_create()) or
 * as what the memfd holds (umem_region_open()); nothing is ever missing.
 * umem: UMEM_F_CREATE_PRESENT (umem 0.5); uffd*: only with
 * UMEM_REGION_WRITE_PROTECT (else there is nothing to serve: -EINVAL).
 */
#define UMEM_REGION_PRESENT		(1U << 1)

struct umem_region_config {
	const char *backend;
	const char *name;
	uint64_t size;
	uint32_t page_size;
	uint32_t flags;
	umem_log_fn log;
	void *log_opaque;
	uint64_t reserved[4];
};

/* A page request read from a region. */
#define UMEM_REQUEST_WRITE	(1U << 0)	/* first fault was a write */
/*
 * With UMEM_REQUEST_WRITE: the page is present and write-protected, and a
 * task wants to write it.  Answer by saving the page, then
 * umem_region_writeprotect(r, offset, page size, 0), never by an install.
 * Reported once per protected page however many tasks write it; one read
 * may name a page unprotected since (unprotecting again is a no-op).
 */
#define UMEM_REQUEST_WP		(1U << 1)

struct umem_page_request {
	uint64_t offset;	/* page-aligned byte offset in the region */
	uint32_t flags;		/* UMEM_REQUEST_* */
	uint32_t tid;		/* faulting thread, 0 if unknown */
	uint64_t time_ns;	/* CLOCK_MONOTONIC: fault time (umem) or read time */
	uint64_t reserved;
};

/* One page for umem_region_copy_vec(). */
struct umem_copy_item {
	uint64_t offset;	/* in: page-aligned offset */
	const void *src;	/* in: one page of data */
	int64_t result;		/* out: 0 or -errno */
};

/*
 * Region counters.  Backends without kernel counters (uffd*) report what
 * the library itself saw; fields they cannot know are 0.
 */
struct umem_region_stats {
	uint64_t size;
	uint64_t page_size;
	uint64_t pages;
	uint64_t pages_present;
	uint64_t requests;
	uint64_t requests_pending;
	uint64_t faults;
	uint64_t waiting;
	uint64_t wait_ns_total;
	uint64_t wait_ns_max;
	uint64_t installed;
	uint64_t discarded;
	uint64_t alloc_failed;	/* umem: installs refused, no 2 MiB folio */
	uint64_t pages_protected; /* write-protected now (uffd*: by this handle) */
	uint64_t wp_faults;	/* writes that found their page protected
				 * (uffd*: such faults this handle read) */
	uint64_t mmaps;		/* umem: mmap() calls of the region so far,
				 * any process (UMEM_F_MMAPS); uffd*: 0 */
};

/** \defgroup any Any context */
/* Whether a backend name is known to this library (1) or not (0). */
int umem_backend_known(const char *backend);
/* NULL-terminated list of backend names. */
const char *const *umem_backend_names(void);
const char *umem_region_backend(const struct umem_region *r);
uint64_t umem_region_size(const struct umem_region *r);
uint32_t umem_region_page_size(const struct umem_region *r);
/* Unmaps, closes every fd; faulting tasks are released (see docs). */
void umem_region_close(struct umem_region *r);
/* A static description of an errno returned by this library. */
const char *umem_strerror(int err);

/** \defgroup daemon Daemon (server) context */
/* Create a region (in the snapshot sequence the VMM creates it). */
int umem_region_create(const struct umem_region_config *cfg,
		       struct umem_region **out);
/*
 * The fd a VMM should map: a node fd (umem, never the server fd, so the
 * daemon's death still aborts the region) or the memfd (uffd*).  Owned by
 * the region: dup it or send it, do not close it.
 */
int umem_region_export_fd(struct umem_region *r);
/* Filesystem path of the region if it has one (umem: /dev/umem-<name>). */
const char *umem_region_path(const struct umem_region *r);
/* 1 if the VMM must send a fault fd back (uffd*), 0 otherwise. */
int umem_region_needs_attach(const struct umem_region *r);
/*
 * Adopt a userfaultfd created by the VMM (ownership passes to the region)
 * whose registered range starts at @base in the VMM's address space.  On
 * a handle created here, or opened (umem_region_open()) and not mapped:
 * the daemon of the snapshot sequence adopts the VMM's memfd and uffd.
 */
int umem_region_attach(struct umem_region *r, int fault_fd, uint64_t base);
/* The fd to poll for requests, or -ENOTCONN before attach. */
int umem_region_fault_fd(const struct umem_region *r);
/*
 * Read up to @max requests.  Waits up to @timeout_ms (-1 forever) for the
 * first; returns the number read, 0 on timeout, or -errno.
 * -ESHUTDOWN: the VMM side is gone (uffd: its mm exited).
 */
int umem_region_read_requests(struct umem_region *r,
			      struct umem_page_request *reqs, unsigned int max,
			      int timeout_ms);
/* Install @len bytes (whole pages) at @offset from @src; wakes waiters. */
int umem_region_copy(struct umem_region *r, uint64_t offset,
		     const void *src, uint64_t len);
/* Install many single pages; per-item result.  Returns items handled. */
int umem_region_copy_vec(struct umem_region *r, struct umem_copy_item *items,
			 unsigned int count);
/* Install zero-filled pages. */
int umem_region_zero(struct umem_region *r, uint64_t offset, uint64_t len);
/*
 * Two-step install: stage data (not yet visible) then make pages present.
 * Optional: -EOPNOTSUPP on "uffd".
 */
int umem_region_write(struct umem_region *r, uint64_t offset,
		      const void *src, uint64_t len);
int umem_region_mark_present(struct umem_region *r, const uint64_t *offsets,
			     unsigned int count);
/*
 * Write-protect (@protect non-zero) or unprotect [@offset, @offset + @len)
 * of a region created with UMEM_REGION_WRITE_PROTECT.  Unprotecting wakes
 * the tasks blocked writing those pages.  -EOPNOTSUPP: the region was not
 * created with UMEM_REGION_WRITE_PROTECT (or the module predates umem
 * 0.5); -ENOENT (umem): a page of the range is missing, nothing protected.
 */
int umem_region_writeprotect(struct umem_region *r, uint64_t offset,
			     uint64_t len, int protect);
/*
 * umem only (else -EOPNOTSUPP): serve a region another process created
 * and whose server fd is gone, by its node @path (UMEM_ATTACH, umem 0.5).
 * Size and page size come from the region (a non-zero @cfg size or
 * page_size must match); @cfg->name is ignored.  -EBUSY: it is served.
 */
int umem_region_attach_node(const struct umem_region_config *cfg,
			    const char *path, struct umem_region **out);
/* Make present pages missing again, dropping their data. */
int umem_region_discard(struct umem_region *r, uint64_t offset, uint64_t len);
/* Wake tasks waiting on a range (no-op where the kernel does it). */
int umem_region_wake(struct umem_region *r, uint64_t offset, uint64_t len);
int umem_region_stats(struct umem_region *r, struct umem_region_stats *st);
/*
 * 1 if some process has mapped the region since it was created (the
 * module's umem_stats.mmaps), 0 if none has; -EOPNOTSUPP if the backend
 * cannot tell (uffd*, whose VMM attaches over a socket, or a module
 * without UMEM_F_MMAPS, umem 0.6).  A daemon whose VMM maps the node by
 * path asks before it lets the region go.
 */
int umem_region_was_mapped(struct umem_region *r);

/** \defgroup vmm VMM (client) context */
/*
 * Open a region created by a daemon, from @fd (taken over, even on
 * failure) or, if @fd < 0, from @path.  In the snapshot sequence the
 * daemon opens the VMM's memfd this way, then umem_region_attach().
 */
int umem_region_open(const struct umem_region_config *cfg, int fd,
		     const char *path, struct umem_region **out);
/*
 * Map the whole region shared, read/write.  Idempotent.  For uffd* also
 * creates and registers this process's userfaultfd; on a region created
 * in this process, the region is attached to it.  On a handle that serves
 * already (attached, or umem_region_attach_node()) it is the daemon's
 * view: plain shared memory, registered nowhere, whose reads never block
 * (umem: a mapping of the server fd, whose missing pages would block).
 */
int umem_region_map(struct umem_region *r, void **addr);
/*
 * uffd*: the userfaultfd to send to the daemon and the base address it
 * registers.  The region gives up ownership: the caller closes it after
 * sending.  On a region created in this process (the snapshot sequence)
 * the region stops serving it.  -ENOTSUP for backends without one (umem).
 */
int umem_region_client_fault_fd(struct umem_region *r, int *fd,
				uint64_t *base);

#ifdef __cplusplus
}
#endif

#endif /* LIBUMEM_H */
