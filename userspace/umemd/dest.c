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
 * Page maps (cf. QEMU's received/requested maps): pstate[] is
 * MISSING -> INSTALLING -> PRESENT (a CAS from MISSING claims the install,
 * so a second copy of a page is a protocol error, detected before it can
 * overwrite anything); requested[] is set once per page by the fault
 * thread, which is the de-duplication of requests.
 *
 * This file is the session: handshake, the main stream, installing
 * pages, DISCARD, device state, the fault and preempt threads and
 * completion.  The region and the VMM socket are in dest_vmm.c, recovery
 * in dest_recover.c; struct dest is in dest.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "dest.h"
#include "libumem.h"
#include "umemd.h"
#include "util.h"
#include "vmmsock.h"

#define ACK_EVERY	4096

static void stop_all(struct dest *d)
{
	uint64_t one = 1;

	atomic_store(&d->stopping, true);
	if (write(d->stop_fd, &one, sizeof(one)) < 0) {
		/* eventfd: cannot fail here */
	}
	pthread_mutex_lock(&d->vlock);
	pthread_cond_broadcast(&d->vcond);
	pthread_mutex_unlock(&d->vlock);
}

__attribute__((format(printf, 2, 3)))
void dest_fail(struct dest *d, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&d->elock);
	if (!atomic_load(&d->failed) && !atomic_load(&d->finished)) {
		va_start(ap, fmt);
		vsnprintf(d->err, sizeof(d->err), fmt, ap);
		va_end(ap);
		atomic_store(&d->failed, true);
	}
	pthread_mutex_unlock(&d->elock);
	stop_all(d);
}

enum pc_state get_state(struct dest *d)
{
	enum pc_state s;

	pthread_mutex_lock(&d->slock);
	s = d->state;
	pthread_mutex_unlock(&d->slock);
	return s;
}

/* ---- completion ---- */

static void check_complete(struct dest *d)
{
	uint8_t f[PROTO_HDR_LEN + 8];
	bool now = false, attached;

	pthread_mutex_lock(&d->slock);
	if (d->end_seen && atomic_load(&d->received) == d->pages &&
	    !atomic_load(&d->finished) && !atomic_load(&d->failed)) {
		atomic_store(&d->finished, true);
		d->t_done = now_ns();
		now = true;
	}
	pthread_mutex_unlock(&d->slock);
	if (!now)
		return;
	/*
	 * The region dies with us: a VMM that has not attached yet would
	 * never get its RAM.  Hold DONE until it has (SIGTERM gives up).
	 */
	pthread_mutex_lock(&d->vlock);
	attached = d->attached;
	pthread_mutex_unlock(&d->vlock);
	if (d->vmm_lfd >= 0 && !attached) {
		log_msg("all %llu pages are here; waiting for the VMM on %s before DONE",
			(unsigned long long)d->pages, d->o->vmm_socket);
		wait_attached(d);
	}
	chan_write(&d->main, f, proto_enc_u64(f, MSG_DONE, d->pages), NULL, 0);
	vmm_notify(d, VMM_DONE, "all pages present");
	stop_all(d);
}

/* ---- installing ---- */

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

static void account(struct dest *d, uint64_t page, bool zero)
{
	uint64_t t = atomic_load(&d->req_time[page]);

	if (atomic_load(&d->requested[page]) && t) {
		uint64_t lat = now_ns() - t;

		atomic_fetch_add(&d->pages_req, 1);
		pthread_mutex_lock(&d->llock);
		if (d->nlat < d->pages)
			d->lat[d->nlat++] = lat;
		pthread_mutex_unlock(&d->llock);
	} else {
		atomic_fetch_add(&d->pages_bg, 1);
	}
	if (zero)
		atomic_fetch_add(&d->pages_zero, 1);
}

/* Claim @count missing pages for an install: a second copy is an error. */
static int claim_pages(struct dest *d, struct chan *c, uint64_t page,
		       uint32_t count, const char *what)
{
	char w[128];

	for (uint32_t i = 0; i < count; i++) {
		unsigned char exp = PG_MISSING;

		if (!atomic_compare_exchange_strong(&d->pstate[page + i], &exp,
						    PG_INSTALLING)) {
			dest_fail(d, "duplicate %s for %s on the %s channel", what,
				  where(d, page + i, w, sizeof(w)), c->name);
			return -EPROTO;
		}
	}
	return 0;
}

/* Installed: present, counted, ACK every ACK_EVERY pages, DONE at the end. */
static void installed(struct dest *d, uint64_t page, uint32_t count, bool zero)
{
	uint64_t before;

	for (uint32_t i = 0; i < count; i++) {
		atomic_store(&d->pstate[page + i], PG_PRESENT);
		account(d, page + i, zero);
	}
	before = atomic_fetch_add(&d->received, count);
	if ((before + count) / ACK_EVERY != before / ACK_EVERY) {
		uint8_t f[PROTO_HDR_LEN + 8];

		chan_write(&d->main, f, proto_enc_u64(f, MSG_ACK, before + count),
			   NULL, 0);
	}
	if (before + count == d->pages)
		check_complete(d);
}

/* Install @count pages at @page (@data: one page, or NULL for zeros). */
static int install(struct dest *d, struct chan *c, uint64_t page,
		   uint32_t count, const uint8_t *data)
{
	uint64_t ps = d->lay.page_size;
	char w[128];
	int ret;

	ret = claim_pages(d, c, page, count, data ? "PAGE" : "ZERO");
	if (ret)
		return ret;
	if (data)
		ret = umem_region_copy(d->region, page * ps, data, ps);
	else
		ret = umem_region_zero(d->region, page * ps, (uint64_t)count * ps);
	if (ret) {
		dest_fail(d, "installing %s (+%u): %s",
			  where(d, page, w, sizeof(w)), count - 1,
			  umem_strerror(ret));
		return ret;
	}
	installed(d, page, count, !data);
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
	char w[128];
	int ret;

	for (int i = 0; i < DEST_SLOTS && !sl; i++)
		if (slots[i].used && slots[i].page == m->u.piece.page)
			sl = &slots[i];
	if (sl && m->u.piece.off != sl->got) {
		dest_fail(d, "PIECE at +%u of %s on the %s channel, expected +%u",
			  m->u.piece.off, where(d, m->u.piece.page, w, sizeof(w)),
			  c->name, sl->got);
		return -EPROTO;
	}
	if (!sl) {
		if (m->u.piece.off) {
			dest_fail(d, "PIECE at +%u of %s on the %s channel without its first piece",
				  m->u.piece.off, where(d, m->u.piece.page, w, sizeof(w)),
				  c->name);
			return -EPROTO;
		}
		for (int i = 0; i < DEST_SLOTS && !sl; i++)
			if (!slots[i].used)
				sl = &slots[i];
		if (!sl) {
			dest_fail(d, "PIECE of %s: more than %d pages partly sent on the %s channel",
				  where(d, m->u.piece.page, w, sizeof(w)), DEST_SLOTS, c->name);
			return -EPROTO;
		}
		ret = claim_pages(d, c, m->u.piece.page, 1, "PIECE");
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
			dest_fail(d, "out of memory for a %u-byte page buffer", ps);
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
	ret = umem_region_copy(d->region, sl->page * ps, sl->buf, ps);
	if (ret) {
		dest_fail(d, "installing %s: %s%s", where(d, sl->page, w, sizeof(w)),
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
	installed(d, sl->page, 1, false);
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
			atomic_store(&d->pstate[sl->page], PG_MISSING);
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

		proto_discard_entry(m, &d->lay, i, &page, &count);
		for (uint32_t j = 0; j < count; j++) {
			unsigned char exp = PG_PRESENT;
			int ret;

			if (!atomic_compare_exchange_strong(&d->pstate[page + j],
							    &exp, PG_MISSING))
				continue;	/* missing already */
			ret = umem_region_discard(d->region,
						  (page + j) * d->lay.page_size,
						  d->lay.page_size);
			if (ret) {
				dest_fail(d, "discard: %s", umem_strerror(ret));
				return ret;
			}
			atomic_fetch_sub(&d->received, 1);
			/* Missing again: a new fault must be requested again. */
			atomic_store(&d->requested[page + j], 0);
			atomic_store(&d->req_time[page + j], 0);
		}
	}
	return 0;
}

/* ---- fault thread: backend requests -> REQ frames ---- */

static void *fault_thread(void *arg)
{
	struct dest *d = arg;
	struct umem_page_request reqs[64];
	uint8_t out[64 * (PROTO_HDR_LEN + 16)];

	while (!atomic_load(&d->stopping)) {
		int n = umem_region_read_requests(d->region, reqs, 64, 100);
		size_t len = 0;

		if (n == -ENOTCONN || n == 0)
			continue;
		if (n < 0) {
			dest_fail(d, "reading page requests: %s%s", umem_strerror(n),
				  n == -ESHUTDOWN ? " (did the VMM exit?)" : "");
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t page = reqs[i].offset / d->lay.page_size;

			atomic_fetch_add(&d->faults, 1);
			if (page >= d->pages)
				continue;
			if (atomic_load(&d->pstate[page]) == PG_PRESENT) {
				/* Raced with an install; make sure it's awake. */
				umem_region_wake(d->region, reqs[i].offset,
						 d->lay.page_size);
				atomic_fetch_add(&d->dup, 1);
				continue;
			}
			if (atomic_exchange(&d->requested[page], 1)) {
				atomic_fetch_add(&d->dup, 1);
				continue;
			}
			atomic_store(&d->req_time[page], now_ns());
			len += proto_enc_run(out + len, MSG_REQ, &d->lay, page, 1);
			atomic_fetch_add(&d->requests, 1);
		}
		if (len && atomic_load(&d->paused))
			continue;	/* resent from requested[] on resume */
		if (len) {
			int ret = chan_write(&d->main, out, len, NULL, 0);

			if (ret && dest_pause(d, "return path", ret))
				continue;
			if (ret) {
				dest_fail(d, "return path: %s%s", chan_strerror(ret),
					  ret == -EPIPE ? " (source died?)" : "");
				break;
			}
		}
	}
	return NULL;
}

/* ---- preempt channel ---- */

void *dest_preempt_thread(void *arg)
{
	struct dest *d = arg;
	uint8_t *buf = malloc(PROTO_MAX_FRAME);
	char err[256];

	while (buf) {
		struct proto_msg m;
		uint16_t type;
		uint32_t len;
		int ret = chan_read_frame(&d->pre, &type, buf, &len, err, sizeof(err));

		if (ret == -ECANCELED || (ret == -EPIPE && atomic_load(&d->finished)))
			break;
		if (ret && (atomic_load(&d->paused) || dest_pause(d, "preempt channel", ret)))
			break;
		if (ret) {
			dest_fail(d, "%s (state %s, %llu/%llu pages received)", err,
				  pc_state_name(get_state(d)),
				  (unsigned long long)atomic_load(&d->received),
				  (unsigned long long)d->pages);
			break;
		}
		ret = proto_decode(type, buf, len, &d->lay, &m, err, sizeof(err));
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
			dest_fail(d, "preempt channel: %s", err);
			break;
		}
		if (install_frame(d, &d->pre, type, &m))
			break;
	}
	if (!buf)
		dest_fail(d, "out of memory");
	free(buf);
	return NULL;
}

/* ---- handshake ---- */

static int open_conn(struct dest *d, int lfd)
{
	if (lfd >= 0)
		return net_accept(lfd, d->stop_fd, d->o->link_timeout_ms);
	return net_connect(d->o->connect, d->o->connect_wait_ms, d->stop_fd,
			   d->o->link_timeout_ms);
}

void send_error(struct dest *d, uint32_t code, const char *text)
{
	uint8_t e[PROTO_HDR_LEN + 8 + PROTO_MAX_TEXT];

	if (d->main.fd >= 0)
		chan_write(&d->main, e, proto_enc_error(e, code, text), NULL, 0);
}

static int handshake(struct dest *d, int lfd, uint8_t *buf)
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
		dest_fail(d, "handshake: %s", err);
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
		dest_fail(d, "handshake: %s", msg);
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
		dest_fail(d, "handshake: %s", err);
		send_error(d, PROTO_E_PARAM, err);
		return ret;
	}
	d->lay = h.layout;
	d->pages = d->lay.total_pages;
	d->session = h.session;
	/* What the peer offers vs what we want. */
	want = PROTO_F_ZERO | PROTO_F_DEVSTATE | (d->o->preempt ? PROTO_F_PREEMPT : 0) |
	       (d->o->recover ? PROTO_F_RECOVER : 0);
	if (version < 2)
		want &= ~PROTO_F_RECOVER;	/* a v2 feature */
	feats = h.features & want & PROTO_F_KNOWN;
	if (d->o->verbose)
		log_msg("HELLO: version %u..%u, %llu bytes in %u block(s), offered %#llx, want %#llx, accepted %#llx",
			h.version_min, h.version_max, (unsigned long long)h.ram_size,
			d->lay.nblocks, (unsigned long long)h.features,
			(unsigned long long)want, (unsigned long long)feats);
	d->pstate = calloc(d->pages, 1);
	d->requested = calloc(d->pages, 1);
	d->req_time = calloc(d->pages, sizeof(*d->req_time));
	d->lat = calloc(d->pages, sizeof(uint64_t));
	if (!d->pstate || !d->requested || !d->req_time || !d->lat) {
		dest_fail(d, "out of memory for %llu pages", (unsigned long long)d->pages);
		send_error(d, PROTO_E_LOCAL, d->err);
		return -ENOMEM;
	}
	ret = setup_region(d);
	if (ret) {
		send_error(d, PROTO_E_LOCAL, d->err);
		return ret;
	}
	n = proto_enc_hello_ack(buf, version, d->lay.page_size, feats, d->session);
	ret = chan_write(&d->main, buf, n, NULL, 0);
	if (ret) {
		dest_fail(d, "sending HELLO_ACK: %s", chan_strerror(ret));
		return ret;
	}
	d->preempt = feats & PROTO_F_PREEMPT;
	d->recover = feats & PROTO_F_RECOVER;
	d->version = version;
	d->sum->version = version;
	d->sum->page_size = d->lay.page_size;
	d->sum->preempt = d->preempt;
	if (!d->preempt)
		return 0;
	ret = open_conn(d, lfd);
	if (ret < 0) {
		dest_fail(d, "opening the preempt channel: %s", strerror(-ret));
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
		dest_fail(d, "preempt channel: %s", err);
		return ret;
	}
	if (pthread_create(&d->pre_th, NULL, dest_preempt_thread, d)) {
		dest_fail(d, "cannot start the preempt thread");
		return -EAGAIN;
	}
	d->pre_on = true;
	return 0;
}


/* ---- device state (DEVSTATE): LISTEN, pieces, RUN ---- */

/* One DEVICE_STATE frame: pieces come in order and agree on the total. */
static int device_state_piece(struct dest *d, const struct proto_msg *m,
			      char *err, size_t errlen)
{
	if (!d->ds) {
		d->ds = malloc(m->u.devstate.total ? m->u.devstate.total : 1);
		if (!d->ds) {
			snprintf(err, errlen, "device state of %llu bytes: out of memory",
				 (unsigned long long)m->u.devstate.total);
			return -ENOMEM;
		}
		d->ds_total = m->u.devstate.total;
	}
	if (m->u.devstate.total != d->ds_total || m->u.devstate.offset != d->ds_got) {
		snprintf(err, errlen,
			 "DEVICE_STATE bytes %llu+%u of %llu, expected offset %llu of %llu",
			 (unsigned long long)m->u.devstate.offset, m->u.devstate.len,
			 (unsigned long long)m->u.devstate.total,
			 (unsigned long long)d->ds_got, (unsigned long long)d->ds_total);
		return -EPROTO;
	}
	memcpy(d->ds + d->ds_got, m->u.devstate.data, m->u.devstate.len);
	d->ds_got += m->u.devstate.len;
	return 0;
}

/*
 * At RUN: the blob must be whole; --device-state-out gets it (an empty
 * file if the source sent none) before the VMM hears RUN.  Written to a
 * temporary name and renamed, so a reader never sees half of it.
 */
static int device_state_done(struct dest *d, char *err, size_t errlen)
{
	const char *path = d->o->device_state_out;
	char tmp[4096];
	FILE *f;

	if (d->ds_got != d->ds_total) {
		snprintf(err, errlen, "RUN after %llu of %llu bytes of device state",
			 (unsigned long long)d->ds_got, (unsigned long long)d->ds_total);
		return -EPROTO;
	}
	d->sum->device_state_bytes = d->ds_got;
	if (!path)
		return 0;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "--device-state-out: path too long");
		return -ENAMETOOLONG;
	}
	f = fopen(tmp, "we");
	if (!f || (d->ds_got && fwrite(d->ds, 1, d->ds_got, f) != d->ds_got) ||
	    fflush(f) || fsync(fileno(f))) {
		snprintf(err, errlen, "--device-state-out %.150s: %s", tmp, strerror(errno));
		if (f)
			fclose(f);
		unlink(tmp);
		return -EIO;
	}
	if (fclose(f) || rename(tmp, path)) {
		snprintf(err, errlen, "--device-state-out %.150s: %s", path, strerror(errno));
		unlink(tmp);
		return -EIO;
	}
	if (d->verbose)
		log_msg("device state: %llu bytes written to %s",
			(unsigned long long)d->ds_got, path);
	return 0;
}

/* ---- main stream ---- */

static int main_loop(struct dest *d, uint8_t *buf)
{
	char err[256];

	for (;;) {
		struct proto_msg m;
		uint16_t type;
		uint32_t len;
		int ret = chan_read_frame(&d->main, &type, buf, &len, err, sizeof(err));

		if (ret == -ECANCELED)
			return 0;
		if (ret == -EPIPE && atomic_load(&d->finished))
			return 0;
		if (ret && (atomic_load(&d->paused) || dest_pause(d, "main channel", ret)))
			return -ECONNABORTED;
		if (ret) {
			dest_fail(d, "%s%s (state %s, %llu/%llu pages received)", err,
				  ret == -EPIPE ? " (source died?)" : "",
				  pc_state_name(get_state(d)),
				  (unsigned long long)atomic_load(&d->received),
				  (unsigned long long)d->pages);
			if (ret == -EPROTO)
				send_error(d, PROTO_E_PROTO, err);
			return ret;
		}
		ret = proto_decode(type, buf, len, &d->lay, &m, err, sizeof(err));
		if (!ret && type == MSG_ERROR) {
			dest_fail(d, "source reported error %u: %s", m.u.error.code,
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
			dest_fail(d, "main channel: %s", err);
			send_error(d, PROTO_E_PROTO, err);
			return ret;
		}
		switch (type) {
		case MSG_PAGE:
		case MSG_ZERO:
		case MSG_PIECE:
			ret = install_frame(d, &d->main, type, &m);
			if (ret) {
				send_error(d, ret == -EPROTO ? PROTO_E_PROTO : PROTO_E_LOCAL,
					   d->err);
				return ret;
			}
			break;
		case MSG_DISCARD:
			ret = handle_discard(d, &m);
			if (ret)
				return ret;
			break;
		case MSG_LISTEN:
			if (pthread_create(&d->fault_th, NULL, fault_thread, d)) {
				dest_fail(d, "cannot start the fault thread");
				return -EAGAIN;
			}
			d->fault_on = true;
			break;
		case MSG_DEVICE_STATE:
			ret = device_state_piece(d, &m, err, sizeof(err));
			if (ret) {
				dest_fail(d, "main channel: %s", err);
				send_error(d, ret == -EPROTO ? PROTO_E_PROTO : PROTO_E_LOCAL, err);
				return ret;
			}
			break;
		case MSG_RUN:
			ret = device_state_done(d, err, sizeof(err));
			if (ret) {
				dest_fail(d, "%s", err);
				send_error(d, ret == -EPROTO ? PROTO_E_PROTO : PROTO_E_LOCAL, err);
				return ret;
			}
			d->t_run = now_ns();
			if (d->verbose)
				log_msg("RUN: the guest runs here now");
			vmm_notify(d, VMM_RUN, NULL);
			break;
		case MSG_END:
			for (int i = 0; i < DEST_SLOTS; i++) {
				char w[128];

				if (!d->slots[0][i].used)
					continue;
				snprintf(err, sizeof(err), "END with %s partly sent (%u bytes)",
					 where(d, d->slots[0][i].page, w, sizeof(w)),
					 d->slots[0][i].got);
				dest_fail(d, "main channel: %s", err);
				send_error(d, PROTO_E_PROTO, err);
				return -EPROTO;
			}
			check_complete(d);
			break;
		default:
			break;
		}
	}
}

static void dest_cancel(void *arg)
{
	struct dest *d = arg;

	atomic_store(&d->cancelled, true);
	dest_fail(d, "cancelled by the operator (SIGTERM/SIGINT)");
}

static void *progress_thread(void *arg)
{
	struct dest *d = arg;
	uint64_t t0 = now_ns();

	while (!atomic_load(&d->stopping)) {
		uint64_t got = atomic_load(&d->received);
		double secs = (double)(now_ns() - t0) / 1e9;
		double rate = secs > 0 ? (double)got * d->lay.page_size / (1 << 20) / secs : 0;
		double eta = got ? secs * (double)(d->pages - got) / (double)got : 0;

		fprintf(stderr, "\rumemd: %llu/%llu pages (%.0f%%), %llu requests, %.1f MiB/s, ETA %.1f s   ",
			(unsigned long long)got, (unsigned long long)d->pages,
			d->pages ? 100.0 * (double)got / (double)d->pages : 0.0,
			(unsigned long long)atomic_load(&d->requests), rate, eta);
		usleep(250000);
	}
	fprintf(stderr, "\n");
	return NULL;
}

int umemd_dest(const struct umemd_opts *o, struct umemd_summary *sum)
{
	struct dest d;
	uint8_t *buf = malloc(PROTO_MAX_FRAME);
	uint64_t t0 = now_ns();
	struct cancel_watch cw;
	pthread_t cancel_th;
	bool cancel_on = false;
	int lfd = -1, ret, err;

	memset(&d, 0, sizeof(d));
	d.o = o;
	d.sum = sum;
	d.verbose = o->verbose;
	d.vmm_lfd = d.vmm_fd = -1;
	sum->role = "destination";
	sum->backend = o->backend;
	pthread_mutex_init(&d.slock, NULL);
	pthread_mutex_init(&d.elock, NULL);
	pthread_mutex_init(&d.llock, NULL);
	pthread_mutex_init(&d.vlock, NULL);
	pthread_cond_init(&d.vcond, NULL);
	d.stop_fd = eventfd(0, EFD_CLOEXEC);
	chan_init(&d.main, "main", d.stop_fd);
	chan_init(&d.pre, "preempt", d.stop_fd);
	if (!buf || d.stop_fd < 0) {
		dest_fail(&d, d.stop_fd < 0 ? "eventfd: %s" : "%s",
			  strerror(d.stop_fd < 0 ? errno : ENOMEM));
		goto out;
	}
	cw = (struct cancel_watch){ o->cancel_fd, d.stop_fd, dest_cancel, &d };
	if (o->cancel_fd >= 0) {
		err = pthread_create(&cancel_th, NULL, cancel_watch, &cw);
		if (err) {
			dest_fail(&d, "cannot watch --cancel-fd: %s", strerror(err));
			goto out;
		}
		cancel_on = true;
	}
	if (o->listen) {
		lfd = net_listen(o->listen);
		if (lfd < 0) {
			dest_fail(&d, "listen on %s: %s", o->listen, strerror(-lfd));
			goto out;
		}
	}
	ret = open_conn(&d, lfd);
	if (ret < 0) {
		dest_fail(&d, "%s %s: %s", lfd >= 0 ? "accept on" : "connect to",
			  lfd >= 0 ? o->listen : o->connect, strerror(-ret));
		goto out;
	}
	chan_attach(&d.main, ret);
	t0 = now_ns();
	if (handshake(&d, lfd, buf))
		goto out;
	/* Progress lines are a convenience: go on without them. */
	err = o->progress ? pthread_create(&d.prog_th, NULL, progress_thread, &d) : 0;
	if (err)
		log_msg("no progress lines: cannot start their thread: %s", strerror(err));
	else if (o->progress)
		d.prog_on = true;
	while (main_loop(&d, buf) == -ECONNABORTED && !dest_resume(&d, lfd, buf))
		;
out:
	if (atomic_load(&d.failed)) {
		struct pollfd p = { .fd = d.vmm_fd, .events = POLLIN };

		/* Tell the VMM first, so it can tell a released task's page
		 * from real data, then give it a moment before we let go. */
		vmm_notify(&d, VMM_FAIL, d.err);
		if (d.vmm_fd >= 0)
			poll(&p, 1, 500);
		send_error(&d, atomic_load(&d.cancelled) ? PROTO_E_CANCEL : PROTO_E_LOCAL,
			   d.err);
	}
	stop_all(&d);
	if (cancel_on)
		pthread_join(cancel_th, NULL);
	if (d.main.fd >= 0)
		shutdown(d.main.fd, SHUT_RDWR);
	if (d.pre.fd >= 0)
		shutdown(d.pre.fd, SHUT_RDWR);
	if (d.fault_on)
		pthread_join(d.fault_th, NULL);
	if (d.pre_on)
		pthread_join(d.pre_th, NULL);
	if (d.prog_on)
		pthread_join(d.prog_th, NULL);
	if (d.vmm_on)
		pthread_join(d.vmm_th, NULL);
	sum->ok = atomic_load(&d.finished) && !atomic_load(&d.failed);
	if (!sum->ok && !d.err[0])
		snprintf(d.err, sizeof(d.err), "migration did not complete");
	snprintf(sum->error, sizeof(sum->error), "%s", d.err);
	sum->total_ns = now_ns() - t0;
	if (d.t_run && d.t_done > d.t_run)
		sum->postcopy_ns = d.t_done - d.t_run;
	sum->pages = d.pages;
	sum->pages_bg = atomic_load(&d.pages_bg);
	sum->pages_req = atomic_load(&d.pages_req);
	sum->pages_zero = atomic_load(&d.pages_zero);
	sum->requests = atomic_load(&d.requests);
	sum->requests_dup = atomic_load(&d.dup);
	sum->pieces = atomic_load(&d.pieces);
	sum->pieces_dropped = atomic_load(&d.dropped);
	sum->interleaved = atomic_load(&d.interleaved);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < DEST_SLOTS; j++)
			free(d.slots[i][j].mem);
	sum->bytes_main = d.main.bytes_in;
	sum->bytes_preempt = d.pre.bytes_in;
	sum->lat_ns = d.lat;
	sum->nlat = d.nlat;
	for (uint64_t i = 0; i < d.nlat; i++) {
		sum->blocked_ns += d.lat[i];
		if (d.lat[i] > sum->blocked_max_ns)
			sum->blocked_max_ns = d.lat[i];
	}
	if (d.region) {
		struct umem_region_stats st;

		if (!umem_region_stats(d.region, &st) && st.wait_ns_total) {
			sum->blocked_ns = st.wait_ns_total;
			sum->blocked_max_ns = st.wait_ns_max;
			sum->blocked_from_kernel = true;
		}
		/* Closing the region releases every faulting task. */
		umem_region_close(d.region);
	}
	chan_close(&d.main);
	chan_close(&d.pre);
	if (lfd >= 0)
		close(lfd);
	if (d.vmm_fd >= 0)
		close(d.vmm_fd);
	if (d.vmm_lfd >= 0) {
		close(d.vmm_lfd);
		unlink(o->vmm_socket);
	}
	close(d.stop_fd);
	free(d.ds);
	free(d.pstate);
	free(d.requested);
	free(d.req_time);
	free(buf);
	return sum->ok ? 0 : -1;
}
