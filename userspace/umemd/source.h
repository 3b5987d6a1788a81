/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umemd --outgoing: the source session, shared by the files that make it
 * up (private to them):
 *   source.c          the session: connections, handshake, background
 *                     stream, request queue, rp and preempt threads,
 *                     umemd_source()
 *   precopy.c         --pid / --stop-cmd: precopy rounds, DISCARD, stopping
 *                     the VMM, the switch (LISTEN, device state, RUN)
 *   dirty.c           dirty tracking of the running VMM (dirty.h)
 *   source_recover.c  --recover: pause on a broken link, reconnect, resume
 *
 * Threads and locking: see source.c.  qlock guards the request queue (and
 * is the lock qcond waits with), elock the error text; sent[], nsent and
 * the counters are atomics; out, outlen, hash and precopy_phase belong to
 * the main thread.
 */
#ifndef UMEMD_SOURCE_H
#define UMEMD_SOURCE_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "umemd.h"

#define OUTBUF_SIZE	(256 * 1024)

struct source {
	const struct umemd_opts *o;
	struct umemd_summary *sum;
	struct proto_layout lay;
	const uint8_t *blk[PROTO_MAX_BLOCKS];
	uint64_t pages;
	uint64_t session;
	atomic_uchar *sent;
	atomic_uint_fast64_t nsent;
	struct chan main, pre;
	bool preempt;
	bool zero_ok;
	int stop_fd;
	/* request queue (ring of page numbers) */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	uint64_t *q;
	size_t qhead, qlen, qcap;
	atomic_uint_fast64_t hint;	/* bg-follow: next page + 1, 0 = none */
	atomic_bool done, failed, stopping;
	/* --recover (feature RECOVER): a broken link in postcopy pauses */
	bool recover;
	uint32_t version;
	atomic_bool running, paused;	/* RUN sent; link lost, reconnecting */
	atomic_bool cancelled;		/* the operator gave up */
	uint64_t cuts;			/* --test-cut */
	bool precopy_phase;	/* a precopy round: SIGUSR1 ends it early */
	pthread_mutex_t elock;
	char err[256];
	atomic_uint_fast64_t pages_bg, pages_req, pages_zero, requests, req_dup;
	atomic_uint_fast64_t acked;
	/* 2 MiB pages: the background page partly sent (page + 1, 0 = none),
	 * set while its PIECE frames go out; urgent once it was requested */
	atomic_uint_fast64_t bg_cur;
	atomic_bool bg_urgent;
	atomic_uint_fast64_t pieces, interrupts, req_partial;
	/* background output buffer (main thread only) */
	uint8_t *out;
	/* --dirty hash: a hash of every page as sent (precopy rounds) */
	uint64_t *hash;
	size_t outlen;
};

/* What a failed write to the destination most likely means. */
static inline const char *gone(int ret)
{
	return ret == -EPIPE || ret == -ECONNRESET ? " (destination died?)" : "";
}

static inline const uint8_t *page_data(const struct source *s, uint64_t page)
{
	uint32_t b = 0;
	uint64_t off = 0;

	proto_page_to_block(&s->lay, page, &b, &off);
	return s->blk[b] + off;
}

struct dirty;

/* source.c */
__attribute__((format(printf, 2, 3)))
void src_fail(struct source *s, const char *fmt, ...);
void queue_push(struct source *s, uint64_t page, uint32_t count);
/*
 * The background stream on the main connection (see source.c); each
 * precopy round is one run of it with s->precopy_phase set.
 */
int background(struct source *s);
void *src_rp_thread(void *arg);
void *src_preempt_thread(void *arg);
int src_start_threads(struct source *s, pthread_t *rp, bool *rp_started,
		      pthread_t *pre, bool *pre_started);

/* precopy.c */
int send_listen_run(struct source *s, const uint8_t *pre, size_t prelen);
int precopy_and_switch(struct source *s, struct dirty *t);

/* source_recover.c */
bool src_pause(struct source *s, const char *what, int ret);
int src_resume(struct source *s, int lfd, pthread_t *rp, bool *rp_started,
	       pthread_t *pre, bool *pre_started);
#endif
