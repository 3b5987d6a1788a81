/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umemd --restore: a guest's RAM from a snapshot file (snapfile.h) into
 * a libumem region its VMM maps, lazily (RUN once the VMM has attached,
 * pages read on demand while the rest streams in) or --eager (every page
 * in before RUN).  Shared by the files that make it up (private to them):
 *   snap_in.c   the snapshot file as the region's page provider: the
 *               request queue, the thread that serves requested pages,
 *               the background stream (working set first, then every
 *               page in order), the working set recorded
 *   restore.c   the session: umemd_restore() opens the file, couples it
 *               with the region, RUN, DONE, the working set written back,
 *               the summary
 * and the modules it is made of: region_sink.c and vmm_link.c (the region
 * and its VMM), reqq.c, claims.c, devstate.c, session.c.
 *
 * Threads: main (restore.c); req and bg (snap_in.c); fault and vmm
 * (region_sink.c, vmm_link.c); cancel (session.c).
 * Locks: wlock guards the recorded working set; the request queue and the
 * region have their own; the counters are atomics; done_fd is an eventfd
 * written once, by the thread whose install made the region complete.
 */
#ifndef UMEMD_RESTORE_H
#define UMEMD_RESTORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "claims.h"
#include "pages.h"
#include "region_sink.h"
#include "reqq.h"
#include "session.h"
#include "snapfile.h"

struct snap_in {
	struct page_provider prov;	/* request(): si_request() */
	struct session *ss;
	struct page_sink *sink;		/* the region's put() */
	uint64_t sink_pages;		/* the sink is complete at this count */
	struct snap_reader *r;
	const char *path;		/* the file, for messages */
	struct snap_info info;
	uint32_t batch;			/* pages per read and install */
	bool prefetch;			/* the working set first (not --no-prefetch) */
	uint64_t throttle;		/* testing: bg sleeps 1 ms every N pages */
	struct reqq q;			/* requested pages, for the req thread */
	struct claims cl;		/* each page read and installed once */
	int done_fd;			/* eventfd: every page is in */
	/* --record-working-set: pages in the order first requested */
	bool record;
	pthread_mutex_t wlock;		/* wset, nwset */
	uint64_t *wset;
	uint64_t nwset;
	atomic_uint_fast64_t prefetched;	/* working-set pages installed by the stream */
	atomic_uint_fast64_t served;		/* requested pages read for a request */
	atomic_uint_fast64_t bytes_read;	/* page data read from the file */
	pthread_t req_th, bg_th;
	bool req_on, bg_on;
};

/* snap_in.c */
/* Before anything can fail: nothing allocated. */
void si_init(struct snap_in *si, struct session *ss, struct snap_reader *r,
	     const char *path);
/*
 * The queue, the claims, the buffers' size; the sink to fill.  0, or
 * -errno with the session failed.
 */
int si_open(struct snap_in *si, struct page_sink *sink, bool prefetch, bool record,
	    uint64_t throttle);
/* Start the req and bg threads: 0, or -1 with the session failed. */
int si_start(struct snap_in *si);
/* The session's wake hook: the req thread's wait ends for good. */
void si_wake(struct snap_in *si);
void si_join(struct snap_in *si);
void si_free(struct snap_in *si);
#endif
