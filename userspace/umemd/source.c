// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --outgoing: serve a guest's RAM from files.  With --pid, precopy
 * rounds while the VMM runs (soft-dirty tracking), then the switch to
 * postcopy (see precopy_and_switch()).  With --recover (feature RECOVER)
 * a broken connection in postcopy pauses; src_resume() reconnects.
 *
 * This file is the session, umemd_source(): it couples the RAM (ram.c)
 * with the destination over the network (net_out_link.c, net_out.c),
 * runs the phases in order, waits for DONE, and ends: the ERROR that
 * says why, the threads joined, the summary.  The files of the source
 * are listed in source.h.
 *
 * Threads:
 *   main      handshake, ADVISE/LISTEN/RUN (or precopy rounds and the
 *             switch), then the background stream, END, wait for DONE.
 *   rp        the return path: reads REQ/ACK/DONE/ERROR from the
 *             destination, queues requested pages (net_out_link.c).
 *   preempt   (with PROTO_F_PREEMPT) sends queued requested pages on the
 *             second connection (net_out.c).  Without it, main drains
 *             the queue between background pages.
 *   progress  (a terminal, or --progress) a line on stderr (progress.c).
 *   cancel    the --cancel-fd watch (session.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "dirty.h"
#include "progress.h"
#include "source.h"
#include "umemd.h"
#include "util.h"

/* session_fail() and session_stop() end the waits on the request queue. */
static void src_wake(void *arg)
{
	struct source *s = arg;

	reqq_close(&s->reqs);
}

int umemd_source(const struct umemd_opts *o, struct umemd_summary *sum)
{
	struct source s;
	struct dirty dt = { .pagemap_fd = -1 };
	struct progress prog;
	pthread_t rp, pre;
	bool rp_started = false, pre_started = false;
	uint64_t t0 = now_ns();
	int lfd = -1, ret, qerr;
	char msg[sizeof(s.ss.err)];

	memset(&s, 0, sizeof(s));
	s.o = o;
	s.sum = sum;
	s.vmm.pid = o->pid;
	s.vmm.stop_cmd = o->stop_cmd;
	sum->role = "source";
	qerr = reqq_init(&s.reqs, 65536);
	session_init(&s.ss, o->cancel_fd, src_wake, &s);
	chan_init(&s.main, "main", s.ss.stop_fd);
	chan_init(&s.pre, "preempt", s.ss.stop_fd);
	chan_pair_sockopts(&s.main, &s.pre, o->preempt_priority, o->preempt_tos,
			   o->notsent_lowat);
	s.out = malloc(OUTBUF_SIZE);
	if (getrandom(&s.session, sizeof(s.session), 0) != sizeof(s.session))
		s.session = t0;
	if (s.ss.stop_fd < 0 || !s.out) {
		session_fail(&s.ss, s.ss.stop_fd < 0 ? "eventfd: %s" : "%s",
			     strerror(s.ss.stop_fd < 0 ? errno : ENOMEM));
		goto out;
	}
	if (session_watch_cancel(&s.ss))
		goto out;
	ret = ram_open(&s.ram, o->ram, o->nram, o->page_size, msg, sizeof(msg));
	if (ret) {
		session_fail(&s.ss, "%s", msg);
		goto out;
	}
	if (o->pid && precopy_setup(&s, &dt))
		goto out;
	if (claims_init(&s.sent, s.ram.pages) || qerr) {
		session_fail(&s.ss, "out of memory");
		goto out;
	}
	if (o->listen) {
		lfd = net_listen(o->listen);
		if (lfd < 0) {
			session_fail(&s.ss, "listen on %s: %s", o->listen, strerror(-lfd));
			goto out;
		}
	}
	ret = src_open_conn(&s, lfd, o->connect_wait_ms);
	if (ret < 0) {
		session_fail(&s.ss, "%s %s: %s", lfd >= 0 ? "accept on" : "connect to",
			     lfd >= 0 ? o->listen : o->connect, strerror(-ret));
		goto out;
	}
	chan_attach(&s.main, ret);
	t0 = now_ns();
	if (src_handshake(&s, lfd))
		goto out;
	if (src_start_threads(&s, &rp, &rp_started, &pre, &pre_started))
		goto out;
	prog = (struct progress){ .ss = &s.ss, .pages = s.ram.pages, .done = &s.sent.n,
				  .requests = &s.requests, .acked = &s.acked };
	if (o->progress)
		progress_start(&prog);
	ret = 0;
	if ((o->pid || o->stop_cmd) && precopy_and_switch(&s, &dt))
		ret = -1;	/* reason recorded */
	while (!ret) {
		ret = background(&s);
		if (atomic_load(&s.ss.failed)) {
			/* reason already recorded */
		} else if (ret) {
			if (!src_pause(&s, "main channel", ret))
				session_fail(&s.ss, "main channel: %s%s", chan_strerror(ret), gone(ret));
		} else {
			uint8_t end[PROTO_HDR_LEN];

			ret = chan_write(&s.main, end, proto_enc_empty(end, MSG_END), NULL, 0);
			if (!ret)
				atomic_store(&s.end_sent, true);
			if (ret && !src_pause(&s, "sending END", ret))
				session_fail(&s.ss, "sending END: %s%s", chan_strerror(ret), gone(ret));
		}
		/* Wait for DONE (rp thread exits), a failure or a pause. */
		if (rp_started)
			pthread_join(rp, NULL);
		rp_started = false;
		ret = -1;
		if (atomic_load(&s.paused) && !atomic_load(&s.ss.failed) && !atomic_load(&s.done))
			ret = src_resume(&s, lfd, &rp, &rp_started, &pre, &pre_started);
	}
out:
	atomic_store(&s.ss.stopping, true);
	if (atomic_load(&s.ss.failed) || !atomic_load(&s.done)) {
		if (!atomic_load(&s.ss.failed))
			session_fail(&s.ss, "return path closed before DONE");
		if (s.main.fd >= 0) {
			uint8_t e[PROTO_HDR_LEN + 8 + PROTO_MAX_TEXT];

			/* Best effort: tell the destination why we stop. */
			shutdown(s.main.fd, SHUT_RD);
			if (!strstr(s.ss.err, "destination"))
				chan_write(&s.main, e,
					   proto_enc_error(e, atomic_load(&s.ss.cancelled) ?
							   PROTO_E_CANCEL : PROTO_E_LOCAL, s.ss.err),
					   NULL, 0);
			shutdown(s.main.fd, SHUT_RDWR);
		}
		if (s.pre.fd >= 0)
			shutdown(s.pre.fd, SHUT_RDWR);
	}
	session_stop(&s.ss);
	if (rp_started)
		pthread_join(rp, NULL);
	if (pre_started)
		pthread_join(pre, NULL);
	progress_join(&prog);
	session_join_cancel(&s.ss);
	sum->ok = !atomic_load(&s.ss.failed) && atomic_load(&s.done);
	snprintf(sum->error, sizeof(sum->error), "%s", s.ss.err);
	sum->total_ns = now_ns() - t0;
	sum->pages = s.ram.pages;
	sum->pages_bg = atomic_load(&s.pages_bg);
	sum->pages_req = atomic_load(&s.pages_req);
	sum->pages_zero = atomic_load(&s.pages_zero);
	sum->requests = atomic_load(&s.requests);
	sum->requests_dup = atomic_load(&s.req_dup);
	sum->bytes_main = s.main.bytes_out;
	sum->bytes_preempt = s.pre.bytes_out;
	sum->sock_preempt_priority = s.pre.got.priority;
	sum->sock_preempt_tos = s.pre.got.tos;
	sum->sock_main_notsent_lowat = s.main.got.notsent_lowat;
	sum->page_size = s.ram.lay.page_size;
	sum->pieces = atomic_load(&s.pieces);
	sum->interrupts = atomic_load(&s.interrupts);
	sum->req_partial = atomic_load(&s.req_partial);
	sum->resent = atomic_load(&s.req_resent);
	sum->resend_near = atomic_load(&s.req_near);
	chan_close(&s.main);
	chan_close(&s.pre);
	if (lfd >= 0)
		close(lfd);
	ram_close(&s.ram);
	session_destroy(&s.ss);
	dirty_close(&dt);
	claims_free(&s.sent);
	free(s.hash);
	free(s.sent_at);
	reqq_destroy(&s.reqs);
	free(s.out);
	return sum->ok ? 0 : -1;
}
