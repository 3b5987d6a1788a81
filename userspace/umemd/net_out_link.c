// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --outgoing: the connection to the destination.  Opening it
 * (connect or accept), the handshake (HELLO, what the destination's
 * HELLO_ACK accepted, PREEMPT_HELLO on the second connection, ADVISE and,
 * without precopy, LISTEN and RUN at once), and the return path: REQ
 * (into the request queue, and the --bg-follow hint), ACK, DONE, ERROR.
 *
 * Threads: src_handshake() runs on main, before any other thread reads
 * the main connection; then the rp thread (src_rp_thread(), started with
 * the preempt thread by src_start_threads()) is its only reader.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "source.h"
#include "util.h"

static void *src_rp_thread(void *arg)
{
	struct source *s = arg;
	uint8_t *buf = malloc(PROTO_MAX_FRAME);
	char err[256];

	thread_name("umemd-retpath");
	if (!buf) {
		session_fail(&s->ss, "out of memory");
		return NULL;
	}
	for (;;) {
		struct proto_msg m;
		uint16_t type;
		uint32_t len;
		int ret = chan_read_frame(&s->main, &type, buf, &len, err, sizeof(err));

		if (ret == -ECANCELED)
			break;
		if (ret == -EPIPE && atomic_load(&s->done))
			break;
		if (ret) {
			if (src_pause(s, "return path", ret))
				break;
			session_fail(&s->ss, "return path: %s%s", err,
				     ret == -EPIPE ? " before the destination said DONE (destination died?)" : "");
			break;
		}
		ret = proto_decode(type, buf, len, &s->ram.lay, &m, err, sizeof(err));
		if (ret) {
			session_fail(&s->ss, "return path: %s", err);
			break;
		}
		switch (type) {
		case MSG_REQ:
			atomic_fetch_add(&s->requests, m.u.page.count);
			reqq_push(&s->reqs, m.u.page.page, m.u.page.count);
			if (s->o->bg_follow)
				atomic_store(&s->hint, m.u.page.page + m.u.page.count + 1);
			break;
		case MSG_ACK:
			atomic_store(&s->acked, m.u.pages);
			break;
		case MSG_PROGRESS:
			if (!s->progress) {
				session_fail(&s->ss, "return path: PROGRESS frame, but PROGRESS was not agreed");
				goto out;
			}
			atomic_store_explicit(&s->dest_pos, m.u.bytes, memory_order_relaxed);
			break;
		case MSG_DONE:
			if (m.u.pages != s->ram.pages) {
				session_fail(&s->ss, "destination said DONE with %llu of %llu pages",
					     (unsigned long long)m.u.pages,
					     (unsigned long long)s->ram.pages);
				goto out;
			}
			atomic_store(&s->done, true);
			atomic_store(&s->ss.stopping, true);
			reqq_close(&s->reqs);
			goto out;
		case MSG_ERROR:
			session_fail(&s->ss, "destination reported error %u: %s",
				     m.u.error.code, m.u.error.text);
			goto out;
		default:
			session_fail(&s->ss, "return path: unexpected %s frame",
				     proto_type_name(type));
			goto out;
		}
	}
out:
	free(buf);
	return NULL;
}

int src_open_conn(struct source *s, int lfd, int wait_ms)
{
	if (lfd >= 0)
		return net_accept(lfd, s->ss.stop_fd, s->o->link_timeout_ms);
	return net_connect(s->o->connect, wait_ms, s->ss.stop_fd,
			   s->o->link_timeout_ms);
}

int src_handshake(struct source *s, int lfd)
{
	struct proto_hello h;
	struct proto_msg m;
	uint8_t *buf = s->out;
	char err[256];
	uint16_t type;
	uint32_t len;
	size_t n;
	int ret;

	memset(&h, 0, sizeof(h));
	h.version_min = PROTO_VERSION_MIN;
	h.version_max = s->o->proto_max;
	h.page_size = s->ram.lay.page_size;
	h.ram_size = s->ram.pages * s->ram.lay.page_size;
	h.features = PROTO_F_KNOWN & ~(s->o->recover ? 0 : PROTO_F_RECOVER) &
		     ~(s->o->resend && s->o->resend_gap_ms ? 0 : PROTO_F_PROGRESS);
	h.session = s->session;
	h.layout = s->ram.lay;
	n = proto_enc_hello(buf, OUTBUF_SIZE, &h);
	ret = chan_write(&s->main, buf, n, NULL, 0);
	if (ret) {
		session_fail(&s->ss, "sending HELLO: %s", chan_strerror(ret));
		return ret;
	}
	ret = chan_read_frame(&s->main, &type, buf, &len, err, sizeof(err));
	if (!ret)
		ret = proto_decode(type, buf, len, &s->ram.lay, &m, err, sizeof(err));
	if (ret) {
		session_fail(&s->ss, "handshake: %s", err);
		return ret;
	}
	if (type == MSG_ERROR) {
		session_fail(&s->ss, "destination refused the migration (error %u): %s",
			     m.u.error.code, m.u.error.text);
		return -EPROTO;
	}
	if (type != MSG_HELLO_ACK) {
		session_fail(&s->ss, "handshake: expected HELLO_ACK, got %s",
			     proto_type_name(type));
		return -EPROTO;
	}
	if (m.u.ack.version < PROTO_VERSION_MIN || m.u.ack.version > h.version_max ||
	    m.u.ack.page_size != h.page_size || m.u.ack.session != s->session ||
	    (m.u.ack.features & ~h.features)) {
		session_fail(&s->ss, "handshake: bad HELLO_ACK (version %u, page size %u, features %#llx, we speak %u..%u with %u-byte pages and offered %#llx)",
			     m.u.ack.version, m.u.ack.page_size,
			     (unsigned long long)m.u.ack.features, PROTO_VERSION_MIN,
			     h.version_max, h.page_size, (unsigned long long)h.features);
		return -EPROTO;
	}
	if (src_huge(s) && m.u.ack.version < PROTO_VERSION_HUGE) {
		session_fail(&s->ss, "handshake: the destination chose protocol version %u, but %u-byte pages need version %u",
			     m.u.ack.version, h.page_size, PROTO_VERSION_HUGE);
		return -EPROTO;
	}
	s->preempt = m.u.ack.features & PROTO_F_PREEMPT;
	s->recover = m.u.ack.features & PROTO_F_RECOVER;
	s->version = m.u.ack.version;
	s->sum->version = s->version;
	if (s->o->recover && !s->recover)
		log_msg("the destination does not do RECOVER: a broken link will fail the migration");
	s->zero_ok = m.u.ack.features & PROTO_F_ZERO;
	s->resend = s->o->resend && (m.u.ack.features & PROTO_F_RESEND);
	s->progress = m.u.ack.features & PROTO_F_PROGRESS;
	if (s->progress && s->resend && s->preempt && !src_huge(s) && !s->sent_at) {
		s->sent_at = calloc(SENT_AT_SLOTS, sizeof(*s->sent_at));
		if (!s->sent_at) {
			session_fail(&s->ss, "out of memory");
			return -ENOMEM;
		}
	}
	if (s->o->device_state && !(m.u.ack.features & PROTO_F_DEVSTATE)) {
		session_fail(&s->ss, "--device-state: the destination does not take device state (no DEVSTATE feature)");
		return -EPROTO;
	}
	s->sum->preempt = s->preempt;
	if (s->preempt) {
		ret = src_open_conn(s, lfd, s->o->connect_wait_ms);
		if (ret < 0) {
			session_fail(&s->ss, "opening the preempt channel: %s", strerror(-ret));
			return ret;
		}
		chan_attach(&s->pre, ret);
		n = proto_enc_preempt_hello(buf, s->version, s->session);
		ret = chan_write(&s->pre, buf, n, NULL, 0);
		if (ret) {
			session_fail(&s->ss, "preempt channel: %s", chan_strerror(ret));
			return ret;
		}
	}
	/* ADVISE, then either LISTEN, RUN right away (a stopped guest) or
	 * precopy rounds and the switch (precopy_and_switch()). */
	n = proto_enc_empty(buf, MSG_ADVISE);
	if (!s->o->pid && !s->o->stop_cmd) {
		ret = send_listen_run(s, buf, n);
		if (!ret)
			atomic_store(&s->running, true);
		return ret;
	}
	ret = chan_write(&s->main, buf, n, NULL, 0);
	if (ret)
		session_fail(&s->ss, "sending postcopy commands: %s", chan_strerror(ret));
	return ret;
}

/*
 * Start the return-path thread (it reads the destination's page requests)
 * and, with a preempt channel, the thread that answers them there.  Without
 * either the destination would wait for pages nobody sends, so a failure
 * fails the migration.  0, or -1 with the reason recorded.
 */
int src_start_threads(struct source *s, pthread_t *rp, bool *rp_started,
		      pthread_t *pre, bool *pre_started)
{
	int err;

	err = pthread_create(rp, NULL, src_rp_thread, s);
	if (err) {
		session_fail(&s->ss, "cannot start the return-path thread: %s", strerror(err));
		return -1;
	}
	*rp_started = true;
	if (!s->preempt)
		return 0;
	err = pthread_create(pre, NULL, src_preempt_thread, s);
	if (err) {
		session_fail(&s->ss, "cannot start the preempt thread: %s", strerror(err));
		return -1;
	}
	*pre_started = true;
	return 0;
}
