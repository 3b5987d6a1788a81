// SPDX-License-Identifier: GPL-2.0
/* The VMM's RAM under write protection: see wp_ram.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "vmmsock.h"
#include "wp_ram.h"

#define WP_FLAGS (UMEM_REGION_PRESENT | UMEM_REGION_WRITE_PROTECT)

void wp_ram_init(struct wp_ram *w)
{
	memset(w, 0, sizeof(*w));
	w->lsock = w->sock = -1;
}

/* The region is open and serving: map it and note its geometry. */
static int mapped(struct wp_ram *w, char *err, size_t errlen)
{
	int ret = umem_region_map(w->r, (void **)&w->map);

	if (ret) {
		snprintf(err, errlen, "mapping the VMM's RAM: %s", umem_strerror(ret));
		return ret;
	}
	w->size = umem_region_size(w->r);
	w->page_size = umem_region_page_size(w->r);
	w->pages = w->size / w->page_size;
	snprintf(w->backend, sizeof(w->backend), "%s", umem_region_backend(w->r));
	return 0;
}

int wp_ram_open_node(struct wp_ram *w, const char *node, char *err, size_t errlen)
{
	struct umem_region_config cfg;
	int ret;

	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = "umem";
	cfg.flags = WP_FLAGS;
	cfg.log = log_libumem;
	ret = umem_region_attach_node(&cfg, node, &w->r);
	if (ret) {
		snprintf(err, errlen, "attaching to %s as its daemon: %s%s", node,
			 umem_strerror(ret),
			 ret == -EBUSY ? " (another daemon serves it)" :
			 ret == -EOPNOTSUPP ? " (a umem module with UMEM_F_ATTACH, umem 0.5, is needed)" : "");
		w->r = NULL;
		return ret;
	}
	return mapped(w, err, errlen);
}

int wp_ram_listen(struct wp_ram *w, const char *path, char *err, size_t errlen)
{
	w->lsock = vmm_listen(path);
	if (w->lsock < 0) {
		int ret = w->lsock;

		snprintf(err, errlen, "--vmm-socket %s: %s", path, strerror(-ret));
		w->lsock = -1;
		return ret;
	}
	w->sock_path = path;
	return 0;
}

/* Wait for @fd to be readable: 1, 0 on timeout, -ECANCELED on @stop_fd. */
static int wait_in(int fd, int stop_fd, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};
	int n;

	do
		n = poll(pfd, stop_fd >= 0 ? 2 : 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (stop_fd >= 0 && pfd[1].revents)
		return -ECANCELED;
	return n > 0;
}

/* OFFER then ATTACH on w->sock: the memfd and the userfaultfd. */
static int take_offer(struct wp_ram *w, int timeout_ms, int stop_fd, struct vmm_msg *offer,
		      int *memfd, int *uffd, char *err, size_t errlen)
{
	struct vmm_msg m;
	struct stat st;
	int ret;

	ret = wait_in(w->sock, stop_fd, timeout_ms);
	if (ret <= 0)
		goto wait_failed;
	ret = vmm_recv(w->sock, offer, memfd, 0);
	if (ret != 1 || offer->type != VMM_OFFER || *memfd < 0) {
		snprintf(err, errlen, "the VMM's first message is not OFFER with its memfd (recv %d, type %u)%s",
			 ret, ret == 1 ? offer->type : 0,
			 ret == 1 && offer->type == VMM_ATTACH ?
			 ": is it a VMM of umemd --incoming?" : "");
		return -EPROTO;
	}
	if (fstat(*memfd, &st) < 0 || (uint64_t)st.st_size != offer->size || !offer->size ||
	    (offer->page_size != 4096 && offer->page_size != (2U << 20)) ||
	    offer->size % offer->page_size || !umem_backend_known(offer->text) ||
	    !strcmp(offer->text, "umem")) {
		snprintf(err, errlen, "a bad OFFER: %llu bytes (the memfd has %lld) of %u-byte pages, backend '%.16s'",
			 (unsigned long long)offer->size, (long long)st.st_size, offer->page_size,
			 offer->text);
		return -EPROTO;
	}
	ret = wait_in(w->sock, stop_fd, timeout_ms);
	if (ret <= 0)
		goto wait_failed;
	ret = vmm_recv(w->sock, &m, uffd, 0);
	if (ret != 1 || m.type != VMM_ATTACH || *uffd < 0 || m.base != offer->base ||
	    m.size != offer->size) {
		snprintf(err, errlen, "the VMM's second message is not ATTACH with its userfaultfd for the offered range (recv %d, type %u)",
			 ret, ret == 1 ? m.type : 0);
		return -EPROTO;
	}
	return 0;
wait_failed:
	if (!ret)
		ret = -ETIMEDOUT;
	snprintf(err, errlen, "waiting for the VMM's OFFER: %s", strerror(-ret));
	return ret;
}

int wp_ram_accept(struct wp_ram *w, int timeout_ms, int stop_fd, char *err, size_t errlen)
{
	struct umem_region_config cfg;
	struct vmm_msg offer;
	int memfd = -1, uffd = -1, ret;

	ret = wait_in(w->lsock, stop_fd, timeout_ms);
	if (ret <= 0) {
		if (!ret)
			ret = -ETIMEDOUT;
		snprintf(err, errlen, "waiting for the VMM on %s: %s", w->sock_path,
			 strerror(-ret));
		return ret;
	}
	w->sock = accept4(w->lsock, NULL, NULL, SOCK_CLOEXEC);
	if (w->sock < 0) {
		ret = -errno;
		snprintf(err, errlen, "accepting the VMM on %s: %s", w->sock_path, strerror(-ret));
		return ret;
	}
	ret = take_offer(w, timeout_ms, stop_fd, &offer, &memfd, &uffd, err, errlen);
	if (ret) {
		if (memfd >= 0)
			close(memfd);
		if (uffd >= 0)
			close(uffd);
		return ret;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = offer.text;
	cfg.size = offer.size;
	cfg.page_size = offer.page_size;
	cfg.flags = WP_FLAGS;
	cfg.log = log_libumem;
	ret = umem_region_open(&cfg, memfd, NULL, &w->r);	/* takes memfd */
	if (ret) {
		w->r = NULL;
		close(uffd);
		snprintf(err, errlen, "adopting the VMM's memfd: %s", umem_strerror(ret));
		return ret;
	}
	ret = umem_region_attach(w->r, uffd, offer.base);	/* takes uffd */
	if (ret) {
		snprintf(err, errlen, "adopting the VMM's userfaultfd: %s", umem_strerror(ret));
		return ret;
	}
	return mapped(w, err, errlen);
}

int wp_ram_protect(struct wp_ram *w, uint64_t page, uint64_t count, bool protect)
{
	return umem_region_writeprotect(w->r, page * w->page_size, count * w->page_size,
					protect);
}

int wp_ram_requests(struct wp_ram *w, struct umem_page_request *reqs, unsigned int max,
		    int timeout_ms)
{
	return umem_region_read_requests(w->r, reqs, max, timeout_ms);
}

bool wp_ram_vmm_gone(struct wp_ram *w)
{
	struct pollfd pfd = { .fd = w->sock, .events = POLLIN };

	if (w->sock < 0)
		return false;
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR | POLLRDHUP));
}

void wp_ram_close(struct wp_ram *w, bool ok, const char *why)
{
	if (w->r)
		umem_region_close(w->r);	/* every protection dropped */
	w->r = NULL;
	w->map = NULL;
	if (w->sock >= 0) {
		int ret = ok ? vmm_send(w->sock, VMM_DONE, 0, 0, NULL, -1) :
			       vmm_send(w->sock, VMM_FAIL, 0, 0, why, -1);

		if (ret && ret != -EPIPE)
			log_msg("telling the VMM %s: %s", ok ? "DONE" : "FAIL", strerror(-ret));
		close(w->sock);
	}
	if (w->lsock >= 0) {
		close(w->lsock);
		unlink(w->sock_path);
	}
	wp_ram_init(w);
}
