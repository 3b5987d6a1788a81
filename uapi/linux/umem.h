/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * umem: user-serviced memory regions for postcopy live migration.
 *
 * A region is a range of shmem-backed memory whose pages start out
 * *missing*.  A task that touches a missing page sleeps in the kernel while
 * a daemon, reading page requests from the region's *server fd*, fetches
 * the page and installs it with one of the ioctls below.  See
 * Documentation/umem.rst for the full description.
 *
 * Changelog
 * ---------
 * API 1 (umem 0.1):
 *   - /dev/umem control device: UMEM_GET_API, UMEM_CREATE.
 *   - server fd: read() of struct umem_request records, poll, pwrite,
 *     UMEM_COPY, UMEM_COPY_VEC, UMEM_ZERO, UMEM_MARK_PRESENT,
 *     UMEM_DISCARD, UMEM_STATS, mmap.
 *   - per-region node /dev/umem-<name>: open, lseek, mmap(MAP_SHARED).
 *
 * Rules for every struct in this file: fixed-size types, naturally aligned,
 * explicit padding; every field named "reserved" or "pad" must be zero on
 * input (else EINVAL) and is zeroed by the kernel on output; every "flags"
 * or "mode" field rejects unknown bits with EINVAL.  Fields the kernel
 * writes are marked "out" and are placed last.
 */
#ifndef _UAPI_LINUX_UMEM_H
#define _UAPI_LINUX_UMEM_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define UMEM_API		1ULL

/* Name of the control device, and prefix of each region's node. */
#define UMEM_CTL_DEVICE		"/dev/umem"
#define UMEM_NODE_PREFIX	"/dev/umem-"

/* Region names: 1..UMEM_NAME_MAX-1 characters of [A-Za-z0-9_.-], NUL-terminated. */
#define UMEM_NAME_MAX		32

/*
 * Feature bits, reported by UMEM_GET_API.  Each names something that works
 * on this kernel; asking for a bit the kernel does not know fails the
 * handshake with EINVAL, so a program can either ask for what it needs (and
 * fail clearly on an old module) or ask for 0 and probe the reply.
 */
/* UMEM_COPY_VEC: many (offset, src) pairs per call with per-entry results. */
#define UMEM_F_COPY_VEC		(1ULL << 0)
/* pwrite() on the server fd + UMEM_MARK_PRESENT (the 2011 install style). */
#define UMEM_F_MARK_PRESENT	(1ULL << 1)
/* UMEM_ZERO: install zero-filled pages without passing data. */
#define UMEM_F_ZERO		(1ULL << 2)
/* UMEM_DISCARD: present pages become missing again, data dropped. */
#define UMEM_F_DISCARD		(1ULL << 3)
/* The region's node can be opened and mapped by path (/dev/umem-<name>). */
#define UMEM_F_NODE		(1ULL << 4)
/* Every UMEM_F_* has to be included here. */
#define UMEM_F_ALL		(UMEM_F_COPY_VEC | UMEM_F_MARK_PRESENT | \
				 UMEM_F_ZERO | UMEM_F_DISCARD | UMEM_F_NODE)

/*
 * One ioctl magic for the whole interface.  Numbers 0x00-0x0f are commands of
 * the control device, 0x10-0x3f commands of the server fd.  UMEM_GET_API is
 * pinned at 0x00 so that new commands never move the handshake.
 */
#define UMEMIO			0xB9

/*
 * UMEM_GET_API - handshake on the control device (/dev/umem).
 * @api:      in:  must be UMEM_API (else EINVAL).
 * @features: in:  features the caller requires (unknown bits: EINVAL).
 *            out: every feature this kernel supports.
 * @ioctls:   out: bitmask, bit N set when ioctl command number N works.
 * The reply is zeroed on failure.  It may be repeated at any time.
 */
struct umem_api {
	__u64 api;
	__u64 features;
	__u64 ioctls;
	__u64 reserved[5];
};

/*
 * UMEM_CREATE - create a region; the ioctl returns the server fd (also
 * written to @server_fd).
 * @size:      in: bytes; a non-zero multiple of @page_size (else EINVAL).
 * @page_size: in: 4096 (UMEM_PAGE_SIZE_4K).  Other sizes: EINVAL, for now.
 * @flags:     in: UMEM_CREATE_* (none defined yet; must be 0).
 * @name:      in: region name; the node is UMEM_NODE_PREFIX @name.
 *                 Duplicate: EEXIST.  Bad characters or empty: EINVAL.
 * @id:        out: region id (its node's minor number).
 * @server_fd: out: the server fd (O_RDWR | O_CLOEXEC).
 * Memory is shmem, charged to the memory cgroup of the creating task.
 */
#define UMEM_PAGE_SIZE_4K	4096U

struct umem_create {
	__u64 size;
	__u32 page_size;
	__u32 flags;
	char name[UMEM_NAME_MAX];
	__u64 reserved[4];
	__u32 id;
	__s32 server_fd;
};

/*
 * A page request, as read() from the server fd.  read() returns as many
 * whole records as fit the buffer (at least one; a buffer smaller than one
 * record gives EINVAL), blocking only until the first is available unless
 * the fd is O_NONBLOCK (then EAGAIN).  Each missing page is requested once
 * however many tasks fault on it; it is requested again only after a
 * discard made it missing again.
 * @offset:  byte offset of the page in the region (page aligned).
 * @flags:   UMEM_REQ_WRITE when the first fault was a write.
 * @tid:     thread id (in the daemon's pid namespace; 0 if not visible)
 *           of the first task that faulted.
 * @time_ns: CLOCK_MONOTONIC time of that fault, for latency figures.
 */
#define UMEM_REQ_WRITE		(1U << 0)

struct umem_request {
	__u64 offset;
	__u32 flags;
	__u32 tid;
	__u64 time_ns;
	__u64 reserved;
};

/*
 * UMEM_COPY - copy @len bytes from @src in the caller's memory into the
 * missing pages at @offset, mark them present and wake their waiters.
 * No task can observe a partly written page.  Stops at the first page that
 * is already present (EEXIST), at a bad @src (EFAULT) or on a fatal
 * signal (EINTR).
 * @copied: out: bytes installed, or a negative errno if none were.
 */
struct umem_copy {
	__u64 offset;
	__u64 len;
	__u64 src;
	__u64 mode;		/* none defined yet; must be 0 */
	__s64 copied;
};

/*
 * UMEM_COPY_VEC - install many pages, one struct umem_copy_entry each.
 * Each entry gets its own result (0 or a negative errno such as -EEXIST);
 * a bad entry does not stop the others.  The call fails with EFAULT only if
 * the entry array itself cannot be read or written, and with EINTR on a
 * fatal signal; @handled then tells how many entries were processed.
 * @entries: user pointer to @count struct umem_copy_entry.
 * @count:   1..UMEM_COPY_VEC_MAX.
 * @handled: out: entries processed (their @result is valid).
 */
#define UMEM_COPY_VEC_MAX	1024U

struct umem_copy_entry {
	__u64 offset;		/* page-aligned offset of one page */
	__u64 src;		/* page of data in the caller's memory */
	__s64 result;		/* out: 0 or -errno */
};

struct umem_copy_vec {
	__u64 entries;
	__u32 count;
	__u32 flags;		/* none defined yet; must be 0 */
	__u64 reserved[2];
	__u64 handled;
};

/*
 * UMEM_ZERO - install zero-filled pages at [@offset, @offset + @len).
 * Errors and @zeroed as for UMEM_COPY.
 */
struct umem_zero {
	__u64 offset;
	__u64 len;
	__u64 mode;		/* none defined yet; must be 0 */
	__s64 zeroed;
};

/*
 * UMEM_MARK_PRESENT - after the daemon wrote page data into the region's
 * backing with pwrite() on the server fd, mark those pages present and
 * wake their waiters (the mirror of userfaultfd's UFFDIO_CONTINUE).  A page
 * never written reads as zeros.  Already present: EEXIST.  Stops at the
 * first error.
 * @offsets: user pointer to @count __u64 page-aligned offsets.
 * @count:   1..UMEM_MARK_PRESENT_MAX.
 * @marked:  out: offsets processed before the first error (or all).
 */
#define UMEM_MARK_PRESENT_MAX	4096U

struct umem_mark_present {
	__u64 offsets;
	__u32 count;
	__u32 flags;		/* none defined yet; must be 0 */
	__u64 reserved[2];
	__u64 marked;
};

/*
 * UMEM_DISCARD - make the pages of [@offset, @offset + @len) missing again
 * and free their data (postcopy's discard step).  Missing pages in the
 * range are left as they are.  Mapped pages are unmapped first, so the next
 * access faults and is requested again.
 */
struct umem_discard {
	__u64 offset;
	__u64 len;
	__u64 flags;		/* none defined yet; must be 0 */
	__u64 reserved;
};

/*
 * UMEM_STATS - counters of a region (all out).
 */
struct umem_stats {
	__u64 size;		/* bytes */
	__u64 page_size;
	__u64 pages;		/* size / page_size */
	__u64 pages_present;
	__u64 requests;		/* page requests queued since creation */
	__u64 requests_pending;	/* queued, not yet read by the daemon */
	__u64 faults;		/* faults that found their page missing */
	__u64 waiting;		/* tasks blocked on a missing page now */
	__u64 wait_ns_total;	/* sum of the time tasks were blocked */
	__u64 wait_ns_max;	/* longest single block */
	__u64 installed;	/* pages made present by any install ioctl */
	__u64 discarded;	/* present pages made missing by UMEM_DISCARD */
	__u64 reserved[4];
};

/* Control device commands. */
#define UMEM_GET_API		_IOWR(UMEMIO, 0x00, struct umem_api)
#define UMEM_CREATE		_IOWR(UMEMIO, 0x01, struct umem_create)

/* Server fd commands. */
#define UMEM_COPY		_IOWR(UMEMIO, 0x10, struct umem_copy)
#define UMEM_COPY_VEC		_IOWR(UMEMIO, 0x11, struct umem_copy_vec)
#define UMEM_ZERO		_IOWR(UMEMIO, 0x12, struct umem_zero)
#define UMEM_MARK_PRESENT	_IOWR(UMEMIO, 0x13, struct umem_mark_present)
#define UMEM_DISCARD		_IOW(UMEMIO, 0x14, struct umem_discard)
#define UMEM_STATS		_IOR(UMEMIO, 0x15, struct umem_stats)

#endif /* _UAPI_LINUX_UMEM_H */
