/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Deterministic guest RAM content: page i of an image made with seed S is
 * a function of (S, i) only, so a VMM can verify any page without a copy
 * of the image.  About a fifth of the pages are zero, in runs of 16.
 */
#ifndef UMEM_PATTERN_H
#define UMEM_PATTERN_H

#include <stdbool.h>
#include <stdint.h>

#define PATTERN_PAGE 4096U

bool pattern_is_zero_page(uint64_t seed, uint64_t index);
void pattern_fill(uint64_t seed, uint64_t index, void *page);
/* true if @page holds the content of page @index. */
bool pattern_check(uint64_t seed, uint64_t index, const void *page);
#endif
