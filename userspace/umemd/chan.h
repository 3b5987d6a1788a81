/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Framed transport over a TCP connection.  Both the main stream and the
 * preempt channel are instances of this one struct.
 *
 * Error classes, decided here and nowhere else (chan_read_frame()):
 *   0            a whole, header-checked frame
 *   -EPIPE       peer closed at a frame boundary (a clean end, or a peer
 *                that died between frames: the caller's state decides)
 *   -EIO         peer closed inside a frame (truncated frame)
 *   -EPROTO      bad header (unknown type, bad length); err says which
 *   -ECANCELED   we were asked to stop (stop eventfd)
 *   other -errno the socket failed (ECONNRESET counts as -EPIPE)
 */
#ifndef UMEMD_CHAN_H
#define UMEMD_CHAN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "proto.h"

/*
 * Bytes are read from the socket in chunks of up to CHAN_RBUF and framed
 * from this buffer: one recv() serves many 4 KiB PAGE frames instead of
 * a poll() and a recv() for every header and every payload.
 */
#define CHAN_RBUF (64 * 1024)

/*
 * Locking: one reader at a time (the thread that owns the channel's
 * direction: dest main loop / preempt thread, source return path), which
 * alone touches rbuf, rhead and rtail; writers serialise on wlock.
 */
/*
 * Socket options a channel applies to every connection it is given
 * (chan_attach(), so a reconnect keeps them).  -1: leave the kernel's.
 *   priority       SO_PRIORITY (0..6 without CAP_NET_ADMIN): the band of
 *                  a `tc prio` qdisc's default priomap (6: band 0)
 *   tos            IP_TOS / IPV6_TCLASS byte (DSCP << 2), set before
 *                  SO_PRIORITY (setting the TOS resets the priority)
 *   notsent_lowat  TCP_NOTSENT_LOWAT: a writer blocks while more than
 *                  this many bytes are in the socket but not yet sent
 * The got_* fields are what getsockopt() read back after the last
 * attach (-1: not readable), for the summary and the tests.
 */
struct chan_sockopts {
	int priority, tos, notsent_lowat;
};

struct chan {
	int fd;
	struct chan_sockopts want, got;
	int stop_fd;			/* eventfd shared by every channel */
	const char *name;		/* "main" or "preempt" */
	pthread_mutex_t wlock;		/* one writer at a time */
	uint64_t bytes_in, bytes_out;	/* every connection's, for the summary */
	/* This connection's bytes (0 at chan_attach()): conn_in belongs to
	 * the reader, conn_out is written under wlock and read by anyone. */
	uint64_t conn_in;
	atomic_uint_fast64_t conn_out;
	size_t rhead, rtail;		/* unread bytes: rbuf[rhead, rtail) */
	uint8_t rbuf[CHAN_RBUF];
};

void chan_init(struct chan *c, const char *name, int stop_fd);
/* Options for every connection attached from now on (see chan_sockopts). */
void chan_set_sockopts(struct chan *c, const struct chan_sockopts *o);
/*
 * A migration's two channels, either side: the preempt socket gets
 * @priority and @tos, the main socket @notsent_lowat (-1: kernel default).
 */
void chan_pair_sockopts(struct chan *main, struct chan *pre, int priority,
			int tos, int notsent_lowat);
/*
 * Use connection @fd from now on (a new one after a reconnect): bytes
 * still buffered from the previous connection are dropped, the channel's
 * socket options are applied and read back into c->got.
 */
void chan_attach(struct chan *c, int fd);
/* Bytes received but not yet framed (a frame may be waiting in them). */
size_t chan_buffered(const struct chan *c);
/*
 * Bytes of this connection framed so far (the reader only): where the
 * next frame starts, counted from the connection's first byte.
 */
static inline uint64_t chan_read_pos(const struct chan *c)
{
	return c->conn_in - chan_buffered(c);
}

/* Bytes written to this connection so far (any thread). */
static inline uint64_t chan_write_pos(struct chan *c)
{
	return atomic_load_explicit(&c->conn_out, memory_order_relaxed);
}
void chan_close(struct chan *c);
/* Listen on "ADDR:PORT"; returns the listening fd or -errno. */
int net_listen(const char *hostport);
/*
 * Accept one connection, or -ECANCELED when stop_fd fires.  @link_ms: a
 * dead link is reported (as an error on the socket) after about this
 * long; 0 leaves the kernel's defaults.
 */
int net_accept(int lfd, int stop_fd, int link_ms);
/* Connect to "ADDR:PORT", retrying refused connections for @wait_ms. */
int net_connect(const char *hostport, int wait_ms, int stop_fd, int link_ms);
int chan_read_frame(struct chan *c, uint16_t *type, uint8_t *payload,
		    uint32_t *len, char *err, size_t errlen);
/*
 * A whole frame that is already in the receive buffer, without copying
 * it: 1 with *@payload pointing into the buffer (valid until the next
 * chan_read_frame(), which may refill it), 0 if no whole frame is
 * buffered (call chan_read_frame()), or -EPROTO (bad header, @err).
 */
int chan_peek_frame(struct chan *c, uint16_t *type, const uint8_t **payload,
		    uint32_t *len, char *err, size_t errlen);
/* Write @a then @b (either may be empty) as one unit; -errno on failure. */
int chan_write(struct chan *c, const void *a, size_t alen, const void *b,
	       size_t blen);
/* Write @n iovecs (consumed: they are modified) as one unit. */
struct iovec;
int chan_writev(struct chan *c, struct iovec *iov, int n);
/* Human words for a chan error. */
const char *chan_strerror(int err);
#endif
