// SPDX-License-Identifier: GPL-2.0
/*
 * A stand-in for umemd --snapshot on the uffd backends, to test the VMM's
 * side of the OFFER protocol (common/vmmsock.h) against umem-vmm
 * --writer-backend uffd --offer-socket SOCKET:
 *
 *   test-offer SOCKET SEED [--die]
 *
 * It listens on SOCKET, takes the writer's OFFER (its memfd) and ATTACH
 * (its userfaultfd) and adopts both with umemd's own code (umemd/wp_ram.c,
 * as umemd --snapshot does), write-protects every page
 * and checks that the writer's next write arrives as a WRITE|WP request
 * while its RAM stays still; that every page is the seed's image or
 * carries the writer's stamp; then unprotects, sees the RAM move again,
 * lets go of the region and sends DONE (wp_ram_close()).  With --die it exits instead of unprotecting, with every
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
#include "wp_ram.h"
#include "libumem.h"
#include "pattern.h"
#include "util.h"
#include "vmmsock.h"

struct peer {
	const char *sock_path;
	uint64_t seed;
	bool die;
	int passed, failed;
	struct wp_ram ram;		/* umemd's side of the OFFER (umemd/wp_ram.c) */
	uint64_t size;
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

/*
 * OFFER then ATTACH from the writer, both adopted and the memfd mapped,
 * as umemd --snapshot does it (wp_ram_accept()).
 */
static bool take_offer(struct peer *p)
{
	char err[256] = "";
	int ret = wp_ram_accept(&p->ram, 10000, -1, err, sizeof(err));

	OK(p, ret == 0 && p->ram.page_size == PATTERN_PAGE && p->ram.size,
	   "OFFER and ATTACH taken on %s, memfd and userfaultfd adopted: %llu bytes, backend '%s'%s%s",
	   p->sock_path, (unsigned long long)p->ram.size, p->ram.backend, ret ? ": " : "",
	   err);
	if (ret)
		return false;
	p->r = p->ram.r;
	p->map = p->ram.map;
	p->size = p->ram.size;
	return true;
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
			    req[i].offset < p->size)
				wp++;
	}
	return wp;
}

static uint64_t pages_not_the_writers(const struct peer *p)
{
	uint64_t bad = 0;

	for (uint64_t i = 0; i < p->size / PATTERN_PAGE; i++) {
		const uint8_t *pg = p->map + i * PATTERN_PAGE;

		bad += !page_stamped(i, pg) && !pattern_check(p->seed, i, pg);
	}
	return bad;
}

static bool ram_moves_within(const struct peer *p, int ms)
{
	for (int t = 0; t < ms; t += 10) {
		if (memcmp(p->copy, p->map, p->size))
			return true;
		usleep(10000);
	}
	return false;
}

static void run(struct peer *p)
{
	int ret;

	if (!take_offer(p))
		return;
	ret = umem_region_writeprotect(p->r, 0, p->size, 1);
	OK(p, ret == 0, "write-protect every page: %s", umem_strerror(ret));
	if (ret)
		return;
	ret = wp_requests(p, 5000);
	OK(p, ret > 0, "a write of the writer arrives as a WRITE|WP request (%d)", ret);
	p->copy = malloc(p->size);
	if (!p->copy)
		return;
	memcpy(p->copy, p->map, p->size);
	usleep(300000);
	OK(p, !memcmp(p->copy, p->map, p->size),
	   "every page protected: the RAM stays still for 0.3 s (the writers wait)");
	ret = (int)pages_not_the_writers(p);
	OK(p, ret == 0, "every page is the image of seed %llu or carries the writer's stamp (%d are not)",
	   (unsigned long long)p->seed, ret);
	if (p->die) {
		printf("# exiting with every page protected\n");
		return;
	}
	ret = umem_region_writeprotect(p->r, 0, p->size, 0);
	OK(p, ret == 0 && ram_moves_within(p, 2000),
	   "unprotect every page: the writers go on (%s)", umem_strerror(ret));
}

int main(int argc, char **argv)
{
	struct peer p;
	char err[256] = "";
	int ret;

	memset(&p, 0, sizeof(p));
	wp_ram_init(&p.ram);
	log_set_prog("test-offer");
	if (argc < 3 || argc > 4 || parse_u64(argv[2], &p.seed) ||
	    (argc == 4 && strcmp(argv[3], "--die"))) {
		fprintf(stderr, "usage: test-offer SOCKET SEED [--die]\n");
		return 2;
	}
	p.sock_path = argv[1];
	p.die = argc == 4;
	ret = wp_ram_listen(&p.ram, p.sock_path, err, sizeof(err));
	OK(&p, ret == 0, "listen on %s: %s", p.sock_path, ret ? err : "ok");
	if (!ret)
		run(&p);
	printf("%d passed, %d failed\n", p.passed, p.failed);
	fflush(stdout);
	if (p.die)
		_exit(p.failed ? 1 : 0);	/* let go of it all, protected */
	/* The region closed (every protection dropped), then DONE, as umemd. */
	wp_ram_close(&p.ram, true, NULL);
	free(p.copy);
	return p.failed ? 1 : 0;
}
