/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The guest's RAM as a page source: the --ram files of the VMM, mapped
 * read-only and shared (so a running VMM's writes show), their block
 * layout in global page numbers (proto.h), each page's data and whether
 * it is all zeros.  Used by umemd --outgoing; the --snapshot source is
 * the same over a region's mapping.
 *
 * Threads: read-only once ram_open() returned; any thread reads pages.
 */
#ifndef UMEMD_RAM_H
#define UMEMD_RAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct ram {
	struct proto_layout lay;
	const uint8_t *blk[PROTO_MAX_BLOCKS];	/* block i's mapping */
	uint64_t pages;				/* lay.total_pages */
};

/*
 * Map @files (@n of them, each a block named after its file) in pages of
 * @page_size.  0, or -errno with @err saying which file and why; what was
 * mapped is undone by ram_close().
 */
int ram_open(struct ram *r, const char *const *files, int n, uint32_t page_size,
	     char *err, size_t errlen);
void ram_close(struct ram *r);
/* Whether the page at @p (lay.page_size bytes) is all zeros. */
bool ram_zero(const struct ram *r, const uint8_t *p);

static inline const uint8_t *ram_page(const struct ram *r, uint64_t page)
{
	uint32_t b = 0;
	uint64_t off = 0;

	proto_page_to_block(&r->lay, page, &b, &off);
	return r->blk[b] + off;
}
#endif
