/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a page of umem-vmm's guest RAM holds, so that any page can be
 * checked without a copy of the RAM.
 *
 * RAM starts as the image of a seed (common/pattern.h: page i is a
 * function of (seed, i)).  The writer stamps a page each time it writes
 * it: word 0 becomes the page index ^ WRITER_MAGIC, word 1 the page's
 * generation (how many times it has been written: 1 after the first
 * write), and the last word the generation again; the other bytes keep
 * the image.  So page i at generation g is a function of (seed, i, g),
 * and generation 0 is the image itself.
 */
#ifndef UMEM_VMM_PAGE_H
#define UMEM_VMM_PAGE_H

#include <stdbool.h>
#include <stdint.h>

#define WRITER_MAGIC 0x57524954455200ULL

/* Stamp @page (page @index of the RAM) with generation @gen (>= 1). */
void page_stamp(void *page, uint64_t index, uint64_t gen);
/* The content of page @index at generation @gen, into @buf (4 KiB). */
void page_expected(uint64_t seed, uint64_t index, uint64_t gen, void *buf);
/* True if @page holds exactly page @index at generation @gen. */
bool page_check(uint64_t seed, uint64_t index, uint64_t gen, const void *page);
/* True if word 0 of @page is the writer's mark for page @index. */
bool page_stamped(uint64_t index, const void *page);
/*
 * The generation @page looks like: that of a whole stamp (both copies
 * agree), 0 for the seed's image, -1 for anything else (another page's
 * content, a torn stamp, garbage).  For reports; page_check() decides.
 */
int64_t page_found_gen(uint64_t seed, uint64_t index, const void *page);
#endif
