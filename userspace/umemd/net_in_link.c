// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --incoming: the connection to the source.  Opening it (accept or
 * connect), the handshake (numbered steps in dest.c: HELLO, the region
 * created from its layout, HELLO_ACK with the features we accept, the
 * preempt channel and its reader), ERROR to the source, and the network
 * as the region's page provider (pages.h): the fault thread's requests
 * become REQ frames, and while we wait for the VMM the source may give
 * up.
 *
 * Threads: dest_handshake() runs on main.  request_pages() runs on the
 * region's fault thread and writes the main connection (its writers
 * serialise on the channel's wlock); source_gone() reads the main
 * connection from the thread that waits for the VMM (see the comment).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "dest.h"
#include "util.h"

int dest_open_conn(struct dest *d, int lfd)
{
	if (lfd >= 0)
		return net_accept(lfd, d->ss.stop_fd, d->o->link_timeout_ms);
	return net_connect(d->o->connect, d->o->connect_wait_ms, d->ss.stop_fd,
			   d->o->link_timeout_ms);
}

void send_error(struct dest *d, uint32_t code, const char *text)
{
	uint8_t e[PROTO_HDR_LEN + 8 + PROTO_MAX_TEXT];

	if (d->main.fd >= 0)
		chan_write(&d->main, e, proto_enc_error(e, code, text), NULL, 0);
}

int dest_handshake(struct dest *d, int lfd, uint8_t *buf)
{
	struct proto_hello h;
	struct proto_msg m;
	char err[256], msg[300];
	uint64_t want, feats;
	uint32_t version, len;
	uint16_t type;
	size_t n;
	int ret;

	ret = chan_read_frame(&d->main, &type, buf, &len, err, sizeof(err));
	if (!ret && type != MSG_HELLO) {
		snprintf(err, sizeof(err), "expected HELLO, got %s", proto_type_name(type));
		ret = -EPROTO;
	}
	if (!ret)
		ret = proto_decode_hello(buf, len, &h, err, sizeof(err));
	if (ret) {
		session_fail(&d->ss, "handshake: %s", err);
		send_error(d, PROTO_E_PROTO, err);
		return ret;
	}
	/* The highest version both sides speak. */
	version = h.version_max < d->o->proto_max ? h.version_max : d->o->proto_max;
	if (version < h.version_min || version < PROTO_VERSION_MIN) {
		snprintf(msg, sizeof(msg),
			 "unsupported protocol version %u..%u (this umemd speaks %u..%u)",
			 h.version_min, h.version_max, PROTO_VERSION_MIN,
			 d->o->proto_max);
		session_fail(&d->ss, "handshake: %s", msg);
		send_error(d, PROTO_E_VERSION, msg);
		return -EPROTO;
	}
	ret = proto_layout_finish(&h.layout, h.ram_size, err, sizeof(err));
	if (!ret && h.page_size != PROTO_PAGE_SIZE && version < PROTO_VERSION_HUGE) {
		snprintf(err, sizeof(err),
			 "page size %u needs protocol version %u (this umemd speaks %u..%u, chose %u)",
			 h.page_size, PROTO_VERSION_HUGE, PROTO_VERSION_MIN, d->o->proto_max,
			 version);
		ret = -EPROTO;
	}
	if (ret) {
		session_fail(&d->ss, "handshake: %s", err);
		send_error(d, PROTO_E_PARAM, err);
		return ret;
	}
	d->lay = h.layout;
	d->pages = d->lay.total_pages;
	d->session = h.session;
	/* What the peer offers vs what we want. */
	want = PROTO_F_ZERO | PROTO_F_DEVSTATE | PROTO_F_RESEND |
	       (d->o->preempt ? PROTO_F_PREEMPT | PROTO_F_PROGRESS : 0) |
	       (d->o->recover ? PROTO_F_RECOVER : 0);
	if (version < 2)
		want &= ~PROTO_F_RECOVER;	/* a v2 feature */
	feats = h.features & want & PROTO_F_KNOWN;
	if (d->o->verbose)
		log_msg("HELLO: version %u..%u, %llu bytes in %u block(s), offered %#llx, want %#llx, accepted %#llx",
			h.version_min, h.version_max, (unsigned long long)h.ram_size,
			d->lay.nblocks, (unsigned long long)h.features,
			(unsigned long long)want, (unsigned long long)feats);
	/* Step 2 (dest.c): the region, and the VMM if it must attach first. */
	ret = rs_open(&d->rs, d->pages, d->lay.page_size);
	if (ret) {
		send_error(d, PROTO_E_LOCAL, d->ss.err);
		return ret;
	}
	n = proto_enc_hello_ack(buf, version, d->lay.page_size, feats, d->session);
	ret = chan_write(&d->main, buf, n, NULL, 0);
	if (ret) {
		session_fail(&d->ss, "sending HELLO_ACK: %s", chan_strerror(ret));
		return ret;
	}
	d->preempt = feats & PROTO_F_PREEMPT;
	d->recover = feats & PROTO_F_RECOVER;
	d->resend = feats & PROTO_F_RESEND;
	d->progress = feats & PROTO_F_PROGRESS;
	d->version = version;
	d->sum->version = version;
	d->sum->page_size = d->lay.page_size;
	d->sum->preempt = d->preempt;
	if (!d->preempt)
		return 0;
	ret = dest_open_conn(d, lfd);
	if (ret < 0) {
		session_fail(&d->ss, "opening the preempt channel: %s", strerror(-ret));
		return ret;
	}
	chan_attach(&d->pre, ret);
	ret = chan_read_frame(&d->pre, &type, buf, &len, err, sizeof(err));
	if (!ret && type != MSG_PREEMPT_HELLO) {
		snprintf(err, sizeof(err), "expected PREEMPT_HELLO, got %s",
			 proto_type_name(type));
		ret = -EPROTO;
	}
	if (!ret)
		ret = proto_decode(type, buf, len, &d->lay, &m, err, sizeof(err));
	if (!ret && (m.u.preempt.session != d->session ||
		     m.u.preempt.version != version)) {
		snprintf(err, sizeof(err), "PREEMPT_HELLO for another session or version");
		ret = -EPROTO;
	}
	if (ret) {
		session_fail(&d->ss, "preempt channel: %s", err);
		return ret;
	}
	if (pthread_create(&d->pre_th, NULL, dest_preempt_thread, d)) {
		session_fail(&d->ss, "cannot start the preempt thread");
		return -EAGAIN;
	}
	d->pre_on = true;
	return 0;
}

/*
 * The page provider's request(): the region's fault thread asks for
 * pages, they go to the source as REQ frames on the return path (after
 * a PROGRESS frame, when agreed).  While
 * paused they are dropped here and sent again from the region's
 * requested map on resume (dest_recover.c).
 */
static int request_pages(struct page_provider *p, const uint64_t *pages, uint32_t n)
{
	struct dest *d = container_of(p, struct dest, prov);
	uint8_t out[PROTO_HDR_LEN + 8 + 64 * (PROTO_HDR_LEN + 16)];

	for (uint32_t i = 0; i < n;) {
		size_t len = 0;
		int ret;

		/* How far main has been read now: the source's RESEND rule. */
		if (d->progress)
			len = proto_enc_u64(out, MSG_PROGRESS,
					    atomic_load_explicit(&d->main_pos,
								 memory_order_relaxed));
		for (; i < n && len + PROTO_HDR_LEN + 16 <= sizeof(out); i++)
			len += proto_enc_run(out + len, MSG_REQ, &d->lay, pages[i], 1);
		if (atomic_load(&d->paused))
			continue;
		ret = chan_write(&d->main, out, len, NULL, 0);
		if (ret && dest_pause(d, "return path", ret))
			continue;
		if (ret) {
			session_fail(&d->ss, "return path: %s%s", chan_strerror(ret),
				     ret == -EPIPE ? " (source died?)" : "");
			return ret;
		}
	}
	return 0;
}

/*
 * The source sends nothing before HELLO_ACK, so anything readable on the
 * main connection while we wait for the VMM means it gave up (ERROR) or
 * went away: fail instead of waiting for a VMM nobody needs any more.
 */
static int source_gone(struct page_provider *prov)
{
	struct dest *d = container_of(prov, struct dest, prov);
	struct pollfd p = { .fd = d->main.fd, .events = POLLIN | POLLRDHUP };
	uint8_t *buf;
	struct proto_msg m;
	char err[256];
	uint16_t type;
	uint32_t len;
	int ret;

	if (!chan_buffered(&d->main) && poll(&p, 1, 0) <= 0)
		return 0;
	buf = malloc(PROTO_MAX_FRAME);
	if (!buf)
		return 0;
	ret = chan_read_frame(&d->main, &type, buf, &len, err, sizeof(err));
	if (!ret && !proto_decode(type, buf, len, &d->lay, &m, err, sizeof(err)) &&
	    type == MSG_ERROR)
		session_fail(&d->ss, "the source gave up while we waited for the VMM (error %u): %s",
			     m.u.error.code, m.u.error.text);
	else if (ret)
		session_fail(&d->ss, "waiting for the VMM: main channel: %s", err);
	else
		session_fail(&d->ss, "%s from the source before HELLO_ACK", proto_type_name(type));
	free(buf);
	return -ECANCELED;
}

void dest_provider_init(struct dest *d)
{
	d->prov.request = request_pages;
	d->prov.gone = source_gone;
}
