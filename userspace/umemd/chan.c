// SPDX-License-Identifier: GPL-2.0
/*
 * Framed TCP transport; see chan.h for the error classes and locking.
 * Also the socket options of each channel (struct chan_sockopts): set on
 * every connection chan_attach() is given, under the channel's wlock, and
 * read back for the summary.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "chan.h"
#include "util.h"

void chan_init(struct chan *c, const char *name, int stop_fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->stop_fd = stop_fd;
	c->name = name;
	c->want = (struct chan_sockopts){ -1, -1, -1 };
	c->got = c->want;
	pthread_mutex_init(&c->wlock, NULL);
}

void chan_set_sockopts(struct chan *c, const struct chan_sockopts *o)
{
	c->want = *o;
}

void chan_pair_sockopts(struct chan *main, struct chan *pre, int priority,
			int tos, int notsent_lowat)
{
	struct chan_sockopts m = { -1, -1, notsent_lowat };
	struct chan_sockopts p = { priority, tos, -1 };

	chan_set_sockopts(main, &m);
	chan_set_sockopts(pre, &p);
}

static int sock_family(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return AF_UNSPEC;
	return ss.ss_family;
}

static int get_int(int fd, int level, int name)
{
	int v = 0;
	socklen_t len = sizeof(v);

	return getsockopt(fd, level, name, &v, &len) < 0 ? -1 : v;
}

/*
 * The preempt channel's queue of its own at a bottleneck, and the main
 * stream's short not-yet-sent queue (Documentation/design.rst, "The
 * source, the wire and the queue at the bottleneck").  Best effort: a
 * kernel or a family without the option keeps its default, and c->got
 * says what the socket really has.  TOS first: Linux derives
 * sk_priority from it, so SO_PRIORITY must come after.
 */
static void apply_sockopts(struct chan *c, int fd)
{
	int fam = sock_family(fd);
	int tl = fam == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
	int tn = fam == AF_INET6 ? IPV6_TCLASS : IP_TOS;
	bool ip = fam == AF_INET || fam == AF_INET6;

	if (ip && c->want.tos >= 0)
		setsockopt(fd, tl, tn, &c->want.tos, sizeof(c->want.tos));
	if (c->want.priority >= 0)
		setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &c->want.priority,
			   sizeof(c->want.priority));
	if (c->want.notsent_lowat >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &c->want.notsent_lowat,
			   sizeof(c->want.notsent_lowat));
	c->got.priority = get_int(fd, SOL_SOCKET, SO_PRIORITY);
	c->got.tos = ip ? get_int(fd, tl, tn) : -1;
	c->got.notsent_lowat = get_int(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT);
}

void chan_attach(struct chan *c, int fd)
{
	pthread_mutex_lock(&c->wlock);
	c->fd = fd;
	if (fd >= 0)
		apply_sockopts(c, fd);
	c->rhead = 0;
	c->rtail = 0;
	c->conn_in = 0;
	atomic_store_explicit(&c->conn_out, 0, memory_order_relaxed);
	pthread_mutex_unlock(&c->wlock);
}

size_t chan_buffered(const struct chan *c)
{
	return c->rtail - c->rhead;
}

void chan_close(struct chan *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->rhead = 0;
	c->rtail = 0;
}

const char *chan_strerror(int err)
{
	switch (err) {
	case -EPIPE: return "peer closed the connection";
	case -EIO: return "peer closed the connection in the middle of a frame";
	case -EPROTO: return "malformed frame";
	case -ECANCELED: return "stopped";
	default: return strerror(-err);
	}
}

/*
 * A peer behind a dead link sends no FIN or RST: without a bound, a reader
 * would wait forever and so would the tasks faulting on its pages.
 * Keepalive probes find an idle dead link; TCP_USER_TIMEOUT bounds how long
 * sent data (and SYNs) may stay unacknowledged.  Both give up after
 * @link_ms (0: kernel defaults, about two hours / fifteen minutes).
 */
static void tune(int fd, int link_ms)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (link_ms > 0) {
		int probe_s = link_ms / 3000 > 0 ? link_ms / 3000 : 1;
		int cnt = 3;
		unsigned int user_ms = (unsigned int)link_ms;

		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &probe_s, sizeof(probe_s));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &probe_s, sizeof(probe_s));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof(user_ms));
	}
}

static int resolve(const char *hostport, bool passive, struct addrinfo **res)
{
	char host[256], port[32];
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
		.ai_flags = passive ? AI_PASSIVE : 0,
	};

	if (split_hostport(hostport, host, sizeof(host), port, sizeof(port)))
		return -EINVAL;
	if (getaddrinfo(host[0] ? host : NULL, port, &hints, res))
		return -EADDRNOTAVAIL;
	return 0;
}

int net_listen(const char *hostport)
{
	struct addrinfo *res;
	int fd, one = 1, ret = resolve(hostport, true, &res);

	if (ret)
		return ret;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4) < 0) {
		ret = -errno;
		close(fd);
		goto out;
	}
	ret = fd;
out:
	freeaddrinfo(res);
	return ret;
}

static int wait_readable(int fd, int stop_fd, int timeout_ms)
{
	struct pollfd p[2] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};
	int ret;

	do {
		ret = poll(p, stop_fd >= 0 ? 2 : 1, timeout_ms);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (stop_fd >= 0 && (p[1].revents & POLLIN))
		return -ECANCELED;
	return ret;
}

int net_accept(int lfd, int stop_fd, int link_ms)
{
	int ret = wait_readable(lfd, stop_fd, -1);

	if (ret < 0)
		return ret;
	ret = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (ret < 0)
		return -errno;
	tune(ret, link_ms);
	return ret;
}

int net_connect(const char *hostport, int wait_ms, int stop_fd, int link_ms)
{
	struct addrinfo *res;
	uint64_t deadline = now_ns() + (uint64_t)wait_ms * 1000000ULL;
	int fd, ret = resolve(hostport, false, &res);

	if (ret)
		return ret;
	for (;;) {
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			ret = -errno;
			break;
		}
		tune(fd, link_ms);
		if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
			ret = fd;
			break;
		}
		ret = -errno;
		close(fd);
		if ((ret != -ECONNREFUSED && ret != -ENETUNREACH &&
		     ret != -EHOSTUNREACH && ret != -ETIMEDOUT) || now_ns() > deadline)
			break;
		if (wait_readable(stop_fd, -1, 100) > 0) {
			ret = -ECANCELED;
			break;
		}
	}
	freeaddrinfo(res);
	return ret;
}

/* Refill the empty receive buffer with what the socket has (at least 1 byte). */
static int fill(struct chan *c)
{
	for (;;) {
		int ret = wait_readable(c->fd, c->stop_fd, -1);
		ssize_t n;

		if (ret < 0)
			return ret;
		n = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -EPIPE : -errno;
		if (n == 0)
			return -EPIPE;
		c->rhead = 0;
		c->rtail = (size_t)n;
		c->bytes_in += (uint64_t)n;
		c->conn_in += (uint64_t)n;
		return 0;
	}
}

/* Read exactly @len bytes.  *got tells how many arrived before an error. */
static int read_exact(struct chan *c, uint8_t *buf, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		size_t n;

		if (c->rhead == c->rtail) {
			int ret = fill(c);

			if (ret)
				return ret;
		}
		n = c->rtail - c->rhead;
		if (n > len - *got)
			n = len - *got;
		memcpy(buf + *got, c->rbuf + c->rhead, n);
		c->rhead += n;
		*got += n;
	}
	return 0;
}

int chan_read_frame(struct chan *c, uint16_t *type, uint8_t *payload,
		    uint32_t *len, char *err, size_t errlen)
{
	uint8_t hdr[PROTO_HDR_LEN];
	size_t got;
	int ret;

	ret = read_exact(c, hdr, sizeof(hdr), &got);
	if (ret == -EPIPE && got)
		ret = -EIO;
	if (ret) {
		snprintf(err, errlen, "%s channel: %s", c->name, chan_strerror(ret));
		return ret;
	}
	ret = proto_check_hdr(hdr, type, len, err, errlen);
	if (ret)
		return ret;
	ret = read_exact(c, payload, *len, &got);
	if (ret == -EPIPE)
		ret = -EIO;
	if (ret)
		snprintf(err, errlen, "%s channel: %s (%s frame, %zu of %u bytes)",
			 c->name, chan_strerror(ret), proto_type_name(*type),
			 got, *len);
	return ret;
}

int chan_peek_frame(struct chan *c, uint16_t *type, const uint8_t **payload,
		    uint32_t *len, char *err, size_t errlen)
{
	size_t have = c->rtail - c->rhead;
	int ret;

	if (have < PROTO_HDR_LEN)
		return 0;
	ret = proto_check_hdr(c->rbuf + c->rhead, type, len, err, errlen);
	if (ret)
		return ret;
	if (have < PROTO_HDR_LEN + (size_t)*len)
		return 0;
	*payload = c->rbuf + c->rhead + PROTO_HDR_LEN;
	c->rhead += PROTO_HDR_LEN + *len;
	return 1;
}

int chan_writev(struct chan *c, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
	int ret = 0;

	pthread_mutex_lock(&c->wlock);
	if (c->fd < 0)
		ret = -ENOTCONN;
	while (!ret && mh.msg_iovlen) {
		ssize_t k = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			ret = errno == ECONNRESET ? -EPIPE : -errno;
			break;
		}
		c->bytes_out += (uint64_t)k;
		atomic_fetch_add_explicit(&c->conn_out, (uint64_t)k, memory_order_relaxed);
		while (mh.msg_iovlen && (size_t)k >= mh.msg_iov[0].iov_len) {
			k -= (ssize_t)mh.msg_iov[0].iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov[0].iov_base = (char *)mh.msg_iov[0].iov_base + k;
			mh.msg_iov[0].iov_len -= (size_t)k;
		}
	}
	pthread_mutex_unlock(&c->wlock);
	return ret;
}

int chan_write(struct chan *c, const void *a, size_t alen, const void *b,
	       size_t blen)
{
	struct iovec iov[2] = {
		{ (void *)a, alen }, { (void *)b, blen },
	};

	return chan_writev(c, iov, 2);
}
