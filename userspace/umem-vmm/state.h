/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The writer's state file: its "device state" at a pause.  With it and
 * the seed, every page of the RAM at that instant is known (page.h), so
 * a restored guest can be checked page by page.
 *
 * Layout (host byte order: written and read on one machine):
 *
 *   struct vmm_state_hdr            48 bytes
 *   uint64_t gen[pages]             page p's generation at the pause
 *
 * A reader refuses a wrong magic, another version, a header_size or
 * page_size it does not know, size != pages * page_size, a file whose
 * length is not header_size + 8 * pages, and a table whose CRC-32C
 * differs from table_crc.
 */
#ifndef UMEM_VMM_STATE_H
#define UMEM_VMM_STATE_H

#include <stdint.h>

#define VMM_STATE_MAGIC		"UMVMSTAT"
#define VMM_STATE_VERSION	1

struct vmm_state_hdr {
	char magic[8];		/* VMM_STATE_MAGIC, no NUL */
	uint32_t version;	/* VMM_STATE_VERSION */
	uint32_t header_size;	/* sizeof(struct vmm_state_hdr): the table's offset */
	uint64_t seed;		/* the RAM's image at generation 0 */
	uint64_t size;		/* RAM bytes */
	uint64_t pages;		/* table entries */
	uint32_t page_size;	/* 4096 */
	uint32_t table_crc;	/* CRC-32C of the table */
};

/* A state in memory. */
struct vmm_state {
	uint64_t seed, size, pages;
	uint64_t *gen;		/* pages entries (malloc) */
};

/*
 * Write @st to PATH.tmp, fsync it, rename it to @path: a reader sees the
 * whole file or none.  0 or -errno (logged).
 */
int state_save(const char *path, const struct vmm_state *st);
/* Read and check @path into @st (st->gen: free() it).  0 or -errno (logged). */
int state_load(const char *path, struct vmm_state *st);
#endif
