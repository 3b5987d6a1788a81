// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --incoming: receive a guest's RAM into a libumem region.
 *
 * Numbered steps (who does what, in which process):
 *   1. umemd accepts (or opens) the main connection and reads HELLO.
 *   2. umemd creates the region, sized from HELLO, and opens the VMM
 *      socket; uffd backends wait here for the VMM to map the region and
 *      send its userfaultfd back (vmmsock.h).
 *   3. umemd sends HELLO_ACK with the accepted features; with
 *      PROTO_F_PREEMPT the second connection is opened next.
 *   4. ADVISE, (DISCARD), LISTEN: the fault thread starts forwarding
 *      requests on the return path; RUN is passed on to the VMM.
 *   5. Pages arrive on either channel and are installed; when END has
 *      arrived and every page is present, umemd sends DONE, tells the
 *      VMM, and exits 0.
 *   On any failure: FAIL to the VMM, ERROR to the source, then the region
 *   is closed so no faulting task waits forever (umem: SIGBUS; uffd: the
 *   range is unregistered and tasks resume).
 *
 * This file is the session, umemd_dest(): it couples the network as the
 * page provider (net_in_link.c, net_in.c) with the region as the page
 * sink (region_sink.c, vmm_link.c), runs the main stream (resuming it
 * after a pause with --recover, dest_recover.c), and ends: FAIL and
 * ERROR on a failure, the threads joined, the summary.  The files of the
 * destination are listed in dest.h.
 *
 * Threads:
 *   main      steps 1-3, then the main stream (net_in.c).
 *   preempt   (PROTO_F_PREEMPT) the preempt channel's reader (net_in.c).
 *   fault     from LISTEN, the region's requests -> REQ (region_sink.c).
 *   vmm       (--vmm-socket) accepts the VMM, waits for ATTACH (vmm_link.c).
 *   progress  (a terminal, or --progress) a line on stderr (progress.c).
 *   cancel    the --cancel-fd watch (session.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "dest.h"
#include "umemd.h"
#include "util.h"

/* session_fail() and session_stop() wake the wait for the VMM. */
static void dest_wake(void *arg)
{
	struct dest *d = arg;

	vmm_link_wake(&d->rs);
}

int umemd_dest(const struct umemd_opts *o, struct umemd_summary *sum)
{
	struct dest d;
	uint8_t *buf = malloc(PROTO_MAX_FRAME);
	uint64_t t0 = now_ns();
	int lfd = -1, ret;

	memset(&d, 0, sizeof(d));
	d.o = o;
	d.sum = sum;
	d.verbose = o->verbose;
	sum->role = "destination";
	sum->backend = o->backend;
	pthread_mutex_init(&d.slock, NULL);
	dest_provider_init(&d);
	rs_init(&d.rs, &d.ss, o, &d.prov);
	d.sink = &d.rs.sink;
	session_init(&d.ss, o->cancel_fd, dest_wake, &d);
	chan_init(&d.main, "main", d.ss.stop_fd);
	chan_init(&d.pre, "preempt", d.ss.stop_fd);
	chan_pair_sockopts(&d.main, &d.pre, o->preempt_priority, o->preempt_tos,
			   o->notsent_lowat);
	if (!buf || d.ss.stop_fd < 0) {
		session_fail(&d.ss, d.ss.stop_fd < 0 ? "eventfd: %s" : "%s",
			     strerror(d.ss.stop_fd < 0 ? errno : ENOMEM));
		goto out;
	}
	if (session_watch_cancel(&d.ss))
		goto out;
	if (o->listen) {
		lfd = net_listen(o->listen);
		if (lfd < 0) {
			session_fail(&d.ss, "listen on %s: %s", o->listen, strerror(-lfd));
			goto out;
		}
	}
	ret = dest_open_conn(&d, lfd);
	if (ret < 0) {
		session_fail(&d.ss, "%s %s: %s", lfd >= 0 ? "accept on" : "connect to",
			     lfd >= 0 ? o->listen : o->connect, strerror(-ret));
		goto out;
	}
	chan_attach(&d.main, ret);
	t0 = now_ns();
	if (dest_handshake(&d, lfd, buf))
		goto out;
	d.prog = (struct progress){ .ss = &d.ss, .receiving = true, .pages = d.pages,
				    .page_size = d.lay.page_size, .done = &d.rs.received,
				    .requests = &d.rs.requests };
	if (o->progress)
		progress_start(&d.prog);
	while (dest_main_loop(&d, buf) == -ECONNABORTED && !dest_resume(&d, lfd, buf))
		;
out:
	if (atomic_load(&d.ss.failed)) {
		vmm_fail(&d.rs, d.ss.err);
		send_error(&d, atomic_load(&d.ss.cancelled) ? PROTO_E_CANCEL : PROTO_E_LOCAL,
			   d.ss.err);
	}
	session_stop(&d.ss);
	session_join_cancel(&d.ss);
	if (d.main.fd >= 0)
		shutdown(d.main.fd, SHUT_RDWR);
	if (d.pre.fd >= 0)
		shutdown(d.pre.fd, SHUT_RDWR);
	if (d.pre_on)
		pthread_join(d.pre_th, NULL);
	progress_join(&d.prog);
	rs_join(&d.rs);
	sum->ok = atomic_load(&d.ss.finished) && !atomic_load(&d.ss.failed);
	if (!sum->ok && !d.ss.err[0])
		snprintf(d.ss.err, sizeof(d.ss.err), "migration did not complete");
	snprintf(sum->error, sizeof(sum->error), "%s", d.ss.err);
	sum->total_ns = now_ns() - t0;
	if (d.t_run && d.t_done > d.t_run)
		sum->postcopy_ns = d.t_done - d.t_run;
	sum->pages = d.pages;
	sum->pieces = atomic_load(&d.pieces);
	sum->pieces_dropped = atomic_load(&d.dropped);
	sum->interleaved = atomic_load(&d.interleaved);
	sum->resent = atomic_load(&d.resent);
	sum->resent_first = atomic_load(&d.resent_first);
	sum->resent_taken = atomic_load(&d.resent_taken);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < DEST_SLOTS; j++)
			free(d.slots[i][j].mem);
	sum->bytes_main = d.main.bytes_in;
	sum->bytes_preempt = d.pre.bytes_in;
	sum->sock_preempt_priority = d.pre.got.priority;
	sum->sock_preempt_tos = d.pre.got.tos;
	sum->sock_main_notsent_lowat = d.main.got.notsent_lowat;
	rs_summary(&d.rs, sum);
	rs_close(&d.rs);
	chan_close(&d.main);
	chan_close(&d.pre);
	if (lfd >= 0)
		close(lfd);
	session_destroy(&d.ss);
	devstate_free(&d.ds);
	free(buf);
	return sum->ok ? 0 : -1;
}
