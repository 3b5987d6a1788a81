// SPDX-License-Identifier: GPL-2.0
/* What every umemd session shares: see session.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "session.h"
#include "util.h"

void session_init(struct session *ss, int cancel_fd, void (*wake)(void *arg),
		  void *wake_arg)
{
	memset(ss, 0, sizeof(*ss));
	pthread_mutex_init(&ss->elock, NULL);
	ss->wake = wake;
	ss->wake_arg = wake_arg;
	ss->cancel_fd = cancel_fd;
	ss->stop_fd = eventfd(0, EFD_CLOEXEC);
}

void session_stop(struct session *ss)
{
	uint64_t one = 1;

	atomic_store(&ss->stopping, true);
	if (write(ss->stop_fd, &one, sizeof(one)) < 0) {
		/* eventfd write cannot fail short of overflow */
	}
	if (ss->wake)
		ss->wake(ss->wake_arg);
}

__attribute__((format(printf, 2, 3)))
void session_fail(struct session *ss, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&ss->elock);
	if (!atomic_load(&ss->failed) && !atomic_load(&ss->finished)) {
		va_start(ap, fmt);
		vsnprintf(ss->err, sizeof(ss->err), fmt, ap);
		va_end(ap);
		atomic_store(&ss->failed, true);
	}
	pthread_mutex_unlock(&ss->elock);
	session_stop(ss);
}

/*
 * The cancel watch: once --cancel-fd is readable, the session fails with
 * "cancelled by the operator", unless it stopped first.
 */
static void *cancel_thread(void *arg)
{
	struct session *ss = arg;
	struct pollfd p[2] = {
		{ .fd = ss->cancel_fd, .events = POLLIN },
		{ .fd = ss->stop_fd, .events = POLLIN },
	};

	thread_name("umemd-cancel");
	while (poll(p, 2, -1) < 0 && errno == EINTR)
		;
	if ((p[0].revents & POLLIN) && !(p[1].revents & POLLIN)) {
		atomic_store(&ss->cancelled, true);
		session_fail(ss, "cancelled by the operator (SIGTERM/SIGINT)");
	}
	return NULL;
}

int session_watch_cancel(struct session *ss)
{
	int err;

	if (ss->cancel_fd < 0)
		return 0;
	err = pthread_create(&ss->cancel_th, NULL, cancel_thread, ss);
	if (err) {
		session_fail(ss, "cannot watch --cancel-fd: %s", strerror(err));
		return -1;
	}
	ss->cancel_on = true;
	return 0;
}

void session_join_cancel(struct session *ss)
{
	if (ss->cancel_on)
		pthread_join(ss->cancel_th, NULL);
	ss->cancel_on = false;
}

void session_destroy(struct session *ss)
{
	if (ss->stop_fd >= 0)
		close(ss->stop_fd);
	ss->stop_fd = -1;
}
