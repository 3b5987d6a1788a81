// SPDX-License-Identifier: GPL-2.0
/* The queue of requested pages: see reqq.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "reqq.h"

int reqq_init(struct reqq *q, size_t cap)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->ring = calloc(cap, sizeof(*q->ring));
	if (!q->ring)
		return -ENOMEM;
	q->cap = cap;
	return 0;
}

void reqq_destroy(struct reqq *q)
{
	free(q->ring);
	q->ring = NULL;
	q->cap = q->len = q->head = 0;
}

void reqq_push(struct reqq *q, uint64_t page, uint32_t count)
{
	pthread_mutex_lock(&q->lock);
	for (uint32_t i = 0; q->cap && i < count; i++) {
		if (q->len == q->cap) {
			/* Full: the oldest entries are pages the background
			 * stream will reach anyway; drop them. */
			q->head = (q->head + 1) % q->cap;
			q->len--;
		}
		q->ring[(q->head + q->len) % q->cap] = page + i;
		q->len++;
	}
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

bool reqq_pop(struct reqq *q, uint64_t *page, bool wait)
{
	bool got = false;

	pthread_mutex_lock(&q->lock);
	while (wait && !q->len && !q->closed && !q->held)
		pthread_cond_wait(&q->cond, &q->lock);
	if (q->len && !q->held) {
		*page = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
		got = true;
	}
	pthread_mutex_unlock(&q->lock);
	return got;
}

void reqq_close(struct reqq *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void reqq_hold(struct reqq *q, bool hold)
{
	pthread_mutex_lock(&q->lock);
	q->held = hold;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}
