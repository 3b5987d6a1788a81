/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every umemd session shares, whatever its role: the first failure
 * and its reason, the stop eventfd that every blocking call (chan.c, the
 * VMM socket) also polls, and the operator's cancel (SIGTERM / SIGINT,
 * main.c, make --cancel-fd readable).
 *
 * Threads and locks: session_fail(), session_stop() and session_cancel()
 * run on any thread.  elock guards err, so the first reason wins; the
 * flags are atomics.  The cancel watch is a thread of its own, started by
 * session_watch_cancel() and joined by session_join_cancel().
 */
#ifndef UMEMD_SESSION_H
#define UMEMD_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct session {
	int stop_fd;			/* eventfd: readable once the session stops */
	pthread_mutex_t elock;		/* err */
	char err[256];
	atomic_bool failed;		/* err says why */
	atomic_bool finished;		/* succeeded: a later failure is not recorded */
	atomic_bool stopping;		/* the threads wind down */
	atomic_bool cancelled;		/* the operator gave up */
	/*
	 * Wake the threads that wait on a condition variable rather than on
	 * stop_fd: the source's request queue (source.c), the destination's
	 * wait for its VMM (vmm_link.c).  Run by session_fail() and
	 * session_stop(), after stop_fd.
	 */
	void (*wake)(void *arg);
	void *wake_arg;
	int cancel_fd;			/* --cancel-fd, or -1 */
	pthread_t cancel_th;
	bool cancel_on;
};

/* stop_fd is -1 if the eventfd could not be made (errno says why). */
void session_init(struct session *ss, int cancel_fd, void (*wake)(void *arg),
		  void *wake_arg);
/*
 * The session failed: record why (unless it failed or finished already),
 * then session_stop().
 */
__attribute__((format(printf, 2, 3)))
void session_fail(struct session *ss, const char *fmt, ...);
/* Make every thread wind down: stopping, stop_fd, wake(). */
void session_stop(struct session *ss);
/* Watch --cancel-fd: the operator's SIGTERM fails the session.  0 or -1. */
int session_watch_cancel(struct session *ss);
void session_join_cancel(struct session *ss);
void session_destroy(struct session *ss);

static inline bool session_failed(struct session *ss)
{
	return atomic_load(&ss->failed);
}
#endif
