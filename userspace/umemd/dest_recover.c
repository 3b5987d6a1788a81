// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --incoming --recover (feature RECOVER): a connection that breaks
 * in postcopy pauses the migration instead of failing it (dest_pause());
 * dest_resume() takes the source back: it reconnects, sends the map of
 * the pages here (RECV_MAP ... RESUME_OK), reopens the preempt channel,
 * and sends again the requests made while paused.
 *
 * Threads: dest_pause() runs on whichever thread saw the failure (main,
 * fault, preempt); the exchange on d->paused picks the one that logs and
 * shuts both connections.  dest_resume() runs on the main thread, after
 * joining the preempt thread; the fault thread keeps running and holds
 * back its REQs while paused (they are sent again from the region's
 * requested map).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "dest.h"
#include "util.h"

/*
 * A channel broke.  In postcopy (RUN seen) with RECOVER the migration
 * pauses instead of failing: the region stays, faulting tasks keep
 * waiting, both connections are shut so every thread notices.
 */
bool dest_pause(struct dest *d, const char *what, int ret)
{
	enum pc_state st = get_state(d);

	if (!d->recover || ret == -EPROTO || ret == -ECANCELED ||
	    (st != PC_RUNNING && st != PC_END) || atomic_load(&d->ss.finished) ||
	    atomic_load(&d->ss.failed))
		return false;
	if (!atomic_exchange(&d->paused, true)) {
		log_msg("%s: %s: connection lost, postcopy paused (%llu/%llu pages; faulting tasks keep waiting)",
			what, ret == -EPIPE ? "peer closed the connection" : strerror(-ret),
			(unsigned long long)rs_received(&d->rs),
			(unsigned long long)d->pages);
		if (d->main.fd >= 0)
			shutdown(d->main.fd, SHUT_RDWR);
		if (d->pre.fd >= 0)
			shutdown(d->pre.fd, SHUT_RDWR);
	}
	return true;
}

/* Wait for a new connection (accept or connect) until @deadline. */
static int reopen_conn(struct dest *d, int lfd, uint64_t deadline)
{
	uint64_t now = now_ns();
	int ms = now < deadline ? (int)((deadline - now) / 1000000ULL) : 0;

	if (lfd >= 0) {
		struct pollfd p[2] = {
			{ .fd = lfd, .events = POLLIN },
			{ .fd = d->ss.stop_fd, .events = POLLIN },
		};
		int n = poll(p, 2, ms);

		if (n == 0)
			return -ETIMEDOUT;
		if (n < 0)
			return -errno;
		if (p[1].revents)
			return -ECANCELED;
		return net_accept(lfd, d->ss.stop_fd, d->o->link_timeout_ms);
	}
	return net_connect(d->o->connect, ms, d->ss.stop_fd,
			   d->o->link_timeout_ms);
}

static int resume_once(struct dest *d, int lfd, uint64_t deadline, uint8_t *buf,
		       char *err, size_t errlen)
{
	struct proto_msg m;
	uint16_t type;
	uint32_t len;
	uint64_t have = 0;
	int ret = reopen_conn(d, lfd, deadline);

	if (ret < 0) {
		snprintf(err, errlen, "waiting for the source: %s", strerror(-ret));
		return ret;
	}
	chan_attach(&d->main, ret);	/* under wlock: REQ writers may be racing */
	ret = chan_read_frame(&d->main, &type, buf, &len, err, errlen);
	if (!ret)
		ret = proto_decode(type, buf, len, &d->lay, &m, err, errlen);
	if (!ret && (type != MSG_RESUME || m.u.preempt.session != d->session ||
		     m.u.preempt.version != d->version)) {
		snprintf(err, errlen, "expected RESUME of session %#llx, got %s",
			 (unsigned long long)d->session, proto_type_name(type));
		send_error(d, PROTO_E_PROTO, err);
		return -EAGAIN;		/* not our source: wait for another */
	}
	if (ret)
		return ret == -EPROTO ? -EAGAIN : ret;
	for (uint64_t p = 0; p < d->pages && !ret; p += PROTO_MAP_BITS) {
		uint32_t bits = d->pages - p < PROTO_MAP_BITS ? (uint32_t)(d->pages - p) : PROTO_MAP_BITS;
		uint8_t map[PROTO_MAP_BITS / 8];

		memset(map, 0, sizeof(map));
		for (uint32_t i = 0; i < bits; i++)
			if (rs_present(&d->rs, p + i)) {
				map[i / 8] |= (uint8_t)(1u << (i % 8));
				have++;
			}
		ret = chan_write(&d->main, buf, proto_enc_recv_map(buf, &d->lay, p, bits, map), NULL, 0);
	}
	if (!ret)
		ret = chan_write(&d->main, buf, proto_enc_u64(buf, MSG_RESUME_OK, have), NULL, 0);
	if (ret) {
		snprintf(err, errlen, "sending the received map: %s", chan_strerror(ret));
		return ret;
	}
	if (!d->preempt)
		return 0;
	ret = reopen_conn(d, lfd, now_ns() + 5000000000ULL);
	if (ret < 0) {
		snprintf(err, errlen, "reopening the preempt channel: %s", strerror(-ret));
		return ret;
	}
	chan_attach(&d->pre, ret);
	ret = chan_read_frame(&d->pre, &type, buf, &len, err, errlen);
	if (!ret)
		ret = proto_decode(type, buf, len, &d->lay, &m, err, errlen);
	if (!ret && (type != MSG_PREEMPT_HELLO || m.u.preempt.session != d->session)) {
		snprintf(err, errlen, "preempt channel: expected PREEMPT_HELLO of this session");
		return -EAGAIN;
	}
	return ret;
}

/* Paused: take the source back (bounded by --recover-wait), then go on. */
int dest_resume(struct dest *d, int lfd, uint8_t *buf)
{
	/* Our own clock: the thread that paused may still be logging. */
	uint64_t t0 = now_ns();
	uint64_t deadline = t0 + (uint64_t)d->o->recover_wait_ms * 1000000ULL;
	char err[256] = "";

	if (d->pre_on)
		pthread_join(d->pre_th, NULL);
	d->pre_on = false;
	dest_drop_partial(d);
	for (;;) {
		uint8_t out[64 * (PROTO_HDR_LEN + 16)];
		size_t len = 0;
		int ret;

		pthread_mutex_lock(&d->main.wlock);
		chan_close(&d->main);
		pthread_mutex_unlock(&d->main.wlock);
		chan_close(&d->pre);
		if (atomic_load(&d->ss.failed) || atomic_load(&d->ss.finished))
			return -ECANCELED;
		if (now_ns() >= deadline)
			break;
		ret = resume_once(d, lfd, deadline, buf, err, sizeof(err));
		if (ret) {
			if (d->verbose)
				log_msg("resume attempt failed: %s", err);
			if (ret == -ECANCELED)
				return ret;
			continue;
		}
		pthread_mutex_lock(&d->slock);
		if (d->state == PC_END) {
			d->state = PC_RUNNING;	/* the source sends END again */
			d->end_seen = false;
		}
		pthread_mutex_unlock(&d->slock);
		if (d->preempt) {
			if (pthread_create(&d->pre_th, NULL, dest_preempt_thread, d)) {
				session_fail(&d->ss, "cannot start the preempt thread");
				return -EAGAIN;
			}
			d->pre_on = true;
		}
		atomic_store(&d->paused, false);
		d->sum->resumes++;
		d->sum->paused_ns += now_ns() - t0;
		log_msg("resumed after %.3f s paused (resume %u)",
			(double)(now_ns() - t0) / 1e9, d->sum->resumes);
		/* Requests made while paused (or lost with the link). */
		for (uint64_t p = 0; p < d->pages && !ret; p++) {
			if (!rs_requested(&d->rs, p) || rs_present(&d->rs, p))
				continue;
			len += proto_enc_run(out + len, MSG_REQ, &d->lay, p, 1);
			if (len + PROTO_HDR_LEN + 16 > sizeof(out)) {
				ret = chan_write(&d->main, out, len, NULL, 0);
				len = 0;
			}
		}
		if (!ret && len)
			ret = chan_write(&d->main, out, len, NULL, 0);
		if (ret && !dest_pause(d, "return path", ret))
			return ret;
		return 0;
	}
	session_fail(&d->ss, "postcopy paused and the source did not come back within %d s%s%s",
		     d->o->recover_wait_ms / 1000, err[0] ? ": " : "", err);
	return -ETIMEDOUT;
}

