/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where pages go and where they come from: the two small interfaces
 * between a page sink and a page provider, so that each coupling of a
 * provider with a sink is a session of its own and neither side knows
 * the other's kind.
 *
 *   umemd --incoming   the network (net_in.c)  ->  the region (region_sink.c)
 *   umemd --restore    a snapshot file         ->  the region     (next)
 *   umemd --snapshot   the VMM's RAM (wp_ram.c) -> a snapshot file (snap_out.c)
 *
 * (umemd --outgoing, RAM -> network, needs neither: its network side
 * reads ram.c directly, paced and in PIECE frames, see net_out.c.)
 *
 * Function pointers only where two implementations exist or are about
 * to; each says which.
 */
#ifndef UMEMD_PAGES_H
#define UMEMD_PAGES_H

#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/*
 * A page sink.  Implementations: the region (region_sink.c: rs_put()),
 * a snapshot file (snap_out.c: so_put()).  Called by the network
 * (net_in.c) and by umemd --snapshot (snapshot.c).
 */
struct page_sink {
	/*
	 * Store @count pages from @page: @data holds @count pages, or is
	 * NULL for zero pages.  The caller makes sure nobody else stores
	 * them (the network claims them first, region_sink.h; a streamer
	 * takes them from its claims.h map).  Returns 0 with *@stored the
	 * pages the sink holds counting these (each value is seen by one
	 * caller: a progress mark or the last page is noticed once), or
	 * -errno from the store, which the caller reports.  Any thread.
	 */
	int (*put)(struct page_sink *k, uint64_t page, uint32_t count,
		   const uint8_t *data, uint64_t *stored);
};

/*
 * A page provider, as the sink's requests see it.  Implementations: the
 * network (net_in_link.c: REQ frames on the return path), a snapshot
 * file (--restore, next: its request queue, reqq.h).  Called by the
 * region's fault thread (region_sink.c).
 */
struct page_provider {
	/*
	 * @n pages a task waits for, missing and not requested before:
	 * provide them first.  0, or -errno once the provider cannot (the
	 * session has failed with the reason; the caller stops asking).
	 */
	int (*request)(struct page_provider *p, const uint64_t *pages, uint32_t n);
	/*
	 * Optional (NULL: never).  Called while the sink waits for its VMM
	 * to attach: nonzero if the provider gave up meanwhile, with the
	 * session failed with the reason.
	 */
	int (*gone)(struct page_provider *p);
};
#endif
