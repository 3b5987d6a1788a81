/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umem tracepoints (TRACE_SYSTEM umem): the life of a missing page, from
 * the fault that finds it missing to the wake-up of the task that waited,
 * plus discards and the daemon going away.  Every event carries the
 * region id (its node's minor, as in "umemctl list") and, where there is
 * one, the page offset in pages.  Defined in trace.c.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM umem

#if !defined(_UMEM_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _UMEM_TRACE_H

#include <linux/tracepoint.h>
#include <linux/types.h>

/* A fault found its page missing; the task will queue or wait. */
TRACE_EVENT(umem_fault_start,
	    TP_PROTO(int id, unsigned long pgoff, bool write),
	    TP_ARGS(id, pgoff, write),
	    TP_STRUCT__entry(__field(int, id)
			     __field(unsigned long, pgoff)
			     __field(bool, write)),
	    TP_fast_assign(__entry->id = id;
			   __entry->pgoff = pgoff;
			   __entry->write = write;),
	    TP_printk("region=%d pgoff=%lu write=%d",
		      __entry->id, __entry->pgoff, __entry->write)
);

/* A write found its page write-protected; the task will queue or wait. */
TRACE_EVENT(umem_wp_fault,
	    TP_PROTO(int id, unsigned long pgoff),
	    TP_ARGS(id, pgoff),
	    TP_STRUCT__entry(__field(int, id)
			     __field(unsigned long, pgoff)),
	    TP_fast_assign(__entry->id = id;
			   __entry->pgoff = pgoff;),
	    TP_printk("region=%d pgoff=%lu", __entry->id, __entry->pgoff)
);

/* A request for the page was queued for the daemon. */
TRACE_EVENT(umem_request_queued,
	    TP_PROTO(int id, unsigned long pgoff, unsigned long npending),
	    TP_ARGS(id, pgoff, npending),
	    TP_STRUCT__entry(__field(int, id)
			     __field(unsigned long, pgoff)
			     __field(unsigned long, npending)),
	    TP_fast_assign(__entry->id = id;
			   __entry->pgoff = pgoff;
			   __entry->npending = npending;),
	    TP_printk("region=%d pgoff=%lu pending=%lu",
		      __entry->id, __entry->pgoff, __entry->npending)
);

/* An install ioctl made the page present. */
TRACE_EVENT(umem_page_installed,
	    TP_PROTO(int id, unsigned long pgoff, unsigned long npresent),
	    TP_ARGS(id, pgoff, npresent),
	    TP_STRUCT__entry(__field(int, id)
			     __field(unsigned long, pgoff)
			     __field(unsigned long, npresent)),
	    TP_fast_assign(__entry->id = id;
			   __entry->pgoff = pgoff;
			   __entry->npresent = npresent;),
	    TP_printk("region=%d pgoff=%lu present=%lu",
		      __entry->id, __entry->pgoff, __entry->npresent)
);

/* A task that waited for the page runs again; present=0: SIGBUS/killed. */
TRACE_EVENT(umem_task_woken,
	    TP_PROTO(int id, unsigned long pgoff, u64 wait_ns, bool present),
	    TP_ARGS(id, pgoff, wait_ns, present),
	    TP_STRUCT__entry(__field(int, id)
			     __field(unsigned long, pgoff)
			     __field(u64, wait_ns)
			     __field(bool, present)),
	    TP_fast_assign(__entry->id = id;
			   __entry->pgoff = pgoff;
			   __entry->wait_ns = wait_ns;
			   __entry->present = present;),
	    TP_printk("region=%d pgoff=%lu wait_ns=%llu present=%d",
		      __entry->id, __entry->pgoff, __entry->wait_ns, __entry->present)
);

/* UMEM_DISCARD of [pgoff, pgoff + npages); discarded were present. */
TRACE_EVENT(umem_discard,
	    TP_PROTO(int id, unsigned long pgoff, unsigned long npages,
		     unsigned long discarded),
	    TP_ARGS(id, pgoff, npages, discarded),
	    TP_STRUCT__entry(__field(int, id)
			     __field(unsigned long, pgoff)
			     __field(unsigned long, npages)
			     __field(unsigned long, discarded)),
	    TP_fast_assign(__entry->id = id;
			   __entry->pgoff = pgoff;
			   __entry->npages = npages;
			   __entry->discarded = discarded;),
	    TP_printk("region=%d pgoff=%lu npages=%lu discarded=%lu",
		      __entry->id, __entry->pgoff, __entry->npages, __entry->discarded)
);

/* The server fd was closed, or UMEM_CMD_FAIL failed the region. */
TRACE_EVENT(umem_server_detached,
	    TP_PROTO(int id, unsigned long missing, int waiting),
	    TP_ARGS(id, missing, waiting),
	    TP_STRUCT__entry(__field(int, id)
			     __field(unsigned long, missing)
			     __field(int, waiting)),
	    TP_fast_assign(__entry->id = id;
			   __entry->missing = missing;
			   __entry->waiting = waiting;),
	    TP_printk("region=%d missing=%lu waiting=%d",
		      __entry->id, __entry->missing, __entry->waiting)
);
#endif /* _UMEM_TRACE_H */

/* This part must be outside the include guard. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE umem_trace
#include <trace/define_trace.h>
