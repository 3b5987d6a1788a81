// SPDX-License-Identifier: GPL-2.0
/* Which pages a stream has taken: see claims.h. */
#include <errno.h>
#include <stdlib.h>

#include "claims.h"

int claims_init(struct claims *c, uint64_t pages)
{
	c->map = calloc(pages, 1);
	c->pages = pages;
	atomic_store(&c->n, 0);
	return c->map ? 0 : -ENOMEM;
}

void claims_free(struct claims *c)
{
	free(c->map);
	c->map = NULL;
}

bool claims_next(const struct claims *c, uint64_t *cursor, uint64_t *low)
{
	for (uint64_t p = *cursor; p < c->pages; p++)
		if (!claims_taken(c, p)) {
			*cursor = p;
			return true;
		}
	for (uint64_t p = *low; p < *cursor && p < c->pages; p++)
		if (!claims_taken(c, p)) {
			*low = p;
			*cursor = p;
			return true;
		}
	return false;
}
