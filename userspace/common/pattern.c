// SPDX-License-Identifier: GPL-2.0
#include <string.h>

#include "pattern.h"

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

bool pattern_is_zero_page(uint64_t seed, uint64_t index)
{
	return mix(seed ^ mix(index / 16 + 0x5a5a)) % 5 == 0;
}

/* Word 0 is the page index, word 1 the seed: a misplaced page is obvious
 * in a hex dump.  The rest is an xorshift stream keyed by (seed, index). */
void pattern_fill(uint64_t seed, uint64_t index, void *page)
{
	uint64_t *w = page, x;

	if (pattern_is_zero_page(seed, index)) {
		memset(page, 0, PATTERN_PAGE);
		return;
	}
	x = mix(seed * 31 + mix(index)) | 1;
	w[0] = index;
	w[1] = seed;
	for (unsigned int i = 2; i < PATTERN_PAGE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

bool pattern_check(uint64_t seed, uint64_t index, const void *page)
{
	uint64_t buf[PATTERN_PAGE / 8];

	pattern_fill(seed, index, buf);
	return memcmp(buf, page, PATTERN_PAGE) == 0;
}
