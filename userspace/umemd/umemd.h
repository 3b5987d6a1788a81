/* SPDX-License-Identifier: GPL-2.0 */
/*
 * umemd: the options, the summary and the entry point of each role.
 *
 * A role is a session that couples where pages come from with where
 * they go; each side is a module that knows nothing of the other, and
 * the two meet at pages.h (a page_sink, a page_provider).
 *
 *   role          pages come from            pages go to
 *   --outgoing    the RAM files (ram.c)      the network (net_out*.c)
 *   --incoming    the network (net_in*.c)    the region (region_sink.c)
 *   --restore     a snapshot file (snap_in.c) the region (region_sink.c)
 *   --snapshot    the VMM's RAM (wp_ram.c)   a snapshot file (snap_out.c)
 *
 * The files, one concern each (each says its threads and locks at the top):
 *
 *   main.c            command line, signals, the summary printed, exit
 *   session.[ch]      what every session shares: the first failure, the
 *                     stop eventfd, the operator's cancel (--cancel-fd)
 *   pages.h           the interface: page_sink.put(), page_provider.request()
 *   reqq.[ch]         the queue of requested pages, for whoever serves them
 *   claims.[ch]       which pages a stream has taken (each page once), the
 *                     next page nobody took
 *   progress.[ch]     the progress line on stderr
 *   summary.c         the end-of-run summary, text or JSON
 *   devstate.[ch]     the VMM's device state: read, assembled, written out
 *   proto.[ch]        the wire format: frames, encoders, validating decoder
 *   state.c           the destination's postcopy state machine
 *   chan.[ch]         framed TCP transport, its error classes, and
 *                     the socket options of each channel
 *
 *   the source side (--outgoing; source.h lists its private files):
 *   ram.[ch]          the RAM files mapped, block layout, page data, zeros
 *   vmm_proc.[ch]     the VMM process: freeze, stop (--stop-cmd), resume
 *   dirty.[ch]        dirty tracking of the running VMM (precopy)
 *   source.c          the session, umemd_source()
 *   net_out_link.c    the connection: handshake, return path thread
 *   net_out.c         pages out: background stream, pacing, requested
 *                     pages (preempt thread), --test-cut
 *   precopy.c         precopy rounds, DISCARD, the switch (LISTEN, RUN)
 *   source_recover.c  --recover: pause, reconnect, resume
 *
 *   the snapshot (--snapshot):
 *   wp_ram.[ch]       the VMM's RAM under write protection: a umem node
 *                     (attach by node) or the memfd and userfaultfd the
 *                     VMM offers on --vmm-socket; requests; DONE / FAIL
 *   snap_out.[ch]     the snapshot file as a page sink (snapfile.h)
 *   snapshot.c        the session, umemd_snapshot(): stop, protect,
 *                     device state, cont; request thread and background
 *                     scan; finish or abort (vmm_proc.[ch]: stop, cont)
 *
 *   the destination side (--incoming; dest.h lists its private files):
 *   region_sink.[ch]  the region as a page sink: page states, installs,
 *                     the fault thread (requests to a provider), latency
 *   vmm_link.c        the region's VMM over --vmm-socket: attach, RUN,
 *                     DONE, FAIL
 *   dest.c            the session, umemd_dest()
 *   net_in_link.c     the connection: handshake, ERROR, the network as
 *                     the region's page provider (REQ frames)
 *   net_in.c          pages in: main stream, preempt reader, PAGE, ZERO,
 *                     PIECE, DISCARD, device state, ACK, DONE
 *   dest_recover.c    --recover: pause, take the source back, resume
 *
 *   the restore side (--restore; restore.h lists its private files):
 *   region_sink.[ch], vmm_link.c  the region and its VMM, as above
 *   snap_in.c         the snapshot file as the region's page provider:
 *                     requested pages first, the working set, then every
 *                     page in order; the working set recorded
 *   restore.c         the session, umemd_restore(): lazy or --eager, RUN,
 *                     DONE, the working set written back
 */
#ifndef UMEMD_H
#define UMEMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define UMEMD_MAX_RAM_FILES	PROTO_MAX_BLOCKS
#define UMEMD_MAX_ROUNDS	64

struct umemd_opts {
	bool outgoing, incoming;
	const char *listen, *connect;
	int connect_wait_ms;
	int link_timeout_ms;		/* dead link reported after this (0: kernel) */
	/* both sides, chan_sockopts (-1: the kernel's default) */
	int preempt_priority;		/* SO_PRIORITY of the preempt socket */
	int preempt_tos;		/* IP_TOS / IPV6_TCLASS of the preempt socket */
	int notsent_lowat;		/* TCP_NOTSENT_LOWAT of the main socket */
	/* source */
	const char *ram[UMEMD_MAX_RAM_FILES];
	int nram;
	bool bg_follow;
	bool resend;		/* source: RESEND when the destination offers it */
	uint32_t resend_gap_ms;	/* source: RESEND only if main's copy is
				 * further than this from the destination's
				 * reader (PROGRESS); 0: always */
	uint64_t max_bw_bytes;		/* background cap, bytes/s (0: none) */
	int pid;			/* running VMM: precopy with dirty tracking */
	uint32_t postcopy_after;	/* switch after N precopy rounds (0: auto) */
	uint32_t max_rounds;		/* auto mode: give up converging after this */
	const char *stop_cmd;		/* hook that stops the VMM (default SIGSTOP) */
	const char *dirty;		/* auto, soft-dirty, hash */
	const char *device_state;	/* opaque blob sent between LISTEN and RUN */
	bool recover;			/* v2: pause and reconnect on a broken link */
	int recover_wait_ms;		/* give up after this long paused */
	uint64_t test_cut;		/* testing: cut the link every N postcopy pages */
	uint32_t test_preempt_delay_ms;	/* testing: each preempt page waits this */
	uint32_t test_batch_delay_ms;	/* testing: each main-stream batch waits this */
	const char *test_page_copy;	/* testing: every page installed, into this file */
	uint32_t page_size;		/* --page-size: 4096 or 2 MiB */
	/* destination */
	const char *backend;
	const char *name;
	const char *vmm_socket;
	int vmm_wait_ms;		/* --vmm-wait: -1 forever, 0 none */
	bool vmm_wait_set;
	bool preempt;
	bool json;
	const char *device_state_out;	/* destination: where the blob goes */
	const char *latency_log;	/* destination: one request latency (ns) per line */
	bool progress;		/* stderr is a terminal */
	int verbose;
	int cancel_fd;			/* eventfd: readable once the operator gave up */
	/* --snapshot */
	const char *snapshot;		/* the snapshot file to write */
	const char *cont_cmd;		/* hook that lets the VMM run again */
	/* testing hooks */
	uint64_t throttle_pages;	/* source, snapshot: sleep 1 ms every N bg pages */
	uint32_t proto_max;		/* speak at most this version (a v2 peer) */
	/* --restore FILE (restore.c) */
	const char *restore;		/* the snapshot file */
	bool eager;			/* every page in before RUN */
	bool no_prefetch;		/* no working set first */
	bool record_ws;			/* --record-working-set */
};

/* Summary of one run (both roles). */
struct umemd_summary {
	const char *role;
	const char *backend;
	bool ok;
	char error[256];
	uint64_t total_ns;
	uint64_t pages, pages_bg, pages_req, pages_zero;
	uint64_t requests, requests_dup;
	uint64_t bytes_main, bytes_preempt;
	/* what getsockopt() read back (-1: unknown): preempt socket's
	 * SO_PRIORITY and TOS byte, main socket's TCP_NOTSENT_LOWAT */
	int sock_preempt_priority, sock_preempt_tos, sock_main_notsent_lowat;
	bool preempt;
	uint32_t version;		/* negotiated protocol version */
	uint32_t page_size;
	/* 2 MiB pages (PIECE frames) */
	uint64_t pieces;		/* PIECE frames sent / received */
	uint64_t interrupts;		/* source: requested pages sent while a
					 * background huge page was partly sent */
	uint64_t req_partial;		/* source: requests for the page being sent */
	uint64_t interleaved;		/* destination: pages completed while
					 * another was partly received */
	uint64_t pieces_dropped;	/* destination, --recover: partly
					 * received pages dropped on a pause */
	uint64_t resent;		/* source: requested pages sent again on the
					 * preempt channel (PROTO_F_RESEND);
					 * destination: second copies dropped */
	uint64_t resend_near;		/* source: requested pages not sent again,
					 * their copy on main being near
					 * (PROTO_F_PROGRESS, --resend-gap) */
	uint64_t resent_first;		/* destination: of those, the copy sent
					 * again came first (main's was dropped) */
	uint64_t resent_taken;		/* destination: of those, main's copy was
					 * queued for a batch, the one sent again
					 * went in first */
	uint64_t install_calls;		/* destination: page installs (calls into
					 * the region: one per run or batch) */
	uint64_t device_state_bytes;
	uint64_t postcopy_ns;		/* destination: RUN -> every page present */
	/* source, precopy (--pid) */
	bool precopy;
	const char *dirty_method;
	const char *switch_reason;
	uint32_t rounds;
	uint64_t round_pages[UMEMD_MAX_ROUNDS];
	uint64_t pages_discarded;
	uint64_t precopy_ns, downtime_ns, freeze_max_ns;
	/* both roles, --recover */
	uint32_t resumes;
	uint64_t paused_ns;
	/* destination only */
	uint64_t *lat_ns;		/* one per requested page installed */
	uint64_t nlat;
	uint64_t blocked_ns, blocked_max_ns;
	bool blocked_from_kernel;
	/* --snapshot (also pages, pages_bg, pages_req, pages_zero, requests,
	 * blocked_ns, blocked_max_ns: every request, fault (umem) or request
	 * read (uffd) -> unprotect of its page, by whichever thread) */
	uint64_t stop_ns;		/* the VMM stopped: stop .. cont */
	uint64_t requests_bg;		/* requests released by another save's unprotect */
	uint64_t requests_lost;		/* requests whose unprotect was never seen */
	uint64_t bytes_written;		/* page data and device state */
	/* --restore */
	bool eager;
	uint64_t run_ns;		/* start -> RUN sent */
	uint64_t pages_prefetched;	/* working-set pages streamed first */
	uint64_t ws_len;		/* the file's working set (pages) */
	bool ws_recording;		/* --record-working-set, and it was written */
	uint64_t ws_recorded;		/* pages recorded */
};

int umemd_source(const struct umemd_opts *o, struct umemd_summary *s);
int umemd_dest(const struct umemd_opts *o, struct umemd_summary *s);
int umemd_snapshot(const struct umemd_opts *o, struct umemd_summary *s);
int umemd_restore(const struct umemd_opts *o, struct umemd_summary *s);
/* Set by SIGUSR1 (main.c): switch a precopy migration to postcopy now. */
extern volatile int umemd_switch_requested;
/* 0 if soft-dirty tracking works on this kernel, else -errno + @why. */
int umemd_probe_soft_dirty(char *why, size_t len);
void summary_print(const struct umemd_summary *s, bool json);
#endif
