/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umemd --outgoing: the source session, shared by the files that make it
 * up (private to them):
 *   source.c          the session: umemd_source() couples the RAM with
 *                     the destination, runs the phases, ends, summarises
 *   net_out_link.c    the connection: handshake, the return path (rp
 *                     thread), starting the rp and preempt threads
 *   net_out.c         pages out: the background stream and its pacing,
 *                     requested pages (preempt thread), --test-cut
 *   precopy.c         --pid / --stop-cmd: precopy rounds, DISCARD, stopping
 *                     the VMM, the switch (LISTEN, device state, RUN)
 *   dirty.c           dirty tracking of the running VMM (dirty.h)
 *   source_recover.c  --recover: pause on a broken link, reconnect, resume
 * and the modules it is made of: ram.c (the pages), vmm_proc.c (the VMM
 * process), claims.c (the sent map), reqq.c (the request queue),
 * session.c (failure, stop, cancel).
 *
 * Threads and locking: see source.c.  The request queue has its own lock
 * (reqq.h), ss.elock guards the error text; the sent map (claims.h) and
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
#include "claims.h"
#include "ram.h"
#include "reqq.h"
#include "session.h"
#include "umemd.h"
#include "vmm_proc.h"

#include <sys/uio.h>

/*
 * The background stream is written with one sendmsg() per OUTBUF_SIZE
 * bytes: frame headers are encoded into the out arena, page data is
 * referenced in place in the RAM mapping (no copy in umemd; the kernel's
 * copy into the socket is the only one), OUT_IOV entries at most.
 */
#define OUTBUF_SIZE	(256 * 1024)
#define OUT_IOV		160

/*
 * Entries of the sent_at table: 512 KiB, the last 256 MiB of a
 * sequential stream; a page pushed out of it (or never in it) counts as
 * far, and is sent again as without PROGRESS.
 */
#define SENT_AT_SLOTS	65536

struct source {
	const struct umemd_opts *o;
	struct umemd_summary *sum;
	struct session ss;		/* wake(): the request queue */
	struct ram ram;			/* the pages: --ram files */
	struct vmm_proc vmm;		/* --pid, --stop-cmd */
	uint64_t session;
	struct claims sent;		/* each page sent once */
	struct chan main, pre;
	bool preempt;
	bool zero_ok;
	bool resend;			/* PROTO_F_RESEND: in-flight requested pages again */
	struct reqq reqs;		/* requested pages: held while paused */
	atomic_uint_fast64_t hint;	/* bg-follow: next page + 1, 0 = none */
	atomic_bool done;		/* the destination said DONE */
	atomic_bool end_sent;		/* END is out: every page is on main */
	/* --recover (feature RECOVER): a broken link in postcopy pauses */
	bool recover;
	uint32_t version;
	atomic_bool running, paused;	/* RUN sent; link lost, reconnecting */
	uint64_t cuts;			/* --test-cut */
	bool precopy_phase;	/* a precopy round: SIGUSR1 ends it early */
	atomic_uint_fast64_t pages_bg, pages_req, pages_zero, requests, req_dup;
	atomic_uint_fast64_t acked;
	/* 2 MiB pages: the background page partly sent (page + 1, 0 = none),
	 * set while its PIECE frames go out; urgent once it was requested */
	atomic_uint_fast64_t bg_cur;
	atomic_bool bg_urgent;
	atomic_uint_fast64_t pieces, interrupts, req_partial;
	atomic_uint_fast64_t req_resent;	/* requested pages sent again on preempt */
	/*
	 * PROTO_F_PROGRESS (with RESEND, 4 KiB pages): where on the main
	 * connection each recently queued background page ends (sent_at:
	 * SENT_AT_SLOTS entries, page % SENT_AT_SLOTS, each one word made by
	 * sent_at_word()), and how far the destination said it had read
	 * main (dest_pos, from its PROGRESS frames); main_rate, the main
	 * stream's bytes per second (rate_t, rate_pos: the main thread's
	 * last sample).  A request for a page whose copy lies within
	 * --resend-gap of dest_pos at that rate is not sent again (req_near).
	 */
	bool progress;
	atomic_uint_fast64_t *sent_at;
	atomic_uint_fast64_t dest_pos, req_near, main_rate;
	uint64_t rate_t, rate_pos;
	/* background output (main thread only): headers (and, for --dirty
	 * hash rounds, copies of the pages hashed) in out[0, outlen); iov
	 * the frames in order, qbytes their length */
	uint8_t *out;
	/* --dirty hash: a hash of every page as sent (precopy rounds) */
	uint64_t *hash;
	size_t outlen, qbytes;
	struct iovec iov[OUT_IOV];
	int niov;
};

/* What a failed write to the destination most likely means. */
static inline const char *gone(int ret)
{
	return ret == -EPIPE || ret == -ECONNRESET ? " (destination died?)" : "";
}

struct dirty;

static inline bool src_huge(const struct source *s)
{
	return s->ram.lay.page_size != PROTO_PAGE_SIZE;
}

/* net_out.c */
/*
 * The background stream on the main connection (see net_out.c); each
 * precopy round is one run of it with s->precopy_phase set.
 */
int background(struct source *s);
void *src_preempt_thread(void *arg);

/* net_out_link.c */
/* Accept on @lfd, or connect (retrying refused connections for @wait_ms). */
int src_open_conn(struct source *s, int lfd, int wait_ms);
int src_handshake(struct source *s, int lfd);
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
