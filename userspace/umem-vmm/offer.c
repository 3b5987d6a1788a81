// SPDX-License-Identifier: GPL-2.0
/*
 * umem-vmm --writer-backend uffd --offer-socket PATH: offer the writer's
 * RAM to umemd --snapshot (common/vmmsock.h, "the other direction").  A
 * thread connects to PATH, retrying every 50 ms until umemd listens,
 * sends OFFER (the memfd) and ATTACH (the userfaultfd, whose own copy it
 * then closes), and waits for DONE or FAIL.  The writer threads run on
 * throughout: while umemd serves the userfaultfd, a write to a page it
 * has protected waits until umemd has saved that page.
 *
 * One offer per run: once handed over, the userfaultfd is umemd's, and
 * libumem cannot register the mapping again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"
#include "util.h"
#include "vmm.h"
#include "vmmsock.h"

#define OFFER_RETRY_US	50000

/* Connected and OFFER sent: the socket; -1 if the writer stopped first. */
static int offer_connect(struct vmm *v)
{
	uint64_t base = (uint64_t)(uintptr_t)v->ram;
	int sock, ret;

	while (!atomic_load(&v->w.stop)) {
		sock = vmm_connect(v->offer_path);
		if (sock >= 0) {
			ret = vmm_send_ps(sock, VMM_OFFER, v->size, base, PATTERN_PAGE,
					  umem_region_backend(v->r), umem_region_export_fd(v->r));
			if (!ret)
				return sock;
			log_msg("offer: sending OFFER on %s: %s; trying again",
				v->offer_path, strerror(-ret));
			close(sock);
		}
		usleep(OFFER_RETRY_US);
	}
	return -1;
}

/* Wait for umemd's verdict; the writer may stop meanwhile. */
static void offer_wait(struct vmm *v, int sock)
{
	for (;;) {
		struct vmm_msg m;
		int fd, ret = vmm_recv(sock, &m, &fd, 200);

		if (fd >= 0)
			close(fd);
		if (ret == 0) {
			if (atomic_load(&v->w.stop))
				return;
			continue;
		}
		if (ret < 0) {
			log_msg("offer: umemd closed %s before DONE (%s); the writer runs on",
				v->offer_path, strerror(-ret));
			return;
		}
		switch (m.type) {
		case VMM_DONE:
			log_msg("offer: umemd said DONE: the snapshot is complete");
			return;
		case VMM_FAIL:
			log_msg("offer: umemd said FAIL: %s; the writer runs on", m.text);
			return;
		case VMM_HELLO:
			log_msg("offer: %s sent HELLO: the socket of umemd --incoming, not --snapshot",
				v->offer_path);
			return;
		default:
			log_msg("offer: ignoring message type %u from umemd", m.type);
		}
	}
}

static void *offer_run(void *arg)
{
	struct vmm *v = arg;
	uint64_t base;
	int sock, uffd, ret;

	sock = offer_connect(v);
	if (sock < 0)
		return NULL;
	ret = umem_region_client_fault_fd(v->r, &uffd, &base);
	if (ret) {
		log_msg("offer: the region's userfaultfd: %s", umem_strerror(ret));
		close(sock);
		return NULL;
	}
	ret = vmm_send(sock, VMM_ATTACH, v->size, base, NULL, uffd);
	/* Keep no copy: umemd's death must release our writers. */
	close(uffd);
	if (ret) {
		log_msg("offer: sending ATTACH on %s: %s", v->offer_path, strerror(-ret));
		close(sock);
		return NULL;
	}
	log_msg("offer: RAM (%llu bytes) and userfaultfd handed to umemd on %s",
		(unsigned long long)v->size, v->offer_path);
	offer_wait(v, sock);
	close(sock);
	return NULL;
}

int offer_start(struct vmm *v)
{
	if (umem_region_needs_attach(v->r) != 1) {
		log_msg("--offer-socket: backend %s has no userfaultfd to offer",
			umem_region_backend(v->r));
		return -EINVAL;
	}
	if (pthread_create(&v->offer, NULL, offer_run, v)) {
		log_msg("cannot start the offer thread");
		return -EAGAIN;
	}
	v->offer_on = true;
	return 0;
}

void offer_join(struct vmm *v)
{
	if (v->offer_on)
		pthread_join(v->offer, NULL);
	v->offer_on = false;
}
