// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --outgoing: serve a guest's RAM from files.  With --pid, precopy
 * rounds while the VMM runs (soft-dirty tracking), then the switch to
 * postcopy (see precopy_and_switch()).  With --recover (feature RECOVER)
 * a broken connection in postcopy pauses; src_resume() reconnects.
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
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
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
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "umemd.h"
#include "util.h"

#define OUTBUF_SIZE	(256 * 1024)

struct source {
	const struct umemd_opts *o;
	struct umemd_summary *sum;
	struct proto_layout lay;
	const uint8_t *blk[PROTO_MAX_BLOCKS];
	uint64_t pages;
	uint64_t session;
	atomic_uchar *sent;
	atomic_uint_fast64_t nsent;
	struct chan main, pre;
	bool preempt;
	bool zero_ok;
	int stop_fd;
	/* request queue (ring of page numbers) */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	uint64_t *q;
	size_t qhead, qlen, qcap;
	atomic_uint_fast64_t hint;	/* bg-follow: next page + 1, 0 = none */
	atomic_bool done, failed, stopping;
	/* --recover (feature RECOVER): a broken link in postcopy pauses */
	bool recover;
	uint32_t version;
	atomic_bool running, paused;	/* RUN sent; link lost, reconnecting */
	atomic_bool cancelled;		/* the operator gave up */
	uint64_t cuts;			/* --test-cut */
	bool precopy_phase;	/* a precopy round: SIGUSR1 ends it early */
	pthread_mutex_t elock;
	char err[256];
	atomic_uint_fast64_t pages_bg, pages_req, pages_zero, requests, req_dup;
	atomic_uint_fast64_t acked;
	/* background output buffer (main thread only) */
	uint8_t *out;
	/* --dirty hash: a hash of every page as sent (precopy rounds) */
	uint64_t *hash;
	size_t outlen;
};

__attribute__((format(printf, 2, 3)))
static void src_fail(struct source *s, const char *fmt, ...)
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

/*
 * A channel failed.  In postcopy with RECOVER that pauses the migration
 * (both connections are shut so every thread notices) instead of failing
 * it; returns true then.  Protocol errors always fail.
 */
static bool src_pause(struct source *s, const char *what, int ret)
{
	if (!s->recover || ret == -EPROTO || ret == -ECANCELED ||
	    !atomic_load(&s->running) || atomic_load(&s->done) ||
	    atomic_load(&s->failed))
		return false;
	if (!atomic_exchange(&s->paused, true)) {
		log_msg("%s: %s: connection lost, postcopy paused (the guest keeps waiting)",
			what, ret == -EPIPE ? "peer closed the connection" : strerror(-ret));
		if (s->main.fd >= 0)
			shutdown(s->main.fd, SHUT_RDWR);
		if (s->pre.fd >= 0)
			shutdown(s->pre.fd, SHUT_RDWR);
		pthread_mutex_lock(&s->qlock);
		pthread_cond_broadcast(&s->qcond);
		pthread_mutex_unlock(&s->qlock);
	}
	return true;
}

static int send_listen_run(struct source *s, const uint8_t *pre, size_t prelen);

/* What a failed write to the destination most likely means. */
static const char *gone(int ret)
{
	return ret == -EPIPE || ret == -ECONNRESET ? " (destination died?)" : "";
}

static const uint8_t *page_data(const struct source *s, uint64_t page)
{
	uint32_t b = 0;
	uint64_t off = 0;

	proto_page_to_block(&s->lay, page, &b, &off);
	return s->blk[b] + off;
}

static bool page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[PROTO_PAGE_SIZE];

	return !memcmp(p, zero, PROTO_PAGE_SIZE);
}

/* 64-bit hash of a page (content-based dirty tracking). */
static uint64_t page_hash(const uint8_t *p)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL, w;

	for (unsigned int i = 0; i < PROTO_PAGE_SIZE; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 29;
	}
	return h;
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

	s->lay.page_size = PROTO_PAGE_SIZE;
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
		if (!st.st_size || st.st_size % PROTO_PAGE_SIZE) {
			src_fail(s, "%s: size %lld is not a non-zero multiple of %u",
				 o->ram[i], (long long)st.st_size, PROTO_PAGE_SIZE);
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

static void queue_push(struct source *s, uint64_t page, uint32_t count)
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

static int send_page_now(struct source *s, struct chan *c, uint64_t page)
{
	uint8_t hdr[PROTO_HDR_LEN + 16];
	const uint8_t *d = page_data(s, page);

	if (s->zero_ok && page_is_zero(d)) {
		size_t n = proto_enc_run(hdr, MSG_ZERO, &s->lay, page, 1);

		atomic_fetch_add(&s->pages_zero, 1);
		return chan_write(c, hdr, n, NULL, 0);
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
		return 0;
	}
	atomic_fetch_add(&s->pages_req, 1);
	return send_page_now(s, c, page);
}

static void *preempt_thread(void *arg)
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

static int background(struct source *s)
{
	uint64_t cursor = 0, low = 0, since_throttle = 0;
	struct pacer pc = { .t0 = now_ns() };
	int ret;

	while (!atomic_load(&s->failed)) {
		uint64_t page, h;

		if (atomic_load(&s->paused))
			return -ECONNABORTED;
		if (s->o->test_cut && atomic_load(&s->running) && s->cuts < 3 &&
		    atomic_load(&s->pages_bg) + atomic_load(&s->pages_req) >=
		    (s->cuts + 1) * s->o->test_cut) {
			/* testing: the link breaks here */
			s->cuts++;
			shutdown(s->main.fd, SHUT_RDWR);
		}

		if (s->precopy_phase && umemd_switch_requested)
			break;	/* the rest goes in postcopy */

		if (!s->preempt) {
			bool any = false;

			while (queue_pop(s, &page, false)) {
				ret = flush_out(s);
				if (!ret)
					ret = serve_request(s, &s->main, page);
				if (ret)
					return ret;
				any = true;
			}
			(void)any;
		}
		h = atomic_exchange(&s->hint, 0);
		if (h && h - 1 < s->pages)
			cursor = h - 1;
		if (!next_unsent(s, &cursor, &low))
			break;
		page = cursor;
		if (!claim(s, page))
			continue;
		if (s->zero_ok && page_is_zero(page_data(s, page))) {
			uint32_t n = 1, b;
			uint64_t off;

			proto_page_to_block(&s->lay, page, &b, &off);
			while (n < PROTO_MAX_RUN && page + n < s->pages &&
			       page + n < s->lay.blocks[b].base_page + s->lay.blocks[b].pages &&
			       page_is_zero(page_data(s, page + n)) &&
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

static void *rp_thread(void *arg)
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

/* As open_conn(), with our own bound on connect retries. */
static int open_conn_wait(struct source *s, int lfd, int wait_ms)
{
	if (lfd >= 0)
		return net_accept(lfd, s->stop_fd, s->o->link_timeout_ms);
	return net_connect(s->o->connect, wait_ms, s->stop_fd,
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
	h.version_max = PROTO_VERSION_MAX;
	h.page_size = PROTO_PAGE_SIZE;
	h.ram_size = s->pages * PROTO_PAGE_SIZE;
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
	if (m.u.ack.version < PROTO_VERSION_MIN || m.u.ack.version > PROTO_VERSION_MAX ||
	    m.u.ack.page_size != PROTO_PAGE_SIZE || m.u.ack.session != s->session ||
	    (m.u.ack.features & ~h.features)) {
		src_fail(s, "handshake: bad HELLO_ACK (version %u, page size %u, features %#llx, we speak %u..%u and offered %#llx)",
			 m.u.ack.version, m.u.ack.page_size,
			 (unsigned long long)m.u.ack.features, PROTO_VERSION_MIN,
			 PROTO_VERSION_MAX, (unsigned long long)h.features);
		return -EPROTO;
	}
	s->preempt = m.u.ack.features & PROTO_F_PREEMPT;
	s->recover = m.u.ack.features & PROTO_F_RECOVER;
	s->version = m.u.ack.version;
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

/* ---- dirty tracking of a running VMM: soft-dirty bits ----
 *
 * Writing "4" to /proc/PID/clear_refs clears the soft-dirty bit of every
 * PTE of PID (and write-protects them); a later write sets it again, and
 * /proc/PID/pagemap reports it as bit 55.  We find PID's shared mappings
 * of our RAM files in /proc/PID/maps, by device and inode.
 *
 * Reading the bits and clearing them are two system calls: a write that
 * lands between them would be cleared without being seen.  So each round
 * freezes the VMM (SIGSTOP, wait until every thread is stopped) around
 * the read + clear, then lets it go (SIGCONT) -- as CRIU does.
 */
#define PM_SOFT_DIRTY	(1ULL << 55)

volatile int umemd_switch_requested;

struct dvma {
	uint64_t start, end;	/* PID's addresses */
	uint64_t page;		/* global page of start */
};

struct dirty {
	int pid;
	int pagemap_fd;
	struct dvma *v;
	size_t nv;
};

static int write_clear_refs(int pid)
{
	char path[64];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/clear_refs", pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, "4", 1) != 1)
		ret = -errno;
	close(fd);
	return ret;
}

int umemd_probe_soft_dirty(char *why, size_t len)
{
	long psz = sysconf(_SC_PAGESIZE);
	volatile uint8_t *p = mmap(NULL, (size_t)psz, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t e0 = 0, e1 = 0;
	int fd, ret = 0;

	if (p == MAP_FAILED) {
		snprintf(why, len, "mmap: %s", strerror(errno));
		return -ENOMEM;
	}
	p[0] = 1;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, len, "/proc/self/pagemap: %s", strerror(errno));
		goto out;
	}
	ret = write_clear_refs(getpid());
	if (ret) {
		snprintf(why, len, "writing 4 to /proc/self/clear_refs: %s", strerror(-ret));
		goto out;
	}
	if (pread(fd, &e0, 8, (off_t)((uintptr_t)p / (uint64_t)psz * 8)) != 8)
		e0 = ~0ULL;
	p[0] = 2;
	if (pread(fd, &e1, 8, (off_t)((uintptr_t)p / (uint64_t)psz * 8)) != 8)
		e1 = 0;
	if ((e0 & PM_SOFT_DIRTY) || !(e1 & PM_SOFT_DIRTY)) {
		ret = -EOPNOTSUPP;
		snprintf(why, len, "pagemap bit 55 does not track writes (kernel without CONFIG_MEM_SOFT_DIRTY?)");
	}
out:
	if (fd >= 0)
		close(fd);
	munmap((void *)p, (size_t)psz);
	return ret;
}

static void dirty_close(struct dirty *t)
{
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
	t->pagemap_fd = -1;
	free(t->v);
	t->v = NULL;
	t->nv = 0;
}

/* Find PID's writable shared mappings of the RAM files. */
static int dirty_open(struct source *s, struct dirty *t)
{
	const struct umemd_opts *o = s->o;
	struct stat st[UMEMD_MAX_RAM_FILES];
	char path[64], line[4096];
	FILE *f;
	size_t cap = 0;

	t->pid = o->pid;
	t->pagemap_fd = -1;
	for (int i = 0; i < o->nram; i++)
		if (stat(o->ram[i], &st[i]) < 0) {
			src_fail(s, "%s: %s", o->ram[i], strerror(errno));
			return -1;
		}
	snprintf(path, sizeof(path), "/proc/%d/maps", t->pid);
	f = fopen(path, "re");
	if (!f) {
		src_fail(s, "--pid %d: %s: %s", t->pid, path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off, ino;
		unsigned int maj, min;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &start, &end,
			   perms, &off, &maj, &min, &ino) != 7)
			continue;
		if (perms[1] != 'w' || perms[3] != 's')
			continue;
		for (int i = 0; i < o->nram; i++) {
			const struct proto_block *b = &s->lay.blocks[i];
			uint64_t len = end - start;

			if (ino != (unsigned long long)st[i].st_ino ||
			    maj != major(st[i].st_dev) || min != minor(st[i].st_dev))
				continue;
			if (off % PROTO_PAGE_SIZE || off >= b->length)
				continue;
			if (len > b->length - off)
				len = b->length - off;
			if (t->nv == cap) {
				struct dvma *nv = realloc(t->v, (cap ? cap * 2 : 8) * sizeof(*nv));

				if (!nv) {
					fclose(f);
					src_fail(s, "out of memory");
					return -1;
				}
				t->v = nv;
				cap = cap ? cap * 2 : 8;
			}
			t->v[t->nv].start = start;
			t->v[t->nv].end = start + len;
			t->v[t->nv].page = b->base_page + off / PROTO_PAGE_SIZE;
			t->nv++;
		}
	}
	fclose(f);
	if (!t->nv) {
		src_fail(s, "--pid %d has no writable shared mapping of %s%s: nothing to track",
			 t->pid, o->ram[0], o->nram > 1 ? " (or the other --ram files)" : "");
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", t->pid);
	t->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (t->pagemap_fd < 0) {
		src_fail(s, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* OR the soft-dirty pages into @map (one byte per page); count new ones. */
static int dirty_read(struct source *s, struct dirty *t, uint8_t *map, uint64_t *n)
{
	uint64_t buf[4096];

	for (size_t i = 0; i < t->nv; i++) {
		uint64_t npg = (t->v[i].end - t->v[i].start) / PROTO_PAGE_SIZE;

		for (uint64_t done = 0; done < npg;) {
			uint64_t want = npg - done < 4096 ? npg - done : 4096;
			off_t at = (off_t)((t->v[i].start / PROTO_PAGE_SIZE + done) * 8);
			ssize_t got = pread(t->pagemap_fd, buf, want * 8, at);

			if (got <= 0 || got % 8) {
				src_fail(s, "reading /proc/%d/pagemap: %s", t->pid,
					 got < 0 ? strerror(errno) : "short read (did the VMM exit?)");
				return -1;
			}
			for (uint64_t k = 0; k < (uint64_t)got / 8; k++) {
				uint64_t pg = t->v[i].page + done + k;

				if ((buf[k] & PM_SOFT_DIRTY) && pg < s->pages && !map[pg]) {
					map[pg] = 1;
					(*n)++;
				}
			}
			done += (uint64_t)got / 8;
		}
	}
	return 0;
}

static int task_states(int pid, bool *all_stopped)
{
	char path[64], st[512];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	*all_stopped = true;
	while ((de = readdir(d))) {
		char p2[300];
		char *c;
		int fd;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p2, sizeof(p2), "/proc/%d/task/%s/stat", pid, de->d_name);
		fd = open(p2, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;	/* exited */
		n = read(fd, st, sizeof(st) - 1);
		close(fd);
		if (n <= 0)
			continue;
		st[n] = 0;
		c = strrchr(st, ')');
		if (c && c[1] == ' ' && c[2] != 'T' && c[2] != 't' &&
		    c[2] != 'Z' && c[2] != 'X')
			*all_stopped = false;
	}
	closedir(d);
	return 0;
}

/* SIGSTOP @pid and wait (up to 5 s) until every thread is stopped. */
static int freeze(struct source *s, int pid)
{
	uint64_t deadline = now_ns() + 5000000000ULL;

	if (kill(pid, SIGSTOP) < 0) {
		src_fail(s, "stopping the VMM (pid %d): %s", pid, strerror(errno));
		return -1;
	}
	for (;;) {
		bool stopped = false;
		int ret = task_states(pid, &stopped);

		if (ret) {
			src_fail(s, "VMM pid %d: %s", pid, strerror(-ret));
			return -1;
		}
		if (stopped)
			return 0;
		if (now_ns() > deadline) {
			kill(pid, SIGCONT);
			src_fail(s, "VMM pid %d did not stop within 5 s", pid);
			return -1;
		}
		usleep(200);
	}
}

/* ---- precopy rounds and the switch to postcopy ---- */

#define DISCARD_BUF	(PROTO_HDR_LEN + 8 + 16 * PROTO_MAX_DISCARD)

/*
 * DISCARD every page set in @map that was already sent, and make it
 * unsent again (the background stream sends it again).  Clears @map.
 */
static int send_discards(struct source *s, uint8_t *map, uint64_t *ndisc)
{
	uint8_t *buf = malloc(DISCARD_BUF);
	uint64_t *pages = malloc(PROTO_MAX_DISCARD * sizeof(uint64_t));
	uint32_t *counts = malloc(PROTO_MAX_DISCARD * sizeof(uint32_t));
	uint32_t n = 0;
	int ret = 0;

	if (!buf || !pages || !counts) {
		src_fail(s, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t b = 0; b < s->lay.nblocks && !ret; b++) {
		const struct proto_block *bl = &s->lay.blocks[b];
		uint64_t end = bl->base_page + bl->pages;

		for (uint64_t p = bl->base_page; p < end && !ret;) {
			uint64_t start = p;
			uint32_t cnt = 0;

			while (p < end && cnt < PROTO_MAX_RUN && map[p] &&
			       atomic_load(&s->sent[p])) {
				atomic_store(&s->sent[p], 0);
				atomic_fetch_sub(&s->nsent, 1);
				p++;
				cnt++;
			}
			if (!cnt) {
				p++;
				continue;
			}
			pages[n] = start;
			counts[n] = cnt;
			*ndisc += cnt;
			if (++n == PROTO_MAX_DISCARD) {
				ret = chan_write(&s->main, buf,
						 proto_enc_discard(buf, DISCARD_BUF, &s->lay, pages, counts, n),
						 NULL, 0);
				n = 0;
			}
		}
	}
	if (!ret && n)
		ret = chan_write(&s->main, buf,
				 proto_enc_discard(buf, DISCARD_BUF, &s->lay, pages, counts, n),
				 NULL, 0);
	if (ret)
		src_fail(s, "sending DISCARD: %s%s", chan_strerror(ret), gone(ret));
out:
	memset(map, 0, s->pages);
	free(buf);
	free(pages);
	free(counts);
	return ret;
}

static int stop_vmm(struct source *s)
{
	int rc;

	if (!s->o->stop_cmd)
		return freeze(s, s->o->pid);
	rc = system(s->o->stop_cmd);
	if (rc != 0) {
		src_fail(s, "--stop-cmd '%s' failed (status %d); the VMM keeps running here",
			 s->o->stop_cmd, rc);
		return -1;
	}
	return 0;
}

/* --dirty hash: a sent page whose content no longer matches what was sent. */
static void hash_scan(struct source *s, uint8_t *map, uint64_t *n)
{
	for (uint64_t p = 0; p < s->pages; p++)
		if (atomic_load_explicit(&s->sent[p], memory_order_relaxed) &&
		    !map[p] && page_hash(page_data(s, p)) != s->hash[p]) {
			map[p] = 1;
			(*n)++;
		}
}

/* Freeze, read and clear the soft-dirty bits, thaw. */
static int dirty_round(struct source *s, struct dirty *t, uint8_t *map, uint64_t *n)
{
	uint64_t t0 = now_ns(), dt;
	int ret;

	if (s->hash) {
		hash_scan(s, map, n);
		return 0;
	}
	if (freeze(s, t->pid))
		return -1;
	ret = dirty_read(s, t, map, n);
	if (!ret) {
		ret = write_clear_refs(t->pid);
		if (ret)
			src_fail(s, "clearing soft-dirty bits of pid %d: %s", t->pid, strerror(-ret));
	}
	kill(t->pid, SIGCONT);
	dt = now_ns() - t0;
	if (dt > s->sum->freeze_max_ns)
		s->sum->freeze_max_ns = dt;
	return ret ? -1 : 0;
}

/*
 * --pid: pick the dirty tracking method and find the VMM's mappings,
 * before any connection is made (a bad --pid fails fast).
 */
static int precopy_setup(struct source *s, struct dirty *t)
{
	struct umemd_summary *sum = s->sum;
	const char *m = s->o->dirty ? s->o->dirty : "auto";
	char err[160];

	t->pid = s->o->pid;
	if (kill(t->pid, 0) < 0) {
		src_fail(s, "--pid %d: %s", t->pid, strerror(errno));
		return -1;
	}
	if (strcmp(m, "hash") && umemd_probe_soft_dirty(err, sizeof(err))) {
		if (!strcmp(m, "soft-dirty")) {
			src_fail(s, "--dirty soft-dirty: %s", err);
			return -1;
		}
		log_msg("soft-dirty unavailable (%s): tracking dirty pages by content hash", err);
		m = "hash";
	}
	sum->precopy = true;
	if (!strcmp(m, "hash")) {
		s->hash = calloc(s->pages, sizeof(uint64_t));
		if (!s->hash) {
			src_fail(s, "out of memory");
			return -1;
		}
		sum->dirty_method = "content hash (a 64-bit hash per page, every page re-read each round)";
		return 0;
	}
	if (dirty_open(s, t))
		return -1;
	sum->dirty_method = "soft-dirty (/proc/PID/clear_refs 4, /proc/PID/pagemap bit 55)";
	return 0;
}

/*
 * --pid: precopy rounds while the VMM runs, then stop it and switch:
 * DISCARD (sent & dirty), LISTEN, RUN.  Without --pid (only --stop-cmd):
 * no rounds, just the stop and the switch.  Returns 0 once RUN is sent.
 */
static int precopy_and_switch(struct source *s, struct dirty *t)
{
	struct umemd_summary *sum = s->sum;
	uint8_t *dmap = calloc(s->pages, 1);
	uint64_t prev = s->pages, t_start = now_ns(), t_stop, nd = 0;
	const char *why = "no dirty tracking (--stop-cmd only)";
	uint32_t max = s->o->max_rounds ? s->o->max_rounds : 30;
	bool stopped = false;
	int ret = -1;

	if (!dmap) {
		src_fail(s, "out of memory");
		goto out;
	}
	if (max > UMEMD_MAX_ROUNDS)
		max = UMEMD_MAX_ROUNDS;
	if (s->o->pid) {
		ret = s->hash ? 0 : write_clear_refs(t->pid);
		if (ret) {
			src_fail(s, "clearing soft-dirty bits of pid %d: %s", t->pid, strerror(-ret));
			goto out;
		}
		for (uint32_t round = 1;; round++) {
			uint64_t before = atomic_load(&s->pages_bg);

			s->precopy_phase = true;
			ret = background(s);
			s->precopy_phase = false;
			if (ret || atomic_load(&s->failed)) {
				if (!atomic_load(&s->failed))
					src_fail(s, "main channel: %s%s", chan_strerror(ret), gone(ret));
				goto fail;
			}
			sum->round_pages[round - 1] = atomic_load(&s->pages_bg) - before;
			sum->rounds = round;
			if (s->o->verbose)
				log_msg("precopy round %u: %llu pages", round,
					(unsigned long long)sum->round_pages[round - 1]);
			if (umemd_switch_requested) {
				why = "SIGUSR1";
				break;
			}
			if (s->o->postcopy_after && round >= s->o->postcopy_after) {
				why = "--postcopy-after";
				break;
			}
			if (!s->o->postcopy_after && round >= max) {
				why = "round limit";
				break;
			}
			nd = 0;
			if (dirty_round(s, t, dmap, &nd))
				goto fail;
			if (umemd_switch_requested) {
				why = "SIGUSR1";
				break;
			}
			if (!nd && !s->o->postcopy_after) {
				why = "converged (nothing dirtied)";
				break;
			}
			if (!s->o->postcopy_after && nd >= prev) {
				why = "dirty set stopped shrinking";
				break;
			}
			prev = nd;
			if (send_discards(s, dmap, &sum->pages_discarded))
				goto fail;
		}
	}
	/* The switch.  dmap may still hold the last round's dirty pages. */
	t_stop = now_ns();
	sum->precopy_ns = t_stop - t_start;
	if (stop_vmm(s))
		goto fail;
	stopped = !s->o->stop_cmd;
	if (s->o->pid && sum->precopy) {
		if (s->hash)
			hash_scan(s, dmap, &nd);
		else if (dirty_read(s, t, dmap, &nd))
			goto fail;
		if (send_discards(s, dmap, &sum->pages_discarded))
			goto fail;
	}
	if (send_listen_run(s, NULL, 0))
		goto fail;
	stopped = false;	/* RUN is out: the guest lives on the destination */
	atomic_store(&s->running, true);
	sum->downtime_ns = now_ns() - t_stop;
	sum->switch_reason = why;
	ret = 0;
	goto out;
fail:
	ret = -1;
	if (stopped && kill(s->o->pid, SIGCONT) == 0)
		log_msg("migration failed before RUN: VMM pid %d resumed on the source", s->o->pid);
out:
	free(dmap);
	return ret;
}


/* ---- the switch: LISTEN, device state, RUN ---- */

/*
 * Read --device-state FILE now: at the switch, once the VMM is stopped,
 * so a --stop-cmd hook can write it.  At most PROTO_MAX_DEVSTATE bytes.
 */
static int load_device_state(struct source *s, uint8_t **blob, size_t *len)
{
	const char *path = s->o->device_state;
	size_t cap = 65536, n = 0;
	uint8_t *b = NULL;
	int fd;

	*blob = NULL;
	*len = 0;
	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		src_fail(s, "--device-state %s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t r;

		if (n == cap || !b) {
			uint8_t *nb = n == cap ? realloc(b, cap *= 2) : malloc(cap);

			if (!nb) {
				free(b);
				close(fd);
				src_fail(s, "--device-state %s: out of memory", path);
				return -1;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			src_fail(s, "--device-state %s: %s", path, strerror(errno));
			break;
		}
		if (!r) {
			close(fd);
			*blob = b;
			*len = n;
			return 0;
		}
		n += (size_t)r;
		if (n > PROTO_MAX_DEVSTATE) {
			src_fail(s, "--device-state %s: larger than %u bytes", path,
				 PROTO_MAX_DEVSTATE);
			break;
		}
	}
	free(b);
	close(fd);
	return -1;
}

/*
 * @pre (ADVISE, DISCARDs, or nothing), LISTEN, the device-state blob in
 * DEVICE_STATE pieces, RUN: the package of 000_* (LISTEN, device state,
 * RUN), sent as consecutive frames on the main stream.
 */
static int send_listen_run(struct source *s, const uint8_t *pre, size_t prelen)
{
	uint8_t hdr[PROTO_HDR_LEN + 16], cmd[3 * PROTO_HDR_LEN];
	uint8_t *blob;
	size_t len, n = 0;
	int ret;

	if (load_device_state(s, &blob, &len))
		return -ECANCELED;
	if (prelen)
		memcpy(cmd, pre, prelen);
	n = prelen + proto_enc_empty(cmd + prelen, MSG_LISTEN);
	ret = chan_write(&s->main, cmd, n, NULL, 0);
	for (size_t off = 0; !ret && off < len; off += PROTO_DEVSTATE_CHUNK) {
		uint32_t c = len - off < PROTO_DEVSTATE_CHUNK ? (uint32_t)(len - off) :
			     PROTO_DEVSTATE_CHUNK;

		ret = chan_write(&s->main, hdr, proto_enc_devstate_hdr(hdr, len, off, c),
				 blob + off, c);
	}
	free(blob);
	if (!ret)
		ret = chan_write(&s->main, cmd, proto_enc_empty(cmd, MSG_RUN), NULL, 0);
	if (ret)
		src_fail(s, "sending LISTEN, device state, RUN: %s%s", chan_strerror(ret),
			 gone(ret));
	else
		s->sum->device_state_bytes = len;
	return ret;
}

/* ---- recovery (--recover, feature RECOVER) ---- */

/*
 * One attempt at resuming on a new connection: RESUME, then the
 * destination's received map (RECV_MAP ... RESUME_OK), which becomes our
 * sent map: what did not arrive is sent again.  Then the preempt channel.
 */
static int resume_once(struct source *s, int lfd, int wait_ms, char *err, size_t errlen)
{
	uint8_t *buf = s->out;
	uint64_t next = 0, nsent = 0;
	int ret = open_conn_wait(s, lfd, wait_ms);

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
			ret = proto_decode(type, buf, len, &s->lay, &m, err, errlen);
		if (ret)
			break;
		if (type == MSG_ERROR) {
			snprintf(err, errlen, "destination refused to resume (error %u): %.200s",
				 m.u.error.code, m.u.error.text);
			return -EPROTO;
		}
		if (type == MSG_REQ) {
			queue_push(s, m.u.page.page, m.u.page.count);
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

				atomic_store(&s->sent[next + i], got);
				nsent += got;
			}
			next += m.u.map.bits;
			continue;
		}
		if (type == MSG_RESUME_OK && next == s->pages && m.u.pages == nsent)
			break;
		snprintf(err, errlen, "resuming: unexpected %s (map %llu/%llu pages)",
			 proto_type_name(type), (unsigned long long)next,
			 (unsigned long long)s->pages);
		return -EPROTO;
	}
	if (ret) {
		if (ret == -EPROTO)
			return ret;
		snprintf(err, errlen, "resuming: %s", chan_strerror(ret));
		return ret;
	}
	atomic_store(&s->nsent, nsent);
	if (s->preempt) {
		ret = open_conn_wait(s, lfd, 5000);
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
static int src_resume(struct source *s, int lfd, pthread_t *rp, bool *rp_started,
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
	s->outlen = 0;
	for (;;) {
		uint64_t now = now_ns();
		int ret;

		chan_close(&s->main);
		chan_close(&s->pre);
		if (now >= deadline || atomic_load(&s->failed))
			break;
		ret = resume_once(s, lfd, (int)((deadline - now) / 1000000ULL), err, sizeof(err));
		if (!ret) {
			atomic_store(&s->paused, false);
			s->sum->resumes++;
			s->sum->paused_ns += now_ns() - t0;
			log_msg("resumed after %.3f s paused (resume %u): %llu of %llu pages at the destination",
				(double)(now_ns() - t0) / 1e9, s->sum->resumes,
				(unsigned long long)atomic_load(&s->nsent),
				(unsigned long long)s->pages);
			if (pthread_create(rp, NULL, rp_thread, s) == 0)
				*rp_started = true;
			if (s->preempt && pthread_create(pre, NULL, preempt_thread, s) == 0)
				*pre_started = true;
			return 0;
		}
		if (ret == -EPROTO) {
			src_fail(s, "%s", err);
			return ret;
		}
		if (s->o->verbose)
			log_msg("resume attempt failed (%s); retrying in %u ms", err, backoff_ms);
		usleep(backoff_ms * 1000);
		backoff_ms = backoff_ms * 2 > 2000 ? 2000 : backoff_ms * 2;
	}
	if (!atomic_load(&s->failed))
		src_fail(s, "postcopy paused and the destination did not come back within %d s%s%s",
			 s->o->recover_wait_ms / 1000, err[0] ? ": " : "", err);
	return -ETIMEDOUT;
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
	int lfd = -1, ret;

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
	if (s.stop_fd < 0 || !s.out)
		goto out;
	cw = (struct cancel_watch){ o->cancel_fd, s.stop_fd, src_cancel, &s };
	if (o->cancel_fd >= 0 && !pthread_create(&cancel_th, NULL, cancel_watch, &cw))
		cancel_on = true;
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
	if (pthread_create(&rp, NULL, rp_thread, &s) == 0)
		rp_started = true;
	if (s.preempt && pthread_create(&pre, NULL, preempt_thread, &s) == 0)
		pre_started = true;
	if (o->progress && pthread_create(&prog, NULL, progress_thread, &s) == 0)
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
