/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The VMM's RAM under write protection, for umemd --snapshot: a umem
 * region served by its node (umem_region_attach_node()), or the memfd and
 * userfaultfd a VMM offers on a unix socket (common/vmmsock.h, OFFER then
 * ATTACH), adopted with umem_region_open() and umem_region_attach().
 * Either way umemd ends up with a handle that serves the region and a
 * plain shared mapping of it that never blocks.
 *
 * Threads: wp_ram_open_*() and wp_ram_close() run alone (main thread);
 * wp_ram_protect(), wp_ram_requests() and wp_ram_vmm_gone() may run on any
 * thread once open (libumem's calls are thread-safe; the socket is only
 * polled, never read, after the OFFER).
 */
#ifndef UMEMD_WP_RAM_H
#define UMEMD_WP_RAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libumem.h"

struct wp_ram {
	struct umem_region *r;
	uint8_t *map;			/* the whole region, shared */
	uint64_t size;
	uint32_t page_size;
	uint64_t pages;
	char backend[16];
	int lsock, sock;		/* uffd: the listening and the VMM's socket */
	const char *sock_path;		/* unlinked by wp_ram_close() */
};

/* A closed wp_ram (so that wp_ram_close() of it is a no-op). */
void wp_ram_init(struct wp_ram *w);

/*
 * umem: become the daemon of the region at @node (/dev/umem-NAME), made
 * born present and write-protectable, and map it.  0, or -errno with @err.
 */
int wp_ram_open_node(struct wp_ram *w, const char *node, char *err, size_t errlen);

/*
 * uffd*: listen on @path (replacing a stale socket there).  Then
 * wp_ram_accept(): wait for the VMM to connect and send OFFER (its
 * memfd) and ATTACH (its userfaultfd, registered for write protection);
 * adopt both and map the memfd.  Waits up to @timeout_ms (-1: forever)
 * and gives up early once @stop_fd (may be -1) is readable (-ECANCELED).
 * 0, or -errno with @err.
 */
int wp_ram_listen(struct wp_ram *w, const char *path, char *err, size_t errlen);
int wp_ram_accept(struct wp_ram *w, int timeout_ms, int stop_fd, char *err, size_t errlen);

/* Write-protect (@protect) or unprotect @count pages from @page. */
int wp_ram_protect(struct wp_ram *w, uint64_t page, uint64_t count, bool protect);

/* umem_region_read_requests() on the region. */
int wp_ram_requests(struct wp_ram *w, struct umem_page_request *reqs, unsigned int max,
		    int timeout_ms);

/* uffd*: true once the VMM closed its socket (it exited). */
bool wp_ram_vmm_gone(struct wp_ram *w);

/*
 * Let go of the region, every protection dropped (the VMM keeps its
 * memory), then, on the uffd backends, tell the VMM: DONE if @ok, else
 * FAIL with @why.  Safe on a wp_ram that never opened.
 */
void wp_ram_close(struct wp_ram *w, bool ok, const char *why);
#endif
