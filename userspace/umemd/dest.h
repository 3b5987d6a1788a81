/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umemd --incoming: the destination session, shared by the files that
 * make it up (private to them):
 *   dest.c          the session: umemd_dest() couples the network (the
 *                   page provider) with the region (the page sink), runs
 *                   the main stream, ends, summarises
 *   net_in_link.c   the connection: handshake, ERROR, the network as the
 *                   region's page provider (REQ frames)
 *   net_in.c        pages in: the main stream and its state machine, the
 *                   preempt reader, PAGE/ZERO/PIECE installs, DISCARD,
 *                   device state, ACK, completion (DONE)
 *   dest_recover.c  --recover: pause on a broken link, take the source
 *                   back, resume
 * and the modules it is made of: region_sink.c and vmm_link.c (the
 * region and its VMM), devstate.c, progress.c, session.c.
 *
 * Locking (see the fields): slock guards state and end_seen, ss.elock the
 * error text; the region sink has its own (region_sink.h); chan's wlock
 * serialises the writers of a channel; the counters are atomics.  ds,
 * t_run and the main PIECE slots belong to the main thread.
 */
#ifndef UMEMD_DEST_H
#define UMEMD_DEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "devstate.h"
#include "libumem.h"
#include "pages.h"
#include "progress.h"
#include "region_sink.h"
#include "session.h"
#include "umemd.h"

/*
 * A 2 MiB page being assembled from PIECE frames, in a page-aligned
 * buffer: each channel's reader owns its slots.  Two per channel: a
 * background page and the requested page that interrupted it (no
 * preempt: both on main).
 */
#define DEST_SLOTS	2
/* Offset of a slot's buffer in its allocation (net_in.c: handle_piece()). */
#define SLOT_SKEW	(64 * 1024)
/* PAGE frames of the main stream installed with one call (net_in.c). */
#define DEST_BATCH	64
struct piece_slot {
	uint64_t page;
	uint32_t got;		/* bytes so far, in order */
	bool used;
	uint8_t *mem;		/* the allocation (free() this) */
	uint8_t *buf;		/* page_size bytes in mem, see net_in.c */
};

struct dest {
	const struct umemd_opts *o;
	struct umemd_summary *sum;
	struct session ss;		/* wake(): the wait for the VMM */
	struct region_sink rs;		/* the region: page states, VMM */
	struct page_sink *sink;		/* &rs.sink: where pages are stored */
	struct page_provider prov;	/* the network, for rs (net_in_link.c) */
	struct proto_layout lay;
	uint64_t pages;
	uint64_t session;
	pthread_mutex_t slock;		/* state, end_seen, complete */
	enum pc_state state;
	bool end_seen;
	bool complete;			/* every page here: DONE is ours to send */
	struct devstate_in ds;		/* DEVICE_STATE pieces, main thread only */
	uint64_t t_run, t_done;		/* RUN received; every page present */
	struct chan main, pre;
	bool preempt;
	/* 2 MiB pages: [0] main, [1] preempt; pages partly received */
	struct piece_slot slots[2][DEST_SLOTS];
	atomic_uint_fast64_t partial, pieces, interleaved;
	atomic_uint_fast64_t dropped;	/* partly received pages dropped on a pause */
	bool resend;			/* PROTO_F_RESEND: drop second copies of requested pages */
	atomic_uint_fast64_t resent;	/* second copies dropped */
	atomic_uint_fast64_t resent_first;	/* ... on main: the preempt copy won */
	atomic_uint_fast64_t resent_taken;	/* ... queued in main's batch: taken over */
	/* PROTO_F_PROGRESS: a PROGRESS frame goes before every REQ write,
	 * with main_pos, the main connection's bytes framed so far (the
	 * main thread stores it after each frame) */
	bool progress;
	atomic_uint_fast64_t main_pos;
	/* main thread: PAGE frames in main's receive buffer, to install (net_in.c) */
	struct umem_copy_item batch[DEST_BATCH];
	uint32_t nbatch;
	pthread_t pre_th;
	bool pre_on;
	struct progress prog;
	int verbose;
	/* --recover */
	bool recover;
	uint32_t version;
	atomic_bool paused;
};

/* net_in.c */
enum pc_state get_state(struct dest *d);
int dest_main_loop(struct dest *d, uint8_t *buf);
void *dest_preempt_thread(void *arg);
/* END seen and every page present: DONE to the source and the VMM. */
void dest_check_complete(struct dest *d);
/*
 * --recover: forget the pages partly received (missing again, not in the
 * received map, so the source sends them again whole).  Only while no
 * channel is read (dest_resume(), after joining the preempt thread).
 */
void dest_drop_partial(struct dest *d);

/* net_in_link.c */
void dest_provider_init(struct dest *d);
int dest_open_conn(struct dest *d, int lfd);
int dest_handshake(struct dest *d, int lfd, uint8_t *buf);
void send_error(struct dest *d, uint32_t code, const char *text);

/* dest_recover.c */
bool dest_pause(struct dest *d, const char *what, int ret);
int dest_resume(struct dest *d, int lfd, uint8_t *buf);
#endif
