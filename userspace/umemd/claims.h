/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which pages a stream has taken, so that each page goes out once: a
 * sender claims a page (an atomic exchange) before it sends it, and the
 * loser of a race skips it.  That is what keeps a page from travelling
 * on two channels, or from being saved twice.  The background stream
 * walks the pages nobody took yet (claims_next()).
 *
 * Threads: any thread claims and reads; claims_give_back() and
 * claims_set() are for the main thread while no other thread claims
 * (precopy's DISCARD before LISTEN, --recover's resume).
 */
#ifndef UMEMD_CLAIMS_H
#define UMEMD_CLAIMS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct claims {
	atomic_uchar *map;		/* one byte a page: 1 taken */
	atomic_uint_fast64_t n;		/* pages taken */
	uint64_t pages;
};

int claims_init(struct claims *c, uint64_t pages);	/* 0 or -ENOMEM */
void claims_free(struct claims *c);
/*
 * The next page not taken at or after *@cursor, wrapping once to *@low
 * (which then moves to it); false if every page is taken.
 */
bool claims_next(const struct claims *c, uint64_t *cursor, uint64_t *low);

/* Take @page: true if this caller is the one to send it. */
static inline bool claims_take(struct claims *c, uint64_t page)
{
	if (atomic_exchange(&c->map[page], 1))
		return false;
	atomic_fetch_add(&c->n, 1);
	return true;
}

static inline bool claims_taken(const struct claims *c, uint64_t page)
{
	return atomic_load_explicit(&c->map[page], memory_order_relaxed);
}

/* A taken page is to be sent again (it changed after it was sent). */
static inline void claims_give_back(struct claims *c, uint64_t page)
{
	atomic_store(&c->map[page], 0);
	atomic_fetch_sub(&c->n, 1);
}

/*
 * --recover: the peer's map of what it holds replaces ours, page by page;
 * claims_set_count() with the pages taken once it is all in.
 */
static inline void claims_set(struct claims *c, uint64_t page, bool taken)
{
	atomic_store(&c->map[page], taken);
}

static inline void claims_set_count(struct claims *c, uint64_t n)
{
	atomic_store(&c->n, n);
}

static inline uint64_t claims_count(struct claims *c)
{
	return atomic_load(&c->n);
}
#endif
