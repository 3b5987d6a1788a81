/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The destination's region as a page sink (umemd --incoming today,
 * --restore next): a libumem region sized from the pages of a block
 * layout, handed to the VMM over --vmm-socket (vmm_link.c); pages
 * installed into it (rs_put(), the page_sink of pages.h); the state of
 * every page and how many are present; the fault thread that turns the
 * region's page requests into requests to a page provider (pages.h); the
 * latency of each requested page; the VMM told RUN, DONE or FAIL.
 *
 * Page maps (cf. QEMU's received/requested maps): pstate[] is
 * MISSING -> INSTALLING -> PRESENT.  rs_claim() (a CAS from MISSING)
 * claims an install, so that a second copy of a page is found before it
 * can overwrite anything (the network drops it, or fails); requested[] is
 * set once per page by the fault thread, which is the de-duplication of
 * requests.  A page queued for a batched install is QUEUED (MISSING ->
 * QUEUED -> PRESENT) until its batch goes in: another thread holding a
 * copy of it (a requested page sent again) may take it over
 * (rs_take_queued(): QUEUED -> INSTALLING) and install it at once rather
 * than wait for the batch; whichever install reaches the region first
 * wins (the other gets EEXIST) and the page is counted by its taker.
 *
 * Threads:
 *   fault  (rs_start_faults()) reads the region's requests; pages that
 *          are missing and not yet requested go to the provider.
 *   vmm    (--vmm-socket, vmm_link.c) accepts the VMM, hands it the
 *          region, waits for ATTACH.
 *   any    rs_claim(), rs_put(), rs_unclaim(), from whichever thread
 *          receives pages; rs_put_vec() from one thread at a time (its
 *          staging buffer).
 * Locks: llock guards lat and nlat; vmm.lock (with vmm.cond) the VMM
 * side, see vmm_link.c; the page maps and counters are atomics.
 */
#ifndef UMEMD_REGION_SINK_H
#define UMEMD_REGION_SINK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "libumem.h"
#include "pages.h"
#include "session.h"
#include "umemd.h"

enum { PG_MISSING, PG_INSTALLING, PG_PRESENT, PG_QUEUED };

/* The VMM on the other end of --vmm-socket (vmm_link.c). */
struct vmm_link {
	int lfd, fd;			/* listening socket, the VMM's connection */
	pthread_mutex_t lock;		/* fd, attached, run, run_sent */
	pthread_cond_t cond;		/* attached, or the session stops */
	bool attached;
	bool run;			/* RUN asked for: sent now or on ATTACH */
	bool run_sent;
	pthread_t th;
	bool on;
};

struct region_sink {
	struct page_sink sink;		/* put: rs_put() */
	struct session *ss;
	const struct umemd_opts *o;	/* --backend, --name, --vmm-socket */
	int verbose;			/* -v (libumem's log hook reads it) */
	struct page_provider *prov;	/* where the fault thread's requests go */
	uint64_t pages;
	uint32_t page_size;
	struct umem_region *region;
	atomic_uchar *pstate;
	atomic_uchar *requested;
	atomic_uint_fast64_t *req_time;	/* fault read (ns), 0: none */
	atomic_uint_fast64_t received;	/* pages PRESENT */
	atomic_uint_fast64_t pages_bg, pages_req, pages_zero, requests, faults, dup;
	atomic_uint_fast64_t install_calls;	/* calls into the region to install */
	uint8_t *stage;			/* rs_put_vec() without a vector: RS_STAGE_PAGES */
	int copy_fd;			/* --test-page-copy: every page installed, or -1 */
	atomic_bool copy_failed;	/* a write to it failed: the session fails */
	pthread_mutex_t llock;		/* lat, nlat */
	uint64_t *lat;			/* request latency (ns) per requested page */
	uint64_t nlat;
	pthread_t fault_th;
	bool fault_on;
	struct vmm_link vmm;
};

/* Before anything can fail: nothing allocated, no thread. */
void rs_init(struct region_sink *rs, struct session *ss, const struct umemd_opts *o,
	     struct page_provider *prov);
/*
 * The page maps, the region of @pages pages of @page_size bytes, and with
 * --vmm-socket the VMM thread; a backend that needs the VMM's
 * userfaultfd waits for it here.  0, or -errno with the session failed.
 */
int rs_open(struct region_sink *rs, uint64_t pages, uint32_t page_size);
/*
 * Claim @count missing pages for an install: 0, or -EEXIST with *@at the
 * first page that is not missing (pages before it stay claimed).
 */
int rs_claim(struct region_sink *rs, uint64_t page, uint32_t count, uint64_t *at);
/* Claim the missing pages from @page on, at most @count: how many (0: @page is not missing). */
uint32_t rs_claim_run(struct region_sink *rs, uint64_t page, uint32_t count);
/* Queue missing @page for rs_put_vec(): false when it is not missing. */
bool rs_claim_queued(struct region_sink *rs, uint64_t page);
/*
 * Take over queued @page (its batch has not counted it yet): then the
 * caller installs it with rs_put_taken().  False when it is not queued.
 */
bool rs_take_queued(struct region_sink *rs, uint64_t page);
/*
 * Install @n queued single pages (items[i].offset, .src: anywhere, no
 * alignment needed) with one call into the region: UMEM_COPY_VEC with
 * the umem backend; the others get one UFFDIO_COPY per run of contiguous
 * pages, through a staging buffer.  Pages taken over meanwhile are left
 * to their taker.  0 with *@stored the pages present and *@counted how
 * many of @n this call made present, or the first -errno.  One caller at
 * a time (the staging buffer).
 */
#define RS_STAGE_PAGES	64
int rs_put_vec(struct region_sink *rs, struct umem_copy_item *items, uint32_t n,
	       uint64_t *stored, uint32_t *counted);
/*
 * Install a page taken over with rs_take_queued() (@data, or NULL for
 * zeros): its batch may have put the same data in first (EEXIST), which
 * is success.  0 with *@stored as rs_put(), or -errno.
 */
int rs_put_taken(struct region_sink *rs, uint64_t page, const uint8_t *data,
		 uint64_t *stored);
/* The page_sink's put(): see pages.h.  Errors are libumem's. */
int rs_put(struct region_sink *rs, uint64_t page, uint32_t count,
	   const uint8_t *data, uint64_t *stored);
/* A claimed page will not be installed after all: missing again. */
void rs_unclaim(struct region_sink *rs, uint64_t page);
/*
 * Discard @count pages: the present ones are missing again, and a new
 * fault on them is a new request.  0, or a libumem error.
 */
int rs_discard(struct region_sink *rs, uint64_t page, uint32_t count);
/* Start the fault thread; -1 with the session failed if it cannot. */
int rs_start_faults(struct region_sink *rs);
/* Once the session stops: join the fault and VMM threads. */
void rs_join(struct region_sink *rs);
/* After rs_join(): the region's part of @sum (lat_ns passes to it). */
void rs_summary(struct region_sink *rs, struct umemd_summary *sum);
/* Close the region (which releases every faulting task), free the rest. */
void rs_close(struct region_sink *rs);

static inline bool rs_present(struct region_sink *rs, uint64_t page)
{
	return atomic_load(&rs->pstate[page]) == PG_PRESENT;
}

static inline bool rs_requested(struct region_sink *rs, uint64_t page)
{
	return atomic_load(&rs->requested[page]);
}

static inline uint64_t rs_received(struct region_sink *rs)
{
	return atomic_load(&rs->received);
}

/* vmm_link.c */
int vmm_link_open(struct region_sink *rs);
/* Tell the attached VMM RUN (now, or once it attaches), DONE or FAIL. */
void vmm_notify(struct region_sink *rs, uint16_t type, const char *text);
/* FAIL, then give the VMM a moment to read it before the region goes. */
void vmm_fail(struct region_sink *rs, const char *text);
/*
 * Wait until the VMM attached: 0, or -ECANCELED if the session stopped
 * or the provider gave up meanwhile.
 */
int vmm_wait_attached(struct region_sink *rs);
/*
 * Every page is in: hold the region until a VMM has taken it (attached on
 * --vmm-socket, or mapped the node by path), for --vmm-wait.  0: taken, or
 * nothing to wait for (--vmm-wait 0, a module that cannot tell);
 * -ETIMEDOUT: --vmm-wait passed without one; -ECANCELED: the session
 * stopped (SIGTERM) or the provider went away first.
 */
int vmm_hold(struct region_sink *rs, const char *before);
/* Wake vmm_wait_attached() (the session's wake hook). */
void vmm_link_wake(struct region_sink *rs);
void vmm_link_close(struct region_sink *rs);
#endif
