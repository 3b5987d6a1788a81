/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umemd --incoming: the destination session, shared by the files that
 * make it up (private to them):
 *   dest.c          the session: handshake, main stream, installing pages,
 *                   DISCARD, device state, the fault and preempt threads,
 *                   completion, umemd_dest()
 *   dest_vmm.c      the region and the VMM: creating the region, the VMM
 *                   socket thread, waiting for the VMM to attach, telling
 *                   it RUN / DONE / FAIL
 *   dest_recover.c  --recover: pause on a broken link, take the source
 *                   back, resume
 *
 * Locking (see the fields): slock guards state and end_seen, elock the
 * error text, llock the latency log, vlock (with vcond) the VMM side;
 * chan's wlock serialises the writers of a channel; the page maps and
 * counters are atomics.  ds, ds_total, ds_got belong to the main thread.
 */
#ifndef UMEMD_DEST_H
#define UMEMD_DEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "libumem.h"
#include "umemd.h"

enum { PG_MISSING, PG_INSTALLING, PG_PRESENT };

/*
 * A 2 MiB page being assembled from PIECE frames, in a page-aligned
 * buffer: each channel's reader owns its slots.  Two per channel: a
 * background page and the requested page that interrupted it (no
 * preempt: both on main).
 */
#define DEST_SLOTS	2
/* Offset of a slot's buffer in its allocation (dest.c: handle_piece()). */
#define SLOT_SKEW	(64 * 1024)
struct piece_slot {
	uint64_t page;
	uint32_t got;		/* bytes so far, in order */
	bool used;
	uint8_t *mem;		/* the allocation (free() this) */
	uint8_t *buf;		/* page_size bytes in mem, see dest.c */
};

struct dest {
	const struct umemd_opts *o;
	struct umemd_summary *sum;
	struct proto_layout lay;
	uint64_t pages;
	uint64_t session;
	struct umem_region *region;
	atomic_uchar *pstate;
	atomic_uchar *requested;
	atomic_uint_fast64_t *req_time;
	atomic_uint_fast64_t received;
	pthread_mutex_t slock;		/* state, end_seen */
	enum pc_state state;
	bool end_seen;
	atomic_bool cancelled;		/* the operator gave up */
	/* DEVICE_STATE pieces, main thread only */
	uint8_t *ds;
	uint64_t ds_total, ds_got;
	uint64_t t_run, t_done;		/* RUN received; every page present */
	struct chan main, pre;
	bool preempt;
	int stop_fd;
	pthread_mutex_t elock;
	char err[256];
	atomic_bool failed, finished, stopping;
	atomic_uint_fast64_t pages_bg, pages_req, pages_zero, requests, faults, dup;
	/* 2 MiB pages: [0] main, [1] preempt; pages partly received */
	struct piece_slot slots[2][DEST_SLOTS];
	atomic_uint_fast64_t partial, pieces, interleaved;
	atomic_uint_fast64_t dropped;	/* partly received pages dropped on a pause */
	pthread_mutex_t llock;
	uint64_t *lat;
	uint64_t nlat;
	/* VMM side */
	int vmm_lfd, vmm_fd;
	pthread_mutex_t vlock;
	pthread_cond_t vcond;
	bool attached, run_sent;
	/* threads */
	pthread_t fault_th, pre_th, vmm_th, prog_th;
	bool fault_on, pre_on, vmm_on, prog_on;
	int verbose;
	/* --recover */
	bool recover;
	uint32_t version;
	atomic_bool paused;
};

/* dest.c */
__attribute__((format(printf, 2, 3)))
void dest_fail(struct dest *d, const char *fmt, ...);
enum pc_state get_state(struct dest *d);
void send_error(struct dest *d, uint32_t code, const char *text);
void *dest_preempt_thread(void *arg);
/*
 * --recover: forget the pages partly received (missing again, not in the
 * received map, so the source sends them again whole).  Only while no
 * channel is read (dest_resume(), after joining the preempt thread).
 */
void dest_drop_partial(struct dest *d);

/* dest_vmm.c */
void vmm_notify(struct dest *d, uint16_t type, const char *text);
int wait_attached(struct dest *d);
int setup_region(struct dest *d);

/* dest_recover.c */
bool dest_pause(struct dest *d, const char *what, int ret);
int dest_resume(struct dest *d, int lfd, uint8_t *buf);
#endif
