// SPDX-License-Identifier: GPL-2.0
#include <string.h>

#include "page.h"
#include "pattern.h"

/*
 * Word 0 first: a page whose stamp was interrupted (write-protected
 * between two stores) is still recognisably the writer's.
 */
void page_stamp(void *page, uint64_t index, uint64_t gen)
{
	uint64_t mark = index ^ WRITER_MAGIC;
	uint8_t *p = page;

	memcpy(p, &mark, 8);
	memcpy(p + 8, &gen, 8);
	memcpy(p + PATTERN_PAGE - 8, &gen, 8);
}

void page_expected(uint64_t seed, uint64_t index, uint64_t gen, void *buf)
{
	pattern_fill(seed, index, buf);
	if (gen)
		page_stamp(buf, index, gen);
}

bool page_check(uint64_t seed, uint64_t index, uint64_t gen, const void *page)
{
	uint64_t buf[PATTERN_PAGE / 8];

	page_expected(seed, index, gen, buf);
	return memcmp(buf, page, PATTERN_PAGE) == 0;
}

bool page_stamped(uint64_t index, const void *page)
{
	uint64_t mark;

	memcpy(&mark, page, 8);
	return mark == (index ^ WRITER_MAGIC);
}

int64_t page_found_gen(uint64_t seed, uint64_t index, const void *page)
{
	const uint8_t *p = page;
	uint64_t g1, g2;

	if (!page_stamped(index, page))
		return pattern_check(seed, index, page) ? 0 : -1;
	memcpy(&g1, p + 8, 8);
	memcpy(&g2, p + PATTERN_PAGE - 8, 8);
	return g1 == g2 && g1 && g1 <= INT64_MAX ? (int64_t)g1 : -1;
}
