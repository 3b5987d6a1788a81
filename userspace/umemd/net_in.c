// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --incoming: pages in from the source.  The main stream
 * (dest_main_loop(): the postcopy state machine of state.c steps on each
 * frame; ADVISE, DISCARD, LISTEN starts the fault thread, DEVICE_STATE,
 * RUN passed on to the VMM, END), the preempt channel's reader
 * (dest_preempt_thread()), and on both the pages: PAGE and ZERO frames,
 * and PIECE frames assembled into 2 MiB pages.  Each page is claimed in
 * the region first (a second copy is a protocol error, except of a page
 * we requested with RESEND: dropped, or, when main's copy is still
 * queued for its batch, installed at once in its place), then stored
 * through the page sink (pages.h), or, for the main stream's PAGE
 * frames, batched: installed from the receive buffer without a copy,
 * one rs_put_vec() per batch.
 * ACK every ACK_EVERY pages; once END has arrived and every page is
 * present, DONE (dest_check_complete()).
 *
 * Threads:
 *   main     dest_main_loop(), the only reader of the main connection.
 *   preempt  dest_preempt_thread(), the only reader of the preempt
 *            connection; pages only.
 * Either may complete the migration.  Locks: slock guards state and
 * end_seen; each reader owns its PIECE slots (slots[0] main, slots[1]
 * preempt); batch and nbatch belong to main; the channels serialise
 * their writers (ACK, DONE, ERROR from any thread); the counters are
 * atomics.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chan.h"
#include "dest.h"
#include "libumem.h"
#include "util.h"
#include "vmmsock.h"

#define ACK_EVERY	4096

enum pc_state get_state(struct dest *d)
{
	enum pc_state s;

	pthread_mutex_lock(&d->slock);
	s = d->state;
	pthread_mutex_unlock(&d->slock);
	return s;
}

/* ---- completion ---- */

void dest_check_complete(struct dest *d)
{
	uint8_t f[PROTO_HDR_LEN + 8];
	bool now = false;
	int ret;

	pthread_mutex_lock(&d->slock);
	if (d->end_seen && rs_received(&d->rs) == d->pages && !d->complete &&
	    !atomic_load(&d->ss.failed)) {
		d->complete = true;
		d->t_done = now_ns();
		now = true;
	}
	pthread_mutex_unlock(&d->slock);
	if (!now)
		return;
	/*
	 * The region dies with us: a VMM that has not taken it yet (attached
	 * on the socket, or mapped the node) would never get its RAM.  Hold
	 * DONE until one has, for --vmm-wait (SIGTERM gives up).
	 */
	ret = vmm_hold(&d->rs, "DONE");
	if (ret == -ETIMEDOUT) {
		session_fail(&d->ss, "no VMM took the region within --vmm-wait %d s: its RAM is dropped",
			     d->o->vmm_wait_ms / 1000);
		return;
	}
	if (ret)
		return;
	atomic_store(&d->ss.finished, true);
	chan_write(&d->main, f, proto_enc_u64(f, MSG_DONE, d->pages), NULL, 0);
	vmm_notify(&d->rs, VMM_DONE, "all pages present");
	session_stop(&d->ss);
}

/* ---- pages ---- */

static const char *where(struct dest *d, uint64_t page, char *buf, size_t len)
{
	uint32_t b = 0;
	uint64_t off = 0;

	proto_page_to_block(&d->lay, page, &b, &off);
	snprintf(buf, len, "page %llu (block %s offset %#llx)",
		 (unsigned long long)page, d->lay.blocks[b].name,
		 (unsigned long long)off);
	return buf;
}

/*
 * @page is not missing: with RESEND the source sends a requested page
 * again on the preempt channel when the first copy is still on its way
 * on main, so a second copy of a page we requested is dropped (the RAM
 * no longer changes in postcopy: both copies are the same; the first one
 * wins, is installed and counted once).  Any other second copy is a
 * protocol error, found before anything is written.
 */
static int not_missing(struct dest *d, struct chan *c, uint64_t page, const char *what)
{
	char w[128];

	if (d->resend && rs_requested(&d->rs, page)) {
		atomic_fetch_add(&d->resent, 1);
		if (c == &d->main)	/* the copy sent again came first */
			atomic_fetch_add(&d->resent_first, 1);
		return 0;
	}
	session_fail(&d->ss, "duplicate %s for %s on the %s channel", what,
		     where(d, page, w, sizeof(w)), c->name);
	return -EPROTO;
}

/* Claim @count missing pages for an install: a second copy is an error. */
static int claim(struct dest *d, struct chan *c, uint64_t page, uint32_t count,
		 const char *what)
{
	uint64_t at;
	char w[128];

	if (!rs_claim(&d->rs, page, count, &at))
		return 0;
	session_fail(&d->ss, "duplicate %s for %s on the %s channel", what,
		     where(d, at, w, sizeof(w)), c->name);
	return -EPROTO;
}

/*
 * @count pages are in, @stored with them: ACK every ACK_EVERY pages, DONE
 * at the end.
 */
static void stored_pages(struct dest *d, uint64_t stored, uint32_t count)
{
	uint64_t before = stored - count;

	if (stored / ACK_EVERY != before / ACK_EVERY) {
		uint8_t f[PROTO_HDR_LEN + 8];

		chan_write(&d->main, f, proto_enc_u64(f, MSG_ACK, stored), NULL, 0);
	}
	if (stored == d->pages)
		dest_check_complete(d);
}

/*
 * Requested @page, queued in main's batch, taken over by the copy sent
 * again (@data, or NULL for zeros): in now, counted here, not by the
 * batch.
 */
static int take_over(struct dest *d, uint64_t page, const uint8_t *data)
{
	uint64_t stored;
	char w[128];
	int ret = rs_put_taken(&d->rs, page, data, &stored);

	if (ret) {
		session_fail(&d->ss, "installing %s: %s", where(d, page, w, sizeof(w)),
			     umem_strerror(ret));
		return ret;
	}
	/* main's copy, queued first, is the second copy dropped */
	atomic_fetch_add(&d->resent, 1);
	atomic_fetch_add(&d->resent_taken, 1);
	stored_pages(d, stored, 1);
	return 0;
}

/*
 * Install @count pages at @page (@data: one page, or NULL for zeros):
 * each run of missing pages with one call; pages already here must be
 * second copies of requested ones (not_missing()), which are skipped.
 */
static int install(struct dest *d, struct chan *c, uint64_t page,
		   uint32_t count, const uint8_t *data)
{
	const char *what = data ? "PAGE" : "ZERO";
	uint64_t stored;
	char w[128];
	int ret;

	for (uint32_t i = 0; i < count;) {
		uint32_t n = rs_claim_run(&d->rs, page + i, count - i);

		if (!n && d->resend && rs_requested(&d->rs, page + i) &&
		    rs_take_queued(&d->rs, page + i)) {
			ret = take_over(d, page + i, data);
			if (ret)
				return ret;
			i++;
			continue;
		}
		if (!n) {
			ret = not_missing(d, c, page + i, what);
			if (ret)
				return ret;
			i++;
			continue;
		}
		ret = d->sink->put(d->sink, page + i, n, data, &stored);
		if (ret) {
			session_fail(&d->ss, "installing %s (+%u): %s",
				     where(d, page + i, w, sizeof(w)), n - 1,
				     umem_strerror(ret));
			return ret;
		}
		stored_pages(d, stored, n);
		i += n;
	}
	return 0;
}

/*
 * The main stream's PAGE frames, batched: while whole frames sit in the
 * receive buffer, each page is claimed and queued pointing at its data
 * there (no copy in umemd); the batch goes in with one rs_put_vec() (one
 * UMEM_COPY_VEC) when it is full, when the next frame is not a buffered
 * PAGE, and always before the buffer is read into again.  Main thread
 * only.  The pages wait QUEUED (region_sink.h) until then, which is
 * microseconds unless this thread loses its CPU meanwhile: a fault on
 * one is requested, and the copy sent again on the preempt channel takes
 * the page over and goes in at once (install()), so a requested page
 * never waits for the batch.
 */
static int batch_flush(struct dest *d)
{
	uint32_t n = d->nbatch, counted;
	uint64_t stored;
	char w[128];
	int ret;

	if (!n)
		return 0;
	d->nbatch = 0;
	if (d->o->test_batch_delay_ms) {
		struct timespec ts = { d->o->test_batch_delay_ms / 1000,
				       (d->o->test_batch_delay_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	ret = rs_put_vec(&d->rs, d->batch, n, &stored, &counted);
	if (ret) {
		session_fail(&d->ss, "installing %u pages from %s: %s", n,
			     where(d, d->batch[0].offset / PROTO_PAGE_SIZE, w, sizeof(w)),
			     umem_strerror(ret));
		return ret;
	}
	stored_pages(d, stored, counted);
	return 0;
}

static int batch_add(struct dest *d, uint64_t page, const uint8_t *data)
{
	if (!rs_claim_queued(&d->rs, page))
		return not_missing(d, &d->main, page, "PAGE");
	d->batch[d->nbatch++] = (struct umem_copy_item){
		.offset = page * PROTO_PAGE_SIZE, .src = data,
	};
	/*
	 * A task waits for this page (requested): in now, with what is
	 * queued before it, rather than after the frames behind it.  Its
	 * latency is then measured at its own install, too.
	 */
	if (d->nbatch == DEST_BATCH || rs_requested(&d->rs, page))
		return batch_flush(d);
	return 0;
}

/*
 * A PIECE of a 2 MiB page.  Pieces of one page come in order on one
 * channel; the first claims the page (so a piece on the other channel,
 * or of a page already here, is a duplicate), the last installs the
 * assembled page with one copy.
 */
static int handle_piece(struct dest *d, struct chan *c, const struct proto_msg *m)
{
	struct piece_slot *slots = d->slots[c == &d->pre], *sl = NULL;
	uint32_t ps = d->lay.page_size;
	uint64_t stored;
	char w[128];
	int ret;

	for (int i = 0; i < DEST_SLOTS && !sl; i++)
		if (slots[i].used && slots[i].page == m->u.piece.page)
			sl = &slots[i];
	if (sl && m->u.piece.off != sl->got) {
		session_fail(&d->ss, "PIECE at +%u of %s on the %s channel, expected +%u",
			     m->u.piece.off, where(d, m->u.piece.page, w, sizeof(w)),
			     c->name, sl->got);
		return -EPROTO;
	}
	if (!sl) {
		if (m->u.piece.off) {
			session_fail(&d->ss, "PIECE at +%u of %s on the %s channel without its first piece",
				     m->u.piece.off, where(d, m->u.piece.page, w, sizeof(w)),
				     c->name);
			return -EPROTO;
		}
		for (int i = 0; i < DEST_SLOTS && !sl; i++)
			if (!slots[i].used)
				sl = &slots[i];
		if (!sl) {
			session_fail(&d->ss, "PIECE of %s: more than %d pages partly sent on the %s channel",
				     where(d, m->u.piece.page, w, sizeof(w)), DEST_SLOTS, c->name);
			return -EPROTO;
		}
		ret = claim(d, c, m->u.piece.page, 1, "PIECE");
		if (ret)
			return ret;
		if (!sl->mem) {
			/*
			 * Page aligned, deliberately not 2 MiB aligned: under
			 * TCG a 2 MiB-aligned source and the 2 MiB folio it
			 * is copied into (in the kernel's direct map) share
			 * the slots of the guest's direct-mapped softmmu TLB
			 * and made the install 4-5x slower (benchmarks.md,
			 * "2 MiB pages"); hardware does not care.
			 */
			sl->mem = aligned_alloc(4096, ps + SLOT_SKEW);
			sl->buf = sl->mem ? sl->mem + SLOT_SKEW : NULL;
		}
		if (!sl->buf) {
			session_fail(&d->ss, "out of memory for a %u-byte page buffer", ps);
			return -ENOMEM;
		}
		sl->used = true;
		sl->page = m->u.piece.page;
		sl->got = 0;
		atomic_fetch_add(&d->partial, 1);
	}
	memcpy(sl->buf + sl->got, m->u.piece.data, m->u.piece.len);
	sl->got += m->u.piece.len;
	atomic_fetch_add(&d->pieces, 1);
	if (sl->got < ps)
		return 0;
	ret = d->sink->put(d->sink, sl->page, 1, sl->buf, &stored);
	if (ret) {
		session_fail(&d->ss, "installing %s: %s%s", where(d, sl->page, w, sizeof(w)),
			     umem_strerror(ret),
			     ret != -ENOMEM ? "" : !strcmp(d->o->backend, "umem") ?
			     " (no 2 MiB folio: see alloc_failed in umemctl stats)" :
			     " (no free 2 MiB huge page: reserve them in /proc/sys/vm/nr_hugepages)");
		return ret;
	}
	sl->used = false;
	/* Another page was partly here: this one overtook it on the wire. */
	if (atomic_fetch_sub(&d->partial, 1) > 1)
		atomic_fetch_add(&d->interleaved, 1);
	stored_pages(d, stored, 1);
	return 0;
}

void dest_drop_partial(struct dest *d)
{
	for (int c = 0; c < 2; c++)
		for (int i = 0; i < DEST_SLOTS; i++) {
			struct piece_slot *sl = &d->slots[c][i];

			if (!sl->used)
				continue;
			if (d->verbose)
				log_msg("pause: dropping page %llu, %u of %u bytes received on the %s channel",
					(unsigned long long)sl->page, sl->got, d->lay.page_size,
					c ? "preempt" : "main");
			rs_unclaim(&d->rs, sl->page);
			sl->used = false;
			atomic_fetch_sub(&d->partial, 1);
			atomic_fetch_add(&d->dropped, 1);
		}
}

/* Install a PAGE, ZERO or PIECE frame read from @c. */
static int install_frame(struct dest *d, struct chan *c, uint16_t type,
			 const struct proto_msg *m)
{
	if (type == MSG_PIECE)
		return handle_piece(d, c, m);
	return install(d, c, m->u.page.page, m->u.page.count,
		       type == MSG_PAGE ? m->u.page.data : NULL);
}

static int handle_discard(struct dest *d, const struct proto_msg *m)
{
	for (uint32_t i = 0; i < m->u.discard.count; i++) {
		uint64_t page;
		uint32_t count;
		int ret;

		proto_discard_entry(m, &d->lay, i, &page, &count);
		ret = rs_discard(&d->rs, page, count);
		if (ret) {
			session_fail(&d->ss, "discard: %s", umem_strerror(ret));
			return ret;
		}
	}
	return 0;
}

/* ---- the preempt channel ---- */

void *dest_preempt_thread(void *arg)
{
	struct dest *d = arg;
	uint8_t *buf = malloc(PROTO_MAX_FRAME);
	char err[256];

	thread_name("umemd-pre-in");
	while (buf) {
		struct proto_msg m;
		const uint8_t *p = buf;
		uint16_t type;
		uint32_t len;
		/* A frame already buffered is installed from there (no copy). */
		int ret = chan_peek_frame(&d->pre, &type, &p, &len, err, sizeof(err));

		if (ret > 0)
			ret = 0;
		else if (!ret)
			ret = chan_read_frame(&d->pre, &type, buf, &len, err, sizeof(err));
		if (ret == -ECANCELED || (ret == -EPIPE && atomic_load(&d->ss.finished)))
			break;
		if (ret && (atomic_load(&d->paused) || dest_pause(d, "preempt channel", ret)))
			break;
		if (ret) {
			session_fail(&d->ss, "%s (state %s, %llu/%llu pages received)", err,
				     pc_state_name(get_state(d)),
				     (unsigned long long)rs_received(&d->rs),
				     (unsigned long long)d->pages);
			break;
		}
		ret = proto_decode(type, p, len, &d->lay, &m, err, sizeof(err));
		if (!ret && type != MSG_PAGE && type != MSG_ZERO && type != MSG_PIECE) {
			snprintf(err, sizeof(err), "%s frame on the preempt channel",
				 proto_type_name(type));
			ret = -EPROTO;
		}
		/*
		 * END on the main stream means the source has sent every page
		 * or is still sending the last ones here: the two connections
		 * are not ordered against each other.  So pages stay allowed
		 * on this channel in END; DONE waits for them.
		 */
		if (!ret && !pc_allowed(get_state(d), type) && get_state(d) != PC_END) {
			snprintf(err, sizeof(err), "%s not allowed in state %s",
				 proto_type_name(type), pc_state_name(get_state(d)));
			ret = -EPROTO;
		}
		if (ret) {
			session_fail(&d->ss, "preempt channel: %s", err);
			break;
		}
		if (install_frame(d, &d->pre, type, &m))
			break;
	}
	if (!buf)
		session_fail(&d->ss, "out of memory");
	free(buf);
	return NULL;
}

/* ---- the main stream ---- */

/*
 * At RUN: the device state must be whole; --device-state-out gets it (an
 * empty file if the source sent none) before the VMM hears RUN.
 */
static int device_state_done(struct dest *d, char *err, size_t errlen)
{
	int ret = devstate_whole(&d->ds, err, errlen);

	if (ret)
		return ret;
	d->sum->device_state_bytes = d->ds.got;
	if (!d->o->device_state_out)
		return 0;
	return devstate_write(d->o->device_state_out, d->ds.buf, d->ds.got, d->verbose,
			      err, errlen);
}

int dest_main_loop(struct dest *d, uint8_t *buf)
{
	char err[256];

	for (;;) {
		struct proto_msg m;
		const uint8_t *p = buf;
		uint16_t type;
		uint32_t len;
		int ret = chan_peek_frame(&d->main, &type, &p, &len, err, sizeof(err));

		if (ret > 0) {
			ret = 0;
		} else if (!ret) {
			/* The receive buffer is read into again: the batch first. */
			ret = batch_flush(d);
			if (ret) {
				send_error(d, PROTO_E_LOCAL, d->ss.err);
				return ret;
			}
			ret = chan_read_frame(&d->main, &type, buf, &len, err, sizeof(err));
		}
		if (ret == -ECANCELED)
			return 0;
		if (ret == -EPIPE && atomic_load(&d->ss.finished))
			return 0;
		if (ret && (atomic_load(&d->paused) || dest_pause(d, "main channel", ret)))
			return -ECONNABORTED;
		if (ret) {
			session_fail(&d->ss, "%s%s (state %s, %llu/%llu pages received)", err,
				     ret == -EPIPE ? " (source died?)" : "",
				     pc_state_name(get_state(d)),
				     (unsigned long long)rs_received(&d->rs),
				     (unsigned long long)d->pages);
			if (ret == -EPROTO)
				send_error(d, PROTO_E_PROTO, err);
			return ret;
		}
		if (d->progress)
			atomic_store_explicit(&d->main_pos, chan_read_pos(&d->main),
					      memory_order_relaxed);
		ret = proto_decode(type, p, len, &d->lay, &m, err, sizeof(err));
		if (!ret && type == MSG_ERROR) {
			session_fail(&d->ss, "source reported error %u: %s", m.u.error.code,
				     m.u.error.text);
			return -EPROTO;
		}
		if (!ret) {
			pthread_mutex_lock(&d->slock);
			ret = pc_step(&d->state, type, err, sizeof(err));
			if (!ret && type == MSG_END)
				d->end_seen = true;
			pthread_mutex_unlock(&d->slock);
		}
		if (ret) {
			session_fail(&d->ss, "main channel: %s", err);
			send_error(d, PROTO_E_PROTO, err);
			return ret;
		}
		/* A buffered PAGE joins the batch; anything else goes after it. */
		if (type != MSG_PAGE || p == buf)
			ret = batch_flush(d);
		else
			ret = batch_add(d, m.u.page.page, m.u.page.data);
		if (ret) {
			send_error(d, ret == -EPROTO ? PROTO_E_PROTO : PROTO_E_LOCAL, d->ss.err);
			return ret;
		}
		switch (type) {
		case MSG_PAGE:
			if (p != buf)
				break;	/* batched */
			/* fall through */
		case MSG_ZERO:
		case MSG_PIECE:
			ret = install_frame(d, &d->main, type, &m);
			if (ret) {
				send_error(d, ret == -EPROTO ? PROTO_E_PROTO : PROTO_E_LOCAL,
					   d->ss.err);
				return ret;
			}
			break;
		case MSG_DISCARD:
			ret = handle_discard(d, &m);
			if (ret)
				return ret;
			break;
		case MSG_LISTEN:
			if (rs_start_faults(&d->rs))
				return -EAGAIN;
			break;
		case MSG_DEVICE_STATE:
			ret = devstate_piece(&d->ds, m.u.devstate.total, m.u.devstate.offset,
					     m.u.devstate.data, m.u.devstate.len, err, sizeof(err));
			if (ret) {
				session_fail(&d->ss, "main channel: %s", err);
				send_error(d, ret == -EPROTO ? PROTO_E_PROTO : PROTO_E_LOCAL, err);
				return ret;
			}
			break;
		case MSG_RUN:
			ret = device_state_done(d, err, sizeof(err));
			if (ret) {
				session_fail(&d->ss, "%s", err);
				send_error(d, ret == -EPROTO ? PROTO_E_PROTO : PROTO_E_LOCAL, err);
				return ret;
			}
			d->t_run = now_ns();
			if (d->verbose)
				log_msg("RUN: the guest runs here now");
			vmm_notify(&d->rs, VMM_RUN, NULL);
			break;
		case MSG_END:
			for (int i = 0; i < DEST_SLOTS; i++) {
				char w[128];

				if (!d->slots[0][i].used)
					continue;
				snprintf(err, sizeof(err), "END with %s partly sent (%u bytes)",
					 where(d, d->slots[0][i].page, w, sizeof(w)),
					 d->slots[0][i].got);
				session_fail(&d->ss, "main channel: %s", err);
				send_error(d, PROTO_E_PROTO, err);
				return -EPROTO;
			}
			dest_check_complete(d);
			break;
		default:
			break;
		}
	}
}
