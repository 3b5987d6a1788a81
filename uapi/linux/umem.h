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
 * Generic netlink family "umem", version 1 (umem 0.2; the ioctl API above
 * is unchanged, UMEM_API stays 1):
 *   - UMEM_CMD_REGION_GET (dump: every region; do: one), UMEM_CMD_STATS_GET,
 *     UMEM_CMD_FAIL (CAP_SYS_ADMIN), multicast group "events" carrying
 *     UMEM_CMD_EVENT.
 * umem 0.3 (UMEM_API stays 1; every addition has a feature bit):
 *   - UMEM_F_NODE_MODE: UMEM_CREATE's @node_mode; nodes are owned by the
 *     creator.  UMEM_CMD_FAIL is also allowed to the region's owner.
 *   - UMEM_F_BIND: UMEM_BIND ties the region to the calling process.
 *   - UMEM_F_PUNCH_HOLE: madvise(MADV_REMOVE) on a mapping is defined
 *     (EBUSY while served, a zeroing punch once detached).
 *   - UMEM_F_RDONLY_MAP: read-only MAP_SHARED mappings of O_RDONLY nodes.
 *   - A per-user limit on the total size of regions (ENOSPC).
 * umem 0.4 (UMEM_API stays 1):
 *   - UMEM_F_PAGE_2M: regions of 2 MiB pages (UMEM_PAGE_SIZE_2M), mapped
 *     with PMDs; umem_stats.alloc_failed and UMEM_STATS_ATTR_ALLOC_FAILED.
 * umem 0.5 (UMEM_API stays 1):
 *   - UMEM_F_WRITE_PROTECT: UMEM_CREATE_WP regions, UMEM_WRITEPROTECT,
 *     UMEM_REQ_WP request records, umem_stats.pages_protected and
 *     .wp_faults (UMEM_STATS_ATTR_PAGES_PROTECTED, _WP_FAULTS).
 *   - UMEM_F_CREATE_PRESENT: UMEM_CREATE_PRESENT.
 *   - UMEM_F_ATTACH: UMEM_ATTACH on a node fd.
 * umem 0.6 (UMEM_API stays 1):
 *   - UMEM_F_MMAPS: umem_stats.mmaps (UMEM_STATS_ATTR_MMAPS), the mmap()
 *     calls of the region so far, in the field that was .reserved.
 * umem 0.7 (UMEM_API stays 1):
 *   - UMEM_F_MAP_ON_INSTALL: installs map their page (no interface change;
 *     the bit says whether it is on).
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
/*
 * UMEM_CREATE honours @node_mode, and the node belongs to the creator's
 * filesystem uid and gid, so a region can be handed to an unprivileged
 * VMM by its group.
 */
#define UMEM_F_NODE_MODE	(1ULL << 5)
/* UMEM_BIND: a daemon's exit detaches the region, whatever copies exist. */
#define UMEM_F_BIND		(1ULL << 6)
/*
 * madvise(MADV_REMOVE) on a mapping fails with EBUSY while the region is
 * served (only the daemon discards, with UMEM_DISCARD) and zeroes the
 * range, as on tmpfs, once the region is detached.  (fallocate() on a
 * node fd is ENODEV: the node is a character device.)
 */
#define UMEM_F_PUNCH_HOLE	(1ULL << 7)
/* A node opened O_RDONLY can be mapped MAP_SHARED with PROT_READ. */
#define UMEM_F_RDONLY_MAP	(1ULL << 8)
/*
 * UMEM_CREATE accepts @page_size UMEM_PAGE_SIZE_2M.  Every page of such a
 * region is 2 MiB: it is requested, installed, discarded and counted
 * whole, its data is one 2 MiB folio, and a mapping whose address and
 * file offset are both 2 MiB aligned maps it with one PMD.  Only on
 * kernels with transparent huge pages and a 2 MiB PMD (x86-64).
 */
#define UMEM_F_PAGE_2M		(1ULL << 9)
/*
 * Write protection for live snapshots: UMEM_CREATE accepts UMEM_CREATE_WP,
 * and such a region's present pages can be write-protected with
 * UMEM_WRITEPROTECT.  A write to a protected page blocks until the daemon
 * has saved the page and unprotected it; it is reported once per page as
 * a UMEM_REQ_WP request.  Reads never block.  In a region of 2 MiB pages
 * the unit is the 2 MiB page, and PMD mappings are kept.
 */
#define UMEM_F_WRITE_PROTECT	(1ULL << 10)
/* UMEM_CREATE accepts UMEM_CREATE_PRESENT. */
#define UMEM_F_CREATE_PRESENT	(1ULL << 11)
/* UMEM_ATTACH: a new server fd for a region whose server is gone. */
#define UMEM_F_ATTACH		(1ULL << 12)
/* umem_stats.mmaps counts the mmap() calls of the region. */
#define UMEM_F_MMAPS		(1ULL << 13)
/*
 * In a region of 4 KiB pages, every install (UMEM_COPY, UMEM_COPY_VEC,
 * UMEM_ZERO, UMEM_MARK_PRESENT) also maps its page into the mappings that
 * already have a page table over it, before the page's waiters are woken,
 * as UFFDIO_COPY maps the page it copies: a task touching the page later
 * takes no fault.  Where there is no page table yet, or the mapping's
 * process is changing its mappings at that moment, the first access maps
 * it by a fault as before.  Reported while the module parameter
 * map_on_install is Y (the default; root can change it at any time, so
 * the bit says what held at the handshake).
 */
#define UMEM_F_MAP_ON_INSTALL	(1ULL << 14)
/* Every UMEM_F_* has to be included here. */
#define UMEM_F_ALL		(UMEM_F_COPY_VEC | UMEM_F_MARK_PRESENT | \
				 UMEM_F_ZERO | UMEM_F_DISCARD | UMEM_F_NODE | \
				 UMEM_F_NODE_MODE | UMEM_F_BIND | \
				 UMEM_F_PUNCH_HOLE | UMEM_F_RDONLY_MAP | \
				 UMEM_F_PAGE_2M | UMEM_F_WRITE_PROTECT | \
				 UMEM_F_CREATE_PRESENT | UMEM_F_ATTACH | \
				 UMEM_F_MMAPS | UMEM_F_MAP_ON_INSTALL)

/*
 * One ioctl magic for the whole interface.  Numbers 0x00-0x0f are commands of
 * the control device, 0x10-0x2f commands of the server fd, 0x30-0x3f
 * commands of a node fd.  UMEM_GET_API is pinned at 0x00 so that new
 * commands never move the handshake; every number stays below 64 so that
 * umem_api.ioctls can report it.
 */
#define UMEMIO			0xB9

/*
 * UMEM_GET_API - handshake on the control device (/dev/umem).
 * @api:      in:  must be UMEM_API (else EINVAL).
 * @features: in:  features the caller requires (unknown bits: EINVAL).
 *            out: every feature this kernel supports.
 * @ioctls:   out: bitmask, bit N set when ioctl command number N works.
 * On EINVAL the whole reply is zeroed (so a caller that ignores the error
 * sees no features).  It may be repeated at any time.
 */
struct umem_api {
	__u64 api;
	__u64 features;
	__u64 ioctls;
	__u64 reserved[5];
};

/*
 * UMEM_CREATE - create a region; the ioctl returns the server fd (also
 * written to @server_fd).  The control device must be open for writing
 * (else EBADF).
 * @size:      in: bytes; a non-zero multiple of @page_size (else EINVAL).
 *                 The sizes of all regions of one user together are
 *                 limited (module parameter max_user_size; ENOSPC).
 * @page_size: in: 4096 (UMEM_PAGE_SIZE_4K), or 2 MiB (UMEM_PAGE_SIZE_2M)
 *                 with UMEM_F_PAGE_2M.  Other sizes: EINVAL.
 * @flags:     in: UMEM_CREATE_* below; unknown bits, or a bit whose
 *                 feature the kernel lacks: EINVAL.
 * @name:      in: region name; the node is UMEM_NODE_PREFIX @name.  Bytes
 *                 after the terminating NUL must be zero.
 *                 Duplicate: EEXIST.  Bad characters or empty: EINVAL.
 * @node_mode: in: permission bits (at most 0777) of the node, which is
 *                 owned by the creator's filesystem uid and gid; 0 means
 *                 0600 (UMEM_F_NODE_MODE).  Other bits: EINVAL.
 * @pad:       in: must be 0.
 * @id:        out: region id (its node's minor number); 0 on input.
 * @server_fd: out: the server fd (O_RDWR | O_CLOEXEC); 0 on input.
 * Memory is shmem, charged to the memory cgroup of the creating task, as
 * is the region's own bookkeeping (bitmaps, queued requests).
 *
 * In a region of 2 MiB pages, "page" below means a 2 MiB page: request
 * offsets, COPY/ZERO/DISCARD offsets and lengths and MARK_PRESENT offsets
 * are multiples of 2 MiB (else EINVAL), a COPY_VEC entry installs 2 MiB
 * from its @src, and pwrite() may write any byte range.  An install that
 * cannot get a 2 MiB folio for a page fails with ENOMEM and installs
 * nothing there (it never falls back to 4 KiB pages: the VMM was promised
 * huge pages); umem_stats.alloc_failed counts those.  mmap() takes any
 * 4 KiB-aligned offset; only a mapping whose address and offset are 2 MiB
 * aligned gets PMD mappings, others map the same data with PTEs.
 */
#define UMEM_PAGE_SIZE_4K	4096U
#define UMEM_PAGE_SIZE_2M	(2U << 20)
#define UMEM_NODE_MODE_DEFAULT	0600U

/*
 * UMEM_CREATE_WP (UMEM_F_WRITE_PROTECT): pages of the region can be
 * write-protected (UMEM_WRITEPROTECT).  Its mappings are write-notify, as
 * a shared mapping of a file with dirty tracking is: a page first mapped by
 * a read takes one more (minor) fault on its first write.
 */
#define UMEM_CREATE_WP		(1U << 0)
/*
 * UMEM_CREATE_PRESENT (UMEM_F_CREATE_PRESENT): every page starts present
 * and reads as zeros, as a new tmpfs file does (memory is allocated when a
 * page is first touched).  Such a region needs no daemon to be used: a VMM
 * can boot on it, and a snapshot daemon can UMEM_ATTACH to it later.
 */
#define UMEM_CREATE_PRESENT	(1U << 1)
#define UMEM_CREATE_FLAGS	(UMEM_CREATE_WP | UMEM_CREATE_PRESENT)

struct umem_create {
	__u64 size;
	__u32 page_size;
	__u32 flags;
	char name[UMEM_NAME_MAX];
	__u32 node_mode;
	__u32 pad;
	__u64 reserved[3];
	__u32 id;
	__s32 server_fd;
};

/*
 * A page request, as read() from the server fd.  read() returns as many
 * whole records as fit the buffer (at least one; a buffer smaller than one
 * record gives EINVAL), blocking only until the first is available unless
 * the fd is O_NONBLOCK (then EAGAIN).  Once the region is detached
 * (UMEM_CMD_FAIL, or UMEM_BIND's process gone) read() returns 0 (end of
 * file) and poll() reports EPOLLHUP.  Each missing page is requested once
 * however many tasks fault on it; it is requested again only after a
 * discard made it missing again.
 * @offset:  byte offset of the page in the region (page aligned).
 * @flags:   UMEM_REQ_WRITE when the first fault was a write;
 *           UMEM_REQ_WP (with UMEM_REQ_WRITE) when the page is present
 *           and write-protected: a task wants to write it.  The daemon
 *           saves the page (reading it through its own mapping of the
 *           region: reads of a protected page never block) and unprotects
 *           it with UMEM_WRITEPROTECT, which wakes the writers.  Each
 *           protected page is requested once however many tasks write to
 *           it; a request not yet read when its page is unprotected or
 *           discarded is dropped, one already read may name a page that
 *           has been unprotected since.
 * @tid:     thread id (in the daemon's pid namespace; 0 if not visible)
 *           of the first task that faulted.
 * @time_ns: CLOCK_MONOTONIC time of that fault, for latency figures.
 */
#define UMEM_REQ_WRITE		(1U << 0)
#define UMEM_REQ_WP		(1U << 1)

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
	__u64 alloc_failed;	/* installs refused: no 2 MiB folio (ENOMEM) */
	__u64 pages_protected;	/* write-protected pages now */
	__u64 wp_faults;	/* writes that found their page write-protected */
	/*
	 * Successful mmap() calls of the node or the server fd since the
	 * region was created, by any process (not fork, split, mremap or
	 * remap_file_pages()).  Not 0: a VMM has taken the region's RAM.
	 * UMEM_F_MMAPS; 0 before.
	 */
	__u64 mmaps;
};

/*
 * UMEM_BIND - tie the region to the calling process: when that process
 * closes the server fd (any of its descriptors for this open file) or
 * exits, the region detaches at once, even though copies of the server fd
 * are still open elsewhere (a forked child, a VMM that received it over a
 * unix socket).  Without it a region detaches only when the last copy is
 * closed.  Repeating it from the bound process is a no-op; from another
 * process while the bound one is alive: EBUSY (UMEM_F_BIND).
 * @flags:    in: none defined yet; must be 0.
 * @reserved: in: must be 0.
 */
struct umem_bind {
	__u64 flags;
	__u64 reserved[3];
};

/*
 * UMEM_WRITEPROTECT - write-protect or unprotect [@offset, @offset + @len)
 * of a region created with UMEM_CREATE_WP (else EOPNOTSUPP).
 * @mode: UMEM_WP_MODE_PROTECT: protect.  Every page of the range must be
 *        present (else ENOENT, and nothing is protected) and the region
 *        served (else ENXIO).  Once the call returns, no task writes to
 *        those pages until they are unprotected: every writable mapping
 *        of them is gone, and a write (from user space, a syscall, or
 *        get_user_pages() such as O_DIRECT or process_vm_writev()) blocks
 *        as a fault on a missing page does, after one UMEM_REQ_WP request
 *        per page.  Protecting a protected page is a no-op.
 *        0: unprotect, and wake the page's writers.  Unprotecting a page
 *        that is not protected (or missing) is a no-op.
 *        Other bits: EINVAL.
 * @done: out: bytes of the range processed (@len on success, else 0).
 * A protected page can still be discarded (UMEM_DISCARD): it becomes
 * missing and unprotected, and its writers fault on the missing page.
 * When the region detaches (its daemon exits) every page is unprotected
 * and blocked writers go on: the VMM keeps its memory, only the snapshot
 * that was being taken is lost.
 */
#define UMEM_WP_MODE_PROTECT	(1ULL << 0)

struct umem_writeprotect {
	__u64 offset;
	__u64 len;
	__u64 mode;
	__s64 done;
};

/*
 * UMEM_ATTACH - on a node fd opened for writing (else EBADF): serve a
 * region whose server fd is gone (closed, or its process exited), for the
 * region's owner (its creator's fsuid) or CAP_SYS_ADMIN (else EPERM).
 * Returns a new server fd (also written to @server_fd), O_RDWR | O_CLOEXEC,
 * with which the caller serves the region as its creator did: the region
 * is live again, and missing pages are requested afresh (faults that got
 * SIGBUS while it was detached are not replayed).  EBUSY while any server
 * fd of the region is open, also one whose region was failed over genl.
 * This is how a snapshot daemon takes over a running VMM's region, whose
 * creator has exited, without the VMM's help.
 * @flags:     in: none defined yet; must be 0.
 * @reserved:  in: must be 0.
 * @server_fd: out: the new server fd; 0 on input.
 * @pad:       out: 0; 0 on input.
 */
struct umem_attach {
	__u64 flags;
	__u64 reserved[2];
	__s32 server_fd;
	__u32 pad;
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
#define UMEM_BIND		_IOW(UMEMIO, 0x16, struct umem_bind)
#define UMEM_WRITEPROTECT	_IOWR(UMEMIO, 0x17, struct umem_writeprotect)

/* Node fd commands. */
#define UMEM_ATTACH		_IOWR(UMEMIO, 0x30, struct umem_attach)

/*
 * Generic netlink family (see Documentation/umem.rst, "Generic netlink").
 * Strict validation: unknown attributes, wrong types and attributes that
 * are output-only are rejected, with an extended ack message.
 *
 * UMEM_CMD_REGION_GET
 *   dump request: no attributes; one reply message per region.
 *   do request:   [UMEM_ATTR_REGION_ID] or [UMEM_ATTR_REGION_NAME].
 *   reply:        the "region" attributes: REGION_ID, REGION_NAME, SIZE,
 *                 PAGE_SIZE, PAGES, PAGES_PRESENT, PAGES_MISSING, WAITING,
 *                 REQUESTS_QUEUED, SERVER_ATTACHED, [DAEMON_PID],
 *                 CREATOR_PID, AGE_NS.
 * UMEM_CMD_STATS_GET
 *   request:      [UMEM_ATTR_REGION_ID] or [UMEM_ATTR_REGION_NAME].
 *   reply:        the "region" attributes, and
 *                 [UMEM_ATTR_STATS]            (the UMEM_STATS figures)
 *                   [UMEM_STATS_ATTR_*]        u64 each
 *                 [UMEM_ATTR_WAIT_HIST]        log2 histogram of waits
 *                   [UMEM_HIST_ATTR_BUCKET]    u64, UMEM_HIST_BUCKETS
 *                   ...                        times, bucket 0 first
 * UMEM_CMD_FAIL (needs CAP_SYS_ADMIN, or the region's owner uid)
 *   request:      [UMEM_ATTR_REGION_ID] or [UMEM_ATTR_REGION_NAME].
 *   The region behaves as if its server fd had been closed: queued
 *   requests are dropped, every task waiting for a missing page and every
 *   later fault on one gets SIGBUS.  EALREADY if already detached.
 * UMEM_CMD_EVENT (multicast group UMEM_GENL_MCGRP_EVENTS, never a request)
 *                 [UMEM_ATTR_EVENT] (enum umem_event), REGION_ID,
 *                 REGION_NAME, PAGES, PAGES_MISSING.
 */
#define UMEM_GENL_NAME		"umem"
#define UMEM_GENL_VERSION	1
#define UMEM_GENL_MCGRP_EVENTS	"events"

/*
 * Wait histogram: bucket i counts waits of [2^(i+S), 2^(i+S+1)) ns, with
 * S = UMEM_HIST_SHIFT; bucket 0 also holds shorter waits and the last
 * bucket longer ones.
 */
#define UMEM_HIST_BUCKETS	32
#define UMEM_HIST_SHIFT		10

enum umem_genl_cmd {
	UMEM_CMD_UNSPEC,
	UMEM_CMD_REGION_GET,
	UMEM_CMD_STATS_GET,
	UMEM_CMD_FAIL,
	UMEM_CMD_EVENT,
	__UMEM_CMD_MAX,
	UMEM_CMD_MAX = __UMEM_CMD_MAX - 1
};

enum umem_genl_attr {
	UMEM_ATTR_UNSPEC,
	UMEM_ATTR_PAD,
	UMEM_ATTR_REGION_ID,		/* u32, in/out */
	UMEM_ATTR_REGION_NAME,		/* NUL-terminated string, in/out */
	UMEM_ATTR_SIZE,			/* u64, bytes */
	UMEM_ATTR_PAGE_SIZE,		/* u32 */
	UMEM_ATTR_PAGES,		/* u64 */
	UMEM_ATTR_PAGES_PRESENT,	/* u64 */
	UMEM_ATTR_PAGES_MISSING,	/* u64 */
	UMEM_ATTR_WAITING,		/* u32, tasks blocked on a missing page */
	UMEM_ATTR_REQUESTS_QUEUED,	/* u64, not yet read by the daemon */
	UMEM_ATTR_SERVER_ATTACHED,	/* u8, 1 while the server fd is open */
	UMEM_ATTR_DAEMON_PID,		/* u32, process that last read requests */
	UMEM_ATTR_CREATOR_PID,		/* u32, process that created the region */
	UMEM_ATTR_AGE_NS,		/* u64, since creation */
	UMEM_ATTR_STATS,		/* nested, UMEM_STATS_ATTR_* */
	UMEM_ATTR_WAIT_HIST,		/* nested, UMEM_HIST_ATTR_BUCKET */
	UMEM_ATTR_EVENT,		/* u32, enum umem_event */
	__UMEM_ATTR_MAX,
	UMEM_ATTR_MAX = __UMEM_ATTR_MAX - 1
};

/* Inside UMEM_ATTR_STATS: struct umem_stats, one u64 attribute a field. */
enum umem_stats_attr {
	UMEM_STATS_ATTR_UNSPEC,
	UMEM_STATS_ATTR_PAD,
	UMEM_STATS_ATTR_SIZE,
	UMEM_STATS_ATTR_PAGE_SIZE,
	UMEM_STATS_ATTR_PAGES,
	UMEM_STATS_ATTR_PAGES_PRESENT,
	UMEM_STATS_ATTR_REQUESTS,
	UMEM_STATS_ATTR_REQUESTS_PENDING,
	UMEM_STATS_ATTR_FAULTS,
	UMEM_STATS_ATTR_WAITING,
	UMEM_STATS_ATTR_WAIT_NS_TOTAL,
	UMEM_STATS_ATTR_WAIT_NS_MAX,
	UMEM_STATS_ATTR_INSTALLED,
	UMEM_STATS_ATTR_DISCARDED,
	UMEM_STATS_ATTR_ALLOC_FAILED,
	UMEM_STATS_ATTR_PAGES_PROTECTED,
	UMEM_STATS_ATTR_WP_FAULTS,
	UMEM_STATS_ATTR_MMAPS,
	__UMEM_STATS_ATTR_MAX,
	UMEM_STATS_ATTR_MAX = __UMEM_STATS_ATTR_MAX - 1
};

/* Inside UMEM_ATTR_WAIT_HIST. */
enum umem_hist_attr {
	UMEM_HIST_ATTR_UNSPEC,
	UMEM_HIST_ATTR_PAD,
	UMEM_HIST_ATTR_BUCKET,		/* u64, repeated */
	__UMEM_HIST_ATTR_MAX,
	UMEM_HIST_ATTR_MAX = __UMEM_HIST_ATTR_MAX - 1
};

/* UMEM_ATTR_EVENT values. */
enum umem_event {
	UMEM_EVENT_UNSPEC,
	UMEM_EVENT_CREATED,		/* region created */
	UMEM_EVENT_COMPLETE,		/* every page present */
	UMEM_EVENT_DETACHED,		/* server gone (or FAIL) with pages missing */
	UMEM_EVENT_DESTROYED,		/* last reference dropped */
	__UMEM_EVENT_MAX,
	UMEM_EVENT_MAX = __UMEM_EVENT_MAX - 1
};

#endif /* _UAPI_LINUX_UMEM_H */
