// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --outgoing: pages out to the destination.  The background stream
 * on the main connection: the next page nobody took (claims.h) from a
 * cursor that --bg-follow moves next to the last request, zero runs as
 * ZERO, 2 MiB pages as PIECE frames, paced by --max-bandwidth.  Requested
 * pages go ahead of it: on the preempt channel, or without one on main
 * between background pages and pieces.  Each precopy round is one run of
 * the background stream with precopy_phase set.  --test-cut breaks the
 * link on purpose.
 *
 * Threads:
 *   main      background(): claims and sends background pages; without
 *             preempt it also serves the request queue.
 *   preempt   (with PROTO_F_PREEMPT) src_preempt_thread(): pops the
 *             request queue and sends each page whole on the preempt
 *             channel.
 *
 * Every page is sent once: a sender claims it first (an atomic exchange);
 * the loser of a race skips it.  That is what keeps a page from
 * travelling on both channels.  The exception (feature RESEND): a
 * requested 4 KiB page that the background stream took already is still
 * on its way behind the stream, so the preempt thread sends it again at
 * once and the destination drops whichever copy comes second; unless
 * (feature PROGRESS) the destination's reader is within --resend-gap of
 * the stream's copy (bytes at the stream's rate), which then comes first.
 *
 * The background stream's page data is not copied: frames go out with
 * one sendmsg() per OUTBUF_SIZE whose iovecs point at the RAM mapping
 * (headers in out); only --dirty hash precopy rounds copy the page, so
 * that the bytes sent are the bytes hashed.
 *
 * 2 MiB pages (--page-size 2m, protocol v3) travel as PIECE frames of at
 * most 64 KiB, in order, all on the channel whose sender claimed the
 * page.  Between two pieces of a background page the pacer may sleep;
 * requested pages go out meanwhile (preempt thread, or main itself
 * without preempt, which drains the queue between pieces), so a request
 * interrupts a partly sent huge page and the rest follows after it.  A
 * request for the page being sent is a duplicate (it is claimed), but it
 * makes the rest of that page urgent: no more pacing until it is out.
 *
 * Locks: none of its own.  The channels serialise their writers; out,
 * outlen, iov, niov, qbytes and the pacer belong to the main thread; bg_cur, bg_urgent,
 * the sent_at entries, dest_pos and the counters are atomics.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "dirty.h"
#include "source.h"
#include "util.h"

/* One requested page, whole: a 2 MiB page as all its pieces, on @c. */
static int send_page_now(struct source *s, struct chan *c, uint64_t page)
{
	uint8_t hdr[PROTO_HDR_LEN + 16];
	const uint8_t *d = ram_page(&s->ram, page);

	if (s->zero_ok && ram_zero(&s->ram, d)) {
		size_t n = proto_enc_run(hdr, MSG_ZERO, &s->ram.lay, page, 1);

		atomic_fetch_add(&s->pages_zero, 1);
		return chan_write(c, hdr, n, NULL, 0);
	}
	if (src_huge(s)) {
		for (uint32_t off = 0; off < s->ram.lay.page_size; off += PROTO_PIECE_MAX) {
			size_t n = proto_enc_piece_hdr(hdr, &s->ram.lay, page, off,
						       PROTO_PIECE_MAX);
			int ret = chan_write(c, hdr, n, d + off, PROTO_PIECE_MAX);

			if (ret)
				return ret;
			atomic_fetch_add(&s->pieces, 1);
		}
		return 0;
	}
	return chan_write(c, hdr, proto_enc_page_hdr(hdr, &s->ram.lay, page), d,
			  PROTO_PAGE_SIZE);
}

static void rate_sample(struct source *s);

static int flush_out(struct source *s)
{
	int ret = 0;

	if (s->niov)
		ret = chan_writev(&s->main, s->iov, s->niov);
	if (s->sent_at)
		rate_sample(s);
	s->outlen = 0;
	s->qbytes = 0;
	s->niov = 0;
	return ret;
}

/*
 * Room for a frame: @arena bytes of header (or copied data) in out and
 * two iovecs; flushes first if either is short or OUTBUF_SIZE bytes are
 * queued already.
 */
static int out_reserve(struct source *s, size_t arena)
{
	if (s->outlen + arena > OUTBUF_SIZE || s->niov + 2 > OUT_IOV ||
	    s->qbytes >= OUTBUF_SIZE)
		return flush_out(s);
	return 0;
}

/* @n bytes just encoded at out + outlen join the stream. */
static void out_commit(struct source *s, size_t n)
{
	struct iovec *last = s->niov ? &s->iov[s->niov - 1] : NULL;
	uint8_t *at = s->out + s->outlen;

	if (last && (uint8_t *)last->iov_base + last->iov_len == at)
		last->iov_len += n;
	else
		s->iov[s->niov++] = (struct iovec){ at, n };
	s->outlen += n;
	s->qbytes += n;
}

/* @n bytes of the RAM mapping join the stream, not copied. */
static void out_ref(struct source *s, const uint8_t *d, size_t n)
{
	s->iov[s->niov++] = (struct iovec){ (void *)d, n };
	s->qbytes += n;
}

/*
 * PROGRESS: the sent_at word of a page whose frame ends at byte @pos of
 * the main connection: page + 1 in the top 29 bits (PROTO_MAX_RAM has
 * 2^28 4 KiB pages), pos / 512 in the other 35 (16 TiB of one
 * connection).  One word, so a reader never sees half an update.
 */
#define SENT_AT_SHIFT	35
#define SENT_AT_MASK	((1ULL << SENT_AT_SHIFT) - 1)

static uint64_t sent_at_word(uint64_t page, uint64_t pos)
{
	return (page + 1) << SENT_AT_SHIFT | ((pos >> 9) & SENT_AT_MASK);
}

/* Pages [page, page + n) were just queued on main, their frame last. */
static void note_sent(struct source *s, uint64_t page, uint32_t n)
{
	uint64_t pos;

	if (!s->sent_at)
		return;
	pos = chan_write_pos(&s->main) + s->qbytes;
	for (uint32_t i = 0; i < n; i++)
		atomic_store_explicit(&s->sent_at[(page + i) % SENT_AT_SLOTS],
				      sent_at_word(page + i, pos), memory_order_relaxed);
}

/*
 * The main stream's rate, bytes per second, over at least RATE_WINDOW:
 * what the socket took, which in a steady stream is what the path to the
 * destination's reader drains.  Sampled after each flush (main thread).
 */
#define RATE_WINDOW	(20 * 1000000ULL)

static void rate_sample(struct source *s)
{
	uint64_t now = now_ns(), pos = chan_write_pos(&s->main);

	if (!s->rate_t || pos < s->rate_pos) {	/* first, or a new connection */
		s->rate_t = now;
		s->rate_pos = pos;
		return;
	}
	if (now - s->rate_t < RATE_WINDOW)
		return;
	atomic_store_explicit(&s->main_rate,
			      (uint64_t)((double)(pos - s->rate_pos) * 1e9 /
					 (double)(now - s->rate_t)),
			      memory_order_relaxed);
	s->rate_t = now;
	s->rate_pos = pos;
}

/*
 * RESEND for @page, whose copy the background stream took: worth it
 * unless PROGRESS says that copy is at most --resend-gap away from what
 * the destination had read of main when it asked (bytes between them at
 * the stream's rate): its reader gets there about as soon as a copy
 * sent now on the other channel would arrive.  Unknown (no PROGRESS or
 * rate yet, or the page is out of the table): send.
 */
static bool resend_worth_it(struct source *s, uint64_t page)
{
	uint64_t w, pos, at, rate;

	if (!s->sent_at || !s->o->resend_gap_ms)
		return true;
	w = atomic_load_explicit(&s->sent_at[page % SENT_AT_SLOTS], memory_order_relaxed);
	at = atomic_load_explicit(&s->dest_pos, memory_order_relaxed);
	rate = atomic_load_explicit(&s->main_rate, memory_order_relaxed);
	if (w >> SENT_AT_SHIFT != page + 1 || !at || !rate) {
		if (s->o->verbose > 1)
			log_msg("request for page %llu: %s unknown, sent again",
				(unsigned long long)page,
				w >> SENT_AT_SHIFT != page + 1 ? "its position on main" :
				!at ? "the destination's position" : "the stream's rate");
		return true;
	}
	pos = (w & SENT_AT_MASK) << 9;
	if (s->o->verbose > 1)
		log_msg("request for page %llu: its frame ends at byte %llu of main, the destination had read %llu, stream %llu bytes/s",
			(unsigned long long)page, (unsigned long long)pos,
			(unsigned long long)at, (unsigned long long)rate);
	return pos > at && (double)(pos - at) * 1000.0 / (double)rate > s->o->resend_gap_ms;
}

/* A requested page: on the preempt channel, or (no preempt) main. */
static int serve_request(struct source *s, struct chan *c, uint64_t page)
{
	if (!claims_take(&s->sent, page)) {
		atomic_fetch_add(&s->req_dup, 1);
		if (atomic_load(&s->bg_cur) == page + 1) {
			/* Partly sent: the rest goes next on main, unpaced. */
			atomic_store(&s->bg_urgent, true);
			atomic_fetch_add(&s->req_partial, 1);
			return 0;
		}
		/*
		 * The background stream took it: it is still on its way (in
		 * our out queue, a socket buffer, the destination's receive
		 * buffer), since the destination asks only for pages it lacks.
		 * Behind up to megabytes of the main stream; so, with RESEND,
		 * send it again now on the preempt channel and let the
		 * destination drop whichever copy comes second.  The RAM no
		 * longer changes (requests come in postcopy), so both copies
		 * hold the same data.  2 MiB pages keep the urgent path above.
		 */
		if (s->resend && c == &s->pre && !src_huge(s)) {
			if (!resend_worth_it(s, page)) {
				atomic_fetch_add(&s->req_near, 1);
				return 0;
			}
			atomic_fetch_add(&s->req_resent, 1);
			return send_page_now(s, c, page);
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

	thread_name("umemd-pre-out");
	while (reqq_pop(&s->reqs, &page, true)) {
		int ret;

		if (s->o->test_preempt_delay_ms) {
			struct timespec ts = { s->o->test_preempt_delay_ms / 1000,
					       (s->o->test_preempt_delay_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
		ret = serve_request(s, &s->pre, page);

		/*
		 * Once END is out every page is on its way on main, and the
		 * destination may finish and close both channels while a
		 * page sent again (RESEND) is still going out here.  The
		 * return path decides then: DONE, or a closed link without
		 * it (a failure or a pause, as without this thread).
		 */
		if (ret == -EPIPE && atomic_load(&s->end_sent)) {
			if (s->o->verbose)
				log_msg("preempt channel closed after END: the return path decides");
			break;
		}
		if (ret) {
			if (!src_pause(s, "preempt channel", ret))
				session_fail(&s->ss, "preempt channel: %s%s", chan_strerror(ret), gone(ret));
			break;
		}
	}
	return NULL;
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
	while ((now = now_ns()) < due && !atomic_load(&s->ss.failed) &&
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
	    atomic_load(&s->ss.failed) || atomic_load(&s->paused))
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
	while (reqq_pop(&s->reqs, &page, false)) {
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
	const uint8_t *d = ram_page(&s->ram, page);
	int ret = 0;

	atomic_store(&s->bg_urgent, false);
	atomic_store(&s->bg_cur, page + 1);
	for (uint32_t off = 0; off < s->ram.lay.page_size && !ret; off += PROTO_PIECE_MAX) {
		if (off) {
			ret = drain_requests(s);
			if (ret)
				break;
		}
		if (off == s->ram.lay.page_size / 2)
			test_cut(s);	/* 2 MiB: the link breaks inside a page */
		ret = out_reserve(s, PROTO_HDR_LEN + 16);
		if (ret)
			break;
		out_commit(s, proto_enc_piece_hdr(s->out + s->outlen, &s->ram.lay, page,
						  off, PROTO_PIECE_MAX));
		out_ref(s, d + off, PROTO_PIECE_MAX);
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

	while (!atomic_load(&s->ss.failed)) {
		uint64_t page, h;

		if (atomic_load(&s->paused))
			return -ECONNABORTED;
		if (!src_huge(s))
			test_cut(s);	/* 2 MiB pages: in background_huge() */

		if (s->precopy_phase && umemd_switch_requested)
			break;	/* the rest goes in postcopy */

		ret = drain_requests(s);
		if (ret)
			return ret;
		h = atomic_exchange(&s->hint, 0);
		if (h && h - 1 < s->ram.pages)
			cursor = h - 1;
		if (!claims_next(&s->sent, &cursor, &low))
			break;
		page = cursor;
		if (!claims_take(&s->sent, page))
			continue;
		if (s->zero_ok && ram_zero(&s->ram, ram_page(&s->ram, page))) {
			uint32_t n = 1, b;
			uint64_t off;

			proto_page_to_block(&s->ram.lay, page, &b, &off);
			while (n < PROTO_MAX_RUN && page + n < s->ram.pages &&
			       page + n < s->ram.lay.blocks[b].base_page + s->ram.lay.blocks[b].pages &&
			       ram_zero(&s->ram, ram_page(&s->ram, page + n)) &&
			       claims_take(&s->sent, page + n))
				n++;
			ret = out_reserve(s, PROTO_HDR_LEN + 16);
			if (ret)
				return ret;
			out_commit(s, proto_enc_run(s->out + s->outlen, MSG_ZERO,
						    &s->ram.lay, page, n));
			note_sent(s, page, n);
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
		} else if (src_huge(s)) {
			ret = background_huge(s, &pc, page);
			if (ret)
				return ret;
			cursor = page + 1;
		} else {
			bool hash = s->hash && s->precopy_phase;

			ret = out_reserve(s, PROTO_HDR_LEN + 16 + (hash ? PROTO_PAGE_SIZE : 0));
			if (ret)
				return ret;
			out_commit(s, proto_enc_page_hdr(s->out + s->outlen, &s->ram.lay, page));
			if (hash) {
				/*
				 * --dirty hash: the page still changes; send the
				 * very bytes hashed (a copy), not the mapping.
				 */
				memcpy(s->out + s->outlen, ram_page(&s->ram, page), PROTO_PAGE_SIZE);
				s->hash[page] = page_hash(s->out + s->outlen);
				out_commit(s, PROTO_PAGE_SIZE);
			} else {
				out_ref(s, ram_page(&s->ram, page), PROTO_PAGE_SIZE);
			}
			note_sent(s, page, 1);
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
