/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Dirty tracking of a running VMM for precopy (umemd --outgoing --pid),
 * in dirty.c: soft-dirty bits (/proc/PID/clear_refs + /proc/PID/pagemap)
 * read and cleared with the VMM frozen, or a content hash per page
 * (--dirty hash).  Main thread only.
 * umemd_probe_soft_dirty() (umemd.h) is there too.
 */
#ifndef UMEMD_DIRTY_H
#define UMEMD_DIRTY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto.h"

struct source;
struct dvma;

struct dirty {
	int pid;
	int pagemap_fd;
	struct dvma *v;
	size_t nv;
};

/* 64-bit hash of a page (content-based dirty tracking). */
static inline uint64_t page_hash(const uint8_t *p)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL, w;

	for (unsigned int i = 0; i < PROTO_PAGE_SIZE; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 29;
	}
	return h;
}

/* Each function is described where dirty.c defines it. */
int precopy_setup(struct source *s, struct dirty *t);
void dirty_close(struct dirty *t);
int write_clear_refs(int pid);
int dirty_read(struct source *s, struct dirty *t, uint8_t *map, uint64_t *n);
void hash_scan(struct source *s, uint8_t *map, uint64_t *n);
int dirty_round(struct source *s, struct dirty *t, uint8_t *map, uint64_t *n);
#endif
