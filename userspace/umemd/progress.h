/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The progress line on stderr (a terminal, or --progress), rewritten
 * every 250 ms until the session stops: what the source has sent, what
 * the destination has received, or what --snapshot has saved.  A thread of its own that only
 * reads the counters it is given (atomics).
 */
#ifndef UMEMD_PROGRESS_H
#define UMEMD_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "session.h"

struct progress {
	struct session *ss;		/* the line stops when it stops */
	bool receiving;			/* the destination's line, else the source's */
	bool saving;			/* --snapshot's line: done is pages saved */
	uint64_t pages;
	uint32_t page_size;
	atomic_uint_fast64_t *done;	/* pages sent / received */
	atomic_uint_fast64_t *requests;
	atomic_uint_fast64_t *acked;	/* source: pages the last ACK counted */
	pthread_t th;
	bool on;
};

/* Start the line; without a thread, say so and go on without it. */
void progress_start(struct progress *p);
void progress_join(struct progress *p);
#endif
