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
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "libumem.h"
#include "umemd.h"
#include "util.h"
#include "vmmsock.h"

enum { PG_MISSING, PG_INSTALLING, PG_PRESENT };

#define ACK_EVERY	4096

struct dest {
	const struct umemd_opts *o;
	struct umemd_summary *sum;
	struct proto_layout lay;
	uint64_t pages;
	uint64_t session;
	struct umem_region *region;
	atomic_uchar *pstate;
	atomic_uchar *requested;
	atomic_uint_fast64_t *req_time;
	atomic_uint_fast64_t received;
	pthread_mutex_t slock;		/* state, end_seen */
	enum pc_state state;
	bool end_seen;
	atomic_bool cancelled;		/* the operator gave up */
	/* DEVICE_STATE pieces, main thread only */
	uint8_t *ds;
	uint64_t ds_total, ds_got;
	uint64_t t_run, t_done;		/* RUN received; every page present */
	struct chan main, pre;
	bool preempt;
	int stop_fd;
	pthread_mutex_t elock;
	char err[256];
	atomic_bool failed, finished, stopping;
	atomic_uint_fast64_t pages_bg, pages_req, pages_zero, requests, faults, dup;
	pthread_mutex_t llock;
	uint64_t *lat;
	uint64_t nlat;
	/* VMM side */
	int vmm_lfd, vmm_fd;
	pthread_mutex_t vlock;
	pthread_cond_t vcond;
	bool attached, run_sent;
	/* threads */
	pthread_t fault_th, pre_th, vmm_th, prog_th;
	bool fault_on, pre_on, vmm_on, prog_on;
	int verbose;
	/* --recover */
	bool recover;
	uint32_t version;
	atomic_bool paused;
};

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
static void dest_fail(struct dest *d, const char *fmt, ...)
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

static enum pc_state get_state(struct dest *d)
{
	enum pc_state s;

	pthread_mutex_lock(&d->slock);
	s = d->state;
	pthread_mutex_unlock(&d->slock);
	return s;
}

static void vmm_notify(struct dest *d, uint16_t type, const char *text)
{
	pthread_mutex_lock(&d->vlock);
	if (d->vmm_fd >= 0 && d->attached) {
		if (type == VMM_RUN)
			d->run_sent = true;
		vmm_send(d->vmm_fd, type, d->pages * PROTO_PAGE_SIZE, 0, text, -1);
	}
	pthread_mutex_unlock(&d->vlock);
}

/* ---- completion ---- */

static int wait_attached(struct dest *d);

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

/* Install @count pages at @page (@data: one page, or NULL for zeros). */
static int install(struct dest *d, struct chan *c, uint64_t page,
		   uint32_t count, const uint8_t *data)
{
	char w[128];
	uint64_t before;
	int ret;

	for (uint32_t i = 0; i < count; i++) {
		unsigned char exp = PG_MISSING;

		if (!atomic_compare_exchange_strong(&d->pstate[page + i], &exp,
						    PG_INSTALLING)) {
			dest_fail(d, "duplicate %s for %s on the %s channel",
				  data ? "PAGE" : "ZERO",
				  where(d, page + i, w, sizeof(w)), c->name);
			return -EPROTO;
		}
	}
	if (data)
		ret = umem_region_copy(d->region, page * PROTO_PAGE_SIZE, data,
				       PROTO_PAGE_SIZE);
	else
		ret = umem_region_zero(d->region, page * PROTO_PAGE_SIZE,
				       (uint64_t)count * PROTO_PAGE_SIZE);
	if (ret) {
		dest_fail(d, "installing %s (+%u): %s",
			  where(d, page, w, sizeof(w)), count - 1,
			  umem_strerror(ret));
		return ret;
	}
	for (uint32_t i = 0; i < count; i++) {
		atomic_store(&d->pstate[page + i], PG_PRESENT);
		account(d, page + i, !data);
	}
	before = atomic_fetch_add(&d->received, count);
	if ((before + count) / ACK_EVERY != before / ACK_EVERY) {
		uint8_t f[PROTO_HDR_LEN + 8];

		chan_write(&d->main, f, proto_enc_u64(f, MSG_ACK, before + count),
			   NULL, 0);
	}
	if (before + count == d->pages)
		check_complete(d);
	return 0;
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
						  (page + j) * PROTO_PAGE_SIZE,
						  PROTO_PAGE_SIZE);
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

static bool dest_pause(struct dest *d, const char *what, int ret);

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
			uint64_t page = reqs[i].offset / PROTO_PAGE_SIZE;

			atomic_fetch_add(&d->faults, 1);
			if (page >= d->pages)
				continue;
			if (atomic_load(&d->pstate[page]) == PG_PRESENT) {
				/* Raced with an install; make sure it's awake. */
				umem_region_wake(d->region, reqs[i].offset,
						 PROTO_PAGE_SIZE);
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

static void *preempt_thread(void *arg)
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
		if (!ret && type != MSG_PAGE && type != MSG_ZERO) {
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
		if (install(d, &d->pre, m.u.page.page, m.u.page.count,
			    type == MSG_PAGE ? m.u.page.data : NULL))
			break;
	}
	if (!buf)
		dest_fail(d, "out of memory");
	free(buf);
	return NULL;
}

/* ---- VMM socket ---- */

static void *vmm_thread(void *arg)
{
	struct dest *d = arg;
	struct pollfd p[2] = {
		{ .fd = d->vmm_lfd, .events = POLLIN },
		{ .fd = d->stop_fd, .events = POLLIN },
	};
	struct vmm_msg m;
	int fd = -1, ret;

	while (poll(p, 2, -1) < 0 && errno == EINTR)
		;
	if (p[1].revents)
		return NULL;
	fd = accept4(d->vmm_lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		dest_fail(d, "VMM socket accept: %s", strerror(errno));
		return NULL;
	}
	ret = vmm_send(fd, VMM_HELLO, umem_region_size(d->region), 0,
		       umem_region_backend(d->region),
		       umem_region_export_fd(d->region));
	while (!ret) {
		int rfd = -1;

		ret = vmm_recv(fd, &m, &rfd, 200);
		if (ret == 0) {
			if (atomic_load(&d->stopping))
				break;
			continue;
		}
		if (ret < 0)
			break;
		ret = 0;
		if (m.type != VMM_ATTACH) {
			if (rfd >= 0)
				close(rfd);
			continue;
		}
		if (umem_region_needs_attach(d->region)) {
			if (rfd < 0 || m.size != umem_region_size(d->region)) {
				dest_fail(d, "VMM attach without a userfaultfd or with size %llu",
					  (unsigned long long)m.size);
				break;
			}
			ret = umem_region_attach(d->region, rfd, m.base);
			if (ret) {
				dest_fail(d, "attaching the VMM's userfaultfd: %s",
					  umem_strerror(ret));
				break;
			}
		} else if (rfd >= 0) {
			close(rfd);
		}
		pthread_mutex_lock(&d->vlock);
		d->vmm_fd = fd;
		d->attached = true;
		pthread_cond_broadcast(&d->vcond);
		pthread_mutex_unlock(&d->vlock);
		if (d->verbose)
			log_msg("VMM attached");
		if (get_state(d) >= PC_RUNNING)
			vmm_notify(d, VMM_RUN, NULL);
		break;
	}
	if (ret < 0 && !atomic_load(&d->stopping))
		log_msg("VMM socket: %s", ret == -EPIPE ? "VMM disconnected" :
			strerror(-ret));
	pthread_mutex_lock(&d->vlock);
	if (!d->attached)
		close(fd);
	pthread_mutex_unlock(&d->vlock);
	return NULL;
}

/*
 * The source sends nothing before HELLO_ACK, so anything readable on the
 * main connection while we wait for the VMM means it gave up (ERROR) or
 * went away: fail instead of waiting for a VMM nobody needs any more.
 */
static int source_gone(struct dest *d)
{
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
		dest_fail(d, "the source gave up while we waited for the VMM (error %u): %s",
			  m.u.error.code, m.u.error.text);
	else if (ret)
		dest_fail(d, "waiting for the VMM: main channel: %s", err);
	else
		dest_fail(d, "%s from the source before HELLO_ACK", proto_type_name(type));
	free(buf);
	return -ECANCELED;
}

static int wait_attached(struct dest *d)
{
	pthread_mutex_lock(&d->vlock);
	while (!d->attached && !atomic_load(&d->stopping)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&d->vcond, &d->vlock, &ts);
		if (d->attached || atomic_load(&d->stopping))
			break;
		pthread_mutex_unlock(&d->vlock);
		if (source_gone(d))
			return -ECANCELED;
		pthread_mutex_lock(&d->vlock);
	}
	pthread_mutex_unlock(&d->vlock);
	return d->attached ? 0 : -ECANCELED;
}

/* ---- handshake ---- */

static int open_conn(struct dest *d, int lfd)
{
	if (lfd >= 0)
		return net_accept(lfd, d->stop_fd, d->o->link_timeout_ms);
	return net_connect(d->o->connect, d->o->connect_wait_ms, d->stop_fd,
			   d->o->link_timeout_ms);
}

static void send_error(struct dest *d, uint32_t code, const char *text)
{
	uint8_t e[PROTO_HDR_LEN + 8 + PROTO_MAX_TEXT];

	if (d->main.fd >= 0)
		chan_write(&d->main, e, proto_enc_error(e, code, text), NULL, 0);
}

static int setup_region(struct dest *d)
{
	struct umem_region_config cfg;
	char name[32];
	int ret;

	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = d->o->backend;
	if (d->o->name)
		snprintf(name, sizeof(name), "%s", d->o->name);
	else
		snprintf(name, sizeof(name), "umemd-%d", (int)getpid());
	cfg.name = name;
	cfg.size = d->pages * PROTO_PAGE_SIZE;
	cfg.log = log_libumem;
	cfg.log_opaque = &d->verbose;
	ret = umem_region_create(&cfg, &d->region);
	if (ret) {
		dest_fail(d, "creating a %s region of %llu bytes: %s", d->o->backend,
			  (unsigned long long)cfg.size, umem_strerror(ret));
		return ret;
	}
	if (d->o->verbose)
		log_msg("region %s (%s) ready%s%s", name, d->o->backend,
			umem_region_path(d->region) ? " at " : "",
			umem_region_path(d->region) ? umem_region_path(d->region) : "");
	if (d->o->vmm_socket) {
		d->vmm_lfd = vmm_listen(d->o->vmm_socket);
		if (d->vmm_lfd < 0) {
			dest_fail(d, "VMM socket %s: %s", d->o->vmm_socket,
				  strerror(-d->vmm_lfd));
			return d->vmm_lfd;
		}
		if (pthread_create(&d->vmm_th, NULL, vmm_thread, d)) {
			dest_fail(d, "cannot start the VMM thread");
			return -EAGAIN;
		}
		d->vmm_on = true;
		if (umem_region_needs_attach(d->region)) {
			if (d->o->verbose)
				log_msg("waiting for the VMM on %s", d->o->vmm_socket);
			ret = wait_attached(d);
			if (ret)
				return ret;
		}
	} else if (umem_region_needs_attach(d->region)) {
		/* No VMM: serve our own mapping (useful for tests). */
		ret = umem_region_map(d->region, NULL);
		if (ret) {
			dest_fail(d, "mapping the region: %s", umem_strerror(ret));
			return ret;
		}
	}
	return 0;
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
	version = h.version_max < PROTO_VERSION_MAX ? h.version_max : PROTO_VERSION_MAX;
	if (version < h.version_min || version < PROTO_VERSION_MIN) {
		snprintf(msg, sizeof(msg),
			 "unsupported protocol version %u..%u (this umemd speaks %u..%u)",
			 h.version_min, h.version_max, PROTO_VERSION_MIN,
			 PROTO_VERSION_MAX);
		dest_fail(d, "handshake: %s", msg);
		send_error(d, PROTO_E_VERSION, msg);
		return -EPROTO;
	}
	ret = proto_layout_finish(&h.layout, h.ram_size, err, sizeof(err));
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
	n = proto_enc_hello_ack(buf, version, PROTO_PAGE_SIZE, feats, d->session);
	ret = chan_write(&d->main, buf, n, NULL, 0);
	if (ret) {
		dest_fail(d, "sending HELLO_ACK: %s", chan_strerror(ret));
		return ret;
	}
	d->preempt = feats & PROTO_F_PREEMPT;
	d->recover = feats & PROTO_F_RECOVER;
	d->version = version;
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
	if (pthread_create(&d->pre_th, NULL, preempt_thread, d)) {
		dest_fail(d, "cannot start the preempt thread");
		return -EAGAIN;
	}
	d->pre_on = true;
	return 0;
}


/* ---- recovery (--recover, feature RECOVER) ---- */

/*
 * A channel broke.  In postcopy (RUN seen) with RECOVER the migration
 * pauses instead of failing: the region stays, faulting tasks keep
 * waiting, both connections are shut so every thread notices.
 */
static bool dest_pause(struct dest *d, const char *what, int ret)
{
	enum pc_state st = get_state(d);

	if (!d->recover || ret == -EPROTO || ret == -ECANCELED ||
	    (st != PC_RUNNING && st != PC_END) || atomic_load(&d->finished) ||
	    atomic_load(&d->failed))
		return false;
	if (!atomic_exchange(&d->paused, true)) {
		log_msg("%s: %s: connection lost, postcopy paused (%llu/%llu pages; faulting tasks keep waiting)",
			what, ret == -EPIPE ? "peer closed the connection" : strerror(-ret),
			(unsigned long long)atomic_load(&d->received),
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
			{ .fd = d->stop_fd, .events = POLLIN },
		};
		int n = poll(p, 2, ms);

		if (n == 0)
			return -ETIMEDOUT;
		if (n < 0)
			return -errno;
		if (p[1].revents)
			return -ECANCELED;
		return net_accept(lfd, d->stop_fd, d->o->link_timeout_ms);
	}
	return net_connect(d->o->connect, ms, d->stop_fd,
			   d->o->link_timeout_ms);
}

static void *preempt_thread(void *arg);
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
			if (atomic_load(&d->pstate[p + i]) == PG_PRESENT) {
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
static int dest_resume(struct dest *d, int lfd, uint8_t *buf)
{
	/* Our own clock: the thread that paused may still be logging. */
	uint64_t t0 = now_ns();
	uint64_t deadline = t0 + (uint64_t)d->o->recover_wait_ms * 1000000ULL;
	char err[256] = "";

	if (d->pre_on)
		pthread_join(d->pre_th, NULL);
	d->pre_on = false;
	for (;;) {
		uint8_t out[64 * (PROTO_HDR_LEN + 16)];
		size_t len = 0;
		int ret;

		pthread_mutex_lock(&d->main.wlock);
		chan_close(&d->main);
		pthread_mutex_unlock(&d->main.wlock);
		chan_close(&d->pre);
		if (atomic_load(&d->failed) || atomic_load(&d->finished))
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
			if (pthread_create(&d->pre_th, NULL, preempt_thread, d)) {
				dest_fail(d, "cannot start the preempt thread");
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
			if (!atomic_load(&d->requested[p]) ||
			    atomic_load(&d->pstate[p]) == PG_PRESENT)
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
	dest_fail(d, "postcopy paused and the source did not come back within %d s%s%s",
		  d->o->recover_wait_ms / 1000, err[0] ? ": " : "", err);
	return -ETIMEDOUT;
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
			ret = install(d, &d->main, m.u.page.page, m.u.page.count,
				      type == MSG_PAGE ? m.u.page.data : NULL);
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
		double rate = secs > 0 ? got * 4096.0 / (1 << 20) / secs : 0;
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
	int lfd = -1, ret;

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
		dest_fail(&d, "out of memory");
		goto out;
	}
	cw = (struct cancel_watch){ o->cancel_fd, d.stop_fd, dest_cancel, &d };
	if (o->cancel_fd >= 0 && !pthread_create(&cancel_th, NULL, cancel_watch, &cw))
		cancel_on = true;
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
	if (o->progress && !pthread_create(&d.prog_th, NULL, progress_thread, &d))
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
