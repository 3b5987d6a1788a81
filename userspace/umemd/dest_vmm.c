// SPDX-License-Identifier: GPL-2.0
/*
 * umemd --incoming: the region and the VMM.  setup_region() creates the
 * libumem region (step 2 in dest.c) and, with --vmm-socket, starts the
 * VMM thread: it accepts the VMM, sends HELLO with the region's fd and
 * waits for ATTACH (a uffd backend: the VMM's userfaultfd, attached to
 * the region).  uffd backends wait for that before HELLO_ACK; a region
 * whose pages are complete waits for it before DONE (wait_attached()).
 * vmm_notify() tells the attached VMM RUN, DONE or FAIL.
 *
 * Locking: vlock guards vmm_fd and attached (and run_sent); vcond is
 * signalled when the VMM has attached or the session stops.
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

#include "dest.h"
#include "libumem.h"
#include "util.h"
#include "vmmsock.h"

void vmm_notify(struct dest *d, uint16_t type, const char *text)
{
	pthread_mutex_lock(&d->vlock);
	if (d->vmm_fd >= 0 && d->attached) {
		if (type == VMM_RUN)
			d->run_sent = true;
		vmm_send(d->vmm_fd, type, d->pages * d->lay.page_size, 0, text, -1);
	}
	pthread_mutex_unlock(&d->vlock);
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
	ret = vmm_send_ps(fd, VMM_HELLO, umem_region_size(d->region), 0,
			  umem_region_page_size(d->region),
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

int wait_attached(struct dest *d)
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

/* ---- the region ---- */

int setup_region(struct dest *d)
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
	cfg.size = d->pages * d->lay.page_size;
	cfg.page_size = d->lay.page_size;
	cfg.log = log_libumem;
	cfg.log_opaque = &d->verbose;
	ret = umem_region_create(&cfg, &d->region);
	if (ret) {
		/* hugetlb: say what to do (libumem logged the numbers). */
		bool pool = ret == -ENOMEM && cfg.page_size != PROTO_PAGE_SIZE &&
			    strcmp(d->o->backend, "umem");

		dest_fail(d, "creating a %s region of %llu bytes in %u-byte pages: %s%s",
			  d->o->backend, (unsigned long long)cfg.size, cfg.page_size,
			  umem_strerror(ret),
			  pool ? " (no free 2 MiB huge pages: reserve them in /proc/sys/vm/nr_hugepages)" : "");
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

