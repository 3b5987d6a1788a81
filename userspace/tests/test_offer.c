// SPDX-License-Identifier: GPL-2.0
/*
 * A stand-in for umemd --snapshot on the uffd backends, to test the VMM's
 * side of the OFFER protocol (common/vmmsock.h) against umem-vmm
 * --writer-backend uffd --offer-socket SOCKET:
 *
 *   test-offer SOCKET SEED [--die]
 *
 * It listens on SOCKET, takes the writer's OFFER (its memfd) and ATTACH
 * (its userfaultfd), adopts both with libumem, write-protects every page
 * and checks that the writer's next write arrives as a WRITE|WP request
 * while its RAM stays still; that every page is the seed's image or
 * carries the writer's stamp; then unprotects, sees the RAM move again
 * and sends DONE.  With --die it exits instead of unprotecting, with every
 * page still protected: the writer must run on (the suite checks that).
 * TAP, then "N passed, N failed"; exit 0 only if all passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../umem-vmm/page.h"
#include "libumem.h"
#include "pattern.h"
#include "util.h"
#include "vmmsock.h"

struct peer {
	const char *sock_path;
	uint64_t seed;
	bool die;
	int passed, failed;
	int lsock, sock, memfd, uffd;
	struct vmm_msg offer;
	struct umem_region *r;
	uint8_t *map, *copy;
};

#define OK(p, cond, ...) do {						\
	if (cond) {							\
		(p)->passed++;						\
		printf("ok %d - ", (p)->passed + (p)->failed);		\
	} else {							\
		(p)->failed++;						\
		printf("not ok %d - ", (p)->passed + (p)->failed);	\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	fflush(stdout);							\
} while (0)

static int accept_within(int lsock, int ms)
{
	struct pollfd pfd = { .fd = lsock, .events = POLLIN };

	if (poll(&pfd, 1, ms) != 1)
		return -1;
	return accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
}

/* OFFER then ATTACH from the writer. */
static bool take_offer(struct peer *p)
{
	struct vmm_msg m;
	struct stat st;
	int ret;

	p->sock = accept_within(p->lsock, 10000);
	OK(p, p->sock >= 0, "the writer connects to %s", p->sock_path);
	if (p->sock < 0)
		return false;
	ret = vmm_recv(p->sock, &p->offer, &p->memfd, 5000);
	OK(p, ret == 1 && p->offer.type == VMM_OFFER && p->memfd >= 0 &&
	   fstat(p->memfd, &st) == 0 && (uint64_t)st.st_size == p->offer.size &&
	   p->offer.size && p->offer.size % PATTERN_PAGE == 0 &&
	   p->offer.page_size == PATTERN_PAGE && umem_backend_known(p->offer.text),
	   "OFFER: %llu bytes of 4 KiB pages at %#llx, backend '%s', with the memfd (recv %d)",
	   (unsigned long long)p->offer.size, (unsigned long long)p->offer.base,
	   p->offer.text, ret);
	if (ret != 1 || p->memfd < 0)
		return false;
	ret = vmm_recv(p->sock, &m, &p->uffd, 5000);
	OK(p, ret == 1 && m.type == VMM_ATTACH && p->uffd >= 0 && m.base == p->offer.base &&
	   m.size == p->offer.size,
	   "ATTACH: the userfaultfd, for the offered base and size (recv %d, type %u)",
	   ret, ret == 1 ? m.type : 0);
	return ret == 1 && p->uffd >= 0 && m.type == VMM_ATTACH;
}

/* Adopt memfd and userfaultfd as umemd does: open, attach, map. */
static bool adopt(struct peer *p)
{
	struct umem_region_config cfg;
	int ret;

	memset(&cfg, 0, sizeof(cfg));
	cfg.backend = p->offer.text;
	cfg.size = p->offer.size;
	cfg.flags = UMEM_REGION_PRESENT | UMEM_REGION_WRITE_PROTECT;
	cfg.log = log_libumem;
	ret = umem_region_open(&cfg, p->memfd, NULL, &p->r);
	p->memfd = -1;		/* taken over, even on failure */
	if (!ret) {
		ret = umem_region_attach(p->r, p->uffd, p->offer.base);
		p->uffd = -1;
	}
	if (!ret)
		ret = umem_region_map(p->r, (void **)&p->map);
	OK(p, ret == 0, "adopt the memfd and the userfaultfd (open, attach, map): %s",
	   umem_strerror(ret));
	return ret == 0;
}

/* Wait up to @ms for the first WRITE|WP request; its count. */
static int wp_requests(struct peer *p, int ms)
{
	struct umem_page_request req[64];
	uint64_t deadline = now_ns() + (uint64_t)ms * 1000000;
	int n, wp = 0;

	while (!wp && now_ns() < deadline) {
		n = umem_region_read_requests(p->r, req, 64, 100);
		for (int i = 0; i < n; i++)
			if (req[i].flags == (UMEM_REQUEST_WRITE | UMEM_REQUEST_WP) &&
			    req[i].offset < p->offer.size)
				wp++;
	}
	return wp;
}

static uint64_t pages_not_the_writers(const struct peer *p)
{
	uint64_t bad = 0;

	for (uint64_t i = 0; i < p->offer.size / PATTERN_PAGE; i++) {
		const uint8_t *pg = p->map + i * PATTERN_PAGE;

		bad += !page_stamped(i, pg) && !pattern_check(p->seed, i, pg);
	}
	return bad;
}

static bool ram_moves_within(const struct peer *p, int ms)
{
	for (int t = 0; t < ms; t += 10) {
		if (memcmp(p->copy, p->map, p->offer.size))
			return true;
		usleep(10000);
	}
	return false;
}

static void run(struct peer *p)
{
	int ret;

	if (!take_offer(p) || !adopt(p))
		return;
	ret = umem_region_writeprotect(p->r, 0, p->offer.size, 1);
	OK(p, ret == 0, "write-protect every page: %s", umem_strerror(ret));
	if (ret)
		return;
	ret = wp_requests(p, 5000);
	OK(p, ret > 0, "a write of the writer arrives as a WRITE|WP request (%d)", ret);
	p->copy = malloc(p->offer.size);
	if (!p->copy)
		return;
	memcpy(p->copy, p->map, p->offer.size);
	usleep(300000);
	OK(p, !memcmp(p->copy, p->map, p->offer.size),
	   "every page protected: the RAM stays still for 0.3 s (the writers wait)");
	ret = (int)pages_not_the_writers(p);
	OK(p, ret == 0, "every page is the image of seed %llu or carries the writer's stamp (%d are not)",
	   (unsigned long long)p->seed, ret);
	if (p->die) {
		printf("# exiting with every page protected\n");
		return;
	}
	ret = umem_region_writeprotect(p->r, 0, p->offer.size, 0);
	OK(p, ret == 0 && ram_moves_within(p, 2000),
	   "unprotect every page: the writers go on (%s)", umem_strerror(ret));
	ret = vmm_send(p->sock, VMM_DONE, 0, 0, NULL, -1);
	OK(p, ret == 0, "send DONE: %s", strerror(-ret));
}

int main(int argc, char **argv)
{
	struct peer p = { .lsock = -1, .sock = -1, .memfd = -1, .uffd = -1 };

	log_set_prog("test-offer");
	if (argc < 3 || argc > 4 || parse_u64(argv[2], &p.seed) ||
	    (argc == 4 && strcmp(argv[3], "--die"))) {
		fprintf(stderr, "usage: test-offer SOCKET SEED [--die]\n");
		return 2;
	}
	p.sock_path = argv[1];
	p.die = argc == 4;
	p.lsock = vmm_listen(p.sock_path);
	OK(&p, p.lsock >= 0, "listen on %s: %s", p.sock_path,
	   p.lsock >= 0 ? "ok" : strerror(-p.lsock));
	if (p.lsock >= 0)
		run(&p);
	printf("%d passed, %d failed\n", p.passed, p.failed);
	fflush(stdout);
	if (p.die)
		_exit(p.failed ? 1 : 0);	/* let go of it all, protected */
	if (p.r)
		umem_region_close(p.r);
	if (p.memfd >= 0)
		close(p.memfd);
	if (p.uffd >= 0)
		close(p.uffd);
	if (p.sock >= 0)
		close(p.sock);
	if (p.lsock >= 0) {
		close(p.lsock);
		unlink(p.sock_path);
	}
	free(p.copy);
	return p.failed ? 1 : 0;
}
