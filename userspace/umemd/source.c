// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --outgoing: serve a guest's RAM from files.  With --pid, precopy
 * rounds while the VMM runs (soft-dirty tracking), then the switch to
 * postcopy (see precopy_and_switch()).  With --recover (feature RECOVER)
 * a broken connection in postcopy pauses; src_resume() reconnects.
 *
 * This file is the session: connections, handshake, the background
 * stream and its pacing, the request queue, the rp and preempt threads.
 * Precopy and the switch are in precopy.c, dirty tracking in dirty.c,
 * recovery in source_recover.c; struct source is in source.h.
 *
 * Threads:
 *   main      handshake, ADVISE/LISTEN/RUN, then the background stream
 *             (pages in order, zero runs as ZERO), END, wait for DONE.
 *   rp        the return path: reads REQ/ACK/DONE/ERROR from the
 *             destination, queues requested pages.
 *   preempt   (with PROTO_F_PREEMPT) sends queued requested pages on the
 *             second connection.  Without it, main drains the queue
 *             between background pages.
 *
 * Every page is sent once: a sender claims it in sent[] first (an atomic
 * exchange); the loser of a race skips it.  That is what keeps a page
 * from travelling on both channels.
 *
 * 2 MiB pages (--page-size 2m, protocol v3) travel as PIECE frames of at
 * most 64 KiB, in order, all on the channel whose sender claimed the
 * page.  Between two pieces of a background page the pacer may sleep;
 * requested pages go out meanwhile (preempt thread, or main itself
 * without preempt, which drains the queue between pieces), so a request
 * interrupts a partly sent huge page and the rest follows after it.  A
 * request for the page being sent is a duplicate (it is claimed), but it
 * makes the rest of that page urgent: no more pacing until it is out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "dirty.h"
#include "source.h"
#include "umemd.h"
#include "util.h"

__attribute__((format(printf, 2, 3)))
void src_fail(struct source *s, const char *fmt, ...)
{
	va_list ap;
	uint64_t one = 1;

	pthread_mutex_lock(&s->elock);
	if (!atomic_load(&s->failed)) {
		va_start(ap, fmt);
		vsnprintf(s->err, sizeof(s->err), fmt, ap);
		va_end(ap);
		atomic_store(&s->failed, true);
	}
	pthread_mutex_unlock(&s->elock);
	if (write(s->stop_fd, &one, sizeof(one)) < 0) {
		/* eventfd write cannot fail short of overflow */
	}
	pthread_mutex_lock(&s->qlock);
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
}

static bool page_is_zero(const struct source *s, const uint8_t *p)
{
	static const uint8_t zero[PROTO_PAGE_SIZE];

	for (uint32_t off = 0; off < s->lay.page_size; off += PROTO_PAGE_SIZE)
		if (memcmp(p + off, zero, PROTO_PAGE_SIZE))
			return false;
	return true;
}

static bool huge(const struct source *s)
{
	return s->lay.page_size != PROTO_PAGE_SIZE;
}

static bool claim(struct source *s, uint64_t page)
{
	if (atomic_exchange(&s->sent[page], 1))
		return false;
	atomic_fetch_add(&s->nsent, 1);
	return true;
}

static int map_ram(struct source *s)
{
	const struct umemd_opts *o = s->o;
	uint64_t total = 0;
	char err[160];

	s->lay.page_size = o->page_size;
	s->lay.nblocks = (uint32_t)o->nram;
	for (int i = 0; i < o->nram; i++) {
		struct proto_block *b = &s->lay.blocks[i];
		const char *base = strrchr(o->ram[i], '/');
		struct stat st;
		void *p;
		int fd = open(o->ram[i], O_RDONLY | O_CLOEXEC);

		if (fd < 0 || fstat(fd, &st) < 0) {
			src_fail(s, "%s: %s", o->ram[i], strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (!st.st_size || st.st_size % o->page_size) {
			src_fail(s, "%s: size %lld is not a non-zero multiple of the page size %u",
				 o->ram[i], (long long)st.st_size, o->page_size);
			close(fd);
			return -1;
		}
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (p == MAP_FAILED) {
			src_fail(s, "mmap %s: %s", o->ram[i], strerror(errno));
			return -1;
		}
		madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
		s->blk[i] = p;
		snprintf(b->name, sizeof(b->name), "%s", base ? base + 1 : o->ram[i]);
		for (char *c = b->name; *c; c++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:/", *c))
				*c = '_';
		b->length = (uint64_t)st.st_size;
		total += b->length;
	}
	if (proto_layout_finish(&s->lay, total, err, sizeof(err))) {
		src_fail(s, "RAM layout: %s", err);
		return -1;
	}
	s->pages = s->lay.total_pages;
	return 0;
}

/* ---- request queue ---- */

void queue_push(struct source *s, uint64_t page, uint32_t count)
{
	pthread_mutex_lock(&s->qlock);
	for (uint32_t i = 0; i < count; i++) {
		if (s->qlen == s->qcap) {
			/* Full: the oldest entries are pages the background
			 * stream will reach anyway; drop them. */
			s->qhead = (s->qhead + 1) % s->qcap;
			s->qlen--;
		}
		s->q[(s->qhead + s->qlen) % s->qcap] = page + i;
		s->qlen++;
	}
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
}

static bool queue_pop(struct source *s, uint64_t *page, bool wait)
{
	bool got = false;

	pthread_mutex_lock(&s->qlock);
	while (wait && !s->qlen && !atomic_load(&s->stopping) &&
	       !atomic_load(&s->failed) && !atomic_load(&s->paused))
		pthread_cond_wait(&s->qcond, &s->qlock);
	if (s->qlen && !atomic_load(&s->paused)) {
		*page = s->q[s->qhead];
		s->qhead = (s->qhead + 1) % s->qcap;
		s->qlen--;
		got = true;
	}
	pthread_mutex_unlock(&s->qlock);
	return got;
}

/* ---- sending ---- */

/* One requested page, whole: a 2 MiB page as all its pieces, on @c. */
static int send_page_now(struct source *s, struct chan *c, uint64_t page)
{
	uint8_t hdr[PROTO_HDR_LEN + 16];
	const uint8_t *d = page_data(s, page);

	if (s->zero_ok && page_is_zero(s, d)) {
		size_t n = proto_enc_run(hdr, MSG_ZERO, &s->lay, page, 1);

		atomic_fetch_add(&s->pages_zero, 1);
		return chan_write(c, hdr, n, NULL, 0);
	}
	if (huge(s)) {
		for (uint32_t off = 0; off < s->lay.page_size; off += PROTO_PIECE_MAX) {
			size_t n = proto_enc_piece_hdr(hdr, &s->lay, page, off,
						       PROTO_PIECE_MAX);
			int ret = chan_write(c, hdr, n, d + off, PROTO_PIECE_MAX);

			if (ret)
				return ret;
			atomic_fetch_add(&s->pieces, 1);
		}
		return 0;
	}
	return chan_write(c, hdr, proto_enc_page_hdr(hdr, &s->lay, page), d,
			  PROTO_PAGE_SIZE);
}

static int flush_out(struct source *s)
{
	int ret = 0;

	if (s->outlen)
		ret = chan_write(&s->main, s->out, s->outlen, NULL, 0);
	s->outlen = 0;
	return ret;
}

static int out_reserve(struct source *s, size_t n)
{
	return s->outlen + n > OUTBUF_SIZE ? flush_out(s) : 0;
}

/* A requested page: on the preempt channel, or (no preempt) main. */
static int serve_request(struct source *s, struct chan *c, uint64_t page)
{
	if (!claim(s, page)) {
		atomic_fetch_add(&s->req_dup, 1);
		if (atomic_load(&s->bg_cur) == page + 1) {
			/* Partly sent: the rest goes next on main, unpaced. */
			atomic_store(&s->bg_urgent, true);
			atomic_fetch_add(&s->req_partial, 1);
		}
		return 0;
	}
	atomic_fetch_add(&s->pages_req, 1);
	if (atomic_load(&s->bg_cur))
		atomic_fetch_add(&s->interrupts, 1);
	return send_page_now(s, c, page);
}

void *src_preempt_thread(void *arg)
{
	struct source *s = arg;
	uint64_t page;

	while (queue_pop(s, &page, true)) {
		int ret = serve_request(s, &s->pre, page);

		if (ret) {
			if (!src_pause(s, "preempt channel", ret))
				src_fail(s, "preempt channel: %s%s", chan_strerror(ret), gone(ret));
			break;
		}
	}
	return NULL;
}

/* Next unclaimed page at or after *cursor, wrapping once; false if none. */
static bool next_unsent(struct source *s, uint64_t *cursor, uint64_t *low)
{
	for (uint64_t p = *cursor; p < s->pages; p++)
		if (!atomic_load_explicit(&s->sent[p], memory_order_relaxed)) {
			*cursor = p;
			return true;
		}
	for (uint64_t p = *low; p < *cursor && p < s->pages; p++)
		if (!atomic_load_explicit(&s->sent[p], memory_order_relaxed)) {
			*low = p;
			*cursor = p;
			return true;
		}
	return false;
}

/*
 * --max-bandwidth: pace the background stream (precopy rounds and the
 * postcopy background; requested pages on the preempt channel are
 * neither counted nor slowed), like QEMU's max-postcopy-bandwidth.
 * Sleeps in slices of at most 5 ms; without a preempt channel it returns
 * after one slice so that the caller serves queued requests first.
 */
struct pacer {
	uint64_t t0, bytes;
};

static int pace(struct source *s, struct pacer *p, size_t bytes)
{
	uint64_t due, now;
	int ret;

	if (!s->o->max_bw_bytes)
		return 0;
	p->bytes += bytes;
	if (atomic_load(&s->bg_urgent))
		return 0;	/* counted, but the requested rest goes now */
	due = p->t0 + (uint64_t)((double)p->bytes * 1e9 / (double)s->o->max_bw_bytes);
	if (due <= now_ns() + 1000000)
		return 0;	/* less than 1 ms ahead of the cap */
	ret = flush_out(s);
	if (ret)
		return ret;
	while ((now = now_ns()) < due && !atomic_load(&s->failed) &&
	       !atomic_load(&s->paused)) {
		uint64_t d = due - now < 5000000 ? due - now : 5000000;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)d };

		nanosleep(&ts, NULL);
		if (!s->preempt)
			break;
	}
	return 0;
}

/* Whether the pacer still holds the background stream back. */
static bool pace_behind(struct source *s, const struct pacer *p)
{
	uint64_t due;

	if (!s->o->max_bw_bytes || atomic_load(&s->bg_urgent) ||
	    atomic_load(&s->failed) || atomic_load(&s->paused))
		return false;
	due = p->t0 + (uint64_t)((double)p->bytes * 1e9 / (double)s->o->max_bw_bytes);
	return due > now_ns() + 1000000;
}

/*
 * --test-cut N: the link breaks after every N pages, three times; with
 * 2 MiB pages always in the middle of a background page (the first one
 * past the count, in background_huge()), so that recovery has a partly
 * sent page to drop.
 */
static void test_cut(struct source *s)
{
	if (s->o->test_cut && atomic_load(&s->running) && s->cuts < 3 &&
	    atomic_load(&s->pages_bg) + atomic_load(&s->pages_req) >=
	    (s->cuts + 1) * s->o->test_cut) {
		s->cuts++;
		shutdown(s->main.fd, SHUT_RDWR);
	}
}

/* Without preempt: requested pages go out on main, ahead of the rest. */
static int drain_requests(struct source *s)
{
	uint64_t page;
	int ret;

	if (s->preempt)
		return 0;
	while (queue_pop(s, &page, false)) {
		ret = flush_out(s);
		if (!ret)
			ret = serve_request(s, &s->main, page);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * A background 2 MiB page (claimed), piece by piece.  Requests are
 * served between pieces (drain_requests(), or the preempt thread while
 * pace() sleeps); bg_cur tells them which page is partly sent.
 */
static int background_huge(struct source *s, struct pacer *pc, uint64_t page)
{
	const uint8_t *d = page_data(s, page);
	int ret = 0;

	atomic_store(&s->bg_urgent, false);
	atomic_store(&s->bg_cur, page + 1);
	for (uint32_t off = 0; off < s->lay.page_size && !ret; off += PROTO_PIECE_MAX) {
		if (off) {
			ret = drain_requests(s);
			if (ret)
				break;
		}
		if (off == s->lay.page_size / 2)
			test_cut(s);	/* 2 MiB: the link breaks inside a page */
		ret = out_reserve(s, PROTO_HDR_LEN + 16 + PROTO_PIECE_MAX);
		if (ret)
			break;
		s->outlen += proto_enc_piece_hdr(s->out + s->outlen, &s->lay, page,
						 off, PROTO_PIECE_MAX);
		memcpy(s->out + s->outlen, d + off, PROTO_PIECE_MAX);
		s->outlen += PROTO_PIECE_MAX;
		atomic_fetch_add(&s->pieces, 1);
		ret = pace(s, pc, PROTO_HDR_LEN + 16 + PROTO_PIECE_MAX);
		/* Without preempt pace() sleeps one slice at a time: serve
		 * requests between the slices until the cap allows more. */
		while (!ret && !s->preempt && pace_behind(s, pc)) {
			ret = drain_requests(s);
			if (!ret)
				ret = pace(s, pc, 0);
		}
	}
	if (!ret)
		ret = flush_out(s);
	atomic_store(&s->bg_cur, 0);
	atomic_store(&s->bg_urgent, false);
	atomic_fetch_add(&s->pages_bg, 1);
	return ret;
}

int background(struct source *s)
{
	uint64_t cursor = 0, low = 0, since_throttle = 0;
	struct pacer pc = { .t0 = now_ns() };
	int ret;

	while (!atomic_load(&s->failed)) {
		uint64_t page, h;

		if (atomic_load(&s->paused))
			return -ECONNABORTED;
		if (!huge(s))
			test_cut(s);	/* 2 MiB pages: in background_huge() */

		if (s->precopy_phase && umemd_switch_requested)
			break;	/* the rest goes in postcopy */

		ret = drain_requests(s);
		if (ret)
			return ret;
		h = atomic_exchange(&s->hint, 0);
		if (h && h - 1 < s->pages)
			cursor = h - 1;
		if (!next_unsent(s, &cursor, &low))
			break;
		page = cursor;
		if (!claim(s, page))
			continue;
		if (s->zero_ok && page_is_zero(s, page_data(s, page))) {
			uint32_t n = 1, b;
			uint64_t off;

			proto_page_to_block(&s->lay, page, &b, &off);
			while (n < PROTO_MAX_RUN && page + n < s->pages &&
			       page + n < s->lay.blocks[b].base_page + s->lay.blocks[b].pages &&
			       page_is_zero(s, page_data(s, page + n)) &&
			       claim(s, page + n))
				n++;
			ret = out_reserve(s, PROTO_HDR_LEN + 16);
			if (ret)
				return ret;
			s->outlen += proto_enc_run(s->out + s->outlen, MSG_ZERO,
						   &s->lay, page, n);
			atomic_fetch_add(&s->pages_zero, n);
			atomic_fetch_add(&s->pages_bg, n);
			ret = pace(s, &pc, PROTO_HDR_LEN + 16);
			if (ret)
				return ret;
			if (s->hash && s->precopy_phase) {
				static const uint8_t zero[PROTO_PAGE_SIZE];
				uint64_t hz = page_hash(zero);

				for (uint32_t i = 0; i < n; i++)
					s->hash[page + i] = hz;
			}
			cursor = page + n;
		} else if (huge(s)) {
			ret = background_huge(s, &pc, page);
			if (ret)
				return ret;
			cursor = page + 1;
		} else {
			ret = out_reserve(s, PROTO_HDR_LEN + 16 + PROTO_PAGE_SIZE);
			if (ret)
				return ret;
			s->outlen += proto_enc_page_hdr(s->out + s->outlen, &s->lay, page);
			memcpy(s->out + s->outlen, page_data(s, page), PROTO_PAGE_SIZE);
			if (s->hash && s->precopy_phase)
				s->hash[page] = page_hash(s->out + s->outlen);
			s->outlen += PROTO_PAGE_SIZE;
			atomic_fetch_add(&s->pages_bg, 1);
			ret = pace(s, &pc, PROTO_HDR_LEN + 16 + PROTO_PAGE_SIZE);
			if (ret)
				return ret;
			cursor = page + 1;
		}
		if (s->o->throttle_pages && ++since_throttle >= s->o->throttle_pages) {
			since_throttle = 0;
			ret = flush_out(s);
			if (ret)
				return ret;
			usleep(1000);
		}
	}
	return flush_out(s);
}

/* ---- return path ---- */

void *src_rp_thread(void *arg)
{
	struct source *s = arg;
	uint8_t *buf = malloc(PROTO_MAX_FRAME);
	char err[256];

	if (!buf) {
		src_fail(s, "out of memory");
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
			src_fail(s, "return path: %s%s", err,
				 ret == -EPIPE ? " before the destination said DONE (destination died?)" : "");
			break;
		}
		ret = proto_decode(type, buf, len, &s->lay, &m, err, sizeof(err));
		if (ret) {
			src_fail(s, "return path: %s", err);
			break;
		}
		switch (type) {
		case MSG_REQ:
			atomic_fetch_add(&s->requests, m.u.page.count);
			queue_push(s, m.u.page.page, m.u.page.count);
			if (s->o->bg_follow)
				atomic_store(&s->hint, m.u.page.page + m.u.page.count + 1);
			break;
		case MSG_ACK:
			atomic_store(&s->acked, m.u.pages);
			break;
		case MSG_DONE:
			if (m.u.pages != s->pages) {
				src_fail(s, "destination said DONE with %llu of %llu pages",
					 (unsigned long long)m.u.pages,
					 (unsigned long long)s->pages);
				goto out;
			}
			atomic_store(&s->done, true);
			atomic_store(&s->stopping, true);
			pthread_mutex_lock(&s->qlock);
			pthread_cond_broadcast(&s->qcond);
			pthread_mutex_unlock(&s->qlock);
			goto out;
		case MSG_ERROR:
			src_fail(s, "destination reported error %u: %s",
				 m.u.error.code, m.u.error.text);
			goto out;
		default:
			src_fail(s, "return path: unexpected %s frame",
				 proto_type_name(type));
			goto out;
		}
	}
out:
	free(buf);
	return NULL;
}

/* ---- handshake ---- */

static int open_conn(struct source *s, int lfd)
{
	if (lfd >= 0)
		return net_accept(lfd, s->stop_fd, s->o->link_timeout_ms);
	return net_connect(s->o->connect, s->o->connect_wait_ms, s->stop_fd,
			   s->o->link_timeout_ms);
}

static int handshake(struct source *s, int lfd)
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
	h.page_size = s->lay.page_size;
	h.ram_size = s->pages * s->lay.page_size;
	h.features = PROTO_F_KNOWN & ~(s->o->recover ? 0 : PROTO_F_RECOVER);
	h.session = s->session;
	h.layout = s->lay;
	n = proto_enc_hello(buf, OUTBUF_SIZE, &h);
	ret = chan_write(&s->main, buf, n, NULL, 0);
	if (ret) {
		src_fail(s, "sending HELLO: %s", chan_strerror(ret));
		return ret;
	}
	ret = chan_read_frame(&s->main, &type, buf, &len, err, sizeof(err));
	if (!ret)
		ret = proto_decode(type, buf, len, &s->lay, &m, err, sizeof(err));
	if (ret) {
		src_fail(s, "handshake: %s", err);
		return ret;
	}
	if (type == MSG_ERROR) {
		src_fail(s, "destination refused the migration (error %u): %s",
			 m.u.error.code, m.u.error.text);
		return -EPROTO;
	}
	if (type != MSG_HELLO_ACK) {
		src_fail(s, "handshake: expected HELLO_ACK, got %s",
			 proto_type_name(type));
		return -EPROTO;
	}
	if (m.u.ack.version < PROTO_VERSION_MIN || m.u.ack.version > h.version_max ||
	    m.u.ack.page_size != h.page_size || m.u.ack.session != s->session ||
	    (m.u.ack.features & ~h.features)) {
		src_fail(s, "handshake: bad HELLO_ACK (version %u, page size %u, features %#llx, we speak %u..%u with %u-byte pages and offered %#llx)",
			 m.u.ack.version, m.u.ack.page_size,
			 (unsigned long long)m.u.ack.features, PROTO_VERSION_MIN,
			 h.version_max, h.page_size, (unsigned long long)h.features);
		return -EPROTO;
	}
	if (huge(s) && m.u.ack.version < PROTO_VERSION_HUGE) {
		src_fail(s, "handshake: the destination chose protocol version %u, but %u-byte pages need version %u",
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
	if (s->o->device_state && !(m.u.ack.features & PROTO_F_DEVSTATE)) {
		src_fail(s, "--device-state: the destination does not take device state (no DEVSTATE feature)");
		return -EPROTO;
	}
	s->sum->preempt = s->preempt;
	if (s->preempt) {
		ret = open_conn(s, lfd);
		if (ret < 0) {
			src_fail(s, "opening the preempt channel: %s", strerror(-ret));
			return ret;
		}
		chan_attach(&s->pre, ret);
		n = proto_enc_preempt_hello(buf, s->version, s->session);
		ret = chan_write(&s->pre, buf, n, NULL, 0);
		if (ret) {
			src_fail(s, "preempt channel: %s", chan_strerror(ret));
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
		src_fail(s, "sending postcopy commands: %s", chan_strerror(ret));
	return ret;
}

static void *progress_thread(void *arg)
{
	struct source *s = arg;

	while (!atomic_load(&s->stopping) && !atomic_load(&s->failed)) {
		fprintf(stderr, "\rumemd: sent %llu/%llu pages, %llu requests, acked %llu   ",
			(unsigned long long)atomic_load(&s->nsent),
			(unsigned long long)s->pages,
			(unsigned long long)atomic_load(&s->requests),
			(unsigned long long)atomic_load(&s->acked));
		usleep(250000);
	}
	fprintf(stderr, "\n");
	return NULL;
}

static void src_cancel(void *arg)
{
	struct source *s = arg;

	atomic_store(&s->cancelled, true);
	src_fail(s, "cancelled by the operator (SIGTERM/SIGINT)");
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
		src_fail(s, "cannot start the return-path thread: %s", strerror(err));
		return -1;
	}
	*rp_started = true;
	if (!s->preempt)
		return 0;
	err = pthread_create(pre, NULL, src_preempt_thread, s);
	if (err) {
		src_fail(s, "cannot start the preempt thread: %s", strerror(err));
		return -1;
	}
	*pre_started = true;
	return 0;
}

int umemd_source(const struct umemd_opts *o, struct umemd_summary *sum)
{
	struct cancel_watch cw;
	pthread_t cancel_th;
	bool cancel_on = false;
	struct source s;
	struct dirty dt = { .pagemap_fd = -1 };
	pthread_t rp, pre, prog;
	bool rp_started = false, pre_started = false, prog_started = false;
	uint64_t t0 = now_ns(), one = 1;
	int lfd = -1, ret, err;

	memset(&s, 0, sizeof(s));
	s.o = o;
	s.sum = sum;
	sum->role = "source";
	pthread_mutex_init(&s.qlock, NULL);
	pthread_mutex_init(&s.elock, NULL);
	pthread_cond_init(&s.qcond, NULL);
	s.stop_fd = eventfd(0, EFD_CLOEXEC);
	chan_init(&s.main, "main", s.stop_fd);
	chan_init(&s.pre, "preempt", s.stop_fd);
	s.out = malloc(OUTBUF_SIZE);
	if (getrandom(&s.session, sizeof(s.session), 0) != sizeof(s.session))
		s.session = t0;
	if (s.stop_fd < 0 || !s.out) {
		src_fail(&s, s.stop_fd < 0 ? "eventfd: %s" : "%s",
			 strerror(s.stop_fd < 0 ? errno : ENOMEM));
		goto out;
	}
	cw = (struct cancel_watch){ o->cancel_fd, s.stop_fd, src_cancel, &s };
	if (o->cancel_fd >= 0) {
		err = pthread_create(&cancel_th, NULL, cancel_watch, &cw);
		if (err) {
			src_fail(&s, "cannot watch --cancel-fd: %s", strerror(err));
			goto out;
		}
		cancel_on = true;
	}
	if (map_ram(&s))
		goto out;
	if (o->pid && precopy_setup(&s, &dt))
		goto out;
	s.sent = calloc(s.pages, 1);
	s.qcap = 65536;
	s.q = calloc(s.qcap, sizeof(uint64_t));
	if (!s.sent || !s.q) {
		src_fail(&s, "out of memory");
		goto out;
	}
	if (o->listen) {
		lfd = net_listen(o->listen);
		if (lfd < 0) {
			src_fail(&s, "listen on %s: %s", o->listen, strerror(-lfd));
			goto out;
		}
	}
	ret = open_conn(&s, lfd);
	if (ret < 0) {
		src_fail(&s, "%s %s: %s", lfd >= 0 ? "accept on" : "connect to",
			 lfd >= 0 ? o->listen : o->connect, strerror(-ret));
		goto out;
	}
	chan_attach(&s.main, ret);
	t0 = now_ns();
	if (handshake(&s, lfd))
		goto out;
	if (src_start_threads(&s, &rp, &rp_started, &pre, &pre_started))
		goto out;
	/* Progress lines are a convenience: go on without them. */
	err = o->progress ? pthread_create(&prog, NULL, progress_thread, &s) : 0;
	if (err)
		log_msg("no progress lines: cannot start their thread: %s", strerror(err));
	else if (o->progress)
		prog_started = true;
	ret = 0;
	if ((o->pid || o->stop_cmd) && precopy_and_switch(&s, &dt))
		ret = -1;	/* reason recorded */
	while (!ret) {
		ret = background(&s);
		if (atomic_load(&s.failed)) {
			/* reason already recorded */
		} else if (ret) {
			if (!src_pause(&s, "main channel", ret))
				src_fail(&s, "main channel: %s%s", chan_strerror(ret), gone(ret));
		} else {
			uint8_t end[PROTO_HDR_LEN];

			ret = chan_write(&s.main, end, proto_enc_empty(end, MSG_END), NULL, 0);
			if (ret && !src_pause(&s, "sending END", ret))
				src_fail(&s, "sending END: %s%s", chan_strerror(ret), gone(ret));
		}
		/* Wait for DONE (rp thread exits), a failure or a pause. */
		if (rp_started)
			pthread_join(rp, NULL);
		rp_started = false;
		ret = -1;
		if (atomic_load(&s.paused) && !atomic_load(&s.failed) && !atomic_load(&s.done))
			ret = src_resume(&s, lfd, &rp, &rp_started, &pre, &pre_started);
	}
out:
	atomic_store(&s.stopping, true);
	if (atomic_load(&s.failed) || !atomic_load(&s.done)) {
		if (!atomic_load(&s.failed))
			src_fail(&s, "return path closed before DONE");
		if (s.main.fd >= 0) {
			uint8_t e[PROTO_HDR_LEN + 8 + PROTO_MAX_TEXT];

			/* Best effort: tell the destination why we stop. */
			shutdown(s.main.fd, SHUT_RD);
			if (!strstr(s.err, "destination"))
				chan_write(&s.main, e,
					   proto_enc_error(e, atomic_load(&s.cancelled) ?
							   PROTO_E_CANCEL : PROTO_E_LOCAL, s.err),
					   NULL, 0);
			shutdown(s.main.fd, SHUT_RDWR);
		}
		if (s.pre.fd >= 0)
			shutdown(s.pre.fd, SHUT_RDWR);
	}
	if (write(s.stop_fd, &one, sizeof(one)) < 0) {
		/* cannot happen */
	}
	pthread_mutex_lock(&s.qlock);
	pthread_cond_broadcast(&s.qcond);
	pthread_mutex_unlock(&s.qlock);
	if (rp_started)
		pthread_join(rp, NULL);
	if (pre_started)
		pthread_join(pre, NULL);
	if (prog_started)
		pthread_join(prog, NULL);
	if (cancel_on)
		pthread_join(cancel_th, NULL);
	sum->ok = !atomic_load(&s.failed) && atomic_load(&s.done);
	snprintf(sum->error, sizeof(sum->error), "%s", s.err);
	sum->total_ns = now_ns() - t0;
	sum->pages = s.pages;
	sum->pages_bg = atomic_load(&s.pages_bg);
	sum->pages_req = atomic_load(&s.pages_req);
	sum->pages_zero = atomic_load(&s.pages_zero);
	sum->requests = atomic_load(&s.requests);
	sum->requests_dup = atomic_load(&s.req_dup);
	sum->bytes_main = s.main.bytes_out;
	sum->bytes_preempt = s.pre.bytes_out;
	sum->page_size = s.lay.page_size;
	sum->pieces = atomic_load(&s.pieces);
	sum->interrupts = atomic_load(&s.interrupts);
	sum->req_partial = atomic_load(&s.req_partial);
	chan_close(&s.main);
	chan_close(&s.pre);
	if (lfd >= 0)
		close(lfd);
	for (uint32_t i = 0; i < s.lay.nblocks; i++)
		if (s.blk[i])
			munmap((void *)s.blk[i], s.lay.blocks[i].length);
	if (s.stop_fd >= 0)
		close(s.stop_fd);
	dirty_close(&dt);
	free(s.sent);
	free(s.hash);
	free(s.q);
	free(s.out);
	return sum->ok ? 0 : -1;
}
