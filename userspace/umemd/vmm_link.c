// SPDX-License-Identifier: GPL-2.0
/*
 * The VMM of the destination's region, over --vmm-socket: vmm_link_open()
 * listens and starts the VMM thread, which accepts the VMM, sends HELLO
 * with the region's fd and waits for ATTACH (a uffd backend: the VMM's
 * userfaultfd, attached to the region).  Such a backend waits for that
 * before the region is any use (vmm_link_open()); a region whose pages
 * are complete waits for it before it lets the provider go
 * (vmm_hold()).  vmm_notify() tells the attached VMM RUN, DONE or FAIL; a
 * RUN asked for before the VMM attached is sent on ATTACH.
 *
 * Without --vmm-socket (umem) the VMM maps /dev/umem-NAME by path, and
 * nothing tells umemd when; vmm_hold() reads the region's mmap() count
 * instead: until it is not 0 no VMM has taken the RAM, which goes with
 * umemd (the node disappears when the region's last reference does).
 *
 * Locking: vmm.lock guards fd, attached, run and run_sent; vmm.cond is
 * broadcast when the VMM has attached or the session stops.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "libumem.h"
#include "region_sink.h"
#include "util.h"
#include "vmmsock.h"

/* The deadline of a wait on vmm.cond: 200 ms from now. */
static void in_200ms(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += 200000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Under vmm.lock. */
static void send_locked(struct region_sink *rs, uint16_t type, const char *text)
{
	struct vmm_link *v = &rs->vmm;

	if (v->fd < 0 || !v->attached)
		return;
	if (type == VMM_RUN) {
		if (v->run_sent)
			return;
		v->run_sent = true;
	}
	vmm_send(v->fd, type, rs->pages * rs->page_size, 0, text, -1);
}

void vmm_notify(struct region_sink *rs, uint16_t type, const char *text)
{
	pthread_mutex_lock(&rs->vmm.lock);
	if (type == VMM_RUN)
		rs->vmm.run = true;
	send_locked(rs, type, text);
	pthread_mutex_unlock(&rs->vmm.lock);
}

void vmm_fail(struct region_sink *rs, const char *text)
{
	struct pollfd p = { .fd = rs->vmm.fd, .events = POLLIN };

	/* Tell the VMM first, so it can tell a released task's page from
	 * real data, then give it a moment before we let go. */
	vmm_notify(rs, VMM_FAIL, text);
	if (rs->vmm.fd >= 0)
		poll(&p, 1, 500);
}

void vmm_link_wake(struct region_sink *rs)
{
	pthread_mutex_lock(&rs->vmm.lock);
	pthread_cond_broadcast(&rs->vmm.cond);
	pthread_mutex_unlock(&rs->vmm.lock);
}

static void *vmm_thread(void *arg)
{
	struct region_sink *rs = arg;
	struct vmm_link *v = &rs->vmm;
	struct pollfd p[2] = {
		{ .fd = v->lfd, .events = POLLIN },
		{ .fd = rs->ss->stop_fd, .events = POLLIN },
	};
	struct vmm_msg m;
	int fd = -1, ret;

	thread_name("umemd-vmm");
	while (poll(p, 2, -1) < 0 && errno == EINTR)
		;
	if (p[1].revents)
		return NULL;
	fd = accept4(v->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		session_fail(rs->ss, "VMM socket accept: %s", strerror(errno));
		return NULL;
	}
	ret = vmm_send_ps(fd, VMM_HELLO, umem_region_size(rs->region), 0,
			  umem_region_page_size(rs->region),
			  umem_region_backend(rs->region),
			  umem_region_export_fd(rs->region));
	while (!ret) {
		int rfd = -1;

		ret = vmm_recv(fd, &m, &rfd, 200);
		if (ret == 0) {
			if (atomic_load(&rs->ss->stopping))
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
		if (umem_region_needs_attach(rs->region)) {
			if (rfd < 0 || m.size != umem_region_size(rs->region)) {
				session_fail(rs->ss, "VMM attach without a userfaultfd or with size %llu",
					     (unsigned long long)m.size);
				break;
			}
			ret = umem_region_attach(rs->region, rfd, m.base);
			if (ret) {
				session_fail(rs->ss, "attaching the VMM's userfaultfd: %s",
					     umem_strerror(ret));
				break;
			}
		} else if (rfd >= 0) {
			close(rfd);
		}
		pthread_mutex_lock(&v->lock);
		v->fd = fd;
		v->attached = true;
		pthread_cond_broadcast(&v->cond);
		if (rs->verbose)
			log_msg("VMM attached");
		if (v->run)
			send_locked(rs, VMM_RUN, NULL);
		pthread_mutex_unlock(&v->lock);
		break;
	}
	if (ret < 0 && !atomic_load(&rs->ss->stopping))
		log_msg("VMM socket: %s", ret == -EPIPE ? "VMM disconnected" :
			strerror(-ret));
	pthread_mutex_lock(&v->lock);
	if (!v->attached)
		close(fd);
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

/* Whether a VMM has taken the region: 1 yes, 0 not yet, < 0 cannot tell. */
static int vmm_taken(struct region_sink *rs)
{
	int ret;

	if (rs->vmm.lfd >= 0) {
		pthread_mutex_lock(&rs->vmm.lock);
		ret = rs->vmm.attached;
		pthread_mutex_unlock(&rs->vmm.lock);
		return ret;
	}
	return umem_region_was_mapped(rs->region);
}

int vmm_hold(struct region_sink *rs, const char *before)
{
	struct vmm_link *v = &rs->vmm;
	const char *path = umem_region_path(rs->region);
	int wait = rs->o->vmm_wait_ms;
	uint64_t end = now_ns() + (uint64_t)(wait > 0 ? wait : 0) * 1000000;
	char what[300];

	if (vmm_taken(rs))
		return 0;
	if (v->lfd >= 0)
		snprintf(what, sizeof(what), "on %s", rs->o->vmm_socket);
	else
		snprintf(what, sizeof(what), "to map %s", path ? path : "the region");
	if (!wait) {
		log_msg("no VMM %s: --vmm-wait 0, its RAM goes with umemd", what);
		return 0;
	}
	log_msg("all %llu pages are here; waiting for the VMM %s before %s",
		(unsigned long long)rs->pages, what, before);
	pthread_mutex_lock(&v->lock);
	while (!atomic_load(&rs->ss->stopping)) {
		struct timespec ts;
		int taken;

		in_200ms(&ts);
		pthread_cond_timedwait(&v->cond, &v->lock, &ts);
		pthread_mutex_unlock(&v->lock);
		taken = vmm_taken(rs);
		if (taken)
			return 0;
		if (rs->prov->gone && rs->prov->gone(rs->prov))
			return -ECANCELED;
		if (wait > 0 && now_ns() >= end)
			return -ETIMEDOUT;
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return -ECANCELED;
}

int vmm_wait_attached(struct region_sink *rs)
{
	struct vmm_link *v = &rs->vmm;

	/* No --vmm-socket (umem): the VMM maps the node by path whenever it
	 * starts, and its faults are served from then on; nothing to wait
	 * for. */
	if (v->lfd < 0)
		return 0;
	pthread_mutex_lock(&v->lock);
	while (!v->attached && !atomic_load(&rs->ss->stopping)) {
		struct timespec ts;

		in_200ms(&ts);
		pthread_cond_timedwait(&v->cond, &v->lock, &ts);
		if (v->attached || atomic_load(&rs->ss->stopping))
			break;
		pthread_mutex_unlock(&v->lock);
		if (rs->prov->gone && rs->prov->gone(rs->prov))
			return -ECANCELED;
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return v->attached ? 0 : -ECANCELED;
}

int vmm_link_open(struct region_sink *rs)
{
	const struct umemd_opts *o = rs->o;
	struct vmm_link *v = &rs->vmm;

	v->lfd = vmm_listen(o->vmm_socket);
	if (v->lfd < 0) {
		session_fail(rs->ss, "VMM socket %s: %s", o->vmm_socket, strerror(-v->lfd));
		return v->lfd;
	}
	if (pthread_create(&v->th, NULL, vmm_thread, rs)) {
		session_fail(rs->ss, "cannot start the VMM thread");
		return -EAGAIN;
	}
	v->on = true;
	if (!umem_region_needs_attach(rs->region))
		return 0;
	if (o->verbose)
		log_msg("waiting for the VMM on %s", o->vmm_socket);
	return vmm_wait_attached(rs);
}

void vmm_link_close(struct region_sink *rs)
{
	struct vmm_link *v = &rs->vmm;

	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
	if (v->lfd >= 0) {
		close(v->lfd);
		unlink(rs->o->vmm_socket);
	}
	v->lfd = -1;
}
