// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --outgoing --recover (feature RECOVER): a connection that breaks
 * in postcopy pauses the migration instead of failing it (src_pause());
 * src_resume() reconnects, takes the destination's received map as the
 * new sent map and restarts the rp and preempt threads.
 *
 * Threads: src_pause() runs on whichever thread saw the failure (main,
 * rp, preempt); the exchange on s->paused picks the one that logs and
 * shuts both connections, which makes the other threads stop.
 * src_resume() runs on the main thread, after joining rp and preempt:
 * while it runs, no other thread uses the channels.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "source.h"
#include "util.h"

/*
 * A channel failed.  In postcopy with RECOVER that pauses the migration
 * (both connections are shut so every thread notices) instead of failing
 * it; returns true then.  Protocol errors always fail.
 */
bool src_pause(struct source *s, const char *what, int ret)
{
	if (!s->recover || ret == -EPROTO || ret == -ECANCELED ||
	    !atomic_load(&s->running) || atomic_load(&s->done) ||
	    atomic_load(&s->ss.failed))
		return false;
	if (!atomic_exchange(&s->paused, true)) {
		reqq_hold(&s->reqs, true);
		log_msg("%s: %s: connection lost, postcopy paused (the guest keeps waiting)",
			what, ret == -EPIPE ? "peer closed the connection" : strerror(-ret));
		if (s->main.fd >= 0)
			shutdown(s->main.fd, SHUT_RDWR);
		if (s->pre.fd >= 0)
			shutdown(s->pre.fd, SHUT_RDWR);
	}
	return true;
}

/*
 * One attempt at resuming on a new connection: RESUME, then the
 * destination's received map (RECV_MAP ... RESUME_OK), which becomes our
 * sent map: what did not arrive is sent again.  Then the preempt channel.
 */
static int resume_once(struct source *s, int lfd, int wait_ms, char *err, size_t errlen)
{
	uint8_t *buf = s->out;
	uint64_t next = 0, nsent = 0;
	int ret = src_open_conn(s, lfd, wait_ms);

	if (ret < 0) {
		snprintf(err, errlen, "reconnecting: %s", strerror(-ret));
		return ret;
	}
	chan_attach(&s->main, ret);
	ret = chan_write(&s->main, buf, proto_enc_resume(buf, s->version, s->session), NULL, 0);
	while (!ret) {
		struct proto_msg m;
		uint16_t type;
		uint32_t len;

		ret = chan_read_frame(&s->main, &type, buf, &len, err, errlen);
		if (!ret)
			ret = proto_decode(type, buf, len, &s->ram.lay, &m, err, errlen);
		if (ret)
			break;
		if (type == MSG_ERROR) {
			snprintf(err, errlen, "destination refused to resume (error %u): %.200s",
				 m.u.error.code, m.u.error.text);
			return -EPROTO;
		}
		if (type == MSG_REQ) {
			reqq_push(&s->reqs, m.u.page.page, m.u.page.count);
			continue;
		}
		if (type == MSG_RECV_MAP) {
			if (m.u.map.page != next) {
				snprintf(err, errlen, "RECV_MAP for page %llu, expected %llu",
					 (unsigned long long)m.u.map.page, (unsigned long long)next);
				return -EPROTO;
			}
			for (uint32_t i = 0; i < m.u.map.bits; i++) {
				bool got = m.u.map.map[i / 8] & (1u << (i % 8));

				claims_set(&s->sent, next + i, got);
				nsent += got;
			}
			next += m.u.map.bits;
			continue;
		}
		if (type == MSG_RESUME_OK && next == s->ram.pages && m.u.pages == nsent)
			break;
		snprintf(err, errlen, "resuming: unexpected %s (map %llu/%llu pages)",
			 proto_type_name(type), (unsigned long long)next,
			 (unsigned long long)s->ram.pages);
		return -EPROTO;
	}
	if (ret) {
		if (ret == -EPROTO)
			return ret;
		snprintf(err, errlen, "resuming: %s", chan_strerror(ret));
		return ret;
	}
	claims_set_count(&s->sent, nsent);
	if (s->preempt) {
		ret = src_open_conn(s, lfd, 5000);
		if (ret < 0) {
			snprintf(err, errlen, "reopening the preempt channel: %s", strerror(-ret));
			return ret;
		}
		chan_attach(&s->pre, ret);
		ret = chan_write(&s->pre, buf, proto_enc_preempt_hello(buf, s->version, s->session),
				 NULL, 0);
		if (ret) {
			snprintf(err, errlen, "preempt channel: %s", chan_strerror(ret));
			return ret;
		}
	}
	return 0;
}

/* Paused: reconnect (bounded: --recover-wait), resume, restart threads. */
int src_resume(struct source *s, int lfd, pthread_t *rp, bool *rp_started,
	       pthread_t *pre, bool *pre_started)
{
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)s->o->recover_wait_ms * 1000000ULL;
	unsigned int backoff_ms = 100;
	char err[256] = "";

	if (*rp_started)
		pthread_join(*rp, NULL);
	if (*pre_started)
		pthread_join(*pre, NULL);
	*rp_started = *pre_started = false;
	s->outlen = 0;		/* the queued background output is lost with the link */
	s->qbytes = 0;
	s->niov = 0;
	/* Positions on main start again at 0 with the next connection. */
	atomic_store(&s->dest_pos, 0);
	if (s->sent_at)
		memset(s->sent_at, 0, SENT_AT_SLOTS * sizeof(*s->sent_at));
	for (;;) {
		uint64_t now = now_ns();
		int ret;

		chan_close(&s->main);
		chan_close(&s->pre);
		if (now >= deadline || atomic_load(&s->ss.failed))
			break;
		ret = resume_once(s, lfd, (int)((deadline - now) / 1000000ULL), err, sizeof(err));
		if (!ret) {
			atomic_store(&s->end_sent, false);
			atomic_store(&s->paused, false);
			reqq_hold(&s->reqs, false);
			s->sum->resumes++;
			s->sum->paused_ns += now_ns() - t0;
			log_msg("resumed after %.3f s paused (resume %u): %llu of %llu pages at the destination",
				(double)(now_ns() - t0) / 1e9, s->sum->resumes,
				(unsigned long long)claims_count(&s->sent),
				(unsigned long long)s->ram.pages);
			return src_start_threads(s, rp, rp_started, pre, pre_started);
		}
		if (ret == -EPROTO) {
			session_fail(&s->ss, "%s", err);
			return ret;
		}
		if (s->o->verbose)
			log_msg("resume attempt failed (%s); retrying in %u ms", err, backoff_ms);
		usleep(backoff_ms * 1000);
		backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
	}
	if (!atomic_load(&s->ss.failed))
		session_fail(&s->ss, "postcopy paused and the destination did not come back within %d s%s%s",
			     s->o->recover_wait_ms / 1000, err[0] ? ": " : "", err);
	return -ETIMEDOUT;
}

